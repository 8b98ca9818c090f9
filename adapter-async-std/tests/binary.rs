//! The binary: `serve` and `submit` on each runtime, SIGTERM, exit codes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_adapter-async-std");
const LIMIT: Duration = Duration::from_secs(20);

/// A `serve` child and its stderr lines.
struct Serve {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    addr: String,
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Serve {
    fn start(runtime: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .env("ADAPTER_RUNTIME", runtime)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(strip_ansi(&line)).is_err() {
                    break;
                }
            }
        });
        let mut serve = Self {
            child,
            lines,
            seen: Vec::new(),
            addr: String::new(),
        };
        let line = serve.wait_for("listening on ");
        assert!(
            serve
                .seen
                .iter()
                .any(|l| l.contains(&format!("runtime={runtime}"))),
            "a line before the listening one names the runtime: {:#?}",
            serve.seen
        );
        let after = line.split("listening on ").nth(1).unwrap_or_default();
        serve.addr = after
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        serve
    }

    /// The next stderr line containing `needle` (bounded wait).
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "no line with {needle:?} within {LIMIT:?}; saw {:#?}",
                        self.seen
                    );
                }
            }
        }
    }

    /// SIGTERM to this child only; waits (bounded) for its exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on the PID of a child this test started and has
        // not reaped yet.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill failed");
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("serve did not exit within {LIMIT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn submit(runtime: &str, args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .env("ADAPTER_RUNTIME", runtime)
        .arg("submit")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start submit");
    let deadline = Instant::now() + LIMIT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("submit did not exit within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("output")
}

fn serve_and_submit_then_sigterm_exits_gracefully_with_totals(runtime: &str) {
    let mut serve = Serve::start(runtime, &[]);
    let addr = serve.addr.clone();
    let out = submit(
        runtime,
        &["--addr", &addr, "--conn", "me", "one", "two", "three"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(
        lines[0].starts_with("ConnAck id=00000001 result=0"),
        "{stdout}"
    );
    for (i, l) in lines[1..].iter().enumerate() {
        let want = format!("SubmitAck id={:08} result=0", i + 2);
        assert!(l.starts_with(&want), "{l} should start with {want}");
    }
    let closed = serve.wait_for("connection closed");
    assert!(closed.contains("requests=4 acks=4"), "{closed}");
    let status = serve.terminate();
    assert_eq!(status.code(), Some(0), "serve exit status");
    let totals = serve.wait_for("connections accepted=");
    assert!(
        totals.contains("accepted=1 refused=0 open=0; requests=4 acks=4"),
        "{totals}"
    );
}

#[test]
fn serve_and_submit_then_sigterm_exits_gracefully_with_totals_async_std() {
    serve_and_submit_then_sigterm_exits_gracefully_with_totals("async-std");
}

#[test]
fn serve_and_submit_then_sigterm_exits_gracefully_with_totals_smol() {
    serve_and_submit_then_sigterm_exits_gracefully_with_totals("smol");
}

#[test]
fn submit_exits_1_when_an_ack_is_refused() {
    let serve = Serve::start("smol", &["--require-conn"]);
    // No Conn first: the Submit is refused with result 1.
    let out = submit("async-std", &["--addr", &serve.addr, "hello"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("SubmitAck id=00000001 result=1"),
        "{stdout}"
    );
    // With a Conn it is served.
    let out = submit(
        "async-std",
        &["--addr", &serve.addr, "--conn", "t", "hello"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn submit_exits_2_with_a_message_when_nothing_listens() {
    // A port that was free a moment ago.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    for runtime in ["async-std", "smol"] {
        let out = submit(runtime, &["--addr", &addr, "x"]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("cannot connect to"), "{stderr}");
    }
}

#[test]
fn unknown_runtime_is_refused_with_exit_2() {
    let out = submit("tokio", &["x"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ADAPTER_RUNTIME"), "{stderr}");
}

#[test]
fn help_documents_the_runtime_variable() {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("ADAPTER_RUNTIME"), "{help}");
    assert!(help.contains("--max-connections"), "{help}");
}

/// The server's resident memory, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Raises this process's open-file limit (children inherit it); false if
/// the hard limit is too low.
fn raise_nofile(want: u64) -> bool {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on this process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_max < want {
            return false;
        }
        lim.rlim_cur = lim.rlim_cur.max(want);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0
    }
}

/// 10,000 idle connections: under 2 KiB resident each in the server.
/// Ignored by default: it needs ~11,000 file descriptors in this process and in the server. Run with
/// `cargo test -p adapter-async-std --release --test binary -- --ignored --nocapture --test-threads=1`
/// (one at a time: both at once need twice the descriptors).
fn idle_connections_cost_under_2_kib_each(runtime: &str) {
    const CONNS: usize = 10_000;
    assert!(
        raise_nofile(CONNS as u64 + 1000),
        "RLIMIT_NOFILE hard limit too low for {CONNS} connections"
    );
    let serve = Serve::start(runtime, &[]);
    let pid = serve.child.id();
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kib(pid);
    let mut conns = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        conns.push(std::net::TcpStream::connect(&serve.addr).expect("connect"));
    }
    // Let the server accept and park every connection.
    std::thread::sleep(Duration::from_secs(2));
    let after = rss_kib(pid);
    let per_conn = (after.saturating_sub(before) * 1024) / CONNS as u64;
    eprintln!(
        "{runtime}: {CONNS} idle connections: rss {before} KiB -> {after} KiB, {per_conn} bytes each"
    );
    drop(conns);
    assert!(per_conn < 2048, "{per_conn} bytes per idle connection");
}

#[test]
#[ignore = "needs ~11,000 file descriptors; run with --ignored"]
fn idle_connections_cost_under_2_kib_each_async_std() {
    idle_connections_cost_under_2_kib_each("async-std");
}

#[test]
#[ignore = "needs ~11,000 file descriptors; run with --ignored"]
fn idle_connections_cost_under_2_kib_each_smol() {
    idle_connections_cost_under_2_kib_each("smol");
}
