//! The hostile input corpus (`tests/fixtures/hostile/`): every row ends with a clear
//! outcome, or its file is rejected naming the line — no panic, no partial import,
//! nothing lost, no phone number in the output.
//!
//! Dates relative to the run day are written `@today` or `@today-N` (days back) in the
//! fixtures and filled in before import; everything else is imported byte for byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ca_notify_integration_tests::Cli;
use ca_notify_simulators::twilio::{RunningTwilioSim, TwilioSimConfig, TwilioSimulator};
use ca_notify_simulators::verification::{RunningSim, SimConfig, VerificationSimulator};

use crate::harness::SECRET;

/// One of the five rows of one person is sent (whichever batch gets there first), the
/// other four are already sent.
const SAME_PERSON: &str = "sent|already_sent";

/// What every row of `rows.csv`, `bom-crlf.csv` and the rows written straight into the
/// store must end as: `(id, outcome, reason prefix)`.
const EXPECTED: &[(&str, &str, &str)] = &[
    ("empty-phone", "not_sent", "invalid_number:empty"),
    ("null-text-phone", "not_sent", "invalid_number:"),
    ("letters", "not_sent", "invalid_number:"),
    ("vanity", "not_sent", "invalid_number:unexpected_character"),
    ("thirty-digits", "not_sent", "invalid_number:too_long"),
    ("non-us-uk-mobile", "sent", ""),
    ("non-us-without-plus", "not_sent", "invalid_number:"),
    ("extension-ext", "not_sent", "invalid_number:has_extension"),
    ("extension-x", "not_sent", "invalid_number:has_extension"),
    ("arabic-indic-digits", "not_sent", "invalid_number:"),
    ("fullwidth-digits", "not_sent", "invalid_number:"),
    ("letter-o-for-zero", "not_sent", "invalid_number:"),
    ("letter-l-for-one", "not_sent", "invalid_number:"),
    ("spaces-around", "sent", ""),
    ("same-person-1", SAME_PERSON, ""),
    ("same-person-2", SAME_PERSON, ""),
    ("same-person-3", SAME_PERSON, ""),
    ("same-person-4", SAME_PERSON, ""),
    ("same-person-5", SAME_PERSON, ""),
    ("landline", "not_sent", "not_sms_capable:landline"),
    (
        "test-date-in-future",
        "not_sent",
        "invalid_date:test_date:in_future",
    ),
    (
        "test-date-two-years-old",
        "not_sent",
        "invalid_date:test_date:too_old",
    ),
    (
        "test-date-month-13",
        "not_sent",
        "invalid_date:test_date:malformed",
    ),
    (
        "test-date-words",
        "not_sent",
        "invalid_date:test_date:malformed",
    ),
    ("symptom-date-only", "sent", ""),
    ("no-dates", "sent", ""),
    ("unknown-test-type", "not_sent", "invalid_test_type"),
    ("sql-in-phone", "not_sent", "invalid_number:"),
    ("sql-in-id'); DROP TABLE ca_notify_state; --", "sent", ""),
    ("comma, and \"quotes\" in id", "sent", ""),
    ("bom-crlf-1", "sent", ""),
    ("bom-crlf-2", "sent", ""),
    ("store-null-phone", "not_sent", "invalid_number:empty"),
    ("store-integer-phone", "sent", ""),
    ("store-blob-phone", "not_sent", "invalid_number:"),
];

/// Files rejected as a whole: `(file, the line the error must name)`.
const REJECTED: &[(&str, &str)] = &[
    ("crlf-wrong-field-count-line-5.csv", "line 5"),
    ("invalid-utf8-line-3.csv", "line 3"),
    ("repeated-id-line-4.csv", "line 4"),
    ("no-header-line-1.csv", "line 1"),
    ("empty.csv", "line 1"),
    ("empty-id-line-3.csv", "line 3"),
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hostile")
        .join(name)
}

/// Copies a fixture into `dir`, filling in `@today` and `@today-N`.
fn materialise(name: &str, dir: &Path) -> String {
    let bytes = std::fs::read(fixture(name)).expect("fixture");
    let today = chrono::Utc::now().date_naive();
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = &bytes[..];
    while let Some(at) = rest.windows(6).position(|w| w == b"@today") {
        out.extend_from_slice(&rest[..at]);
        rest = &rest[at + 6..];
        let mut days = 0;
        if rest.first() == Some(&b'-') {
            let digits = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
            days = std::str::from_utf8(&rest[1..=digits])
                .expect("ascii")
                .parse()
                .expect("days");
            rest = &rest[1 + digits..];
        }
        let date = today - chrono::Duration::days(days);
        out.extend_from_slice(date.to_string().as_bytes());
    }
    out.extend_from_slice(rest);
    let path = dir.join(name);
    std::fs::write(&path, out).expect("materialised");
    path.display().to_string()
}

struct Hostile {
    _twilio: RunningTwilioSim,
    verification: RunningSim,
    dir: tempfile::TempDir,
    cli: Cli,
}

impl Hostile {
    async fn start() -> Self {
        let twilio = TwilioSimulator::start(TwilioSimConfig::default())
            .await
            .expect("twilio simulator");
        let verification = VerificationSimulator::start(SimConfig::default())
            .await
            .expect("verification simulator");
        let dir = tempfile::tempdir().expect("tempdir");
        let cli = [
            (
                "CA_NOTIFY__STORE__PATH",
                dir.path().join("store.db").display().to_string(),
            ),
            ("CA_NOTIFY__TWILIO__BASE_URL", twilio.base_url()),
            (
                "CA_NOTIFY__TWILIO__ACCOUNT_SID",
                twilio.account_sid().to_owned(),
            ),
            (
                "CA_NOTIFY__TWILIO__AUTH_TOKEN",
                twilio.auth_token().to_owned(),
            ),
            ("CA_NOTIFY__VERIFICATION__BASE_URL", verification.base_url()),
            ("CA_NOTIFY__VERIFICATION__API_KEY", verification.api_key()),
            (
                "CA_NOTIFY__VERIFICATION__REQUESTS_PER_MINUTE",
                "60000".to_owned(),
            ),
            ("CA_NOTIFY__DEDUP__SECRET", SECRET.to_owned()),
        ]
        .into_iter()
        .fold(crate::ca_notify(), |cli, (k, v)| cli.env(k, v));
        Self {
            _twilio: twilio,
            verification,
            dir,
            cli,
        }
    }

    /// The export as `id → (outcome, reason)`, and its raw text.
    fn export(&self) -> (BTreeMap<String, (String, String)>, String) {
        let path = self.dir.path().join("export.csv");
        let out = self.cli.run(&["export", &path.display().to_string()]);
        assert_eq!(out.code, Some(0), "{}", out.all());
        let text = std::fs::read_to_string(&path).expect("export");
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(
            reader.headers().expect("header"),
            vec![
                "id",
                "sent",
                "outcome",
                "reason",
                "attempts",
                "run_id",
                "first_attempt_at",
                "processed_at"
            ]
        );
        let rows = reader
            .records()
            .map(|r| {
                let r = r.expect("export row");
                (r[0].to_owned(), (r[2].to_owned(), r[3].to_owned()))
            })
            .collect();
        (rows, text)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_row_ends_with_a_clear_outcome() {
    let world = Hostile::start().await;
    let dir = world.dir.path();
    for (file, count) in [
        ("rows.csv", 30),
        ("bom-crlf.csv", 2),
        ("header-only.csv", 0),
    ] {
        let out = world.cli.run(&["import", &materialise(file, dir)]);
        assert_eq!(out.code, Some(0), "{file}: {}", out.all());
        assert!(
            out.stdout.contains(&format!("Imported {count} ")),
            "{file}: {}",
            out.stdout
        );
    }
    // Rows no CSV can hold, written straight into the source table.
    {
        let conn = rusqlite::Connection::open(dir.join("store.db")).expect("store");
        let today = chrono::Utc::now().date_naive().to_string();
        conn.execute(
            "INSERT INTO recipients (id, phone, test_date) VALUES ('store-null-phone', NULL, ?1),
                 ('store-integer-phone', 4157002044, ?1),
                 ('store-blob-phone', X'DEADBEEF', ?1)",
            [&today],
        )
        .expect("rows inserted");
    }

    let run = world
        .cli
        .run(&["run", "--until-drained", "--log-format", "json"]);
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert!(!run.all().contains("panicked"), "{}", run.all());
    assert!(
        !run.all().contains("7002011") && !run.all().contains("123451"),
        "a phone number reached the output"
    );

    let (rows, text) = world.export();
    let mut wrong = Vec::new();
    for (id, outcome, reason) in EXPECTED {
        match rows.get(*id) {
            None => wrong.push(format!("{id}: missing")),
            Some((o, r)) if !outcome.split('|').any(|x| x == o) || !r.starts_with(reason) => {
                wrong.push(format!("{id}: {o} {r}, expected {outcome} {reason}…"));
            }
            Some(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{}\n{text}", wrong.join("\n"));
    let same_person_sent = rows
        .iter()
        .filter(|(id, (o, _))| id.starts_with("same-person-") && o == "sent")
        .count();
    assert_eq!(same_person_sent, 1, "{text}");
    assert_eq!(rows.len(), EXPECTED.len(), "nothing lost, nothing extra");
    assert!(!text.contains("7002011"), "the export holds no phone");

    let ledger = world.verification.ledger();
    assert_eq!(
        ledger.texts_to("+14157002011"),
        1,
        "one person in five formats is texted once"
    );
    assert_eq!(ledger.phones_texted_more_than_once(), 0, "{ledger:?}");
    let sent = rows.values().filter(|(o, _)| o == "sent").count();
    assert_eq!(
        ledger.total(),
        sent as u64,
        "a text for every sent row only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_file_is_rejected_naming_its_line_and_imports_nothing() {
    let world = Hostile::start().await;
    let dir = world.dir.path();
    let out = world
        .cli
        .run(&["import", &materialise("bom-crlf.csv", dir)]);
    assert_eq!(out.code, Some(0), "{}", out.all());

    // A 10 MB line, made here rather than committed.
    let huge = dir.join("ten-megabyte-line-3.csv");
    let mut text = String::from("id,phone,test_date\nok-1,4157002101,2026-01-01\nhuge,");
    text.push_str(&"4".repeat(10 << 20));
    text.push_str(",2026-01-01\nok-2,4157002102,2026-01-01\n");
    std::fs::write(&huge, text).expect("huge file");

    // A quoted field of a million short lines: one 10 MB record, which the line cap alone
    // let through.
    let tall = dir.join("ten-megabyte-quoted-field-line-3.csv");
    let mut text = String::from("id,phone,test_date\nok-1,4157002101,2026-01-01\ntall,\"");
    text.push_str(&"4157002103\n".repeat(1 << 20));
    text.push_str("\",2026-01-01\nok-2,4157002102,2026-01-01\n");
    std::fs::write(&tall, text).expect("tall file");

    let files = REJECTED
        .iter()
        .map(|(file, line)| (fixture(file).display().to_string(), *file, *line))
        .chain([
            (
                huge.display().to_string(),
                "ten-megabyte-line-3.csv",
                "line 3",
            ),
            (
                tall.display().to_string(),
                "ten-megabyte-quoted-field-line-3.csv",
                "line 3",
            ),
        ]);
    for (path, file, line) in files {
        let out = world.cli.run(&["import", &path]);
        assert_eq!(out.code, Some(7), "{file}: {}", out.all());
        assert!(
            out.stderr.contains(&format!("{line}:")),
            "{file} names {line}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("nothing was imported"),
            "{}",
            out.stderr
        );
        assert!(!out.all().contains("panicked"), "{}", out.all());
        assert!(
            !out.all().contains("70020"),
            "no phone in the error: {}",
            out.all()
        );
        let (rows, _) = world.export();
        assert_eq!(
            rows.keys().collect::<Vec<_>>(),
            vec!["bom-crlf-1", "bom-crlf-2"],
            "{file} imported nothing"
        );
    }
}
