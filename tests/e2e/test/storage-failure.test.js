// Issue 8, item 5 (PLAN "Failure atomicity"): storage failures during revoke
// and during login, and recovery.
// - a revocation answers result only when every step succeeded; when one
//   fails the others are still attempted, the answer is wait/internal-server-error
//   and the same request later completes the job;
// - grant/ID revocation works while the clients store is unreadable;
// - a failed write stays queued and is retried; a login whose record cannot
//   be written (or read) is still listed and reaches storage once it works.
//
// Stores are broken with server.breakStore() (server.js). This server uses
// client_management_write_delay = 2 so that batched writes and their
// retries come quickly.

import assert from "node:assert/strict";
import { describe } from "node:test";

import { useServer, e2eTest, eventually, sleep, assertRefused, assertClosed, skipOn } from "../lib/harness.js";
import { listClients, revoke, entry, assertResult, assertError, nowSeconds } from "../lib/manage.js";
import { clientRecords } from "../lib/inspect.js";

const WRITE_DELAY = 2;
/** Long enough for a failed write's retry after storage works again (backoff starts at the write delay). */
const RECOVERY_TIMEOUT = 30000;
const UNABLE = { type: "wait", condition: "internal-server-error", text: "Unable to revoke client access" };

const viewerOf = (login, a) => login({ username: a.user, password: a.password, userAgent: { id: "viewer" } });

/** Poll the clients store until `pred(records)` holds; → the last records read. */
async function untilStored(server, user, pred, timeout = RECOVERY_TIMEOUT) {
  let records = null;
  await eventually(async () => {
    try {
      records = await clientRecords(server, user);
    } catch {
      records = null;
    }
    return records && pred(records);
  }, { timeout, interval: 500 });
  return records;
}

// Reads can be made to fail on internal and PostgreSQL storage, writes on SQLite too; memory
// storage cannot be made to fail at all.
const NO_READ_FAILURES = { skip: skipOn(["sqlite"], "reads cannot be made to fail on SQLite (no SELECT triggers)") };

describe("storage failures and recovery", { skip: skipOn(["memory"], "memory storage cannot be made to fail (server.breakStore)") }, () => {
  const fx = useServer({ options: { client_management_write_delay: WRITE_DELAY } });

  e2eTest(fx, "(a) revoking a FAST+grant client while auth_tokens cannot be written: internal-server-error, the other steps still run; after recovery the same revoke completes", async ({ server, account, login, tryLogin }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    const ua = { id: "fast-grant", software: "FAST Grant App" };
    const store = { token: null };
    const first = await login({ username: a.user, oauthToken: g.token, fast: store, userAgent: ua });
    assert.ok(store.token, "a FAST token was issued");
    const fastToken = { ...store.token };
    const firstJid = first.jid;
    await first.close();
    assert.ok(await eventually(async () => !(await server.hasSession(firstJid))));
    const o = await login({ username: a.user, fast: { token: { ...fastToken } }, userAgent: ua });
    const viewer = await viewerOf(login, a);
    entry((await listClients(viewer)).clients, "client/fast-grant");

    const restore = await server.breakStore("auth_tokens", { user: a.user, write: true });
    let closedAfterFailure;
    try {
      assertError(await revoke(viewer, "client/fast-grant"), UNABLE);
      // PLAN: when a step fails the other steps are still attempted: the session is closed too
      closedAfterFailure = await o.waitClosed(3000);
    } finally {
      await restore();
    }

    assertResult(await revoke(viewer, "client/fast-grant"), "the same revoke after auth_tokens works again");
    await assertClosed(server, o, "the revoked client's session");
    await assertRefused(tryLogin, { username: a.user, oauthToken: g.token, userAgent: ua }, "the revoked client's grant token");
    await assertRefused(tryLogin, { username: a.user, fast: { token: { ...fastToken } }, userAgent: ua }, "the revoked client's FAST token");
    assert.equal((await server.userGrants(a.user))?.[g.grantId], undefined, "the grant is gone");
    assert.ok(closedAfterFailure, "the failed revocation did not close the client's session (PLAN: the other steps are still attempted)");
  });

  e2eTest(fx, "(b) grant/ID revocation works while the clients store is unreadable (from a session that logged in meanwhile)", async ({ server, account, login, tryLogin }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    const restore = await server.breakStore("clients", { user: a.user, read: true });
    try {
      // the account's records were never read: the login and the revocation both find the store unreadable
      const viewer = await viewerOf(login, a);
      assertResult(await revoke(viewer, `grant/${g.grantId}`), `revoke grant/${g.grantId} with the clients store unreadable`);
    } finally {
      await restore();
    }
    assert.equal((await server.userGrants(a.user))?.[g.grantId], undefined, "the grant is gone");
    await assertRefused(tryLogin, { username: a.user, oauthToken: g.token, userAgent: { id: "late" } }, "the revoked grant's token");
  }, NO_READ_FAILURES);

  e2eTest(fx, "(b) grant/ID revocation from the shell works while the clients store is unreadable (account never loaded)", async ({ server, account, tryLogin }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    const restore = await server.breakStore("clients", { user: a.user, read: true });
    let res;
    try {
      res = await server.shell(["user", "revoke_client", a.jid, `grant/${g.grantId}`]);
    } finally {
      await restore();
    }
    assert.equal(res.code, 0, `user revoke_client grant/ID with the clients store unreadable: exit ${res.code}\n${res.stdout}${res.stderr}`);
    assert.match(res.stdout, /Client access revoked/, `user revoke_client: ${res.stdout}${res.stderr}`);
    assert.equal((await server.userGrants(a.user))?.[g.grantId], undefined, "the grant is gone");
    await assertRefused(tryLogin, { username: a.user, oauthToken: g.token, userAgent: { id: "late" } }, "the revoked grant's token");
  }, NO_READ_FAILURES);

  e2eTest(fx, "(c) a login while the clients store cannot be written: logs in, is listed (connected), and its record is written after recovery", async ({ server, account, login }) => {
    const a = await account();
    const viewer = await viewerOf(login, a);
    const restore = await server.breakStore("clients", { user: a.user, write: true });
    let listed;
    try {
      await login({ username: a.user, password: a.password, userAgent: { id: "unwritable", software: "Unwritable" } });
      listed = (await listClients(viewer)).clients;
    } finally {
      await restore();
    }
    const e = listed.find((c) => c.id === "client/unwritable");
    assert.ok(e, `a client whose record could not be written is not listed: [${listed.map((c) => c.id)}]`);
    assert.equal(e.connected, "true", `listed as connected: ${e.el}`);
    const records = await untilStored(server, a.user, (r) => r.unwritable);
    assert.ok(records?.unwritable, `the record never reached storage after recovery: ${JSON.stringify(records)}`);
    assert.equal(records.unwritable.ua?.software?.text, "Unwritable", `the stored record: ${JSON.stringify(records.unwritable)}`);
  });

  e2eTest(fx, "(d) a login while the clients store cannot be read: logs in; after recovery it is listed and stored", async ({ server, account, login }) => {
    const a = await account();
    const restore = await server.breakStore("clients", { user: a.user, read: true });
    let c;
    try {
      c = await login({ username: a.user, password: a.password, userAgent: { id: "unreadable", software: "Unreadable" } });
    } finally {
      await restore();
    }
    assert.ok(await server.hasSession(c.jid), "logged in");
    const viewer = await viewerOf(login, a);
    const listed = (await listClients(viewer)).clients;
    const e = listed.find((x) => x.id === "client/unreadable");
    assert.ok(e, `the client that logged in while the store was unreadable is not listed after recovery: [${listed.map((x) => x.id)}]`);
    assert.equal(e.connected, "true", `listed as connected: ${e.el}`);
    const records = await untilStored(server, a.user, (r) => r.unreadable);
    assert.ok(records?.unreadable, `its record never reached storage: ${JSON.stringify(records)}`);
  }, NO_READ_FAILURES);

  e2eTest(fx, "(e) a batched write that fails is retried and lands after recovery", async ({ server, account, login }) => {
    const a = await account();
    const ua = { id: "batched", software: "Batched" };
    const first = await login({ username: a.user, password: a.password, userAgent: ua });
    await first.close();
    const stored = (await clientRecords(server, a.user))?.batched;
    assert.ok(stored, "precondition: the first login is written at once");
    await sleep(1200); // last_seen has a resolution of one second
    const secondAt = nowSeconds();
    const second = await login({ username: a.user, password: a.password, userAgent: ua });
    const restore = await server.breakStore("clients", { user: a.user, write: true });
    let during;
    try {
      await second.close();
      await sleep((WRITE_DELAY + 1.5) * 1000); // the batch is flushed, and fails
      during = (await clientRecords(server, a.user))?.batched;
    } finally {
      await restore();
    }
    assert.equal(during?.last_seen, stored.last_seen, `precondition: the batched update could not be written while the store was broken: ${JSON.stringify(during)}`);
    const records = await untilStored(server, a.user, (r) => r.batched?.last_seen >= secondAt);
    assert.ok(records?.batched?.last_seen >= secondAt,
      `the failed batched write was not retried: stored last_seen ${records?.batched?.last_seen}, the second login was at ${secondAt}`);
  });

  e2eTest(fx, "(f) a client whose record could not be written is revocable (result, not item-not-found)", async ({ server, account, login, tryLogin }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    const viewer = await viewerOf(login, a);
    const ua = { id: "unrecorded", software: "Unrecorded" };
    const restore = await server.breakStore("clients", { user: a.user, write: true });
    let c;
    try {
      c = await login({ username: a.user, oauthToken: g.token, userAgent: ua });
    } finally {
      await restore();
    }
    const listed = (await listClients(viewer)).clients;
    assert.ok(listed.some((x) => x.id === "client/unrecorded"), `not listed: [${listed.map((x) => x.id)}]`);
    assertResult(await revoke(viewer, "client/unrecorded"), "revoke client/unrecorded (its record write failed)");
    await assertClosed(server, c, "the revoked client");
    await assertRefused(tryLogin, { username: a.user, oauthToken: g.token, userAgent: ua }, "the revoked client's grant token");
  });
});
