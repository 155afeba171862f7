//! What the web glue used to put together itself: the policy from the module's options, the
//! redirect back to the page, the answers of the confirm pages and the sign-out plan. The glue
//! only decodes Lua values and encodes these.

use super::html::{self, PageContext};
use super::limiter::{Limit, LoginLimiter};
use super::{html_response, json, json_response, redirect, ApiError, Notice, Response, WebPolicy};
use crate::listing::{list_entries, Entry};
use crate::model::{AccountFacts, SessionFact};
use crate::revocation::{plan_sign_out_others, RevocationPlan};
use crate::text::sign_out_question;

/// The module's `client_management_web_*` options as configured: each `None` when unset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebOptions {
    /// The page's path on the HTTP service (from mod_http).
    pub path: Option<String>,
    pub idle_ttl: Option<f64>,
    pub max_ttl: Option<f64>,
    pub password_change_url: Option<String>,
    pub login_attempts: Option<f64>,
    pub login_attempts_per_ip: Option<f64>,
    pub login_window: Option<f64>,
}

/// A duration or count as configured: a finite, non-negative number, else `default`.
fn number(value: Option<f64>, default: f64) -> f64 {
    value.filter(|n| n.is_finite() && *n >= 0.0).unwrap_or(default)
}

impl WebOptions {
    /// The page's policy and the login limiter: a session idles out after a minute at the
    /// least and never outlives its maximum; every limit allows one attempt at the least.
    pub fn policy(&self) -> (WebPolicy, LoginLimiter) {
        let defaults = WebPolicy::default();
        let idle_ttl = number(self.idle_ttl, defaults.idle_ttl).max(60.0);
        let policy = WebPolicy {
            base_path: self.path.clone().filter(|p| p.starts_with('/')).unwrap_or(defaults.base_path),
            idle_ttl,
            max_ttl: number(self.max_ttl, defaults.max_ttl).max(idle_ttl),
            password_change_url: self.password_change_url.clone().filter(|u| !u.is_empty()),
        };
        let window = number(self.login_window, 900.0);
        let per_account = Limit { attempts: number(self.login_attempts, 5.0).max(1.0), window };
        let per_ip = Limit { attempts: number(self.login_attempts_per_ip, 20.0).max(1.0), window };
        (policy, LoginLimiter::new(per_ip, per_account))
    }
}

/// Back to the page (303), telling what happened (`?done=…`) and setting a cookie if given.
pub fn back_to_page(policy: &WebPolicy, notice: Option<Notice>, cookie: Option<String>) -> Response {
    let mut location = policy.base_path.clone();
    if let Some(notice) = notice {
        location = format!("{location}?done={}", notice.code());
    }
    let response = redirect(location);
    match cookie {
        Some(cookie) => response.with_header("set_cookie", cookie),
        None => response,
    }
}

/// The confirm step of revoking the listed client `id` (404 when it is not listed).
pub fn revoke_page(entries: &[Entry], id: &str, ctx: &PageContext) -> Response {
    let entry = entries.iter().find(|e| e.listed_id() == id);
    let body = html::revoke_password_client_page(entry, ctx);
    html_response(if entry.is_some() { 200 } else { 404 }, body)
}

/// Adds to a moment's `sessions` a stream-less requester holding `grant` (a web session or an
/// API token), so that a sign-out spares it; returns the requester's session index (one past
/// the streams, even without a grant: then it spares nothing).
pub fn add_requester(sessions: &mut Vec<SessionFact>, grant: Option<String>) -> usize {
    let requester = sessions.len() + 1;
    if grant.is_some() {
        sessions.push(SessionFact { index: requester, full_jid: None, client_id: None, grant_id: grant });
    }
    requester
}

/// Signing out every other client, sparing `requester`: the plan and how many streams it
/// closes.
pub fn sign_out(facts: &AccountFacts, requester: usize) -> (RevocationPlan, usize) {
    let plan = plan_sign_out_others(facts, requester);
    let closed = plan.closed_streams();
    (plan, closed)
}

/// The confirm step of signing out every other client.
pub fn sign_out_page(plan: &RevocationPlan, closed: usize, ctx: &PageContext) -> Response {
    let question = sign_out_question(plan, closed);
    html_response(200, html::sign_out_page(&question, plan.password_protected.len(), ctx))
}

/// Who asks, on which page: the page's policy and a logged-in session's context (an API
/// caller has only its grant).
#[derive(Debug, Clone, PartialEq)]
pub struct WebView {
    pub policy: WebPolicy,
    pub account: String,
    pub csrf: String,
    /// The grant of the session or API token: "this browser", spared by a sign-out.
    pub grant: Option<String>,
    pub notice: Option<Notice>,
}

impl WebView {
    pub fn page(&self) -> PageContext<'_> {
        PageContext { policy: &self.policy, account: &self.account, csrf: &self.csrf, this_grant: self.grant.as_deref(), notice: self.notice }
    }
}

/// A web request that needs the account's clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebRequest {
    /// `GET /`: the list.
    Page,
    /// `GET /revoke?id=`: the confirm step of revoking a listed client.
    RevokePage(String),
    /// `GET /sign-out-others`: its confirm step.
    SignOutPage,
    /// `POST /sign-out-others`.
    SignOut,
    /// `GET /api/clients`.
    ApiClients,
    /// `POST /api/sign-out-others`.
    ApiSignOut,
}

impl WebRequest {
    /// Signing out changes the account; the rest shows it.
    pub fn changes(&self) -> bool {
        matches!(self, WebRequest::SignOut | WebRequest::ApiSignOut | WebRequest::SignOutPage)
    }

    /// A sign-out, carried out before it is answered ([`signed_out`]).
    pub fn signs_out(&self) -> bool {
        matches!(self, WebRequest::SignOut | WebRequest::ApiSignOut)
    }
}

/// The answer to a request that shows the account (not a sign-out), over `facts` whose
/// sessions end with the requester of [`add_requester`] (index `requester`).
pub fn show(request: &WebRequest, view: &WebView, facts: &AccountFacts, requester: usize) -> Response {
    match request {
        WebRequest::Page => html_response(200, html::clients_page(&list_entries(facts), &view.page())),
        WebRequest::RevokePage(id) => revoke_page(&list_entries(facts), id, &view.page()),
        WebRequest::ApiClients => json_response(200, json::clients_body(&list_entries(facts), view.grant.as_deref())),
        WebRequest::SignOutPage | WebRequest::SignOut | WebRequest::ApiSignOut => {
            let (plan, closed) = sign_out(facts, requester);
            sign_out_page(&plan, closed, &view.page())
        }
    }
}

/// The answer to a sign-out once carried out (`complete`: every step worked).
pub fn signed_out(request: &WebRequest, view: &WebView, plan: &RevocationPlan, closed: usize, complete: bool) -> Response {
    match (request, complete) {
        (WebRequest::ApiSignOut, true) => json_response(200, json::signed_out_body(plan.revoked.len(), plan.password_protected.len(), closed)),
        (WebRequest::ApiSignOut, false) => ApiError::InternalServerError.response(),
        (_, true) => back_to_page(&view.policy, Some(Notice::SignedOut), None),
        (_, false) => back_to_page(&view.policy, Some(Notice::SignOutIncomplete), None),
    }
}

/// The answer when the account could not be read.
pub fn unreadable(request: &WebRequest, view: &WebView) -> Response {
    match request {
        WebRequest::ApiClients | WebRequest::ApiSignOut => ApiError::ServiceUnavailable.response(),
        WebRequest::SignOut => back_to_page(&view.policy, Some(Notice::SignOutIncomplete), None),
        _ => {
            let (status, body) = html::refusal_page(&view.policy, super::Refusal::Unavailable);
            html_response(status, body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_bounded() {
        let (policy, _) = WebOptions::default().policy();
        assert_eq!(policy, WebPolicy::default());
        let options = WebOptions {
            path: Some("manage".into()),
            idle_ttl: Some(5.0),
            max_ttl: Some(f64::NAN),
            password_change_url: Some(String::new()),
            ..Default::default()
        };
        let (policy, _) = options.policy();
        assert_eq!(policy.base_path, "/clients", "a path must start with /");
        assert_eq!(policy.idle_ttl, 60.0, "a minute at the least");
        assert_eq!(policy.max_ttl, WebPolicy::default().max_ttl);
        assert_eq!(policy.password_change_url, None);
        let (policy, _) = WebOptions { idle_ttl: Some(7200.0), max_ttl: Some(600.0), ..Default::default() }.policy();
        assert_eq!(policy.max_ttl, 7200.0, "never shorter than the idle lifetime");
        let (_, mut limiter) = WebOptions { login_attempts: Some(0.0), ..Default::default() }.policy();
        assert!(limiter.allows("ip", "u", 0.0), "one attempt at the least");
        limiter.failed("ip", "u", 0.0);
        assert!(!limiter.allows("ip", "u", 0.0));
    }

    #[test]
    fn back_to_the_page_with_a_notice_and_a_cookie() {
        let policy = WebPolicy { base_path: "/manage".into(), ..Default::default() };
        let plain = back_to_page(&policy, None, None);
        assert_eq!((plain.status, plain.header("location")), (303, Some("/manage")));
        assert_eq!(plain.header("set_cookie"), None);
        let told = back_to_page(&policy, Some(Notice::Revoked), Some("c=1".into()));
        assert_eq!(told.header("location"), Some(format!("/manage?done={}", Notice::Revoked.code()).as_str()));
        assert_eq!(told.header("set_cookie"), Some("c=1"));
    }

    #[test]
    fn a_requester_is_added_only_with_a_grant() {
        let mut sessions = vec![SessionFact { index: 1, ..Default::default() }];
        assert_eq!(add_requester(&mut sessions, None), 2);
        assert_eq!(sessions.len(), 1);
        assert_eq!(add_requester(&mut sessions, Some("g".into())), 2);
        assert_eq!(sessions[1], SessionFact { index: 2, grant_id: Some("g".into()), ..Default::default() });
    }
}
