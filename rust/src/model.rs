//! Plain facts the Lua module gathers. Nothing here knows about Lua or Prosody: every field is
//! already decoded, and anything that was malformed in storage has been dropped by the decoder.

use std::collections::HashMap;

/// A point in time: unix seconds (Prosody stores `os.time()` integers; FAST uses floats).
pub type Timestamp = i64;

/// A length of time in seconds.
pub type Seconds = i64;

/// `timestamp` (UTC) in `description`'s layout; `None` for times no calendar can show (before
/// year 0 or after 9999). The one date formatter: replies ([`crate::render`]) and what people
/// read ([`crate::text`]) both use it.
pub fn format_time(timestamp: Timestamp, description: &[time::format_description::BorrowedFormatItem<'_>]) -> Option<String> {
    let dt = time::OffsetDateTime::from_unix_timestamp(timestamp).ok()?;
    if !(0..=9999).contains(&dt.year()) {
        return None;
    }
    dt.format(description).ok()
}

/// Longest SASL2 `<user-agent id>` a login may use, in bytes.
pub const MAX_CLIENT_ID_BYTES: usize = 256;

/// Software names, versions, ids, devices and URIs are kept to this many characters.
pub const MAX_TEXT_CHARS: usize = 256;

/// The text cut to [`MAX_TEXT_CHARS`] characters (never inside a UTF-8 sequence).
pub fn bounded_text(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(MAX_TEXT_CHARS) {
        text.truncate(cut);
    }
    text
}

/// Why a SASL2 client id cannot be used, if it cannot: the text of the SASL2 failure. An id
/// that passes reads back exactly from any XML parser and is shown as it is
/// ([`crate::sanitize`]).
pub fn client_id_problem(id: &[u8]) -> Option<String> {
    if id.len() > MAX_CLIENT_ID_BYTES {
        return Some(format!("Client identifier too long (at most {MAX_CLIENT_ID_BYTES} bytes)"));
    }
    let Ok(id) = std::str::from_utf8(id) else {
        return Some("Client identifier is not valid UTF-8".to_owned());
    };
    crate::sanitize::id_character_problem(id).map(str::to_owned)
}

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

    /// Some field is longer than [`MAX_TEXT_CHARS`] allows.
    pub fn exceeds_limits(&self) -> bool {
        self.fields()
            .iter()
            .any(|field| field.as_ref().is_some_and(|text| text.len() > MAX_TEXT_CHARS && text.chars().nth(MAX_TEXT_CHARS).is_some()))
    }

    /// Some field holds a character the sanitiser removes or replaces, or is too long.
    pub fn needs_cleaning(&self) -> bool {
        self.exceeds_limits() || self.fields().iter().any(|field| field.as_deref().is_some_and(|text| !crate::sanitize::is_clean(text)))
    }

    fn fields(&self) -> [&Option<String>; 5] {
        [&self.software, &self.software_id, &self.software_version, &self.uri, &self.device]
    }

    /// Every field through the one sanitiser ([`crate::sanitize::for_people`]), then cut to
    /// [`MAX_TEXT_CHARS`]: clients and OAuth registrations choose these, people read them.
    pub fn cleaned(self) -> UserAgent {
        let cut = |field: Option<String>| field.map(|text| bounded_text(crate::sanitize::owned_for_people(text)));
        UserAgent {
            software: cut(self.software),
            software_id: cut(self.software_id),
            software_version: cut(self.software_version),
            uri: cut(self.uri),
            device: cut(self.device),
        }
    }
}

/// One record of the `clients` store (ARCHITECTURE.md §2).
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

impl ClientRecord {
    /// When the client last logged in, else when it was first seen.
    pub fn last_activity(&self) -> Option<Timestamp> {
        self.last_seen.or(self.first_seen)
    }
}

/// A tokenauth grant as stored in `auth_tokens`. Whether it is still valid is decided per
/// request (see `access::grant_is_valid`), the way mod_tokenauth's `get_grant_info` decides.
/// Times are kept as stored (mod_tokenauth compares them unrounded).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grant {
    /// The store key: mod_tokenauth finds, revokes and logs in with grants by it.
    pub id: String,
    pub created: Option<f64>,
    pub accessed: Option<f64>,
    pub expires: Option<f64>,
    pub tokens: Vec<GrantToken>,
    /// The stored grant has no `tokens` table at all (an old-style grant): never valid.
    pub tokens_missing: bool,
    /// The stored grant has no `id` field: mod_tokenauth never accepts it.
    pub id_missing: bool,
    /// From `data.oauth2_client`: name, uri, id, version.
    pub user_agent: UserAgent,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GrantToken {
    pub expires: Option<f64>,
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

/// A stream authenticated as the account: bound (online or hibernating), or authenticated and
/// not bound yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFact {
    /// Position in the Lua module's list of sessions for this request; plans name sessions by it.
    pub index: usize,
    /// `None` while the stream has not bound a resource.
    pub full_jid: Option<String>,
    /// SASL2 `<user-agent id>` of the session, if any.
    pub client_id: Option<String>,
    /// Grant whose token the session authenticated with, if any.
    pub grant_id: Option<String>,
}

impl SessionFact {
    pub fn is_bound(&self) -> bool {
        self.full_jid.is_some()
    }
}

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
    /// Accounts without work left kept in memory (the driver's LRU).
    pub cache_size: usize,
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
            cache_size: 256,
        }
    }
}

/// The facts of one moment: streams, password change, role, clock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Moment {
    pub sessions: Vec<SessionFact>,
    /// Each stream's key (Prosody's `session.id`), in the order of `sessions`; the driver finds
    /// the streams of logins not recorded yet by it.
    pub stream_keys: Vec<Option<String>>,
    pub password_updated: Option<Timestamp>,
    pub account_role_priority: Option<i64>,
    pub now: f64,
}

/// Everything the core needs to know about one account at one instant: its stored data, the
/// moment and the options it is judged by.
#[derive(Debug, Clone)]
pub struct AccountFacts {
    pub records: Vec<ClientRecord>,
    pub grants: Vec<Grant>,
    /// Keyed as mod_sasl2_fast keys its store.
    pub fast_tokens: HashMap<String, FastToken>,
    pub moment: Moment,
    pub policy: Policy,
}

impl Default for AccountFacts {
    /// Nothing stored, at time 0, with the default options but no `tokenless_grant_ttl` (a
    /// grant without tokens lives until it expires): what facts built by hand start from.
    fn default() -> Self {
        AccountFacts {
            records: Vec::new(),
            grants: Vec::new(),
            fast_tokens: HashMap::new(),
            moment: Moment::default(),
            policy: Policy { tokenless_grant_ttl: None, ..Policy::default() },
        }
    }
}

/// A stored time as a whole second, if the number can be one (finite, in `i64` range).
pub fn timestamp_from_f64(value: f64) -> Option<Timestamp> {
    if value.is_finite() && value >= i64::MIN as f64 && value < i64::MAX as f64 {
        Some(value.floor() as Timestamp)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_cut_on_character_boundaries() {
        let ascii = "a".repeat(300);
        assert_eq!(bounded_text(ascii).len(), MAX_TEXT_CHARS);
        let wide = "é".repeat(255) + "😀😀";
        let cut = bounded_text(wide);
        assert_eq!(cut.chars().count(), MAX_TEXT_CHARS);
        assert!(cut.ends_with('😀'));
        assert_eq!(bounded_text("short".into()), "short");
        let exact = "x".repeat(MAX_TEXT_CHARS);
        assert_eq!(bounded_text(exact.clone()), exact);
    }

    #[test]
    fn client_ids_up_to_256_bytes_are_fine() {
        assert_eq!(client_id_problem(&[b'x'; 256]), None);
        let problem = client_id_problem(&[b'x'; 257]).unwrap();
        assert_eq!(problem, "Client identifier too long (at most 256 bytes)");
        assert_eq!(client_id_problem(b"a\xffb").as_deref(), Some("Client identifier is not valid UTF-8"));
        assert_eq!(client_id_problem(b"a\tb").as_deref(), Some("Client identifier must not contain line breaks or tabs"));
    }
}
