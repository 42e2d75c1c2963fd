//! `MemoryStore`: a phone source and result sink in memory, with the real claim semantics.
//!
//! It behaves like the SQL stores: a claim stamps a fresh token and a lease on up to N
//! records that have no final outcome and no live claim; write-backs and releases touch
//! only records still claimed by the caller's token; a final outcome clears the claim for
//! good, a `Deferred` one releases the record with its attempt count raised, a release
//! leaves the count alone. A deferral whose reason holds the claim (an unanswered request)
//! turns the claim into a *hold*: the lease stays, so no claim takes the record until it
//! ends, and the token goes, so no write or release by it can end the hold early (and a
//! repeated write finds nothing to change). Leases are measured with
//! `tokio::time::Instant`, so tests with paused time can let them expire.
//!
//! The ledger by dedup key mirrors the SQL stores' index and attempt log: which keys were
//! written texted, and every write-back's attempt answers per key, appended once per
//! (claim token, record id, position) whether or not the write still owned its record.
//! Latencies and failures can be injected, and everything can be inspected, for tests of
//! the engine's exactly-once promises.
//!
//! Its [`RunLog`] keeps the runs in a list and stamps the current run's id on every record
//! a write-back reaches, as the SQL stores' `run_id` column does.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use ca_notify_domain::{
    ClaimToken, DedupKey, KeyHistory, Outcome, RecipientRecord, RecordId, RecordOutcome,
};
use ca_notify_ports::{
    Backlog, Claim, PhoneSource, ResultSink, RunEnd, RunId, RunLog, RunRecord, RunStart, SinkError,
    SourceError, WriteReceipt,
};
use tokio::time::{sleep, Instant};

/// A failure to inject into the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFault {
    /// `Unavailable` (retryable).
    Unavailable,
    /// `Misconfigured` (fatal).
    Misconfigured,
}

/// A record's final result as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResult {
    /// The outcome written.
    pub outcome: Outcome,
    /// The seed's sent flag (1 or 0).
    pub sent_flag: u8,
    /// The dedup uuid, when one was sent.
    pub dedup_key: Option<DedupKey>,
    /// How many write-backs wrote a final outcome for it (always 1 in a correct run).
    pub writes: u32,
    /// When the outcome was written (wall clock, as a store's processed-time column).
    pub processed_at: SystemTime,
}

/// Record counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// All records.
    pub records: usize,
    /// Records without a final outcome.
    pub open: usize,
    /// Records with a claim token on them (live or expired); holds are not claims.
    pub claimed: usize,
    /// Records held after an unanswered request (lease live or expired).
    pub held: usize,
    /// Final outcome `Sent`.
    pub sent: usize,
    /// Final outcome `AlreadySent` or `TextedBefore` (both `already_sent`).
    pub already_sent: usize,
    /// Final outcome `NotSent`.
    pub not_sent: usize,
    /// Final outcome `Unconfirmed`.
    pub unconfirmed: usize,
}

/// How often each operation was called (including failed calls).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCalls {
    /// `claim` calls.
    pub claims: u64,
    /// `release` calls.
    pub releases: u64,
    /// `write_back` calls.
    pub writes: u64,
    /// `peek` calls.
    pub peeks: u64,
}

#[derive(Debug)]
struct Lease {
    token: ClaimToken,
    expires: Instant,
    /// A hold: the token no longer owns the record, the lease still keeps claims away.
    held: bool,
}

#[derive(Debug)]
struct Entry {
    record: RecipientRecord,
    lease: Option<Lease>,
    result: Option<StoredResult>,
    attempts: u32,
    /// The run whose write-back last reached the record.
    run_id: Option<RunId>,
}

impl Entry {
    fn claimable(&self, now: Instant) -> bool {
        self.result.is_none() && self.lease.as_ref().is_none_or(|l| l.expires <= now)
    }

    fn held_by(&self, token: &ClaimToken) -> bool {
        self.lease
            .as_ref()
            .is_some_and(|l| !l.held && &l.token == token)
    }

    fn is_held(&self) -> bool {
        self.lease.as_ref().is_some_and(|l| l.held)
    }
}

#[derive(Debug, Default)]
struct State {
    entries: Vec<Entry>,
    index: HashMap<RecordId, usize>,
    /// Entries without a final outcome, in insertion order (claims take the oldest).
    open: BTreeSet<usize>,
    /// The ledger by dedup key: texted, and the sums of the attempt log.
    ledger: HashMap<DedupKey, KeyHistory>,
    /// How many attempts of each (token, record) the log holds: a repeated write appends
    /// only positions beyond them.
    logged: HashMap<(ClaimToken, RecordId), usize>,
    /// The runs table, in the order runs were started.
    runs: Vec<RunRecord>,
    /// The run [`RunLog::start_run`] named last; write-backs stamp it.
    current_run: Option<RunId>,
}

#[derive(Debug, Default)]
struct Faults {
    claims: VecDeque<StoreFault>,
    writes: VecDeque<StoreFault>,
    releases: VecDeque<StoreFault>,
}

/// Where a [`MemoryStore`] reads "now" for its leases.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The store's clock: tokio's unless one was handed in.
#[derive(Clone, Default)]
struct StoreClock(Option<Clock>);

impl StoreClock {
    fn now(&self) -> Instant {
        self.0.as_ref().map_or_else(Instant::now, |clock| clock())
    }
}

impl fmt::Debug for StoreClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "injected"
        } else {
            "tokio"
        })
    }
}

/// An in-memory phone source and result sink.
#[derive(Debug, Default)]
pub struct MemoryStore {
    clock: StoreClock,
    state: Mutex<State>,
    faults: Mutex<Faults>,
    claim_latency: Duration,
    write_latency: Duration,
    claims: AtomicU64,
    releases: AtomicU64,
    writes: AtomicU64,
    peeks: AtomicU64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `records`.
    pub fn with_records(records: impl IntoIterator<Item = RecipientRecord>) -> Self {
        let store = Self::new();
        store.extend(records);
        store
    }

    /// Each claim takes this long (simulating the store's round trip).
    #[must_use]
    pub fn with_claim_latency(mut self, latency: Duration) -> Self {
        self.claim_latency = latency;
        self
    }

    /// Each write-back takes this long.
    #[must_use]
    pub fn with_write_latency(mut self, latency: Duration) -> Self {
        self.write_latency = latency;
        self
    }

    /// Reads "now" for leases from `clock` instead of tokio's clock (which a paused
    /// runtime already lets a test move), for tests on a multi-threaded runtime that move
    /// time forward instead of waiting.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = StoreClock(Some(clock));
        self
    }

    /// Adds a record. Returns `false` (and changes nothing) when its id is already there.
    pub fn insert(&self, record: RecipientRecord) -> bool {
        let mut state = self.lock();
        if state.index.contains_key(&record.id) {
            return false;
        }
        let at = state.entries.len();
        state.index.insert(record.id.clone(), at);
        state.open.insert(at);
        state.entries.push(Entry {
            record,
            lease: None,
            result: None,
            attempts: 0,
            run_id: None,
        });
        true
    }

    /// Adds records (duplicated ids are skipped).
    pub fn extend(&self, records: impl IntoIterator<Item = RecipientRecord>) {
        for record in records {
            self.insert(record);
        }
    }

    /// Makes the next `n` claims fail with `fault`.
    pub fn fail_next_claims(&self, n: usize, fault: StoreFault) {
        self.faults().claims.extend(std::iter::repeat_n(fault, n));
    }

    /// Makes the next `n` write-backs fail with `fault` (writing nothing).
    pub fn fail_next_writes(&self, n: usize, fault: StoreFault) {
        self.faults().writes.extend(std::iter::repeat_n(fault, n));
    }

    /// Makes the next `n` releases fail with `fault` (releasing nothing).
    pub fn fail_next_releases(&self, n: usize, fault: StoreFault) {
        self.faults().releases.extend(std::iter::repeat_n(fault, n));
    }

    /// The final outcome of a record, if it has one.
    pub fn outcome(&self, id: &RecordId) -> Option<Outcome> {
        self.result(id).map(|r| r.outcome)
    }

    /// The final result of a record, if it has one.
    pub fn result(&self, id: &RecordId) -> Option<StoredResult> {
        let state = self.lock();
        state
            .index
            .get(id)
            .and_then(|&i| state.entries[i].result.clone())
    }

    /// How often a record was handed back as `Deferred`.
    pub fn attempts(&self, id: &RecordId) -> Option<u32> {
        let state = self.lock();
        state.index.get(id).map(|&i| state.entries[i].attempts)
    }

    /// The run whose write-back last reached a record (`None` when none did, or when no
    /// run was started on this store).
    pub fn run_id(&self, id: &RecordId) -> Option<RunId> {
        let state = self.lock();
        state
            .index
            .get(id)
            .and_then(|&i| state.entries[i].run_id.clone())
    }

    /// The token of the claim on a record, live or expired; `None` when unclaimed or held.
    pub fn claim_token(&self, id: &RecordId) -> Option<ClaimToken> {
        let state = self.lock();
        state.index.get(id).and_then(|&i| {
            let lease = state.entries[i].lease.as_ref()?;
            (!lease.held).then(|| lease.token.clone())
        })
    }

    /// Records with a claim token on them, live or expired, in insertion order. After a
    /// finished run this should be empty: every record written or released (a held record
    /// was written; see [`MemoryStore::held_ids`]).
    pub fn claimed_ids(&self) -> Vec<RecordId> {
        let state = self.lock();
        state
            .entries
            .iter()
            .filter(|e| e.lease.is_some() && !e.is_held())
            .map(|e| e.record.id.clone())
            .collect()
    }

    /// Records held after an unanswered request (their lease live or expired, not yet
    /// claimed again), in insertion order.
    pub fn held_ids(&self) -> Vec<RecordId> {
        let state = self.lock();
        state
            .entries
            .iter()
            .filter(|e| e.is_held())
            .map(|e| e.record.id.clone())
            .collect()
    }

    /// What the ledger knows of `key` (the same as [`ResultSink::key_histories`]).
    pub fn key_history(&self, key: &DedupKey) -> KeyHistory {
        self.lock().ledger.get(key).copied().unwrap_or_default()
    }

    /// Records without a final outcome, in insertion order.
    pub fn open_ids(&self) -> Vec<RecordId> {
        let state = self.lock();
        state
            .open
            .iter()
            .map(|&i| state.entries[i].record.id.clone())
            .collect()
    }

    /// Record counts.
    pub fn counts(&self) -> StoreCounts {
        let state = self.lock();
        let mut counts = StoreCounts {
            records: state.entries.len(),
            open: state.open.len(),
            ..StoreCounts::default()
        };
        for entry in &state.entries {
            counts.held += usize::from(entry.is_held());
            counts.claimed += usize::from(entry.lease.is_some() && !entry.is_held());
            match entry.result.as_ref().map(|r| &r.outcome) {
                Some(Outcome::Sent) => counts.sent += 1,
                Some(Outcome::AlreadySent | Outcome::TextedBefore) => counts.already_sent += 1,
                Some(Outcome::NotSent { .. }) => counts.not_sent += 1,
                Some(Outcome::Unconfirmed) => counts.unconfirmed += 1,
                Some(Outcome::Deferred { .. }) | None => {}
            }
        }
        counts
    }

    /// The largest number of final writes any record received (1 in a correct run).
    pub fn max_writes_per_record(&self) -> u32 {
        let state = self.lock();
        state
            .entries
            .iter()
            .filter_map(|e| e.result.as_ref().map(|r| r.writes))
            .max()
            .unwrap_or(0)
    }

    /// Call counts.
    pub fn calls(&self) -> StoreCalls {
        StoreCalls {
            claims: self.claims.load(Ordering::Relaxed),
            releases: self.releases.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            peeks: self.peeks.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn claimable_indices(state: &State, max: usize, now: Instant) -> Vec<usize> {
        state
            .open
            .iter()
            .copied()
            .filter(|&i| state.entries[i].claimable(now))
            .take(max)
            .collect()
    }
}

fn source_error(fault: StoreFault) -> SourceError {
    match fault {
        StoreFault::Unavailable => SourceError::Unavailable("injected: store unavailable".into()),
        StoreFault::Misconfigured => {
            SourceError::Misconfigured("injected: store misconfigured".into())
        }
    }
}

#[async_trait]
impl PhoneSource for MemoryStore {
    async fn claim(&self, max: usize, lease: Duration) -> Result<Claim, SourceError> {
        // Unique within this store, which is all a token must be here; no randomness.
        let token = ClaimToken::new(format!(
            "memory-claim-{}",
            self.claims.fetch_add(1, Ordering::Relaxed) + 1
        ));
        if !self.claim_latency.is_zero() {
            sleep(self.claim_latency).await;
        }
        if let Some(fault) = self.faults().claims.pop_front() {
            return Err(source_error(fault));
        }
        let now = self.clock.now();
        let mut state = self.lock();
        let picked = Self::claimable_indices(&state, max, now);
        let mut records = Vec::with_capacity(picked.len());
        for i in picked {
            let entry = &mut state.entries[i];
            entry.lease = Some(Lease {
                token: token.clone(),
                expires: now + lease,
                held: false,
            });
            records.push(entry.record.clone());
        }
        Ok(Claim { token, records })
    }

    async fn release(&self, token: &ClaimToken, ids: &[RecordId]) -> Result<(), SourceError> {
        self.releases.fetch_add(1, Ordering::Relaxed);
        if let Some(fault) = self.faults().releases.pop_front() {
            return Err(source_error(fault));
        }
        let mut state = self.lock();
        for id in ids {
            let Some(&i) = state.index.get(id) else {
                continue;
            };
            let entry = &mut state.entries[i];
            if entry.held_by(token) {
                entry.lease = None;
            }
        }
        Ok(())
    }

    async fn peek(&self, max: usize) -> Result<Vec<RecipientRecord>, SourceError> {
        self.peeks.fetch_add(1, Ordering::Relaxed);
        let state = self.lock();
        let picked = Self::claimable_indices(&state, max, self.clock.now());
        Ok(picked
            .into_iter()
            .map(|i| state.entries[i].record.clone())
            .collect())
    }
}

impl State {
    /// Appends the attempts of `o` beyond those this (token, record) already logged.
    fn log_attempts(&mut self, token: &ClaimToken, o: &RecordOutcome) {
        let Some(key) = o.dedup_key else {
            return;
        };
        if o.attempts.is_empty() {
            return;
        }
        let logged = self
            .logged
            .entry((token.clone(), o.id.clone()))
            .or_insert(0);
        if o.attempts.len() <= *logged {
            return;
        }
        let history = self.ledger.entry(key).or_default();
        for &answer in &o.attempts[*logged..] {
            history.record(answer);
        }
        *logged = o.attempts.len();
    }
}

#[async_trait]
impl ResultSink for MemoryStore {
    async fn key_histories(&self, keys: &[DedupKey]) -> Result<Vec<KeyHistory>, SinkError> {
        let state = self.lock();
        Ok(keys
            .iter()
            .map(|k| state.ledger.get(k).copied().unwrap_or_default())
            .collect())
    }

    async fn write_back(
        &self,
        token: &ClaimToken,
        outcomes: &[RecordOutcome],
    ) -> Result<WriteReceipt, SinkError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        if !self.write_latency.is_zero() {
            sleep(self.write_latency).await;
        }
        if let Some(fault) = self.faults().writes.pop_front() {
            return Err(match fault {
                StoreFault::Unavailable => {
                    SinkError::Unavailable("injected: store unavailable".into())
                }
                StoreFault::Misconfigured => {
                    SinkError::Misconfigured("injected: store misconfigured".into())
                }
            });
        }
        // One lock for the whole batch: the write is atomic, as the port requires.
        let mut state = self.lock();
        let run_id = state.current_run.clone();
        let mut receipt = WriteReceipt::default();
        for o in outcomes {
            // Attempts are facts about the uuid, kept whether or not the claim still holds.
            state.log_attempts(token, o);
            let Some(&i) = state.index.get(&o.id) else {
                receipt.not_owned += 1;
                continue;
            };
            let entry = &mut state.entries[i];
            if !entry.held_by(token) {
                receipt.not_owned += 1;
                continue;
            }
            entry.run_id.clone_from(&run_id);
            match o.outcome.sent_flag() {
                Some(flag) => {
                    entry.lease = None;
                    let writes = entry.result.as_ref().map_or(0, |r| r.writes) + 1;
                    entry.result = Some(StoredResult {
                        outcome: o.outcome.clone(),
                        sent_flag: flag,
                        dedup_key: o.dedup_key,
                        writes,
                        processed_at: SystemTime::now(),
                    });
                    state.open.remove(&i);
                    if let (1, Some(key)) = (flag, o.dedup_key) {
                        state.ledger.entry(key).or_default().texted = true;
                    }
                    receipt.written += 1;
                }
                None => {
                    let holds = matches!(
                        &o.outcome,
                        Outcome::Deferred { reason } if reason.holds_the_claim()
                    );
                    match entry.lease.as_mut() {
                        Some(lease) if holds => lease.held = true,
                        _ => entry.lease = None,
                    }
                    entry.attempts += 1;
                    receipt.released += 1;
                }
            }
        }
        Ok(receipt)
    }
}

#[async_trait]
impl RunLog for MemoryStore {
    async fn start_run(&self, run: &RunStart) -> Result<(), SinkError> {
        let mut state = self.lock();
        if !state.runs.iter().any(|r| r.start.id == run.id) {
            state.runs.push(RunRecord {
                start: run.clone(),
                end: None,
            });
        }
        state.current_run = Some(run.id.clone());
        Ok(())
    }

    async fn finish_run(&self, id: &RunId, end: &RunEnd) -> Result<(), SinkError> {
        let mut state = self.lock();
        match state.runs.iter_mut().find(|r| &r.start.id == id) {
            Some(run) => run.end = Some(end.clone()),
            None => state.runs.push(RunRecord {
                start: RunStart {
                    id: id.clone(),
                    worker: String::new(),
                    started_at: end.ended_at,
                },
                end: Some(end.clone()),
            }),
        }
        Ok(())
    }

    async fn recent_runs(&self, limit: usize) -> Result<Vec<RunRecord>, SinkError> {
        let mut runs = self.lock().runs.clone();
        runs.sort_by(|a, b| {
            (b.start.started_at, &b.start.id).cmp(&(a.start.started_at, &a.start.id))
        });
        runs.truncate(limit);
        Ok(runs)
    }

    async fn last_success(&self) -> Result<Option<RunRecord>, SinkError> {
        let state = self.lock();
        Ok(state
            .runs
            .iter()
            .filter_map(|r| r.end.as_ref().filter(|e| e.succeeded).map(|e| (e, r)))
            .max_by(|(a, ra), (b, rb)| (a.ended_at, &ra.start.id).cmp(&(b.ended_at, &rb.start.id)))
            .map(|(_, r)| r.clone()))
    }

    /// The claimable records; the memory store keeps no arrival times.
    async fn backlog(&self) -> Result<Backlog, SinkError> {
        let now = self.clock.now();
        let state = self.lock();
        let waiting = state
            .open
            .iter()
            .filter(|&&i| state.entries[i].claimable(now))
            .count();
        Ok(Backlog {
            records: u64::try_from(waiting).unwrap_or(u64::MAX),
            oldest_arrival: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use ca_notify_domain::{DeferReason, NotSentReason};

    use super::*;

    fn store(n: usize) -> MemoryStore {
        MemoryStore::with_records(
            (0..n).map(|i| RecipientRecord::new(format!("r{i}"), format!("+1415555{i:04}"))),
        )
    }

    fn outcome(id: &str, outcome: Outcome) -> RecordOutcome {
        RecordOutcome::new(id.into(), None, outcome)
    }

    const LEASE: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn claims_never_overlap_until_a_lease_expires() {
        let s = store(5);
        let a = s.claim(3, LEASE).await.expect("claim");
        let b = s.claim(3, LEASE).await.expect("claim");
        assert_eq!(a.records.len(), 3);
        assert_eq!(b.records.len(), 2, "only the unclaimed rest");
        assert_ne!(a.token, b.token);
        assert!(s.claim(3, LEASE).await.expect("claim").records.is_empty());
        tokio::time::advance(LEASE).await;
        let c = s.claim(10, LEASE).await.expect("claim");
        assert_eq!(c.records.len(), 5, "expired leases come back");
    }

    #[tokio::test(start_paused = true)]
    async fn write_back_is_atomic_idempotent_and_token_bound() {
        let s = store(3);
        let claim = s.claim(3, LEASE).await.expect("claim");
        let batch = [
            outcome("r0", Outcome::Sent),
            outcome(
                "r1",
                Outcome::not_sent(NotSentReason::NotSmsCapable {
                    line_type: "landline".into(),
                }),
            ),
            outcome("r2", Outcome::deferred(DeferReason::ValidationUnavailable)),
        ];
        let stranger = ClaimToken::new("a stranger");
        let refused = s.write_back(&stranger, &batch).await.expect("write");
        assert_eq!(refused.not_owned, 3);
        let receipt = s.write_back(&claim.token, &batch).await.expect("write");
        assert_eq!(
            (receipt.written, receipt.released, receipt.not_owned),
            (2, 1, 0)
        );
        let again = s.write_back(&claim.token, &batch).await.expect("write");
        assert_eq!(again.not_owned, 3, "the same write twice changes nothing");
        assert_eq!(s.outcome(&"r0".into()), Some(Outcome::Sent));
        assert_eq!(s.result(&"r1".into()).map(|r| r.sent_flag), Some(0));
        assert_eq!(s.outcome(&"r2".into()), None);
        assert_eq!(s.attempts(&"r2".into()), Some(1));
        assert!(s.claimed_ids().is_empty());
        assert_eq!(s.max_writes_per_record(), 1);
        let next = s.claim(10, LEASE).await.expect("claim");
        assert_eq!(next.records.len(), 1, "the deferred record comes back");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_record_is_held_until_its_lease_ends_and_its_attempts_kept() {
        use ca_notify_domain::AttemptAnswer;
        let s = store(2);
        let claim = s.claim(2, LEASE).await.expect("claim");
        let key = DedupKey::parse("00000000-0000-8000-8000-000000000007").expect("uuid");
        let mut held = outcome("r0", Outcome::deferred(DeferReason::NoAnswer));
        held.dedup_key = Some(key);
        held.attempts = vec![AttemptAnswer::NoAnswer];
        let receipt = s
            .write_back(
                &claim.token,
                &[held.clone(), outcome("r1", Outcome::Unconfirmed)],
            )
            .await
            .expect("write");
        assert_eq!((receipt.written, receipt.released), (1, 1));
        assert_eq!(s.held_ids(), vec![RecordId::from("r0")]);
        assert!(s.claimed_ids().is_empty(), "a hold is not a claim");
        assert_eq!(s.claim_token(&"r0".into()), None);
        let counts = s.counts();
        assert_eq!((counts.held, counts.claimed, counts.unconfirmed), (1, 0, 1));
        assert_eq!(s.key_history(&key).unanswered, 1);
        s.release(&claim.token, &["r0".into()])
            .await
            .expect("release");
        assert!(s.claim(2, LEASE).await.expect("claim").records.is_empty());
        tokio::time::advance(LEASE).await;
        let back = s.claim(2, LEASE).await.expect("claim");
        assert_eq!(back.records.len(), 1, "the hold ends with its lease");
        assert!(s.held_ids().is_empty());
        assert_eq!(s.attempts(&"r0".into()), Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn release_leaves_attempts_and_foreign_claims_alone() {
        let s = store(2);
        let a = s.claim(1, LEASE).await.expect("claim");
        let b = s.claim(1, LEASE).await.expect("claim");
        let all: Vec<RecordId> = vec!["r0".into(), "r1".into()];
        s.release(&a.token, &all).await.expect("release");
        assert_eq!(
            s.claimed_ids(),
            vec![RecordId::from("r1")],
            "b's claim stays"
        );
        assert_eq!(s.attempts(&"r0".into()), Some(0));
        s.release(&b.token, &all).await.expect("release");
        s.release(&b.token, &all).await.expect("twice is fine");
        assert!(s.claimed_ids().is_empty());
        assert_eq!(s.calls().releases, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_lease_retaken_by_another_worker_refuses_the_old_token() {
        let s = store(1);
        let old = s.claim(1, LEASE).await.expect("claim");
        tokio::time::advance(LEASE + Duration::from_secs(1)).await;
        let new = s.claim(1, LEASE).await.expect("claim");
        assert_eq!(new.records.len(), 1);
        let late = s
            .write_back(&old.token, &[outcome("r0", Outcome::Sent)])
            .await
            .expect("write");
        assert_eq!(late.not_owned, 1);
        assert_eq!(s.outcome(&"r0".into()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn injected_faults_fail_once_each_and_change_nothing() {
        let s = store(1);
        s.fail_next_claims(1, StoreFault::Unavailable);
        assert!(matches!(
            s.claim(1, LEASE).await,
            Err(SourceError::Unavailable(_))
        ));
        let claim = s.claim(1, LEASE).await.expect("claim");
        s.fail_next_writes(1, StoreFault::Misconfigured);
        let batch = [outcome("r0", Outcome::Sent)];
        assert!(matches!(
            s.write_back(&claim.token, &batch).await,
            Err(SinkError::Misconfigured(_))
        ));
        assert_eq!(s.outcome(&"r0".into()), None);
        assert_eq!(
            s.write_back(&claim.token, &batch)
                .await
                .expect("ok")
                .written,
            1
        );
        assert_eq!(s.calls().claims, 2);
        assert_eq!(s.calls().writes, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn peek_claims_nothing_and_latency_is_simulated() {
        let s = store(2).with_claim_latency(Duration::from_millis(300));
        assert_eq!(s.peek(5).await.expect("peek").len(), 2);
        let started = Instant::now();
        assert_eq!(s.claim(5, LEASE).await.expect("claim").records.len(), 2);
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        assert!(!s.insert(RecipientRecord::new("r0", "+14155550000")));
        assert_eq!(s.counts().claimed, 2);
    }
}
