//! Rendering docs/benchmarks.md from the results (pure: no IO here).

use std::fmt::Write as _;

use crate::model::{MemoryResult, Point, Results, Server, Transport, fmt_bytes};

/// Everything about the run that is not a measurement.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub date: String,
    pub commit: String,
    pub cpu_model: String,
    pub cores: usize,
    pub kernel: String,
    pub rustc: String,
    /// `None`: redis-server was not on PATH.
    pub redis_version: Option<String>,
    pub quick: bool,
    pub runs: usize,
    pub duration_secs: u64,
    /// The xtask command line, then the build, server and client commands.
    pub commands: Vec<String>,
    /// (title, file name next to benchmarks.md).
    pub charts: Vec<(String, String)>,
    pub notes: Vec<String>,
    /// How long the whole report took.
    pub wall_secs: u64,
    /// `--baseline DIR`, as given (canonicalized): the earlier build the
    /// `(baseline)` servers ran from.
    pub baseline: Option<String>,
}

/// The CPU target: an adapter's server CPU per request at most this
/// multiple of Redis's in the same run.
pub const CPU_TARGET: f64 = 0.6;

/// A point is flagged when the current build serves fewer than this
/// fraction of the baseline's req/s ...
pub const SLOWER_RPS: f64 = 0.95;
/// ... or spends more than this multiple of its server CPU per request.
pub const SLOWER_CPU: f64 = 1.05;

/// One adapter at one point against its baseline twin.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineRow {
    pub point: Point,
    /// The current adapter (its twin is `server.baseline()`).
    pub server: Server,
    /// Median req/s of the current build and of the baseline.
    pub rps: Option<f64>,
    pub base_rps: Option<f64>,
    /// current / baseline req/s, the median of the run-by-run ratios.
    pub rps_ratio: Option<f64>,
    /// Median server CPU µs/req of the current build and of the baseline.
    pub cpu: Option<f64>,
    pub base_cpu: Option<f64>,
    /// current / baseline CPU per request, run by run like `rps_ratio`.
    pub cpu_ratio: Option<f64>,
}

/// How one [`BaselineRow`] compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within 5% on both req/s and CPU per request.
    Ok,
    /// More than 5% slower: fewer req/s, more CPU per request, or both.
    Slower { rps: bool, cpu: bool },
    /// No run where both builds succeeded (on req/s or CPU), and nothing
    /// flagged on what there is.
    NoData,
}

impl BaselineRow {
    pub fn verdict(&self) -> Verdict {
        let rps = self.rps_ratio.is_some_and(|r| r < SLOWER_RPS);
        let cpu = self.cpu_ratio.is_some_and(|r| r > SLOWER_CPU);
        if rps || cpu {
            Verdict::Slower { rps, cpu }
        } else if self.rps_ratio.is_none() || self.cpu_ratio.is_none() {
            Verdict::NoData
        } else {
            Verdict::Ok
        }
    }
}

impl Verdict {
    fn text(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Slower {
                rps: true,
                cpu: true,
            } => "SLOWER (req/s and CPU)",
            Verdict::Slower { rps: true, .. } => "SLOWER (req/s)",
            Verdict::Slower { .. } => "SLOWER (CPU/req)",
            Verdict::NoData => "no paired run",
        }
    }
}

/// Every (point, adapter) whose baseline twin was measured, in table
/// order.
pub fn baseline_rows(results: &Results) -> Vec<BaselineRow> {
    let mut rows = Vec::new();
    for p in results.points() {
        for s in results.servers_at(p) {
            let Some(b) = s.baseline() else { continue };
            if !results.samples.contains_key(&(p, b)) {
                continue;
            }
            let now = results.summary(p, s);
            let base = results.summary(p, b);
            rows.push(BaselineRow {
                point: p,
                server: s,
                rps: now.as_ref().map(|x| x.rps.median),
                base_rps: base.as_ref().map(|x| x.rps.median),
                rps_ratio: results.ratio(p, s, b),
                cpu: now.and_then(|x| x.cpu_us_per_req),
                base_cpu: base.and_then(|x| x.cpu_us_per_req),
                cpu_ratio: results.cpu_ratio(p, s, b),
            });
        }
    }
    rows
}

/// The one-sentence outcome of the comparison.
fn baseline_outcome(rows: &[BaselineRow]) -> String {
    let slower = rows
        .iter()
        .filter(|r| matches!(r.verdict(), Verdict::Slower { .. }))
        .count();
    let missing = rows
        .iter()
        .filter(|r| r.verdict() == Verdict::NoData)
        .count();
    let mut o = if slower == 0 {
        format!(
            "No point is more than 5% slower than the baseline ({} point × adapter pairs)",
            rows.len()
        )
    } else {
        format!(
            "{slower} of {} point × adapter pairs more than 5% slower than the baseline",
            rows.len()
        )
    };
    if missing > 0 {
        let _ = write!(o, "; {missing} without a run where both builds succeeded");
    }
    o.push('.');
    o
}

/// The comparison as plain text, for stderr at the end of the run;
/// `None` without baseline servers.
pub fn baseline_text(results: &Results) -> Option<String> {
    let rows = baseline_rows(results);
    if rows.is_empty() {
        return None;
    }
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Against the baseline (current / baseline, median of {} run-by-run ratio(s); \
         flagged: req/s < {SLOWER_RPS} or CPU/req > {SLOWER_CPU}):",
        results.runs
    );
    let _ = writeln!(
        t,
        "  {:<22} {:<13} {:>10} {:>10} {:>7} {:>8} {:>8} {:>7}  verdict",
        "point", "adapter", "req/s", "baseline", "ratio", "CPU µs", "baseline", "ratio"
    );
    for r in &rows {
        let _ = writeln!(
            t,
            "  {:<22} {:<13} {:>10} {:>10} {:>7} {:>8} {:>8} {:>7}  {}",
            r.point.to_string(),
            r.server,
            opt(r.rps, fmt_rps),
            opt(r.base_rps, fmt_rps),
            opt(r.rps_ratio, |x| format!("{x:.3}")),
            opt(r.cpu, |c| format!("{c:.2}")),
            opt(r.base_cpu, |c| format!("{c:.2}")),
            opt(r.cpu_ratio, |x| format!("{x:.3}")),
            r.verdict().text()
        );
    }
    let _ = writeln!(t, "{}", baseline_outcome(&rows));
    Some(t)
}

/// "Against the baseline": per point and adapter, current / baseline for
/// req/s and for server CPU per request, with the points that are more
/// than 5% slower flagged.
fn render_baseline(w: &mut String, meta: &Meta, results: &Results) {
    let rows = baseline_rows(results);
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        w,
        "## Against the baseline
"
    );
    let _ = writeln!(
        w,
        "Each adapter of this build against the same adapter built earlier (`{}`), \
         measured in the same runs at the same points with the same load generator (this \
         build's `adapter-tokio bench`). Ratios are current / baseline: the median over {} \
         run(s) of the ratio taken within each run (the two servers measured back to back). \
         A pair is flagged **SLOWER** when the current build serves fewer than {SLOWER_RPS}× \
         the baseline's req/s or spends more than {SLOWER_CPU}× its server CPU per request.\n",
        meta.baseline.as_deref().unwrap_or("--baseline"),
        results.runs
    );
    let _ = writeln!(w, "**{}**\n", baseline_outcome(&rows));
    let _ = writeln!(
        w,
        "| point | adapter | req/s | req/s baseline | req/s ratio | CPU µs/req | CPU baseline | CPU ratio | verdict |"
    );
    let _ = writeln!(w, "|---|---|---:|---:|---:|---:|---:|---:|---|");
    for r in &rows {
        let v = r.verdict();
        let bold = |x: String, on: bool| if on { format!("**{x}**") } else { x };
        let (slow_rps, slow_cpu) = match v {
            Verdict::Slower { rps, cpu } => (rps, cpu),
            _ => (false, false),
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.point,
            r.server,
            opt(r.rps, fmt_rps),
            opt(r.base_rps, fmt_rps),
            bold(opt(r.rps_ratio, |x| format!("{x:.3}")), slow_rps),
            opt(r.cpu, |c| format!("{c:.2}")),
            opt(r.base_cpu, |c| format!("{c:.2}")),
            bold(opt(r.cpu_ratio, |x| format!("{x:.3}")), slow_cpu),
            bold(v.text().to_string(), matches!(v, Verdict::Slower { .. })),
        );
    }
    let _ = writeln!(w);
}

/// The markdown document.
pub fn render(meta: &Meta, results: &Results, memory: &[MemoryResult]) -> String {
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# Benchmarks\n");
    let _ = writeln!(
        w,
        "Generated by `{}` on {} in {} (commit `{}`). Regenerate with the same command; \
         every figure below comes from that one run.\n",
        meta.commands
            .first()
            .map(String::as_str)
            .unwrap_or("cargo xtask bench-report"),
        meta.date,
        fmt_duration(meta.wall_secs),
        meta.commit
    );
    if meta.quick {
        let _ = writeln!(
            w,
            "> **Quick run** (`--quick`): a few points, {} run of {} s each, memory at 1 and \
             1000 connections only. The full grid is `cargo xtask bench-report`.\n",
            meta.runs, meta.duration_secs
        );
    }

    render_headline(w, results);
    render_baseline(w, meta, results);

    let _ = writeln!(w, "## Machine\n");
    let _ = writeln!(w, "| | |\n|---|---|");
    let _ = writeln!(w, "| CPU | {} ({} cores) |", meta.cpu_model, meta.cores);
    let _ = writeln!(w, "| kernel | Linux {} |", meta.kernel);
    let _ = writeln!(w, "| rustc | {} |", meta.rustc);
    let _ = writeln!(
        w,
        "| Redis | {} |",
        meta.redis_version
            .as_deref()
            .unwrap_or("not installed: no `redis-server` on PATH, so no Redis columns")
    );
    let _ = writeln!(w, "| commit | `{}` |", meta.commit);
    if let Some(b) = &meta.baseline {
        let _ = writeln!(w, "| baseline binaries | `{b}` |");
    }
    let _ = writeln!(w, "| date | {} |\n", meta.date);

    let _ = writeln!(w, "## How it was measured\n");
    let _ = writeln!(
        w,
        "- The load generator and the server share the machine's cores, as they would on one \
         host; neither is pinned. The machine may be shared and noisy: compare the ratios \
         (taken run by run) more than the absolute figures.\n\
         - For every point and every run, each server is started fresh on a free port, waited \
         for until it accepts, loaded for {} s, and stopped by PID (SIGTERM, SIGKILL after a \
         deadline). Servers are interleaved (A B C ... A B C ...) over {} run(s); tables show \
         the median and the spread [min..max].\n\
         - Adapters are loaded by `adapter-tokio bench` (every ack checked); Redis by \
         `redis-benchmark` with the same connections and pipeline depth: `PING_INLINE` at \
         32 B, `SET -d <payload>` (a request carrying the payload, a 5-byte reply) at larger \
         payloads.\n\
         - Latency: p50 and p99 of the time from sending a request to reading its ack, as \
         the client reports it (pipelined requests wait behind the ones before them).\n\
         - Server CPU: utime + stime of the server process (all threads) from \
         `/proc/PID/stat` before and after the load, divided by the requests served.\n\
         - × Redis and × adapter-tokio: req/s ratio, the median of the ratios taken within \
         each run.",
        meta.duration_secs, meta.runs
    );
    if let Some(b) = &meta.baseline {
        let _ = writeln!(
            w,
            "- `(baseline)` servers: the same adapters run from `{b}` (an earlier build), \
             started, loaded and stopped like the others and interleaved with them in every \
             run, each right after its current twin; the load generator is this build's. \
             Memory is measured for the current build only."
        );
    }
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "Commands (`PORT`, `PATH`, `C`, `P`, `N` vary by point):\n"
    );
    let _ = writeln!(w, "```sh");
    for c in &meta.commands {
        let _ = writeln!(w, "{c}");
    }
    let _ = writeln!(w, "```\n");
    for n in &meta.notes {
        let _ = writeln!(w, "> {n}\n");
    }

    if !meta.charts.is_empty() {
        let _ = writeln!(w, "## Charts\n");
        for (title, file) in &meta.charts {
            let _ = writeln!(w, "![{title}]({file})\n");
        }
    }

    for (transport, payload) in groups(results) {
        let points: Vec<Point> = results
            .points()
            .into_iter()
            .filter(|p| p.transport == transport && p.payload == payload)
            .collect();
        let _ = writeln!(w, "## {transport}, {} payload\n", fmt_bytes(payload));
        render_summary(w, results, &points);
        render_detail(w, results, &points);
    }

    render_memory(w, memory);

    if !results.failures.is_empty() {
        let _ = writeln!(w, "## Failed runs\n");
        for f in &results.failures {
            let _ = writeln!(w, "- {}", one_line(f));
        }
        let _ = writeln!(w);
    }
    md
}

/// (transport, payload) groups in table order: TCP before Unix, small
/// payloads first.
fn groups(results: &Results) -> Vec<(Transport, u32)> {
    let mut g: Vec<(Transport, u32)> = results
        .points()
        .iter()
        .map(|p| (p.transport, p.payload))
        .collect();
    g.sort();
    g.dedup();
    g
}

fn servers_in(results: &Results, points: &[Point]) -> Vec<Server> {
    let mut s: Vec<Server> = points.iter().flat_map(|p| results.servers_at(*p)).collect();
    s.sort();
    s.dedup();
    s
}

/// The reference points of issue 4 (TCP, 32 B): req/s and its ratio to
/// Redis per server, and server CPU per request at 50 × 16.
fn render_headline(w: &mut String, results: &Results) {
    let points: Vec<Point> = [(1, 1), (50, 1), (50, 16), (1, 64)]
        .into_iter()
        .map(|(conns, pipeline)| Point {
            transport: Transport::Tcp,
            payload: 32,
            pipeline,
            conns,
        })
        .filter(|p| results.samples.keys().any(|(q, _)| q == p))
        .collect();
    if points.is_empty() {
        return;
    }
    let servers = servers_in(results, &points);
    let has_redis = servers.contains(&Server::Redis);
    let _ = writeln!(w, "## Summary\n");
    let _ = writeln!(
        w,
        "TCP, 32 B payload: requests/s, median of {} run(s){}.\n",
        results.runs,
        if has_redis {
            ", and in parentheses the ratio to Redis taken run by run"
        } else {
            ""
        }
    );
    let _ = write!(w, "| conns × pipeline |");
    for s in &servers {
        let _ = write!(w, " {s} |");
    }
    let _ = write!(w, "\n|---|");
    for _ in &servers {
        let _ = write!(w, "---:|");
    }
    let _ = writeln!(w);
    for p in &points {
        let _ = write!(w, "| {} × {} |", p.conns, p.pipeline);
        for s in &servers {
            let cell = match results.summary(*p, *s) {
                None => "–".to_string(),
                Some(sum) => match results.ratio(*p, *s, Server::Redis) {
                    Some(r) if has_redis && *s != Server::Redis => {
                        format!("{} ({r:.2}×)", fmt_rps(sum.rps.median))
                    }
                    _ => fmt_rps(sum.rps.median),
                },
            };
            let _ = write!(w, " {cell} |");
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w);
    render_cpu_headline(w, results, &points, &servers, has_redis);
}

/// Server CPU per request at the headline points, one column per server,
/// with each adapter's ratio to Redis's (run by run) and the target.
fn render_cpu_headline(
    w: &mut String,
    results: &Results,
    points: &[Point],
    servers: &[Server],
    has_redis: bool,
) {
    let _ = writeln!(
        w,
        "Server CPU µs per request (utime + stime of the server process over the requests it \
         served), median of {} run(s){}.\n",
        results.runs,
        if has_redis {
            format!(
                ", and in parentheses the ratio to Redis's taken run by run (target ≤ \
                 {CPU_TARGET:.2}×; above it in bold)"
            )
        } else {
            String::new()
        }
    );
    let _ = write!(w, "| conns × pipeline |");
    for s in servers {
        let _ = write!(w, " {s} |");
    }
    let _ = write!(w, "\n|---|");
    for _ in servers {
        let _ = write!(w, "---:|");
    }
    let _ = writeln!(w);
    for p in points {
        let _ = write!(w, "| {} × {} |", p.conns, p.pipeline);
        for s in servers {
            let cpu = results.summary(*p, *s).and_then(|x| x.cpu_us_per_req);
            let cell = match (cpu, results.cpu_ratio(*p, *s, Server::Redis)) {
                (None, _) => "–".to_string(),
                (Some(c), Some(r)) if has_redis && *s != Server::Redis => {
                    let ratio = format!("{r:.2}×");
                    let ratio = if r > CPU_TARGET {
                        format!("**{ratio}**")
                    } else {
                        ratio
                    };
                    format!("{c:.2} ({ratio})")
                }
                (Some(c), _) => format!("{c:.2}"),
            };
            let _ = write!(w, " {cell} |");
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w);
}

/// Median req/s, one row per point, one column per server.
fn render_summary(w: &mut String, results: &Results, points: &[Point]) {
    let servers = servers_in(results, points);
    let _ = writeln!(
        w,
        "Requests per second, median of {} run(s):\n",
        results.runs
    );
    let _ = write!(w, "| conns × pipeline |");
    for s in &servers {
        let _ = write!(w, " {s} |");
    }
    let _ = write!(w, "\n|---|");
    for _ in &servers {
        let _ = write!(w, "---:|");
    }
    let _ = writeln!(w);
    for p in points {
        let _ = write!(w, "| {} × {} |", p.conns, p.pipeline);
        for s in &servers {
            let cell = match results.summary(*p, *s) {
                Some(sum) => fmt_rps(sum.rps.median),
                None if results.samples.contains_key(&(*p, *s)) => "failed".into(),
                None => "–".into(),
            };
            let _ = write!(w, " {cell} |");
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w);
}

/// Every figure, one row per point and server.
fn render_detail(w: &mut String, results: &Results, points: &[Point]) {
    let _ = writeln!(
        w,
        "| conns | pipeline | server | req/s median [min..max] | p50 | p99 | server CPU µs/req | CPU × Redis | × Redis | × adapter-tokio |"
    );
    let _ = writeln!(w, "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|");
    for p in points {
        for s in results.servers_at(*p) {
            let _ = write!(w, "| {} | {} | {s} |", p.conns, p.pipeline);
            match results.summary(*p, s) {
                None => {
                    let _ = writeln!(w, " failed | | | | | | |");
                }
                Some(sum) => {
                    let ratio = |other: Server| -> String {
                        if other == s {
                            return "1".into();
                        }
                        results
                            .ratio(*p, s, other)
                            .map(|r| format!("{r:.2}"))
                            .unwrap_or_else(|| "–".into())
                    };
                    let cpu_vs_redis = if s == Server::Redis {
                        "1".into()
                    } else {
                        opt(results.cpu_ratio(*p, s, Server::Redis), |r| {
                            format!("{r:.2}")
                        })
                    };
                    let _ = writeln!(
                        w,
                        " {} [{}..{}] | {} | {} | {} | {} | {} | {} |",
                        fmt_rps(sum.rps.median),
                        fmt_rps(sum.rps.min),
                        fmt_rps(sum.rps.max),
                        opt(sum.p50_us, fmt_us),
                        opt(sum.p99_us, fmt_us),
                        opt(sum.cpu_us_per_req, |c| format!("{c:.2}")),
                        cpu_vs_redis,
                        ratio(Server::Redis),
                        ratio(Server::Tokio),
                    );
                }
            }
        }
    }
    let _ = writeln!(w);
}

fn render_memory(w: &mut String, memory: &[MemoryResult]) {
    if memory.is_empty() {
        return;
    }
    let _ = writeln!(w, "## Memory per idle connection\n");
    let mut counts: Vec<usize> = memory
        .iter()
        .flat_map(|m| m.steps.iter().map(|(n, _)| *n))
        .collect();
    counts.sort();
    counts.dedup();
    let list: Vec<String> = counts.iter().map(|n| n.to_string()).collect();
    let _ = writeln!(
        w,
        "VmRSS of the server (`/proc/PID/status`) after it started, then with {} idle TCP \
         connections open (opened by the xtask process, which sends nothing; each step waits \
         until the server holds them all). KiB/conn is the growth over the start figure \
         divided by the connections; RSS moves in 4 KiB pages, so the 1-connection figure is \
         noise. VmRSS counts the process's own pages, not the kernel's socket buffers. Every server runs with `--max-connections 11000` (Redis: `--maxclients \
         11000`). adapter-std spawns a thread per connection, so its figure includes each \
         thread's resident stack pages.\n",
        list.join(", ")
    );
    let _ = write!(w, "| server | RSS at start |");
    for n in &counts {
        let _ = write!(w, " RSS, {n} conn |");
    }
    for n in &counts {
        let _ = write!(w, " KiB/conn at {n} |");
    }
    let _ = write!(w, "\n|---|---:|");
    for _ in 0..counts.len() * 2 {
        let _ = write!(w, "---:|");
    }
    let _ = writeln!(w);
    for m in memory {
        let _ = write!(w, "| {} | {} |", m.server, fmt_kib(m.baseline_kib));
        for n in &counts {
            let rss = m.steps.iter().find(|(k, _)| k == n).and_then(|(_, r)| *r);
            let _ = write!(w, " {} |", opt(rss, fmt_kib));
        }
        for n in &counts {
            let _ = write!(w, " {} |", opt(m.kib_per_conn(*n), |k| format!("{k:.2}")));
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w);
    for m in memory {
        for n in &m.notes {
            let _ = writeln!(w, "- {}: {}", m.server, one_line(n));
        }
    }
    let _ = writeln!(w);
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "–".into())
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ").replace('|', "\\|")
}

/// `1.23 M`, `456.7 k`, `850`.
pub fn fmt_rps(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

/// `7 µs`, `8.5 µs`, `1.23 ms`.
pub fn fmt_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else if us < 10.0 {
        format!("{us:.1} µs")
    } else {
        format!("{us:.0} µs")
    }
}

/// `812 KiB`, `12.3 MiB`.
pub fn fmt_kib(k: u64) -> String {
    if k >= 10 * 1024 {
        format!("{:.1} MiB", k as f64 / 1024.0)
    } else {
        format!("{k} KiB")
    }
}

/// `1h02m`, `3m05s`, `42s`.
pub fn fmt_duration(secs: u64) -> String {
    match secs {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// `YYYY-MM-DD HH:MM UTC` for seconds since the Unix epoch.
pub fn fmt_utc(epoch_secs: u64) -> String {
    let days = (epoch_secs / 86_400) as i64;
    let rem = epoch_secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Sample;

    fn point(conns: u32, pipeline: u32) -> Point {
        Point {
            transport: Transport::Tcp,
            payload: 32,
            pipeline,
            conns,
        }
    }

    fn sample(rps: f64) -> Option<Sample> {
        Some(Sample {
            rps,
            p50_us: Some(12.0),
            p99_us: Some(1500.0),
            cpu_us_per_req: Some(0.8),
            requests: 1000,
        })
    }

    fn meta() -> Meta {
        Meta {
            date: "2025-01-02 03:04 UTC".into(),
            commit: "abc1234".into(),
            cpu_model: "Test CPU".into(),
            cores: 2,
            kernel: "6.1.0".into(),
            rustc: "rustc 1.88.0".into(),
            redis_version: Some("7.0.15".into()),
            quick: true,
            runs: 1,
            duration_secs: 3,
            commands: vec!["cargo xtask bench-report --quick".into()],
            charts: vec![("req/s, pipeline 1".into(), "bench-p1.svg".into())],
            notes: vec![],
            wall_secs: 95,
            baseline: None,
        }
    }

    #[test]
    fn tables_show_median_spread_and_ratios() {
        let mut r = Results::new(2);
        r.record(point(1, 1), Server::Tokio, 0, sample(200_000.0));
        r.record(point(1, 1), Server::Tokio, 1, sample(100_000.0));
        r.record(point(1, 1), Server::Redis, 0, sample(100_000.0));
        r.record(point(1, 1), Server::Redis, 1, sample(100_000.0));
        r.record(point(1, 1), Server::Std, 0, None);
        r.record(point(1, 1), Server::Std, 1, None);
        r.failures
            .push("TCP 32 B 1x1 adapter-std run 1: refused | closed".into());
        let md = render(&meta(), &r, &[]);
        assert!(md.contains("| conns × pipeline | adapter-tokio | adapter-std | redis |"));
        assert!(
            md.contains("| 1 × 1 | 150.0 k | failed | 100.0 k |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| 1 | 1 | adapter-tokio | 150.0 k [100.0 k..200.0 k] | 12 µs | 1.50 ms | 0.80 | 1.00 | 1.50 | 1 |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| 1 | 1 | redis | 100.0 k [100.0 k..100.0 k] | 12 µs | 1.50 ms | 0.80 | 1 | 1 | 0.75 |"
            ),
            "{md}"
        );
        assert!(md.contains("| 1 | 1 | adapter-std | failed |"));
        assert!(md.contains("## Summary"));
        assert!(
            md.contains("| 1 × 1 | 150.0 k (1.50×) | – | 100.0 k |"),
            "{md}"
        );
        assert!(md.contains("- TCP 32 B 1x1 adapter-std run 1: refused \\| closed"));
        assert!(md.contains("![req/s, pipeline 1](bench-p1.svg)"));
        assert!(md.contains("**Quick run**"));
        assert!(md.contains("## TCP, 32 B payload"));
    }

    fn measured(rps: f64, cpu: f64) -> Option<Sample> {
        Some(Sample {
            rps,
            p50_us: Some(10.0),
            p99_us: Some(20.0),
            cpu_us_per_req: Some(cpu),
            requests: 1000,
        })
    }

    /// Two runs at two points: tokio 10% slower at 1x1 (req/s), smol 10%
    /// more CPU at 50x16, std within 5%, async-std's baseline failed.
    fn baseline_results() -> Results {
        let mut r = Results::new(2);
        for run in 0..2 {
            let k = 1.0 + run as f64;
            let p = point(1, 1);
            r.record(p, Server::Tokio, run, measured(90.0 * k, 1.0));
            r.record(p, Server::TokioBaseline, run, measured(100.0 * k, 1.0));
            r.record(p, Server::Std, run, measured(96.0 * k, 1.04));
            r.record(p, Server::StdBaseline, run, measured(100.0 * k, 1.0));
            r.record(p, Server::AsyncStd, run, measured(100.0, 1.0));
            r.record(p, Server::AsyncStdBaseline, run, None);
            r.record(p, Server::Redis, run, measured(100.0, 1.0));
            let q = point(50, 16);
            r.record(q, Server::Smol, run, measured(100.0, 1.1 * k));
            r.record(q, Server::SmolBaseline, run, measured(100.0, k));
            // No baseline twin measured here: no row.
            r.record(q, Server::Tokio, run, measured(100.0, 1.0));
        }
        r
    }

    #[test]
    fn baseline_rows_flag_points_more_than_5_percent_slower() {
        let rows = baseline_rows(&baseline_results());
        let got: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{}x{} {} {} {} {:?}",
                    r.point.conns,
                    r.point.pipeline,
                    r.server,
                    opt(r.rps_ratio, |x| format!("{x:.3}")),
                    opt(r.cpu_ratio, |x| format!("{x:.3}")),
                    r.verdict()
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                "1x1 adapter-tokio 0.900 1.000 Slower { rps: true, cpu: false }",
                "1x1 adapter-std 0.960 1.040 Ok",
                "1x1 async-std – – NoData",
                "50x16 smol 1.000 1.100 Slower { rps: false, cpu: true }",
            ]
        );
        assert_eq!(rows[0].rps, Some(135.0));
        assert_eq!(rows[0].base_rps, Some(150.0));
        assert_eq!(rows[2].base_rps, None);
    }

    #[test]
    fn the_threshold_itself_is_not_flagged() {
        let row = |rps_ratio, cpu_ratio| BaselineRow {
            point: point(1, 1),
            server: Server::Tokio,
            rps: None,
            base_rps: None,
            rps_ratio: Some(rps_ratio),
            cpu: None,
            base_cpu: None,
            cpu_ratio: Some(cpu_ratio),
        };
        assert_eq!(row(0.95, 1.05).verdict(), Verdict::Ok);
        assert_eq!(
            row(0.9499, 1.0501).verdict(),
            Verdict::Slower {
                rps: true,
                cpu: true
            }
        );
    }

    #[test]
    fn baseline_table_is_rendered_and_printed() {
        let r = baseline_results();
        let mut m = meta();
        m.baseline = Some("/base/release".into());
        let md = render(&m, &r, &[]);
        assert!(md.contains("## Against the baseline"), "{md}");
        assert!(md.contains("| baseline binaries | `/base/release` |"));
        assert!(
            md.contains("within each run.\n- `(baseline)` servers: the same adapters run from `/base/release`"),
            "{md}"
        );
        assert!(
            md.contains(
                "**2 of 4 point × adapter pairs more than 5% slower than the baseline; 1 without a \
             run where both builds succeeded.**"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| TCP 32 B 1x1 | adapter-tokio | 135 | 150 | **0.900** | 1.00 | 1.00 | 1.000 | **SLOWER (req/s)** |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| TCP 32 B 1x1 | adapter-std | 144 | 150 | 0.960 | 1.04 | 1.00 | 1.040 | ok |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| TCP 32 B 1x1 | async-std | 100 | – | – | 1.00 | – | – | no paired run |"
            ),
            "{md}"
        );
        assert!(md.contains("| TCP 32 B 50x16 | smol | 100 | 100 | 1.000 | 1.65 | 1.50 | **1.100** | **SLOWER (CPU/req)** |"), "{md}");
        // The twins are servers like the others in the point tables.
        assert!(
            md.contains("| 1 | 1 | adapter-tokio (baseline) | 150 [100..200] |"),
            "{md}"
        );
        let txt = baseline_text(&r).unwrap();
        assert!(
            txt.contains("SLOWER (req/s)") && txt.contains("2 of 4"),
            "{txt}"
        );
        assert_eq!(txt.lines().count(), 2 + 4 + 1, "{txt}");
        assert!(baseline_text(&Results::new(1)).is_none());
        assert!(!render(&meta(), &Results::new(1), &[]).contains("Against the baseline"));
    }

    #[test]
    fn cpu_per_request_is_shown_against_redis_with_the_target_marked() {
        let mut r = Results::new(2);
        for run in 0..2 {
            let k = 1.0 + run as f64;
            r.record(point(50, 16), Server::Redis, run, measured(100.0, 1.0 * k));
            // 0.5x Redis's CPU in both runs: within the target.
            r.record(point(50, 16), Server::Tokio, run, measured(100.0, 0.5 * k));
            // 0.8x: above it, in bold.
            r.record(point(50, 16), Server::Std, run, measured(100.0, 0.8 * k));
        }
        let md = render(&meta(), &r, &[]);
        assert!(md.contains("target ≤ 0.60×"), "{md}");
        assert!(
            md.contains("| 50 × 16 | 0.75 (0.50×) | 1.20 (**0.80×**) | 1.50 |"),
            "{md}"
        );
        assert!(
            md.contains("| 50 | 16 | adapter-std | 100 [100..100] | 10 µs | 20 µs | 1.20 | 0.80 | 1.00 | 1.00 |"),
            "{md}"
        );
    }

    #[test]
    fn no_slower_point_is_said() {
        let mut r = Results::new(1);
        r.record(point(1, 1), Server::Std, 0, measured(100.0, 1.0));
        r.record(point(1, 1), Server::StdBaseline, 0, measured(100.0, 1.0));
        let md = render(&meta(), &r, &[]);
        assert!(
            md.contains(
                "**No point is more than 5% slower than the baseline (1 point × adapter pairs).**"
            ),
            "{md}"
        );
    }

    #[test]
    fn groups_are_split_by_transport_and_payload() {
        let mut r = Results::new(1);
        let mut unix = point(50, 16);
        unix.transport = Transport::Unix;
        let mut big = point(50, 16);
        big.payload = 1024;
        r.record(unix, Server::Tokio, 0, sample(1.0));
        r.record(big, Server::Tokio, 0, sample(1.0));
        r.record(point(1, 1), Server::Tokio, 0, sample(1.0));
        let md = render(&meta(), &r, &[]);
        let tcp = md.find("## TCP, 32 B payload").unwrap();
        let kib = md.find("## TCP, 1 KiB payload").unwrap();
        let uds = md.find("## Unix socket, 32 B payload").unwrap();
        assert!(tcp < kib && kib < uds);
    }

    #[test]
    fn memory_table_has_rss_and_per_connection_columns() {
        let m = MemoryResult {
            server: Server::Tokio,
            baseline_kib: 2000,
            steps: vec![(1, Some(2004)), (1000, Some(3000))],
            notes: vec!["10000 skipped: fd limit 4096".into()],
        };
        let md = render(&meta(), &Results::new(1), &[m]);
        assert!(md.contains("| server | RSS at start | RSS, 1 conn | RSS, 1000 conn | KiB/conn at 1 | KiB/conn at 1000 |"), "{md}");
        assert!(
            md.contains("| adapter-tokio | 2000 KiB | 2004 KiB | 3000 KiB | 4.00 | 1.00 |"),
            "{md}"
        );
        assert!(md.contains("- adapter-tokio: 10000 skipped: fd limit 4096"));
    }

    #[test]
    fn missing_redis_is_said() {
        let mut m = meta();
        m.redis_version = None;
        assert!(render(&m, &Results::new(1), &[]).contains("not installed"));
    }

    #[test]
    fn number_formats() {
        assert_eq!(fmt_rps(1_234_567.0), "1.23 M");
        assert_eq!(fmt_rps(45_678.0), "45.7 k");
        assert_eq!(fmt_rps(850.4), "850");
        assert_eq!(fmt_us(8.46), "8.5 µs");
        assert_eq!(fmt_us(123.4), "123 µs");
        assert_eq!(fmt_us(1234.0), "1.23 ms");
        assert_eq!(fmt_kib(812), "812 KiB");
        assert_eq!(fmt_kib(12_595), "12.3 MiB");
        assert_eq!(fmt_duration(42), "42s");
        assert_eq!(fmt_duration(185), "3m05s");
        assert_eq!(fmt_duration(3720), "1h02m");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(fmt_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(fmt_utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(fmt_utc(1_735_787_040), "2025-01-02 03:04 UTC");
    }
}
