// XEP-0494 (urn:xmpp:cam:0) beside the Prosody namespace: ARCHITECTURE.md §5, §6.
//
// Every urn:xmpp:cam:0 reply these tests look at is also captured, byte for byte
// as it came off the socket (the <clients/> element, or the application
// condition of an <error/>), into the capture directory (lib/capture.js:
// $CAM_CAPTURE_DIR, default <repo>/build/e2e-captures/cam), together with
// expectations.json: what each capture must contain. Afterwards
// `cargo test --test cam_captures` parses each one with xmpp-parsers' `cam`
// module (`pedantic`) and compares the values with those expectations.

import assert from "node:assert/strict";
import { before, describe } from "node:test";

import { useServer, e2eTest, eventually, assertRefused, assertClosed } from "../lib/harness.js";
import { NS, xml } from "../lib/client.js";
import {
  NS_MC, NS_CAM, listClients, revoke, entry, ids, assertResult, assertError, nowSeconds,
  parseClient, unixOf, isoSeconds, TIMESTAMP,
} from "../lib/manage.js";
import { CaptureDir, rawElementOf } from "../lib/capture.js";

const DISCO_INFO = "http://jabber.org/protocol/disco#info";
const NOT_FOUND = { type: "cancel", condition: "item-not-found", text: "Client not found" };
const RESET_REQUIRED = { type: "cancel", condition: "service-unavailable", text: "Password reset required" };

const PW_UA = { id: "cam-password", software: "CAM Password Client", device: "CAM Laptop" };
const FAST_UA = { id: "cam-fast", software: "CAM FAST Client", device: "CAM Phone" };
const OAUTH_UA = { id: "cam-oauth", software: "CAM OAuth Client", device: "CAM Tablet" };
const GUEST_UA = { id: "cam-guest", software: "CAM Guest Client", device: "CAM Kiosk" };
const BARE_UA = { id: "cam-no-software" };
const OAUTH_APP = { name: "CAM OAuth App", uri: "https://oauth.cam.invalid/app", id: "cam-oauth-app", version: "2.0" };
const IDLE_APP = { name: "CAM Idle App", uri: "https://idle.cam.invalid/app", id: "cam-idle-app", version: "1.0" };
const GUEST_APP = { name: "CAM Guest App", uri: "https://guest.cam.invalid/app", id: "cam-guest-app", version: "0.1" };
// mod_authz_internal: prosody:guest (priority 15) is narrower than prosody:registered
// (25), the role the harness gives new accounts.
const NARROW_ROLE = "prosody:guest";

const captures = new CaptureDir();
before(() => captures.reset());

// ------------------------------------------------------------ expectations

/** [t0 - 1, t1 + 1]: a timestamp the server took between t0 and t1 (unix seconds). */
const during = (t0, t1) => ({ min: Math.floor(t0) - 1, max: Math.floor(t1) + 1 });
/** Exactly this second. */
const exactly = (t) => ({ min: Math.floor(t), max: Math.floor(t) });

/**
 * One expected <client/>, in the shape expectations.json holds (and
 * rust/tests/cam_captures.rs reads): device/uri null = no such element;
 * first_seen/last_seen null = not checked.
 */
function expected({
  id, type = "session", connected, auth, permission, software = "", device = null, uri = null,
  firstSeen = null, lastSeen = null,
}) {
  return {
    id, type, connected, auth: [...auth].sort(), permission, software, device, uri,
    first_seen: firstSeen, last_seen: lastSeen,
  };
}

function assertWindow(ts, window, what) {
  if (window === null) return;
  assert.ok(ts !== undefined, `${what}: missing`);
  assert.match(ts, TIMESTAMP, what);
  const t = unixOf(ts);
  assert.ok(t >= window.min && t <= window.max,
    `${what}: ${ts} not within ${isoSeconds(window.min)}..${isoSeconds(window.max)}`);
}

/** The JS side of what cam_captures.rs checks again on the parsed capture. */
function assertCamClients(clients, expectations) {
  assert.deepEqual(ids(clients).slice().sort(), expectations.map((x) => x.id).sort(), "the listed ids");
  for (const x of expectations) {
    const e = entry(clients, x.id);
    const what = `${x.id}: ${e.el}`;
    assert.equal(e.type, x.type, `type of ${what}`);
    assert.equal(e.connected, String(x.connected), `connected of ${what}`);
    assert.deepEqual(e.auth, x.auth, `<auth/> of ${what}`);
    for (const flag of e.authEl.getChildElements()) {
      assert.equal(flag.children.length, 0, `empty auth flags: ${what}`);
      assert.deepEqual(Object.keys(flag.attrs).filter((k) => k !== "xmlns"), [], `no attributes on auth flags: ${what}`);
    }
    const perms = e.el.getChildren("permission");
    assert.equal(perms.length, 1, `one <permission/> in ${what}`);
    assert.equal(perms[0].attrs.status, x.permission, `permission of ${what}`);
    assert.ok(e.softwareEl, `<user-agent><software/> always: ${what}`);
    assert.deepEqual(Object.keys(e.softwareEl.attrs).filter((k) => k !== "xmlns"), [], `no attributes on <software/>: ${what}`);
    assert.equal(e.software, x.software, `software of ${what}`);
    assert.equal(e.device ?? null, x.device, `device of ${what}`);
    assert.equal(e.uri ?? null, x.uri, `uri of ${what}`);
    assertWindow(e.firstSeen, x.first_seen, `first-seen of ${what}`);
    assertWindow(e.lastSeen, x.last_seen, `last-seen of ${what}`);
  }
}

/**
 * iq get <list xmlns='urn:xmpp:cam:0'/>: captures the <clients/> as received
 * with `expectations`, then checks them here too. Returns the parsed views.
 */
async function listCam(t, session, slug, expectations) {
  const reply = await session.iq(xml("list", { xmlns: NS_CAM }), { type: "get" });
  assertResult(reply, "cam list");
  const clientsEl = reply.getChild("clients", NS_CAM);
  assert.ok(clientsEl, `no <clients xmlns='${NS_CAM}'/> in ${reply}`);
  captures.add(slug, rawElementOf(session, reply, clientsEl), {
    kind: "clients", namespace: NS_CAM, test: t.name, clients: expectations,
  });
  const clients = clientsEl.getChildren("client").map(parseClient);
  assertCamClients(clients, expectations);
  return clients;
}

/**
 * A revoke answered with password-reset-required in the request's namespace;
 * captures that application condition as received.
 */
async function assertResetRequired(t, session, id, ns, slug) {
  const reply = await revoke(session, id, { ns });
  const err = assertError(reply, RESET_REQUIRED);
  assert.deepEqual(err.app.map((el) => [el.name, el.attrs.xmlns]), [["password-reset-required", ns]],
    `application condition in the request's namespace: ${reply}`);
  assert.equal(err.app[0].children.length, 0, `empty <password-reset-required/>: ${reply}`);
  captures.add(slug, rawElementOf(session, reply, err.app[0]), {
    kind: "password-reset-required", namespace: ns, test: t.name,
  });
}



/** Log in once with the password, taking a FAST token, then again with the token alone. */
async function fastLogin(a, login, ua = FAST_UA) {
  const store = { token: null };
  const first = await login({ username: a.user, password: a.password, fast: store, userAgent: ua });
  assert.ok(store.token, "a FAST token was issued");
  await first.close();
  const session = await login({ username: a.user, fast: { token: store.token }, userAgent: ua });
  assert.equal(session.sent.find((el) => el.name === "authenticate")?.attrs.mechanism, "HT-SHA-256-NONE");
  return { session, token: store.token };
}

// Expectations of the kinds of clients, given the window [t0, t1] of their logins.
const pwClient = (w, ua = PW_UA) => expected({
  id: `client/${ua.id}`, connected: true, auth: ["password"], permission: "unrestricted",
  software: ua.software ?? "", device: ua.device ?? null, firstSeen: w, lastSeen: w,
});
const fastClient = (w) => expected({
  id: `client/${FAST_UA.id}`, connected: true, auth: ["fast", "password"], permission: "unrestricted",
  software: FAST_UA.software, device: FAST_UA.device, firstSeen: w, lastSeen: w,
});
const oauthClient = (w, { ua = OAUTH_UA, app = OAUTH_APP, auth = ["grant"], permission = "normal" } = {}) => expected({
  id: `client/${ua.id}`, connected: true, auth, permission,
  software: ua.software, device: ua.device, uri: app.uri, firstSeen: w, lastSeen: w,
});
const idleGrant = (grantId, grant, app, permission = "normal") => expected({
  id: `grant/${grantId}`, type: "access", connected: false, auth: ["grant"], permission,
  software: app.name, uri: app.uri, firstSeen: exactly(grant.created), lastSeen: exactly(grant.accessed),
});

// ------------------------------------------------------------ tests

describe("XEP-0494 urn:xmpp:cam:0 beside the Prosody namespace", () => {
  const fx = useServer();

  e2eTest(fx, "the account's disco#info advertises urn:xmpp:cam:0", async ({ account, login }) => {
    const a = await account();
    const c = await login({ username: a.user, password: a.password, userAgent: PW_UA });
    const reply = await c.iq(xml("query", { xmlns: DISCO_INFO }), { type: "get", to: a.jid });
    assertResult(reply, "disco#info of the account");
    const query = reply.getChild("query", DISCO_INFO);
    assert.ok(query, `<query/> in ${reply}`);
    const features = query.getChildren("feature").map((f) => f.attrs.var);
    assert.ok(features.includes(NS_CAM), `feature ${NS_CAM} in ${reply}`);
  });

  e2eTest(fx, "SASL2 password client with software and device: unrestricted, <password/>", async ({ t, account, login }) => {
    const a = await account();
    const t0 = nowSeconds();
    const c = await login({ username: a.user, password: a.password, userAgent: PW_UA });
    const w = during(t0, nowSeconds());
    await listCam(t, c, "password-client", [pwClient(w)]);
  });

  e2eTest(fx, "FAST client: <fast/> and <password/>, unrestricted", async ({ t, account, login }) => {
    const a = await account();
    const t0 = nowSeconds();
    const { session } = await fastLogin(a, login);
    const w = during(t0, nowSeconds());
    await listCam(t, session, "fast-client", [fastClient(w)]);
  });

  e2eTest(fx, "OAUTHBEARER login with a grant: one session with <grant/>, normal", async ({ t, server, account, login }) => {
    const a = await account();
    const g = await server.createGrant(a.user, { client: OAUTH_APP });
    const t0 = nowSeconds();
    const c = await login({ username: a.user, oauthToken: g.token, userAgent: OAUTH_UA });
    const w = during(t0, nowSeconds());
    const clients = await listCam(t, c, "oauthbearer-session", [oauthClient(w)]);
    assert.ok(!ids(clients).includes(`grant/${g.grantId}`), "the grant is listed once, as the session");
  });

  e2eTest(fx, "OAUTHBEARER login that took a FAST token: <grant/> and <fast/>, unrestricted", async ({ t, server, account, login }) => {
    const a = await account();
    const g = await server.createGrant(a.user, { client: OAUTH_APP });
    const t0 = nowSeconds();
    const store = { token: null };
    const c = await login({ username: a.user, oauthToken: g.token, fast: store, userAgent: OAUTH_UA });
    assert.ok(store.token, "a FAST token was issued");
    const w = during(t0, nowSeconds());
    await listCam(t, c, "oauthbearer-fast-session", [
      oauthClient(w, { auth: ["fast", "grant"], permission: "unrestricted" }),
    ]);
  });

  e2eTest(fx, "idle grants are type='access': normal, or restricted when the token's role is narrower", async ({ t, server, account, login }) => {
    const a = await account();
    const idle = await server.createGrant(a.user, { client: IDLE_APP });
    const narrow = await server.createGrant(a.user, { client: GUEST_APP, role: NARROW_ROLE });
    const t0 = nowSeconds();
    const viewer = await login({ username: a.user, password: a.password, userAgent: PW_UA });
    const w = during(t0, nowSeconds());
    const grants = await server.userGrants(a.user);
    await listCam(t, viewer, "idle-grants", [
      pwClient(w),
      idleGrant(idle.grantId, grants[idle.grantId], IDLE_APP),
      idleGrant(narrow.grantId, grants[narrow.grantId], GUEST_APP, "restricted"),
    ]);
  });

  e2eTest(fx, "a session that logged in with a narrower role's token is restricted", async ({ t, server, account, login }) => {
    const a = await account();
    const g = await server.createGrant(a.user, { client: GUEST_APP, role: NARROW_ROLE });
    const t0 = nowSeconds();
    await login({ username: a.user, oauthToken: g.token, userAgent: GUEST_UA });
    const viewer = await login({ username: a.user, password: a.password, userAgent: PW_UA });
    const w = during(t0, nowSeconds());
    await listCam(t, viewer, "restricted-session", [
      pwClient(w),
      oauthClient(w, { ua: GUEST_UA, app: GUEST_APP, permission: "restricted" }),
    ]);
  });

  e2eTest(fx, "a client without software: an empty <software/>, no other user agent data", async ({ t, account, login }) => {
    const a = await account();
    const t0 = nowSeconds();
    const c = await login({ username: a.user, password: a.password, userAgent: BARE_UA });
    const w = during(t0, nowSeconds());
    const [e] = await listCam(t, c, "no-software", [pwClient(w, BARE_UA)]);
    assert.equal(e.softwareEl.children.join(""), "", `empty <software/>: ${e.el}`);
  });

  e2eTest(fx, "both namespaces list the same ids, in the same order, for every kind of client", async ({ t, server, account, login }) => {
    const a = await account();
    const idle = await server.createGrant(a.user, { client: IDLE_APP });
    const narrow = await server.createGrant(a.user, { client: GUEST_APP, role: NARROW_ROLE });
    const used = await server.createGrant(a.user, { client: OAUTH_APP });
    const guest = await server.createGrant(a.user, { client: GUEST_APP, role: NARROW_ROLE });
    const t0 = nowSeconds();
    await fastLogin(a, login);
    await login({ username: a.user, oauthToken: used.token, userAgent: OAUTH_UA });
    await login({ username: a.user, oauthToken: guest.token, userAgent: GUEST_UA });
    await login({ username: a.user, password: a.password, userAgent: BARE_UA });
    const viewer = await login({ username: a.user, password: a.password, userAgent: PW_UA });
    const w = during(t0, nowSeconds());
    const grants = await server.userGrants(a.user);

    const mc = (await listClients(viewer, { ns: NS_MC })).clients;
    const cam = await listCam(t, viewer, "every-kind", [
      pwClient(w),
      pwClient(w, BARE_UA),
      fastClient(w),
      oauthClient(w),
      oauthClient(w, { ua: GUEST_UA, app: GUEST_APP, permission: "restricted" }),
      idleGrant(idle.grantId, grants[idle.grantId], IDLE_APP),
      idleGrant(narrow.grantId, grants[narrow.grantId], GUEST_APP, "restricted"),
    ]);
    assert.deepEqual(ids(cam), ids(mc));
    const camAuth = { password: "password", fast: "fast", "bearer-token": "grant" };
    for (const m of mc) {
      const c = entry(cam, m.id);
      assert.equal(c.type, m.type, m.id);
      assert.equal(c.connected, m.connected, m.id);
      assert.deepEqual(c.auth, m.auth.map((f) => camAuth[f]).sort(), `${m.el}\nvs\n${c.el}`);
      assert.equal(c.software, m.software ?? "", m.id);
      assert.equal(c.device, m.device, m.id);
      assert.equal(c.firstSeen, m.firstSeen, m.id);
      assert.equal(c.lastSeen, m.lastSeen, m.id);
    }
  });

  e2eTest(fx, "revoke in urn:xmpp:cam:0: a grant, and a password-less client with its FAST token", async ({ t, server, account, login, tryLogin }) => {
    const a = await account();
    const idle = await server.createGrant(a.user, { client: IDLE_APP });
    const used = await server.createGrant(a.user, { client: OAUTH_APP });
    const t0 = nowSeconds();
    const store = { token: null };
    const oauth = await login({ username: a.user, oauthToken: used.token, fast: store, userAgent: OAUTH_UA });
    assert.ok(store.token, "a FAST token was issued");
    const viewer = await login({ username: a.user, password: a.password, userAgent: PW_UA });
    const w = during(t0, nowSeconds());

    const grantReply = await revoke(viewer, `grant/${idle.grantId}`, { ns: NS_CAM });
    assertResult(grantReply, "cam revoke of a grant");
    assert.equal(grantReply.children.length, 0, `empty result: ${grantReply}`);
    assert.equal((await server.userGrants(a.user))?.[idle.grantId], undefined, "the grant is gone");

    const clientReply = await revoke(viewer, `client/${OAUTH_UA.id}`, { ns: NS_CAM });
    assertResult(clientReply, "cam revoke of a client");
    assert.equal(clientReply.children.length, 0, `empty result: ${clientReply}`);
    await assertClosed(server, oauth, "revoked client");
    assert.equal((await server.userGrants(a.user))?.[used.grantId], undefined, "its grant is gone");
    await assertRefused(tryLogin, { username: a.user, fast: { token: store.token }, userAgent: OAUTH_UA }, "its FAST token");
    await assertRefused(tryLogin, { username: a.user, oauthToken: used.token, userAgent: OAUTH_UA }, "its grant token");

    await listCam(t, viewer, "after-cam-revoke", [pwClient(w)]);
    assert.deepEqual(ids((await listClients(viewer, { ns: NS_MC })).clients), [`client/${PW_UA.id}`]);

    const unknown = assertError(await revoke(viewer, `grant/${idle.grantId}`, { ns: NS_CAM }), NOT_FOUND);
    assert.deepEqual(unknown.app, [], "no application condition for item-not-found");
  });

  e2eTest(fx, "password-reset-required comes in the namespace of the request, and nothing changes", async ({ t, server, account, login }) => {
    const a = await account();
    const t0 = nowSeconds();
    const { session: fast } = await fastLogin(a, login);
    const other = await login({ username: a.user, password: a.password, userAgent: BARE_UA });
    const viewer = await login({ username: a.user, password: a.password, userAgent: PW_UA });
    const w = during(t0, nowSeconds());

    await assertResetRequired(t, viewer, `client/${BARE_UA.id}`, NS_CAM, "reset-required-cam");
    await assertResetRequired(t, viewer, `client/${BARE_UA.id}`, NS_MC, "reset-required-prosody-ns");
    await assertResetRequired(t, viewer, `client/${FAST_UA.id}`, NS_CAM, "reset-required-cam-fast");
    await assertResetRequired(t, viewer, `client/${FAST_UA.id}`, NS_MC, "reset-required-prosody-ns-fast");

    assert.ok(await server.hasSession(other.jid), "the password client is still connected");
    assert.ok(await server.hasSession(fast.jid), "the FAST client is still connected");
    await listCam(t, viewer, "after-reset-required", [pwClient(w), pwClient(w, BARE_UA), fastClient(w)]);
  });

  e2eTest(fx, "ids are shared: list in one namespace, revoke in the other", async ({ t, server, account, login }) => {
    const a = await account();
    const apps = [1, 2, 3, 4].map((n) => ({ name: `CAM Cross App ${n}`, uri: `https://cross${n}.cam.invalid`, id: `cross-${n}`, version: "1" }));
    const grants = [];
    for (const app of apps) grants.push(await server.createGrant(a.user, { client: app }));
    const t0 = nowSeconds();
    const uas = [3, 4].map((n) => ({ id: `cam-cross-${n}`, software: `CAM Cross Client ${n}`, device: `CAM Device ${n}` }));
    const s3 = await login({ username: a.user, oauthToken: grants[2].token, userAgent: uas[0] });
    const s4 = await login({ username: a.user, oauthToken: grants[3].token, userAgent: uas[1] });
    const viewer = await login({ username: a.user, password: a.password, userAgent: PW_UA });
    const w = during(t0, nowSeconds());
    const stored = await server.userGrants(a.user);

    const camBefore = await listCam(t, viewer, "cross-before", [
      pwClient(w),
      idleGrant(grants[0].grantId, stored[grants[0].grantId], apps[0]),
      idleGrant(grants[1].grantId, stored[grants[1].grantId], apps[1]),
      oauthClient(w, { ua: uas[0], app: apps[2] }),
      oauthClient(w, { ua: uas[1], app: apps[3] }),
    ]);
    const mcBefore = (await listClients(viewer, { ns: NS_MC })).clients;
    assert.deepEqual(ids(mcBefore), ids(camBefore));

    // ids read from the Prosody namespace, revoked in urn:xmpp:cam:0
    const bySoftware = (list, software) => {
      const found = list.filter((e) => e.software === software);
      assert.equal(found.length, 1, `one entry with software ${software}: ${ids(list)}`);
      return found[0].id;
    };
    assertResult(await revoke(viewer, bySoftware(mcBefore, apps[0].name), { ns: NS_CAM }), "cam revoke of a Prosody-listed grant");
    assertResult(await revoke(viewer, bySoftware(mcBefore, uas[0].software), { ns: NS_CAM }), "cam revoke of a Prosody-listed client");
    await assertClosed(server, s3, "client revoked in urn:xmpp:cam:0");
    // ids read from urn:xmpp:cam:0, revoked in the Prosody namespace
    assertResult(await revoke(viewer, bySoftware(camBefore, apps[1].name), { ns: NS_MC }), "Prosody revoke of a cam-listed grant");
    assertResult(await revoke(viewer, bySoftware(camBefore, uas[1].software), { ns: NS_MC }), "Prosody revoke of a cam-listed client");
    await assertClosed(server, s4, "client revoked in the Prosody namespace");
    // a password client listed in one namespace is refused in the other, in the request's namespace
    await assertResetRequired(t, viewer, bySoftware(mcBefore, PW_UA.software), NS_CAM, "cross-reset-required-cam");
    await assertResetRequired(t, viewer, bySoftware(camBefore, PW_UA.software), NS_MC, "cross-reset-required-prosody-ns");

    const remaining = await server.userGrants(a.user);
    for (const g of grants) assert.equal(remaining?.[g.grantId], undefined, `grant ${g.grantId} revoked`);
    await listCam(t, viewer, "cross-after", [pwClient(w)]);
    assert.deepEqual(ids((await listClients(viewer, { ns: NS_MC })).clients), [`client/${PW_UA.id}`]);
  });
});
