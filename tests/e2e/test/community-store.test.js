// Drop-in compatibility (ARCHITECTURE.md §2, §4): records that the community
// mod_client_management, mod_sasl2_fast and mod_tokenauth wrote on a real
// Prosody 13.0.1 (shared/fixtures/community-module-store) are listed and
// revoked as they are, without any migration.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";

import { useServer, e2eTest } from "../lib/harness.js";
import { SHARED_DIR } from "../lib/server.js";
import {
  listClients, revoke, entry, ids, assertResult, assertError, assertTimestamps, isoSeconds, nowSeconds,
} from "../lib/manage.js";

const FIXTURES = path.join(SHARED_DIR, "fixtures", "community-module-store");
const STORES = ["clients", "fast_tokens", "auth_tokens"];

function fixture(store, user) {
  const file = path.join(FIXTURES, store, `${user}.dat`);
  if (!fs.existsSync(FIXTURES)) {
    throw new Error(`community-module-store fixtures not found at ${FIXTURES}: shared/ must sit beside the repository checkout (or set E2E_SHARED_DIR)`);
  }
  return fs.existsSync(file) ? fs.readFileSync(file, "utf8") : null;
}

// The fixtures were taken on 2026-11-27 between 01:21:05Z (1795742465) and
// 01:21:34Z. The accounts they belong to existed before that session; on
// our fresh server the accounts are created now, and an account's creation
// sets its password_updated (mod_auth_internal_hashed: `updated`), which
// ARCHITECTURE.md §4 and Prosody compare against: password logins before it grant no
// access, FAST tokens issued before it are invalid, and mod_tokenauth
// deletes grants created before it. To list the records the way they were
// listed when they were written, the accounts' password change time is set
// back to just before the fixture session. (The opposite case, a password
// change after the fixture session, is its own test below.)
const FIXTURE_PASSWORD_CHANGED = 1795742400; // 2026-11-27T01:20:00Z

// FAST tokens (expires_at, 21 days after issue) and grants/tokens
// (expires, none in the current fixtures) expire; the README says to
// rewrite them. Expiry within a day from now is moved two weeks ahead.
function refreshExpiry(source) {
  const now = nowSeconds();
  return source.replace(/(\["(?:expires_at|expires)"\] = )(\d+(?:\.\d+)?)/g,
    (m, key, value) => (Number(value) < now + 86400 ? `${key}${now + 14 * 86400}` : m));
}

/**
 * Create the account `user` and seed the fixture records of `fromUser`
 * (default: the same name) into its stores.
 */
async function seedFixtureUser(server, user, { fromUser = user, rewind = true } = {}) {
  const password = `pw-${user}-e2e`;
  await server.register(user, password);
  if (rewind) {
    const info = await server.setAccountTimes(user, { created: FIXTURE_PASSWORD_CHANGED, updated: FIXTURE_PASSWORD_CHANGED });
    assert.equal(info.password_updated, FIXTURE_PASSWORD_CHANGED);
  }
  for (const store of STORES) {
    const src = fixture(store, fromUser);
    if (src !== null) await server.seedStore(store, user, refreshExpiry(src));
  }
  return { user, password, jid: `${user}@localhost` };
}

/** The seeded FAST token of `user` as xmpp.js stores one. */
function fixtureFastToken(user) {
  const src = fixture("fast_tokens", user);
  const secret = src.match(/\["secret"\] = "([^"]+)"/)[1];
  const mechanism = src.match(/\["mechanism"\] = "([^"]+)"/)[1];
  return { mechanism, token: secret, expiry: new Date((nowSeconds() + 86400) * 1000).toISOString() };
}

const viewerUA = { id: "e2e-viewer", software: "E2E Viewer" };
const at = isoSeconds;

describe("community module records, listed without migration", () => {
  const fx = useServer();

  test("fixtures are present and older than the rewound password change", () => {
    fixture("clients", "alice"); // throws a clear error when shared/ is not there
    for (const store of STORES) {
      assert.ok(fs.existsSync(path.join(FIXTURES, store)), `${FIXTURES}/${store}`);
      for (const f of fs.readdirSync(path.join(FIXTURES, store))) {
        const times = [...fs.readFileSync(path.join(FIXTURES, store, f), "utf8")
          .matchAll(/\["(?:first_seen|last_seen|created|issued_at|fast_auth|[A-Z0-9-]+)"\] = (\d{10})/g)].map((m) => Number(m[1]));
        for (const t of times) assert.ok(t >= FIXTURE_PASSWORD_CHANGED, `${store}/${f}: ${t} predates ${FIXTURE_PASSWORD_CHANGED}`);
      }
    }
  });

  e2eTest(fx, "alice: SASL2 password clients and an unused grant", async ({ server, login }) => {
    const a = await seedFixtureUser(server, "alice");
    const viewer = await login({ username: a.user, password: a.password, userAgent: viewerUA });
    const { clients } = await listClients(viewer);
    assert.deepEqual(ids(clients), ["client/rig-alice-sasl2-pw", "client/rig-alice-admin", "grant/ZZlgLn18bRXh", "client/e2e-viewer"]);
    assertTimestamps(clients);
    const pw = entry(clients, "client/rig-alice-sasl2-pw");
    assert.equal(pw.type, "session");
    assert.equal(pw.connected, "false");
    assert.deepEqual(pw.auth, ["password"]);
    assert.equal(pw.software, "Rig SASL2 Client");
    assert.equal(pw.device, "Rig Laptop");
    assert.equal(pw.firstSeen, at(1795742465));
    assert.equal(pw.lastSeen, at(1795742465));
    assert.deepEqual(entry(clients, "client/rig-alice-admin").auth, ["password"]);
    const grant = entry(clients, "grant/ZZlgLn18bRXh");
    assert.equal(grant.type, "access");
    assert.equal(grant.connected, "false");
    assert.deepEqual(grant.auth, ["bearer-token"]);
    assert.equal(grant.software, "Rig Shell Revoke 2");
    assert.equal(grant.uri, "https://shell.invalid/2");
    assert.equal(grant.firstSeen, at(1795742494));
    assert.equal(grant.lastSeen, at(1795742494));

    assertResult(await revoke(viewer, "grant/ZZlgLn18bRXh"), "revoke the seeded grant");
    assert.deepEqual(ids((await listClients(viewer)).clients), ["client/rig-alice-sasl2-pw", "client/rig-alice-admin", "client/e2e-viewer"]);
    assertError(await revoke(viewer, "client/rig-alice-sasl2-pw"), { type: "cancel", condition: "service-unavailable", text: "Password reset required" });
  });

  e2eTest(fx, "bob: a FAST client; its seeded token still logs in", async ({ server, login }) => {
    const b = await seedFixtureUser(server, "bob");
    const viewer = await login({ username: b.user, password: b.password, userAgent: viewerUA });
    let clients = (await listClients(viewer)).clients;
    assert.deepEqual(ids(clients), ["client/rig-bob-fast", "client/rig-bob-admin", "client/e2e-viewer"]);
    const fast = entry(clients, "client/rig-bob-fast");
    assert.deepEqual(fast.auth, ["fast", "password"]);
    assert.equal(fast.software, "Rig FAST Client");
    assert.equal(fast.device, "Rig Phone");
    assert.equal(fast.firstSeen, at(1795742466));

    const phone = await login({
      username: b.user, fast: { token: fixtureFastToken("bob") },
      userAgent: { id: "rig-bob-fast", software: "Rig FAST Client", device: "Rig Phone" },
    });
    assert.equal(phone.sent.find((el) => el.name === "authenticate").attrs.mechanism, "HT-SHA-256-NONE");
    clients = (await listClients(viewer)).clients;
    const again = entry(clients, "client/rig-bob-fast");
    assert.equal(again.connected, "true");
    assert.deepEqual(again.auth, ["fast", "password"]);
    assert.equal(again.firstSeen, at(1795742466), "first_seen kept");
    // (its last_seen may now tie with the viewer's: compare as a set)
    assert.deepEqual(ids(clients).sort(), ["client/e2e-viewer", "client/rig-bob-admin", "client/rig-bob-fast"]);
    assert.equal(ids(clients)[0], "client/rig-bob-admin");
  });

  e2eTest(fx, "carol: legacy clients (generated ids) and a SASL2 client that never bound", async ({ server, login }) => {
    const c = await seedFixtureUser(server, "carol");
    const viewer = await login({ username: c.user, password: c.password, userAgent: viewerUA });
    const { clients } = await listClients(viewer);
    // lUr-magYicQq and rig-carol-nobind2 tie on last_seen and first_seen: id decides
    assert.deepEqual(ids(clients), [
      "client/CVl_55G8R7Q6", "client/ETMbpHN6YXMZ", "client/lUr-magYicQq", "client/rig-carol-nobind2", "client/e2e-viewer",
    ]);
    for (const e of clients.filter((x) => x.id !== "client/e2e-viewer")) {
      assert.deepEqual(e.auth, ["password"], e.id);
      assert.equal(e.connected, "false", e.id);
      assert.equal(e.type, "session", e.id);
    }
    assert.equal(entry(clients, "client/rig-carol-nobind2").software, "Rig No-Bind2 Client");

    // a legacy client coming back on its resource is the same client
    const legacy = await login({ username: c.user, password: c.password, sasl2: false, resource: "legacy-res" });
    const after = (await listClients(legacy)).clients;
    assert.equal(after.length, clients.length, `${ids(after)}`);
    const back = entry(after, "client/CVl_55G8R7Q6");
    assert.equal(back.connected, "true");
    assert.equal(back.firstSeen, at(1795742467));
  });

  e2eTest(fx, "dave: an OAUTHBEARER client is listed once, with its grant; revocable", async ({ server, login }) => {
    const d = await seedFixtureUser(server, "dave");
    const viewer = await login({ username: d.user, password: d.password, userAgent: viewerUA });
    const { clients } = await listClients(viewer);
    // tie on last_seen and first_seen: id decides
    assert.deepEqual(ids(clients), ["client/rig-dave-admin", "client/rig-dave-oauth", "client/e2e-viewer"]);
    const oauth = entry(clients, "client/rig-dave-oauth");
    assert.equal(oauth.type, "session");
    assert.deepEqual(oauth.auth, ["bearer-token"], "fast_auth is set but dave holds no FAST token");
    assert.equal(oauth.software, "Rig OAuth Client");
    assert.equal(oauth.device, "Rig Tablet");
    assert.equal(oauth.uri, "https://oauth.invalid/app");
    assert.equal(oauth.softwareEl.attrs.id, "rig-oauth-app");
    assert.equal(oauth.softwareEl.attrs.version, "2.0");

    assertResult(await revoke(viewer, "client/rig-dave-oauth"), "revoke the OAuth client");
    assert.equal((await server.userGrants(d.user))?.YbnoAQ61RxY2, undefined, "its grant is revoked");
    assert.deepEqual(ids((await listClients(viewer)).clients), ["client/rig-dave-admin", "client/e2e-viewer"]);
  });

  e2eTest(fx, "erin: grant + FAST client; after revocation its seeded FAST token is refused", async ({ server, login, tryLogin }) => {
    const e = await seedFixtureUser(server, "erin");
    const viewer = await login({ username: e.user, password: e.password, userAgent: viewerUA });
    const { clients } = await listClients(viewer);
    assert.deepEqual(ids(clients), ["client/rig-erin-oauth", "client/rig-erin-admin", "client/e2e-viewer"]);
    const oauth = entry(clients, "client/rig-erin-oauth");
    assert.deepEqual(oauth.auth, ["bearer-token", "fast"]);
    assert.equal(oauth.software, "Rig Connected Client");
    assert.equal(oauth.device, undefined);

    assertResult(await revoke(viewer, "client/rig-erin-oauth"), "revoke");
    const r = await tryLogin({ username: e.user, fast: { token: fixtureFastToken("erin") }, userAgent: { id: "rig-erin-oauth" }, timeout: 5000 });
    assert.equal(r.ok, false, "seeded FAST token still logs in");
    assert.equal((await server.userGrants(e.user))?.TKbaKd0Kr7RT, undefined);
    assert.deepEqual(ids((await listClients(viewer)).clients), ["client/rig-erin-admin", "client/e2e-viewer"]);
  });

  e2eTest(fx, "frank: password clients only (a 'FAST' client that never got a token)", async ({ server, login }) => {
    const f = await seedFixtureUser(server, "frank");
    const viewer = await login({ username: f.user, password: f.password, userAgent: viewerUA });
    const { clients } = await listClients(viewer);
    assert.deepEqual(ids(clients), ["client/rig-frank-pw", "client/rig-frank-fast", "client/rig-frank-admin", "client/e2e-viewer"]);
    for (const x of clients) assert.deepEqual(x.auth, ["password"], x.id);
  });

  e2eTest(fx, "gina: FAST access only (her grant is gone); revocable", async ({ server, login, tryLogin }) => {
    const g = await seedFixtureUser(server, "gina");
    const viewer = await login({ username: g.user, password: g.password, userAgent: viewerUA });
    const { clients } = await listClients(viewer);
    assert.deepEqual(ids(clients), ["client/rig-gina-oauth", "client/rig-gina-admin", "client/e2e-viewer"]);
    const oauth = entry(clients, "client/rig-gina-oauth");
    assert.deepEqual(oauth.auth, ["fast"]);
    assert.equal(oauth.software, "Rig Unused-FAST Client");
    assertResult(await revoke(viewer, "client/rig-gina-oauth"), "revoke");
    const r = await tryLogin({ username: g.user, fast: { token: fixtureFastToken("gina") }, userAgent: { id: "rig-gina-oauth" }, timeout: 5000 });
    assert.equal(r.ok, false, "seeded FAST token still logs in");
    assert.deepEqual(ids((await listClients(viewer)).clients), ["client/rig-gina-admin", "client/e2e-viewer"]);
  });

  e2eTest(fx, "password changed after the records were written: none of them has access", async ({ server, login }) => {
    // Same records, but the account's password_updated is its creation
    // (now), after every login, FAST token and grant in the fixtures.
    for (const from of ["bob", "dave", "erin"]) {
      const u = await seedFixtureUser(server, `late-${from}`, { fromUser: from, rewind: false });
      const viewer = await login({ username: u.user, password: u.password, userAgent: viewerUA });
      assert.deepEqual(ids((await listClients(viewer)).clients), ["client/e2e-viewer"], from);
      assert.deepEqual(Object.keys((await server.userGrants(u.user)) ?? {}), [], `${from}: grants invalidated`);
    }
  });
});
