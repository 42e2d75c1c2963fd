//! What a run leaves for its operators: its id, its row in the store's runs table, and
//! its metrics, all derived from the one [`RunReport`].
//!
//! The run id is made here (a UUID version 7, so ids sort by start), not in the domain,
//! which makes no randomness. A failure to record the run or publish its metrics is
//! logged and does not change the run's result: the records were decided either way, and
//! a missing record or push shows up as "no successful run" in the alerts.

use std::time::Duration;

use ca_notify_domain::NotSentKind;
use ca_notify_metrics::{RecordCount, RunMetrics};
use ca_notify_pipeline::RunReport;
use ca_notify_ports::{Backlog, RunCounts, RunEnd, RunId};
use chrono::{DateTime, Utc};

/// A new run id: a UUID version 7 (time-ordered), hyphenated.
pub fn new_run_id() -> RunId {
    RunId::parse(uuid::Uuid::now_v7().to_string()).expect("a hyphenated UUID is a valid run id")
}

/// The code the runs table and the metrics give a run's stop: the report's stop reason,
/// or `completed` when the run did all its epochs.
pub fn stop_code(report: &RunReport) -> &'static str {
    report.stop.map_or("completed", |stop| stop.code())
}

/// The runs table's counts of a report.
pub fn run_counts(report: &RunReport) -> RunCounts {
    RunCounts {
        claimed: report.claimed,
        sent: report.sent,
        already_sent: report.already_sent,
        not_sent: report.not_sent_total(),
        unconfirmed: report.not_sent_for(NotSentKind::Unconfirmed),
        deferred: report.deferred_total(),
    }
}

/// The metrics of a finished run.
pub fn run_metrics(
    report: &RunReport,
    end: &RunEnd,
    duration: Duration,
    last_success: Option<DateTime<Utc>>,
    backlog: Option<Backlog>,
) -> RunMetrics {
    let mut records = vec![
        RecordCount {
            outcome: "sent",
            reason: String::new(),
            count: report.sent,
        },
        RecordCount {
            outcome: "already_sent",
            reason: String::new(),
            count: report.already_sent,
        },
    ];
    records.extend(report.not_sent.iter().map(|(kind, &count)| RecordCount {
        outcome: "not_sent",
        reason: kind.code().to_owned(),
        count,
    }));
    records.extend(report.deferred.iter().map(|(kind, &count)| RecordCount {
        outcome: "deferred",
        reason: kind.code().to_owned(),
        count,
    }));
    RunMetrics {
        records,
        claimed: report.claimed,
        issue_requests: report.issue_requests,
        item_retries: report.item_retries,
        rate_limited: report.rate_limited,
        validator_calls: report.validator_calls,
        duration_secs: duration.as_secs_f64(),
        ended_at: unix_secs(end.ended_at),
        succeeded: end.succeeded,
        stop: end.stop.clone(),
        last_success: last_success.map(unix_secs),
        backlog: backlog.map(|b| b.records),
        backlog_oldest_arrival: backlog.and_then(|b| b.oldest_arrival).map(unix_secs),
    }
}

fn unix_secs(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_time_ordered_uuids() {
        let a = new_run_id();
        let b = new_run_id();
        assert_eq!(a.as_str().len(), 36);
        assert_eq!(&a.as_str()[14..15], "7", "a version 7 UUID");
        assert!(a <= b, "{a} then {b}");
    }
}
