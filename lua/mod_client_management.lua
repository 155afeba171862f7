-- mod_client_management: lets a user see, and cut off, everything that has access to their
-- account (chat apps, FAST tokens, OAuth grants).
--
-- This file and its libraries are the only part that touches Prosody: hooks, storage,
-- sessions, tokenauth, FAST, stanzas, shell. They gather facts, ask the native core
-- (client_management.so) once per request, and carry out the answer. The core makes every
-- decision and writes every word people read. The libraries (module:require, shipped beside
-- this file): client_management_loader (the native library, and degraded mode without it),
-- client_management_adhoc (XEP-0050 commands), client_management_web (the web page and API),
-- client_management_shell (prosodyctl shell commands, the daily prune).

local st = require "prosody.util.stanza";
local usermanager = require "prosody.core.usermanager";
local config = require "prosody.core.configmanager";
local time_now = require "prosody.util.time".now;
local add_filter = require "prosody.util.filters".add_filter;

-- Written by `make plugin` from Cargo.toml, the one place the version is kept.
local MODULE_VERSION = "@VERSION@";

local xmlns_prosody = "xmpp:prosody.im/protocol/manage-clients";
local xmlns_cam = "urn:xmpp:cam:0";
local xmlns_sasl = "urn:ietf:params:xml:ns:xmpp-sasl";
local xmlns_sasl2 = "urn:xmpp:sasl:2";

local host = module.host;
local enforce_client_ids = module:get_option_boolean("enforce_client_ids", false);

local loader = module:require "client_management_loader";
local core, core_problem = loader.load(MODULE_VERSION);

local NO_CLIENT_ID = "Client identifier required but not supplied";

local function sasl2_failure(text)
	return st.stanza("failure", { xmlns = xmlns_sasl2 })
		:tag("malformed-request", { xmlns = xmlns_sasl }):up()
		:text_tag("text", text);
end

-- Logins that must be refused: hooked with or without the native library (words of their own,
-- so that these refusals hold even when it did not load).
local function hook_login_refusals()
	-- Before mod_sasl2_fast (100) and mod_sasl2 (0) look at the request.
	module:hook_tag(xmlns_sasl2, "authenticate", function (session, auth)
		local user_agent = auth:get_child("user-agent");
		local client_id = user_agent and user_agent.attr.id;
		local problem;
		if client_id and client_id ~= "" then
			problem = core and core.client_id_problem(client_id);
		elseif enforce_client_ids then
			problem = NO_CLIENT_ID;
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
				:text_tag("text", NO_CLIENT_ID));
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
end

module:default_permission("prosody:registered", ":list-clients");
module:default_permission("prosody:registered", ":manage-clients");

-- Without the native library only the refusals above, and answers saying the service is
-- unavailable (see client_management_loader).
if not core then
	hook_login_refusals();
	loader.degrade(MODULE_VERSION, core_problem);
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

local function role_priorities()
	local priorities = {};
	for name, role in pairs(usermanager.get_all_roles(host) or {}) do
		priorities[name] = role.priority;
	end
	return priorities;
end

local part_stores = { records = client_store, grants = grant_store, fast_tokens = fast_token_store };

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
-- Returns whether every read and write worked, and the parts that could not be read -> error.
-- A request's `request` carries a plan out (`request.carry_out(plan, streams)` → whether every
-- step worked) and gets its answer: `request.error`, a list's `<clients>` (`request.clients`, or
-- as the serialised string `request.xml` when the event asked for XML), a question's reply
-- (`request.reply`).
local needs_no_streams = { credentials = true; deleted = true };

local function drive(username, event, request)
	local moment, streams;
	if needs_no_streams[event.type] then
		moment, streams = { now = time_now() }, {};
	else
		moment, streams = moment_of(username);
	end
	local actions, ok, failed = engine:handle(username, event, moment), true, nil;
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
			elseif kind == "reply" then
				request.reply = action;
			elseif kind == "carry_out" then
				answer = { type = "carried_out"; complete = request.carry_out(action.plan, streams) };
			elseif kind == "listing" then
				request.clients, request.xml = action.clients, action.xml;
			elseif kind == "answer" then
				request.error = action.error;
			elseif kind == "log" then
				module:log(action.level, "%s", action.message);
			end
		end
		actions = answer and engine:handle(username, answer, moment);
	end
	return ok, failed;
end

-- On unload and server stop: one account that fails must not keep the others from being stored.
local function store_all()
	for _, username in ipairs(engine:pending()) do
		local ok, err = pcall(drive, username, { type = "store" });
		if not ok then module:log("error", "Unable to store the clients of %s: %s", username, err); end
	end
end

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

-- Revoking ------------------------------------------------------------------------------------

local function close_stream(session)
	session:close(core.stream_closed("revoked"));
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

-- A request of the account's: carries out the plan the core hands it, if it does (the
-- requester's own stream is not closed but listed in `request.later`, to hear the answer first;
-- `consider(plan)` may decline to carry it out), and gets its answer (see `drive`).
local function new_request(username, requester, consider)
	local request = { later = {} };
	function request.carry_out(plan, streams)
		request.plan = plan;
		if consider and not consider(plan) then return true; end
		request.later, request.complete = run_plan(username, plan, streams, requester);
		return request.complete;
	end
	return request;
end

-- Returns true, or nil and an error name; plus the streams to close after answering. The core
-- reads, plans, and says which error wins.
local function revoke(username, selector, requester)
	local request = new_request(username, requester);
	drive(username, { type = "revoke"; selector = selector }, request);
	if request.error then return nil, request.error, request.later; end
	return true, nil, request.later;
end

-- One question of an ad-hoc, shell or web request (`question`: its name and fields, see
-- lua/driver.rs): the core reads, answers (`request.reply`) or refuses (`request.error`), and
-- hands out a plan to carry out. Also `request.ok` (every read and write worked) and
-- `request.failed` (parts that could not be read -> error).
local function ask(username, question, requester, consider)
	local request = new_request(username, requester, consider);
	question.type = "ask";
	request.ok, request.failed = drive(username, question, request);
	return request;
end

-- XMPP protocol ------------------------------------------------------------------------------

-- Spends one of the stream's list and ad-hoc requests; returns nothing when the core's budget
-- allows it, else the error to answer with.
local function over_budget(origin)
	local budget = origin.client_management_budget;
	if not budget then
		budget = engine:new_budget(time_now());
		origin.client_management_budget = budget;
	end
	return budget:spend(time_now());
end

-- The error refusing a requester who lacks `permission`, if it does.
local function forbidden_unless(permission, event)
	if not module:may(permission, event) then return core.error("forbidden"); end
end

-- A list reply is written as the bytes the core serialises from the reply as it stands after
-- every other `stanzas/out` filter of the stream (XEP-0198's queue, CSI, any module's) has had
-- it and may have changed it: the same bytes Prosody's serialiser would make, without its
-- temporary strings (issue 16). The filter runs last and only for a reply marked here; anything
-- it cannot serialise itself, or a filter added after it, leaves the stanza to Prosody.
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

-- The whole no-tree reply: util.stanza's start tag, the core's `<clients>` (the same Lua string
-- for as long as the core's cached listing stands), `</iq>`. Joined into one string: written
-- separately they would be joined all the same (net.server's write buffer collapses its chunks
-- into one string to send it), after three writes instead of one.
--
-- Under the incremental collector (Prosody's default) every byte allocated is charged with
-- collector work over the whole heap, and a big reply string, which holds no references and
-- costs nothing to mark, would pay several milliseconds of steps (issue 16: 570 KiB at 2000
-- clients). It is joined with the collector held, as the core holds it while it builds a big
-- reply tree; the string is freed by the next cycle like any other. Not under the generational
-- collector: restarting it forces a young collection, which costs more than the join.
local BIG_REPLY = 64 * 1024;
local function list_reply_xml(top_tag, clients)
	if #clients < BIG_REPLY or not collectgarbage("isrunning") then
		return top_tag..clients.."</iq>";
	end
	local gc = config.get("*", "gc");
	if type(gc) == "table" and gc.mode == "generational" then
		return top_tag..clients.."</iq>";
	end
	collectgarbage("stop");
	local ok, xml = pcall(function () return top_tag..clients.."</iq>"; end);
	collectgarbage("restart");
	if not ok then error(xml, 0); end
	return xml;
end

local function handle_list(event)
	local origin, stanza = event.origin, event.stanza;
	local refusal = forbidden_unless(":list-clients", event) or over_budget(origin);
	if refusal then
		origin.send(st.error_reply(stanza, refusal));
		return true;
	end
	local username, request, xmlns = origin.username, {}, stanza.tags[1].attr.xmlns;
	local as_xml = nobody_reads_stanzas(origin);
	local ok, err = pcall(drive, username, { type = "list"; xmlns = xmlns; xml = as_xml }, request);
	if ok and as_xml and not nobody_reads_stanzas(origin) then
		-- A handler of an event the list fired (a login recorded late) gave the stream a filter:
		-- it gets a stanza after all.
		as_xml, request = false, {};
		ok, err = pcall(drive, username, { type = "list"; xmlns = xmlns }, request);
	end
	local clients = ok and (request.xml or request.clients);
	if not clients then
		module:log("error", "Unable to list clients of %s: %s", username, tostring(ok and request.error or err));
		origin.send(st.error_reply(stanza, core.error("list-failed")));
		return true;
	end
	local reply = st.reply(stanza);
	if as_xml then -- the whole reply: its start tag made by util.stanza, the core's <clients>
		local xml = list_reply_xml(reply:top_tag(), clients);
		origin.log("debug", "List reply written as the core's XML, no stanza filter on the stream (%d bytes)", #xml);
		origin.send(xml);
		return true;
	end
	reply:add_direct_child(clients:stanza(stanza_mt)); -- returns nothing in 13.0.x, so no chaining
	send_list_reply(origin, reply);
	return true;
end

local function handle_revoke(event)
	local origin, stanza = event.origin, event.stanza;
	local request = stanza.tags[1];
	local selector = request.attr.id;
	local refusal = forbidden_unless(":manage-clients", event) or core.unnamed_client(selector);
	if refusal then
		origin.send(st.error_reply(stanza, refusal));
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
		origin.send(st.error_reply(stanza, core.error(err, request.attr.xmlns)));
	end
	-- The requester revoked its own stream: it hears the answer, then goes.
	for _, session in ipairs(later) do close_stream(session); end
	return true;
end

-- Public API ---------------------------------------------------------------------------------

-- Entries in the community module's shape: `id` ("client/…" or "grant/…"), `type`
-- ("session" or "access"), `first_seen`, `last_seen`, `expires`, `user_agent`, the record's
-- other fields, and `active = { password, fast, grant, connected }`.
function get_active_clients(username)
	local request = ask(username, { question = "active_clients" });
	if not request.reply then return nil, request.failed and select(2, next(request.failed)) or request.error; end
	return request.reply.clients;
end

-- Returns true, or nil and one of "item-not-found", "password-reset-required",
-- "internal-server-error" (the community module's return shape).
function revoke_client_access(username, selector)
	local ok, err, later = revoke(username, selector, nil);
	for _, session in ipairs(later) do close_stream(session); end
	return ok, err;
end

-- Ad-hoc commands (XEP-0050), web self-service, shell ---------------------------------------

module:require "client_management_adhoc" {
	core = core; over_budget = over_budget; ask = ask; stream_key = stream_key; close_stream = close_stream;
};

if module:get_option_boolean("client_management_web", false) then
	module:require "client_management_web" {
		core = core; tokenauth = tokenauth; ask = ask; close_stream = close_stream;
	};
end

module:require "client_management_shell" {
	core = core; ask = ask; close_stream = close_stream;
	client_store = client_store; grant_store = grant_store;
	old_legacy_index = old_legacy_index;
};

-- Hooks ----------------------------------------------------------------------------------------

hook_login_refusals();

module:hook_global("server-stopping", store_all);
module.unload = store_all;

-- The account was deleted (Prosody fires this on the global bus, before it purges the
-- account's storage): nothing of it stays in memory and nothing is written for it again.
module:hook_global("user-deleted", function (event)
	if event.host ~= host then return; end
	local username = event.username;
	-- Prosody purges the account's storage after this event: nothing here may raise into it.
	local ok, err = pcall(drive, username, { type = "deleted" });
	if not ok then module:log("error", "Unable to forget deleted account %s: %s", username, err); end
	-- mod_c2s closes the bound streams; those that authenticated and never bound are ours.
	for session in pairs(unbound_streams) do
		if session.username == username and session.host == host and not session.destroyed then
			local closed, close_err = pcall(session.close, session, core.stream_closed("deleted"));
			if not closed then module:log("error", "Unable to close a stream of deleted account %s: %s", username, close_err); end
		end
	end
end);

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

for _, xmlns in ipairs({ xmlns_prosody, xmlns_cam }) do
	module:hook("iq-get/self/"..xmlns..":list", handle_list);
	module:hook("iq-set/self/"..xmlns..":revoke", handle_revoke);
end

module:hook("account-disco-info", function (event)
	event.reply:tag("feature", { var = xmlns_cam }):up();
end);
