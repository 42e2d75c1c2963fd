//! `pre_check_and_annotate`: parse every record of a claim once, settle what can be
//! settled locally, and ask the phone validator about the rest, one record at a time
//! under one of the run-wide validation slots.
//!
//! Records with an unusable phone, a date the verification server would refuse, or a test
//! type it does not know are settled here as `NotSent` without spending a phone check or a
//! code. They still go into their epoch's single write-back. Every other record gets its
//! dedup key here, before any outside call, so the epoch's one ledger read can settle a
//! person texted before without a lookup either. A record the validator calls SMS-capable
//! becomes an issue item and goes to the packer, which fills batch-issue requests with
//! ten of them.

use std::fmt;

use ca_notify_domain::{
    scrub_phone_numbers, AttemptAnswer, DateWindow, DedupKey, DedupSecret, DeferReason, KeyHistory,
    LocallyChecked, NotSentReason, Outcome, Recipient, RecipientRecord, RecordId,
};
use ca_notify_ports::{IssueItem, PhoneVerdict, ValidationError};
use chrono::NaiveDate;
use tokio::time::{timeout_at, Instant};
use tracing::warn;

use crate::context::RunCtx;
use crate::failure::FatalCause;

/// One record on its way through the steps.
#[derive(Debug)]
pub(crate) struct BatchEntry {
    pub id: RecordId,
    /// The epoch whose claim holds the record.
    pub epoch: u32,
    /// Settled so far; `None` while still undecided.
    pub outcome: Option<Outcome>,
    /// Known once the record passed the local checks.
    pub dedup_key: Option<DedupKey>,
    /// What the verification server is asked, once the record passed every check.
    pub item: Option<IssueItem>,
    /// What the store's ledger (and, for a waiting duplicate, the key's owner) knew of
    /// the dedup key before this run's attempts.
    pub history: KeyHistory,
    /// What this run's issue attempts for the key proved, in order.
    pub attempts: Vec<AttemptAnswer>,
    /// Waiting for the validator.
    candidate: Option<LocallyChecked>,
}

impl BatchEntry {
    /// Whether the record is ready to be issued and not yet decided.
    pub fn issuable(&self) -> bool {
        self.outcome.is_none() && self.item.is_some()
    }

    /// Whether the record still waits for the validator.
    pub fn needs_check(&self) -> bool {
        self.outcome.is_none() && self.candidate.is_some()
    }

    /// Everything known of the key: the ledger's history plus this run's attempts.
    pub fn key_history(&self) -> KeyHistory {
        self.history.with(&self.attempts)
    }
}

/// Parses a claim's records and runs the local checks; one entry per record, in order.
pub(crate) fn annotate_claim(
    ctx: &RunCtx,
    epoch: u32,
    records: Vec<RecipientRecord>,
) -> Vec<BatchEntry> {
    let parts = &ctx.parts;
    let today = (parts.today)();
    let window = parts.settings.date_window;
    records
        .into_iter()
        .map(|record| {
            let recipient = Recipient::from_record(record, &parts.parser);
            let mut entry = annotate_locally(recipient, today, &window);
            entry.epoch = epoch;
            entry.derive_key(&parts.secret);
            entry
        })
        .collect()
}

/// What one phone check did to its entry.
pub(crate) enum Checked {
    /// Passed: the entry carries its issue item.
    Issuable,
    /// Settled or deferred by the check.
    Settled,
    /// Not checked: the run stopped issuing before a slot came (handed back untouched).
    Skipped,
}

/// `pre_check_and_annotate` for one record that passed the local checks: asks the
/// validator (the caller holds one of the run-wide validation slots) and turns its
/// verdict into an issue item or an outcome.
pub(crate) async fn pre_check_and_annotate(ctx: &RunCtx, entry: &mut BatchEntry) -> Checked {
    let Some(candidate) = entry.candidate.take() else {
        return Checked::Settled;
    };
    if ctx.stop_issuing.is_cancelled() {
        entry.candidate = Some(candidate);
        return Checked::Skipped;
    }
    let parts = &ctx.parts;
    let started = Instant::now();
    let checked = timeout_at(
        ctx.deadline,
        parts.validator.check(&candidate.phone, ctx.work_deadline()),
    )
    .await;
    ctx.latency.check.observe(started.elapsed());
    let outcome = match checked {
        Ok(Ok(PhoneVerdict::SmsCapable { .. })) => {
            let key = entry
                .dedup_key
                .expect("candidates get their key when annotated");
            entry.item = Some(IssueItem {
                phone: candidate.phone,
                uuid: key,
                test_type: candidate.test_type,
                test_date: candidate.test_date,
                symptom_date: candidate.symptom_date,
                tz_offset: candidate.tz_offset,
            });
            return Checked::Issuable;
        }
        Ok(Ok(PhoneVerdict::NotSmsCapable { line_type })) => {
            Outcome::not_sent(NotSentReason::NotSmsCapable { line_type })
        }
        Ok(Ok(PhoneVerdict::Invalid { detail })) => {
            Outcome::not_sent(NotSentReason::InvalidNumber { detail })
        }
        Ok(Err(ValidationError::Unauthorized(message))) => {
            ctx.fail(FatalCause::ValidatorUnauthorized(scrub_phone_numbers(
                &message,
            )));
            Outcome::deferred(DeferReason::Unauthorized)
        }
        Ok(Err(ValidationError::Misconfigured(message))) => {
            ctx.fail(FatalCause::ValidatorMisconfigured(scrub_phone_numbers(
                &message,
            )));
            Outcome::deferred(DeferReason::Misconfigured)
        }
        Ok(Err(error)) => {
            warn!(
                record_id = %entry.id,
                error = %scrub_phone_numbers(&error.to_string()),
                "Phone validator unavailable; the record is deferred."
            );
            Outcome::deferred(DeferReason::ValidationUnavailable)
        }
        Err(_) => Outcome::deferred(DeferReason::Deadline),
    };
    entry.outcome = Some(outcome);
    Checked::Settled
}

impl BatchEntry {
    fn derive_key(&mut self, secret: &DedupSecret) {
        if let Some(candidate) = &self.candidate {
            self.dedup_key = Some(DedupKey::derive(
                secret,
                &candidate.phone,
                candidate.test_date,
                &self.id,
            ));
        }
    }
}

/// The checks that need no outside call (the domain's `Recipient::check_locally`).
fn annotate_locally(recipient: Recipient, today: NaiveDate, window: &DateWindow) -> BatchEntry {
    let (id, checked) = recipient.check_locally(today, window);
    let (outcome, candidate) = match checked {
        Ok(candidate) => (None, Some(candidate)),
        Err(reason) => (Some(Outcome::not_sent(reason)), None),
    };
    BatchEntry {
        id,
        epoch: 0,
        outcome,
        dedup_key: None,
        item: None,
        history: KeyHistory::default(),
        attempts: Vec::new(),
        candidate,
    }
}

/// Record ids of a batch, comma-separated, for its span (formatted only when recorded).
pub(crate) struct IdList<'a>(pub Vec<&'a RecordId>);

impl fmt::Display for IdList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, id) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(id.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ca_notify_domain::PhoneParser;

    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    fn local(record: RecipientRecord) -> BatchEntry {
        let r = Recipient::from_record(record, &PhoneParser::default());
        annotate_locally(r, day("2021-06-15"), &DateWindow::default())
    }

    fn reason(entry: &BatchEntry) -> String {
        entry.outcome.as_ref().expect("settled").reason_code()
    }

    #[test]
    fn settles_what_needs_no_outside_call() {
        assert_eq!(
            reason(&local(RecipientRecord::new("a", "not a phone"))),
            "invalid_number:unexpected_character"
        );
        assert_eq!(
            reason(&local(
                RecipientRecord::new("b", "4155550123").with_test_date("2021-01-01")
            )),
            "invalid_date:test_date:too_old"
        );
        assert_eq!(
            reason(&local(
                RecipientRecord::new("c", "4155550123").with_test_date("2021-06-16")
            )),
            "invalid_date:test_date:in_future"
        );
        assert_eq!(
            reason(&local(
                RecipientRecord::new("d", "4155550123").with_test_date("15/06/2021")
            )),
            "invalid_date:test_date:malformed"
        );
        let mut symptom = RecipientRecord::new("e", "4155550123");
        symptom.symptom_date = Some("2020-01-01".into());
        assert_eq!(reason(&local(symptom)), "invalid_date:symptom_date:too_old");
        let mut test_type = RecipientRecord::new("f", "4155550123");
        test_type.test_type = Some("antibody".into());
        assert_eq!(reason(&local(test_type)), "invalid_test_type");
    }

    #[test]
    fn a_good_record_waits_for_the_validator() {
        let entry = local(RecipientRecord::new("g", "(415) 555-0123").with_test_date("2021-06-14"));
        assert!(entry.outcome.is_none());
        let candidate = entry.candidate.expect("candidate");
        assert_eq!(candidate.test_date, Some(day("2021-06-14")));
    }

    #[test]
    fn id_list_joins_ids_only() {
        let records = [
            RecipientRecord::new("r1", "4155550123"),
            RecipientRecord::new("r2", "4155550124"),
        ];
        let shown = IdList(records.iter().map(|r| &r.id).collect()).to_string();
        assert_eq!(shown, "r1,r2");
    }
}
