//! The `/api/batch-issue` wire format: the request we send and the answers we read.
//!
//! The request carries only documented fields, because the server rejects any unknown
//! one with `unparsable_request` (`pkg/controller/json_bind.go:43,55-57`); optional ones
//! are left out rather than sent empty. The response types read only what the adapter
//! judges by (`error`, `errorCode`, the legacy `error_code`, and whether an item has a
//! `uuid` or `code`); the issued `code` itself is never kept, so it cannot be logged.

use base64::Engine as _;
use ca_notify_domain::TestType;
use ca_notify_ports::IssueItem;
use rand::Rng as _;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

/// The body limit the server enforces (`pkg/controller/json_bind.go:30`).
pub const MAX_BODY_BYTES: usize = 64_000;

/// `BatchIssueCodeRequest` (`pkg/api/api.go:284-288`).
#[derive(Debug, Serialize)]
pub struct BatchIssueRequest<'a> {
    /// Random base64, ignored by the server; it blurs the body length on the wire.
    pub padding: String,
    /// The items, at most ten.
    pub codes: Vec<IssueCodeRequest<'a>>,
}

/// `IssueCodeRequest` (`pkg/api/api.go:199-245`), the fields ca-notify uses.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssueCodeRequest<'a> {
    /// `YYYY-MM-DD`, omitted when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symptom_date: Option<String>,
    /// `YYYY-MM-DD`, omitted when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_date: Option<String>,
    /// `confirmed`, `likely`, `negative` or `user-report`, lower-case, untrimmed-safe.
    pub test_type: &'static str,
    /// Minutes east of UTC; only its sign matters to the server (`parse_date.go:113-122`).
    pub tz_offset: i32,
    /// E.164.
    pub phone: &'a str,
    /// The realm template, omitted for the default one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms_template_label: Option<&'a str>,
    /// The dedup key.
    pub uuid: String,
}

impl std::fmt::Debug for IssueCodeRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssueCodeRequest")
            .field("uuid", &self.uuid)
            .field("test_type", &self.test_type)
            .field("phone", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

impl<'a> IssueCodeRequest<'a> {
    /// The wire form of one item, with the configured defaults filled in.
    pub fn from_item(
        item: &'a IssueItem,
        default_test_type: TestType,
        sms_template_label: Option<&'a str>,
    ) -> Self {
        let day = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
        Self {
            symptom_date: item.symptom_date.map(day),
            test_date: item.test_date.map(day),
            test_type: item.test_type.unwrap_or(default_test_type).as_str(),
            tz_offset: item.tz_offset,
            phone: item.phone.expose_e164(),
            sms_template_label,
            uuid: item.uuid.to_string(),
        }
    }
}

/// Small random padding, like the server's own console sends (5–19 characters,
/// `assets/server/static/js/bulk-issue.js:276-281`): enough to vary the length, far
/// below the 64 KB body cap.
pub fn random_padding() -> String {
    let mut rng = rand::rng();
    let mut bytes = [0u8; 24];
    let len = rng.random_range(8..=bytes.len());
    rng.fill(&mut bytes[..len]);
    base64::engine::general_purpose::STANDARD.encode(&bytes[..len])
}

/// Any JSON answer of the endpoint: a `BatchIssueCodeResponse`
/// (`pkg/api/api.go:290-297`) or an `ErrorReturn` (`pkg/api/api.go:101-110`).
#[derive(Debug, Default, Deserialize)]
pub struct BatchIssueResponse {
    /// Per-item answers, index-aligned with the request; absent for whole-request errors.
    #[serde(default)]
    pub codes: Option<Vec<IssueCodeResponse>>,
    /// A summary (batch) or the whole-request message; may carry Twilio text.
    #[serde(default)]
    pub error: Option<String>,
    /// The error code (for a batch: that of the first failing item).
    #[serde(default, rename = "errorCode")]
    pub error_code: Option<String>,
    /// The legacy duplicate of `errorCode` in an `ErrorReturn`.
    #[serde(default, rename = "error_code")]
    pub legacy_error_code: Option<String>,
}

impl BatchIssueResponse {
    /// `errorCode`, falling back to the legacy `error_code`; empty when neither is set.
    pub fn code(&self) -> &str {
        match self.error_code.as_deref() {
            Some(code) if !code.is_empty() => code,
            _ => self.legacy_error_code.as_deref().unwrap_or(""),
        }
    }
}

/// `IssueCodeResponse` (`pkg/api/api.go:247-282`), as far as the adapter reads it.
#[derive(Debug, Default, Deserialize)]
pub struct IssueCodeResponse {
    /// The echoed uuid, on success.
    #[serde(default)]
    pub uuid: Option<String>,
    /// Whether a code came back; its value is deliberately not kept.
    #[serde(default)]
    pub code: Option<IgnoredAny>,
    /// The failure text; may hold the phone number (contract §6.2).
    #[serde(default)]
    pub error: Option<String>,
    /// The failure code.
    #[serde(default, rename = "errorCode")]
    pub error_code: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ca_notify_domain::{DedupKey, DedupSecret, PhoneParser};
    use chrono::NaiveDate;

    fn item(test_type: Option<TestType>) -> IssueItem {
        let phone = PhoneParser::default().parse("+12068675309").expect("phone");
        let secret = DedupSecret::new("a long enough test secret".to_owned().into()).expect("s");
        let test_date = NaiveDate::from_ymd_opt(2021, 6, 14);
        IssueItem {
            uuid: DedupKey::derive(&secret, &phone, test_date, &"r1".into()),
            phone,
            test_type,
            test_date,
            symptom_date: None,
            tz_offset: -420,
        }
    }

    #[test]
    fn sends_only_documented_fields_and_leaves_out_empty_ones() {
        let item = item(None);
        let wire = IssueCodeRequest::from_item(&item, TestType::Likely, None);
        let json = serde_json::to_value(&wire).expect("json");
        let keys: Vec<&str> = json
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["phone", "testDate", "testType", "tzOffset", "uuid"]);
        assert_eq!(json["testType"], "likely", "the configured default applies");
        assert_eq!(json["testDate"], "2021-06-14");
        assert_eq!(json["tzOffset"], -420);
        assert_eq!(json["uuid"], item.uuid.to_string());

        let item = self::item(Some(TestType::UserReport));
        let wire = IssueCodeRequest::from_item(&item, TestType::Likely, Some("Spanish"));
        let json = serde_json::to_value(&wire).expect("json");
        assert_eq!(json["testType"], "user-report", "the item's own type wins");
        assert_eq!(json["smsTemplateLabel"], "Spanish");
    }

    #[test]
    fn debug_of_a_wire_item_hides_the_phone() {
        let item = item(None);
        let wire = IssueCodeRequest::from_item(&item, TestType::Confirmed, None);
        assert!(!format!("{wire:?}").contains("8675309"));
    }

    #[test]
    fn padding_is_small_random_base64() {
        let a = random_padding();
        let b = random_padding();
        for p in [&a, &b] {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(p)
                .expect("base64");
            assert!((8..=24).contains(&raw.len()), "{p}");
        }
        assert_ne!(a, b);
    }

    #[test]
    fn error_code_falls_back_to_the_legacy_key() {
        let r: BatchIssueResponse =
            serde_json::from_str(r#"{"error":"x","errorCode":"","error_code":"maintenance_mode"}"#)
                .expect("json");
        assert_eq!(r.code(), "maintenance_mode");
        let r: BatchIssueResponse = serde_json::from_str(r#"{"error":"x"}"#).expect("json");
        assert_eq!(r.code(), "");
    }
}
