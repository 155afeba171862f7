//! The list of everything that can reach an account (ARCHITECTURE.md §4): clients with access first
//! become `session` entries, then grants no listed client logged in with become `access`
//! entries, all in one total, deterministic order.

use std::cmp::Ordering;

use crate::access::{live_tokens, AccessContext, AccessPaths};
use crate::model::{timestamp_from_f64, AccountFacts, ClientRecord, Grant, Timestamp, UserAgent};
use crate::sanitize::{canonical_id, for_people};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A client that logged in over XMPP (`client/<id>`, protocol type `session`).
    Client,
    /// A grant no listed client used to log in (`grant/<id>`, protocol type `access`).
    Grant,
}

impl EntryKind {
    /// The `type` attribute of the protocols.
    pub fn protocol_type(self) -> &'static str {
        match self {
            EntryKind::Client => "session",
            EntryKind::Grant => "access",
        }
    }
}

/// XEP-0494 `<permission status>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Unrestricted,
    Normal,
    Restricted,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Unrestricted => "unrestricted",
            Permission::Normal => "normal",
            Permission::Restricted => "restricted",
        }
    }
}

/// Where an entry came from, so callers can reach the original record or grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Record(usize),
    Grant(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry<'a> {
    pub kind: EntryKind,
    /// The bare id: client id or grant id. The listed id is `kind/` + this.
    pub id: &'a str,
    pub source: Source,
    pub first_seen: Option<Timestamp>,
    pub last_seen: Option<Timestamp>,
    pub expires: Option<Timestamp>,
    pub access: AccessPaths,
    pub permission: Permission,
    pub user_agent: &'a UserAgent,
}

impl Entry<'_> {
    pub fn prefix(&self) -> &'static str {
        match self.kind {
            EntryKind::Client => "client/",
            EntryKind::Grant => "grant/",
        }
    }

    /// `kind/` + the id in its canonical form ([`canonical_id`]): the same in every channel,
    /// and what an XML parser reads back from an attribute. For every id a login can use
    /// today that is the id itself.
    pub fn listed_id(&self) -> String {
        format!("{}{}", self.prefix(), canonical_id(self.id))
    }

    /// Does this entry answer to `kind/id` as someone read it from a listing? Ids are compared
    /// in their canonical forms, so several stored ids may answer to one selector.
    pub fn answers_to(&self, kind: EntryKind, id: &str) -> bool {
        self.kind == kind && canonical_id(self.id) == canonical_id(id)
    }

    /// "Name Version", "Name", or `None`: how admins see the software (sanitised).
    pub fn software_label(&self) -> Option<String> {
        let software = for_people(self.user_agent.software.as_deref()?);
        Some(match self.user_agent.software_version.as_deref() {
            Some(version) => format!("{software} {}", for_people(version)),
            None => software.into_owned(),
        })
    }

    /// The ways in, as admins read them: `password,fast,grant,online`.
    pub fn access_summary(&self) -> String {
        let access = &self.access;
        [
            (access.password.is_some(), "password"),
            (access.fast, "fast"),
            (access.grant.is_some(), "grant"),
            (access.connected, "online"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(",")
    }
}

/// Oldest `last_seen` first, unknown before known; then `first_seen` likewise; then the
/// listed id. Total, so equal timestamps never depend on storage iteration order.
pub fn compare_entries(a: &Entry, b: &Entry) -> Ordering {
    a.last_seen
        .cmp(&b.last_seen)
        .then(a.first_seen.cmp(&b.first_seen))
        .then_with(|| a.prefix().cmp(b.prefix()))
        .then_with(|| a.id.cmp(b.id))
}

/// Expiry of a grant: its own, or else the latest of its live tokens' (none if any token is
/// open-ended, or it has no live tokens).
pub fn grant_expiry(grant: &Grant, now: f64) -> Option<Timestamp> {
    if grant.expires.is_some() {
        return grant.expires.and_then(timestamp_from_f64);
    }
    let mut latest: Option<f64> = None;
    for token in live_tokens(grant, now) {
        let expires = token.expires?;
        latest = Some(latest.map_or(expires, |l| l.max(expires)));
    }
    latest.and_then(timestamp_from_f64)
}

/// Permission a grant carries: `restricted` when none of its live tokens acts with a role as
/// wide as the account's own.
pub fn grant_permission(grant: &Grant, account_role_priority: Option<i64>, now: f64) -> Permission {
    let Some(account) = account_role_priority else { return Permission::Normal };
    let widest = live_tokens(grant, now).map(|t| t.role_priority.unwrap_or(account)).max();
    if widest.is_some_and(|widest| widest < account) {
        Permission::Restricted
    } else {
        Permission::Normal
    }
}

fn session_permission(access: &AccessPaths, ctx: &AccessContext) -> Permission {
    match access.grant {
        Some(index) if access.password.is_none() && !access.fast => {
            grant_permission(ctx.grant(index), ctx.facts().moment.account_role_priority, ctx.facts().moment.now)
        }
        _ => Permission::Unrestricted,
    }
}

/// The first instant, at or after `facts.now`, from which [`list_entries`] may judge something
/// differently because the clock moved (`f64::INFINITY` when nothing depends on it): before it,
/// with the same facts but a later clock, the list is the same. Every comparison of the clock in
/// the listing is one of these thresholds, each crossed once as the clock goes forward:
/// - a grant's or a token's expiry and a tokenless grant's `accessed + tokenless_grant_ttl`,
///   compared with `os.time()` (`floor(now)`): a grant or token is gone from `ceil(x)` on;
/// - a FAST token's `expires_at`, compared with `now` itself: gone once `now` passes it.
///
/// Candidates are taken from every grant, token and FAST token, judged or not (a superset of
/// the thresholds is as exact and only ends a cached listing early). The clock going back is
/// not covered here: a cached listing is used only from the instant it was made on.
pub fn listing_valid_until(facts: &AccountFacts) -> f64 {
    let now = facts.moment.now;
    let mut until = f64::INFINITY;
    let mut candidate = |at: f64| {
        // NaN never compares true: such a time changes no judgement.
        if at >= now && at < until {
            until = at;
        }
    };
    for grant in &facts.grants {
        if let Some(expires) = grant.expires {
            candidate(expires.ceil());
        }
        for token in &grant.tokens {
            if let Some(expires) = token.expires {
                candidate(expires.ceil());
            }
        }
        if let (Some(accessed), Some(ttl)) = (grant.accessed, facts.policy.tokenless_grant_ttl) {
            candidate((accessed + ttl as f64).ceil());
        }
    }
    for token in facts.fast_tokens.values() {
        candidate(token.expires_at);
    }
    until
}

/// Builds the ordered list. Linear in records + grants, plus the sort.
pub fn list_entries(facts: &AccountFacts) -> Vec<Entry<'_>> {
    let ctx = AccessContext::new(facts);
    let mut entries = Vec::with_capacity(facts.records.len() + facts.grants.len());
    let mut grant_used = vec![false; facts.grants.len()];

    for (index, record) in facts.records.iter().enumerate() {
        let access = ctx.access_of(record);
        if !access.any() {
            continue;
        }
        if let Some(grant) = access.grant {
            grant_used[grant] = true;
        }
        entries.push(Entry {
            kind: EntryKind::Client,
            id: &record.id,
            source: Source::Record(index),
            first_seen: record.first_seen,
            last_seen: record.last_seen,
            expires: None,
            permission: session_permission(&access, &ctx),
            access,
            user_agent: &record.user_agent,
        });
    }

    for (index, grant) in facts.grants.iter().enumerate() {
        if grant_used[index] || ctx.grant_index(&grant.id) != Some(index) {
            continue;
        }
        entries.push(Entry {
            kind: EntryKind::Grant,
            id: &grant.id,
            source: Source::Grant(index),
            first_seen: grant.created.and_then(timestamp_from_f64),
            last_seen: grant.accessed.and_then(timestamp_from_f64),
            expires: grant_expiry(grant, facts.moment.now),
            access: AccessPaths { grant: Some(index), ..AccessPaths::default() },
            permission: grant_permission(grant, facts.moment.account_role_priority, facts.moment.now),
            user_agent: &grant.user_agent,
        });
    }

    entries.sort_unstable_by(compare_entries);
    entries
}

/// One listed entry with what it came from, owned: what the public API
/// (`get_active_clients`) shows of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientEntry {
    pub listed_id: String,
    pub kind: EntryKind,
    pub first_seen: Option<Timestamp>,
    pub last_seen: Option<Timestamp>,
    pub expires: Option<Timestamp>,
    pub permission: Permission,
    pub access: AccessPaths,
    pub user_agent: UserAgent,
    /// The client's record (a `client/…` entry).
    pub record: Option<ClientRecord>,
    /// The grant it has access with, if any.
    pub grant: Option<Grant>,
}

/// [`list_entries`], owned.
pub fn client_entries(facts: &AccountFacts) -> Vec<ClientEntry> {
    list_entries(facts)
        .iter()
        .map(|entry| ClientEntry {
            listed_id: entry.listed_id(),
            kind: entry.kind,
            first_seen: entry.first_seen,
            last_seen: entry.last_seen,
            expires: entry.expires,
            permission: entry.permission,
            access: entry.access,
            user_agent: entry.user_agent.clone(),
            record: match entry.source {
                Source::Record(index) => Some(facts.records[index].clone()),
                Source::Grant(_) => None,
            },
            grant: entry.access.grant.map(|index| facts.grants[index].clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ClientRecord, GrantToken, Moment, SessionFact};

    fn password_record(id: &str, first: Option<i64>, last: Option<i64>) -> ClientRecord {
        ClientRecord {
            id: id.into(),
            first_seen: first,
            last_seen: last,
            mechanisms: vec![("SCRAM-SHA-1".into(), 10)],
            ..Default::default()
        }
    }

    fn ids(entries: &[Entry]) -> Vec<String> {
        entries.iter().map(Entry::listed_id).collect()
    }

    #[test]
    fn records_without_access_are_not_listed() {
        let facts = AccountFacts {
            records: vec![
                password_record("keep", Some(1), Some(2)),
                ClientRecord { id: "gone".into(), mechanisms: vec![("OAUTHBEARER".into(), 5)], ..Default::default() },
            ],
            ..Default::default()
        };
        assert_eq!(ids(&list_entries(&facts)), ["client/keep"]);
    }

    #[test]
    fn order_is_total_unknown_last_seen_first_then_first_seen_then_id() {
        let facts = AccountFacts {
            records: vec![
                password_record("d", Some(1), Some(50)),
                password_record("c", Some(9), None),
                password_record("b", Some(1), None),
                password_record("a", Some(1), None),
                password_record("z", None, None),
                password_record("e", Some(1), Some(20)),
            ],
            grants: vec![Grant { id: "a".into(), created: Some(1.0), accessed: Some(20.0), ..Default::default() }],
            ..Default::default()
        };
        let listed = ids(&list_entries(&facts));
        assert_eq!(listed, ["client/z", "client/a", "client/b", "client/c", "client/e", "grant/a", "client/d"]);

        // Same input in another storage order lists the same way.
        let mut reversed = facts.clone();
        reversed.records.reverse();
        assert_eq!(ids(&list_entries(&reversed)), listed);
    }

    #[test]
    fn client_that_logged_in_with_a_grant_is_listed_once_as_a_session() {
        let facts = AccountFacts {
            records: vec![ClientRecord {
                id: "app".into(),
                mechanisms: vec![("OAUTHBEARER".into(), 5)],
                auth_token_id: Some("g1".into()),
                ..Default::default()
            }],
            grants: vec![
                Grant { id: "g1".into(), created: Some(1.0), ..Default::default() },
                Grant { id: "g2".into(), created: Some(2.0), ..Default::default() },
            ],
            ..Default::default()
        };
        let entries = list_entries(&facts);
        assert_eq!(ids(&entries), ["client/app", "grant/g2"]);
        assert_eq!(entries[0].kind, EntryKind::Client);
        assert_eq!(entries[0].access.grant, Some(0));
        assert_eq!(entries[0].permission, Permission::Normal);
        assert_eq!(entries[1].kind, EntryKind::Grant);
    }

    #[test]
    fn access_entries_take_times_expiry_and_agent_from_the_grant() {
        let grant = Grant {
            id: "g".into(),
            created: Some(100.0),
            accessed: Some(200.0),
            expires: None,
            tokens: vec![
                GrantToken { expires: Some(900.0), role_priority: None },
                GrantToken { expires: Some(700.0), role_priority: None },
            ],
            user_agent: UserAgent { software: Some("App".into()), ..Default::default() },
            ..Default::default()
        };
        let facts = AccountFacts { grants: vec![grant], ..Default::default() };
        let entries = list_entries(&facts);
        assert_eq!(entries[0].first_seen, Some(100));
        assert_eq!(entries[0].last_seen, Some(200));
        assert_eq!(entries[0].expires, Some(900));
        assert_eq!(entries[0].user_agent.software.as_deref(), Some("App"));
    }

    #[test]
    fn entries_describe_themselves_for_admins() {
        let facts = AccountFacts {
            records: vec![ClientRecord {
                id: "c".into(),
                full_jid: Some("u@h/r".into()),
                mechanisms: vec![("PLAIN".into(), 1)],
                user_agent: UserAgent {
                    software: Some("Chat".into()),
                    software_version: Some("2.1".into()),
                    ..Default::default()
                },
                ..Default::default()
            }],
            grants: vec![Grant { id: "g".into(), created: Some(1.0), ..Default::default() }],
            moment: Moment {
                sessions: vec![SessionFact { full_jid: Some("u@h/r".into()), client_id: Some("c".into()), ..Default::default() }],
                ..Default::default()
            },
            ..Default::default()
        };
        let entries = list_entries(&facts);
        let summary: Vec<_> = entries.iter().map(|e| (e.software_label(), e.access_summary())).collect();
        assert_eq!(
            summary,
            [(Some("Chat 2.1".to_owned()), "password,online".to_owned()), (None, "grant".to_owned())]
        );
    }

    #[test]
    fn grant_expiry_prefers_the_grant_and_open_ended_tokens_mean_none() {
        let mut grant = Grant { expires: Some(50.0), ..Default::default() };
        grant.tokens.push(GrantToken { expires: Some(900.0), role_priority: None });
        assert_eq!(grant_expiry(&grant, 0.0), Some(50));
        grant.expires = None;
        assert_eq!(grant_expiry(&grant, 0.0), Some(900));
        assert_eq!(grant_expiry(&grant, 900.0), None, "only live tokens count");
        grant.tokens.push(GrantToken { expires: None, role_priority: None });
        assert_eq!(grant_expiry(&grant, 0.0), None);
        assert_eq!(grant_expiry(&Grant::default(), 0.0), None);
    }

    #[test]
    fn permission_reflects_how_the_client_got_in() {
        let narrow = GrantToken { expires: None, role_priority: Some(15) };
        let grant = Grant { id: "g".into(), tokens: vec![narrow.clone()], ..Default::default() };
        assert_eq!(grant_permission(&grant, Some(25), 0.0), Permission::Restricted);
        assert_eq!(grant_permission(&grant, Some(15), 0.0), Permission::Normal);
        let mixed = Grant { tokens: vec![narrow, GrantToken::default()], ..grant.clone() };
        assert_eq!(grant_permission(&mixed, Some(25), 0.0), Permission::Normal);

        // Password beats the grant; a plain live session is unrestricted too.
        let facts = AccountFacts {
            records: vec![
                ClientRecord {
                    id: "pw".into(),
                    mechanisms: vec![("PLAIN".into(), 1)],
                    auth_token_id: Some("g".into()),
                    ..Default::default()
                },
                ClientRecord { id: "live".into(), full_jid: Some("u@h/r".into()), ..Default::default() },
            ],
            grants: vec![grant],
            moment: Moment {
                sessions: vec![SessionFact { full_jid: Some("u@h/r".into()), ..Default::default() }],
                account_role_priority: Some(25),
                ..Default::default()
            },
            ..Default::default()
        };
        let entries = list_entries(&facts);
        assert!(entries.iter().all(|e| e.permission == Permission::Unrestricted), "{entries:?}");
    }
}
