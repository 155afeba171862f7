// The admin shell (SPEC §7, with §5's revocation), run the way an admin runs
// it: `prosodyctl --config F shell user clients JID` (command-line form) and
// `prosodyctl --config F shell` reading console lines on stdin (interactive
// form), against the real Prosody started by the harness.
//
// How prosodyctl behaves here (Prosody 13.0.1, util/prosodyctl/shell.lua and
// mod_admin_shell.lua):
// - command-line form: results on stdout ("OK: …"), errors on stderr
//   ("Error: …"); exit status = number of error results (0 or 1).
// - interactive form: works from a pipe, no tty needed. Each line is sent
//   after the previous one is answered; the prompt "prosody> " and the
//   echoed line (readline only) come first, then "| …" (output, "| OK: …")
//   or "! Error: …". `--quiet` leaves out the banner.
//   At the end of input it exits with 0, errors or not.
// - width: the client sends term_width() with every line: $COLUMNS if set,
//   else `stty` on a tty, else nothing, and the server then assumes 132.
//   The server gives commands session.width = that - 2 (for the "| " prefix).
//   In the interactive form lua-readline (Prosody recommends it) exports
//   COLUMNS=80 when stdin is not a tty, so a pipe gets 78 there but 130 in
//   the command-line form. COLUMNS=N forces any width in both forms.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe } from "node:test";

import { useServer, e2eTest, eventually } from "../lib/harness.js";
import { luaString } from "../lib/server.js";
import { NS, xml } from "../lib/client.js";
import { LEGACY_ID, listClients, ids, nowSeconds } from "../lib/manage.js";

// ------------------------------------------------------------------ helpers

const SEP = " | ";
const CLIENT_COLUMNS = ["ID", "Software", "First seen", "Last seen", "Expires", "Authentication"];
const STATS_COLUMNS = ["Software", "Version", "Accounts", "Clients", "Last seen"];

/** Unix seconds → "YYYY-MM-DD" (UTC), the narrow table's dates. */
const day = (t) => new Date(t * 1000).toISOString().slice(0, 10);
/** Unix seconds → "YYYY-MM-DD hh:mm" (UTC), the wide table's dates. */
const minute = (t) => new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ");
const utc = (iso) => Date.parse(iso) / 1000;

const rand = () => randomBytes(4).toString("hex");

/** Environments for prosodyctl: a pipe without COLUMNS, or a forced width. */
const PIPE = { COLUMNS: undefined };
const cols = (n) => ({ COLUMNS: String(n) });

/** Everything a shell run printed, for assertion messages. */
const shown = (res) => `exit ${res.code}\n--- stdout ---\n${res.stdout}--- stderr ---\n${res.stderr}`;

/**
 * The table printed by a command: the line starting with `first` (after
 * `prefix`) and the following lines holding " | ". Cells are trimmed.
 * → { header, rows: [{ column title → cell }], lines (without prefix), fullLines }.
 */
function parseTable(text, { prefix = "", first = "ID" } = {}) {
  const all = text.split("\n");
  const start = all.findIndex((l) => l.startsWith(`${prefix}${first} `));
  if (start < 0) return null;
  const fullLines = [];
  for (let i = start; i < all.length && all[i].startsWith(prefix) && all[i].includes(SEP); i++) {
    fullLines.push(all[i]);
  }
  const lines = fullLines.map((l) => l.slice(prefix.length));
  const cells = (l) => l.split(SEP).map((c) => c.trim());
  const header = cells(lines[0]);
  const rows = lines.slice(1).map((l) => {
    const c = cells(l);
    assert.equal(c.length, header.length, `a row with ${c.length} cells under ${header.length} titles: '${l}'`);
    return Object.fromEntries(header.map((h, i) => [h, c[i]]));
  });
  return { header, rows, lines, fullLines };
}

function mustParse(res, opts) {
  const table = parseTable(res.stdout, opts);
  assert.ok(table, `no table in the output:\n${shown(res)}`);
  return table;
}

/** Offsets of the column separators in a line. */
function separators(line) {
  const at = [];
  for (let i = line.indexOf(SEP); i >= 0; i = line.indexOf(SEP, i + 1)) at.push(i);
  return at;
}

/** Every row is one line with its separators where the header has them. */
function assertAligned(table, what) {
  const expected = separators(table.lines[0]);
  for (const line of table.lines.slice(1)) {
    assert.deepEqual(separators(line), expected, `${what}: columns not aligned:\n${table.lines.join("\n")}`);
  }
}

/**
 * The Software cell shows `full`, or its beginning cut with "…" (a narrow
 * column: the test "software name and version are not cut off" is about that).
 */
function assertSoftware(cell, full, what) {
  const ok = cell === full || (cell.endsWith("…") && cell.length > 1 && full.startsWith(cell.slice(0, -1)));
  assert.ok(ok, `${what}: Software '${cell}', wanted '${full}'`);
}

function row(table, id) {
  const found = table.rows.filter((r) => r.ID === id);
  assert.equal(found.length, 1, `exactly one row '${id}' in:\n${table.lines.join("\n")}`);
  return found[0];
}

/** A command-line run that succeeded: exit 0, nothing on stderr, "OK: <ok>" as the result. */
function assertOk(res, ok, what) {
  assert.equal(res.code, 0, `${what}: ${shown(res)}`);
  assert.equal(res.stderr, "", `${what}: ${shown(res)}`);
  if (ok !== undefined) {
    const last = res.stdout.trimEnd().split("\n").at(-1);
    assert.ok(ok instanceof RegExp ? ok.test(last) : last === `OK: ${ok}`, `${what}: result '${last}', wanted ${ok}\n${shown(res)}`);
  }
}

/** A command-line run that failed: non-zero exit, "Error: …" matching `text` on stderr, no OK. */
function assertFails(res, text, what) {
  assert.notEqual(res.code, 0, `${what}: exit status\n${shown(res)}`);
  if (text !== undefined) {
    const re = text instanceof RegExp ? text : new RegExp(`^Error: ${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m");
    assert.match(res.stderr, re, `${what}: error text\n${shown(res)}`);
  } else {
    assert.match(res.stderr, /^Error: /m, `${what}: error text\n${shown(res)}`);
  }
  assert.doesNotMatch(res.stdout, /^OK:/m, `${what}: ${shown(res)}`);
}

/**
 * Split an interactive run's stdout into one block per console line:
 * [{ command, out: [lines after the prompt], text }]. With lua-readline
 * (Prosody's Recommends) the prompt is followed by the echoed line; with
 * plain io.read there is no echo and the output follows the prompt.
 */
function consoleBlocks(res, lines) {
  const parts = res.stdout.split("prosody> ").slice(1);
  assert.ok(parts.length > lines.length, `${lines.length} lines answered:\n${shown(res)}`);
  return lines.map((command, i) => {
    let part = parts[i];
    if (part.startsWith(`${command}\n`)) part = part.slice(command.length + 1);
    const out = part.replace(/\n$/, "").split("\n");
    return { command, out, text: out.join("\n") };
  });
}

/** The token login is refused with a SASL <failure/>. */
async function assertRefused(tryLogin, opts, what) {
  const r = await tryLogin({ timeout: 5000, ...opts });
  assert.equal(r.ok, false, `${what}: still logs in`);
  assert.ok(r.failure?.is("failure", opts.sasl2 === false ? NS.sasl : NS.sasl2), `${what}: ${r.error?.message}`);
}

async function assertClosed(server, session, what) {
  assert.ok(await session.waitClosed(5000), `${what}: stream closed by the server`);
  assert.ok(await eventually(async () => !(await server.hasSession(session.jid))), `${what}: session gone on the server`);
}

const ping = (session) => session.iq(xml("ping", { xmlns: "urn:xmpp:ping" }), { to: "localhost" });

/** Lua source of a clients store file holding `records` (id → record). */
function clientsStore(records) {
  const lua = (v) => {
    if (v === null || v === undefined) return "nil";
    if (typeof v === "number" || typeof v === "boolean") return String(v);
    if (typeof v === "string") return luaString(v);
    return `{ ${Object.entries(v).map(([k, x]) => `[${luaString(k)}] = ${lua(x)}`).join("; ")} }`;
  };
  return `return ${lua(records)};\n`;
}

/** A stored client record with password access since `t` (unix seconds). */
function passwordRecord(id, { first = null, last, software, version } = {}) {
  return {
    id,
    first_seen: first ?? last,
    last_seen: last,
    mechanisms: { "SCRAM-SHA-1": last },
    user_agent: software === undefined ? undefined : { software, software_version: version },
  };
}

// Fixed past times for stored records (and a password change before them all).
const P0 = utc("2020-01-02T03:04:05Z");
const T_UNKNOWN = utc("2020-06-07T08:09:10Z");
const T1 = utc("2021-03-04T10:20:30Z");
const T2 = utc("2022-05-06T07:08:09Z");

// A SASL2 client id an app would really send: long, with '/', '.' and ':'.
const longId = () => `org.example.messenger/desktop:linux-${randomBytes(16).toString("hex")}`;

// ------------------------------------------------------------------ user clients / revoke_client

describe("shell: user clients / user revoke_client (SPEC §7)", () => {
  const fx = useServer();

  /**
   * One account with a client of each kind: a stored record (known dates,
   * "Alpha 1.0"), a SASL2 password client with a long id and an unused FAST
   * token, a legacy SASL client (generated id), an OAuth grant ("Shell App 4.2").
   */
  async function everyKind({ server, account, login }) {
    const a = await account("sh");
    await server.setAccountTimes(a.user, { created: P0, updated: P0 });
    const seeded = `seeded-${rand()}`;
    server.seedStore("clients", a.user, clientsStore({
      [seeded]: passwordRecord(seeded, { first: T1, last: T2, software: "Alpha", version: "1.0" }),
    }));
    const before = nowSeconds();
    const sasl2Id = longId();
    const fast = { token: null };
    const c = await login({ username: a.user, password: a.password, fast, userAgent: { id: sasl2Id, software: "Shell Soft" } });
    assert.ok(fast.token, "FAST token issued");
    const legacy = await login({ username: a.user, password: a.password, sasl2: false, resource: "legacy" });
    const g = await server.createGrant(a.user, { client: { name: "Shell App", uri: "https://app.invalid", id: "shell-app", version: "4.2" } });
    const after = nowSeconds();
    return { a, seeded, sasl2Id, c, legacy, g, before, after };
  }

  e2eTest(fx, "user clients: full ids of every kind, software/version, dates, expiry, methods, count (pipe, 130 wide)", async (ctx) => {
    const { server } = ctx;
    const { a, seeded, sasl2Id, c, g, before, after } = await everyKind(ctx);
    const res = await server.shell(["user", "clients", a.jid], { env: PIPE });
    assertOk(res, "4 client(s)", "user clients");
    const table = mustParse(res);
    assert.deepEqual(table.header, CLIENT_COLUMNS);
    assertAligned(table, "pipe");
    assert.equal(table.rows.length, 4, table.lines.join("\n"));

    // the same clients as the XMPP listing, in the same order (oldest last_seen first)
    const listed = ids((await listClients(c)).clients);
    assert.deepEqual(table.rows.map((r) => r.ID), listed);
    assert.equal(table.rows[0].ID, `client/${seeded}`);

    const legacyRow = table.rows.find((r) => LEGACY_ID.test(r.ID.replace(/^client\//, "")) && r.ID.startsWith("client/"));
    assert.ok(legacyRow, `a legacy client/<12 chars> row:\n${table.lines.join("\n")}`);

    const within = (cell, from, to, what) => {
      const ok = [];
      for (let t = from - 60; t <= to + 60; t += 60) ok.push(minute(t));
      assert.ok(ok.includes(cell), `${what}: '${cell}' not within ${minute(from)}..${minute(to)}`);
    };

    assert.deepEqual(row(table, `client/${seeded}`), {
      ID: `client/${seeded}`, Software: "Alpha 1.0", "First seen": minute(T1), "Last seen": minute(T2),
      Expires: "-", Authentication: "password",
    });
    const s = row(table, `client/${sasl2Id}`);
    assertSoftware(s.Software, "Shell Soft", "SASL2 client");
    assert.equal(s.Authentication, "password,fast,online");
    assert.equal(s.Expires, "-");
    within(s["First seen"], before, after, "first seen of the SASL2 client");
    within(s["Last seen"], before, after, "last seen of the SASL2 client");
    assert.equal(legacyRow.Software, "-");
    assert.equal(legacyRow.Authentication, "password,online");
    const gr = row(table, `grant/${g.grantId}`);
    assertSoftware(gr.Software, "Shell App 4.2", "grant");
    assert.equal(gr.Authentication, "grant");
    within(gr["First seen"], before, after, "grant created");
    within(gr.Expires, before + 3600, after + 3600, "grant expiry (its token's)");
  });

  e2eTest(fx, "user clients at COLUMNS=80, 40 and 200: ids whole, one aligned line per client", async (ctx) => {
    const { server } = ctx;
    const { a, seeded, sasl2Id, g } = await everyKind(ctx);
    const widths = {};
    for (const n of [80, 40, 200]) {
      const res = await server.shell(["user", "clients", a.jid], { env: cols(n) });
      assertOk(res, "4 client(s)", `COLUMNS=${n}`);
      const table = mustParse(res);
      assert.deepEqual(table.header, CLIENT_COLUMNS, `COLUMNS=${n}`);
      assertAligned(table, `COLUMNS=${n}`);
      assert.equal(table.rows.length, 4, `COLUMNS=${n}: one line per client\n${res.stdout}`);
      for (const id of [`client/${seeded}`, `client/${sasl2Id}`, `grant/${g.grantId}`]) row(table, id);
      assert.equal(table.rows.filter((r) => /^client\/[A-Za-z0-9_-]{12}$/.test(r.ID)).length, 1, `COLUMNS=${n}: legacy id whole`);
      const seededRow = row(table, `client/${seeded}`);
      const [f, l] = n >= 120 ? [minute(T1), minute(T2)] : [day(T1), day(T2)];
      assert.equal(seededRow["First seen"], f, `COLUMNS=${n}`);
      assert.equal(seededRow["Last seen"], l, `COLUMNS=${n}`);
      assert.equal(seededRow.Software, "Alpha 1.0", `COLUMNS=${n}`);
      assert.equal(seededRow.Authentication, "password", `COLUMNS=${n}`);
      assert.equal(row(table, `client/${sasl2Id}`).Authentication, "password,fast,online", `COLUMNS=${n}`);
      widths[n] = Math.max(...table.lines.map((x) => x.length));
    }
    ctx.t.diagnostic(`widest line at COLUMNS=80/40/200: ${widths[80]}/${widths[40]}/${widths[200]}`);
  });

  e2eTest(fx, "user clients: software name and version are not cut off (80 columns; 130 with a long id)", async ({ server, account, login }) => {
    // Real-world names: an admin needs the version for software/NAME/VERSION.
    const a = await account("sh");
    const id = `x-${rand()}`;
    await login({ username: a.user, password: a.password, userAgent: { id, software: "Conversations" } });
    const g = await server.createGrant(a.user, { client: { name: "Monocles Chat", uri: "https://m.invalid", id: "m", version: "2.17.2" } });
    const problems = [];
    const check = (res, what, expected) => {
      assertOk(res, `${Object.keys(expected).length} client(s)`, what);
      const table = mustParse(res);
      for (const [rowId, software] of Object.entries(expected)) {
        const got = row(table, rowId).Software;
        if (got !== software) problems.push(`${what}: ${rowId}: '${got}' instead of '${software}'`);
      }
      return table;
    };
    // short ids, 80 columns
    const narrow = await server.shell(["user", "clients", a.jid], { env: cols(80) });
    check(narrow, "COLUMNS=80", { [`client/${id}`]: "Conversations", [`grant/${g.grantId}`]: "Monocles Chat 2.17.2" });
    // a pipe (130 columns) and one long SASL2 id
    const b = await account("sh");
    const long = longId();
    await login({ username: b.user, password: b.password, userAgent: { id: long, software: "Conversations" } });
    const wide = await server.shell(["user", "clients", b.jid], { env: PIPE });
    check(wide, "pipe", { [`client/${long}`]: "Conversations" });
    assert.deepEqual(problems, [], `Software cut off:\n${narrow.stdout}\n${wide.stdout}`);
  });

  e2eTest(fx, "every id, copied from the table, revokes its client verbatim (SASL2 long id, legacy id, grant/)", async ({ server, account, login, tryLogin }) => {
    const a = await account("sh");
    // three password-less clients, each with its own grant
    const [g1, g2, g3] = [
      await server.createGrant(a.user, { client: { name: "Pwless", uri: "https://p.invalid", id: "p", version: "1" } }),
      await server.createGrant(a.user, { client: { name: "Legacy OAuth", uri: "https://l.invalid", id: "l", version: "1" } }),
      await server.createGrant(a.user, { client: { name: "Unused", uri: "https://u.invalid", id: "u", version: "1" } }),
    ];
    const sasl2Id = longId();
    assert.ok(sasl2Id.length > 40);
    const ua = { id: sasl2Id, software: "Pwless" };
    const fast = { token: null };
    const o1 = await login({ username: a.user, oauthToken: g1.token, fast, userAgent: ua });
    assert.ok(fast.token, "FAST token issued");
    const fastToken = { ...fast.token };
    const o2 = await login({ username: a.user, oauthToken: g2.token, sasl2: false, resource: "legacy-oauth" });

    const res = await server.shell(["user", "clients", a.jid], { env: cols(80) });
    assertOk(res, "3 client(s)", "user clients");
    const table = mustParse(res);
    const legacyRow = table.rows.find((r) => r.ID !== `client/${sasl2Id}` && r.ID.startsWith("client/"));
    assert.ok(legacyRow, res.stdout);
    assert.match(legacyRow.ID.slice("client/".length), LEGACY_ID);
    const copied = table.rows.map((r) => r.ID);
    assert.deepEqual(new Set(copied), new Set([`client/${sasl2Id}`, legacyRow.ID, `grant/${g3.grantId}`]));
    for (const r of table.rows) assert.equal(r.Authentication.includes("password"), false, `${r.ID} is password-less`);

    for (const id of copied) {
      assertOk(await server.shell(["user", "revoke_client", a.jid, id]), "Client access revoked", `revoke_client ${id}`);
    }
    await assertClosed(server, o1, "SASL2 client");
    await assertClosed(server, o2, "legacy client");
    await assertRefused(tryLogin, { username: a.user, fast: { token: { ...fastToken } }, userAgent: ua }, "FAST token of the SASL2 client");
    await assertRefused(tryLogin, { username: a.user, oauthToken: g1.token, userAgent: ua }, "grant token of the SASL2 client");
    await assertRefused(tryLogin, { username: a.user, oauthToken: g2.token, sasl2: false, resource: "legacy-oauth" }, "grant token of the legacy client");
    await assertRefused(tryLogin, { username: a.user, oauthToken: g3.token, userAgent: { id: `u-${rand()}` } }, "token of the revoked grant");

    const empty = await server.shell(["user", "clients", a.jid]);
    assertOk(empty, "No clients associated with this account", "user clients after revoking all");
    assert.equal(parseTable(empty.stdout), null, `no table:\n${empty.stdout}`);
    for (const id of copied) {
      assertFails(await server.shell(["user", "revoke_client", a.jid, id]), "Client not found", `revoke_client ${id} again`);
    }
  });

  e2eTest(fx, "errors: non-zero exit status and the error text on stderr; nothing changes", async ({ server, account, login }) => {
    const a = await account("sh");
    const id = longId();
    const ua = { id, software: "Password App" };
    const fast = { token: null };
    const c = await login({ username: a.user, password: a.password, fast, userAgent: ua });
    assert.ok(fast.token);
    const fastToken = { ...fast.token };
    const g = await server.createGrant(a.user, { client: { name: "Stays", uri: "https://s.invalid", id: "s", version: "1" } });
    const before = await server.shell(["user", "clients", a.jid], { env: PIPE });
    assertOk(before, "2 client(s)", "user clients");

    // a password client: refused, and nothing changes
    assertFails(await server.shell(["user", "revoke_client", a.jid, `client/${id}`]), "Password reset required", "password client");
    assertFails(await server.shell(["user", "revoke_client", a.jid, "software/Password App"]), "Password reset required", "its software");
    // unknown selectors
    for (const sel of ["client/nope", `client/${id}x`, "grant/noSuchGrant1", "software/No Such App", "software/Password App/9.9", "nope"]) {
      assertFails(await server.shell(["user", "revoke_client", a.jid, sel]), "Client not found", `revoke_client ${sel}`);
    }
    // unknown accounts and hosts, missing or malformed arguments
    const nobody = `nobody-${rand()}@localhost`;
    const failing = [
      [["user", "clients", nobody], /No such account/],
      [["user", "revoke_client", nobody, `client/${id}`], /No such account/],
      [["user", "clients", `${a.user}@nohost.invalid`], /Unknown host/],
      [["user", "revoke_client", `${a.user}@nohost.invalid`, `client/${id}`], /Unknown host/],
      [["user", "clients"], undefined],
      [["user", "revoke_client"], undefined],
      [["user", "revoke_client", a.jid], undefined],
      [["user", "revoke_client", a.jid, ""], undefined],
      [["user", "clients", "localhost"], undefined],
    ];
    for (const [args, text] of failing) {
      assertFails(await server.shell(args), text, args.join(" "));
    }

    const after = await server.shell(["user", "clients", a.jid], { env: PIPE });
    assert.deepEqual(mustParse(after).rows.map((r) => [r.ID, r.Authentication]), mustParse(before).rows.map((r) => [r.ID, r.Authentication]));
    assert.ok(await server.hasSession(c.jid));
    assert.equal((await ping(c)).attrs.type, "result");
    assert.ok((await server.userGrants(a.user))?.[g.grantId], "grant untouched");
    const viaFast = await login({ username: a.user, fast: { token: { ...fastToken } }, userAgent: ua });
    assert.equal(viaFast.sent.find((el) => el.name === "authenticate").attrs.mechanism, "HT-SHA-256-NONE");
  });

  e2eTest(fx, "interactive console on a pipe: user:clients() and user:revoke_client()", async ({ server, account, login, tryLogin }) => {
    const a = await account("sh");
    const pwId = longId();
    await login({ username: a.user, password: a.password, userAgent: { id: pwId, software: "Password App" } });
    const g = await server.createGrant(a.user, { client: { name: "Console App", uri: "https://c.invalid", id: "c", version: "3.0" } });
    const pwlessId = `console-${longId()}`;
    const fast = { token: null };
    const o = await login({ username: a.user, oauthToken: g.token, fast, userAgent: { id: pwlessId, software: "Console App" } });
    const fastToken = { ...fast.token };
    const unused = await server.createGrant(a.user, { client: { name: "Unused", uri: "https://u.invalid", id: "u", version: "1" } });

    const J = luaString(a.jid);
    const lines = [
      `user:clients(${J})`,
      `user:revoke_client(${J}, ${luaString(`client/${pwlessId}`)})`,
      `user:revoke_client(${J}, ${luaString(`grant/${unused.grantId}`)})`,
      `user:revoke_client(${J}, ${luaString(`client/${pwId}`)})`,
      `user:revoke_client(${J}, "client/nope")`,
      `user:revoke_client(${J})`,
      `user:clients(${luaString(`nobody-${rand()}@localhost`)})`,
      `user:clients("x@nohost.invalid")`,
      `user:clients()`,
      `user:clients(${J})`,
    ];
    const res = await server.shellInteractive(lines, { env: cols(80) });
    assert.equal(res.code, 0, `the console exits with 0 at the end of input:\n${shown(res)}`);
    const blocks = consoleBlocks(res, lines);

    // the listing at 80 columns (78 for the table, after the "| " margin)
    const table = parseTable(blocks[0].text, { prefix: "| " });
    assert.ok(table, `a table:\n${blocks[0].text}`);
    assert.deepEqual(table.header, CLIENT_COLUMNS);
    assertAligned(table, "interactive");
    assert.deepEqual(new Set(table.rows.map((r) => r.ID)), new Set([`client/${pwId}`, `client/${pwlessId}`, `grant/${unused.grantId}`]));
    assert.match(row(table, `client/${pwId}`)["Last seen"], /^\d{4}-\d{2}-\d{2}$/, "dates without clock at 78");
    assert.equal(blocks[0].out.at(-1), "| OK: 3 client(s)");

    const expect = [
      null,
      "| OK: Client access revoked",
      "| OK: Client access revoked",
      "! Error: Password reset required",
      "! Error: Client not found",
      /^! Error: Supply what to revoke/,
      /^! Error: No such account: nobody-/,
      /^! Error: Unknown host: nohost\.invalid$/,
      /^! Error: /,
    ];
    for (let i = 1; i < expect.length; i++) {
      const want = expect[i];
      assert.equal(blocks[i].out.length, 1, `${lines[i]}:\n${blocks[i].text}`);
      if (want instanceof RegExp) assert.match(blocks[i].out[0], want, lines[i]);
      else assert.equal(blocks[i].out[0], want, lines[i]);
    }
    const last = parseTable(blocks[9].text, { prefix: "| " });
    assert.deepEqual(last?.rows.map((r) => r.ID), [`client/${pwId}`], blocks[9].text);
    assert.equal(blocks[9].out.at(-1), "| OK: 1 client(s)");

    await assertClosed(server, o, "revoked console client");
    await assertRefused(tryLogin, { username: a.user, fast: { token: { ...fastToken } }, userAgent: { id: pwlessId } }, "its FAST token");
    await assertRefused(tryLogin, { username: a.user, oauthToken: g.token, userAgent: { id: pwlessId } }, "its grant token");
    await assertRefused(tryLogin, { username: a.user, oauthToken: unused.token, userAgent: { id: `u-${rand()}` } }, "revoked grant's token");
  });

  e2eTest(fx, "interactive console: no clients, and COLUMNS is honoured", async ({ server, account, login }) => {
    const a = await account("sh");
    const J = luaString(a.jid);
    const empty = await server.shellInteractive([`user:clients(${J})`]);
    assert.equal(consoleBlocks(empty, [`user:clients(${J})`])[0].text, "| OK: No clients associated with this account", shown(empty));

    await login({ username: a.user, password: a.password, userAgent: { id: longId(), software: "Wide" } });
    const wide = await server.shellInteractive([`user:clients(${J})`], { env: cols(200) });
    const table = parseTable(consoleBlocks(wide, [`user:clients(${J})`])[0].text, { prefix: "| " });
    assert.ok(table, shown(wide));
    assert.match(table.rows[0]["Last seen"], /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$/, "dates with clock at 198");
  });
});

// ------------------------------------------------------------------ clients stats

describe("shell: clients stats over several accounts", () => {
  const fx = useServer();

  e2eTest(fx, "clients stats HOST: rows by software and version, accounts, clients, last seen", async ({ server, account, login }) => {
    const [u1, u2, u3, u4] = [await account("st"), await account("st"), await account("st"), await account("st")];
    for (const u of [u1, u2, u3]) await server.setAccountTimes(u.user, { created: P0, updated: P0 });
    // u1: Alpha 1.0 (stored, T1) and an OAuth grant of Alpha 2.0
    server.seedStore("clients", u1.user, clientsStore({ a10: passwordRecord("a10", { last: T1, software: "Alpha", version: "1.0" }) }));
    await server.createGrant(u1.user, { client: { name: "Alpha", uri: "https://alpha.invalid", id: "alpha", version: "2.0" } });
    // u2: two Alpha 1.0 (stored, T1 and T2) and Beta logged in now (SASL2 has no version)
    server.seedStore("clients", u2.user, clientsStore({
      "a10-phone": passwordRecord("a10-phone", { last: T1, software: "Alpha", version: "1.0" }),
      "a10-desk": passwordRecord("a10-desk", { last: T2, software: "Alpha", version: "1.0" }),
    }));
    await login({ username: u2.user, password: u2.password, userAgent: { id: `beta-${rand()}`, software: "Beta" } });
    // u3: Alpha 2.0 through OAuth now, Beta stored (T1), one client that never said what it is
    server.seedStore("clients", u3.user, clientsStore({
      beta: passwordRecord("beta", { last: T1, software: "Beta" }),
      anon: passwordRecord("anon", { last: T_UNKNOWN }),
    }));
    const g3 = await server.createGrant(u3.user, { client: { name: "Alpha", uri: "https://alpha.invalid", id: "alpha", version: "2.0" } });
    await login({ username: u3.user, oauthToken: g3.token, userAgent: { id: `alpha-${rand()}`, software: "Alpha" } });
    // u4: a stored client without access any more (password changed since): no client at all
    await server.setAccountTimes(u4.user, { updated: nowSeconds() - 100 });
    server.seedStore("clients", u4.user, clientsStore({ old: passwordRecord("old", { last: T1, software: "Alpha", version: "1.0" }) }));
    const today = day(nowSeconds());

    const res = await server.shell(["clients", "stats", "localhost"], { env: cols(80) });
    assert.equal(res.code, 0, shown(res));
    const table = mustParse(res, { first: "Software" });
    assert.deepEqual(table.header, STATS_COLUMNS);
    assertAligned(table, "stats");
    for (const line of table.lines) assert.ok(line.length <= 80, `fits 80 columns: '${line}' (${line.length})`);
    const result = res.stdout.trimEnd().split("\n").at(-1);
    assert.deepEqual({ rows: table.rows, result }, {
      rows: [
        { Software: "Alpha", Version: "1.0", Accounts: "2", Clients: "3", "Last seen": day(T2) },
        { Software: "Alpha", Version: "2.0", Accounts: "2", Clients: "2", "Last seen": today },
        { Software: "Beta", Version: "-", Accounts: "2", Clients: "2", "Last seen": today },
        { Software: "(unknown)", Version: "-", Accounts: "1", Clients: "1", "Last seen": day(T_UNKNOWN) },
      ],
      result: "OK: 8 client(s) on 3 account(s)",
    }, `clients stats:\n${res.stdout}`);

    // the same from the console
    const line = `clients:stats("localhost")`;
    const viaConsole = await server.shellInteractive([line]);
    const block = consoleBlocks(viaConsole, [line])[0];
    const t2 = parseTable(block.text, { prefix: "| ", first: "Software" });
    assert.deepEqual(t2?.rows, table.rows, block.text);
    assert.equal(block.out.at(-1), `| ${result}`);

    for (const args of [["clients", "stats"], ["clients", "stats", "nohost.invalid"]]) {
      assertFails(await server.shell(args), undefined, args.join(" "));
    }
  });
});

// ------------------------------------------------------------------ clients revoke

describe("shell: clients revoke HOST software/… (host-wide)", () => {
  const fx = useServer();

  e2eTest(fx, "dry run changes nothing; the real run cuts off every password-less client of that software", async ({ server, account, login, tryLogin }) => {
    const S = `Gamma${rand()}`;
    const D = `Delta${rand()}`;
    const [uA, uB, uC] = [await account("hw"), await account("hw"), await account("hw")];
    // uA: a password-less client of S (OAuth grant, version 3.1) back by FAST, plus a Delta grant
    const gA = await server.createGrant(uA.user, { client: { name: S, uri: "https://g.invalid", id: "g", version: "3.1" } });
    const gD = await server.createGrant(uA.user, { client: { name: D, uri: "https://d.invalid", id: "d", version: "1" } });
    const uaA = { id: `gamma-${longId()}`, software: S };
    const fastA = { token: null };
    const first = await login({ username: uA.user, oauthToken: gA.token, fast: fastA, userAgent: uaA });
    assert.ok(fastA.token, "FAST token issued");
    const tokenA = { ...fastA.token };
    await first.close();
    await eventually(async () => !(await server.hasSession(first.jid)));
    const oA = await login({ username: uA.user, fast: { token: { ...tokenA } }, userAgent: uaA });
    // uB: two unused grants of S, versions 3.1 and 1.0
    const gB = await server.createGrant(uB.user, { client: { name: S, uri: "https://g.invalid", id: "g", version: "3.1" } });
    const gB1 = await server.createGrant(uB.user, { client: { name: S, uri: "https://g.invalid", id: "g", version: "1.0" } });
    // uC: a password client of S with a FAST token
    const uaC = { id: `gamma-pw-${rand()}`, software: S };
    const fastC = { token: null };
    const oC = await login({ username: uC.user, password: uC.password, fast: fastC, userAgent: uaC });
    const tokenC = { ...fastC.token };

    const listing = async (u) => {
      const r = await server.shell(["user", "clients", u.jid], { env: PIPE });
      assert.equal(r.code, 0, shown(r));
      const tbl = parseTable(r.stdout);
      // sorted: a login moves its client down the list (order by last seen)
      return tbl ? tbl.rows.map((x) => [x.ID, x.Software, x.Authentication]).sort() : r.stdout.trim();
    };
    const before = { A: await listing(uA), B: await listing(uB), C: await listing(uC) };
    assert.deepEqual(before.B.map((x) => x[1]).sort(), [`${S} 1.0`, `${S} 3.1`]);

    // dry runs, command line and console
    const dry = await server.shell(["clients", "revoke", "localhost", `software/${S}`, "--dry-run"]);
    assertOk(dry, /^OK: Dry run: 3 client\(s\) .*1 need a password reset, 0 failed$/, "dry run");
    const dryV = await server.shell(["clients", "revoke", "localhost", `software/${S}/9.9`, "--dry-run"]);
    assertOk(dryV, /^OK: Dry run: 0 client\(s\) .*0 need a password reset, 0 failed$/, "dry run of a version nobody has");
    const line = `clients:revoke("localhost", ${luaString(`software/${S}/1.0`)}, { dry_run = true })`;
    const viaConsole = await server.shellInteractive([line]);
    assert.match(consoleBlocks(viaConsole, [line])[0].text, /^\| OK: Dry run: 1 client\(s\) .*0 need a password reset, 0 failed$/, shown(viaConsole));

    // ... changed nothing: same listings, sessions up, tokens good
    assert.deepEqual({ A: await listing(uA), B: await listing(uB), C: await listing(uC) }, before, "listings after the dry runs");
    assert.ok(await server.hasSession(oA.jid), "uA's client still connected");
    assert.equal((await ping(oA)).attrs.type, "result");
    const againA = await login({ username: uA.user, fast: { token: { ...tokenA } }, userAgent: uaA });
    const againOauth = await login({ username: uA.user, oauthToken: gA.token, userAgent: uaA });
    const grantsB = await server.userGrants(uB.user);
    assert.ok(grantsB?.[gB.grantId] && grantsB?.[gB1.grantId], "uB's grants still there");
    assert.deepEqual(await listing(uA), before.A, "the same client logging in again changes no entry");

    // the real run
    const real = await server.shell(["clients", "revoke", "localhost", `software/${S}`]);
    assertOk(real, "3 client(s) revoked, 1 need a password reset, 0 failed", "real run");

    for (const [s, what] of [[oA, "uA's FAST session"], [againA, "uA's second FAST session"], [againOauth, "uA's OAuth session"]]) {
      await assertClosed(server, s, what);
    }
    await assertRefused(tryLogin, { username: uA.user, fast: { token: { ...tokenA } }, userAgent: uaA }, "uA's FAST token");
    await assertRefused(tryLogin, { username: uA.user, oauthToken: gA.token, userAgent: uaA }, "uA's grant token");
    await assertRefused(tryLogin, { username: uB.user, oauthToken: gB.token, userAgent: { id: `b-${rand()}` } }, "uB's 3.1 grant token");
    await assertRefused(tryLogin, { username: uB.user, oauthToken: gB1.token, userAgent: { id: `b-${rand()}` } }, "uB's 1.0 grant token");

    // other software untouched; the password client left alone
    assert.deepEqual(await listing(uA), [[`grant/${gD.grantId}`, `${D} 1`, "grant"]]);
    assert.equal(await listing(uB), "OK: No clients associated with this account");
    assert.deepEqual(await listing(uC), before.C);
    assert.ok(await server.hasSession(oC.jid), "password client still connected");
    assert.equal((await ping(oC)).attrs.type, "result");
    const viaFastC = await login({ username: uC.user, fast: { token: { ...tokenC } }, userAgent: uaC });
    assert.equal(viaFastC.sent.find((el) => el.name === "authenticate").attrs.mechanism, "HT-SHA-256-NONE");

    const again = await server.shell(["clients", "revoke", "localhost", `software/${S}`]);
    assertOk(again, "0 client(s) revoked, 1 need a password reset, 0 failed", "second run");
  });

  e2eTest(fx, "software/NAME/VERSION still matches an OAuth client (version from its grant) after it comes back by FAST", async ({ server, account, login, tryLogin }) => {
    const S = `Epsilon${rand()}`;
    const u = await account("hw");
    const g = await server.createGrant(u.user, { client: { name: S, uri: "https://e.invalid", id: "e", version: "3.1" } });
    const ua = { id: `eps-${rand()}`, software: S };
    const fast = { token: null };
    const first = await login({ username: u.user, oauthToken: g.token, fast, userAgent: ua });
    const token = { ...fast.token };
    const software = async () => {
      const r = await server.shell(["user", "clients", u.jid], { env: PIPE });
      return mustParse(r).rows.map((x) => [x.ID, x.Software]);
    };
    assert.deepEqual(await software(), [[`client/${ua.id}`, `${S} 3.1`]], "after the OAuth login");
    await first.close();
    await eventually(async () => !(await server.hasSession(first.jid)));
    const back = await login({ username: u.user, fast: { token: { ...token } }, userAgent: ua });
    const dry = await server.shell(["clients", "revoke", "localhost", `software/${S}/3.1`, "--dry-run"]);
    const listed = await software();
    assert.deepEqual({ listed, dry: dry.stdout.trim() }, {
      listed: [[`client/${ua.id}`, `${S} 3.1`]],
      dry: "OK: Dry run: 1 client(s) revoked, 0 need a password reset, 0 failed",
    }, "after the FAST login");
    assertOk(await server.shell(["clients", "revoke", "localhost", `software/${S}/3.1`]), "1 client(s) revoked, 0 need a password reset, 0 failed", "real run");
    await assertClosed(server, back, "the FAST session");
    await assertRefused(tryLogin, { username: u.user, fast: { token: { ...token } }, userAgent: ua }, "its FAST token");
    await assertRefused(tryLogin, { username: u.user, oauthToken: g.token, userAgent: ua }, "its grant token");
  });

  e2eTest(fx, "clients revoke: bad arguments fail with a non-zero exit status", async ({ server }) => {
    const failing = [
      [["clients", "revoke", "localhost"], "Supply software/NAME or software/NAME/VERSION"],
      [["clients", "revoke", "localhost", "client/abc"], "Supply software/NAME or software/NAME/VERSION"],
      [["clients", "revoke", "localhost", "grant/abc", "--dry-run"], "Supply software/NAME or software/NAME/VERSION"],
      [["clients", "revoke", "nohost.invalid", "software/X"], "Unknown host: nohost.invalid"],
      [["clients", "revoke", "localhost", "software/X", "--dry"], /^Error: Unknown parameter: --dry$/m],
    ];
    for (const [args, text] of failing) {
      assertFails(await server.shell(args), text, args.join(" "));
    }
  });
});
