//! Failed web logins, limited per IP address and per account: each failure fills a bucket that
//! drains evenly over the window; a full bucket refuses further attempts (before the password
//! is even checked) until it has drained below full. The clock comes from the caller.
//!
//! Memory is bounded: at most [`MAX_KEYS`] buckets of each kind; drained ones go first, then
//! the one idle longest.

use std::collections::HashMap;

pub const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Failures allowed in a row.
    pub attempts: f64,
    /// Seconds for a full bucket to drain.
    pub window: f64,
}

impl Limit {
    fn drained(self, level: f64, since: f64) -> f64 {
        if self.window <= 0.0 {
            return 0.0;
        }
        (level - since.max(0.0) * self.attempts / self.window).max(0.0)
    }
}

#[derive(Debug, Default)]
struct Buckets {
    /// key → (level after the last failure, when).
    levels: HashMap<String, (f64, f64)>,
}

impl Buckets {
    fn level(&self, limit: Limit, key: &str, now: f64) -> f64 {
        self.levels.get(key).map_or(0.0, |&(level, at)| limit.drained(level, now - at))
    }

    fn add(&mut self, limit: Limit, key: &str, now: f64) {
        let level = self.level(limit, key, now) + 1.0;
        if !self.levels.contains_key(key) && self.levels.len() >= MAX_KEYS {
            self.levels.retain(|_, &mut (level, at)| limit.drained(level, now - at) > 0.0);
            if self.levels.len() >= MAX_KEYS {
                let oldest = self.levels.iter().min_by(|a, b| a.1 .1.total_cmp(&b.1 .1)).map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    self.levels.remove(&oldest);
                }
            }
        }
        self.levels.insert(key.to_owned(), (level, now));
    }
}

#[derive(Debug)]
pub struct LoginLimiter {
    pub per_ip: Limit,
    pub per_account: Limit,
    ips: Buckets,
    accounts: Buckets,
}

impl LoginLimiter {
    pub fn new(per_ip: Limit, per_account: Limit) -> LoginLimiter {
        LoginLimiter { per_ip, per_account, ips: Buckets::default(), accounts: Buckets::default() }
    }

    /// May a login from `ip` to `account` be tried now?
    pub fn allows(&self, ip: &str, account: &str, now: f64) -> bool {
        self.ips.level(self.per_ip, ip, now) + 1.0 <= self.per_ip.attempts
            && self.accounts.level(self.per_account, account, now) + 1.0 <= self.per_account.attempts
    }

    /// A login failed (or was refused by the limit: that counts too).
    pub fn failed(&mut self, ip: &str, account: &str, now: f64) {
        self.ips.add(self.per_ip, ip, now);
        self.accounts.add(self.per_account, account, now);
    }

    /// A login succeeded: the account's failures are forgotten, the address's are not.
    pub fn succeeded(&mut self, account: &str) {
        self.accounts.levels.remove(account);
    }

    pub fn tracked(&self) -> (usize, usize) {
        (self.ips.levels.len(), self.accounts.levels.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> LoginLimiter {
        LoginLimiter::new(Limit { attempts: 10.0, window: 600.0 }, Limit { attempts: 3.0, window: 300.0 })
    }

    #[test]
    fn an_account_is_limited_after_its_attempts_and_drains_over_the_window() {
        let mut l = limiter();
        for _ in 0..3 {
            assert!(l.allows("1.2.3.4", "alice", 0.0));
            l.failed("1.2.3.4", "alice", 0.0);
        }
        assert!(!l.allows("1.2.3.4", "alice", 0.0));
        assert!(!l.allows("5.6.7.8", "alice", 0.0), "per account, from any address");
        assert!(l.allows("1.2.3.4", "bob", 0.0), "other accounts still work");
        assert!(!l.allows("1.2.3.4", "alice", 99.0));
        assert!(l.allows("1.2.3.4", "alice", 100.0), "one attempt back after a third of the window");
        l.succeeded("alice");
        assert!(l.allows("1.2.3.4", "alice", 100.0));
    }

    #[test]
    fn an_address_is_limited_across_accounts() {
        let mut l = limiter();
        for i in 0..10 {
            assert!(l.allows("1.2.3.4", &format!("user{i}"), 0.0));
            l.failed("1.2.3.4", &format!("user{i}"), 0.0);
        }
        assert!(!l.allows("1.2.3.4", "fresh", 0.0));
        assert!(l.allows("9.9.9.9", "fresh", 0.0));
    }

    #[test]
    fn memory_is_bounded() {
        let mut l = limiter();
        for i in 0..(MAX_KEYS + 50) {
            l.failed(&format!("ip{i}"), &format!("user{i}"), i as f64 * 0.001);
        }
        let (ips, accounts) = l.tracked();
        assert!(ips <= MAX_KEYS && accounts <= MAX_KEYS);
        // Drained buckets go first.
        l.failed("late", "late", 1.0e9);
        assert_eq!(l.tracked(), (1, 1));
    }
}
