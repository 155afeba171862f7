-- A stand-in for the parts of Prosody 13.0.x that mod_client_management touches: the module
-- API (`module`), the `prosody` global, core.usermanager, core.modulemanager, mod_tokenauth,
-- mod_sasl2_fast and storage. Everything is in memory and records what the module did with it.
--
-- The module file is loaded as Prosody loads plugins: loadfile into an environment whose
-- __index is _G, with `module` in it; module globals (get_active_clients, …) end up there.
--
-- Prosody's real util.stanza, util.error, util.xml, util.hashes are used throughout, and the
-- native core is the real client_management.so built by `make plugin`.

local st = require "prosody.util.stanza";
local hashes = require "prosody.util.hashes";
local xml = require "prosody.util.xml";

local M = {};

local function script_dir()
	local source = debug.getinfo(1, "S").source:gsub("^@", "");
	return source:match("^(.*)/[^/]*$") or ".";
end

local function absolute(path)
	if path:sub(1, 1) == "/" then return path; end
	local has_lfs, lfs = pcall(require, "lfs");
	local pwd = has_lfs and lfs.currentdir();
	if not pwd then
		local p = io.popen("pwd -P");
		pwd = p:read("*l");
		p:close();
	end
	return (pwd .. "/" .. path):gsub("/%./", "/");
end

local function normalize(path)
	local n;
	repeat
		path, n = path:gsub("/[^/]+/%.%./", "/", 1);
	until n == 0
	return (path:gsub("/[^/]+/%.%.$", ""));
end

M.repo_root = normalize(absolute(script_dir() .. "/../.."));
M.source_file = M.repo_root .. "/lua/mod_client_management.lua"; -- its version is written in at build time
M.plugin_dir = M.repo_root .. "/build/plugin/mod_client_management";
M.plugin_file = M.plugin_dir .. "/mod_client_management.lua";
M.native_lib = M.plugin_dir .. "/client_management.so";

-- The module under test is lua/mod_client_management.lua; the native core it needs is the one
-- `make plugin` built, found through package.cpath (the module looks beside itself first, then
-- on package.cpath). .busted puts it there relative to the repository root; this makes it
-- independent of the working directory.
if not package.cpath:find(M.plugin_dir .. "/?.so", 1, true) then
	package.cpath = M.plugin_dir .. "/?.so;" .. package.cpath;
end

-- The version, from Cargo.toml (`make plugin` writes it into the module).
function M.version()
	local f = assert(io.open(M.repo_root .. "/Cargo.toml"));
	local text = f:read("a");
	f:close();
	return (assert(text:match('%[package%].-\nversion%s*=%s*"([^"]+)"'), "no version in Cargo.toml"));
end

M.HOST = "localhost";
M.NS_PROSODY = "xmpp:prosody.im/protocol/manage-clients";
M.NS_CAM = "urn:xmpp:cam:0";
M.NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
M.NS_SASL2 = "urn:xmpp:sasl:2";
M.NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
M.START_TIME = 1700000000; -- 2023-11-14T22:13:20Z

local function deep_copy(value, seen)
	if type(value) ~= "table" then return value; end
	seen = seen or {};
	if seen[value] then return seen[value]; end
	local copy = {};
	seen[value] = copy;
	for k, v in pairs(value) do
		copy[deep_copy(k, seen)] = deep_copy(v, seen);
	end
	return setmetatable(copy, getmetatable(value));
end
M.deep_copy = deep_copy;

function M.fast_key(client_id, slot)
	return hashes.sha256(client_id, true) .. "-" .. (slot or "cur");
end

-- Storage ---------------------------------------------------------------------------------

-- keyval+ (and plain keyval / map) store over `data[username][key]`. `fail[method] = err`
-- makes that method return nil, err. Values are copied in and out, as real storage does.
local function new_store(ctx, name)
	local store = { name = name; data = {}; fail = {}; calls = {}; remove = {} };
	local function note(method, ...)
		table.insert(store.calls, { method, ... });
		table.insert(ctx.calls, { "store:" .. method, name, ... });
	end
	function store:get(username, key)
		note("get", username, key);
		if self.fail.get then return nil, self.fail.get; end
		local user = self.data[username];
		if key ~= nil then -- map store get(user, key)
			return deep_copy(user and user[key]);
		end
		if user == nil or (type(user) == "table" and next(user) == nil) then return nil; end
		return deep_copy(user);
	end
	function store:set(username, data)
		note("set", username, data);
		if self.fail.set then return nil, self.fail.set; end
		self.data[username] = deep_copy(data);
		return true;
	end
	function store:get_key(username, key)
		note("get_key", username, key);
		if self.fail.get_key then return nil, self.fail.get_key; end
		local user = self.data[username];
		return deep_copy(user and user[key]);
	end
	function store:set_key(username, key, value)
		note("set_key", username, key, value);
		if self.fail.set_key then return nil, self.fail.set_key; end
		self.data[username] = self.data[username] or {};
		self.data[username][key] = deep_copy(value);
		return true;
	end
	function store:set_keys(username, values)
		note("set_keys", username, values);
		if self.fail.set_keys then return nil, self.fail.set_keys; end
		self.data[username] = self.data[username] or {};
		for key, value in pairs(values) do
			if value == self.remove then value = nil; end
			self.data[username][key] = deep_copy(value);
		end
		return true;
	end
	-- Accounts with data, as keyval stores list them.
	local function users()
		local names = {};
		for username, data in pairs(store.data) do
			if type(data) ~= "table" or next(data) then table.insert(names, username); end
		end
		table.sort(names);
		return coroutine.wrap(function () for _, n in ipairs(names) do coroutine.yield(n); end end);
	end
	store.items, store.users = users, users;
	return store;
end

-- Context: one fake Prosody host with the module loaded into it -------------------------------

local Ctx = {};
Ctx.__index = Ctx;

function M.new(opts)
	opts = opts or {};
	local ctx = setmetatable({
		opts = opts;
		clock = opts.clock or M.START_TIME;
		handlers = {};        -- event name -> { {handler, priority, owner, seq} }
		global_handlers = {};
		tag_handlers = {};    -- { {xmlns, name, handler, priority} }
		fired = {};           -- { {name, data} } every module:fire_event
		calls = {};           -- ordered log of side effects (revocations, sends, closes, store use)
		logs = {};            -- { {level, message} }
		permissions = {};     -- default_permission calls
		items = {};           -- item type -> { items added with module:add_item }
		timers = {};          -- { {delay, callback} } added with module:add_timer, not yet run
		may_calls = {};
		may = true;           -- boolean or function(action, context)
		options = opts.options or {};
		stores = {};
		opened_stores = {};
		loaded_modules = opts.loaded_modules or {};
		accounts = opts.accounts or {};   -- username -> account info (password_updated)
		user_roles = {};                  -- username -> role
		all_roles = opts.all_roles or {
			["prosody:guest"] = { name = "prosody:guest"; priority = 15 };
			["prosody:registered"] = { name = "prosody:registered"; priority = 20 };
			["prosody:member"] = { name = "prosody:member"; priority = 35 };
			["prosody:admin"] = { name = "prosody:admin"; priority = 50 };
		};
		grants = {};          -- username -> grant id -> grant (mod_tokenauth's auth_tokens store)
		tokenauth_fail = nil; -- err returned by revoke_grant
		fast_fail = false;    -- revoke_fast_tokens returns false
		seq = 0;
	}, Ctx);

	ctx.prosody = {
		hosts = { [M.HOST] = { sessions = {} } };
		full_sessions = {};
		paths = opts.paths or {};
		events = { fire_event = function (...) return ctx:fire_global(...); end };
	};
	ctx.fast_store = ctx:store("fast_tokens");
	-- mod_tokenauth keeps grants in its auth_tokens store, which the module reads directly.
	ctx.grants = ctx:store("auth_tokens").data;
	ctx.client_store = ctx:store("clients");
	ctx.legacy_store = ctx:store("client_management_legacy");

	ctx.tokenauth = ctx:make_tokenauth();
	ctx.fast = ctx:make_fast();
	ctx.usermanager = ctx:make_usermanager();
	ctx.modulemanager = {
		is_loaded = function (host, name)
			return host == M.HOST and ctx.loaded_modules[name] or false;
		end;
	};
	ctx.module = ctx:make_module(opts.path or opts.file or M.plugin_file);
	return ctx;
end

function Ctx:store(name)
	if not self.stores[name] then
		self.stores[name] = new_store(self, name);
	end
	return self.stores[name];
end

-- Runs the timers the module has set so far (as if their delay had passed), but those it
-- stopped.
function Ctx:run_timers()
	local timers = self.timers;
	self.timers = {};
	for _, timer in ipairs(timers) do
		if not timer.stopped then timer[2](); end
	end
end

-- Delays of the timers set and not stopped.
function Ctx:timer_delays()
	local out = {};
	for _, timer in ipairs(self.timers) do
		if not timer.stopped then table.insert(out, timer[1]); end
	end
	return out;
end

function Ctx:advance(seconds)
	self.clock = self.clock + (seconds or 1);
	return self.clock;
end

function Ctx:log_messages(level)
	local out = {};
	for _, entry in ipairs(self.logs) do
		if level == nil or entry[1] == level then table.insert(out, entry[2]); end
	end
	return out;
end

function Ctx:calls_named(prefix)
	local out = {};
	for _, call in ipairs(self.calls) do
		if call[1]:sub(1, #prefix) == prefix then table.insert(out, call); end
	end
	return out;
end

-- Side-effect calls only (revocations, closes, sends), in order, as "verb:target" strings.
function Ctx:effects()
	local out = {};
	for _, call in ipairs(self.calls) do
		local verb = call[1];
		if verb == "revoke_fast_tokens" or verb == "revoke_grant" then
			table.insert(out, verb .. ":" .. tostring(call[3]));
		elseif verb == "close" or verb == "send" then
			table.insert(out, verb .. ":" .. tostring(call[2]));
		end
	end
	return out;
end

function Ctx:revocation_calls()
	local out = {};
	for _, call in ipairs(self.calls) do
		if call[1] == "revoke_fast_tokens" or call[1] == "revoke_grant" or call[1] == "close" then
			table.insert(out, call);
		end
	end
	return out;
end

-- Events ------------------------------------------------------------------------------------

local function add_handler(ctx, registry, event, handler, priority, owner)
	ctx.seq = ctx.seq + 1;
	registry[event] = registry[event] or {};
	table.insert(registry[event], { handler = handler; priority = priority or 0; owner = owner; seq = ctx.seq });
end

local function sorted(list)
	local copy = {};
	for i, h in ipairs(list or {}) do copy[i] = h; end
	table.sort(copy, function (a, b)
		if a.priority ~= b.priority then return a.priority > b.priority; end
		return a.seq < b.seq;
	end);
	return copy;
end

-- As util.events: handlers by descending priority; the first non-nil return ends the event.
local function dispatch(list, data)
	for _, h in ipairs(sorted(list)) do
		local ret = h.handler(data);
		if ret ~= nil then return ret; end
	end
	return nil;
end

function Ctx:hook(event, handler, priority, owner)
	add_handler(self, self.handlers, event, handler, priority, owner or "test");
end

function Ctx:fire(event, data)
	return dispatch(self.handlers[event], data);
end

function Ctx:fire_global(event, data)
	return dispatch(self.global_handlers[event], data);
end

-- The module's own handlers for an event, sorted as they would run.
function Ctx:module_handlers(event)
	local out = {};
	for _, h in ipairs(sorted(self.handlers[event])) do
		if h.owner == "module" then table.insert(out, h); end
	end
	return out;
end

function Ctx:tag_handler(xmlns, name)
	for _, h in ipairs(self.tag_handlers) do
		if h.xmlns == xmlns and h.name == name then return h; end
	end
end

-- Sends a stream-level element to the module's hook_tag handlers (and any others), as
-- Prosody's stream handling does with the `stanza/<xmlns>:<name>` event.
function Ctx:fire_tag(session, element)
	local event = "stanza/" .. element.attr.xmlns .. ":" .. element.name;
	return self:fire(event, { origin = session; stanza = element });
end

-- The fake module API -------------------------------------------------------------------------

local function format_log(fmt, ...)
	local n = select("#", ...);
	if n == 0 then return tostring(fmt); end
	local args = table.pack(...);
	for i = 1, n do
		if type(args[i]) ~= "number" then args[i] = tostring(args[i]); end
	end
	local ok, msg = pcall(string.format, fmt, table.unpack(args, 1, n));
	return ok and msg or (tostring(fmt) .. " [bad format]");
end

function Ctx:make_module(path)
	local ctx = self;
	local module = {
		host = M.HOST;
		name = "client_management";
		path = path;
	};
	function module:hook(event, handler, priority)
		add_handler(ctx, ctx.handlers, event, handler, priority, "module");
	end
	function module:hook_global(event, handler, priority)
		add_handler(ctx, ctx.global_handlers, event, handler, priority, "module");
	end
	function module:hook_tag(xmlns, name, handler, priority)
		table.insert(ctx.tag_handlers, { xmlns = xmlns; name = name; handler = handler; priority = priority or 0 });
		return self:hook("stanza/" .. (xmlns and (xmlns .. ":") or "") .. name, function (data)
			return handler(data.origin, data.stanza, data);
		end, priority);
	end
	function module:fire_event(name, data)
		table.insert(ctx.fired, { name = name; data = data });
		return ctx:fire(name, data);
	end
	function module:depends(name)
		if name == "tokenauth" then return ctx.tokenauth; end
		if name == "sasl2_fast" then return ctx.fast; end
		error("unexpected dependency mod_" .. tostring(name));
	end
	function module:open_store(name, store_type)
		table.insert(ctx.opened_stores, { name = name or self.name; type = store_type or "keyval" });
		return ctx:store(name or self.name);
	end
	function module:get_option_integer(name, default)
		local value = ctx.options[name];
		if value == nil then return default; end
		return value;
	end
	-- As Prosody's: a number of seconds, a period ("30 days"), or "never".
	function module:get_option_period(name, default)
		local value = ctx.options[name];
		if value == nil then value = default; end
		if value == "never" or value == false then return math.huge; end
		if type(value) == "string" then
			return require "prosody.util.human.io".parse_duration(value);
		end
		return value;
	end
	function module:get_option_boolean(name, default)
		local value = ctx.options[name];
		if value == nil then return default; end
		return value;
	end
	-- As Prosody's: one table per name for the host, kept across reloads (here: the context).
	function module:shared(name)
		ctx.shared = ctx.shared or {};
		ctx.shared[name] = ctx.shared[name] or {};
		return ctx.shared[name];
	end
	function module:add_timer(delay, callback)
		local timer = { delay, callback };
		function timer.stop() timer.stopped = true; end
		table.insert(ctx.timers, timer);
		return setmetatable(timer, { __index = { stop = function (t) t.stopped = true; end } });
	end
	function module:daily(name, fun)
		ctx.daily = ctx.daily or {};
		ctx.daily[name] = fun;
	end
	function module:provides(kind, item)
		self:add_item(kind .. "-provider", item);
	end
	-- Prosody's own adhoc library (modules/adhoc/adhoc.lib.lua), loaded into this module.
	function module:require(name)
		assert(name == "adhoc", "unexpected module:require " .. tostring(name));
		local chunk = assert(loadfile("/usr/lib/prosody/modules/adhoc/adhoc.lib.lua", "t",
			setmetatable({ module = self }, { __index = _G })));
		return chunk();
	end
	function module:add_item(item_type, item)
		ctx.items[item_type] = ctx.items[item_type] or {};
		table.insert(ctx.items[item_type], item);
	end
	function module:default_permission(role, permission)
		table.insert(ctx.permissions, { role = role; permission = permission:gsub("^:", self.name .. ":") });
	end
	function module:may(action, context)
		if action:byte(1) == 58 then action = self.name .. action; end
		table.insert(ctx.may_calls, { action = action; context = context });
		if type(ctx.may) == "function" then return ctx.may(action, context); end
		return ctx.may;
	end
	function module:log(level, fmt, ...)
		table.insert(ctx.logs, { level, format_log(fmt, ...) });
	end
	return module;
end

-- mod_tokenauth ------------------------------------------------------------------------------

function Ctx:add_grant(username, grant)
	self.grants[username] = self.grants[username] or {};
	grant.tokens = grant.tokens or {};
	grant.owner = grant.owner or (username .. "@" .. M.HOST);
	grant.jid = grant.jid or grant.owner;
	grant.created = grant.created or self.clock;
	self.grants[username][grant.id] = grant;
	return grant;
end

function Ctx:make_tokenauth()
	local ctx = self;
	local tokenauth = {};
	function tokenauth.revoke_grant(username, grant_id)
		table.insert(ctx.calls, { "revoke_grant", username, grant_id });
		if ctx.tokenauth_fail then return nil, ctx.tokenauth_fail; end
		if ctx.grants[username] then ctx.grants[username][grant_id] = nil; end
		return true;
	end
	return tokenauth;
end

-- mod_sasl2_fast -------------------------------------------------------------------------------

-- A token as mod_sasl2_fast stores it, under hex(sha256(client_id)).."-cur"|"-new".
function Ctx:add_fast_token(username, client_id, slot, token)
	token = token or {};
	local data = self.fast_store.data;
	data[username] = data[username] or {};
	data[username][M.fast_key(client_id, slot)] = {
		mechanism = token.mechanism or "HT-SHA-256-NONE";
		secret = token.secret or "s3cr3t";
		issued_at = token.issued_at or (self.clock - 10);
		expires_at = token.expires_at or (self.clock + 86400);
	};
end

function Ctx:has_fast_token(username, client_id)
	local data = self.fast_store.data[username] or {};
	return data[M.fast_key(client_id, "cur")] ~= nil or data[M.fast_key(client_id, "new")] ~= nil;
end

function Ctx:make_fast()
	local ctx = self;
	local fast = {};
	function fast.revoke_fast_tokens(username, client_id)
		table.insert(ctx.calls, { "revoke_fast_tokens", username, client_id });
		if ctx.fast_fail then return false; end
		local data = ctx.fast_store.data[username];
		if data then
			data[M.fast_key(client_id, "cur")] = nil;
			data[M.fast_key(client_id, "new")] = nil;
		end
		return true;
	end
	return fast;
end

-- core.usermanager ----------------------------------------------------------------------------

function Ctx:make_usermanager()
	local ctx = self;
	local um = {};
	function um.get_account_info(username, host)
		assert(host == M.HOST, "get_account_info called without the host");
		return ctx.accounts[username] or {};
	end
	function um.get_user_role(username, host)
		assert(host == M.HOST, "get_user_role called without the host");
		return ctx.user_roles[username] or ctx.all_roles["prosody:registered"];
	end
	function um.get_all_roles(host)
		assert(host == M.HOST, "get_all_roles called without the host");
		return ctx.all_roles;
	end
	return um;
end

-- Sessions ------------------------------------------------------------------------------------

-- A c2s session. `send` and `close` are recorded (in ctx.calls too, so order can be checked).
function Ctx:new_session(opts)
	opts = opts or {};
	local ctx = self;
	local session = {
		type = opts.type or "c2s";
		base_type = "c2s";
		username = opts.username;
		host = M.HOST;
		client_id = opts.client_id;
		sasl_handler = opts.sasl_handler;
		sent = {};
		log = function () end;
	};
	if opts.username == nil and opts.type == nil then
		session.username = "alice";
	end
	-- Like Prosody's session.send, which indexes what it is given: anything but a stanza
	-- (or a string) is an error there, and here.
	function session.send(stanza)
		table.insert(ctx.calls, { "send", session.full_jid or "(unbound)", stanza });
		if not st.is_stanza(stanza) and type(stanza) ~= "string" then
			error(("session.send() called with %s instead of a stanza"):format(tostring(stanza)), 2);
		end
		table.insert(session.sent, stanza);
		return true;
	end
	-- Closing destroys the session: it leaves full_sessions and the user's session list.
	function session:close(reason)
		self.closed = reason or true;
		table.insert(ctx.calls, { "close", self.full_jid, reason });
		ctx:detach(self);
	end
	if opts.resource then
		self:attach(session, opts.resource);
	end
	return session;
end

-- Puts a session online under a resource (what sessionmanager.bind_resource does), without
-- firing resource-bind.
function Ctx:attach(session, resource)
	session.resource = resource;
	session.full_jid = session.username .. "@" .. M.HOST .. "/" .. resource;
	local host_sessions = self.prosody.hosts[M.HOST].sessions;
	host_sessions[session.username] = host_sessions[session.username] or { sessions = {} };
	host_sessions[session.username].sessions[resource] = session;
	self.prosody.full_sessions[session.full_jid] = session;
	return session;
end

function Ctx:detach(session)
	if not session.full_jid then return; end
	if self.prosody.full_sessions[session.full_jid] == session then
		self.prosody.full_sessions[session.full_jid] = nil;
	end
	local user = self.prosody.hosts[M.HOST].sessions[session.username];
	if user and user.sessions[session.resource] == session then
		user.sessions[session.resource] = nil;
	end
end

-- Resource binding (RFC 6120 bind, or Bind 2 inside SASL2 success): fires resource-bind.
function Ctx:bind(session, resource)
	self:attach(session, resource);
	return self:fire("resource-bind", { session = session; resource = resource });
end

-- The SASL2 success chain as mod_sasl2, mod_sasl2_bind2 and mod_sasl2_fast register it
-- (ARCHITECTURE.md §1: 1000 sasl2 auth, 100 bind2, 75 fast, −1000 <success>, −1500
-- authentication-success, −2000 drops the handler). Installed once per context.
function Ctx:install_sasl2_stack()
	if self.sasl2_installed then return; end
	self.sasl2_installed = true;
	local ctx = self;
	self:hook("sasl2/c2s/success", function (event)
		local session = event.session;
		session.type = "c2s";
		event.success = st.stanza("success", { xmlns = M.NS_SASL2 });
		table.insert(ctx.calls, { "sasl2:authenticated", session.username });
	end, 1000, "mod_sasl2");
	self:hook("sasl2/c2s/success", function (event)
		local session = event.session;
		if event.bind2_resource then
			ctx:bind(session, event.bind2_resource);
		end
	end, 100, "mod_sasl2_bind2");
	self:hook("sasl2/c2s/success", function (event)
		table.insert(ctx.calls, { "sasl2_fast:success", event.session.username });
	end, 75, "mod_sasl2_fast");
	self:hook("sasl2/c2s/success", function (event)
		event.session.send(event.success);
	end, -1000, "mod_sasl2");
	self:hook("sasl2/c2s/success", function (event)
		ctx:fire("authentication-success", event);
	end, -1500, "mod_sasl2");
	self:hook("sasl2/c2s/success", function (event)
		event.session.sasl_handler = nil;
		return true;
	end, -2000, "mod_sasl2");
end

-- A successful SASL2 login. `opts`: username, client_id, mechanism, fast (bool), grant
-- ({id, data}), user_agent ({software, device}), bind2 (resource, or nil for no Bind 2).
-- Returns the session.
function Ctx:sasl2_login(opts)
	self:install_sasl2_stack();
	local session = opts.session or self:new_session({ username = opts.username or "alice"; type = "c2s_unauthed" });
	session.username = opts.username or session.username or "alice";
	session.client_id = opts.client_id;
	local handler = {
		username = session.username;
		selected = opts.mechanism or "SCRAM-SHA-1";
		fast_auth = opts.fast or nil;
		user_agent = opts.user_agent;
	};
	if opts.grant then
		handler.token_info = {
			id = opts.grant.id;
			role = opts.grant.role;
			grant = opts.grant;
		};
	end
	session.sasl_handler = handler;
	self:fire("sasl2/c2s/success", { session = session; bind2_resource = opts.bind2 });
	return session;
end

-- A successful RFC 6120 SASL login through mod_saslauth (which fires authentication-success
-- while its handler is still on the session and drops it right after), then a bind.
function Ctx:legacy_login(opts)
	local session = opts.session or self:new_session({ username = opts.username or "alice"; type = "c2s_unauthed" });
	session.username = opts.username or session.username or "alice";
	session.type = "c2s";
	local handler = {
		username = session.username;
		selected = opts.mechanism or "SCRAM-SHA-1";
	};
	if opts.grant then
		handler.token_info = { id = opts.grant.id; grant = opts.grant };
	end
	session.sasl_handler = handler;
	self:fire("authentication-success", { session = session });
	session.sasl_handler = nil;
	if opts.resource then
		self:bind(session, opts.resource);
	end
	return session;
end

-- Loading the module --------------------------------------------------------------------------

-- Loads the module file into a fresh plugin environment. Returns true, or false and the error.
-- opts.file (or the argument): the file to load, default the one `make plugin` built (with its
-- version written in);
-- opts.path: module.path, default the file loaded.
function Ctx:try_load(file)
	file = file or self.opts.file or M.plugin_file;
	local ctx = self;
	local env = setmetatable({
		module = self.module;
		prosody = self.prosody;
		_VERSION = self.opts.lua_version or _VERSION;
		-- The module takes wall-clock time from os.time(); give it ours.
		os = setmetatable({
			time = function (t) if t == nil then return ctx.clock; end return os.time(t); end;
		}, { __index = os });
	}, { __index = _G });
	self.env = env;

	local preload = {
		["prosody.core.usermanager"] = self.usermanager;
		["prosody.core.modulemanager"] = self.modulemanager;
		["prosody.util.time"] = { now = function () return ctx.clock + 0.25; end };
	};
	local saved = {};
	for name, value in pairs(preload) do
		saved[name] = rawget(package.loaded, name);
		package.loaded[name] = value;
	end
	local chunk, load_err = loadfile(file, "t", env);
	local ok, err;
	if not chunk then
		ok, err = false, load_err;
	else
		ok, err = pcall(chunk);
	end
	for name in pairs(preload) do
		package.loaded[name] = saved[name];
	end
	self.loaded = ok;
	return ok, err;
end

function Ctx:load(file)
	local ok, err = self:try_load(file);
	if not ok then error("module failed to load: " .. tostring(err), 2); end
	return self;
end

-- New context with the module loaded. opts as for M.new, plus opts.file.
function M.loaded(opts)
	return M.new(opts):load();
end

-- Stanzas -------------------------------------------------------------------------------------

function M.iq(session, iq_type, child_name, xmlns, attr)
	local bare = session.username .. "@" .. M.HOST;
	local stanza = st.iq({ type = iq_type; id = "req-" .. tostring(math.random(1e6)); from = session.full_jid; to = bare });
	local child_attr = { xmlns = xmlns };
	for k, v in pairs(attr or {}) do child_attr[k] = v; end
	stanza:tag(child_name, child_attr):up();
	return stanza;
end

-- Sends a list/revoke iq through the module's handler for it, as mod_iq would
-- ("iq-get/self/<xmlns>:list", "iq-set/self/<xmlns>:revoke"). Returns what the handler returned.
function Ctx:send_iq(session, stanza)
	local child = stanza.tags[1];
	local event = ("iq-%s/self/%s:%s"):format(stanza.attr.type, child.attr.xmlns, child.name);
	return self:fire(event, { origin = session; stanza = stanza });
end

function Ctx:list(session, xmlns)
	local stanza = M.iq(session, "get", "list", xmlns or M.NS_PROSODY);
	local before = #session.sent;
	local ret = self:send_iq(session, stanza);
	return session.sent[before + 1], ret, stanza, #session.sent - before;
end

function Ctx:revoke(session, id, xmlns)
	local stanza = M.iq(session, "set", "revoke", xmlns or M.NS_PROSODY, { id = id });
	local before = #session.sent;
	local ret = self:send_iq(session, stanza);
	return session.sent[before + 1], ret, stanza, #session.sent - before;
end

-- Serializes a stanza and parses it back with util.xml: a well-formedness check that also
-- drops anything util.stanza would not put on the wire.
function M.reparse(stanza)
	local text = tostring(stanza);
	local parsed, err = xml.parse(text);
	if not parsed then
		local shown = text:gsub("[%z\1-\8\11\12\14-\31\127]", function (c) return ("\\x%02X"):format(c:byte()); end);
		error(("reply is not well-formed XML (%s): %s"):format(tostring(err), shown), 2);
	end
	return parsed, text;
end

-- Error condition, type, text and application element of an error reply.
function M.error_of(reply)
	local err = reply:get_child("error");
	if not err then return nil; end
	local condition, text, app;
	for _, child in ipairs(err.tags) do
		if child.attr.xmlns == M.NS_STANZAS then
			if child.name == "text" then text = child:get_text(); else condition = child.name; end
		else
			app = child;
		end
	end
	return { type = err.attr.type; condition = condition; text = text; app = app };
end

M.TIMESTAMP_PATTERN = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$";

return M;
