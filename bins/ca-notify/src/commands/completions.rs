//! `ca-notify completions SHELL` and `ca-notify man`: generated from the argument parser
//! itself (clap_complete, clap_mangen), so they never disagree with it.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::exit::{self, Failure};

/// Writes the completion script for `shell` to standard output.
///
/// # Errors
/// Exit code 1 when standard output cannot be written.
pub fn completions(shell: clap_complete::Shell) -> Result<(), Failure> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ca-notify", &mut script);
    write_out(&script, "completion script")
}

/// Writes `bytes` to standard output; a closed pipe (`| head`) is an error, not a panic.
fn write_out(bytes: &[u8], what: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| Failure::new(exit::INTERNAL, format!("cannot write the {what}: {e}")))
}

/// Writes the man page (roff) to standard output.
///
/// # Errors
/// Exit code 1 when standard output cannot be written.
pub fn man() -> Result<(), Failure> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|e| Failure::new(exit::INTERNAL, format!("cannot render the man page: {e}")))?;
    write_out(&page, "man page")
}
