// Part 0 of the e2e benchmark (issue 16): a list reply against its limits and against the
// community module, at LIMIT_SIZES entries, under Prosody's default GC and under
// gc = { mode = "generational" }. See README.md, "Limits".
//
// For each GC mode: one server per build, with mod_bench_limits (plugins/) beside the module,
// and, when BENCH_COMMUNITY names a directory holding mod_client_management/, one server with
// the community module instead. Every target is timed in every round, in an order alternating
// between rounds:
//   ours       the list request (prosody namespace, the only one the community module has)
//   C          the same server answering with a pre-built util.stanza of identical content
//   D          the same server answering with that reply already serialised
//   community  the community module on its own server, the same seeded store
// Then, inside each server with the collector stopped, the Lua memory one list allocates
// (handler, stanzas/out filters and serialisation, through a stream-like fake origin).

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const LIMITS_PLUGINS = path.join(HERE, "plugins");
const NS_LIMITS = "urn:x-bench:limits";

/** The community module's directory (holding mod_client_management/), or null with why. */
export function communityDir() {
  const dir = process.env.BENCH_COMMUNITY;
  if (!dir) return { dir: null, why: "BENCH_COMMUNITY is not set" };
  const abs = path.resolve(dir);
  const file = path.join(abs, "mod_client_management", "mod_client_management.lua");
  if (!fs.existsSync(file)) return { dir: null, why: `${file} does not exist` };
  return { dir: abs, why: null };
}

export const GC_MODES = [
  { key: "default", label: "Prosody's default GC (incremental)", globalOptions: {} },
  { key: "generational", label: "gc = { mode = \"generational\" }", globalOptions: { gc: { mode: "generational" } } },
];

/**
 * Lua run in a server: the KiB of Lua memory one list request allocates with the collector
 * stopped (minimum of `reps`), on a stream made by Prosody's own session manager over a fake
 * connection (so the reply goes the way it goes on a real stream); with `reader`, the stream
 * has a `stanzas/out` filter that reads every stanza (as with XEP-0198, CSI, any module's).
 */
export function allocatedLua({ HOST, luaString, user, ns, reader = false, reps = 5 }) {
  return `
    local st = require "prosody.util.stanza";
    local um = require "prosody.core.usermanager";
    local host = ${luaString(HOST)};
    local user = ${luaString(user)};
    local ns = ${luaString(ns)};
    local bare = user.."@"..host;
    local events = prosody.hosts[host].events;
    local written;
    local conn = { ip = function () return "127.0.0.1"; end,
      write = function (_, data) written = data; return #data; end };
    local origin = require "prosody.core.sessionmanager".new_session(conn);
    origin.type, origin.username, origin.host, origin.full_jid = "c2s", user, host, bare.."/bench-alloc";
    origin.role = um.get_user_role(user, host);
    if ${reader ? "true" : "false"} then
      require "prosody.util.filters".add_filter(origin, "stanzas/out", function (s) return s.name and s; end);
    end
    local best, bytes = math.huge, 0;
    for i = 1, ${reps} do
      local iq = st.iq({ type = "get", id = "bench-alloc-"..i, to = bare, from = origin.full_jid })
        :tag("list", { xmlns = ns }):up();
      collectgarbage("collect");
      collectgarbage("stop");
      local before = collectgarbage("count");
      local ok, err = pcall(events.fire_event, "iq-get/self/"..ns..":list", { origin = origin, stanza = iq });
      local after = collectgarbage("count");
      collectgarbage("restart");
      assert(ok, err);
      best = math.min(best, after - before);
      bytes = written and #written or 0;
    end
    collectgarbage("collect");
    return { kib = best, bytes = bytes };`;
}

/** Lua run in one of our servers: our reply for `user`, held by mod_bench_limits for C and D. */
export function holdLua({ HOST, luaString, user, ns, moduleEnv }) {
  return `
    local st = require "prosody.util.stanza";
    local um = require "prosody.core.usermanager";
    local host = ${luaString(HOST)};
    local user = ${luaString(user)};
    local bare = user.."@"..host;
    local reply;
    local origin = { username = user, host = host, type = "c2s", full_jid = bare.."/bench-hold",
      role = um.get_user_role(user, host), send = function (s) reply = s; return true; end };
    local iq = st.iq({ type = "get", id = "bench-hold", to = bare, from = origin.full_jid })
      :tag("list", { xmlns = ${luaString(ns)} }):up();
    assert(prosody.hosts[host].events.fire_event("iq-get/self/${ns}:list", { origin = origin, stanza = iq }));
    assert(reply and reply.attr.type == "result", "no list result to hold");
    return assert(${moduleEnv("bench_limits")}, "mod_bench_limits not loaded").hold(user, reply.tags[1]);`;
}

export const limitRequest = (kind) => `<${kind} xmlns='${NS_LIMITS}'/>`;
