//! The `adapter-std` binary: `serve` and `submit` as every adapter's, and
//! SIGTERM ending `serve` gracefully with its totals line. Every child is
//! killed by its own handle if a test fails, and every wait is bounded.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::{Duration, Instant};

use conformance::Endpoint;
use conformance::support::TestClient;

const BIN: &str = env!("CARGO_BIN_EXE_adapter-std");
const WITHIN: Duration = Duration::from_secs(10);

fn temp_unix_path() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "adapter-std-bin-{}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A running `adapter-std serve`, its stderr lines collected.
struct Serve {
    child: Child,
    lines: Receiver<String>,
    log: Vec<String>,
    endpoint: Endpoint,
}

impl Serve {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn adapter-std serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut serve = Self {
            child,
            lines,
            log: Vec::new(),
            endpoint: Endpoint::Tcp(([127, 0, 0, 1], 0).into()),
        };
        let line = serve.wait_for("listening on ");
        let at = line.find("listening on ").map_or("", |i| &line[i + 13..]);
        serve.endpoint = at
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("cannot parse the endpoint in {line:?}: {e}"));
        serve
    }

    /// The first stderr line containing `needle` (bounded wait).
    fn wait_for(&mut self, needle: &str) -> String {
        let until = Instant::now() + WITHIN;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no stderr line with {needle:?} within {WITHIN:?}; got {:#?}",
                        self.log
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "serve exited before a line with {needle:?}; got {:#?}",
                        self.log
                    )
                }
            }
        }
    }

    /// Sends SIGTERM to this child (by its PID) and waits for it to exit.
    fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let kill = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(kill.success(), "kill -TERM {pid} failed");
        let until = Instant::now() + WITHIN;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Collect what it logged on the way out.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(1)) {
                    self.log.push(line);
                }
                return status;
            }
            assert!(
                Instant::now() < until,
                "serve did not exit within {WITHIN:?} of SIGTERM"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_has(&self, needle: &str) -> bool {
        self.log.iter().any(|l| l.contains(needle))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `adapter-std submit` against `endpoint`, bounded.
fn submit(endpoint: &Endpoint, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("submit");
    match endpoint {
        Endpoint::Tcp(a) => cmd.args(["--addr", &a.to_string()]),
        Endpoint::Unix(p) => cmd.arg("--unix").arg(p),
    };
    let mut child = cmd
        .args(["--timeout", "5"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn adapter-std submit");
    let until = Instant::now() + WITHIN;
    while matches!(child.try_wait(), Ok(None)) {
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("submit did not finish within {WITHIN:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("submit output")
}

fn stdout_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn serve_on_a_unix_path_answers_submit_and_sigterm_exits_with_totals() {
    let path = temp_unix_path();
    let mut serve = Serve::start(&["--unix", path.to_str().unwrap()]);
    assert_eq!(serve.endpoint, Endpoint::Unix(path.clone()));

    let out = submit(&serve.endpoint, &["hello", "world", "third"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (n, line) in (1..).zip(&lines) {
        let want = format!("SubmitAck id={n:08} result=0 (ok) rtt=");
        assert!(
            line.starts_with(&want),
            "{line:?} should start with {want:?}"
        );
    }

    let status = serve.terminate();
    assert!(status.success(), "{status:?}: {:#?}", serve.log);
    assert!(
        serve.log_has("connection closed peer=unix"),
        "{:#?}",
        serve.log
    );
    assert!(
        serve.log_has("connections accepted=1 refused=0 open=0; requests=3 acks=3"),
        "{:#?}",
        serve.log
    );
    assert!(!path.exists(), "serve removes its socket file on exit");
}

#[test]
fn serve_on_a_free_port_answers_a_conn_then_submits() {
    let mut serve = Serve::start(&["--addr", "127.0.0.1:0", "--require-conn"]);
    let out = submit(&serve.endpoint, &["--conn", "token", "a", "b"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with("ConnAck id=00000001 result=0 (ok)"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("SubmitAck id=00000002 result=0 (ok)"),
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with("SubmitAck id=00000003 result=0 (ok)"),
        "{lines:?}"
    );
    assert!(serve.terminate().success());
}

#[test]
fn submit_exits_1_when_an_ack_says_error() {
    let serve = Serve::start(&["--addr", "127.0.0.1:0", "--require-conn"]);
    let out = submit(&serve.endpoint, &["no-conn-first"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("SubmitAck id=00000001 result=1 (error)"),
        "{lines:?}"
    );
}

#[test]
fn submit_exits_2_naming_the_endpoint_when_nothing_listens() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = submit(&Endpoint::Tcp(addr), &["x"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot connect to {addr}")), "{err}");
}

#[test]
fn sigterm_closes_an_open_connection_gracefully_and_exits() {
    let mut serve = Serve::start(&["--addr", "127.0.0.1:0"]);
    let mut client = TestClient::connect(&serve.endpoint, "open client");
    client.round_trip(b"before");
    let status = serve.terminate();
    assert!(status.success(), "{status:?}");
    client.expect_closed(Duration::from_secs(2));
    assert!(
        serve.log_has("reason=\"closed locally\""),
        "{:#?}",
        serve.log
    );
    assert!(serve.log_has("closes: local_close=1"), "{:#?}", serve.log);
}

#[test]
fn help_lists_serve_and_submit_only() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("serve") && help.contains("submit"), "{help}");
    assert!(!help.contains("bench"), "{help}");
}
