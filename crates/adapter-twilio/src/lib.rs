//! Phone validators for ca-notify: Twilio Lookup v2 Line Type Intelligence, and an offline
//! libphonenumber check that runs in front of it (or alone, without Twilio credentials).
//!
//! Every number is checked before the verification server is asked to text it, so
//! landlines and dead numbers cost nothing and annoy no one.
//!
//! * [`config`]: [`TwilioConfig`] and its `validate()`.
//! * [`section`]: [`TwilioSection`], the `[twilio]` section an operator writes.
//! * [`client`]: [`TwilioValidator`], the Lookup v2 adapter.
//! * [`policy`]: [`LineTypePolicy`], which line types count as SMS-capable.
//! * [`wire`]: the tolerant decoding of Twilio's JSON.
//! * [`offline`]: [`OfflineValidator`], no network; [`structure`] says which faults are
//!   final, [`nanp`] answers the range metadata for `+1` numbers.
//! * [`prefilter`]: [`PreFilteredValidator`], the offline check in front of Twilio.
//! * `retry`, `cache`: the retry decision and the once-per-number cache.
//! * `account`: the Twilio codes that mean our account cannot do the lookup.
//!
//! The composition root usually calls [`phone_validator`]:
//!
//! ```no_run
//! # fn demo(twilio: Option<ca_notify_adapter_twilio::TwilioConfig>)
//! # -> Result<(), ca_notify_adapter_twilio::ConfigError> {
//! let validator = ca_notify_adapter_twilio::phone_validator(twilio)?;
//! # let _ = validator; Ok(()) }
//! ```

pub mod client;
pub mod config;
pub mod nanp;
pub mod offline;
pub mod policy;
pub mod prefilter;
pub mod section;
pub mod structure;
pub mod wire;

mod account;
mod cache;
mod pace;
mod retry;

use std::sync::Arc;

use ca_notify_ports::PhoneValidator;

pub use client::{TwilioStats, TwilioValidator};
pub use config::{ConfigError, TwilioConfig, DEFAULT_BASE_URL};
pub use offline::{Finding, OfflineValidator};
pub use policy::{LineReading, LineType, LineTypePolicy};
pub use prefilter::{prefiltered, PreFilterStats, PreFilteredValidator};
pub use section::TwilioSection;

/// The validator a run should use: Twilio behind the offline pre-filter when Twilio is
/// configured, otherwise the offline validator alone (logged as a warning, since offline
/// checks cannot tell a US landline from a mobile).
///
/// # Errors
/// The [`ConfigError`] of an invalid Twilio configuration.
pub fn phone_validator(
    twilio: Option<TwilioConfig>,
) -> Result<Arc<dyn PhoneValidator>, ConfigError> {
    match twilio {
        Some(config) => {
            tracing::info!(
                concurrency = config.concurrency,
                requests_per_second = config.requests_per_second,
                workers = config.workers,
                "Checking phone numbers offline, then with Twilio Lookup line type intelligence."
            );
            Ok(prefiltered(Arc::new(TwilioValidator::new(config)?)))
        }
        None => {
            tracing::warn!(
                "No Twilio credentials configured: checking phone numbers offline only, which cannot tell US landlines from mobiles."
            );
            Ok(Arc::new(OfflineValidator::new()))
        }
    }
}
