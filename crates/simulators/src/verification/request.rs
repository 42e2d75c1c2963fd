//! The request side of the simulated server: body parsing as strict as Go's
//! `controller.BindJSON`, and the per-item checks of `BuildVerificationCode` that need
//! no server state, in the server's order.
//!
//! Parsing rejects unknown fields, wrong JSON types, an empty body and trailing values
//! with `unparsable_request` (`pkg/controller/json_bind.go:34-71`). Item checks: dates
//! (format, then the UTC window with the `tzOffset` sign rule), the phone (libphonenumber
//! parse with the realm's region, no validity check), `onlyGenerateSMS`, and the test
//! type (`pkg/controller/issueapi/validate_code.go:37-203`).

use chrono::{Days, NaiveDate};
use serde::Deserialize;

/// `BatchIssueCodeRequest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Ignored.
    #[serde(default)]
    #[allow(dead_code)]
    pub padding: Option<String>,
    /// The items; a JSON `null` element is kept as `None` (the server panics on it).
    #[serde(default)]
    pub codes: Option<Vec<Option<ItemRequest>>>,
}

/// `IssueCodeRequest`; `null` for a scalar means its zero value, as in Go.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ItemRequest {
    /// Ignored.
    #[serde(default)]
    #[allow(dead_code)]
    pub padding: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub symptom_date: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub test_date: Option<String>,
    /// The test type.
    #[serde(default)]
    pub test_type: Option<String>,
    /// Minutes; only the sign of its integer part matters.
    #[serde(default)]
    pub tz_offset: Option<f32>,
    /// The phone, any format libphonenumber parses.
    #[serde(default)]
    pub phone: Option<String>,
    /// The SMS template.
    #[serde(default)]
    pub sms_template_label: Option<String>,
    /// The client's idempotency handle.
    #[serde(default)]
    pub uuid: Option<String>,
    /// Stored as-is; over 255 characters fails at commit.
    #[serde(default, rename = "externalIssuerID")]
    pub external_issuer_id: Option<String>,
    /// Return the SMS text instead of sending it (not permitted in the simulated realm).
    #[serde(default, rename = "onlyGenerateSMS")]
    pub only_generate_sms: Option<bool>,
}

/// A per-item failure: HTTP status, `errorCode` (may be empty) and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// The item's HTTP status.
    pub status: u16,
    /// Its `errorCode`.
    pub code: &'static str,
    /// Its `error` text.
    pub message: String,
}

impl ItemError {
    /// A failure.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

/// The realm settings item validation depends on.
#[derive(Debug, Clone)]
pub struct Realm {
    /// `ALLOWED_PAST_SYMPTOM_DAYS` in days.
    pub past_days: u32,
    /// `RequireDate`.
    pub require_date: bool,
    /// `AllowedTestTypes`.
    pub allowed_test_types: Vec<String>,
    /// `AllowAdminUserReport`.
    pub allow_user_report: bool,
}

/// Parses a batch body the way `BindJSON` does; the error is the message to return.
pub fn parse_batch(body: &[u8]) -> Result<BatchRequest, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("body must not be empty".to_owned());
    }
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        match text.split_once("unknown field `") {
            // Go: `json: unknown field "<name>"`.
            Some((_, rest)) => {
                let name = rest.split('`').next().unwrap_or_default();
                format!("json: unknown field \"{name}\"")
            }
            None => format!("malformed json: {text}"),
        }
    })
}

/// Runs the stateless checks 1–7 and 9–11 of `BuildVerificationCode`, in order, except
/// the uuid lookup (8), which the caller runs between [`check_item`] and
/// [`check_test_type`].
pub fn check_item(
    item: &ItemRequest,
    realm: &Realm,
    today: NaiveDate,
) -> Result<String, ItemError> {
    let symptom = item.symptom_date.as_deref().unwrap_or("");
    let test = item.test_date.as_deref().unwrap_or("");
    if realm.require_date && symptom.is_empty() && test.is_empty() {
        return Err(ItemError::new(
            400,
            "missing_date",
            "missing either test or symptom date",
        ));
    }
    let tz = item.tz_offset.unwrap_or(0.0) as i32;
    check_date(symptom, "symptom onset", realm.past_days, tz, today)?;
    check_date(test, "test", realm.past_days, tz, today)?;
    let phone = match item.phone.as_deref().unwrap_or("") {
        "" => String::new(),
        raw => canonical_phone(raw)?,
    };
    if item.only_generate_sms.unwrap_or(false) {
        return Err(ItemError::new(
            400,
            "unparsable_request",
            "realm is not permitted to use onlyGenerateSMS",
        ));
    }
    Ok(phone)
}

/// Checks 9–11: the test type, case-insensitive but not trimmed, with the server's
/// texts (`validate_code.go:162-200`). The user-report check compares the raw value.
pub fn check_test_type(item: &ItemRequest, realm: &Realm) -> Result<String, ItemError> {
    let raw = item.test_type.as_deref().unwrap_or("");
    let unsupported = || {
        ItemError::new(
            400,
            "unsupported_test_type",
            format!("unsupported test type: {raw}"),
        )
    };
    if raw == "user-report" && !realm.allow_user_report {
        return Err(unsupported());
    }
    let test_type = raw.to_lowercase();
    if !matches!(
        test_type.as_str(),
        "confirmed" | "likely" | "negative" | "user-report"
    ) {
        return Err(ItemError::new(
            400,
            "invalid_test_type",
            "invalid test type",
        ));
    }
    if !realm.allowed_test_types.iter().any(|t| t == &test_type) {
        return Err(unsupported());
    }
    Ok(test_type)
}

/// One date: strict format, then the window `[today − past_days (− 1 if tz < 0), today]`
/// (`parse_date.go:64-122`).
fn check_date(
    text: &str,
    what: &str,
    past_days: u32,
    tz: i32,
    today: NaiveDate,
) -> Result<(), ItemError> {
    if text.is_empty() {
        return Ok(());
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|_| text.len() == 10)
        .ok_or_else(|| {
            ItemError::new(
                400,
                "unparsable_request",
                format!("failed to process {what} date: parsing time {text:?} as \"2006-01-02\""),
            )
        })?;
    let back = u64::from(past_days) + u64::from(tz < 0);
    let min = today
        .checked_sub_days(Days::new(back))
        .unwrap_or(NaiveDate::MIN);
    if date < min || date > today {
        return Err(ItemError::new(
            400,
            "invalid_date",
            format!(
                "{what} date must be on/after {} and on/before {}. Received {}",
                min.format("%Y-%m-%d"),
                today.format("%Y-%m-%d"),
                date.format("%Y-%m-%d")
            ),
        ));
    }
    Ok(())
}

/// libphonenumber's parse with the realm's region (US), formatted E.164. Like the
/// server, no validity check: a parseable but unassigned number passes
/// (`internal/project/phone.go:24-32`). A North American number already in E.164 (`+1`
/// and ten digits, the first 2–9) is its own answer, without the parser's cost.
fn canonical_phone(raw: &str) -> Result<String, ItemError> {
    if is_nanp_e164(raw) {
        return Ok(raw.to_owned());
    }
    let parsed = phonenumber::parse(Some(phonenumber::country::Id::US), raw).map_err(|e| {
        let reason = match e {
            phonenumber::ParseError::InvalidCountryCode => "invalid country code",
            phonenumber::ParseError::TooShortAfterIdd | phonenumber::ParseError::TooShortNsn => {
                "the string supplied is too short to be a phone number"
            }
            phonenumber::ParseError::TooLong => {
                "the string supplied is too long to be a phone number"
            }
            phonenumber::ParseError::NoNumber | phonenumber::ParseError::MalformedInteger(_) => {
                "the phone number supplied is not a number"
            }
        };
        ItemError::new(
            400,
            "phone_number_invalid",
            format!("phonenumbers.Parse: {reason}"),
        )
    })?;
    Ok(parsed.format().mode(phonenumber::Mode::E164).to_string())
}

/// `+1` and ten ASCII digits, the first 2–9: libphonenumber formats it back unchanged.
fn is_nanp_e164(raw: &str) -> bool {
    raw.strip_prefix("+1").is_some_and(|national| {
        let b = national.as_bytes();
        b.len() == 10 && b.iter().all(u8::is_ascii_digit) && b[0] >= b'2'
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanp_e164_is_canonical_exactly_when_the_parser_says_so() {
        use rand::{rngs::StdRng, Rng, SeedableRng};

        let mut rng = StdRng::seed_from_u64(3);
        for npa in 200..1000 {
            let line: u32 = rng.random_range(0..10_000_000);
            let e164 = format!("+1{npa}{line:07}");
            assert!(is_nanp_e164(&e164));
            let parsed =
                phonenumber::parse(Some(phonenumber::country::Id::US), &e164).expect("parses");
            assert_eq!(
                parsed.format().mode(phonenumber::Mode::E164).to_string(),
                e164
            );
        }
        for other in [
            "+10155550123",
            "+1415555012",
            "+141555501234",
            "4155550123",
            "+1415555012x",
        ] {
            assert!(!is_nanp_e164(other), "{other}");
        }
    }

    fn realm() -> Realm {
        Realm {
            past_days: 28,
            require_date: false,
            allowed_test_types: vec!["confirmed".into(), "likely".into(), "negative".into()],
            allow_user_report: false,
        }
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2021, 6, 15).expect("date")
    }

    fn item(json: &str) -> ItemRequest {
        serde_json::from_str(json).expect("item")
    }

    #[test]
    fn rejects_unknown_fields_and_wrong_types_like_go() {
        let err = parse_batch(br#"{"codes":[{"phone":"+12065550100","color":"red"}]}"#)
            .expect_err("unknown");
        assert_eq!(err, "json: unknown field \"color\"");
        assert!(parse_batch(br#"{"codes":[],"extra":1}"#).is_err());
        assert!(parse_batch(br#"{"codes":[{"onlyGenerateSMS":"true"}]}"#).is_err());
        assert!(parse_batch(b"").is_err());
        assert!(parse_batch(br#"{"codes":[]} {"codes":[]}"#).is_err());
        let ok = parse_batch(br#"{"padding":"x","codes":[null,{"tzOffset":null}]}"#).expect("ok");
        let codes = ok.codes.expect("codes");
        assert!(codes[0].is_none());
        assert_eq!(codes[1].as_ref().and_then(|c| c.tz_offset), None);
    }

    #[test]
    fn dates_follow_the_window_and_the_offset_sign() {
        let r = realm();
        let ok = item(r#"{"testDate":"2021-05-18","phone":"+12065550100"}"#);
        assert_eq!(
            check_item(&ok, &r, today()).expect("in window"),
            "+12065550100"
        );
        let old = item(r#"{"testDate":"2021-05-17"}"#);
        let err = check_item(&old, &r, today()).expect_err("too old");
        assert_eq!(err.code, "invalid_date");
        assert_eq!(
            err.message,
            "test date must be on/after 2021-05-18 and on/before 2021-06-15. Received 2021-05-17"
        );
        let west = item(r#"{"testDate":"2021-05-17","tzOffset":-420}"#);
        assert!(
            check_item(&west, &r, today()).is_ok(),
            "a negative offset adds a day back"
        );
        let tiny = item(r#"{"testDate":"2021-05-17","tzOffset":-0.5}"#);
        assert!(
            check_item(&tiny, &r, today()).is_err(),
            "the offset is truncated to int"
        );
        let future = item(r#"{"symptomDate":"2021-06-16","tzOffset":600}"#);
        let err = check_item(&future, &r, today()).expect_err("future");
        assert!(err.message.starts_with("symptom onset date must be"));
        let bad = item(r#"{"testDate":"06/14/2021"}"#);
        assert_eq!(
            check_item(&bad, &r, today()).expect_err("format").code,
            "unparsable_request"
        );
        let required = Realm {
            require_date: true,
            ..realm()
        };
        assert_eq!(
            check_item(&item("{}"), &required, today()).expect_err("missing"),
            ItemError::new(400, "missing_date", "missing either test or symptom date")
        );
    }

    #[test]
    fn phones_are_parsed_with_the_us_region_and_canonicalised() {
        let r = realm();
        for raw in [
            "(206) 555-0100",
            "206.555.0100",
            "+1 206 555 0100",
            "12065550100",
        ] {
            let json = format!(r#"{{"phone":"{raw}"}}"#);
            assert_eq!(
                check_item(&item(&json), &r, today()).expect(raw),
                "+12065550100"
            );
        }
        let err = check_item(&item(r#"{"phone":"not-a-phone"}"#), &r, today()).expect_err("bad");
        assert_eq!(err.code, "phone_number_invalid");
        assert_eq!(
            err.message,
            "phonenumbers.Parse: the phone number supplied is not a number"
        );
    }

    #[test]
    fn test_types_are_lower_cased_but_not_trimmed() {
        let r = realm();
        assert_eq!(
            check_test_type(&item(r#"{"testType":"Confirmed"}"#), &r).expect("ok"),
            "confirmed"
        );
        for (json, code, message) in [
            (
                r#"{"testType":" confirmed"}"#,
                "invalid_test_type",
                "invalid test type",
            ),
            ("{}", "invalid_test_type", "invalid test type"),
            (
                r#"{"testType":"user-report"}"#,
                "unsupported_test_type",
                "unsupported test type: user-report",
            ),
        ] {
            assert_eq!(
                check_test_type(&item(json), &r).expect_err(json),
                ItemError::new(400, code, message)
            );
        }
        let only_confirmed = Realm {
            allowed_test_types: vec!["confirmed".into()],
            ..realm()
        };
        assert_eq!(
            check_test_type(&item(r#"{"testType":"Likely"}"#), &only_confirmed).expect_err("off"),
            ItemError::new(
                400,
                "unsupported_test_type",
                "unsupported test type: Likely"
            ),
            "the text has the value as sent"
        );
    }
}
