//! `ca-notify run`: one scheduled run on the configured adapters.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use ca_notify_pipeline::{Pipeline, RunObserver, RunReport};

use crate::cli::RunArgs;
use crate::compose;
use crate::exit::{self, Failure};
use crate::progress::ProgressObserver;
use crate::settings::AppConfig;
use crate::summary;

/// Runs the pipeline once and prints its summary.
///
/// # Errors
/// A failure with the exit code of its cause (`docs/operations.md`).
pub async fn execute(
    config_path: Option<&Path>,
    env: &HashMap<String, String>,
    args: &RunArgs,
) -> Result<(), Failure> {
    let config = AppConfig::load(config_path, env)?;
    if args.dry_run {
        return super::dry_run::execute(&config).await;
    }
    let settings = compose::pipeline_settings(&config, args.until_drained)?;
    config.validate_for_run()?;
    let parser = compose::phone_parser(&config)?;
    let secret = compose::dedup_secret(&config)?;
    let adapters = compose::Adapters::from_config(&config).await?;
    let progress = Arc::new(ProgressObserver::new(None));
    let mut builder = Pipeline::builder()
        .source(adapters.source)
        .validator(adapters.validator)
        .issuer(adapters.issuer)
        .sink(adapters.sink)
        .settings(settings)
        .phone_parser(parser)
        .dedup_secret(secret);
    if args.until_drained {
        builder = builder.observer(Arc::clone(&progress) as Arc<dyn RunObserver>);
    }
    let pipeline = builder
        .build()
        .map_err(|e| Failure::new(exit::CONFIG, format!("configuration: {e}")))?;
    let result = pipeline.run(compose::shutdown_on_signals()).await;
    progress.finish();
    let report = match &result {
        Ok(report) => report,
        Err(failure) => &failure.report,
    };
    report_summary(report, args.summary_json.as_deref())?;
    result.map(drop).map_err(|failure| Failure::from(&failure))
}

/// Prints the summary table, and writes the JSON when asked.
///
/// # Errors
/// When the JSON file cannot be written.
pub fn report_summary(report: &RunReport, json: Option<&Path>) -> Result<(), Failure> {
    print!("{}", summary::table(report));
    if let Some(path) = json {
        summary::write_json(report, path)
            .map_err(|e| Failure::new(exit::INTERNAL, e.to_string()))?;
    }
    Ok(())
}
