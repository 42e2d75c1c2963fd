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
    assert_eq!(lines.next(), Some("id,sent,outcome,reason,processed_at"));
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
