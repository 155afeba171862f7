// Issue 8, item 1 (PLAN "Revocation reaches every stream"): a revocation
// closes every stream authenticated as the revoked client — bound,
// hibernating (XEP-0198), and authenticated but not bound (SASL2 without
// Bind 2, FAST, legacy SASL after the stream restart) — with
// <stream:error><not-authorized/><text>Client access revoked</text>, and
// such a stream cannot bind afterwards. The same for the host-wide revoke
// and the public API.

import assert from "node:assert/strict";
import { describe } from "node:test";

import { useServer, e2eTest, eventually, assertRefused } from "../lib/harness.js";
import { listClients, revoke, entry, assertResult } from "../lib/manage.js";
import {
  unboundLogin, bind, boundJid, enableSm, dropConnection, waitEnded, streamError, streamErrorView, closeRaw,
} from "../lib/rawauth.js";
import { c2sSessions, apiRevoke } from "../lib/inspect.js";

const REVOKED = { condition: "not-authorized", text: "Client access revoked" };
const MODULE_ENV = `prosody.hosts["localhost"].modules.client_management`;

/** The account owner's other session, the one that revokes. */
const viewerOf = (login, a) => login({ username: a.user, password: a.password, userAgent: { id: "viewer" } });

/**
 * The unbound stream `u` was closed by the server with the revocation's stream
 * error, cannot bind any more, and no unbound session of the account is left
 * on the server. Facts are gathered first, so a failure says all of them.
 */
async function assertUnboundClosed(server, u, user, what, { otherClients = [] } = {}) {
  const ended = await waitEnded(u.conn, 5000);
  const error = streamErrorView(streamError(u.conn));
  const bindReply = await bind(u.conn, "after-revoke");
  const bound = await server.hasSession(`${u.jid}/after-revoke`);
  const unbound = (await c2sSessions(server, user)).filter((s) => !s.full_jid && !otherClients.includes(s.client_id));
  const facts = `stream ended: ${ended}; stream error: ${JSON.stringify(error)}; bind afterwards answered: ${bindReply ?? "nothing"}; `
    + `session created by that bind: ${bound}; unbound sessions of the account on the server: ${JSON.stringify(unbound)}`;
  assert.ok(ended, `${what}: the authenticated, unbound stream is still open 5 s after the revocation (${facts})`);
  assert.deepEqual(error, REVOKED, `${what}: the stream was not closed with <not-authorized/> 'Client access revoked' (${facts})`);
  assert.notEqual(bindReply?.attrs.type, "result", `${what}: the revoked stream could still bind a resource (${facts})`);
  assert.equal(bound, false, `${what}: a session exists for the resource bound after the revocation (${facts})`);
  assert.deepEqual(unbound, [], `${what}: an authenticated, unbound session of the account is left on the server (${facts})`);
}

describe("revocation reaches streams that authenticated but have not bound", () => {
  const fx = useServer();

  e2eTest(fx, "SASL2 without Bind 2, grant token: client/ID closes the unbound stream; another unbound client is untouched", async ({ server, account, login }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    const g2 = await server.createGrant(a.user);
    const u = await unboundLogin(server, { kind: "sasl2-oauth", username: a.user, token: g.token, userAgent: { id: "unbound-oauth", software: "Unbound App" } });
    const other = await unboundLogin(server, { kind: "sasl2-oauth", username: a.user, token: g2.token, userAgent: { id: "unbound-other" } });
    try {
      const viewer = await viewerOf(login, a);
      entry((await listClients(viewer)).clients, "client/unbound-oauth");
      assertResult(await revoke(viewer, "client/unbound-oauth"), "revoke client/unbound-oauth");
      await assertUnboundClosed(server, u, a.user, "client/unbound-oauth", { otherClients: ["unbound-other"] });
      assert.equal((await server.userGrants(a.user))?.[g.grantId], undefined, "the client's grant is revoked");

      // the other client's unbound stream was not touched: still open, and it binds
      assert.equal(other.conn.ended, false, `an unbound stream of another client was closed: ${other.conn.text.slice(-300)}`);
      const jid = boundJid(await bind(other.conn, "other"));
      assert.equal(jid, `${a.jid}/other`, "the other client binds normally");
      assert.ok(await server.hasSession(jid), "and has a session");
    } finally {
      u.conn.close();
      await closeRaw(other.conn);
    }
  });

  e2eTest(fx, "a reload of the module keeps the reach: after module:reload, client/ID still closes a SASL2 stream that authenticated before it and never bound (issue 14, item 3)", async ({ server, account, login }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    const u = await unboundLogin(server, { kind: "sasl2-oauth", username: a.user, token: g.token, userAgent: { id: "unbound-reload", software: "Unbound Reload" } });
    try {
      const reloaded = await server.lua(`
        local modulemanager = require "prosody.core.modulemanager";
        local before = ${MODULE_ENV};
        assert(modulemanager.reload("localhost", "client_management"));
        return before ~= ${MODULE_ENV};`);
      assert.equal(reloaded, true, "the module was reloaded (a new instance)");
      const viewer = await viewerOf(login, a);
      entry((await listClients(viewer)).clients, "client/unbound-reload");
      assertResult(await revoke(viewer, "client/unbound-reload"), "revoke client/unbound-reload after the reload");
      await assertUnboundClosed(server, u, a.user, "client/ID after a reload");
    } finally {
      u.conn.close();
    }
  });

  e2eTest(fx, "SASL2 without Bind 2, grant token: grant/ID closes the unbound stream", async ({ server, account, login, tryLogin }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    const u = await unboundLogin(server, { kind: "sasl2-oauth", username: a.user, token: g.token, userAgent: { id: "unbound-by-grant" } });
    try {
      const viewer = await viewerOf(login, a);
      assertResult(await revoke(viewer, `grant/${g.grantId}`), `revoke grant/${g.grantId}`);
      await assertUnboundClosed(server, u, a.user, "grant/ID");
      await assertRefused(tryLogin, { username: a.user, oauthToken: g.token, userAgent: { id: "unbound-by-grant" } }, "the revoked grant's token");
    } finally {
      u.conn.close();
    }
  });

  e2eTest(fx, "SASL2 FAST (HT-SHA-256-NONE) without Bind 2, client without password access: client/ID closes the unbound stream", async ({ server, account, login, tryLogin }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    const ua = { id: "unbound-fast", software: "Unbound FAST" };
    // the client gets in with its grant token and asks for a FAST token: no password access
    const store = { token: null };
    const first = await login({ username: a.user, oauthToken: g.token, fast: store, userAgent: ua });
    assert.ok(store.token?.token, "a FAST token was issued to the grant login");
    const fastToken = { ...store.token };
    const firstJid = first.jid;
    await first.close();
    assert.ok(await eventually(async () => !(await server.hasSession(firstJid))), "first session ended");

    const u = await unboundLogin(server, { kind: "sasl2-fast", username: a.user, token: fastToken.token, userAgent: ua });
    try {
      const viewer = await viewerOf(login, a);
      const listed = entry((await listClients(viewer)).clients, "client/unbound-fast");
      assert.ok(!listed.auth.includes("password"), `the FAST client has no password access: ${listed.el}`);
      assertResult(await revoke(viewer, "client/unbound-fast"), "revoke client/unbound-fast");
      await assertUnboundClosed(server, u, a.user, "FAST client/ID");
      await assertRefused(tryLogin, { username: a.user, fast: { token: { ...fastToken } }, userAgent: ua }, "the revoked client's FAST token");
    } finally {
      u.conn.close();
    }
  });

  e2eTest(fx, "legacy SASL (RFC 6120) OAUTHBEARER, stream restarted, not bound: grant/ID closes it", async ({ server, account, login, tryLogin }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    const u = await unboundLogin(server, { kind: "legacy-oauth", username: a.user, token: g.token });
    try {
      const viewer = await viewerOf(login, a);
      assertResult(await revoke(viewer, `grant/${g.grantId}`), `revoke grant/${g.grantId}`);
      await assertUnboundClosed(server, u, a.user, "legacy OAUTHBEARER, grant/ID");
      await assertRefused(tryLogin, { username: a.user, oauthToken: g.token, sasl2: false, resource: "late" }, "the revoked grant's token (legacy SASL)");
    } finally {
      u.conn.close();
    }
  });

  e2eTest(fx, "control: a bound stream of the revoked client is closed the same way (the checks above can pass)", async ({ server, account, login }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    const u = await unboundLogin(server, { kind: "sasl2-oauth", username: a.user, token: g.token, userAgent: { id: "bound-control" } });
    try {
      assert.equal(boundJid(await bind(u.conn, "control")), `${a.jid}/control`, "bound");
      const viewer = await viewerOf(login, a);
      assertResult(await revoke(viewer, "client/bound-control"), "revoke client/bound-control");
      await assertUnboundClosed(server, u, a.user, "bound client/ID");
      assert.ok(await eventually(async () => !(await server.hasSession(`${a.jid}/control`))), "the bound session is gone");
    } finally {
      u.conn.close();
    }
  });

  e2eTest(fx, "a hibernating XEP-0198 session of the revoked client is ended (gone from full_sessions)", async ({ server, account, login }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    const u = await unboundLogin(server, { kind: "sasl2-oauth", username: a.user, token: g.token, userAgent: { id: "hibernating" } });
    const jid = boundJid(await bind(u.conn, "hib"));
    assert.equal(jid, `${a.jid}/hib`, "bound");
    const enabled = await enableSm(u.conn, { resume: true });
    assert.ok(enabled?.is("enabled") && ["true", "1"].includes(enabled.attrs.resume), `stream management with resumption: ${enabled}`);
    // the network goes away; the stream is never closed: mod_smacks keeps the session
    dropConnection(u.conn);
    const hibernating = await eventually(async () => (await c2sSessions(server, a.user)).some((s) => s.full_jid === jid && s.hibernating));
    assert.ok(hibernating, `the session hibernates: ${JSON.stringify(await c2sSessions(server, a.user))}`);
    assert.ok(await server.hasSession(jid), "a hibernating session is in full_sessions");

    const viewer = await viewerOf(login, a);
    assert.equal(entry((await listClients(viewer)).clients, "client/hibernating").connected, "true", "a hibernating client is listed as connected");
    assertResult(await revoke(viewer, "client/hibernating"), "revoke client/hibernating");
    assert.ok(await eventually(async () => !(await server.hasSession(jid))),
      `the hibernating session is still in full_sessions after the revocation: ${JSON.stringify(await c2sSessions(server, a.user))}`);
    assert.deepEqual((await c2sSessions(server, a.user)).filter((s) => s.full_jid === jid), [], "no session of the revoked client is left");
  });

  e2eTest(fx, "host-wide revoke (prosodyctl shell clients revoke localhost software/NAME) reaches an unbound stream", async ({ server, account }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    const S = `UnboundHostWide${Date.now().toString(36)}`;
    const u = await unboundLogin(server, { kind: "sasl2-oauth", username: a.user, token: g.token, userAgent: { id: "unbound-hostwide", software: S } });
    try {
      const res = await server.shell(["clients", "revoke", "localhost", `software/${S}`]);
      assert.equal(res.code, 0, `clients revoke failed: ${res.stderr}${res.stdout}`);
      assert.match(res.stdout, /\b1 client\(s\) revoked, 0 need a password reset, 0 failed/, `clients revoke output: ${res.stdout}`);
      await assertUnboundClosed(server, u, a.user, "host-wide software/NAME");
    } finally {
      u.conn.close();
    }
  });

  e2eTest(fx, "the public API revoke_client_access(username, selector) reaches an unbound stream", async ({ server, account }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    const u = await unboundLogin(server, { kind: "sasl2-oauth", username: a.user, token: g.token, userAgent: { id: "unbound-api" } });
    try {
      assert.deepEqual(await apiRevoke(server, a.user, "client/unbound-api"), { ok: true }, "revoke_client_access returns true");
      await assertUnboundClosed(server, u, a.user, "revoke_client_access client/ID");
    } finally {
      u.conn.close();
    }
  });
});
