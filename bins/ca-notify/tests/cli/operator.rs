//! The operator's day on the built binary over a SQLite store and the simulators:
//! `status`, `requeue` (its dry run, refusals and the ledger that still stops a second
//! text), `reconcile` (a claimed code, a server that is down), `purge` (inside and past
//! retention), `export -`, and the generated completions and man page.

use std::path::Path;

use ca_notify_simulators::twilio::TwilioSimConfig;
use ca_notify_simulators::verification::SimConfig;
use rusqlite::Connection;
use serde_json::Value;

use crate::harness::{Kind, World};

/// Every state row as text, to prove that a refusal changed nothing.
fn snapshot(db: &Path) -> Vec<String> {
    let conn = Connection::open(db).expect("open");
    let mut stmt = conn
        .prepare("SELECT * FROM ca_notify_state ORDER BY record_id")
        .expect("select");
    let columns = stmt.column_count();
    stmt.query_map([], |r| {
        let cells = (0..columns)
            .map(|i| {
                r.get::<_, rusqlite::types::Value>(i)
                    .map(|v| format!("{v:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(cells.join("|"))
    })
    .expect("rows")
    .collect::<Result<_, _>>()
    .expect("rows")
}

fn sql(db: &Path, statement: &str, id: &str) -> usize {
    Connection::open(db)
        .expect("open")
        .execute(statement, [id])
        .expect("statement")
}

fn json(out: &ca_notify_integration_tests::CliOutput) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.all()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_requeue_and_the_ledger_that_still_stops_a_second_text() {
    let world = World::start(10, TwilioSimConfig::default(), SimConfig::default()).await;
    let run = world.cli().run(&["run", "--until-drained"]);
    assert_eq!(run.code, Some(0), "{}", run.all());
    let status = json(&world.cli().run(&["status", "--json"]));
    assert_eq!(status["total"], 10);
    assert_eq!(status["pending"], 0);
    assert_eq!(status["not_sent"]["not_sms_capable"], 1, "{status}");
    assert_eq!(status["not_sent"]["invalid_number"], 1, "{status}");
    let text = world.cli().run(&["status"]);
    assert_eq!(text.code, Some(0), "{}", text.all());
    assert!(text.stdout.contains("not sent"), "{}", text.stdout);

    let db = world.db();
    let mobile = world
        .people
        .iter()
        .find(|p| p.kind == Kind::Mobile)
        .expect("a mobile");
    let landline = world
        .people
        .iter()
        .find(|p| p.kind == Kind::Landline)
        .expect("a landline");
    let before = snapshot(&db);
    for (args, code, says) in [
        (
            vec!["requeue", "--ids", &mobile.id, "--yes"],
            10,
            "written as texted",
        ),
        (
            vec!["requeue", "--ids", "nope", "--yes"],
            10,
            "not in the store",
        ),
        (vec!["requeue", "--ids", "", "--yes"], 10, "empty"),
        (
            vec!["requeue", "--reason", "landline", "--yes"],
            2,
            "unknown reason",
        ),
        (vec!["requeue", "--yes"], 2, "required"),
    ] {
        let out = world.cli().run(&args);
        assert_eq!(out.code, Some(code), "{args:?}: {}", out.all());
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
        assert_eq!(snapshot(&db), before, "{args:?} changed the store");
    }
    let malformed = world.dir.path().join("ids.csv");
    std::fs::write(&malformed, format!("id,sent\n{},1\n", landline.id)).expect("file");
    let out = world.cli().run(&[
        "requeue",
        "--ids-file",
        &malformed.display().to_string(),
        "--yes",
    ]);
    assert_eq!(out.code, Some(7), "{}", out.all());
    assert!(out.stderr.contains("line 1"), "{}", out.stderr);
    assert_eq!(snapshot(&db), before);

    // A twin of the texted mobile (same phone, same test date: the same dedup key),
    // written not sent: requeued, the next run finds the key in the ledger.
    let today = chrono::Utc::now().date_naive().to_string();
    Connection::open(&db)
        .expect("open")
        .execute(
            "INSERT INTO recipients (id, phone, test_date) VALUES ('twin', ?1, ?2)",
            [&mobile.national, &today],
        )
        .expect("twin");
    sql(
        &db,
        "UPDATE ca_notify_state SET sent = 0, outcome = 'not_sent', reason = 'gave_up:unavailable',
             processed_at = '2026-01-01T00:00:00.000Z' WHERE record_id = ?1",
        "twin",
    );
    let ids = world.dir.path().join("ids.txt");
    std::fs::write(&ids, "# twin of a texted record\ntwin\n").expect("ids");
    let ids = ids.display().to_string();
    let dry = world.cli().run(&["requeue", "--ids-file", &ids]);
    assert_eq!(dry.code, Some(0), "{}", dry.all());
    assert!(dry.stdout.contains("Would requeue 1"), "{}", dry.stdout);
    assert_eq!(world.state()["twin"].outcome.as_deref(), Some("not_sent"));
    let done = world
        .cli()
        .run(&["requeue", "--ids-file", &ids, "--yes", "--json"]);
    assert_eq!(json(&done)["requeued"], 1, "{}", done.all());
    assert_eq!(world.state()["twin"].outcome, None);
    let by_reason = json(
        &world
            .cli()
            .run(&["requeue", "--reason", "not_sms_capable", "--json"]),
    );
    assert_eq!(
        (
            by_reason["requeued"].as_u64(),
            by_reason["applied"].as_bool()
        ),
        (Some(1), Some(false))
    );

    let again = world.cli().run(&["run", "--until-drained"]);
    assert_eq!(again.code, Some(0), "{}", again.all());
    assert_eq!(
        world.state()["twin"].outcome.as_deref(),
        Some("already_sent")
    );
    assert_eq!(
        world.state()["twin"].reason.as_deref(),
        Some("texted_before")
    );
    assert_eq!(
        world.verification.ledger().texts_to(&mobile.e164()),
        1,
        "the ledger stopped a second text"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_purge_and_export_to_standard_output() {
    let world = World::start(10, TwilioSimConfig::default(), SimConfig::default()).await;
    let run = world.cli().run(&["run", "--until-drained"]);
    assert_eq!(run.code, Some(0), "{}", run.all());
    let db = world.db();
    let mobile = world
        .people
        .iter()
        .find(|p| p.kind == Kind::Mobile)
        .expect("a mobile");
    // The server holds its code: make the record unconfirmed, as a failed attempt would.
    sql(
        &db,
        "UPDATE ca_notify_state SET sent = 0, outcome = 'unconfirmed', reason = 'uuid_exists_after_failure'
          WHERE record_id = ?1",
        &mobile.id,
    );
    let uuid: String = Connection::open(&db)
        .expect("open")
        .query_row(
            "SELECT dedup_uuid FROM ca_notify_state WHERE record_id = ?1",
            [&mobile.id],
            |r| r.get(0),
        )
        .expect("uuid");

    let before = snapshot(&db);
    let down = world
        .cli()
        .env("CA_NOTIFY__VERIFICATION__BASE_URL", "http://127.0.0.1:9")
        .run(&["reconcile"]);
    assert_eq!(down.code, Some(9), "{}", down.all());
    assert!(down.stderr.contains("unavailable"), "{}", down.stderr);
    assert_eq!(
        snapshot(&db),
        before,
        "a server that is down changes nothing"
    );

    let unclaimed = json(&world.cli().run(&["reconcile", "--json"]));
    assert_eq!(
        (
            unclaimed["checked"].as_u64(),
            unclaimed["confirmed"].as_u64()
        ),
        (Some(1), Some(0))
    );
    assert!(
        world.verification.claim_code(&uuid),
        "the person entered the code"
    );
    let dry = json(&world.cli().run(&["reconcile", "--dry-run", "--json"]));
    assert_eq!(
        (dry["confirmed"].as_u64(), dry["applied"].as_bool()),
        (Some(1), Some(false))
    );
    assert_eq!(
        world.state()[&mobile.id].outcome.as_deref(),
        Some("unconfirmed")
    );
    let done = world.cli().run(&["reconcile"]);
    assert_eq!(done.code, Some(0), "{}", done.all());
    let row = &world.state()[&mobile.id];
    assert_eq!(
        (row.outcome.as_deref(), row.reason.as_deref()),
        (Some("sent"), Some("confirmed_by_claim"))
    );

    let before = snapshot(&db);
    let inside = world.cli().run(&["purge", "--older-than", "7", "--yes"]);
    assert_eq!(inside.code, Some(10), "{}", inside.all());
    assert!(inside.stderr.contains("retention"), "{}", inside.stderr);
    assert_eq!(snapshot(&db), before);
    Connection::open(&db)
        .expect("open")
        .execute(
            "UPDATE ca_notify_state SET processed_at = '2020-01-01T00:00:00.000Z'
              WHERE processed_at IS NOT NULL",
            [],
        )
        .expect("backdate");
    let counted = json(&world.cli().run(&["purge", "--older-than", "30", "--json"]));
    assert_eq!(
        (counted["records"].as_u64(), counted["applied"].as_bool()),
        (Some(10), Some(false))
    );
    let phones: i64 = Connection::open(&db)
        .expect("open")
        .query_row(
            "SELECT count(*) FROM recipients WHERE phone <> ''",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(phones, 10, "counting erased nothing");
    let purged = world.cli().run(&["purge", "--older-than", "30", "--yes"]);
    assert_eq!(purged.code, Some(0), "{}", purged.all());
    let phones: i64 = Connection::open(&db)
        .expect("open")
        .query_row(
            "SELECT count(*) FROM recipients WHERE phone <> ''",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(phones, 0, "every finished record's phone is erased");
    let status = json(&world.cli().run(&["status", "--json"]));
    assert_eq!(status["purged"], 10);
    assert_eq!(status["last_runs"][0]["end"]["stop"], "purge", "{status}");

    let export = world.cli().run(&["export", "-"]);
    assert_eq!(export.code, Some(0), "{}", export.all());
    assert!(
        !world.dir.path().join("-").exists(),
        "`-` is standard output, not a file"
    );
    let mut reader = csv::Reader::from_reader(export.stdout.as_bytes());
    assert_eq!(
        reader.headers().expect("header").iter().collect::<Vec<_>>(),
        [
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
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 10);
    for row in &rows {
        if &row[2] == "sent" && row[0] != *mobile.id {
            assert_eq!(&row[3], "", "no reason on a sent row: {row:?}");
        }
        assert!(row[4].parse::<u32>().expect("attempts") >= 1, "{row:?}");
    }
    for p in &world.people {
        assert!(
            !export.stdout.contains(&p.national),
            "a phone in the export"
        );
    }
    assert!(
        export.stderr.contains("Exported 10 records"),
        "{}",
        export.stderr
    );
}

#[test]
fn completions_and_the_man_page_come_from_the_parser() {
    for shell in ["bash", "zsh", "fish"] {
        let out = crate::ca_notify().run(&["completions", shell]);
        assert_eq!(out.code, Some(0), "{}", out.all());
        for command in ["requeue", "reconcile", "purge", "status"] {
            assert!(out.stdout.contains(command), "{shell} lacks {command}");
        }
    }
    let bad = crate::ca_notify().run(&["completions", "cmd.exe"]);
    assert_eq!(bad.code, Some(2), "{}", bad.all());
    let man = crate::ca_notify().run(&["man"]);
    assert_eq!(man.code, Some(0), "{}", man.all());
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH ca-notify 1"),
        "{}",
        man.stdout
    );
    assert!(man.stdout.contains(".TH ca-notify"), "{}", man.stdout);
    assert!(man.stdout.contains("requeue"), "the subcommands are listed");
}
