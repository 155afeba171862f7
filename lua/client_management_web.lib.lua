-- mod_client_management's web self-service (issue #17, SPEC §12): a page and a JSON API on the
-- host's HTTP service (default path /clients), loaded only with `client_management_web = true`.
-- This file routes requests, checks passwords (usermanager) and tokens (mod_tokenauth), and
-- carries out the same revocation plans as XMPP; the core (`core.new_web`) decides which
-- requests go through and writes every answer: pages, JSON bodies, headers, the cookie. A web
-- session is a mod_tokenauth grant, so every list shows it and every way of revoking a grant
-- ends it.

local usermanager = require "prosody.core.usermanager";
local jid_split = require "prosody.util.jid".split;
local time_now = require "prosody.util.time".now;
local http_util = require "prosody.util.http";
local json = require "prosody.util.json";
local nodeprep = require "prosody.util.encodings".stringprep.nodeprep;

local host = module.host;

-- What the main file hands over (see the end of this file).
local core, tokenauth, ask, close_stream;

local APP, DEFAULT_PATH = "client_management", "/clients";
local web_options = {
	idle_ttl = module:get_option_period("client_management_web_session_ttl", "1 hour");
	max_ttl = module:get_option_period("client_management_web_session_max_ttl", "12 hours");
	password_change_url = module:get_option_string("client_management_web_password_url");
	login_attempts = module:get_option_integer("client_management_web_login_attempts", 5, 1);
	login_attempts_per_ip = module:get_option_integer("client_management_web_login_attempts_per_ip", 20, 1);
	login_window = module:get_option_period("client_management_web_login_window", "15 minutes");
};

-- Made at the first request: the page's path comes from mod_http (http_paths,
-- http_external_url), which knows it once the HTTP service runs.
local web;
local function get_web()
	if not web then
		local base_url = module:http_url(APP, DEFAULT_PATH);
		web_options.path = base_url:match("^%a+://[^/]*(/.-)/?$") or DEFAULT_PATH;
		web = core.new_web(web_options);
	end
	return web;
end

-- The page's own origins, for the Origin check of POSTs: the external URL and the Host the
-- browser asked for (over HTTPS: a plain request never gets this far).
local function own_origins(request)
	local origins = { module:http_url(APP, DEFAULT_PATH) };
	local host_header = request.headers.host;
	if type(host_header) == "string" then table.insert(origins, "https://"..host_header); end
	return origins;
end

local function user_jid(username) return username.."@"..host; end

-- The web session a request's cookie names: token, token info, username, grant id, CSRF
-- token; or nil (none, expired, revoked, another host's, not a web session's token).
local function web_session(request)
	local token = get_web():token_from_cookies(request.headers.cookie);
	if not token then return nil, false; end
	local info = tokenauth.get_token_info(token);
	if type(info) ~= "table" or info.purpose ~= "client_management_web" or type(info.grant) ~= "table" then
		return nil, true;
	end
	local username, token_host = jid_split(info.jid);
	local data = info.grant.data;
	local web_data = type(data) == "table" and data.client_management_web;
	local csrf = type(web_data) == "table" and web_data.csrf;
	if token_host ~= host or not username or type(csrf) ~= "string" then return nil, true; end
	return { token = token, info = info, username = username, grant_id = info.id, csrf = csrf };
end

-- An active session's token is replaced now and then, so that it ends after the idle time.
local function renew(session, response)
	local info = session.info;
	if type(info.created) ~= "number" or not get_web():renewal_due(info.created, os.time()) then return; end
	local _, idle_ttl = get_web():session_lifetimes();
	local token = tokenauth.create_token(user_jid(session.username), session.grant_id, nil, idle_ttl, "client_management_web");
	if token then response.headers.set_cookie = get_web():session_cookie(token); end
end

local function page_context(session, notice)
	return { account = user_jid(session.username), csrf = session.csrf, grant_id = session.grant_id, notice = notice };
end

-- One web request of the account (`request`: "page", "revoke_page", "sign_out_page",
-- "sign_out", "api_clients", "api_sign_out"): the core reads, carries out a sign-out, and
-- answers with the response, also when the account could not be read.
local function answer(username, request, context, id)
	local asked = ask(username, { question = "web"; request = request; web = get_web(); context = context; id = id });
	for _, session in ipairs(asked.later) do close_stream(session); end
	return asked.reply.response;
end

local function query_value(request, name)
	local query = request.url and request.url.query;
	local values = query and http_util.formdecode(query);
	local value = type(values) == "table" and values[name];
	return type(value) == "string" and value or nil;
end

-- GET pages of a logged-in session: `render(session, request)` → response.
local function logged_in_page(render)
	return function (event)
		local request, w = event.request, get_web();
		if not request.secure then return w:refusal("insecure"); end
		local session, stale = web_session(request);
		if not session then
			local response = w:login_page(false, stale and "session-ended" or query_value(request, "done"));
			if stale then response.headers.set_cookie = w:cleared_cookie(); end
			return response;
		end
		local response = render(session, request);
		renew(session, response);
		return response;
	end;
end

-- POSTs of a logged-in session: HTTPS, session, Origin, CSRF token, size; then
-- `act(w, session, form)` → response.
local function logged_in_post(act)
	return function (event)
		local request, w = event.request, get_web();
		if not request.secure then return w:refusal("insecure"); end
		local body = request.body or "";
		local session, stale = web_session(request);
		-- No cookie at all (e.g. a POST from another site, which gets none): back to the
		-- page; only a cookie that names no session any more is cleared.
		if not session then return stale and w:redirect("session-ended", w:cleared_cookie()) or w:redirect(); end
		local form = #body <= w:max_body() and http_util.formdecode(body) or nil;
		local csrf = type(form) == "table" and form.csrf or nil;
		local refused, page = w:check_post(request.headers, own_origins(request), session.csrf,
			type(csrf) == "string" and csrf or nil, #body);
		if refused then
			module:log("warn", "Refused a web request of %s from %s: %s", session.username, request.ip or "?", refused);
			return page;
		end
		return act(w, session, type(form) == "table" and form or {});
	end;
end

local function login(event)
	local request, w = event.request, get_web();
	if not request.secure then return w:refusal("insecure"); end
	local body = request.body or "";
	local refused, page = w:check_post(request.headers, own_origins(request), nil, nil, #body);
	if refused then
		module:log("warn", "Refused a web login from %s: %s", request.ip or "?", refused);
		return page;
	end
	local form = http_util.formdecode(body);
	form = type(form) == "table" and form or {};
	local given = type(form.username) == "string" and form.username or "";
	local password = type(form.password) == "string" and form.password or "";
	local node, node_host = given, host;
	if given:find("@", 1, true) then node, node_host = jid_split(given); end
	local username = node and nodeprep(node) or nil;
	local ip, now = request.ip or "?", time_now();
	local key = username or given:sub(1, 256);
	local shown = ("%q"):format(given:sub(1, 64));
	if not w:login_allowed(ip, key, now) then
		module:log("warn", "Web login as %s from %s refused: too many failed attempts", shown, ip);
		return w:login_page(true, nil, 429);
	end
	local ok = username and username ~= "" and node_host == host
		and usermanager.test_password(username, host, password)
		and usermanager.user_is_enabled(username, host)
		and module:may(":list-clients", user_jid(username));
	if not ok then
		w:login_failed(ip, key, now);
		module:log("info", "Web login failed: authentication as %s from %s failed", shown, ip);
		return w:login_page(true, nil, 403);
	end
	w:login_succeeded(key);
	local new = w:new_session(request.headers.user_agent);
	local max_ttl, idle_ttl = w:session_lifetimes();
	local jid = user_jid(username);
	local grant, err = tokenauth.create_grant(jid, jid, max_ttl, {
		oauth2_client = { name = new.name, device = new.browser };
		client_management_web = { csrf = new.csrf };
	});
	local token;
	if grant then token, err = tokenauth.create_token(jid, grant.id, nil, idle_ttl, new.purpose); end
	if not token then
		module:log("error", "Unable to start a web session for %s: %s", jid, tostring(err));
		return w:refusal("unavailable");
	end
	module:log("info", "Web login of %s from %s (%s)", jid, ip, new.browser);
	return w:redirect(nil, w:session_cookie(token));
end

-- The JSON API: `Authorization: Bearer` with any mod_tokenauth token of this host; its grant
-- is the requester. `act(w, caller, request)` → response.
local function api(permission, act)
	return function (event)
		local request, w = event.request, get_web();
		if not request.secure then return w:api_error("https-required"); end
		local token = w:bearer_token(request.headers.authorization);
		local info = token and tokenauth.get_token_info(token);
		local username, token_host = jid_split(type(info) == "table" and info.jid or nil);
		if not username or token_host ~= host then return w:api_error("not-authorized"); end
		local role;
		if info.role then
			role = usermanager.get_role_by_name(info.role, host);
			if role and not usermanager.user_can_assume_role(username, host, role.name) then role = nil; end
		else
			role = usermanager.get_user_role(username, host);
		end
		if not (role and role:may(module.name..permission)) then return w:api_error("forbidden"); end
		return act(w, { username = username, grant_id = info.id }, request);
	end;
end

local function api_body(w, request)
	local body = request.body or "";
	if #body > w:max_body() then return nil, w:api_error("payload-too-large"); end
	local data = json.decode(body);
	if type(data) ~= "table" or type(data.id) ~= "string" or data.id == "" then
		return nil, w:api_error("bad-request");
	end
	return data;
end

return function (m)
	core, tokenauth, ask, close_stream = m.core, m.tokenauth, m.ask, m.close_stream;

	module:depends("http");
	module:provides("http", {
		name = APP;
		default_path = DEFAULT_PATH;
		cors = { enabled = false };
		route = {
			["GET"] = logged_in_page(function (session, request)
				return answer(session.username, "page", page_context(session, query_value(request, "done")));
			end);
			["GET /"] = function () return get_web():redirect(nil, nil); end;
			["POST /login"] = login;
			["GET /revoke"] = logged_in_page(function (session, request)
				return answer(session.username, "revoke_page", page_context(session), query_value(request, "id") or "");
			end);
			["POST /revoke"] = logged_in_post(function (w, session, form)
				if not module:may(":manage-clients", user_jid(session.username)) then return w:redirect("failed"); end
				local id = type(form.id) == "string" and form.id or "";
				local ok, err = revoke_client_access(session.username, id);
				return w:redirect(w:notice_after_revoke(not ok and err or nil));
			end);
			["GET /sign-out-others"] = logged_in_page(function (session)
				return answer(session.username, "sign_out_page", page_context(session));
			end);
			["POST /sign-out-others"] = logged_in_post(function (w, session)
				if not module:may(":manage-clients", user_jid(session.username)) then return w:redirect("failed"); end
				return answer(session.username, "sign_out", page_context(session));
			end);
			["POST /logout"] = logged_in_post(function (w, session)
				local ok, err = tokenauth.revoke_grant(session.username, session.grant_id);
				if not ok then
					module:log("error", "Unable to end the web session of %s: %s", session.username, tostring(err));
					return w:refusal("unavailable");
				end
				return w:redirect("logged-out", w:cleared_cookie());
			end);
			["GET /api/clients"] = api(":list-clients", function (_, caller)
				return answer(caller.username, "api_clients", { grant_id = caller.grant_id });
			end);
			["POST /api/revoke"] = api(":manage-clients", function (w, caller, request)
				local data, problem = api_body(w, request);
				if not data then return problem; end
				local ok, err = revoke_client_access(caller.username, data.id);
				if not ok then return w:api_revocation_error(err); end
				return w:api_revoked(data.id);
			end);
			["POST /api/sign-out-others"] = api(":manage-clients", function (_, caller)
				return answer(caller.username, "api_sign_out", { grant_id = caller.grant_id });
			end);
		};
	});
end;
