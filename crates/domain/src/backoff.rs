//! The one retry policy every adapter and the pipeline share: exponential backoff with
//! full jitter, an attempt budget, a server's `Retry-After`, and the caller's deadline.
//!
//! Attempt `n` (from 0) waits a uniformly random time in `[0, min(cap, base · 2ⁿ)]`
//! ("full jitter", as Twilio's own client and the AWS architecture blog recommend), so
//! many workers that failed together do not retry together. A server's `Retry-After` is a
//! floor under that wait: never retry before the server said to, never sooner than the
//! backoff either. [`Backoff::next_retry`] is the whole decision; the callers' loops only
//! carry it out (sleep on tokio's clock, which tests pause, and watch their stop signals).
//! The randomness is passed in, which keeps this pure and its tests exact; no crate fits
//! better (`docs/decisions/0006-one-retry-policy.md`).

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

    /// The wait before retry `retries_done` (0-based): the full-jitter delay for `unit`,
    /// or the server's `retry_after` when that is longer.
    pub fn wait(&self, retries_done: u32, unit: f64, retry_after: Option<Duration>) -> Duration {
        let jittered = self.delay(retries_done, unit);
        retry_after.map_or(jittered, |floor| floor.max(jittered))
    }

    /// The retry decision after a retryable failure, when `retries_done` retries have
    /// already been made: the wait before the next attempt, or why there is none. `room` is
    /// the time left until the last moment the next attempt may start (for a request that
    /// must finish before a deadline, the deadline less the request's longest duration).
    ///
    /// # Errors
    /// [`GiveUp::BudgetSpent`] when `max_retries` retries were made;
    /// [`GiveUp::PastDeadline`] when the wait would end after `room`.
    pub fn next_retry(
        &self,
        retries_done: u32,
        unit: f64,
        retry_after: Option<Duration>,
        room: Duration,
    ) -> Result<Duration, GiveUp> {
        if !self.allows(retries_done) {
            return Err(GiveUp::BudgetSpent);
        }
        let wait = self.wait(retries_done, unit, retry_after);
        if wait > room {
            return Err(GiveUp::PastDeadline(wait));
        }
        Ok(wait)
    }

    /// The retry decision after a server pushed back (a 429 of flow control, whose request
    /// was not processed): the same wait as [`Backoff::next_retry`] after `throttles`
    /// such answers, but no budget, since being told to slow down is not a failure of the
    /// request; only the deadline ends it.
    ///
    /// # Errors
    /// [`GiveUp::PastDeadline`] when the wait would end after `room`.
    pub fn next_throttled_retry(
        &self,
        throttles: u32,
        unit: f64,
        retry_after: Option<Duration>,
        room: Duration,
    ) -> Result<Duration, GiveUp> {
        let wait = self.wait(throttles, unit, retry_after);
        if wait > room {
            return Err(GiveUp::PastDeadline(wait));
        }
        Ok(wait)
    }
}

/// Why [`Backoff::next_retry`] allows no further attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// Every retry the budget allows was made.
    BudgetSpent,
    /// The wait (carried) would end after the last moment an attempt may start.
    PastDeadline(Duration),
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
        let room = Duration::from_secs(3600);
        assert!(b.next_retry(3, 1.0, None, room).is_ok());
        assert_eq!(b.next_retry(4, 0.0, None, room), Err(GiveUp::BudgetSpent));
    }

    #[test]
    fn retry_after_is_a_floor_under_the_jittered_wait() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            max_retries: 3,
        };
        assert_eq!(
            b.wait(0, 0.5, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        // A short Retry-After does not shorten the backoff.
        assert_eq!(
            b.wait(3, 1.0, Some(Duration::from_millis(1))),
            Duration::from_millis(800)
        );
        assert_eq!(b.wait(1, 0.5, None), Duration::from_millis(100));
    }

    #[test]
    fn no_wait_ends_after_the_room_left() {
        let b = Backoff::default();
        let room = Duration::from_secs(2);
        assert_eq!(
            b.next_retry(0, 0.0, Some(Duration::from_secs(30)), room),
            Err(GiveUp::PastDeadline(Duration::from_secs(30)))
        );
        assert_eq!(
            b.next_retry(0, 0.0, Some(room), room),
            Ok(room),
            "a wait that ends exactly at the last start is taken"
        );
        assert_eq!(
            b.next_retry(0, 0.0, None, Duration::ZERO),
            Ok(Duration::ZERO)
        );
    }

    #[test]
    fn a_throttled_retry_has_no_budget_but_keeps_the_deadline() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            max_retries: 1,
        };
        let room = Duration::from_secs(60);
        assert_eq!(
            b.next_throttled_retry(50, 1.0, None, room),
            Ok(Duration::from_secs(1)),
            "past the budget of failures, at the cap"
        );
        assert_eq!(
            b.next_throttled_retry(0, 0.0, Some(Duration::from_secs(3)), room),
            Ok(Duration::from_secs(3)),
            "Retry-After is the floor"
        );
        assert_eq!(
            b.next_throttled_retry(0, 0.0, Some(Duration::from_secs(90)), room),
            Err(GiveUp::PastDeadline(Duration::from_secs(90)))
        );
    }
}
