// Hand replies over to other checkers exactly as the server sent them: the raw
// text of one element of a received stanza (cut from Session.rawIn, not
// re-serialized), written to a capture directory together with a JSON file of
// what the test expects a parser to find in it.
//
// Used by test/cam.test.js for rust/tests/cam_captures.rs (xmpp-parsers' `cam`
// module, `pedantic`). Directory: $CAM_CAPTURE_DIR, else
// <repo>/build/e2e-captures/cam; a relative path is taken from the repo root.
// lib/adhoc.js (CommandCaptures) uses it with its own directory for
// rust/tests/adhoc_captures.rs.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";

import parse from "@xmpp/xml/lib/parse.js";

import { REPO_ROOT } from "./server.js";

export const CAM_CAPTURE_DIR = path.resolve(REPO_ROOT, process.env.CAM_CAPTURE_DIR || "build/e2e-captures/cam");
export const MANIFEST = "expectations.json";

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const xmlAttrForms = (v) => [v, v.replace(/&/g, "&amp;").replace(/'/g, "&apos;").replace(/"/g, "&quot;")
  .replace(/</g, "&lt;").replace(/>/g, "&gt;")];

/**
 * End (exclusive) of the element whose start tag begins at `start` in `text`,
 * or -1 if it does not end there. Tags are scanned with quoted attribute values
 * honoured; stanzas carry no comments, CDATA or processing instructions.
 */
export function elementEnd(text, start) {
  let depth = 0;
  let i = start;
  for (;;) {
    const lt = text.indexOf("<", i);
    if (lt < 0) return -1;
    let j = lt + 1;
    let quote = null;
    for (; j < text.length; j++) {
      const ch = text[j];
      if (quote) {
        if (ch === quote) quote = null;
      } else if (ch === "'" || ch === "\"") {
        quote = ch;
      } else if (ch === ">") {
        break;
      }
    }
    if (j >= text.length) return -1;
    const tag = text.slice(lt, j + 1);
    if (tag.startsWith("</")) depth--;
    else if (!tag.endsWith("/>")) depth++;
    i = j + 1;
    if (depth <= 0) return i;
  }
}

/** Raw text of the stanza `<name … id='id'>…</name>` in `raw` (the last one with that id). */
export function rawStanza(raw, id, name = "iq") {
  const forms = xmlAttrForms(id).map(escapeRe).join("|");
  const re = new RegExp(`<${name}\\s[^>]*?\\bid=(['"])(?:${forms})\\1[^>]*>`, "g");
  let start = -1;
  for (const m of raw.matchAll(re)) start = m.index;
  assert.ok(start >= 0, `no <${name} id='${id}'> in the received bytes`);
  const end = elementEnd(raw, start);
  assert.ok(end > start, `<${name} id='${id}'> does not end in the received bytes`);
  return raw.slice(start, end);
}

/** Raw text of the first element named `name` (any prefix) strictly inside `stanzaText`. */
export function rawDescendant(stanzaText, name) {
  const re = new RegExp(`<(?:[A-Za-z_][\\w.-]*:)?${escapeRe(name)}[\\s/>]`, "g");
  re.lastIndex = 1; // not the stanza itself
  const m = re.exec(stanzaText);
  assert.ok(m, `no <${name}> in ${stanzaText}`);
  const end = elementEnd(stanzaText, m.index);
  assert.ok(end > m.index, `<${name}> does not end in ${stanzaText}`);
  return stanzaText.slice(m.index, end);
}

/**
 * The raw text of `element` (a child somewhere in the reply stanza `reply`
 * that `session` received), checked to be that very element: parsed on its
 * own it gives the same tree xmpp.js built from the stream.
 */
export function rawElementOf(session, reply, element) {
  const stanza = rawStanza(session.rawIn, reply.attrs.id, reply.name);
  const text = rawDescendant(stanza, element.name);
  assert.equal(parse(text).toString(), element.toString(),
    `the raw capture is not the element the client parsed:\n${text}\nvs\n${element}`);
  return text;
}

/**
 * A capture directory: reset() empties it; add() writes one capture file and
 * rewrites the manifest, so that what is there always agrees with it.
 */
export class CaptureDir {
  constructor(dir = CAM_CAPTURE_DIR) {
    this.dir = dir;
    this.entries = [];
  }

  reset() {
    fs.rmSync(this.dir, { recursive: true, force: true });
    fs.mkdirSync(this.dir, { recursive: true });
    this.entries = [];
    this.writeManifest();
  }

  /** Write `text` as <nn>-<slug>.xml with `expect` (kind, namespace, …) in the manifest. */
  add(slug, text, expect) {
    const file = `${String(this.entries.length + 1).padStart(2, "0")}-${slug.replace(/[^A-Za-z0-9-]+/g, "-")}.xml`;
    fs.writeFileSync(path.join(this.dir, file), text);
    this.entries.push({ file, ...expect });
    this.writeManifest();
    return file;
  }

  writeManifest() {
    fs.writeFileSync(path.join(this.dir, MANIFEST), `${JSON.stringify({ captures: this.entries }, null, 2)}\n`);
  }
}
