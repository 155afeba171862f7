-- mod_client_management's native library (client_management.so): finding it, checking it
-- before any of its code runs, loading it; and what the module does without it (degraded
-- mode: the library is where every word and decision lives, so only what needs none is here).

local st = require "prosody.util.stanza";

local CORE_NAME = "client_management";
local xmlns_prosody = "xmpp:prosody.im/protocol/manage-clients";
local xmlns_cam = "urn:xmpp:cam:0";

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
local function load_core_from(path, MODULE_VERSION)
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

local function load_core(MODULE_VERSION)
	if _VERSION ~= "Lua 5.4" then
		return nil, ("the native library is built for Lua 5.4, Prosody runs %s"):format(_VERSION);
	end
	local problems = {};
	for _, path in ipairs(core_candidates()) do
		local lib, problem = load_core_from(path, MODULE_VERSION);
		if lib then return lib; end
		table.insert(problems, problem);
	end
	if #problems == 0 then
		return nil, "not found in "..table.concat(core_candidates(), ", ");
	end
	return nil, table.concat(problems, "; ");
end

-- Without the library: list and revoke requests answer service-unavailable, the public API
-- fails the same way, and the shell commands say why they cannot run.
local function degrade(MODULE_VERSION, core_problem)
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
	local function why() return nil, "mod_client_management cannot load its native library: "..core_problem; end
	-- The commands' names and arguments (the library describes them, and it is missing).
	for _, names in ipairs({ { "user", "clients", "jid" }, { "user", "revoke_client", "jid", "selector" },
		{ "clients", "stats", "host" }, { "clients", "revoke", "host", "selector" }, { "clients", "prune", "host" } }) do
		local args = {};
		for i = 3, #names do table.insert(args, { name = names[i], type = "string" }); end
		module:add_item("shell-command", { section = names[1], name = names[2], host_selector = names[3], args = args,
			desc = "Unavailable: mod_client_management cannot load its native library",
			section_desc = "Clients of every account on a host (mod_client_management, unavailable)", handler = why });
	end
end

return { load = load_core, degrade = degrade };
