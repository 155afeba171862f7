//! The pages, as HTML text. Escaped by construction: [`Html`] only takes markup as
//! `&'static str` (written here, never from a request or storage), and every other value
//! goes through [`Html::text`] or [`Html::attr`], which escape it; a client's own words also go
//! through the one sanitiser first ([`Html::client_text`]). No script anywhere: forms and
//! links do everything, and the CSP forbids scripts even if markup slipped in.

use std::sync::OnceLock;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::{Notice, Refusal, WebPolicy, LOGIN_FAILED};
use crate::listing::{Entry, EntryKind};
use crate::model::Timestamp;
use crate::sanitize::for_people;
use crate::text::format_minute;

/// The one stylesheet, inline and allowed by its hash. Small screens first.
pub const STYLE: &str = "\
:root{color-scheme:light dark;--fg:#1b1f24;--bg:#f6f7f9;--card:#fff;--line:#d5d9de;--muted:#5b636d;--accent:#1f5fbf;--danger:#b3261e;--ok:#1d6b35}\
@media (prefers-color-scheme:dark){:root{--fg:#e8eaed;--bg:#16181b;--card:#202327;--line:#3a3f45;--muted:#a3abb5;--accent:#8ab4f8;--danger:#f28b82;--ok:#81c995}}\
*{box-sizing:border-box}\
body{margin:0;font:16px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;color:var(--fg);background:var(--bg)}\
main{max-width:44rem;margin:0 auto;padding:1rem}\
header{display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;gap:.5rem;margin-bottom:1rem}\
h1{font-size:1.4rem;margin:0}\
h2{font-size:1.05rem;margin:0;overflow-wrap:anywhere}\
.account{color:var(--muted);margin:0;overflow-wrap:anywhere}\
ul.clients{list-style:none;padding:0;margin:0;display:grid;gap:.75rem}\
.client{background:var(--card);border:1px solid var(--line);border-radius:.6rem;padding:.8rem}\
.client.this{border-color:var(--accent);border-width:2px}\
.device{margin:.1rem 0 .4rem;color:var(--muted);overflow-wrap:anywhere}\
.tags{display:flex;flex-wrap:wrap;gap:.3rem;margin:.3rem 0;padding:0;list-style:none}\
.tags li{font-size:.8rem;border:1px solid var(--line);border-radius:1rem;padding:.05rem .55rem}\
.tags .online{border-color:var(--ok);color:var(--ok)}\
.tags .here{border-color:var(--accent);color:var(--accent);font-weight:600}\
dl{display:grid;grid-template-columns:auto 1fr;gap:.1rem .8rem;margin:.4rem 0;font-size:.9rem}\
dt{color:var(--muted)}dd{margin:0}\
form{margin:0}\
.actions{display:flex;flex-wrap:wrap;gap:.5rem;margin-top:.6rem}\
button,.button{display:inline-block;font:inherit;font-size:.95rem;padding:.45rem .9rem;border-radius:.4rem;border:1px solid var(--line);background:var(--card);color:var(--fg);text-decoration:none;cursor:pointer;min-height:2.5rem}\
.danger{border-color:var(--danger);color:var(--danger)}\
.primary{background:var(--accent);border-color:var(--accent);color:var(--bg)}\
.notice{padding:.6rem .8rem;border-radius:.4rem;border:1px solid var(--ok);margin:0 0 1rem}\
.notice.warn{border-color:var(--danger)}\
.bottom{margin-top:1.2rem;display:flex;flex-wrap:wrap;gap:.5rem}\
label{display:block;margin:.6rem 0 .2rem}\
input[type=text],input[type=password]{width:100%;font:inherit;padding:.5rem;border:1px solid var(--line);border-radius:.4rem;background:var(--card);color:var(--fg)}\
.login{background:var(--card);border:1px solid var(--line);border-radius:.6rem;padding:1rem;max-width:24rem}\
.login button{margin-top:1rem;width:100%}\
p.muted{color:var(--muted);font-size:.9rem}\
";

/// `'sha256-…'` of [`STYLE`], for the CSP.
pub fn style_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()))))
}

/// HTML under construction. Markup only as `&'static str`; everything else escaped.
pub struct Html(String);

impl Html {
    pub fn new() -> Html {
        Html(String::with_capacity(8192))
    }

    /// Markup written in this file.
    pub fn raw(&mut self, markup: &'static str) -> &mut Html {
        self.0.push_str(markup);
        self
    }

    /// Text, escaped for element content and attribute values alike.
    pub fn text(&mut self, text: &str) -> &mut Html {
        for c in text.chars() {
            match c {
                '&' => self.0.push_str("&amp;"),
                '<' => self.0.push_str("&lt;"),
                '>' => self.0.push_str("&gt;"),
                '"' => self.0.push_str("&quot;"),
                '\'' => self.0.push_str("&#39;"),
                c => self.0.push(c),
            }
        }
        self
    }

    /// What a client chose (software, device …): the sanitiser, then escaped.
    pub fn client_text(&mut self, text: &str) -> &mut Html {
        self.text(&for_people(text))
    }

    /// ` name="value"`, the value escaped.
    pub fn attr(&mut self, name: &'static str, value: &str) -> &mut Html {
        self.0.push(' ');
        self.0.push_str(name);
        self.0.push_str("=\"");
        self.text(value);
        self.0.push('"');
        self
    }

    pub fn finish(self) -> String {
        self.0
    }
}

impl Default for Html {
    fn default() -> Self {
        Html::new()
    }
}

/// A query value, percent-encoded (unreserved characters stay).
pub fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn head(html: &mut Html, title: &str) {
    html.raw("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
        .raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
        .raw("<meta name=\"referrer\" content=\"no-referrer\"><title>")
        .text(title)
        .raw("</title><style>")
        .raw(STYLE)
        .raw("</style></head><body><main>");
}

fn foot(html: &mut Html) {
    html.raw("</main></body></html>\n");
}

fn notice(html: &mut Html, notice: Option<Notice>) {
    if let Some(notice) = notice {
        html.raw(if notice.is_warning() { "<p class=\"notice warn\" role=\"status\">" } else { "<p class=\"notice\" role=\"status\">" })
            .text(notice.text())
            .raw("</p>");
    }
}

fn csrf_field(html: &mut Html, csrf: &str) {
    html.raw("<input type=\"hidden\" name=\"csrf\"").attr("value", csrf).raw(">");
}

fn post_form(html: &mut Html, action: &str, csrf: &str, id: Option<&str>, label: &'static str, class: &'static str) {
    html.raw("<form method=\"post\"").attr("action", action).raw(">");
    csrf_field(html, csrf);
    if let Some(id) = id {
        html.raw("<input type=\"hidden\" name=\"id\"").attr("value", id).raw(">");
    }
    html.raw("<button type=\"submit\"").attr("class", class).raw(">").raw(label).raw("</button></form>");
}

/// What a logged-in page knows besides the list.
pub struct PageContext<'a> {
    pub policy: &'a WebPolicy,
    /// The account's bare JID.
    pub account: &'a str,
    /// The session's CSRF token, put in every form.
    pub csrf: &'a str,
    /// The grant of this browser's session (or of the API token): "this browser".
    pub this_grant: Option<&'a str>,
    pub notice: Option<Notice>,
}

fn header(html: &mut Html, ctx: &PageContext, title: &'static str) {
    html.raw("<header><div><h1>").raw(title).raw("</h1><p class=\"account\">").text(ctx.account).raw("</p></div>");
    post_form(html, &ctx.policy.path("/logout"), ctx.csrf, None, "Log out", "");
    html.raw("</header>");
}

fn is_this_browser(entry: &Entry, ctx: &PageContext) -> bool {
    entry.kind == EntryKind::Grant && ctx.this_grant == Some(entry.id)
}

/// "Name Version" or "Unknown software", sanitised.
fn software(entry: &Entry) -> String {
    entry.software_label().map(|label| for_people(&label).into_owned()).filter(|l| !l.trim().is_empty()).unwrap_or_else(|| "Unknown software".to_owned())
}

fn time_row(html: &mut Html, label: &'static str, time: Option<Timestamp>) {
    if let Some(text) = time.and_then(format_minute) {
        html.raw("<dt>").raw(label).raw("</dt><dd>").text(&text).raw(" UTC</dd>");
    }
}

fn client_item(html: &mut Html, entry: &Entry, ctx: &PageContext) {
    let here = is_this_browser(entry, ctx);
    html.raw(if here { "<li class=\"client this\"" } else { "<li class=\"client\"" }).attr("data-id", &entry.listed_id()).raw("><h2>");
    html.text(&software(entry)).raw("</h2>");
    if let Some(device) = entry.user_agent.device.as_deref().filter(|d| !for_people(d).trim().is_empty()) {
        html.raw("<p class=\"device\">on ").client_text(device).raw("</p>");
    }
    html.raw("<ul class=\"tags\">");
    if here {
        html.raw("<li class=\"here\">This browser</li>");
    }
    let access = &entry.access;
    if access.connected {
        html.raw("<li class=\"online\">Connected</li>");
    }
    if access.password.is_some() {
        html.raw("<li>Password</li>");
    }
    if access.fast {
        html.raw("<li>FAST token</li>");
    }
    if access.grant.is_some() {
        html.raw("<li>Access token</li>");
    }
    html.raw("</ul><dl>");
    time_row(html, "First seen", entry.first_seen);
    time_row(html, "Last seen", entry.last_seen);
    time_row(html, "Expires", entry.expires);
    html.raw("</dl><div class=\"actions\">");
    let id = entry.listed_id();
    if here {
        post_form(html, &ctx.policy.path("/logout"), ctx.csrf, None, "Log out", "danger");
    } else if access.password.is_some() {
        // Revoking cannot stop a password client: the next page says so before anything.
        html.raw("<a class=\"button danger\"").attr("href", &format!("{}?id={}", ctx.policy.path("/revoke"), url_encode(&id))).raw(">Revoke…</a>");
    } else {
        post_form(html, &ctx.policy.path("/revoke"), ctx.csrf, Some(&id), "Revoke", "danger");
    }
    html.raw("</div></li>");
}

/// The page: every client the XMPP list shows, in its order.
pub fn clients_page(entries: &[Entry], ctx: &PageContext) -> String {
    let mut html = Html::new();
    head(&mut html, "Your clients");
    header(&mut html, ctx, "Your clients");
    notice(&mut html, ctx.notice);
    html.raw("<p class=\"muted\">These apps, devices and sessions can access your account. Revoke what you do not use or do not recognise.</p>");
    if entries.is_empty() {
        html.raw("<p>No clients have access to your account.</p>");
    } else {
        html.raw("<ul class=\"clients\">");
        for entry in entries {
            client_item(&mut html, entry, ctx);
        }
        html.raw("</ul>");
    }
    html.raw("<div class=\"bottom\"><a class=\"button danger\"").attr("href", &ctx.policy.path("/sign-out-others")).raw(">Sign out all other clients…</a>");
    if let Some(url) = ctx.policy.password_change_url.as_deref() {
        html.raw("<a class=\"button\"").attr("href", url).raw(">Change your password</a>");
    }
    html.raw("</div>");
    foot(&mut html);
    html.finish()
}

/// The confirm step of "Revoke" for a client that logs in with the password: nothing to do
/// here but change the password. `entry` is None when the id names nothing listed.
pub fn revoke_password_client_page(entry: Option<&Entry>, ctx: &PageContext) -> String {
    let mut html = Html::new();
    head(&mut html, "Revoke a client");
    header(&mut html, ctx, "Revoke a client");
    match entry {
        Some(entry) if entry.access.password.is_some() => {
            html.raw("<div class=\"client\"><h2>").text(&software(entry)).raw("</h2>");
            if let Some(device) = entry.user_agent.device.as_deref() {
                html.raw("<p class=\"device\">on ").client_text(device).raw("</p>");
            }
            html.raw("<p>This client logs in with your password. Revoking it here cannot keep it out: it can log in again for as long as it knows your password. Only changing your password stops it (and signs out every client that used the old one).</p>");
            html.raw("<div class=\"actions\">");
            if let Some(url) = ctx.policy.password_change_url.as_deref() {
                html.raw("<a class=\"button primary\"").attr("href", url).raw(">Change your password</a>");
            } else {
                html.raw("<p class=\"muted\">Change your password in your chat app, or ask your server's administrator.</p>");
            }
            html.raw("</div></div>");
        }
        Some(entry) => {
            html.raw("<div class=\"client\"><h2>").text(&software(entry)).raw("</h2><div class=\"actions\">");
            post_form(&mut html, &ctx.policy.path("/revoke"), ctx.csrf, Some(&entry.listed_id()), "Revoke", "danger");
            html.raw("</div></div>");
        }
        None => {
            html.raw("<p class=\"notice warn\">").text(Notice::NotFound.text()).raw("</p>");
        }
    }
    html.raw("<div class=\"bottom\"><a class=\"button\"").attr("href", &ctx.policy.base_path).raw(">Back to your clients</a></div>");
    foot(&mut html);
    html.finish()
}

/// The confirm step of "Sign out all other clients": what will happen, then the button.
pub fn sign_out_page(question: &str, password_clients: usize, ctx: &PageContext) -> String {
    let mut html = Html::new();
    head(&mut html, "Sign out all other clients");
    header(&mut html, ctx, "Sign out all other clients");
    html.raw("<div class=\"client\"><p>").text(question).raw("?</p>");
    html.raw("<p>Every other app, device and session loses its access and its connections are closed. This browser stays logged in.</p>");
    if password_clients > 0 {
        html.raw("<p>").text(&format!("{password_clients} of them")).raw(" log in with your password and can log in again until you change it.");
        if let Some(url) = ctx.policy.password_change_url.as_deref() {
            html.raw(" <a").attr("href", url).raw(">Change your password</a>");
        }
        html.raw("</p>");
    }
    html.raw("<div class=\"actions\">");
    post_form(&mut html, &ctx.policy.path("/sign-out-others"), ctx.csrf, None, "Sign out all other clients", "danger");
    html.raw("<a class=\"button\"").attr("href", &ctx.policy.base_path).raw(">Cancel</a></div></div>");
    foot(&mut html);
    html.finish()
}

/// The login form, with the generic failure text or a notice.
pub fn login_page(policy: &WebPolicy, failed: bool, notice_shown: Option<Notice>) -> String {
    let mut html = Html::new();
    head(&mut html, "Manage your clients");
    html.raw("<header><h1>Manage your clients</h1></header>");
    notice(&mut html, notice_shown);
    if failed {
        html.raw("<p class=\"notice warn\" role=\"alert\">").text(LOGIN_FAILED).raw("</p>");
    }
    html.raw("<form class=\"login\" method=\"post\"").attr("action", &policy.path("/login")).raw(">");
    html.raw("<label for=\"username\">Address or user name</label>")
        .raw("<input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\" required>")
        .raw("<label for=\"password\">Password</label>")
        .raw("<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>")
        .raw("<button class=\"primary\" type=\"submit\">Log in</button></form>");
    html.raw("<p class=\"muted\">See every app and device with access to your chat account, and cut off those you do not want. Logging in here adds this browser to that list until you log out.</p>");
    foot(&mut html);
    html.finish()
}

/// Status and page of a refused request.
pub fn refusal_page(policy: &WebPolicy, refusal: Refusal) -> (u16, String) {
    let (status, text) = match refusal {
        Refusal::InsecureTransport => (403, "This page only works over HTTPS. Open it with an https:// address."),
        Refusal::ForeignOrigin | Refusal::BadCsrfToken => {
            (403, "This request did not come from this page, so nothing was done. Go back, reload the page and try again.")
        }
        Refusal::TooLarge => (413, "That request was too large."),
        Refusal::Unavailable => (503, "Your clients could not be read just now, so nothing was done. Try again in a moment."),
    };
    let mut html = Html::new();
    let title = if refusal == Refusal::Unavailable { "Try again later" } else { "Request refused" };
    head(&mut html, title);
    html.raw("<header><h1>").text(title).raw("</h1></header><p class=\"notice warn\">").text(text).raw("</p>");
    html.raw("<div class=\"bottom\"><a class=\"button\"").attr("href", &policy.base_path).raw(">Back</a></div>");
    foot(&mut html);
    (status, html.finish())
}
