//! The account driver (docs/ARCHITECTURE.md, "The driver"): sans-I/O, in the style of
//! quinn-proto and rustls. The Lua module hands it an event with the facts of the moment (the
//! clock among them); it answers with what to do: reads, writes, a timer, notices. The Lua
//! module carries those out and feeds storage results back as events. Which accounts stay in
//! memory, the logins not recorded yet and the backoff of failed reads and writes are its
//! state.
//!
//! Storage is read before an event is acted on: an event that needs parts not in memory is
//! held while the driver answers [`Action::Read`], and acted on when [`Event::Read`] brings
//! them (a second read when what came changes what is needed: a full account needs to know
//! its credentials).

mod listing_cache;

use std::collections::HashMap;
use std::rc::Rc;

use crate::account::{backoff, Account, CacheEvent, Login, Moment, NotReady, Part, Policy, PruneOutcome, Purpose, WriteBatch, WriteTiming};
use crate::forms::{client_choices, manage_form, sign_out_form, Form, UNREADABLE};
use crate::listing::{client_entries, list_entries, ClientEntry};
use crate::model::{AccountFacts, ClientRecord, FastToken, Grant};
use crate::notices::{Announcement, Flush, NoticeGates};
use crate::render::{render_listing, Element, Protocol};
use crate::revocation::{plan_revocation, plan_selection, plan_sign_out_others, RevocationPlan};
use crate::stats::SoftwareStats;
use crate::text::{client_listing, plan_reports, sign_out_question, Report};
use crate::web::answers::{self, WebRequest, WebView};
use crate::web::Response;
pub use listing_cache::{ListingBody, ListingCache};

/// Identifies a stream across events (Prosody's `session.id`); matched against
/// [`Moment::stream_keys`].
pub type StreamKey = String;

/// One part of an account as read from storage (decoded by the glue; `skipped`: stored items
/// that were malformed and left out).
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    Records(Vec<ClientRecord>),
    Grants(Vec<Grant>),
    FastTokens(HashMap<String, FastToken>),
}

impl Stored {
    pub fn part(&self) -> Part {
        match self {
            Stored::Records(_) => Part::Records,
            Stored::Grants(_) => Part::Grants,
            Stored::FastTokens(_) => Part::FastTokens,
        }
    }
}

/// The answer to one [`Action::Read`] of one part.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadResult {
    Read { data: Stored, skipped: usize },
    Failed { part: Part, error: String },
}

/// What happened, for one account.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// SASL succeeded, or a stream bound a resource after it: record the login of `stream`.
    Login { stream: StreamKey, login: Box<Login> },
    /// An ad-hoc, shell or web request, or the public API, asks about the account.
    Ask(Question),
    /// List the account's clients in `protocol` (a list iq); `as_xml`: answer with the
    /// serialised `<clients>` ([`Action::ListingXml`], cached), else with the element tree
    /// ([`Action::Listing`], for a stream whose filters read stanzas).
    List { protocol: Protocol, as_xml: bool },
    /// Revoke what `selector` names (`client/…`, `grant/…`, `software/…`).
    Revoke { selector: String },
    /// The plan of [`Action::CarryOut`] was carried out; `complete`: every step worked.
    CarriedOut { complete: bool },
    /// Storage answered the reads asked for.
    Read(Vec<ReadResult>),
    /// Storage answered the write `serial`: stored, or failed with an error.
    Written { serial: u64, result: Result<(), String> },
    /// A timer asked for with [`Action::Timer`] came due.
    Tick,
    /// The notice timer asked for with [`Action::NoticeTimer`] came due.
    NoticesDue,
    /// mod_tokenauth created or revoked a grant or token, or we revoked credentials.
    Credentials(CacheEvent),
    /// A grant was created: a client may be announced.
    GrantCreated(Announcement),
    /// The account was deleted: nothing of it stays, nothing is written again.
    AccountDeleted,
    /// Store what can be stored now: the module unloads, or the server stops.
    StoreNow,
}

/// What a request asks (see [`Event::Ask`]); each reads what it needs and answers with an
/// [`Action::Reply`], or plans a revocation ([`Action::CarryOut`]) and answers once it is
/// carried out. Each refuses (`Answer { error: "unreadable" }`) when a part could not be read.
#[derive(Debug, Clone, PartialEq)]
pub enum Question {
    /// `get_active_clients`: the listed entries ([`Reply::Clients`]).
    ActiveClients,
    /// `user clients`: the listing's lines at this width ([`Reply::Lines`]).
    ClientLines { width: usize },
    /// "Manage clients", shown: its form, a choice per listed client ([`Reply::Form`]).
    ManageForm,
    /// "Manage clients", submitted: revoke these listed ids; a [`Reply::Note`] after.
    RevokeListed(Vec<String>),
    /// "Sign out all other clients", sparing the stream `requester`: its form
    /// ([`Reply::Form`]), or with `confirmed` the plan; a [`Reply::Note`] after.
    SignOutOthers { requester: Option<StreamKey>, confirmed: bool },
    /// A web page or API request ([`Reply::Web`]; a sign-out is carried out first).
    Web { request: WebRequest, view: Box<WebView> },
    /// `clients stats`: one account's share of the tally ([`Reply::Stats`]). A walk.
    SoftwareStats,
    /// `clients revoke HOST software/…`: as [`Event::Revoke`], for every part. A walk.
    HostRevoke { selector: String },
    /// `clients prune` and the daily prune: retention, the limit, minimisation
    /// ([`Reply::Pruned`]); changes are stored at once. A walk.
    Prune { dry_run: bool },
}

impl Question {
    fn purpose(&self) -> Purpose {
        match self {
            Question::ActiveClients | Question::ClientLines { .. } | Question::ManageForm | Question::SoftwareStats => Purpose::Listing,
            Question::Web { request, .. } if !request.changes() => Purpose::Listing,
            _ => Purpose::Change,
        }
    }

    /// Host-wide walks visit every account: one not in memory is not kept (unless work is left).
    pub fn walks(&self) -> bool {
        matches!(self, Question::SoftwareStats | Question::HostRevoke { .. } | Question::Prune { .. })
    }
}

/// A request's answer (see [`Question`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Clients(Vec<ClientEntry>),
    /// Lines to print, and how many clients they list.
    Lines { lines: Vec<String>, count: usize },
    Form(Form),
    /// How an ad-hoc command ends: what its plan did, or could not finish.
    Note(Report),
    Web(Response),
    Stats(SoftwareStats),
    Pruned(PruneOutcome),
}

/// What a plan handed out answers once carried out.
#[derive(Debug)]
enum Finish {
    /// A revocation by selector: the plan's own error.
    Error(Option<&'static str>),
    /// An ad-hoc command: what it did, what it could not finish.
    Reports(Report, Report),
    /// A web sign-out.
    Web { request: WebRequest, view: Box<WebView>, plan: RevocationPlan, closed: usize },
}

/// What to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Read these parts and answer with one [`Event::Read`].
    Read(Vec<Part>),
    /// Store these records and delete these, in one write; answer with [`Event::Written`].
    Write { serial: u64, changed: Vec<ClientRecord>, removed: Vec<String> },
    /// Send [`Event::Tick`] after this many seconds (one timer per account: the driver asks
    /// again only once it came).
    Timer { after: f64 },
    /// Send [`Event::NoticesDue`] after this many seconds.
    NoticeTimer { after: f64 },
    /// A client got its first record through the login of `stream` (the
    /// `client_management/new-client` event).
    NewClient { record: Box<ClientRecord>, stream: StreamKey },
    /// Tell these streams (indices of the moment) this text.
    Notify { streams: Vec<usize>, text: String },
    /// The answer to [`Event::Ask`].
    Reply(Reply),
    /// Carry out this revocation plan (FAST tokens, grants, then streams) and answer with
    /// [`Event::CarriedOut`].
    CarryOut(RevocationPlan),
    /// A list request's `<clients>` element.
    Listing(Element),
    /// A list request's `<clients>`, serialised (the same bytes as [`Element::to_xml`] of a
    /// fresh [`Action::Listing`]).
    ListingXml(Rc<ListingBody>),
    /// The request's answer: success, or the name of its error (`item-not-found`,
    /// `password-reset-required`, `internal-server-error`; a list's `list-failed`; a
    /// question's `unreadable`).
    Answer { error: Option<&'static str> },
    /// Something the admin should know (a read or write failed, stored items were malformed).
    Log { level: LogLevel, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Warn,
    Error,
}

/// Which read failures a request for `purpose` cannot go on with: a listing shows every part
/// or nothing (a list without the grants would hide clients); a change (revoking, pruning)
/// must know the credentials it revokes, and does without the records only when its selector
/// names a grant (the plan says so); a login goes on with what there is (queued when the
/// records are missing).
pub fn refuses(purpose: Purpose, failed: &[Part]) -> bool {
    match purpose {
        Purpose::Listing => !failed.is_empty(),
        Purpose::Change => failed.iter().any(|part| *part != Part::Records),
        Purpose::Login => false,
    }
}

/// One account in memory.
#[derive(Debug)]
struct Slot {
    account: Account,
    /// Logins seen while the records could not be read, recorded once they can.
    unrecorded: Vec<(StreamKey, Login)>,
    /// An event waiting for the reads asked for, with its moment.
    waiting: Option<(Event, Moment)>,
    /// Parts read for the event at hand, and those that failed: neither is asked for again in
    /// that request (a change always reads afresh, once).
    read: Vec<Part>,
    failed: Vec<Part>,
    /// The serial of a write handed out and not answered yet.
    writing: Option<u64>,
    timer: bool,
    notice_timer: bool,
    /// A revocation planned and handed out: what it answers once carried out.
    revoking: Option<Finish>,
    /// Made for a host-wide walk: dropped once the walk's request is answered and no work is
    /// left, so that a walk keeps no account that was not in memory.
    walk: bool,
    /// Failed reads of the records in a row: their own backoff (failed writes count in the
    /// account).
    read_failures: u32,
    last_used: u64,
    /// The last list replies made, dropped with the slot.
    listings: ListingCache,
}

impl Slot {
    fn new(policy: Policy) -> Self {
        Slot {
            account: Account::new(policy),
            unrecorded: Vec::new(),
            waiting: None,
            read: Vec::new(),
            failed: Vec::new(),
            writing: None,
            timer: false,
            notice_timer: false,
            revoking: None,
            walk: false,
            read_failures: 0,
            last_used: 0,
            listings: ListingCache::default(),
        }
    }

    /// Plans the revocation of what `selector` names (`client/…`, `grant/…`, `software/…`) and
    /// hands it out; its error, if it has one, is the answer once carried out.
    fn plan_selector(&mut self, selector: &str, moment: Moment, actions: &mut Vec<Action>) {
        let records_known = self.account.records_loaded();
        let plan = plan_revocation(self.account.facts_at(moment), selector, records_known);
        self.revoking = Some(Finish::Error(plan.outcome.error_name()));
        actions.push(Action::CarryOut(plan));
    }

    /// Work not done yet keeps the account in memory whatever the cache size.
    fn pinned(&self) -> bool {
        self.account.has_pending_writes()
            || !self.unrecorded.is_empty()
            || self.waiting.is_some()
            || self.writing.is_some()
            || self.notice_timer
    }
}

/// The accounts of a host in memory, and what is left to do for them.
#[derive(Debug)]
pub struct Driver {
    policy: Policy,
    cache_size: usize,
    slots: HashMap<String, Slot>,
    clock: u64,
    gates: NoticeGates,
}

impl Driver {
    pub fn new(policy: Policy) -> Self {
        Driver { policy, cache_size: policy.cache_size.max(1), slots: HashMap::new(), clock: 0, gates: NoticeGates::default() }
    }

    /// The account if it is in memory, without making it recent.
    pub fn cached(&mut self, username: &str) -> Option<&mut Account> {
        self.slots.get_mut(username).map(|slot| &mut slot.account)
    }

    /// Accounts in memory.
    pub fn in_memory(&self) -> usize {
        self.slots.len()
    }

    /// Accounts with work left (changes not stored, logins not recorded), by name.
    pub fn pending(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .slots
            .iter()
            .filter(|(_, s)| s.account.has_pending_writes() || !s.unrecorded.is_empty())
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    fn slot(&mut self, username: &str) -> &mut Slot {
        self.clock += 1;
        let clock = self.clock;
        if !self.slots.contains_key(username) {
            self.make_room();
            self.slots.insert(username.to_owned(), Slot::new(self.policy));
        }
        let slot = self.slots.get_mut(username).expect("inserted above");
        slot.last_used = clock;
        slot.walk = false;
        slot
    }

    /// The slot of a walk: an account in memory as it is (not made recent), else one made
    /// without making room (nothing in memory goes for it) and dropped once done.
    fn walk_slot(&mut self, username: &str) -> &mut Slot {
        self.slots.entry(username.to_owned()).or_insert_with(|| Slot { walk: true, ..Slot::new(self.policy) })
    }

    /// Drops the slot of a walk once its request is answered and no work is left.
    fn end_walk(&mut self, username: &str) {
        if self.slots.get(username).is_some_and(|slot| slot.walk && !slot.pinned() && slot.revoking.is_none()) {
            self.slots.remove(username);
        }
    }

    /// Keeps fewer than `cache_size` accounts without work left: drops the least recently used.
    fn make_room(&mut self) {
        while self.slots.values().filter(|s| !s.pinned()).count() >= self.cache_size {
            let oldest = self.slots.iter().filter(|(_, s)| !s.pinned()).min_by_key(|(_, s)| s.last_used).map(|(n, _)| n.clone());
            match oldest {
                Some(name) => self.slots.remove(&name),
                None => return,
            };
        }
    }

    /// One event of `username`'s account at `moment`: what to do about it, in order.
    pub fn handle(&mut self, username: &str, event: Event, moment: Moment) -> Vec<Action> {
        let mut actions = Vec::new();
        match event {
            Event::AccountDeleted => {
                if let Some(mut slot) = self.slots.remove(username) {
                    slot.account.mark_deleted();
                }
                self.gates.forget(username);
            }
            Event::Credentials(cache_event) => {
                if let Some(slot) = self.slots.get_mut(username) {
                    slot.account.note(cache_event);
                }
            }
            Event::GrantCreated(announcement) => {
                if self.policy.notify_new_clients {
                    let bound = moment.sessions.iter().filter(|s| s.is_bound()).map(|s| s.index).collect();
                    self.offer(username, announcement, bound, moment.now, &mut actions);
                }
            }
            Event::Read(results) => {
                self.loaded(username, results, moment, &mut actions);
                self.end_walk(username);
            }
            Event::Written { serial, result } => {
                self.written(username, serial, result, &mut actions);
                self.end_walk(username);
            }
            // A timer of an account no longer in memory (deleted) has nothing left to do.
            Event::Tick | Event::StoreNow if !self.slots.contains_key(username) => {}
            Event::CarriedOut { complete } => {
                // What was revoked is stale now; an incomplete revocation answers so (the same
                // request finishes the job), else the plan's own error wins.
                let planned = self.slots.get_mut(username).and_then(|slot| {
                    slot.account.note(CacheEvent::Revoked);
                    slot.revoking.take()
                });
                actions.push(match planned {
                    Some(Finish::Reports(done, failed)) => Action::Reply(Reply::Note(if complete { done } else { failed })),
                    Some(Finish::Web { request, view, plan, closed }) => {
                        Action::Reply(Reply::Web(answers::signed_out(&request, &view, &plan, closed, complete)))
                    }
                    Some(Finish::Error(error)) if complete => Action::Answer { error },
                    None if complete => Action::Answer { error: None },
                    _ => Action::Answer { error: Some("internal-server-error") },
                });
                self.end_walk(username);
            }
            Event::Ask(question) if question.walks() => {
                let slot = self.walk_slot(username);
                slot.read.clear();
                slot.failed.clear();
                self.proceed(username, Event::Ask(question), moment, &mut actions);
                self.end_walk(username);
            }
            Event::Login { .. } | Event::Ask(_) | Event::List { .. } | Event::Revoke { .. } | Event::Tick | Event::NoticesDue | Event::StoreNow => {
                let slot = self.slot(username);
                match &event {
                    Event::Tick => slot.timer = false,
                    Event::NoticesDue => slot.notice_timer = false,
                    Event::Login { login, .. } => {
                        // mod_sasl2_fast may have issued, rotated or spent a token of the
                        // client; mod_tokenauth moved the grant's access time.
                        slot.account.note(CacheEvent::Login);
                        if login.grant_id.is_some() {
                            slot.account.note(CacheEvent::GrantLogin);
                        }
                    }
                    _ => {}
                }
                slot.read.clear();
                slot.failed.clear();
                self.proceed(username, event, moment, &mut actions);
            }
        }
        actions
    }

    /// Reads what `event` needs, or acts on it.
    fn proceed(&mut self, username: &str, event: Event, moment: Moment, actions: &mut Vec<Action>) {
        let Some(slot) = self.slots.get_mut(username) else { return };
        if slot.account.is_deleted() {
            return;
        }
        let purpose = match &event {
            Event::Ask(question) => Some(question.purpose()),
            Event::List { .. } => Some(Purpose::Listing),
            Event::Revoke { .. } => Some(Purpose::Change),
            Event::Login { .. } | Event::NoticesDue => Some(Purpose::Login),
            _ => (!slot.unrecorded.is_empty()).then_some(Purpose::Login),
        };
        if let Some(purpose) = purpose {
            let parts: Vec<Part> =
                slot.account.missing(purpose, moment.now).into_iter().filter(|p| !slot.read.contains(p)).collect();
            if !parts.is_empty() {
                slot.read.extend(&parts);
                slot.waiting = Some((event, moment));
                actions.push(Action::Read(parts));
                return;
            }
        }
        // The login's consequences (its new-client event, its notice) come after its write.
        let mut after = Vec::new();
        let urgent = match event {
            Event::Login { stream, login } => self.record(username, stream, *login, &moment, &mut after),
            Event::NoticesDue => {
                self.flush_notices(username, moment.clone(), &mut after);
                false
            }
            Event::Ask(question) => {
                // Every question needs every part it reads (a grant selector, which needs no
                // records, comes as a Revoke).
                if !slot.failed.is_empty() {
                    actions.push(match &question {
                        Question::Web { request, view } => Action::Reply(Reply::Web(answers::unreadable(request, view))),
                        Question::ManageForm | Question::RevokeListed(_) | Question::SignOutOthers { .. } => {
                            let note = UNREADABLE;
                            Action::Reply(Reply::Note(Report { level: note.level, text: note.text.to_owned() }))
                        }
                        _ => Action::Answer { error: Some("unreadable") },
                    });
                    false
                } else {
                    self.answer(username, question, moment.clone(), actions)
                }
            }
            Event::List { protocol, as_xml } => {
                // A list shows every part or nothing (see `refuses`).
                if refuses(Purpose::Listing, &slot.failed) {
                    actions.push(Action::Answer { error: Some("list-failed") });
                } else if as_xml {
                    actions.push(Action::ListingXml(slot.listings.listing(&mut slot.account, &moment, protocol)));
                } else {
                    actions.push(Action::Listing(render_listing(slot.account.facts_at(moment.clone()), protocol)));
                }
                false
            }
            Event::Revoke { selector } => {
                if refuses(Purpose::Change, &slot.failed) {
                    actions.push(Action::Answer { error: Some("internal-server-error") });
                } else {
                    slot.plan_selector(&selector, moment.clone(), actions);
                }
                false
            }
            Event::Tick | Event::StoreNow => true,
            _ => false,
        };
        let recorded_late = self.record_unrecorded(username, &moment, &mut after);
        self.store(username, urgent || recorded_late, actions);
        actions.append(&mut after);
    }

    /// Answers a question over what is read; true when a change must be stored at once.
    fn answer(&mut self, username: &str, question: Question, mut moment: Moment, actions: &mut Vec<Action>) -> bool {
        let slot = self.slots.get_mut(username).expect("slot of a question");
        let account = &mut slot.account;
        let reply = match question {
            Question::ActiveClients => Reply::Clients(client_entries(account.facts_at(moment))),
            Question::ClientLines { width } => {
                let entries = list_entries(account.facts_at(moment));
                Reply::Lines { lines: client_listing(&entries, width), count: entries.len() }
            }
            Question::ManageForm => Reply::Form(manage_form(client_choices(&list_entries(account.facts_at(moment))))),
            Question::SoftwareStats => {
                let mut stats = SoftwareStats::new();
                stats.add_account(&list_entries(account.facts_at(moment)));
                Reply::Stats(stats)
            }
            Question::Prune { dry_run } => match account.prune(moment, dry_run) {
                Ok(outcome) => {
                    actions.push(Action::Reply(Reply::Pruned(outcome)));
                    return !dry_run;
                }
                Err(_) => {
                    actions.push(Action::Answer { error: Some("unreadable") });
                    return false;
                }
            },
            Question::RevokeListed(ids) => {
                let facts = account.facts_at(moment);
                let plan = plan_selection(facts, &ids);
                let (done, failed) = plan_reports(&plan, &list_entries(facts), 0);
                slot.revoking = Some(Finish::Reports(done, failed));
                actions.push(Action::CarryOut(plan));
                return false;
            }
            Question::SignOutOthers { requester, confirmed } => {
                let requester = requester
                    .and_then(|key| moment.stream_keys.iter().position(|k| k.as_deref() == Some(key.as_str())))
                    .and_then(|position| moment.sessions.get(position))
                    .map_or(0, |session| session.index);
                let facts = account.facts_at(moment);
                let plan = plan_sign_out_others(facts, requester);
                let closed = plan.closed_streams();
                if !confirmed {
                    Reply::Form(sign_out_form(Some(sign_out_question(&plan, closed))))
                } else {
                    let (done, failed) = plan_reports(&plan, &list_entries(facts), closed);
                    slot.revoking = Some(Finish::Reports(done, failed));
                    actions.push(Action::CarryOut(plan));
                    return false;
                }
            }
            Question::HostRevoke { selector } => {
                slot.plan_selector(&selector, moment, actions);
                return false;
            }
            Question::Web { request, view } => {
                // A sign-out spares the requester (a web session, an API token): it holds a
                // grant, and no stream.
                let grant = if request.changes() { view.grant.clone() } else { None };
                let requester = answers::add_requester(&mut moment.sessions, grant);
                let facts: &AccountFacts = account.facts_at(moment);
                if request.signs_out() {
                    let (plan, closed) = answers::sign_out(facts, requester);
                    slot.revoking = Some(Finish::Web { request, view, plan: plan.clone(), closed });
                    actions.push(Action::CarryOut(plan));
                    return false;
                }
                Reply::Web(answers::show(&request, &view, facts, requester))
            }
        };
        actions.push(Action::Reply(reply));
        false
    }

    /// Storage answered: load what came, then carry on with the event that waited for it.
    fn loaded(&mut self, username: &str, results: Vec<ReadResult>, moment: Moment, actions: &mut Vec<Action>) {
        let Some(slot) = self.slots.get_mut(username) else { return };
        for result in results {
            match result {
                ReadResult::Read { data, skipped } => {
                    let part = data.part();
                    match data {
                        Stored::Records(records) => slot.account.load_records(records),
                        Stored::Grants(grants) => slot.account.load_grants(grants, moment.now),
                        Stored::FastTokens(tokens) => slot.account.load_fast_tokens(tokens),
                    }
                    if part == Part::Records {
                        slot.read_failures = 0;
                    }
                    if skipped > 0 {
                        let message = format!("Skipped {skipped} malformed stored item(s) in {} of {username}", part.name());
                        actions.push(Action::Log { level: LogLevel::Warn, message });
                    }
                }
                ReadResult::Failed { part, error } => {
                    if part == Part::Records {
                        slot.read_failures = slot.read_failures.saturating_add(1);
                    }
                    slot.failed.push(part);
                    actions.push(Action::Log { level: LogLevel::Error, message: format!("Unable to read {} of {username}: {error}", part.name()) });
                }
            }
        }
        if let Some((event, waiting_moment)) = slot.waiting.take() {
            self.proceed(username, event, waiting_moment, actions);
        }
    }

    /// Applies a login; true when its change must be stored at once.
    fn record(&mut self, username: &str, stream: StreamKey, login: Login, moment: &Moment, after: &mut Vec<Action>) -> bool {
        let at = login.at;
        let slot = self.slots.get_mut(username).expect("slot of a login");
        slot.unrecorded.retain(|(key, _)| *key != stream);
        let outcome = match slot.account.record_login(login.clone(), moment.clone()) {
            Ok(outcome) => outcome,
            Err(NotReady::RecordsMissing) => {
                // Recorded once the records can be read; a later login of the same stream
                // (its bind) replaces this one.
                slot.unrecorded.push((stream, login));
                return false;
            }
            Err(NotReady::Deleted) => return false,
        };
        if outcome.is_new {
            if let Some(record) = slot.account.record(&outcome.client_id).cloned() {
                let announcement = Announcement { software: record.user_agent.software.clone(), device: record.user_agent.device.clone(), at };
                after.push(Action::NewClient { record: Box::new(record), stream });
                if outcome.announce {
                    let streams = slot.account.notice_recipients(&outcome.client_id);
                    self.offer(username, announcement, streams, moment.now, after);
                }
            }
        }
        outcome.write == WriteTiming::Now
    }

    fn offer(&mut self, username: &str, announcement: Announcement, streams: Vec<usize>, now: f64, actions: &mut Vec<Action>) {
        let interval = self.policy.notice_interval;
        let offer = self.gates.offer(username, announcement, !streams.is_empty(), now, interval);
        if let Some(text) = offer.notice {
            actions.push(Action::Notify { streams, text });
        }
        if let Some(after) = offer.check_in {
            self.notice_timer(username, after, actions);
        }
    }

    fn notice_timer(&mut self, username: &str, after: f64, actions: &mut Vec<Action>) {
        let slot = self.slot(username);
        if !slot.notice_timer {
            slot.notice_timer = true;
            actions.push(Action::NoticeTimer { after });
        }
    }

    fn flush_notices(&mut self, username: &str, moment: Moment, actions: &mut Vec<Action>) {
        let interval = self.policy.notice_interval;
        match self.gates.flush(username, moment.now, interval) {
            Flush::Done => {}
            Flush::Wait { check_in } => self.notice_timer(username, check_in, actions),
            Flush::Summary { text, since, check_in } => {
                // Without the records, every bound stream hears it.
                let streams = self.slot(username).account.summary_recipients(moment, since);
                actions.push(Action::Notify { streams, text });
                self.notice_timer(username, check_in, actions);
            }
        }
    }

    /// Records the logins queued while the records could not be read, of streams still there
    /// (with the full JID they have now); true when a change must be stored at once.
    fn record_unrecorded(&mut self, username: &str, moment: &Moment, after: &mut Vec<Action>) -> bool {
        let slot = self.slots.get_mut(username).expect("slot");
        if slot.unrecorded.is_empty() || !slot.account.records_loaded() {
            return false;
        }
        let live: HashMap<&str, Option<&String>> = moment
            .stream_keys
            .iter()
            .zip(&moment.sessions)
            .filter_map(|(key, session)| key.as_deref().map(|key| (key, session.full_jid.as_ref())))
            .collect();
        let mut urgent = false;
        for (stream, mut login) in std::mem::take(&mut slot.unrecorded) {
            let Some(full_jid) = live.get(stream.as_str()) else { continue };
            login.full_jid = full_jid.cloned().or(login.full_jid);
            urgent |= self.record(username, stream, login, moment, after);
        }
        urgent
    }

    /// Hands out the write when it is due (`now`), else asks for a timer while work is left.
    fn store(&mut self, username: &str, now: bool, actions: &mut Vec<Action>) {
        let policy = self.policy;
        let Some(slot) = self.slots.get_mut(username) else { return };
        if slot.writing.is_some() || slot.account.is_deleted() {
            return;
        }
        if now {
            if let Some(WriteBatch { serial, changed, removed }) = slot.account.take_writes() {
                let changed = changed.iter().filter_map(|id| slot.account.record(id).cloned()).collect();
                slot.writing = Some(serial);
                actions.push(Action::Write { serial, changed, removed });
                return;
            }
        }
        let delay = if !slot.unrecorded.is_empty() && slot.read_failures > 0 {
            Some(backoff(policy.write_delay, slot.read_failures))
        } else if slot.account.has_pending_writes() || !slot.unrecorded.is_empty() {
            Some(slot.account.retry_delay())
        } else {
            None
        };
        if let Some(after) = delay.filter(|_| !slot.timer) {
            slot.timer = true;
            actions.push(Action::Timer { after });
        }
    }

    fn written(&mut self, username: &str, serial: u64, result: Result<(), String>, actions: &mut Vec<Action>) {
        // The account was deleted meanwhile: nothing is written for it again.
        let Some(slot) = self.slots.get_mut(username) else { return };
        if slot.writing != Some(serial) {
            return;
        }
        slot.writing = None;
        match result {
            Ok(()) => slot.account.writes_stored(serial),
            Err(error) => {
                let delay = slot.account.writes_failed();
                let message = format!("Unable to store clients of {username} (trying again in {delay}s): {error}");
                actions.push(Action::Log { level: LogLevel::Error, message });
            }
        }
        self.store(username, false, actions);
    }
}

#[cfg(test)]
mod tests;
