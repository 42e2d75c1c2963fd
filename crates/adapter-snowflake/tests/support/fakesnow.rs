//! Starts fakesnow (behind the project's shim, `tests/fakesnow/shim.py`) once per test
//! binary, or uses the one `CA_NOTIFY_FAKESNOW_URL` points at.
//!
//! There is no skipping: when fakesnow cannot start, every test that needs it fails with
//! the reason and how to install it. The server listens on 127.0.0.1 on a free port the
//! shim picks itself (it prints `{"port": N}` first), and dies with this process: it
//! exits when its stdin, which we hold, closes.
//!
//! Environment:
//! * `CA_NOTIFY_FAKESNOW_URL`: use a running shim (e.g. `http://127.0.0.1:8765`) instead.
//! * `CA_NOTIFY_FAKESNOW_PYTHON`: the Python to run the shim with; by default the venv
//!   `scripts/start-fakesnow.sh` makes (`tests/fakesnow/.venv`), else `python3`.
//! * `TEST_LOG`: show the shim's own log on stderr.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long fakesnow may take to import DuckDB, pyarrow and sqlglot and start serving.
const START_TIMEOUT: Duration = Duration::from_secs(90);

const INSTALL_HINT: &str = "install fakesnow with `scripts/start-fakesnow.sh --install-only` \
(a venv in crates/adapter-snowflake/tests/fakesnow/.venv with \
pip install 'fakesnow[server]==0.12.1' 'snowflake-connector-python<5'), \
or point CA_NOTIFY_FAKESNOW_URL at a running `scripts/start-fakesnow.sh`";

/// A running fakesnow behind the shim.
pub struct Fakesnow {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    child: Option<Mutex<(Child, Option<ChildStdin>)>>,
}

impl Drop for Fakesnow {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let (mut child, stdin) = child.into_inner().unwrap_or_else(|e| e.into_inner());
            drop(stdin);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The fakesnow of this test binary, started on first use.
pub fn fakesnow() -> &'static Fakesnow {
    static SERVER: OnceLock<Result<Fakesnow, String>> = OnceLock::new();
    match SERVER.get_or_init(start) {
        Ok(server) => server,
        Err(e) => panic!("fakesnow is not available: {e}"),
    }
}

fn start() -> Result<Fakesnow, String> {
    if let Ok(url) = std::env::var("CA_NOTIFY_FAKESNOW_URL") {
        let url = url.trim_end_matches('/').to_owned();
        wait_until_healthy(&url, Instant::now() + Duration::from_secs(10), None)
            .map_err(|e| format!("CA_NOTIFY_FAKESNOW_URL={url} does not answer: {e}"))?;
        return Ok(Fakesnow {
            base_url: url,
            child: None,
        });
    }
    let dir = shim_dir();
    let python = std::env::var("CA_NOTIFY_FAKESNOW_PYTHON").unwrap_or_else(|_| {
        let venv = dir.join(".venv/bin/python");
        if venv.exists() {
            venv.display().to_string()
        } else {
            "python3".to_owned()
        }
    });
    let log_level = if std::env::var_os("TEST_LOG").is_some() {
        "info"
    } else {
        "warning"
    };
    let mut child = Command::new(&python)
        .arg(dir.join("shim.py"))
        .args(["--host", "127.0.0.1", "--port", "0", "--exit-on-stdin-eof"])
        .args(["--log-level", log_level])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {python}: {e}; {INSTALL_HINT}"))?;
    let stdin = child.stdin.take();
    let stderr_tail = drain_stderr(child.stderr.take().expect("piped"));
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next();
        let _ = tx.send(first);
        for _ in lines {}
    });
    let failed = |child: &mut Child, why: String| {
        let _ = child.kill();
        let _ = child.wait();
        let tail = stderr_tail.lock().map(|t| t.clone()).unwrap_or_default();
        format!("{why}; {INSTALL_HINT}\n--- shim stderr ---\n{tail}")
    };
    let port = match rx.recv_timeout(START_TIMEOUT) {
        Ok(Some(Ok(line))) => match parse_port(&line) {
            Some(port) => port,
            None => return Err(failed(&mut child, format!("the shim said {line:?}"))),
        },
        Ok(_) => return Err(failed(&mut child, "the shim exited before binding".into())),
        Err(_) => return Err(failed(&mut child, "the shim did not bind in time".into())),
    };
    let base_url = format!("http://127.0.0.1:{port}");
    if let Err(e) = wait_until_healthy(&base_url, Instant::now() + START_TIMEOUT, Some(&mut child))
    {
        return Err(failed(&mut child, e));
    }
    Ok(Fakesnow {
        base_url,
        child: Some(Mutex::new((child, stdin))),
    })
}

/// The shim's directory: this crate's `tests/fakesnow`, also when another package's tests
/// include this file (`#[path]`): a sibling crate of `crates/`, or one of `bins/`.
fn shim_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        "tests/fakesnow",
        "../adapter-snowflake/tests/fakesnow",
        "../../crates/adapter-snowflake/tests/fakesnow",
    ];
    candidates
        .iter()
        .map(|dir| manifest.join(dir))
        .find(|dir| dir.join("shim.py").exists())
        .unwrap_or_else(|| manifest.join(candidates[0]))
}

fn parse_port(line: &str) -> Option<u16> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    u16::try_from(value.get("port")?.as_u64()?).ok()
}

/// Keeps the last few KB of the shim's stderr for error messages (and echoes it when
/// `TEST_LOG` is set), so the pipe never fills.
fn drain_stderr(stderr: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let tail = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&tail);
    let echo = std::env::var_os("TEST_LOG").is_some();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if echo {
                eprintln!("[fakesnow] {line}");
            }
            let mut t = sink.lock().unwrap_or_else(|e| e.into_inner());
            t.push_str(&line);
            t.push('\n');
            if t.len() > 8192 {
                let cut = t.len() - 8192;
                let cut = (cut..t.len()).find(|i| t.is_char_boundary(*i)).unwrap_or(0);
                t.drain(..cut);
            }
        }
    });
    tail
}

fn wait_until_healthy(
    base_url: &str,
    deadline: Instant,
    mut child: Option<&mut Child>,
) -> Result<(), String> {
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        if let Some(child) = child.as_deref_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("the shim exited ({status})"));
            }
        }
        match http(base_url, "GET", "/__shim/health", None) {
            Ok((200, _)) => return Ok(()),
            Ok((status, body)) => last = format!("HTTP {status}: {body}"),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("fakesnow did not answer in time ({last})"))
}

/// One plain HTTP/1.1 request to the shim; returns the status and body.
pub fn http(
    base_url: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<(u16, String), String> {
    let host = base_url
        .strip_prefix("http://")
        .ok_or_else(|| format!("not an http URL: {base_url}"))?;
    let mut stream = TcpStream::connect(host).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let body = body.map(ToString::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("a response without headers")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("a response without a status")?;
    Ok((status, body.to_owned()))
}

impl Fakesnow {
    /// GET a shim hook and parse its JSON.
    pub fn get(&self, path: &str) -> serde_json::Value {
        let (status, body) = http(&self.base_url, "GET", path, None).expect("shim answers");
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("shim answers JSON")
    }

    /// POST a JSON body to a shim hook.
    pub fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let (status, text) = http(&self.base_url, "POST", path, Some(&body)).expect("shim answers");
        assert_eq!(status, 200, "{path}: {text}");
        serde_json::from_str(&text).expect("shim answers JSON")
    }

    /// The logins of `user` the shim saw (non-secret fields only).
    pub fn logins_of(&self, user: &str) -> Vec<serde_json::Value> {
        self.get("/__shim/logins")
            .as_array()
            .expect("a list")
            .iter()
            .filter(|l| l["login_name"] == user)
            .cloned()
            .collect()
    }

    /// The SQL text of every statement the sessions of `user` sent, in order.
    pub fn statements_of(&self, user: &str) -> Vec<String> {
        self.get("/__shim/queries")
            .as_array()
            .expect("a list")
            .iter()
            .filter(|q| q["login_name"] == user)
            .filter_map(|q| q["sql"].as_str().map(str::to_owned))
            .collect()
    }

    /// The SQL text of every statement the shim saw.
    pub fn statements(&self) -> Vec<String> {
        self.get("/__shim/queries")
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(|q| q["sql"].as_str().map(str::to_owned))
            .collect()
    }
}
