//! The composition root of ca-notify as a library: configuration → adapters → pipeline.
//!
//! An embedding service (or the `ca-notify` command) loads a [`JobConfig`] — every
//! component's section, layered from defaults, a TOML file and `CA_NOTIFY__SECTION__KEY`
//! environment variables — and turns it into a ready [`Job`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ca_notify_job::{Job, JobConfig};
//! use tokio_util::sync::CancellationToken;
//!
//! let env = std::env::vars().collect();
//! let config = JobConfig::load(Some("ca-notify.toml".as_ref()), &env)?;
//! let report = Job::from_config(&config).await?.run(CancellationToken::new()).await?;
//! println!("{} sent", report.sent);
//! # Ok(()) }
//! ```
//!
//! [`Job::builder`] takes the embedder's own implementations of any of the four ports
//! and builds the rest from the configuration (`examples/embed_job.rs` shows both ways).
//!
//! * [`config`]: [`JobConfig`], the layered loader and the sections no adapter owns
//!   (`[store]`, `[source]`, `[validator]`, `[dedup]`); each adapter crate owns its own.
//! * [`compose`]: which adapter backs which port; [`Store`].
//! * [`job`]: [`Job`], [`JobBuilder`], [`JobError`].
//! * [`observe`]: each run's id, its row in the store's runs table and its metrics
//!   (`[metrics]` is `ca-notify-metrics`'s section).
//! * [`preview`]: what the next run would do, read without claiming (`run --dry-run`).
//! * [`check`]: the configuration and every configured system, reached without sending.
//! * [`migrate`]: the store's state tables created or upgraded, or printed for a DBA.
//! * The operator's day, over the store's [`StoreAdmin`](ca_notify_ports::StoreAdmin)
//!   ([`Store::admin`]): [`export`] (CSV, either store, `-` for standard output),
//!   [`ids_file`] (`requeue --ids-file`), [`retention`] (`[retention]`, `purge`'s
//!   cutoff or refusal), [`reconcile`] (unconfirmed records against `/api/checkcodestatus`),
//!   [`report`] (the self-contained HTML page for the program's manager).

pub mod check;
pub mod compose;
pub mod config;
pub mod export;
pub mod ids_file;
pub mod job;
pub mod migrate;
pub mod observe;
pub mod preview;
pub mod reconcile;
pub mod report;
pub mod retention;
pub mod secret_files;

pub use compose::Store;
pub use config::{JobConfig, StoreKind, ValidatorKind};
pub use job::{Job, JobBuilder, JobError};
pub use observe::new_run_id;

pub use ca_notify_pipeline::{FatalCause, RunFailure, RunObserver, RunReport};
pub use ca_notify_ports::config::{ConfigError, ConfigErrors};
pub use ca_notify_ports::{RunId, RunLog, RunRecord};
