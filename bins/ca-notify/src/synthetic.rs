//! Synthetic recipients for the demo: the mix a real day brings.
//!
//! Mobiles, landlines, numbers the validator calls invalid, text that is no number at all,
//! the same person twice in different formats, and a few dates the verification server
//! would refuse. Numbers come from the 555-01xx range reserved for fiction where the
//! plan allows, and never from a real person's list.

use ca_notify_domain::RecipientRecord;
use chrono::{Days, NaiveDate};

/// What kind of line a synthetic number should be, for the validator in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// Receives SMS.
    Mobile,
    /// Cannot receive SMS.
    Landline,
    /// The validator calls it invalid.
    Invalid,
}

/// Generates `count` records; `number` turns (kind, serial) into a national 10-digit
/// number that the validator in use will judge as `kind`.
pub fn recipients(
    count: usize,
    today: NaiveDate,
    number: impl Fn(LineKind, usize) -> String,
) -> Vec<RecipientRecord> {
    let mut records = Vec::with_capacity(count);
    for i in 0..count {
        let id = format!("demo-{i:06}");
        let test_date = today
            .checked_sub_days(Days::new((i % 14) as u64))
            .unwrap_or(today)
            .to_string();
        let (phone, test_date) = match i % 20 {
            0..=12 => (number(LineKind::Mobile, i), test_date),
            13 | 14 => (number(LineKind::Landline, i), test_date),
            15 => (number(LineKind::Invalid, i), test_date),
            16 => ("not a phone".to_owned(), test_date),
            17 if i >= 20 => {
                // The same person as record i-5 (a mobile), written differently.
                let earlier = &records[i - 5];
                let (phone, date) = duplicate_of(earlier);
                (phone, date)
            }
            18 => (
                number(LineKind::Mobile, i),
                today
                    .checked_sub_days(Days::new(60))
                    .unwrap_or(today)
                    .to_string(),
            ),
            _ => (format_national(&number(LineKind::Mobile, i)), test_date),
        };
        records.push(RecipientRecord::new(id, phone).with_test_date(test_date));
    }
    records
}

fn duplicate_of(record: &RecipientRecord) -> (String, String) {
    let phone = record
        .phone
        .as_ref()
        .map(|p| p.expose().to_owned())
        .unwrap_or_default();
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    let national = digits.strip_prefix('1').unwrap_or(&digits).to_owned();
    (
        format!("+1{national}"),
        record.test_date.clone().unwrap_or_default(),
    )
}

/// `(415) 555-0123` style, as spreadsheets often hold numbers.
fn format_national(national: &str) -> String {
    if national.len() == 10 {
        format!(
            "({}) {}-{}",
            &national[..3],
            &national[3..6],
            &national[6..]
        )
    } else {
        national.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_has_every_kind() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 28).expect("date");
        let records = recipients(200, today, |kind, i| match kind {
            LineKind::Mobile => format!("415555{:04}", i % 9000 + 1000),
            LineKind::Landline => format!("212555{:04}", i % 9000 + 1000),
            LineKind::Invalid => "4155550199".to_owned(),
        });
        assert_eq!(records.len(), 200);
        let phones: Vec<_> = records
            .iter()
            .map(|r| {
                r.phone
                    .as_ref()
                    .map(|p| p.expose().to_owned())
                    .unwrap_or_default()
            })
            .collect();
        assert!(phones.iter().any(|p| p.starts_with("212")));
        assert!(phones.iter().any(|p| p == "not a phone"));
        assert!(phones.iter().any(|p| p.starts_with("+1")));
        assert!(phones.iter().any(|p| p.starts_with('(')));
    }
}
