//! `PhoneValidator`: can this number receive an SMS?
//!
//! Every number is checked before the verification server is asked to text it, so
//! landlines and dead numbers cost nothing and annoy no one.

use async_trait::async_trait;
use ca_notify_domain::PhoneNumber;
use tokio::time::Instant;

/// The validator's judgement of one number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneVerdict {
    /// Valid and able to receive SMS.
    SmsCapable {
        /// The line type the validator saw (`mobile`, `nonFixedVoip`, `unknown`, …).
        line_type: String,
    },
    /// A valid number that cannot receive SMS (landline, toll-free, pager, …).
    NotSmsCapable {
        /// The line type, written into the reason column.
        line_type: String,
    },
    /// Not a valid number.
    Invalid {
        /// A short code (`twilio:TOO_LONG`, `offline:invalid`, …).
        detail: String,
    },
}

/// Why a number could not be judged.
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    /// Our credentials were refused (Twilio 401/20003, 403). Fatal: the run stops, and no
    /// number may be marked invalid because of it.
    #[error("the phone validator refused our credentials: {0}")]
    Unauthorized(String),
    /// The account cannot do this lookup (Twilio 60606 "not enabled for this account",
    /// a suspended or closed account, …): a misconfiguration. Fatal: the run stops, and
    /// no number may be marked because of it.
    #[error("the phone validator's account cannot do this lookup: {0}")]
    Misconfigured(String),
    /// Transient failures (429, 5xx, timeouts) outlasted the adapter's retry budget or the
    /// deadline. The record is deferred, never marked 0.
    #[error("the phone validator is unavailable: {0}")]
    Unavailable(String),
    /// Anything else. The record is deferred.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Judges whether a number can receive an SMS.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait PhoneValidator: Send + Sync {
    /// Checks one number, retrying transient failures internally (with backoff, inside
    /// `deadline`).
    ///
    /// # Errors
    /// [`ValidationError::Unauthorized`] when the credentials are refused, and
    /// [`ValidationError::Misconfigured`] when the account cannot do the lookup (a package
    /// not enabled, a suspended account); the adapter MUST NOT return a verdict then, nor
    /// retry, and the message MUST name the setting to fix and hold no phone number.
    /// [`ValidationError::Unavailable`] once transient failures outlast the retry budget
    /// or the deadline; [`ValidationError::Unknown`] for anything else.
    async fn check(
        &self,
        phone: &PhoneNumber,
        deadline: Instant,
    ) -> Result<PhoneVerdict, ValidationError>;
}
