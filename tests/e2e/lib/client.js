// Log in to the test server in the different ways clients do, on top of
// @xmpp/client 0.14's building blocks, and talk to it in stanzas.
//
// Kinds of login (options of login()):
//   SASL2 + Bind 2 ............ { username, password }                       (default)
//   SASL2 without Bind 2 ...... { ..., bind2: false }   then RFC 6120 resource binding
//   SASL2, no <user-agent> .... { ..., userAgent: false }
//   FAST ...................... { username, fast: store } with store.token set (see below)
//   legacy RFC 6120 SASL ...... { username, password, sasl2: false }
//   OAUTHBEARER ............... { username, oauthToken: "secret-token:..." } (SASL2 or, with
//                                sasl2: false, legacy SASL)
//
// FAST in xmpp.js 0.14 (@xmpp/client-core/src/fast/fast.js): the `fast`
// object keeps the token through three overridable async hooks,
// saveToken(t) / fetchToken() / deleteToken(); t = { mechanism, token,
// expiry }. When the server advertises FAST (it only does when the stream
// header names the user, see header() below) and no valid token is
// fetched, xmpp.js adds <request-token/> to the password <authenticate/>
// and saves what <success/> carries. With a token it first tries FAST
// (HT-SHA-256-NONE) and, on not-authorized/credentials-expired, deletes the
// token and falls back to the password mechanism. Here `fast: store` wires
// these hooks to a plain object ({ token: null } to begin with), so a
// token can be carried from one client instance to the next. Without
// `fast`, a stub takes its place and no token is requested or used.

import { randomUUID } from "node:crypto";
import net from "node:net";

import { Client, xml, jid as parseJid } from "@xmpp/client-core";
import _tcp from "@xmpp/tcp";
import _middleware from "@xmpp/middleware";
import _streamFeatures from "@xmpp/stream-features";
import _iqCallee from "@xmpp/iq/callee.js";
import _iqCaller from "@xmpp/iq/caller.js";
import _sasl2 from "@xmpp/sasl2";
import _sasl from "@xmpp/sasl";
import _resourceBinding from "@xmpp/resource-binding";
import _bind2 from "@xmpp/client-core/src/bind2/bind2.js";
import _fast from "@xmpp/client-core/src/fast/fast.js";
import SASLFactory from "saslmechanisms";
import scramsha1 from "@xmpp/sasl-scram-sha-1";
import plain from "@xmpp/sasl-plain";
import htsha256none from "@xmpp/sasl-ht-sha-256-none";
import { Parser } from "@xmpp/xml";

import { scaled } from "./server.js";

export { xml };

export const NS = {
  sasl: "urn:ietf:params:xml:ns:xmpp-sasl",
  sasl2: "urn:xmpp:sasl:2",
  bind2: "urn:xmpp:bind:0",
  fast: "urn:xmpp:fast:0",
  stanzas: "urn:ietf:params:xml:ns:xmpp-stanzas",
  streams: "http://etherx.jabber.org/streams",
};

// xmpp.js 0.14 races stream (re)opening against a 2 s timer and may emit
// a TimeoutError event, or reject a promise nobody awaits, although the
// stream went on fine. Such errors are never what a test asserts on.
export const isTimeoutError = (err) => err?.name === "TimeoutError";
process.on("unhandledRejection", (err) => {
  if (isTimeoutError(err)) return;
  throw err;
});

// ------------------------------------------------------------ OAUTHBEARER

/**
 * RFC 7628 OAUTHBEARER for the saslmechanisms factory xmpp.js uses
 * (xmpp.js ships none). Initial response:
 *   n,a=<authzid>,\x01auth=Bearer <token>\x01\x01
 * On an error challenge (JSON) the client answers \x01 and the server
 * then fails the exchange (util/sasl/oauthbearer.lua).
 */
export function OAuthBearer() {}
OAuthBearer.prototype.name = "OAUTHBEARER";
OAuthBearer.prototype.clientFirst = true;
OAuthBearer.prototype.response = function response(cred) {
  if (this.errorChallenge !== undefined) return "\x01";
  const authzid = cred.authzid ?? (cred.username ? `${cred.username}@${cred.host}` : "");
  return `n,a=${authzid},\x01auth=Bearer ${cred.oauthToken}\x01\x01`;
};
OAuthBearer.prototype.challenge = function challenge(chal) {
  this.errorChallenge = chal;
  return this;
};

// ------------------------------------------------------------ client

export class LoginError extends Error {
  constructor(message, { failure = null, elements = [], cause } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = "LoginError";
    /** The server's <failure/> (SASL or SASL2 namespace), if any. */
    this.failure = failure;
    this.elements = elements;
  }
}

/**
 * A logged-in (or logging-in) client. `elements` has every top-level
 * element received, `sent` every one sent, in order.
 */
export class Session {
  constructor(opts) {
    this.opts = opts;
    this.elements = [];
    this.sent = [];
    this.errors = [];
    /** Every chunk of bytes received on the socket, as it came (see rawIn). */
    this.rawChunks = [];
    this.success = null; // SASL2 <success/>
    this.closed = false;
    this._closedWaiters = [];
  }

  /** Everything received on the socket so far, as UTF-8 text, byte for byte. */
  get rawIn() {
    return Buffer.concat(this.rawChunks).toString("utf8");
  }

  get jid() {
    return this.xmpp.jid?.toString();
  }
  get bareJid() {
    return this.xmpp.jid?.bare().toString();
  }
  _markClosed() {
    if (this.closed) return;
    this.closed = true;
    for (const w of this._closedWaiters) w();
    this._closedWaiters = [];
  }

  /** Resolves true once the server closed the stream or the socket (false on timeout). */
  waitClosed(timeout = 5000) {
    if (this.closed) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeout);
      this._closedWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  /** Send a stanza and return the first incoming stanza matching `pred`. */
  async sendAndWait(stanza, pred, timeout = 10000) {
    const got = this.waitFor(pred, timeout);
    await this.xmpp.send(stanza);
    return got;
  }

  /** The next incoming top-level element matching `pred` (rejects on timeout). */
  waitFor(pred, timeout = 10000) {
    return new Promise((resolve, reject) => {
      const onEl = (el) => {
        if (!pred(el)) return;
        cleanup();
        resolve(el);
      };
      const t = setTimeout(() => {
        cleanup();
        reject(new Error(`no matching element within ${timeout} ms`));
      }, timeout);
      const cleanup = () => {
        clearTimeout(t);
        this.xmpp.removeListener("element", onEl);
      };
      this.xmpp.on("element", onEl);
    });
  }

  /**
   * Send an iq (`child` wrapped in <iq type to>) and return the whole
   * reply stanza, result or error. `to` defaults to the own bare JID.
   */
  async iq(child, { type = "get", to = this.bareJid, id = `e2e-${randomUUID()}`, timeout = scaled(5000) } = {}) {
    const stanza = xml("iq", { type, to, id }, child);
    try {
      return await this.sendAndWait(
        stanza,
        (el) => el.name === "iq" && el.attrs.id === id && (el.attrs.type === "result" || el.attrs.type === "error"),
        timeout,
      );
    } catch (err) {
      throw new Error(`iq ${type} to ${to} got no reply: ${stanza}`, { cause: err });
    }
  }

  /** Close the stream (ignores a connection the server already closed). */
  async close() {
    if (this.closed || !this.xmpp) return;
    this.closing = true;
    try {
      await this.xmpp.stop();
    } catch {}
    try {
      this.xmpp.socket?.destroy?.();
    } catch {}
    this._markClosed();
  }
}

function buildEntity(server, session, opts) {
  const {
    username,
    domain = server.host,
    sasl2 = true,
    bind2 = true,
    resource,
    fast: fastStore,
    userAgent = { id: randomUUID() },
  } = opts;

  const entity = new Client({ service: server.service, domain, timeout: scaled(10000) });
  // Keep the bytes as received as well (Session.rawIn), before xmpp.js parses them.
  // Connection binds _onData when the socket is attached, i.e. after this.
  const onData = entity._onData;
  entity._onData = function _onDataRecorded(data) {
    session.rawChunks.push(Buffer.from(data));
    return onData.call(this, data);
  };
  if (username) entity.jid = parseJid(username, domain);
  // Announce who we are in the stream header even without TLS: Prosody
  // only offers FAST to streams whose 'from' names the user.
  entity.header = function header(headerElement, ...args) {
    if (this.jid) headerElement.attrs.from = this.jid.bare().toString();
    return this.Transport.prototype.header(headerElement, ...args);
  };
  _tcp({ entity });

  const middleware = _middleware({ entity });
  const streamFeatures = _streamFeatures({ middleware });
  const iqCaller = _iqCaller({ middleware, entity });
  _iqCallee({ middleware, entity }).get("urn:xmpp:ping", "ping", () => ({}));

  const saslFactory = new SASLFactory();
  scramsha1(saslFactory);
  plain(saslFactory);
  saslFactory.use(OAuthBearer);

  const onAuthenticate = async (done, mechanisms, fast, ent) => {
    const credentials = { username, password: opts.password, oauthToken: opts.oauthToken };
    if (fast) credentials.token = await fast.fetch();
    let mechanism = opts.mechanism;
    if (!mechanism) {
      if (opts.oauthToken) mechanism = "OAUTHBEARER";
      else if (opts.password !== undefined) mechanism = "SCRAM-SHA-1";
      // FAST only: a mechanism that does not exist, so that a refused
      // token is not masked by a fallback to some other login.
      else mechanism = "NO-FALLBACK";
    }
    await done(credentials, mechanism, uaElement);
  };
  const uaElement = userAgent
    ? xml("user-agent", userAgent.id === null ? {} : { id: userAgent.id },
      userAgent.software !== undefined && xml("software", {}, userAgent.software),
      userAgent.device !== undefined && xml("device", {}, userAgent.device))
    : undefined;

  let sasl2Handle = null;
  if (sasl2) {
    sasl2Handle = _sasl2({ streamFeatures, saslFactory }, onAuthenticate);
    if (fastStore) {
      const fast = _fast({ sasl2: sasl2Handle, entity });
      fast.saveToken = async (t) => {
        fastStore.token = t;
        fastStore.saved = (fastStore.saved || 0) + 1;
      };
      fast.fetchToken = async () => fastStore.token ?? null;
      fast.deleteToken = async () => {
        fastStore.token = null;
        fastStore.deleted = (fastStore.deleted || 0) + 1;
      };
      htsha256none(fast.saslFactory);
      sasl2Handle.setup({ fast });
    } else {
      // @xmpp/sasl2 always calls fast.auth(); without a mechanism it is a no-op.
      sasl2Handle.setup({ fast: { mechanism: null, fetch: async () => null, auth: async () => false } });
    }
    if (bind2) _bind2({ sasl2: sasl2Handle, entity }, resource);
  }
  _sasl({ streamFeatures, saslFactory }, onAuthenticate);
  _resourceBinding({ iqCaller, streamFeatures }, resource);

  entity.on("element", (el) => {
    session.elements.push(el);
    if (el.is("success", NS.sasl2)) session.success = el;
  });
  entity.on("send", (el) => session.sent.push(el));
  entity.on("error", (err) => {
    if (!isTimeoutError(err)) session.errors.push(err);
  });
  for (const ev of ["close", "disconnect", "offline"]) entity.on(ev, () => session._markClosed());
  // xmpp.js does not answer a stream the server closes; Prosody would then
  // keep the session for c2s_close_timeout (5 s). Close our side as well.
  entity.on("close", () => {
    if (session.closing) return;
    try {
      entity.socket?.end("</stream:stream>");
    } catch {}
  });
  return entity;
}

function lastFailure(elements) {
  return [...elements].reverse().find((el) => el.name === "failure"
    && (el.attrs.xmlns === NS.sasl || el.attrs.xmlns === NS.sasl2)) ?? null;
}

/**
 * Log in; resolves to a Session once the client is online (resource
 * bound), rejects with a LoginError carrying the server's <failure/>.
 * See the top of this file for the options.
 */
export async function login(server, opts = {}) {
  const session = new Session(opts);
  const xmpp = buildEntity(server, session, opts);
  session.xmpp = xmpp;
  const timeout = opts.timeout ?? scaled(10000);

  let timer;
  const outcome = new Promise((resolve, reject) => {
    const fail = (msg, cause) => reject(new LoginError(msg, {
      failure: lastFailure(session.elements), elements: session.elements, cause,
    }));
    xmpp.on("online", () => resolve());
    xmpp.on("error", (err) => {
      if (!isTimeoutError(err)) fail(`login failed: ${err.message}`, err);
    });
    xmpp.on("element", (el) => {
      // A failure answer ends the attempt, unless xmpp.js is about to
      // fall back from FAST to the password (it only does with one).
      if (el.is("failure", NS.sasl) || (el.is("failure", NS.sasl2) && !(opts.fast && opts.password))) {
        setImmediate(() => fail(`login refused: ${el}`));
      }
    });
    for (const ev of ["close", "disconnect"]) {
      xmpp.on(ev, () => fail(`connection closed during login (${ev})`));
    }
    timer = setTimeout(() => fail(`not online within ${timeout} ms`), timeout);
  });

  try {
    await xmpp.connect(server.service);
    await xmpp.open({ domain: xmpp.options.domain }).catch((err) => {
      if (!isTimeoutError(err)) throw err;
    });
    await outcome;
  } catch (err) {
    clearTimeout(timer);
    await session.close();
    if (err instanceof LoginError) throw err;
    throw new LoginError(`login failed: ${err.message}`, {
      failure: lastFailure(session.elements), elements: session.elements, cause: err,
    });
  }
  clearTimeout(timer);
  return session;
}

/** iq(session, child, { type, to }) → the whole reply stanza (see Session.iq). */
export const iq = (session, child, opts) => session.iq(child, opts);

/** login() that never throws: { ok, session, error, failure }. */
export async function tryLogin(server, opts) {
  try {
    return { ok: true, session: await login(server, opts) };
  } catch (error) {
    return { ok: false, error, failure: error.failure ?? null };
  }
}

// ------------------------------------------------------------ raw socket

/**
 * A plain TCP connection speaking XML by hand, for what xmpp.js won't do.
 * Incoming top-level elements are parsed (@xmpp/xml) into `elements`.
 */
export class RawConnection {
  constructor(port) {
    this.port = port;
    this.elements = [];
    this.text = "";
    this.ended = false;
    this._waiters = new Set();
  }

  async connect() {
    this.sock = net.connect({ host: "127.0.0.1", port: this.port });
    this.sock.setNoDelay(true);
    this.sock.on("data", (d) => {
      const s = d.toString("utf8");
      this.text += s;
      try {
        this.parser.write(s);
      } catch {}
    });
    this.sock.on("close", () => {
      this.ended = true;
      this._notify();
    });
    this.sock.on("error", () => {});
    await new Promise((resolve, reject) => {
      this.sock.once("connect", resolve);
      this.sock.once("error", reject);
    });
    return this;
  }

  _notify() {
    for (const w of this._waiters) w();
  }

  /** Send a stream header (optionally with from=), then await <stream:features/>. */
  async openStream({ to = "localhost", from } = {}) {
    this.parser = new Parser();
    this.parser.on("element", (el) => {
      this.elements.push(el);
      this._notify();
    });
    this.parser.on("end", () => {
      this.ended = true;
      this._notify();
    });
    const since = this.elements.length;
    this.write(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='${NS.streams}' to='${to}'${from ? ` from='${from}'` : ""} version='1.0'>`);
    return this.waitFor((el) => el.is("features", NS.streams), { since });
  }

  write(s) {
    this.sock.write(typeof s === "string" ? s : s.toString());
  }

  /**
   * First element (received after index `since`) matching `pred`; resolves
   * null if none came within `timeout` ms or the connection ended.
   */
  waitFor(pred, { timeout = 5000, since = 0 } = {}) {
    return new Promise((resolve) => {
      const check = () => {
        const found = this.elements.slice(since).find(pred);
        if (found || this.ended) {
          done(found ?? null);
          return true;
        }
        return false;
      };
      const done = (v) => {
        clearTimeout(t);
        this._waiters.delete(check);
        resolve(v);
      };
      const t = setTimeout(() => done(null), timeout);
      if (!check()) this._waiters.add(check);
    });
  }

  /** Send `data` and wait for the next element matching `pred` (null on timeout). */
  async sendAndWait(data, pred = () => true, timeout = 5000) {
    const since = this.elements.length;
    this.write(data);
    return this.waitFor(pred, { timeout, since });
  }

  close() {
    try {
      this.sock.end("</stream:stream>");
    } catch {}
    setTimeout(() => this.sock.destroy(), 200).unref();
  }
}

export async function rawConnect(server) {
  return new RawConnection(server.port).connect();
}

/** PLAIN initial response, base64. */
export function plainResponse(username, password, authzid = "") {
  return Buffer.from(`${authzid}\0${username}\0${password}`).toString("base64");
}
