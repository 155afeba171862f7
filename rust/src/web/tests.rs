use super::html::{clients_page, login_page, refusal_page, sign_out_page, style_hash, url_encode, PageContext, STYLE};
use super::*;
use crate::listing::list_entries;
use crate::model::{AccountFacts, ClientRecord, Grant, GrantToken, Moment, SessionFact, UserAgent};

fn facts() -> AccountFacts {
    AccountFacts {
        records: vec![
            ClientRecord {
                id: "pw".into(),
                first_seen: Some(1_700_000_000),
                last_seen: Some(1_700_000_100),
                mechanisms: vec![("SCRAM-SHA-1".into(), 1_700_000_100)],
                full_jid: Some("u@h/r".into()),
                user_agent: UserAgent {
                    software: Some("<script>alert(1)</script>".into()),
                    device: Some("\"><img src=x onerror=alert(1)>\u{202E}txt".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
            ClientRecord {
                id: "fast\"id".into(),
                first_seen: Some(1_700_000_000),
                last_seen: Some(1_700_000_050),
                mechanisms: vec![("OAUTHBEARER".into(), 1_700_000_000)],
                auth_token_id: Some("g-app".into()),
                ..Default::default()
            },
        ],
        grants: vec![
            Grant { id: "g-app".into(), created: Some(1.7e9), accessed: Some(1.7e9), tokens: vec![GrantToken::default()], ..Default::default() },
            Grant {
                id: "g-web".into(),
                created: Some(1.7e9),
                accessed: Some(1.7e9 + 200.0),
                expires: Some(1.7e9 + 43200.0),
                tokens: vec![GrantToken::default()],
                user_agent: UserAgent { software: Some(SESSION_NAME.into()), device: Some("Firefox".into()), ..Default::default() },
                ..Default::default()
            },
        ],
        moment: Moment {
            sessions: vec![SessionFact { index: 1, full_jid: Some("u@h/r".into()), client_id: Some("pw".into()), grant_id: None }],
            now: 1.7e9 + 300.0,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn ctx(policy: &WebPolicy) -> PageContext<'_> {
    PageContext { policy, account: "u@h", csrf: "tok&en", this_grant: Some("g-web"), notice: Some(Notice::Revoked) }
}

#[test]
fn the_page_escapes_and_sanitises_every_client_text() {
    let facts = facts();
    let policy = WebPolicy::default();
    let page = clients_page(&list_entries(&facts), &ctx(&policy));
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(!page.contains("<img"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;txt"), "bidi override removed, then escaped");
    assert!(!page.contains('\u{202E}'));
    assert!(page.contains("data-id=\"client/fast&quot;id\""), "attribute values escaped");
    assert!(page.contains("value=\"tok&amp;en\""));
    // The only <script, <img, <style are none, none, and ours.
    assert_eq!(page.matches("<style>").count(), 1);
    assert!(!page.contains("<script"));
}

#[test]
fn the_page_marks_this_browser_and_offers_the_right_action_per_client() {
    let facts = facts();
    let policy = WebPolicy { password_change_url: Some("https://example.org/pw?a=1&b=2".into()), ..WebPolicy::default() };
    let page = clients_page(&list_entries(&facts), &ctx(&policy));
    let item = |id: &str| {
        let start = page.find(&format!("data-id=\"{id}\"")).unwrap();
        let end = page[start..].find("</li>\n").or_else(|| page[start..].find("</div></li>")).unwrap() + start;
        page[start..end].to_owned()
    };
    let web = item("grant/g-web");
    assert!(web.contains("This browser") && web.contains("on Firefox") && web.contains("/clients/logout"));
    let password = item("client/pw");
    assert!(password.contains("href=\"/clients/revoke?id=client%2Fpw\""), "{password}");
    assert!(password.contains("Connected") && password.contains("Password"));
    let fast = item("client/fast&quot;id");
    assert!(fast.contains("action=\"/clients/revoke\"") && fast.contains("name=\"id\" value=\"client/fast&quot;id\""));
    assert!(page.contains("href=\"https://example.org/pw?a=1&amp;b=2\""));
    assert!(page.contains(Notice::Revoked.text()));
}

#[test]
fn other_pages() {
    let policy = WebPolicy::default();
    let login = login_page(&policy, true, Some(Notice::LoggedOut));
    assert!(login.contains(LOGIN_FAILED) && login.contains("action=\"/clients/login\"") && login.contains("You are logged out."));
    assert!(!login.contains("name=\"csrf\""));
    let confirm = sign_out_page("Sign out 2 other client(s) and close 1 other connection(s)", 1, &ctx(&policy));
    assert!(confirm.contains("Sign out 2 other client(s)") && confirm.contains("1 of them"));
    let (status, refused) = refusal_page(&policy, Refusal::InsecureTransport);
    assert_eq!(status, 403);
    assert!(refused.contains("HTTPS"));
    assert_eq!(url_encode("client/a b&é"), "client%2Fa%20b%26%C3%A9");
}

#[test]
fn headers_forbid_scripts_framing_caching_and_referrers() {
    let response = html_response(200, String::new());
    let csp = response.header("content_security_policy").unwrap();
    assert!(csp.starts_with("default-src 'none';"));
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains(style_hash()) && !csp.contains("script-src"));
    assert_eq!(response.header("cache_control"), Some("no-store"));
    assert_eq!(response.header("referrer_policy"), Some("no-referrer"));
    use base64::Engine as _;
    use sha2::Digest as _;
    let expected = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(STYLE.as_bytes()));
    assert_eq!(style_hash(), format!("sha256-{expected}"));
    let json = ApiError::NotAuthorized.response();
    assert_eq!(json.status, 401);
    assert_eq!(json.header("www_authenticate"), Some("Bearer"));
}

#[test]
fn cookies_and_bearer_tokens() {
    let cookie = session_cookie("secret-token:abc");
    assert_eq!(cookie, "__Host-client_management=secret-token:abc; Path=/; Secure; HttpOnly; SameSite=Strict");
    assert!(cleared_cookie().contains("Max-Age=0"));
    assert_eq!(token_from_cookies("a=b; __Host-client_management=secret-token:xyz; c=d"), Some("secret-token:xyz"));
    assert_eq!(token_from_cookies("client_management=secret-token:xyz"), None);
    assert_eq!(token_from_cookies("__Host-client_management="), None);
    assert_eq!(token_from_cookies("__Host-client_management=a\"b"), None);
    assert_eq!(bearer_token("Bearer  tok "), Some("tok"));
    assert_eq!(bearer_token("bearer tok"), Some("tok"));
    assert_eq!(bearer_token("Basic dTpw"), None);
    assert_eq!(bearer_token("Bearer"), None);
}

#[test]
fn origin_and_csrf_checks() {
    let own = vec!["https://chat.example:5281/clients".to_owned(), "https://Chat.Example:5281".to_owned()];
    assert!(same_origin(Some("https://chat.example:5281"), None, &own));
    assert!(same_origin(Some("https://chat.example:5281"), Some("same-origin"), &own));
    assert!(!same_origin(Some("https://evil.example"), None, &own));
    assert!(!same_origin(Some("http://chat.example:5281"), None, &own), "scheme counts");
    assert!(!same_origin(None, None, &own), "a POST must say where it comes from");
    assert!(!same_origin(Some("null"), None, &own));
    assert!(same_origin(Some("null"), Some("same-origin"), &own), "Referrer-Policy: no-referrer makes browsers send null");
    assert!(!same_origin(Some("null"), Some("cross-site"), &own));
    assert!(!same_origin(Some("https://chat.example:5281"), Some("same-site"), &own));
    assert_eq!(origin_of("https://Example.org:443/x?y"), Some("https://example.org".into()));
    assert_eq!(origin_of("nonsense"), None);

    assert!(csrf_matches("abc", "abc"));
    assert!(!csrf_matches("abc", "abd") && !csrf_matches("", "") && !csrf_matches("abc", ""));
    let origin = Some("https://chat.example:5281");
    assert_eq!(check_form_post(10, origin, None, &own, Some("t"), Some("t")), Ok(()));
    assert_eq!(check_form_post(10, origin, None, &own, Some("t"), None), Err(Refusal::BadCsrfToken));
    assert_eq!(check_form_post(10, Some("https://evil"), None, &own, Some("t"), Some("t")), Err(Refusal::ForeignOrigin));
    assert_eq!(check_form_post(10, origin, None, &own, None, None), Ok(()), "the login form has no session yet");
    assert_eq!(check_form_post(MAX_BODY_BYTES + 1, origin, None, &own, None, None), Err(Refusal::TooLarge), "size first");
}

#[test]
fn sessions_are_named_with_the_browser_family_only() {
    let cases = [
        ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "Firefox"),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36", "Chrome"),
        ("Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 Edg/126.0", "Edge"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Safari"),
        ("Mozilla/5.0 (X11) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 OPR/111.0", "Opera"),
        ("curl/8.0", "Browser"),
        ("", "Browser"),
    ];
    for (ua, family) in cases {
        assert_eq!(browser_family(ua), family, "{ua}");
    }
    let a = new_session(Some(cases[0].0)).unwrap();
    let b = new_session(None).unwrap();
    assert_eq!((a.name, a.browser, b.browser), (SESSION_NAME, "Firefox", "Browser"));
    assert_eq!(a.csrf.len(), 32);
    assert_ne!(a.csrf, b.csrf);
}

#[test]
fn session_tokens_are_renewed_while_in_use() {
    let policy = WebPolicy::default();
    assert_eq!(policy.renewal_age(), 300.0);
    assert!(!policy.renewal_due(1000.0, 1299.0));
    assert!(policy.renewal_due(1000.0, 1300.0));
    assert_eq!(policy.path("/revoke"), "/clients/revoke");
    assert_eq!(WebPolicy { base_path: "/".into(), ..policy }.path("/revoke"), "/revoke");
}

#[test]
fn json_bodies() {
    let facts = facts();
    let body = json::clients_body(&list_entries(&facts), Some("g-web"));
    assert!(body.starts_with("{\"clients\":[{"));
    assert!(body.contains("\"software\":\"\\u003cscript\\u003ealert(1)\\u003c/script\\u003e\""), "{body}");
    assert!(body.contains("\"id\":\"client/fast\\\"id\""));
    assert!(body.contains("\"auth\":[\"password\"]"));
    assert!(body.contains("\"current\":true"));
    assert!(body.contains("\"first_seen\":\"2023-11-14T22:13:20Z\""));
    assert!(!body.contains('\u{202E}'));
    assert_eq!(json::error_body(ApiError::PasswordResetRequired), "{\"error\":\"password-reset-required\",\"text\":\"Password reset required\"}");
    assert_eq!(ApiError::from_revocation("password-reset-required").status(), 409);
    assert_eq!(ApiError::from_revocation("item-not-found").status(), 404);
    assert_eq!(ApiError::from_revocation("anything").status(), 500);
    for error in ApiError::ALL {
        assert_eq!(ApiError::from_code(error.code()), Some(error));
    }
    for notice in Notice::ALL {
        assert_eq!(Notice::from_code(notice.code()), Some(notice));
    }
    let mut out = String::new();
    json::string(&mut out, "a\u{1}\n\u{2028}<");
    assert_eq!(out, "\"a\\u0001\\n\\u2028\\u003c\"");
}
