-- ARCHITECTURE.md §2, §3: what a successful login leaves in the "clients" store.

local mock = require "mock_prosody";

local function new_client_events(ctx)
	local out = {};
	for _, f in ipairs(ctx.fired) do
		if f.name == "client_management/new-client" then table.insert(out, f.data); end
	end
	return out;
end

local function records_of(ctx, username)
	return ctx.client_store.data[username or "alice"] or {};
end

local function count(t)
	local n = 0;
	for _ in pairs(t) do n = n + 1; end
	return n;
end

local function only_record(ctx)
	local records = records_of(ctx);
	assert.equal(1, count(records), "expected exactly one stored client");
	local id, record = next(records);
	return record, id;
end

local function error_logs(ctx)
	return ctx:log_messages("error");
end

describe("SASL2 login recording", function ()
	local ctx, t0;
	before_each(function ()
		ctx = mock.loaded();
		t0 = ctx.clock;
	end);

	it("creates a record keyed by the client's user-agent id", function ()
		ctx:sasl2_login({
			client_id = "conv-1a2b";
			mechanism = "SCRAM-SHA-1";
			bind2 = "phone";
			user_agent = { software = "Conversations"; device = "Pixel 8" };
		});
		local record = records_of(ctx)["conv-1a2b"];
		assert.is_table(record);
		assert.equal("conv-1a2b", record.id);
		assert.equal(t0, record.first_seen);
		assert.equal(t0, record.last_seen);
		assert.equal("alice@localhost/phone", record.full_jid);
		assert.same({ ["SCRAM-SHA-1"] = t0 }, record.mechanisms);
		assert.is_nil(record.fast_auth);
		assert.is_nil(record.auth_token_id);
		assert.is_nil(record.legacy);
		assert.equal("Conversations", record.user_agent.software);
		assert.equal("Pixel 8", record.user_agent.device);
		assert.same({}, error_logs(ctx));
	end);

	it("writes the record after Bind 2 and FAST, before <success> goes out", function ()
		ctx:sasl2_login({ client_id = "c1"; bind2 = "phone" });
		local order = {};
		for _, call in ipairs(ctx.calls) do
			local verb = call[1];
			if verb == "sasl2_fast:success"
				or ((verb == "store:set_key" or verb == "store:set_keys") and call[2] == "clients")
				or (verb == "send" and tostring(call[3]):match("^<success")) then
				table.insert(order, verb);
			end
		end
		assert.same({ "sasl2_fast:success", "store:set_keys", "send" }, order);
		-- What was written is the record as Bind 2 left it, in one set_keys of the account.
		local write = ctx.client_store.calls[#ctx.client_store.calls];
		assert.equal("set_keys", write[1]);
		assert.equal("alice", write[2]);
		assert.same({ "c1" }, (function () local t = {}; for k in pairs(write[3]) do table.insert(t, k); end return t; end)());
		assert.equal("alice@localhost/phone", write[3].c1.full_jid);
		assert.same({}, ctx:timer_delays(), "a new client's record was left to a timer");
	end);

	it("fires client_management/new-client once, with the record and the session", function ()
		local session = ctx:sasl2_login({ client_id = "c1"; bind2 = "phone"; user_agent = { software = "Dino" } });
		local events = new_client_events(ctx);
		assert.equal(1, #events);
		assert.equal("c1", events[1].client.id);
		assert.equal("alice@localhost/phone", events[1].client.full_jid);
		assert.equal("Dino", events[1].client.user_agent.software);
		assert.equal(session, events[1].session);

		ctx:advance(60);
		ctx:sasl2_login({ client_id = "c1"; bind2 = "phone" });
		assert.equal(1, #new_client_events(ctx), "new-client fired again for a known client");
	end);

	it("keeps first_seen and updates last_seen, mechanisms and full_jid on the next login", function ()
		ctx:sasl2_login({ client_id = "c1"; mechanism = "SCRAM-SHA-1"; bind2 = "phone" });
		local t1 = ctx:advance(3600);
		ctx:sasl2_login({ client_id = "c1"; mechanism = "HT-SHA-256-NONE"; fast = true; bind2 = "phone2" });
		local record = only_record(ctx);
		assert.equal(t0, record.first_seen);
		assert.equal(t1, record.last_seen);
		assert.equal("alice@localhost/phone2", record.full_jid);
		assert.same({ ["SCRAM-SHA-1"] = t0; ["HT-SHA-256-NONE"] = t1 }, record.mechanisms);
		assert.equal(t1, record.fast_auth);
	end);

	it("stores fast_auth on FAST logins only", function ()
		ctx:sasl2_login({ client_id = "c1"; mechanism = "HT-SHA-256-NONE"; fast = true; bind2 = "a" });
		assert.equal(t0, records_of(ctx).c1.fast_auth);
		ctx:sasl2_login({ client_id = "c2"; mechanism = "SCRAM-SHA-1"; bind2 = "b" });
		assert.is_nil(records_of(ctx).c2.fast_auth);
	end);

	it("stores the grant id and the OAuth client's details on token logins", function ()
		ctx:sasl2_login({
			client_id = "app-1";
			mechanism = "OAUTHBEARER";
			bind2 = "app";
			grant = { id = "grant-xyz"; data = { oauth2_client = {
				name = "Cheogram"; id = "cheogram-sw-id"; version = "2.15"; uri = "https://cheogram.com/";
			} } };
			user_agent = { device = "Fairphone" };
		});
		local record = records_of(ctx)["app-1"];
		assert.equal("grant-xyz", record.auth_token_id);
		assert.same({ OAUTHBEARER = t0 }, record.mechanisms);
		assert.same({
			software = "Cheogram";
			software_id = "cheogram-sw-id";
			software_version = "2.15";
			uri = "https://cheogram.com/";
			device = "Fairphone";
		}, record.user_agent);
	end);

	it("prefers the SASL2 software name over the OAuth client name", function ()
		ctx:sasl2_login({
			client_id = "app-1";
			mechanism = "OAUTHBEARER";
			bind2 = "app";
			grant = { id = "g"; data = { oauth2_client = { name = "Registered Name"; id = "sw" } } };
			user_agent = { software = "Monal"; device = "iPhone" };
		});
		local ua = records_of(ctx)["app-1"].user_agent;
		assert.equal("Monal", ua.software);
		assert.equal("sw", ua.software_id);
		assert.equal("iPhone", ua.device);
	end);

	it("does not break the login when the store cannot be read", function ()
		-- The account's records are read whole (get) at its first login; fail every read.
		ctx.client_store.fail.get = "database is down";
		ctx.client_store.fail.get_key = "database is down";
		local session = ctx:sasl2_login({ client_id = "c1"; bind2 = "phone" });
		assert.same({}, records_of(ctx));
		assert.equal("success", session.sent[1] and session.sent[1].name);
		assert.equal(0, #new_client_events(ctx));
		assert.is_true(#error_logs(ctx) >= 1);
	end);

	it("fires new-client once when the first write fails (the record is kept and stored later)", function ()
		ctx.client_store.fail.set_keys = "disk full";
		local session = ctx:sasl2_login({ client_id = "c1"; bind2 = "phone" });
		assert.equal(1, #new_client_events(ctx));
		assert.equal("success", session.sent[1] and session.sent[1].name);
		assert.same({}, records_of(ctx), "the failing store was written");
		ctx.client_store.fail.set_keys = nil;
		ctx:run_timers();
		assert.is_table(records_of(ctx).c1, "the record was not stored once storage worked");
		ctx:sasl2_login({ client_id = "c1"; bind2 = "phone" });
		assert.equal(1, #new_client_events(ctx), "new-client fired again");
	end);

	describe("without Bind 2", function ()
		it("stores the full JID when the client binds later", function ()
			local session = ctx:sasl2_login({ client_id = "late-binder"; mechanism = "SCRAM-SHA-1" });
			local record = records_of(ctx)["late-binder"];
			assert.is_table(record, "no record at SASL2 success");
			assert.is_nil(record.full_jid);

			local t1 = ctx:advance(2);
			ctx:bind(session, "laptop");
			-- Listed at once (from the cache), written later: the JID changes no access.
			local clients = ctx.env.get_active_clients("alice");
			assert.equal(1, #clients);
			assert.equal("client/late-binder", clients[1].id);
			assert.equal("alice@localhost/laptop", clients[1].full_jid);
			assert.equal(t1, clients[1].last_seen);
			assert.is_true(clients[1].active.connected);
			assert.is_nil(records_of(ctx)["late-binder"].full_jid, "written before the write delay");
			assert.equal(1, #ctx:timer_delays());

			ctx:run_timers();
			record = records_of(ctx)["late-binder"];
			assert.equal("alice@localhost/laptop", record.full_jid);
			assert.equal(t1, record.last_seen);
			assert.is_nil(record.legacy);
			assert.equal(1, count(records_of(ctx)), "the bind created a second record");
			assert.equal(1, #new_client_events(ctx));
			assert.same({}, error_logs(ctx));
		end);

		it("is listed as connected and can be revoked", function ()
			local session = ctx:sasl2_login({ client_id = "late"; mechanism = "HT-SHA-256-NONE"; fast = true });
			ctx:add_fast_token("alice", "late", "cur");
			ctx:bind(session, "laptop");

			local clients = ctx.env.get_active_clients("alice");
			assert.equal(1, #clients);
			assert.equal("client/late", clients[1].id);
			assert.is_true(clients[1].active.connected);

			assert.is_true((ctx.env.revoke_client_access("alice", "client/late")));
			assert.is_truthy(session.closed, "the late-bound session was not closed");
			assert.is_false(ctx:has_fast_token("alice", "late"));
		end);
	end);
end);

describe("legacy (non-SASL2) login recording", function ()
	local ctx, t0;
	before_each(function ()
		ctx = mock.loaded();
		t0 = ctx.clock;
	end);

	it("creates a record with a generated id and legacy = true at resource bind", function ()
		ctx:legacy_login({ mechanism = "PLAIN"; resource = "gajim.X1" });
		local record, key = only_record(ctx);
		assert.equal(key, record.id);
		assert.equal(12, #record.id);
		assert.matches("^[A-Za-z0-9_%-]+$", record.id);
		assert.is_true(record.legacy);
		assert.equal("alice@localhost/gajim.X1", record.full_jid);
		assert.same({ PLAIN = t0 }, record.mechanisms);
		assert.equal(t0, record.first_seen);
		assert.equal(t0, record.last_seen);
		assert.equal(1, #new_client_events(ctx));
		assert.equal(record.id, new_client_events(ctx)[1].client.id);
		assert.same({}, error_logs(ctx));
	end);

	it("generates a different id for each new full JID", function ()
		ctx:legacy_login({ resource = "one" });
		ctx:legacy_login({ resource = "two" });
		local ids = {};
		for id, record in pairs(records_of(ctx)) do ids[record.full_jid] = id; end
		assert.is_string(ids["alice@localhost/one"]);
		assert.is_string(ids["alice@localhost/two"]);
		assert.are_not.equal(ids["alice@localhost/one"], ids["alice@localhost/two"]);
	end);

	it("reuses the same id when the same full JID binds again", function ()
		ctx:legacy_login({ mechanism = "PLAIN"; resource = "desktop" });
		local _, first_id = only_record(ctx);
		local t1 = ctx:advance(500);
		ctx:legacy_login({ mechanism = "SCRAM-SHA-1"; resource = "desktop" });
		ctx:run_timers(); -- no access changed: batched
		local record, id = only_record(ctx);
		assert.equal(first_id, id);
		assert.equal(t0, record.first_seen);
		assert.equal(t1, record.last_seen);
		assert.same({ PLAIN = t0; ["SCRAM-SHA-1"] = t1 }, record.mechanisms);
		assert.equal(1, #new_client_events(ctx));
	end);

	it("finds a record written by the community module by its full JID", function ()
		ctx.client_store.data.alice = {
			["Zx9_community"] = {
				id = "Zx9_community";
				legacy = true;
				full_jid = "alice@localhost/office";
				first_seen = t0 - 86400;
				last_seen = t0 - 3600;
				mechanisms = { PLAIN = t0 - 3600 };
			};
			["other-sasl2"] = {
				id = "other-sasl2";
				full_jid = "alice@localhost/phone";
				first_seen = t0 - 100;
				last_seen = t0 - 100;
				mechanisms = { ["SCRAM-SHA-1"] = t0 - 100 };
			};
		};
		ctx:legacy_login({ mechanism = "PLAIN"; resource = "office" });
		-- PLAIN was used before: only times change, listed at once and written later.
		local listed = {};
		for _, entry in ipairs(ctx.env.get_active_clients("alice")) do listed[entry.id] = entry; end
		local listed_ids = {};
		for id in pairs(listed) do table.insert(listed_ids, id); end
		table.sort(listed_ids);
		assert.same({ "client/Zx9_community", "client/other-sasl2" }, listed_ids);
		assert.equal(t0, listed["client/Zx9_community"].last_seen);
		assert.equal(t0 - 86400, listed["client/Zx9_community"].first_seen);
		assert.equal(t0 - 3600, records_of(ctx)["Zx9_community"].last_seen, "written before the write delay");
		ctx:run_timers();

		local records = records_of(ctx);
		assert.equal(2, count(records), "a new record was created instead of reusing the community one");
		local record = records["Zx9_community"];
		assert.equal(t0 - 86400, record.first_seen);
		assert.equal(t0, record.last_seen);
		assert.equal(t0, record.mechanisms.PLAIN);
		assert.is_true(record.legacy);
		assert.equal(0, #new_client_events(ctx));
	end);

	it("stores the grant id of a legacy token login", function ()
		ctx:legacy_login({ mechanism = "OAUTHBEARER"; grant = { id = "g-legacy"; data = {} }; resource = "bot" });
		local record = only_record(ctx);
		assert.equal("g-legacy", record.auth_token_id);
		assert.same({ OAUTHBEARER = t0 }, record.mechanisms);
	end);

	-- The module records inside pcall (bookkeeping never breaks a login), so an error would
	-- show as an error log, not as an error here: the logs are what to check.
	it("records a bind without prior authentication info (XEP-0078) without an error", function ()
		local session = ctx:new_session({ username = "alice" });
		session.type = "c2s"; -- authenticated by iq:auth, which fires no authentication-success
		ctx:bind(session, "old-client");
		assert.same({}, error_logs(ctx));
		local record = only_record(ctx);
		assert.is_true(record.legacy);
		assert.equal("alice@localhost/old-client", record.full_jid);
	end);

	it("records a SASL2 login without a client id that binds with Bind 2 without an error", function ()
		local session = ctx:sasl2_login({ mechanism = "SCRAM-SHA-1"; bind2 = "anon-ua" });
		assert.equal("success", session.sent[1] and session.sent[1].name);
		assert.same({}, error_logs(ctx));
		local record = only_record(ctx);
		assert.is_true(record.legacy);
		assert.equal("alice@localhost/anon-ua", record.full_jid);
		assert.same({ ["SCRAM-SHA-1"] = t0 }, record.mechanisms);
	end);

	it("records a SASL2 login without a client id and without Bind 2 at the later bind", function ()
		local session = ctx:sasl2_login({ mechanism = "PLAIN" });
		assert.same({}, records_of(ctx));
		ctx:bind(session, "late");
		local record = only_record(ctx);
		assert.is_true(record.legacy);
		assert.equal("alice@localhost/late", record.full_jid);
		assert.same({ PLAIN = t0 }, record.mechanisms);
		assert.same({}, error_logs(ctx));
	end);

	it("ignores binds of sessions that are not authenticated c2s sessions", function ()
		local session = ctx:new_session({ username = "alice"; type = "c2s_unauthed" });
		ctx:bind(session, "x");
		assert.same({}, records_of(ctx));
	end);
end);
