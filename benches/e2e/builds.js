// Which plugin builds the end-to-end benchmark measures (no dependencies: run.js checks
// them before the npm packages are installed).
//
//   BENCH_PLUGINS="before=/tmp/bench-before,after=build/plugin"
//
// Each entry is LABEL=DIR (or just DIR, labelled build1, build2, …); DIR holds
// mod_client_management/ (what `make plugin` or benches/e2e/build-baseline.sh lays out).
// Relative DIRs are taken from the current directory. Without BENCH_PLUGINS: one build,
// E2E_PLUGIN_DIR or the checkout's build/plugin. Ratios in the report are last / first.

import path from "node:path";

export const moduleFileOf = (dir) => path.join(dir, "mod_client_management", "mod_client_management.lua");

export function parseBuilds(repo, env = process.env) {
  const repoPlugin = path.join(repo, "build", "plugin");
  const spec = (env.BENCH_PLUGINS ?? "").trim();
  if (!spec) {
    const dir = env.E2E_PLUGIN_DIR ? path.resolve(env.E2E_PLUGIN_DIR) : repoPlugin;
    return [{ label: "build", dir, repoBuild: dir === repoPlugin }];
  }
  const builds = [];
  spec.split(",").map((s) => s.trim()).filter(Boolean).forEach((item, i) => {
    const eq = item.indexOf("=");
    const label = eq > 0 ? item.slice(0, eq).trim() : `build${i + 1}`;
    const dir = path.resolve(eq > 0 ? item.slice(eq + 1).trim() : item);
    if (!/^[A-Za-z0-9._-]+$/.test(label)) throw new Error(`BENCH_PLUGINS: label '${label}' must be letters, digits, '.', '_' or '-'`);
    if (builds.some((b) => b.label === label)) throw new Error(`BENCH_PLUGINS: label '${label}' is given twice`);
    builds.push({ label, dir, repoBuild: dir === repoPlugin });
  });
  if (!builds.length) throw new Error("BENCH_PLUGINS names no build");
  return builds;
}
