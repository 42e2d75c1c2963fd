//! The operator's port on SQLite: status counts, requeue (and its refusals), purge (and
//! what it keeps), the export's rows, and the confirmation of unconfirmed records.

mod support;

use std::path::Path;
use std::time::Duration;

use ca_notify_adapter_sqlite::SqliteStore;
use ca_notify_domain::{AttemptAnswer, NotSentKind, Outcome, RecordId};
use ca_notify_ports::admin::{AdminError, RequeueSelection, StoreAdmin, CONFIRMED_BY_CLAIM};
use ca_notify_ports::{PhoneSource, ResultSink, RunId, RunStart};
use ca_notify_store_contract::fixtures::{
    key_of, operator_day_records, outcome, write_operator_day, OutcomeExt,
};
use chrono::{Duration as Days, Utc};
use rusqlite::Connection;
use support::{open, seed, Harness};

const LEASE: Duration = Duration::from_secs(600);

fn id(s: &str) -> RecordId {
    RecordId::from(s)
}

/// The operator's day of the contract suite (`fixtures::write_operator_day`): 1 sent,
/// 2 invalid number, 3 deferred, 4 unconfirmed, 5 gave up, 6 never claimed.
async fn fixture(path: &Path) -> SqliteStore {
    let store = open(path, "w").await;
    seed(path, &operator_day_records());
    write_operator_day(&store).await;
    store
}

/// Every state row as text, to prove that a refusal changed nothing.
fn snapshot(path: &Path) -> Vec<String> {
    let conn = Connection::open(path).expect("open");
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

fn source_row(path: &Path, id: &str) -> (Option<String>, Option<String>, Option<String>) {
    Connection::open(path)
        .expect("open")
        .query_row(
            "SELECT phone, test_date, symptom_date FROM recipients WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("source row")
}

#[tokio::test]
async fn status_counts_every_state_in_one_read() {
    let h = Harness::new();
    let path = h.new_path();
    let store = fixture(&path).await;
    let claim = store.claim(1, LEASE).await.expect("claim the rest");
    assert_eq!(claim.records.len(), 1, "one of 3 (deferred) and 6");
    let status = store.status(Utc::now()).await.expect("status");
    assert_eq!(status.total, 6);
    assert_eq!((status.pending, status.claimed), (1, 1));
    assert!(status.claims_expire_by.expect("a live lease") > Utc::now());
    assert_eq!(status.sent, 1);
    assert_eq!(status.unconfirmed, 1);
    assert_eq!(
        status.not_sent.into_iter().collect::<Vec<_>>(),
        [("gave_up".to_owned(), 1), ("invalid_number".to_owned(), 1)]
    );
    let oldest = status.oldest_pending_since.expect("arrival is kept");
    assert!(Utc::now() - oldest < Days::minutes(5), "{oldest}");
    assert_eq!(status.purged, 0);
    let later = store
        .status(Utc::now() + Days::hours(1))
        .await
        .expect("status after the lease");
    assert_eq!((later.pending, later.claimed), (2, 0));
    assert_eq!(
        later.deferred.into_iter().collect::<Vec<_>>(),
        [("issuer_unavailable".to_owned(), 1)]
    );
}

#[tokio::test]
async fn export_rows_carry_attempts_first_attempt_and_no_stale_reason() {
    let h = Harness::new();
    let path = h.new_path();
    let store = fixture(&path).await;
    // Record 3 was deferred once; deciding it later must not show the deferral.
    let claim = store.claim(1, LEASE).await.expect("claim 3");
    store
        .write_back(
            &claim.token,
            &[outcome(&id("3"), Outcome::Sent).with_attempts(&[AttemptAnswer::Issued])],
        )
        .await
        .expect("write 3");
    let rows = store.export_page(None, 100).await.expect("export");
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["1", "2", "3", "4", "5", "6"]);
    let row = |n: usize| &rows[n - 1];
    assert_eq!(
        (row(1).sent, row(1).outcome.as_str(), row(1).reason.as_str()),
        (Some(1), "sent", "")
    );
    assert_eq!(row(1).attempts, 1);
    assert!(row(1).first_attempt_at.is_some() && row(1).processed_at.is_some());
    assert_eq!(row(3).reason, "", "the stale deferral is gone once sent");
    assert_eq!(row(3).attempts, 2);
    assert_eq!(row(2).reason, "invalid_number:not_a_number");
    assert_eq!(row(2).first_attempt_at, None, "no issue attempt was made");
    assert_eq!(row(4).outcome, "unconfirmed");
    assert_eq!((row(6).sent, row(6).outcome.as_str()), (None, "pending"));
    let page = store
        .export_page(Some("2".to_owned()), 2)
        .await
        .expect("page");
    assert_eq!(
        page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["3", "4"]
    );
}

#[tokio::test]
async fn requeue_by_id_is_all_or_nothing_and_never_touches_a_texted_record() {
    let h = Harness::new();
    let path = h.new_path();
    let store = fixture(&path).await;
    let before = snapshot(&path);
    for (ids, expected) in [
        (vec!["2", "1"], "written as texted"),
        (vec!["2", "nope"], "not in the store"),
        (vec!["6"], "still pending"),
        (vec![], "empty"),
    ] {
        let selection = RequeueSelection::Ids(ids.iter().map(|s| id(s)).collect());
        for apply in [false, true] {
            let err = store.requeue(&selection, apply).await.expect_err("refused");
            assert!(
                matches!(&err, AdminError::Refused(text) if text.contains(expected)),
                "{ids:?}: {err}"
            );
        }
        assert_eq!(snapshot(&path), before, "{ids:?} changed a row");
    }
    let selection = RequeueSelection::Ids(vec![id("2"), id("5"), id("2")]);
    let dry = store.requeue(&selection, false).await.expect("dry run");
    assert_eq!((dry.requeued, dry.applied), (2, false));
    assert_eq!(snapshot(&path), before, "a dry run wrote");
    let done = store.requeue(&selection, true).await.expect("requeue");
    assert_eq!((done.requeued, done.applied), (2, true));
    let status = store.status(Utc::now()).await.expect("status");
    assert_eq!((status.pending, status.sent), (4, 1));
    assert!(status.not_sent.is_empty());
    let claim = store.claim(10, LEASE).await.expect("claim");
    let mut claimed: Vec<&str> = claim.records.iter().map(|r| r.id.as_str()).collect();
    claimed.sort_unstable();
    assert_eq!(claimed, ["2", "3", "5", "6"]);
}

#[tokio::test]
async fn requeue_by_reason_and_by_outcome() {
    let h = Harness::new();
    let path = h.new_path();
    let store = fixture(&path).await;
    let before = snapshot(&path);
    let err = store
        .requeue(&RequeueSelection::Reason(NotSentKind::Unconfirmed), true)
        .await
        .expect_err("unconfirmed is no reason");
    assert!(matches!(err, AdminError::Refused(_)), "{err}");
    let dry = store
        .requeue(&RequeueSelection::Reason(NotSentKind::GaveUp), false)
        .await
        .expect("dry run");
    assert_eq!(dry.requeued, 1);
    assert_eq!(snapshot(&path), before);
    let none = store
        .requeue(&RequeueSelection::Reason(NotSentKind::Rejected), true)
        .await
        .expect("nothing matches");
    assert_eq!(none.requeued, 0);
    let done = store
        .requeue(&RequeueSelection::Unconfirmed, true)
        .await
        .expect("requeue unconfirmed");
    assert_eq!(done.requeued, 1);
    let status = store.status(Utc::now()).await.expect("status");
    assert_eq!((status.unconfirmed, status.pending, status.sent), (0, 3, 1));
    // The attempt log of the requeued record stays: its next 409 is judged by it.
    let history = store
        .key_histories(&[key_of(&id("4"))])
        .await
        .expect("ledger");
    assert_eq!(history[0].failed_after_commit, 1);
}

fn run() -> RunStart {
    RunStart {
        id: RunId::parse(uuid::Uuid::new_v4().simple().to_string()).expect("id"),
        worker: "operator".to_owned(),
        started_at: Utc::now(),
    }
}

fn backdate(path: &Path, days: i64) {
    let then = (Utc::now() - Days::days(days)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Connection::open(path)
        .expect("open")
        .execute(
            "UPDATE ca_notify_state SET processed_at = ?1 WHERE processed_at IS NOT NULL",
            [then],
        )
        .expect("backdate");
}

#[tokio::test]
async fn purge_erases_personal_data_of_old_finished_records_and_keeps_the_ledger() {
    let h = Harness::new();
    let path = h.new_path();
    let store = fixture(&path).await;
    backdate(&path, 40);
    let cutoff = Utc::now() - Days::days(30);
    let before = snapshot(&path);
    let dry = store.purge(cutoff, false, &run()).await.expect("dry run");
    assert_eq!((dry.records, dry.sent, dry.applied), (4, 1, false));
    assert_eq!(dry.erased_columns, ["phone", "test_date", "symptom_date"]);
    assert_eq!(snapshot(&path), before, "a dry run wrote");
    assert_eq!(source_row(&path, "1").0.as_deref(), Some("+14155550101"));

    let done = store.purge(cutoff, true, &run()).await.expect("purge");
    assert_eq!((done.records, done.applied), (4, true));
    for n in ["1", "2", "4", "5"] {
        assert_eq!(
            source_row(&path, n),
            (Some(String::new()), None, None),
            "{n}"
        );
    }
    for n in ["3", "6"] {
        assert_eq!(
            source_row(&path, n).0,
            Some(format!("+141555501{:02}", n.parse::<u8>().expect("n"))),
            "pending record {n} was erased"
        );
    }
    let status = store.status(Utc::now()).await.expect("status");
    assert_eq!((status.purged, status.sent, status.unconfirmed), (4, 1, 1));
    let recorded: (String, i64) = Connection::open(&path)
        .expect("open")
        .query_row(
            "SELECT stop, purged FROM ca_notify_runs WHERE stop = 'purge'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the purge is in the runs table");
    assert_eq!(recorded, ("purge".to_owned(), 4));
    assert_eq!(status.last_runs.len(), 1);
    let history = store
        .key_histories(&[key_of(&id("1"))])
        .await
        .expect("ledger");
    assert!(
        history[0].texted,
        "the dedup key of a texted record survives purge"
    );

    let again = store
        .purge(cutoff, true, &run())
        .await
        .expect("purge twice");
    assert_eq!((again.records, again.already_purged), (0, 4));
    let err = store
        .requeue(&RequeueSelection::Ids(vec![id("2")]), true)
        .await
        .expect_err("a purged record has no phone to text");
    assert!(
        matches!(&err, AdminError::Refused(t) if t.contains("purged")),
        "{err}"
    );
    let by_reason = store
        .requeue(&RequeueSelection::Reason(NotSentKind::InvalidNumber), true)
        .await
        .expect("by reason");
    assert_eq!((by_reason.requeued, by_reason.skipped_purged), (0, 1));
}

#[tokio::test]
async fn purge_leaves_records_inside_the_cutoff_alone() {
    let h = Harness::new();
    let path = h.new_path();
    let store = fixture(&path).await;
    let before = snapshot(&path);
    let report = store
        .purge(Utc::now() - Days::days(30), true, &run())
        .await
        .expect("purge");
    assert_eq!(report.records, 0);
    assert_eq!(snapshot(&path), before);
}

#[tokio::test]
async fn confirm_sent_marks_only_records_still_unconfirmed_under_that_key() {
    let h = Harness::new();
    let path = h.new_path();
    let store = fixture(&path).await;
    let unconfirmed = store.unconfirmed(None, 100).await.expect("list");
    assert_eq!(unconfirmed, [(id("4"), key_of(&id("4")))]);
    let wrong_key = store
        .confirm_sent(&[(id("4"), key_of(&id("1"))), (id("2"), key_of(&id("2")))])
        .await
        .expect("confirm");
    assert_eq!(wrong_key, 0);
    assert_eq!(store.confirm_sent(&unconfirmed).await.expect("confirm"), 1);
    let rows = store
        .export_page(Some("3".to_owned()), 1)
        .await
        .expect("row");
    assert_eq!(
        (
            rows[0].sent,
            rows[0].outcome.as_str(),
            rows[0].reason.as_str()
        ),
        (Some(1), "sent", CONFIRMED_BY_CLAIM)
    );
    assert!(store.unconfirmed(None, 100).await.expect("list").is_empty());
    let history = store
        .key_histories(&[key_of(&id("4"))])
        .await
        .expect("ledger");
    assert!(
        history[0].texted,
        "a confirmed record is in the texted ledger"
    );
}

#[tokio::test]
async fn report_records_carry_arrival_test_date_and_outcome() {
    let h = Harness::new();
    let path = h.new_path();
    let store = fixture(&path).await;
    let records = store
        .report_records(Utc::now() - Days::days(1))
        .await
        .expect("report");
    assert_eq!(records.len(), 6);
    assert!(records.iter().all(|r| r.arrived_at.is_some()));
    assert!(records
        .iter()
        .all(|r| r.test_date == chrono::NaiveDate::from_ymd_opt(2026, 11, 30)));
    let mut kinds: Vec<String> = records
        .iter()
        .filter_map(|r| r.not_sent_kind.clone())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["gave_up", "invalid_number", "unconfirmed"]);
    assert_eq!(records.iter().filter(|r| r.sent == Some(1)).count(), 1);
}
