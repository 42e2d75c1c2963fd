//! The offline check in front of a paid validator: numbers that cannot exist never cost a
//! lookup.
//!
//! Each number is checked offline first. A structural fault (wrong length, not digits, a
//! North American area code or exchange starting with 0 or 1 or of the form N11, a length
//! no number of the country has) is final: `Invalid { "offline:<fault>" }`, and the inner
//! validator (Twilio) is never asked. Everything else goes to the inner validator, and its
//! verdict is the one returned: range metadata goes stale (a number of an area code opened
//! after this build looks "invalid" to it), and a carrier lookup knows more than the
//! metadata anyway (a US number is `FixedLineOrMobile` offline, and only Twilio can tell a
//! landline from a mobile). So a toll-free or premium number costs a lookup too, which
//! Twilio answers with its type.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use ca_notify_domain::PhoneNumber;
use ca_notify_ports::{PhoneValidator, PhoneVerdict, ValidationError};
use tokio::time::Instant;

use crate::offline::{structural_verdict, Finding, OfflineValidator};

/// How many numbers the pre-filter saw and how many it settled without a lookup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PreFilterStats {
    /// Numbers checked.
    pub checked: u64,
    /// Numbers the offline check rejected (a structural fault).
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
        match self.offline.finding(phone) {
            Finding::Range(_) => self.inner.check(phone, deadline).await,
            Finding::Structural(fault) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    fault = fault.code(),
                    "The offline pre-filter settled a number without a lookup."
                );
                Ok(structural_verdict(fault))
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
            check("+1 415 155 0123").await,
            PhoneVerdict::Invalid { ref detail } if detail == "offline:invalid_exchange"
        ));
        assert!(matches!(
            check("+3361234567").await,
            PhoneVerdict::Invalid { ref detail } if detail == "offline:too_short"
        ));
        assert_eq!(inner.0.load(Ordering::SeqCst), 0, "no lookup spent");
        // Whatever the metadata says (toll-free, a drama range, an area code opened after
        // it, a US FixedLineOrMobile), the inner validator judges, and its verdict (not the
        // offline one) is returned.
        for raw in [
            "+18005551212",
            "+447700900123",
            "+13575550123",
            "+14159929960",
        ] {
            assert_eq!(
                check(raw).await,
                PhoneVerdict::SmsCapable {
                    line_type: "mobile".into()
                },
                "{raw}"
            );
        }
        assert_eq!(inner.0.load(Ordering::SeqCst), 4);
        assert_eq!(
            validator.stats(),
            PreFilterStats {
                checked: 6,
                rejected_offline: 2
            }
        );
    }
}
