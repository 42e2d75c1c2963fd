//! The operator's port on the Snowflake store, against fakesnow: status, requeue and its
//! refusals, export pages (source records without a state row included), confirmations
//! of unconfirmed records, and a purge that erases nothing of the state's source table.
//!
//! Needs Python with fakesnow (see `tests/support/fakesnow.rs`); fails, never skips.

mod support;

use std::time::Duration;

use ca_notify_domain::{NotSentKind, RecordId};
use ca_notify_ports::admin::{AdminError, RequeueSelection, StoreAdmin, CONFIRMED_BY_CLAIM};
use ca_notify_ports::{PhoneSource, RunId, RunStart};
use ca_notify_store_contract::fixtures::{key_of, operator_day_records, write_operator_day};
use chrono::Utc;

use support::{unique, TestDb, TestStore};

const LEASE: Duration = Duration::from_secs(600);

fn id(s: &str) -> RecordId {
    RecordId::from(s)
}

/// The operator's day of the contract suite (`fixtures::write_operator_day`): 1 sent,
/// 2 invalid number, 3 deferred, 4 unconfirmed, 5 gave up; 6 never claimed (no state
/// row).
async fn fixture(db: &TestDb) -> TestStore {
    let source = unique("SRC");
    db.create_source(&source, &operator_day_records()).await;
    let store = TestStore::open(db.config("admin", &source, &unique("STATE"))).await;
    write_operator_day(&store.store).await;
    store
}

#[tokio::test]
async fn status_counts_source_and_state() {
    let db = TestDb::new().await;
    let store = fixture(&db).await;
    let status = store.store.status(Utc::now()).await.expect("status");
    assert_eq!(status.total, 6);
    assert_eq!(
        (status.pending, status.claimed),
        (2, 0),
        "3 deferred, 6 new"
    );
    assert_eq!((status.sent, status.unconfirmed), (1, 1));
    assert_eq!(
        status.not_sent.into_iter().collect::<Vec<_>>(),
        [("gave_up".to_owned(), 1), ("invalid_number".to_owned(), 1)]
    );
    assert_eq!(status.deferred.values().sum::<u64>(), 1, "3 deferred");
    let oldest = status
        .oldest_pending_since
        .expect("the arrival column dates the backlog");
    assert!(
        (Utc::now() - oldest).num_seconds().abs() < 86_400,
        "the oldest arrival {oldest} is not about now"
    );
}

#[tokio::test]
async fn without_an_arrival_column_the_backlog_is_not_dated() {
    let db = TestDb::new().await;
    let source = unique("SRC");
    db.create_source(&source, &operator_day_records()).await;
    let mut config = db.config(&unique("no_arrival"), &source, &unique("STATE"));
    config.table.arrived_at_column = None;
    let store = TestStore::open(config).await;
    let status = store.store.status(Utc::now()).await.expect("status");
    assert_eq!(status.pending, 6);
    assert_eq!(
        status.oldest_pending_since, None,
        "an arrival time was invented"
    );
}

#[tokio::test]
async fn requeue_refuses_texted_unknown_and_pending_ids_and_requeues_the_rest() {
    let db = TestDb::new().await;
    let store = fixture(&db).await;
    let before = store.store.export_page(None, 100).await.expect("rows");
    for (ids, expected) in [
        (vec!["2", "1"], "written as texted"),
        (vec!["2", "99"], "not in the store"),
        // In the source, never claimed: no state row yet, and pending all the same.
        (vec!["2", "6"], "1 still pending (nothing to requeue): 6"),
        (vec!["3", "5"], "1 still pending (nothing to requeue): 3"),
        (vec![], "empty"),
    ] {
        let selection = RequeueSelection::Ids(ids.iter().map(|s| id(s)).collect());
        let err = store
            .store
            .requeue(&selection, true)
            .await
            .expect_err("refused");
        assert!(
            matches!(&err, AdminError::Refused(text) if text.contains(expected)),
            "{ids:?}: {err}"
        );
    }
    assert_eq!(
        store.store.export_page(None, 100).await.expect("rows"),
        before
    );

    let dry = store
        .store
        .requeue(&RequeueSelection::Reason(NotSentKind::InvalidNumber), false)
        .await
        .expect("dry run");
    assert_eq!((dry.requeued, dry.applied), (1, false));
    assert_eq!(
        store.store.export_page(None, 100).await.expect("rows"),
        before
    );
    let done = store
        .store
        .requeue(&RequeueSelection::Ids(vec![id("2"), id("5")]), true)
        .await
        .expect("requeue");
    assert_eq!(done.requeued, 2);
    let unconfirmed = store
        .store
        .requeue(&RequeueSelection::Unconfirmed, true)
        .await
        .expect("requeue unconfirmed");
    assert_eq!(unconfirmed.requeued, 1);
    let status = store.store.status(Utc::now()).await.expect("status");
    assert_eq!((status.pending, status.sent, status.unconfirmed), (5, 1, 0));
    let claim = store.store.claim(10, LEASE).await.expect("claim");
    let mut ids: Vec<&str> = claim.records.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["2", "3", "4", "5", "6"], "never the texted record");
}

#[tokio::test]
async fn export_pages_include_records_without_a_state_row() {
    let db = TestDb::new().await;
    let store = fixture(&db).await;
    let rows = store.store.export_page(None, 100).await.expect("rows");
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["1", "2", "3", "4", "5", "6"]);
    assert_eq!(
        (
            rows[0].sent,
            rows[0].outcome.as_str(),
            rows[0].reason.as_str()
        ),
        (Some(1), "sent", "")
    );
    assert_eq!(rows[0].attempts, 1);
    assert!(rows[0].processed_at.is_some());
    assert_eq!(rows[1].reason, "invalid_number:not_a_number");
    assert_eq!(
        (rows[2].sent, rows[2].outcome.as_str(), rows[2].attempts),
        (None, "pending", 1),
        "deferred once"
    );
    assert_eq!(
        (rows[5].sent, rows[5].outcome.as_str(), rows[5].attempts),
        (None, "pending", 0)
    );
    let page = store
        .store
        .export_page(Some("2".to_owned()), 2)
        .await
        .expect("page");
    assert_eq!(
        page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["3", "4"]
    );
}

#[tokio::test]
async fn confirmations_and_a_purge_that_erases_nothing_of_the_source() {
    let db = TestDb::new().await;
    let store = fixture(&db).await;
    let listed = store.store.unconfirmed(None, 100).await.expect("list");
    assert_eq!(listed, [(id("4"), key_of(&id("4")))]);
    assert_eq!(
        store
            .store
            .confirm_sent(&[(id("4"), key_of(&id("1")))])
            .await
            .expect("wrong key"),
        0
    );
    assert_eq!(store.store.confirm_sent(&listed).await.expect("confirm"), 1);
    let rows = store
        .store
        .export_page(Some("3".to_owned()), 1)
        .await
        .expect("row");
    assert_eq!(
        (rows[0].sent, rows[0].reason.as_str()),
        (Some(1), CONFIRMED_BY_CLAIM)
    );

    let run = RunStart {
        id: RunId::parse(unique("PURGE")).expect("run id"),
        worker: "admin".to_owned(),
        started_at: Utc::now(),
    };
    let future_cutoff = Utc::now() + chrono::Duration::days(1);
    let report = store
        .store
        .purge(future_cutoff, true, &run)
        .await
        .expect("purge");
    assert_eq!((report.records, report.sent), (4, 2));
    assert!(
        report.erased_columns.is_empty(),
        "the source table is the state's"
    );
    let status = store.store.status(Utc::now()).await.expect("status");
    assert_eq!(status.last_runs[0].start.id, run.id);
    assert_eq!(
        status.last_runs[0].end.as_ref().map(|e| e.stop.as_str()),
        Some("purge")
    );
    let records = store
        .store
        .report_records(Utc::now() - chrono::Duration::days(1))
        .await
        .expect("report");
    assert_eq!(records.len(), 6);
    assert!(records
        .iter()
        .all(|r| r.test_date == chrono::NaiveDate::from_ymd_opt(2026, 11, 30)));
    assert!(
        records.iter().all(|r| r.arrived_at.is_some()),
        "the arrival column dates every record of the report"
    );
}
