// The admin shell (ARCHITECTURE.md §7, with §5's revocation), run the way an admin runs
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

import { useServer, e2eTest, eventually, assertRefused, assertClosed } from "../lib/harness.js";
import { luaString } from "../lib/server.js";
import { NS, xml } from "../lib/client.js";
import { LEGACY_ID, listClients, ids, nowSeconds, unixOf } from "../lib/manage.js";

// ------------------------------------------------------------------ helpers

const SEP = " | ";
const CLIENT_COLUMNS = ["ID", "Software", "First seen", "Last seen", "Expires", "Authentication"];
const DATE_COLUMNS = ["First seen", "Last seen", "Expires"];
const STATS_COLUMNS = ["Software", "Version", "Accounts", "Clients", "Last seen"];

/** Unix seconds → "YYYY-MM-DD" (UTC), the table's dates. */
const day = (t) => new Date(t * 1000).toISOString().slice(0, 10);
/** Unix seconds → "YYYY-MM-DD hh:mm" (UTC), the blocks' dates. */
const minute = (t) => new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ");
const utc = (iso) => Date.parse(iso) / 1000;
/** How a listing in `layout` ("table" or "blocks") shows a time. */
const dateIn = (layout) => (layout === "table" ? day : minute);

const rand = () => randomBytes(4).toString("hex");

/** Environments for prosodyctl: a pipe without COLUMNS, or a forced width. */
const PIPE = { COLUMNS: undefined };
const cols = (n) => ({ COLUMNS: String(n) });
/**
 * The width a command-line run gives commands (session.width): COLUMNS - 2,
 * or 132 - 2 on a pipe without COLUMNS.
 */
const widthOf = (env) => (env.COLUMNS === undefined ? 130 : Number(env.COLUMNS) - 2);

/** Everything a shell run printed, for assertion messages. */
const shown = (res) => `exit ${res.code}\n--- stdout ---\n${res.stdout}--- stderr ---\n${res.stderr}`;

/**
 * A table printed by a command (here: clients stats): the line starting with
 * `first` (after `prefix`) and the following lines holding " | ". Cells are
 * trimmed. → { header, rows: [{ column title → cell }], lines (without prefix), fullLines }.
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

// `user clients` prints one of two layouts (ARCHITECTURE.md §7, lua "Shell" section):
// - a table, when the whole of it fits the session width: columns ID,
//   Software, First seen, Last seen, Expires, Authentication, each as wide as
//   its title + 1 or its longest cell, cells padded on the right, " | "
//   between columns, dates YYYY-MM-DD;
// - else one block per client: the id alone on a line, then one indented
//   "  Title:" line per column (values from column 18), dates
//   YYYY-MM-DD hh:mm, an empty line between blocks.
// Every cell whole in both ("-" for nothing), then "OK: N client(s)".

const chars = (s) => [...s].length;
const pad = (s, width) => s + " ".repeat(Math.max(0, width - chars(s)));

/** The lines of the table layout for `rows` ([{ column title → cell }]). */
function clientTable(rows) {
  const widths = CLIENT_COLUMNS.map((t) => Math.max(t.length + 1, ...rows.map((r) => chars(r[t]))));
  const line = (cells) => cells.map((c, i) => pad(c, widths[i])).join(SEP);
  return [line(CLIENT_COLUMNS), ...rows.map((r) => line(CLIENT_COLUMNS.map((t) => r[t])))];
}

/** The lines of the block layout for `rows`. */
function clientBlocks(rows) {
  const lines = [];
  rows.forEach((r, i) => {
    if (i > 0) lines.push("");
    lines.push(r.ID);
    for (const t of CLIENT_COLUMNS.slice(1)) lines.push(`  ${pad(`${t}:`, 15)} ${r[t]}`);
  });
  return lines;
}

/** A block row as the table shows it (dates without the time). */
const asTableRow = (r) => ({ ...r, ...Object.fromEntries(DATE_COLUMNS.map((t) => [t, r[t] === "-" ? "-" : r[t].slice(0, 10)])) });

/**
 * The listing of `user clients` in `out` (its output lines, "OK: …" last,
 * each after `prefix`: "| " in the console), checked for form: exactly the
 * lines clientTable() or clientBlocks() makes of the cells read back, dates
 * as the layout shows them, every id once, the count, and the table printed
 * exactly when it fits `width` (the session width).
 * → { layout: "table" | "blocks" | "empty", rows, lines, result, tableWidth }.
 */
function clientListing(out, { width, prefix = "", what = "user clients", dump = out.join("\n") }) {
  const msg = (m) => `${what}: ${m}\n${dump}`;
  const all = out.map((l) => {
    assert.ok(l.startsWith(prefix), msg(`a line without '${prefix}': '${l}'`));
    return l.slice(prefix.length);
  });
  const result = all.at(-1);
  const lines = all.slice(0, -1);
  if (result === "OK: No clients associated with this account") {
    assert.deepEqual(lines, [], msg("output besides the result"));
    return { layout: "empty", rows: [], lines, result, tableWidth: null };
  }
  let layout;
  const rows = [];
  if (lines[0]?.startsWith("ID ") && lines[0].includes(SEP)) {
    layout = "table";
    const cells = (l) => l.split(SEP).map((c) => c.trim());
    assert.deepEqual(cells(lines[0]), CLIENT_COLUMNS, msg("table header"));
    for (const l of lines.slice(1)) {
      const c = cells(l);
      assert.equal(c.length, CLIENT_COLUMNS.length, msg(`a row with ${c.length} cells: '${l}'`));
      rows.push(Object.fromEntries(CLIENT_COLUMNS.map((t, i) => [t, c[i]])));
    }
  } else {
    layout = "blocks";
    for (let i = 0; i < lines.length;) {
      if (rows.length > 0) assert.equal(lines[i++], "", msg("an empty line between blocks"));
      const r = { ID: lines[i++] };
      assert.match(r.ID ?? "", /^\S+$/, msg("a block starts with the id alone"));
      for (const t of CLIENT_COLUMNS.slice(1)) {
        const m = /^ {2}([A-Za-z ]+): +(.*)$/.exec(lines[i++] ?? "");
        assert.ok(m && m[1] === t, msg(`'  ${t}:' expected in the block of ${r.ID}, got '${lines[i - 1]}'`));
        r[t] = m[2];
      }
      rows.push(r);
    }
  }
  assert.deepEqual(lines, layout === "table" ? clientTable(rows) : clientBlocks(rows), msg(`not exactly the ${layout} layout`));
  const date = layout === "table" ? /^\d{4}-\d{2}-\d{2}$/ : /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$/;
  for (const r of rows) {
    for (const t of DATE_COLUMNS) assert.ok(r[t] === "-" || date.test(r[t]), msg(`${t} of ${r.ID}: '${r[t]}'`));
  }
  assert.equal(new Set(rows.map((r) => r.ID)).size, rows.length, msg("an id listed twice"));
  assert.equal(result, `OK: ${rows.length} client(s)`, msg("the result line"));
  const tableWidth = chars(clientTable(rows.map(asTableRow))[0]);
  assert.equal(layout, tableWidth <= width ? "table" : "blocks",
    msg(`the whole table is ${tableWidth} wide, the session ${width}: a table exactly when it fits`));
  return { layout, rows, lines, result, tableWidth };
}

/** `prosodyctl shell user clients JID` with `env`: succeeds; its listing (clientListing). */
async function userClients(server, jid, env, what = "user clients") {
  const res = await server.shell(["user", "clients", jid], { env });
  assertOk(res, undefined, what);
  assert.ok(res.stdout.endsWith("\n"), `${what}: ${shown(res)}`);
  return { res, ...clientListing(res.stdout.slice(0, -1).split("\n"), { width: widthOf(env), what, dump: shown(res) }) };
}

function row(listing, id) {
  const found = listing.rows.filter((r) => r.ID === id);
  assert.equal(found.length, 1, `exactly one entry '${id}' in:\n${listing.lines.join("\n")}`);
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

describe("shell: user clients / user revoke_client (ARCHITECTURE.md §7)", () => {
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
    await server.seedStore("clients", a.user, clientsStore({
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

  /** `cell` shows, as `fmt` does, a time from `from` to `to` (give or take a minute). */
  function within(cell, from, to, fmt, what) {
    const ok = new Set([fmt(to + 60)]);
    for (let t = from - 60; t <= to + 60; t += 30) ok.add(fmt(t));
    assert.ok(ok.has(cell), `${what}: '${cell}' not within ${fmt(from)}..${fmt(to)}`);
  }

  /** The legacy client's entry: client/<12 generated chars>, exactly one. */
  function legacyEntry(listing, what) {
    const found = listing.rows.filter((r) => r.ID.startsWith("client/") && LEGACY_ID.test(r.ID.slice("client/".length)));
    assert.equal(found.length, 1, `${what}: one legacy client/<12 chars> entry, whole:\n${listing.lines.join("\n")}`);
    return found[0];
  }

  /**
   * Width of everyKind()'s whole table: ID (the long SASL2 id) | Software
   * ("Shell App 4.2") | First seen (its title + 1) | Last seen | Expires
   * (a date) | Authentication ("password,fast,online").
   */
  const everyKindWidth = (sasl2Id) => `client/${sasl2Id}`.length + 13 + 11 + 10 + 10 + 20 + 5 * SEP.length;

  e2eTest(fx, "user clients: full ids of every kind, software/version, dates, expiry, methods, count (blocks on a pipe, 130 wide; a table at COLUMNS=200)", async (ctx) => {
    const { server } = ctx;
    const { a, seeded, sasl2Id, c, g, before, after } = await everyKind(ctx);
    const pipe = await userClients(server, a.jid, PIPE, "pipe");
    const wide = await userClients(server, a.jid, cols(200), "COLUMNS=200");
    const xmpp = (await listClients(c)).clients;

    // the long SASL2 id makes the whole table 154 wide: blocks on a pipe (130)
    const W = everyKindWidth(sasl2Id);
    assert.equal(W, 154);
    assert.deepEqual([pipe.layout, pipe.tableWidth, wide.layout, wide.tableWidth], ["blocks", W, "table", W], `${pipe.res.stdout}\n${wide.res.stdout}`);
    // a block as the admin sees it (the stored client comes first: oldest last seen)
    assert.deepEqual(pipe.lines.slice(0, 7), [
      `client/${seeded}`,
      "  Software:       Alpha 1.0",
      "  First seen:     2021-03-04 10:20",
      "  Last seen:      2022-05-06 07:08",
      "  Expires:        -",
      "  Authentication: password",
      "",
    ], pipe.res.stdout);
    // a table row as the admin sees it
    assert.equal(wide.lines[1], [
      `client/${seeded}`.padEnd(`client/${sasl2Id}`.length), "Alpha 1.0".padEnd(13), "2021-03-04 ", "2022-05-06", "-".padEnd(10), "password".padEnd(20),
    ].join(SEP), wide.res.stdout);

    for (const [l, what] of [[pipe, "pipe"], [wide, "COLUMNS=200"]]) {
      const fmt = dateIn(l.layout);
      const shownAs = (ts) => (ts === undefined ? "-" : fmt(unixOf(ts)));
      assert.equal(l.result, "OK: 4 client(s)", what);
      // the same clients as the XMPP listing, in the same order (oldest last_seen first), with its dates
      assert.deepEqual(l.rows.map((r) => r.ID), ids(xmpp), what);
      assert.deepEqual(l.rows.map((r) => [r.ID, r["First seen"], r["Last seen"]]),
        xmpp.map((x) => [x.id, shownAs(x.firstSeen), shownAs(x.lastSeen)]), `${what}: dates as in the XMPP listing`);

      assert.deepEqual(row(l, `client/${seeded}`), {
        ID: `client/${seeded}`, Software: "Alpha 1.0", "First seen": fmt(T1), "Last seen": fmt(T2),
        Expires: "-", Authentication: "password",
      }, what);
      const s = row(l, `client/${sasl2Id}`);
      assert.deepEqual([s.Software, s.Expires, s.Authentication], ["Shell Soft", "-", "password,fast,online"], `${what}: SASL2 client`);
      within(s["First seen"], before, after, fmt, `${what}: first seen of the SASL2 client`);
      within(s["Last seen"], before, after, fmt, `${what}: last seen of the SASL2 client`);
      const legacy = legacyEntry(l, what);
      assert.deepEqual([legacy.Software, legacy.Expires, legacy.Authentication], ["-", "-", "password,online"], `${what}: legacy client`);
      within(legacy["First seen"], before, after, fmt, `${what}: first seen of the legacy client`);
      within(legacy["Last seen"], before, after, fmt, `${what}: last seen of the legacy client`);
      const gr = row(l, `grant/${g.grantId}`);
      assert.deepEqual([gr.Software, gr.Authentication], ["Shell App 4.2", "grant"], `${what}: grant`);
      within(gr["First seen"], before, after, fmt, `${what}: grant created`);
      within(gr.Expires, before + 3600, after + 3600, fmt, `${what}: grant expiry (its token's)`);
    }
    // the table is the blocks with the dates cut to the day
    assert.deepEqual(wide.rows, pipe.rows.map(asTableRow));
  });

  e2eTest(fx, "user clients at COLUMNS=40, 80, 200 and at the table's own width: ids whole, blocks, or one aligned line per client", async (ctx) => {
    const { server } = ctx;
    const { a, seeded, sasl2Id, g } = await everyKind(ctx);
    const W = everyKindWidth(sasl2Id);
    // the session gets COLUMNS - 2: the table fits from COLUMNS = W + 2 on
    const expected = { 40: "blocks", 80: "blocks", 200: "table", [W + 1]: "blocks", [W + 2]: "table" };
    const seen = {};
    for (const [n, layout] of Object.entries(expected)) {
      const what = `COLUMNS=${n}`;
      const l = await userClients(server, a.jid, cols(n), what);
      assert.equal(l.layout, layout, `${what}:\n${l.res.stdout}`);
      assert.equal(l.tableWidth, W, what);
      assert.equal(l.result, "OK: 4 client(s)", what);
      assert.equal(l.rows.length, 4, what);
      if (layout === "table") {
        assert.equal(l.lines.length, 5, `${what}: a header and one line per client`);
        assertAligned(l, what);
        for (const line of l.lines) assert.equal(line.length, W, `${what}: every line ${W} long: '${line}'`);
      } else {
        assert.equal(l.lines.length, 4 * 6 + 3, `${what}: six lines per client, an empty line between`);
      }
      for (const id of [`client/${seeded}`, `client/${sasl2Id}`, `grant/${g.grantId}`]) row(l, id);
      legacyEntry(l, what);
      const fmt = dateIn(layout);
      assert.deepEqual(row(l, `client/${seeded}`), {
        ID: `client/${seeded}`, Software: "Alpha 1.0", "First seen": fmt(T1), "Last seen": fmt(T2),
        Expires: "-", Authentication: "password",
      }, what);
      assert.equal(row(l, `client/${sasl2Id}`).Authentication, "password,fast,online", what);
      assert.equal(row(l, `grant/${g.grantId}`).Software, "Shell App 4.2", what);
      seen[n] = l;
    }
    assert.deepEqual(seen[40].lines, seen[80].lines, "blocks do not depend on the width");
    assert.deepEqual(seen[W + 1].lines, seen[80].lines, "blocks do not depend on the width");
    assert.deepEqual(seen[W + 2].lines, seen[200].lines, "nor does the table");
    assert.deepEqual(seen[200].rows, seen[80].rows.map(asTableRow), "the same entries in the same order");
  });

  e2eTest(fx, "user clients: software name and version are not cut off (blocks at 80 columns, a table on a pipe, blocks for a long id)", async ({ server, account, login }) => {
    // Real-world names: an admin needs the version for software/NAME/VERSION.
    const a = await account("sh");
    const id = `x-${rand()}`;
    await login({ username: a.user, password: a.password, userAgent: { id, software: "Conversations" } });
    const g = await server.createGrant(a.user, { client: { name: "Monocles Chat", uri: "https://m.invalid", id: "m", version: "2.17.2" } });
    const check = async (u, env, what, layout, expected) => {
      const l = await userClients(server, u.jid, env, what);
      assert.equal(l.result, `OK: ${Object.keys(expected).length} client(s)`, what);
      assert.equal(l.layout, layout, `${what}:\n${l.res.stdout}`);
      assert.deepEqual(Object.fromEntries(l.rows.map((r) => [r.ID, r.Software])), expected, `${what}: Software cells\n${l.res.stdout}`);
      return l;
    };
    // short ids: the whole table is 99 wide (ID 18, Software 20, First seen 11,
    // Last seen 10, Expires 10, Authentication 15): blocks at 80, a table on a pipe
    const expectedA = { [`client/${id}`]: "Conversations", [`grant/${g.grantId}`]: "Monocles Chat 2.17.2" };
    assert.equal((await check(a, cols(80), "COLUMNS=80", "blocks", expectedA)).tableWidth, 99);
    assert.equal((await check(a, PIPE, "pipe", "table", expectedA)).tableWidth, 99);
    // a long SASL2 id: blocks on a pipe
    const b = await account("sh");
    const long = longId();
    await login({ username: b.user, password: b.password, userAgent: { id: long, software: "Conversations" } });
    await check(b, PIPE, "pipe, long id", "blocks", { [`client/${long}`]: "Conversations" });
    await check(b, cols(200), "COLUMNS=200, long id", "table", { [`client/${long}`]: "Conversations" });
  });

  e2eTest(fx, "user clients: widths count characters, not bytes (non-ASCII software name)", async ({ server, account, login }) => {
    const a = await account("sh");
    const id = `u-${rand()}`;
    const software = "Gajim ✓ünï"; // 10 characters, 14 bytes in UTF-8
    await login({ username: a.user, password: a.password, userAgent: { id, software } });
    // ID 17 | Software 10 | First seen 11 | Last seen 10 | Expires 8 ("-") | Authentication 15
    const W = `client/${id}`.length + chars(software) + 11 + 10 + 8 + 15 + 5 * SEP.length;
    for (const n of [200, W + 2]) {
      const l = await userClients(server, a.jid, cols(n), `COLUMNS=${n}`);
      assert.equal(l.layout, "table", `COLUMNS=${n}:\n${l.res.stdout}`);
      assert.equal(row(l, `client/${id}`).Software, software);
    }
    const l = await userClients(server, a.jid, cols(W + 1), `COLUMNS=${W + 1}`);
    assert.equal(l.layout, "blocks", l.res.stdout);
    assert.equal(row(l, `client/${id}`).Software, software);
  });

  e2eTest(fx, "every id, copied from the listing, revokes its client verbatim (SASL2 long id, legacy id, grant/)", async ({ server, account, login, tryLogin }) => {
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

    // 80 columns: blocks (the long id alone is 82 wide)
    const listing = await userClients(server, a.jid, cols(80), "COLUMNS=80");
    assert.equal(listing.layout, "blocks", listing.res.stdout);
    assert.equal(listing.result, "OK: 3 client(s)");
    const legacyRow = listing.rows.find((r) => r.ID !== `client/${sasl2Id}` && r.ID.startsWith("client/"));
    assert.ok(legacyRow, listing.res.stdout);
    assert.match(legacyRow.ID.slice("client/".length), LEGACY_ID);
    const copied = listing.rows.map((r) => r.ID);
    assert.deepEqual(new Set(copied), new Set([`client/${sasl2Id}`, legacyRow.ID, `grant/${g3.grantId}`]));
    for (const r of listing.rows) assert.equal(r.Authentication.includes("password"), false, `${r.ID} is password-less`);
    // the table shows the same ids, whole
    const table = await userClients(server, a.jid, cols(250), "COLUMNS=250");
    assert.equal(table.layout, "table", table.res.stdout);
    assert.deepEqual(table.rows.map((r) => r.ID), copied);

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
    assert.equal(empty.stdout, "OK: No clients associated with this account\n", `nothing but the result:\n${shown(empty)}`);
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
    const before = await userClients(server, a.jid, PIPE, "user clients");
    assert.equal(before.result, "OK: 2 client(s)");

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

    // the same listing, line for line (nobody logged in since)
    const after = await userClients(server, a.jid, PIPE, "user clients afterwards");
    assert.deepEqual(after.lines, before.lines);
    assert.deepEqual(after.rows.map((r) => [r.ID, r.Software, r.Authentication]),
      [[`client/${id}`, "Password App", "password,fast,online"], [`grant/${g.grantId}`, "Stays 1", "grant"]]);
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

    // the listing at 80 columns (78 for the listing, after the "| " margin):
    // blocks, the long ids do not leave room for a table
    const listing = clientListing(blocks[0].out, { width: 78, prefix: "| ", what: "user:clients() at 80" });
    assert.equal(listing.layout, "blocks", blocks[0].text);
    assert.deepEqual(new Set(listing.rows.map((r) => r.ID)), new Set([`client/${pwId}`, `client/${pwlessId}`, `grant/${unused.grantId}`]));
    assert.deepEqual(row(listing, `client/${pwlessId}`).Software, "Console App 3.0");
    assert.deepEqual(row(listing, `client/${pwlessId}`).Authentication, "fast,grant,online");
    assert.match(row(listing, `client/${pwId}`)["Last seen"], /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$/, "dates with the time in blocks");
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
    const last = clientListing(blocks[9].out, { width: 78, prefix: "| ", what: "user:clients() at the end" });
    assert.equal(last.layout, "blocks", blocks[9].text);
    assert.deepEqual(last.rows.map((r) => [r.ID, r.Software, r.Authentication]), [[`client/${pwId}`, "Password App", "password,online"]], blocks[9].text);
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

    const id = longId();
    await login({ username: a.user, password: a.password, userAgent: { id, software: "Wide" } });
    // ID | Software (its title + 1) | First seen | Last seen | Expires ("-": title + 1) | Authentication ("password,online")
    const W = `client/${id}`.length + 9 + 11 + 10 + 8 + 15 + 5 * SEP.length;
    // the console gets COLUMNS - 2 too; without COLUMNS lua-readline makes it 80 on a pipe
    // (132 without lua-readline): blocks either way
    const cases = [[cols(200), 198, "table"], [cols(W + 2), W, "table"], [cols(W + 1), W - 1, "blocks"], [PIPE, 78, "blocks"]];
    const seen = [];
    for (const [env, width, layout] of cases) {
      const what = `user:clients() with COLUMNS=${env.COLUMNS ?? "(unset)"}`;
      const res = await server.shellInteractive([`user:clients(${J})`], { env });
      const out = consoleBlocks(res, [`user:clients(${J})`])[0].out;
      const l = clientListing(out, { width, prefix: "| ", what, dump: shown(res) });
      assert.equal(l.layout, layout, `${what}:\n${shown(res)}`);
      assert.equal(l.tableWidth, W, what);
      assert.deepEqual(l.rows.map((r) => [r.ID, r.Software, r.Expires, r.Authentication]), [[`client/${id}`, "Wide", "-", "password,online"]], what);
      assert.match(l.rows[0]["Last seen"], layout === "table" ? /^\d{4}-\d{2}-\d{2}$/ : /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$/, what);
      seen.push(l);
    }
    assert.deepEqual(seen[1].lines, seen[0].lines, "the table does not depend on the width");
    assert.deepEqual(seen[3].lines, seen[2].lines, "nor do the blocks");
    assert.deepEqual(seen[0].rows, seen[2].rows.map(asTableRow));
  });
});

// ------------------------------------------------------------------ clients stats

describe("shell: clients stats over several accounts", () => {
  const fx = useServer();

  e2eTest(fx, "clients stats HOST: rows by software and version, accounts, clients, last seen", async ({ server, account, login }) => {
    const [u1, u2, u3, u4] = [await account("st"), await account("st"), await account("st"), await account("st")];
    for (const u of [u1, u2, u3]) await server.setAccountTimes(u.user, { created: P0, updated: P0 });
    // u1: Alpha 1.0 (stored, T1) and an OAuth grant of Alpha 2.0
    await server.seedStore("clients", u1.user, clientsStore({ a10: passwordRecord("a10", { last: T1, software: "Alpha", version: "1.0" }) }));
    await server.createGrant(u1.user, { client: { name: "Alpha", uri: "https://alpha.invalid", id: "alpha", version: "2.0" } });
    // u2: two Alpha 1.0 (stored, T1 and T2) and Beta logged in now (SASL2 has no version)
    await server.seedStore("clients", u2.user, clientsStore({
      "a10-phone": passwordRecord("a10-phone", { last: T1, software: "Alpha", version: "1.0" }),
      "a10-desk": passwordRecord("a10-desk", { last: T2, software: "Alpha", version: "1.0" }),
    }));
    await login({ username: u2.user, password: u2.password, userAgent: { id: `beta-${rand()}`, software: "Beta" } });
    // u3: Alpha 2.0 through OAuth now, Beta stored (T1), one client that never said what it is
    await server.seedStore("clients", u3.user, clientsStore({
      beta: passwordRecord("beta", { last: T1, software: "Beta" }),
      anon: passwordRecord("anon", { last: T_UNKNOWN }),
    }));
    const g3 = await server.createGrant(u3.user, { client: { name: "Alpha", uri: "https://alpha.invalid", id: "alpha", version: "2.0" } });
    await login({ username: u3.user, oauthToken: g3.token, userAgent: { id: `alpha-${rand()}`, software: "Alpha" } });
    // u4: a stored client without access any more (password changed since): no client at all
    await server.setAccountTimes(u4.user, { updated: nowSeconds() - 100 });
    await server.seedStore("clients", u4.user, clientsStore({ old: passwordRecord("old", { last: T1, software: "Alpha", version: "1.0" }) }));
    const today = day(nowSeconds());

    const res = await server.shell(["clients", "stats", "localhost"], { env: cols(80) });
    assert.equal(res.code, 0, shown(res));
    const table = mustParse(res, { first: "Software" });
    assert.deepEqual(table.header, STATS_COLUMNS);
    assertAligned(table, "stats");
    // the Software column takes what is left of the session width (COLUMNS - 2)
    for (const line of table.lines) assert.equal(line.length, 78, `fills the 78 columns of the session: '${line}' (${line.length})`);
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

    /**
     * An account's entries by id with their fields but not their times: a
     * login moves last_seen, and with it the order (last seen, first seen, id).
     * Expires is "-" or "date". No entries: the result line.
     */
    const listing = async (u) => {
      const l = await userClients(server, u.jid, PIPE, `user clients ${u.jid}`);
      if (l.layout === "empty") return l.result;
      return Object.fromEntries(l.rows.map((x) => [x.ID, {
        software: x.Software, authentication: x.Authentication, expires: x.Expires === "-" ? "-" : "date",
      }]));
    };
    const before = { A: await listing(uA), B: await listing(uB), C: await listing(uC) };
    assert.deepEqual(before.A, {
      [`client/${uaA.id}`]: { software: `${S} 3.1`, authentication: "fast,grant,online", expires: "-" },
      [`grant/${gD.grantId}`]: { software: `${D} 1`, authentication: "grant", expires: "date" },
    }, "uA: the OAuth client keeps its grant's version after the FAST login");
    assert.deepEqual(before.B, {
      [`grant/${gB.grantId}`]: { software: `${S} 3.1`, authentication: "grant", expires: "date" },
      [`grant/${gB1.grantId}`]: { software: `${S} 1.0`, authentication: "grant", expires: "date" },
    });
    assert.deepEqual(before.C, {
      [`client/${uaC.id}`]: { software: S, authentication: "password,fast,online", expires: "-" },
    });

    // dry runs, command line and console
    const dry = await server.shell(["clients", "revoke", "localhost", `software/${S}`, "--dry-run"]);
    assertOk(dry, "Dry run: 3 client(s) would be revoked, 1 need a password reset, 0 failed", "dry run");
    const dryV = await server.shell(["clients", "revoke", "localhost", `software/${S}/9.9`, "--dry-run"]);
    assertOk(dryV, "Dry run: 0 client(s) would be revoked, 0 need a password reset, 0 failed", "dry run of a version nobody has");
    const line = `clients:revoke("localhost", ${luaString(`software/${S}/1.0`)}, { dry_run = true })`;
    const viaConsole = await server.shellInteractive([line]);
    assert.equal(consoleBlocks(viaConsole, [line])[0].text, "| OK: Dry run: 1 client(s) would be revoked, 0 need a password reset, 0 failed", shown(viaConsole));

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
    assert.deepEqual(await listing(uA), { [`grant/${gD.grantId}`]: { software: `${D} 1`, authentication: "grant", expires: "date" } });
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
    const software = async () => (await userClients(server, u.jid, PIPE)).rows.map((x) => [x.ID, x.Software]);
    assert.deepEqual(await software(), [[`client/${ua.id}`, `${S} 3.1`]], "after the OAuth login");
    await first.close();
    await eventually(async () => !(await server.hasSession(first.jid)));
    const back = await login({ username: u.user, fast: { token: { ...token } }, userAgent: ua });
    const dry = await server.shell(["clients", "revoke", "localhost", `software/${S}/3.1`, "--dry-run"]);
    const listed = await software();
    assert.deepEqual({ listed, dry: dry.stdout.trim() }, {
      listed: [[`client/${ua.id}`, `${S} 3.1`]],
      dry: "OK: Dry run: 1 client(s) would be revoked, 0 need a password reset, 0 failed",
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
