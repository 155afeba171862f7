// XEP-0050 ad-hoc commands and XEP-0004 data forms, as a client drives them
// (ARCHITECTURE.md §10, issue 11): disco#items of a commands node, executing a command
// stage by stage, plain-object views of <command/> and <x xmlns='jabber:x:data'/>,
// a form builder for submissions, and the capture of every command reply for
// rust/tests/adhoc_captures.rs (xmpp-parsers `data_forms`, pedantic).
//
// Capture directory: $ADHOC_CAPTURE_DIR, else <repo>/build/e2e-captures/adhoc
// (a relative path is taken from the repository root).

import assert from "node:assert/strict";
import path from "node:path";

import { xml } from "./client.js";
import { stanzaError } from "./manage.js";
import { CaptureDir, rawElementOf } from "./capture.js";
import { REPO_ROOT } from "./server.js";

export const NS_COMMANDS = "http://jabber.org/protocol/commands";
export const NS_DATA = "jabber:x:data";
export const NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items";
export const NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";
export const NS_PING = "urn:xmpp:ping";

export const NODE_MANAGE = "xmpp:prosody.im/protocol/manage-clients#manage";
export const NODE_SIGN_OUT = "xmpp:prosody.im/protocol/manage-clients#sign-out-others";
/** node → the name disco#items must give it */
export const COMMAND_NAMES = {
  [NODE_MANAGE]: "Manage clients",
  [NODE_SIGN_OUT]: "Sign out all other clients",
};

export const ADHOC_CAPTURE_DIR = path.resolve(REPO_ROOT, process.env.ADHOC_CAPTURE_DIR || "build/e2e-captures/adhoc");

// ------------------------------------------------------------ disco

/**
 * disco#items of `to` at `node` → { reply, items: [{ jid, node, name }] }.
 * Asserts a result with a <query node=…/>.
 */
export async function discoItems(session, to, node) {
  const reply = await session.iq(xml("query", { xmlns: NS_DISCO_ITEMS, node }), { type: "get", to });
  assert.equal(reply.attrs.type, "result", `disco#items of ${to} node ${node} failed: ${reply}`);
  const query = reply.getChild("query", NS_DISCO_ITEMS);
  assert.ok(query, `no <query xmlns='${NS_DISCO_ITEMS}'/> in ${reply}`);
  const items = query.getChildren("item").map((i) => ({ jid: i.attrs.jid, node: i.attrs.node, name: i.attrs.name }));
  return { reply, query, items };
}

// ------------------------------------------------------------ data forms

/** A view of one <field/>. */
export function parseField(el) {
  return {
    el,
    var: el.attrs.var,
    /** the type attribute as sent (null: none, i.e. text-single) */
    type: el.attrs.type ?? null,
    label: el.attrs.label ?? null,
    desc: el.getChild("desc") ? el.getChildText("desc") : null,
    required: Boolean(el.getChild("required")),
    values: el.getChildren("value").map((v) => v.getText()),
    options: el.getChildren("option").map((o) => ({
      label: o.attrs.label ?? null,
      values: o.getChildren("value").map((v) => v.getText()),
      value: o.getChildText("value"),
    })),
  };
}

/** A view of an <x xmlns='jabber:x:data'/>. */
export function parseForm(el) {
  const fields = el.getChildren("field").map(parseField);
  const formType = fields.find((f) => f.var === "FORM_TYPE");
  return {
    el,
    type: el.attrs.type,
    titles: el.getChildren("title").map((t) => t.getText()),
    instructions: el.getChildren("instructions").map((t) => t.getText()),
    fields,
    /** the FORM_TYPE field's view, or null */
    formTypeField: formType ?? null,
    formType: formType ? formType.values[0] ?? null : null,
    field(name) {
      return fields.find((f) => f.var === name) ?? null;
    },
  };
}

/**
 * A data form to send: buildForm("submit", [{ var, type?, values: [...] }]).
 * A value that is an element is put inside <value/> as it is.
 */
export function buildForm(type, fields = []) {
  return xml("x", { xmlns: NS_DATA, type },
    ...fields.map((f) => xml("field", { var: f.var, ...(f.type ? { type: f.type } : {}) },
      ...(f.values ?? []).map((v) => xml("value", {}, v)))));
}

/** A JS value as <value/> texts: arrays → several, booleans → "1"/"0". */
function valuesOf(v) {
  if (Array.isArray(v)) return v;
  if (typeof v === "boolean") return [v ? "1" : "0"];
  return [String(v)];
}

/**
 * A submission made up from nothing: submitForm({ FORM_TYPE: NODE_MANAGE,
 * revoke: ["client/…"], confirm: true }). Arrays become several <value/>s,
 * booleans "1"/"0", FORM_TYPE a hidden field.
 */
export function submitForm(values) {
  return buildForm("submit", Object.entries(values).map(([name, v]) => (
    { var: name, type: name === "FORM_TYPE" ? "hidden" : undefined, values: valuesOf(v) })));
}

/**
 * The answer to a received form (parseForm view) the way chat apps send it:
 * type='submit', every hidden field (FORM_TYPE …) echoed with its values,
 * then the given values: answerForm(form, { revoke: ["client/…"] }).
 */
export function answerForm(form, values = {}) {
  const echoed = form.fields
    .filter((f) => f.type === "hidden" && f.var && !(f.var in values))
    .map((f) => ({ var: f.var, type: "hidden", values: f.values }));
  return buildForm("submit", [
    ...echoed,
    ...Object.entries(values).map(([name, v]) => ({ var: name, values: valuesOf(v) })),
  ]);
}

// ------------------------------------------------------------ commands

/** A view of a <command xmlns='http://jabber.org/protocol/commands'/>. */
export function parseCommand(el) {
  const actionsEl = el.getChild("actions");
  const forms = el.getChildren("x", NS_DATA);
  return {
    el,
    node: el.attrs.node,
    sessionid: el.attrs.sessionid,
    status: el.attrs.status,
    actions: actionsEl
      ? { execute: actionsEl.attrs.execute ?? null, list: actionsEl.getChildElements().map((a) => a.name) }
      : null,
    notes: el.getChildren("note").map((n) => ({ type: n.attrs.type ?? "info", text: n.getText() })),
    forms: forms.map(parseForm),
    /** the only data form, or null (asserting there is at most one) */
    get form() {
      assert.ok(forms.length <= 1, `more than one data form in ${el}`);
      return forms.length ? parseForm(forms[0]) : null;
    },
  };
}

/**
 * iq set <command xmlns node action sessionid>form</command> to `to` (default:
 * the own bare JID) → { reply, type, error (stanzaError view or null),
 * command (parseCommand view or null) }. `form` is an element (buildForm,
 * submitForm); `action` null sends no action attribute (= execute).
 */
export async function executeCommand(session, { to = session.bareJid, node, action = "execute", sessionid, form, timeout = 10000 } = {}) {
  const attrs = { xmlns: NS_COMMANDS, node };
  if (action !== null && action !== undefined) attrs.action = action;
  if (sessionid !== undefined) attrs.sessionid = sessionid;
  const reply = await session.iq(xml("command", attrs, form), { type: "set", to, timeout });
  const cmdEl = reply.getChild("command", NS_COMMANDS);
  return {
    reply,
    to,
    type: reply.attrs.type,
    error: reply.attrs.type === "error" ? stanzaError(reply) : null,
    command: cmdEl ? parseCommand(cmdEl) : null,
  };
}

/** Assert an iq result carrying a <command/> with this node and status; returns the command view. */
export function assertCommand(res, { node, status }, what = "command") {
  assert.equal(res.type, "result", `${what}: expected a result, got ${res.reply}`);
  const c = res.command;
  assert.ok(c, `${what}: no <command xmlns='${NS_COMMANDS}'/> in ${res.reply}`);
  if (node !== undefined) assert.equal(c.node, node, `${what}: node of ${c.el}`);
  if (status !== undefined) assert.equal(c.status, status, `${what}: status of ${c.el}`);
  assert.ok(c.sessionid, `${what}: a sessionid on ${c.el}`);
  return c;
}

/** The <note/>s of a command as "type: text" lines, for messages. */
export const notesText = (c) => c.notes.map((n) => `${n.type}: ${n.text}`).join("\n");

/** The one <note/> of a completed command, asserted; returns { type, text, lines }. */
export function oneNote(c, what = "command") {
  assert.equal(c.notes.length, 1, `${what}: exactly one <note/> in ${c.el}`);
  const [n] = c.notes;
  return { ...n, lines: n.text.split("\n").map((l) => l.trim()).filter(Boolean) };
}

/** The line of a note starting with `prefix` (e.g. "Revoked:"), asserted present. */
export function noteLine(note, prefix, what = "note") {
  const found = note.lines.filter((l) => l.startsWith(prefix));
  assert.equal(found.length, 1, `${what}: one line starting with '${prefix}' in:\n${note.text}`);
  return found[0];
}

// ------------------------------------------------------------ captures

/**
 * The command replies of a test run, captured as received: the <command/>
 * element of every reply that has one, and every <x xmlns='jabber:x:data'/>
 * inside it, each with what the JS side saw in it (expectations.json) so that
 * rust/tests/adhoc_captures.rs can parse it again and compare.
 */
export class CommandCaptures {
  constructor(dir = ADHOC_CAPTURE_DIR) {
    this.dir = new CaptureDir(dir);
  }

  reset() {
    this.dir.reset();
  }

  /** Capture what `res` (an executeCommand() result) holds; returns it for chaining. */
  add(t, session, res, slug) {
    const c = res.command;
    if (!c) return res;
    const test = t.name;
    this.dir.add(`${slug}-command`, rawElementOf(session, res.reply, c.el), {
      kind: "command",
      namespace: NS_COMMANDS,
      test,
      reply_type: res.type,
      node: c.node ?? null,
      status: c.status ?? null,
      sessionid: c.sessionid ?? null,
      actions: c.actions ? c.actions.list : null,
      execute: c.actions ? c.actions.execute : null,
      notes: c.notes.map((n) => ({ type: n.type, text: n.text })),
      forms: c.forms.map((f) => f.type),
    });
    for (const f of c.forms) {
      this.dir.add(`${slug}-form`, rawElementOf(session, res.reply, f.el), {
        kind: "form",
        namespace: NS_DATA,
        test,
        form: formExpectation(f),
      });
    }
    return res;
  }
}

/** What adhoc_captures.rs must find again in a captured form. */
function formExpectation(f) {
  return {
    type: f.type,
    title: f.titles[0] ?? null,
    instructions: f.instructions.length ? f.instructions.join("\n") : null,
    form_type: f.formType,
    fields: f.fields.map((x) => ({
      var: x.var ?? null,
      type: x.type,
      label: x.label,
      values: x.values,
      options: x.options.map((o) => ({ label: o.label, value: o.value ?? "" })),
    })),
  };
}

// ------------------------------------------------------------ messages

/** A round trip to the server (XEP-0199 ping to the host): everything sent to us before it has arrived. */
export async function pingServer(session, host = "localhost") {
  const reply = await session.iq(xml("ping", { xmlns: NS_PING }), { type: "get", to: host });
  assert.equal(reply.attrs.type, "result", `ping of ${host} failed: ${reply}`);
  return reply;
}

/** <message/>s received by `session` from `from`, after element index `since`. */
export function messagesFrom(session, from, since = 0) {
  return session.elements.slice(since).filter((el) => el.name === "message" && el.attrs.from === from);
}
