-- mod_client_management: lets a user see, and cut off, everything that has access to
-- their account (chat apps, FAST tokens, OAuth grants).
--
-- This file is the only part that touches Prosody: hooks, storage, sessions, tokenauth,
-- FAST, stanzas. Decisions (who has access, in what order, what a revocation does) are
-- made by the native core, called once per request with the facts gathered here.

local st = require "prosody.util.stanza";
local errors = require "prosody.util.error";
local usermanager = require "prosody.core.usermanager";
local jid_split = require "prosody.util.jid".split;
local time_now = require "prosody.util.time".now;

local EXPECTED_CORE_VERSION = "0.1.0";
local CORE_NAME = "client_management";

local xmlns_prosody = "xmpp:prosody.im/protocol/manage-clients";
local xmlns_cam = "urn:xmpp:cam:0";
local xmlns_sasl = "urn:ietf:params:xml:ns:xmpp-sasl";
local xmlns_sasl2 = "urn:xmpp:sasl:2";

local host = module.host;

-- Native core -------------------------------------------------------------------------

local function file_exists(path)
	local f = io.open(path, "rb");
	if f then f:close(); return true; end
	return false;
end

-- Beside this file first (`make plugin`, plugin_paths), then package.cpath, then the plugin
-- installer's tree, which Prosody 13.0.x never adds to package.cpath itself.
local function core_candidates()
	local candidates = {};
	local here = module.path and module.path:match("^(.*)[/\\][^/\\]*$");
	if here then
		table.insert(candidates, here.."/"..CORE_NAME..".so");
	end
	local on_cpath = package.searchpath(CORE_NAME, package.cpath);
	if on_cpath then
		table.insert(candidates, on_cpath);
	end
	local installer = prosody.paths and prosody.paths.installer;
	if installer then
		local lua_version = _VERSION:match(" (.+)$");
		table.insert(candidates, installer.."/lib/lua/"..lua_version.."/"..CORE_NAME..".so");
	end
	return candidates;
end

local function load_core()
	local problems = {};
	for _, path in ipairs(core_candidates()) do
		if file_exists(path) then
			local open, load_err = package.loadlib(path, "luaopen_"..CORE_NAME);
			if not open then
				table.insert(problems, ("%s: %s"):format(path, load_err));
			else
				local ok, lib = pcall(open);
				if not ok then
					table.insert(problems, ("%s: %s"):format(path, tostring(lib)));
				elseif type(lib) ~= "table" or lib.version ~= EXPECTED_CORE_VERSION then
					table.insert(problems, ("%s is version %s, this module needs %s"):format(
						path, type(lib) == "table" and tostring(lib.version) or "?", EXPECTED_CORE_VERSION));
				else
					module:log("debug", "Loaded native core %s from %s", lib.version, path);
					return lib;
				end
			end
		end
	end
	if #problems == 0 then
		table.insert(problems, "not found in "..table.concat(core_candidates(), ", "));
	end
	return nil, "cannot load the native library "..CORE_NAME..".so ("..table.concat(problems, "; ")..")";
end

local core = assert(load_core());

-- Dependencies and stores ----------------------------------------------------------------

local tokenauth = module:depends("tokenauth");
local mod_fast = module:depends("sasl2_fast");

local client_store = assert(module:open_store("clients", "keyval+"));
-- mod_tokenauth's and mod_sasl2_fast's stores, each read whole once per account load rather
-- than once per grant or client. Grants are validated by the core the way mod_tokenauth's
-- get_grant_info does (expiry, password change, token lifetimes).
local grant_store = assert(module:open_store("auth_tokens", "keyval+"));
local fast_token_store = assert(module:open_store("fast_tokens"));
-- Full JID -> generated id of legacy clients, so a bind never scans every record.
local legacy_index = assert(module:open_store("client_management_legacy", "keyval+"));

local enforce_client_ids = module:get_option_boolean("enforce_client_ids", false);
-- Same option and default as mod_tokenauth.
local tokenless_grant_ttl = module:get_option_period("tokenless_grant_ttl", "2w");
-- Grants change behind our back only in their access time and new tokens (mod_tokenauth
-- fires events for created and revoked grants); re-read them at most this often.
local grant_cache_ttl = module:get_option_period("client_management_grant_cache_ttl", 60);
local account_cache_size = module:get_option_integer("client_management_cache_size", 256, 1);
-- Updates that change no client's access (times, JID, user agent) are written this late.
local write_delay = module:get_option_period("client_management_write_delay", 10);

local stanza_mt = getmetatable(st.stanza("x"));

module:default_permission("prosody:registered", ":list-clients");
module:default_permission("prosody:registered", ":manage-clients");

-- Facts ---------------------------------------------------------------------------------

local function role_priorities()
	local priorities = {};
	for name, role in pairs(usermanager.get_all_roles(host) or {}) do
		priorities[name] = role.priority;
	end
	return priorities;
end

local function user_sessions(username)
	local sessions = {};
	local user = prosody.hosts[host].sessions[username];
	for _, session in pairs(user and user.sessions or {}) do
		if session.full_jid then
			local login = session.client_management;
			table.insert(sessions, {
				full_jid = session.full_jid;
				client_id = session.client_id;
				grant_id = login and login.grant_id;
			});
		end
	end
	return sessions;
end

local function note_skipped(username, skipped)
	if skipped and skipped > 0 then
		module:log("warn", "Skipped %d malformed stored item(s) of %s", skipped, username);
	end
end

-- Recently active accounts: `state` holds the decoded stored facts (client records, grants,
-- FAST tokens) for the core, `records` the client records as stored, so a login reads and
-- updates its record without loading the whole store again.
local account_states = require "prosody.util.cache".new(account_cache_size);

-- Client records whose update is waiting to be written (username -> id -> record).
local pending_writes = {};

local function cached_state(username)
	local entry = account_states:get(username);
	return entry and entry.state;
end

local function account_entry(username, transient)
	local entry = not transient and account_states:get(username);
	if not entry then
		entry = { state = core.new_account_state() };
		if not transient then
			account_states:set(username, entry);
		end
	end
	return entry;
end

local function load_records(username, entry)
	if entry.state:records_loaded() then return true; end
	local records, err = client_store:get(username);
	if err then return nil, err; end
	records = records or {};
	-- Updates not written yet are newer than what storage holds.
	for client_id, record in pairs(pending_writes[username] or {}) do
		records[client_id] = record;
	end
	entry.records = records;
	note_skipped(username, entry.state:load_records(records));
	return true;
end

-- The stored facts of an account, loading what is missing or stale. `fresh` re-reads grants
-- and FAST tokens (decisions that change things); `transient` keeps nothing (host-wide walks).
local function load_account(username, mode)
	local entry = account_entry(username, mode == "transient");
	local state = entry.state;
	if mode == "fresh" then
		state:forget_grants();
		state:forget_fast_tokens();
	end
	local now = time_now();
	local ok, err = load_records(username, entry);
	if not ok then return nil, err; end
	local grants_loaded_at = state:grants_loaded_at();
	if not grants_loaded_at or now - grants_loaded_at >= grant_cache_ttl then
		local grants, err = grant_store:get(username);
		if err then return nil, err; end
		note_skipped(username, state:load_grants(grants, role_priorities(), now));
	end
	if not state:fast_tokens_loaded() then
		local fast_tokens, err = fast_token_store:get(username);
		if err then return nil, err; end
		note_skipped(username, state:load_fast_tokens(fast_tokens));
	end
	return state;
end

-- What changes from one request to the next: sessions, password change, role, clock.
local function current_facts(username)
	local account = usermanager.get_account_info(username, host);
	local role = usermanager.get_user_role(username, host);
	return {
		sessions = user_sessions(username);
		password_updated = account and account.password_updated;
		account_role_priority = role and role.priority;
		tokenless_grant_ttl = tokenless_grant_ttl;
		now = time_now();
	};
end

local function forget_tokens(username)
	local state = cached_state(username);
	if state then
		state:forget_grants();
		state:forget_fast_tokens();
	end
end

module:hook("token-grant-created", function (event) forget_tokens(event.username); end);
module:hook("token-grant-revoked", function (event) forget_tokens(event.username); end);
module:hook("token-revoked", function (event) forget_tokens(event.username); end);
module:hook("user-deleted", function (event)
	account_states:set(event.username, nil);
	pending_writes[event.username] = nil;
end);

-- Public API ------------------------------------------------------------------------------

-- Entries in the community module's shape: `id` ("client/…" or "grant/…"), `type`
-- ("session" or "access"), `first_seen`, `last_seen`, `expires`, `user_agent`, the record's
-- other fields, and `active = { password, fast, grant, connected }`.
function get_active_clients(username)
	local state, err = load_account(username);
	if not state then
		module:log("error", "Unable to read client data of %s: %s", username, err);
		return nil, err;
	end
	return core.active_clients(state, current_facts(username));
end

local function close_session(session)
	session:close({ condition = "not-authorized", text = "Client access revoked" });
end

-- Carries out a plan in its order: FAST tokens, grants, then sessions. The requester's own
-- session is returned instead of closed, so the caller can answer first.
local function carry_out(username, actions, requester)
	forget_tokens(username);
	local deferred = {};
	for _, action in ipairs(actions) do
		local verb, target = action[1], action[2];
		if verb == "revoke_fast_tokens" then
			if not mod_fast.revoke_fast_tokens(username, target) then
				module:log("error", "Unable to revoke FAST tokens of client %s of %s", target, username);
				return nil, "internal-server-error";
			end
		elseif verb == "revoke_grant" then
			local ok, err = tokenauth.revoke_grant(username, target);
			if not ok then
				module:log("error", "Unable to revoke grant %s of %s: %s", target, username, err);
				return nil, "internal-server-error";
			end
		elseif verb == "close_session" then
			local session = prosody.full_sessions[target];
			if session and session == requester then
				table.insert(deferred, session);
			elseif session then
				close_session(session);
			end
		end
	end
	return deferred;
end

local function revoke(username, selector, requester)
	local state, err = load_account(username, "fresh");
	if not state then
		module:log("error", "Unable to read client data of %s: %s", username, err);
		return nil, "internal-server-error";
	end
	local plan = core.plan_revocation(state, current_facts(username), selector);
	local deferred, carry_err = carry_out(username, plan.actions, requester);
	if not deferred then
		return nil, carry_err;
	end
	if plan.error then
		return nil, plan.error, deferred, plan;
	end
	return true, nil, deferred, plan;
end

-- Returns true, or nil and one of "item-not-found", "password-reset-required",
-- "internal-server-error" (the community module's return shape).
function revoke_client_access(username, selector)
	local ok, err, deferred = revoke(username, selector, nil);
	for _, session in ipairs(deferred or {}) do close_session(session); end
	return ok, err;
end

-- Recording logins ------------------------------------------------------------------------

local function now_seconds()
	return os.time();
end

-- What a login used, noted on the session as soon as SASL succeeds (before Bind 2 binds).
local function note_login(session, sasl_handler)
	if not sasl_handler then return; end
	local token_info = sasl_handler.token_info;
	session.client_management = {
		mechanism = sasl_handler.selected;
		fast = sasl_handler.fast_auth or sasl_handler.fast or nil;
		grant_id = token_info and token_info.id;
		grant = token_info and token_info.grant;
		user_agent = sasl_handler.user_agent;
	};
end

local function table_or_empty(value)
	return type(value) == "table" and value or {};
end

local function user_agent_of(login)
	local sasl_ua = table_or_empty(login.user_agent);
	local oauth_client = table_or_empty(table_or_empty(table_or_empty(login.grant).data).oauth2_client);
	if not sasl_ua.software and not sasl_ua.device and not next(oauth_client) then
		return nil;
	end
	local function text(value) return type(value) == "string" and value or nil; end
	return {
		software = text(sasl_ua.software) or text(oauth_client.name);
		software_id = text(oauth_client.id);
		software_version = text(oauth_client.version);
		uri = text(oauth_client.uri);
		device = text(sasl_ua.device);
	};
end

-- Brings a record up to date with a successful login; returns the record and whether it is new.
local function update_record(record, client_id, session, login, user_agent)
	local now = now_seconds();
	local is_new = type(record) ~= "table";
	if is_new then
		record = { id = client_id, first_seen = now };
	end
	record.full_jid = session.full_jid;
	record.last_seen = now;
	if type(record.mechanisms) ~= "table" then record.mechanisms = {}; end
	if login.mechanism then
		record.mechanisms[login.mechanism] = now;
	end
	if login.fast then
		record.fast_auth = now;
	end
	if login.grant_id then
		record.auth_token_id = login.grant_id;
	end
	if user_agent then
		-- A login without a grant (FAST, password) says nothing about the OAuth client the
		-- record learnt from an earlier grant login: keep what it did not replace.
		local previous = type(record.user_agent) == "table" and record.user_agent or {};
		if not login.grant then
			user_agent.software_id = user_agent.software_id or previous.software_id;
			user_agent.software_version = user_agent.software_version or previous.software_version;
			user_agent.uri = user_agent.uri or previous.uri;
		end
		record.user_agent = user_agent;
	end
	return record, is_new;
end

-- The freshest copy of a stored record: waiting to be written, or cached (the account's
-- records are read once, then kept while it is active).
local function stored_record(username, client_id)
	local pending = pending_writes[username];
	if pending and pending[client_id] then
		return pending[client_id];
	end
	local entry = account_entry(username);
	local ok, err = load_records(username, entry);
	if not ok then return nil, err; end
	return entry.records[client_id];
end

local function write_records(username, records)
	local ok, err = client_store:set_keys(username, records);
	if ok then return true; end
	module:log("error", "Unable to store clients of %s: %s", username, err);
	-- What we hold no longer matches storage: read it again next time.
	local entry = account_states:get(username);
	if entry then
		entry.records = nil;
		entry.state:forget_records();
	end
	return nil, err;
end

local function flush_writes(username)
	local pending = pending_writes[username];
	if not pending then return; end
	pending_writes[username] = nil;
	write_records(username, pending);
end

local function flush_all_writes()
	for username in pairs(pending_writes) do
		flush_writes(username);
	end
end

module:hook_global("server-stopping", flush_all_writes);
module.unload = flush_all_writes;

-- Would this login change what the client has access to? Such updates are written at once;
-- the rest (times, JID, user agent) are batched, so a login does not rewrite the account's
-- whole client store (internal storage keeps one file per account) each time.
local function changes_access(old, login, password_updated)
	if type(old) ~= "table" or type(old.mechanisms) ~= "table" then return true; end
	local used = login.mechanism and old.mechanisms[login.mechanism];
	if login.mechanism and (type(used) ~= "number" or (password_updated and used < password_updated)) then
		return true;
	end
	if login.grant_id and old.auth_token_id ~= login.grant_id then return true; end
	if login.fast and not old.fast_auth then return true; end
	return false;
end

local function save_record(username, record, is_new, session, prompt)
	local entry = account_states:get(username);
	if entry and entry.records then
		entry.records[record.id] = record;
		entry.state:put_record(record.id, record);
	end
	local pending = pending_writes[username];
	if prompt then
		-- Anything waiting for this account goes out in the same write.
		pending_writes[username] = nil;
		pending = pending or {};
		pending[record.id] = record;
		if not write_records(username, pending) then return; end
	else
		if not pending then
			pending = {};
			pending_writes[username] = pending;
			module:add_timer(write_delay, function () flush_writes(username); end);
		end
		pending[record.id] = record;
	end
	if is_new then
		module:fire_event("client_management/new-client", { client = record; session = session });
	end
end

local function password_updated_of(username)
	local account = usermanager.get_account_info(username, host);
	return account and account.password_updated;
end

local function record_sasl2_login(session)
	local login = session.client_management or {};
	local username, client_id = session.username, session.client_id;
	local record, err = stored_record(username, client_id);
	if err then
		module:log("error", "Unable to read client %s of %s: %s", client_id, username, err);
		return;
	end
	-- A record that never reached storage (its first write failed) is still new.
	local prompt = type(record) ~= "table" or (not login.recorded and changes_access(record, login, password_updated_of(username)));
	local is_new;
	record, is_new = update_record(record, client_id, session, login, user_agent_of(login));
	save_record(username, record, is_new, session, prompt);
	login.recorded = true;
	session.client_management = login;
end

-- A login may have used a grant (its access time moves) or been issued or rotated a FAST
-- token: what we hold of those for the account is stale.
local function forget_after_login(session)
	local state = cached_state(session.username);
	if not state then return; end
	state:forget_fast_tokens();
	if session.client_management and session.client_management.grant_id then
		state:forget_grants();
	end
end

module:hook("sasl2/c2s/success", function (event)
	note_login(event.session, event.session.sasl_handler);
end, 500); -- after mod_sasl2 authenticates (1000), before Bind 2 binds (100)

module:hook("sasl2/c2s/success", function (event)
	forget_after_login(event.session);
end, 50); -- after mod_sasl2_fast issues tokens (75)

module:hook("sasl2/c2s/success", function (event)
	local session = event.session;
	if session.client_id and session.client_id ~= "" then
		-- Never let bookkeeping break a login.
		local ok, err = pcall(record_sasl2_login, session);
		if not ok then
			module:log("error", "Unable to record client %s of %s: %s", session.client_id, session.username, err);
		end
	end
end, -1); -- after Bind 2 (100) and FAST (75), before <success> goes out (-1000)

-- Legacy SASL (mod_saslauth) leaves its handler on the session during this event.
module:hook("authentication-success", function (event)
	local session = event.session;
	if not session.client_management then
		note_login(session, session.sasl_handler);
		forget_after_login(session);
	end
end);

local function find_legacy_client(username, full_jid)
	local id = legacy_index:get_key(username, full_jid);
	if id == nil and legacy_index:get(username) == nil then
		-- First legacy bind since the index exists: index records written before it (read
		-- through the account cache, which the record lookup below uses anyway).
		local entry = account_entry(username);
		local index = {};
		for client_id, record in pairs(load_records(username, entry) and entry.records or {}) do
			if type(record) == "table" and record.legacy == true and type(record.full_jid) == "string" then
				index[record.full_jid] = type(record.id) == "string" and record.id or client_id;
			end
		end
		if next(index) then
			legacy_index:set(username, index);
			id = index[full_jid];
		end
	end
	if type(id) ~= "string" then return nil; end
	local record = stored_record(username, id);
	if type(record) == "table" and record.full_jid == full_jid then
		return record;
	end
	return nil;
end

local function record_legacy_bind(session)
	local login = session.client_management or {};
	local username, full_jid = session.username, session.full_jid;
	local record = find_legacy_client(username, full_jid);
	local client_id = record and record.id;
	if not record then
		client_id = core.new_client_id();
	end
	local prompt = changes_access(record, login, password_updated_of(username));
	local is_new;
	record, is_new = update_record(record, client_id, session, login, user_agent_of(login));
	record.legacy = true;
	if is_new then
		local ok, err = legacy_index:set_key(username, full_jid, client_id);
		if not ok then
			module:log("warn", "Unable to index legacy client of %s: %s", full_jid, err);
		end
	end
	save_record(username, record, is_new, session, prompt);
end

module:hook("resource-bind", function (event)
	local session = event.session;
	if session.type ~= "c2s" or not session.username then return; end
	local ok, err = pcall(function ()
		if session.client_id and session.client_id ~= "" then
			-- A SASL2 client binding after <success> (no Bind 2) gets its full JID now.
			local login = session.client_management;
			if login and login.recorded then
				record_sasl2_login(session);
			end
		else
			record_legacy_bind(session);
		end
	end);
	if not ok then
		-- Never let bookkeeping break a login.
		module:log("error", "Unable to record client of %s: %s", session.full_jid, err);
	end
end);

-- Strict mode ------------------------------------------------------------------------------

if enforce_client_ids then
	module:hook_tag(xmlns_sasl2, "authenticate", function (session, auth)
		local user_agent = auth:get_child("user-agent");
		local client_id = user_agent and user_agent.attr.id;
		if client_id and client_id ~= "" then return; end
		session.send(st.stanza("failure", { xmlns = xmlns_sasl2 })
			:tag("malformed-request", { xmlns = xmlns_sasl }):up()
			:text_tag("text", "Client identifier required but not supplied"));
		return true;
	end, 1000); -- before mod_sasl2_fast (100) and mod_sasl2 (0) look at it

	-- Legacy SASL has no way to name the client: refuse it, answering even when
	-- mod_saslauth is loaded too (our handler runs first and ends the event).
	module:hook_tag(xmlns_sasl, "auth", function (session)
		if session.type ~= "c2s_unauthed" then return; end
		session.send(st.stanza("failure", { xmlns = xmlns_sasl })
			:tag("not-authorized"):up()
			:text_tag("text", "Client identifier required but not supplied"));
		return true;
	end, 1000);

	local function warn_about_saslauth()
		module:log("error", "enforce_client_ids is on but mod_saslauth is loaded: legacy SASL logins"
			.." will be refused; remove \"saslauth\" from modules_enabled");
	end
	local modulemanager = require "prosody.core.modulemanager";
	if modulemanager.is_loaded(host, "saslauth") then
		warn_about_saslauth();
	end
	-- Prosody 13 fires this on the host's events: modules of a host load in no set order.
	module:hook("module-loaded", function (event)
		if event.module == "saslauth" then
			warn_about_saslauth();
		end
	end);
end

-- XMPP protocol ------------------------------------------------------------------------------

local error_registries = {};
for _, xmlns in ipairs({ xmlns_prosody, xmlns_cam }) do
	error_registries[xmlns] = errors.init(module.name, xmlns, {
		["item-not-found"] = { "cancel", "item-not-found", "Client not found" };
		["internal-server-error"] = { "wait", "internal-server-error", "Unable to revoke client access" };
		["password-reset-required"] = { "cancel", "service-unavailable", "Password reset required",
			"password-reset-required" };
	});
end

local function handle_list(event)
	local origin, stanza = event.origin, event.stanza;
	if not module:may(":list-clients", event) then
		origin.send(st.error_reply(stanza, "auth", "forbidden"));
		return true;
	end
	local xmlns = stanza.tags[1].attr.xmlns;
	local username = origin.username;
	local state, err = load_account(username);
	if not state then
		module:log("error", "Unable to read client data of %s: %s", username, err);
		origin.send(st.error_reply(stanza, "wait", "internal-server-error"));
		return true;
	end
	local ok, clients = pcall(core.list_stanza, state, current_facts(username), xmlns, stanza_mt);
	if not ok then
		module:log("error", "Unable to list clients of %s: %s", username, tostring(clients));
		origin.send(st.error_reply(stanza, "wait", "internal-server-error"));
		return true;
	end
	local reply = st.reply(stanza);
	reply:add_direct_child(clients); -- returns nothing in 13.0.x, so no chaining
	origin.send(reply);
	return true;
end

local function handle_revoke(event)
	local origin, stanza = event.origin, event.stanza;
	if not module:may(":manage-clients", event) then
		origin.send(st.error_reply(stanza, "auth", "forbidden"));
		return true;
	end
	local request = stanza.tags[1];
	local selector = request.attr.id;
	if not selector or selector == "" then
		origin.send(st.error_reply(stanza, "modify", "bad-request", "Missing client id"));
		return true;
	end
	local call_ok, ok, err, deferred = pcall(revoke, origin.username, selector, origin);
	if not call_ok then
		module:log("error", "Unable to revoke %s of %s: %s", selector, origin.username, tostring(ok));
		ok, err = nil, "internal-server-error";
	end
	if ok then
		origin.send(st.reply(stanza));
	else
		origin.send(st.error_reply(stanza, error_registries[request.attr.xmlns].new(err)));
	end
	-- The requester revoked its own session: it hears the answer, then goes.
	for _, session in ipairs(deferred or {}) do close_session(session); end
	return true;
end

for _, xmlns in ipairs({ xmlns_prosody, xmlns_cam }) do
	module:hook("iq-get/self/"..xmlns..":list", handle_list);
	module:hook("iq-set/self/"..xmlns..":revoke", handle_revoke);
end

module:hook("account-disco-info", function (event)
	event.reply:tag("feature", { var = xmlns_cam }):up();
end);

-- Shell ------------------------------------------------------------------------------------
-- Works both as `prosodyctl shell user clients JID` and interactively as `user:clients(JID)`.

local format_table = require "prosody.util.human.io".table;

local function format_time(t, with_clock)
	if type(t) ~= "number" then return nil; end
	return os.date(with_clock and "!%Y-%m-%d %H:%M" or "!%Y-%m-%d", math.floor(t));
end

local function account_of(user_jid)
	local username = jid_split(user_jid);
	if not username then
		return nil, "Supply the JID of an account";
	end
	if not usermanager.user_exists(username, host) then
		return nil, "No such account: "..user_jid;
	end
	return username;
end

-- Columns of core.client_rows.
local client_columns = {
	{ title = "ID" };
	{ title = "Software" };
	{ title = "First seen", mapper = format_time };
	{ title = "Last seen", mapper = format_time };
	{ title = "Expires", mapper = format_time };
	{ title = "Authentication" };
};

-- Width in characters, as util.human.io pads (invalid UTF-8 counts bytes).
local function text_width(text)
	return utf8.len(text) or #text;
end

-- Clients as a table when every cell fits `width` whole; otherwise one block per client, so
-- nothing is ever cut short (admins copy ids into revoke_client).
local function print_clients(session, clients, width)
	-- From the command line, one print for the whole listing (each print is a message over
	-- the admin socket); the interactive console prefixes each print, so it gets lines.
	local out = {};
	local print = session.repl and session.print or function (line) out[#out + 1] = line; end;
	local function print_all()
		if #out > 0 then session.print(table.concat(out, "\n")); end
	end
	local cells, widths = {}, {};
	for i, column in ipairs(client_columns) do
		widths[i] = text_width(column.title) + 1; -- util.human.io.table pads titles by one
	end
	for row, client in ipairs(clients) do
		cells[row] = {};
		for i, column in ipairs(client_columns) do
			local value = client[i];
			local text = column.mapper and column.mapper(value) or value;
			text = text and text ~= "" and tostring(text) or "-";
			cells[row][i] = text;
			widths[i] = math.max(widths[i], text_width(text));
		end
	end
	local total = (#widths - 1) * 3;
	for _, w in ipairs(widths) do total = total + w; end
	if total <= width then
		local specs = {};
		for i, column in ipairs(client_columns) do
			specs[i] = { title = column.title, key = i, width = widths[i] };
		end
		local row = format_table(specs, total);
		print(row());
		for _, line in ipairs(cells) do
			print(row(line));
		end
		print_all();
		return;
	end
	for row, client in ipairs(clients) do
		if row > 1 then print(""); end
		print(cells[row][1]);
		for i = 2, #client_columns do
			local column = client_columns[i];
			local text = cells[row][i];
			if column.mapper == format_time and text ~= "-" then
				text = format_time(client[i], true); -- there is room for the time here
			end
			print(("  %-15s %s"):format(column.title..":", text));
		end
	end
	print_all();
end

module:add_item("shell-command", {
	section = "user";
	section_desc = "View user and account info";
	name = "clients";
	desc = "List the clients that have access to an account (IDs are shown in full for revoke_client)";
	args = { { name = "jid"; type = "string" } };
	host_selector = "jid";
	handler = function (self, user_jid)
		local username, err = account_of(user_jid);
		if not username then return nil, err; end
		local state, list_err = load_account(username);
		if not state then
			return nil, "Unable to read client data: "..tostring(list_err);
		end
		local clients = core.client_rows(state, current_facts(username));
		if #clients == 0 then
			return true, "No clients associated with this account";
		end
		print_clients(self.session, clients, self.session.width or 80);
		return true, ("%d client(s)"):format(#clients);
	end;
});

local revoke_error_text = error_registries[xmlns_prosody].registry;

module:add_item("shell-command", {
	section = "user";
	section_desc = "View user and account info";
	name = "revoke_client";
	desc = "Revoke a client's access: client/ID, grant/ID, software/NAME or software/NAME/VERSION";
	args = { { name = "jid"; type = "string" }, { name = "selector"; type = "string" } };
	host_selector = "jid";
	handler = function (self, user_jid, selector) --luacheck: ignore 212/self
		local username, err = account_of(user_jid);
		if not username then return nil, err; end
		if type(selector) ~= "string" or selector == "" then
			return nil, "Supply what to revoke: client/ID, grant/ID or software/NAME[/VERSION]";
		end
		local ok, revoke_err = revoke_client_access(username, selector);
		if not ok then
			local known = revoke_error_text[revoke_err];
			return nil, known and known.text or tostring(revoke_err);
		end
		return true, "Client access revoked";
	end;
});

-- Host-wide commands walk every account that has client records or grants, through the
-- storage API, one account at a time, yielding between batches so the server keeps serving.

local async = require "prosody.util.async";
local promise = require "prosody.util.promise";

local PROGRESS_EVERY = 500;

-- Calls `visit(username)` for each account with stored clients, then each account that only
-- has grants; returns the number of accounts visited.
local function each_account(print, visit)
	local n = 0;
	local function step(username)
		n = n + 1;
		visit(username);
		if n % PROGRESS_EVERY == 0 then
			print(("Processed %d accounts..."):format(n));
			async.sleep(0);
		end
	end
	for username in client_store:items() do
		step(username);
	end
	for username in grant_store:items() do
		if client_store:get(username) == nil then
			step(username);
		end
	end
	return n;
end

local function run_async(job)
	return promise.new(function (resolve, reject)
		async.runner(function ()
			local ok, result, err = pcall(job);
			if not ok then
				reject(tostring(result));
			elseif result == nil then
				reject(err);
			else
				resolve(result);
			end
		end):run(true);
	end);
end

module:add_item("shell-command", {
	section = "clients";
	section_desc = "Clients of every account on a host (mod_client_management)";
	name = "stats";
	desc = "Clients on a host grouped by software and version: accounts, clients, last seen";
	args = { { name = "host"; type = "string" } };
	host_selector = "host";
	handler = function (self, _)
		local print = self.session.print;
		return run_async(function ()
			local stats = core.new_software_stats();
			local failed = 0;
			each_account(print, function (username)
				local state = load_account(username, "transient");
				if state then
					stats:add(state, current_facts(username));
				else
					failed = failed + 1;
				end
			end);
			local accounts, clients = stats:totals();
			local row = format_table({
				{ title = "Software", key = "software", width = "100%", default = "(unknown)" };
				{ title = "Version", key = "version", width = 12, default = "-" };
				{ title = "Accounts", key = "accounts", width = 9, align = "right" };
				{ title = "Clients", key = "clients", width = 8, align = "right" };
				{ title = "Last seen", key = "last_seen", width = 11, mapper = function (t) return format_time(t); end, default = "-" };
			}, self.session.width or 80);
			print(row());
			for _, item in ipairs(stats:rows()) do
				print(row(item));
			end
			if failed > 0 then
				print(("%d account(s) could not be read, see the log"):format(failed));
			end
			return ("%d client(s) on %d account(s)"):format(clients, accounts);
		end);
	end;
});

module:add_item("shell-command", {
	section = "clients";
	section_desc = "Clients of every account on a host (mod_client_management)";
	name = "revoke";
	desc = "Revoke every client of software/NAME[/VERSION] on every account of a host (--dry-run only reports)";
	args = { { name = "host"; type = "string" }, { name = "selector"; type = "string" } };
	host_selector = "host";
	flags = { kv_params = { dry_run = true } };
	handler = function (self, _, opts, selector)
		-- From the command line flags come before positional leftovers; interactively the
		-- caller passes (host, selector, { dry_run = true }).
		if type(opts) == "string" then opts, selector = selector, opts; end
		local dry_run = type(opts) == "table" and opts.dry_run;
		if type(selector) ~= "string" or core.selector_type(selector) ~= "software" then
			return nil, "Supply software/NAME or software/NAME/VERSION";
		end
		local print = self.session.print;
		return run_async(function ()
			local revoked, password, failed = 0, 0, 0;
			each_account(print, function (username)
				local state = load_account(username, "transient");
				if not state then
					failed = failed + 1;
					return;
				end
				local plan = core.plan_revocation(state, current_facts(username), selector);
				password = password + plan.password_protected;
				if dry_run or plan.revoked == 0 then
					revoked = revoked + plan.revoked;
					return;
				end
				local deferred = carry_out(username, plan.actions, nil);
				if deferred then
					revoked = revoked + plan.revoked;
				else
					failed = failed + plan.revoked;
				end
			end);
			if dry_run then
				return ("Dry run: %d client(s) would be revoked, %d need a password reset, %d failed"):format(
					revoked, password, failed);
			end
			return ("%d client(s) revoked, %d need a password reset, %d failed"):format(revoked, password, failed);
		end);
	end;
});
