//! Which records go: over `max_clients` (at a login, or when pruning), past retention, and
//! what minimisation strips.

use std::cmp::Reverse;

use super::{Account, Moment, NotReady, Policy};
use crate::access::AccessContext;
use crate::model::{ClientRecord, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PruneOutcome {
    /// Records deleted (or that would be): past retention, then over the limit.
    pub deleted: Vec<String>,
    /// Records stripped of what the admin turned off storing.
    pub minimised: usize,
}

/// A record the limit may drop, in the order they go: tier, newest first (tier 1), least
/// recently seen, id.
type Candidate<'a> = (u8, Option<Reverse<Timestamp>>, Option<Timestamp>, &'a str);

impl Account {

    /// Drops records until the account is within `max_clients`: first those without access
    /// (least recently seen first), then those of clients seen only once (newest first, so a
    /// flood of one-shot logins replaces itself and never pushes out established clients),
    /// then the least recently seen. Records of clients holding a FAST token or a grant, or
    /// connected, are never dropped (they are credentials and streams the user must see), nor
    /// is `keep`.
    pub(super) fn evict_over_limit(&mut self, keep: Option<&str>) -> Vec<String> {
        self.changing();
        let doomed = self.over_limit(keep, &[]);
        self.remove_records(&doomed);
        doomed
    }

    /// Which records the limit drops, leaving out those already `going`.
    fn over_limit(&self, keep: Option<&str>, going: &[String]) -> Vec<String> {
        let count = self.facts.records.len() - going.len();
        if count <= self.facts.policy.max_clients {
            return Vec::new();
        }
        let ctx = AccessContext::new(&self.facts);
        let fast_known = self.fast_tokens_loaded;
        let grants_known = self.grants_loaded_at.is_some();
        let mut candidates: Vec<Candidate> = self
            .facts
            .records
            .iter()
            .filter(|r| Some(r.id.as_str()) != keep && !going.contains(&r.id))
            .filter_map(|record| {
                let access = ctx.access_of(record);
                // Unknown credentials are assumed held: only a legacy client (its id is ours,
                // so it cannot hold FAST tokens) without a grant id is safe to judge blind.
                let may_hold = (!fast_known && !record.legacy) || (!grants_known && record.auth_token_id.is_some());
                if access.fast || access.grant.is_some() || access.connected || may_hold {
                    return None;
                }
                let (tier, newest_first) = if !access.any() {
                    (0, None)
                } else if seen_once(record) {
                    (1, record.first_seen.map(Reverse))
                } else {
                    (2, None)
                };
                Some((tier, newest_first, record.last_activity(), record.id.as_str()))
            })
            .collect();
        candidates.sort_unstable();
        candidates.into_iter().take(count - self.facts.policy.max_clients).map(|(.., id)| id.to_owned()).collect()
    }

    /// Records whose client has no access and was last seen before the retention period.
    fn past_retention(&self) -> Vec<String> {
        let Some(retention) = self.facts.policy.retention else { return Vec::new() };
        let ctx = AccessContext::new(&self.facts);
        let horizon = self.facts.moment.now - retention as f64;
        self.facts
            .records
            .iter()
            .filter(|r| r.last_activity().is_none_or(|t| (t as f64) <= horizon) && !ctx.access_of(r).any())
            .map(|r| r.id.clone())
            .collect()
    }

    /// Retention, the limit and minimisation over the whole account (the daily job and
    /// `clients prune`). Needs every part read for [`Purpose::Change`].
    pub fn prune(&mut self, moment: Moment, dry_run: bool) -> Result<PruneOutcome, NotReady> {
        self.changing();
        if self.deleted {
            return Err(NotReady::Deleted);
        }
        if !self.records_loaded {
            return Err(NotReady::RecordsMissing);
        }
        self.facts_at(moment);
        let mut deleted = self.past_retention();
        let over = self.over_limit(None, &deleted);
        deleted.extend(over);
        let policy = self.facts.policy;
        let minimised = self.facts.records.iter().filter(|r| !deleted.contains(&r.id) && needs_minimising(r, &policy)).count();
        if !dry_run {
            self.remove_records(&deleted);
            let ids: Vec<String> = self.facts.records.iter().filter(|r| needs_minimising(r, &policy)).map(|r| r.id.clone()).collect();
            for id in ids {
                let position = self.index[&id];
                let mut record = std::mem::take(&mut self.facts.records[position]);
                self.minimise(&mut record);
                self.facts.records[position] = record;
                self.mark_changed(&id);
            }
        }
        Ok(PruneOutcome { deleted, minimised })
    }

    pub(super) fn minimise(&self, record: &mut ClientRecord) {
        if !self.facts.policy.store_full_jids && !record.legacy {
            record.full_jid = None;
        }
        if !self.facts.policy.store_device_names {
            record.user_agent.device = None;
        }
    }

    pub(super) fn remove_records(&mut self, ids: &[String]) {
        self.changing();
        if ids.is_empty() {
            return;
        }
        self.facts.records.retain(|r| !ids.contains(&r.id));
        self.index = self.facts.records.iter().enumerate().map(|(i, r)| (r.id.clone(), i)).collect();
        for id in ids {
            self.mark_removed(id);
        }
    }
}

/// A record's client logged in once: within [`ONE_SHOT_SECONDS`] of its first login (a late
/// bind records the same login again), or never recorded a time.
pub const ONE_SHOT_SECONDS: Timestamp = 60;

fn seen_once(record: &ClientRecord) -> bool {
    match (record.first_seen, record.last_seen) {
        (Some(first), Some(last)) => last.saturating_sub(first) <= ONE_SHOT_SECONDS,
        _ => true,
    }
}

pub(super) fn needs_minimising(record: &ClientRecord, policy: &Policy) -> bool {
    (!policy.store_full_jids && !record.legacy && record.full_jid.is_some())
        || (!policy.store_device_names && record.user_agent.device.is_some())
}
