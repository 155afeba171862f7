//! The web page's userdata (`core.new_web(options)`): the core's web decisions and pages for
//! the Lua module's HTTP handlers. Answers come back as `{ status_code, headers, body }`,
//! the shape Prosody's HTTP server sends as it is.

use mlua::{AnyUserData, Lua, Result, Table, UserData, UserDataMethods};

use crate::web::answers::{self, WebOptions, WebRequest, WebView};
use crate::web::html;
use crate::web::limiter::LoginLimiter;
use crate::web::{self, json, ApiError, Notice, Refusal, Response, WebPolicy, MAX_BODY_BYTES};

pub struct WebHandle {
    policy: WebPolicy,
    limiter: LoginLimiter,
}

fn runtime(message: String) -> mlua::Error {
    mlua::Error::runtime(format!("client_management web: {message}"))
}

/// `{ path, idle_ttl, max_ttl, password_change_url, login_attempts, login_attempts_per_ip,
/// login_window }`, each optional (see answers::WebOptions).
pub fn new_web(options: &Table) -> Result<WebHandle> {
    let options = WebOptions {
        path: options.get("path")?,
        idle_ttl: options.get("idle_ttl")?,
        max_ttl: options.get("max_ttl")?,
        password_change_url: options.get("password_change_url")?,
        login_attempts: options.get("login_attempts")?,
        login_attempts_per_ip: options.get("login_attempts_per_ip")?,
        login_window: options.get("login_window")?,
    };
    let (policy, limiter) = options.policy();
    Ok(WebHandle { policy, limiter })
}

pub fn response_table(lua: &Lua, response: Response) -> Result<Table> {
    let table = lua.create_table()?;
    table.raw_set("status_code", response.status)?;
    let headers = lua.create_table()?;
    for (name, value) in response.headers {
        headers.raw_set(name, value)?;
    }
    table.raw_set("headers", headers)?;
    table.raw_set("body", response.body)?;
    Ok(table)
}

/// A web question's fields (driver::decode_question): `request` = "page" | "revoke_page"
/// (`id`) | "sign_out_page" | "sign_out" | "api_clients" | "api_sign_out", `web` (the
/// `core.new_web` handle: its policy), `context` = `{ account = jid, csrf, grant_id, notice =
/// code }` (an API caller: only `grant_id`).
pub fn decode_web_request(table: &Table) -> Result<(WebRequest, WebView)> {
    let name: String = table.raw_get("request")?;
    let request = match name.as_str() {
        "page" => WebRequest::Page,
        "revoke_page" => WebRequest::RevokePage(table.raw_get::<Option<String>>("id")?.unwrap_or_default()),
        "sign_out_page" => WebRequest::SignOutPage,
        "sign_out" => WebRequest::SignOut,
        "api_clients" => WebRequest::ApiClients,
        "api_sign_out" => WebRequest::ApiSignOut,
        other => return Err(runtime(format!("unknown web request '{other}'"))),
    };
    let web: AnyUserData = table.raw_get("web")?;
    let policy = web.borrow::<WebHandle>()?.policy.clone();
    let ctx: Table = table.raw_get("context")?;
    let view = WebView {
        policy,
        account: ctx.get::<Option<String>>("account")?.unwrap_or_default(),
        csrf: ctx.get::<Option<String>>("csrf")?.unwrap_or_default(),
        grant: ctx.get("grant_id")?,
        notice: ctx.get::<Option<String>>("notice")?.as_deref().and_then(Notice::from_code),
    };
    Ok((request, view))
}

fn refusal_named(name: &str) -> Result<Refusal> {
    Ok(match name {
        "insecure" => Refusal::InsecureTransport,
        "origin" => Refusal::ForeignOrigin,
        "csrf" => Refusal::BadCsrfToken,
        "too-large" => Refusal::TooLarge,
        "unavailable" => Refusal::Unavailable,
        other => return Err(runtime(format!("unknown refusal '{other}'"))),
    })
}

fn refusal_name(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::InsecureTransport => "insecure",
        Refusal::ForeignOrigin => "origin",
        Refusal::BadCsrfToken => "csrf",
        Refusal::TooLarge => "too-large",
        Refusal::Unavailable => "unavailable",
    }
}

fn api_error(code: &str) -> Result<ApiError> {
    ApiError::from_code(code).ok_or_else(|| runtime(format!("unknown API error '{code}'")))
}

impl UserData for WebHandle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // Sessions -------------------------------------------------------------------------

        // `web:session_lifetimes()` → grant ttl (the most a session lasts), token ttl (idle).
        methods.add_method("session_lifetimes", |_, this, ()| Ok((this.policy.max_ttl, this.policy.idle_ttl)));
        // `web:new_session(user_agent)` → `{ name, browser, csrf, purpose }` for the grant.
        methods.add_method("new_session", |lua, _, user_agent: Option<mlua::LuaString>| {
            let user_agent = user_agent.map(|ua| ua.to_string_lossy());
            let session = web::new_session(user_agent.as_deref()).map_err(|e| runtime(format!("no randomness: {e}")))?;
            let table = lua.create_table()?;
            table.raw_set("name", session.name)?;
            table.raw_set("browser", session.browser)?;
            table.raw_set("csrf", session.csrf)?;
            table.raw_set("purpose", web::TOKEN_PURPOSE)?;
            Ok(table)
        });
        methods.add_method("renewal_due", |_, this, (created, now): (f64, f64)| Ok(this.policy.renewal_due(created, now)));
        methods.add_method("token_from_cookies", |_, _, header: Option<String>| {
            Ok(header.as_deref().and_then(web::token_from_cookies).map(str::to_owned))
        });
        methods.add_method("bearer_token", |_, _, header: Option<String>| {
            Ok(header.as_deref().and_then(web::bearer_token).map(str::to_owned))
        });
        methods.add_method("session_cookie", |_, _, token: String| Ok(web::session_cookie(&token)));
        methods.add_method("cleared_cookie", |_, _, ()| Ok(web::cleared_cookie()));

        // Logins ---------------------------------------------------------------------------

        methods.add_method("login_allowed", |_, this, (ip, account, now): (String, String, f64)| {
            Ok(this.limiter.allows(&ip, &account, now))
        });
        methods.add_method_mut("login_failed", |_, this, (ip, account, now): (String, String, f64)| {
            this.limiter.failed(&ip, &account, now);
            Ok(())
        });
        methods.add_method_mut("login_succeeded", |_, this, account: String| {
            this.limiter.succeeded(&account);
            Ok(())
        });
        // `web:login_page(failed, notice_code, status)` → response.
        methods.add_method("login_page", |lua, this, (failed, notice, status): (bool, Option<String>, Option<u16>)| {
            let notice = notice.as_deref().and_then(Notice::from_code);
            let body = html::login_page(&this.policy, failed, notice);
            response_table(lua, web::html_response(status.unwrap_or(200), body))
        });

        // Requests ---------------------------------------------------------------------------

        // `web:check_post(request_headers, own_origins, csrf_expected, csrf_given, body_length)`
        // → nil, or the refusal's name and page.
        methods.add_method(
            "check_post",
            |lua, this, (headers, own, expected, given, length): (Table, Vec<String>, Option<String>, Option<String>, usize)| {
                let origin: Option<String> = headers.get("origin").ok().flatten();
                let site: Option<String> = headers.get("sec_fetch_site").ok().flatten();
                match web::check_form_post(length, origin.as_deref(), site.as_deref(), &own, expected.as_deref(), given.as_deref()) {
                    Ok(()) => Ok((None, None)),
                    Err(refusal) => {
                        let (status, body) = html::refusal_page(&this.policy, refusal);
                        Ok((Some(refusal_name(refusal)), Some(response_table(lua, web::html_response(status, body))?)))
                    }
                }
            },
        );
        methods.add_method("refusal", |lua, this, name: String| {
            let (status, body) = html::refusal_page(&this.policy, refusal_named(&name)?);
            response_table(lua, web::html_response(status, body))
        });
        methods.add_method("max_body", |_, _, ()| Ok(MAX_BODY_BYTES));
        // `web:redirect(notice_code, set_cookie)` → 303 to the page.
        methods.add_method("redirect", |lua, this, (notice, cookie): (Option<String>, Option<String>)| {
            response_table(lua, answers::back_to_page(&this.policy, notice.as_deref().and_then(Notice::from_code), cookie))
        });
        methods.add_method("notice_after_revoke", |_, _, error: Option<String>| Ok(Notice::after_revoke(error.as_deref()).code()));

        // The JSON API -------------------------------------------------------------------------

        methods.add_method("api_error", |lua, _, code: String| response_table(lua, api_error(&code)?.response()));
        // The API error for a revocation's error name.
        methods.add_method("api_revocation_error", |lua, _, error: String| {
            response_table(lua, ApiError::from_revocation(&error).response())
        });
        methods.add_method("api_revoked", |lua, _, id: String| response_table(lua, web::json_response(200, json::revoked_body(&id))));
    }
}

/// `core.new_web(options)`.
pub fn register(lua: &Lua, exports: &Table) -> Result<()> {
    exports.set("new_web", lua.create_function(|_, options: Option<Table>| {
        let options = match options {
            Some(options) => options,
            None => return Err(runtime("new_web needs an options table".to_owned())),
        };
        new_web(&options)
    })?)?;
    Ok(())
}

#[cfg(all(test, feature = "embedded-lua", not(feature = "module")))]
mod tests {
    use mlua::Lua;

    fn lua_with_web() -> Lua {
        let lua = Lua::new();
        lua.globals().set("core", super::super::open(&lua).unwrap()).unwrap();
        lua.load(
            r#"
            engine = core.new_engine({ max_clients = 10, retention = 100, write_delay = 10 })
            web = core.new_web({ path = "/manage", idle_ttl = 600, max_ttl = 7200, login_attempts = 2, login_window = 60 })
            stored = {
                records = {
                    pw = { id = "pw", mechanisms = { PLAIN = 1950 }, last_seen = 1950, full_jid = "u@h/pw" },
                    app = { id = "app", mechanisms = { OAUTHBEARER = 1960 }, auth_token_id = "g-app", last_seen = 1960, full_jid = "u@h/app" },
                },
                grants = {
                    ["g-app"] = { id = "g-app", created = 1900, accessed = 1960, tokens = { x = { created = 1900 } } },
                    ["g-web"] = { id = "g-web", created = 1990, accessed = 1990, expires = 9000, tokens = { y = { created = 1990 } },
                        data = { oauth2_client = { name = "Web: Manage clients", device = "Firefox" } } },
                },
            }
            moment = { now = 2000, sessions = { { full_jid = "u@h/pw", client_id = "pw" }, { full_jid = "u@h/app", client_id = "app", grant_id = "g-app" } } }
            -- One web request through the driver, its reads answered from `stored` and its plan
            -- carried out; returns the plan handed out, if any, and the response.
            function ask(request, context)
                local plan, response
                local actions = engine:handle("u", { type = "ask", question = "web", request = request, web = web, context = context }, moment)
                while actions do
                    local answer
                    for _, a in ipairs(actions) do
                        if a.type == "read" then
                            local results = {}
                            for _, part in ipairs(a.parts) do results[#results + 1] = { part = part, data = stored[part] } end
                            answer = { type = "read", results = results, roles = {} }
                        elseif a.type == "carry_out" then
                            plan, answer = a.plan, { type = "carried_out", complete = true }
                        elseif a.type == "reply" then
                            response = a.response
                        end
                    end
                    actions = answer and engine:handle("u", answer, moment)
                end
                return plan, response
            end
            ctx = { account = "u@h", csrf = "c<s>rf", grant_id = "g-web" }
            "#,
        )
        .exec()
        .unwrap();
        lua
    }

    #[test]
    fn sign_out_spares_the_requesters_grant_and_closes_every_stream() {
        let lua = lua_with_web();
        let (actions, revoked, password, body): (String, i64, i64, String) = lua
            .load(
                r#"
                local plan, response = ask("api_sign_out", { grant_id = "g-web" })
                local steps = {}
                for _, a in ipairs(plan.actions) do steps[#steps + 1] = a[1] .. ":" .. tostring(a[2]) end
                return table.concat(steps, " "), plan.revoked, plan.password_protected, response.body
                "#,
            )
            .eval()
            .unwrap();
        assert_eq!(actions, "revoke_fast_tokens:app revoke_grant:g-app close_session:1 close_session:2");
        assert_eq!((revoked, password), (1, 1));
        assert_eq!(body, r#"{"revoked":1,"password_reset_required":1,"closed_connections":2}"#);
    }

    #[test]
    fn pages_and_answers_come_back_as_prosody_responses() {
        let lua = lua_with_web();
        let (status, csp, has_this, has_form, redirect, cookie): (u16, String, bool, bool, String, String) = lua
            .load(
                r#"
                local _, page = ask("page", ctx)
                local r = web:redirect("revoked", web:session_cookie("secret-token:x"))
                return page.status_code, page.headers.content_security_policy,
                    page.body:find('class="client this" data-id="grant/g-web"', 1, true) ~= nil,
                    page.body:find('action="/manage/revoke"', 1, true) ~= nil,
                    r.headers.location, r.headers.set_cookie
                "#,
            )
            .eval()
            .unwrap();
        assert_eq!(status, 200);
        assert!(csp.starts_with("default-src 'none'"));
        assert!(has_this && has_form);
        assert_eq!(redirect, "/manage?done=revoked");
        assert!(cookie.starts_with("__Host-client_management=secret-token:x;"));

        let (refused, status, ok): (String, u16, bool) = lua
            .load(
                r#"
                local name, page = web:check_post({ origin = "https://evil.example" }, { "https://h/manage" }, "t", "t", 10)
                local fine = web:check_post({ origin = "https://h" }, { "https://h/manage" }, "t", "t", 10)
                return name, page.status_code, fine == nil
                "#,
            )
            .eval()
            .unwrap();
        assert_eq!((refused.as_str(), status, ok), ("origin", 403, true));

        let (allowed_before, allowed_after, api_status, api_body): (bool, bool, u16, String) = lua
            .load(
                r#"
                local before = web:login_allowed("1.2.3.4", "u", 0)
                web:login_failed("1.2.3.4", "u", 0); web:login_failed("1.2.3.4", "u", 0)
                local r = web:api_revocation_error("password-reset-required")
                return before, web:login_allowed("1.2.3.4", "u", 1), r.status_code, r.body
                "#,
            )
            .eval()
            .unwrap();
        assert!(allowed_before && !allowed_after);
        assert_eq!(api_status, 409);
        assert_eq!(api_body, "{\"error\":\"password-reset-required\",\"text\":\"Password reset required\"}");
    }
}
