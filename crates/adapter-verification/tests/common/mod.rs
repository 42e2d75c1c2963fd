//! Helpers shared by the adapter's integration tests: clients tuned for fast tests,
//! items with today's date, and fixture loading (the fixtures are copies kept in this
//! crate, so the project builds and tests on its own).

#![allow(dead_code)]

use std::time::Duration;

use ca_notify_adapter_verification::{VerificationClient, VerificationConfig};
use ca_notify_domain::{Backoff, DedupKey, DedupSecret, PhoneNumber, PhoneParser, TestType};
use ca_notify_ports::IssueItem;
use chrono::NaiveDate;
use tokio::time::Instant;

pub const API_KEY: &str = "test-admin-key.0123456789abcdef";

/// A fixture file's text.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A fixture file as JSON.
pub fn fixture_json(name: &str) -> serde_json::Value {
    serde_json::from_str(&fixture(name)).expect("fixture is JSON")
}

/// Settings for tests: paced by the server's headers as by default, millisecond backoff.
pub fn config(base_url: &str, api_key: &str) -> VerificationConfig {
    let mut config = VerificationConfig::new(base_url, api_key.to_owned().into());
    config.request_timeout = Duration::from_secs(5);
    config.transport_backoff = Backoff {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(5),
        max_retries: 3,
    };
    config
}

pub fn client(base_url: &str, api_key: &str) -> VerificationClient {
    VerificationClient::new(config(base_url, api_key)).expect("valid config")
}

pub fn phone(raw: &str) -> PhoneNumber {
    PhoneParser::default().parse(raw).expect("valid phone")
}

pub fn secret() -> DedupSecret {
    DedupSecret::new("integration-test dedup secret".to_owned().into()).expect("long")
}

pub fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// An item for this phone with today's test date; its uuid is the real dedup key.
pub fn item(raw_phone: &str) -> IssueItem {
    let phone = phone(raw_phone);
    let test_date = Some(today());
    IssueItem {
        uuid: DedupKey::derive(&secret(), &phone, test_date, &"record".into()),
        phone,
        test_type: None,
        test_date,
        symptom_date: None,
        tz_offset: 0,
    }
}

/// `count` items with distinct phones, `+1206555{base..}`.
pub fn items(base: u32, count: u32) -> Vec<IssueItem> {
    (base..base + count)
        .map(|n| item(&format!("+1206555{n:04}")))
        .collect()
}

/// A deadline far enough away not to matter.
pub fn far() -> Instant {
    Instant::now() + Duration::from_secs(600)
}

/// The item as described by a fixture request's code object.
pub fn item_from_fixture(code: &serde_json::Value) -> IssueItem {
    let date = |key: &str| {
        code.get(key)
            .and_then(|v| v.as_str())
            .map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").expect("fixture date"))
    };
    IssueItem {
        phone: phone(code["phone"].as_str().expect("phone")),
        uuid: DedupKey::parse(code["uuid"].as_str().expect("uuid")).expect("fixture uuid"),
        test_type: code["testType"].as_str().and_then(TestType::parse),
        test_date: date("testDate"),
        symptom_date: date("symptomDate"),
        tz_offset: code["tzOffset"].as_i64().expect("tzOffset") as i32,
    }
}
