// Strict mode, enforce_client_ids = true: ARCHITECTURE.md §3 (last bullet), with and
// without mod_saslauth loaded.

import assert from "node:assert/strict";
import { describe } from "node:test";

import { useServer, e2eTest } from "../lib/harness.js";
import { NS, rawConnect, plainResponse } from "../lib/client.js";
import { listClients, entry } from "../lib/manage.js";

const REFUSAL_TEXT = "Client identifier required but not supplied";

/** Exactly <failure xmlns=sasl2><malformed-request xmlns=sasl/><text>…</text></failure>. */
function assertStrictFailure(el, what) {
  assert.ok(el, `${what}: no answer`);
  assert.ok(el.is("failure", NS.sasl2), `${what}: ${el}`);
  const children = el.getChildElements();
  assert.deepEqual(children.map((c) => `${c.getNS()} ${c.name}`).sort(), [
    `${NS.sasl} malformed-request`,
    `${NS.sasl2} text`,
  ], `${what}: ${el}`);
  assert.equal(el.getChild("malformed-request", NS.sasl).children.length, 0);
  assert.equal(el.getChildText("text", NS.sasl2), REFUSAL_TEXT, `${what}: ${el}`);
}

const answered = (el) => [NS.sasl, NS.sasl2].includes(el.attrs.xmlns) || el.is("error", NS.streams);

function strictSuite(label, serverOpts, { saslauth }) {
  describe(label, () => {
    const fx = useServer(serverOpts);

    e2eTest(fx, "SASL2 without a user-agent id is refused before anything else", async ({ account, tryLogin }) => {
      const a = await account();
      const variants = [
        ["no <user-agent/>", false],
        ["<user-agent/> without id", { id: null, software: "No Id" }],
        ["<user-agent id=''/>", { id: "" }],
      ];
      for (const [what, userAgent] of variants) {
        // with a FAST token request as well: no token may come out of it
        const store = { token: null };
        const r = await tryLogin({ username: a.user, password: a.password, userAgent, fast: store, timeout: 5000 });
        assert.equal(r.ok, false, `${what}: logged in`);
        assertStrictFailure(r.failure, what);
        assert.equal(store.token, null, `${what}: no FAST token`);
      }
    });

    e2eTest(fx, "raw SASL2 <authenticate/> without user agent gets the exact failure", async ({ server, account }) => {
      const a = await account();
      const raw = await rawConnect(server);
      try {
        const features = await raw.openStream({ from: a.jid });
        assert.ok(features?.getChild("authentication", NS.sasl2), `${features}`);
        const reply = await raw.sendAndWait(
          `<authenticate xmlns='${NS.sasl2}' mechanism='PLAIN'><initial-response>${plainResponse(a.user, a.password)}</initial-response></authenticate>`,
          answered, 3000);
        assertStrictFailure(reply, "raw SASL2");
      } finally {
        raw.close();
      }
    });

    e2eTest(fx, `legacy <auth/> gets an RFC 6120 <failure/> promptly (mod_saslauth ${saslauth ? "loaded" : "not loaded"})`, async ({ server, account }) => {
      const a = await account();
      for (const mechanism of ["PLAIN", "SCRAM-SHA-1"]) {
        const raw = await rawConnect(server);
        try {
          const features = await raw.openStream();
          assert.ok(features, "stream features");
          assert.equal(!!features.getChild("mechanisms", NS.sasl), saslauth,
            `legacy mechanisms offered iff mod_saslauth is loaded: ${features}`);
          const initial = mechanism === "PLAIN"
            ? plainResponse(a.user, a.password)
            : Buffer.from(`n,,n=${a.user},r=e2enonce0123456789`).toString("base64");
          const t0 = Date.now();
          const reply = await raw.sendAndWait(`<auth xmlns='${NS.sasl}' mechanism='${mechanism}'>${initial}</auth>`, answered, 3000);
          assert.ok(reply, `${mechanism}: no answer within 3 s`);
          assert.ok(reply.is("failure", NS.sasl), `${mechanism}: expected an RFC 6120 failure, got ${reply}`);
          assert.ok(Date.now() - t0 < 3000);
        } finally {
          raw.close();
        }
      }
    });

    e2eTest(fx, saslauth ? "a legacy-only client is refused, not left hanging" : "a legacy-only client cannot log in", async ({ account, tryLogin }) => {
      const a = await account();
      // Without mod_saslauth no legacy mechanism is offered: xmpp.js then
      // has nothing to try and just waits, so only "not logged in" counts.
      const r = await tryLogin({ username: a.user, password: a.password, sasl2: false, timeout: saslauth ? 5000 : 2000 });
      assert.equal(r.ok, false, "logged in through legacy SASL");
      if (saslauth) {
        // mechanisms are offered, so the client tries and must get an answer
        assert.ok(r.failure?.is("failure", NS.sasl), `${r.error?.message}`);
      }
    });

    e2eTest(fx, "SASL2 with a client id logs in and is listed", async ({ account, login }) => {
      const a = await account();
      const c = await login({ username: a.user, password: a.password, userAgent: { id: "e2e-strict-ok", software: "Strict OK" } });
      const e = entry((await listClients(c)).clients, "client/e2e-strict-ok");
      assert.equal(e.connected, "true");
      assert.deepEqual(e.auth, ["password"]);
      assert.equal(e.software, "Strict OK");
    });

    e2eTest(fx, `an error is logged at load ${saslauth ? "because" : "only if"} mod_saslauth is enabled`, async ({ server }) => {
      const errors = server.logSince(0, ["error"]).filter((l) => /client_management/.test(l.split("\t")[0]));
      if (saslauth) {
        assert.ok(errors.some((l) => /saslauth/i.test(l)), `an error about mod_saslauth from mod_client_management in:\n${errors.join("\n")}`);
      } else {
        assert.deepEqual(errors, []);
      }
    });

    if (saslauth) {
      // Prosody loads a host's modules in no fixed order; both orders, made
      // deterministic here (last test of the suite: it reloads modules).
      e2eTest(fx, "the error is logged whichever of the two modules loads first", async ({ server }) => {
        const mm = `require "prosody.core.modulemanager"`;
        const errorsSince = (mark) => server.logSince(mark, ["error"])
          .filter((l) => /client_management/.test(l.split("\t")[0]) && /saslauth/i.test(l));

        let mark = server.logOffset();
        await server.lua(`local mm = ${mm}; mm.unload("localhost", "saslauth"); assert(mm.load("localhost", "saslauth")); return true;`);
        assert.ok(errorsSince(mark).length > 0, "mod_saslauth loaded after mod_client_management: no error logged");

        mark = server.logOffset();
        await server.lua(`local mm = ${mm}; assert(mm.reload("localhost", "client_management")); return true;`);
        assert.ok(errorsSince(mark).length > 0, "mod_client_management loaded after mod_saslauth: no error logged");
        assert.equal(await server.moduleLoaded("saslauth"), true);
      });
    }
  });
}

strictSuite("strict mode with mod_saslauth", { options: { enforce_client_ids: true } }, { saslauth: true });
strictSuite("strict mode without mod_saslauth", { options: { enforce_client_ids: true }, withoutModules: ["saslauth"] }, { saslauth: false });
