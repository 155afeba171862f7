// Broken copies of the built plugin (build/plugin/mod_client_management/),
// for servers that must survive a missing, mismatched or half-copied native
// library (PLAN "Strict mode fails closed; the loader").

import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import { PLUGIN_DIR, REPO_ROOT } from "./server.js";

export const LIB_NAME = "client_management.so";

/** The crate version, from Cargo.toml (the only place it is written). */
export function crateVersion(repo = REPO_ROOT) {
  const toml = fs.readFileSync(path.join(repo, "Cargo.toml"), "utf8");
  const pkg = toml.split(/^\[/m).find((s) => s.startsWith("package]"));
  const m = pkg && /^version\s*=\s*"([^"]+)"/m.exec(pkg);
  if (!m) throw new Error(`no [package] version in ${path.join(repo, "Cargo.toml")}`);
  return m[1];
}

/** The marker the library embeds: ASCII `client_management native core VERSION for Lua 5.4` followed by NUL. */
export const versionMarker = (version) => Buffer.from(`client_management native core ${version} for Lua 5.4\0`, "ascii");

/** Another version string of the same length (digits changed). */
export function otherVersion(version) {
  let other = version.replace(/\d/g, "9");
  if (other === version) other = version.replace(/\d/g, "0");
  return other;
}

/**
 * A copy of the plugin directory in a fresh temp dir, made readable for the
 * prosody user, with its native library
 *   "missing":    deleted;
 *   "mismatched": the version inside the embedded marker replaced by
 *                 otherVersion() (same length);
 *   "truncated":  cut to half its size (a half-copied file).
 * → { dir (for plugin_paths), libPath, expectedVersion, libVersion, problem, cleanup() }.
 * `problem` is a sentence when the copy could not be made as asked (e.g. no
 * marker in the library); the copy is then left as built.
 */
export function brokenPluginCopy(kind, { sourceDir = PLUGIN_DIR } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `prosody-e2e-plugin-${kind}-`));
  fs.chmodSync(dir, 0o755);
  fs.cpSync(sourceDir, dir, { recursive: true });
  const moduleDir = path.join(dir, "mod_client_management");
  const libPath = path.join(moduleDir, LIB_NAME);
  const expectedVersion = crateVersion();
  const copy = {
    dir, libPath, expectedVersion, libVersion: null, problem: null,
    cleanup: () => {
      if (process.env.KEEP_E2E === "1") return;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  if (!fs.existsSync(libPath)) {
    copy.problem = `${path.join(sourceDir, "mod_client_management", LIB_NAME)} does not exist (make plugin)`;
    return copy;
  }
  if (kind === "missing") {
    fs.rmSync(libPath);
  } else if (kind === "mismatched") {
    const lib = fs.readFileSync(libPath);
    const marker = versionMarker(expectedVersion);
    let at = lib.indexOf(marker);
    if (at < 0) {
      copy.problem = `the version marker ${JSON.stringify(marker.toString("ascii"))} (PLAN: the ASCII bytes `
        + `'client_management native core VERSION for Lua 5.4' and a NUL, VERSION = Cargo.toml's ${expectedVersion}) `
        + `is not in ${path.join(sourceDir, "mod_client_management", LIB_NAME)}: cannot make a mismatched library`;
      return copy;
    }
    copy.libVersion = otherVersion(expectedVersion);
    const patched = versionMarker(copy.libVersion);
    while (at >= 0) {
      patched.copy(lib, at);
      at = lib.indexOf(marker, at + 1);
    }
    fs.writeFileSync(libPath, lib);
  } else if (kind === "truncated") {
    const size = fs.statSync(libPath).size;
    fs.truncateSync(libPath, Math.floor(size / 2));
  } else {
    throw new Error(`unknown kind of broken plugin: ${kind}`);
  }
  for (const p of [dir, moduleDir]) fs.chmodSync(p, 0o755);
  for (const f of fs.readdirSync(moduleDir)) fs.chmodSync(path.join(moduleDir, f), 0o755);
  return copy;
}
