//! Bodies of the JSON API. The list carries the fields of the XEP-0494 list; text a client
//! chose goes through the one sanitiser, like everywhere people may read it.

use std::fmt::Write as _;

use super::ApiError;
use crate::listing::{Entry, EntryKind};
use crate::model::Timestamp;
use crate::render::format_datetime;
use crate::sanitize::for_people;

/// A JSON string literal. Besides what JSON requires, `<`, `>`, `&` and the line separators
/// are escaped, so a body is inert even where someone pastes it into HTML or a script.
pub fn string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\u{7f}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn key(out: &mut String, name: &str) {
    string(out, name);
    out.push(':');
}

fn optional_text(out: &mut String, name: &str, value: Option<&str>) {
    key(out, name);
    match value {
        Some(value) => string(out, &for_people(value)),
        None => out.push_str("null"),
    }
}

fn time(out: &mut String, name: &str, value: Option<Timestamp>) {
    key(out, name);
    match value.and_then(format_datetime) {
        Some(text) => string(out, &text),
        None => out.push_str("null"),
    }
}

/// One entry, in XEP-0494's terms: `id`, `type` (session|access), `connected`, `first_seen`,
/// `last_seen`, `expires` (XEP-0082 UTC or null), `auth` (of password, fast, grant),
/// `permission`, `user_agent` {software, software_version, uri, device} and `current` (the
/// requester's own grant).
fn entry(out: &mut String, entry: &Entry, current_grant: Option<&str>) {
    out.push('{');
    key(out, "id");
    string(out, &entry.listed_id());
    out.push(',');
    key(out, "type");
    string(out, entry.kind.protocol_type());
    out.push(',');
    key(out, "connected");
    out.push_str(if entry.access.connected { "true" } else { "false" });
    out.push(',');
    time(out, "first_seen", entry.first_seen);
    out.push(',');
    time(out, "last_seen", entry.last_seen);
    out.push(',');
    time(out, "expires", entry.expires);
    out.push(',');
    key(out, "auth");
    let ways = [(entry.access.password.is_some(), "password"), (entry.access.fast, "fast"), (entry.access.grant.is_some(), "grant")];
    out.push('[');
    for (index, (_, name)) in ways.iter().filter(|(on, _)| *on).enumerate() {
        if index > 0 {
            out.push(',');
        }
        string(out, name);
    }
    out.push_str("],");
    key(out, "permission");
    string(out, entry.permission.as_str());
    out.push(',');
    key(out, "user_agent");
    let agent = entry.user_agent;
    out.push('{');
    optional_text(out, "software", agent.software.as_deref());
    out.push(',');
    optional_text(out, "software_version", agent.software_version.as_deref());
    out.push(',');
    optional_text(out, "uri", agent.uri.as_deref());
    out.push(',');
    optional_text(out, "device", agent.device.as_deref());
    out.push_str("},");
    key(out, "current");
    out.push_str(if entry.kind == EntryKind::Grant && current_grant == Some(entry.id) { "true" } else { "false" });
    out.push('}');
}

/// `{"clients": [...]}` in the list's order.
pub fn clients_body(entries: &[Entry], current_grant: Option<&str>) -> String {
    let mut out = String::with_capacity(256 * entries.len() + 16);
    out.push_str("{\"clients\":[");
    for (index, item) in entries.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        entry(&mut out, item, current_grant);
    }
    out.push_str("]}");
    out
}

/// `{"error": code, "text": text}`.
pub fn error_body(error: ApiError) -> String {
    let mut out = String::from("{");
    key(&mut out, "error");
    string(&mut out, error.code());
    out.push(',');
    key(&mut out, "text");
    string(&mut out, error.text());
    out.push('}');
    out
}

/// After a revocation: `{"revoked": id}`.
pub fn revoked_body(id: &str) -> String {
    let mut out = String::from("{");
    key(&mut out, "revoked");
    string(&mut out, id);
    out.push('}');
    out
}

/// After "sign out others": how many clients lost access, how many need a password change,
/// how many connections were closed.
pub fn signed_out_body(revoked: usize, password_reset_required: usize, closed: usize) -> String {
    format!("{{\"revoked\":{revoked},\"password_reset_required\":{password_reset_required},\"closed_connections\":{closed}}}")
}
