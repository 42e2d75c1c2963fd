//! The Twilio Lookup simulator over real HTTP: the account states, checked from the
//! outside, with Twilio's error body shape (`code`, `message`, `more_info`, `status`).

use ca_notify_simulators::twilio::{
    AccountState, RunningTwilioSim, TwilioSimConfig, TwilioSimulator,
};
use serde_json::Value;

const LTI: &str = "/v2/PhoneNumbers/%2B14155550100?Fields=line_type_intelligence";
const BASIC: &str = "/v2/PhoneNumbers/%2B14155550100";

async fn start(account: AccountState) -> RunningTwilioSim {
    TwilioSimulator::start(TwilioSimConfig {
        account,
        ..TwilioSimConfig::default()
    })
    .await
    .expect("the simulator starts")
}

/// `GET path` with the simulator's own credentials: status, `WWW-Authenticate`, body.
async fn get(sim: &RunningTwilioSim, path: &str) -> (u16, Option<String>, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", sim.base_url()))
        .basic_auth(sim.account_sid(), Some(sim.auth_token()))
        .send()
        .await
        .expect("the simulator answers");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.json().await.expect("a JSON body");
    (status, challenge, body)
}

/// Twilio's classic error body, with the code's documentation link.
fn assert_twilio_error(body: &Value, status: u16, code: u64) {
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(
        body["more_info"],
        format!("https://www.twilio.com/docs/errors/{code}"),
        "{body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn an_active_account_answers_lookups() {
    let sim = start(AccountState::Active).await;
    let (status, _, body) = get(&sim, LTI).await;
    assert_eq!(status, 200);
    assert_eq!(body["line_type_intelligence"]["type"], "mobile");
    assert_eq!(sim.account_state(), AccountState::Active);
    assert_eq!(sim.stats().account_refusals, 0);
}

#[tokio::test]
async fn revoked_credentials_are_401_with_code_20003() {
    let sim = start(AccountState::CredentialsRevoked).await;
    for path in [LTI, BASIC] {
        let (status, challenge, body) = get(&sim, path).await;
        assert_eq!(status, 401);
        assert!(challenge.is_some_and(|c| c.starts_with("Basic")));
        assert_twilio_error(&body, 401, 20003);
    }
    let stats = sim.stats();
    assert_eq!((stats.unauthorized, stats.lookups), (2, 0));
    assert_eq!(
        sim.requests_of("+14155550100"),
        0,
        "refused before the number"
    );
}

#[tokio::test]
async fn a_package_not_enabled_is_60606_in_line_type_intelligence() {
    let sim = start(AccountState::LineTypeIntelligenceNotEnabled).await;
    let (status, _, body) = get(&sim, LTI).await;
    assert_eq!(status, 200);
    assert_eq!(body["valid"], true);
    let lti = &body["line_type_intelligence"];
    assert_eq!(lti["error_code"], 60606, "{body}");
    assert_eq!(lti["type"], Value::Null, "{body}");
    assert_eq!(lti["carrier_name"], Value::Null, "{body}");

    // The free basic lookup needs no package.
    let (status, _, body) = get(&sim, BASIC).await;
    assert_eq!(status, 200);
    assert_eq!(body["line_type_intelligence"], Value::Null);

    // An invalid number is still invalid: no package runs for it.
    let (_, _, body) = get(
        &sim,
        "/v2/PhoneNumbers/%2B1415555010?Fields=line_type_intelligence",
    )
    .await;
    assert_eq!(body["valid"], false);

    let stats = sim.stats();
    assert_eq!(stats.account_refusals, 1);
    assert_eq!(stats.line_type_lookups, 0, "no paid lookup was answered");
}

#[tokio::test]
async fn a_suspended_account_is_403_with_code_20403() {
    let sim = start(AccountState::Suspended).await;
    for path in [LTI, BASIC] {
        let (status, challenge, body) = get(&sim, path).await;
        assert_eq!(status, 403);
        assert_eq!(challenge, None);
        assert_twilio_error(&body, 403, 20403);
    }
    let stats = sim.stats();
    assert_eq!((stats.account_refusals, stats.lookups), (2, 0));
}

#[tokio::test]
async fn the_state_changes_at_run_time_and_back() {
    let sim = start(AccountState::Active).await;
    assert_eq!(get(&sim, LTI).await.0, 200);
    sim.set_account_state(AccountState::Suspended);
    assert_eq!(sim.account_state(), AccountState::Suspended);
    assert_eq!(get(&sim, LTI).await.0, 403);
    sim.set_account_state(AccountState::CredentialsRevoked);
    assert_eq!(get(&sim, LTI).await.0, 401);
    sim.set_account_state(AccountState::LineTypeIntelligenceNotEnabled);
    assert_eq!(
        get(&sim, LTI).await.2["line_type_intelligence"]["error_code"],
        60606
    );
    sim.set_account_state(AccountState::Active);
    let (status, _, body) = get(&sim, LTI).await;
    assert_eq!(status, 200);
    assert_eq!(body["line_type_intelligence"]["type"], "mobile");
}
