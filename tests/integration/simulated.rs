//! End-to-end runs of the library against the Twilio Lookup and verification-server
//! simulators over real HTTP, on the in-memory store (so each record's outcome can be read
//! directly): faults and a spent quota, with the exactly-once invariants. The same
//! simulators facing the built binary are in `bins/ca-notify/tests/cli/simulated.rs`.

use std::sync::Arc;
use std::time::Duration;

use ca_notify_adapter_memory::MemoryStore;
use ca_notify_adapter_twilio::{phone_validator, TwilioConfig};
use ca_notify_adapter_verification::{VerificationClient, VerificationConfig};
use ca_notify_domain::{DedupSecret, NotSentReason, Outcome, PhoneParser, RecipientRecord};
use ca_notify_integration_tests::{faulty_twilio, faulty_verification};
use ca_notify_pipeline::{FatalCause, Pipeline, Settings};
use ca_notify_simulators::twilio::{TwilioSimConfig, TwilioSimulator};
use ca_notify_simulators::verification::{SimConfig, VerificationSimulator};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use ca_notify_integration_tests::{people, Kind, Person, SECRET};

/// The harness's recipients as store records, all tested today.
fn records(people: &[Person]) -> Vec<RecipientRecord> {
    let today = chrono::Utc::now().date_naive().to_string();
    people
        .iter()
        .map(|p| RecipientRecord::new(p.id.clone(), p.national.clone()).with_test_date(&today))
        .collect()
}

/// The library on the in-memory store, with the real HTTP adapters pointed at `world`'s
/// simulators.
fn pipeline(store: Arc<MemoryStore>, twilio_url: String, verification_url: String) -> Pipeline {
    let validator = phone_validator(Some(TwilioConfig {
        base_url: twilio_url,
        account_sid: ca_notify_simulators::twilio::DEFAULT_ACCOUNT_SID.to_owned(),
        auth_token: SecretString::from(ca_notify_simulators::twilio::DEFAULT_AUTH_TOKEN),
        ..TwilioConfig::default()
    }))
    .expect("twilio config");
    let issuer = VerificationClient::new(VerificationConfig {
        // The simulator answers at once; no request may start that could outlive the
        // run's deadline.
        request_timeout: Duration::from_secs(5),
        ..VerificationConfig::new(
            verification_url,
            SecretString::from(ca_notify_simulators::verification::DEFAULT_API_KEY),
        )
    })
    .expect("verification config");
    Pipeline::builder()
        .source(store.clone())
        .sink(store)
        .validator(validator)
        .issuer(Arc::new(issuer))
        .settings(Settings {
            until_drained: true,
            deadline: Duration::from_secs(50),
            ..Settings::default()
        })
        .phone_parser(PhoneParser::default())
        .dedup_secret(DedupSecret::new(SecretString::from(SECRET)).expect("secret"))
        .build()
        .expect("pipeline")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_peers_still_text_each_person_exactly_once() {
    let twilio = TwilioSimulator::start(faulty_twilio())
        .await
        .expect("twilio simulator");
    let verification = VerificationSimulator::start(faulty_verification())
        .await
        .expect("verification simulator");
    // Enough requests (about 40 of ten) that the injected faults land.
    let people = people(600);
    let store = Arc::new(MemoryStore::with_records(records(&people)));
    let report = pipeline(store.clone(), twilio.base_url(), verification.base_url())
        .run(CancellationToken::new())
        .await
        .expect("the run survives the faults");

    assert_eq!(report.claimed, 600, "{report:?}");
    let mut deferred = 0;
    for person in &people {
        let texts = verification.texts_to(&person.e164());
        assert!(texts <= 1, "{} texted {texts} times", person.id);
        match store.outcome(&person.id.as_str().into()) {
            Some(Outcome::Sent | Outcome::AlreadySent | Outcome::TextedBefore) => {
                assert_eq!(texts, 1, "{} is marked sent but was not texted", person.id);
            }
            Some(Outcome::NotSent { reason }) => {
                if !matches!(reason, NotSentReason::GaveUp { .. }) {
                    assert_eq!(texts, 0, "{} not sent ({reason:?}) but texted", person.id);
                }
            }
            Some(Outcome::Unconfirmed) => {
                panic!(
                    "{} is unconfirmed, but no send failed in this realm",
                    person.id
                )
            }
            Some(Outcome::Deferred { .. }) | None => deferred += 1,
        }
        if matches!(person.kind, Kind::Landline | Kind::Invalid) {
            assert_eq!(
                texts, 0,
                "{} never reaches the verification server",
                person.id
            );
        }
    }
    assert_eq!(
        verification.ledger().phones_texted_more_than_once(),
        0,
        "no phone is texted twice"
    );
    assert!(
        store.claimed_ids().is_empty(),
        "nothing is left claimed after the run"
    );
    assert!(
        deferred <= 5,
        "almost everything is settled despite the faults ({deferred} deferred): {report:?}"
    );
    assert!(
        verification.stats().already_exists > 0,
        "{:?}",
        verification.stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_quota_stops_the_run_and_marks_nothing_zero_for_it() {
    let twilio = TwilioSimulator::start(TwilioSimConfig::default())
        .await
        .expect("twilio simulator");
    let verification = VerificationSimulator::start(SimConfig {
        daily_quota: Some(25),
        ..SimConfig::default()
    })
    .await
    .expect("verification simulator");
    let people = people(200);
    let store = Arc::new(MemoryStore::with_records(records(&people)));
    let failure = pipeline(store.clone(), twilio.base_url(), verification.base_url())
        .run(CancellationToken::new())
        .await
        .expect_err("the quota stops the run");
    assert!(
        matches!(failure.cause, FatalCause::QuotaExhausted),
        "{failure}"
    );
    assert_eq!(
        verification.ledger().total(),
        25,
        "the quota allowed 25 codes"
    );
    for person in &people {
        if let Some(Outcome::NotSent { reason }) = store.outcome(&person.id.as_str().into()) {
            assert!(
                matches!(
                    reason,
                    NotSentReason::NotSmsCapable { .. } | NotSentReason::InvalidNumber { .. }
                ),
                "{} was marked 0 for {reason:?}, not for a reason of its own",
                person.id
            );
        }
    }
    assert!(store.claimed_ids().is_empty(), "the rest was released");
    assert!(
        !store.open_ids().is_empty(),
        "unsent records stay open for the next run"
    );
}
