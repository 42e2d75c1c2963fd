//! Phone numbers and the API key never reach logs, errors or `Debug` output.
//!
//! This binary installs a global subscriber that records every event of every crate at
//! TRACE (the `log` records of reqwest and hyper included) into a buffer, then drives
//! the adapter through the simulator's faults (whose Twilio texts name the phone, as
//! the real server's do) and through wiremock answers that quote phone numbers, and
//! logs every returned error the way the pipeline would.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use ca_notify_adapter_verification::VerificationClient;
use ca_notify_domain::{evaluate_response, RetryBudget};
use ca_notify_ports::{IssueItem, SmsIssuer};
use ca_notify_simulators::verification::{Fault, Faults, SimConfig, VerificationSimulator};
use common::{far, items, API_KEY};
use tracing_subscriber::fmt::MakeWriter;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("buffer")).into_owned()
    }
}

/// Every way a phone of ours could be written.
fn spellings(item: &IssueItem) -> Vec<String> {
    let e164 = item.phone.expose_e164().to_owned();
    let national = e164.trim_start_matches("+1").to_owned();
    vec![
        e164.clone(),
        e164.trim_start_matches('+').to_owned(),
        national.clone(),
        format!("{}-{}-{}", &national[..3], &national[3..6], &national[6..]),
        format!("{} {} {}", &national[..3], &national[3..6], &national[6..]),
        format!(
            "({}) {}-{}",
            &national[..3],
            &national[3..6],
            &national[6..]
        ),
    ]
}

async fn drive_simulator(everyone: &mut Vec<IssueItem>) {
    let sim = VerificationSimulator::start(SimConfig {
        seed: 9,
        faults: Faults {
            script: [
                Fault::SmsFailure(vec![0, 1, 2]),
                Fault::ErrorAfterIssue,
                Fault::DropAfterIssue,
                Fault::DropBeforeIssue,
                Fault::SmsQueueFull(vec![0]),
                Fault::Maintenance,
            ]
            .into(),
            sms_failure: 0.2,
            error_after_issue: 0.1,
            drop_after_issue: 0.1,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let mut config = common::config(&sim.base_url(), &sim.api_key());
    config.transport_backoff.max_retries = 6;
    let client = VerificationClient::new(config).expect("client");
    for n in 0..8u32 {
        let mut pending = items(100 + n * 10, 10);
        everyone.extend(pending.clone());
        for retries_done in 0..4 {
            if pending.is_empty() {
                break;
            }
            match client.issue_batch(&pending, far()).await {
                Ok(answers) => {
                    let budget = RetryBudget {
                        max_item_retries: 4,
                    };
                    let e = evaluate_response(pending.len(), &answers, &[], retries_done, &budget);
                    pending = e.retry.iter().map(|&i| pending[i].clone()).collect();
                }
                Err(error) => {
                    tracing::error!(error = %error, "The batch failed.");
                    tracing::error!(error = ?error, "The batch failed (debug).");
                }
            }
        }
    }
    assert_eq!(sim.ledger().phones_texted_more_than_once(), 0);
    assert!(sim.stats().sms_failures > 0);
}

async fn drive_wiremock(everyone: &mut Vec<IssueItem>) {
    let batch = items(900, 2);
    everyone.extend(batch.clone());
    let e164 = batch[0].phone.expose_e164().to_owned();
    let national = e164.trim_start_matches("+1").to_owned();
    let answers = [
        ResponseTemplate::new(400).set_body_raw(
            format!(r#"{{"error":"number {e164} refused","errorCode":"","error_code":""}}"#),
            "application/json",
        ),
        ResponseTemplate::new(401).set_body_raw(format!("caller {national} unknown"), "text/plain"),
        ResponseTemplate::new(500).set_body_raw(format!("backend error for {e164}"), "text/plain"),
        ResponseTemplate::new(200).set_body_raw(
            format!(
                r#"{{"codes":[{{"error":"failed to send sms: The 'To' number {e164} is not a valid phone number.","errorCode":"sms_failure"}},
                {{"error":"to ({}) {}-{}","errorCode":"phone_number_invalid"}}]}}"#,
                &national[..3],
                &national[3..6],
                &national[6..]
            ),
            "application/json",
        ),
    ];
    for answer in answers {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(answer)
            .mount(&server)
            .await;
        let client = common::client(&server.uri(), API_KEY);
        match client.issue_batch(&batch, far()).await {
            Ok(answers) => tracing::info!(answers = ?answers, "Answers."),
            Err(error) => tracing::error!(error = %error, debug = ?error, "The batch failed."),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_line_error_or_debug_output_holds_a_phone_or_the_key() {
    let buffer = Buffer::default();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(buffer.clone())
        .with_ansi(false)
        .try_init()
        .expect("the only subscriber in this test binary");

    let mut everyone = Vec::new();
    drive_simulator(&mut everyone).await;
    drive_wiremock(&mut everyone).await;
    let client = common::client("https://adminapi.example.org", API_KEY);
    tracing::info!(client = ?client, config = ?common::config("https://x.example", API_KEY), "Built.");

    let logs = buffer.text();
    assert!(
        logs.lines().count() > 100,
        "the capture works: {} lines",
        logs.lines().count()
    );
    assert!(logs.contains("no answer for its items"), "faults were met");
    assert!(logs.contains("[phone]"), "server text was logged, scrubbed");
    assert!(logs.contains("[REDACTED]"));
    assert!(!logs.contains(API_KEY), "the API key leaked");
    assert!(
        !logs.contains("sim-admin-api-key"),
        "the simulator's key leaked"
    );
    for item in &everyone {
        for spelling in spellings(item) {
            assert!(
                !logs.contains(&spelling),
                "a phone number ({}) leaked",
                item.phone
            );
        }
    }
}

#[test]
fn debug_of_the_config_and_client_never_shows_the_api_key() {
    let config = common::config("https://adminapi.example.org", API_KEY);
    let client = VerificationClient::new(config.clone()).expect("client");
    for shown in [
        format!("{config:?}"),
        format!("{client:?}"),
        format!("{client:#?}"),
    ] {
        assert!(!shown.contains(API_KEY), "{shown}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains("[REDACTED]"), "{shown}");
    }
}
