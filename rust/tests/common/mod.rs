//! What the capture tests share: finding the directory the e2e tests wrote captures into and
//! reading its manifest, after checking that manifest and directory list the same files.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

pub const MANIFEST: &str = "expectations.json";

/// A capture directory's manifest: what each capture must hold, of a test's own kind `C`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest<C> {
    pub captures: Vec<C>,
}

/// What every capture of a manifest names: its file, and the e2e test that wrote it.
pub trait Captured {
    fn file(&self) -> &str;
    fn test(&self) -> &str;
}

/// [`Captured`] for a capture type with `file` and `test` fields.
#[macro_export]
macro_rules! captured_by_fields {
    ($capture:ty) => {
        impl common::Captured for $capture {
            fn file(&self) -> &str {
                &self.file
            }
            fn test(&self) -> &str {
                &self.test
            }
        }
    };
}

/// `$env_var` (relative to the repository root), else `build/e2e-captures/<default>`.
pub fn capture_dir(env_var: &str, default: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match std::env::var_os(env_var) {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("build/e2e-captures").join(default),
    }
}

/// The manifest of `dir`, whose captures must be exactly the `.xml` files there. `test_file` is
/// the e2e test that writes them, for the messages.
pub fn load_manifest<C: DeserializeOwned + Captured>(dir: &Path, test_file: &str) -> Manifest<C> {
    assert!(
        dir.is_dir(),
        "capture directory {} is missing: run the e2e tests first (make plugin && tests/e2e/run.sh {test_file})",
        dir.display()
    );
    let manifest_path = dir.join(MANIFEST);
    let text = fs::read_to_string(&manifest_path)
        .unwrap_or_else(|e| panic!("{}: {e} (run tests/e2e/run.sh {test_file})", manifest_path.display()));
    let manifest: Manifest<C> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", manifest_path.display()));

    let on_disk: BTreeSet<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".xml"))
        .collect();
    let names: Vec<String> = manifest.captures.iter().map(|c| c.file().to_owned()).collect();
    let listed: BTreeSet<String> = names.iter().cloned().collect();
    assert_eq!(listed.len(), names.len(), "a capture file is listed twice in {MANIFEST}");
    assert_eq!(on_disk, listed, "the .xml files in {} and those in {MANIFEST} differ", dir.display());
    manifest
}

/// Checks every capture and fails with one report naming each that does not hold up, with its
/// problems and its XML.
pub fn assert_every_capture<C: Captured>(dir: &Path, captures: &[C], check: impl Fn(&C) -> Vec<String>) {
    use std::fmt::Write as _;
    let mut report = String::new();
    for capture in captures {
        let problems = check(capture);
        if problems.is_empty() {
            continue;
        }
        let (file, test) = (capture.file(), capture.test());
        let xml = fs::read_to_string(dir.join(file)).unwrap_or_default();
        let _ = writeln!(report, "\n{file} (e2e test: {test}):");
        for problem in problems {
            let _ = writeln!(report, "  - {problem}");
        }
        let _ = writeln!(report, "  XML: {xml}");
    }
    assert!(report.is_empty(), "captures in {} that do not hold up:{report}", dir.display());
}

/// The captured element in `file`, parsed, in `namespace`; or what is wrong with it.
pub fn read_capture(dir: &Path, file: &str, namespace: &str) -> Result<xmpp_parsers::minidom::Element, Vec<String>> {
    let path = dir.join(file);
    let xml = fs::read_to_string(&path).map_err(|e| vec![format!("{}: {e}", path.display())])?;
    let element: xmpp_parsers::minidom::Element =
        xml.parse().map_err(|e| vec![format!("not well-formed XML: {e}")])?;
    if element.ns() != namespace {
        return Err(vec![format!("namespace {:?}, expected {:?}", element.ns(), namespace)]);
    }
    Ok(element)
}
