//! XEP-0494 replies of a real Prosody running the module, parsed by xmpp-parsers' `cam` module
//! with `pedantic` on, and compared with what the end-to-end tests set up.
//!
//! tests/e2e/test/cam.test.js writes every `urn:xmpp:cam:0` reply it receives (the `<clients/>`
//! element, or the application condition of an `<error/>`, byte for byte as it came off the
//! socket) into a capture directory, with `expectations.json` saying what each must hold. This
//! test reads them all. It fails when the directory is missing or holds fewer than
//! [`MIN_CAM_CAPTURES`] captures, so it never passes on nothing: run the e2e tests first.
//!
//!     make plugin && tests/e2e/run.sh test/cam.test.js
//!     cargo test --test cam_captures
//!
//! Directory: `$CAM_CAPTURE_DIR` (relative to the repository root), else
//! `build/e2e-captures/cam`. The target has `test = false`: a plain `cargo test`, which runs
//! before the e2e tests, leaves it out; `--test cam_captures` runs it.

use std::path::{Path, PathBuf};

mod common;
use common::MANIFEST;

use serde::Deserialize;
use xmpp_parsers::cam::{Client, Clients, PasswordResetRequiredError, Status, Type};
use xmpp_parsers::minidom::Element;

const NS_CAM: &str = "urn:xmpp:cam:0";
const NS_PROSODY: &str = "xmpp:prosody.im/protocol/manage-clients";
/// Fewer `urn:xmpp:cam:0` captures than this means the e2e tests did not run (or lost most of
/// their cases): fail rather than pass on too little.
const MIN_CAM_CAPTURES: usize = 4;

type Manifest = common::Manifest<Capture>;

captured_by_fields!(Capture);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Capture {
    file: String,
    /// "clients" or "password-reset-required"
    kind: String,
    /// namespace of the request, and so of the captured element
    namespace: String,
    /// the e2e test it comes from
    test: String,
    /// kind "clients": every client the list must hold, in any order
    #[serde(default)]
    clients: Option<Vec<ExpectedClient>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedClient {
    id: String,
    #[serde(rename = "type")]
    type_: String,
    connected: bool,
    /// names of the `<auth/>` flags, sorted
    auth: Vec<String>,
    permission: String,
    software: String,
    /// None: no `<device/>`
    device: Option<String>,
    /// None: no `<uri/>`
    uri: Option<String>,
    /// None: not checked; else present and within
    first_seen: Option<Window>,
    last_seen: Option<Window>,
}

/// Unix seconds, both ends inclusive.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Window {
    min: i64,
    max: i64,
}


/// The manifest, after checking that it and the directory agree and that there is enough.
fn load() -> (PathBuf, Manifest) {
    let dir = common::capture_dir("CAM_CAPTURE_DIR", "cam");
    let manifest: Manifest = common::load_manifest(&dir, "test/cam.test.js");

    let cam = manifest.captures.iter().filter(|c| c.namespace == NS_CAM).count();
    assert!(
        cam >= MIN_CAM_CAPTURES,
        "only {cam} urn:xmpp:cam:0 capture(s) in {} (at least {MIN_CAM_CAPTURES} expected): \
         did tests/e2e/test/cam.test.js run to the end?",
        dir.display()
    );
    (dir, manifest)
}

fn type_name(type_: &Type) -> &'static str {
    match type_ {
        Type::Session => "session",
        Type::Access => "access",
    }
}

fn status_name(status: &Status) -> &'static str {
    match status {
        Status::Unrestricted => "unrestricted",
        Status::Normal => "normal",
        Status::Restricted => "restricted",
    }
}

fn auth_names(client: &Client) -> Vec<String> {
    let auth = &client.auth;
    let mut names: Vec<String> = [
        ("password", auth.password),
        ("grant", auth.grant),
        ("fast", auth.fast),
    ]
    .into_iter()
    .filter(|(_, on)| *on)
    .map(|(name, _)| name.to_owned())
    .collect();
    names.extend(
        auth.other
            .iter()
            .map(|el| format!("{{{}}}{}", el.ns(), el.name())),
    );
    names.sort();
    names
}

fn check_time(
    problems: &mut Vec<String>,
    what: &str,
    got: Option<&xmpp_parsers::date::DateTime>,
    window: Option<&Window>,
) {
    let Some(window) = window else { return };
    let Some(got) = got else {
        problems.push(format!(
            "{what}: missing, expected within {}..={}",
            window.min, window.max
        ));
        return;
    };
    if got.timezone().local_minus_utc() != 0 {
        problems.push(format!("{what}: {} is not in UTC", got.format("%+")));
    }
    let t = got.0.timestamp();
    if t < window.min || t > window.max {
        problems.push(format!(
            "{what}: {t} ({}) not within {}..={}",
            got.format("%+"),
            window.min,
            window.max
        ));
    }
}

/// Everything that differs between a parsed list and its expectations.
fn compare_clients(clients: &Clients, expected: &[ExpectedClient]) -> Vec<String> {
    let mut problems = Vec::new();
    let got_ids: Vec<&str> = clients.clients.iter().map(|c| c.id.as_str()).collect();
    let mut sorted_got = got_ids.clone();
    sorted_got.sort_unstable();
    let mut sorted_expected: Vec<&str> = expected.iter().map(|c| c.id.as_str()).collect();
    sorted_expected.sort_unstable();
    if sorted_got != sorted_expected {
        problems.push(format!(
            "ids: got {got_ids:?}, expected (any order) {sorted_expected:?}"
        ));
    }
    for x in expected {
        let found: Vec<&Client> = clients.clients.iter().filter(|c| c.id == x.id).collect();
        let [client] = found.as_slice() else {
            problems.push(format!("{}: listed {} time(s), expected once", x.id, found.len()));
            continue;
        };
        let id = &x.id;
        let mut differs = |field: &str, got: String, want: String| {
            if got != want {
                problems.push(format!("{id}: {field} is {got}, expected {want}"));
            }
        };
        differs("type", type_name(&client.type_).into(), x.type_.clone());
        differs("connected", client.connected.to_string(), x.connected.to_string());
        differs(
            "auth",
            format!("{:?}", auth_names(client)),
            format!("{:?}", x.auth),
        );
        differs(
            "permission",
            status_name(&client.permission.status).into(),
            x.permission.clone(),
        );
        differs(
            "software",
            format!("{:?}", client.user_agent.software),
            format!("{:?}", x.software),
        );
        differs(
            "device",
            format!("{:?}", client.user_agent.device),
            format!("{:?}", x.device),
        );
        differs(
            "uri",
            format!("{:?}", client.user_agent.uri),
            format!("{:?}", x.uri),
        );
        check_time(
            &mut problems,
            &format!("{id}: first-seen"),
            client.first_seen.as_ref(),
            x.first_seen.as_ref(),
        );
        check_time(
            &mut problems,
            &format!("{id}: last-seen"),
            client.last_seen.as_ref(),
            x.last_seen.as_ref(),
        );
    }
    problems
}

/// Everything wrong with one capture (empty: all good).
fn check_capture(dir: &Path, capture: &Capture) -> Vec<String> {
    let element = match common::read_capture(dir, &capture.file, &capture.namespace) {
        Ok(element) => element,
        Err(problems) => return problems,
    };
    match (capture.kind.as_str(), capture.namespace.as_str()) {
        ("clients", NS_CAM) => {
            let Some(expected) = &capture.clients else {
                return vec![format!("{MANIFEST} has no clients for {}", capture.file)];
            };
            match Clients::try_from(element) {
                Ok(clients) => compare_clients(&clients, expected),
                Err(e) => vec![format!("xmpp-parsers (pedantic) rejects the <clients/>: {e}")],
            }
        }
        ("password-reset-required", NS_CAM) => match PasswordResetRequiredError::try_from(element) {
            Ok(PasswordResetRequiredError) => Vec::new(),
            Err(e) => vec![format!(
                "xmpp-parsers (pedantic) rejects the application condition: {e}"
            )],
        },
        // The Prosody namespace's answer to a Prosody-namespace request: right namespace (checked
        // above), the right element, and not something a XEP-0494 parser would take for its own.
        ("password-reset-required", NS_PROSODY) => {
            let mut problems = Vec::new();
            if element.name() != "password-reset-required" {
                problems.push(format!(
                    "<{}/>, expected <password-reset-required/>",
                    element.name()
                ));
            }
            if PasswordResetRequiredError::try_from(element).is_ok() {
                problems.push("a Prosody-namespace element parsed as urn:xmpp:cam:0".into());
            }
            problems
        }
        (kind, ns) => vec![format!("unknown capture kind {kind:?} in namespace {ns:?}")],
    }
}

#[test]
fn every_captured_reply_parses_pedantically_with_the_values_set_up() {
    let (dir, manifest) = load();
    common::assert_every_capture(&dir, &manifest.captures, |c| check_capture(&dir, c));
}

/// The captures must exercise every value the tests are there for, so that losing a case in
/// cam.test.js shows here too.
#[test]
fn captures_cover_every_kind_of_client() {
    let (_, manifest) = load();
    let clients: Vec<&ExpectedClient> = manifest
        .captures
        .iter()
        .filter(|c| c.kind == "clients" && c.namespace == NS_CAM)
        .flat_map(|c| c.clients.iter().flatten())
        .collect();
    let mut missing = Vec::new();
    let mut need = |what: &str, present: bool| {
        if !present {
            missing.push(what.to_owned());
        }
    };
    for permission in ["unrestricted", "normal", "restricted"] {
        need(
            &format!("permission {permission}"),
            clients.iter().any(|c| c.permission == permission),
        );
    }
    for type_ in ["session", "access"] {
        need(&format!("type {type_}"), clients.iter().any(|c| c.type_ == type_));
    }
    for connected in [true, false] {
        need(
            &format!("connected {connected}"),
            clients.iter().any(|c| c.connected == connected),
        );
    }
    for flag in ["password", "grant", "fast"] {
        need(
            &format!("<{flag}/>"),
            clients.iter().any(|c| c.auth.iter().any(|a| a == flag)),
        );
    }
    need(
        "a session with <grant/> only",
        clients
            .iter()
            .any(|c| c.type_ == "session" && c.auth == ["grant"]),
    );
    need(
        "an empty <software/>",
        clients.iter().any(|c| c.software.is_empty()),
    );
    need("a <device/>", clients.iter().any(|c| c.device.is_some()));
    need("a <uri/>", clients.iter().any(|c| c.uri.is_some()));
    for ns in [NS_CAM, NS_PROSODY] {
        need(
            &format!("password-reset-required in {ns}"),
            manifest
                .captures
                .iter()
                .any(|c| c.kind == "password-reset-required" && c.namespace == ns),
        );
    }
    assert!(missing.is_empty(), "the captures lack: {}", missing.join(", "));
}

/// The `pedantic` feature is what makes this worth doing: without it, xso ignores unknown
/// attributes and children, and a wrong reply could still parse.
#[test]
fn xmpp_parsers_is_pedantic() {
    let stray_attribute: Element = "<clients xmlns='urn:xmpp:cam:0' stray='1'/>".parse().unwrap();
    assert!(
        Clients::try_from(stray_attribute).is_err(),
        "pedantic feature is off"
    );
    let stray_child: Element =
        "<password-reset-required xmlns='urn:xmpp:cam:0'><x xmlns='urn:example'/></password-reset-required>"
            .parse()
            .unwrap();
    assert!(
        PasswordResetRequiredError::try_from(stray_child).is_err(),
        "pedantic feature is off"
    );
}
