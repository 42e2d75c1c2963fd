//! Why a run stopped: the fatal causes a caller must act on, and the early stops it need not.
//!
//! A fatal cause (refused credentials, a misconfigured realm or account, a spent quota, a
//! refused request, an unreachable peer, a failing store) ends the run with
//! [`RunFailure`], which still carries the report of what was done: the records the run
//! could not finish were released, never marked 0 for a reason that was not their own.
//! Every run that could not make progress ends this way, so a scheduler sees a non-zero
//! exit. Early stops that are not failures (deadline, shutdown, a drained source) end the
//! run with a normal report whose `stop` says why.

use std::fmt;

use ca_notify_domain::{scrub_phone_numbers, DeferReason, RealmFault};
use ca_notify_ports::{SinkError, SourceError};

use serde::{Serialize, Serializer};

use crate::report::RunReport;

/// A reason the run had to stop, which the operator has to fix.
#[derive(Debug, thiserror::Error)]
pub enum FatalCause {
    /// The phone validator refused our credentials.
    #[error("the phone validator refused our credentials (check its account and token): {0}")]
    ValidatorUnauthorized(String),
    /// The verification server refused our API key.
    #[error(
        "the verification server refused our API key (check the API key and the realm's IP \
         allow-list): {0}"
    )]
    IssuerUnauthorized(String),
    /// The phone validator's account cannot do lookups (a product not enabled, a
    /// suspended account).
    #[error(
        "the phone validator's account cannot do lookups (check the account in its console): {0}"
    )]
    ValidatorMisconfigured(String),
    /// The realm (or our request) is misconfigured: the verification server refused every
    /// item for a reason that is not the record's own. Nothing was finalised for it.
    #[error(
        "the verification server's realm is misconfigured ({fault}, errorCode \"{error_code}\"): {}; \
         the records were released untouched",
        fault.remedy()
    )]
    Misconfigured {
        /// Which setting.
        fault: RealmFault,
        /// The first offending item's `errorCode`.
        error_code: String,
    },
    /// The verification server could not be reached or could not send (maintenance, a
    /// full SMS queue, connection failures past the retries).
    #[error("the verification server is unavailable; the records were released: {0}")]
    IssuerUnavailable(String),
    /// The phone validator stayed unavailable and the run settled nothing.
    #[error("the phone validator is unavailable and the run settled no record; the records were released: {0}")]
    ValidatorUnavailable(String),
    /// The realm's daily code quota is spent.
    #[error(
        "the realm's daily code quota is exhausted; the remaining records were released for a \
         later run"
    )]
    QuotaExhausted,
    /// The verification server refused a whole request for good (bulk issue disabled, a
    /// malformed request): our bug or the realm's configuration.
    #[error("the verification server rejected the batch-issue request: {0}")]
    IssueRejected(String),
    /// The phone source failed for good, or stayed unavailable past its retries.
    #[error("the phone source failed: {}", scrub_phone_numbers(&.0.to_string()))]
    Source(SourceError),
    /// The result sink failed for good, or stayed unavailable past its retries.
    #[error("the result sink failed: {}", scrub_phone_numbers(&.0.to_string()))]
    Sink(SinkError),
}

impl FatalCause {
    /// A stable code, the report's `stop`.
    pub fn code(&self) -> &'static str {
        self.stop_reason().code()
    }

    /// The report's `stop` for this cause.
    pub fn stop_reason(&self) -> StopReason {
        match self {
            Self::ValidatorUnauthorized(_) => StopReason::ValidatorUnauthorized,
            Self::IssuerUnauthorized(_) => StopReason::IssuerUnauthorized,
            Self::ValidatorMisconfigured(_) | Self::Misconfigured { .. } => {
                StopReason::Misconfigured
            }
            Self::IssuerUnavailable(_) => StopReason::IssuerUnavailable,
            Self::ValidatorUnavailable(_) => StopReason::ValidatorUnavailable,
            Self::QuotaExhausted => StopReason::QuotaExhausted,
            Self::IssueRejected(_) => StopReason::IssueRejected,
            Self::Source(_) => StopReason::Source,
            Self::Sink(_) => StopReason::Sink,
        }
    }
}

/// A run that stopped on a fatal cause, with the report of what it did before.
#[derive(Debug, thiserror::Error)]
#[error("{cause}")]
pub struct RunFailure {
    /// Why the run stopped.
    pub cause: FatalCause,
    /// What the run did, including the records it released.
    pub report: RunReport,
}

/// Why a run (or an epoch) ended early: the report's `stop`. Serialised as its
/// [`code`](StopReason::code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StopReason {
    /// The run's deadline came.
    Deadline,
    /// The caller's shutdown signal came.
    Shutdown,
    /// The source had nothing left to claim (`until_drained`).
    Drained,
    /// [`FatalCause::IssuerUnavailable`].
    IssuerUnavailable,
    /// [`FatalCause::ValidatorUnavailable`].
    ValidatorUnavailable,
    /// [`FatalCause::Misconfigured`] or [`FatalCause::ValidatorMisconfigured`].
    Misconfigured,
    /// [`FatalCause::QuotaExhausted`].
    QuotaExhausted,
    /// [`FatalCause::ValidatorUnauthorized`].
    ValidatorUnauthorized,
    /// [`FatalCause::IssuerUnauthorized`].
    IssuerUnauthorized,
    /// [`FatalCause::IssueRejected`].
    IssueRejected,
    /// [`FatalCause::Source`].
    Source,
    /// [`FatalCause::Sink`].
    Sink,
    /// The epoch's task panicked (only in [`crate::Pipeline::run_epoch`]'s report).
    Panicked,
}

impl StopReason {
    /// A stable code: `deadline`, `shutdown`, `drained`, or a fatal cause's code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Deadline => "deadline",
            Self::Shutdown => "shutdown",
            Self::Drained => ca_notify_ports::NOTHING_TO_CLAIM_STOP,
            Self::IssuerUnavailable => "issuer_unavailable",
            Self::ValidatorUnavailable => "validator_unavailable",
            Self::Misconfigured => "misconfigured",
            Self::QuotaExhausted => "quota_exhausted",
            Self::ValidatorUnauthorized => "validator_unauthorized",
            Self::IssuerUnauthorized => "issuer_unauthorized",
            Self::IssueRejected => "issue_rejected",
            Self::Source => "source_failed",
            Self::Sink => "sink_failed",
            Self::Panicked => "panicked",
        }
    }

    /// Whether in-flight batches must stop issuing (and validating): everything but a
    /// shutdown, a deadline, a drained source or a failing source lets them finish.
    pub(crate) fn stops_issuing(self) -> bool {
        !matches!(
            self,
            Self::Deadline | Self::Shutdown | Self::Drained | Self::Source
        )
    }

    /// Whether the run ends with a [`RunFailure`] (everything but a deadline, a shutdown
    /// or a drained source).
    pub fn is_fatal(self) -> bool {
        !matches!(self, Self::Deadline | Self::Shutdown | Self::Drained)
    }

    /// The reason written for records this stop hands back.
    pub(crate) fn defer_reason(self) -> DeferReason {
        match self {
            Self::Deadline => DeferReason::Deadline,
            Self::QuotaExhausted => DeferReason::QuotaExhausted,
            Self::ValidatorUnauthorized | Self::IssuerUnauthorized => DeferReason::Unauthorized,
            // A refused request or a down server: either way the server would not take it.
            Self::IssuerUnavailable | Self::IssueRejected => DeferReason::IssuerUnavailable,
            Self::ValidatorUnavailable => DeferReason::ValidationUnavailable,
            Self::Misconfigured => DeferReason::Misconfigured,
            Self::Shutdown | Self::Drained | Self::Source | Self::Sink | Self::Panicked => {
                DeferReason::Shutdown
            }
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for StopReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_unauthorized_points_at_the_key_and_the_allow_list() {
        let text = FatalCause::IssuerUnauthorized("401".into()).to_string();
        assert!(text.contains("API key"), "{text}");
        assert!(text.contains("IP allow-list"), "{text}");
    }

    #[test]
    fn store_errors_are_scrubbed_of_phone_numbers() {
        let cause = FatalCause::Sink(SinkError::Unavailable(
            "constraint failed for +1 415 555 0123".into(),
        ));
        let text = cause.to_string();
        assert!(!text.contains("555"), "{text}");
        assert!(text.contains("[phone]"), "{text}");
        let failure = RunFailure {
            cause,
            report: RunReport::default(),
        };
        assert_eq!(failure.to_string(), text, "Display is the one-line cause");
        assert_eq!(failure.cause.code(), "sink_failed");
        assert_eq!(failure.cause.stop_reason(), StopReason::Sink);
    }
}
