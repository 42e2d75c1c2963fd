//! `[retention]`: how long the personal data of a finished record is kept before
//! `ca-notify purge` may erase it, and the one rule that turns `--older-than DAYS` into a
//! cutoff or a refusal.
//!
//! The floor, [`MIN_DAYS`], comes from the verification server: it answers
//! `/api/checkcodestatus` for a uuid until its code row is deleted, about 15 days after
//! issue (`VERIFICATION_CODE_STATUS_MAX_AGE` 336 h after expiry,
//! `pkg/config/cleanup_server_config.go:74-76`). Until then an `unconfirmed` record may
//! still be reconciled or, on an operator's decision, requeued, which needs its phone.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use ca_notify_ports::config::ConfigError;
use ca_notify_ports::RunStart;

/// The shortest retention a configuration may set, in days.
pub const MIN_DAYS: u32 = 15;

/// `[retention]`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSection {
    /// Days a finished record's personal data is kept (at least [`MIN_DAYS`]).
    pub days: u32,
}

impl Default for RetentionSection {
    fn default() -> Self {
        Self { days: 30 }
    }
}

/// Why a purge was refused; nothing was erased.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionRefusal {
    /// `--older-than` is inside the retention period.
    #[error(
        "--older-than {asked} is inside the retention period of {days} days \
         (retention.days); records younger than that keep their personal data"
    )]
    InsideRetention {
        /// What was asked.
        asked: u32,
        /// The configured retention.
        days: u32,
    },
}

impl RetentionSection {
    /// The setting's problem, if any.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `retention.days`.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.days < MIN_DAYS {
            return Err(ConfigError::out_of_range(
                "retention.days",
                self.days,
                "the verification server answers for a code for about 15 days; until then \
                 an unconfirmed record may need its phone",
                format!("{MIN_DAYS} or more"),
            ));
        }
        Ok(())
    }

    /// The cutoff for `purge --older-than older_than_days` at `now`: records finished
    /// before it may be erased.
    ///
    /// # Errors
    /// [`RetentionRefusal::InsideRetention`] when `older_than_days` is below the
    /// retention period.
    pub fn cutoff(
        &self,
        older_than_days: u32,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, RetentionRefusal> {
        if older_than_days < self.days {
            return Err(RetentionRefusal::InsideRetention {
                asked: older_than_days,
                days: self.days,
            });
        }
        Ok(now - Duration::days(i64::from(older_than_days)))
    }
}

/// The run a purge is recorded as in the runs table: an id made as the job names its
/// runs, this worker, now.
pub fn purge_run(worker: String, now: DateTime<Utc>) -> RunStart {
    RunStart {
        id: crate::observe::new_run_id(),
        worker,
        started_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purge_inside_retention_is_refused_and_outside_gets_its_cutoff() {
        let now = Utc::now();
        let section = RetentionSection::default();
        assert_eq!(
            section.cutoff(29, now),
            Err(RetentionRefusal::InsideRetention {
                asked: 29,
                days: 30
            })
        );
        assert_eq!(section.cutoff(30, now), Ok(now - Duration::days(30)));
        assert_eq!(section.cutoff(400, now), Ok(now - Duration::days(400)));
    }

    #[test]
    fn retention_below_the_servers_memory_is_a_config_error() {
        let err = RetentionSection { days: 14 }
            .check()
            .expect_err("too short");
        assert!(err.to_string().contains("retention.days"), "{err}");
        assert!(RetentionSection { days: 15 }.check().is_ok());
    }
}
