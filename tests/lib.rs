//! Shared helpers of the workspace integration suite (`tests/integration`), the command's
//! integration tests (`bins/ca-notify/tests/cli`) and the end-to-end benchmark.
//!
//! * [`people`]: recipients whose fate the simulators decide by their last digit.
//! * [`faulty_twilio`], [`faulty_verification`]: simulators that fail now and then.
//! * [`Cli`]: runs a built command with a clean environment and captures what it printed,
//!   or hands back the [`Command`] for tests that signal or kill it mid-run. The caller
//!   names the program: the command's tests get it from cargo (`CARGO_BIN_EXE_ca-notify`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use ca_notify_simulators::twilio::TwilioSimConfig;
use ca_notify_simulators::verification::{Faults, SimConfig};

/// A Twilio simulator answering 5 % of lookups 429 and 2 % 500.
pub fn faulty_twilio() -> TwilioSimConfig {
    TwilioSimConfig {
        fault_rate_429: 0.05,
        fault_rate_500: 0.02,
        ..TwilioSimConfig::default()
    }
}

/// A verification-server simulator answering 5 % of requests 500 after issuing, and
/// dropping 3 % of connections after issuing and 3 % before.
pub fn faulty_verification() -> SimConfig {
    SimConfig {
        faults: Faults {
            error_after_issue: 0.05,
            drop_after_issue: 0.03,
            drop_before_issue: 0.03,
            ..Faults::default()
        },
        ..SimConfig::default()
    }
}

/// The dedup secret of every world.
pub const SECRET: &str = "integration-test-dedup-secret";

/// What the Twilio simulator will say about a recipient's phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A mobile: must be texted exactly once.
    Mobile,
    /// The same phone and test date as an earlier mobile: shares its one text.
    Duplicate,
    /// A landline: never texted.
    Landline,
    /// An invalid number: never texted.
    Invalid,
}

/// One recipient of a world.
#[derive(Debug, Clone)]
pub struct Person {
    /// The record id.
    pub id: String,
    /// The ten-digit national number as the file holds it.
    pub national: String,
    /// What the simulator will say about it.
    pub kind: Kind,
}

impl Person {
    /// The number as the verification server's ledger holds it.
    pub fn e164(&self) -> String {
        format!("+1{}", self.national)
    }
}

/// `count` recipients: mostly mobiles, every tenth a landline, an invalid number, and a
/// duplicate of an earlier mobile (same phone and test date). The Twilio simulator answers
/// by the last digit (0–4 mobile, 5 landline, 9 invalid).
pub fn people(count: usize) -> Vec<Person> {
    let number = ca_notify_simulators::numbers::national;
    (0..count)
        .map(|i| {
            let (national, kind) = match i % 10 {
                7 => (number(i, 5), Kind::Landline),
                8 => (number(i, 9), Kind::Invalid),
                9 => (number(i - 3, 1), Kind::Duplicate),
                _ => (number(i, 1), Kind::Mobile),
            };
            Person {
                id: format!("r{i:05}"),
                national,
                kind,
            }
        })
        .collect()
}

/// A `ca-notify` invocation with a clean environment (no inherited `CA_NOTIFY__*`).
#[derive(Debug, Clone)]
pub struct Cli {
    program: PathBuf,
    env: HashMap<String, String>,
    dir: Option<PathBuf>,
}

/// What one invocation printed and how it exited.
#[derive(Debug)]
pub struct CliOutput {
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error (the logs).
    pub stderr: String,
}

impl CliOutput {
    /// Everything the command printed.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl Cli {
    /// A fresh invocation of `program` (the built `ca-notify`).
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            env: HashMap::new(),
            dir: None,
        }
    }

    /// Sets an environment variable.
    #[must_use]
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.insert(key.to_owned(), value.into());
        self
    }

    /// Runs in this directory.
    #[must_use]
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The command with these arguments and this invocation's environment, not started:
    /// for tests that spawn it, signal it or kill it.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.program);
        command.args(args).env_clear();
        for key in ["PATH", "HOME", "TMPDIR"] {
            if let Ok(value) = std::env::var(key) {
                command.env(key, value);
            }
        }
        command.envs(&self.env);
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        command
    }

    /// Runs the command with these arguments and waits for it.
    pub fn run(&self, args: &[&str]) -> CliOutput {
        let mut command = self.command(args);
        let Output {
            status,
            stdout,
            stderr,
        } = command.output().expect("ca-notify starts");
        CliOutput {
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}
