//! The simulated server's state: uuid registry, daily quota, limiter, ledger, counters,
//! faults and the seeded RNG, behind one lock held only for short, await-free steps.
//!
//! A batch goes through the server's steps (`pkg/controller/issueapi/issue.go:86-177`):
//! every item is validated and committed in index order, then the SMS provider and
//! signer are looked up (a failure answers every item `internal_server_error`,
//! `errorAll`), then the sends run, concurrently on the real server, over one shared
//! latency here. [`Shared::commit_all`] does the first two steps; the sends are
//! [`Shared::start_sends`] (building and signing each message), [`Shared::accept_sends`]
//! (the provider takes or refuses each text) and then either [`Shared::finish_sends`]
//! or, when the client went away, [`Shared::cancel_sends`]. A failed or cancelled send
//! deletes the code row unless the delete fails; a message that cannot be built or
//! signed leaves it stored with no text sent (`send_sms.go:120-155`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use chrono::NaiveDate;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::sync::Notify;
use tokio::time::Instant;
use uuid::Uuid;

use super::limiter::{rfc1123_utc, Limiter, Taken};
use super::request::{check_item, check_test_type, ItemError, ItemRequest, Realm};
use super::{Fault, Faults, Ledger, SimConfig, SimStats, SmsProvider, SmsSigning};

/// Short code lifetime and long (SMS) code lifetime: the realm defaults
/// (`pkg/database/realm.go:137-143,227-230`).
const SHORT_EXPIRY: Duration = Duration::from_secs(15 * 60);
const LONG_EXPIRY: Duration = Duration::from_secs(24 * 60 * 60);

/// The message of every commit failure (`gen_code.go:97-102`).
const COMMIT_FAILED: &str = "failed to generate otp code, please try again";

/// The default template's label (`pkg/database/realm.go:157`).
const DEFAULT_TEMPLATE: &str = "Default SMS template";

/// The user-report template's label, present when the realm allows user reports
/// (`pkg/database/realm.go:160,590-601`).
const USER_REPORT_TEMPLATE: &str = "User Report";

/// Where a uuid stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Committed by this request, whose SMS sends have not finished.
    InFlight(u64),
    /// Stored, and its request has finished (texted, or stored without a text).
    Issued,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    stage: Stage,
    expires_at: i64,
    long_expires_at: i64,
    /// Someone used the code to get a token (`/api/verify`), which only the person who
    /// received the text can do.
    claimed: bool,
}

/// A code committed for one item, waiting for its SMS send.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The registry key (hyphenated lower-case uuid).
    pub uuid: String,
    /// E.164, empty when no phone was given.
    phone: String,
    label: String,
    /// The short code.
    pub code: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Unix seconds.
    pub long_expires_at: i64,
}

/// One item's answer.
pub type ItemResult = Result<Committed, ItemError>;

/// One request's items on their way through the sends.
#[derive(Debug)]
pub struct Batch {
    results: Vec<ItemResult>,
    sends: Vec<Send>,
}

/// One SMS send in progress.
#[derive(Debug)]
struct Send {
    index: usize,
    /// The provider refused the text (decided at the acceptance point).
    refusal: Option<ItemError>,
    /// The provider accepted the text: the person has it.
    delivered: bool,
}

struct QuotaBucket {
    limit: u32,
    started: Option<Instant>,
    used: u32,
}

struct Inner {
    limiter: Limiter,
    registry: HashMap<String, Entry>,
    ledger: Ledger,
    quota: Option<QuotaBucket>,
    stats: SimStats,
    rng: StdRng,
    faults: Faults,
    maintenance: bool,
    latency: Duration,
    sms_accept_after: Duration,
    sms_provider: SmsProvider,
    sms_signing: SmsSigning,
    delete_fails: bool,
    next_request: u64,
    busy: usize,
}

/// The state shared by every connection.
pub struct Shared {
    api_key: String,
    realm: Realm,
    allow_bulk: bool,
    quota_window: Duration,
    template_labels: Vec<String>,
    inner: Mutex<Inner>,
    idle: Notify,
}

/// Marks a batch request as being processed until dropped.
pub struct Busy(Arc<Shared>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.busy -= 1;
        if inner.busy == 0 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Shared {
    pub fn new(config: SimConfig) -> Self {
        Self {
            realm: Realm {
                past_days: config.past_days,
                require_date: config.require_date,
                allowed_test_types: config.allowed_test_types.clone(),
                allow_user_report: config.allow_user_report,
            },
            allow_bulk: config.allow_bulk,
            quota_window: config.quota_window,
            template_labels: config.sms_template_labels.clone(),
            inner: Mutex::new(Inner {
                limiter: Limiter::new(config.rate_limit),
                registry: HashMap::new(),
                ledger: Ledger::default(),
                quota: config.daily_quota.map(|limit| QuotaBucket {
                    limit,
                    started: None,
                    used: 0,
                }),
                stats: SimStats::default(),
                rng: StdRng::seed_from_u64(config.seed),
                faults: config.faults,
                maintenance: config.maintenance,
                latency: config.latency,
                sms_accept_after: config.sms_accept_after,
                sms_provider: config.sms_provider,
                sms_signing: config.sms_signing,
                delete_fails: config.delete_fails,
                next_request: 0,
                busy: 0,
            }),
            idle: Notify::new(),
            api_key: config.api_key,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    pub fn allow_bulk(&self) -> bool {
        self.allow_bulk
    }

    pub fn ledger(&self) -> Ledger {
        self.lock().ledger.clone()
    }

    pub fn stats(&self) -> SimStats {
        self.lock().stats
    }

    pub fn is_issued(&self, uuid: &str) -> bool {
        let Ok(parsed) = Uuid::parse_str(uuid.trim()) else {
            return false;
        };
        let key = parsed.hyphenated().to_string();
        matches!(
            self.lock().registry.get(&key),
            Some(Entry {
                stage: Stage::Issued,
                ..
            })
        )
    }

    /// `(claimed, expiresAt, longExpiresAt)` of a stored code, for checkcodestatus.
    pub fn code_status(&self, uuid: &str) -> Option<(bool, i64, i64)> {
        let key = Uuid::parse_str(uuid.trim()).ok()?.hyphenated().to_string();
        let inner = self.lock();
        let entry = inner.registry.get(&key)?;
        Some((entry.claimed, entry.expires_at, entry.long_expires_at))
    }

    /// Marks the stored code of `uuid` claimed, as the person's app does when they enter
    /// it; false when no code is stored under it.
    pub fn claim_code(&self, uuid: &str) -> bool {
        let Ok(parsed) = Uuid::parse_str(uuid.trim()) else {
            return false;
        };
        let key = parsed.hyphenated().to_string();
        match self.lock().registry.get_mut(&key) {
            Some(entry) => {
                entry.claimed = true;
                true
            }
            None => false,
        }
    }

    /// Counts a batch request as being processed until the guard is dropped.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.lock().busy += 1;
        Busy(self.clone())
    }

    /// Waits until no batch request is being processed.
    pub async fn settled(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.lock().busy == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Forgets every stored uuid whose request has finished (the cleanup job's purge).
    pub fn purge_uuids(&self) -> usize {
        let mut inner = self.lock();
        let before = inner.registry.len();
        inner
            .registry
            .retain(|_, entry| matches!(entry.stage, Stage::InFlight(_)));
        let purged = before - inner.registry.len();
        inner.stats.purges += 1;
        inner.stats.purged_uuids += purged as u64;
        purged
    }

    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    pub fn push_fault(&self, fault: Fault) {
        self.lock().faults.script.push_back(fault);
    }

    pub fn set_maintenance(&self, on: bool) {
        self.lock().maintenance = on;
    }

    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    pub fn set_sms_accept_after(&self, after: Duration) {
        self.lock().sms_accept_after = after;
    }

    pub fn set_sms_provider(&self, provider: SmsProvider) {
        self.lock().sms_provider = provider;
    }

    pub fn set_sms_signing(&self, signing: SmsSigning) {
        self.lock().sms_signing = signing;
    }

    pub fn set_delete_fails(&self, fails: bool) {
        self.lock().delete_fails = fails;
    }

    pub fn set_daily_quota(&self, quota: Option<u32>) {
        self.lock().quota = quota.map(|limit| QuotaBucket {
            limit,
            started: None,
            used: 0,
        });
    }

    pub fn maintenance(&self) -> bool {
        self.lock().maintenance
    }

    /// The request's send latency and, within it, when the provider accepts.
    pub fn send_timing(&self) -> (Duration, Duration) {
        let inner = self.lock();
        (inner.latency, inner.sms_accept_after)
    }

    pub fn count_request(&self) {
        self.lock().stats.requests += 1;
    }

    pub fn count_unauthorized(&self) {
        self.lock().stats.unauthorized += 1;
    }

    pub fn count_rate_limited(&self) {
        self.lock().stats.rate_limited += 1;
    }

    pub fn count_dropped(&self) {
        self.lock().stats.dropped_connections += 1;
    }

    pub fn count_injected_error(&self) {
        self.lock().stats.injected_errors += 1;
    }

    /// The next request's fault: the script's head, else a random draw.
    pub fn next_fault(&self) -> Fault {
        let mut inner = self.lock();
        if let Some(fault) = inner.faults.script.pop_front() {
            return fault;
        }
        let (before, error_after, drop_after) = (
            inner.faults.drop_before_issue,
            inner.faults.error_after_issue,
            inner.faults.drop_after_issue,
        );
        if before <= 0.0 && error_after <= 0.0 && drop_after <= 0.0 {
            return Fault::None;
        }
        let draw: f64 = inner.rng.random();
        if draw < before {
            Fault::DropBeforeIssue
        } else if draw < before + error_after {
            Fault::ErrorAfterIssue
        } else if draw < before + error_after + drop_after {
            Fault::DropAfterIssue
        } else {
            Fault::None
        }
    }

    /// Takes a limiter token.
    pub fn take_token(&self) -> Taken {
        self.lock().limiter.take(Instant::now())
    }

    /// Validates and commits every item in index order, as one request, then looks up
    /// the SMS provider and signer: when that fails, `errorAll` answers every item
    /// `internal_server_error`, keeping each one's HTTP status (200 for a committed
    /// one) and its stored row (`issue.go:95-130,250-255`).
    pub fn commit_all(&self, items: &[ItemRequest], today: NaiveDate) -> Batch {
        let mut inner = self.lock();
        inner.next_request += 1;
        let request = inner.next_request;
        inner.stats.batches += 1;
        inner.stats.items += items.len() as u64;
        let mut results: Vec<ItemResult> = items
            .iter()
            .map(|item| self.commit_one(&mut inner, item, request, today))
            .collect();
        if matches!(
            inner.sms_provider,
            SmsProvider::LoadFails | SmsProvider::LoadFailsBeforeCommit
        ) {
            for result in &mut results {
                let status = match result {
                    Ok(committed) => {
                        settle_row(&mut inner, &committed.uuid);
                        200
                    }
                    Err(error) => error.status,
                };
                *result = Err(ItemError::new(
                    status,
                    "internal_server_error",
                    "internal error",
                ));
            }
            inner.stats.error_all_items += results.len() as u64;
        }
        Batch {
            results,
            sends: Vec::new(),
        }
    }

    fn commit_one(
        &self,
        inner: &mut Inner,
        item: &ItemRequest,
        request: u64,
        today: NaiveDate,
    ) -> ItemResult {
        let phone = check_item(item, &self.realm, today)?;
        if !phone.is_empty() {
            match inner.sms_provider {
                SmsProvider::Missing => {
                    inner.stats.no_sms_provider += 1;
                    return Err(ItemError::new(
                        400,
                        "",
                        "phone provided, but no sms provider is configured",
                    ));
                }
                SmsProvider::LoadFailsBeforeCommit => {
                    return Err(ItemError::new(
                        500,
                        "internal_server_error",
                        "failed to get sms provider",
                    ));
                }
                SmsProvider::Configured | SmsProvider::LoadFails => {}
            }
        }
        let raw_uuid = item
            .uuid
            .as_deref()
            .unwrap_or("")
            .trim_matches(|c: char| c.is_whitespace() || c.is_control());
        // A non-UUID string is "not found" by the lookup and fails the insert later.
        let parsed = (!raw_uuid.is_empty())
            .then(|| Uuid::parse_str(raw_uuid).ok())
            .flatten()
            .map(|u| u.hyphenated().to_string());
        if let Some(key) = &parsed {
            // Each commit is its own transaction, done before any send, so the lookup
            // sees the rows of requests still sending (and earlier items of this one).
            if let Some(entry) = inner.registry.get(key) {
                if matches!(entry.stage, Stage::InFlight(owner) if owner != request) {
                    inner.stats.in_flight_conflicts += 1;
                }
                return Err(already_exists(inner, raw_uuid));
            }
        }
        let test_type = check_test_type(item, &self.realm)?;
        self.take_quota(inner)?;
        if test_type == "user-report" && phone.is_empty() {
            return Err(ItemError::new(
                400,
                "missing_phone",
                "phone number is required when initiating a user report",
            ));
        }
        if item
            .external_issuer_id
            .as_deref()
            .unwrap_or("")
            .chars()
            .count()
            > 255
        {
            return Err(ItemError::new(500, "internal_server_error", COMMIT_FAILED));
        }
        let key = match (raw_uuid.is_empty(), parsed) {
            (true, _) => Uuid::from_u128(inner.rng.random()).hyphenated().to_string(),
            (false, Some(key)) => key,
            (false, None) => {
                return Err(ItemError::new(500, "internal_server_error", COMMIT_FAILED))
            }
        };
        let now = unix_now();
        let entry = Entry {
            stage: Stage::InFlight(request),
            expires_at: now + SHORT_EXPIRY.as_secs() as i64,
            long_expires_at: now + LONG_EXPIRY.as_secs() as i64,
            claimed: false,
        };
        inner.registry.insert(key.clone(), entry);
        let code = format!("{:08}", inner.rng.random_range(0..100_000_000u32));
        Ok(Committed {
            uuid: key,
            phone,
            label: item.sms_template_label.clone().unwrap_or_default(),
            code,
            expires_at: entry.expires_at,
            long_expires_at: entry.long_expires_at,
        })
    }

    fn take_quota(&self, inner: &mut Inner) -> Result<(), ItemError> {
        let Some(quota) = inner.quota.as_mut() else {
            return Ok(());
        };
        let now = Instant::now();
        let started = *quota.started.get_or_insert(now);
        if now.duration_since(started) >= self.quota_window {
            quota.started = Some(now);
            quota.used = 0;
        }
        if quota.used >= quota.limit {
            inner.stats.quota_exceeded += 1;
            return Err(ItemError::new(
                429,
                "quota_exceeded",
                "exceeded daily realm quota configured from abuse prevention, please contact a realm administrator",
            ));
        }
        quota.used += 1;
        Ok(())
    }

    /// Whether the realm has a template for this label: the default one always; an
    /// alternate one only if listed. A realm with no alternate templates at all sends
    /// every label with the default template (`realm.go:815-823`).
    fn has_template(&self, label: &str) -> bool {
        label.is_empty()
            || label == DEFAULT_TEMPLATE
            || self.template_labels.is_empty()
            || self.template_labels.iter().any(|known| known == label)
            || (label == USER_REPORT_TEMPLATE && self.realm.allow_user_report)
    }

    /// Starts the sends: items without a phone are done; each message is built and
    /// signed, and one that cannot be fails `sms_failure` with its row kept, as the
    /// build returns before the delete (`send_sms.go:85-131`).
    pub fn start_sends(&self, batch: &mut Batch) {
        let mut inner = self.lock();
        for (index, result) in batch.results.iter_mut().enumerate() {
            let Ok(committed) = result else { continue };
            if committed.phone.is_empty() {
                mark_issued(&mut inner, &committed.uuid);
                continue;
            }
            let failure = if !self.has_template(&committed.label) {
                Some(format!(
                    "failed to send sms: failed to build sms message: no template found for label {}",
                    committed.label
                ))
            } else if inner.sms_signing == SmsSigning::FailsClosed {
                // `SignSMS` and `BuildSMS` both say so (`signatures/sms.go:56-59`).
                Some(
                    "failed to send sms: failed to sign sms: failed to sign sms: the simulated signing key is unavailable"
                        .to_owned(),
                )
            } else {
                None
            };
            match failure {
                Some(message) => {
                    settle_row(&mut inner, &committed.uuid);
                    inner.stats.sms_failures += 1;
                    inner.stats.build_failures += 1;
                    *result = Err(ItemError::new(400, "sms_failure", message));
                }
                None => batch.sends.push(Send {
                    index,
                    refusal: None,
                    delivered: false,
                }),
            }
        }
    }

    /// The provider's acceptance point: each text is refused (a scripted or random
    /// fault) or delivered, and then the person has it whatever happens next.
    pub fn accept_sends(&self, batch: &mut Batch, fault: &Fault) {
        let mut inner = self.lock();
        for send in &mut batch.sends {
            let Ok(committed) = &batch.results[send.index] else {
                continue;
            };
            let index = send.index;
            let queue_full = matches!(fault, Fault::SmsQueueFull(ix) if ix.contains(&index));
            let scripted_failure = matches!(fault, Fault::SmsFailure(ix) if ix.contains(&index));
            let probability = inner.faults.sms_failure;
            let random_failure = probability > 0.0 && inner.rng.random::<f64>() < probability;
            if queue_full {
                send.refusal = Some(ItemError::new(
                    400,
                    "sms_queue_full",
                    "failed to send sms: queue is full: Twilio error 21611: This 'From' number has exceeded the maximum number of queued messages",
                ));
            } else if scripted_failure || random_failure {
                // Twilio's own text names the number; the server passes it through.
                send.refusal = Some(ItemError::new(
                    400,
                    "sms_failure",
                    format!(
                        "failed to send sms: The 'To' number {} is not a valid phone number.",
                        committed.phone
                    ),
                ));
            } else {
                inner.ledger.record(&committed.phone);
                inner.stats.texts += 1;
                send.delivered = true;
            }
        }
    }

    /// The provider answered every send: refused ones delete their rows (unless the
    /// delete fails), delivered ones are issued. Returns every item's answer.
    pub fn finish_sends(&self, batch: Batch) -> Vec<ItemResult> {
        let Batch { mut results, sends } = batch;
        let mut inner = self.lock();
        for send in sends {
            let Ok(committed) = &results[send.index] else {
                continue;
            };
            match send.refusal {
                Some(refusal) => {
                    delete_row(&mut inner, &committed.uuid);
                    inner.stats.sms_failures += 1;
                    results[send.index] = Err(refusal);
                }
                None => mark_issued(&mut inner, &committed.uuid),
            }
        }
        results
    }

    /// The client went away: the request's context is cancelled, so every send still
    /// running fails and deletes its row (unless the delete fails), texts the provider
    /// already accepted included (`send_sms.go:134-151`).
    pub fn cancel_sends(&self, batch: Batch) {
        let mut inner = self.lock();
        for send in batch.sends {
            let Ok(committed) = &batch.results[send.index] else {
                continue;
            };
            inner.stats.cancelled_sends += 1;
            let kept = inner.delete_fails;
            delete_row(&mut inner, &committed.uuid);
            if send.delivered {
                inner.stats.texts_on_cancelled_sends += 1;
                if !kept {
                    // The person holds a text whose code no longer exists.
                    inner.ledger.record_dead(&committed.phone);
                }
            }
        }
    }

    /// Random bytes for padding, 1024–2047 of them (`pkg/api/api.go:144-168`).
    pub fn padding(&self) -> String {
        let mut inner = self.lock();
        let len = inner.rng.random_range(1024..2048);
        let mut bytes = vec![0u8; len];
        inner.rng.fill(&mut bytes[..]);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}

/// The row stays and its request is done with it, with no text.
fn settle_row(inner: &mut Inner, uuid: &str) {
    if let Some(entry) = inner.registry.get_mut(uuid) {
        entry.stage = Stage::Issued;
    }
}

/// The hard delete after a failed send (`send_sms.go:143-147`; `vercode.go:351-357`);
/// when it fails, the server only logs it and the row stays.
fn delete_row(inner: &mut Inner, uuid: &str) {
    if inner.delete_fails {
        inner.stats.failed_deletes += 1;
        settle_row(inner, uuid);
    } else {
        inner.registry.remove(uuid);
    }
}

fn mark_issued(inner: &mut Inner, uuid: &str) {
    if let Some(entry) = inner.registry.get_mut(uuid) {
        entry.stage = Stage::Issued;
        inner.stats.issued += 1;
    }
}

fn already_exists(inner: &mut Inner, uuid: &str) -> ItemError {
    inner.stats.already_exists += 1;
    ItemError::new(
        409,
        "uuid_already_exists",
        format!("code for {uuid} already exists"),
    )
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Go `time.RFC1123` of a unix time.
pub fn rfc1123_of(unix: i64) -> String {
    rfc1123_utc(UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(uuid: &str) -> ItemRequest {
        serde_json::from_value(serde_json::json!({
            "testType": "confirmed", "phone": "+12065550100", "uuid": uuid,
        }))
        .expect("item")
    }

    const A: &str = "00000000-0000-4000-8000-00000000000a";
    const B: &str = "00000000-0000-4000-8000-00000000000b";

    fn today() -> NaiveDate {
        chrono::Utc::now().date_naive()
    }

    #[test]
    fn a_purge_keeps_the_rows_of_requests_still_sending() {
        let shared = Shared::new(SimConfig::default());
        let mut done = shared.commit_all(&[item(A)], today());
        shared.start_sends(&mut done);
        shared.accept_sends(&mut done, &Fault::None);
        shared.finish_sends(done);
        let mut sending = shared.commit_all(&[item(B)], today());
        shared.start_sends(&mut sending);
        assert_eq!(shared.purge_uuids(), 1);
        assert!(shared.code_status(A).is_none());
        assert!(shared.code_status(B).is_some(), "a brand-new row");
        shared.accept_sends(&mut sending, &Fault::None);
        assert!(shared.finish_sends(sending)[0].is_ok());
        assert!(shared.is_issued(B));
    }

    #[test]
    fn error_all_keeps_each_items_status_and_every_committed_row() {
        let shared = Shared::new(SimConfig {
            sms_provider: SmsProvider::LoadFails,
            ..SimConfig::default()
        });
        let first = shared.commit_all(&[item(A)], today());
        assert_eq!(first.results[0].as_ref().expect_err("errorAll").status, 200);
        let second = shared.commit_all(&[item(A), item(B)], today());
        let statuses: Vec<u16> = second
            .results
            .iter()
            .map(|r| r.as_ref().expect_err("errorAll").status)
            .collect();
        assert_eq!(statuses, vec![409, 200]);
        assert!(shared.is_issued(A) && shared.is_issued(B));
        assert!(second.sends.is_empty());
    }

    #[test]
    fn a_cancelled_send_deletes_its_row_after_the_provider_had_the_text() {
        let shared = Shared::new(SimConfig::default());
        let mut batch = shared.commit_all(&[item(A)], today());
        shared.start_sends(&mut batch);
        shared.accept_sends(&mut batch, &Fault::None);
        shared.cancel_sends(batch);
        assert_eq!(shared.ledger().texts_to("+12065550100"), 1);
        assert!(shared.code_status(A).is_none());
        let stats = shared.stats();
        assert_eq!(
            (stats.cancelled_sends, stats.texts_on_cancelled_sends),
            (1, 1)
        );
    }
}
