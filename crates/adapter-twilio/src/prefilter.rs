//! The offline validator in front of a paid one: obviously bad numbers never cost a lookup.
//!
//! Each number is judged offline first. If that says `Invalid` or `NotSmsCapable`, the
//! verdict stands and the inner validator (Twilio) is never asked; otherwise the inner
//! validator decides, and its verdict is the one returned, since a carrier lookup knows more
//! than range metadata (a US number is `FixedLineOrMobile` offline, and only Twilio can
//! tell a landline from a mobile).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use ca_notify_domain::PhoneNumber;
use ca_notify_ports::{PhoneValidator, PhoneVerdict, ValidationError};
use tokio::time::Instant;

use crate::offline::OfflineValidator;

/// How many numbers the pre-filter saw and how many it settled without a lookup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PreFilterStats {
    /// Numbers checked.
    pub checked: u64,
    /// Numbers the offline check rejected (invalid or not SMS-capable).
    pub rejected_offline: u64,
}

/// [`OfflineValidator`] first; `inner` only for numbers that pass it.
pub struct PreFilteredValidator<V: ?Sized = dyn PhoneValidator> {
    offline: OfflineValidator,
    checked: AtomicU64,
    rejected: AtomicU64,
    inner: Arc<V>,
}

impl<V: ?Sized> fmt::Debug for PreFilteredValidator<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreFilteredValidator")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<V: PhoneValidator + ?Sized> PreFilteredValidator<V> {
    /// Puts the offline check in front of `inner`.
    pub fn new(inner: Arc<V>) -> Self {
        Self {
            offline: OfflineValidator::new(),
            checked: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            inner,
        }
    }
}

impl<V: ?Sized> PreFilteredValidator<V> {
    /// Counts so far.
    pub fn stats(&self) -> PreFilterStats {
        PreFilterStats {
            checked: self.checked.load(Ordering::Relaxed),
            rejected_offline: self.rejected.load(Ordering::Relaxed),
        }
    }
}

/// `inner` behind the offline pre-filter, as the port the pipeline takes.
pub fn prefiltered(inner: Arc<dyn PhoneValidator>) -> Arc<dyn PhoneValidator> {
    Arc::new(PreFilteredValidator::new(inner))
}

#[async_trait]
impl<V: PhoneValidator + ?Sized> PhoneValidator for PreFilteredValidator<V> {
    async fn check(
        &self,
        phone: &PhoneNumber,
        deadline: Instant,
    ) -> Result<PhoneVerdict, ValidationError> {
        self.checked.fetch_add(1, Ordering::Relaxed);
        match self.offline.judge(phone) {
            PhoneVerdict::SmsCapable { .. } => self.inner.check(phone, deadline).await,
            rejected => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    verdict = ?rejected,
                    "The offline pre-filter settled a number without a lookup."
                );
                Ok(rejected)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use ca_notify_domain::PhoneParser;

    use super::*;

    /// Counts calls and answers `mobile`.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    #[async_trait]
    impl PhoneValidator for Counting {
        async fn check(
            &self,
            _phone: &PhoneNumber,
            _deadline: Instant,
        ) -> Result<PhoneVerdict, ValidationError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(PhoneVerdict::SmsCapable {
                line_type: "mobile".into(),
            })
        }
    }

    #[tokio::test]
    async fn only_plausible_numbers_reach_the_inner_validator() {
        let inner = Arc::new(Counting::default());
        let validator = PreFilteredValidator::new(inner.clone());
        let parser = PhoneParser::default();
        let deadline = Instant::now() + Duration::from_secs(5);
        let check = |raw: &str| {
            let phone = parser.parse(raw).expect("parses");
            let validator = &validator;
            async move { validator.check(&phone, deadline).await.expect("verdict") }
        };
        assert!(matches!(
            check("+18005551212").await,
            PhoneVerdict::NotSmsCapable { ref line_type } if line_type == "tollFree"
        ));
        assert!(matches!(
            check("+447700900123").await,
            PhoneVerdict::Invalid { ref detail } if detail == "offline:invalid"
        ));
        assert_eq!(inner.0.load(Ordering::SeqCst), 0, "no lookup spent");
        // A US number is FixedLineOrMobile offline: only the inner validator can judge it,
        // and its verdict (not the offline one) is returned.
        assert_eq!(
            check("+14159929960").await,
            PhoneVerdict::SmsCapable {
                line_type: "mobile".into()
            }
        );
        assert_eq!(inner.0.load(Ordering::SeqCst), 1);
        assert_eq!(
            validator.stats(),
            PreFilterStats {
                checked: 3,
                rejected_offline: 2
            }
        );
    }
}
