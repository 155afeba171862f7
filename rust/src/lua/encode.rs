//! Core types out as Lua tables: records as the `clients` store keeps them, entries in the
//! community module's API shape, revocation plans, login outcomes.

use mlua::{Lua, Result, Table, Value};

use crate::account::{LoginOutcome, WriteTiming};
use crate::listing::ClientEntry;
use crate::model::{ClientRecord, Grant, UserAgent};
use crate::revocation::{Action, RevocationPlan};

fn optional(lua: &Lua, table: &Table, key: &str, value: Option<&str>) -> Result<()> {
    if let Some(value) = value {
        table.raw_set(key, lua.create_string(value)?)?;
    }
    Ok(())
}

fn user_agent_table(lua: &Lua, ua: &UserAgent) -> Result<Table> {
    let agent = lua.create_table()?;
    optional(lua, &agent, "software", ua.software.as_deref())?;
    optional(lua, &agent, "software_id", ua.software_id.as_deref())?;
    optional(lua, &agent, "software_version", ua.software_version.as_deref())?;
    optional(lua, &agent, "uri", ua.uri.as_deref())?;
    optional(lua, &agent, "device", ua.device.as_deref())?;
    Ok(agent)
}

fn mechanisms_table(lua: &Lua, record: &ClientRecord) -> Result<Table> {
    let mechanisms = lua.create_table_with_capacity(0, record.mechanisms.len())?;
    for (name, used) in &record.mechanisms {
        mechanisms.raw_set(name.as_str(), *used)?;
    }
    Ok(mechanisms)
}

/// A record as the `clients` store keeps it (ARCHITECTURE.md §2), readable by the community module.
pub fn record_table(lua: &Lua, record: &ClientRecord) -> Result<Table> {
    let table = lua.create_table()?;
    table.raw_set("id", record.id.as_str())?;
    table.raw_set("first_seen", record.first_seen)?;
    table.raw_set("last_seen", record.last_seen)?;
    optional(lua, &table, "full_jid", record.full_jid.as_deref())?;
    table.raw_set("mechanisms", mechanisms_table(lua, record)?)?;
    table.raw_set("fast_auth", record.fast_auth)?;
    optional(lua, &table, "auth_token_id", record.auth_token_id.as_deref())?;
    if !record.user_agent.is_empty() {
        table.raw_set("user_agent", user_agent_table(lua, &record.user_agent)?)?;
    }
    if record.legacy {
        table.raw_set("legacy", true)?;
    }
    Ok(table)
}

/// The grant as `get_grant_info` shows it: no tokens.
fn grant_table(lua: &Lua, grant: &Grant) -> Result<Table> {
    let table = lua.create_table()?;
    table.raw_set("id", grant.id.as_str())?;
    table.raw_set("created", grant.created)?;
    table.raw_set("accessed", grant.accessed)?;
    table.raw_set("expires", grant.expires)?;
    let ua = &grant.user_agent;
    if !ua.is_empty() {
        let client = lua.create_table()?;
        optional(lua, &client, "name", ua.software.as_deref())?;
        optional(lua, &client, "id", ua.software_id.as_deref())?;
        optional(lua, &client, "version", ua.software_version.as_deref())?;
        optional(lua, &client, "uri", ua.uri.as_deref())?;
        let data = lua.create_table()?;
        data.raw_set("oauth2_client", client)?;
        table.raw_set("data", data)?;
    }
    Ok(table)
}

/// One entry in the community module's shape: the record's fields (or the grant's times and
/// client) with `id = "client/…" | "grant/…"`, `type`, and
/// `active = {password, fast, grant, connected}`.
pub fn entry_table(lua: &Lua, entry: &ClientEntry) -> Result<Table> {
    let table = lua.create_table()?;
    if let Some(record) = &entry.record {
        optional(lua, &table, "full_jid", record.full_jid.as_deref())?;
        optional(lua, &table, "auth_token_id", record.auth_token_id.as_deref())?;
        table.raw_set("fast_auth", record.fast_auth)?;
        if record.legacy {
            table.raw_set("legacy", true)?;
        }
        table.raw_set("mechanisms", mechanisms_table(lua, record)?)?;
    }
    if !entry.user_agent.is_empty() {
        table.raw_set("user_agent", user_agent_table(lua, &entry.user_agent)?)?;
    }
    table.raw_set("id", entry.listed_id.as_str())?;
    table.raw_set("type", entry.kind.protocol_type())?;
    table.raw_set("first_seen", entry.first_seen)?;
    table.raw_set("last_seen", entry.last_seen)?;
    table.raw_set("expires", entry.expires)?;
    table.raw_set("permission", entry.permission.as_str())?;
    let active = lua.create_table()?;
    active.raw_set("password", entry.access.password)?;
    if entry.access.fast {
        active.raw_set("fast", true)?;
    }
    if let Some(grant) = &entry.grant {
        active.raw_set("grant", grant_table(lua, grant)?)?;
    }
    if entry.access.connected {
        active.raw_set("connected", true)?;
    }
    table.raw_set("active", active)?;
    Ok(table)
}

/// `{ error = name|nil, revoked, password_protected, actions = { {"revoke_fast_tokens", id} |
/// {"revoke_grant", id} | {"close_session", index} } }`.
pub fn plan_table(lua: &Lua, plan: &RevocationPlan) -> Result<Table> {
    let result = lua.create_table()?;
    result.raw_set("error", plan.outcome.error_name())?;
    result.raw_set("revoked", plan.revoked.len())?;
    result.raw_set("password_protected", plan.password_protected.len())?;
    let actions = lua.create_table_with_capacity(plan.actions.len(), 0)?;
    for (index, action) in plan.actions.iter().enumerate() {
        let (verb, target) = match action {
            Action::RevokeFastTokens { client_id } => ("revoke_fast_tokens", Value::String(lua.create_string(client_id)?)),
            Action::RevokeGrant { grant_id } => ("revoke_grant", Value::String(lua.create_string(grant_id)?)),
            Action::CloseSession { session } => ("close_session", Value::Integer(*session as i64)),
        };
        let step = lua.create_table_with_capacity(2, 0)?;
        step.raw_seti(1, verb)?;
        step.raw_seti(2, target)?;
        actions.raw_seti(index + 1, step)?;
    }
    result.raw_set("actions", actions)?;
    Ok(result)
}

/// `{ client_id, is_new, write = "now"|"later", evicted = {ids}, notify = {session indices},
/// notice = text|nil }`.
pub fn login_outcome_table(lua: &Lua, outcome: &LoginOutcome, notify: &[usize], notice: Option<String>, notice_check_in: Option<f64>) -> Result<Table> {
    let table = lua.create_table()?;
    table.raw_set("client_id", outcome.client_id.as_str())?;
    table.raw_set("is_new", outcome.is_new)?;
    table.raw_set("write", match outcome.write {
        WriteTiming::Now => "now",
        WriteTiming::Later => "later",
    })?;
    table.raw_set("evicted", lua.create_sequence_from(outcome.evicted.iter().map(String::as_str))?)?;
    table.raw_set("notify", lua.create_sequence_from(notify.iter().copied())?)?;
    table.raw_set("notice", notice)?;
    table.raw_set("notice_check_in", notice_check_in)?;
    Ok(table)
}
