//! The wall clock, as the state table stores it.
//!
//! Leases are Unix milliseconds from the system clock of whichever process writes them.
//! Workers sharing one SQLite file share one machine, hence one clock, so leases compare
//! exactly. A clock stepped back only lengthens leases; one stepped forward can end them
//! early, which the claim token (write-back) and the dedup uuid (no second SMS) absorb.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where a store reads "now" for its leases, in Unix milliseconds. The default is the
/// system clock ([`SqliteStore::open`](crate::SqliteStore::open)); tests hand in one they
/// can move forward, so lease expiry needs no waiting
/// ([`SqliteStore::open_with_clock`](crate::SqliteStore::open_with_clock)).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock, in Unix milliseconds.
pub fn system_clock() -> Clock {
    Arc::new(now_ms)
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// `now + lease`, saturating, so an absurd lease cannot wrap into the past.
pub(crate) fn lease_until(now: i64, lease: Duration) -> i64 {
    now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
}

/// Now as RFC 3339 UTC with milliseconds, for `processed_at` and `applied_at`.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_saturate_instead_of_wrapping() {
        assert_eq!(lease_until(1_000, Duration::from_millis(500)), 1_500);
        assert_eq!(lease_until(i64::MAX - 1, Duration::from_secs(10)), i64::MAX);
        assert_eq!(lease_until(5, Duration::MAX), i64::MAX);
        assert!(now_ms() > 1_600_000_000_000);
        assert!(now_rfc3339().ends_with('Z'));
    }
}
