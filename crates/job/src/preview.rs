//! What the next run would do, from a sample read without claiming, judged offline.
//! Writes nothing, texts no one, spends no paid lookup: the work behind
//! `ca-notify run --dry-run`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use ca_notify_adapter_twilio::OfflineValidator;
use ca_notify_domain::{DateWindow, NotSentReason, Recipient};
use ca_notify_ports::{PhoneValidator, PhoneVerdict};
use tokio::time::Instant;

use crate::compose::{self, Store};
use crate::config::JobConfig;
use crate::JobError;

/// How many records of the sample would meet each fate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preview {
    /// Fate (`would be sent`, `not sent: <reason>`, …) and how many records.
    pub counts: BTreeMap<String, u64>,
}

impl Preview {
    /// Records in the sample.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// Peeks at the next run's records and judges them offline.
///
/// # Errors
/// A configuration or store failure.
pub async fn preview(config: &JobConfig) -> Result<Preview, JobError> {
    let parser = compose::phone_parser(config)?;
    let store = Store::open(config).await?;
    let sample = config.pipeline.epoch_size * config.pipeline.epoch_count.max(1) as usize;
    let records = store
        .source()
        .peek(sample)
        .await
        .map_err(|e| JobError::Store(format!("dry run: {e}")))?;
    let validator = OfflineValidator::new();
    let window = DateWindow {
        past_days: config.pipeline.date_window_days,
    };
    let today = chrono::Utc::now().date_naive();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut seen = HashSet::new();
    for record in records {
        let (_, checked) = Recipient::from_record(record, &parser).check_locally(today, &window);
        let verdict = match checked {
            Err(reason) => format!("not sent: {}", reason.code()),
            Ok(candidate) if !seen.insert((candidate.phone.clone(), candidate.test_date)) => {
                "would be already sent (duplicate in the sample)".to_owned()
            }
            Ok(candidate) => match validator.check(&candidate.phone, deadline).await {
                Ok(PhoneVerdict::SmsCapable { .. }) => "would be sent".to_owned(),
                Ok(PhoneVerdict::NotSmsCapable { line_type }) => format!(
                    "not sent: {}",
                    NotSentReason::NotSmsCapable { line_type }.code()
                ),
                Ok(PhoneVerdict::Invalid { detail }) => format!(
                    "not sent: {}",
                    NotSentReason::InvalidNumber { detail }.code()
                ),
                Err(e) => format!("undecided: {e}"),
            },
        };
        *counts.entry(verdict).or_default() += 1;
    }
    Ok(Preview { counts })
}
