//! The server's per-request limiter: a fixed-window token bucket with go-limiter's
//! semantics, and the `X-RateLimit-*` / `Retry-After` values it produces.
//!
//! One bucket (the simulator has one realm and one client IP). Windows are anchored at
//! the bucket's first use and follow each other back to back; a new window refills the
//! bucket. Every request that passed the API key check takes one token, whatever its
//! batch size (`pkg/ratelimit/limitware/middleware.go:92-173`). Dates are Go
//! `time.RFC1123` of a UTC time, whole seconds, ending in `UTC`.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// The request limiter's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Tokens per window (`RATE_LIMIT_TOKENS`, 120 by default, 60 in the reference deployment).
    pub tokens: u32,
    /// The window (`RATE_LIMIT_INTERVAL`, one minute).
    pub interval: Duration,
}

impl RateLimit {
    /// `tokens` per minute.
    pub fn per_minute(tokens: u32) -> Self {
        Self {
            tokens,
            interval: Duration::from_secs(60),
        }
    }
}

/// What one request got from the limiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// `X-RateLimit-Limit`.
    pub limit: u32,
    /// `X-RateLimit-Remaining`.
    pub remaining: u32,
    /// `X-RateLimit-Reset` (and `Retry-After` on a 429).
    pub reset: String,
}

/// The bucket.
#[derive(Debug)]
pub struct Limiter {
    config: Option<RateLimit>,
    start: Option<Instant>,
    tick: u64,
    tokens: u32,
}

impl Limiter {
    /// A limiter; `None` is the NOOP store, which allows everything.
    pub fn new(config: Option<RateLimit>) -> Self {
        Self {
            config,
            start: None,
            tick: 0,
            tokens: 0,
        }
    }

    /// Takes one token at `now`.
    pub fn take(&mut self, now: Instant) -> Taken {
        let Some(config) = self
            .config
            .filter(|c| c.tokens > 0 && !c.interval.is_zero())
        else {
            // The NOOP store answers zeros and ok (go-limiter noopstore).
            return Taken {
                allowed: true,
                limit: 0,
                remaining: 0,
                reset: UNIX_EPOCH_RFC1123.to_owned(),
            };
        };
        let start = *self.start.get_or_insert_with(|| {
            self.tokens = config.tokens;
            now
        });
        let tick = (now.duration_since(start).as_nanos() / config.interval.as_nanos()) as u64;
        if tick > self.tick {
            self.tick = tick;
            self.tokens = config.tokens;
        }
        let window_end = start + config.interval * (self.tick as u32 + 1);
        let reset = wall_clock_of(window_end, now);
        let allowed = self.tokens > 0;
        if allowed {
            self.tokens -= 1;
        }
        Taken {
            allowed,
            limit: config.tokens,
            remaining: self.tokens,
            reset: rfc1123_utc(reset),
        }
    }
}

/// [`rfc1123_utc`] of the Unix epoch, the NOOP store's reset (a test keeps them equal);
/// spelled out because it is answered on every request when no limit is set.
const UNIX_EPOCH_RFC1123: &str = "Thu, 01 Jan 1970 00:00:00 UTC";

/// The wall-clock time of a tokio instant.
fn wall_clock_of(at: Instant, now: Instant) -> SystemTime {
    SystemTime::now() + at.saturating_duration_since(now)
}

/// Go's `time.RFC1123` of a UTC time: `Tue, 15 Jun 2021 18:01:00 UTC`, truncated to
/// whole seconds.
pub fn rfc1123_utc(at: SystemTime) -> String {
    let at: DateTime<Utc> = at.into();
    at.format("%a, %d %b %Y %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_623_780_060_999);
        assert_eq!(rfc1123_utc(at), "Tue, 15 Jun 2021 18:01:00 UTC");
        assert_eq!(rfc1123_utc(SystemTime::UNIX_EPOCH), UNIX_EPOCH_RFC1123);
        assert_eq!(UNIX_EPOCH_RFC1123, "Thu, 01 Jan 1970 00:00:00 UTC");
    }

    #[tokio::test(start_paused = true)]
    async fn fixed_windows_anchored_at_first_use() {
        let mut limiter = Limiter::new(Some(RateLimit {
            tokens: 2,
            interval: Duration::from_secs(10),
        }));
        let t0 = Instant::now();
        assert!(limiter.take(t0).allowed);
        let second = limiter.take(t0 + Duration::from_secs(3));
        assert!(second.allowed);
        assert_eq!(second.remaining, 0);
        let third = limiter.take(t0 + Duration::from_secs(9));
        assert!(!third.allowed);
        assert_eq!((third.limit, third.remaining), (2, 0));
        // The next window refills, whatever happened in between.
        let fourth = limiter.take(t0 + Duration::from_secs(10));
        assert!(fourth.allowed);
        assert_eq!(fourth.remaining, 1);
        let later = limiter.take(t0 + Duration::from_secs(35));
        assert!(later.allowed);
        assert_eq!(later.remaining, 1);
    }

    #[test]
    fn the_noop_store_reports_zeros() {
        let mut limiter = Limiter::new(None);
        let taken = limiter.take(Instant::now());
        assert!(taken.allowed);
        assert_eq!((taken.limit, taken.remaining), (0, 0));
        assert_eq!(taken.reset, "Thu, 01 Jan 1970 00:00:00 UTC");
    }
}
