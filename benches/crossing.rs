//! The Lua -> Rust -> Lua crossing as Prosody makes it: an account's stored records in, a
//! util.stanza-shaped `<clients>` (or the API's entry tables) out; and a login recorded.
//! `list_serialized_cam` / `list_lua_tostring_cam`: the reply plus its wire bytes, made by
//! `core.serialize_stanza` (what the module writes) or by a Lua serialiser like util.stanza's;
//! `list_xml_cam`: the whole reply as the core's XML (a stream no stanza filter reads).
//!
//! `decode_by_*` compares the record decoder the module uses (hand-written, behind
//! `account:load("records", map)`) with mlua's serde decoding of the same map: each is ONE call
//! over the whole map that ends with the records loaded into a new account, so the two differ
//! only in how Lua tables become records.

use std::collections::HashMap;

use client_management::account::{Account, Policy};
use client_management::lua::open;
use client_management::model::{ClientRecord, UserAgent};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mlua::{Function, Lua, LuaSerdeExt, ObjectLike, Table};

const SETUP: &str = r#"
stanza_mt = { __index = {} }
engine = core.new_engine({ max_clients = 100000 })
function make_account(n)
    local records, grants, fast = {}, {}, {}
    for i = 1, n do
        local id = ("client-%06d"):format(i)
        local t = 1700000000 + (i * 37) % 100000
        local record = { id = id, first_seen = t, last_seen = t + 10, full_jid = "user@example.com/res-" .. i,
            mechanisms = {}, user_agent = { software = "Client " .. (i % 7), software_version = "1." .. (i % 3), device = "Phone" } }
        local kind = i % 4
        if kind == 0 then record.mechanisms["SCRAM-SHA-1"] = t + 10
        elseif kind == 1 then record.mechanisms["HT-SHA-256-NONE"] = t + 10; record.fast_auth = t + 10
        elseif kind == 2 then
            local gid = ("grant-%06d"):format(i)
            record.mechanisms.OAUTHBEARER = t + 10; record.auth_token_id = gid
            grants[gid] = { id = gid, created = t, accessed = t + 10, tokens = { ["sha256:x"] = { role = "prosody:member", expires = 1900000000 } },
                data = { oauth2_client = { name = "App", version = "2" } } }
        else record.mechanisms["SCRAM-SHA-1"] = 1600000000 end
        records[id] = record
    end
    local account = engine:new_account()
    account:load("records", records, nil, 1800000000)
    account:load("grants", grants, { ["prosody:member"] = 35 }, 1800000000)
    account:load("fast_tokens", fast, nil, 1800000000)
    return account, { sessions = {}, password_updated = 1700000000, account_role_priority = 35, now = 1800000000 }, records
end
function decode_by_hand(records)
    local account = engine:new_account()
    account:load("records", records, nil, 1800000000)
    return 0
end
function record_login(account, moment, i)
    return account:record_login({ client_id = ("client-%06d"):format(i), full_jid = "user@example.com/res", mechanism = "SCRAM-SHA-1",
        software = "Client", at = 1800000000 }, moment)
end
"#;

/// The `clients` record as serde would decode it: every field optional, numbers as Lua gives
/// them.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct SerdeRecord {
    id: Option<String>,
    first_seen: Option<f64>,
    last_seen: Option<f64>,
    full_jid: Option<String>,
    mechanisms: Option<HashMap<String, f64>>,
    fast_auth: Option<f64>,
    auth_token_id: Option<String>,
    user_agent: Option<HashMap<String, String>>,
    legacy: Option<bool>,
}

impl SerdeRecord {
    fn into_record(self, key: String) -> ClientRecord {
        let time = |t: Option<f64>| t.map(|t| t.floor() as i64);
        let mut ua = self.user_agent.unwrap_or_default();
        ClientRecord {
            id: self.id.unwrap_or(key),
            first_seen: time(self.first_seen),
            last_seen: time(self.last_seen),
            full_jid: self.full_jid,
            mechanisms: self.mechanisms.unwrap_or_default().into_iter().map(|(m, t)| (m, t.floor() as i64)).collect(),
            fast_auth: time(self.fast_auth),
            auth_token_id: self.auth_token_id,
            user_agent: UserAgent {
                software: ua.remove("software"),
                software_id: ua.remove("software_id"),
                software_version: ua.remove("software_version"),
                uri: ua.remove("uri"),
                device: ua.remove("device"),
            },
            legacy: self.legacy.unwrap_or(false),
        }
    }
}

fn bench_crossing(c: &mut Criterion) {
    let lua = Lua::new();
    lua.globals().set("core", open(&lua).unwrap()).unwrap();
    lua.load(SETUP).exec().unwrap();
    let decode_by_serde = lua
        .create_function(|lua, records: Table| {
            let decoded: HashMap<String, SerdeRecord> = lua.from_value(mlua::Value::Table(records))?;
            let records: Vec<ClientRecord> = decoded.into_iter().map(|(key, r)| r.into_record(key)).collect();
            let mut account = Account::new(Policy { max_clients: 100_000, ..Policy::default() });
            account.load_records(records);
            Ok(account.records().len())
        })
        .unwrap();
    let make_account: Function = lua.globals().get("make_account").unwrap();
    let decode_by_hand: Function = lua.globals().get("decode_by_hand").unwrap();
    let record_login: Function = lua.globals().get("record_login").unwrap();
    let stanza_mt: Table = lua.globals().get("stanza_mt").unwrap();
    lua.load(include_str!("stanza_tostring.lua")).exec().unwrap();
    let stanza_tostring: Function = lua.globals().get("stanza_tostring").unwrap();
    let serialize_stanza: Function = lua.globals().get::<Table>("core").unwrap().get("serialize_stanza").unwrap();

    let mut group = c.benchmark_group("crossing");
    for n in [10, 100, 1000, 10_000] {
        let (account, moment, records): (mlua::AnyUserData, Table, Table) = make_account.call(n).unwrap();
        group.bench_with_input(BenchmarkId::new("decode_by_hand", n), &records, |b, records| {
            b.iter(|| decode_by_hand.call::<usize>(records).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("decode_by_serde", n), &records, |b, records| {
            b.iter(|| decode_by_serde.call::<usize>(records).unwrap())
        });
        let list_stanza: Function = account.get("list_stanza").unwrap();
        let active_clients: Function = account.get("active_clients").unwrap();
        group.bench_with_input(BenchmarkId::new("list_stanza_cam", n), &(), |b, ()| {
            b.iter(|| {
                let clients: Table = list_stanza.call((&account, &moment, "urn:xmpp:cam:0", &stanza_mt)).unwrap();
                clients.raw_len()
            })
        });
        // The reply and its wire bytes (issue 16): serialised by the core from the Lua tree, as
        // the module writes it, against a Lua serialiser made like util.stanza's.
        group.bench_with_input(BenchmarkId::new("list_serialized_cam", n), &(), |b, ()| {
            b.iter(|| {
                let clients: Table = list_stanza.call((&account, &moment, "urn:xmpp:cam:0", &stanza_mt)).unwrap();
                let bytes: mlua::LuaString = serialize_stanza.call((&clients, &stanza_mt)).unwrap();
                bytes.as_bytes().len()
            })
        });
        // The reply on a stream where nothing reads stanzas: the core's XML, no Lua tree.
        let list_xml: Function = account.get("list_xml").unwrap();
        group.bench_with_input(BenchmarkId::new("list_xml_cam", n), &(), |b, ()| {
            b.iter(|| {
                let bytes: mlua::LuaString = list_xml.call((&account, &moment, "urn:xmpp:cam:0", "<iq type='result' id='x'>")).unwrap();
                bytes.as_bytes().len()
            })
        });
        group.bench_with_input(BenchmarkId::new("list_lua_tostring_cam", n), &(), |b, ()| {
            b.iter(|| {
                let clients: Table = list_stanza.call((&account, &moment, "urn:xmpp:cam:0", &stanza_mt)).unwrap();
                let bytes: mlua::LuaString = stanza_tostring.call(&clients).unwrap();
                bytes.as_bytes().len()
            })
        });
        group.bench_with_input(BenchmarkId::new("active_clients", n), &(), |b, ()| {
            b.iter(|| {
                let list: Table = active_clients.call((&account, &moment)).unwrap();
                list.raw_len()
            })
        });
        let mut i = 0;
        group.bench_with_input(BenchmarkId::new("record_login", n), &(), |b, ()| {
            b.iter(|| {
                i = i % n + 1;
                let outcome: Table = record_login.call((&account, &moment, i)).unwrap();
                outcome.raw_len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_crossing);
criterion_main!(benches);
