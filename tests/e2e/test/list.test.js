// Recording logins and listing clients: ARCHITECTURE.md §3, §4, §6 (and §8's API).

import assert from "node:assert/strict";
import { describe } from "node:test";

import { useServer, e2eTest, eventually, sleep } from "../lib/harness.js";
import { MODULE_FILE, luaString } from "../lib/server.js";
import { xml, rawConnect } from "../lib/client.js";
import {
  NS_MC, NS_CAM, LEGACY_ID, listClients, revoke, entry, ids, assertTimestamps,
  isoSeconds, unixOf, nowSeconds, assertError,
} from "../lib/manage.js";

/** Assert a reply timestamp lies within [from, to] (unix seconds, inclusive, 1 s slack). */
function assertWithin(ts, from, to, what) {
  const t = unixOf(ts);
  assert.ok(t >= from - 1 && t <= to + 1, `${what}: ${ts} not within ${isoSeconds(from)}..${isoSeconds(to)}`);
}

describe("listing clients", () => {
  const fx = useServer();

  e2eTest(fx, "mod_client_management is built and loaded", async ({ server }) => {
    assert.ok(await server.moduleLoaded("client_management"),
      `mod_client_management is not loaded on the host (module file ${MODULE_FILE}); see prosody.log`);
  });

  e2eTest(fx, "SASL2 password client: listed with its user agent and <password/>", async ({ account, login }) => {
    const a = await account();
    const t0 = nowSeconds();
    const c = await login({
      username: a.user, password: a.password,
      userAgent: { id: "e2e-sasl2-pw", software: "E2E SASL2 Client", device: "E2E Laptop" },
    });
    const t1 = nowSeconds();
    const { clients } = await listClients(c);
    assert.deepEqual(ids(clients), ["client/e2e-sasl2-pw"]);
    const e = entry(clients, "client/e2e-sasl2-pw");
    assert.equal(e.type, "session");
    assert.equal(e.connected, "true");
    assert.deepEqual(e.auth, ["password"]);
    for (const flag of e.authEl.getChildElements()) {
      assert.equal(flag.children.length, 0, `auth flags are empty: ${e.authEl}`);
    }
    assert.equal(e.software, "E2E SASL2 Client");
    assert.equal(e.device, "E2E Laptop");
    assertTimestamps(clients);
    assertWithin(e.firstSeen, t0, t1, "first-seen");
    assertWithin(e.lastSeen, t0, t1, "last-seen");
  });

  e2eTest(fx, "a closed client stays listed by its password, connected='false'", async ({ server, account, login }) => {
    const a = await account();
    const c = await login({ username: a.user, password: a.password, userAgent: { id: "e2e-gone" } });
    const full = c.jid;
    await c.close();
    assert.ok(await eventually(async () => !(await server.hasSession(full))), "session ended on the server");
    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "e2e-viewer" } });
    const { clients } = await listClients(viewer);
    const e = entry(clients, "client/e2e-gone");
    assert.equal(e.connected, "false");
    assert.deepEqual(e.auth, ["password"]);
    assert.equal(entry(clients, "client/e2e-viewer").connected, "true");
  });

  e2eTest(fx, "a password change ends password and FAST access of earlier logins", async ({ server, account, login }) => {
    const a = await account();
    const store = { token: null };
    const c = await login({ username: a.user, password: a.password, fast: store, userAgent: { id: "e2e-before-change" } });
    assert.ok(store.token);
    const full = c.jid;
    await c.close();
    assert.ok(await eventually(async () => !(await server.hasSession(full))));
    // password_updated has a resolution of one second; "at or after" it counts
    await sleep(1100);
    const newPassword = `${a.password}-new`;
    await server.changePassword(a.user, newPassword);
    const viewer = await login({ username: a.user, password: newPassword, userAgent: { id: "e2e-after-change" } });
    const { clients } = await listClients(viewer);
    assert.deepEqual(ids(clients), ["client/e2e-after-change"]);
    assert.deepEqual(clients[0].auth, ["password"]);
  });

  e2eTest(fx, "FAST login shows <fast/>", async ({ account, login }) => {
    const a = await account();
    const ua = { id: "e2e-fast", software: "E2E FAST Client", device: "E2E Phone" };
    const store = { token: null };
    const first = await login({ username: a.user, password: a.password, fast: store, userAgent: ua });
    assert.ok(store.token, "a FAST token was issued");
    await first.close();

    const c = await login({ username: a.user, fast: { token: store.token }, userAgent: ua });
    assert.equal(c.sent.find((el) => el.name === "authenticate").attrs.mechanism, "HT-SHA-256-NONE");
    const { clients } = await listClients(c);
    const e = entry(clients, "client/e2e-fast");
    assert.equal(e.connected, "true");
    assert.deepEqual(e.auth, ["fast", "password"]);
    assert.equal(e.software, "E2E FAST Client");
    assert.equal(e.device, "E2E Phone");
  });

  e2eTest(fx, "a FAST token issued but not used yet counts as <fast/> (password client)", async ({ account, login }) => {
    const a = await account();
    const store = { token: null };
    await login({ username: a.user, password: a.password, fast: store, userAgent: { id: "e2e-unused-fast", software: "E2E" } });
    assert.ok(store.token, "a FAST token was issued");
    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "e2e-viewer" } });
    const { clients } = await listClients(viewer);
    assert.deepEqual(entry(clients, "client/e2e-unused-fast").auth, ["fast", "password"]);
    assert.deepEqual(entry(clients, "client/e2e-viewer").auth, ["password"]);
  });

  e2eTest(fx, "a FAST token issued but not used yet counts as <fast/> (password-less client)", async ({ server, account, login }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    const store = { token: null };
    const c = await login({ username: a.user, oauthToken: g.token, fast: store, userAgent: { id: "e2e-oauth-unused-fast" } });
    assert.ok(store.token, "a FAST token was issued");
    await c.close();
    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "e2e-viewer" } });
    const { clients } = await listClients(viewer);
    const e = entry(clients, "client/e2e-oauth-unused-fast");
    assert.deepEqual(e.auth, ["bearer-token", "fast"]);
    assert.equal(e.type, "session");
    assert.ok(!ids(clients).includes(`grant/${g.grantId}`), "the grant is listed once, as the session");
  });

  e2eTest(fx, "legacy client: generated 12-char id, the same again for the same resource", async ({ server, account, login }) => {
    const a = await account();
    const c1 = await login({ username: a.user, password: a.password, sasl2: false, resource: "legacy-res" });
    const l1 = (await listClients(c1)).clients;
    assert.equal(l1.length, 1, `one client: ${ids(l1)}`);
    const [e1] = l1;
    const id = e1.id.replace(/^client\//, "");
    assert.match(e1.id, /^client\//);
    assert.match(id, LEGACY_ID);
    assert.equal(e1.type, "session");
    assert.equal(e1.connected, "true");
    assert.deepEqual(e1.auth, ["password"]);
    assertTimestamps(l1);
    await c1.close();
    await eventually(async () => !(await server.hasSession(`${a.jid}/legacy-res`)));

    const c2 = await login({ username: a.user, password: a.password, sasl2: false, resource: "legacy-res" });
    const l2 = (await listClients(c2)).clients;
    assert.deepEqual(ids(l2), [e1.id], "same record again");
    assert.equal(l2[0].connected, "true");

    // another resource is another client
    const c3 = await login({ username: a.user, password: a.password, sasl2: false, resource: "other-res" });
    const l3 = (await listClients(c3)).clients;
    assert.equal(l3.length, 2, `${ids(l3)}`);
    for (const e of l3) assert.match(e.id.replace(/^client\//, ""), LEGACY_ID);

    // drop-in format: the record is marked legacy
    const stored = await server.readStore("clients", a.user);
    assert.ok(stored?.includes(`[${luaString(id)}]`), `record ${id} in clients store`);
    assert.match(stored, /\["legacy"\] = true/);
  });

  e2eTest(fx, "SASL2 client without Bind 2 is listed, connected='true'", async ({ account, login }) => {
    const a = await account();
    const c = await login({
      username: a.user, password: a.password, bind2: false, resource: "late-bind",
      userAgent: { id: "e2e-nobind2", software: "E2E No-Bind2 Client" },
    });
    assert.equal(c.jid, `${a.jid}/late-bind`);
    const { clients } = await listClients(c);
    const e = entry(clients, "client/e2e-nobind2");
    assert.equal(e.connected, "true");
    assert.equal(e.type, "session");
    assert.deepEqual(e.auth, ["password"]);
    assert.equal(e.software, "E2E No-Bind2 Client");
  });

  e2eTest(fx, "SASL2 without user-agent id (not strict): login completes, requests are answered", async ({ account, login }) => {
    const a = await account();
    const c = await login({ username: a.user, password: a.password, userAgent: false, timeout: 5000 });
    const { clients } = await listClients(c);
    assertTimestamps(clients);
    const c2 = await login({ username: a.user, password: a.password, userAgent: { id: null, software: "No Id" }, bind2: false, timeout: 5000 });
    await listClients(c2);
  });

  e2eTest(fx, "a tokenauth grant is listed as type='access' id='grant/<id>' with <bearer-token/>", async ({ server, account, login }) => {
    const a = await account();
    const client = { name: "E2E Grant App", uri: "https://grant.invalid/app", id: "e2e-grant-app", version: "3.1" };
    const g = await server.createGrant(a.user, { client });
    const grant = (await server.userGrants(a.user))[g.grantId];
    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "e2e-viewer" } });
    const { clients } = await listClients(viewer);
    const e = entry(clients, `grant/${g.grantId}`);
    assert.equal(e.type, "access");
    assert.equal(e.connected, "false");
    assert.deepEqual(e.auth, ["bearer-token"]);
    assert.equal(e.software, client.name);
    assert.equal(e.uri, client.uri);
    assert.equal(e.firstSeen, isoSeconds(grant.created));
    assert.equal(e.lastSeen, isoSeconds(grant.accessed));
    assertTimestamps(clients);
  });

  e2eTest(fx, "an OAUTHBEARER login is listed once: a session with <bearer-token/>, no grant/ entry", async ({ server, account, login }) => {
    const a = await account();
    const client = { name: "E2E OAuth App", uri: "https://oauth.invalid/e2e", id: "e2e-oauth-app", version: "2.0" };
    const g = await server.createGrant(a.user, { client });
    const c = await login({
      username: a.user, oauthToken: g.token,
      userAgent: { id: "e2e-oauth", software: "E2E OAuth Client", device: "E2E Tablet" },
    });
    const { clients } = await listClients(c);
    assert.deepEqual(ids(clients), ["client/e2e-oauth"]);
    const e = clients[0];
    assert.equal(e.type, "session");
    assert.equal(e.connected, "true");
    assert.deepEqual(e.auth, ["bearer-token"]);
    assert.equal(e.software, "E2E OAuth Client");
    assert.equal(e.device, "E2E Tablet");
    assert.equal(e.uri, client.uri, "OAuth client data of the grant");
  });

  e2eTest(fx, "order: no last_seen first, then last_seen, first_seen, id; unknown times omitted", async ({ server, account, login }) => {
    const a = await account();
    // Password changed at P0; all seeded logins happened after it.
    const P0 = nowSeconds() - 10000;
    await server.setAccountTimes(a.user, { created: P0, updated: P0 });
    const rec = (id, { first, last, used }) => `\t[${luaString(id)}] = { id = ${luaString(id)}; `
      + `${first !== undefined ? `first_seen = ${first}; ` : ""}${last !== undefined ? `last_seen = ${last}; ` : ""}`
      + `mechanisms = { ["SCRAM-SHA-1"] = ${used} }; user_agent = { software = ${luaString(id)} } };`;
    await server.seedStore("clients", a.user, ["return {",
      rec("ord-c", { first: P0 + 200, last: P0 + 300, used: P0 + 300 }),
      rec("ord-a", { first: P0 + 100, used: P0 + 100 }),
      rec("ord-e", { first: P0 + 100, last: P0 + 300, used: P0 + 300 }),
      rec("ord-f", { first: P0 + 150, last: P0 + 200, used: P0 + 200 }),
      rec("ord-b", { first: P0 + 50, used: P0 + 50 }),
      rec("ord-d", { first: P0 + 100, last: P0 + 300, used: P0 + 300 }),
      "};", ""].join("\n"));
    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "ord-viewer" } });
    const { clients } = await listClients(viewer);
    assert.deepEqual(ids(clients), [
      "client/ord-b", "client/ord-a", "client/ord-f", "client/ord-d", "client/ord-e", "client/ord-c", "client/ord-viewer",
    ]);
    for (const id of ["client/ord-a", "client/ord-b"]) {
      const e = entry(clients, id);
      assert.equal(e.lastSeen, undefined, `no <last-seen> when unknown (never "now"): ${e.el}`);
    }
    assert.equal(entry(clients, "client/ord-b").firstSeen, isoSeconds(P0 + 50));
    assert.equal(entry(clients, "client/ord-c").lastSeen, isoSeconds(P0 + 300));
    assertTimestamps(clients);
    // and the same again: deterministic
    assert.deepEqual(ids((await listClients(viewer)).clients), ids(clients));
  });

  e2eTest(fx, "records of the wrong shape do not break the listing of the others", async ({ server, account, login }) => {
    const a = await account();
    const P0 = nowSeconds() - 10000;
    await server.setAccountTimes(a.user, { created: P0, updated: P0 });
    const t = P0 + 100;
    await server.seedStore("clients", a.user, `return {
\t["good"] = { id = "good"; first_seen = ${t}; last_seen = ${t}; mechanisms = { ["SCRAM-SHA-1"] = ${t} }; user_agent = { software = "Good" } };
\t["bad-mech"] = { id = "bad-mech"; first_seen = ${t}; last_seen = ${t}; mechanisms = "SCRAM-SHA-1" };
\t["bad-mech2"] = { id = "bad-mech2"; mechanisms = { [1] = true; ["PLAIN"] = "yesterday"; [true] = ${t} } };
\t["bad-times"] = { id = "bad-times"; first_seen = "then"; last_seen = {}; mechanisms = { ["SCRAM-SHA-1"] = ${t} }; user_agent = 42 };
\t["bad-ua"] = { id = "bad-ua"; first_seen = ${t}; last_seen = ${t}; mechanisms = { ["SCRAM-SHA-1"] = ${t} }; user_agent = { software = {}; device = 7; uri = true } };
\t["bad-refs"] = { id = "bad-refs"; full_jid = 7; fast_auth = "x"; auth_token_id = {}; legacy = "yes"; mechanisms = { ["HT-SHA-256-NONE"] = ${t} } };
\t["bad-id"] = { id = 12; first_seen = ${t}; last_seen = ${t}; mechanisms = { ["SCRAM-SHA-1"] = ${t} } };
\t["not-a-table"] = "just a string";
\t["empty"] = {};
};
`);
    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "viewer" } });
    const { clients } = await listClients(viewer);
    const good = entry(clients, "client/good");
    assert.deepEqual(good.auth, ["password"]);
    assert.equal(good.software, "Good");
    entry(clients, "client/viewer");
    assertTimestamps(clients);
    for (const c of clients) assert.ok(typeof c.id === "string" && c.id.length > 0);
  });

  e2eTest(fx, "list and revoke addressed to another account are refused and leak nothing", async ({ server, account, login }) => {
    const a = await account("a");
    const b = await account("b");
    const ca = await login({ username: a.user, password: a.password, userAgent: { id: "e2e-a-client" } });
    const cb = await login({ username: b.user, password: b.password, userAgent: { id: "e2e-b-secret-client", software: "B Secret" } });
    const gb = await server.createGrant(b.user, { client: { name: "B Secret App", uri: "https://b.invalid", id: "b-app", version: "1" } });

    for (const ns of [NS_MC, NS_CAM]) {
      const listReply = await ca.iq(xml("list", { xmlns: ns }), { type: "get", to: b.jid });
      assertError(listReply);
      for (const secret of ["e2e-b-secret-client", "B Secret", gb.grantId]) {
        assert.ok(!listReply.toString().includes(secret), `no ${secret} in ${listReply}`);
      }
      const rev = await revoke(ca, "client/e2e-b-secret-client", { ns, to: b.jid });
      assertError(rev);
      const revGrant = await revoke(ca, `grant/${gb.grantId}`, { ns, to: b.jid });
      assertError(revGrant);
      // the server's own JID is not the account either
      assertError(await ca.iq(xml("list", { xmlns: ns }), { type: "get", to: "localhost" }));
    }
    // b's client and grant are untouched
    assert.ok(await server.hasSession(cb.jid));
    const { clients } = await listClients(cb);
    assert.equal(entry(clients, "client/e2e-b-secret-client").connected, "true");
    entry(clients, `grant/${gb.grantId}`);
    // a's own list holds only a's client
    assert.deepEqual(ids((await listClients(ca)).clients), ["client/e2e-a-client"]);
  });

  e2eTest(fx, "urn:xmpp:cam:0 lists the same clients, with <permission/> and <software/>", async ({ server, account, login }) => {
    const a = await account();
    const g = await server.createGrant(a.user, { client: { name: "CAM App", uri: "https://cam.invalid", id: "cam-app", version: "1" } });
    const c = await login({ username: a.user, password: a.password, userAgent: { id: "e2e-cam", software: "CAM Client", device: "CAM Device" } });
    const legacy = await login({ username: a.user, password: a.password, sasl2: false, resource: "cam-legacy" });
    const mc = (await listClients(c, { ns: NS_MC })).clients;
    const cam = (await listClients(c, { ns: NS_CAM })).clients;
    assert.deepEqual(ids(cam), ids(mc));
    assertTimestamps(cam);
    for (const e of cam) {
      const perm = e.el.getChild("permission");
      assert.ok(perm, `<permission/> in ${e.el}`);
      assert.ok(e.softwareEl, `<user-agent><software/> always: ${e.el}`);
      assert.deepEqual(Object.keys(e.softwareEl.attrs).filter((k) => k !== "xmlns"), [], `no attributes on <software/>: ${e.el}`);
      for (const flag of e.authEl.getChildElements()) assert.equal(flag.children.length, 0);
    }
    const session = entry(cam, "client/e2e-cam");
    assert.equal(session.el.getChild("permission").attrs.status, "unrestricted");
    assert.deepEqual(session.auth, ["password"]);
    assert.equal(session.software, "CAM Client");
    const access = entry(cam, `grant/${g.grantId}`);
    assert.equal(access.el.getChild("permission").attrs.status, "normal");
    assert.deepEqual(access.auth, ["grant"]);
    assert.equal(access.software, "CAM App");
    const leg = cam.find((e) => e.id !== "client/e2e-cam" && e.id.startsWith("client/"));
    assert.ok(leg, "legacy client listed");
    assert.equal(leg.software, "", "empty <software/> when unknown");
    await legacy.close();
  });
});

describe("public API (ARCHITECTURE.md §8)", () => {
  const fx = useServer();

  e2eTest(fx, "client_management/new-client fires once per new record, with the session", async ({ server, account, login }) => {
    const a = await account();
    await server.lua(`
      -- Prosody locks globals; keep the test's state on the prosody table.
      if not prosody.e2e_new_clients then
        prosody.e2e_new_clients = {};
        prosody.hosts["localhost"].events.add_handler("client_management/new-client", function (event)
          local c, s = event.client, event.session;
          table.insert(prosody.e2e_new_clients, {
            id = type(c) == "table" and c.id or nil;
            username = type(s) == "table" and s.username or nil;
          });
        end);
      end
      return true;`);
    const events = async () => (await server.lua(`
      local r = {};
      for _, e in ipairs(prosody.e2e_new_clients) do
        if e.username == ${luaString(a.user)} then table.insert(r, e.id) end
      end
      return r;`)) ?? [];
    const c1 = await login({ username: a.user, password: a.password, userAgent: { id: "e2e-event-client" } });
    assert.deepEqual(await events(), ["e2e-event-client"]);
    await c1.close();
    await login({ username: a.user, password: a.password, userAgent: { id: "e2e-event-client" } });
    assert.deepEqual(await events(), ["e2e-event-client"], "not again for a known client");
  });

  e2eTest(fx, "get_active_clients() and revoke_client_access() as module globals", async ({ server, account, login }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    await login({ username: a.user, password: a.password, userAgent: { id: "e2e-api-client", software: "API" } });
    const mod = `assert(prosody.hosts["localhost"].modules.client_management, "module not loaded")`;
    const list = await server.lua(`
      local list = ${mod}.get_active_clients(${luaString(a.user)});
      local r = {};
      for i, c in ipairs(list) do
        local active = {};
        for k in pairs(c.active or {}) do table.insert(active, k) end
        table.sort(active);
        r[i] = { id = c.id, type = c.type, active = active,
          software = type(c.user_agent) == "table" and c.user_agent.software or nil };
      end
      return r;`);
    const byId = Object.fromEntries(list.map((c) => [c.id, c]));
    assert.deepEqual(byId["client/e2e-api-client"], {
      id: "client/e2e-api-client", type: "session", active: ["connected", "password"], software: "API",
    });
    assert.equal(byId[`grant/${g.grantId}`]?.type, "access");
    assert.deepEqual(byId[`grant/${g.grantId}`]?.active, ["grant"]);

    const notFound = await server.lua(`
      local ok, err = ${mod}.revoke_client_access(${luaString(a.user)}, "client/no-such-client");
      return { ok = ok or false, err = type(err) == "table" and (err.condition or err.type) or err };`);
    assert.deepEqual(notFound, { ok: false, err: "item-not-found" });
    const revoked = await server.lua(`
      return (${mod}.revoke_client_access(${luaString(a.user)}, ${luaString(`grant/${g.grantId}`)}));`);
    assert.equal(revoked, true);
    assert.equal((await server.userGrants(a.user))?.[g.grantId], undefined);
  });
});

describe("shell commands from the command line (ARCHITECTURE.md §7)", () => {
  const fx = useServer();

  e2eTest(fx, "prosodyctl shell user clients / user revoke_client", async ({ server, account, login }) => {
    const a = await account();
    const empty = await server.shell(["user", "clients", a.jid]);
    assert.equal(empty.code, 0, `${empty.stderr}${empty.stdout}`);
    assert.match(empty.stdout, /No clients associated with this account/);

    const long = `e2e-shell-client-with-a-rather-long-identifier-${"x".repeat(20)}`;
    const c = await login({ username: a.user, password: a.password, userAgent: { id: long, software: "Shell Soft" } });
    const g = await server.createGrant(a.user, { client: { name: "Shell App", uri: "https://s.invalid", id: "s", version: "1" } });
    // Wide enough for the table (narrower terminals get one block per client).
    const out = await server.shell(["user", "clients", a.jid], { env: { COLUMNS: "200" } });
    assert.equal(out.code, 0, `${out.stderr}${out.stdout}`);
    for (const title of ["ID", "Software", "First seen", "Last seen", "Expires", "Authentication"]) {
      assert.ok(out.stdout.includes(title), `column ${title}:\n${out.stdout}`);
    }
    assert.ok(out.stdout.includes(`client/${long}`), `full id shown:\n${out.stdout}`);
    assert.ok(out.stdout.includes(`grant/${g.grantId}`), out.stdout);
    assert.match(out.stdout, /\b2 client\(s\)/);

    const rev = await server.shell(["user", "revoke_client", a.jid, `grant/${g.grantId}`]);
    assert.equal(rev.code, 0, `${rev.stderr}${rev.stdout}`);
    assert.match(rev.stdout, /Client access revoked/);
    const refused = await server.shell(["user", "revoke_client", a.jid, `client/${long}`]);
    assert.match(refused.stdout + refused.stderr, /Password reset required/);
    const unknown = await server.shell(["user", "revoke_client", a.jid, "client/nope"]);
    assert.match(unknown.stdout + unknown.stderr, /Client not found/);
    assert.ok(await server.hasSession(c.jid));
  });
});

describe("XEP-0078 non-SASL login (mod_legacyauth)", () => {
  const fx = useServer({ extraModules: ["legacyauth"] });

  e2eTest(fx, "a bind without SASL information does not break the login or the module", async ({ server, account }) => {
    const a = await account();
    const raw = await rawConnect(server);
    try {
      const features = await raw.openStream();
      assert.ok(features?.getChild("auth", "http://jabber.org/features/iq-auth"), `${features}`);
      const authReply = await raw.sendAndWait(
        `<iq type='set' id='auth1'><query xmlns='jabber:iq:auth'><username>${a.user}</username><password>${a.password}</password><resource>xep78</resource></query></iq>`,
        (el) => el.name === "iq" && el.attrs.id === "auth1", 5000);
      assert.equal(authReply?.attrs.type, "result", `iq:auth answered: ${authReply}`);
      assert.ok(await server.hasSession(`${a.jid}/xep78`));
      const listReply = await raw.sendAndWait(
        `<iq type='get' id='list1'><list xmlns='${NS_MC}'/></iq>`,
        (el) => el.name === "iq" && el.attrs.id === "list1", 5000);
      assert.equal(listReply?.attrs.type, "result", `list answered: ${listReply}`);
    } finally {
      raw.close();
    }
    assert.deepEqual(server.logSince(0, ["error"]).filter((l) => /Traceback/.test(l)), []);
  });
});
