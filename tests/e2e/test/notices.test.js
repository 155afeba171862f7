// New-client notices (ARCHITECTURE.md §10, issue 11, PLAN "New-client notices"): with
// client_management_notify_new_clients = true, when a client with a new id
// (SASL2), a new grant or a new legacy client first gains access, every other
// bound session of the account gets one <message from='HOST' to='FULLJID'>
// (no type) whose <body> names the software (or "Unknown software"), the
// device if known, the time (YYYY-MM-DD HH:MM UTC) and the "Manage clients"
// command. None to the new client, none for re-logins, none for a login with
// an already announced grant; nothing at all with the option off.
//
// "No message" is checked without sleeping: after the event, each session
// does a ping round trip to the server; a notice, if any, is sent before the
// pong on the same stream, so it has arrived by then.

import assert from "node:assert/strict";
import { describe } from "node:test";

import { useServer, e2eTest, eventually, sleep } from "../lib/harness.js";
import { unboundLogin, bind, closeRaw } from "../lib/rawauth.js";
import { HOST } from "../lib/server.js";
import { nowSeconds } from "../lib/manage.js";
import { pingServer, messagesFrom } from "../lib/adhoc.js";

const OBSERVER_UA = { id: "notice-observer", software: "Notice Observer", device: "Observer Desktop" };
const OBSERVER2_UA = { id: "notice-observer-2", software: "Notice Observer Two", device: "Observer Phone" };
const NEW_UA = { id: "notice-new-client", software: "Notice New Client", device: "New Tablet" };
const BARE_UA = { id: "notice-no-software" };
const OAUTH_UA = { id: "notice-oauth-client", software: "Notice OAuth Client", device: "OAuth Watch" };
const STRANGER_UA = { id: "notice-stranger", software: "Notice Stranger" };
const APP = { name: "Notice OAuth App", uri: "https://notice.invalid/app", id: "notice-app", version: "1.0" };
const COMMAND = "Manage clients";
const TIME = /(\d{4}-\d{2}-\d{2}) (\d{2}):(\d{2}) UTC/;

/** Where each session's received elements stand now. */
const mark = (...sessions) => new Map(sessions.map((s) => [s, s.elements.length]));

/**
 * After a ping round trip from each marked session: the <message from=HOST/>s
 * each got since its mark (Map session → messages).
 */
async function noticesSince(marks) {
  const out = new Map();
  for (const [s, since] of marks) {
    await pingServer(s, HOST);
    out.set(s, messagesFrom(s, HOST, since));
  }
  return out;
}

/** `session` got no message from the host at all, since it logged in (after a ping round trip). */
async function assertNoNoticeEver(session, what) {
  await pingServer(session, HOST);
  const got = messagesFrom(session, HOST, 0);
  assert.deepEqual(got.map(String), [], `${what}: ${session.jid} got a message from ${HOST}`);
}

/** Every marked session got no notice. */
function assertNone(notices, what) {
  for (const [s, msgs] of notices) {
    assert.deepEqual(msgs.map(String), [], `${what}: ${s.jid} got a message from ${HOST}`);
  }
}

/**
 * Exactly one notice to `session`, from the host, to its full JID, of no type
 * (or normal), whose body names software, device (null: none known), a time
 * within [t0, t1] and the command.
 */
function assertNotice(msgs, session, { software, device = null, t0, t1 }, what) {
  assert.equal(msgs.length, 1, `${what}: exactly one notice to ${session.jid}, got ${msgs.length}:\n${msgs.join("\n")}`);
  const [m] = msgs;
  assert.equal(m.attrs.from, HOST, `${what}: from the host JID: ${m}`);
  assert.equal(m.attrs.to, session.jid, `${what}: to the session's full JID: ${m}`);
  assert.ok(m.attrs.type === undefined || m.attrs.type === "normal", `${what}: no type (or normal): ${m}`);
  const bodies = m.getChildren("body");
  assert.equal(bodies.length, 1, `${what}: one <body/>: ${m}`);
  const body = bodies[0].getText();
  assert.ok(body.includes(software), `${what}: the body names the software '${software}': ${body}`);
  if (device !== null) assert.ok(body.includes(device), `${what}: the body names the device '${device}': ${body}`);
  assert.ok(body.includes(COMMAND), `${what}: the body names the '${COMMAND}' command: ${body}`);
  const time = body.match(TIME);
  assert.ok(time, `${what}: the body gives the time as YYYY-MM-DD HH:MM UTC: ${body}`);
  const at = Date.parse(`${time[1]}T${time[2]}:${time[3]}:00Z`) / 1000;
  assert.ok(at >= Math.floor(t0 / 60) * 60 && at <= t1, `${what}: the time ${time[0]} is when the client came (${new Date(t0 * 1000).toISOString()}..${new Date(t1 * 1000).toISOString()}): ${body}`);
  return body;
}

describe("new-client notices with client_management_notify_new_clients = true", () => {
  // Every new client on its own: coalescing is off here (interval 0), and tested below.
  const fx = useServer({ options: { client_management_notify_new_clients: true, client_management_notice_interval: 0 } });

  e2eTest(fx, "a new SASL2 client: every other session (SASL2 and legacy) gets one notice; the new client and other accounts get none", async ({ account, login }) => {
    const a = await account("notice");
    const b = await account("notice-other");
    const observer = await login({ username: a.user, password: a.password, userAgent: OBSERVER_UA });
    const legacyObserver = await login({ username: a.user, password: a.password, sasl2: false, resource: "notice-legacy-observer" });
    const stranger = await login({ username: b.user, password: b.password, userAgent: STRANGER_UA });
    const marks = mark(observer, legacyObserver, stranger);

    const t0 = nowSeconds();
    const fresh = await login({ username: a.user, password: a.password, userAgent: NEW_UA });
    const t1 = nowSeconds();
    const notices = await noticesSince(marks);
    for (const s of [observer, legacyObserver]) {
      assertNotice(notices.get(s), s, { software: NEW_UA.software, device: NEW_UA.device, t0, t1 }, "new SASL2 client");
    }
    assert.deepEqual(notices.get(stranger).map(String), [], "another account's session gets nothing");
    await assertNoNoticeEver(fresh, "the new client itself");
  });

  e2eTest(fx, "a client without software is announced as 'Unknown software'", async ({ account, login }) => {
    const a = await account("notice");
    const observer = await login({ username: a.user, password: a.password, userAgent: OBSERVER_UA });
    const marks = mark(observer);
    const t0 = nowSeconds();
    await login({ username: a.user, password: a.password, userAgent: BARE_UA });
    const t1 = nowSeconds();
    const notices = await noticesSince(marks);
    assertNotice(notices.get(observer), observer, { software: "Unknown software", t0, t1 }, "client without software");
  });

  e2eTest(fx, "re-logins of an announced client id (password again, FAST) bring no notice", async ({ account, login }) => {
    const a = await account("notice");
    const observer = await login({ username: a.user, password: a.password, userAgent: OBSERVER_UA });
    let marks = mark(observer);
    const t0 = nowSeconds();
    const store = { token: null };
    const first = await login({ username: a.user, password: a.password, fast: store, userAgent: NEW_UA });
    const t1 = nowSeconds();
    assert.ok(store.token, "a FAST token was issued");
    assertNotice((await noticesSince(marks)).get(observer), observer, { software: NEW_UA.software, device: NEW_UA.device, t0, t1 }, "first login");
    await first.close();

    marks = mark(observer);
    const again = await login({ username: a.user, password: a.password, userAgent: NEW_UA });
    assertNone(await noticesSince(marks), "a password re-login of the same client id");
    await assertNoNoticeEver(again, "the re-logged-in client");
    await again.close();

    marks = mark(observer);
    const viaFast = await login({ username: a.user, fast: { token: store.token }, userAgent: NEW_UA });
    assert.equal(viaFast.sent.find((el) => el.name === "authenticate")?.attrs.mechanism, "HT-SHA-256-NONE", "logged in with the FAST token");
    assertNone(await noticesSince(marks), "a FAST re-login of the same client id");

    // a second, concurrent session of the same client id is no new client either
    marks = mark(observer, viaFast);
    await login({ username: a.user, password: a.password, userAgent: NEW_UA });
    assertNone(await noticesSince(marks), "a concurrent session of the same client id");
  });

  e2eTest(fx, "a new legacy client: a notice ('Unknown software'); the same resource again: none; another resource: a notice", async ({ account, login }) => {
    const a = await account("notice");
    const observer = await login({ username: a.user, password: a.password, userAgent: OBSERVER_UA });
    let marks = mark(observer);
    let t0 = nowSeconds();
    const legacy = await login({ username: a.user, password: a.password, sasl2: false, resource: "notice-legacy" });
    let t1 = nowSeconds();
    assertNotice((await noticesSince(marks)).get(observer), observer, { software: "Unknown software", t0, t1 }, "new legacy client");
    await assertNoNoticeEver(legacy, "the new legacy client itself");
    await legacy.close();

    marks = mark(observer);
    const again = await login({ username: a.user, password: a.password, sasl2: false, resource: "notice-legacy" });
    assertNone(await noticesSince(marks), "the same legacy client (full JID) again");
    await assertNoNoticeEver(again, "the re-bound legacy client");

    marks = mark(observer, again);
    t0 = nowSeconds();
    await login({ username: a.user, password: a.password, sasl2: false, resource: "notice-legacy-2" });
    t1 = nowSeconds();
    const notices = await noticesSince(marks);
    for (const s of [observer, again]) {
      assertNotice(notices.get(s), s, { software: "Unknown software", t0, t1 }, "another legacy resource");
    }
  });

  e2eTest(fx, "a new grant: every online session gets one notice naming the app; a login with its token brings none", async ({ server, account, login }) => {
    const a = await account("notice");
    const observer = await login({ username: a.user, password: a.password, userAgent: OBSERVER_UA });
    const observer2 = await login({ username: a.user, password: a.password, userAgent: OBSERVER2_UA });
    let marks = mark(observer, observer2);
    const t0 = nowSeconds();
    const grant = await server.createGrant(a.user, { client: APP });
    const t1 = nowSeconds();
    const notices = await noticesSince(marks);
    for (const s of [observer, observer2]) {
      assertNotice(notices.get(s), s, { software: APP.name, t0, t1 }, "new grant");
    }

    marks = mark(observer, observer2);
    const oauth = await login({ username: a.user, oauthToken: grant.token, userAgent: OAUTH_UA });
    assertNone(await noticesSince(marks), "a SASL2 login with the announced grant's token (new client id)");
    await assertNoNoticeEver(oauth, "the client that logged in with the grant");
    await oauth.close();

    marks = mark(observer, observer2);
    await login({ username: a.user, oauthToken: grant.token, sasl2: false, resource: "notice-oauth-legacy" });
    assertNone(await noticesSince(marks), "a legacy-SASL login with the announced grant's token");
  });

  e2eTest(fx, "notices go to online sessions only: a client that logs in later hears nothing of earlier ones", async ({ account, login }) => {
    const a = await account("notice");
    const early = await login({ username: a.user, password: a.password, userAgent: OBSERVER_UA });
    await assertNoNoticeEver(early, "the first client (nobody else online)");
    await early.close();
    await login({ username: a.user, password: a.password, sasl2: false, resource: "notice-legacy-early" }).then((s) => s.close());
    const late = await login({ username: a.user, password: a.password, userAgent: NEW_UA });
    await assertNoNoticeEver(late, "a client that logs in after the others left");
  });
});

describe("notices coalesce: one at once, then one summary per client_management_notice_interval (issue 14, item 6)", () => {
  const INTERVAL = 5;
  const fx = useServer({ options: { client_management_notify_new_clients: true, client_management_notice_interval: INTERVAL } });

  e2eTest(fx, "500 new client ids in a burst: each other session gets the first notice at once, then at most one summary per interval, counting the 499 others and naming the latest; a held-back client's own stream is not told about itself", async ({ server, account, login }) => {
    const a = await account("notice");
    const observer = await login({ username: a.user, password: a.password, userAgent: OBSERVER_UA });
    const legacyObserver = await login({ username: a.user, password: a.password, sasl2: false, resource: "notice-legacy-observer" });
    // The legacy observer was itself a new client, announced to the first observer: let that
    // interval pass so that the burst starts a fresh one.
    await sleep((INTERVAL + 1) * 1000);
    const marks = mark(observer, legacyObserver);
    const started = Date.now();
    const N = 500;
    const BATCH = 10;
    let lastId = null;
    let kept = null;
    for (let i = 0; i < N; i += BATCH) {
      const batch = await Promise.all(Array.from({ length: BATCH }, (_, j) => unboundLogin(server, {
        kind: "sasl2-password", username: a.user, password: a.password,
        userAgent: { id: `burst-${i + j}`, software: `Burst App ${i + j}`, device: "Burst Phone" },
      })));
      if (i + BATCH >= N) {
        // One stream of the last, held-back clients stays, bound.
        kept = batch.pop();
        await bind(kept.conn, "burst-kept");
      }
      await Promise.all(batch.map((b) => closeRaw(b.conn)));
      lastId = i + BATCH - 1;
    }
    const burstSeconds = (Date.now() - started) / 1000;
    // The first notice came at once; every summary since counts the clients held back in its
    // interval: together they account for all the others, in at most one message per interval.
    const counted = (msgs) => msgs.slice(1).reduce((n, m) => n + Number(m.getChildText("body").match(/^(\d+) more/)?.[1] ?? NaN), 0);
    let final = null;
    await eventually(async () => {
      final = await noticesSince(marks);
      return [...final.values()].every((msgs) => counted(msgs) >= N - 1);
    }, { timeout: (2 * INTERVAL + 10) * 1000, interval: 500 });
    await sleep(500);
    final = await noticesSince(marks);
    const most = 2 + Math.ceil(burstSeconds / INTERVAL);
    for (const [s, msgs] of final) {
      const bodies = msgs.map((m) => m.getChildText("body"));
      assert.ok(/Burst App \d” on “Burst Phone/.test(bodies[0] ?? ""), `${s.jid}: the first notice names a client of the first batch: ${bodies[0]}`);
      assert.ok(msgs.length >= 2 && msgs.length <= most, `${s.jid}: ${msgs.length} messages for ${N} new clients in ${burstSeconds} s (at most ${most} with an interval of ${INTERVAL} s):\n${bodies.slice(0, 4).join("\n")}`);
      assert.equal(counted(msgs), N - 1, `${s.jid}: the summaries count the ${N - 1} others:\n${bodies.join("\n")}`);
      const last = bodies.at(-1);
      assert.ok(new RegExp(`The latest calls itself “Burst App ${Math.floor(lastId / 10)}\\d” on “Burst Phone”`).test(last), `the last summary names a client of the last batch: ${last}`);
      for (const [k, body] of bodies.slice(1).entries()) {
        assert.ok(/since \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC/.test(body), `summary ${k} says since when: ${body}`);
        assert.ok(body.includes("Manage clients"), `summary ${k} says how to revoke: ${body}`);
      }
      assert.ok(msgs.every((m) => m.attrs.from === server.host), "from the host");
    }
    // The flood stream that stayed is one of those the last summary is about: it hears nothing.
    const keptMsgs = kept.conn.elements.filter((el) => el.is("message") && el.attrs.from === server.host);
    assert.deepEqual(keptMsgs.map(String), [], "a flood client's own stream got a notice");
    await closeRaw(kept.conn);
    // A quiet interval later, a new client is announced at once again.
    await sleep((INTERVAL + 1) * 1000);
    const after = mark(observer);
    await login({ username: a.user, password: a.password, userAgent: NEW_UA });
    const again = (await noticesSince(after)).get(observer);
    assert.equal(again.length, 1, `after a quiet interval a new client is announced at once: ${again.join("\n")}`);
  }, { timeout: 120000 });
});

describe("new-client notices are off by default", () => {
  const fx = useServer();

  e2eTest(fx, "no notice for a new SASL2 client, a new legacy client or a new grant", async ({ server, account, login }) => {
    const a = await account("notice");
    const observer = await login({ username: a.user, password: a.password, userAgent: OBSERVER_UA });
    const legacyObserver = await login({ username: a.user, password: a.password, sasl2: false, resource: "notice-legacy-observer" });
    const marks = mark(observer, legacyObserver);
    const fresh = await login({ username: a.user, password: a.password, userAgent: NEW_UA });
    const legacy = await login({ username: a.user, password: a.password, sasl2: false, resource: "notice-legacy" });
    await server.createGrant(a.user, { client: APP });
    assertNone(await noticesSince(marks), "option off");
    await assertNoNoticeEver(fresh, "option off, the new client");
    await assertNoNoticeEver(legacy, "option off, the new legacy client");
    await assertNoNoticeEver(observer, "option off, the first client");
  });
});
