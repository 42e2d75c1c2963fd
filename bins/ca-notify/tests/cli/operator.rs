//! The operator's day on the built binary, each command on both stores — SQLite and
//! Snowflake (fakesnow) — from one seeding (`operator_world.rs`): `status` (its JSON
//! against the seeded records), `requeue` (its dry run, refusals, bad input, and the
//! ledger that still stops a second text), `reconcile` (a claimed code, a server that is
//! down), `purge` (inside and past retention, the runs table), `export -`, `report --html`
//! (the browser check is `report.rs`, SQLite only: the page is made from the store's
//! report rows by the same code for both), and the generated completions and man page.
//!
//! Every refusal and bad input must exit with its code, say why, and leave every row of
//! the state, source and runs tables as it was. On Snowflake, the commands run before
//! `ca-notify migrate` name it and change nothing.

use ca_notify_integration_tests::{CliOutput, Kind, Person};
use serde_json::Value;

use crate::operator_world::{OperatorWorld, StoreKind};

/// Declares `mod name { fn sqlite(); fn snowflake(); }` running `name(kind)` on each store.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use crate::operator_world::StoreKind;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(StoreKind::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn snowflake() {
                super::$name(StoreKind::Snowflake).await;
            }
        }
    )*};
}

on_both_stores!(status, requeue, reconcile, purge, export, report);

fn json(out: &CliOutput) -> Value {
    assert_eq!(out.code, Some(0), "{}", out.all());
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.all()))
}

fn first(world: &OperatorWorld, kind: Kind) -> &Person {
    world
        .world
        .people
        .iter()
        .find(|p| p.kind == kind)
        .unwrap_or_else(|| panic!("a {kind:?}"))
}

/// Ten recipients, one run until drained: 7 mobiles and a duplicate texted, a landline
/// and an invalid number not.
async fn drained(kind: StoreKind) -> OperatorWorld {
    let world = OperatorWorld::start(kind, 10).await;
    let run = world.run(&["run", "--until-drained"]);
    assert_eq!(run.code, Some(0), "{}", run.all());
    world
}

async fn status(kind: StoreKind) {
    let world = OperatorWorld::start(kind, 10).await;
    let before = json(&world.run(&["status", "--json"]));
    assert_eq!(
        (
            before["total"].as_u64(),
            before["pending"].as_u64(),
            before["sent"].as_u64()
        ),
        (Some(10), Some(10), Some(0)),
        "{before}"
    );
    assert_eq!(before["last_runs"], serde_json::json!([]), "{before}");
    // SQLite stamps each record's arrival; Snowflake reads `source.arrived_at_column`.
    let age = before["oldest_pending_age_secs"].as_i64();
    assert!(age.is_some_and(|a| (0..3600).contains(&a)), "{before}");
    if kind == StoreKind::Snowflake {
        let undated = json(&world.run_without_arrival_column(&["status", "--json"]));
        assert_eq!(undated["pending"].as_u64(), Some(10), "{undated}");
        assert_eq!(undated["oldest_pending_since"], Value::Null, "{undated}");
        let text = world.run_without_arrival_column(&["status"]);
        assert!(
            text.stdout.contains("set source.arrived_at_column"),
            "{}",
            text.stdout
        );
    }

    let run = world.run(&["run", "--until-drained"]);
    assert_eq!(run.code, Some(0), "{}", run.all());
    let status = json(&world.run(&["status", "--json"]));
    let texted = world
        .world
        .people
        .iter()
        .filter(|p| matches!(p.kind, Kind::Mobile | Kind::Duplicate))
        .count() as u64;
    for (field, expected) in [
        ("total", 10),
        ("pending", 0),
        ("claimed", 0),
        ("sent", texted),
        ("unconfirmed", 0),
        ("purged", 0),
    ] {
        assert_eq!(status[field].as_u64(), Some(expected), "{field}: {status}");
    }
    assert_eq!(
        status["not_sent"],
        serde_json::json!({"invalid_number": 1, "not_sms_capable": 1}),
        "{status}"
    );
    assert_eq!(status["deferred"], serde_json::json!({}), "{status}");
    assert_eq!(status["claims_expire_by"], Value::Null, "{status}");
    assert_eq!(
        status["oldest_pending_age_secs"],
        Value::Null,
        "nothing pending"
    );
    let last = &status["last_runs"][0];
    assert_eq!(
        (
            last["end"]["succeeded"].as_bool(),
            last["end"]["counts"]["sent"]
                .as_u64()
                .zip(last["end"]["counts"]["already_sent"].as_u64())
                .map(|(sent, already)| sent + already),
            last["end"]["counts"]["not_sent"].as_u64()
        ),
        (Some(true), Some(texted), Some(2)),
        "{status}"
    );

    // The landline back to pending, then claimed by another worker for ten minutes.
    let landline = first(&world, Kind::Landline).id.clone();
    let requeued = json(&world.run(&["requeue", "--ids", &landline, "--yes", "--json"]));
    assert_eq!(requeued["requeued"].as_u64(), Some(1), "{requeued}");
    let lease_end = chrono::Utc::now() + chrono::Duration::minutes(10);
    let lease = world.lease_until(lease_end);
    let claimed = world
        .execute(
            "UPDATE {state} SET claim_token = 'held', claimed_by = 'another-worker', \
             lease_until = ? WHERE record_id = ?",
            &[&lease, &landline],
        )
        .await;
    assert_eq!(claimed, 1);
    let status = json(&world.run(&["status", "--json"]));
    assert_eq!(
        (
            status["pending"].as_u64(),
            status["claimed"].as_u64(),
            status["not_sent"]["not_sms_capable"].as_u64()
        ),
        (Some(0), Some(1), None),
        "{status}"
    );
    let expires: chrono::DateTime<chrono::Utc> = status["claims_expire_by"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("a lease end: {status}"));
    assert!(
        (expires - lease_end).num_seconds().abs() <= 1,
        "the lease ends at {lease_end}, status says {expires}"
    );
    let text = world.run(&["status"]);
    assert_eq!(text.code, Some(0), "{}", text.all());
    assert!(text.stdout.contains("not sent"), "{}", text.stdout);
    assert!(
        text.stdout.contains("every lease ends by"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains(last["id"].as_str().expect("a run id")),
        "{}",
        text.stdout
    );
}

async fn requeue(kind: StoreKind) {
    let world = drained(kind).await;
    let mobile = first(&world, Kind::Mobile).clone();
    let landline = first(&world, Kind::Landline).clone();
    let before = world.snapshot().await;
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
        (vec!["requeue", "--ids", " , ", "--yes"], 10, "empty"),
        (
            vec!["requeue", "--reason", "landline", "--yes"],
            2,
            "unknown reason",
        ),
        (vec!["requeue", "--yes"], 2, "required"),
    ] {
        let out = world.run(&args);
        assert_eq!(out.code, Some(code), "{args:?}: {}", out.all());
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
        world.assert_unchanged(&before, &format!("{args:?}")).await;
    }
    let dir = world.world.dir.path();
    for (name, text, says) in [
        ("ids.csv", format!("id,sent\n{},1\n", landline.id), "line 1"),
        ("empty.txt", "# no ids here\n\n".to_owned(), "no record id"),
    ] {
        let file = dir.join(name);
        std::fs::write(&file, text).expect("file");
        let out = world.run(&[
            "requeue",
            "--ids-file",
            &file.display().to_string(),
            "--yes",
        ]);
        assert_eq!(out.code, Some(7), "{name}: {}", out.all());
        assert!(out.stderr.contains(says), "{name}: {}", out.stderr);
        world.assert_unchanged(&before, name).await;
    }
    let missing = world.run(&["requeue", "--ids-file", "/nonexistent/ids.txt", "--yes"]);
    assert_eq!(missing.code, Some(7), "{}", missing.all());
    world.assert_unchanged(&before, "a missing ids file").await;
    // Bad input is refused before the store is opened: with no store to reach, it still
    // gets its own answer, not a store failure (exit 5).
    let unreachable = world
        .cli()
        .env("CA_NOTIFY__STORE__PATH", "/nonexistent/dir/state.db")
        .env("CA_NOTIFY__SNOWFLAKE__BASE_URL", "http://127.0.0.1:9");
    for (args, code) in [
        (vec!["requeue", "--ids", " , ", "--yes"], 10),
        (vec!["requeue", "--ids-file", "/nonexistent/ids.txt"], 7),
        (vec!["requeue", "--yes"], 2),
    ] {
        let out = world.run_cli(&unreachable, &args);
        assert_eq!(out.code, Some(code), "{args:?}: {}", out.all());
    }
    let reachable_needed = world.run_cli(&unreachable, &["requeue", "--ids", "x"]);
    assert_eq!(
        reachable_needed.code,
        Some(5),
        "the unreachable store is not what the test thinks: {}",
        reachable_needed.all()
    );

    // A twin of the texted mobile (same phone, same test date: the same dedup key). New
    // in the source, it is pending, which requeue refuses.
    let today = chrono::Utc::now().date_naive().to_string();
    world
        .execute(
            "INSERT INTO {source} (id, phone, test_date) VALUES ('twin', ?, ?)",
            &[&mobile.national, &today],
        )
        .await;
    let pending = world.snapshot().await;
    let out = world.run(&["requeue", "--ids", "twin", "--yes"]);
    assert_eq!(out.code, Some(10), "{}", out.all());
    assert!(out.stderr.contains("still pending"), "{}", out.stderr);
    world
        .assert_unchanged(&pending, "requeue of a pending record")
        .await;

    // Written not sent by an earlier run: requeued, the next run finds the key in the
    // ledger and texts no one.
    world
        .write_not_sent("twin", "not_sent", "gave_up:unavailable")
        .await;
    let ids = dir.join("ids.txt");
    std::fs::write(&ids, "# twin of a texted record\ntwin\n").expect("ids");
    let ids = ids.display().to_string();
    let written = world.snapshot().await;
    let dry = world.run(&["requeue", "--ids-file", &ids]);
    assert_eq!(dry.code, Some(0), "{}", dry.all());
    assert!(dry.stdout.contains("Would requeue 1"), "{}", dry.stdout);
    world.assert_unchanged(&written, "a dry run").await;
    let done = json(&world.run(&["requeue", "--ids-file", &ids, "--yes", "--json"]));
    assert_eq!(
        (done["requeued"].as_u64(), done["applied"].as_bool()),
        (Some(1), Some(true)),
        "{done}"
    );
    assert_eq!(world.outcomes().await["twin"], (None, None));
    let by_reason = json(&world.run(&["requeue", "--reason", "not_sms_capable", "--json"]));
    assert_eq!(
        (
            by_reason["requeued"].as_u64(),
            by_reason["applied"].as_bool()
        ),
        (Some(1), Some(false))
    );
    let outcome = json(&world.run(&["requeue", "--outcome", "unconfirmed", "--json"]));
    assert_eq!(outcome["requeued"].as_u64(), Some(0), "{outcome}");

    let again = world.run(&["run", "--until-drained"]);
    assert_eq!(again.code, Some(0), "{}", again.all());
    assert_eq!(
        world.outcomes().await["twin"],
        (
            Some("already_sent".to_owned()),
            Some("texted_before".to_owned())
        )
    );
    assert_eq!(
        world.world.verification.ledger().texts_to(&mobile.e164()),
        1,
        "the ledger stopped a second text"
    );
}

async fn reconcile(kind: StoreKind) {
    let world = drained(kind).await;
    let mobile = first(&world, Kind::Mobile).clone();
    // The server holds its code: make the record unconfirmed, as a failed attempt would.
    world
        .write_not_sent(&mobile.id, "unconfirmed", "uuid_exists_after_failure")
        .await;
    let uuid = world.uuid_of(&mobile.id).await;

    let before = world.snapshot().await;
    let down = world.run_cli(
        &world
            .cli()
            .env("CA_NOTIFY__VERIFICATION__BASE_URL", "http://127.0.0.1:9"),
        &["reconcile"],
    );
    assert_eq!(down.code, Some(9), "{}", down.all());
    assert!(down.stderr.contains("unavailable"), "{}", down.stderr);
    world
        .assert_unchanged(&before, "reconcile with the server down")
        .await;

    let unclaimed = json(&world.run(&["reconcile", "--json"]));
    assert_eq!(
        (
            unclaimed["checked"].as_u64(),
            unclaimed["confirmed"].as_u64()
        ),
        (Some(1), Some(0))
    );
    world
        .assert_unchanged(&before, "reconcile of an unclaimed code")
        .await;
    assert!(
        world.world.verification.claim_code(&uuid),
        "the person entered the code"
    );
    let dry = json(&world.run(&["reconcile", "--dry-run", "--json"]));
    assert_eq!(
        (dry["confirmed"].as_u64(), dry["applied"].as_bool()),
        (Some(1), Some(false))
    );
    world.assert_unchanged(&before, "a dry run").await;
    let done = world.run(&["reconcile"]);
    assert_eq!(done.code, Some(0), "{}", done.all());
    assert!(done.stdout.contains("1 code(s) claimed"), "{}", done.stdout);
    assert_eq!(
        world.outcomes().await[&mobile.id],
        (
            Some("sent".to_owned()),
            Some("confirmed_by_claim".to_owned())
        )
    );
    assert_eq!(
        world.world.verification.ledger().texts_to(&mobile.e164()),
        1,
        "reconcile texts no one"
    );
}

async fn purge(kind: StoreKind) {
    let world = drained(kind).await;
    let before = world.snapshot().await;
    let inside = world.run(&["purge", "--older-than", "7", "--yes"]);
    assert_eq!(inside.code, Some(10), "{}", inside.all());
    assert!(inside.stderr.contains("retention"), "{}", inside.stderr);
    world
        .assert_unchanged(&before, "purge inside the retention period")
        .await;
    let young = json(&world.run(&["purge", "--older-than", "30", "--json"]));
    assert_eq!(
        young["records"].as_u64(),
        Some(0),
        "finished today: {young}"
    );

    let long_ago = world.timestamp(chrono::Utc::now() - chrono::Duration::days(400));
    world
        .execute(
            "UPDATE {state} SET processed_at = ? WHERE processed_at IS NOT NULL",
            &[&long_ago],
        )
        .await;
    let backdated = world.snapshot().await;
    let counted = json(&world.run(&["purge", "--older-than", "30", "--json"]));
    assert_eq!(
        (
            counted["records"].as_u64(),
            counted["sent"].as_u64(),
            counted["applied"].as_bool()
        ),
        (Some(10), Some(8), Some(false)),
        "{counted}"
    );
    world.assert_unchanged(&backdated, "counting").await;
    let text = world.run(&["purge", "--older-than", "30"]);
    assert_eq!(text.code, Some(0), "{}", text.all());
    assert!(text.stdout.contains("Would purge 10"), "{}", text.stdout);
    world.assert_unchanged(&backdated, "a dry run").await;

    let purged = json(&world.run(&["purge", "--older-than", "30", "--yes", "--json"]));
    assert_eq!(
        (purged["records"].as_u64(), purged["applied"].as_bool()),
        (Some(10), Some(true)),
        "{purged}"
    );
    let status = json(&world.run(&["status", "--json"]));
    let last = &status["last_runs"][0]["end"];
    assert_eq!(
        (last["stop"].as_str(), last["succeeded"].as_bool()),
        (Some("purge"), Some(true)),
        "{status}"
    );
    let outcomes = world.outcomes().await;
    assert!(
        outcomes.values().all(|(outcome, _)| outcome.is_some()),
        "outcomes stay: {outcomes:?}"
    );
    match kind {
        StoreKind::Sqlite => {
            assert_eq!(
                purged["erased_columns"][0], "phone",
                "the phone first: {purged}"
            );
            assert_eq!(world.phones_left().await, 0, "every phone is erased");
            assert_eq!(status["purged"].as_u64(), Some(10), "{status}");
        }
        // The source table is the state's: ca-notify never writes it, and its own tables
        // hold no personal data (docs/operations.md, "Retention").
        StoreKind::Snowflake => {
            assert_eq!(purged["erased_columns"], serde_json::json!([]), "{purged}");
            assert_eq!(
                world.phones_left().await,
                10,
                "the source table is untouched"
            );
            assert_eq!(
                status["purged"].as_u64(),
                Some(0),
                "nothing erased: {status}"
            );
        }
    }
    let again = world.run(&["run", "--until-drained"]);
    assert_eq!(again.code, Some(0), "{}", again.all());
    assert_eq!(
        world.world.verification.ledger().total(),
        7,
        "a purged record is texted again by no run"
    );
}

async fn export(kind: StoreKind) {
    let world = drained(kind).await;
    let export = world.run_cli(
        &world.cli().current_dir(world.world.dir.path()),
        &["export", "-"],
    );
    assert_eq!(export.code, Some(0), "{}", export.all());
    assert!(
        !world.world.dir.path().join("-").exists(),
        "`-` is standard output, not a file"
    );
    assert!(
        export.stderr.contains("Exported 10 records"),
        "{}",
        export.stderr
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
    let ids: Vec<&str> = rows.iter().map(|r| &r[0]).collect();
    let mut expected: Vec<&str> = world.world.people.iter().map(|p| p.id.as_str()).collect();
    expected.sort_unstable();
    assert_eq!(ids, expected, "one row per record, in id order");
    let run_id = json(&world.run(&["status", "--json"]))["last_runs"][0]["id"]
        .as_str()
        .expect("the run's id")
        .to_owned();
    for (row, person) in rows.iter().zip(&world.world.people) {
        assert_eq!(&row[0], person.id, "ids sort as made");
        let (sent, outcome, reason) = (&row[1], &row[2], &row[3]);
        match (person.kind, outcome) {
            // One of a mobile and its duplicate is issued, the other is already sent.
            (Kind::Mobile | Kind::Duplicate, "sent") => {
                assert_eq!(
                    (sent, reason),
                    ("1", ""),
                    "no reason on a sent row: {row:?}"
                );
                assert!(!row[6].is_empty(), "a first attempt: {row:?}");
            }
            (Kind::Mobile | Kind::Duplicate, _) => {
                assert_eq!((sent, outcome), ("1", "already_sent"), "{row:?}");
            }
            (Kind::Landline, _) => {
                assert_eq!((sent, outcome), ("0", "not_sent"), "{row:?}");
                assert!(reason.starts_with("not_sms_capable:"), "{row:?}");
            }
            (Kind::Invalid, _) => {
                assert_eq!((sent, outcome), ("0", "not_sent"), "{row:?}");
                assert!(reason.starts_with("invalid_number:"), "{row:?}");
            }
        }
        assert!(row[4].parse::<u32>().expect("attempts") >= 1, "{row:?}");
        assert_eq!(&row[5], run_id, "the run that wrote it: {row:?}");
        assert!(!row[7].is_empty(), "processed: {row:?}");
        assert!(
            !export.stdout.contains(&person.national),
            "a phone in the export"
        );
    }
    let sent_rows = rows.iter().filter(|r| &r[2] == "sent").count();
    assert_eq!(sent_rows, 7, "one issued text per phone");
}

async fn report(kind: StoreKind) {
    let world = drained(kind).await;
    let page = world.world.dir.path().join("report.html");
    let figures = json(&world.run(&[
        "report",
        "--html",
        &page.display().to_string(),
        "--days",
        "7",
        "--json",
    ]));
    let today = &figures["days"][6];
    assert_eq!(
        today["date"].as_str(),
        Some(chrono::Utc::now().date_naive().to_string().as_str())
    );
    assert_eq!(today["sent"].as_u64(), Some(8), "{figures}");
    assert_eq!(
        today["not_sent"],
        serde_json::json!({"invalid_number": 1, "not_sms_capable": 1}),
        "{figures}"
    );
    // Tested today, texted today: hours since midnight, read from either store's dates.
    let median = today["median_hours"].as_f64().expect("a median");
    assert!((0.0..24.0).contains(&median), "{figures}");
    assert_eq!(figures["without_test_date"].as_u64(), Some(0), "{figures}");
    assert_eq!(figures["without_arrival"].as_u64(), Some(0), "{figures}");
    assert_eq!(today["backlog"].as_u64(), Some(0), "all decided: {figures}");
    let html = std::fs::read_to_string(&page).expect("the page is written");
    for chart in crate::report::CHARTS {
        assert!(html.contains(&format!("id=\"{chart}\"")), "{chart} missing");
    }
    for p in &world.world.people {
        assert!(!html.contains(&p.national), "a phone on the page");
    }
    let unwritable = world.run(&["report", "--html", "/nonexistent/dir/report.html"]);
    assert_eq!(unwritable.code, Some(5), "{}", unwritable.all());
}

/// On Snowflake the operator's commands make no table: before `ca-notify migrate` each
/// stops (exit 5), names the commands that tell what is missing and make it, and writes
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_migrate_snowflake_commands_name_check_and_migrate() {
    let world = OperatorWorld::start_without_state_tables(3).await;
    let source = world.query("SELECT * FROM {source} ORDER BY 1", &[]).await;
    let page = world.world.dir.path().join("report.html");
    let page = page.display().to_string();
    for args in [
        vec!["status"],
        vec!["requeue", "--ids", "r00000", "--yes"],
        vec!["requeue", "--reason", "gave_up", "--yes"],
        vec!["purge", "--older-than", "30", "--yes"],
        vec!["export", "-"],
        vec!["report", "--html", &page],
        vec!["reconcile"],
    ] {
        let out = world.run(&args);
        assert_eq!(out.code, Some(5), "{args:?}: {}", out.all());
        assert!(
            out.stderr
                .contains("`ca-notify migrate` makes the state tables"),
            "{args:?}: {}",
            out.stderr
        );
        // Compared, never printed: the source rows hold phone numbers.
        let now = world.query("SELECT * FROM {source} ORDER BY 1", &[]).await;
        assert!(now == source, "{args:?} changed the source table");
    }
    assert!(
        !std::path::Path::new(&page).exists(),
        "no page from a store that cannot be read"
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
