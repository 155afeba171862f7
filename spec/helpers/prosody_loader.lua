-- Makes `require "prosody.util.x"` find /usr/lib/prosody/util/x.lua (or .so), the way
-- Prosody's own loader (/usr/lib/prosody/loader.lua) does: strip the "prosody." prefix and
-- search again, and make package.loaded answer for both spellings of a name.
-- Run once by busted through the `helper` option in .busted.

local PROSODY_LUA = "/usr/lib/prosody/?.lua;/usr/lib/prosody/?/init.lua";
local PROSODY_C = "/usr/lib/prosody/?.so";

if not package.path:find("/usr/lib/prosody/", 1, true) then
	package.path = PROSODY_LUA .. ";" .. package.path;
end
if not package.cpath:find("/usr/lib/prosody/", 1, true) then
	package.cpath = PROSODY_C .. ";" .. package.cpath;
end

if not package.loaded["spec.prosody_loader"] then
	package.loaded["spec.prosody_loader"] = true;

	-- "prosody.util.stanza" -> /usr/lib/prosody/util/stanza.lua
	table.insert(package.searchers, 2, function (name)
		local rest = name:match("^prosody%.(.+)$");
		if not rest then return nil; end
		local path = package.searchpath(rest, PROSODY_LUA);
		if path then
			local chunk, err = loadfile(path);
			if not chunk then error(err, 0); end
			return chunk, path;
		end
		path = package.searchpath(rest, PROSODY_C);
		if path then
			local open = "luaopen_" .. rest:gsub("%.", "_");
			local loader, err = package.loadlib(path, open);
			if not loader then error(err, 0); end
			return loader, path;
		end
		return ("\n\tno Prosody file for '%s' under /usr/lib/prosody"):format(rest);
	end);

	-- A module loaded as "util.x" is also "prosody.util.x", and the other way round.
	setmetatable(package.loaded, {
		__index = function (loaded, name)
			local suffix = name:match("^prosody%.(.*)$");
			if suffix then
				return rawget(loaded, suffix);
			end
			return rawget(loaded, "prosody." .. name);
		end;
	});
end
