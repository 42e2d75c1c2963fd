//! A Twilio Lookup v2 simulator: `GET /v2/PhoneNumbers/{PhoneNumber}` on 127.0.0.1, for
//! tests, the demo (`ca-notify simulate`) and benchmarks.
//!
//! What it does, like Twilio:
//! * HTTP Basic auth against one Account SID (or API Key SID) and token; anything else is
//!   `401` with Twilio's error body, code 20003.
//! * A deterministic answer per number (the rule is in [`numbers`]: e.g. `+1 415 555 0100`
//!   is a mobile, `…0105` a landline, `…0109` invalid, `+1 800 …` toll-free), and Line Type
//!   Intelligence only when `Fields=line_type_intelligence` is asked for. Invalid numbers are
//!   `200` with `valid: false`, as in Lookup v2.
//! * An account concurrency ceiling: a request that would exceed it is answered at once with
//!   `429` and code 20429, and counted.
//! * An account state ([`AccountState`], in the config or changed with
//!   [`RunningTwilioSim::set_account_state`]): credentials that stopped working (`401`,
//!   20003), a Line Type Intelligence package not enabled (`200` with the package's
//!   `error_code` 60606), a suspended account (`403`, 20403).
//!
//! What it adds for tests: configurable latency (with seeded jitter), fault injection (a
//! seeded probability of 429 or 500, or faults scripted for the next requests or for one
//! number), per-number request and lookup counts, and the highest concurrency observed.
//!
//! The simulator holds numbers in memory to count them; it never logs one.

pub mod numbers;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use numbers::SimLine;

/// The simulator's default Account SID (a well-formed but fake `AC…` SID).
pub const DEFAULT_ACCOUNT_SID: &str = "AC5151515151515151515151515151abcd";
/// The simulator's default Auth Token.
pub const DEFAULT_AUTH_TOKEN: &str = "simulated-twilio-auth-token";

/// A scripted or random failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `429` with code 20429, with a `Retry-After` in seconds if given.
    TooManyRequests {
        /// The `Retry-After` header, in seconds.
        retry_after: Option<u64>,
    },
    /// `500` with code 20500.
    ServerError,
    /// `503` with code 20503.
    ServiceUnavailable,
    /// `502` with an HTML body, as a proxy in front of Twilio would answer.
    BadGatewayHtml,
    /// `404` with code 20404 and a message that echoes the number, as Twilio's does.
    NotFoundEchoingNumber,
    /// `200` with a body that is not JSON.
    MalformedBody,
    /// Waits this long before answering normally (to trip a client's timeout).
    Stall(Duration),
}

/// The state of the simulated Twilio account: the answers Twilio documents for an account
/// that cannot do a lookup (its error catalogue, `twilio.com/docs/api/errors/<code>`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AccountState {
    /// Everything works.
    #[default]
    Active,
    /// Our credentials stopped working (a rotated Auth Token, a deleted API key): every
    /// request is `401` with code 20003, as for a wrong token.
    CredentialsRevoked,
    /// The account is not enabled for the Line Type Intelligence package: a lookup that asks
    /// for it is `200` with `line_type_intelligence.error_code` 60606 ("Lookup Package is
    /// Not Enabled") and no type, the way Lookup v2 reports a package that failed (as 60601
    /// for Canadian numbers without access, per its Line Type Intelligence docs). The free
    /// basic lookup still works.
    LineTypeIntelligenceNotEnabled,
    /// The account is suspended or closed: every authenticated request is `403` with code
    /// 20403.
    Suspended,
}

impl AccountState {
    fn to_u8(self) -> u8 {
        match self {
            Self::Active => 0,
            Self::CredentialsRevoked => 1,
            Self::LineTypeIntelligenceNotEnabled => 2,
            Self::Suspended => 3,
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::CredentialsRevoked,
            2 => Self::LineTypeIntelligenceNotEnabled,
            3 => Self::Suspended,
            _ => Self::Active,
        }
    }
}

/// Lookup error 60606, "Lookup Package is Not Enabled".
const PACKAGE_NOT_ENABLED: i64 = 60606;

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct TwilioSimConfig {
    /// The port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// The accepted Basic-auth user name.
    pub account_sid: String,
    /// The accepted Basic-auth password.
    pub auth_token: String,
    /// Time taken by every answer except ceiling 429s and 401s.
    pub latency: Duration,
    /// A uniformly random extra in `[0, latency_jitter]` on top of `latency`.
    pub latency_jitter: Duration,
    /// Requests in flight beyond this are answered `429`/20429 at once. `None`: no ceiling.
    pub concurrency_limit: Option<usize>,
    /// Probability that an authorised request gets a random `429`.
    pub fault_rate_429: f64,
    /// Probability that an authorised request gets a random `500`.
    pub fault_rate_500: f64,
    /// Seed of the random faults and jitter.
    pub seed: u64,
    /// Answers that win over the rule in [`numbers`], by E.164 number.
    pub overrides: HashMap<String, SimLine>,
    /// The account's state at start; [`RunningTwilioSim::set_account_state`] changes it.
    pub account: AccountState,
}

impl Default for TwilioSimConfig {
    fn default() -> Self {
        Self {
            port: 0,
            account_sid: DEFAULT_ACCOUNT_SID.to_owned(),
            auth_token: DEFAULT_AUTH_TOKEN.to_owned(),
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
            // About Twilio's default account REST concurrency (a third-party figure).
            concurrency_limit: Some(100),
            fault_rate_429: 0.0,
            fault_rate_500: 0.0,
            seed: 0x5EED,
            overrides: HashMap::new(),
            account: AccountState::Active,
        }
    }
}

/// Counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TwilioSimStats {
    /// Every request to the lookup route.
    pub requests: u64,
    /// Answered 401 (bad or missing credentials, or [`AccountState::CredentialsRevoked`]).
    pub unauthorized: u64,
    /// Answered with an account error: 403/20403 for a suspended account, or Line Type
    /// Intelligence's 60606 for a package not enabled.
    pub account_refusals: u64,
    /// Answered 429 because the concurrency ceiling was exceeded.
    pub concurrency_rejections: u64,
    /// Answered with a scripted or random fault.
    pub injected_faults: u64,
    /// Answered 200 with a lookup body.
    pub lookups: u64,
    /// Of those, with Line Type Intelligence (the paid kind).
    pub line_type_lookups: u64,
    /// The most requests ever in flight at once.
    pub max_concurrency: usize,
}

/// The simulator; see [`TwilioSimulator::start`].
#[derive(Debug)]
pub struct TwilioSimulator;

impl TwilioSimulator {
    /// Binds 127.0.0.1:`config.port` and serves in the background until the returned
    /// handle is shut down or dropped.
    ///
    /// # Errors
    /// The port cannot be bound.
    pub async fn start(config: TwilioSimConfig) -> std::io::Result<RunningTwilioSim> {
        let listener = TcpListener::bind(("127.0.0.1", config.port)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(SimState::new(config));
        let app = Router::new()
            .route("/v2/PhoneNumbers/{phone}", get(lookup))
            .fallback(not_found)
            .with_state(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "The Twilio simulator stopped with an error.");
            }
        });
        tracing::info!(%addr, "Twilio Lookup simulator listening.");
        Ok(RunningTwilioSim {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A running simulator. Dropping it stops the server.
#[derive(Debug)]
pub struct RunningTwilioSim {
    addr: SocketAddr,
    state: Arc<SimState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningTwilioSim {
    /// `http://127.0.0.1:<port>`, the `base_url` for the adapter.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The accepted user name.
    pub fn account_sid(&self) -> &str {
        &self.state.config.account_sid
    }

    /// The accepted password.
    pub fn auth_token(&self) -> &str {
        &self.state.config.auth_token
    }

    /// Requests answered 200 for `e164` (successful lookups).
    pub fn lookups_of(&self, e164: &str) -> u64 {
        lock(&self.state.lookups).get(e164).copied().unwrap_or(0)
    }

    /// Authorised requests for `e164`, whatever their answer.
    pub fn requests_of(&self, e164: &str) -> u64 {
        lock(&self.state.requests_by_number)
            .get(e164)
            .copied()
            .unwrap_or(0)
    }

    /// Counters since start.
    pub fn stats(&self) -> TwilioSimStats {
        let s = &self.state;
        TwilioSimStats {
            requests: s.requests.load(Ordering::Relaxed),
            unauthorized: s.unauthorized.load(Ordering::Relaxed),
            account_refusals: s.account_refusals.load(Ordering::Relaxed),
            concurrency_rejections: s.concurrency_rejections.load(Ordering::Relaxed),
            injected_faults: s.injected_faults.load(Ordering::Relaxed),
            lookups: s.lookups_total.load(Ordering::Relaxed),
            line_type_lookups: s.line_type_lookups.load(Ordering::Relaxed),
            max_concurrency: s.max_in_flight.load(Ordering::Relaxed),
        }
    }

    /// The next authorised requests (any number) get these faults, in order.
    pub fn script_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.state.script).extend(faults);
    }

    /// The next authorised requests for `e164` get these faults, in order (before any
    /// number-independent script).
    pub fn script_faults_for(&self, e164: &str, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.state.script_by_number)
            .entry(e164.to_owned())
            .or_default()
            .extend(faults);
    }

    /// Changes the account's state from the next request on.
    pub fn set_account_state(&self, account: AccountState) {
        self.state.account.store(account.to_u8(), Ordering::Relaxed);
    }

    /// The account's state now.
    pub fn account_state(&self) -> AccountState {
        AccountState::from_u8(self.state.account.load(Ordering::Relaxed))
    }

    /// Changes the latency of answers from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.state
            .latency_micros
            .store(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// Stops accepting connections, lets answers in flight finish, and waits.
    pub async fn shutdown(mut self) {
        self.stop_and_wait().await;
    }

    /// Serves until `signal` completes (e.g. Ctrl-C), then shuts down. For
    /// `ca-notify simulate`.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) {
        signal.await;
        self.stop_and_wait().await;
    }

    async fn stop_and_wait(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningTwilioSim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[derive(Debug)]
struct SimState {
    config: TwilioSimConfig,
    expected_authorization: String,
    latency_micros: AtomicU64,
    account: AtomicU8,
    rng: Mutex<StdRng>,
    script: Mutex<VecDeque<Fault>>,
    script_by_number: Mutex<HashMap<String, VecDeque<Fault>>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    requests: AtomicU64,
    unauthorized: AtomicU64,
    account_refusals: AtomicU64,
    concurrency_rejections: AtomicU64,
    injected_faults: AtomicU64,
    lookups_total: AtomicU64,
    line_type_lookups: AtomicU64,
    requests_by_number: Mutex<HashMap<String, u64>>,
    lookups: Mutex<HashMap<String, u64>>,
}

impl SimState {
    fn new(config: TwilioSimConfig) -> Self {
        let credentials = BASE64.encode(format!("{}:{}", config.account_sid, config.auth_token));
        Self {
            expected_authorization: format!("Basic {credentials}"),
            latency_micros: AtomicU64::new(config.latency.as_micros() as u64),
            account: AtomicU8::new(config.account.to_u8()),
            rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
            script: Mutex::default(),
            script_by_number: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            unauthorized: AtomicU64::new(0),
            account_refusals: AtomicU64::new(0),
            concurrency_rejections: AtomicU64::new(0),
            injected_faults: AtomicU64::new(0),
            lookups_total: AtomicU64::new(0),
            line_type_lookups: AtomicU64::new(0),
            requests_by_number: Mutex::default(),
            lookups: Mutex::default(),
            config,
        }
    }

    /// The next fault for `e164`: its own script, then the shared script, then chance.
    fn next_fault(&self, e164: &str) -> Option<Fault> {
        if let Some(fault) = lock(&self.script_by_number)
            .get_mut(e164)
            .and_then(VecDeque::pop_front)
        {
            return Some(fault);
        }
        if let Some(fault) = lock(&self.script).pop_front() {
            return Some(fault);
        }
        let (p429, p500) = (self.config.fault_rate_429, self.config.fault_rate_500);
        if p429 <= 0.0 && p500 <= 0.0 {
            return None;
        }
        let roll: f64 = lock(&self.rng).random();
        if roll < p429 {
            Some(Fault::TooManyRequests { retry_after: None })
        } else if roll < p429 + p500 {
            Some(Fault::ServerError)
        } else {
            None
        }
    }

    fn latency(&self) -> Duration {
        let base = Duration::from_micros(self.latency_micros.load(Ordering::Relaxed));
        let jitter = self.config.latency_jitter;
        if jitter.is_zero() {
            return base;
        }
        let unit: f64 = lock(&self.rng).random();
        base + jitter.mul_f64(unit)
    }
}

/// Counts a request in flight for as long as its handler runs (or until the client goes).
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicUsize, max: &AtomicUsize) -> (Self, usize) {
        let now = counter.fetch_add(1, Ordering::SeqCst) + 1;
        max.fetch_max(now, Ordering::SeqCst);
        (Self(counter), now)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn lookup(
    State(state): State<Arc<SimState>>,
    Path(phone): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (_in_flight, now) = InFlight::enter(&state.in_flight, &state.max_in_flight);
    state.requests.fetch_add(1, Ordering::Relaxed);

    let account = AccountState::from_u8(state.account.load(Ordering::Relaxed));
    let authorised = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == state.expected_authorization);
    if !authorised || account == AccountState::CredentialsRevoked {
        state.unauthorized.fetch_add(1, Ordering::Relaxed);
        let mut response = twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"Twilio API\""),
        );
        return response;
    }
    if account == AccountState::Suspended {
        state.account_refusals.fetch_add(1, Ordering::Relaxed);
        return twilio_error(
            StatusCode::FORBIDDEN,
            20403,
            "The account lacks permission to access the Twilio API",
        );
    }
    if state
        .config
        .concurrency_limit
        .is_some_and(|limit| now > limit)
    {
        state.concurrency_rejections.fetch_add(1, Ordering::Relaxed);
        return twilio_error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
    }
    *lock(&state.requests_by_number)
        .entry(phone.clone())
        .or_default() += 1;

    let fault = state.next_fault(&phone);
    if fault.is_some() {
        state.injected_faults.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(Fault::Stall(stall)) = fault {
        tokio::time::sleep(stall).await;
    }
    let latency = state.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        None | Some(Fault::Stall(_)) => {}
        Some(fault) => return fault_response(fault, &phone),
    }

    let with_line_type = query
        .get("Fields")
        .is_some_and(|f| f.split(',').any(|f| f.trim() == "line_type_intelligence"));
    let mut line = state
        .config
        .overrides
        .get(&phone)
        .cloned()
        .unwrap_or_else(|| numbers::line_for(&phone));
    state.lookups_total.fetch_add(1, Ordering::Relaxed);
    let package_off = account == AccountState::LineTypeIntelligenceNotEnabled;
    if with_line_type && package_off && !matches!(line, SimLine::Invalid(_)) {
        state.account_refusals.fetch_add(1, Ordering::Relaxed);
        line = SimLine::LookupError(PACKAGE_NOT_ENABLED);
    } else if with_line_type && !package_off {
        state.line_type_lookups.fetch_add(1, Ordering::Relaxed);
    }
    *lock(&state.lookups).entry(phone.clone()).or_default() += 1;
    Json(numbers::lookup_body(&phone, &line, with_line_type)).into_response()
}

fn fault_response(fault: Fault, phone: &str) -> Response {
    match fault {
        Fault::TooManyRequests { retry_after } => {
            let mut response =
                twilio_error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
        Fault::ServerError => twilio_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            20500,
            "Internal Server Error",
        ),
        Fault::ServiceUnavailable => twilio_error(
            StatusCode::SERVICE_UNAVAILABLE,
            20503,
            "Service Unavailable",
        ),
        Fault::BadGatewayHtml => (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        )
            .into_response(),
        Fault::NotFoundEchoingNumber => twilio_error(
            StatusCode::NOT_FOUND,
            20404,
            &format!("The requested resource /PhoneNumbers/{phone} was not found"),
        ),
        Fault::MalformedBody => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"valid\": tru",
        )
            .into_response(),
        Fault::Stall(_) => StatusCode::OK.into_response(),
    }
}

async fn not_found() -> Response {
    twilio_error(
        StatusCode::NOT_FOUND,
        20404,
        "The requested resource was not found",
    )
}

/// Twilio's classic error body, `{code, message, more_info, status}`.
fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (status, Json(body)).into_response()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counters and scripts stay usable after a panicking test thread.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(
        sim: &RunningTwilioSim,
        path: &str,
        credentials: Option<(&str, &str)>,
    ) -> reqwest::Response {
        let mut request = reqwest::Client::new().get(format!("{}{path}", sim.base_url()));
        if let Some((user, password)) = credentials {
            request = request.basic_auth(user, Some(password));
        }
        request.send().await.expect("the simulator answers")
    }

    fn creds(sim: &RunningTwilioSim) -> Option<(&str, &str)> {
        Some((sim.account_sid(), sim.auth_token()))
    }

    #[tokio::test]
    async fn answers_by_the_rule_and_counts_per_number() {
        let sim = TwilioSimulator::start(TwilioSimConfig::default())
            .await
            .expect("starts");
        let path = "/v2/PhoneNumbers/%2B14155550105?Fields=line_type_intelligence";
        let response = get(&sim, path, creds(&sim)).await;
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["line_type_intelligence"]["type"], "landline");
        assert_eq!(body["phone_number"], "+14155550105");

        // A raw `+` works too, and without Fields there is no line type.
        let response = get(&sim, "/v2/PhoneNumbers/+14155550105", creds(&sim)).await;
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["line_type_intelligence"], serde_json::Value::Null);

        assert_eq!(sim.lookups_of("+14155550105"), 2);
        assert_eq!(sim.lookups_of("+14155550100"), 0);
        let stats = sim.stats();
        assert_eq!((stats.lookups, stats.line_type_lookups), (2, 1));
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn refuses_wrong_credentials_with_20003() {
        let sim = TwilioSimulator::start(TwilioSimConfig::default())
            .await
            .expect("starts");
        let path = "/v2/PhoneNumbers/%2B14155550100";
        for credentials in [None, Some((sim.account_sid(), "wrong"))] {
            let response = get(&sim, path, credentials).await;
            assert_eq!(response.status(), 401);
            assert!(response.headers().contains_key("www-authenticate"));
            let body: serde_json::Value = response.json().await.expect("json");
            assert_eq!(body["code"], 20003);
            assert_eq!(body["status"], 401);
        }
        assert_eq!(sim.stats().unauthorized, 2);
        assert_eq!(sim.requests_of("+14155550100"), 0);
    }

    #[tokio::test]
    async fn scripted_faults_come_first_and_in_order() {
        let sim = TwilioSimulator::start(TwilioSimConfig::default())
            .await
            .expect("starts");
        sim.script_faults_for(
            "+14155550100",
            [Fault::TooManyRequests {
                retry_after: Some(3),
            }],
        );
        sim.script_faults([Fault::ServerError, Fault::BadGatewayHtml]);
        let path = "/v2/PhoneNumbers/%2B14155550100";
        let first = get(&sim, path, creds(&sim)).await;
        assert_eq!(first.status(), 429);
        assert_eq!(first.headers()["retry-after"], "3");
        assert_eq!(get(&sim, path, creds(&sim)).await.status(), 500);
        let third = get(&sim, path, creds(&sim)).await;
        assert_eq!(third.status(), 502);
        assert!(third.text().await.expect("text").contains("<html>"));
        assert_eq!(get(&sim, path, creds(&sim)).await.status(), 200);
        assert_eq!(sim.requests_of("+14155550100"), 4);
        assert_eq!(sim.lookups_of("+14155550100"), 1);
        assert_eq!(sim.stats().injected_faults, 3);
    }

    #[tokio::test]
    async fn random_faults_are_seeded() {
        async fn statuses(seed: u64) -> Vec<u16> {
            let sim = TwilioSimulator::start(TwilioSimConfig {
                fault_rate_429: 0.3,
                fault_rate_500: 0.2,
                seed,
                ..TwilioSimConfig::default()
            })
            .await
            .expect("starts");
            let mut out = Vec::new();
            for _ in 0..40 {
                let response = get(&sim, "/v2/PhoneNumbers/%2B14155550100", creds(&sim)).await;
                out.push(response.status().as_u16());
            }
            out
        }
        let a = statuses(7).await;
        assert_eq!(a, statuses(7).await, "same seed, same faults");
        assert!(
            a.contains(&429) && a.contains(&500) && a.contains(&200),
            "{a:?}"
        );
    }

    #[tokio::test]
    async fn the_concurrency_ceiling_answers_20429_and_is_recorded() {
        let sim = TwilioSimulator::start(TwilioSimConfig {
            concurrency_limit: Some(2),
            latency: Duration::from_millis(200),
            ..TwilioSimConfig::default()
        })
        .await
        .expect("starts");
        let requests = (0..5).map(|_| get(&sim, "/v2/PhoneNumbers/%2B14155550100", creds(&sim)));
        let answers = futures::future::join_all(requests).await;
        let rejected: Vec<_> = answers.iter().filter(|r| r.status() == 429).collect();
        assert_eq!(rejected.len(), 3, "two pass, three are over the ceiling");
        let stats = sim.stats();
        assert_eq!(stats.concurrency_rejections, 3);
        assert!(stats.max_concurrency > 2, "{stats:?}");
        assert_eq!(stats.lookups, 2);
    }

    #[tokio::test]
    async fn unknown_paths_get_twilio_404s() {
        let sim = TwilioSimulator::start(TwilioSimConfig::default())
            .await
            .expect("starts");
        let response = get(&sim, "/v1/Nope", creds(&sim)).await;
        assert_eq!(response.status(), 404);
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["code"], 20404);
    }
}
