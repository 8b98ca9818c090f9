//! Starting a server under test on a fresh endpoint, waiting until it
//! accepts, and loading it with the adapters' bench client or with
//! redis-benchmark.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use harness::{Sink, Spawn, Tracked};

use crate::Result;
use crate::bench_json::{self, BenchOutput};
use crate::model::{Point, Server, Transport};
use crate::redis::{self, RedisOutput};

/// How long a server gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long a server gets to start accepting.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the binaries are and where the temp files go.
pub struct Tools {
    pub workspace: PathBuf,
    /// `<target>/release`, holding the three adapter binaries.
    pub bin_dir: PathBuf,
    /// `--baseline DIR`: the same three binaries from an earlier build,
    /// run for the `*Baseline` servers.
    pub baseline_dir: Option<PathBuf>,
    /// Unix sockets and server logs; removed at the end.
    pub tmp: PathBuf,
    /// `redis-server` and `redis-benchmark`, when both are on PATH.
    pub redis: Option<(PathBuf, PathBuf)>,
}

impl Tools {
    /// The binary that runs `server`: from the baseline directory for a
    /// baseline twin (see [`start`], which refuses one without it).
    pub fn adapter_bin(&self, server: Server) -> PathBuf {
        let dir = match &self.baseline_dir {
            Some(d) if server.is_baseline() => d,
            _ => &self.bin_dir,
        };
        dir.join(adapter_bin_name(server))
    }

    /// The bench client: `adapter-tokio bench`, always the current build's
    /// (against baseline servers too, so only the server differs).
    pub fn bench_bin(&self) -> PathBuf {
        self.bin_dir.join("adapter-tokio")
    }
}

/// The file name of the binary that runs `server` (Redis: none of
/// these; the bench client is `adapter-tokio`).
pub fn adapter_bin_name(server: Server) -> &'static str {
    match server.current() {
        Server::Std => "adapter-std",
        Server::AsyncStd | Server::Smol => "adapter-async-std",
        _ => "adapter-tokio",
    }
}

/// A name for file names: `adapter-tokio-baseline` for
/// `adapter-tokio (baseline)`.
pub fn file_label(server: Server) -> String {
    server.label().replace(" (baseline)", "-baseline")
}

/// Where a started server listens.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Tcp(u16),
    Unix(PathBuf),
}

/// A server that accepts connections; stopped when dropped.
pub struct Running {
    pub proc: Tracked,
    pub endpoint: Endpoint,
    pub log: PathBuf,
}

impl Running {
    /// Stops the server by PID (SIGTERM, then SIGKILL after the grace
    /// period); says so on stderr if it had to be killed.
    pub fn stop(mut self) {
        self.proc.stop();
        if self.proc.killed() {
            eprintln!("  (had to SIGKILL {})", self.proc.name());
        }
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> Result<u16> {
    Ok(harness::free_tcp_addr()?.port())
}

/// The arguments that start `server` on `endpoint` (without the program).
pub fn server_args(server: Server, endpoint: &Endpoint, max_conns: Option<u32>) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let s = |v: &str| v.to_string();
    if server == Server::Redis {
        match endpoint {
            Endpoint::Tcp(port) => a.extend([s("--port"), port.to_string()]),
            Endpoint::Unix(path) => a.extend([
                s("--port"),
                s("0"),
                s("--unixsocket"),
                path.display().to_string(),
            ]),
        }
        a.extend([
            s("--bind"),
            s("127.0.0.1"),
            s("--save"),
            s(""),
            s("--appendonly"),
            s("no"),
            s("--daemonize"),
            s("no"),
        ]);
        if let Some(n) = max_conns {
            a.extend([s("--maxclients"), n.to_string()]);
        }
        return a;
    }
    a.push(s("serve"));
    match endpoint {
        Endpoint::Tcp(port) => a.extend([s("--addr"), format!("127.0.0.1:{port}")]),
        Endpoint::Unix(path) => a.extend([s("--unix"), path.display().to_string()]),
    }
    a.extend([s("--log-level"), s("warn")]);
    if let Some(n) = max_conns {
        a.extend([s("--max-connections"), n.to_string()]);
    }
    a
}

/// The `ADAPTER_RUNTIME` a server needs, if any.
pub fn runtime_env(server: Server) -> Option<&'static str> {
    match server.current() {
        Server::AsyncStd => Some("async-std"),
        Server::Smol => Some("smol"),
        _ => None,
    }
}

/// Starts `server` on a fresh port (or a fresh socket path in the temp
/// dir) and waits until it accepts. `seq` makes file names unique.
pub fn start(
    tools: &Tools,
    server: Server,
    transport: Transport,
    max_conns: Option<u32>,
    seq: usize,
) -> Result<Running> {
    start_with(tools, server, transport, max_conns, seq, &[])
}

/// [`start`], with `extra` arguments after the usual ones (e.g. TLS files).
pub fn start_with(
    tools: &Tools,
    server: Server,
    transport: Transport,
    max_conns: Option<u32>,
    seq: usize,
    extra: &[String],
) -> Result<Running> {
    let endpoint = match transport {
        Transport::Tcp => Endpoint::Tcp(free_port()?),
        Transport::Unix => Endpoint::Unix(tools.tmp.join(format!("s{seq}.sock"))),
    };
    let program = match server {
        Server::Redis => match &tools.redis {
            Some((srv, _)) => srv.clone(),
            None => return Err("redis-server is not installed".into()),
        },
        _ if server.is_baseline() && tools.baseline_dir.is_none() => {
            return Err(format!("{server} needs --baseline DIR").into());
        }
        _ => tools.adapter_bin(server),
    };
    let mut cmd = Command::new(&program);
    cmd.args(server_args(server, &endpoint, max_conns))
        .args(extra);
    cmd.current_dir(&tools.tmp);
    if let Some(rt) = runtime_env(server) {
        cmd.env("ADAPTER_RUNTIME", rt);
    }
    let log = tools
        .tmp
        .join(format!("server-{seq}-{}.log", file_label(server)));
    let mut proc = Spawn::new(server.label())
        .stdout(Sink::File(log.clone()))
        .stderr(Sink::File(log.clone()))
        .grace(STOP_GRACE)
        .spawn(cmd)?;
    let ready = match &endpoint {
        Endpoint::Tcp(port) => proc.wait_accepting(
            &SocketAddr::from((Ipv4Addr::LOCALHOST, *port)),
            READY_TIMEOUT,
        ),
        Endpoint::Unix(path) => proc.wait_accepting(path, READY_TIMEOUT),
    };
    ready.map_err(|e| format!("{e}; its log: {}", log_tail(&log)))?;
    Ok(Running {
        proc,
        endpoint,
        log,
    })
}

/// The last lines of a log file, on one line, for an error message.
pub fn log_tail(log: &Path) -> String {
    match std::fs::read_to_string(log) {
        Ok(t) if t.trim().is_empty() => "(empty)".into(),
        Ok(t) => {
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(5)..].join(" / ")
        }
        Err(e) => format!("(cannot read {}: {e})", log.display()),
    }
}

/// Runs a load generator to its end within `within`: its stdout
/// captured and returned, its stderr appended to `log`.
fn run_logged(
    cmd: Command,
    name: &str,
    log: &Path,
    within: Duration,
) -> Result<(ExitStatus, String)> {
    let done = Spawn::new(name)
        .stdout(Sink::Capture)
        .stderr(Sink::File(log.to_owned()))
        .grace(Duration::from_secs(2))
        .spawn(cmd)?
        .wait_output(within)?;
    Ok((done.status, done.stdout))
}

/// The arguments of `adapter-tokio bench` at `point` (without the program).
pub fn bench_args(point: Point, endpoint: &Endpoint, duration_secs: u64) -> Vec<String> {
    let mut a = vec!["bench".to_string()];
    match endpoint {
        Endpoint::Tcp(port) => a.extend(["--addr".into(), format!("127.0.0.1:{port}")]),
        Endpoint::Unix(path) => a.extend(["--unix".into(), path.display().to_string()]),
    }
    a.extend([
        "--conns".into(),
        point.conns.to_string(),
        "--pipeline".into(),
        point.pipeline.to_string(),
        "--duration".into(),
        format!("{duration_secs}s"),
        "--payload".into(),
        point.payload.to_string(),
        "--json".into(),
    ]);
    a
}

/// Runs `adapter-tokio bench --json` against `endpoint`, with `extra`
/// bench arguments (TLS, `--churn`); its stderr goes to a log file in the
/// temp dir (quoted when it fails).
pub fn bench_adapter_with(
    tools: &Tools,
    point: Point,
    endpoint: &Endpoint,
    duration_secs: u64,
    seq: usize,
    extra: &[String],
) -> Result<BenchOutput> {
    let mut cmd = Command::new(tools.bench_bin());
    cmd.args(bench_args(point, endpoint, duration_secs))
        .args(extra);
    let log = tools.tmp.join(format!("bench-{seq}.log"));
    let (status, out) = run_logged(
        cmd,
        "adapter-tokio bench",
        &log,
        Duration::from_secs(duration_secs + 60),
    )?;
    let parsed = bench_json::parse(&out);
    match parsed {
        Ok(b) if status.success() && b.errors == 0 && b.connection_errors.is_empty() => Ok(b),
        Ok(b) => Err(format!(
            "adapter-tokio bench exited with {status}: {} error acks, {} failed connections \
             (first: {}); its stderr: {}",
            b.errors,
            b.connection_errors.len(),
            b.connection_errors
                .first()
                .map(String::as_str)
                .unwrap_or("none"),
            log_tail(&log)
        )
        .into()),
        Err(e) if status.success() => Err(e),
        Err(_) => Err(format!(
            "adapter-tokio bench exited with {status}; stdout: {:?}; its stderr: {}",
            out.trim(),
            log_tail(&log)
        )
        .into()),
    }
}

/// The redis-benchmark test that stands for a request of `payload` bytes.
pub fn redis_test(payload: u32) -> &'static str {
    if payload <= 32 { "PING_INLINE" } else { "SET" }
}

/// The arguments of redis-benchmark at `point` for `requests` requests.
pub fn redis_bench_args(point: Point, endpoint: &Endpoint, requests: u64) -> Vec<String> {
    let mut a: Vec<String> = match endpoint {
        Endpoint::Tcp(port) => vec!["-p".into(), port.to_string()],
        Endpoint::Unix(path) => vec!["-s".into(), path.display().to_string()],
    };
    a.extend([
        "-c".into(),
        point.conns.to_string(),
        "-P".into(),
        point.pipeline.to_string(),
        "-n".into(),
        requests.to_string(),
        "--csv".into(),
        "-t".into(),
    ]);
    if point.payload <= 32 {
        a.push("ping_inline".into());
    } else {
        a.extend(["set".into(), "-d".into(), point.payload.to_string()]);
    }
    a
}

/// Runs redis-benchmark against `endpoint`.
pub fn bench_redis(
    tools: &Tools,
    point: Point,
    endpoint: &Endpoint,
    requests: u64,
    seq: usize,
) -> Result<RedisOutput> {
    let Some((_, bench)) = &tools.redis else {
        return Err("redis-benchmark is not installed".into());
    };
    let mut cmd = Command::new(bench);
    cmd.args(redis_bench_args(point, endpoint, requests));
    let log = tools.tmp.join(format!("redis-benchmark-{seq}.log"));
    let (status, out) = run_logged(cmd, "redis-benchmark", &log, Duration::from_secs(300))?;
    if !status.success() {
        return Err(format!(
            "redis-benchmark exited with {status}; stdout: {:?}; its stderr: {}",
            out.trim(),
            log_tail(&log)
        )
        .into());
    }
    redis::parse(&out, redis_test(point.payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(payload: u32) -> Point {
        Point {
            transport: Transport::Tcp,
            payload,
            pipeline: 16,
            conns: 50,
        }
    }

    #[test]
    fn adapter_server_args() {
        let a = server_args(Server::Std, &Endpoint::Tcp(4000), Some(11000));
        assert_eq!(
            a.join(" "),
            "serve --addr 127.0.0.1:4000 --log-level warn --max-connections 11000"
        );
        let u = server_args(Server::Smol, &Endpoint::Unix("/tmp/x.sock".into()), None);
        assert_eq!(u.join(" "), "serve --unix /tmp/x.sock --log-level warn");
        assert_eq!(runtime_env(Server::Smol), Some("smol"));
        assert_eq!(runtime_env(Server::Tokio), None);
        assert_eq!(runtime_env(Server::SmolBaseline), Some("smol"));
        assert_eq!(runtime_env(Server::AsyncStdBaseline), Some("async-std"));
    }

    #[test]
    fn baseline_servers_run_from_the_baseline_dir() {
        let mut t = Tools {
            workspace: "/w".into(),
            bin_dir: "/w/target/release".into(),
            baseline_dir: Some("/base".into()),
            tmp: "/tmp".into(),
            redis: None,
        };
        let bin = |t: &Tools, s| t.adapter_bin(s).display().to_string();
        assert_eq!(bin(&t, Server::Smol), "/w/target/release/adapter-async-std");
        assert_eq!(bin(&t, Server::SmolBaseline), "/base/adapter-async-std");
        assert_eq!(bin(&t, Server::StdBaseline), "/base/adapter-std");
        assert_eq!(bin(&t, Server::TokioBaseline), "/base/adapter-tokio");
        assert_eq!(
            t.bench_bin().display().to_string(),
            "/w/target/release/adapter-tokio"
        );
        assert_eq!(file_label(Server::AsyncStdBaseline), "async-std-baseline");
        t.baseline_dir = None;
        assert!(start(&t, Server::TokioBaseline, Transport::Tcp, None, 0).is_err());
    }

    #[test]
    fn redis_server_args_disable_persistence() {
        let a = server_args(Server::Redis, &Endpoint::Tcp(4000), None);
        assert_eq!(
            a,
            [
                "--port",
                "4000",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no"
            ]
        );
    }

    #[test]
    fn bench_and_redis_benchmark_args() {
        assert_eq!(
            bench_args(point(32), &Endpoint::Tcp(5), 3).join(" "),
            "bench --addr 127.0.0.1:5 --conns 50 --pipeline 16 --duration 3s --payload 32 --json"
        );
        assert_eq!(
            redis_bench_args(point(32), &Endpoint::Tcp(5), 1000).join(" "),
            "-p 5 -c 50 -P 16 -n 1000 --csv -t ping_inline"
        );
        assert_eq!(
            redis_bench_args(point(1024), &Endpoint::Unix("/s".into()), 10).join(" "),
            "-s /s -c 50 -P 16 -n 10 --csv -t set -d 1024"
        );
        assert_eq!(redis_test(65536), "SET");
    }

    #[test]
    fn free_ports_are_nonzero() {
        assert_ne!(free_port().unwrap(), 0);
    }
}
