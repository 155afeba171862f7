// Logins spoken by hand over a RawConnection (client.js), for what xmpp.js
// will not do: authenticate and then NOT bind (SASL2 without Bind 2, FAST,
// legacy RFC 6120 SASL followed by a stream restart), bind later or never,
// enable XEP-0198 and drop the socket, send oversized <user-agent/>s.
//
//   const u = await unboundLogin(server, { kind: "sasl2-oauth", username, token, userAgent: { id } });
//   u.conn             the RawConnection, authenticated, not bound
//   u.success          the <success/> element
//   await bind(u.conn, "res")         → the bind iq reply, or null (no answer / stream ended)
//   await waitEnded(u.conn)           → true once the server closed the stream
//   streamError(u.conn)               → the <stream:error/> received, or null
//
// kinds: "sasl2-oauth"   SASL2 OAUTHBEARER (grant token), no Bind 2
//        "sasl2-fast"    SASL2 HT-SHA-256-NONE with <fast/> (token = the FAST token string)
//        "sasl2-password" SASL2 PLAIN, no Bind 2
//        "legacy-oauth"  RFC 6120 <auth mechanism='OAUTHBEARER'>, then a stream restart
//        "legacy-plain"  RFC 6120 <auth mechanism='PLAIN'>, then a stream restart

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";

import { NS, RawConnection } from "./client.js";

export const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";
export const NS_SM = "urn:xmpp:sm:3";
export const NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams";

const HOST = "localhost";

/** XML-escape text or an attribute value. */
export function esc(s) {
  return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/'/g, "&apos;").replace(/"/g, "&quot;");
}

const b64 = (data) => Buffer.from(data).toString("base64");

/** RFC 7628 OAUTHBEARER initial response (bytes as a string): n,a=USER@HOST,^Aauth=Bearer TOKEN^A^A */
export function oauthBearerResponse(username, token, host = HOST) {
  return `n,a=${username}@${host},\x01auth=Bearer ${token}\x01\x01`;
}

/** XEP-0484 HT-SHA-256-NONE initial response: username NUL HMAC-SHA-256(key = token, "Initiator"). */
export function htSha256NoneResponse(username, token) {
  const hmac = createHmac("sha256", Buffer.from(token, "utf8")).update("Initiator").digest();
  return Buffer.concat([Buffer.from(`${username}\0`, "utf8"), hmac]);
}

/** RFC 4616 PLAIN initial response. */
export function plainInitial(username, password) {
  return `\0${username}\0${password}`;
}

/**
 * The text of a SASL2 <authenticate/>:
 *   mechanism, initialResponse (string or Buffer; base64-encoded here; undefined: none),
 *   userAgent { id, software, device } (id null/undefined: no id attribute; false: no <user-agent/>),
 *   fast: true → <fast xmlns='urn:xmpp:fast:0'/>,
 *   requestToken: a mechanism name → <request-token xmlns='urn:xmpp:fast:0' mechanism=…/>.
 */
export function authenticateXml({ mechanism, initialResponse, userAgent = false, fast = false, requestToken } = {}) {
  let ua = "";
  if (userAgent) {
    const idAttr = userAgent.id === null || userAgent.id === undefined ? "" : ` id='${esc(userAgent.id)}'`;
    ua = `<user-agent${idAttr}>`
      + (userAgent.software !== undefined ? `<software>${esc(userAgent.software)}</software>` : "")
      + (userAgent.device !== undefined ? `<device>${esc(userAgent.device)}</device>` : "")
      + "</user-agent>";
  }
  return `<authenticate xmlns='${NS.sasl2}' mechanism='${esc(mechanism)}'>`
    + (initialResponse !== undefined ? `<initial-response>${b64(initialResponse)}</initial-response>` : "")
    + ua
    + (fast ? `<fast xmlns='${NS.fast}'/>` : "")
    + (requestToken ? `<request-token xmlns='${NS.fast}' mechanism='${esc(requestToken)}'/>` : "")
    + "</authenticate>";
}

/** A SASL answer (either namespace) or a stream error. */
const saslAnswer = (el) => [NS.sasl, NS.sasl2].includes(el.attrs.xmlns) || el.is("error", NS.streams);

/** Connect and open a stream (from= makes Prosody offer FAST); → { conn, features }. */
export async function openRaw(server, { from } = {}) {
  const conn = await new RawConnection(server.port).connect();
  const features = await conn.openStream({ from });
  assert.ok(features, `no <stream:features/> from the server (port ${server.port})`);
  return { conn, features };
}

/** Send a SASL2 <authenticate/> (see authenticateXml); → the answer (<success/>, <failure/>, <challenge/>, stream error) or null. */
export async function sasl2Authenticate(conn, opts, timeout = 5000) {
  return conn.sendAndWait(authenticateXml(opts), saslAnswer, timeout);
}

/** Send a legacy RFC 6120 <auth/>; → the answer or null. */
export async function legacyAuth(conn, { mechanism, initialResponse }, timeout = 5000) {
  return conn.sendAndWait(`<auth xmlns='${NS.sasl}' mechanism='${esc(mechanism)}'>${initialResponse === undefined ? "" : b64(initialResponse) || "="}</auth>`,
    saslAnswer, timeout);
}

/** The stream restart after legacy SASL <success/>; → the new <stream:features/>. */
export async function restartStream(conn, { from } = {}) {
  return conn.openStream({ from });
}

let bindSeq = 0;
/**
 * RFC 6120 resource binding: → the bind iq reply (result or error), or null
 * when none came within `timeout` or the stream has ended.
 */
export async function bind(conn, resource, { timeout = 3000 } = {}) {
  if (conn.ended) return null;
  const id = `raw-bind-${++bindSeq}`;
  const res = resource === undefined ? "" : `<resource>${esc(resource)}</resource>`;
  return conn.sendAndWait(`<iq type='set' id='${id}'><bind xmlns='${NS_BIND}'>${res}</bind></iq>`,
    (el) => el.name === "iq" && el.attrs.id === id, timeout);
}

/** The full JID of a bind result, or null. */
export function boundJid(reply) {
  if (reply?.attrs.type !== "result") return null;
  return reply.getChild("bind", NS_BIND)?.getChildText("jid") ?? null;
}

/** XEP-0198 <enable/> (resume by default); → <enabled/> or <failed/> or null. */
export async function enableSm(conn, { resume = true, timeout = 3000 } = {}) {
  return conn.sendAndWait(`<enable xmlns='${NS_SM}'${resume ? " resume='true'" : ""}/>`,
    (el) => el.attrs.xmlns === NS_SM && ["enabled", "failed"].includes(el.name), timeout);
}

/** Drop the TCP connection without closing the stream (what a phone losing its network does). */
export function dropConnection(conn) {
  conn.sock.destroy();
}

/** Resolves true once the server ended the stream (or the socket), false after `timeout` ms. */
export async function waitEnded(conn, timeout = 5000) {
  if (conn.ended) return true;
  await conn.waitFor(() => false, { timeout });
  return conn.ended;
}

/** The <stream:error/> received on this connection, or null. */
export function streamError(conn) {
  return conn.elements.find((el) => el.is("error", NS.streams)) ?? null;
}

/** A view of a stream error: { condition, text }. */
export function streamErrorView(el) {
  if (!el) return null;
  const cond = el.getChildElements().find((c) => c.attrs.xmlns === NS_STREAM_ERRORS && c.name !== "text");
  const text = el.getChild("text", NS_STREAM_ERRORS);
  return { condition: cond?.name, text: text ? text.getText() : undefined };
}

/**
 * Log in without binding. Options: kind (see the top of the file), username,
 * password | token, userAgent ({ id, software, device } for SASL2 kinds),
 * requestToken (SASL2: ask for a FAST token). Throws unless the server
 * answered <success/>. → { conn, success, features (after the login), jid (bare) }.
 */
export async function unboundLogin(server, { kind, username, password, token, userAgent, requestToken, timeout = 5000 }) {
  const jid = `${username}@${server.host}`;
  const sasl2 = kind.startsWith("sasl2-");
  const { conn, features } = await openRaw(server, { from: jid });
  let success;
  try {
    if (sasl2) {
      assert.ok(features.getChild("authentication", NS.sasl2), `${kind}: SASL2 not offered: ${features}`);
      if (kind === "sasl2-fast") {
        const fast = features.getChild("authentication", NS.sasl2).getChild("inline")?.getChild("fast", NS.fast);
        assert.ok(fast, `${kind}: FAST not offered to a stream from ${jid}: ${features}`);
      }
      const make = {
        "sasl2-oauth": () => ({ mechanism: "OAUTHBEARER", initialResponse: oauthBearerResponse(username, token, server.host) }),
        "sasl2-fast": () => ({ mechanism: "HT-SHA-256-NONE", initialResponse: htSha256NoneResponse(username, token), fast: true }),
        "sasl2-password": () => ({ mechanism: "PLAIN", initialResponse: plainInitial(username, password) }),
      }[kind];
      assert.ok(make, `unknown login kind ${kind}`);
      const opts = make();
      success = await sasl2Authenticate(conn, { ...opts, userAgent, requestToken }, timeout);
      assert.ok(success?.is("success", NS.sasl2), `${kind} login of ${jid} not accepted: ${success ?? "no answer"}`);
      // mod_sasl2 sends the post-authentication stream features right after <success/>
      const after = await conn.waitFor((el) => el.is("features", NS.streams), { since: conn.elements.indexOf(success) + 1, timeout });
      assert.ok(after, `${kind}: no stream features after <success/>`);
      return { conn, success, features: after, jid };
    }
    const make = {
      "legacy-oauth": () => ({ mechanism: "OAUTHBEARER", initialResponse: oauthBearerResponse(username, token, server.host) }),
      "legacy-plain": () => ({ mechanism: "PLAIN", initialResponse: plainInitial(username, password) }),
    }[kind];
    assert.ok(make, `unknown login kind ${kind}`);
    const opts = make();
    assert.ok(features.getChild("mechanisms", NS.sasl), `${kind}: legacy SASL not offered: ${features}`);
    success = await legacyAuth(conn, opts, timeout);
    assert.ok(success?.is("success", NS.sasl), `${kind} login of ${jid} not accepted: ${success ?? "no answer"}`);
    const after = await restartStream(conn, { from: jid });
    assert.ok(after?.getChild("bind", NS_BIND), `${kind}: no bind feature after the stream restart: ${after}`);
    return { conn, success, features: after, jid };
  } catch (err) {
    conn.close();
    throw err;
  }
}

/**
 * A whole legacy login done by hand, lighter than xmpp.js for many logins:
 * PLAIN over RFC 6120 SASL, stream restart, bind `resource`. → { conn, jid (full) }.
 */
export async function legacyBoundLogin(server, { username, password, resource }) {
  const u = await unboundLogin(server, { kind: "legacy-plain", username, password });
  const reply = await bind(u.conn, resource, { timeout: 10000 });
  const jid = boundJid(reply);
  if (!jid) {
    u.conn.close();
    throw new Error(`bind of ${resource} failed: ${reply ?? "no answer"}`);
  }
  return { conn: u.conn, jid };
}

/** Close a raw connection properly and wait until its socket is closed. */
export async function closeRaw(conn, timeout = 3000) {
  if (!conn || conn.sock.destroyed) return;
  const closed = new Promise((resolve) => {
    conn.sock.once("close", resolve);
    setTimeout(resolve, timeout).unref();
  });
  conn.close();
  await closed;
}

/**
 * Exactly <failure xmlns='urn:xmpp:sasl:2'><CONDITION xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/><text>TEXT</text></failure>
 * (no other children).
 */
export function assertSasl2Failure(el, { condition, text }, what) {
  assert.ok(el, `${what}: no answer from the server`);
  assert.ok(el.is("failure", NS.sasl2), `${what}: expected a SASL2 <failure/>, got ${el}`);
  const children = el.getChildElements();
  assert.deepEqual(children.map((c) => `${c.getNS()} ${c.name}`).sort(), [
    `${NS.sasl} ${condition}`,
    `${NS.sasl2} text`,
  ].sort(), `${what}: exactly <${condition}/> and <text/> in ${el}`);
  assert.equal(el.getChild(condition, NS.sasl).children.length, 0, `${what}: <${condition}/> is empty: ${el}`);
  assert.equal(el.getChildText("text", NS.sasl2), text, `${what}: failure text in ${el}`);
}
