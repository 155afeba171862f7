// The harness's storage helpers on the backend of this run (E2E_STORAGE):
// seedStore/readStore go through Prosody's storage API, breakStore makes
// a store fail and its restore() heals it. If these fail, the tests that
// rely on them say nothing about the module.

import assert from "node:assert/strict";
import fs from "node:fs";
import { describe } from "node:test";

import { useServer, e2eTest, skipOn, STORAGE } from "../lib/harness.js";
import { luaString } from "../lib/server.js";

/** set/get of `store` for `user` through the storage API in the server → { ok, err, value }. */
function tryStore(server, store, user, op, value) {
  return server.lua(`
    local s = ${server.openStore(store)};
    local ok, err;
    if ${luaString(op)} == "set" then ok, err = s:set(${luaString(user)}, { probe = ${luaString(String(value))} });
    else ok, err = s:get(${luaString(user)}); if ok == nil and err == nil then ok = "nothing" end end
    return { ok = ok and true or false, err = err and tostring(err) or nil, value = type(ok) == "table" and ok.probe or nil };`);
}

describe(`storage helpers (${STORAGE} storage)`, () => {
  const fx = useServer({ withoutModules: ["client_management"] });

  e2eTest(fx, "server.storage and the config name the backend", async ({ server }) => {
    assert.equal(server.storage, STORAGE);
    const driver = await server.lua(`return require "prosody.core.configmanager".get(${luaString(server.host)}, "storage")`);
    assert.equal(driver, { internal: "internal", sqlite: "sql", postgres: "sql", memory: "memory" }[STORAGE]);
  });

  e2eTest(fx, "seedStore then readStore: the same data, in internal storage's file format", async ({ server, account }) => {
    const a = await account();
    await server.seedStore("e2e_probe", a.user, `return {\n\t["k1"] = { n = 1; s = "x\\"y"; t = { true, false } };\n\t["k2"] = "v";\n};\n`);
    const text = await server.readStore("e2e_probe", a.user);
    assert.match(text, /^return \{/);
    const back = await server.lua(`local d = assert(load(${luaString(text)}, "=read", "t", {}))();
      return { n = d.k1.n, s = d.k1.s, t2 = d.k1.t[2], k2 = d.k2 };`);
    assert.deepEqual(back, { n: 1, s: 'x"y', t2: false, k2: "v" });
    assert.equal(await server.readStore("e2e_probe", "nobody-here"), null);
    if (STORAGE === "internal") {
      // the same format (key order aside: Lua's table iteration order differs between processes)
      const file = fs.readFileSync(server.internalStoreFile("e2e_probe", a.user), "utf8");
      assert.deepEqual(file.split("\n").sort(), text.split("\n").sort(), "the file as Prosody wrote it");
    } else {
      assert.throws(() => server.internalStoreFile("e2e_probe", a.user), /not supported on/);
    }
  });

  e2eTest(fx, "seedStore takes large sources", async ({ server, account }) => {
    const a = await account();
    const rows = Array.from({ length: 3000 }, (_, i) => `\t["k${i}"] = { id = "k${i}"; pad = "${"p".repeat(40)}" };`);
    await server.seedStore("e2e_probe", a.user, `return {\n${rows.join("\n")}\n};\n`);
    const n = await server.lua(`local n = 0; for _ in pairs(${server.openStore("e2e_probe")}:get(${luaString(a.user)})) do n = n + 1 end; return n;`);
    assert.equal(n, 3000);
  });

  e2eTest(fx, "breakStore: writes fail until restore(), other stores keep working", async ({ server, account }) => {
    const a = await account();
    assert.equal((await tryStore(server, "e2e_broken", a.user, "set", 1)).ok, true);
    const restore = await server.breakStore("e2e_broken", { user: a.user });
    try {
      const w = await tryStore(server, "e2e_broken", a.user, "set", 2);
      assert.equal(w.ok, false, "write to the broken store");
      const r = await tryStore(server, "e2e_broken", a.user, "get");
      assert.deepEqual([r.ok, r.value], [true, "1"], "reads still work");
      assert.equal((await tryStore(server, "e2e_other", a.user, "set", 3)).ok, true, "another store");
    } finally {
      await restore();
    }
    assert.equal((await tryStore(server, "e2e_broken", a.user, "set", 4)).ok, true, "after restore()");
    assert.equal((await tryStore(server, "e2e_broken", a.user, "get")).value, "4");
    await restore(); // twice: nothing happens
  }, { skip: skipOn(["memory"], "memory storage cannot be made to fail") });

  e2eTest(fx, "breakStore on a store that does not exist yet", async ({ server, account }) => {
    const a = await account();
    const restore = await server.breakStore("e2e_fresh", { user: a.user });
    try {
      assert.equal((await tryStore(server, "e2e_fresh", a.user, "set", 1)).ok, false);
    } finally {
      await restore();
    }
    assert.equal((await tryStore(server, "e2e_fresh", a.user, "set", 2)).ok, true);
  }, { skip: skipOn(["memory"], "memory storage cannot be made to fail") });

  e2eTest(fx, "breakStore read: true: reads and writes fail until restore()", async ({ server, account }) => {
    const a = await account();
    assert.equal((await tryStore(server, "e2e_unreadable", a.user, "set", 1)).ok, true);
    const restore = await server.breakStore("e2e_unreadable", { user: a.user, read: true });
    try {
      const r = await tryStore(server, "e2e_unreadable", a.user, "get");
      assert.equal(r.ok, false, `read of the broken store: ${JSON.stringify(r)}`);
      assert.ok(r.err, "with an error");
      assert.equal((await tryStore(server, "e2e_unreadable", a.user, "set", 2)).ok, false, "write");
      assert.equal((await tryStore(server, "e2e_other", a.user, "get")).ok, true, "another store");
    } finally {
      await restore();
    }
    assert.equal((await tryStore(server, "e2e_unreadable", a.user, "get")).value, "1", "after restore()");
  }, { skip: skipOn(["memory"], "memory storage cannot be made to fail") || skipOn(["sqlite"], "reads cannot be made to fail (SQLite has no SELECT triggers)") });

  e2eTest(fx, "breakStore says clearly what a backend cannot do", async ({ server }) => {
    if (STORAGE === "memory") {
      await assert.rejects(server.breakStore("e2e_x", {}), /not supported on memory storage/);
    }
    if (STORAGE === "sqlite") {
      await assert.rejects(server.breakStore("e2e_x", { read: true }), /not supported on sqlite storage/);
    }
    await assert.rejects(server.breakStore("e2e_x", { write: false, read: true }), /not supported/);
  });
});
