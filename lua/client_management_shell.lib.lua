-- mod_client_management's admin shell commands (mod_admin_shell): `user clients`, `user
-- revoke_client`, `clients stats`, `clients revoke`, `clients prune`, and the daily prune. They
-- work both as `prosodyctl shell user clients JID` and interactively as `user:clients(JID)`.
-- The core describes the commands, writes what they answer and keeps the tallies.

local async = require "prosody.util.async";
local promise = require "prosody.util.promise";
local usermanager = require "prosody.core.usermanager";
local jid_split = require "prosody.util.jid".split;

local host = module.host;

-- What the main file hands over (see the end of this file).
local core, ask, close_stream;
local client_store, grant_store, old_legacy_index;

local function account_of(user_jid)
	local username = jid_split(user_jid);
	if not username then
		return nil, core.shell_text("no-jid");
	end
	if not usermanager.user_exists(username, host) then
		return nil, core.shell_text("no-such-account", user_jid);
	end
	return username;
end

-- From the command line, one print for the whole text (each print is a message over the admin
-- socket); the interactive console prefixes each print, so it gets lines.
local function print_lines(session, lines)
	if session.repl then
		for _, line in ipairs(lines) do session.print(line); end
	elseif #lines > 0 then
		session.print(table.concat(lines, "\n"));
	end
end

-- Host-wide commands walk the accounts through the storage API, yielding between batches so
-- that the server keeps serving.
local BATCH = 50;
local PROGRESS_EVERY = 500;

-- Calls `visit(username)` for each account with stored clients and, with `with_grants`, each
-- account that only has grants; returns how many were visited.
local function each_account(print, visit, with_grants)
	local n = 0;
	local function step(username)
		n = n + 1;
		visit(username);
		if n % PROGRESS_EVERY == 0 then print(core.shell_text("progress", n)); end
		if n % BATCH == 0 then async.sleep(0); end
	end
	for username in client_store:items() do step(username); end
	if with_grants then
		for username in grant_store:items() do
			if client_store:get(username) == nil then step(username); end
		end
	end
	return n;
end

local function run_async(job)
	return promise.new(function (resolve, reject)
		async.runner(function ()
			local ok, result, err = pcall(job);
			if not ok then
				reject(tostring(result));
			elseif result == nil then
				reject(err);
			else
				resolve(result);
			end
		end):run(true);
	end);
end

-- Retention, the record limit and the privacy options over every account of the host.
local function prune_host(print, dry_run)
	local tally = core.new_host_prune(dry_run);
	each_account(print, function (username)
		-- The core stores what it changed at once; a write that failed counts.
		local request = ask(username, { question = "prune"; dry_run = dry_run });
		local reply = request.reply;
		if not reply then
			tally:failed();
			return;
		end
		tally:pruned(reply.pruned.deleted);
		if not request.ok then tally:failed(); end
	end);
	if not dry_run and old_legacy_index then
		local users = {};
		for username in old_legacy_index:users() do table.insert(users, username); end
		for _, username in ipairs(users) do old_legacy_index:set(username, nil); end
	end
	return tally;
end

local function dry_run_of(opts, selector)
	-- From the command line flags come before positional leftovers; interactively the caller
	-- passes (host, selector, { dry_run = true }).
	if type(opts) ~= "table" then opts, selector = selector, opts; end
	return type(opts) == "table" and opts.dry_run and true or false, selector;
end

local handlers = {
	clients = function (self, user_jid)
		local username, err = account_of(user_jid);
		if not username then return nil, err; end
		local reply = ask(username, { question = "client_lines"; width = self.session.width or 80 }).reply;
		if not reply then
			return nil, core.shell_text("unreadable");
		end
		if reply.count == 0 then
			return true, core.shell_text("no-clients");
		end
		print_lines(self.session, reply.lines);
		return true, core.shell_text("clients", reply.count);
	end;

	revoke_client = function (_, user_jid, selector)
		local username, err = account_of(user_jid);
		if not username then return nil, err; end
		local problem = core.selector_problem(selector);
		if problem then return nil, problem; end
		local ok, revoke_err = revoke_client_access(username, selector);
		if not ok then
			return nil, core.shell_text("revocation-failed", tostring(revoke_err));
		end
		return true, core.shell_text("revoked");
	end;

	stats = function (self)
		local print = self.session.print;
		return run_async(function ()
			local stats = core.new_software_stats();
			each_account(print, function (username)
				local reply = ask(username, { question = "software_stats" }).reply;
				if reply then
					stats:add(reply.stats);
				else
					stats:unreadable();
				end
			end, true);
			for _, line in ipairs(stats:lines(self.session.width or 80)) do print(line); end
			return stats:summary();
		end);
	end;

	revoke = function (self, _, opts, selector)
		local dry_run;
		dry_run, selector = dry_run_of(opts, selector);
		local walk, wrong = core.new_host_revocation(selector, dry_run);
		if not walk then return nil, wrong; end
		local print = self.session.print;
		return run_async(function ()
			each_account(print, function (username)
				local request = ask(username, { question = "host_revoke"; selector = selector }, nil, function (plan)
					return walk:plan(plan.revoked, plan.password_protected);
				end);
				for _, session in ipairs(request.later) do close_stream(session); end
				if not request.plan then
					walk:unreadable();
				elseif request.complete ~= nil then
					walk:carried_out(request.plan.revoked, request.complete);
				end
			end, true);
			return walk:summary();
		end);
	end;

	prune = function (self, _, opts)
		local dry_run = dry_run_of(opts);
		return run_async(function ()
			return prune_host(self.session.print, dry_run):summary();
		end);
	end;
};

return function (m)
	core, ask, close_stream = m.core, m.ask, m.close_stream;
	client_store, grant_store, old_legacy_index = m.client_store, m.grant_store, m.old_legacy_index;

	for _, command in ipairs(core.shell_commands()) do
		command.handler = handlers[command.name];
		module:add_item("shell-command", command);
	end

	module:daily("Prune client records", function ()
		local deleted, accounts, failed = prune_host(function () end, false):counts();
		module:log("info", "Pruned %d client record(s) from %d account(s), %d account(s) failed", deleted, accounts, failed);
	end);
end;
