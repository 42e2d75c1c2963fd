//! Lenient parsing of the server's `Retry-After` and `X-RateLimit-Reset` values, and
//! their conversion to a tokio [`Instant`].
//!
//! The server writes both as Go `time.RFC1123` of a UTC time, which ends in `UTC`, not
//! the `GMT` of an IMF-fixdate (`pkg/ratelimit/limitware/middleware.go:129-141`), so a
//! strict HTTP-date parser rejects them. We accept that form, the standard `GMT` forms
//! and plain delta-seconds. The dates have whole-second precision and are truncated, so
//! the real reset lies up to a second later: [`RetryAt::to_instant`] rounds up.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, NaiveDateTime, Utc};
use tokio::time::Instant;

/// When the server says to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAt {
    /// A wall-clock time (an HTTP date).
    Date(SystemTime),
    /// A delay from the moment the answer arrived (delta-seconds).
    After(Duration),
}

/// Added to a parsed date because the server truncates it to whole seconds.
const TRUNCATION: Duration = Duration::from_secs(1);

/// Parses a `Retry-After`/`X-RateLimit-Reset` value leniently; `None` if it is neither
/// a date we know nor a number of seconds.
pub fn parse(value: &str) -> Option<RetryAt> {
    let text = value.trim();
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .ok()
            .map(|secs| RetryAt::After(Duration::from_secs(secs)));
    }
    parse_rfc1123_any_zone(text)
        .or_else(|| httpdate::parse_http_date(text).ok())
        .or_else(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|d| SystemTime::from(d.with_timezone(&Utc)))
        })
        .map(RetryAt::Date)
}

/// `Tue, 15 Jun 2021 18:01:00 UTC` (Go), `… GMT` (HTTP), `… +0000`, or without the
/// weekday. Only zones that mean UTC are accepted: the server only ever writes UTC.
fn parse_rfc1123_any_zone(text: &str) -> Option<SystemTime> {
    let (stamp, zone) = text.rsplit_once(' ')?;
    if !matches!(
        zone.to_ascii_uppercase().as_str(),
        "UTC" | "GMT" | "UT" | "Z" | "+0000" | "-0000"
    ) {
        return None;
    }
    let stamp = stamp.trim();
    let without_weekday = stamp.split_once(", ").map_or(stamp, |(_, rest)| rest);
    let naive = NaiveDateTime::parse_from_str(without_weekday, "%d %b %Y %H:%M:%S").ok()?;
    Some(SystemTime::from(naive.and_utc()))
}

impl RetryAt {
    /// The tokio instant this value names, given the wall clock and the tokio clock
    /// read at the same moment. A date in the past gives `now_instant`.
    pub fn to_instant(self, now_wall: SystemTime, now_instant: Instant) -> Instant {
        match self {
            Self::After(delay) => now_instant + delay,
            Self::Date(at) => match at.duration_since(now_wall) {
                Ok(ahead) => now_instant + ahead + TRUNCATION,
                // Already past by our clock; the truncation may still hold it briefly.
                Err(past) => now_instant + TRUNCATION.saturating_sub(past.duration()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    // 2021-06-15T18:01:00Z, the fixture's Retry-After.
    const FIXTURE_SECS: u64 = 1_623_780_060;

    #[test]
    fn parses_the_servers_utc_form_and_the_http_forms() {
        for text in [
            "Tue, 15 Jun 2021 18:01:00 UTC",
            "Tue, 15 Jun 2021 18:01:00 GMT",
            "15 Jun 2021 18:01:00 UTC",
            "  Tue, 15 Jun 2021 18:01:00 utc ",
            "Tue, 15 Jun 2021 18:01:00 +0000",
            "Tuesday, 15-Jun-21 18:01:00 GMT",
            "Tue Jun 15 18:01:00 2021",
            "2021-06-15T18:01:00Z",
        ] {
            assert_eq!(parse(text), Some(RetryAt::Date(at(FIXTURE_SECS))), "{text}");
        }
    }

    #[test]
    fn parses_delta_seconds() {
        assert_eq!(parse("120"), Some(RetryAt::After(Duration::from_secs(120))));
        assert_eq!(parse(" 0 "), Some(RetryAt::After(Duration::ZERO)));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        for text in [
            "",
            "soon",
            "-5",
            "Tue, 15 Jun 2021 18:01:00 PST",
            "Tue, 32 Jun 2021 18:01:00 UTC",
            "99999999999999999999999",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn converts_to_an_instant_rounding_the_truncated_second_up() {
        let now = Instant::now();
        let wall = at(FIXTURE_SECS - 30);
        let date = RetryAt::Date(at(FIXTURE_SECS));
        assert_eq!(date.to_instant(wall, now), now + Duration::from_secs(31));
        let delta = RetryAt::After(Duration::from_secs(7));
        assert_eq!(delta.to_instant(wall, now), now + Duration::from_secs(7));
        let past = RetryAt::Date(at(FIXTURE_SECS - 60));
        assert_eq!(past.to_instant(wall, now), now);
        let just_past = RetryAt::Date(at(FIXTURE_SECS - 30) - Duration::from_millis(400));
        assert_eq!(
            just_past.to_instant(wall, now),
            now + Duration::from_millis(600)
        );
    }
}
