//! [`ErrorCode`]: the verification server's `errorCode`s, read in one place.
//!
//! The server answers every failure with a short code (`pkg/api/api.go` upstream,
//! `ErrUUIDAlreadyExists` and its neighbours). Both the adapter (for whole-request answers
//! without `codes`) and `evaluate_response` (for each item) act on them; both read them
//! through [`ErrorCode::parse`], so each spelling is written once.

use std::fmt;

/// One `errorCode` of the verification server, as ca-notify tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `uuid_already_exists` (409): a code row exists for the uuid.
    UuidAlreadyExists,
    /// `sms_failure`: the message could not be built, signed or sent.
    SmsFailure,
    /// `sms_queue_full`: the SMS provider's queue is full.
    SmsQueueFull,
    /// `internal_server_error`: a commit, the limiter or `errorAll`.
    InternalServerError,
    /// `quota_exceeded`: the realm's daily code quota is spent.
    QuotaExceeded,
    /// `maintenance_mode`: the server is read-only.
    MaintenanceMode,
    /// `phone_number_invalid`: the number does not parse.
    PhoneNumberInvalid,
    /// `invalid_date`: a date outside the server's window.
    InvalidDate,
    /// `unsupported_test_type`: a test type the realm does not accept.
    UnsupportedTestType,
    /// `invalid_test_type`: a test type the server does not know.
    InvalidTestType,
    /// `missing_date`: the realm requires a date.
    MissingDate,
    /// No code at all (no SMS provider, and the server's other code-less 400s).
    Empty,
    /// A code this build does not know.
    Other,
}

impl ErrorCode {
    /// Reads a code as the server spells it.
    pub fn parse(code: &str) -> Self {
        match code {
            "uuid_already_exists" => Self::UuidAlreadyExists,
            "sms_failure" => Self::SmsFailure,
            "sms_queue_full" => Self::SmsQueueFull,
            "internal_server_error" => Self::InternalServerError,
            "quota_exceeded" => Self::QuotaExceeded,
            "maintenance_mode" => Self::MaintenanceMode,
            "phone_number_invalid" => Self::PhoneNumberInvalid,
            "invalid_date" => Self::InvalidDate,
            "unsupported_test_type" => Self::UnsupportedTestType,
            "invalid_test_type" => Self::InvalidTestType,
            "missing_date" => Self::MissingDate,
            "" => Self::Empty,
            _ => Self::Other,
        }
    }

    /// Whether the code says the server cannot send now (maintenance, a full SMS queue).
    pub fn is_unavailable(self) -> bool {
        matches!(self, Self::MaintenanceMode | Self::SmsQueueFull)
    }

    /// Whether the failure came after the code row may have been committed, so the row
    /// may have stayed behind with no text (`sms_failure`, `sms_queue_full`,
    /// `internal_server_error`).
    pub fn may_follow_a_commit(self) -> bool {
        matches!(
            self,
            Self::SmsFailure | Self::SmsQueueFull | Self::InternalServerError
        )
    }

    /// Whether the code is a fact about the one record (its phone or its date).
    pub fn is_the_records_fault(self) -> bool {
        matches!(self, Self::PhoneNumberInvalid | Self::InvalidDate)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_spelling_is_read_and_nothing_else() {
        for (text, code) in [
            ("uuid_already_exists", ErrorCode::UuidAlreadyExists),
            ("sms_failure", ErrorCode::SmsFailure),
            ("sms_queue_full", ErrorCode::SmsQueueFull),
            ("internal_server_error", ErrorCode::InternalServerError),
            ("quota_exceeded", ErrorCode::QuotaExceeded),
            ("maintenance_mode", ErrorCode::MaintenanceMode),
            ("phone_number_invalid", ErrorCode::PhoneNumberInvalid),
            ("invalid_date", ErrorCode::InvalidDate),
            ("unsupported_test_type", ErrorCode::UnsupportedTestType),
            ("invalid_test_type", ErrorCode::InvalidTestType),
            ("missing_date", ErrorCode::MissingDate),
            ("", ErrorCode::Empty),
        ] {
            assert_eq!(ErrorCode::parse(text), code, "{text}");
        }
        assert_eq!(ErrorCode::parse("Quota_Exceeded"), ErrorCode::Other);
        assert_eq!(ErrorCode::parse("user_report_try_later"), ErrorCode::Other);
    }
}
