//! CLI tests: the built `ca-notify` binary, as an operator runs it.

use std::path::Path;

use ca_notify_integration_tests::Cli;
use serde_json::Value;

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/csv")
        .join(name)
        .display()
        .to_string()
}

fn store_env(dir: &Path) -> Cli {
    Cli::new().env(
        "CA_NOTIFY__STORE__PATH",
        dir.join("store.db").display().to_string(),
    )
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
    let out = Cli::new().current_dir(dir.path()).run(&[
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
