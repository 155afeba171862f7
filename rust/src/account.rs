//! One account's state, owned in one place: its client records (each held once), what is known
//! of its credentials (grants, FAST tokens) and for how long that stays true, and the record
//! changes not stored yet. The Lua module reads and writes storage when this says so.
//!
//! Decisions made here: how a login changes a record and whether that must be stored at once,
//! how legacy clients are recognised, which records go when an account is full or past
//! retention, and what each event makes stale.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use crate::access::AccessContext;
use crate::ids::generate_client_id;
use crate::model::{AccountFacts, ClientRecord, FastToken, Grant, Seconds, SessionFact, Timestamp, UserAgent};

/// What the admin chose (module options), fixed for the life of the module.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Most records kept per account.
    pub max_clients: usize,
    /// How long a record of a client without access is kept after it was last seen; `None`:
    /// forever.
    pub retention: Option<Seconds>,
    /// Store the full JID of SASL2 clients (legacy clients are found by it and always keep it).
    pub store_full_jids: bool,
    pub store_device_names: bool,
    /// mod_tokenauth's option, to judge grants as it does.
    pub tokenless_grant_ttl: Option<Seconds>,
    /// Grants read from storage are reused this long (only access times and tokens added to an
    /// existing grant change without an event).
    pub grant_cache_ttl: f64,
    /// Record updates that change no client's access wait this long to be stored.
    pub write_delay: f64,
    pub notify_new_clients: bool,
    /// After a notice, the next one waits this long and summarises what came meanwhile.
    pub notice_interval: f64,
    /// List and ad-hoc requests a stream may make per minute (0: no limit).
    pub requests_per_minute: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_clients: 100,
            retention: Some(30 * 86_400),
            store_full_jids: true,
            store_device_names: true,
            tokenless_grant_ttl: Some(14 * 86_400),
            grant_cache_ttl: 60.0,
            write_delay: 10.0,
            notify_new_clients: false,
            notice_interval: 600.0,
            requests_per_minute: 30,
        }
    }
}

/// Longest wait between attempts to store records after failures.
pub const MAX_RETRY_DELAY: f64 = 300.0;

/// The parts of an account's facts that live in storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Our `clients` store.
    Records,
    /// mod_tokenauth's `auth_tokens` store.
    Grants,
    /// mod_sasl2_fast's `fast_tokens` store.
    FastTokens,
}

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Part::Records => "records",
            Part::Grants => "grants",
            Part::FastTokens => "fast_tokens",
        }
    }
}

/// What the facts are needed for; it decides how fresh they must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Recording a login: the records, and the credentials only when the account is full.
    Login,
    /// Listing, statistics: cached credentials are good enough within their lifetime.
    Listing,
    /// Revoking, pruning: decisions that delete things see storage as it is now.
    Change,
}

/// Events that make cached credentials stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheEvent {
    /// A login: mod_sasl2_fast may have issued, rotated or spent a token of the client.
    Login,
    /// A login with a grant's token: mod_tokenauth moved its access time.
    GrantLogin,
    /// mod_tokenauth created or revoked a grant or a token.
    GrantsChanged,
    /// We revoked FAST tokens or grants.
    Revoked,
}

impl CacheEvent {
    /// The events the Lua module passes on: mod_tokenauth's, and its own revocations.
    pub fn from_name(name: &str) -> Option<CacheEvent> {
        match name {
            "token-grant-created" | "token-grant-revoked" | "token-revoked" => Some(CacheEvent::GrantsChanged),
            "revoked" => Some(CacheEvent::Revoked),
            _ => None,
        }
    }
}

/// The facts of one moment: streams, password change, role, clock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Moment {
    pub sessions: Vec<SessionFact>,
    pub password_updated: Option<Timestamp>,
    pub account_role_priority: Option<i64>,
    pub now: f64,
}

/// A successful login (or the late bind of one), as the Lua module saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Login {
    /// SASL2 `<user-agent id>`; `None` for a legacy login (an id is made up for it).
    pub client_id: Option<String>,
    /// `None` while the stream has not bound a resource.
    pub full_jid: Option<String>,
    pub mechanism: Option<String>,
    pub fast: bool,
    pub grant_id: Option<String>,
    /// SASL2 `<software>` and `<device>`.
    pub user_agent: UserAgent,
    /// `data.oauth2_client` of the grant the login used (name, id, version, uri).
    pub oauth_client: Option<UserAgent>,
    pub at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteTiming {
    /// The client's access changed: store it before the login completes.
    Now,
    /// Only times, JID or user agent changed: store with the next batch.
    Later,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoginOutcome {
    pub client_id: String,
    pub is_new: bool,
    pub write: WriteTiming,
    /// Records dropped to stay within `max_clients`.
    pub evicted: Vec<String>,
    /// The account's other streams are to be told about this client.
    pub announce: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// The records have not been read (storage failed): the login waits for the next read.
    RecordsMissing,
    /// The account was deleted: nothing more is recorded for it.
    Deleted,
}

/// A set of record changes to store together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBatch {
    pub serial: u64,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PruneOutcome {
    /// Records deleted (or that would be): past retention, then over the limit.
    pub deleted: Vec<String>,
    /// Records stripped of what the admin turned off storing.
    pub minimised: usize,
}

/// Record changes not stored yet, by record id, with the serial of their latest change so a
/// store that succeeds only clears what it carried.
#[derive(Debug, Default)]
struct PendingWrites {
    serial: u64,
    changed: BTreeMap<String, u64>,
    removed: BTreeMap<String, u64>,
    failures: u32,
}

#[derive(Debug)]
pub struct Account {
    policy: Policy,
    facts: AccountFacts,
    /// Record id → position in `facts.records`.
    index: HashMap<String, usize>,
    records_loaded: bool,
    grants_loaded_at: Option<f64>,
    fast_tokens_loaded: bool,
    /// An event changed the grants or FAST tokens in storage since they were read. Stale
    /// credentials still tell which *other* clients hold one (a login only changes its own).
    grants_stale: bool,
    fast_tokens_stale: bool,
    writes: PendingWrites,
    deleted: bool,
}

/// What a record says about the client's access, as far as a login can change it.
#[derive(PartialEq)]
struct RecordedAccess {
    password: bool,
    grant: Option<String>,
    fast: bool,
}

fn recorded_access(record: &ClientRecord, password_updated: Option<Timestamp>) -> RecordedAccess {
    RecordedAccess {
        password: record.mechanisms.iter().any(|(name, used)| {
            crate::access::is_password_mechanism(name) && password_updated.is_none_or(|changed| *used >= changed)
        }),
        grant: record.auth_token_id.clone(),
        fast: record.fast_auth.is_some(),
    }
}

impl Account {
    pub fn new(policy: Policy) -> Self {
        Account {
            policy,
            facts: AccountFacts { tokenless_grant_ttl: policy.tokenless_grant_ttl, ..Default::default() },
            index: HashMap::new(),
            records_loaded: false,
            grants_loaded_at: None,
            fast_tokens_loaded: false,
            grants_stale: false,
            fast_tokens_stale: false,
            writes: PendingWrites::default(),
            deleted: false,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn records_loaded(&self) -> bool {
        self.records_loaded
    }

    pub fn records(&self) -> &[ClientRecord] {
        &self.facts.records
    }

    pub fn record(&self, id: &str) -> Option<&ClientRecord> {
        self.index.get(id).map(|&i| &self.facts.records[i])
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    // ------------------------------------------------------------------ what to read

    /// The parts to read from storage before acting for `purpose` at `now`.
    pub fn missing(&self, purpose: Purpose, now: f64) -> Vec<Part> {
        let mut parts = Vec::new();
        if !self.records_loaded {
            parts.push(Part::Records);
        }
        let grants_fresh =
            !self.grants_stale && self.grants_loaded_at.is_some_and(|at| now - at < self.policy.grant_cache_ttl);
        let (grants, fast) = match purpose {
            Purpose::Listing => (!grants_fresh, !self.fast_tokens_loaded || self.fast_tokens_stale),
            Purpose::Change => (true, true),
            // Only a full account needs to know which clients hold credentials (they are never
            // dropped); stale ones do for that.
            Purpose::Login => {
                let full = self.records_loaded && self.facts.records.len() >= self.policy.max_clients;
                (full && self.grants_loaded_at.is_none(), full && !self.fast_tokens_loaded)
            }
        };
        if grants {
            parts.push(Part::Grants);
        }
        if fast {
            parts.push(Part::FastTokens);
        }
        parts
    }

    /// Parts never read.
    pub fn unread(&self) -> Vec<Part> {
        let mut parts = Vec::new();
        if !self.records_loaded {
            parts.push(Part::Records);
        }
        if self.grants_loaded_at.is_none() {
            parts.push(Part::Grants);
        }
        if !self.fast_tokens_loaded {
            parts.push(Part::FastTokens);
        }
        parts
    }

    /// The `clients` store as read. A record loaded for the first time is cleaned (the one
    /// sanitiser, the length limits) and stripped of what the admin does not want stored (then
    /// written back later).
    pub fn load_records(&mut self, records: Vec<ClientRecord>) {
        if self.records_loaded {
            return; // ours is newer: every change since the read went through here
        }
        self.facts.records.clear();
        self.index.clear();
        for mut record in records {
            let changed = record.user_agent.needs_cleaning() || needs_minimising(&record, &self.policy);
            if changed {
                record.user_agent = std::mem::take(&mut record.user_agent).cleaned();
                self.minimise(&mut record);
            }
            let id = record.id.clone();
            match self.index.get(&id) {
                Some(&i) => self.facts.records[i] = record,
                None => {
                    self.index.insert(id.clone(), self.facts.records.len());
                    self.facts.records.push(record);
                }
            }
            if changed {
                self.mark_changed(&id);
            }
        }
        self.records_loaded = true;
    }

    pub fn load_grants(&mut self, grants: Vec<Grant>, now: f64) {
        self.facts.grants = grants
            .into_iter()
            .map(|grant| Grant { user_agent: grant.user_agent.cleaned(), ..grant })
            .collect();
        self.grants_loaded_at = Some(now);
        self.grants_stale = false;
    }

    pub fn load_fast_tokens(&mut self, tokens: HashMap<String, FastToken>) {
        self.facts.fast_tokens = tokens;
        self.fast_tokens_loaded = true;
        self.fast_tokens_stale = false;
    }

    /// What each event makes stale.
    pub fn note(&mut self, event: CacheEvent) {
        match event {
            CacheEvent::Login => self.fast_tokens_stale = true,
            CacheEvent::GrantLogin | CacheEvent::GrantsChanged => self.grants_stale = true,
            CacheEvent::Revoked => {
                self.fast_tokens_stale = true;
                self.grants_stale = true;
            }
        }
    }

    /// The account is gone: nothing is recorded or stored for it any more.
    pub fn mark_deleted(&mut self) {
        self.deleted = true;
        self.writes = PendingWrites::default();
    }

    /// The facts at `moment`, for listing and planning. Parts never read are empty: callers
    /// read what [`Account::missing`] names first.
    pub fn facts_at(&mut self, moment: Moment) -> &AccountFacts {
        self.facts.sessions = moment.sessions;
        self.facts.password_updated = moment.password_updated;
        self.facts.account_role_priority = moment.account_role_priority;
        self.facts.now = moment.now;
        &self.facts
    }

    // ------------------------------------------------------------------ logins

    /// Applies a successful login (or the late bind of one) to the client's record.
    pub fn record_login(&mut self, login: Login, moment: Moment) -> Result<LoginOutcome, NotReady> {
        self.note(CacheEvent::Login);
        if login.grant_id.is_some() {
            self.note(CacheEvent::GrantLogin);
        }
        if self.deleted {
            return Err(NotReady::Deleted);
        }
        if !self.records_loaded {
            return Err(NotReady::RecordsMissing);
        }
        self.facts_at(moment);
        let existing = match &login.client_id {
            Some(id) => {
                // A generated legacy id is ours, not the client's: a SASL2 login naming it
                // gets a record of its own, and the legacy client keeps its history under a
                // fresh id.
                if self.index.get(id).is_some_and(|&i| self.facts.records[i].legacy) {
                    self.rekey_legacy(id);
                }
                self.index.get(id).copied()
            }
            None => login.full_jid.as_deref().and_then(|jid| self.find_legacy(jid)),
        };
        let (position, is_new) = match existing {
            Some(position) => (position, false),
            None => {
                let id = match &login.client_id {
                    Some(id) => id.clone(),
                    None => self.fresh_id(),
                };
                let record = ClientRecord { id: id.clone(), first_seen: Some(login.at), legacy: login.client_id.is_none(), ..Default::default() };
                self.index.insert(id, self.facts.records.len());
                self.facts.records.push(record);
                (self.facts.records.len() - 1, true)
            }
        };
        let password_updated = self.facts.password_updated;
        let policy = self.policy;
        let record = &mut self.facts.records[position];
        let before = recorded_access(record, password_updated);
        merge_login(record, &login, &policy);
        let access_changed = recorded_access(record, password_updated) != before;
        let client_id = record.id.clone();
        self.mark_changed(&client_id);
        let evicted = if is_new { self.evict_over_limit(Some(&client_id)) } else { Vec::new() };
        Ok(LoginOutcome {
            write: if is_new || access_changed { WriteTiming::Now } else { WriteTiming::Later },
            announce: is_new && login.grant_id.is_none() && self.policy.notify_new_clients,
            client_id,
            is_new,
            evicted,
        })
    }

    /// The legacy record last seen with this full JID (resources are all a legacy client
    /// tells about itself).
    fn find_legacy(&self, full_jid: &str) -> Option<usize> {
        self.facts
            .records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.legacy && r.full_jid.as_deref() == Some(full_jid))
            .max_by(|(_, a), (_, b)| a.last_activity().cmp(&b.last_activity()).then_with(|| b.id.cmp(&a.id)))
            .map(|(i, _)| i)
    }

    /// Moves the legacy record `id` to a fresh generated id (stored under the new key, removed
    /// under the old one).
    fn rekey_legacy(&mut self, id: &str) {
        let Some(position) = self.index.remove(id) else { return };
        let fresh = self.fresh_id();
        self.facts.records[position].id = fresh.clone();
        self.index.insert(fresh.clone(), position);
        self.mark_removed(id);
        self.mark_changed(&fresh);
    }

    fn fresh_id(&self) -> String {
        loop {
            // The OS random source failing is not something a login can recover from; the
            // glue turns the panic into a Lua error and the login is left unrecorded.
            let id = generate_client_id().expect("the OS random source failed");
            if !self.index.contains_key(&id) {
                return id;
            }
        }
    }

    /// Streams to tell that `client_id` got access: every bound stream of the account at the
    /// last moment seen, but the client's own.
    pub fn notice_recipients(&self, client_id: &str) -> Vec<usize> {
        let record = self.record(client_id);
        self.facts
            .sessions
            .iter()
            .filter(|s| s.is_bound() && !record.is_some_and(|r| crate::access::session_is_of(s, r)))
            .map(|s| s.index)
            .collect()
    }

    /// Streams to tell what came in `since` (a notice summary): every bound stream at `moment`
    /// but those of clients first seen since then.
    pub fn summary_recipients(&mut self, moment: Moment, since: Timestamp) -> Vec<usize> {
        self.facts_at(moment);
        let newcomers: Vec<&ClientRecord> = self.facts.records.iter().filter(|r| r.first_seen.is_some_and(|t| t >= since)).collect();
        self.facts
            .sessions
            .iter()
            .filter(|s| s.is_bound() && !newcomers.iter().any(|r| crate::access::session_is_of(s, r)))
            .map(|s| s.index)
            .collect()
    }

    // ------------------------------------------------------------------ limits, retention

    /// Drops records until the account is within `max_clients`: first those without access
    /// (least recently seen first), then those of clients seen only once (newest first, so a
    /// flood of one-shot logins replaces itself and never pushes out established clients),
    /// then the least recently seen. Records of clients holding a FAST token or a grant, or
    /// connected, are never dropped (they are credentials and streams the user must see), nor
    /// is `keep`.
    fn evict_over_limit(&mut self, keep: Option<&str>) -> Vec<String> {
        let doomed = self.over_limit(keep, &[]);
        self.remove_records(&doomed);
        doomed
    }

    /// Which records the limit drops, leaving out those already `going`.
    fn over_limit(&self, keep: Option<&str>, going: &[String]) -> Vec<String> {
        let count = self.facts.records.len() - going.len();
        if count <= self.policy.max_clients {
            return Vec::new();
        }
        let ctx = AccessContext::new(&self.facts);
        let fast_known = self.fast_tokens_loaded;
        let grants_known = self.grants_loaded_at.is_some();
        let mut candidates: Vec<(u8, Option<Reverse<Timestamp>>, Option<Timestamp>, &str)> = self
            .facts
            .records
            .iter()
            .filter(|r| Some(r.id.as_str()) != keep && !going.contains(&r.id))
            .filter_map(|record| {
                let access = ctx.access_of(record);
                // Unknown credentials are assumed held: only a legacy client (its id is ours,
                // so it cannot hold FAST tokens) without a grant id is safe to judge blind.
                let may_hold = (!fast_known && !record.legacy) || (!grants_known && record.auth_token_id.is_some());
                if access.fast || access.grant.is_some() || access.connected || may_hold {
                    return None;
                }
                let (tier, newest_first) = if !access.any() {
                    (0, None)
                } else if seen_once(record) {
                    (1, record.first_seen.map(Reverse))
                } else {
                    (2, None)
                };
                Some((tier, newest_first, record.last_activity(), record.id.as_str()))
            })
            .collect();
        candidates.sort_unstable();
        candidates.into_iter().take(count - self.policy.max_clients).map(|(.., id)| id.to_owned()).collect()
    }

    /// Records whose client has no access and was last seen before the retention period.
    fn past_retention(&self) -> Vec<String> {
        let Some(retention) = self.policy.retention else { return Vec::new() };
        let ctx = AccessContext::new(&self.facts);
        let horizon = self.facts.now - retention as f64;
        self.facts
            .records
            .iter()
            .filter(|r| r.last_activity().is_none_or(|t| (t as f64) <= horizon) && !ctx.access_of(r).any())
            .map(|r| r.id.clone())
            .collect()
    }

    /// Retention, the limit and minimisation over the whole account (the daily job and
    /// `clients prune`). Needs every part read for [`Purpose::Change`].
    pub fn prune(&mut self, moment: Moment, dry_run: bool) -> Result<PruneOutcome, NotReady> {
        if self.deleted {
            return Err(NotReady::Deleted);
        }
        if !self.records_loaded {
            return Err(NotReady::RecordsMissing);
        }
        self.facts_at(moment);
        let mut deleted = self.past_retention();
        let over = self.over_limit(None, &deleted);
        deleted.extend(over);
        let policy = self.policy;
        let minimised = self.facts.records.iter().filter(|r| !deleted.contains(&r.id) && needs_minimising(r, &policy)).count();
        if !dry_run {
            self.remove_records(&deleted);
            let ids: Vec<String> = self.facts.records.iter().filter(|r| needs_minimising(r, &policy)).map(|r| r.id.clone()).collect();
            for id in ids {
                let position = self.index[&id];
                let mut record = std::mem::take(&mut self.facts.records[position]);
                self.minimise(&mut record);
                self.facts.records[position] = record;
                self.mark_changed(&id);
            }
        }
        Ok(PruneOutcome { deleted, minimised })
    }

    fn minimise(&self, record: &mut ClientRecord) {
        if !self.policy.store_full_jids && !record.legacy {
            record.full_jid = None;
        }
        if !self.policy.store_device_names {
            record.user_agent.device = None;
        }
    }

    fn remove_records(&mut self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        self.facts.records.retain(|r| !ids.contains(&r.id));
        self.index = self.facts.records.iter().enumerate().map(|(i, r)| (r.id.clone(), i)).collect();
        for id in ids {
            self.mark_removed(id);
        }
    }

    // ------------------------------------------------------------------ storing

    fn mark_removed(&mut self, id: &str) {
        self.writes.serial += 1;
        self.writes.changed.remove(id);
        self.writes.removed.insert(id.to_owned(), self.writes.serial);
    }

    fn mark_changed(&mut self, id: &str) {
        self.writes.serial += 1;
        self.writes.removed.remove(id);
        self.writes.changed.insert(id.to_owned(), self.writes.serial);
    }

    pub fn has_pending_writes(&self) -> bool {
        !self.deleted && (!self.writes.changed.is_empty() || !self.writes.removed.is_empty())
    }

    /// Everything not stored yet, to store in one go; `None` when there is nothing (or the
    /// account is gone).
    pub fn take_writes(&self) -> Option<WriteBatch> {
        if !self.has_pending_writes() {
            return None;
        }
        Some(WriteBatch {
            serial: self.writes.serial,
            changed: self.writes.changed.keys().cloned().collect(),
            removed: self.writes.removed.keys().cloned().collect(),
        })
    }

    /// The batch up to `serial` is stored: forget what it carried, not what changed since.
    pub fn writes_stored(&mut self, serial: u64) {
        self.writes.changed.retain(|_, changed| *changed > serial);
        self.writes.removed.retain(|_, removed| *removed > serial);
        self.writes.failures = 0;
    }

    /// Storing failed: everything stays queued. Returns how long to wait before trying again.
    pub fn writes_failed(&mut self) -> f64 {
        self.writes.failures = self.writes.failures.saturating_add(1);
        self.retry_delay()
    }

    /// How long queued changes wait: the write delay, doubled after each failure in a row.
    pub fn retry_delay(&self) -> f64 {
        let base = self.policy.write_delay.max(1.0);
        let doublings = self.writes.failures.saturating_sub(1).min(16);
        (base * 2f64.powi(doublings as i32)).min(MAX_RETRY_DELAY.max(base))
    }
}

/// A record's client logged in once: within [`ONE_SHOT_SECONDS`] of its first login (a late
/// bind records the same login again), or never recorded a time.
pub const ONE_SHOT_SECONDS: Timestamp = 60;

fn seen_once(record: &ClientRecord) -> bool {
    match (record.first_seen, record.last_seen) {
        (Some(first), Some(last)) => last.saturating_sub(first) <= ONE_SHOT_SECONDS,
        _ => true,
    }
}

fn needs_minimising(record: &ClientRecord, policy: &Policy) -> bool {
    (!policy.store_full_jids && !record.legacy && record.full_jid.is_some())
        || (!policy.store_device_names && record.user_agent.device.is_some())
}

/// Brings a record up to date with a login: when and how it got in, and what it says it is.
fn merge_login(record: &mut ClientRecord, login: &Login, policy: &Policy) {
    let at = login.at;
    record.full_jid = if record.legacy || policy.store_full_jids { login.full_jid.clone() } else { None };
    record.last_seen = Some(at);
    if let Some(mechanism) = &login.mechanism {
        match record.mechanisms.iter_mut().find(|(name, _)| name == mechanism) {
            Some((_, used)) => *used = at,
            None => record.mechanisms.push((mechanism.clone(), at)),
        }
    }
    if login.fast {
        record.fast_auth = Some(at);
    }
    if let Some(grant) = &login.grant_id {
        record.auth_token_id = Some(grant.clone());
    }
    let oauth = login.oauth_client.clone().unwrap_or_default();
    let sasl = &login.user_agent;
    if sasl.software.is_some() || sasl.device.is_some() || !oauth.is_empty() {
        let previous = std::mem::take(&mut record.user_agent);
        let mut agent = UserAgent {
            software: sasl.software.clone().or(oauth.software),
            software_id: oauth.software_id,
            software_version: oauth.software_version,
            uri: oauth.uri,
            device: if policy.store_device_names { sasl.device.clone() } else { None },
        };
        // A login without a grant (FAST, password) says nothing about the OAuth client the
        // record learnt from an earlier grant login: keep what it does not replace.
        if login.grant_id.is_none() {
            agent.software_id = agent.software_id.or(previous.software_id);
            agent.software_version = agent.software_version.or(previous.software_version);
            agent.uri = agent.uri.or(previous.uri);
        }
        record.user_agent = agent.cleaned();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::fast_token_key_prefix;

    const T: Timestamp = 1_000_000;

    fn policy() -> Policy {
        Policy { max_clients: 3, retention: Some(100), ..Policy::default() }
    }

    fn loaded(policy: Policy, records: Vec<ClientRecord>) -> Account {
        let mut account = Account::new(policy);
        account.load_records(records);
        account.load_grants(Vec::new(), T as f64);
        account.load_fast_tokens(HashMap::new());
        account
    }

    fn moment() -> Moment {
        Moment { now: T as f64, password_updated: Some(T - 500), ..Moment::default() }
    }

    fn sasl2(id: &str, mechanism: &str) -> Login {
        Login {
            client_id: Some(id.into()),
            full_jid: Some(format!("u@h/{id}")),
            mechanism: Some(mechanism.into()),
            at: T,
            ..Login::default()
        }
    }

    fn legacy(resource: &str) -> Login {
        Login { full_jid: Some(format!("u@h/{resource}")), mechanism: Some("SCRAM-SHA-1".into()), at: T, ..Login::default() }
    }

    fn password_record(id: &str, last_seen: Timestamp) -> ClientRecord {
        ClientRecord {
            id: id.into(),
            first_seen: Some(last_seen),
            last_seen: Some(last_seen),
            mechanisms: vec![("SCRAM-SHA-1".into(), last_seen)],
            ..Default::default()
        }
    }

    #[test]
    fn a_new_client_is_stored_at_once_and_a_plain_relogin_waits() {
        let mut account = loaded(Policy::default(), Vec::new());
        let first = account.record_login(sasl2("phone", "SCRAM-SHA-1"), moment()).unwrap();
        assert!(first.is_new);
        assert_eq!(first.write, WriteTiming::Now);
        let again = account.record_login(Login { at: T + 5, ..sasl2("phone", "SCRAM-SHA-1") }, moment()).unwrap();
        assert!(!again.is_new);
        assert_eq!(again.write, WriteTiming::Later);
        let record = account.record("phone").unwrap();
        assert_eq!((record.first_seen, record.last_seen), (Some(T), Some(T + 5)));
        assert_eq!(record.mechanisms, [("SCRAM-SHA-1".to_owned(), T + 5)]);
    }

    #[test]
    fn access_changes_are_stored_at_once_token_mechanisms_are_not_password_access() {
        let mut account = loaded(Policy::default(), vec![ClientRecord {
            id: "app".into(),
            mechanisms: vec![("SCRAM-SHA-1".into(), T - 900)], // before the password change
            ..Default::default()
        }]);
        // First password login since the change: access regained.
        let outcome = account.record_login(sasl2("app", "PLAIN"), moment()).unwrap();
        assert_eq!(outcome.write, WriteTiming::Now);
        // A FAST mechanism used for the first time is not password access; the first FAST
        // login is an access change through fast_auth.
        let fast = Login { fast: true, ..sasl2("app", "HT-SHA-256-NONE") };
        assert_eq!(account.record_login(fast.clone(), moment()).unwrap().write, WriteTiming::Now);
        assert_eq!(account.record_login(fast, moment()).unwrap().write, WriteTiming::Later);
        // A new grant.
        let grant = Login { grant_id: Some("g1".into()), ..sasl2("app", "OAUTHBEARER") };
        assert_eq!(account.record_login(grant.clone(), moment()).unwrap().write, WriteTiming::Now);
        assert_eq!(account.record_login(grant, moment()).unwrap().write, WriteTiming::Later);
    }

    #[test]
    fn a_login_keeps_oauth_details_it_does_not_replace_and_cuts_long_texts() {
        let mut account = loaded(Policy::default(), Vec::new());
        let oauth = UserAgent {
            software: Some("App".into()),
            software_id: Some("app-id".into()),
            software_version: Some("2".into()),
            uri: Some("https://app.example".into()),
            device: None,
        };
        let grant_login = Login {
            grant_id: Some("g".into()),
            oauth_client: Some(oauth),
            user_agent: UserAgent { device: Some("Phone".into()), ..Default::default() },
            ..sasl2("app", "OAUTHBEARER")
        };
        account.record_login(grant_login, moment()).unwrap();
        let fast_login = Login {
            fast: true,
            user_agent: UserAgent { software: Some("é".repeat(300)), device: Some("Tablet".into()), ..Default::default() },
            ..sasl2("app", "HT-SHA-256-NONE")
        };
        account.record_login(fast_login, moment()).unwrap();
        let agent = &account.record("app").unwrap().user_agent;
        assert_eq!(agent.software.as_deref().map(|s| s.chars().count()), Some(256));
        assert_eq!(agent.software_id.as_deref(), Some("app-id"));
        assert_eq!(agent.software_version.as_deref(), Some("2"));
        assert_eq!(agent.uri.as_deref(), Some("https://app.example"));
        assert_eq!(agent.device.as_deref(), Some("Tablet"));
    }

    #[test]
    fn legacy_clients_are_found_by_full_jid_and_get_an_id_of_ours() {
        let mut account = loaded(Policy::default(), Vec::new());
        let first = account.record_login(legacy("desk"), moment()).unwrap();
        assert!(first.is_new && first.client_id.len() == 12);
        let again = account.record_login(Login { at: T + 1, ..legacy("desk") }, moment()).unwrap();
        assert_eq!((again.client_id.as_str(), again.is_new), (first.client_id.as_str(), false));
        let other = account.record_login(legacy("laptop"), moment()).unwrap();
        assert_ne!(other.client_id, first.client_id);
        assert!(account.record(&first.client_id).unwrap().legacy);
        // A SASL2 record with the same JID is never taken for a legacy client.
        account.record_login(sasl2("desk", "PLAIN"), moment()).unwrap();
        let third = account.record_login(Login { full_jid: Some("u@h/desk".into()), ..legacy("x") }, moment()).unwrap();
        assert_eq!(third.client_id, first.client_id);
    }

    #[test]
    fn a_full_account_drops_accessless_then_least_recent_password_records() {
        let established = |id: &str, last_seen| ClientRecord { first_seen: Some(T - 5000), ..password_record(id, last_seen) };
        let mut records = vec![
            established("old-pw", T - 300),
            established("new-pw", T - 10),
            ClientRecord { id: "gone".into(), last_seen: Some(T - 5), mechanisms: vec![("PLAIN".into(), T - 900)], ..Default::default() },
        ];
        records[1].user_agent.software = Some("Chat".into());
        let mut account = loaded(policy(), records);
        let outcome = account.record_login(sasl2("fresh", "PLAIN"), moment()).unwrap();
        assert_eq!(outcome.evicted, ["gone"], "no access goes first, however recent");
        let outcome = account.record_login(sasl2("fresher", "PLAIN"), moment()).unwrap();
        assert_eq!(outcome.evicted, ["fresh"], "a client seen once goes before established ones");
        let mut relogin = sasl2("fresher", "PLAIN");
        relogin.at = T + ONE_SHOT_SECONDS + 1;
        account.record_login(relogin, moment()).unwrap();
        let outcome = account.record_login(sasl2("freshest", "PLAIN"), moment()).unwrap();
        assert_eq!(outcome.evicted, ["old-pw"], "then the least recently seen");
        assert_eq!(account.records().len(), 3);
        let batch = account.take_writes().unwrap();
        assert_eq!(batch.removed, ["fresh", "gone", "old-pw"]);
        assert!(!batch.changed.contains(&"gone".to_owned()));
    }

    #[test]
    fn a_flood_of_one_shot_logins_replaces_itself_and_leaves_older_records() {
        let mut account = loaded(Policy { max_clients: 100, ..policy() }, Vec::new());
        for i in 0..6 {
            let mut owner = sasl2(&format!("owner-{i}"), "SCRAM-SHA-1");
            owner.at = T - 490;
            account.record_login(owner.clone(), moment()).unwrap();
            owner.at = T - 300 + i;
            account.record_login(owner, moment()).unwrap();
        }
        for i in 0..500 {
            account.record_login(Login { at: T + i, ..sasl2(&format!("flood-{i}"), "PLAIN") }, moment()).unwrap();
            account.record_login(Login { at: T + i, ..legacy(&format!("random-{i}")) }, moment()).unwrap();
        }
        assert_eq!(account.records().len(), 100);
        for i in 0..6 {
            assert!(account.record(&format!("owner-{i}")).is_some(), "owner-{i} was pushed out");
        }
        assert!(account.record("flood-0").is_some(), "the oldest newcomers stay, the newest replace each other");
        assert!(account.record("flood-499").is_none(), "the last flood login replaced by the last legacy bind");
    }

    #[test]
    fn a_sasl2_login_never_takes_over_a_legacy_record() {
        let mut account = loaded(policy(), Vec::new());
        let legacy_outcome = account.record_login(legacy("phone"), moment()).unwrap();
        let stolen = legacy_outcome.client_id.clone();
        let mut claim = sasl2(&stolen, "PLAIN");
        claim.user_agent.software = Some("Impostor".into());
        let outcome = account.record_login(claim, moment()).unwrap();
        assert!(outcome.is_new, "the SASL2 login gets a record of its own");
        assert_eq!(outcome.client_id, stolen);
        let mine = account.record(&stolen).unwrap();
        assert!(!mine.legacy);
        let moved: Vec<&ClientRecord> = account.records().iter().filter(|r| r.legacy).collect();
        assert_eq!(moved.len(), 1);
        assert_ne!(moved[0].id, stolen);
        assert_eq!(moved[0].full_jid.as_deref(), Some("u@h/phone"), "the legacy record keeps its history");
        assert_eq!(moved[0].user_agent.software, None);
        let moved_id = moved[0].id.clone();
        let again = account.record_login(legacy("phone"), moment()).unwrap();
        assert_eq!(again.client_id, moved_id, "and the legacy client still finds it");
        let batch = account.take_writes().unwrap();
        assert!(batch.changed.contains(&stolen) && batch.changed.contains(&again.client_id), "{batch:?}");
    }

    #[test]
    fn clients_holding_credentials_or_streams_are_never_dropped() {
        let mut fast = password_record("fast", T - 400);
        fast.mechanisms.clear();
        let mut granted = password_record("granted", T - 400);
        granted.auth_token_id = Some("g".into());
        let online = password_record("online", T - 400);
        let mut account = Account::new(policy());
        account.load_records(vec![fast, granted, online]);
        // Credentials unknown: every SASL2 record might hold a FAST token.
        let m = Moment { sessions: vec![SessionFact { index: 1, full_jid: Some("u@h/x".into()), client_id: Some("online".into()), grant_id: None }], ..moment() };
        assert_eq!(account.missing(Purpose::Login, T as f64), [Part::Grants, Part::FastTokens]);
        let outcome = account.record_login(sasl2("new", "PLAIN"), m.clone()).unwrap();
        assert!(outcome.evicted.is_empty(), "{outcome:?}");

        let mut tokens = HashMap::new();
        tokens.insert(format!("{}-cur", fast_token_key_prefix("fast")), FastToken { issued_at: T as f64, expires_at: (T + 99) as f64 });
        account.load_fast_tokens(tokens);
        account.load_grants(vec![Grant { id: "g".into(), created: Some((T - 1) as f64), accessed: Some((T - 1) as f64), ..Default::default() }], T as f64);
        let outcome = account.record_login(sasl2("newer", "PLAIN"), m).unwrap();
        assert_eq!(outcome.evicted, ["new"], "the only password-only record not online");
        assert_eq!(account.records().len(), 4, "the limit gives way to credentials");
    }

    #[test]
    fn legacy_floods_stay_within_the_limit_without_knowing_credentials() {
        let mut account = Account::new(Policy { max_clients: 100, ..Policy::default() });
        account.load_records(Vec::new());
        for i in 0..300 {
            assert_eq!(account.missing(Purpose::Login, T as f64).is_empty(), i < 100);
            account.record_login(Login { at: T + i, ..legacy(&format!("r{i}")) }, moment()).unwrap();
        }
        assert_eq!(account.records().len(), 100);
        assert!(account.records().iter().filter(|r| r.last_seen < Some(T + 99)).count() == 99, "one-shot newcomers replace each other");
    }

    #[test]
    fn retention_deletes_accessless_records_last_seen_before_it() {
        let old_gone = ClientRecord { id: "old-gone".into(), last_seen: Some(T - 101), mechanisms: vec![("PLAIN".into(), T - 900)], ..Default::default() };
        let recent_gone = ClientRecord { id: "recent-gone".into(), last_seen: Some(T - 99), ..Default::default() };
        let timeless = ClientRecord { id: "timeless".into(), ..Default::default() };
        let old_pw = password_record("old-pw", T - 400);
        let mut account = loaded(Policy { max_clients: 100, ..policy() }, vec![old_gone, recent_gone, timeless, old_pw]);
        let dry = account.prune(moment(), true).unwrap();
        assert_eq!(dry.deleted, ["old-gone", "timeless"]);
        assert_eq!(account.records().len(), 4, "a dry run changes nothing");
        assert!(account.take_writes().is_none());
        let real = account.prune(moment(), false).unwrap();
        assert_eq!(real, dry);
        assert_eq!(account.take_writes().unwrap().removed, ["old-gone", "timeless"]);
        let never = Policy { retention: None, max_clients: 100, ..policy() };
        let mut keeper = loaded(never, vec![ClientRecord { id: "x".into(), ..Default::default() }]);
        assert!(keeper.prune(moment(), false).unwrap().deleted.is_empty());
    }

    #[test]
    fn minimisation_strips_what_the_admin_turned_off() {
        let private = Policy { store_full_jids: false, store_device_names: false, ..Policy::default() };
        let mut account = loaded(private, Vec::new());
        let login = Login { user_agent: UserAgent { device: Some("Phone".into()), ..Default::default() }, ..sasl2("a", "PLAIN") };
        account.record_login(login, moment()).unwrap();
        account.record_login(legacy("desk"), moment()).unwrap();
        let sasl2_record = account.record("a").unwrap();
        assert_eq!((sasl2_record.full_jid.as_deref(), sasl2_record.user_agent.device.as_deref()), (None, None));
        assert!(account.records().iter().any(|r| r.legacy && r.full_jid.as_deref() == Some("u@h/desk")));

        let mut stored = password_record("old", T);
        stored.full_jid = Some("u@h/old".into());
        stored.user_agent.device = Some("Phone".into());
        let mut account = Account::new(private);
        account.load_records(vec![stored]);
        assert_eq!(account.take_writes().unwrap().changed, ["old"], "written back stripped");
        assert_eq!(account.record("old").unwrap().full_jid, None);
    }

    #[test]
    fn failed_writes_stay_queued_and_back_off() {
        let mut account = loaded(Policy { write_delay: 10.0, ..Policy::default() }, Vec::new());
        account.record_login(sasl2("a", "PLAIN"), moment()).unwrap();
        let batch = account.take_writes().unwrap();
        assert_eq!(account.writes_failed(), 10.0);
        assert_eq!(account.writes_failed(), 20.0);
        assert_eq!(account.take_writes().unwrap(), batch, "nothing dropped");
        for _ in 0..20 {
            account.writes_failed();
        }
        assert_eq!(account.retry_delay(), MAX_RETRY_DELAY);
        // A change made while a store is in flight survives its success.
        account.record_login(sasl2("b", "PLAIN"), moment()).unwrap();
        account.writes_stored(batch.serial);
        assert_eq!(account.take_writes().unwrap().changed, ["b"]);
        assert_eq!(account.retry_delay(), 10.0);
    }

    #[test]
    fn a_deleted_account_records_and_stores_nothing() {
        let mut account = loaded(Policy::default(), Vec::new());
        account.record_login(sasl2("a", "PLAIN"), moment()).unwrap();
        account.mark_deleted();
        assert!(account.take_writes().is_none());
        assert_eq!(account.record_login(sasl2("b", "PLAIN"), moment()), Err(NotReady::Deleted));
        assert_eq!(account.prune(moment(), false), Err(NotReady::Deleted));
    }

    #[test]
    fn events_make_the_right_parts_stale() {
        let mut account = loaded(Policy::default(), Vec::new());
        assert!(account.missing(Purpose::Listing, T as f64).is_empty());
        assert_eq!(account.missing(Purpose::Listing, T as f64 + 60.0), [Part::Grants], "past the grant cache lifetime");
        assert_eq!(account.missing(Purpose::Change, T as f64), [Part::Grants, Part::FastTokens], "changes read afresh");
        account.note(CacheEvent::Login);
        assert_eq!(account.missing(Purpose::Listing, T as f64), [Part::FastTokens]);
        account.load_fast_tokens(HashMap::new());
        account.note(CacheEvent::from_name("token-grant-revoked").unwrap());
        assert_eq!(account.missing(Purpose::Listing, T as f64), [Part::Grants]);
        let mut records_failed = Account::new(Policy::default());
        assert_eq!(records_failed.record_login(sasl2("a", "PLAIN"), moment()), Err(NotReady::RecordsMissing));
        assert_eq!(records_failed.missing(Purpose::Login, T as f64), [Part::Records]);
    }
}
