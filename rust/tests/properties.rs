//! Properties of the core over generated accounts and event sequences (proptest: it runs on
//! stable Rust and shrinks a failing case). Generators draw from a sequence of choices that
//! proptest makes and shrinks (the way Hypothesis does): fewer and smaller choices are smaller
//! accounts, and a choice of 0 is always the plain option (no item, no optional field).

use std::collections::{HashMap, HashSet};

use client_management::ids::fast_token_key_prefix;
use client_management::access::{session_is_of, AccessContext};
use client_management::account::{Account, Login, Moment, Part, Policy};
use client_management::driver::{Action as Do, Driver, Event, Question, ReadResult, Stored};
use client_management::listing::{list_entries, EntryKind, Source};
use client_management::model::{AccountFacts, ClientRecord, FastToken, Grant, GrantToken, SessionFact, UserAgent};
use client_management::render::{render_clients, Protocol};
use client_management::revocation::{plan_revocation, Action, Outcome};
use proptest::prelude::*;
use xmpp_parsers::cam::Clients;
use xmpp_parsers::minidom::Element;

/// The choices of one case; past their end every choice is 0.
struct Rng {
    choices: Vec<u64>,
    at: usize,
}

impl Rng {
    fn new(choices: Vec<u64>) -> Self {
        Rng { choices, at: 0 }
    }
    fn next(&mut self) -> u64 {
        let choice = self.choices.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        choice
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True `percent` times in a hundred; false for the choice 0.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) >= 100 - percent
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    fn time(&mut self) -> Option<i64> {
        self.chance(85).then(|| 1_000 + self.below(50) as i64)
    }
    /// A grant or token time as stored: usually whole seconds, sometimes not.
    fn stored_time(&mut self) -> f64 {
        let seconds = 1_000.0 + self.below(60) as f64;
        if self.chance(20) { seconds + 0.5 } else { seconds }
    }
}

fn choices(most: usize) -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(any::<u64>(), 0..most)
}

const MECHANISMS: &[&str] = &["SCRAM-SHA-1", "PLAIN", "OAUTHBEARER", "HT-SHA-256-NONE", "HT-SHA-256-EXPR"];
const SOFTWARE: &[&str] = &["Chat", "Chat/Pro", "App", "Ünïcode <&>", "Ctl\u{1}"];

fn account(rng: &mut Rng) -> AccountFacts {
    let mut facts = AccountFacts {
        moment: Moment {
            now: 1_030.0,
            password_updated: rng.chance(70).then(|| 1_000 + rng.below(40) as i64),
            account_role_priority: rng.chance(80).then_some(25),
            ..Default::default()
        },
        policy: Policy { tokenless_grant_ttl: rng.chance(50).then_some(20), ..Default::default() },
        ..Default::default()
    };
    for i in 0..rng.below(6) {
        let id = format!("g{i}");
        let tokens = (0..rng.below(3))
            .map(|_| GrantToken {
                expires: rng.chance(50).then(|| rng.stored_time()),
                role_priority: rng.chance(50).then(|| [15, 25, 35][rng.below(3) as usize]),
            })
            .collect();
        facts.grants.push(Grant {
            id,
            created: rng.time().map(|t| t as f64),
            accessed: rng.time().map(|t| t as f64),
            expires: rng.chance(30).then(|| rng.stored_time()),
            tokens,
            tokens_missing: rng.chance(5),
            id_missing: rng.chance(5),
            user_agent: UserAgent {
                software: rng.chance(70).then(|| rng.pick(SOFTWARE).to_owned()),
                software_version: rng.chance(50).then(|| rng.pick(&["1", "2"]).to_owned()),
                ..Default::default()
            },
        });
    }
    for i in 0..rng.below(12) {
        // Ids that collide in prefixes and contain slashes.
        let id = format!("{}{}", rng.pick(&["c", "c/", "client/", "x"]), i);
        let mechanisms = (0..rng.below(3)).map(|_| (rng.pick(MECHANISMS).to_owned(), 990 + rng.below(50) as i64)).collect();
        let full_jid = rng.chance(80).then(|| format!("u@h/r{}", rng.below(8)));
        if rng.chance(30) {
            facts.fast_tokens.insert(
                format!("{}{}", fast_token_key_prefix(&id), rng.pick(&["-cur", "-new", "-old"])),
                FastToken { issued_at: 990.0 + rng.below(50) as f64, expires_at: 1_000.0 + rng.below(60) as f64 },
            );
        }
        if rng.chance(40) {
            // Bound (with the record's JID or another), or authenticated and not bound yet.
            let session_jid = match rng.below(3) {
                0 => full_jid.clone(),
                1 => Some(format!("u@h/r{}", rng.below(8))),
                _ => None,
            };
            facts.moment.sessions.push(SessionFact {
                index: facts.moment.sessions.len() + 1,
                full_jid: session_jid,
                client_id: rng.chance(60).then(|| id.clone()),
                grant_id: rng.chance(30).then(|| format!("g{}", rng.below(6))),
            });
        }
        facts.records.push(ClientRecord {
            id,
            first_seen: rng.time(),
            last_seen: rng.time(),
            full_jid,
            mechanisms,
            fast_auth: rng.time(),
            auth_token_id: rng.chance(40).then(|| format!("g{}", rng.below(7))),
            user_agent: UserAgent {
                software: rng.chance(70).then(|| rng.pick(SOFTWARE).to_owned()),
                software_version: rng.chance(50).then(|| rng.pick(&["1", "2"]).to_owned()),
                device: rng.chance(30).then(|| "Phone".to_owned()),
                ..Default::default()
            },
            legacy: rng.chance(20),
        });
    }
    facts
}

proptest! {
#![proptest_config(ProptestConfig::with_cases(3000))]
#[test]
fn listing_revocation_and_rendering_keep_their_invariants(choices in choices(400)) {
    let mut rng = Rng::new(choices);
    {
        let facts = account(&mut rng);
        let entries = list_entries(&facts);

        // Every entry has some access, ids are unique, grants used by a listed session are not
        // listed again, and the order is total and sorted.
        let mut seen = HashSet::new();
        for entry in &entries {
            assert!(entry.access.any(), "listed without access");
            assert!(seen.insert(entry.listed_id()), "duplicate {}", entry.listed_id());
        }
        let used: HashSet<usize> = entries.iter().filter(|e| e.kind == EntryKind::Client).filter_map(|e| e.access.grant).collect();
        for entry in entries.iter().filter(|e| e.kind == EntryKind::Grant) {
            assert!(!used.contains(&entry.access.grant.unwrap()), "grant listed twice");
        }
        for pair in entries.windows(2) {
            assert_ne!(client_management::listing::compare_entries(&pair[0], &pair[1]), std::cmp::Ordering::Greater);
        }

        // Storage order does not matter.
        let mut shuffled = facts.clone();
        shuffled.records.reverse();
        shuffled.grants.reverse();
        let again: Vec<String> = list_entries(&shuffled).iter().map(|e| e.listed_id()).collect();
        let first: Vec<String> = entries.iter().map(|e| e.listed_id()).collect();
        assert_eq!(first, again, "order depends on storage order");

        // Decide first, then act: a client with password access is never touched, and an
        // error other than password-reset-required means nothing to do.
        for entry in &entries {
            let plan = plan_revocation(&facts, &entry.listed_id(), true);
            if entry.kind == EntryKind::Client && entry.access.password.is_some() {
                assert_eq!(plan.outcome, Outcome::PasswordResetRequired);
                assert!(plan.actions.is_empty(), "acted on a password client");
            } else {
                assert_eq!(plan.outcome, Outcome::Revoked, "{}", entry.listed_id());
                let first_close = plan.actions.iter().position(|a| matches!(a, Action::CloseSession { .. }));
                let last_revoke = plan.actions.iter().rposition(|a| !matches!(a, Action::CloseSession { .. }));
                if let (Some(close), Some(revoke)) = (first_close, last_revoke) {
                    assert!(revoke < close, "a session closed before its credentials went");
                }
                // Every stream of the revoked client goes, bound or not.
                let closed: HashSet<usize> = plan
                    .actions
                    .iter()
                    .filter_map(|a| match a {
                        Action::CloseSession { session } => Some(*session),
                        _ => None,
                    })
                    .collect();
                let streams: Vec<usize> = match entry.source {
                    Source::Record(index) => facts.moment.sessions.iter().filter(|s| session_is_of(s, &facts.records[index])).map(|s| s.index).collect(),
                    Source::Grant(index) => facts.moment.sessions.iter().filter(|s| s.grant_id.as_deref() == Some(facts.grants[index].id.as_str())).map(|s| s.index).collect(),
                };
                for stream in streams {
                    assert!(closed.contains(&stream), "{} left stream {stream} open", entry.listed_id());
                }
            }
        }
        for selector in ["client/", "client/nope", "bogus/x", "grant/nope", "software/Nobody"] {
            let plan = plan_revocation(&facts, selector, true);
            assert_eq!(plan.outcome, Outcome::NotFound);
            assert!(plan.actions.is_empty());
        }

        // The XEP-0494 rendering always parses pedantically.
        let xml = render_clients(&entries, Protocol::Cam).to_xml();
        let element: Element = xml.parse().unwrap_or_else(|e| panic!("{e}\n{xml}"));
        let clients = Clients::try_from(element).unwrap_or_else(|e| panic!("{e:?}\n{xml}"));
        assert_eq!(clients.clients.len(), entries.len());
        let _: Element = render_clients(&entries, Protocol::Prosody).to_xml().parse().unwrap();
    }
}

}

proptest! {
#![proptest_config(ProptestConfig::with_cases(500))]
/// Random logins into accounts with a small limit: the limit holds unless only credential
/// holders and streams are left, those are never dropped, and everything changed is queued.
#[test]
fn accounts_keep_their_limits_and_never_drop_credentials(choices in choices(600)) {
    let mut rng = Rng::new(choices);
    {
        let mut facts = account(&mut rng);
        let max_clients = 1 + rng.below(5) as usize;
        let policy = Policy { max_clients, tokenless_grant_ttl: facts.policy.tokenless_grant_ttl, ..Policy::default() };
        let moment = facts.moment.clone();
        let mut account = Account::new(policy);
        account.load_records(std::mem::take(&mut facts.records));
        account.load_grants(facts.grants.clone(), facts.moment.now);
        account.load_fast_tokens(facts.fast_tokens.clone());
        for step in 0..rng.below(12) {
            let before: Vec<_> = account.records().to_vec();
            let login = Login {
                client_id: rng.chance(60).then(|| format!("{}{}", rng.pick(&["c", "n"]), rng.below(15))),
                full_jid: Some(format!("u@h/r{}", rng.below(10))),
                mechanism: Some(rng.pick(MECHANISMS).to_owned()),
                grant_id: rng.chance(20).then(|| format!("g{}", rng.below(6))),
                at: 1_020 + step as i64,
                ..Login::default()
            };
            let claimed = login.client_id.clone();
            let outcome = account.record_login(login, moment.clone()).unwrap();
            let view = with_records(&facts, &before);
            let ctx = AccessContext::new(&view);
            for id in &outcome.evicted {
                // A legacy record whose id a SASL2 login named lives on under a fresh id (and
                // so holds nothing filed under the old one).
                let record = before.iter().find(|r| &r.id == id).cloned().unwrap_or_else(|| {
                    let moved = before.iter().find(|r| r.legacy && Some(&r.id) == claimed.as_ref()).unwrap();
                    ClientRecord { id: id.clone(), ..moved.clone() }
                });
                let access = ctx.access_of(&record);
                assert!(!access.fast && access.grant.is_none() && !access.connected, "dropped {id} holding access {access:?}");
                assert_ne!(id, &outcome.client_id);
            }
            let count = account.records().len();
            if outcome.is_new && count > max_clients {
                // A new record pushes the account over the limit only when nothing else could go.
                let view = with_records(&facts, account.records());
                let ctx = AccessContext::new(&view);
                let droppable = account
                    .records()
                    .iter()
                    .filter(|r| r.id != outcome.client_id)
                    .filter(|r| {
                        let a = ctx.access_of(r);
                        !a.fast && a.grant.is_none() && !a.connected
                    })
                    .count();
                assert_eq!(droppable, 0, "{count} records over {max_clients} with {droppable} droppable");
            }
            let batch = account.take_writes().unwrap();
            assert!(batch.changed.contains(&outcome.client_id), "the login's record is queued");
            for id in &outcome.evicted {
                assert!(batch.removed.contains(id), "eviction of {id} not queued");
            }
        }
    }
}

}

/// The facts with other records.
fn with_records(facts: &AccountFacts, records: &[ClientRecord]) -> AccountFacts {
    AccountFacts { records: records.to_vec(), ..facts.clone() }
}

/// An account's stored parts as the simulations keep them.
#[derive(Default)]
struct StoredAccount {
    records: HashMap<String, ClientRecord>,
    grants: Vec<Grant>,
    fast_tokens: HashMap<String, FastToken>,
}

/// Hands `event` to the driver and carries out its actions the way the Lua module does:
/// reads from `stored` and writes into it (every read and write failing when `failing`), a
/// revocation's plan carried out completely; returns every action.
fn carry_out(driver: &mut Driver, user: &str, event: Event, moment: &Moment, failing: bool, stored: &mut StoredAccount) -> Vec<Do> {
    let mut seen = Vec::new();
    let mut actions = driver.handle(user, event, moment.clone());
    loop {
        assert!(actions.iter().filter(|a| matches!(a, Do::Read(_) | Do::Write { .. })).count() <= 1, "one storage request at a time: {actions:?}");
        let mut answer = None;
        for action in &actions {
            match action {
                Do::Read(parts) => {
                    let results = parts
                        .iter()
                        .map(|&part| {
                            let data = match part {
                                _ if failing => return ReadResult::Failed { part, error: "down".into() },
                                Part::Records => Stored::Records(stored.records.values().cloned().collect()),
                                Part::Grants => Stored::Grants(stored.grants.clone()),
                                Part::FastTokens => Stored::FastTokens(stored.fast_tokens.clone()),
                            };
                            ReadResult::Read { data, skipped: 0 }
                        })
                        .collect();
                    answer = Some(Event::Read(results));
                }
                Do::Write { serial, changed, removed } => {
                    let result = if failing {
                        Err("down".to_owned())
                    } else {
                        for record in changed {
                            stored.records.insert(record.id.clone(), record.clone());
                        }
                        for id in removed {
                            stored.records.remove(id);
                        }
                        Ok(())
                    };
                    answer = Some(Event::Written { serial: *serial, result });
                }
                Do::CarryOut(_) => answer = Some(Event::CarriedOut { complete: true }),
                _ => {}
            }
        }
        seen.append(&mut actions);
        match answer {
            Some(event) => actions = driver.handle(user, event, moment.clone()),
            None => return seen,
        }
    }
}

proptest! {
#![proptest_config(ProptestConfig::with_cases(500))]
/// Logins, timers, unloads and deletions of a few accounts while storage fails now and then:
/// once storage works again every login of a stream still there is stored, nothing is written
/// for an account after its deletion, and no work is left.
#[test]
fn the_driver_stores_every_login_and_nothing_of_deleted_accounts(choices in choices(300)) {
    let mut rng = Rng::new(choices);
    let policy = Policy { cache_size: 1 + rng.below(3) as usize, write_delay: 1.0 + rng.below(20) as f64, ..Policy::default() };
    let mut driver = Driver::new(policy);
    let mut storage: HashMap<&str, StoredAccount> = HashMap::new();
    let users = ["a", "b", "c"];
    let mut streams: HashMap<&str, Vec<(String, String)>> = HashMap::new(); // user → (key, client id)
    let mut deleted: HashSet<&str> = HashSet::new();
    let moment_of = |streams: &HashMap<&str, Vec<(String, String)>>, user: &str, now: f64| {
        let list = streams.get(user).cloned().unwrap_or_default();
        Moment {
            sessions: list
                .iter()
                .enumerate()
                .map(|(i, (_, id))| SessionFact { index: i + 1, full_jid: Some(format!("{user}@h/{id}")), client_id: Some(id.clone()), grant_id: None })
                .collect(),
            stream_keys: list.iter().map(|(key, _)| Some(key.clone())).collect(),
            now,
            ..Moment::default()
        }
    };
    let steps = rng.below(40);
    for step in 0..steps {
        let user = rng.pick(&users);
        let failing = rng.chance(30);
        let now = 1_000.0 + step as f64;
        let event = match rng.below(10) {
            0..=4 => {
                let id = format!("c{}", rng.below(6));
                let key = format!("s{step}");
                streams.entry(user).or_default().push((key.clone(), id.clone()));
                deleted.remove(user);
                let login = Login { client_id: Some(id.clone()), full_jid: Some(format!("{user}@h/{id}")), mechanism: Some("PLAIN".into()), at: 1_000 + step as i64, ..Login::default() };
                Event::Login { stream: key, login: Box::new(login) }
            }
            5..=6 => Event::Tick,
            7 => Event::StoreNow,
            8 => {
                // A stream closes.
                let list = streams.entry(user).or_default();
                if !list.is_empty() {
                    let at = rng.below(list.len() as u64) as usize;
                    list.remove(at);
                }
                Event::Tick
            }
            _ => {
                // Prosody purges the account's storage; mod_c2s closes its streams.
                storage.remove(user);
                streams.remove(user);
                deleted.insert(user);
                Event::AccountDeleted
            }
        };
        let moment = moment_of(&streams, user, now);
        let actions = carry_out(&mut driver, user, event, &moment, failing, storage.entry(user).or_default());
        if deleted.contains(user) {
            assert!(!actions.iter().any(|a| matches!(a, Do::Write { .. })), "a write for deleted {user}: {actions:?}");
        }
    }
    // Storage works again; the timers come.
    for round in 0..20 {
        for user in driver.pending() {
            let user = users.iter().find(|u| **u == user).copied().unwrap();
            let moment = moment_of(&streams, user, 10_000.0 + round as f64);
            let actions = carry_out(&mut driver, user, Event::Tick, &moment, false, storage.entry(user).or_default());
            let wrote = actions.iter().any(|a| matches!(a, Do::Write { .. }));
            prop_assert!(!deleted.contains(user) || !wrote, "a write for deleted {}", user);
        }
    }
    prop_assert!(driver.pending().is_empty(), "work left: {:?}", driver.pending());
    for (user, list) in &streams {
        for (_, id) in list {
            prop_assert!(storage.get(*user).is_some_and(|s| s.records.contains_key(id)), "{user}'s {id} was never stored");
        }
    }
    for user in &deleted {
        prop_assert!(storage.get(*user).is_none_or(|s| s.records.is_empty()), "{user} was written after its deletion");
    }
}
}

/// A grant as mod_tokenauth stores it, with times around `now`.
fn stored_grant(rng: &mut Rng, id: String, now: f64) -> Grant {
    let around = |rng: &mut Rng| now - 5.0 + rng.below(40) as f64 + if rng.chance(20) { 0.5 } else { 0.0 };
    let tokens = (0..rng.below(3))
        .map(|_| GrantToken { expires: rng.chance(70).then(|| around(rng)), role_priority: rng.chance(50).then(|| [15, 25, 35][rng.below(3) as usize]) })
        .collect();
    Grant {
        id,
        created: Some(now - rng.below(30) as f64),
        accessed: rng.chance(80).then(|| now - rng.below(30) as f64),
        expires: rng.chance(30).then(|| around(rng)),
        tokens,
        user_agent: UserAgent { software: Some(rng.pick(SOFTWARE).to_owned()), ..Default::default() },
        ..Default::default()
    }
}

proptest! {
#![proptest_config(ProptestConfig::with_cases(1500))]
/// The cached listing is always the listing a fresh render of the account would give: over
/// logins (which change records and FAST tokens), grants created and revoked (with
/// mod_tokenauth's events), revocations through the driver, prunes, writes, the clock moving
/// across expiries (and back), streams opening and closing, password and role changes,
/// deletions and the account dropped from memory, every list answered from the cache is
/// byte-identical to rendering the account's facts at that moment.
#[test]
fn a_cached_listing_is_always_a_fresh_render(choices in choices(500)) {
    let mut rng = Rng::new(choices);
    let policy = Policy {
        cache_size: 1 + rng.below(2) as usize,
        tokenless_grant_ttl: rng.chance(50).then_some(10),
        grant_cache_ttl: [0.0, 5.0, 60.0][rng.below(3) as usize],
        retention: rng.chance(30).then_some(20),
        max_clients: 3 + rng.below(6) as usize,
        ..Policy::default()
    };
    let mut driver = Driver::new(policy);
    let users = ["a", "b"];
    let mut stored: HashMap<&str, StoredAccount> = HashMap::new();
    let mut streams: HashMap<&str, Vec<(String, String, bool)>> = HashMap::new(); // key, client id, bound
    let mut password_updated: HashMap<&str, i64> = HashMap::new();
    let mut role: Option<i64> = Some(25);
    let mut now = 10_000.0;
    let steps = 10 + rng.below(50);
    for step in 0..steps {
        let user = rng.pick(&users);
        let account = stored.entry(user).or_default();
        let event = match rng.below(16) {
            0..=2 => {
                let id = format!("c{}", rng.below(5));
                let key = format!("s{step}");
                streams.entry(user).or_default().push((key.clone(), id.clone(), rng.chance(80)));
                let fast = rng.chance(40);
                if fast {
                    account.fast_tokens.insert(
                        format!("{}{}", fast_token_key_prefix(&id), rng.pick(&["-cur", "-new"])),
                        FastToken { issued_at: now, expires_at: now + rng.below(30) as f64 + if rng.chance(30) { 0.25 } else { 0.0 } },
                    );
                }
                let grant_id = (rng.chance(30) && !account.grants.is_empty()).then(|| account.grants[0].id.clone());
                let login = Login {
                    client_id: Some(id.clone()),
                    full_jid: Some(format!("{user}@h/{id}")),
                    mechanism: Some(rng.pick(&["PLAIN", "SCRAM-SHA-1", "HT-SHA-256-NONE", "OAUTHBEARER"]).into()),
                    at: now as i64,
                    grant_id,
                    fast,
                    ..Login::default()
                };
                Some(Event::Login { stream: key, login: Box::new(login) })
            }
            3 => {
                let id = format!("g{step}");
                account.grants.push(stored_grant(&mut rng, id, now));
                Some(Event::Credentials(client_management::account::CacheEvent::GrantsChanged))
            }
            4 => {
                if !account.grants.is_empty() {
                    let at = rng.below(account.grants.len() as u64) as usize;
                    account.grants.remove(at);
                }
                Some(Event::Credentials(client_management::account::CacheEvent::GrantsChanged))
            }
            5 => Some(Event::Revoke { selector: format!("{}/{}", rng.pick(&["client", "grant"]), rng.pick(&["c0", "c1", "g3", "g5"])) }),
            6 => {
                now += [1.0, 5.0, 10.0, 0.5, 30.0][rng.below(5) as usize];
                None
            }
            7 => {
                now -= rng.below(3) as f64; // a clock stepped back
                None
            }
            8 => {
                let list = streams.entry(user).or_default();
                if !list.is_empty() {
                    let at = rng.below(list.len() as u64) as usize;
                    if rng.chance(50) { list.remove(at); } else { list[at].2 = !list[at].2; }
                }
                None
            }
            9 => {
                password_updated.insert(user, now as i64 - rng.below(3) as i64);
                None
            }
            10 => {
                role = [None, Some(15), Some(25), Some(35)][rng.below(4) as usize];
                None
            }
            11 => {
                stored.remove(user);
                streams.remove(user);
                Some(Event::AccountDeleted)
            }
            12 => Some(Event::Ask(Question::Prune { dry_run: rng.chance(30) })),
            13 => Some(Event::Tick),
            14 => {
                // What mod_tokenauth changes without an event: a token added to a grant, an
                // access time (seen once the grants are read again).
                if let Some(grant) = account.grants.last_mut() {
                    grant.accessed = Some(now);
                    grant.tokens.push(GrantToken { expires: Some(now + rng.below(20) as f64), role_priority: rng.chance(50).then_some(15) });
                }
                None
            }
            _ => None,
        };
        let moment = moment_of_streams(&streams, user, now, &password_updated, role);
        if let Some(event) = event {
            let account = stored.entry(user).or_default();
            carry_out(&mut driver, user, event, &moment, false, account);
        }
        // Lists, in one or both namespaces, once or twice.
        for _ in 0..1 + rng.below(2) {
            let protocol = if rng.chance(50) { Protocol::Cam } else { Protocol::Prosody };
            let account = stored.entry(user).or_default();
            let actions = carry_out(&mut driver, user, Event::List { protocol, as_xml: true }, &moment, false, account);
            let Some(Do::ListingXml(body)) = actions.last() else { panic!("no listing: {actions:?}") };
            let fresh = client_management::render::render_listing(driver.cached(user).expect("listed, so in memory").facts_at(moment.clone()), protocol).to_xml();
            let cached = body.xml();
            prop_assert_eq!(cached.as_deref(), Some(fresh.as_str()), "step {} at {}", step, now);
        }
        // Nothing changed since: the same body again, unless grants are read for every list or
        // something expires now.
        if policy.grant_cache_ttl > 0.0 {
            let protocol = Protocol::Cam;
            let account = stored.entry(user).or_default();
            let mut again = || match carry_out(&mut driver, user, Event::List { protocol, as_xml: true }, &moment, false, account).pop() {
                Some(Do::ListingXml(body)) => body,
                other => panic!("no listing: {other:?}"),
            };
            let (first, second) = (again(), again());
            // (not when something expires at this very instant)
            let lasts = client_management::listing::listing_valid_until(driver.cached(user).expect("listed, so in memory").facts_at(moment.clone())) > now;
            prop_assert!(!lasts || std::rc::Rc::ptr_eq(&first, &second), "not answered from the cache at step {}", step);
        }
    }
}
}

/// The moment of `user`: its streams, password change and role at `now`.
fn moment_of_streams(
    streams: &HashMap<&str, Vec<(String, String, bool)>>,
    user: &str,
    now: f64,
    password_updated: &HashMap<&str, i64>,
    role: Option<i64>,
) -> Moment {
    let list = streams.get(user).cloned().unwrap_or_default();
    Moment {
        sessions: list
            .iter()
            .enumerate()
            .map(|(i, (_, id, bound))| SessionFact {
                index: i + 1,
                full_jid: bound.then(|| format!("{user}@h/{id}")),
                client_id: Some(id.clone()),
                grant_id: None,
            })
            .collect(),
        stream_keys: list.iter().map(|(key, _, _)| Some(key.clone())).collect(),
        password_updated: password_updated.get(user).copied(),
        account_role_priority: role,
        now,
    }
}
