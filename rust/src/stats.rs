//! Host-wide statistics: listed clients grouped by software and version, accumulated one
//! account at a time so memory stays bounded by the number of distinct versions.

use std::collections::HashMap;

use crate::listing::Entry;
use crate::model::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftwareRow {
    /// `None` when the client never said what it is.
    pub software: Option<String>,
    pub version: Option<String>,
    /// Accounts with at least one such client.
    pub accounts: usize,
    pub clients: usize,
    pub last_seen: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SoftwareStats {
    rows: HashMap<(Option<String>, Option<String>), SoftwareRow>,
    pub accounts: usize,
    pub clients: usize,
}

impl SoftwareStats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one account's listed entries; accounts with none are not counted.
    pub fn add_account(&mut self, entries: &[Entry]) {
        if entries.is_empty() {
            return;
        }
        self.accounts += 1;
        self.clients += entries.len();
        let mut counted_here: Vec<(Option<&str>, Option<&str>)> = Vec::new();
        for entry in entries {
            let software = entry.user_agent.software.as_deref();
            let version = entry.user_agent.software_version.as_deref();
            let key = (software.map(str::to_owned), version.map(str::to_owned));
            let row = self.rows.entry(key).or_insert_with(|| SoftwareRow {
                software: software.map(str::to_owned),
                version: version.map(str::to_owned),
                accounts: 0,
                clients: 0,
                last_seen: None,
            });
            row.clients += 1;
            row.last_seen = row.last_seen.max(entry.last_seen.or(entry.first_seen));
            if !counted_here.contains(&(software, version)) {
                counted_here.push((software, version));
                row.accounts += 1;
            }
        }
    }

    /// Adds the tally of other accounts (one account's, from the driver).
    pub fn merge(&mut self, other: SoftwareStats) {
        self.accounts += other.accounts;
        self.clients += other.clients;
        for (key, row) in other.rows {
            match self.rows.get_mut(&key) {
                Some(mine) => {
                    mine.accounts += row.accounts;
                    mine.clients += row.clients;
                    mine.last_seen = mine.last_seen.max(row.last_seen);
                }
                None => {
                    self.rows.insert(key, row);
                }
            }
        }
    }

    /// Rows by software name (unknown last), then version.
    pub fn rows(&self) -> Vec<SoftwareRow> {
        let mut rows: Vec<SoftwareRow> = self.rows.values().cloned().collect();
        rows.sort_by(|a, b| {
            (a.software.is_none(), &a.software, &a.version).cmp(&(b.software.is_none(), &b.software, &b.version))
        });
        rows
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::listing::list_entries;
    use crate::model::{AccountFacts, ClientRecord, UserAgent};

    /// An account with one record per `(software, version, last seen)`.
    pub(crate) fn account(clients: &[(Option<&str>, Option<&str>, i64)]) -> AccountFacts {
        AccountFacts {
            records: clients
                .iter()
                .enumerate()
                .map(|(i, (software, version, seen))| ClientRecord {
                    id: format!("c{i}"),
                    last_seen: Some(*seen),
                    mechanisms: vec![("PLAIN".into(), *seen)],
                    user_agent: UserAgent {
                        software: software.map(Into::into),
                        software_version: version.map(Into::into),
                        ..Default::default()
                    },
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn groups_by_software_and_version_counting_accounts_once() {
        let mut stats = SoftwareStats::new();
        let a = account(&[(Some("Chat"), Some("1.0"), 10), (Some("Chat"), Some("1.0"), 30), (None, None, 5)]);
        let b = account(&[(Some("Chat"), Some("2.0"), 20), (Some("Chat"), Some("1.0"), 15)]);
        stats.add_account(&list_entries(&a));
        stats.add_account(&list_entries(&b));
        stats.add_account(&[]);
        assert_eq!((stats.accounts, stats.clients), (2, 5));
        let rows = stats.rows();
        let summary: Vec<_> = rows
            .iter()
            .map(|r| (r.software.as_deref(), r.version.as_deref(), r.accounts, r.clients, r.last_seen))
            .collect();
        assert_eq!(
            summary,
            [
                (Some("Chat"), Some("1.0"), 2, 3, Some(30)),
                (Some("Chat"), Some("2.0"), 1, 1, Some(20)),
                (None, None, 1, 1, Some(5)),
            ]
        );
    }

    #[test]
    fn tallies_of_single_accounts_merge_into_the_same_rows() {
        let a = account(&[(Some("Chat"), Some("1.0"), 10), (Some("Chat"), Some("1.0"), 30), (None, None, 5)]);
        let b = account(&[(Some("Chat"), Some("2.0"), 20), (Some("Chat"), Some("1.0"), 15)]);
        let mut whole = SoftwareStats::new();
        whole.add_account(&list_entries(&a));
        whole.add_account(&list_entries(&b));
        let mut merged = SoftwareStats::new();
        for facts in [&a, &b] {
            let mut one = SoftwareStats::new();
            one.add_account(&list_entries(facts));
            merged.merge(one);
        }
        assert_eq!(merged, whole);
    }
}
