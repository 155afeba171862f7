//! Revocation (SPEC §5): parse the selector, decide over the same list the user sees, and
//! only then hand back the actions to carry out. Nothing changes when the answer is an error.

use std::collections::HashSet;

use crate::access::AccessContext;
use crate::listing::{list_entries, Entry, EntryKind, Source};
use crate::model::AccountFacts;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector<'a> {
    Client(&'a str),
    Grant(&'a str),
    /// `software/<name>` or `software/<name>/<version>`; kept whole because names may
    /// themselves contain `/`.
    Software(&'a str),
}

/// `type/id`: the type is the alphanumeric run before the first `/`, the id is everything
/// after it (and may contain `/`). Anything else selects nothing.
pub fn parse_selector(selector: &str) -> Option<Selector<'_>> {
    let (kind, id) = selector.split_once('/')?;
    if id.is_empty() || kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    match kind {
        "client" => Some(Selector::Client(id)),
        "grant" => Some(Selector::Grant(id)),
        "software" => Some(Selector::Software(id)),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// `revoke_fast_tokens(username, client_id)`.
    RevokeFastTokens { client_id: String },
    /// `revoke_grant(username, grant_id)`.
    RevokeGrant { grant_id: String },
    /// Close the session with this full JID.
    CloseSession { full_jid: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Revoked,
    NotFound,
    /// At least one selected client has password access; those are left untouched.
    PasswordResetRequired,
}

impl Outcome {
    /// Name of the util.error registry entry, `None` on success.
    pub fn error_name(self) -> Option<&'static str> {
        match self {
            Outcome::Revoked => None,
            Outcome::NotFound => Some("item-not-found"),
            Outcome::PasswordResetRequired => Some("password-reset-required"),
        }
    }
}

/// What to do, in order: FAST tokens first, then grants, then sessions, so a client cut off
/// mid-way cannot come straight back with a credential that is about to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationPlan {
    pub outcome: Outcome,
    pub actions: Vec<Action>,
    /// How many selected clients were (to be) revoked and how many need a password reset.
    pub revoked: usize,
    pub password_protected: usize,
}

#[derive(Default)]
struct PlanBuilder {
    fast: Vec<String>,
    grants: Vec<String>,
    sessions: Vec<String>,
    seen: HashSet<Action>,
}

impl PlanBuilder {
    fn add(&mut self, action: Action) {
        if !self.seen.insert(action.clone()) {
            return;
        }
        match action {
            Action::RevokeFastTokens { client_id } => self.fast.push(client_id),
            Action::RevokeGrant { grant_id } => self.grants.push(grant_id),
            Action::CloseSession { full_jid } => self.sessions.push(full_jid),
        }
    }

    fn finish(self) -> Vec<Action> {
        let fast = self.fast.into_iter().map(|client_id| Action::RevokeFastTokens { client_id });
        let grants = self.grants.into_iter().map(|grant_id| Action::RevokeGrant { grant_id });
        let sessions = self.sessions.into_iter().map(|full_jid| Action::CloseSession { full_jid });
        fast.chain(grants).chain(sessions).collect()
    }
}

fn software_matches(entry: &Entry, wanted: &str) -> bool {
    let Some(software) = entry.user_agent.software.as_deref() else { return false };
    if software == wanted {
        return true;
    }
    match (wanted.strip_prefix(software), entry.user_agent.software_version.as_deref()) {
        (Some(rest), Some(version)) => rest.strip_prefix('/') == Some(version),
        _ => false,
    }
}

/// Everything that shuts one listed entry out for good.
fn plan_entry(entry: &Entry, ctx: &AccessContext, plan: &mut PlanBuilder) {
    let facts = ctx.facts();
    match entry.source {
        Source::Record(index) => {
            let record = &facts.records[index];
            plan.add(Action::RevokeFastTokens { client_id: record.id.clone() });
            if let Some(grant) = entry.access.grant {
                plan_grant(&ctx.grant(grant).id, ctx, plan);
            }
            if let Some(jid) = record.full_jid.as_deref().filter(|jid| ctx.is_connected(jid)) {
                plan.add(Action::CloseSession { full_jid: jid.to_owned() });
            }
            for session in &facts.sessions {
                if session.client_id.as_deref() == Some(record.id.as_str()) {
                    plan.add(Action::CloseSession { full_jid: session.full_jid.clone() });
                }
            }
        }
        Source::Grant(index) => plan_grant(&facts.grants[index].id, ctx, plan),
    }
}

/// Revoking a grant also closes every session that logged in with it, and takes away the
/// FAST tokens of clients that only got in through it (they would otherwise walk back in).
fn plan_grant(grant_id: &str, ctx: &AccessContext, plan: &mut PlanBuilder) {
    let facts = ctx.facts();
    plan.add(Action::RevokeGrant { grant_id: grant_id.to_owned() });
    for session in &facts.sessions {
        if session.grant_id.as_deref() == Some(grant_id) {
            plan.add(Action::CloseSession { full_jid: session.full_jid.clone() });
        }
    }
    for record in &facts.records {
        if record.auth_token_id.as_deref() != Some(grant_id) {
            continue;
        }
        if ctx.access_of(record).password.is_none() {
            plan.add(Action::RevokeFastTokens { client_id: record.id.clone() });
        }
        if let Some(jid) = record.full_jid.as_deref().filter(|jid| ctx.is_connected(jid)) {
            plan.add(Action::CloseSession { full_jid: jid.to_owned() });
        }
    }
}

/// Decides a revocation over the account's current facts, selecting from the same list the
/// user sees.
pub fn plan_revocation(facts: &AccountFacts, selector: &str) -> RevocationPlan {
    let entries = list_entries(facts);
    let ctx = AccessContext::new(facts);
    let selected: Vec<&Entry> = match parse_selector(selector) {
        None => Vec::new(),
        Some(Selector::Client(id)) => {
            entries.iter().filter(|e| e.kind == EntryKind::Session && e.id == id).collect()
        }
        // A grant a listed client logged in with is still revocable by its own id.
        Some(Selector::Grant(id)) => match ctx.grant_index(id) {
            Some(index) => {
                let mut plan = PlanBuilder::default();
                plan_grant(&facts.grants[index].id, &ctx, &mut plan);
                return RevocationPlan {
                    outcome: Outcome::Revoked,
                    actions: plan.finish(),
                    revoked: 1,
                    password_protected: 0,
                };
            }
            None => Vec::new(),
        },
        Some(Selector::Software(wanted)) => entries.iter().filter(|e| software_matches(e, wanted)).collect(),
    };

    let mut plan = PlanBuilder::default();
    let (mut revoked, mut password_protected) = (0, 0);
    for entry in &selected {
        if entry.access.password.is_some() {
            password_protected += 1;
        } else {
            revoked += 1;
            plan_entry(entry, &ctx, &mut plan);
        }
    }
    let outcome = if selected.is_empty() {
        Outcome::NotFound
    } else if password_protected > 0 {
        Outcome::PasswordResetRequired
    } else {
        Outcome::Revoked
    };
    RevocationPlan { outcome, actions: plan.finish(), revoked, password_protected }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::fast_token_key_prefix;
    use crate::model::{ClientRecord, FastToken, Grant, SessionFact, UserAgent};

    #[test]
    fn selector_type_is_the_alphanumeric_run_before_the_first_slash() {
        assert_eq!(parse_selector("client/abc"), Some(Selector::Client("abc")));
        assert_eq!(parse_selector("client/a/b/c"), Some(Selector::Client("a/b/c")));
        assert_eq!(parse_selector("grant/x"), Some(Selector::Grant("x")));
        assert_eq!(parse_selector("software/Foo/1.0"), Some(Selector::Software("Foo/1.0")));
        for bad in ["client/", "client", "", "/abc", "nope/abc", "cli-ent/abc", "Client /x", "software/"] {
            assert_eq!(parse_selector(bad), None, "{bad:?}");
        }
    }

    fn ua(software: &str, version: Option<&str>) -> UserAgent {
        UserAgent {
            software: Some(software.into()),
            software_version: version.map(Into::into),
            ..Default::default()
        }
    }

    /// pw: password client; app: OAUTHBEARER + FAST via grant g1, online; fast: FAST-only.
    fn account() -> AccountFacts {
        let mut facts = AccountFacts { now: 100.0, ..Default::default() };
        facts.records.push(ClientRecord {
            id: "pw".into(),
            full_jid: Some("u@h/pw".into()),
            mechanisms: vec![("SCRAM-SHA-1".into(), 10)],
            user_agent: ua("Chat", Some("1.0")),
            ..Default::default()
        });
        facts.records.push(ClientRecord {
            id: "app".into(),
            full_jid: Some("u@h/app".into()),
            mechanisms: vec![("OAUTHBEARER".into(), 10), ("HT-SHA-256-NONE".into(), 11)],
            auth_token_id: Some("g1".into()),
            fast_auth: Some(11),
            user_agent: ua("Chat", Some("2.0")),
            ..Default::default()
        });
        facts.records.push(ClientRecord {
            id: "fast/one".into(),
            full_jid: Some("u@h/f".into()),
            mechanisms: vec![("HT-SHA-256-NONE".into(), 12)],
            user_agent: ua("Other", None),
            ..Default::default()
        });
        for id in ["app", "fast/one"] {
            facts.fast_tokens.insert(
                format!("{}-cur", fast_token_key_prefix(id)),
                FastToken { issued_at: 50.0, expires_at: 500.0 },
            );
        }
        facts.grants.push(Grant { id: "g1".into(), created: Some(1), ..Default::default() });
        facts.grants.push(Grant {
            id: "g2".into(),
            created: Some(1),
            user_agent: ua("Chat", Some("2.0")),
            ..Default::default()
        });
        facts.sessions.push(SessionFact {
            full_jid: "u@h/app".into(),
            client_id: Some("app".into()),
            grant_id: Some("g1".into()),
        });
        facts.sessions.push(SessionFact { full_jid: "u@h/pw".into(), client_id: Some("pw".into()), grant_id: None });
        facts
    }

    fn fast(id: &str) -> Action {
        Action::RevokeFastTokens { client_id: id.into() }
    }
    fn grant(id: &str) -> Action {
        Action::RevokeGrant { grant_id: id.into() }
    }
    fn close(jid: &str) -> Action {
        Action::CloseSession { full_jid: jid.into() }
    }

    #[test]
    fn password_client_needs_a_reset_and_nothing_changes() {
        let plan = plan_revocation(&account(), "client/pw");
        assert_eq!(plan.outcome, Outcome::PasswordResetRequired);
        assert!(plan.actions.is_empty());
    }

    #[test]
    fn passwordless_client_loses_fast_then_grant_then_session() {
        let plan = plan_revocation(&account(), "client/app");
        assert_eq!(plan.outcome, Outcome::Revoked);
        assert_eq!(plan.actions, [fast("app"), grant("g1"), close("u@h/app")]);
    }

    #[test]
    fn ids_may_contain_slashes() {
        let plan = plan_revocation(&account(), "client/fast/one");
        assert_eq!(plan.outcome, Outcome::Revoked);
        assert_eq!(plan.actions, [fast("fast/one")]);
    }

    #[test]
    fn unknown_or_accessless_clients_are_not_found() {
        let mut facts = account();
        facts.records.push(ClientRecord { id: "old".into(), ..Default::default() });
        for selector in ["client/nope", "client/old", "client/", "bogus/pw", "grant/nope", "software/None"] {
            let plan = plan_revocation(&facts, selector);
            assert_eq!(plan.outcome, Outcome::NotFound, "{selector}");
            assert!(plan.actions.is_empty());
        }
    }

    #[test]
    fn revoking_a_grant_closes_its_sessions_and_the_fast_tokens_it_led_to() {
        let plan = plan_revocation(&account(), "grant/g1");
        assert_eq!(plan.outcome, Outcome::Revoked);
        assert_eq!(plan.actions, [fast("app"), grant("g1"), close("u@h/app")]);
        let plan = plan_revocation(&account(), "grant/g2");
        assert_eq!(plan.actions, [grant("g2")]);
    }

    #[test]
    fn software_selects_every_match_and_reports_password_clients() {
        let plan = plan_revocation(&account(), "software/Chat/2.0");
        assert_eq!(plan.outcome, Outcome::Revoked);
        assert_eq!(plan.revoked, 2);
        assert_eq!(plan.actions, [fast("app"), grant("g1"), grant("g2"), close("u@h/app")]);

        let plan = plan_revocation(&account(), "software/Chat");
        assert_eq!(plan.outcome, Outcome::PasswordResetRequired);
        assert_eq!((plan.revoked, plan.password_protected), (2, 1));
        assert!(!plan.actions.contains(&close("u@h/pw")));
        assert!(plan.actions.contains(&grant("g2")));
    }
}
