//! Bulk import of recipients from CSV (`ca-notify import`), all or nothing.
//!
//! The file needs a header naming its columns: `id` and `phone`, optionally `test_date`,
//! `symptom_date` and `test_type`, in any order (case-insensitive). Everything goes in one
//! transaction: a file with any malformed line imports nothing, and the error names the
//! 1-based line and what is wrong with it, never the line's content (it may hold a
//! phone). A UTF-8 byte-order mark and CRLF line ends are accepted; blank lines are
//! skipped; a header-only file imports nothing and succeeds.
//!
//! Values are stored verbatim, as bound parameters: a phone that is not a phone number,
//! or text that looks like SQL, is ordinary data that the pipeline will write back as
//! `NotSent { InvalidNumber }`. Only the file's structure is judged here. An empty
//! optional field becomes NULL; an empty phone stays an empty string.
//!
//! Ids are imported once. Before a row goes in, the whole file is read against the
//! store, and a line whose id the store already holds refuses the file, every such line
//! listed ([`ImportError::KnownIds`]): an id with a final outcome (sent, already sent, not
//! sent, …), even if its source row was deleted since, because the ledger would keep that
//! outcome and never process the new row, or process it as the person the id was texted
//! for; and an id still pending, because silently keeping either row could text the wrong
//! number. Within the file, a repeated id is an error naming both lines.

use std::fmt;
use std::fs::File;
use std::io::{self, Seek};
use std::path::{Path, PathBuf};

use rusqlite::types::Value;
use rusqlite::{CachedStatement, OptionalExtension, TransactionBehavior};

use crate::config::ValidTable;
use crate::csv_lines::{CsvLines, ReadError};
use crate::error::StoreError;
use crate::statements::OUTCOME_OF;
use crate::store::SqliteStore;

pub use crate::csv_lines::MAX_LINE_BYTES;

const COLUMNS: [&str; 5] = ["id", "phone", "test_date", "symptom_date", "test_type"];

/// How many line numbers an error lists; it counts the rest.
pub const MAX_LISTED_LINES: usize = 100;

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Records added to the source table.
    pub imported: u64,
    /// The file's columns, in file order.
    pub columns: Vec<String>,
}

/// Why nothing was imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// A line is malformed; nothing was imported.
    #[error("line {line}: {reason}; nothing was imported")]
    Malformed {
        /// The 1-based line number.
        line: u64,
        /// What is wrong, without the line's content.
        reason: String,
    },
    /// Lines whose id the store already holds; nothing was imported.
    #[error("{}; nothing was imported", describe_known(.finalised, .pending))]
    KnownIds {
        /// Lines whose id has a final outcome in the store.
        finalised: LineList,
        /// Lines whose id the store holds without a final outcome yet.
        pending: LineList,
    },
    /// The store failed; nothing was imported.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Line numbers of a file, in file order: the first [`MAX_LISTED_LINES`], and the count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineList {
    /// The first [`MAX_LISTED_LINES`] lines.
    pub first: Vec<u64>,
    /// How many lines in all.
    pub total: u64,
}

impl LineList {
    fn push(&mut self, line: u64) {
        if self.first.len() < MAX_LISTED_LINES {
            self.first.push(line);
        }
        self.total += 1;
    }

    /// Whether it holds no line.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// `line 3`, `lines 3 and 5`, `lines 3, 5 and 9`, or the first ones and the count.
impl fmt::Display for LineList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let listed: Vec<String> = self.first.iter().map(u64::to_string).collect();
        let more = self.total - self.first.len() as u64;
        match listed.as_slice() {
            [] => write!(f, "no line"),
            [one] if more == 0 => write!(f, "line {one}"),
            [head @ .., last] if more == 0 => write!(f, "lines {} and {last}", head.join(", ")),
            _ => write!(
                f,
                "lines {} and {more} more ({} lines in all)",
                listed.join(", "),
                self.total
            ),
        }
    }
}

fn describe_known(finalised: &LineList, pending: &LineList) -> String {
    let mut parts = Vec::new();
    if !finalised.is_empty() {
        parts.push(format!(
            "{finalised}: the store already holds the id with a final outcome (a record is processed once)"
        ));
    }
    if !pending.is_empty() {
        parts.push(format!(
            "{pending}: the store already holds the id, not yet processed"
        ));
    }
    parts.push("remove these lines or give them new ids".to_owned());
    parts.join("; ")
}

/// Imports the recipients in the CSV file at `path` into the store's source table.
///
/// # Errors
/// [`ImportError::Malformed`] with the line number for a bad header, a line with the
/// wrong number of fields, invalid UTF-8, an empty or repeated id, or a line or record
/// (a quoted field may span lines) longer than [`MAX_LINE_BYTES`];
/// [`ImportError::KnownIds`] listing the lines whose id the store already holds;
/// [`ImportError::Io`] when the file cannot be read; [`ImportError::Store`] when the store
/// fails. Nothing is imported in every case.
pub async fn import_csv(store: &SqliteStore, path: &Path) -> Result<ImportReport, ImportError> {
    let path = path.to_path_buf();
    let file = File::open(&path).map_err(|e| io_error(&path, &e))?;
    let report = store
        .run(move |conn, inner| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let result = import_into(&tx, inner, &path, file);
            match result {
                Ok(report) => {
                    tx.commit()?;
                    Ok(Ok(report))
                }
                // Dropping the transaction rolls every inserted row back.
                Err(e) => Ok(Err(e)),
            }
        })
        .await??;
    tracing::info!(imported = report.imported, "Imported recipients.");
    Ok(report)
}

fn import_into(
    tx: &rusqlite::Transaction<'_>,
    inner: &crate::store::Inner,
    path: &Path,
    mut file: File,
) -> Result<ImportReport, ImportError> {
    let io = |e: io::Error| io_error(path, &e);
    let mut find = tx
        .prepare_cached(&inner.sql.find)
        .map_err(StoreError::from)?;
    let mut outcome_of = tx.prepare_cached(OUTCOME_OF).map_err(StoreError::from)?;
    refuse_known_ids(
        &mut find,
        &mut outcome_of,
        &inner.table,
        path,
        file.try_clone().map_err(io)?,
    )?;
    file.rewind().map_err(io)?;

    let mut insert = tx
        .prepare_cached(&inner.sql.insert)
        .map_err(StoreError::from)?;
    let mut rows = Rows::open(file, &inner.table, path)?;
    // Known ids were refused above; what is left to find (a file changed since) is too.
    let id_index = rows.header.id;
    let mut finalised = LineList::default();
    let mut imported = 0u64;
    while let Some(row) = rows.next(path)? {
        if find.exists([row.id]).map_err(StoreError::from)? {
            let reason = match earlier_line_with_id(path, id_index, row.id, row.line) {
                Some(earlier) => format!("repeats the id of line {earlier}"),
                None => "has an id the store already holds".to_owned(),
            };
            return Err(ImportError::Malformed {
                line: row.line,
                reason,
            });
        }
        let id: String = insert
            .query_row(rusqlite::params_from_iter(row.values.iter()), |r| r.get(0))
            .map_err(StoreError::from)?;
        // The same id under another spelling (`007` in an INTEGER column is 7), whose
        // source row is gone but whose outcome the ledger keeps.
        if is_final(outcome(&mut outcome_of, &id)?) {
            finalised.push(row.line);
        }
        imported += 1;
    }
    if !finalised.is_empty() {
        return Err(ImportError::KnownIds {
            finalised,
            pending: LineList::default(),
        });
    }
    Ok(ImportReport {
        imported,
        columns: rows.header.names,
    })
}

/// Reads the whole file against the store before anything is inserted, so an id found
/// in the store was there before this import (a later repeat within the file is not).
fn refuse_known_ids(
    find: &mut CachedStatement<'_>,
    outcome_of: &mut CachedStatement<'_>,
    table: &ValidTable,
    path: &Path,
    file: File,
) -> Result<(), ImportError> {
    let mut rows = Rows::open(file, table, path)?;
    let mut finalised = LineList::default();
    let mut pending = LineList::default();
    while let Some(row) = rows.next(path)? {
        let found: Option<String> = find
            .query_row([row.id], |r| r.get(0))
            .optional()
            .map_err(StoreError::from)?;
        // A state row without a source row keeps its outcome (the ledger), or is a pending
        // orphan that adoption takes up again.
        let state = outcome(outcome_of, found.as_deref().unwrap_or(row.id))?;
        if is_final(state) {
            finalised.push(row.line);
        } else if found.is_some() {
            pending.push(row.line);
        }
    }
    if finalised.is_empty() && pending.is_empty() {
        Ok(())
    } else {
        Err(ImportError::KnownIds { finalised, pending })
    }
}

/// The state of record `id`: `None` when the ledger does not know it, `Some(None)` while
/// it is pending, `Some(Some(outcome))` once final.
fn outcome(
    outcome_of: &mut CachedStatement<'_>,
    id: &str,
) -> Result<Option<Option<String>>, ImportError> {
    Ok(outcome_of
        .query_row([id], |r| r.get(0))
        .optional()
        .map_err(StoreError::from)?)
}

fn is_final(state: Option<Option<String>>) -> bool {
    matches!(state, Some(Some(_)))
}

/// The data lines of a file, checked and turned into the values of an insert.
struct Rows {
    reader: CsvLines,
    record: csv::ByteRecord,
    header: Header,
    /// Each configured store column, in insert order, and where it sits in the file.
    sources: Vec<Option<usize>>,
}

/// One data line.
struct Row<'a> {
    line: u64,
    id: &'a str,
    /// The insert's values: id and phone verbatim, an empty optional field NULL.
    values: Vec<Value>,
}

impl Rows {
    /// Reads and checks the header line.
    fn open(file: File, table: &ValidTable, path: &Path) -> Result<Self, ImportError> {
        let mut reader = CsvLines::new(file);
        let mut record = csv::ByteRecord::new();
        if read(&mut reader, &mut record, path)?.is_none() {
            return Err(ImportError::Malformed {
                line: 1,
                reason: format!(
                    "the file is empty; expected a header line {}",
                    COLUMNS.join(",")
                ),
            });
        }
        let header = Header::parse(&record)?;
        let mut sources: Vec<Option<usize>> = Vec::new();
        for (i, column) in table.columns().iter().enumerate() {
            if column.is_some() {
                sources.push(header.position[i]);
            } else if header.position[i].is_some() {
                return Err(ImportError::Malformed {
                    line: 1,
                    reason: format!(
                        "the file has a {} column but the store's source table is configured without one",
                        COLUMNS[i]
                    ),
                });
            }
        }
        Ok(Self {
            reader,
            record,
            header,
            sources,
        })
    }

    /// The next data line, or `None` at the end.
    fn next(&mut self, path: &Path) -> Result<Option<Row<'_>>, ImportError> {
        let Some(line) = read(&mut self.reader, &mut self.record, path)? else {
            return Ok(None);
        };
        let (record, header) = (&self.record, &self.header);
        let malformed = |reason: String| ImportError::Malformed { line, reason };
        if record.len() != header.width {
            return Err(malformed(format!(
                "has {} fields, the header has {}",
                record.len(),
                header.width
            )));
        }
        let field = |index: usize| {
            std::str::from_utf8(&record[index]).map_err(|_| {
                malformed(format!(
                    "the {} field is not valid UTF-8",
                    header.names[index]
                ))
            })
        };
        let id = field(header.id)?;
        if id.trim().is_empty() {
            return Err(malformed("has an empty id".to_owned()));
        }
        let mut values: Vec<Value> = Vec::with_capacity(self.sources.len());
        for (slot, source) in self.sources.iter().enumerate() {
            let value = match source {
                None => Value::Null,
                Some(index) => {
                    let text = field(*index)?;
                    // An empty optional field is NULL; id and phone stay verbatim.
                    if slot >= 2 && text.is_empty() {
                        Value::Null
                    } else {
                        Value::Text(text.to_owned())
                    }
                }
            };
            values.push(value);
        }
        Ok(Some(Row { line, id, values }))
    }
}

/// The header line: which known column sits where.
struct Header {
    names: Vec<String>,
    /// For each of [`COLUMNS`], its index in the file.
    position: [Option<usize>; 5],
    /// The id column's index.
    id: usize,
    width: usize,
}

impl Header {
    fn parse(record: &csv::ByteRecord) -> Result<Self, ImportError> {
        let malformed = |reason: String| ImportError::Malformed { line: 1, reason };
        let mut position = [None; 5];
        let mut names = Vec::with_capacity(record.len());
        for (i, raw) in record.iter().enumerate() {
            // The header is not echoed: a file without one has a phone on its first line.
            let name = std::str::from_utf8(raw)
                .map(|n| n.trim().to_ascii_lowercase())
                .unwrap_or_default();
            let Some(known) = COLUMNS.iter().position(|c| *c == name) else {
                return Err(malformed(format!(
                    "header field {} is not one of {} (is the header line missing?)",
                    i + 1,
                    COLUMNS.join(", ")
                )));
            };
            if position[known].replace(i).is_some() {
                return Err(malformed(format!("the header names {name} twice")));
            }
            names.push(name);
        }
        let (Some(id), Some(_)) = (position[0], position[1]) else {
            return Err(malformed(
                "the header must name at least the columns id and phone".to_owned(),
            ));
        };
        Ok(Self {
            id,
            width: names.len(),
            names,
            position,
        })
    }
}

/// Reads the next record and its line, turning reader failures into import errors.
fn read(
    reader: &mut CsvLines,
    record: &mut csv::ByteRecord,
    path: &Path,
) -> Result<Option<u64>, ImportError> {
    reader.next(record).map_err(|e| match e {
        ReadError::LineTooLong { line } => ImportError::Malformed {
            line,
            reason: format!("is longer than {MAX_LINE_BYTES} bytes"),
        },
        ReadError::RecordTooLong { line, until } => ImportError::Malformed {
            line,
            reason: format!(
                "starts a record longer than {MAX_LINE_BYTES} bytes: a quoted field runs on \
                 past line {until} (is a closing quote missing?)"
            ),
        },
        ReadError::Malformed { line } => ImportError::Malformed {
            line,
            reason: "is not valid CSV".to_owned(),
        },
        ReadError::Io(e) => io_error(path, &e),
    })
}

/// Only on the error path: finds the earlier line that holds `id`, for the message.
fn earlier_line_with_id(path: &Path, id_index: usize, id: &str, before: u64) -> Option<u64> {
    let mut reader = CsvLines::new(File::open(path).ok()?);
    let mut record = csv::ByteRecord::new();
    // The header is line 1 at the earliest; skip it.
    reader.next(&mut record).ok()??;
    while let Some(line) = reader.next(&mut record).ok()? {
        if line >= before {
            return None;
        }
        if record.get(id_index) == Some(id.as_bytes()) {
            return Some(line);
        }
    }
    None
}

fn io_error(path: &Path, e: &io::Error) -> ImportError {
    ImportError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteConfig;

    async fn import_text(text: &[u8]) -> Result<ImportReport, ImportError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let csv = dir.path().join("in.csv");
        std::fs::write(&csv, text).expect("csv");
        let store = SqliteStore::open(SqliteConfig::at(dir.path().join("store.db")))
            .await
            .expect("store");
        import_csv(&store, &csv).await
    }

    fn line_of(result: Result<ImportReport, ImportError>) -> u64 {
        match result {
            Err(ImportError::Malformed { line, .. }) => line,
            other => panic!("expected a malformed line, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn crlf_files_name_the_same_line_as_lf_files() {
        for (end, bom) in [
            ("\n", ""),
            ("\r\n", ""),
            ("\r\n", "\u{feff}"),
            ("\n", "\u{feff}"),
        ] {
            let lines = |rows: &[&str]| format!("{bom}{}{end}", rows.join(end)).into_bytes();
            let short = lines(&["id,phone,test_date", "a,1,", "b,2,", "c,3", "d,4,"]);
            assert_eq!(line_of(import_text(&short).await), 4, "{end:?} {bom:?}");
            let first = lines(&["id,phone", "a"]);
            assert_eq!(line_of(import_text(&first).await), 2, "{end:?} {bom:?}");
            let repeated = lines(&["id,phone", "a,1", "b,2", "a,3"]);
            match import_text(&repeated).await {
                Err(ImportError::Malformed { line, reason }) => {
                    assert_eq!(line, 4, "{end:?} {bom:?}");
                    assert!(reason.contains("line 2"), "{reason}");
                }
                other => panic!("{other:?}"),
            }
            let empty_id = lines(&["id,phone", "a,1", "", " ,2"]);
            assert_eq!(line_of(import_text(&empty_id).await), 4, "{end:?} {bom:?}");
        }
    }
}
