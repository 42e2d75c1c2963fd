//! `ca-notify serve-functions`: the Azure Functions custom handler.
//!
//! Azure runs a native binary only as a *custom handler*: an HTTP server the Functions
//! host starts, tells where to listen through `FUNCTIONS_CUSTOMHANDLER_PORT`, and POSTs
//! each trigger to, at `/<function name>` (Microsoft's docs,
//! `articles/azure-functions/functions-custom-handlers.md`). `deploy/azure-functions/`
//! holds the app: `host.json` (`customHandler`) and one timer-triggered function.
//!
//! Each invocation is one job: the configuration is loaded afresh (application settings
//! are `CA_NOTIFY__…` variables, secrets may be `…_FILE`), the run's deadline comes from
//! the function timeout ([`timeout`]), the job runs, and the answer carries the run's
//! result and summary (`ReturnValue`) and the log lines it wrote (`Logs`) in the custom
//! handler's shape ([`payload`]). An invocation that arrives while another's run is in
//! progress is refused with `409 Conflict` and does nothing: claims would keep two runs
//! apart, but a second run would only share the first one's rate budgets and deadline.
//! SIGTERM (the host stopping) lets the run in progress finish its in-flight batches and
//! release the rest, then stops the server.

mod payload;
mod timeout;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use ca_notify_job::{Job, JobConfig, JobError};
use tokio_util::sync::CancellationToken;

use self::payload::{InvokeRequest, InvokeResponse, RunResult};
use self::timeout::FunctionTimeout;
use crate::cli::ServeFunctionsArgs;
use crate::exit::{self, Failure};
use crate::signals::shutdown_on_signals;
use crate::{log_capture, summary};

/// The header in which the host names the invocation.
const INVOCATION_ID: &str = "x-azure-functions-invocationid";

/// What every invocation shares.
struct Handler {
    config_path: Option<PathBuf>,
    env: HashMap<String, String>,
    deadline_secs: u64,
    /// Held for the length of a run: a second invocation meanwhile is refused.
    busy: tokio::sync::Mutex<()>,
    shutdown: CancellationToken,
}

/// Serves invocations until SIGTERM or SIGINT.
///
/// # Errors
/// A `host.json` or configuration that cannot serve (exit code 2), a port that cannot be
/// bound (1).
pub async fn execute(
    config_path: Option<&std::path::Path>,
    env: &HashMap<String, String>,
    args: &ServeFunctionsArgs,
) -> Result<(), Failure> {
    let timeout = FunctionTimeout::from_host_json(&args.host_json)
        .map_err(|m| Failure::new(exit::CONFIG, m))?;
    // The configuration is checked now, so a broken setting shows when the host starts
    // the handler, not at the first timer.
    let config = JobConfig::load(config_path, env)?;
    let deadline_secs = timeout
        .deadline_secs(config.pipeline.deadline_secs)
        .map_err(|m| Failure::new(exit::CONFIG, m))?;
    let mut checked = config;
    checked.pipeline.deadline_secs = deadline_secs;
    checked
        .validate_for_run()
        .map_err(|e| Failure::from(JobError::from(e)))?;
    checked
        .pipeline
        .settings(false)
        .map_err(|e| Failure::from(JobError::from(e)))?;

    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::new(exit::INTERNAL, format!("cannot listen on {addr}: {e}")))?;
    let shutdown = shutdown_on_signals();
    let handler = Arc::new(Handler {
        config_path: config_path.map(std::path::Path::to_path_buf),
        env: env.clone(),
        deadline_secs,
        busy: tokio::sync::Mutex::new(()),
        shutdown: shutdown.clone(),
    });
    let app = Router::new()
        .route("/{function}", post(invoke))
        .with_state(handler);
    tracing::info!(
        port = args.port,
        deadline_secs,
        host_json = %args.host_json.display(),
        "Serving Azure Functions invocations."
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(|e| Failure::new(exit::INTERNAL, format!("the handler stopped: {e}")))
}

/// One invocation: one job, or a refusal.
async fn invoke(
    State(handler): State<Arc<Handler>>,
    UrlPath(function): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<InvokeResponse>) {
    let invocation = headers
        .get(INVOCATION_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_owned();
    let request: InvokeRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            let message = format!(
                "The invocation's body is not a custom handler payload ({{\"Data\": …, \"Metadata\": …}}): {e}"
            );
            tracing::warn!(function = %function, invocation = %invocation, "{message}");
            return answer(StatusCode::BAD_REQUEST, refusal(message), vec![]);
        }
    };
    let Ok(_running) = handler.busy.try_lock() else {
        let message =
            "Another invocation's run is still in progress; this one did nothing.".to_owned();
        tracing::warn!(function = %function, invocation = %invocation, "{message}");
        return answer(
            StatusCode::CONFLICT,
            refusal(message.clone()),
            vec![message],
        );
    };
    log_capture::start();
    tracing::info!(
        function = %function,
        invocation = %invocation,
        trigger = request.method_name().unwrap_or("unknown"),
        past_due = request.is_past_due(),
        deadline_secs = handler.deadline_secs,
        "Invocation started."
    );
    let (result, table) = run_once(&handler).await;
    if let Some(message) = &result.message {
        tracing::error!(invocation = %invocation, exit_code = ?result.exit_code, "{message}");
    } else {
        tracing::info!(invocation = %invocation, "Invocation finished.");
    }
    let mut logs = log_capture::take();
    print!("{table}");
    logs.extend(table.lines().map(str::to_owned));
    let status = if result.status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    answer(status, result, logs)
}

/// Builds and runs one job; the result and the summary table.
async fn run_once(handler: &Handler) -> (RunResult, String) {
    let failed = |failure: Failure, summary| RunResult {
        status: "failed".into(),
        exit_code: Some(failure.code),
        message: Some(failure.to_string()),
        deadline_secs: Some(handler.deadline_secs),
        summary,
    };
    let mut config = match JobConfig::load(handler.config_path.as_deref(), &handler.env) {
        Ok(config) => config,
        Err(e) => return (failed(Failure::from(e), None), String::new()),
    };
    config.pipeline.deadline_secs = handler.deadline_secs;
    let job = match Job::builder(config).build().await {
        Ok(job) => job,
        Err(e) => return (failed(Failure::from(e), None), String::new()),
    };
    let run_id = job.run_id().clone();
    match job.run(handler.shutdown.child_token()).await {
        Ok(report) => (
            RunResult {
                status: "ok".into(),
                exit_code: Some(0),
                message: None,
                deadline_secs: Some(handler.deadline_secs),
                summary: Some(summary::json(&run_id, &report)),
            },
            summary::table(&run_id, &report),
        ),
        Err(failure) => (
            failed(
                Failure::from(&failure),
                Some(summary::json(&run_id, &failure.report)),
            ),
            summary::table(&run_id, &failure.report),
        ),
    }
}

fn refusal(message: String) -> RunResult {
    RunResult {
        status: "refused".into(),
        exit_code: None,
        message: Some(message),
        deadline_secs: None,
        summary: None,
    }
}

fn answer(
    status: StatusCode,
    result: RunResult,
    logs: Vec<String>,
) -> (StatusCode, Json<InvokeResponse>) {
    (status, Json(InvokeResponse::new(&result, logs)))
}
