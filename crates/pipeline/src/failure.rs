//! Why a run stopped: the fatal causes a caller must act on, and the early stops it need not.
//!
//! A fatal cause (refused credentials, a spent quota, a refused request, a failing store)
//! ends the run with [`RunFailure`], which still carries the report of what was done: the
//! records the run could not finish were released, never marked 0 for a reason that was
//! not their own. Early stops that are not failures (deadline, shutdown, a drained source,
//! an unavailable verification server) end the run with a normal report whose `stop` says
//! why.

use ca_notify_domain::{scrub_phone_numbers, DeferReason};
use ca_notify_ports::{SinkError, SourceError};

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
    /// A stable code, used as the report's `stop`.
    pub fn code(&self) -> &'static str {
        self.kind().code()
    }

    pub(crate) fn kind(&self) -> StopKind {
        match self {
            Self::ValidatorUnauthorized(_) => StopKind::ValidatorUnauthorized,
            Self::IssuerUnauthorized(_) => StopKind::IssuerUnauthorized,
            Self::QuotaExhausted => StopKind::QuotaExhausted,
            Self::IssueRejected(_) => StopKind::IssueRejected,
            Self::Source(_) => StopKind::Source,
            Self::Sink(_) => StopKind::Sink,
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

/// Every way a run can end early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopKind {
    Deadline,
    Shutdown,
    Drained,
    IssuerUnavailable,
    QuotaExhausted,
    ValidatorUnauthorized,
    IssuerUnauthorized,
    IssueRejected,
    Source,
    Sink,
}

impl StopKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::Deadline => "deadline",
            Self::Shutdown => "shutdown",
            Self::Drained => "drained",
            Self::IssuerUnavailable => "issuer_unavailable",
            Self::QuotaExhausted => "quota_exhausted",
            Self::ValidatorUnauthorized => "validator_unauthorized",
            Self::IssuerUnauthorized => "issuer_unauthorized",
            Self::IssueRejected => "issue_rejected",
            Self::Source => "source_failed",
            Self::Sink => "sink_failed",
        }
    }

    /// Whether in-flight batches must stop issuing (and validating): everything but a
    /// shutdown, a deadline, a drained source or a failing source lets them finish.
    pub fn stops_issuing(self) -> bool {
        !matches!(
            self,
            Self::Deadline | Self::Shutdown | Self::Drained | Self::Source
        )
    }

    pub fn is_fatal(self) -> bool {
        !matches!(
            self,
            Self::Deadline | Self::Shutdown | Self::Drained | Self::IssuerUnavailable
        )
    }

    /// The reason written for records this stop hands back.
    pub fn defer_reason(self) -> DeferReason {
        match self {
            Self::Deadline => DeferReason::Deadline,
            Self::QuotaExhausted => DeferReason::QuotaExhausted,
            Self::ValidatorUnauthorized | Self::IssuerUnauthorized => DeferReason::Unauthorized,
            // A refused request or a down server: either way the server would not take it.
            Self::IssuerUnavailable | Self::IssueRejected => DeferReason::IssuerUnavailable,
            Self::Shutdown | Self::Drained | Self::Source | Self::Sink => DeferReason::Shutdown,
        }
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
    }
}
