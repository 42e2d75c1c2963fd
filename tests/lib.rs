//! Shared helpers of the workspace integration suite.
//!
//! * [`binary`]: the built `ca-notify` command (built once per test run).
//! * [`Cli`]: runs the command with a clean environment and captures what it printed, or
//!   hands back the [`Command`] for tests that signal or kill it mid-run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

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

/// The `ca-notify` binary of this workspace, built (once per test process) with the same
/// profile as the tests, so a CLI test always runs the code under test.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/integration-… → target/<profile>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable lives in target/<profile>/deps")
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "-p", "ca-notify", "--bin", "ca-notify"]);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        if let Some(target_dir) = profile_dir.parent() {
            build.env("CARGO_TARGET_DIR", target_dir);
        }
        let status = build.status().expect("cargo build of ca-notify starts");
        assert!(status.success(), "cargo build -p ca-notify failed");
        let path = profile_dir.join(format!("ca-notify{}", std::env::consts::EXE_SUFFIX));
        assert!(path.exists(), "{} was not built", path.display());
        path
    })
}

/// A `ca-notify` invocation with a clean environment (no inherited `CA_NOTIFY__*`).
#[derive(Debug, Default, Clone)]
pub struct Cli {
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
    /// A fresh invocation.
    pub fn new() -> Self {
        Self::default()
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
        let mut command = Command::new(binary());
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
