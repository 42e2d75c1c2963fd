//! The runs table's promises ([`RunLog`]): runs are listed newest first with their start,
//! end, counts and stop reason, the last success is found, and every outcome a store
//! writes carries the run that wrote it.

use std::time::Duration;

use ca_notify_domain::RecordId;
use ca_notify_ports::{RunCounts, RunEnd, RunId, RunLog, RunRecord, RunStart, SinkError};
use chrono::{DateTime, TimeZone, Utc};

use crate::fixtures::{deferred, records, sent};
use crate::harness::StoreHarness;
use crate::support::{claim, write, LONG_LEASE};

const ATTEMPTS: usize = 200;
const PAUSE: Duration = Duration::from_millis(25);

/// A fixed instant, `minutes` after 2026-03-01 00:00 UTC, with milliseconds, so every
/// store's timestamp type round-trips it exactly.
fn at(minutes: i64, millis: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
        .single()
        .expect("a valid date")
        + chrono::Duration::minutes(minutes)
        + chrono::Duration::milliseconds(millis)
}

fn run_id(text: &str) -> RunId {
    RunId::parse(text).expect("a valid run id")
}

fn start(id: &str, minutes: i64) -> RunStart {
    RunStart {
        id: run_id(id),
        worker: format!("worker-{id}"),
        started_at: at(minutes, 125),
    }
}

fn end(minutes: i64, succeeded: bool, stop: &str, sent: u64) -> RunEnd {
    RunEnd {
        ended_at: at(minutes, 250),
        succeeded,
        stop: stop.to_owned(),
        counts: RunCounts {
            claimed: sent + 7,
            sent,
            already_sent: 2,
            not_sent: 4,
            unconfirmed: 1,
            deferred: 1,
        },
    }
}

/// Retries what the contract calls retryable, as [`crate::support`] does for the other
/// ports.
async fn retry<T, F, Fut>(what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SinkError>>,
{
    for _ in 0..ATTEMPTS {
        match call().await {
            Ok(value) => return value,
            Err(SinkError::Unavailable(_)) => tokio::time::sleep(PAUSE).await,
            Err(e) => panic!("{what} failed: {e}"),
        }
    }
    panic!("{what} stayed unavailable through {ATTEMPTS} attempts");
}

async fn started<S: RunLog + ?Sized>(store: &S, run: &RunStart) {
    retry("start_run", || store.start_run(run)).await;
}

async fn finished<S: RunLog + ?Sized>(store: &S, id: &str, how: &RunEnd) {
    let id = run_id(id);
    retry("finish_run", || store.finish_run(&id, how)).await;
}

async fn recent<S: RunLog + ?Sized>(store: &S, limit: usize) -> Vec<RunRecord> {
    retry("recent_runs", || store.recent_runs(limit)).await
}

async fn last_success<S: RunLog + ?Sized>(store: &S) -> Option<RunRecord> {
    retry("last_success", || store.last_success()).await
}

/// A run is listed from its start, with no end (or, where the store writes a run once at
/// its end, from then), and with its end (time, success, stop
/// reason, counts) once finished; the list is newest start first and cut at the limit;
/// starting a run twice adds no row, finishing it twice keeps the last end; the last
/// success is the successful run that ended last, whatever failed after it.
pub async fn runs_are_listed_newest_first_with_their_end<H: StoreHarness>(h: &H) {
    let store = h.fresh(Vec::new()).await;
    assert!(
        recent(&store, 10).await.is_empty(),
        "a new store lists runs"
    );
    assert_eq!(
        last_success(&store).await,
        None,
        "a new store has a success"
    );

    let from_start = h.lists_runs_from_their_start();
    let first = start("run-a", 0);
    started(&store, &first).await;
    let listed = recent(&store, 10).await;
    let unfinished = |run: &RunStart| {
        if from_start {
            vec![RunRecord {
                start: run.clone(),
                end: None,
            }]
        } else {
            Vec::new()
        }
    };
    assert_eq!(
        listed,
        unfinished(&first),
        "a started run is not listed as its store promises (from its start, or from its end)"
    );
    assert_eq!(
        last_success(&store).await,
        None,
        "an unfinished run is a success"
    );

    let first_end = end(2, true, "deadline", 10);
    finished(&store, "run-a", &end(1, false, "shutdown", 3)).await;
    finished(&store, "run-a", &first_end).await;
    started(&store, &first).await;
    let second = start("run-b", 10);
    started(&store, &second).await;
    let second_end = end(11, false, "misconfigured", 0);
    finished(&store, "run-b", &second_end).await;
    let third = start("run-c", 20);
    started(&store, &third).await;

    let a = RunRecord {
        start: first.clone(),
        end: Some(first_end),
    };
    let b = RunRecord {
        start: second,
        end: Some(second_end),
    };
    let c = RunRecord {
        start: third,
        end: None,
    };
    let mut newest_first = unfinished(&c.start);
    newest_first.extend([b.clone(), a.clone()]);
    assert_eq!(
        recent(&store, 10).await,
        newest_first,
        "runs are not listed newest first with their last end, once each"
    );
    newest_first.truncate(2);
    assert_eq!(
        recent(&store, 2).await,
        newest_first,
        "the limit does not keep the newest runs"
    );
    assert_eq!(
        last_success(&store).await,
        Some(a),
        "the last success is not the successful run that ended last"
    );
}

/// Every outcome a write-back reaches (final or deferred) carries the run the store
/// value was started with; a later run's write-back stamps its own id and leaves the
/// earlier run's records alone.
pub async fn outcomes_carry_the_run_that_wrote_them<H: StoreHarness>(h: &H) {
    let seeded = records(9101, 3);
    let store = h.fresh(seeded.clone()).await;
    let id = |i: usize| -> RecordId { seeded[i].id.clone() };

    started(&store, &start("first-run", 0)).await;
    let c = claim(&store, 3, LONG_LEASE).await;
    assert_eq!(c.records.len(), 3);
    write(&store, &c.token, &[sent(&id(0)), deferred(&id(1))]).await;
    assert_eq!(
        h.inspect(&store, &id(0)).await.run_id.as_deref(),
        Some("first-run"),
        "a final outcome does not carry its run"
    );
    assert_eq!(
        h.inspect(&store, &id(1)).await.run_id.as_deref(),
        Some("first-run"),
        "a deferral does not carry its run"
    );
    assert_eq!(
        h.inspect(&store, &id(2)).await.run_id,
        None,
        "a record no write-back reached carries a run"
    );

    started(&store, &start("second-run", 5)).await;
    let again = claim(&store, 3, LONG_LEASE).await;
    let mut taken: Vec<RecordId> = again.records.iter().map(|r| r.id.clone()).collect();
    taken.sort();
    assert_eq!(taken, vec![id(1)], "the deferred record did not come back");
    write(&store, &again.token, &[sent(&id(1))]).await;
    assert_eq!(
        h.inspect(&store, &id(1)).await.run_id.as_deref(),
        Some("second-run"),
        "the run that wrote the final outcome is not on the record"
    );
    assert_eq!(
        h.inspect(&store, &id(0)).await.run_id.as_deref(),
        Some("first-run"),
        "a later run changed an earlier run's record"
    );
}

/// The backlog counts the records a claim could take now: not those under a live claim,
/// not those with a final outcome; a deferred record is back in it. A store that knows
/// arrival times dates its oldest record (the records arrive while the test runs, on the
/// store's clock, which may be another machine's: a day's tolerance), and an empty
/// backlog has no oldest record.
pub async fn the_backlog_is_what_a_claim_could_take<H: StoreHarness>(h: &H) {
    let seeded = records(9201, 5);
    let store = h.fresh(seeded).await;
    let backlog = || async { retry("backlog", || store.backlog()).await };
    let first = backlog().await;
    assert_eq!(first.records, 5, "a new store's backlog is not its records");
    if h.knows_arrival_times() {
        let oldest = first
            .oldest_arrival
            .expect("the oldest record is not dated");
        let off = (chrono::Utc::now() - oldest).num_seconds().abs();
        assert!(off < 86_400, "the oldest arrival {oldest} is not about now");
    } else {
        assert_eq!(first.oldest_arrival, None, "an arrival time was invented");
    }
    let c = claim(&store, 2, LONG_LEASE).await;
    assert_eq!(
        backlog().await.records,
        3,
        "claimed records are in the backlog"
    );
    let ids: Vec<RecordId> = c.records.iter().map(|r| r.id.clone()).collect();
    write(&store, &c.token, &[sent(&ids[0]), deferred(&ids[1])]).await;
    assert_eq!(
        backlog().await.records,
        4,
        "a written record is in the backlog, or a deferred one is not"
    );
    let rest = claim(&store, 10, LONG_LEASE).await;
    assert_eq!(rest.records.len(), 4);
    let empty = backlog().await;
    assert_eq!(
        (empty.records, empty.oldest_arrival),
        (0, None),
        "an empty backlog has a count or an oldest record"
    );
}
