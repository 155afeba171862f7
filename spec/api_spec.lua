-- ARCHITECTURE.md §8: the module globals other modules call (mod_audit_auth, Snikket).

local mock = require "mock_prosody";

local function by_id(list)
	local out = {};
	for _, entry in ipairs(list) do out[entry.id] = entry; end
	return out;
end

local function ids(list)
	local out = {};
	for _, entry in ipairs(list) do table.insert(out, entry.id); end
	return out;
end

-- Copies an account's stored clients, grants and FAST tokens into another account, straight
-- into storage (the module has not read the new account).
local function copy_account(ctx, from, to)
	for _, name in ipairs({ "clients", "auth_tokens", "fast_tokens" }) do
		local data = ctx:store(name).data;
		data[to] = mock.deep_copy(data[from]);
	end
end

-- pw: password client (online); fast: FAST-only client (offline); app: logged in with grant g1
-- (online); g2: a grant nothing logged in with.
local function scenario()
	local ctx = mock.loaded();
	local t0 = ctx.clock;
	local pw = ctx:sasl2_login({ client_id = "pw"; mechanism = "SCRAM-SHA-1"; bind2 = "pw";
		user_agent = { software = "Gajim" } });
	ctx:advance(10);
	local fast = ctx:sasl2_login({ client_id = "fast"; mechanism = "HT-SHA-256-NONE"; fast = true; bind2 = "fast";
		user_agent = { software = "Conversations"; device = "Pixel" } });
	ctx:add_fast_token("alice", "fast", "cur");
	ctx:detach(fast); -- went offline
	ctx:advance(10);
	local g1 = ctx:add_grant("alice", { id = "g1"; created = t0; accessed = t0 + 20;
		data = { oauth2_client = { name = "Conversations"; version = "2.17" } } });
	local app = ctx:sasl2_login({ client_id = "app"; mechanism = "OAUTHBEARER"; bind2 = "app";
		grant = mock.deep_copy(g1); user_agent = { software = "Conversations" } });
	ctx:advance(10);
	ctx:add_grant("alice", { id = "g2"; created = t0 + 25; accessed = t0 + 26;
		data = { oauth2_client = { name = "Some Web App" } } });
	ctx:advance(10);
	ctx.calls = {};
	return ctx, { pw = pw; fast = fast; app = app }, t0;
end

describe("get_active_clients", function ()
	local ctx, sessions, t0;
	before_each(function ()
		ctx, sessions, t0 = scenario();
	end);

	it("returns session and access entries in the community module's shape", function ()
		local list = ctx.env.get_active_clients("alice");
		assert.is_table(list);
		local entries = by_id(list);
		assert.same({ "client/app", "client/fast", "client/pw", "grant/g2" }, (function ()
			local t = ids(list); table.sort(t); return t;
		end)());

		local pw = entries["client/pw"];
		assert.equal("session", pw.type);
		assert.equal(t0, pw.first_seen);
		assert.equal(t0, pw.last_seen);
		assert.equal("Gajim", pw.user_agent.software);
		assert.is_number(pw.active.password);
		assert.is_true(pw.active.connected);
		assert.is_falsy(pw.active.fast);
		assert.is_falsy(pw.active.grant);

		local fast = entries["client/fast"];
		assert.equal("session", fast.type);
		assert.is_true(fast.active.fast);
		assert.is_falsy(fast.active.password);
		assert.is_falsy(fast.active.connected);

		local app = entries["client/app"];
		assert.equal("session", app.type);
		assert.is_table(app.active.grant);
		assert.equal("g1", app.active.grant.id);
		assert.is_true(app.active.connected);
		assert.is_falsy(app.active.password);

		local g2 = entries["grant/g2"];
		assert.equal("access", g2.type);
		assert.equal(t0 + 25, g2.first_seen);
		assert.equal(t0 + 26, g2.last_seen);
		assert.equal("Some Web App", g2.user_agent.software);
		assert.is_table(g2.active.grant);
	end);

	it("lists a client that logged in with a grant once, not also as the grant", function ()
		assert.is_nil(by_id(ctx.env.get_active_clients("alice"))["grant/g1"]);
	end);

	it("orders by last_seen, oldest first", function ()
		local list = ctx.env.get_active_clients("alice");
		local last = -math.huge;
		for _, entry in ipairs(list) do
			if entry.last_seen then
				assert.is_true(entry.last_seen >= last, "out of order at " .. entry.id);
				last = entry.last_seen;
			end
		end
		assert.same({ "client/pw", "client/fast", "client/app", "grant/g2" }, ids(list));
	end);

	it("leaves out clients that have no access left", function ()
		ctx.accounts.alice = { password_updated = ctx.clock }; -- password changed after every login
		-- Grants issued before a password change die with it (mod_tokenauth): these came after.
		for _, grant in pairs(ctx.grants.alice) do grant.created = ctx.clock; end
		ctx.fast_store.data.alice = nil;
		ctx.prosody.full_sessions = {};
		ctx.prosody.hosts[mock.HOST].sessions = {};
		local list = ctx.env.get_active_clients("alice");
		-- Only the grant-backed ones remain.
		assert.same({ "client/app", "grant/g2" }, ids(list));
	end);

	it("returns an empty list for an account with no clients", function ()
		assert.same({}, ctx.env.get_active_clients("bob"));
	end);

	-- Client records are read once per account, then served from the cache: a read failure
	-- shows for an account that has not been read yet (carol: alice's stored data, copied
	-- into storage directly).
	it("returns nil and an error when the store cannot be read", function ()
		copy_account(ctx, "alice", "carol");
		ctx.client_store.fail.get = "database is down";
		local list, err = ctx.env.get_active_clients("carol");
		assert.is_nil(list);
		assert.equal("database is down", err);
		assert.is_true(#ctx:log_messages("error") >= 1);

		ctx.client_store.fail.get = nil;
		list = ctx.env.get_active_clients("carol");
		assert.same({ "client/app", "client/fast", "client/pw", "grant/g2" }, (function ()
			local t = ids(list); table.sort(t); return t;
		end)());
	end);

	it("serves an account it has read from the cache, without reading the store again", function ()
		ctx.env.get_active_clients("alice");
		ctx.client_store.fail.get = "database is down";
		ctx.client_store.calls = {};
		local list, err = ctx.env.get_active_clients("alice");
		assert.is_table(list, tostring(err));
		assert.equal(4, #list);
		assert.same({}, ctx.client_store.calls);
	end);
end);

describe("revoke_client_access", function ()
	local ctx, sessions;
	before_each(function ()
		ctx, sessions = scenario();
	end);

	it("returns true and cuts a passwordless client off", function ()
		local ok, err = ctx.env.revoke_client_access("alice", "client/app");
		assert.is_true(ok, tostring(err));
		assert.is_nil(err);
		assert.is_nil(ctx.grants.alice.g1);
		assert.is_truthy(sessions.app.closed);
		assert.is_nil(by_id(ctx.env.get_active_clients("alice"))["client/app"]);
	end);

	it("returns true for a FAST-only client and removes its tokens", function ()
		assert.is_true((ctx.env.revoke_client_access("alice", "client/fast")));
		assert.is_false(ctx:has_fast_token("alice", "fast"));
		assert.is_nil(by_id(ctx.env.get_active_clients("alice"))["client/fast"]);
	end);

	it("returns nil, \"item-not-found\" for an unknown client", function ()
		local ok, err = ctx.env.revoke_client_access("alice", "client/unknown");
		assert.is_nil(ok);
		assert.equal("item-not-found", err);
		assert.same({}, ctx:revocation_calls());
	end);

	it("returns nil, \"password-reset-required\" for a password client and changes nothing", function ()
		ctx:add_fast_token("alice", "pw", "new");
		local ok, err = ctx.env.revoke_client_access("alice", "client/pw");
		assert.is_nil(ok);
		assert.equal("password-reset-required", err);
		assert.same({}, ctx:revocation_calls());
		assert.is_true(ctx:has_fast_token("alice", "pw"));
		assert.is_nil(sessions.pw.closed);
	end);

	it("revokes a grant by id", function ()
		assert.is_true((ctx.env.revoke_client_access("alice", "grant/g2")));
		assert.is_nil(ctx.grants.alice.g2);
	end);

	it("revokes every client of a software, not only the first", function ()
		local ok, err = ctx.env.revoke_client_access("alice", "software/Conversations");
		assert.is_true(ok, tostring(err));
		assert.is_false(ctx:has_fast_token("alice", "fast"));
		assert.is_nil(ctx.grants.alice.g1);
		assert.is_truthy(sessions.app.closed);
		assert.is_nil(sessions.pw.closed);
	end);

	it("revokes only the clients of a software version with software/<name>/<version>", function ()
		local ok, err = ctx.env.revoke_client_access("alice", "software/Conversations/2.17");
		assert.is_true(ok, tostring(err));
		assert.is_truthy(sessions.app.closed);
		assert.is_nil(ctx.grants.alice.g1);
		assert.is_true(ctx:has_fast_token("alice", "fast"), "a client without that version was revoked");
	end);

	it("revokes the other clients of a software and reports password-reset-required for one with a password", function ()
		ctx:sasl2_login({ client_id = "pw2"; mechanism = "PLAIN"; bind2 = "pw2"; user_agent = { software = "Conversations" } });
		ctx:add_fast_token("alice", "pw2", "cur");
		ctx.calls = {};
		local ok, err = ctx.env.revoke_client_access("alice", "software/Conversations");
		assert.is_nil(ok);
		assert.equal("password-reset-required", err);
		assert.is_false(ctx:has_fast_token("alice", "fast"));
		assert.is_nil(ctx.grants.alice.g1);
		assert.is_truthy(sessions.app.closed);
		assert.is_true(ctx:has_fast_token("alice", "pw2"), "the password client lost its FAST token");
		for _, call in ipairs(ctx:revocation_calls()) do
			assert.are_not.equal("pw2", call[3]);
			assert.are_not.equal("alice@localhost/pw2", call[2]);
		end
	end);

	it("revoking a grant also closes the sessions that logged in with it", function ()
		assert.is_true((ctx.env.revoke_client_access("alice", "grant/g1")));
		assert.is_nil(ctx.grants.alice.g1);
		assert.is_truthy(sessions.app.closed);
		assert.is_nil(sessions.pw.closed);
	end);

	it("counts an unused FAST token issued after the password change as access", function ()
		ctx.accounts.alice = { password_updated = ctx.clock - 5 };
		ctx:add_fast_token("alice", "pw", "new", { issued_at = ctx.clock - 1 });
		ctx:detach(sessions.pw);
		local entry = by_id(ctx.env.get_active_clients("alice"))["client/pw"];
		assert.is_not_nil(entry, "the client holding a fresh FAST token is not listed");
		assert.is_true(entry.active.fast);
		assert.is_falsy(entry.active.password);
	end);

	it("returns nil, \"internal-server-error\" when storage fails", function ()
		ctx.tokenauth_fail = "storage error";
		local ok, err = ctx.env.revoke_client_access("alice", "client/app");
		assert.is_nil(ok);
		assert.equal("internal-server-error", err);
	end);
end);
