//! The binary: `serve` and `submit` on each runtime, SIGTERM, exit codes.
//! Every child is started, tracked and stopped by its PID through the
//! `harness` crate, and every wait is bounded.

use std::process::{Command, ExitStatus};
use std::time::Duration;

use harness::{Finished, Spawn, Tracked};

const BIN: &str = env!("CARGO_BIN_EXE_adapter-async-std");
const LIMIT: Duration = Duration::from_secs(20);

/// A `serve` child and its stderr lines (ANSI colours stripped).
struct Serve {
    child: Tracked,
    addr: String,
}

impl Serve {
    fn start(runtime: &str, extra: &[&str]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.env("ADAPTER_RUNTIME", runtime)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(extra);
        let (child, line) = Spawn::server(format!("adapter-async-std serve ({runtime})"))
            .spawn_until(cmd, "listening on ", LIMIT)
            .unwrap_or_else(|e| panic!("{e}"));
        let before = child.with_log(|l| {
            l.iter()
                .take_while(|l| !l.contains("listening on "))
                .cloned()
                .collect::<Vec<_>>()
        });
        assert!(
            before
                .iter()
                .any(|l| l.contains(&format!("runtime={runtime}"))),
            "a line before the listening one names the runtime: {before:#?}"
        );
        let after = line.split("listening on ").nth(1).unwrap_or_default();
        let addr = after
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        Self { child, addr }
    }

    /// The next stderr line containing `needle` (bounded wait).
    fn wait_for(&mut self, needle: &str) -> String {
        self.child
            .wait_for_line(needle, LIMIT)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// SIGTERM to this child only; waits (bounded) for its exit status.
    fn terminate(&mut self) -> ExitStatus {
        self.child.signal(harness::SIGTERM);
        match self.child.wait_for(LIMIT) {
            Some(status) => status,
            None => panic!("serve did not exit within {LIMIT:?} of SIGTERM"),
        }
    }
}

/// Runs the binary on `runtime` with `args`, bounded.
fn run(runtime: &str, args: &[&str]) -> Finished {
    let mut cmd = Command::new(BIN);
    cmd.env("ADAPTER_RUNTIME", runtime).args(args);
    harness::run(cmd, &format!("adapter-async-std {args:?}"), LIMIT)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn submit(runtime: &str, args: &[&str]) -> Finished {
    let mut all = vec!["submit"];
    all.extend_from_slice(args);
    run(runtime, &all)
}

fn serve_and_submit_then_sigterm_exits_gracefully_with_totals(runtime: &str) {
    let mut serve = Serve::start(runtime, &[]);
    let addr = serve.addr.clone();
    let out = submit(
        runtime,
        &["--addr", &addr, "--conn", "me", "one", "two", "three"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = &out.stdout;
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
    let stdout = &out.stdout;
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
    let addr = harness::free_tcp_addr().unwrap().to_string();
    for runtime in ["async-std", "smol"] {
        let out = submit(runtime, &["--addr", &addr, "x"]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let stderr = &out.stderr;
        assert!(stderr.contains("cannot connect to"), "{stderr}");
    }
}

#[test]
fn unknown_runtime_is_refused_with_exit_2() {
    let out = submit("tokio", &["x"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = &out.stderr;
    assert!(stderr.contains("ADAPTER_RUNTIME"), "{stderr}");
}

#[test]
fn help_documents_the_runtime_variable() {
    let out = run("async-std", &["serve", "--help"]);
    let help = &out.stdout;
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

/// 10,000 idle connections: under 2 KiB resident each in the server.
/// Ignored by default: it needs ~11,000 file descriptors in this process and in the server. Run with
/// `cargo test -p adapter-async-std --release --test binary -- --ignored --nocapture --test-threads=1`
/// (one at a time: both at once need twice the descriptors).
fn idle_connections_cost_under_2_kib_each(runtime: &str) {
    const CONNS: usize = 10_000;
    // Children inherit it.
    let nofile = harness::raise_nofile_to_hard().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        nofile >= CONNS as u64 + 1000,
        "RLIMIT_NOFILE hard limit too low for {CONNS} connections"
    );
    let serve = Serve::start(runtime, &[]);
    let pid = serve.child.pid();
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
