//! The Twilio adapter over real HTTP, against the project's Lookup v2 simulator on
//! 127.0.0.1: verdicts, the offline pre-filter, retries, credentials and account errors,
//! concurrency, the per-run cache, and what reaches the logs.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ca_notify_adapter_twilio::nanp::RangeVerdict;
use ca_notify_adapter_twilio::{
    phone_validator, prefiltered, Finding, LineTypePolicy, OfflineValidator, TwilioConfig,
    TwilioValidator,
};
use ca_notify_domain::{Backoff, PhoneNumber, PhoneParser};
use ca_notify_ports::{PhoneValidator, PhoneVerdict, ValidationError};
use ca_notify_simulators::twilio::{
    AccountState, Fault, RunningTwilioSim, SimLine, TwilioSimConfig, TwilioSimulator,
};
use secrecy::SecretString;
use tokio::time::Instant;

async fn start(config: TwilioSimConfig) -> RunningTwilioSim {
    TwilioSimulator::start(config)
        .await
        .expect("the simulator starts")
}

/// The adapter pointed at `sim`, with short backoffs and the default pace.
fn config_for(sim: &RunningTwilioSim) -> TwilioConfig {
    TwilioConfig {
        base_url: sim.base_url(),
        request_timeout: Duration::from_secs(5),
        backoff: Backoff {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(40),
            max_retries: 4,
        },
        ..TwilioConfig::new(sim.account_sid(), SecretString::from(sim.auth_token()))
    }
}

fn validator_for(sim: &RunningTwilioSim) -> TwilioValidator {
    TwilioValidator::new(config_for(sim)).expect("valid config")
}

fn phone(raw: &str) -> PhoneNumber {
    PhoneParser::default()
        .parse(raw)
        .expect("a parsable test number")
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn capable(line_type: &str) -> PhoneVerdict {
    PhoneVerdict::SmsCapable {
        line_type: line_type.into(),
    }
}

fn not_capable(line_type: &str) -> PhoneVerdict {
    PhoneVerdict::NotSmsCapable {
        line_type: line_type.into(),
    }
}

#[tokio::test]
async fn classifies_every_kind_of_number() {
    let sim = start(TwilioSimConfig {
        overrides: [
            ("+14155550110".to_owned(), SimLine::LookupError(60607)),
            ("+14155550111".to_owned(), SimLine::valid("satellite")),
        ]
        .into(),
        ..TwilioSimConfig::default()
    })
    .await;
    let validator = validator_for(&sim);
    let cases = [
        ("+14155550100", capable("mobile")),
        ("+14155550105", not_capable("landline")),
        ("+14155550106", capable("nonFixedVoip")),
        ("+14155550107", not_capable("fixedVoip")),
        ("+14155550108", not_capable("unknown")),
        (
            "+14155550109",
            PhoneVerdict::Invalid {
                detail: "twilio:INVALID_BUT_POSSIBLE".into(),
            },
        ),
        ("+18005550100", not_capable("tollFree")),
        ("+19005550100", not_capable("premium")),
        ("+15005550100", not_capable("personal")),
        ("+14155550110", not_capable("lookup_error_60607")),
        ("+14155550111", not_capable("unrecognized")),
    ];
    let count = cases.len() as u64;
    for (number, want) in cases {
        let got = validator
            .check(&phone(number), deadline())
            .await
            .unwrap_or_else(|e| panic!("{number}: {e}"));
        assert_eq!(got, want, "{number}");
        assert_eq!(sim.lookups_of(number), 1, "{number}");
    }
    assert_eq!(
        sim.stats().line_type_lookups,
        count,
        "every lookup asked for line type intelligence"
    );
}

#[tokio::test]
async fn the_policy_is_configurable() {
    let sim = start(TwilioSimConfig::default()).await;
    let validator = TwilioValidator::new(TwilioConfig {
        policy: LineTypePolicy {
            accept_non_fixed_voip: false,
            accept_fixed_voip: true,
            accept_undetermined: true,
        },
        ..config_for(&sim)
    })
    .expect("valid config");
    let check = |n: &'static str| {
        let validator = &validator;
        async move {
            validator
                .check(&phone(n), deadline())
                .await
                .expect("verdict")
        }
    };
    assert_eq!(check("+14155550106").await, not_capable("nonFixedVoip"));
    assert_eq!(check("+14155550107").await, capable("fixedVoip"));
    assert_eq!(check("+14155550108").await, capable("unknown"));
    assert_eq!(check("+14155550105").await, not_capable("landline"));
}

/// The pipeline texts a record only on `SmsCapable`; everything else never reaches the
/// verification server.
#[tokio::test]
async fn landlines_and_invalid_numbers_never_reach_the_issuer() {
    let sim = start(TwilioSimConfig::default()).await;
    let validator = phone_validator(Some(config_for(&sim))).expect("valid config");
    let records = [
        "+14155550100", // mobile
        "+14155550105", // landline
        "+14155550109", // invalid at Twilio
        "+18005550100", // toll-free at Twilio
        "+14152110123", // an N11 exchange: invalid offline, for good
        "+14155550102", // mobile
        "+12125550135", // landline
    ];
    let mut to_issuer = Vec::new();
    for number in records {
        let verdict = validator
            .check(&phone(number), deadline())
            .await
            .expect("verdict");
        if matches!(verdict, PhoneVerdict::SmsCapable { .. }) {
            to_issuer.push(number);
        }
    }
    assert_eq!(to_issuer, ["+14155550100", "+14155550102"]);
    // The offline pre-filter spent no lookup on the number that cannot exist.
    assert_eq!(sim.requests_of("+14152110123"), 0);
    assert_eq!(sim.stats().lookups, 6);
}

/// Valid mobiles of area codes opened after this build's metadata (357: California, March
/// 2025; 624: New York, 2023; 274, 472 and 983, whose 555 exchanges the metadata lacks)
/// look "invalid" to it. That opinion is not final: each goes to Twilio, whose verdict
/// stands; with no Twilio, each passes unverified.
#[tokio::test]
async fn numbers_of_newly_opened_area_codes_reach_twilio() {
    let sim = start(TwilioSimConfig::default()).await;
    let validator = phone_validator(Some(config_for(&sim))).expect("valid config");
    // What `phone_validator(None)` returns; called directly, since its warning's callsite
    // belongs to the log-capture test below.
    let offline_only = OfflineValidator::new();
    let numbers = [
        ("+12745550120", capable("mobile")),
        ("+14725550121", capable("mobile")),
        ("+19835550122", capable("mobile")),
        ("+13575550123", capable("mobile")),
        ("+16245550124", capable("mobile")),
        ("+13575550125", not_capable("landline")),
    ];
    for (number, twilio_says) in &numbers {
        let (number, twilio_says) = (*number, twilio_says.clone());
        let phone = phone(number);
        assert_eq!(
            OfflineValidator::new().finding(&phone),
            Finding::Range(RangeVerdict::Invalid),
            "{number}: in no range of the metadata"
        );
        let verdict = validator.check(&phone, deadline()).await.expect("verdict");
        assert_eq!(verdict, twilio_says, "{number}: Twilio's verdict");
        assert_eq!(sim.lookups_of(number), 1, "{number}");
        let alone = offline_only
            .check(&phone, deadline())
            .await
            .expect("verdict");
        assert_eq!(alone, capable("unverified"), "{number}");
    }
    assert_eq!(sim.stats().line_type_lookups, numbers.len() as u64);
}

/// What cannot exist under any future metadata is settled offline, for good, with no
/// lookup.
#[tokio::test]
async fn structural_faults_are_final_offline_and_cost_no_lookup() {
    let sim = start(TwilioSimConfig::default()).await;
    let validator = phone_validator(Some(config_for(&sim))).expect("valid config");
    for (raw, detail) in [
        ("+1 415 555 012", "offline:too_short"),
        ("+1 415 555 01234", "offline:too_long"),
        ("+1 015 555 0123", "offline:invalid_area_code"),
        ("+1 911 555 0123", "offline:invalid_area_code"),
        ("+1 415 155 0123", "offline:invalid_exchange"),
        ("+1 415 911 0123", "offline:invalid_exchange"),
        ("+33 6 12 34 56 789", "offline:too_long"),
    ] {
        let want = PhoneVerdict::Invalid {
            detail: detail.into(),
        };
        let phone = phone(raw);
        assert_eq!(
            validator.check(&phone, deadline()).await.expect("verdict"),
            want
        );
        let offline_only = OfflineValidator::new();
        assert_eq!(
            offline_only
                .check(&phone, deadline())
                .await
                .expect("verdict"),
            want
        );
    }
    assert_eq!(sim.stats().requests, 0);
}

#[tokio::test]
async fn transient_failures_are_retried_until_an_answer() {
    let sim = start(TwilioSimConfig::default()).await;
    let number = "+14155550100";
    sim.script_faults_for(
        number,
        [
            Fault::TooManyRequests { retry_after: None },
            Fault::ServerError,
            Fault::BadGatewayHtml,
            Fault::ServiceUnavailable,
        ],
    );
    let validator = validator_for(&sim);
    let verdict = validator
        .check(&phone(number), deadline())
        .await
        .expect("succeeds on the fifth attempt");
    assert_eq!(verdict, capable("mobile"));
    assert_eq!(sim.requests_of(number), 5);
    assert_eq!(sim.lookups_of(number), 1);
    assert_eq!(validator.stats().retries, 4);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let sim = start(TwilioSimConfig::default()).await;
    let number = "+14155550101";
    sim.script_faults_for(
        number,
        [Fault::TooManyRequests {
            retry_after: Some(1),
        }],
    );
    let validator = validator_for(&sim);
    let started = std::time::Instant::now();
    let verdict = validator.check(&phone(number), deadline()).await;
    assert_eq!(verdict.expect("succeeds"), capable("mobile"));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited Retry-After, not the 5 ms backoff"
    );
}

#[tokio::test]
async fn a_spent_retry_budget_defers_instead_of_judging() {
    let sim = start(TwilioSimConfig::default()).await;
    let number = "+14155550100";
    sim.script_faults_for(number, vec![Fault::ServerError; 3]);
    let validator = TwilioValidator::new(TwilioConfig {
        backoff: Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(5),
            max_retries: 2,
        },
        ..config_for(&sim)
    })
    .expect("valid config");
    let result = validator.check(&phone(number), deadline()).await;
    match result {
        Err(ValidationError::Unavailable(reason)) => assert!(reason.contains("20500"), "{reason}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(sim.requests_of(number), 3, "one attempt and two retries");
    // The failure is not cached: a later check of the same number tries again.
    let again = validator.check(&phone(number), deadline()).await;
    assert_eq!(again.expect("recovers"), capable("mobile"));
    assert_eq!(sim.requests_of(number), 4);
}

#[tokio::test]
async fn refused_credentials_stop_with_no_verdict_and_no_retry() {
    let sim = start(TwilioSimConfig::default()).await;
    let validator = TwilioValidator::new(TwilioConfig {
        auth_token: SecretString::from("not-the-token"),
        ..config_for(&sim)
    })
    .expect("valid config");
    for number in ["+14155550100", "+14155550105", "+14155550109"] {
        match validator.check(&phone(number), deadline()).await {
            Err(ValidationError::Unauthorized(reason)) => {
                assert!(reason.contains("20003"), "{reason}");
            }
            other => panic!("{number}: expected Unauthorized, got {other:?}"),
        }
    }
    let stats = sim.stats();
    assert_eq!(
        stats.unauthorized, 3,
        "one request per number, never retried"
    );
    assert_eq!(stats.lookups, 0);
    let refused = validator.check_credentials().await.expect_err("refused");
    assert!(
        refused.contains("401") && refused.contains("20003"),
        "{refused}"
    );
}

/// The account state of the simulator, checked through the validator the pipeline uses.
async fn account_error(state: AccountState) -> (RunningTwilioSim, TwilioValidator, Vec<String>) {
    let sim = start(TwilioSimConfig {
        account: state,
        ..TwilioSimConfig::default()
    })
    .await;
    let validator = validator_for(&sim);
    let mut errors = Vec::new();
    for number in ["+14155550100", "+14155550105", "+13575550123"] {
        match validator.check(&phone(number), deadline()).await {
            Ok(verdict) => panic!("{state:?}: a verdict {verdict:?}"),
            Err(e) => {
                let text = e.to_string();
                for needle in [number, &number[2..], &number[5..]] {
                    assert!(!text.contains(needle), "{needle} in {text}");
                }
                errors.push(format!("{e:?}"));
            }
        }
    }
    let stats = sim.stats();
    assert_eq!(
        stats.requests, 3,
        "{state:?}: one request per number, never retried"
    );
    assert_eq!(validator.stats().retries, 0);
    (sim, validator, errors)
}

#[tokio::test]
async fn revoked_credentials_are_unauthorized() {
    let (sim, _validator, errors) = account_error(AccountState::CredentialsRevoked).await;
    for e in &errors {
        assert!(e.starts_with("Unauthorized(") && e.contains("20003"), "{e}");
    }
    assert_eq!(sim.stats().unauthorized, 3);
}

#[tokio::test]
async fn a_line_type_intelligence_package_not_enabled_is_misconfigured() {
    let (sim, validator, errors) =
        account_error(AccountState::LineTypeIntelligenceNotEnabled).await;
    for e in &errors {
        assert!(e.starts_with("Misconfigured(\"Twilio code 60606 ("), "{e}");
        assert!(
            e.contains("Twilio Console") && e.contains("twilio.account_sid"),
            "{e}"
        );
    }
    assert_eq!(sim.stats().account_refusals, 3);
    // Nothing was remembered: once the package is on, the same numbers get verdicts.
    sim.set_account_state(AccountState::Active);
    let verdict = validator.check(&phone("+14155550105"), deadline()).await;
    assert_eq!(verdict.expect("a verdict"), not_capable("landline"));
    assert_eq!(sim.requests_of("+14155550105"), 2);
    // The pipeline's validator (behind the pre-filter) gives the same error.
    sim.set_account_state(AccountState::LineTypeIntelligenceNotEnabled);
    let piped = phone_validator(Some(config_for(&sim))).expect("valid config");
    let result = piped.check(&phone("+14155550102"), deadline()).await;
    assert!(
        matches!(result, Err(ValidationError::Misconfigured(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_suspended_account_is_misconfigured() {
    let (sim, validator, errors) = account_error(AccountState::Suspended).await;
    for e in &errors {
        assert!(e.starts_with("Misconfigured(\"Twilio code 20403 ("), "{e}");
        assert!(e.contains("suspended or closed"), "{e}");
    }
    assert_eq!(sim.stats().account_refusals, 3);
    let refused = validator.check_credentials().await.expect_err("refused");
    assert!(refused.contains("20403"), "{refused}");
}

#[tokio::test]
async fn credential_check_uses_the_free_lookup() {
    let sim = start(TwilioSimConfig::default()).await;
    validator_for(&sim)
        .check_credentials()
        .await
        .expect("accepted");
    let stats = sim.stats();
    assert_eq!((stats.lookups, stats.line_type_lookups), (1, 0));
    assert_eq!(sim.lookups_of("+14159929960"), 1);
}

#[tokio::test]
async fn credential_check_spots_a_host_that_is_not_lookup() {
    let sim = start(TwilioSimConfig::default()).await;
    let validator = TwilioValidator::new(TwilioConfig {
        base_url: format!("{}/not-lookup", sim.base_url()),
        ..config_for(&sim)
    })
    .expect("valid config");
    let refused = validator.check_credentials().await.expect_err("refused");
    assert!(refused.contains("404"), "{refused}");
}

#[tokio::test]
async fn timeouts_are_retried() {
    let sim = start(TwilioSimConfig::default()).await;
    let number = "+14155550103";
    sim.script_faults_for(number, [Fault::Stall(Duration::from_secs(10))]);
    let validator = TwilioValidator::new(TwilioConfig {
        request_timeout: Duration::from_millis(300),
        ..config_for(&sim)
    })
    .expect("valid config");
    let verdict = validator.check(&phone(number), deadline()).await;
    assert_eq!(verdict.expect("the retry answers"), capable("mobile"));
    assert_eq!(sim.requests_of(number), 2);
}

#[tokio::test]
async fn odd_answers_defer_and_keep_the_number_out_of_the_error() {
    let sim = start(TwilioSimConfig::default()).await;
    let validator = validator_for(&sim);
    for (number, fault) in [
        ("+14155550100", Fault::MalformedBody),
        ("+14155550101", Fault::NotFoundEchoingNumber),
    ] {
        sim.script_faults_for(number, [fault.clone()]);
        match validator.check(&phone(number), deadline()).await {
            Err(ValidationError::Unknown(e)) => {
                let text = format!("{e:#} {e:?}");
                assert!(!text.contains(&number[2..]), "{fault:?}: {text}");
            }
            other => panic!("{fault:?}: expected Unknown, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_deadline_bounds_a_slow_lookup() {
    let sim = start(TwilioSimConfig {
        latency: Duration::from_secs(5),
        ..TwilioSimConfig::default()
    })
    .await;
    let validator = validator_for(&sim);
    let started = std::time::Instant::now();
    let result = validator
        .check(
            &phone("+14155550100"),
            Instant::now() + Duration::from_millis(300),
        )
        .await;
    assert!(
        matches!(result, Err(ValidationError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not wait for the answer"
    );
}

#[tokio::test]
async fn a_burst_of_1000_lookups_never_exceeds_the_concurrency() {
    let concurrency = 10;
    let sim = start(TwilioSimConfig {
        concurrency_limit: Some(concurrency),
        latency: Duration::from_millis(2),
        ..TwilioSimConfig::default()
    })
    .await;
    let validator: Arc<dyn PhoneValidator> = Arc::new(
        TwilioValidator::new(TwilioConfig {
            concurrency,
            ..config_for(&sim)
        })
        .expect("valid config"),
    );
    let numbers: Vec<PhoneNumber> = (0..1000)
        .map(|i| phone(&format!("+1415555{i:04}")))
        .collect();
    let deadline = deadline();
    let checks = numbers.iter().map(|n| validator.check(n, deadline));
    let results = futures::future::join_all(checks).await;
    assert!(results.iter().all(Result::is_ok));
    let stats = sim.stats();
    assert_eq!(stats.concurrency_rejections, 0, "the ceiling was never hit");
    assert!(stats.max_concurrency <= concurrency, "{stats:?}");
    assert!(stats.max_concurrency > 1, "the lookups did run in parallel");
    assert_eq!(stats.lookups, 1000);
}

#[tokio::test]
async fn the_rate_limit_paces_lookups() {
    let sim = start(TwilioSimConfig::default()).await;
    // 40 lookups/s shared by two workers: 20/s here, with a burst of 10.
    let validator = TwilioValidator::new(TwilioConfig {
        requests_per_second: Some(40),
        workers: 2,
        ..config_for(&sim)
    })
    .expect("valid config");
    let numbers: Vec<PhoneNumber> = (0..30).map(|i| phone(&format!("+1212555{i:04}"))).collect();
    let started = std::time::Instant::now();
    let checks = numbers.iter().map(|n| validator.check(n, deadline()));
    let results = futures::future::join_all(checks).await;
    assert!(results.iter().all(Result::is_ok));
    // After the burst of 10, 20 more at 20/s take at least about a second.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn twilio_pushing_back_slows_the_lookups_and_loses_none() {
    // Twilio accepts 4 at a time here; we start at 10 and must learn that from its 429s.
    let sim = start(TwilioSimConfig {
        latency: Duration::from_millis(20),
        concurrency_limit: Some(4),
        ..TwilioSimConfig::default()
    })
    .await;
    let validator = validator_for(&sim);
    let numbers: Vec<PhoneNumber> = (0..300)
        .map(|i| phone(&format!("+1415555{i:04}")))
        .collect();
    let deadline = deadline();
    let results =
        futures::future::join_all(numbers.iter().map(|n| validator.check(n, deadline))).await;
    let verdicts = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        verdicts, 300,
        "every lookup ends in a verdict: none lost to a 429"
    );
    let stats = sim.stats();
    assert_eq!(stats.lookups, 300, "one answered lookup per number");
    assert!(stats.concurrency_rejections > 0, "Twilio did push back");
    let ours = validator.stats();
    assert_eq!(ours.throttled, stats.concurrency_rejections);
    // AIMD: after the cuts, far fewer 429s than lookups.
    assert!(
        stats.concurrency_rejections < 100,
        "{} 429s for 300 lookups",
        stats.concurrency_rejections
    );
    assert!(ours.allowed_concurrency <= 10);
}

#[tokio::test]
async fn a_429_with_retry_after_holds_the_lookups() {
    let sim = start(TwilioSimConfig::default()).await;
    sim.script_faults([Fault::TooManyRequests {
        retry_after: Some(1),
    }]);
    let validator = validator_for(&sim);
    let started = std::time::Instant::now();
    let verdict = validator
        .check(&phone("+14155550100"), deadline())
        .await
        .expect("retried after the hold");
    assert_eq!(verdict, capable("mobile"));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(validator.stats().throttled, 1);
}

#[tokio::test]
async fn one_lookup_per_distinct_number() {
    let sim = start(TwilioSimConfig {
        latency: Duration::from_millis(50),
        ..TwilioSimConfig::default()
    })
    .await;
    let validator = prefiltered(Arc::new(validator_for(&sim)));
    let number = phone("+14155550100");
    let deadline = deadline();
    let together = (0..50).map(|_| validator.check(&number, deadline));
    for result in futures::future::join_all(together).await {
        assert_eq!(result.expect("verdict"), capable("mobile"));
    }
    for _ in 0..20 {
        assert_eq!(
            validator.check(&number, deadline).await.expect("cached"),
            capable("mobile")
        );
    }
    assert_eq!(sim.requests_of("+14155550100"), 1);
}

#[tokio::test]
async fn debug_never_shows_the_auth_token() {
    let token = "sup3r-s3cret-t0ken";
    let sim = start(TwilioSimConfig {
        auth_token: token.to_owned(),
        ..TwilioSimConfig::default()
    })
    .await;
    let config = config_for(&sim);
    let validator = TwilioValidator::new(config.clone()).expect("valid config");
    for shown in [
        format!("{config:?}"),
        format!("{validator:?}"),
        format!("{validator:#?}"),
    ] {
        assert!(!shown.contains(token), "{shown}");
        assert!(shown.contains("[REDACTED]"), "{shown}");
    }
}

/// A `tracing` writer into memory.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Every path that logs (retries, giving up, the pre-filter, the simulator, the pipeline
/// logging our verdicts and errors) runs under a TRACE subscriber; no line may carry a
/// number.
#[tokio::test]
async fn no_log_line_contains_a_phone_number() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sim = start(TwilioSimConfig::default()).await;
    let numbers = [
        "+14155550100",
        "+14155550105",
        "+14155550109",
        "+18005550100",
        "+12125550101",
        "+12125550102",
        "+12125550104",
    ];
    sim.script_faults_for(
        "+12125550101",
        [
            Fault::TooManyRequests { retry_after: None },
            Fault::BadGatewayHtml,
        ],
    );
    sim.script_faults_for("+12125550102", [Fault::NotFoundEchoingNumber]);
    sim.script_faults_for("+12125550104", vec![Fault::ServerError; 10]);
    let validator = phone_validator(Some(config_for(&sim))).expect("valid config");
    for number in numbers {
        // Log the outcome the way the pipeline would.
        match validator.check(&phone(number), deadline()).await {
            Ok(verdict) => tracing::info!(?verdict, "Judged a number."),
            Err(e) => tracing::warn!(error = %e, debug = ?e, "Could not judge a number."),
        }
    }
    let bad = TwilioValidator::new(TwilioConfig {
        auth_token: SecretString::from("wrong"),
        ..config_for(&sim)
    })
    .expect("valid config");
    if let Err(e) = bad.check(&phone("+14155550100"), deadline()).await {
        tracing::error!(error = %e, "Credentials refused.");
    }
    for state in [
        AccountState::LineTypeIntelligenceNotEnabled,
        AccountState::Suspended,
    ] {
        sim.set_account_state(state);
        // A validator of its own: the first one remembers this number's verdict.
        let fresh = phone_validator(Some(config_for(&sim))).expect("valid config");
        if let Err(e) = fresh.check(&phone("+14155550100"), deadline()).await {
            tracing::error!(error = %e, debug = ?e, "The account cannot look numbers up.");
        }
    }
    let _offline_only = phone_validator(None).expect("offline");

    let text = String::from_utf8(logs.0.lock().expect("log buffer").clone()).expect("utf-8");
    assert!(text.contains("retrying after a backoff"), "{text}");
    assert!(text.contains("giving up"), "{text}");
    assert!(text.contains("offline only"), "{text}");
    assert!(text.contains("60606") && text.contains("20403"), "{text}");
    for number in numbers {
        let national = &number[2..];
        for needle in [number, national, &national[3..]] {
            assert!(!text.contains(needle), "{needle} in the logs:\n{text}");
        }
    }
}

#[tokio::test]
async fn an_unreachable_host_is_retried_then_unavailable() {
    let sim = start(TwilioSimConfig::default()).await;
    let mut config = config_for(&sim);
    // A port that was free a moment ago: nothing listens there now.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    config.base_url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let validator = TwilioValidator::new(config).expect("valid config");
    match validator.check(&phone("+14155550100"), deadline()).await {
        Err(ValidationError::Unavailable(reason)) => {
            assert!(reason.contains("could not connect"), "{reason}");
            assert!(!reason.contains("4155550100"), "{reason}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(
        validator.stats().requests,
        5,
        "one attempt and four retries"
    );
}
