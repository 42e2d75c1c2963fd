//! `ca-notify reconcile`: asks the verification server about every `unconfirmed` record.

use std::sync::Arc;
use std::time::Duration;

use ca_notify_adapter_verification::CodeStatusError;
use ca_notify_job::reconcile::{self, ReconcileError};
use ca_notify_job::JobConfig;
use ca_notify_ports::StoreAdmin;

use crate::commands::operator::print_json;
use crate::exit::{self, Failure};

/// Reconciles, and prints what was found.
///
/// # Errors
/// Exit code 9 when the verification server is down or failing, 3 when it refuses the
/// key, 6 when it rejects the request, 5 when the store fails; what was proven before
/// is written, nothing else.
pub async fn execute(
    config: &JobConfig,
    admin: &Arc<dyn StoreAdmin>,
    dry_run: bool,
    deadline_secs: Option<u64>,
    json: bool,
) -> Result<(), Failure> {
    let client = config
        .verification
        .client(config.workers)
        .map_err(|e| Failure::new(exit::CONFIG, e.to_string()))?;
    let budget = Duration::from_secs(deadline_secs.unwrap_or(config.pipeline.deadline_secs));
    let deadline = tokio::time::Instant::now() + budget;
    let report = match reconcile::reconcile(admin.as_ref(), &client, deadline, !dry_run).await {
        Ok(report) => report,
        Err(ReconcileError::Store(e)) => return Err(e.into()),
        Err(ReconcileError::Server { error, report }) => {
            let code = match &error {
                CodeStatusError::Unauthorized(_) => exit::UNAUTHORIZED,
                CodeStatusError::Rejected(_) => exit::REJECTED,
                _ => exit::UNAVAILABLE,
            };
            let written = if report.applied {
                "written"
            } else {
                "found (dry run)"
            };
            return Err(Failure::new(
                code,
                format!(
                    "reconcile stopped: {error}; {} record(s) checked, {} confirmed and {written} before it",
                    report.checked, report.confirmed
                ),
            ));
        }
    };
    if json {
        return print_json(&report);
    }
    let verb = if report.applied {
        "written sent"
    } else {
        "would be written sent (dry run)"
    };
    println!(
        "Checked {} unconfirmed record(s): {} code(s) claimed, {verb} (confirmed_by_claim); \
         {} not claimed and {} unknown to the server, left unconfirmed.",
        report.checked, report.confirmed, report.not_claimed, report.not_found
    );
    if !report.left_unconfirmed.is_empty() {
        println!("Left unconfirmed: {}", report.left_unconfirmed.join(", "));
    }
    if report.stopped_early {
        println!("Stopped at the deadline with records unchecked; run it again.");
    }
    Ok(())
}
