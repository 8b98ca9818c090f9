//! The `adapter-tokio` binary: `serve`, `submit` and `bench` as people run
//! them, signals included. Every child is started, tracked and stopped by
//! its PID through the `harness` crate, and every wait is bounded.

use std::process::{Command, ExitStatus};
use std::time::Duration;

use harness::{Finished, Spawn, TempSocket, Tracked};

const BIN: &str = env!("CARGO_BIN_EXE_adapter-tokio");

/// A `serve` child, its stderr collected line by line, once it logged
/// "listening on".
fn serve(args: &[&str]) -> Tracked {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve").args(args);
    match Spawn::server("adapter-tokio serve").spawn_until(cmd, "listening on", SHORT / 2) {
        Ok((server, _)) => server,
        Err(e) => panic!("{e}"),
    }
}

/// Sends `sig` to `serve` and waits (bounded) for it to exit; its whole
/// log is read then.
fn stop_with(server: &mut Tracked, sig: i32) -> ExitStatus {
    server.signal(sig);
    match server.wait_for(Duration::from_secs(15)) {
        Some(status) => status,
        None => panic!("serve did not exit within 15 s of signal {sig}"),
    }
}

/// Runs the binary to completion, stopped if it takes longer than `within`.
fn run(args: &[&str], within: Duration) -> Finished {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    harness::run(cmd, &format!("adapter-tokio {args:?}"), within).unwrap_or_else(|e| panic!("{e}"))
}

const SHORT: Duration = Duration::from_secs(20);

#[test]
fn serve_on_unix_answers_submit_and_bench_then_sigterm_exits_gracefully_with_totals() {
    let socket = TempSocket::new("adapter-tokio-bin");
    let path_str = socket.as_str();
    let mut server = serve(&["--unix", path_str]);

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

    let status = stop_with(&mut server, harness::SIGTERM);
    assert!(status.success(), "serve exited with {status}");
    let seen = server.log();
    let log = seen.join("\n");
    assert!(log.contains("SIGTERM"), "{log}");
    let totals = seen
        .iter()
        .find(|l| l.contains("connections accepted="))
        .unwrap_or_else(|| panic!("no totals line in:\n{log}"));
    assert!(totals.contains("accepted=4"), "{totals}");
    assert!(totals.contains("requests=3003 acks=3003"), "{totals}");
    assert!(
        !socket.path().exists(),
        "the socket file {} was left behind",
        socket.path().display()
    );
}

#[test]
fn serve_with_require_conn_over_tcp_refuses_submits_without_conn_then_sigint_stops_it() {
    let addr = harness::free_tcp_addr().unwrap().to_string();
    let mut server = serve(&["--addr", &addr, "--require-conn"]);

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

    let status = stop_with(&mut server, harness::SIGINT);
    assert!(status.success(), "serve exited with {status}");
    assert!(server.log_has("connection closed peer=127.0.0.1:"));
}

#[test]
fn bench_with_addr_twice_spreads_its_connections_over_both_servers() {
    let addrs: Vec<String> = (0..2)
        .map(|_| {
            harness::free_tcp_addr()
                .unwrap_or_else(|e| panic!("{e}"))
                .to_string()
        })
        .collect();
    let mut servers: Vec<Tracked> = addrs.iter().map(|a| serve(&["--addr", a])).collect();
    let out = run(
        &[
            "bench",
            "--addr",
            &addrs[0],
            "--addr",
            &addrs[1],
            "--conns",
            "4",
            "--requests",
            "400",
            "--json",
        ],
        SHORT,
    );
    assert!(out.status.success(), "bench: {}{}", out.stdout, out.stderr);
    let report: serde_json::Value =
        serde_json::from_str(out.stdout.trim()).expect("one JSON object");
    assert_eq!(report["ok"], 400, "{report}");
    assert_eq!(
        report["endpoint"],
        format!("{}, {}", addrs[0], addrs[1]),
        "{report}"
    );
    // Connections 0 and 2 to the first, 1 and 3 to the second: 200 each.
    for (server, addr) in servers.iter_mut().zip(&addrs) {
        let status = stop_with(server, harness::SIGTERM);
        assert!(status.success(), "serve {addr} exited with {status}");
        let log = server.log();
        let totals = log
            .iter()
            .find(|l| l.contains("connections accepted="))
            .unwrap_or_else(|| panic!("no totals line from {addr}"));
        assert!(
            totals.contains("accepted=2 ") && totals.contains("requests=200 acks=200"),
            "{addr}: {totals}"
        );
    }
}

#[test]
fn submit_without_a_server_exits_2_saying_why() {
    let addr = harness::free_tcp_addr().unwrap().to_string();
    let out = run(&["submit", "--addr", &addr, "x"], SHORT);
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
    let addr = harness::free_tcp_addr().unwrap().to_string();
    let out = run(&["bench", "--addr", &addr, "--requests", "1"], SHORT);
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
