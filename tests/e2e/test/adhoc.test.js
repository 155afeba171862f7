// XEP-0050 ad-hoc commands on the user's own account (ARCHITECTURE.md §10, issue 11,
// PLAN "Ad-hoc commands"): "Manage clients" and "Sign out all other clients",
// offered at the account's bare JID and at the host JID (mod_adhoc), driven
// by a real client stage by stage; the tests check the effect (sessions
// closed, tokens refused, the list afterwards), not only the replies.
//
// Every reply carrying a <command/> is captured as received (lib/adhoc.js:
// $ADHOC_CAPTURE_DIR, default <repo>/build/e2e-captures/adhoc), the command
// and each data form in it, for `cargo test --test adhoc_captures`.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { before, describe } from "node:test";

import { useServer, e2eTest, assertRefused, assertClosed } from "../lib/harness.js";
import { HOST } from "../lib/server.js";
import { xml } from "../lib/client.js";
import { NS_MC, listClients, revoke, ids, entry, assertError, nowSeconds } from "../lib/manage.js";
import {
  NS_COMMANDS, NODE_MANAGE, NODE_SIGN_OUT, COMMAND_NAMES, discoItems, executeCommand, assertCommand,
  submitForm, answerForm, buildForm, oneNote, noteLine, notesText, CommandCaptures,
} from "../lib/adhoc.js";

const REQ_UA = { id: "adhoc-requester", software: "Adhoc Requester", device: "Requester Laptop" };
const PW_UA = { id: "adhoc-password", software: "Adhoc Password Client", device: "Password Phone" };
const OAUTH_UA = { id: "adhoc-oauth", software: "Adhoc OAuth Client", device: "OAuth Tablet" };
const FAST_UA = { id: "adhoc-fast", software: "Adhoc FAST Client", device: "FAST Phone" };
const BARE_UA = { id: "adhoc-no-software" };
const IDLE_APP = { name: "Adhoc Idle App", uri: "https://idle.adhoc.invalid/app", id: "adhoc-idle-app", version: "1.0" };
const OAUTH_APP = { name: "Adhoc OAuth App", uri: "https://oauth.adhoc.invalid/app", id: "adhoc-oauth-app", version: "2.0" };
const LEGACY_RESOURCE = "adhoc-legacy";

const NOTHING_CHANGED = "Nothing was changed.";
const PERMISSIONS = ["client_management:list-clients", "client_management:manage-clients"];

const captures = new CommandCaptures();
before(() => captures.reset());

/** executeCommand() whose reply is captured under `slug`. */
async function run(t, session, opts, slug) {
  return captures.add(t, session, await executeCommand(session, opts), slug);
}

const clientId = (ua) => `client/${ua.id}`;
const grantId = (g) => `grant/${g.grantId}`;
/** UTC dates (YYYY-MM-DD) of the unix seconds given: what a label's dates can be. */
const utcDates = (...ts) => [...new Set(ts.map((t) => new Date(t * 1000).toISOString().slice(0, 10)))];

/**
 * An account with: an idle grant (never used), a grant used by an OAUTHBEARER
 * session (a password-less client), a password client, optionally a legacy
 * (RFC 6120 SASL) password session and a FAST client (password, then its
 * FAST token), and the requesting session `me` (password).
 */
async function accountWithClients({ server, account, login }, { legacy = false, fast = false } = {}) {
  const t0 = nowSeconds();
  const a = await account("adhoc");
  const idle = await server.createGrant(a.user, { client: IDLE_APP });
  const used = await server.createGrant(a.user, { client: OAUTH_APP });
  const oauth = await login({ username: a.user, oauthToken: used.token, userAgent: OAUTH_UA });
  const pw = await login({ username: a.user, password: a.password, userAgent: PW_UA });
  const legacySession = legacy
    ? await login({ username: a.user, password: a.password, sasl2: false, resource: LEGACY_RESOURCE })
    : null;
  let fastSession = null;
  if (fast) {
    const store = { token: null };
    await (await login({ username: a.user, password: a.password, fast: store, userAgent: FAST_UA })).close();
    assert.ok(store.token, "a FAST token was issued");
    fastSession = await login({ username: a.user, fast: { token: store.token }, userAgent: FAST_UA });
  }
  const me = await login({ username: a.user, password: a.password, userAgent: REQ_UA });
  return { a, idle, used, oauth, pw, legacy: legacySession, fast: fastSession, me, dates: utcDates(t0, nowSeconds()) };
}

/** What must not have changed: the same ids listed, every session still there, both grants still there. */
async function assertNothingChanged(server, fx, before, what) {
  const after = ids((await listClients(fx.me)).clients).sort();
  assert.deepEqual(after, [...before].sort(), `${what}: the list changed`);
  for (const [name, s] of [["OAuth session", fx.oauth], ["password session", fx.pw], ["legacy session", fx.legacy], ["FAST session", fx.fast], ["requesting session", fx.me]]) {
    if (!s) continue;
    assert.ok(!s.closed, `${what}: the ${name} was closed`);
    assert.ok(await server.hasSession(s.jid), `${what}: the ${name} is gone on the server`);
  }
  const grants = (await server.userGrants(fx.a.user)) ?? {};
  assert.ok(grants[fx.idle.grantId], `${what}: the idle grant was revoked`);
  assert.ok(grants[fx.used.grantId], `${what}: the OAuth session's grant was revoked`);
}

/**
 * The first stage of "Manage clients": executing, actions <complete/>, a form
 * with the hidden FORM_TYPE and the list-multi `revoke` holding exactly the
 * listed clients. Returns { command, form, field }.
 */
function assertManageForm(res, clients, { dates } = {}, what = "Manage clients, execute") {
  const c = assertCommand(res, { node: NODE_MANAGE, status: "executing" }, what);
  assert.ok(c.actions, `${what}: <actions/> in ${c.el}`);
  assert.deepEqual(c.actions.list, ["complete"], `${what}: the one action is <complete/>: ${c.el}`);
  assert.ok([null, "complete"].includes(c.actions.execute), `${what}: execute='${c.actions.execute}' names no offered action: ${c.el}`);
  const form = c.form;
  assert.ok(form, `${what}: a data form in ${c.el}`);
  assert.equal(form.type, "form", `${what}: type='form': ${form.el}`);
  assert.ok(form.formTypeField, `${what}: a FORM_TYPE field: ${form.el}`);
  assert.equal(form.formTypeField.type, "hidden", `${what}: FORM_TYPE is hidden: ${form.el}`);
  assert.deepEqual(form.formTypeField.values, [NODE_MANAGE], `${what}: FORM_TYPE value: ${form.el}`);
  const field = form.field("revoke");
  assert.ok(field, `${what}: a field var='revoke': ${form.el}`);
  assert.equal(field.type, "list-multi", `${what}: revoke is a list-multi: ${field.el}`);
  assert.deepEqual(field.values, [], `${what}: nothing is picked beforehand: ${field.el}`);
  const values = field.options.map((o) => o.value);
  assert.equal(new Set(values).size, values.length, `${what}: option values are unique: ${field.el}`);
  assert.deepEqual([...values].sort(), ids(clients).sort(), `${what}: one option per listed client, value = its id: ${field.el}`);
  for (const e of clients) {
    const option = field.options.find((o) => o.value === e.id);
    const label = option.label ?? "";
    const where = `${what}: label of ${e.id} '${label}'`;
    assert.ok(label.includes(e.software ?? "Unknown software"), `${where} names the software '${e.software ?? "Unknown software"}'`);
    if (e.device !== undefined) assert.ok(label.includes(e.device), `${where} names the device '${e.device}'`);
    if (e.connected === "true") assert.match(label, /connected/i, `${where} says it is connected`);
    if (e.auth.includes("password")) assert.match(label, /password/i, `${where} says it has the password`);
    if (e.auth.includes("fast")) assert.match(label, /FAST/i, `${where} says it has a FAST token`);
    if (e.auth.includes("bearer-token")) assert.match(label, /grant/i, `${where} says it has a grant`);
    if (dates) assert.ok(dates.some((d) => label.includes(d)), `${where} gives the first/last seen date (${dates.join(" or ")})`);
  }
  return { command: c, form, field };
}

/** The answer to the "Manage clients" form with these ids picked. */
const manageAnswer = (form, picked) => answerForm(form, { revoke: picked });
/** A "Manage clients" submission made up without a form (FORM_TYPE and revoke). */
const manageSubmit = (picked) => submitForm({ FORM_TYPE: NODE_MANAGE, revoke: picked });

/** The first stage of "Sign out all other clients": a form with the boolean `confirm`. */
function assertSignOutForm(res, what = "Sign out all other clients, execute") {
  const c = assertCommand(res, { node: NODE_SIGN_OUT, status: "executing" }, what);
  assert.ok(c.actions, `${what}: <actions/> in ${c.el}`);
  assert.deepEqual(c.actions.list, ["complete"], `${what}: the one action is <complete/>: ${c.el}`);
  assert.ok([null, "complete"].includes(c.actions.execute), `${what}: execute='${c.actions.execute}' names no offered action: ${c.el}`);
  const form = c.form;
  assert.ok(form, `${what}: a data form in ${c.el}`);
  assert.equal(form.type, "form", `${what}: type='form': ${form.el}`);
  if (form.formTypeField) assert.equal(form.formTypeField.type, "hidden", `${what}: FORM_TYPE is hidden: ${form.el}`);
  assert.ok(form.instructions.join("").trim(), `${what}: instructions: ${form.el}`);
  const confirm = form.field("confirm");
  assert.ok(confirm, `${what}: a field var='confirm': ${form.el}`);
  assert.equal(confirm.type, "boolean", `${what}: confirm is boolean: ${confirm.el}`);
  assert.match(confirm.label ?? "", /\d/, `${what}: the confirm label says how many clients/sessions: ${confirm.el}`);
  return { command: c, form, confirm };
}

/** The answer to the "Sign out all other clients" form. */
const signOutAnswer = (form, confirm) => answerForm(form, { confirm });

/** A completed command: no actions, one note; returns the note view. */
function assertCompleted(res, node, what) {
  const c = assertCommand(res, { node, status: "completed" }, what);
  assert.equal(c.actions, null, `${what}: no <actions/> once completed: ${c.el}`);
  assert.equal(c.forms.filter((f) => f.type === "form").length, 0, `${what}: no form to fill once completed: ${c.el}`);
  return oneNote(c, what);
}

/** An iq error auth/forbidden (with or without a canceled <command/> as mod_adhoc sends it). */
function assertForbidden(res, what) {
  assert.equal(res.type, "error", `${what}: expected auth/forbidden, got ${res.reply}`);
  assert.equal(res.error?.type, "auth", `${what}: error type in ${res.reply}`);
  assert.equal(res.error?.condition, "forbidden", `${what}: error condition in ${res.reply}`);
  if (res.command) assert.notEqual(res.command.status, "executing", `${what}: nothing to go on with: ${res.reply}`);
}

/** A reply came and it is a proper one: an iq error, or a result with a <command/>. */
function assertAnswered(res, what) {
  if (res.type === "error") {
    assert.ok(res.error?.condition, `${what}: an error with a condition: ${res.reply}`);
    return;
  }
  assert.equal(res.type, "result", `${what}: ${res.reply}`);
  assert.ok(res.command, `${what}: a result carries the <command/>: ${res.reply}`);
  assert.ok(["executing", "completed", "canceled"].includes(res.command.status), `${what}: status of ${res.command.el}`);
}

// ====================================================================== the commands

describe("ad-hoc commands: Manage clients and Sign out all other clients", () => {
  const fx = useServer({ extraModules: ["adhoc"] });

  // ------------------------------------------------------------ discovery

  e2eTest(fx, "disco#items of the account's commands node lists both commands at the bare JID", async ({ account, login }) => {
    const a = await account("adhoc");
    const me = await login({ username: a.user, password: a.password, userAgent: REQ_UA });
    const { items, reply } = await discoItems(me, a.jid, NS_COMMANDS);
    for (const [node, name] of Object.entries(COMMAND_NAMES)) {
      const found = items.filter((i) => i.node === node);
      assert.equal(found.length, 1, `one item with node ${node} in ${reply}`);
      assert.equal(found[0].name, name, `name of ${node} in ${reply}`);
      assert.equal(found[0].jid, a.jid, `the command is executed at the bare JID: ${reply}`);
    }
  });

  e2eTest(fx, "disco#items of the host's commands node (mod_adhoc) lists both commands", async ({ account, login }) => {
    const a = await account("adhoc");
    const me = await login({ username: a.user, password: a.password, userAgent: REQ_UA });
    const { items, reply } = await discoItems(me, HOST, NS_COMMANDS);
    for (const [node, name] of Object.entries(COMMAND_NAMES)) {
      const found = items.filter((i) => i.node === node);
      assert.equal(found.length, 1, `one item with node ${node} in ${reply}`);
      assert.equal(found[0].name, name, `name of ${node} in ${reply}`);
      assert.equal(found[0].jid, HOST, `the command is executed at the host JID: ${reply}`);
    }
  });

  // ------------------------------------------------------------ Manage clients

  e2eTest(fx, "Manage clients at the bare JID: the form lists every client; a grant and a password-less client are revoked, a password client needs a password change", async (ctx) => {
    const { t, server, tryLogin } = ctx;
    const f = await accountWithClients(ctx);
    const { clients } = await listClients(f.me);
    assert.deepEqual(ids(clients).sort(), [grantId(f.idle), clientId(OAUTH_UA), clientId(PW_UA), clientId(REQ_UA)].sort(),
      "the set-up is listed as expected");

    const first = await run(t, f.me, { node: NODE_MANAGE }, "manage-bare-execute");
    const { command, form } = assertManageForm(first, clients, { dates: f.dates });

    const picked = [grantId(f.idle), clientId(OAUTH_UA), clientId(PW_UA)];
    const done = await run(t, f.me, { node: NODE_MANAGE, action: "complete", sessionid: command.sessionid, form: manageAnswer(form, picked) }, "manage-bare-submit");
    const note = assertCompleted(done, NODE_MANAGE, "Manage clients, submit");
    assert.equal(done.command.sessionid, command.sessionid, "the same sessionid on every stage");
    assert.equal(note.type, "warn", `warn: not everything picked was revoked:\n${note.text}`);
    const revoked = noteLine(note, "Revoked:");
    assert.ok(revoked.includes(IDLE_APP.name), `the Revoked line names the grant's app '${IDLE_APP.name}': ${revoked}`);
    assert.ok(revoked.includes(OAUTH_UA.software), `the Revoked line names '${OAUTH_UA.software}': ${revoked}`);
    assert.ok(!revoked.includes(PW_UA.software), `the password client is not in the Revoked line: ${revoked}`);
    const reset = noteLine(note, "Needs a password change:");
    assert.ok(reset.includes(PW_UA.software), `the password client needs a password change: ${reset}`);
    for (const prefix of ["Not found:", "Failed:"]) {
      assert.ok(!note.lines.some((l) => l.startsWith(prefix)), `no '${prefix}' line:\n${note.text}`);
    }

    await assertClosed(server, f.oauth, "the revoked OAuth client's session");
    const grants = (await server.userGrants(f.a.user)) ?? {};
    assert.equal(grants[f.idle.grantId], undefined, "the idle grant is gone");
    assert.equal(grants[f.used.grantId], undefined, "the OAuth client's grant is gone");
    await assertRefused(tryLogin, { username: f.a.user, oauthToken: f.used.token, userAgent: OAUTH_UA }, "the revoked client's grant token");
    await assertRefused(tryLogin, { username: f.a.user, oauthToken: f.idle.token, userAgent: { id: "adhoc-idle-user" } }, "the revoked grant's token");

    assert.ok(!f.pw.closed && await server.hasSession(f.pw.jid), "the password client is still connected");
    assert.ok(!f.me.closed, "the requesting session is still there");
    const after = (await listClients(f.me)).clients;
    assert.deepEqual(ids(after).sort(), [clientId(PW_UA), clientId(REQ_UA)].sort(), "the revoked clients are no longer listed");
    const again = await tryLogin({ username: f.a.user, password: f.a.password, userAgent: PW_UA });
    assert.ok(again.ok, `the password client still logs in: ${again.error?.message}`);
  });

  e2eTest(fx, "Manage clients at the host JID (mod_adhoc): revoking a password-less client closes it and refuses its token", async (ctx) => {
    const { t, server, tryLogin } = ctx;
    const f = await accountWithClients(ctx);
    const { clients } = await listClients(f.me);

    const first = await run(t, f.me, { to: HOST, node: NODE_MANAGE }, "manage-host-execute");
    const { command, form } = assertManageForm(first, clients, { dates: f.dates }, "Manage clients at the host JID, execute");

    const done = await run(t, f.me, { to: HOST, node: NODE_MANAGE, action: "complete", sessionid: command.sessionid, form: manageAnswer(form, [clientId(OAUTH_UA)]) }, "manage-host-submit");
    const note = assertCompleted(done, NODE_MANAGE, "Manage clients at the host JID, submit");
    assert.equal(note.type, "info", `info: everything picked was revoked:\n${note.text}`);
    assert.ok(noteLine(note, "Revoked:").includes(OAUTH_UA.software), `the Revoked line names '${OAUTH_UA.software}':\n${note.text}`);
    assert.ok(!note.lines.some((l) => l.startsWith("Needs a password change:")), `no password change needed:\n${note.text}`);

    await assertClosed(server, f.oauth, "the revoked client's session");
    await assertRefused(tryLogin, { username: f.a.user, oauthToken: f.used.token, userAgent: OAUTH_UA }, "the revoked client's grant token");
    const grants = (await server.userGrants(f.a.user)) ?? {};
    assert.ok(grants[f.idle.grantId], "the idle grant, not picked, is still there");
    assert.ok(!f.pw.closed && await server.hasSession(f.pw.jid), "the password client, not picked, is still connected");
    const after = ids((await listClients(f.me)).clients).sort();
    assert.deepEqual(after, [grantId(f.idle), clientId(PW_UA), clientId(REQ_UA)].sort(), "only the revoked client left the list");
  });

  e2eTest(fx, "Manage clients: picking nothing completes (info) and changes nothing; so does a submission without the revoke field", async (ctx) => {
    const { t, server } = ctx;
    const f = await accountWithClients(ctx, { legacy: true, fast: true });
    const { clients } = await listClients(f.me);
    const before = ids(clients);
    assert.deepEqual(entry(clients, clientId(FAST_UA)).auth, ["fast", "password"], "the FAST client is listed with both ways in");

    const first = await run(t, f.me, { node: NODE_MANAGE }, "manage-nothing-execute");
    const { command, form } = assertManageForm(first, clients, { dates: f.dates });
    const done = await run(t, f.me, { node: NODE_MANAGE, action: "complete", sessionid: command.sessionid, form: manageAnswer(form, []) }, "manage-nothing-submit");
    const note = assertCompleted(done, NODE_MANAGE, "Manage clients, nothing picked");
    assert.equal(note.type, "info", `info when nothing was picked:\n${note.text}`);
    await assertNothingChanged(server, f, before, "nothing picked");

    const second = await run(t, f.me, { to: HOST, node: NODE_MANAGE }, "manage-nofield-execute");
    const { command: c2, form: form2 } = assertManageForm(second, clients, {}, "Manage clients at the host JID, execute");
    const done2 = await run(t, f.me, { to: HOST, node: NODE_MANAGE, action: "complete", sessionid: c2.sessionid, form: answerForm(form2, {}) }, "manage-nofield-submit");
    const note2 = assertCompleted(done2, NODE_MANAGE, "Manage clients, no revoke field");
    assert.equal(note2.type, "info", `info when nothing was picked:\n${note2.text}`);
    await assertNothingChanged(server, f, before, "no revoke field");
  });

  e2eTest(fx, "Manage clients: a submission sent with action='execute' (the default action) completes like 'complete'", async (ctx) => {
    const { t, server } = ctx;
    const f = await accountWithClients(ctx);
    const { clients } = await listClients(f.me);
    const first = await run(t, f.me, { node: NODE_MANAGE }, "manage-execute-action-execute");
    const { command, form } = assertManageForm(first, clients);
    const done = await run(t, f.me, { node: NODE_MANAGE, action: "execute", sessionid: command.sessionid, form: manageAnswer(form, [grantId(f.idle)]) }, "manage-execute-action-submit");
    const note = assertCompleted(done, NODE_MANAGE, "Manage clients, submit with action='execute'");
    assert.equal(note.type, "info", `info: everything picked was revoked:\n${note.text}`);
    assert.equal(((await server.userGrants(f.a.user)) ?? {})[f.idle.grantId], undefined, "the picked grant is gone");
  });

  e2eTest(fx, "Manage clients: ids that are not (or no longer) there are reported as 'Not found:', the others are revoked", async (ctx) => {
    const { t, server } = ctx;
    const f = await accountWithClients(ctx);
    const { clients } = await listClients(f.me);
    const first = await run(t, f.me, { node: NODE_MANAGE }, "manage-unknown-execute");
    const { command, form } = assertManageForm(first, clients);
    const unknown = ["client/adhoc-no-such-client", "grant/no-such-grant"];
    const done = await run(t, f.me, { node: NODE_MANAGE, action: "complete", sessionid: command.sessionid, form: manageAnswer(form, [...unknown, grantId(f.idle)]) }, "manage-unknown-submit");
    const note = assertCompleted(done, NODE_MANAGE, "Manage clients, unknown ids");
    assert.equal(note.type, "warn", `warn: not everything picked was revoked:\n${note.text}`);
    const notFound = noteLine(note, "Not found:");
    for (const id of unknown) assert.ok(notFound.includes(id), `'Not found:' names ${id}: ${notFound}`);
    assert.ok(noteLine(note, "Revoked:").includes(IDLE_APP.name), `the known grant is revoked:\n${note.text}`);
    assert.equal(((await server.userGrants(f.a.user)) ?? {})[f.idle.grantId], undefined, "the known grant is gone");
    assert.ok(!f.oauth.closed && await server.hasSession(f.oauth.jid), "the OAuth client, not picked, is still connected");

    // The same grant again, from a form shown before it was revoked: not found now.
    const stale = await run(t, f.me, { node: NODE_MANAGE, action: "complete", sessionid: command.sessionid, form: manageAnswer(form, [grantId(f.idle)]) }, "manage-stale-submit");
    assertAnswered(stale, "a second submission with an id revoked meanwhile");
    if (stale.type === "result" && stale.command.status === "completed") {
      const n = oneNote(stale.command, "second submission");
      assert.ok(noteLine(n, "Not found:").includes(grantId(f.idle)), `the revoked grant is not found now:\n${n.text}`);
    }
  });

  e2eTest(fx, "Manage clients: a client without software is labelled 'Unknown software'", async (ctx) => {
    const { t, account, login } = ctx;
    const a = await account("adhoc");
    await login({ username: a.user, password: a.password, userAgent: BARE_UA });
    const me = await login({ username: a.user, password: a.password, userAgent: REQ_UA });
    const { clients } = await listClients(me);
    assert.equal(entry(clients, clientId(BARE_UA)).software, undefined, "listed without software");
    const res = await run(t, me, { node: NODE_MANAGE }, "manage-unknown-software");
    const { field } = assertManageForm(res, clients);
    const label = field.options.find((o) => o.value === clientId(BARE_UA))?.label ?? "";
    assert.ok(label.includes("Unknown software"), `label '${label}'`);
  });

  e2eTest(fx, "malformed Manage clients submissions are answered and revoke nothing they should not", async (ctx) => {
    const { t, server } = ctx;
    const f = await accountWithClients(ctx, { legacy: true });
    const { clients } = await listClients(f.me);
    const before = ids(clients);
    const stage1 = async (slug, to) => {
      const res = await run(t, f.me, { to, node: NODE_MANAGE }, `${slug}-execute`);
      return assertManageForm(res, clients, {}, `${slug}: execute`).command.sessionid;
    };

    // no form at all
    let sid = await stage1("malformed-no-form");
    assertAnswered(await run(t, f.me, { node: NODE_MANAGE, action: "complete", sessionid: sid }, "malformed-no-form-submit"), "a submission without a form");
    await assertNothingChanged(server, f, before, "a submission without a form");

    // values that are no ids: empty, blank, an element instead of text
    sid = await stage1("malformed-values");
    assertAnswered(await run(t, f.me, { node: NODE_MANAGE, action: "complete", sessionid: sid, form: buildForm("submit", [
      { var: "FORM_TYPE", type: "hidden", values: [NODE_MANAGE] },
      { var: "revoke", type: "list-multi", values: ["", "   ", xml("client", { id: clientId(OAUTH_UA) })] },
    ]) }, "malformed-values-submit"), "values that are no ids");
    await assertNothingChanged(server, f, before, "values that are no ids");

    // the revoke field as another type, with a boolean-looking value
    sid = await stage1("malformed-type");
    assertAnswered(await run(t, f.me, { node: NODE_MANAGE, action: "complete", sessionid: sid, form: buildForm("submit", [
      { var: "FORM_TYPE", type: "hidden", values: [NODE_MANAGE] },
      { var: "revoke", type: "boolean", values: ["1"] },
    ]) }, "malformed-type-submit"), "revoke sent as a boolean");
    await assertNothingChanged(server, f, before, "revoke sent as a boolean");

    // the sign-out form sent to Manage clients (wrong FORM_TYPE, confirm true): signs nobody out
    sid = await stage1("malformed-form-type");
    assertAnswered(await run(t, f.me, { node: NODE_MANAGE, action: "complete", sessionid: sid, form: submitForm({ FORM_TYPE: NODE_SIGN_OUT, confirm: true }) }, "malformed-form-type-submit"), "another command's form");
    await assertNothingChanged(server, f, before, "another command's form");

    // a type='form' (not submit) data form, and a type='cancel' one
    sid = await stage1("malformed-form-not-submit");
    assertAnswered(await run(t, f.me, { node: NODE_MANAGE, action: "complete", sessionid: sid, form: buildForm("form", [
      { var: "revoke", type: "list-multi", values: [] },
    ]) }, "malformed-form-not-submit-submit"), "a type='form' form");
    await assertNothingChanged(server, f, before, "a type='form' form");
    sid = await stage1("malformed-cancel-form", HOST);
    assertAnswered(await run(t, f.me, { to: HOST, node: NODE_MANAGE, action: "complete", sessionid: sid, form: buildForm("cancel") }, "malformed-cancel-form-submit"), "a type='cancel' form");
    await assertNothingChanged(server, f, before, "a type='cancel' form");

    // a sessionid the server never gave out, at both addresses
    for (const [to, slug] of [[f.a.jid, "malformed-unknown-session-bare"], [HOST, "malformed-unknown-session-host"]]) {
      assertAnswered(await run(t, f.me, { to, node: NODE_MANAGE, action: "complete", sessionid: `adhoc-${randomUUID()}`, form: manageSubmit([]) }, slug), `an unknown sessionid at ${to}`);
    }
    await assertNothingChanged(server, f, before, "unknown sessionids");

    // an action that makes no sense here
    sid = await stage1("malformed-prev");
    assertAnswered(await run(t, f.me, { node: NODE_MANAGE, action: "prev", sessionid: sid }, "malformed-prev-submit"), "action='prev' on a one-stage command");
    await assertNothingChanged(server, f, before, "action='prev'");

    // a node that does not exist at the bare JID: an error, not silence
    const unknownNode = await run(t, f.me, { node: "xmpp:prosody.im/protocol/manage-clients#no-such-command" }, "unknown-node");
    assert.equal(unknownNode.type, "error", `an unknown node is an error: ${unknownNode.reply}`);
  });

  // ------------------------------------------------------------ Sign out all other clients

  e2eTest(fx, "Sign out all other clients at the bare JID: confirm → every other grant and password-less client revoked, every other session closed, the requester stays", async (ctx) => {
    const { t, server, tryLogin } = ctx;
    const f = await accountWithClients(ctx, { legacy: true });

    const first = await run(t, f.me, { node: NODE_SIGN_OUT }, "signout-bare-execute");
    const { command, form } = assertSignOutForm(first);
    const done = await run(t, f.me, { node: NODE_SIGN_OUT, action: "complete", sessionid: command.sessionid, form: signOutAnswer(form, true) }, "signout-bare-submit");
    const note = assertCompleted(done, NODE_SIGN_OUT, "Sign out all other clients, confirmed");
    assert.ok(["info", "warn"].includes(note.type), `note type: ${note.type}`);
    for (const name of [OAUTH_UA.software, IDLE_APP.name]) {
      assert.ok(note.text.includes(name), `the note names '${name}' as signed out:\n${note.text}`);
    }
    assert.ok(noteLine(note, "Needs a password change:").includes(PW_UA.software), `the password client needs a password change:\n${note.text}`);

    await assertClosed(server, f.oauth, "the OAuth (password-less) session");
    await assertClosed(server, f.pw, "the password client's session");
    await assertClosed(server, f.legacy, "the legacy session");
    const grants = (await server.userGrants(f.a.user)) ?? {};
    assert.equal(grants[f.idle.grantId], undefined, "the idle grant is gone");
    assert.equal(grants[f.used.grantId], undefined, "the OAuth client's grant is gone");
    await assertRefused(tryLogin, { username: f.a.user, oauthToken: f.used.token, userAgent: OAUTH_UA }, "the OAuth client's token");

    assert.ok(!f.me.closed, "the requesting session is not closed");
    assert.ok(await server.hasSession(f.me.jid), "the requesting session is still on the server");
    const after = (await listClients(f.me)).clients;
    assert.equal(entry(after, clientId(REQ_UA)).connected, "true", "the requester is still listed, connected");
    for (const gone of [grantId(f.idle), clientId(OAUTH_UA)]) {
      assert.ok(!ids(after).includes(gone), `${gone} is no longer listed: ${ids(after)}`);
    }
    const again = await tryLogin({ username: f.a.user, password: f.a.password, userAgent: PW_UA });
    assert.ok(again.ok, `the password client can log in again: ${again.error?.message}`);
  });

  e2eTest(fx, "Sign out all other clients at the host JID (mod_adhoc) works the same", async (ctx) => {
    const { t, server, tryLogin } = ctx;
    const f = await accountWithClients(ctx);
    const first = await run(t, f.me, { to: HOST, node: NODE_SIGN_OUT }, "signout-host-execute");
    const { command, form } = assertSignOutForm(first, "Sign out at the host JID, execute");
    const done = await run(t, f.me, { to: HOST, node: NODE_SIGN_OUT, action: "complete", sessionid: command.sessionid, form: signOutAnswer(form, true) }, "signout-host-submit");
    const note = assertCompleted(done, NODE_SIGN_OUT, "Sign out at the host JID, confirmed");
    assert.ok(noteLine(note, "Needs a password change:").includes(PW_UA.software), `the password client needs a password change:\n${note.text}`);
    await assertClosed(server, f.oauth, "the OAuth session");
    await assertClosed(server, f.pw, "the password session");
    assert.deepEqual(Object.keys((await server.userGrants(f.a.user)) ?? {}), [], "no grant is left");
    await assertRefused(tryLogin, { username: f.a.user, oauthToken: f.idle.token, userAgent: { id: "adhoc-idle-user" } }, "the idle grant's token");
    assert.ok(!f.me.closed && await server.hasSession(f.me.jid), "the requesting session stays");
  });

  e2eTest(fx, "Sign out all other clients: confirm false → 'Nothing was changed.' and nothing changes", async (ctx) => {
    const { t, server } = ctx;
    const f = await accountWithClients(ctx, { legacy: true });
    const before = ids((await listClients(f.me)).clients);
    const first = await run(t, f.me, { node: NODE_SIGN_OUT }, "signout-false-execute");
    const { command, form } = assertSignOutForm(first);
    const done = await run(t, f.me, { node: NODE_SIGN_OUT, action: "complete", sessionid: command.sessionid, form: signOutAnswer(form, false) }, "signout-false-submit");
    const note = assertCompleted(done, NODE_SIGN_OUT, "Sign out all other clients, not confirmed");
    assert.equal(note.text, NOTHING_CHANGED, `the note: ${notesText(done.command)}`);
    assert.equal(note.type, "info", "an info note");
    await assertNothingChanged(server, f, before, "confirm false");
  });

  e2eTest(fx, "a command the module fails to answer (an error raised inside the request) still completes, with an error note, and the next one works", async ({ server, account, login }) => {
    const a = await account("adhoc-raise");
    const me = await login({ username: a.user, password: a.password, userAgent: REQ_UA });
    // Every request of the module gathers the account's facts through usermanager: make that
    // raise for this account alone (mod_adhoc does not catch what a command raises).
    await server.lua(`
      local um = require "prosody.core.usermanager";
      local original = um.get_account_info;
      um.e2e_original_get_account_info = original;
      um.get_account_info = function (username, host)
        if username == ${JSON.stringify(a.user)} then error("injected failure") end
        return original(username, host);
      end`);
    try {
      for (const node of [NODE_MANAGE, NODE_SIGN_OUT]) {
        const res = await executeCommand(me, { node });
        const note = assertCompleted(res, node, `${node} while the request raises`);
        assert.deepEqual([note.type, note.text], ["error", "Your request could not be completed; try again later."]);
      }
    } finally {
      await server.lua(`local um = require "prosody.core.usermanager"; um.get_account_info = um.e2e_original_get_account_info`);
    }
    const again = await executeCommand(me, { node: NODE_MANAGE });
    assertCommand(again, { node: NODE_MANAGE, status: "executing" }, "Manage clients afterwards");
  });

  e2eTest(fx, "Sign out all other clients: action='cancel' → canceled, nothing changes", async (ctx) => {
    const { t, server } = ctx;
    const f = await accountWithClients(ctx);
    const before = ids((await listClients(f.me)).clients);
    for (const [to, slug] of [[undefined, "signout-cancel-bare"], [HOST, "signout-cancel-host"]]) {
      const first = await run(t, f.me, { to, node: NODE_SIGN_OUT }, `${slug}-execute`);
      const { command } = assertSignOutForm(first);
      const res = await run(t, f.me, { to, node: NODE_SIGN_OUT, action: "cancel", sessionid: command.sessionid }, `${slug}-cancel`);
      const c = assertCommand(res, { node: NODE_SIGN_OUT, status: "canceled" }, `cancel at ${to ?? "the bare JID"}`);
      assert.equal(c.sessionid, command.sessionid, "the canceled session's id");
      assert.equal(c.actions, null, `no <actions/> once canceled: ${c.el}`);
      await assertNothingChanged(server, f, before, `cancel at ${to ?? "the bare JID"}`);
    }
  });

  e2eTest(fx, "malformed Sign out submissions (no form, a confirm that is no boolean, no confirm) are answered and sign nobody out", async (ctx) => {
    const { t, server } = ctx;
    const f = await accountWithClients(ctx, { legacy: true });
    const before = ids((await listClients(f.me)).clients);
    const cases = [
      ["signout-malformed-no-form", undefined],
      ["signout-malformed-not-boolean", buildForm("submit", [{ var: "confirm", values: ["maybe"] }])],
      ["signout-malformed-two-values", buildForm("submit", [{ var: "confirm", type: "boolean", values: ["0", "1"] }])],
      ["signout-malformed-no-confirm", submitForm({})],
      ["signout-malformed-manage-form", manageSubmit([grantId(f.idle)])],
    ];
    for (const [slug, form] of cases) {
      const first = await run(t, f.me, { node: NODE_SIGN_OUT }, `${slug}-execute`);
      const { command } = assertSignOutForm(first);
      const res = await run(t, f.me, { node: NODE_SIGN_OUT, action: "complete", sessionid: command.sessionid, form }, `${slug}-submit`);
      assertAnswered(res, slug);
      await assertNothingChanged(server, f, before, slug);
    }
  });

  // ------------------------------------------------------------ XEP-0050 as written (issue 14, item 8)

  /** An iq error modify/bad-request, with <bad-action/> in the commands namespace when `badAction`. */
  function assertBadRequest(res, what, { badAction = false } = {}) {
    assert.equal(res.type, "error", `${what}: expected bad-request, got ${res.reply}`);
    assert.equal(res.error?.type, "modify", `${what}: error type in ${res.reply}`);
    assert.equal(res.error?.condition, "bad-request", `${what}: error condition in ${res.reply}`);
    const app = res.reply.getChild("error").getChild("bad-action", NS_COMMANDS);
    assert.equal(Boolean(app), badAction, `${what}: <bad-action xmlns='${NS_COMMANDS}'/> ${badAction ? "missing" : "not expected"}: ${res.reply}`);
  }

  e2eTest(fx, "a sign-out form of type='cancel' (confirm=1) cancels and signs nobody out, at the bare and the host JID", async (ctx) => {
    const { t, server } = ctx;
    const f = await accountWithClients(ctx, { legacy: true });
    const before = ids((await listClients(f.me)).clients);
    for (const [to, slug] of [[undefined, "signout-cancel-form-bare"], [HOST, "signout-cancel-form-host"]]) {
      const { command } = assertSignOutForm(await run(t, f.me, { to, node: NODE_SIGN_OUT }, `${slug}-execute`));
      const form = buildForm("cancel", [{ var: "FORM_TYPE", type: "hidden", values: [NODE_SIGN_OUT] }, { var: "confirm", values: ["1"] }]);
      const res = await run(t, f.me, { to, node: NODE_SIGN_OUT, action: "complete", sessionid: command.sessionid, form }, `${slug}-submit`);
      assertCommand(res, { node: NODE_SIGN_OUT, status: "canceled" }, `a cancel form at ${to ?? "the bare JID"}`);
      await assertNothingChanged(server, f, before, `a cancel form at ${to ?? "the bare JID"}`);
    }
  });

  e2eTest(fx, "forms that are not type='submit' (result, form, none) are bad-request and change nothing, in both commands", async (ctx) => {
    const { t, server } = ctx;
    const f = await accountWithClients(ctx, { legacy: true });
    const before = ids((await listClients(f.me)).clients);
    for (const type of ["result", "form", undefined]) {
      const confirm = buildForm(type, [{ var: "FORM_TYPE", type: "hidden", values: [NODE_SIGN_OUT] }, { var: "confirm", values: ["1"] }]);
      const { command } = assertSignOutForm(await run(t, f.me, { node: NODE_SIGN_OUT }, `signout-type-${type ?? "none"}-execute`));
      const res = await executeCommand(f.me, { node: NODE_SIGN_OUT, action: "complete", sessionid: command.sessionid, form: confirm });
      assertBadRequest(res, `Sign out with a form of type ${type}`);
      await assertNothingChanged(server, f, before, `Sign out with a form of type ${type}`);

      const pick = buildForm(type, [{ var: "FORM_TYPE", type: "hidden", values: [NODE_MANAGE] }, { var: "revoke", values: [grantId(f.idle), clientId(OAUTH_UA)] }]);
      const first = await run(t, f.me, { node: NODE_MANAGE }, `manage-type-${type ?? "none"}-execute`);
      const manage = await executeCommand(f.me, { node: NODE_MANAGE, action: "complete", sessionid: first.command.sessionid, form: pick });
      assertBadRequest(manage, `Manage clients with a form of type ${type}`);
      await assertNothingChanged(server, f, before, `Manage clients with a form of type ${type}`);
    }
  });

  e2eTest(fx, "action='prev' goes back to the form (whatever it carries); 'next' (not offered) and unknown actions are bad-request with <bad-action/>; nothing changes", async (ctx) => {
    const { t, server } = ctx;
    const f = await accountWithClients(ctx, { legacy: true });
    const before = ids((await listClients(f.me)).clients);
    const confirm = submitForm({ FORM_TYPE: NODE_SIGN_OUT, confirm: true });
    const pick = submitForm({ FORM_TYPE: NODE_MANAGE, revoke: [grantId(f.idle), clientId(OAUTH_UA)] });

    const { command } = assertSignOutForm(await run(t, f.me, { node: NODE_SIGN_OUT }, "signout-prev-execute"));
    const back = await run(t, f.me, { node: NODE_SIGN_OUT, action: "prev", sessionid: command.sessionid, form: confirm }, "signout-prev");
    assertSignOutForm(back, "Sign out, prev");
    await assertNothingChanged(server, f, before, "Sign out, prev with a confirming form");
    const manageFirst = await run(t, f.me, { node: NODE_MANAGE }, "manage-prev-execute");
    const manageBack = await run(t, f.me, { node: NODE_MANAGE, action: "prev", sessionid: manageFirst.command.sessionid, form: pick }, "manage-prev");
    assertManageForm(manageBack, (await listClients(f.me)).clients, {}, "Manage clients, prev");
    await assertNothingChanged(server, f, before, "Manage clients, prev with a picking form");

    for (const action of ["next", "explode", "executeX"]) {
      for (const [node, form] of [[NODE_SIGN_OUT, confirm], [NODE_MANAGE, pick]]) {
        const res = await executeCommand(f.me, { node, action, form });
        assertBadRequest(res, `${node} with action='${action}'`, { badAction: true });
        await assertNothingChanged(server, f, before, `${node} with action='${action}'`);
      }
    }
  });

  // ------------------------------------------------------------ whose clients

  e2eTest(fx, "another account gets an error at this account's bare JID, its own clients at the host JID, and cannot use this account's command session", async (ctx) => {
    const { t, server, account, login } = ctx;
    const f = await accountWithClients(ctx);
    const before = ids((await listClients(f.me)).clients);
    const b = await account("adhoc-other");
    const other = await login({ username: b.user, password: b.password, userAgent: { id: "adhoc-other", software: "Other Account Client" } });

    const atTheirs = await run(t, other, { to: f.a.jid, node: NODE_MANAGE }, "other-account-bare-jid");
    assert.equal(atTheirs.type, "error", `another account's bare JID answers an error: ${atTheirs.reply}`);
    const signOutTheirs = await run(t, other, { to: f.a.jid, node: NODE_SIGN_OUT }, "other-account-bare-jid-signout");
    assert.equal(signOutTheirs.type, "error", `another account's bare JID answers an error: ${signOutTheirs.reply}`);

    const own = await run(t, other, { to: HOST, node: NODE_MANAGE }, "other-account-host");
    assertManageForm(own, (await listClients(other)).clients, {}, "the other account at the host JID");

    // f.me's command session at the host, submitted by the other account
    const mine = await run(t, f.me, { to: HOST, node: NODE_MANAGE }, "owner-host-execute");
    const sid = assertManageForm(mine, (await listClients(f.me)).clients).command.sessionid;
    const hijack = await run(t, other, { to: HOST, node: NODE_MANAGE, action: "complete", sessionid: sid, form: manageSubmit([grantId(f.idle), clientId(OAUTH_UA)]) }, "other-account-hijack");
    assertAnswered(hijack, "another account submitting this account's sessionid");
    await assertNothingChanged(server, f, before, "another account's submission");
  });
});

// ====================================================================== permissions

describe("ad-hoc commands without :list-clients and :manage-clients", () => {
  const fx = useServer({
    extraModules: ["adhoc"],
    options: { remove_permissions: { "prosody:registered": PERMISSIONS } },
  });

  e2eTest(fx, "both commands are auth/forbidden at the bare JID and at the host JID; a direct submission too; nothing changes", async (ctx) => {
    const { t, server } = ctx;
    const f = await accountWithClients(ctx);
    assertError(await f.me.iq(xml("list", { xmlns: NS_MC }), { type: "get" }), { type: "auth", condition: "forbidden" });
    const grantsBefore = Object.keys((await server.userGrants(f.a.user)) ?? {}).sort();

    for (const [to, where] of [[undefined, "bare"], [HOST, "host"]]) {
      assertForbidden(await run(t, f.me, { to, node: NODE_MANAGE }, `forbidden-manage-${where}`), `Manage clients at the ${where} JID`);
      assertForbidden(await run(t, f.me, { to, node: NODE_SIGN_OUT }, `forbidden-signout-${where}`), `Sign out at the ${where} JID`);
      // skipping the first stage does not get around the check
      assertForbidden(await run(t, f.me, { to, node: NODE_MANAGE, action: "complete", sessionid: `adhoc-${randomUUID()}`, form: manageSubmit([grantId(f.idle), clientId(OAUTH_UA)]) }, `forbidden-manage-direct-${where}`), `a direct Manage submission at the ${where} JID`);
      assertForbidden(await run(t, f.me, { to, node: NODE_SIGN_OUT, action: "complete", sessionid: `adhoc-${randomUUID()}`, form: submitForm({ FORM_TYPE: NODE_SIGN_OUT, confirm: true }) }, `forbidden-signout-direct-${where}`), `a direct Sign out submission at the ${where} JID`);
    }

    assert.deepEqual(Object.keys((await server.userGrants(f.a.user)) ?? {}).sort(), grantsBefore, "no grant was revoked");
    for (const s of [f.oauth, f.pw, f.me]) assert.ok(!s.closed && await server.hasSession(s.jid), `${s.jid} is still connected`);
  });
});

describe("ad-hoc commands with :list-clients but without :manage-clients", () => {
  const fx = useServer({
    extraModules: ["adhoc"],
    options: { remove_permissions: { "prosody:registered": ["client_management:manage-clients"] } },
  });

  /** Execute, and submit if a form came: one of the two stages must be auth/forbidden. */
  async function assertRevokingForbidden(t, session, { to, node, answer, slug, what }) {
    const first = await run(t, session, { to, node }, `${slug}-execute`);
    if (first.type === "error") {
      assertForbidden(first, `${what}, execute`);
      return;
    }
    const c = assertCommand(first, { node, status: "executing" }, `${what}, execute`);
    assert.ok(c.form, `${what}: a form in ${c.el}`);
    const second = await run(t, session, { to, node, action: "complete", sessionid: c.sessionid, form: answer(c.form) }, `${slug}-submit`);
    assertForbidden(second, `${what}, submit`);
  }

  e2eTest(fx, "listing works, revoking by either command is auth/forbidden and nothing changes", async (ctx) => {
    const { t, server } = ctx;
    const f = await accountWithClients(ctx);
    const before = ids((await listClients(f.me)).clients);
    assertError(await revoke(f.me, grantId(f.idle)), { type: "auth", condition: "forbidden" });

    for (const [to, where] of [[undefined, "bare"], [HOST, "host"]]) {
      await assertRevokingForbidden(t, f.me, {
        to, node: NODE_MANAGE, answer: (form) => manageAnswer(form, [grantId(f.idle), clientId(OAUTH_UA)]),
        slug: `list-only-manage-${where}`, what: `Manage clients at the ${where} JID`,
      });
      await assertRevokingForbidden(t, f.me, {
        to, node: NODE_SIGN_OUT, answer: (form) => signOutAnswer(form, true),
        slug: `list-only-signout-${where}`, what: `Sign out at the ${where} JID`,
      });
    }
    await assertNothingChanged(server, f, before, "without :manage-clients");
  });
});
