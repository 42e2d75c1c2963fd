//! `StoreAdmin`: the operator's questions and corrections, asked of whichever store holds
//! the ledger (`ca-notify status`, `requeue`, `reconcile`, `purge`, `export`, `report`).
//!
//! The pipeline never uses this port: it is the operator's window on the state the four
//! pipeline ports leave behind. Every change it makes keeps the ledger's promises: a
//! record written as texted (`sent = 1`) is never put back to pending, a purge keeps the
//! dedup key and the outcome, and nothing here ever sends a text.

use std::collections::BTreeMap;

use async_trait::async_trait;
use ca_notify_domain::{DedupKey, NotSentKind, RecordId};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::run::{RunRecord, RunStart};
use crate::sink::SinkError;

/// The reason written with a record that `reconcile` proved texted: the verification
/// server says its code was claimed, which only the person who got the text can do.
pub const CONFIRMED_BY_CLAIM: &str = "confirmed_by_claim";

/// The most rows one page of [`StoreAdmin::export_page`] or [`StoreAdmin::unconfirmed`]
/// may ask for.
pub const MAX_PAGE: usize = 10_000;

/// The store's records at one moment (`ca-notify status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoreStatus {
    /// Every record the store knows.
    pub total: u64,
    /// No final outcome, claimable now.
    pub pending: u64,
    /// Of `pending`, records a run handed back undecided, by their last deferral reason.
    pub deferred: BTreeMap<String, u64>,
    /// No final outcome, under a live lease.
    pub claimed: u64,
    /// When the last live lease ends (every claimed record is free again by then).
    pub claims_expire_by: Option<DateTime<Utc>>,
    /// Written as texted (`sent = 1`: sent, already sent, texted before, confirmed).
    pub sent: u64,
    /// Written as not texted, by [`NotSentKind`] code (`unconfirmed` apart).
    pub not_sent: BTreeMap<String, u64>,
    /// Written `unconfirmed`: an operator decides (`reconcile`, `requeue`).
    pub unconfirmed: u64,
    /// When the oldest pending record arrived in the store, when the store knows it.
    pub oldest_pending_since: Option<DateTime<Utc>>,
    /// Finished records whose personal data `purge` erased.
    pub purged: u64,
    /// The latest runs (newest first, at most [`LAST_RUNS`]) and how they stopped.
    pub last_runs: Vec<RunRecord>,
}

/// How many runs [`StoreStatus::last_runs`] lists.
pub const LAST_RUNS: usize = 5;

/// Which finished records `requeue` puts back to pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequeueSelection {
    /// These records, all or none: any id that is unknown, pending, texted or purged
    /// refuses the whole request.
    Ids(Vec<RecordId>),
    /// Every record not sent for this reason (not `unconfirmed`: that is an outcome).
    Reason(NotSentKind),
    /// Every `unconfirmed` record.
    Unconfirmed,
}

/// What a requeue did, or would do on a dry run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RequeueReport {
    /// Records put back to pending (or that would be).
    pub requeued: u64,
    /// Of the selection, records left alone because their personal data was purged (a
    /// selection by reason or outcome only; by id they refuse).
    pub skipped_purged: u64,
    /// Whether anything was written.
    pub applied: bool,
}

/// What a purge erased, or would erase on a dry run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// Finished records processed before the cutoff whose personal data is (or would be)
    /// erased now.
    pub records: u64,
    /// Of those, texted records (their dedup key and outcome stay).
    pub sent: u64,
    /// The columns erased in the store (empty when the store holds no personal data).
    pub erased_columns: Vec<String>,
    /// Finished records processed before the cutoff and already purged.
    pub already_purged: u64,
    /// Whether anything was written.
    pub applied: bool,
}

/// One record as `export` writes it. No phone number, no date of the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportRow {
    /// The source record id.
    pub id: String,
    /// 1 texted, 0 not, none while pending.
    pub sent: Option<u8>,
    /// `sent`, `already_sent`, `not_sent`, `unconfirmed`, or `pending`.
    pub outcome: String,
    /// The stored outcome's reason; a pending record's last deferral. Empty for a plain
    /// `sent`, never a stale deferral of a decided record.
    pub reason: String,
    /// Write-backs that reached the record (deferrals and the final one).
    pub attempts: u32,
    /// The run whose write-back last reached the record, when the store knows it.
    pub run_id: Option<String>,
    /// The first issue attempt's time, when one was made.
    pub first_attempt_at: Option<DateTime<Utc>>,
    /// When the outcome was written.
    pub processed_at: Option<DateTime<Utc>>,
}

/// One record as `report` reads it: no phone number, and only finished or pending facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportRecord {
    /// When the record arrived in the store, when known.
    pub arrived_at: Option<DateTime<Utc>>,
    /// The test date, when the source has one and it was not purged.
    pub test_date: Option<NaiveDate>,
    /// When the outcome was written; none while pending.
    pub processed_at: Option<DateTime<Utc>>,
    /// 1 texted, 0 not, none while pending.
    pub sent: Option<u8>,
    /// The [`NotSentKind`] code of a not-texted record (`unconfirmed` included).
    pub not_sent_kind: Option<String>,
}

/// The refusal of a requeue by id: per problem (`unknown`, `pending`, `texted`,
/// `purged`), how many ids have it and the first few; `None` when there is none. One
/// wording for every store.
pub fn describe_refusal(problems: &BTreeMap<String, Vec<String>>) -> Option<String> {
    if problems.is_empty() {
        return None;
    }
    let parts: Vec<String> = problems
        .iter()
        .map(|(problem, ids)| {
            let shown: Vec<&str> = ids.iter().take(5).map(String::as_str).collect();
            let more = if ids.len() > shown.len() { ", …" } else { "" };
            let what = match problem.as_str() {
                "unknown" => "not in the store",
                "pending" => "still pending (nothing to requeue)",
                "texted" => "written as texted (never requeued)",
                _ => "purged (no phone number left to text)",
            };
            format!("{} {what}: {}{more}", ids.len(), shown.join(", "))
        })
        .collect();
    Some(format!("nothing requeued; {}", parts.join("; ")))
}

impl From<SinkError> for AdminError {
    fn from(e: SinkError) -> Self {
        match e {
            SinkError::Unavailable(m) => Self::Unavailable(m),
            SinkError::Misconfigured(m) => Self::Misconfigured(m),
            SinkError::Unknown(e) => Self::Unknown(e),
        }
    }
}

/// Why an operator's request was not carried out. Every variant means nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request would break a rule of the ledger (requeue a texted record, purge
    /// inside the retention period, …), or names what the store does not hold.
    #[error("refused: {0}")]
    Refused(String),
    /// The store is unreachable or busy. Retryable.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Credentials refused, or a table missing. Fatal.
    #[error("the store refused the request: {0}")]
    Misconfigured(String),
    /// Anything else.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// The operator's queries and corrections on a store.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait StoreAdmin: Send + Sync {
    /// Counts at one moment, with `now` deciding which leases are live (a store whose
    /// leases run on its server's clock, as Snowflake's do, uses that clock instead).
    ///
    /// # Errors
    /// [`AdminError::Unavailable`] (retryable), [`AdminError::Misconfigured`],
    /// [`AdminError::Unknown`].
    async fn status(&self, now: DateTime<Utc>) -> Result<StoreStatus, AdminError>;

    /// Puts the selected finished, not-texted records back to pending (outcome, reason
    /// and processed time cleared, attempts and the attempt log kept), in one atomic
    /// write; with `apply` false, only counts. A record written as texted is never
    /// requeued, whatever the selection.
    ///
    /// # Errors
    /// [`AdminError::Refused`] for a selection by id that holds an unknown, pending,
    /// texted or purged record, or an empty id list; then nothing changed. Otherwise as
    /// [`StoreAdmin::status`].
    async fn requeue(
        &self,
        selection: &RequeueSelection,
        apply: bool,
    ) -> Result<RequeueReport, AdminError>;

    /// Erases the personal data the store holds of every finished record written before
    /// `cutoff` (its dedup key and outcome stay, so no one is texted twice), in one atomic
    /// write, and records what it erased in the runs table as `run` (stop `purge`); with
    /// `apply` false, only counts and records nothing. The caller enforces the retention
    /// period.
    ///
    /// # Errors
    /// As [`StoreAdmin::status`].
    async fn purge(
        &self,
        cutoff: DateTime<Utc>,
        apply: bool,
        run: &RunStart,
    ) -> Result<PurgeReport, AdminError>;

    /// Up to `limit` (at most [`MAX_PAGE`]) records with ids after `after`, in id order.
    ///
    /// # Errors
    /// As [`StoreAdmin::status`].
    async fn export_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<ExportRow>, AdminError>;

    /// Up to `limit` (at most [`MAX_PAGE`]) `unconfirmed` records with ids after `after`,
    /// in id order, with the dedup key their attempts carried.
    ///
    /// # Errors
    /// As [`StoreAdmin::status`].
    async fn unconfirmed(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<(RecordId, DedupKey)>, AdminError>;

    /// Writes each record texted (`sent = 1`, outcome `sent`, reason
    /// [`CONFIRMED_BY_CLAIM`]) where it is still `unconfirmed` under that dedup key; the
    /// number written. One atomic write; a record changed meanwhile is left alone.
    ///
    /// # Errors
    /// As [`StoreAdmin::status`].
    async fn confirm_sent(&self, records: &[(RecordId, DedupKey)]) -> Result<u64, AdminError>;

    /// Every record that arrived, or was processed, at or after `since`.
    ///
    /// # Errors
    /// As [`StoreAdmin::status`].
    async fn report_records(&self, since: DateTime<Utc>) -> Result<Vec<ReportRecord>, AdminError>;
}
