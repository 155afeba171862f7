-- Storage use: client records are read once per account and cached (LRU of
-- client_management_cache_size accounts); logins that change a client's access are written at
-- once with set_keys, other updates are batched for client_management_write_delay seconds (and
-- flushed on unload / server-stopping); grants are cached up to client_management_grant_cache_ttl
-- and dropped on mod_tokenauth's events and grant logins; FAST tokens are dropped after every
-- SASL2 success of the account; revocations re-read grants and FAST tokens before deciding.
--
-- Time: the mock preloads prosody.util.time with now() = ctx.clock + 0.25 while the module
-- loads, so the module's time_now follows ctx:advance(); os.time() in the module is ctx.clock.

local mock = require "mock_prosody";

local function by_id(list)
	local out = {};
	for _, entry in ipairs(list or {}) do out[entry.id] = entry; end
	return out;
end

local function sorted_keys(t)
	local out = {};
	for k in pairs(t or {}) do table.insert(out, k); end
	table.sort(out);
	return out;
end

local function records_of(ctx, username)
	return ctx.client_store.data[username or "alice"] or {};
end

-- The writes of the clients store since `since` (index into ctx.client_store.calls), as
-- { username, { ids written } }.
local function client_writes(ctx, since)
	local out = {};
	for i = (since or 0) + 1, #ctx.client_store.calls do
		local call = ctx.client_store.calls[i];
		if call[1] == "set_keys" or call[1] == "set_key" or call[1] == "set" then
			assert.equal("set_keys", call[1], "the clients store was written with " .. call[1]);
			table.insert(out, { call[2], sorted_keys(call[3]) });
		end
	end
	return out;
end

local function client_reads(ctx, since)
	local n = 0;
	for i = (since or 0) + 1, #ctx.client_store.calls do
		local method = ctx.client_store.calls[i][1];
		if method == "get" or method == "get_key" then n = n + 1; end
	end
	return n;
end

local function mark(ctx)
	return #ctx.client_store.calls;
end

local function new_client_events(ctx)
	local n = 0;
	for _, f in ipairs(ctx.fired) do
		if f.name == "client_management/new-client" then n = n + 1; end
	end
	return n;
end

local function listed(ctx, username)
	local list, err = ctx.env.get_active_clients(username or "alice");
	assert.is_table(list, tostring(err));
	return by_id(list), list;
end

describe("batched record updates", function ()
	local ctx, t0;
	before_each(function ()
		ctx = mock.loaded();
		t0 = ctx.clock;
	end);

	it("are listed at once and stored after the write delay", function ()
		ctx:sasl2_login({ client_id = "c1"; mechanism = "SCRAM-SHA-1"; bind2 = "phone";
			user_agent = { software = "Dino"; device = "Laptop" } });
		assert.same({}, ctx:timer_delays(), "a new client was left to a timer");
		local m = mark(ctx);
		local t1 = ctx:advance(30);
		ctx:sasl2_login({ client_id = "c1"; mechanism = "SCRAM-SHA-1"; bind2 = "tablet";
			user_agent = { software = "Dino 0.5"; device = "Tablet" } });

		assert.same({}, client_writes(ctx, m), "an update that changes no access was written at once");
		assert.equal(1, #ctx:timer_delays());
		assert.equal(10, ctx:timer_delays()[1], "default client_management_write_delay");

		local entry = listed(ctx)["client/c1"];
		assert.equal(t1, entry.last_seen);
		assert.equal(t0, entry.first_seen);
		assert.equal("alice@localhost/tablet", entry.full_jid);
		assert.equal("Dino 0.5", entry.user_agent.software);
		assert.equal("Tablet", entry.user_agent.device);

		local stored = records_of(ctx).c1;
		assert.equal(t0, stored.last_seen);
		assert.equal("alice@localhost/phone", stored.full_jid);
		assert.equal("Dino", stored.user_agent.software);

		ctx:run_timers();
		assert.same({ { "alice", { "c1" } } }, client_writes(ctx, m));
		stored = records_of(ctx).c1;
		assert.equal(t1, stored.last_seen);
		assert.equal(t0, stored.first_seen);
		assert.equal("alice@localhost/tablet", stored.full_jid);
		assert.same({ ["SCRAM-SHA-1"] = t1 }, stored.mechanisms);
		assert.same({ software = "Dino 0.5"; device = "Tablet" }, stored.user_agent);
		assert.same({}, ctx:log_messages("error"));
	end);

	it("wait client_management_write_delay seconds", function ()
		ctx = mock.loaded({ options = { client_management_write_delay = 42 } });
		ctx:sasl2_login({ client_id = "c1"; bind2 = "a" });
		ctx:advance(5);
		ctx:sasl2_login({ client_id = "c1"; bind2 = "b" });
		assert.equal(1, #ctx:timer_delays());
		assert.equal(42, ctx:timer_delays()[1]);
	end);

	it("of an account go out together, in one write, with one timer per account", function ()
		ctx:sasl2_login({ client_id = "c1"; bind2 = "a" });
		ctx:sasl2_login({ client_id = "c2"; bind2 = "b" });
		ctx:sasl2_login({ username = "bob"; client_id = "b1"; bind2 = "x" });
		local m = mark(ctx);
		local t1 = ctx:advance(20);
		ctx:sasl2_login({ client_id = "c1"; bind2 = "a" });
		ctx:sasl2_login({ client_id = "c2"; bind2 = "b" });
		ctx:sasl2_login({ client_id = "c1"; bind2 = "a2" });
		ctx:sasl2_login({ username = "bob"; client_id = "b1"; bind2 = "y" });
		assert.equal(2, #ctx:timer_delays(), "expected one timer for alice and one for bob");
		assert.same({}, client_writes(ctx, m));

		ctx:run_timers();
		local writes = client_writes(ctx, m);
		table.sort(writes, function (a, b) return a[1] < b[1]; end);
		assert.same({ { "alice", { "c1", "c2" } }, { "bob", { "b1" } } }, writes);
		assert.equal("alice@localhost/a2", records_of(ctx).c1.full_jid);
		assert.equal(t1, records_of(ctx).c2.last_seen);
		assert.equal("bob@localhost/y", records_of(ctx, "bob").b1.full_jid);

		-- Nothing is left to write.
		m = mark(ctx);
		ctx:run_timers();
		ctx:fire_global("server-stopping", {});
		assert.same({}, client_writes(ctx, m));
	end);

	it("include legacy re-binds with a mechanism used before", function ()
		ctx:legacy_login({ mechanism = "PLAIN"; resource = "desktop" });
		local id = next(records_of(ctx));
		local m = mark(ctx);
		local t1 = ctx:advance(100);
		ctx:legacy_login({ mechanism = "PLAIN"; resource = "desktop" });
		assert.same({}, client_writes(ctx, m));
		assert.equal(t1, listed(ctx)["client/" .. id].last_seen);
		assert.equal(t0, records_of(ctx)[id].last_seen);
		ctx:run_timers();
		assert.same({ { "alice", { id } } }, client_writes(ctx, m));
		assert.equal(t1, records_of(ctx)[id].last_seen);
	end);

	-- An account with changes not stored yet stays in memory, whatever the cache does: its
	-- records are held once, and never read back over newer ones.
	it("are still listed when the account left the cache before they were written", function ()
		ctx = mock.loaded({ options = { client_management_cache_size = 1 } });
		ctx:sasl2_login({ client_id = "c1"; bind2 = "a" });
		local t1 = ctx:advance(30);
		ctx:sasl2_login({ client_id = "c1"; bind2 = "b" }); -- batched
		listed(ctx, "bob"); -- alice leaves the cache
		local m = mark(ctx);
		local entry = listed(ctx)["client/c1"];
		assert.equal(0, client_reads(ctx, m), "alice's records were read over the pending update");
		assert.equal(t1, entry.last_seen);
		assert.equal("alice@localhost/b", entry.full_jid);
		assert.equal(t0, records_of(ctx).c1.last_seen);
		ctx:run_timers();
		assert.equal(t1, records_of(ctx).c1.last_seen);
	end);

	it("of a deleted account are dropped", function ()
		ctx:sasl2_login({ client_id = "c1"; bind2 = "a" });
		ctx:advance(30);
		ctx:sasl2_login({ client_id = "c1"; bind2 = "b" }); -- batched
		ctx.client_store.data.alice = nil; -- the account's data goes with it
		-- As core/usermanager.lua fires it: on the global bus, for every host.
		ctx:fire_global("user-deleted", { username = "alice"; host = "other.example" });
		ctx:fire_global("user-deleted", { username = "alice"; host = mock.HOST });
		local m = mark(ctx);
		ctx:run_timers();
		ctx:fire_global("server-stopping", {});
		assert.same({}, client_writes(ctx, m));
		assert.is_nil(ctx.client_store.data.alice, "a deleted account's client came back");
		assert.same({}, ctx:timer_delays(), "the account's write timer is still set");

		-- A new account of the same name starts empty.
		ctx:sasl2_login({ client_id = "fresh"; bind2 = "a" });
		assert.same({ "client/fresh" }, sorted_keys(listed(ctx)));
	end);

	it("of an account deleted on another host are kept", function ()
		ctx:sasl2_login({ client_id = "c1"; bind2 = "a" });
		ctx:advance(30);
		ctx:sasl2_login({ client_id = "c1"; bind2 = "b" }); -- batched
		ctx:fire_global("user-deleted", { username = "alice"; host = "other.example" });
		local m = mark(ctx);
		ctx:run_timers();
		assert.same({ { "alice", { "c1" } } }, client_writes(ctx, m));
	end);
end);

describe("logins that change a client's access", function ()
	local ctx, t0;
	before_each(function ()
		ctx = mock.loaded();
		t0 = ctx.clock;
	end);

	-- Logs in twice as client c1 and returns the writes the second login made at once.
	local function second_login(first, second)
		first.client_id, second.client_id = "c1", "c1";
		first.bind2, second.bind2 = first.bind2 or "a", second.bind2 or "b";
		ctx:sasl2_login(first);
		local m = mark(ctx);
		ctx:advance(60);
		ctx:sasl2_login(second);
		return client_writes(ctx, m);
	end

	it("are stored at once when the client first uses the password", function ()
		local writes = second_login({ mechanism = "OAUTHBEARER"; grant = { id = "g1"; data = {} } }, { mechanism = "PLAIN" });
		assert.same({ { "alice", { "c1" } } }, writes);
		assert.same({ OAUTHBEARER = t0; PLAIN = t0 + 60 }, records_of(ctx).c1.mechanisms);
		assert.equal("alice@localhost/b", records_of(ctx).c1.full_jid);
		assert.same({}, ctx:timer_delays());
	end);

	it("are batched when another password mechanism adds no access", function ()
		local writes = second_login({ mechanism = "SCRAM-SHA-1" }, { mechanism = "PLAIN" });
		assert.same({}, writes);
		assert.equal(1, #ctx:timer_delays());
	end);

	it("are stored at once on the first FAST login", function ()
		local writes = second_login({ mechanism = "SCRAM-SHA-1" }, { mechanism = "HT-SHA-256-NONE"; fast = true });
		assert.same({ { "alice", { "c1" } } }, writes);
		assert.equal(t0 + 60, records_of(ctx).c1.fast_auth);
		assert.same({}, ctx:timer_delays());

		-- The next FAST login changes nothing but times.
		local m = mark(ctx);
		ctx:advance(60);
		ctx:sasl2_login({ client_id = "c1"; mechanism = "HT-SHA-256-NONE"; fast = true; bind2 = "b" });
		assert.same({}, client_writes(ctx, m));
		assert.equal(1, #ctx:timer_delays());
	end);

	it("are stored at once on the first FAST login even with a mechanism used before", function ()
		local writes = second_login({ mechanism = "HT-SHA-256-NONE" }, { mechanism = "HT-SHA-256-NONE"; fast = true });
		assert.same({ { "alice", { "c1" } } }, writes);
		assert.equal(t0 + 60, records_of(ctx).c1.fast_auth);
	end);

	it("are stored at once on a login with a new grant", function ()
		local writes = second_login(
			{ mechanism = "OAUTHBEARER"; grant = { id = "g1"; data = {} } },
			{ mechanism = "OAUTHBEARER"; grant = { id = "g2"; data = {} } });
		assert.same({ { "alice", { "c1" } } }, writes);
		assert.equal("g2", records_of(ctx).c1.auth_token_id);

		local m = mark(ctx);
		ctx:advance(60);
		ctx:sasl2_login({ client_id = "c1"; mechanism = "OAUTHBEARER"; grant = { id = "g2"; data = {} }; bind2 = "b" });
		assert.same({}, client_writes(ctx, m), "the same grant again was written at once");
	end);

	it("are stored at once on a password login after the password changed", function ()
		ctx:sasl2_login({ client_id = "c1"; mechanism = "SCRAM-SHA-1"; bind2 = "a" });
		ctx:advance(60);
		ctx.accounts.alice = { password_updated = ctx.clock };
		local m = mark(ctx);
		local t2 = ctx:advance(60);
		ctx:sasl2_login({ client_id = "c1"; mechanism = "SCRAM-SHA-1"; bind2 = "a" });
		assert.same({ { "alice", { "c1" } } }, client_writes(ctx, m));
		assert.equal(t2, records_of(ctx).c1.mechanisms["SCRAM-SHA-1"]);
		assert.same({}, ctx:timer_delays());

		-- Used since the change: batched again.
		m = mark(ctx);
		ctx:advance(60);
		ctx:sasl2_login({ client_id = "c1"; mechanism = "SCRAM-SHA-1"; bind2 = "a" });
		assert.same({}, client_writes(ctx, m));
	end);

	it("are stored at once on a legacy re-bind that first uses the password", function ()
		ctx:legacy_login({ mechanism = "OAUTHBEARER"; grant = { id = "g1"; data = {} }; resource = "desktop" });
		local id = next(records_of(ctx));
		local m = mark(ctx);
		ctx:advance(60);
		ctx:legacy_login({ mechanism = "SCRAM-SHA-1"; resource = "desktop" });
		assert.same({ { "alice", { id } } }, client_writes(ctx, m));
		assert.same({ OAUTHBEARER = t0; ["SCRAM-SHA-1"] = t0 + 60 }, records_of(ctx)[id].mechanisms);
	end);

	-- A SASL2 client without Bind 2 whose record could not be written at <success>: the record
	-- stays queued (listed, revocable), gets its JID at the late bind, and is stored once
	-- storage works; new-client fires once.
	it("stay queued when the first write fails, and are stored once storage works", function ()
		ctx.client_store.fail.set_keys = "disk full";
		local session = ctx:sasl2_login({ client_id = "late"; mechanism = "SCRAM-SHA-1" });
		assert.is_nil(records_of(ctx).late);
		assert.equal(1, new_client_events(ctx));
		assert.same({ "client/late" }, sorted_keys(listed(ctx)), "a client whose write failed is not listed");
		ctx:advance(2);
		ctx:bind(session, "laptop"); -- storage still failing
		ctx:run_timers();
		assert.is_nil(records_of(ctx).late);
		ctx.client_store.fail.set_keys = nil;

		local m = mark(ctx);
		ctx:run_timers(); -- the retry
		assert.same({ { "alice", { "late" } } }, client_writes(ctx, m));
		assert.equal("alice@localhost/laptop", records_of(ctx).late and records_of(ctx).late.full_jid);
		assert.equal(1, new_client_events(ctx), "new-client fired twice");
	end);

	it("take the account's pending updates along in the same write", function ()
		ctx:sasl2_login({ client_id = "c1"; bind2 = "a" });
		local t1 = ctx:advance(60);
		ctx:sasl2_login({ client_id = "c1"; bind2 = "a2" }); -- batched
		local m = mark(ctx);
		ctx:sasl2_login({ client_id = "c2"; bind2 = "b" }); -- new client
		assert.same({ { "alice", { "c1", "c2" } } }, client_writes(ctx, m));
		assert.equal(t1, records_of(ctx).c1.last_seen);
		assert.equal("alice@localhost/a2", records_of(ctx).c1.full_jid);

		m = mark(ctx);
		ctx:run_timers(); -- the batch's timer finds nothing left
		assert.same({}, client_writes(ctx, m));
	end);
end);

describe("pending writes", function ()
	local ctx, t1;
	before_each(function ()
		ctx = mock.loaded();
		ctx:sasl2_login({ client_id = "c1"; bind2 = "a" });
		ctx:sasl2_login({ username = "bob"; client_id = "b1"; bind2 = "x" });
		t1 = ctx:advance(60);
		ctx:sasl2_login({ client_id = "c1"; bind2 = "a2" });
		ctx:sasl2_login({ username = "bob"; client_id = "b1"; bind2 = "x2" });
	end);

	local function assert_flushed(m)
		local writes = client_writes(ctx, m);
		table.sort(writes, function (a, b) return a[1] < b[1]; end);
		assert.same({ { "alice", { "c1" } }, { "bob", { "b1" } } }, writes);
		assert.equal(t1, records_of(ctx).c1.last_seen);
		assert.equal("alice@localhost/a2", records_of(ctx).c1.full_jid);
		assert.equal("bob@localhost/x2", records_of(ctx, "bob").b1.full_jid);
		-- Written once: the timers find nothing left.
		m = mark(ctx);
		ctx:run_timers();
		assert.same({}, client_writes(ctx, m));
	end

	it("are written when the module is unloaded", function ()
		assert.is_function(ctx.module.unload);
		local m = mark(ctx);
		ctx.module.unload();
		assert_flushed(m);
	end);

	it("are written when the server stops", function ()
		assert.is_not_nil(ctx.global_handlers["server-stopping"], "no global server-stopping hook");
		local m = mark(ctx);
		ctx:fire_global("server-stopping", { reason = "test" });
		assert_flushed(m);
	end);

	it("of every other account are written on unload when one account's write raises", function ()
		local set_keys = ctx.client_store.set_keys;
		function ctx.client_store:set_keys(username, values)
			if username == "alice" then error("injected failure"); end
			return set_keys(self, username, values);
		end
		local m = mark(ctx);
		ctx.module.unload(); -- alice comes first (the core names accounts in order)
		assert.same({ { "bob", { "b1" } } }, client_writes(ctx, m));
		assert.equal("bob@localhost/x2", records_of(ctx, "bob").b1.full_jid);
	end);

	it("leave nothing to write on unload once written", function ()
		ctx:run_timers();
		local m = mark(ctx);
		ctx.module.unload();
		ctx:fire_global("server-stopping", {});
		assert.same({}, client_writes(ctx, m));
	end);
end);

describe("a failed write", function ()
	local ctx, t0;
	before_each(function ()
		ctx = mock.loaded();
		t0 = ctx.clock;
		ctx:sasl2_login({ client_id = "c1"; bind2 = "a"; user_agent = { software = "Dino" } });
		listed(ctx); -- cached
	end);

	it("of a new client keeps it listed and queued, and is retried with backoff", function ()
		ctx.client_store.fail.set_keys = "disk full";
		ctx:sasl2_login({ client_id = "c2"; bind2 = "b" });
		assert.is_true(#ctx:log_messages("error") >= 1);
		assert.equal(2, new_client_events(ctx), "c1 and c2, once each");
		local m = mark(ctx);
		assert.same({ "client/c1", "client/c2" }, sorted_keys(listed(ctx)));
		assert.equal(0, client_reads(ctx, m), "storage was read over the queued record");
		assert.same({ 10 }, ctx:timer_delays(), "the first retry after the write delay");
		ctx:run_timers();
		assert.same({ 20 }, ctx:timer_delays(), "the next one backs off");
		ctx.client_store.fail.set_keys = nil;
		ctx:run_timers();
		assert.is_not_nil(records_of(ctx).c2, "the record never reached storage");
		assert.same({}, ctx:timer_delays());
	end);

	it("of batched updates keeps them, and stores them once storage works", function ()
		local t1 = ctx:advance(60);
		ctx:sasl2_login({ client_id = "c1"; bind2 = "a2"; user_agent = { software = "Dino 2" } });
		ctx.client_store.fail.set_keys = "disk full";
		ctx:run_timers();
		assert.is_true(#ctx:log_messages("error") >= 1);
		assert.equal(t1, listed(ctx)["client/c1"].last_seen);
		assert.equal(t0, records_of(ctx).c1.last_seen);
		ctx.client_store.fail.set_keys = nil;
		ctx:run_timers();
		assert.equal(t1, records_of(ctx).c1.last_seen, "the batch was dropped");
		assert.equal("Dino 2", records_of(ctx).c1.user_agent.software);
	end);

	it("does not stop later logins from being recorded", function ()
		ctx.client_store.fail.set_keys = "disk full";
		ctx:sasl2_login({ client_id = "c2"; bind2 = "b" });
		ctx.client_store.fail.set_keys = nil;
		local t1 = ctx:advance(60);
		ctx:sasl2_login({ client_id = "c2"; bind2 = "b" });
		ctx:fire_global("server-stopping", {});
		assert.equal(t0, records_of(ctx).c2.first_seen, "the client is new once");
		assert.equal(t1, records_of(ctx).c2.last_seen);
		assert.same({ "client/c1", "client/c2" }, sorted_keys(listed(ctx)));
	end);
end);

describe("cached facts", function ()
	local ctx, session, t0;
	before_each(function ()
		ctx = mock.loaded();
		t0 = ctx.clock;
		session = ctx:sasl2_login({ client_id = "c1"; mechanism = "SCRAM-SHA-1"; bind2 = "desk";
			user_agent = { software = "Gajim" } });
		ctx:add_grant("alice", { id = "g1"; created = t0; accessed = t0;
			data = { oauth2_client = { name = "Web App" } };
			tokens = { ["sha256:1"] = { created = t0; expires = t0 + 86400 } } });
		ctx:advance(1);
	end);

	it("a client record is not re-read once cached, even after an external change", function ()
		assert.equal("Gajim", listed(ctx)["client/c1"].user_agent.software);
		ctx.client_store.data.alice.c1.user_agent.software = "Changed behind our back";
		ctx.client_store.data.alice.c9 = { id = "c9"; first_seen = t0; last_seen = t0;
			mechanisms = { PLAIN = t0 } };
		local m = mark(ctx);
		ctx:advance(3600); -- records have no TTL
		local entries = listed(ctx);
		assert.equal(0, client_reads(ctx, m));
		assert.equal("Gajim", entries["client/c1"].user_agent.software);
		assert.is_nil(entries["client/c9"]);
	end);

	it("a grant created later is listed once token-grant-created fires", function ()
		assert.is_not_nil(listed(ctx)["grant/g1"]);
		ctx:add_grant("alice", { id = "g2"; created = ctx.clock; accessed = ctx.clock;
			data = { oauth2_client = { name = "Other App" } } });
		assert.is_nil(listed(ctx)["grant/g2"], "grants were not cached");
		ctx:fire("token-grant-created", { username = "bob"; host = mock.HOST });
		assert.is_nil(listed(ctx)["grant/g2"], "another account's event dropped alice's grants");
		ctx:fire("token-grant-created", { username = "alice"; host = mock.HOST });
		local entry = listed(ctx)["grant/g2"];
		assert.is_not_nil(entry, "the new grant is not listed after token-grant-created");
		assert.equal("Other App", entry.user_agent.software);
	end);

	for _, event in ipairs({ "token-grant-revoked", "token-revoked" }) do
		it("a grant removed by mod_tokenauth is gone once " .. event .. " fires", function ()
			assert.is_not_nil(listed(ctx)["grant/g1"]);
			ctx.grants.alice.g1 = nil;
			assert.is_not_nil(listed(ctx)["grant/g1"], "grants were not cached");
			ctx:fire(event, { username = "alice"; host = mock.HOST });
			assert.is_nil(listed(ctx)["grant/g1"]);
		end);
	end

	it("a grant whose tokens change is seen again after client_management_grant_cache_ttl (60 s)", function ()
		ctx.user_roles.alice = ctx.all_roles["prosody:member"];
		local function permission()
			local reply = ctx:list(session, mock.NS_CAM);
			local clients = mock.reparse(reply):get_child("clients", mock.NS_CAM);
			for client in clients:childtags("client", mock.NS_CAM) do
				if client.attr.id == "grant/g1" then
					return client:get_child("permission", mock.NS_CAM).attr.status,
						client:get_child_text("last-seen", mock.NS_CAM);
				end
			end
		end
		local status, last_seen = permission();
		assert.equal("normal", status);
		assert.equal(os.date("!%Y-%m-%dT%H:%M:%SZ", t0), last_seen);
		local loaded_at = ctx.clock;

		-- The grant's token is replaced by one with a narrower role, which is used.
		ctx.grants.alice.g1.tokens = { ["sha256:2"] = { role = "prosody:guest"; created = ctx.clock } };
		ctx.grants.alice.g1.accessed = ctx.clock;
		ctx:advance(59);
		status, last_seen = permission();
		assert.equal("normal", status, "grants re-read before the TTL ran out");
		assert.equal(os.date("!%Y-%m-%dT%H:%M:%SZ", t0), last_seen);

		ctx:advance(2);
		assert.is_true(ctx.clock - loaded_at > 60);
		status, last_seen = permission();
		assert.equal("restricted", status, "grants not re-read after the TTL (does time_now follow ctx.clock?)");
		assert.equal(os.date("!%Y-%m-%dT%H:%M:%SZ", loaded_at), last_seen);
	end);

	it("grants are re-read after client_management_grant_cache_ttl as configured", function ()
		ctx = mock.loaded({ options = { client_management_grant_cache_ttl = 5 } });
		ctx:add_grant("alice", { id = "g1"; created = ctx.clock; accessed = ctx.clock });
		assert.is_not_nil(listed(ctx)["grant/g1"]);
		ctx:add_grant("alice", { id = "g2"; created = ctx.clock; accessed = ctx.clock });
		ctx:advance(4);
		assert.is_nil(listed(ctx)["grant/g2"]);
		ctx:advance(2);
		assert.is_not_nil(listed(ctx)["grant/g2"]);
	end);

	it("grants are re-read after a login with a grant token", function ()
		assert.equal(t0, listed(ctx)["grant/g1"].last_seen);
		ctx.grants.alice.g1.accessed = ctx.clock;
		local accessed = ctx.clock;
		ctx:sasl2_login({ client_id = "c2"; mechanism = "SCRAM-SHA-1"; bind2 = "x" });
		assert.equal(t0, listed(ctx)["grant/g1"].last_seen, "a login without a grant dropped the grants");

		ctx:add_grant("alice", { id = "g2"; created = ctx.clock; accessed = ctx.clock;
			data = { oauth2_client = { name = "Bot" } } });
		ctx:sasl2_login({ client_id = "bot"; mechanism = "OAUTHBEARER"; bind2 = "bot";
			grant = mock.deep_copy(ctx.grants.alice.g2) });
		local entries = listed(ctx);
		assert.equal(accessed, entries["grant/g1"].last_seen);
		assert.is_not_nil(entries["client/bot"]);
		assert.equal("g2", entries["client/bot"].active.grant and entries["client/bot"].active.grant.id);
	end);

	it("FAST tokens added after a list are seen after a SASL2 success of the account", function ()
		local entry = listed(ctx)["client/c1"];
		assert.is_falsy(entry.active.fast);
		ctx:add_fast_token("alice", "c1", "cur");
		assert.is_falsy(listed(ctx)["client/c1"].active.fast, "FAST tokens were not cached");

		ctx:sasl2_login({ username = "bob"; client_id = "b1"; bind2 = "x" });
		assert.is_falsy(listed(ctx)["client/c1"].active.fast, "another account's login dropped alice's tokens");

		ctx:sasl2_login({ client_id = "c2"; mechanism = "SCRAM-SHA-1"; bind2 = "y" });
		assert.is_true(listed(ctx)["client/c1"].active.fast);
	end);

	it("revocations re-read grants and FAST tokens before deciding", function ()
		listed(ctx); -- caches grants and FAST tokens
		-- A grant created without the event reaching us, and a FAST token of a client that has
		-- no other access left.
		ctx:add_grant("alice", { id = "g-late"; created = ctx.clock; accessed = ctx.clock });
		local f1 = ctx:sasl2_login({ client_id = "f1"; mechanism = "HT-SHA-256-NONE"; fast = true; bind2 = "f" });
		ctx:detach(f1); -- offline
		listed(ctx); -- caches again, f1 without a token
		ctx:add_fast_token("alice", "f1", "cur");

		assert.is_true((ctx.env.revoke_client_access("alice", "grant/g-late")));
		assert.is_nil(ctx.grants.alice["g-late"]);
		assert.is_true((ctx.env.revoke_client_access("alice", "client/f1")));
		assert.is_false(ctx:has_fast_token("alice", "f1"));

		-- And what was revoked is not listed from a stale cache afterwards.
		local entries = listed(ctx);
		assert.is_nil(entries["grant/g-late"]);
		assert.is_nil(entries["client/f1"]);
	end);
end);
