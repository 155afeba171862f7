-- Bench only (benches/e2e, issue 16): the two limits a list reply is measured against, served
-- by the same Prosody as the module, for the same account and content.
--
--   <stanza xmlns='urn:x-bench:limits'/>  C: answers with a util.stanza reply holding a
--                                         pre-built <clients/> element: what is left is
--                                         Prosody's serialisation and the write.
--   <string xmlns='urn:x-bench:limits'/>  D: answers with the same reply as a string already
--                                         serialised (only the iq's start tag is made per
--                                         request): the socket path alone.
--
-- The bench hands it the content through the shell: hold(username, clients_element).
local st = require "prosody.util.stanza";

local xmlns = "urn:x-bench:limits";
local held = {}; -- username → { stanza = <clients/>, bytes = tostring(<clients/>) }

function hold(username, clients) -- luacheck: ignore 131
	held[username] = { stanza = clients, bytes = tostring(clients) };
	return #held[username].bytes;
end

local function content(event)
	local it = held[event.origin.username];
	if not it then
		event.origin.send(st.error_reply(event.stanza, "cancel", "item-not-found", "nothing held for this account"));
	end
	return it;
end

module:hook("iq-get/self/"..xmlns..":stanza", function (event)
	local it = content(event);
	if it then
		local reply = st.reply(event.stanza);
		reply:add_direct_child(it.stanza);
		event.origin.send(reply);
	end
	return true;
end);

module:hook("iq-get/self/"..xmlns..":string", function (event)
	local it = content(event);
	if it then
		event.origin.send(st.reply(event.stanza):top_tag()..it.bytes.."</iq>");
	end
	return true;
end);
