//! `ca-notify requeue`: finished, not-texted records back to pending; a count first, the
//! write only with `--yes`.

use std::sync::Arc;

use ca_notify_domain::RecordId;
use ca_notify_job::ids_file;
use ca_notify_ports::admin::RequeueSelection;
use ca_notify_ports::{AdminError, StoreAdmin};

use crate::cli::{RequeueArgs, RequeueOutcome};
use crate::commands::operator::print_json;
use crate::exit::{self, Failure};

/// Requeues (or counts) the records of `selection` (read by [`selection`]).
///
/// # Errors
/// Exit code 10 for a refused selection (a texted, pending, purged or unknown id), 5 when
/// the store fails. Nothing changes then.
pub async fn execute(
    admin: &Arc<dyn StoreAdmin>,
    selection: &RequeueSelection,
    args: &RequeueArgs,
) -> Result<(), Failure> {
    let report = admin.requeue(selection, args.yes).await?;
    if args.json {
        return print_json(&report);
    }
    let skipped = if report.skipped_purged > 0 {
        format!(
            " ({} purged record(s) left alone: no phone number to text)",
            report.skipped_purged
        )
    } else {
        String::new()
    };
    if report.applied {
        println!("Requeued {} record(s){skipped}.", report.requeued);
    } else {
        println!(
            "Would requeue {} record(s){skipped}. Nothing written; run again with --yes to requeue.",
            report.requeued
        );
    }
    Ok(())
}

/// What `args` select, before any store is opened.
///
/// # Errors
/// Exit code 7 for a malformed ids file, 10 for an empty id list, 2 for no selection.
pub fn selection(args: &RequeueArgs) -> Result<RequeueSelection, Failure> {
    if let Some(ids) = &args.ids {
        let ids: Vec<RecordId> = ids
            .iter()
            .map(|id| id.trim())
            .filter(|id| !id.is_empty())
            .map(RecordId::new)
            .collect();
        if ids.is_empty() {
            return Err(AdminError::Refused("the id list is empty".to_owned()).into());
        }
        return Ok(RequeueSelection::Ids(ids));
    }
    if let Some(path) = &args.ids_file {
        let ids = ids_file::read_ids(path)
            .map_err(|e| Failure::new(exit::INPUT, format!("nothing requeued: {e}")))?;
        return Ok(RequeueSelection::Ids(ids));
    }
    if let Some(kind) = args.reason {
        return Ok(RequeueSelection::Reason(kind));
    }
    match args.outcome {
        Some(RequeueOutcome::Unconfirmed) => Ok(RequeueSelection::Unconfirmed),
        None => Err(Failure::new(
            exit::CONFIG,
            "requeue needs --ids, --ids-file, --reason or --outcome",
        )),
    }
}
