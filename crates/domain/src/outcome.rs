//! What happened to one record, and how that is written back.
//!
//! The seed wrote only a sent flag (1 / 0). We keep that flag, derived from a richer
//! [`Outcome`], and add a stable reason code so an operator can tell a landline from a
//! server rejection. [`Outcome::Deferred`] is not a result at all: the record goes back to
//! the store, unmarked, for a later run.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::attempt::AttemptAnswer;
use crate::date_window::DateField;
use crate::dedup::DedupKey;
use crate::recipient::RecordId;

/// The end of one record's journey through a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The verification server issued a code and sent the SMS.
    Sent,
    /// The verification server already holds this dedup key, and no earlier attempt of it
    /// failed after a commit: texted before (perhaps by an attempt whose answer was lost),
    /// not again.
    AlreadySent,
    /// The store's own ledger says a record with this dedup key was texted, under some
    /// record id, however long ago; no request was made. It outlives the server's memory
    /// of uuids (about 15 days).
    TextedBefore,
    /// The server holds a code row for this dedup key, but an earlier attempt of the same
    /// uuid failed explicitly after the row may have been stored (`sms_failure`,
    /// `internal_server_error`): nobody can tell whether a text went out. Written as not
    /// sent, never retried automatically, and listed for an operator to decide.
    Unconfirmed,
    /// Not texted, for good.
    NotSent {
        /// Why.
        reason: NotSentReason,
    },
    /// Not decided in this run; the record is released for a later one.
    Deferred {
        /// Why.
        reason: DeferReason,
    },
}

impl Outcome {
    /// Shorthand for `NotSent { reason }`.
    pub fn not_sent(reason: NotSentReason) -> Self {
        Self::NotSent { reason }
    }

    /// Shorthand for `Deferred { reason }`.
    pub fn deferred(reason: DeferReason) -> Self {
        Self::Deferred { reason }
    }

    /// The seed's sent flag: 1 for sent, already sent or texted before, 0 for not sent or
    /// unconfirmed, none for deferred.
    pub fn sent_flag(&self) -> Option<u8> {
        match self {
            Self::Sent | Self::AlreadySent | Self::TextedBefore => Some(1),
            Self::NotSent { .. } | Self::Unconfirmed => Some(0),
            Self::Deferred { .. } => None,
        }
    }

    /// Whether this outcome is written as a result (everything but `Deferred`).
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Deferred { .. })
    }

    /// Whether this outcome says the person was texted (now or before).
    pub fn is_texted(&self) -> bool {
        self.sent_flag() == Some(1)
    }

    /// The outcome column: `sent`, `already_sent`, `not_sent`, `unconfirmed` or `deferred`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::AlreadySent | Self::TextedBefore => "already_sent",
            Self::Unconfirmed => "unconfirmed",
            Self::NotSent { .. } => "not_sent",
            Self::Deferred { .. } => "deferred",
        }
    }

    /// The reason column: a stable code, empty for `Sent`.
    pub fn reason_code(&self) -> String {
        crate::scrub::bounded_reason(&match self {
            Self::Sent => String::new(),
            Self::AlreadySent => "uuid_already_exists".to_owned(),
            Self::TextedBefore => "texted_before".to_owned(),
            Self::Unconfirmed => "uuid_exists_after_failure".to_owned(),
            Self::NotSent { reason } => reason.code(),
            Self::Deferred { reason } => reason.code().to_owned(),
        })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = self.reason_code();
        if reason.is_empty() {
            f.write_str(self.label())
        } else {
            write!(f, "{} ({reason})", self.label())
        }
    }
}

/// Why a record was not texted, for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NotSentReason {
    /// The phone is not a valid number (parse failure, or the validator said so).
    InvalidNumber {
        /// A short code: a `PhoneError` code or the validator's own (`twilio:TOO_LONG`).
        detail: String,
    },
    /// A valid number that cannot receive SMS (landline, toll-free, pager, …).
    NotSmsCapable {
        /// The line type as the validator named it.
        line_type: String,
    },
    /// A permanent per-item error from the verification server.
    Rejected {
        /// The server's `errorCode` (`unspecified` when it gave none).
        error_code: String,
    },
    /// Transient failures until the retry budget ran out.
    GaveUp {
        /// The last error's code.
        last_error: String,
    },
    /// A date the server would reject: malformed, or outside its accepted window.
    InvalidDate {
        /// Which date.
        field: DateField,
        /// `malformed`, `too_old` or `in_future`.
        detail: String,
    },
    /// A test type the server does not know.
    InvalidTestType,
}

impl NotSentReason {
    /// A stable code for the reason column, e.g. `not_sms_capable:landline`.
    pub fn code(&self) -> String {
        match self {
            Self::InvalidNumber { detail } => format!("invalid_number:{detail}"),
            Self::NotSmsCapable { line_type } => format!("not_sms_capable:{line_type}"),
            Self::Rejected { error_code } => format!("rejected:{error_code}"),
            Self::GaveUp { last_error } => format!("gave_up:{last_error}"),
            Self::InvalidDate { field, detail } => {
                format!("invalid_date:{}:{detail}", field.as_str())
            }
            Self::InvalidTestType => "invalid_test_type".to_owned(),
        }
    }

    /// The short kind, for counting.
    pub fn kind(&self) -> NotSentKind {
        match self {
            Self::InvalidNumber { .. } => NotSentKind::InvalidNumber,
            Self::NotSmsCapable { .. } => NotSentKind::NotSmsCapable,
            Self::Rejected { .. } => NotSentKind::Rejected,
            Self::GaveUp { .. } => NotSentKind::GaveUp,
            Self::InvalidDate { .. } => NotSentKind::InvalidDate,
            Self::InvalidTestType => NotSentKind::InvalidTestType,
        }
    }
}

/// Why a record counts as not texted, for good, without the details: a
/// [`NotSentReason`]'s kind, or [`Outcome::Unconfirmed`]. What reports count by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NotSentKind {
    /// [`NotSentReason::InvalidNumber`].
    InvalidNumber,
    /// [`NotSentReason::NotSmsCapable`].
    NotSmsCapable,
    /// [`NotSentReason::Rejected`].
    Rejected,
    /// [`NotSentReason::GaveUp`].
    GaveUp,
    /// [`NotSentReason::InvalidDate`].
    InvalidDate,
    /// [`NotSentReason::InvalidTestType`].
    InvalidTestType,
    /// [`Outcome::Unconfirmed`]: written as not sent, but nobody knows whether a text
    /// went out (an operator decides).
    Unconfirmed,
}

impl NotSentKind {
    /// Every kind, in code order.
    pub const ALL: [Self; 7] = [
        Self::GaveUp,
        Self::InvalidDate,
        Self::InvalidNumber,
        Self::InvalidTestType,
        Self::NotSmsCapable,
        Self::Rejected,
        Self::Unconfirmed,
    ];

    /// The kind whose [`code`](Self::code) is `code`, if any (what an operator types).
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.code() == code)
    }

    /// A stable code (`invalid_number`, `not_sms_capable`, …, `unconfirmed`).
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidNumber => "invalid_number",
            Self::NotSmsCapable => "not_sms_capable",
            Self::Rejected => "rejected",
            Self::GaveUp => "gave_up",
            Self::InvalidDate => "invalid_date",
            Self::InvalidTestType => "invalid_test_type",
            Self::Unconfirmed => "unconfirmed",
        }
    }
}

impl fmt::Display for NotSentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Ordered by code, so counts keyed by kind list alphabetically.
impl Ord for NotSentKind {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.code().cmp(other.code())
    }
}

impl PartialOrd for NotSentKind {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Why a record was handed back to the store undecided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeferReason {
    /// The phone validator kept failing (Twilio 429/5xx after its retry budget).
    ValidationUnavailable,
    /// The verification server was unavailable (maintenance, queue full, 5xx).
    IssuerUnavailable,
    /// The verification server's rate limit would not reset before the deadline.
    RateLimited,
    /// The realm's daily code quota is exhausted.
    QuotaExhausted,
    /// A credential was refused; the run stopped.
    Unauthorized,
    /// The run's deadline came first.
    Deadline,
    /// A shutdown signal came first.
    Shutdown,
    /// The realm or an account is misconfigured (no SMS provider, a template or signing
    /// failure, a realm rule, a validator account that cannot look up); the run stopped.
    Misconfigured,
    /// A request carrying this record got no answer (a timeout, a dropped connection), so
    /// the server may still be working on it. The sink keeps the record claimed until its
    /// lease runs out, so no worker re-sends the uuid while the first request may run.
    NoAnswer,
}

impl DeferReason {
    /// A stable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::ValidationUnavailable => "validation_unavailable",
            Self::IssuerUnavailable => "issuer_unavailable",
            Self::RateLimited => "rate_limited",
            Self::QuotaExhausted => "quota_exhausted",
            Self::Unauthorized => "unauthorized",
            Self::Deadline => "deadline",
            Self::Shutdown => "shutdown",
            Self::Misconfigured => "misconfigured",
            Self::NoAnswer => "no_answer",
        }
    }

    /// Whether the sink keeps the record claimed until its lease ends instead of
    /// releasing it at once.
    pub fn holds_the_claim(self) -> bool {
        matches!(self, Self::NoAnswer)
    }
}

impl fmt::Display for DeferReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Ordered by code, so counts keyed by reason list alphabetically.
impl Ord for DeferReason {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.code().cmp(other.code())
    }
}

impl PartialOrd for DeferReason {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One record's outcome, as the pipeline hands it to the result sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOutcome {
    /// The record.
    pub id: RecordId,
    /// The dedup key sent to the verification server, when one was derived.
    pub dedup_key: Option<DedupKey>,
    /// What happened.
    pub outcome: Outcome,
    /// The answers of this run's issue attempts for `dedup_key`, in order; the sink keeps
    /// them per key, whatever the outcome, so the truth of a later 409 can be told.
    pub attempts: Vec<AttemptAnswer>,
}

impl RecordOutcome {
    /// An outcome with no issue attempt behind it.
    pub fn new(id: RecordId, dedup_key: Option<DedupKey>, outcome: Outcome) -> Self {
        Self {
            id,
            dedup_key,
            outcome,
            attempts: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_flag_follows_the_seed() {
        assert_eq!(Outcome::Sent.sent_flag(), Some(1));
        assert_eq!(Outcome::AlreadySent.sent_flag(), Some(1));
        let landline = Outcome::not_sent(NotSentReason::NotSmsCapable {
            line_type: "landline".into(),
        });
        assert_eq!(landline.sent_flag(), Some(0));
        assert_eq!(landline.reason_code(), "not_sms_capable:landline");
        assert_eq!(
            Outcome::deferred(DeferReason::Deadline).sent_flag(),
            None,
            "deferred records are released, never marked"
        );
    }

    #[test]
    fn every_kind_reads_back_from_its_code() {
        for kind in NotSentKind::ALL {
            assert_eq!(NotSentKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(NotSentKind::from_code("landline"), None);
        let mut sorted = NotSentKind::ALL;
        sorted.sort();
        assert_eq!(sorted, NotSentKind::ALL, "ALL is in code order");
    }

    #[test]
    fn reason_codes_are_stable() {
        let date = NotSentReason::InvalidDate {
            field: DateField::TestDate,
            detail: "too_old".into(),
        };
        assert_eq!(date.code(), "invalid_date:test_date:too_old");
        assert_eq!(
            NotSentReason::Rejected {
                error_code: "phone_number_invalid".into()
            }
            .code(),
            "rejected:phone_number_invalid"
        );
        assert_eq!(Outcome::Sent.to_string(), "sent");
    }
}
