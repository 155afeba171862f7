//! Web self-service (ARCHITECTURE.md §12): a page and a JSON API where a user sees and cuts off the
//! clients of their account. Sans-I/O like the rest of the core: the Lua module routes
//! requests, checks passwords and tokens through Prosody and carries out revocation plans;
//! everything decided here is the answer itself: which requests are accepted (HTTPS, Origin,
//! CSRF token, size, login rate), what a page shows and how (the HTML), the JSON bodies and
//! their error codes, the cookie, and the web session's name and lifetime.
//!
//! - [`html`]: the pages, escaped by construction;
//! - [`json`]: the API's bodies;
//! - [`limiter`]: failed logins per IP and per account.

pub mod html;
pub mod json;
pub mod limiter;

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The name every listing shows for a web session (its grant's `oauth2_client.name`).
pub const SESSION_NAME: &str = "Web: Manage clients";
/// `purpose` of the web session's tokens: a token of another purpose never opens the page.
pub const TOKEN_PURPOSE: &str = "client_management_web";
/// The cookie: `__Host-` makes browsers insist on Secure, Path=/ and no Domain.
pub const COOKIE_NAME: &str = "__Host-client_management";
/// A form or JSON body larger than this is refused unread (413).
pub const MAX_BODY_BYTES: usize = 4096;

/// The options of the web page (module options `client_management_web_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct WebPolicy {
    /// Path of the page on the host's HTTP service (`/clients`): links and form actions.
    pub base_path: String,
    /// A web session ends after this long without a request (seconds).
    pub idle_ttl: f64,
    /// ... and this long after login whatever happens (seconds).
    pub max_ttl: f64,
    /// Where the server lets a user change their password, if it has such a page.
    pub password_change_url: Option<String>,
}

impl Default for WebPolicy {
    fn default() -> Self {
        WebPolicy { base_path: "/clients".into(), idle_ttl: 3600.0, max_ttl: 12.0 * 3600.0, password_change_url: None }
    }
}

impl WebPolicy {
    /// A session token is replaced by a fresh one (idle lifetime from now) once it is this old,
    /// so that an active session stays, an idle one ends. At most every 5 minutes.
    pub fn renewal_age(&self) -> f64 {
        (self.idle_ttl / 12.0).clamp(1.0, 300.0)
    }

    /// Whether the token created at `token_created` should be replaced now.
    pub fn renewal_due(&self, token_created: f64, now: f64) -> bool {
        now - token_created >= self.renewal_age()
    }

    pub fn path(&self, rest: &str) -> String {
        format!("{}{rest}", self.base_path.trim_end_matches('/'))
    }
}

/// An HTTP answer: status, headers (lowercase names with `_`, as Prosody writes them), body.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Response {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value));
        self
    }
}

/// What every answer carries: nothing is cached, framed, referred or sniffed.
fn common_headers(content_type: &str) -> Vec<(&'static str, String)> {
    vec![
        ("content_type", content_type.to_owned()),
        ("cache_control", "no-store".to_owned()),
        ("referrer_policy", "no-referrer".to_owned()),
        ("x_content_type_options", "nosniff".to_owned()),
        ("x_frame_options", "DENY".to_owned()),
    ]
}

/// `Content-Security-Policy` of the pages: nothing but the one stylesheet (by hash) and forms
/// posting to this origin. No script may run, whatever a page contains.
pub fn content_security_policy() -> String {
    format!(
        "default-src 'none'; style-src '{}'; img-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        html::style_hash()
    )
}

pub fn html_response(status: u16, body: String) -> Response {
    let mut headers = common_headers("text/html; charset=utf-8");
    headers.push(("content_security_policy", content_security_policy()));
    Response { status, headers, body }
}

pub fn json_response(status: u16, body: String) -> Response {
    let mut headers = common_headers("application/json");
    headers.push(("content_security_policy", "default-src 'none'; frame-ancestors 'none'".to_owned()));
    Response { status, headers, body }
}

/// 303 to `location` (after a form: the browser then GETs the page).
pub fn redirect(location: String) -> Response {
    let mut response = html_response(303, String::new());
    response.headers.push(("location", location));
    response
}

/// `Set-Cookie` for a session token. No Max-Age: the grant's own lifetime bounds it, and the
/// browser forgets it when closed.
pub fn session_cookie(token: &str) -> String {
    format!("{COOKIE_NAME}={token}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

/// `Set-Cookie` that makes the browser forget the session.
pub fn cleared_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The session token in a `Cookie` header, if there is one that can be a token.
pub fn token_from_cookies(header: &str) -> Option<&str> {
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE_NAME && !value.is_empty() && value.len() <= 1024 && value.bytes().all(|b| b.is_ascii_graphic() && b != b'"'))
            .then_some(value)
    })
}

/// The token of `Authorization: Bearer …`.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// What a web session's grant is called and carries: its listing name, the browser family
/// (nothing else of the User-Agent is kept) and the session's CSRF token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub name: &'static str,
    pub browser: &'static str,
    pub csrf: String,
}

pub fn new_session(user_agent: Option<&str>) -> Result<NewSession, getrandom::Error> {
    let mut secret = [0u8; 24];
    getrandom::fill(&mut secret)?;
    Ok(NewSession {
        name: SESSION_NAME,
        browser: browser_family(user_agent.unwrap_or("")),
        csrf: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
    })
}

/// The browser family a User-Agent names, the only part of it a listing shows. Order matters:
/// Edge and Opera say "Chrome", Chrome says "Safari".
pub fn browser_family(user_agent: &str) -> &'static str {
    let has = |needle: &str| user_agent.contains(needle);
    if has("Edg/") || has("EdgA/") || has("EdgiOS/") {
        "Edge"
    } else if has("OPR/") || has("Opera") {
        "Opera"
    } else if has("Firefox/") || has("FxiOS/") {
        "Firefox"
    } else if has("Chrome/") || has("Chromium/") || has("CriOS/") || has("HeadlessChrome/") {
        "Chrome"
    } else if has("Safari/") && has("Version/") {
        "Safari"
    } else {
        "Browser"
    }
}

/// Compares a CSRF token in constant time.
pub fn csrf_matches(expected: &str, given: &str) -> bool {
    if expected.is_empty() {
        return false;
    }
    let (a, b) = (Sha256::digest(expected.as_bytes()), Sha256::digest(given.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `scheme://host[:port]` of a URL, lowercased: what browsers send as `Origin`.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if scheme.is_empty() || authority.is_empty() {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let authority = match scheme.to_ascii_lowercase().as_str() {
        "https" => authority.strip_suffix(":443").unwrap_or(&authority).to_owned(),
        "http" => authority.strip_suffix(":80").unwrap_or(&authority).to_owned(),
        _ => authority,
    };
    Some(format!("{}://{authority}", scheme.to_ascii_lowercase()))
}

/// Why a request is refused before anything else is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Plain HTTP, not from a trusted proxy that says the browser used HTTPS.
    InsecureTransport,
    /// A POST whose `Origin` is missing or another site's.
    ForeignOrigin,
    /// A POST without this session's CSRF token.
    BadCsrfToken,
    /// A body over [`MAX_BODY_BYTES`].
    TooLarge,
    /// The account's clients could not be read (storage): nothing can be shown or done now.
    Unavailable,
}

/// Whether a POST comes from this page's own origin. `origins` are the page's own origins as
/// URLs. A real `Origin` must be one of them. Browsers send `Origin: null` for same-origin POSTs
/// of a page with `Referrer-Policy: no-referrer` (ours), so a `null` or missing Origin is
/// accepted only with `Sec-Fetch-Site: same-origin`, which those browsers always send.
pub fn same_origin(origin: Option<&str>, sec_fetch_site: Option<&str>, origins: &[String]) -> bool {
    if let Some(site) = sec_fetch_site {
        if site != "same-origin" {
            return false;
        }
    }
    match origin.map(str::trim) {
        Some(origin) if origin != "null" => {
            let Some(origin) = origin_of(origin) else { return false };
            origins.iter().filter_map(|url| origin_of(url)).any(|own| own == origin)
        }
        _ => sec_fetch_site == Some("same-origin"),
    }
}

/// Checks a form POST of a logged-in page (or the login form, with no session yet:
/// `csrf_expected` = None).
pub fn check_form_post(
    origin: Option<&str>,
    sec_fetch_site: Option<&str>,
    origins: &[String],
    csrf_expected: Option<&str>,
    csrf_given: Option<&str>,
) -> Result<(), Refusal> {
    if !same_origin(origin, sec_fetch_site, origins) {
        return Err(Refusal::ForeignOrigin);
    }
    if let Some(expected) = csrf_expected {
        if !csrf_matches(expected, csrf_given.unwrap_or("")) {
            return Err(Refusal::BadCsrfToken);
        }
    }
    Ok(())
}

/// What a form POST led to, told on the page the browser is sent back to (`?done=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Revoked,
    NotFound,
    PasswordResetRequired,
    Failed,
    SignedOut,
    SignOutIncomplete,
    LoggedOut,
    SessionEnded,
}

impl Notice {
    pub const ALL: [Notice; 8] = [
        Notice::Revoked,
        Notice::NotFound,
        Notice::PasswordResetRequired,
        Notice::Failed,
        Notice::SignedOut,
        Notice::SignOutIncomplete,
        Notice::LoggedOut,
        Notice::SessionEnded,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Notice::Revoked => "revoked",
            Notice::NotFound => "not-found",
            Notice::PasswordResetRequired => "password-reset-required",
            Notice::Failed => "failed",
            Notice::SignedOut => "signed-out",
            Notice::SignOutIncomplete => "sign-out-incomplete",
            Notice::LoggedOut => "logged-out",
            Notice::SessionEnded => "session-ended",
        }
    }

    pub fn from_code(code: &str) -> Option<Notice> {
        Notice::ALL.into_iter().find(|n| n.code() == code)
    }

    /// The notice after a single revocation, from the plan's error name (None: done).
    pub fn after_revoke(error: Option<&str>) -> Notice {
        match error {
            None => Notice::Revoked,
            Some("item-not-found") => Notice::NotFound,
            Some("password-reset-required") => Notice::PasswordResetRequired,
            Some(_) => Notice::Failed,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Notice::Revoked => "Access revoked. That client is signed out and cannot log in again with what it held.",
            Notice::NotFound => "That client no longer has access.",
            Notice::PasswordResetRequired => {
                "That client logs in with your password: only changing your password stops it."
            }
            Notice::Failed => "Something went wrong while revoking. Try again in a moment.",
            Notice::SignedOut => "All other clients are signed out.",
            Notice::SignOutIncomplete => "Some clients could not be signed out. Try again in a moment.",
            Notice::LoggedOut => "You are logged out.",
            Notice::SessionEnded => "Your session has ended. Log in again.",
        }
    }

    /// Bad news is shown as a warning.
    pub fn is_warning(self) -> bool {
        matches!(self, Notice::PasswordResetRequired | Notice::Failed | Notice::SignOutIncomplete | Notice::NotFound)
    }
}

/// The generic text of every failed login: neither the account's existence, nor whether the
/// password was wrong or the attempt limited, shows.
pub const LOGIN_FAILED: &str = "Login failed. Check your address and password, or try again later.";

/// Errors of the JSON API: stable code (the XMPP error names where there is one), status, text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiError {
    NotAuthorized,
    Forbidden,
    HttpsRequired,
    BadRequest,
    ItemNotFound,
    PasswordResetRequired,
    InternalServerError,
    ServiceUnavailable,
    PayloadTooLarge,
}

impl ApiError {
    pub const ALL: [ApiError; 9] = [
        ApiError::NotAuthorized,
        ApiError::Forbidden,
        ApiError::HttpsRequired,
        ApiError::BadRequest,
        ApiError::ItemNotFound,
        ApiError::PasswordResetRequired,
        ApiError::InternalServerError,
        ApiError::ServiceUnavailable,
        ApiError::PayloadTooLarge,
    ];

    pub fn code(self) -> &'static str {
        match self {
            ApiError::NotAuthorized => "not-authorized",
            ApiError::Forbidden => "forbidden",
            ApiError::HttpsRequired => "https-required",
            ApiError::BadRequest => "bad-request",
            ApiError::ItemNotFound => "item-not-found",
            ApiError::PasswordResetRequired => "password-reset-required",
            ApiError::InternalServerError => "internal-server-error",
            ApiError::ServiceUnavailable => "service-unavailable",
            ApiError::PayloadTooLarge => "payload-too-large",
        }
    }

    pub fn from_code(code: &str) -> Option<ApiError> {
        ApiError::ALL.into_iter().find(|e| e.code() == code)
    }

    pub fn status(self) -> u16 {
        match self {
            ApiError::NotAuthorized => 401,
            ApiError::Forbidden | ApiError::HttpsRequired => 403,
            ApiError::BadRequest => 400,
            ApiError::ItemNotFound => 404,
            ApiError::PasswordResetRequired => 409,
            ApiError::InternalServerError => 500,
            ApiError::ServiceUnavailable => 503,
            ApiError::PayloadTooLarge => 413,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            ApiError::NotAuthorized => "A valid bearer token is required",
            ApiError::Forbidden => "Not allowed to manage the clients of this account",
            ApiError::HttpsRequired => "HTTPS is required",
            ApiError::BadRequest => "Expected a JSON object with a string \"id\"",
            ApiError::ItemNotFound => "Client not found",
            ApiError::PasswordResetRequired => "Password reset required",
            ApiError::InternalServerError => "Unable to revoke client access",
            ApiError::ServiceUnavailable => "Client data could not be read, try again later",
            ApiError::PayloadTooLarge => "Request too large",
        }
    }

    /// The API error for a revocation plan's error name.
    pub fn from_revocation(error: &str) -> ApiError {
        match error {
            "item-not-found" => ApiError::ItemNotFound,
            "password-reset-required" => ApiError::PasswordResetRequired,
            _ => ApiError::InternalServerError,
        }
    }

    pub fn response(self) -> Response {
        let mut response = json_response(self.status(), json::error_body(self));
        if self == ApiError::NotAuthorized {
            response.headers.push(("www_authenticate", "Bearer".to_owned()));
        }
        response
    }
}

#[cfg(test)]
mod tests;
