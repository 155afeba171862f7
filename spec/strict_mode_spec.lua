-- ARCHITECTURE.md §3: enforce_client_ids = true refuses logins that do not name the client.

local mock = require "mock_prosody";
local st = require "prosody.util.stanza";

local EXPECTED_SASL2_FAILURE = "<failure xmlns='urn:xmpp:sasl:2'>"
	.. "<malformed-request xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
	.. "<text>Client identifier required but not supplied</text></failure>";

-- RFC 6120 §6.5 SASL error conditions.
local SASL_CONDITIONS = {
	["aborted"] = true; ["account-disabled"] = true; ["credentials-expired"] = true;
	["encryption-required"] = true; ["incorrect-encoding"] = true; ["invalid-authzid"] = true;
	["invalid-mechanism"] = true; ["malformed-request"] = true; ["mechanism-too-weak"] = true;
	["not-authorized"] = true; ["temporary-auth-failure"] = true;
};

local function authenticate(attrs_or_nil)
	local auth = st.stanza("authenticate", { xmlns = mock.NS_SASL2; mechanism = "SCRAM-SHA-1" })
		:text_tag("initial-response", "biwsbj1hbGljZSxyPTEyMzQ=");
	if attrs_or_nil then
		auth:tag("user-agent", attrs_or_nil)
			:text_tag("software", "Gajim"):text_tag("device", "Desktop"):up();
	end
	return auth;
end

describe("strict mode (enforce_client_ids)", function ()
	local ctx, session, others_called;
	before_each(function ()
		ctx = mock.new({ options = { enforce_client_ids = true } }):load();
		session = ctx:new_session({ username = nil; type = "c2s_unauthed" });
		others_called = {};
		-- What else looks at these elements in a real server (mod_sasl2_fast, mod_sasl2_bind2,
		-- mod_sasl2_sm, mod_sasl2, mod_saslauth), at their real priorities or default ones.
		for name, priority in pairs({ mod_sasl2_sm = 100; mod_sasl2_fast = 100; mod_sasl2_bind2 = 100; mod_sasl2 = 0 }) do
			ctx:hook("stanza/" .. mock.NS_SASL2 .. ":authenticate", function ()
				table.insert(others_called, name);
			end, priority, name);
		end
		ctx:hook("stanza/" .. mock.NS_SASL .. ":auth", function ()
			table.insert(others_called, "mod_saslauth");
		end, 0, "mod_saslauth");
	end);

	it("refuses a SASL2 <authenticate> without <user-agent> with the exact failure", function ()
		local ret = ctx:fire_tag(session, authenticate(nil));
		assert.is_true(ret);
		assert.equal(1, #session.sent);
		assert.equal(EXPECTED_SASL2_FAILURE, tostring(session.sent[1]));
		assert.same({}, others_called, "another handler saw the refused <authenticate>");
	end);

	it("refuses a SASL2 <authenticate> whose <user-agent> has no id", function ()
		local ret = ctx:fire_tag(session, authenticate({}));
		assert.is_true(ret);
		assert.equal(EXPECTED_SASL2_FAILURE, tostring(session.sent[1]));
		assert.same({}, others_called);
	end);

	it("refuses a SASL2 <authenticate> whose <user-agent> id is empty", function ()
		local ret = ctx:fire_tag(session, authenticate({ id = "" }));
		assert.is_true(ret);
		assert.equal(EXPECTED_SASL2_FAILURE, tostring(session.sent[1]));
	end);

	it("lets a SASL2 <authenticate> with a client id through", function ()
		local handler = ctx:tag_handler(mock.NS_SASL2, "authenticate");
		assert.is_not_nil(handler, "no hook_tag handler for urn:xmpp:sasl:2 authenticate");
		assert.is_nil(handler.handler(session, authenticate({ id = "d5c4bd1a-2b73-4b53-8b2a-63e0a06f5a22" })));
		assert.equal(0, #session.sent);

		ctx:fire_tag(session, authenticate({ id = "d5c4bd1a-2b73-4b53-8b2a-63e0a06f5a22" }));
		assert.equal(0, #session.sent);
		table.sort(others_called);
		assert.same({ "mod_sasl2", "mod_sasl2_bind2", "mod_sasl2_fast", "mod_sasl2_sm" }, others_called);
	end);

	it("runs before the other SASL2 handlers", function ()
		local handler = ctx:tag_handler(mock.NS_SASL2, "authenticate");
		assert.is_not_nil(handler);
		assert.is_true(handler.priority > 100, "priority " .. tostring(handler.priority));
	end);

	it("refuses legacy SASL <auth> with an RFC 6120 failure, before mod_saslauth", function ()
		local auth = st.stanza("auth", { xmlns = mock.NS_SASL; mechanism = "PLAIN" }):text("AGFsaWNlAHNlY3JldA==");
		local ret = ctx:fire_tag(session, auth);
		assert.is_true(ret);
		assert.same({}, others_called, "mod_saslauth also handled the <auth>");
		assert.equal(1, #session.sent);
		local failure = mock.reparse(session.sent[1]);
		assert.equal("failure", failure.name);
		assert.equal(mock.NS_SASL, failure.attr.xmlns);
		local condition = failure.tags[1];
		assert.is_not_nil(condition, "failure without a condition");
		assert.equal(mock.NS_SASL, condition.attr.xmlns or failure.attr.xmlns);
		assert.is_true(SASL_CONDITIONS[condition.name] == true, "not an RFC 6120 condition: " .. condition.name);
	end);

	it("logs an error at load when mod_saslauth is enabled too", function ()
		local c = mock.new({ options = { enforce_client_ids = true }; loaded_modules = { saslauth = true } }):load();
		local errors = table.concat(c:log_messages("error"), "\n");
		assert.matches("saslauth", errors, 1, true);
	end);

	it("logs an error when mod_saslauth is loaded later on the same host", function ()
		-- Prosody 13 fires module-loaded on the host's own events, not globally.
		assert.same({}, ctx:log_messages("error"));
		ctx:fire_global("module-loaded", { host = "example.org"; module = "saslauth" });
		assert.same({}, ctx:log_messages("error"));
		ctx:fire("module-loaded", { host = mock.HOST; module = "roster" });
		assert.same({}, ctx:log_messages("error"));
		ctx:fire("module-loaded", { host = mock.HOST; module = "saslauth" });
		assert.matches("saslauth", table.concat(ctx:log_messages("error"), "\n"), 1, true);
	end);

	it("is off when enforce_client_ids is false", function ()
		local c = mock.new({ options = { enforce_client_ids = false } }):load();
		local s = c:new_session({ type = "c2s_unauthed" });
		assert.is_nil(c:fire_tag(s, authenticate(nil)));
		assert.equal(0, #s.sent);
	end);
end);
