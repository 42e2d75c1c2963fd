//! The simulator's deterministic answer for each number, and the Lookup v2 JSON for it.
//!
//! The rule, so tests can pick a number of the kind they need (digits after the `+`):
//!
//! North American numbers (`+1` and ten digits):
//! * fewer or more than ten digits after the 1 → invalid, `TOO_SHORT` / `TOO_LONG`;
//! * an area code or exchange starting with 0 or 1 → invalid, `INVALID_BUT_POSSIBLE`;
//! * area code 800, 833, 844, 855, 866, 877, 888 → `tollFree`; 900 → `premium`;
//!   500, 521, 522, 533, 544, 566, 577, 588 → `personal`;
//! * otherwise by the **last digit**: 0–4 `mobile`, 5 `landline`, 6 `nonFixedVoip`,
//!   7 `fixedVoip`, 8 `unknown`, 9 invalid (`INVALID_BUT_POSSIBLE`).
//!
//! Other numbers are checked with libphonenumber (the `phonenumber` crate): a number it
//! cannot parse or does not find valid is invalid (`INVALID_COUNTRY_CODE`, `TOO_SHORT`,
//! `TOO_LONG`, `NOT_A_NUMBER`, `INVALID_BUT_POSSIBLE`); a valid one gets its type from the
//! same last-digit rule.
//!
//! Per-number overrides in the configuration win over the rule.

use serde_json::{json, Value};

/// What the simulator says about one number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimLine {
    /// A valid number of this line type (`mobile`, `landline`, … or any other string, to
    /// test tolerance of new types).
    Valid(String),
    /// A valid number whose Line Type Intelligence failed with this 606xx error code.
    LookupError(i64),
    /// `valid: false` with this validation error (`TOO_LONG`, …).
    Invalid(String),
}

impl SimLine {
    /// A valid number of `line_type`.
    pub fn valid(line_type: &str) -> Self {
        Self::Valid(line_type.to_owned())
    }

    /// An invalid number with `error`.
    pub fn invalid(error: &str) -> Self {
        Self::Invalid(error.to_owned())
    }
}

const TOLL_FREE: &[&str] = &["800", "833", "844", "855", "866", "877", "888"];
const PERSONAL: &[&str] = &["500", "521", "522", "533", "544", "566", "577", "588"];

/// The line the rule gives `e164` (which may be anything a client sent).
pub fn line_for(e164: &str) -> SimLine {
    let Some(digits) = e164.strip_prefix('+') else {
        return SimLine::invalid("NOT_A_NUMBER");
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return SimLine::invalid("NOT_A_NUMBER");
    }
    if let Some(national) = digits.strip_prefix('1') {
        return nanp_line(national);
    }
    match phonenumber::parse(None, e164) {
        Err(phonenumber::ParseError::InvalidCountryCode) => {
            SimLine::invalid("INVALID_COUNTRY_CODE")
        }
        Err(phonenumber::ParseError::TooLong) => SimLine::invalid("TOO_LONG"),
        Err(phonenumber::ParseError::TooShortNsn | phonenumber::ParseError::TooShortAfterIdd) => {
            SimLine::invalid("TOO_SHORT")
        }
        Err(_) => SimLine::invalid("NOT_A_NUMBER"),
        Ok(parsed) if !phonenumber::is_valid(&parsed) => SimLine::invalid("INVALID_BUT_POSSIBLE"),
        Ok(_) => by_last_digit(digits),
    }
}

fn nanp_line(national: &str) -> SimLine {
    match national.len() {
        0..=9 => return SimLine::invalid("TOO_SHORT"),
        10 => {}
        _ => return SimLine::invalid("TOO_LONG"),
    }
    let b = national.as_bytes();
    if b[0] < b'2' || b[3] < b'2' {
        return SimLine::invalid("INVALID_BUT_POSSIBLE");
    }
    let npa = &national[..3];
    if TOLL_FREE.contains(&npa) {
        return SimLine::valid("tollFree");
    }
    if npa == "900" {
        return SimLine::valid("premium");
    }
    if PERSONAL.contains(&npa) {
        return SimLine::valid("personal");
    }
    by_last_digit(national)
}

fn by_last_digit(digits: &str) -> SimLine {
    match digits.bytes().last() {
        Some(b'0'..=b'4') => SimLine::valid("mobile"),
        Some(b'5') => SimLine::valid("landline"),
        Some(b'6') => SimLine::valid("nonFixedVoip"),
        Some(b'7') => SimLine::valid("fixedVoip"),
        Some(b'8') => SimLine::valid("unknown"),
        _ => SimLine::invalid("INVALID_BUT_POSSIBLE"),
    }
}

/// The Lookup v2 body for `e164` answered with `line`; Line Type Intelligence only if it
/// was asked for (`Fields=line_type_intelligence`), as Twilio does.
pub fn lookup_body(e164: &str, line: &SimLine, with_line_type: bool) -> Value {
    let url = format!("https://lookups.twilio.com/v2/PhoneNumbers/{e164}");
    let (calling_code, country, national) = match line {
        SimLine::Invalid(_) => (Value::Null, Value::Null, Value::Null),
        _ => country_and_format(e164),
    };
    let lti = match line {
        SimLine::Invalid(_) => Value::Null,
        _ if !with_line_type => Value::Null,
        SimLine::Valid(line_type) => line_type_intelligence(line_type),
        SimLine::LookupError(code) => json!({
            "error_code": code,
            "mobile_country_code": null,
            "mobile_network_code": null,
            "carrier_name": null,
            "type": null,
        }),
    };
    let (valid, errors) = match line {
        SimLine::Invalid(error) => (false, json!([error])),
        _ => (true, Value::Null),
    };
    json!({
        "calling_country_code": calling_code,
        "country_code": country,
        "phone_number": e164,
        "national_format": national,
        "valid": valid,
        "validation_errors": errors,
        "caller_name": null,
        "sim_swap": null,
        "call_forwarding": null,
        "line_status": null,
        "line_type_intelligence": lti,
        "identity_match": null,
        "reassigned_number": null,
        "sms_pumping_risk": null,
        "phone_number_quality_score": null,
        "pre_fill": null,
        "url": url,
    })
}

/// Carrier fields are filled only where Twilio fills them (null for tollFree, premium, …).
fn line_type_intelligence(line_type: &str) -> Value {
    let (carrier, mcc, mnc) = match line_type {
        "mobile" => (
            Value::from("Simulated Wireless"),
            Value::from("310"),
            Value::from("456"),
        ),
        "landline" => (
            Value::from("Simulated Telephone Co."),
            Value::Null,
            Value::Null,
        ),
        "nonFixedVoip" => (
            Value::from("Twilio - SMS/MMS-SVR"),
            Value::from("240"),
            Value::from("38"),
        ),
        "fixedVoip" => (
            Value::from("Simulated Cable VoIP"),
            Value::Null,
            Value::Null,
        ),
        _ => (Value::Null, Value::Null, Value::Null),
    };
    json!({
        "error_code": null,
        "mobile_country_code": mcc,
        "mobile_network_code": mnc,
        "carrier_name": carrier,
        "type": line_type,
    })
}

fn country_and_format(e164: &str) -> (Value, Value, Value) {
    if let Some(national) = e164.strip_prefix("+1").filter(|n| n.len() == 10) {
        let formatted = format!(
            "({}) {}-{}",
            &national[..3],
            &national[3..6],
            &national[6..]
        );
        return ("1".into(), "US".into(), formatted.into());
    }
    match phonenumber::parse(None, e164) {
        Ok(parsed) => {
            let code = parsed.code().value().to_string();
            let country = parsed
                .country()
                .id()
                .map_or(Value::Null, |id| Value::from(format!("{id:?}")));
            let national = parsed
                .format()
                .mode(phonenumber::Mode::National)
                .to_string();
            (code.into(), country, national.into())
        }
        Err(_) => (Value::Null, Value::Null, Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanp_rule() {
        let cases = [
            ("+14155550100", SimLine::valid("mobile")),
            ("+14155550104", SimLine::valid("mobile")),
            ("+14155550105", SimLine::valid("landline")),
            ("+14155550106", SimLine::valid("nonFixedVoip")),
            ("+14155550107", SimLine::valid("fixedVoip")),
            ("+14155550108", SimLine::valid("unknown")),
            ("+14155550109", SimLine::invalid("INVALID_BUT_POSSIBLE")),
            ("+18005550100", SimLine::valid("tollFree")),
            ("+18885550101", SimLine::valid("tollFree")),
            ("+19005550100", SimLine::valid("premium")),
            ("+15005550100", SimLine::valid("personal")),
            ("+1415555010", SimLine::invalid("TOO_SHORT")),
            ("+141555501000", SimLine::invalid("TOO_LONG")),
            ("+11155550100", SimLine::invalid("INVALID_BUT_POSSIBLE")),
            ("+14151550100", SimLine::invalid("INVALID_BUT_POSSIBLE")),
            ("+1415555O100", SimLine::invalid("NOT_A_NUMBER")),
            ("14155550100", SimLine::invalid("NOT_A_NUMBER")),
        ];
        for (number, want) in cases {
            assert_eq!(line_for(number), want, "{number}");
        }
    }

    #[test]
    fn other_countries_use_libphonenumber_then_the_last_digit() {
        assert_eq!(line_for("+447912345670"), SimLine::valid("mobile"));
        assert_eq!(line_for("+447912345675"), SimLine::valid("landline"));
        assert_eq!(
            line_for("+447700900123"),
            SimLine::invalid("INVALID_BUT_POSSIBLE")
        );
        assert_eq!(
            line_for("+999123456"),
            SimLine::invalid("INVALID_COUNTRY_CODE")
        );
    }

    #[test]
    fn bodies_follow_the_spec_examples() {
        let body = lookup_body("+14159929960", &SimLine::valid("nonFixedVoip"), true);
        assert_eq!(body["national_format"], "(415) 992-9960");
        assert_eq!(body["line_type_intelligence"]["type"], "nonFixedVoip");
        assert_eq!(
            body["line_type_intelligence"]["carrier_name"],
            "Twilio - SMS/MMS-SVR"
        );
        assert_eq!(body["validation_errors"], Value::Null);

        let basic = lookup_body("+14159929960", &SimLine::valid("mobile"), false);
        assert_eq!(basic["line_type_intelligence"], Value::Null, "free lookup");

        let invalid = lookup_body("+141599299600", &SimLine::invalid("TOO_LONG"), true);
        assert_eq!(invalid["valid"], false);
        assert_eq!(invalid["validation_errors"], json!(["TOO_LONG"]));
        assert_eq!(invalid["country_code"], Value::Null);

        let toll_free = lookup_body("+18005550100", &SimLine::valid("tollFree"), true);
        assert_eq!(
            toll_free["line_type_intelligence"]["carrier_name"],
            Value::Null
        );

        let failed = lookup_body("+14155550100", &SimLine::LookupError(60607), true);
        assert_eq!(failed["line_type_intelligence"]["error_code"], 60607);
        assert_eq!(failed["line_type_intelligence"]["type"], Value::Null);

        let gb = lookup_body("+447912345670", &SimLine::valid("mobile"), true);
        assert_eq!(gb["calling_country_code"], "44");
        assert_eq!(gb["country_code"], "GB");
    }
}
