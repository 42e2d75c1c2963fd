//! The alerting rules in `docs/operations.md`: every metric they read is one the job
//! exports, `promtool check rules` accepts them, and `promtool test rules` shows each
//! alert firing on the series it is meant for and staying quiet otherwise. promtool comes
//! from Debian's `prometheus` package (`scripts/test.sh` installs it; `CA_NOTIFY_PROMTOOL`
//! names another one); the test fails, never skips, without it.

use std::path::Path;
use std::process::Command;

use ca_notify_metrics::METRIC_NAMES;

/// The YAML between the alert-rules markers of `docs/operations.md`.
fn rules() -> String {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md"),
    )
    .expect("docs/operations.md");
    let (_, rest) = doc
        .split_once("<!-- alert-rules:begin -->\n```yaml\n")
        .expect("an alert-rules block");
    let (block, _) = rest
        .split_once("```\n<!-- alert-rules:end -->")
        .expect("the block's end");
    block.to_owned()
}

fn promtool(args: &[&str], dir: &Path) -> String {
    let binary = std::env::var("CA_NOTIFY_PROMTOOL").unwrap_or_else(|_| "promtool".to_owned());
    let out = Command::new(&binary)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {binary}: {e}. Install Debian's prometheus package \
                 (scripts/test.sh does) or set CA_NOTIFY_PROMTOOL"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn every_metric_the_rules_read_is_exported() {
    let rules = rules();
    let mut read = Vec::new();
    let mut rest = rules.as_str();
    while let Some(at) = rest.find("ca_notify_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        read.push(name);
    }
    assert!(read.len() >= 4, "{read:?}");
    for name in read {
        assert!(
            METRIC_NAMES.contains(&name.as_str()),
            "{name} is not exported"
        );
    }
}

const TESTS: &str = r#"rule_files:
  - rules.yml
evaluation_interval: 1m
tests:
  # The last success at Unix time 0, never again: quiet for 15 minutes, then a page.
  - interval: 1m
    input_series:
      - series: 'ca_notify_last_success_timestamp_seconds{job="ca-notify"}'
        values: '0x30'
    alert_rule_test:
      - eval_time: 14m
        alertname: CaNotifyNoSuccessfulRun
        exp_alerts: []
      - eval_time: 16m
        alertname: CaNotifyNoSuccessfulRun
        exp_alerts:
          - exp_labels: {severity: page, job: ca-notify}
            exp_annotations:
              summary: ca-notify has not finished a successful run for 15 minutes
      - eval_time: 16m
        alertname: CaNotifyNeverSucceeded
        exp_alerts: []
  # Runs that never succeed: no last success at all, for 30 minutes.
  - interval: 1m
    input_series:
      - series: 'ca_notify_run_succeeded{job="ca-notify"}'
        values: '0x40'
    alert_rule_test:
      - eval_time: 20m
        alertname: CaNotifyNeverSucceeded
        exp_alerts: []
      - eval_time: 31m
        alertname: CaNotifyNeverSucceeded
        exp_alerts:
          - exp_labels: {severity: page}
            exp_annotations:
              summary: no ca-notify run has reported a success
  # Worker a never empties its backlog; worker b emptied it once, 2 hours in; worker c
  # never empties it either, but dates it: every record is fresh, so this rule is quiet.
  - interval: 10m
    input_series:
      - series: 'ca_notify_backlog_records{job="ca-notify",instance="a"}'
        values: '3x30'
      - series: 'ca_notify_backlog_records{job="ca-notify",instance="b"}'
        values: '3x11 0 3x18'
      - series: 'ca_notify_backlog_records{job="ca-notify",instance="c"}'
        values: '3x30'
      - series: 'ca_notify_backlog_oldest_arrival_timestamp_seconds{job="ca-notify",instance="c"}'
        values: '0+600x30'
    alert_rule_test:
      - eval_time: 3h
        alertname: CaNotifyBacklogNotDraining
        exp_alerts: []
      - eval_time: 4h10m
        alertname: CaNotifyBacklogNotDraining
        exp_alerts:
          - exp_labels: {severity: ticket, job: ca-notify, instance: a}
            exp_annotations:
              summary: no ca-notify run has emptied the backlog for 4 hours
  # Worker a's oldest record arrived at Unix time 0 and is still waiting; worker b's
  # oldest record is always a few minutes old.
  - interval: 10m
    input_series:
      - series: 'ca_notify_backlog_oldest_arrival_timestamp_seconds{job="ca-notify",instance="a"}'
        values: '0x30'
      - series: 'ca_notify_backlog_oldest_arrival_timestamp_seconds{job="ca-notify",instance="b"}'
        values: '0+600x30'
    alert_rule_test:
      - eval_time: 3h50m
        alertname: CaNotifyBacklogOld
        exp_alerts: []
      - eval_time: 4h10m
        alertname: CaNotifyBacklogOld
        exp_alerts:
          - exp_labels: {severity: ticket, job: ca-notify, instance: a}
            exp_annotations:
              summary: a record has waited for ca-notify for more than 4 hours
  # A misconfiguration stop pages at once; a deadline stop does not.
  - interval: 1m
    input_series:
      - series: 'ca_notify_run_stop{job="ca-notify",instance="a",reason="misconfigured"}'
        values: '1x5'
      - series: 'ca_notify_run_stop{job="ca-notify",instance="b",reason="deadline"}'
        values: '1x5'
    alert_rule_test:
      - eval_time: 1m
        alertname: CaNotifyMisconfigured
        exp_alerts:
          - exp_labels: {severity: page, job: ca-notify, instance: a, reason: misconfigured}
            exp_annotations:
              summary: the last ca-notify run stopped on a misconfiguration
"#;

#[test]
fn promtool_accepts_the_rules_and_each_alert_fires_when_it_should() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("rules.yml"), rules()).expect("rules.yml");
    std::fs::write(dir.path().join("tests.yml"), TESTS).expect("tests.yml");
    let checked = promtool(&["check", "rules", "rules.yml"], dir.path());
    assert!(checked.contains("5 rules found"), "{checked}");
    promtool(&["test", "rules", "tests.yml"], dir.path());
}
