//! A local, faithful stand-in for the Exposure Notifications Verification Server's
//! admin API: `POST /api/batch-issue`, `POST /api/checkcodestatus` and `GET /health`.
//!
//! It follows the contract in `docs/adapters/verification.md` (taken from the server at
//! commit `5a27cc4`): the API key check (401, no limiter headers), the request limiter
//! (`X-RateLimit-*` on every authorised answer, a plain-text 429 with an RFC 1123 `UTC`
//! `Retry-After`), maintenance mode, strict JSON binding, the 10-item cap, per-item
//! validation in the server's order, the uuid registry (409 for any committed uuid,
//! even one whose request is still sending), the daily code quota per item, the
//! concurrent SMS sends after all commits, and the top-level status and `errorCode` of
//! the server's loop over the items with its summary `error` text.
//!
//! It also behaves like the server when things go wrong: a message that cannot be built
//! or signed keeps the code row, a failed delete keeps it too, a realm without an SMS
//! provider answers 400 with no error code, a provider that cannot be loaded after the
//! commits answers every item `internal_server_error` (`errorAll`), and a client that
//! disconnects cancels the sends still running, after the provider may already have
//! delivered the text. [`RunningSim::purge_uuids`] forgets old uuids as the server's
//! cleanup job does.
//!
//! For tests it adds what a real server cannot: a ledger of texts per phone (never
//! logged), counters, configurable latency and fault injection (a 500 or a dropped
//! connection after the codes were issued, a drop before, maintenance, failed SMS
//! sends), drawn from a seeded RNG so runs are reproducible.
//!
//! Start it in-process with [`VerificationSimulator::start`], or in the foreground
//! with [`VerificationSimulator::serve`] (what `ca-notify simulate` runs).

mod handler;
mod limiter;
mod request;
mod state;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use limiter::RateLimit;

use state::Shared;

/// The API key the simulator accepts unless told otherwise.
pub const DEFAULT_API_KEY: &str = "sim-admin-api-key";

/// How the simulated server and realm behave.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The one ADMIN API key accepted.
    pub api_key: String,
    /// How long every processed batch request takes, spent in its SMS sends (they run
    /// concurrently, so one delay per request, whatever its size).
    pub latency: Duration,
    /// When, into a send's `latency`, the SMS provider has accepted the text: from then
    /// on the person has it, even if the send is cancelled later. `ZERO` (the default):
    /// at once; the rest of `latency` is the provider's answer time.
    pub sms_accept_after: Duration,
    /// The request limiter; `None` is the server's NOOP default (headers report 0).
    pub rate_limit: Option<RateLimit>,
    /// The realm's daily code quota (abuse prevention); `None` turns it off.
    pub daily_quota: Option<u32>,
    /// The quota's window (24 h on a real server).
    pub quota_window: Duration,
    /// `ALLOWED_PAST_SYMPTOM_DAYS` in days (28).
    pub past_days: u32,
    /// The test types enabled on the realm.
    pub allowed_test_types: Vec<String>,
    /// Whether `user-report` may be issued through the admin API.
    pub allow_user_report: bool,
    /// Whether bulk issuing is enabled on the realm.
    pub allow_bulk: bool,
    /// Whether the realm requires a test or symptom date.
    pub require_date: bool,
    /// The realm's alternate SMS template labels (the default template always exists).
    pub sms_template_labels: Vec<String>,
    /// The realm's SMS provider.
    pub sms_provider: SmsProvider,
    /// The realm's SMS signing (authenticated SMS).
    pub sms_signing: SmsSigning,
    /// Deleting the code row after a failed or cancelled send fails, so the row stays.
    pub delete_fails: bool,
    /// Server maintenance mode.
    pub maintenance: bool,
    /// Injected faults.
    pub faults: Faults,
    /// The seed of every random choice (faults, codes, padding).
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            api_key: DEFAULT_API_KEY.to_owned(),
            latency: Duration::ZERO,
            sms_accept_after: Duration::ZERO,
            rate_limit: None,
            daily_quota: None,
            quota_window: Duration::from_secs(24 * 60 * 60),
            past_days: 28,
            allowed_test_types: vec!["confirmed".into(), "likely".into(), "negative".into()],
            allow_user_report: false,
            allow_bulk: true,
            require_date: false,
            sms_template_labels: Vec::new(),
            sms_provider: SmsProvider::Configured,
            sms_signing: SmsSigning::Off,
            delete_fails: false,
            maintenance: false,
            faults: Faults::default(),
            seed: 0x5eed,
        }
    }
}

/// The realm's SMS provider, as the server finds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SmsProvider {
    /// A working provider.
    #[default]
    Configured,
    /// No SMS configuration: every item with a phone answers 400 with an empty
    /// `errorCode`, before the uuid lookup, and nothing is stored for it
    /// (`validate_code.go:126-133`).
    Missing,
    /// The provider (or the signer) cannot be loaded after the commits: every item is
    /// stored, then every item answers `internal_server_error`, and nothing is texted
    /// (`issue.go:109-130`, `errorAll`).
    LoadFails,
    /// The provider can never be loaded: items with a phone fail their check with a 500
    /// before anything is stored (`validate_code.go:117-125`), items without one are
    /// stored, then `errorAll` answers every item `internal_server_error`.
    LoadFailsBeforeCommit,
}

/// The realm's authenticated-SMS signing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SmsSigning {
    /// No signing, or signing that works (or fails open and sends unsigned).
    #[default]
    Off,
    /// Signing fails with `SMS_FAIL_CLOSED` set: every send fails with `sms_failure`
    /// before the provider is called, and the code row stays (`send_sms.go:110-116`).
    FailsClosed,
}

/// Faults to inject: scripted ones first (one per batch request that passed the API key
/// check and the limiter), then, when the script is empty, random ones with these
/// probabilities.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The next requests' faults, in order.
    pub script: VecDeque<Fault>,
    /// Per request: issue and text everything, then answer 500.
    pub error_after_issue: f64,
    /// Per request: issue and text everything, then drop the connection.
    pub drop_after_issue: f64,
    /// Per request: drop the connection before doing anything.
    pub drop_before_issue: f64,
    /// Per item: the SMS send fails (`sms_failure`; the code is deleted unless
    /// [`SimConfig::delete_fails`]).
    pub sms_failure: f64,
}

impl Faults {
    /// Only these scripted faults, no random ones.
    pub fn scripted(faults: impl IntoIterator<Item = Fault>) -> Self {
        Self {
            script: faults.into_iter().collect(),
            ..Self::default()
        }
    }
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Behave normally.
    None,
    /// Issue and text everything, then answer `500 {"error":"Internal Server Error"}`.
    ErrorAfterIssue,
    /// Issue and text everything, then close the connection without an answer.
    DropAfterIssue,
    /// Close the connection at once; nothing is issued.
    DropBeforeIssue,
    /// Answer `500` text/plain (as the limiter's backend failing does); nothing issued.
    ErrorBeforeIssue,
    /// Answer `429 maintenance_mode` for this request.
    Maintenance,
    /// The SMS sends of these item indices fail (`sms_failure`, with Twilio's text,
    /// which names the phone number, as the real server passes it through).
    SmsFailure(Vec<usize>),
    /// The SMS sends of these item indices find Twilio's queue full (`sms_queue_full`).
    SmsQueueFull(Vec<usize>),
    /// Add this much latency to this request.
    Delay(Duration),
}

/// Counters of what the simulator saw and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Requests received on the issue and status endpoints.
    pub requests: u64,
    /// 401s sent.
    pub unauthorized: u64,
    /// Limiter 429s sent.
    pub rate_limited: u64,
    /// Batches that reached per-item processing.
    pub batches: u64,
    /// Items in those batches.
    pub items: u64,
    /// Codes issued (committed and, with a phone, texted).
    pub issued: u64,
    /// Texts delivered, those of cancelled sends included.
    pub texts: u64,
    /// Items answered 409 `uuid_already_exists`.
    pub already_exists: u64,
    /// Of those, items whose uuid belonged to another request still sending.
    pub in_flight_conflicts: u64,
    /// Items answered 429 `quota_exceeded`.
    pub quota_exceeded: u64,
    /// Items answered `sms_failure` or `sms_queue_full` (build failures included).
    pub sms_failures: u64,
    /// Items whose message could not be built (unknown template) or signed; their code
    /// rows stay.
    pub build_failures: u64,
    /// Items answered 400 with no error code because the realm has no SMS provider.
    pub no_sms_provider: u64,
    /// Items answered `internal_server_error` by `errorAll`.
    pub error_all_items: u64,
    /// Code rows kept because their delete failed.
    pub failed_deletes: u64,
    /// Sends cancelled because the client disconnected.
    pub cancelled_sends: u64,
    /// Of those, sends whose text had already been delivered.
    pub texts_on_cancelled_sends: u64,
    /// Calls of [`RunningSim::purge_uuids`].
    pub purges: u64,
    /// Uuids those purges forgot.
    pub purged_uuids: u64,
    /// Connections dropped on purpose.
    pub dropped_connections: u64,
    /// 500s injected on purpose.
    pub injected_errors: u64,
}

/// Which phone got how many texts. Its `Debug` shows counts only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    texts: HashMap<String, u32>,
    /// Texts whose code was deleted after delivery (a send cancelled by a disconnect).
    dead: HashMap<String, u32>,
}

impl Ledger {
    /// Texts sent to this E.164 number.
    pub fn texts_to(&self, e164: &str) -> u32 {
        self.texts.get(e164).copied().unwrap_or(0)
    }

    /// All texts sent.
    pub fn total(&self) -> u64 {
        self.texts.values().map(|&n| u64::from(n)).sum()
    }

    /// How many phones got at least one text.
    pub fn phones(&self) -> usize {
        self.texts.len()
    }

    /// How many phones got more than one text (what must never happen while the client
    /// waits for its answers).
    pub fn phones_texted_more_than_once(&self) -> usize {
        self.texts.values().filter(|&&n| n > 1).count()
    }

    /// Texts to this number whose code the server deleted after delivery: a disconnect
    /// cancelled the send after the provider had accepted it (`send_sms.go:134-151`). The
    /// code in such a text cannot be used, so the person needs another.
    pub fn dead_texts_to(&self, e164: &str) -> u32 {
        self.dead.get(e164).copied().unwrap_or(0)
    }

    /// Texts to this number whose code still worked when the server was done with it.
    pub fn live_texts_to(&self, e164: &str) -> u32 {
        self.texts_to(e164) - self.dead_texts_to(e164)
    }

    /// All texts whose code the server deleted after delivery.
    pub fn dead_total(&self) -> u64 {
        self.dead.values().map(|&n| u64::from(n)).sum()
    }

    /// How many phones got more than one text with a usable code (what must never happen).
    pub fn phones_with_more_than_one_live_text(&self) -> usize {
        self.texts
            .keys()
            .filter(|phone| self.live_texts_to(phone) > 1)
            .count()
    }

    pub(crate) fn record(&mut self, e164: &str) {
        *self.texts.entry(e164.to_owned()).or_insert(0) += 1;
    }

    pub(crate) fn record_dead(&mut self, e164: &str) {
        *self.dead.entry(e164.to_owned()).or_insert(0) += 1;
    }
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger")
            .field("phones", &self.phones())
            .field("texts", &self.total())
            .field("dead_texts", &self.dead_total())
            .finish()
    }
}

/// Starts simulators.
#[derive(Debug, Clone, Copy)]
pub struct VerificationSimulator;

impl VerificationSimulator {
    /// Starts a simulator on an ephemeral loopback port, in the background of the
    /// current tokio runtime. It stops when the returned handle is dropped.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub async fn start(config: SimConfig) -> anyhow::Result<RunningSim> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Like [`start`](Self::start), on a given address.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start_on(config: SimConfig, addr: SocketAddr) -> anyhow::Result<RunningSim> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(handler::serve(listener, shared.clone(), async {
            let _ = stopped.await;
        }));
        Ok(RunningSim {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Serves in the foreground on `addr` until `shutdown` completes, then lets
    /// in-flight requests finish. For `ca-notify simulate`.
    ///
    /// # Errors
    /// When the address cannot be bound or the server fails.
    pub async fn serve(
        config: SimConfig,
        addr: SocketAddr,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let listener = TcpListener::bind(addr).await?;
        tracing::info!(
            addr = %listener.local_addr()?,
            "Verification server simulator listening."
        );
        handler::serve(listener, Arc::new(Shared::new(config)), shutdown).await
    }
}

/// A simulator running in the background; dropping it stops it.
pub struct RunningSim {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl fmt::Debug for RunningSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningSim")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RunningSim {
    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API key it accepts.
    pub fn api_key(&self) -> String {
        self.shared.api_key().to_owned()
    }

    /// A snapshot of the texts sent so far.
    pub fn ledger(&self) -> Ledger {
        self.shared.ledger()
    }

    /// Texts sent to this E.164 number so far.
    pub fn texts_to(&self, e164: &str) -> u32 {
        self.shared.ledger().texts_to(e164)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SimStats {
        self.shared.stats()
    }

    /// Whether a code row with this uuid is stored and its request has finished (what
    /// `/api/checkcodestatus` would say afterwards).
    pub fn is_issued(&self, uuid: &str) -> bool {
        self.shared.is_issued(uuid)
    }

    /// Marks the code issued under `uuid` claimed, as the person's app does when they
    /// enter it (what `/api/checkcodestatus` then reports); false when no code is stored.
    pub fn claim_code(&self, uuid: &str) -> bool {
        self.shared.claim_code(uuid)
    }

    /// Waits until no batch request is being processed, including the clean-up of
    /// requests whose client went away.
    pub async fn settled(&self) {
        self.shared.settled().await;
    }

    /// Forgets every stored uuid, as the server's cleanup job does once a code is
    /// `VERIFICATION_CODE_STATUS_MAX_AGE` past its expiry. Rows of requests still
    /// sending are brand new and stay. The SMS ledger stays. Returns how many were
    /// forgotten.
    pub fn purge_uuids(&self) -> usize {
        self.shared.purge_uuids()
    }

    /// Changes the realm's SMS provider for later requests.
    pub fn set_sms_provider(&self, provider: SmsProvider) {
        self.shared.set_sms_provider(provider);
    }

    /// Changes the realm's SMS signing for later sends.
    pub fn set_sms_signing(&self, signing: SmsSigning) {
        self.shared.set_sms_signing(signing);
    }

    /// Makes later deletes of code rows fail (or work again).
    pub fn set_delete_fails(&self, fails: bool) {
        self.shared.set_delete_fails(fails);
    }

    /// Changes when, into a send, the provider accepts the text (later requests).
    pub fn set_sms_accept_after(&self, after: Duration) {
        self.shared.set_sms_accept_after(after);
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.set_faults(faults);
    }

    /// Appends one scripted fault.
    pub fn push_fault(&self, fault: Fault) {
        self.shared.push_fault(fault);
    }

    /// Turns server maintenance on or off.
    pub fn set_maintenance(&self, on: bool) {
        self.shared.set_maintenance(on);
    }

    /// Changes the latency of later batches.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.set_latency(latency);
    }

    /// Sets the daily quota (and starts a fresh quota window).
    pub fn set_daily_quota(&self, quota: Option<u32>) {
        self.shared.set_daily_quota(quota);
    }

    /// Stops accepting connections and waits for in-flight requests.
    ///
    /// # Errors
    /// When the server task failed.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
