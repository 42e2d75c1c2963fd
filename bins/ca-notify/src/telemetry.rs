//! Logging: human-readable on a terminal, JSON lines otherwise, and never a phone number.
//!
//! Phone numbers are masked at the type level everywhere (`PhoneNumber` shows only its
//! last two digits). As a backstop, every line this subscriber writes passes through
//! [`ScrubbingWriter`], which replaces anything phone-like with `[phone]` — so a number
//! that slipped into some third-party error text still never reaches a log file. Logs go
//! to standard error; standard output is kept for summaries.
//!
//! Every line a run writes carries its run id: the job runs inside a `job` span with a
//! `run_id` field, which the text format prints before the message and the JSON format
//! lists under `spans` (and `span` while it is the innermost one).

use std::io::{self, IsTerminal, Write};

use ca_notify_domain::scrub_phone_numbers;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Text on a terminal, JSON lines otherwise.
    Auto,
    /// Human-readable text (`pretty` is accepted too, its earlier name).
    #[value(alias = "pretty")]
    Text,
    /// One JSON object per line.
    Json,
}

/// The level `-v`/`-q` ask for: `None` without either (then `RUST_LOG`, else `info`).
pub fn level(verbose: u8, quiet: u8) -> Option<&'static str> {
    match (verbose, quiet) {
        (0, 0) => None,
        (1, _) => Some("debug"),
        (v, _) if v > 1 => Some("trace"),
        (_, 1) => Some("warn"),
        _ => Some("error"),
    }
}

/// Installs the global subscriber for the command: `level` when given (from `-v`/`-q`),
/// else `RUST_LOG`, else `info`.
pub fn init(format: LogFormat, level: Option<&str>) {
    let filter = match level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !io::stderr().is_terminal(),
    };
    let writer = ScrubbingMakeWriter(io::stderr);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        // Colour codes only on a terminal: in a file they would split the run id and the
        // timestamp into pieces the phone scrubber no longer recognises as a uuid or a date.
        builder
            .with_target(false)
            .with_ansi(io::stderr().is_terminal())
            .try_init()
    };
    // A subscriber already installed (an embedding host, a test) is kept as it is.
    drop(result);
}

/// Makes [`ScrubbingWriter`]s around another writer factory.
#[derive(Debug, Clone, Copy)]
pub struct ScrubbingMakeWriter<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for ScrubbingMakeWriter<M> {
    type Writer = ScrubbingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbingWriter(self.0.make_writer())
    }
}

/// Scrubs phone-like text from each formatted event before writing it.
#[derive(Debug)]
pub struct ScrubbingWriter<W>(pub W);

impl<W: Write> Write for ScrubbingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The formatter hands over one whole event per call, so a number cannot be split
        // across two writes.
        let text = String::from_utf8_lossy(buf);
        let scrubbed = scrub_phone_numbers(&text);
        crate::log_capture::offer(&scrubbed);
        self.0.write_all(scrubbed.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_and_quiet_choose_the_level() {
        assert_eq!(level(0, 0), None);
        assert_eq!(level(1, 0), Some("debug"));
        assert_eq!(level(3, 0), Some("trace"));
        assert_eq!(level(0, 1), Some("warn"));
        assert_eq!(level(0, 2), Some("error"));
    }

    #[test]
    fn scrubs_phone_numbers_from_every_write() {
        let mut out = Vec::new();
        {
            let mut w = ScrubbingWriter(&mut out);
            w.write_all(
                b"{\"error\":\"The 'To' number +14155550123 is invalid\",\"record_id\":\"r-17\"}\n",
            )
            .expect("write");
        }
        let text = String::from_utf8(out).expect("utf8");
        assert!(!text.contains("4155550123"), "{text}");
        assert!(text.contains("[phone]") && text.contains("r-17"), "{text}");
    }
}
