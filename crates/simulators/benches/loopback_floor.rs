//! What one HTTP round trip per record costs on this machine, before ca-notify does
//! anything: a client against an `axum` server (the simulators' server) over loopback,
//! keep-alive, ten requests in flight, on one two-worker runtime (client and server share
//! the cores, as in the end-to-end bench).
//!
//! Two clients, each with a 10 s request timeout as the adapters set one:
//! * `reqwest`: the adapters' client, redirects off as ours are (`ca-notify-http`).
//! * `hyper`: hyper-util's client, the one reqwest wraps, used directly: what a leaner
//!   client would cost (issue 14, item 7). End to end it saves less than this floor
//!   shows: `docs/benchmarks.md`, *where it ends*.
//!
//! Two servers:
//! * `bare`: a route that answers a fixed body the size of a Twilio Lookup answer.
//! * `twilio simulator`: the Twilio Lookup simulator itself, distinct numbers, with the
//!   same Basic credentials and query a lookup sends.
//!
//! Prints requests/s, the CPU time per request of the whole process (client + server),
//! and what that leaves for everything else at the 20 000 records/s (about 18 000
//! lookups/s, since a tenth of the records are duplicates answered from the cache). The
//! server's share is the same in both clients' rows, so their difference is the clients'.
//! Run with `cargo bench -p ca-notify-simulators --bench loopback_floor`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use base64::Engine;
use ca_notify_simulators::twilio::{TwilioSimConfig, TwilioSimulator};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

const REQUESTS: usize = 100_000;
const IN_FLIGHT: usize = 10;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A client that sends one GET and reads its whole body.
#[derive(Clone)]
enum Client {
    Reqwest(reqwest::Client),
    Hyper(Box<hyper_util::client::legacy::Client<HttpConnector, Empty<Bytes>>>),
}

impl Client {
    fn reqwest() -> Self {
        Self::Reqwest(
            reqwest::Client::builder()
                .tcp_nodelay(true)
                .pool_max_idle_per_host(IN_FLIGHT)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(TIMEOUT)
                .build()
                .expect("client"),
        )
    }

    fn hyper() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self::Hyper(Box::new(
            hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(IN_FLIGHT)
                .build(connector),
        ))
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Reqwest(_) => "reqwest",
            Self::Hyper(_) => "hyper",
        }
    }

    async fn get(&self, url: &str, auth: Option<&str>) {
        match self {
            Self::Reqwest(client) => {
                let mut request = client.get(url);
                if let Some(auth) = auth {
                    request = request.header("authorization", auth);
                }
                let response = request.send().await.expect("answered");
                assert!(response.status().is_success(), "{}", response.status());
                let _ = response.bytes().await.expect("body");
            }
            Self::Hyper(client) => {
                let mut request = hyper::Request::get(url);
                if let Some(auth) = auth {
                    request = request.header("authorization", auth);
                }
                let request = request.body(Empty::new()).expect("request");
                let exchange = async {
                    let response = client.request(request).await.expect("answered");
                    assert!(response.status().is_success(), "{}", response.status());
                    response.into_body().collect().await.expect("body")
                };
                let _ = tokio::time::timeout(TIMEOUT, exchange)
                    .await
                    .expect("in time");
            }
        }
    }
}

/// Sends `REQUESTS` GETs, `IN_FLIGHT` at a time; returns (wall, CPU).
async fn drive(
    client: &Client,
    urls: Arc<dyn Fn(usize) -> String + Send + Sync>,
    auth: Option<String>,
) -> (Duration, Duration) {
    let next = Arc::new(AtomicUsize::new(0));
    let cpu = ca_notify_simulators::cpu::own();
    let started = Instant::now();
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (client, next, urls, auth) = (
                client.clone(),
                Arc::clone(&next),
                Arc::clone(&urls),
                auth.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= REQUESTS {
                        break;
                    }
                    client.get(&urls(i), auth.as_deref()).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("worker");
    }
    (
        started.elapsed(),
        ca_notify_simulators::cpu::own().saturating_sub(cpu),
    )
}

fn row(server: &str, client: &Client, (wall, cpu): (Duration, Duration)) {
    let rate = REQUESTS as f64 / wall.as_secs_f64();
    let per = cpu.as_secs_f64() * 1e6 / REQUESTS as f64;
    // At 18 000 lookups/s these round trips alone take this share of two cores.
    let share = 18_000.0 * per / 1e6 / 2.0;
    println!(
        "| {server} | {} | {REQUESTS} | {:.2} s | {rate:.0} | {per:.0} µs | {:.0} % |",
        client.name(),
        wall.as_secs_f64(),
        share * 100.0
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!("| server | client | requests | wall | requests/s | CPU per request (client + server) | of 2 cores at 18 000/s |");
        println!("|---|---|---:|---:|---:|---:|---:|");

        // A body of the size the Twilio simulator answers.
        let body: &'static str = Box::leak(format!("{{\"valid\":true,\"pad\":\"{}\"}}", "x".repeat(700)).into_boxed_str());
        let app = Router::new().route(
            "/v2/PhoneNumbers/{phone}",
            get(move || async move { ([("content-type", "application/json")], body) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let base = format!("http://{addr}");
        let urls: Arc<dyn Fn(usize) -> String + Send + Sync> = Arc::new(move |i| {
            format!("{base}/v2/PhoneNumbers/%2B1415{:07}?Fields=line_type_intelligence", i % 10_000_000)
        });
        for client in [Client::reqwest(), Client::hyper()] {
            let measured = drive(&client, Arc::clone(&urls), None).await;
            row("bare axum route", &client, measured);
        }

        let sim = TwilioSimulator::start(TwilioSimConfig {
            concurrency_limit: None,
            ..TwilioSimConfig::default()
        })
        .await
        .expect("simulator");
        let base = sim.base_url();
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", sim.account_sid(), sim.auth_token()))
        );
        let urls: Arc<dyn Fn(usize) -> String + Send + Sync> = Arc::new(move |i| {
            format!("{base}/v2/PhoneNumbers/%2B1415{:07}?Fields=line_type_intelligence", i % 10_000_000)
        });
        for client in [Client::reqwest(), Client::hyper()] {
            let measured = drive(&client, Arc::clone(&urls), Some(auth.clone())).await;
            row("Twilio simulator", &client, measured);
        }
    });
}
