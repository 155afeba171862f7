// Contract test (issue 9, "Copied rules are never checked"): the native core re-implements
// mod_tokenauth's grant validation (get_grant_info) and mod_sasl2_fast's token check
// (is_client_fast) instead of calling them per grant and client. Nothing else compares the
// copies with the real modules, so an upstream change would drift silently. Here both are
// asked about the same stored data, in the same second, inside a real Prosody:
//
//   - which grants get_grant_info accepts  ==  the grants the module lists (grant/<id>
//     entries, plus grants linked to client entries through active.grant);
//   - which clients mod_sasl2_fast would let in with FAST (is_client_fast, or its own token
//     tester accepting a token the client holds: ARCHITECTURE.md §4's fix for unused tokens)
//     ==  the clients with active.fast;
//   - XEP-0494 permission "restricted"  ==  the grant has live tokens and every one has a
//     role of lower priority than the account's role (Prosody's role objects; a grant without
//     live tokens is read as not restricted, which is what the module answers);
//   - password access (ARCHITECTURE.md §4) and the rest of the listing follow from those answers;
//   - and a client listing over XMPP (both namespaces) shows what get_active_clients said.
//
// The data (grants in auth_tokens, client records, FAST tokens in fast_tokens) is written
// straight into storage with chosen timestamps relative to the second T and to the account's
// password change P, by one server-side Lua chunk. T is the second after the writing; once it
// has begun, the chunk asks the module FIRST and the real modules after it (get_grant_info
// deletes what it rejects), all within T for the accounts holding times near T; if T has
// passed by then, the chunk is run again on fresh accounts. The module's own Lua and the
// real modules are called as they are; nothing is stubbed.
//
// Random batch: CONTRACT_SEED=<n> picks the seed (default below; printed as a diagnostic).
// Showing that the test can fail: run it against a copy of build/plugin whose
// mod_client_management.lua feeds the core a different fact, e.g. in current_facts()
// `tokenless_grant_ttl = tokenless_grant_ttl + 1` or `now = time_now() + 1`.

import assert from "node:assert/strict";
import { describe } from "node:test";

import { useServer, e2eTest } from "../lib/harness.js";
import { HOST, luaString } from "../lib/server.js";
import { NS_MC, NS_CAM, listClients } from "../lib/manage.js";

/** mod_tokenauth's tokenless_grant_ttl for this server (the module reads the same option). */
const TOKENLESS_TTL = 600;
const SEED = Number(process.env.CONTRACT_SEED ?? 9_2025);
// Per random account. Small accounts keep the real modules fast: every get_grant_info that
// cleans up rewrites the account's whole auth_tokens file.
const RANDOM_GRANTS = 10;
const RANDOM_CLIENTS = 10;
// Accounts with times within a second of T must all be asked within that second: few of them.
const RANDOM_ACCOUNTS_NEAR_NOW = 4;
const RANDOM_ACCOUNTS_COARSE = 3; // each once with role prosody:registered and prosody:member
const VIEWER = "contract-viewer";
/** Runs of the chunk on fresh accounts until one stays within its second (a busy machine). */
const ATTEMPTS = 8;

// ------------------------------------------------------------ times

/** A time relative to the chunk's os.time() ("T") or to the account's password change ("P"). */
const T = (off = 0) => ({ at: "T", off });
const P = (off = 0) => ({ at: "P", off });
const show = (v) => (v === undefined ? "-" : `${v.at}${v.off > 0 ? `+${v.off}` : v.off < 0 ? v.off : ""}`);

// ------------------------------------------------------------ deterministic cases

const LIVE = T(3600);
const DEAD = T(-3600);
const STALE = T(-3600); // accessed longer ago than TOKENLESS_TTL
const RECENT = T(-60);
const tok = (role, expires) => ({ role, expires });
const REG = "prosody:registered";
const GUEST = "prosody:guest";
const MEMBER = "prosody:member";
const ADMIN = "prosody:admin";

/** A grant that mod_tokenauth accepts; cases override fields. */
const grant = (key, fields, expect) => ({
  key, created: P(100), accessed: RECENT, tokens: [tok(REG, LIVE)], ...fields, expect,
});

// `expect` records what the real modules answer according to their code (Prosody 13.0.1):
// { valid } for get_grant_info, { restricted } for the role rule, { isClientFast, cur, new }
// for mod_sasl2_fast. The first test checks that the cases are what they claim to be, so a
// typo in a case cannot make the comparison vacuous.
const validityGrants = [
  grant("g-valid", {}, { valid: true }),
  grant("g-valid-with-expiry", { expires: LIVE }, { valid: true }),
  grant("g-expired", { expires: DEAD }, { valid: false }),
  grant("g-expires-now", { expires: T(0) }, { valid: false }),
  grant("g-expires-now-plus-1", { expires: T(1) }, { valid: true }),
  grant("g-expires-now-minus-1", { expires: T(-1) }, { valid: false }),
  grant("g-tokens-expired-accessed-long-ago", { tokens: [tok(REG, DEAD)], accessed: STALE }, { valid: false }),
  grant("g-tokens-expired-accessed-recently", { tokens: [tok(REG, DEAD)], accessed: RECENT }, { valid: true }),
  grant("g-no-tokens-accessed-recently", { tokens: [] }, { valid: true }),
  grant("g-no-tokens-accessed-long-ago", { tokens: [], accessed: STALE }, { valid: false }),
  grant("g-tokenless-accessed-ttl-ago", { tokens: [tok(REG, DEAD)], accessed: T(-TOKENLESS_TTL) }, { valid: false }),
  grant("g-tokenless-accessed-ttl-minus-1-ago", { tokens: [tok(REG, DEAD)], accessed: T(-TOKENLESS_TTL + 1) }, { valid: true }),
  grant("g-tokenless-accessed-ttl-plus-1-ago", { tokens: [tok(REG, DEAD)], accessed: T(-TOKENLESS_TTL - 1) }, { valid: false }),
  grant("g-only-token-expires-now", { tokens: [tok(REG, T(0))], accessed: STALE }, { valid: false }),
  grant("g-only-token-expires-now-plus-1", { tokens: [tok(REG, T(1))], accessed: STALE }, { valid: true }),
  grant("g-only-token-expires-now-minus-1", { tokens: [tok(REG, T(-1))], accessed: STALE }, { valid: false }),
  grant("g-token-without-expiry-accessed-long-ago", { tokens: [tok(REG, undefined)], accessed: STALE }, { valid: true }),
  grant("g-expiring-grant-without-live-tokens", { expires: LIVE, tokens: [tok(REG, DEAD)], accessed: STALE }, { valid: true }),
  grant("g-expiring-grant-empty-tokens", { expires: LIVE, tokens: [], accessed: STALE }, { valid: true }),
  grant("g-mixed-live-and-expired-tokens", { tokens: [tok(REG, DEAD), tok(REG, LIVE)], accessed: STALE }, { valid: true }),
  grant("g-old-style-without-tokens-table", { tokens: undefined }, { valid: false }),
  grant("g-old-style-with-expiry", { tokens: undefined, expires: LIVE }, { valid: false }),
  grant("g-created-before-password-change", { created: P(-1) }, { valid: false }),
  grant("g-created-at-password-change", { created: P(0) }, { valid: true }),
  grant("g-created-after-password-change", { created: P(1) }, { valid: true }),
  grant("g-created-long-before-password-change", { created: P(-86400) }, { valid: false }),
  grant("g-without-created", { created: undefined }, { valid: false }),
  grant("g-without-id-field", { noId: true }, { valid: false }),
  // mod_tokenauth always stores id = key; get_grant_info looks grants up by key
  grant("g-id-field-differs-from-key", { idField: "g-some-other-id" }, { valid: true }),
  // Fractional times: mod_tokenauth writes os.time() integers, but compares whatever is stored.
  grant("g-fractional-created-before-change", { created: P(-0.5) }, { valid: false }),
  grant("g-fractional-expiry-half-second-ahead", { expires: T(0.5) }, { valid: true }),
  grant("g-fractional-accessed-tokenless", { tokens: [tok(REG, DEAD)], accessed: T(-TOKENLESS_TTL + 0.5) }, { valid: true }),
  grant("g-fractional-token-expiry-tokenless", { tokens: [tok(REG, T(0.5))], accessed: STALE }, { valid: true }),
];

/** Roles (account: prosody:registered, priority 25). */
const roleGrants = [
  grant("g-role-guest", { tokens: [tok(GUEST, LIVE)] }, { valid: true, restricted: true }),
  grant("g-role-registered-equal", { tokens: [tok(REG, LIVE)] }, { valid: true, restricted: false }),
  grant("g-role-admin-wider", { tokens: [tok(ADMIN, LIVE)] }, { valid: true, restricted: false }),
  grant("g-role-none", { tokens: [tok(undefined, LIVE)] }, { valid: true, restricted: false }),
  grant("g-role-unknown", { tokens: [tok("e2e:no-such-role", LIVE)] }, { valid: true, restricted: false }),
  grant("g-role-guest-and-registered", { tokens: [tok(GUEST, LIVE), tok(REG, LIVE)] }, { valid: true, restricted: false }),
  grant("g-role-guest-and-none", { tokens: [tok(GUEST, LIVE), tok(undefined, LIVE)] }, { valid: true, restricted: false }),
  grant("g-role-guest-live-registered-expired", { tokens: [tok(GUEST, LIVE), tok(REG, DEAD)] }, { valid: true, restricted: true }),
  grant("g-role-guest-expired-registered-live", { tokens: [tok(GUEST, DEAD), tok(REG, LIVE)] }, { valid: true, restricted: false }),
  grant("g-role-guest-live-registered-expires-now", { tokens: [tok(GUEST, LIVE), tok(REG, T(0))] }, { valid: true, restricted: true }),
  grant("g-role-guest-live-registered-expires-now-plus-1", { tokens: [tok(GUEST, LIVE), tok(REG, T(1))] }, { valid: true, restricted: false }),
  grant("g-role-guest-without-expiry", { tokens: [tok(GUEST, undefined)] }, { valid: true, restricted: true }),
  grant("g-role-guest-all-expired-grant-expiring", { expires: LIVE, tokens: [tok(GUEST, DEAD)] }, { valid: true, restricted: false }),
];

/** Grants that client records log in with (auth_token_id). */
const linkedGrants = [
  grant("g-linked-valid", {}, { valid: true }),
  grant("g-linked-guest", { tokens: [tok(GUEST, LIVE)] }, { valid: true, restricted: true }),
  grant("g-linked-expired", { expires: DEAD }, { valid: false }),
  grant("g-linked-before-password-change", { created: P(-1) }, { valid: false }),
  grant("g-linked-with-password", { tokens: [tok(GUEST, LIVE)] }, { valid: true, restricted: true }),
  grant("g-linked-guest-fast", { tokens: [tok(GUEST, LIVE)] }, { valid: true, restricted: true }),
  grant("g-linked-shared", { tokens: [tok(GUEST, LIVE)] }, { valid: true, restricted: true }),
  grant("g-linked-tokenless-stale", { tokens: [], accessed: STALE }, { valid: false }),
];

const HT = { "HT-SHA-256-NONE": T(-100) };
const fastOk = { issued: P(100), expires: LIVE };
/** A client whose only way in is FAST (or nothing); cases override fields. */
const fclient = (id, fields, expect) => ({ id, mechanisms: HT, fastAuth: T(-100), ...fields, expect });

/** FAST tokens, slot by slot (key hex(sha256(id)).."-cur" | "-new", mod_sasl2_fast's make_token shape). */
const fastClients = [
  fclient("f-cur-valid", { cur: fastOk }, { isClientFast: true, cur: true }),
  fclient("f-new-valid-unused", { new: fastOk, mechanisms: {}, fastAuth: undefined }, { isClientFast: true, new: true }),
  fclient("f-new-valid-fast-auth-set", { new: fastOk }, { isClientFast: true, new: true }),
  fclient("f-both-valid", { cur: fastOk, new: fastOk }, { isClientFast: true, cur: true, new: true }),
  fclient("f-neither", {}, { isClientFast: false }),
  fclient("f-cur-expired", { cur: { issued: P(100), expires: DEAD } }, { isClientFast: false, cur: false }),
  fclient("f-new-expired", { new: { issued: P(100), expires: DEAD } }, { isClientFast: false, new: false }),
  fclient("f-cur-expires-now", { cur: { issued: P(100), expires: T(0) } }, { isClientFast: false, cur: false }),
  fclient("f-cur-expires-now-plus-1", { cur: { issued: P(100), expires: T(1) } }, { isClientFast: true, cur: true }),
  fclient("f-cur-expires-now-minus-1", { cur: { issued: P(100), expires: T(-1) } }, { isClientFast: false, cur: false }),
  fclient("f-new-expires-now", { new: { issued: P(100), expires: T(0) } }, { isClientFast: false, new: false }),
  fclient("f-new-expires-now-plus-1", { new: { issued: P(100), expires: T(1) } }, { isClientFast: true, new: true }),
  fclient("f-cur-issued-before-password-change", { cur: { issued: P(-1), expires: LIVE } }, { isClientFast: false, cur: false }),
  fclient("f-new-issued-before-password-change", { new: { issued: P(-1), expires: LIVE } }, { isClientFast: false, new: false }),
  fclient("f-cur-issued-half-second-before-change", { cur: { issued: P(-0.5), expires: LIVE } }, { isClientFast: false, cur: false }),
  fclient("f-cur-issued-half-second-after-change", { cur: { issued: P(0.5), expires: LIVE } }, { isClientFast: true, cur: true }),
  fclient("f-cur-issued-after-password-change", { cur: { issued: P(1), expires: LIVE } }, { isClientFast: true, cur: true }),
  // is_client_fast wants P < issued_at; the token tester refuses only issued_at < P.
  fclient("f-cur-issued-at-password-change", { cur: { issued: P(0), expires: LIVE } }, { isClientFast: false, cur: true }),
  fclient("f-new-issued-at-password-change", { new: { issued: P(0), expires: LIVE } }, { isClientFast: false, new: true }),
  fclient("f-cur-expired-new-valid", { cur: { issued: P(100), expires: DEAD }, new: fastOk }, { isClientFast: true, cur: false, new: true }),
  fclient("f-cur-valid-new-before-change", { cur: fastOk, new: { issued: P(-1), expires: LIVE } }, { isClientFast: true, cur: true, new: false }),
  fclient("f-both-invalid", { cur: { issued: P(100), expires: DEAD }, new: { issued: P(-1), expires: LIVE } }, { isClientFast: false, cur: false, new: false }),
  fclient("f-token-in-unknown-slot", { old: fastOk }, { isClientFast: false }),
  fclient("f-with-password-and-cur", { cur: fastOk, mechanisms: { "SCRAM-SHA-1": P(10), ...HT } }, { isClientFast: true, cur: true }),
  // password mechanisms (ARCHITECTURE.md §4: a non-token mechanism used at or after P)
  fclient("c-password-after-change", { mechanisms: { "SCRAM-SHA-1": P(1) }, fastAuth: undefined }, { isClientFast: false }),
  fclient("c-password-at-change", { mechanisms: { PLAIN: P(0) }, fastAuth: undefined }, { isClientFast: false }),
  fclient("c-password-before-change", { mechanisms: { "SCRAM-SHA-1": P(-1) }, fastAuth: undefined }, { isClientFast: false }),
  fclient("c-oauthbearer-only-no-grant", { mechanisms: { OAUTHBEARER: P(100) }, fastAuth: undefined }, { isClientFast: false }),
];

/** Grant logins (auth_token_id). */
const grantClients = [
  fclient("c-grant-valid", { mechanisms: { OAUTHBEARER: T(-100) }, fastAuth: undefined, grant: "g-linked-valid" }, { isClientFast: false }),
  fclient("c-grant-guest", { mechanisms: { OAUTHBEARER: T(-100) }, fastAuth: undefined, grant: "g-linked-guest" }, { isClientFast: false }),
  fclient("c-grant-expired", { mechanisms: { OAUTHBEARER: T(-100) }, fastAuth: undefined, grant: "g-linked-expired" }, { isClientFast: false }),
  fclient("c-grant-before-password-change", { mechanisms: { OAUTHBEARER: T(-100) }, fastAuth: undefined, grant: "g-linked-before-password-change" }, { isClientFast: false }),
  fclient("c-grant-missing", { mechanisms: { OAUTHBEARER: T(-100) }, fastAuth: undefined, grant: "g-does-not-exist" }, { isClientFast: false }),
  fclient("c-grant-tokenless-stale", { mechanisms: { OAUTHBEARER: T(-100) }, fastAuth: undefined, grant: "g-linked-tokenless-stale" }, { isClientFast: false }),
  fclient("c-grant-and-password", { mechanisms: { OAUTHBEARER: T(-100), "SCRAM-SHA-1": P(10) }, fastAuth: undefined, grant: "g-linked-with-password" }, { isClientFast: false }),
  fclient("c-grant-and-fast", { mechanisms: { OAUTHBEARER: T(-100) }, grant: "g-linked-guest-fast", new: fastOk }, { isClientFast: true, new: true }),
  fclient("c-grant-shared-1", { mechanisms: { OAUTHBEARER: T(-100) }, fastAuth: undefined, grant: "g-linked-shared" }, { isClientFast: false }),
  fclient("c-grant-shared-2", { mechanisms: { OAUTHBEARER: T(-100) }, fastAuth: undefined, grant: "g-linked-shared" }, { isClientFast: false }),
];

/** An account without a recorded password change (password_updated nil). */
const noPasswordChange = {
  grants: [
    grant("n-grant-old", { created: T(-10_000_000) }, { valid: true }),
    grant("n-grant-expired", { created: T(-10_000_000), expires: DEAD }, { valid: false }),
    grant("n-grant-guest", { created: T(-10_000_000), tokens: [tok(GUEST, LIVE)] }, { valid: true, restricted: true }),
  ],
  clients: [
    fclient("n-fast-old", { cur: { issued: T(-1_000_000), expires: LIVE } }, { isClientFast: true, cur: true }),
    fclient("n-fast-new-old", { new: { issued: T(-1_000_000), expires: LIVE } }, { isClientFast: true, new: true }),
    fclient("n-fast-expired", { cur: { issued: T(-1_000_000), expires: DEAD } }, { isClientFast: false, cur: false }),
    fclient("n-password-old", { mechanisms: { "SCRAM-SHA-1": T(-10_000_000) }, fastAuth: undefined }, { isClientFast: false }),
  ],
};

/** An account with role prosody:member (priority 35). */
const memberAccount = {
  grants: [
    grant("m-role-registered", { tokens: [tok(REG, LIVE)] }, { valid: true, restricted: true }),
    grant("m-role-guest", { tokens: [tok(GUEST, LIVE)] }, { valid: true, restricted: true }),
    grant("m-role-guest-and-registered", { tokens: [tok(GUEST, LIVE), tok(REG, LIVE)] }, { valid: true, restricted: true }),
    grant("m-role-member", { tokens: [tok(MEMBER, LIVE)] }, { valid: true, restricted: false }),
    grant("m-role-admin", { tokens: [tok(ADMIN, LIVE)] }, { valid: true, restricted: false }),
    grant("m-role-none", { tokens: [tok(undefined, LIVE)] }, { valid: true, restricted: false }),
    grant("m-linked-registered", { tokens: [tok(REG, LIVE)] }, { valid: true, restricted: true }),
  ],
  clients: [
    fclient("m-grant-registered", { mechanisms: { OAUTHBEARER: T(-100) }, fastAuth: undefined, grant: "m-linked-registered" }, { isClientFast: false }),
  ],
};

// ------------------------------------------------------------ the random batch

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Grants and clients combining the fields at random. `nearNow`: also times within a second
 * of T (and of the tokenless TTL); without it every time-dependent answer stays the same
 * for minutes, so the account can also be listed over XMPP afterwards.
 */
function randomCases(rnd, prefix, { nearNow }) {
  const pick = (arr) => arr[Math.floor(rnd() * arr.length)];
  const chance = (p) => rnd() < p;
  const times = [T(-864000), T(-86400), T(-3600), T(3600), T(86400),
    ...(nearNow ? [T(-1), T(0), T(1)] : [])];
  const accessed = [T(-86400), T(-3600), T(-300), T(-30),
    ...(nearNow ? [T(-TOKENLESS_TTL - 1), T(-TOKENLESS_TTL), T(-TOKENLESS_TTL + 1)] : [])];
  const created = [P(-86400), P(-100), P(-1), P(0), P(0.5), P(1), T(-3600)];
  const issued = [P(-100), P(-1), P(0), P(0.5), P(1), T(-100)];
  const roles = [GUEST, REG, MEMBER, ADMIN, undefined, "e2e:no-such-role"];
  const grants = [];
  for (let i = 0; i < RANDOM_GRANTS; i++) {
    const tokens = chance(0.08) ? undefined : Array.from({ length: Math.floor(rnd() * 4) },
      () => tok(pick(roles), chance(0.3) ? undefined : pick(times)));
    grants.push({
      key: `${prefix}-g${String(i).padStart(3, "0")}`,
      created: chance(0.03) ? undefined : pick(created),
      accessed: pick(accessed),
      expires: chance(0.4) ? undefined : pick(times),
      tokens,
      noId: chance(0.03),
      software: chance(0.5) ? `Random App ${i}` : undefined,
    });
  }
  const fastToken = () => (chance(0.4) ? undefined : { issued: pick(issued), expires: pick(times) });
  const clients = [];
  for (let i = 0; i < RANDOM_CLIENTS; i++) {
    const mechanisms = {};
    if (chance(0.3)) mechanisms["SCRAM-SHA-1"] = pick([P(-1), P(0), P(1)]);
    if (chance(0.4)) mechanisms.OAUTHBEARER = T(-100);
    if (chance(0.4)) mechanisms["HT-SHA-256-NONE"] = T(-100);
    const r = rnd();
    clients.push({
      id: `${prefix}-c${String(i).padStart(3, "0")}`,
      mechanisms,
      fastAuth: chance(0.5) ? T(-100) : undefined,
      grant: r < 0.5 ? pick(grants).key : r < 0.58 ? `${prefix}-no-such-grant` : undefined,
      cur: fastToken(),
      new: fastToken(),
    });
  }
  return { grants, clients };
}

// ------------------------------------------------------------ the server-side chunk

/**
 * The Lua chunk: create the accounts, write the cases, then (within one second) ask
 * get_active_clients for every account FIRST, then mod_tokenauth and mod_sasl2_fast.
 */
function contractChunk(spec) {
  return `
local json = require "prosody.util.json";
local time_now = require "prosody.util.time".now;
local sm = require "prosody.core.storagemanager";
local um = require "prosody.core.usermanager";
local hashes = require "prosody.util.hashes";
local host = ${luaString(HOST)};
local spec = json.decode(${luaString(JSON.stringify(spec))});
local mods = prosody.hosts[host].modules;
local cm = assert(mods.client_management, "mod_client_management is not loaded");
local tokenauth = assert(mods.tokenauth, "mod_tokenauth is not loaded");
local fast = assert(mods.sasl2_fast, "mod_sasl2_fast is not loaded");
local accounts = sm.open(host, "accounts");
local token_store = sm.open(host, "auth_tokens", "keyval+");
local fast_store = sm.open(host, "fast_tokens", "map");
local client_store = sm.open(host, "clients", "keyval+");

for _, a in ipairs(spec.accounts) do
	assert(um.create_user(a.user, a.password, host));
	if a.role then assert(um.set_user_role(a.user, host, a.role)); end
end

-- T is the next second: the cases are written before it begins, and everything that
-- depends on the time is asked right after it began, within it (the caller retries on
-- fresh accounts otherwise).
local started = time_now();
local T = os.time() + 1;
if started + 0.5 > T then T = T + 1; end -- leave half a second for writing

local function at(v, P)
	if v == nil then return nil; end
	if v.at == "T" then return T + v.off; end
	return assert(P, "P-relative time on an account without password change") + v.off;
end

local out = { T = T, accounts = {} };

-- 1. Write every case.
for _, a in ipairs(spec.accounts) do
	local user, jid = a.user, a.user.."@"..host;
	local account = assert(accounts:get(user));
	local P = a.passwordUpdated and at(a.passwordUpdated) or nil;
	account.updated = P;
	assert(accounts:set(user, account));
	local grants = {};
	for _, g in ipairs(a.grants) do
		local tokens;
		if g.tokens then
			tokens = {};
			for i, t in ipairs(g.tokens) do
				tokens["sha256:"..hashes.sha256(g.key.."#"..i, true)] = {
					role = t.role; created = T - 100; expires = at(t.expires, P); purpose = "oauth2";
				};
			end
		end
		grants[g.key] = {
			id = g.idField or not g.noId and g.key or nil; owner = jid; jid = jid;
			created = at(g.created, P); accessed = at(g.accessed, P); expires = at(g.expires, P);
			data = g.software and { oauth2_client = { name = g.software } } or nil;
			tokens = tokens;
		};
	end
	assert(token_store:set(user, grants));
	local records, fast_tokens = {}, {};
	for _, c in ipairs(a.clients) do
		local mechanisms = {};
		for name, when in pairs(c.mechanisms or {}) do mechanisms[name] = at(when, P); end
		records[c.id] = {
			id = c.id; first_seen = T - 1000; last_seen = T - 100; full_jid = jid.."/"..c.id;
			mechanisms = mechanisms; fast_auth = at(c.fastAuth, P); auth_token_id = c.grant;
			user_agent = { software = "Contract "..c.id };
		};
		local prefix = hashes.sha256(c.id, true);
		for _, slot in ipairs({ "cur", "new", "old" }) do
			local t = c[slot];
			if t then
				-- as mod_sasl2_fast's make_token writes them
				fast_tokens[prefix.."-"..slot] = {
					mechanism = "HT-SHA-256-NONE"; secret = "secret-token:fast-"..c.id.."-"..slot;
					issued_at = at(t.issued, P); expires_at = at(t.expires, P);
				};
			end
		end
	end
	assert(client_store:set(user, records));
	if next(fast_tokens) then assert(fast_store:set_keys(user, fast_tokens)); end
end

-- What was stored, read back before anyone cleans it up.
local stored = {};
for _, a in ipairs(spec.accounts) do
	stored[a.user] = { grants = token_store:get(a.user) or {}, fast = {} };
	for _, c in ipairs(a.clients) do
		local prefix = hashes.sha256(c.id, true);
		stored[a.user].fast[c.id] = {
			cur = fast_store:get(a.user, prefix.."-cur"), new = fast_store:get(a.user, prefix.."-new");
		};
	end
end
out.written = time_now() - started;
if os.time() >= T then
	out.sameSecond, out.late = false, "writing the cases took too long";
	return out;
end
-- Both clocks: os.time() for mod_tokenauth, util.time.now() for mod_sasl2_fast and the module.
while os.time() < T or time_now() < T do end
out.waited = time_now() - started;

-- 2. The module's view, FIRST (the real modules below delete what they reject).
for _, a in ipairs(spec.accounts) do
	local r = { user = a.user, entries = {} };
	out.accounts[a.name] = r;
	local list, err = cm.get_active_clients(a.user);
	r.error = err;
	for _, e in ipairs(list or {}) do
		local active = e.active or {};
		table.insert(r.entries, {
			id = e.id; type = e.type; permission = e.permission;
			password = active.password ~= nil; fast = active.fast == true;
			grant = type(active.grant) == "table" and active.grant.id or nil;
			connected = active.connected == true;
		});
	end
end
out.listed = time_now() - started;

-- 3. The real modules' view: accounts with time-sensitive cases first.
local function ask_real_modules(a)
	local r, user = out.accounts[a.name], a.user;
	local began = time_now();
	local info = um.get_account_info(user, host);
	local P = info and info.password_updated;
	r.P = P;
	local role = um.get_user_role(user, host);
	r.role = role and { name = role.name, priority = role.priority } or nil;

	-- Role rule over the stored tokens alive at T (mod_tokenauth: expired when expires <= now).
	r.rule = {};
	for key, g in pairs(stored[user].grants) do
		local rule = { live = 0, narrower = 0, roles = {} };
		for _, t in pairs(type(g.tokens) == "table" and g.tokens or {}) do
			if not (t.expires and t.expires <= T) then
				-- mod_authz_internal's get_role_by_name raises for an unknown role name
				local known, token_role = pcall(um.get_role_by_name, t.role, host);
				token_role = known and token_role or nil;
				rule.live = rule.live + 1;
				if token_role and role and token_role.priority < role.priority then
					rule.narrower = rule.narrower + 1;
				end
				table.insert(rule.roles, tostring(t.role)..":"..tostring(token_role and token_role.priority));
			end
		end
		r.rule[key] = rule;
	end

	-- mod_tokenauth: get_grant_info(username, grant_id) for every stored and every referenced id.
	local ids = {};
	for key in pairs(stored[user].grants) do ids[key] = true; end
	for _, c in ipairs(a.clients) do if c.grant then ids[c.grant] = true; end end
	r.grants = {};
	for id in pairs(ids) do
		local ok, info = pcall(tokenauth.get_grant_info, user, id);
		if ok then r.grants[id] = info ~= nil; else r.grants[id] = "error: "..tostring(info); end
	end

	-- mod_sasl2_fast: is_client_fast(username, client_id, password_updated), and its token
	-- tester (the HT-* SASL backend) given each stored token's own secret. The tester moves an
	-- accepted "-new" token to "-cur", so "-cur" is tried first.
	r.fast = {};
	local tester = fast.get_sasl_handler(user).profile.ht_sha_256;
	for _, c in ipairs(a.clients) do
		local f = { isClientFast = fast.is_client_fast(user, c.id, P) };
		for _, slot in ipairs({ "cur", "new" }) do
			local t = stored[user].fast[c.id][slot];
			if t then
				local ok = tester(t.mechanism, user, c.id, hashes.hmac_sha256(t.secret, "Initiator"), nil, false);
				f[slot] = ok == true;
			end
		end
		r.fast[c.id] = f;
	end
	r.seconds = time_now() - began;
end
for _, a in ipairs(spec.accounts) do
	if a.nearNow then ask_real_modules(a); end
end
out.sameSecond = os.time() == T and math.floor(time_now()) == T;
if not out.sameSecond then out.late = "asking the real modules took too long"; end
out.sensitive = time_now() - started;
-- The others hold no time within minutes of T.
for _, a in ipairs(spec.accounts) do
	if not a.nearNow then ask_real_modules(a); end
end
out.finished = time_now() - started;
-- The tester moved accepted "-new" tokens over "-cur" and deleted rejected ones: put the
-- FAST tokens back as they were, so that a later listing sees what the module saw here.
for _, a in ipairs(spec.accounts) do
	for _, c in ipairs(a.clients) do
		local prefix, was = hashes.sha256(c.id, true), stored[a.user].fast[c.id];
		assert(fast_store:set(a.user, prefix.."-cur", was.cur));
		assert(fast_store:set(a.user, prefix.."-new", was.new));
	end
end
return out;`;
}

// ------------------------------------------------------------ comparing

const isPasswordMechanism = (name) => name !== "OAUTHBEARER" && !name.startsWith("HT-");

function resolve(v, T0, P0) {
  if (v === undefined) return undefined;
  return (v.at === "T" ? T0 : P0) + v.off;
}

function describeGrant(g) {
  if (!g) return "(not stored)";
  const tokens = g.tokens === undefined ? "no tokens table"
    : `tokens [${g.tokens.map((t) => `${t.role ?? "(no role)"} expires ${show(t.expires)}`).join(", ")}]`;
  const id = g.idField ? `, id field ${g.idField}` : g.noId ? ", no id field" : "";
  return `created ${show(g.created)}, accessed ${show(g.accessed)}, expires ${show(g.expires)}, ${tokens}${id}`;
}

function describeClient(c) {
  const mech = Object.entries(c.mechanisms ?? {}).map(([m, t]) => `${m}@${show(t)}`).join(" ") || "none";
  const slot = (s) => (c[s] ? ` ${s}: issued ${show(c[s].issued)} expires ${show(c[s].expires)}` : "");
  return `mechanisms ${mech}, fast_auth ${show(c.fastAuth)}${c.grant ? `, auth_token_id ${c.grant}` : ""}${slot("cur")}${slot("new")}${slot("old")}`;
}

const yn = (b) => (b ? "yes" : "no");

/**
 * Both views of one account → mismatch lines by category.
 */
function compareAccount(name, acc, r) {
  const out = { grants: [], fast: [], listing: [], permission: [] };
  const grantsByKey = new Map(acc.grants.map((g) => [g.key, g]));
  const entries = new Map();
  for (const e of r.entries) {
    if (entries.has(e.id)) out.listing.push(`${name}: ${e.id} is listed twice`);
    entries.set(e.id, e);
  }
  const realValid = (id) => r.grants[id] === true;
  for (const [id, v] of Object.entries(r.grants)) {
    if (typeof v === "string") out.grants.push(`${name}: get_grant_info(${id}) raised ${v}`);
  }

  // Grants: what the module shows (grant/<id> entries and active.grant of client entries)
  // is exactly what get_grant_info accepts.
  const shown = new Map();
  for (const e of r.entries) {
    if (e.id.startsWith("grant/")) shown.set(e.id.slice(6), `as ${e.id}`);
    if (e.grant !== undefined && !shown.has(e.grant)) shown.set(e.grant, `linked to ${e.id}`);
  }
  const allGrantIds = new Set([...Object.keys(r.grants), ...shown.keys()]);
  for (const id of [...allGrantIds].sort()) {
    const real = realValid(id);
    if (real !== shown.has(id)) {
      out.grants.push(`${name}: grant ${id} (${describeGrant(grantsByKey.get(id))}): `
        + `get_grant_info → ${real ? "grant" : "nil"}; module ${shown.has(id) ? `lists it ${shown.get(id)}` : "does not list it"}`);
    }
  }
  // Listed once: as grant/<id> only when no client record logged in with it.
  const referenced = new Set(acc.clients.map((c) => c.grant).filter(Boolean));
  for (const g of acc.grants) {
    const asEntry = entries.has(`grant/${g.key}`);
    const want = realValid(g.key) && !referenced.has(g.key);
    if (asEntry !== want) {
      out.grants.push(`${name}: grant/${g.key}: listed as an access entry: ${yn(asEntry)}, expected ${yn(want)} `
        + `(valid: ${yn(realValid(g.key))}, a client logged in with it: ${yn(referenced.has(g.key))})`);
    }
  }

  // Clients.
  const P0 = r.P;
  for (const c of acc.clients) {
    const e = entries.get(`client/${c.id}`);
    const f = r.fast[c.id] ?? {};
    const wantFast = f.isClientFast === true || f.cur === true || f.new === true;
    const wantGrant = c.grant && realValid(c.grant) ? c.grant : undefined;
    const wantPassword = Object.entries(c.mechanisms ?? {}).some(([m, t]) => isPasswordMechanism(m)
      && (P0 == null || resolve(t, r.T, P0) >= P0));
    const wantListed = wantFast || wantGrant !== undefined || wantPassword;
    const what = `${name}: client/${c.id} (${describeClient(c)})`;
    if (wantFast !== (e?.fast ?? false)) {
      out.fast.push(`${what}: mod_sasl2_fast would accept it: ${yn(wantFast)} (is_client_fast ${f.isClientFast}, `
        + `token tester -cur ${f.cur ?? "no token"}, -new ${f.new ?? "no token"}); module: ${e ? `fast=${e.fast}` : "not listed"}`);
    }
    if (wantGrant !== (e?.grant)) {
      out.grants.push(`${what}: grant access expected ${wantGrant ?? "none"} `
        + `(get_grant_info(${c.grant}) → ${c.grant ? (realValid(c.grant) ? "grant" : "nil") : "-"}); module: ${e ? `active.grant=${e.grant ?? "none"}` : "not listed"}`);
    }
    if (wantPassword !== (e?.password ?? false)) {
      out.listing.push(`${what}: password access expected ${yn(wantPassword)} (P=${P0 ?? "nil"}); module: ${e ? `password=${e.password}` : "not listed"}`);
    }
    // (A client missing because of its FAST or grant access is reported there.)
    if (e && !wantListed && e.fast === wantFast && e.grant === wantGrant && e.password === wantPassword) {
      out.listing.push(`${what}: listed although it has no access`);
    }
    if (e?.connected) out.listing.push(`${what}: connected, but no session is online`);
  }
  const known = new Set([...acc.clients.map((c) => `client/${c.id}`), ...acc.grants.map((g) => `grant/${g.key}`)]);
  for (const id of entries.keys()) {
    // (unknown grant/… entries are reported with the grants)
    if (!known.has(id) && !id.startsWith("grant/")) out.listing.push(`${name}: unexpected entry ${id}`);
  }

  // Permission (XEP-0494): restricted ⇔ the grant has live tokens and every one has a role of
  // lower priority than the account's. Only grant-only access carries a grant's permission.
  for (const e of r.entries) {
    const grantId = e.id.startsWith("grant/") ? e.id.slice(6) : e.grant;
    const grantOnly = e.id.startsWith("grant/") || (e.grant !== undefined && !e.password && !e.fast);
    let want = "unrestricted";
    let why = "password or FAST access";
    if (grantOnly) {
      const rule = r.rule[grantId] ?? { live: 0, narrower: 0, roles: [] };
      const restricted = rule.live > 0 && rule.narrower === rule.live;
      want = restricted ? "restricted" : "normal";
      why = `grant ${grantId}: live token roles [${rule.roles.join(", ")}], account ${r.role?.name}:${r.role?.priority}`;
    }
    if (e.permission !== want) {
      out.permission.push(`${name}: ${e.id}: permission ${e.permission}, expected ${want} (${why})`);
    }
  }
  return out;
}

// ------------------------------------------------------------ the run

const slices = (list, size = 15) => Array.from({ length: Math.ceil(list.length / size) },
  (_, i) => list.slice(i * size, (i + 1) * size));

function buildSpec(attempt) {
  const rnd = mulberry32(SEED);
  const tag = `${Date.now().toString(36)}${attempt}`;
  const pw = `pw-${tag}`;
  // nearNow: holds times within a second of T (or of T - tokenless_grant_ttl)
  const accounts = [
    // (in small accounts: each get_grant_info that cleans up rewrites the account's whole file)
    ...slices(validityGrants).map((grants, i) => (
      { name: `grants-${i + 1}`, nearNow: true, passwordUpdated: T(-50_000), grants, clients: [] })),
    { name: "roles", nearNow: true, passwordUpdated: T(-50_000), grants: roleGrants, clients: [] },
    ...slices(fastClients).map((clients, i) => (
      { name: `fast-${i + 1}`, nearNow: true, passwordUpdated: T(-50_000), grants: [], clients })),
    { name: "linked", nearNow: true, passwordUpdated: T(-50_000), grants: linkedGrants, clients: grantClients },
    { name: "no-password-change", ...noPasswordChange },
    { name: "member", role: MEMBER, passwordUpdated: T(-50_000), ...memberAccount },
  ];
  for (let i = 1; i <= RANDOM_ACCOUNTS_NEAR_NOW; i++) {
    accounts.push({ name: `random-near-now-${i}`, nearNow: true, passwordUpdated: T(-50_000), ...randomCases(rnd, `rn${i}`, { nearNow: true }) });
  }
  for (let i = 1; i <= RANDOM_ACCOUNTS_COARSE; i++) {
    accounts.push({ name: `random-member-${i}`, role: MEMBER, passwordUpdated: T(-50_000), ...randomCases(rnd, `rm${i}`, { nearNow: false }) });
    accounts.push({ name: `random-registered-${i}`, passwordUpdated: T(-50_000), ...randomCases(rnd, `rr${i}`, { nearNow: false }) });
  }
  for (const a of accounts) {
    a.user = `contract-${a.name}-${tag}`;
    a.password = pw;
  }
  return { accounts };
}

const timing = (r) => `write ${r.written?.toFixed(3)} s, wait for T ${(r.waited - r.written)?.toFixed(3)} s, `
  + `module ${(r.listed - r.waited)?.toFixed(3)} s, real modules on time-sensitive accounts ${(r.sensitive - r.listed)?.toFixed(3)} s, `
  + `on the others ${(r.finished - r.sensitive)?.toFixed(3)} s`;

let runPromise = null;
/** Run the chunk (once per file), retrying on fresh accounts if the second changed. */
function contractRun(server) {
  runPromise ??= (async () => {
    const started = Date.now();
    const timings = [];
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const spec = buildSpec(attempt);
      const result = await server.lua(contractChunk(spec));
      timings.push(`${timing(result)}${result.late ? ` (${result.late})` : ""}`);
      if (result.sameSecond) {
        // util.json encodes an empty table as {}: arrays that may be empty
        for (const r of Object.values(result.accounts)) {
          r.T = result.T;
          if (!Array.isArray(r.entries)) r.entries = [];
          for (const rule of Object.values(r.rule)) if (!Array.isArray(rule.roles)) rule.roles = [];
        }
        return { spec, result, attempts: attempt, timings, ms: Date.now() - started };
      }
    }
    throw new Error(`the contract chunk never ran within one second (${ATTEMPTS} attempts: ${timings.join("; ")})`);
  })();
  return runPromise;
}

function mismatches(run, category) {
  const lines = [];
  for (const acc of run.spec.accounts) {
    lines.push(...compareAccount(acc.name, acc, run.result.accounts[acc.name])[category]);
  }
  return lines;
}

function assertNone(run, category, title) {
  const lines = mismatches(run, category);
  assert.ok(lines.length === 0,
    `${title}: ${lines.length} mismatch(es) between mod_client_management and the real modules `
    + `(T=${run.result.T}, P=T-50000, tokenless_grant_ttl=${TOKENLESS_TTL}, seed=${SEED}):\n  ${lines.join("\n  ")}`);
}

describe("contract with mod_tokenauth and mod_sasl2_fast", () => {
  const fx = useServer({ options: { tokenless_grant_ttl: TOKENLESS_TTL } });

  e2eTest(fx, "the generated cases reach the branches they claim (real modules' answers)", async ({ t, server }) => {
    const run = await contractRun(server);
    t.diagnostic(`seed ${SEED} (CONTRACT_SEED), T=${run.result.T}, ${run.attempts} attempt(s) in ${run.ms} ms: ${run.timings.join("; ")}`);
    const wrong = [];
    let grants = 0;
    let clients = 0;
    for (const acc of run.spec.accounts) {
      const r = run.result.accounts[acc.name];
      assert.equal(r.error, undefined, `get_active_clients(${acc.name}) failed: ${r.error}`);
      assert.equal(r.P == null, acc.passwordUpdated === undefined, `${acc.name}: password_updated ${r.P}`);
      if (acc.role) assert.equal(r.role?.name, acc.role, `${acc.name}: role`);
      for (const g of acc.grants) {
        grants++;
        if (!g.expect) continue;
        if (r.grants[g.key] !== g.expect.valid) {
          wrong.push(`${acc.name}: ${g.key} (${describeGrant(g)}): get_grant_info → ${r.grants[g.key]}, case says ${g.expect.valid}`);
        }
        if (g.expect.restricted !== undefined) {
          const rule = r.rule[g.key];
          const restricted = rule.live > 0 && rule.narrower === rule.live;
          if (restricted !== g.expect.restricted) {
            wrong.push(`${acc.name}: ${g.key}: role rule gives ${restricted} ([${rule.roles}] vs ${r.role?.name}), case says ${g.expect.restricted}`);
          }
        }
      }
      for (const c of acc.clients) {
        clients++;
        if (!c.expect) continue;
        const f = r.fast[c.id];
        for (const k of ["isClientFast", "cur", "new"]) {
          if (f[k] !== c.expect[k]) {
            wrong.push(`${acc.name}: ${c.id} (${describeClient(c)}): ${k} → ${f[k]}, case says ${c.expect[k]}`);
          }
        }
      }
    }
    t.diagnostic(`${grants} grants, ${clients} clients in ${run.spec.accounts.length} accounts; real modules per account: `
      + run.spec.accounts.map((a) => `${a.name} ${run.result.accounts[a.name].seconds.toFixed(3)} s`).join(", "));
    assert.ok(wrong.length === 0, `cases that do not behave as labelled in the real modules:\n  ${wrong.join("\n  ")}`);
  });

  e2eTest(fx, "grants: the module lists exactly the grants mod_tokenauth's get_grant_info accepts", async ({ server }) => {
    assertNone(await contractRun(server), "grants", "grants");
  });

  e2eTest(fx, "FAST: active.fast exactly when mod_sasl2_fast would accept the client's token (is_client_fast or its token tester)", async ({ server }) => {
    assertNone(await contractRun(server), "fast", "FAST");
  });

  e2eTest(fx, "listing: password access and listed-ness follow from the real modules' answers (ARCHITECTURE.md §4)", async ({ server }) => {
    assertNone(await contractRun(server), "listing", "listing");
  });

  e2eTest(fx, "permission: restricted exactly when every live token's role is narrower than the account's", async ({ server }) => {
    assertNone(await contractRun(server), "permission", "permission");
  });

  e2eTest(fx, "a client listing over XMPP (both namespaces) shows what get_active_clients returned", async ({ server, login }) => {
    const run = await contractRun(server);
    // the accounts without times near T: their answers hold for minutes
    const accounts = run.spec.accounts.filter((a) => !a.nearNow);
    const problems = [];
    let listed = 0;
    // (sessions are closed by e2eTest afterwards, all at once)
    const viewers = await Promise.all(accounts.map((acc) => login({
      username: acc.user, password: acc.password, userAgent: { id: VIEWER, software: "Contract viewer" },
    })));
    for (const [i, acc] of accounts.entries()) {
      const viewer = viewers[i];
      const api = run.result.accounts[acc.name].entries;
      listed += api.length;
      const expectedIds = [...api.map((e) => e.id), `client/${VIEWER}`].sort();
      const byId = new Map(api.map((e) => [e.id, e]));
      const describeId = (id) => {
        const c = acc.clients.find((x) => `client/${x.id}` === id);
        const g = acc.grants.find((x) => `grant/${x.key}` === id);
        const e = byId.get(id);
        return `${id}${c ? ` (${describeClient(c)})` : g ? ` (${describeGrant(g)})` : ""}${e ? ` get_active_clients: ${JSON.stringify(e)}` : ""}`;
      };
      for (const ns of [NS_MC, NS_CAM]) {
        const { clients } = await listClients(viewer, { ns });
        const got = clients.map((c) => c.id).sort();
        for (const id of expectedIds.filter((x) => !got.includes(x))) problems.push(`${acc.name}: ${ns}: missing ${describeId(id)}`);
        for (const id of got.filter((x) => !expectedIds.includes(x))) problems.push(`${acc.name}: ${ns}: unexpected ${describeId(id)}`);
        for (const c of clients) {
          const e = byId.get(c.id);
          if (!e) continue;
          const grantFlag = ns === NS_CAM ? "grant" : "bearer-token";
          const want = [e.password && "password", e.fast && "fast", (e.grant !== undefined || e.id.startsWith("grant/")) && grantFlag]
            .filter(Boolean).sort();
          if (JSON.stringify(c.auth) !== JSON.stringify(want)) {
            problems.push(`${acc.name}: ${ns}: ${c.id}: <auth> [${c.auth}], get_active_clients says [${want}]`);
          }
          if (c.connected !== "false") problems.push(`${acc.name}: ${ns}: ${c.id}: connected='${c.connected}'`);
          if (ns === NS_CAM) {
            const status = c.el.getChild("permission")?.attrs.status;
            if (status !== e.permission) {
              problems.push(`${acc.name}: ${ns}: ${c.id}: <permission status='${status}'/>, get_active_clients says ${e.permission}`);
            }
          }
        }
      }
    }
    assert.ok(listed > 20, `the accounts list only ${listed} entries in all`);
    assert.ok(problems.length === 0, `XMPP listing differs from get_active_clients:\n  ${problems.join("\n  ")}`);
  });
});
