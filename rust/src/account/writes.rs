//! The queue of record changes not stored yet, and the backoff after failed stores.

use std::collections::BTreeMap;

use super::Account;

/// Longest wait between attempts to store records after failures.
pub const MAX_RETRY_DELAY: f64 = 300.0;

/// A set of record changes to store together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBatch {
    pub serial: u64,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

/// Record changes not stored yet, by record id, with the serial of their latest change so a
/// store that succeeds only clears what it carried.
#[derive(Debug, Default)]
pub(super) struct PendingWrites {
    serial: u64,
    changed: BTreeMap<String, u64>,
    removed: BTreeMap<String, u64>,
    failures: u32,
}

impl Account {

    pub(super) fn mark_removed(&mut self, id: &str) {
        self.writes.serial += 1;
        self.writes.changed.remove(id);
        self.writes.removed.insert(id.to_owned(), self.writes.serial);
    }

    pub(super) fn mark_changed(&mut self, id: &str) {
        self.writes.serial += 1;
        self.writes.removed.remove(id);
        self.writes.changed.insert(id.to_owned(), self.writes.serial);
    }

    pub fn has_pending_writes(&self) -> bool {
        !self.deleted && (!self.writes.changed.is_empty() || !self.writes.removed.is_empty())
    }

    /// Everything not stored yet, to store in one go; `None` when there is nothing (or the
    /// account is gone).
    pub fn take_writes(&self) -> Option<WriteBatch> {
        if !self.has_pending_writes() {
            return None;
        }
        Some(WriteBatch {
            serial: self.writes.serial,
            changed: self.writes.changed.keys().cloned().collect(),
            removed: self.writes.removed.keys().cloned().collect(),
        })
    }

    /// The batch up to `serial` is stored: forget what it carried, not what changed since.
    pub fn writes_stored(&mut self, serial: u64) {
        self.writes.changed.retain(|_, changed| *changed > serial);
        self.writes.removed.retain(|_, removed| *removed > serial);
        self.writes.failures = 0;
    }

    /// Storing failed: everything stays queued. Returns how long to wait before trying again.
    pub fn writes_failed(&mut self) -> f64 {
        self.writes.failures = self.writes.failures.saturating_add(1);
        self.retry_delay()
    }

    /// How long queued changes wait: the write delay, doubled after each failure in a row.
    pub fn retry_delay(&self) -> f64 {
        backoff(self.policy.write_delay, self.writes.failures)
    }
}

/// How long to wait after `failures` failures in a row: `base` (at least a second), doubled
/// after each failure but the first, at most [`MAX_RETRY_DELAY`] (or `base` when longer).
pub fn backoff(base: f64, failures: u32) -> f64 {
    let base = base.max(1.0);
    let doublings = failures.saturating_sub(1).min(16);
    (base * 2f64.powi(doublings as i32)).min(MAX_RETRY_DELAY.max(base))
}
