//! Judges one HTTP answer of `/api/batch-issue`: per-item answers, a whole-request
//! failure, or a transient failure to retry with the same uuids.
//!
//! Whenever the body holds a `codes` array, every item is judged by its own `error` and
//! `errorCode`, whatever the HTTP status: the batch is not atomic, and its status is only
//! that of the first failing item (`pkg/controller/issueapi/handle_issue_batch.go:131-151`),
//! so a 429 or even a 500 can arrive with codes already issued and texted. Only answers
//! without `codes` are whole-request failures. Every piece of server text is scrubbed of
//! phone numbers before it is logged or put into an error.

use std::time::{Duration, SystemTime};

use ca_notify_domain::scrub::scrub_then_truncate;
use ca_notify_domain::{DedupKey, ErrorCode, ItemAnswer};
use ca_notify_ports::IssueError;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use tokio::time::Instant;

use crate::pacing::RateLimitHeaders;
use crate::wire::{BatchIssueResponse, IssueCodeResponse};
use ca_notify_http::retry_after::{self, RetryAt};

/// How long to wait after a limiter 429 that says nothing about when to return: one
/// window of the server's limiter (`RATE_LIMIT_INTERVAL=1m`, `pkg/ratelimit/config.go:47`).
const DEFAULT_LIMITER_WAIT: Duration = Duration::from_secs(60);

/// The most server text we quote in a log line or an error.
const MAX_QUOTED_CHARS: usize = 300;

/// What one HTTP answer means.
#[derive(Debug)]
pub enum Judgement {
    /// One answer per unique item, in request order.
    Answered(Vec<ItemAnswer>),
    /// The whole request failed in a way retrying now will not fix.
    Failed(IssueError),
    /// The whole request failed before any handler acted on it (a 5xx without `codes`, a
    /// failed connection): retry it with the same uuids. The text is already scrubbed.
    Transient(String),
    /// The request may have been acted on, but no answer for its items came back (a 2xx
    /// or 5xx without `codes`, a gateway timeout, a lost connection): anything may have
    /// happened, so the adapter never retries it. The text is already scrubbed.
    NoAnswer {
        /// What happened.
        text: String,
        /// Whether the server may still be working on it (see `IssueError::NoAnswer`).
        may_still_run: bool,
    },
}

/// The moments an answer was received, on both clocks.
#[derive(Debug, Clone, Copy)]
pub struct ReceivedAt {
    /// The wall clock, to read HTTP dates.
    pub wall: SystemTime,
    /// The tokio clock, for the instants handed back.
    pub instant: Instant,
}

impl ReceivedAt {
    /// Now.
    pub fn now() -> Self {
        Self {
            wall: SystemTime::now(),
            instant: Instant::now(),
        }
    }
}

/// Judges an answer to a request for `uuids` (the unique items, in order).
pub fn judge(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    uuids: &[DedupKey],
    at: ReceivedAt,
) -> Judgement {
    let parsed: Option<BatchIssueResponse> = serde_json::from_slice(body).ok();
    // Only the failures print the server's text; a good answer is never quoted.
    let quoted = || quote(parsed.as_ref().and_then(|p| p.error.as_deref()), body);
    let code = parsed.as_ref().map_or("", BatchIssueResponse::code);

    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Judgement::Failed(IssueError::Unauthorized(format!(
            "HTTP {}: {}",
            status.as_u16(),
            quoted()
        )));
    }
    if let Some(codes) = parsed.as_ref().and_then(|p| p.codes.as_deref()) {
        return judge_items(status, codes, uuids);
    }
    match ErrorCode::parse(code) {
        ErrorCode::QuotaExceeded => return Judgement::Failed(IssueError::QuotaExhausted),
        known if known.is_unavailable() => {
            return Judgement::Failed(IssueError::Unavailable(format!(
                "HTTP {} {code}: {}",
                status.as_u16(),
                quoted()
            )))
        }
        // `/api/issue` answers one item with an ErrorReturn (`handle_issue.go:148-150`);
        // for a one-item request that is the item's own answer.
        ErrorCode::UuidAlreadyExists if uuids.len() == 1 => {
            return Judgement::Answered(vec![ItemAnswer::AlreadyExists])
        }
        _ => {}
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        let until = limiter_until(headers, at);
        tracing::info!(
            wait_ms = until.saturating_duration_since(at.instant).as_millis() as u64,
            "The verification server's request limiter refused the batch; nothing was issued."
        );
        return Judgement::Failed(IssueError::RateLimited { until });
    }
    if status.is_success() {
        if uuids.is_empty() {
            return Judgement::Answered(Vec::new());
        }
        let what = if parsed.is_some() {
            "an answer without codes"
        } else {
            "an unreadable answer"
        };
        return Judgement::NoAnswer {
            text: format!("HTTP {} with {what}", status.as_u16()),
            may_still_run: false,
        };
    }
    // A 5xx without `codes` may come after the handler issued and texted (a panic, a proxy
    // in front), so it says nothing about the items. A gateway that gave up waiting may
    // even have left the server working on the request.
    if status.is_server_error() {
        let gateway = status == StatusCode::BAD_GATEWAY || status == StatusCode::GATEWAY_TIMEOUT;
        return Judgement::NoAnswer {
            text: format!("HTTP {}: {}", status.as_u16(), quoted()),
            may_still_run: gateway,
        };
    }
    // The client was too slow to send the request: nothing was read, so nothing was done.
    if status == StatusCode::REQUEST_TIMEOUT {
        return Judgement::Transient(format!("HTTP {}: {}", status.as_u16(), quoted()));
    }
    if status.is_redirection()
        || status == StatusCode::NOT_FOUND
        || status == StatusCode::METHOD_NOT_ALLOWED
    {
        return Judgement::Failed(IssueError::Rejected(format!(
            "HTTP {} from the batch-issue endpoint: check verification.base_url",
            status.as_u16()
        )));
    }
    if status.is_client_error() {
        let code = if code.is_empty() {
            "no errorCode"
        } else {
            code
        };
        return Judgement::Failed(IssueError::Rejected(format!(
            "HTTP {} ({code}): {}",
            status.as_u16(),
            quoted()
        )));
    }
    Judgement::Transient(format!("unexpected HTTP {}", status.as_u16()))
}

fn judge_items(status: StatusCode, codes: &[IssueCodeResponse], uuids: &[DedupKey]) -> Judgement {
    if codes.len() != uuids.len() {
        tracing::warn!(
            sent = uuids.len(),
            answered = codes.len(),
            status = status.as_u16(),
            "The verification server answered a different number of items than were sent."
        );
    }
    let answers: Vec<ItemAnswer> = uuids
        .iter()
        .enumerate()
        .map(|(index, uuid)| match codes.get(index) {
            Some(answer) => judge_item(answer, uuid),
            None => ItemAnswer::Missing,
        })
        .collect();
    let all_quota = !answers.is_empty()
        && answers.iter().all(|a| {
            matches!(a, ItemAnswer::Failed { error_code, .. }
                if ErrorCode::parse(error_code) == ErrorCode::QuotaExceeded)
        });
    if all_quota {
        tracing::warn!(
            items = answers.len(),
            "The realm's daily code quota is exhausted; nothing in the batch was issued."
        );
        return Judgement::Failed(IssueError::QuotaExhausted);
    }
    Judgement::Answered(answers)
}

fn judge_item(answer: &IssueCodeResponse, uuid: &DedupKey) -> ItemAnswer {
    let error = answer.error.as_deref().unwrap_or("");
    let code = answer.error_code.as_deref().unwrap_or("");
    if error.is_empty() && code.is_empty() {
        let echoed = answer.uuid.as_deref().filter(|u| !u.is_empty());
        if echoed.is_none() && answer.code.is_none() {
            // Neither an error nor a code: no evidence either way, so resend (a 409 will
            // tell if it was issued after all).
            tracing::warn!(uuid = %uuid, "The verification server answered an item with nothing in it.");
            return ItemAnswer::Missing;
        }
        if echoed.is_some_and(|e| !e.trim().eq_ignore_ascii_case(&uuid.to_string())) {
            tracing::warn!(uuid = %uuid, "The verification server echoed another uuid for an issued item.");
        }
        return ItemAnswer::Issued;
    }
    if ErrorCode::parse(code) == ErrorCode::UuidAlreadyExists {
        tracing::debug!(uuid = %uuid, "Already issued before; not texted again.");
        return ItemAnswer::AlreadyExists;
    }
    let error = quote(Some(error), &[]);
    tracing::warn!(
        uuid = %uuid,
        error_code = code,
        error = %error,
        "The verification server did not issue an item."
    );
    ItemAnswer::failed_with(code, error)
}

/// When a limiter 429 says to come back: `Retry-After`, else `X-RateLimit-Reset`, else
/// one limiter window from now.
pub(crate) fn limiter_until(headers: &HeaderMap, at: ReceivedAt) -> Instant {
    let retry_after = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(retry_after::parse);
    let reset = || RateLimitHeaders::from_headers(headers).and_then(|h| h.reset);
    let when = retry_after
        .or_else(reset)
        .unwrap_or(RetryAt::After(DEFAULT_LIMITER_WAIT));
    at.instant + when.delay_from(at.wall)
}

/// Server text fit for a log line or an error: the JSON `error` if there was one, else
/// the body; phone numbers scrubbed, white space collapsed, length capped.
pub fn quote(json_error: Option<&str>, body: &[u8]) -> String {
    let raw = match json_error {
        Some(text) => std::borrow::Cow::Borrowed(text),
        None => String::from_utf8_lossy(body),
    };
    let collapsed: String = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let short = scrub_then_truncate(&collapsed, MAX_QUOTED_CHARS);
    if short.is_empty() {
        "(no message)".to_owned()
    } else {
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn uuids(n: usize) -> Vec<DedupKey> {
        (0..n)
            .map(|i| {
                DedupKey::parse(&format!("00000000-0000-4000-8000-00000000000{i}")).expect("uuid")
            })
            .collect()
    }

    fn run(status: u16, body: &str, n: usize) -> Judgement {
        judge(
            StatusCode::from_u16(status).expect("status"),
            &HeaderMap::new(),
            body.as_bytes(),
            &uuids(n),
            ReceivedAt::now(),
        )
    }

    #[test]
    fn a_500_with_codes_is_judged_per_item() {
        let body = r#"{"codes":[{"padding":"","uuid":"00000000-0000-4000-8000-000000000000","code":"1"},
            {"padding":"","error":"failed to generate otp code, please try again","errorCode":"internal_server_error"}],
            "error":"Failed to issue 1 codes. Issued 1 codes successfully.See each error status in the codes array.",
            "errorCode":"internal_server_error"}"#;
        match run(500, body, 2) {
            Judgement::Answered(a) => assert_eq!(
                a,
                vec![
                    ItemAnswer::Issued,
                    ItemAnswer::failed_with(
                        "internal_server_error",
                        "failed to generate otp code, please try again"
                    )
                ]
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_short_codes_array_leaves_the_tail_missing() {
        let body = r#"{"codes":[{"uuid":"00000000-0000-4000-8000-000000000000","code":"1"}]}"#;
        match run(200, body, 3) {
            Judgement::Answered(a) => assert_eq!(
                a,
                vec![ItemAnswer::Issued, ItemAnswer::Missing, ItemAnswer::Missing]
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_item_with_neither_error_nor_code_is_missing() {
        match run(200, r#"{"codes":[{"padding":""}]}"#, 1) {
            Judgement::Answered(a) => assert_eq!(a, vec![ItemAnswer::Missing]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn partly_quota_is_per_item_but_all_quota_stops() {
        let quota = r#"{"error":"exceeded daily realm quota","errorCode":"quota_exceeded"}"#;
        let ok = r#"{"uuid":"00000000-0000-4000-8000-000000000000","code":"1"}"#;
        match run(429, &format!(r#"{{"codes":[{ok},{quota}]}}"#), 2) {
            Judgement::Answered(a) => {
                assert_eq!(
                    a,
                    vec![
                        ItemAnswer::Issued,
                        ItemAnswer::failed_with("quota_exceeded", "exceeded daily realm quota")
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            run(429, &format!(r#"{{"codes":[{quota},{quota}]}}"#), 2),
            Judgement::Failed(IssueError::QuotaExhausted)
        ));
    }

    #[test]
    fn whole_request_errors_by_code_and_status() {
        let cases = [
            (
                429,
                r#"{"error":"x","errorCode":"quota_exceeded"}"#,
                "quota",
            ),
            (
                429,
                r#"{"error":"x","errorCode":"maintenance_mode"}"#,
                "unavailable",
            ),
            (
                400,
                r#"{"error":"x","errorCode":"sms_queue_full"}"#,
                "unavailable",
            ),
            (500, r#"{"error":"Internal Server Error"}"#, "no answer"),
            (502, "<html>bad gateway</html>", "no answer"),
            (500, "Internal Server Error\n", "no answer"),
            (408, "", "transient"),
            (200, "not json", "no answer"),
            (200, r#"{"padding":"x"}"#, "no answer"),
            (
                400,
                r#"{"error":"batch size limit [10] exceeded","errorCode":"","error_code":""}"#,
                "rejected",
            ),
            (404, "404 page not found", "rejected"),
            (301, "", "rejected"),
            (
                401,
                r#"{"error":"unauthorized","errorCode":"","error_code":""}"#,
                "unauthorized",
            ),
            (403, "forbidden", "unauthorized"),
        ];
        for (status, body, want) in cases {
            let got = match run(status, body, 2) {
                Judgement::Failed(IssueError::QuotaExhausted) => "quota",
                Judgement::Failed(IssueError::Unavailable(_)) => "unavailable",
                Judgement::Failed(IssueError::Rejected(_)) => "rejected",
                Judgement::Failed(IssueError::Unauthorized(_)) => "unauthorized",
                Judgement::Transient(_) => "transient",
                Judgement::NoAnswer { .. } => "no answer",
                other => panic!("{status} {body}: {other:?}"),
            };
            assert_eq!(got, want, "{status} {body}");
        }
    }

    #[test]
    fn a_limiter_429_without_dates_waits_one_window() {
        let at = ReceivedAt::now();
        let got = judge(
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            b"Too Many Requests\n",
            &uuids(1),
            at,
        );
        match got {
            Judgement::Failed(IssueError::RateLimited { until }) => {
                assert_eq!(until, at.instant + DEFAULT_LIMITER_WAIT);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_limiter_429_falls_back_to_the_reset_header() {
        let at = ReceivedAt::now();
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-limit", HeaderValue::from_static("60"));
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        headers.insert("x-ratelimit-reset", HeaderValue::from_static("12"));
        match judge(StatusCode::TOO_MANY_REQUESTS, &headers, b"", &uuids(1), at) {
            Judgement::Failed(IssueError::RateLimited { until }) => {
                assert_eq!(until, at.instant + Duration::from_secs(12));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn quoted_server_text_is_scrubbed_and_capped() {
        let text =
            "failed to send sms: The 'To' number +1 206 867 5309 is not a valid phone number.";
        let quoted = quote(Some(text), &[]);
        assert!(!quoted.contains("867"), "{quoted}");
        assert!(quoted.contains("[phone]"), "{quoted}");
        let long = "x".repeat(5000);
        assert_eq!(
            quote(None, long.as_bytes()).chars().count(),
            MAX_QUOTED_CHARS
        );
        assert_eq!(quote(None, b""), "(no message)");
        let cut = format!("{}+1 415 555 0123", "x".repeat(MAX_QUOTED_CHARS - 6));
        let quoted = quote(None, cut.as_bytes());
        assert!(
            !quoted.contains("415"),
            "scrubbed before it is cut: {quoted}"
        );
    }

    #[test]
    fn an_answer_that_may_follow_issuing_is_no_answer_never_a_retry() {
        for (status, body, still_running) in [
            (200, "not json", false),
            (200, r#"{"error":""}"#, false),
            (500, "oops", false),
            (503, "", false),
            (502, "", true),
            (504, "", true),
        ] {
            match run(status, body, 2) {
                Judgement::NoAnswer { may_still_run, .. } => {
                    assert_eq!(may_still_run, still_running, "HTTP {status} {body}");
                }
                other => panic!("HTTP {status} {body}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_failed_item_keeps_its_scrubbed_error_text() {
        let body = r#"{"codes":[{"error":"failed to send sms: failed to build sms message: no template found for label x","errorCode":"sms_failure"},
            {"error":"The 'To' number +12068675309 is not valid","errorCode":"sms_failure"}]}"#;
        let Judgement::Answered(answers) = run(400, body, 2) else {
            panic!("answered per item")
        };
        match &answers[0] {
            ItemAnswer::Failed { error_code, error } => {
                assert_eq!(error_code, "sms_failure");
                assert!(error.contains("failed to build sms"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        match &answers[1] {
            ItemAnswer::Failed { error, .. } => assert!(!error.contains("8675309"), "{error}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_carry_no_phone_number() {
        let body = r#"{"error":"The 'To' number +12068675309 is unreachable","errorCode":"","error_code":""}"#;
        for status in [400, 401, 500] {
            let shown = match run(status, body, 1) {
                Judgement::Failed(e) => e.to_string(),
                Judgement::Transient(t) | Judgement::NoAnswer { text: t, .. } => t,
                Judgement::Answered(a) => panic!("{a:?}"),
            };
            assert!(!shown.contains("8675309"), "{shown}");
        }
    }
}
