//! The push: one `PUT` of the whole run to `<url>/metrics/job/<job>{/instance/<instance>}`,
//! which replaces every metric of that grouping key (the Pushgateway's `README.md`, "URL",
//! line 266, and "`PUT` method", lines 366-390: success is 200, or 202 when its
//! consistency check is off; 400 names an inconsistency in the body).

use std::time::Duration;

use reqwest::Client;

/// The content type of the text exposition format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Where a push goes.
#[derive(Debug, Clone)]
pub struct Target {
    /// The group's URL.
    pub url: String,
}

impl Target {
    /// The group `job` (and `instance`, when given) under the Pushgateway at `base`.
    /// `job` and `instance` are checked by the section to hold no `/` or `%`.
    pub fn new(base: &str, job: &str, instance: Option<&str>) -> Self {
        let mut url = format!("{}/metrics/job/{job}", base.trim_end_matches('/'));
        if let Some(instance) = instance {
            url.push_str("/instance/");
            url.push_str(instance);
        }
        Self { url }
    }
}

/// Sends `body` to `target` within `timeout`.
///
/// # Errors
/// One line: the transport failure, or the status and the Pushgateway's explanation.
pub async fn push(
    client: &Client,
    target: &Target,
    body: String,
    timeout: Duration,
) -> Result<(), String> {
    let response = client
        .put(&target.url)
        .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
        .timeout(timeout)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("cannot reach the Pushgateway at {}: {e}", target.url))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    let text: String = text.chars().take(300).collect();
    Err(format!(
        "the Pushgateway at {} answered {status}: {}",
        target.url,
        text.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_url_has_the_job_and_the_optional_instance() {
        assert_eq!(
            Target::new("http://pg:9091/", "ca-notify", None).url,
            "http://pg:9091/metrics/job/ca-notify"
        );
        assert_eq!(
            Target::new("https://pg.example/prefix", "ca-notify", Some("west")).url,
            "https://pg.example/prefix/metrics/job/ca-notify/instance/west"
        );
    }
}
