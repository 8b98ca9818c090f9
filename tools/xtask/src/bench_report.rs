//! `cargo xtask bench-report`: build, measure the grid and memory, write
//! the report and its charts.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use harness::{Sink, Spawn};

use crate::model::{MemoryResult, Point, Results, Sample, Server, Transport};
use crate::report::{self, Meta, fmt_duration, fmt_rps, fmt_us};
use crate::servers::{self, Tools};
use crate::{BenchReportArgs, Result, charts, memory, procfs};

const CONNS: [u32; 5] = [1, 10, 50, 200, 1000];
const PIPELINES: [u32; 4] = [1, 4, 16, 64];
const SMALL: u32 = 32;
/// adapter-async-std builds only the async-std runtime by default; the
/// report runs its binary on both (ADAPTER_RUNTIME=async-std and =smol).
///
/// Two cargo invocations: `--features adapter-async-std/smol` next to other
/// `-p` packages does not turn the feature on (cargo 1.95 builds the binary
/// without it), `-p adapter-async-std --features smol` does.
const BUILDS: [&[&str]; 2] = [
    &[
        "build",
        "--release",
        "-p",
        "adapter-tokio",
        "-p",
        "adapter-std",
    ],
    &[
        "build",
        "--release",
        "-p",
        "adapter-async-std",
        "--features",
        "async-std,smol",
    ],
];

/// The binaries BUILDS makes, which `--baseline DIR` must hold too.
const BINARIES: [&str; 3] = ["adapter-tokio", "adapter-std", "adapter-async-std"];

fn point(transport: Transport, payload: u32, conns: u32, pipeline: u32) -> Point {
    Point {
        transport,
        payload,
        pipeline,
        conns,
    }
}

/// The points to measure, in the order they run.
pub fn grid(quick: bool) -> Vec<Point> {
    use Transport::{Tcp, Unix};
    if quick {
        return vec![
            point(Tcp, SMALL, 1, 1),
            point(Tcp, SMALL, 50, 1),
            point(Tcp, SMALL, 50, 16),
            point(Tcp, SMALL, 1, 64),
            point(Unix, SMALL, 50, 16),
        ];
    }
    let mut g = Vec::new();
    for pipeline in PIPELINES {
        for conns in CONNS {
            g.push(point(Tcp, SMALL, conns, pipeline));
        }
    }
    g.push(point(Tcp, 1024, 50, 16));
    g.push(point(Tcp, 64 * 1024, 50, 16));
    for (c, p) in [(1, 1), (50, 1), (50, 16), (1, 64)] {
        g.push(point(Unix, SMALL, c, p));
    }
    g
}

/// Progress on stderr: which item, and the time left, estimated from the
/// time the finished items took per planned second.
pub struct Progress {
    total_items: usize,
    done_items: usize,
    planned_secs: f64,
    done_planned_secs: f64,
    start: Instant,
}

impl Progress {
    /// `total_items` to do, planned to take `planned_secs` in all.
    pub fn new(total_items: usize, planned_secs: f64) -> Self {
        Self {
            total_items,
            done_items: 0,
            planned_secs,
            done_planned_secs: 0.0,
            start: Instant::now(),
        }
    }

    pub fn planned_secs(&self) -> f64 {
        self.planned_secs
    }

    fn eta(&self) -> String {
        let remaining = self.planned_secs - self.done_planned_secs;
        let rate = if self.done_planned_secs > 0.0 {
            self.start.elapsed().as_secs_f64() / self.done_planned_secs
        } else {
            1.0
        };
        fmt_duration((remaining * rate).max(0.0).round() as u64)
    }

    pub fn begin(&self, what: &str) {
        eprint!(
            "[{:>3}/{} ETA {:>6}] {what} ... ",
            self.done_items + 1,
            self.total_items,
            self.eta()
        );
        let _ = std::io::stderr().flush();
    }

    pub fn end(&mut self, planned: f64) {
        self.done_items += 1;
        self.done_planned_secs += planned;
    }
}

pub fn run(args: &BenchReportArgs) -> Result<()> {
    let started = Instant::now();
    let quick = args.quick;
    let runs = args.runs.unwrap_or(if quick { 1 } else { 3 }).max(1);
    let duration = args.duration.unwrap_or(if quick { 3 } else { 5 }).max(1);
    harness::install_signal_handler("xtask", servers::STOP_GRACE)?;
    // The servers inherit it.
    let fd_limit = harness::raise_nofile_to_hard()?;
    // Unix sockets and server logs: removed when dropped and on Ctrl-C.
    let tmp = harness::TempDir::new("xtask-bench")?;
    let (workspace, bin_dir) = built_binaries(args.no_build)?;
    let baseline_dir = match &args.baseline {
        Some(dir) => Some(baseline_dir(dir)?),
        None => None,
    };
    let installed = match (
        find_on_path("redis-server"),
        find_on_path("redis-benchmark"),
    ) {
        (Some(s), Some(b)) => Some((s, b)),
        _ => None,
    };
    let redis_version = match &installed {
        Some((srv, _)) => {
            let v = capture(Command::new(srv).arg("--version"), "redis-server --version")
                .map(|v| parse_redis_version(&v).unwrap_or(v.trim().to_string()))?;
            Some(if args.no_redis {
                format!("{v}, left out (--no-redis)")
            } else {
                v
            })
        }
        None => None,
    };
    let redis = if args.no_redis { None } else { installed };
    let tools = Tools {
        workspace: workspace.clone(),
        bin_dir,
        baseline_dir,
        tmp: tmp.path().to_owned(),
        redis,
    };
    if tools.baseline_dir.is_some() {
        check_baseline_starts(&tools)?;
    }

    let points = grid(quick);
    let mut servers = bench_servers(tools.baseline_dir.is_some());
    if tools.redis.is_some() {
        servers.push(Server::Redis);
    } else {
        eprintln!("xtask: redis-server/redis-benchmark not on PATH: no Redis reference");
    }
    let mem_counts: Vec<usize> = if quick {
        vec![1, 1000]
    } else {
        vec![1, 1000, 10_000]
    };
    // Memory for the current build only: the baseline twins are there
    // for req/s and CPU.
    let mem_servers: Vec<Server> = servers
        .iter()
        .copied()
        .filter(|s| !s.is_baseline())
        .collect();
    let width = servers.iter().map(|s| s.label().len()).max().unwrap_or(13);
    let mem_secs = 2.0 + mem_counts.iter().sum::<usize>() as f64 / 2000.0;
    let bench_secs = duration as f64 + 1.0;
    let n_bench = points.len() * runs * servers.len();
    let mut progress = Progress::new(
        n_bench + mem_servers.len(),
        n_bench as f64 * bench_secs + mem_servers.len() as f64 * mem_secs,
    );
    eprintln!(
        "xtask: {} points x {} servers x {runs} run(s) of {duration} s, then memory of {} \
         server(s) at {:?} connections: about {}",
        points.len(),
        servers.len(),
        mem_servers.len(),
        mem_counts,
        fmt_duration(progress.planned_secs as u64)
    );
    if let Some(dir) = &tools.baseline_dir {
        eprintln!("xtask: baseline binaries: {}", dir.display());
    }

    let mut results = Results::new(runs);
    let mut redis_rate: HashMap<Point, f64> = HashMap::new();
    let mut seq = 0;
    for &p in &points {
        for run in 0..runs {
            for &server in &servers {
                seq += 1;
                progress.begin(&format!("{p} {server:<width$} run {}/{runs}", run + 1));
                let r = match server {
                    Server::Redis => measure_redis(&tools, p, duration, &mut redis_rate, seq),
                    _ => measure_adapter(&tools, p, server, duration, seq),
                };
                match r {
                    Ok(s) => {
                        eprintln!(
                            "{} req/s, p99 {}, server CPU {} µs/req",
                            fmt_rps(s.rps),
                            s.p99_us.map(fmt_us).unwrap_or_else(|| "–".into()),
                            s.cpu_us_per_req
                                .map(|c| format!("{c:.2}"))
                                .unwrap_or_else(|| "–".into())
                        );
                        results.record(p, server, run, Some(s));
                    }
                    Err(e) => {
                        harness::halt_if_interrupted();
                        eprintln!("FAILED: {e}");
                        results
                            .failures
                            .push(format!("{p} {server} run {}/{runs}: {e}", run + 1));
                        results.record(p, server, run, None);
                    }
                }
                progress.end(bench_secs);
            }
        }
    }

    let mut mem: Vec<MemoryResult> = Vec::new();
    for &server in &mem_servers {
        seq += 1;
        progress.begin(&format!(
            "memory {server:<width$} {mem_counts:?} idle connections"
        ));
        match memory::measure(&tools, server, &mem_counts, fd_limit, seq) {
            Ok(m) => {
                let per: Vec<String> = mem_counts
                    .iter()
                    .map(|n| match m.kib_per_conn(*n) {
                        Some(k) => format!("{n}: {k:.2} KiB/conn"),
                        None => format!("{n}: –"),
                    })
                    .collect();
                eprintln!("{}", per.join(", "));
                mem.push(m);
            }
            Err(e) => {
                harness::halt_if_interrupted();
                eprintln!("FAILED: {e}");
                results
                    .failures
                    .push(format!("memory test of {server}: {e}"));
            }
        }
        progress.end(mem_secs);
    }

    let out = if args.out.is_absolute() {
        args.out.clone()
    } else {
        workspace.join(&args.out)
    };
    harness::halt_if_interrupted();
    let charts = write_charts(&out, &results)?;
    let meta = Meta {
        date: report::fmt_utc(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        ),
        commit: git_commit(&workspace),
        cpu_model: procfs::cpu_model(),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        kernel: procfs::kernel_release(),
        rustc: capture(Command::new("rustc").arg("--version"), "rustc --version")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|e| format!("unknown ({e})")),
        redis_version,
        quick,
        runs,
        duration_secs: duration,
        commands: commands(&tools, duration),
        charts,
        notes: notes(fd_limit, &mem_counts),
        wall_secs: started.elapsed().as_secs(),
        baseline: tools.baseline_dir.as_ref().map(|d| d.display().to_string()),
    };
    let md = report::render(&meta, &results, &mem);
    harness::halt_if_interrupted();
    let md_path = out.join("benchmarks.md");
    std::fs::write(&md_path, md).map_err(|e| format!("writing {}: {e}", md_path.display()))?;
    eprintln!(
        "xtask: wrote {} and {} chart(s) in {}",
        md_path.display(),
        meta.charts.len(),
        fmt_duration(started.elapsed().as_secs())
    );
    if let Some(t) = report::baseline_text(&results) {
        eprint!("\n{t}");
    }
    drop(tmp);
    if results.failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} run(s) failed (listed at the end of {})",
            results.failures.len(),
            md_path.display()
        )
        .into())
    }
}

/// The servers of every run, in the order they run: each adapter, then
/// (with a baseline) its baseline twin right after it, so the pair is
/// measured back to back.
fn bench_servers(baseline: bool) -> Vec<Server> {
    let mut v = Vec::new();
    for s in Server::ADAPTERS {
        v.push(s);
        if baseline && let Some(b) = s.baseline() {
            v.push(b);
        }
    }
    v
}

/// `--baseline DIR`, made absolute, once it holds the three binaries
/// (relative to the current directory, as a shell would take it).
fn baseline_dir(dir: &Path) -> Result<PathBuf> {
    let abs = dir
        .canonicalize()
        .map_err(|e| format!("--baseline {}: {e}", dir.display()))?;
    let missing: Vec<&str> = BINARIES
        .into_iter()
        .filter(|b| !abs.join(b).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "--baseline {}: no {} there (build the earlier checkout with `cargo {}` and \
             `cargo {}`, each with --target-dir, and pass its target/release)",
            abs.display(),
            missing.join(", "),
            BUILDS[0].join(" "),
            BUILDS[1].join(" "),
        )
        .into());
    }
    Ok(abs)
}

/// Starts and stops every baseline server once, so a baseline that cannot
/// serve (an adapter-async-std built without smol exits at once) stops the
/// report before it starts instead of failing every run.
fn check_baseline_starts(tools: &Tools) -> Result<()> {
    for s in Server::ADAPTERS.into_iter().filter_map(Server::baseline) {
        let running = servers::start(tools, s, Transport::Tcp, None, 0).map_err(|e| {
            let hint = if matches!(s, Server::SmolBaseline | Server::AsyncStdBaseline) {
                format!(
                    " (build the baseline's adapter-async-std with `cargo {}`)",
                    BUILDS[1].join(" ")
                )
            } else {
                String::new()
            };
            format!("the baseline {s} does not start: {e}{hint}")
        })?;
        running.stop();
    }
    Ok(())
}

fn measure_adapter(
    tools: &Tools,
    p: Point,
    server: Server,
    duration: u64,
    seq: usize,
) -> Result<Sample> {
    measure_adapter_with(tools, p, server, duration, seq, &[], &[])
}

/// One run of `server` at `p` on a fresh server (started with `serve`
/// plus `serve_extra`, loaded by `bench` plus `bench_extra`): req/s,
/// latency, and the server's CPU time per request.
pub fn measure_adapter_with(
    tools: &Tools,
    p: Point,
    server: Server,
    duration: u64,
    seq: usize,
    serve_extra: &[String],
    bench_extra: &[String],
) -> Result<Sample> {
    let running = servers::start_with(tools, server, p.transport, None, seq, serve_extra)?;
    let pid = running.proc.pid();
    let cpu0 = procfs::cpu_time_us(pid)?;
    let b = servers::bench_adapter_with(tools, p, &running.endpoint, duration, seq, bench_extra)
        .map_err(|e| {
            format!(
                "{e}; server log: {}",
                servers::log_tail(running.log.as_path())
            )
        })?;
    let cpu1 = procfs::cpu_time_us(pid)?;
    running.stop();
    Ok(Sample {
        rps: b.rps,
        p50_us: Some(b.p50_us),
        p99_us: Some(b.p99_us),
        cpu_us_per_req: (b.requests > 0).then(|| (cpu1 - cpu0) / b.requests as f64),
        requests: b.requests,
    })
}

/// Requests for a short first redis-benchmark run at `p`, to learn the
/// rate (redis-benchmark counts requests, not seconds).
fn calibration_requests(p: Point) -> u64 {
    let per_kib = u64::from(p.payload / 1024).max(1);
    let window = u64::from(p.conns) * u64::from(p.pipeline);
    (5_000 * u64::from(p.pipeline) / per_kib).max(window * 2)
}

/// Requests that take about `duration` seconds at `rate`.
fn requests_for(rate: f64, duration: u64, p: Point) -> u64 {
    let window = u64::from(p.conns) * u64::from(p.pipeline);
    ((rate * duration as f64).round() as u64).clamp((window * 4).max(1000), 200_000_000)
}

fn measure_redis(
    tools: &Tools,
    p: Point,
    duration: u64,
    rates: &mut HashMap<Point, f64>,
    seq: usize,
) -> Result<Sample> {
    let running = servers::start(tools, Server::Redis, p.transport, None, seq)?;
    let pid = running.proc.pid();
    let rate = match rates.get(&p) {
        Some(r) => *r,
        None => {
            servers::bench_redis(tools, p, &running.endpoint, calibration_requests(p), seq)?.rps
        }
    };
    let n = requests_for(rate, duration, p);
    let cpu0 = procfs::cpu_time_us(pid)?;
    let out = servers::bench_redis(tools, p, &running.endpoint, n, seq)?;
    let cpu1 = procfs::cpu_time_us(pid)?;
    running.stop();
    rates.insert(p, out.rps);
    Ok(Sample {
        rps: out.rps,
        p50_us: out.p50_us,
        p99_us: out.p99_us,
        cpu_us_per_req: Some((cpu1 - cpu0) / n as f64),
        requests: n,
    })
}

/// Draws the TCP 32 B charts into `out` (removing the charts of an
/// earlier report first); returns (title, file name) for the markdown.
fn write_charts(out: &Path, results: &Results) -> Result<Vec<(String, String)>> {
    std::fs::create_dir_all(out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let old = std::fs::read_dir(out).map_err(|e| format!("listing {}: {e}", out.display()))?;
    for entry in old.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("bench-") && name.ends_with(".svg") {
            std::fs::remove_file(entry.path())
                .map_err(|e| format!("removing old chart {}: {e}", entry.path().display()))?;
        }
    }
    let mut written = Vec::new();
    let depths = charts::pipelines(results, Transport::Tcp, SMALL);
    for &d in &depths {
        let lines = charts::lines(results, Transport::Tcp, SMALL, d, false);
        let title = format!("Requests/s vs connections, TCP, 32 B payload, pipeline {d}");
        let file = format!("bench-tcp-rps-pipeline-{d}.svg");
        charts::draw_rps(&out.join(&file), &title, &lines)?;
        written.push((title, file));
    }
    if !depths.is_empty() {
        let panels: Vec<(u32, Vec<charts::Line>)> = depths
            .iter()
            .map(|&d| (d, charts::lines(results, Transport::Tcp, SMALL, d, true)))
            .collect();
        let title = "p99 latency vs connections, TCP, 32 B payload".to_string();
        let file = "bench-tcp-p99.svg".to_string();
        charts::draw_p99(&out.join(&file), &title, &panels)?;
        written.push((title, file));
    }
    Ok(written)
}

/// The exact commands, with placeholders for what varies by point.
fn commands(tools: &Tools, duration: u64) -> Vec<String> {
    let rel = |p: &Path| -> String {
        p.strip_prefix(&tools.workspace)
            .unwrap_or(p)
            .display()
            .to_string()
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut c = vec![
        format!("cargo xtask {}", args.join(" ")),
        format!("cargo {}", BUILDS[0].join(" ")),
        format!("cargo {}", BUILDS[1].join(" ")),
        "# servers (--unix PATH instead of --addr for Unix-socket points):".to_string(),
    ];
    for s in Server::ADAPTERS {
        let env = servers::runtime_env(s)
            .map(|r| format!("ADAPTER_RUNTIME={r} "))
            .unwrap_or_default();
        c.push(format!(
            "{env}{} serve --addr 127.0.0.1:PORT --log-level warn",
            rel(&tools.adapter_bin(s))
        ));
    }
    if tools.baseline_dir.is_some() {
        c.push("# baseline servers, the same way from --baseline DIR:".into());
        for s in Server::ADAPTERS.into_iter().filter_map(Server::baseline) {
            let env = servers::runtime_env(s)
                .map(|r| format!("ADAPTER_RUNTIME={r} "))
                .unwrap_or_default();
            c.push(format!(
                "{env}{} serve --addr 127.0.0.1:PORT --log-level warn",
                tools.adapter_bin(s).display()
            ));
        }
    }
    if tools.redis.is_some() {
        c.push(
            "redis-server --port PORT --bind 127.0.0.1 --save \"\" --appendonly no --daemonize no"
                .into(),
        );
    }
    c.push("# load (--unix PATH for Unix-socket points):".into());
    c.push(format!(
        "{} bench --addr 127.0.0.1:PORT --conns C --pipeline P --duration {duration}s --payload 32 --json",
        rel(&tools.bench_bin())
    ));
    if tools.redis.is_some() {
        c.push(format!(
            "redis-benchmark -p PORT -c C -P P -n N --csv -t ping_inline   # N = rate x {duration} s; \
             -t set -d BYTES above 32 B; -s PATH for Unix"
        ));
    }
    c.push(format!(
        "# memory: every {}server with --max-connections 11000 (redis: --maxclients 11000)",
        if tools.baseline_dir.is_some() {
            "current-build "
        } else {
            ""
        }
    ));
    c
}

fn notes(fd_limit: u64, counts: &[usize]) -> Vec<String> {
    let mut n = Vec::new();
    if let Some(&max) = counts.iter().max()
        && !memory::fits(max, fd_limit)
    {
        n.push(format!(
            "The open-file limit ({fd_limit}) does not allow {max} idle connections: \
             that memory step is skipped."
        ));
    }
    n
}

/// Builds the adapters' release binaries (unless `no_build`) and checks
/// they are there: the workspace root and the binaries' directory.
pub fn built_binaries(no_build: bool) -> Result<(PathBuf, PathBuf)> {
    let workspace = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    if no_build {
        eprintln!("xtask: --no-build: using the binaries already built");
    } else {
        build(&cargo, &workspace)?;
    }
    let bin_dir = target_dir(&cargo, &workspace)?.join("release");
    for bin in BINARIES {
        let p = bin_dir.join(bin);
        if !p.is_file() {
            return Err(format!(
                "{} not found (did `cargo build --release -p {bin}` succeed?)",
                p.display()
            )
            .into());
        }
    }
    Ok((workspace, bin_dir))
}

/// The workspace root: two directories above this crate.
fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().nth(2).unwrap_or(here).to_path_buf()
}

fn build(cargo: &OsString, workspace: &Path) -> Result<()> {
    for args in BUILDS {
        let line = format!("cargo {}", args.join(" "));
        eprintln!("xtask: {line}");
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace).args(args);
        let proc = Spawn::new("cargo build").spawn(cmd)?;
        let done = proc.wait_output(Duration::from_secs(3600))?;
        if !done.status.success() {
            return Err(format!("`{line}` failed ({})", done.status).into());
        }
    }
    Ok(())
}
/// The target directory cargo uses (CARGO_TARGET_DIR, config, or
/// `<workspace>/target`), from `cargo metadata`.
fn target_dir(cargo: &OsString, workspace: &Path) -> Result<PathBuf> {
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["metadata", "--format-version", "1", "--no-deps"]);
    let out = capture(&mut cmd, "cargo metadata")?;
    let v: serde_json::Value = serde_json::from_str(&out)
        .map_err(|e| format!("cargo metadata printed invalid JSON: {e}"))?;
    v.get("target_directory")
        .and_then(|t| t.as_str())
        .map(PathBuf::from)
        .ok_or_else(|| "cargo metadata has no target_directory".into())
}

/// Runs a short command (tracked like every child) and returns its stdout.
fn capture(cmd: &mut Command, what: &str) -> Result<String> {
    let mut c = Command::new(cmd.get_program());
    c.args(cmd.get_args());
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    let proc = Spawn::new(what)
        .stdout(Sink::Capture)
        .grace(Duration::from_secs(2))
        .spawn(c)?;
    let done = proc.wait_output(Duration::from_secs(120))?;
    if !done.status.success() {
        return Err(format!("{what} failed ({})", done.status).into());
    }
    Ok(done.stdout)
}

pub fn git_commit(workspace: &Path) -> String {
    let mut head = Command::new("git");
    head.current_dir(workspace)
        .args(["rev-parse", "--short=12", "HEAD"]);
    let Ok(hash) = capture(&mut head, "git rev-parse") else {
        return "unknown".into();
    };
    let mut status = Command::new("git");
    status
        .current_dir(workspace)
        .args(["status", "--porcelain", "--untracked-files=no"]);
    let dirty = capture(&mut status, "git status").is_ok_and(|s| !s.trim().is_empty());
    format!(
        "{}{}",
        hash.trim(),
        if dirty { " + uncommitted changes" } else { "" }
    )
}

/// `7.0.15` from `Redis server v=7.0.15 sha=...`.
fn parse_redis_version(out: &str) -> Option<String> {
    out.split_whitespace()
        .find_map(|w| w.strip_prefix("v="))
        .map(|v| format!("redis-server {v}"))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| {
                p.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_grid_has_every_point_once() {
        let g = grid(false);
        assert_eq!(g.len(), 5 * 4 + 2 + 4);
        let mut d = g.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), g.len());
        assert!(g.contains(&point(Transport::Tcp, 65536, 50, 16)));
        assert!(g.contains(&point(Transport::Unix, 32, 1, 1)));
    }

    #[test]
    fn quick_grid_holds_the_reference_points() {
        let g = grid(true);
        for (c, p) in [(1, 1), (50, 1), (50, 16), (1, 64)] {
            assert!(g.contains(&point(Transport::Tcp, 32, c, p)));
        }
    }

    #[test]
    fn baseline_twins_run_right_after_their_adapter() {
        assert_eq!(bench_servers(false), Server::ADAPTERS.to_vec());
        assert_eq!(
            bench_servers(true),
            vec![
                Server::Tokio,
                Server::TokioBaseline,
                Server::Std,
                Server::StdBaseline,
                Server::AsyncStd,
                Server::AsyncStdBaseline,
                Server::Smol,
                Server::SmolBaseline,
            ]
        );
    }

    #[test]
    fn baseline_dir_must_hold_the_three_binaries() {
        let tmp = harness::TempDir::new("xtask-baseline-test").unwrap();
        let dir = tmp.path().to_owned();
        std::fs::write(dir.join("adapter-tokio"), "").unwrap();
        let e = baseline_dir(&dir).unwrap_err().to_string();
        assert!(e.contains("no adapter-std, adapter-async-std there"), "{e}");
        assert!(e.contains("--features async-std,smol"), "{e}");
        for b in BINARIES {
            std::fs::write(dir.join(b), "").unwrap();
        }
        assert_eq!(baseline_dir(&dir).unwrap(), dir.canonicalize().unwrap());
        drop(tmp);
        assert!(baseline_dir(&dir).is_err());
    }

    #[test]
    fn redis_requests_scale_with_rate() {
        let p = point(Transport::Tcp, 32, 50, 16);
        assert_eq!(requests_for(100_000.0, 3, p), 300_000);
        assert_eq!(requests_for(10.0, 3, p), 3200);
        assert_eq!(calibration_requests(p), 80_000);
        assert_eq!(
            calibration_requests(point(Transport::Tcp, 65536, 50, 16)),
            1600
        );
    }

    #[test]
    fn redis_version_is_read() {
        assert_eq!(
            parse_redis_version("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0")
                .as_deref(),
            Some("redis-server 7.0.15")
        );
    }
}
