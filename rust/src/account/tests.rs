use super::*;
use std::collections::HashMap;

use crate::ids::fast_token_key_prefix;
use crate::model::{FastToken, Grant, SessionFact, Timestamp, UserAgent};

const T: Timestamp = 1_000_000;

fn policy() -> Policy {
    Policy { max_clients: 3, retention: Some(100), ..Policy::default() }
}

fn loaded(policy: Policy, records: Vec<ClientRecord>) -> Account {
    let mut account = Account::new(policy);
    account.load_records(records);
    account.load_grants(Vec::new(), T as f64);
    account.load_fast_tokens(HashMap::new());
    account
}

fn moment() -> Moment {
    Moment { now: T as f64, password_updated: Some(T - 500), ..Moment::default() }
}

fn sasl2(id: &str, mechanism: &str) -> Login {
    Login {
        client_id: Some(id.into()),
        full_jid: Some(format!("u@h/{id}")),
        mechanism: Some(mechanism.into()),
        at: T,
        ..Login::default()
    }
}

fn legacy(resource: &str) -> Login {
    Login { full_jid: Some(format!("u@h/{resource}")), mechanism: Some("SCRAM-SHA-1".into()), at: T, ..Login::default() }
}

fn password_record(id: &str, last_seen: Timestamp) -> ClientRecord {
    ClientRecord {
        id: id.into(),
        first_seen: Some(last_seen),
        last_seen: Some(last_seen),
        mechanisms: vec![("SCRAM-SHA-1".into(), last_seen)],
        ..Default::default()
    }
}

#[test]
fn a_new_client_is_stored_at_once_and_a_plain_relogin_waits() {
    let mut account = loaded(Policy::default(), Vec::new());
    let first = account.record_login(sasl2("phone", "SCRAM-SHA-1"), moment()).unwrap();
    assert!(first.is_new);
    assert_eq!(first.write, WriteTiming::Now);
    let again = account.record_login(Login { at: T + 5, ..sasl2("phone", "SCRAM-SHA-1") }, moment()).unwrap();
    assert!(!again.is_new);
    assert_eq!(again.write, WriteTiming::Later);
    let record = account.record("phone").unwrap();
    assert_eq!((record.first_seen, record.last_seen), (Some(T), Some(T + 5)));
    assert_eq!(record.mechanisms, [("SCRAM-SHA-1".to_owned(), T + 5)]);
}

#[test]
fn access_changes_are_stored_at_once_token_mechanisms_are_not_password_access() {
    let mut account = loaded(Policy::default(), vec![ClientRecord {
        id: "app".into(),
        mechanisms: vec![("SCRAM-SHA-1".into(), T - 900)], // before the password change
        ..Default::default()
    }]);
    // First password login since the change: access regained.
    let outcome = account.record_login(sasl2("app", "PLAIN"), moment()).unwrap();
    assert_eq!(outcome.write, WriteTiming::Now);
    // A FAST mechanism used for the first time is not password access; the first FAST
    // login is an access change through fast_auth.
    let fast = Login { fast: true, ..sasl2("app", "HT-SHA-256-NONE") };
    assert_eq!(account.record_login(fast.clone(), moment()).unwrap().write, WriteTiming::Now);
    assert_eq!(account.record_login(fast, moment()).unwrap().write, WriteTiming::Later);
    // A new grant.
    let grant = Login { grant_id: Some("g1".into()), ..sasl2("app", "OAUTHBEARER") };
    assert_eq!(account.record_login(grant.clone(), moment()).unwrap().write, WriteTiming::Now);
    assert_eq!(account.record_login(grant, moment()).unwrap().write, WriteTiming::Later);
}

#[test]
fn a_login_keeps_oauth_details_it_does_not_replace_and_cuts_long_texts() {
    let mut account = loaded(Policy::default(), Vec::new());
    let oauth = UserAgent {
        software: Some("App".into()),
        software_id: Some("app-id".into()),
        software_version: Some("2".into()),
        uri: Some("https://app.example".into()),
        device: None,
    };
    let grant_login = Login {
        grant_id: Some("g".into()),
        oauth_client: Some(oauth),
        user_agent: UserAgent { device: Some("Phone".into()), ..Default::default() },
        ..sasl2("app", "OAUTHBEARER")
    };
    account.record_login(grant_login, moment()).unwrap();
    let fast_login = Login {
        fast: true,
        user_agent: UserAgent { software: Some("é".repeat(300)), device: Some("Tablet".into()), ..Default::default() },
        ..sasl2("app", "HT-SHA-256-NONE")
    };
    account.record_login(fast_login, moment()).unwrap();
    let agent = &account.record("app").unwrap().user_agent;
    assert_eq!(agent.software.as_deref().map(|s| s.chars().count()), Some(256));
    assert_eq!(agent.software_id.as_deref(), Some("app-id"));
    assert_eq!(agent.software_version.as_deref(), Some("2"));
    assert_eq!(agent.uri.as_deref(), Some("https://app.example"));
    assert_eq!(agent.device.as_deref(), Some("Tablet"));
}

#[test]
fn legacy_clients_are_found_by_full_jid_and_get_an_id_of_ours() {
    let mut account = loaded(Policy::default(), Vec::new());
    let first = account.record_login(legacy("desk"), moment()).unwrap();
    assert!(first.is_new && first.client_id.len() == 12);
    let again = account.record_login(Login { at: T + 1, ..legacy("desk") }, moment()).unwrap();
    assert_eq!((again.client_id.as_str(), again.is_new), (first.client_id.as_str(), false));
    let other = account.record_login(legacy("laptop"), moment()).unwrap();
    assert_ne!(other.client_id, first.client_id);
    assert!(account.record(&first.client_id).unwrap().legacy);
    // A SASL2 record with the same JID is never taken for a legacy client.
    account.record_login(sasl2("desk", "PLAIN"), moment()).unwrap();
    let third = account.record_login(Login { full_jid: Some("u@h/desk".into()), ..legacy("x") }, moment()).unwrap();
    assert_eq!(third.client_id, first.client_id);
}

#[test]
fn a_full_account_drops_accessless_then_least_recent_password_records() {
    let established = |id: &str, last_seen| ClientRecord { first_seen: Some(T - 5000), ..password_record(id, last_seen) };
    let mut records = vec![
        established("old-pw", T - 300),
        established("new-pw", T - 10),
        ClientRecord { id: "gone".into(), last_seen: Some(T - 5), mechanisms: vec![("PLAIN".into(), T - 900)], ..Default::default() },
    ];
    records[1].user_agent.software = Some("Chat".into());
    let mut account = loaded(policy(), records);
    let outcome = account.record_login(sasl2("fresh", "PLAIN"), moment()).unwrap();
    assert_eq!(outcome.evicted, ["gone"], "no access goes first, however recent");
    let outcome = account.record_login(sasl2("fresher", "PLAIN"), moment()).unwrap();
    assert_eq!(outcome.evicted, ["fresh"], "a client seen once goes before established ones");
    let mut relogin = sasl2("fresher", "PLAIN");
    relogin.at = T + ONE_SHOT_SECONDS + 1;
    account.record_login(relogin, moment()).unwrap();
    let outcome = account.record_login(sasl2("freshest", "PLAIN"), moment()).unwrap();
    assert_eq!(outcome.evicted, ["old-pw"], "then the least recently seen");
    assert_eq!(account.records().len(), 3);
    let batch = account.take_writes().unwrap();
    assert_eq!(batch.removed, ["fresh", "gone", "old-pw"]);
    assert!(!batch.changed.contains(&"gone".to_owned()));
}

#[test]
fn a_flood_of_one_shot_logins_replaces_itself_and_leaves_older_records() {
    let mut account = loaded(Policy { max_clients: 100, ..policy() }, Vec::new());
    for i in 0..6 {
        let mut owner = sasl2(&format!("owner-{i}"), "SCRAM-SHA-1");
        owner.at = T - 490;
        account.record_login(owner.clone(), moment()).unwrap();
        owner.at = T - 300 + i;
        account.record_login(owner, moment()).unwrap();
    }
    for i in 0..500 {
        account.record_login(Login { at: T + i, ..sasl2(&format!("flood-{i}"), "PLAIN") }, moment()).unwrap();
        account.record_login(Login { at: T + i, ..legacy(&format!("random-{i}")) }, moment()).unwrap();
    }
    assert_eq!(account.records().len(), 100);
    for i in 0..6 {
        assert!(account.record(&format!("owner-{i}")).is_some(), "owner-{i} was pushed out");
    }
    assert!(account.record("flood-0").is_some(), "the oldest newcomers stay, the newest replace each other");
    assert!(account.record("flood-499").is_none(), "the last flood login replaced by the last legacy bind");
}

#[test]
fn a_sasl2_login_never_takes_over_a_legacy_record() {
    let mut account = loaded(policy(), Vec::new());
    let legacy_outcome = account.record_login(legacy("phone"), moment()).unwrap();
    let stolen = legacy_outcome.client_id.clone();
    let mut claim = sasl2(&stolen, "PLAIN");
    claim.user_agent.software = Some("Impostor".into());
    let outcome = account.record_login(claim, moment()).unwrap();
    assert!(outcome.is_new, "the SASL2 login gets a record of its own");
    assert_eq!(outcome.client_id, stolen);
    let mine = account.record(&stolen).unwrap();
    assert!(!mine.legacy);
    let moved: Vec<&ClientRecord> = account.records().iter().filter(|r| r.legacy).collect();
    assert_eq!(moved.len(), 1);
    assert_ne!(moved[0].id, stolen);
    assert_eq!(moved[0].full_jid.as_deref(), Some("u@h/phone"), "the legacy record keeps its history");
    assert_eq!(moved[0].user_agent.software, None);
    let moved_id = moved[0].id.clone();
    let again = account.record_login(legacy("phone"), moment()).unwrap();
    assert_eq!(again.client_id, moved_id, "and the legacy client still finds it");
    let batch = account.take_writes().unwrap();
    assert!(batch.changed.contains(&stolen) && batch.changed.contains(&again.client_id), "{batch:?}");
}

#[test]
fn clients_holding_credentials_or_streams_are_never_dropped() {
    let mut fast = password_record("fast", T - 400);
    fast.mechanisms.clear();
    let mut granted = password_record("granted", T - 400);
    granted.auth_token_id = Some("g".into());
    let connected = password_record("connected", T - 400);
    let mut account = Account::new(policy());
    account.load_records(vec![fast, granted, connected]);
    // Credentials unknown: every SASL2 record might hold a FAST token.
    let m = Moment { sessions: vec![SessionFact { index: 1, full_jid: Some("u@h/x".into()), client_id: Some("connected".into()), grant_id: None }], ..moment() };
    assert_eq!(account.missing(Purpose::Login, T as f64), [Part::Grants, Part::FastTokens]);
    let outcome = account.record_login(sasl2("new", "PLAIN"), m.clone()).unwrap();
    assert!(outcome.evicted.is_empty(), "{outcome:?}");

    let mut tokens = HashMap::new();
    tokens.insert(format!("{}-cur", fast_token_key_prefix("fast")), FastToken { issued_at: T as f64, expires_at: (T + 99) as f64 });
    account.load_fast_tokens(tokens);
    account.load_grants(vec![Grant { id: "g".into(), created: Some((T - 1) as f64), accessed: Some((T - 1) as f64), ..Default::default() }], T as f64);
    let outcome = account.record_login(sasl2("newer", "PLAIN"), m).unwrap();
    assert_eq!(outcome.evicted, ["new"], "the only password-only record not connected");
    assert_eq!(account.records().len(), 4, "the limit gives way to credentials");
}

#[test]
fn legacy_floods_stay_within_the_limit_without_knowing_credentials() {
    let mut account = Account::new(Policy { max_clients: 100, ..Policy::default() });
    account.load_records(Vec::new());
    for i in 0..300 {
        assert_eq!(account.missing(Purpose::Login, T as f64).is_empty(), i < 100);
        account.record_login(Login { at: T + i, ..legacy(&format!("r{i}")) }, moment()).unwrap();
    }
    assert_eq!(account.records().len(), 100);
    assert!(account.records().iter().filter(|r| r.last_seen < Some(T + 99)).count() == 99, "one-shot newcomers replace each other");
}

#[test]
fn retention_deletes_accessless_records_last_seen_before_it() {
    let old_gone = ClientRecord { id: "old-gone".into(), last_seen: Some(T - 101), mechanisms: vec![("PLAIN".into(), T - 900)], ..Default::default() };
    let recent_gone = ClientRecord { id: "recent-gone".into(), last_seen: Some(T - 99), ..Default::default() };
    let timeless = ClientRecord { id: "timeless".into(), ..Default::default() };
    let old_pw = password_record("old-pw", T - 400);
    let mut account = loaded(Policy { max_clients: 100, ..policy() }, vec![old_gone, recent_gone, timeless, old_pw]);
    let dry = account.prune(moment(), true).unwrap();
    assert_eq!(dry.deleted, ["old-gone", "timeless"]);
    assert_eq!(account.records().len(), 4, "a dry run changes nothing");
    assert!(account.take_writes().is_none());
    let real = account.prune(moment(), false).unwrap();
    assert_eq!(real, dry);
    assert_eq!(account.take_writes().unwrap().removed, ["old-gone", "timeless"]);
    let never = Policy { retention: None, max_clients: 100, ..policy() };
    let mut keeper = loaded(never, vec![ClientRecord { id: "x".into(), ..Default::default() }]);
    assert!(keeper.prune(moment(), false).unwrap().deleted.is_empty());
}

#[test]
fn minimisation_strips_what_the_admin_turned_off() {
    let private = Policy { store_full_jids: false, store_device_names: false, ..Policy::default() };
    let mut account = loaded(private, Vec::new());
    let login = Login { user_agent: UserAgent { device: Some("Phone".into()), ..Default::default() }, ..sasl2("a", "PLAIN") };
    account.record_login(login, moment()).unwrap();
    account.record_login(legacy("desk"), moment()).unwrap();
    let sasl2_record = account.record("a").unwrap();
    assert_eq!((sasl2_record.full_jid.as_deref(), sasl2_record.user_agent.device.as_deref()), (None, None));
    assert!(account.records().iter().any(|r| r.legacy && r.full_jid.as_deref() == Some("u@h/desk")));

    let mut stored = password_record("old", T);
    stored.full_jid = Some("u@h/old".into());
    stored.user_agent.device = Some("Phone".into());
    let mut account = Account::new(private);
    account.load_records(vec![stored]);
    assert_eq!(account.take_writes().unwrap().changed, ["old"], "written back stripped");
    assert_eq!(account.record("old").unwrap().full_jid, None);
}

#[test]
fn failed_writes_stay_queued_and_back_off() {
    let mut account = loaded(Policy { write_delay: 10.0, ..Policy::default() }, Vec::new());
    account.record_login(sasl2("a", "PLAIN"), moment()).unwrap();
    let batch = account.take_writes().unwrap();
    assert_eq!(account.writes_failed(), 10.0);
    assert_eq!(account.writes_failed(), 20.0);
    assert_eq!(account.take_writes().unwrap(), batch, "nothing dropped");
    for _ in 0..20 {
        account.writes_failed();
    }
    assert_eq!(account.retry_delay(), MAX_RETRY_DELAY);
    // A change made while a store is in flight survives its success.
    account.record_login(sasl2("b", "PLAIN"), moment()).unwrap();
    account.writes_stored(batch.serial);
    assert_eq!(account.take_writes().unwrap().changed, ["b"]);
    assert_eq!(account.retry_delay(), 10.0);
}

#[test]
fn a_deleted_account_records_and_stores_nothing() {
    let mut account = loaded(Policy::default(), Vec::new());
    account.record_login(sasl2("a", "PLAIN"), moment()).unwrap();
    account.mark_deleted();
    assert!(account.take_writes().is_none());
    assert_eq!(account.record_login(sasl2("b", "PLAIN"), moment()), Err(NotReady::Deleted));
    assert_eq!(account.prune(moment(), false), Err(NotReady::Deleted));
}

#[test]
fn events_make_the_right_parts_stale() {
    let mut account = loaded(Policy::default(), Vec::new());
    assert!(account.missing(Purpose::Listing, T as f64).is_empty());
    assert_eq!(account.missing(Purpose::Listing, T as f64 + 60.0), [Part::Grants], "past the grant cache lifetime");
    assert_eq!(account.missing(Purpose::Change, T as f64), [Part::Grants, Part::FastTokens], "changes read afresh");
    account.note(CacheEvent::Login);
    assert_eq!(account.missing(Purpose::Listing, T as f64), [Part::FastTokens]);
    account.load_fast_tokens(HashMap::new());
    account.note(CacheEvent::from_name("token-grant-revoked").unwrap());
    assert_eq!(account.missing(Purpose::Listing, T as f64), [Part::Grants]);
    let mut records_failed = Account::new(Policy::default());
    assert_eq!(records_failed.record_login(sasl2("a", "PLAIN"), moment()), Err(NotReady::RecordsMissing));
    assert_eq!(records_failed.missing(Purpose::Login, T as f64), [Part::Records]);
}
