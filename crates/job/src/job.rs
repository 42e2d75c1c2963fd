//! The facade: from a configuration (and, if the embedder likes, some ports of its own)
//! to a ready [`Job`], and its run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ca_notify_metrics::Metrics;
use ca_notify_pipeline::{BuildError, Pipeline, RunFailure, RunObserver, RunReport};
use ca_notify_ports::config::{ConfigError, ConfigErrors};
use ca_notify_ports::{
    Backlog, PhoneSource, PhoneValidator, ResultSink, RunEnd, RunId, RunLog, RunStart, SmsIssuer,
};
use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, info_span, warn, Instrument};

use crate::compose::{self, Store};
use crate::config::JobConfig;
use crate::observe;

/// Why a job could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The configuration could not be read: an unreadable file, an unknown key, a value of
    /// the wrong type (the message names the key).
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// Values that are well-formed but cannot be used, each naming its key.
    #[error("configuration: {0}")]
    Config(#[from] ConfigErrors),
    /// The store could not be opened (unreachable, login refused, missing table).
    #[error("{0}")]
    Store(String),
    /// The engine refused its parts.
    #[error("configuration: {0}")]
    Build(#[from] BuildError),
}

impl From<ConfigError> for JobError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e.into())
    }
}

/// A job ready to run: the pipeline on the adapters its configuration names, or on the
/// embedder's own ports.
pub struct Job {
    pipeline: Pipeline,
    run_id: RunId,
    worker: String,
    run_log: Option<Arc<dyn RunLog>>,
    metrics: Metrics,
}

impl Job {
    /// Builds every adapter the configuration names.
    ///
    /// # Errors
    /// A [`JobError`] naming the configuration key at fault, or the store's failure.
    pub async fn from_config(config: &JobConfig) -> Result<Self, JobError> {
        Self::builder(config.clone()).build().await
    }

    /// A builder that takes the embedder's own ports; the ones not given are built from
    /// `config`.
    pub fn builder(config: JobConfig) -> JobBuilder {
        JobBuilder {
            config,
            until_drained: false,
            deadline: None,
            source: None,
            sink: None,
            validator: None,
            issuer: None,
            observer: None,
            run_log: None,
            run_id: None,
        }
    }

    /// The id of this job's run: on every log line of the run (the `job` span), in the
    /// summary, in the store's runs table and on each outcome the run writes.
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    /// Runs the job until its epochs are done, its deadline passes or `shutdown` is
    /// cancelled (in-flight batches then finish and unprocessed claims are released).
    /// The store's runs table records the run's start and end; at the end its metrics
    /// go where `[metrics]` says. Neither can change the run's result (a failure to
    /// record or publish is logged).
    ///
    /// # Errors
    /// A [`RunFailure`]: the fatal cause and the report of what was done before it.
    pub async fn run(self, shutdown: CancellationToken) -> Result<RunReport, RunFailure> {
        let span = info_span!("job", run_id = %self.run_id);
        self.run_recorded(shutdown).instrument(span).await
    }

    async fn run_recorded(self, shutdown: CancellationToken) -> Result<RunReport, RunFailure> {
        let started = Instant::now();
        let start = RunStart {
            id: self.run_id.clone(),
            worker: self.worker.clone(),
            started_at: Utc::now(),
        };
        if let Some(log) = &self.run_log {
            if let Err(e) = log.start_run(&start).await {
                warn!(error = %e, "Could not record the run's start in the store; its outcomes carry no run id.");
            }
        }
        info!(worker = %self.worker, "Run started.");
        let result = self.pipeline.run(shutdown).await;
        let report = match &result {
            Ok(report) => report,
            Err(failure) => &failure.report,
        };
        let end = RunEnd {
            ended_at: Utc::now(),
            succeeded: result.is_ok(),
            stop: observe::stop_code(report).to_owned(),
            counts: observe::run_counts(report),
        };
        if let Some(log) = &self.run_log {
            if let Err(e) = log.finish_run(&self.run_id, &end).await {
                warn!(error = %e, "Could not record the run's end in the store.");
            }
        }
        if self.metrics.is_enabled() {
            let (last_success, backlog) = self.last_success_and_backlog(&end).await;
            let metrics =
                observe::run_metrics(report, &end, started.elapsed(), last_success, backlog);
            if let Err(e) = self.metrics.publish(&metrics).await {
                error!(error = %e, "Could not publish the run's metrics.");
            }
        }
        info!(succeeded = end.succeeded, stop = %end.stop, "Run finished.");
        result
    }

    /// When the last successful run ended (this one, if it succeeded) and the backlog,
    /// from the store; `None` for what it cannot say.
    async fn last_success_and_backlog(
        &self,
        end: &RunEnd,
    ) -> (Option<chrono::DateTime<Utc>>, Option<Backlog>) {
        let Some(log) = &self.run_log else {
            return (end.succeeded.then_some(end.ended_at), None);
        };
        let last_success = if end.succeeded {
            Some(end.ended_at)
        } else {
            match log.last_success().await {
                Ok(run) => run.and_then(|r| r.end).map(|e| e.ended_at),
                Err(e) => {
                    warn!(error = %e, "Could not read the last successful run from the store.");
                    None
                }
            }
        };
        let backlog = match log.backlog().await {
            Ok(n) => Some(n),
            Err(e) => {
                warn!(error = %e, "Could not count the backlog in the store.");
                None
            }
        };
        (last_success, backlog)
    }
}

/// Assembles a [`Job`] from a configuration and any ports the embedder brings.
pub struct JobBuilder {
    config: JobConfig,
    until_drained: bool,
    deadline: Option<Duration>,
    source: Option<Arc<dyn PhoneSource>>,
    sink: Option<Arc<dyn ResultSink>>,
    validator: Option<Arc<dyn PhoneValidator>>,
    issuer: Option<Arc<dyn SmsIssuer>>,
    observer: Option<Arc<dyn RunObserver>>,
    run_log: Option<Arc<dyn RunLog>>,
    run_id: Option<RunId>,
}

impl JobBuilder {
    /// Keep running epochs until nothing is left to claim (bulk backfills).
    #[must_use]
    pub fn until_drained(mut self, until_drained: bool) -> Self {
        self.until_drained = until_drained;
        self
    }

    /// An explicit deadline (the command's `--deadline`): a scheduled run's budget instead
    /// of `pipeline.deadline_secs`; with [`JobBuilder::until_drained`], the whole run's,
    /// which still goes in stretches of at most `pipeline.deadline_secs`.
    #[must_use]
    pub fn deadline(mut self, deadline: Option<Duration>) -> Self {
        self.deadline = deadline;
        self
    }

    /// One store as the source, the sink and the runs table.
    #[must_use]
    pub fn store<S: PhoneSource + ResultSink + RunLog + 'static>(mut self, store: Arc<S>) -> Self {
        self.source = Some(Arc::clone(&store) as Arc<dyn PhoneSource>);
        self.sink = Some(Arc::clone(&store) as Arc<dyn ResultSink>);
        self.run_log = Some(store as Arc<dyn RunLog>);
        self
    }

    /// Where runs are recorded, instead of the configured store. An embedder that brings
    /// its own source and sink but no runs table gets runs that are logged but not
    /// recorded (and outcomes without a run id).
    #[must_use]
    pub fn run_log(mut self, run_log: Arc<dyn RunLog>) -> Self {
        self.run_log = Some(run_log);
        self
    }

    /// The run's id, instead of a new UUID version 7 (a host that names its invocations,
    /// say).
    #[must_use]
    pub fn run_id(mut self, run_id: RunId) -> Self {
        self.run_id = Some(run_id);
        self
    }

    /// Where recipients come from, instead of the configured store.
    #[must_use]
    pub fn source(mut self, source: Arc<dyn PhoneSource>) -> Self {
        self.source = Some(source);
        self
    }

    /// Where outcomes go, instead of the configured store.
    #[must_use]
    pub fn sink(mut self, sink: Arc<dyn ResultSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// The phone check, instead of the configured validator.
    #[must_use]
    pub fn validator(mut self, validator: Arc<dyn PhoneValidator>) -> Self {
        self.validator = Some(validator);
        self
    }

    /// The verification server, instead of the configured one.
    #[must_use]
    pub fn issuer(mut self, issuer: Arc<dyn SmsIssuer>) -> Self {
        self.issuer = Some(issuer);
        self
    }

    /// Told about every epoch and batch (progress bars, metrics).
    #[must_use]
    pub fn observer(mut self, observer: Arc<dyn RunObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Checks the configuration for what it has to build, then builds it.
    ///
    /// # Errors
    /// A [`JobError`]: the engine's settings out of range, every missing or invalid value
    /// at once, then the store's or an adapter's failure.
    pub async fn build(self) -> Result<Job, JobError> {
        let config = &self.config;
        let mut settings = config.pipeline.settings(self.until_drained)?;
        if let Some(deadline) = self.deadline {
            if self.until_drained {
                settings.drain_limit = Some(deadline);
            } else {
                settings.deadline = deadline;
                settings.validate()?;
            }
        }
        ConfigErrors::check(config.problems(self.issuer.is_none(), self.validator.is_none()))?;
        let parser = compose::phone_parser(config)?;
        let secret = compose::dedup_secret(config)?;
        let metrics = config.metrics.metrics()?;
        let run_id = self.run_id.unwrap_or_else(observe::new_run_id);
        let (store, source, sink, run_log) = match (self.source, self.sink) {
            (Some(source), Some(sink)) => (None, source, sink, self.run_log),
            (source, sink) => {
                let store = Store::open_for_run(config, &run_id).await?;
                let source = source.unwrap_or_else(|| store.source());
                let sink = sink.unwrap_or_else(|| store.sink());
                let run_log = Some(self.run_log.unwrap_or_else(|| store.run_log()));
                (Some(store), source, sink, run_log)
            }
        };
        let validator = match self.validator {
            Some(validator) => validator,
            None => compose::validator(config)?,
        };
        let issuer = match self.issuer {
            Some(issuer) => issuer,
            None => Arc::new(config.verification.client(config.workers)?),
        };
        let mut pipeline = Pipeline::builder()
            .source(source)
            .sink(sink)
            .validator(validator)
            .issuer(issuer)
            .settings(settings)
            .phone_parser(parser)
            .dedup_secret(secret);
        if let Some(observer) = self.observer {
            pipeline = pipeline.observer(observer);
        }
        let pipeline = pipeline.build()?;
        // Last, so that nothing after it can fail: on Snowflake it may record an idle
        // run as finished (compose.rs).
        if let Some(store) = &store {
            let start = RunStart {
                id: run_id.clone(),
                worker: config.worker_id(),
                started_at: Utc::now(),
            };
            store.prepare_for_run(config, &start).await?;
        }
        Ok(Job {
            pipeline,
            run_id,
            worker: config.worker_id(),
            run_log,
            metrics,
        })
    }
}

#[cfg(test)]
mod tests {
    use ca_notify_adapter_memory::{MemoryIssuer, MemoryStore, MemoryValidator};
    use ca_notify_domain::RecipientRecord;
    use secrecy::SecretString;

    use super::*;

    fn with_secret() -> JobConfig {
        let mut config = JobConfig::default();
        config.dedup.secret = Some(SecretString::from("a-secret-of-16-bytes-or-more"));
        config
    }

    fn unwrap_err(result: Result<Job, JobError>) -> JobError {
        match result {
            Ok(_) => panic!("the job was built"),
            Err(e) => e,
        }
    }

    /// From a configuration, every missing value is named at once, before anything is
    /// opened.
    #[tokio::test]
    async fn from_config_names_every_missing_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = JobConfig::default();
        config.store.path = dir.path().join("never.db");
        let text = unwrap_err(Job::from_config(&config).await).to_string();
        for key in [
            "dedup.secret",
            "verification.base_url",
            "verification.api_key",
        ] {
            assert!(text.contains(key), "{text}");
        }
        assert!(!config.store.path.exists(), "nothing was opened");
    }

    /// With the embedder's own ports the configuration need not name the systems it
    /// replaces, and the job runs on them.
    #[tokio::test]
    async fn own_ports_need_only_the_settings_and_run() {
        let today = chrono::Utc::now().date_naive().to_string();
        let store = Arc::new(MemoryStore::with_records([
            RecipientRecord::new("a", "4152000011").with_test_date(&today),
            RecipientRecord::new("b", "not a phone").with_test_date(&today),
        ]));
        let report = Job::builder(with_secret())
            .store(Arc::clone(&store))
            .validator(Arc::new(MemoryValidator::new()))
            .issuer(Arc::new(MemoryIssuer::new()))
            .build()
            .await
            .expect("built")
            .run(CancellationToken::new())
            .await
            .expect("ran");
        assert_eq!((report.claimed, report.sent), (2, 1));
        assert_eq!(store.counts().open, 0);
    }

    /// On SQLite, which stamps each record's arrival, the metrics date the backlog left.
    #[tokio::test]
    async fn the_metrics_date_the_backlog_a_sqlite_run_leaves() {
        let today = chrono::Utc::now().date_naive().to_string();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = with_secret();
        config.store.path = dir.path().join("state.db");
        config.metrics.textfile = Some(dir.path().join("ca_notify.prom"));
        config.pipeline.epoch_count = 1;
        config.pipeline.epoch_size = 10;
        let csv = dir.path().join("positives.csv");
        let mut text = "id,phone,test_date\n".to_owned();
        for n in 0..30 {
            text.push_str(&format!("lab-{n},41520{n:05},{today}\n"));
        }
        std::fs::write(&csv, text).expect("csv");
        let store = compose::sqlite_only(&config, "the test loads SQLite")
            .await
            .expect("store");
        ca_notify_adapter_sqlite::import_csv(&store, &csv)
            .await
            .expect("import");
        let before = Utc::now();
        Job::builder(config)
            .validator(Arc::new(MemoryValidator::new()))
            .issuer(Arc::new(MemoryIssuer::new()))
            .build()
            .await
            .expect("built")
            .run(CancellationToken::new())
            .await
            .expect("ran");
        let text = std::fs::read_to_string(dir.path().join("ca_notify.prom")).expect("textfile");
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no {name} in {text}"))
                .parse()
                .expect("a number")
        };
        let left = value("ca_notify_backlog_records");
        assert!((1.0..30.0).contains(&left), "{text}");
        let oldest = value("ca_notify_backlog_oldest_arrival_timestamp_seconds");
        let imported = before.timestamp_millis() as f64 / 1000.0;
        assert!(
            (imported - 120.0..=imported + 1.0).contains(&oldest),
            "the oldest arrival {oldest} is not the import's time {imported}: {text}"
        );
    }

    /// A run is recorded in the store's runs table under the job's id, with its end and
    /// counts, each outcome it wrote carries that id, and its metrics land in the
    /// configured textfile with the last success and the backlog from the store.
    #[tokio::test]
    async fn a_run_is_recorded_under_its_id_and_its_metrics_written() {
        let today = chrono::Utc::now().date_naive().to_string();
        let store = Arc::new(MemoryStore::with_records([
            RecipientRecord::new("a", "4152000011").with_test_date(&today),
            RecipientRecord::new("b", "not a phone").with_test_date(&today),
        ]));
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = with_secret();
        config.metrics.textfile = Some(dir.path().join("ca_notify.prom"));
        let job = Job::builder(config)
            .store(Arc::clone(&store))
            .validator(Arc::new(MemoryValidator::new()))
            .issuer(Arc::new(MemoryIssuer::new()))
            .build()
            .await
            .expect("built");
        let id = job.run_id().clone();
        job.run(CancellationToken::new()).await.expect("ran");

        let runs = store.recent_runs(5).await.expect("runs");
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].start.id, id);
        let end = runs[0].end.as_ref().expect("the end is recorded");
        assert!(end.succeeded);
        assert_eq!(end.stop, "drained", "two records, all taken");
        assert_eq!(
            (end.counts.claimed, end.counts.sent, end.counts.not_sent),
            (2, 1, 1)
        );
        for record in ["a", "b"] {
            assert_eq!(store.run_id(&record.into()), Some(id.clone()), "{record}");
        }
        let text = std::fs::read_to_string(dir.path().join("ca_notify.prom")).expect("textfile");
        assert!(
            text.contains("ca_notify_run_records{outcome=\"sent\",reason=\"\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("ca_notify_run_succeeded 1\n"), "{text}");
        assert!(text.contains("ca_notify_backlog_records 0\n"), "{text}");
        let last = end.ended_at.timestamp_millis() as f64 / 1000.0;
        assert!(
            text.contains(&format!(
                "ca_notify_last_success_timestamp_seconds {last}\n"
            )),
            "{text}"
        );
    }

    /// A port left out is built from the configuration, which must then name it.
    #[tokio::test]
    async fn a_port_left_out_is_built_from_the_configuration() {
        let err = unwrap_err(
            Job::builder(with_secret())
                .store(Arc::new(MemoryStore::new()))
                .validator(Arc::new(MemoryValidator::new()))
                .build()
                .await,
        );
        let text = err.to_string();
        assert!(matches!(err, JobError::Config(_)), "{text}");
        assert!(text.contains("verification.base_url"), "{text}");
    }
}
