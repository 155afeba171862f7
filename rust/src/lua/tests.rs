//! The glue against a real Lua 5.4 (`cargo test --features embedded-lua`).

use mlua::{Lua, Table, Value};

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
        REMOVE = {}
        engine = core.new_engine({ max_clients = 3, retention = 100, write_delay = 10, store_remove = REMOVE })
        -- Carries out the driver's actions against `stored` (part -> data, or false: unreadable)
        -- until it asks for nothing more; returns the actions seen, by type.
        function drive(username, event, stored, m, e)
            e = e or engine
            local seen, actions = {}, e:handle(username, event, m or moment)
            while actions do
                local answer
                for _, a in ipairs(actions) do
                    seen[a.type] = seen[a.type] or {}
                    table.insert(seen[a.type], a)
                    if a.type == "read" then
                        local results = {}
                        for _, part in ipairs(a.parts) do
                            local data = stored[part]
                            results[#results + 1] = { part = part, data = data or nil, error = data == false and "unreadable" or nil }
                        end
                        answer = { type = "read", results = results, roles = {} }
                    elseif a.type == "write" then
                        answer = { type = "written", serial = a.serial, error = stored.write_error }
                    elseif a.type == "carry_out" then
                        answer = { type = "carried_out", complete = stored.complete ~= false }
                    end
                end
                actions = answer and e:handle(username, answer, m or moment)
            end
            return seen
        end
        moment = { now = 2000, password_updated = 100 }
        function account_of(records, grants, fast_tokens)
            local account = engine:new_account()
            local skipped = account:load("records", records, nil, 2000)
            account:load("grants", grants, { ["prosody:guest"] = 15 }, 2000)
            account:load("fast_tokens", fast_tokens, nil, 2000)
            return account, skipped
        end
        "#,
    )
    .exec()
    .unwrap();
    lua
}

#[test]
fn a_record_with_a_wrong_type_keeps_the_rest_and_only_what_names_nothing_is_skipped() {
    let lua = lua_with_core();
    let (count, skipped, ids, software): (i64, i64, String, String) = lua
        .load(
            r#"
            local good = { id = "good", mechanisms = { ["SCRAM-SHA-1"] = 150 }, last_seen = 150 }
            local records = { good = good, also = { mechanisms = { PLAIN = 120.5 } } }
            local bad_values = {
                { last_seen = "yesterday" }, { mechanisms = "SCRAM" }, { mechanisms = { PLAIN = "now" } },
                { user_agent = "Gajim" }, { user_agent = { software = 42, device = "Pho\255ne", uri = {} } },
                { legacy = "yes" }, { full_jid = {} }, { id = 7 }, { first_seen = 0/0 }, "not a table",
            }
            for i, bad in ipairs(bad_values) do
                if type(bad) == "table" then bad.mechanisms = bad.mechanisms or { PLAIN = 150 } end
                records["bad" .. i] = bad
            end
            records[5] = { mechanisms = { PLAIN = 150 } } -- a non-string key
            local account, skipped = account_of(records)
            local list = account:active_clients(moment)
            local ids, software = {}, nil
            for _, entry in ipairs(list) do
                ids[#ids + 1] = entry.id
                if entry.id == "client/bad5" then
                    software = entry.user_agent.software .. "|" .. entry.user_agent.device .. "|" .. tostring(entry.user_agent.uri)
                end
            end
            return #list, skipped, table.concat(ids, ","), software
            "#,
        )
        .eval()
        .unwrap();
    // Without a mechanism of the right shape bad2 and bad3 have no access: not listed.
    assert_eq!((count, skipped), (9, 2));
    assert_eq!(ids, "client/also,client/bad1,client/bad4,client/bad5,client/bad6,client/bad7,client/bad8,client/bad9,client/good");
    assert_eq!(software, "42|Pho\u{FFFD}ne|nil");
}

#[test]
fn a_grant_mod_tokenauth_accepts_is_listed_whatever_its_oauth_data_holds() {
    let lua = lua_with_core();
    let (listed, skipped): (String, i64) = lua
        .load(
            r#"
            local function grant(id, data, extra)
                local g = { id = id, created = 1500, accessed = 1500, tokens = { ["sha256:x"] = { role = "prosody:registered" } }, data = data }
                for k, v in pairs(extra or {}) do g[k] = v end
                return g
            end
            local grants = {
                utf8 = grant("utf8", { oauth2_client = { name = "Bad\255\254Name", version = "1" } }),
                number = grant("number", { oauth2_client = { name = 42, version = 1.5, uri = true } }),
                string = grant("string", { oauth2_client = "Evil App" }),
                data = grant("data", "not a table"),
                controls = grant("controls", { oauth2_client = { name = "A\27[2J\7\0\8pp" } }),
                role = grant("role", nil, { tokens = { ["sha256:y"] = { role = 5 } } }),
                numeric_id = grant(1234, nil),
                text_token = grant("text_token", nil, { tokens = { ["sha256:z"] = "junk" } }),
                accessed = grant("accessed", nil, { accessed = "soon" }),
                -- mod_tokenauth itself raises on these (comparisons with a string, pairs() of a string):
                bad_expires = grant("bad_expires", nil, { expires = "never" }),
                bad_created = grant("bad_created", nil, { created = "today" }),
                bad_tokens = grant("bad_tokens", nil, { tokens = "none" }),
                bad_token_expiry = grant("bad_token_expiry", nil, { tokens = { ["sha256:w"] = { expires = "x" } } }),
            }
            local account = engine:new_account()
            account:load("records", {}, nil, 2000)
            local skipped = account:load("grants", grants, { ["prosody:registered"] = 20 }, 2000)
            account:load("fast_tokens", {}, nil, 2000)
            local out = {}
            for _, entry in ipairs(account:active_clients(moment)) do
                local ua = entry.user_agent or {}
                out[#out + 1] = ("%s=%s/%s"):format(entry.id, tostring(ua.software), tostring(ua.software_version))
            end
            table.sort(out)
            return table.concat(out, " "), skipped
            "#,
        )
        .eval()
        .unwrap();
    assert_eq!(skipped, 4);
    assert_eq!(
        listed,
        "grant/accessed=nil/nil grant/controls=A[2Jpp/nil grant/data=nil/nil grant/number=42/1.5 grant/numeric_id=nil/nil \
         grant/role=nil/nil grant/string=nil/nil grant/text_token=nil/nil grant/utf8=Bad\u{FFFD}\u{FFFD}Name/1"
    );
}

#[test]
fn list_stanza_builds_util_stanza_tables() {
    let lua = lua_with_core();
    let xml: String = lua
        .load(
            r#"
            local account = account_of({ c = { id = "c", first_seen = 0, mechanisms = { PLAIN = 150 },
                user_agent = { software = "Chat", device = "Phone" } } },
                { g = { id = "g", created = 160, accessed = 160, tokens = {},
                data = { oauth2_client = { name = "App", version = "2" } } } })
            local clients = account:list_stanza(moment, "urn:xmpp:cam:0", stanza_mt)
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
fn no_two_clients_share_a_mutable_table_and_shared_empties_are_read_only() {
    let lua = lua_with_core();
    let (distinct, edit_stays_local, write_refused): (bool, bool, bool) = lua
        .load(
            r#"
            local record = function (id, t) return { id = id, first_seen = t, mechanisms = { PLAIN = 150 },
                user_agent = { software = "Chat" } } end
            local account = account_of({ a = record("a", 10), b = record("b", 20) })
            local clients = account:list_stanza(moment, "xmpp:prosody.im/protocol/manage-clients", stanza_mt)
            local a, b = clients.tags[1], clients.tags[2]
            local distinct = a.tags[2] ~= b.tags[2] and a.tags[3] ~= b.tags[3] and a.tags[3].tags[1] ~= b.tags[3].tags[1]
            -- A stanzas/out filter editing one client's <user-agent> edits only that one.
            a.tags[3].tags[1][1] = "Edited"
            local edit_stays_local = serialize(b):find("<software>Chat</software>", 1, true) ~= nil
            local ok = pcall(function () a.tags[2].attr.xmlns = "x" end)
            return distinct, edit_stays_local, not ok
            "#,
        )
        .eval()
        .unwrap();
    assert!(distinct, "a subtree is shared between clients");
    assert!(edit_stays_local, "editing one client's user agent changed another's");
    assert!(write_refused, "a shared empty attr table accepted a write");
}

#[test]
fn logins_go_through_the_driver_one_event_at_a_time() {
    let lua = lua_with_core();
    let (reads, written, again, pending): (String, String, String, i64) = lua
        .load(
            r#"
            local stored = { records = { old = { id = "old", last_seen = 1, mechanisms = { PLAIN = 1 } } } }
            local login = { client_id = "phone", full_jid = "u@h/phone", mechanism = "PLAIN", software = "Chat",
                device = 42, at = 1000 }
            local seen = drive("u", { type = "login", stream = "s1", login = login }, stored)
            local reads = table.concat(seen.read[1].parts, ",")
            local phone = seen.write[1].changes.phone
            assert(phone.user_agent.software == "Chat" and phone.user_agent.device == "42", "a device that is a number becomes text")
            assert(phone.mechanisms.PLAIN == 1000 and phone.first_seen == 1000 and phone.full_jid == "u@h/phone")
            assert(seen.new_client[1].client.id == "phone" and seen.new_client[1].stream == "s1")
            local keys = {}
            for k in pairs(seen.write[1].changes) do keys[#keys + 1] = k end
            table.sort(keys)
            -- Known now: no read, stored later.
            local second = drive("u", { type = "login", stream = "s1", login = login }, {})
            local again = ("%s %s %g"):format(tostring(second.read), tostring(second.write), second.timer[1].after)
            return reads, table.concat(keys, ","), again, #engine:pending()
            "#,
        )
        .eval()
        .unwrap();
    assert_eq!(reads, "records");
    assert_eq!(written, "phone");
    assert_eq!(again, "nil nil 10");
    assert_eq!(pending, 1);
}

#[test]
fn evictions_are_written_as_removals_with_the_stores_marker() {
    let lua = lua_with_core();
    let removed: bool = lua
        .load(
            r#"
            local stored = { records = {
                a = { id = "a", last_seen = 1, mechanisms = { PLAIN = 1 } },
                b = { id = "b", last_seen = 2, mechanisms = { PLAIN = 200 } },
                c = { id = "c", last_seen = 3, mechanisms = { PLAIN = 300 } },
            }, grants = {}, fast_tokens = {} }
            local seen = drive("u", { type = "login", stream = "s", login = { full_jid = "u@h/new", mechanism = "PLAIN", at = 1000 } }, stored)
            local changes = seen.write[1].changes
            local new_id = seen.new_client[1].client.id
            assert(changes[new_id].legacy == true)
            return changes.a == REMOVE
            "#,
        )
        .eval()
        .unwrap();
    assert!(removed);
}

#[test]
fn unreadable_records_and_deleted_accounts_are_answers_not_errors() {
    let lua = lua_with_core();
    let (logged, timer, after_delete, parts): (String, f64, i64, String) = lua
        .load(
            r#"
            local login = { client_id = "x", mechanism = "PLAIN", at = 1 }
            local m = { now = 2000, sessions = { { key = "s" } } }
            local seen = drive("u", { type = "login", stream = "s", login = login }, { records = false }, m)
            local asked = drive("w", { type = "ask", question = "active_clients" }, { records = false }, m)
            local parts = table.concat(asked.read[1].parts, ",") .. " " .. asked.answer[1].error
            drive("u", { type = "deleted" }, {})
            local after = drive("u", { type = "tick" }, { records = {} }, m)
            local n = 0
            for _ in pairs(after) do n = n + 1 end
            return seen.log[1].level .. ": " .. seen.log[1].message, seen.timer[1].after, n, parts
            "#,
        )
        .eval()
        .unwrap();
    assert_eq!(logged, "error: Unable to read records of u: unreadable");
    assert_eq!(timer, 10.0);
    assert_eq!(after_delete, 0, "nothing is done for a deleted account");
    assert_eq!(parts, "records,grants,fast_tokens unreadable");
}

#[test]
fn questions_are_answered_or_refused_as_lua_data() {
    let lua = lua_with_core();
    let (refused, note, reads, choices, count, lines): (String, String, i64, i64, i64, String) = lua
        .load(
            r#"
            local unreadable = { records = false, grants = {}, fast_tokens = {} }
            local refused = drive("u", { type = "ask", question = "client_lines", width = 80 }, unreadable).answer[1].error
            local seen = drive("v", { type = "ask", question = "manage_form" }, unreadable)
            local stored = { records = { pw = { id = "pw", mechanisms = { PLAIN = 150 } } }, grants = {}, fast_tokens = {} }
            local form = drive("x", { type = "ask", question = "manage_form" }, stored).reply[1].form
            local listing = drive("x", { type = "ask", question = "client_lines", width = 80 }, stored).reply[1]
            return refused, seen.reply[1].note.level .. ": " .. seen.reply[1].note.text, #seen.read,
                #form[2].options, listing.count, table.concat(listing.lines, "\n")
            "#,
        )
        .eval()
        .unwrap();
    assert_eq!(refused, "unreadable");
    assert_eq!(note, "error: Your clients could not be read; try again later.");
    assert_eq!(reads, 1, "every part read once, in one request");
    assert_eq!((choices, count), (1, 1));
    assert!(lines.contains("client/pw"), "{lines}");
}

#[test]
fn walks_answer_each_account_as_lua_data() {
    let lua = lua_with_core();
    let (summary, lines, pruned, pending): (String, String, i64, i64) = lua
        .load(
            r#"
            local stats = core.new_software_stats()
            local function record(id, software)
                return { id = id, mechanisms = { PLAIN = 150 }, user_agent = { software = software } }
            end
            for name, records in pairs({ a = { x = record("x", "Chat"), y = record("y", "Chat") }, b = { z = record("z", "Chat") } }) do
                local seen = drive(name, { type = "ask", question = "software_stats" }, { records = records })
                stats:add(seen.reply[1].stats)
            end
            local old = { id = "old", last_seen = 1000 } -- no way in left, past retention
            local seen = drive("c", { type = "ask", question = "prune" }, { records = { old = old } })
            return stats:summary(), table.concat(stats:lines(80), "\n"), seen.reply[1].pruned.deleted, #seen.write
            "#,
        )
        .eval()
        .unwrap();
    assert_eq!(summary, "3 client(s) on 2 account(s)");
    assert!(lines.contains("Chat"), "{lines}");
    assert_eq!((pruned, pending), (1, 1), "stored at once");
    let pending: i64 = lua.load(r#"return #engine:pending()"#).eval().unwrap();
    assert_eq!(pending, 0, "nothing left to store");
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
                noid = { created = 150, accessed = 1990, tokens = {} },               -- no id field
                narrow = { id = "narrow", created = 150, accessed = 150,
                    tokens = { ["sha256:x"] = { role = "prosody:guest" } } },
            }
            local account = account_of({}, grants)
            local m = { now = 2000, password_updated = 100, account_role_priority = 20 }
            local list = account:active_clients(m)
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
fn plans_name_streams_by_their_index_and_errors_by_name() {
    let lua = lua_with_core();
    let (plan, pw, missing, grant_without_records): (String, String, String, String) = lua
        .load(
            r#"
            local stored = {
                records = {
                    pw = { id = "pw", mechanisms = { PLAIN = 150 } },
                    app = { id = "app", mechanisms = { OAUTHBEARER = 150 }, auth_token_id = "g", full_jid = "u@h/app" },
                },
                grants = { g = { id = "g", created = 150, accessed = 1990, tokens = {} } },
            }
            local m = { now = 2000, password_updated = 100, sessions = {
                { full_jid = "u@h/pw", client_id = "pw" },
                { client_id = "app", grant_id = "g" }, -- authenticated, not bound
            } }
            local function steps(seen)
                local out = {}
                for _, a in ipairs(seen.carry_out[1].plan.actions) do out[#out + 1] = a[1] .. ":" .. a[2] end
                return table.concat(out, " ")
            end
            local function revoke(username, selector, data)
                return drive(username, { type = "revoke", selector = selector }, data or stored, m)
            end
            local unread = { records = false, grants = stored.grants }
            return steps(revoke("u", "client/app")),
                revoke("u", "client/pw").answer[1].error,
                revoke("u", "client/nope").answer[1].error,
                steps(revoke("v", "grant/g", unread)) .. " / " .. tostring(revoke("w", "client/app", unread).answer[1].error)
            "#,
        )
        .eval()
        .unwrap();
    assert_eq!(plan, "revoke_fast_tokens:app revoke_grant:g close_session:2");
    assert_eq!(pw, "password-reset-required");
    assert_eq!(missing, "item-not-found");
    assert_eq!(grant_without_records, "revoke_fast_tokens:app revoke_grant:g close_session:2 / internal-server-error");
}

#[test]
fn options_decode_with_never_as_no_limit() {
    let lua = lua_with_core();
    let deleted: i64 = lua
        .load(
            r#"
            local keeper = core.new_engine({ retention = math.huge, tokenless_grant_ttl = math.huge })
            local seen = drive("u", { type = "ask", question = "prune" }, { records = { x = { id = "x" } } }, moment, keeper)
            return seen.reply[1].pruned.deleted
            "#,
        )
        .eval()
        .unwrap();
    assert_eq!(deleted, 0);
    let ok: bool = lua.load(r#"return (pcall(core.new_engine, { max_clients = "many" }))"#).eval().unwrap();
    assert!(!ok, "a wrongly typed option is an error");
}

#[test]
fn misuse_is_a_lua_error_not_a_panic() {
    let lua = lua_with_core();
    let message: String = lua
        .load(r#"local ok, err = pcall(engine.new_account(engine).active_clients, engine:new_account(), moment); assert(not ok); return tostring(err)"#)
        .eval()
        .unwrap();
    assert!(message.contains("before they were read"), "{message}");
    let message: String = lua
        .load(r#"local a = account_of({}); local ok, err = pcall(a.active_clients, a, { now = "x" }); assert(not ok); return tostring(err)"#)
        .eval()
        .unwrap();
    assert!(message.contains("now"), "{message}");
    let checks: Table = lua
        .load(
            r#"
            local a = account_of({})
            return {
                (pcall(a.list_stanza, a, moment, "urn:bogus", stanza_mt)),
                (pcall(a.record_login, a, { at = "soon" }, moment)),
                (pcall(a.load, a, "bogus", nil, nil, 1)),
                (pcall(engine.handle, engine, "u", { type = "ask", question = "bogus" }, moment)),
                (pcall(engine.handle, engine, "u", { type = "ask", question = "web", request = "page", web = a, context = {} }, moment)),
            }
            "#,
        )
        .eval()
        .unwrap();
    for ok in checks.sequence_values::<bool>() {
        assert!(!ok.unwrap());
    }
}

#[test]
fn small_helpers() {
    let lua = lua_with_core();
    let (long, fine): (Option<String>, Value) = lua
        .load(r#"return core.client_id_problem(("x"):rep(257)), core.client_id_problem(("x"):rep(256))"#)
        .eval()
        .unwrap();
    assert_eq!(long.as_deref(), Some("Client identifier too long (at most 256 bytes)"));
    assert!(matches!(fine, Value::Nil));
    let marker = std::str::from_utf8(&CLIENT_MANAGEMENT_VERSION_MARKER).unwrap();
    assert_eq!(marker, format!("client_management native core {} for Lua 5.4\0", crate::VERSION));
}

/// What people read reaches Lua as data: errors in util.error's shape, forms in
/// util.dataforms' layout, shell commands as mod_admin_shell takes them, texts and tallies.
#[test]
fn words_as_data() {
    let lua = lua_with_core();
    let summary: String = lua
        .load(
            r##"
            local e = core.error("password-reset-required", "urn:xmpp:cam:0")
            assert(e.type == "cancel" and e.condition == "service-unavailable" and e.text == "Password reset required")
            assert(e.extra.namespace == "urn:xmpp:cam:0" and e.extra.condition == "password-reset-required")
            assert(core.error("forbidden").text == nil)
            assert(core.unnamed_client(nil).text == "Missing client id" and core.unnamed_client("") ~= nil)
            assert(core.unnamed_client("client/x") == nil)
            assert(core.selector_problem({}) ~= nil and core.selector_problem("grant/g") == nil)
            local step, err = core.adhoc_step("next", "submit")
            assert(step == "bad-action" and err.condition == "bad-request" and err.extra.condition == "bad-action")
            assert(select(2, core.adhoc_step("execute", nil)) == nil)
            local form = core.adhoc_form("manage", { { label = "Gajim", value = "client/a" } })
            assert(form.title == "Manage clients" and form[1].name == "FORM_TYPE" and form[1].type == "hidden")
            assert(form[2].name == "revoke" and form[2].options[1].value == "client/a")
            form = core.adhoc_form("sign-out-others", "Sign out 1 other client(s)")
            assert(form[2].type == "boolean" and form[2].label == "Sign out 1 other client(s)")
            assert(core.adhoc_form("sign-out-others")[2].label == "Sign out all other clients")
            assert(not pcall(core.adhoc_form, "nope"))
            local note = core.adhoc_note("unreadable")
            assert(note.level == "error" and note.text:match("try again later"))
            local commands = core.adhoc_commands()
            assert(#commands == 2 and commands[2].key == "sign-out-others" and commands[2].node:match("#sign%-out%-others$"))
            local shell = core.shell_commands()
            assert(#shell == 5 and shell[4].name == "revoke" and shell[4].flags.kv_params.dry_run == true)
            assert(shell[1].args[1].name == "jid" and shell[1].host_selector == "jid" and shell[1].flags == nil)
            assert(core.shell_text("clients", 3) == "3 client(s)")
            assert(core.shell_text("revocation-failed", "item-not-found") == "Client not found")
            assert(not pcall(core.shell_text, "clients", "3"))
            local walk, why = core.new_host_revocation("client/x", false)
            assert(walk == nil and why == "Supply software/NAME or software/NAME/VERSION")
            walk = core.new_host_revocation("software/App", true)
            assert(walk:plan(2, 1) == false)
            local prune = core.new_host_prune(false)
            prune:pruned(2); prune:failed()
            local deleted, accounts, failed = prune:counts()
            assert(deleted == 2 and accounts == 1 and failed == 1)
            local stats = core.new_software_stats()
            stats:unreadable()
            local lines = stats:lines(80)
            assert(#lines == 2 and lines[2] == "1 account(s) could not be read, see the log")
            return walk:summary() .. " / " .. stats:summary()
            "##,
        )
        .eval()
        .unwrap();
    assert_eq!(summary, "Dry run: 2 client(s) would be revoked, 1 need a password reset, 0 failed / 0 client(s) on 0 account(s)");
}

/// `core.serialize_stanza` makes what util.stanza's tostring makes (the reference in
/// benches/stanza_tostring.lua), for list replies and for trees a filter may have changed.
#[test]
fn serialize_stanza_matches_util_stanza_tostring() {
    let lua = lua_with_core();
    lua.load(include_str!("../../../benches/stanza_tostring.lua")).exec().unwrap();
    let checked: i64 = lua
        .load(
            r#"
            local function el(name, attr, ...)
                local e = setmetatable({ name = name, attr = attr or {}, tags = {} }, stanza_mt)
                for _, child in ipairs({ ... }) do
                    e[#e + 1] = child
                    if type(child) == "table" then e.tags[#e.tags + 1] = child end
                end
                return e
            end
            local account = account_of({
                c = { id = "c", first_seen = 0, mechanisms = { PLAIN = 150 },
                    user_agent = { software = "Chat <&> 'q' \"d\"", device = "Phone & Co" } },
                d = { id = "d", first_seen = 10, mechanisms = { PLAIN = 160 } } },
                { g = { id = "g", created = 160, accessed = 160, tokens = {},
                data = { oauth2_client = { name = "App", version = "2", uri = "https://x/?a=1&b='2'" } } } })
            local trees = {}
            for _, ns in ipairs({ "urn:xmpp:cam:0", "xmpp:prosody.im/protocol/manage-clients" }) do
                local clients = account:list_stanza(moment, ns, stanza_mt)
                trees[#trees + 1] = clients
                -- as a reply, and as a filter may leave it
                local iq = el("iq", { type = "result", id = "x'<1>", to = "a@b/c" }, clients)
                trees[#trees + 1] = iq
                local edited = account:list_stanza(moment, ns, stanza_mt)
                edited.tags[1].attr.edited = "by & <filter>"
                edited.tags[1].attr["urn:x:ext\1flag"] = "o'k"
                edited.tags[1][#edited.tags[1] + 1] = el("note", { xmlns = ns }, "same ns, left out")
                edited.tags[1][#edited.tags[1] + 1] = el("other", { xmlns = "urn:x:other" }, el("inner", { xmlns = "urn:x:other" }), el("empty"))
                trees[#trees + 1] = el("iq", { type = "result", id = "e" }, edited, "text & more")
            end
            for i, tree in ipairs(trees) do
                local ours, reference = core.serialize_stanza(tree, stanza_mt), stanza_tostring(tree)
                assert(ours == reference, ("tree %d:\n%s\n%s"):format(i, tostring(ours), reference))
            end
            return #trees
            "#,
        )
        .eval()
        .unwrap();
    assert_eq!(checked, 6);
}

/// What only Prosody's serialiser can do is left to it (nil), never guessed.
#[test]
fn serialize_stanza_leaves_what_it_cannot_do_to_prosody() {
    let lua = lua_with_core();
    let results: Vec<bool> = lua
        .load(
            r#"
            local function el(name, attr, ...)
                local e = setmetatable({ name = name, attr = attr or {}, tags = {} }, stanza_mt)
                for i, child in ipairs({ ... }) do e[i] = child end
                return e
            end
            local deep = el("leaf")
            for _ = 1, 100 do deep = el("wrap", nil, deep) end
            local proxied = setmetatable({ name = "x", attr = {}, tags = {} }, { __index = function () return "y" end })
            local pairs_attr = el("x", setmetatable({}, { __pairs = function () return next, {} end }))
            local cases = {
                el("x", nil, 42),                       -- a number as text
                el("x", { n = 5 }),                     -- a number as attribute value
                el("x", nil, proxied),                  -- a child with its own __index
                pairs_attr,                             -- attributes with __pairs
                deep,                                   -- deeper than 64 levels
                el("x", nil, {}),                       -- a child table without a name
                "not a table",
            }
            local out = {}
            for i, case in ipairs(cases) do out[i] = core.serialize_stanza(case, stanza_mt) == nil end
            -- and a plain one still works
            out[#out + 1] = core.serialize_stanza(el("x", { a = "1" }, "t"), stanza_mt) == "<x a='1'>t</x>"
            return out
            "#,
        )
        .eval()
        .unwrap();
    assert_eq!(results, vec![true; 8]);
}

/// With `as_queued`, the bytes are what util.stanza makes of mod_smacks's copy (`st.clone`:
/// attributes copied into `{}` in pairs order), whose attribute order can differ from the
/// original's: a replay after resumption is byte-identical.
#[test]
fn serialize_stanza_as_queued_matches_the_clone_mod_smacks_replays() {
    let lua = lua_with_core();
    lua.load(include_str!("../../../benches/stanza_tostring.lua")).exec().unwrap();
    let (checked, differed): (i64, i64) = lua
        .load(
            r#"
            local function clone(s)
                if type(s) == "string" then return s end
                local attr = {}
                for k, v in pairs(s.attr) do attr[k] = v end
                local c = setmetatable({ name = s.name, attr = attr, tags = {} }, stanza_mt)
                for i, child in ipairs(s) do
                    c[i] = clone(child)
                    if type(child) == "table" then c.tags[#c.tags + 1] = c[i] end
                end
                return c
            end
            local checked, differed = 0, 0
            for i = 1, 300 do
                local records = {}
                for j = 1, 3 do
                    local id = ("c%d-%d"):format(i, j)
                    records[id] = { id = id, first_seen = j, mechanisms = { PLAIN = 150 },
                        user_agent = { software = "Chat", software_version = tostring(i) } }
                end
                local clients = account_of(records):list_stanza(moment, "xmpp:prosody.im/protocol/manage-clients", stanza_mt)
                -- attribute names vary, so that some sets are ordered differently by the copy
                local iq = setmetatable({ name = "iq", attr = { type = "result", id = "q" .. i, ["x-" .. i] = "1", ["y-" .. i] = "2" },
                    tags = { clients }, clients }, stanza_mt)
                local queued = clone(iq)
                local plain = core.serialize_stanza(iq, stanza_mt)
                local as_queued = core.serialize_stanza(iq, stanza_mt, true)
                assert(as_queued == stanza_tostring(queued), as_queued .. "\n" .. stanza_tostring(queued))
                checked = checked + 1
                if plain ~= as_queued then differed = differed + 1 end
            end
            return checked, differed
            "#,
        )
        .eval()
        .unwrap();
    assert_eq!(checked, 300);
    // The copy's order differs from the original's for some trees: what the option is for.
    assert!(differed > 0, "no tree where the copy's attribute order differs (of {checked})");
}

#[test]
fn a_listing_asked_for_as_xml_is_one_lua_string_made_once_per_body() {
    let lua = lua_with_core();
    let (first_len, same, allocated_kib, tree, changed): (i64, bool, f64, bool, bool) = lua
        .load(
            r#"
            local records = {}
            for i = 1, 60 do
                records["c"..i] = { id = "c"..i, first_seen = 1000, last_seen = 1500 + i, mechanisms = { PLAIN = 1500 },
                    user_agent = { software = "Chat "..i, device = "Phone" } }
            end
            local stored = { records = records, grants = {}, fast_tokens = {} }
            local list = { type = "list", xmlns = "urn:xmpp:cam:0", xml = true }
            local first = drive("u", list, stored).listing[1].xml
            assert(type(first) == "string" and first:sub(1, 32) == "<clients xmlns='urn:xmpp:cam:0'>", first)
            collectgarbage("collect")
            collectgarbage("stop")
            local before = collectgarbage("count")
            local second = drive("u", list, stored).listing[1].xml
            local allocated = collectgarbage("count") - before
            collectgarbage("restart")
            -- Without `xml` the tree, as before.
            local tree = drive("u", { type = "list", xmlns = "urn:xmpp:cam:0" }, stored).listing[1]
            local other = drive("u", list, stored, { now = 2000, password_updated = 1600 }).listing[1].xml
            return #first, first == second, allocated, tree.xml == nil and tree.clients ~= nil, other ~= first
            "#,
        )
        .eval()
        .unwrap();
    assert!(first_len > 10_000, "{first_len}");
    assert!(same, "the cached body again");
    assert!(allocated_kib * 1024.0 < first_len as f64 / 4.0, "a hit made no new copy: {allocated_kib} KiB for {first_len} bytes");
    assert!(tree, "the tree when XML is not asked for");
    assert!(changed, "a password change: every password client lost its access");
}
