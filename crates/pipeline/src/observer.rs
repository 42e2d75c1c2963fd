//! Hooks for a caller that wants to watch a run as it goes (the CLI's progress bar).
//!
//! Called from the engine's tasks, so implementations must be cheap and must not block;
//! they see counts only, never a phone number.

use crate::report::BatchReport;

/// Receives progress events. Every method has an empty default.
pub trait RunObserver: Send + Sync {
    /// An epoch claimed `records` records.
    fn on_claimed(&self, _records: usize) {}

    /// Outcomes were written back: once per epoch, in the epoch's one write (the name is
    /// from when each batch wrote its own).
    fn on_batch_written(&self, _batch: &BatchReport) {}
}
