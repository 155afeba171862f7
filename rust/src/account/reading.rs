//! What to read from storage before acting, and what each event makes stale.

use std::collections::HashMap;

use super::limits::needs_minimising;
use super::Account;
use crate::model::{ClientRecord, FastToken, Grant};

/// The parts of an account's facts that live in storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Our `clients` store.
    Records,
    /// mod_tokenauth's `auth_tokens` store.
    Grants,
    /// mod_sasl2_fast's `fast_tokens` store.
    FastTokens,
}

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Part::Records => "records",
            Part::Grants => "grants",
            Part::FastTokens => "fast_tokens",
        }
    }
}

/// What the facts are needed for; it decides how fresh they must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Recording a login: the records, and the credentials only when the account is full.
    Login,
    /// Listing, statistics: cached credentials are good enough within their lifetime.
    Listing,
    /// Revoking, pruning: decisions that delete things see storage as it is now.
    Change,
}

/// Events that make cached credentials stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheEvent {
    /// A login: mod_sasl2_fast may have issued, rotated or spent a token of the client.
    Login,
    /// A login with a grant's token: mod_tokenauth moved its access time.
    GrantLogin,
    /// mod_tokenauth created or revoked a grant or a token.
    GrantsChanged,
    /// We revoked FAST tokens or grants.
    Revoked,
}

impl CacheEvent {
    /// The events the Lua module passes on: mod_tokenauth's, and its own revocations.
    pub fn from_name(name: &str) -> Option<CacheEvent> {
        match name {
            "token-grant-created" | "token-grant-revoked" | "token-revoked" => Some(CacheEvent::GrantsChanged),
            "revoked" => Some(CacheEvent::Revoked),
            _ => None,
        }
    }
}

impl Account {
    /// The parts to read from storage before acting for `purpose` at `now`.
    pub fn missing(&self, purpose: Purpose, now: f64) -> Vec<Part> {
        let mut parts = Vec::new();
        if !self.records_loaded {
            parts.push(Part::Records);
        }
        let grants_fresh =
            !self.grants_stale && self.grants_loaded_at.is_some_and(|at| now - at < self.facts.policy.grant_cache_ttl);
        let (grants, fast) = match purpose {
            Purpose::Listing => (!grants_fresh, !self.fast_tokens_loaded || self.fast_tokens_stale),
            Purpose::Change => (true, true),
            // Only a full account needs to know which clients hold credentials (they are never
            // dropped); stale ones do for that.
            Purpose::Login => {
                let full = self.records_loaded && self.facts.records.len() >= self.facts.policy.max_clients;
                (full && self.grants_loaded_at.is_none(), full && !self.fast_tokens_loaded)
            }
        };
        if grants {
            parts.push(Part::Grants);
        }
        if fast {
            parts.push(Part::FastTokens);
        }
        parts
    }

    /// Parts never read.
    pub fn unread(&self) -> Vec<Part> {
        let mut parts = Vec::new();
        if !self.records_loaded {
            parts.push(Part::Records);
        }
        if self.grants_loaded_at.is_none() {
            parts.push(Part::Grants);
        }
        if !self.fast_tokens_loaded {
            parts.push(Part::FastTokens);
        }
        parts
    }

    /// The `clients` store as read. A record loaded for the first time is cleaned (the one
    /// sanitiser, the length limits) and stripped of what the admin does not want stored (then
    /// written back later).
    pub fn load_records(&mut self, records: Vec<ClientRecord>) {
        self.changing();
        if self.records_loaded {
            return; // ours is newer: every change since the read went through here
        }
        self.facts.records.clear();
        self.index.clear();
        for mut record in records {
            let changed = record.user_agent.needs_cleaning() || needs_minimising(&record, &self.facts.policy);
            if changed {
                record.user_agent = std::mem::take(&mut record.user_agent).cleaned();
                self.minimise(&mut record);
            }
            let id = record.id.clone();
            match self.index.get(&id) {
                Some(&i) => self.facts.records[i] = record,
                None => {
                    self.index.insert(id.clone(), self.facts.records.len());
                    self.facts.records.push(record);
                }
            }
            if changed {
                self.mark_changed(&id);
            }
        }
        self.records_loaded = true;
    }

    pub fn load_grants(&mut self, grants: Vec<Grant>, now: f64) {
        self.changing();
        self.facts.grants = grants
            .into_iter()
            .map(|grant| Grant { user_agent: grant.user_agent.cleaned(), ..grant })
            .collect();
        self.grants_loaded_at = Some(now);
        self.grants_stale = false;
    }

    pub fn load_fast_tokens(&mut self, tokens: HashMap<String, FastToken>) {
        self.changing();
        self.facts.fast_tokens = tokens;
        self.fast_tokens_loaded = true;
        self.fast_tokens_stale = false;
    }

    /// What each event makes stale.
    pub fn note(&mut self, event: CacheEvent) {
        self.changing();
        match event {
            CacheEvent::Login => self.fast_tokens_stale = true,
            CacheEvent::GrantLogin | CacheEvent::GrantsChanged => self.grants_stale = true,
            CacheEvent::Revoked => {
                self.fast_tokens_stale = true;
                self.grants_stale = true;
            }
        }
    }

}
