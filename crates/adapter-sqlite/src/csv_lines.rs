//! A CSV reader that knows the true 1-based line of each record, and refuses long lines.
//!
//! The `csv` crate's `Position::line` undercounts after CRLF line ends and skipped blank
//! lines (its position points into the previous record's terminator run), and an import
//! error that names the wrong line sends an operator to the wrong place. So the bytes are
//! counted here, before the CSV parser sees them: every physical line start is noted with
//! its number and whether the line is blank, and a record's line is that of the first
//! non-blank line starting at or after the parser's byte position. The same pass refuses
//! a physical line longer than [`MAX_LINE_BYTES`] before the parser buffers it. Lines end
//! with LF or CRLF; a file with bare-CR line ends (classic Mac OS) reads as one line.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::rc::Rc;

/// Longest physical line accepted: real lines are under 200 bytes; a longer one is a
/// wrong file, and refusing it bounds memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Why a record could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// A physical line longer than [`MAX_LINE_BYTES`].
    LineTooLong { line: u64 },
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
                        match io.get_ref().and_then(|i| i.downcast_ref::<LineTooLong>()) {
                            Some(too_long) => Err(ReadError::LineTooLong {
                                line: too_long.line,
                            }),
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

#[derive(Debug)]
struct LineTooLong {
    line: u64,
}

impl std::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} is too long", self.line)
    }
}

impl std::error::Error for LineTooLong {}

/// Counts lines in the bytes the parser reads, noting each line start in the index.
struct Counting<R> {
    inner: R,
    index: Rc<RefCell<LineIndex>>,
    offset: u64,
    line: u64,
    line_start: u64,
    line_len: usize,
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
            self.offset += 1;
            if b == b'\n' {
                self.line += 1;
                self.line_start = self.offset;
                self.line_len = 0;
            } else {
                self.line_len += 1;
                if self.line_len > MAX_LINE_BYTES {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        LineTooLong { line: self.line },
                    ));
                }
            }
        }
        Ok(n)
    }
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
}
