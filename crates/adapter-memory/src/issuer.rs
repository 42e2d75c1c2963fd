//! `MemoryIssuer`: an SMS issuer that behaves like the verification server where it counts.
//!
//! Like the server it remembers every uuid it issued and answers a second request for the
//! same uuid `AlreadyExists` without a second text (`uuid_already_exists`, HTTP 409), and
//! refuses batches of more than 10. It keeps a ledger of texts per phone so tests can
//! prove nobody was texted twice (the ledger is in memory only and never printed). A daily
//! quota, latency and scripted per-call answers or errors (partial failures, 429 with a
//! reset time, quota exhausted, unauthorized, …) make the engine's every branch reachable.
//! For benchmarks over millions of records the ledger can be switched off, so memory stays
//! flat; the issuer then answers `Issued` to every item and only counts.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use ca_notify_domain::{DedupKey, ItemAnswer, PhoneNumber};
use ca_notify_ports::{IssueError, IssueItem, SmsIssuer, MAX_BATCH_ITEMS};
use tokio::time::{sleep, sleep_until, Instant};

/// A whole-request failure to script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuerFault {
    /// 429 from the server's limiter, resetting at `until`.
    RateLimited {
        /// When the limiter resets.
        until: Instant,
    },
    /// `quota_exceeded` for the whole request.
    QuotaExhausted,
    /// Maintenance, a full queue, or 5xx past the retry budget.
    Unavailable,
    /// 401/403.
    Unauthorized,
    /// A permanent whole-request 400.
    Rejected,
    /// A request that may have reached the server and got no answer.
    NoAnswer,
    /// Anything else.
    Unknown,
}

impl IssuerFault {
    fn error(self) -> IssueError {
        match self {
            Self::RateLimited { until } => IssueError::RateLimited { until },
            Self::QuotaExhausted => IssueError::QuotaExhausted,
            Self::Unavailable => IssueError::Unavailable("injected: maintenance_mode".into()),
            Self::Unauthorized => IssueError::Unauthorized("injected: 401".into()),
            Self::Rejected => IssueError::Rejected("injected: bulk issue disabled".into()),
            Self::NoAnswer => IssueError::NoAnswer {
                message: "injected: the connection dropped".into(),
                may_still_run: true,
            },
            Self::Unknown => IssueError::Unknown(anyhow::anyhow!("injected: unknown failure")),
        }
    }
}

/// What the next call answers instead of the normal behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scripted {
    /// Per-item answers in request order. `Issued` goes through the normal semantics
    /// (a known uuid still answers `AlreadyExists`); other answers are returned as they are,
    /// with no text sent; items past the end of the list answer `Missing`.
    Answers(Vec<ItemAnswer>),
    /// The whole request fails.
    Fail(IssuerFault),
}

#[derive(Default)]
struct Ledger {
    uuids: HashSet<DedupKey>,
    texts: HashMap<PhoneNumber, u32>,
}

/// An in-memory SMS issuer.
pub struct MemoryIssuer {
    ledger: Option<Mutex<Ledger>>,
    quota: Option<u64>,
    latency: Duration,
    requests: AtomicU64,
    items: AtomicU64,
    texts: AtomicU64,
    queued: AtomicUsize,
    script: Mutex<VecDeque<Scripted>>,
}

impl fmt::Debug for MemoryIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryIssuer")
            .field("ledger", &self.ledger.is_some())
            .field("quota", &self.quota)
            .field("latency", &self.latency)
            .field("requests", &self.requests())
            .field("texts", &self.total_texts())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryIssuer {
    fn default() -> Self {
        Self {
            ledger: Some(Mutex::new(Ledger::default())),
            quota: None,
            latency: Duration::ZERO,
            requests: AtomicU64::new(0),
            items: AtomicU64::new(0),
            texts: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
            script: Mutex::new(VecDeque::new()),
        }
    }
}

impl MemoryIssuer {
    /// An issuer with a uuid ledger and no quota.
    pub fn new() -> Self {
        Self::default()
    }

    /// An issuer that keeps no ledger: every item is `Issued`, only counts are kept.
    /// For benchmarks, where a ledger of millions of uuids would dwarf the engine.
    pub fn without_ledger() -> Self {
        Self {
            ledger: None,
            ..Self::default()
        }
    }

    /// After `codes` texts, items answer `quota_exceeded` (as the server does per item).
    #[must_use]
    pub fn with_quota(mut self, codes: u64) -> Self {
        self.quota = Some(codes);
        self
    }

    /// Each request takes this long (one that would end past its deadline returns
    /// `Unavailable` at the deadline, issuing nothing).
    #[must_use]
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Queues answers for the next calls, one entry per call.
    pub fn script(&self, calls: impl IntoIterator<Item = Scripted>) {
        let mut script = self.lock_script();
        script.extend(calls);
        self.queued.store(script.len(), Ordering::Release);
    }

    /// Requests received (failed ones included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Items received over all requests.
    pub fn items_received(&self) -> u64 {
        self.items.load(Ordering::Relaxed)
    }

    /// Texts sent.
    pub fn total_texts(&self) -> u64 {
        self.texts.load(Ordering::Relaxed)
    }

    /// Texts sent to one phone (0 without a ledger).
    pub fn texts_to(&self, phone: &PhoneNumber) -> u32 {
        self.with_ledger(|l| l.texts.get(phone).copied().unwrap_or(0))
    }

    /// The most texts any one phone received (1 in a correct run; 0 without a ledger).
    pub fn max_texts_per_phone(&self) -> u32 {
        self.with_ledger(|l| l.texts.values().copied().max().unwrap_or(0))
    }

    /// Phones texted at least once (0 without a ledger).
    pub fn phones_texted(&self) -> usize {
        self.with_ledger(|l| l.texts.len())
    }

    /// Whether a uuid was issued.
    pub fn knows(&self, uuid: &DedupKey) -> bool {
        self.with_ledger(|l| l.uuids.contains(uuid))
    }

    fn with_ledger<T: Default>(&self, f: impl FnOnce(&Ledger) -> T) -> T {
        self.ledger
            .as_ref()
            .map(|m| f(&m.lock().unwrap_or_else(|e| e.into_inner())))
            .unwrap_or_default()
    }

    fn lock_script(&self) -> MutexGuard<'_, VecDeque<Scripted>> {
        self.script.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next_scripted(&self) -> Option<Scripted> {
        // The counter keeps the common unscripted path free of the lock.
        if self.queued.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut script = self.lock_script();
        let next = script.pop_front();
        self.queued.store(script.len(), Ordering::Release);
        next
    }

    /// The server's semantics for one item that is to be issued.
    fn issue_one(&self, ledger: Option<&mut Ledger>, item: &IssueItem) -> ItemAnswer {
        let Some(ledger) = ledger else {
            self.texts.fetch_add(1, Ordering::Relaxed);
            return ItemAnswer::Issued;
        };
        if ledger.uuids.contains(&item.uuid) {
            return ItemAnswer::AlreadyExists;
        }
        if self
            .quota
            .is_some_and(|quota| self.texts.load(Ordering::Relaxed) >= quota)
        {
            return ItemAnswer::failed("quota_exceeded");
        }
        ledger.uuids.insert(item.uuid);
        *ledger.texts.entry(item.phone.clone()).or_default() += 1;
        self.texts.fetch_add(1, Ordering::Relaxed);
        ItemAnswer::Issued
    }
}

#[async_trait]
impl SmsIssuer for MemoryIssuer {
    async fn issue_batch(
        &self,
        items: &[IssueItem],
        deadline: Instant,
    ) -> Result<Vec<ItemAnswer>, IssueError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.items.fetch_add(items.len() as u64, Ordering::Relaxed);
        if !self.latency.is_zero() {
            if Instant::now() + self.latency > deadline {
                sleep_until(deadline).await;
                return Err(IssueError::Unavailable(
                    "the deadline came before an answer".into(),
                ));
            }
            sleep(self.latency).await;
        }
        // The server's own limit (`handle_issue_batch.go:30`).
        if items.len() > MAX_BATCH_ITEMS {
            return Err(IssueError::Rejected(format!(
                "a batch holds at most {MAX_BATCH_ITEMS} codes, got {}",
                items.len()
            )));
        }
        let scripted = match self.next_scripted() {
            Some(Scripted::Fail(fault)) => return Err(fault.error()),
            Some(Scripted::Answers(answers)) => Some(answers),
            None => None,
        };
        let mut guard = self
            .ledger
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
        let answers = items
            .iter()
            .enumerate()
            .map(|(i, item)| match scripted.as_ref().map(|s| s.get(i)) {
                None | Some(Some(ItemAnswer::Issued)) => self.issue_one(guard.as_deref_mut(), item),
                Some(Some(other)) => other.clone(),
                Some(None) => ItemAnswer::Missing,
            })
            .collect();
        Ok(answers)
    }

    /// The configured latency: the memory issuer answers after exactly that long.
    fn max_request_duration(&self) -> Duration {
        self.latency
    }
}

#[cfg(test)]
mod tests {
    use ca_notify_domain::{DedupSecret, PhoneParser};

    use super::*;

    fn item(n: u32) -> IssueItem {
        let phone = PhoneParser::default()
            .parse(&format!("+1415555{n:04}"))
            .expect("valid");
        let secret = DedupSecret::new("sixteen bytes or more".to_owned().into()).expect("long");
        IssueItem {
            uuid: DedupKey::derive(&secret, &phone, None, &format!("r{n}").as_str().into()),
            phone,
            test_type: None,
            test_date: None,
            symptom_date: None,
            tz_offset: 0,
        }
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[tokio::test]
    async fn a_known_uuid_is_not_texted_again() {
        let issuer = MemoryIssuer::new();
        let batch = [item(1), item(2)];
        let first = issuer.issue_batch(&batch, far()).await.expect("ok");
        assert_eq!(first, vec![ItemAnswer::Issued, ItemAnswer::Issued]);
        let second = issuer.issue_batch(&batch, far()).await.expect("ok");
        assert_eq!(second, vec![ItemAnswer::AlreadyExists; 2]);
        assert_eq!(issuer.total_texts(), 2);
        assert_eq!(issuer.texts_to(&batch[0].phone), 1);
        assert_eq!(issuer.max_texts_per_phone(), 1);
        assert!(issuer.knows(&batch[1].uuid));
        assert_eq!(issuer.requests(), 2);
    }

    #[tokio::test]
    async fn scripted_answers_and_faults_come_first_then_normal_service() {
        let issuer = MemoryIssuer::new();
        issuer.script([
            Scripted::Answers(vec![ItemAnswer::Issued, ItemAnswer::failed("sms_failure")]),
            Scripted::Fail(IssuerFault::QuotaExhausted),
        ]);
        let batch = [item(1), item(2), item(3)];
        let answers = issuer.issue_batch(&batch, far()).await.expect("ok");
        assert_eq!(
            answers,
            vec![
                ItemAnswer::Issued,
                ItemAnswer::failed("sms_failure"),
                ItemAnswer::Missing
            ]
        );
        assert_eq!(issuer.total_texts(), 1, "failed items send nothing");
        assert!(matches!(
            issuer.issue_batch(&batch, far()).await,
            Err(IssueError::QuotaExhausted)
        ));
        let answers = issuer.issue_batch(&batch, far()).await.expect("ok");
        assert_eq!(
            answers,
            vec![
                ItemAnswer::AlreadyExists,
                ItemAnswer::Issued,
                ItemAnswer::Issued
            ]
        );
    }

    #[tokio::test]
    async fn quota_and_batch_limit_follow_the_server() {
        let issuer = MemoryIssuer::new().with_quota(1);
        let answers = issuer
            .issue_batch(&[item(1), item(2)], far())
            .await
            .expect("ok");
        assert_eq!(
            answers,
            vec![ItemAnswer::Issued, ItemAnswer::failed("quota_exceeded")]
        );
        let eleven: Vec<IssueItem> = (0..11).map(item).collect();
        assert!(matches!(
            issuer.issue_batch(&eleven, far()).await,
            Err(IssueError::Rejected(_))
        ));
    }

    #[tokio::test]
    async fn without_a_ledger_everything_is_issued_and_counted() {
        let issuer = MemoryIssuer::without_ledger();
        let batch = [item(1), item(1)];
        let answers = issuer.issue_batch(&batch, far()).await.expect("ok");
        assert_eq!(answers, vec![ItemAnswer::Issued; 2]);
        assert_eq!(issuer.total_texts(), 2);
        assert_eq!(issuer.max_texts_per_phone(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn latency_respects_the_deadline() {
        let issuer = MemoryIssuer::new().with_latency(Duration::from_millis(500));
        let soon = Instant::now() + Duration::from_millis(200);
        assert!(matches!(
            issuer.issue_batch(&[item(1)], soon).await,
            Err(IssueError::Unavailable(_))
        ));
        assert_eq!(issuer.total_texts(), 0);
        let started = Instant::now();
        issuer.issue_batch(&[item(1)], far()).await.expect("ok");
        assert_eq!(started.elapsed(), Duration::from_millis(500));
    }
}
