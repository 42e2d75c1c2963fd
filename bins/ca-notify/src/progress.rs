//! A progress bar on a terminal, fed by the pipeline's observer hook.

use std::io::IsTerminal;

use ca_notify_pipeline::{BatchReport, RunObserver};
use indicatif::{ProgressBar, ProgressStyle};

/// Shows claimed and settled records; hidden when standard error is not a terminal.
pub struct ProgressObserver {
    bar: ProgressBar,
    total_known: bool,
}

impl ProgressObserver {
    /// A bar with `total` records when known (a spinner-like bar otherwise).
    pub fn new(total: Option<u64>) -> Self {
        let bar = if std::io::stderr().is_terminal() {
            ProgressBar::new(total.unwrap_or(0))
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} records {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Self {
            bar,
            total_known: total.is_some(),
        }
    }

    /// A spinner with a message, for work whose size is unknown until it ends (an
    /// all-or-nothing import); hidden when standard error is not a terminal.
    pub fn spinner(message: &str) -> Self {
        let bar = if std::io::stderr().is_terminal() {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::hidden()
        };
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Self {
            bar,
            total_known: true,
        }
    }

    /// Removes the bar before the summary is printed.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl RunObserver for ProgressObserver {
    fn on_claimed(&self, records: usize) {
        // Without a known total, the bar grows with each claim.
        if !self.total_known {
            self.bar.inc_length(records as u64);
        }
    }

    fn on_batch_written(&self, batch: &BatchReport) {
        self.bar.inc(batch.records as u64);
        self.bar.set_message(format!("({} sent)", batch.sent));
    }
}
