//! [`Pipeline`] and its builder: the engine's entry points for the binary and embedders.
//!
//! A pipeline is built once from the four ports, the settings, the phone parser and the
//! dedup secret, and can then run many times. [`Pipeline::run`] is a whole run (the
//! seed's `orchestrate_epochs`); [`Pipeline::run_epoch`] is exactly one epoch, for tests
//! and embedders that want to drain work deterministically. Both spawn their batch tasks on
//! the caller's tokio runtime and install no tracing subscriber.

// A failed run carries its report, as large as a successful run's, and is returned once
// per run; boxing it would only make the public API clumsier.
#![allow(clippy::result_large_err)]

use std::fmt;
use std::sync::Arc;

use ca_notify_domain::{DedupSecret, DeferReason, PhoneParser};
use ca_notify_ports::{PhoneSource, PhoneValidator, ResultSink, SmsIssuer};
use chrono::NaiveDate;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, Instrument};

use crate::context::{Parts, RunCtx, Today};
use crate::epoch::orchestrate_epochs;
use crate::failure::{FatalCause, RunFailure, StopReason};
use crate::observer::RunObserver;
use crate::report::{Counts, EpochReport, RunReport};
use crate::settings::{out_of_range, Settings};
use ca_notify_ports::ConfigError;

/// The engine, ready to run.
#[derive(Clone)]
pub struct Pipeline {
    parts: Arc<Parts>,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("settings", &self.parts.settings)
            .field("secret", &self.parts.secret)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A builder; the four ports and the dedup secret are required.
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// The settings this pipeline runs with.
    pub fn settings(&self) -> &Settings {
        &self.parts.settings
    }

    /// One whole run: epochs until `epoch_count`, the deadline, `shutdown`, or a fatal
    /// stop. In-flight batches are finished and written back; records no batch started
    /// are released. With `until_drained`, stretches of at most `deadline` follow each
    /// other until a claim comes back empty, `drain_limit` passes, `shutdown`, or a fatal
    /// stop; the report covers them all.
    ///
    /// # Errors
    /// [`RunFailure`] on a fatal cause (refused credentials, a spent quota, a refused
    /// request, a failing store), with the report of what was done before it.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<RunReport, RunFailure> {
        let settings = &self.parts.settings;
        if !settings.until_drained {
            return self.run_stretch(&shutdown, settings.deadline).await;
        }
        let started = tokio::time::Instant::now();
        let end = settings.drain_limit.map(|limit| started + limit);
        let longest = self.parts.issuer.max_request_duration();
        let mut total: Option<RunReport> = None;
        loop {
            let budget = end.map_or(settings.deadline, |end| {
                settings
                    .deadline
                    .min(end.saturating_duration_since(tokio::time::Instant::now()))
            });
            // A stretch that could not finish one request would only claim and release.
            if budget <= longest {
                let mut report = total.unwrap_or_default();
                report.stop = Some(StopReason::Deadline);
                return Ok(report);
            }
            let stretch = self.run_stretch(&shutdown, budget).await;
            let (report, failure) = match stretch {
                Ok(report) => (report, None),
                Err(RunFailure { cause, report }) => (report, Some(cause)),
            };
            let stop = report.stop;
            let merged = merge_stretches(total.take(), report, started.elapsed());
            if let Some(cause) = failure {
                return Err(RunFailure {
                    cause,
                    report: merged,
                });
            }
            // Drained (no stop recorded), shut down, or anything but the stretch's own
            // deadline ends the run.
            if stop != Some(StopReason::Deadline) || shutdown.is_cancelled() {
                return Ok(merged);
            }
            info!(
                claimed = merged.claimed,
                settled = merged.settled(),
                "A stretch reached its deadline with work left; the next one starts."
            );
            total = Some(merged);
        }
    }

    /// One stretch of at most `budget`: the run of a scheduled invocation.
    async fn run_stretch(
        &self,
        shutdown: &CancellationToken,
        budget: std::time::Duration,
    ) -> Result<RunReport, RunFailure> {
        let ctx = Arc::new(RunCtx::new(Arc::clone(&self.parts), shutdown, budget));
        let span = info_span!(
            "run",
            deadline_secs = budget.as_secs_f64(),
            epoch_count = self.parts.settings.epoch_count,
            until_drained = self.parts.settings.until_drained
        );
        let (epochs, _) = orchestrate_epochs(&ctx, false)
            .instrument(span.clone())
            .await;
        let report = ctx
            .totals()
            .run_report(epochs, ctx.started.elapsed(), ctx.stop_kind());
        span.in_scope(|| {
            info!(
                epochs = report.epochs,
                claimed = report.claimed,
                sent = report.sent,
                already_sent = report.already_sent,
                not_sent = report.not_sent_total(),
                deferred = report.deferred_total(),
                records_per_sec = report.records_per_sec,
                stop = report.stop.map_or("", StopReason::code),
                "Run finished."
            );
        });
        finish(&ctx, report)
    }

    /// Exactly one epoch: one claim, its batches and their write-backs, inside one
    /// deadline. A drained source gives a report with `claimed == 0`.
    ///
    /// # Errors
    /// As [`Pipeline::run`]; the failure's report covers this epoch.
    pub async fn run_epoch(&self, shutdown: &CancellationToken) -> Result<EpochReport, RunFailure> {
        let ctx = Arc::new(RunCtx::new(
            Arc::clone(&self.parts),
            shutdown,
            self.parts.settings.deadline,
        ));
        let span = info_span!(
            "run",
            deadline_secs = self.parts.settings.deadline.as_secs_f64()
        );
        let (epochs, first) = orchestrate_epochs(&ctx, true).instrument(span).await;
        let epoch = first.unwrap_or_else(|| {
            Counts::default().epoch_report(1, ctx.started.elapsed(), ctx.stop_kind())
        });
        let run_report = ctx
            .totals()
            .run_report(epochs, ctx.started.elapsed(), ctx.stop_kind());
        finish(&ctx, run_report).map(|_| epoch)
    }
}

/// Adds a stretch's report to the run's so far.
fn merge_stretches(
    total: Option<RunReport>,
    stretch: RunReport,
    elapsed: std::time::Duration,
) -> RunReport {
    let Some(mut total) = total else {
        return stretch;
    };
    total.epochs += stretch.epochs;
    total.counts.merge(&stretch.counts);
    total.stop = stretch.stop;
    total.counts.run_report(total.epochs, elapsed, total.stop)
}

/// The run's result. A run that claimed records but settled none, and deferred every one
/// of them because a peer could not serve (the phone validator unavailable, batch-issue
/// requests without an answer or with an unexpected failure), made no progress, and says
/// so with a failure; the verification server's refusals are already fatal causes where
/// they happen. A run that also ran out of time, or was shut down, is not a peer's fault.
fn finish(ctx: &RunCtx, mut report: RunReport) -> Result<RunReport, RunFailure> {
    if let Some(cause) = ctx.take_fatal() {
        return Err(RunFailure { cause, report });
    }
    let unchecked = report.deferred_for(DeferReason::ValidationUnavailable);
    let unanswered = report.deferred_for(DeferReason::NoAnswer)
        + report.deferred_for(DeferReason::IssuerUnavailable);
    let only_peers = report.deferred_total() == unchecked + unanswered;
    let shut_down = ctx.stop_kind() == Some(StopReason::Shutdown);
    let cause = if report.settled() > 0 || !only_peers || shut_down {
        None
    } else if unanswered > 0 {
        Some(FatalCause::IssuerUnavailable(format!(
            "{unanswered} records could not be issued (no answer, or an unexpected failure)"
        )))
    } else if unchecked > 0 {
        Some(FatalCause::ValidatorUnavailable(format!(
            "{unchecked} records could not be checked"
        )))
    } else {
        None
    };
    match cause {
        Some(cause) => {
            report.stop = Some(cause.stop_reason());
            Err(RunFailure { cause, report })
        }
        None => Ok(report),
    }
}

/// Why a pipeline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A port was not given.
    #[error("the pipeline needs a {0}; call PipelineBuilder::{0}")]
    MissingPort(&'static str),
    /// No dedup secret was given.
    #[error("the pipeline needs the dedup secret; call PipelineBuilder::dedup_secret")]
    MissingDedupSecret,
    /// A setting is out of range.
    #[error(transparent)]
    Settings(#[from] ConfigError),
}

/// Assembles a [`Pipeline`].
#[derive(Default)]
pub struct PipelineBuilder {
    source: Option<Arc<dyn PhoneSource>>,
    validator: Option<Arc<dyn PhoneValidator>>,
    issuer: Option<Arc<dyn SmsIssuer>>,
    sink: Option<Arc<dyn ResultSink>>,
    settings: Settings,
    parser: PhoneParser,
    secret: Option<DedupSecret>,
    today: Option<Today>,
    observer: Option<Arc<dyn RunObserver>>,
}

impl fmt::Debug for PipelineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineBuilder")
            .field("settings", &self.settings)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

impl PipelineBuilder {
    /// Where recipients come from.
    #[must_use]
    pub fn source(mut self, source: Arc<dyn PhoneSource>) -> Self {
        self.source = Some(source);
        self
    }

    /// Who judges phones.
    #[must_use]
    pub fn validator(mut self, validator: Arc<dyn PhoneValidator>) -> Self {
        self.validator = Some(validator);
        self
    }

    /// Who issues codes.
    #[must_use]
    pub fn issuer(mut self, issuer: Arc<dyn SmsIssuer>) -> Self {
        self.issuer = Some(issuer);
        self
    }

    /// Where outcomes go.
    #[must_use]
    pub fn sink(mut self, sink: Arc<dyn ResultSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// The settings (default: [`Settings::default`]).
    #[must_use]
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// The phone parser (default: region "US").
    #[must_use]
    pub fn phone_parser(mut self, parser: PhoneParser) -> Self {
        self.parser = parser;
        self
    }

    /// The secret behind every dedup key.
    #[must_use]
    pub fn dedup_secret(mut self, secret: DedupSecret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// "Today" in UTC for the date window (default: the system clock's UTC date).
    #[must_use]
    pub fn today(mut self, today: Arc<dyn Fn() -> NaiveDate + Send + Sync>) -> Self {
        self.today = Some(today);
        self
    }

    /// Progress hooks.
    #[must_use]
    pub fn observer(mut self, observer: Arc<dyn RunObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Checks the settings and assembles the pipeline.
    ///
    /// # Errors
    /// [`BuildError`] for a missing port or secret, or settings out of range.
    pub fn build(self) -> Result<Pipeline, BuildError> {
        self.settings.validate()?;
        if let Some(issuer) = &self.issuer {
            // No request starts unless it can finish before the deadline, so a deadline
            // inside one request would never issue anything.
            let longest = issuer.max_request_duration();
            if self.settings.deadline <= longest {
                return Err(BuildError::Settings(out_of_range(
                    "pipeline.deadline_secs",
                    self.settings.deadline,
                    "a batch-issue request could never finish inside it",
                    format!(
                        "more than the issuer's request timeout ({} s, verification.request_timeout_secs)",
                        longest.as_secs_f64()
                    ),
                )));
            }
        }
        let parts = Parts {
            source: self.source.ok_or(BuildError::MissingPort("source"))?,
            validator: self.validator.ok_or(BuildError::MissingPort("validator"))?,
            issuer: self.issuer.ok_or(BuildError::MissingPort("issuer"))?,
            sink: self.sink.ok_or(BuildError::MissingPort("sink"))?,
            secret: self.secret.ok_or(BuildError::MissingDedupSecret)?,
            settings: self.settings,
            parser: self.parser,
            today: self
                .today
                .unwrap_or_else(|| Arc::new(|| chrono::Utc::now().date_naive())),
            observer: self.observer,
        };
        Ok(Pipeline {
            parts: Arc::new(parts),
        })
    }
}
