// Revocation: ARCHITECTURE.md §5 (and §6's revoke request).

import assert from "node:assert/strict";
import { describe } from "node:test";

import { useServer, e2eTest, eventually, assertRefused, assertClosed, skipOn } from "../lib/harness.js";
import { NS, xml } from "../lib/client.js";
import {
  NS_MC, NS_CAM, listClients, revoke, entry, ids, assertResult, assertError, nowSeconds, LEGACY_ID,
} from "../lib/manage.js";

const NOT_FOUND = { type: "cancel", condition: "item-not-found", text: "Client not found" };
const RESET_REQUIRED = { type: "cancel", condition: "service-unavailable", text: "Password reset required" };



async function ping(session) {
  return session.iq(xml("ping", { xmlns: "urn:xmpp:ping" }), { to: "localhost" });
}

describe("revoking access", () => {
  const fx = useServer();

  e2eTest(fx, "grant/<id> of an unused grant: revoked, its token no longer logs in", async ({ server, account, login, tryLogin }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "viewer" } });
    entry((await listClients(viewer)).clients, `grant/${g.grantId}`);
    assertResult(await revoke(viewer, `grant/${g.grantId}`), "revoke grant");
    assert.deepEqual(ids((await listClients(viewer)).clients), ["client/viewer"]);
    assert.equal((await server.userGrants(a.user))?.[g.grantId], undefined);
    await assertRefused(tryLogin, { username: a.user, oauthToken: g.token, userAgent: { id: "late" } }, "revoked grant's token");
    // and now it is unknown
    assertError(await revoke(viewer, `grant/${g.grantId}`), NOT_FOUND);
  });

  e2eTest(fx, "grant/<id> in use: sessions that logged in with it are closed", async ({ server, account, login, tryLogin }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    const o = await login({ username: a.user, oauthToken: g.token, userAgent: { id: "e2e-grant-user" } });
    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "viewer" } });
    assertResult(await revoke(viewer, `grant/${g.grantId}`), "revoke grant");
    await assertClosed(server, o, "session of the revoked grant");
    await assertRefused(tryLogin, { username: a.user, oauthToken: g.token, userAgent: { id: "e2e-grant-user" } }, "revoked grant's token");
    assert.deepEqual(ids((await listClients(viewer)).clients), ["client/viewer"]);
    assert.ok(await server.hasSession(viewer.jid), "the requester is not affected");
  });

  e2eTest(fx, "password-less client: session closed, its FAST token and grant token refused", async ({ server, account, login, tryLogin }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    const ua = { id: "e2e-pwless", software: "E2E Password-less" };
    const store = { token: null };
    const first = await login({ username: a.user, oauthToken: g.token, fast: store, userAgent: ua });
    assert.ok(store.token, "FAST token issued");
    const fastToken = { ...store.token };
    await first.close();
    // the client is back by FAST, as it would be
    const o = await login({ username: a.user, fast: { token: { ...fastToken } }, userAgent: ua });
    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "viewer" } });
    const before = entry((await listClients(viewer)).clients, "client/e2e-pwless");
    assert.deepEqual(before.auth, ["bearer-token", "fast"]);
    assert.equal(before.connected, "true");

    assertResult(await revoke(viewer, "client/e2e-pwless"), "revoke client");
    await assertClosed(server, o, "revoked client");
    await assertRefused(tryLogin, { username: a.user, fast: { token: { ...fastToken } }, userAgent: ua }, "FAST token of the revoked client");
    await assertRefused(tryLogin, { username: a.user, oauthToken: g.token, userAgent: ua }, "grant token of the revoked client");
    await assertRefused(tryLogin, { username: a.user, oauthToken: g.token, userAgent: { id: "another-id" } }, "grant token under another id");
    const after = ids((await listClients(viewer)).clients);
    assert.deepEqual(after, ["client/viewer"]);
    assert.ok(!after.includes(`grant/${g.grantId}`));
  });

  e2eTest(fx, "a client revoking itself gets the reply before its stream is closed", async ({ server, account, login, tryLogin }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    const o = await login({ username: a.user, oauthToken: g.token, userAgent: { id: "e2e-self" } });
    const reply = await revoke(o, "client/e2e-self");
    assertResult(reply, "self-revocation");
    await assertClosed(server, o, "self-revoked client");
    await assertRefused(tryLogin, { username: a.user, oauthToken: g.token, userAgent: { id: "e2e-self" } }, "grant token");
  });

  e2eTest(fx, "password client: password-reset-required and nothing changes", async ({ server, account, login }) => {
    const a = await account();
    const ua = { id: "e2e-pw-fast", software: "E2E Password FAST" };
    const store = { token: null };
    const c = await login({ username: a.user, password: a.password, fast: store, userAgent: ua });
    assert.ok(store.token, "FAST token issued");
    const fastToken = { ...store.token };
    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "viewer" } });
    const listed = (await listClients(viewer)).clients;

    for (const ns of [NS_MC, NS_CAM]) {
      const reply = await revoke(viewer, "client/e2e-pw-fast", { ns });
      const err = assertError(reply, RESET_REQUIRED);
      assert.equal(err.app.length, 1, `one application condition: ${reply}`);
      assert.equal(err.app[0].name, "password-reset-required");
      assert.equal(err.app[0].attrs.xmlns, ns, "in the request's namespace");
      assert.equal(err.app[0].children.length, 0);
    }

    // nothing changed: still connected, still listed the same, FAST still works
    assert.equal((await ping(c)).attrs.type, "result");
    assert.ok(await server.hasSession(c.jid));
    const again = (await listClients(viewer)).clients;
    assert.deepEqual(ids(again), ids(listed));
    assert.deepEqual(entry(again, "client/e2e-pw-fast").auth, ["fast", "password"]);
    const viaFast = await login({ username: a.user, fast: { token: { ...fastToken } }, userAgent: ua });
    assert.equal(viaFast.sent.find((el) => el.name === "authenticate").attrs.mechanism, "HT-SHA-256-NONE");
  });

  e2eTest(fx, "unknown ids: item-not-found (cancel) 'Client not found'", async ({ server, account, login }) => {
    const a = await account();
    // A stored client without access any more (used its password before
    // the last password change) is not found either.
    const P = nowSeconds() - 1000;
    await server.setAccountTimes(a.user, { updated: P });
    await server.seedStore("clients", a.user, `return {
\t["stale"] = { id = "stale"; first_seen = ${P - 5000}; last_seen = ${P - 5000}; mechanisms = { ["SCRAM-SHA-1"] = ${P - 5000} } };
};
`);
    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "viewer" } });
    for (const ns of [NS_MC, NS_CAM]) {
      for (const id of ["client/no-such-client", "grant/noSuchGrant1", "software/No Such Software", "software/No Such Software/1.0"]) {
        assertError(await revoke(viewer, id, { ns }), NOT_FOUND);
      }
    }
    assert.ok(!ids((await listClients(viewer)).clients).includes("client/stale"), "no access, not listed");
    assertError(await revoke(viewer, "client/stale"), NOT_FOUND);
    assertError(await revoke(viewer, "client/viewer"), RESET_REQUIRED);
  });

  e2eTest(fx, "<revoke/> without id: bad-request", async ({ account, login }) => {
    const a = await account();
    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "viewer" } });
    for (const ns of [NS_MC, NS_CAM]) {
      assertError(await revoke(viewer, undefined, { ns }), { condition: "bad-request" });
    }
    assert.ok(await viewer.iq(xml("ping", { xmlns: "urn:xmpp:ping" }), { to: "localhost" }));
  });

  e2eTest(fx, "no request goes unanswered, however malformed", async ({ account, login }) => {
    const a = await account();
    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "viewer" } });
    const weird = ["", "client/", "grant/", "software/", "/", "client", "grant", "software", "client//x", "x/y",
      "client/\u00e9\u00e8", `client/${"x".repeat(3000)}`, "software//", "CLIENT/viewer", "client/viewer/extra"];
    for (const ns of [NS_MC, NS_CAM]) {
      for (const id of weird) {
        const reply = await revoke(viewer, id, { ns });
        assert.equal(reply.attrs.type, "error", `revoke '${id.slice(0, 40)}' (${ns}): ${reply}`);
      }
      // requests of the wrong type
      const r1 = await viewer.iq(xml("revoke", { xmlns: ns, id: "client/viewer" }), { type: "get" });
      assert.equal(r1.attrs.type, "error", `${r1}`);
      const r2 = await viewer.iq(xml("list", { xmlns: ns }), { type: "set" });
      assert.equal(r2.attrs.type, "error", `${r2}`);
      const r3 = await viewer.iq(xml("list", { xmlns: ns }, xml("junk", {}, "x")), { type: "get" });
      assert.ok(["result", "error"].includes(r3.attrs.type), `${r3}`);
    }
    // and the viewer itself was never revoked by any of it
    entry((await listClients(viewer)).clients, "client/viewer");
  });

  e2eTest(fx, "software/<name>: every matching client; none → item-not-found; mixed → password-reset-required", async ({ server, account, login }) => {
    const a = await account();
    const grant = () => server.createGrant(a.user);
    const [g1, g2, g3, g4] = await Promise.all([grant(), grant(), grant(), grant()]);
    const s1 = await login({ username: a.user, oauthToken: g1.token, userAgent: { id: "sw-1", software: "Shared App" } });
    const s2 = await login({ username: a.user, oauthToken: g2.token, userAgent: { id: "sw-2", software: "Shared App" } });
    const s3 = await login({ username: a.user, oauthToken: g3.token, userAgent: { id: "sw-3", software: "Other App" } });
    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "viewer", software: "Viewer" } });

    assertResult(await revoke(viewer, "software/Shared App"), "revoke software");
    await assertClosed(server, s1, "sw-1");
    await assertClosed(server, s2, "sw-2");
    assert.equal((await ping(s3)).attrs.type, "result", "other software untouched");
    let listed = ids((await listClients(viewer)).clients);
    assert.ok(!listed.includes("client/sw-1") && !listed.includes("client/sw-2"), `${listed}`);
    assert.ok(listed.includes("client/sw-3"));

    assertError(await revoke(viewer, "software/Nobody"), NOT_FOUND);

    const pw = await login({ username: a.user, password: a.password, userAgent: { id: "sw-pw", software: "Mixed App" } });
    const tok = await login({ username: a.user, oauthToken: g4.token, userAgent: { id: "sw-tok", software: "Mixed App" } });
    assertError(await revoke(viewer, "software/Mixed App"), RESET_REQUIRED);
    await assertClosed(server, tok, "token client of the mixed software");
    assert.equal((await ping(pw)).attrs.type, "result", "password client of the mixed software stays");
    listed = ids((await listClients(viewer)).clients);
    assert.ok(!listed.includes("client/sw-tok"), `${listed}`);
    assert.ok(listed.includes("client/sw-pw"), `${listed}`);
  });

  e2eTest(fx, "software/<name>/<version> only matches that version", async ({ server, account, login }) => {
    const a = await account();
    const app = (version) => ({ name: "Versioned App", uri: "https://v.invalid", id: "versioned-app", version });
    const g1 = await server.createGrant(a.user, { client: app("1.0") });
    const g2 = await server.createGrant(a.user, { client: app("2.0") });
    // no SASL2 software: the software name comes from the grant's OAuth client
    const v1 = await login({ username: a.user, oauthToken: g1.token, userAgent: { id: "v-1" } });
    const v2 = await login({ username: a.user, oauthToken: g2.token, userAgent: { id: "v-2" } });
    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "viewer" } });
    const before = (await listClients(viewer)).clients;
    assert.equal(entry(before, "client/v-1").software, "Versioned App");
    assertResult(await revoke(viewer, "software/Versioned App/1.0"), "revoke software version");
    await assertClosed(server, v1, "v-1");
    assert.equal((await ping(v2)).attrs.type, "result");
    const listed = ids((await listClients(viewer)).clients);
    assert.ok(!listed.includes("client/v-1") && listed.includes("client/v-2"), `${listed}`);
    assertError(await revoke(viewer, "software/Versioned App/9.9"), NOT_FOUND);
  });

  e2eTest(fx, "SASL2 client without Bind 2 is revocable", async ({ server, account, login, tryLogin }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    const o = await login({ username: a.user, oauthToken: g.token, bind2: false, resource: "nb2", userAgent: { id: "e2e-nb2-token" } });
    assert.equal(o.jid, `${a.jid}/nb2`);
    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "viewer" } });
    const e = entry((await listClients(viewer)).clients, "client/e2e-nb2-token");
    assert.equal(e.connected, "true");
    assertResult(await revoke(viewer, "client/e2e-nb2-token"), "revoke");
    await assertClosed(server, o, "no-Bind2 client");
    await assertRefused(tryLogin, { username: a.user, oauthToken: g.token, userAgent: { id: "e2e-nb2-token" } }, "grant token");
  });

  e2eTest(fx, "legacy OAUTHBEARER client (generated id) is revocable", async ({ server, account, login, tryLogin }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    const o = await login({ username: a.user, oauthToken: g.token, sasl2: false, resource: "legacy-token" });
    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "viewer" } });
    const clients = (await listClients(viewer)).clients;
    const legacy = clients.filter((c) => c.id !== "client/viewer");
    assert.equal(legacy.length, 1, `${ids(clients)}`);
    assert.match(legacy[0].id.replace(/^client\//, ""), LEGACY_ID);
    assert.deepEqual(legacy[0].auth, ["bearer-token"]);
    assert.equal(legacy[0].connected, "true");
    assertResult(await revoke(viewer, legacy[0].id), "revoke legacy client");
    await assertClosed(server, o, "legacy client");
    await assertRefused(tryLogin, { username: a.user, oauthToken: g.token, sasl2: false, resource: "legacy-token" }, "grant token (legacy SASL)");
  });

  e2eTest(fx, "storage failure while revoking: internal-server-error", async ({ server, account, login }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    const store = { token: null };
    await login({ username: a.user, oauthToken: g.token, fast: store, userAgent: { id: "e2e-storage" } });
    assert.ok(store.token);
    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "viewer" } });
    entry((await listClients(viewer)).clients, "client/e2e-storage");
    // Writes of mod_sasl2_fast's and mod_tokenauth's stores fail (server.breakStore: every backend but memory).
    const restores = [];
    try {
      for (const s of ["fast_tokens", "auth_tokens"]) restores.push(await server.breakStore(s, { user: a.user }));
      assertError(await revoke(viewer, "client/e2e-storage"), {
        type: "wait", condition: "internal-server-error", text: "Unable to revoke client access",
      });
    } finally {
      for (const restore of restores) await restore();
    }
  }, { skip: skipOn(["memory"], "memory storage cannot be made to fail (server.breakStore)") });
});
