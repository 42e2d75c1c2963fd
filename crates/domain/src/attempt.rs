//! What each issue attempt for a dedup key proved, and what the ledger knows of a key.
//!
//! A `409 uuid_already_exists` proves that the verification server holds a code row for
//! the uuid, never that a text went out: the server commits every row before it builds and
//! sends the message, and keeps the row when the message cannot be built or signed, or when
//! deleting it after a failed send fails (`docs/adapters/verification.md`, "What an answer
//! proves"). So whether a 409 means "texted" depends on how the earlier attempts of the same
//! uuid ended. Every attempt's answer is kept in the store per uuid ([`AttemptAnswer`]), and
//! the store sums them up into a [`KeyHistory`] before the key is issued again.

use serde::{Deserialize, Serialize};

/// How one batch-issue attempt ended for one uuid, as far as this client can know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptAnswer {
    /// `error` empty: the server issued a code and sent the text.
    Issued,
    /// `409 uuid_already_exists`: a code row exists for the uuid.
    AlreadyExists,
    /// An explicit failure after the code row may have been committed, with nothing texted
    /// by this attempt (`sms_failure`, `sms_queue_full`, `internal_server_error`): the row
    /// may have stayed behind, so a later 409 proves nothing about a text.
    FailedAfterCommit,
    /// An explicit refusal before anything was stored (a bad phone or date, a realm rule,
    /// no SMS provider, the quota).
    Refused,
    /// No answer for this uuid: a timeout, a dropped connection, a short answer. The server
    /// may have issued and texted; the answer was lost.
    NoAnswer,
}

impl AttemptAnswer {
    /// A stable code, as stores keep it.
    pub fn code(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::AlreadyExists => "already_exists",
            Self::FailedAfterCommit => "failed_after_commit",
            Self::Refused => "refused",
            Self::NoAnswer => "no_answer",
        }
    }

    /// Parses [`AttemptAnswer::code`].
    pub fn from_code(code: &str) -> Option<Self> {
        [
            Self::Issued,
            Self::AlreadyExists,
            Self::FailedAfterCommit,
            Self::Refused,
            Self::NoAnswer,
        ]
        .into_iter()
        .find(|answer| answer.code() == code)
    }
}

/// What the store's ledger knows about one dedup key, under any record id, however long
/// ago: the sum of its outcomes and of its attempts' answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyHistory {
    /// Some record with this key was written as texted (`sent = 1`).
    pub texted: bool,
    /// Attempts that ended in an explicit failure after a possible commit.
    pub failed_after_commit: u32,
    /// Attempts that ended with no answer.
    pub unanswered: u32,
    /// Attempts the server answered 200 for.
    pub issued: u32,
}

impl KeyHistory {
    /// Adds one more attempt's answer.
    pub fn record(&mut self, answer: AttemptAnswer) {
        match answer {
            AttemptAnswer::Issued => self.issued += 1,
            AttemptAnswer::FailedAfterCommit => self.failed_after_commit += 1,
            AttemptAnswer::NoAnswer => self.unanswered += 1,
            AttemptAnswer::AlreadyExists | AttemptAnswer::Refused => {}
        }
    }

    /// Adds one row of a store's ledger read: `None` for a state row written as texted,
    /// `Some(code)` for `count` attempts that ended with the answer of that
    /// [`AttemptAnswer::code`].
    ///
    /// # Errors
    /// [`UnknownAttemptAnswer`] for a code this build does not know (a newer release
    /// wrote it), so the store can refuse rather than guess.
    pub fn record_stored(
        &mut self,
        code: Option<&str>,
        count: u64,
    ) -> Result<(), UnknownAttemptAnswer> {
        let Some(code) = code else {
            self.texted = true;
            return Ok(());
        };
        let answer =
            AttemptAnswer::from_code(code).ok_or_else(|| UnknownAttemptAnswer(code.to_owned()))?;
        for _ in 0..count {
            self.record(answer);
        }
        Ok(())
    }

    /// The history with these answers added.
    #[must_use]
    pub fn with(mut self, answers: &[AttemptAnswer]) -> Self {
        for &answer in answers {
            self.record(answer);
        }
        self
    }

    /// Whether an earlier attempt of this uuid failed explicitly after the row may have
    /// been stored: then a 409 cannot be taken as proof of a text.
    pub fn may_hold_an_unsent_row(&self) -> bool {
        self.failed_after_commit > 0
    }
}

/// A stored attempt answer this build does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the attempt log holds the answer {0:?}, which this build does not know; use the ca-notify that wrote it"
)]
pub struct UnknownAttemptAnswer(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for answer in [
            AttemptAnswer::Issued,
            AttemptAnswer::AlreadyExists,
            AttemptAnswer::FailedAfterCommit,
            AttemptAnswer::Refused,
            AttemptAnswer::NoAnswer,
        ] {
            assert_eq!(AttemptAnswer::from_code(answer.code()), Some(answer));
        }
        assert_eq!(AttemptAnswer::from_code("sent"), None);
    }

    #[test]
    fn stored_rows_add_up_and_unknown_answers_are_refused() {
        let mut history = KeyHistory::default();
        history.record_stored(Some("no_answer"), 2).expect("known");
        history
            .record_stored(Some("failed_after_commit"), 1)
            .expect("known");
        history.record_stored(None, 1).expect("a texted row");
        assert_eq!(
            history,
            KeyHistory {
                texted: true,
                failed_after_commit: 1,
                unanswered: 2,
                issued: 0,
            }
        );
        let error = history
            .record_stored(Some("teleported"), 1)
            .expect_err("unknown");
        assert!(error.to_string().contains("teleported"));
    }

    #[test]
    fn only_an_explicit_failure_after_commit_taints_a_later_409() {
        let lost = KeyHistory::default().with(&[AttemptAnswer::NoAnswer, AttemptAnswer::NoAnswer]);
        assert!(!lost.may_hold_an_unsent_row());
        assert_eq!(lost.unanswered, 2);
        let refused = KeyHistory::default().with(&[AttemptAnswer::Refused]);
        assert!(!refused.may_hold_an_unsent_row());
        let failed = KeyHistory::default()
            .with(&[AttemptAnswer::NoAnswer, AttemptAnswer::FailedAfterCommit]);
        assert!(failed.may_hold_an_unsent_row());
    }
}
