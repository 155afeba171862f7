//! How a login (or the late bind of one) changes the client's record, whether that must be
//! stored at once, and who hears about a new client.

use super::{Account, CacheEvent, Moment, NotReady, Policy};
use crate::model::{ClientRecord, Timestamp, UserAgent};

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

/// What a record says about the client's access, as far as a login can change it.
#[derive(PartialEq)]
struct RecordedAccess {
    password: bool,
    grant: Option<String>,
    fast: bool,
}

fn recorded_access(record: &ClientRecord, password_updated: Option<Timestamp>) -> RecordedAccess {
    RecordedAccess {
        password: crate::access::password_access(record, password_updated).is_some(),
        grant: record.auth_token_id.clone(),
        fast: record.fast_auth.is_some(),
    }
}

impl Account {
    /// Applies a successful login (or the late bind of one) to the client's record.
    pub fn record_login(&mut self, login: Login, moment: Moment) -> Result<LoginOutcome, NotReady> {
        self.changing();
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
        let password_updated = self.facts.moment.password_updated;
        let policy = self.facts.policy;
        let record = &mut self.facts.records[position];
        let before = recorded_access(record, password_updated);
        merge_login(record, &login, &policy);
        let access_changed = recorded_access(record, password_updated) != before;
        let client_id = record.id.clone();
        self.mark_changed(&client_id);
        let evicted = if is_new { self.evict_over_limit(Some(&client_id)) } else { Vec::new() };
        Ok(LoginOutcome {
            write: if is_new || access_changed { WriteTiming::Now } else { WriteTiming::Later },
            announce: is_new && login.grant_id.is_none() && self.facts.policy.notify_new_clients,
            client_id,
            is_new,
            evicted,
        })
    }


    /// Streams to tell that `client_id` got access: every bound stream of the account at the
    /// last moment seen, but the client's own.
    pub fn notice_recipients(&self, client_id: &str) -> Vec<usize> {
        let record = self.record(client_id);
        self.facts
            .moment
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
            .moment
            .sessions
            .iter()
            .filter(|s| s.is_bound() && !newcomers.iter().any(|r| crate::access::session_is_of(s, r)))
            .map(|s| s.index)
            .collect()
    }
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
