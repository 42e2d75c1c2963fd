//! The state one run shares between its epochs and batches.
//!
//! Limits that must hold across the whole run (validation slots, requests in flight,
//! entries checked ahead of issuing, keys in flight) live here rather than per epoch, so
//! overlapping epochs cannot exceed them.
//! The verification server's rate limit is not among them: the issuer paces its own
//! requests and holds them all after a 429 (the `SmsIssuer` contract). So do the stop signals: `halt` ends
//! claiming and dispatching (shutdown, deadline, any stop), `stop_issuing` also makes
//! in-flight batches hand their undecided records back (fatal causes, an unavailable
//! server), while a plain shutdown lets in-flight batches finish.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ca_notify_domain::{DedupSecret, DeferReason, PhoneParser};
use ca_notify_ports::{PhoneSource, PhoneValidator, ResultSink, SmsIssuer};
use chrono::NaiveDate;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::dedup_gate::DedupGate;
use crate::failure::{FatalCause, StopReason};
use crate::latency::Latencies;
use crate::observer::RunObserver;
use crate::report::Counts;
use crate::settings::Settings;

/// Shortest time kept back for the last write-back of a batch.
const MIN_WRITE_RESERVE: Duration = Duration::from_millis(200);

/// The source of "today" (UTC) for the date window.
pub(crate) type Today = Arc<dyn Fn() -> NaiveDate + Send + Sync>;

/// What a pipeline is made of; shared by all its runs.
pub(crate) struct Parts {
    pub source: Arc<dyn PhoneSource>,
    pub validator: Arc<dyn PhoneValidator>,
    pub issuer: Arc<dyn SmsIssuer>,
    pub sink: Arc<dyn ResultSink>,
    pub settings: Settings,
    pub parser: PhoneParser,
    pub secret: DedupSecret,
    pub today: Today,
    pub observer: Option<Arc<dyn RunObserver>>,
}

/// One run's shared state.
pub(crate) struct RunCtx {
    pub parts: Arc<Parts>,
    pub started: Instant,
    pub deadline: Instant,
    pub shutdown: CancellationToken,
    pub halt: CancellationToken,
    pub stop_issuing: CancellationToken,
    stop: Mutex<Option<StopReason>>,
    fatal: Mutex<Option<FatalCause>>,
    pub validation_slots: Arc<Semaphore>,
    /// Batch-issue requests in flight (`max_batches_in_flight`).
    pub batch_slots: Arc<Semaphore>,
    /// Entries checked (or being checked) but not yet issued: enough to fill every request
    /// slot and the next batch twice over, few enough that a halted run wastes few checks.
    pub ahead: Arc<Semaphore>,
    pub dedup: DedupGate,
    forgetting: Mutex<Forgetting>,
    pub latency: Latencies,
    totals: Mutex<Counts>,
}

impl RunCtx {
    /// A run (or one stretch of a run until drained) of at most `budget`.
    pub fn new(parts: Arc<Parts>, shutdown: &CancellationToken, budget: Duration) -> Self {
        let started = Instant::now();
        let settings = &parts.settings;
        Self {
            started,
            deadline: started + budget,
            shutdown: shutdown.clone(),
            halt: shutdown.child_token(),
            stop_issuing: CancellationToken::new(),
            stop: Mutex::new(None),
            fatal: Mutex::new(None),
            validation_slots: Arc::new(Semaphore::new(settings.validation_concurrency)),
            batch_slots: Arc::new(Semaphore::new(settings.max_batches_in_flight)),
            ahead: Arc::new(Semaphore::new(
                settings.batch_size * (settings.max_batches_in_flight + 2)
                    + settings.validation_concurrency,
            )),
            dedup: DedupGate::default(),
            forgetting: Mutex::new(Forgetting::default()),
            latency: Latencies::default(),
            totals: Mutex::new(Counts::default()),
            parts,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.parts.settings
    }

    /// Ends claiming and dispatching, and for most kinds issuing too. The first stop is
    /// the one reported, except that a fatal cause outranks an earlier benign stop.
    pub fn stop_with(&self, kind: StopReason) {
        {
            let mut stop = lock(&self.stop);
            match *stop {
                None => *stop = Some(kind),
                Some(prev) if !prev.is_fatal() && kind.is_fatal() => *stop = Some(kind),
                Some(_) => {}
            }
        }
        if kind.stops_issuing() {
            self.stop_issuing.cancel();
        }
        self.halt.cancel();
    }

    /// Records a fatal cause (the first one wins) and stops the run.
    pub fn fail(&self, cause: FatalCause) {
        let kind = cause.stop_reason();
        lock(&self.fatal).get_or_insert(cause);
        self.stop_with(kind);
    }

    /// Why the run is stopping, as far as it is. A halt without a recorded kind is the
    /// caller's shutdown.
    pub fn stop_kind(&self) -> Option<StopReason> {
        let recorded = *lock(&self.stop);
        recorded.or_else(|| self.shutdown.is_cancelled().then_some(StopReason::Shutdown))
    }

    /// The reason for records handed back because the run is stopping now.
    pub fn halt_reason(&self) -> DeferReason {
        self.stop_kind()
            .map_or(DeferReason::Shutdown, StopReason::defer_reason)
    }

    pub fn take_fatal(&self) -> Option<FatalCause> {
        lock(&self.fatal).take()
    }

    /// The time kept back at the end of the run for a batch's write-back.
    pub fn write_reserve(&self) -> Duration {
        (self.latency.write.estimate() * 2)
            .max(MIN_WRITE_RESERVE)
            .min(self.deadline.saturating_duration_since(self.started) / 4)
    }

    /// The deadline handed to the validator and the issuer: the run's, less the time the
    /// write-back needs.
    pub fn work_deadline(&self) -> Instant {
        self.deadline
            .checked_sub(self.write_reserve())
            .unwrap_or(self.started)
    }

    /// Whether checked entries must no longer be sent: a shutdown (in-flight requests
    /// finish, the rest is handed back) or a stop of issuing. A stop of claiming alone
    /// (no time for another epoch, a drained source) lets the claimed work finish; the
    /// deadline is kept by each request's own check.
    pub fn stop_sending(&self) -> bool {
        self.shutdown.is_cancelled() || self.stop_issuing.is_cancelled()
    }

    /// Whether a phone check started now could still be followed by a batch-issue request
    /// that ends (at the issuer's longest) before the work deadline.
    pub fn check_fits(&self) -> bool {
        let now = Instant::now();
        now + self.latency.check.estimate() + self.parts.issuer.max_request_duration()
            <= self.work_deadline()
    }

    /// Epoch `epoch` read the ledger.
    pub fn note_prepared(&self, epoch: u32) {
        let mut f = lock(&self.forgetting);
        f.prepared = f.prepared.max(epoch);
    }

    /// Epoch `epoch` is written. Its delivered keys are forgotten once every epoch that
    /// read the ledger before this write is written too: until then such an epoch may
    /// hold a record of the same key whose ledger history predates this write, and only
    /// the gate tells it the key was delivered.
    pub fn epoch_finished(&self, epoch: u32) {
        let mut f = lock(&self.forgetting);
        let until = f.prepared;
        f.waiting.push((epoch, until));
        f.finished.insert(epoch);
        loop {
            let next = f.written_through + 1;
            if !f.finished.remove(&next) {
                break;
            }
            f.written_through = next;
        }
        let through = f.written_through;
        f.waiting.retain(|&(done, until)| {
            let due = until <= through;
            if due {
                self.dedup.forget_epoch(done);
            }
            !due
        });
    }

    pub fn add_totals(&self, tally: &Counts) {
        lock(&self.totals).merge(tally);
    }

    pub fn totals(&self) -> Counts {
        lock(&self.totals).clone()
    }
}

/// Which epochs' delivered keys may be forgotten.
#[derive(Default)]
struct Forgetting {
    /// The highest epoch that read the ledger.
    prepared: u32,
    /// Every epoch up to this one is written.
    written_through: u32,
    /// Written epochs above `written_through`.
    finished: BTreeSet<u32>,
    /// Written epochs and the epoch that must be written before they are forgotten.
    waiting: Vec<(u32, u32)>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
