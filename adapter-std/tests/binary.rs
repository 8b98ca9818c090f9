//! The `adapter-std` binary: `serve` and `submit` as every adapter's, and
//! SIGTERM ending `serve` gracefully with its totals line. Every child is
//! started, tracked and stopped by its PID through the `harness` crate,
//! also when a test fails, and every wait is bounded.

use std::process::{Command, ExitStatus};
use std::time::Duration;

use conformance::Endpoint;
use conformance::support::TestClient;
use harness::{Finished, Spawn, TempSocket, Tracked};

const BIN: &str = env!("CARGO_BIN_EXE_adapter-std");
const WITHIN: Duration = Duration::from_secs(10);

/// A running `adapter-std serve`, its stderr collected line by line.
struct Serve {
    child: Tracked,
    endpoint: Endpoint,
}

impl Serve {
    fn start(args: &[&str]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve").args(args);
        let (child, line) = Spawn::server("adapter-std serve")
            .spawn_until(cmd, "listening on ", WITHIN)
            .unwrap_or_else(|e| panic!("{e}"));
        let at = line.find("listening on ").map_or("", |i| &line[i + 13..]);
        let endpoint = at
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("cannot parse the endpoint in {line:?}: {e}"));
        Self { child, endpoint }
    }

    /// Sends SIGTERM to this child (by its PID) and waits for it to exit.
    fn terminate(&mut self) -> ExitStatus {
        self.child.signal(harness::SIGTERM);
        match self.child.wait_for(WITHIN) {
            Some(status) => status,
            None => panic!("serve did not exit within {WITHIN:?} of SIGTERM"),
        }
    }

    /// Its log so far, for messages.
    fn log(&self) -> Vec<String> {
        self.child.log()
    }

    fn log_has(&self, needle: &str) -> bool {
        self.child.log_has(needle)
    }
}

/// Runs the binary with `args`, bounded.
fn run(args: &[&str]) -> Finished {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    harness::run(cmd, &format!("adapter-std {args:?}"), WITHIN).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `adapter-std submit` against `endpoint`, bounded.
fn submit(endpoint: &Endpoint, args: &[&str]) -> Finished {
    let at = match endpoint {
        Endpoint::Tcp(a) => ["--addr".to_owned(), a.to_string()],
        Endpoint::Unix(p) => ["--unix".to_owned(), p.display().to_string()],
    };
    let mut all = vec!["submit", &at[0], &at[1], "--timeout", "5"];
    all.extend_from_slice(args);
    run(&all)
}

fn stdout_lines(out: &Finished) -> Vec<String> {
    out.stdout.lines().map(str::to_owned).collect()
}

#[test]
fn serve_on_a_unix_path_answers_submit_and_sigterm_exits_with_totals() {
    let socket = TempSocket::new("adapter-std-bin");
    let path = socket.path();
    let mut serve = Serve::start(&["--unix", socket.as_str()]);
    assert_eq!(serve.endpoint, Endpoint::Unix(path.to_owned()));

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
    assert!(status.success(), "{status:?}: {:#?}", serve.log());
    assert!(
        serve.log_has("connection closed peer=unix"),
        "{:#?}",
        serve.log()
    );
    assert!(
        serve.log_has("connections accepted=1 refused=0 open=0; requests=3 acks=3"),
        "{:#?}",
        serve.log()
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
    let addr = harness::free_tcp_addr().unwrap();
    let out = submit(&Endpoint::Tcp(addr), &["x"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty());
    let err = &out.stderr;
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
        serve.log()
    );
    assert!(serve.log_has("closes: local_close=1"), "{:#?}", serve.log());
}

#[test]
fn help_lists_serve_and_submit_only() {
    let out = run(&["--help"]);
    let help = &out.stdout;
    assert!(help.contains("serve") && help.contains("submit"), "{help}");
    assert!(!help.contains("bench"), "{help}");
}
