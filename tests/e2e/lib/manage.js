// The module's XMPP protocol (ARCHITECTURE.md §5, §6): list and revoke requests, and
// plain-object views of the replies for assertions.

import assert from "node:assert/strict";

import { xml, NS } from "./client.js";

export const NS_MC = "xmpp:prosody.im/protocol/manage-clients";
export const NS_CAM = "urn:xmpp:cam:0";

/** `YYYY-MM-DDThh:mm:ssZ`, as ARCHITECTURE.md §6 wants timestamps. */
export const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
/** A generated legacy client id: 12 chars base64url (9 random bytes). */
export const LEGACY_ID = /^[A-Za-z0-9_-]{12}$/;

/** Unix seconds → `YYYY-MM-DDThh:mm:ssZ`. */
export function isoSeconds(unix) {
  return new Date(Math.floor(unix) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}
/** `YYYY-MM-DDThh:mm:ssZ` → unix seconds. */
export function unixOf(ts) {
  return Date.parse(ts) / 1000;
}
export const nowSeconds = () => Math.floor(Date.now() / 1000);

/** A view of one <client/> of a list result. */
export function parseClient(el) {
  const auth = el.getChild("auth");
  const ua = el.getChild("user-agent");
  const software = ua?.getChild("software") ?? null;
  return {
    el,
    id: el.attrs.id,
    type: el.attrs.type,
    connected: el.attrs.connected,
    firstSeen: el.getChild("first-seen") ? el.getChildText("first-seen") : undefined,
    lastSeen: el.getChild("last-seen") ? el.getChildText("last-seen") : undefined,
    authEl: auth ?? null,
    /** names of <auth/>'s children, sorted */
    auth: auth ? auth.getChildElements().map((c) => c.name).sort() : null,
    userAgentEl: ua ?? null,
    softwareEl: software,
    software: software ? software.getText() : undefined,
    device: ua?.getChild("device") ? ua.getChildText("device") : undefined,
    uri: ua?.getChild("uri") ? ua.getChildText("uri") : undefined,
  };
}

/** A view of an iq error reply. */
export function stanzaError(reply) {
  const err = reply.getChild("error");
  if (!err) return null;
  const children = err.getChildElements();
  const condition = children.find((c) => c.attrs.xmlns === NS.stanzas && c.name !== "text");
  const text = children.find((c) => c.name === "text" && c.attrs.xmlns === NS.stanzas);
  return {
    el: err,
    type: err.attrs.type,
    condition: condition?.name,
    text: text ? text.getText() : undefined,
    /** application-specific children (other namespaces) */
    app: children.filter((c) => c.attrs.xmlns !== NS.stanzas),
  };
}

/** iq get <list/>; returns { reply, clients } and asserts a proper result. */
export async function listClients(session, { ns = NS_MC, to } = {}) {
  const reply = await session.iq(xml("list", { xmlns: ns }), { type: "get", to });
  assert.equal(reply.attrs.type, "result", `list failed: ${reply}`);
  const clientsEl = reply.getChild("clients", ns);
  assert.ok(clientsEl, `no <clients xmlns='${ns}'/> in ${reply}`);
  return { reply, clients: clientsEl.getChildren("client").map(parseClient) };
}

/** iq set <revoke id=…/> (attrs.id undefined → no id attribute); returns the reply. */
export async function revoke(session, id, { ns = NS_MC, to, attrs = {} } = {}) {
  return session.iq(xml("revoke", { xmlns: ns, id, ...attrs }), { type: "set", to });
}

export function assertResult(reply, what = "request") {
  assert.equal(reply.attrs.type, "result", `${what} failed: ${reply}`);
}

/** Assert an error reply: { type, condition, text? } and return its view. */
export function assertError(reply, { type, condition, text } = {}) {
  assert.equal(reply.attrs.type, "error", `expected an error, got ${reply}`);
  const e = stanzaError(reply);
  assert.ok(e, `error reply without <error/>: ${reply}`);
  if (type !== undefined) assert.equal(e.type, type, `error type in ${reply}`);
  if (condition !== undefined) assert.equal(e.condition, condition, `error condition in ${reply}`);
  if (text !== undefined) assert.equal(e.text, text, `error text in ${reply}`);
  return e;
}

/** The list entry with this id, asserting it is there exactly once. */
export function entry(clients, id) {
  const found = clients.filter((c) => c.id === id);
  assert.equal(found.length, 1, `expected exactly one '${id}' in [${clients.map((c) => c.id).join(", ")}]`);
  return found[0];
}

export function ids(clients) {
  return clients.map((c) => c.id);
}

/** Every <first-seen>/<last-seen> present has the XEP-0082 timestamp shape (ARCHITECTURE.md §6). */
export function assertTimestamps(clients) {
  for (const c of clients) {
    for (const [k, v] of [["first-seen", c.firstSeen], ["last-seen", c.lastSeen]]) {
      if (v !== undefined) assert.match(v, TIMESTAMP, `<${k}> of ${c.id}: ${c.el}`);
    }
  }
}
