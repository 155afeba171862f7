// Issue 8, item 4 (PLAN "Retention and prune", options
// client_management_store_full_jids / client_management_store_device_names):
// records of clients without access are deleted once last seen longer ago
// than client_management_retention; `prosodyctl shell clients prune HOST
// [--dry-run]` and `clients:prune(HOST[, { dry_run = true }])` run it now and
// print exact counts; an admin can stop storing full JIDs (SASL2 records) and
// device names.
//
// The prune server uses client_management_retention = 60 (seconds).

import assert from "node:assert/strict";
import { describe } from "node:test";

import { useServer, e2eTest, eventually, assertRefused, assertClosed } from "../lib/harness.js";
import { listClients, revoke, entry, assertResult, nowSeconds, LEGACY_ID } from "../lib/manage.js";
import { clientRecords, storeSet } from "../lib/inspect.js";

const shown = (res) => `exit ${res.code}\n--- stdout ---\n${res.stdout}--- stderr ---\n${res.stderr}`;

/** A command-line shell run that succeeded with exactly `OK: text` as its only output. */
function assertOkLine(res, text, what) {
  assert.equal(res.code, 0, `${what}: ${shown(res)}`);
  assert.equal(res.stdout.trim(), `OK: ${text}`, `${what}: ${shown(res)}`);
}

/** An interactive console run whose one command answered `| OK: text`. */
function assertConsoleOk(res, text, what) {
  const results = res.stdout.split("\n").map((l) => l.match(/\| (OK: .*|Error: .*)$/)?.[1]).filter(Boolean);
  assert.deepEqual(results, [`OK: ${text}`], `${what}: ${shown(res)}`);
}

/** Stored record ids of an account, sorted. */
async function storedIds(server, user) {
  return Object.keys((await clientRecords(server, user)) ?? {}).sort();
}

// mod_cron runs daily tasks a second after start-up (cron_initial_delay): these servers put
// that off, so that only the commands under test prune. The daily job has its own test.
const NO_CRON = { cron_initial_delay: 86400 };

describe("prune (client_management_retention = 60 s)", () => {
  const fx = useServer({ options: { client_management_retention: 60 }, globalOptions: NO_CRON });

  e2eTest(fx, "prune --dry-run counts and deletes nothing; prune deletes exactly the records without access last seen before the retention", async ({ server, account }) => {
    const now = nowSeconds();
    const hourAgo = now - 3600;
    // u1: password changed half an hour ago; everything before it has no access
    const u1 = await account("ret1");
    await server.setAccountTimes(u1.user, { updated: now - 1800 });
    await storeSet(server, "clients", u1.user, {
      "stale-pw": { id: "stale-pw", first_seen: hourAgo - 100, last_seen: hourAgo, mechanisms: { "SCRAM-SHA-1": hourAgo } },
      "stale-grant": { id: "stale-grant", first_seen: hourAgo, last_seen: hourAgo, mechanisms: { OAUTHBEARER: hourAgo }, auth_token_id: "noSuchGrant" },
      "first-only": { id: "first-only", first_seen: hourAgo, mechanisms: { "SCRAM-SHA-1": hourAgo } },
      "no-times": { id: "no-times", mechanisms: {} },
      recent: { id: "recent", first_seen: now - 5, last_seen: now - 5, mechanisms: { OAUTHBEARER: now - 5 }, auth_token_id: "noSuchGrant2" },
    });
    // u2: password changed two hours ago: a password login an hour ago still has access; so has a live grant
    const u2 = await account("ret2");
    await server.setAccountTimes(u2.user, { updated: now - 7200 });
    const g = await server.createGrant(u2.user);
    await storeSet(server, "clients", u2.user, {
      "pw-old": { id: "pw-old", first_seen: hourAgo, last_seen: hourAgo, mechanisms: { "SCRAM-SHA-1": hourAgo } },
      "grant-old": { id: "grant-old", first_seen: hourAgo, last_seen: hourAgo, mechanisms: { OAUTHBEARER: hourAgo }, auth_token_id: g.grantId },
      "stale-u2": { id: "stale-u2", first_seen: hourAgo, last_seen: hourAgo, mechanisms: { OAUTHBEARER: hourAgo }, auth_token_id: "gone" },
    });
    // u3: nothing to delete
    const u3 = await account("ret3");
    await server.setAccountTimes(u3.user, { updated: now - 7200 });
    await storeSet(server, "clients", u3.user, {
      "pw-only": { id: "pw-only", first_seen: hourAgo, last_seen: hourAgo, mechanisms: { PLAIN: hourAgo } },
    });
    const before = {
      u1: await storedIds(server, u1.user), u2: await storedIds(server, u2.user), u3: await storedIds(server, u3.user),
    };
    assert.deepEqual(before, {
      u1: ["first-only", "no-times", "recent", "stale-grant", "stale-pw"],
      u2: ["grant-old", "pw-old", "stale-u2"],
      u3: ["pw-only"],
    }, "seeded through the storage API");

    const dry = await server.shell(["clients", "prune", "localhost", "--dry-run"]);
    assertOkLine(dry, "Dry run: 5 client record(s) would be deleted from 2 account(s), 0 account(s) failed", "prune --dry-run");
    const line = `clients:prune("localhost", { dry_run = true })`;
    const viaConsole = await server.shellInteractive([line]);
    assertConsoleOk(viaConsole, "Dry run: 5 client record(s) would be deleted from 2 account(s), 0 account(s) failed", line);
    assert.deepEqual({
      u1: await storedIds(server, u1.user), u2: await storedIds(server, u2.user), u3: await storedIds(server, u3.user),
    }, before, "a dry run deleted records");

    const real = await server.shell(["clients", "prune", "localhost"]);
    assertOkLine(real, "5 client record(s) deleted from 2 account(s), 0 account(s) failed", "prune");
    const expected = { u1: ["recent"], u2: ["grant-old", "pw-old"], u3: ["pw-only"] };
    let after;
    await eventually(async () => {
      after = { u1: await storedIds(server, u1.user), u2: await storedIds(server, u2.user), u3: await storedIds(server, u3.user) };
      return JSON.stringify(after) === JSON.stringify(expected);
    }, { timeout: 15000, interval: 500 });
    assert.deepEqual(after, expected, "stored records after prune (kept: recent without access, password access, grant access)");
    assert.ok((await server.userGrants(u2.user))?.[g.grantId], "prune leaves grants alone");

    assertOkLine(await server.shell(["clients", "prune", "localhost"]),
      "0 client record(s) deleted from 0 account(s), 0 account(s) failed", "prune again");

    // the interactive form, for real
    const u4 = await account("ret4");
    await storeSet(server, "clients", u4.user, {
      gone: { id: "gone", first_seen: hourAgo, last_seen: hourAgo, mechanisms: { OAUTHBEARER: hourAgo }, auth_token_id: "gone" },
    });
    const real2 = await server.shellInteractive([`clients:prune("localhost")`]);
    assertConsoleOk(real2, "1 client record(s) deleted from 1 account(s), 0 account(s) failed", `clients:prune("localhost")`);
    assert.ok(await eventually(async () => (await clientRecords(server, u4.user)) === null || (await storedIds(server, u4.user)).length === 0),
      `u4's record is still stored: ${JSON.stringify(await clientRecords(server, u4.user))}`);
  });
});

describe("the daily prune job (module:daily)", () => {
  const fx = useServer({ options: { client_management_retention: 60 }, globalOptions: NO_CRON });

  e2eTest(fx, "is registered with mod_cron and, when it runs, deletes what prune would", async ({ server, account }) => {
    const hourAgo = nowSeconds() - 3600;
    const a = await account("daily");
    await storeSet(server, "clients", a.user, {
      stale: { id: "stale", first_seen: hourAgo, last_seen: hourAgo, mechanisms: { OAUTHBEARER: hourAgo }, auth_token_id: "gone" },
      recent: { id: "recent", first_seen: nowSeconds(), last_seen: nowSeconds(), mechanisms: { OAUTHBEARER: nowSeconds() }, auth_token_id: "gone" },
    });
    const mark = server.logOffset();
    // What mod_cron does when the day is over: run the host's task in an async runner.
    const task = await server.lua(`
      local mod = assert(require "prosody.core.modulemanager".get_module("localhost", "client_management"));
      for _, task in ipairs(mod.module:get_host_items("task")) do
        if task.id == "client_management/prune_client_records" then
          require "prosody.util.async".runner(function () task:run(os.time()) end):run(true);
          return { id = task.id, when = task.when };
        end
      end
      return nil;`);
    assert.deepEqual(task, { id: "client_management/prune_client_records", when: "daily" }, "the daily task is registered");
    assert.ok(await eventually(async () => JSON.stringify(await storedIds(server, a.user)) === JSON.stringify(["recent"]), { timeout: 10000 }),
      `after the daily job: ${JSON.stringify(await storedIds(server, a.user))}`);
    assert.ok(server.logSince(mark).some((l) => /Pruned 1 client record\(s\) from 1 account\(s\), 0 account\(s\) failed/.test(l)),
      "the job logs what it did");
  });
});

describe("privacy options: client_management_store_full_jids = false, client_management_store_device_names = false", () => {
  const fx = useServer({
    options: { client_management_store_full_jids: false, client_management_store_device_names: false },
    globalOptions: NO_CRON,
  });

  e2eTest(fx, "a SASL2 client's record has no full_jid and no device; it is listed as connected and revocable", async ({ server, account, login, tryLogin }) => {
    const a = await account();
    const g = await server.createGrant(a.user);
    const ua = { id: "private-grant", software: "Private App", device: "Secret Phone" };
    const c = await login({ username: a.user, oauthToken: g.token, userAgent: ua });
    const rec = await eventually(async () => (await clientRecords(server, a.user))?.["private-grant"]);
    assert.ok(rec, "the client's record is stored");
    assert.equal(rec.full_jid, undefined, `full_jid stored: ${JSON.stringify(rec)}`);
    assert.equal(rec.has_device, false, `device stored: ${JSON.stringify(rec)}`);
    assert.equal(rec.ua?.software?.text, "Private App", `software is still stored: ${JSON.stringify(rec)}`);

    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "viewer", device: "Viewer Device" } });
    const e = entry((await listClients(viewer)).clients, "client/private-grant");
    assert.equal(e.connected, "true", `listed as connected while online: ${e.el}`);
    assert.equal(e.device, undefined, `device listed: ${e.el}`);
    const viewerRec = (await clientRecords(server, a.user))?.viewer;
    assert.ok(viewerRec && viewerRec.full_jid === undefined && !viewerRec.has_device, `viewer's record: ${JSON.stringify(viewerRec)}`);

    assertResult(await revoke(viewer, "client/private-grant"), "revoke client/private-grant");
    await assertClosed(server, c, "the revoked client (stored without full JID)");
    await assertRefused(tryLogin, { username: a.user, oauthToken: g.token, userAgent: ua }, "the revoked client's grant token");
  });

  e2eTest(fx, "a legacy client still works: its record keeps full_jid and a re-login with the same resource is the same client", async ({ server, account, login }) => {
    const a = await account();
    const first = await login({ username: a.user, password: a.password, sasl2: false, resource: "legacy-priv" });
    const jid = first.jid;
    const rec = await eventually(async () => Object.values((await clientRecords(server, a.user)) ?? {}).find((r) => r.legacy));
    assert.ok(rec, "the legacy client's record is stored");
    assert.equal(rec.full_jid, jid, `a legacy record keeps its full JID (it is how it is found): ${JSON.stringify(rec)}`);
    assert.match(rec.id, LEGACY_ID);
    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "viewer" } });
    assert.equal(entry((await listClients(viewer)).clients, `client/${rec.id}`).connected, "true", "listed as connected");
    await first.close();
    assert.ok(await eventually(async () => !(await server.hasSession(jid))), "first legacy session ended");
    await login({ username: a.user, password: a.password, sasl2: false, resource: "legacy-priv" });
    const legacy = (await listClients(viewer)).clients.filter((c) => c.id !== "client/viewer");
    assert.deepEqual(legacy.map((c) => [c.id, c.connected]), [[`client/${rec.id}`, "true"]], "the same legacy client, connected again");
  });

  e2eTest(fx, "prune strips full_jid and device from stored SASL2 records (legacy records keep full_jid)", async ({ server, account }) => {
    const now = nowSeconds();
    const a = await account();
    await server.setAccountTimes(a.user, { updated: now - 7200 });
    await storeSet(server, "clients", a.user, {
      "old-sasl2": {
        id: "old-sasl2", first_seen: now - 100, last_seen: now - 100, mechanisms: { "SCRAM-SHA-1": now - 100 },
        full_jid: `${a.jid}/old-res`, user_agent: { software: "Old Soft", device: "Old Device" },
      },
      abcdefghijkl: {
        id: "abcdefghijkl", first_seen: now - 100, last_seen: now - 100, mechanisms: { PLAIN: now - 100 },
        full_jid: `${a.jid}/legacy-res`, legacy: true, user_agent: { device: "Legacy Device" },
      },
    });
    const res = await server.shell(["clients", "prune", "localhost"]);
    assertOkLine(res, "0 client record(s) deleted from 0 account(s), 0 account(s) failed", "prune");
    let recs;
    await eventually(async () => {
      recs = await clientRecords(server, a.user);
      return recs?.["old-sasl2"] && recs["old-sasl2"].full_jid === undefined && !recs["old-sasl2"].has_device;
    }, { timeout: 15000, interval: 500 });
    assert.ok(recs?.["old-sasl2"], `old-sasl2 kept: ${JSON.stringify(recs)}`);
    assert.equal(recs["old-sasl2"].full_jid, undefined, `prune left full_jid on a SASL2 record: ${JSON.stringify(recs["old-sasl2"])}`);
    assert.equal(recs["old-sasl2"].has_device, false, `prune left the device on a SASL2 record: ${JSON.stringify(recs["old-sasl2"])}`);
    assert.equal(recs["old-sasl2"].ua?.software?.text, "Old Soft", "software kept");
    assert.equal(recs.abcdefghijkl?.full_jid, `${a.jid}/legacy-res`, `a legacy record keeps full_jid: ${JSON.stringify(recs.abcdefghijkl)}`);
    assert.equal(recs.abcdefghijkl?.has_device, false, `prune left the device on a legacy record: ${JSON.stringify(recs.abcdefghijkl)}`);
  });
});
