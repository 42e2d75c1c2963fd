//! HTTP plumbing shared by every adapter that speaks HTTP (Twilio Lookup, the
//! verification server, Snowflake's base URL rule), so each rule has one owner:
//!
//! * [`loopback`]: plain `http://` is allowed only for loopback hosts.
//! * [`retry_after`]: lenient `Retry-After` / `X-RateLimit-Reset` parsing (delta-seconds,
//!   HTTP dates, and the verification server's Go dates that end in `UTC`).
//! * [`client`]: the defaults every `reqwest::Client` of ours starts from.
//!
//! It depends on no other crate of the workspace, so any adapter can use it without an
//! arrow pointing the wrong way. Retry *decisions* are not here: the one retry policy is
//! the domain's `Backoff`.

pub mod client;
pub mod loopback;
pub mod retry_after;

pub use client::client_builder;
pub use loopback::{is_loopback, is_loopback_host};
pub use retry_after::RetryAt;
