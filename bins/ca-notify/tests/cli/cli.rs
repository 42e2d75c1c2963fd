//! CLI tests: the built `ca-notify` binary, as an operator runs it.

use std::path::Path;

use ca_notify_domain::{DedupKey, DedupSecret, PhoneParser, RecordId};
use ca_notify_integration_tests::Cli;
use ca_notify_simulators::twilio::TwilioSimConfig;
use ca_notify_simulators::verification::SimConfig;
use serde_json::Value;

use crate::harness::{Kind, World};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/csv")
        .join(name)
        .display()
        .to_string()
}

fn store_env(dir: &Path) -> Cli {
    crate::ca_notify().env(
        "CA_NOTIFY__STORE__PATH",
        dir.join("store.db").display().to_string(),
    )
}

/// Without a subcommand the command says what it can do, and does nothing else: no demo
/// runs and no database file appears.
#[test]
fn no_subcommand_prints_the_help_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = crate::ca_notify().current_dir(dir.path()).run(&[]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    for command in ["run", "check", "import", "export"] {
        assert!(out.all().contains(command), "{}", out.all());
    }
    let created: Vec<_> = std::fs::read_dir(dir.path()).expect("read").collect();
    assert!(created.is_empty(), "{created:?}");
}

#[test]
fn batch_size_above_the_servers_limit_fails_naming_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = store_env(dir.path()).env("BATCH_SIZE", "11").run(&["run"]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(out.stderr.contains("batch_size"), "{}", out.stderr);
    assert!(out.stderr.contains("10"), "names the limit: {}", out.stderr);
    assert!(
        !dir.path().join("store.db").exists(),
        "nothing is opened or claimed on a configuration error"
    );
}

#[test]
fn check_print_config_never_prints_a_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = [
        ("CA_NOTIFY__DEDUP__SECRET", "dedup-secret-do-not-print-1"),
        ("CA_NOTIFY__VERIFICATION__API_KEY", "api-key-do-not-print-2"),
        (
            "CA_NOTIFY__TWILIO__AUTH_TOKEN",
            "twilio-token-do-not-print-3",
        ),
        (
            "CA_NOTIFY__SNOWFLAKE__PASSWORD",
            "snowflake-pw-do-not-print-4",
        ),
    ];
    let mut cli = store_env(dir.path())
        .env(
            "CA_NOTIFY__TWILIO__ACCOUNT_SID",
            "AC00000000000000000000000000000000",
        )
        .env("CA_NOTIFY__TWILIO__BASE_URL", "http://127.0.0.1:9")
        .env("CA_NOTIFY__VERIFICATION__BASE_URL", "http://127.0.0.1:9");
    for (key, value) in secrets {
        cli = cli.env(key, value);
    }
    let out = cli.run(&["check", "--print-config"]);
    let all = out.all();
    for (_, value) in secrets {
        assert!(!all.contains(value), "a secret was printed:\n{all}");
    }
    assert!(all.contains("[REDACTED]"), "{all}");
    assert!(all.contains("verification server"), "{all}");
    assert_ne!(out.code, Some(0), "nothing listens on port 9: {all}");
}

#[test]
fn import_of_a_malformed_csv_changes_nothing_and_names_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cli = store_env(dir.path());
    let ok = cli.run(&["import", &fixture("valid.csv")]);
    assert_eq!(ok.code, Some(0), "{}", ok.all());
    assert!(ok.stdout.contains("Imported 2"), "{}", ok.stdout);

    for (file, line) in [
        ("wrong-field-count-line-4.csv", "line 4"),
        ("repeated-id-line-4.csv", "line 4"),
    ] {
        let out = cli.run(&["import", &fixture(file)]);
        assert_eq!(out.code, Some(7), "{file}: {}", out.all());
        assert!(out.stderr.contains(line), "{file}: {}", out.stderr);
        assert!(
            !out.all().contains("555"),
            "no phone in the error: {}",
            out.all()
        );
    }

    let export = dir.path().join("out.csv");
    let out = cli.run(&["export", &export.display().to_string()]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let text = std::fs::read_to_string(&export).expect("export written");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("id,sent,outcome,reason,attempts,run_id,first_attempt_at,processed_at")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2, "only the valid file's records: {text}");
    assert!(
        rows.iter()
            .all(|r| r.starts_with("ok-") && r.contains("pending")),
        "{text}"
    );
    assert!(!text.contains("555"), "export holds no phone: {text}");
}

#[test]
fn demo_succeeds_and_its_summary_adds_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = dir.path().join("summary.json");
    let out = crate::ca_notify().current_dir(dir.path()).run(&[
        "demo",
        "--recipients",
        "600",
        "--summary-json",
        &summary.display().to_string(),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("json");
    let n = |key: &str| {
        report[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} in {report}"))
    };
    let sum = |key: &str| -> u64 {
        report[key]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0)
    };
    assert_eq!(n("claimed"), 600, "{report}");
    assert_eq!(
        n("sent") + n("already_sent") + sum("not_sent") + sum("deferred"),
        n("claimed"),
        "every claimed record has exactly one outcome: {report}"
    );
    assert!(
        n("sent") > 300,
        "most synthetic recipients are mobiles: {report}"
    );
    assert!(n("already_sent") > 0, "the duplicates are caught: {report}");
    assert!(
        sum("not_sent") > 0,
        "landlines and bad numbers are not texted: {report}"
    );
    assert!(out.stdout.contains("sent"), "{}", out.stdout);
}

/// After a run, a file with ids the store already processed is refused as a whole: the
/// error lists their lines (never their phones), and the new ids in it are not imported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_refuses_ids_with_a_final_outcome_naming_every_line() {
    let world = World::start(10, TwilioSimConfig::default(), SimConfig::default()).await;
    let run = world.cli().run(&["run", "--until-drained"]);
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert_eq!(world.written(), 10, "every record has a final outcome");

    let today = chrono::Utc::now().date_naive().to_string();
    let (a, b) = (&world.people[2], &world.people[7]);
    let file = world.dir.path().join("again.csv");
    std::fs::write(
        &file,
        format!(
            "id,phone,test_date\nnew-1,4155550199,{today}\n{},{},{today}\nnew-2,4155550198,{today}\n{},{},{today}\n",
            a.id, a.national, b.id, b.national
        ),
    )
    .expect("csv");
    let out = world.cli().run(&["import", &file.display().to_string()]);
    assert_eq!(out.code, Some(7), "{}", out.all());
    assert!(out.stderr.contains("lines 3 and 5"), "{}", out.stderr);
    assert!(out.stderr.contains("final outcome"), "{}", out.stderr);
    assert!(
        out.stderr.contains("nothing was imported"),
        "{}",
        out.stderr
    );
    for phone in [&a.national, &b.national, &"4155550199".to_owned()] {
        assert!(
            !out.all().contains(phone.as_str()),
            "a phone in the error: {}",
            out.all()
        );
    }
    let state = world.state();
    assert_eq!(state.len(), 10, "nothing was imported");
    assert!(!state.contains_key("new-1"));
}

/// A dedup secret of digits keeps its zeros: the uuids are those of the secret as
/// written (coerced to a number, `0000000000000001` was `1`, too short, and any other
/// secret of digits would have silently changed every uuid).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_of_digits_from_the_environment_is_used_as_written() {
    const WRITTEN: &str = "0000000000000001";
    let world = World::start(3, TwilioSimConfig::default(), SimConfig::default()).await;
    let run = world
        .cli()
        .env("CA_NOTIFY__DEDUP__SECRET", WRITTEN)
        .run(&["run", "--until-drained"]);
    assert_eq!(run.code, Some(0), "{}", run.all());

    let secret = DedupSecret::new(WRITTEN.to_owned().into()).expect("secret");
    let parser = PhoneParser::new("US").expect("parser");
    let today = chrono::Utc::now().date_naive();
    let conn = rusqlite::Connection::open(world.db()).expect("store");
    let mut checked = 0;
    for p in world.people.iter().filter(|p| p.kind == Kind::Mobile) {
        let stored: String = conn
            .query_row(
                "SELECT dedup_uuid FROM ca_notify_state WHERE record_id = ?1",
                [&p.id],
                |row| row.get(0),
            )
            .expect("a uuid was written");
        let phone = parser.parse(&p.national).expect("phone");
        let want = DedupKey::derive(&secret, &phone, Some(today), &RecordId::from(p.id.as_str()));
        assert_eq!(stored, want.to_string(), "{}", p.id);
        checked += 1;
    }
    assert!(checked > 0);

    // String settings keep their text too.
    let out = world
        .cli()
        .env("CA_NOTIFY__WORKER_ID", "0001")
        .env("CA_NOTIFY__VERIFICATION__SMS_TEMPLATE_LABEL", "1e3")
        .run(&["check", "--print-config"]);
    assert!(
        out.stdout.contains("worker_id = \"0001\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("sms_template_label = \"1e3\""),
        "{}",
        out.stdout
    );
}

/// A deadline of years or a lease margin of 0 stops the command before it opens
/// anything, naming the key and the range.
#[test]
fn durations_out_of_range_are_configuration_errors_not_panics() {
    for (key, value, named) in [
        (
            "CA_NOTIFY__PIPELINE__DEADLINE_SECS",
            "3153600000",
            "pipeline.deadline_secs",
        ),
        (
            "CA_NOTIFY__PIPELINE__LEASE_MARGIN_SECS",
            "0",
            "pipeline.lease_margin_secs",
        ),
        (
            "CA_NOTIFY__VERIFICATION__REQUEST_TIMEOUT_SECS",
            "18446744073709551615",
            "verification.request_timeout_secs",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = store_env(dir.path())
            .env("CA_NOTIFY__DEDUP__SECRET", "integration-test-dedup-secret")
            .env("CA_NOTIFY__VERIFICATION__BASE_URL", "http://127.0.0.1:9")
            .env("CA_NOTIFY__VERIFICATION__API_KEY", "key")
            .env(key, value)
            .run(&["run"]);
        assert_eq!(out.code, Some(2), "{key}: {}", out.all());
        assert!(out.stderr.contains(named), "{key}: {}", out.stderr);
        assert!(out.stderr.contains("allowed: "), "{key}: {}", out.stderr);
        assert!(!out.all().contains("panicked"), "{key}: {}", out.all());
        assert!(
            !dir.path().join("store.db").exists(),
            "nothing is opened on a configuration error"
        );
    }
}

/// `migrate` on SQLite opens (and so migrates) the file and says at which version it is;
/// `migrate --print` there explains that there is nothing for a DBA to run.
#[test]
fn migrate_on_sqlite_reports_the_schema_and_print_explains_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = store_env(dir.path()).run(&["migrate"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(out.stdout.contains("state schema v"), "{}", out.all());
    assert!(dir.path().join("store.db").exists());
    let printed = store_env(dir.path()).run(&["migrate", "--print"]);
    assert_eq!(printed.code, Some(0), "{}", printed.all());
    assert!(
        printed.stdout.contains("nothing for a DBA"),
        "{}",
        printed.all()
    );
}

/// `migrate --print` for Snowflake needs no connection (the account does not exist) and
/// no secret: it prints the DDL in order and the GRANTs for the configured role.
#[test]
fn migrate_print_for_snowflake_writes_ddl_and_grants_without_connecting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = crate::ca_notify()
        .current_dir(dir.path())
        .env("CA_NOTIFY__STORE__KIND", "snowflake")
        .env("CA_NOTIFY__SNOWFLAKE__ACCOUNT", "no-such-account")
        .env("CA_NOTIFY__SNOWFLAKE__USER", "CA_NOTIFY")
        .env("CA_NOTIFY__SNOWFLAKE__PASSWORD", "password-never-printed")
        .env("CA_NOTIFY__SNOWFLAKE__DATABASE", "COVID")
        .env("CA_NOTIFY__SNOWFLAKE__SCHEMA", "PUBLIC")
        .env("CA_NOTIFY__SNOWFLAKE__ROLE", "CA_NOTIFY_ROLE")
        .env("CA_NOTIFY__SNOWFLAKE__WAREHOUSE", "NOTIFY_WH")
        .env("CA_NOTIFY__SOURCE__TABLE", "POSITIVES")
        .run(&["migrate", "--print"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let script = &out.stdout;
    let state = script
        .find("CREATE TABLE IF NOT EXISTS \"COVID\".\"PUBLIC\".\"CA_NOTIFY_STATE\" (")
        .expect("the state table");
    let lock = script
        .find("CREATE TABLE IF NOT EXISTS \"COVID\".\"PUBLIC\".\"CA_NOTIFY_STATE_LOCK\" (")
        .expect("the claim lock");
    assert!(state < lock, "versions in order: {script}");
    assert!(
        script.contains(
            "GRANT SELECT ON TABLE \"COVID\".\"PUBLIC\".\"POSITIVES\" TO ROLE \"CA_NOTIFY_ROLE\";"
        ),
        "{script}"
    );
    assert!(
        script.contains("GRANT USAGE ON WAREHOUSE \"NOTIFY_WH\" TO ROLE \"CA_NOTIFY_ROLE\";"),
        "{script}"
    );
    assert!(!out.all().contains("password-never-printed"));
    assert!(
        std::fs::read_dir(dir.path())
            .expect("read")
            .next()
            .is_none(),
        "nothing created"
    );
}

/// Every log line of a run carries the run's id, the summary names it, and `-q` keeps
/// the info lines out; `--log-format text` prints the id before each message.
#[test]
fn every_log_line_of_a_run_carries_its_run_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = dir.path().join("summary.json");
    let out = crate::ca_notify().current_dir(dir.path()).run(&[
        "demo",
        "--in-memory",
        "--recipients",
        "40",
        "--log-format",
        "json",
        "--summary-json",
        &summary.display().to_string(),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("json");
    let run_id = report["run_id"].as_str().expect("run_id in the summary");
    assert_eq!(run_id.len(), 36, "{report}");
    assert!(
        out.stdout.contains(run_id),
        "the table names the run: {}",
        out.stdout
    );
    let lines: Vec<Value> = out
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let started = lines
        .iter()
        .position(|l| l["message"] == "Run started.")
        .unwrap_or_else(|| panic!("no start line: {}", out.stderr));
    let finished = lines
        .iter()
        .position(|l| l["message"] == "Run finished.")
        .unwrap_or_else(|| panic!("no finish line: {}", out.stderr));
    assert!(
        finished > started + 1,
        "the run logged nothing between: {}",
        out.stderr
    );
    for line in &lines[started..=finished] {
        let spans = line["spans"].as_array().expect("spans");
        assert!(
            spans.iter().any(|s| s["run_id"] == run_id),
            "a line without the run id: {line}"
        );
    }

    let quiet = crate::ca_notify().current_dir(dir.path()).run(&[
        "demo",
        "--in-memory",
        "--recipients",
        "40",
        "--log-format",
        "text",
        "-q",
    ]);
    assert_eq!(quiet.code, Some(0), "{}", quiet.all());
    assert!(!quiet.stderr.contains("Run started."), "{}", quiet.stderr);
    let text = crate::ca_notify().current_dir(dir.path()).run(&[
        "demo",
        "--in-memory",
        "--recipients",
        "40",
        "--log-format",
        "text",
        "--summary-json",
        &summary.display().to_string(),
    ]);
    assert_eq!(text.code, Some(0), "{}", text.all());
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("json");
    let run_id = report["run_id"].as_str().expect("run_id in the summary");
    let line = text
        .stderr
        .lines()
        .find(|l| l.contains("Run started."))
        .unwrap_or_else(|| panic!("no start line: {}", text.stderr));
    assert!(line.contains(&format!("run_id={run_id}")), "{line}");
}

/// A backlog one run's deadline cannot finish: a scheduled run stops at its deadline with
/// work left, `--until-drained` goes on in stretches of at most that deadline until the
/// store is empty, and an explicit `--deadline` still stops it. (The harness's request
/// timeout is 2 s, so an 8 s stretch starts requests until 5.8 s only: one request of
/// 1.5 s at a time, at most four, 40 codes a stretch, fewer after a slow start-up; the
/// records that need no request are decided beside them, up to the checks run ahead, so a
/// stretch writes about 60 of every 120. 240 people keep two stretches short of the end.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_drained_drains_past_the_run_deadline_and_keeps_an_explicit_one() {
    const PEOPLE: usize = 240;
    let world = World::start(
        PEOPLE,
        TwilioSimConfig::default(),
        SimConfig {
            latency: std::time::Duration::from_millis(1500),
            ..SimConfig::default()
        },
    )
    .await;
    let issuable = world
        .people
        .iter()
        .filter(|p| matches!(p.kind, Kind::Mobile | Kind::Duplicate))
        .count();
    assert!(
        issuable > 160,
        "more than two stretches can issue: {issuable}"
    );
    let cli = world
        .cli()
        .env("CA_NOTIFY__PIPELINE__DEADLINE_SECS", "8")
        .env("CA_NOTIFY__PIPELINE__MAX_BATCHES_IN_FLIGHT", "1");

    let scheduled = cli.run(&["run"]);
    assert_eq!(scheduled.code, Some(0), "{}", scheduled.all());
    let after_one = world.written();
    assert!(after_one < PEOPLE, "one run cannot drain it: {after_one}");

    // 9 s: one stretch of 8 s; a second of 1 s could not hold a 2 s request.
    let capped = cli.run(&["run", "--until-drained", "--deadline", "9"]);
    assert_eq!(capped.code, Some(0), "{}", capped.all());
    let after_capped = world.written();
    assert!(
        after_capped > after_one && after_capped < PEOPLE,
        "--deadline 9 allows one stretch: {after_one} then {after_capped}"
    );

    let drained = cli.run(&["run", "--until-drained"]);
    assert_eq!(drained.code, Some(0), "{}", drained.all());
    assert_eq!(world.written(), PEOPLE, "{}", drained.all());
    world.assert_exactly_once();
}

/// `--version` names the version and the commit it was built from: the checkout's, when
/// the source is a git checkout (build.rs), and `unknown` only when it is not.
#[test]
fn version_names_the_commit() {
    let out = crate::ca_notify().run(&["--version"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let line = out.stdout.trim();
    assert!(
        line.starts_with(&format!("ca-notify {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        Some(commit) => assert!(
            line.ends_with(&format!("(commit {commit})")),
            "{line} at {commit}"
        ),
        None => assert!(line.ends_with("(commit unknown)"), "{line}"),
    }
}

/// The lines a run logs while its job is built (here: a new SQLite file migrated) carry
/// the run's id as the run's own lines do, and the summary names the same id. The
/// verification server is unreachable, so the run issues nothing; that does not matter
/// here.
#[test]
fn the_lines_of_building_a_run_carry_its_run_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = dir.path().join("summary.json");
    let out = store_env(dir.path())
        .current_dir(dir.path())
        .env("CA_NOTIFY__VALIDATOR__KIND", "offline")
        .env(
            "CA_NOTIFY__DEDUP__SECRET",
            "a-dedup-secret-of-enough-length-000",
        )
        .env("CA_NOTIFY__VERIFICATION__BASE_URL", "http://127.0.0.1:9")
        .env("CA_NOTIFY__VERIFICATION__API_KEY", "not-a-real-key")
        .run(&[
            "run",
            "--log-format",
            "json",
            "--summary-json",
            &summary.display().to_string(),
        ]);
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(&summary).unwrap_or_else(|e| panic!("{e}: {}", out.all())),
    )
    .expect("json");
    let run_id = report["run_id"].as_str().expect("run_id in the summary");
    let migrated: Vec<Value> = out
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "Migrated the SQLite state schema.")
        .collect();
    assert!(!migrated.is_empty(), "no migration line: {}", out.stderr);
    for line in &migrated {
        let spans = line["spans"].as_array().cloned().unwrap_or_default();
        assert!(
            spans.iter().any(|s| s["run_id"] == run_id),
            "a build line without the run id: {line}"
        );
    }
}
