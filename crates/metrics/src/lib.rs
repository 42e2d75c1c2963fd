//! A run's metrics for Prometheus, the batch-job way: rendered once at the end of a run
//! in the text exposition format, then pushed to a Pushgateway (replacing the job's group)
//! and/or written atomically to a file for node_exporter's textfile collector.
//!
//! A batch job is not scraped while it runs, so it hands over what an operator alerts on
//! when it ends: what the run did (records by outcome and reason, issue requests, retries,
//! 429s, duration, how it stopped), the backlog left, and the last successful run's end,
//! which comes from the store's runs table so that a failed run's push (which replaces
//! the whole group) still carries it.
//!
//! * [`section`]: `[metrics]`, [`MetricsSection`], and the [`Metrics`] publisher it builds.
//! * [`exposition`]: [`RunMetrics`] and its rendering; the metric names, once.
//! * [`pushgateway`]: the `PUT` to `/metrics/job/<job>{/instance/<instance>}`.
//! * [`textfile`]: the atomic write (temporary file in the same directory, then rename).
//!
//! Metrics carry no phone number and no secret: counts, codes and times only.

pub mod exposition;
pub mod pushgateway;
pub mod section;
pub mod textfile;

pub use exposition::{render, RecordCount, RunMetrics, METRIC_NAMES};
pub use section::{Metrics, MetricsError, MetricsSection};
