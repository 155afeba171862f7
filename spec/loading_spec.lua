-- Loading the module: finding the native core, checking it before any of its code runs, the
-- degraded mode without it (strict mode still holds), and what the module registers.

local mock = require "mock_prosody";
local st = require "prosody.util.stanza";

local function sh(command)
	local ok = os.execute(command);
	assert(ok, "command failed: " .. command);
end

local function shell_quote(s)
	return "'" .. s:gsub("'", "'\\''") .. "'";
end

local function temp_dir()
	local p = assert(io.popen("mktemp -d /tmp/mcm_spec.XXXXXX"));
	local dir = p:read("*l");
	p:close();
	assert(dir and dir:match("^/tmp/mcm_spec%."), "mktemp failed");
	return dir;
end

local function read(path)
	local f = assert(io.open(path, "rb"));
	local data = f:read("a");
	f:close();
	return data;
end

local function write(path, data)
	local f = assert(io.open(path, "wb"));
	f:write(data);
	f:close();
end

-- The module and its libraries (NAME.lib.lua), as a plugin directory holds them.
local function copy_module_into(dir)
	sh(("cp %s %s/mod_client_management.lua"):format(shell_quote(mock.plugin_file), shell_quote(dir)));
	sh(("cp %s/*.lib.lua %s/"):format(shell_quote(mock.plugin_dir), shell_quote(dir)));
	return dir .. "/mod_client_management.lua";
end

-- Loads the module file `file` with module.path = `file`, package.cpath = `cpath`.
local function load_with(file, cpath, opts)
	opts = opts or {};
	local saved_cpath = package.cpath;
	package.cpath = cpath;
	local ctx = mock.new({ path = file; paths = opts.paths or {}; options = opts.options; lua_version = opts.lua_version });
	local ok, err = ctx:try_load(file);
	package.cpath = saved_cpath;
	return ok, err, ctx;
end

local function logs(ctx, level)
	return table.concat(ctx:log_messages(level), "\n");
end

-- The module runs without its library: one error says why, list and revoke are unavailable.
local function assert_degraded(ctx, ...)
	local errors = ctx:log_messages("error");
	assert.equal(1, #errors, "expected exactly one error:\n" .. table.concat(errors, "\n"));
	for _, text in ipairs({ ... }) do
		assert.matches(text, errors[1], 1, true);
	end
	assert.matches("Install the client_management.so of this version", errors[1], 1, true);
	local session = ctx:new_session({ resource = "desk" });
	for _, ns in ipairs({ mock.NS_PROSODY, mock.NS_CAM }) do
		local reply = ctx:list(session, ns);
		assert.same({ type = "cancel"; condition = "service-unavailable"; text = "Client management is unavailable" },
			{ type = mock.error_of(reply).type; condition = mock.error_of(reply).condition; text = mock.error_of(reply).text });
	end
	assert.same({ nil, "service-unavailable" }, { ctx.env.get_active_clients("alice") });
end

describe("loading", function ()
	local dirs = {};
	local function new_dir()
		local dir = temp_dir();
		table.insert(dirs, dir);
		return dir;
	end
	after_each(function ()
		for _, dir in ipairs(dirs) do
			sh("rm -rf " .. shell_quote(dir));
		end
		dirs = {};
	end);

	it("finds the native library built by `make plugin`", function ()
		local f = io.open(mock.native_lib, "rb");
		assert.is_not_nil(f, mock.native_lib .. " is missing: run `make plugin` first");
		f:close();
	end);

	it("has an up-to-date plugin copy of the module, with Cargo.toml's version (run `make plugin`)", function ()
		local expected = read(mock.source_file):gsub("@VERSION@", mock.version());
		assert.is_true(expected == read(mock.plugin_file),
			mock.plugin_file .. " is not lua/mod_client_management.lua with the version written in: run `make plugin`");
	end);

	it("has up-to-date plugin copies of the module's libraries (run `make plugin`)", function ()
		local sources = io.popen("ls " .. shell_quote(mock.repo_root .. "/lua") .. "/*.lib.lua");
		local count = 0;
		for source in sources:lines() do
			count = count + 1;
			local copy = mock.plugin_dir .. "/" .. source:match("[^/]+$");
			assert.is_true(read(source) == read(copy), copy .. " is not " .. source .. ": run `make plugin`");
		end
		sources:close();
		assert.is_true(count > 0, "no lua/*.lib.lua");
	end);

	it("names the library before it touches it, and loads it from beside the plugin file", function ()
		local ok, err, ctx = load_with(mock.plugin_file, "");
		assert.is_true(ok, tostring(err));
		assert.matches("Loading native library " .. mock.native_lib, logs(ctx, "info"), 1, true);
		assert.same({}, ctx:log_messages("error"));
		assert.is_table(ctx.env.get_active_clients("alice"));
	end);

	it("loads the native core from package.cpath when it is not beside the module", function ()
		local file = copy_module_into(new_dir());
		local ok, err, ctx = load_with(file, mock.plugin_dir .. "/?.so");
		assert.is_true(ok, tostring(err));
		assert.matches("Loading native library " .. mock.native_lib, logs(ctx, "info"), 1, true);
		assert.same({}, ctx:log_messages("error"));
	end);

	it("loads the native core from the plugin installer's tree", function ()
		local file = copy_module_into(new_dir());
		local installer = new_dir();
		local lib_dir = installer .. "/lib/lua/" .. _VERSION:match(" (.+)$");
		sh("mkdir -p " .. shell_quote(lib_dir));
		-- A symlink, so the process maps the very same library file.
		sh(("ln -s %s %s/client_management.so"):format(shell_quote(mock.native_lib), shell_quote(lib_dir)));
		local ok, err, ctx = load_with(file, "", { paths = { installer = installer } });
		assert.is_true(ok, tostring(err));
		assert.matches("Loading native library " .. lib_dir .. "/client_management.so", logs(ctx, "info"), 1, true);
		assert.same({}, ctx:log_messages("error"));
	end);

	it("runs without a missing library, saying where it looked", function ()
		local dir = new_dir();
		local file = copy_module_into(dir);
		local ok, err, ctx = load_with(file, "");
		assert.is_true(ok, tostring(err));
		assert_degraded(ctx, "not found in " .. dir .. "/client_management.so", mock.version());
	end);

	it("refuses a file that is not a library without loading it", function ()
		local dir = new_dir();
		local file = copy_module_into(dir);
		write(dir .. "/client_management.so", "this is not an ELF file\n");
		local ok, err, ctx = load_with(file, "");
		assert.is_true(ok, tostring(err));
		assert_degraded(ctx, dir .. "/client_management.so: not an ELF file");
	end);

	it("refuses a half-copied library without loading it (no SIGBUS)", function ()
		local dir = new_dir();
		local file = copy_module_into(dir);
		local lib = read(mock.native_lib);
		write(dir .. "/client_management.so", lib:sub(1, #lib // 2));
		local ok, err, ctx = load_with(file, "");
		assert.is_true(ok, tostring(err));
		assert_degraded(ctx, dir .. "/client_management.so: truncated");
	end);

	it("refuses a library of another version by its marker, without loading it", function ()
		local dir = new_dir();
		local file = copy_module_into(dir);
		local version = mock.version();
		local other = ("9"):rep(#version);
		local marker = "client_management native core " .. version .. " for Lua 5.4\0";
		local lib = read(mock.native_lib);
		local at = assert(lib:find(marker, 1, true), "no version marker in the library");
		write(dir .. "/client_management.so", lib:sub(1, at - 1) .. marker:gsub(version:gsub("%p", "%%%0"), other) .. lib:sub(at + #marker));
		local ok, err, ctx = load_with(file, "");
		assert.is_true(ok, tostring(err));
		assert_degraded(ctx, ("is version %s, this module is version %s"):format(other, version));
	end);

	it("refuses a library whose marker is right but which reports another version", function ()
		local dir = new_dir();
		local file = copy_module_into(dir);
		local c_file = dir .. "/stub.c";
		write(c_file, ([[
#include <lua.h>
const char marker[] = "client_management native core %s for Lua 5.4";
int luaopen_client_management(lua_State *L) {
	lua_newtable(L);
	lua_pushstring(L, marker[0] ? "0.0.9" : "");
	lua_setfield(L, -2, "version");
	return 1;
}
]]):format(mock.version()));
		sh(("cc -shared -fPIC -I/usr/include/lua5.4 -o %s/client_management.so %s"):format(
			shell_quote(dir), shell_quote(c_file)));
		local ok, err, ctx = load_with(file, "");
		assert.is_true(ok, tostring(err));
		assert_degraded(ctx, "reports version 0.0.9, this module is version " .. mock.version());
	end);

	it("checks the Lua version before it touches any library", function ()
		local ok, err, ctx = load_with(mock.plugin_file, "", { lua_version = "Lua 5.3" });
		assert.is_true(ok, tostring(err));
		assert_degraded(ctx, "built for Lua 5.4, Prosody runs Lua 5.3");
		assert.equal("", logs(ctx, "info"), "a library was named, so it was about to be loaded");
	end);

	it("keeps strict mode without its library", function ()
		local ok, err, ctx = load_with(copy_module_into(new_dir()), "", { options = { enforce_client_ids = true } });
		assert.is_true(ok, tostring(err));
		local session = ctx:new_session({ type = "c2s_unauthed"; username = false });
		ctx:fire_tag(session, st.stanza("authenticate", { xmlns = mock.NS_SASL2, mechanism = "PLAIN" }));
		assert.equal("Client identifier required but not supplied", session.sent[1] and session.sent[1]:get_child_text("text"));
		ctx:fire_tag(session, st.stanza("auth", { xmlns = mock.NS_SASL, mechanism = "PLAIN" }));
		assert.equal("failure", session.sent[2] and session.sent[2].name);
		assert.equal(mock.NS_SASL, session.sent[2].attr.xmlns);
	end);

	describe("once loaded", function ()
		local ctx;
		before_each(function ()
			ctx = mock.loaded();
		end);

		it("depends on tokenauth and sasl2_fast and opens the clients store as keyval+", function ()
			local types = {};
			for _, s in ipairs(ctx.opened_stores) do types[s.name] = s.type; end
			assert.equal("keyval+", types.clients);
		end);

		it("grants :list-clients and :manage-clients to prosody:registered by default", function ()
			local granted = {};
			for _, p in ipairs(ctx.permissions) do granted[p.permission] = p.role; end
			assert.equal("prosody:registered", granted["client_management:list-clients"]);
			assert.equal("prosody:registered", granted["client_management:manage-clients"]);
		end);

		it("handles list and revoke iqs to the user's own JID in both namespaces", function ()
			for _, ns in ipairs({ mock.NS_PROSODY, mock.NS_CAM }) do
				assert.equal(1, #ctx:module_handlers("iq-get/self/" .. ns .. ":list"), ns);
				assert.equal(1, #ctx:module_handlers("iq-set/self/" .. ns .. ":revoke"), ns);
			end
		end);

		it("exports get_active_clients and revoke_client_access as module globals", function ()
			assert.is_function(rawget(ctx.env, "get_active_clients"));
			assert.is_function(rawget(ctx.env, "revoke_client_access"));
			assert.is_nil(rawget(_G, "get_active_clients"));
		end);

		it("without enforce_client_ids refuses only client ids over 256 bytes", function ()
			assert.is_nil(ctx:tag_handler(mock.NS_SASL, "auth"));
			local session = ctx:new_session({ type = "c2s_unauthed"; username = false });
			local function authenticate(id)
				local auth = st.stanza("authenticate", { xmlns = mock.NS_SASL2, mechanism = "PLAIN" });
				if id then auth:tag("user-agent", { id = id }):up(); end
				return ctx:fire_tag(session, auth);
			end
			assert.is_nil(authenticate(nil));
			assert.is_nil(authenticate(("x"):rep(256)));
			assert.is_true(authenticate(("é"):rep(129)));
			assert.equal("Client identifier too long (at most 256 bytes)", session.sent[1]:get_child_text("text"));
			assert.equal("malformed-request", session.sent[1].tags[1].name);
		end);

		it("records SASL2 logins before Bind 2 binds and after FAST, before <success> is sent", function ()
			local handlers = ctx:module_handlers("sasl2/c2s/success");
			assert.is_true(#handlers >= 1);
			-- Something runs before Bind 2 (100) to note the login, and the record is written
			-- after FAST (75) and before mod_sasl2 sends <success> (−1000).
			assert.is_true(handlers[1].priority > 100, "first handler priority " .. handlers[1].priority);
			local last = handlers[#handlers].priority;
			assert.is_true(last < 75 and last > -1000, "last handler priority " .. last);
		end);

		it("hooks user-deleted on the global bus, where Prosody fires it", function ()
			assert.is_not_nil(ctx.global_handlers["user-deleted"], "not on the global bus");
			assert.is_nil(ctx.handlers["user-deleted"], "a host hook never sees it");
		end);
	end);
end);
