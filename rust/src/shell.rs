//! The admin shell (`prosodyctl shell`): its commands as Prosody lists them, what they answer,
//! and the tallies of the host-wide ones. The Lua module registers the commands, walks the
//! accounts and prints what this module writes.

use crate::revocation::parse_selector;
use crate::stats::SoftwareStats;
use crate::text::{format_day, stats_cell, table_lines, Column, Width};

/// An argument of a shell command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arg {
    pub name: &'static str,
    pub kind: &'static str,
}

/// A shell command, as mod_admin_shell's `shell-command` items describe one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    pub section: &'static str,
    pub section_desc: &'static str,
    pub name: &'static str,
    pub desc: &'static str,
    /// Which argument names the host the command runs on: `jid` or `host`.
    pub host_selector: &'static str,
    pub args: &'static [Arg],
    /// Takes `--dry-run`.
    pub dry_run: bool,
}

const USER_SECTION: &str = "View user and account info";
const CLIENTS_SECTION: &str = "Clients of every account on a host (mod_client_management)";
const JID: Arg = Arg { name: "jid", kind: "string" };
const HOST: Arg = Arg { name: "host", kind: "string" };
const SELECTOR: Arg = Arg { name: "selector", kind: "string" };

pub const COMMANDS: [Command; 5] = [
    Command {
        section: "user",
        section_desc: USER_SECTION,
        name: "clients",
        desc: "List the clients that have access to an account (IDs are shown in full for revoke_client)",
        host_selector: "jid",
        args: &[JID],
        dry_run: false,
    },
    Command {
        section: "user",
        section_desc: USER_SECTION,
        name: "revoke_client",
        desc: "Revoke a client's access: client/ID, grant/ID, software/NAME or software/NAME/VERSION",
        host_selector: "jid",
        args: &[JID, SELECTOR],
        dry_run: false,
    },
    Command {
        section: "clients",
        section_desc: CLIENTS_SECTION,
        name: "stats",
        desc: "Clients on a host grouped by software and version: accounts, clients, last seen",
        host_selector: "host",
        args: &[HOST],
        dry_run: false,
    },
    Command {
        section: "clients",
        section_desc: CLIENTS_SECTION,
        name: "revoke",
        desc: "Revoke every client of software/NAME[/VERSION] on every account of a host (--dry-run only reports)",
        host_selector: "host",
        args: &[HOST, SELECTOR],
        dry_run: true,
    },
    Command {
        section: "clients",
        section_desc: CLIENTS_SECTION,
        name: "prune",
        desc: "Delete client records past client_management_retention and over client_management_max_clients now \
               (--dry-run only counts)",
        host_selector: "host",
        args: &[HOST],
        dry_run: true,
    },
];

/// What a shell command answers (or prints on the way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// `user clients` / `user revoke_client` without a JID that names an account.
    NoJid,
    NoSuchAccount(&'a str),
    Unreadable,
    NoClients,
    Clients(usize),
    NoSelector,
    Revoked,
    /// `user revoke_client` failed with this error name.
    RevocationFailed(&'a str),
    /// A host-wide walk, every so many accounts.
    Progress(usize),
}

impl<'a> Message<'a> {
    /// The message the Lua module names `name` (`no-jid`, `no-such-account` with a JID,
    /// `unreadable`, `no-clients`, `clients` with a count, `revoked`,
    /// `revocation-failed` with an error name, `progress` with a count); `None` for another
    /// name or a missing argument.
    pub fn named(name: &str, number: Option<usize>, word: Option<&'a str>) -> Option<Self> {
        Some(match name {
            "no-jid" => Message::NoJid,
            "no-such-account" => Message::NoSuchAccount(word?),
            "unreadable" => Message::Unreadable,
            "no-clients" => Message::NoClients,
            "clients" => Message::Clients(number?),
            "revoked" => Message::Revoked,
            "revocation-failed" => Message::RevocationFailed(word?),
            "progress" => Message::Progress(number?),
            _ => return None,
        })
    }

    pub fn text(&self) -> String {
        match self {
            Message::NoJid => "Supply the JID of an account".to_owned(),
            Message::NoSuchAccount(jid) => format!("No such account: {jid}"),
            Message::Unreadable => "Unable to read client data, see the log".to_owned(),
            Message::NoClients => "No clients associated with this account".to_owned(),
            Message::Clients(count) => format!("{count} client(s)"),
            Message::NoSelector => "Supply what to revoke: client/ID, grant/ID or software/NAME[/VERSION]".to_owned(),
            Message::Revoked => "Client access revoked".to_owned(),
            Message::RevocationFailed(name) => crate::errors::revocation_failure_text(name),
            Message::Progress(accounts) => format!("Processed {accounts} accounts..."),
        }
    }
}

/// What `user revoke_client` answers when it is given no selector (nothing, or an empty one;
/// its bytes, as they came).
pub fn selector_problem(selector: Option<&[u8]>) -> Option<String> {
    selector.is_none_or(<[u8]>::is_empty).then(|| Message::NoSelector.text())
}

fn dry_run_prefix(dry_run: bool) -> &'static str {
    if dry_run {
        "Dry run: "
    } else {
        ""
    }
}

// ------------------------------------------------------------------------ clients stats

const STATS_COLUMNS: [Column; 5] = [
    Column { title: "Software", width: Width::Fill, right: false, default: "(unknown)" },
    Column { title: "Version", width: Width::Fixed(12), right: false, default: "-" },
    Column { title: "Accounts", width: Width::Fixed(9), right: true, default: "" },
    Column { title: "Clients", width: Width::Fixed(8), right: true, default: "" },
    Column { title: "Last seen", width: Width::Fixed(11), right: false, default: "-" },
];

/// `clients stats`: the table (`width` is the terminal's), then a line about the accounts that
/// could not be read (`unreadable`), if any.
pub fn stats_lines(stats: &SoftwareStats, unreadable: usize, width: f64) -> Vec<String> {
    let rows: Vec<Vec<Option<String>>> = stats
        .rows()
        .iter()
        .map(|row| {
            vec![
                row.software.as_deref().map(stats_cell),
                row.version.as_deref().map(stats_cell),
                Some(row.accounts.to_string()),
                Some(row.clients.to_string()),
                row.last_seen.and_then(format_day),
            ]
        })
        .collect();
    let mut lines = table_lines(&STATS_COLUMNS, &rows, width);
    if unreadable > 0 {
        lines.push(format!("{unreadable} account(s) could not be read, see the log"));
    }
    lines
}

/// `clients stats`' last word.
pub fn stats_summary(stats: &SoftwareStats) -> String {
    format!("{} client(s) on {} account(s)", stats.clients, stats.accounts)
}

// ----------------------------------------------------------------------- clients revoke

/// `clients revoke HOST software/…`, one account at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostRevocation {
    dry_run: bool,
    revoked: usize,
    password_protected: usize,
    failed: usize,
}

pub const SOFTWARE_ONLY: &str = "Supply software/NAME or software/NAME/VERSION";

impl HostRevocation {
    /// Host-wide, only a software selector makes sense (ids belong to one account); otherwise
    /// the text that says so.
    pub fn new(selector: Option<&str>, dry_run: bool) -> Result<Self, &'static str> {
        match selector.and_then(parse_selector) {
            Some(parsed) if parsed.kind() == "software" => Ok(Self { dry_run, ..Self::default() }),
            _ => Err(SOFTWARE_ONLY),
        }
    }

    /// An account whose clients could not be read.
    pub fn unreadable(&mut self) {
        self.failed += 1;
    }

    /// An account's plan: how many clients it revokes and how many need a password change.
    /// Returns whether to carry it out (then tell [`Self::carried_out`] how that went).
    pub fn plan(&mut self, revoked: usize, password_protected: usize) -> bool {
        self.password_protected += password_protected;
        if self.dry_run || revoked == 0 {
            self.revoked += revoked;
            return false;
        }
        true
    }

    pub fn carried_out(&mut self, revoked: usize, complete: bool) {
        if complete {
            self.revoked += revoked;
        } else {
            self.failed += revoked;
        }
    }

    pub fn summary(&self) -> String {
        format!(
            "{}{} client(s) {}, {} need a password reset, {} failed",
            dry_run_prefix(self.dry_run),
            self.revoked,
            if self.dry_run { "would be revoked" } else { "revoked" },
            self.password_protected,
            self.failed
        )
    }
}

// ------------------------------------------------------------------------ clients prune

/// `clients prune HOST` (and the daily prune), one account at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPrune {
    dry_run: bool,
    pub deleted: usize,
    pub accounts: usize,
    pub failed: usize,
}

impl HostPrune {
    pub fn new(dry_run: bool) -> Self {
        Self { dry_run, ..Self::default() }
    }

    /// An account that deleted (or, in a dry run, would delete) this many records.
    pub fn pruned(&mut self, deleted: usize) {
        if deleted > 0 {
            self.deleted += deleted;
            self.accounts += 1;
        }
    }

    /// An account that could not be read or stored.
    pub fn failed(&mut self) {
        self.failed += 1;
    }

    pub fn summary(&self) -> String {
        format!(
            "{}{} client record(s) {} from {} account(s), {} account(s) failed",
            dry_run_prefix(self.dry_run),
            self.deleted,
            if self.dry_run { "would be deleted" } else { "deleted" },
            self.accounts,
            self.failed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listing::list_entries;
    use crate::stats::tests::account;

    #[test]
    fn messages() {
        assert_eq!(Message::NoSuchAccount("a@b").text(), "No such account: a@b");
        assert_eq!(Message::Clients(3).text(), "3 client(s)");
        assert_eq!(Message::RevocationFailed("item-not-found").text(), "Client not found");
        assert_eq!(Message::RevocationFailed("odd").text(), "odd");
        assert_eq!(Message::Progress(500).text(), "Processed 500 accounts...");
        assert_eq!(Message::named("clients", Some(2), None), Some(Message::Clients(2)));
        assert_eq!(Message::named("no-such-account", None, Some("x@y")), Some(Message::NoSuchAccount("x@y")));
        assert_eq!(Message::named("clients", None, Some("2")), None, "a count is a number");
        assert_eq!(Message::named("nonsense", None, None), None);
    }

    #[test]
    fn revoke_client_needs_a_selector() {
        assert!(selector_problem(None).is_some_and(|t| t.starts_with("Supply what to revoke")));
        assert!(selector_problem(Some(b"")).is_some());
        assert_eq!(selector_problem(Some(b"client/x")), None);
        assert_eq!(selector_problem(Some(b"\xff")), None);
    }

    #[test]
    fn host_wide_revocation_takes_software_only() {
        assert_eq!(HostRevocation::new(Some("client/x"), false), Err(SOFTWARE_ONLY));
        assert_eq!(HostRevocation::new(None, false), Err(SOFTWARE_ONLY));
        assert!(HostRevocation::new(Some("software/Gajim/1.9"), false).is_ok());
    }

    #[test]
    fn host_wide_revocation_tallies() {
        let mut walk = HostRevocation::new(Some("software/Gajim"), false).unwrap();
        assert!(walk.plan(2, 1));
        walk.carried_out(2, true);
        assert!(!walk.plan(0, 3));
        assert!(walk.plan(4, 0));
        walk.carried_out(4, false);
        walk.unreadable();
        assert_eq!(walk.summary(), "2 client(s) revoked, 4 need a password reset, 5 failed");
        let mut dry = HostRevocation::new(Some("software/Gajim"), true).unwrap();
        assert!(!dry.plan(2, 1));
        assert_eq!(dry.summary(), "Dry run: 2 client(s) would be revoked, 1 need a password reset, 0 failed");
    }

    #[test]
    fn prune_tallies() {
        let mut prune = HostPrune::new(false);
        prune.pruned(3);
        prune.pruned(0);
        prune.failed();
        assert_eq!(prune.summary(), "3 client record(s) deleted from 1 account(s), 1 account(s) failed");
        assert_eq!(HostPrune::new(true).summary(), "Dry run: 0 client record(s) would be deleted from 0 account(s), 0 account(s) failed");
    }

    const DAY: i64 = 1_795_742_465; // 2026-11-27

    /// As util.human.io draws it (checked against Prosody 13.0.1's `clients stats`).
    #[test]
    fn the_stats_table_is_drawn_as_prosody_draws_tables() {
        let mut stats = SoftwareStats::new();
        stats.add_account(&list_entries(&account(&[(Some("Gajim"), Some("1.9"), DAY), (None, None, DAY), (Some("A | B"), Some(""), DAY)])));
        let lines = stats_lines(&stats, 2, 80.0);
        assert_eq!(
            lines,
            [
                "Software                     | Version      |  Accounts |  Clients | Last seen  ",
                "A \u{A6} B                        |              |         1 |        1 | 2026-11-27 ",
                "Gajim                        | 1.9          |         1 |        1 | 2026-11-27 ",
                "(unknown)                    | -            |         1 |        1 | 2026-11-27 ",
                "2 account(s) could not be read, see the log",
            ]
        );
        assert_eq!(stats_summary(&stats), "3 client(s) on 1 account(s)");
        let narrow = stats_lines(&stats, 0, 56.0);
        assert_eq!(narrow[2], "Gaj\u{2026} | 1.9          |         1 |        1 | 2026-11-27 ");
        let none = stats_lines(&stats, 0, 40.0);
        assert_eq!(none[1], "\u{2026} |              |         1 |        1 | 2026-11-27 ");
    }
}
