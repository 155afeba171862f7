//! Lua values in, core types out. Written by hand: it runs over every stored record of an
//! account when it is read, and the stores are untrusted. A stored item with a field of the
//! wrong type is skipped whole and counted, never failing the rest; a request table the Lua
//! module built wrongly is a Lua error.

use std::collections::HashMap;

use mlua::{LuaString, Result, Table, Value};

use crate::account::{Login, Moment, Policy};
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

fn decode_user_agent(table: &Table) -> std::result::Result<UserAgent, Invalid> {
    Ok(UserAgent {
        software: as_string(get(table, "software"))?,
        software_id: as_string(get(table, "software_id"))?,
        software_version: as_string(get(table, "software_version"))?,
        uri: as_string(get(table, "uri"))?,
        device: as_string(get(table, "device"))?,
    })
}

/// `data.oauth2_client` as mod_http_oauth2 stores it: name, id, version, uri.
fn decode_oauth_client(client: &Table) -> std::result::Result<UserAgent, Invalid> {
    Ok(UserAgent {
        software: as_string(get(client, "name"))?,
        software_id: as_string(get(client, "id"))?,
        software_version: as_string(get(client, "version"))?,
        uri: as_string(get(client, "uri"))?,
        // Not an OAuth registration field: the web page's sessions name the browser here.
        device: as_string(get(client, "device"))?,
    })
}

/// One `clients` record; `key` is the store key, the id when the record carries none.
pub fn decode_record(key: Value, value: Value) -> std::result::Result<ClientRecord, Invalid> {
    let key = as_string(key)?.ok_or(Invalid)?;
    let table = as_table(value)?.ok_or(Invalid)?;
    let id = as_string(get(&table, "id"))?.unwrap_or(key);
    let mut mechanisms = Vec::new();
    if let Some(map) = as_table(get(&table, "mechanisms"))? {
        for pair in map.pairs::<Value, Value>() {
            let (name, used) = pair.map_err(|_| Invalid)?;
            let name = as_string(name)?.ok_or(Invalid)?;
            let used = as_time(used)?.ok_or(Invalid)?;
            mechanisms.push((name, used));
        }
    }
    let user_agent = match as_table(get(&table, "user_agent"))? {
        Some(ua) => decode_user_agent(&ua)?,
        None => UserAgent::default(),
    };
    Ok(ClientRecord {
        id,
        first_seen: as_time(get(&table, "first_seen"))?,
        last_seen: as_time(get(&table, "last_seen"))?,
        full_jid: as_string(get(&table, "full_jid"))?,
        mechanisms,
        fast_auth: as_time(get(&table, "fast_auth"))?,
        auth_token_id: as_string(get(&table, "auth_token_id"))?,
        user_agent,
        legacy: as_bool(get(&table, "legacy"))?.unwrap_or(false),
    })
}

/// One `auth_tokens` grant, known by its store key as mod_tokenauth knows it; `roles` maps role
/// names to priorities.
pub fn decode_grant(key: Value, value: Value, roles: Option<&Table>) -> std::result::Result<Grant, Invalid> {
    let key = as_string(key)?.ok_or(Invalid)?;
    let table = as_table(value)?.ok_or(Invalid)?;
    let mut tokens = Vec::new();
    let tokens_table = as_table(get(&table, "tokens"))?;
    let tokens_missing = tokens_table.is_none();
    if let Some(map) = tokens_table {
        for pair in map.pairs::<Value, Value>() {
            let (_, token) = pair.map_err(|_| Invalid)?;
            let token = as_table(token)?.ok_or(Invalid)?;
            let role = as_string(get(&token, "role"))?;
            let role_priority = match (role, roles) {
                (Some(role), Some(roles)) => as_integer(roles.raw_get(role).unwrap_or(Value::Nil))?,
                _ => None,
            };
            tokens.push(GrantToken { expires: as_number(get(&token, "expires"))?, role_priority });
        }
    }
    let user_agent = grant_user_agent(&table)?;
    Ok(Grant {
        id: key,
        created: as_number(get(&table, "created"))?,
        accessed: as_number(get(&table, "accessed"))?,
        expires: as_number(get(&table, "expires"))?,
        tokens,
        tokens_missing,
        id_missing: as_string(get(&table, "id"))?.is_none(),
        user_agent,
    })
}

/// The OAuth client a grant (or a login's token info) carries, if any.
pub fn grant_user_agent(grant: &Table) -> std::result::Result<UserAgent, Invalid> {
    if let Some(data) = as_table(get(grant, "data"))? {
        if let Some(client) = as_table(get(&data, "oauth2_client"))? {
            return decode_oauth_client(&client);
        }
    }
    Ok(UserAgent::default())
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
pub fn decode_moment(table: &Table) -> Result<Moment> {
    let mut sessions = Vec::new();
    if let Some(list) = field(table, "sessions", as_table)? {
        for (position, value) in list.sequence_values::<Value>().enumerate() {
            let session = as_table(value?).ok().flatten().ok_or_else(|| bad("sessions"))?;
            sessions.push(SessionFact {
                index: position + 1,
                full_jid: field(&session, "full_jid", as_string)?,
                client_id: field(&session, "client_id", as_string)?,
                grant_id: field(&session, "grant_id", as_string)?,
            });
        }
    }
    Ok(Moment {
        sessions,
        password_updated: field(table, "password_updated", as_time)?,
        account_role_priority: field(table, "account_role_priority", as_integer)?,
        now: field(table, "now", as_number)?.ok_or_else(|| bad("now"))?,
    })
}

/// `{ client_id, full_jid, mechanism, fast, grant_id, software, device, oauth_client, at }`:
/// facts of a login the Lua module noted on the session. The client's own words (software,
/// device, OAuth registration) are untrusted: a wrong type there is dropped, not an error.
pub fn decode_login(table: &Table) -> Result<Login> {
    let text = |key: &str| as_string(get(table, key)).unwrap_or(None);
    let oauth_client = match get(table, "oauth_client") {
        Value::Table(client) => decode_oauth_client(&client).ok(),
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
/// requests_per_minute }`. A period that is
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
    })
}
