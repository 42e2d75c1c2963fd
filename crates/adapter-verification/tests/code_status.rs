//! `/api/checkcodestatus` against the simulator over a real socket: claimed and
//! unclaimed codes, unknown uuids, a refused key, a server that is down, and the pacing
//! it shares with batch-issue.

mod common;

use std::time::Duration;

use ca_notify_adapter_verification::{CodeStatus, CodeStatusError};
use ca_notify_ports::SmsIssuer;
use ca_notify_simulators::verification::{RateLimit, SimConfig, VerificationSimulator};
use common::{far, items};
use tokio::time::Instant;

#[tokio::test]
async fn a_claimed_code_an_unclaimed_one_and_an_unknown_uuid() {
    let sim = VerificationSimulator::start(SimConfig::default())
        .await
        .expect("simulator");
    let client = common::client(&sim.base_url(), &sim.api_key());
    let batch = items(100, 3);
    client.issue_batch(&batch, far()).await.expect("issued");
    let uuid = |i: usize| batch[i].uuid.as_uuid().hyphenated().to_string();
    assert!(sim.claim_code(&uuid(0)), "the person entered the code");

    let status = client
        .check_code_status(&batch[0].uuid, far())
        .await
        .expect("status");
    assert!(matches!(status, CodeStatus::Found { claimed: true, expires_at } if expires_at > 0));
    assert!(matches!(
        client.check_code_status(&batch[1].uuid, far()).await,
        Ok(CodeStatus::Found { claimed: false, .. })
    ));
    let never = items(900, 1);
    assert_eq!(
        client.check_code_status(&never[0].uuid, far()).await,
        Ok(CodeStatus::NotFound)
    );
    sim.purge_uuids();
    assert_eq!(
        client.check_code_status(&batch[0].uuid, far()).await,
        Ok(CodeStatus::NotFound),
        "the cleanup job removed the row"
    );
    assert_eq!(sim.ledger().total(), 3, "checking texts no one");
}

#[tokio::test]
async fn a_refused_key_and_a_server_that_is_down() {
    let sim = VerificationSimulator::start(SimConfig::default())
        .await
        .expect("simulator");
    let wrong = common::client(&sim.base_url(), "not-the-key");
    let uuid = items(1, 1)[0].uuid;
    assert!(matches!(
        wrong.check_code_status(&uuid, far()).await,
        Err(CodeStatusError::Unauthorized(_))
    ));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let closed = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let down = common::client(&closed, common::API_KEY);
    assert!(matches!(
        down.check_code_status(&uuid, far()).await,
        Err(CodeStatusError::Unavailable(_))
    ));
}

#[tokio::test]
async fn checks_wait_on_the_pacer_and_stop_at_the_deadline() {
    let sim = VerificationSimulator::start(SimConfig {
        rate_limit: Some(RateLimit {
            tokens: 1,
            interval: Duration::from_secs(60),
        }),
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let client = common::client(&sim.base_url(), &sim.api_key());
    let batch = items(200, 1);
    client
        .issue_batch(&batch, far())
        .await
        .expect("the window's one request");
    // The batch spent the window; the check sees the held pacer and does not go out.
    let deadline = Instant::now() + Duration::from_secs(10);
    assert!(matches!(
        client.check_code_status(&batch[0].uuid, deadline).await,
        Err(CodeStatusError::RateLimited { .. })
    ));
    assert!(matches!(
        client
            .check_code_status(&batch[0].uuid, Instant::now())
            .await,
        Err(CodeStatusError::NoTimeLeft)
    ));
    assert_eq!(sim.stats().rate_limited, 0, "we never caused a 429");
}
