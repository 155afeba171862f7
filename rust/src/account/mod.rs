//! One account's state, owned in one place: its client records (each held once), what is known
//! of its credentials (grants, FAST tokens) and for how long that stays true, and the record
//! changes not stored yet. The Lua module reads and writes storage when this says so.
//!
//! Split by job (docs/ARCHITECTURE.md, "The account"): [`reading`] (what to read, and what
//! each event makes stale), [`login`] (how a login changes a record and whether that must be
//! stored at once), [`legacy`] (recognising clients that cannot name themselves), [`limits`]
//! (which records go when an account is full or past retention) and [`writes`] (the queue of
//! changes not stored yet).

mod legacy;
mod limits;
mod login;
mod reading;
mod writes;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use crate::model::{AccountFacts, ClientRecord};
pub use crate::model::{Moment, Policy};

pub use limits::{PruneOutcome, ONE_SHOT_SECONDS};
pub use login::{Login, LoginOutcome, WriteTiming};
pub use reading::{CacheEvent, Part, Purpose};
pub use writes::{backoff, WriteBatch, MAX_RETRY_DELAY};
use writes::PendingWrites;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// The records have not been read (storage failed): the login waits for the next read.
    RecordsMissing,
    /// The account was deleted: nothing more is recorded for it.
    Deleted,
}

#[derive(Debug)]
pub struct Account {
    facts: AccountFacts,
    /// Record id → position in `facts.records`.
    index: HashMap<String, usize>,
    records_loaded: bool,
    grants_loaded_at: Option<f64>,
    fast_tokens_loaded: bool,
    /// An event changed the grants or FAST tokens in storage since they were read. Stale
    /// credentials still tell which *other* clients hold one (a login only changes its own).
    grants_stale: bool,
    fast_tokens_stale: bool,
    writes: PendingWrites,
    deleted: bool,
    /// Changes with every change of the facts above (see [`Account::generation`]).
    generation: u64,
}

/// Generations are unique across accounts, so an account replaced by another never shows the
/// generation its predecessor had.
static NEXT_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_generation() -> u64 {
    NEXT_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Account {
    pub fn new(policy: Policy) -> Self {
        Account {
            facts: AccountFacts { policy, ..Default::default() },
            index: HashMap::new(),
            records_loaded: false,
            grants_loaded_at: None,
            fast_tokens_loaded: false,
            grants_stale: false,
            fast_tokens_stale: false,
            writes: PendingWrites::default(),
            deleted: false,
            generation: next_generation(),
        }
    }

    pub fn records_loaded(&self) -> bool {
        self.records_loaded
    }

    pub fn records(&self) -> &[ClientRecord] {
        &self.facts.records
    }

    pub fn record(&self, id: &str) -> Option<&ClientRecord> {
        self.index.get(id).map(|&i| &self.facts.records[i])
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted
    }
    /// Identifies the account's facts in memory (records, grants, FAST tokens, what is stale,
    /// deletion): every method that may change any of them (every `&mut self` method but
    /// [`Account::facts_at`], which only sets the moment's facts, and the bookkeeping of the
    /// write queue, which changes no fact) gives it a new value. Two equal generations mean the
    /// same facts; a cached listing is keyed by it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Called first by every method that may change the state.
    pub(crate) fn changing(&mut self) {
        self.generation = next_generation();
    }

    /// The account is gone: nothing is recorded or stored for it any more.
    pub fn mark_deleted(&mut self) {
        self.changing();
        self.deleted = true;
        self.writes = PendingWrites::default();
    }

    /// The facts at `moment`, for listing and planning. Parts never read are empty: callers
    /// read what [`Account::missing`] names first.
    pub fn facts_at(&mut self, moment: Moment) -> &AccountFacts {
        self.facts.moment = moment;
        &self.facts
    }
}
