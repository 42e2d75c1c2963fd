//! `evaluate_response`: the judgement of one `/api/batch-issue` answer, item by item.
//!
//! This is the one place that decides, for every item of a batch, whether it was sent,
//! already sent, rejected for good, worth retrying with the same uuid, or must go back to
//! the store because the whole pipeline has to stop. Each item is judged by its own
//! `errorCode`, never by the HTTP status: the batch is not atomic and its top-level status
//! is only that of the first failing item (the verification server's
//! `pkg/controller/issueapi/handle_issue_batch.go:131-151`).

use serde::{Deserialize, Serialize};

use crate::outcome::{DeferReason, NotSentReason, Outcome};

/// The server's answer for one item of a batch, as the issuer adapter decoded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ItemAnswer {
    /// `error` empty: a code was issued and the SMS sent.
    Issued,
    /// `409 uuid_already_exists`: this uuid was issued before; no new SMS.
    AlreadyExists,
    /// Any other failure, with the item's `errorCode` (empty when the server gave none).
    Failed {
        /// The item's `errorCode`.
        error_code: String,
    },
    /// The response held no answer for this index (a short `codes` array).
    Missing,
}

impl ItemAnswer {
    /// A failure with this `errorCode`.
    pub fn failed(code: impl Into<String>) -> Self {
        Self::Failed {
            error_code: code.into(),
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

/// A per-item answer that means the whole pipeline must stop issuing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopSignal {
    /// `quota_exceeded`: the realm's daily code quota is spent.
    QuotaExhausted,
    /// `sms_queue_full` or `maintenance_mode`: the server cannot send now.
    Unavailable,
}

impl StopSignal {
    fn defer_reason(self) -> DeferReason {
        match self {
            Self::QuotaExhausted => DeferReason::QuotaExhausted,
            Self::Unavailable => DeferReason::IssuerUnavailable,
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
}

enum Verdict {
    Settled(Outcome),
    Transient(String),
    Stop(StopSignal),
}

fn judge(answer: &ItemAnswer) -> Verdict {
    match answer {
        ItemAnswer::Issued => Verdict::Settled(Outcome::Sent),
        ItemAnswer::AlreadyExists => Verdict::Settled(Outcome::AlreadySent),
        ItemAnswer::Missing => Verdict::Transient("no_answer".to_owned()),
        ItemAnswer::Failed { error_code } => match error_code.as_str() {
            "uuid_already_exists" => Verdict::Settled(Outcome::AlreadySent),
            // The send failed and the code was deleted, so the same uuid is safe to resend
            // (`send_sms.go:143-147`); a commit failure is likewise retryable (§7).
            "sms_failure" | "internal_server_error" => Verdict::Transient(error_code.clone()),
            "quota_exceeded" => Verdict::Stop(StopSignal::QuotaExhausted),
            "sms_queue_full" | "maintenance_mode" => Verdict::Stop(StopSignal::Unavailable),
            "" => Verdict::Settled(Outcome::not_sent(NotSentReason::Rejected {
                error_code: "unspecified".to_owned(),
            })),
            other => Verdict::Settled(Outcome::not_sent(NotSentReason::Rejected {
                error_code: other.to_owned(),
            })),
        },
    }
}

/// Judges one batch answer.
///
/// `request_len` is the number of items sent, `answers[i]` the answer for item `i` (a
/// short array leaves the tail `Missing`), and `retries_done` how many times these items
/// have already been re-sent. Items whose transient failures exhausted `budget` end as
/// `NotSent { GaveUp }`. When any item says stop, every item that would have been retried
/// is deferred instead, so nothing is marked 0 for a reason that was not its own.
pub fn evaluate_response(
    request_len: usize,
    answers: &[ItemAnswer],
    retries_done: u32,
    budget: &RetryBudget,
) -> Evaluation {
    let mut evaluation = Evaluation::default();
    let mut transient = Vec::new();
    for index in 0..request_len {
        match judge(answers.get(index).unwrap_or(&ItemAnswer::Missing)) {
            Verdict::Settled(outcome) => evaluation.settled.push((index, outcome)),
            Verdict::Transient(code) => transient.push((index, code)),
            Verdict::Stop(signal) => {
                evaluation.stop.get_or_insert(signal);
                evaluation
                    .settled
                    .push((index, Outcome::deferred(signal.defer_reason())));
            }
        }
    }
    for (index, last_error) in transient {
        if let Some(signal) = evaluation.stop {
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
        let e = evaluate_response(4, &answers, 0, &budget());
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
        let e = evaluate_response(4, &answers, 0, &budget());
        assert_eq!(e.retry, vec![1, 2, 3], "a missing answer is retried too");
        assert_eq!(e.settled, vec![(0, Outcome::Sent)]);

        let e = evaluate_response(3, &answers, 2, &budget());
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
        let e = evaluate_response(4, &answers, 0, &budget());
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
            let e = evaluate_response(1, &[ItemAnswer::failed(code)], 0, &budget());
            assert_eq!(e.stop, Some(StopSignal::Unavailable), "{code}");
            assert_eq!(
                e.settled,
                vec![(0, Outcome::deferred(DeferReason::IssuerUnavailable))]
            );
        }
    }

    #[test]
    fn a_failure_without_a_code_is_rejected_as_unspecified() {
        let e = evaluate_response(1, &[ItemAnswer::failed("")], 0, &budget());
        assert_eq!(
            e.settled,
            vec![(
                0,
                Outcome::not_sent(NotSentReason::Rejected {
                    error_code: "unspecified".into()
                })
            )]
        );
    }
}
