//! The one place where Lua meets the core: Lua tables in, core types, and Lua tables
//! (util.stanza objects among them) back out. Conversion is written by hand: it runs on
//! every list request over every stored record, where generic (serde) conversion is slow.
//!
//! Stored records are untrusted. A record with a field of the wrong type is skipped whole
//! and counted, never failing the list of the account's other clients.

use mlua::{Lua, LuaString, Result, Table, UserData, UserDataMethods, Value};

use crate::ids;
use crate::listing::{list_entries, Entry, Source};
use crate::model::{
    timestamp_from_f64, AccountFacts, ClientRecord, FastToken, Grant, GrantToken, SessionFact, Timestamp, UserAgent,
};
use crate::render::{render_clients, Element, Node, Protocol};
use crate::revocation::{parse_selector, plan_revocation_over, Action, Selector};
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
    if let Some(map) = as_table(get(&table, "tokens"))? {
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

/// Facts decoded from the Lua request table, with the Lua tables the records and grants came
/// from (returned as they are by `active_clients`) and how many stored items were skipped.
struct Decoded {
    facts: AccountFacts,
    record_tables: Vec<Table>,
    grant_tables: Vec<Table>,
    skipped: usize,
}

/// Request table: `records` (the clients store map), `grants` (`get_user_grants`),
/// `fast_tokens` (the fast_tokens store map), `sessions` (array of
/// `{full_jid, client_id, grant_id}`), `roles` (role name → priority), `password_updated`,
/// `account_role_priority`, `now`.
fn decode_facts(request: &Table) -> Result<Decoded> {
    let mut decoded = Decoded {
        facts: AccountFacts::default(),
        record_tables: Vec::new(),
        grant_tables: Vec::new(),
        skipped: 0,
    };
    let facts = &mut decoded.facts;
    let bad = |what: &str| mlua::Error::runtime(format!("client_management: request field '{what}' has the wrong type"));

    if let Some(records) = as_table(get(request, "records")).map_err(|_| bad("records"))? {
        for pair in records.pairs::<Value, Value>() {
            let (key, value) = pair?;
            let table = match &value {
                Value::Table(t) => Some(t.clone()),
                _ => None,
            };
            match (decode_record(key, value), table) {
                (Ok(record), Some(table)) => {
                    facts.records.push(record);
                    decoded.record_tables.push(table);
                }
                _ => decoded.skipped += 1,
            }
        }
    }

    let roles = as_table(get(request, "roles")).map_err(|_| bad("roles"))?;
    if let Some(grants) = as_table(get(request, "grants")).map_err(|_| bad("grants"))? {
        for pair in grants.pairs::<Value, Value>() {
            let (key, value) = pair?;
            let table = match &value {
                Value::Table(t) => Some(t.clone()),
                _ => None,
            };
            match (decode_grant(key, value, roles.as_ref()), table) {
                (Ok(grant), Some(table)) => {
                    facts.grants.push(grant);
                    decoded.grant_tables.push(table);
                }
                _ => decoded.skipped += 1,
            }
        }
    }

    if let Some(tokens) = as_table(get(request, "fast_tokens")).map_err(|_| bad("fast_tokens"))? {
        for pair in tokens.pairs::<Value, Value>() {
            let (key, value) = pair?;
            match (as_string(key), decode_fast_token(value)) {
                (Ok(Some(key)), Ok(token)) => {
                    facts.fast_tokens.insert(key, token);
                }
                _ => decoded.skipped += 1,
            }
        }
    }

    if let Some(sessions) = as_table(get(request, "sessions")).map_err(|_| bad("sessions"))? {
        for value in sessions.sequence_values::<Value>() {
            facts.sessions.push(decode_session(value?).map_err(|_| bad("sessions"))?);
        }
    }

    facts.password_updated = as_time(get(request, "password_updated")).map_err(|_| bad("password_updated"))?;
    facts.account_role_priority =
        as_time(get(request, "account_role_priority")).map_err(|_| bad("account_role_priority"))?;
    facts.now = as_number(get(request, "now")).map_err(|_| bad("now"))?.ok_or_else(|| bad("now"))?;
    Ok(decoded)
}

/// Builds a util.stanza object: `{name, attr, tags, [i] = child}` with stanza_mt.
fn element_to_stanza(lua: &Lua, element: &Element, stanza_mt: &Table) -> Result<Table> {
    let tags_count = element.children.iter().filter(|c| matches!(c, Node::Element(_))).count();
    let stanza = lua.create_table_with_capacity(element.children.len(), 3)?;
    let attr = lua.create_table_with_capacity(0, element.attrs.len())?;
    for (name, value) in &element.attrs {
        attr.raw_set(*name, value.as_str())?;
    }
    let tags = lua.create_table_with_capacity(tags_count, 0)?;
    let mut tag_index = 0;
    for (index, child) in element.children.iter().enumerate() {
        match child {
            Node::Element(child) => {
                let child = element_to_stanza(lua, child, stanza_mt)?;
                tag_index += 1;
                tags.raw_seti(tag_index, &child)?;
                stanza.raw_seti(index + 1, child)?;
            }
            Node::Text(text) => stanza.raw_seti(index + 1, text.as_str())?,
        }
    }
    stanza.raw_set("name", element.name)?;
    stanza.raw_set("attr", attr)?;
    stanza.raw_set("tags", tags)?;
    stanza.set_metatable(Some(stanza_mt.clone()))?;
    Ok(stanza)
}

/// `list_stanza(request, xmlns, stanza_mt)` → `<clients>` stanza, skipped count.
fn list_stanza(lua: &Lua, (request, xmlns, stanza_mt): (Table, LuaString, Table)) -> Result<(Table, usize)> {
    let protocol = Protocol::from_namespace(&xmlns.to_str()?)
        .ok_or_else(|| mlua::Error::runtime("client_management: unknown protocol namespace"))?;
    let decoded = decode_facts(&request)?;
    let entries = list_entries(&decoded.facts);
    let reply = render_clients(&entries, protocol);
    Ok((element_to_stanza(lua, &reply, &stanza_mt)?, decoded.skipped))
}

fn optional<'a>(lua: &Lua, table: &Table, key: &str, value: Option<&'a str>) -> Result<()> {
    if let Some(value) = value {
        table.raw_set(key, lua.create_string(value)?)?;
    }
    Ok(())
}

/// One entry in the community module's shape: the stored record (or a grant summary) with
/// `id = "client/…" | "grant/…"`, `type`, and `active = {password, fast, grant, connected}`.
fn entry_to_table(lua: &Lua, entry: &Entry, decoded: &Decoded) -> Result<Table> {
    let table = lua.create_table()?;
    match entry.source {
        Source::Record(index) => {
            for pair in decoded.record_tables[index].pairs::<Value, Value>() {
                let (key, value) = pair?;
                table.raw_set(key, value)?;
            }
        }
        Source::Grant(_) => {
            let ua = entry.user_agent;
            if !ua.is_empty() {
                let agent = lua.create_table()?;
                optional(lua, &agent, "software", ua.software.as_deref())?;
                optional(lua, &agent, "software_id", ua.software_id.as_deref())?;
                optional(lua, &agent, "software_version", ua.software_version.as_deref())?;
                optional(lua, &agent, "uri", ua.uri.as_deref())?;
                table.raw_set("user_agent", agent)?;
            }
            table.raw_set("expires", entry.expires)?;
        }
    }
    table.raw_set("id", entry.listed_id())?;
    table.raw_set("type", entry.kind.as_str())?;
    table.raw_set("first_seen", entry.first_seen)?;
    table.raw_set("last_seen", entry.last_seen)?;
    table.raw_set("permission", entry.permission.as_str())?;
    let active = lua.create_table()?;
    active.raw_set("password", entry.access.password)?;
    if entry.access.fast {
        active.raw_set("fast", true)?;
    }
    if let Some(grant) = entry.access.grant {
        active.raw_set("grant", &decoded.grant_tables[grant])?;
    }
    if entry.access.connected {
        active.raw_set("connected", true)?;
    }
    table.raw_set("active", active)?;
    Ok(table)
}

/// `active_clients(request)` → array of entries (community shape), skipped count.
fn active_clients(lua: &Lua, request: Table) -> Result<(Table, usize)> {
    let decoded = decode_facts(&request)?;
    let entries = list_entries(&decoded.facts);
    let list = lua.create_table_with_capacity(entries.len(), 0)?;
    for (index, entry) in entries.iter().enumerate() {
        list.raw_seti(index + 1, entry_to_table(lua, entry, &decoded)?)?;
    }
    Ok((list, decoded.skipped))
}

/// `plan_revocation(request, selector)` → `{error = name|nil, revoked, password_protected,
/// actions = {{"revoke_fast_tokens", id} | {"revoke_grant", id} | {"close_session", jid}}}`.
fn plan_revocation(lua: &Lua, (request, selector): (Table, LuaString)) -> Result<Table> {
    let decoded = decode_facts(&request)?;
    let entries = list_entries(&decoded.facts);
    // A selector that is not UTF-8 cannot name anything we store.
    let selector = selector.to_str().map(|s| s.to_owned()).unwrap_or_default();
    let plan = plan_revocation_over(&decoded.facts, &entries, &selector);
    let result = lua.create_table()?;
    result.raw_set("error", plan.outcome.error_name())?;
    result.raw_set("revoked", plan.revoked)?;
    result.raw_set("password_protected", plan.password_protected)?;
    result.raw_set("skipped", decoded.skipped)?;
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
        // `stats:add(request)` → skipped count.
        methods.add_method_mut("add", |_, this, request: Table| {
            let decoded = decode_facts(&request)?;
            this.0.add_account(&list_entries(&decoded.facts));
            Ok(decoded.skipped)
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

/// The module table: `version`, `list_stanza`, `active_clients`, `plan_revocation`,
/// `new_client_id`, `selector_type`, `new_software_stats`.
pub fn open(lua: &Lua) -> Result<Table> {
    let exports = lua.create_table()?;
    exports.set("version", crate::VERSION)?;
    exports.set("list_stanza", lua.create_function(list_stanza)?)?;
    exports.set("active_clients", lua.create_function(active_clients)?)?;
    exports.set("plan_revocation", lua.create_function(plan_revocation)?)?;
    exports.set("new_client_id", lua.create_function(new_client_id)?)?;
    exports.set("selector_type", lua.create_function(selector_type)?)?;
    exports.set("new_software_stats", lua.create_function(|_, ()| Ok(StatsHandle(SoftwareStats::new())))?)?;
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
            function request(records)
                return { records = records, now = 2000, password_updated = 100 }
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
                local list, skipped = core.active_clients(request(records))
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
                local req = request({ c = { id = "c", first_seen = 0, mechanisms = { PLAIN = 150 },
                    user_agent = { software = "Chat", device = "Phone" } } })
                req.grants = { g = { id = "g", created = 60, accessed = 60, tokens = {},
                    data = { oauth2_client = { name = "App", version = "2" } } } }
                local clients = core.list_stanza(req, "urn:xmpp:cam:0", stanza_mt)
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
             <client connected='false' id='grant/g' type='access'><first-seen>1970-01-01T00:01:00Z</first-seen>\
             <last-seen>1970-01-01T00:01:00Z</last-seen><auth><grant></grant></auth>\
             <permission status='normal'></permission><user-agent><software>App</software></user-agent></client>\
             </clients>"
        );
    }

    #[test]
    fn plan_revocation_returns_ordered_actions_and_error_names() {
        let lua = lua_with_core();
        let (plan, pw, missing): (String, String, String) = lua
            .load(
                r#"
                local req = request({
                    pw = { id = "pw", mechanisms = { PLAIN = 150 } },
                    app = { id = "app", mechanisms = { OAUTHBEARER = 150 }, auth_token_id = "g", full_jid = "u@h/app" },
                })
                req.grants = { g = { id = "g", created = 150, tokens = {} } }
                req.sessions = { { full_jid = "u@h/app", client_id = "app", grant_id = "g" } }
                local plan = core.plan_revocation(req, "client/app")
                local steps = {}
                for _, a in ipairs(plan.actions) do steps[#steps + 1] = a[1] .. ":" .. a[2] end
                return table.concat(steps, " "),
                    core.plan_revocation(req, "client/pw").error,
                    core.plan_revocation(req, "client/nope").error
                "#,
            )
            .eval()
            .unwrap();
        assert_eq!(plan, "revoke_fast_tokens:app revoke_grant:g close_session:u@h/app");
        assert_eq!(pw, "password-reset-required");
        assert_eq!(missing, "item-not-found");
    }

    #[test]
    fn malformed_requests_are_lua_errors_not_panics() {
        let lua = lua_with_core();
        let message: String = lua
            .load(r#"local ok, err = pcall(core.active_clients, { records = 5, now = 1 }); assert(not ok); return tostring(err)"#)
            .eval()
            .unwrap();
        assert!(message.contains("records"), "{message}");
        let ok: bool = lua.load(r#"return (pcall(core.list_stanza, { now = 1 }, "urn:bogus", stanza_mt))"#).eval().unwrap();
        assert!(!ok);
    }

    #[test]
    fn new_client_id_is_twelve_base64url_chars() {
        let lua = lua_with_core();
        let id: String = lua.load("return core.new_client_id()").eval().unwrap();
        assert_eq!(id.len(), 12);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }
}
