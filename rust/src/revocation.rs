//! Revocation (ARCHITECTURE.md §5): parse the selector, decide over the same list the user sees, and
//! only then hand back the actions to carry out. Nothing changes when the answer is an error.
//!
//! A revoked client must not get back in with any credential it held, and no stream
//! authenticated as it may stay open: bound, hibernating, or authenticated and not yet bound.

use std::collections::{HashMap, HashSet};

use crate::access::{session_is_of, AccessContext};
use crate::listing::{list_entries, Entry, EntryKind, Source};
use crate::model::{AccountFacts, ClientRecord, SessionFact};
use crate::sanitize::{canonical_id, for_people};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector<'a> {
    Client(&'a str),
    Grant(&'a str),
    /// `software/<name>` or `software/<name>/<version>`; kept whole because names may
    /// themselves contain `/`.
    Software(&'a str),
}

impl Selector<'_> {
    pub fn kind(&self) -> &'static str {
        match self {
            Selector::Client(_) => "client",
            Selector::Grant(_) => "grant",
            Selector::Software(_) => "software",
        }
    }
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
    /// Close the stream with this [`SessionFact::index`].
    CloseSession { session: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Revoked,
    NotFound,
    /// At least one selected client has password access; those are left untouched.
    PasswordResetRequired,
    /// The account's client records could not be read, and this selector needs them.
    RecordsUnavailable,
}

impl Outcome {
    /// Name of the util.error registry entry, `None` on success.
    pub fn error_name(self) -> Option<&'static str> {
        match self {
            Outcome::Revoked => None,
            Outcome::NotFound => Some("item-not-found"),
            Outcome::PasswordResetRequired => Some("password-reset-required"),
            Outcome::RecordsUnavailable => Some("internal-server-error"),
        }
    }
}

/// What to do, in order: FAST tokens first, then grants, then sessions, so a client cut off
/// mid-way cannot come straight back with a credential that is about to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationPlan {
    pub outcome: Outcome,
    pub actions: Vec<Action>,
    /// Listed ids of the entries revoked (or to be), and of those that need a password reset.
    pub revoked: Vec<String>,
    pub password_protected: Vec<String>,
    /// Requested ids that name nothing listed (multi-selection plans only).
    pub not_found: Vec<String>,
}

impl RevocationPlan {
    /// How many streams the plan closes.
    pub fn closed_streams(&self) -> usize {
        self.actions.iter().filter(|a| matches!(a, Action::CloseSession { .. })).count()
    }
}

/// What a plan must never touch: the requester's own session, client and grant when it signs
/// out everything else.
#[derive(Debug, Default)]
struct Spared<'a> {
    session: Option<usize>,
    client_id: Option<&'a str>,
    grant_id: Option<&'a str>,
}

#[derive(Default)]
struct PlanBuilder<'a> {
    fast: Vec<String>,
    grants: Vec<String>,
    sessions: Vec<usize>,
    seen: HashSet<Action>,
    spared: Spared<'a>,
}

impl PlanBuilder<'_> {
    fn add(&mut self, action: Action) {
        let spared = match &action {
            Action::RevokeFastTokens { client_id } => self.spared.client_id == Some(client_id.as_str()),
            Action::RevokeGrant { grant_id } => self.spared.grant_id == Some(grant_id.as_str()),
            Action::CloseSession { session } => self.spared.session == Some(*session),
        };
        if spared || !self.seen.insert(action.clone()) {
            return;
        }
        match action {
            Action::RevokeFastTokens { client_id } => self.fast.push(client_id),
            Action::RevokeGrant { grant_id } => self.grants.push(grant_id),
            Action::CloseSession { session } => self.sessions.push(session),
        }
    }

    fn close(&mut self, session: &SessionFact) {
        self.add(Action::CloseSession { session: session.index });
    }

    fn finish(self) -> Vec<Action> {
        let fast = self.fast.into_iter().map(|client_id| Action::RevokeFastTokens { client_id });
        let grants = self.grants.into_iter().map(|grant_id| Action::RevokeGrant { grant_id });
        let sessions = self.sessions.into_iter().map(|session| Action::CloseSession { session });
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

/// Everything that shuts one client out for good: its FAST tokens, its grant, its streams.
fn plan_client(record: &ClientRecord, grant: Option<&str>, ctx: &AccessContext, plan: &mut PlanBuilder) {
    plan.add(Action::RevokeFastTokens { client_id: record.id.clone() });
    if let Some(grant) = grant {
        plan_grant(grant, ctx, plan);
    }
    for session in ctx.facts().moment.sessions.iter().filter(|s| session_is_of(s, record)) {
        plan.close(session);
    }
}

fn plan_entry(entry: &Entry, ctx: &AccessContext, plan: &mut PlanBuilder) {
    let facts = ctx.facts();
    match entry.source {
        Source::Record(index) => {
            let grant = entry.access.grant.map(|grant| ctx.grant(grant).id.as_str());
            plan_client(&facts.records[index], grant, ctx, plan);
        }
        Source::Grant(index) => plan_grant(&facts.grants[index].id, ctx, plan),
    }
}

/// Revoking a grant also closes every stream that authenticated with it, and takes away the
/// FAST tokens of clients that only got in through it (they would otherwise walk back in).
/// Without the client records (unreadable), the clients are known from their streams.
fn plan_grant(grant_id: &str, ctx: &AccessContext, plan: &mut PlanBuilder) {
    let facts = ctx.facts();
    plan.add(Action::RevokeGrant { grant_id: grant_id.to_owned() });
    for session in &facts.moment.sessions {
        if session.grant_id.as_deref() == Some(grant_id) {
            if let Some(client_id) = &session.client_id {
                if !facts.records.iter().any(|r| !r.legacy && &r.id == client_id) {
                    plan.add(Action::RevokeFastTokens { client_id: client_id.clone() });
                }
            }
            plan.close(session);
        }
    }
    // A client that only got in through this grant is cut off whole; one that also knows the
    // password keeps its FAST tokens and its password streams.
    for record in &facts.records {
        if record.auth_token_id.as_deref() == Some(grant_id) && ctx.access_of(record).password.is_none() {
            plan.add(Action::RevokeFastTokens { client_id: record.id.clone() });
            for session in facts.moment.sessions.iter().filter(|s| session_is_of(s, record)) {
                plan.close(session);
            }
        }
    }
}

/// Decides what happens to each selected entry: password clients are only reported.
fn decide(selected: &[&Entry], ctx: &AccessContext, mut plan: PlanBuilder) -> RevocationPlan {
    let (mut revoked, mut password_protected) = (Vec::new(), Vec::new());
    for entry in selected {
        if entry.kind == EntryKind::Client && entry.access.password.is_some() {
            password_protected.push(entry.listed_id());
        } else {
            revoked.push(entry.listed_id());
            plan_entry(entry, ctx, &mut plan);
        }
    }
    let outcome = if selected.is_empty() {
        Outcome::NotFound
    } else if !password_protected.is_empty() {
        Outcome::PasswordResetRequired
    } else {
        Outcome::Revoked
    };
    RevocationPlan { outcome, actions: plan.finish(), revoked, password_protected, not_found: Vec::new() }
}

/// Decides a revocation over the account's current facts, selecting from the same list the
/// user sees. `records_known` is false when the client records could not be read: only a
/// grant can then be revoked.
pub fn plan_revocation(facts: &AccountFacts, selector: &str, records_known: bool) -> RevocationPlan {
    let ctx = AccessContext::new(facts);
    let parsed = parse_selector(selector);
    // A grant a listed client logged in with is still revocable by its own id. Ids are
    // matched in their canonical forms: every valid grant whose id reads as the selector's.
    if let Some(Selector::Grant(id)) = parsed {
        let wanted = canonical_id(id);
        let matching: Vec<&str> = match ctx.grant_index(id) {
            Some(index) => vec![facts.grants[index].id.as_str()],
            None => facts
                .grants
                .iter()
                .enumerate()
                .filter(|(index, grant)| canonical_id(&grant.id) == wanted && ctx.grant_index(&grant.id) == Some(*index))
                .map(|(_, grant)| grant.id.as_str())
                .collect(),
        };
        let mut plan = PlanBuilder::default();
        if matching.is_empty() {
            return decide(&[], &ctx, plan);
        }
        for grant in matching {
            plan_grant(grant, &ctx, &mut plan);
        }
        let revoked = vec![format!("grant/{wanted}")];
        return RevocationPlan {
            outcome: Outcome::Revoked,
            actions: plan.finish(),
            revoked,
            password_protected: Vec::new(),
            not_found: Vec::new(),
        };
    }
    if !records_known && parsed.is_some() {
        return RevocationPlan {
            outcome: Outcome::RecordsUnavailable,
            actions: Vec::new(),
            revoked: Vec::new(),
            password_protected: Vec::new(),
            not_found: Vec::new(),
        };
    }
    let entries = list_entries(facts);
    let selected: Vec<&Entry> = match parsed {
        Some(Selector::Client(id)) => entries.iter().filter(|e| e.answers_to(EntryKind::Client, id)).collect(),
        Some(Selector::Software(wanted)) => {
            // Names are stored sanitised; the selector is read the same way, once.
            let wanted = for_people(wanted);
            entries.iter().filter(|e| software_matches(e, &wanted)).collect()
        }
        Some(Selector::Grant(_)) | None => Vec::new(),
    };
    decide(&selected, &ctx, PlanBuilder::default())
}

/// Revokes the listed entries picked by id (`client/…`, `grant/…`), as one plan: the
/// "Manage clients" command. Ids that name nothing listed are reported, not an error.
pub fn plan_selection(facts: &AccountFacts, listed_ids: &[String]) -> RevocationPlan {
    let ctx = AccessContext::new(facts);
    let entries = list_entries(facts);
    // A submitted form may name thousands of ids: look each up once. Listed ids are canonical
    // (several stored ids may share one); a submitted one is read the same way.
    let mut by_id: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        by_id.entry(e.listed_id()).or_default().push(i);
    }
    let mut picked = vec![false; entries.len()];
    let mut selected: Vec<&Entry> = Vec::new();
    let mut not_found = Vec::new();
    let mut unknown = HashSet::new();
    for wanted in listed_ids {
        match by_id.get(&*canonical_id(wanted)) {
            Some(found) => {
                for &i in found {
                    if !picked[i] {
                        picked[i] = true;
                        selected.push(&entries[i]);
                    }
                }
            }
            None if unknown.insert(wanted.as_str()) => not_found.push(wanted.clone()),
            None => {}
        }
    }
    let mut plan = decide(&selected, &ctx, PlanBuilder::default());
    if selected.is_empty() {
        plan.outcome = if not_found.is_empty() { Outcome::Revoked } else { Outcome::NotFound };
    }
    plan.not_found = not_found;
    plan
}

/// "Sign out all other clients": every other password-less client and grant is revoked and
/// every other stream closed, password clients' streams included (they are reported as
/// needing a password change). The requesting stream, its client and its grant are spared.
pub fn plan_sign_out_others(facts: &AccountFacts, requester: usize) -> RevocationPlan {
    let ctx = AccessContext::new(facts);
    let entries = list_entries(facts);
    let me = facts.moment.sessions.iter().find(|s| s.index == requester);
    let my_record = me.and_then(|me| facts.records.iter().find(|r| session_is_of(me, r)));
    let spared = Spared {
        session: Some(requester),
        client_id: my_record.map(|r| r.id.as_str()).or(me.and_then(|me| me.client_id.as_deref())),
        grant_id: me.and_then(|me| me.grant_id.as_deref()),
    };
    let is_mine = |entry: &Entry| match entry.source {
        Source::Record(index) => my_record.is_some_and(|mine| std::ptr::eq(mine, &facts.records[index])),
        Source::Grant(index) => spared.grant_id == Some(facts.grants[index].id.as_str()),
    };
    let others: Vec<&Entry> = entries.iter().filter(|e| !is_mine(e)).collect();
    let mut plan = PlanBuilder { spared, ..PlanBuilder::default() };
    for session in &facts.moment.sessions {
        plan.close(session);
    }
    let mut result = decide(&others, &ctx, plan);
    if others.is_empty() {
        result.outcome = Outcome::Revoked;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::fast_token_key_prefix;
    use crate::model::{FastToken, Grant, Moment, UserAgent};

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

    fn session(index: usize, jid: Option<&str>, client: Option<&str>, grant: Option<&str>) -> SessionFact {
        SessionFact {
            index,
            full_jid: jid.map(Into::into),
            client_id: client.map(Into::into),
            grant_id: grant.map(Into::into),
        }
    }

    /// pw: password client (session 2); app: OAUTHBEARER + FAST via grant g1 (session 1);
    /// fast/one: FAST-only, authenticated and not bound (session 3); g2: an unused grant.
    fn account() -> AccountFacts {
        let mut facts = AccountFacts { moment: Moment { now: 100.0, ..Default::default() }, ..Default::default() };
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
        facts.grants.push(Grant { id: "g1".into(), created: Some(1.0), ..Default::default() });
        facts.grants.push(Grant {
            id: "g2".into(),
            created: Some(1.0),
            user_agent: ua("Chat", Some("2.0")),
            ..Default::default()
        });
        facts.moment.sessions.push(session(1, Some("u@h/app"), Some("app"), Some("g1")));
        facts.moment.sessions.push(session(2, Some("u@h/pw"), Some("pw"), None));
        facts.moment.sessions.push(session(3, None, Some("fast/one"), None));
        facts
    }

    fn fast(id: &str) -> Action {
        Action::RevokeFastTokens { client_id: id.into() }
    }
    fn grant(id: &str) -> Action {
        Action::RevokeGrant { grant_id: id.into() }
    }
    fn close(session: usize) -> Action {
        Action::CloseSession { session }
    }

    #[test]
    fn password_client_needs_a_reset_and_nothing_changes() {
        let plan = plan_revocation(&account(), "client/pw", true);
        assert_eq!(plan.outcome, Outcome::PasswordResetRequired);
        assert!(plan.actions.is_empty());
        assert_eq!(plan.password_protected, ["client/pw"]);
    }

    #[test]
    fn passwordless_client_loses_fast_then_grant_then_session() {
        let plan = plan_revocation(&account(), "client/app", true);
        assert_eq!(plan.outcome, Outcome::Revoked);
        assert_eq!(plan.actions, [fast("app"), grant("g1"), close(1)]);
    }

    #[test]
    fn a_stream_that_authenticated_and_has_not_bound_is_closed_too() {
        let plan = plan_revocation(&account(), "client/fast/one", true);
        assert_eq!(plan.outcome, Outcome::Revoked);
        assert_eq!(plan.actions, [fast("fast/one"), close(3)]);

        // An unbound stream that authenticated with a grant token goes with the grant.
        let mut facts = account();
        facts.moment.sessions.push(session(4, None, Some("newcomer"), Some("g2")));
        let plan = plan_revocation(&facts, "grant/g2", true);
        assert_eq!(plan.actions, [fast("newcomer"), grant("g2"), close(4)]);
    }

    #[test]
    fn a_reused_resource_does_not_tie_another_clients_session_to_a_record() {
        let mut facts = account();
        // Another SASL2 client now holds the resource "app" used to have.
        facts.moment.sessions[0] = session(1, Some("u@h/app"), Some("someone-else"), None);
        let plan = plan_revocation(&facts, "client/app", true);
        assert_eq!(plan.actions, [fast("app"), grant("g1")]);
    }

    #[test]
    fn unknown_or_accessless_clients_are_not_found() {
        let mut facts = account();
        facts.records.push(ClientRecord { id: "old".into(), ..Default::default() });
        for selector in ["client/nope", "client/old", "client/", "bogus/pw", "grant/nope", "software/None"] {
            let plan = plan_revocation(&facts, selector, true);
            assert_eq!(plan.outcome, Outcome::NotFound, "{selector}");
            assert!(plan.actions.is_empty());
        }
    }

    #[test]
    fn revoking_a_grant_closes_its_sessions_and_the_fast_tokens_it_led_to() {
        let plan = plan_revocation(&account(), "grant/g1", true);
        assert_eq!(plan.outcome, Outcome::Revoked);
        assert_eq!(plan.actions, [fast("app"), grant("g1"), close(1)]);
        let plan = plan_revocation(&account(), "grant/g2", true);
        assert_eq!(plan.actions, [grant("g2")]);
    }

    #[test]
    fn without_client_records_only_grants_can_be_revoked() {
        let mut facts = account();
        facts.records.clear();
        let plan = plan_revocation(&facts, "grant/g1", false);
        assert_eq!(plan.outcome, Outcome::Revoked);
        assert_eq!(plan.actions, [fast("app"), grant("g1"), close(1)], "clients known from their streams");
        for selector in ["client/app", "software/Chat"] {
            let plan = plan_revocation(&facts, selector, false);
            assert_eq!(plan.outcome, Outcome::RecordsUnavailable, "{selector}");
            assert!(plan.actions.is_empty());
        }
        assert_eq!(plan_revocation(&facts, "bogus", false).outcome, Outcome::NotFound);
    }

    #[test]
    fn software_selects_every_match_and_reports_password_clients() {
        let plan = plan_revocation(&account(), "software/Chat/2.0", true);
        assert_eq!(plan.outcome, Outcome::Revoked);
        assert_eq!(plan.revoked.len(), 2);
        assert_eq!(plan.actions, [fast("app"), grant("g1"), grant("g2"), close(1)]);

        let plan = plan_revocation(&account(), "software/Chat", true);
        assert_eq!(plan.outcome, Outcome::PasswordResetRequired);
        assert_eq!((plan.revoked.len(), plan.password_protected.len()), (2, 1));
        assert!(!plan.actions.contains(&close(2)));
        assert!(plan.actions.contains(&grant("g2")));
    }

    #[test]
    fn a_selection_revokes_what_it_can_and_reports_the_rest() {
        let ids = ["client/app", "client/pw", "grant/g2", "client/gone", "client/app"].map(String::from);
        let plan = plan_selection(&account(), &ids);
        assert_eq!(plan.revoked, ["client/app", "grant/g2"]);
        assert_eq!(plan.password_protected, ["client/pw"]);
        assert_eq!(plan.not_found, ["client/gone"]);
        assert_eq!(plan.actions, [fast("app"), grant("g1"), grant("g2"), close(1)]);
        let nothing = plan_selection(&account(), &[]);
        assert_eq!((nothing.outcome, nothing.actions.len()), (Outcome::Revoked, 0));

        // A form naming a great many ids is answered as fast as the list is long.
        let many: Vec<String> = (0..50_000).map(|i| format!("client/junk-{}", i % 25_000)).chain(["client/app".to_owned()]).collect();
        let plan = plan_selection(&account(), &many);
        assert_eq!((plan.revoked.len(), plan.not_found.len()), (1, 25_000));
    }

    #[test]
    fn stored_ids_are_matched_by_their_canonical_form_and_revoked_under_their_stored_id() {
        let mut facts = account();
        // Older data: ids a parser reads back with spaces, and bidi/zero-width characters dropped.
        for (i, id) in ["tab\there", "tab here", "crlf\r\nx", "bidi\u{202E}x\u{200B}"].into_iter().enumerate() {
            let grant_id = format!("gt{i}");
            facts.grants.push(Grant { id: grant_id.clone(), created: Some(1.0), ..Default::default() });
            facts.records.push(ClientRecord { id: id.into(), auth_token_id: Some(grant_id), mechanisms: vec![("OAUTHBEARER".into(), 10)], ..Default::default() });
        }
        let listed: Vec<String> = list_entries(&facts).iter().map(Entry::listed_id).collect();
        for shown in ["client/tab here", "client/crlf x", "client/bidix"] {
            assert!(listed.contains(&shown.to_owned()), "{shown} in {listed:?}");
        }
        // Both records whose id reads "tab here" go, each under its own stored id.
        let plan = plan_revocation(&facts, "client/tab here", true);
        assert_eq!(plan.outcome, Outcome::Revoked);
        assert_eq!(plan.actions, [fast("tab\there"), fast("tab here"), grant("gt0"), grant("gt1")]);
        // A selector holding the raw characters is read the same way.
        assert_eq!(plan_revocation(&facts, "client/crlf\r\nx", true).actions, [fast("crlf\r\nx"), grant("gt2")]);
        assert_eq!(plan_revocation(&facts, "client/bidix", true).actions, [fast("bidi\u{202E}x\u{200B}"), grant("gt3")]);
        let picked = plan_selection(&facts, &["client/tab\there".to_owned(), "client/crlf x".to_owned()]);
        assert_eq!(picked.actions, [fast("tab\there"), fast("tab here"), fast("crlf\r\nx"), grant("gt0"), grant("gt1"), grant("gt2")]);
        assert!(picked.not_found.is_empty());
        // Grants too, by the id as read.
        facts.grants.push(Grant { id: "odd\tgrant".into(), created: Some(1.0), ..Default::default() });
        assert_eq!(plan_revocation(&facts, "grant/odd grant", true).actions, [grant("odd\tgrant")]);
        assert_eq!(plan_revocation(&facts, "grant/odd", true).outcome, Outcome::NotFound);
    }

    #[test]
    fn signing_out_the_others_spares_the_requester_only() {
        // The requester is the password client (session 2).
        let plan = plan_sign_out_others(&account(), 2);
        assert_eq!(plan.actions, [fast("app"), fast("fast/one"), grant("g1"), grant("g2"), close(1), close(3)]);
        assert!(plan.password_protected.is_empty());

        // The requester logged in with grant g1: g1, its FAST tokens and its stream stay; the
        // password client's stream is closed and it is reported.
        let plan = plan_sign_out_others(&account(), 1);
        assert_eq!(plan.actions, [fast("fast/one"), grant("g2"), close(2), close(3)]);
        assert_eq!(plan.password_protected, ["client/pw"]);
        assert!(!plan.revoked.contains(&"client/app".to_owned()));
    }
}
