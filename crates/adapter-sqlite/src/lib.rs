//! The embedded SQLite store of ca-notify: the default source of recipients and ledger of
//! outcomes, in one file (`ca-notify.db` unless configured).
//!
//! [`SqliteStore`] implements both [`PhoneSource`](ca_notify_ports::PhoneSource) and
//! [`ResultSink`](ca_notify_ports::ResultSink), and the operator's
//! [`StoreAdmin`](ca_notify_ports::StoreAdmin). Several worker processes may share one
//! file: claims and write-backs are `BEGIN IMMEDIATE` transactions, claims stamp a unique
//! token and lease, and write-backs apply only under that token. `docs/store.md` has the
//! schema, the claim protocol and its proof of safety.
//!
//! * [`config`]: [`SqliteConfig`] and the configurable [`SourceTable`].
//! * [`identifier`]: validation and quoting of configured names.
//! * [`schema`]: the state tables, their migrations, adoption of source rows; the runs
//!   table behind [`RunLog`](ca_notify_ports::RunLog).
//! * [`import`]: CSV in (recipients); the export out is the job crate's, over [`admin`].
//! * [`admin`]: the operator's port, [`StoreAdmin`](ca_notify_ports::StoreAdmin).

pub mod admin;
pub mod clock;
pub mod config;
mod csv_lines;
mod durability;
mod error;
pub mod identifier;
pub mod import;
mod runs;
pub mod schema;
mod sink;
mod source;
mod statements;
mod store;

pub use clock::Clock;
pub use config::{validate_table, SourceTable, SqliteConfig};
pub use error::StoreError;
pub use identifier::InvalidIdentifier;
pub use import::{import_csv, ImportError, ImportReport};
pub use store::{CheckReport, SqliteStore, StoreCounts};
