//! The decision core alone: decide + order, render, plan, for N stored clients.

use std::collections::HashMap;

use client_management::account::{Moment, Policy};
use client_management::driver::{Action, Driver, Event, ReadResult, Stored};
use client_management::ids::fast_token_key_prefix;
use client_management::listing::list_entries;
use client_management::model::{AccountFacts, ClientRecord, FastToken, Grant, GrantToken, SessionFact, UserAgent};
use client_management::render::{render_clients, Protocol};
use client_management::revocation::plan_revocation;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};

/// N clients, a quarter each: password, FAST, OAuth (with grant), stale; plus N/10 idle grants.
pub fn account(n: usize) -> AccountFacts {
    let mut facts = AccountFacts {
        fast_tokens: HashMap::new(),
        moment: Moment {
            now: 1_800_000_000.0,
            password_updated: Some(1_700_000_000),
            account_role_priority: Some(35),
            ..Default::default()
        },
        ..Default::default()
    };
    for i in 0..n {
        let id = format!("client-{i:06}");
        let t = 1_700_000_000 + (i as i64 * 37) % 100_000;
        let mut record = ClientRecord {
            id: id.clone(),
            first_seen: Some(t),
            last_seen: Some(t + 10),
            full_jid: Some(format!("user@example.com/res-{i}")),
            user_agent: UserAgent {
                software: Some(format!("Client {}", i % 7)),
                software_version: Some(format!("1.{}", i % 3)),
                device: Some("Phone".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        match i % 4 {
            0 => record.mechanisms.push(("SCRAM-SHA-1".into(), t + 10)),
            1 => {
                record.mechanisms.push(("HT-SHA-256-NONE".into(), t + 10));
                record.fast_auth = Some(t + 10);
                facts.fast_tokens.insert(
                    format!("{}-cur", fast_token_key_prefix(&id)),
                    FastToken { issued_at: (t + 10) as f64, expires_at: 1_900_000_000.0 },
                );
            }
            2 => {
                let grant = format!("grant-{i:06}");
                record.mechanisms.push(("OAUTHBEARER".into(), t + 10));
                record.auth_token_id = Some(grant.clone());
                facts.grants.push(Grant {
                    id: grant,
                    created: Some((t) as f64),
                    accessed: Some((t + 10) as f64),
                    tokens: vec![GrantToken { expires: Some(1_900_000_000.0), role_priority: Some(35) }],
                    ..Default::default()
                });
            }
            _ => record.mechanisms.push(("SCRAM-SHA-1".into(), 1_600_000_000)),
        }
        facts.records.push(record);
    }
    for i in 0..n / 10 {
        facts.grants.push(Grant {
            id: format!("idle-{i:06}"),
            created: Some((1_700_000_000 + i as i64) as f64),
            user_agent: UserAgent { software: Some("REST client".into()), ..Default::default() },
            ..Default::default()
        });
    }
    for i in (0..n).step_by(50) {
        facts.moment.sessions.push(SessionFact {
            index: facts.moment.sessions.len() + 1,
            full_jid: Some(format!("user@example.com/res-{i}")),
            client_id: Some(format!("client-{i:06}")),
            grant_id: None,
        });
    }
    facts
}

fn bench_core(c: &mut Criterion) {
    let mut group = c.benchmark_group("core");
    for n in [10, 100, 1000, 10_000] {
        let facts = account(n);
        group.bench_with_input(BenchmarkId::new("list", n), &facts, |b, f| b.iter(|| list_entries(black_box(f)).len()));
        let entries = list_entries(&facts);
        group.bench_with_input(BenchmarkId::new("render_cam", n), &entries, |b, e| {
            b.iter(|| render_clients(black_box(e), Protocol::Cam).children.len())
        });
        group.bench_with_input(BenchmarkId::new("plan_software", n), &facts, |b, f| {
            b.iter(|| plan_revocation(black_box(f), "software/Client 3/1.1", true).actions.len())
        });
    }
    group.finish();
}

/// A driver holding the account of `facts` in memory, and the moment of those facts.
fn driver_with(facts: &AccountFacts) -> (Driver, Moment) {
    let mut driver = Driver::new(Policy { max_clients: 100_000, grant_cache_ttl: f64::INFINITY, ..Policy::default() });
    let moment = Moment { stream_keys: facts.moment.sessions.iter().map(|_| None).collect(), ..facts.moment.clone() };
    driver.handle("u", Event::List { protocol: Protocol::Cam, as_xml: true }, moment.clone());
    let read = Event::Read(vec![
        ReadResult::Read { data: Stored::Records(facts.records.clone()), skipped: 0 },
        ReadResult::Read { data: Stored::Grants(facts.grants.clone()), skipped: 0 },
        ReadResult::Read { data: Stored::FastTokens(facts.fast_tokens.clone()), skipped: 0 },
    ]);
    driver.handle("u", read, moment.clone());
    (driver, moment)
}

fn listed_bytes(actions: Vec<Action>) -> usize {
    match actions.last() {
        Some(Action::ListingXml(body)) => body.len(),
        other => panic!("no listing: {other:?}"),
    }
}

/// A list event of an account in memory: answered from the listing cache, and rendered afresh
/// (the moment's role alternates, so every list is a miss).
fn bench_driver_list(c: &mut Criterion) {
    let mut group = c.benchmark_group("driver");
    for n in [10, 100, 1000] {
        let facts = account(n);
        let (mut driver, moment) = driver_with(&facts);
        group.bench_function(BenchmarkId::new("list_xml_cached", n), |b| {
            b.iter(|| listed_bytes(driver.handle("u", Event::List { protocol: Protocol::Cam, as_xml: true }, black_box(moment.clone()))))
        });
        let (mut driver, moment) = driver_with(&facts);
        let other = Moment { account_role_priority: Some(36), ..moment.clone() };
        let mut flip = false;
        group.bench_function(BenchmarkId::new("list_xml_fresh", n), |b| {
            b.iter(|| {
                flip = !flip;
                let moment = if flip { other.clone() } else { moment.clone() };
                listed_bytes(driver.handle("u", Event::List { protocol: Protocol::Cam, as_xml: true }, black_box(moment)))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_core, bench_driver_list);
criterion_main!(benches);
