//! The store's errors, and how SQLite's errors map onto the ports' error contracts.
//!
//! SQLite's messages name tables, columns and constraints, never values; they are
//! scrubbed of phone-like digit runs anyway before they reach an error, so a future
//! message that quotes a value still cannot leak a number.

use ca_notify_domain::scrub_phone_numbers;
use ca_notify_ports::{AdminError, SinkError, SourceError};
use rusqlite::ErrorCode;

use crate::identifier::InvalidIdentifier;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A configured table or column name is not a plain identifier.
    #[error(transparent)]
    InvalidIdentifier(#[from] InvalidIdentifier),
    /// The file, table or columns are not what the configuration says, or the file is
    /// not a database we may write. Fatal.
    #[error("the SQLite store is misconfigured: {0}")]
    Misconfigured(String),
    /// Another process held the write lock past the busy timeout, or the disk failed.
    /// Retryable.
    #[error("the SQLite store is unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error("the SQLite store failed: {0}")]
    Unknown(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let text = scrub_phone_numbers(&e.to_string());
        let code = match &e {
            rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
            _ => None,
        };
        match code {
            Some(
                ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::OutOfMemory
                | ErrorCode::FileLockingProtocolFailed,
            ) => Self::Unavailable(text),
            Some(
                ErrorCode::CannotOpen
                | ErrorCode::NotADatabase
                | ErrorCode::ReadOnly
                | ErrorCode::PermissionDenied
                | ErrorCode::AuthorizationForStatementDenied
                | ErrorCode::DatabaseCorrupt,
            ) => Self::Misconfigured(text),
            Some(ErrorCode::Unknown) if is_schema_error(&text) => Self::Misconfigured(text),
            _ => Self::Unknown(text),
        }
    }
}

/// `SQLITE_ERROR` covers both our bugs and a table or column that is missing; only the
/// message tells them apart.
fn is_schema_error(text: &str) -> bool {
    text.contains("no such table") || text.contains("no such column")
}

impl From<tokio::task::JoinError> for StoreError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Unknown(format!("a blocking database task did not finish: {e}"))
    }
}

impl From<StoreError> for SourceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(text) => Self::Unavailable(text),
            StoreError::Misconfigured(text) => Self::Misconfigured(text),
            StoreError::InvalidIdentifier(e) => Self::Misconfigured(e.to_string()),
            StoreError::Unknown(text) => Self::Unknown(anyhow::anyhow!(text)),
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(text) => Self::Unavailable(text),
            StoreError::Misconfigured(text) => Self::Misconfigured(text),
            StoreError::InvalidIdentifier(e) => Self::Misconfigured(e.to_string()),
            StoreError::Unknown(text) => Self::Unknown(anyhow::anyhow!(text)),
        }
    }
}

impl From<StoreError> for SinkError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(text) => Self::Unavailable(text),
            StoreError::Misconfigured(text) => Self::Misconfigured(text),
            StoreError::InvalidIdentifier(e) => Self::Misconfigured(e.to_string()),
            StoreError::Unknown(text) => Self::Unknown(anyhow::anyhow!(text)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32, message: &str) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(message.to_owned()))
    }

    #[test]
    fn busy_is_retryable_and_missing_tables_are_fatal() {
        assert!(matches!(
            StoreError::from(failure(rusqlite::ffi::SQLITE_BUSY, "database is locked")),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from(failure(
                rusqlite::ffi::SQLITE_ERROR,
                "no such column: phone"
            )),
            StoreError::Misconfigured(_)
        ));
        assert!(matches!(
            SourceError::from(StoreError::Unavailable("x".into())),
            SourceError::Unavailable(_)
        ));
        assert!(matches!(
            SinkError::from(StoreError::Misconfigured("x".into())),
            SinkError::Misconfigured(_)
        ));
    }

    #[test]
    fn messages_are_scrubbed_of_phone_numbers() {
        let e = StoreError::from(failure(
            rusqlite::ffi::SQLITE_CONSTRAINT,
            "CHECK constraint failed: +1 415 555 0123",
        ));
        assert!(!e.to_string().contains("555"), "{e}");
    }
}
