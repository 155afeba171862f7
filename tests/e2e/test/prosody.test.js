// Issue 18: the suite runs against Debian's Prosody 13.0.x (`make test-e2e-all`) and Prosody
// trunk (`make test-trunk`). This file checks, on whichever Prosody the run uses:
//   - that the servers are that Prosody (E2E_EXPECT_PROSODY_VERSION, set by run-all.sh) and
//     load no module from anywhere else: its own plugin directory, build/plugin, and only the
//     directories of E2E_EXTRA_PLUGIN_PATHS (for trunk: mod_sasl2* of prosody-modules, never
//     Prosody 13's own modules);
//   - the parts of Prosody the module is built on, where a new Prosody would most likely drift:
//     the events it hooks (fired, with the fields it reads), the functions of mod_tokenauth,
//     mod_sasl2_fast and usermanager it calls, its shell-command items (sections, arguments,
//     --dry-run flags) and its mod_cron daily task.
// Compared by hand (README "Tested Prosody versions"), 13.0.1 and trunk f14f1b331 do not differ
// in any of these; the other tests show the behaviour on both.

import assert from "node:assert/strict";
import path from "node:path";
import { describe } from "node:test";

import { useServer, e2eTest, eventually } from "../lib/harness.js";
import { PLUGIN_DIR, EXTRA_PLUGIN_PATHS, HOST, luaString } from "../lib/server.js";
import { xml } from "../lib/client.js";
import { listClients, ids, revoke, assertResult } from "../lib/manage.js";
import { discoItems, NS_COMMANDS, NS_DISCO_INFO, NODE_MANAGE } from "../lib/adhoc.js";
import { deleteAccount } from "../lib/inspect.js";

const shown = (res) => `exit ${res.code}\n--- stdout ---\n${res.stdout}--- stderr ---\n${res.stderr}`;
const within = (file, dir) => {
  const rel = path.relative(path.resolve(dir), path.resolve(file));
  return rel !== "" && !rel.startsWith("..") && !path.isAbsolute(rel);
};

describe("the Prosody under test", () => {
  const fx = useServer();

  e2eTest(fx, "is the Prosody of this run, loading modules only from its own plugin directory, build/plugin and E2E_EXTRA_PLUGIN_PATHS", async ({ t, server }) => {
    const info = await server.lua(`
      local modulemanager = require "prosody.core.modulemanager";
      local modules = {};
      for _, host in ipairs({ "*", ${luaString(HOST)} }) do
        for name, mod in pairs(modulemanager.get_modules(host)) do
          modules[#modules + 1] = { host = host, name = name, path = mod.module.path };
        end
      end
      -- Prosody's own plugin directory: the last of the search path (util.startup puts the
      -- installer's directory and plugin_paths before it).
      local own = prosody.paths.plugins:match("([^;]+)$");
      return { version = prosody.version, lua = _VERSION, plugins = own, modules = modules };`);
    t.diagnostic(`Prosody under test: ${info.version} (${info.lua}, its modules in ${info.plugins})`);

    const expected = process.env.E2E_EXPECT_PROSODY_VERSION;
    if (expected) {
      assert.equal(info.version, expected, "the servers are not the Prosody this run is for (PROSODY, PROSODYCTL)");
    }
    assert.equal(info.lua, "Lua 5.4");

    const ours = info.modules.find((m) => m.host === HOST && m.name === "client_management");
    assert.ok(ours, `mod_client_management is not loaded: ${JSON.stringify(info.modules)}`);
    assert.equal(path.resolve(ours.path), path.resolve(PLUGIN_DIR, "mod_client_management", "mod_client_management.lua"),
      "mod_client_management comes from build/plugin");
    const allowed = [info.plugins, PLUGIN_DIR, ...EXTRA_PLUGIN_PATHS];
    const strays = info.modules.filter((m) => !m.path || !allowed.some((dir) => within(m.path, dir)));
    assert.deepEqual(strays, [], `modules loaded from elsewhere than ${allowed.join(", ")}`);
    // Everything found through E2E_EXTRA_PLUGIN_PATHS is one of the community modules the suite
    // needs: for trunk, nothing of Prosody 13 comes in that way.
    const extra = info.modules.filter((m) => !within(m.path, info.plugins) && !within(m.path, PLUGIN_DIR));
    for (const m of extra) {
      assert.match(m.name, /^sasl2(_bind2|_fast|_sm)?$/, `${m.name} loaded from ${m.path}`);
    }
  });

  e2eTest(fx, "fires the events the module hooks, with the fields it reads; has the functions it calls", async ({ t, server, account, login }) => {
    // Observers just before the module's own handlers (same event, a higher priority), on the
    // host's bus and the global one, recording what the module would find in each event.
    await server.lua(`
      local seen = {};
      prosody.e2e_seen = seen;
      local function view(event)
        local s = event.session or event.origin;
        local h = s and s.sasl_handler;
        return {
          username = type(event.username), host = type(event.host), grant = type(event.grant), id = type(event.id),
          session = s and s.type or nil, session_username = s and type(s.username) or nil,
          mechanism = h and h.selected or nil, user_agent = h and type(h.user_agent) or nil,
          token_info = h and type(h.token_info) or nil,
          stanza = event.stanza and event.stanza.name or nil,
          node = event.node and type(event.node) or nil, reply = event.reply and type(event.reply) or nil,
          exists = event.exists and type(event.exists) or nil,
        };
      end
      local handlers = {};
      local function observe(bus, name, priority)
        local h = function (event) seen[#seen + 1] = { name = name, view = view(event) }; end;
        bus.add_handler(name, h, priority);
        handlers[#handlers + 1] = { bus = bus, name = name, h = h };
      end
      local host_events = prosody.hosts[${luaString(HOST)}].events;
      observe(host_events, "sasl2/c2s/success", 501);
      for _, name in ipairs({ "authentication-success", "resource-bind", "token-grant-created", "token-grant-revoked",
          "token-revoked", "account-disco-info", "account-disco-items-node", "account-disco-info-node",
          "iq-get/self/xmpp:prosody.im/protocol/manage-clients:list", "iq-set/self/urn:xmpp:cam:0:revoke",
          "iq-set/self/http://jabber.org/protocol/commands:command" }) do
        observe(host_events, name, 1);
      end
      observe(prosody.events, "user-deleted", 1);
      prosody.e2e_unobserve = function ()
        for _, o in ipairs(handlers) do o.bus.remove_handler(o.name, o.h); end
      end
      return true;`);
    t.after(() => server.lua(`if prosody.e2e_unobserve then prosody.e2e_unobserve() end; prosody.e2e_seen = nil; return true;`));

    // A SASL2 + Bind 2 login with a user agent, a legacy SASL login, a grant and its token
    // (created, the token revoked, the grant revoked through the module), disco and ad-hoc on
    // the account, a list and a revoke request, and the account deleted.
    const a = await account("events");
    const ua = { id: "events-sasl2-client", software: "Events App", device: "Events Phone" };
    const c = await login({ username: a.user, password: a.password, userAgent: ua });
    const legacy = await login({ username: a.user, password: a.password, sasl2: false });
    const g = await server.createGrant(a.user);
    const g2 = await server.createGrant(a.user);
    await server.lua(`
      local tokenauth = assert(prosody.hosts[${luaString(HOST)}].modules.tokenauth);
      return assert(tokenauth.revoke_token(${luaString(g2.token)}));`);
    await c.iq(xml("query", { xmlns: NS_DISCO_INFO }), { type: "get", to: c.bareJid });
    await c.iq(xml("query", { xmlns: NS_DISCO_INFO, node: NODE_MANAGE }), { type: "get", to: c.bareJid });
    await discoItems(c, c.bareJid, NS_COMMANDS);
    await c.iq(xml("command", { xmlns: NS_COMMANDS, node: NODE_MANAGE, action: "execute" }), { type: "set", to: c.bareJid });
    const listed = ids((await listClients(c)).clients);
    assert.ok(listed.includes(`client/${ua.id}`), `the SASL2 client is listed: ${listed}`);
    assert.ok(listed.includes(`grant/${g.grantId}`), `the grant is listed: ${listed}`);
    assertResult(await revoke(c, `grant/${g.grantId}`, { ns: "urn:xmpp:cam:0" }), "revoking the grant");
    await legacy.close();
    await c.close();
    await deleteAccount(server, a.user);

    const seen = await eventually(async () => {
      const s = await server.lua(`return prosody.e2e_seen;`);
      return s?.some((e) => e.name === "user-deleted") ? s : null;
    });
    assert.ok(seen, "user-deleted was not seen");
    t.diagnostic(`events seen: ${seen.map((e) => e.name).join(", ")}`);
    const all = (name) => seen.filter((e) => e.name === name).map((e) => e.view);
    const one = (name, pred = () => true) => {
      const found = all(name).filter(pred);
      assert.ok(found.length > 0, `${name} was not fired (or not as expected): ${JSON.stringify(all(name))}`);
      return found[0];
    };

    // Logins: mod_sasl2 leaves its handler on the session (mechanism, user agent) before Bind 2.
    assert.deepEqual(one("sasl2/c2s/success"), { username: "nil", host: "nil", grant: "nil", id: "nil",
      session: "c2s_unbound", session_username: "string", mechanism: "SCRAM-SHA-1", user_agent: "table", token_info: "nil" },
    "sasl2/c2s/success");
    one("authentication-success", (v) => v.session_username === "string" && v.mechanism === "SCRAM-SHA-1" && v.user_agent === "nil");
    one("resource-bind", (v) => v.session === "c2s" && v.session_username === "string");
    assert.equal(all("resource-bind").length, 2, "resource-bind: once per login (Bind 2 and legacy bind)");
    // mod_tokenauth: the username on every event, the grant on creation.
    one("token-grant-created", (v) => v.username === "string" && v.grant === "table");
    one("token-revoked", (v) => v.username === "string");
    one("token-grant-revoked", (v) => v.username === "string" && v.id === "string");
    // The account's disco and commands, the protocol requests (mod_disco, the stanza router).
    one("account-disco-info", (v) => v.reply === "table");
    one("account-disco-info-node", (v) => v.node === "string" && v.reply === "table");
    one("account-disco-items-node", (v) => v.node === "string" && v.reply === "table");
    one("iq-get/self/xmpp:prosody.im/protocol/manage-clients:list", (v) => v.stanza === "iq" && v.session === "c2s");
    one("iq-set/self/urn:xmpp:cam:0:revoke", (v) => v.stanza === "iq" && v.session === "c2s");
    one("iq-set/self/http://jabber.org/protocol/commands:command", (v) => v.stanza === "iq");
    // usermanager.delete_user, on the global bus, with the host.
    one("user-deleted", (v) => v.username === "string" && v.host === "string");

    // The functions the module calls in other modules and in usermanager.
    const fns = await server.lua(`
      local host = ${luaString(HOST)};
      local mods = prosody.hosts[host].modules;
      local um = require "prosody.core.usermanager";
      return {
        revoke_grant = type(mods.tokenauth.revoke_grant), revoke_fast_tokens = type(mods.sasl2_fast.revoke_fast_tokens),
        get_account_info = type(um.get_account_info), get_user_role = type(um.get_user_role),
        get_all_roles = type(um.get_all_roles), user_exists = type(um.user_exists),
        daily = type(mods.client_management.module.daily), may = type(mods.client_management.module.may),
      };`);
    for (const [name, type] of Object.entries(fns)) {
      assert.equal(type, "function", `${name} is not a function on this Prosody`);
    }
  });

  e2eTest(fx, "runs the module's shell commands (sections, arguments, --dry-run) and lists its daily task with mod_cron", async ({ server, account, login }) => {
    const help = await server.shell(["help", "clients"]);
    assert.equal(help.code, 0, shown(help));
    for (const cmd of ["clients stats <host>", "clients revoke <host> <selector>", "clients prune <host>"]) {
      assert.ok(help.stdout.includes(cmd), `help clients lists ${cmd}: ${shown(help)}`);
    }
    assert.equal(help.stdout.match(/^ *--dry-run$/gm)?.length, 2, `--dry-run flags of revoke and prune: ${shown(help)}`);
    const helpUser = await server.shell(["help", "user"]);
    for (const cmd of ["user clients <jid>", "user revoke_client <jid> <selector>"]) {
      assert.ok(helpUser.stdout.includes(cmd), `help user lists ${cmd}: ${shown(helpUser)}`);
    }

    const a = await account("shell");
    await login({ username: a.user, password: a.password, userAgent: { id: "shell-client", software: "Shell App" } });
    const listing = await eventually(async () => {
      const r = await server.shell(["user", "clients", `${a.user}@${HOST}`]);
      return r.code === 0 && /1 client\(s\)/.test(r.stdout) ? r : null;
    });
    assert.ok(listing, "user clients JID lists the client");
    const dry = await server.shell(["clients", "revoke", HOST, "software/Shell App", "--dry-run"]);
    assert.equal(dry.code, 0, shown(dry));
    assert.match(dry.stdout, /Dry run: 0 client\(s\) would be revoked, 1 need a password reset, 0 failed/, shown(dry));
    const prune = await server.shell(["clients", "prune", HOST, "--dry-run"]);
    assert.equal(prune.code, 0, shown(prune));
    assert.match(prune.stdout, /Dry run: 0 client record\(s\) would be deleted from 0 account\(s\), 0 account\(s\) failed/, shown(prune));

    const tasks = await server.shell(["cron", "tasks"]);
    assert.equal(tasks.code, 0, shown(tasks));
    // (the table cuts the id short: client_management/prune_client_…)
    const row = tasks.stdout.split("\n").find((l) => l.includes("client_management/prune_client") && l.includes("Prune client records"));
    assert.ok(row, `cron tasks lists the daily prune: ${shown(tasks)}`);
    assert.match(row, /\bdaily\b/, `the prune runs daily: ${row}`);
  });
});
