//! The stanza errors the module answers with: each name's XMPP type, condition and text, and
//! the application condition some of them carry. The Lua module only hands these to
//! util.stanza (`st.error_reply(stanza, error)`) or mod_adhoc.

use crate::adhoc::Step;

/// XEP-0050's namespace, for `<bad-action/>`.
pub const XMLNS_COMMANDS: &str = "http://jabber.org/protocol/commands";

/// One stanza error, in the shape util.error and `st.error_reply` take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaError {
    /// `cancel`, `modify`, `auth` or `wait`.
    pub kind: &'static str,
    pub condition: &'static str,
    pub text: Option<String>,
    /// An application-specific condition: its namespace and element name.
    pub extra: Option<(String, &'static str)>,
}

impl StanzaError {
    fn new(kind: &'static str, condition: &'static str, text: Option<&str>) -> Self {
        Self { kind, condition, text: text.map(str::to_owned), extra: None }
    }
}

/// The error called `name`, as answered to a request of namespace `namespace` (the
/// application condition of `password-reset-required` lives in the request's namespace).
///
/// Names: the community module's revocation errors (`item-not-found`,
/// `password-reset-required`, `internal-server-error`), and `forbidden`, `missing-id` (a
/// revoke without an id), `list-failed` (the clients could not be read), `no-such-command`.
/// Any other name reads as util.error reads a name its registry lacks: `undefined-condition`.
pub fn named(name: &str, namespace: &str) -> StanzaError {
    match name {
        "item-not-found" => StanzaError::new("cancel", "item-not-found", Some("Client not found")),
        "internal-server-error" => StanzaError::new("wait", "internal-server-error", Some("Unable to revoke client access")),
        "password-reset-required" => StanzaError {
            extra: Some((namespace.to_owned(), "password-reset-required")),
            ..StanzaError::new("cancel", "service-unavailable", Some("Password reset required"))
        },
        "forbidden" => StanzaError::new("auth", "forbidden", None),
        "missing-id" => StanzaError::new("modify", "bad-request", Some("Missing client id")),
        "list-failed" => StanzaError::new("wait", "internal-server-error", None),
        "no-such-command" => StanzaError::new("cancel", "item-not-found", Some("No such command")),
        _ => StanzaError::new("cancel", "undefined-condition", None),
    }
}

/// The error a revoke request is refused with before anything is looked up: one that names no
/// client (no `id`, or an empty one; its bytes, as they came).
pub fn unnamed_client(id: Option<&[u8]>) -> Option<StanzaError> {
    id.is_none_or(<[u8]>::is_empty).then(|| named("missing-id", ""))
}

/// The text an admin reads when a revocation fails with the error called `name`: the error's
/// own text, or the name when it has none.
pub fn revocation_failure_text(name: &str) -> String {
    named(name, "").text.unwrap_or_else(|| name.to_owned())
}

/// The stream error a stream is closed with, `(condition, text)`: `revoked` (its access was
/// revoked) or `deleted` (its account was deleted); any other name reads as `revoked`.
pub fn stream_closed(name: &str) -> (&'static str, &'static str) {
    match name {
        "deleted" => ("not-authorized", "Account deleted"),
        _ => ("not-authorized", "Client access revoked"),
    }
}

/// A stream over its request budget, which refills in `wait` seconds.
pub fn over_budget(wait: f64) -> StanzaError {
    StanzaError { text: Some(crate::budget::over_budget_text(wait)), ..StanzaError::new("wait", "resource-constraint", None) }
}

/// The error an ad-hoc command step the command cannot take is refused with, if it is one:
/// `bad-request`, and for an action the command does not offer XEP-0050's `<bad-action/>`.
pub fn bad_step(step: Step) -> Option<StanzaError> {
    let text = step.error_text()?;
    Some(StanzaError {
        extra: (step == Step::BadAction).then(|| (XMLNS_COMMANDS.to_owned(), "bad-action")),
        ..StanzaError::new("modify", "bad-request", Some(text))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_streams_hear_why() {
        assert_eq!(stream_closed("revoked"), ("not-authorized", "Client access revoked"));
        assert_eq!(stream_closed("deleted"), ("not-authorized", "Account deleted"));
    }

    #[test]
    fn revocation_errors_keep_the_community_modules_words() {
        let e = named("password-reset-required", "urn:xmpp:cam:0");
        assert_eq!((e.kind, e.condition, e.text.as_deref()), ("cancel", "service-unavailable", Some("Password reset required")));
        assert_eq!(e.extra, Some(("urn:xmpp:cam:0".to_owned(), "password-reset-required")));
        assert_eq!(named("item-not-found", "x").text.as_deref(), Some("Client not found"));
        assert_eq!(named("internal-server-error", "x").kind, "wait");
        assert_eq!(named("nonsense", "x").condition, "undefined-condition");
    }

    #[test]
    fn a_revoke_request_names_a_client() {
        assert_eq!(unnamed_client(None).and_then(|e| e.text).as_deref(), Some("Missing client id"));
        assert_eq!(unnamed_client(Some(b"")).map(|e| e.condition), Some("bad-request"));
        assert_eq!(unnamed_client(Some(b"client/x")), None);
        assert_eq!(unnamed_client(Some(b"\xff")), None, "not UTF-8, yet it names something: not found later");
    }

    #[test]
    fn an_admin_reads_the_text_or_else_the_name() {
        assert_eq!(revocation_failure_text("item-not-found"), "Client not found");
        assert_eq!(revocation_failure_text("service-unavailable"), "service-unavailable");
    }

    #[test]
    fn steps_and_budgets() {
        let e = bad_step(Step::BadAction).unwrap();
        assert_eq!((e.kind, e.condition, e.text.as_deref()), ("modify", "bad-request", Some("Unknown command action")));
        assert_eq!(e.extra, Some((XMLNS_COMMANDS.to_owned(), "bad-action")));
        let e = bad_step(Step::NotSubmitted).unwrap();
        assert_eq!((e.condition, e.extra), ("bad-request", None));
        assert_eq!(bad_step(Step::Submit), None);
        let e = over_budget(1.2);
        assert_eq!((e.kind, e.condition, e.text.as_deref()), ("wait", "resource-constraint", Some("Too many requests; try again in 2 s")));
    }
}
