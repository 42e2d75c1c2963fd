//! The [`SmsIssuer`](ca_notify_ports::SmsIssuer) adapter for the Exposure Notifications
//! Verification Server's `POST /api/batch-issue`: the server issues a code per item and
//! texts it, and this crate makes sure each person gets that text at most once.
//!
//! * [`config`]: [`VerificationConfig`] (the API key is a secret) and its `validate()`.
//! * [`section`]: [`VerificationSection`], the `[verification]` section an operator writes.
//! * [`client`]: [`VerificationClient`], the `SmsIssuer`: request shape, retries, fan-out.
//! * [`code_status`]: `/api/checkcodestatus` (was a uuid's code claimed?), for `reconcile`,
//!   paced with the issuing requests.
//! * [`classify`]: the judgement of one HTTP answer, per item or for the whole request.
//! * [`wire`]: the serde types of the request and the answers, documented fields only.
//! * [`pacing`]: the requests-per-minute limiter and the server's `X-RateLimit-*` headers.
//!
//! `Retry-After` / `X-RateLimit-Reset` parsing (with the server's `… UTC` dates), the
//! loopback rule and the HTTP client's defaults are shared with the other HTTP adapters
//! in `ca-notify-http`.
//! * [`healthcheck`]: `check_reachable`, which proves access without issuing anything.
//!
//! Dates are not checked here: the pipeline settles records whose test or symptom date
//! lies outside the server's window ([`ca_notify_domain::DateWindow`]) before they ever
//! become [`IssueItem`](ca_notify_ports::IssueItem)s, so no request or quota is spent on
//! them. `docs/adapters/verification.md` maps every server answer to what we do with it.

pub mod classify;
pub mod client;
pub mod code_status;
pub mod config;
pub mod healthcheck;
pub mod pacing;
pub mod section;
pub mod wire;

pub use client::VerificationClient;
pub use code_status::{CodeStatus, CodeStatusError};
pub use config::{ConfigError, VerificationConfig};
pub use section::VerificationSection;
