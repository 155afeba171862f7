//! The serialised `<clients>` of an account's last list request, per protocol, kept with every
//! input its rendering depends on (docs/ARCHITECTURE.md, "The list reply"). A later request
//! whose inputs are the same gets the same bytes without rendering again; one whose inputs
//! differ in anything renders afresh. The inputs:
//! - the account's state in memory, by its [`Account::generation`] (records, grants, FAST
//!   tokens, what is stale, loads, logins, revocations, prunes, deletion);
//! - the moment's facts the listing reads: the streams (bound or not, their JIDs, client ids and
//!   grants), the last password change, the account role's priority (`Moment::stream_keys`
//!   only tell the driver which logins to record, and `Policy` is fixed);
//! - the clock: the listing is the same from the instant it was made until
//!   [`listing_valid_until`] (an expiry crossed), and is never used for an earlier clock.
//!
//! Grants cached longer than `grant_cache_ttl` are read again before the listing is made
//! (`Account::missing`), and loading them changes the generation.
//!
//! Memory: at most one body per protocol per account in memory, dropped with the account's
//! slot; a body is the reply it replaces (the glue may hold it as its own string instead, see
//! [`ListingBody::attached`]).

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use crate::account::{Account, Moment};
use crate::listing::listing_valid_until;
use crate::model::{SessionFact, Timestamp};
use crate::render::{render_listing, Protocol};

/// A serialised `<clients>` element, shared by the cache and the actions that hand it out.
pub struct ListingBody {
    inner: RefCell<Body>,
    len: usize,
}

struct Body {
    /// The XML, until the glue made its own copy of it.
    xml: Option<Rc<str>>,
    attached: Option<Box<dyn Any>>,
}

impl ListingBody {
    fn new(xml: String) -> Self {
        ListingBody { len: xml.len(), inner: RefCell::new(Body { xml: Some(xml.into()), attached: None }) }
    }

    /// Bytes of the XML.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The XML, unless the glue holds it as its own value now ([`ListingBody::attached`]).
    pub fn xml(&self) -> Option<Rc<str>> {
        self.inner.borrow().xml.clone()
    }

    /// What the glue makes of the XML (a Lua string): made by `make` the first time, then
    /// returned as made for as long as the body is cached. Once made, the XML itself is dropped,
    /// so a body is held once.
    pub fn attached<T: Any + Clone, E>(&self, make: impl FnOnce(&str) -> Result<T, E>) -> Result<T, E> {
        let mut inner = self.inner.borrow_mut();
        if let Some(value) = inner.attached.as_ref().and_then(|a| a.downcast_ref::<T>()) {
            return Ok(value.clone());
        }
        let xml = inner.xml.clone().expect("a body holds its XML until the glue made its own copy");
        let value = make(&xml)?;
        inner.attached = Some(Box::new(value.clone()));
        inner.xml = None;
        Ok(value)
    }
}

impl fmt::Debug for ListingBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ListingBody({} bytes)", self.len)
    }
}

/// Bodies are equal when they are the same body or hold the same XML.
impl PartialEq for ListingBody {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other) || (self.len == other.len && self.xml().is_some() && self.xml() == other.xml())
    }
}

/// One protocol's cached listing and what it was made from.
#[derive(Debug)]
struct Cached {
    generation: u64,
    sessions: Vec<SessionFact>,
    password_updated: Option<Timestamp>,
    account_role_priority: Option<i64>,
    made_at: f64,
    valid_until: f64,
    body: Rc<ListingBody>,
}

impl Cached {
    fn serves(&self, generation: u64, moment: &Moment) -> bool {
        self.generation == generation
            && self.made_at <= moment.now
            && moment.now < self.valid_until
            && self.password_updated == moment.password_updated
            && self.account_role_priority == moment.account_role_priority
            && self.sessions == moment.sessions
    }
}

/// The cached listings of one account, one per protocol.
#[derive(Debug, Default)]
pub struct ListingCache {
    prosody: Option<Cached>,
    cam: Option<Cached>,
}

impl ListingCache {
    /// The `<clients>` of `account` at `moment` in `protocol`: the cached one when every input
    /// is the same, else made afresh and cached.
    pub fn listing(&mut self, account: &mut Account, moment: &Moment, protocol: Protocol) -> Rc<ListingBody> {
        let generation = account.generation();
        let entry = match protocol {
            Protocol::Prosody => &mut self.prosody,
            Protocol::Cam => &mut self.cam,
        };
        if let Some(cached) = entry.as_ref().filter(|c| c.serves(generation, moment)) {
            return cached.body.clone();
        }
        *entry = None; // the stale body goes before the new one is made
        let facts = account.facts_at(moment.clone());
        let body = Rc::new(ListingBody::new(render_listing(facts, protocol).to_xml()));
        *entry = Some(Cached {
            generation,
            sessions: moment.sessions.clone(),
            password_updated: moment.password_updated,
            account_role_priority: moment.account_role_priority,
            made_at: moment.now,
            valid_until: listing_valid_until(facts),
            body: body.clone(),
        });
        body
    }

    /// Bytes held (for tests and the memory figure).
    pub fn bytes(&self) -> usize {
        [&self.prosody, &self.cam].iter().filter_map(|c| c.as_ref()).map(|c| c.body.len()).sum()
    }
}
