#!/usr/bin/env node
// End-to-end benchmark of mod_client_management against a real Prosody 13:
//   node benches/e2e/run.js
// Installs tests/e2e's npm packages first if they are missing or stale (the
// same lock-file stamp as tests/e2e/run.sh), then runs bench.js. It measures
// and reports; it never fails because something is slow. Exit status: 0 when
// the benchmark ran, 2 when something it needs is missing, 1 when setting up
// or talking to the server broke. BENCH_PLUGINS="before=DIR,after=DIR" measures
// several builds in the same run. See benches/e2e/README.md.

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { moduleFileOf, parseBuilds } from "./builds.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");
const e2eDir = path.join(repo, "tests", "e2e");

function fail(msg) {
  process.stderr.write(`benches/e2e/run.js: ${msg}\n`);
  process.exit(2);
}

if (Number(process.versions.node.split(".")[0]) < 20) fail(`Node.js >= 20 is needed, found ${process.version}`);
// PROSODY / PROSODYCTL: the binaries to measure (the harness starts them); default from PATH.
for (const tool of [process.env.PROSODY || "prosody", process.env.PROSODYCTL || "prosodyctl", "npm"]) {
  if (spawnSync("sh", ["-c", 'command -v "$1"', "sh", tool]).status !== 0) {
    fail(`'${tool}' not found (scripts/install-deps.sh installs Prosody; npm comes with Node.js)`);
  }
}
let builds;
try {
  builds = parseBuilds(repo);
} catch (err) {
  fail(err.message);
}
for (const b of builds) {
  const moduleFile = moduleFileOf(b.dir);
  if (!fs.existsSync(moduleFile)) {
    fail(`${moduleFile} is missing: build the module first (${b.repoBuild ? "make plugin" : `benches/e2e/build-baseline.sh REV ${b.dir}`})`);
  }
}

// Same rule as tests/e2e/run.sh: install exactly what the lock file says, again whenever it changes.
const lock = path.join(e2eDir, "package-lock.json");
const stamp = path.join(e2eDir, "node_modules", ".e2e-lock");
const same = (a, b) => {
  try {
    return fs.readFileSync(a).equals(fs.readFileSync(b));
  } catch {
    return false;
  }
};
if (!same(lock, stamp)) {
  process.stderr.write("# installing tests/e2e npm packages (npm ci --prefix tests/e2e)\n");
  const r = spawnSync("npm", ["ci", "--prefix", e2eDir, "--no-audit", "--no-fund", "--loglevel=error"], { stdio: "inherit" });
  if (r.status !== 0) fail(`npm ci --prefix ${e2eDir} failed`);
  fs.copyFileSync(lock, stamp);
}

const { main } = await import("./bench.js");
try {
  await main({ repo });
  process.exit(0);
} catch (err) {
  process.stderr.write(`benches/e2e/run.js: setup or measurement broke: ${err?.stack ?? err}\n`);
  process.exit(1);
}
