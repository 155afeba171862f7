//! What the capture tests share: finding the directory the e2e tests wrote captures into and
//! reading its manifest, after checking that manifest and directory list the same files.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub const MANIFEST: &str = "expectations.json";

/// `$env_var` (relative to the repository root), else `build/e2e-captures/<default>`.
pub fn capture_dir(env_var: &str, default: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match std::env::var_os(env_var) {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("build/e2e-captures").join(default),
    }
}

/// The manifest of `dir`; `files` names the captures it lists, which must be exactly the
/// `.xml` files there. `test_file` is the e2e test that writes them, for the messages.
pub fn load_manifest<M: DeserializeOwned>(dir: &Path, test_file: &str, files: impl Fn(&M) -> Vec<String>) -> M {
    assert!(
        dir.is_dir(),
        "capture directory {} is missing: run the e2e tests first (make plugin && tests/e2e/run.sh {test_file})",
        dir.display()
    );
    let manifest_path = dir.join(MANIFEST);
    let text = fs::read_to_string(&manifest_path)
        .unwrap_or_else(|e| panic!("{}: {e} (run tests/e2e/run.sh {test_file})", manifest_path.display()));
    let manifest: M = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", manifest_path.display()));

    let on_disk: BTreeSet<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".xml"))
        .collect();
    let names = files(&manifest);
    let listed: BTreeSet<String> = names.iter().cloned().collect();
    assert_eq!(listed.len(), names.len(), "a capture file is listed twice in {MANIFEST}");
    assert_eq!(on_disk, listed, "the .xml files in {} and those in {MANIFEST} differ", dir.display());
    manifest
}
