//! A CSV reader that knows the true 1-based line of each record, and refuses long lines.
//!
//! The `csv` crate's `Position::line` undercounts after CRLF line ends and skipped blank
//! lines (its position points into the previous record's terminator run), and an import
//! error that names the wrong line sends an operator to the wrong place. So the bytes are
//! counted here, before the CSV parser sees them: every physical line start is noted with
//! its number and whether the line is blank, and a record's line is that of the first
//! non-blank line starting at or after the parser's byte position. The same pass refuses
//! a physical line longer than [`MAX_LINE_BYTES`] before the parser buffers it, and a
//! record longer than that too: a quoted field may hold line ends, so a record (and each
//! of its fields) can span many short lines, and a stray quote would otherwise make the
//! rest of the file one record. To know where records end it follows the quotes the way
//! the parser does (`"` opens a field only at its start, `""` inside one is a quote). Lines
//! end with LF or CRLF; a file with bare-CR line ends (classic Mac OS) reads as one line.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::rc::Rc;

/// Longest physical line, and longest record, accepted: real lines are under 200 bytes;
/// a longer one is a wrong file, and refusing it bounds memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

const BOM: [u8; 3] = [0xef, 0xbb, 0xbf];

/// Why a record could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// A physical line longer than [`MAX_LINE_BYTES`].
    LineTooLong { line: u64 },
    /// A record of several lines, starting at `line`, that was longer than
    /// [`MAX_LINE_BYTES`] by line `until`.
    RecordTooLong { line: u64, until: u64 },
    /// The file could not be read.
    Io(io::Error),
    /// Anything the CSV parser refused, at about this line.
    Malformed { line: u64 },
}

/// CSV records of one file, each with its line number.
pub(crate) struct CsvLines {
    reader: csv::Reader<Counting<BufReader<File>>>,
    index: Rc<RefCell<LineIndex>>,
}

impl CsvLines {
    pub fn new(file: File) -> Self {
        let index = Rc::new(RefCell::new(LineIndex::default()));
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            // Field counts are checked by the importer, with a better message.
            .flexible(true)
            .from_reader(Counting::new(BufReader::new(file), Rc::clone(&index)));
        Self { reader, index }
    }

    /// Reads the next record into `record` and returns its line, or `None` at the end.
    pub fn next(&mut self, record: &mut csv::ByteRecord) -> Result<Option<u64>, ReadError> {
        match self.reader.read_byte_record(record) {
            Ok(false) => Ok(None),
            Ok(true) => {
                let position = record
                    .position()
                    .cloned()
                    .unwrap_or_else(csv::Position::new);
                Ok(Some(self.index.borrow_mut().line_at(&position)))
            }
            Err(e) => {
                let position = e.position().cloned().unwrap_or_else(csv::Position::new);
                match e.into_kind() {
                    csv::ErrorKind::Io(io) => {
                        match io.get_ref().and_then(|i| i.downcast_ref::<TooLong>()) {
                            Some(TooLong::Line { line }) => {
                                Err(ReadError::LineTooLong { line: *line })
                            }
                            Some(TooLong::Record { line, until }) => {
                                Err(ReadError::RecordTooLong {
                                    line: *line,
                                    until: *until,
                                })
                            }
                            None => Err(ReadError::Io(io)),
                        }
                    }
                    _ => Err(ReadError::Malformed {
                        line: self.index.borrow_mut().line_at(&position),
                    }),
                }
            }
        }
    }
}

/// Line starts not yet passed by the parser.
#[derive(Default)]
struct LineIndex {
    /// `(byte offset, line number, blank)` of each line start the reader has seen.
    starts: VecDeque<(u64, u64, bool)>,
}

impl LineIndex {
    /// The line of the record the parser placed at `position`. Positions only grow, so
    /// line starts before it are dropped as they are passed.
    fn line_at(&mut self, position: &csv::Position) -> u64 {
        while let Some(&(start, _, blank)) = self.starts.front() {
            if start < position.byte() || blank {
                self.starts.pop_front();
            } else {
                break;
            }
        }
        self.starts
            .front()
            .map_or_else(|| position.line(), |&(_, line, _)| line)
    }
}

/// What the counting reader refused.
#[derive(Debug)]
enum TooLong {
    Line { line: u64 },
    Record { line: u64, until: u64 },
}

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Line { line } => write!(f, "line {line} is too long"),
            Self::Record { line, until } => {
                write!(f, "the record of lines {line} to {until} is too long")
            }
        }
    }
}

impl std::error::Error for TooLong {}

/// Where a record stands as far as quotes go, with the `csv` crate's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// At the start of a field, where a quote opens a quoted field.
    Start,
    /// In an unquoted field, where quotes are text.
    Unquoted,
    /// In a quoted field, where line ends are text.
    Quoted,
    /// Just after a quote in a quoted field: the field's end, or the first of `""`.
    QuoteInQuoted,
}

impl Field {
    /// The state after byte `b`, and whether `b` ended the record.
    fn next(self, b: u8) -> (Self, bool) {
        match (self, b) {
            (Self::Quoted, b'"') => (Self::QuoteInQuoted, false),
            (Self::Quoted, _) => (Self::Quoted, false),
            (_, b'\n') => (Self::Start, true),
            (_, b',') => (Self::Start, false),
            (Self::Start, b'"') => (Self::Quoted, false),
            (Self::QuoteInQuoted, b'"') => (Self::Quoted, false),
            _ => (Self::Unquoted, false),
        }
    }
}

/// Counts lines and records in the bytes the parser reads, noting each line start in the
/// index.
struct Counting<R> {
    inner: R,
    index: Rc<RefCell<LineIndex>>,
    offset: u64,
    line: u64,
    line_start: u64,
    line_len: usize,
    field: Field,
    /// How many bytes of a byte-order mark opened the file; `None` once another came.
    bom_seen: Option<usize>,
    /// The line the current record started on, and its bytes so far.
    record_line: u64,
    record_len: usize,
}

impl<R> Counting<R> {
    fn new(inner: R, index: Rc<RefCell<LineIndex>>) -> Self {
        Self {
            inner,
            index,
            offset: 0,
            line: 1,
            line_start: 0,
            line_len: 0,
            field: Field::Start,
            bom_seen: Some(0),
            record_line: 1,
            record_len: 0,
        }
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut index = self.index.borrow_mut();
        for &b in &buf[..n] {
            if self.offset == self.line_start {
                let blank = b == b'\n' || b == b'\r';
                index.starts.push_back((self.line_start, self.line, blank));
            }
            // The parser drops a byte-order mark; so does the quote tracking.
            let bom = match self.bom_seen {
                Some(k) if BOM.get(k) == Some(&b) => {
                    self.bom_seen = Some(k + 1);
                    true
                }
                _ => {
                    self.bom_seen = None;
                    false
                }
            };
            self.offset += 1;
            if b == b'\n' {
                self.line += 1;
                self.line_start = self.offset;
                self.line_len = 0;
            } else {
                self.line_len += 1;
                if self.line_len > MAX_LINE_BYTES {
                    return Err(too_long(TooLong::Line { line: self.line }));
                }
            }
            if bom {
                self.record_len += 1;
                continue;
            }
            let (field, ended) = self.field.next(b);
            self.field = field;
            if ended {
                self.record_line = self.line;
                self.record_len = 0;
            } else {
                self.record_len += 1;
                if self.record_len > MAX_LINE_BYTES {
                    return Err(too_long(TooLong::Record {
                        line: self.record_line,
                        until: self.line,
                    }));
                }
            }
        }
        Ok(n)
    }
}

fn too_long(what: TooLong) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines_of(bytes: &[u8]) -> Vec<(u64, String)> {
        let mut file = tempfile::tempfile().expect("temp file");
        file.write_all(bytes).expect("write");
        io::Seek::rewind(&mut file).expect("rewind");
        let mut lines = CsvLines::new(file);
        let mut record = csv::ByteRecord::new();
        let mut out = Vec::new();
        while let Some(line) = lines.next(&mut record).expect("read") {
            out.push((line, String::from_utf8_lossy(&record[0]).into_owned()));
        }
        out
    }

    #[test]
    fn lines_are_right_after_crlf_blank_lines_boms_and_quoted_newlines() {
        let want = |pairs: &[(u64, &str)]| -> Vec<(u64, String)> {
            pairs.iter().map(|&(l, s)| (l, s.to_owned())).collect()
        };
        assert_eq!(
            lines_of(b"a,b\r\n1,2\r\n3,4\r\n5\r\n"),
            want(&[(1, "a"), (2, "1"), (3, "3"), (4, "5")])
        );
        assert_eq!(
            lines_of(b"a,b\n\n\n1,2\n\"x\ny\",3\n4,5\n"),
            want(&[(1, "a"), (4, "1"), (5, "x\ny"), (7, "4")])
        );
        assert_eq!(
            lines_of("\u{feff}a,b\r\n1,2\r\n\r\n3,4\r\n,5".as_bytes()),
            want(&[(1, "a"), (2, "1"), (4, "3"), (5, "")])
        );
    }

    #[test]
    fn a_long_line_is_refused_with_its_number() {
        let mut bytes = b"a,b\n1,2\n".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 1));
        let mut file = tempfile::tempfile().expect("temp file");
        file.write_all(&bytes).expect("write");
        io::Seek::rewind(&mut file).expect("rewind");
        let mut lines = CsvLines::new(file);
        let mut record = csv::ByteRecord::new();
        assert_eq!(lines.next(&mut record).expect("header"), Some(1));
        assert_eq!(lines.next(&mut record).expect("row"), Some(2));
        assert!(matches!(
            lines.next(&mut record),
            Err(ReadError::LineTooLong { line: 3 })
        ));
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<u64>, ReadError> {
        let mut file = tempfile::tempfile().expect("temp file");
        file.write_all(bytes).expect("write");
        io::Seek::rewind(&mut file).expect("rewind");
        let mut lines = CsvLines::new(file);
        let mut record = csv::ByteRecord::new();
        let mut out = Vec::new();
        while let Some(line) = lines.next(&mut record)? {
            out.push(line);
        }
        Ok(out)
    }

    /// A quoted field may hold line ends; its record obeys the same cap as a line, and
    /// the error names the line where the record starts.
    #[test]
    fn a_long_record_of_short_lines_is_refused_with_its_first_line() {
        let short = "y".repeat(100);
        let mut bytes = b"a,b\n1,2\n3,\"".to_vec();
        while bytes.len() < MAX_LINE_BYTES + 1_000 {
            bytes.extend_from_slice(short.as_bytes());
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(b"\"\n4,5\n");
        match read_all(&bytes) {
            Err(ReadError::RecordTooLong { line, until }) => {
                assert_eq!(line, 3);
                assert!(until > 10_000, "{until}");
            }
            other => panic!("expected a record too long, got {other:?}"),
        }
        // CRLF line ends, a field that opens mid-record, and an unclosed quote.
        let mut crlf = b"a,b\r\n1,\"".to_vec();
        while crlf.len() < MAX_LINE_BYTES + 1_000 {
            crlf.extend_from_slice(b"zz\r\n");
        }
        assert!(matches!(
            read_all(&crlf),
            Err(ReadError::RecordTooLong { line: 2, .. })
        ));
    }

    /// Quotes that do not open a field are text: they never make a record of many lines.
    #[test]
    fn quotes_inside_a_field_do_not_join_lines() {
        let mut bytes = b"a,b\n".to_vec();
        let mut rows = 0;
        while bytes.len() < MAX_LINE_BYTES + 1_000 {
            bytes.extend_from_slice(b"x\"y,\"q\"\"uoted\"\" end\"\n\"\",\"\"\"\"\n");
            rows += 2;
        }
        let lines = read_all(&bytes).expect("every record is short");
        assert_eq!(lines.len(), rows + 1);
        // A quoted field with line ends well under the cap reads as one record.
        assert_eq!(
            read_all(b"a,b\n\"1\n2\n3\",x\n4,5\n").expect("short"),
            [1, 2, 5]
        );
        let bom = "\u{feff}\"a\nb\",c\n1,2\n";
        assert_eq!(read_all(bom.as_bytes()).expect("bom"), [1, 3]);
    }
}
