//! XEP-0050 command replies of a real Prosody running the module ("Manage clients", "Sign out
//! all other clients"), checked against XEP-0050 and parsed by xmpp-parsers' `data_forms` with
//! `pedantic` on, and compared with what the end-to-end tests saw in them.
//!
//! tests/e2e/test/adhoc.test.js writes the `<command/>` element of every reply that carries one
//! and every `<x xmlns='jabber:x:data'/>` in it, byte for byte as it came off the socket, into a
//! capture directory, with `expectations.json` saying what the JS side found in each. This test
//! reads them all. It fails when the directory is missing or holds no command or no form, so
//! it never passes on nothing: run the e2e tests first.
//!
//!     make plugin && tests/e2e/run.sh test/adhoc.test.js
//!     cargo test --test adhoc_captures
//!
//! Directory: `$ADHOC_CAPTURE_DIR` (relative to the repository root), else
//! `build/e2e-captures/adhoc`. The target has `test = false`: a plain `cargo test`, which runs
//! before the e2e tests, leaves it out; `--test adhoc_captures` runs it.
//!
//! xmpp-parsers 0.23 has no `commands` module, so the `<command/>` wrapper is checked here with
//! minidom: attributes `node`, `sessionid`, `status` ∈ {executing, completed, canceled}, children
//! `<actions/>` (only while executing; `<prev/>`, `<next/>`, `<complete/>`, `execute` naming one
//! of them), `<note type='info|warn|error'/>` (text only) and data forms.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

mod common;
use common::MANIFEST;

use serde::Deserialize;
use xmpp_parsers::data_forms::{DataForm, DataFormType, Field, FieldType};
use xmpp_parsers::minidom::{Element, Node};

const NS_COMMANDS: &str = "http://jabber.org/protocol/commands";
const NS_DATA: &str = "jabber:x:data";
const NODE_MANAGE: &str = "xmpp:prosody.im/protocol/manage-clients#manage";
const NODE_SIGN_OUT: &str = "xmpp:prosody.im/protocol/manage-clients#sign-out-others";

type Manifest = common::Manifest<Capture>;

captured_by_fields!(Capture);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Capture {
    file: String,
    /// "command" or "form"
    kind: String,
    /// namespace of the captured element
    namespace: String,
    /// the e2e test it comes from
    test: String,
    // kind "command": what the JS side saw in the <command/>
    /// type of the iq that carried it ("result", or "error" for mod_adhoc's refusals)
    #[serde(default)]
    reply_type: Option<String>,
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    sessionid: Option<String>,
    /// names of the children of `<actions/>`, None: no `<actions/>`
    #[serde(default)]
    actions: Option<Vec<String>>,
    #[serde(default)]
    execute: Option<String>,
    #[serde(default)]
    notes: Option<Vec<ExpectedNote>>,
    /// `type` of each data form in the command, in order
    #[serde(default)]
    forms: Option<Vec<String>>,
    // kind "form"
    #[serde(default)]
    form: Option<ExpectedForm>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedNote {
    #[serde(rename = "type")]
    type_: String,
    text: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedForm {
    #[serde(rename = "type")]
    type_: String,
    title: Option<String>,
    instructions: Option<String>,
    form_type: Option<String>,
    fields: Vec<ExpectedField>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedField {
    var: Option<String>,
    /// the attribute as sent; None: absent
    #[serde(rename = "type")]
    type_: Option<String>,
    label: Option<String>,
    values: Vec<String>,
    options: Vec<ExpectedOption>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedOption {
    label: Option<String>,
    value: String,
}


/// The manifest, after checking that it and the directory agree and that there is something.
fn load() -> (PathBuf, Manifest) {
    let dir = common::capture_dir("ADHOC_CAPTURE_DIR", "adhoc");
    let manifest: Manifest = common::load_manifest(&dir, "test/adhoc.test.js");
    for kind in ["command", "form"] {
        assert!(
            manifest.captures.iter().any(|c| c.kind == kind),
            "no {kind} capture in {}: did tests/e2e/test/adhoc.test.js run (against a build \
             that has the commands)?",
            dir.display()
        );
    }
    (dir, manifest)
}

// ------------------------------------------------------------------ minidom helpers

/// `name`, or `{ns}name` for a namespaced attribute.
fn attr_names(el: &Element) -> Vec<String> {
    el.attrs()
        .iter()
        .map(|((ns, name), _)| {
            if ns.is_none() {
                name.as_str().to_owned()
            } else {
                format!("{{{}}}{}", ns.as_str(), name.as_str())
            }
        })
        .collect()
}

fn unexpected_attrs(el: &Element, allowed: &[&str]) -> Vec<String> {
    attr_names(el)
        .into_iter()
        .filter(|a| !allowed.contains(&a.as_str()))
        .collect()
}

/// Has non-whitespace text directly inside.
fn has_text(el: &Element) -> bool {
    el.nodes()
        .any(|n| matches!(n, Node::Text(t) if !t.trim().is_empty()))
}

fn field_type_name(t: &FieldType) -> &'static str {
    match t {
        FieldType::Boolean => "boolean",
        FieldType::Fixed => "fixed",
        FieldType::Hidden => "hidden",
        FieldType::JidMulti => "jid-multi",
        FieldType::JidSingle => "jid-single",
        FieldType::ListMulti => "list-multi",
        FieldType::ListSingle => "list-single",
        FieldType::TextMulti => "text-multi",
        FieldType::TextPrivate => "text-private",
        FieldType::TextSingle => "text-single",
    }
}

fn form_type_name(t: &DataFormType) -> &'static str {
    match t {
        DataFormType::Cancel => "cancel",
        DataFormType::Form => "form",
        DataFormType::Result_ => "result",
        DataFormType::Submit => "submit",
    }
}

// ------------------------------------------------------------------ XEP-0050

const ACTIONS: [&str; 3] = ["prev", "next", "complete"];
const STATUSES: [&str; 3] = ["executing", "completed", "canceled"];
const NOTE_TYPES: [&str; 3] = ["info", "warn", "error"];

/// Everything wrong with a captured `<command/>` (empty: all good).
fn check_command(element: &Element, capture: &Capture) -> Vec<String> {
    let mut problems = Vec::new();
    if element.name() != "command" || element.ns() != NS_COMMANDS {
        return vec![format!(
            "{{{}}}{}, expected {{{NS_COMMANDS}}}command",
            element.ns(),
            element.name()
        )];
    }
    // `action` belongs to requests; a reply says where the session is with `status`.
    let stray = unexpected_attrs(
        element,
        &[
            "node",
            "sessionid",
            "status",
            "{http://www.w3.org/XML/1998/namespace}lang",
        ],
    );
    if !stray.is_empty() {
        problems.push(format!(
            "attributes not allowed on a reply's <command/>: {stray:?}"
        ));
    }
    let node = element.attr("node");
    match node {
        None | Some("") => problems.push("no node".into()),
        Some(n) if capture.node.as_deref() != Some(n) => {
            problems.push(format!("node {n:?}, the e2e test saw {:?}", capture.node));
        }
        _ => {}
    }
    let status = element.attr("status");
    match status {
        Some(s) if STATUSES.contains(&s) => {
            if capture.status.as_deref() != Some(s) {
                problems.push(format!(
                    "status {s:?}, the e2e test saw {:?}",
                    capture.status
                ));
            }
        }
        other => problems.push(format!("status {other:?}, expected one of {STATUSES:?}")),
    }
    let sessionid = element.attr("sessionid");
    if capture.reply_type.as_deref() == Some("result") && sessionid.is_none_or(str::is_empty) {
        problems.push("a result's <command/> without a sessionid".into());
    }
    if sessionid != capture.sessionid.as_deref() {
        problems.push(format!(
            "sessionid {sessionid:?}, the e2e test saw {:?}",
            capture.sessionid
        ));
    }
    if has_text(element) {
        problems.push("text directly inside <command/>".into());
    }

    let mut actions_seen = 0;
    let mut notes = Vec::new();
    let mut form_types = Vec::new();
    for child in element.children() {
        match (child.ns().as_str(), child.name()) {
            (NS_COMMANDS, "actions") => {
                actions_seen += 1;
                problems.extend(check_actions(child, status, capture));
            }
            (NS_COMMANDS, "note") => {
                let stray = unexpected_attrs(child, &["type"]);
                if !stray.is_empty() {
                    problems.push(format!("attributes not allowed on <note/>: {stray:?}"));
                }
                let type_ = child.attr("type").unwrap_or("info");
                if !NOTE_TYPES.contains(&type_) {
                    problems.push(format!(
                        "<note type='{type_}'/>, expected one of {NOTE_TYPES:?}"
                    ));
                }
                if child.children().next().is_some() {
                    problems.push("elements inside <note/>".into());
                }
                let text = child.text();
                if text.trim().is_empty() {
                    problems.push("an empty <note/>".into());
                }
                notes.push((type_.to_owned(), text));
            }
            (NS_DATA, "x") => match DataForm::try_from(child.clone()) {
                Ok(form) => form_types.push(form_type_name(&form.type_).to_owned()),
                Err(e) => problems.push(format!(
                    "xmpp-parsers (pedantic) rejects the data form in the command: {e}"
                )),
            },
            (ns, name) => problems.push(format!("unexpected child {{{ns}}}{name}")),
        }
    }
    if actions_seen > 1 {
        problems.push(format!("{actions_seen} <actions/> elements"));
    }
    if actions_seen == 0 && capture.actions.is_some() {
        problems.push(format!(
            "no <actions/>, the e2e test saw {:?}",
            capture.actions
        ));
    }
    let expected_notes: Vec<(String, String)> = capture
        .notes
        .iter()
        .flatten()
        .map(|n| (n.type_.clone(), n.text.clone()))
        .collect();
    if notes != expected_notes {
        problems.push(format!(
            "notes {notes:?}, the e2e test saw {expected_notes:?}"
        ));
    }
    if Some(&form_types) != capture.forms.as_ref() {
        problems.push(format!(
            "data forms of types {form_types:?}, the e2e test saw {:?}",
            capture.forms
        ));
    }
    // Stage rules: a form to fill while executing, none once the command is over.
    match status {
        Some("executing") if !form_types.iter().any(|t| t == "form") => {
            problems.push("executing without a form to fill".into());
        }
        Some("completed" | "canceled") if form_types.iter().any(|t| t == "form") => {
            problems.push("a form to fill in a command that is over".into());
        }
        _ => {}
    }
    problems
}

fn check_actions(actions: &Element, status: Option<&str>, capture: &Capture) -> Vec<String> {
    let mut problems = Vec::new();
    if status != Some("executing") {
        problems.push(format!("<actions/> in a command with status {status:?}"));
    }
    let stray = unexpected_attrs(actions, &["execute"]);
    if !stray.is_empty() {
        problems.push(format!("attributes not allowed on <actions/>: {stray:?}"));
    }
    if has_text(actions) {
        problems.push("text inside <actions/>".into());
    }
    let mut names = Vec::new();
    for child in actions.children() {
        let name = child.name().to_owned();
        if child.ns() != NS_COMMANDS || !ACTIONS.contains(&name.as_str()) {
            problems.push(format!(
                "<actions/> child {{{}}}{name}, expected one of {ACTIONS:?}",
                child.ns()
            ));
        }
        if child.children().next().is_some() || has_text(child) || !attr_names(child).is_empty() {
            problems.push(format!("<{name}/> inside <actions/> is not empty"));
        }
        if names.contains(&name) {
            problems.push(format!("<{name}/> twice in <actions/>"));
        }
        names.push(name);
    }
    if names.is_empty() {
        problems.push("an empty <actions/>".into());
    }
    let execute = actions.attr("execute");
    if let Some(execute) = execute {
        if !names.iter().any(|n| n == execute) {
            problems.push(format!(
                "execute='{execute}' names none of the offered actions {names:?}"
            ));
        }
    }
    if Some(&names) != capture.actions.as_ref() {
        problems.push(format!(
            "actions {names:?}, the e2e test saw {:?}",
            capture.actions
        ));
    }
    if execute != capture.execute.as_deref() {
        problems.push(format!(
            "execute {execute:?}, the e2e test saw {:?}",
            capture.execute
        ));
    }
    problems
}

// ------------------------------------------------------------------ XEP-0004

/// XEP-0004 rules xmpp-parsers does not check, on the parsed form (and the raw element for
/// what parsing hides: a missing field type reads as text-single).
fn check_form_rules(element: &Element, form: &DataForm) -> Vec<String> {
    let mut problems = Vec::new();
    let shown = matches!(form.type_, DataFormType::Form | DataFormType::Result_);
    if shown {
        for field in element.children().filter(|c| c.name() == "field") {
            if field.attr("type").is_none() {
                problems.push(format!(
                    "field {:?} of a type='{}' form has no type attribute",
                    field.attr("var"),
                    form_type_name(&form.type_)
                ));
            }
        }
    }
    let mut vars = HashSet::new();
    for field in &form.fields {
        let name = field.var.as_deref().unwrap_or("(no var)");
        if let Some(var) = &field.var {
            if !vars.insert(var.clone()) {
                problems.push(format!("field var {var:?} twice"));
            }
        }
        problems.extend(
            check_field_values(field, form)
                .into_iter()
                .map(|p| format!("field {name}: {p}")),
        );
    }
    if shown {
        match form
            .fields
            .iter()
            .find(|f| f.var.as_deref() == Some("FORM_TYPE"))
        {
            Some(f) if f.type_ != FieldType::Hidden => {
                problems.push("FORM_TYPE is not hidden".into());
            }
            _ => {}
        }
    }
    problems
}

fn check_field_values(field: &Field, form: &DataForm) -> Vec<String> {
    let mut problems = Vec::new();
    let multi = matches!(
        field.type_,
        FieldType::ListMulti | FieldType::JidMulti | FieldType::TextMulti
    );
    if !multi && field.values.len() > 1 {
        problems.push(format!(
            "{} values in a {} field",
            field.values.len(),
            field_type_name(&field.type_)
        ));
    }
    if field.type_ == FieldType::Boolean {
        for v in &field.values {
            if !["0", "1", "false", "true"].contains(&v.as_str()) {
                problems.push(format!("boolean value {v:?}"));
            }
        }
    }
    if matches!(field.type_, FieldType::ListMulti | FieldType::ListSingle)
        && form.type_ == DataFormType::Form
    {
        let mut seen = HashSet::new();
        for option in &field.options {
            if !seen.insert(option.value.as_str()) {
                problems.push(format!("option value {:?} twice", option.value));
            }
            if option.value.is_empty() {
                problems.push("an option with an empty value".into());
            }
        }
        for v in &field.values {
            if !seen.contains(v.as_str()) {
                problems.push(format!("value {v:?} is none of the options"));
            }
        }
    }
    problems
}

/// Everything that differs between a parsed form and what the e2e test saw in it.
fn compare_form(form: &DataForm, x: &ExpectedForm) -> Vec<String> {
    let mut problems = Vec::new();
    let mut differs = |what: String, got: String, want: String| {
        if got != want {
            problems.push(format!("{what}: {got}, the e2e test saw {want}"));
        }
    };
    differs(
        "type".into(),
        form_type_name(&form.type_).into(),
        x.type_.clone(),
    );
    differs(
        "title".into(),
        format!("{:?}", form.title),
        format!("{:?}", x.title),
    );
    differs(
        "instructions".into(),
        format!("{:?}", form.instructions),
        format!("{:?}", x.instructions),
    );
    differs(
        "FORM_TYPE".into(),
        format!("{:?}", form.form_type()),
        format!("{:?}", x.form_type),
    );
    // patch_form moves FORM_TYPE first; compare by var, in the order sent otherwise.
    let got_vars: Vec<Option<&str>> = form.fields.iter().map(|f| f.var.as_deref()).collect();
    let mut got_sorted = got_vars.clone();
    got_sorted.sort_unstable();
    let mut want_sorted: Vec<Option<&str>> = x.fields.iter().map(|f| f.var.as_deref()).collect();
    want_sorted.sort_unstable();
    if got_sorted != want_sorted {
        problems.push(format!(
            "fields {got_vars:?}, the e2e test saw {want_sorted:?}"
        ));
        return problems;
    }
    for want in &x.fields {
        let Some(got) = form.fields.iter().find(|f| f.var == want.var) else {
            continue;
        };
        let name = want.var.as_deref().unwrap_or("(no var)");
        let want_type = want.type_.as_deref().unwrap_or("text-single");
        let mut differs = |what: &str, got: String, want: String| {
            if got != want {
                problems.push(format!(
                    "field {name}: {what} {got}, the e2e test saw {want}"
                ));
            }
        };
        differs("type", field_type_name(&got.type_).into(), want_type.into());
        differs(
            "label",
            format!("{:?}", got.label),
            format!("{:?}", want.label),
        );
        differs(
            "values",
            format!("{:?}", got.values),
            format!("{:?}", want.values),
        );
        let got_options: Vec<(Option<&str>, &str)> = got
            .options
            .iter()
            .map(|o| (o.label.as_deref(), o.value.as_str()))
            .collect();
        let want_options: Vec<(Option<&str>, &str)> = want
            .options
            .iter()
            .map(|o| (o.label.as_deref(), o.value.as_str()))
            .collect();
        differs(
            "options",
            format!("{got_options:?}"),
            format!("{want_options:?}"),
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
        ("command", NS_COMMANDS) => check_command(&element, capture),
        ("form", NS_DATA) => {
            let Some(expected) = &capture.form else {
                return vec![format!("{MANIFEST} has no form for {}", capture.file)];
            };
            match DataForm::try_from(element.clone()) {
                Ok(form) => {
                    let mut problems = check_form_rules(&element, &form);
                    problems.extend(compare_form(&form, expected));
                    problems
                }
                Err(e) => vec![format!(
                    "xmpp-parsers (pedantic) rejects the data form: {e}"
                )],
            }
        }
        (kind, ns) => vec![format!("unknown capture kind {kind:?} in namespace {ns:?}")],
    }
}

#[test]
fn every_captured_command_reply_holds_up() {
    let (dir, manifest) = load();
    common::assert_every_capture(&dir, &manifest.captures, |c| check_capture(&dir, c));
}

/// The captures must show every stage the tests are there for, so that losing a case in
/// adhoc.test.js (or a command answering errors only) shows here too.
#[test]
fn captures_cover_both_commands_at_every_stage() {
    let (_, manifest) = load();
    let commands: Vec<&Capture> = manifest
        .captures
        .iter()
        .filter(|c| c.kind == "command" && c.reply_type.as_deref() == Some("result"))
        .collect();
    let forms: Vec<&ExpectedForm> = manifest
        .captures
        .iter()
        .filter(|c| c.kind == "form")
        .filter_map(|c| c.form.as_ref())
        .collect();
    let mut missing = Vec::new();
    let mut need = |what: &str, present: bool| {
        if !present {
            missing.push(what.to_owned());
        }
    };
    for (node, statuses) in [
        (NODE_MANAGE, &["executing", "completed"][..]),
        (NODE_SIGN_OUT, &["executing", "completed", "canceled"][..]),
    ] {
        for status in statuses {
            need(
                &format!("{node} with status {status}"),
                commands.iter().any(|c| {
                    c.node.as_deref() == Some(node) && c.status.as_deref() == Some(status)
                }),
            );
        }
    }
    for note_type in ["info", "warn"] {
        need(
            &format!("a <note type='{note_type}'/>"),
            commands
                .iter()
                .any(|c| c.notes.iter().flatten().any(|n| n.type_ == note_type)),
        );
    }
    need(
        "the Manage clients form (FORM_TYPE, list-multi 'revoke' with options)",
        forms.iter().any(|f| {
            f.type_ == "form"
                && f.form_type.as_deref() == Some(NODE_MANAGE)
                && f.fields.iter().any(|x| {
                    x.var.as_deref() == Some("revoke")
                        && x.type_.as_deref() == Some("list-multi")
                        && !x.options.is_empty()
                })
        }),
    );
    need(
        "the Sign out form (boolean 'confirm')",
        forms.iter().any(|f| {
            f.type_ == "form"
                && f.fields.iter().any(|x| {
                    x.var.as_deref() == Some("confirm") && x.type_.as_deref() == Some("boolean")
                })
        }),
    );
    assert!(
        missing.is_empty(),
        "the captures lack: {}",
        missing.join(", ")
    );
}

/// The `pedantic` feature is what makes this worth doing: without it, xso ignores unknown
/// attributes and children, and a wrong form could still parse.
#[test]
fn xmpp_parsers_is_pedantic() {
    let stray_attribute: Element = "<x xmlns='jabber:x:data' type='form' stray='1'/>"
        .parse()
        .unwrap();
    assert!(
        DataForm::try_from(stray_attribute).is_err(),
        "pedantic feature is off"
    );
    let stray_child: Element =
        "<x xmlns='jabber:x:data' type='form'><field var='a'><y xmlns='urn:example'/></field></x>"
            .parse()
            .unwrap();
    assert!(
        DataForm::try_from(stray_child).is_err(),
        "pedantic feature is off"
    );
}

/// The checks above catch what they are there for (on hand-made replies).
#[test]
fn the_command_checks_catch_broken_replies() {
    let capture = |status: &str, actions: Option<Vec<&str>>, execute: Option<&str>| Capture {
        file: "x.xml".into(),
        kind: "command".into(),
        namespace: NS_COMMANDS.into(),
        test: "self-test".into(),
        reply_type: Some("result".into()),
        node: Some(NODE_MANAGE.into()),
        status: Some(status.into()),
        sessionid: Some("s1".into()),
        actions: actions.map(|a| a.into_iter().map(String::from).collect()),
        execute: execute.map(String::from),
        notes: Some(Vec::new()),
        forms: Some(vec!["form".into()]),
        form: None,
    };
    let good = format!(
        "<command xmlns='{NS_COMMANDS}' node='{NODE_MANAGE}' status='executing' sessionid='s1'>\
         <actions execute='complete'><complete/></actions>\
         <x xmlns='jabber:x:data' type='form'><field var='revoke' type='list-multi'/></x></command>"
    );
    let el: Element = good.parse().unwrap();
    assert_eq!(
        check_command(
            &el,
            &capture("executing", Some(vec!["complete"]), Some("complete"))
        ),
        Vec::<String>::new()
    );
    let bad_execute: Element = good
        .replace("execute='complete'", "execute='next'")
        .parse()
        .unwrap();
    assert!(!check_command(
        &bad_execute,
        &capture("executing", Some(vec!["complete"]), Some("next"))
    )
    .is_empty());
    let bad_status: Element = good
        .replace("status='executing'", "status='done'")
        .parse()
        .unwrap();
    assert!(!check_command(
        &bad_status,
        &capture("done", Some(vec!["complete"]), Some("complete"))
    )
    .is_empty());
    let actions_when_completed: Element = good
        .replace("status='executing'", "status='completed'")
        .parse()
        .unwrap();
    assert!(!check_command(
        &actions_when_completed,
        &capture("completed", Some(vec!["complete"]), Some("complete"))
    )
    .is_empty());
    let bad_note: Element = format!(
        "<command xmlns='{NS_COMMANDS}' node='{NODE_MANAGE}' status='completed' sessionid='s1'>\
         <note type='fatal'>x</note></command>"
    )
    .parse()
    .unwrap();
    let mut c = capture("completed", None, None);
    c.notes = Some(vec![ExpectedNote {
        type_: "fatal".into(),
        text: "x".into(),
    }]);
    c.forms = Some(Vec::new());
    assert!(!check_command(&bad_note, &c).is_empty());
}
