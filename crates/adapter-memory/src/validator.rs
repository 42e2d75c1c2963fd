//! `MemoryValidator`: a phone validator that answers by rule, for tests, demos and benches.
//!
//! The default rule is deterministic and easy to aim at in test data: an E.164 number
//! ending in `00` is a landline (not SMS-capable), one ending in `99` is invalid, every
//! other number is a mobile. A custom rule or per-number verdicts replace it. Latency,
//! a call counter and injected failures (unavailable, unauthorized) make it a stand-in
//! for Twilio Lookup in engine tests.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ca_notify_domain::PhoneNumber;
use ca_notify_ports::{PhoneValidator, PhoneVerdict, ValidationError};
use tokio::time::{sleep, sleep_until, Instant};

/// A failure to inject into the validator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidatorFault {
    /// `ValidationError::Unavailable` (the record is deferred).
    Unavailable,
    /// `ValidationError::Unauthorized` (the run stops).
    Unauthorized,
    /// `ValidationError::Misconfigured`: the account cannot do lookups (the run stops).
    Misconfigured,
}

impl ValidatorFault {
    fn error(self) -> ValidationError {
        match self {
            Self::Unavailable => {
                ValidationError::Unavailable("injected: validator unavailable".into())
            }
            Self::Misconfigured => ValidationError::Misconfigured(
                "injected: 60606 line type intelligence is not enabled on the account".into(),
            ),
            Self::Unauthorized => {
                ValidationError::Unauthorized("injected: credentials refused".into())
            }
        }
    }

    fn encode(fault: Option<Self>) -> u8 {
        match fault {
            None => 0,
            Some(Self::Unavailable) => 1,
            Some(Self::Unauthorized) => 2,
            Some(Self::Misconfigured) => 3,
        }
    }

    fn decode(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Unavailable),
            2 => Some(Self::Unauthorized),
            3 => Some(Self::Misconfigured),
            _ => None,
        }
    }
}

type Rule = Arc<dyn Fn(&PhoneNumber) -> PhoneVerdict + Send + Sync>;

/// The default rule: `…00` landline, `…99` invalid, anything else mobile.
pub fn default_rule(phone: &PhoneNumber) -> PhoneVerdict {
    let e164 = phone.expose_e164();
    if e164.ends_with("00") {
        PhoneVerdict::NotSmsCapable {
            line_type: "landline".into(),
        }
    } else if e164.ends_with("99") {
        PhoneVerdict::Invalid {
            detail: "memory:invalid".into(),
        }
    } else {
        PhoneVerdict::SmsCapable {
            line_type: "mobile".into(),
        }
    }
}

/// An in-memory phone validator.
pub struct MemoryValidator {
    rule: Rule,
    verdicts: HashMap<String, PhoneVerdict>,
    latency: Duration,
    calls: AtomicU64,
    sticky_fault: AtomicU8,
    queued: AtomicUsize,
    next_faults: Mutex<VecDeque<ValidatorFault>>,
}

impl fmt::Debug for MemoryValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryValidator")
            .field("verdicts", &self.verdicts.len())
            .field("latency", &self.latency)
            .field("calls", &self.calls())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryValidator {
    fn default() -> Self {
        Self {
            rule: Arc::new(default_rule),
            verdicts: HashMap::new(),
            latency: Duration::ZERO,
            calls: AtomicU64::new(0),
            sticky_fault: AtomicU8::new(0),
            queued: AtomicUsize::new(0),
            next_faults: Mutex::new(VecDeque::new()),
        }
    }
}

impl MemoryValidator {
    /// A validator with the [`default_rule`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the rule.
    #[must_use]
    pub fn with_rule(
        mut self,
        rule: impl Fn(&PhoneNumber) -> PhoneVerdict + Send + Sync + 'static,
    ) -> Self {
        self.rule = Arc::new(rule);
        self
    }

    /// A fixed verdict for one number (E.164), ahead of the rule.
    #[must_use]
    pub fn with_verdict(mut self, e164: &str, verdict: PhoneVerdict) -> Self {
        self.verdicts.insert(e164.to_owned(), verdict);
        self
    }

    /// Each check takes this long (a check that would end past its deadline returns
    /// `Unavailable` at the deadline, as a real adapter would).
    #[must_use]
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Makes the next `n` checks fail with `fault`.
    pub fn fail_next(&self, n: usize, fault: ValidatorFault) {
        let mut queue = self.next_faults.lock().unwrap_or_else(|e| e.into_inner());
        queue.extend(std::iter::repeat_n(fault, n));
        self.queued.store(queue.len(), Ordering::Release);
    }

    /// Makes every check fail with `fault` until set to `None`.
    pub fn set_fault(&self, fault: Option<ValidatorFault>) {
        self.sticky_fault
            .store(ValidatorFault::encode(fault), Ordering::Release);
    }

    /// Checks made so far (failed ones included).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn injected_fault(&self) -> Option<ValidatorFault> {
        if let Some(fault) = ValidatorFault::decode(self.sticky_fault.load(Ordering::Acquire)) {
            return Some(fault);
        }
        // The counter keeps the common no-fault path free of the lock.
        if self.queued.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut queue = self.next_faults.lock().unwrap_or_else(|e| e.into_inner());
        let fault = queue.pop_front();
        self.queued.store(queue.len(), Ordering::Release);
        fault
    }
}

#[async_trait]
impl PhoneValidator for MemoryValidator {
    async fn check(
        &self,
        phone: &PhoneNumber,
        deadline: Instant,
    ) -> Result<PhoneVerdict, ValidationError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !self.latency.is_zero() {
            if Instant::now() + self.latency > deadline {
                sleep_until(deadline).await;
                return Err(ValidationError::Unavailable(
                    "the deadline came before an answer".into(),
                ));
            }
            sleep(self.latency).await;
        }
        if let Some(fault) = self.injected_fault() {
            return Err(fault.error());
        }
        if let Some(verdict) = self.verdicts.get(phone.expose_e164()) {
            return Ok(verdict.clone());
        }
        Ok((self.rule)(phone))
    }
}

#[cfg(test)]
mod tests {
    use ca_notify_domain::PhoneParser;

    use super::*;

    fn phone(raw: &str) -> PhoneNumber {
        PhoneParser::default().parse(raw).expect("valid")
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[tokio::test]
    async fn the_default_rule_is_aimed_by_the_last_two_digits() {
        let v = MemoryValidator::new();
        assert!(matches!(
            v.check(&phone("+14155550100"), far()).await,
            Ok(PhoneVerdict::NotSmsCapable { .. })
        ));
        assert!(matches!(
            v.check(&phone("+14155550199"), far()).await,
            Ok(PhoneVerdict::Invalid { .. })
        ));
        assert!(matches!(
            v.check(&phone("+14155550123"), far()).await,
            Ok(PhoneVerdict::SmsCapable { .. })
        ));
        assert_eq!(v.calls(), 3);
    }

    #[tokio::test]
    async fn verdicts_and_rules_override_and_faults_are_injected() {
        let v = MemoryValidator::new()
            .with_rule(|_| PhoneVerdict::Invalid {
                detail: "rule".into(),
            })
            .with_verdict(
                "+14155550123",
                PhoneVerdict::SmsCapable {
                    line_type: "mobile".into(),
                },
            );
        assert!(matches!(
            v.check(&phone("+14155550123"), far()).await,
            Ok(PhoneVerdict::SmsCapable { .. })
        ));
        assert!(matches!(
            v.check(&phone("+14155550124"), far()).await,
            Ok(PhoneVerdict::Invalid { .. })
        ));
        v.fail_next(1, ValidatorFault::Unavailable);
        assert!(matches!(
            v.check(&phone("+14155550123"), far()).await,
            Err(ValidationError::Unavailable(_))
        ));
        assert!(v.check(&phone("+14155550123"), far()).await.is_ok());
        v.set_fault(Some(ValidatorFault::Unauthorized));
        for _ in 0..2 {
            assert!(matches!(
                v.check(&phone("+14155550123"), far()).await,
                Err(ValidationError::Unauthorized(_))
            ));
        }
        v.set_fault(None);
        assert!(v.check(&phone("+14155550123"), far()).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn latency_is_simulated_and_the_deadline_respected() {
        let v = MemoryValidator::new().with_latency(Duration::from_millis(150));
        let started = Instant::now();
        v.check(&phone("+14155550123"), far()).await.expect("ok");
        assert_eq!(started.elapsed(), Duration::from_millis(150));
        let soon = Instant::now() + Duration::from_millis(100);
        assert!(matches!(
            v.check(&phone("+14155550123"), soon).await,
            Err(ValidationError::Unavailable(_))
        ));
        assert_eq!(Instant::now(), soon);
    }
}
