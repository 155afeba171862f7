// Installing the release artifacts the way an admin would (README "Installing"):
// a fresh config whose plugin_server is the rocks directory of `make dist`
// (file://), `prosodyctl install mod_client_management` by name into
// installer_plugin_path, the module enabled, the server started, a client
// listed, then `prosodyctl remove`. prosodyctl exits 0 even when an install
// fails, so the files are checked, not only the exit status.
//
// Needs `make dist` (build/dist/rocks, or E2E_DIST_DIR/rocks). Without it the
// tests are skipped, saying so; with E2E_REQUIRE_DIST=1 (make test) they fail.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";

import { useServer, e2eTest } from "../lib/harness.js";
import { REPO_ROOT } from "../lib/server.js";
import { listClients, entry } from "../lib/manage.js";

const DIST_DIR = process.env.E2E_DIST_DIR ? path.resolve(process.env.E2E_DIST_DIR) : path.join(REPO_ROOT, "build", "dist");
const ROCKS = path.join(DIST_DIR, "rocks");
const haveDist = fs.existsSync(path.join(ROCKS, "manifest"));
const skip = !haveDist && process.env.E2E_REQUIRE_DIST !== "1"
  ? `${ROCKS}/manifest is missing: run \`make dist\` first` : false;

/** Cargo.toml's version, the rock's version must be <it>-1. */
const VERSION = execFileSync(path.join(REPO_ROOT, "scripts", "version.sh"), { encoding: "utf8" }).trim();
const sha256 = (buf) => createHash("sha256").update(buf).digest("hex");

describe("prosodyctl install mod_client_management from the rocks directory of make dist", { skip }, () => {
  const install = {};
  const fx = useServer({
    pluginPaths: [], // nothing from the checkout: only what prosodyctl installs
    globalOptions: (server) => ({
      plugin_server: `file://${path.join(server.dir, "rocks")}`,
      installer_plugin_path: path.join(server.dir, "custom_plugins"),
    }),
    async beforeStart(server) {
      assert.ok(haveDist, `${ROCKS}/manifest is missing: run \`make dist\` first`);
      // A copy the prosody user can read (the checkout may be private).
      fs.cpSync(ROCKS, path.join(server.dir, "rocks"), { recursive: true });
      if (server.ids) execFileSync("chown", ["-R", `${server.ids.uid}:${server.ids.gid}`, path.join(server.dir, "rocks")]);
      install.tree = path.join(server.dir, "custom_plugins");
      install.result = await server.prosodyctl(["install", "mod_client_management"], { timeout: 120000 });
    },
  });

  /** The module's libraries (module:require), as the checkout has them. */
  const LIBS = fs.readdirSync(path.join(REPO_ROOT, "lua")).filter((n) => n.endsWith(".lib.lua"));
  const files = () => ({
    lua: path.join(install.tree, "share", "lua", "5.4", "mod_client_management.lua"),
    libs: LIBS.map((n) => path.join(install.tree, "share", "lua", "5.4", n)),
    lib: path.join(install.tree, "lib", "lua", "5.4", "client_management.so"),
    rock: path.join(install.tree, "lib", "luarocks", "rocks-5.4", "mod_client_management", `${VERSION}-1`),
  });

  test("prosodyctl install: exit status 0, our rock's files in installer_plugin_path", () => {
    const r = install.result;
    assert.ok(r, "prosodyctl install did not run");
    const out = `${r.stdout}${r.stderr}`;
    assert.equal(r.code, 0, out);
    assert.match(out, new RegExp(`Installing mod_client_management in ${install.tree.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
    assert.match(out, new RegExp(`mod_client_management ${VERSION.replace(/\./g, "\\.")}-1 is now installed`), out);
    // prosodyctl's own help after an install by name (README "Installing" quotes it)
    assert.match(out, /mod_client_management: https:\/\/modules\.prosody\.im\/mod_client_management\.html/);
    const f = files();
    assert.ok(f.libs.length > 0, "no lua/*.lib.lua in the checkout");
    for (const file of [f.lua, ...f.libs, f.lib, f.rock]) assert.ok(fs.existsSync(file), `${file} missing after install:\n${out}`);
    // the binary rock was installed (not built from the source rock): the same stripped library
    const rock = fs.readdirSync(ROCKS).find((n) => n.startsWith(`mod_client_management-${VERSION}-1.`) && !n.endsWith(".src.rock") && n.endsWith(".rock"));
    assert.ok(rock, `no binary rock in ${ROCKS}`);
    const packed = execFileSync("unzip", ["-p", path.join(ROCKS, rock), "lib/client_management.so"], { maxBuffer: 64 << 20 });
    assert.equal(sha256(fs.readFileSync(f.lib)), sha256(packed), "installed library = the binary rock's");
  });

  e2eTest(fx, "the installed module is loaded, with its native library from the installer tree", async ({ server }) => {
    const loadedFrom = await server.lua(`local m = ${server.moduleEnv("client_management")}; return m and m.module.path;`);
    assert.equal(loadedFrom, files().lua);
    const log = server.logSince(0).join("\n");
    assert.ok(log.includes(files().lib), `the log names ${files().lib}`);
  });

  e2eTest(fx, "a client logs in and is listed", async ({ account, login }) => {
    const a = await account();
    const c = await login({ username: a.user, password: a.password, userAgent: { id: "e2e-installed", software: "E2E Install Check" } });
    const { clients } = await listClients(c);
    const e = entry(clients, "client/e2e-installed");
    assert.equal(e.connected, "true");
    assert.equal(e.software, "E2E Install Check");
  });

  e2eTest(fx, "prosodyctl remove mod_client_management removes the files", async ({ server }) => {
    const r = await server.prosodyctl(["remove", "mod_client_management"], { timeout: 120000 });
    const out = `${r.stdout}${r.stderr}`;
    assert.equal(r.code, 0, out);
    const f = files();
    for (const file of [f.lua, ...f.libs, f.lib, f.rock]) assert.ok(!fs.existsSync(file), `${file} still there after remove:\n${out}`);
    const list = await server.prosodyctl(["list"]);
    assert.doesNotMatch(list.stdout, /mod_client_management/, list.stdout);
  });
});
