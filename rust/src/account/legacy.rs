//! Legacy clients (legacy SASL, XEP-0078, SASL2 without an id) cannot name themselves: they
//! are found by their full JID and get an id of ours.

use super::Account;
use crate::ids::generate_client_id;

impl Account {
    /// The legacy record last seen with this full JID (resources are all a legacy client
    /// tells about itself).
    pub(super) fn find_legacy(&self, full_jid: &str) -> Option<usize> {
        self.facts
            .records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.legacy && r.full_jid.as_deref() == Some(full_jid))
            .max_by(|(_, a), (_, b)| a.last_activity().cmp(&b.last_activity()).then_with(|| b.id.cmp(&a.id)))
            .map(|(i, _)| i)
    }

    /// Moves the legacy record `id` to a fresh generated id (stored under the new key, removed
    /// under the old one).
    pub(super) fn rekey_legacy(&mut self, id: &str) {
        self.changing();
        let Some(position) = self.index.remove(id) else { return };
        let fresh = self.fresh_id();
        self.facts.records[position].id = fresh.clone();
        self.index.insert(fresh.clone(), position);
        self.mark_removed(id);
        self.mark_changed(&fresh);
    }

    pub(super) fn fresh_id(&self) -> String {
        loop {
            // The OS random source failing is not something a login can recover from; the
            // glue turns the panic into a Lua error and the login is left unrecorded.
            let id = generate_client_id().expect("the OS random source failed");
            if !self.index.contains_key(&id) {
                return id;
            }
        }
    }

}
