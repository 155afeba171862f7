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
local time_now = require "prosody.util.time".now;

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

-- Logins that must be refused (needs no native library) ---------------------------------------
-- Words of their own: these refusals hold even when the native library did not load.

local NO_CLIENT_ID = "Client identifier required but not supplied";

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

module:default_permission("prosody:registered", ":list-clients");
module:default_permission("prosody:registered", ":manage-clients");

if not core then
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

local notify_new_clients = module:get_option_boolean("client_management_notify_new_clients", false);
local engine = core.new_engine({
	max_clients = module:get_option_integer("client_management_max_clients", 100, 1);
	retention = module:get_option_period("client_management_retention", "30 days");
	store_full_jids = module:get_option_boolean("client_management_store_full_jids", true);
	store_device_names = module:get_option_boolean("client_management_store_device_names", true);
	notify_new_clients = notify_new_clients;
	notice_interval = module:get_option_period("client_management_notice_interval", "10 minutes");
	requests_per_minute = module:get_option_integer("client_management_requests_per_minute", 30, 0);
	write_delay = module:get_option_period("client_management_write_delay", 10);
	grant_cache_ttl = module:get_option_period("client_management_grant_cache_ttl", 60);
	tokenless_grant_ttl = module:get_option_period("tokenless_grant_ttl", "2w"); -- mod_tokenauth's
});

local stanza_mt = getmetatable(st.stanza("x"));

-- Accounts in memory -------------------------------------------------------------------------
-- Recently used accounts (an LRU), and every account with changes not stored yet or logins not
-- recorded yet, kept in `unsaved` until that is done. Both hold the same object.

local recent_accounts = require "prosody.util.cache".new(module:get_option_integer("client_management_cache_size", 256, 1));
local unsaved = {}; -- username -> { account, timer, unrecorded = weak set of sessions }
-- Notices the core held back are summarised when its timer for the account comes.
local notice_timers = {}; -- username -> timer

local function cached_account(username)
	local entry = unsaved[username];
	return entry and entry.account or recent_accounts:get(username);
end

local function get_account(username)
	local account = cached_account(username);
	if not account then
		account = engine:new_account(username);
		recent_accounts:set(username, account);
	end
	return account;
end

-- For host-wide walks: an account not in memory is not made recent.
local function walk_account(username)
	return cached_account(username) or engine:new_account(username);
end

local function role_priorities()
	local priorities = {};
	for name, role in pairs(usermanager.get_all_roles(host) or {}) do
		priorities[name] = role.priority;
	end
	return priorities;
end

local part_stores = { records = client_store, grants = grant_store, fast_tokens = fast_token_store };

-- Reads what the account's state lacks for `purpose` ("login", "listing", "change"), as the
-- core says; returns nil, or a table of the parts that could not be read -> error.
local function read_missing(username, account, purpose)
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

-- What changes from one request to the next: the account's streams (bound, hibernating, or
-- authenticated and unbound), password change, role, clock. Returns the facts for the core
-- and the streams by the index the core names them with.
local function moment_of(username)
	local facts, streams = {}, {};
	local function add(session)
		local login = session.client_management;
		table.insert(streams, session);
		table.insert(facts, {
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

-- Storing ------------------------------------------------------------------------------------

local record_session; -- below

local function pin(username, account)
	local entry = unsaved[username];
	if not entry then
		entry = { account = account, unrecorded = setmetatable({}, { __mode = "k" }) };
		unsaved[username] = entry;
	end
	return entry;
end

local store_changes;

local function store_later(username, delay)
	local entry = unsaved[username];
	if entry and not entry.timer then
		entry.timer = module:add_timer(delay, function ()
			entry.timer = nil;
			store_changes(username);
		end);
	end
end

-- Stores every change of the account not stored yet, in one write, after recording logins
-- seen while its records could not be read. What fails stays queued and is tried again.
function store_changes(username)
	local entry = unsaved[username];
	if not entry then return true; end
	local account = entry.account;
	if next(entry.unrecorded) then
		if read_missing(username, account, "login") then
			store_later(username, account:writes_failed());
			return nil, "records unreadable";
		end
		for session in pairs(entry.unrecorded) do
			entry.unrecorded[session] = nil;
			if not session.destroyed then record_session(session, false); end
		end
	end
	local batch = account:take_writes(client_store.remove);
	if batch then
		local ok, err = client_store:set_keys(username, batch.changes);
		if not ok then
			local delay = account:writes_failed();
			module:log("error", "Unable to store clients of %s (trying again in %gs): %s", username, delay, err);
			store_later(username, delay);
			return nil, err;
		end
		account:writes_stored(batch.serial);
	end
	if account:has_pending_writes() or next(entry.unrecorded) then
		store_later(username, account:retry_delay());
	else
		if entry.timer then entry.timer:stop(); end
		unsaved[username] = nil;
	end
	return true;
end

local function store_all()
	for username in pairs(unsaved) do store_changes(username); end
end
module:hook_global("server-stopping", store_all);
module.unload = store_all;

-- The account was deleted (Prosody fires this on the global bus, before it purges the
-- account's storage): nothing of it stays in memory and nothing is written for it again.
module:hook_global("user-deleted", function (event)
	if event.host ~= host then return; end
	local username = event.username;
	local account = cached_account(username);
	if account then account:mark_deleted(); end
	local entry = unsaved[username];
	if entry and entry.timer then entry.timer:stop(); end
	unsaved[username] = nil;
	recent_accounts:set(username, nil);
	engine:forget(username);
	if notice_timers[username] then
		notice_timers[username]:stop();
		notice_timers[username] = nil;
	end
	-- mod_c2s closes the bound streams; those that authenticated and never bound are ours.
	for session in pairs(unbound_streams) do
		if session.username == username and session.host == host and not session.destroyed then
			session:close({ condition = "not-authorized", text = "Account deleted" });
		end
	end
end);

-- Recording logins ----------------------------------------------------------------------------

local function notify(streams, indices, text)
	for _, index in ipairs(indices) do
		local session = streams[index];
		if session and session.full_jid then
			session.send(st.message({ from = host, to = session.full_jid }):text_tag("body", text));
		end
	end
end

local function flush_notices_later(username, delay)
	if not delay or notice_timers[username] then return; end
	notice_timers[username] = module:add_timer(delay, function ()
		notice_timers[username] = nil;
		local account = get_account(username);
		read_missing(username, account, "login"); -- the records tell who the summary is about
		local moment, streams = moment_of(username);
		local recipients, text, check_in = account:flush_notices(moment);
		if text then notify(streams, recipients, text); end
		flush_notices_later(username, check_in);
	end);
end

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

-- Records the login of an authenticated session (again at bind, when it binds later), and
-- stores or schedules the change unless `store` is false (the caller stores).
function record_session(session, store)
	local username, login = session.username, session.client_management;
	local account = get_account(username);
	read_missing(username, account, "login");
	login.client_id = client_id_of(session);
	login.full_jid = session.full_jid;
	login.at = os.time();
	local moment, streams = moment_of(username);
	local outcome, why = account:record_login(login, moment);
	if not outcome then
		if why == "records-missing" then
			-- Recorded once the records can be read again.
			pin(username, account).unrecorded[session] = true;
			store_later(username, account:retry_delay());
		end
		return;
	end
	login.recorded = true;
	pin(username, account);
	if store == false then
		-- the caller stores
	elseif outcome.write == "now" then
		store_changes(username);
	else
		store_later(username, account:retry_delay());
	end
	if outcome.is_new then
		module:fire_event("client_management/new-client", { client = account:record(outcome.client_id); session = session });
	end
	if outcome.notice then
		notify(streams, outcome.notify, outcome.notice);
	end
	flush_notices_later(username, outcome.notice_check_in);
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

-- Grants: cached views go stale, and new ones may be announced.
for _, event_name in ipairs({ "token-grant-created", "token-grant-revoked", "token-revoked" }) do
	module:hook(event_name, function (event)
		local account = cached_account(event.username);
		if account then account:note(event_name); end
		-- The streams are only gathered when there is someone to tell. Nothing a grant holds
		-- makes this fail (the core repairs and sanitises it); should anything else, it must
		-- not raise into mod_tokenauth's create_grant: log it and go on.
		if event_name == "token-grant-created" and notify_new_clients and type(event.grant) == "table" then
			local ok, err = pcall(function ()
				local moment, streams = moment_of(event.username);
				local recipients, text, check_in = engine:grant_notice(event.username, event.grant, moment);
				if text then notify(streams, recipients, text); end
				flush_notices_later(event.username, check_in);
			end);
			if not ok then
				module:log("error", "Unable to announce grant %s of %s: %s", tostring(event.id), tostring(event.username), err);
			end
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
local function carry_out(username, account, plan, streams, requester)
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
	account:note("revoked");
	if not complete then
		module:log("error", "Revocation for %s is incomplete, the same request finishes it: %s", username, table.concat(report, "; "));
	end
	return later, complete;
end

-- Returns true, or nil and an error name; plus the streams to close after answering.
local function revoke(username, selector, requester)
	local account = get_account(username);
	local failed = read_missing(username, account, "change");
	if failed and (failed.grants or failed.fast_tokens) then
		return nil, "internal-server-error", {};
	end
	local moment, streams = moment_of(username);
	local plan = account:plan_revocation(selector, moment);
	local later, complete = carry_out(username, account, plan, streams, requester);
	if not complete then return nil, "internal-server-error", later; end
	if plan.error then return nil, plan.error, later; end
	return true, nil, later;
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

local function handle_list(event)
	local origin, stanza = event.origin, event.stanza;
	local refusal = forbidden_unless(":list-clients", event) or over_budget(origin);
	if refusal then
		origin.send(st.error_reply(stanza, refusal));
		return true;
	end
	local username = origin.username;
	local account = get_account(username);
	local ok, clients = false, "storage unreadable";
	if not read_missing(username, account, "listing") then
		ok, clients = pcall(account.list_stanza, account, (moment_of(username)), stanza.tags[1].attr.xmlns, stanza_mt);
	end
	if not ok then
		module:log("error", "Unable to list clients of %s: %s", username, tostring(clients));
		origin.send(st.error_reply(stanza, core.error("list-failed")));
		return true;
	end
	local reply = st.reply(stanza);
	reply:add_direct_child(clients); -- returns nothing in 13.0.x, so no chaining
	origin.send(reply);
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

for _, xmlns in ipairs({ xmlns_prosody, xmlns_cam }) do
	module:hook("iq-get/self/"..xmlns..":list", handle_list);
	module:hook("iq-set/self/"..xmlns..":revoke", handle_revoke);
end

module:hook("account-disco-info", function (event)
	event.reply:tag("feature", { var = xmlns_cam }):up();
end);

-- Ad-hoc commands (XEP-0050), web self-service, shell ---------------------------------------

module:require "client_management_adhoc" {
	core = core; over_budget = over_budget; get_account = get_account; read_missing = read_missing;
	moment_of = moment_of; carry_out = carry_out; close_stream = close_stream;
};

if module:get_option_boolean("client_management_web", false) then
	module:require "client_management_web" {
		core = core; tokenauth = tokenauth; get_account = get_account; read_missing = read_missing;
		moment_of = moment_of; carry_out = carry_out; close_stream = close_stream;
	};
end

module:require "client_management_shell" {
	core = core; get_account = get_account; walk_account = walk_account; read_missing = read_missing;
	moment_of = moment_of; carry_out = carry_out; close_stream = close_stream; pin = pin;
	store_changes = store_changes; client_store = client_store; grant_store = grant_store;
	old_legacy_index = old_legacy_index;
};
