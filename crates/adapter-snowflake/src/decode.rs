//! Snowflake cells into the domain's plain values, whatever the source column's type.
//!
//! Stores never judge their data, so every source column is read as text exactly as it
//! is held: a phone stored as `NUMBER` becomes its digits, a `DATE` becomes `YYYY-MM-DD`,
//! a timestamp keeps its time part (the domain's date parser tolerates it). Only the
//! time-zone offset is numeric; an offset that is not a whole number of minutes is
//! reported and read as absent rather than failing the whole claim.

use ca_notify_domain::{RawPhone, RecipientRecord, RecordId};
use chrono::{DateTime, Utc};
use snowflake_connector_rs::CellValue;

/// A row or cell the store cannot use. The message never holds cell contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected Snowflake result: {0}")]
pub(crate) struct DecodeError(pub String);

/// One recipient row as the claim and peek reads return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceRow {
    pub record: RecipientRecord,
    /// Source rows sharing this id (more than one is a data problem worth a warning).
    pub source_rows: u64,
    /// The time-zone offset column held something that is not whole minutes.
    pub bad_tz_offset: bool,
}

/// Columns of a recipient row, in [`crate::sql`]'s fixed order.
const ROW_COLUMNS: usize = 7;

/// Decodes one row of `read_claimed` or `peek`.
pub(crate) fn source_row(values: &[CellValue]) -> Result<SourceRow, DecodeError> {
    if values.len() != ROW_COLUMNS {
        return Err(DecodeError(format!(
            "a recipient row has {} columns, expected {ROW_COLUMNS}",
            values.len()
        )));
    }
    let id = text(&values[0], "record id")?
        .ok_or_else(|| DecodeError("a claimed record has a NULL id".to_owned()))?;
    let (tz_offset, bad_tz_offset) = match minutes(&values[5]) {
        Ok(offset) => (offset, false),
        Err(()) => (None, true),
    };
    Ok(SourceRow {
        record: RecipientRecord {
            id: RecordId::new(id),
            phone: text(&values[1], "phone")?.map(RawPhone::new),
            test_date: text(&values[2], "test date")?,
            symptom_date: text(&values[3], "symptom date")?,
            test_type: text(&values[4], "test type")?,
            tz_offset,
        },
        source_rows: count(&values[6], "source row count")?,
        bad_tz_offset,
    })
}

/// A cell as text, `None` for NULL.
pub(crate) fn text(cell: &CellValue, what: &str) -> Result<Option<String>, DecodeError> {
    Ok(Some(match cell {
        CellValue::Null => return Ok(None),
        CellValue::String(s) => s.clone(),
        CellValue::Integer(i) => i.to_string(),
        CellValue::Decimal(d) => d.raw().to_owned(),
        CellValue::Float(f) => float_text(*f),
        CellValue::Boolean(b) => b.to_string(),
        CellValue::Date(d) => d.format("%Y-%m-%d").to_string(),
        CellValue::TimestampNtz(t) => t.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
        CellValue::TimestampLtz(t) => t.format("%Y-%m-%d %H:%M:%S%.f%:z").to_string(),
        CellValue::TimestampTz(t) => t.format("%Y-%m-%d %H:%M:%S%.f%:z").to_string(),
        CellValue::Time(t) => t.format("%H:%M:%S%.f").to_string(),
        CellValue::Json(v) => match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        },
        _ => {
            return Err(DecodeError(format!(
                "the {what} column has a type the store cannot read as text"
            )))
        }
    }))
}

/// A point in time, `None` for NULL or a cell that holds none: a timestamp (without a
/// zone: UTC, the session's `TIMEZONE`) or a date (its midnight, UTC).
pub(crate) fn instant(cell: &CellValue) -> Option<DateTime<Utc>> {
    match cell {
        CellValue::TimestampNtz(t) => Some(t.and_utc()),
        CellValue::TimestampLtz(t) => Some(t.with_timezone(&Utc)),
        CellValue::TimestampTz(t) => Some(t.with_timezone(&Utc)),
        CellValue::Date(d) => d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()),
        _ => None,
    }
}

/// Integral floats print without a fraction, so a phone held as `FLOAT` keeps its digits.
fn float_text(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e17 {
        format!("{f:.0}")
    } else {
        f.to_string()
    }
}

/// A whole number of minutes, `None` for NULL; `Err` for anything else.
fn minutes(cell: &CellValue) -> Result<Option<i32>, ()> {
    let whole = match cell {
        CellValue::Null => return Ok(None),
        CellValue::Integer(i) => *i,
        CellValue::Float(f) if f.is_finite() && f.fract() == 0.0 => *f as i128,
        CellValue::Decimal(d) => parse_integral(d.raw()).ok_or(())?,
        CellValue::String(s) if s.trim().is_empty() => return Ok(None),
        CellValue::String(s) => parse_integral(s.trim()).ok_or(())?,
        _ => return Err(()),
    };
    // Real offsets lie within ±14 hours.
    i32::try_from(whole)
        .ok()
        .filter(|m| m.abs() <= 14 * 60)
        .map(Some)
        .ok_or(())
}

/// `"42"`, `"-42"`, `"42.000"`; not `"42.5"`.
fn parse_integral(text: &str) -> Option<i128> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if !fraction.chars().all(|c| c == '0') {
        return None;
    }
    whole.parse().ok()
}

/// A non-negative count (`COUNT`, `SUM`, a DML row count), however Snowflake typed it.
pub(crate) fn count(cell: &CellValue, what: &str) -> Result<u64, DecodeError> {
    let bad = || DecodeError(format!("the {what} is not a count"));
    let n = match cell {
        CellValue::Null => 0,
        CellValue::Integer(i) => *i,
        CellValue::Float(f) if f.is_finite() && f.fract() == 0.0 => *f as i128,
        CellValue::Decimal(d) => parse_integral(d.raw()).ok_or_else(bad)?,
        CellValue::String(s) => parse_integral(s.trim()).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    u64::try_from(n).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone, Utc};

    use super::*;

    fn row(cells: Vec<CellValue>) -> Result<SourceRow, DecodeError> {
        source_row(&cells)
    }

    #[test]
    fn every_column_type_reads_as_the_text_it_holds() {
        let date = NaiveDate::from_ymd_opt(2021, 6, 1).expect("date");
        let r = row(vec![
            CellValue::Integer(1001),
            CellValue::Integer(4_155_550_123),
            CellValue::Date(date),
            CellValue::TimestampNtz(date.and_hms_opt(0, 0, 0).expect("time")),
            CellValue::String("confirmed".into()),
            CellValue::Integer(-420),
            CellValue::Integer(1),
        ])
        .expect("decodes");
        assert_eq!(r.record.id, RecordId::new("1001"));
        assert_eq!(r.record.phone, Some(RawPhone::new("4155550123")));
        assert_eq!(r.record.test_date.as_deref(), Some("2021-06-01"));
        assert_eq!(
            r.record.symptom_date.as_deref(),
            Some("2021-06-01 00:00:00")
        );
        assert_eq!(r.record.test_type.as_deref(), Some("confirmed"));
        assert_eq!(r.record.tz_offset, Some(-420));
        assert_eq!(r.source_rows, 1);
        assert!(!r.bad_tz_offset);
    }

    #[test]
    fn nulls_stay_absent() {
        let r = row(vec![
            CellValue::String("a".into()),
            CellValue::Null,
            CellValue::Null,
            CellValue::Null,
            CellValue::Null,
            CellValue::Null,
            CellValue::Integer(2),
        ])
        .expect("decodes");
        assert_eq!(r.record.phone, None);
        assert_eq!(r.record.test_date, None);
        assert_eq!(r.record.tz_offset, None);
        assert_eq!(r.source_rows, 2);
    }

    #[test]
    fn a_bad_time_zone_offset_is_reported_not_fatal() {
        for bad in [
            CellValue::String("UTC-7".into()),
            CellValue::Float(90.5),
            CellValue::Integer(100_000),
        ] {
            let r = row(vec![
                CellValue::String("a".into()),
                CellValue::Null,
                CellValue::Null,
                CellValue::Null,
                CellValue::Null,
                bad,
                CellValue::Integer(1),
            ])
            .expect("decodes");
            assert_eq!(r.record.tz_offset, None);
            assert!(r.bad_tz_offset);
        }
    }

    #[test]
    fn numbers_and_timestamps_keep_their_digits() {
        assert_eq!(
            text(&CellValue::Float(4_155_550_123.0), "phone")
                .unwrap()
                .as_deref(),
            Some("4155550123")
        );
        let ltz = Utc.with_ymd_and_hms(2021, 6, 1, 12, 30, 0).unwrap();
        assert_eq!(
            text(&CellValue::TimestampLtz(ltz), "test date")
                .unwrap()
                .as_deref(),
            Some("2021-06-01 12:30:00+00:00")
        );
        assert_eq!(count(&CellValue::Float(3.0), "n"), Ok(3));
        assert!(count(&CellValue::Integer(-1), "n").is_err());
        assert!(count(&CellValue::Boolean(true), "n").is_err());
    }

    #[test]
    fn errors_never_carry_cell_contents() {
        let e = row(vec![CellValue::String("4155550123".into())]).expect_err("short row");
        assert!(!e.to_string().contains("4155550123"));
        let e = text(&CellValue::Binary(vec![1u8].into()), "phone").expect_err("binary");
        assert!(e.to_string().contains("phone"));
    }
}
