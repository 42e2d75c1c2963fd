//! The end-of-run summary: a table for people, the same as JSON for machines.

use std::fmt::Write as _;
use std::path::Path;

use ca_notify_job::{RunId, RunReport};
use serde::Serialize;

/// The JSON summary: the run's id and its report.
#[derive(Serialize)]
struct Summary<'a> {
    run_id: &'a RunId,
    #[serde(flatten)]
    report: &'a RunReport,
}

/// Renders the report as an aligned table.
pub fn table(run_id: &RunId, report: &RunReport) -> String {
    let mut rows: Vec<(String, String)> = vec![
        ("run id".into(), run_id.to_string()),
        ("claimed".into(), report.claimed.to_string()),
        ("sent".into(), report.sent.to_string()),
        ("already sent".into(), report.already_sent.to_string()),
    ];
    rows.push(("not sent".into(), report.not_sent_total().to_string()));
    for (reason, count) in &report.not_sent {
        rows.push((format!("  {reason}"), count.to_string()));
    }
    rows.push(("deferred".into(), report.deferred_total().to_string()));
    for (reason, count) in &report.deferred {
        rows.push((format!("  {reason}"), count.to_string()));
    }
    rows.extend([
        ("epochs".into(), report.epochs.to_string()),
        ("batches".into(), report.batches.to_string()),
        ("issue requests".into(), report.issue_requests.to_string()),
        ("item retries".into(), report.item_retries.to_string()),
        ("rate limited".into(), report.rate_limited.to_string()),
        ("validator calls".into(), report.validator_calls.to_string()),
        ("elapsed".into(), format!("{:.2} s", report.elapsed_secs)),
        ("records/s".into(), format!("{:.1}", report.records_per_sec)),
    ]);
    if let Some(stop) = &report.stop {
        rows.push(("stopped".into(), stop.to_string()));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in rows {
        let _ = writeln!(out, "{key:<width$}  {value:>10}");
    }
    out
}

/// Writes the run id and the report as JSON.
///
/// # Errors
/// When the file cannot be written.
pub fn write_json(run_id: &RunId, report: &RunReport, path: &Path) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(&json(run_id, report))?;
    std::fs::write(path, json + "\n")
        .map_err(|e| anyhow::anyhow!("cannot write the summary to {}: {e}", path.display()))
}

/// The summary as JSON (the report and its run id), as `--summary-json` writes it.
pub fn json(run_id: &RunId, report: &RunReport) -> serde_json::Value {
    serde_json::to_value(Summary { run_id, report }).unwrap_or(serde_json::Value::Null)
}
