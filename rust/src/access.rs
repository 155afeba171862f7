//! Which stored clients still have a way into the account (ARCHITECTURE.md §4).

use std::collections::{HashMap, HashSet};

use crate::ids::fast_token_key_prefix;
use crate::model::{AccountFacts, ClientRecord, FastToken, Grant, GrantToken, SessionFact, Timestamp};

/// The ways a client can still reach the account. A record with none of them is not listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccessPaths {
    /// Latest use of a password mechanism at or after the last password change.
    pub password: Option<Timestamp>,
    /// Holds a FAST token that mod_sasl2_fast would still accept, used or not.
    pub fast: bool,
    /// Index into `AccountFacts::grants` of the still-valid grant it logged in with.
    pub grant: Option<usize>,
    /// A bound session of the client is connected or hibernating.
    pub connected: bool,
}

impl AccessPaths {
    pub fn any(&self) -> bool {
        self.password.is_some() || self.fast || self.grant.is_some() || self.connected
    }
}

/// Token mechanisms prove possession of a token, not of the password.
pub fn is_password_mechanism(name: &str) -> bool {
    name != "OAUTHBEARER" && !name.starts_with("HT-")
}

/// Password access: the latest use of a password mechanism at or after the last password
/// change (all of them when the password never changed).
pub fn password_access(record: &ClientRecord, password_updated: Option<Timestamp>) -> Option<Timestamp> {
    record
        .mechanisms
        .iter()
        .filter(|(name, used)| is_password_mechanism(name) && password_updated.is_none_or(|changed| *used >= changed))
        .map(|(_, used)| *used)
        .max()
}

/// `os.time()` at `now`: mod_tokenauth judges grants against whole seconds.
pub fn os_time(now: f64) -> f64 {
    now.floor()
}

/// Tokens of a grant that have not expired at `now` (mod_tokenauth drops those with
/// `expires <= os.time()`).
pub fn live_tokens(grant: &Grant, now: f64) -> impl Iterator<Item = &GrantToken> {
    let now = os_time(now);
    grant.tokens.iter().filter(move |token| token.expires.is_none_or(|expires| expires > now))
}

/// mod_tokenauth's grant validation (`_get_validated_grant_info` behind `get_grant_info`),
/// without its clean-up side effects: a grant without an id or a creation time, older than the
/// last password change, expired, without a tokens table, or without expiry and live tokens
/// for longer than `tokenless_grant_ttl` after its last access, is gone. The e2e contract test
/// compares the two over generated grants in a real Prosody.
pub fn grant_is_valid(grant: &Grant, facts: &AccountFacts) -> bool {
    let now = os_time(facts.moment.now);
    let Some(created) = grant.created else { return false };
    if grant.id_missing || facts.moment.password_updated.is_some_and(|changed| created < changed as f64) {
        return false;
    }
    if grant.expires.is_some_and(|expires| expires <= now) || grant.tokens_missing {
        return false;
    }
    if grant.expires.is_none() && live_tokens(grant, facts.moment.now).next().is_none() {
        if let Some(ttl) = facts.policy.tokenless_grant_ttl {
            // Without an access time mod_tokenauth fails on the arithmetic: never accepted.
            return grant.accessed.is_some_and(|accessed| accessed + ttl as f64 > now);
        }
    }
    true
}

/// Is this stream the client of this record? A SASL2 client by the id it authenticated with
/// (bound or not); a legacy client, which names no id, by the full JID it bound. A JID alone
/// never ties a session to a SASL2 record: resources are reused by other clients.
pub fn session_is_of(session: &SessionFact, record: &ClientRecord) -> bool {
    if record.legacy {
        session.client_id.is_none() && session.full_jid.is_some() && session.full_jid == record.full_jid
    } else {
        session.client_id.as_deref() == Some(record.id.as_str())
    }
}

/// Lookups built once per request so each record costs O(1).
pub struct AccessContext<'a> {
    facts: &'a AccountFacts,
    grant_by_id: HashMap<&'a str, usize>,
    /// Full JIDs of bound sessions that did not name a client (legacy logins).
    bound_anonymous_jids: HashSet<&'a str>,
    bound_client_ids: HashSet<&'a str>,
}

impl<'a> AccessContext<'a> {
    pub fn new(facts: &'a AccountFacts) -> Self {
        let grant_by_id = facts
            .grants
            .iter()
            .enumerate()
            .filter(|(_, grant)| grant_is_valid(grant, facts))
            .map(|(index, grant)| (grant.id.as_str(), index))
            .collect();
        let bound = facts.moment.sessions.iter().filter(|s| s.is_bound());
        let bound_anonymous_jids =
            bound.clone().filter(|s| s.client_id.is_none()).filter_map(|s| s.full_jid.as_deref()).collect();
        let bound_client_ids = bound.filter_map(|s| s.client_id.as_deref()).collect();
        AccessContext { facts, grant_by_id, bound_anonymous_jids, bound_client_ids }
    }

    pub fn facts(&self) -> &'a AccountFacts {
        self.facts
    }

    /// Index of the grant with this id, if it is still valid.
    pub fn grant_index(&self, grant_id: &str) -> Option<usize> {
        self.grant_by_id.get(grant_id).copied()
    }

    pub fn grant(&self, index: usize) -> &'a Grant {
        &self.facts.grants[index]
    }

    /// A bound session of this client (see [`session_is_of`]).
    pub fn is_connected(&self, record: &ClientRecord) -> bool {
        if record.legacy {
            record.full_jid.as_deref().is_some_and(|jid| self.bound_anonymous_jids.contains(jid))
        } else {
            self.bound_client_ids.contains(record.id.as_str())
        }
    }

    pub fn access_of(&self, record: &ClientRecord) -> AccessPaths {
        AccessPaths {
            password: password_access(record, self.facts.moment.password_updated),
            fast: self.holds_valid_fast_token(&record.id),
            grant: record.auth_token_id.as_deref().and_then(|id| self.grant_index(id)),
            connected: self.is_connected(record),
        }
    }

    /// Mirrors mod_sasl2_fast, over tokens read once for the whole list.
    /// Unlike the community module this does not require `fast_auth`: a token issued at a
    /// password login and not used yet still opens the account.
    fn holds_valid_fast_token(&self, client_id: &str) -> bool {
        if self.facts.fast_tokens.is_empty() {
            return false;
        }
        let prefix = fast_token_key_prefix(client_id);
        ["-cur", "-new"].iter().any(|suffix| {
            let key = format!("{prefix}{suffix}");
            self.facts.fast_tokens.get(&key).is_some_and(|token| self.fast_token_is_valid(token))
        })
    }

    /// As mod_sasl2_fast's token tester accepts a token (which decides real access; its
    /// `is_client_fast` refuses a token issued at the very second of the password change, the
    /// tester does not).
    fn fast_token_is_valid(&self, token: &FastToken) -> bool {
        token.expires_at >= self.facts.moment.now
            && self.facts.moment.password_updated.is_none_or(|changed| token.issued_at >= changed as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FastToken, Moment, Policy, SessionFact};

    const P: Timestamp = 1_000;

    fn record(mechanisms: &[(&str, Timestamp)]) -> ClientRecord {
        ClientRecord {
            id: "c1".into(),
            full_jid: Some("u@h/r".into()),
            mechanisms: mechanisms.iter().map(|(m, t)| (m.to_string(), *t)).collect(),
            ..Default::default()
        }
    }

    fn facts() -> AccountFacts {
        AccountFacts { moment: Moment { password_updated: Some(P), now: 5_000.0, ..Default::default() }, ..Default::default() }
    }

    fn with_fast(mut facts: AccountFacts, suffix: &str, issued_at: f64, expires_at: f64) -> AccountFacts {
        facts
            .fast_tokens
            .insert(format!("{}{}", fast_token_key_prefix("c1"), suffix), FastToken { issued_at, expires_at });
        facts
    }

    #[test]
    fn password_mechanism_used_since_password_change_gives_password_access() {
        let f = facts();
        let ctx = AccessContext::new(&f);
        assert_eq!(ctx.access_of(&record(&[("SCRAM-SHA-1", P)])).password, Some(P));
        assert_eq!(ctx.access_of(&record(&[("PLAIN", P + 5), ("SCRAM-SHA-1", P + 1)])).password, Some(P + 5));
    }

    #[test]
    fn password_mechanism_used_before_password_change_gives_nothing() {
        let f = facts();
        let ctx = AccessContext::new(&f);
        assert!(!ctx.access_of(&record(&[("SCRAM-SHA-1", P - 1)])).any());
    }

    #[test]
    fn without_a_recorded_password_change_any_password_login_counts() {
        let mut f = facts();
        f.moment.password_updated = None;
        let ctx = AccessContext::new(&f);
        assert_eq!(ctx.access_of(&record(&[("SCRAM-SHA-1", 1)])).password, Some(1));
    }

    #[test]
    fn token_mechanisms_are_not_password_access() {
        let f = facts();
        let ctx = AccessContext::new(&f);
        let access = ctx.access_of(&record(&[("OAUTHBEARER", P + 1), ("HT-SHA-256-NONE", P + 2)]));
        assert_eq!(access.password, None);
        assert!(!access.any());
    }

    #[test]
    fn current_or_new_fast_token_gives_fast_access_even_unused() {
        for suffix in ["-cur", "-new"] {
            let f = with_fast(facts(), suffix, (P + 1) as f64, 9_000.0);
            let ctx = AccessContext::new(&f);
            let rec = record(&[]); // never logged in with FAST: fast_auth unset
            assert!(ctx.access_of(&rec).fast, "{suffix}");
        }
    }

    #[test]
    fn expired_or_pre_password_change_fast_tokens_do_not_count() {
        let f = with_fast(facts(), "-cur", (P + 1) as f64, 4_999.0);
        assert!(!AccessContext::new(&f).access_of(&record(&[])).fast);
        let f = with_fast(facts(), "-cur", P as f64 - 0.5, 9_000.0);
        assert!(!AccessContext::new(&f).access_of(&record(&[])).fast, "issued before the change");
        // mod_sasl2_fast's token tester accepts a token issued at the change itself (only
        // is_client_fast refuses it): the client can log in, so it is listed.
        let f = with_fast(facts(), "-cur", P as f64, 9_000.0);
        assert!(AccessContext::new(&f).access_of(&record(&[])).fast, "issued at the change itself");
        let f = with_fast(facts(), "-old", (P + 1) as f64, 9_000.0);
        assert!(!AccessContext::new(&f).access_of(&record(&[])).fast, "unknown slot");
    }

    #[test]
    fn grant_access_needs_a_still_valid_grant() {
        let mut f = facts();
        f.grants.push(Grant { id: "g1".into(), created: Some((P) as f64), ..Default::default() });
        let ctx = AccessContext::new(&f);
        let mut rec = record(&[("OAUTHBEARER", P + 1)]);
        rec.auth_token_id = Some("g1".into());
        assert_eq!(ctx.access_of(&rec).grant, Some(0));
        rec.auth_token_id = Some("gone".into());
        assert_eq!(ctx.access_of(&rec).grant, None);
    }

    #[test]
    fn grants_are_judged_unrounded_against_whole_seconds_by_their_store_key() {
        // now = 5000.7: mod_tokenauth compares with os.time() = 5000.
        let mut f = facts();
        f.moment.now = 5_000.7;
        f.policy.tokenless_grant_ttl = Some(100);
        let grant = Grant { id: "key".into(), created: Some(P as f64), accessed: Some(4_950.0), expires: Some(5_000.5), ..Default::default() };
        assert!(grant_is_valid(&grant, &f), "expires half a second after os.time()");
        assert!(!grant_is_valid(&Grant { expires: Some(5_000.0), ..grant.clone() }, &f));
        let tokenless = Grant { expires: None, accessed: Some(4_900.5), ..grant.clone() };
        assert!(grant_is_valid(&tokenless, &f), "accessed + ttl = 5000.5 > 5000");
        assert!(!grant_is_valid(&Grant { id_missing: true, ..grant.clone() }, &f), "no id field");
        assert!(!grant_is_valid(&Grant { created: Some(P as f64 - 0.5), ..grant }, &f));
    }

    #[test]
    fn grants_are_validated_as_mod_tokenauth_does() {
        let mut f = facts(); // P = 1000, now = 5000
        f.policy.tokenless_grant_ttl = Some(100);
        let live = GrantToken { expires: Some(6_000.0), role_priority: None };
        let dead = GrantToken { expires: Some(5_000.0), role_priority: None };
        let grant = Grant { id: "g".into(), created: Some((P) as f64), accessed: Some((P) as f64), tokens: vec![live.clone()], ..Default::default() };
        assert!(grant_is_valid(&grant, &f));
        assert!(!grant_is_valid(&Grant { created: None, ..grant.clone() }, &f), "no creation time");
        assert!(!grant_is_valid(&Grant { created: Some((P - 1) as f64), ..grant.clone() }, &f), "before the password change");
        assert!(!grant_is_valid(&Grant { expires: Some(5_000.0), ..grant.clone() }, &f), "expired");
        assert!(grant_is_valid(&Grant { expires: Some(5_001.0), tokens: vec![], ..grant.clone() }, &f));
        assert!(!grant_is_valid(&Grant { tokens_missing: true, ..grant.clone() }, &f), "old-style grant");
        let tokenless = Grant { tokens: vec![dead], ..grant.clone() };
        assert!(!grant_is_valid(&tokenless, &f), "no live token, accessed long ago");
        assert!(grant_is_valid(&Grant { accessed: Some(4_901.0), ..tokenless.clone() }, &f), "recently accessed");
        assert!(!grant_is_valid(&Grant { accessed: None, ..tokenless.clone() }, &f));
        assert!(grant_is_valid(&tokenless, &AccountFacts { policy: Policy { tokenless_grant_ttl: None, ..f.policy }, ..f.clone() }));

        let mut with_grants = f.clone();
        with_grants.grants = vec![Grant { id: "old".into(), created: Some((P - 1) as f64), ..grant.clone() }, grant];
        let ctx = AccessContext::new(&with_grants);
        assert_eq!(ctx.grant_index("old"), None);
        assert_eq!(ctx.grant_index("g"), Some(1));
    }

    #[test]
    fn a_legacy_client_is_connected_by_its_full_jid() {
        let mut f = facts();
        f.moment.sessions.push(SessionFact { full_jid: Some("u@h/r".into()), ..Default::default() });
        let ctx = AccessContext::new(&f);
        let mut legacy = record(&[]);
        legacy.legacy = true;
        assert!(ctx.access_of(&legacy).connected);
        assert!(!ctx.access_of(&record(&[])).connected, "a SASL2 record is never matched by JID");
        let mut other = legacy.clone();
        other.id = "c2".into();
        other.full_jid = Some("u@h/other".into());
        assert!(!ctx.access_of(&other).connected);
        other.full_jid = None;
        assert!(!ctx.access_of(&other).connected);
    }

    #[test]
    fn sasl2_clients_are_connected_by_client_id_even_without_a_stored_jid() {
        let mut f = facts();
        f.moment.sessions.push(SessionFact { index: 1, full_jid: Some("u@h/x".into()), client_id: Some("c1".into()), grant_id: None });
        f.moment.sessions.push(SessionFact { index: 2, full_jid: None, client_id: Some("c2".into()), grant_id: None });
        let ctx = AccessContext::new(&f);
        let mut rec = record(&[]);
        rec.full_jid = None;
        assert!(ctx.access_of(&rec).connected);
        rec.legacy = true;
        rec.full_jid = Some("u@h/x".into());
        assert!(!ctx.access_of(&rec).connected, "legacy ids are ours, never a session's");
        rec.legacy = false;
        rec.id = "c2".into();
        assert!(!ctx.access_of(&rec).connected, "a stream that has not bound is not connected");
    }
}
