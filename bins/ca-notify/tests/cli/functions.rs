//! `ca-notify serve-functions` as the Azure Functions host drives it: started in the
//! function app's folder (`deploy/azure-functions/`, its `host.json` as shipped) with
//! `FUNCTIONS_CUSTOMHANDLER_PORT`, sent timer invocations in the custom handler's request
//! shape (Microsoft's docs, `functions-custom-handlers.md`, *Request payload*), answered
//! in its response shape, over the store and simulators of [`World`].

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ca_notify_simulators::twilio::TwilioSimConfig;
use ca_notify_simulators::verification::SimConfig;
use serde_json::{json, Value};

use crate::harness::World;

/// Every wait in this file gives up after this.
const BUDGET: Duration = Duration::from_secs(40);

/// The function app as deployed: `host.json` and the `notify` function, copied from
/// `deploy/azure-functions/`.
fn function_app(world: &World) -> std::path::PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/azure-functions");
    let app = world.dir.path().join("app");
    std::fs::create_dir_all(app.join("notify")).expect("app folder");
    for file in ["host.json", "notify/function.json"] {
        std::fs::copy(shipped.join(file), app.join(file)).expect("copied");
    }
    app
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A timer invocation as the host sends it: the timer object under the binding's name
/// (`function.json`), `sys` metadata.
fn timer_invocation(past_due: bool) -> Value {
    json!({
        "Data": {"timer": {
            "Schedule": {"AdjustForDST": true},
            "ScheduleStatus": {"Last": "2026-12-02T10:00:00+00:00",
                               "Next": "2026-12-02T10:02:00+00:00",
                               "LastUpdated": "2026-12-02T10:00:00+00:00"},
            "IsPastDue": past_due
        }},
        "Metadata": {"sys": {"MethodName": "notify", "UtcNow": "2026-12-02T10:02:00.0012Z",
                             "RandGuid": "35e6e68c-5583-436c-a277-5aec2b416ba8"}}
    })
}

/// The handler, started as the host starts it; waits until it listens.
async fn start_handler(world: &World, port: u16) -> Child {
    let mut child = world
        .cli()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .current_dir(function_app(world))
        .command(&["serve-functions"])
        .stdout(Stdio::null())
        .stderr(world.log("handler.log"))
        .spawn()
        .expect("ca-notify starts");
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            child.try_wait().expect("status").is_none(),
            "the handler exited: {}",
            world.log_tail("handler.log")
        );
        assert!(started.elapsed() < BUDGET, "the handler never listened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child
}

/// Posts an invocation of `function`; the status and the answer.
async fn invoke(port: u16, function: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/{function}"))
        .header(
            "X-Azure-Functions-InvocationId",
            "3f1a2b9c-0000-4000-8000-000000000001",
        )
        .json(body)
        .send()
        .await
        .expect("the handler answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON answer"))
}

/// The run's result carried in `ReturnValue` (JSON text, as the docs' example has it).
fn result(answer: &Value) -> Value {
    serde_json::from_str(answer["ReturnValue"].as_str().expect("ReturnValue is text"))
        .expect("ReturnValue is JSON")
}

async fn stop(mut child: Child, world: &World) {
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(term.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("status") {
            break status;
        }
        assert!(started.elapsed() < BUDGET, "the handler did not stop");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(
        status.success(),
        "{status}: {}",
        world.log_tail("handler.log")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_timer_invocation_runs_one_job_and_an_overlapping_one_is_refused() {
    let world = World::start(
        60,
        TwilioSimConfig::default(),
        SimConfig {
            // Long enough batches that a second invocation arrives mid-run.
            latency: Duration::from_millis(300),
            ..SimConfig::default()
        },
    )
    .await;
    let port = free_port();
    let handler = start_handler(&world, port).await;

    let first = tokio::spawn(async move { invoke(port, "notify", &timer_invocation(true)).await });
    let started = Instant::now();
    while world.twilio.stats().requests == 0 {
        assert!(started.elapsed() < BUDGET, "the first run never got going");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (status, overlapping) = invoke(port, "notify", &timer_invocation(false)).await;
    assert_eq!(status, 409, "{overlapping}");
    let refused = result(&overlapping);
    assert_eq!(refused["status"], "refused", "{refused}");
    assert!(
        refused.get("summary").is_none(),
        "the refused invocation ran nothing"
    );

    let (status, answer) = first.await.expect("the first invocation");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["Outputs"],
        json!({}),
        "a timer function has no outputs"
    );
    let logs: Vec<&str> = answer["Logs"]
        .as_array()
        .expect("Logs")
        .iter()
        .map(|l| l.as_str().expect("a log line"))
        .collect();
    assert!(
        logs.iter().any(|l| l.contains("Invocation started")),
        "{logs:?}"
    );
    assert!(
        logs.iter().any(|l| l.starts_with("claimed")),
        "the summary: {logs:?}"
    );
    for person in &world.people {
        assert!(
            !logs.iter().any(|l| l.contains(&person.national)),
            "a phone number in the logs"
        );
    }
    let ran = result(&answer);
    assert_eq!(ran["status"], "ok", "{ran}");
    assert_eq!(ran["exit_code"], 0);
    // host.json as shipped: functionTimeout 5 minutes, less a tenth.
    assert_eq!(ran["deadline_secs"], 270);
    assert_eq!(ran["summary"]["claimed"], 60, "{ran}");
    assert_eq!(world.written(), 60, "every record written");
    world.assert_truthful();
    world.assert_exactly_once();

    // The next tick finds nothing left and texts no one again.
    let (status, answer) = invoke(port, "notify", &timer_invocation(false)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(result(&answer)["summary"]["claimed"], 0);
    world.assert_exactly_once();

    // Not a custom handler payload: a clear refusal, nothing run.
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/notify"))
        .body("not json")
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status().as_u16(), 400);

    stop(handler, &world).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_fails_the_invocation_with_its_exit_code_and_releases_the_records() {
    let world = World::start(20, TwilioSimConfig::default(), SimConfig::default()).await;
    let port = free_port();
    // A verification API key the server refuses: the run stops, nothing is finalised.
    let mut handler = world
        .cli()
        .env("CA_NOTIFY__VERIFICATION__API_KEY", "revoked-key")
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .current_dir(function_app(&world))
        .command(&["serve-functions"])
        .stdout(Stdio::null())
        .stderr(world.log("handler.log"))
        .spawn()
        .expect("ca-notify starts");
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            handler.try_wait().expect("status").is_none(),
            "{}",
            world.log_tail("handler.log")
        );
        assert!(started.elapsed() < BUDGET, "the handler never listened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, answer) = invoke(port, "notify", &timer_invocation(false)).await;
    assert_eq!(status, 500, "{answer}");
    let failed = result(&answer);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["exit_code"], 3, "unauthorized: {failed}");
    assert!(failed["message"].as_str().is_some_and(|m| !m.is_empty()));
    // Only verdicts about a record itself (a landline, an invalid number) are written;
    // no one is texted or marked sent, and every other record is released.
    let state = world.state();
    assert!(state.values().all(|r| !r.claimed), "every record released");
    assert!(
        state
            .values()
            .all(|r| matches!(r.outcome.as_deref(), None | Some("not_sent"))),
        "{state:?}"
    );
    assert!(
        state.values().any(|r| r.outcome.is_none()),
        "the issuable records are left"
    );
    assert_eq!(world.verification.ledger().total(), 0, "no one texted");
    stop(handler, &world).await;
}

#[test]
fn without_a_host_json_the_handler_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = crate::ca_notify()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", "7071")
        .env("CA_NOTIFY__DEDUP__SECRET", "0123456789abcdef0123")
        .current_dir(dir.path())
        .run(&["serve-functions"]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(out.stderr.contains("host.json"), "{}", out.all());
}
