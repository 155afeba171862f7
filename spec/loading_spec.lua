-- Loading the module: finding the native core, refusing a missing or mismatched one, and what
-- the module registers with Prosody when it loads.

local mock = require "mock_prosody";

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

local function copy_module_into(dir)
	sh(("cp %s %s/mod_client_management.lua"):format(shell_quote(mock.source_file), shell_quote(dir)));
	return dir .. "/mod_client_management.lua";
end

-- Loads the module file `file` with module.path = `file`, package.cpath = `cpath`.
local function load_with(file, cpath, paths)
	local saved_cpath = package.cpath;
	package.cpath = cpath;
	local ctx = mock.new({ path = file; paths = paths });
	local ok, err = ctx:try_load(file);
	package.cpath = saved_cpath;
	return ok, err, ctx;
end

local function debug_logs(ctx)
	return table.concat(ctx:log_messages("debug"), "\n");
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

	it("has an up-to-date plugin copy of the module (run `make plugin`)", function ()
		local function read(path)
			local f = assert(io.open(path, "rb"));
			local data = f:read("a");
			f:close();
			return data;
		end
		assert.is_true(read(mock.source_file) == read(mock.plugin_file),
			mock.plugin_file .. " differs from lua/mod_client_management.lua: run `make plugin`");
	end);

	it("loads the real native core from beside the plugin file", function ()
		local ok, err, ctx = load_with(mock.plugin_file, "");
		assert.is_true(ok, tostring(err));
		assert.matches("Loaded native core 0.1.0 from " .. mock.native_lib, debug_logs(ctx), 1, true);
	end);

	it("loads the native core from package.cpath when it is not beside the module", function ()
		local dir = new_dir();
		local file = copy_module_into(dir);
		local ok, err, ctx = load_with(file, mock.plugin_dir .. "/?.so");
		assert.is_true(ok, tostring(err));
		assert.matches("from " .. mock.native_lib, debug_logs(ctx), 1, true);
	end);

	it("loads the native core from the plugin installer's tree", function ()
		local dir = new_dir();
		local file = copy_module_into(dir);
		local installer = new_dir();
		local lua_version = _VERSION:match(" (.+)$");
		local lib_dir = installer .. "/lib/lua/" .. lua_version;
		sh("mkdir -p " .. shell_quote(lib_dir));
		-- A symlink, so the process maps the very same library file.
		sh(("ln -s %s %s/client_management.so"):format(shell_quote(mock.native_lib), shell_quote(lib_dir)));
		local ok, err, ctx = load_with(file, "", { installer = installer });
		assert.is_true(ok, tostring(err));
		assert.matches("from " .. lib_dir .. "/client_management.so", debug_logs(ctx), 1, true);
	end);

	it("fails to load with a clear message when the native library is missing", function ()
		local dir = new_dir();
		local file = copy_module_into(dir);
		local ok, err = load_with(file, "", {});
		assert.is_false(ok);
		err = tostring(err);
		assert.matches("cannot load the native library client_management.so", err, 1, true);
		assert.matches("not found in " .. dir .. "/client_management.so", err, 1, true);
	end);

	it("fails to load with a clear message when the native library is not loadable", function ()
		local dir = new_dir();
		local file = copy_module_into(dir);
		local f = assert(io.open(dir .. "/client_management.so", "wb"));
		f:write("this is not an ELF file\n");
		f:close();
		local ok, err = load_with(file, "", {});
		assert.is_false(ok);
		err = tostring(err);
		assert.matches("cannot load the native library client_management.so", err, 1, true);
		assert.matches(dir .. "/client_management.so: ", err, 1, true);
	end);

	it("refuses a native library of the wrong version", function ()
		local dir = new_dir();
		local file = copy_module_into(dir);
		local c_file = dir .. "/stub.c";
		local f = assert(io.open(c_file, "w"));
		f:write([[
#include <lua.h>
int luaopen_client_management(lua_State *L) {
	lua_newtable(L);
	lua_pushstring(L, "0.0.9");
	lua_setfield(L, -2, "version");
	return 1;
}
]]);
		f:close();
		sh(("cc -shared -fPIC -I/usr/include/lua5.4 -o %s/client_management.so %s"):format(
			shell_quote(dir), shell_quote(c_file)));
		local ok, err = load_with(file, "", {});
		assert.is_false(ok);
		err = tostring(err);
		assert.matches("cannot load the native library client_management.so", err, 1, true);
		assert.matches("is version 0.0.9, this module needs 0.1.0", err, 1, true);
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

		it("does not refuse anything when enforce_client_ids is not set", function ()
			assert.is_nil(ctx:tag_handler(mock.NS_SASL2, "authenticate"));
			assert.is_nil(ctx:tag_handler(mock.NS_SASL, "auth"));
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
	end);
end);
