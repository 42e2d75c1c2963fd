//! The JSON Twilio Lookup v2 sends, decoded tolerantly, and turned into a verdict.
//!
//! Twilio adds fields and line types over time and sets most sub-objects to `null`, so
//! every field is optional, unknown fields are ignored, unknown line types decode to
//! [`LineType::Unrecognized`], and `validation_errors` is an `Option<Vec<_>>` (it is JSON
//! `null` when the number is valid; `#[serde(default)]` on a `Vec` would refuse that). Only
//! `valid` is required: without it we cannot judge the number, and we will not guess.
//!
//! Fields that echo the number (`phone_number`, `national_format`, `url`) are deliberately
//! not decoded, so no `Debug` of these types can ever show one.

use ca_notify_domain::scrub::scrub_then_truncate;
use ca_notify_ports::PhoneVerdict;
use serde::Deserialize;

use crate::policy::{LineReading, LineType, LineTypePolicy};

/// Longest piece of Twilio's error text we keep; the rest is noise in a log line.
const MAX_MESSAGE_CHARS: usize = 200;

/// The answer of `GET /v2/PhoneNumbers/{PhoneNumber}` (`LookupResponse` in the spec).
#[derive(Debug, Clone, Deserialize)]
pub struct LookupResponse {
    /// Whether the number "is in a valid range that can be freely assigned by a carrier".
    pub valid: bool,
    /// Why the number is invalid (`TOO_SHORT`, `TOO_LONG`, `INVALID_BUT_POSSIBLE`,
    /// `INVALID_COUNTRY_CODE`, `INVALID_LENGTH`, `NOT_A_NUMBER`); `null` when valid.
    #[serde(default)]
    pub validation_errors: Option<Vec<serde_json::Value>>,
    /// ISO 3166 alpha-2 country; `null` when invalid.
    #[serde(default)]
    pub country_code: Option<String>,
    /// Present only when `Fields=line_type_intelligence` was asked for.
    #[serde(default)]
    pub line_type_intelligence: Option<LineTypeIntelligence>,
}

/// The `line_type_intelligence` object.
#[derive(Debug, Clone, Deserialize)]
pub struct LineTypeIntelligence {
    /// The line type; `null` when Lookup could not tell (then `error_code` says why).
    #[serde(default, rename = "type")]
    pub line_type: Option<LineType>,
    /// A 606xx Lookup error code, `null` when the lookup worked.
    #[serde(default)]
    pub error_code: Option<i64>,
    /// "Subject to change"; `null` for many types. Kept for diagnostics only.
    #[serde(default)]
    pub carrier_name: Option<String>,
}

impl LookupResponse {
    /// What Line Type Intelligence said. A type wins over an error code.
    pub fn line_reading(&self) -> LineReading {
        match &self.line_type_intelligence {
            None => LineReading::Missing,
            Some(lti) => match (lti.line_type, lti.error_code) {
                (Some(t), _) => LineReading::Type(t),
                (None, Some(code)) => LineReading::LookupError(code),
                (None, None) => LineReading::Missing,
            },
        }
    }

    /// The verdict under `policy`. An invalid number is `Invalid { "twilio:<first error>" }`.
    pub fn verdict(&self, policy: &LineTypePolicy) -> PhoneVerdict {
        if !self.valid {
            let first = self
                .validation_errors
                .as_deref()
                .and_then(|errors| errors.first())
                .and_then(serde_json::Value::as_str)
                .map(sanitize_code)
                .filter(|code| !code.is_empty())
                .unwrap_or_else(|| "invalid".to_owned());
            return PhoneVerdict::Invalid {
                detail: format!("twilio:{first}"),
            };
        }
        policy.decide(self.line_reading())
    }
}

/// Keeps a validation error code to the characters such codes have (no code has a digit),
/// so nothing odd from outside, a number least of all, reaches the reason column.
fn sanitize_code(code: &str) -> String {
    code.chars()
        .take(40)
        .filter(|c| !c.is_ascii_digit())
        .map(|c| {
            if c.is_ascii_alphabetic() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Twilio's classic error body, `{code, message, more_info, status}` (the Lookup v2 spec's
/// RateLimits and Overrides operations define exactly this schema).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TwilioErrorBody {
    /// The Twilio error code (20003, 20429, …).
    #[serde(default)]
    pub code: Option<i64>,
    /// A human-readable message. May carry the number; scrub before use.
    #[serde(default)]
    pub message: Option<String>,
    /// A link to the error's documentation.
    #[serde(default)]
    pub more_info: Option<String>,
    /// The HTTP status, repeated.
    #[serde(default)]
    pub status: Option<i64>,
}

impl TwilioErrorBody {
    /// Parses leniently: a body that is not Twilio's JSON (a proxy's HTML page, an empty
    /// body) gives `None`, and the caller falls back to the HTTP status.
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(body)
            .ok()
            .filter(|e| e.code.is_some() || e.message.is_some())
    }

    /// A one-line description safe to log: status, code and the scrubbed, shortened message.
    pub fn describe(body: Option<&Self>, status: u16) -> String {
        match body {
            None => format!("HTTP {status} (no Twilio error body)"),
            Some(e) => {
                let code = e.code.map_or_else(|| "none".to_owned(), |c| c.to_string());
                let message = e.message.as_deref().map(safe_text).unwrap_or_default();
                if message.is_empty() {
                    format!("HTTP {status}, Twilio code {code}")
                } else {
                    format!("HTTP {status}, Twilio code {code}: {message}")
                }
            }
        }
    }
}

/// Outside text made fit for a log line: phone numbers scrubbed, control characters
/// dropped, length bounded.
pub fn safe_text(text: &str) -> String {
    let flat: String = text.chars().filter(|c| !c.is_control()).collect();
    // Scrubbed before it is cut: cut first, a number's tail could pass as too short.
    scrub_then_truncate(flat.trim(), MAX_MESSAGE_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(json: &str) -> LookupResponse {
        serde_json::from_str(json).expect("decodes")
    }

    #[test]
    fn minimal_and_null_heavy_bodies_decode() {
        let r = decode(r#"{"valid": true}"#);
        assert_eq!(r.line_reading(), LineReading::Missing);
        let r = decode(
            r#"{"valid": true, "validation_errors": null, "line_type_intelligence": null,
                "caller_name": null, "live_activity": {"x": 1}, "new_field": [1, 2]}"#,
        );
        assert_eq!(r.line_reading(), LineReading::Missing);
    }

    #[test]
    fn toll_free_with_null_carrier_fields_decodes() {
        let r = decode(
            r#"{"valid": true, "line_type_intelligence": {"type": "tollFree",
                "carrier_name": null, "mobile_country_code": null,
                "mobile_network_code": null, "error_code": null}}"#,
        );
        assert_eq!(
            r.verdict(&LineTypePolicy::default()),
            PhoneVerdict::NotSmsCapable {
                line_type: "tollFree".into()
            }
        );
    }

    #[test]
    fn lookup_error_code_without_type_is_undetermined() {
        let r = decode(
            r#"{"valid": true, "line_type_intelligence": {"type": null, "error_code": 60607}}"#,
        );
        assert_eq!(r.line_reading(), LineReading::LookupError(60607));
    }

    #[test]
    fn unknown_line_type_is_tolerated() {
        let r = decode(r#"{"valid": true, "line_type_intelligence": {"type": "hologram"}}"#);
        assert_eq!(r.line_reading(), LineReading::Type(LineType::Unrecognized));
    }

    #[test]
    fn invalid_number_names_the_first_validation_error() {
        let policy = LineTypePolicy::default();
        let r = decode(r#"{"valid": false, "validation_errors": ["TOO_LONG", "INVALID_LENGTH"]}"#);
        assert_eq!(
            r.verdict(&policy),
            PhoneVerdict::Invalid {
                detail: "twilio:TOO_LONG".into()
            }
        );
        for body in [
            r#"{"valid": false}"#,
            r#"{"valid": false, "validation_errors": null}"#,
            r#"{"valid": false, "validation_errors": []}"#,
            r#"{"valid": false, "validation_errors": [42]}"#,
        ] {
            assert_eq!(
                decode(body).verdict(&policy),
                PhoneVerdict::Invalid {
                    detail: "twilio:invalid".into()
                },
                "{body}"
            );
        }
        let odd = decode(r#"{"valid": false, "validation_errors": ["BAD +1 415 555 0100!"]}"#);
        let PhoneVerdict::Invalid { detail } = odd.verdict(&policy) else {
            panic!("invalid")
        };
        assert!(!detail.contains("415"), "{detail}");
        assert!(detail
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'));
    }

    #[test]
    fn a_body_without_valid_is_refused() {
        assert!(
            serde_json::from_str::<LookupResponse>(r#"{"line_type_intelligence": null}"#).is_err()
        );
    }

    #[test]
    fn error_bodies_parse_leniently() {
        let body = br#"{"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}"#;
        let e = TwilioErrorBody::parse(body).expect("Twilio body");
        assert_eq!(e.code, Some(20003));
        assert_eq!(
            TwilioErrorBody::describe(Some(&e), 401),
            "HTTP 401, Twilio code 20003: Authenticate"
        );
        assert!(TwilioErrorBody::parse(b"<html>Bad Gateway</html>").is_none());
        assert!(TwilioErrorBody::parse(b"").is_none());
        assert!(TwilioErrorBody::parse(br#"{"unrelated": true}"#).is_none());
        assert_eq!(
            TwilioErrorBody::describe(None, 502),
            "HTTP 502 (no Twilio error body)"
        );
    }

    #[test]
    fn error_text_is_scrubbed_and_bounded() {
        let body = br#"{"code": 20404, "message": "The requested resource /PhoneNumbers/+14155550123 was not found", "status": 404}"#;
        let e = TwilioErrorBody::parse(body).expect("Twilio body");
        let text = TwilioErrorBody::describe(Some(&e), 404);
        assert!(!text.contains("4155550123"), "{text}");
        assert!(text.contains("[phone]"), "{text}");
        let long = "x".repeat(10_000);
        assert!(safe_text(&long).len() <= MAX_MESSAGE_CHARS);
        assert_eq!(safe_text("a\nb\u{7}c"), "abc");
        let straddling = format!("{}+1 415 555 0123", "x".repeat(MAX_MESSAGE_CHARS - 8));
        let text = safe_text(&straddling);
        assert!(!text.contains("415"), "{text}");
    }
}

/// Twilio's own examples from the Lookup v2 spec (copied into `tests/fixtures/`).
#[cfg(test)]
mod spec_examples {
    use serde_json::Value;

    use super::*;

    fn spec() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/twilio_lookups_v2.json"
        );
        let text = std::fs::read_to_string(path).expect("the spec fixture is in the project");
        serde_json::from_str(&text).expect("the spec is JSON")
    }

    fn examples() -> serde_json::Map<String, Value> {
        spec()["paths"]["/v2/PhoneNumbers/{PhoneNumber}"]["get"]["responses"]["200"]["content"]
            ["application/json"]["examples"]
            .as_object()
            .expect("FetchPhoneNumber has examples")
            .clone()
    }

    fn example(name: &str) -> LookupResponse {
        let value = examples()[name]["value"].clone();
        serde_json::from_value(value).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn every_fetch_example_decodes() {
        let all = examples();
        assert!(all.len() >= 10, "found {} examples", all.len());
        for (name, example) in all {
            let decoded: Result<LookupResponse, _> =
                serde_json::from_value(example["value"].clone());
            assert!(decoded.is_ok(), "{name}: {:?}", decoded.err());
        }
    }

    #[test]
    fn fetch_line_type_intelligence_is_an_sms_capable_non_fixed_voip() {
        let answer = example("fetchLineTypeIntelligence");
        assert_eq!(answer.country_code.as_deref(), Some("US"));
        let lti = answer.line_type_intelligence.as_ref().expect("LTI");
        assert_eq!(lti.carrier_name.as_deref(), Some("Twilio - SMS/MMS-SVR"));
        assert_eq!(
            answer.verdict(&LineTypePolicy::default()),
            PhoneVerdict::SmsCapable {
                line_type: "nonFixedVoip".into()
            }
        );
        let strict = LineTypePolicy {
            accept_non_fixed_voip: false,
            ..LineTypePolicy::default()
        };
        assert_eq!(
            answer.verdict(&strict),
            PhoneVerdict::NotSmsCapable {
                line_type: "nonFixedVoip".into()
            }
        );
    }

    #[test]
    fn fetch_invalid_is_invalid_too_long() {
        let answer = example("fetchInvalid");
        assert!(!answer.valid);
        assert_eq!(answer.country_code, None);
        assert_eq!(
            answer.verdict(&LineTypePolicy::default()),
            PhoneVerdict::Invalid {
                detail: "twilio:TOO_LONG".into()
            }
        );
    }

    #[test]
    fn basic_fetch_without_line_type_is_undetermined() {
        // `fetch` is the free lookup without `Fields`: valid, but no line type.
        let answer = example("fetch");
        assert!(answer.valid);
        assert_eq!(answer.line_reading(), LineReading::Missing);
        assert_eq!(
            answer.verdict(&LineTypePolicy::default()),
            PhoneVerdict::NotSmsCapable {
                line_type: "missing".into()
            }
        );
    }

    #[test]
    fn the_specs_line_types_are_all_known() {
        let names = spec()["components"]["schemas"]["OverridesRequest"]["properties"]["line_type"]
            ["enum"]
            .as_array()
            .expect("the line type enum")
            .clone();
        assert_eq!(names.len(), 12);
        for name in names {
            let t: LineType = serde_json::from_value(name.clone()).expect("decodes");
            assert_ne!(t, LineType::Unrecognized, "{name}");
            assert_eq!(Some(t.as_str()), name.as_str());
        }
    }
}
