-- ARCHITECTURE.md §2: records from storage are untrusted input. A wrong type in any field of one record
-- must not break the listing (or revocation) of the user's other clients.

local mock = require "mock_prosody";

local function ids(list)
	local out = {};
	for _, entry in ipairs(list or {}) do table.insert(out, entry.id); end
	table.sort(out);
	return out;
end

local function listed_ids(reply, xmlns)
	local parsed = mock.reparse(reply);
	assert.equal("result", parsed.attr.type, tostring(reply));
	local out = {};
	for client in parsed:get_child("clients", xmlns):childtags("client", xmlns) do
		table.insert(out, client.attr.id);
	end
	table.sort(out);
	return out;
end

-- Each is a record that differs from a good one by one badly typed field.
local BAD_FIELDS = {
	id = 7;
	first_seen = "yesterday";
	last_seen = {};
	full_jid = 42;
	mechanisms = "SCRAM-SHA-1";
	fast_auth = "recently";
	auth_token_id = { "g" };
	user_agent = "Gajim 1.8";
	legacy = "yes";
};

local BAD_NESTED = {
	mechanisms_value = { mechanisms = { ["SCRAM-SHA-1"] = "now" } };
	mechanisms_key = { mechanisms = { [1] = 1700000000 } };
	user_agent_software = { user_agent = { software = 1.5 } };
	user_agent_device = { user_agent = { device = true } };
	user_agent_uri = { user_agent = { uri = {} } };
	user_agent_version = { user_agent = { software = "X"; software_version = 2 } };
	nan_time = { last_seen = 0/0 };
	huge_time = { first_seen = math.huge };
};

local function good_record(id, t)
	return {
		id = id;
		first_seen = t;
		last_seen = t;
		full_jid = "alice@localhost/" .. id;
		mechanisms = { ["SCRAM-SHA-1"] = t };
		user_agent = { software = "Good Client" };
	};
end

local function malformed_store(t)
	local records = { good = good_record("good", t) };
	for field, value in pairs(BAD_FIELDS) do
		local record = good_record("bad_" .. field, t);
		record[field] = value;
		records["bad_" .. field] = record;
	end
	for name, overrides in pairs(BAD_NESTED) do
		local record = good_record("bad_" .. name, t);
		for k, v in pairs(overrides) do record[k] = v; end
		records["bad_" .. name] = record;
	end
	records.not_a_table = "garbage";
	records.a_number = 12;
	records[5] = good_record("numeric-key", t);
	records[true] = good_record("boolean-key", t);
	return records;
end

describe("malformed stored records", function ()
	local ctx, session, t0;
	before_each(function ()
		ctx = mock.loaded();
		t0 = ctx.clock;
		ctx.client_store.data.alice = malformed_store(t0 - 100);
		session = ctx:new_session({ username = "alice"; resource = "requester" });
	end);

	for _, xmlns in ipairs({ mock.NS_PROSODY, mock.NS_CAM }) do
		it("do not break the list iq in " .. xmlns, function ()
			local reply, ret = ctx:list(session, xmlns);
			assert.is_true(ret);
			assert.is_not_nil(reply, "no reply");
			local listed = listed_ids(reply, xmlns);
			assert.is_true(#listed >= 1);
			local found = false;
			for _, id in ipairs(listed) do
				if id == "client/good" then found = true; end
			end
			assert.is_true(found, "the good record is not listed: " .. table.concat(listed, ", "));
		end);
	end

	it("do not break get_active_clients", function ()
		local list = ctx.env.get_active_clients("alice");
		assert.is_table(list);
		local found;
		for _, entry in ipairs(list) do
			if entry.id == "client/good" then found = entry; end
		end
		assert.is_not_nil(found, "the good record is not listed: " .. table.concat(ids(list), ", "));
		assert.equal("session", found.type);
	end);

	it("are reported in the log", function ()
		ctx.env.get_active_clients("alice");
		assert.is_true(#ctx:log_messages("warn") >= 1);
	end);

	it("do not stop the revocation of a good record", function ()
		ctx.client_store.data.alice.passwordless = {
			id = "passwordless"; first_seen = t0 - 50; last_seen = t0 - 50;
			mechanisms = { ["HT-SHA-256-NONE"] = t0 - 50 }; fast_auth = t0 - 50;
		};
		ctx:add_fast_token("alice", "passwordless", "cur");
		local reply = ctx:revoke(session, "client/passwordless");
		assert.equal("result", reply.attr.type, tostring(reply));
		assert.is_false(ctx:has_fast_token("alice", "passwordless"));
		local reply2 = ctx:revoke(session, "client/good");
		assert.equal("error", reply2.attr.type);
		assert.equal("service-unavailable", mock.error_of(reply2).condition);
	end);

	it("do not stop a client from logging in over its own malformed record", function ()
		local s = ctx:sasl2_login({ client_id = "bad_mechanisms"; mechanism = "SCRAM-SHA-1"; bind2 = "again" });
		assert.equal("success", s.sent[1] and s.sent[1].name);
		local record = ctx.client_store.data.alice.bad_mechanisms;
		assert.same({ ["SCRAM-SHA-1"] = t0 }, record.mechanisms);
		assert.equal("alice@localhost/again", record.full_jid);
	end);

	it("that are not tables are replaced on the client's next login", function ()
		local s = ctx:sasl2_login({ client_id = "not_a_table"; mechanism = "SCRAM-SHA-1"; bind2 = "x" });
		assert.equal("success", s.sent[1] and s.sent[1].name);
		local record = ctx.client_store.data.alice.not_a_table;
		assert.is_table(record);
		assert.equal("not_a_table", record.id);
	end);

	it("with text that is not allowed in XML do not make the list malformed", function ()
		-- Valid UTF-8, the right types, but characters XML 1.0 forbids (e.g. from an OAuth
		-- client registration, which is JSON and allows them).
		ctx.client_store.data.alice.control = {
			id = "control"; first_seen = t0 - 10; last_seen = t0 - 10;
			mechanisms = { ["SCRAM-SHA-1"] = t0 - 10 };
			user_agent = { software = "Evil\1Client"; device = "Dev\0ice" };
		};
		ctx:add_grant("alice", { id = "g-ctl"; created = t0; accessed = t0;
			data = { oauth2_client = { name = "Bad\27Name" } } });
		for _, xmlns in ipairs({ mock.NS_PROSODY, mock.NS_CAM }) do
			local reply = ctx:list(session, xmlns);
			assert.is_not_nil(reply);
			local ok, err = pcall(mock.reparse, reply);
			assert.is_true(ok, tostring(err));
			local listed = listed_ids(reply, xmlns);
			local found = false;
			for _, id in ipairs(listed) do
				if id == "client/good" then found = true; end
			end
			assert.is_true(found);
		end
	end);
end);

describe("other malformed stored data", function ()
	local ctx, session, t0;
	before_each(function ()
		ctx = mock.loaded();
		t0 = ctx.clock;
		ctx.client_store.data.alice = { good = good_record("good", t0 - 100) };
		session = ctx:new_session({ username = "alice"; resource = "requester" });
	end);

	local function assert_good_listed()
		local list = ctx.env.get_active_clients("alice");
		assert.is_table(list);
		local listed = ids(list);
		local found = false;
		for _, id in ipairs(listed) do if id == "client/good" then found = true; end end
		assert.is_true(found, "good not listed: " .. table.concat(listed, ", "));
		for _, xmlns in ipairs({ mock.NS_PROSODY, mock.NS_CAM }) do
			local reply = ctx:list(session, xmlns);
			assert.is_not_nil(reply);
			local listed_xml = listed_ids(reply, xmlns);
			local in_xml = false;
			for _, id in ipairs(listed_xml) do if id == "client/good" then in_xml = true; end end
			assert.is_true(in_xml, xmlns .. ": good not listed");
		end
	end

	it("FAST tokens of the wrong shape do not break the listing", function ()
		ctx.fast_store.data.alice = {
			[mock.fast_key("good", "cur")] = "token";
			[mock.fast_key("x", "cur")] = { issued_at = "then"; expires_at = {} };
			[mock.fast_key("y", "new")] = { issued_at = t0 };
			[7] = { issued_at = t0; expires_at = t0 + 10 };
		};
		assert_good_listed();
	end);

	it("grants of the wrong shape do not break the listing", function ()
		ctx:add_grant("alice", { id = "g-ok"; created = t0; accessed = t0 });
		ctx.grants.alice["g-bad-created"] = { id = "g-bad-created"; created = "today"; tokens = {} };
		ctx.grants.alice["g-bad-tokens"] = { id = "g-bad-tokens"; created = t0; tokens = "many" };
		ctx.grants.alice["g-bad-token"] = { id = "g-bad-token"; created = t0; tokens = { x = { expires = "never" } } };
		ctx.grants.alice["g-bad-data"] = { id = "g-bad-data"; created = t0; tokens = {}; data = { oauth2_client = { name = 5 } } };
		ctx.grants.alice["g-bad-client"] = { id = "g-bad-client"; created = t0; tokens = {}; data = { oauth2_client = "app" } };
		assert_good_listed();
		local listed = ids(ctx.env.get_active_clients("alice"));
		local found = false;
		for _, id in ipairs(listed) do if id == "grant/g-ok" then found = true; end end
		assert.is_true(found, "the good grant is not listed");
	end);

	it("a legacy index of the wrong shape does not break a legacy bind", function ()
		ctx.legacy_store.data.alice = { ["alice@localhost/desk"] = 42; ["alice@localhost/other"] = { "x" } };
		local s = ctx:legacy_login({ mechanism = "PLAIN"; resource = "desk" });
		assert.same({}, ctx:log_messages("error"));
		local created;
		for id, record in pairs(ctx.client_store.data.alice) do
			if record.full_jid == s.full_jid and record.legacy then created = id; end
		end
		assert.is_string(created, "no legacy record for the bind");
		assert_good_listed();
	end);

	it("a legacy index pointing at a record of another JID is not trusted", function ()
		ctx.legacy_store.data.alice = { ["alice@localhost/desk"] = "good" };
		local s = ctx:legacy_login({ mechanism = "PLAIN"; resource = "desk" });
		assert.equal("alice@localhost/good", ctx.client_store.data.alice.good.full_jid);
		local created;
		for id, record in pairs(ctx.client_store.data.alice) do
			if record.full_jid == s.full_jid then created = id; end
		end
		assert.is_string(created);
		assert.are_not.equal("good", created);
	end);
end);
