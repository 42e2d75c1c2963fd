//! Lenient parsing of `Retry-After` and `X-RateLimit-Reset` values (RFC 9110 §10.2.3),
//! and their conversion to a delay.
//!
//! The verification server writes both as Go `time.RFC1123` of a UTC time, which ends in
//! `UTC`, not the `GMT` of an IMF-fixdate (`pkg/ratelimit/limitware/middleware.go:129-141`),
//! so a strict HTTP-date parser rejects them. We accept that form, the standard `GMT`
//! forms and plain delta-seconds. HTTP dates have whole-second precision and servers
//! truncate them, so the real reset lies up to a second later: [`RetryAt::delay_from`]
//! rounds up.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, NaiveDateTime, Utc};

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

/// Parses a value and turns it into a delay from `now_wall`; `None` if unreadable.
pub fn parse_delay(value: &str, now_wall: SystemTime) -> Option<Duration> {
    parse(value).map(|at| at.delay_from(now_wall))
}

impl RetryAt {
    /// How long from `now_wall` (the wall clock when the answer arrived) until this
    /// value. A date in the past gives zero, or what is left of its truncated second.
    pub fn delay_from(self, now_wall: SystemTime) -> Duration {
        match self {
            Self::After(delay) => delay,
            Self::Date(at) => match at.duration_since(now_wall) {
                Ok(ahead) => ahead + TRUNCATION,
                // Already past by our clock; the truncation may still hold it briefly.
                Err(past) => TRUNCATION.saturating_sub(past.duration()),
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

    #[test]
    fn converts_to_a_delay_rounding_the_truncated_second_up() {
        let wall = at(FIXTURE_SECS - 30);
        let date = RetryAt::Date(at(FIXTURE_SECS));
        assert_eq!(date.delay_from(wall), Duration::from_secs(31));
        let delta = RetryAt::After(Duration::from_secs(7));
        assert_eq!(delta.delay_from(wall), Duration::from_secs(7));
        let past = RetryAt::Date(at(FIXTURE_SECS - 60));
        assert_eq!(past.delay_from(wall), Duration::ZERO);
        let just_past = RetryAt::Date(at(FIXTURE_SECS - 30) - Duration::from_millis(400));
        assert_eq!(just_past.delay_from(wall), Duration::from_millis(600));
    }

    #[test]
    fn parse_delay_reads_seconds_and_dates() {
        let now = at(1_700_000_000);
        assert_eq!(parse_delay(" 7 ", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_delay(&later, now), Some(Duration::from_secs(31)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_delay(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_delay("soon", now), None);
        assert_eq!(parse_delay("-3", now), None);
    }
}
