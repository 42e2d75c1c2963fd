//! Four worker processes on one file: the claim protocol relies on SQLite's file locks,
//! so it is tested across real processes, not only across connections of one process.
//!
//! The test re-runs this test binary four times with `--ignored --exact worker_process`
//! and the database path in the environment. Each child opens the store, says `READY` on
//! stdout and waits for a line on stdin, so all four start claiming together; it then
//! claims and writes back until the store is drained and writes the ids it took to its
//! own file.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ca_notify_domain::RecordOutcome;
use ca_notify_ports::{PhoneSource, ResultSink, SinkError, SourceError};
use ca_notify_store_contract::fixtures::{records, sent};
use support::{open, seed, Harness};

const DB_ENV: &str = "CA_NOTIFY_TEST_WORKER_DB";
const OUT_ENV: &str = "CA_NOTIFY_TEST_WORKER_OUT";
const WORKERS: usize = 4;
const RECORDS: usize = 3_000;

#[test]
fn four_processes_drain_one_file_without_overlap() {
    let h = Harness::new();
    let db = h.new_path();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        drop(open(&db, "setup").await);
    });
    seed(&db, &records(1, RECORDS));
    let exe = std::env::current_exe().expect("test binary");
    let mut children = Vec::new();
    let mut outputs = Vec::new();
    for k in 0..WORKERS {
        let out = h.dir().join(format!("worker-{k}.ids"));
        let child = Command::new(&exe)
            .args(["--ignored", "--exact", "worker_process", "--test-threads=1"])
            .env(DB_ENV, &db)
            .env(OUT_ENV, &out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn worker");
        children.push(child);
        outputs.push(out);
    }
    let mut stdouts = Vec::new();
    for child in &mut children {
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        // The test harness prints `test worker_process ... ` on the same line.
        let ready = (&mut stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.ends_with("READY"));
        assert!(ready, "a worker process exited before opening the store");
        stdouts.push(stdout);
    }
    // All four start claiming together, so they really contend for the lock.
    for child in &mut children {
        let mut stdin = child.stdin.take().expect("piped stdin");
        writeln!(stdin, "go").expect("go");
    }
    // Keep reading so that no child fails writing its harness summary to a closed pipe.
    for mut stdout in stdouts {
        std::io::copy(&mut stdout, &mut std::io::sink()).expect("drain");
    }
    for mut child in children {
        let status = child.wait().expect("wait");
        assert!(status.success(), "a worker process failed: {status}");
    }

    let mut all = BTreeSet::new();
    let mut busy_workers = 0;
    for out in &outputs {
        let text = std::fs::read_to_string(out).expect("worker output");
        let ids: Vec<&str> = text.lines().collect();
        busy_workers += usize::from(!ids.is_empty());
        for id in ids {
            assert!(
                all.insert(id.to_owned()),
                "record {id} was claimed by two processes"
            );
        }
    }
    let expected: BTreeSet<String> = (1..=RECORDS).map(|i| i.to_string()).collect();
    assert_eq!(all, expected, "the processes did not drain every record");
    eprintln!("{busy_workers} of {WORKERS} worker processes took records");
    let counts =
        runtime.block_on(async { open(&db, "check").await.counts().await.expect("counts") });
    assert_eq!(counts.sent as usize, RECORDS);
    assert_eq!(counts.pending + counts.claimed, 0);
}

/// One worker process of the test above; does nothing when run on its own.
#[test]
#[ignore = "a child process of four_processes_drain_one_file_without_overlap"]
fn worker_process() {
    let (Some(db), Some(out)) = (std::env::var_os(DB_ENV), std::env::var_os(OUT_ENV)) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let ids = runtime.block_on(work(Path::new(&db)));
    std::fs::write(PathBuf::from(out), ids.join("\n")).expect("write ids");
}

async fn work(db: &Path) -> Vec<String> {
    let store = open(db, &format!("process-{}", std::process::id())).await;
    // Written past the test harness's output capture, straight to the parent's pipe.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "READY").expect("ready");
    stdout.flush().expect("flush");
    drop(stdout);
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).expect("wait for go");
    let mut taken = Vec::new();
    loop {
        let claim = match store.claim(10, Duration::from_secs(600)).await {
            Ok(claim) => claim,
            Err(SourceError::Unavailable(_)) => continue,
            Err(e) => panic!("claim: {e}"),
        };
        if claim.records.is_empty() {
            return taken;
        }
        let outcomes: Vec<RecordOutcome> = claim.records.iter().map(|r| sent(&r.id)).collect();
        loop {
            match store.write_back(&claim.token, &outcomes).await {
                Ok(receipt) => {
                    assert_eq!(receipt.written, outcomes.len(), "lost records it held");
                    break;
                }
                Err(SinkError::Unavailable(_)) => continue,
                Err(e) => panic!("write-back: {e}"),
            }
        }
        taken.extend(claim.records.into_iter().map(|r| r.id.to_string()));
    }
}
