//! What went wrong talking to Snowflake, sorted into what the ports promise the pipeline:
//! retryable (`Unavailable`), fatal configuration (`Misconfigured`), or anything else.
//!
//! The sorting lives in [`classify`], in one place. Error text from Snowflake can quote
//! the data a statement touched, so every message is passed through
//! [`scrub_phone_numbers`] before it leaves this crate.

use ca_notify_domain::scrub_phone_numbers;
use ca_notify_ports::{AdminError, SinkError, SourceError};
use snowflake_connector_rs::{Error as ConnectorError, ErrorKind};

/// Longest error text we pass on; Snowflake's messages can quote whole statements.
const MAX_MESSAGE_CHARS: usize = 600;

/// Why the Snowflake store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Snowflake is unreachable, busy (a lock wait ran out) or slow. Retryable.
    #[error("Snowflake is unavailable: {0}")]
    Unavailable(String),
    /// Credentials refused, or a configured database, schema, warehouse, role, table or
    /// column does not exist or is not granted. Fatal.
    #[error("Snowflake refused the request (check the snowflake settings and grants): {0}")]
    Misconfigured(String),
    /// Anything else (an answer we cannot read, a statement Snowflake rejected). Fatal.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

impl StoreError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<StoreError> for SourceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::Unavailable(m),
            StoreError::Misconfigured(m) => Self::Misconfigured(m),
            StoreError::Unknown(e) => Self::Unknown(e),
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::Unavailable(m),
            StoreError::Misconfigured(m) => Self::Misconfigured(m),
            StoreError::Unknown(e) => Self::Unknown(e),
        }
    }
}

impl From<StoreError> for SinkError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::Unavailable(m),
            StoreError::Misconfigured(m) => Self::Misconfigured(m),
            StoreError::Unknown(e) => Self::Unknown(e),
        }
    }
}

/// How the store reacts to a connector error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// The session token is no longer valid: log in again and repeat the statement.
    SessionGone,
    /// Retry later.
    Unavailable,
    /// Fix the configuration or grants.
    Misconfigured,
    /// Neither.
    Unknown,
}

/// Snowflake codes for a session that has to be logged in again: session expired
/// (`390112`), session no longer exists (`390111`), authentication token expired (`390114`).
const SESSION_GONE_CODES: &[&str] = &["390111", "390112", "390114"];

/// Snowflake codes that clear up by themselves: a lock wait ran out or too many
/// statements queued for one lock (`000625`), statement timeout (`000630`), statement
/// cancelled (`000604`).
const TRANSIENT_CODES: &[&str] = &["000625", "000630", "000604"];

/// Snowflake codes that mean a name or grant is wrong: object does not exist or is not
/// authorized (`002003`, and `002043` for DDL), invalid identifier (`000904`), insufficient
/// privileges (`003001`), no current database or schema (`090105`, `090106`), no active
/// warehouse (`000606`). Every login refusal is `390xxx` and handled by its prefix.
const MISCONFIGURED_CODES: &[&str] = &[
    "002003", "002043", "000904", "003001", "090105", "090106", "000606",
];

/// Sorts one connector error.
pub(crate) fn classify(e: &ConnectorError) -> Class {
    match e.kind() {
        ErrorKind::SessionExpired => Class::SessionGone,
        ErrorKind::Network | ErrorKind::Timeout | ErrorKind::Cancelled => Class::Unavailable,
        ErrorKind::Auth | ErrorKind::Config => Class::Misconfigured,
        ErrorKind::Server => classify_server(e.snowflake_code(), e.snowflake_message()),
        _ => Class::Unknown,
    }
}

fn classify_server(code: Option<&str>, message: Option<&str>) -> Class {
    let code = code.unwrap_or_default();
    if SESSION_GONE_CODES.contains(&code) {
        Class::SessionGone
    } else if TRANSIENT_CODES.contains(&code) || mentions_a_lock(message.unwrap_or_default()) {
        Class::Unavailable
    } else if MISCONFIGURED_CODES.contains(&code) || code.starts_with("390") {
        Class::Misconfigured
    } else {
        Class::Unknown
    }
}

/// Lock errors are recognised by text as a second line of defence, should Snowflake ever
/// report a lock wait under another code.
fn mentions_a_lock(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("lock_timeout") || lower.contains("has locked table")
}

/// Turns a connector error into a [`StoreError`], with `what` naming the step.
pub(crate) fn store_error(what: &str, e: &ConnectorError) -> StoreError {
    let message = format!("{what}: {}", describe(e));
    match classify(e) {
        Class::SessionGone | Class::Unavailable => StoreError::Unavailable(message),
        Class::Misconfigured => StoreError::Misconfigured(message),
        Class::Unknown => StoreError::Unknown(anyhow::anyhow!(message)),
    }
}

/// A connector error as safe text. A server error is written as its code and its message
/// (`Snowflake error 002003: SQL compilation error: …`), not as the connector's
/// `002003 (42S02): …`, whose code and SQLSTATE the phone scrubber reads as one number.
fn describe(e: &ConnectorError) -> String {
    server_text(e.snowflake_code(), e.snowflake_message())
        .unwrap_or_else(|| safe_text(&e.to_string()))
}

fn server_text(code: Option<&str>, message: Option<&str>) -> Option<String> {
    let code =
        code.filter(|c| (1..=6).contains(&c.len()) && c.chars().all(|c| c.is_ascii_digit()))?;
    Some(format!(
        "Snowflake error {code}: {}",
        safe_text(message.unwrap_or("(no message)"))
    ))
}

/// Outside text made safe to log: no phone numbers, bounded length.
pub(crate) fn safe_text(text: &str) -> String {
    let scrubbed = scrub_phone_numbers(text);
    if scrubbed.chars().count() <= MAX_MESSAGE_CHARS {
        return scrubbed;
    }
    let mut cut: String = scrubbed.chars().take(MAX_MESSAGE_CHARS).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_codes_sort_into_the_port_contracts() {
        let cases = [
            ("390112", "Your session has expired.", Class::SessionGone),
            ("390114", "Authentication token has expired.", Class::SessionGone),
            (
                "000625",
                "Statement '01' has locked table 'T' in transaction 1 and this lock has not yet been released.",
                Class::Unavailable,
            ),
            ("000630", "Statement reached its statement or warehouse timeout", Class::Unavailable),
            ("002003", "Object 'X' does not exist or not authorized.", Class::Misconfigured),
            ("000904", "invalid identifier 'PHONE'", Class::Misconfigured),
            ("390100", "Incorrect username or password was specified.", Class::Misconfigured),
            ("390144", "JWT token is invalid.", Class::Misconfigured),
            ("001003", "SQL compilation error: syntax error", Class::Unknown),
            ("100038", "Numeric value 'abc' is not recognized", Class::Unknown),
            ("999999", "waited past LOCK_TIMEOUT", Class::Unavailable),
        ];
        for (code, message, want) in cases {
            assert_eq!(classify_server(Some(code), Some(message)), want, "{code}");
        }
        assert_eq!(classify_server(None, None), Class::Unknown);
    }

    #[test]
    fn a_server_error_keeps_its_code_readable_and_loses_phone_numbers() {
        let text = server_text(
            Some("002003"),
            Some("SQL compilation error:\nTable 'RECIPIENTS' does not exist or not authorized."),
        )
        .expect("a server error");
        assert!(
            text.starts_with("Snowflake error 002003: SQL compilation error"),
            "{text}"
        );
        assert!(!text.contains("[phone]"), "{text}");
        let leaky = server_text(
            Some("100038"),
            Some("Numeric value '4155550123' is not recognized"),
        )
        .expect("a server error");
        assert!(!leaky.contains("4155550123"), "{leaky}");
        assert_eq!(
            server_text(None, Some("x")),
            None,
            "no code: the connector's own text"
        );
        assert_eq!(
            server_text(Some("4155550123x"), Some("x")),
            None,
            "a code is digits"
        );
    }

    #[test]
    fn error_text_loses_phone_numbers_and_length() {
        let text = safe_text("Numeric value '+1 (415) 555-0123' is not recognized");
        assert!(!text.contains("555"), "{text}");
        let long = safe_text(&"x".repeat(10_000));
        assert!(long.chars().count() <= MAX_MESSAGE_CHARS + 1);
    }
}
