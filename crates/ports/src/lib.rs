//! The four ports of ca-notify: what the pipeline needs from the outside world.
//!
//! Each is an object-safe async trait (`Send + Sync`), and each method documents its
//! error contract in an `# Errors` section: which error an adapter MUST return for which
//! situation, and which of them the pipeline may retry. The pipeline never sees an HTTP
//! or SQL error, only these enums. With the `mock` feature every port has a `mockall`
//! mock (`MockPhoneSource`, …) for unit tests where call order matters.
//!
//! * [`PhoneSource`]: claims unprocessed recipients under a lease, and releases them.
//! * [`PhoneValidator`]: says whether one phone can receive an SMS.
//! * [`SmsIssuer`]: asks the verification server to issue (and text) up to 10 codes.
//! * [`ResultSink`]: writes one batch of outcomes in one atomic, idempotent write.
//! * [`RunLog`]: the store's table of runs (start, end, counts, stop reason), and the run
//!   id stamped on each outcome written.
//!
//! [`admin`] holds the operator's port, [`StoreAdmin`] (status, requeue, purge, export),
//! which the pipeline never uses.
//!
//! [`config`] holds the one shape of a configuration error ([`ConfigError`]) that every
//! adapter's and the pipeline's settings return.

pub mod admin;
pub mod config;
pub mod issuer;
pub mod run;
pub mod sink;
pub mod source;
pub mod validator;

pub use admin::{AdminError, StoreAdmin};
pub use config::{ConfigError, ConfigErrors, SourceTable};
pub use issuer::{IssueError, IssueItem, SmsIssuer, MAX_BATCH_ITEMS};
pub use run::{
    Backlog, InvalidRunId, RunCounts, RunEnd, RunId, RunLog, RunRecord, RunStart,
    NOTHING_TO_CLAIM_STOP,
};
pub use sink::{ResultSink, SinkError, WriteReceipt};
pub use source::{Claim, PhoneSource, SourceError};
pub use validator::{PhoneValidator, PhoneVerdict, ValidationError};

#[cfg(feature = "mock")]
pub use admin::MockStoreAdmin;
#[cfg(feature = "mock")]
pub use issuer::MockSmsIssuer;
#[cfg(feature = "mock")]
pub use run::MockRunLog;
#[cfg(feature = "mock")]
pub use sink::MockResultSink;
#[cfg(feature = "mock")]
pub use source::MockPhoneSource;
#[cfg(feature = "mock")]
pub use validator::MockPhoneValidator;
