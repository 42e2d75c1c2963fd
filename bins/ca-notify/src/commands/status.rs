//! `ca-notify status`: the backlog at a glance, from either store, in one read.

use std::sync::Arc;

use ca_notify_ports::admin::StoreStatus;
use ca_notify_ports::StoreAdmin;
use chrono::{DateTime, Utc};

use crate::commands::operator::print_json;
use crate::exit::Failure;

/// `status` as JSON: the store's counts and the oldest pending record's age.
#[derive(serde::Serialize)]
struct StatusJson<'a> {
    #[serde(flatten)]
    status: &'a StoreStatus,
    oldest_pending_age_secs: Option<i64>,
    at: DateTime<Utc>,
}

/// Prints the store's status.
///
/// # Errors
/// Exit code 5 when the store cannot be read.
pub async fn execute(admin: &Arc<dyn StoreAdmin>, json: bool) -> Result<(), Failure> {
    let now = Utc::now();
    let status = admin.status(now).await?;
    let age = status
        .oldest_pending_since
        .map(|since| (now - since).num_seconds().max(0));
    if json {
        return print_json(&StatusJson {
            status: &status,
            oldest_pending_age_secs: age,
            at: now,
        });
    }
    print!("{}", render(&status, age));
    Ok(())
}

fn breakdown(counts: &std::collections::BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
    format!("  ({})", parts.join(", "))
}

/// A duration for people: `3 d 4 h`, `2 h 5 min`, `40 s`.
pub fn human_age(secs: i64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min")
    } else {
        format!("{secs} s")
    }
}

fn render(s: &StoreStatus, age: Option<i64>) -> String {
    let deferred: u64 = s.deferred.values().sum();
    let not_sent: u64 = s.not_sent.values().sum();
    let oldest = match (s.oldest_pending_since, age) {
        (Some(since), Some(age)) => format!(
            "  (oldest arrived {}, {} ago)",
            since.format("%Y-%m-%d %H:%M UTC"),
            human_age(age)
        ),
        _ if s.pending > 0 => {
            "  (age unknown: no arrival times; on Snowflake, set source.arrived_at_column)"
                .to_owned()
        }
        _ => String::new(),
    };
    let leases = s
        .claims_expire_by
        .map(|t| {
            format!(
                "  (every lease ends by {})",
                t.format("%Y-%m-%d %H:%M:%S UTC")
            )
        })
        .unwrap_or_default();
    let mut out = format!("Records: {}\n", s.total);
    out += &format!("  pending      {:>9}{oldest}\n", s.pending);
    out += &format!("    deferred   {:>9}{}\n", deferred, breakdown(&s.deferred));
    out += &format!("  claimed      {:>9}{leases}\n", s.claimed);
    out += &format!("  sent         {:>9}\n", s.sent);
    out += &format!("  not sent     {:>9}{}\n", not_sent, breakdown(&s.not_sent));
    let hint = if s.unconfirmed > 0 {
        "  (ca-notify reconcile, then requeue --outcome unconfirmed if need be)"
    } else {
        ""
    };
    out += &format!("  unconfirmed  {:>9}{hint}\n", s.unconfirmed);
    out += &format!("  purged       {:>9}\n", s.purged);
    if s.last_runs.is_empty() {
        out += "Last runs: none recorded\n";
    } else {
        out += "Last runs (newest first):\n";
        for run in &s.last_runs {
            let end = match &run.end {
                Some(end) => format!(
                    "{} {}  sent {}, not sent {}, deferred {}",
                    if end.succeeded { "ok    " } else { "FAILED" },
                    end.stop,
                    end.counts.sent,
                    end.counts.not_sent,
                    end.counts.deferred
                ),
                None => "no end recorded (running, or its process died)".to_owned(),
            };
            out += &format!(
                "  {}  {}  {end}\n",
                run.start.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
                run.start.id
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_people_say_them() {
        assert_eq!(human_age(40), "40 s");
        assert_eq!(human_age(125), "2 min");
        assert_eq!(human_age(2 * 3600 + 300), "2 h 5 min");
        assert_eq!(human_age(3 * 86_400 + 4 * 3600), "3 d 4 h");
    }
}
