// Hostile data (ARCHITECTURE.md §11, issue #14 items 1, 2, 4, 5), against a real Prosody:
//
// 1. Every credential is listed and revocable: a grant that mod_tokenauth
//    accepts is listed, revoked and its token refused afterwards, whatever its
//    OAuth client data holds (invalid UTF-8, numbers, a string instead of a
//    table); records of other versions with fields of the wrong type keep the
//    rest.
// 2. Ids a parser cannot read back: refused at login (SASL2 failure saying
//    why); ids already stored with TAB/LF/CR/CRLF are listed in their
//    canonical form (what an XML parser reads back) and revocable by it in
//    both namespaces, through "Manage clients" and through the shell.
// 4. One rule for text shown to people: the new-client notice quotes the
//    client's words on one line, ad-hoc labels and the shell table carry no
//    control, bidi or line-break characters, and a value cannot forge a row.
// 5. Every request answered, whatever is stored: one account holding every
//    hostile shape at once, and every request run against it.

import assert from "node:assert/strict";
import { describe } from "node:test";

import { useServer, e2eTest, assertRefused } from "../lib/harness.js";
import { HOST, luaString } from "../lib/server.js";
import { NS } from "../lib/client.js";
import { NS_MC, NS_CAM, listClients, revoke, assertResult, assertError, ids } from "../lib/manage.js";
import { createHash } from "node:crypto";

import { openRaw, closeRaw, assertSasl2Failure, plainInitial, sasl2Authenticate, htSha256NoneResponse } from "../lib/rawauth.js";
import { executeCommand, assertCommand, answerForm, oneNote, pingServer, messagesFrom, NODE_MANAGE, NODE_SIGN_OUT } from "../lib/adhoc.js";

// ------------------------------------------------------------------ helpers

/** Characters the one sanitiser never lets through to a person. */
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufdd0-\ufdef\ufffe\uffff]/u;
const forbiddenIn = (text) => {
  const m = String(text).match(FORBIDDEN);
  return m ? `U+${m[0].codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}` : null;
};
const assertClean = (text, what) => assert.equal(forbiddenIn(text), null, `${what}: a forbidden character in ${JSON.stringify(text)}`);

/** XML text with every character outside printable ASCII written as a character reference. */
const refs = (s) => [...String(s)].map((c) => {
  const code = c.codePointAt(0);
  if (c === "&") return "&amp;";
  if (c === "<") return "&lt;";
  if (c === ">") return "&gt;";
  if (c === "'") return "&apos;";
  if (c === '"') return "&quot;";
  return code < 0x20 || code > 0x7e ? `&#${code};` : c;
}).join("");

/** A SASL2 PLAIN <authenticate/> whose user agent is written with character references. */
function authenticateWithRefs({ username, password, id, software, device }) {
  const b64 = Buffer.from(plainInitial(username, password)).toString("base64");
  return `<authenticate xmlns='${NS.sasl2}' mechanism='PLAIN'><initial-response>${b64}</initial-response>`
    + `<user-agent id='${refs(id)}'>`
    + (software !== undefined ? `<software>${refs(software)}</software>` : "")
    + (device !== undefined ? `<device>${refs(device)}</device>` : "")
    + "</user-agent></authenticate>";
}

/** Log in over SASL2 with that user agent (raw, character references); → the answer element and the connection. */
async function rawSasl2(server, opts) {
  const { conn } = await openRaw(server, { from: `${opts.username}@${HOST}` });
  const answer = await conn.sendAndWait(authenticateWithRefs(opts),
    (el) => [NS.sasl, NS.sasl2].includes(el.attrs.xmlns) || el.is("error", NS.streams), 5000);
  return { conn, answer };
}

/** A grant made by mod_tokenauth itself with `data` (Lua source) and one OAUTHBEARER token; → { grantId, token } or { err }. */
async function tokenauthGrant(server, user, dataLua) {
  const jid = `${user}@${HOST}`;
  return server.lua(`
    local tokenauth = assert(${server.moduleEnv("tokenauth")}, "mod_tokenauth not loaded");
    local ok, grant, err = pcall(tokenauth.create_grant, ${luaString(jid)}, ${luaString(jid)}, nil, ${dataLua});
    if not ok then return { raised = tostring(grant) } end
    if not grant then return { err = tostring(err) } end
    local token = assert(tokenauth.create_token(${luaString(jid)}, grant, "prosody:registered", 3600, "oauth2"));
    return { grantId = grant.id, token = token };`);
}

/** Is the grant still in mod_tokenauth's store (get_grant_info)? */
async function grantExists(server, user, grantId) {
  return server.lua(`
    local tokenauth = assert(${server.moduleEnv("tokenauth")});
    return tokenauth.get_grant_info(${luaString(user)}, ${luaString(grantId)}) ~= nil;`);
}

/** Store `records` (Lua source of a table id → record) as the account's clients, and drop cached state. */
async function seedRecords(server, user, recordsLua) {
  await server.seedStore("clients", user, `return ${recordsLua};`);
}

/** Does a login with this grant token still work (OAUTHBEARER)? */
async function tokenLogsIn({ tryLogin }, user, token, id) {
  const r = await tryLogin({ username: user, oauthToken: token, userAgent: { id } });
  return r.ok ?? !!r.session;
}

const shown = (res) => `exit ${res.code}\n--- stdout ---\n${res.stdout}--- stderr ---\n${res.stderr}`;

// The shapes of OAuth client data mod_tokenauth stores and accepts (item 1).
const ODD_OAUTH = [
  { what: "a name with invalid UTF-8", lua: `{ oauth2_client = { name = "Bad\\255\\254App", version = "1" } }`, invalidUtf8: true },
  { what: "a name that is a number", lua: `{ oauth2_client = { name = 42, uri = "https://n.invalid" } }` },
  { what: "a version that is a number", lua: `{ oauth2_client = { name = "Versioned", version = 3 } }` },
  { what: "oauth2_client that is a string", lua: `{ oauth2_client = "Evil App" }` },
];

/** Can this backend store the bytes? PostgreSQL refuses invalid UTF-8 in text, so no such grant exists there. */
function creatable(server, shape, created, t) {
  if (created.grantId) return true;
  assert.ok(shape.invalidUtf8 && server.storage === "postgres", `${shape.what}: mod_tokenauth could not create the grant: ${JSON.stringify(created)}`);
  t?.diagnostic(`${shape.what}: PostgreSQL refuses the bytes, mod_tokenauth created no grant (${created.err})`);
  return false;
}

// ------------------------------------------------------------------ 1

describe("hostile data: every credential is listed and revocable", () => {
  const fx = useServer({ extraModules: ["adhoc"] });

  ODD_OAUTH.forEach((shape, i) => {
    const ns = i % 2 ? NS_CAM : NS_MC;
    e2eTest(fx, `a grant whose OAuth data has ${shape.what} is listed, revoked (${ns === NS_MC ? "Prosody" : "XEP-0494"} namespace) and its token refused`, async (ctx) => {
      const { server, account, login } = ctx;
      const a = await account("hostile");
      const g = await tokenauthGrant(server, a.user, shape.lua);
      if (!creatable(server, shape, g, ctx.t)) return;
      const me = await login({ username: a.user, password: a.password, userAgent: { id: "hostile-owner" } });
      for (const listNs of [NS_MC, NS_CAM]) {
        const { clients } = await listClients(me, { ns: listNs });
        assert.ok(ids(clients).includes(`grant/${g.grantId}`), `${shape.what}: listed in ${listNs}: ${ids(clients)}`);
        for (const c of clients) assertClean(c.software ?? "", `${shape.what}: software of ${c.id}`);
      }
      assertResult(await revoke(me, `grant/${g.grantId}`, { ns }), `${shape.what}: revoke`);
      assert.equal(await grantExists(server, a.user, g.grantId), false, `${shape.what}: the grant is gone`);
      const { clients } = await listClients(me);
      assert.ok(!ids(clients).includes(`grant/${g.grantId}`), `${shape.what}: no longer listed`);
      await assertRefused(ctx.tryLogin, { username: a.user, oauthToken: g.token, userAgent: { id: `hostile-after-${i}` } }, `${shape.what}: the token after revocation`);
    });
  });

  e2eTest(fx, "a client that logged in with such a grant loses the grant with it; sign out all other clients revokes such grants", async (ctx) => {
    const { server, account, login } = ctx;
    const a = await account("hostile");
    const used = await tokenauthGrant(server, a.user, ODD_OAUTH[3].lua);
    const idle = await tokenauthGrant(server, a.user, ODD_OAUTH[1].lua);
    const app = await login({ username: a.user, oauthToken: used.token, userAgent: { id: "hostile-oauth-app", software: "App" } });
    const me = await login({ username: a.user, password: a.password, userAgent: { id: "hostile-owner" } });
    const listed = ids((await listClients(me)).clients);
    assert.ok(listed.includes("client/hostile-oauth-app") && listed.includes(`grant/${idle.grantId}`), `listed: ${listed}`);

    assertResult(await revoke(me, "client/hostile-oauth-app"), "revoke the client");
    assert.ok(await app.waitClosed(5000), "its session is closed");
    assert.equal(await grantExists(server, a.user, used.grantId), false, "the grant it logged in with is gone too");
    await assertRefused(ctx.tryLogin, { username: a.user, oauthToken: used.token, userAgent: { id: "hostile-oauth-app" } }, "its token");

    const ask = await executeCommand(me, { node: NODE_SIGN_OUT });
    const form = assertCommand(ask, { node: NODE_SIGN_OUT, status: "executing" }, "sign out, execute").form;
    const done = await executeCommand(me, { node: NODE_SIGN_OUT, sessionid: ask.command.sessionid, form: answerForm(form, { confirm: true }) });
    const note = oneNote(assertCommand(done, { node: NODE_SIGN_OUT, status: "completed" }, "sign out, submit"));
    assert.ok(note.text.startsWith("Revoked:"), `the grant is reported revoked: ${note.text}`);
    assert.equal(await grantExists(server, a.user, idle.grantId), false, "the idle grant is gone");
    await assertRefused(ctx.tryLogin, { username: a.user, oauthToken: idle.token, userAgent: { id: "hostile-idle" } }, "the idle grant's token");
  });

  e2eTest(fx, "a record written by another version with fields of the wrong type keeps the rest: listed and revocable", async (ctx) => {
    const { server, account, login } = ctx;
    const a = await account("hostile");
    const g = await tokenauthGrant(server, a.user, `{ oauth2_client = { name = "Old App" } }`);
    await seedRecords(server, a.user, `{
      ["old-app"] = { id = "old-app", first_seen = "long ago", last_seen = {}, auth_token_id = ${luaString(g.grantId)},
        mechanisms = { OAUTHBEARER = 100, [5] = "x" }, user_agent = "Old App 1.0", legacy = 0 };
    }`);
    const me = await login({ username: a.user, password: a.password, userAgent: { id: "hostile-owner" } });
    const { clients } = await listClients(me, { ns: NS_CAM });
    assert.ok(ids(clients).includes("client/old-app"), `the record is listed: ${ids(clients)}`);
    assertResult(await revoke(me, "client/old-app", { ns: NS_CAM }), "revoke the record's client");
    assert.equal(await grantExists(server, a.user, g.grantId), false, "its grant is gone");
    await assertRefused(ctx.tryLogin, { username: a.user, oauthToken: g.token, userAgent: { id: "old-app" } }, "its token");
  });
});

// ------------------------------------------------------------------ 1, FAST

/** A FAST (HT-SHA-256-NONE) login of `id` with `secret`, not bound; → the SASL2 answer. */
async function fastAnswer(server, user, id, secret) {
  const { conn } = await openRaw(server, { from: `${user}@${HOST}` });
  try {
    return await sasl2Authenticate(conn, { mechanism: "HT-SHA-256-NONE", initialResponse: htSha256NoneResponse(user, secret), fast: true, userAgent: { id } });
  } finally {
    await closeRaw(conn);
  }
}

describe("hostile data: a FAST token beside a record of another version", () => {
  const fx = useServer();

  e2eTest(fx, "a FAST token mod_sasl2_fast accepts, with extra fields, whose record has fields of the wrong type: listed, revoked from the shell, refused", async ({ server, account, login }) => {
    const a = await account("hostile");
    const id = "hostile-fast-odd";
    const secret = `secret-token:fast-e2e-${Date.now()}`;
    const now = Date.now() / 1000;
    const key = `${createHash("sha256").update(id).digest("hex")}-cur`;
    await server.seedStore("fast_tokens", a.user, `return { [${luaString(key)}] = { mechanism = "HT-SHA-256-NONE", secret = ${luaString(secret)},
      issued_at = ${now + 5}, expires_at = ${now + 3600}, note = { "from", "elsewhere" }, [1] = true } };`);
    await seedRecords(server, a.user, `{ [${luaString(id)}] = { id = ${luaString(id)}, first_seen = {}, last_seen = "today", fast_auth = "yes",
      mechanisms = 5, user_agent = 7, legacy = false } }`);
    const me = await login({ username: a.user, password: a.password, userAgent: { id: "hostile-owner" } });
    const listed = ids((await listClients(me, { ns: NS_CAM })).clients);
    assert.ok(listed.includes(`client/${id}`), `listed with its FAST token: ${listed}`);
    const res = await server.shell(["user", "revoke_client", a.jid, `client/${id}`]);
    assert.equal(res.code, 0, shown(res));
    assert.match(res.stdout, /Client access revoked/, shown(res));
    const answer = await fastAnswer(server, a.user, id, secret);
    assert.ok(answer?.is("failure", NS.sasl2), `the FAST token is refused after revocation: ${answer}`);
    assert.ok(!ids((await listClients(me)).clients).includes(`client/${id}`), "no longer listed");
  });
});

// ------------------------------------------------------------------ 2

describe("hostile data: ids a parser cannot read back", () => {
  const fx = useServer({ extraModules: ["adhoc"] });

  const REFUSED = [
    ["TAB", "a\tb", "Client identifier must not contain line breaks or tabs"],
    ["LF", "a\nb", "Client identifier must not contain line breaks or tabs"],
    ["CR", "a\rb", "Client identifier must not contain line breaks or tabs"],
    ["U+2028", "a\u2028b", "Client identifier must not contain line breaks or tabs"],
    ["a bidi control (U+202E)", "a\u202eb", "Client identifier must not contain invisible or text-direction characters"],
    ["a zero-width character (U+200B)", "a\u200bb", "Client identifier must not contain invisible or text-direction characters"],
    ["a noncharacter (U+FDD0)", "a\ufdd0b", "Client identifier must not contain Unicode noncharacters"],
    ["a C1 control (U+009B)", "a\u009bb", "Client identifier must not contain control characters"],
  ];

  e2eTest(fx, "a SASL2 client id with TAB, LF, CR, U+2028, bidi, zero-width, noncharacter or C1 is refused at login, saying why", async ({ server, account }) => {
    const a = await account("hostile");
    for (const [what, id, text] of REFUSED) {
      const { conn, answer } = await rawSasl2(server, { username: a.user, password: a.password, id });
      try {
        assertSasl2Failure(answer, { condition: "malformed-request", text }, `an id with ${what}`);
      } finally {
        await closeRaw(conn);
      }
    }
    const { conn, answer } = await rawSasl2(server, { username: a.user, password: a.password, id: "a b" });
    assert.ok(answer?.is("success", NS.sasl2), `a space is fine: ${answer}`);
    await closeRaw(conn);
  });

  // Stored ids (older data): each record holds a grant, so revoking it is visible.
  const STORED = [
    { raw: "tab\there", read: "tab here", via: "Prosody namespace" },
    { raw: "lf\nhere", read: "lf here", via: "XEP-0494 namespace" },
    { raw: "cr\rhere", read: "cr here", via: "Manage clients" },
    { raw: "crlf\r\nhere", read: "crlf here", via: "shell" },
  ];

  e2eTest(fx, "stored ids with TAB, LF, CR and CRLF are listed as a parser reads them and revocable by that id everywhere", async (ctx) => {
    const { server, account, login } = ctx;
    const a = await account("hostile");
    const grants = [];
    for (const s of STORED) grants.push(await tokenauthGrant(server, a.user, `{ oauth2_client = { name = ${luaString(`App ${s.read}`)} } }`));
    await seedRecords(server, a.user, `{ ${STORED.map((s, i) => `[${luaString(s.raw)}] = { id = ${luaString(s.raw)}, first_seen = 100, last_seen = 100 + ${i},
        auth_token_id = ${luaString(grants[i].grantId)}, mechanisms = { OAUTHBEARER = 100 } }`).join(";\n")} }`);
    const me = await login({ username: a.user, password: a.password, userAgent: { id: "hostile-owner" } });
    for (const ns of [NS_MC, NS_CAM]) {
      const listed = ids((await listClients(me, { ns })).clients);
      for (const s of STORED) assert.ok(listed.includes(`client/${s.read}`), `${ns}: '${s.read}' listed as read: ${JSON.stringify(listed)}`);
    }
    // Manage clients offers the same ids, and a CR id does not stop it.
    const ask = await executeCommand(me, { node: NODE_MANAGE });
    const form = assertCommand(ask, { node: NODE_MANAGE, status: "executing" }, "Manage clients").form;
    const values = form.field("revoke").options.map((o) => o.value);
    for (const s of STORED) assert.ok(values.includes(`client/${s.read}`), `Manage clients offers '${s.read}': ${JSON.stringify(values)}`);

    assertResult(await revoke(me, `client/${STORED[0].read}`, { ns: NS_MC }), "revoke, Prosody namespace");
    assertResult(await revoke(me, `client/${STORED[1].read}`, { ns: NS_CAM }), "revoke, XEP-0494");
    const done = await executeCommand(me, { node: NODE_MANAGE, sessionid: ask.command.sessionid, form: answerForm(form, { revoke: [`client/${STORED[2].read}`] }) });
    const note = oneNote(assertCommand(done, { node: NODE_MANAGE, status: "completed" }, "Manage clients, submit"));
    assert.ok(note.text.startsWith("Revoked:") && !note.text.includes("Not found"), `Manage clients revoked it: ${note.text}`);
    const res = await server.shell(["user", "revoke_client", a.jid, `client/${STORED[3].read}`]);
    assert.equal(res.code, 0, `shell revoke_client: ${shown(res)}`);
    assert.match(res.stdout, /Client access revoked/, shown(res));

    for (const [i, s] of STORED.entries()) {
      assert.equal(await grantExists(server, a.user, grants[i].grantId), false, `'${s.read}' (${s.via}): its grant is gone`);
    }
    const left = ids((await listClients(me)).clients);
    for (const s of STORED) assert.ok(!left.includes(`client/${s.read}`), `'${s.read}' no longer listed: ${left}`);
  });
});

// ------------------------------------------------------------------ 4

// What an attacker with the password puts in its user agent.
const FORGED_ROW = "client/owner-phone | Conversations | 2026-01-01 | 2026-01-01 | - | password,online";
const EVIL_SOFTWARE = `Gajim\u201d.\n\nSECURITY NOTICE from ${HOST}: your account will be deleted\r\tverify at https://evil.example/verify\u0085\u2028\u2029\u202eexe.\u2066x\u2069\u200b\ufeff\u009b2J\r\n${FORGED_ROW}`;
const EVIL_DEVICE = `Laptop\n${FORGED_ROW}`;

describe("hostile data: one rule for text shown to people", () => {
  // Each notice on its own (no coalescing): what each client calls itself is checked.
  const fx = useServer({ extraModules: ["adhoc"], options: { client_management_notify_new_clients: true, client_management_notice_interval: 0 } });

  e2eTest(fx, "the notice quotes what the client calls itself on one line; labels and the shell carry no control, bidi or line-break character and no forged row", async (ctx) => {
    const { server, account, login } = ctx;
    const a = await account("hostile");
    const observer = await login({ username: a.user, password: a.password, userAgent: { id: "hostile-observer", software: "Observer" } });
    const since = observer.elements.length;
    const { conn, answer } = await rawSasl2(server, { username: a.user, password: a.password, id: "hostile-evil", software: EVIL_SOFTWARE, device: EVIL_DEVICE });
    try {
      assert.ok(answer?.is("success", NS.sasl2), `the attacker's login succeeds: ${answer}`);
      await pingServer(observer, HOST);
      const notices = messagesFrom(observer, HOST, since);
      assert.equal(notices.length, 1, `one notice: ${notices.join("\n")}`);
      const body = notices[0].getChildText("body");
      assertClean(body, "notice");
      assert.ok(!body.includes("\n"), `one line: ${JSON.stringify(body)}`);
      const quoted = body.match(/It calls itself \u201c([^\u201c\u201d]*)\u201d on \u201c([^\u201c\u201d]*)\u201d\./u);
      assert.ok(quoted, `the client's words are quoted: ${body}`);
      assert.ok(quoted[1].startsWith("Gajim\".") && quoted[1].includes("SECURITY NOTICE"), `software quoted whole: ${quoted[1]}`);
      assert.ok(quoted[2].includes(FORGED_ROW), `device quoted whole: ${quoted[2]}`);
      assert.ok(body.startsWith("A new client got access to your account at "), `the server's words come first: ${body}`);

      for (const ns of [NS_MC, NS_CAM]) {
        const evil = (await listClients(observer, { ns })).clients.find((c) => c.id === "client/hostile-evil");
        assert.ok(evil, `${ns}: listed`);
        assertClean(evil.software, `${ns}: software`);
        assertClean(evil.device, `${ns}: device`);
      }
      const ask = await executeCommand(observer, { node: NODE_MANAGE });
      const form = assertCommand(ask, { node: NODE_MANAGE, status: "executing" }, "Manage clients").form;
      for (const o of form.field("revoke").options) assertClean(o.label, `label of ${o.value}`);

      for (const env of [{ COLUMNS: "1000" }, { COLUMNS: "60" }]) {
        const res = await server.shell(["user", "clients", a.jid], { env });
        assert.equal(res.code, 0, shown(res));
        assertClean(res.stdout.replace(/\n/g, ""), "user clients");
        const lines = res.stdout.split("\n");
        assert.ok(!lines.some((l) => l.startsWith("client/owner-phone")), `no forged row: ${shown(res)}`);
        // Blocks: each client's id alone on a line, then its fields; the evil software stays on its line.
        assert.ok(lines.includes("client/hostile-evil"), `blocks, not a table (a value holds '|'): ${shown(res)}`);
        assert.equal(lines.filter((l) => l.includes("SECURITY NOTICE")).length, 1, shown(res));
        assert.match(res.stdout, /OK: 2 client\(s\)/, shown(res));
      }
    } finally {
      await closeRaw(conn);
    }
  });

  e2eTest(fx, "clients stats shows a name holding '|' as one cell on one row", async ({ server, account, login }) => {
    const a = await account("hostile");
    const { conn, answer } = await rawSasl2(server, { username: a.user, password: a.password, id: "hostile-pipe", software: "Pipe | 9.9 | 99 | 99 | 2000-01-01\nForged | row", device: "x" });
    try {
      assert.ok(answer?.is("success", NS.sasl2), `login: ${answer}`);
      const res = await server.shell(["clients", "stats", HOST], { env: { COLUMNS: "200" } });
      assert.equal(res.code, 0, shown(res));
      const rows = res.stdout.split("\n").filter((l) => l.includes("Pipe"));
      assert.equal(rows.length, 1, `one row: ${shown(res)}`);
      assert.equal(rows[0].split(" | ").length, 5, `five cells: ${rows[0]}`);
      assert.ok(rows[0].includes("Pipe \u00a6 9.9 \u00a6 99"), `the name's '|' shown as '\u00a6': ${rows[0]}`);
      assert.ok(!res.stdout.split("\n").some((l) => l.startsWith("Forged")), shown(res));
    } finally {
      await closeRaw(conn);
    }
  });
});

// ------------------------------------------------------------------ 5

describe("hostile data: every request answered, whatever is stored", () => {
  // Each notice on its own (no coalescing): what each client calls itself is checked.
  const fx = useServer({ extraModules: ["adhoc"], options: { client_management_notify_new_clients: true, client_management_notice_interval: 0 } });

  e2eTest(fx, "with every hostile shape stored at once, list, ad-hoc, notices, user clients, clients stats and prune all answer", async (ctx) => {
    const { server, account, login } = ctx;
    const mark = server.logOffset();
    const a = await account("hostile");
    // Records of other versions: wrong types, control and bidi text, TAB ids, a legacy resource with controls.
    const T = Math.floor(Date.now() / 1000) + 5; // after the account's password was set
    await seedRecords(server, a.user, `{
      ["tab\\tid"] = { id = "tab\\tid", last_seen = 100, mechanisms = { PLAIN = ${T} }, user_agent = { software = "Tab\\tApp\\27[2J", device = "Dev\\r\\nice\\226\\128\\174" } };
      ["types"] = { id = "types", first_seen = "x", last_seen = true, mechanisms = { PLAIN = ${T}, HT = "now" }, user_agent = { software = 42, software_version = {}, device = 1.5 } };
      ["ua-string"] = { id = "ua-string", mechanisms = { PLAIN = ${T} }, user_agent = "Gajim" };
      ["legacy-x"] = { id = "legacy-x", legacy = true, full_jid = ${luaString(`${a.user}@${HOST}/res\u0007\u001b[2J\u202e`)}, mechanisms = { PLAIN = ${T} } };
      ["not-a-table"] = "junk";
      [7] = { mechanisms = { PLAIN = 100 } };
    }`);
    // FAST tokens of odd shapes next to nothing valid: not a table, times of the wrong type, extra fields.
    await server.seedStore("fast_tokens", a.user, `return {
      ["${"a".repeat(64)}-cur"] = "junk";
      ["${"b".repeat(64)}-cur"] = { issued_at = "now", expires_at = {}, secret = 5 };
      ["${"c".repeat(64)}-new"] = { issued_at = 1, expires_at = 9e99, mechanism = {}, extra = { 1, 2 } };
      [3] = { issued_at = 1, expires_at = 2 };
    };`);
    const me = await login({ username: a.user, password: a.password, userAgent: { id: "hostile-owner", software: "Owner" } });
    const since = me.elements.length;
    // Grants made by mod_tokenauth itself, with notices on: create_grant must not raise.
    const shapes = [
      ...ODD_OAUTH,
      { what: "ESC in the name", lua: `{ oauth2_client = { name = "Esc\\27[31mApp" } }` },
      { what: "BEL in the name", lua: `{ oauth2_client = { name = "Bel\\7App" } }` },
      { what: "NUL in the name", lua: `{ oauth2_client = { name = "Nul\\0App" } }` },
      { what: "BS in the name", lua: `{ oauth2_client = { name = "Bs\\8App", uri = "https://x.invalid/\\27", version = "\\1" } }` },
      { what: "data that is a string", lua: `"just text"` },
    ];
    const grants = [];
    for (const shape of shapes) {
      const g = await tokenauthGrant(server, a.user, shape.lua);
      assert.equal(g.raised, undefined, `${shape.what}: create_grant raised: ${g.raised}`);
      if (creatable(server, shape, g, ctx.t)) grants.push(g);
    }
    // Notices: they came, well-formed (the stream is still up), clean.
    await pingServer(me, HOST);
    const notices = messagesFrom(me, HOST, since);
    assert.ok(notices.length >= 1, "grant notices arrived");
    for (const n of notices) assertClean(n.getChildText("body"), "grant notice");
    // Announced, not merely survived: the names with controls are in the notices, quoted and
    // cleaned, and the hook's last-resort guard never had to catch anything.
    const said = notices.map((n) => n.getChildText("body")).join("\n");
    for (const name of ["Esc[31mApp", "BelApp", "NulApp", "BsApp"]) {
      assert.ok(said.includes(`\u201c${name}\u201d`), `a notice quotes \u201c${name}\u201d:\n${said}`);
    }
    assert.deepEqual(server.logSince(mark).filter((l) => l.includes("Unable to announce grant")), [], "the token-grant-created hook never failed");
    assert.ok(!/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/.test(me.rawIn), "nothing XML cannot carry on the wire");

    for (const ns of [NS_MC, NS_CAM]) {
      const { clients } = await listClients(me, { ns });
      const listed = ids(clients);
      for (const g of grants) assert.ok(listed.includes(`grant/${g.grantId}`), `${ns}: grant ${g.grantId} listed: ${listed}`);
      for (const id of ["client/tab id", "client/types", "client/ua-string", "client/legacy-x"]) assert.ok(listed.includes(id), `${ns}: ${id} listed: ${listed}`);
      for (const c of clients) for (const v of [c.id, c.software, c.device, c.uri]) if (v !== undefined) assertClean(v, `${ns}: ${c.id}`);
    }
    const manage = await executeCommand(me, { node: NODE_MANAGE });
    const form = assertCommand(manage, { node: NODE_MANAGE, status: "executing" }, "Manage clients").form;
    for (const o of form.field("revoke").options) assertClean(o.label, `label of ${o.value}`);
    const picked = await executeCommand(me, { node: NODE_MANAGE, sessionid: manage.command.sessionid,
      form: answerForm(form, { revoke: [`grant/${grants[0].grantId}`, "client/tab\u0009id", "client/nothing\u202e"] }) });
    const pickedNote = oneNote(assertCommand(picked, { node: NODE_MANAGE, status: "completed" }, "Manage clients, submit"));
    assertClean(pickedNote.text.replace(/\n/g, ""), "Manage clients report");

    for (const [args, done] of [
      [["user", "clients", a.jid], /OK: \d+ client\(s\)/],
      [["clients", "stats", HOST], /OK: \d+ client\(s\) on \d+ account\(s\)/],
      [["clients", "prune", HOST, "--dry-run"], /OK: Dry run:/],
      [["clients", "prune", HOST], /OK: \d+ client record\(s\) deleted/],
    ]) {
      const res = await server.shell(args, { env: { COLUMNS: "120" } });
      assert.equal(res.code, 0, `${args.join(" ")}: ${shown(res)}`);
      assert.match(res.stdout, done, `${args.join(" ")} finished: ${shown(res)}`);
      assertClean(res.stdout.replace(/\n/g, ""), args.join(" "));
    }

    const ask = await executeCommand(me, { node: NODE_SIGN_OUT });
    const signOut = assertCommand(ask, { node: NODE_SIGN_OUT, status: "executing" }, "sign out, execute").form;
    const done = await executeCommand(me, { node: NODE_SIGN_OUT, sessionid: ask.command.sessionid, form: answerForm(signOut, { confirm: true }) });
    const note = oneNote(assertCommand(done, { node: NODE_SIGN_OUT, status: "completed" }, "sign out, submit"));
    assertClean(note.text.replace(/\n/g, ""), "sign out report");
    for (const g of grants) assert.equal(await grantExists(server, a.user, g.grantId), false, `grant ${g.grantId} revoked by sign out`);
    await pingServer(me, HOST);
  });
});
