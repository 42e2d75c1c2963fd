//! The HTTP face of the simulator: routes, the middleware order of the real admin API
//! (API key, then limiter, then the handler; `internal/routes/adminapi.go:106-109`), the
//! batch handler's steps and answers, and dropping connections on purpose.
//!
//! A connection is dropped by shutting down a duplicate of its socket, so the client
//! sees the connection close with no answer, exactly as when a proxy or the network
//! loses it.
//!
//! A client that goes away cancels the request, as Go's `net/http` cancels the request
//! context when the client's connection closes: hyper drops the handler's future, and
//! the batch's own task, which owns the sends, sees that and cancels the sends still
//! running. The task runs apart from the handler so that this clean-up happens.

use std::future::Future;
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::IncomingStream;
use axum::Router;
use serde::Serialize;
use tokio::net::TcpListener;

use super::limiter::Taken;
use super::request::{parse_batch, ItemError, ItemRequest};
use super::state::{rfc1123_of, Busy, ItemResult, Shared};
use super::Fault;

/// The body cap (`pkg/controller/json_bind.go:30`).
const MAX_BODY_BYTES: usize = 64_000;

/// The batch cap (`handle_issue_batch.go:30`).
const MAX_BATCH: usize = 10;

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/api/batch-issue", post(batch_issue))
        .route("/api/checkcodestatus", post(check_code_status))
        .route("/health", get(health))
        .with_state(shared);
    axum::serve(listener, app.into_make_service_with_connect_info::<Conn>())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// A handle on a connection's socket, to drop it mid-request.
#[derive(Clone)]
pub struct Conn(Option<Arc<std::net::TcpStream>>);

impl Connected<IncomingStream<'_, TcpListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Self(duplicate(stream.io()).map(Arc::new))
    }
}

#[cfg(unix)]
fn duplicate(stream: &tokio::net::TcpStream) -> Option<std::net::TcpStream> {
    use std::os::fd::AsFd;
    stream
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(std::net::TcpStream::from)
}

#[cfg(windows)]
fn duplicate(stream: &tokio::net::TcpStream) -> Option<std::net::TcpStream> {
    use std::os::windows::io::AsSocket;
    stream
        .as_socket()
        .try_clone_to_owned()
        .ok()
        .map(std::net::TcpStream::from)
}

impl Conn {
    /// Closes the connection in both directions; whatever the handler answers after
    /// this never reaches the client.
    fn drop_now(&self) {
        if let Some(socket) = &self.0 {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

/// `ErrorReturn` (`pkg/api/api.go:101-110`): no `omitempty`.
#[derive(Serialize)]
struct ErrorReturn<'a> {
    error: &'a str,
    #[serde(rename = "errorCode")]
    error_code: &'a str,
    #[serde(rename = "error_code")]
    legacy_error_code: &'a str,
}

/// `IssueCodeResponse`, in the server's key order. `uuid`, `code` and `expiresAt*` have
/// no `omitempty`, so a failed item carries them empty (`pkg/api/api.go:247-282`).
#[derive(Serialize)]
struct ItemResponse {
    padding: &'static str,
    uuid: String,
    code: String,
    #[serde(rename = "expiresAt")]
    expires_at: String,
    #[serde(rename = "expiresAtTimestamp")]
    expires_at_timestamp: i64,
    #[serde(rename = "longExpiresAt", skip_serializing_if = "String::is_empty")]
    long_expires_at: String,
    #[serde(rename = "longExpiresAtTimestamp", skip_serializing_if = "is_zero")]
    long_expires_at_timestamp: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    error: String,
    #[serde(rename = "errorCode", skip_serializing_if = "str::is_empty")]
    error_code: &'static str,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// `BatchIssueCodeResponse`.
#[derive(Serialize)]
struct BatchResponse {
    padding: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    codes: Vec<ItemResponse>,
    #[serde(skip_serializing_if = "String::is_empty")]
    error: String,
    #[serde(rename = "errorCode", skip_serializing_if = "str::is_empty")]
    error_code: &'static str,
}

fn json(status: StatusCode, value: &impl Serialize) -> Response {
    // Go's encoder: compact JSON and a newline.
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b'\n');
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn error_return(status: StatusCode, message: &str, code: &str) -> Response {
    json(
        status,
        &ErrorReturn {
            error: message,
            error_code: code,
            legacy_error_code: code,
        },
    )
}

/// The 401 body, negotiated on `Accept` and `Content-Type` (`controller.go:78-93,129-143`).
fn unauthorized(headers: &HeaderMap) -> Response {
    let mentions = |needle: &str| {
        [header::ACCEPT, header::CONTENT_TYPE].iter().any(|name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains(needle))
        })
    };
    if mentions("text/html") {
        (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<html><body><h1>Unauthorized</h1></body></html>\n",
        )
            .into_response()
    } else if mentions("application/json") {
        error_return(StatusCode::UNAUTHORIZED, "unauthorized", "")
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "unauthorized\n",
        )
            .into_response()
    }
}

fn with_limits(mut response: Response, taken: &Taken) -> Response {
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("x-ratelimit-limit", taken.limit.to_string());
    set("x-ratelimit-remaining", taken.remaining.to_string());
    set("x-ratelimit-reset", taken.reset.clone());
    if !taken.allowed {
        set("retry-after", taken.reset.clone());
    }
    response
}

/// The middleware chain: API key, then the limiter. `Err` is the answer to send.
fn admit(shared: &Shared, headers: &HeaderMap) -> Result<Taken, Box<Response>> {
    authenticate(shared, headers)?;
    limit(shared)
}

/// `requireAdminAPIKey`: a missing or unknown key is a 401 with no limiter headers.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<(), Box<Response>> {
    shared.count_request();
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("");
    if key.is_empty() || key != shared.api_key() {
        shared.count_unauthorized();
        tracing::debug!("Simulator refused an API key.");
        return Err(Box::new(unauthorized(headers)));
    }
    Ok(())
}

/// `rateLimit`: one token per request, whatever its size.
fn limit(shared: &Shared) -> Result<Taken, Box<Response>> {
    let taken = shared.take_token();
    if taken.allowed {
        return Ok(taken);
    }
    shared.count_rate_limited();
    tracing::debug!("Simulator limiter refused a request.");
    // `http.Error`: text/plain and a newline (`limitware/middleware.go:136-142`).
    let response = (
        StatusCode::TOO_MANY_REQUESTS,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        "Too Many Requests\n",
    )
        .into_response();
    Err(Box::new(with_limits(response, &taken)))
}

async fn health() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
}

async fn check_code_status(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let taken = match admit(&shared, &headers) {
        Ok(taken) => taken,
        Err(response) => return *response,
    };
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct StatusRequest {
        #[serde(default)]
        #[allow(dead_code)]
        padding: Option<String>,
        uuid: String,
    }
    let parsed = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .ok()
        .and_then(|bytes| serde_json::from_slice::<StatusRequest>(&bytes).ok());
    let response = match parsed {
        None => error_return(
            StatusCode::BAD_REQUEST,
            "malformed json",
            "unparsable_request",
        ),
        Some(request) => match shared.code_status(&request.uuid) {
            Some((claimed, expires, long_expires)) => json(
                StatusCode::OK,
                &serde_json::json!({
                    "claimed": claimed,
                    "expiresAtTimestamp": expires,
                    "longExpiresAtTimestamp": long_expires,
                }),
            ),
            None => error_return(
                StatusCode::NOT_FOUND,
                "code not found, it may have expired and been removed",
                "code_not_found",
            ),
        },
    };
    with_limits(response, &taken)
}

async fn batch_issue(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(response) = authenticate(&shared, &headers) {
        return *response;
    }
    let taken = match limit(&shared) {
        Ok(taken) => taken,
        Err(response) => return *response,
    };
    // Faults strike requests that got past the limiter, so a scripted fault is never
    // spent on a 429.
    let fault = shared.next_fault();
    match fault {
        Fault::DropBeforeIssue => {
            shared.count_dropped();
            tracing::debug!("Simulator dropped a connection before issuing.");
            conn.drop_now();
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        Fault::ErrorBeforeIssue => {
            shared.count_injected_error();
            let response = (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "Internal Server Error\n",
            )
                .into_response();
            return with_limits(response, &taken);
        }
        _ => {}
    }
    let response = handle_batch(&shared, &conn, &headers, body, fault).await;
    with_limits(response, &taken)
}

async fn handle_batch(
    shared: &Arc<Shared>,
    conn: &Conn,
    headers: &HeaderMap,
    body: Body,
    fault: Fault,
) -> Response {
    if shared.maintenance() || fault == Fault::Maintenance {
        return error_return(
            StatusCode::TOO_MANY_REQUESTS,
            "server is read-only for maintenance",
            "maintenance_mode",
        );
    }
    if !shared.allow_bulk() {
        return error_return(
            StatusCode::BAD_REQUEST,
            "bulk issuing is not enabled on this realm",
            "",
        );
    }
    let json_content = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_content {
        return error_return(
            StatusCode::BAD_REQUEST,
            "content-type is not application/json",
            "unparsable_request",
        );
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return error_return(
            StatusCode::BAD_REQUEST,
            "http: request body too large",
            "unparsable_request",
        );
    };
    let request = match parse_batch(&bytes) {
        Ok(request) => request,
        Err(message) => {
            return error_return(StatusCode::BAD_REQUEST, &message, "unparsable_request")
        }
    };
    let codes = request.codes.unwrap_or_default();
    if codes.len() > MAX_BATCH {
        return error_return(
            StatusCode::BAD_REQUEST,
            &format!("batch size limit [{MAX_BATCH}] exceeded"),
            "",
        );
    }
    let Some(items) = codes.into_iter().collect::<Option<Vec<_>>>() else {
        // A null item is dereferenced and the panic recovered as a 500 (contract §1.3).
        return json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &serde_json::json!({ "error": "Internal Server Error" }),
        );
    };
    if items.is_empty() {
        return json(
            StatusCode::OK,
            &BatchResponse {
                padding: shared.padding(),
                codes: Vec::new(),
                error: String::new(),
                error_code: "",
            },
        );
    }

    // The handler holds `alive` while it waits: when hyper drops the handler because the
    // client went away, the batch's task sees the sender gone.
    let (alive, gone) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(process(
        shared.clone(),
        shared.busy(),
        items,
        fault.clone(),
        gone,
    ));
    let processed = worker.await;
    drop(alive);
    let Ok(Some(results)) = processed else {
        return json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &serde_json::json!({ "error": "Internal Server Error" }),
        );
    };
    let issued = results.iter().filter(|r| r.is_ok()).count();
    tracing::debug!(
        items = results.len(),
        issued,
        "Simulator processed a batch."
    );
    match fault {
        Fault::ErrorAfterIssue => {
            shared.count_injected_error();
            return json(
                StatusCode::INTERNAL_SERVER_ERROR,
                &serde_json::json!({ "error": "Internal Server Error" }),
            );
        }
        Fault::DropAfterIssue => {
            shared.count_dropped();
            tracing::debug!("Simulator dropped a connection after issuing.");
            conn.drop_now();
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        _ => {}
    }
    batch_response(shared, results)
}

/// Commits, then the sends over the request's latency, cancelled when the client goes
/// away (`gone` resolves). `None` when cancelled: nobody is left to answer.
async fn process(
    shared: Arc<Shared>,
    _busy: Busy,
    items: Vec<ItemRequest>,
    fault: Fault,
    mut gone: tokio::sync::oneshot::Receiver<()>,
) -> Option<Vec<ItemResult>> {
    let today = chrono::Utc::now().date_naive();
    let mut batch = shared.commit_all(&items, today);
    shared.start_sends(&mut batch);
    let (mut latency, accept_after) = shared.send_timing();
    if let Fault::Delay(extra) = fault {
        latency += extra;
    }
    let accept_at = accept_after.min(latency);
    if !wait_unless_gone(accept_at, &mut gone).await {
        shared.cancel_sends(batch);
        return None;
    }
    shared.accept_sends(&mut batch, &fault);
    if !wait_unless_gone(latency - accept_at, &mut gone).await {
        shared.cancel_sends(batch);
        return None;
    }
    Some(shared.finish_sends(batch))
}

/// Sleeps for `time`; `false` when the client went away first.
async fn wait_unless_gone(time: Duration, gone: &mut tokio::sync::oneshot::Receiver<()>) -> bool {
    if time.is_zero() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(time) => true,
        _ = gone => false,
    }
}

/// The answer of a processed batch (`handle_issue_batch.go:131-163`). The status and
/// `errorCode` are taken from each failing item while the status is still 200, so
/// after `errorAll` a committed item (status 200) passes them on to the next one.
fn batch_response(shared: &Shared, results: Vec<ItemResult>) -> Response {
    let total = results.len();
    let mut status = StatusCode::OK;
    let mut first_code: Option<&'static str> = None;
    let mut failed = 0;
    let codes = results
        .into_iter()
        .map(|result| match result {
            Ok(c) => ItemResponse {
                padding: "",
                uuid: c.uuid,
                code: c.code,
                expires_at: rfc1123_of(c.expires_at),
                expires_at_timestamp: c.expires_at,
                long_expires_at: rfc1123_of(c.long_expires_at),
                long_expires_at_timestamp: c.long_expires_at,
                error: String::new(),
                error_code: "",
            },
            Err(ItemError {
                status: item_status,
                code,
                message,
            }) => {
                failed += 1;
                if status == StatusCode::OK {
                    first_code = Some(code);
                    status = StatusCode::from_u16(item_status)
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                }
                ItemResponse {
                    padding: "",
                    uuid: String::new(),
                    code: String::new(),
                    expires_at: String::new(),
                    expires_at_timestamp: 0,
                    long_expires_at: String::new(),
                    long_expires_at_timestamp: 0,
                    error: message,
                    error_code: code,
                }
            }
        })
        .collect();
    let mut error = String::new();
    if failed > 0 {
        // The missing space before "See" is the server's.
        error = format!("Failed to issue {failed} codes.");
        if total > failed {
            error.push_str(&format!(" Issued {} codes successfully.", total - failed));
        }
        error.push_str("See each error status in the codes array.");
    }
    json(
        status,
        &BatchResponse {
            padding: shared.padding(),
            codes,
            error,
            error_code: first_code.unwrap_or(""),
        },
    )
}
