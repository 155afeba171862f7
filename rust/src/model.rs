//! Plain facts the Lua module gathers once per request. Nothing here knows about Lua or
//! Prosody: every field is already decoded, and anything that was malformed in storage has
//! been dropped by the decoder, field by field.

use std::collections::HashMap;

/// Unix time in whole seconds (Prosody stores `os.time()` integers; FAST uses floats).
pub type Timestamp = i64;

/// What a client says about itself (SASL2 `<user-agent>`, or OAuth client registration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserAgent {
    pub software: Option<String>,
    pub software_id: Option<String>,
    pub software_version: Option<String>,
    pub uri: Option<String>,
    pub device: Option<String>,
}

impl UserAgent {
    pub fn is_empty(&self) -> bool {
        self.software.is_none()
            && self.software_id.is_none()
            && self.software_version.is_none()
            && self.uri.is_none()
            && self.device.is_none()
    }
}

/// One record of the `clients` store (SPEC §2).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientRecord {
    pub id: String,
    pub first_seen: Option<Timestamp>,
    pub last_seen: Option<Timestamp>,
    pub full_jid: Option<String>,
    /// SASL mechanism name and when it was last used.
    pub mechanisms: Vec<(String, Timestamp)>,
    pub fast_auth: Option<Timestamp>,
    pub auth_token_id: Option<String>,
    pub user_agent: UserAgent,
    pub legacy: bool,
}

/// A tokenauth grant as stored in `auth_tokens`. Whether it is still valid is decided per
/// request (see `access::grant_is_valid`), the way mod_tokenauth's `get_grant_info` decides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grant {
    pub id: String,
    pub created: Option<Timestamp>,
    pub accessed: Option<Timestamp>,
    pub expires: Option<Timestamp>,
    pub tokens: Vec<GrantToken>,
    /// The stored grant has no `tokens` table at all (an old-style grant): never valid.
    pub tokens_missing: bool,
    /// From `data.oauth2_client`: name, uri, id, version.
    pub user_agent: UserAgent,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GrantToken {
    pub expires: Option<Timestamp>,
    /// Priority of the token's role; `None` when the token has no role of its own (it then
    /// acts with the account's role) or the role is unknown to the server.
    pub role_priority: Option<i64>,
}

/// mod_sasl2_fast keeps at most two tokens per client: the current one and a freshly issued
/// one, keyed `hex(sha256(client_id)) .. "-cur" | "-new"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FastToken {
    pub issued_at: f64,
    pub expires_at: f64,
}

/// A live (or hibernating) session of the account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFact {
    pub full_jid: String,
    /// SASL2 `<user-agent id>` of the session, if any.
    pub client_id: Option<String>,
    /// Grant whose token the session authenticated with, if any.
    pub grant_id: Option<String>,
}

/// Everything the core needs to know about one account at one instant.
#[derive(Debug, Clone, Default)]
pub struct AccountFacts {
    pub records: Vec<ClientRecord>,
    pub grants: Vec<Grant>,
    /// Keyed as mod_sasl2_fast keys its store.
    pub fast_tokens: HashMap<String, FastToken>,
    pub sessions: Vec<SessionFact>,
    /// `password_updated` from the account info; `None` when never recorded.
    pub password_updated: Option<Timestamp>,
    /// Priority of the account's own role, used to tell restricted grants apart.
    pub account_role_priority: Option<i64>,
    /// mod_tokenauth's `tokenless_grant_ttl`: how long a grant without expiry and without
    /// live tokens survives its last access. `None`: forever.
    pub tokenless_grant_ttl: Option<Timestamp>,
    pub now: f64,
}

/// A stored time as a whole second, if the number can be one (finite, in `i64` range).
pub fn timestamp_from_f64(value: f64) -> Option<Timestamp> {
    if value.is_finite() && value >= i64::MIN as f64 && value < i64::MAX as f64 {
        Some(value.floor() as Timestamp)
    } else {
        None
    }
}

/// A `clients` record as storage holds it, for generic (serde) decoding: every field
/// optional, numbers as Lua gives them. [`StoredRecord::into_record`] applies the same rules
/// as the hand-written decoder in the Lua glue, which is used on the hot path.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct StoredRecord {
    pub id: Option<String>,
    pub first_seen: Option<f64>,
    pub last_seen: Option<f64>,
    pub full_jid: Option<String>,
    pub mechanisms: Option<HashMap<String, f64>>,
    pub fast_auth: Option<f64>,
    pub auth_token_id: Option<String>,
    pub user_agent: Option<StoredUserAgent>,
    pub legacy: Option<bool>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct StoredUserAgent {
    pub software: Option<String>,
    pub software_id: Option<String>,
    pub software_version: Option<String>,
    pub uri: Option<String>,
    pub device: Option<String>,
}

impl StoredRecord {
    /// The record, or `None` if a time is not a usable number. `key` is the store key, the
    /// id when the record carries none.
    pub fn into_record(self, key: &str) -> Option<ClientRecord> {
        fn time(value: Option<f64>) -> Option<Option<Timestamp>> {
            match value {
                None => Some(None),
                Some(v) => timestamp_from_f64(v).map(Some),
            }
        }
        let mut mechanisms = Vec::new();
        for (name, used) in self.mechanisms.unwrap_or_default() {
            mechanisms.push((name, timestamp_from_f64(used)?));
        }
        let ua = self.user_agent.unwrap_or_default();
        Some(ClientRecord {
            id: self.id.unwrap_or_else(|| key.to_owned()),
            first_seen: time(self.first_seen)?,
            last_seen: time(self.last_seen)?,
            full_jid: self.full_jid,
            mechanisms,
            fast_auth: time(self.fast_auth)?,
            auth_token_id: self.auth_token_id,
            user_agent: UserAgent {
                software: ua.software,
                software_id: ua.software_id,
                software_version: ua.software_version,
                uri: ua.uri,
                device: ua.device,
            },
            legacy: self.legacy.unwrap_or(false),
        })
    }
}
