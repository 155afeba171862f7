// Issue 8, item 2 (PLAN "Account deletion"): user-deleted is seen (it is fired
// on the global bus); the account's cache, pending writes and timers are
// dropped; nothing is written for it afterwards; a new account of the same
// name starts with no clients, and an old client id logging in to it makes a
// new record.
//
// This server uses client_management_write_delay = 3 (instead of 10 s) so
// that a batched write is pending when the account is deleted and would
// land well within the 15 s the store is watched.

import assert from "node:assert/strict";
import { describe } from "node:test";

import { useServer, e2eTest, sleep } from "../lib/harness.js";
import { listClients, ids, entry, unixOf, nowSeconds } from "../lib/manage.js";
import { clientRecords, internalStorage, storeFileExists, deleteAccount, MODULE } from "../lib/inspect.js";
import { unboundLogin, bind, waitEnded } from "../lib/rawauth.js";

const WRITE_DELAY = 3;
const WATCH_SECONDS = 15;

/**
 * Log in as `id` twice: the second login only moves last_seen, so its write
 * is batched (pending for WRITE_DELAY s) when this returns. Checks that, so
 * the deletion below really races a pending write.
 */
async function loginTwiceWithPendingWrite(server, login, a, id) {
  const first = await login({ username: a.user, password: a.password, userAgent: { id, software: "Old App", device: "Old Device" } });
  await first.close();
  const stored = await clientRecords(server, a.user);
  assert.ok(stored?.[id], `precondition: the first login of ${id} is stored at once (a new record): ${JSON.stringify(stored)}`);
  await sleep(1200); // last_seen has a resolution of one second
  const second = await login({ username: a.user, password: a.password, userAgent: { id, software: "Old App", device: "Old Device" } });
  await second.close();
  const again = await clientRecords(server, a.user);
  assert.equal(again?.[id]?.last_seen, stored[id].last_seen,
    `precondition: the second login of ${id} (only last_seen changes) is batched, not written yet: ${JSON.stringify(again?.[id])}`);
  return stored[id];
}

/** Watch the account's clients store for `seconds`: it must hold nothing (and no file on internal storage). */
async function assertNothingWritten(server, user, seconds, what) {
  const t0 = Date.now();
  while (Date.now() - t0 < seconds * 1000) {
    const records = await clientRecords(server, user);
    const at = ((Date.now() - t0) / 1000).toFixed(1);
    assert.ok(records === null || Object.keys(records).length === 0,
      `${what}: ${at} s after the deletion the deleted account's clients store holds ${JSON.stringify(records)}`);
    if (internalStorage(server)) {
      assert.equal(storeFileExists(server, "clients", user), false,
        `${what}: ${at} s after the deletion ${server.internalStoreFile("clients", user)} exists`);
    }
    await sleep(1000);
  }
}

describe("account deletion leaves nothing", () => {
  const fx = useServer({ options: { client_management_write_delay: WRITE_DELAY } });

  e2eTest(fx, "prosodyctl shell user delete with a batched write pending: nothing is written for 15 s; re-registered later, the account starts empty", async ({ server, account, login }) => {
    const a = await account("del");
    const old = await loginTwiceWithPendingWrite(server, login, a, "old-client");

    const res = await server.shell(["user", "delete", a.jid]);
    assert.equal(res.code, 0, `user delete failed: ${res.stderr}${res.stdout}`);
    assert.match(res.stdout, /User deleted/, `user delete: ${res.stdout}`);
    await assertNothingWritten(server, a.user, WATCH_SECONDS, "shell user delete");

    // the same name again
    const reRegistered = nowSeconds();
    const password = `${a.password}-2`;
    await server.register(a.user, password);
    const fresh = await login({ username: a.user, password, userAgent: { id: "new-client", software: "New App" } });
    assert.deepEqual(ids((await listClients(fresh)).clients), ["client/new-client"], "the new account lists only its own client");
    const stored = await clientRecords(server, a.user);
    assert.deepEqual(Object.keys(stored ?? {}), ["new-client"], `the new account stores only its own client: ${JSON.stringify(stored)}`);

    // the previous owner's client id logging in to the new account is a new client
    const back = await login({ username: a.user, password, userAgent: { id: "old-client" } });
    const e = entry((await listClients(back)).clients, "client/old-client");
    assert.ok(unixOf(e.firstSeen) >= reRegistered - 1,
      `old-client's first-seen ${e.firstSeen} is from the deleted account (first seen at ${new Date(old.first_seen * 1000).toISOString()}), not from this login`);
    assert.notEqual(e.software, "Old App", `old-client shows the deleted account's software: ${e.el}`);
    assert.notEqual(e.device, "Old Device", `old-client shows the deleted account's device: ${e.el}`);
    const rec = (await clientRecords(server, a.user))?.["old-client"];
    assert.ok(rec && rec.first_seen >= reRegistered - 1, `stored old-client is the old record revived: ${JSON.stringify(rec)}`);
  });

  e2eTest(fx, "usermanager.delete_user with a batched write pending, the same name re-registered at once: only the new client, then and 15 s later", async ({ server, account, login }) => {
    const a = await account("del");
    const old = await loginTwiceWithPendingWrite(server, login, a, "old-client");

    const deletedAt = nowSeconds();
    await deleteAccount(server, a.user);
    const password = `${a.password}-2`;
    await server.register(a.user, password);
    const fresh = await login({ username: a.user, password, userAgent: { id: "new-client", software: "New App" } });
    assert.deepEqual(ids((await listClients(fresh)).clients), ["client/new-client"],
      "the re-registered account is shown the previous owner's clients");

    await sleep(WATCH_SECONDS * 1000); // past the deleted account's pending write (and its timer)
    assert.deepEqual(ids((await listClients(fresh)).clients), ["client/new-client"],
      `${WATCH_SECONDS} s later the re-registered account lists other clients`);
    const stored = await clientRecords(server, a.user);
    assert.deepEqual(Object.keys(stored ?? {}), ["new-client"],
      `${WATCH_SECONDS} s later the re-registered account stores other clients: ${JSON.stringify(stored)}`);
    assert.ok(stored["new-client"].first_seen >= deletedAt, `new-client's first_seen: ${JSON.stringify(stored["new-client"])}`);

    const back = await login({ username: a.user, password, userAgent: { id: "old-client" } });
    const e = entry((await listClients(back)).clients, "client/old-client");
    assert.ok(unixOf(e.firstSeen) >= deletedAt,
      `old-client's first-seen ${e.firstSeen} is the deleted account's (${new Date(old.first_seen * 1000).toISOString()}), not this login's`);
    assert.notEqual(e.software, "Old App", `old-client shows the deleted account's software: ${e.el}`);
    const rec = (await clientRecords(server, a.user))?.["old-client"];
    assert.ok(rec && rec.first_seen >= deletedAt, `stored old-client is the old record revived: ${JSON.stringify(rec)}`);
    assert.equal(rec.ua?.software, undefined, `stored old-client keeps the deleted account's software: ${JSON.stringify(rec)}`);
  });

  e2eTest(fx, "a failure inside the module's user-deleted handling does not stop Prosody purging the account's storage", async ({ server, account, login }) => {
    const a = await account("del-raise");
    const c = await login({ username: a.user, password: a.password, userAgent: { id: "raise-client", software: "App" } });
    await c.close();
    assert.ok((await clientRecords(server, a.user))?.["raise-client"], "precondition: the new client is stored at once");
    // An unbound stream of the account whose close raises (the shared table is weak: the
    // usermanager table holds the fake session meanwhile).
    await server.lua(`
      local um = require "prosody.core.usermanager";
      local fake = { username = ${JSON.stringify(a.user)}, host = "localhost" };
      function fake:close() error("injected failure") end
      um.e2e_fake_session = fake;
      ${MODULE}.module:shared("unbound_streams")[fake] = true;`);
    let deleteError = null;
    try {
      await deleteAccount(server, a.user);
    } catch (e) {
      deleteError = e;
    } finally {
      await server.lua(`
        local um = require "prosody.core.usermanager";
        ${MODULE}.module:shared("unbound_streams")[um.e2e_fake_session] = nil;
        um.e2e_fake_session = nil;`);
    }
    assert.equal(deleteError, null, `usermanager.delete_user raised: ${deleteError?.message}`);
    assert.equal(await clientRecords(server, a.user), null, "the deleted account's clients store was not purged");
    if (internalStorage(server)) {
      assert.equal(storeFileExists(server, "clients", a.user), false, "the deleted account's clients file is still there");
    }
  });

  e2eTest(fx, "deleting an account closes its streams: bound, and authenticated but not bound (SASL2 without Bind 2, legacy SASL)", async ({ server, account, login }) => {
    const a = await account("del");
    const bound = await login({ username: a.user, password: a.password, userAgent: { id: "bound" } });
    const unbound = [
      ["SASL2 without Bind 2", await unboundLogin(server, { kind: "sasl2-password", username: a.user, password: a.password, userAgent: { id: "unbound" } })],
      ["legacy SASL, stream restarted", await unboundLogin(server, { kind: "legacy-plain", username: a.user, password: a.password })],
    ];
    try {
      await deleteAccount(server, a.user);
      assert.ok(await bound.waitClosed(5000), "the bound session of the deleted account is still open");
      for (const [what, u] of unbound) {
        const ended = await waitEnded(u.conn, 5000);
        const reply = await bind(u.conn, "after-delete");
        const session = await server.hasSession(`${a.jid}/after-delete`);
        assert.ok(ended, `${what}: the deleted account's unbound stream is still open 5 s later (a bind then got: ${reply ?? "nothing"}; session created: ${session})`);
        assert.notEqual(reply?.attrs.type, "result", `${what}: the deleted account's stream could still bind: ${reply}`);
        assert.equal(session, false, `${what}: a session of the deleted account exists after the deletion`);
      }
    } finally {
      for (const [, u] of unbound) u.conn.close();
    }
  });
});
