//! The engine's knobs, their defaults and their checks.
//!
//! Every setting has a default that reproduces the seed's behaviour where the seed had one
//! (`EPOCH_COUNT` 3, `BATCH_SIZE` 10, 100 records per epoch, 10 parallel phone checks) and
//! a safe one where it did not. [`Settings::validate`] refuses values that would break an
//! outside rule or the engine's guarantees, naming the key, the value and the allowed range,
//! so a configuration mistake is fixed in one read.

use std::fmt;
use std::time::Duration;

use ca_notify_domain::{Backoff, DateWindow, RetryBudget};
use ca_notify_ports::{ConfigError, MAX_BATCH_ITEMS};

/// Largest epoch: an epoch's claimed records are held in memory until they are dispatched.
pub const MAX_EPOCH_SIZE: usize = 100_000;
/// Upper bound for the two concurrency settings; far above what any outside API allows.
pub const MAX_CONCURRENCY: usize = 1_000;

/// How the engine runs. See each field for its default and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Epochs per run (the seed's `EPOCH_COUNT`). Default 3. Ignored when `until_drained`.
    pub epoch_count: u32,
    /// Records per batch-issue call (the seed's `BATCH_SIZE`). Default 10, at most 10
    /// (the verification server's limit).
    pub batch_size: usize,
    /// Records claimed per epoch, in one read. Default 100 (the seed's Snowflake read).
    pub epoch_size: usize,
    /// Phone checks in flight across the whole run. Default 10 (the seed's thread pool).
    pub validation_concurrency: usize,
    /// Batch-issue requests in flight at once, across the whole run (each holds up to
    /// `batch_size` records that passed their phone check). Default 4: at 500 ms a
    /// request that is 80 codes/s, more than the 10 validation slots feed at 150 ms a
    /// lookup (66.7/s), yet at most 40 codes are at stake at a deadline or shutdown. The
    /// verification adapter paces the requests themselves.
    pub max_batches_in_flight: usize,
    /// Whole-run budget. Default 110 s, inside the 120 s Azure Functions limit the seed
    /// ran under, with room for start-up and the last write.
    pub deadline: Duration,
    /// Shortest epoch: the seed slept out the rest of 60 s between epochs. Default off,
    /// because rate limits belong in the adapters.
    pub min_epoch_duration: Option<Duration>,
    /// Keep running until a claim comes back empty, a shutdown or a fatal stop (ignores
    /// `epoch_count`). The work goes in stretches of at most `deadline` each, back to
    /// back, so every claim's lease and every request still fit one stretch. Default off.
    pub until_drained: bool,
    /// With `until_drained`: start nothing after this long (the command's explicit
    /// `--deadline`); `None` drains without a time limit. Default `None`.
    pub drain_limit: Option<Duration>,
    /// A claim's lease is the run's remaining time plus this margin, so records of a
    /// crashed run come back soon after it would have ended. Default 60 s.
    pub lease_margin: Duration,
    /// Per-item re-sends after transient per-item failures (`sms_failure`,
    /// `internal_server_error`, a missing or lost answer): its `max_retries` is the
    /// budget (`pipeline.max_item_retries`, default 2), its `base` and `cap` the full-jitter
    /// wait between rounds (200 ms doubling to 10 s).
    pub issue_retry_backoff: Backoff,
    /// The verification server's accepted date range, checked before issuing so an
    /// out-of-range date costs no request. Default 28 days back.
    pub date_window: DateWindow,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            epoch_count: 3,
            batch_size: 10,
            epoch_size: 100,
            validation_concurrency: 10,
            max_batches_in_flight: 4,
            deadline: Duration::from_secs(110),
            min_epoch_duration: None,
            until_drained: false,
            drain_limit: None,
            lease_margin: Duration::from_secs(60),
            issue_retry_backoff: Backoff {
                max_retries: RetryBudget::default().max_item_retries,
                ..Backoff::default()
            },
            date_window: DateWindow::default(),
        }
    }
}

/// A setting outside its allowed range, with its key, value, problem and allowed range.
pub(crate) fn out_of_range(
    key: &'static str,
    value: impl fmt::Debug,
    problem: impl Into<String>,
    allowed: impl Into<String>,
) -> ConfigError {
    ConfigError::out_of_range(key, format!("{value:?}"), problem, allowed)
}

impl Settings {
    /// The per-item re-send budget, as the domain's judgement takes it.
    pub fn retry_budget(&self) -> RetryBudget {
        RetryBudget {
            max_item_retries: self.issue_retry_backoff.max_retries,
        }
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// The first setting out of range, with its key, value, problem and allowed range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.batch_size == 0 {
            return Err(out_of_range(
                "pipeline.batch_size",
                self.batch_size,
                "a batch must hold at least one record",
                format!("1 to {MAX_BATCH_ITEMS}"),
            ));
        }
        if self.batch_size > MAX_BATCH_ITEMS {
            return Err(out_of_range(
                "pipeline.batch_size",
                self.batch_size,
                format!(
                    "the verification server accepts at most {MAX_BATCH_ITEMS} codes per batch-issue call"
                ),
                format!("1 to {MAX_BATCH_ITEMS}"),
            ));
        }
        if self.epoch_count == 0 && !self.until_drained {
            return Err(out_of_range(
                "pipeline.epoch_count",
                self.epoch_count,
                "a run needs at least one epoch",
                "1 or more (or set pipeline.until_drained)",
            ));
        }
        check_range(
            "pipeline.epoch_size",
            self.epoch_size,
            MAX_EPOCH_SIZE,
            "an epoch's records are claimed in one read and held in memory",
        )?;
        check_range(
            "pipeline.validation_concurrency",
            self.validation_concurrency,
            MAX_CONCURRENCY,
            "the number of phone checks in flight",
        )?;
        check_range(
            "pipeline.max_batches_in_flight",
            self.max_batches_in_flight,
            MAX_CONCURRENCY,
            "the number of batches in flight",
        )?;
        if self.deadline.is_zero() {
            return Err(out_of_range(
                "pipeline.deadline",
                self.deadline,
                "a run needs time to do anything",
                "more than 0 s",
            ));
        }
        if let Some(min) = self.min_epoch_duration {
            if min > self.deadline {
                return Err(out_of_range(
                    "pipeline.min_epoch_duration",
                    min,
                    "an epoch may not be paced past the run's deadline",
                    format!("at most pipeline.deadline ({:?})", self.deadline),
                ));
            }
        }
        let backoff = &self.issue_retry_backoff;
        if backoff.base > backoff.cap {
            return Err(out_of_range(
                "pipeline.issue_retry_backoff.base",
                backoff.base,
                "the first wait may not exceed the cap",
                format!(
                    "at most pipeline.issue_retry_backoff.cap ({:?})",
                    backoff.cap
                ),
            ));
        }
        Ok(())
    }
}

fn check_range(key: &'static str, value: usize, max: usize, what: &str) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(out_of_range(
            key,
            value,
            format!("{what} must be at least 1"),
            format!("1 to {max}"),
        ));
    }
    if value > max {
        return Err(out_of_range(
            key,
            value,
            format!("{what} is capped to keep the run bounded"),
            format!("1 to {max}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_seed_and_are_valid() {
        let s = Settings::default();
        assert_eq!((s.epoch_count, s.batch_size, s.epoch_size), (3, 10, 100));
        assert_eq!(s.validation_concurrency, 10);
        assert_eq!(s.deadline, Duration::from_secs(110));
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn batch_size_zero_and_eleven_are_rejected_with_the_key_and_the_limit() {
        let eleven = Settings {
            batch_size: 11,
            ..Settings::default()
        };
        let err = eleven.validate().expect_err("11 is too many");
        assert_eq!(err.key, "pipeline.batch_size");
        assert_eq!(
            err.to_string(),
            "pipeline.batch_size = 11: the verification server accepts at most 10 codes per \
             batch-issue call (allowed: 1 to 10)"
        );
        let zero = Settings {
            batch_size: 0,
            ..Settings::default()
        };
        let err = zero.validate().expect_err("0 is too few");
        assert_eq!(err.key, "pipeline.batch_size");
        assert_eq!(err.value.as_deref(), Some("0"));
        assert_eq!(err.allowed.as_deref(), Some("1 to 10"));
        for size in 1..=10 {
            let ok = Settings {
                batch_size: size,
                ..Settings::default()
            };
            assert_eq!(ok.validate(), Ok(()), "{size}");
        }
    }

    #[test]
    fn every_other_bound_names_its_key() {
        let cases: Vec<(Settings, &str)> = vec![
            (
                Settings {
                    epoch_count: 0,
                    ..Settings::default()
                },
                "pipeline.epoch_count",
            ),
            (
                Settings {
                    epoch_size: 0,
                    ..Settings::default()
                },
                "pipeline.epoch_size",
            ),
            (
                Settings {
                    epoch_size: MAX_EPOCH_SIZE + 1,
                    ..Settings::default()
                },
                "pipeline.epoch_size",
            ),
            (
                Settings {
                    validation_concurrency: 0,
                    ..Settings::default()
                },
                "pipeline.validation_concurrency",
            ),
            (
                Settings {
                    max_batches_in_flight: 0,
                    ..Settings::default()
                },
                "pipeline.max_batches_in_flight",
            ),
            (
                Settings {
                    deadline: Duration::ZERO,
                    ..Settings::default()
                },
                "pipeline.deadline",
            ),
            (
                Settings {
                    min_epoch_duration: Some(Duration::from_secs(600)),
                    ..Settings::default()
                },
                "pipeline.min_epoch_duration",
            ),
            (
                Settings {
                    issue_retry_backoff: Backoff {
                        base: Duration::from_secs(20),
                        ..Backoff::default()
                    },
                    ..Settings::default()
                },
                "pipeline.issue_retry_backoff.base",
            ),
        ];
        for (settings, key) in cases {
            let err = settings.validate().expect_err(key);
            assert_eq!(err.key, key);
            assert!(err.to_string().starts_with(key), "{err}");
            assert!(err.to_string().contains("allowed: "), "{err}");
        }
        let drained = Settings {
            epoch_count: 0,
            until_drained: true,
            ..Settings::default()
        };
        assert_eq!(drained.validate(), Ok(()));
    }
}
