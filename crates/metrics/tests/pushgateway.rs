//! A run's metrics pushed to a real Pushgateway (Debian's `prometheus-pushgateway`,
//! installed by `scripts/test.sh` and `.ci/run`), started here on a free loopback port,
//! and read back from its `/metrics`. Fails, never skips, when the binary is missing
//! (`CA_NOTIFY_PUSHGATEWAY` names another one).

use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use ca_notify_metrics::{MetricsSection, RecordCount, RunMetrics};
use tokio::process::{Child, Command};

/// The Pushgateway, stopped when dropped.
struct Pushgateway {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn start() -> Pushgateway {
    let binary = std::env::var("CA_NOTIFY_PUSHGATEWAY")
        .unwrap_or_else(|_| "prometheus-pushgateway".to_owned());
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let child = Command::new(&binary)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!(
            "--persistence.file={}",
            dir.path().join("pushgateway.data").display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {binary}: {e}. Install Debian's prometheus-pushgateway \
                 (scripts/test.sh does) or set CA_NOTIFY_PUSHGATEWAY"
            )
        });
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{url}/-/ready")).send().await {
            if r.status().is_success() {
                return Pushgateway {
                    child,
                    url,
                    _dir: dir,
                };
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the Pushgateway at {url} did not become ready in 10 s");
}

async fn scrape(url: &str) -> String {
    reqwest::get(format!("{url}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body")
}

/// The sample lines of `name` in the group `job="ca-notify"`, without the group labels.
fn samples(text: &str, name: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| l.contains("job=\"ca-notify\""))
        .map(|l| {
            l.replace("instance=\"\",", "")
                .replace("job=\"ca-notify\",", "")
                .replace(",job=\"ca-notify\"", "")
                .replace("{job=\"ca-notify\"}", "")
        })
        .collect()
}

/// The value of the one sample of `name` in the group.
fn value(text: &str, name: &str) -> Option<f64> {
    let found = samples(text, name);
    assert!(found.len() <= 1, "{found:?}");
    found
        .first()
        .and_then(|line| line.rsplit(' ').next())
        .map(|v| v.parse().expect("a number"))
}

fn run(succeeded: bool, stop: &str, backlog: Option<u64>) -> RunMetrics {
    RunMetrics {
        records: vec![
            RecordCount {
                outcome: "sent",
                reason: String::new(),
                count: 7,
            },
            RecordCount {
                outcome: "not_sent",
                reason: "landline".into(),
                count: 2,
            },
        ],
        claimed: 9,
        issue_requests: 2,
        item_retries: 1,
        rate_limited: 1,
        validator_calls: 9,
        duration_secs: 1.5,
        ended_at: 1_767_225_700.0,
        succeeded,
        stop: stop.into(),
        last_success: Some(1_767_225_600.0),
        backlog,
        backlog_oldest_arrival: backlog.filter(|&n| n > 0).map(|_| 1_767_200_000.0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_pushed_and_the_next_push_replaces_it() {
    let pg = start().await;
    let metrics = MetricsSection {
        pushgateway_url: Some(pg.url.clone()),
        ..MetricsSection::default()
    }
    .metrics()
    .expect("valid section");

    metrics
        .publish(&run(true, "deadline", Some(4)))
        .await
        .expect("pushed");
    let text = scrape(&pg.url).await;
    let mut records = samples(&text, "ca_notify_run_records");
    records.sort();
    assert_eq!(
        records,
        vec![
            "ca_notify_run_records{outcome=\"not_sent\",reason=\"landline\"} 2".to_owned(),
            "ca_notify_run_records{outcome=\"sent\",reason=\"\"} 7".to_owned(),
        ],
        "{text}"
    );
    assert_eq!(
        samples(&text, "ca_notify_run_rate_limited_responses"),
        vec!["ca_notify_run_rate_limited_responses 1"],
        "{text}"
    );
    assert_eq!(
        samples(&text, "ca_notify_backlog_records"),
        vec!["ca_notify_backlog_records 4"]
    );
    assert_eq!(
        value(&text, "ca_notify_backlog_oldest_arrival_timestamp_seconds"),
        Some(1_767_200_000.0)
    );
    assert_eq!(
        value(&text, "ca_notify_last_success_timestamp_seconds"),
        Some(1_767_225_600.0)
    );
    assert_eq!(
        samples(&text, "ca_notify_run_stop"),
        vec!["ca_notify_run_stop{reason=\"deadline\"} 1"]
    );

    // A failed run replaces the group: its stop reason, no stale backlog, and the last
    // success still there because the run carries it from the store.
    metrics
        .publish(&run(false, "misconfigured", None))
        .await
        .expect("pushed");
    let text = scrape(&pg.url).await;
    assert_eq!(
        samples(&text, "ca_notify_run_stop"),
        vec!["ca_notify_run_stop{reason=\"misconfigured\"} 1"],
        "{text}"
    );
    assert_eq!(
        samples(&text, "ca_notify_run_succeeded"),
        vec!["ca_notify_run_succeeded 0"]
    );
    assert!(
        samples(&text, "ca_notify_backlog_records").is_empty(),
        "{text}"
    );
    assert!(
        samples(&text, "ca_notify_backlog_oldest_arrival_timestamp_seconds").is_empty(),
        "a stale arrival time lingers: {text}"
    );
    assert_eq!(
        samples(&text, "ca_notify_last_success_timestamp_seconds").len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_gateway_is_named_and_the_textfile_is_still_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("ca_notify.prom");
    let metrics = MetricsSection {
        // Port 9 (discard) on loopback: nothing listens there.
        pushgateway_url: Some("http://127.0.0.1:9".into()),
        textfile: Some(file.clone()),
        ..MetricsSection::default()
    }
    .metrics()
    .expect("valid section");
    let err = metrics
        .publish(&run(true, "deadline", Some(0)))
        .await
        .expect_err("nothing listens on port 9");
    assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
    let text = std::fs::read_to_string(&file).expect("the textfile was written");
    assert!(text.contains("ca_notify_backlog_records 0\n"), "{text}");
}
