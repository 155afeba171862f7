// A throw-away Prosody instance for one test file: own config, data dir,
// pidfile, log and admin socket, listening for c2s on a free port of
// 127.0.0.1 only. Helpers talk to exactly this instance through
// `prosodyctl --config <its config> shell ...`.

import { spawn, execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

/** The repository checkout this harness lives in (tests/e2e/lib → repo). */
export const REPO_ROOT = process.env.E2E_REPO_ROOT
  ? path.resolve(process.env.E2E_REPO_ROOT)
  : path.resolve(here, "..", "..", "..");
/** Where `make plugin` puts mod_client_management/ (the module dir). */
export const PLUGIN_DIR = process.env.E2E_PLUGIN_DIR
  ? path.resolve(process.env.E2E_PLUGIN_DIR)
  : path.join(REPO_ROOT, "build", "plugin");
export const MODULE_FILE = path.join(
  PLUGIN_DIR,
  "mod_client_management",
  "mod_client_management.lua",
);
/** shared/ sits beside the checkout, locally and in CI; a clone elsewhere falls back to the workplace copy. */
export const SHARED_DIR = process.env.E2E_SHARED_DIR
  ? path.resolve(process.env.E2E_SHARED_DIR)
  : [path.resolve(REPO_ROOT, "..", "shared"), "/work/shared"].find((dir) => fs.existsSync(dir))
    ?? path.resolve(REPO_ROOT, "..", "shared");

/** The binaries under test (e.g. a trunk build); default from PATH. */
export const PROSODY = process.env.PROSODY || "prosody";
export const PROSODYCTL = process.env.PROSODYCTL || "prosodyctl";
/**
 * More plugin directories after ours (colon-separated), e.g. a prosody-modules
 * checkout with mod_sasl2* for a Prosody build that does not have them
 * (Debian's prosody-modules puts them beside the core modules).
 */
export const EXTRA_PLUGIN_PATHS = (process.env.E2E_EXTRA_PLUGIN_PATHS || "").split(":").filter(Boolean);
export const HOST = "localhost";
/**
 * E2E_TIMEOUT_SCALE (default 1) multiplies the harness's waits for things that are
 * expected to happen (server start-up and stop, prosodyctl runs, logins, iq replies),
 * for slow machines (read at each wait). Waits that expect nothing to happen are not scaled.
 */
export const timeoutScale = () => (Number(process.env.E2E_TIMEOUT_SCALE) > 0 ? Number(process.env.E2E_TIMEOUT_SCALE) : 1);
export const scaled = (ms) => Math.round(ms * timeoutScale());

/**
 * The storage backend every server of this run uses: E2E_STORAGE =
 * internal (default) | sqlite | postgres | memory. PostgreSQL needs the
 * throwaway cluster of tests/e2e/with-postgres.sh (run.sh starts it).
 */
export const STORAGES = ["internal", "sqlite", "postgres", "memory"];
export const STORAGE = process.env.E2E_STORAGE || "internal";
if (!STORAGES.includes(STORAGE)) {
  throw new Error(`E2E_STORAGE=${STORAGE}: expected one of ${STORAGES.join(", ")}`);
}

/**
 * node:test `skip` value for a test that makes no sense on some backends:
 * `test(name, { skip: skipOn(["memory"], "data does not survive a restart") })`
 * → false, or "not on memory storage: <reason>".
 */
export function skipOn(storages, reason) {
  return storages.includes(STORAGE) ? `not on ${STORAGE} storage: ${reason}` : false;
}

/** The cluster of tests/e2e/with-postgres.sh (socket dir, port, role, binaries). */
function pgEnv() {
  const host = process.env.E2E_PG_HOST;
  if (!host) {
    throw new Error("E2E_STORAGE=postgres needs a PostgreSQL cluster: run the tests through tests/e2e/run.sh "
      + "(which starts one with tests/e2e/with-postgres.sh), or set E2E_PG_HOST/E2E_PG_PORT/E2E_PG_USER");
  }
  return {
    host,
    port: Number(process.env.E2E_PG_PORT || 5432),
    user: process.env.E2E_PG_USER || "prosody_e2e",
    psql: process.env.E2E_PG_BINDIR ? path.join(process.env.E2E_PG_BINDIR, "psql") : "psql",
  };
}

export const DEFAULT_MODULES = [
  "sasl2",
  "sasl2_bind2",
  "sasl2_fast",
  "sasl2_sm",
  "tokenauth",
  "client_management",
  "saslauth",
  "disco",
  "roster",
  "ping",
  "smacks", // core module in Prosody 13 (XEP-0198)
  "admin_shell",
  "admin_socket",
];

// ---------------------------------------------------------------- Lua text

/** Lua source text, emitted verbatim by luaValue(). */
export class LuaRaw {
  constructor(src) {
    this.src = src;
  }
}
export const raw = (src) => new LuaRaw(src);

export function luaString(s) {
  return `"${String(s)
    .replace(/[\\"]/g, "\\$&")
    .replace(/\n/g, "\\n")
    .replace(/[\u0000-\u001f\u007f]/g, (c) =>
      `\\${c.charCodeAt(0).toString().padStart(3, "0")}`,
    )}"`;
}

/** JS value → Lua literal (objects become string-keyed tables). */
export function luaValue(v) {
  if (v instanceof LuaRaw) return v.src;
  if (v === null || v === undefined) return "nil";
  if (typeof v === "boolean") return String(v);
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new Error(`not a Lua number: ${v}`);
    return String(v);
  }
  if (typeof v === "string") return luaString(v);
  if (Array.isArray(v)) return `{ ${v.map(luaValue).join(", ")} }`;
  if (typeof v === "object") {
    return `{ ${Object.entries(v)
      .filter(([, val]) => val !== undefined)
      .map(([k, val]) => `[${luaString(k)}] = ${luaValue(val)}`)
      .join("; ")} }`;
  }
  throw new Error(`cannot express ${typeof v} in Lua`);
}

// ---------------------------------------------------------------- helpers

function prosodyIds() {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) {
    return null; // not root: run Prosody as ourselves
  }
  // Prosody refuses to run as root (and prosodyctl switches to the
  // `prosody` user itself), so the server runs as `prosody` too.
  const passwd = fs.readFileSync("/etc/passwd", "utf8");
  const line = passwd.split("\n").find((l) => l.startsWith("prosody:"));
  if (!line) {
    throw new Error("running as root but there is no 'prosody' user to run Prosody as");
  }
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

function chownR(p, ids) {
  if (!ids) return;
  fs.chownSync(p, ids.uid, ids.gid);
  if (fs.statSync(p).isDirectory()) {
    for (const e of fs.readdirSync(p)) chownR(path.join(p, e), ids);
  }
}

function canRead(file, ids) {
  if (!ids) return fs.existsSync(file);
  // Walk the path the way the prosody user would.
  return new Promise((resolve) => {
    execFile("setpriv", [
      `--reuid=${ids.uid}`, `--regid=${ids.gid}`, "--clear-groups",
      "test", "-r", file,
    ], (err) => resolve(!err));
  });
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function portOpen(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: "127.0.0.1", port });
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}

// util.datamanager's file name escaping: every non-alphanumeric character
// of a username (and host) becomes %xx; store names keep "_" too.
const pctEncode = (re) => (s) => String(s).replace(re, (c) =>
  `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
export const encode = pctEncode(/[^A-Za-z0-9]/g);
export const storeEncode = pctEncode(/[^A-Za-z0-9_]/g);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function run(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 16 * 1024 * 1024, timeout: scaled(30000), ...opts },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr), error: err });
      });
  });
}

/** Environment of a prosodyctl run: ours, HOME in the server dir, `extra` added (undefined removes). */
function shellEnv(dir, extra = {}) {
  const env = { ...process.env, HOME: dir, ...extra };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  return env;
}

/** Every server started by this process, so that none outlives it. */
const live = new Set();
process.on("exit", () => {
  for (const s of live) {
    try {
      s.proc.kill("SIGKILL");
    } catch {}
  }
});

// ---------------------------------------------------------------- server

export class ProsodyServer {
  constructor(opts) {
    this.opts = opts;
    this.host = HOST;
    this.ids = prosodyIds();
    /** internal | sqlite | postgres | memory (E2E_STORAGE, or opts.storage). */
    this.storage = opts.storage || STORAGE;
    if (!STORAGES.includes(this.storage)) throw new Error(`unknown storage ${this.storage}`);
  }

  /** The global options selecting this server's storage backend. */
  storageOptions() {
    switch (this.storage) {
      case "internal":
        return { storage: "internal" };
      case "memory":
        return { storage: "memory" };
      case "sqlite":
        return { storage: "sql", sql: { driver: "SQLite3", database: path.join(this.dir, "prosody.sqlite") } };
      case "postgres": {
        const pg = pgEnv();
        return {
          storage: "sql",
          sql: { driver: "PostgreSQL", database: this.pgDatabase, username: pg.user, host: pg.host, port: pg.port },
        };
      }
    }
    throw new Error(`unknown storage ${this.storage}`);
  }

  /** psql as the cluster's test role (trust authentication on the private socket). */
  async psql(sql, database = "postgres") {
    const pg = pgEnv();
    const res = await run(pg.psql, [
      "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", pg.host, "-p", String(pg.port), "-U", pg.user, "-d", database, "-c", sql,
    ], { env: { ...process.env, PGCONNECT_TIMEOUT: "10" } });
    if (res.code !== 0) throw new Error(`psql failed (exit ${res.code}): ${sql}\n${res.stderr}${res.stdout}`);
    return res.stdout;
  }

  get service() {
    return `xmpp://127.0.0.1:${this.port}`;
  }

  configText() {
    const { dir, port } = this;
    const {
      modules = DEFAULT_MODULES,
      withoutModules = [],
      extraModules = [],
      options = {},
      globalOptions = {},
      pluginPaths = [this.pluginDir],
    } = this.opts;
    const enabled = [...modules, ...extraModules].filter(
      (m, i, all) => !withoutModules.includes(m) && all.indexOf(m) === i,
    );
    const global = {
      pidfile: path.join(dir, "prosody.pid"),
      data_path: path.join(dir, "data"),
      certificates: path.join(dir, "certs"),
      admin_socket: path.join(dir, "prosody.sock"),
      log: raw(`{ { levels = { min = ${luaString(process.env.E2E_LOG_LEVEL || "debug")} }, to = "file", filename = ${luaString(path.join(dir, "prosody.log"))} } }`),
      daemonize: false,
      interfaces: ["127.0.0.1"],
      local_interfaces: ["127.0.0.1"],
      c2s_ports: [port],
      c2s_direct_tls_ports: [],
      legacy_ssl_ports: [],
      s2s_ports: [],
      http_ports: [],
      https_ports: [],
      network_settings: { nagle: false },
      c2s_require_encryption: false,
      allow_unencrypted_plain_auth: true,
      authentication: "internal_hashed",
      ...this.storageOptions(),
      plugin_paths: [...pluginPaths, ...EXTRA_PLUGIN_PATHS],
      modules_enabled: enabled,
      // s2s is auto-loaded otherwise; nothing here needs HTTP either
      modules_disabled: ["s2s", "s2s_auth_certs", "s2s_bidi", "dialback", "http"],
      // mod_cron runs daily tasks (our prune) a second after start: not in the middle of a
      // test's seeding. Tests of the daily job run the task themselves.
      cron_initial_delay: 86400,
      ...(typeof globalOptions === "function" ? globalOptions(this) : globalOptions),
    };
    const lines = [
      "-- Generated by tests/e2e/lib/server.js; this instance only.",
      ...Object.entries(global).map(([k, v]) => `${k} = ${luaValue(v)}`),
      "",
      `VirtualHost ${luaString(HOST)}`,
      ...Object.entries(options).map(([k, v]) => `\t${k} = ${luaValue(v)}`),
      "",
    ];
    return lines.join("\n");
  }

  async start() {
    if (!this.opts.allowMissingModule && !this.opts.withoutModules?.includes("client_management")
        && !fs.existsSync(MODULE_FILE)) {
      // Not fatal: the tests then fail on what the module should have done.
      process.stderr.write(`# e2e: ${MODULE_FILE} is missing (run \`make plugin\`)\n`);
    }
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "prosody-e2e-"));
    fs.chmodSync(this.dir, 0o755);
    this.dataDir = path.join(this.dir, "data");
    this.hostDataDir = path.join(this.dataDir, encode(HOST)); // "localhost" stays as it is
    this.configPath = path.join(this.dir, "prosody.cfg.lua");
    this.logPath = path.join(this.dir, "prosody.log");
    this.socketPath = path.join(this.dir, "prosody.sock");
    fs.mkdirSync(this.dataDir);
    fs.mkdirSync(path.join(this.dir, "certs"));

    // The prosody user must be able to read the plugin. A checkout under a
    // private home directory is not readable for it: use a copy then.
    this.pluginDir = PLUGIN_DIR;
    if (this.ids && fs.existsSync(MODULE_FILE) && !(await canRead(MODULE_FILE, this.ids))) {
      this.pluginDir = path.join(this.dir, "plugin");
      fs.cpSync(PLUGIN_DIR, this.pluginDir, { recursive: true });
    }

    this.port = this.opts.port || (await freePort());
    if (this.storage === "postgres") {
      // A database per server, owned by the test role; Prosody creates its table.
      this.pgDatabase = `e2e_${path.basename(this.dir).replace(/[^A-Za-z0-9]/g, "_").toLowerCase()}`;
      await this.psql(`CREATE DATABASE "${this.pgDatabase}"`).catch(async (err) => {
        this.pgDatabase = null;
        await this.stop();
        throw err;
      });
    }
    fs.writeFileSync(this.configPath, this.configText());
    fs.writeFileSync(this.logPath, "");
    chownR(this.dir, this.ids);
    // e.g. `prosodyctl install` into the fresh config before the server starts
    if (this.opts.beforeStart) {
      try {
        await this.opts.beforeStart(this);
      } catch (err) {
        await this.stop();
        throw err;
      }
    }

    const out = fs.openSync(path.join(this.dir, "stdout.log"), "a");
    this.proc = spawn(PROSODY, ["--config", this.configPath, "-F"], {
      cwd: this.dir,
      stdio: ["ignore", out, out],
      env: { ...process.env, HOME: this.dir },
      ...(this.ids || {}),
    });
    fs.closeSync(out);
    live.add(this);
    this.exited = new Promise((resolve) => {
      this.proc.once("exit", (code, signal) => {
        live.delete(this);
        this.exitStatus = { code, signal };
        resolve(this.exitStatus);
      });
    });

    const deadline = Date.now() + scaled(20000);
    for (;;) {
      let failure = null;
      if (this.exitStatus) {
        failure = `Prosody exited during start-up (${JSON.stringify(this.exitStatus)})`;
      } else if (fs.existsSync(this.socketPath) && (await portOpen(this.port))) {
        break;
      } else if (Date.now() > deadline) {
        failure = `Prosody did not listen on 127.0.0.1:${this.port} within ${scaled(20000) / 1000} s`;
      }
      if (failure) {
        const diagnostics = this.startupDiagnostics();
        await this.stop();
        throw new Error(`${failure}\n${diagnostics}`);
      }
      await sleep(50);
    }
    return this;
  }

  startupDiagnostics() {
    let s = fs.existsSync(this.dir) ? "" : `(${this.dir} has disappeared)\n`;
    for (const f of ["stdout.log", "prosody.log"]) {
      try {
        const text = fs.readFileSync(path.join(this.dir, f), "utf8");
        s += `--- ${f} (tail) ---\n${text.split("\n").slice(-40).join("\n")}\n`;
      } catch {}
    }
    return s;
  }

  /** Stop Prosody (if it runs), remove its temp dir and database (unless KEEP_E2E=1). Idempotent. */
  async stop() {
    if (!this.dir || this.stopped) return;
    this.stopped = true;
    if (this.proc && !this.exitStatus) {
      this.proc.kill("SIGTERM");
      const t = setTimeout(() => this.proc.kill("SIGKILL"), scaled(8000));
      await this.exited;
      clearTimeout(t);
    }
    const problems = this.logSince(0, ["error"]);
    if (problems.length) {
      process.stderr.write(`# e2e: prosody.log errors (${this.dir}):\n${problems.map((l) => `#   ${l}`).join("\n")}\n`);
    }
    if (process.env.KEEP_E2E === "1") {
      process.stderr.write(`# e2e: kept ${this.dir}${this.pgDatabase ? ` and database ${this.pgDatabase}` : ""}\n`);
    } else {
      fs.rmSync(this.dir, { recursive: true, force: true });
      if (this.pgDatabase) {
        await this.psql(`DROP DATABASE IF EXISTS "${this.pgDatabase}"`).catch((err) => {
          process.stderr.write(`# e2e: ${err.message}\n`);
        });
      }
    }
    this.proc = null;
  }

  // ------------------------------------------------------------ the log

  /** Current end of prosody.log; pass to logSince() later. */
  logOffset() {
    try {
      return fs.statSync(this.logPath).size;
    } catch {
      return 0;
    }
  }

  /** Log lines written since `offset`, optionally only of some levels. */
  logSince(offset = 0, levels = null) {
    let text;
    try {
      const fd = fs.openSync(this.logPath, "r");
      const size = fs.fstatSync(fd).size;
      const buf = Buffer.alloc(Math.max(0, size - offset));
      fs.readSync(fd, buf, 0, buf.length, offset);
      fs.closeSync(fd);
      text = buf.toString("utf8");
    } catch {
      return [];
    }
    const lines = text.split("\n").filter(Boolean);
    if (!levels) return lines;
    // "Nov 27 02:12:45 source\tlevel\tmessage"
    return lines.filter((l) => levels.includes(l.split("\t")[1]));
  }

  // ------------------------------------------------------------ the shell

  /**
   * `prosodyctl --config <this> shell ...`. A string is passed as one
   * argument (a console line, e.g. "> lua code"); an array as separate
   * arguments (the command-line form, e.g. ["user", "clients", jid]).
   */
  shell(cmd, { env = {} } = {}) {
    const args = Array.isArray(cmd) ? cmd : [cmd];
    return this.prosodyctl(["shell", ...args], { env });
  }

  /** `prosodyctl --config <this> ARGS...` → { code, stdout, stderr }. */
  prosodyctl(args, { env = {}, timeout = 30000 } = {}) {
    return run(PROSODYCTL, ["--config", this.configPath, ...args], {
      cwd: this.dir,
      env: shellEnv(this.dir, env),
      timeout,
    });
  }

  /**
   * The interactive console, `prosodyctl --config <this> shell [--quiet]`,
   * fed `lines` on stdin (a pipe, no tty) → { code, stdout, stderr }.
   * Each line is answered before the next is read; results come as
   * "| …" lines, errors as "! Error: …", after the "prosody> " prompt
   * (and the command echoed, with lua-readline). The exit status is 0 at
   * the end of input, errors or not. Without a tty, lua-readline sets
   * COLUMNS=80 for the console unless `env` sets it. `env`: variables to
   * add, or remove (undefined). `quiet`: --quiet, no banner.
   */
  shellInteractive(lines, { env = {}, quiet = true, timeout = scaled(30000) } = {}) {
    const args = ["--config", this.configPath, "shell", ...(quiet ? ["--quiet"] : [])];
    return new Promise((resolve) => {
      const proc = spawn(PROSODYCTL, args, { cwd: this.dir, env: shellEnv(this.dir, env) });
      let stdout = "";
      let stderr = "";
      proc.stdout.setEncoding("utf8");
      proc.stderr.setEncoding("utf8");
      proc.stdout.on("data", (d) => { stdout += d; });
      proc.stderr.on("data", (d) => { stderr += d; });
      const t = setTimeout(() => proc.kill("SIGKILL"), timeout);
      proc.on("close", (code, signal) => {
        clearTimeout(t);
        resolve({ code: code ?? 1, signal, stdout, stderr });
      });
      proc.stdin.on("error", () => {});
      proc.stdin.end(lines.map((l) => `${l}\n`).join(""));
    });
  }

  /**
   * Run Lua inside the server (global environment of the admin shell). The
   * body is a function body: its return value is JSON-encoded with
   * util.json and decoded here. Throws with the console's error text.
   */
  async lua(body) {
    const line = `> local json = require "prosody.util.json"; `
      + `local ok, r = xpcall(function() ${body}\n end, debug.traceback); `
      + `if not ok then error(tostring(r), 0) end; `
      + `return "E2E-JSON:" .. json.encode({ value = r })`;
    const res = await this.shell(line);
    const m = res.stdout.match(/E2E-JSON:(.*)$/m);
    if (res.code !== 0 || !m) {
      throw new Error(`Lua in server failed (exit ${res.code}):\n${res.stderr}${res.stdout}\n--- code ---\n${body}`);
    }
    return JSON.parse(m[1]).value;
  }

  /** Lua expression naming a module's environment on our host. */
  moduleEnv(name) {
    return `prosody.hosts[${luaString(HOST)}].modules[${luaString(name)}]`;
  }

  // ------------------------------------------------------------ accounts

  /** Create an account (default role) on the running server. */
  async register(user, password) {
    await this.lua(`
      local um = require "prosody.core.usermanager";
      assert(um.create_user(${luaString(user)}, ${luaString(password)}, ${luaString(HOST)}));
      return true;`);
    return `${user}@${HOST}`;
  }

  /** A fresh, unused username with a prefix. */
  static username(prefix = "u") {
    return `${prefix}-${randomBytes(5).toString("hex")}`;
  }

  /** Register a fresh account; returns { user, password, jid }. */
  async newAccount(prefix = "u") {
    const user = ProsodyServer.username(prefix);
    const password = `pw-${randomBytes(6).toString("hex")}`;
    await this.register(user, password);
    return { user, password, jid: `${user}@${HOST}` };
  }

  /** accounts store record fields such as `created`/`updated` (= password_updated). */
  async setAccountTimes(user, { created, updated }) {
    return this.lua(`
      local store = require "prosody.core.storagemanager".open(${luaString(HOST)}, "accounts");
      local account = assert(store:get(${luaString(user)}), "no such account");
      ${created !== undefined ? `account.created = ${luaValue(created)};` : ""}
      ${updated !== undefined ? `account.updated = ${luaValue(updated)};` : ""}
      assert(store:set(${luaString(user)}, account));
      return require "prosody.core.usermanager".get_account_info(${luaString(user)}, ${luaString(HOST)});`);
  }

  async changePassword(user, password) {
    return this.lua(`
      return assert(require "prosody.core.usermanager".set_password(${luaString(user)}, ${luaString(password)}, ${luaString(HOST)}));`);
  }

  // ------------------------------------------------------------ tokenauth

  /**
   * Create a mod_tokenauth grant for `user` the way mod_http_oauth2 does
   * (client info on the grant's data) and one token of purpose "oauth2"
   * (what OAUTHBEARER via mod_auth_internal_hashed accepts).
   * Returns { grantId, token, grant }.
   */
  async createGrant(user, {
    client = { name: "E2E OAuth App", uri: "https://e2e.invalid/app", id: "e2e-oauth-app", version: "1.0" },
    grantTtl = null,
    tokenTtl = 3600,
    role = "prosody:registered",
    purpose = "oauth2",
    scopes = "xmpp",
  } = {}) {
    const jid = `${user}@${HOST}`;
    const data = client ? { oauth2_client: client, oauth2_scopes: scopes } : { oauth2_scopes: scopes };
    return this.lua(`
      local tokenauth = assert(${this.moduleEnv("tokenauth")}, "mod_tokenauth not loaded");
      local grant = assert(tokenauth.create_grant(${luaString(jid)}, ${luaString(jid)}, ${luaValue(grantTtl)}, ${luaValue(data)}));
      local token = assert(tokenauth.create_token(${luaString(jid)}, grant, ${luaValue(role)}, ${luaValue(tokenTtl)}, ${luaValue(purpose)}));
      return { grantId = grant.id, token = token };`);
  }

  /** mod_tokenauth's view: grant id → grant (validated), or null. */
  async userGrants(user) {
    return this.lua(`
      local tokenauth = assert(${this.moduleEnv("tokenauth")});
      local grants = tokenauth.get_user_grants(${luaString(user)});
      if not grants then return nil end
      local r = {};
      for id, g in pairs(grants) do r[id] = { id = g.id, created = g.created, accessed = g.accessed, expires = g.expires } end
      return r;`);
  }

  /** Is a full JID in prosody.full_sessions? */
  async hasSession(fullJid) {
    return this.lua(`return prosody.full_sessions[${luaString(fullJid)}] ~= nil;`);
  }

  /** Is the named module loaded on the host? */
  async moduleLoaded(name) {
    return this.lua(`return ${this.moduleEnv(name)} ~= nil;`);
  }

  // ------------------------------------------------------------ storage
  //
  // Every helper here goes through Prosody's storage API inside the running
  // server (core.storagemanager), so it works on every backend; only the
  // `internal*` ones are about files and exist on internal storage alone.

  /** Lua expression opening `store` (keyval) on our host. */
  openStore(store) {
    return `assert(require "prosody.core.storagemanager".open(${luaString(HOST)}, ${luaString(store)}))`;
  }

  /**
   * Replace what `store` holds for `user` with the data of `luaSource`
   * (`return { ... }`: a store file as internal storage keeps it, e.g. a
   * fixture), through the storage API: on internal storage that writes
   * data/localhost/<store>/<user>.dat, on SQL the rows of (host, user,
   * store). The source is handed over in a file (no size limit) and
   * loaded in an empty environment.
   */
  async seedStore(store, user, luaSource) {
    const file = path.join(this.dir, `seed-${randomBytes(6).toString("hex")}.lua`);
    fs.writeFileSync(file, luaSource);
    if (this.ids) fs.chownSync(file, this.ids.uid, this.ids.gid);
    try {
      await this.lua(`
        local f = assert(io.open(${luaString(file)}));
        local src = f:read("a"); f:close();
        local data = assert(load(src, ${luaString(`=seed ${store}/${user}`)}, "t", {}))();
        assert(type(data) == "table" or data == nil, "seed source must return a table");
        assert(${this.openStore(store)}:set(${luaString(user)}, data));
        return true;`);
    } finally {
      fs.rmSync(file, { force: true });
    }
  }

  /**
   * What `store` holds for `user`, read through the storage API, as Lua
   * source in the format internal storage writes (`return { ... };`, by
   * util.serialization), or null when there is nothing.
   */
  async readStore(store, user) {
    return (await this.lua(`
      local data, err = ${this.openStore(store)}:get(${luaString(user)});
      if data == nil then assert(err == nil, err); return nil end
      return "return " .. require "prosody.util.serialization".serialize(data) .. ";\\n";`)) ?? null;
  }

  /** Internal storage only: the file that holds `store` of `user` (data/localhost/<store>/<user>.dat). */
  internalStoreFile(store, user) {
    this.requireStorage(["internal"], "store files");
    return path.join(this.hostDataDir, storeEncode(store), `${encode(user)}.dat`);
  }

  /** Throw (a test bug) unless this server uses one of `storages`. */
  requireStorage(storages, what) {
    if (!storages.includes(this.storage)) {
      throw new Error(`${what}: not supported on ${this.storage} storage (only ${storages.join(", ")})`);
    }
  }

  /**
   * Make writes (and, with `read: true`, reads too) of `store` fail for
   * the server from now on; returns `restore()`, which undoes it (calling
   * it again does nothing). `user` narrows the failure to one account
   * where the backend can (SQL); on internal storage every account of the
   * store is affected. Fails with "… not supported on X storage" where the
   * backend cannot do it.
   *
   * - internal: the store's directory is made read-only (0555; Prosody
   *   writes through a scratch file + rename) or, for reads, inaccessible
   *   (000, which breaks writes too). Created first if missing.
   * - sqlite: triggers on the `prosody` table abort INSERT/UPDATE/DELETE of
   *   the store's rows. Reads cannot be made to fail: `read: true` throws.
   * - postgres: triggers raise on INSERT/UPDATE/DELETE; for reads a
   *   restrictive row-level-security policy (forced on the table owner,
   *   Prosody's role) calls a function that raises on the store's rows.
   * - memory: not supported (throws).
   */
  async breakStore(store, { user = null, read = false, write = true } = {}) {
    if (!write) {
      throw new Error("breakStore: write: false is not supported (reads are only broken together with writes: "
        + "on internal storage both need the directory)");
    }
    switch (this.storage) {
      case "internal":
        return this.breakInternalStore(store, { read });
      case "sqlite":
        if (read) {
          throw new Error("breakStore: read failures are not supported on sqlite storage (SQLite has no SELECT triggers); "
            + "they can be tested on internal and postgres storage");
        }
        return this.breakSqlStore(store, { user, read, write });
      case "postgres":
        return this.breakSqlStore(store, { user, read, write });
      default:
        throw new Error(`breakStore: not supported on ${this.storage} storage`);
    }
  }

  async breakInternalStore(store, { read }) {
    const dir = path.join(this.hostDataDir, storeEncode(store));
    if (!fs.existsSync(dir)) {
      fs.mkdirSync(dir, { recursive: true });
      chownR(this.dataDir, this.ids);
    }
    const mode = fs.statSync(dir).mode & 0o7777;
    fs.chmodSync(dir, read ? 0o000 : 0o555);
    let restored = false;
    return async () => {
      if (restored) return;
      restored = true;
      fs.chmodSync(dir, mode);
    };
  }

  /** Run SQL statements (one per string) on the server's database with LuaDBI, inside the server. */
  async sqlExec(statements) {
    return this.lua(`
      local p = require "prosody.core.configmanager".get(${luaString(HOST)}, "sql");
      local DBI = require "DBI";
      local conn = assert(DBI.Connect(p.driver, p.database, p.username, p.password, p.host, p.port));
      conn:autocommit(true);
      local ok, err = pcall(function()
        for _, sql in ipairs(${luaValue(statements)}) do
          local stmt = assert(conn:prepare(sql));
          local ok, err = stmt:execute();
          stmt:close();
          assert(ok, tostring(err) .. " in: " .. sql);
        end
      end);
      conn:close();
      assert(ok, err);
      return true;`);
  }

  /**
   * LuaDBI's SQLite3 driver fails the next execution of a statement that
   * failed, with the same error again (sqlite3_reset hands the old error
   * back), and mod_storage_sql keeps one prepared statement per SQL text,
   * shared by every store: after a trigger aborts an INSERT into the
   * broken store, the next INSERT into any store fails once too. That is
   * LuaDBI's behaviour after any SQLite error, in production as well; to
   * break exactly one store, while a store is broken on SQLite
   * mod_storage_sql's engine drops its statement cache after a failed
   * transaction (`on`), and restore() puts the engine back and drops the
   * cache once more (`off`).
   */
  async sqliteStatementCacheGuard(on) {
    await this.lua(`
      local env = assert(prosody.hosts[${luaString(HOST)}].modules.storage_sql, "mod_storage_sql not loaded");
      local function drop(engine)
        for _, stmt in pairs(engine.prepared or {}) do pcall(stmt.close, stmt) end
        engine.prepared = {};
      end
      for _, engine in pairs(env.module:shared("/*/sql/connections")) do
        if ${on ? "true" : "false"} then
          if not rawget(engine, "e2e_guards") then
            local transaction = engine.transaction;
            engine.e2e_guards = 0;
            engine.transaction = function (self, ...)
              local r = table.pack(transaction(self, ...));
              if not r[1] then drop(self) end
              return table.unpack(r, 1, r.n);
            end
          end
          engine.e2e_guards = engine.e2e_guards + 1;
        elseif rawget(engine, "e2e_guards") then
          engine.e2e_guards = engine.e2e_guards - 1;
          if engine.e2e_guards == 0 then engine.transaction, engine.e2e_guards = nil, nil end
          drop(engine);
        end
      end
      return true;`);
  }

  async breakSqlStore(store, { user, read, write }) {
    const q = (v) => `'${String(v).replace(/'/g, "''")}'`;
    const tag = `e2e_break_${randomBytes(4).toString("hex")}`;
    const rowIs = (row) => `${row}."store" = ${q(store)}${user !== null ? ` AND ${row}."user" = ${q(user)}` : ""}`;
    const what = `e2e: ${read ? "reads and writes" : "writes"} of store ${store}${user !== null ? ` (${user})` : ""} are broken`;
    const up = [];
    const down = [];
    if (this.storage === "sqlite") {
      for (const [op, row] of [["INSERT", "NEW"], ["UPDATE", "NEW"], ["DELETE", "OLD"]]) {
        up.push(`CREATE TRIGGER "${tag}_${op.toLowerCase()}" BEFORE ${op} ON "prosody" WHEN ${rowIs(row)} `
          + `BEGIN SELECT RAISE(ABORT, ${q(what)}); END`);
        down.push(`DROP TRIGGER IF EXISTS "${tag}_${op.toLowerCase()}"`);
      }
    } else {
      up.push(`CREATE OR REPLACE FUNCTION "e2e_raise_trigger"() RETURNS trigger LANGUAGE plpgsql AS $e2e$
        BEGIN RAISE EXCEPTION '%', TG_ARGV[0]; END $e2e$`);
      {
        up.push(`CREATE TRIGGER "${tag}_w" BEFORE INSERT OR UPDATE ON "prosody" FOR EACH ROW WHEN (${rowIs("NEW")}) `
          + `EXECUTE FUNCTION "e2e_raise_trigger"(${q(what)})`);
        up.push(`CREATE TRIGGER "${tag}_d" BEFORE DELETE ON "prosody" FOR EACH ROW WHEN (${rowIs("OLD")}) `
          + `EXECUTE FUNCTION "e2e_raise_trigger"(${q(what)})`);
        down.push(`DROP TRIGGER IF EXISTS "${tag}_w" ON "prosody"`, `DROP TRIGGER IF EXISTS "${tag}_d" ON "prosody"`);
      }
      if (read) {
        up.push(`CREATE OR REPLACE FUNCTION "e2e_raise"(msg text) RETURNS boolean LANGUAGE plpgsql AS $e2e$
          BEGIN RAISE EXCEPTION '%', msg; END $e2e$`);
        up.push(`DO $e2e$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE tablename = 'prosody' AND policyname = 'e2e_allow') THEN
            CREATE POLICY "e2e_allow" ON "prosody" USING (true) WITH CHECK (true);
          END IF; END $e2e$`);
        up.push(`ALTER TABLE "prosody" ENABLE ROW LEVEL SECURITY`, `ALTER TABLE "prosody" FORCE ROW LEVEL SECURITY`);
        up.push(`CREATE POLICY "${tag}_r" ON "prosody" AS RESTRICTIVE FOR SELECT `
          + `USING (CASE WHEN ${rowIs(`"prosody"`)} THEN "e2e_raise"(${q(what)}) ELSE true END)`);
        down.push(`DROP POLICY IF EXISTS "${tag}_r" ON "prosody"`);
        down.push(`DO $e2e$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE tablename = 'prosody' AND policyname LIKE 'e2e\\_break\\_%') THEN
            DROP POLICY IF EXISTS "e2e_allow" ON "prosody";
            ALTER TABLE "prosody" NO FORCE ROW LEVEL SECURITY;
            ALTER TABLE "prosody" DISABLE ROW LEVEL SECURITY;
          END IF; END $e2e$`);
      }
    }
    if (this.storage === "sqlite") await this.sqliteStatementCacheGuard(true);
    try {
      await this.sqlExec(up);
    } catch (err) {
      await this.sqlExec(down).catch(() => {});
      if (this.storage === "sqlite") await this.sqliteStatementCacheGuard(false);
      throw err;
    }
    let restored = false;
    return async () => {
      if (restored) return;
      restored = true;
      await this.sqlExec(down);
      if (this.storage === "sqlite") await this.sqliteStatementCacheGuard(false);
    };
  }
}

/** Start a server; see ProsodyServer.configText() for `opts`. */
export async function startServer(opts = {}) {
  try {
    return await new ProsodyServer(opts).start();
  } catch (err) {
    // Once more on a new port and dir: a free port can be taken by another
    // process between our probe and Prosody's bind. A real start-up
    // problem fails twice.
    process.stderr.write(`# e2e: Prosody start failed, retrying once: ${err.message}\n`);
    return new ProsodyServer(opts).start();
  }
}
