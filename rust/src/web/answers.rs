//! What the web glue used to put together itself: the policy from the module's options, the
//! redirect back to the page, the answers of the confirm pages and the sign-out plan. The glue
//! only decodes Lua values and encodes these.

use super::html::{self, PageContext};
use super::limiter::{Limit, LoginLimiter};
use super::{html_response, redirect, Notice, Response, WebPolicy};
use crate::listing::Entry;
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
