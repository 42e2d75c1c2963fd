//! The verification server's accepted date range, checked before a request is spent.
//!
//! The server accepts a test or symptom date from `today − 28 days` to `today`, both in
//! UTC and inclusive; a negative `tzOffset` loosens the lower bound by one day and the
//! upper bound is never loosened (the verification server's
//! `pkg/controller/issueapi/parse_date.go:72-122`). Anything else is `invalid_date`,
//! permanently, so the pipeline settles such records locally as `NotSent` without
//! spending a request or quota.

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

/// Which date column a rule speaks of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DateField {
    /// The test date.
    TestDate,
    /// The symptom onset date.
    SymptomDate,
}

impl DateField {
    /// The column name as used in reason codes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TestDate => "test_date",
            Self::SymptomDate => "symptom_date",
        }
    }
}

/// The server's accepted window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateWindow {
    /// How many days back a date may lie (the server's `ALLOWED_PAST_SYMPTOM_DAYS`).
    pub past_days: u32,
}

impl Default for DateWindow {
    fn default() -> Self {
        Self { past_days: 28 }
    }
}

/// A date outside the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutsideWindow {
    /// Before the lower bound.
    TooOld,
    /// After today (UTC).
    InFuture,
}

impl OutsideWindow {
    /// A stable code for the reason column.
    pub fn code(self) -> &'static str {
        match self {
            Self::TooOld => "too_old",
            Self::InFuture => "in_future",
        }
    }
}

impl DateWindow {
    /// Checks one date against the window on `today_utc`.
    ///
    /// # Errors
    /// Which side of the window the date falls on.
    pub fn check(
        &self,
        today_utc: NaiveDate,
        date: NaiveDate,
        tz_offset_minutes: i32,
    ) -> Result<(), OutsideWindow> {
        let extra = u64::from(tz_offset_minutes < 0);
        let min = today_utc
            .checked_sub_days(Days::new(u64::from(self.past_days) + extra))
            .unwrap_or(NaiveDate::MIN);
        if date > today_utc {
            Err(OutsideWindow::InFuture)
        } else if date < min {
            Err(OutsideWindow::TooOld)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    #[test]
    fn bounds_are_inclusive() {
        let w = DateWindow::default();
        let today = day(2021, 6, 15);
        assert_eq!(w.check(today, today, 0), Ok(()));
        assert_eq!(w.check(today, day(2021, 5, 18), 0), Ok(()));
        assert_eq!(
            w.check(today, day(2021, 5, 17), 0),
            Err(OutsideWindow::TooOld)
        );
        assert_eq!(
            w.check(today, day(2021, 6, 16), 0),
            Err(OutsideWindow::InFuture)
        );
    }

    #[test]
    fn negative_offset_loosens_only_the_lower_bound() {
        let w = DateWindow::default();
        let today = day(2021, 6, 15);
        assert_eq!(w.check(today, day(2021, 5, 17), -420), Ok(()));
        assert_eq!(
            w.check(today, day(2021, 5, 16), -420),
            Err(OutsideWindow::TooOld)
        );
        assert_eq!(
            w.check(today, day(2021, 6, 16), 600),
            Err(OutsideWindow::InFuture)
        );
        assert_eq!(
            w.check(today, day(2021, 6, 16), -600),
            Err(OutsideWindow::InFuture)
        );
    }
}
