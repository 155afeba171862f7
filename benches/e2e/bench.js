// End-to-end benchmark of mod_client_management: one real Prosody 13 (the
// tests/e2e harness), seeded accounts, a real client. Started by run.js.
// Progress goes to stderr, the report (markdown) to stdout and to
// build/bench/e2e.md. Slowness never fails it; only a broken setup does.

import { execFileSync, execFile } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";

// The harness reads E2E_LOG_LEVEL when it writes the config: a benchmark logs
// like a production server (info), not at the tests' default (debug).
process.env.E2E_LOG_LEVEL = process.env.BENCH_LOG_LEVEL || process.env.E2E_LOG_LEVEL || "info";

const { startServer, luaString, luaValue, HOST, MODULE_FILE, STORAGE } = await import("../../tests/e2e/lib/server.js");
const { login } = await import("../../tests/e2e/lib/client.js");
const { listClients, NS_MC, NS_CAM } = await import("../../tests/e2e/lib/manage.js");

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

const ROUNDS = intEnv("ROUNDS", 20);
const WARMUP = intEnv("WARMUP", 2, 0);
const LOGIN_ROUNDS = intEnv("LOGIN_ROUNDS", ROUNDS);
const SHELL_ROUNDS = intEnv("SHELL_ROUNDS", 10);
const MEMORY_REQUESTS = intEnv("MEMORY_REQUESTS", 10000, 0);
const MEMORY_WINDOW = intEnv("MEMORY_WINDOW", 50);
const SEEDED = intEnv("SEEDED", 1000); // records / grants of the big accounts (1000 for the figures; less only to try the script out)

const log = (...a) => process.stderr.write(`# ${a.join(" ")}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ statistics

function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const n = s.length;
  if (!n) return { n: 0, median: NaN, p90: NaN, min: NaN, max: NaN };
  const median = n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  const p90 = s[Math.min(n - 1, Math.ceil(0.9 * n) - 1)]; // nearest rank
  return { n, median, p90, min: s[0], max: s[n - 1] };
}

const ms = (v, digits = 2) => (Number.isFinite(v) ? v.toFixed(digits) : "–");
const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;
const yesNo = (ok) => (ok ? "yes" : "**no**");

// ------------------------------------------------------------------ machine

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
  let commit = "unknown";
  try {
    commit = execFileSync("git", ["-C", REPO, "rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["-C", REPO, "status", "--porcelain", "--", "lua", "rust"], { encoding: "utf8" }).trim();
    if (dirty) commit += " (lua/ or rust/ modified)";
  } catch {}
  // What Prosody loads: build/plugin may be rebuilt from a working tree ahead of the commit.
  let plugin = "";
  try {
    const dir = path.dirname(MODULE_FILE);
    plugin = fs.readdirSync(dir).sort().map((f) => {
      const hash = createHash("sha256").update(fs.readFileSync(path.join(dir, f))).digest("hex").slice(0, 12);
      return `${f} ${hash}`;
    }).join(", ");
  } catch {}
  return { nproc, cpu, commit, plugin, memTotal: os.totalmem(), kernel: os.release(), node: process.version, loadStart: loadAverage() };
}

let REPO = ".";

/** 1-, 5-, 15-minute load averages: the machine may be shared with builds and tests. */
const loadAverage = () => os.loadavg().map((x) => x.toFixed(2)).join(" ");

// ------------------------------------------------------------------ seeding

const SOFTWARE = ["Conversations", "Monal", "Gajim", "Dino", "Cheogram", "Siskin IM", "Movim", "Profanity", "Kaidan", "monocles chat"];
const DEVICE = ["Pixel 8", "iPhone 15", "ThinkPad X1", "Desktop", "Librem 5", "Galaxy S23", "MacBook Air"];
const DAY = 86400;

/**
 * `n` SASL2 client records as the module stores them (SPEC §2), every one
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

/** Create `n` grants (mod_tokenauth, with an "oauth2" token each) in shell calls of `chunk` (the harness's shell times out after 30 s). */
async function createGrants(server, user, n, chunk = 100) {
  const jid = `${user}@${HOST}`;
  for (let done = 0; done < n; done += chunk) {
    const count = Math.min(chunk, n - done);
    await server.lua(`
      local tokenauth = assert(${server.moduleEnv("tokenauth")}, "mod_tokenauth not loaded");
      local jid = ${luaString(jid)};
      for i = ${done + 1}, ${done + count} do
        local app = i % 13;
        local grant = assert(tokenauth.create_grant(jid, jid, nil, {
          oauth2_client = { name = "OAuth App "..app, uri = "https://app"..app..".invalid/", id = "app-"..app, version = "1."..(i % 5) };
          oauth2_scopes = "xmpp";
        }));
        assert(tokenauth.create_token(jid, grant, "prosody:registered", 30 * 86400, "oauth2"));
      end
      return true;`);
    log(`  grants of ${user}: ${done + count}/${n}`);
  }
}

/** Copy the grants of `from` to `to` (same shape, owner and jid rewritten): seeding 1000 grants through mod_tokenauth takes ~50 s, twice is too long. */
async function copyGrants(server, from, to) {
  return server.lua(`
    local store = require "prosody.core.storagemanager".open(${luaString(HOST)}, "auth_tokens");
    local grants = assert(store:get(${luaString(from)}), "no grants to copy");
    local jid, n = ${luaString(`${to}@${HOST}`)}, 0;
    for _, grant in pairs(grants) do grant.owner = jid; grant.jid = jid; n = n + 1; end
    assert(store:set(${luaString(to)}, grants));
    return n;`);
}

async function grantCount(server, user) {
  return server.lua(`
    local grants = ${server.moduleEnv("tokenauth")}.get_user_grants(${luaString(user)});
    local n = 0; for _ in pairs(grants or {}) do n = n + 1; end
    return n;`);
}

// ------------------------------------------------------------------ raw socket metering

/**
 * Takes over the 'data' events of a logged-in Session's socket: xmpp.js's
 * parser (and the Session's rawChunks) see nothing while it is attached, so
 * the time measured is the socket's, not the parser's, and 3 GB of replies
 * are not kept. restore() hands the socket back (between whole stanzas).
 */
class RawMeter {
  constructor(session) {
    this.session = session;
    this.sock = session.xmpp.socket;
    this.saved = this.sock.listeners("data");
    for (const l of this.saved) this.sock.removeListener("data", l);
    this.sock.setNoDelay(true);
    this.handler = null;
    this.onData = (d) => {
      const now = performance.now();
      if (this.handler) this.handler(d, now);
    };
    this.sock.on("data", this.onData);
  }

  restore() {
    this.sock.removeListener("data", this.onData);
    for (const l of this.saved) this.sock.on("data", l);
  }

  /** Write an iq; resolve { ms, bytes, clients, type } when its closing </iq> has arrived. */
  roundTrip(id, ns) {
    const to = this.session.bareJid;
    const text = `<iq type='get' id='${id}' to='${to}'><list xmlns='${ns}'/></iq>`;
    const idRe = new RegExp(`<iq\\b[^>]*\\bid=(['"])${id}\\1[^>]*>`);
    return new Promise((resolve, reject) => {
      let received = "";
      let start = -1;
      let startTag = null;
      const timer = setTimeout(() => {
        this.handler = null;
        reject(new Error(`no reply to iq ${id} within 30 s`));
      }, 30000);
      this.handler = (d, now) => {
        const from = Math.max(0, received.length - 8);
        received += d.toString("latin1"); // byte for byte; the markers are ASCII
        if (start < 0) {
          const m = idRe.exec(received);
          if (!m) return;
          start = m.index;
          startTag = m[0];
        }
        const end = received.indexOf("</iq>", Math.max(from, start));
        if (end < 0) return;
        clearTimeout(timer);
        this.handler = null;
        const reply = received.slice(start, end + 5);
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
      const watchdog = setInterval(() => {
        if (performance.now() - lastProgress > 30000) {
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

function timeShell(server, args) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    server.shell(args).then((res) => resolve({ ms: performance.now() - t0, res }));
  });
}

// ------------------------------------------------------------------ main

export async function main({ repo }) {
  REPO = repo;
  const started = performance.now();
  const m = machine();
  const date = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
  log(`mod_client_management e2e benchmark; ROUNDS=${ROUNDS} MEMORY_REQUESTS=${MEMORY_REQUESTS}`);

  const server = await startServer({});
  const report = { machine: m, date };
  try {
    // ---------------------------------------------------------- server facts
    const config = fs.readFileSync(server.configPath, "utf8");
    const info = await server.lua(`
      local cm = require "prosody.core.configmanager";
      local ns = cm.get("*", "network_settings") or {};
      return {
        version = prosody.version, lua = _VERSION,
        backend = require "prosody.net.server".get_backend and require "prosody.net.server".get_backend() or "?",
        nagle = ns.nagle,
        module_loaded = ${server.moduleEnv("client_management")} ~= nil,
        module_path = ${server.moduleEnv("client_management")} and ${server.moduleEnv("client_management")}.module.path or nil,
        log_level = ${luaString(process.env.E2E_LOG_LEVEL)},
        gc = cm.get("*", "gc") or "Prosody default (incremental, threshold 105, speed 500)",
      };`);
    if (info.nagle !== false || !/network_settings = \{[^}]*nagle[^}]*false/.test(config)) {
      throw new Error(`the harness config does not set network_settings = { nagle = false } (got ${JSON.stringify(info.nagle)})`);
    }
    if (!info.module_loaded) throw new Error("mod_client_management is not loaded on the server");
    report.server = info;
    log(`Prosody ${info.version} (${info.lua}, ${info.backend}), nagle=${info.nagle}, module ${info.module_path ?? MODULE_FILE}`);

    // ---------------------------------------------------------- accounts and data
    log("seeding accounts");
    const acct = {};
    for (const k of ["n11", "g1001", "r1001", "b2001", "login0", "login1000", "none"]) acct[k] = await server.newAccount(`bench-${k}`);
    const now = Math.floor(Date.now() / 1000);
    for (const a of Object.values(acct)) await server.setAccountTimes(a.user, { updated: now - 60 * DAY });
    await server.seedStore("clients", acct.n11.user, clientRecords(acct.n11.user, 10, now, "n11"));
    await server.seedStore("clients", acct.r1001.user, clientRecords(acct.r1001.user, SEEDED, now, "r"));
    await server.seedStore("clients", acct.b2001.user, clientRecords(acct.b2001.user, SEEDED, now, "b"));
    await server.seedStore("clients", acct.login1000.user, clientRecords(acct.login1000.user, SEEDED, now, "l"));
    const tGrants = performance.now();
    await createGrants(server, acct.g1001.user, SEEDED);
    const copied = await copyGrants(server, acct.g1001.user, acct.b2001.user);
    report.grantSeconds = (performance.now() - tGrants) / 1000;
    const grantsG = await grantCount(server, acct.g1001.user);
    const grantsB = await grantCount(server, acct.b2001.user);
    log(`  grants: ${grantsG} (${acct.g1001.user}), ${grantsB} (${acct.b2001.user}, ${copied} copied); ${report.grantSeconds.toFixed(1)} s`);

    // ---------------------------------------------------------- 1. round trip
    const configs = [
      { key: "n11", label: "10 SASL2 records + client", n: 11, account: acct.n11 },
      { key: "g1001", label: `${SEEDED} grants + client`, n: SEEDED + 1, account: acct.g1001 },
      { key: "r1001", label: `${SEEDED} SASL2 records + client`, n: SEEDED + 1, account: acct.r1001 },
      { key: "b2001", label: `${SEEDED} records + ${SEEDED} grants + client`, n: 2 * SEEDED + 1, account: acct.b2001 },
    ];
    const sessions = {};
    report.roundTrip = [];
    for (const c of configs) {
      // The measuring client: SASL2 + Bind 2 with a client id, so it is one of the N.
      const session = await login(server, {
        username: c.account.user,
        password: c.account.password,
        userAgent: { id: `bench-measure-${c.key}`, software: "e2e bench", device: "loopback" },
      });
      sessions[c.key] = session;
      // Cold: the first list request of the account loads its stored facts.
      let meter = new RawMeter(session);
      const cold = await meter.roundTrip(`bench-cold-${c.key}`, NS_MC);
      meter.restore();
      // Verify with a real parser before timing: N <client/> in both namespaces.
      const parsed = {};
      for (const ns of [NS_MC, NS_CAM]) parsed[ns] = (await listClients(session, { ns })).clients.length;
      log(`list ${c.key}: cold ${ms(cold.ms)} ms, ${cold.bytes} B, <client> parsed: ${parsed[NS_MC]} (prosody ns), ${parsed[NS_CAM]} (cam), raw ${cold.clients}; expected ${c.n}`);
      meter = new RawMeter(session);
      for (const ns of [NS_MC, NS_CAM]) {
        const samples = [];
        let last;
        for (let i = 0; i < WARMUP + ROUNDS; i++) {
          const r = await meter.roundTrip(`bench-${c.key}-${ns === NS_MC ? "mc" : "cam"}-${i}`, ns);
          if (r.type !== "result") throw new Error(`list of ${c.key} answered ${r.type}: ${r.reply.slice(0, 500)}`);
          if (i >= WARMUP) samples.push(r.ms);
          last = r;
        }
        const s = stats(samples);
        report.roundTrip.push({ ...c, ns, stats: s, bytes: last.bytes, clients: last.clients, parsed: parsed[ns], cold: ns === NS_MC ? cold.ms : NaN });
        log(`  ${ns}: median ${ms(s.median)} ms, p90 ${ms(s.p90)} ms, ${last.bytes} B, ${last.clients} <client>`);
      }
      meter.restore();
    }

    // ---------------------------------------------------------- 5. memory (before 2: the GC-stopped rounds there raise the RSS high-water mark)
    log(`memory: ${MEMORY_REQUESTS} list requests at N=${SEEDED + 1} (records), ${MEMORY_WINDOW} outstanding`);
    const memSession = sessions.r1001;
    // Snapshots before and after each quarter: a leak grows with the requests, an allocator's
    // high-water mark (send buffers of up to MEMORY_WINDOW replies) levels off.
    const mem = { points: [], replies: 0, errors: 0, ms: 0, bytes: 0 };
    mem.points.push({ label: "before", requests: 0, ...(await memorySnapshot(server)) });
    for (let q = 1, done = 0; q <= 4; q++) {
      const upTo = Math.round((MEMORY_REQUESTS * q) / 4);
      const meter = new RawMeter(memSession);
      const part = await meter.pump(upTo - done, MEMORY_WINDOW, `mem-${q}`);
      meter.restore();
      done = upTo;
      for (const k of ["replies", "errors", "ms", "bytes"]) mem[k] += part[k];
      mem.points.push({ label: q === 4 ? "after" : `${q}/4`, requests: done, ...(await memorySnapshot(server)) });
    }
    report.memory = mem;
    for (const p of mem.points) log(`  ${p.label} (${p.requests}): Lua ${p.luaKiB.toFixed(0)} KiB, RSS ${p.rssKiB} KiB`);
    log(`  ${mem.replies} replies (${mem.errors} errors), ${(mem.bytes / 1048576).toFixed(0)} MiB in ${(mem.ms / 1000).toFixed(1)} s`);

    // ---------------------------------------------------------- 2. in-server
    report.inServer = [];
    for (const c of configs) {
      for (const ns of [NS_MC, NS_CAM]) {
        const r = await inServerLua(server, c.account.user, ns, ROUNDS, WARMUP);
        if (r.type !== "result") throw new Error(`in-server list of ${c.key} answered ${r.type}`);
        const row = {
          ...c, ns, handler: stats(r.handler), serialize: stats(r.serialize), api: stats(r.api), bytes: r.bytes, clients: r.clients,
          handlerNoGc: stats(r.handler_nogc), serializeNoGc: stats(r.serialize_nogc),
        };
        report.inServer.push(row);
        log(`in-server ${c.key} ${ns}: handler ${ms(row.handler.median)} ms, tostring ${ms(row.serialize.median)} ms, get_active_clients ${ms(row.api.median)} ms; GC stopped: handler ${ms(row.handlerNoGc.median)} ms, tostring ${ms(row.serializeNoGc.median)} ms; ${r.clients} <client>, ${r.bytes} B`);
      }
    }

    // ---------------------------------------------------------- 3. logins
    log("logins");
    const loginKinds = [
      { key: "sasl2", label: "SASL2 (SCRAM-SHA-1) + Bind 2" },
      { key: "fast", label: "SASL2 FAST (HT-SHA-256-NONE) + Bind 2" },
      { key: "legacy", label: "legacy SASL (SCRAM-SHA-1) + resource bind" },
    ];
    const loginAccounts = [
      { key: "0", account: acct.login0 },
      { key: String(SEEDED), account: acct.login1000 },
    ];
    const fastStores = {};
    const loginOpts = (kind, a) => {
      const base = { username: a.account.user };
      if (kind === "sasl2") return { ...base, password: a.account.password, userAgent: { id: `bench-login-sasl2-${a.key}`, software: "e2e bench", device: "loopback" } };
      if (kind === "fast") return { ...base, fast: fastStores[a.key], userAgent: { id: `bench-login-fast-${a.key}`, software: "e2e bench", device: "loopback" } };
      return { ...base, password: a.account.password, sasl2: false, resource: `bench-legacy-${a.key}` };
    };
    const loginOnce = async (kind, a) => {
      const t0 = performance.now();
      const session = await login(server, loginOpts(kind, a));
      const t = performance.now() - t0;
      await session.close();
      return t;
    };
    for (const a of loginAccounts) {
      // A FAST token to begin with (a password login that requests one).
      fastStores[a.key] = { token: null };
      const s = await login(server, { username: a.account.user, password: a.account.password, fast: fastStores[a.key], userAgent: { id: `bench-login-fast-${a.key}`, software: "e2e bench", device: "loopback" } });
      await s.close();
      if (!fastStores[a.key].token) throw new Error(`no FAST token issued to ${a.account.user}`);
    }
    const loginSamples = {};
    for (const k of loginKinds) for (const a of loginAccounts) loginSamples[`${k.key}/${a.key}`] = [];
    for (let round = 0; round < WARMUP + LOGIN_ROUNDS; round++) {
      for (const k of loginKinds) {
        // alternate which account goes first, against drift
        const order = round % 2 ? [...loginAccounts].reverse() : loginAccounts;
        for (const a of order) {
          const t = await loginOnce(k.key, a);
          if (round >= WARMUP) loginSamples[`${k.key}/${a.key}`].push(t);
          await sleep(10);
        }
      }
    }
    const storedAfter = await server.lua(`
      local store = require "prosody.core.storagemanager".open(${luaString(HOST)}, "clients");
      local r = {};
      for _, user in ipairs({ ${luaString(acct.login0.user)}, ${luaString(acct.login1000.user)} }) do
        local n = 0; for _ in pairs(store:get(user) or {}) do n = n + 1; end
        r[#r + 1] = n;
      end
      return r;`);
    report.logins = loginKinds.map((k) => {
      const s0 = stats(loginSamples[`${k.key}/0`]);
      const s1 = stats(loginSamples[`${k.key}/${SEEDED}`]);
      log(`  ${k.key}: 0 stored ${ms(s0.median)}/${ms(s0.p90)} ms, ${SEEDED} stored ${ms(s1.median)}/${ms(s1.p90)} ms`);
      return { ...k, s0, s1 };
    });
    report.loginStored = storedAfter;
    log(`  stored records afterwards: ${storedAfter.join(", ")}`);

    // ---------------------------------------------------------- 4. shell
    log("shell");
    const shellCases = [
      { key: "empty", label: "`shell \"> return 1\"` (empty)", args: "> return 1" },
      { key: "builtin", label: "`shell server version` (built-in command)", args: ["server", "version"] },
      { key: "none", label: "`shell user clients` (account without clients)", args: ["user", "clients", acct.none.jid], n: 0 },
      { key: "r1001", label: `\`shell user clients\` (${SEEDED} records + client)`, args: ["user", "clients", acct.r1001.jid], n: SEEDED + 1 },
      { key: "g1001", label: `\`shell user clients\` (${SEEDED} grants + client)`, args: ["user", "clients", acct.g1001.jid], n: SEEDED + 1 },
    ];
    {
      // As much console output as `user clients` prints for 1001 entries, from plain print():
      // what the admin socket and prosodyctl take to carry it, without the module.
      const { res } = await timeShell(server, ["user", "clients", acct.r1001.jid]);
      const lines = res.stdout.split("\n").length;
      const width = Math.max(1, Math.round(Buffer.byteLength(res.stdout) / lines) - 1);
      shellCases.splice(1, 0, {
        key: "print", label: `\`shell "> print()"\` ×${lines} lines of ${width} chars (output only)`,
        args: `> for i = 1, ${lines} do print(("x"):rep(${width})) end return 1`,
      }, {
        key: "print1", label: `\`shell "> print()"\` once, the same ${lines} lines joined`,
        args: `> local t = {} for i = 1, ${lines} do t[i] = ("x"):rep(${width}) end print(table.concat(t, "\\n")) return 1`,
      });
    }
    const shellSamples = Object.fromEntries(shellCases.map((c) => [c.key, []]));
    const shellOut = {};
    for (let round = 0; round < 1 + SHELL_ROUNDS; round++) {
      for (const c of shellCases) {
        const { ms: t, res } = await timeShell(server, c.args);
        if (res.code !== 0) throw new Error(`prosodyctl shell ${JSON.stringify(c.args)} exited ${res.code}: ${res.stderr}${res.stdout.slice(-500)}`);
        if (round > 0) shellSamples[c.key].push(t);
        shellOut[c.key] = res.stdout;
      }
    }
    report.shell = shellCases.map((c) => {
      const s = stats(shellSamples[c.key]);
      const out = shellOut[c.key];
      const summary = c.n === undefined ? ""
        : (out.match(/(\d+) client\(s\)/)?.[0] ?? out.match(/No clients associated with this account/)?.[0] ?? `no count line: ${out.trim().slice(-80)}`);
      log(`  ${c.key}: median ${ms(s.median, 1)} ms, p90 ${ms(s.p90, 1)} ms ${summary}`);
      return { ...c, stats: s, summary, bytes: Buffer.byteLength(shellOut[c.key]) };
    });

    for (const s of Object.values(sessions)) await s.close();
    const warnings = server.logSince(0, ["warn", "error"]);
    report.serverWarnings = warnings;
  } finally {
    await server.stop();
  }
  report.seconds = (performance.now() - started) / 1000;
  report.loadEnd = loadAverage();

  const md = render(report);
  process.stdout.write(md);
  const outDir = path.join(repo, "build", "bench");
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, "e2e.md"), md);
  log(`written to ${path.join(outDir, "e2e.md")}`);
}

// ------------------------------------------------------------------ report

const TARGET_RT = { 11: 3, 1001: 25, 2001: 50 };
const COMMUNITY_RT = { 11: "~2", 101: "12–16", 1001: "127–162" };
const nsName = (ns) => (ns === NS_MC ? "prosody" : "cam:0");

function render(r) {
  const L = [];
  const m = r.machine;
  L.push("## End-to-end benchmark (benches/e2e)");
  L.push("");
  L.push(`- date: ${r.date}`);
  L.push(`- machine: ${m.nproc} × ${m.cpu}, ${(m.memTotal / 2 ** 30).toFixed(1)} GiB, Linux ${m.kernel}`);
  L.push(`- Prosody ${r.server?.version} (${r.server?.lua}, net backend ${r.server?.backend}), \`network_settings = { nagle = false }\`, log level ${r.server?.log_level}, ${STORAGE} storage (E2E_STORAGE); client: Node.js ${m.node}, @xmpp/client 0.14 on loopback, TCP_NODELAY`);
  L.push(`- module: ${m.commit}; loaded: ${m.plugin}; ROUNDS=${ROUNDS} (+${WARMUP} warm-up), LOGIN_ROUNDS=${LOGIN_ROUNDS}, SHELL_ROUNDS=${SHELL_ROUNDS}, MEMORY_REQUESTS=${MEMORY_REQUESTS}`);
  L.push(`- seeded: SASL2 records with password access (SCRAM-SHA-1 within the last 30 days, password changed 60 days ago), mod_tokenauth grants with one "oauth2" token each; the measuring client (SASL2 + Bind 2, with a client id) is one of the N`);
  L.push(`- Lua GC: ${typeof r.server?.gc === "string" ? r.server.gc : JSON.stringify(r.server?.gc)}`);
  L.push(`- total run time ${r.seconds.toFixed(0)} s (seeding ${r.grantSeconds?.toFixed(0)} s of grants); load average ${m.loadStart} at the start, ${r.loadEnd} at the end`);
  L.push("");

  L.push("### 1. List round trip (socket: iq written → closing `</iq>` received)");
  L.push("");
  L.push("| N | data | namespace | `<client>` | reply | first (cold) ms | median ms | p90 ms | min ms | target | meets | community module |");
  L.push("|---:|---|---|---:|---:|---:|---:|---:|---:|---|---|---|");
  for (const x of r.roundTrip) {
    const target = TARGET_RT[x.n];
    const countNote = x.clients === x.n && x.parsed === x.n ? `${x.clients}` : `${x.clients} (parsed ${x.parsed}; expected ${x.n}!)`;
    L.push(`| ${x.n} | ${x.label} | ${nsName(x.ns)} | ${countNote} | ${kib(x.bytes)} | ${ms(x.cold)} | ${ms(x.stats.median)} | ${ms(x.stats.p90)} | ${ms(x.stats.min)} | ${target ? `≤ ${target} ms` : "–"} | ${target ? yesNo(x.stats.median <= target) : ""} | ${COMMUNITY_RT[x.n] ? `${COMMUNITY_RT[x.n]} ms` : "–"} |`);
  }
  L.push("");
  L.push("Community module reference: ~2 ms at 11, 12–16 ms at 101, 127–162 ms at 1001 entries. \"meets\" compares the median.");
  L.push("");

  L.push("### 2. In-server listing (Lua, `fire_event(\"iq-get/self/<ns>:list\")` with a fake origin)");
  L.push("");
  L.push("handler = facts + core + reply stanza built (`origin.send` only keeps it); tostring = serialization of that reply (what c2s does before writing); get_active_clients = the public API (facts + core decision, Lua tables, no stanza). \"GC stopped\": the same rounds with `collectgarbage(\"stop\")`, i.e. without the collector steps the allocations trigger.");
  L.push("");
  L.push("| N | data | namespace | handler median ms | p90 | min | tostring median ms | p90 | get_active_clients median ms | p90 | GC stopped: handler median ms | tostring median ms | target (handler, N=1001) | meets |");
  L.push("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
  for (const x of r.inServer) {
    const t = x.n === 1001 ? "≤ 5 ms" : "–";
    const meets = x.n === 1001 ? yesNo(x.handler.median <= 5) : "";
    const countNote = x.clients === x.n ? "" : ` (${x.clients} <client>!)`;
    L.push(`| ${x.n} | ${x.label}${countNote} | ${nsName(x.ns)} | ${ms(x.handler.median)} | ${ms(x.handler.p90)} | ${ms(x.handler.min)} | ${ms(x.serialize.median)} | ${ms(x.serialize.p90)} | ${ms(x.api.median)} | ${ms(x.api.p90)} | ${ms(x.handlerNoGc.median)} | ${ms(x.serializeNoGc.median)} | ${t} | ${meets} |`);
  }
  L.push("");
  L.push("Community module reference: 55–63 ms in-server at 1001 entries.");
  L.push("");

  L.push(`### 3. Login cost (connect → online, stored client records of the account: 0 vs ${SEEDED})`);
  L.push("");
  L.push(`| login | 0 stored: median ms | p90 | ${SEEDED} stored: median ms | p90 | Δ median ms | noise (larger p90 − median) | flat within noise |`);
  L.push("|---|---:|---:|---:|---:|---:|---:|---|");
  for (const x of r.logins) {
    const delta = x.s1.median - x.s0.median;
    const noise = Math.max(x.s0.p90 - x.s0.median, x.s1.p90 - x.s1.median);
    L.push(`| ${x.label} | ${ms(x.s0.median)} | ${ms(x.s0.p90)} | ${ms(x.s1.median)} | ${ms(x.s1.p90)} | ${delta >= 0 ? "+" : ""}${ms(delta)} | ${ms(noise)} | ${yesNo(Math.abs(delta) <= Math.max(noise, 0.5))} |`);
  }
  L.push("");
  L.push(`Each account keeps one record per login kind (fixed client ids and resource), so "0 stored" holds the bench's own ${r.loginStored?.[0]} and "${SEEDED} stored" ${r.loginStored?.[1]} records afterwards. Target: flat within noise.`);
  L.push("");

  L.push("### 4. Shell (`prosodyctl shell …` wall time)");
  L.push("");
  L.push("| command | median ms | p90 ms | Δ median vs empty ms | output | target | meets |");
  L.push("|---|---:|---:|---:|---|---|---|");
  const empty = r.shell.find((x) => x.key === "empty");
  for (const x of r.shell) {
    const d = x.stats.median - empty.stats.median;
    const isCmd = x.key !== "empty";
    const isTarget = x.n > 1000;
    L.push(`| ${x.label} | ${ms(x.stats.median, 1)} | ${ms(x.stats.p90, 1)} | ${isCmd ? `${d >= 0 ? "+" : ""}${ms(d, 1)}` : "–"} | ${x.n !== undefined || x.key.startsWith("print") ? `${x.summary ? `${x.summary}, ` : ""}${kib(x.bytes)}` : ""} | ${isTarget ? "within 20 ms of empty" : ""} | ${isTarget ? yesNo(d <= 20) : ""} |`);
  }
  L.push("");

  const mem = r.memory;
  L.push(`### 5. Memory (${mem.replies} list requests at N=${SEEDED + 1}, ${SEEDED} records + client, namespaces alternating, ${MEMORY_WINDOW} outstanding)`);
  L.push("");
  L.push("| point | requests | Lua memory after full GC | VmRSS |");
  L.push("|---|---:|---:|---:|");
  for (const p of mem.points) L.push(`| ${p.label} | ${p.requests} | ${p.luaKiB.toFixed(0)} KiB | ${p.rssKiB} KiB |`);
  const [b, , h, , a] = mem.points;
  const dLua = a.luaKiB - b.luaKiB;
  const dLuaSecond = a.luaKiB - h.luaKiB;
  L.push("");
  L.push(`Δ Lua ${dLua >= 0 ? "+" : ""}${dLua.toFixed(0)} KiB over all, ${dLuaSecond >= 0 ? "+" : ""}${dLuaSecond.toFixed(0)} KiB over the second half; Δ RSS ${a.rssKiB - b.rssKiB >= 0 ? "+" : ""}${a.rssKiB - b.rssKiB} KiB (second half ${a.rssKiB - h.rssKiB >= 0 ? "+" : ""}${a.rssKiB - h.rssKiB} KiB). `
    + `Target: no growth — ${yesNo(dLuaSecond <= Math.max(256, 0.02 * h.luaKiB))} (Lua growth over the second half ≤ max(256 KiB, 2 %)). `
    + `RSS also holds Prosody's send buffers (up to ${MEMORY_WINDOW} replies queued) and the allocator keeps its high-water mark: growth that levels off is not a leak. `
    + `${mem.errors} error replies; ${(mem.bytes / 1048576).toFixed(0)} MiB received in ${(mem.ms / 1000).toFixed(1)} s = ${(mem.replies / (mem.ms / 1000)).toFixed(0)} lists/s.`);
  L.push("");
  if (r.serverWarnings?.length) {
    L.push(`Prosody logged ${r.serverWarnings.length} warning/error line(s) during the run; first: \`${r.serverWarnings[0].replace(/`/g, "'").slice(0, 300)}\``);
    L.push("");
  }
  return `${L.join("\n")}\n`;
}
