//! `ca-notify reconcile`: settles `unconfirmed` records with the verification server's own
//! memory of their codes.
//!
//! An `unconfirmed` record's uuid has a code row on the server, but an attempt failed
//! after the row may have been stored, so nobody knows whether the text went out. The
//! server's `/api/checkcodestatus` says whether that code was *claimed*: someone entered
//! it to get a token, which only the person who received the text can do. A claimed code
//! is proof of the text, so the record is written texted (`sent = 1`, reason
//! `confirmed_by_claim`). An unclaimed code proves nothing either way (the person may
//! have ignored the text), and a uuid the server no longer holds (codes are removed about
//! 15 days after issue) cannot be checked: both are reported and left `unconfirmed`, for
//! the operator to requeue or leave.
//!
//! Every check waits on the verification client's one pacer, so reconciling shares the
//! issuing budget (the server's limiter counts both endpoints against the same key), and
//! no check starts that could not end before the deadline. Confirmations are written
//! once per page of records. A server that fails stops the command: what was proven
//! before is written, nothing else changes.

use ca_notify_adapter_verification::{CodeStatus, CodeStatusError, VerificationClient};
use ca_notify_ports::admin::{AdminError, StoreAdmin};
use tokio::time::Instant;

/// Records checked per page (one store read and one write each).
pub const PAGE: usize = 200;

/// The most ids each list of the report names.
pub const LISTED: usize = 50;

/// What a reconcile found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReconcileReport {
    /// Records whose uuid was asked about.
    pub checked: u64,
    /// Claimed codes: records written texted (or that would be, on a dry run).
    pub confirmed: u64,
    /// Codes the server holds, not claimed: left `unconfirmed`.
    pub not_claimed: u64,
    /// Uuids the server does not hold (expired and removed): left `unconfirmed`.
    pub not_found: u64,
    /// The first [`LISTED`] ids of records left `unconfirmed`.
    pub left_unconfirmed: Vec<String>,
    /// Stopped at the deadline (or the server's request budget) with records unchecked.
    pub stopped_early: bool,
    /// Whether confirmations were written.
    pub applied: bool,
}

/// Why reconcile stopped without finishing; what it proved before is in `report`.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The verification server could not answer (down, failing, or refusing the key).
    #[error("{error}; {} record(s) confirmed before it", report.confirmed)]
    Server {
        /// The server's failure.
        error: CodeStatusError,
        /// What was done before it.
        report: Box<ReconcileReport>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] AdminError),
}

/// Checks every `unconfirmed` record of `admin` with `client` until `deadline`; writes
/// the claimed ones texted when `apply`.
///
/// # Errors
/// [`ReconcileError::Server`] when a check fails for another reason than the deadline;
/// [`ReconcileError::Store`] when the store fails.
pub async fn reconcile(
    admin: &dyn StoreAdmin,
    client: &VerificationClient,
    deadline: Instant,
    apply: bool,
) -> Result<ReconcileReport, ReconcileError> {
    let mut report = ReconcileReport {
        applied: apply,
        ..ReconcileReport::default()
    };
    let mut after = None;
    loop {
        let page = admin.unconfirmed(after.take(), PAGE).await?;
        let full = page.len() == PAGE;
        let mut proven = Vec::new();
        let mut failure = None;
        for (id, key) in &page {
            match client.check_code_status(key, deadline).await {
                Ok(CodeStatus::Found { claimed: true, .. }) => proven.push((id.clone(), *key)),
                Ok(found) => {
                    if found == CodeStatus::NotFound {
                        report.not_found += 1;
                    } else {
                        report.not_claimed += 1;
                    }
                    if report.left_unconfirmed.len() < LISTED {
                        report.left_unconfirmed.push(id.to_string());
                    }
                }
                Err(CodeStatusError::NoTimeLeft | CodeStatusError::RateLimited { .. }) => {
                    report.stopped_early = true;
                    break;
                }
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
            report.checked += 1;
        }
        report.confirmed += proven.len() as u64;
        if apply && !proven.is_empty() {
            let written = admin.confirm_sent(&proven).await?;
            if written < proven.len() as u64 {
                tracing::info!(
                    proven = proven.len(),
                    written,
                    "Some confirmed records changed meanwhile and were left alone."
                );
            }
        }
        if let Some(error) = failure {
            return Err(ReconcileError::Server {
                error,
                report: Box::new(report),
            });
        }
        if report.stopped_early || !full {
            break;
        }
        after = page.last().map(|(id, _)| id.to_string());
    }
    tracing::info!(
        checked = report.checked,
        confirmed = report.confirmed,
        "Reconciled unconfirmed records."
    );
    Ok(report)
}
