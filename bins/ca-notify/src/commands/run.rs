//! `ca-notify run`: one scheduled run on the configured adapters.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use ca_notify_job::{Job, JobBuilder, JobConfig, RunId, RunObserver, RunReport};
use tracing::Instrument;

use crate::cli::RunArgs;
use crate::exit::{self, Failure};
use crate::progress::ProgressObserver;
use crate::signals::shutdown_on_signals;
use crate::summary;

/// Runs the job once and prints its summary.
///
/// # Errors
/// A failure with the exit code of its cause (`docs/operations.md`).
pub async fn execute(
    config_path: Option<&Path>,
    env: &HashMap<String, String>,
    args: &RunArgs,
) -> Result<(), Failure> {
    let config = JobConfig::load(config_path, env)?;
    if args.dry_run {
        return super::dry_run::execute(&config).await;
    }
    let progress = Arc::new(ProgressObserver::new(None));
    let mut builder = Job::builder(config)
        .until_drained(args.until_drained)
        .deadline(args.deadline.map(std::time::Duration::from_secs));
    if args.until_drained {
        builder = builder.observer(Arc::clone(&progress) as Arc<dyn RunObserver>);
    }
    run_and_report(builder, &progress, args.summary_json.as_deref()).await
}

/// Builds the job, runs it until done or signalled, and prints its summary.
///
/// # Errors
/// The build's failure, or the run's with the exit code of its cause.
pub async fn run_and_report(
    builder: JobBuilder,
    progress: &ProgressObserver,
    summary_json: Option<&Path>,
) -> Result<(), Failure> {
    // The id is made before the job is built, so that the lines of the build (opening the
    // store, migrating it) carry it too, under the same span the run's lines do.
    let run_id = ca_notify_job::new_run_id();
    let job = builder
        .run_id(run_id.clone())
        .build()
        .instrument(tracing::info_span!("job", run_id = %run_id))
        .await?;
    let result = job.run(shutdown_on_signals()).await;
    progress.finish();
    let report = match &result {
        Ok(report) => report,
        Err(failure) => &failure.report,
    };
    report_summary(&run_id, report, summary_json)?;
    result.map(drop).map_err(|failure| Failure::from(&failure))
}

/// Prints the summary table, and writes the JSON when asked.
///
/// # Errors
/// When the JSON file cannot be written.
pub fn report_summary(
    run_id: &RunId,
    report: &RunReport,
    json: Option<&Path>,
) -> Result<(), Failure> {
    print!("{}", summary::table(run_id, report));
    if let Some(path) = json {
        summary::write_json(run_id, report, path)
            .map_err(|e| Failure::new(exit::INTERNAL, e.to_string()))?;
    }
    Ok(())
}
