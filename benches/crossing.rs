//! The Lua -> Rust -> Lua crossing as Prosody makes it: a request table of N stored records
//! in, a util.stanza-shaped `<clients>` (or the API's entry tables) out.

use client_management::lua::open;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mlua::{Function, Lua, Table};

const SETUP: &str = r#"
stanza_mt = { __index = {} }
function make_request(n)
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
    local state = core.new_account_state()
    state:load_records(records)
    state:load_grants(grants, { ["prosody:member"] = 35 }, 1800000000)
    state:load_fast_tokens(fast)
    return state, { sessions = {}, password_updated = 1700000000, account_role_priority = 35, now = 1800000000 }, records
end
-- Decoding every stored record: hand-written (load_records) against serde (put_record).
function decode_by_hand(state, records) state:forget_records(); return state:load_records(records) end
function decode_by_serde(state, records)
    state:forget_records(); state:load_records(nil)
    for key, record in pairs(records) do state:put_record(key, record) end
end

"#;

fn bench_crossing(c: &mut Criterion) {
    let lua = Lua::new();
    lua.globals().set("core", open(&lua).unwrap()).unwrap();
    lua.load(SETUP).exec().unwrap();
    let make_request: Function = lua.globals().get("make_request").unwrap();
    let core: Table = lua.globals().get("core").unwrap();
    let list_stanza: Function = core.get("list_stanza").unwrap();
    let active_clients: Function = core.get("active_clients").unwrap();
    let stanza_mt: Table = lua.globals().get("stanza_mt").unwrap();
    let decode_by_hand: Function = lua.globals().get("decode_by_hand").unwrap();
    let decode_by_serde: Function = lua.globals().get("decode_by_serde").unwrap();

    let mut group = c.benchmark_group("crossing");
    for n in [10, 100, 1000, 10_000] {
        let (state, request, records): (mlua::AnyUserData, Table, Table) = make_request.call(n).unwrap();
        let decode_input = (state.clone(), records);
        group.bench_with_input(BenchmarkId::new("decode_by_hand", n), &decode_input, |b, (state, records)| {
            b.iter(|| decode_by_hand.call::<()>((state, records)).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("decode_by_serde", n), &decode_input, |b, (state, records)| {
            b.iter(|| decode_by_serde.call::<()>((state, records)).unwrap())
        });
        decode_by_hand.call::<()>((&decode_input.0, &decode_input.1)).unwrap();
        let input = (state, request);
        group.bench_with_input(BenchmarkId::new("list_stanza_cam", n), &input, |b, (state, req)| {
            b.iter(|| {
                let clients: Table = list_stanza.call((state, req, "urn:xmpp:cam:0", &stanza_mt)).unwrap();
                clients.raw_len()
            })
        });
        group.bench_with_input(BenchmarkId::new("active_clients", n), &input, |b, (state, req)| {
            b.iter(|| {
                let list: Table = active_clients.call((state, req)).unwrap();
                list.raw_len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_crossing);
criterion_main!(benches);
