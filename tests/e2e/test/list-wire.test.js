// Issue 16: a list reply is written as bytes the core makes. On a stream where something could
// read the stanza (any `stanzas/out` filter: XEP-0198, CSI while inactive, a third-party
// module), the core serialises the util.stanza reply after every other filter has had it; on a
// stream where nothing could, it writes its own XML and no Lua tree is built. These tests hold
// the guarantees of both ways against a real Prosody: a third-party filter reads the reply as a
// util.stanza and what it changes is what is written, byte for byte what Prosody's own
// serialiser makes of the changed tree; a filter added after ours still gets a stanza; XEP-0198
// counts the reply, queues it, and replays it byte-identical on resumption (the reply is written
// as mod_smacks's copy serialises: st.clone can change the attribute order, so run this test a
// few times when touching that path); CSI lets it through
// as it does any iq; the XML written without a tree says what the stanza says. Each checks the
// way the reply went (the debug log lines), which fails without the fix.

import assert from "node:assert/strict";
import { describe } from "node:test";

import { useServer, e2eTest, eventually } from "../lib/harness.js";
import { luaString } from "../lib/server.js";
import { NS_MC, NS_CAM } from "../lib/manage.js";
import { rawStanza } from "../lib/capture.js";
import {
  legacyBoundLogin, unboundLogin, enableSm, dropConnection, closeRaw, NS_SM,
} from "../lib/rawauth.js";

const LOG_DEBUG = !process.env.E2E_LOG_LEVEL || process.env.E2E_LOG_LEVEL === "debug";
const CORE_LINE = "List reply serialised by the core";
const XML_LINE = "List reply written as the core's XML";

/** Some clients with several attributes each (SASL2 records with agents, grants). */
async function seedClients(server, login, a) {
  for (const [id, software, device] of [["wire-a", "Conversations", "Pixel 8"], ["wire-b", "Gajim", "ThinkPad & <Desk>"]]) {
    const s = await login({ username: a.user, password: a.password, userAgent: { id, software, device } });
    await s.close();
  }
  await server.createGrant(a.user);
  await server.createGrant(a.user);
}

/**
 * A new account with clients (seedClients) and a raw legacy stream bound to `resource`, closed
 * after `fn({ server, conn, jid, a })`.
 */
async function onRawStream({ server, account, login }, resource, fn) {
  const a = await account();
  await seedClients(server, login, a);
  const { conn, jid } = await legacyBoundLogin(server, { username: a.user, password: a.password, resource });
  try {
    await fn({ server, conn, jid, a });
  } finally {
    await closeRaw(conn);
  }
}

/** Send a raw list iq on `conn`; → the raw bytes of its reply. */
async function rawList(conn, id, ns) {
  const reply = await conn.sendAndWait(`<iq type='get' id='${id}'><list xmlns='${ns}'/></iq>`,
    (el) => el.name === "iq" && el.attrs.id === id, 10000);
  assert.ok(reply, `no reply to the list iq ${id}`);
  assert.equal(reply.attrs.type, "result", `list ${id}: ${reply}`);
  return rawStanza(conn.text, id);
}

const coreLines = (server, mark, line = CORE_LINE) => server.logSince(mark).filter((l) => l.includes(line));

/** The element as a string with attributes sorted: equal for the same XML whatever the attribute order. */
function canonical(el) {
  if (typeof el === "string") return el.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const attrs = Object.keys(el.attrs).sort().map((k) => ` ${k}=${JSON.stringify(el.attrs[k])}`).join("");
  return `<${el.name}${attrs}>${el.children.map(canonical).join("")}</${el.name}>`;
}

/** Add a stanzas/out filter that reads every stanza and changes nothing (a "third-party module"). */
const addReader = (server, jid) => server.lua(`
  local s = assert(prosody.full_sessions[${luaString(jid)}]);
  require "prosody.util.filters".add_filter(s, "stanzas/out", function (stanza)
    prosody.e2e_list_wire_read = (prosody.e2e_list_wire_read or 0) + (stanza.name and 1 or 0);
    return stanza;
  end, 5);
  return true;`);

describe("the list reply on the wire (issue 16)", () => {
  const fx = useServer({ extraModules: ["csi_simple"] });

  e2eTest(fx, "a third-party stanzas/out filter reads and changes the reply; the bytes written are Prosody's serialisation of the changed stanza", (ctx) => onRawStream(ctx, "wire-raw", async ({ server, conn, jid }) => {
    for (const ns of [NS_MC, NS_CAM]) {
      const installed = await server.lua(`
        local filters = require "prosody.util.filters";
        local st = require "prosody.util.stanza";
        local s = assert(prosody.full_sessions[${luaString(jid)}]);
        local seen = {};
        prosody.e2e_list_wire = seen;
        if s.e2e_edit then
          filters.remove_filter(s, "stanzas/out", s.e2e_edit);
          filters.remove_filter(s, "stanzas/out", s.e2e_record);
        end
        function s.e2e_edit(stanza)
          local clients = stanza.name == "iq" and stanza:get_child("clients", ${luaString(ns)});
          if clients then
            seen.is_stanza = st.is_stanza(stanza) and st.is_stanza(clients) and st.is_stanza(clients.tags[1]);
            seen.clients = #clients.tags;
            seen.first_id = clients.tags[1].attr.id;
            local first = clients.tags[1];
            first.attr.edited = "by a filter";
            first:tag("note"):text("<added & escaped>"):up();
          end
          return stanza;
        end
        function s.e2e_record(stanza)
          if stanza.name == "iq" and stanza:get_child("clients", ${luaString(ns)}) then
            seen.serialized = tostring(stanza);
          end
          return stanza;
        end
        filters.add_filter(s, "stanzas/out", s.e2e_edit, 10);
        filters.add_filter(s, "stanzas/out", s.e2e_record, -100);
        return true;`);
      assert.equal(installed, true);
      const mark = server.logOffset();
      const id = `wire-filter-${ns === NS_MC ? "mc" : "cam"}`;
      const raw = await rawList(conn, id, ns);
      const seen = await server.lua(`return prosody.e2e_list_wire;`);
      assert.equal(seen.is_stanza, true, `${ns}: the filter got util.stanza objects: ${JSON.stringify(seen)}`);
      assert.equal(seen.clients, 5, `${ns}: the filter read 5 <client/> (2 records, 2 grants, the raw client): ${JSON.stringify(seen)}`);
      assert.ok(/edited='by a filter'/.test(raw), `${ns}: the filter's attribute is on the wire: ${raw.slice(0, 400)}`);
      assert.ok(raw.includes("<note>&lt;added &amp; escaped&gt;</note>"), `${ns}: the filter's element is on the wire: ${raw.slice(0, 600)}`);
      assert.equal(raw, seen.serialized, `${ns}: the bytes written are exactly Prosody's tostring() of the stanza the filters left`);
      assert.ok(raw.includes("ThinkPad &amp; &lt;Desk&gt;"), `${ns}: text escaped as Prosody does: ${raw}`);
      if (LOG_DEBUG) {
        assert.equal(coreLines(server, mark).length, 1, `${ns}: the reply was serialised by the core (one '${CORE_LINE}' line)`);
      }
    }
  }));

  e2eTest(fx, "a filter added after ours gets the stanza, not bytes: the reply is then left to Prosody's serialiser", (ctx) => onRawStream(ctx, "wire-last", async ({ server, conn, jid }) => {
    // The first list adds our filter; a filter added after it with the same lowest priority
    // runs after it, so the second list is left to Prosody.
    await addReader(server, jid);
    let mark = server.logOffset();
    const first = await rawList(conn, "wire-last-1", NS_CAM);
    if (LOG_DEBUG) assert.equal(coreLines(server, mark).length, 1, "the first reply was serialised by the core");
    await server.lua(`
      local filters = require "prosody.util.filters";
      local s = assert(prosody.full_sessions[${luaString(jid)}]);
      prosody.e2e_list_wire_string = false;
      filters.add_filter(s, "stanzas/out", function (stanza)
        if type(stanza) ~= "table" then prosody.e2e_list_wire_string = true; end
        return stanza;
      end, -math.huge);
      return true;`);
    mark = server.logOffset();
    const second = await rawList(conn, "wire-last-2", NS_CAM);
    assert.ok(first.includes("<clients xmlns='urn:xmpp:cam:0'>") && second.includes("<clients xmlns='urn:xmpp:cam:0'>"));
    assert.equal(second.replace("wire-last-2", "wire-last-1"), first, "both ways write the same bytes");
    assert.equal(await server.lua(`return prosody.e2e_list_wire_string;`), false,
      "a stanzas/out filter running after ours was handed a string instead of the stanza");
    if (LOG_DEBUG) assert.equal(coreLines(server, mark).length, 0, "with a filter after ours the core did not serialise");
  }));

  e2eTest(fx, "a stream without stanza filters gets the core's XML (no tree), saying what the util.stanza reply says", (ctx) => onRawStream(ctx, "wire-plain", async ({ server, conn, jid }) => {
    const tagOf = (ns) => (ns === NS_MC ? "mc" : "cam");
    const replyEl = (id) => conn.elements.findLast((el) => el.name === "iq" && el.attrs.id === id);
    for (const ns of [NS_MC, NS_CAM]) {
      const mark = server.logOffset();
      const plain = await rawList(conn, `wire-plain-${tagOf(ns)}`, ns);
      if (LOG_DEBUG) {
        assert.equal(coreLines(server, mark, XML_LINE).length, 1, `${ns}: written as the core's XML on a stream without filters`);
        assert.equal(coreLines(server, mark).length, 0, `${ns}: no util.stanza reply was serialised`);
      }
      assert.ok(plain.includes(`<clients xmlns='${ns}'>`), plain.slice(0, 300));
    }
    // The same lists with a reading filter on the stream: the util.stanza way.
    await addReader(server, jid);
    for (const ns of [NS_MC, NS_CAM]) {
      const mark = server.logOffset();
      await rawList(conn, `wire-tree-${tagOf(ns)}`, ns);
      if (LOG_DEBUG) {
        assert.equal(coreLines(server, mark).length, 1, `${ns}: with a filter, the util.stanza reply was serialised by the core`);
        assert.equal(coreLines(server, mark, XML_LINE).length, 0, `${ns}: with a filter, no XML without a tree`);
      }
      const plainEl = replyEl(`wire-plain-${tagOf(ns)}`);
      const treeEl = replyEl(`wire-tree-${tagOf(ns)}`);
      assert.equal(plainEl.getChild("clients").getChildren("client").length, 5, `${ns}: 5 clients`);
      assert.equal(canonical(plainEl.getChild("clients")), canonical(treeEl.getChild("clients")),
        `${ns}: the XML written without a tree is the util.stanza reply's XML`);
      assert.deepEqual({ ...plainEl.attrs, id: "" }, { ...treeEl.attrs, id: "" }, `${ns}: the same iq attributes`);
    }
  }));

  e2eTest(fx, "XEP-0198: the reply is counted and queued, acked, and replayed byte-identical on resumption", async ({ server, account, login }) => {
    const a = await account();
    await seedClients(server, login, a);
    const { conn, jid } = await legacyBoundLogin(server, { username: a.user, password: a.password, resource: "wire-sm" });
    let conn2;
    try {
      const enabled = await enableSm(conn, { resume: true });
      assert.ok(enabled?.is("enabled") && ["true", "1"].includes(enabled.attrs.resume), `SM with resumption: ${enabled}`);
      const since = conn.elements.indexOf(enabled) + 1;
      const queue = `assert(prosody.full_sessions[${luaString(jid)}]).outgoing_stanza_queue`;
      const mark = server.logOffset();
      const original = await rawList(conn, "wire-sm-1", NS_CAM);
      const counted = conn.elements.slice(since).filter((el) => ["iq", "message", "presence"].includes(el.name)).length;
      const queued = await server.lua(`
        local q = ${queue};
        local items = q:table();
        local last = items[#items];
        return { unacked = q:count_unacked(), last_id = last and last.attr.id,
          last_has_clients = last and last:get_child("clients", "urn:xmpp:cam:0") ~= nil or false };`);
      assert.equal(queued.unacked, counted, `SM counts every stanza sent since <enabled/>, the reply included: ${JSON.stringify(queued)}`);
      assert.equal(queued.last_id, "wire-sm-1", `the reply is the last stanza in the SM queue: ${JSON.stringify(queued)}`);
      assert.equal(queued.last_has_clients, true, "the queued copy is the whole reply");
      if (LOG_DEBUG) assert.equal(coreLines(server, mark).length, 1, "the reply was serialised by the core");

      // Ack everything before the reply, then lose the connection: the reply stays unacked.
      conn.write(`<a xmlns='${NS_SM}' h='${counted - 1}'/>`);
      assert.ok(await eventually(async () => (await server.lua(`return ${queue}:count_unacked();`)) === 1),
        "after acking all but the reply, one stanza (the reply) is unacked");
      dropConnection(conn);
      assert.ok(await eventually(async () => server.lua(`return prosody.full_sessions[${luaString(jid)}].hibernating ~= nil;`)),
        "the session hibernates");

      const u = await unboundLogin(server, { kind: "legacy-plain", username: a.user, password: a.password });
      conn2 = u.conn;
      const resumed = await conn2.sendAndWait(`<resume xmlns='${NS_SM}' h='${counted - 1}' previd='${enabled.attrs.id}'/>`,
        (el) => el.attrs.xmlns === NS_SM && ["resumed", "failed"].includes(el.name), 10000);
      assert.ok(resumed?.is("resumed"), `resumption: ${resumed}`);
      const replayed = await conn2.waitFor((el) => el.name === "iq" && el.attrs.id === "wire-sm-1", { timeout: 10000 });
      assert.ok(replayed, "the unacked reply is replayed after <resumed/>");
      assert.equal(rawStanza(conn2.text, "wire-sm-1"), original, "the replayed reply is byte-identical to the one first written");

      conn2.write(`<a xmlns='${NS_SM}' h='${counted}'/>`);
      assert.ok(await eventually(async () => (await server.lua(`return ${queue}:count_unacked();`)) === 0),
        "acking the replayed reply empties the queue");
    } finally {
      await closeRaw(conn);
      if (conn2) await closeRaw(conn2);
    }
  });

  e2eTest(fx, "CSI: an inactive client still gets its list reply at once (an iq is important), from the core's serialisation", (ctx) => onRawStream(ctx, "wire-csi", async ({ server, conn }) => {
    conn.write("<inactive xmlns='urn:xmpp:csi:0'/>");
    const mark = server.logOffset();
    const raw = await rawList(conn, "wire-csi-1", NS_MC);
    assert.ok(raw.includes(`<clients xmlns='${NS_MC}'>`), raw.slice(0, 300));
    if (LOG_DEBUG) assert.equal(coreLines(server, mark).length, 1, "the reply was serialised by the core");
  }));
});
