//! The id list `ca-notify requeue --ids-file FILE` reads: one record id per line, as
//! `export`'s `id` column shows it.
//!
//! Blank lines and lines starting with `#` are skipped, and the white space around an id
//! is trimmed (a CRLF file works). Anything else that cannot be an id refuses the whole
//! file, naming the line, so that a wrong file (a CSV with several columns, a binary
//! file) never requeues a part of what the operator meant: a line holding a comma, a
//! tab or another control character, an id longer than [`MAX_ID_BYTES`], text that is
//! not UTF-8, or a file with no id at all.

use std::path::Path;

use ca_notify_domain::RecordId;

/// The longest id accepted.
pub const MAX_ID_BYTES: usize = 256;

/// Why the file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdsFileError {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// A line is not an id.
    #[error("{path} line {line}: {problem}; give one record id per line")]
    Malformed {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// No id in the file.
    #[error("{path} holds no record id (the id list is empty)")]
    Empty {
        /// The file.
        path: String,
    },
}

/// Reads the ids of `path`, in file order, duplicates kept (the store counts each once).
///
/// # Errors
/// [`IdsFileError`] naming the file and, for a bad line, its number.
pub fn read_ids(path: &Path) -> Result<Vec<RecordId>, IdsFileError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| IdsFileError::Io {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    parse_ids(&bytes, &shown)
}

/// [`read_ids`] on bytes already read; `path` only names them in errors.
///
/// # Errors
/// As [`read_ids`].
pub fn parse_ids(bytes: &[u8], path: &str) -> Result<Vec<RecordId>, IdsFileError> {
    let malformed = |line: usize, problem| IdsFileError::Malformed {
        path: path.to_owned(),
        line,
        problem,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        malformed(line, "not UTF-8 text")
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut ids = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        let id = line.trim();
        if id.is_empty() || id.starts_with('#') {
            continue;
        }
        if id.contains(',') {
            return Err(malformed(n + 1, "a comma (is this a CSV file?)"));
        }
        if id.chars().any(char::is_control) {
            return Err(malformed(n + 1, "a tab or control character"));
        }
        if id.len() > MAX_ID_BYTES {
            return Err(malformed(n + 1, "an id longer than 256 bytes"));
        }
        ids.push(RecordId::new(id));
    }
    if ids.is_empty() {
        return Err(IdsFileError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &[u8]) -> Result<Vec<String>, IdsFileError> {
        parse_ids(text, "ids.txt").map(|v| v.into_iter().map(|id| id.0).collect())
    }

    #[test]
    fn one_id_per_line_with_comments_blanks_bom_and_crlf() {
        assert_eq!(
            ids(b"\xef\xbb\xbf# from export\r\n 17 \r\n\r\nabc-9\n17\n").expect("ids"),
            ["17", "abc-9", "17"]
        );
    }

    #[test]
    fn a_bad_line_refuses_the_file_and_names_the_line() {
        for (text, line, problem) in [
            (&b"1\nid,sent\n"[..], 2, "comma"),
            (b"1\n2\tx\n", 2, "control"),
            (b"1\n\xff\xfe\n", 2, "UTF-8"),
        ] {
            let err = ids(text).expect_err("malformed");
            assert!(
                matches!(&err, IdsFileError::Malformed { line: l, .. } if *l == line),
                "{err}"
            );
            assert!(err.to_string().contains(problem), "{err}");
        }
        let long = format!("{}\n", "x".repeat(MAX_ID_BYTES + 1));
        assert!(matches!(
            ids(long.as_bytes()),
            Err(IdsFileError::Malformed { line: 1, .. })
        ));
    }

    #[test]
    fn a_file_without_ids_is_an_empty_list() {
        for text in [&b""[..], b"\n\n", b"# nothing\n"] {
            assert!(matches!(ids(text), Err(IdsFileError::Empty { .. })));
        }
    }
}
