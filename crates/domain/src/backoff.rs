//! Exponential backoff with full jitter: the one retry schedule every adapter and the
//! pipeline share.
//!
//! Attempt `n` (from 0) waits a uniformly random time in `[0, min(cap, base · 2ⁿ)]`
//! ("full jitter", as Twilio's own client and the AWS architecture blog recommend), so
//! many workers that failed together do not retry together. The randomness is passed in,
//! which keeps this pure and its tests exact.

use std::time::Duration;

/// A capped exponential schedule with a bounded number of retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first retry's wait.
    pub base: Duration,
    /// The largest ceiling any wait may have.
    pub cap: Duration,
    /// How many retries follow the first attempt.
    pub max_retries: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(10),
            max_retries: 4,
        }
    }
}

impl Backoff {
    /// The ceiling of the wait before retry `attempt` (0-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The wait before retry `attempt`, given a uniform random `unit` in `[0, 1]`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        self.ceiling(attempt).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// Whether another retry is allowed after `retries_done` retries.
    pub fn allows(&self, retries_done: u32) -> bool {
        retries_done < self.max_retries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_to_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            max_retries: 3,
        };
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(2), Duration::from_millis(400));
        assert_eq!(b.ceiling(4), Duration::from_secs(1));
        assert_eq!(b.ceiling(200), Duration::from_secs(1));
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let b = Backoff::default();
        assert_eq!(b.delay(1, 0.0), Duration::ZERO);
        assert_eq!(b.delay(1, 1.0), b.ceiling(1));
        assert_eq!(b.delay(1, 0.5), b.ceiling(1) / 2);
        assert_eq!(
            b.delay(1, 7.0),
            b.ceiling(1),
            "out-of-range randomness is clamped"
        );
    }

    #[test]
    fn bounds_the_number_of_retries() {
        let b = Backoff::default();
        assert!(b.allows(3));
        assert!(!b.allows(4));
    }
}
