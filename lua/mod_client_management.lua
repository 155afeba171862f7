-- mod_client_management: lets a user see, and cut off, everything that has access to their
-- account (chat apps, FAST tokens, OAuth grants).
--
-- This file is the only part that touches Prosody: hooks, storage, sessions, tokenauth,
-- FAST, stanzas, shell. It gathers facts, asks the native core (client_management.so) once
-- per request, and carries out the answer. The core makes every decision.

local st = require "prosody.util.stanza";
local errors = require "prosody.util.error";
local usermanager = require "prosody.core.usermanager";
local jid_split = require "prosody.util.jid".split;
local time_now = require "prosody.util.time".now;

-- Written by `make plugin` from Cargo.toml, the one place the version is kept.
local MODULE_VERSION = "@VERSION@";
local CORE_NAME = "client_management";

local xmlns_prosody = "xmpp:prosody.im/protocol/manage-clients";
local xmlns_cam = "urn:xmpp:cam:0";
local xmlns_sasl = "urn:ietf:params:xml:ns:xmpp-sasl";
local xmlns_sasl2 = "urn:xmpp:sasl:2";
local xmlns_commands = "http://jabber.org/protocol/commands";

local host = module.host;
local enforce_client_ids = module:get_option_boolean("enforce_client_ids", false);

-- The native core ----------------------------------------------------------------------------

local core, core_problem;

local function read_file(path)
	local f = io.open(path, "rb");
	if not f then return nil; end
	local data = f:read("a");
	f:close();
	return data;
end

-- A half-copied library would be mapped past its end and kill the server (SIGBUS): refuse a
-- file whose ELF header, program headers or section headers lie beyond its end.
local function elf_problem(data)
	if data:sub(1, 4) ~= "\127ELF" then return "not an ELF file"; end
	local class, order = data:byte(5), data:byte(6);
	if (class ~= 1 and class ~= 2) or (order ~= 1 and order ~= 2) then return "unknown ELF format"; end
	local e = order == 1 and "<" or ">";
	local word = class == 2 and "I8" or "I4";
	local header_size = class == 2 and 64 or 52;
	if #data < header_size then return "truncated ELF header"; end
	local at = class == 2 and 33 or 29;
	local phoff, shoff = string.unpack(e..word..word, data, at);
	local sizes = class == 2 and 55 or 43;
	local phentsize, phnum, shentsize, shnum = string.unpack(e.."I2I2I2I2", data, sizes);
	if phoff + phentsize * phnum > #data or shoff + shentsize * shnum > #data then
		return ("truncated: %d bytes, its headers need more"):format(#data);
	end
end

-- Beside this file first (`make plugin`, plugin_paths), then package.cpath, then the plugin
-- installer's tree, which Prosody 13.0.x never adds to package.cpath itself.
local function core_candidates()
	local candidates, seen = {}, {};
	local function add(path)
		if path and not seen[path] then seen[path] = true; table.insert(candidates, path); end
	end
	local here = module.path and module.path:match("^(.*)[/\\][^/\\]*$");
	add(here and here.."/"..CORE_NAME..".so");
	add(package.searchpath(CORE_NAME, package.cpath));
	local installer = prosody.paths and prosody.paths.installer;
	add(installer and installer.."/lib/lua/".._VERSION:match(" (.+)$").."/"..CORE_NAME..".so");
	return candidates;
end

-- Checks the file before any of its code runs, then loads it; returns the module table, or
-- nil and what is wrong with this file.
local function load_core_from(path)
	local data = read_file(path);
	if not data then return nil; end
	-- Named before anything is done with it, so that even a crash points at the file.
	module:log("info", "Loading native library %s", path);
	local problem = elf_problem(data);
	if problem then return nil, ("%s: %s"):format(path, problem); end
	local version, lua_version = data:match("client_management native core (%S+) for Lua (%d+%.%d+)\0");
	if not version then
		return nil, ("%s is not a mod_client_management library (no version marker)"):format(path);
	elseif lua_version ~= _VERSION:match(" (.+)$") then
		return nil, ("%s is built for Lua %s, Prosody runs %s"):format(path, lua_version, _VERSION);
	elseif version ~= MODULE_VERSION then
		return nil, ("%s is version %s, this module is version %s"):format(path, version, MODULE_VERSION);
	end
	local open, load_err = package.loadlib(path, "luaopen_"..CORE_NAME);
	if not open then return nil, ("%s: %s"):format(path, load_err); end
	local ok, lib = pcall(open);
	if not ok then return nil, ("%s: %s"):format(path, tostring(lib)); end
	if type(lib) ~= "table" or lib.version ~= MODULE_VERSION then
		return nil, ("%s reports version %s, this module is version %s"):format(path, type(lib) == "table" and tostring(lib.version), MODULE_VERSION);
	end
	return lib;
end

local function load_core()
	if _VERSION ~= "Lua 5.4" then
		return nil, ("the native library is built for Lua 5.4, Prosody runs %s"):format(_VERSION);
	end
	local problems = {};
	for _, path in ipairs(core_candidates()) do
		local lib, problem = load_core_from(path);
		if lib then return lib; end
		table.insert(problems, problem);
	end
	if #problems == 0 then
		return nil, "not found in "..table.concat(core_candidates(), ", ");
	end
	return nil, table.concat(problems, "; ");
end

-- Logins that must be refused (needs no native library) ---------------------------------------

local function sasl2_failure(text)
	return st.stanza("failure", { xmlns = xmlns_sasl2 })
		:tag("malformed-request", { xmlns = xmlns_sasl }):up()
		:text_tag("text", text);
end

-- Before mod_sasl2_fast (100) and mod_sasl2 (0) look at the request.
module:hook_tag(xmlns_sasl2, "authenticate", function (session, auth)
	local user_agent = auth:get_child("user-agent");
	local client_id = user_agent and user_agent.attr.id;
	local problem;
	if client_id and client_id ~= "" then
		problem = core and core.client_id_problem(client_id);
	elseif enforce_client_ids then
		problem = "Client identifier required but not supplied";
	end
	if problem then
		session.send(sasl2_failure(problem));
		return true;
	end
end, 1000);

if enforce_client_ids then
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
	if require "prosody.core.modulemanager".is_loaded(host, "saslauth") then
		warn_about_saslauth();
	end
	-- Prosody 13 fires this on the host's events: modules of a host load in no set order.
	module:hook("module-loaded", function (event)
		if event.module == "saslauth" then warn_about_saslauth(); end
	end);
end

module:default_permission("prosody:registered", ":list-clients");
module:default_permission("prosody:registered", ":manage-clients");

-- Shell commands, declared once: their handlers come below, or say why they cannot run.
local shell_commands = {
	{ section = "user", name = "clients", host_selector = "jid", args = { { name = "jid", type = "string" } },
		desc = "List the clients that have access to an account (IDs are shown in full for revoke_client)" };
	{ section = "user", name = "revoke_client", host_selector = "jid",
		args = { { name = "jid", type = "string" }, { name = "selector", type = "string" } },
		desc = "Revoke a client's access: client/ID, grant/ID, software/NAME or software/NAME/VERSION" };
	{ section = "clients", name = "stats", host_selector = "host", args = { { name = "host", type = "string" } },
		desc = "Clients on a host grouped by software and version: accounts, clients, last seen" };
	{ section = "clients", name = "revoke", host_selector = "host", flags = { kv_params = { dry_run = true } },
		args = { { name = "host", type = "string" }, { name = "selector", type = "string" } },
		desc = "Revoke every client of software/NAME[/VERSION] on every account of a host (--dry-run only reports)" };
	{ section = "clients", name = "prune", host_selector = "host", flags = { kv_params = { dry_run = true } },
		args = { { name = "host", type = "string" } },
		desc = "Delete client records past client_management_retention and over client_management_max_clients now (--dry-run only counts)" };
};

local function register_shell_commands(handlers)
	for _, command in ipairs(shell_commands) do
		command.handler = handlers[command.name];
		command.section_desc = command.section == "user" and "View user and account info"
			or "Clients of every account on a host (mod_client_management)";
		module:add_item("shell-command", command);
	end
end

core, core_problem = load_core();
if not core then
	module:log("error", "Cannot load the native library of mod_client_management %s (%s). The module runs"
		.." without it: list and revoke requests answer service-unavailable, nothing is recorded,"
		.." enforce_client_ids still holds. Install the client_management.so of this version beside"
		.." mod_client_management.lua (make plugin, or the rock of version %s).", MODULE_VERSION, core_problem, MODULE_VERSION);
	local function unavailable(event)
		event.origin.send(st.error_reply(event.stanza, "cancel", "service-unavailable", "Client management is unavailable"));
		return true;
	end
	for _, xmlns in ipairs({ xmlns_prosody, xmlns_cam }) do
		module:hook("iq-get/self/"..xmlns..":list", unavailable);
		module:hook("iq-set/self/"..xmlns..":revoke", unavailable);
	end
	function get_active_clients() return nil, "service-unavailable"; end
	function revoke_client_access() return nil, "service-unavailable"; end
	local why = function () return nil, "mod_client_management cannot load its native library: "..core_problem; end
	register_shell_commands(setmetatable({}, { __index = function () return why; end }));
	return;
end

-- Stores and options ---------------------------------------------------------------------------

local tokenauth = module:depends("tokenauth");
local mod_fast = module:depends("sasl2_fast");

local client_store = assert(module:open_store("clients", "keyval+"));
-- mod_tokenauth's and mod_sasl2_fast's stores, read whole once per account rather than once
-- per grant or client; the core judges them as those modules do.
local grant_store = assert(module:open_store("auth_tokens", "keyval+"));
local fast_token_store = assert(module:open_store("fast_tokens"));
-- Version 0.1.0 indexed legacy clients here; the records alone tell now. Pruning empties it.
local old_legacy_index = module:open_store("client_management_legacy");

-- Unset options take the core's defaults (Policy::default in rust/src/account/mod.rs).
local engine = core.new_engine({
	max_clients = module:get_option_integer("client_management_max_clients", nil, 1);
	retention = module:get_option_period("client_management_retention");
	store_full_jids = module:get_option_boolean("client_management_store_full_jids");
	store_device_names = module:get_option_boolean("client_management_store_device_names");
	notify_new_clients = module:get_option_boolean("client_management_notify_new_clients");
	notice_interval = module:get_option_period("client_management_notice_interval");
	requests_per_minute = module:get_option_integer("client_management_requests_per_minute", nil, 0);
	write_delay = module:get_option_period("client_management_write_delay");
	grant_cache_ttl = module:get_option_period("client_management_grant_cache_ttl");
	cache_size = module:get_option_integer("client_management_cache_size", nil, 1);
	tokenless_grant_ttl = module:get_option_period("tokenless_grant_ttl"); -- mod_tokenauth's
	store_remove = client_store.remove;
});

local stanza_mt = getmetatable(st.stanza("x"));

-- Accounts in memory -------------------------------------------------------------------------
-- The core's driver keeps them (recently used ones, and every one with work left); this file
-- carries out what it says (see `drive` below).

local function get_account(username)
	return engine:new_account(username);
end

-- For host-wide walks: an account not in memory is not made recent.
local function walk_account(username)
	return engine:walk_account(username);
end

local function role_priorities()
	local priorities = {};
	for name, role in pairs(usermanager.get_all_roles(host) or {}) do
		priorities[name] = role.priority;
	end
	return priorities;
end

local part_stores = { records = client_store, grants = grant_store, fast_tokens = fast_token_store };

local drive; -- below: hands the core's driver an event and carries out its answer

-- Reads what an account not held by the driver (a host-wide walk) lacks for `purpose`.
local function read_detached(username, account, purpose)
	local now = time_now();
	local failed;
	for _ = 1, 2 do -- a second round when what was read changes what is needed (a full account)
		for _, part in ipairs(account:missing(purpose, now)) do
			if not (failed and failed[part]) then
				local data, err = part_stores[part]:get(username);
				if err then
					module:log("error", "Unable to read %s of %s: %s", part, username, err);
					failed = failed or {};
					failed[part] = err;
				else
					local skipped = account:load(part, data, part == "grants" and role_priorities() or nil, now);
					if skipped > 0 then
						module:log("warn", "Skipped %d malformed stored item(s) in %s of %s", skipped, part, username);
					end
				end
			end
		end
	end
	return failed;
end

-- Reads what the account lacks for `purpose` ("login", "listing", "change"), as the core
-- says; returns nil, or a table of the parts that could not be read -> error; and whether the
-- core refuses the purpose for what failed (ARCHITECTURE.md, "The driver").
local function read_missing(username, account, purpose)
	if account:is_detached() then return read_detached(username, account, purpose); end
	local _, refused, failed = drive(username, { type = "prepare"; purpose = purpose });
	return failed, refused;
end

-- The SASL2 `<user-agent id>` a stream authenticated with, if it named one.
local function client_id_of(session)
	local id = session.client_id;
	if id ~= "" then return id; end
end

-- Streams that authenticated and have not bound a resource: Prosody lists them nowhere, yet
-- revocation and account deletion must reach them. Shared, so that a reload of the module
-- keeps them; weak, so that closed streams drop out.
local unbound_streams = module:shared("unbound_streams");
if not getmetatable(unbound_streams) then setmetatable(unbound_streams, { __mode = "k" }); end

-- How the core names a stream from one event to the next.
local function stream_key(session)
	return session.id or tostring(session);
end

-- What changes from one request to the next: the account's streams (bound, hibernating, or
-- authenticated and unbound), password change, role, clock. Returns the facts for the core
-- and the streams by the index the core names them with.
local function moment_of(username)
	local facts, streams = {}, {};
	local function add(session)
		local login = session.client_management;
		table.insert(streams, session);
		table.insert(facts, {
			key = stream_key(session);
			full_jid = session.full_jid;
			client_id = client_id_of(session);
			grant_id = login and login.grant_id;
		});
	end
	local user = prosody.hosts[host].sessions[username];
	for _, session in pairs(user and user.sessions or {}) do add(session); end
	for session in pairs(unbound_streams) do
		if session.username == username and session.host == host and not session.full_jid and not session.destroyed then
			add(session);
		end
	end
	local account = usermanager.get_account_info(username, host);
	local role = usermanager.get_user_role(username, host);
	return {
		sessions = facts;
		password_updated = account and account.password_updated;
		account_role_priority = role and role.priority;
		now = time_now();
	}, streams;
end

-- Carrying out what the core says ---------------------------------------------------------------

local function notify(streams, indices, text)
	for _, index in ipairs(indices) do
		local session = streams[index];
		if session and session.full_jid then
			session.send(st.message({ from = host, to = session.full_jid }):text_tag("body", text));
		end
	end
end

-- Hands the core one event of the account and carries out its answer: reads and writes (whose
-- results go back as the next event), timers, the new-client event, notices, log lines.
-- Returns whether every read and write worked, whether the core refused a prepared request,
-- and the parts that could not be read -> error. A revocation's `request` carries its plan out
-- (`request.carry_out(plan, streams)` → whether every step worked) and gets its answer
-- (`request.error`).
local needs_no_streams = { prepare = true; credentials = true; deleted = true };

function drive(username, event, request)
	local moment, streams;
	if needs_no_streams[event.type] then
		moment, streams = { now = time_now() }, {};
	else
		moment, streams = moment_of(username);
	end
	local actions, ok, refused, failed = engine:handle(username, event, moment), true, false, nil;
	while actions do
		local answer;
		for _, action in ipairs(actions) do
			local kind = action.type;
			if kind == "read" then
				local results, roles = {}, nil;
				for _, part in ipairs(action.parts) do
					local data, err = part_stores[part]:get(username);
					if part == "grants" then roles = role_priorities(); end
					if err then
						ok, failed = false, failed or {};
						failed[part] = err;
					end
					table.insert(results, { part = part; data = data; error = err and tostring(err) or nil });
				end
				answer = { type = "read"; results = results; roles = roles };
			elseif kind == "write" then
				local stored, err = client_store:set_keys(username, action.changes);
				ok = ok and not not stored;
				answer = { type = "written"; serial = action.serial; error = not stored and tostring(err) or nil };
			elseif kind == "timer" or kind == "notice_timer" then
				local due = kind == "timer" and "tick" or "notices_due";
				module:add_timer(action.after, function ()
					local done, err = pcall(drive, username, { type = due });
					if not done then module:log("error", "Unable to carry on for %s: %s", username, err); end
				end);
			elseif kind == "new_client" then
				local session;
				for _, stream in ipairs(streams) do
					if stream_key(stream) == action.stream then session = stream; end
				end
				module:fire_event("client_management/new-client", { client = action.client; session = session });
			elseif kind == "notify" then
				notify(streams, action.streams, action.text);
			elseif kind == "prepared" then
				refused = action.refused;
			elseif kind == "carry_out" then
				answer = { type = "carried_out"; complete = request.carry_out(action.plan, streams) };
			elseif kind == "answer" then
				request.error = action.error;
			elseif kind == "log" then
				module:log(action.level, "%s", action.message);
			end
		end
		actions = answer and engine:handle(username, answer, moment);
	end
	return ok, refused, failed;
end

local function store_all()
	for _, username in ipairs(engine:pending()) do drive(username, { type = "store" }); end
end
module:hook_global("server-stopping", store_all);
module.unload = store_all;

-- The account was deleted (Prosody fires this on the global bus, before it purges the
-- account's storage): nothing of it stays in memory and nothing is written for it again.
module:hook_global("user-deleted", function (event)
	if event.host ~= host then return; end
	local username = event.username;
	drive(username, { type = "deleted" });
	-- mod_c2s closes the bound streams; those that authenticated and never bound are ours.
	for session in pairs(unbound_streams) do
		if session.username == username and session.host == host and not session.destroyed then
			session:close({ condition = "not-authorized", text = "Account deleted" });
		end
	end
end);

-- Recording logins ----------------------------------------------------------------------------

-- What a login used, noted on the session as soon as SASL succeeds (before Bind 2 binds).
local function note_login(session, sasl_handler)
	local token_info = sasl_handler and sasl_handler.token_info;
	local grant = token_info and token_info.grant;
	local user_agent = sasl_handler and sasl_handler.user_agent or {};
	session.client_management = {
		mechanism = sasl_handler and sasl_handler.selected;
		fast = sasl_handler and (sasl_handler.fast_auth or sasl_handler.fast) and true or nil;
		grant_id = token_info and token_info.id;
		software = user_agent.software;
		device = user_agent.device;
		oauth_client = type(grant) == "table" and type(grant.data) == "table" and grant.data.oauth2_client or nil;
	};
	unbound_streams[session] = true;
end

-- Records the login of an authenticated session (again at bind, when it binds later).
local function record_session(session)
	local login = session.client_management;
	login.client_id = client_id_of(session);
	login.full_jid = session.full_jid;
	login.at = os.time();
	login.recorded = true;
	drive(session.username, { type = "login"; stream = stream_key(session); login = login });
end

local function record_safely(session)
	-- Never let bookkeeping break a login.
	local ok, err = pcall(record_session, session);
	if not ok then
		module:log("error", "Unable to record client of %s: %s", session.username, err);
	end
end

module:hook("sasl2/c2s/success", function (event)
	note_login(event.session, event.session.sasl_handler);
end, 500); -- after mod_sasl2 authenticates (1000), before Bind 2 binds (100)

module:hook("sasl2/c2s/success", function (event)
	if client_id_of(event.session) then
		record_safely(event.session);
	end
end, -1); -- after Bind 2 (100) and FAST (75), before <success> goes out (-1000)

-- Legacy SASL (mod_saslauth) leaves its handler on the session during this event; SASL2
-- fires it too, after the hooks above.
module:hook("authentication-success", function (event)
	if not event.session.client_management then
		note_login(event.session, event.session.sasl_handler);
	end
end);

module:hook("resource-bind", function (event)
	local session = event.session;
	unbound_streams[session] = nil;
	if session.type ~= "c2s" or not session.username then return; end
	local login = session.client_management;
	if client_id_of(session) then
		-- A SASL2 client binding after <success> (no Bind 2) gets its full JID now; with Bind 2
		-- the success hook above records it, bound.
		if login and login.recorded then record_safely(session); end
	else
		-- A legacy login. XEP-0078 and id-less logins have no note: record what there is.
		session.client_management = login or {};
		record_safely(session);
	end
end);

-- Grants: cached views go stale, and new ones may be announced. Nothing a grant holds makes
-- this fail (the core repairs and sanitises it); should anything else, it must not raise
-- into mod_tokenauth's create_grant: log it and go on.
for _, event_name in ipairs({ "token-grant-created", "token-grant-revoked", "token-revoked" }) do
	module:hook(event_name, function (event)
		local ok, err = pcall(function ()
			drive(event.username, { type = "credentials"; name = event_name });
			if event_name == "token-grant-created" and type(event.grant) == "table" then
				drive(event.username, { type = "grant_created"; grant = event.grant });
			end
		end);
		if not ok then
			module:log("error", "Unable to note %s %s of %s: %s", event_name, tostring(event.id), tostring(event.username), err);
		end
	end);
end

-- Revoking ------------------------------------------------------------------------------------

local function close_stream(session)
	session:close({ condition = "not-authorized", text = "Client access revoked" });
end

local function run_step(username, verb, target)
	local ok, result, err = pcall(function ()
		if verb == "revoke_fast_tokens" then
			return mod_fast.revoke_fast_tokens(username, target);
		end
		return tokenauth.revoke_grant(username, target);
	end);
	if not ok then return nil, result; end
	return result, err;
end

-- Carries out a plan: every step is tried (FAST tokens, grants, then streams), so a failure
-- leaves as little as possible behind, and the same request later finishes the job. The
-- requester's own stream is returned instead of closed, to hear the answer first. Returns
-- those streams and whether every step worked.
local function run_plan(username, plan, streams, requester)
	local later, report, complete = {}, {}, true;
	for _, action in ipairs(plan.actions) do
		local verb, target = action[1], action[2];
		if verb == "close_session" then
			local session = streams[target];
			if session and session == requester then
				table.insert(later, session);
			elseif session then
				close_stream(session);
			end
			table.insert(report, ("closed stream %s"):format(session and (session.full_jid or session.id) or "?"));
		else
			local ok, err = run_step(username, verb, target);
			complete = complete and not not ok;
			table.insert(report, ("%s %s: %s"):format(verb, target, ok and "done" or "FAILED ("..tostring(err)..")"));
		end
	end
	if not complete then
		module:log("error", "Revocation for %s is incomplete, the same request finishes it: %s", username, table.concat(report, "; "));
	end
	return later, complete;
end

-- A plan made outside the driver (ad-hoc, web, shell): carried out, then what it revoked is
-- stale.
local function carry_out(username, _, plan, streams, requester)
	local later, complete = run_plan(username, plan, streams, requester);
	drive(username, { type = "credentials"; name = "revoked" });
	return later, complete;
end

-- Returns true, or nil and an error name; plus the streams to close after answering. The core
-- reads, plans, and says which error wins.
local function revoke(username, selector, requester)
	local request = { later = {} };
	function request.carry_out(plan, streams)
		local later, complete = run_plan(username, plan, streams, requester);
		request.later = later;
		return complete;
	end
	drive(username, { type = "revoke"; selector = selector }, request);
	if request.error then return nil, request.error, request.later; end
	return true, nil, request.later;
end

-- Public API ---------------------------------------------------------------------------------

-- Entries in the community module's shape: `id` ("client/…" or "grant/…"), `type`
-- ("session" or "access"), `first_seen`, `last_seen`, `expires`, `user_agent`, the record's
-- other fields, and `active = { password, fast, grant, connected }`.
function get_active_clients(username)
	local account = get_account(username);
	local failed = read_missing(username, account, "listing");
	if failed then return nil, select(2, next(failed)); end
	return account:active_clients((moment_of(username)));
end

-- Returns true, or nil and one of "item-not-found", "password-reset-required",
-- "internal-server-error" (the community module's return shape).
function revoke_client_access(username, selector)
	local ok, err, later = revoke(username, selector, nil);
	for _, session in ipairs(later) do close_stream(session); end
	return ok, err;
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

-- Spends one of the stream's list and ad-hoc requests; returns nothing when the core's budget
-- allows it, else the text to answer with.
local function over_budget(origin)
	local budget = origin.client_management_budget;
	if not budget then
		budget = engine:new_budget(time_now());
		origin.client_management_budget = budget;
	end
	return budget:spend(time_now());
end

-- A list reply is written as the bytes the core serialises from the reply as it stands after
-- every other `stanzas/out` filter of the stream (XEP-0198's queue, CSI, any module's) has had
-- it and may have changed it: the same bytes Prosody's serialiser would make, without its
-- temporary strings (issue 16). The filter runs last and only for a reply marked here; anything
-- it cannot serialise itself, or a filter added after it, leaves the stanza to Prosody.
local add_filter = require "prosody.util.filters".add_filter;
local serialize_stanza = core.serialize_stanza;
local list_replies = setmetatable({}, { __mode = "k" });
local function write_list_reply(stanza, session)
	if not list_replies[stanza] then return stanza; end
	list_replies[stanza] = nil;
	local out_filters = session.filters["stanzas/out"];
	if out_filters[#out_filters] ~= write_list_reply then return stanza; end
	-- With XEP-0198 the bytes follow mod_smacks's copy (see serialize.rs), so a replay after
	-- resumption is byte-identical.
	local bytes = serialize_stanza(stanza, stanza_mt, session.smacks and true or false);
	if not bytes then return stanza; end
	session.log("debug", "List reply serialised by the core (%d bytes)", #bytes);
	return bytes;
end

local function send_list_reply(origin, reply)
	if origin.filters and origin.rawsend then -- a c2s stream (not a fake origin of the shell)
		add_filter(origin, "stanzas/out", write_list_reply, -math.huge); -- once per stream
		list_replies[reply] = true;
	end
	origin.send(reply);
	list_replies[reply] = nil; -- when a filter dropped or replaced it
end

-- Whether a reply sent on `origin` could be seen as a stanza by anyone: a c2s stream made by
-- Prosody's session manager whose `stanzas/out` filters are none (or only ours) writes a stanza
-- as tostring(stanza) and nothing else; then the reply is written as the core's XML and no Lua
-- tree is built at all (issue 16). XEP-0198, CSI while inactive, WebSocket and any module that
-- adds a filter get the util.stanza reply (send_list_reply), BOSH (no rawsend) too, and so does a
-- stream whose send function some module replaced.
local prosody_send = setmetatable({}, { __mode = "k" }); -- send function → made by sessionmanager
local function nobody_reads_stanzas(origin)
	local filters = origin.filters;
	if not (filters and origin.rawsend) then return false; end
	local out_filters = filters["stanzas/out"];
	if out_filters and out_filters[1] and not (out_filters[1] == write_list_reply and not out_filters[2]) then
		return false;
	end
	local send = origin.send;
	local made_by_prosody = prosody_send[send];
	if made_by_prosody == nil then
		local source = type(send) == "function" and debug.getinfo(send, "S").source or "";
		made_by_prosody = source:sub(-#"/core/sessionmanager.lua") == "/core/sessionmanager.lua";
		prosody_send[send] = made_by_prosody;
	end
	return made_by_prosody;
end

local function handle_list(event)
	local origin, stanza = event.origin, event.stanza;
	if not module:may(":list-clients", event) then
		origin.send(st.error_reply(stanza, "auth", "forbidden"));
		return true;
	end
	local refusal = over_budget(origin);
	if refusal then
		origin.send(st.error_reply(stanza, "wait", "resource-constraint", refusal));
		return true;
	end
	local username = origin.username;
	local account = get_account(username);
	local ok, clients = false, "storage unreadable";
	local reply = st.reply(stanza);
	local as_xml = nobody_reads_stanzas(origin);
	if not read_missing(username, account, "listing") then
		ok, clients = pcall(as_xml and account.list_xml or account.list_stanza, account, (moment_of(username)),
			stanza.tags[1].attr.xmlns, as_xml and reply:top_tag() or stanza_mt);
	end
	if not ok then
		module:log("error", "Unable to list clients of %s: %s", username, tostring(clients));
		origin.send(st.error_reply(stanza, "wait", "internal-server-error"));
		return true;
	end
	if as_xml then -- the whole reply, its start tag made by util.stanza
		origin.log("debug", "List reply written as the core's XML, no stanza filter on the stream (%d bytes)", #clients);
		origin.send(clients);
		return true;
	end
	reply:add_direct_child(clients); -- returns nothing in 13.0.x, so no chaining
	send_list_reply(origin, reply);
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
	local call_ok, ok, err, later = pcall(revoke, origin.username, selector, origin);
	if not call_ok then
		module:log("error", "Unable to revoke %s of %s: %s", selector, origin.username, tostring(ok));
		ok, err, later = nil, "internal-server-error", {};
	end
	if ok then
		origin.send(st.reply(stanza));
	else
		origin.send(st.error_reply(stanza, error_registries[request.attr.xmlns].new(err)));
	end
	-- The requester revoked its own stream: it hears the answer, then goes.
	for _, session in ipairs(later) do close_stream(session); end
	return true;
end

for _, xmlns in ipairs({ xmlns_prosody, xmlns_cam }) do
	module:hook("iq-get/self/"..xmlns..":list", handle_list);
	module:hook("iq-set/self/"..xmlns..":revoke", handle_revoke);
end

module:hook("account-disco-info", function (event)
	event.reply:tag("feature", { var = xmlns_cam }):up();
end);

-- Ad-hoc commands (XEP-0050) -------------------------------------------------------------------
-- On the account's own JID, and on the host's through mod_adhoc. Stateless: every step acts
-- for the requesting stream's own account, whatever session id it names.

local adhoc = module:require "adhoc";
local dataforms = require "prosody.util.dataforms";

local manage_node = xmlns_prosody.."#manage";
local sign_out_node = xmlns_prosody.."#sign-out-others";

local function forbidden()
	return { status = "error", error = { type = "auth", condition = "forbidden" } };
end

local function requesting_account(data, permission)
	local origin = data.origin;
	if origin.type ~= "c2s" or origin.host ~= host or not origin.username then return nil; end
	if not module:may(permission, { origin = origin, stanza = data.stanza }) then return nil; end
	return origin.username;
end

local manage_form = dataforms.new({
	title = "Manage clients";
	instructions = "These clients have access to your account. Pick those to cut off.";
	{ name = "FORM_TYPE", type = "hidden", value = manage_node };
	{ name = "revoke", type = "list-multi", label = "Revoke access of" };
});

local function unreadable()
	return { status = "completed", error = { message = "Your clients could not be read; try again later." } };
end

local function carry_out_for(data, account, plan, streams)
	local later, complete = carry_out(data.origin.username, account, plan, streams, data.origin);
	local report = complete and plan.report or plan.failure_report;
	-- The requester signed itself out: it hears the answer, then goes.
	if #later > 0 then module:add_timer(0, function () for _, s in ipairs(later) do close_stream(s); end end); end
	return { status = "completed", [report.level] = report.text };
end

-- What a command step asks for, as the core reads XEP-0050 (cancel, show the form, act on a
-- submitted form), or the answer that refuses it: not allowed, over the stream's budget, or a
-- malformed step.
local function command_step(data, permission)
	local step, malformed = core.adhoc_step(data.action, data.form and (data.form.attr.type or ""));
	if step == "cancel" then return step, { status = "canceled" }; end
	local username = requesting_account(data, permission);
	if not username then return step, forbidden(); end
	if malformed then
		return step, { status = "error", error = { type = "modify", condition = "bad-request", text = malformed,
			extra = step == "bad-action" and { namespace = xmlns_commands, condition = "bad-action" } or nil } };
	end
	local refusal = over_budget(data.origin);
	if refusal then
		return step, { status = "error", error = { type = "wait", condition = "resource-constraint", text = refusal } };
	end
	return step, nil, username;
end

local function manage_clients(_, data)
	local step, answer, username = command_step(data, ":list-clients");
	if answer then return answer; end
	local account = get_account(username);
	if step == "show-form" then
		if read_missing(username, account, "listing") then return unreadable(); end
		local options = account:client_options((moment_of(username)));
		return { status = "executing", actions = { "complete", default = "complete" },
			form = { layout = manage_form, values = { revoke = options } } };
	end
	if not requesting_account(data, ":manage-clients") then return forbidden(); end
	local fields = manage_form:data(data.form);
	local picked = {};
	for _, value in ipairs(type(fields.revoke) == "table" and fields.revoke or {}) do
		if type(value) == "string" and value ~= "" then table.insert(picked, value); end
	end
	if read_missing(username, account, "change") then return unreadable(); end
	local moment, streams = moment_of(username);
	return carry_out_for(data, account, account:plan_selection(picked, moment), streams);
end

local function sign_out_others(_, data)
	local step, answer, username = command_step(data, ":manage-clients");
	if answer then return answer; end
	local form = dataforms.new({
		title = "Sign out all other clients";
		instructions = "Every other client loses its access (apps that know your password can log in"
			.." again until you change it), and every other connection is closed.";
		{ name = "FORM_TYPE", type = "hidden", value = sign_out_node };
		{ name = "confirm", type = "boolean", label = "Sign out all other clients" };
	});
	local account = get_account(username);
	if read_missing(username, account, "change") then return unreadable(); end
	local moment, streams = moment_of(username);
	local me;
	for index, session in ipairs(streams) do
		if session == data.origin then me = index; end
	end
	local plan = account:plan_sign_out(moment, me or 0);
	if step == "show-form" then
		form[2].label = plan.question;
		return { status = "executing", actions = { "complete", default = "complete" }, form = form };
	end
	local fields = form:data(data.form);
	if fields.confirm ~= true then
		return { status = "completed", info = "Nothing was changed." };
	end
	return carry_out_for(data, account, plan, streams);
end

local commands = {
	adhoc.new("Manage clients", manage_node, manage_clients, "local_user");
	adhoc.new("Sign out all other clients", sign_out_node, sign_out_others, "local_user");
};

local function own_account(event)
	local origin, to = event.origin, event.stanza.attr.to;
	return origin.type == "c2s" and origin.host == host and (not to or jid_split(to) == origin.username);
end

for _, command in ipairs(commands) do
	module:provides("adhoc", command);
end

module:hook("account-disco-items-node", function (event)
	if event.node ~= xmlns_commands or not own_account(event) then return; end
	local jid = event.origin.username.."@"..host;
	for _, command in ipairs(commands) do
		event.reply:tag("item", { jid = jid, node = command.node, name = command.name }):up();
	end
	event.exists = true;
end);

module:hook("account-disco-info-node", function (event)
	if not own_account(event) then return; end
	for _, command in ipairs(commands) do
		if event.node == command.node then
			event.reply:tag("identity", { category = "automation", type = "command-node", name = command.name }):up();
			event.reply:tag("feature", { var = xmlns_commands }):up();
			event.reply:tag("feature", { var = "jabber:x:data" }):up();
			event.exists = true;
		end
	end
end);

module:hook("iq-set/self/"..xmlns_commands..":command", function (event)
	local node = event.stanza.tags[1].attr.node;
	for _, command in ipairs(commands) do
		if command.node == node then
			return adhoc.handle_cmd(command, event.origin, event.stanza);
		end
	end
	event.origin.send(st.error_reply(event.stanza, "cancel", "item-not-found", "No such command"));
	return true;
end);

-- Web self-service -----------------------------------------------------------------------------
-- Issue #17, §12: a page and a JSON API on the host's HTTP service (default path /clients),
-- off unless `client_management_web = true`. This section routes requests, checks passwords
-- (usermanager) and tokens (mod_tokenauth), and carries out the same revocation plans as XMPP;
-- the core (`core.new_web`) decides which requests go through and writes every answer: pages,
-- JSON bodies, headers, the cookie. A web session is a mod_tokenauth grant, so every list shows
-- it and every way of revoking a grant ends it.

if module:get_option_boolean("client_management_web", false) then
	module:depends("http");
	local http_util = require "prosody.util.http";
	local json = require "prosody.util.json";
	local nodeprep = require "prosody.util.encodings".stringprep.nodeprep;

	local APP, DEFAULT_PATH = "client_management", "/clients";
	local web_options = {
		idle_ttl = module:get_option_period("client_management_web_session_ttl", "1 hour");
		max_ttl = module:get_option_period("client_management_web_session_max_ttl", "12 hours");
		password_change_url = module:get_option_string("client_management_web_password_url");
		login_attempts = module:get_option_integer("client_management_web_login_attempts", 5, 1);
		login_attempts_per_ip = module:get_option_integer("client_management_web_login_attempts_per_ip", 20, 1);
		login_window = module:get_option_period("client_management_web_login_window", "15 minutes");
	};

	-- Made at the first request: the page's path comes from mod_http (http_paths,
	-- http_external_url), which knows it once the HTTP service runs.
	local web;
	local function get_web()
		if not web then
			local base_url = module:http_url(APP, DEFAULT_PATH);
			web_options.path = base_url:match("^%a+://[^/]*(/.-)/?$") or DEFAULT_PATH;
			web = core.new_web(web_options);
		end
		return web;
	end

	-- The page's own origins, for the Origin check of POSTs: the external URL and the Host the
	-- browser asked for (over HTTPS: a plain request never gets this far).
	local function own_origins(request)
		local origins = { module:http_url(APP, DEFAULT_PATH) };
		local host_header = request.headers.host;
		if type(host_header) == "string" then table.insert(origins, "https://"..host_header); end
		return origins;
	end

	local function user_jid(username) return username.."@"..host; end

	-- The web session a request's cookie names: token, token info, username, grant id, CSRF
	-- token; or nil (none, expired, revoked, another host's, not a web session's token).
	local function web_session(request)
		local token = get_web():token_from_cookies(request.headers.cookie);
		if not token then return nil, false; end
		local info = tokenauth.get_token_info(token);
		if type(info) ~= "table" or info.purpose ~= "client_management_web" or type(info.grant) ~= "table" then
			return nil, true;
		end
		local username, token_host = jid_split(info.jid);
		local data = info.grant.data;
		local web_data = type(data) == "table" and data.client_management_web;
		local csrf = type(web_data) == "table" and web_data.csrf;
		if token_host ~= host or not username or type(csrf) ~= "string" then return nil, true; end
		return { token = token, info = info, username = username, grant_id = info.id, csrf = csrf };
	end

	-- An active session's token is replaced now and then, so that it ends after the idle time.
	local function renew(session, response)
		local info = session.info;
		if type(info.created) ~= "number" or not get_web():renewal_due(info.created, os.time()) then return; end
		local _, idle_ttl = get_web():session_lifetimes();
		local token = tokenauth.create_token(user_jid(session.username), session.grant_id, nil, idle_ttl, "client_management_web");
		if token then response.headers.set_cookie = get_web():session_cookie(token); end
	end

	local function page_context(session, notice)
		return { account = user_jid(session.username), csrf = session.csrf, grant_id = session.grant_id, notice = notice };
	end

	-- Reads what the account's state lacks; returns the account, or nil when storage failed.
	local function readable_account(username, purpose)
		local account = get_account(username);
		if read_missing(username, account, purpose) then return nil; end
		return account;
	end

	local function query_value(request, name)
		local query = request.url and request.url.query;
		local values = query and http_util.formdecode(query);
		local value = type(values) == "table" and values[name];
		return type(value) == "string" and value or nil;
	end

	-- GET pages of a logged-in session: `render(w, session, account)` → response.
	local function logged_in_page(purpose, render)
		return function (event)
			local request, w = event.request, get_web();
			if not request.secure then return w:refusal("insecure"); end
			local session, stale = web_session(request);
			if not session then
				local response = w:login_page(false, stale and "session-ended" or query_value(request, "done"));
				if stale then response.headers.set_cookie = w:cleared_cookie(); end
				return response;
			end
			local account = readable_account(session.username, purpose);
			if not account then return w:refusal("unavailable"); end
			local response = render(w, session, account, request);
			renew(session, response);
			return response;
		end;
	end

	-- POSTs of a logged-in session: HTTPS, session, Origin, CSRF token, size; then
	-- `act(w, session, form)` → response.
	local function logged_in_post(act)
		return function (event)
			local request, w = event.request, get_web();
			if not request.secure then return w:refusal("insecure"); end
			local body = request.body or "";
			local session, stale = web_session(request);
			-- No cookie at all (e.g. a POST from another site, which gets none): back to the
			-- page; only a cookie that names no session any more is cleared.
			if not session then return stale and w:redirect("session-ended", w:cleared_cookie()) or w:redirect(); end
			local form = #body <= w:max_body() and http_util.formdecode(body) or nil;
			local csrf = type(form) == "table" and form.csrf or nil;
			local refused, page = w:check_post(request.headers, own_origins(request), session.csrf,
				type(csrf) == "string" and csrf or nil, #body);
			if refused then
				module:log("warn", "Refused a web request of %s from %s: %s", session.username, request.ip or "?", refused);
				return page;
			end
			return act(w, session, type(form) == "table" and form or {});
		end;
	end

	local function login(event)
		local request, w = event.request, get_web();
		if not request.secure then return w:refusal("insecure"); end
		local body = request.body or "";
		local refused, page = w:check_post(request.headers, own_origins(request), nil, nil, #body);
		if refused then
			module:log("warn", "Refused a web login from %s: %s", request.ip or "?", refused);
			return page;
		end
		local form = http_util.formdecode(body);
		form = type(form) == "table" and form or {};
		local given = type(form.username) == "string" and form.username or "";
		local password = type(form.password) == "string" and form.password or "";
		local node, node_host = given, host;
		if given:find("@", 1, true) then node, node_host = jid_split(given); end
		local username = node and nodeprep(node) or nil;
		local ip, now = request.ip or "?", time_now();
		local key = username or given:sub(1, 256);
		local shown = ("%q"):format(given:sub(1, 64));
		if not w:login_allowed(ip, key, now) then
			module:log("warn", "Web login as %s from %s refused: too many failed attempts", shown, ip);
			return w:login_page(true, nil, 429);
		end
		local ok = username and username ~= "" and node_host == host
			and usermanager.test_password(username, host, password)
			and usermanager.user_is_enabled(username, host)
			and module:may(":list-clients", user_jid(username));
		if not ok then
			w:login_failed(ip, key, now);
			module:log("info", "Web login failed: authentication as %s from %s failed", shown, ip);
			return w:login_page(true, nil, 403);
		end
		w:login_succeeded(key);
		local new = w:new_session(request.headers.user_agent);
		local max_ttl, idle_ttl = w:session_lifetimes();
		local jid = user_jid(username);
		local grant, err = tokenauth.create_grant(jid, jid, max_ttl, {
			oauth2_client = { name = new.name, device = new.browser };
			client_management_web = { csrf = new.csrf };
		});
		local token;
		if grant then token, err = tokenauth.create_token(jid, grant.id, nil, idle_ttl, new.purpose); end
		if not token then
			module:log("error", "Unable to start a web session for %s: %s", jid, tostring(err));
			return w:refusal("unavailable");
		end
		module:log("info", "Web login of %s from %s (%s)", jid, ip, new.browser);
		return w:redirect(nil, w:session_cookie(token));
	end

	-- Sign out every other client, sparing the requester's grant; returns the plan and whether
	-- every step worked, or nil when storage failed.
	local function sign_out_others_of(w, username, grant_id)
		local account = readable_account(username, "change");
		if not account then return nil; end
		local moment, streams = moment_of(username);
		local plan = w:sign_out_plan(account, moment, grant_id);
		local later, complete = carry_out(username, account, plan, streams, nil);
		for _, session in ipairs(later) do close_stream(session); end
		return plan, complete;
	end

	-- The JSON API: `Authorization: Bearer` with any mod_tokenauth token of this host; its grant
	-- is the requester. `act(w, caller, request)` → response.
	local function api(permission, act)
		return function (event)
			local request, w = event.request, get_web();
			if not request.secure then return w:api_error("https-required"); end
			local token = w:bearer_token(request.headers.authorization);
			local info = token and tokenauth.get_token_info(token);
			local username, token_host = jid_split(type(info) == "table" and info.jid or nil);
			if not username or token_host ~= host then return w:api_error("not-authorized"); end
			local role;
			if info.role then
				role = usermanager.get_role_by_name(info.role, host);
				if role and not usermanager.user_can_assume_role(username, host, role.name) then role = nil; end
			else
				role = usermanager.get_user_role(username, host);
			end
			if not (role and role:may(module.name..permission)) then return w:api_error("forbidden"); end
			return act(w, { username = username, grant_id = info.id }, request);
		end;
	end

	local function api_body(w, request)
		local body = request.body or "";
		if #body > w:max_body() then return nil, w:api_error("payload-too-large"); end
		local data = json.decode(body);
		if type(data) ~= "table" or type(data.id) ~= "string" or data.id == "" then
			return nil, w:api_error("bad-request");
		end
		return data;
	end

	module:provides("http", {
		name = APP;
		default_path = DEFAULT_PATH;
		cors = { enabled = false };
		route = {
			["GET"] = logged_in_page("listing", function (w, session, account, request)
				local notice = query_value(request, "done");
				return w:page(account, (moment_of(session.username)), page_context(session, notice));
			end);
			["GET /"] = function () return get_web():redirect(nil, nil); end;
			["POST /login"] = login;
			["GET /revoke"] = logged_in_page("listing", function (w, session, account, request)
				return w:revoke_page(account, (moment_of(session.username)), page_context(session), query_value(request, "id") or "");
			end);
			["POST /revoke"] = logged_in_post(function (w, session, form)
				if not module:may(":manage-clients", user_jid(session.username)) then return w:redirect("failed"); end
				local id = type(form.id) == "string" and form.id or "";
				local ok, err = revoke_client_access(session.username, id);
				return w:redirect(w:notice_after_revoke(not ok and err or nil));
			end);
			["GET /sign-out-others"] = logged_in_page("change", function (w, session, account)
				return w:sign_out_page(account, (moment_of(session.username)), page_context(session));
			end);
			["POST /sign-out-others"] = logged_in_post(function (w, session)
				if not module:may(":manage-clients", user_jid(session.username)) then return w:redirect("failed"); end
				local plan, complete = sign_out_others_of(w, session.username, session.grant_id);
				return w:redirect(plan and complete and "signed-out" or "sign-out-incomplete");
			end);
			["POST /logout"] = logged_in_post(function (w, session)
				local ok, err = tokenauth.revoke_grant(session.username, session.grant_id);
				if not ok then
					module:log("error", "Unable to end the web session of %s: %s", session.username, tostring(err));
					return w:refusal("unavailable");
				end
				return w:redirect("logged-out", w:cleared_cookie());
			end);
			["GET /api/clients"] = api(":list-clients", function (w, caller)
				local account = readable_account(caller.username, "listing");
				if not account then return w:api_error("service-unavailable"); end
				return w:api_clients(account, (moment_of(caller.username)), caller.grant_id);
			end);
			["POST /api/revoke"] = api(":manage-clients", function (w, caller, request)
				local data, problem = api_body(w, request);
				if not data then return problem; end
				local ok, err = revoke_client_access(caller.username, data.id);
				if not ok then return w:api_revocation_error(err); end
				return w:api_revoked(data.id);
			end);
			["POST /api/sign-out-others"] = api(":manage-clients", function (w, caller)
				local plan, complete = sign_out_others_of(w, caller.username, caller.grant_id);
				if not plan then return w:api_error("service-unavailable"); end
				if not complete then return w:api_error("internal-server-error"); end
				return w:api_signed_out(plan.revoked, plan.password_protected, plan.closed);
			end);
		};
	});
end

-- Shell ----------------------------------------------------------------------------------------
-- Works both as `prosodyctl shell user clients JID` and interactively as `user:clients(JID)`.

local async = require "prosody.util.async";
local promise = require "prosody.util.promise";
local format_table = require "prosody.util.human.io".table;

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

-- From the command line, one print for the whole text (each print is a message over the admin
-- socket); the interactive console prefixes each print, so it gets lines.
local function print_lines(session, lines)
	if session.repl then
		for _, line in ipairs(lines) do session.print(line); end
	elseif #lines > 0 then
		session.print(table.concat(lines, "\n"));
	end
end

local revoke_error_text = error_registries[xmlns_prosody].registry;

-- Host-wide commands walk the accounts through the storage API, yielding between batches so
-- that the server keeps serving.
local BATCH = 50;
local PROGRESS_EVERY = 500;

-- Calls `visit(username)` for each account with stored clients and, with `with_grants`, each
-- account that only has grants; returns how many were visited.
local function each_account(print, visit, with_grants)
	local n = 0;
	local function step(username)
		n = n + 1;
		visit(username);
		if n % PROGRESS_EVERY == 0 then print(("Processed %d accounts..."):format(n)); end
		if n % BATCH == 0 then async.sleep(0); end
	end
	for username in client_store:items() do step(username); end
	if with_grants then
		for username in grant_store:items() do
			if client_store:get(username) == nil then step(username); end
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

-- Retention, the record limit and the privacy options over every account of the host.
local function prune_host(print, dry_run)
	local deleted, accounts, failed = 0, 0, 0;
	each_account(print, function (username)
		local account = walk_account(username);
		local outcome;
		if not read_missing(username, account, "change") then
			outcome = account:prune((moment_of(username)), dry_run);
		end
		if not outcome then
			failed = failed + 1;
			return;
		end
		if outcome.deleted > 0 then
			deleted, accounts = deleted + outcome.deleted, accounts + 1;
		end
		if not dry_run and account:has_pending_writes() then
			if not drive(username, { type = "store" }) then failed = failed + 1; end
		end
	end);
	if not dry_run and old_legacy_index then
		local users = {};
		for username in old_legacy_index:users() do table.insert(users, username); end
		for _, username in ipairs(users) do old_legacy_index:set(username, nil); end
	end
	return deleted, accounts, failed;
end

module:daily("Prune client records", function ()
	local deleted, accounts, failed = prune_host(function () end, false);
	module:log("info", "Pruned %d client record(s) from %d account(s), %d account(s) failed", deleted, accounts, failed);
end);

local function dry_run_of(opts, selector)
	-- From the command line flags come before positional leftovers; interactively the caller
	-- passes (host, selector, { dry_run = true }).
	if type(opts) ~= "table" then opts, selector = selector, opts; end
	return type(opts) == "table" and opts.dry_run and true or false, selector;
end

register_shell_commands({
	clients = function (self, user_jid)
		local username, err = account_of(user_jid);
		if not username then return nil, err; end
		local account = get_account(username);
		if read_missing(username, account, "listing") then
			return nil, "Unable to read client data, see the log";
		end
		local lines, count = account:client_listing((moment_of(username)), self.session.width or 80);
		if count == 0 then
			return true, "No clients associated with this account";
		end
		print_lines(self.session, lines);
		return true, ("%d client(s)"):format(count);
	end;

	revoke_client = function (_, user_jid, selector)
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

	stats = function (self)
		local print = self.session.print;
		return run_async(function ()
			local stats = core.new_software_stats();
			local failed = 0;
			each_account(print, function (username)
				local account = walk_account(username);
				if read_missing(username, account, "listing") then
					failed = failed + 1;
				else
					stats:add(account, (moment_of(username)));
				end
			end, true);
			local accounts, clients = stats:totals();
			local row = format_table({
				{ title = "Software", key = "software", width = "100%", default = "(unknown)" };
				{ title = "Version", key = "version", width = 12, default = "-" };
				{ title = "Accounts", key = "accounts", width = 9, align = "right" };
				{ title = "Clients", key = "clients", width = 8, align = "right" };
				{ title = "Last seen", key = "last_seen", width = 11, default = "-" };
			}, self.session.width or 80);
			print(row());
			for _, item in ipairs(stats:rows()) do print(row(item)); end
			if failed > 0 then
				print(("%d account(s) could not be read, see the log"):format(failed));
			end
			return ("%d client(s) on %d account(s)"):format(clients, accounts);
		end);
	end;

	revoke = function (self, _, opts, selector)
		local dry_run;
		dry_run, selector = dry_run_of(opts, selector);
		if type(selector) ~= "string" or core.selector_kind(selector) ~= "software" then
			return nil, "Supply software/NAME or software/NAME/VERSION";
		end
		local print = self.session.print;
		return run_async(function ()
			local revoked, password, failed = 0, 0, 0;
			each_account(print, function (username)
				local account = walk_account(username);
				local unread = read_missing(username, account, "change");
				if unread then
					failed = failed + 1;
					return;
				end
				local moment, streams = moment_of(username);
				local plan = account:plan_revocation(selector, moment);
				password = password + plan.password_protected;
				if dry_run or plan.revoked == 0 then
					revoked = revoked + plan.revoked;
					return;
				end
				local later, complete = carry_out(username, account, plan, streams, nil);
				for _, session in ipairs(later) do close_stream(session); end
				if complete then
					revoked = revoked + plan.revoked;
				else
					failed = failed + plan.revoked;
				end
			end, true);
			return ("%s%d client(s) %s, %d need a password reset, %d failed"):format(dry_run and "Dry run: " or "",
				revoked, dry_run and "would be revoked" or "revoked", password, failed);
		end);
	end;

	prune = function (self, _, opts)
		local dry_run = dry_run_of(opts);
		return run_async(function ()
			local deleted, accounts, failed = prune_host(self.session.print, dry_run);
			return ("%s%d client record(s) %s from %d account(s), %d account(s) failed"):format(
				dry_run and "Dry run: " or "", deleted, dry_run and "would be deleted" or "deleted", accounts, failed);
		end);
	end;
});
