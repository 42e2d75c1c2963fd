//! The operator's work on a real SQLite store: `reconcile` against the verification
//! simulator over a socket, and `export` to a file.

use std::path::Path;
use std::time::Duration;

use ca_notify_adapter_sqlite::{import_csv, SqliteConfig, SqliteStore};
use ca_notify_adapter_verification::{VerificationClient, VerificationConfig};
use ca_notify_domain::{DedupKey, DedupSecret, Outcome, PhoneParser, RecordId, RecordOutcome};
use ca_notify_job::export::{export_csv, Destination, ExportError};
use ca_notify_job::reconcile::{reconcile, ReconcileError};
use ca_notify_ports::admin::{StoreAdmin, CONFIRMED_BY_CLAIM};
use ca_notify_ports::{IssueItem, PhoneSource, ResultSink, SmsIssuer};
use ca_notify_simulators::verification::{SimConfig, VerificationSimulator};
use chrono::Utc;
use tokio::time::Instant;

const PHONES: [&str; 4] = [
    "+12065550101",
    "+12065550102",
    "+12065550103",
    "+12065550104",
];

fn client(base_url: &str, api_key: &str) -> VerificationClient {
    let mut config = VerificationConfig::new(base_url, api_key.to_owned().into());
    config.request_timeout = Duration::from_secs(5);
    VerificationClient::new(config).expect("client")
}

fn key(n: usize) -> DedupKey {
    let secret = DedupSecret::new("operator-test dedup secret".to_owned().into()).expect("secret");
    let phone = PhoneParser::default().parse(PHONES[n]).expect("phone");
    DedupKey::derive(&secret, &phone, None, &RecordId::new(n.to_string()))
}

fn item(n: usize) -> IssueItem {
    IssueItem {
        phone: PhoneParser::default().parse(PHONES[n]).expect("phone"),
        uuid: key(n),
        test_type: None,
        test_date: Some(Utc::now().date_naive()),
        symptom_date: None,
        tz_offset: 0,
    }
}

/// Records 0, 1, 2 unconfirmed under keys 0, 1, 2; record 3 sent.
async fn store(dir: &Path) -> SqliteStore {
    let store = SqliteStore::open(SqliteConfig::at(dir.join("store.db")))
        .await
        .expect("store");
    let csv = dir.join("in.csv");
    let rows: String = PHONES
        .iter()
        .enumerate()
        .map(|(n, p)| format!("{n},{p}\n"))
        .collect();
    std::fs::write(&csv, format!("id,phone\n{rows}")).expect("csv");
    import_csv(&store, &csv).await.expect("import");
    let claim = store
        .claim(10, Duration::from_secs(600))
        .await
        .expect("claim");
    let outcomes: Vec<RecordOutcome> = (0..4)
        .map(|n| {
            let outcome = if n == 3 {
                Outcome::Sent
            } else {
                Outcome::Unconfirmed
            };
            RecordOutcome::new(RecordId::new(n.to_string()), Some(key(n)), outcome)
        })
        .collect();
    store
        .write_back(&claim.token, &outcomes)
        .await
        .expect("write back");
    store
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(120)
}

#[tokio::test]
async fn reconcile_confirms_claimed_codes_and_reports_the_rest() {
    let dir = tempfile::tempdir().expect("dir");
    let store = store(dir.path()).await;
    let sim = VerificationSimulator::start(SimConfig::default())
        .await
        .expect("simulator");
    let client = client(&sim.base_url(), &sim.api_key());
    client
        .issue_batch(&[item(0), item(1)], far())
        .await
        .expect("codes 0 and 1 issued");
    assert!(sim.claim_code(&key(0).as_uuid().hyphenated().to_string()));

    let dry = reconcile(&store, &client, far(), false)
        .await
        .expect("dry run");
    assert_eq!(
        (dry.checked, dry.confirmed, dry.not_claimed, dry.not_found),
        (3, 1, 1, 1)
    );
    assert_eq!(dry.left_unconfirmed, ["1", "2"]);
    assert_eq!(
        store.status(Utc::now()).await.expect("status").unconfirmed,
        3
    );

    let done = reconcile(&store, &client, far(), true)
        .await
        .expect("reconcile");
    assert_eq!((done.confirmed, done.applied), (1, true));
    let status = store.status(Utc::now()).await.expect("status");
    assert_eq!((status.unconfirmed, status.sent), (2, 2));
    let rows = store.export_page(None, 10).await.expect("rows");
    assert_eq!(
        (
            rows[0].sent,
            rows[0].outcome.as_str(),
            rows[0].reason.as_str()
        ),
        (Some(1), "sent", CONFIRMED_BY_CLAIM)
    );
    assert_eq!(sim.ledger().total(), 2, "reconcile texts no one");
}

#[tokio::test]
async fn a_server_that_is_down_changes_nothing_and_the_deadline_stops_it() {
    let dir = tempfile::tempdir().expect("dir");
    let store = store(dir.path()).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let closed = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let down = client(&closed, "some-admin-key");
    let before = store.export_page(None, 10).await.expect("rows");
    match reconcile(&store, &down, far(), true).await {
        Err(ReconcileError::Server { report, .. }) => assert_eq!(report.confirmed, 0),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.export_page(None, 10).await.expect("rows"), before);

    let sim = VerificationSimulator::start(SimConfig::default())
        .await
        .expect("simulator");
    let up = client(&sim.base_url(), &sim.api_key());
    let stopped = reconcile(&store, &up, Instant::now(), true)
        .await
        .expect("stops");
    assert!(stopped.stopped_early);
    assert_eq!(stopped.checked, 0);
    assert_eq!(sim.stats().requests, 0, "no request that could not finish");
}

#[tokio::test]
async fn export_replaces_the_file_atomically_and_neutralises_formulas() {
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(SqliteConfig::at(dir.path().join("s.db")))
        .await
        .expect("store");
    let csv = dir.path().join("in.csv");
    std::fs::write(
        &csv,
        "id,phone\n\"=HYPERLINK(\"\"http://x\"\")\",1\n+1,2\n-2,3\n@SUM(A1),4\nplain,5\na=b,6\n",
    )
    .expect("csv");
    import_csv(&store, &csv).await.expect("import");
    let out = dir.path().join("out.csv");
    std::fs::write(&out, "an older export").expect("older");
    let report = export_csv(&store, &Destination::File(out.clone()))
        .await
        .expect("export");
    assert_eq!((report.rows, report.pending), (6, 6));
    let text = std::fs::read_to_string(&out).expect("read");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
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
    let ids: Vec<String> = reader
        .records()
        .map(|r| r.expect("row")[0].to_owned())
        .collect();
    assert_eq!(
        ids,
        [
            "'+1",
            "'-2",
            "'=HYPERLINK(\"http://x\")",
            "'@SUM(A1)",
            "a=b",
            "plain"
        ]
    );
    let unwritable = dir.path().join("no/such/dir/out.csv");
    assert!(matches!(
        export_csv(&store, &Destination::File(unwritable)).await,
        Err(ExportError::Io { .. })
    ));
    assert_eq!(std::fs::read_to_string(&out).expect("still there"), text);
}
