//! Event sequences in, actions out.

use super::*;
use crate::web::answers::{WebRequest, WebView};
use crate::model::{SessionFact, Timestamp};

const T: Timestamp = 1_000_000;
const NOW: f64 = T as f64;

fn policy() -> Policy {
    Policy { write_delay: 10.0, ..Policy::default() }
}

/// A moment at `now` with streams `(key, full JID)`; a key `s-ID` is a stream of client `ID`.
fn moment_with(now: f64, streams: &[(&str, Option<&str>)]) -> Moment {
    Moment {
        sessions: streams
            .iter()
            .enumerate()
            .map(|(i, (key, jid))| SessionFact {
                index: i + 1,
                full_jid: jid.map(str::to_owned),
                client_id: key.strip_prefix("s-").map(str::to_owned),
                grant_id: None,
            })
            .collect(),
        stream_keys: streams.iter().map(|(key, _)| Some((*key).to_owned())).collect(),
        now,
        ..Moment::default()
    }
}

fn moment() -> Moment {
    moment_with(NOW, &[])
}

fn login(id: &str) -> Event {
    Event::Login {
        stream: format!("s-{id}"),
        login: Box::new(Login { client_id: Some(id.into()), full_jid: Some(format!("u@h/{id}")), mechanism: Some("PLAIN".into()), at: T, ..Login::default() }),
    }
}

fn records(list: Vec<ClientRecord>) -> Event {
    Event::Read(vec![ReadResult::Read { data: Stored::Records(list), skipped: 0 }])
}

fn records_failed() -> Event {
    Event::Read(vec![ReadResult::Failed { part: Part::Records, error: "disk on fire".into() }])
}

fn written(serial: u64) -> Event {
    Event::Written { serial, result: Ok(()) }
}

fn write_failed(serial: u64) -> Event {
    Event::Written { serial, result: Err("disk full".into()) }
}

/// The write among `actions`: serial and ids of the records it stores.
fn write_of(actions: &[Action]) -> Option<(u64, Vec<String>, Vec<String>)> {
    actions.iter().find_map(|action| match action {
        Action::Write { serial, changed, removed } => Some((*serial, changed.iter().map(|r| r.id.clone()).collect(), removed.clone())),
        _ => None,
    })
}

fn timers(actions: &[Action]) -> Vec<f64> {
    actions.iter().filter_map(|a| if let Action::Timer { after } = a { Some(*after) } else { None }).collect()
}

fn kinds(actions: &[Action]) -> Vec<&'static str> {
    actions
        .iter()
        .map(|a| match a {
            Action::Read(_) => "read",
            Action::Write { .. } => "write",
            Action::Timer { .. } => "timer",
            Action::NoticeTimer { .. } => "notice-timer",
            Action::NewClient { .. } => "new-client",
            Action::Notify { .. } => "notify",
            Action::Reply(_) => "reply",
            Action::CarryOut(_) => "carry-out",
            Action::Listing(_) => "listing",
            Action::ListingXml(_) => "listing_xml",
            Action::Answer { .. } => "answer",
            Action::Log { .. } => "log",
        })
        .collect()
}

fn record(id: &str) -> ClientRecord {
    ClientRecord { id: id.into(), first_seen: Some(T - 5000), last_seen: Some(T - 100), mechanisms: vec![("PLAIN".into(), T - 100)], ..Default::default() }
}

#[test]
fn a_new_login_reads_the_records_once_stores_at_once_then_announces() {
    let mut driver = Driver::new(policy());
    assert_eq!(driver.handle("u", login("phone"), moment()), [Action::Read(vec![Part::Records])]);
    let actions = driver.handle("u", records(vec![record("laptop")]), moment());
    assert_eq!(kinds(&actions), ["write", "new-client"], "stored before the login completes, then the event");
    let (serial, changed, removed) = write_of(&actions).unwrap();
    assert_eq!((changed, removed), (vec!["phone".to_owned()], vec![]));
    assert_eq!(driver.handle("u", written(serial), moment()), []);
    assert!(driver.pending().is_empty());
    // In memory now: the next login reads nothing and waits to be stored.
    let again = Event::Login { stream: "s-2".into(), login: Box::new(Login { at: T + 5, ..login_of("phone") }) };
    assert_eq!(driver.handle("u", again, moment()), [Action::Timer { after: 10.0 }]);
    assert_eq!(driver.handle("u", login("laptop"), moment()), [], "one timer per account");
    assert_eq!(driver.pending(), ["u"]);
    let actions = driver.handle("u", Event::Tick, moment_with(NOW + 10.0, &[]));
    let (serial, changed, _) = write_of(&actions).unwrap();
    assert_eq!(changed, ["laptop", "phone"]);
    assert_eq!(driver.handle("u", written(serial), moment()), []);
    assert!(driver.pending().is_empty());
}

fn login_of(id: &str) -> Login {
    match login(id) {
        Event::Login { login, .. } => *login,
        _ => unreachable!(),
    }
}

#[test]
fn failed_writes_stay_queued_and_back_off_until_stored() {
    let mut driver = Driver::new(policy());
    driver.handle("u", login("phone"), moment());
    let actions = driver.handle("u", records(Vec::new()), moment());
    let (serial, ..) = write_of(&actions).unwrap();
    let actions = driver.handle("u", write_failed(serial), moment());
    assert_eq!(kinds(&actions), ["log", "timer"]);
    assert_eq!(timers(&actions), [10.0]);
    let actions = driver.handle("u", Event::Tick, moment());
    let (serial, changed, _) = write_of(&actions).expect("tried again");
    assert_eq!(changed, ["phone"], "nothing dropped");
    assert_eq!(timers(&driver.handle("u", write_failed(serial), moment())), [20.0], "doubled");
    let actions = driver.handle("u", Event::Tick, moment());
    let (serial, ..) = write_of(&actions).unwrap();
    // A login while the write is out is not lost when it succeeds.
    let relogin = Event::Login { stream: "s-x".into(), login: Box::new(Login { at: T + 50, ..login_of("phone") }) };
    assert_eq!(driver.handle("u", relogin, moment()), [], "a write is out: no second one, no timer yet");
    assert_eq!(timers(&driver.handle("u", written(serial), moment())), [10.0], "the change since, at the normal delay");
    let (serial, ..) = write_of(&driver.handle("u", Event::Tick, moment())).unwrap();
    assert_eq!(driver.handle("u", written(serial), moment()), []);
    assert!(driver.pending().is_empty());
}

#[test]
fn a_login_seen_while_the_records_cannot_be_read_is_recorded_once_they_can() {
    let mut driver = Driver::new(policy());
    let streams = [("s-phone", None)];
    driver.handle("u", login("phone"), moment_with(NOW, &streams));
    let actions = driver.handle("u", records_failed(), moment());
    assert_eq!(kinds(&actions), ["log", "timer"]);
    assert_eq!(timers(&actions), [10.0]);
    assert_eq!(driver.pending(), ["u"]);
    // Still failing: the read backs off on its own count, never as a failed write.
    assert_eq!(driver.handle("u", Event::Tick, moment_with(NOW + 10.0, &streams)), [Action::Read(vec![Part::Records])]);
    assert_eq!(timers(&driver.handle("u", records_failed(), moment())), [20.0]);
    assert_eq!(driver.cached("u").unwrap().retry_delay(), 10.0, "no write failed");
    // The stream bound meanwhile; the records come back.
    let bound = [("s-phone", Some("u@h/bound"))];
    driver.handle("u", Event::Tick, moment_with(NOW + 30.0, &bound));
    let actions = driver.handle("u", records(Vec::new()), moment());
    assert_eq!(kinds(&actions), ["write", "new-client"]);
    let Some(Action::Write { changed, .. }) = actions.first() else { unreachable!() };
    assert_eq!(changed[0].full_jid.as_deref(), Some("u@h/bound"), "with the JID the stream has now");
}

#[test]
fn a_queued_login_of_a_stream_that_is_gone_is_dropped() {
    let mut driver = Driver::new(policy());
    driver.handle("u", login("phone"), moment_with(NOW, &[("s-phone", None)]));
    driver.handle("u", records_failed(), moment());
    driver.handle("u", Event::Tick, moment_with(NOW + 10.0, &[]));
    assert_eq!(driver.handle("u", records(Vec::new()), moment()), []);
    assert!(driver.pending().is_empty());
    assert!(driver.cached("u").unwrap().records().is_empty());
}

#[test]
fn nothing_is_written_for_a_deleted_account() {
    let mut driver = Driver::new(policy());
    driver.handle("u", records(Vec::new()), moment()); // nothing waited for it: not in memory
    driver.handle("u", login("phone"), moment());
    let (serial, ..) = write_of(&driver.handle("u", records(Vec::new()), moment())).unwrap();
    driver.handle("u", written(serial), moment());
    // A change waits for its timer; the account is deleted before it comes.
    driver.handle("u", Event::Login { stream: "s-2".into(), login: Box::new(Login { at: T + 5, ..login_of("phone") }) }, moment());
    assert_eq!(driver.pending(), ["u"]);
    assert_eq!(driver.handle("u", Event::AccountDeleted, moment()), []);
    assert_eq!(driver.handle("u", Event::Tick, moment()), [], "the timer finds nothing to store");
    assert_eq!(driver.handle("u", Event::StoreNow, moment()), []);
    assert!(driver.pending().is_empty());
    assert_eq!(driver.in_memory(), 0);
    // Deleted while a write was out: its answer changes nothing.
    driver.handle("v", login("a"), moment());
    let (serial, ..) = write_of(&driver.handle("v", records(Vec::new()), moment())).unwrap();
    driver.handle("v", Event::AccountDeleted, moment());
    assert_eq!(driver.handle("v", write_failed(serial), moment()), []);
    assert_eq!(driver.handle("v", Event::Tick, moment()), []);
}

#[test]
fn unloading_stores_what_waits_and_a_reloaded_driver_reads_again() {
    let mut driver = Driver::new(policy());
    driver.handle("u", login("phone"), moment());
    let (serial, ..) = write_of(&driver.handle("u", records(Vec::new()), moment())).unwrap();
    driver.handle("u", written(serial), moment());
    driver.handle("u", Event::Login { stream: "s-2".into(), login: Box::new(Login { at: T + 5, ..login_of("phone") }) }, moment());
    let actions = driver.handle("u", Event::StoreNow, moment());
    let Some(Action::Write { changed, .. }) = actions.first() else { panic!("{actions:?}") };
    assert_eq!(changed[0].last_seen, Some(T + 5));
    assert_eq!(driver.handle("nobody", Event::StoreNow, moment()), [], "accounts not in memory are left alone");
    let stored = changed.clone();

    let mut reloaded = Driver::new(policy());
    let relogin = Event::Login { stream: "s-3".into(), login: Box::new(Login { at: T + 9, ..login_of("phone") }) };
    assert_eq!(reloaded.handle("u", relogin, moment()), [Action::Read(vec![Part::Records])]);
    assert_eq!(timers(&reloaded.handle("u", records(stored), moment())), [10.0], "known client: stored later");
    assert_eq!(reloaded.cached("u").unwrap().record("phone").unwrap().last_seen, Some(T + 9));
}

#[test]
fn accounts_without_work_left_are_dropped_least_recently_used_first() {
    let mut driver = Driver::new(Policy { cache_size: 2, ..policy() });
    for name in ["a", "b"] {
        driver.handle(name, login("x"), moment());
        let (serial, ..) = write_of(&driver.handle(name, records(Vec::new()), moment())).unwrap();
        driver.handle(name, written(serial), moment());
    }
    assert_eq!(driver.handle("a", Event::Tick, moment()), []); // used again
    // "c" has work left when "d" comes: "b" goes, "c" stays.
    driver.handle("c", login("x"), moment());
    driver.handle("c", records_failed(), moment());
    driver.handle("d", login("x"), moment());
    assert_eq!(driver.in_memory(), 3, "{:?}", driver.pending());
    assert!(driver.cached("b").is_none());
    assert!(driver.cached("a").is_some() && driver.cached("c").is_some() && driver.cached("d").is_some());
    assert_eq!(driver.handle("b", login("y"), moment()), [Action::Read(vec![Part::Records])], "read again");
}

#[test]
fn a_full_account_reads_the_credentials_in_a_second_round_and_goes_on_without_them() {
    let mut driver = Driver::new(Policy { max_clients: 1, ..policy() });
    driver.handle("u", login("new"), moment());
    let actions = driver.handle("u", records(vec![record("old")]), moment());
    assert_eq!(actions, [Action::Read(vec![Part::Grants, Part::FastTokens])]);
    let failed = Event::Read(vec![
        ReadResult::Failed { part: Part::Grants, error: "x".into() },
        ReadResult::Read { data: Stored::FastTokens(HashMap::new()), skipped: 2 },
    ]);
    let actions = driver.handle("u", failed, moment());
    assert_eq!(kinds(&actions), ["log", "log", "write", "new-client"], "{actions:?}");
    let (_, changed, removed) = write_of(&actions).unwrap();
    // Grants unknown: the old record has no grant id, so it may go.
    assert_eq!((changed, removed), (vec!["new".to_owned()], vec!["old".to_owned()]));
}

#[test]
fn a_new_client_is_announced_to_the_other_streams_then_summarised() {
    let mut driver = Driver::new(Policy { notify_new_clients: true, notice_interval: 600.0, ..policy() });
    let streams = [("s-other", Some("u@h/other")), ("s-phone", Some("u@h/phone"))];
    driver.handle("u", login("phone"), moment_with(NOW, &streams));
    let actions = driver.handle("u", records(Vec::new()), moment());
    assert_eq!(kinds(&actions), ["write", "new-client", "notify", "notice-timer"]);
    let Some(Action::Notify { streams: to, .. }) = actions.get(2) else { unreachable!() };
    assert_eq!(to, &[1], "not the new client's own stream");
    let (serial, ..) = write_of(&actions).unwrap();
    driver.handle("u", written(serial), moment());
    // A second one within the interval is held for the summary.
    let actions = driver.handle("u", login("tablet"), moment_with(NOW + 1.0, &streams));
    assert_eq!(kinds(&actions), ["write", "new-client"]);
    let (serial, ..) = write_of(&actions).unwrap();
    driver.handle("u", written(serial), moment());
    let actions = driver.handle("u", Event::NoticesDue, moment_with(NOW + 600.0, &streams));
    assert_eq!(kinds(&actions), ["notify", "notice-timer"]);
    // A grant created by mod_tokenauth is announced the same way, to every bound stream.
    driver.handle("u", Event::NoticesDue, moment_with(NOW + 1200.0, &streams));
    let grant = Event::GrantCreated(Announcement { software: Some("App".into()), device: None, at: T + 1300 });
    let actions = driver.handle("u", grant, moment_with(NOW + 1300.0, &streams));
    assert!(matches!(&actions[..], [Action::Notify { streams, .. }, Action::NoticeTimer { .. }] if streams == &[1, 2]), "{actions:?}");
}

#[test]
fn credentials_events_make_cached_credentials_stale() {
    let mut driver = Driver::new(policy());
    driver.handle("u", Event::Credentials(CacheEvent::GrantsChanged), moment());
    assert_eq!(driver.in_memory(), 0, "an account not in memory is not made so");
    driver.handle("u", login("phone"), moment());
    driver.handle("u", records(Vec::new()), moment());
    let account = driver.cached("u").unwrap();
    account.load_grants(Vec::new(), NOW);
    assert!(account.missing(Purpose::Listing, NOW).contains(&Part::FastTokens));
    assert!(!account.missing(Purpose::Listing, NOW).contains(&Part::Grants));
    driver.handle("u", Event::Credentials(CacheEvent::GrantsChanged), moment());
    assert!(driver.cached("u").unwrap().missing(Purpose::Listing, NOW).contains(&Part::Grants));
}

fn everything(records_list: Vec<ClientRecord>) -> Event {
    Event::Read(vec![
        ReadResult::Read { data: Stored::Records(records_list), skipped: 0 },
        ReadResult::Read { data: Stored::Grants(Vec::new()), skipped: 0 },
        ReadResult::Read { data: Stored::FastTokens(HashMap::new()), skipped: 0 },
    ])
}

fn revoke(selector: &str) -> Event {
    Event::Revoke { selector: selector.into() }
}

#[test]
fn a_revocation_reads_afresh_plans_is_carried_out_and_answers_with_the_error_that_wins() {
    let mut driver = Driver::new(policy());
    let fast_client = ClientRecord { id: "app".into(), last_seen: Some(T), fast_auth: Some(T), full_jid: Some("u@h/app".into()), ..Default::default() };
    // Credentials unreadable: refused before anything is planned.
    assert_eq!(kinds(&driver.handle("u", revoke("client/app"), moment())), ["read"]);
    let no_grants = Event::Read(vec![
        ReadResult::Read { data: Stored::Records(vec![record("pw"), fast_client.clone()]), skipped: 0 },
        ReadResult::Failed { part: Part::Grants, error: "x".into() },
        ReadResult::Read { data: Stored::FastTokens(HashMap::new()), skipped: 0 },
    ]);
    let actions = driver.handle("u", no_grants, moment());
    assert_eq!(actions.last(), Some(&Action::Answer { error: Some("internal-server-error") }));
    assert!(!actions.iter().any(|a| matches!(a, Action::CarryOut(_))));

    // A change reads the credentials afresh every time (the records stay).
    let streams = [("s-app", Some("u@h/app"))];
    assert_eq!(driver.handle("u", revoke("client/app"), moment_with(NOW, &streams)), [Action::Read(vec![Part::Grants, Part::FastTokens])]);
    let credentials = Event::Read(vec![
        ReadResult::Read { data: Stored::Grants(Vec::new()), skipped: 0 },
        ReadResult::Read { data: Stored::FastTokens(HashMap::new()), skipped: 0 },
    ]);
    let actions = driver.handle("u", credentials, moment_with(NOW, &streams));
    let [Action::CarryOut(plan)] = &actions[..] else { panic!("{actions:?}") };
    assert!(!plan.actions.is_empty(), "its stream is closed: {plan:?}");
    assert_eq!(driver.handle("u", Event::CarriedOut { complete: true }, moment()), [Action::Answer { error: None }]);
    // What was revoked is stale: a listing reads the credentials again.
    assert!(driver.cached("u").unwrap().missing(Purpose::Listing, NOW).contains(&Part::FastTokens));

    // Nothing to revoke, a password client: the plan's error, nothing carried out but the
    // (empty) plan.
    for (selector, error) in [("client/nope", "item-not-found"), ("client/pw", "password-reset-required")] {
        driver.handle("u", revoke(selector), moment());
        let actions = driver.handle("u", everything(Vec::new()), moment());
        let [Action::CarryOut(plan)] = &actions[..] else { panic!("{actions:?}") };
        assert!(plan.actions.is_empty());
        assert_eq!(driver.handle("u", Event::CarriedOut { complete: true }, moment()), [Action::Answer { error: Some(error) }]);
    }
    // A step failed: internal-server-error wins over the plan's own error.
    driver.handle("u", revoke("client/pw"), moment());
    driver.handle("u", everything(Vec::new()), moment());
    assert_eq!(driver.handle("u", Event::CarriedOut { complete: false }, moment()), [Action::Answer { error: Some("internal-server-error") }]);
}

#[test]
fn a_list_reads_every_part_once_and_answers_with_its_clients_or_refuses() {
    let mut driver = Driver::new(policy());
    let list = || Event::List { protocol: Protocol::Cam, as_xml: false };
    // Nothing in memory: every part is read, in one round, then the listing.
    assert_eq!(kinds(&driver.handle("u", list(), moment())), ["read"]);
    let actions = driver.handle("u", everything(vec![record("pw")]), moment());
    let [Action::Listing(clients)] = &actions[..] else { panic!("{actions:?}") };
    assert_eq!(clients.name, "clients");
    assert_eq!(clients.children.len(), 1, "the one password client: {clients:?}");
    // In memory and fresh: answered at once, nothing read.
    assert_eq!(kinds(&driver.handle("u", list(), moment())), ["listing"]);

    // A part that cannot be read: nothing is listed (a list without the grants would hide
    // clients), and the answer says why.
    let mut driver = Driver::new(policy());
    driver.handle("u", list(), moment());
    let no_grants = Event::Read(vec![
        ReadResult::Read { data: Stored::Records(vec![record("pw")]), skipped: 0 },
        ReadResult::Failed { part: Part::Grants, error: "x".into() },
        ReadResult::Read { data: Stored::FastTokens(HashMap::new()), skipped: 0 },
    ]);
    let actions = driver.handle("u", no_grants, moment());
    assert_eq!(kinds(&actions), ["log", "answer"]);
    assert_eq!(actions.last(), Some(&Action::Answer { error: Some("list-failed") }));
}


fn ask(question: Question) -> Event {
    Event::Ask(question)
}

fn reply_of(actions: &[Action]) -> Option<&Reply> {
    actions.iter().find_map(|a| if let Action::Reply(reply) = a { Some(reply) } else { None })
}

fn no_grants(records_list: Vec<ClientRecord>) -> Event {
    Event::Read(vec![
        ReadResult::Read { data: Stored::Records(records_list), skipped: 0 },
        ReadResult::Failed { part: Part::Grants, error: "x".into() },
        ReadResult::Read { data: Stored::FastTokens(HashMap::new()), skipped: 0 },
    ])
}

fn web_view() -> Box<WebView> {
    Box::new(WebView {
        policy: crate::web::WebPolicy::default(),
        account: "u@h".into(),
        csrf: "t".into(),
        grant: Some("g-web".into()),
        notice: None,
    })
}

#[test]
fn a_question_reads_what_it_needs_once_and_is_answered_in_the_same_request() {
    let mut driver = Driver::new(policy());
    // Nothing in memory: every part in one read, then the reply.
    assert_eq!(driver.handle("u", ask(Question::ClientLines { width: 80 }), moment()), [Action::Read(vec![Part::Records, Part::Grants, Part::FastTokens])]);
    let actions = driver.handle("u", everything(vec![record("pw")]), moment());
    let Some(Reply::Lines { lines, count }) = reply_of(&actions) else { panic!("{actions:?}") };
    assert_eq!(*count, 1);
    assert!(lines.iter().any(|line| line.contains("client/pw")), "{lines:?}");
    // In memory and fresh: answered at once.
    let actions = driver.handle("u", ask(Question::ActiveClients), moment());
    let [Action::Reply(Reply::Clients(entries))] = &actions[..] else { panic!("{actions:?}") };
    assert_eq!(entries.iter().map(|e| e.listed_id.as_str()).collect::<Vec<_>>(), ["client/pw"]);
    assert_eq!(entries[0].record.as_ref().map(|r| r.id.as_str()), Some("pw"));
    let actions = driver.handle("u", ask(Question::ManageForm), moment());
    let [Action::Reply(Reply::Form(form))] = &actions[..] else { panic!("{actions:?}") };
    assert_eq!(form.fields[1].options.as_ref().map(Vec::len), Some(1));
    // A change reads the credentials afresh.
    let sign_out = || ask(Question::SignOutOthers { requester: None, confirmed: false });
    assert_eq!(driver.handle("u", sign_out(), moment()), [Action::Read(vec![Part::Grants, Part::FastTokens])]);
}

#[test]
fn a_read_failure_refuses_an_ad_hoc_shell_or_web_request_in_its_own_words() {
    let refused = |question: Question| {
        let mut driver = Driver::new(policy());
        assert_eq!(kinds(&driver.handle("u", ask(question), moment())), ["read"]);
        driver.handle("u", no_grants(vec![record("pw")]), moment())
    };
    // Ad-hoc: the command's note.
    for question in [Question::ManageForm, Question::RevokeListed(vec!["client/pw".into()]), Question::SignOutOthers { requester: None, confirmed: true }] {
        let actions = refused(question);
        assert_eq!(kinds(&actions), ["log", "reply"]);
        let Some(Reply::Note(note)) = reply_of(&actions) else { panic!("{actions:?}") };
        assert_eq!((note.level, note.text.as_str()), (crate::forms::UNREADABLE.level, crate::forms::UNREADABLE.text));
    }
    // The shell, the public API, the walks: refused by name.
    for question in [Question::ClientLines { width: 80 }, Question::ActiveClients, Question::SoftwareStats, Question::Prune { dry_run: false }, Question::HostRevoke { selector: "software/X".into() }] {
        let actions = refused(question.clone());
        assert_eq!(actions.last(), Some(&Action::Answer { error: Some("unreadable") }), "{question:?}");
        assert!(!actions.iter().any(|a| matches!(a, Action::CarryOut(_) | Action::Write { .. })), "{question:?}");
    }
    // The web: the page's refusal, the API's error, a sign-out back to the page.
    let web = |request| Question::Web { request, view: web_view() };
    let status = |actions: Vec<Action>| match reply_of(&actions) {
        Some(Reply::Web(response)) => response.status,
        other => panic!("{other:?}"),
    };
    assert_eq!(status(refused(web(WebRequest::Page))), 503);
    assert_eq!(status(refused(web(WebRequest::ApiClients))), 503);
    assert_eq!(status(refused(web(WebRequest::ApiSignOut))), 503);
    assert_eq!(status(refused(web(WebRequest::SignOut))), 303);
}

#[test]
fn a_plan_of_an_ad_hoc_command_is_carried_out_then_reported() {
    let mut driver = Driver::new(policy());
    let fast_client = ClientRecord { id: "app".into(), last_seen: Some(T), fast_auth: Some(T), full_jid: Some("u@h/app".into()), ..Default::default() };
    let streams = [("s-app", Some("u@h/app")), ("s-me", Some("u@h/me"))];
    driver.handle("u", ask(Question::RevokeListed(vec!["client/app".into()])), moment_with(NOW, &streams));
    let actions = driver.handle("u", everything(vec![record("pw"), fast_client]), moment_with(NOW, &streams));
    let [Action::CarryOut(plan)] = &actions[..] else { panic!("{actions:?}") };
    assert!(plan.actions.contains(&crate::revocation::Action::CloseSession { session: 1 }), "{plan:?}");
    let actions = driver.handle("u", Event::CarriedOut { complete: true }, moment());
    let [Action::Reply(Reply::Note(done))] = &actions[..] else { panic!("{actions:?}") };
    assert_eq!(done.level, "info");
    // What was revoked is stale: the next change reads the credentials again. Signing out the
    // others spares the requester's stream; a failed step says so.
    let sign_out = ask(Question::SignOutOthers { requester: Some("s-me".into()), confirmed: true });
    driver.handle("u", sign_out, moment_with(NOW, &streams));
    let credentials = Event::Read(vec![
        ReadResult::Read { data: Stored::Grants(Vec::new()), skipped: 0 },
        ReadResult::Read { data: Stored::FastTokens(HashMap::new()), skipped: 0 },
    ]);
    let actions = driver.handle("u", credentials, moment_with(NOW, &streams));
    let [Action::CarryOut(plan)] = &actions[..] else { panic!("{actions:?}") };
    assert!(!plan.actions.contains(&crate::revocation::Action::CloseSession { session: 2 }), "{plan:?}");
    assert!(plan.actions.contains(&crate::revocation::Action::CloseSession { session: 1 }), "{plan:?}");
    let actions = driver.handle("u", Event::CarriedOut { complete: false }, moment());
    let [Action::Reply(Reply::Note(failed))] = &actions[..] else { panic!("{actions:?}") };
    assert_ne!(failed, done);
}

#[test]
fn a_web_sign_out_spares_the_requesters_grant_and_answers_once_carried_out() {
    let mut driver = Driver::new(policy());
    let streams = [("s-pw", Some("u@h/pw"))];
    let sign_out = ask(Question::Web { request: WebRequest::ApiSignOut, view: web_view() });
    driver.handle("u", sign_out, moment_with(NOW, &streams));
    let grants = vec![
        Grant { id: "g-web".into(), created: Some(NOW - 10.0), accessed: Some(NOW), expires: Some(NOW + 3600.0), ..Default::default() },
        Grant { id: "g-app".into(), created: Some(NOW - 10.0), accessed: Some(NOW), expires: Some(NOW + 3600.0), ..Default::default() },
    ];
    let read = Event::Read(vec![
        ReadResult::Read { data: Stored::Records(vec![record("pw")]), skipped: 0 },
        ReadResult::Read { data: Stored::Grants(grants), skipped: 0 },
        ReadResult::Read { data: Stored::FastTokens(HashMap::new()), skipped: 0 },
    ]);
    let actions = driver.handle("u", read, moment_with(NOW, &streams));
    let [Action::CarryOut(plan)] = &actions[..] else { panic!("{actions:?}") };
    let revoked: Vec<_> = plan.actions.iter().filter_map(|a| if let crate::revocation::Action::RevokeGrant { grant_id } = a { Some(grant_id.as_str()) } else { None }).collect();
    assert_eq!(revoked, ["g-app"], "{plan:?}");
    let actions = driver.handle("u", Event::CarriedOut { complete: true }, moment());
    let [Action::Reply(Reply::Web(response))] = &actions[..] else { panic!("{actions:?}") };
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "{\"revoked\":1,\"password_reset_required\":1,\"closed_connections\":1}");
}

#[test]
fn a_walk_keeps_no_account_that_was_not_in_memory_and_drops_none_that_was() {
    let mut driver = Driver::new(Policy { cache_size: 1, ..policy() });
    // "kept" is in memory (the cache holds one account).
    driver.handle("kept", ask(Question::ActiveClients), moment());
    driver.handle("kept", everything(Vec::new()), moment());
    assert_eq!(driver.in_memory(), 1);
    for name in ["a", "b"] {
        assert_eq!(kinds(&driver.handle(name, ask(Question::SoftwareStats), moment())), ["read"]);
        assert_eq!(driver.in_memory(), 2, "held while its read is out");
        let actions = driver.handle(name, everything(vec![record("pw")]), moment());
        let Some(Reply::Stats(stats)) = reply_of(&actions) else { panic!("{actions:?}") };
        assert_eq!((stats.accounts, stats.clients), (1, 1));
        assert_eq!(driver.in_memory(), 1, "{name} is not kept");
        assert!(driver.cached("kept").is_some(), "a walk makes no room");
    }
    // A walk of an account in memory uses it as it is: nothing read, nothing dropped.
    assert_eq!(kinds(&driver.handle("kept", ask(Question::SoftwareStats), moment())), ["reply"]);
    assert!(driver.cached("kept").is_some());
    // A host-wide revocation holds the account until its plan is carried out.
    driver.handle("c", ask(Question::HostRevoke { selector: "software/X".into() }), moment());
    let actions = driver.handle("c", everything(vec![record("pw")]), moment());
    assert_eq!(kinds(&actions), ["carry-out"]);
    assert!(driver.cached("c").is_some());
    assert_eq!(driver.handle("c", Event::CarriedOut { complete: true }, moment()), [Action::Answer { error: Some("item-not-found") }]);
    assert!(driver.cached("c").is_none());
}

#[test]
fn a_walk_of_an_account_with_changes_not_stored_loses_none_of_them() {
    let mut driver = Driver::new(policy());
    driver.handle("u", login("phone"), moment());
    let (serial, ..) = write_of(&driver.handle("u", records(Vec::new()), moment())).unwrap();
    driver.handle("u", written(serial), moment());
    driver.handle("u", Event::Login { stream: "s-2".into(), login: Box::new(Login { at: T + 5, ..login_of("phone") }) }, moment());
    assert_eq!(driver.pending(), ["u"]);
    // A dry-run prune and the statistics walk over it: the change still waits, then is stored.
    driver.handle("u", ask(Question::Prune { dry_run: true }), moment());
    let actions = driver.handle("u", everything(Vec::new()), moment());
    assert_eq!(reply_of(&actions), Some(&Reply::Pruned(PruneOutcome::default())));
    assert!(write_of(&actions).is_none(), "a dry run stores nothing");
    driver.handle("u", ask(Question::SoftwareStats), moment());
    assert_eq!(driver.pending(), ["u"]);
    let (_, changed, _) = write_of(&driver.handle("u", Event::Tick, moment_with(NOW + 10.0, &[]))).expect("stored");
    assert_eq!(changed, ["phone"]);
}

#[test]
fn a_prune_stores_what_it_changed_and_a_walk_keeps_the_account_until_it_is_stored() {
    let mut driver = Driver::new(Policy { retention: Some(100), ..policy() });
    let old = ClientRecord { id: "old".into(), last_seen: Some(T - 10_000), ..Default::default() };
    driver.handle("u", ask(Question::Prune { dry_run: false }), moment());
    let actions = driver.handle("u", everything(vec![old.clone(), record("pw")]), moment());
    let Some(Reply::Pruned(outcome)) = reply_of(&actions) else { panic!("{actions:?}") };
    assert_eq!(outcome.deleted, ["old"]);
    let (serial, _, removed) = write_of(&actions).expect("stored at once");
    assert_eq!(removed, ["old"]);
    assert!(driver.cached("u").is_some(), "held while its write is out");
    // The write fails: the account is kept, and the change is stored later.
    let actions = driver.handle("u", write_failed(serial), moment());
    assert_eq!(kinds(&actions), ["log", "timer"]);
    assert_eq!(driver.pending(), ["u"]);
    let (serial, _, removed) = write_of(&driver.handle("u", Event::Tick, moment())).expect("tried again");
    assert_eq!(removed, ["old"]);
    driver.handle("u", written(serial), moment());
    assert!(driver.pending().is_empty());
    // Stored at once: the account of a walk goes once its write is answered.
    let mut driver = Driver::new(Policy { retention: Some(100), ..policy() });
    driver.handle("v", ask(Question::Prune { dry_run: false }), moment());
    let (serial, ..) = write_of(&driver.handle("v", everything(vec![old]), moment())).unwrap();
    assert_eq!(driver.handle("v", written(serial), moment()), []);
    assert_eq!(driver.in_memory(), 0);
}

/// The serialised listing of a list event answered at once, or `None` when it read first.
fn listed(driver: &mut Driver, protocol: Protocol, moment: Moment) -> Option<Rc<ListingBody>> {
    match &driver.handle("u", Event::List { protocol, as_xml: true }, moment)[..] {
        [Action::ListingXml(body)] => Some(body.clone()),
        _ => None,
    }
}

#[test]
fn a_listing_is_answered_from_the_cache_until_an_input_changes() {
    let mut driver = Driver::new(Policy { grant_cache_ttl: 1000.0, ..policy() });
    driver.handle("u", Event::List { protocol: Protocol::Cam, as_xml: true }, moment());
    let fast_key = format!("{}-cur", crate::ids::fast_token_key_prefix("pw"));
    let tokens = HashMap::from([(fast_key, FastToken { issued_at: NOW, expires_at: NOW + 100.0 })]);
    let actions = driver.handle(
        "u",
        Event::Read(vec![
            ReadResult::Read { data: Stored::Records(vec![record("pw"), record("other")]), skipped: 0 },
            ReadResult::Read { data: Stored::Grants(Vec::new()), skipped: 0 },
            ReadResult::Read { data: Stored::FastTokens(tokens), skipped: 0 },
        ]),
        moment(),
    );
    let [Action::ListingXml(first)] = &actions[..] else { panic!("{actions:?}") };
    let fresh = |driver: &mut Driver, protocol, moment: Moment| render_listing(driver.cached("u").expect("in memory").facts_at(moment), protocol).to_xml();
    assert_eq!(first.xml().as_deref(), Some(fresh(&mut driver, Protocol::Cam, moment()).as_str()));

    // Same inputs: the same body, not rendered again; the other namespace has its own.
    let same = listed(&mut driver, Protocol::Cam, moment()).unwrap();
    assert!(Rc::ptr_eq(first, &same));
    let prosody = listed(&mut driver, Protocol::Prosody, moment()).unwrap();
    assert!(!Rc::ptr_eq(first, &prosody) && Rc::ptr_eq(&prosody, &listed(&mut driver, Protocol::Prosody, moment()).unwrap()));
    assert!(Rc::ptr_eq(first, &listed(&mut driver, Protocol::Cam, moment_with(NOW + 99.0, &[])).unwrap()), "nothing expired yet");

    // Each input, changed alone, is a new render.
    let changed = |driver: &mut Driver, moment: Moment| {
        let body = listed(driver, Protocol::Cam, moment.clone()).expect("answered at once");
        assert_eq!(body.xml().as_deref(), Some(fresh(driver, Protocol::Cam, moment.clone()).as_str()));
        assert!(!Rc::ptr_eq(&same, &body), "{moment:?}");
        body
    };
    let online = moment_with(NOW, &[("s-pw", Some("u@h/pw"))]);
    let connected = changed(&mut driver, online.clone());
    assert!(connected.xml().unwrap().contains("connected='true'"));
    changed(&mut driver, moment_with(NOW, &[("s-pw", None)])); // authenticated, not bound
    changed(&mut driver, Moment { password_updated: Some(T), ..moment() });
    changed(&mut driver, Moment { account_role_priority: Some(35), ..moment() });
    // The FAST token expired: the client it let in has no way in now.
    let later = changed(&mut driver, moment_with(NOW + 100.5, &[]));
    assert!(same.xml().unwrap().contains("<fast/>") && !later.xml().unwrap().contains("<fast/>"));
    // Before the instant it was made the cached body is not used (a clock stepped back).
    assert!(!Rc::ptr_eq(&later, &listed(&mut driver, Protocol::Cam, moment_with(NOW + 100.4, &[])).unwrap()));

    // A change of the account's state: a login (the FAST tokens are read again).
    let before = listed(&mut driver, Protocol::Cam, moment()).unwrap();
    assert!(Rc::ptr_eq(&before, &listed(&mut driver, Protocol::Cam, moment()).unwrap()));
    driver.handle("u", login("phone"), moment());
    assert_eq!(kinds(&driver.handle("u", Event::List { protocol: Protocol::Cam, as_xml: true }, moment())), ["read"]);
    let actions = driver.handle("u", Event::Read(vec![ReadResult::Read { data: Stored::FastTokens(HashMap::new()), skipped: 0 }]), moment());
    let [.., Action::ListingXml(after_login)] = &actions[..] else { panic!("{actions:?}") };
    assert!(after_login.xml().unwrap().contains("client/phone"));
    // mod_tokenauth's event: the grants are read again, a new body.
    driver.handle("u", Event::Credentials(CacheEvent::GrantsChanged), moment());
    assert_eq!(kinds(&driver.handle("u", Event::List { protocol: Protocol::Cam, as_xml: true }, moment())), ["read"]);
    let actions = driver.handle("u", Event::Read(vec![ReadResult::Read { data: Stored::Grants(Vec::new()), skipped: 0 }]), moment());
    let [Action::ListingXml(after_grants)] = &actions[..] else { panic!("{actions:?}") };
    assert!(!Rc::ptr_eq(after_login, after_grants));

    // Deleted: the slot and its cached bodies are gone.
    driver.handle("u", Event::AccountDeleted, moment());
    assert_eq!(driver.in_memory(), 0);
}

#[test]
fn a_listing_depends_on_the_clock_only_through_expiries() {
    use crate::listing::listing_valid_until;
    use crate::model::{AccountFacts, Grant, GrantToken};
    let grant = |expires: Option<f64>, token: Option<f64>, accessed: Option<f64>| Grant {
        id: "g".into(),
        created: Some(NOW - 10.0),
        accessed,
        expires,
        tokens: vec![GrantToken { expires: token, role_priority: None }],
        ..Default::default()
    };
    let facts = |grants: Vec<Grant>, fast: Option<f64>| AccountFacts {
        grants,
        fast_tokens: fast.map(|at| HashMap::from([("k-cur".to_owned(), FastToken { issued_at: 0.0, expires_at: at })])).unwrap_or_default(),
        moment: Moment { now: NOW + 0.25, ..Default::default() },
        policy: Policy { tokenless_grant_ttl: Some(50), ..Policy::default() },
        ..Default::default()
    };
    assert_eq!(listing_valid_until(&facts(vec![], None)), f64::INFINITY);
    // mod_tokenauth compares with os.time(): an expiry at x.5 counts from the next second.
    assert_eq!(listing_valid_until(&facts(vec![grant(Some(NOW + 7.5), None, None)], None)), NOW + 8.0);
    assert_eq!(listing_valid_until(&facts(vec![grant(None, Some(NOW + 3.0), None)], None)), NOW + 3.0);
    assert_eq!(listing_valid_until(&facts(vec![grant(None, None, Some(NOW - 20.0))], None)), NOW + 30.0);
    // FAST tokens are compared with the clock itself; past expiries change nothing more.
    assert_eq!(listing_valid_until(&facts(vec![grant(Some(NOW - 5.0), Some(NOW + 9.0), None)], Some(NOW + 2.5))), NOW + 2.5);
    assert_eq!(listing_valid_until(&facts(vec![], Some(NOW - 1.0))), f64::INFINITY);
}
