-- mod_client_management's ad-hoc commands (XEP-0050), "Manage clients" and "Sign out all other
-- clients": on the account's own JID, and on the host's through mod_adhoc. Stateless: every
-- step acts for the requesting stream's own account, whatever session id it names. The core
-- names the commands, describes their forms (turned into util.dataforms here), reads each step
-- and writes every answer.

local st = require "prosody.util.stanza";
local dataforms = require "prosody.util.dataforms";
local jid_split = require "prosody.util.jid".split;
local adhoc = module:require "adhoc";

local xmlns_commands = "http://jabber.org/protocol/commands";
local host = module.host;

-- What the main file hands over (see the end of this file).
local core, over_budget, ask, stream_key, close_stream;

local function requesting_account(data, permission)
	local origin = data.origin;
	if origin.type ~= "c2s" or origin.host ~= host or not origin.username then return nil; end
	if not module:may(permission, { origin = origin, stanza = data.stanza }) then return nil; end
	return origin.username;
end

local function forbidden()
	return { status = "error", error = core.error("forbidden") };
end

-- A command's last answer: a note (`level`, `text`) as mod_adhoc takes it.
local function completed(note)
	return { status = "completed", [note.level] = note.level == "error" and { message = note.text } or note.text };
end

-- Asks the core for the requester's account: a form to show, or a plan it carries out and then
-- reports on (or, when the account could not be read, says so).
local function ask_for(data, question)
	local ok, request = pcall(ask, data.origin.username, question, data.origin);
	if not ok then -- mod_adhoc would leave the iq unanswered
		module:log("error", "Unable to answer %s's %s: %s", data.origin.username, question.question, tostring(request));
		return completed(core.adhoc_note("failed"));
	end
	local later = request.later;
	-- The requester signed itself out: it hears the answer, then goes.
	if #later > 0 then module:add_timer(0, function () for _, s in ipairs(later) do close_stream(s); end end); end
	local reply = request.reply;
	if reply and reply.form then
		return { status = "executing", actions = { "complete", default = "complete" }, form = dataforms.new(reply.form) };
	end
	return completed(reply and reply.note or core.adhoc_note("unreadable"));
end

-- What a command step asks for, as the core reads XEP-0050 (cancel, show the form, act on a
-- submitted form), or the answer that refuses it: not allowed, over the stream's budget, or a
-- malformed step.
local function command_step(data, permission)
	local step, malformed = core.adhoc_step(data.action, data.form and (data.form.attr.type or ""));
	if step == "cancel" then return step, { status = "canceled" }; end
	local username = requesting_account(data, permission);
	if not username then return step, forbidden(); end
	local refusal = malformed or over_budget(data.origin);
	if refusal then return step, { status = "error", error = refusal }; end
	return step, nil, username;
end

local handlers = {};

function handlers.manage(_, data)
	local step, answer = command_step(data, ":list-clients");
	if answer then return answer; end
	if step == "show-form" then return ask_for(data, { question = "manage_form" }); end
	if not requesting_account(data, ":manage-clients") then return forbidden(); end
	local fields = dataforms.new(core.adhoc_form("manage")):data(data.form);
	local picked = {};
	for _, value in ipairs(type(fields.revoke) == "table" and fields.revoke or {}) do
		if type(value) == "string" and value ~= "" then table.insert(picked, value); end
	end
	return ask_for(data, { question = "revoke_listed"; ids = picked });
end

handlers["sign-out-others"] = function (_, data)
	local step, answer = command_step(data, ":manage-clients");
	if answer then return answer; end
	local confirmed = false;
	if step ~= "show-form" then
		if dataforms.new(core.adhoc_form("sign-out-others")):data(data.form).confirm ~= true then
			return completed(core.adhoc_note("nothing-changed"));
		end
		confirmed = true;
	end
	return ask_for(data, { question = "sign_out_others"; requester = stream_key(data.origin); confirmed = confirmed });
end

return function (m)
	core, over_budget, ask, stream_key, close_stream = m.core, m.over_budget, m.ask, m.stream_key, m.close_stream;

	local commands = {};
	for _, command in ipairs(core.adhoc_commands()) do
		table.insert(commands, adhoc.new(command.name, command.node, handlers[command.key], "local_user"));
	end

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
		event.origin.send(st.error_reply(event.stanza, core.error("no-such-command")));
		return true;
	end);
end;
