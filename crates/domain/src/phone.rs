//! Phone numbers: parsed once, normalised to E.164, and never shown whole by accident.
//!
//! A phone number is personal health data here (it says "this person tested positive"),
//! so [`PhoneNumber`] and [`RawPhone`] mask every digit but the last two in `Debug` and
//! `Display`. The full E.164 text is reachable only through [`PhoneNumber::expose_e164`],
//! a name that is easy to grep for in review.
//!
//! Parsing accepts what real spreadsheets hold ("(415) 555-0123", "415.555.0123",
//! "14155550123", stray spaces) and rejects the rest with a typed [`PhoneError`]. Input
//! that is already canonical North American E.164, or a plain 10/11-digit NANP number,
//! takes a fast path that gives exactly what libphonenumber would (tested below); the
//! rest goes through the `phonenumber` crate.

use std::fmt;

use phonenumber::country;

/// Longest raw input we hand to the parser; anything longer is not a phone number.
const MAX_RAW_LEN: usize = 64;

/// Why a raw value is not a usable phone number. The texts never contain the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum PhoneError {
    /// Nothing but white space (or NULL in the store).
    #[error("the phone number is empty")]
    Empty,
    /// Letters, unicode digits or other characters that are not digits or separators.
    #[error("the phone number contains characters that are not digits or separators")]
    UnexpectedCharacter,
    /// An extension or dialling pause ("x12", "ext. 4", ",", ";", "#").
    #[error("the phone number has an extension, which cannot receive a text")]
    HasExtension,
    /// Digits that do not form a number at all.
    #[error("the phone number is not a number")]
    NotANumber,
    /// A `+` prefix with a country code that does not exist.
    #[error("the phone number has an unknown country code")]
    InvalidCountryCode,
    /// Fewer digits than any phone number has.
    #[error("the phone number is too short")]
    TooShort,
    /// More digits than any phone number has.
    #[error("the phone number is too long")]
    TooLong,
}

impl PhoneError {
    /// A stable, machine-readable code, written into the store's reason column.
    pub fn code(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::UnexpectedCharacter => "unexpected_character",
            Self::HasExtension => "has_extension",
            Self::NotANumber => "not_a_number",
            Self::InvalidCountryCode => "invalid_country_code",
            Self::TooShort => "too_short",
            Self::TooLong => "too_long",
        }
    }
}

/// A phone number in canonical E.164 form (`+` and up to 15 digits).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber {
    e164: Box<str>,
}

impl PhoneNumber {
    /// The full E.164 text. Call it only where the number must leave the process
    /// (the verification server, Twilio, the dedup HMAC) — never for logs or errors.
    pub fn expose_e164(&self) -> &str {
        &self.e164
    }

    /// The masked form used by `Debug` and `Display`: `+*********23`.
    pub fn masked(&self) -> String {
        mask_digits(&self.e164)
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// The phone column exactly as the store holds it, before parsing. Masked like
/// [`PhoneNumber`]; kept so that an adapter can report what it read without showing it.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct RawPhone(String);

impl RawPhone {
    /// Wraps a raw value from a store or a file.
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    /// The raw text. Only parsers and importers should need it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RawPhone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawPhone({})", mask_digits(&self.0))
    }
}

impl fmt::Display for RawPhone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_digits(&self.0))
    }
}

/// Replaces every digit but the last two with `*`, and drops everything that is neither a
/// digit nor `+`, so that no formatting can smuggle a number past the mask.
fn mask_digits(text: &str) -> String {
    let digits = text.chars().filter(char::is_ascii_digit).count();
    let mut seen = 0;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '+' {
            out.push('+');
        } else if c.is_ascii_digit() {
            seen += 1;
            out.push(if digits - seen < 2 { c } else { '*' });
        } else if !c.is_ascii_punctuation() && !c.is_whitespace() {
            out.push('?');
        }
    }
    out
}

/// The region named in configuration is not an ISO 3166 alpha-2 code libphonenumber knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown phone region {0:?}: expected an ISO 3166 alpha-2 code such as \"US\"")]
pub struct UnknownRegion(pub String);

/// Parses raw phone text into [`PhoneNumber`]s, for one default region.
#[derive(Debug, Clone, Copy)]
pub struct PhoneParser {
    region: country::Id,
    nanp_region: bool,
}

impl Default for PhoneParser {
    fn default() -> Self {
        Self::new("US").expect("US is a known region")
    }
}

impl PhoneParser {
    /// A parser whose national-format numbers belong to `region` (e.g. "US").
    ///
    /// # Errors
    /// [`UnknownRegion`] when the code is not a region libphonenumber knows.
    pub fn new(region: &str) -> Result<Self, UnknownRegion> {
        let region_upper = region.trim().to_ascii_uppercase();
        let id: country::Id = region_upper
            .parse()
            .map_err(|_| UnknownRegion(region.to_owned()))?;
        Ok(Self {
            region: id,
            nanp_region: NANP_REGIONS.contains(&region_upper.as_str()),
        })
    }

    /// Parses and normalises one raw value.
    ///
    /// # Errors
    /// A [`PhoneError`] saying why the value is not a phone number.
    pub fn parse(&self, raw: &str) -> Result<PhoneNumber, PhoneError> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(PhoneError::Empty);
        }
        if text.len() > MAX_RAW_LEN {
            return Err(PhoneError::TooLong);
        }
        let digits = screen_characters(text)?;
        if let Some(e164) = self.fast_path(text, &digits) {
            return Ok(PhoneNumber { e164: e164.into() });
        }
        self.slow_path(text)
    }

    /// Canonical NANP input, the bulk of real data, without the general parser.
    fn fast_path(&self, text: &str, digits: &str) -> Option<String> {
        let national = if text.starts_with('+') {
            digits.strip_prefix('1').filter(|d| d.len() == 10)?
        } else if self.nanp_region && digits.len() == 10 {
            digits
        } else if self.nanp_region && digits.len() == 11 {
            digits.strip_prefix('1')?
        } else {
            return None;
        };
        if !is_nanp_national(national) {
            return None;
        }
        let mut e164 = String::with_capacity(12);
        e164.push_str("+1");
        e164.push_str(national);
        Some(e164)
    }

    fn slow_path(&self, text: &str) -> Result<PhoneNumber, PhoneError> {
        // An international number must not be read with the default region: the crate
        // then strips that region's national prefix, so "+49 151…" (a German mobile)
        // would lose its leading 1 under "US".
        let region = (!text.starts_with('+')).then_some(self.region);
        let parsed =
            phonenumber::parse(region, text).map_err(|e| match e {
                phonenumber::ParseError::InvalidCountryCode => PhoneError::InvalidCountryCode,
                phonenumber::ParseError::TooShortAfterIdd
                | phonenumber::ParseError::TooShortNsn => PhoneError::TooShort,
                phonenumber::ParseError::TooLong => PhoneError::TooLong,
                phonenumber::ParseError::NoNumber
                | phonenumber::ParseError::MalformedInteger(_) => PhoneError::NotANumber,
            })?;
        if parsed.extension().is_some() {
            return Err(PhoneError::HasExtension);
        }
        let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
        let digit_count = e164.chars().filter(char::is_ascii_digit).count();
        if digit_count > 15 {
            return Err(PhoneError::TooLong);
        }
        if digit_count < 7 {
            return Err(PhoneError::TooShort);
        }
        Ok(PhoneNumber { e164: e164.into() })
    }
}

/// Regions that share country code 1 and the NANP numbering plan.
const NANP_REGIONS: &[&str] = &[
    "US", "CA", "AG", "AI", "AS", "BB", "BM", "BS", "DM", "DO", "GD", "GU", "JM", "KN", "KY", "LC",
    "MP", "MS", "PR", "SX", "TC", "TT", "VC", "VG", "VI",
];

/// NXX-NXX-XXXX: area code and exchange both start with 2–9.
fn is_nanp_national(national: &str) -> bool {
    let b = national.as_bytes();
    b.len() == 10 && (b'2'..=b'9').contains(&b[0]) && (b'2'..=b'9').contains(&b[3])
}

/// Keeps the digits of `text`, refusing anything a phone column should not hold.
fn screen_characters(text: &str) -> Result<String, PhoneError> {
    let mut digits = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => {}
            ' ' | '\t' | '(' | ')' | '-' | '.' | '/' => {}
            ',' | ';' | '#' | '*' => return Err(PhoneError::HasExtension),
            'x' | 'X' | 'e' | 'E' if looks_like_extension(&text[i..]) => {
                return Err(PhoneError::HasExtension)
            }
            _ => return Err(PhoneError::UnexpectedCharacter),
        }
    }
    if digits.is_empty() {
        return Err(PhoneError::NotANumber);
    }
    Ok(digits)
}

/// "x123", "ext 12", "ext. 12", "extension 4" after a number.
fn looks_like_extension(rest: &str) -> bool {
    let lower = rest.to_ascii_lowercase();
    let tail = ["extension", "ext.", "ext", "x"]
        .iter()
        .find_map(|marker| lower.strip_prefix(marker));
    tail.is_some_and(|t| {
        let t = t.trim_start();
        !t.is_empty() && t.chars().all(|c| c.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us() -> PhoneParser {
        PhoneParser::default()
    }

    #[test]
    fn accepts_the_formats_spreadsheets_hold() {
        for raw in [
            "(415) 555-0123",
            "415.555.0123",
            "14155550123",
            "  415 555 0123 ",
            "+1 415 555 0123",
            "+14155550123",
            "415-555-0123",
            "1-415-555-0123",
            "415/555-0123",
        ] {
            let phone = us().parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
            assert_eq!(phone.expose_e164(), "+14155550123", "{raw:?}");
        }
    }

    #[test]
    fn fast_path_agrees_with_libphonenumber() {
        let parser = us();
        // A spread of national numbers, every area-code and exchange first digit.
        for area in ["201", "415", "650", "917", "303", "808", "212", "999"] {
            for exchange in ["200", "555", "867", "999", "234"] {
                let national = format!("{area}{exchange}0123");
                for raw in [
                    national.clone(),
                    format!("1{national}"),
                    format!("+1{national}"),
                ] {
                    let fast = parser.parse(&raw).expect("parses");
                    let slow = parser.slow_path(&raw).expect("slow path parses");
                    assert_eq!(fast.expose_e164(), slow.expose_e164(), "{raw}");
                }
            }
        }
    }

    #[test]
    fn parses_international_numbers_through_libphonenumber() {
        let de = us().parse("+49 151 12345678").expect("German mobile");
        assert_eq!(de.expose_e164(), "+4915112345678");
        let phone = us().parse("+44 20 7946 0958").expect("UK number");
        assert_eq!(phone.expose_e164(), "+442079460958");
        let mx = PhoneParser::new("mx").expect("region");
        assert_eq!(
            mx.parse("55 1234 5678").expect("MX national").expose_e164(),
            "+525512345678"
        );
    }

    #[test]
    fn rejects_the_rest_with_a_typed_reason() {
        let cases = [
            ("", PhoneError::Empty),
            ("   ", PhoneError::Empty),
            ("call me", PhoneError::UnexpectedCharacter),
            ("415-555-CALL", PhoneError::UnexpectedCharacter),
            ("４１５５５５０１２３", PhoneError::UnexpectedCharacter),
            ("415 555 0123 x12", PhoneError::HasExtension),
            ("415 555 0123 ext. 12", PhoneError::HasExtension),
            ("415 555 0123;12", PhoneError::HasExtension),
            ("123456789012345678901234567890", PhoneError::TooLong),
            ("+999 123 456", PhoneError::InvalidCountryCode),
            ("12", PhoneError::TooShort),
            ("'; DROP TABLE phones; --", PhoneError::UnexpectedCharacter),
            ("--", PhoneError::NotANumber),
            ("1+415", PhoneError::UnexpectedCharacter),
        ];
        for (raw, want) in cases {
            assert_eq!(us().parse(raw), Err(want), "{raw:?}");
        }
        let long = "1".repeat(10_000_000);
        assert_eq!(us().parse(&long), Err(PhoneError::TooLong));
    }

    #[test]
    fn debug_and_display_mask_all_but_the_last_two_digits() {
        let phone = us().parse("(415) 555-0123").expect("parses");
        for shown in [format!("{phone:?}"), phone.to_string(), phone.masked()] {
            assert!(!shown.contains("4155550123"), "{shown}");
            assert!(!shown.contains("555"), "{shown}");
            assert!(shown.ends_with("23") || shown.ends_with("23)"), "{shown}");
        }
        assert_eq!(phone.masked(), "+*********23");
        let raw = RawPhone::new("(415) 555-0123");
        assert_eq!(format!("{raw:?}"), "RawPhone(********23)");
    }

    #[test]
    fn error_texts_never_carry_the_number() {
        for raw in ["415 555 0123 x99", "+999 555 0199"] {
            let err = us().parse(raw).expect_err("rejected");
            assert!(!err.to_string().contains("555"));
        }
    }

    #[test]
    fn unknown_region_is_a_configuration_error() {
        assert!(PhoneParser::new("ZZ").is_err());
        assert!(PhoneParser::new("ca").is_ok());
    }
}
