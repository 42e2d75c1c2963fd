//! The epoch/batch engine of ca-notify.
//!
//! A run is a series of epochs (`orchestrate_epochs`); each epoch makes one claim on the
//! phone source (`acquire_data`) and cuts it into batches of at most 10
//! (`orchestrate_batches`); each batch (`execute_single_batch`) parses and pre-checks its
//! records (`pre_check_and_annotate`), asks the verification server to issue codes in one
//! request (`call_verification_server`), judges the answer item by item
//! (`evaluate_response`, in the domain) and writes every outcome back in one write
//! (`write_back`). The names are the seed's, so people who know it find their way.
//!
//! Unlike the seed, batches overlap (bounded by `max_batches_in_flight`), phone checks are
//! bounded run-wide, the next claim is prefetched, and the whole run fits a deadline:
//! nothing is started that the observed latencies say cannot be written in time, and at
//! a deadline or shutdown in-flight batches finish while untouched records are released.
//! Every claimed record ends a run either written with an outcome or released.
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
