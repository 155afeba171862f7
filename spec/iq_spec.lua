-- ARCHITECTURE.md §5, §6: the list and revoke iqs, in both namespaces.

local mock = require "mock_prosody";

local NAMESPACES = { mock.NS_PROSODY, mock.NS_CAM };

-- alice has:
--   gajim-pw  a password (SCRAM) client, online as alice@localhost/desk, also holding a FAST token
--   app       logged in with the OAuth grant g-app, holds a FAST token, online as alice@localhost/app
--   g-web     a grant nothing logged in with (an "access" entry)
local function scenario()
	local ctx = mock.loaded();
	local t0 = ctx.clock;
	local desk = ctx:sasl2_login({
		client_id = "gajim-pw"; mechanism = "SCRAM-SHA-1"; bind2 = "desk";
		user_agent = { software = "Gajim"; device = "Desktop" };
	});
	ctx:add_fast_token("alice", "gajim-pw", "cur");
	ctx:advance(60);
	local grant = ctx:add_grant("alice", {
		id = "g-app"; created = t0; accessed = t0 + 60;
		data = { oauth2_client = { name = "Cheogram"; id = "cheogram"; version = "2.15"; uri = "https://cheogram.com/" } };
		tokens = { ["sha256:aaaa"] = { created = t0; expires = t0 + 86400 * 30 } };
	});
	local app = ctx:sasl2_login({
		client_id = "app"; mechanism = "OAUTHBEARER"; bind2 = "app"; grant = mock.deep_copy(grant);
		user_agent = { software = "Cheogram"; device = "Phone" };
	});
	ctx:add_fast_token("alice", "app", "cur");
	ctx:advance(60);
	ctx:add_grant("alice", {
		id = "g-web"; created = t0 + 100; accessed = t0 + 110;
		data = { oauth2_client = { name = "Web Dashboard"; uri = "https://dash.example/" } };
		tokens = { ["sha256:bbbb"] = { created = t0 + 100; expires = t0 + 86400 } };
	});
	ctx:advance(60);
	ctx.calls = {};
	return ctx, desk, app, t0;
end

-- Copies an account's stored clients, grants and FAST tokens into another account straight
-- into storage (the module has not read it, so nothing of it is cached), and puts a session of
-- that account online. Returns the session.
local function copy_account(ctx, from, to)
	for _, name in ipairs({ "clients", "auth_tokens", "fast_tokens" }) do
		local data = ctx:store(name).data;
		data[to] = mock.deep_copy(data[from]);
	end
	return ctx:new_session({ username = to; resource = "tablet" });
end

local function client_elements(reply, xmlns)
	local clients = reply:get_child("clients", xmlns);
	assert.is_not_nil(clients, "no <clients xmlns='" .. xmlns .. "'> in " .. tostring(reply));
	local by_id, order = {}, {};
	for client in clients:childtags("client", xmlns) do
		by_id[client.attr.id] = client;
		table.insert(order, client.attr.id);
	end
	return by_id, order, clients;
end

local function child_names(element)
	local names = {};
	for _, tag in ipairs(element and element.tags or {}) do table.insert(names, tag.name); end
	table.sort(names);
	return names;
end

local function assert_error(reply, request, err_type, condition)
	assert.is_not_nil(reply, "no reply sent");
	assert.equal("iq", reply.name);
	assert.equal("error", reply.attr.type, tostring(reply));
	assert.equal(request.attr.id, reply.attr.id);
	local e = mock.error_of(mock.reparse(reply));
	assert.equal(err_type, e.type, tostring(reply));
	assert.equal(condition, e.condition, tostring(reply));
	return e;
end

describe("list iq", function ()
	for _, xmlns in ipairs(NAMESPACES) do
		describe("in " .. xmlns, function ()
			local ctx, desk, t0;
			before_each(function ()
				ctx, desk, _, t0 = scenario();
			end);

			it("answers with a result holding a well-formed <clients>", function ()
				local reply, ret, request, n = ctx:list(desk, xmlns);
				assert.is_true(ret);
				assert.equal(1, n, "expected exactly one reply");
				assert.equal("result", reply.attr.type);
				assert.equal(request.attr.id, reply.attr.id);
				assert.equal(desk.full_jid, reply.attr.to);
				local parsed = mock.reparse(reply);
				local by_id, order = client_elements(parsed, xmlns);
				assert.same({ "client/gajim-pw", "client/app", "grant/g-web" }, order);
				assert.equal("session", by_id["client/gajim-pw"].attr.type);
				assert.equal("session", by_id["client/app"].attr.type);
				assert.equal("access", by_id["grant/g-web"].attr.type);
				assert.equal("true", by_id["client/gajim-pw"].attr.connected);
				assert.equal("true", by_id["client/app"].attr.connected);
				assert.equal("false", by_id["grant/g-web"].attr.connected);
			end);

			it("formats timestamps as UTC YYYY-MM-DDThh:mm:ssZ", function ()
				local reply = ctx:list(desk, xmlns);
				local by_id = client_elements(mock.reparse(reply), xmlns);
				local seen = 0;
				for _, client in pairs(by_id) do
					for _, name in ipairs({ "first-seen", "last-seen" }) do
						local ts = client:get_child_text(name, xmlns);
						if ts then
							seen = seen + 1;
							assert.matches(mock.TIMESTAMP_PATTERN, ts);
						end
					end
				end
				assert.is_true(seen >= 4);
				assert.equal(os.date("!%Y-%m-%dT%H:%M:%SZ", t0), by_id["client/gajim-pw"]:get_child_text("first-seen", xmlns));
				assert.equal("2023-11-14T22:13:20Z", by_id["client/gajim-pw"]:get_child_text("first-seen", xmlns));
				assert.equal(os.date("!%Y-%m-%dT%H:%M:%SZ", t0 + 110), by_id["grant/g-web"]:get_child_text("last-seen", xmlns));
			end);

			it("says how each client can get in", function ()
				local reply = ctx:list(desk, xmlns);
				local by_id = client_elements(mock.reparse(reply), xmlns);
				local grant_flag = xmlns == mock.NS_CAM and "grant" or "bearer-token";
				for _, client in pairs(by_id) do
					assert.is_not_nil(client:get_child("auth", xmlns), "<auth> missing in " .. client.attr.id);
				end
				assert.same({ "fast", "password" }, child_names(by_id["client/gajim-pw"]:get_child("auth", xmlns)));
				local expected = { grant_flag, "fast" };
				table.sort(expected);
				assert.same(expected, child_names(by_id["client/app"]:get_child("auth", xmlns)));
				assert.same({ grant_flag }, child_names(by_id["grant/g-web"]:get_child("auth", xmlns)));
				for _, flag in ipairs(by_id["client/app"]:get_child("auth", xmlns).tags) do
					assert.equal(0, #flag, "flag <" .. flag.name .. "> is not empty");
				end
			end);

			it("includes the user agent", function ()
				local reply = ctx:list(desk, xmlns);
				local by_id = client_elements(mock.reparse(reply), xmlns);
				local ua = by_id["client/gajim-pw"]:get_child("user-agent", xmlns);
				assert.equal("Gajim", ua:get_child_text("software", xmlns));
				assert.equal("Desktop", ua:get_child_text("device", xmlns));
				local web = by_id["grant/g-web"]:get_child("user-agent", xmlns);
				assert.equal("Web Dashboard", web:get_child_text("software", xmlns));
				assert.equal("https://dash.example/", web:get_child_text("uri", xmlns));
			end);

			it("is forbidden when the user may not list clients", function ()
				ctx.may = false;
				local reply, ret, request = ctx:list(desk, xmlns);
				assert.is_true(ret);
				assert_error(reply, request, "auth", "forbidden");
				assert.equal("client_management:list-clients", ctx.may_calls[#ctx.may_calls].action);
				assert.equal(desk, ctx.may_calls[#ctx.may_calls].context.origin);
			end);

			-- Client records are read once per account, then cached: the failure shows for an
			-- account the module has not read yet.
			it("answers internal-server-error (wait) when the store cannot be read", function ()
				local carol = copy_account(ctx, "alice", "carol");
				ctx.client_store.fail.get = "database is down";
				local reply, ret, request = ctx:list(carol, xmlns);
				assert.is_true(ret);
				assert_error(reply, request, "wait", "internal-server-error");

				-- Nothing half-read was kept: once storage answers, the account is listed.
				ctx.client_store.fail.get = nil;
				reply = ctx:list(carol, xmlns);
				local _, order = client_elements(mock.reparse(reply), xmlns);
				assert.same({ "client/gajim-pw", "client/app", "grant/g-web" }, order);
			end);

			it("answers internal-server-error (wait) when the FAST token store cannot be read", function ()
				ctx.fast_store.fail.get = "database is down";
				local reply, _, request = ctx:list(desk, xmlns);
				assert_error(reply, request, "wait", "internal-server-error");
			end);

			it("lists an account with no clients as an empty <clients>", function ()
				local bob = ctx:new_session({ username = "bob"; resource = "r" });
				local reply = ctx:list(bob, xmlns);
				local _, order = client_elements(mock.reparse(reply), xmlns);
				assert.same({}, order);
			end);
		end);
	end

	it("leaves out timestamps that are not known rather than saying now", function ()
		local ctx = mock.loaded();
		local session = ctx:new_session({ username = "alice"; resource = "r" });
		ctx.client_store.data.alice = { old = { id = "old"; mechanisms = { PLAIN = 1600000000 } } };
		for _, xmlns in ipairs(NAMESPACES) do
			local by_id = client_elements(mock.reparse((ctx:list(session, xmlns))), xmlns);
			local old = by_id["client/old"];
			assert.is_not_nil(old);
			assert.is_nil(old:get_child("first-seen", xmlns));
			assert.is_nil(old:get_child("last-seen", xmlns));
		end
	end);

	describe("in urn:xmpp:cam:0", function ()
		it("marks a grant whose tokens have a narrower role than the account as restricted", function ()
			local ctx = mock.loaded();
			local session = ctx:new_session({ username = "alice"; resource = "r" });
			ctx.user_roles.alice = ctx.all_roles["prosody:member"];
			ctx:add_grant("alice", { id = "narrow"; created = ctx.clock; accessed = ctx.clock;
				tokens = { ["sha256:1"] = { role = "prosody:guest"; created = ctx.clock } } });
			ctx:add_grant("alice", { id = "same"; created = ctx.clock; accessed = ctx.clock;
				tokens = { ["sha256:2"] = { created = ctx.clock } } });
			local by_id = client_elements(mock.reparse((ctx:list(session, mock.NS_CAM))), mock.NS_CAM);
			assert.equal("restricted", by_id["grant/narrow"]:get_child("permission", mock.NS_CAM).attr.status);
			assert.equal("normal", by_id["grant/same"]:get_child("permission", mock.NS_CAM).attr.status);
		end);

		it("is advertised in the account's disco#info", function ()
			local ctx = mock.loaded();
			local reply = require "prosody.util.stanza".stanza("query", { xmlns = "http://jabber.org/protocol/disco#info" });
			ctx:fire("account-disco-info", { reply = reply });
			local found = false;
			for feature in reply:childtags("feature") do
				if feature.attr.var == mock.NS_CAM then found = true; end
			end
			assert.is_true(found);
		end);

		it("always has a <permission> and a <software> with no attributes", function ()
			local ctx, desk = scenario();
			local by_id = client_elements(mock.reparse((ctx:list(desk, mock.NS_CAM))), mock.NS_CAM);
			assert.equal("unrestricted", by_id["client/gajim-pw"]:get_child("permission", mock.NS_CAM).attr.status);
			assert.equal("normal", by_id["grant/g-web"]:get_child("permission", mock.NS_CAM).attr.status);
			for id, client in pairs(by_id) do
				local software = client:get_child("user-agent", mock.NS_CAM):get_child("software", mock.NS_CAM);
				assert.is_not_nil(software, "no <software> in " .. id);
				for name in pairs(software.attr) do
					assert.equal("xmlns", name, "attribute " .. name .. " on <software> of " .. id);
				end
			end
		end);
	end);
end);

describe("revoke iq", function ()
	for _, xmlns in ipairs(NAMESPACES) do
		describe("in " .. xmlns, function ()
			local ctx, desk, app;
			before_each(function ()
				ctx, desk, app = scenario();
			end);

			it("is forbidden when the user may not manage clients, and changes nothing", function ()
				ctx.may = function (action) return action ~= "client_management:manage-clients"; end;
				local reply, ret, request = ctx:revoke(desk, "client/app", xmlns);
				assert.is_true(ret);
				assert_error(reply, request, "auth", "forbidden");
				assert.same({}, ctx:revocation_calls());
				assert.is_nil(app.closed);
			end);

			it("answers bad-request when the id is missing", function ()
				local request = mock.iq(desk, "set", "revoke", xmlns);
				local ret = ctx:send_iq(desk, request);
				assert.is_true(ret);
				assert_error(desk.sent[#desk.sent], request, "modify", "bad-request");
			end);

			it("answers bad-request when the id is empty", function ()
				local reply, _, request = ctx:revoke(desk, "", xmlns);
				assert_error(reply, request, "modify", "bad-request");
			end);

			for _, selector in ipairs({ "client/nope", "grant/nope", "software/Nope", "bogus", "client/", "/app" }) do
				it("answers item-not-found for " .. selector, function ()
					local reply, ret, request = ctx:revoke(desk, selector, xmlns);
					assert.is_true(ret);
					local e = assert_error(reply, request, "cancel", "item-not-found");
					assert.equal("Client not found", e.text);
					assert.same({}, ctx:revocation_calls());
				end);
			end

			it("requires a password reset for a client with password access, and changes nothing", function ()
				local reply, ret, request = ctx:revoke(app, "client/gajim-pw", xmlns);
				assert.is_true(ret);
				local e = assert_error(reply, request, "cancel", "service-unavailable");
				assert.equal("Password reset required", e.text);
				assert.is_not_nil(e.app, "no application-specific condition");
				assert.equal("password-reset-required", e.app.name);
				assert.equal(xmlns, e.app.attr.xmlns);
				assert.same({}, ctx:revocation_calls());
				assert.is_nil(desk.closed);
				assert.is_true(ctx:has_fast_token("alice", "gajim-pw"), "FAST tokens deleted anyway");
			end);

			it("revokes FAST tokens, then the grant, then closes the session of a passwordless client", function ()
				local reply, ret, request = ctx:revoke(desk, "client/app", xmlns);
				assert.is_true(ret);
				assert.equal("result", reply.attr.type, tostring(reply));
				assert.equal(request.attr.id, reply.attr.id);
				local steps = {};
				for _, call in ipairs(ctx:revocation_calls()) do
					table.insert(steps, call[1] .. ":" .. tostring(call[1] == "close" and call[2] or call[3]));
				end
				assert.same({
					"revoke_fast_tokens:app";
					"revoke_grant:g-app";
					"close:alice@localhost/app";
				}, steps);
				assert.is_truthy(app.closed);
				assert.is_false(ctx:has_fast_token("alice", "app"));
				assert.is_nil(ctx.grants.alice["g-app"]);
				assert.is_nil(desk.closed);
			end);

			it("sends the reply before closing the requester's own session", function ()
				local reply, ret = ctx:revoke(app, "client/app", xmlns);
				assert.is_true(ret);
				assert.equal("result", reply.attr.type, tostring(reply));
				assert.same({
					"revoke_fast_tokens:app", "revoke_grant:g-app", "send:alice@localhost/app", "close:alice@localhost/app",
				}, ctx:effects());
				assert.is_truthy(app.closed);
			end);

			it("revoking a grant closes the sessions that logged in with it", function ()
				local reply = ctx:revoke(desk, "grant/g-app", xmlns);
				assert.equal("result", reply.attr.type, tostring(reply));
				assert.is_nil(ctx.grants.alice["g-app"]);
				assert.is_truthy(app.closed);
				assert.is_false(ctx:has_fast_token("alice", "app"), "the client can come back with FAST");
				assert.is_nil(desk.closed);
			end);

			it("revokes a grant by its id", function ()
				local reply, _, request = ctx:revoke(desk, "grant/g-web", xmlns);
				assert.equal("result", reply.attr.type, tostring(reply));
				assert.equal(request.attr.id, reply.attr.id);
				assert.is_nil(ctx.grants.alice["g-web"]);
				assert.is_not_nil(ctx.grants.alice["g-app"]);
			end);

			it("answers internal-server-error (wait) when the client store cannot be read", function ()
				local carol = copy_account(ctx, "alice", "carol");
				ctx.client_store.fail.get = "database is down";
				local reply, ret, request = ctx:revoke(carol, "client/app", xmlns);
				assert.is_true(ret);
				local e = assert_error(reply, request, "wait", "internal-server-error");
				assert.equal("Unable to revoke client access", e.text);
				assert.same({}, ctx:revocation_calls());
				assert.is_true(ctx:has_fast_token("carol", "app"));
				assert.is_not_nil(ctx.grants.carol["g-app"]);

				-- The same request goes through once storage answers.
				ctx.client_store.fail.get = nil;
				reply = ctx:revoke(carol, "client/app", xmlns);
				assert.equal("result", reply.attr.type, tostring(reply));
				assert.is_false(ctx:has_fast_token("carol", "app"));
				assert.is_nil(ctx.grants.carol["g-app"]);
			end);

			it("answers internal-server-error (wait) when the grant cannot be revoked", function ()
				ctx.tokenauth_fail = "storage error";
				local reply, ret, request = ctx:revoke(desk, "client/app", xmlns);
				assert.is_true(ret);
				local e = assert_error(reply, request, "wait", "internal-server-error");
				assert.equal("Unable to revoke client access", e.text);
			end);

			it("answers internal-server-error (wait) when FAST tokens cannot be revoked", function ()
				ctx.fast_fail = true;
				local reply, _, request = ctx:revoke(desk, "client/app", xmlns);
				assert_error(reply, request, "wait", "internal-server-error");
			end);
		end);
	end
end);
