//! Observed latencies, smoothed, so the engine can tell whether work still fits the deadline.
//!
//! An exponentially weighted moving average reacts within a few samples when an outside
//! service slows down, without one slow call dominating. Until a stage has been observed
//! its estimate is zero: the first batch is always tried.

use std::sync::Mutex;
use std::time::Duration;

/// Weight of the newest sample.
const ALPHA: f64 = 0.2;

/// One smoothed latency.
#[derive(Debug, Default)]
pub(crate) struct Ewma {
    secs: Mutex<Option<f64>>,
}

impl Ewma {
    pub fn observe(&self, sample: Duration) {
        let sample = sample.as_secs_f64();
        let mut secs = self.secs.lock().unwrap_or_else(|e| e.into_inner());
        *secs = Some(match *secs {
            Some(prev) => prev + ALPHA * (sample - prev),
            None => sample,
        });
    }

    /// The estimate, zero before the first sample.
    pub fn estimate(&self) -> Duration {
        let secs = self.secs.lock().unwrap_or_else(|e| e.into_inner());
        secs.map_or(Duration::ZERO, Duration::from_secs_f64)
    }
}

/// The latencies the engine plans with.
#[derive(Debug, Default)]
pub(crate) struct Latencies {
    /// One phone check.
    pub check: Ewma,
    /// One claim.
    pub claim: Ewma,
    /// One batch-issue request.
    pub issue: Ewma,
    /// One epoch's write-back.
    pub write: Ewma,
}

impl Latencies {
    /// One record's way from its phone check to its written outcome.
    pub fn record(&self) -> Duration {
        self.check.estimate() + self.issue.estimate() + self.write.estimate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_zero_then_follows_the_samples() {
        let e = Ewma::default();
        assert_eq!(e.estimate(), Duration::ZERO);
        e.observe(Duration::from_secs(1));
        assert_eq!(e.estimate(), Duration::from_secs(1));
        e.observe(Duration::from_secs(2));
        assert_eq!(e.estimate(), Duration::from_millis(1200));
    }
}
