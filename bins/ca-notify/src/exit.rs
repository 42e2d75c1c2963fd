//! Exit codes and the one-line cause printed with them (`docs/operations.md`).

use std::fmt;

use ca_notify_job::{FatalCause, JobError, RunFailure};
use ca_notify_ports::AdminError;

/// An unexpected internal error.
pub const INTERNAL: u8 = 1;
/// The configuration (or command line) is invalid.
pub const CONFIG: u8 = 2;
/// A credential was refused.
pub const UNAUTHORIZED: u8 = 3;
/// The realm's daily code quota is exhausted.
pub const QUOTA: u8 = 4;
/// The store is unreachable or misconfigured.
pub const STORE: u8 = 5;
/// The verification server rejected the request as a whole.
pub const REJECTED: u8 = 6;
/// `import` rejected its file.
pub const INPUT: u8 = 7;
/// The realm or an account is misconfigured (no SMS provider, a template or signing
/// failure, a realm rule, a validator account that cannot look up); nothing was finalised.
pub const MISCONFIGURED: u8 = 8;
/// A peer (the verification server or the phone validator) could not be reached or could
/// not serve; the run made no progress with it.
pub const UNAVAILABLE: u8 = 9;

/// The operator's request was refused because it would break a rule of the ledger
/// (requeue a texted record, purge inside the retention period); nothing changed.
pub const REFUSED: u8 = 10;

/// A command's failure: what to print and which code to exit with.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// One line saying why.
    pub message: String,
}

impl Failure {
    /// A failure with this code and message.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line: operators grep for it, and schedulers show only the last line.
        f.write_str(&self.message.replace('\n', " "))
    }
}

impl From<JobError> for Failure {
    fn from(e: JobError) -> Self {
        let code = match &e {
            JobError::Store(_) => STORE,
            _ => CONFIG,
        };
        Self::new(code, e.to_string())
    }
}

impl From<&RunFailure> for Failure {
    fn from(failure: &RunFailure) -> Self {
        let code = match &failure.cause {
            FatalCause::ValidatorUnauthorized(_) | FatalCause::IssuerUnauthorized(_) => {
                UNAUTHORIZED
            }
            FatalCause::QuotaExhausted => QUOTA,
            FatalCause::IssueRejected(_) => REJECTED,
            FatalCause::Misconfigured { .. } | FatalCause::ValidatorMisconfigured(_) => {
                MISCONFIGURED
            }
            FatalCause::IssuerUnavailable(_) | FatalCause::ValidatorUnavailable(_) => UNAVAILABLE,
            FatalCause::Source(_) | FatalCause::Sink(_) => STORE,
        };
        Self::new(code, failure.to_string())
    }
}

impl From<AdminError> for Failure {
    fn from(e: AdminError) -> Self {
        let code = match &e {
            AdminError::Refused(_) => REFUSED,
            AdminError::Unavailable(_) | AdminError::Misconfigured(_) | AdminError::Unknown(_) => {
                STORE
            }
        };
        Self::new(code, e.to_string())
    }
}
