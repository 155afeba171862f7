// Issue 8, item 3 (PLAN "Limits"): oversized input is refused or cut, and an
// account's records are capped.
// - a SASL2 <user-agent id> over 256 bytes is refused before any other
//   handler (FAST too) with an exact SASL2 failure; 256 bytes is fine;
// - software, version, software id, device and URI are cut to their first
//   256 characters (never a split UTF-8 sequence): stored, listed (both
//   namespaces), shell;
// - at most client_management_max_clients (default 100, left at the default
//   here) records per account; FAST/grant holders and connected clients are
//   never dropped; a flood of one-shot logins replaces itself and never pushes
//   out older records (issue 14, item 6); the legacy index store is gone.
// This server uses client_management_write_delay = 2 so that batched writes
// settle quickly; nothing here is timed.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe } from "node:test";

import { useServer, e2eTest, eventually } from "../lib/harness.js";
import { luaString } from "../lib/server.js";
import { NS, xml } from "../lib/client.js";
import { NS_MC, NS_CAM, listClients, revoke, entry, ids, nowSeconds, assertError } from "../lib/manage.js";
import { executeCommand, NODE_MANAGE } from "../lib/adhoc.js";
import {
  openRaw, sasl2Authenticate, htSha256NoneResponse, plainInitial, assertSasl2Failure, legacyBoundLogin, closeRaw, unboundLogin,
} from "../lib/rawauth.js";
import { clientRecords, storeGet, storeSet, internalStorage, storeFileExists, MODULE } from "../lib/inspect.js";

const TOO_LONG = { condition: "malformed-request", text: "Client identifier too long (at most 256 bytes)" };
const MAX = 256;
const CAP = 100;

/** The first `n` characters (code points) of `s`. */
const firstChars = (s, n = MAX) => [...s].slice(0, n).join("");
const chars = (s) => [...s].length;
const bytes = (s) => Buffer.byteLength(s, "utf8");

/** A text of about `size` bytes whose first 256 characters end in a 4-byte and a 2-byte character:
 *  a cut by bytes splits the emoji, a cut by UTF-16 units drops the "é". */
function longText(size, fill = "x") {
  const head = `${"s".repeat(MAX - 2)}\u{1F600}é`;
  return head + fill.repeat(Math.floor(Math.max(0, size - bytes(head)) / bytes(fill)));
}

/** Checks a listed/stored text: exactly the first 256 characters of `sent`, valid UTF-8. */
function assertCut(got, sent, what) {
  const want = firstChars(sent);
  assert.equal(typeof got, "string", `${what}: missing`);
  assert.ok(!got.includes("\uFFFD"), `${what}: not valid UTF-8 (a split character): …${JSON.stringify(got.slice(-8))}`);
  assert.equal(chars(got), MAX, `${what}: ${chars(got)} characters (${bytes(got)} bytes), not ${MAX}`);
  assert.equal(got, want, `${what}: not the first ${MAX} characters of what was sent (ends …${JSON.stringify(got.slice(-6))}, want …${JSON.stringify(want.slice(-6))})`);
}

/** A stored text view (inspect.js clientRecords ua field): 256 characters, valid UTF-8, the first ones sent. */
function assertStoredCut(field, sent, what) {
  assert.ok(field, `${what}: not stored`);
  assert.notEqual(field.chars, false, `${what}: stored text is not valid UTF-8 (${field.bytes} bytes)`);
  assert.equal(field.chars, MAX, `${what}: stored ${field.chars} characters (${field.bytes} bytes), not ${MAX}`);
  assert.equal(field.text, firstChars(sent), `${what}: stored text is not the first ${MAX} characters sent`);
}

describe("oversized input", () => {
  const fx = useServer({ options: { client_management_write_delay: 2 } });

  e2eTest(fx, "a SASL2 client id over 256 bytes is refused with the exact failure (also with a FAST token request); 256 bytes logs in", async ({ server, account, tryLogin, login }) => {
    const a = await account();
    const cases = [
      ["257 ASCII bytes", "i".repeat(MAX + 1)],
      ["129 × 'é' (129 characters, 258 bytes)", "é".repeat(129)],
      ["200 KB", "z".repeat(200 * 1024)],
    ];
    for (const [what, id] of cases) {
      const store = { token: null };
      const r = await tryLogin({ username: a.user, password: a.password, userAgent: { id, software: "Too Long" }, fast: store, timeout: 5000 });
      assert.equal(r.ok, false, `client id of ${what}: logged in`);
      assertSasl2Failure(r.failure, TOO_LONG, `client id of ${what}`);
      assert.equal(store.token, null, `client id of ${what}: a FAST token was issued`);
    }
    for (const [what, id] of [["256 ASCII bytes", "k".repeat(MAX)], ["128 × 'é' (256 bytes)", "é".repeat(128)]]) {
      const c = await login({ username: a.user, password: a.password, userAgent: { id, software: "Long Enough" } });
      entry((await listClients(c)).clients, `client/${id}`);
      await c.close();
    }
    const stored = await clientRecords(server, a.user);
    const tooLong = Object.keys(stored ?? {}).filter((k) => bytes(k) > MAX);
    assert.deepEqual(tooLong.map((k) => `${k.slice(0, 20)}… (${bytes(k)} bytes)`), [], "no record under a refused id");
  });

  e2eTest(fx, "a 257-byte id is refused before FAST looks at it (raw <authenticate/> with <fast/>, and with <request-token/>)", async ({ server, account }) => {
    const a = await account();
    const id = "f".repeat(MAX + 1);
    {
      const { conn, features } = await openRaw(server, { from: a.jid });
      try {
        assert.ok(features.getChild("authentication", NS.sasl2)?.getChild("inline")?.getChild("fast", NS.fast), `FAST offered: ${features}`);
        const reply = await sasl2Authenticate(conn, {
          mechanism: "HT-SHA-256-NONE", initialResponse: htSha256NoneResponse(a.user, "secret-token:fast-not-a-real-token"),
          userAgent: { id }, fast: true,
        });
        assertSasl2Failure(reply, TOO_LONG, "FAST login with a 257-byte id");
      } finally {
        await closeRaw(conn);
      }
    }
    {
      const { conn } = await openRaw(server, { from: a.jid });
      try {
        const reply = await sasl2Authenticate(conn, {
          mechanism: "PLAIN", initialResponse: plainInitial(a.user, a.password), userAgent: { id, software: "X" }, requestToken: "HT-SHA-256-NONE",
        });
        assertSasl2Failure(reply, TOO_LONG, "password login with a 257-byte id and a FAST token request");
        assert.ok(!conn.text.includes("urn:xmpp:fast:0' token") && !/<token\b/.test(conn.text), `no FAST token: ${conn.text.slice(-500)}`);
      } finally {
        await closeRaw(conn);
      }
    }
  });

  e2eTest(fx, "software and device of 100 KB are stored, listed (both namespaces) and shown cut to 256 characters on a character boundary", async ({ server, account, login }) => {
    const a = await account();
    const software = longText(100 * 1024, "x");
    const device = "é".repeat(50 * 1024); // 100 KB of 2-byte characters
    const c = await login({ username: a.user, password: a.password, userAgent: { id: "big-ua", software, device } });
    for (const ns of [NS_MC, NS_CAM]) {
      const { reply, clients } = await listClients(c, { ns });
      const e = entry(clients, "client/big-ua");
      assertCut(e.software, software, `listed software (${ns})`);
      assertCut(e.device, device, `listed device (${ns})`);
      assert.ok(reply.toString().length < 8 * 1024, `the list reply (${ns}) is ${reply.toString().length} characters long`);
    }
    const rec = (await clientRecords(server, a.user))?.["big-ua"];
    assert.ok(rec, "record stored");
    assertStoredCut(rec.ua?.software, software, "stored software");
    assertStoredCut(rec.ua?.device, device, "stored device");

    const out = await server.shell(["user", "clients", a.jid], { env: { COLUMNS: "400" } });
    assert.equal(out.code, 0, `user clients: ${out.stderr}${out.stdout}`);
    assert.ok(out.stdout.includes(firstChars(software)), `the shell shows the first ${MAX} characters of the software:\n${out.stdout.slice(0, 2000)}`);
    assert.ok(!out.stdout.includes(firstChars(software, MAX + 1)), `the shell shows more than ${MAX} characters of the software`);
    assert.ok(out.stdout.length < 8 * 1024, `shell output of ${out.stdout.length} characters`);
  });

  e2eTest(fx, "a grant's OAuth client name, uri, id and version over 256 characters are cut (list, public API, the record of a client using it)", async ({ server, account, login }) => {
    const a = await account();
    const client = {
      name: longText(1000, "n"),
      uri: `https://e2e.invalid/${"é".repeat(400)}`,
      id: longText(600, "i"),
      version: longText(600, "v"),
    };
    const g = await server.createGrant(a.user, { client });
    const g2 = await server.createGrant(a.user, { client });
    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "viewer" } });
    for (const ns of [NS_MC, NS_CAM]) {
      const e = entry((await listClients(viewer, { ns })).clients, `grant/${g.grantId}`);
      assertCut(e.software, client.name, `grant software (${ns})`);
      assertCut(e.uri, client.uri, `grant uri (${ns})`);
    }
    const api = await server.lua(`
      local r = {};
      for _, c in ipairs(${MODULE}.get_active_clients(${luaString(a.user)}) or {}) do
        if c.id == ${luaString(`grant/${g.grantId}`)} and type(c.user_agent) == "table" then
          for k, v in pairs(c.user_agent) do
            if type(v) == "string" then r[k] = { bytes = #v, chars = utf8.len(v) or false, text = v } end
          end
        end
      end
      return r;`);
    assertStoredCut(api?.software, client.name, "get_active_clients software");
    assertStoredCut(api?.uri, client.uri, "get_active_clients uri");
    assertStoredCut(api?.software_id, client.id, "get_active_clients software_id");
    assertStoredCut(api?.software_version, client.version, "get_active_clients software_version");

    // a SASL2 client logging in with the other grant: its record takes the OAuth client data, cut
    const user = await login({ username: a.user, oauthToken: g2.token, userAgent: { id: "oauth-user" } });
    const listed = entry((await listClients(user)).clients, "client/oauth-user");
    assertCut(listed.software, client.name, "software of the client using the grant");
    const rec = await eventually(async () => (await clientRecords(server, a.user))?.["oauth-user"]);
    assert.ok(rec, "record of the grant's client stored");
    assertStoredCut(rec.ua?.software, client.name, "stored software (OAuth name)");
    assertStoredCut(rec.ua?.uri, client.uri, "stored uri");
    assertStoredCut(rec.ua?.software_id, client.id, "stored software_id");
    assertStoredCut(rec.ua?.software_version, client.version, "stored software_version");
  });
});

describe("records per account are capped (client_management_max_clients, default 100)", () => {
  const fx = useServer({ options: { client_management_write_delay: 2 } });

  e2eTest(fx, "a flood of 500 one-shot SASL2 logins and 300 random legacy resources: at most 100 records; every older record stays (the owner's offline password clients, FAST/grant holders, connected clients); newcomers replace each other", async ({ server, account, login }) => {
    const a = await account("cap");
    // The owner's established clients, as earlier logins stored them: first seen weeks ago,
    // last seen with the password (after its last change) a few minutes ago, offline now.
    const now = nowSeconds();
    await server.setAccountTimes(a.user, { updated: now - 86400 });
    const OWNER = Array.from({ length: 6 }, (_, i) => `owner-${i}`);
    await storeSet(server, "clients", a.user, Object.fromEntries(OWNER.map((id, i) => [id, {
      id, first_seen: now - 30 * 86400, last_seen: now - 600 + i, full_jid: `${a.jid}/${id}`,
      mechanisms: { "SCRAM-SHA-1": now - 600 + i }, user_agent: { software: `Owner App ${i}` },
    }])));
    // Clients that hold credentials or streams …
    const g = await server.createGrant(a.user);
    const grantClient = await login({ username: a.user, oauthToken: g.token, userAgent: { id: "keep-grant", software: "Grant App" } });
    await grantClient.close();
    const fastStore = { token: null };
    const fastClient = await login({ username: a.user, password: a.password, fast: fastStore, userAgent: { id: "keep-fast", software: "FAST App" } });
    assert.ok(fastStore.token, "a FAST token was issued to keep-fast");
    await fastClient.close();
    // … and one seen once, but before the flood.
    const oldPassword = await login({ username: a.user, password: a.password, userAgent: { id: "old-password" } });
    await oldPassword.close();
    const connected = await login({ username: a.user, password: a.password, userAgent: { id: "keep-connected" } });
    const legacyStay = await legacyBoundLogin(server, { username: a.user, password: a.password, resource: "legacy-stay" });
    const older = [...OWNER, "keep-grant", "keep-fast", "old-password", "keep-connected"];

    const BATCH = 10;
    const flood = async (n, one) => {
      for (let i = 0; i < n; i += BATCH) {
        const batch = await Promise.all(Array.from({ length: Math.min(BATCH, n - i) }, (_, j) => one(i + j)));
        await Promise.all(batch.map((b) => closeRaw(b.conn)));
      }
    };
    try {
      await flood(500, (i) => unboundLogin(server, {
        kind: "sasl2-password", username: a.user, password: a.password, userAgent: { id: `flood-${i}-${randomBytes(3).toString("hex")}`, software: "Flood" },
      }));
      await flood(300, () => legacyBoundLogin(server, { username: a.user, password: a.password, resource: `r-${randomBytes(6).toString("hex")}` }));

      // Batched writes settle within the write delay (2 s); allow for a retry.
      let records = null;
      await eventually(async () => {
        records = await clientRecords(server, a.user);
        return records && Object.keys(records).length <= CAP;
      }, { timeout: 15000, interval: 1000 });
      const n = Object.keys(records ?? {}).length;
      assert.ok(n <= CAP, `the clients store holds ${n} records after 800 one-shot logins (cap ${CAP})`);
      const lost = older.filter((id) => !records[id]);
      assert.deepEqual(lost, [], "records older than the flood were pushed out by it");
      const byJid = (jid) => Object.values(records).find((r) => r.full_jid === jid);
      assert.ok(byJid(legacyStay.jid), `the connected legacy client ${legacyStay.jid} was dropped`);
      const newcomers = Object.keys(records).filter((id) => id.startsWith("flood-"));
      assert.ok(newcomers.length > 0 && newcomers.length < 500, `${newcomers.length} flood records kept`);

      const legacyIndex = await storeGet(server, "client_management_legacy", a.user);
      assert.ok(legacyIndex.ok && (legacyIndex.value == null || Object.keys(legacyIndex.value).length === 0),
        `the client_management_legacy store holds data: ${JSON.stringify(legacyIndex).slice(0, 300)}`);
      if (internalStorage(server)) {
        assert.equal(storeFileExists(server, "client_management_legacy", a.user), false,
          `${server.internalStoreFile("client_management_legacy", a.user)} exists`);
      }

      const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "viewer" } });
      const { clients } = await listClients(viewer);
      assert.ok(clients.length <= CAP + 1, `${clients.length} clients listed`);
      for (const id of [...OWNER, "keep-grant", "keep-fast", "old-password"]) entry(clients, `client/${id}`);
      assert.equal(entry(clients, "client/keep-connected").connected, "true", "keep-connected is listed as connected");
      const legacyListed = clients.filter((c) => c.connected === "true" && !["client/keep-connected", "client/viewer"].includes(c.id));
      assert.equal(legacyListed.length, 1, `the connected legacy client is listed once as connected: ${ids(legacyListed)}`);
      assert.ok(await server.hasSession(connected.jid), "keep-connected still connected");
    } finally {
      await closeRaw(legacyStay.conn);
    }
  }, { timeout: 300000 });
});

describe("a budget of list and ad-hoc requests per stream (client_management_requests_per_minute; issue 14, item 9)", () => {
  const PER_MINUTE = 5;
  const fx = useServer({ options: { client_management_requests_per_minute: PER_MINUTE } });

  e2eTest(fx, "past the budget a stream's list and ad-hoc requests get wait/resource-constraint (both namespaces); another stream of the account still gets answers; revoking is not limited", async ({ account, login }) => {
    const a = await account("budget");
    const greedy = await login({ username: a.user, password: a.password, userAgent: { id: "greedy" } });
    const other = await login({ username: a.user, password: a.password, userAgent: { id: "other" } });
    for (let i = 0; i < PER_MINUTE; i++) {
      await listClients(greedy, { ns: i % 2 ? NS_CAM : NS_MC });
    }
    for (const ns of [NS_MC, NS_CAM]) {
      const reply = await greedy.iq(xml("list", { xmlns: ns }), { type: "get" });
      const e = assertError(reply, { type: "wait", condition: "resource-constraint" });
      assert.match(e.text ?? "", /Too many requests; try again in \d+ s/, `the error says when to try again: ${reply}`);
    }
    const command = await executeCommand(greedy, { node: NODE_MANAGE });
    assert.equal(command.type, "error", `an ad-hoc command past the budget: ${command.reply}`);
    assert.equal(command.error.type, "wait");
    assert.equal(command.error.condition, "resource-constraint");
    // Per stream: the other one is untouched, and revocation is not limited.
    entry((await listClients(other)).clients, "client/greedy");
    assert.equal((await executeCommand(other, { node: NODE_MANAGE })).type, "result", "the other stream runs the command");
    const reply = await revoke(greedy, "client/no-such-client");
    assertError(reply, { condition: "item-not-found" });
  });
});
