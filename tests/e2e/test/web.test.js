// The web page and JSON API (issue #17, §12) against a real Prosody: its HTTP service on
// 127.0.0.1 (HTTPS with a certificate made at test time), driven by headless Chromium
// (Debian's package, through playwright-core) and by a plain HTTP client.
//
// Screenshots of the page (web-clients.png, web-clients-phone.png) go to build/e2e-captures/web/,
// and to docs/ for the README with E2E_UPDATE_DOCS=1.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe } from "node:test";

import { useServer, e2eTest, eventually, assertRefused, assertClosed } from "../lib/harness.js";
import { HOST, REPO_ROOT } from "../lib/server.js";
import { listClients, revoke, entry, assertResult } from "../lib/manage.js";
import {
  WEB_PATH, webServerOptions, webPorts, request, api, form, sessionCookie, launchBrowser, newPage, browserLogin,
} from "../lib/web.js";

const SHOTS = process.env.E2E_UPDATE_DOCS === "1" ? path.join(REPO_ROOT, "docs") : path.join(REPO_ROOT, "build", "e2e-captures", "web");
const WEB_NAME = "Web: Manage clients";

/** A password-less client with a FAST token (grant login, then FAST), connected by FAST. */
async function fastClient({ server, login }, a, ua) {
  const g = await server.createGrant(a.user, { client: { name: ua.software, id: `${ua.id}-app`, uri: "https://app.invalid/", version: "2.1" } });
  const store = { token: null };
  const first = await login({ username: a.user, oauthToken: g.token, fast: store, userAgent: ua });
  assert.ok(store.token, "FAST token issued");
  const fastToken = { ...store.token };
  await first.close();
  const session = await login({ username: a.user, fast: { token: { ...fastToken } }, userAgent: ua });
  return { session, fastToken, grant: g };
}

/** Grant ids of an account, as mod_tokenauth validates them. */
async function grantIds(server, user) {
  return Object.keys((await server.userGrants(user)) || {});
}

const ports = await webPorts();
const httpsBase = `https://localhost:${ports.https}`;
const httpBase = `http://localhost:${ports.http}`;

describe("web page over HTTPS, in a browser", () => {
  // 127.0.0.1 is not a trusted proxy here: plain HTTP is plain HTTP.
  const fx = useServer(webServerOptions(ports, {
    trustedProxies: ["192.0.2.1"],
    options: { client_management_web_login_attempts_per_ip: 100, client_management_web_password_url: "https://localhost/password" },
  }));
  let browser;
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });

  e2eTest(fx, "log in, see every client of the account; this browser is marked; usable at 360 px", async (ctx) => {
    const { server, login } = ctx;
    // A readable name for the screenshots (the only test of this server using it).
    const a = { user: "alice", password: "correct horse battery staple" };
    await server.register(a.user, a.password);
    const fast = await fastClient(ctx, a, { id: "web-conversations", software: "Conversations", device: "Pixel 8" });
    const laptop = await login({ username: a.user, password: a.password, userAgent: { id: "web-gajim", software: "Gajim", device: "Laptop" } });
    await server.createGrant(a.user, { client: { name: "Movim", uri: "https://movim.invalid/", id: "movim", version: "0.29" } });

    const { context, page, dialogs } = await newPage(browser);
    try {
      const landed = await browserLogin(page, httpsBase, a);
      assert.equal(landed.status(), 200);
      const headers = landed.headers();
      assert.match(headers["content-security-policy"], /default-src 'none'/);
      assert.match(headers["content-security-policy"], /frame-ancestors 'none'/);
      assert.equal(headers["referrer-policy"], "no-referrer");
      assert.equal(headers["cache-control"], "no-store");

      const cookies = await context.cookies();
      const cookie = cookies.find((c) => c.name === "__Host-client_management");
      assert.ok(cookie, "session cookie set");
      assert.equal(cookie.httpOnly, true);
      assert.equal(cookie.secure, true);
      assert.equal(cookie.sameSite, "Strict");
      assert.equal(cookie.path, "/");
      assert.match(cookie.value, /^secret-token:/, "the cookie holds the token only");

      // What the XMPP list shows, the page shows, in the same order.
      const xmppIds = (await listClients(laptop)).clients.map((c) => c.id);
      const pageIds = await page.$$eval("li.client", (items) => items.map((i) => i.dataset.id));
      assert.deepEqual(pageIds, xmppIds);
      const web = (await listClients(laptop)).clients.find((c) => c.software === WEB_NAME);
      assert.ok(web, "the web session is listed over XMPP as Web: Manage clients");
      assert.equal(web.type, "access");
      assert.equal(web.device, "Chrome", "the browser family only");

      const fastItem = page.locator(`li.client[data-id="client/web-conversations"]`);
      assert.match(await fastItem.locator("h2").innerText(), /Conversations/);
      assert.match(await fastItem.innerText(), /Pixel 8/);
      assert.match(await fastItem.innerText(), /FAST token/);
      assert.match(await fastItem.innerText(), /Connected/);
      assert.match(await fastItem.innerText(), /First seen/);
      const here = page.locator("li.client.this");
      assert.equal(await here.count(), 1);
      assert.equal(await here.getAttribute("data-id"), web.id);
      assert.match(await here.innerText(), /This browser/);
      assert.match(await page.locator(`li.client[data-id="client/web-gajim"]`).innerText(), /Password/);
      assert.equal(await page.locator(`li.client[data-id="client/web-gajim"] a.button`).innerText(), "Revoke…");

      fs.mkdirSync(SHOTS, { recursive: true });
      await page.screenshot({ path: path.join(SHOTS, "web-clients.png"), fullPage: true });

      await page.setViewportSize({ width: 360, height: 780 });
      await page.reload();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(overflow <= 360, `no horizontal scrolling at 360 px (content is ${overflow} px wide)`);
      const button = await page.locator(`li.client[data-id="client/web-conversations"] button`).boundingBox();
      assert.ok(button && button.x >= 0 && button.x + button.width <= 360, "the Revoke button is on screen");
      await page.screenshot({ path: path.join(SHOTS, "web-clients-phone.png"), fullPage: true });
      assert.deepEqual(dialogs, []);
      await fast.session.close();
    } finally {
      await context.close();
    }
  });

  e2eTest(fx, "revoke a FAST client: its stream closes and its tokens are refused", async (ctx) => {
    const { server, account, tryLogin } = ctx;
    const a = await account("web");
    const ua = { id: "web-fast", software: "Siskin", device: "iPhone" };
    const fast = await fastClient(ctx, a, ua);
    const { context, page } = await newPage(browser);
    try {
      await browserLogin(page, httpsBase, a);
      const [nav] = await Promise.all([
        page.waitForNavigation(),
        page.click(`li.client[data-id="client/${ua.id}"] button`),
      ]);
      assert.equal(nav.status(), 200);
      assert.match(await page.locator("p.notice").innerText(), /Access revoked/);
      assert.equal(await page.locator(`li.client[data-id="client/${ua.id}"]`).count(), 0);
      await assertClosed(server, fast.session, "revoked FAST client");
      await assertRefused(tryLogin, { username: a.user, fast: { token: { ...fast.fastToken } }, userAgent: ua }, "its FAST token");
      await assertRefused(tryLogin, { username: a.user, oauthToken: fast.grant.token, userAgent: ua }, "its grant token");
    } finally {
      await context.close();
    }
  });

  e2eTest(fx, "a password client: the confirm step says only a password change stops it", async ({ account, login, server }) => {
    const a = await account("web");
    const pw = await login({ username: a.user, password: a.password, userAgent: { id: "web-pw", software: "Dino" } });
    const { context, page } = await newPage(browser);
    try {
      await browserLogin(page, httpsBase, a);
      await Promise.all([page.waitForNavigation(), page.click(`li.client[data-id="client/web-pw"] a.button`)]);
      const text = await page.locator("main").innerText();
      assert.match(text, /logs in with your password/);
      assert.match(text, /Only changing your password stops it/);
      assert.equal(await page.locator("a", { hasText: "Change your password" }).getAttribute("href"), "https://localhost/password");
      assert.ok(await server.hasSession(pw.jid), "nothing changed");
    } finally {
      await context.close();
    }
  });

  e2eTest(fx, "sign out all others (confirmed), then log out: the web grant is gone", async (ctx) => {
    const { server, account, login } = ctx;
    const a = await account("web");
    const fast = await fastClient(ctx, a, { id: "web-so-fast", software: "Monal", device: "iPad" });
    const pw = await login({ username: a.user, password: a.password, userAgent: { id: "web-so-pw", software: "Gajim" } });
    const idle = await server.createGrant(a.user);
    const { context, page } = await newPage(browser);
    try {
      await browserLogin(page, httpsBase, a);
      const webGrant = (await page.locator("li.client.this").getAttribute("data-id")).replace(/^grant\//, "");
      await Promise.all([page.waitForNavigation(), page.locator("a", { hasText: "Sign out all other clients" }).click()]);
      assert.match(await page.locator("main").innerText(), /Sign out 3 other client\(s\) and close 2 other connection\(s\)/);
      await Promise.all([page.waitForNavigation(), page.locator("button", { hasText: "Sign out all other clients" }).click()]);
      assert.match(await page.locator("p.notice").innerText(), /All other clients are signed out/);
      await assertClosed(server, fast.session, "FAST client");
      await assertClosed(server, pw, "password client's connection");
      const grants = await grantIds(server, a.user);
      assert.ok(!grants.includes(idle.grantId), "other grant revoked");
      assert.deepEqual(grants, [webGrant], "this browser's grant is spared");
      // The password client stays listed: it needs a password change.
      assert.deepEqual(await page.$$eval("li.client", (l) => l.map((i) => i.dataset.id)).then((x) => x.sort()),
        ["client/web-so-pw", `grant/${webGrant}`].sort());

      await Promise.all([page.waitForNavigation(), page.locator("header button", { hasText: "Log out" }).click()]);
      assert.match(await page.locator("p.notice").innerText(), /You are logged out/);
      assert.equal(await page.locator("form.login").count(), 1);
      assert.deepEqual(await grantIds(server, a.user), [], "logout revoked the web grant");
      assert.equal((await context.cookies()).filter((c) => c.name === "__Host-client_management").length, 0, "cookie gone");
    } finally {
      await context.close();
    }
  });

  e2eTest(fx, "the web session is revocable over XMPP: the page then asks to log in again", async ({ account, login }) => {
    const a = await account("web");
    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "web-viewer" } });
    const { context, page } = await newPage(browser);
    try {
      await browserLogin(page, httpsBase, a);
      const web = (await listClients(viewer)).clients.find((c) => c.software === WEB_NAME);
      assertResult(await revoke(viewer, web.id), "revoke the web session over XMPP");
      const response = await page.reload();
      assert.equal(response.status(), 200);
      assert.equal(await page.locator("form.login").count(), 1);
      assert.match(await page.locator("p.notice").innerText(), /session has ended/);
    } finally {
      await context.close();
    }
  });

  e2eTest(fx, "a password change ends web sessions", async ({ server, account }) => {
    const a = await account("web");
    const { context, page } = await newPage(browser);
    try {
      await browserLogin(page, httpsBase, a);
      assert.equal(await page.locator("li.client.this").count(), 1);
      await new Promise((r) => setTimeout(r, 1100)); // grants from the same second survive a change
      await server.changePassword(a.user, `${a.password}-new`);
      await page.reload();
      assert.equal(await page.locator("form.login").count(), 1);
    } finally {
      await context.close();
    }
  });

  e2eTest(fx, "wrong passwords are rate limited, with one generic failure text", async ({ server, account }) => {
    const a = await account("web");
    const { context, page } = await newPage(browser);
    const texts = [];
    const statuses = [];
    try {
      const mark = server.logOffset();
      for (let i = 0; i < 6; i++) {
        const response = await browserLogin(page, httpsBase, { user: a.user, password: i < 5 ? "wrong" : a.password });
        statuses.push(response.status());
        texts.push(await page.locator("p.notice").innerText());
      }
      assert.deepEqual(statuses, [403, 403, 403, 403, 403, 429], "the right password is refused once limited");
      assert.equal(new Set(texts).size, 1, "one generic text");
      assert.match(texts[0], /Login failed/);
      assert.deepEqual(await grantIds(server, a.user), [], "no web session");
      const log = server.logSince(mark).join("\n");
      assert.match(log, /Web login failed: authentication as "[^"]+" from 127\.0\.0\.1 failed/);
      assert.match(log, /refused: too many failed attempts/);
      // An unknown account reads the same.
      await browserLogin(page, httpsBase, { user: "nobody-here", password: "x" });
      assert.equal(await page.locator("p.notice").innerText(), texts[0]);
    } finally {
      await context.close();
    }
  });

  e2eTest(fx, "a cross-site POST, or one without the CSRF token, is refused", async ({ server, account, login }) => {
    const a = await account("web");
    const target = await fastClient({ server, login }, a, { id: "web-csrf-target", software: "Target" });
    const { context, page } = await newPage(browser);
    try {
      await browserLogin(page, httpsBase, a);
      // Another site's page posting to ours (the browser sends no cookie: SameSite=Strict).
      await page.route("https://evil.invalid/**", (route) => route.fulfill({
        contentType: "text/html",
        body: `<form method="post" action="${httpsBase}${WEB_PATH}/revoke"><input name="id" value="client/web-csrf-target"><button>go</button></form>`,
      }));
      await page.goto("https://evil.invalid/");
      await Promise.all([page.waitForNavigation(), page.click("button")]);
      assert.ok(await server.hasSession(target.session.jid), "not revoked from another site");

      // With the session cookie, from a client that leaves out the token or forges the Origin.
      const cookie = (await context.cookies()).find((c) => c.name === "__Host-client_management");
      const headers = { cookie: `${cookie.name}=${cookie.value}`, "content-type": "application/x-www-form-urlencoded" };
      const noToken = await request(`${httpsBase}${WEB_PATH}/revoke`, {
        method: "POST", headers: { ...headers, origin: httpsBase }, body: form({ id: "client/web-csrf-target" }),
      });
      assert.equal(noToken.status, 403);
      assert.match(noToken.body, /did not come from this page/);
      await page.goto(`${httpsBase}${WEB_PATH}`);
      const csrf = await page.locator("input[name=csrf]").first().getAttribute("value");
      const foreign = await request(`${httpsBase}${WEB_PATH}/revoke`, {
        method: "POST", headers: { ...headers, origin: "https://evil.invalid" }, body: form({ id: "client/web-csrf-target", csrf }),
      });
      assert.equal(foreign.status, 403);
      const noOrigin = await request(`${httpsBase}${WEB_PATH}/revoke`, {
        method: "POST", headers, body: form({ id: "client/web-csrf-target", csrf }),
      });
      assert.equal(noOrigin.status, 403);
      const big = await request(`${httpsBase}${WEB_PATH}/revoke`, {
        method: "POST", headers: { ...headers, origin: httpsBase }, body: form({ id: "client/web-csrf-target", csrf, pad: "x".repeat(10000) }),
      });
      assert.equal(big.status, 413);
      assert.ok(await server.hasSession(target.session.jid), "still not revoked");
      // The same request done right works.
      const right = await request(`${httpsBase}${WEB_PATH}/revoke`, {
        method: "POST", headers: { ...headers, origin: httpsBase }, body: form({ id: "client/web-csrf-target", csrf }),
      });
      assert.equal(right.status, 303);
      await assertClosed(server, target.session, "revoked with the token");
    } finally {
      await context.close();
    }
  });

  e2eTest(fx, "a client whose software is markup renders inert: no dialog, no request", async ({ server, account, login }) => {
    const a = await account("web");
    // An OAuth client registers its own name too.
    const grant = await server.createGrant(a.user, { client: { name: "<img src=x onerror=alert(3)>", uri: "javascript:alert(4)", id: "x", version: "1" } });
    const hostile = [
      { id: "web-script", software: "<script>alert('xss')</script>", device: "<b>bold</b>\u202Egnp.exe" },
      { id: "web-img", software: "\"><img src=x onerror=alert(1)>", device: "'><svg onload=alert(2)>" },
    ];
    for (const ua of hostile) await login({ username: a.user, password: a.password, userAgent: ua });
    const { context, page, dialogs, requests } = await newPage(browser);
    try {
      await browserLogin(page, httpsBase, a);
      const before = requests.length;
      await page.reload();
      await page.waitForTimeout(300);
      assert.deepEqual(dialogs, []);
      const after = requests.slice(before);
      assert.deepEqual(after.filter((u) => !u.startsWith(`${httpsBase}${WEB_PATH}`)), [], "no request but the page itself");
      assert.equal(await page.locator("main script, main img, main svg, main b").count(), 0, "no element from client text");
      assert.equal(await page.locator(`li.client[data-id="client/web-script"] h2`).innerText(), "<script>alert('xss')</script>");
      assert.equal(await page.locator(`li.client[data-id="client/web-img"] h2`).innerText(), "\"><img src=x onerror=alert(1)>");
      assert.equal(await page.locator(`li.client[data-id="grant/${grant.grantId}"] h2`).innerText(), "<img src=x onerror=alert(3)> 1");
      assert.equal(await page.locator("a[href^=javascript]").count(), 0, "no link from client data");
      const device = await page.locator(`li.client[data-id="client/web-script"] .device`).innerText();
      assert.equal(device, "on <b>bold</b>gnp.exe", "the sanitiser took the bidi override out");
    } finally {
      await context.close();
    }
  });

  e2eTest(fx, "plain HTTP (no trusted proxy) refuses the page and the login", async ({ server, account }) => {
    const a = await account("web");
    const page = await request(`${httpBase}${WEB_PATH}`, { headers: { "x-forwarded-proto": "https" } });
    assert.equal(page.status, 403);
    assert.match(page.body, /only works over HTTPS/);
    const login = await request(`${httpBase}${WEB_PATH}/login`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", origin: httpsBase, "x-forwarded-proto": "https" },
      body: form({ username: a.user, password: a.password }),
    });
    assert.equal(login.status, 403);
    assert.equal(sessionCookie(login), null);
    assert.deepEqual(await grantIds(server, a.user), []);
    const apiCall = await api(httpBase, (await server.createGrant(a.user)).token, "GET", "clients");
    assert.equal(apiCall.status, 403);
    assert.equal(apiCall.json.error, "https-required");
  });

  // ------------------------------------------------------------------ the JSON API

  e2eTest(fx, "API: list, revoke (200, 404, 409, 400), sign out others sparing the token's grant", async (ctx) => {
    const { server, account, login } = ctx;
    const a = await account("api");
    const portal = await server.createGrant(a.user, { client: { name: "Portal", id: "portal", uri: "https://portal.invalid/", version: "1" } });
    const fast = await fastClient(ctx, a, { id: "api-fast", software: "Cheogram", device: "Phone" });
    const pw = await login({ username: a.user, password: a.password, userAgent: { id: "api-pw", software: "Gajim", device: "Desk" } });
    const other = await server.createGrant(a.user);

    const list = await api(httpsBase, portal.token, "GET", "clients");
    assert.equal(list.status, 200);
    assert.match(list.headers["content-type"], /^application\/json/);
    assert.equal(list.headers["cache-control"], "no-store");
    const byId = Object.fromEntries(list.json.clients.map((c) => [c.id, c]));
    assert.deepEqual(Object.keys(byId).sort(), ["client/api-fast", "client/api-pw", `grant/${other.grantId}`, `grant/${portal.grantId}`].sort());
    const f = byId["client/api-fast"];
    assert.equal(f.type, "session");
    assert.equal(f.connected, true);
    assert.deepEqual(f.auth, ["fast", "grant"]);
    assert.equal(f.permission, "unrestricted");
    assert.equal(f.user_agent.software, "Cheogram");
    assert.equal(f.user_agent.device, "Phone");
    assert.match(f.first_seen, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.deepEqual(byId["client/api-pw"].auth, ["password"]);
    assert.equal(byId[`grant/${portal.grantId}`].current, true, "the requester's own grant");
    assert.equal(byId[`grant/${portal.grantId}`].type, "access");
    assert.equal(f.current, false);

    const missing = await api(httpsBase, portal.token, "POST", "revoke", { id: "client/nope" });
    assert.deepEqual([missing.status, missing.json], [404, { error: "item-not-found", text: "Client not found" }]);
    const password = await api(httpsBase, portal.token, "POST", "revoke", { id: "client/api-pw" });
    assert.deepEqual([password.status, password.json], [409, { error: "password-reset-required", text: "Password reset required" }]);
    assert.ok(await server.hasSession(pw.jid), "nothing changed for the password client");
    for (const bad of ["not json", "[]", JSON.stringify({ id: 5 }), JSON.stringify({ id: "" })]) {
      const r = await api(httpsBase, portal.token, "POST", "revoke", bad);
      assert.equal(r.status, 400, bad);
      assert.equal(r.json.error, "bad-request");
    }
    const revoked = await api(httpsBase, portal.token, "POST", "revoke", { id: "client/api-fast" });
    assert.deepEqual([revoked.status, revoked.json], [200, { revoked: "client/api-fast" }]);
    await assertClosed(server, fast.session, "FAST client revoked through the API");

    const out = await api(httpsBase, portal.token, "POST", "sign-out-others");
    assert.equal(out.status, 200);
    assert.deepEqual(out.json, { revoked: 1, password_reset_required: 1, closed_connections: 1 });
    await assertClosed(server, pw, "password client's stream");
    assert.deepEqual(await grantIds(server, a.user), [portal.grantId], "the token's own grant is spared");
    const again = await api(httpsBase, portal.token, "GET", "clients");
    assert.equal(again.status, 200, "the requester still works");
  });

  e2eTest(fx, "API: a token of another account, a revoked token, no token", async ({ server, account, login }) => {
    const a = await account("api");
    const b = await account("api");
    const aClient = await login({ username: a.user, password: a.password, userAgent: { id: "api-a-client" } });
    const aGrant = await server.createGrant(a.user);
    const bToken = await server.createGrant(b.user);

    const bList = await api(httpsBase, bToken.token, "GET", "clients");
    assert.equal(bList.status, 200);
    assert.deepEqual(bList.json.clients.map((c) => c.id), [`grant/${bToken.grantId}`], "B sees only B's clients");
    for (const id of [`grant/${aGrant.grantId}`, "client/api-a-client"]) {
      const r = await api(httpsBase, bToken.token, "POST", "revoke", { id });
      assert.equal(r.status, 404, `B cannot revoke A's ${id}`);
    }
    assert.ok(await server.hasSession(aClient.jid));
    assert.ok((await grantIds(server, a.user)).includes(aGrant.grantId));

    assertResult(await revoke(aClient, `grant/${aGrant.grantId}`), "revoke A's grant over XMPP");
    for (const [method, endpoint, body] of [["GET", "clients"], ["POST", "revoke", { id: "client/api-a-client" }], ["POST", "sign-out-others"]]) {
      const r = await api(httpsBase, aGrant.token, method, endpoint, body);
      assert.equal(r.status, 401, `revoked token: ${endpoint}`);
      assert.deepEqual(r.json, { error: "not-authorized", text: "A valid bearer token is required" });
      assert.equal(r.headers["www-authenticate"], "Bearer");
    }
    const none = await api(httpsBase, null, "GET", "clients");
    assert.equal(none.status, 401);
    const garbage = await api(httpsBase, "secret-token:bm9wZQ", "GET", "clients");
    assert.equal(garbage.status, 401);
    assert.ok(await server.hasSession(aClient.jid), "nothing happened to A");
  });
});

describe("web page behind a trusted proxy (plain HTTP from 127.0.0.1, X-Forwarded-Proto: https)", async () => {
  const proxyPorts = await webPorts();
  const base = `http://localhost:${proxyPorts.http}`;
  const origin = `https://localhost:${proxyPorts.http}`;
  // Short sessions: a token is replaced after a twelfth of the idle time (5 s here).
  const fx = useServer(webServerOptions(proxyPorts, {
    trustedProxies: ["127.0.0.1"],
    options: { client_management_web_session_ttl: 60, client_management_web_session_max_ttl: 3600 },
  }));
  const proxied = { "x-forwarded-proto": "https" };

  e2eTest(fx, "login, page, revoke and API work when the proxy says HTTPS; not without it", async ({ server, account, login }) => {
    const a = await account("proxy");
    const g = await server.createGrant(a.user);
    const viewer = await login({ username: a.user, password: a.password, userAgent: { id: "proxy-viewer" } });

    const plain = await request(`${base}${WEB_PATH}/login`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", origin },
      body: form({ username: a.user, password: a.password }),
    });
    assert.equal(plain.status, 403, "without X-Forwarded-Proto: https");

    const res = await request(`${base}${WEB_PATH}/login`, {
      method: "POST",
      headers: { ...proxied, "content-type": "application/x-www-form-urlencoded", origin },
      body: form({ username: a.user, password: a.password }),
    });
    assert.equal(res.status, 303);
    assert.equal(res.headers.location, WEB_PATH);
    const setCookie = [].concat(res.headers["set-cookie"])[0];
    assert.match(setCookie, /^__Host-client_management=secret-token:[^;]+; Path=\/; Secure; HttpOnly; SameSite=Strict$/);
    const cookie = sessionCookie(res);

    const pageRes = await request(`${base}${WEB_PATH}`, { headers: { ...proxied, cookie } });
    assert.equal(pageRes.status, 200);
    assert.match(pageRes.body, new RegExp(`data-id="grant/${g.grantId}"`));
    const csrf = pageRes.body.match(/name="csrf" value="([^"]+)"/)[1];
    const revoked = await request(`${base}${WEB_PATH}/revoke`, {
      method: "POST",
      headers: { ...proxied, cookie, origin, "content-type": "application/x-www-form-urlencoded" },
      body: form({ id: `grant/${g.grantId}`, csrf }),
    });
    assert.equal(revoked.status, 303);
    assert.equal(revoked.headers.location, `${WEB_PATH}?done=revoked`);
    assert.ok(!(await grantIds(server, a.user)).includes(g.grantId));

    const token = (await server.createGrant(a.user)).token;
    const listed = await api(base, token, "GET", "clients").then(() => request(`${base}${WEB_PATH}/api/clients`, {
      headers: { ...proxied, authorization: `Bearer ${token}` },
    }));
    assert.equal(listed.status, 200);
    assert.ok(listed.json.clients.some((c) => c.id === "client/proxy-viewer"));
    assert.ok(await server.hasSession(viewer.jid));
    assert.equal(entry((await listClients(viewer)).clients, "client/proxy-viewer").id, "client/proxy-viewer");
  });

  e2eTest(fx, "a web session is a grant of max_ttl; its token lasts the idle time and is replaced while in use", async ({ server, account }) => {
    const a = await account("proxy");
    const res = await request(`${base}${WEB_PATH}/login`, {
      method: "POST",
      headers: { ...proxied, "content-type": "application/x-www-form-urlencoded", origin, "user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0" },
      body: form({ username: `${a.user}@${HOST}`, password: a.password }),
    });
    assert.equal(res.status, 303, "login with the full address");
    const first = sessionCookie(res);
    const grants = await server.userGrants(a.user);
    const [grant] = Object.values(grants);
    assert.equal(grant.expires - grant.created, 3600, "the grant lasts client_management_web_session_max_ttl");
    const info = await server.lua(`
      local grant = require "prosody.core.storagemanager".open("localhost", "auth_tokens", "keyval+"):get_key(${JSON.stringify(a.user)}, ${JSON.stringify(grant.id)});
      local token = select(2, next(grant.tokens));
      return { ttl = token.expires - token.created, purpose = token.purpose, name = grant.data.oauth2_client.name, device = grant.data.oauth2_client.device };`);
    assert.deepEqual(info, { ttl: 60, purpose: "client_management_web", name: WEB_NAME, device: "Firefox" });

    const soon = await request(`${base}${WEB_PATH}`, { headers: { ...proxied, cookie: first } });
    assert.equal(soon.status, 200);
    assert.equal(sessionCookie(soon), null, "not replaced yet");
    await new Promise((r) => setTimeout(r, 5200));
    const later = await request(`${base}${WEB_PATH}`, { headers: { ...proxied, cookie: first } });
    assert.equal(later.status, 200);
    const second = sessionCookie(later);
    assert.ok(second && second !== first, "a fresh token after the renewal age");
    const withNew = await request(`${base}${WEB_PATH}`, { headers: { ...proxied, cookie: second } });
    assert.match(withNew.body, /This browser/);
    assert.deepEqual(Object.keys(await server.userGrants(a.user)), [grant.id], "still the same session (grant)");
  });
});

describe("web page off by default", async () => {
  const offPorts = await webPorts();
  const fx = useServer(webServerOptions(offPorts, { web: false }));

  e2eTest(fx, "no route is served without client_management_web = true", async ({ server, account }) => {
    const a = await account("off");
    const token = (await server.createGrant(a.user)).token;
    for (const [method, url] of [
      ["GET", `https://localhost:${offPorts.https}${WEB_PATH}`],
      ["POST", `https://localhost:${offPorts.https}${WEB_PATH}/login`],
      ["GET", `https://localhost:${offPorts.https}${WEB_PATH}/api/clients`],
      ["GET", `http://localhost:${offPorts.http}${WEB_PATH}`],
    ]) {
      const r = await request(url, { method, headers: { authorization: `Bearer ${token}`, "x-forwarded-proto": "https" } });
      assert.equal(r.status, 404, `${method} ${url}`);
    }
    assert.equal(await server.moduleLoaded("client_management"), true);
    assert.equal(HOST, "localhost");
  });
});
