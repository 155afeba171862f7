// The harness itself, against Prosody *without* mod_client_management: every
// kind of login the module tests rely on must work here, so that a module
// test failing is the module's doing and not the harness's.

import assert from "node:assert/strict";
import { describe } from "node:test";

import { useServer, e2eTest } from "../lib/harness.js";
import { NS, xml, rawConnect, plainResponse } from "../lib/client.js";

describe("harness (no mod_client_management)", () => {
  const fx = useServer({ withoutModules: ["client_management"] });

  e2eTest(fx, "Prosody runs with the generated config, shell and Lua work", async ({ server }) => {
    assert.equal(await server.moduleLoaded("client_management"), false);
    for (const m of ["sasl2", "sasl2_bind2", "sasl2_fast", "sasl2_sm", "tokenauth", "saslauth", "smacks"]) {
      assert.equal(await server.moduleLoaded(m), true, `mod_${m} loaded`);
    }
    const res = await server.shell("> 1 + 1");
    assert.equal(res.code, 0);
    assert.match(res.stdout, /Result: 2/);
    assert.deepEqual(await server.lua("return { a = 1, b = 'x' }"), { a: 1, b: "x" });
  });

  e2eTest(fx, "SASL2 + Bind 2 with a user agent", async ({ account, login }) => {
    const a = await account();
    const c = await login({
      username: a.user, password: a.password, resource: "tag",
      userAgent: { id: "harness-ua", software: "Harness", device: "Box" },
    });
    assert.match(c.jid, new RegExp(`^${a.jid}/tag~`));
    assert.ok(c.success.getChild("bound", NS.bind2), `${c.success}`);
    const sent = c.sent.find((el) => el.is("authenticate", NS.sasl2));
    assert.equal(sent.getChild("user-agent").attrs.id, "harness-ua");
    assert.ok(sent.getChild("bind", NS.bind2));
    const pong = await c.iq(xml("ping", { xmlns: "urn:xmpp:ping" }), { to: "localhost" });
    assert.equal(pong.attrs.type, "result");
  });

  e2eTest(fx, "SASL2 without Bind 2, then RFC 6120 resource binding", async ({ account, login }) => {
    const a = await account();
    const c = await login({ username: a.user, password: a.password, bind2: false, resource: "plainbind" });
    assert.equal(c.jid, `${a.jid}/plainbind`);
    const sent = c.sent.find((el) => el.is("authenticate", NS.sasl2));
    assert.equal(sent.getChild("bind", NS.bind2), undefined);
    assert.ok(c.sent.some((el) => el.name === "iq" && el.getChild("bind", "urn:ietf:params:xml:ns:xmpp-bind")));
  });

  e2eTest(fx, "SASL2 without any user agent", async ({ account, login }) => {
    const a = await account();
    const c = await login({ username: a.user, password: a.password, userAgent: false });
    const sent = c.sent.find((el) => el.is("authenticate", NS.sasl2));
    assert.equal(sent.getChild("user-agent"), undefined);
    assert.ok(c.jid.startsWith(`${a.jid}/`));
  });

  e2eTest(fx, "FAST: token requested at password login, reused by a second client instance", async ({ account, login, tryLogin }) => {
    const a = await account();
    const ua = { id: "harness-fast", software: "Harness FAST" };
    const store = { token: null };
    const first = await login({ username: a.user, password: a.password, fast: store, userAgent: ua });
    const auth1 = first.sent.find((el) => el.is("authenticate", NS.sasl2));
    assert.ok(auth1.getChild("request-token", NS.fast), `${auth1}`);
    assert.ok(first.success.getChild("token", NS.fast), `${first.success}`);
    assert.equal(store.token.mechanism, "HT-SHA-256-NONE");
    assert.match(store.token.token, /^secret-token:fast-/);
    await first.close();

    const token = { ...store.token };
    const second = await login({ username: a.user, fast: { token }, userAgent: ua });
    const auth2 = second.sent.find((el) => el.is("authenticate", NS.sasl2));
    assert.equal(auth2.attrs.mechanism, "HT-SHA-256-NONE");
    assert.ok(auth2.getChild("fast", NS.fast));
    await second.close();

    // A wrong token is refused and not masked by a fallback.
    const bad = await tryLogin({ username: a.user, fast: { token: { ...token, token: `${token.token}x` } }, userAgent: ua });
    assert.equal(bad.ok, false);
    assert.ok(bad.failure?.is("failure", NS.sasl2), `${bad.error}`);
  });

  e2eTest(fx, "legacy RFC 6120 SASL (no SASL2)", async ({ account, login }) => {
    const a = await account();
    const c = await login({ username: a.user, password: a.password, sasl2: false, resource: "old" });
    assert.equal(c.jid, `${a.jid}/old`);
    assert.ok(c.sent.some((el) => el.is("auth", NS.sasl)));
    assert.ok(!c.sent.some((el) => el.is("authenticate", NS.sasl2)));
    const p = await login({ username: a.user, password: a.password, sasl2: false, mechanism: "PLAIN", resource: "plain" });
    assert.equal(p.jid, `${a.jid}/plain`);
  });

  e2eTest(fx, "OAUTHBEARER with a grant token made through the shell", async ({ server, account, login, tryLogin }) => {
    const a = await account();
    const g = await server.createGrant(a.user, { client: { name: "Harness App", uri: "https://h.invalid", id: "h-app", version: "9" } });
    assert.match(g.grantId, /^[A-Za-z0-9_-]{12}$/);
    assert.match(g.token, /^secret-token:/);
    const grants = await server.userGrants(a.user);
    assert.ok(grants[g.grantId]);

    const c = await login({ username: a.user, oauthToken: g.token, userAgent: { id: "harness-oauth" } });
    assert.ok(c.jid.startsWith(`${a.jid}/`));
    const legacy = await login({ username: a.user, oauthToken: g.token, sasl2: false, resource: "oauth-legacy" });
    assert.equal(legacy.jid, `${a.jid}/oauth-legacy`);

    // with FAST: a password-less client gets a token
    const store = { token: null };
    await login({ username: a.user, oauthToken: g.token, fast: store, userAgent: { id: "harness-oauth-fast" } });
    assert.ok(store.token);

    const bad = await tryLogin({ username: a.user, oauthToken: "secret-token:bm90LWEtdG9rZW4=", userAgent: { id: "harness-oauth" } });
    assert.equal(bad.ok, false);
    assert.ok(bad.failure?.is("failure", NS.sasl2));
  });

  e2eTest(fx, "raw socket: legacy <auth mechanism='PLAIN'> by hand", async ({ server, account }) => {
    const a = await account();
    const raw = await rawConnect(server);
    try {
      const features = await raw.openStream();
      assert.ok(features, "stream features");
      assert.ok(features.getChild("mechanisms", NS.sasl));
      assert.ok(features.getChild("authentication", NS.sasl2));
      const bad = await raw.sendAndWait(
        `<auth xmlns='${NS.sasl}' mechanism='PLAIN'>${plainResponse(a.user, "wrong")}</auth>`,
        (el) => el.attrs.xmlns === NS.sasl);
      assert.ok(bad?.is("failure", NS.sasl), `${bad}`);
      const ok = await raw.sendAndWait(
        `<auth xmlns='${NS.sasl}' mechanism='PLAIN'>${plainResponse(a.user, a.password)}</auth>`,
        (el) => el.attrs.xmlns === NS.sasl);
      assert.ok(ok?.is("success", NS.sasl), `${ok}`);
    } finally {
      raw.close();
    }
  });
});
