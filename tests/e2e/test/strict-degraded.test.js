// Issue 8, item 6 (PLAN "Strict mode fails closed; the loader"): when the
// native library cannot be loaded — missing, of another version (the version
// marker embedded in it), or half-copied — Prosody keeps running, the module
// still loads, enforce_client_ids still refuses id-less SASL2 and legacy SASL
// logins, list and revoke answer cancel/service-unavailable, and the log says
// what happened: `Loading native library PATH` (info), then one error naming
// the library path, both versions when known, and what to do.
//
// Each suite runs its own Prosody on a broken copy of build/plugin (see
// lib/plugin.js), with mod_saslauth loaded (the default modules), so that a
// module that failed to load would let legacy SASL logins in.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { e2eTest } from "../lib/harness.js";
import { startServer } from "../lib/server.js";
import { NS, xml } from "../lib/client.js";
import { NS_MC, NS_CAM, assertError } from "../lib/manage.js";
import { openRaw, sasl2Authenticate, legacyAuth, plainInitial, assertSasl2Failure, closeRaw } from "../lib/rawauth.js";
import { MODULE } from "../lib/inspect.js";
import { brokenPluginCopy, LIB_NAME } from "../lib/plugin.js";

const REFUSAL = { condition: "malformed-request", text: "Client identifier required but not supplied" };
const UNAVAILABLE = { type: "cancel", condition: "service-unavailable" };
/** Words of a hint at what to do about the library. */
const HINT = /\b(re)?(build|install|make|copy|replace|update|upgrade|download)\b/i;

/** A server on a broken plugin copy; a start-up failure (a crash) is kept for the first test to report. */
function useBrokenServer(kind) {
  const fx = { server: null, copy: null, startError: null };
  before(async () => {
    fx.copy = brokenPluginCopy(kind);
    if (fx.copy.problem) {
      // an intact copy would only test the healthy module: start nothing
      fx.startError = new Error(`cannot make the ${kind} library: ${fx.copy.problem}`);
      return;
    }
    try {
      fx.server = await startServer({ pluginPaths: [fx.copy.dir], options: { enforce_client_ids: true } });
    } catch (err) {
      fx.startError = err;
    }
  });
  after(async () => {
    await fx.server?.stop();
    fx.copy?.cleanup();
  });
  return fx;
}

/** Log lines (all sources and levels) since the start; those at `level` that name the native library. */
function libraryLines(server, copy, level) {
  const all = server.logSince(0);
  const lines = all.filter((l) => l.split("\t")[1] === level
    && (l.includes(copy.libPath) || l.includes(LIB_NAME) || /native (library|core)/i.test(l)));
  return { all, lines };
}

function degradedSuite(kind, label) {
  describe(label, () => {
    const fx = useBrokenServer(kind);

    test(`Prosody starts with a ${kind} native library (does not crash)`, () => {
      assert.equal(fx.startError, null, fx.copy?.problem ? fx.startError.message
        : `Prosody did not start with a ${kind} native library: ${fx.startError?.message}`);
    });

    e2eTest(fx, "Prosody starts and keeps running; mod_client_management is loaded (degraded)", async ({ server }) => {
      assert.ok(await server.moduleLoaded("client_management"),
        `mod_client_management is not loaded with a ${kind} library; errors: ${server.logSince(0, ["error"]).join("\n")}`);
      assert.equal(server.exitStatus, undefined, `Prosody exited: ${JSON.stringify(server.exitStatus)}`);
    });

    e2eTest(fx, "strict mode still refuses an id-less SASL2 login and a legacy SASL login", async ({ server, account, tryLogin }) => {
      const a = await account();
      const r = await tryLogin({ username: a.user, password: a.password, userAgent: false, timeout: 5000 });
      assert.equal(r.ok, false, `an id-less SASL2 login got in with a ${kind} library`);
      assertSasl2Failure(r.failure, REFUSAL, "SASL2 without <user-agent/>");
      {
        const { conn } = await openRaw(server, { from: a.jid });
        try {
          const reply = await sasl2Authenticate(conn, { mechanism: "PLAIN", initialResponse: plainInitial(a.user, a.password), userAgent: { software: "No Id" } });
          assertSasl2Failure(reply, REFUSAL, "raw SASL2 <user-agent/> without id");
        } finally {
          await closeRaw(conn);
        }
      }
      {
        const { conn, features } = await openRaw(server);
        try {
          assert.ok(features.getChild("mechanisms", NS.sasl), `legacy SASL is offered (mod_saslauth loaded): ${features}`);
          const reply = await legacyAuth(conn, { mechanism: "PLAIN", initialResponse: plainInitial(a.user, a.password) }, 3000);
          assert.ok(reply, "legacy <auth/> got no answer within 3 s");
          assert.ok(reply.is("failure", NS.sasl), `legacy SASL PLAIN with the right password was not refused with an RFC 6120 <failure/>: ${reply}`);
        } finally {
          await closeRaw(conn);
        }
      }
      const legacy = await tryLogin({ username: a.user, password: a.password, sasl2: false, timeout: 5000 });
      assert.equal(legacy.ok, false, `a legacy SASL login (xmpp.js) got in with a ${kind} library`);
    });

    e2eTest(fx, "a SASL2 login with a client id works; list and revoke answer cancel/service-unavailable in both namespaces", async ({ server, account, login }) => {
      assert.ok(await server.moduleLoaded("client_management"), "mod_client_management is not loaded (Prosody itself would answer service-unavailable)");
      const a = await account();
      const c = await login({ username: a.user, password: a.password, userAgent: { id: "degraded-ok", software: "Degraded" } });
      assert.ok(await server.hasSession(c.jid), "logged in");
      for (const ns of [NS_MC, NS_CAM]) {
        assertError(await c.iq(xml("list", { xmlns: ns }), { type: "get" }), UNAVAILABLE);
        assertError(await c.iq(xml("revoke", { xmlns: ns, id: "client/degraded-ok" }), { type: "set" }), UNAVAILABLE);
      }
      const api = await server.lua(`
        local list, err = ${MODULE}.get_active_clients(${JSON.stringify(a.user)});
        return { list = list ~= nil, err = err };`);
      assert.deepEqual(api, { list: false, err: "service-unavailable" }, "get_active_clients returns nil, \"service-unavailable\"");
      const shell = await server.shell(["user", "clients", a.jid]);
      assert.notEqual(shell.code, 0, `user clients succeeded without the library: ${shell.stdout}`);
      assert.match(shell.stderr, /^Error: \S/m, `user clients fails with a reason: ${shell.stdout}${shell.stderr}`);
      assert.ok(await server.hasSession(c.jid), "the session is unaffected");
    });

    e2eTest(fx, "the log: `Loading native library PATH` (info), then exactly one error naming the library, the versions and what to do", async ({ server }) => {
      const { copy } = fx;
      const { all, lines: errors } = libraryLines(server, copy, "error");
      assert.equal(errors.length, 1, `one error line about the native library, got ${errors.length}:\n${errors.join("\n")}`);
      const error = errors[0];
      assert.ok(error.includes(copy.libPath), `the error names the library path ${copy.libPath}: ${error}`);
      if (kind === "mismatched") {
        assert.ok(error.includes(copy.libVersion), `the error names the library's version ${copy.libVersion}: ${error}`);
        assert.ok(error.includes(copy.expectedVersion), `the error names the version the module needs, ${copy.expectedVersion}: ${error}`);
      }
      assert.match(error, HINT, `the error says what to do (rebuild, reinstall, …): ${error}`);
      if (kind !== "missing") {
        const loading = all.findIndex((l) => l.split("\t")[1] === "info" && l.includes(`Loading native library ${copy.libPath}`));
        assert.ok(loading >= 0, `no info line 'Loading native library ${copy.libPath}'`);
        assert.ok(loading < all.indexOf(error), "`Loading native library` is logged before the error");
      }
    });

    e2eTest(fx, "Prosody is still running at the end", async ({ server }) => {
      assert.equal(server.exitStatus, undefined, `Prosody exited: ${JSON.stringify(server.exitStatus)}`);
      assert.equal(server.proc.exitCode, null, "process still running");
      assert.ok(await server.lua("return true;"), "the admin shell answers");
    });
  });
}

for (const [kind, label] of [
  ["missing", "strict mode with the native library missing"],
  ["mismatched", "strict mode with a native library of another version (version marker patched)"],
  ["truncated", "a half-copied native library (truncated to half its size)"],
]) {
  degradedSuite(kind, label);
}
