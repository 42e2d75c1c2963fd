//! The simulated server's state: uuid registry, daily quota, limiter, ledger, counters,
//! faults and the seeded RNG, behind one lock held only for short, await-free steps.
//!
//! A batch is processed like the server does it (`pkg/controller/issueapi/issue.go:95-174`):
//! every item is validated and committed in index order ([`Shared::commit_all`]), then
//! the SMS sends run, concurrently on the real server, after one shared latency here
//! ([`Shared::send_all`]). A failed send deletes the code; a template that cannot be
//! built leaves it stored with no text sent (`send_sms.go:125-152`).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use chrono::NaiveDate;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::time::Instant;
use uuid::Uuid;

use super::limiter::{rfc1123_utc, Limiter, Taken};
use super::request::{check_item, check_test_type, ItemError, ItemRequest, Realm};
use super::{Fault, Faults, Ledger, SimConfig, SimStats};

/// Short code lifetime and long (SMS) code lifetime: the realm defaults
/// (`pkg/database/realm.go:137-143,227-230`).
const SHORT_EXPIRY: Duration = Duration::from_secs(15 * 60);
const LONG_EXPIRY: Duration = Duration::from_secs(24 * 60 * 60);

/// The message of every commit failure (`gen_code.go:97-102`).
const COMMIT_FAILED: &str = "failed to generate otp code, please try again";

/// Where a uuid stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Committed by this request, whose SMS sends have not finished.
    InFlight(u64),
    /// Issued (texted, or stored without a text).
    Issued,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    stage: Stage,
    expires_at: i64,
    long_expires_at: i64,
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
    next_request: u64,
}

/// The state shared by every connection.
pub struct Shared {
    api_key: String,
    realm: Realm,
    allow_bulk: bool,
    quota_window: Duration,
    template_labels: Vec<String>,
    inner: Mutex<Inner>,
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
                next_request: 0,
            }),
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

    /// `(claimed, expiresAt, longExpiresAt)` of an issued code, for checkcodestatus.
    pub fn code_status(&self, uuid: &str) -> Option<(i64, i64)> {
        let key = Uuid::parse_str(uuid.trim()).ok()?.hyphenated().to_string();
        let inner = self.lock();
        let entry = inner.registry.get(&key)?;
        Some((entry.expires_at, entry.long_expires_at))
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

    pub fn latency(&self) -> Duration {
        self.lock().latency
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

    /// Validates and commits every item in index order, as one request.
    pub fn commit_all(&self, items: &[ItemRequest], today: NaiveDate) -> Vec<ItemResult> {
        let mut inner = self.lock();
        inner.next_request += 1;
        let request = inner.next_request;
        inner.stats.batches += 1;
        inner.stats.items += items.len() as u64;
        items
            .iter()
            .map(|item| self.commit_one(&mut inner, item, request, today))
            .collect()
    }

    fn commit_one(
        &self,
        inner: &mut Inner,
        item: &ItemRequest,
        request: u64,
        today: NaiveDate,
    ) -> ItemResult {
        let phone = check_item(item, &self.realm, today)?;
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
            match inner.registry.get(key).map(|e| e.stage) {
                Some(Stage::Issued) => return Err(already_exists(inner, raw_uuid)),
                // Commits run in order, so a later duplicate in the same batch finds it.
                Some(Stage::InFlight(owner)) if owner == request => {
                    return Err(already_exists(inner, raw_uuid))
                }
                _ => {}
            }
        }
        let test_type = check_test_type(item, &self.realm)?;
        self.take_quota(inner)?;
        if test_type == "user-report" && phone.is_empty() {
            return Err(ItemError::new(
                400,
                "missing_phone",
                "phone number is required for user-report",
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
        if let Some(Entry {
            stage: Stage::InFlight(_),
            ..
        }) = inner.registry.get(&key)
        {
            // Both requests passed the lookup; the unique index fails the later insert.
            inner.stats.in_flight_conflicts += 1;
            return Err(ItemError::new(500, "internal_server_error", COMMIT_FAILED));
        }
        let now = unix_now();
        let entry = Entry {
            stage: Stage::InFlight(request),
            expires_at: now + SHORT_EXPIRY.as_secs() as i64,
            long_expires_at: now + LONG_EXPIRY.as_secs() as i64,
        };
        inner.registry.insert(key.clone(), entry);
        let code = format!("{:08}", inner.rng.random_range(0..100_000_000u32));
        let mut label = item.sms_template_label.clone().unwrap_or_default();
        if label.is_empty() && test_type == "user-report" {
            label = "User Report".to_owned();
        }
        Ok(Committed {
            uuid: key,
            phone,
            label,
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

    /// Runs the SMS sends of one request's committed items.
    pub fn send_all(&self, results: &mut [ItemResult], fault: &Fault) {
        let mut inner = self.lock();
        for (index, result) in results.iter_mut().enumerate() {
            let Ok(committed) = result else { continue };
            let outcome = self.send_one(&mut inner, committed, index, fault);
            if let Err(error) = outcome {
                *result = Err(error);
            }
        }
    }

    fn send_one(
        &self,
        inner: &mut Inner,
        committed: &Committed,
        index: usize,
        fault: &Fault,
    ) -> Result<(), ItemError> {
        let known_label = committed.label.is_empty()
            || committed.label == "Default SMS template"
            || committed.label == "User Report"
            || self.template_labels.contains(&committed.label);
        if committed.phone.is_empty() {
            mark_issued(inner, &committed.uuid);
            return Ok(());
        }
        if !known_label {
            // The build fails before any delete: the code stays, no text is sent.
            if let Some(entry) = inner.registry.get_mut(&committed.uuid) {
                entry.stage = Stage::Issued;
            }
            inner.stats.sms_failures += 1;
            return Err(ItemError::new(
                400,
                "sms_failure",
                format!(
                    "failed to send sms: failed to build sms message: no template found for label {}",
                    committed.label
                ),
            ));
        }
        let queue_full = matches!(fault, Fault::SmsQueueFull(ix) if ix.contains(&index));
        let scripted_failure = matches!(fault, Fault::SmsFailure(ix) if ix.contains(&index));
        let probability = inner.faults.sms_failure;
        let random_failure = probability > 0.0 && inner.rng.random::<f64>() < probability;
        if queue_full || scripted_failure || random_failure {
            inner.registry.remove(&committed.uuid);
            inner.stats.sms_failures += 1;
            return Err(if queue_full {
                ItemError::new(
                    400,
                    "sms_queue_full",
                    "failed to send sms: queue is full: Twilio error 21611: This 'From' number has exceeded the maximum number of queued messages",
                )
            } else {
                // Twilio's own text names the number; the server passes it through.
                ItemError::new(
                    400,
                    "sms_failure",
                    format!(
                        "failed to send sms: The 'To' number {} is not a valid phone number.",
                        committed.phone
                    ),
                )
            });
        }
        inner.ledger.record(&committed.phone);
        inner.stats.texts += 1;
        mark_issued(inner, &committed.uuid);
        Ok(())
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
