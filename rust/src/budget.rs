//! How many list and ad-hoc requests a stream may make: a token bucket per stream, refilled
//! at `per_minute` a minute and holding at most that many. A large listing is cheap to ask
//! for and costly to answer (and XEP-0198 keeps every unacknowledged copy), so each stream
//! gets a budget.

/// One stream's budget. The clock is passed in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestBudget {
    per_minute: u32,
    tokens: f64,
    at: f64,
}

impl RequestBudget {
    /// A full budget at `now`; `per_minute` 0 means no limit.
    pub fn new(per_minute: u32, now: f64) -> Self {
        RequestBudget { per_minute, tokens: f64::from(per_minute), at: now }
    }

    /// Spends one request at `now`: `Ok` when the budget allows it, else how many seconds
    /// until it would.
    pub fn spend(&mut self, now: f64) -> Result<(), f64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let rate = capacity / 60.0;
        let elapsed = (now - self.at).max(0.0);
        self.tokens = (self.tokens + elapsed * rate).min(capacity);
        self.at = now.max(self.at);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - self.tokens) / rate)
        }
    }
}

/// The text a refused request is answered with.
pub fn over_budget_text(wait: f64) -> String {
    format!("Too many requests; try again in {} s", wait.ceil().max(1.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_budget_then_one_request_per_refill() {
        let mut budget = RequestBudget::new(30, 1000.0);
        for _ in 0..30 {
            assert_eq!(budget.spend(1000.0), Ok(()));
        }
        let wait = budget.spend(1000.0).unwrap_err();
        assert!((wait - 2.0).abs() < 1e-9, "{wait}");
        assert!(budget.spend(1001.0).is_err());
        assert_eq!(budget.spend(1002.0), Ok(()));
        assert!(budget.spend(1002.0).is_err());
        assert_eq!(budget.spend(1000.0 + 3600.0), Ok(()), "refills up to the cap");
        assert_eq!(over_budget_text(1.2), "Too many requests; try again in 2 s");
    }

    #[test]
    fn zero_means_no_limit_and_clocks_going_back_do_not_refill() {
        let mut budget = RequestBudget::new(0, 0.0);
        for _ in 0..1000 {
            assert_eq!(budget.spend(0.0), Ok(()));
        }
        let mut budget = RequestBudget::new(1, 100.0);
        assert_eq!(budget.spend(100.0), Ok(()));
        assert!(budget.spend(50.0).is_err());
        assert!(budget.spend(100.0).is_err());
    }
}
