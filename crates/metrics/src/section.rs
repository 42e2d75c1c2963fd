//! `[metrics]`: where a run's metrics go, and the [`Metrics`] publisher it builds.
//!
//! Nothing is configured by default, and then nothing is sent or written. Either or both
//! of `pushgateway_url` (a `PUT` at the end of each run) and `textfile` (a `*.prom` file
//! in node_exporter's textfile directory) may be set. Plain `http://` is accepted for any
//! host: metrics carry no secret and no phone number, and a Pushgateway usually sits
//! inside the cluster without TLS.

use std::path::PathBuf;
use std::time::Duration;

use ca_notify_ports::config::{ConfigError, DurationRange};
use reqwest::Client;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::exposition::{render, RunMetrics};
use crate::pushgateway::{self, Target};
use crate::textfile;

/// The section's duration settings and their ranges.
pub const DURATIONS: [DurationRange; 1] =
    [DurationRange::seconds("metrics.push_timeout_secs", 1, 120)];

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// The Pushgateway's base URL (`http://pushgateway:9091`); unset: no push.
    pub pushgateway_url: Option<String>,
    /// A file for node_exporter's textfile collector, ending in `.prom`; unset: none.
    pub textfile: Option<PathBuf>,
    /// The `job` of the Pushgateway group.
    pub job: String,
    /// The `instance` of the Pushgateway group; unset: none (one group per job, the usual
    /// choice for a batch job; set one per worker when several workers push).
    pub instance: Option<String>,
    /// How long a push may take.
    pub push_timeout_secs: u64,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            pushgateway_url: None,
            textfile: None,
            job: "ca-notify".to_owned(),
            instance: None,
            push_timeout_secs: 10,
        }
    }
}

/// A Pushgateway grouping label value: it goes into the URL path as it is.
fn check_label(key: &'static str, value: &str) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(key, "is not a usable group label")
            .with_value(value)
            .with_allowed("1 to 128 letters, digits, '-', '_', '.' or ':'"))
    }
}

impl MetricsSection {
    /// Checks the section and builds its publisher.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key of the first value it cannot use.
    pub fn metrics(&self) -> Result<Metrics, ConfigError> {
        DURATIONS[0].check(i128::from(self.push_timeout_secs))?;
        check_label("metrics.job", &self.job)?;
        if let Some(instance) = &self.instance {
            check_label("metrics.instance", instance)?;
        }
        let push = match &self.pushgateway_url {
            None => None,
            Some(text) => {
                let url = Url::parse(text).map_err(|e| {
                    ConfigError::new("metrics.pushgateway_url", format!("is not a URL: {e}"))
                        .with_value(text)
                })?;
                if !matches!(url.scheme(), "http" | "https")
                    || url.query().is_some()
                    || url.fragment().is_some()
                {
                    return Err(ConfigError::new(
                        "metrics.pushgateway_url",
                        "is not a Pushgateway base URL",
                    )
                    .with_value(text)
                    .with_allowed("http:// or https://, no query or fragment"));
                }
                let client = ca_notify_http::client::client_builder(Duration::from_secs(5))
                    .build()
                    .map_err(|e| {
                        ConfigError::new(
                            "metrics.pushgateway_url",
                            format!("no HTTP client for it: {e}"),
                        )
                    })?;
                Some((
                    client,
                    Target::new(url.as_str(), &self.job, self.instance.as_deref()),
                ))
            }
        };
        if let Some(path) = &self.textfile {
            if path.extension().is_none_or(|e| e != "prom") {
                return Err(ConfigError::new(
                    "metrics.textfile",
                    "must end in .prom (the textfile collector reads only *.prom files)",
                )
                .with_value(path.display()));
            }
        }
        Ok(Metrics {
            push,
            textfile: self.textfile.clone(),
            timeout: Duration::from_secs(self.push_timeout_secs),
        })
    }
}

/// Publishes a run's metrics where `[metrics]` says.
#[derive(Debug, Clone)]
pub struct Metrics {
    push: Option<(Client, Target)>,
    textfile: Option<PathBuf>,
    timeout: Duration,
}

/// Why a run's metrics did not all arrive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metrics: {}", .0.join("; "))]
pub struct MetricsError(pub Vec<String>);

impl Metrics {
    /// A publisher that sends and writes nothing.
    pub fn none() -> Self {
        Self {
            push: None,
            textfile: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// Whether anything is configured.
    pub fn is_enabled(&self) -> bool {
        self.push.is_some() || self.textfile.is_some()
    }

    /// Pushes `run` and writes its file, whichever are configured; one failing does not
    /// keep the other from happening.
    ///
    /// # Errors
    /// [`MetricsError`] with one line per failed destination.
    pub async fn publish(&self, run: &RunMetrics) -> Result<(), MetricsError> {
        if !self.is_enabled() {
            return Ok(());
        }
        let text = render(run);
        let mut failures = Vec::new();
        if let Some((client, target)) = &self.push {
            if let Err(e) = pushgateway::push(client, target, text.clone(), self.timeout).await {
                failures.push(e);
            }
        }
        if let Some(path) = self.textfile.clone() {
            let body = text;
            let written =
                tokio::task::spawn_blocking(move || textfile::write_atomically(&path, &body))
                    .await
                    .unwrap_or_else(|e| Err(format!("the metrics file writer failed: {e}")));
            if let Err(e) = written {
                failures.push(e);
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(MetricsError(failures))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_configured_by_default() {
        let metrics = MetricsSection::default().metrics().expect("valid");
        assert!(!metrics.is_enabled());
    }

    type Change = Box<dyn Fn(&mut MetricsSection)>;

    #[test]
    fn each_bad_value_names_its_key() {
        let cases: Vec<(&str, Change)> = vec![
            (
                "metrics.pushgateway_url",
                Box::new(|s| s.pushgateway_url = Some("pushgateway:9091".into())),
            ),
            (
                "metrics.pushgateway_url",
                Box::new(|s| s.pushgateway_url = Some("ftp://pg/".into())),
            ),
            ("metrics.job", Box::new(|s| s.job = "a/b".into())),
            (
                "metrics.instance",
                Box::new(|s| s.instance = Some(String::new())),
            ),
            (
                "metrics.textfile",
                Box::new(|s| s.textfile = Some("/var/lib/node/ca.txt".into())),
            ),
            (
                "metrics.push_timeout_secs",
                Box::new(|s| s.push_timeout_secs = 0),
            ),
        ];
        for (key, change) in cases {
            let mut section = MetricsSection::default();
            change(&mut section);
            let err = section.metrics().expect_err(key);
            assert_eq!(err.key(), key, "{err}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let parsed: Result<MetricsSection, _> =
            serde_json::from_value(serde_json::json!({ "pushgateway": "http://pg" }));
        assert!(parsed.is_err());
    }
}
