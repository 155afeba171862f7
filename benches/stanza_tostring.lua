-- util.stanza's serialisation as Prosody 13 does it (a buffer table of temporary strings,
-- gsub escaping, attributes in pairs order, xmlns left out where it repeats the parent's,
-- "\1"-namespaced attributes as xmlns:nsN), for a standalone Lua without Prosody: the
-- reference of core.serialize_stanza in the glue tests, and the baseline in the criterion
-- crossing bench. Sets the global `stanza_tostring(stanza)`.
local entities = { ["'"] = "&apos;", ["\""] = "&quot;", ["<"] = "&lt;", [">"] = "&gt;", ["&"] = "&amp;" };
local function escape(text) return (string.gsub(text, "['&<>\"]", entities)); end

local function write(element, out, parent_ns)
	local count = 0;
	out[#out + 1] = "<"..element.name;
	for key, value in pairs(element.attr) do
		local ns, local_name = string.match(key, "^([^\1]*)\1(.*)$");
		if ns then
			count = count + 1;
			out[#out + 1] = " xmlns:ns"..count.."='"..escape(ns).."' ns"..count..":"..local_name.."='"..escape(value).."'";
		elseif key ~= "xmlns" or value ~= parent_ns then
			out[#out + 1] = " "..key.."='"..escape(value).."'";
		end
	end
	if #element == 0 then
		out[#out + 1] = "/>";
		return;
	end
	out[#out + 1] = ">";
	for i = 1, #element do
		local child = element[i];
		if child.name then
			write(child, out, element.attr.xmlns);
		else
			out[#out + 1] = escape(child);
		end
	end
	out[#out + 1] = "</"..element.name..">";
end

function stanza_tostring(stanza)
	local out = {};
	write(stanza, out, nil);
	return table.concat(out);
end
