//! Twilio sets its own pace: how many lookups may be in flight, adjusted by what Twilio
//! answers (additive increase, multiplicative decrease).
//!
//! Twilio limits an account's *concurrent* REST requests and answers a request above the
//! limit with 429 and code 20429: "Requests that receive 429 responses aren't processed
//! and are safe to retry after backing off" (twilio.com/docs/api/errors/20429). It
//! publishes no rate for Lookup. So concurrency is the control, not a rate:
//!
//! * at most `limit` lookups are in flight; `limit` starts at `twilio.concurrency` (10,
//!   as in the original system) and never exceeds it;
//! * every lookup Twilio answers without pushing back raises `limit` by `1 / limit`
//!   (one more slot per `limit` answers, i.e. about one per round trip);
//! * a 429 halves it (never below one). Requests already in flight when the limit was
//!   cut were sent under the old limit, so their 429s do not cut it again: one cut per
//!   congestion event;
//! * a 429's `Retry-After`, when Twilio sends one, holds every new request until then.
//!
//! The throttled lookup itself is retried by the `retry` module (not spending the
//! failure budget, `Backoff::next_throttled_retry`): a 429 is never a verdict.
//!
//! Time is tokio time, so tests can pause it.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The factor a 429 multiplies the allowed concurrency by.
const DECREASE: f64 = 0.5;

/// The allowed concurrency of lookups, moved by Twilio's answers.
#[derive(Debug)]
pub(crate) struct Aimd {
    max: f64,
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Debug)]
struct State {
    /// Lookups allowed in flight (at least 1, at most `max`); whole slots are `floor`.
    limit: f64,
    in_flight: usize,
    /// Nothing starts before this (a 429's `Retry-After`).
    hold: Option<Instant>,
    /// When the limit was last cut: a 429 for a request sent before it is the same event.
    last_cut: Option<Instant>,
    /// 429s seen.
    throttled: u64,
}

/// One lookup's place in flight. Settle it with [`Slot::answered`] or [`Slot::throttled`];
/// dropped, it frees the place and teaches nothing (a timeout, a 5xx, a cancellation).
#[must_use = "a slot tells the pacer what Twilio answered"]
pub(crate) struct Slot<'a> {
    aimd: &'a Aimd,
    started: Instant,
    settled: bool,
}

impl Slot<'_> {
    /// Twilio answered without pushing back.
    pub(crate) fn answered(mut self) {
        self.settled = true;
        self.aimd.settle(|state| {
            state.limit = (state.limit + 1.0 / state.limit).min(self.aimd.max);
        });
    }

    /// Twilio answered 429: slow down, and hold new requests for its `Retry-After`.
    pub(crate) fn throttled(mut self, retry_after: Option<Duration>) {
        self.settled = true;
        let now = Instant::now();
        self.aimd.settle(|state| {
            state.throttled += 1;
            if state.last_cut.is_none_or(|cut| self.started >= cut) {
                state.limit = (state.limit * DECREASE).max(1.0);
                state.last_cut = Some(now);
                tracing::debug!(
                    allowed = state.limit.floor() as u64,
                    "Twilio pushed back (429); fewer lookups in flight."
                );
            }
            if let Some(after) = retry_after {
                let until = now + after;
                if state.hold.is_none_or(|hold| hold < until) {
                    state.hold = Some(until);
                }
            }
        });
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.aimd.settle(|_| {});
        }
    }
}

impl Aimd {
    /// Up to `max` lookups in flight (at least 1), starting at `max`.
    pub(crate) fn new(max: usize) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let max = max.max(1) as f64;
        Self {
            max,
            state: Mutex::new(State {
                limit: max,
                in_flight: 0,
                hold: None,
                last_cut: None,
                throttled: 0,
            }),
            changed: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Frees a slot's place (once per slot) and applies what its answer taught.
    fn settle(&self, update: impl FnOnce(&mut State)) {
        {
            let mut state = self.state();
            state.in_flight = state.in_flight.saturating_sub(1);
            update(&mut state);
        }
        self.changed.notify_waiters();
    }

    /// Waits for a place in flight; `None` if `deadline` comes first.
    pub(crate) async fn acquire(&self, deadline: Instant) -> Option<Slot<'_>> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let now = Instant::now();
            let wake = {
                let mut state = self.state();
                match state.hold {
                    Some(until) if until > now => until,
                    _ => {
                        state.hold = None;
                        #[allow(clippy::cast_precision_loss)]
                        if (state.in_flight as f64) < state.limit.floor() {
                            state.in_flight += 1;
                            return Some(Slot {
                                aimd: self,
                                started: now,
                                settled: false,
                            });
                        }
                        deadline
                    }
                }
            };
            if now >= deadline || wake > deadline {
                return None;
            }
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Lookups allowed in flight now.
    pub(crate) fn allowed(&self) -> usize {
        self.state().limit.floor() as usize
    }

    /// 429s seen so far.
    pub(crate) fn throttled(&self) -> u64 {
        self.state().throttled
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[tokio::test(start_paused = true)]
    async fn starts_at_the_configured_concurrency_and_never_exceeds_it() {
        let aimd = Aimd::new(10);
        let mut slots = Vec::new();
        for _ in 0..10 {
            slots.push(aimd.acquire(far()).await.expect("free"));
        }
        assert!(aimd
            .acquire(Instant::now() + Duration::from_secs(1))
            .await
            .is_none());
        for slot in slots.drain(..) {
            slot.answered();
        }
        assert_eq!(aimd.allowed(), 10, "never above the configured concurrency");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_halves_once_per_event_and_answers_win_it_back() {
        let aimd = Aimd::new(10);
        let mut slots = Vec::new();
        for _ in 0..10 {
            slots.push(aimd.acquire(far()).await.expect("free"));
        }
        tokio::time::advance(Duration::from_millis(10)).await;
        // All ten sent together come back 429: one congestion event, one cut.
        for slot in slots.drain(..) {
            slot.throttled(None);
        }
        assert_eq!(aimd.allowed(), 5);
        assert_eq!(aimd.throttled(), 10);
        // A 429 for a request sent after the cut cuts again.
        tokio::time::advance(Duration::from_millis(10)).await;
        aimd.acquire(far()).await.expect("free").throttled(None);
        assert_eq!(aimd.allowed(), 2);
        // Additive increase: about one slot per `limit` answers.
        let mut answers = 0;
        while aimd.allowed() < 10 {
            aimd.acquire(far()).await.expect("free").answered();
            answers += 1;
        }
        assert!((40..=60).contains(&answers), "{answers}");
    }

    #[tokio::test(start_paused = true)]
    async fn never_below_one() {
        let aimd = Aimd::new(3);
        for _ in 0..5 {
            tokio::time::advance(Duration::from_millis(1)).await;
            aimd.acquire(far()).await.expect("one").throttled(None);
        }
        assert_eq!(aimd.allowed(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_holds_every_new_request() {
        let aimd = Arc::new(Aimd::new(10));
        let start = Instant::now();
        aimd.acquire(far())
            .await
            .expect("free")
            .throttled(Some(Duration::from_secs(2)));
        assert!(aimd.acquire(start + Duration::from_secs(1)).await.is_none());
        let _slot = aimd.acquire(far()).await.expect("after the hold");
        assert_eq!(Instant::now(), start + Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_freed_place_wakes_a_waiter_at_once() {
        let aimd = Arc::new(Aimd::new(1));
        let slot = aimd.acquire(far()).await.expect("free");
        let waiter = {
            let aimd = aimd.clone();
            tokio::spawn(async move {
                let _slot = aimd.acquire(far()).await.expect("freed");
                Instant::now()
            })
        };
        tokio::time::advance(Duration::from_millis(300)).await;
        let freed_at = Instant::now();
        drop(slot);
        assert_eq!(waiter.await.expect("task"), freed_at);
    }
}
