//! Recipients: the raw record a store hands over, and the parsed one the pipeline uses.
//!
//! Stores never judge their data: a [`RecipientRecord`] carries the columns exactly as
//! read (NULLs as `None`, dates as text). [`Recipient::from_record`] parses each field
//! once and keeps the per-field error, so a bad row becomes a written-back
//! `NotSent { InvalidNumber }` (or invalid date) instead of a crash or an endless retry.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::date_window::{DateField, DateWindow};
use crate::outcome::NotSentReason;
use crate::phone::{PhoneError, PhoneNumber, PhoneParser, RawPhone};

/// The store's own id for a record: opaque text, never interpreted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordId(pub String);

impl RecordId {
    /// Wraps a store id.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for RecordId {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// A claim on a set of records, stamped by the store. Write-backs and releases carry it
/// so that a worker whose lease expired cannot overwrite a record another worker took.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClaimToken(pub String);

impl ClaimToken {
    /// A token with this text. Tokens are made by the store that hands out the claim
    /// (each in its own way: the domain creates no randomness); tests name their own.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The token text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClaimToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The verification server's test types (`pkg/api/api.go:28-35` upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestType {
    /// A confirmed positive test.
    Confirmed,
    /// A clinical diagnosis without a test.
    Likely,
    /// A negative test.
    Negative,
    /// A self-reported test.
    UserReport,
}

impl TestType {
    /// The exact text the verification server expects.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Likely => "likely",
            Self::Negative => "negative",
            Self::UserReport => "user-report",
        }
    }

    /// Parses a store value leniently (case and surrounding space ignored; the server
    /// itself rejects surrounding space, so we normalise it away).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "confirmed" => Some(Self::Confirmed),
            "likely" => Some(Self::Likely),
            "negative" => Some(Self::Negative),
            "user-report" | "user_report" | "userreport" => Some(Self::UserReport),
            _ => None,
        }
    }
}

/// A record as a store holds it. Nothing here has been judged yet.
#[derive(Clone, PartialEq, Eq)]
pub struct RecipientRecord {
    /// The store's id.
    pub id: RecordId,
    /// The phone column, `None` for NULL.
    pub phone: Option<RawPhone>,
    /// The test date column as text (`YYYY-MM-DD`), `None` for NULL.
    pub test_date: Option<String>,
    /// The symptom onset date column as text, `None` for NULL or an absent column.
    pub symptom_date: Option<String>,
    /// The test type column, `None` for NULL or an absent column.
    pub test_type: Option<String>,
    /// The user's time-zone offset in minutes, when the store has one.
    pub tz_offset: Option<i32>,
}

impl RecipientRecord {
    /// A record with only an id and a phone, as most tests need.
    pub fn new(id: impl Into<String>, phone: impl Into<String>) -> Self {
        Self {
            id: RecordId::new(id),
            phone: Some(RawPhone::new(phone)),
            test_date: None,
            symptom_date: None,
            test_type: None,
            tz_offset: None,
        }
    }

    /// Sets the test date text.
    #[must_use]
    pub fn with_test_date(mut self, date: impl Into<String>) -> Self {
        self.test_date = Some(date.into());
        self
    }
}

impl fmt::Debug for RecipientRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecipientRecord")
            .field("id", &self.id)
            .field("phone", &self.phone)
            .field("test_date", &self.test_date)
            .field("symptom_date", &self.symptom_date)
            .field("test_type", &self.test_type)
            .field("tz_offset", &self.tz_offset)
            .finish()
    }
}

/// Why a date column could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// Not `YYYY-MM-DD` (or not a real calendar date).
    #[error("the date is not a YYYY-MM-DD calendar date")]
    Malformed,
}

/// A record with every field parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The store's id.
    pub id: RecordId,
    /// The phone as read (masked in `Debug`).
    pub raw_phone: RawPhone,
    /// The parsed phone, or why it is not one.
    pub phone: Result<PhoneNumber, PhoneError>,
    /// The test type, `None` when the store has none (the issuer's configured default applies).
    pub test_type: Option<TestType>,
    /// The test date, `None` when absent.
    pub test_date: Result<Option<NaiveDate>, DateError>,
    /// The symptom onset date, `None` when absent.
    pub symptom_date: Result<Option<NaiveDate>, DateError>,
    /// Offset in minutes of the user's time zone (0 = UTC).
    pub tz_offset: i32,
    /// Text of a test type the server would not know, kept to explain the rejection.
    pub unknown_test_type: bool,
}

impl Recipient {
    /// Parses a raw store record.
    pub fn from_record(record: RecipientRecord, parser: &PhoneParser) -> Self {
        let raw_phone = record.phone.unwrap_or_default();
        let phone = parser.parse(raw_phone.expose());
        let test_type_text = record.test_type.filter(|t| !t.trim().is_empty());
        let test_type = test_type_text.as_deref().and_then(TestType::parse);
        Self {
            id: record.id,
            phone,
            raw_phone,
            unknown_test_type: test_type_text.is_some() && test_type.is_none(),
            test_type,
            test_date: parse_date(record.test_date.as_deref()),
            symptom_date: parse_date(record.symptom_date.as_deref()),
            tz_offset: record.tz_offset.unwrap_or(0),
        }
    }
}

/// A recipient that passed every check needing no outside call: what the phone
/// validator and the verification server are asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocallyChecked {
    /// The parsed phone.
    pub phone: PhoneNumber,
    /// The test type, `None` for the issuer's configured default.
    pub test_type: Option<TestType>,
    /// The test date, inside the server's window.
    pub test_date: Option<NaiveDate>,
    /// The symptom onset date, inside the server's window.
    pub symptom_date: Option<NaiveDate>,
    /// Offset in minutes of the user's time zone.
    pub tz_offset: i32,
}

impl Recipient {
    /// Settles what can be settled without asking anyone, in the order an operator would
    /// fix it: the phone, the test date, the symptom date (each against the server's
    /// `window` on `today`, UTC), the test type. `Err` is the record's final reason.
    pub fn check_locally(
        self,
        today: NaiveDate,
        window: &DateWindow,
    ) -> (RecordId, Result<LocallyChecked, NotSentReason>) {
        let Self {
            id,
            phone,
            test_type,
            test_date,
            symptom_date,
            tz_offset,
            unknown_test_type,
            ..
        } = self;
        let check_date = |date: Result<Option<NaiveDate>, DateError>, field: DateField| match date {
            Err(DateError::Malformed) => Err(NotSentReason::InvalidDate {
                field,
                detail: "malformed".to_owned(),
            }),
            Ok(Some(day)) => window
                .check(today, day, tz_offset)
                .map(|()| Some(day))
                .map_err(|outside| NotSentReason::InvalidDate {
                    field,
                    detail: outside.code().to_owned(),
                }),
            Ok(None) => Ok(None),
        };
        let checked = (|| {
            let phone = phone.map_err(|error| NotSentReason::InvalidNumber {
                detail: error.code().to_owned(),
            })?;
            let test_date = check_date(test_date, DateField::TestDate)?;
            let symptom_date = check_date(symptom_date, DateField::SymptomDate)?;
            if unknown_test_type {
                return Err(NotSentReason::InvalidTestType);
            }
            Ok(LocallyChecked {
                phone,
                test_type,
                test_date,
                symptom_date,
                tz_offset,
            })
        })();
        (id, checked)
    }
}

/// `YYYY-MM-DD`, tolerating surrounding space and a trailing time part that some stores
/// add when a DATE is read as text (`2021-06-01 00:00:00`).
fn parse_date(text: Option<&str>) -> Result<Option<NaiveDate>, DateError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let day = text.get(..10).ok_or(DateError::Malformed)?;
    let rest = &text[10..];
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('T')) {
        return Err(DateError::Malformed);
    }
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| DateError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_field_once_and_keeps_field_errors() {
        let mut record = RecipientRecord::new("r1", "(415) 555-0123").with_test_date("2021-06-01");
        record.symptom_date = Some("June 1st".into());
        record.test_type = Some(" Confirmed ".into());
        let r = Recipient::from_record(record, &PhoneParser::default());
        assert_eq!(
            r.phone.as_ref().map(PhoneNumber::expose_e164),
            Ok("+14155550123")
        );
        assert_eq!(r.test_date, Ok(NaiveDate::from_ymd_opt(2021, 6, 1)));
        assert_eq!(r.symptom_date, Err(DateError::Malformed));
        assert_eq!(r.test_type, Some(TestType::Confirmed));
        assert!(!r.unknown_test_type);
    }

    #[test]
    fn null_phone_is_an_empty_phone_not_a_crash() {
        let record = RecipientRecord {
            id: "r2".into(),
            phone: None,
            test_date: None,
            symptom_date: None,
            test_type: Some("antibody".into()),
            tz_offset: None,
        };
        let r = Recipient::from_record(record, &PhoneParser::default());
        assert_eq!(r.phone, Err(PhoneError::Empty));
        assert_eq!(r.test_date, Ok(None));
        assert!(r.unknown_test_type);
    }

    #[test]
    fn dates_tolerate_a_time_part_but_nothing_else() {
        assert!(parse_date(Some("2021-06-01 00:00:00")).unwrap().is_some());
        assert!(parse_date(Some("2021-06-01T00:00:00Z")).unwrap().is_some());
        assert_eq!(parse_date(Some("2021-02-30")), Err(DateError::Malformed));
        assert_eq!(parse_date(Some("2021-06-011")), Err(DateError::Malformed));
        assert_eq!(parse_date(Some("06/01/2021")), Err(DateError::Malformed));
        assert_eq!(parse_date(Some("")), Ok(None));
    }

    #[test]
    fn local_checks_settle_bad_phones_dates_and_types_in_order() {
        let today = NaiveDate::from_ymd_opt(2021, 6, 15).expect("date");
        let window = DateWindow::default();
        let parser = PhoneParser::default();
        let check = |record: RecipientRecord| {
            Recipient::from_record(record, &parser)
                .check_locally(today, &window)
                .1
        };
        let ok = check(RecipientRecord::new("a", "4155550123").with_test_date("2021-06-01"));
        assert_eq!(
            ok.map(|c| c.test_date),
            Ok(NaiveDate::from_ymd_opt(2021, 6, 1))
        );
        assert_eq!(
            check(RecipientRecord::new("b", "nope").with_test_date("bad")),
            Err(NotSentReason::InvalidNumber {
                detail: "unexpected_character".into()
            }),
            "the phone is reported first"
        );
        assert_eq!(
            check(RecipientRecord::new("c", "4155550123").with_test_date("2021-06-16")),
            Err(NotSentReason::InvalidDate {
                field: DateField::TestDate,
                detail: "in_future".into()
            })
        );
        let mut record = RecipientRecord::new("d", "4155550123").with_test_date("2021-06-01");
        record.symptom_date = Some("2021-13-01".into());
        assert_eq!(
            check(record),
            Err(NotSentReason::InvalidDate {
                field: DateField::SymptomDate,
                detail: "malformed".into()
            })
        );
        let mut record = RecipientRecord::new("e", "4155550123");
        record.test_type = Some("antibody".into());
        assert_eq!(check(record), Err(NotSentReason::InvalidTestType));
    }

    #[test]
    fn debug_of_a_record_masks_the_phone() {
        let record = RecipientRecord::new("r1", "4155550123");
        assert!(!format!("{record:?}").contains("41555501"));
    }
}
