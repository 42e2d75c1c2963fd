//! The `[pipeline]` section an operator writes, its defaults and its checks.
//!
//! Keys are the operator's (the seed's `EPOCH_COUNT` and `BATCH_SIZE` are aliases of
//! `pipeline.epoch_count` and `pipeline.batch_size`; durations are whole `*_secs`);
//! [`PipelineSection::settings`] turns the section into the engine's [`Settings`], naming
//! the key of any value it cannot use.

use std::time::Duration;

use ca_notify_domain::{Backoff, DateWindow};
use ca_notify_ports::config::{ConfigError, DurationRange};
use serde::{Deserialize, Serialize};

use crate::settings::Settings;

/// The section's duration settings and their ranges. Beyond them a value is a mistake (a
/// deadline of years, a lease margin of 0), and some would overflow a clock later.
pub const DURATIONS: [DurationRange; 4] = [
    // One scheduled run; longer work is several runs.
    DurationRange::seconds("pipeline.deadline_secs", 1, 86_400),
    // How long a crashed worker's records wait; 0 would hand records whose requests may
    // still be running to the next worker at once.
    DurationRange::seconds("pipeline.lease_margin_secs", 1, 3_600),
    // 0 turns the pacing off.
    DurationRange::seconds("pipeline.min_epoch_duration_secs", 0, 86_400),
    DurationRange::days("pipeline.date_window_days", 1, 365),
];

/// `[pipeline]`: epochs, batches, deadline.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSection {
    /// Epochs per run (seed `EPOCH_COUNT`).
    pub epoch_count: u32,
    /// Records per batch-issue call (seed `BATCH_SIZE`), 1 to 10.
    pub batch_size: usize,
    /// Records claimed per epoch.
    pub epoch_size: usize,
    /// The whole run's time budget.
    pub deadline_secs: u64,
    /// A claim's lease is the run's remaining time plus this, so the records of a
    /// crashed worker come back this long after its deadline.
    pub lease_margin_secs: u64,
    /// Validator calls in flight at once.
    pub validation_concurrency: usize,
    /// Batches in flight at once.
    pub max_batches_in_flight: usize,
    /// The seed's minimum epoch duration; 0 turns it off.
    pub min_epoch_duration_secs: u64,
    /// Re-sends allowed per item after transient per-item failures.
    pub max_item_retries: u32,
    /// How many days back the verification server accepts a test date.
    pub date_window_days: u32,
}

impl Default for PipelineSection {
    /// The engine's own defaults, in the operator's units.
    fn default() -> Self {
        let s = Settings::default();
        Self {
            epoch_count: s.epoch_count,
            batch_size: s.batch_size,
            epoch_size: s.epoch_size,
            deadline_secs: s.deadline.as_secs(),
            lease_margin_secs: s.lease_margin.as_secs(),
            validation_concurrency: s.validation_concurrency,
            max_batches_in_flight: s.max_batches_in_flight,
            min_epoch_duration_secs: s.min_epoch_duration.map_or(0, |d| d.as_secs()),
            max_item_retries: s.issue_retry_backoff.max_retries,
            date_window_days: s.date_window.past_days,
        }
    }
}

impl PipelineSection {
    /// The engine's settings, checked; `until_drained` keeps running epochs until nothing
    /// is left to claim.
    ///
    /// # Errors
    /// The first [`ConfigError`], naming the operator's key and the allowed range.
    pub fn settings(&self, until_drained: bool) -> Result<Settings, ConfigError> {
        let [deadline, lease_margin, min_epoch, window] = &DURATIONS;
        deadline.check(i128::from(self.deadline_secs))?;
        lease_margin.check(i128::from(self.lease_margin_secs))?;
        min_epoch.check(i128::from(self.min_epoch_duration_secs))?;
        window.check(i128::from(self.date_window_days))?;
        let settings = Settings {
            epoch_count: self.epoch_count,
            batch_size: self.batch_size,
            epoch_size: self.epoch_size,
            validation_concurrency: self.validation_concurrency,
            max_batches_in_flight: self.max_batches_in_flight,
            deadline: Duration::from_secs(self.deadline_secs),
            lease_margin: Duration::from_secs(self.lease_margin_secs),
            min_epoch_duration: (self.min_epoch_duration_secs > 0)
                .then(|| Duration::from_secs(self.min_epoch_duration_secs)),
            until_drained,
            drain_limit: None,
            issue_retry_backoff: Backoff {
                max_retries: self.max_item_retries,
                ..Backoff::default()
            },
            date_window: DateWindow {
                past_days: self.date_window_days,
            },
        };
        settings.validate().map_err(|e| {
            // The engine names its durations; the operator configures them in seconds.
            let key = match e.key() {
                "pipeline.deadline" => "pipeline.deadline_secs",
                "pipeline.min_epoch_duration" => "pipeline.min_epoch_duration_secs",
                _ => return e,
            };
            ConfigError {
                value: None,
                ..e.with_key(key)
            }
        })?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_engines() {
        let settings = PipelineSection::default()
            .settings(false)
            .expect("defaults");
        assert_eq!(settings, Settings::default());
    }

    #[test]
    fn errors_name_the_operators_key() {
        let err = PipelineSection {
            batch_size: 11,
            ..PipelineSection::default()
        }
        .settings(false)
        .expect_err("too large");
        assert_eq!(err.key(), "pipeline.batch_size");
        assert!(err.to_string().contains("allowed: 1 to 10"), "{err}");
        let err = PipelineSection {
            min_epoch_duration_secs: 200,
            ..PipelineSection::default()
        }
        .settings(false)
        .expect_err("longer than the deadline");
        assert_eq!(err.key(), "pipeline.min_epoch_duration_secs");
        let err = PipelineSection {
            lease_margin_secs: 0,
            ..PipelineSection::default()
        }
        .settings(false)
        .expect_err("zero");
        assert!(err.to_string().contains("allowed: 1 to 3600"), "{err}");
    }
}
