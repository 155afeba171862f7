// What the server holds, read from inside it (server.lua): stores through
// Prosody's storage API (so the checks hold on any storage backend), c2s
// sessions (bound or not), and the module's public API.

import fs from "node:fs";

import { luaString, luaValue } from "./server.js";

const storeOpen = (store, type = "keyval") =>
  `require "prosody.core.storagemanager".open(${luaString("localhost")}, ${luaString(store)}, ${luaString(type)})`;

/**
 * A store's data for `user` (keyval get) through the storage API:
 * { ok: true, value } (value null when there is none) or { ok: false, err }.
 */
export async function storeGet(server, store, user) {
  return server.lua(`
    local data, err = ${storeOpen(store)}:get(${luaString(user)});
    if err then return { ok = false, err = tostring(err) } end
    return { ok = true, value = data };`);
}

/** Replace a store's data for `user` through the storage API (`value` is a JS object: see server.js luaValue). */
export async function storeSet(server, store, user, value) {
  return server.lua(`
    assert(${storeOpen(store)}:set(${luaString(user)}, ${luaValue(value)}));
    return true;`);
}

/** Is there nothing stored for `user` in `store` (nil or an empty table)? Throws if the store can't be read. */
export async function storeEmpty(server, store, user) {
  const r = await storeGet(server, store, user);
  if (!r.ok) throw new Error(`${store} of ${user} unreadable: ${r.err}`);
  return r.value === null || r.value === undefined || Object.keys(r.value).length === 0;
}

/** true when the server uses internal (file) storage, so that file checks make sense. */
export function internalStorage(server) {
  return server.storage === undefined || server.storage === "internal";
}

/** Does internal storage hold a data file of `store` for `user`? (Only meaningful with internalStorage(server).) */
export function storeFileExists(server, store, user) {
  return fs.existsSync(server.internalStoreFile(store, user));
}

/**
 * The account's client records as stored (clients store, storage API), each
 * reduced to plain facts: { [id]: { id, first_seen, last_seen, full_jid,
 * legacy, auth_token_id, fast_auth, mechanisms, ua: { field: { bytes, chars, text } } } }
 * (chars = nil when the text is not valid UTF-8). null when nothing is stored.
 * Throws if the store can't be read.
 */
export async function clientRecords(server, user) {
  const r = await server.lua(`
    local data, err = ${storeOpen("clients")}:get(${luaString(user)});
    if err then return { ok = false, err = tostring(err) } end
    if data == nil then return { ok = true } end
    local out = {};
    for key, rec in pairs(data) do
      if type(rec) == "table" then
        local ua;
        if type(rec.user_agent) == "table" then
          ua = {};
          for k, v in pairs(rec.user_agent) do
            if type(v) == "string" then
              ua[k] = { bytes = #v, chars = utf8.len(v) or false, text = v };
            end
          end
        end
        local mechanisms;
        if type(rec.mechanisms) == "table" then
          mechanisms = {};
          for k, v in pairs(rec.mechanisms) do mechanisms[tostring(k)] = v end
        end
        out[tostring(key)] = {
          id = rec.id, first_seen = rec.first_seen, last_seen = rec.last_seen, full_jid = rec.full_jid,
          legacy = rec.legacy, auth_token_id = rec.auth_token_id, fast_auth = rec.fast_auth,
          mechanisms = mechanisms, ua = ua, has_device = type(rec.user_agent) == "table" and rec.user_agent.device ~= nil,
        };
      else
        out[tostring(key)] = { not_a_table = type(rec) };
      end
    end
    return { ok = true, value = out, n = (function () local n = 0; for _ in pairs(data) do n = n + 1 end; return n end)() };`);
  if (!r.ok) throw new Error(`clients of ${user} unreadable: ${r.err}`);
  return r.value ?? null;
}

/**
 * Every c2s session of `user` mod_c2s knows, bound or not (hibernating ones
 * too, as mod_smacks keeps them in the same table): [{ type, full_jid,
 * client_id, hibernating, destroyed }].
 */
export async function c2sSessions(server, user) {
  // util.json writes an empty Lua table as {}: no sessions.
  const sessions = await server.lua(`
    local c2s = assert(require "prosody.core.modulemanager".get_module("*", "c2s"), "mod_c2s not loaded");
    local r = {};
    for _, s in pairs(c2s.module:shared("sessions")) do
      if s.username == ${luaString(user)} and s.host == ${luaString("localhost")} then
        table.insert(r, { type = s.type, full_jid = s.full_jid, client_id = s.client_id,
          hibernating = s.hibernating and true or false, destroyed = s.destroyed and true or false });
      end
    end
    for _, s in pairs(prosody.full_sessions) do
      -- hibernating sessions have no connection any more; they stay in full_sessions
      if s.username == ${luaString(user)} and s.host == ${luaString("localhost")} and s.hibernating then
        local seen = false;
        for _, x in ipairs(r) do if x.full_jid == s.full_jid then seen = true end end
        if not seen then
          table.insert(r, { type = s.type, full_jid = s.full_jid, client_id = s.client_id, hibernating = true, destroyed = s.destroyed and true or false });
        end
      end
    end
    return r;`);
  return Array.isArray(sessions) ? sessions : Object.values(sessions ?? {});
}

/** Lua expression: the module's environment (its public API globals). */
export const MODULE = `assert(prosody.hosts["localhost"].modules.client_management, "mod_client_management not loaded")`;

/** revoke_client_access(user, selector) called as another module would: → { ok, err }. */
export async function apiRevoke(server, user, selector) {
  return server.lua(`
    local ok, err = ${MODULE}.revoke_client_access(${luaString(user)}, ${luaString(selector)});
    return { ok = ok or false, err = type(err) == "table" and (err.condition or err.type or tostring(err)) or err };`);
}

/** Delete an account with usermanager.delete_user (fires user-deleted on the global bus). */
export async function deleteAccount(server, user) {
  return server.lua(`
    return assert(require "prosody.core.usermanager".delete_user(${luaString(user)}, ${luaString("localhost")}));`);
}
