//! Pacing: the verification server sets the pace of our requests, so that we use its
//! whole request budget and are never the cause of a 429.
//!
//! The server's limiter is go-limiter's fixed-window bucket, one per (realm, egress IP):
//! `X-RateLimit-Limit` tokens per window, one taken per request whatever its batch size,
//! windows back to back from the bucket's first use, and a new window refills the bucket
//! (`sethvargo/go-limiter` `memorystore/store.go:323-357`). Every answer that got past the
//! limiter, a 429 included, carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
//! `X-RateLimit-Reset` (the window's end as Go `time.RFC1123`, whole seconds, `UTC`);
//! a 429 adds `Retry-After` with the same date (`pkg/ratelimit/limitware/middleware.go:
//! 129-142`). The NOOP store (the server's default) answers `Limit: 0`: no limiter.
//!
//! What the pacer does with that:
//!
//! * **Before the first answer** it knows nothing, so it starts carefully: one request at
//!   a time until an answer tells it the limiter's state.
//! * **`Limit: 0`**: no pacing beyond the callers' own concurrency (and the optional cap).
//! * **`Limit` > 0**: a window with `Remaining` tokens that ends at `Reset`. The tokens
//!   still ours are the smallest `Remaining` any answer of that window reported, less
//!   every request still in flight (each may take one after that answer; counting them
//!   all keeps the estimate a lower bound). Requests are spread evenly over the time
//!   left in the window, so the budget is used as it refills and no burst hits the
//!   server; when the tokens are spent, nothing leaves before the window ends. The end
//!   is read against the answer's own `Date` (both truncated by the server, so a second
//!   is added: the true end is never later than ours), which makes the pacer immune to a
//!   skewed local clock. When the window ends, the next one is assumed full less the
//!   requests in flight, until an answer names it; if none does by the time we expect
//!   it to end, the pacer starts carefully again.
//! * A request that may have reached the server and got no answer is charged one token.
//! * `workers` processes behind one egress IP share the server's window: each uses
//!   `Remaining / workers` of what it sees.
//! * **Cap**: `verification.requests_per_minute`, when set, also keeps our requests under
//!   that rate (even spacing at the cap divided by the workers, less [`HEADROOM`]), for a
//!   realm shared with other clients whose requests our headers cannot foresee.
//! * A 429's `Retry-After` (a limiter we misjudged, or another client) holds every
//!   request until then.
//!
//! Time is tokio time (governor runs on a tokio clock), so tests can pause it.

use std::ops::Add;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use reqwest::header::HeaderMap;
use tokio::sync::Notify;
use tokio::time::Instant;

use ca_notify_http::retry_after::{self, RetryAt};

/// The share of a configured cap we leave unused, so that arrival jitter at the server
/// cannot put one request too many into its fixed window.
pub const HEADROOM: f64 = 0.02;

/// The window length we assume for spreading requests over a window no answer has named
/// yet: the server's default `RATE_LIMIT_INTERVAL` (`pkg/ratelimit/config.go:47`). Only
/// the spacing depends on it, never the count of requests.
const ASSUMED_WINDOW: Duration = Duration::from_secs(60);

/// The largest gap we let governor's jitter-free waiters spread over, so that many
/// callers woken at once do not all retry at the same instant.
const WAKE_SPREAD: Duration = Duration::from_millis(2);

/// Why a request may not be sent before the caller's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotBefore(pub Instant);

/// The server's limiter state as one answer's headers describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// `X-RateLimit-Limit`: tokens per window (0 with the NOOP store).
    pub limit: u64,
    /// `X-RateLimit-Remaining`: tokens left in the window after this request's.
    pub remaining: u64,
    /// `X-RateLimit-Reset`: when the current window ends.
    pub reset: Option<RetryAt>,
    /// The answer's `Date`: the server's clock, to read `reset` against.
    pub date: Option<SystemTime>,
}

impl RateLimitHeaders {
    /// Reads the headers, `None` when the answer has none (e.g. a 401, which returns
    /// before the limiter runs).
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let text = |name: &str| headers.get(name)?.to_str().ok();
        let number = |name: &str| -> Option<u64> { text(name)?.trim().parse().ok() };
        Some(Self {
            limit: number("x-ratelimit-limit")?,
            remaining: number("x-ratelimit-remaining")?,
            reset: text("x-ratelimit-reset").and_then(retry_after::parse),
            date: match text("date").and_then(retry_after::parse) {
                Some(RetryAt::Date(at)) => Some(at),
                _ => None,
            },
        })
    }

    /// How long after the answer arrived the window ends, never earlier than it really
    /// does: the reset read against the server's `Date` when the answer has one (else
    /// our wall clock at arrival), plus the second both dates were truncated by. `None`
    /// without a readable reset.
    pub fn window_left(&self, now_wall: SystemTime) -> Option<Duration> {
        Some(self.reset?.delay_from(self.date.unwrap_or(now_wall)))
    }

    /// The reset as a wall-clock stamp on the server's clock, which names the window:
    /// every answer of one window carries the same one.
    fn stamp(&self, now_wall: SystemTime) -> Option<SystemTime> {
        match self.reset? {
            RetryAt::Date(at) => Some(at),
            RetryAt::After(delay) => {
                let at = self.date.unwrap_or(now_wall) + delay;
                let secs = at.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
                Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
            }
        }
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

/// The optional cap: even spacing at a configured rate.
struct Cap {
    limiter: Limiter,
    interval: Duration,
}

/// What the pacer has learned of the server's limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Learned {
    /// No answer has said yet (or the window we assumed was never named): one request
    /// at a time.
    Unknown,
    /// `Limit: 0`: the server does not limit requests.
    Unlimited,
    /// A window of a fixed-window limiter.
    Window(Window),
}

/// One window of the server's limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    /// `X-RateLimit-Limit`.
    limit: u64,
    /// The window's `X-RateLimit-Reset`; `None` for the window we entered by the clock
    /// and no answer has named yet.
    stamp: Option<SystemTime>,
    /// When it ends on our clock, never before the server's end (for an unnamed window,
    /// an estimate used only to spread requests).
    ends: Instant,
    /// A lower bound of the tokens left, not counting the requests in flight.
    remaining: u64,
    /// When the last request of ours left, to spread the next ones.
    last_start: Option<Instant>,
}

/// The pacer's state, behind one lock.
#[derive(Debug)]
struct State {
    learned: Learned,
    /// The newest window any answer named; answers from older windows are late news.
    newest: Option<SystemTime>,
    /// Requests that left and have not been settled.
    in_flight: u64,
    /// Nothing leaves before this (a 429's `Retry-After`).
    hold: Option<Instant>,
}

/// What a caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Send.
    Go,
    /// Wait until then, or until an answer changes the picture.
    At(Instant),
    /// Wait for an answer: nothing else tells when the next request may go.
    Answer,
}

impl State {
    /// Moves to the next window when ours has ended by the clock.
    fn roll(&mut self, now: Instant) {
        if let Learned::Window(window) = self.learned {
            if now >= window.ends {
                self.learned = match window.stamp {
                    // The server's next window is full, less what may already be in it.
                    Some(_) => Learned::Window(Window {
                        stamp: None,
                        ends: window.ends + ASSUMED_WINDOW,
                        remaining: window.limit,
                        last_start: None,
                        ..window
                    }),
                    // A window we assumed and no answer named: start carefully again.
                    None => Learned::Unknown,
                };
            }
        }
    }

    fn decide(&mut self, now: Instant, workers: u64) -> Decision {
        match self.hold {
            Some(until) if until > now => return Decision::At(until),
            Some(_) => self.hold = None,
            None => {}
        }
        self.roll(now);
        match self.learned {
            Learned::Unknown if self.in_flight == 0 => Decision::Go,
            Learned::Unknown => Decision::Answer,
            Learned::Unlimited => Decision::Go,
            Learned::Window(window) => {
                let ours = (window.remaining / workers).saturating_sub(self.in_flight);
                if ours == 0 {
                    // Spent until the window ends, unless an answer shows a request in
                    // flight did not take a token of this window.
                    return Decision::At(window.ends);
                }
                let at = window.last_start.map_or(now, |last| {
                    let left = window.ends.saturating_duration_since(last);
                    #[allow(clippy::cast_precision_loss)]
                    let gap = left.div_f64((ours + 1) as f64);
                    last + gap
                });
                if at <= now {
                    Decision::Go
                } else {
                    Decision::At(at)
                }
            }
        }
    }

    fn reserve(&mut self, now: Instant) {
        self.in_flight += 1;
        if let Learned::Window(window) = &mut self.learned {
            window.last_start = Some(now);
        }
    }

    /// Learns from an answer's headers, received at `now` (`now_wall` on our wall clock).
    fn learn(&mut self, headers: &RateLimitHeaders, now_wall: SystemTime, now: Instant) {
        if headers.limit == 0 {
            self.learned = Learned::Unlimited;
            return;
        }
        let (Some(left), Some(stamp)) = (headers.window_left(now_wall), headers.stamp(now_wall))
        else {
            // A limiter whose reset we cannot read: if it is spent, wait out a whole
            // window rather than guess low.
            if headers.remaining == 0 {
                self.hold_until(now + ASSUMED_WINDOW);
            }
            return;
        };
        if self.newest.is_some_and(|newest| stamp < newest) {
            return;
        }
        let ends = now + left;
        match &mut self.learned {
            Learned::Window(window) if window.stamp == Some(stamp) => {
                window.limit = headers.limit;
                window.remaining = window.remaining.min(headers.remaining);
                window.ends = window.ends.min(ends);
            }
            // The window we already left by the clock: late news.
            _ if self.newest == Some(stamp) => {}
            learned => {
                let last_start = match learned {
                    Learned::Window(window) => window.last_start,
                    _ => None,
                };
                *learned = Learned::Window(Window {
                    limit: headers.limit,
                    stamp: Some(stamp),
                    ends,
                    remaining: headers.remaining,
                    last_start,
                });
            }
        }
        self.newest = Some(stamp);
    }

    /// A request that may have taken a token and told us nothing.
    fn charge(&mut self) {
        if let Learned::Window(window) = &mut self.learned {
            window.remaining = window.remaining.saturating_sub(1);
        }
    }

    fn hold_until(&mut self, until: Instant) {
        if self.hold.is_none_or(|current| current < until) {
            self.hold = Some(until);
        }
    }
}

/// Paces every request one client sends; shared by all its callers.
pub struct Pacer {
    cap: Option<Cap>,
    workers: u64,
    state: Mutex<State>,
    changed: Notify,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("Pacer")
            .field("cap_interval", &self.cap_interval())
            .field("workers", &self.workers)
            .field("learned", &state.learned)
            .field("in_flight", &state.in_flight)
            .field("hold", &state.hold)
            .finish()
    }
}

/// Leave to send one request, from [`Pacer::acquire`]. Settle it with what came back:
/// [`Ticket::answered`], or [`Ticket::not_sent`] when the connection was never made.
/// Dropped unsettled, the request counts as one that may have taken a token.
#[must_use = "a ticket tells the pacer what the request came to"]
pub struct Ticket<'a> {
    pacer: &'a Pacer,
    settled: bool,
}

impl Ticket<'_> {
    /// The server answered at `now` (`now_wall` on our wall clock), with the limiter's
    /// headers when it sent them (an answer without them never reached the limiter).
    pub fn answered(
        mut self,
        headers: Option<&RateLimitHeaders>,
        now_wall: SystemTime,
        now: Instant,
    ) {
        self.settled = true;
        self.pacer.settle(|state| {
            if let Some(headers) = headers {
                state.learn(headers, now_wall, now);
            }
        });
    }

    /// The request never reached the server (no connection was made).
    pub fn not_sent(mut self) {
        self.settled = true;
        self.pacer.settle(|_| {});
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.pacer.settle(State::charge);
        }
    }
}

impl Pacer {
    /// A pacer led by the server's headers, for `workers` processes sharing its window
    /// (at least 1), under an optional cap of `requests_per_minute` for all of them.
    pub fn new(requests_per_minute: Option<u32>, workers: u32) -> Self {
        let workers = workers.max(1);
        let cap = requests_per_minute.map(|rpm| {
            let per_worker = f64::from(rpm.max(1)) / f64::from(workers);
            let interval = Duration::from_secs_f64(60.0 / (per_worker * (1.0 - HEADROOM)));
            let quota = Quota::with_period(interval).expect("the interval is above zero");
            Cap {
                limiter: RateLimiter::direct_with_clock(quota, TokioClock),
                interval,
            }
        });
        Self {
            cap,
            workers: u64::from(workers),
            state: Mutex::new(State {
                learned: Learned::Unknown,
                newest: None,
                in_flight: 0,
                hold: None,
            }),
            changed: Notify::new(),
        }
    }

    /// The spacing the cap imposes, if one is set.
    pub fn cap_interval(&self) -> Option<Duration> {
        self.cap.as_ref().map(|cap| cap.interval)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn settle(&self, update: impl FnOnce(&mut State)) {
        {
            let mut state = self.state();
            state.in_flight = state.in_flight.saturating_sub(1);
            update(&mut state);
        }
        self.changed.notify_waiters();
    }

    /// Waits until a request may be sent, or says when it could be if that is after
    /// `deadline` (then nothing is waited for and nothing is taken).
    ///
    /// # Errors
    /// [`NotBefore`] with the earliest instant a request could go; when only an answer
    /// still in flight can tell, just after `deadline`.
    pub async fn acquire(&self, deadline: Instant) -> Result<Ticket<'_>, NotBefore> {
        loop {
            // Registered before the state is read, so no answer in between is missed.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let now = Instant::now();
            let decision = {
                let mut state = self.state();
                match state.decide(now, self.workers) {
                    Decision::Go => match self.cap.as_ref().map(|cap| cap.limiter.check()) {
                        None | Some(Ok(())) => {
                            state.reserve(now);
                            return Ok(Ticket {
                                pacer: self,
                                settled: false,
                            });
                        }
                        Some(Err(not_until)) => Decision::At(not_until.earliest_possible().0),
                    },
                    other => other,
                }
            };
            let wake = match decision {
                Decision::Go => continue,
                Decision::At(at) if at > deadline => return Err(NotBefore(at)),
                Decision::At(at) => at + WAKE_SPREAD.mul_f64(rand::random::<f64>()),
                Decision::Answer if now >= deadline => {
                    return Err(NotBefore(deadline + Duration::from_millis(1)))
                }
                Decision::Answer => deadline,
            };
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Holds every request until `until` (a 429's `Retry-After`).
    pub fn hold_until(&self, until: Instant) {
        self.state().hold_until(until);
        self.changed.notify_waiters();
    }

    /// The hold still in force, if any.
    pub fn current_hold(&self) -> Option<Instant> {
        let mut state = self.state();
        match state.hold {
            Some(until) if until > Instant::now() => Some(until),
            Some(_) => {
                state.hold = None;
                None
            }
            None => None,
        }
    }

    /// What the pacer has learned of the server's limiter, for logs and `check`: the
    /// window's limit and the tokens it still counts on (`None` before any answer, and
    /// `Some((0, 0))` for a server without a limiter).
    pub fn learned_limit(&self) -> Option<(u64, u64)> {
        match self.state().learned {
            Learned::Unknown => None,
            Learned::Unlimited => Some((0, 0)),
            Learned::Window(window) => Some((window.limit, window.remaining)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use reqwest::header::HeaderValue;
    use std::sync::Arc;

    /// Our wake spread plus the tokio timer wheel's millisecond rounding.
    const SLACK: Duration = Duration::from_millis(3);

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    /// Go's `time.RFC1123` of a UTC time, truncated to the second, as the server writes.
    fn go_date(at: SystemTime) -> String {
        let at: DateTime<Utc> = at.into();
        at.format("%a, %d %b %Y %H:%M:%S UTC").to_string()
    }

    /// go-limiter's fixed-window bucket (`memorystore/store.go:323-357`) on tokio time,
    /// with the server's wall clock `skew` away from ours, answering headers as the
    /// middleware does.
    struct ServerLimiter {
        tokens: u64,
        interval: Duration,
        start: Option<Instant>,
        tick: u32,
        left: u64,
        wall_zero: SystemTime,
        t0: Instant,
        skew: Duration,
        taken: Vec<Instant>,
        refused: u32,
    }

    impl ServerLimiter {
        fn new(tokens: u64, interval: Duration, skew: Duration) -> Self {
            Self {
                tokens,
                interval,
                start: None,
                tick: 0,
                left: tokens,
                wall_zero: SystemTime::UNIX_EPOCH + Duration::from_millis(1_623_780_000_250),
                t0: Instant::now(),
                skew,
                taken: Vec::new(),
                refused: 0,
            }
        }

        fn our_wall(&self, at: Instant) -> SystemTime {
            self.wall_zero + (at - self.t0)
        }

        /// One request reaching the limiter at `at`: the answer's headers.
        fn take(&mut self, at: Instant) -> RateLimitHeaders {
            let start = *self.start.get_or_insert(at);
            let tick = ((at - start).as_nanos() / self.interval.as_nanos()) as u32;
            if tick > self.tick {
                self.tick = tick;
                self.left = self.tokens;
            }
            if self.left > 0 {
                self.left -= 1;
                self.taken.push(at);
            } else {
                self.refused += 1;
            }
            let server_wall = |t: Instant| self.our_wall(t) + self.skew;
            let reset = server_wall(start + self.interval * (self.tick + 1));
            let map = headers(&[
                ("x-ratelimit-limit", &self.tokens.to_string()),
                ("x-ratelimit-remaining", &self.left.to_string()),
                ("x-ratelimit-reset", &go_date(reset)),
                ("date", &httpdate::fmt_http_date(server_wall(at))),
            ]);
            RateLimitHeaders::from_headers(&map).expect("limiter headers")
        }
    }

    /// `callers` tasks sending back to back through one pacer for `run`, each request
    /// reaching the server `latency` after it leaves and answered `latency` later.
    /// Returns the limiter, for its counts.
    async fn drive(
        server: ServerLimiter,
        pacer: Pacer,
        callers: usize,
        latency: Duration,
        run: Duration,
    ) -> ServerLimiter {
        let server = Arc::new(Mutex::new(server));
        let pacer = Arc::new(pacer);
        let end = Instant::now() + run;
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let (server, pacer) = (server.clone(), pacer.clone());
                tokio::spawn(async move {
                    loop {
                        let Ok(ticket) = pacer.acquire(end).await else {
                            return;
                        };
                        tokio::time::sleep(latency).await;
                        let answer = server.lock().expect("server").take(Instant::now());
                        tokio::time::sleep(latency).await;
                        let wall = server.lock().expect("server").our_wall(Instant::now());
                        ticket.answered(Some(&answer), wall, Instant::now());
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("caller");
        }
        Arc::try_unwrap(server)
            .ok()
            .expect("callers done")
            .into_inner()
            .expect("server")
    }

    /// Requests the server took within `windows` whole windows from its first.
    fn taken_in(server: &ServerLimiter, windows: u32) -> usize {
        let start = server.start.expect("used");
        let end = start + server.interval * windows;
        server.taken.iter().filter(|&&t| t < end).count()
    }

    #[tokio::test(start_paused = true)]
    async fn uses_the_announced_budget_without_a_429() {
        for (tokens, callers, latency_ms) in [(60, 4, 250), (120, 4, 250), (120, 16, 5), (60, 1, 0)]
        {
            let server = ServerLimiter::new(tokens, Duration::from_secs(60), Duration::ZERO);
            let server = drive(
                server,
                Pacer::new(None, 1),
                callers,
                Duration::from_millis(latency_ms),
                Duration::from_secs(300),
            )
            .await;
            assert_eq!(server.refused, 0, "{tokens}/min, {callers} callers");
            let used = taken_in(&server, 4) as f64 / (4.0 * tokens as f64);
            assert!(used >= 0.95, "{tokens}/min, {callers} callers: {used}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_skewed_clock_of_ours_does_not_provoke_a_429() {
        for skew in [Duration::from_secs(30), Duration::from_secs(0)] {
            // The server's clock is `skew` ahead of ours: read against our clock, its
            // resets would look 30 s away and the window would seem to end late (safe but
            // slow); read against its `Date`, they are exact.
            let server = ServerLimiter::new(120, Duration::from_secs(60), skew);
            let server = drive(
                server,
                Pacer::new(None, 1),
                4,
                Duration::from_millis(100),
                Duration::from_secs(180),
            )
            .await;
            assert_eq!(server.refused, 0);
            let used = taken_in(&server, 2) as f64 / 240.0;
            assert!(used >= 0.95, "skew {skew:?}: {used}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn spreads_requests_over_the_window() {
        let server = ServerLimiter::new(120, Duration::from_secs(60), Duration::ZERO);
        let server = drive(
            server,
            Pacer::new(None, 1),
            8,
            Duration::from_millis(10),
            Duration::from_secs(59),
        )
        .await;
        // 8 callers that could send hundreds a second get about one every half second.
        let first = server.taken[0];
        let in_ten = server
            .taken
            .iter()
            .filter(|&&t| t < first + Duration::from_secs(10))
            .count();
        assert!((18..=22).contains(&in_ten), "{in_ten} in the first 10 s");
    }

    #[tokio::test(start_paused = true)]
    async fn starts_carefully_one_request_until_the_first_answer() {
        let pacer = Arc::new(Pacer::new(None, 1));
        let first = pacer.acquire(far()).await.expect("first");
        let waiting = {
            let pacer = pacer.clone();
            tokio::spawn(async move {
                let ticket = pacer.acquire(far()).await.expect("second");
                ticket.not_sent();
                Instant::now()
            })
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiting.is_finished(), "no second request before an answer");
        let answered_at = Instant::now();
        let noop = RateLimitHeaders::from_headers(&headers(&[
            ("x-ratelimit-limit", "0"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "Thu, 01 Jan 1970 00:00:00 UTC"),
        ]))
        .expect("headers");
        first.answered(Some(&noop), SystemTime::now(), answered_at);
        assert_eq!(waiting.await.expect("task"), answered_at);
        // No limiter: many at once.
        let tickets: Vec<_> = acquire_many(&pacer, 20).await;
        assert_eq!(tickets.len(), 20);
        assert_eq!(Instant::now(), answered_at);
        assert_eq!(pacer.learned_limit(), Some((0, 0)));
    }

    async fn acquire_many(pacer: &Pacer, n: usize) -> Vec<Ticket<'_>> {
        let mut tickets = Vec::new();
        for _ in 0..n {
            tickets.push(pacer.acquire(far()).await.expect("unlimited"));
        }
        tickets
    }

    fn limited(limit: u64, remaining: u64, reset: &str) -> RateLimitHeaders {
        RateLimitHeaders::from_headers(&headers(&[
            ("x-ratelimit-limit", &limit.to_string()),
            ("x-ratelimit-remaining", &remaining.to_string()),
            ("x-ratelimit-reset", reset),
        ]))
        .expect("headers")
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_window_waits_for_its_reset_and_the_next_starts_full() {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_623_780_000);
        let pacer = Pacer::new(None, 1);
        let start = Instant::now();
        let ticket = pacer.acquire(far()).await.expect("first");
        ticket.answered(
            Some(&limited(60, 0, "Tue, 15 Jun 2021 18:00:30 UTC")),
            wall,
            start,
        );
        let NotBefore(until) = pacer
            .acquire(start + Duration::from_secs(10))
            .await
            .err()
            .expect("spent");
        // 30 s to the reset, and the second it was truncated by.
        assert_eq!(until, start + Duration::from_secs(31));
        let ticket = pacer.acquire(far()).await.expect("next window");
        assert!(Instant::now() >= until && Instant::now() <= until + SLACK);
        // The new window is assumed full: a second request needs no answer first.
        let second = pacer
            .acquire(far())
            .await
            .expect("second of the new window");
        assert!(Instant::now() <= until + Duration::from_secs(2));
        drop((ticket, second));
    }

    #[tokio::test(start_paused = true)]
    async fn late_news_from_an_older_window_is_ignored() {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_623_780_000);
        let pacer = Pacer::new(None, 1);
        let now = Instant::now();
        let slow = pacer.acquire(far()).await.expect("probe");
        slow.answered(
            Some(&limited(10, 0, "Tue, 15 Jun 2021 18:01:00 UTC")),
            wall,
            now,
        );
        pacer.state().learned = Learned::Unknown; // as if careful again
        let a = pacer.acquire(far()).await.expect("one");
        a.answered(
            Some(&limited(10, 9, "Tue, 15 Jun 2021 18:00:30 UTC")),
            wall,
            now,
        );
        assert_eq!(
            pacer.learned_limit(),
            None,
            "an older window teaches nothing"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_without_an_answer_costs_a_token() {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_623_780_000);
        let pacer = Pacer::new(None, 1);
        let now = Instant::now();
        let probe = pacer.acquire(far()).await.expect("probe");
        probe.answered(
            Some(&limited(10, 5, "Tue, 15 Jun 2021 18:01:00 UTC")),
            wall,
            now,
        );
        let lost = pacer.acquire(far()).await.expect("lost");
        drop(lost);
        assert_eq!(pacer.learned_limit(), Some((10, 4)));
        let never = pacer.acquire(far()).await.expect("never connected");
        never.not_sent();
        assert_eq!(pacer.learned_limit(), Some((10, 4)));
    }

    #[tokio::test(start_paused = true)]
    async fn workers_take_their_share_of_what_is_left() {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_623_780_000);
        let pacer = Pacer::new(None, 4);
        let now = Instant::now();
        let probe = pacer.acquire(far()).await.expect("probe");
        probe.answered(
            Some(&limited(60, 3, "Tue, 15 Jun 2021 18:01:00 UTC")),
            wall,
            now,
        );
        // 3 left for 4 workers: none is ours before the reset.
        let NotBefore(until) = pacer
            .acquire(now + Duration::from_secs(30))
            .await
            .err()
            .expect("not our share");
        assert_eq!(until, now + Duration::from_secs(61));
    }

    #[test]
    fn the_cap_divides_the_rate_by_the_workers_and_keeps_headroom() {
        assert_eq!(Pacer::new(None, 1).cap_interval(), None);
        let one = Pacer::new(Some(120), 1).cap_interval().expect("cap");
        let expected = 0.5 / (1.0 - HEADROOM);
        assert!((one.as_secs_f64() - expected).abs() < 1e-9);
        let four = Pacer::new(Some(120), 4).cap_interval().expect("cap");
        assert!((four.as_secs_f64() - 4.0 * expected).abs() < 1e-9);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cap_spaces_requests_even_without_a_limiter() {
        let pacer = Pacer::new(Some(60), 1);
        let interval = pacer.cap_interval().expect("cap");
        let start = Instant::now();
        let mut sent_at = Vec::new();
        for _ in 0..5 {
            let ticket = pacer.acquire(far()).await.expect("before the deadline");
            sent_at.push(Instant::now() - start);
            ticket.answered(
                Some(&limited(0, 0, "Thu, 01 Jan 1970 00:00:00 UTC")),
                SystemTime::now(),
                Instant::now(),
            );
        }
        assert_eq!(sent_at[0], Duration::ZERO, "the first request goes at once");
        for pair in sent_at.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap >= interval && gap <= interval + SLACK, "{gap:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn refuses_to_wait_past_the_deadline_without_taking_a_slot() {
        let pacer = Pacer::new(Some(60), 1);
        let first = pacer.acquire(far()).await.expect("first");
        first.answered(
            Some(&limited(0, 0, "Thu, 01 Jan 1970 00:00:00 UTC")),
            SystemTime::now(),
            Instant::now(),
        );
        let soon = Instant::now() + Duration::from_millis(100);
        let NotBefore(when) = pacer.acquire(soon).await.err().expect("too soon");
        assert!(when > soon);
        // Nothing was consumed: the next caller with time gets exactly that slot.
        let _later = pacer.acquire(far()).await.expect("later");
        assert!(Instant::now() >= when && Instant::now() <= when + SLACK);
    }

    #[tokio::test(start_paused = true)]
    async fn while_careful_a_short_deadline_is_refused_just_after_it() {
        let pacer = Pacer::new(None, 1);
        let _probe = pacer.acquire(far()).await.expect("probe");
        let soon = Instant::now() + Duration::from_secs(2);
        let NotBefore(when) = pacer.acquire(soon).await.err().expect("no answer yet");
        assert!(when > soon);
        assert!(Instant::now() >= soon);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_blocks_until_it_ends() {
        let pacer = Pacer::new(None, 1);
        let start = Instant::now();
        pacer.hold_until(start + Duration::from_secs(30));
        pacer.hold_until(start + Duration::from_secs(10)); // a shorter hold never shortens it
        let err = pacer
            .acquire(start + Duration::from_secs(5))
            .await
            .err()
            .expect("held");
        assert_eq!(err, NotBefore(start + Duration::from_secs(30)));
        let _ticket = pacer
            .acquire(start + Duration::from_secs(60))
            .await
            .expect("after the hold");
        assert!(Instant::now() >= start + Duration::from_secs(30));
        assert!(Instant::now() <= start + Duration::from_secs(30) + SLACK);
        assert_eq!(pacer.current_hold(), None);
    }

    #[test]
    fn the_window_is_read_against_the_servers_date() {
        let ours = SystemTime::UNIX_EPOCH + Duration::from_secs(1_623_780_000);
        let skewed = RateLimitHeaders::from_headers(&headers(&[
            ("x-ratelimit-limit", "60"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "Tue, 15 Jun 2021 18:01:00 UTC"),
            ("date", "Tue, 15 Jun 2021 18:00:50 GMT"),
        ]))
        .expect("headers");
        // Ten seconds by the server's clock, plus the truncated second; our own clock
        // (ten minutes behind or not) plays no part.
        assert_eq!(skewed.window_left(ours), Some(Duration::from_secs(11)));
        let undated = RateLimitHeaders {
            date: None,
            ..skewed
        };
        assert_eq!(undated.window_left(ours), Some(Duration::from_secs(61)));
    }

    #[test]
    fn answers_without_limiter_headers_read_as_none() {
        assert_eq!(RateLimitHeaders::from_headers(&HeaderMap::new()), None);
        // The NOOP store: Limit 0, Remaining 0, Reset at the epoch (contract §8.1).
        let noop = limited(0, 0, "Thu, 01 Jan 1970 00:00:00 UTC");
        assert_eq!((noop.limit, noop.remaining), (0, 0));
    }
}
