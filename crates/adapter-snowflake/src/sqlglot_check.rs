//! Every statement the store can build, parsed by a real SQL parser for Snowflake's
//! dialect: sqlglot, from the Python environment the fakesnow tests already use
//! (`scripts/start-fakesnow.sh --install-only`; `CA_NOTIFY_FAKESNOW_PYTHON` overrides).
//! `tests/sqlglot/check_statements.py` also refuses a bind where Snowflake needs a constant
//! (`LIMIT`, `OFFSET`, `SAMPLE`, the unit of `DATEADD`, DDL). The test fails, never skips,
//! when Python or sqlglot is missing.
//!
//! The catalog covers every builder of `sql.rs`, `schema.rs` and `runs.rs` (a second test
//! reads them and fails on a builder the catalog does not name), each on several
//! configurations: every optional column or none, quoted names with spaces, a source table
//! in another database.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use ca_notify_domain::{ClaimToken, RecordId};

use crate::admin_sql::{self, RequeueFilter};
use crate::config::tests::config;
use crate::config::Names;
use crate::schema::{self, MIGRATIONS};
use crate::sql::{self, AttemptRow, Limit, OutcomeRow, Sql, WriteAction};

/// Configurations whose names reach SQL differently.
fn name_variants() -> Vec<Names> {
    let mut all_columns = config();
    all_columns.table.symptom_date_column = Some("symptom_onset".into());
    all_columns.table.test_type_column = Some("\"Test Type\"".into());
    all_columns.table.tz_offset_column = Some("tz".into());
    all_columns.table.arrived_at_column = Some("loaded_at".into());
    let mut none = config();
    none.table.test_date_column = None;
    let mut quoted = config();
    quoted.table.name = "\"Other DB\".\"Intake\".\"Positive Results\"".into();
    quoted.table.phone_column = "\"Phone Number\"".into();
    quoted.state_table = "\"Notify State\"".into();
    [config(), all_columns, none, quoted]
        .iter()
        .map(|c| c.names().expect("valid names"))
        .collect()
}

fn outcome(id: &str, action: WriteAction) -> OutcomeRow {
    OutcomeRow {
        id: RecordId::new(id),
        sent: action.is_final().then_some(1),
        outcome: action.is_final().then(|| "sent".to_owned()),
        reason: Some("deadline".to_owned()),
        dedup_uuid: Some("00000000-0000-8000-8000-000000000001".to_owned()),
        action,
    }
}

fn attempt(id: &str, index: i64) -> AttemptRow {
    AttemptRow {
        dedup_uuid: "00000000-0000-8000-8000-000000000001".to_owned(),
        id: RecordId::new(id),
        index,
        answer: "issued",
    }
}

/// Every statement, labelled by the builder that made it.
fn catalog() -> Vec<(String, Sql)> {
    let token = ClaimToken::new("3f0c6a52-6c1e-4a55-9a43-2b1d8e0f7c11");
    let ids = [RecordId::new("1"), RecordId::new("2")];
    let rows = [
        outcome("1", WriteAction::Final),
        outcome("2", WriteAction::Release),
        outcome("3", WriteAction::Hold),
    ];
    let attempts = [attempt("1", 0), attempt("1", 1)];
    let uuids = ["a".to_owned(), "b".to_owned()];
    let run_id = ca_notify_ports::RunId::parse("run-1").expect("valid");
    let run_start = ca_notify_ports::RunStart {
        id: run_id.clone(),
        worker: "worker-1".to_owned(),
        started_at: chrono::Utc::now(),
    };
    let run_end = ca_notify_ports::RunEnd {
        ended_at: chrono::Utc::now(),
        succeeded: true,
        stop: "drained".to_owned(),
        counts: ca_notify_ports::RunCounts::default(),
    };
    let mut out: Vec<(String, Sql)> = Vec::new();
    let mut add = |label: &str, sql: Sql| out.push((label.to_owned(), sql));
    for n in name_variants() {
        add("claim_hint", sql::claim_hint(&n));
        add("run_status", sql::run_status(&n));
        add("begin", sql::begin());
        add("commit", sql::commit());
        add("rollback", sql::rollback());
        add("take_claim_lock", sql::take_claim_lock(&n, "worker-1"));
        for limit in [
            Limit::clamped(1),
            Limit::clamped(100),
            Limit::clamped(usize::MAX),
        ] {
            add("adopt", sql::adopt(&n, limit));
            add("claim", sql::claim(&n, &token, "w", 60_000, limit));
            add("peek", sql::peek(&n, limit));
        }
        add("read_claimed", sql::read_claimed(&n, &token));
        add("backlog", sql::backlog(&n));
        add("release", sql::release(&n, &token, &ids));
        add("release", sql::release(&n, &token, &ids[..1]));
        add(
            "write_back",
            sql::write_back(&n, &token, Some("run-1"), &rows),
        );
        add("write_back", sql::write_back(&n, &token, None, &rows[..1]));
        add(
            "finish_run",
            crate::runs::finish_run(&n, &run_id, Some(&run_start), &run_end),
        );
        add(
            "finish_run",
            crate::runs::finish_run(&n, &run_id, None, &run_end),
        );
        add(
            "record_idle_run",
            crate::runs::record_idle_run(&n, crate::schema::latest_version(), &run_start),
        );
        add("recent_runs", crate::runs::recent_runs(&n, 5));
        // The operator's commands (`admin_sql.rs`).
        let id_texts = ["1", "2"];
        add(
            "requeue_candidates",
            admin_sql::requeue_candidates(&n, &ids),
        );
        add("source_ids", admin_sql::source_ids(&n, &id_texts));
        for filter in [
            RequeueFilter::Ids(&id_texts),
            RequeueFilter::Reason(ca_notify_domain::NotSentKind::NotSmsCapable),
            RequeueFilter::Unconfirmed,
        ] {
            add(
                "count_requeueable",
                admin_sql::count_requeueable(&n, filter),
            );
            add("requeue", admin_sql::requeue(&n, filter));
        }
        add("status_counts", admin_sql::status_counts(&n));
        add("not_sent_by_kind", admin_sql::not_sent_by_kind(&n));
        add("deferred_by_reason", admin_sql::deferred_by_reason(&n));
        add(
            "count_purgeable",
            admin_sql::count_purgeable(&n, chrono::Utc::now()),
        );
        for limit in [1, 500, usize::MAX] {
            add("export_page", admin_sql::export_page(&n, "", limit));
            add(
                "unconfirmed_page",
                admin_sql::unconfirmed_page(&n, "r-9", limit),
            );
        }
        add(
            "confirm_sent",
            admin_sql::confirm_sent(
                &n,
                &ids[0],
                &ca_notify_domain::DedupKey::parse("6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f")
                    .expect("a uuid"),
            ),
        );
        add(
            "report_records",
            admin_sql::report_records(&n, chrono::Utc::now()),
        );
        add("last_success", crate::runs::last_success(&n));
        add(
            "append_attempts",
            sql::append_attempts(&n, &token, &attempts),
        );
        add("key_histories", sql::key_histories(&n, &uuids));
        add("tally_write", sql::tally_write(&n, &token, &ids));
        add("select_one", sql::select_one());
        add("probe", sql::probe(&n.source.table.sql(), &[]));
        add(
            "probe",
            sql::probe(&n.state.sql(), &["RECORD_ID".to_owned(), "SENT".to_owned()]),
        );
        add("read_binding", schema::read_binding(&n));
        add("record_binding", schema::record_binding(&n));
        add(
            "create_migrations_table",
            schema::create_migrations_table(&n),
        );
        add("current_version", schema::current_version(&n));
        for m in MIGRATIONS {
            add("record_version", schema::record_version(&n, m, "worker-1"));
            for text in (m.statements)(&n) {
                add(
                    &format!("migration v{}", m.version),
                    Sql {
                        text,
                        binds: Vec::new(),
                    },
                );
            }
        }
        for (role, warehouse) in [(Some("NOTIFIER"), Some("notify_wh")), (None, None)] {
            let script = schema::dba_script(&n, role, warehouse);
            for line in script.lines().filter(|l| !l.starts_with("--")) {
                add(
                    "dba_script",
                    Sql {
                        text: line.trim_end_matches(';').to_owned(),
                        binds: Vec::new(),
                    },
                );
            }
        }
    }
    out
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> String {
    std::env::var("CA_NOTIFY_FAKESNOW_PYTHON").unwrap_or_else(|_| {
        let venv = manifest_dir().join("tests/fakesnow/.venv/bin/python");
        if venv.exists() {
            venv.display().to_string()
        } else {
            "python3".to_owned()
        }
    })
}

/// Runs the checker on `statements`; its exit status and what it printed.
fn run_checker(statements: Vec<(String, Sql)>) -> (bool, String) {
    let entries: Vec<serde_json::Value> = statements
        .into_iter()
        .map(|(label, sql)| {
            serde_json::json!({ "label": label, "sql": sql.text, "binds": sql.binds.len() })
        })
        .collect();
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ca-notify-sqlglot-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("statements.json");
    std::fs::write(&file, serde_json::to_vec(&entries).expect("json")).expect("write");
    let python = python();
    let output = Command::new(&python)
        .arg(manifest_dir().join("tests/sqlglot/check_statements.py"))
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {python}: {e}; install it with `scripts/start-fakesnow.sh --install-only`")
        });
    let _ = std::fs::remove_dir_all(&dir);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

#[test]
fn every_statement_parses_as_snowflake_sql_with_constants_where_snowflake_needs_them() {
    let (ok, printed) = run_checker(catalog());
    assert!(ok, "sqlglot refused statements ({}):\n{printed}", python());
    assert!(printed.contains("statements parse"), "{printed}");
}

#[test]
fn the_check_refuses_a_bound_limit_a_non_statement_and_a_bind_count_mismatch() {
    let bad = |text: &str, binds: usize| Sql {
        text: text.to_owned(),
        binds: vec![sql::Value::Int(Some(1)); binds],
    };
    for (statement, why) in [
        (bad("SELECT a FROM t LIMIT ?", 1), "LIMIT"),
        (bad("SELEC x", 0), "not a statement"),
        (bad("SELECT a FROM t WHERE b = ?", 2), "placeholders for 2"),
        (bad("SELECT a FROM t LIMIT", 0), "does not parse"),
    ] {
        let (ok, printed) = run_checker(vec![("bad".to_owned(), statement)]);
        assert!(
            !ok,
            "the checker accepted a statement that {why}: {printed}"
        );
        assert!(printed.contains(why), "{why}: {printed}");
    }
}

/// The names of the statement builders in `file`: `pub(crate) fn` items whose signature
/// returns `Sql`.
fn builders(file: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest_dir().join(file)).expect("source");
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices("pub(crate) fn ") {
        let rest = &text[i + "pub(crate) fn ".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let signature = rest.split('{').next().unwrap_or_default();
        if signature.contains("-> Sql") {
            found.insert(name);
        }
    }
    found
}

#[test]
fn the_catalog_names_every_statement_builder() {
    let labels: BTreeSet<String> = catalog().into_iter().map(|(label, _)| label).collect();
    let mut missing = Vec::new();
    for file in [
        "src/sql.rs",
        "src/schema.rs",
        "src/runs.rs",
        "src/admin_sql.rs",
    ] {
        let found = builders(file);
        assert!(!found.is_empty(), "no builder found in {file}");
        missing.extend(found.into_iter().filter(|b| !labels.contains(b)));
    }
    assert!(
        missing.is_empty(),
        "statement builders the sqlglot check does not cover: {missing:?}"
    );
    for m in MIGRATIONS {
        assert!(labels.contains(&format!("migration v{}", m.version)));
    }
}
