//! Source rows and outcomes the checks seed and write, also handy for a store's own tests.
//!
//! Ids are numeric-looking text (`"1001"`) so that a store whose id column is a number
//! passes the same checks as one whose id is text. Phones are fictional 555-01xx numbers.

use ca_notify_domain::{
    AttemptAnswer, DedupKey, DeferReason, NotSentReason, Outcome, RawPhone, RecipientRecord,
    RecordId, RecordOutcome,
};

/// `n` well-formed records with ids `first`, `first + 1`, …, each with a phone, a test
/// date, a symptom date and a test type.
pub fn records(first: u64, n: usize) -> Vec<RecipientRecord> {
    (0..n as u64)
        .map(|i| {
            let id = first + i;
            RecipientRecord {
                id: RecordId::new(id.to_string()),
                phone: Some(RawPhone::new(format!("+1415555{:04}", id % 10_000))),
                test_date: Some(format!("2021-06-{:02}", 1 + id % 28)),
                symptom_date: if id % 3 == 0 {
                    None
                } else {
                    Some("2021-05-30".to_owned())
                },
                test_type: Some(if id % 2 == 0 { "confirmed" } else { "likely" }.to_owned()),
                tz_offset: None,
            }
        })
        .collect()
}

/// Rows a real source table holds sooner or later: NULL, empty, blank, garbage, unicode,
/// over-long and SQL-looking phones, two identical rows under different ids, NULL dates
/// and an unknown test type. Every one must come back verbatim as an ordinary record.
pub fn bad_rows() -> Vec<RecipientRecord> {
    let row = |id: &str, phone: Option<&str>| RecipientRecord {
        id: RecordId::new(id),
        phone: phone.map(RawPhone::new),
        test_date: None,
        symptom_date: None,
        test_type: None,
        tz_offset: None,
    };
    let mut duplicate_a = row("9010", Some("(415) 555-0123"));
    duplicate_a.test_date = Some("2021-06-01".to_owned());
    duplicate_a.test_type = Some("confirmed".to_owned());
    let mut duplicate_b = duplicate_a.clone();
    duplicate_b.id = RecordId::new("9011");
    let mut odd_type = row("9012", Some("+14155550199"));
    odd_type.test_type = Some("antibody'; DELETE FROM recipients; --".to_owned());
    odd_type.symptom_date = Some("2021-05-28".to_owned());
    vec![
        row("9001", None),
        row("9002", Some("")),
        row("9003", Some("   ")),
        row("9004", Some("call me maybe")),
        row("9005", Some("x'); DROP TABLE recipients; --")),
        row("9006", Some("' OR '1'='1")),
        row("9007", Some("\"; SELECT * FROM sqlite_master; --")),
        row("9008", Some("４１５５５５０１２３ ☎")),
        row("9009", Some(&"9".repeat(1000))),
        duplicate_a,
        duplicate_b,
        odd_type,
    ]
}

/// A fixed, valid dedup key for record `n`.
pub fn dedup_key(n: u64) -> DedupKey {
    DedupKey::parse(&format!(
        "00000000-0000-8000-8000-{:012}",
        n % 1_000_000_000_000
    ))
    .expect("a valid uuid")
}

/// `Sent`, with a dedup key derived from the id.
pub fn sent(id: &RecordId) -> RecordOutcome {
    outcome(id, Outcome::Sent)
}

/// `NotSent { InvalidNumber }`, as the pipeline writes a bad row.
pub fn invalid_number(id: &RecordId) -> RecordOutcome {
    RecordOutcome::new(
        id.clone(),
        None,
        Outcome::not_sent(NotSentReason::InvalidNumber {
            detail: "not_a_number".to_owned(),
        }),
    )
}

/// `Deferred { IssuerUnavailable }`.
pub fn deferred(id: &RecordId) -> RecordOutcome {
    outcome(id, Outcome::deferred(DeferReason::IssuerUnavailable))
}

/// `Deferred { NoAnswer }` after one unanswered attempt: the record keeps its claim.
pub fn unanswered(id: &RecordId) -> RecordOutcome {
    outcome(id, Outcome::deferred(DeferReason::NoAnswer)).with_attempts(&[AttemptAnswer::NoAnswer])
}

/// The dedup key [`outcome`] derives from an id.
pub fn key_of(id: &RecordId) -> DedupKey {
    let n = id.as_str().bytes().fold(0u64, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u64::from(b))
    });
    dedup_key(n)
}

/// Any outcome, with a dedup key derived from the id and no attempts.
pub fn outcome(id: &RecordId, outcome: Outcome) -> RecordOutcome {
    RecordOutcome::new(id.clone(), Some(key_of(id)), outcome)
}

/// Any outcome under a chosen dedup key (as two records of one person share one).
pub fn keyed(id: &RecordId, key: DedupKey, outcome: Outcome) -> RecordOutcome {
    RecordOutcome::new(id.clone(), Some(key), outcome)
}

/// Builds on a fixture outcome.
pub trait OutcomeExt {
    /// The outcome with these attempt answers.
    #[must_use]
    fn with_attempts(self, answers: &[AttemptAnswer]) -> Self;
}

impl OutcomeExt for RecordOutcome {
    fn with_attempts(mut self, answers: &[AttemptAnswer]) -> Self {
        self.attempts = answers.to_vec();
        self
    }
}

/// The operator's day, shared by the stores' admin tests: six records, ids `"1"` to
/// `"6"` (phones `+14155550101` …, tested 2026-11-30, symptoms from 2026-11-28).
pub fn operator_day_records() -> Vec<RecipientRecord> {
    (1..=6)
        .map(|n| {
            let mut r = RecipientRecord::new(n.to_string(), format!("+1415555010{n}"))
                .with_test_date("2026-11-30");
            r.symptom_date = Some("2026-11-28".to_owned());
            r
        })
        .collect()
}

/// Claims five of [`operator_day_records`] and writes: 1 sent (issued), 2 invalid number,
/// 3 deferred, 4 unconfirmed (failed after commit, then already exists), 5 gave up;
/// 6 is never claimed (on Snowflake it has no state row).
///
/// # Panics
/// When the store does not claim five records or refuses the write.
pub async fn write_operator_day<S>(store: &S)
where
    S: ca_notify_ports::PhoneSource + ca_notify_ports::ResultSink + ?Sized,
{
    let id = |s: &str| RecordId::new(s);
    let claim = crate::support::claim(store, 5, crate::support::LONG_LEASE).await;
    assert_eq!(
        claim.records.len(),
        5,
        "the operator's day claims five records"
    );
    let outcomes = [
        outcome(&id("1"), Outcome::Sent).with_attempts(&[AttemptAnswer::Issued]),
        invalid_number(&id("2")),
        deferred(&id("3")),
        outcome(&id("4"), Outcome::Unconfirmed).with_attempts(&[
            AttemptAnswer::FailedAfterCommit,
            AttemptAnswer::AlreadyExists,
        ]),
        outcome(
            &id("5"),
            Outcome::not_sent(NotSentReason::GaveUp {
                last_error: "unavailable".to_owned(),
            }),
        ),
    ];
    crate::support::write(store, &claim.token, &outcomes).await;
}
