// Glue between node:test and the fixtures: one server per test file (or
// per describe block), fresh accounts per test, clients closed after each
// test, and Prosody's log attached to a failing test's error.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { startServer } from "./server.js";
// Which storage backend this run uses, and node:test `skip` values for tests that make no sense on some.
export { STORAGE, skipOn } from "./server.js";
import { NS, login, tryLogin } from "./client.js";

/** Start a server before the tests of the enclosing scope and stop it after. */
export function useServer(opts = {}) {
  const fx = { server: null };
  before(async () => {
    fx.server = await startServer(opts);
  });
  after(async () => {
    await fx.server?.stop();
  });
  return fx;
}

/**
 * test() with a context: { server, account(prefix), login(opts),
 * tryLogin(opts), log(...) }. Sessions opened through it are closed
 * afterwards; on failure, the Prosody log lines of levels warn/error
 * written during the test are appended to the error message (all
 * levels with E2E_VERBOSE=1).
 */
export function e2eTest(fx, name, fn, opts = {}) {
  return test(name, { timeout: 60000, ...opts }, async (t) => {
    const server = fx.server;
    if (!server) throw new Error("server did not start (see the before hook's error)");
    const mark = server.logOffset();
    const sessions = [];
    const track = (s) => {
      if (s) sessions.push(s);
      return s;
    };
    const ctx = {
      t,
      server,
      account: (prefix) => server.newAccount(prefix),
      login: async (o) => track(await login(server, o)),
      tryLogin: async (o) => {
        const r = await tryLogin(server, o);
        track(r.session);
        return r;
      },
      track,
    };
    try {
      await fn(ctx);
    } catch (err) {
      const levels = process.env.E2E_VERBOSE === "1" ? null : ["warn", "error"];
      const lines = server.logSince(mark, levels);
      if (lines.length && err && typeof err === "object") {
        try {
          err.message += `\n--- prosody.log during this test (${levels ? levels.join("/") : "all"}) ---\n${lines.slice(-60).join("\n")}`;
        } catch {}
      }
      throw err;
    } finally {
      await Promise.all(sessions.map((s) => s.close()));
    }
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll `fn` until it returns truthy (returns that value) or time runs out (returns the last value). */
export async function eventually(fn, { timeout = 5000, interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  let v;
  for (;;) {
    v = await fn();
    if (v || Date.now() > deadline) return v;
    await sleep(interval);
  }
}

/** The token login is refused with a SASL <failure/> (SASL2's, or RFC 6120's for legacy SASL). */
export async function assertRefused(tryLogin, opts, what) {
  const r = await tryLogin({ timeout: 5000, ...opts });
  assert.equal(r.ok, false, `${what}: still logs in`);
  assert.ok(r.failure?.is("failure", opts.sasl2 === false ? NS.sasl : NS.sasl2), `${what}: ${r.error?.message}`);
}

/** The session got closed by the server, and is gone from full_sessions. */
export async function assertClosed(server, session, what) {
  assert.ok(await session.waitClosed(5000), `${what}: stream closed by the server`);
  assert.ok(await eventually(async () => !(await server.hasSession(session.jid))), `${what}: session gone on the server`);
}
