//! `ca-notify report --html FILE`: the page for the program's manager
//! (`ca_notify_job::report`).

use std::path::Path;
use std::sync::Arc;

use ca_notify_job::report;
use ca_notify_ports::StoreAdmin;
use chrono::{Duration, Utc};

use crate::commands::operator::print_json;
use crate::exit::{self, Failure};

/// Writes the page.
///
/// # Errors
/// Exit code 5 when the store cannot be read or the page written.
pub async fn execute(
    admin: &Arc<dyn StoreAdmin>,
    html: &Path,
    days: u32,
    json: bool,
) -> Result<(), Failure> {
    let now = Utc::now();
    let since = (now.date_naive() - Duration::days(i64::from(days) - 1))
        .and_hms_opt(0, 0, 0)
        .map_or(now, |t| t.and_utc());
    let records = admin.report_records(since).await?;
    let data = report::aggregate(&records, now, days);
    std::fs::write(html, report::render_html(&data))
        .map_err(|e| Failure::new(exit::STORE, format!("cannot write {}: {e}", html.display())))?;
    if json {
        return print_json(&data);
    }
    println!("Wrote the report for {days} days to {}.", html.display());
    Ok(())
}
