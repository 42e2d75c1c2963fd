//! The function timeout, read from `host.json`, and the run deadline derived from it.
//!
//! The Functions host stops an invocation after `functionTimeout` (host.json, a .NET
//! `TimeSpan` such as `"00:05:00"`; `-1` or `null` for none on the plans that allow it).
//! Unset, it is the plan's default: 5 minutes on the Consumption plan, 30 on the others
//! (Microsoft's docs, `includes/functions-timeout-duration.md`, *Function app timeout
//! duration*); the handler cannot tell the plan, so it assumes the shorter. The handler
//! is started in the function app's root, where `host.json` lives, unless
//! `customHandler.description.workingDirectory` moves it: `--host-json` points at it then.
//!
//! The run's deadline leaves a margin under the timeout for what follows the deadline:
//! in-flight write-backs and releasing the records not yet settled, and the answer to the
//! host. No request outlives the deadline (the pipeline starts none that could), so the
//! margin is small: a tenth of the timeout, at least 10 s.

use std::path::Path;
use std::time::Duration;

/// The timeout when `host.json` sets none: the Consumption plan's default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// The smallest margin between the run's deadline and the function timeout.
pub const MIN_MARGIN: Duration = Duration::from_secs(10);

/// What `host.json` says about the function timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionTimeout {
    /// Invocations are stopped after this long.
    Bounded(Duration),
    /// No timeout (`-1` or `null`): the configured `pipeline.deadline_secs` applies.
    Unbounded,
}

impl FunctionTimeout {
    /// Reads `functionTimeout` from the `host.json` at `path`.
    ///
    /// # Errors
    /// An unreadable file, malformed JSON or a value that is not a time span, in one line
    /// naming the file.
    pub fn from_host_json(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read {shown} ({e}); start serve-functions in the function app's root or pass --host-json"
            )
        })?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{shown} is not JSON: {e}"))?;
        match json.get("functionTimeout") {
            None => Ok(Self::Bounded(DEFAULT_TIMEOUT)),
            Some(serde_json::Value::Null) => Ok(Self::Unbounded),
            Some(serde_json::Value::String(s)) => parse_time_span(s).ok_or_else(|| {
                format!(
                    "{shown}: functionTimeout {s:?} is not a time span; allowed: \"hh:mm:ss\", \"d.hh:mm:ss\" or \"-1\""
                )
            }),
            Some(other) => Err(format!(
                "{shown}: functionTimeout must be a string such as \"00:05:00\", not {other}"
            )),
        }
    }

    /// The run's deadline under this timeout, in whole seconds: the timeout less its
    /// margin; `configured` when there is no timeout.
    ///
    /// # Errors
    /// A timeout too short to leave the margin and a second of work.
    pub fn deadline_secs(self, configured: u64) -> Result<u64, String> {
        let Self::Bounded(timeout) = self else {
            return Ok(configured);
        };
        let margin = (timeout / 10).max(MIN_MARGIN);
        match timeout.checked_sub(margin).map(|d| d.as_secs()) {
            Some(secs) if secs >= 1 => Ok(secs),
            _ => Err(format!(
                "functionTimeout {} s leaves no time to run after the {} s margin; allowed: at least {} s",
                timeout.as_secs(),
                margin.as_secs(),
                MIN_MARGIN.as_secs() + 1
            )),
        }
    }
}

/// A .NET `TimeSpan` as host.json writes it: `[-][d.]hh:mm:ss[.fffffff]`, or `-1`.
fn parse_time_span(text: &str) -> Option<FunctionTimeout> {
    let text = text.trim();
    if text == "-1" {
        return Some(FunctionTimeout::Unbounded);
    }
    let (days, clock) = match text.split_once('.') {
        // "1.02:00:00": days before the first dot, when the dot comes before any colon.
        Some((d, rest)) if !d.contains(':') => (d.parse::<u64>().ok()?, rest),
        _ => (0, text),
    };
    let mut parts = clock.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let hours: u64 = h.parse().ok()?;
    let minutes: u64 = m.parse().ok()?;
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    let seconds: u64 = whole.parse().ok()?;
    if hours > 23 || minutes > 59 || seconds > 59 {
        return None;
    }
    if !fraction.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let total = days
        .checked_mul(86_400)?
        .checked_add(hours.checked_mul(3_600)?)?
        .checked_add(minutes * 60 + seconds)?;
    // A fraction of a second only shortens nothing we could use: whole seconds suffice.
    Some(FunctionTimeout::Bounded(Duration::from_secs(total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_json(text: &str) -> Result<FunctionTimeout, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("host.json");
        std::fs::write(&path, text).expect("write");
        FunctionTimeout::from_host_json(&path)
    }

    #[test]
    fn reads_the_timeout_as_host_json_writes_it() {
        let bounded = |secs| Ok(FunctionTimeout::Bounded(Duration::from_secs(secs)));
        assert_eq!(host_json(r#"{"version":"2.0"}"#), bounded(300));
        assert_eq!(host_json(r#"{"functionTimeout":"00:02:00"}"#), bounded(120));
        assert_eq!(host_json(r#"{"functionTimeout":"00:10:00"}"#), bounded(600));
        assert_eq!(
            host_json(r#"{"functionTimeout":"01:30:05.500"}"#),
            bounded(5405)
        );
        assert_eq!(
            host_json(r#"{"functionTimeout":"1.02:00:00"}"#),
            bounded(93_600)
        );
        assert_eq!(
            host_json(r#"{"functionTimeout":"-1"}"#),
            Ok(FunctionTimeout::Unbounded)
        );
        assert_eq!(
            host_json(r#"{"functionTimeout":null}"#),
            Ok(FunctionTimeout::Unbounded)
        );
    }

    #[test]
    fn refuses_what_is_not_a_time_span_naming_the_file() {
        for bad in [
            r#"{"functionTimeout":"5m"}"#,
            r#"{"functionTimeout":"00:61:00"}"#,
            r#"{"functionTimeout":"00:05"}"#,
            r#"{"functionTimeout":"24:00:00"}"#,
            r#"{"functionTimeout":300}"#,
            "not json",
        ] {
            let err = host_json(bad).expect_err(bad);
            assert!(err.contains("host.json"), "{bad}: {err}");
        }
        let missing = FunctionTimeout::from_host_json(Path::new("/nonexistent/host.json"))
            .expect_err("missing");
        assert!(missing.contains("--host-json"), "{missing}");
    }

    #[test]
    fn the_deadline_leaves_a_tenth_and_at_least_ten_seconds() {
        let deadline =
            |secs| FunctionTimeout::Bounded(Duration::from_secs(secs)).deadline_secs(110);
        assert_eq!(deadline(120), Ok(108));
        assert_eq!(deadline(300), Ok(270));
        assert_eq!(deadline(600), Ok(540));
        assert_eq!(deadline(30), Ok(20));
        assert_eq!(deadline(11), Ok(1));
        assert!(deadline(10).is_err());
        assert_eq!(FunctionTimeout::Unbounded.deadline_secs(110), Ok(110));
    }
}
