//! In-memory adapters for every ca-notify port, for tests, demos and embedders.
//!
//! They keep the semantics that matter to the engine's promises, so a test on them proves
//! something about production: [`MemoryStore`] claims under tokens and leases and writes
//! back atomically and idempotently; [`MemoryIssuer`] never texts a uuid twice;
//! [`MemoryValidator`] answers deterministically. Each can simulate latency, inject
//! failures and be inspected. Phone numbers stay in memory and are never printed.
//!
//! * [`store`]: [`MemoryStore`], a `PhoneSource` and `ResultSink`.
//! * [`validator`]: [`MemoryValidator`], a `PhoneValidator`.
//! * [`issuer`]: [`MemoryIssuer`], an `SmsIssuer`.

pub mod issuer;
pub mod store;
pub mod validator;

pub use issuer::{IssuerFault, MemoryIssuer, Scripted};
pub use store::{MemoryStore, StoreCalls, StoreCounts, StoreFault, StoredResult};
pub use validator::{default_rule, MemoryValidator, ValidatorFault};
