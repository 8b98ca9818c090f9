//! `soak`: `adapter-tokio bench --conns 50 --pipeline 16 --json` against
//! each server for minutes, the server's resident memory sampled every
//! 10 s: zero errors, and memory flat (no leak).

use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use harness::{Sink, Spawn};

use crate::report::{Row, mib, thousands};
use crate::servers::{Adapter, ServerProc};

/// `soak` flags.
#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    /// Minutes per adapter (fractions allowed: 0.5 = 30 s).
    #[arg(long, value_name = "MIN", default_value_t = 10.0)]
    pub minutes: f64,
    /// Connections of the load.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub conns: u32,
    /// Requests in flight per connection.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub pipeline: u32,
    /// How much resident memory may grow from the first sample to the
    /// end, in KiB, before it counts as a leak (more is allowed when 10%
    /// of the first sample is more).
    #[arg(long, value_name = "KIB", default_value_t = 4096)]
    pub leak_kib: u64,
}

const CASE: &str = "soak";

/// Runs the case against each adapter.
pub fn run(bins: &Path, adapters: &[Adapter], args: &SoakArgs) -> Vec<Row> {
    adapters
        .iter()
        .map(|&a| match one(bins, a, args) {
            Ok(row) => row,
            Err(e) => Row::error(CASE, a.name(), e),
        })
        .collect()
}

/// Least-squares slope of (seconds, KiB) samples, in KiB per minute.
fn slope_kib_per_min(samples: &[(f64, u64)]) -> f64 {
    let n = samples.len() as f64;
    if samples.len() < 2 {
        return 0.0;
    }
    let mx = samples.iter().map(|s| s.0).sum::<f64>() / n;
    let my = samples.iter().map(|s| s.1 as f64).sum::<f64>() / n;
    let num: f64 = samples.iter().map(|s| (s.0 - mx) * (s.1 as f64 - my)).sum();
    let den: f64 = samples.iter().map(|s| (s.0 - mx).powi(2)).sum();
    if den == 0.0 { 0.0 } else { num / den * 60.0 }
}

fn one(bins: &Path, a: Adapter, args: &SoakArgs) -> Result<Row, String> {
    let total = Duration::from_secs_f64((args.minutes * 60.0).max(1.0));
    let every = (total / 10).clamp(Duration::from_secs(1), Duration::from_secs(10));
    let mut server = ServerProc::start(bins, a, &[], None)?;
    eprintln!(
        "faults: {CASE} / {a}: {}x{} for {total:?}, server RSS sampled every {every:?}",
        args.conns, args.pipeline
    );
    let mut cmd = Command::new(bins.join("adapter-tokio"));
    cmd.arg("bench")
        .arg("--addr")
        .arg(server.addr.to_string())
        .arg("--conns")
        .arg(args.conns.to_string())
        .arg("--pipeline")
        .arg(args.pipeline.to_string())
        .arg("--duration")
        .arg(format!("{}ms", total.as_millis()))
        .arg("--json");
    let mut bench = Spawn::new("adapter-tokio bench")
        .stdout(Sink::Capture)
        .stderr(Sink::Capture)
        .spawn(cmd)?;

    let started = Instant::now();
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut next = started + every;
    let deadline = started + total + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = bench.try_status() {
            break Some(s);
        }
        if Instant::now() >= deadline {
            break None;
        }
        if Instant::now() >= next {
            if let Some(kib) = server.rss_kib() {
                samples.push((started.elapsed().as_secs_f64(), kib));
            }
            next += every;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let status = match status {
        Some(s) => Some(s),
        None => bench.stop(),
    };
    let (out, err) = (bench.stdout_text(), bench.stderr_text());
    let (srv_status, _) = server.terminate(Duration::from_secs(15));

    let mut failures = Vec::new();
    if !status.is_some_and(|s| s.success()) {
        failures.push(format!(
            "bench exited with {status:?}: {}",
            err.lines().last().unwrap_or("")
        ));
    }
    if !srv_status.is_some_and(|s| s.success()) {
        failures.push(format!("server exit after SIGTERM: {srv_status:?}"));
    }
    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_default();
    let num = |k: &str| {
        json.get(k)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0)
    };
    let requests = num("requests") as u64;
    let errors = num("errors") as u64;
    let conn_errors = json
        .get("connection_errors")
        .and_then(serde_json::Value::as_array)
        .map_or(0, Vec::len);
    let p99 = json
        .pointer("/latency_us/p99")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(0.0);
    if json.is_null() {
        failures.push(format!("bench printed no JSON: {}", out.trim()));
    } else if errors > 0 || conn_errors > 0 || requests == 0 {
        failures.push(format!(
            "{requests} requests, {errors} errors, {conn_errors} connection errors"
        ));
    }
    let first = samples.first().map_or(0, |s| s.1);
    let last = samples.last().map_or(0, |s| s.1);
    let max = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let slope = slope_kib_per_min(&samples);
    let allowed = args.leak_kib.max(first / 10);
    if last.saturating_sub(first) > allowed {
        failures.push(format!(
            "resident memory grew from {first} KiB to {last} KiB ({} KiB over the run, {slope:.0} \
             KiB/min): a leak?",
            last - first
        ));
    }
    let figures = format!(
        "{}x{} for {:.1} min: {} requests ({:.0} req/s), {errors} errors, {conn_errors} \
         connection errors, p99 {p99:.0} µs; server RSS first sample {}, end {}, max {} ({} \
         samples, slope {slope:+.1} KiB/min)",
        args.conns,
        args.pipeline,
        total.as_secs_f64() / 60.0,
        thousands(requests),
        num("req_per_s"),
        mib(first),
        mib(last),
        mib(max),
        samples.len(),
    );
    Ok(Row::new(CASE, a.name(), failures, figures))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_is_kib_per_minute() {
        let flat = [(0.0, 100), (10.0, 100), (20.0, 100)];
        assert_eq!(slope_kib_per_min(&flat), 0.0);
        let rising = [(0.0, 100), (30.0, 110), (60.0, 120)];
        assert!((slope_kib_per_min(&rising) - 20.0).abs() < 1e-9);
    }
}
