//! `pre_check_and_annotate`: parse every record once, settle what can be settled locally,
//! and ask the phone validator about the rest, a bounded number at a time.
//!
//! Records with an unusable phone, a date the verification server would refuse, or a test
//! type it does not know are settled here as `NotSent` without spending a phone check or a
//! code. They still go into their batch's single write-back. A record the validator calls
//! SMS-capable gets its dedup key and becomes an issue item.

use std::fmt;

use ca_notify_domain::{
    scrub_phone_numbers, AttemptAnswer, DateWindow, DedupKey, DeferReason, KeyHistory,
    LocallyChecked, NotSentReason, Outcome, Recipient, RecipientRecord, RecordId,
};
use ca_notify_ports::{IssueItem, PhoneVerdict, ValidationError};
use chrono::NaiveDate;
use futures::future::join_all;
use tokio::time::timeout_at;
use tracing::warn;

use crate::context::RunCtx;
use crate::failure::FatalCause;
use crate::report::Counts;

/// One record of a batch on its way through the steps.
#[derive(Debug)]
pub(crate) struct BatchEntry {
    pub id: RecordId,
    /// Settled so far; `None` while still undecided.
    pub outcome: Option<Outcome>,
    /// Known once the record passed every check.
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

    /// Everything known of the key: the ledger's history plus this run's attempts.
    pub fn key_history(&self) -> KeyHistory {
        self.history.with(&self.attempts)
    }
}

/// Parses and checks one batch. Returns one entry per record, in order.
pub(crate) async fn pre_check_and_annotate(
    ctx: &RunCtx,
    records: Vec<RecipientRecord>,
    tally: &mut Counts,
) -> Vec<BatchEntry> {
    let parts = &ctx.parts;
    let today = (parts.today)();
    let window = parts.settings.date_window;
    let mut entries: Vec<BatchEntry> = records
        .into_iter()
        .map(|record| {
            let recipient = Recipient::from_record(record, &parts.parser);
            annotate_locally(recipient, today, &window)
        })
        .collect();

    let work_deadline = ctx.work_deadline();
    let mut checks = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let Some(candidate) = entry.candidate.as_ref() else {
            continue;
        };
        checks.push(async move {
            let checked = timeout_at(ctx.deadline, async {
                // One slot per check, granted in the order asked: never more than
                // `validation_concurrency` checks in flight run-wide, and a slot freed
                // by a quick answer goes at once to the next check waiting, whichever
                // batch it belongs to, instead of idling until this batch's slowest
                // check is back.
                let _slot = ctx
                    .validation_slots
                    .acquire()
                    .await
                    .expect("the validation semaphore is never closed");
                if ctx.stop_issuing.is_cancelled() {
                    return None;
                }
                Some(parts.validator.check(&candidate.phone, work_deadline).await)
            })
            .await;
            let check = match checked {
                Ok(Some(answer)) => Check::Answered(answer),
                Ok(None) => Check::Skipped,
                Err(_) => Check::TimedOut,
            };
            (index, check)
        });
    }
    let results: Vec<(usize, Check)> = join_all(checks).await;

    let mut unavailable = 0usize;
    let mut last_error = String::new();
    for (index, check) in results {
        let entry = &mut entries[index];
        let Some(candidate) = entry.candidate.take() else {
            continue;
        };
        if !matches!(check, Check::Skipped) {
            tally.validator_calls += 1;
        }
        let outcome = match check {
            Check::Answered(Ok(PhoneVerdict::SmsCapable { .. })) => {
                let key = DedupKey::derive(
                    &parts.secret,
                    &candidate.phone,
                    candidate.test_date,
                    &entry.id,
                );
                entry.dedup_key = Some(key);
                entry.item = Some(IssueItem {
                    phone: candidate.phone,
                    uuid: key,
                    test_type: candidate.test_type,
                    test_date: candidate.test_date,
                    symptom_date: candidate.symptom_date,
                    tz_offset: candidate.tz_offset,
                });
                continue;
            }
            Check::Answered(Ok(PhoneVerdict::NotSmsCapable { line_type })) => {
                Outcome::not_sent(NotSentReason::NotSmsCapable { line_type })
            }
            Check::Answered(Ok(PhoneVerdict::Invalid { detail })) => {
                Outcome::not_sent(NotSentReason::InvalidNumber { detail })
            }
            Check::Answered(Err(ValidationError::Unauthorized(message))) => {
                ctx.fail(FatalCause::ValidatorUnauthorized(scrub_phone_numbers(
                    &message,
                )));
                Outcome::deferred(DeferReason::Unauthorized)
            }
            Check::Answered(Err(ValidationError::Misconfigured(message))) => {
                ctx.fail(FatalCause::ValidatorMisconfigured(scrub_phone_numbers(
                    &message,
                )));
                Outcome::deferred(DeferReason::Misconfigured)
            }
            Check::Answered(Err(error)) => {
                unavailable += 1;
                last_error = scrub_phone_numbers(&error.to_string());
                Outcome::deferred(DeferReason::ValidationUnavailable)
            }
            Check::TimedOut => Outcome::deferred(DeferReason::Deadline),
            Check::Skipped => Outcome::deferred(ctx.halt_reason()),
        };
        entry.outcome = Some(outcome);
    }
    if unavailable > 0 {
        warn!(
            records = unavailable,
            error = %last_error,
            "Phone validator unavailable; the records are deferred."
        );
    }
    entries
}

enum Check {
    Answered(Result<PhoneVerdict, ValidationError>),
    TimedOut,
    Skipped,
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
        outcome,
        dedup_key: None,
        item: None,
        history: KeyHistory::default(),
        attempts: Vec::new(),
        candidate,
    }
}

/// Record ids of a batch, comma-separated, for its span (formatted only when recorded).
pub(crate) struct IdList<'a>(pub &'a [RecipientRecord]);

impl fmt::Display for IdList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, record) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(record.id.as_str())?;
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
        let shown = IdList(&records).to_string();
        assert_eq!(shown, "r1,r2");
    }
}
