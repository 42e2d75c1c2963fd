//! Pacing: keeps our requests inside the server's request limiter so that we are never
//! the cause of a 429.
//!
//! The server allows N requests per fixed one-minute window per (realm, egress IP),
//! whatever the batch size (`pkg/ratelimit/limitware/middleware.go:92-173`). Two layers
//! keep us under it:
//!
//! 1. A `governor` GCRA limiter with a burst of one, so requests leave evenly spaced at
//!    the configured budget divided by the worker count, less a small [`HEADROOM`]. The
//!    server's window is anchored at its first request and our requests reach it with
//!    some jitter, so pacing at exactly N a minute would now and then put an N+1st
//!    request inside one window.
//! 2. The server's own `X-RateLimit-*` headers, and the limiter's 429: when
//!    `X-RateLimit-Limit` is above 0 and `X-RateLimit-Remaining` is 0, nothing is sent
//!    before `X-RateLimit-Reset`; after a 429, nothing before its `Retry-After`. With the
//!    NOOP store the server sends `Limit: 0, Remaining: 0`, which means "no limit".
//!
//! Time is tokio time (governor runs on a tokio clock), so tests can pause it.

use std::ops::Add;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use reqwest::header::HeaderMap;
use tokio::time::Instant;

use ca_notify_http::retry_after::{self, RetryAt};

/// The share of the budget we leave unused, so that arrival jitter at the server cannot
/// put one request too many into its fixed window.
pub const HEADROOM: f64 = 0.02;

/// The largest gap we let governor's jitter-free waiters spread over, so that many
/// callers woken at once do not all retry at the same instant.
const WAKE_SPREAD: Duration = Duration::from_millis(2);

/// Why a request may not be sent before the caller's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotBefore(pub Instant);

/// The server's limiter state as one answer's headers describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// `X-RateLimit-Limit`: tokens per interval (0 with the NOOP store).
    pub limit: u64,
    /// `X-RateLimit-Remaining`.
    pub remaining: u64,
    /// `X-RateLimit-Reset`: when the current window ends.
    pub reset: Option<RetryAt>,
}

impl RateLimitHeaders {
    /// Reads the headers, `None` when the answer has none (e.g. a 401, which returns
    /// before the limiter runs).
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let number =
            |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        Some(Self {
            limit: number("x-ratelimit-limit")?,
            remaining: number("x-ratelimit-remaining")?,
            reset: headers
                .get("x-ratelimit-reset")
                .and_then(|v| v.to_str().ok())
                .and_then(retry_after::parse),
        })
    }

    /// The instant before which nothing may be sent, when the window is spent.
    pub fn hold_until(&self, now_wall: SystemTime, now: Instant) -> Option<Instant> {
        if self.limit == 0 || self.remaining > 0 {
            return None;
        }
        // Spent, but no readable reset: wait out a whole window rather than guess low.
        let until = self.reset.map_or(now + Duration::from_secs(60), |reset| {
            now + reset.delay_from(now_wall)
        });
        (until > now).then_some(until)
    }
}

/// A tokio-time clock for governor, so paused-time tests control pacing.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

/// A tokio instant as governor's clock reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokioInstant(Instant);

impl Add<Nanos> for TokioInstant {
    type Output = Self;

    fn add(self, other: Nanos) -> Self {
        Self(self.0 + Duration::from(other))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }

    fn saturating_sub(&self, duration: Nanos) -> Self {
        Self(self.0.checked_sub(duration.into()).unwrap_or(self.0))
    }
}

impl Clock for TokioClock {
    type Instant = TokioInstant;

    fn now(&self) -> TokioInstant {
        TokioInstant(Instant::now())
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>;

/// Paces every request one client sends; shared by all its callers.
pub struct Pacer {
    limiter: Limiter,
    interval: Duration,
    hold: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("interval", &self.interval)
            .field("hold", &self.current_hold())
            .finish()
    }
}

impl Pacer {
    /// A pacer for `requests_per_minute` shared by `workers` (both at least 1).
    pub fn new(requests_per_minute: u32, workers: u32) -> Self {
        let per_worker = f64::from(requests_per_minute.max(1)) / f64::from(workers.max(1));
        let interval = Duration::from_secs_f64(60.0 / (per_worker * (1.0 - HEADROOM)));
        let quota = Quota::with_period(interval).expect("the interval is above zero");
        Self {
            limiter: RateLimiter::direct_with_clock(quota, TokioClock),
            interval,
            hold: Mutex::new(None),
        }
    }

    /// The spacing between two requests.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits until a request may be sent, or says when it could be if that is after
    /// `deadline` (then nothing is waited for and no slot is taken).
    ///
    /// # Errors
    /// [`NotBefore`] with the earliest instant a request could go.
    pub async fn acquire(&self, deadline: Instant) -> Result<(), NotBefore> {
        loop {
            if let Some(until) = self.current_hold() {
                if until > deadline {
                    return Err(NotBefore(until));
                }
                tokio::time::sleep_until(until).await;
                continue;
            }
            match self.limiter.check() {
                Ok(()) => {
                    // A 429 or a spent window seen while we waited wins over the slot.
                    if self.current_hold().is_none() {
                        return Ok(());
                    }
                }
                Err(not_until) => {
                    let earliest = not_until.earliest_possible().0;
                    if earliest > deadline {
                        return Err(NotBefore(earliest));
                    }
                    let spread = WAKE_SPREAD.mul_f64(rand::random::<f64>());
                    tokio::time::sleep_until(earliest + spread).await;
                }
            }
        }
    }

    /// Holds every request until `until` (a 429's `Retry-After`, or a spent window).
    pub fn hold_until(&self, until: Instant) {
        let mut hold = self
            .hold
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if hold.is_none_or(|current| current < until) {
            *hold = Some(until);
        }
    }

    /// Learns from an answer's `X-RateLimit-*` headers.
    pub fn observe(&self, headers: &RateLimitHeaders, now_wall: SystemTime, now: Instant) {
        if let Some(until) = headers.hold_until(now_wall, now) {
            tracing::debug!(
                limit = headers.limit,
                wait_ms = until.saturating_duration_since(now).as_millis() as u64,
                "The server's request window is spent; holding until it resets."
            );
            self.hold_until(until);
        }
    }

    /// The hold still in force, if any.
    pub fn current_hold(&self) -> Option<Instant> {
        let mut hold = self
            .hold
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *hold {
            Some(until) if until > Instant::now() => Some(until),
            Some(_) => {
                *hold = None;
                None
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    /// Our wake spread plus the tokio timer wheel's millisecond rounding.
    const SLACK: Duration = Duration::from_millis(3);

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    #[test]
    fn divides_the_budget_by_the_workers_and_keeps_headroom() {
        let one = Pacer::new(120, 1);
        let expected = 0.5 / (1.0 - HEADROOM);
        assert!((one.interval().as_secs_f64() - expected).abs() < 1e-9);
        let four = Pacer::new(120, 4);
        assert!((four.interval().as_secs_f64() - 4.0 * expected).abs() < 1e-9);
    }

    #[tokio::test(start_paused = true)]
    async fn spaces_requests_evenly_at_the_budget() {
        let pacer = Pacer::new(60, 1);
        let far = Instant::now() + Duration::from_secs(3600);
        let start = Instant::now();
        let mut sent_at = Vec::new();
        for _ in 0..5 {
            pacer.acquire(far).await.expect("before the deadline");
            sent_at.push(Instant::now() - start);
        }
        assert_eq!(sent_at[0], Duration::ZERO, "the first request goes at once");
        for pair in sent_at.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap >= pacer.interval(), "{gap:?}");
            assert!(gap <= pacer.interval() + SLACK, "{gap:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_budget() {
        let pacer = std::sync::Arc::new(Pacer::new(120, 1));
        let far = Instant::now() + Duration::from_secs(3600);
        let start = Instant::now();
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let pacer = pacer.clone();
                tokio::spawn(async move {
                    pacer.acquire(far).await.expect("in time");
                    Instant::now()
                })
            })
            .collect();
        let mut times = Vec::new();
        for task in tasks {
            times.push(task.await.expect("task"));
        }
        times.sort();
        let span = *times.last().expect("ten") - start;
        assert!(span >= pacer.interval() * 9, "{span:?}");
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= pacer.interval(),
                "{:?}",
                pair[1] - pair[0]
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn refuses_to_wait_past_the_deadline_without_taking_a_slot() {
        let pacer = Pacer::new(60, 1);
        let far = Instant::now() + Duration::from_secs(3600);
        pacer.acquire(far).await.expect("first");
        let soon = Instant::now() + Duration::from_millis(100);
        let NotBefore(when) = pacer.acquire(soon).await.expect_err("too soon");
        assert!(when > soon);
        assert!(when <= Instant::now() + pacer.interval());
        // Nothing was consumed: the next caller with time gets exactly that slot.
        pacer.acquire(far).await.expect("later");
        assert!(Instant::now() >= when && Instant::now() <= when + SLACK);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_blocks_until_it_ends() {
        let pacer = Pacer::new(6000, 1);
        let start = Instant::now();
        pacer.hold_until(start + Duration::from_secs(30));
        pacer.hold_until(start + Duration::from_secs(10)); // a shorter hold never shortens it
        let err = pacer
            .acquire(start + Duration::from_secs(5))
            .await
            .expect_err("held");
        assert_eq!(err, NotBefore(start + Duration::from_secs(30)));
        pacer
            .acquire(start + Duration::from_secs(60))
            .await
            .expect("after the hold");
        assert!(Instant::now() >= start + Duration::from_secs(30));
        assert!(Instant::now() <= start + Duration::from_secs(30) + SLACK);
        assert_eq!(pacer.current_hold(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_window_holds_until_the_reset() {
        let now = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_623_780_000);
        let spent = RateLimitHeaders::from_headers(&headers(&[
            ("x-ratelimit-limit", "60"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "Tue, 15 Jun 2021 18:01:00 UTC"),
        ]))
        .expect("headers");
        assert_eq!(
            spent.hold_until(wall, now),
            Some(now + Duration::from_secs(61))
        );
        let pacer = Pacer::new(6000, 1);
        pacer.observe(&spent, wall, now);
        assert_eq!(pacer.current_hold(), Some(now + Duration::from_secs(61)));
    }

    #[test]
    fn remaining_tokens_or_the_noop_store_never_hold() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let left = RateLimitHeaders::from_headers(&headers(&[
            ("x-ratelimit-limit", "60"),
            ("x-ratelimit-remaining", "3"),
            ("x-ratelimit-reset", "Tue, 15 Jun 2021 18:01:00 UTC"),
        ]))
        .expect("headers");
        assert_eq!(left.hold_until(wall, now), None);
        // The NOOP store: Limit 0, Remaining 0, Reset at the epoch (contract §8.1).
        let noop = RateLimitHeaders::from_headers(&headers(&[
            ("x-ratelimit-limit", "0"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "Thu, 01 Jan 1970 00:00:00 UTC"),
        ]))
        .expect("headers");
        assert_eq!(noop.hold_until(wall, now), None);
        assert_eq!(RateLimitHeaders::from_headers(&HeaderMap::new()), None);
    }
}
