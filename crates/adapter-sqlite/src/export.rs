//! Export of outcomes to CSV (`ca-notify export`): one row per record, no phone numbers.
//!
//! Columns: `id,sent,outcome,reason,processed_at`. A record without a final outcome has
//! outcome `pending`, an empty sent flag, and as reason the last deferral, if any. The
//! file is written beside its destination and renamed into place, so a reader never sees
//! half an export and a failed export leaves any earlier file intact.
//!
//! Exports are opened in spreadsheets, where a cell starting with `=`, `+`, `-`, `@`, a
//! tab or a carriage return is a formula: any such field (an id, most likely, since ids
//! come from outside) is written with a single quote in front, as OWASP's "CSV Injection"
//! page advises. Everything else is written as stored.

use std::borrow::Cow;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::StoreError;
use crate::statements::EXPORT;
use crate::store::SqliteStore;

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Data rows written.
    pub rows: u64,
    /// Rows with outcome `pending`.
    pub pending: u64,
    /// Rows with sent = 1.
    pub sent: u64,
    /// Rows with sent = 0.
    pub not_sent: u64,
}

/// Why the export was not written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The destination could not be written.
    #[error("cannot write {path}: {reason}")]
    Io {
        /// The destination.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Writes every record's outcome to the CSV file at `path`, replacing it.
///
/// # Errors
/// [`ExportError::Io`] when the destination's directory cannot be written;
/// [`ExportError::Store`] when the store fails. An existing file is then left unchanged.
pub async fn export_csv(store: &SqliteStore, path: &Path) -> Result<ExportReport, ExportError> {
    let path = path.to_path_buf();
    let report = store
        .run(move |conn, _| Ok(write_export(conn, &path)))
        .await??;
    tracing::info!(rows = report.rows, "Exported outcomes.");
    Ok(report)
}

fn write_export(conn: &rusqlite::Connection, path: &Path) -> Result<ExportReport, ExportError> {
    let io_err = |e: io::Error| ExportError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err)?;
    let mut out = csv::Writer::from_writer(io::BufWriter::new(tmp));
    let csv_err = |e: csv::Error| ExportError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    out.write_record(["id", "sent", "outcome", "reason", "processed_at"])
        .map_err(csv_err)?;
    let mut report = ExportReport::default();
    // One SELECT is one read snapshot (WAL): the export is consistent even while
    // workers keep writing.
    let mut stmt = conn.prepare(EXPORT).map_err(StoreError::from)?;
    let mut rows = stmt.query([]).map_err(StoreError::from)?;
    while let Some(row) = rows.next().map_err(StoreError::from)? {
        let get = |i| row.get::<_, Option<String>>(i).map_err(StoreError::from);
        let sent = row.get::<_, Option<i64>>(1).map_err(StoreError::from)?;
        let id = get(0)?.unwrap_or_default();
        let outcome = get(2)?.unwrap_or_else(|| "pending".to_owned());
        let reason = get(3)?.unwrap_or_default();
        let processed_at = get(4)?.unwrap_or_default();
        match sent {
            Some(1) => report.sent += 1,
            Some(_) => report.not_sent += 1,
            None => report.pending += 1,
        }
        let sent = sent.map(|s| s.to_string()).unwrap_or_default();
        let fields = [id.as_str(), &sent, &outcome, &reason, &processed_at];
        out.write_record(fields.map(neutralise).iter().map(|f| f.as_bytes()))
            .map_err(csv_err)?;
        report.rows += 1;
    }
    let buffered = out.into_inner().map_err(|e| io_err(e.into_error()))?;
    let tmp = buffered.into_inner().map_err(|e| io_err(e.into_error()))?;
    tmp.as_file().sync_all().map_err(io_err)?;
    tmp.persist(path).map_err(|e| io_err(e.error))?;
    Ok(report)
}

/// A field a spreadsheet would not run as a formula: one starting with `=`, `+`, `-`,
/// `@`, tab or carriage return gets a single quote in front.
fn neutralise(field: &str) -> Cow<'_, str> {
    if field.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{field}"))
    } else {
        Cow::Borrowed(field)
    }
}
