//! `report --html` rendered in a real browser: Debian's Chromium, headless, from a store
//! a run filled. The page must load without a console error and show every chart; one
//! screenshot is kept as a test artefact (`target/report-screenshot.png`).
//!
//! Chromium is required: `.ci/run` installs it (`apt-get install chromium`); without it
//! this test fails, naming what to install. `CA_NOTIFY_CHROMIUM` may name the binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use ca_notify_simulators::twilio::TwilioSimConfig;
use ca_notify_simulators::verification::SimConfig;

use crate::harness::World;

/// The ids of the page's charts.
pub const CHARTS: [&str; 4] = [
    "chart-sent",
    "chart-not-sent",
    "chart-backlog",
    "chart-time-to-text",
];

fn chromium() -> PathBuf {
    if let Ok(path) = std::env::var("CA_NOTIFY_CHROMIUM") {
        return PathBuf::from(path);
    }
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "Chromium is needed for the report's browser check: `apt-get install chromium` \
         (Debian), or set CA_NOTIFY_CHROMIUM to the binary"
    );
}

/// Runs headless Chromium on `page` with a fresh profile and `extra` arguments.
fn headless(page: &Path, profile: &Path, extra: &[String]) -> std::process::Output {
    let url = format!("file://{}", page.display());
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            &format!("--user-data-dir={}", profile.display()),
        ])
        .args(extra)
        .arg(url)
        .output()
        .expect("Chromium starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_renders_in_chromium_without_console_errors() {
    let world = World::start(30, TwilioSimConfig::default(), SimConfig::default()).await;
    let run = world.cli().run(&["run", "--until-drained"]);
    assert_eq!(run.code, Some(0), "{}", run.all());
    let page = world.dir.path().join("report.html");
    let out = world.cli().run(&[
        "report",
        "--html",
        &page.display().to_string(),
        "--days",
        "7",
        "--json",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let figures: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let sent_today = figures["days"][6]["sent"].as_u64().expect("today's sends");
    assert!(sent_today > 0, "{figures}");
    let html = std::fs::read_to_string(&page).expect("page");
    for p in &world.people {
        assert!(!html.contains(&p.national), "a phone on the page");
    }

    let profile = tempfile::tempdir().expect("profile");
    let dom = headless(&page, profile.path(), &["--dump-dom".to_owned()]);
    let stderr = String::from_utf8_lossy(&dom.stderr);
    let dump = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.status.success(), "Chromium failed: {stderr}");
    for chart in CHARTS {
        assert!(
            dump.contains(&format!("id=\"{chart}\"")),
            "{chart} missing from the DOM"
        );
    }
    assert!(dump.contains("<table>"), "the tables for screen readers");
    let console: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(console.is_empty(), "console messages: {console:?}");

    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let shot = target.join("report-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let profile = tempfile::tempdir().expect("profile");
    let taken = headless(
        &page,
        profile.path(),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=900,1800".to_owned(),
        ],
    );
    assert!(
        taken.status.success(),
        "{}",
        String::from_utf8_lossy(&taken.stderr)
    );
    let png = std::fs::read(&shot).expect("the screenshot is kept");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
}
