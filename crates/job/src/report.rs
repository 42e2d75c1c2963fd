//! `ca-notify report --html FILE`: one self-contained page for the program's manager.
//!
//! Four figures per day (UTC) over the last `days` days, from the store's
//! [`ReportRecord`]s: texts sent, records not sent by reason, the backlog at the end of
//! the day, and the time from the test result to the text (median and 90th percentile,
//! in hours, counted from the start of the test date, the finest the sources hold). Each
//! is an inline SVG chart with a title, axis labels and values, and the same figures as a
//! table (`<caption>`, `<th scope>`) for screen readers. The page loads nothing: no
//! script, no style sheet, no font, no image beyond its own SVG.
//!
//! The backlog needs each record's arrival time, which the SQLite store keeps (schema 4)
//! and Snowflake's source table does not: records without one are left out of that chart,
//! and the page says how many.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ca_notify_ports::admin::ReportRecord;
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};

/// The figures of one day.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Day {
    /// The day (UTC).
    pub date: NaiveDate,
    /// Texts sent (records written `sent = 1` that day).
    pub sent: u64,
    /// Records written not sent that day, by reason kind.
    pub not_sent: BTreeMap<String, u64>,
    /// Records arrived and not yet decided at the end of the day.
    pub backlog: u64,
    /// Median hours from the test date to the text, for texts sent that day.
    pub median_hours: Option<f64>,
    /// 90th percentile of the same.
    pub p90_hours: Option<f64>,
}

/// Everything the page shows.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReportData {
    /// When it was made.
    pub generated_at: DateTime<Utc>,
    /// One entry per day, oldest first.
    pub days: Vec<Day>,
    /// Records whose arrival time the store does not know (left out of the backlog).
    pub without_arrival: u64,
    /// Texts whose test date is unknown (left out of the time to text).
    pub without_test_date: u64,
}

/// The nearest-rank percentile `p` (0–100) of sorted `values`.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank - 1).copied()
}

/// The figures of the `days` days up to `now`'s day.
pub fn aggregate(records: &[ReportRecord], now: DateTime<Utc>, days: u32) -> ReportData {
    let today = now.date_naive();
    let first = today - Duration::days(i64::from(days.max(1)) - 1);
    let dates: Vec<NaiveDate> = first.iter_days().take_while(|d| *d <= today).collect();
    let mut out: Vec<Day> = dates
        .iter()
        .map(|&date| Day {
            date,
            ..Day::default()
        })
        .collect();
    let index = |date: NaiveDate| -> Option<usize> {
        (date >= first && date <= today).then(|| (date - first).num_days() as usize)
    };
    let mut delays: Vec<Vec<f64>> = vec![Vec::new(); out.len()];
    let mut without_arrival = 0;
    let mut without_test_date = 0;
    for r in records {
        if let Some(at) = r.processed_at {
            if let Some(i) = index(at.date_naive()) {
                match r.sent {
                    Some(1) => {
                        out[i].sent += 1;
                        match r.test_date {
                            Some(test) => {
                                let start = test.and_time(NaiveTime::MIN).and_utc();
                                let hours = (at - start).num_seconds() as f64 / 3600.0;
                                delays[i].push(hours.max(0.0));
                            }
                            None => without_test_date += 1,
                        }
                    }
                    Some(_) => {
                        let kind = r
                            .not_sent_kind
                            .clone()
                            .unwrap_or_else(|| "other".to_owned());
                        *out[i].not_sent.entry(kind).or_insert(0) += 1;
                    }
                    None => {}
                }
            }
        }
        match r.arrived_at {
            None => without_arrival += 1,
            Some(arrived) => {
                for day in &mut out {
                    let end = (day.date + Duration::days(1))
                        .and_time(NaiveTime::MIN)
                        .and_utc();
                    if arrived < end && r.processed_at.is_none_or(|p| p >= end) {
                        day.backlog += 1;
                    }
                }
            }
        }
    }
    for (day, mut hours) in out.iter_mut().zip(delays) {
        hours.sort_by(f64::total_cmp);
        day.median_hours = percentile(&hours, 50.0);
        day.p90_hours = percentile(&hours, 90.0);
    }
    ReportData {
        generated_at: now,
        days: out,
        without_arrival,
        without_test_date,
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 48.0;
const TOP: f64 = 16.0;
/// Colours with enough contrast on white, told apart by the legend's text too.
const PALETTE: [&str; 7] = [
    "#1b5e9e", "#b35900", "#2e7d32", "#8e24aa", "#c62828", "#00796b", "#5d4037",
];

/// One series of a chart.
struct Series<'a> {
    name: &'a str,
    values: Vec<Option<f64>>,
}

/// An SVG chart: stacked bars, or lines when `lines`.
fn chart(
    id: &str,
    title: &str,
    unit: &str,
    labels: &[String],
    series: &[Series<'_>],
    lines: bool,
) -> String {
    let n = labels.len().max(1);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .copied()
        .fold(0.0_f64, f64::max);
    let stacked_max = (0..n)
        .map(|i| {
            series
                .iter()
                .filter_map(|s| s.values.get(i).copied().flatten())
                .sum::<f64>()
        })
        .fold(0.0_f64, f64::max);
    let top = if lines { max } else { stacked_max }.max(1.0) * 1.1;
    let plot_w = WIDTH - LEFT - 12.0;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |i: usize| LEFT + plot_w * (i as f64 + 0.5) / n as f64;
    let y = |v: f64| TOP + plot_h * (1.0 - v / top);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg id=\"{id}\" role=\"img\" aria-labelledby=\"{id}-title\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         width=\"{WIDTH}\" height=\"{HEIGHT}\" xmlns=\"http://www.w3.org/2000/svg\" font-family=\"sans-serif\" font-size=\"12\">\
         <title id=\"{id}-title\">{}</title>",
        escape(title)
    );
    for step in 0..=4 {
        let v = top / 1.1 * f64::from(step) / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#222\">{}</text>",
            WIDTH - 12.0,
            LEFT - 6.0,
            y(v) + 4.0,
            format_value(v),
            y = y(v),
        );
    }
    let _ = write!(
        svg,
        "<text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\" fill=\"#222\">{}</text>",
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        escape(unit)
    );
    let every = n.div_ceil(10);
    for (i, label) in labels.iter().enumerate() {
        if i % every == 0 || i + 1 == n {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#222\">{}</text>",
                x(i),
                HEIGHT - BOTTOM + 16.0,
                escape(label)
            );
        }
    }
    let bar_w = (plot_w / n as f64 * 0.7).max(1.0);
    if lines {
        for (k, s) in series.iter().enumerate() {
            let points: Vec<String> = s
                .values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
                .collect();
            let colour = PALETTE[k % PALETTE.len()];
            if !points.is_empty() {
                let _ = write!(
                    svg,
                    "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
                    points.join(" ")
                );
            }
            for p in &points {
                let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = write!(
                    svg,
                    "<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{colour}\"/>"
                );
            }
        }
    } else {
        for (i, label) in labels.iter().enumerate() {
            let mut base = 0.0;
            for (k, s) in series.iter().enumerate() {
                let v = s.values.get(i).copied().flatten().unwrap_or(0.0);
                if v > 0.0 {
                    let _ = write!(
                        svg,
                        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar_w:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{} {}: {}</title></rect>",
                        x(i) - bar_w / 2.0,
                        y(base + v),
                        y(base) - y(base + v),
                        PALETTE[k % PALETTE.len()],
                        escape(label),
                        escape(s.name),
                        format_value(v)
                    );
                }
                base += v;
            }
        }
    }
    for (k, s) in series.iter().enumerate() {
        let lx = LEFT + 140.0 * k as f64;
        let _ = write!(
            svg,
            "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#222\">{}</text>",
            HEIGHT - 18.0,
            PALETTE[k % PALETTE.len()],
            lx + 14.0,
            HEIGHT - 9.0,
            escape(s.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn format_value(v: f64) -> String {
    if (v - v.round()).abs() < 0.05 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

fn table(caption: &str, headers: &[String], rows: &[Vec<String>]) -> String {
    let mut t = format!("<table><caption>{}</caption><thead><tr>", escape(caption));
    for h in headers {
        let _ = write!(t, "<th scope=\"col\">{}</th>", escape(h));
    }
    t.push_str("</tr></thead><tbody>");
    for row in rows {
        t.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            if i == 0 {
                let _ = write!(t, "<th scope=\"row\">{}</th>", escape(cell));
            } else {
                let _ = write!(t, "<td>{}</td>", escape(cell));
            }
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table>");
    t
}

fn hours(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |h| format!("{h:.1}"))
}

/// The page.
pub fn render_html(data: &ReportData) -> String {
    let labels: Vec<String> = data
        .days
        .iter()
        .map(|d| d.date.format("%m-%d").to_string())
        .collect();
    let dates: Vec<String> = data.days.iter().map(|d| d.date.to_string()).collect();
    let kinds: Vec<String> = {
        let mut k: Vec<String> = data
            .days
            .iter()
            .flat_map(|d| d.not_sent.keys().cloned())
            .collect();
        k.sort();
        k.dedup();
        k
    };
    let count = |f: &dyn Fn(&Day) -> u64| -> Vec<Option<f64>> {
        data.days.iter().map(|d| Some(f(d) as f64)).collect()
    };
    let mut body = String::new();

    body.push_str("<section><h2>Texts sent per day</h2>");
    body.push_str(&chart(
        "chart-sent",
        "Texts sent per day",
        "texts",
        &labels,
        &[Series {
            name: "sent",
            values: count(&|d| d.sent),
        }],
        false,
    ));
    let rows: Vec<Vec<String>> = data
        .days
        .iter()
        .zip(&dates)
        .map(|(d, date)| vec![date.clone(), d.sent.to_string()])
        .collect();
    body.push_str(&table(
        "Texts sent per day",
        &["Day".into(), "Texts sent".into()],
        &rows,
    ));
    body.push_str("</section>");

    body.push_str("<section><h2>Not sent, by reason, per day</h2>");
    let series: Vec<Series<'_>> = kinds
        .iter()
        .map(|k| Series {
            name: k,
            values: data
                .days
                .iter()
                .map(|d| Some(d.not_sent.get(k).copied().unwrap_or(0) as f64))
                .collect(),
        })
        .collect();
    body.push_str(&chart(
        "chart-not-sent",
        "Records not sent, by reason, per day",
        "records",
        &labels,
        &series,
        false,
    ));
    let mut headers = vec!["Day".to_owned()];
    headers.extend(kinds.iter().cloned());
    let rows: Vec<Vec<String>> = data
        .days
        .iter()
        .zip(&dates)
        .map(|(d, date)| {
            let mut row = vec![date.clone()];
            row.extend(
                kinds
                    .iter()
                    .map(|k| d.not_sent.get(k).copied().unwrap_or(0).to_string()),
            );
            row
        })
        .collect();
    body.push_str(&table(
        "Records not sent, by reason, per day",
        &headers,
        &rows,
    ));
    body.push_str("</section>");

    body.push_str("<section><h2>Backlog at the end of each day</h2>");
    body.push_str(&chart(
        "chart-backlog",
        "Records waiting at the end of each day",
        "records",
        &labels,
        &[Series {
            name: "waiting",
            values: count(&|d| d.backlog),
        }],
        true,
    ));
    if data.without_arrival > 0 {
        let _ = write!(
            body,
            "<p>{} record(s) have no arrival time in this store and are not counted here.</p>",
            data.without_arrival
        );
    }
    let rows: Vec<Vec<String>> = data
        .days
        .iter()
        .zip(&dates)
        .map(|(d, date)| vec![date.clone(), d.backlog.to_string()])
        .collect();
    body.push_str(&table(
        "Records waiting at the end of each day",
        &["Day".into(), "Waiting".into()],
        &rows,
    ));
    body.push_str("</section>");

    body.push_str("<section><h2>Time from test result to text</h2>");
    body.push_str(&chart(
        "chart-time-to-text",
        "Hours from test date to text: median and 90th percentile, per day",
        "hours",
        &labels,
        &[
            Series {
                name: "median",
                values: data.days.iter().map(|d| d.median_hours).collect(),
            },
            Series {
                name: "90th percentile",
                values: data.days.iter().map(|d| d.p90_hours).collect(),
            },
        ],
        true,
    ));
    let _ = write!(
        body,
        "<p>Counted from the start of the test date (UTC), the finest the sources hold.{}</p>",
        if data.without_test_date > 0 {
            format!(
                " {} text(s) without a test date are left out.",
                data.without_test_date
            )
        } else {
            String::new()
        }
    );
    let rows: Vec<Vec<String>> = data
        .days
        .iter()
        .zip(&dates)
        .map(|(d, date)| vec![date.clone(), hours(d.median_hours), hours(d.p90_hours)])
        .collect();
    body.push_str(&table(
        "Hours from test date to text, per day",
        &[
            "Day".into(),
            "Median (h)".into(),
            "90th percentile (h)".into(),
        ],
        &rows,
    ));
    body.push_str("</section>");

    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>ca-notify report</title>\
         <style>body{{font-family:sans-serif;color:#222;max-width:800px;margin:1em auto;padding:0 1em}}\
         table{{border-collapse:collapse;margin:.5em 0 1.5em}}th,td{{border:1px solid #bbb;padding:2px 8px;text-align:right}}\
         caption{{text-align:left;font-weight:bold}}svg{{max-width:100%;height:auto}}</style></head>\
         <body><h1>ca-notify: verification codes texted</h1>\
         <p>Generated {} for the {} days up to today (UTC). No phone number appears on this page.</p>{body}</body></html>\n",
        data.generated_at.format("%Y-%m-%d %H:%M UTC"),
        data.days.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day: u32, hour: u32) -> Option<DateTime<Utc>> {
        NaiveDate::from_ymd_opt(2026, 12, day)
            .and_then(|d| d.and_hms_opt(hour, 0, 0))
            .map(|t| t.and_utc())
    }

    fn record(
        arrived: u32,
        processed: Option<(u32, u32)>,
        sent: Option<u8>,
        kind: Option<&str>,
    ) -> ReportRecord {
        ReportRecord {
            arrived_at: at(arrived, 1),
            test_date: NaiveDate::from_ymd_opt(2026, 11, 30),
            processed_at: processed.and_then(|(d, h)| at(d, h)),
            sent,
            not_sent_kind: kind.map(str::to_owned),
        }
    }

    #[test]
    fn days_count_sends_reasons_backlog_and_percentiles() {
        let now = at(3, 12).expect("now");
        let records = vec![
            record(1, Some((1, 2)), Some(1), None),
            record(1, Some((2, 0)), Some(1), None),
            record(1, Some((2, 12)), Some(1), None),
            record(2, Some((2, 5)), Some(0), Some("invalid_number")),
            record(2, None, None, None),
        ];
        let data = aggregate(&records, now, 3);
        let day = |d: u32| &data.days[(d - 1) as usize];
        assert_eq!(data.days.len(), 3);
        assert_eq!((day(1).sent, day(2).sent, day(3).sent), (1, 2, 0));
        assert_eq!(day(2).not_sent.get("invalid_number"), Some(&1));
        // End of day 1: three arrived, one sent by then; the one sent at 00:00 on day 2
        // was still waiting.
        assert_eq!(day(1).backlog, 2);
        assert_eq!(day(2).backlog, 1, "only the pending one");
        assert_eq!(
            day(1).median_hours,
            Some(26.0),
            "from Nov 30 00:00 to Dec 1 02:00"
        );
        assert_eq!(day(2).median_hours, Some(48.0));
        assert_eq!(day(2).p90_hours, Some(60.0));
        assert_eq!(day(3).median_hours, None);
    }

    #[test]
    fn the_page_is_self_contained_and_holds_every_chart_and_table() {
        let now = at(3, 12).expect("now");
        let data = aggregate(&[record(1, Some((1, 2)), Some(1), None)], now, 3);
        let page = render_html(&data);
        for id in [
            "chart-sent",
            "chart-not-sent",
            "chart-backlog",
            "chart-time-to-text",
        ] {
            assert!(page.contains(&format!("<svg id=\"{id}\"")), "{id}");
        }
        assert_eq!(page.matches("<table>").count(), 4);
        for external in ["<script", "src=", "href=", "@import", "url("] {
            assert!(!page.contains(external), "{external}");
        }
    }

    #[test]
    fn reasons_are_escaped() {
        let now = at(3, 12).expect("now");
        let data = aggregate(&[record(1, Some((1, 2)), Some(0), Some("<b>&"))], now, 3);
        let page = render_html(&data);
        assert!(!page.contains("<b>&"));
        assert!(page.contains("&lt;b&gt;&amp;"));
    }
}
