//! Lua values in, core types out. Written by hand: it runs over every stored record of an
//! account when it is read, and the stores are untrusted (ARCHITECTURE.md §11). A credential the owning
//! module would accept is never dropped for what its metadata holds: text that is not UTF-8 is
//! repaired (U+FFFD), numbers become text, a field of another wrong type is left out. Only an
//! item that its owning module itself never accepts (mod_tokenauth, mod_sasl2_fast: they
//! fail or refuse on it) or that names nothing (no string key) is skipped and counted. A
//! request table the Lua module built wrongly is a Lua error.

use std::collections::HashMap;

use mlua::{LuaString, Result, Table, Value};

use crate::account::{Login, Moment, Policy};
use crate::render::Protocol;
use crate::model::{timestamp_from_f64, ClientRecord, FastToken, Grant, GrantToken, SessionFact, Timestamp, UserAgent};

/// A stored value had the wrong type; the item holding it is skipped.
pub struct Invalid;

type Field<T> = std::result::Result<Option<T>, Invalid>;

pub fn as_string(value: Value) -> Field<String> {
    match value {
        Value::Nil => Ok(None),
        Value::String(s) => lua_str(&s).map(Some),
        _ => Err(Invalid),
    }
}

fn lua_str(s: &LuaString) -> std::result::Result<String, Invalid> {
    s.to_str().map(|s| s.to_owned()).map_err(|_| Invalid)
}

/// Text a client, a registration or another module chose: repaired, never refused. Invalid
/// UTF-8 becomes U+FFFD, a number becomes its decimal text; any other type is left out.
pub fn lossy_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Number(n) if n.is_finite() => Some(if n.fract() == 0.0 && n.abs() < 1e15 { format!("{n:.1}") } else { n.to_string() }),
        _ => None,
    }
}

/// A time of our own records: a wrong type is left out, the record kept.
fn lenient_time(value: Value) -> Option<Timestamp> {
    as_time(value).ok().flatten()
}

/// Lua's truth: anything but nil and false.
fn truthy(value: &Value) -> bool {
    !matches!(value, Value::Nil | Value::Boolean(false))
}

fn as_time(value: Value) -> Field<Timestamp> {
    match value {
        Value::Nil => Ok(None),
        Value::Integer(i) => Ok(Some(i)),
        Value::Number(n) => timestamp_from_f64(n).map(Some).ok_or(Invalid),
        _ => Err(Invalid),
    }
}

fn as_integer(value: Value) -> Field<i64> {
    match value {
        Value::Nil => Ok(None),
        Value::Integer(i) => Ok(Some(i)),
        Value::Number(n) if n.fract() == 0.0 => timestamp_from_f64(n).map(Some).ok_or(Invalid),
        _ => Err(Invalid),
    }
}

fn as_number(value: Value) -> Field<f64> {
    match value {
        Value::Nil => Ok(None),
        Value::Integer(i) => Ok(Some(i as f64)),
        Value::Number(n) if !n.is_nan() => Ok(Some(n)),
        _ => Err(Invalid),
    }
}

fn as_bool(value: Value) -> Field<bool> {
    match value {
        Value::Nil => Ok(None),
        Value::Boolean(b) => Ok(Some(b)),
        _ => Err(Invalid),
    }
}

fn as_table(value: Value) -> Field<Table> {
    match value {
        Value::Nil => Ok(None),
        Value::Table(t) => Ok(Some(t)),
        _ => Err(Invalid),
    }
}

fn get(table: &Table, key: &str) -> Value {
    table.raw_get(key).unwrap_or(Value::Nil)
}

/// A record's `user_agent`: each field repaired or left out (see [`lossy_text`]).
fn decode_user_agent(value: Value) -> UserAgent {
    let Value::Table(table) = value else { return UserAgent::default() };
    let text = |key: &str| lossy_text(&get(&table, key));
    UserAgent {
        software: text("software"),
        software_id: text("software_id"),
        software_version: text("software_version"),
        uri: text("uri"),
        device: text("device"),
    }
}

/// `data.oauth2_client` as mod_http_oauth2 stores it: name, id, version, uri. mod_tokenauth
/// stores whatever it is given: anything but a table says nothing, fields are repaired.
fn decode_oauth_client(value: Value) -> UserAgent {
    let Value::Table(client) = value else { return UserAgent::default() };
    let text = |key: &str| lossy_text(&get(&client, key));
    UserAgent {
        software: text("name"),
        software_id: text("id"),
        software_version: text("version"),
        uri: text("uri"),
        // Not an OAuth registration field: the web page's sessions name the browser here.
        device: text("device"),
    }
}

/// One `clients` record; `key` is the store key, the id when the record carries none. Records
/// come from this module, the community one, older versions and admins: a field of the wrong
/// type is left out (a mechanism entry of the wrong shape too), the rest of the record kept.
/// Only a record that is not a table, or whose key is not a string, names no client.
pub fn decode_record(key: Value, value: Value) -> std::result::Result<ClientRecord, Invalid> {
    let Value::String(key) = key else { return Err(Invalid) };
    let key = String::from_utf8_lossy(&key.as_bytes()).into_owned();
    let table = as_table(value)?.ok_or(Invalid)?;
    let id = match get(&table, "id") {
        Value::String(id) => String::from_utf8_lossy(&id.as_bytes()).into_owned(),
        _ => key,
    };
    let mut mechanisms = Vec::new();
    if let Value::Table(map) = get(&table, "mechanisms") {
        for (name, used) in map.pairs::<Value, Value>().flatten() {
            if let (Value::String(name), Some(used)) = (name, lenient_time(used)) {
                mechanisms.push((String::from_utf8_lossy(&name.as_bytes()).into_owned(), used));
            }
        }
    }
    let text = |key: &str| match get(&table, key) {
        Value::String(s) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
        _ => None,
    };
    Ok(ClientRecord {
        id,
        first_seen: lenient_time(get(&table, "first_seen")),
        last_seen: lenient_time(get(&table, "last_seen")),
        full_jid: text("full_jid"),
        mechanisms,
        fast_auth: lenient_time(get(&table, "fast_auth")),
        auth_token_id: text("auth_token_id"),
        user_agent: decode_user_agent(get(&table, "user_agent")),
        legacy: truthy(&get(&table, "legacy")),
    })
}

/// One `auth_tokens` grant, known by its store key as mod_tokenauth knows it; `roles` maps role
/// names to priorities. Skipped only where mod_tokenauth itself never accepts the grant: no
/// string key, not a table, `created` or `expires` or a token's `expires` not a number (its
/// comparisons raise), `tokens` neither a table nor absent. Everything else is kept: its OAuth
/// data, whatever it holds, only describes it (see [`grant_user_agent`]).
pub fn decode_grant(key: Value, value: Value, roles: Option<&Table>) -> std::result::Result<Grant, Invalid> {
    let key = as_string(key)?.ok_or(Invalid)?;
    let table = as_table(value)?.ok_or(Invalid)?;
    let mut tokens = Vec::new();
    let tokens_value = get(&table, "tokens");
    let tokens_missing = !truthy(&tokens_value);
    if let Value::Table(map) = tokens_value {
        for pair in map.pairs::<Value, Value>() {
            let (_, token) = pair.map_err(|_| Invalid)?;
            let token = match token {
                Value::Table(token) => token,
                // mod_tokenauth's checks index it and find nothing: a token without expiry.
                Value::String(_) => {
                    tokens.push(GrantToken::default());
                    continue;
                }
                _ => return Err(Invalid),
            };
            // A role that is not a string selects no role: as if it had none of its own.
            let role_priority = match (get(&token, "role"), roles) {
                (Value::String(role), Some(roles)) => as_integer(roles.raw_get(role).unwrap_or(Value::Nil)).ok().flatten(),
                _ => None,
            };
            tokens.push(GrantToken { expires: as_number(get(&token, "expires"))?, role_priority });
        }
    } else if !tokens_missing {
        return Err(Invalid);
    }
    Ok(Grant {
        id: key,
        created: as_number(get(&table, "created"))?,
        // Only read (with arithmetic) when the grant has no live tokens: a wrong type is left out.
        accessed: as_number(get(&table, "accessed")).ok().flatten(),
        expires: as_number(get(&table, "expires"))?,
        tokens,
        tokens_missing,
        id_missing: !truthy(&get(&table, "id")),
        user_agent: grant_user_agent(&table),
    })
}

/// The OAuth client a grant (or a login's token info) carries, as far as it says anything.
pub fn grant_user_agent(grant: &Table) -> UserAgent {
    match get(grant, "data") {
        Value::Table(data) => decode_oauth_client(get(&data, "oauth2_client")),
        _ => UserAgent::default(),
    }
}

fn decode_fast_token(value: Value) -> std::result::Result<FastToken, Invalid> {
    let table = as_table(value)?.ok_or(Invalid)?;
    Ok(FastToken {
        issued_at: as_number(get(&table, "issued_at"))?.ok_or(Invalid)?,
        expires_at: as_number(get(&table, "expires_at"))?.ok_or(Invalid)?,
    })
}

/// Items of a store (`map` may be nil: nothing stored), decoded, and how many were skipped.
pub fn decode_map<T>(map: Option<Table>, mut decode: impl FnMut(Value, Value) -> std::result::Result<T, Invalid>) -> Result<(Vec<T>, usize)> {
    let mut items = Vec::new();
    let mut skipped = 0;
    if let Some(map) = map {
        for pair in map.pairs::<Value, Value>() {
            let (key, value) = pair?;
            match decode(key, value) {
                Ok(item) => items.push(item),
                Err(Invalid) => skipped += 1,
            }
        }
    }
    Ok((items, skipped))
}

pub fn decode_fast_tokens(map: Option<Table>) -> Result<(HashMap<String, FastToken>, usize)> {
    let (tokens, skipped) = decode_map(map, |key, value| Ok((as_string(key)?.ok_or(Invalid)?, decode_fast_token(value)?)))?;
    Ok((tokens.into_iter().collect(), skipped))
}

fn bad(what: &str) -> mlua::Error {
    mlua::Error::runtime(format!("client_management: request field '{what}' has the wrong type"))
}

/// A field of a table the Lua module built: a wrong type is a bug there, not bad storage.
fn field<T>(table: &Table, key: &str, convert: fn(Value) -> Field<T>) -> Result<Option<T>> {
    convert(get(table, key)).map_err(|_| bad(key))
}

/// `{ sessions = { { full_jid, client_id, grant_id }, … }, password_updated,
/// account_role_priority, now }`. A session's index is its position in `sessions`.
/// The protocol of a list request's namespace.
pub fn decode_protocol(xmlns: &LuaString) -> Result<Protocol> {
    Protocol::from_namespace(&xmlns.to_str()?).ok_or_else(|| mlua::Error::runtime("client_management: unknown protocol namespace"))
}

pub fn decode_moment(table: &Table) -> Result<Moment> {
    let (mut sessions, mut stream_keys) = (Vec::new(), Vec::new());
    if let Some(list) = field(table, "sessions", as_table)? {
        for (position, value) in list.sequence_values::<Value>().enumerate() {
            let session = as_table(value?).ok().flatten().ok_or_else(|| bad("sessions"))?;
            sessions.push(SessionFact {
                index: position + 1,
                full_jid: field(&session, "full_jid", as_string)?,
                client_id: field(&session, "client_id", as_string)?,
                grant_id: field(&session, "grant_id", as_string)?,
            });
            stream_keys.push(field(&session, "key", as_string)?);
        }
    }
    Ok(Moment {
        sessions,
        stream_keys,
        password_updated: field(table, "password_updated", as_time)?,
        account_role_priority: field(table, "account_role_priority", as_integer)?,
        now: field(table, "now", as_number)?.ok_or_else(|| bad("now"))?,
    })
}

/// `{ client_id, full_jid, mechanism, fast, grant_id, software, device, oauth_client, at }`:
/// facts of a login the Lua module noted on the session. The client's own words (software,
/// device, OAuth registration) are untrusted: a wrong type there is dropped, not an error.
pub fn decode_login(table: &Table) -> Result<Login> {
    let text = |key: &str| lossy_text(&get(table, key));
    let oauth_client = match get(table, "oauth_client") {
        client @ Value::Table(_) => Some(decode_oauth_client(client)),
        _ => None,
    };
    Ok(Login {
        client_id: field(table, "client_id", as_string)?,
        full_jid: field(table, "full_jid", as_string)?,
        mechanism: field(table, "mechanism", as_string)?,
        fast: field(table, "fast", as_bool)?.unwrap_or(false),
        grant_id: field(table, "grant_id", as_string)?,
        user_agent: UserAgent { software: text("software"), device: text("device"), ..UserAgent::default() },
        oauth_client,
        at: field(table, "at", as_time)?.ok_or_else(|| bad("at"))?,
    })
}

/// Module options, read once: `{ max_clients, retention, store_full_jids, store_device_names,
/// tokenless_grant_ttl, grant_cache_ttl, write_delay, notify_new_clients, notice_interval,
/// requests_per_minute, cache_size }`; what is left out takes its default (`Policy::default`). A period that is
/// infinite (Prosody's "never") means no limit.
pub fn decode_policy(table: &Table) -> Result<Policy> {
    let defaults = Policy::default();
    let period = |key: &str| -> Result<Option<Option<i64>>> {
        Ok(field(table, key, as_number)?.map(|seconds| seconds.is_finite().then_some(seconds.max(0.0) as i64)))
    };
    let seconds = |key: &str, default: f64| -> Result<f64> { Ok(field(table, key, as_number)?.unwrap_or(default).max(0.0)) };
    let max_clients = field(table, "max_clients", as_integer)?.map_or(defaults.max_clients, |n| n.max(1) as usize);
    Ok(Policy {
        max_clients,
        retention: period("retention")?.unwrap_or(defaults.retention),
        store_full_jids: field(table, "store_full_jids", as_bool)?.unwrap_or(defaults.store_full_jids),
        store_device_names: field(table, "store_device_names", as_bool)?.unwrap_or(defaults.store_device_names),
        tokenless_grant_ttl: period("tokenless_grant_ttl")?.unwrap_or(defaults.tokenless_grant_ttl),
        grant_cache_ttl: seconds("grant_cache_ttl", defaults.grant_cache_ttl)?,
        write_delay: seconds("write_delay", defaults.write_delay)?,
        notify_new_clients: field(table, "notify_new_clients", as_bool)?.unwrap_or(defaults.notify_new_clients),
        notice_interval: seconds("notice_interval", defaults.notice_interval)?,
        requests_per_minute: field(table, "requests_per_minute", as_integer)?
            .map_or(defaults.requests_per_minute, |n| n.clamp(0, i64::from(u32::MAX)) as u32),
        cache_size: field(table, "cache_size", as_integer)?.map_or(defaults.cache_size, |n| n.max(1) as usize),
    })
}
