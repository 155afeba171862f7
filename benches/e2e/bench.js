// End-to-end benchmark of mod_client_management: real Prosody 13 servers (the tests/e2e
// harness), one per plugin build measured plus one without the module, seeded accounts,
// real clients. Started by run.js; see README.md.
//
// Builds are measured in the same run, interleaved round by round (the order alternating
// between rounds), so that their ratios stay fair on a noisy machine. Progress goes to
// stderr, the report (markdown) to stdout and to build/bench/e2e.md (or BENCH_REPORT).
// Slowness never fails it; only a broken setup does.

import { execFileSync } from "node:child_process";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";

import { parseBuilds } from "./builds.js";

// The harness reads these when it writes a config / at each wait: a benchmark logs like a
// production server (info), not at the tests' default (debug); its waits are generous
// (BENCH_TIMEOUT_SCALE, raised further below if the machine turns out to be slow).
process.env.E2E_LOG_LEVEL = process.env.BENCH_LOG_LEVEL || process.env.E2E_LOG_LEVEL || "info";

const { startServer, luaString, luaValue, HOST, STORAGE, scaled } = await import("../../tests/e2e/lib/server.js");
const { login } = await import("../../tests/e2e/lib/client.js");
const { listClients, NS_MC, NS_CAM } = await import("../../tests/e2e/lib/manage.js");
const { LIMITS_PLUGINS, GC_MODES, communityDir, allocatedLua, holdLua, limitRequest } = await import("./limits.js");

// xmpp.js's SCRAM (sasl-scram-sha-1 1.3) computes Hi() as a loop of WebCrypto
// HMACs: ~0.5 s for Prosody's 10000 iterations, which would drown what the
// server does in a login. Real clients use a native PBKDF2 (or cache the
// salted password); so does the bench: Hi(str, salt, i) is PBKDF2-HMAC-SHA-1
// with a 20-byte output (RFC 5802 §2.2). The module object is the one the
// mechanism calls through (`bitops.Hi(...)` at call time).
const SCRAM_NATIVE = process.env.BENCH_JS_SCRAM !== "1";
if (SCRAM_NATIVE) {
  const { createRequire } = await import("node:module");
  const { pbkdf2Sync } = await import("node:crypto");
  const requireE2E = createRequire(new URL("../../tests/e2e/lib/client.js", import.meta.url));
  const bitops = requireE2E(requireE2E.resolve("sasl-scram-sha-1/lib/bitops"));
  bitops.Hi = async (text, salt, iterations) => new Uint8Array(pbkdf2Sync(text, salt, iterations, 20, "sha1"));
}

// ------------------------------------------------------------------ settings

function intEnv(name, dflt, min = 1) {
  const v = process.env[name];
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}, got '${v}'`);
  return n;
}

const ROUNDS = intEnv("ROUNDS", 30);
const WARMUP = intEnv("WARMUP", 2, 0);
// Logins are cheap and their times bimodal on a busy machine: many rounds.
const LOGIN_ROUNDS = intEnv("LOGIN_ROUNDS", 5 * ROUNDS);
const SM_ROUNDS = intEnv("SM_ROUNDS", ROUNDS);
const IN_SERVER_CHUNK = intEnv("IN_SERVER_CHUNK", 5);
const SHELL_ROUNDS = intEnv("SHELL_ROUNDS", 5, 0);
const MEMORY_REQUESTS = intEnv("MEMORY_REQUESTS", 3000, 0);
const MEMORY_WINDOW = intEnv("MEMORY_WINDOW", 50);
const SEEDED = intEnv("SEEDED", 1000, 2); // records / grants of the big accounts (1000 for the figures; less only to try the script out)
const LEGACY_BINDS = intEnv("LEGACY_BINDS", 300, 0);
// The seeded accounts must keep their records on builds that cap them (issue 8: at most
// client_management_max_clients, default 100): the servers of the list, SM, login, memory,
// in-server and shell figures raise the cap. The legacy-bind servers keep every default.
const MAX_CLIENTS = intEnv("BENCH_MAX_CLIENTS", Math.max(10000, 4 * SEEDED));
const WITHOUT_MODULE = process.env.BENCH_WITHOUT_MODULE !== "0";
const ALL_PARTS = ["limits", "list", "sm", "memory", "inserver", "logins", "binds", "shell"];
const LIMIT_SIZES = (process.env.LIMIT_SIZES || "20,200,2000").split(",").map((x) => Number(x.trim())).filter((n) => Number.isInteger(n) && n >= 2);
const LIMIT_ROUNDS = intEnv("LIMIT_ROUNDS", ROUNDS);
const PARTS = new Set((process.env.BENCH_PARTS || ALL_PARTS.join(",")).split(",").map((x) => x.trim()).filter(Boolean));
for (const x of PARTS) if (!ALL_PARTS.includes(x)) throw new Error(`BENCH_PARTS: unknown part '${x}' (parts: ${ALL_PARTS.join(", ")})`);
const TIMEOUT_SCALE_SET = process.env.BENCH_TIMEOUT_SCALE ? Number(process.env.BENCH_TIMEOUT_SCALE) : null;
if (TIMEOUT_SCALE_SET !== null && !(TIMEOUT_SCALE_SET > 0)) throw new Error(`BENCH_TIMEOUT_SCALE must be a number > 0, got '${process.env.BENCH_TIMEOUT_SCALE}'`);
// Until the machine has been measured: three times the harness's waits.
process.env.E2E_TIMEOUT_SCALE = String(TIMEOUT_SCALE_SET ?? 3);

const log = (...a) => process.stderr.write(`# ${a.join(" ")}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const DAY = 86400;
const NS_SM = "urn:xmpp:sm:3";

// ------------------------------------------------------------------ statistics

function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const n = s.length;
  if (!n) return { n: 0, median: NaN, p25: NaN, p90: NaN, min: NaN, max: NaN };
  const median = n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  const rank = (q) => s[Math.max(0, Math.min(n - 1, Math.ceil(q * n) - 1))]; // nearest rank
  return { n, median, p25: rank(0.25), p90: rank(0.9), min: s[0], max: s[n - 1] };
}

const ms = (v, digits = 2) => (Number.isFinite(v) ? v.toFixed(digits) : "–");
const kib = (bytes) => (Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(1)} KiB` : "–");
const cell = (s, digits = 2) => (s && s.n ? `${ms(s.median, digits)} (${ms(s.p90, digits)})` : "–");
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : "–");
const signed = (v, digits = 2) => (Number.isFinite(v) ? `${v >= 0 ? "+" : ""}${v.toFixed(digits)}` : "–");

/** The order in which the servers take their turn in round `i`: alternating, against drift. */
const turn = (list, i) => (i % 2 ? [...list].reverse() : list);

/**
 * A random order for round `i` (the same in every run: BENCH_SEED), where more than two
 * targets take turns: alternating would put the same pairs next to each other every round.
 */
const SEED = intEnv("BENCH_SEED", 1, 0);
function shuffled(list, i) {
  let x = (SEED * 0x9e3779b1 + (i + 1) * 0x85ebca6b) >>> 0;
  const rand = () => {
    // mulberry32
    x = (x + 0x6d2b79f5) >>> 0;
    let t = x;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const a = [...list];
  for (let k = a.length - 1; k > 0; k--) {
    const j = Math.floor(rand() * (k + 1));
    [a[k], a[j]] = [a[j], a[k]];
  }
  return a;
}

// ------------------------------------------------------------------ machine and builds

let REPO = ".";
/** Every timed sample in the order taken, for BENCH_RAW=FILE (JSON). */
const RAW = { list: [], sm: [], logins: [], binds: [] };

/** 1-, 5-, 15-minute load averages: the machine may be shared with builds and tests. */
const loadAverage = () => os.loadavg().map((x) => x.toFixed(2)).join(" ");

function machine() {
  let cpu = "unknown";
  try {
    const info = fs.readFileSync("/proc/cpuinfo", "utf8");
    cpu = info.match(/^model name\s*:\s*(.*)$/m)?.[1]?.trim() ?? cpu;
  } catch {}
  let nproc = os.availableParallelism?.() ?? os.cpus().length;
  try {
    nproc = Number(execFileSync("nproc", { encoding: "utf8" }).trim());
  } catch {}
  return { nproc, cpu, memTotal: os.totalmem(), kernel: os.release(), node: process.version, loadStart: loadAverage() };
}

const sha12 = (file) => createHash("sha256").update(fs.readFileSync(file)).digest("hex").slice(0, 12);

/** What a build is: its files (hashes), BUILD-INFO (build-baseline.sh), the native core's version marker. */
function describeBuild(b) {
  const modDir = path.join(b.dir, "mod_client_management");
  const d = { files: "", native: null, luaVersion: null, info: null, commit: null, built: null };
  try {
    d.files = fs.readdirSync(modDir).sort().map((f) => `${f} ${sha12(path.join(modDir, f))}`).join(", ");
    d.built = fs.statSync(path.join(modDir, "client_management.so")).mtime.toISOString().replace(/\.\d{3}Z$/, "Z");
  } catch {}
  try {
    const so = fs.readFileSync(path.join(modDir, "client_management.so")).toString("latin1");
    d.native = so.match(/client_management native core (\S+) for Lua 5\.4/)?.[1] ?? null;
  } catch {}
  try {
    const lua = fs.readFileSync(path.join(modDir, "mod_client_management.lua"), "utf8");
    d.luaVersion = lua.match(/\bversion\s*=\s*"(\d+\.\d+\.\d+[^"]*)"/i)?.[1] ?? null;
  } catch {}
  try {
    const text = fs.readFileSync(path.join(b.dir, "BUILD-INFO"), "utf8");
    d.info = Object.fromEntries(text.split("\n").filter(Boolean).map((l) => {
      const i = l.indexOf(":");
      return [l.slice(0, i).trim(), l.slice(i + 1).trim()];
    }));
  } catch {}
  // A checkout's build/plugin (`make plugin`): the checkout's commit. It may have been built
  // from a working tree ahead of the commit, or from an older one.
  const checkout = path.basename(b.dir) === "plugin" && path.basename(path.dirname(b.dir)) === "build" ? path.dirname(path.dirname(b.dir)) : null;
  if (!d.info && checkout) {
    try {
      d.commit = execFileSync("git", ["-C", checkout, "rev-parse", "--short", "HEAD"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
      const dirty = execFileSync("git", ["-C", checkout, "status", "--porcelain", "--", "lua", "rust"], { encoding: "utf8" }).trim();
      d.commit = `checkout ${checkout} at ${d.commit}${dirty ? ", lua/ or rust/ modified" : ""} (the build may be of another state)`;
    } catch {}
  }
  return d;
}

/**
 * A private copy of a build for its server: a build directory rebuilt while the bench runs
 * (`make plugin`) must not change what is measured, and the prosody user must read it.
 */
function snapshot(b) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `cm-bench-${b.label}-`));
  fs.chmodSync(dir, 0o755);
  fs.cpSync(path.join(b.dir, "mod_client_management"), path.join(dir, "mod_client_management"), { recursive: true });
  const walk = (p) => {
    const st = fs.statSync(p);
    fs.chmodSync(p, st.isDirectory() ? 0o755 : (st.mode & 0o111 ? 0o755 : 0o644));
    if (st.isDirectory()) for (const e of fs.readdirSync(p)) walk(path.join(p, e));
  };
  walk(dir);
  return dir;
}

// ------------------------------------------------------------------ seeding (store files, no shell calls)

const SOFTWARE = ["Conversations", "Monal", "Gajim", "Dino", "Cheogram", "Siskin IM", "Movim", "Profanity", "Kaidan", "monocles chat"];
const DEVICE = ["Pixel 8", "iPhone 15", "ThinkPad X1", "Desktop", "Librem 5", "Galaxy S23", "MacBook Air"];

/**
 * `n` SASL2 client records as the module stores them (ARCHITECTURE.md §2), every one
 * with password access: SCRAM-SHA-1 used at last_seen, which is within the
 * last 30 days, after the account's password change (set to 60 days ago).
 */
function clientRecords(user, n, now, tag) {
  const records = {};
  for (let i = 0; i < n; i++) {
    const id = randomUUID();
    const last = now - ((i * 7919) % (30 * DAY));
    const first = last - ((i * 104729) % (365 * DAY));
    records[id] = {
      id,
      first_seen: first,
      last_seen: last,
      full_jid: `${user}@${HOST}/${tag}-${i}`,
      mechanisms: { "SCRAM-SHA-1": last },
      user_agent: { software: SOFTWARE[i % SOFTWARE.length], device: DEVICE[i % DEVICE.length] },
    };
  }
  return `return ${luaValue(records)};\n`;
}

/**
 * `n` grants in mod_tokenauth's own format (create_grant + create_token(…, "prosody:registered",
 * 30 days, "oauth2")), as the auth_tokens store file of `user`: grant ids like util.id.short(),
 * tokens keyed "sha256:" .. hex of an 18-byte secret (nobody logs in with these tokens; a grant
 * whose token a client must use would be made through mod_tokenauth). Created after the
 * password change, spread over the last 20 days.
 */
function grantStore(user, n, now) {
  const jid = `${user}@${HOST}`;
  const grants = {};
  for (let i = 1; i <= n; i++) {
    const id = randomBytes(9).toString("base64url");
    const app = i % 13;
    const created = now - ((i * 7919) % (20 * DAY));
    const secretHash = createHash("sha256").update(randomBytes(18)).digest("hex");
    grants[id] = {
      id,
      owner: jid,
      created,
      accessed: created,
      jid,
      data: {
        oauth2_client: { name: `OAuth App ${app}`, uri: `https://app${app}.invalid/`, id: `app-${app}`, version: `1.${i % 5}` },
        oauth2_scopes: "xmpp",
      },
      tokens: {
        [`sha256:${secretHash}`]: { role: "prosody:registered", created, expires: now + 30 * DAY, purpose: "oauth2" },
      },
    };
  }
  return `return ${luaValue(grants)};\n`;
}

/** Create accounts in one shell call; password changed 60 days ago (the seeded data is newer). */
async function createAccounts(server, accounts, now) {
  const users = Object.fromEntries(accounts.map((a) => [a.user, a.password]));
  return server.lua(`
    local um = require "prosody.core.usermanager";
    local store = require "prosody.core.storagemanager".open(${luaString(HOST)}, "accounts");
    for user, password in pairs(${luaValue(users)}) do
      assert(um.create_user(user, password, ${luaString(HOST)}));
      local account = assert(store:get(user), "no account record");
      account.updated = ${now - 60 * DAY};
      assert(store:set(user, account));
    end
    return true;`);
}

async function grantCounts(server, users) {
  return server.lua(`
    local tokenauth = assert(${server.moduleEnv("tokenauth")}, "mod_tokenauth not loaded");
    local r = {};
    for _, user in ipairs(${luaValue(users)}) do
      local n = 0; for _ in pairs(tokenauth.get_user_grants(user) or {}) do n = n + 1; end
      r[#r + 1] = n;
    end
    return r;`);
}

// ------------------------------------------------------------------ raw socket metering

/**
 * Takes over the 'data' events of a logged-in Session's socket: xmpp.js's
 * parser (and the Session's rawChunks) see nothing while it is attached, so
 * the time measured is the socket's, not the parser's, and gigabytes of replies
 * are not kept. restore() hands the socket back (between whole stanzas).
 *
 * With stream management enabled (enableSm), it counts the replies it sees (the only
 * stanzas the server sends such a session here) and answers the server's <r/> with
 * <a h=…/>, so mod_smacks's queue is acked after every reply.
 */
class RawMeter {
  constructor(session) {
    this.session = session;
    this.sock = session.xmpp.socket;
    this.saved = this.sock.listeners("data");
    for (const l of this.saved) this.sock.removeListener("data", l);
    this.sock.setNoDelay(true);
    this.handler = null;
    this.sm = false;
    this.h = 0; // stanzas received since <enabled/>
    this.rCount = 0; // <r/> answered
    this.rTail = "";
    this.rWaiter = null;
    this.onData = (d) => {
      const now = performance.now();
      if (this.handler) this.handler(d, now);
      if (this.sm) this.answerAckRequests(d);
    };
    this.sock.on("data", this.onData);
  }

  restore() {
    this.sock.removeListener("data", this.onData);
    for (const l of this.saved) this.sock.on("data", l);
  }

  answerAckRequests(d) {
    const s = this.rTail + d.toString("latin1");
    const re = /<r\s+xmlns=(['"])urn:xmpp:sm:3\1\s*\/>/g;
    for (let m = re.exec(s); m; m = re.exec(s)) {
      if (m.index + m[0].length <= this.rTail.length) continue; // seen with the previous chunk
      this.sock.write(`<a xmlns='${NS_SM}' h='${this.h}'/>`);
      this.rCount++;
      if (this.rWaiter) this.rWaiter();
    }
    this.rTail = s.slice(-40);
  }

  /** XEP-0198 <enable resume='true'/> on this (bound) stream; resolves once <enabled/> came. */
  enableSm() {
    return new Promise((resolve, reject) => {
      let received = "";
      const timer = setTimeout(() => {
        this.handler = null;
        reject(new Error(`no <enabled/> within ${scaled(10000)} ms`));
      }, scaled(10000));
      this.handler = (d) => {
        received += d.toString("latin1");
        if (/<failed\b/.test(received)) {
          clearTimeout(timer);
          this.handler = null;
          reject(new Error(`stream management refused: ${received.slice(0, 300)}`));
        } else if (/<enabled\b[^>]*>/.test(received)) {
          clearTimeout(timer);
          this.handler = null;
          this.sm = true;
          resolve(received.match(/<enabled\b[^>]*>/)[0]);
        }
      };
      this.sock.write(`<enable xmlns='${NS_SM}' resume='true'/>`);
    });
  }

  /**
   * After a reply, with stream management: wait until the server's <r/> for it has been
   * answered (mod_smacks asks once the reply has been written), or ack unasked after a
   * while. Then a short pause, taken with and without stream management alike.
   */
  async settle(rBefore) {
    if (this.sm && this.rCount === rBefore) {
      await new Promise((resolve) => {
        const t = setTimeout(() => {
          this.rWaiter = null;
          this.sock.write(`<a xmlns='${NS_SM}' h='${this.h}'/>`);
          resolve();
        }, scaled(1000));
        this.rWaiter = () => {
          clearTimeout(t);
          this.rWaiter = null;
          resolve();
        };
      });
    }
    await sleep(2);
  }

  /**
   * Write an iq (a list in `ns`, or the request element `child`); resolve { ms, bytes, clients,
   * type, reply } when its closing </iq> has arrived. Its cost per chunk does not grow with the
   * reply: each chunk is searched alone (with the last 4 bytes of the one before) for the end,
   * and the chunks are joined once, after the time is taken.
   */
  roundTrip(id, ns, child = null) {
    const to = this.session.bareJid;
    const text = `<iq type='get' id='${id}' to='${to}'>${child ?? `<list xmlns='${ns}'/>`}</iq>`;
    const idRe = new RegExp(`<iq\\b[^>]*\\bid=(['"])${id}\\1[^>]*>`);
    const timeout = scaled(30000);
    return new Promise((resolve, reject) => {
      const chunks = [];
      let head = ""; // what came before the reply's start tag was found (normally one chunk)
      let tail = ""; // the last 4 bytes so far: "</iq>" may straddle two chunks
      let total = 0;
      let start = -1;
      let startTag = null;
      const timer = setTimeout(() => {
        this.handler = null;
        reject(new Error(`no reply to iq ${id} within ${timeout / 1000} s: ${(head || chunks.join("")).slice(0, 300)}`));
      }, timeout);
      this.handler = (d, now) => {
        const s = d.toString("latin1"); // byte for byte; the markers are ASCII
        const base = total;
        total += s.length;
        chunks.push(s);
        let end = -1;
        if (start < 0) {
          head += s;
          const m = idRe.exec(head);
          if (!m) {
            if (/<stream:error\b|<\/stream:stream>/.test(head)) {
              clearTimeout(timer);
              this.handler = null;
              reject(new Error(`stream closed while waiting for iq ${id}: ${head.slice(0, 500)}`));
            }
            tail = head.slice(-4);
            return;
          }
          start = m.index; // head starts at the first byte received
          startTag = m[0];
          end = head.indexOf("</iq>", start);
          head = "";
        } else {
          const e = (tail + s).indexOf("</iq>");
          if (e >= 0) end = base - tail.length + e;
        }
        tail = (tail + s).slice(-4);
        if (end < 0) return;
        clearTimeout(timer);
        this.handler = null;
        if (this.sm) this.h++;
        const reply = chunks.join("").slice(start, end + 5);
        resolve({
          ms: now - t0,
          bytes: reply.length,
          clients: (reply.match(/<client[\s/>]/g) || []).length,
          type: startTag.match(/\btype=(['"])(\w+)\1/)?.[2],
          reply,
        });
      };
      const t0 = performance.now();
      this.sock.write(text);
    });
  }

  /**
   * `total` list iqs (namespaces alternating), `window` outstanding at a
   * time; counts the replies' closing tags. → { ms, replies, errors, bytes }.
   */
  pump(total, window, prefix) {
    const to = this.session.bareJid;
    const nss = [NS_MC, NS_CAM];
    const iqText = (i) => `<iq type='get' id='${prefix}-${i}' to='${to}'><list xmlns='${nss[i % 2]}'/></iq>`;
    return new Promise((resolve, reject) => {
      if (total === 0) {
        resolve({ ms: 0, replies: 0, errors: 0, bytes: 0 });
        return;
      }
      let sent = 0;
      let replies = 0;
      let errors = 0;
      let bytes = 0;
      let tail = "";
      let lastProgress = performance.now();
      const sendUpTo = (n) => {
        let batch = "";
        while (sent < total && sent - replies < n) batch += iqText(sent++);
        if (batch) this.sock.write(batch);
      };
      const count = (s, pattern) => {
        // matches not lying wholly inside the carried-over tail
        let n = 0;
        for (let i = s.indexOf(pattern); i !== -1; i = s.indexOf(pattern, i + 1)) {
          if (i + pattern.length > tail.length) n++;
        }
        return n;
      };
      const stall = scaled(30000);
      const watchdog = setInterval(() => {
        if (performance.now() - lastProgress > stall) {
          clearInterval(watchdog);
          this.handler = null;
          reject(new Error(`pipelined listing stalled at ${replies}/${total} replies`));
        }
      }, 1000);
      const t0 = performance.now();
      this.handler = (d) => {
        bytes += d.length;
        const s = tail + d.toString("latin1");
        const got = count(s, "</iq>");
        errors += count(s, "type='error'");
        tail = s.slice(-12);
        if (got) {
          replies += got;
          lastProgress = performance.now();
        }
        if (replies >= total) {
          clearInterval(watchdog);
          this.handler = null;
          resolve({ ms: performance.now() - t0, replies, errors, bytes });
        } else if (got) {
          sendUpTo(window);
        }
      };
      sendUpTo(window);
    });
  }
}

// ------------------------------------------------------------------ in-server Lua

/** Fire the list event `rounds` (+ warm-up) times inside the server; per-round times in ms. */
function inServerLua(server, user, ns, rounds, warmup) {
  return server.lua(`
    local st = require "prosody.util.stanza";
    local time = require "prosody.util.time";
    local um = require "prosody.core.usermanager";
    local host = ${luaString(HOST)};
    local user = ${luaString(user)};
    local ns = ${luaString(ns)};
    local events = prosody.hosts[host].events;
    local mod = ${server.moduleEnv("client_management")};
    local bare = user.."@"..host;
    local reply;
    local origin = {
      username = user, host = host, type = "c2s", full_jid = bare.."/bench-in-server",
      role = um.get_user_role(user, host),
      send = function (s) reply = s; return true; end,
    };
    local handler, serialize, api = {}, {}, {};
    local bytes, clients, reply_type;
    for i = 1, ${rounds + warmup} do
      local iq = st.iq({ type = "get", id = "bench-"..i, to = bare, from = origin.full_jid })
        :tag("list", { xmlns = ns }):up();
      reply = nil;
      local t0 = time.now();
      local handled = events.fire_event("iq-get/self/"..ns..":list", { origin = origin, stanza = iq });
      local t1 = time.now();
      local text = tostring(reply);
      local t2 = time.now();
      assert(handled and reply, "list event not handled");
      reply_type = reply.attr.type;
      if i > ${warmup} then
        handler[#handler + 1] = (t1 - t0) * 1000;
        serialize[#serialize + 1] = (t2 - t1) * 1000;
      end
      bytes = #text;
    end
    clients = 0;
    local list = reply.tags[1];
    for _ in (list and list:childtags("client") or function () end) do clients = clients + 1; end
    -- The public API, in a loop of its own (its garbage is not charged to the handler's rounds).
    for i = 1, ${rounds + warmup} do
      local t0 = time.now();
      local entries = mod.get_active_clients(user);
      local t1 = time.now();
      assert(type(entries) == "table", "get_active_clients returned no table");
      if i > ${warmup} then api[#api + 1] = (t1 - t0) * 1000; end
    end
    -- The same with the collector stopped: the module's and the serializer's own work, without
    -- the GC steps their allocations trigger (Prosody's incremental GC charges them to whoever
    -- allocates).
    local handler_nogc, serialize_nogc = {}, {};
    collectgarbage("collect");
    collectgarbage("stop");
    local ok, err = pcall(function ()
      for i = 1, ${rounds} do
        local iq = st.iq({ type = "get", id = "bench-nogc-"..i, to = bare, from = origin.full_jid })
          :tag("list", { xmlns = ns }):up();
        local t0 = time.now();
        events.fire_event("iq-get/self/"..ns..":list", { origin = origin, stanza = iq });
        local t1 = time.now();
        local _ = tostring(reply);
        local t2 = time.now();
        handler_nogc[i] = (t1 - t0) * 1000;
        serialize_nogc[i] = (t2 - t1) * 1000;
      end
    end);
    collectgarbage("restart");
    collectgarbage("collect");
    assert(ok, err);
    return { handler = handler, serialize = serialize, api = api, bytes = bytes, clients = clients, type = reply_type,
      handler_nogc = handler_nogc, serialize_nogc = serialize_nogc };`);
}

async function memorySnapshot(server) {
  const lua = await server.lua(`
    collectgarbage("collect"); collectgarbage("collect");
    return collectgarbage("count");`);
  let rssKiB = NaN;
  try {
    const status = fs.readFileSync(`/proc/${server.proc.pid}/status`, "utf8");
    rssKiB = Number(status.match(/^VmRSS:\s*(\d+)\s*kB/m)?.[1]);
  } catch {}
  return { luaKiB: lua, rssKiB };
}

async function timeShell(server, args) {
  const t0 = performance.now();
  const res = await server.shell(args);
  return { ms: performance.now() - t0, res };
}

/** connect → online, in ms; the session is closed afterwards (not timed). */
async function timedLogin(server, opts) {
  const t0 = performance.now();
  const session = await login(server, opts);
  const t = performance.now() - t0;
  await session.close();
  return t;
}

const fileSize = (file) => {
  try {
    return fs.statSync(file).size;
  } catch {
    return null; // no file
  }
};

/** Records in an account's clients store (as stored), how many are legacy, and what the module lists. */
async function storedClients(server, user) {
  const r = await server.lua(`
    local store = require "prosody.core.storagemanager".open(${luaString(HOST)}, "clients");
    local records, legacy = 0, 0;
    for _, record in pairs(store:get(${luaString(user)}) or {}) do
      records = records + 1;
      if type(record) == "table" and record.legacy then legacy = legacy + 1; end
    end
    local mod = ${server.moduleEnv("client_management")};
    local listed;
    if mod and mod.get_active_clients then
      local entries = mod.get_active_clients(${luaString(user)});
      if type(entries) == "table" then listed = 0; for _ in pairs(entries) do listed = listed + 1; end end
    end
    return { records = records, legacy = legacy, listed = listed };`);
  return {
    ...r,
    // File sizes only mean something on internal storage (one file per account and store).
    clientsBytes: server.storage === "internal" ? fileSize(server.internalStoreFile("clients", user)) : null,
    legacyBytes: server.storage === "internal" ? fileSize(server.internalStoreFile("client_management_legacy", user)) : null,
  };
}

// ------------------------------------------------------------------ main

export async function main({ repo }) {
  REPO = repo;
  const started = performance.now();
  const report = { machine: machine(), date: new Date().toISOString().replace(/\.\d{3}Z$/, "Z"), phases: [] };
  const phase = (name) => {
    const p = { name, load: loadAverage(), t0: performance.now() };
    report.phases.push(p);
    log(`${name} (load average ${p.load})`);
    return p;
  };
  const builds = parseBuilds(repo).map((b) => ({ ...b, describe: describeBuild(b) }));
  log(`mod_client_management e2e benchmark; builds: ${builds.map((b) => `${b.label}=${b.dir}`).join(", ")}${WITHOUT_MODULE ? " (+ a server without the module)" : ""}`);
  report.builds = builds;

  const servers = []; // every server started, for stopping
  const snapshots = [];
  try {
    // ---------------------------------------------------------- servers
    let p = phase("starting servers");
    for (const b of builds) {
      b.snap = snapshot(b);
      snapshots.push(b.snap);
      b.server = await startServer({ pluginPaths: [b.snap], allowMissingModule: true, options: { client_management_max_clients: MAX_CLIENTS, client_management_requests_per_minute: 0 } });
      servers.push(b.server);
    }
    const bare = WITHOUT_MODULE ? await startServer({ withoutModules: ["client_management"] }) : null;
    if (bare) servers.push(bare);

    // How slow is this machine? An empty prosodyctl shell call takes 40–100 ms on the reference
    // machine (2 EPYC cores, shared); the harness's waits grow with it (never below 3×).
    const probe = [];
    for (let i = 0; i < 3; i++) probe.push((await timeShell(builds[0].server, "> return 1")).ms);
    const probeMs = stats(probe).median;
    report.timeoutScale = TIMEOUT_SCALE_SET ?? Math.max(3, Math.ceil((3 * probeMs) / 100));
    process.env.E2E_TIMEOUT_SCALE = String(report.timeoutScale);
    report.shellProbeMs = probeMs;
    log(`  empty prosodyctl shell call: ${ms(probeMs, 0)} ms; harness waits × ${report.timeoutScale}`);

    for (const s of servers) {
      const withModule = s !== bare;
      const info = await s.lua(`
        local cm = require "prosody.core.configmanager";
        local ns = cm.get("*", "network_settings") or {};
        return {
          version = prosody.version, lua = _VERSION,
          backend = require "prosody.net.server".get_backend and require "prosody.net.server".get_backend() or "?",
          nagle = ns.nagle,
          module_loaded = ${s.moduleEnv("client_management")} ~= nil,
          module_path = ${s.moduleEnv("client_management")} and ${s.moduleEnv("client_management")}.module.path or nil,
          log_level = ${luaString(process.env.E2E_LOG_LEVEL)},
          gc = cm.get("*", "gc") or "Prosody default (incremental, threshold 105, speed 500)",
        };`);
      if (info.nagle !== false) throw new Error(`the harness config does not set network_settings = { nagle = false } (got ${JSON.stringify(info.nagle)})`);
      if (withModule && !info.module_loaded) throw new Error(`mod_client_management is not loaded on the server of ${builds.find((b) => b.server === s)?.label}`);
      if (!withModule && info.module_loaded) throw new Error("mod_client_management is loaded on the server meant to run without it");
      s.info = info;
    }
    report.server = builds[0].server.info;
    for (const b of builds) log(`  ${b.label}: Prosody ${b.server.info.version} (${b.server.info.lua}, ${b.server.info.backend}), module ${b.server.info.module_path}`);

    if (PARTS.has("limits")) {
      phase("limits: ours, C, D, community module; both GC modes");
      await measureLimits({ builds, report, servers, password: `pw-lim-${randomBytes(6).toString("hex")}`, now: Math.floor(Date.now() / 1000) });
    }

    // ---------------------------------------------------------- accounts and data
    p = phase("seeding (store files)");
    const now = Math.floor(Date.now() / 1000);
    const password = `pw-${randomBytes(6).toString("hex")}`;
    const acct = (user) => ({ user, password, jid: `${user}@${HOST}` });
    // The same names on every server: the stores of the builds are alike, file for file.
    const A = Object.fromEntries(["n11", "g1001", "r1001", "b2001", "sm1001", "login0", "login1000", "legacy", "none"]
      .map((k) => [k, acct(`bench-${k}`)]));
    for (const b of builds) {
      const s = b.server;
      await createAccounts(s, Object.values(A), now);
      await s.seedStore("clients", A.n11.user, clientRecords(A.n11.user, 10, now, "n11"));
      await s.seedStore("clients", A.r1001.user, clientRecords(A.r1001.user, SEEDED, now, "r"));
      await s.seedStore("clients", A.b2001.user, clientRecords(A.b2001.user, SEEDED, now, "b"));
      await s.seedStore("clients", A.login1000.user, clientRecords(A.login1000.user, SEEDED, now, "l"));
      // Two measuring clients (with and without stream management) make the N.
      await s.seedStore("clients", A.sm1001.user, clientRecords(A.sm1001.user, SEEDED - 1, now, "s"));
      await s.seedStore("auth_tokens", A.g1001.user, grantStore(A.g1001.user, SEEDED, now));
      await s.seedStore("auth_tokens", A.b2001.user, grantStore(A.b2001.user, SEEDED, now));
      const [g, bg] = await grantCounts(s, [A.g1001.user, A.b2001.user]);
      if (g !== SEEDED || bg !== SEEDED) throw new Error(`${b.label}: mod_tokenauth sees ${g} and ${bg} grants, ${SEEDED} were written`);
      log(`  ${b.label}: accounts, ${SEEDED} records ×4, ${SEEDED} grants ×2 (mod_tokenauth sees ${g}, ${bg})`);
    }
    if (bare) {
      // The same two login accounts as on the builds' servers, so that every server takes the
      // same share of the logins (a server that idles more answers more slowly); Prosody
      // without the module never reads the records file.
      await createAccounts(bare, [A.login0, A.login1000], now);
      await bare.seedStore("clients", A.login1000.user, clientRecords(A.login1000.user, SEEDED, now, "l"));
    }
    report.seedSeconds = (performance.now() - p.t0) / 1000;

    // ---------------------------------------------------------- 1. round trip
    const configs = [
      { key: "n11", label: "10 SASL2 records + client", n: 11, account: A.n11 },
      { key: "g1001", label: `${SEEDED} grants + client`, n: SEEDED + 1, account: A.g1001 },
      { key: "r1001", label: `${SEEDED} SASL2 records + client`, n: SEEDED + 1, account: A.r1001 },
      { key: "b2001", label: `${SEEDED} records + ${SEEDED} grants + client`, n: 2 * SEEDED + 1, account: A.b2001 },
    ];
    const sessions = []; // closed at the end
    const listSessions = {}; // key → label → session
    // The measuring client of an account: SASL2 + Bind 2 with a client id, so it is one of the N.
    const measuringSession = async (c, b) => {
      listSessions[c.key] ??= {};
      if (!listSessions[c.key][b.label]) {
        const session = await login(b.server, {
          username: c.account.user, password: c.account.password,
          userAgent: { id: `bench-measure-${c.key}`, software: "e2e bench", device: "loopback" },
        });
        sessions.push(session);
        listSessions[c.key][b.label] = session;
      }
      return listSessions[c.key][b.label];
    };
    if (PARTS.has("list")) p = phase("list round trip");
    for (const c of PARTS.has("list") ? configs : []) {
      const row = { ...c, ns: {}, byBuild: {} };
      for (const b of builds) {
        const session = await measuringSession(c, b);
        // Cold: the first list request of the account loads its stored facts.
        const meter = new RawMeter(session);
        const cold = await meter.roundTrip(`bench-cold-${c.key}`, NS_MC);
        meter.restore();
        // Verify with a real parser before timing: N <client/> in both namespaces.
        const parsed = {};
        for (const ns of [NS_MC, NS_CAM]) parsed[ns] = (await listClients(session, { ns })).clients.length;
        row.byBuild[b.label] = { cold: cold.ms, parsed };
        log(`  ${c.key} ${b.label}: cold ${ms(cold.ms)} ms, ${cold.bytes} B; <client> parsed ${parsed[NS_MC]} (prosody ns), ${parsed[NS_CAM]} (cam); expected ${c.n}`);
      }
      const meters = Object.fromEntries(builds.map((b) => [b.label, new RawMeter(listSessions[c.key][b.label])]));
      const samples = {};
      const last = {};
      for (let i = 0; i < WARMUP + ROUNDS; i++) {
        for (const ns of [NS_MC, NS_CAM]) {
          for (const b of turn(builds, i)) {
            const r = await meters[b.label].roundTrip(`bench-${c.key}-${ns === NS_MC ? "mc" : "cam"}-${i}`, ns);
            if (r.type !== "result") throw new Error(`${b.label}: list of ${c.key} answered ${r.type}: ${r.reply.slice(0, 500)}`);
            const k = `${ns} ${b.label}`;
            (samples[k] ??= []);
            if (i >= WARMUP) samples[k].push(r.ms);
            RAW.list.push({ config: c.key, round: i, ns: nsName(ns), build: b.label, ms: r.ms });
            last[k] = r;
          }
        }
      }
      for (const m of Object.values(meters)) m.restore();
      for (const ns of [NS_MC, NS_CAM]) {
        const line = { ...c, ns, builds: {} };
        for (const b of builds) {
          const k = `${ns} ${b.label}`;
          line.builds[b.label] = {
            stats: stats(samples[k]), bytes: last[k].bytes, clients: last[k].clients,
            parsed: row.byBuild[b.label].parsed[ns], cold: ns === NS_MC ? row.byBuild[b.label].cold : NaN,
          };
        }
        (report.roundTrip ??= []).push(line);
        log(`  ${c.key} ${ns}: ${builds.map((b) => `${b.label} ${cell(line.builds[b.label].stats)} ms, ${line.builds[b.label].bytes} B`).join("; ")}`);
      }
    }

    // ---------------------------------------------------------- 2. stream management
    if (PARTS.has("sm")) {
      p = phase("list with XEP-0198 stream management");
      report.sm = { rows: [], enabled: {} };
      const pairs = {};
      for (const b of builds) {
        const opts = (id) => ({ username: A.sm1001.user, password: A.sm1001.password, userAgent: { id, software: "e2e bench", device: "loopback" } });
        const plain = await login(b.server, opts("bench-sm-off"));
        const smSession = await login(b.server, opts("bench-sm-on"));
        sessions.push(plain, smSession);
        const parsed = (await listClients(plain, { ns: NS_MC })).clients.length;
        const off = new RawMeter(plain);
        const on = new RawMeter(smSession);
        report.sm.enabled[b.label] = await on.enableSm();
        pairs[b.label] = { off, on, parsed };
        log(`  ${b.label}: ${parsed} <client> listed (expected ${SEEDED + 1}); ${report.sm.enabled[b.label]}`);
      }
      const samples = {};
      const last = {};
      for (let i = 0; i < WARMUP + SM_ROUNDS; i++) {
        for (const ns of [NS_MC, NS_CAM]) {
          for (const b of turn(builds, i)) {
            for (const mode of turn(["off", "on"], i + (b === builds[0] ? 0 : 1))) {
              const meter = pairs[b.label][mode];
              const rBefore = meter.rCount;
              const r = await meter.roundTrip(`bench-sm-${mode}-${ns === NS_MC ? "mc" : "cam"}-${i}`, ns);
              if (r.type !== "result") throw new Error(`${b.label}: list (SM ${mode}) answered ${r.type}: ${r.reply.slice(0, 500)}`);
              await meter.settle(rBefore);
              const k = `${ns} ${b.label} ${mode}`;
              (samples[k] ??= []);
              if (i >= WARMUP) samples[k].push(r.ms);
              RAW.sm.push({ round: i, ns: nsName(ns), build: b.label, sm: mode, ms: r.ms });
              last[k] = r;
            }
          }
        }
      }
      for (const b of builds) {
        const { off, on, parsed } = pairs[b.label];
        report.sm.acks ??= {};
        report.sm.acks[b.label] = { h: on.h, r: on.rCount };
        off.restore();
        on.restore();
        for (const ns of [NS_MC, NS_CAM]) {
          const row = report.sm.rows.find((x) => x.ns === ns) ?? (report.sm.rows.push({ ns, builds: {} }), report.sm.rows.at(-1));
          row.builds[b.label] = {
            off: stats(samples[`${ns} ${b.label} off`]), on: stats(samples[`${ns} ${b.label} on`]),
            bytes: last[`${ns} ${b.label} on`].bytes, clients: last[`${ns} ${b.label} on`].clients, parsed,
          };
        }
        log(`  ${b.label}: ${report.sm.rows.map((r) => `${r.ns} without ${cell(r.builds[b.label].off)} ms, with SM ${cell(r.builds[b.label].on)} ms`).join("; ")}; server asked for ${on.rCount} acks, h=${on.h}`);
      }
    }

    // ---------------------------------------------------------- 3. logins (before the heavy parts below)
    if (PARTS.has("logins")) {
      p = phase("logins");
      const loginKinds = [
        { key: "sasl2", label: "SASL2 (SCRAM-SHA-1) + Bind 2" },
        { key: "fast", label: "SASL2 FAST (HT-SHA-256-NONE) + Bind 2" },
        { key: "legacy", label: "legacy SASL (SCRAM-SHA-1) + resource bind" },
      ];
      // Where logins are measured: each build's accounts with 0 and SEEDED stored records, and
      // the account of the server without the module.
      const targets = [];
      for (const b of builds) {
        targets.push({ key: `${b.label}/0`, label: b.label, stored: 0, server: b.server, account: A.login0 });
        targets.push({ key: `${b.label}/${SEEDED}`, label: b.label, stored: SEEDED, server: b.server, account: A.login1000 });
      }
      if (bare) {
        targets.push({ key: "none/0", label: "none", stored: 0, server: bare, account: A.login0 });
        targets.push({ key: `none/${SEEDED}`, label: "none", stored: SEEDED, server: bare, account: A.login1000 });
      }
      const ua = (kind, t) => ({ id: `bench-login-${kind}-${t.stored}`, software: "e2e bench", device: "loopback" });
      const loginOpts = (kind, t) => {
        const base = { username: t.account.user, timeout: scaled(10000) };
        if (kind === "sasl2") return { ...base, password: t.account.password, userAgent: ua(kind, t) };
        if (kind === "fast") return { ...base, fast: t.fast, userAgent: ua(kind, t) };
        return { ...base, password: t.account.password, sasl2: false, resource: `bench-legacy-${t.stored}` };
      };
      for (const t of targets) {
        // A FAST token to begin with (a password login that requests one).
        t.fast = { token: null };
        const s = await login(t.server, { username: t.account.user, password: t.account.password, fast: t.fast, userAgent: ua("fast", t) });
        await s.close();
        if (!t.fast.token) throw new Error(`no FAST token issued to ${t.account.user} (${t.key})`);
      }
      const loginSamples = {};
      for (let round = 0; round < WARMUP + LOGIN_ROUNDS; round++) {
        for (const k of loginKinds) {
          for (const t of shuffled(targets, round)) {
            const ms_ = await timedLogin(t.server, loginOpts(k.key, t));
            (loginSamples[`${k.key} ${t.key}`] ??= []);
            if (round >= WARMUP) loginSamples[`${k.key} ${t.key}`].push(ms_);
            RAW.logins.push({ round, kind: k.key, target: t.key, ms: ms_, at: performance.now() });
            await sleep(10);
          }
        }
      }
      report.logins = loginKinds.map((k) => ({
        ...k,
        none: bare ? stats(loginSamples[`${k.key} none/0`]) : null,
        none1: bare ? stats(loginSamples[`${k.key} none/${SEEDED}`]) : null,
        builds: Object.fromEntries(builds.map((b) => [b.label, {
          s0: stats(loginSamples[`${k.key} ${b.label}/0`]),
          s1: stats(loginSamples[`${k.key} ${b.label}/${SEEDED}`]),
        }])),
      }));
      for (const x of report.logins) {
        log(`  ${x.key}: ${x.none ? `without module ${cell(x.none)} ms; ` : ""}${builds.map((b) => `${b.label} 0 stored ${cell(x.builds[b.label].s0)} ms, ${SEEDED} stored ${cell(x.builds[b.label].s1)} ms`).join("; ")}`);
      }
      report.loginStored = {};
      for (const b of builds) {
        report.loginStored[b.label] = [(await storedClients(b.server, A.login0.user)).records, (await storedClients(b.server, A.login1000.user)).records];
      }
    }

    // ---------------------------------------------------------- 4. legacy random-resource binds (issue 8)
    if (PARTS.has("binds") && LEGACY_BINDS > 0) {
      p = phase(`legacy binds: ${LEGACY_BINDS} legacy SASL logins per build, each with a new random resource (servers with the default options)`);
      // One more server per build, with the module's defaults (the cap among them).
      for (const b of builds) {
        b.bindServer = await startServer({ pluginPaths: [b.snap], allowMissingModule: true });
        servers.push(b.bindServer);
        await createAccounts(b.bindServer, [A.legacy], now);
      }
      const mid = Math.round(LEGACY_BINDS / 3);
      const checkpoints = [...new Set([0, mid, LEGACY_BINDS])];
      const lb = { checkpoints: [], samples: {}, mid };
      for (const b of builds) lb.samples[b.label] = [];
      const check = async (binds, note = "") => {
        const point = { binds, note, builds: {} };
        for (const b of builds) point.builds[b.label] = await storedClients(b.bindServer, A.legacy.user);
        lb.checkpoints.push(point);
        log(`  after ${binds} binds${note ? ` ${note}` : ""}: ${builds.map((b) => {
          const x = point.builds[b.label];
          return `${b.label} ${x.records} records (listed ${x.listed ?? "–"}), clients file ${x.clientsBytes ?? "none"} B, legacy index ${x.legacyBytes ?? "none"} B`;
        }).join("; ")}`);
      };
      await check(0);
      for (let i = 1; i <= LEGACY_BINDS; i++) {
        for (const b of turn(builds, i)) {
          const resource = `bench-${randomBytes(6).toString("hex")}`;
          const t = await timedLogin(b.bindServer, { username: A.legacy.user, password: A.legacy.password, sasl2: false, resource, timeout: scaled(10000) });
          lb.samples[b.label].push(t);
          RAW.binds.push({ bind: i, build: b.label, ms: t });
        }
        if (i !== LEGACY_BINDS && checkpoints.includes(i)) await check(i);
      }
      if (LEGACY_BINDS > 0) {
        await check(LEGACY_BINDS);
        // Batched writes (client_management_write_delay, 10 s by default) land by then.
        await sleep(10000 + scaled(2000));
        await check(LEGACY_BINDS, "(+12 s, batched writes done)");
      }
      const windows = [[0, Math.min(10, LEGACY_BINDS)], [Math.max(0, mid - 5), Math.min(LEGACY_BINDS, mid + 5)], [Math.max(0, LEGACY_BINDS - 10), LEGACY_BINDS]]
        .filter(([a, z], i, all) => z > a && all.findIndex(([a2, z2]) => a2 === a && z2 === z) === i);
      lb.windows = windows.map(([a, z]) => ({ from: a, to: z, builds: Object.fromEntries(builds.map((b) => [b.label, stats(lb.samples[b.label].slice(a, z))])) }));
      lb.all = Object.fromEntries(builds.map((b) => [b.label, stats(lb.samples[b.label])]));
      for (const w of lb.windows) log(`  logins ${w.from}–${w.to}: ${builds.map((b) => `${b.label} ${cell(w.builds[b.label])} ms`).join("; ")}`);
      report.legacyBinds = lb;
      for (const b of builds) {
        (report.bindWarnings ??= {})[b.label] = b.bindServer.logSince(0, ["warn", "error"]);
        await b.bindServer.stop();
        servers.splice(servers.indexOf(b.bindServer), 1);
      }
    }

    // ---------------------------------------------------------- 5. memory (before the in-server rounds: their GC-stopped rounds raise the RSS high-water mark)
    if (PARTS.has("memory") && MEMORY_REQUESTS > 0) {
      p = phase(`memory: ${MEMORY_REQUESTS} list requests per build at N=${SEEDED + 1} (records), ${MEMORY_WINDOW} outstanding`);
      report.memory = {};
      // Snapshots before and after each quarter: a leak grows with the requests, an allocator's
      // high-water mark (send buffers of up to MEMORY_WINDOW replies) levels off.
      for (const b of builds) {
        report.memory[b.label] = { points: [{ label: "before", requests: 0, ...(await memorySnapshot(b.server)) }], replies: 0, errors: 0, ms: 0, bytes: 0 };
      }
      for (let q = 1, done = 0; q <= 4; q++) {
        const upTo = Math.round((MEMORY_REQUESTS * q) / 4);
        for (const b of turn(builds, q)) {
          const mem = report.memory[b.label];
          const meter = new RawMeter(await measuringSession(configs[2], b));
          const part = await meter.pump(upTo - done, MEMORY_WINDOW, `mem-${q}`);
          meter.restore();
          for (const k of ["replies", "errors", "ms", "bytes"]) mem[k] += part[k];
          mem.points.push({ label: q === 4 ? "after" : `${q}/4`, requests: upTo, ...(await memorySnapshot(b.server)) });
        }
        done = upTo;
      }
      for (const b of builds) {
        const mem = report.memory[b.label];
        log(`  ${b.label}: ${mem.points.map((x) => `${x.label} Lua ${x.luaKiB.toFixed(0)} KiB RSS ${x.rssKiB} KiB`).join("; ")}; ${mem.replies} replies (${mem.errors} errors) in ${(mem.ms / 1000).toFixed(1)} s`);
      }
    }

    // ---------------------------------------------------------- 6. in-server
    if (PARTS.has("inserver")) p = phase("in-server listing");
    for (const c of PARTS.has("inserver") ? configs : []) {
      for (const ns of [NS_MC, NS_CAM]) {
        const acc = Object.fromEntries(builds.map((b) => [b.label, { handler: [], serialize: [], api: [], handler_nogc: [], serialize_nogc: [] }]));
        const chunks = Math.ceil(ROUNDS / IN_SERVER_CHUNK);
        for (let k = 0; k < chunks; k++) {
          const rounds = Math.min(IN_SERVER_CHUNK, ROUNDS - k * IN_SERVER_CHUNK);
          for (const b of turn(builds, k)) {
            const r = await inServerLua(b.server, c.account.user, ns, rounds, k === 0 ? WARMUP : 0);
            if (r.type !== "result") throw new Error(`${b.label}: in-server list of ${c.key} answered ${r.type}`);
            const a = acc[b.label];
            for (const f of ["handler", "serialize", "api", "handler_nogc", "serialize_nogc"]) a[f].push(...(r[f] ?? []));
            a.bytes = r.bytes;
            a.clients = r.clients;
          }
        }
        const row = { ...c, ns, builds: {} };
        for (const b of builds) {
          const a = acc[b.label];
          row.builds[b.label] = {
            handler: stats(a.handler), serialize: stats(a.serialize), api: stats(a.api),
            handlerNoGc: stats(a.handler_nogc), serializeNoGc: stats(a.serialize_nogc), bytes: a.bytes, clients: a.clients,
          };
        }
        (report.inServer ??= []).push(row);
        log(`  ${c.key} ${ns}: ${builds.map((b) => `${b.label} handler ${cell(row.builds[b.label].handler)} ms, tostring ${ms(row.builds[b.label].serialize.median)} ms`).join("; ")}`);
      }
    }

    // ---------------------------------------------------------- 7. shell
    if (PARTS.has("shell") && SHELL_ROUNDS > 0) p = phase("shell");
    const shellCases = (b) => {
      const cases = [
        { key: "empty", label: "`shell \"> return 1\"` (empty)", args: "> return 1" },
        { key: "builtin", label: "`shell server version` (built-in command)", args: ["server", "version"] },
        { key: "none", label: "`shell user clients` (account without clients)", args: ["user", "clients", A.none.jid], n: 0 },
        { key: "r1001", label: `\`shell user clients\` (${SEEDED} records + client)`, args: ["user", "clients", A.r1001.jid], n: SEEDED + 1 },
        { key: "g1001", label: `\`shell user clients\` (${SEEDED} grants + client)`, args: ["user", "clients", A.g1001.jid], n: SEEDED + 1 },
      ];
      // As much console output as `user clients` prints for 1001 entries, from plain print():
      // what the admin socket and prosodyctl take to carry it, without the module.
      const { lines, width } = b.shellShape;
      cases.splice(1, 0, {
        key: "print", label: `\`shell "> print()"\` ×${lines} lines of ${width} chars (output only)`,
        args: `> for i = 1, ${lines} do print(("x"):rep(${width})) end return 1`,
      }, {
        key: "print1", label: `\`shell "> print()"\` once, the same ${lines} lines joined`,
        args: `> local t = {} for i = 1, ${lines} do t[i] = ("x"):rep(${width}) end print(table.concat(t, "\\n")) return 1`,
      });
      return cases;
    };
    if (PARTS.has("shell") && SHELL_ROUNDS > 0) {
      report.shell = {};
      for (const b of builds) {
        const { res } = await timeShell(b.server, ["user", "clients", A.r1001.jid]);
        const lines = res.stdout.split("\n").length;
        b.shellShape = { lines, width: Math.max(1, Math.round(Buffer.byteLength(res.stdout) / lines) - 1) };
        b.shellCases = shellCases(b);
        b.shellSamples = Object.fromEntries(b.shellCases.map((c) => [c.key, []]));
        b.shellOut = {};
      }
      for (let round = 0; round < 1 + SHELL_ROUNDS; round++) {
        for (const b of turn(builds, round)) {
          for (const c of b.shellCases) {
            const { ms: t, res } = await timeShell(b.server, c.args);
            if (res.code !== 0) throw new Error(`${b.label}: prosodyctl shell ${JSON.stringify(c.args)} exited ${res.code}: ${res.stderr}${res.stdout.slice(-500)}`);
            if (round > 0) b.shellSamples[c.key].push(t);
            b.shellOut[c.key] = res.stdout;
          }
        }
      }
      for (const b of builds) {
        report.shell[b.label] = b.shellCases.map((c) => {
          const s = stats(b.shellSamples[c.key]);
          const out = b.shellOut[c.key];
          const summary = c.n === undefined ? ""
            : (out.match(/(\d+) client\(s\)/)?.[0] ?? out.match(/No clients associated with this account/)?.[0] ?? `no count line: ${out.trim().slice(-80)}`);
          log(`  ${b.label} ${c.key}: ${cell(s, 1)} ms ${summary}`);
          return { key: c.key, label: c.label, n: c.n, stats: s, summary, bytes: Buffer.byteLength(out) };
        });
      }
    }

    for (const s of sessions) await s.close();
    report.serverWarnings = {};
    for (const b of builds) report.serverWarnings[b.label] = b.server.logSince(0, ["warn", "error"]);
    for (const [label, lines] of Object.entries(report.bindWarnings ?? {})) report.serverWarnings[`${label}, legacy binds`] = lines;
    if (bare) report.serverWarnings["without module"] = bare.logSince(0, ["warn", "error"]);
  } finally {
    for (const s of servers) await s.stop();
    for (const d of snapshots) fs.rmSync(d, { recursive: true, force: true });
  }
  for (let i = 0; i < report.phases.length; i++) {
    const end = report.phases[i + 1]?.t0 ?? performance.now();
    report.phases[i].seconds = (end - report.phases[i].t0) / 1000;
  }
  report.seconds = (performance.now() - started) / 1000;
  report.loadEnd = loadAverage();

  const md = render(report);
  process.stdout.write(md);
  const out = process.env.BENCH_REPORT ? path.resolve(process.env.BENCH_REPORT) : path.join(repo, "build", "bench", "e2e.md");
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, md);
  if (process.env.BENCH_RAW) fs.writeFileSync(path.resolve(process.env.BENCH_RAW), JSON.stringify(RAW));
  log(`written to ${out} (${report.seconds.toFixed(0)} s)`);
}

/**
 * Part 0 (issue 16): ours, C, D and the community module at LIMIT_SIZES, under both GC modes,
 * all interleaved round by round; then the Lua memory one list allocates. See limits.js.
 */
async function measureLimits({ builds, report, servers, password, now }) {
  const community = communityDir();
  const out = { sizes: LIMIT_SIZES, modes: [], community: community.dir, communityWhy: community.why, samples: {}, alloc: {}, counts: {} };
  report.limits = out;
  if (!community.dir) log(`  community module column skipped: ${community.why} (BENCH_COMMUNITY=DIR holding mod_client_management/)`);
  const users = Object.fromEntries(LIMIT_SIZES.map((n) => [n, { user: `bench-lim${n}`, password, jid: `bench-lim${n}@${HOST}` }]));
  const targets = []; // { key, mode, kind: ours|C|D|community, build?, server, sessions: n → RawMeter }
  const limitServers = [];
  for (const mode of GC_MODES) {
    out.modes.push(mode);
    const options = { client_management_max_clients: MAX_CLIENTS, client_management_requests_per_minute: 0 };
    const started = [];
    for (const b of builds) {
      const server = await startServer({
        pluginPaths: [b.snap, LIMITS_PLUGINS], allowMissingModule: true, extraModules: ["bench_limits"],
        options, globalOptions: mode.globalOptions,
      });
      started.push({ server, build: b.label });
    }
    if (community.dir) {
      const server = await startServer({ pluginPaths: [community.dir], allowMissingModule: true, globalOptions: mode.globalOptions });
      started.push({ server, build: null });
    }
    for (const { server, build } of started) {
      servers.push(server);
      limitServers.push(server);
      await createAccounts(server, Object.values(users), now);
      // N − 2 records and the two measuring clients (one with XEP-0198 stream management).
      for (const n of LIMIT_SIZES) await server.seedStore("clients", users[n].user, clientRecords(users[n].user, n - 2, now, `lim${n}`));
      const gc = await server.lua(`return require "prosody.core.configmanager".get("*", "gc") or "default";`);
      const meters = {};
      const smMeters = {};
      for (const n of LIMIT_SIZES) {
        const smSession = await login(server, {
          username: users[n].user, password, userAgent: { id: `bench-limits-sm-${n}`, software: "e2e bench", device: "loopback" },
        });
        smMeters[n] = new RawMeter(smSession);
        await smMeters[n].enableSm();
        const session = await login(server, {
          username: users[n].user, password, userAgent: { id: `bench-limits-${n}`, software: "e2e bench", device: "loopback" },
        });
        const listed = (await listClients(session, { ns: NS_MC })).clients.length;
        out.counts[`${mode.key} ${build ?? "community"} ${n}`] = listed;
        if (listed !== n) throw new Error(`${build ?? "community"} (${mode.key} GC): the account of ${n} lists ${listed} clients`);
        out.filters ??= {};
        out.filters[`${mode.key} ${build ?? "community"} ${n}`] = await server.lua(`
          local count = {};
          for _, s in pairs(prosody.full_sessions) do
            local f = s.filters and s.filters["stanzas/out"];
            count[s.smacks and "sm" or "plain"] = f and #f or 0;
          end
          return count;`);
        meters[n] = new RawMeter(session);
        if (build) {
          const held = await server.lua(holdLua({ HOST, luaString, user: users[n].user, ns: NS_MC, moduleEnv: (m) => server.moduleEnv(m) }));
          log(`  ${mode.key} GC (${JSON.stringify(gc)}), ${build}: ${n} entries listed; C and D hold ${held} bytes`);
        } else {
          log(`  ${mode.key} GC (${JSON.stringify(gc)}), community module: ${n} entries listed`);
        }
      }
      const kinds = build ? ["ours", "ours+SM", "C", "D"] : ["community"];
      for (const kind of kinds) {
        const label = build ? (kind === "ours" ? build : kind === "ours+SM" ? `${build}, SM` : `${kind} (${build})`) : "community";
        targets.push({ key: `${mode.key} ${label}`, mode: mode.key, label, kind, server, meters: kind === "ours+SM" ? smMeters : meters });
      }
      if (!build) targets.at(-1).extra = smMeters; // connected, not measured
    }
  }
  // One size at a time: the collector's debt a request leaves on its server is paid by the next
  // request there, so requests of one size are timed next to requests of the same size only.
  for (const n of LIMIT_SIZES) {
    for (let i = 0; i < WARMUP + LIMIT_ROUNDS; i++) {
      for (const t of turn(targets, i)) {
        const child = t.kind === "C" ? limitRequest("stanza") : t.kind === "D" ? limitRequest("string") : null;
        const rBefore = t.meters[n].rCount;
        const r = await t.meters[n].roundTrip(`bench-lim-${n}-${i}`, NS_MC, child);
        if (t.meters[n].sm) await t.meters[n].settle(rBefore); // the <r/> answered before the next request
        if (r.type !== "result" || r.clients !== n) throw new Error(`${t.key}: ${n} entries answered ${r.type} with ${r.clients} <client/>: ${r.reply.slice(0, 300)}`);
        if (i >= WARMUP) (out.samples[`${t.key} ${n}`] ??= []).push(r.ms);
        RAW.list.push({ config: `limits-${n}`, round: i, gc: t.mode, target: t.label, ms: r.ms, bytes: r.bytes });
      }
      if (i % 10 === 9) log(`  ${n} entries: round ${i + 1}/${WARMUP + LIMIT_ROUNDS}`);
    }
  }
  out.targets = targets.map((t) => ({ key: t.key, mode: t.mode, label: t.label, kind: t.kind }));
  out.stats = Object.fromEntries(Object.entries(out.samples).map(([k, v]) => [k, stats(v)]));
  // Memory one list allocates (collector stopped), ours and the community module's.
  for (const t of targets.filter((x) => x.kind === "ours" || x.kind === "community")) {
    for (const n of LIMIT_SIZES) {
      for (const reader of [false, true]) {
        out.alloc[`${t.key} ${n}${reader ? " reader" : ""}`] = await t.server.lua(allocatedLua({ HOST, luaString, user: users[n].user, ns: NS_MC, reader }));
      }
    }
  }
  // The meters keep the sockets (xmpp.js's parser never sees these streams again): cut them.
  for (const t of targets) for (const m of [...Object.values(t.meters), ...Object.values(t.extra ?? {})]) m.sock.destroy();
  for (const s of limitServers) {
    await s.stop();
    servers.splice(servers.indexOf(s), 1);
  }
}

function renderLimits(L, x) {
  L.push("### 0. Limits: ours, C, D and the community module (issue 16)");
  L.push("");
  L.push("List round trip (iq written → `</iq>` read), prosody namespace, N entries. "
    + "C: the same server answering with a pre-built util.stanza reply of identical content (Prosody's serialisation and the write); "
    + "D: the same reply already serialised (the socket path alone). All targets of both GC modes interleaved round by round. Median (p90), ms.");
  L.push(x.community ? `Community module: \`${x.community}\`.` : `Community module: not measured (${x.communityWhy}).`);
  L.push("The account has N − 2 SASL2 records and two measuring clients: one without stream management (its stream has no `stanzas/out` filter: "
    + "the module writes its XML without a util.stanza tree), one with XEP-0198 enabled (mod_smacks's filter: the module builds the util.stanza reply, "
    + "mod_smacks clones it into its queue, the module serialises it; the client acks each reply before the next request). "
    + `\`stanzas/out\` filters on the measuring streams: ${JSON.stringify(x.filters ? Object.values(x.filters).at(-1) : {})}.`);
  L.push("");
  for (const mode of x.modes) {
    const ts = x.targets.filter((t) => t.mode === mode.key);
    const ours = ts.filter((t) => t.kind === "ours");
    const lastOurs = ours.at(-1);
    const cOf = ts.filter((t) => t.kind === "C").at(-1);
    const dOf = ts.filter((t) => t.kind === "D").at(-1);
    const comm = ts.find((t) => t.kind === "community");
    L.push(`#### ${mode.label}`);
    L.push("");
    L.push(`| N | ${ts.map((t) => t.label).join(" | ")} | ${lastOurs.label}/C | ${lastOurs.label}/D |${comm ? ` community/${lastOurs.label} |` : ""}`);
    L.push(`|---:|${ts.map(() => "---:|").join("")}---:|---:|${comm ? "---:|" : ""}`);
    for (const n of x.sizes) {
      const med = (t) => x.stats[`${t.key} ${n}`]?.median;
      L.push(`| ${n} | ${ts.map((t) => cell(x.stats[`${t.key} ${n}`])).join(" | ")} | ${ratio(med(lastOurs), med(cOf))} | ${ratio(med(lastOurs), med(dOf))} |${comm ? ` ${ratio(med(comm), med(lastOurs))} |` : ""}`);
    }
    L.push("");
  }
  L.push("Lua memory allocated by one list request (collector stopped: handler, `stanzas/out` filters, serialisation), KiB, on a stream made by "
    + "Prosody's session manager over a fake connection: without any `stanzas/out` filter / with one filter that reads every stanza:");
  L.push("");
  const allocTargets = x.targets.filter((t) => t.kind === "ours" || t.kind === "community");
  L.push(`| N | ${allocTargets.map((t) => `${t.label} (${t.mode})`).join(" | ")} | reply bytes |`);
  L.push(`|---:|${allocTargets.map(() => "---:|").join("")}---:|`);
  const kib = (a) => (a ? a.kib.toFixed(0) : "–");
  for (const n of x.sizes) {
    const cells = allocTargets.map((t) => `${kib(x.alloc[`${t.key} ${n}`])} / ${kib(x.alloc[`${t.key} ${n} reader`])}`);
    const bytes = x.alloc[`${allocTargets[0].key} ${n}`]?.bytes;
    L.push(`| ${n} | ${cells.join(" | ")} | ${bytes ?? "–"} |`);
  }
  L.push("");
}

// ------------------------------------------------------------------ report

const nsName = (ns) => (ns === NS_MC ? "prosody" : "cam:0");

function render(r) {
  const L = [];
  const m = r.machine;
  const builds = r.builds;
  const labels = builds.map((b) => b.label);
  const first = labels[0];
  const lastL = labels.at(-1);
  const several = labels.length > 1;
  const ratioHead = several ? ` ${lastL}/${first} |` : "";
  const ratioSep = several ? "---:|" : "";
  const ratioOf = (get) => (several ? ` ${ratio(get(lastL), get(first))} |` : "");

  L.push("## End-to-end benchmark (benches/e2e)");
  L.push("");
  L.push(`- date: ${r.date}`);
  L.push(`- machine: ${m.nproc} × ${m.cpu}, ${(m.memTotal / 2 ** 30).toFixed(1)} GiB, Linux ${m.kernel}`);
  L.push(`- load average (1/5/15 min): ${m.loadStart} at the start, ${r.loadEnd} at the end; per part below`);
  L.push(`- Prosody ${r.server?.version} (${r.server?.lua}, net backend ${r.server?.backend}), \`network_settings = { nagle = false }\`, log level ${r.server?.log_level}, ${STORAGE} storage (E2E_STORAGE); client: Node.js ${m.node}, @xmpp/client 0.14 on loopback, TCP_NODELAY${SCRAM_NATIVE ? ", SCRAM Hi() by node:crypto PBKDF2" : ", xmpp.js's own SCRAM Hi()"}`);
  L.push(`- Lua GC: ${typeof r.server?.gc === "string" ? r.server.gc : JSON.stringify(r.server?.gc)}`);
  L.push(`- settings: ROUNDS=${ROUNDS} (+${WARMUP} warm-up), LOGIN_ROUNDS=${LOGIN_ROUNDS}, SM_ROUNDS=${SM_ROUNDS}, IN_SERVER_CHUNK=${IN_SERVER_CHUNK}, SHELL_ROUNDS=${SHELL_ROUNDS}, MEMORY_REQUESTS=${MEMORY_REQUESTS}, SEEDED=${SEEDED}, LEGACY_BINDS=${LEGACY_BINDS}; harness waits × ${r.timeoutScale} (empty shell call ${ms(r.shellProbeMs, 0)} ms)`);
  L.push(`- total run time ${r.seconds.toFixed(0)} s (seeding ${r.seedSeconds?.toFixed(1)} s); servers: one per build${WITHOUT_MODULE ? " and one without the module" : ""}, all running during the whole run, measured in turn (round by round, order alternating; logins in a seeded random order)`);
  L.push(`- \`client_management_max_clients = ${MAX_CLIENTS}\` and \`client_management_requests_per_minute = 0\` (no per-stream budget: the measuring client makes thousands of requests) on the servers of every part but the legacy binds (builds that cap records at the default 100 would otherwise drop the seeded ones); the legacy-bind servers (one per build, started for that part) run with the module's defaults`);
  L.push("- seeded by writing store files: SASL2 records with password access (SCRAM-SHA-1 within the last 30 days, password changed 60 days ago), mod_tokenauth grants in its own format with one \"oauth2\" token each; the measuring client (SASL2 + Bind 2, with a client id) is one of the N");
  L.push("- figures: median (p90) in ms over n samples; ratios are of medians. The machine is shared: compare builds within a run, not across runs.");
  L.push("");
  L.push("Builds:");
  L.push("");
  L.push("| build | directory | commit | native core | .so modified | files (sha256) |");
  L.push("|---|---|---|---|---|---|");
  for (const b of builds) {
    const d = b.describe;
    const commit = d.info ? `${d.info.revision ?? ""} ${d.info.commit?.slice(0, 10) ?? ""} “${d.info.subject ?? ""}”`.trim() : (d.commit ?? "–");
    L.push(`| ${b.label} | \`${b.dir}\` | ${commit} | ${d.native ?? "(no marker)"}${d.luaVersion ? `, Lua file ${d.luaVersion}` : ""} | ${d.built ?? "–"} | ${d.files} |`);
  }
  L.push("");
  L.push("Parts: " + r.phases.map((p) => `${p.name.split(":")[0]} ${p.seconds.toFixed(0)} s (load ${p.load.split(" ")[0]})`).join("; ") + ".");
  L.push("");

  // 0
  if (r.limits) renderLimits(L, r.limits);

  // 1
  if (r.roundTrip) {
    L.push(`### 1. List round trip (socket: iq written → closing \`</iq>\` received), n = ${ROUNDS} per cell`);
    L.push("");
    L.push(`| N | data | namespace | \`<client>\` | reply | ${labels.map((l) => `${l}: median (p90) ms | ${l}: first (cold) ms`).join(" | ")} |${ratioHead}`);
    L.push(`|---:|---|---|---:|---:|${labels.map(() => "---:|---:|").join("")}${ratioSep}`);
    for (const x of r.roundTrip) {
      const counts = labels.map((l) => x.builds[l]);
      const ok = counts.every((c) => c.clients === x.n && c.parsed === x.n);
      const countNote = ok ? `${x.n}` : counts.map((c, i) => `${labels[i]}: ${c.clients} (parsed ${c.parsed})`).join(", ") + ` (expected ${x.n}!)`;
      L.push(`| ${x.n} | ${x.label} | ${nsName(x.ns)} | ${countNote} | ${labels.map((l) => kib(x.builds[l].bytes)).join(" / ")} | ${labels.map((l) => `${cell(x.builds[l].stats)} | ${ms(x.builds[l].cold)}`).join(" | ")} |${ratioOf((l) => x.builds[l].stats.median)}`);
    }
    L.push("");
    L.push("References (issue 5): targets ≤ 3 ms at N = 11, ≤ 25 ms at 1001, ≤ 50 ms at 2001; the community module took ~2 ms at 11, 127–162 ms at 1001.");
    L.push("");
  }

  // 2
  if (r.sm) {
    L.push(`### 2. List with XEP-0198 stream management (N = ${SEEDED + 1}: ${SEEDED - 1} SASL2 records + 2 measuring clients), n = ${SM_ROUNDS} per cell`);
    L.push("");
    L.push(`The same account, two sessions: one without stream management, one with \`<enable resume='true'/>\` (mod_smacks clones every outgoing stanza into its queue). The SM client answers each \`<r/>\` with \`<a h/>\` before the next request (the queue never holds more than one reply); both wait 2 ms between requests.`);
    L.push("");
    L.push(`| namespace | reply | ${labels.map((l) => `${l}: without SM | ${l}: with SM | ${l}: SM/without`).join(" | ")} |${several ? ` with SM ${lastL}/${first} |` : ""}`);
    L.push(`|---|---:|${labels.map(() => "---:|---:|---:|").join("")}${ratioSep}`);
    for (const x of r.sm.rows) {
      L.push(`| ${nsName(x.ns)} | ${labels.map((l) => kib(x.builds[l].bytes)).join(" / ")} | ${labels.map((l) => `${cell(x.builds[l].off)} | ${cell(x.builds[l].on)} | ${ratio(x.builds[l].on.median, x.builds[l].off.median)}`).join(" | ")} |${ratioOf((l) => x.builds[l].on.median)}`);
    }
    L.push("");
    L.push(`Listed \`<client>\`: ${labels.map((l) => `${l} ${r.sm.rows[0].builds[l].parsed}`).join(", ")} (expected ${SEEDED + 1}). Acks: ${labels.map((l) => `${l} ${r.sm.acks[l].r} \`<r/>\` answered, h = ${r.sm.acks[l].h}`).join("; ")}.`);
    L.push("");
  }

  // 3
  if (r.inServer) {
    L.push(`### 3. In-server listing (Lua, \`fire_event("iq-get/self/<ns>:list")\` with a fake origin), n = ${ROUNDS} per cell`);
    L.push("");
    L.push(`handler = facts + core + reply stanza built (\`origin.send\` only keeps it); tostring = serialization of that reply (what c2s does before writing); get_active_clients = the public API (facts + core decision, Lua tables, no stanza); "no GC" = handler with \`collectgarbage("stop")\`, i.e. without the collector steps its allocations trigger. Rounds run in prosodyctl calls of ${IN_SERVER_CHUNK}, builds taking turns.`);
    L.push("");
    L.push(`| N | data | namespace | ${labels.map((l) => `${l}: handler | ${l}: tostring | ${l}: get_active_clients | ${l}: handler, no GC`).join(" | ")} |${several ? ` handler ${lastL}/${first} |` : ""}`);
    L.push(`|---:|---|---|${labels.map(() => "---:|---:|---:|---:|").join("")}${ratioSep}`);
    for (const x of r.inServer) {
      const notes = labels.filter((l) => x.builds[l].clients !== x.n).map((l) => `${l}: ${x.builds[l].clients} <client>!`);
      L.push(`| ${x.n} | ${x.label}${notes.length ? ` (${notes.join(", ")})` : ""} | ${nsName(x.ns)} | ${labels.map((l) => `${cell(x.builds[l].handler)} | ${cell(x.builds[l].serialize)} | ${cell(x.builds[l].api)} | ${cell(x.builds[l].handlerNoGc)}`).join(" | ")} |${ratioOf((l) => x.builds[l].handler.median)}`);
    }
    L.push("");
    L.push("References (issue 5): handler ≤ 5 ms at N = 1001; the community module took 55–63 ms.");
    L.push("");
  }

  // 4
  if (r.logins) {
    L.push(`### 4. Login cost (connect → online), n = ${LOGIN_ROUNDS} per cell`);
    L.push("");
    L.push(`Accounts with 0 and ${SEEDED} stored client records on each build's server${WITHOUT_MODULE ? ", and the same two accounts on the same Prosody without mod_client_management (\"no module\"; it never reads the records), so that every server takes the same share of logins" : ""}; each round, every login kind on every target in a random order (the same in every run, \`BENCH_SEED\`). Fixed client ids and resource, so the accounts only gain the bench's own records.`);
    L.push("");
    const loginTable = (q, cellOf) => {
      const noneHead = WITHOUT_MODULE ? ` no module: 0 | no module: ${SEEDED} (file unused) |` : "";
      L.push(`| login |${noneHead} ${labels.map((l) => `${l}: 0 stored |${WITHOUT_MODULE ? ` ${l}: 0 stored / no module |` : ""} ${l}: ${SEEDED} stored | ${l}: Δ ${SEEDED} − 0`).join(" | ")} |${several ? ` 0 stored ${lastL}/${first} | ${SEEDED} stored ${lastL}/${first} |` : ""}`);
      L.push(`|---|${WITHOUT_MODULE ? "---:|---:|" : ""}${labels.map(() => (WITHOUT_MODULE ? "---:|---:|---:|---:|" : "---:|---:|---:|")).join("")}${several ? "---:|---:|" : ""}`);
      for (const x of r.logins) {
        const cells = labels.map((l) => {
          const { s0, s1 } = x.builds[l];
          return `${cellOf(s0)} |${WITHOUT_MODULE ? ` ${ratio(s0[q], x.none?.[q])} |` : ""} ${cellOf(s1)} | ${signed(s1[q] - s0[q])}`;
        });
        L.push(`| ${x.label} |${WITHOUT_MODULE ? ` ${cellOf(x.none)} | ${cellOf(x.none1)} |` : ""} ${cells.join(" | ")} |${several ? ` ${ratio(x.builds[lastL].s0[q], x.builds[first].s0[q])} | ${ratio(x.builds[lastL].s1[q], x.builds[first].s1[q])} |` : ""}`);
      }
      L.push("");
    };
    loginTable("median", (st) => cell(st));
    L.push(`Stored records afterwards (0 / ${SEEDED} account): ${labels.map((l) => `${l} ${r.loginStored[l].join(" / ")}`).join(", ")}. On a busy machine login times are bimodal (a fast mode of a few ms, and a slow one, e.g. when another process holds the core or a server's CPU has gone idle), and a median moves with the share of slow logins: identical builds have shown median ratios from 0.6× to 1.75× at n = 60, within about ±10 % at n = 150 (the default). Differences of a few tenths of a millisecond need several runs (samples: \`BENCH_RAW\`).`);
    L.push("");
  }

  // 5
  const lb = r.legacyBinds;
  if (lb) {
    L.push(`### 5. Legacy random-resource binds (issue 8): one account, ${LEGACY_BINDS} legacy SASL (SCRAM-SHA-1) logins + resource binds, each with a new random resource`);
    L.push("");
    L.push("Login time (connect → online) over windows of the sequence; builds take turns bind by bind, each on its own server.");
    L.push("");
    L.push(`| logins | ${labels.map((l) => `${l}: median (p90) ms`).join(" | ")} |${ratioHead}`);
    L.push(`|---|${labels.map(() => "---:|").join("")}${ratioSep}`);
    for (const w of lb.windows) {
      L.push(`| ${w.from}–${w.to} (n = ${w.to - w.from}) | ${labels.map((l) => cell(w.builds[l])).join(" | ")} |${ratioOf((l) => w.builds[l].median)}`);
    }
    L.push(`| all ${LEGACY_BINDS} | ${labels.map((l) => cell(lb.all[l])).join(" | ")} |${ratioOf((l) => lb.all[l].median)}`);
    L.push("");
    L.push(`Storage of the account (internal storage: \`data/localhost/clients/USER.dat\`, \`data/localhost/client_management_legacy/USER.dat\`); records = entries of the clients store as stored, listed = entries of \`get_active_clients\`:`);
    L.push("");
    L.push(`| after binds | ${labels.map((l) => `${l}: records (legacy) | ${l}: listed | ${l}: clients file | ${l}: client_management_legacy file`).join(" | ")} |`);
    L.push(`|---|${labels.map(() => "---:|---:|---:|---:|").join("")}`);
    for (const c of lb.checkpoints) {
      L.push(`| ${c.binds}${c.note ? ` ${c.note}` : ""} | ${labels.map((l) => {
        const x = c.builds[l];
        return `${x.records} (${x.legacy}) | ${x.listed ?? "–"} | ${x.clientsBytes === null ? "no file" : kib(x.clientsBytes)} | ${x.legacyBytes === null ? "no file" : kib(x.legacyBytes)}`;
      }).join(" | ")} |`);
    }
    L.push("");
  }

  // 6
  if (r.shell) {
    L.push(`### 6. Shell (\`prosodyctl shell …\` wall time), n = ${SHELL_ROUNDS} per cell`);
    L.push("");
    L.push(`| command | ${labels.map((l) => `${l}: median (p90) ms | ${l}: Δ vs empty | ${l}: output`).join(" | ")} |${ratioHead}`);
    L.push(`|---|${labels.map(() => "---:|---:|---|").join("")}${ratioSep}`);
    const rows = r.shell[first];
    rows.forEach((x, i) => {
      const cells = labels.map((l) => {
        const y = r.shell[l][i];
        const empty = r.shell[l].find((z) => z.key === "empty");
        const d = y.key === "empty" ? "–" : signed(y.stats.median - empty.stats.median, 1);
        const outp = y.n !== undefined || y.key.startsWith("print") ? `${y.summary ? `${y.summary}, ` : ""}${kib(y.bytes)}` : "";
        return `${cell(y.stats, 1)} | ${d} | ${outp}`;
      });
      L.push(`| ${x.label} | ${cells.join(" | ")} |${ratioOf((l) => r.shell[l][i].stats.median)}`);
    });
    L.push("");
    L.push("References (issue 5): `user clients` at N = 1001 within 20 ms of the empty command; the print rows are what the admin socket and prosodyctl take to carry as much output as that build's `user clients` printed.");
    L.push("");
  }

  // 7
  if (r.memory) {
    L.push(`### 7. Memory (${MEMORY_REQUESTS} list requests per build at N=${SEEDED + 1}, ${SEEDED} records + client, namespaces alternating, ${MEMORY_WINDOW} outstanding; builds take turns by quarter)`);
    L.push("");
    L.push(`| point | requests | ${labels.map((l) => `${l}: Lua memory after full GC | ${l}: VmRSS`).join(" | ")} |`);
    L.push(`|---|---:|${labels.map(() => "---:|---:|").join("")}`);
    const pts = r.memory[first].points;
    pts.forEach((p0, i) => {
      L.push(`| ${p0.label} | ${p0.requests} | ${labels.map((l) => {
        const p = r.memory[l].points[i];
        return `${p.luaKiB.toFixed(0)} KiB | ${p.rssKiB} KiB`;
      }).join(" | ")} |`);
    });
    L.push("");
    for (const l of labels) {
      const mem = r.memory[l];
      const [b, , h, , a] = mem.points;
      L.push(`- ${l}: Δ Lua ${signed(a.luaKiB - b.luaKiB, 0)} KiB over all, ${signed(a.luaKiB - h.luaKiB, 0)} KiB over the second half; Δ RSS ${signed(a.rssKiB - b.rssKiB, 0)} KiB (second half ${signed(a.rssKiB - h.rssKiB, 0)} KiB); ${mem.errors} error replies; ${(mem.bytes / 1048576).toFixed(0)} MiB in ${(mem.ms / 1000).toFixed(1)} s = ${(mem.replies / (mem.ms / 1000)).toFixed(0)} lists/s.`);
    }
    L.push("");
    L.push("RSS also holds Prosody's send buffers (up to the outstanding replies) and the allocator keeps its high-water mark: growth that levels off is not a leak; Lua memory growing over the second half would be.");
    L.push("");
  }

  for (const [label, lines] of Object.entries(r.serverWarnings ?? {})) {
    if (lines.length) {
      L.push(`Prosody (${label}) logged ${lines.length} warning/error line(s); first: \`${lines[0].replace(/`/g, "'").slice(0, 300)}\``);
      L.push("");
    }
  }
  return `${L.join("\n")}\n`;
}
