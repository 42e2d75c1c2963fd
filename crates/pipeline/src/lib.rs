//! The epoch/batch engine of ca-notify.
//!
//! A run is a series of epochs (`orchestrate_epochs`); each epoch makes one claim on the
//! phone source (`acquire_data`), parses its records and reads the store's ledger once for
//! all their dedup keys, then pre-checks each record (`pre_check_and_annotate`); records
//! that pass are packed ten to a batch (`pack.rs`), each batch (`execute_single_batch`)
//! asks the verification server to issue its codes in one request
//! (`call_verification_server`) and judges the answer item by item (`evaluate_response`,
//! in the domain), and each epoch writes all its outcomes back in one write
//! (`write_back`). The names are the seed's, so people who know it find their way.
//!
//! Unlike the seed, requests carry ten records that passed their check, checks and
//! requests overlap across batches and epochs (bounded run-wide by
//! `validation_concurrency` and `max_batches_in_flight`), claims and ledger reads are
//! made ahead and writes off the critical path, and the whole run fits a deadline:
//! nothing is started that could not end in time, and at a deadline or shutdown in-flight
//! requests finish while untouched records are released. Every claimed record ends a run
//! either written with an outcome or released.
//!
//! The engine depends on the domain and the ports only. It spawns its tasks on the
//! caller's tokio runtime and installs no tracing subscriber; its spans (`run` → `epoch`
//! → `batch`) carry record ids and counts, never a phone number.
//!
//! ```
//! use std::sync::Arc;
//!
//! use ca_notify_adapter_memory::{MemoryIssuer, MemoryStore, MemoryValidator};
//! use ca_notify_domain::{DedupSecret, RecipientRecord};
//! use ca_notify_pipeline::{Pipeline, Settings};
//! use tokio_util::sync::CancellationToken;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let today = chrono::Utc::now().date_naive().to_string();
//! let store = Arc::new(MemoryStore::with_records([
//!     RecipientRecord::new("1", "(415) 555-0123").with_test_date(today.clone()),
//!     RecipientRecord::new("2", "+14155550100").with_test_date(today), // a landline
//! ]));
//! let pipeline = Pipeline::builder()
//!     .source(store.clone())
//!     .sink(store.clone())
//!     .validator(Arc::new(MemoryValidator::new()))
//!     .issuer(Arc::new(MemoryIssuer::new()))
//!     .settings(Settings { epoch_count: 1, ..Settings::default() })
//!     .dedup_secret(DedupSecret::new("at least sixteen bytes".to_owned().into())?)
//!     .build()?;
//! let report = pipeline.run(CancellationToken::new()).await?;
//! assert_eq!((report.sent, report.not_sent_total()), (1, 1));
//! # Ok(())
//! # }
//! ```
//!
//! * [`settings`]: [`Settings`] and their checks; [`section`]: [`PipelineSection`], the
//!   `[pipeline]` section an operator writes.
//! * [`pipeline`]: [`Pipeline`], [`PipelineBuilder`].
//! * [`report`]: [`RunReport`], [`EpochReport`], their [`Counts`], [`BatchReport`].
//! * [`failure`]: [`RunFailure`], [`FatalCause`], [`StopReason`].
//! * [`observer`]: [`RunObserver`], progress hooks.

mod batch;
mod book;
mod context;
mod dedup_gate;
mod epoch;
pub mod failure;
mod issue;
mod latency;
mod ledger;
pub mod observer;
mod pack;
pub mod pipeline;
mod pre_check;
pub mod report;
pub mod section;
pub mod settings;
mod store_retry;

pub use failure::{FatalCause, RunFailure, StopReason};
pub use observer::RunObserver;
pub use pipeline::{BuildError, Pipeline, PipelineBuilder};
pub use report::{BatchReport, Counts, DeferredKind, EpochReport, RunReport};
pub use section::PipelineSection;
pub use settings::Settings;

#[cfg(test)]
mod tests;
