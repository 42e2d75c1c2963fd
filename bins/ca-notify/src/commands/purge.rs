//! `ca-notify purge --older-than DAYS`: erases the personal data of records finished
//! before the retention period; counts first, erases only with `--yes`.

use std::sync::Arc;

use ca_notify_job::{retention, JobConfig};
use ca_notify_ports::StoreAdmin;
use chrono::Utc;

use crate::commands::operator::print_json;
use crate::exit::{self, Failure};

/// Purges (or counts).
///
/// # Errors
/// Exit code 2 for a retention setting below its floor, 10 for `--older-than` inside the
/// retention period, 5 when the store fails. Nothing is erased then.
pub async fn execute(
    config: &JobConfig,
    admin: &Arc<dyn StoreAdmin>,
    older_than: u32,
    yes: bool,
    json: bool,
) -> Result<(), Failure> {
    config
        .retention
        .check()
        .map_err(|e| Failure::new(exit::CONFIG, e.to_string()))?;
    let now = Utc::now();
    let cutoff = config
        .retention
        .cutoff(older_than, now)
        .map_err(|e| Failure::new(exit::REFUSED, format!("nothing purged: {e}")))?;
    let run = retention::purge_run(config.worker_id(), now);
    let report = admin.purge(cutoff, yes, &run).await?;
    if json {
        return print_json(&report);
    }
    let columns = if report.erased_columns.is_empty() {
        "nothing: this store holds no personal data of them (the source table is the \
         state's own; see docs/operations.md)"
            .to_owned()
    } else {
        report.erased_columns.join(", ")
    };
    let verb = if report.applied {
        "Purged"
    } else {
        "Would purge"
    };
    println!(
        "{verb} {} record(s) finished before {} ({} texted; {} already purged). Erased columns: {columns}. \
         Dedup keys and outcomes stay.",
        report.records,
        cutoff.format("%Y-%m-%d %H:%M UTC"),
        report.sent,
        report.already_purged,
    );
    if report.applied {
        println!(
            "Recorded in the runs table as run {} (stop: purge).",
            run.id
        );
    } else {
        println!("Nothing written; run again with --yes to erase.");
    }
    Ok(())
}
