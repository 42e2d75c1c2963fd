//! [`RunMetrics`] in the Prometheus text exposition format (version 0.0.4:
//! prometheus.io/docs/instrumenting/exposition_formats, "Text format details": one
//! `# HELP` and one `# TYPE` line per metric name, label values with `\`, `"` and line
//! feeds escaped, a line feed after the last line).
//!
//! Every value describes one run, so every metric is a gauge (a counter pushed per run
//! would restart from zero each time). The names follow the batch-job conventions of
//! prometheus.io/docs/practices/instrumentation ("Batch jobs": when it last succeeded,
//! how long it took, what it processed).

use std::fmt::Write as _;

/// Records of one outcome (and reason) in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordCount {
    /// `sent`, `already_sent`, `not_sent` or `deferred`.
    pub outcome: &'static str,
    /// The stable reason code (`landline`, `deadline`, …); empty for `sent` and
    /// `already_sent`.
    pub reason: String,
    /// How many.
    pub count: u64,
}

/// What one run did, as the metrics show it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMetrics {
    /// Records by outcome and reason.
    pub records: Vec<RecordCount>,
    /// Records claimed.
    pub claimed: u64,
    /// Batch-issue requests made.
    pub issue_requests: u64,
    /// Items re-sent after a transient failure.
    pub item_retries: u64,
    /// Batch-issue requests answered with a rate limit (429).
    pub rate_limited: u64,
    /// Phone checks made.
    pub validator_calls: u64,
    /// How long the run took, in seconds.
    pub duration_secs: f64,
    /// When it ended, in Unix seconds.
    pub ended_at: f64,
    /// Whether it succeeded (the command exits 0).
    pub succeeded: bool,
    /// The stop reason code (`deadline`, `drained`, `completed`, `misconfigured`, …).
    pub stop: String,
    /// When the last successful run ended, in Unix seconds (this one if it succeeded);
    /// `None` when no run ever succeeded or the store could not say.
    pub last_success: Option<f64>,
    /// Records waiting for a claim after the run; `None` when the store could not say.
    pub backlog: Option<u64>,
    /// When the oldest of them arrived, in Unix seconds; `None` when none waits, or the
    /// store keeps no arrival times (Snowflake without `source.arrived_at_column`).
    pub backlog_oldest_arrival: Option<f64>,
}

/// Every metric name [`render`] can write, for alerting rules and their tests.
pub const METRIC_NAMES: [&str; 13] = [
    RECORDS,
    CLAIMED,
    ISSUE_REQUESTS,
    ITEM_RETRIES,
    RATE_LIMITED,
    VALIDATOR_CALLS,
    DURATION,
    END,
    SUCCEEDED,
    STOP,
    LAST_SUCCESS,
    BACKLOG,
    BACKLOG_OLDEST,
];

const RECORDS: &str = "ca_notify_run_records";
const CLAIMED: &str = "ca_notify_run_claimed_records";
const ISSUE_REQUESTS: &str = "ca_notify_run_issue_requests";
const ITEM_RETRIES: &str = "ca_notify_run_item_retries";
const RATE_LIMITED: &str = "ca_notify_run_rate_limited_responses";
const VALIDATOR_CALLS: &str = "ca_notify_run_validator_calls";
const DURATION: &str = "ca_notify_run_duration_seconds";
const END: &str = "ca_notify_run_end_timestamp_seconds";
const SUCCEEDED: &str = "ca_notify_run_succeeded";
const STOP: &str = "ca_notify_run_stop";
const LAST_SUCCESS: &str = "ca_notify_last_success_timestamp_seconds";
const BACKLOG: &str = "ca_notify_backlog_records";
const BACKLOG_OLDEST: &str = "ca_notify_backlog_oldest_arrival_timestamp_seconds";

/// The run in the text exposition format.
pub fn render(m: &RunMetrics) -> String {
    let mut out = String::new();
    family(
        &mut out,
        RECORDS,
        "Records of the last run by outcome and reason.",
        m.records
            .iter()
            .map(|r| {
                (
                    vec![
                        ("outcome", r.outcome.to_owned()),
                        ("reason", r.reason.clone()),
                    ],
                    r.count as f64,
                )
            })
            .collect(),
    );
    let plain = |out: &mut String, name: &str, help: &str, value: f64| {
        family(out, name, help, vec![(Vec::new(), value)]);
    };
    plain(
        &mut out,
        CLAIMED,
        "Records the last run claimed.",
        m.claimed as f64,
    );
    plain(
        &mut out,
        ISSUE_REQUESTS,
        "Batch-issue requests the last run made.",
        m.issue_requests as f64,
    );
    plain(
        &mut out,
        ITEM_RETRIES,
        "Items the last run re-sent after a transient failure.",
        m.item_retries as f64,
    );
    plain(
        &mut out,
        RATE_LIMITED,
        "Batch-issue requests of the last run answered with 429 (rate limited).",
        m.rate_limited as f64,
    );
    plain(
        &mut out,
        VALIDATOR_CALLS,
        "Phone checks the last run made.",
        m.validator_calls as f64,
    );
    plain(
        &mut out,
        DURATION,
        "How long the last run took.",
        m.duration_secs,
    );
    plain(
        &mut out,
        END,
        "When the last run ended, in Unix time.",
        m.ended_at,
    );
    plain(
        &mut out,
        SUCCEEDED,
        "1 when the last run succeeded (exit code 0), else 0.",
        if m.succeeded { 1.0 } else { 0.0 },
    );
    family(
        &mut out,
        STOP,
        "Why the last run stopped: 1 for its stop reason.",
        vec![(vec![("reason", m.stop.clone())], 1.0)],
    );
    if let Some(at) = m.last_success {
        plain(
            &mut out,
            LAST_SUCCESS,
            "When the last successful run ended, in Unix time (from the store's runs table).",
            at,
        );
    }
    if let Some(backlog) = m.backlog {
        plain(
            &mut out,
            BACKLOG,
            "Records waiting for a claim when the last run ended.",
            backlog as f64,
        );
    }
    if let Some(at) = m.backlog_oldest_arrival {
        plain(
            &mut out,
            BACKLOG_OLDEST,
            "When the oldest record waiting for a claim arrived, in Unix time (absent when none waits).",
            at,
        );
    }
    out
}

type Sample = (Vec<(&'static str, String)>, f64);

fn family(out: &mut String, name: &str, help: &str, samples: Vec<Sample>) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (labels, value) in samples {
        out.push_str(name);
        if !labels.is_empty() {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let _ = write!(out, "{{{}}}", pairs.join(","));
        }
        let _ = writeln!(out, " {value}");
    }
}

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> RunMetrics {
        RunMetrics {
            records: vec![
                RecordCount {
                    outcome: "sent",
                    reason: String::new(),
                    count: 7,
                },
                RecordCount {
                    outcome: "not_sent",
                    reason: "landline".into(),
                    count: 2,
                },
                RecordCount {
                    outcome: "deferred",
                    reason: "odd \"reason\"\\\nx".into(),
                    count: 1,
                },
            ],
            claimed: 10,
            issue_requests: 3,
            item_retries: 1,
            rate_limited: 1,
            validator_calls: 10,
            duration_secs: 1.5,
            ended_at: 1_767_225_600.25,
            succeeded: true,
            stop: "deadline".into(),
            last_success: Some(1_767_225_600.25),
            backlog: Some(4),
            backlog_oldest_arrival: Some(1_767_200_000.5),
        }
    }

    #[test]
    fn renders_gauges_with_help_type_and_escaped_labels() {
        let text = render(&sample());
        assert!(text.ends_with('\n'));
        assert!(text.contains("# TYPE ca_notify_run_records gauge\n"));
        assert!(text.contains("ca_notify_run_records{outcome=\"sent\",reason=\"\"} 7\n"));
        assert!(
            text.contains("ca_notify_run_records{outcome=\"not_sent\",reason=\"landline\"} 2\n")
        );
        assert!(text.contains(
            "ca_notify_run_records{outcome=\"deferred\",reason=\"odd \\\"reason\\\"\\\\\\nx\"} 1\n"
        ));
        assert!(text.contains("ca_notify_run_duration_seconds 1.5\n"));
        assert!(text.contains("ca_notify_run_stop{reason=\"deadline\"} 1\n"));
        assert!(text.contains("ca_notify_last_success_timestamp_seconds 1767225600.25\n"));
        assert!(text.contains("ca_notify_backlog_records 4\n"));
        assert!(text.contains("ca_notify_backlog_oldest_arrival_timestamp_seconds 1767200000.5\n"));
        for name in METRIC_NAMES {
            assert_eq!(
                text.matches(&format!("# TYPE {name} gauge\n")).count(),
                1,
                "{name}"
            );
        }
    }

    #[test]
    fn unknown_values_are_left_out_not_invented() {
        let mut m = sample();
        m.last_success = None;
        m.backlog = None;
        m.backlog_oldest_arrival = None;
        let text = render(&m);
        assert!(!text.contains(LAST_SUCCESS), "{text}");
        assert!(!text.contains(BACKLOG), "{text}");
        assert!(!text.contains(BACKLOG_OLDEST), "{text}");
    }
}
