//! The Snowflake store of ca-notify: recipients come from a configured Snowflake table,
//! and the pipeline's ledger (claims, outcomes, attempts) lives in a state table this
//! crate creates and migrates next to it.
//!
//! [`SnowflakeStore`] implements both [`PhoneSource`](ca_notify_ports::PhoneSource) and
//! [`ResultSink`](ca_notify_ports::ResultSink) over `snowflake-connector-rs`
//! (docs/decisions/0001-snowflake-connector-rs.md says why that client): every value is a
//! bound parameter, every identifier from configuration is validated and quoted, and a
//! claim is one explicit transaction that takes the claim lock first, then stamps a token
//! and a lease, read back by token.
//! docs/store-snowflake.md has the DDL, the claim protocol and its caveats.
//!
//! * [`config`]: [`SnowflakeConfig`], [`SnowflakeAuth`], [`SourceTable`] and their validation.
//! * [`section`]: [`SnowflakeSection`], the `[snowflake]` section an operator writes.
//! * [`SnowflakeStore`]: connect, `check`, `migrate`, and the two ports.
//! * `admin`: the operator's [`StoreAdmin`](ca_notify_ports::StoreAdmin) (status, requeue,
//!   export, reconcile's confirmations; purge counts only: the source table is the state's).
//! * [`StoreError`]: unavailable (retryable), misconfigured, or unknown.

mod admin;
mod admin_sql;
pub mod config;
mod connection;
mod decode;
mod error;
mod ident;
mod report;
mod runs;
mod schema;
pub mod section;
mod sql;
#[cfg(test)]
mod sqlglot_check;
mod store;

pub use config::{ConfigError, SnowflakeAuth, SnowflakeConfig, SourceTable};
pub use error::StoreError;
pub use report::{CheckReport, ColumnReport, MigrationReport};
pub use section::SnowflakeSection;
pub use store::{RunReadiness, SnowflakeStore};
