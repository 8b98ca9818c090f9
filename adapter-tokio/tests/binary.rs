//! The `adapter-tokio` binary: `serve`, `submit` and `bench` as people run
//! them, signals included. Every child is waited for with a bound and
//! killed (by its own handle) if it overstays.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_adapter-tokio");

fn temp_socket() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "adapter-tokio-bin-{}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local addr").port()
}

/// A `serve` child whose stderr is collected line by line.
struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Served {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut served = Self {
            child,
            lines,
            seen: Vec::new(),
        };
        served.wait_for_line("listening on", Duration::from_secs(10));
        served
    }

    fn wait_for_line(&mut self, needle: &str, within: Duration) -> String {
        let until = Instant::now() + within;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "serve did not log {needle:?} within {within:?}; it logged:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let until = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Collect what is left of stderr.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(line);
                }
                return status;
            }
            if Instant::now() >= until {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("serve did not exit within {within:?}");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the binary to completion, killed if it takes longer than `within`.
fn run(args: &[&str], within: Duration) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let until = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("adapter-tokio {args:?} did not finish within {within:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

const SHORT: Duration = Duration::from_secs(20);

#[test]
fn serve_on_unix_answers_submit_and_bench_then_sigterm_exits_gracefully_with_totals() {
    let path = temp_socket();
    let path_str = path.to_str().expect("a UTF-8 temp path");
    let mut server = Served::start(&["--unix", path_str]);

    let out = run(
        &["submit", "--unix", path_str, "first", "second", "third"],
        SHORT,
    );
    assert!(out.status.success(), "submit failed: {}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    for (n, line) in lines.iter().enumerate() {
        let want = format!("SubmitAck id={:08} result=0 (ok)", n + 1);
        assert!(line.starts_with(&want), "line {n}: {line:?}, want {want:?}");
    }

    let out = run(
        &[
            "bench",
            "--unix",
            path_str,
            "--conns",
            "3",
            "--pipeline",
            "8",
            "--requests",
            "3000",
            "--json",
        ],
        SHORT,
    );
    assert!(
        out.status.success(),
        "bench failed: {}{}",
        out.stdout,
        out.stderr
    );
    let report: serde_json::Value =
        serde_json::from_str(out.stdout.trim()).expect("one JSON object");
    assert_eq!(report["requests"], 3000, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["clean"], true, "{report}");

    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "serve exited with {status}");
    let log = server.seen.join("\n");
    assert!(log.contains("SIGTERM"), "{log}");
    let totals = server
        .seen
        .iter()
        .find(|l| l.contains("connections accepted="))
        .unwrap_or_else(|| panic!("no totals line in:\n{log}"));
    assert!(totals.contains("accepted=4"), "{totals}");
    assert!(totals.contains("requests=3003 acks=3003"), "{totals}");
    assert!(
        !path.exists(),
        "the socket file {} was left behind",
        path.display()
    );
}

#[test]
fn serve_with_require_conn_over_tcp_refuses_submits_without_conn_then_sigint_stops_it() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = Served::start(&["--addr", &addr, "--require-conn"]);

    let out = run(&["submit", "--addr", &addr, "no token"], SHORT);
    assert_eq!(out.status.code(), Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("result=1 (error)"), "{}", out.stdout);

    let out = run(
        &["submit", "--addr", &addr, "--conn", "token", "a", "b"],
        SHORT,
    );
    assert!(out.status.success(), "{}{}", out.stdout, out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(
        lines[0].starts_with("ConnAck id=00000001 result=0"),
        "{}",
        lines[0]
    );
    assert!(
        lines[2].starts_with("SubmitAck id=00000003 result=0"),
        "{}",
        lines[2]
    );

    // Every ack of a bench run is refused here: bench must say so.
    let out = run(
        &["bench", "--addr", &addr, "--conns", "1", "--requests", "10"],
        SHORT,
    );
    assert_eq!(out.status.code(), Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("10 errors"), "{}", out.stdout);

    server.signal("INT");
    let status = server.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "serve exited with {status}");
    assert!(
        server
            .seen
            .iter()
            .any(|l| l.contains("connection closed peer=127.0.0.1:"))
    );
}

#[test]
fn submit_without_a_server_exits_2_saying_why() {
    let port = free_port();
    let out = run(
        &["submit", "--addr", &format!("127.0.0.1:{port}"), "x"],
        SHORT,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr.contains("error: cannot connect to"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn bench_without_a_server_exits_non_zero() {
    let port = free_port();
    let out = run(
        &[
            "bench",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--requests",
            "1",
        ],
        SHORT,
    );
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("cannot connect"), "{}", out.stderr);
}

#[test]
fn help_explains_every_subcommand_flag() {
    for (sub, flags) in [
        (
            "serve",
            &[
                "--addr",
                "--unix",
                "--max-connections",
                "--max-frame-len",
                "--idle-timeout",
                "--require-conn",
                "--shutdown-timeout",
                "--log-level",
            ][..],
        ),
        ("submit", &["--addr", "--unix", "--conn", "--timeout"][..]),
        (
            "bench",
            &[
                "--addr",
                "--unix",
                "--conns",
                "--pipeline",
                "--duration",
                "--requests",
                "--payload",
                "--json",
            ][..],
        ),
    ] {
        let out = run(&[sub, "--help"], SHORT);
        assert!(out.status.success(), "{sub} --help: {}", out.stderr);
        for flag in flags {
            assert!(
                out.stdout.contains(flag),
                "{sub} --help lacks {flag}:\n{}",
                out.stdout
            );
        }
    }
    let out = run(&["--version"], SHORT);
    assert!(
        out.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{}",
        out.stdout
    );
}
