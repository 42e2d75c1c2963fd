//! `evaluate_response`: the judgement of one `/api/batch-issue` answer, item by item.
//!
//! This is the one place that maps the verification server's per-item answers to what
//! they prove. For every item of a batch it decides whether it was sent, already sent,
//! unconfirmed, rejected for good, worth retrying with the same uuid, or must go back to
//! the store because the run has to stop; and it says what the attempt proved
//! ([`AttemptAnswer`]) so the store can keep it per uuid. Each item is judged by its own
//! `errorCode`, never by the HTTP status: the batch is not atomic and its top-level status
//! is only that of the first failing item (the verification server's
//! `pkg/controller/issueapi/handle_issue_batch.go:131-151`).
//!
//! The truth table (`docs/adapters/verification.md`, "From answers to outcomes"):
//!
//! | answer for the uuid | earlier attempts of the uuid | outcome |
//! |---|---|---|
//! | 200 | any | `Sent` |
//! | 409 | none, or only unanswered ones | `AlreadySent` (a 200 may have been lost) |
//! | 409 | an explicit failure after commit | `Unconfirmed` (sent = 0, for an operator) |
//! | `sms_failure`, `internal_server_error` | — | re-sent with the same uuid, then `GaveUp` |
//! | `phone_number_invalid`, `invalid_date` | — | `NotSent` (the record's own fault) |
//! | a realm or request fault | — | the run stops; `Deferred(Misconfigured)` |
//! | `quota_exceeded`, `sms_queue_full`, `maintenance_mode` | — | the run stops; `Deferred` |
//!
//! `sent = 0` is final only for reasons that belong to the record: everything about the
//! realm (no SMS provider, a message that cannot be built or signed, test-type and date
//! rules) stops the run instead, so one wrong setting never sweeps a backlog.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::attempt::{AttemptAnswer, KeyHistory};
use crate::error_code::ErrorCode;
use crate::outcome::{DeferReason, NotSentReason, Outcome};

/// The server's answer for one item of a batch, as the issuer adapter decoded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ItemAnswer {
    /// `error` empty: a code was issued and the SMS sent.
    Issued,
    /// `409 uuid_already_exists`: a code row exists for this uuid; no new SMS.
    AlreadyExists,
    /// Any other failure, with the item's `errorCode` (empty when the server gave none)
    /// and its `error` text, already scrubbed of phone numbers by the adapter.
    Failed {
        /// The item's `errorCode`.
        error_code: String,
        /// The item's `error` text (scrubbed), which tells a message that could not be
        /// built or signed from a failed send.
        error: String,
    },
    /// The response held no answer for this index (a short `codes` array).
    Missing,
}

impl ItemAnswer {
    /// A failure with this `errorCode` and no text.
    pub fn failed(code: impl Into<String>) -> Self {
        Self::failed_with(code, "")
    }

    /// A failure with this `errorCode` and `error` text.
    pub fn failed_with(code: impl Into<String>, error: impl Into<String>) -> Self {
        Self::Failed {
            error_code: code.into(),
            error: error.into(),
        }
    }
}

/// How many times one item may be re-sent after transient per-item failures
/// (`sms_failure`, `internal_server_error`, a missing answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBudget {
    /// Re-sends allowed per item.
    pub max_item_retries: u32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            max_item_retries: 2,
        }
    }
}

/// A realm or request setting the verification server refused: not a fact about any one
/// record, so nothing may be finalised because of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RealmFault {
    /// Items failed with no `errorCode`: the realm has no SMS provider
    /// (`validate_code.go:126-133`).
    NoSmsProvider,
    /// `sms_failure` while building the message, e.g. an unknown template label
    /// (`send_sms.go:91-97`); the code row stays, nothing is texted.
    MessageNotBuilt,
    /// `sms_failure` while signing the message (`send_sms.go:110-115`); the row stays.
    MessageNotSigned,
    /// `unsupported_test_type` or `invalid_test_type`: the realm does not accept the test
    /// type sent (`validate_code.go:162-192`).
    TestTypeRefused,
    /// `missing_date`: the realm requires a test or symptom date (`validate_code.go:56-63`).
    DateRequired,
    /// Every item of a batch failed with `internal_server_error`, as when the realm's SMS
    /// provider or signer cannot be loaded after the codes were stored (`issue.go:110-130`).
    WholeBatchFailed,
    /// Any other code that is not about one record (`unparsable_request`, an unknown
    /// code): our request or the realm.
    RequestRefused,
}

impl RealmFault {
    /// A stable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::NoSmsProvider => "no_sms_provider",
            Self::MessageNotBuilt => "message_not_built",
            Self::MessageNotSigned => "message_not_signed",
            Self::TestTypeRefused => "test_type_refused",
            Self::DateRequired => "date_required",
            Self::WholeBatchFailed => "whole_batch_failed",
            Self::RequestRefused => "request_refused",
        }
    }

    /// What the operator should fix, naming the setting.
    pub fn remedy(self) -> &'static str {
        match self {
            Self::NoSmsProvider => {
                "the realm has no SMS provider: configure one in the verification server's realm SMS settings"
            }
            Self::MessageNotBuilt => {
                "the realm cannot build the SMS: check verification.sms_template_label against the realm's SMS templates"
            }
            Self::MessageNotSigned => {
                "the realm cannot sign the SMS: check the realm's authenticated-SMS signing key"
            }
            Self::TestTypeRefused => {
                "the realm refuses the test type: check verification.test_type and the store's test type column against the realm's enabled test types"
            }
            Self::DateRequired => {
                "the realm requires a test or symptom date: map source.test_date_column or source.symptom_date_column, or change the realm's setting"
            }
            Self::WholeBatchFailed => {
                "every item of a batch failed after its codes were stored: check the realm's SMS provider and signing configuration"
            }
            Self::RequestRefused => {
                "the verification server refused the request items: check the realm's settings and this version of ca-notify"
            }
        }
    }
}

impl fmt::Display for RealmFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A per-item answer that means the whole pipeline must stop issuing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopSignal {
    /// `quota_exceeded`: the realm's daily code quota is spent.
    QuotaExhausted,
    /// `sms_queue_full` or `maintenance_mode`: the server cannot send now.
    Unavailable,
    /// The realm or our request is misconfigured.
    Misconfigured {
        /// Which setting.
        fault: RealmFault,
        /// The first offending item's `errorCode` (`""` when it had none).
        error_code: String,
    },
}

impl StopSignal {
    fn defer_reason(&self) -> DeferReason {
        match self {
            Self::QuotaExhausted => DeferReason::QuotaExhausted,
            Self::Unavailable => DeferReason::IssuerUnavailable,
            Self::Misconfigured { .. } => DeferReason::Misconfigured,
        }
    }
}

/// What to do with every index of a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// Indices whose outcome is decided (including `Deferred` ones).
    pub settled: Vec<(usize, Outcome)>,
    /// Indices to send again, with the same uuids.
    pub retry: Vec<usize>,
    /// Set when an item says the pipeline must stop issuing.
    pub stop: Option<StopSignal>,
    /// What this request proved for each index, for the store's per-uuid attempt log.
    pub attempts: Vec<AttemptAnswer>,
}

enum Verdict {
    Settled(Outcome),
    Transient(String),
    Stop(StopSignal),
}

fn misconfigured(fault: RealmFault, error_code: &str) -> Verdict {
    Verdict::Stop(StopSignal::Misconfigured {
        fault,
        error_code: error_code.to_owned(),
    })
}

fn judge(answer: &ItemAnswer, history: &KeyHistory) -> (Verdict, AttemptAnswer) {
    let already_exists = || {
        let outcome = if history.may_hold_an_unsent_row() {
            Outcome::Unconfirmed
        } else {
            Outcome::AlreadySent
        };
        (Verdict::Settled(outcome), AttemptAnswer::AlreadyExists)
    };
    let (error_code, error) = match answer {
        ItemAnswer::Issued => return (Verdict::Settled(Outcome::Sent), AttemptAnswer::Issued),
        ItemAnswer::AlreadyExists => return already_exists(),
        ItemAnswer::Missing => {
            return (
                Verdict::Transient("no_answer".to_owned()),
                AttemptAnswer::NoAnswer,
            )
        }
        ItemAnswer::Failed { error_code, error } => (error_code.as_str(), error.as_str()),
    };
    let code = ErrorCode::parse(error_code);
    // The limiter or the commit failing stored nothing (`gen_code.go:56-62,97-102`, both
    // "… please try again"); every other failure of these codes may have left the row.
    let commit_failed =
        code == ErrorCode::InternalServerError && error.contains("please try again");
    let attempt = if code.may_follow_a_commit() && !commit_failed {
        AttemptAnswer::FailedAfterCommit
    } else {
        AttemptAnswer::Refused
    };
    let verdict = match code {
        ErrorCode::UuidAlreadyExists => return already_exists(),
        // A message that cannot be built or signed keeps the stored row and texts no one
        // (`send_sms.go:126-131`): the realm's fault, never the record's.
        ErrorCode::SmsFailure if error.contains("failed to build sms") => {
            misconfigured(RealmFault::MessageNotBuilt, error_code)
        }
        ErrorCode::SmsFailure if error.contains("failed to sign sms") => {
            misconfigured(RealmFault::MessageNotSigned, error_code)
        }
        // A failed send deletes the row, so the same uuid is safe to resend
        // (`send_sms.go:143-147`); a commit failure is likewise retryable.
        ErrorCode::SmsFailure | ErrorCode::InternalServerError => {
            Verdict::Transient(error_code.to_owned())
        }
        ErrorCode::QuotaExceeded => Verdict::Stop(StopSignal::QuotaExhausted),
        code if code.is_unavailable() => Verdict::Stop(StopSignal::Unavailable),
        ErrorCode::Empty => misconfigured(RealmFault::NoSmsProvider, error_code),
        ErrorCode::UnsupportedTestType | ErrorCode::InvalidTestType => {
            misconfigured(RealmFault::TestTypeRefused, error_code)
        }
        ErrorCode::MissingDate => misconfigured(RealmFault::DateRequired, error_code),
        code if code.is_the_records_fault() => {
            Verdict::Settled(Outcome::not_sent(NotSentReason::Rejected {
                error_code: error_code.to_owned(),
            }))
        }
        _ => misconfigured(RealmFault::RequestRefused, error_code),
    };
    (verdict, attempt)
}

/// Whether every item of a batch of two or more failed with `internal_server_error`: the
/// mark of `errorAll` after the codes were stored, when the realm's SMS provider or signer
/// cannot be loaded (`issue.go:110-130`), not of one record. (A failed send, `sms_failure`,
/// is left out: independent send failures of a small batch are too likely to coincide.)
fn whole_batch_failed(request_len: usize, answers: &[ItemAnswer]) -> bool {
    request_len >= 2
        && answers.len() >= request_len
        && answers[..request_len].iter().all(|a| {
            matches!(a, ItemAnswer::Failed { error_code, .. }
                if ErrorCode::parse(error_code) == ErrorCode::InternalServerError)
        })
}

/// Judges one batch answer.
///
/// `request_len` is the number of items sent, `answers[i]` the answer for item `i` (a
/// short array leaves the tail `Missing`), `histories[i]` what the ledger and this run's
/// earlier attempts know of item `i`'s uuid (missing entries count as no history), and
/// `retries_done` how many times these items have already been re-sent. Items whose
/// transient failures exhausted `budget` end as `NotSent { GaveUp }`. When any item says
/// stop, every item that would have been retried is deferred instead, so nothing is
/// marked 0 for a reason that was not its own.
pub fn evaluate_response(
    request_len: usize,
    answers: &[ItemAnswer],
    histories: &[KeyHistory],
    retries_done: u32,
    budget: &RetryBudget,
) -> Evaluation {
    let mut evaluation = Evaluation::default();
    let mut transient = Vec::new();
    let no_history = KeyHistory::default();
    for index in 0..request_len {
        let answer = answers.get(index).unwrap_or(&ItemAnswer::Missing);
        let history = histories.get(index).unwrap_or(&no_history);
        let (verdict, attempt) = judge(answer, history);
        evaluation.attempts.push(attempt);
        match verdict {
            Verdict::Settled(outcome) => evaluation.settled.push((index, outcome)),
            Verdict::Transient(code) => transient.push((index, code)),
            Verdict::Stop(signal) => {
                evaluation
                    .settled
                    .push((index, Outcome::deferred(signal.defer_reason())));
                evaluation.stop.get_or_insert(signal);
            }
        }
    }
    if whole_batch_failed(request_len, answers) {
        evaluation.stop = Some(StopSignal::Misconfigured {
            fault: RealmFault::WholeBatchFailed,
            error_code: "internal_server_error".to_owned(),
        });
    }
    for (index, last_error) in transient {
        if let Some(signal) = &evaluation.stop {
            let outcome = Outcome::deferred(signal.defer_reason());
            evaluation.settled.push((index, outcome));
        } else if retries_done < budget.max_item_retries {
            evaluation.retry.push(index);
        } else {
            let outcome = Outcome::not_sent(NotSentReason::GaveUp { last_error });
            evaluation.settled.push((index, outcome));
        }
    }
    evaluation.settled.sort_by_key(|(index, _)| *index);
    evaluation
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> RetryBudget {
        RetryBudget {
            max_item_retries: 2,
        }
    }

    #[test]
    fn judges_each_item_by_its_own_error() {
        let answers = [
            ItemAnswer::Issued,
            ItemAnswer::failed("phone_number_invalid"),
            ItemAnswer::Issued,
            ItemAnswer::failed("uuid_already_exists"),
        ];
        let e = evaluate_response(4, &answers, &[], 0, &budget());
        assert_eq!(
            e.settled,
            vec![
                (0, Outcome::Sent),
                (
                    1,
                    Outcome::not_sent(NotSentReason::Rejected {
                        error_code: "phone_number_invalid".into()
                    })
                ),
                (2, Outcome::Sent),
                (3, Outcome::AlreadySent),
            ]
        );
        assert!(e.retry.is_empty());
        assert_eq!(e.stop, None);
    }

    #[test]
    fn retries_only_transient_failures_until_the_budget_is_spent() {
        let answers = [
            ItemAnswer::Issued,
            ItemAnswer::failed("sms_failure"),
            ItemAnswer::failed("internal_server_error"),
        ];
        let e = evaluate_response(4, &answers, &[], 0, &budget());
        assert_eq!(e.retry, vec![1, 2, 3], "a missing answer is retried too");
        assert_eq!(e.settled, vec![(0, Outcome::Sent)]);

        let e = evaluate_response(3, &answers, &[], 2, &budget());
        assert!(e.retry.is_empty());
        assert_eq!(
            e.settled[1].1,
            Outcome::not_sent(NotSentReason::GaveUp {
                last_error: "sms_failure".into()
            })
        );
    }

    #[test]
    fn quota_exceeded_defers_instead_of_marking_zero() {
        let answers = [
            ItemAnswer::Issued,
            ItemAnswer::failed("quota_exceeded"),
            ItemAnswer::failed("sms_failure"),
            ItemAnswer::failed("quota_exceeded"),
        ];
        let e = evaluate_response(4, &answers, &[], 0, &budget());
        assert_eq!(e.stop, Some(StopSignal::QuotaExhausted));
        assert!(e.retry.is_empty());
        let quota = Outcome::deferred(DeferReason::QuotaExhausted);
        assert_eq!(
            e.settled,
            vec![
                (0, Outcome::Sent),
                (1, quota.clone()),
                (2, quota.clone()),
                (3, quota)
            ]
        );
    }

    #[test]
    fn queue_full_and_maintenance_stop_issuing() {
        for code in ["sms_queue_full", "maintenance_mode"] {
            let e = evaluate_response(1, &[ItemAnswer::failed(code)], &[], 0, &budget());
            assert_eq!(e.stop, Some(StopSignal::Unavailable), "{code}");
            assert_eq!(
                e.settled,
                vec![(0, Outcome::deferred(DeferReason::IssuerUnavailable))]
            );
        }
    }

    fn misconfigured(fault: RealmFault, code: &str) -> Option<StopSignal> {
        Some(StopSignal::Misconfigured {
            fault,
            error_code: code.to_owned(),
        })
    }

    #[test]
    fn a_409_is_sent_only_when_no_earlier_attempt_failed_explicitly() {
        let conflict = [
            ItemAnswer::AlreadyExists,
            ItemAnswer::failed("uuid_already_exists"),
        ];
        let fresh = KeyHistory::default();
        let lost = KeyHistory::default().with(&[AttemptAnswer::NoAnswer]);
        let failed = KeyHistory::default().with(&[AttemptAnswer::FailedAfterCommit]);
        let mixed = KeyHistory::default()
            .with(&[AttemptAnswer::NoAnswer, AttemptAnswer::FailedAfterCommit]);
        for answer in &conflict {
            let judged = |history: KeyHistory| {
                let e =
                    evaluate_response(1, std::slice::from_ref(answer), &[history], 1, &budget());
                assert_eq!(e.attempts, vec![AttemptAnswer::AlreadyExists]);
                e.settled[0].1.clone()
            };
            assert_eq!(
                judged(fresh),
                Outcome::AlreadySent,
                "no history: texted before"
            );
            assert_eq!(
                judged(lost),
                Outcome::AlreadySent,
                "a 200 may have been lost"
            );
            assert_eq!(
                judged(failed),
                Outcome::Unconfirmed,
                "the row may be unsent"
            );
            assert_eq!(judged(mixed), Outcome::Unconfirmed);
        }
        assert_eq!(Outcome::Unconfirmed.sent_flag(), Some(0));
    }

    #[test]
    fn each_attempt_says_what_it_proved() {
        let answers = [
            ItemAnswer::Issued,
            ItemAnswer::failed("sms_failure"),
            ItemAnswer::failed("internal_server_error"),
            ItemAnswer::failed("phone_number_invalid"),
        ];
        let e = evaluate_response(5, &answers, &[], 0, &budget());
        assert_eq!(
            e.attempts,
            vec![
                AttemptAnswer::Issued,
                AttemptAnswer::FailedAfterCommit,
                AttemptAnswer::FailedAfterCommit,
                AttemptAnswer::Refused,
                AttemptAnswer::NoAnswer,
            ]
        );
    }

    #[test]
    fn realm_faults_stop_the_run_and_finalise_nothing() {
        let cases = [
            (ItemAnswer::failed(""), RealmFault::NoSmsProvider),
            (
                ItemAnswer::failed_with(
                    "sms_failure",
                    "failed to send sms: failed to build sms message: no template found for label x",
                ),
                RealmFault::MessageNotBuilt,
            ),
            (
                ItemAnswer::failed_with("sms_failure", "failed to send sms: failed to sign sms: boom"),
                RealmFault::MessageNotSigned,
            ),
            (ItemAnswer::failed("unsupported_test_type"), RealmFault::TestTypeRefused),
            (ItemAnswer::failed("invalid_test_type"), RealmFault::TestTypeRefused),
            (ItemAnswer::failed("missing_date"), RealmFault::DateRequired),
            (ItemAnswer::failed("unparsable_request"), RealmFault::RequestRefused),
            (ItemAnswer::failed("something_new"), RealmFault::RequestRefused),
        ];
        for (answer, fault) in cases {
            let code = match &answer {
                ItemAnswer::Failed { error_code, .. } => error_code.clone(),
                _ => unreachable!(),
            };
            let answers = [
                answer,
                ItemAnswer::failed("sms_failure"),
                ItemAnswer::Issued,
            ];
            let e = evaluate_response(3, &answers, &[], 0, &budget());
            assert_eq!(e.stop, misconfigured(fault, &code), "{fault}");
            assert!(e.retry.is_empty(), "{fault}: nothing retried");
            let held = Outcome::deferred(DeferReason::Misconfigured);
            assert_eq!(
                e.settled,
                vec![(0, held.clone()), (1, held), (2, Outcome::Sent)],
                "{fault}: the texted item stays sent, the rest go back untouched"
            );
            assert!(!fault.remedy().is_empty());
        }
    }

    #[test]
    fn a_whole_batch_of_internal_errors_is_the_realm_not_the_records() {
        let all = vec![ItemAnswer::failed("internal_server_error"); 3];
        let e = evaluate_response(3, &all, &[], 0, &budget());
        assert_eq!(
            e.stop,
            misconfigured(RealmFault::WholeBatchFailed, "internal_server_error")
        );
        assert!(e.retry.is_empty());
        assert!(e
            .settled
            .iter()
            .all(|(_, o)| *o == Outcome::deferred(DeferReason::Misconfigured)));
        assert_eq!(e.attempts, vec![AttemptAnswer::FailedAfterCommit; 3]);

        let commit = ItemAnswer::failed_with(
            "internal_server_error",
            "failed to generate otp code, please try again",
        );
        let e = evaluate_response(1, &[commit], &[], 0, &budget());
        assert_eq!(
            e.attempts,
            vec![AttemptAnswer::Refused],
            "a failed commit stored nothing"
        );
        assert_eq!(e.retry, vec![0]);

        let one = evaluate_response(1, &all[..1], &[], 0, &budget());
        assert_eq!(one.stop, None, "one item alone is retried");
        assert_eq!(one.retry, vec![0]);
    }

    #[test]
    fn only_the_records_own_faults_are_final() {
        for code in ["phone_number_invalid", "invalid_date"] {
            let e = evaluate_response(1, &[ItemAnswer::failed(code)], &[], 0, &budget());
            assert_eq!(e.stop, None);
            assert_eq!(
                e.settled,
                vec![(
                    0,
                    Outcome::not_sent(NotSentReason::Rejected {
                        error_code: code.into()
                    })
                )]
            );
        }
    }
}
