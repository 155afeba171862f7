//! The one place where Lua meets the core: Lua tables in, core types, and Lua tables
//! (util.stanza objects among them) back out. Conversion is written by hand: it runs on
//! every list request over every stored record, where generic (serde) conversion is slow.
//!
//! Stored records are untrusted. A record with a field of the wrong type is skipped whole
//! and counted, never failing the list of the account's other clients.

use std::collections::HashMap;

use std::ffi::c_int;

use mlua::{ffi, AnyUserData, Lua, LuaString, Result, Table, UserData, UserDataMethods, Value};

use crate::ids;
use crate::listing::{list_entries, Entry, Source};
use crate::model::{
    timestamp_from_f64, AccountFacts, ClientRecord, FastToken, Grant, GrantToken, SessionFact, StoredRecord, Timestamp,
    UserAgent,
};
use crate::render::{render_clients, Element, Node, Protocol};
use crate::revocation::{parse_selector, plan_revocation as plan_revocation_for, Action, Selector};
use crate::stats::SoftwareStats;

/// A stored value had the wrong type; the record holding it is skipped.
struct Invalid;

type Field<T> = std::result::Result<Option<T>, Invalid>;

fn as_string(value: Value) -> Field<String> {
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

fn as_number(value: Value) -> Field<f64> {
    match value {
        Value::Nil => Ok(None),
        Value::Integer(i) => Ok(Some(i as f64)),
        Value::Number(n) if !n.is_nan() => Ok(Some(n)),
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

/// The same decoding through serde (`StoredRecord`): simpler, several times slower on a
/// thousand records, so used where one record at a time crosses (a login's update).
fn decode_record_serde(lua: &Lua, key: Value, value: Value) -> std::result::Result<ClientRecord, Invalid> {
    use mlua::LuaSerdeExt;
    let key = as_string(key)?.ok_or(Invalid)?;
    if !matches!(value, Value::Table(_)) {
        return Err(Invalid);
    }
    let stored: StoredRecord = lua.from_value(value).map_err(|_| Invalid)?;
    stored.into_record(&key).ok_or(Invalid)
}

/// `key` is the store key, used when the record does not carry its own id.
fn decode_record(key: Value, value: Value) -> std::result::Result<ClientRecord, Invalid> {
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
    let legacy = match get(&table, "legacy") {
        Value::Nil => false,
        Value::Boolean(b) => b,
        _ => return Err(Invalid),
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
        legacy,
    })
}

fn decode_grant(key: Value, value: Value, roles: Option<&Table>) -> std::result::Result<Grant, Invalid> {
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
                (Some(role), Some(roles)) => as_time(roles.raw_get(role).unwrap_or(Value::Nil))?,
                _ => None,
            };
            tokens.push(GrantToken { expires: as_time(get(&token, "expires"))?, role_priority });
        }
    }
    let mut user_agent = UserAgent::default();
    if let Some(data) = as_table(get(&table, "data"))? {
        if let Some(client) = as_table(get(&data, "oauth2_client"))? {
            user_agent = UserAgent {
                software: as_string(get(&client, "name"))?,
                software_id: as_string(get(&client, "id"))?,
                software_version: as_string(get(&client, "version"))?,
                uri: as_string(get(&client, "uri"))?,
                device: None,
            };
        }
    }
    Ok(Grant {
        id: as_string(get(&table, "id"))?.unwrap_or(key),
        created: as_time(get(&table, "created"))?,
        accessed: as_time(get(&table, "accessed"))?,
        expires: as_time(get(&table, "expires"))?,
        tokens,
        tokens_missing,
        user_agent,
    })
}

fn decode_fast_token(value: Value) -> std::result::Result<FastToken, Invalid> {
    let table = as_table(value)?.ok_or(Invalid)?;
    Ok(FastToken {
        issued_at: as_number(get(&table, "issued_at"))?.ok_or(Invalid)?,
        expires_at: as_number(get(&table, "expires_at"))?.ok_or(Invalid)?,
    })
}

fn decode_session(value: Value) -> std::result::Result<SessionFact, Invalid> {
    let table = as_table(value)?.ok_or(Invalid)?;
    Ok(SessionFact {
        full_jid: as_string(get(&table, "full_jid"))?.ok_or(Invalid)?,
        client_id: as_string(get(&table, "client_id"))?,
        grant_id: as_string(get(&table, "grant_id"))?,
    })
}

/// Decoded facts of one account, kept by the Lua module between requests (an LRU of
/// accounts) so a list request does not re-read and re-decode every stored item. Each part
/// is loaded from storage when missing and dropped when the Lua module learns it changed.
#[derive(Default)]
pub struct AccountState {
    facts: AccountFacts,
    record_index: HashMap<String, usize>,
    records_loaded: bool,
    grants_loaded_at: Option<f64>,
    fast_tokens_loaded: bool,
}

impl AccountState {
    /// `map` is the `clients` store of the account; returns how many records were skipped.
    fn load_records(&mut self, map: Option<Table>) -> Result<usize> {
        self.facts.records.clear();
        self.record_index.clear();
        let mut skipped = 0;
        if let Some(map) = map {
            for pair in map.pairs::<Value, Value>() {
                let (key, value) = pair?;
                match decode_record(key, value) {
                    Ok(record) => self.insert_record(record),
                    Err(Invalid) => skipped += 1,
                }
            }
        }
        self.records_loaded = true;
        Ok(skipped)
    }

    fn insert_record(&mut self, record: ClientRecord) {
        match self.record_index.get(&record.id) {
            Some(&index) => self.facts.records[index] = record,
            None => {
                self.record_index.insert(record.id.clone(), self.facts.records.len());
                self.facts.records.push(record);
            }
        }
    }

    /// A record the Lua module just stored. Ignored until the records are loaded (the load
    /// will read it); an undecodable one makes the next request reload from storage.
    fn put_record(&mut self, lua: &Lua, key: Value, value: Value) {
        if !self.records_loaded {
            return;
        }
        match decode_record_serde(lua, key, value) {
            Ok(record) => self.insert_record(record),
            Err(Invalid) => self.records_loaded = false,
        }
    }

    /// `map` is the account's `auth_tokens` store, `roles` maps role names to priorities.
    fn load_grants(&mut self, map: Option<Table>, roles: Option<Table>, now: f64) -> Result<usize> {
        self.facts.grants.clear();
        let mut skipped = 0;
        if let Some(map) = map {
            for pair in map.pairs::<Value, Value>() {
                let (key, value) = pair?;
                match decode_grant(key, value, roles.as_ref()) {
                    Ok(grant) => self.facts.grants.push(grant),
                    Err(Invalid) => skipped += 1,
                }
            }
        }
        self.grants_loaded_at = Some(now);
        Ok(skipped)
    }

    /// `map` is the account's `fast_tokens` store.
    fn load_fast_tokens(&mut self, map: Option<Table>) -> Result<usize> {
        self.facts.fast_tokens.clear();
        let mut skipped = 0;
        if let Some(map) = map {
            for pair in map.pairs::<Value, Value>() {
                let (key, value) = pair?;
                match (as_string(key), decode_fast_token(value)) {
                    (Ok(Some(key)), Ok(token)) => {
                        self.facts.fast_tokens.insert(key, token);
                    }
                    _ => skipped += 1,
                }
            }
        }
        self.fast_tokens_loaded = true;
        Ok(skipped)
    }

    /// The facts of this instant: `sessions` (array of `{full_jid, client_id, grant_id}`),
    /// `password_updated`, `account_role_priority`, `tokenless_grant_ttl`, `now`.
    fn facts_now(&mut self, request: &Table) -> Result<&AccountFacts> {
        if !(self.records_loaded && self.grants_loaded_at.is_some() && self.fast_tokens_loaded) {
            return Err(mlua::Error::runtime("client_management: account state used before it was loaded"));
        }
        let bad = |what: &str| mlua::Error::runtime(format!("client_management: request field '{what}' has the wrong type"));
        let facts = &mut self.facts;
        facts.sessions.clear();
        if let Some(sessions) = as_table(get(request, "sessions")).map_err(|_| bad("sessions"))? {
            for value in sessions.sequence_values::<Value>() {
                facts.sessions.push(decode_session(value?).map_err(|_| bad("sessions"))?);
            }
        }
        facts.password_updated = as_time(get(request, "password_updated")).map_err(|_| bad("password_updated"))?;
        facts.account_role_priority =
            as_time(get(request, "account_role_priority")).map_err(|_| bad("account_role_priority"))?;
        facts.tokenless_grant_ttl =
            as_time(get(request, "tokenless_grant_ttl")).map_err(|_| bad("tokenless_grant_ttl"))?;
        facts.now = as_number(get(request, "now")).map_err(|_| bad("now"))?.ok_or_else(|| bad("now"))?;
        Ok(&self.facts)
    }
}

impl UserData for AccountState {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("records_loaded", |_, this, ()| Ok(this.records_loaded));
        methods.add_method("grants_loaded_at", |_, this, ()| Ok(this.grants_loaded_at));
        methods.add_method("fast_tokens_loaded", |_, this, ()| Ok(this.fast_tokens_loaded));
        methods.add_method_mut("load_records", |_, this, map: Option<Table>| this.load_records(map));
        methods.add_method_mut("load_grants", |_, this, (map, roles, now): (Option<Table>, Option<Table>, f64)| {
            this.load_grants(map, roles, now)
        });
        methods.add_method_mut("load_fast_tokens", |_, this, map: Option<Table>| this.load_fast_tokens(map));
        methods.add_method_mut("put_record", |lua, this, (key, value): (Value, Value)| {
            this.put_record(lua, key, value);
            Ok(())
        });
        methods.add_method_mut("forget_records", |_, this, ()| {
            this.records_loaded = false;
            Ok(())
        });
        methods.add_method_mut("forget_grants", |_, this, ()| {
            this.grants_loaded_at = None;
            Ok(())
        });
        methods.add_method_mut("forget_fast_tokens", |_, this, ()| {
            this.fast_tokens_loaded = false;
            Ok(())
        });
    }
}

/// Stack slots `push_element` reads from: the stanza metatable, the empty `attr` and `tags`
/// tables every element without attributes or children shares, and the table of elements
/// already built in this reply.
#[derive(Clone, Copy)]
struct StanzaSlots {
    metatable: c_int,
    no_attrs: c_int,
    no_tags: c_int,
    built: c_int,
}

/// Elements below this depth that are identical (same name, attributes and content) are built
/// once per reply and the same table is used for each: a thousand clients mostly repeat a
/// handful of `<auth>`, `<permission>` and `<user-agent>` subtrees.
const SHARE_FROM_DEPTH: usize = 2;

struct Builder<'e> {
    slots: StanzaSlots,
    /// Element → its index in the `built` table.
    built: HashMap<&'e Element, ffi::lua_Integer>,
}

impl<'e> Builder<'e> {
    /// Pushes a util.stanza object for `element` onto the Lua stack: `{name, attr, tags,
    /// [i] = child}` with the stanza metatable. Written against the raw API because a large
    /// reply is tens of thousands of small tables, and each one costs (Prosody runs an eager
    /// collector); for the same reason leaves share one empty `attr` and `tags` table, and
    /// repeated subtrees one table. The shared empty tables are read-only (a write raises
    /// instead of leaking into siblings); a reply is serialized, never edited. Uses at most 4
    /// stack slots per nesting level.
    unsafe fn push(&mut self, state: *mut ffi::lua_State, element: &'e Element, depth: usize) {
        if depth >= SHARE_FROM_DEPTH {
            if let Some(&index) = self.built.get(element) {
                ffi::lua_rawgeti(state, self.slots.built, index);
                return;
            }
        }
        let slots = self.slots;
        let tags_count = element.children.iter().filter(|c| matches!(c, Node::Element(_))).count();
        ffi::lua_createtable(state, element.children.len() as c_int, 3);
        push_str(state, element.name);
        ffi::lua_setfield(state, -2, c"name".as_ptr());
        if element.attrs.is_empty() {
            ffi::lua_pushvalue(state, slots.no_attrs);
        } else {
            ffi::lua_createtable(state, 0, element.attrs.len() as c_int);
            for (name, value) in &element.attrs {
                push_str(state, name);
                push_str(state, value);
                ffi::lua_rawset(state, -3);
            }
        }
        ffi::lua_setfield(state, -2, c"attr".as_ptr());
        if element.children.is_empty() {
            ffi::lua_pushvalue(state, slots.no_tags);
        } else {
            ffi::lua_createtable(state, tags_count as c_int, 0);
        }
        let mut tag_index = 0;
        for (index, child) in element.children.iter().enumerate() {
            match child {
                Node::Element(child) => {
                    self.push(state, child, depth + 1);
                    ffi::lua_pushvalue(state, -1);
                    tag_index += 1;
                    ffi::lua_rawseti(state, -3, tag_index); // into tags
                }
                Node::Text(text) => push_str(state, text),
            }
            ffi::lua_rawseti(state, -3, index as ffi::lua_Integer + 1); // into the element
        }
        ffi::lua_setfield(state, -2, c"tags".as_ptr());
        ffi::lua_pushvalue(state, slots.metatable);
        ffi::lua_setmetatable(state, -2);
        if depth >= SHARE_FROM_DEPTH {
            let index = self.built.len() as ffi::lua_Integer + 1;
            ffi::lua_pushvalue(state, -1);
            ffi::lua_rawseti(state, slots.built, index);
            self.built.insert(element, index);
        }
    }
}

unsafe fn push_str(state: *mut ffi::lua_State, text: &str) {
    ffi::lua_pushlstring(state, text.as_ptr().cast(), text.len());
}

/// Builds the util.stanza object for `element` (see `Builder::push`). Runs in protected
/// mode: an allocation failure is a Lua error, not an abort.
fn element_to_stanza(lua: &Lua, element: &Element, stanza_mt: &Table) -> Result<Table> {
    let read_only = read_only_metatable(lua)?;
    let no_attrs = lua.create_table()?;
    no_attrs.set_metatable(Some(read_only.clone()))?;
    let no_tags = lua.create_table()?;
    no_tags.set_metatable(Some(read_only))?;
    let built = lua.create_table()?;
    let depth = element_depth(element);
    // SAFETY: the closure leaves exactly one new value (the stanza) above its four
    // arguments, removes those, and never indexes below them; exec_raw restores the stack.
    unsafe {
        lua.exec_raw((stanza_mt, no_attrs, no_tags, built), |state| {
            let top = ffi::lua_gettop(state);
            let slots = StanzaSlots { metatable: top - 3, no_attrs: top - 2, no_tags: top - 1, built: top };
            if ffi::lua_checkstack(state, 4 * depth as c_int + 4) == 0 {
                ffi::lua_settop(state, top - 4);
                ffi::lua_pushnil(state);
                return;
            }
            Builder { slots, built: HashMap::new() }.push(state, element, 0);
            ffi::lua_rotate(state, top - 3, 1); // the stanza below the arguments
            ffi::lua_settop(state, top - 3);
        })
    }
}

/// The metatable of the shared empty tables, made once per Lua state.
fn read_only_metatable(lua: &Lua) -> Result<Table> {
    const KEY: &str = "client_management.read_only";
    if let Ok(Some(metatable)) = lua.named_registry_value::<Option<Table>>(KEY) {
        return Ok(metatable);
    }
    let metatable = lua.create_table()?;
    metatable.raw_set(
        "__newindex",
        lua.create_function(|_, ()| -> Result<()> {
            Err(mlua::Error::runtime("client_management: shared empty stanza table is read-only"))
        })?,
    )?;
    lua.set_named_registry_value(KEY, &metatable)?;
    Ok(metatable)
}

fn element_depth(element: &Element) -> usize {
    1 + element
        .children
        .iter()
        .map(|child| match child {
            Node::Element(child) => element_depth(child),
            Node::Text(_) => 0,
        })
        .max()
        .unwrap_or(0)
}

/// Holds Lua's collector while a large reply is built, restarting it when dropped (errors
/// included). Prosody runs an eager incremental collector; building a thousand-client reply
/// would otherwise trigger a dozen full cycles over the whole heap instead of one afterwards.
struct CollectorPause<'a> {
    lua: &'a Lua,
    was_running: bool,
}

impl<'a> CollectorPause<'a> {
    fn new(lua: &'a Lua) -> Self {
        let was_running = lua.gc_is_running();
        if was_running {
            lua.gc_stop();
        }
        CollectorPause { lua, was_running }
    }
}

impl Drop for CollectorPause<'_> {
    fn drop(&mut self) {
        if self.was_running {
            self.lua.gc_restart();
        }
    }
}

/// `list_stanza(state, request, xmlns, stanza_mt)` → `<clients>` stanza.
fn list_stanza(
    lua: &Lua,
    (state, request, xmlns, stanza_mt): (AnyUserData, Table, LuaString, Table),
) -> Result<Table> {
    let protocol = Protocol::from_namespace(&xmlns.to_str()?)
        .ok_or_else(|| mlua::Error::runtime("client_management: unknown protocol namespace"))?;
    let mut state = state.borrow_mut::<AccountState>()?;
    let facts = state.facts_now(&request)?;
    let reply = render_clients(&list_entries(facts), protocol);
    let _pause = CollectorPause::new(lua);
    element_to_stanza(lua, &reply, &stanza_mt)
}

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
fn entry_to_table(lua: &Lua, entry: &Entry, facts: &AccountFacts) -> Result<Table> {
    let table = lua.create_table()?;
    if let Source::Record(index) = entry.source {
        let record = &facts.records[index];
        optional(lua, &table, "full_jid", record.full_jid.as_deref())?;
        optional(lua, &table, "auth_token_id", record.auth_token_id.as_deref())?;
        table.raw_set("fast_auth", record.fast_auth)?;
        if record.legacy {
            table.raw_set("legacy", true)?;
        }
        let mechanisms = lua.create_table_with_capacity(0, record.mechanisms.len())?;
        for (name, used) in &record.mechanisms {
            mechanisms.raw_set(name.as_str(), *used)?;
        }
        table.raw_set("mechanisms", mechanisms)?;
    }
    if !entry.user_agent.is_empty() {
        table.raw_set("user_agent", user_agent_table(lua, entry.user_agent)?)?;
    }
    table.raw_set("id", entry.listed_id())?;
    table.raw_set("type", entry.kind.as_str())?;
    table.raw_set("first_seen", entry.first_seen)?;
    table.raw_set("last_seen", entry.last_seen)?;
    table.raw_set("expires", entry.expires)?;
    table.raw_set("permission", entry.permission.as_str())?;
    let active = lua.create_table()?;
    active.raw_set("password", entry.access.password)?;
    if entry.access.fast {
        active.raw_set("fast", true)?;
    }
    if let Some(grant) = entry.access.grant {
        active.raw_set("grant", grant_table(lua, &facts.grants[grant])?)?;
    }
    if entry.access.connected {
        active.raw_set("connected", true)?;
    }
    table.raw_set("active", active)?;
    Ok(table)
}

/// `active_clients(state, request)` → array of entries (community shape).
fn active_clients(lua: &Lua, (state, request): (AnyUserData, Table)) -> Result<Table> {
    let mut state = state.borrow_mut::<AccountState>()?;
    let facts = state.facts_now(&request)?;
    let entries = list_entries(facts);
    let list = lua.create_table_with_capacity(entries.len(), 0)?;
    for (index, entry) in entries.iter().enumerate() {
        list.raw_seti(index + 1, entry_to_table(lua, entry, facts)?)?;
    }
    Ok(list)
}

/// `client_rows(state, request)` → the list as admins read it, one array per entry:
/// `{listed id, software label or false, first_seen, last_seen, expires, access summary}`
/// (times as numbers or false). Far cheaper than `active_clients` for a thousand clients.
fn client_rows(lua: &Lua, (state, request): (AnyUserData, Table)) -> Result<Table> {
    let mut state = state.borrow_mut::<AccountState>()?;
    let entries = list_entries(state.facts_now(&request)?);
    let rows = lua.create_table_with_capacity(entries.len(), 0)?;
    let time = |t: Option<Timestamp>| t.map_or(Value::Boolean(false), Value::Integer);
    for (index, entry) in entries.iter().enumerate() {
        let row = lua.create_table_with_capacity(6, 0)?;
        row.raw_seti(1, entry.listed_id())?;
        match entry.software_label() {
            Some(label) => row.raw_seti(2, label)?,
            None => row.raw_seti(2, false)?,
        }
        row.raw_seti(3, time(entry.first_seen))?;
        row.raw_seti(4, time(entry.last_seen))?;
        row.raw_seti(5, time(entry.expires))?;
        row.raw_seti(6, entry.access_summary())?;
        rows.raw_seti(index + 1, row)?;
    }
    Ok(rows)
}

/// `plan_revocation(state, request, selector)` → `{error = name|nil, revoked,
/// password_protected, actions = {{"revoke_fast_tokens", id} | {"revoke_grant", id} |
/// {"close_session", jid}}}`.
fn plan_revocation(lua: &Lua, (state, request, selector): (AnyUserData, Table, LuaString)) -> Result<Table> {
    let mut state = state.borrow_mut::<AccountState>()?;
    let facts = state.facts_now(&request)?;
    // A selector that is not UTF-8 cannot name anything we store.
    let selector = selector.to_str().map(|s| s.to_owned()).unwrap_or_default();
    let plan = plan_revocation_for(facts, &selector);
    let result = lua.create_table()?;
    result.raw_set("error", plan.outcome.error_name())?;
    result.raw_set("revoked", plan.revoked)?;
    result.raw_set("password_protected", plan.password_protected)?;
    let actions = lua.create_table_with_capacity(plan.actions.len(), 0)?;
    for (index, action) in plan.actions.iter().enumerate() {
        let (verb, target) = match action {
            Action::RevokeFastTokens { client_id } => ("revoke_fast_tokens", client_id),
            Action::RevokeGrant { grant_id } => ("revoke_grant", grant_id),
            Action::CloseSession { full_jid } => ("close_session", full_jid),
        };
        actions.raw_seti(index + 1, lua.create_sequence_from([verb, target.as_str()])?)?;
    }
    result.raw_set("actions", actions)?;
    Ok(result)
}

/// `selector_type(selector)` → "client" | "grant" | "software" | nil.
fn selector_type(_: &Lua, selector: LuaString) -> Result<Option<&'static str>> {
    let selector = selector.to_str().map(|s| s.to_owned()).unwrap_or_default();
    Ok(parse_selector(&selector).map(|parsed| match parsed {
        Selector::Client(_) => "client",
        Selector::Grant(_) => "grant",
        Selector::Software(_) => "software",
    }))
}

/// Host-wide statistics, fed one account's request at a time.
struct StatsHandle(SoftwareStats);

impl UserData for StatsHandle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // `stats:add(state, request)`.
        methods.add_method_mut("add", |_, this, (state, request): (AnyUserData, Table)| {
            let mut state = state.borrow_mut::<AccountState>()?;
            this.0.add_account(&list_entries(state.facts_now(&request)?));
            Ok(())
        });
        // `stats:totals()` → accounts, clients.
        methods.add_method("totals", |_, this, ()| Ok((this.0.accounts, this.0.clients)));
        // `stats:rows()` → array of {software, version, accounts, clients, last_seen}.
        methods.add_method("rows", |lua, this, ()| {
            let rows = this.0.rows();
            let list = lua.create_table_with_capacity(rows.len(), 0)?;
            for (index, row) in rows.iter().enumerate() {
                let item = lua.create_table()?;
                optional(lua, &item, "software", row.software.as_deref())?;
                optional(lua, &item, "version", row.version.as_deref())?;
                item.raw_set("accounts", row.accounts)?;
                item.raw_set("clients", row.clients)?;
                item.raw_set("last_seen", row.last_seen)?;
                list.raw_seti(index + 1, item)?;
            }
            Ok(list)
        });
    }
}

fn new_client_id(_: &Lua, (): ()) -> Result<String> {
    ids::generate_client_id().map_err(|e| mlua::Error::runtime(format!("client_management: no randomness: {e}")))
}

/// The module table: `version`, `new_account_state`, `list_stanza`, `active_clients`,
/// `client_rows`, `plan_revocation`, `new_client_id`, `selector_type`, `new_software_stats`.
pub fn open(lua: &Lua) -> Result<Table> {
    let exports = lua.create_table()?;
    exports.set("version", crate::VERSION)?;
    exports.set("list_stanza", lua.create_function(list_stanza)?)?;
    exports.set("active_clients", lua.create_function(active_clients)?)?;
    exports.set("client_rows", lua.create_function(client_rows)?)?;
    exports.set("plan_revocation", lua.create_function(plan_revocation)?)?;
    exports.set("new_client_id", lua.create_function(new_client_id)?)?;
    exports.set("selector_type", lua.create_function(selector_type)?)?;
    exports.set("new_software_stats", lua.create_function(|_, ()| Ok(StatsHandle(SoftwareStats::new())))?)?;
    exports.set("new_account_state", lua.create_function(|_, ()| Ok(AccountState::default()))?)?;
    Ok(exports)
}

#[cfg(feature = "module")]
#[mlua::lua_module]
fn client_management(lua: &Lua) -> Result<Table> {
    open(lua)
}

#[cfg(all(test, feature = "embedded-lua", not(feature = "module")))]
mod tests {
    use super::*;

    fn lua_with_core() -> Lua {
        let lua = Lua::new();
        lua.globals().set("core", open(&lua).unwrap()).unwrap();
        lua.load(
            r#"
            stanza_mt = { __index = {} }
            function serialize(s)
                if type(s) == "string" then return s end
                local out = { "<", s.name }
                local keys = {}
                for k in pairs(s.attr) do keys[#keys + 1] = k end
                table.sort(keys)
                for _, k in ipairs(keys) do out[#out + 1] = (" %s='%s'"):format(k, s.attr[k]) end
                out[#out + 1] = ">"
                for _, child in ipairs(s) do out[#out + 1] = serialize(child) end
                out[#out + 1] = "</" .. s.name .. ">"
                return table.concat(out)
            end
            request = { now = 2000, password_updated = 100 }
            function state_of(records, grants, fast_tokens)
                local state = core.new_account_state()
                local skipped = state:load_records(records)
                state:load_grants(grants, { ["prosody:guest"] = 15 }, 2000)
                state:load_fast_tokens(fast_tokens)
                return state, skipped
            end
            "#,
        )
        .exec()
        .unwrap();
        lua
    }

    #[test]
    fn a_record_with_a_wrong_type_is_skipped_and_the_rest_listed() {
        let lua = lua_with_core();
        let (count, skipped, ids): (i64, i64, String) = lua
            .load(
                r#"
                local good = { id = "good", mechanisms = { ["SCRAM-SHA-1"] = 150 }, last_seen = 150 }
                local records = { good = good, also = { mechanisms = { PLAIN = 120.5 } } }
                local bad_values = {
                    { last_seen = "yesterday" }, { mechanisms = "SCRAM" }, { mechanisms = { PLAIN = "now" } },
                    { user_agent = "Gajim" }, { user_agent = { software = 42 } }, { legacy = "yes" },
                    { full_jid = {} }, { id = 7 }, { first_seen = 0/0 }, "not a table",
                }
                for i, bad in ipairs(bad_values) do
                    if type(bad) == "table" then bad.mechanisms = bad.mechanisms or { PLAIN = 150 } end
                    records["bad" .. i] = bad
                end
                records[5] = { mechanisms = { PLAIN = 150 } } -- a non-string key
                local state, skipped = state_of(records)
                local list = core.active_clients(state, request)
                local ids = {}
                for _, entry in ipairs(list) do ids[#ids + 1] = entry.id end
                return #list, skipped, table.concat(ids, ",")
                "#,
            )
            .eval()
            .unwrap();
        assert_eq!((count, skipped), (2, 11));
        assert_eq!(ids, "client/also,client/good");
    }

    #[test]
    fn list_stanza_builds_util_stanza_tables() {
        let lua = lua_with_core();
        let xml: String = lua
            .load(
                r#"
                local state = state_of({ c = { id = "c", first_seen = 0, mechanisms = { PLAIN = 150 },
                    user_agent = { software = "Chat", device = "Phone" } } },
                    { g = { id = "g", created = 160, accessed = 160, tokens = {},
                    data = { oauth2_client = { name = "App", version = "2" } } } })
                local clients = core.list_stanza(state, request, "urn:xmpp:cam:0", stanza_mt)
                assert(getmetatable(clients) == stanza_mt)
                assert(#clients.tags == 2 and clients.tags[1] == clients[1])
                assert(getmetatable(clients.tags[1].tags[1]) == stanza_mt)
                return serialize(clients)
                "#,
            )
            .eval()
            .unwrap();
        assert_eq!(
            xml,
            "<clients xmlns='urn:xmpp:cam:0'>\
             <client connected='false' id='client/c' type='session'><first-seen>1970-01-01T00:00:00Z</first-seen>\
             <auth><password></password></auth><permission status='unrestricted'></permission>\
             <user-agent><software>Chat</software><device>Phone</device></user-agent></client>\
             <client connected='false' id='grant/g' type='access'><first-seen>1970-01-01T00:02:40Z</first-seen>\
             <last-seen>1970-01-01T00:02:40Z</last-seen><auth><grant></grant></auth>\
             <permission status='normal'></permission><user-agent><software>App</software></user-agent></client>\
             </clients>"
        );
    }

    #[test]
    fn repeated_subtrees_are_one_table_and_shared_empties_are_read_only() {
        let lua = lua_with_core();
        let (same_auth, same_agent, different_seen, xml, write_refused): (bool, bool, bool, String, bool) = lua
            .load(
                r#"
                local record = function (id, t) return { id = id, first_seen = t, mechanisms = { PLAIN = 150 },
                    user_agent = { software = "Chat" } } end
                local state = state_of({ a = record("a", 10), b = record("b", 20) })
                local clients = core.list_stanza(state, request, "xmpp:prosody.im/protocol/manage-clients", stanza_mt)
                local a, b = clients.tags[1], clients.tags[2]
                local ok = pcall(function () a.tags[2].attr.xmlns = "x" end)
                return a.tags[2] == b.tags[2], a.tags[3] == b.tags[3], a.tags[1] ~= b.tags[1],
                    serialize(clients), not ok
                "#,
            )
            .eval()
            .unwrap();
        assert!(same_auth && same_agent && different_seen);
        assert!(write_refused, "a shared empty attr table accepted a write");
        assert_eq!(xml.matches("<auth><password></password></auth>").count(), 2, "{xml}");
        assert_eq!(xml.matches("<software>Chat</software>").count(), 2, "{xml}");
    }

    #[test]
    fn cached_state_follows_put_record_and_forget() {
        let lua = lua_with_core();
        let (before, after, reloaded): (i64, i64, bool) = lua
            .load(
                r#"
                local state = state_of({ a = { id = "a", mechanisms = { PLAIN = 150 } } })
                local before = #core.active_clients(state, request)
                state:put_record("b", { id = "b", mechanisms = { PLAIN = 160 } })
                state:put_record("a", { id = "a", mechanisms = { PLAIN = 160 } }) -- replaces, not adds
                local after = #core.active_clients(state, request)
                state:put_record("c", { id = "c", mechanisms = "broken" })
                local ok = pcall(core.active_clients, state, request)
                return before, after, not ok and not state:records_loaded()
                "#,
            )
            .eval()
            .unwrap();
        assert_eq!((before, after), (1, 2));
        assert!(reloaded, "an undecodable record forces a reload");
    }

    #[test]
    fn grant_roles_and_validity_come_through() {
        let lua = lua_with_core();
        let (ids, permission, restricted): (String, String, String) = lua
            .load(
                r#"
                local grants = {
                    old = { id = "old", created = 50, accessed = 50, tokens = {} },       -- before password change
                    none = { id = "none", created = 150, accessed = 150 },                -- no tokens table
                    narrow = { id = "narrow", created = 150, accessed = 150,
                        tokens = { ["sha256:x"] = { role = "prosody:guest" } } },
                }
                local state = state_of({}, grants)
                local req = { now = 2000, password_updated = 100, account_role_priority = 20 }
                local list = core.active_clients(state, req)
                local ids = {}
                for _, entry in ipairs(list) do ids[#ids + 1] = entry.id end
                return table.concat(ids, ","), list[1].permission, list[1].active.grant.id
                "#,
            )
            .eval()
            .unwrap();
        assert_eq!(ids, "grant/narrow");
        assert_eq!(permission, "restricted");
        assert_eq!(restricted, "narrow");
    }

    #[test]
    fn plan_revocation_returns_ordered_actions_and_error_names() {
        let lua = lua_with_core();
        let (plan, pw, missing): (String, String, String) = lua
            .load(
                r#"
                local state = state_of({
                    pw = { id = "pw", mechanisms = { PLAIN = 150 } },
                    app = { id = "app", mechanisms = { OAUTHBEARER = 150 }, auth_token_id = "g", full_jid = "u@h/app" },
                }, { g = { id = "g", created = 150, tokens = {} } })
                local req = { now = 2000, password_updated = 100,
                    sessions = { { full_jid = "u@h/app", client_id = "app", grant_id = "g" } } }
                local plan = core.plan_revocation(state, req, "client/app")
                local steps = {}
                for _, a in ipairs(plan.actions) do steps[#steps + 1] = a[1] .. ":" .. a[2] end
                return table.concat(steps, " "),
                    core.plan_revocation(state, req, "client/pw").error,
                    core.plan_revocation(state, req, "client/nope").error
                "#,
            )
            .eval()
            .unwrap();
        assert_eq!(plan, "revoke_fast_tokens:app revoke_grant:g close_session:u@h/app");
        assert_eq!(pw, "password-reset-required");
        assert_eq!(missing, "item-not-found");
    }

    #[test]
    fn misuse_is_a_lua_error_not_a_panic() {
        let lua = lua_with_core();
        let message: String = lua
            .load(r#"local ok, err = pcall(core.active_clients, core.new_account_state(), request); assert(not ok); return tostring(err)"#)
            .eval()
            .unwrap();
        assert!(message.contains("before it was loaded"), "{message}");
        let message: String = lua
            .load(r#"local ok, err = pcall(core.active_clients, state_of({}), { now = "x" }); assert(not ok); return tostring(err)"#)
            .eval()
            .unwrap();
        assert!(message.contains("now"), "{message}");
        let ok: bool = lua
            .load(r#"return (pcall(core.list_stanza, state_of({}), request, "urn:bogus", stanza_mt))"#)
            .eval()
            .unwrap();
        assert!(!ok);
    }

    #[test]
    fn hand_written_and_serde_decoders_agree() {
        let lua = lua_with_core();
        let cases: Table = lua
            .load(
                r#"return {
                    { id = "a", first_seen = 1, last_seen = 2.5, full_jid = "u@h/r", mechanisms = { PLAIN = 3 },
                      fast_auth = 4, auth_token_id = "g", legacy = true,
                      user_agent = { software = "S", software_id = "s", software_version = "1", uri = "u", device = "d" },
                      extra = { anything = true } },
                    { mechanisms = {} }, {}, { id = 5 }, { last_seen = "x" }, { last_seen = 0/0 }, { last_seen = 1/0 },
                    { mechanisms = { PLAIN = "x" } }, { mechanisms = { [1] = 5 } }, { mechanisms = "x" },
                    { user_agent = "x" }, { user_agent = { software = 1 } }, { legacy = "yes" }, { legacy = false },
                    { full_jid = 7 }, { auth_token_id = {} }, { fast_auth = -1e300 },
                }"#,
            )
            .eval()
            .unwrap();
        for (index, case) in cases.sequence_values::<Value>().enumerate() {
            let case = case.unwrap();
            let by_hand = decode_record(Value::String(lua.create_string("key").unwrap()), case.clone());
            let by_serde = decode_record_serde(&lua, Value::String(lua.create_string("key").unwrap()), case);
            match (by_hand, by_serde) {
                (Ok(mut a), Ok(mut b)) => {
                    a.mechanisms.sort();
                    b.mechanisms.sort();
                    assert_eq!(a, b, "case {}", index + 1);
                }
                (Err(Invalid), Err(Invalid)) => {}
                (a, b) => panic!("case {}: hand-written ok={} serde ok={}", index + 1, a.is_ok(), b.is_ok()),
            }
        }
    }

    #[test]
    fn new_client_id_is_twelve_base64url_chars() {
        let lua = lua_with_core();
        let id: String = lua.load("return core.new_client_id()").eval().unwrap();
        assert_eq!(id.len(), 12);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }
}
