//! When to tell an account's other streams that a client got access: the first new client at
//! once, then at most one summary per account per interval, naming how many came in meanwhile.
//! A burst of 500 logins is one notice and one summary, not 500 messages.

use std::collections::HashMap;

use crate::model::Timestamp;
use crate::text::{new_client_notice, new_clients_summary};

/// A client that first got access (at `at`), and what it calls itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Announcement {
    pub software: Option<String>,
    pub device: Option<String>,
    pub at: Timestamp,
}

#[derive(Debug)]
struct Gate {
    last_sent: f64,
    held: usize,
    since: Timestamp,
    latest: Option<Announcement>,
}

/// What to do with an offered announcement.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    /// The notice to send now, if it is not held for the summary.
    pub notice: Option<String>,
    /// When to call [`NoticeGates::flush`] for the account, in seconds from now.
    pub check_in: Option<f64>,
}

/// What a flush says.
#[derive(Debug, Clone, PartialEq)]
pub enum Flush {
    /// Send `text` to every bound stream but those of clients first seen `since` or later
    /// (the summary is about them); flush again in `check_in` seconds.
    Summary { text: String, since: Timestamp, check_in: f64 },
    /// Too early: flush again in `check_in` seconds.
    Wait { check_in: f64 },
    /// Nothing held and the interval is over: the account's gate is gone.
    Done,
}

/// The gates of every account of a host that got a notice within the interval.
#[derive(Debug, Default)]
pub struct NoticeGates {
    gates: HashMap<String, Gate>,
}

impl NoticeGates {
    /// A client first got access; `listeners` says whether any other stream of the account
    /// would hear a notice now (without one, nothing is said and nothing is held back).
    pub fn offer(&mut self, username: &str, announcement: Announcement, listeners: bool, now: f64, interval: f64) -> Offer {
        match self.gates.get_mut(username) {
            // Held back while the interval runs, and after it until the summary is out.
            Some(gate) if now - gate.last_sent < interval || gate.held > 0 => {
                if gate.held == 0 {
                    gate.since = announcement.at;
                }
                gate.held += 1;
                gate.latest = Some(announcement);
                Offer { notice: None, check_in: Some((gate.last_sent + interval - now).max(0.0)) }
            }
            _ if !listeners => Offer { notice: None, check_in: None },
            _ => {
                let notice = new_client_notice(announcement.software.clone(), announcement.device.as_deref(), announcement.at);
                let gate = Gate { last_sent: now, held: 0, since: announcement.at, latest: None };
                self.gates.insert(username.to_owned(), gate);
                Offer { notice: Some(notice), check_in: Some(interval) }
            }
        }
    }

    pub fn flush(&mut self, username: &str, now: f64, interval: f64) -> Flush {
        let Some(gate) = self.gates.get_mut(username) else { return Flush::Done };
        let due = gate.last_sent + interval;
        if now < due {
            return Flush::Wait { check_in: due - now };
        }
        let Some(latest) = gate.latest.take() else {
            self.gates.remove(username);
            return Flush::Done;
        };
        let text = new_clients_summary(gate.held, gate.since, latest.software.as_deref(), latest.device.as_deref());
        let since = gate.since;
        gate.held = 0;
        gate.last_sent = now;
        Flush::Summary { text, since, check_in: interval }
    }

    /// The account is gone: nothing more is said about it.
    pub fn forget(&mut self, username: &str) {
        self.gates.remove(username);
    }

    pub fn len(&self) -> usize {
        self.gates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.gates.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(i: i64) -> Announcement {
        Announcement { software: Some(format!("App {i}")), device: Some("Phone".into()), at: 1_795_742_465 + i }
    }

    #[test]
    fn the_first_at_once_then_one_summary_per_interval() {
        let mut gates = NoticeGates::default();
        let t = 1_795_742_465.0;
        let first = gates.offer("u", client(0), true, t, 600.0);
        assert!(first.notice.as_deref().is_some_and(|n| n.contains("App 0")), "{first:?}");
        assert_eq!(first.check_in, Some(600.0));
        for i in 1..499 {
            let held = gates.offer("u", client(i), i % 2 == 0, t + 6.0 * i as f64 / 500.0, 600.0);
            assert_eq!(held.notice, None);
        }
        assert_eq!(gates.flush("u", t + 300.0, 600.0), Flush::Wait { check_in: 300.0 });
        // The summary is late (a busy server): what comes meanwhile joins it, nothing is lost.
        assert_eq!(gates.offer("u", client(499), true, t + 601.0, 600.0), Offer { notice: None, check_in: Some(0.0) });
        let Flush::Summary { text, since, check_in } = gates.flush("u", t + 600.0, 600.0) else { panic!("no summary") };
        assert!(text.starts_with("499 more new client(s) got access to your account since 2026-11-27 01:21 UTC. "), "{text}");
        assert!(text.contains("The latest calls itself “App 499” on “Phone”."), "the client's words quoted: {text}");
        assert_eq!(since, 1_795_742_466, "since the first held back");
        assert_eq!(check_in, 600.0);
        // Another account is not held back by this one.
        assert!(gates.offer("v", client(1), true, t + 601.0, 600.0).notice.is_some());
        assert_eq!(gates.offer("u", client(600), true, t + 700.0, 600.0).notice, None, "within the interval of the summary");
        assert!(matches!(gates.flush("u", t + 1200.0, 600.0), Flush::Summary { .. }));
        assert_eq!(gates.flush("u", t + 1800.0, 600.0), Flush::Done);
        assert_eq!(gates.offer("u", client(1), false, t + 1801.0, 600.0), Offer { notice: None, check_in: None }, "nobody to tell");
        assert!(gates.offer("u", client(1), true, t + 1801.0, 600.0).notice.is_some(), "a quiet interval later, at once again");
        gates.forget("u");
        gates.forget("v");
        assert!(gates.is_empty());
    }
}
