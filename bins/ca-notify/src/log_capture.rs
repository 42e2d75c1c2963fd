//! A copy of this process's log lines while a Functions invocation runs.
//!
//! The Azure Functions host shows a custom handler's `Logs` array in the invocation's log
//! (Application Insights in Azure), so `serve-functions` answers each invocation with the
//! lines its run wrote. The log writer ([`crate::telemetry`]) offers every line, already
//! scrubbed of phone numbers, to [`offer`]; between [`start`] and [`take`] they are kept.
//! One capture at a time is enough: the handler runs one invocation at a time.

use std::sync::Mutex;

/// Lines kept per invocation at most, so a long run cannot grow the answer without bound;
/// the rest are counted.
pub const MAX_LINES: usize = 2_000;

static CAPTURE: Mutex<Option<Capture>> = Mutex::new(None);

#[derive(Debug, Default)]
struct Capture {
    lines: Vec<String>,
    dropped: usize,
}

/// Starts keeping lines (and forgets any kept before).
pub fn start() {
    *lock() = Some(Capture::default());
}

/// Stops keeping lines and returns them, with a last line counting any left out.
pub fn take() -> Vec<String> {
    let Some(capture) = lock().take() else {
        return Vec::new();
    };
    let mut lines = capture.lines;
    if capture.dropped > 0 {
        lines.push(format!(
            "{} more log lines were left out of this answer; the handler's standard error has them all.",
            capture.dropped
        ));
    }
    lines
}

/// Keeps `text` (one or more whole lines) when a capture is running.
pub fn offer(text: &str) {
    let mut guard = lock();
    let Some(capture) = guard.as_mut() else {
        return;
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if capture.lines.len() < MAX_LINES {
            capture.lines.push(line.to_owned());
        } else {
            capture.dropped += 1;
        }
    }
}

fn lock() -> std::sync::MutexGuard<'static, Option<Capture>> {
    // A panic while holding the lock leaves plain data behind; keep using it.
    CAPTURE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test owns the process-wide capture. Other tests of this binary write through
    /// the log writer meanwhile, so it looks only for its own lines.
    #[test]
    fn keeps_lines_only_between_start_and_take_and_bounds_them() {
        let ours = |lines: Vec<String>| -> Vec<String> {
            lines
                .into_iter()
                .filter(|l| l.starts_with("capture-test"))
                .collect()
        };
        offer("capture-test before\n");
        start();
        offer("capture-test one\ncapture-test two\n\n");
        assert_eq!(ours(take()), ["capture-test one", "capture-test two"]);
        offer("capture-test after\n");
        assert!(take().is_empty());

        start();
        for i in 0..MAX_LINES + 3 {
            offer(&format!("capture-test {i}\n"));
        }
        let lines = take();
        assert_eq!(lines.len(), MAX_LINES + 1);
        let last = &lines[MAX_LINES];
        let dropped: usize = last
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{last}"));
        assert!(dropped >= 3 && last.contains("more log lines"), "{last}");
    }
}
