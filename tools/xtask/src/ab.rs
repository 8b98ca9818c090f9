//! Two server configurations of every adapter, back to back within each
//! run at each point, so that their ratio is taken within a run (the
//! machine's drift between runs cancels): TLS against plain TCP
//! (`tls-figures`), metrics on against off (`metrics-figures`).

use crate::bench_report::{self, Progress};
use crate::model::{Point, Sample, Server, Transport};
use crate::report::{fmt_rps, fmt_us};
use crate::servers::{self, Tools};
use crate::{Result, stats};

/// What every figure starts with: the stop-on-signal handler, the
/// release binaries (built unless `no_build`), and a temporary directory
/// for the servers' logs and sockets (removed when dropped).
pub fn setup(no_build: bool, name: &str) -> Result<(harness::TempDir, Tools)> {
    harness::install_signal_handler("xtask", servers::STOP_GRACE)?;
    let tmp = harness::TempDir::new(name)?;
    let (workspace, bin_dir) = bench_report::built_binaries(no_build)?;
    let tools = Tools {
        workspace,
        bin_dir,
        baseline_dir: None,
        tmp: tmp.path().to_owned(),
        redis: None,
    };
    Ok((tmp, tools))
}

/// One of the two configurations: its name, and the flags it adds to
/// `serve` and to `bench`.
pub struct Side<'a> {
    pub label: &'a str,
    pub serve: &'a [String],
    pub bench: &'a [String],
}

/// `[point][adapter][side]`: one sample (or a failure) per run.
pub type Pairs = Vec<Vec<[Vec<Option<Sample>>; 2]>>;

/// The load items [`measure`] will run.
pub fn items(runs: usize, points: &[(u32, u32)]) -> usize {
    runs * points.len() * Server::ADAPTERS.len() * 2
}

/// Every adapter at every point (`conns` x `pipeline`, 32 B over TCP),
/// `runs` times, each side once per run back to back (in turn first).
pub fn measure(
    tools: &Tools,
    points: &[(u32, u32)],
    sides: &[Side<'_>; 2],
    runs: usize,
    duration: u64,
    progress: &mut Progress,
    seq: &mut usize,
) -> Pairs {
    let adapters = Server::ADAPTERS;
    let mut out: Pairs = vec![vec![[Vec::new(), Vec::new()]; adapters.len()]; points.len()];
    for run in 0..runs {
        // ABBA: the second side goes first every other run, so neither
        // always follows the other (a drift within a pair cancels).
        let order: [usize; 2] = if run % 2 == 0 { [0, 1] } else { [1, 0] };
        for (pi, &(conns, pipeline)) in points.iter().enumerate() {
            let point = Point {
                transport: Transport::Tcp,
                payload: 32,
                conns,
                pipeline,
            };
            for (ai, &server) in adapters.iter().enumerate() {
                for si in order {
                    let side = &sides[si];
                    *seq += 1;
                    progress.begin(&format!("{server} {} {point}", side.label));
                    let r = bench_report::measure_adapter_with(
                        tools, point, server, duration, *seq, side.serve, side.bench,
                    );
                    out[pi][ai][si].push(report(&r, "req/s"));
                    progress.end((duration + 1) as f64);
                }
            }
        }
    }
    out
}

/// Prints a measurement's outcome on the progress line; the rate, or
/// `None` when it failed.
pub fn report(r: &Result<Sample>, unit: &str) -> Option<Sample> {
    match r {
        Ok(rate) => {
            let cpu = rate.cpu_us_per_req.map_or("?".into(), fmt_us);
            eprintln!("{} {unit}, server CPU {cpu} each", fmt_rps(rate.rps));
            Some(rate.clone())
        }
        Err(e) => {
            eprintln!("failed: {e}");
            None
        }
    }
}

/// The table of `pairs`: per point and adapter, each side's median req/s
/// and CPU per request, and the median within-run ratio of req/s and of
/// CPU per request (second side over first).
pub fn render(points: &[(u32, u32)], sides: &[Side<'_>; 2], pairs: &Pairs) -> String {
    let cell = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("failed".into(), f);
    let ratio = |v: Option<f64>| cell(v, &|r| format!("{r:.3}x"));
    let (a, b) = (sides[0].label, sides[1].label);
    let mut out = format!(
        "| point | adapter | {a} req/s | {b} req/s | req/s {b} / {a} | {a} CPU/req | {b} CPU/req | CPU {b} / {a} |\n"
    );
    out += "|---|---|---:|---:|---:|---:|---:|---:|\n";
    for (pi, &(conns, pipeline)) in points.iter().enumerate() {
        for (ai, server) in Server::ADAPTERS.iter().enumerate() {
            let [first, second] = &pairs[pi][ai];
            let of = |v: &[Option<Sample>], f: fn(&Sample) -> Option<f64>| {
                v.iter().map(|r| r.as_ref().and_then(f)).collect::<Vec<_>>()
            };
            let rps = |s: &Sample| Some(s.rps);
            let cpu = |s: &Sample| s.cpu_us_per_req;
            let median =
                |v: Vec<Option<f64>>| stats::median(&v.into_iter().flatten().collect::<Vec<_>>());
            out += &format!(
                "| {conns}x{pipeline} | {server} | {} | {} | {} | {} | {} | {} |\n",
                cell(median(of(first, rps)), &fmt_rps),
                cell(median(of(second, rps)), &fmt_rps),
                ratio(stats::paired_ratio(&of(second, rps), &of(first, rps))),
                cell(median(of(first, cpu)), &fmt_us),
                cell(median(of(second, cpu)), &fmt_us),
                ratio(stats::paired_ratio(&of(second, cpu), &of(first, cpu))),
            );
        }
    }
    out
}
