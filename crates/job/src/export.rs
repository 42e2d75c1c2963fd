//! `ca-notify export`: every record's outcome as CSV, from either store, to a file or to
//! standard output. No phone numbers, no dates of the person.
//!
//! Columns: `id,sent,outcome,reason,attempts,run_id,first_attempt_at,processed_at`. A
//! record without a final outcome has outcome `pending`, an empty sent flag, and as reason
//! its last deferral, if any; a decided record shows its outcome's own reason (empty for a
//! plain `sent`), never a deferral from before it was decided. Rows come in id order, a
//! page of [`PAGE`] at a time ([`StoreAdmin::export_page`]), so a million records never
//! sit in memory at once; a record decided while the export runs shows whichever state
//! its page read.
//!
//! A file is written beside its destination and renamed into place, so a reader never
//! sees half an export and a failed export leaves any earlier file intact. `-` is
//! standard output.
//!
//! Exports are opened in spreadsheets, where a cell starting with `=`, `+`, `-`, `@`, a
//! tab or a carriage return is a formula: any such field (an id, most likely, since ids
//! come from outside) is written with a single quote in front, as OWASP's "CSV Injection"
//! page advises. Everything else is written as stored.

use std::borrow::Cow;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ca_notify_ports::admin::{AdminError, ExportRow, StoreAdmin};
use chrono::{DateTime, SecondsFormat, Utc};

/// Rows read per page.
pub const PAGE: usize = 5_000;

/// The header row.
pub const COLUMNS: [&str; 8] = [
    "id",
    "sent",
    "outcome",
    "reason",
    "attempts",
    "run_id",
    "first_attempt_at",
    "processed_at",
];

/// Where the export goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Standard output (`-` on the command line).
    Stdout,
    /// A file, replaced atomically.
    File(PathBuf),
}

impl Destination {
    /// `-` is standard output; anything else a path.
    pub fn parse(arg: &Path) -> Self {
        if arg.as_os_str() == "-" {
            Self::Stdout
        } else {
            Self::File(arg.to_path_buf())
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stdout => f.write_str("standard output"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
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
    #[error("cannot write {destination}: {reason}")]
    Io {
        /// The destination.
        destination: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] AdminError),
}

/// Writes every record's outcome to `destination`.
///
/// # Errors
/// [`ExportError::Io`] when the destination cannot be written; [`ExportError::Store`]
/// when the store fails. An existing file is then left unchanged.
pub async fn export_csv(
    admin: &dyn StoreAdmin,
    destination: &Destination,
) -> Result<ExportReport, ExportError> {
    let io_err = |e: &dyn std::fmt::Display| ExportError::Io {
        destination: destination.to_string(),
        reason: e.to_string(),
    };
    let report = match destination {
        Destination::Stdout => {
            let stdout = io::stdout();
            let mut out = csv::Writer::from_writer(io::BufWriter::new(stdout.lock()));
            let report = write_rows(admin, &mut out, &io_err).await?;
            out.flush().map_err(|e| io_err(&e))?;
            report
        }
        Destination::File(path) => {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| io_err(&e))?;
            let mut out = csv::Writer::from_writer(io::BufWriter::new(tmp));
            let report = write_rows(admin, &mut out, &io_err).await?;
            let buffered = out.into_inner().map_err(|e| io_err(e.error()))?;
            let tmp = buffered.into_inner().map_err(|e| io_err(e.error()))?;
            tmp.as_file().sync_all().map_err(|e| io_err(&e))?;
            tmp.persist(path).map_err(|e| io_err(&e.error))?;
            report
        }
    };
    tracing::info!(rows = report.rows, "Exported outcomes.");
    Ok(report)
}

async fn write_rows<W: Write>(
    admin: &dyn StoreAdmin,
    out: &mut csv::Writer<W>,
    io_err: &dyn Fn(&dyn std::fmt::Display) -> ExportError,
) -> Result<ExportReport, ExportError> {
    out.write_record(COLUMNS).map_err(|e| io_err(&e))?;
    let mut report = ExportReport::default();
    let mut after = None;
    loop {
        let page = admin.export_page(after.take(), PAGE).await?;
        for row in &page {
            match row.sent {
                Some(1) => report.sent += 1,
                Some(_) => report.not_sent += 1,
                None => report.pending += 1,
            }
            let fields = fields(row);
            out.write_record(fields.iter().map(|f| neutralise(f).into_owned()))
                .map_err(|e| io_err(&e))?;
            report.rows += 1;
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after = Some(last.id.clone()),
            _ => break,
        }
    }
    Ok(report)
}

fn time(at: Option<DateTime<Utc>>) -> String {
    at.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn fields(row: &ExportRow) -> [String; 8] {
    [
        row.id.clone(),
        row.sent.map(|s| s.to_string()).unwrap_or_default(),
        row.outcome.clone(),
        row.reason.clone(),
        row.attempts.to_string(),
        row.run_id.clone().unwrap_or_default(),
        time(row.first_attempt_at),
        time(row.processed_at),
    ]
}

/// A field a spreadsheet would not run as a formula: one starting with `=`, `+`, `-`,
/// `@`, tab or carriage return gets a single quote in front.
pub fn neutralise(field: &str) -> Cow<'_, str> {
    if field.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{field}"))
    } else {
        Cow::Borrowed(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_the_rest_kept() {
        for (field, expected) in [
            ("=1+1", "'=1+1"),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(neutralise(field), expected);
        }
    }

    #[test]
    fn a_dash_is_standard_output() {
        assert_eq!(Destination::parse(Path::new("-")), Destination::Stdout);
        assert_eq!(
            Destination::parse(Path::new("./-")),
            Destination::File(PathBuf::from("./-"))
        );
    }
}
