//! Our XEP-0494 rendering, parsed by xmpp-parsers' `cam` module with `pedantic` on: every
//! kind of entry the core produces must come back with the values we put in.

use client_management::listing::list_entries;
use client_management::model::{AccountFacts, ClientRecord, Grant, GrantToken, Moment, SessionFact, UserAgent};
use client_management::render::{render_clients, Protocol};
use xmpp_parsers::cam::{Clients, Status, Type};
use xmpp_parsers::minidom::Element;

fn facts() -> AccountFacts {
    let mut facts = AccountFacts {
        moment: Moment {
            now: 2_000_000_000.0,
            password_updated: Some(1_000),
            account_role_priority: Some(35),
            ..Default::default()
        },
        ..Default::default()
    };
    facts.records.push(ClientRecord {
        id: "laptop/1".into(),
        first_seen: Some(1_700_000_000),
        last_seen: Some(1_700_000_100),
        full_jid: Some("u@h/laptop".into()),
        mechanisms: vec![("SCRAM-SHA-1".into(), 1_700_000_100)],
        user_agent: UserAgent {
            software: Some("Chat & <Co>".into()),
            software_id: Some("chat".into()),
            software_version: Some("1.2".into()),
            uri: Some("https://chat.example/".into()),
            device: Some("Juliet's laptop".into()),
        },
        ..Default::default()
    });
    facts.records.push(ClientRecord {
        id: "oauth-app".into(),
        first_seen: Some(1_700_000_200),
        mechanisms: vec![("OAUTHBEARER".into(), 1_700_000_200)],
        auth_token_id: Some("g-used".into()),
        ..Default::default()
    });
    facts.grants.push(Grant {
        id: "g-used".into(),
        created: Some(1_700_000_150.0),
        tokens: vec![GrantToken { expires: None, role_priority: Some(20) }],
        ..Default::default()
    });
    facts.grants.push(Grant {
        id: "g-idle".into(),
        created: Some(1_700_000_300.0),
        accessed: Some(1_700_000_400.0),
        user_agent: UserAgent { software: Some("REST client".into()), ..Default::default() },
        ..Default::default()
    });
    facts.moment.sessions.push(SessionFact { index: 1, full_jid: Some("u@h/laptop".into()), client_id: Some("laptop/1".into()), grant_id: None });
    facts
}

#[test]
fn cam_reply_parses_pedantically_with_the_values_we_set() {
    let facts = facts();
    let xml = render_clients(&list_entries(&facts), Protocol::Cam).to_xml();
    let element: Element = xml.parse().expect("well-formed XML");
    let clients = Clients::try_from(element).expect("xmpp-parsers accepts it");
    assert_eq!(clients.clients.len(), 3);

    let oauth = &clients.clients[0];
    assert_eq!(oauth.id, "client/oauth-app");
    assert_eq!(oauth.type_, Type::Session);
    assert!(!oauth.connected);
    assert!(oauth.last_seen.is_none());
    assert!(oauth.auth.grant && !oauth.auth.password && !oauth.auth.fast);
    assert_eq!(oauth.permission.status, Status::Restricted);
    assert_eq!(oauth.user_agent.software, "");

    let laptop = &clients.clients[1];
    assert_eq!(laptop.id, "client/laptop/1");
    assert!(laptop.connected);
    assert!(laptop.auth.password && !laptop.auth.grant);
    assert_eq!(laptop.permission.status, Status::Unrestricted);
    assert_eq!(laptop.user_agent.software, "Chat & <Co>");
    assert_eq!(laptop.user_agent.uri.as_deref(), Some("https://chat.example/"));
    assert_eq!(laptop.user_agent.device.as_deref(), Some("Juliet's laptop"));
    assert_eq!(laptop.first_seen, Some("2023-11-14T22:13:20Z".parse().unwrap()));

    let idle = &clients.clients[2];
    assert_eq!(idle.id, "grant/g-idle");
    assert_eq!(idle.type_, Type::Access);
    assert_eq!(idle.permission.status, Status::Normal);
    assert_eq!(idle.user_agent.software, "REST client");
}

#[test]
fn prosody_namespace_is_not_mistaken_for_cam() {
    let facts = facts();
    let xml = render_clients(&list_entries(&facts), Protocol::Prosody).to_xml();
    let element: Element = xml.parse().unwrap();
    assert!(Clients::try_from(element).is_err());
}
