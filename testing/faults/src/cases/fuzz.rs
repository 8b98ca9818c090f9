//! `fuzz`: every target in `fuzz/` for N executions with
//! `cargo +nightly fuzz run --fuzz-dir fuzz <target> -- -runs=N`; reports
//! the executions done and any crash artifact, by path.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use harness::{Sink, Spawn};

use crate::report::{Row, thousands};
use crate::servers::workspace_root;

/// `fuzz` flags.
#[derive(Debug, Clone, Args)]
pub struct FuzzArgs {
    /// Executions per target (libFuzzer's -runs).
    #[arg(long, value_name = "N", default_value_t = 10_000_000)]
    pub runs: u64,
    /// Time bound per target in seconds (libFuzzer's -max_total_time); a
    /// target stopped by it before N executions is reported as failing
    /// to reach N.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub max_seconds: u64,
    /// Only these targets [default: every one `cargo fuzz list` names].
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
}

const CASE: &str = "fuzz";

fn cargo() -> Command {
    // Not $CARGO: that is the stable toolchain's cargo when run through
    // `cargo run`, and `+nightly` needs the rustup proxy.
    let mut c = Command::new("cargo");
    c.env_remove("CARGO").env_remove("RUSTUP_TOOLCHAIN");
    c
}

/// The targets `cargo +nightly fuzz list` names, or why there are none.
fn list_targets(root: &Path) -> Result<Vec<String>, String> {
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args(["+nightly", "fuzz", "list", "--fuzz-dir", "fuzz"]);
    let out = harness::run(cmd, "cargo +nightly fuzz list", Duration::from_secs(600))?;
    if !out.status.success() {
        return Err(format!(
            "cargo +nightly fuzz list failed (is cargo-fuzz installed? `cargo install \
             cargo-fuzz`): {}",
            out.stderr.trim()
        ));
    }
    Ok(out
        .stdout
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect())
}

fn artifacts(root: &Path, target: &str) -> BTreeSet<PathBuf> {
    std::fs::read_dir(root.join("fuzz").join("artifacts").join(target))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// Runs every (chosen) target.
pub fn run(args: &FuzzArgs) -> Vec<Row> {
    let root = workspace_root();
    let targets = match list_targets(&root) {
        Ok(t) => t,
        Err(e) => return vec![Row::skip(CASE, "(all targets)", e)],
    };
    let chosen: Vec<String> = if args.targets.is_empty() {
        targets
    } else {
        for t in &args.targets {
            if !targets.contains(t) {
                return vec![Row::error(
                    CASE,
                    t.clone(),
                    format!("no fuzz target {t:?}; there are: {}", targets.join(", ")),
                )];
            }
        }
        args.targets.clone()
    };
    chosen
        .iter()
        .map(|t| match one(&root, t, args) {
            Ok(row) => row,
            Err(e) => Row::error(CASE, t.clone(), e),
        })
        .collect()
}

/// What libFuzzer said.
#[derive(Debug, Default)]
struct Said {
    executed: Option<u64>,
    exec_per_sec: Option<u64>,
    peak_rss_mb: Option<u64>,
    written: Vec<String>,
    last: Vec<String>,
}

fn stat(line: &str, key: &str) -> Option<u64> {
    line.strip_prefix(key)?.trim().parse().ok()
}

fn hear(said: &mut Said, line: &str) {
    if let Some(n) = stat(line, "stat::number_of_executed_units:") {
        said.executed = Some(n);
    } else if let Some(n) = stat(line, "stat::average_exec_per_sec:") {
        said.exec_per_sec = Some(n);
    } else if let Some(n) = stat(line, "stat::peak_rss_mb:") {
        said.peak_rss_mb = Some(n);
    } else if let Some(i) = line.find("Test unit written to ") {
        said.written
            .push(line[i + "Test unit written to ".len()..].trim().to_owned());
    } else if let Some(rest) = line.strip_prefix("Done ")
        && let Some(n) = rest.split_whitespace().next().and_then(|n| n.parse().ok())
    {
        said.executed.get_or_insert(n);
    }
    said.last.push(line.to_owned());
    if said.last.len() > 20 {
        said.last.remove(0);
    }
}

fn one(root: &Path, target: &str, args: &FuzzArgs) -> Result<Row, String> {
    eprintln!(
        "faults: {CASE} / {target}: {} runs (at most {} s)",
        thousands(args.runs),
        args.max_seconds
    );
    let before = artifacts(root, target);
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args([
            "+nightly",
            "fuzz",
            "run",
            "--fuzz-dir",
            "fuzz",
            target,
            "--",
        ])
        .arg(format!("-runs={}", args.runs))
        .arg(format!("-max_total_time={}", args.max_seconds))
        .arg("-print_final_stats=1");
    // cargo starts the fuzzer: its own group, signalled as a whole.
    let mut proc = Spawn::new(format!("cargo fuzz run {target}"))
        .stdout(Sink::Null)
        .stderr(Sink::Pipe)
        .own_group()
        .spawn(cmd)?;
    let said = Arc::new(Mutex::new(Said::default()));
    let stderr = proc.child_mut().stderr.take();
    let sink = Arc::clone(&said);
    let name = target.to_owned();
    let reader = thread::spawn(move || {
        let Some(stderr) = stderr else { return };
        let mut last_note = Instant::now();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            // Progress: libFuzzer's status lines, at most one per 30 s,
            // and anything that looks like trouble.
            let status = line.starts_with('#') && line.contains("exec/s");
            if (status && last_note.elapsed() >= Duration::from_secs(30))
                || line.contains("ERROR")
                || line.contains("error:")
                || line.contains("panicked")
            {
                eprintln!("faults: {CASE} / {name}: {line}");
                last_note = Instant::now();
            }
            if let Ok(mut s) = sink.lock() {
                hear(&mut s, &line);
            }
        }
    });
    let started = Instant::now();
    // The build comes first (minutes on a cold cache).
    let limit = Duration::from_secs(args.max_seconds) + Duration::from_secs(1800);
    let status = proc.wait_for(limit).or_else(|| {
        eprintln!("faults: {CASE} / {target}: still running after {limit:?}: stopping it");
        proc.stop()
    });
    let _ = reader.join();
    let took = started.elapsed();
    let said = said.lock().map_err(|_| "lost the fuzzer's output")?;
    let new: Vec<PathBuf> = artifacts(root, target)
        .difference(&before)
        .cloned()
        .collect();

    let mut failures = Vec::new();
    for p in &new {
        failures.push(format!("crash artifact {}", p.display()));
    }
    for w in &said.written {
        if !new.iter().any(|p| p.ends_with(w.trim_start_matches("./"))) {
            failures.push(format!("libFuzzer wrote {w}"));
        }
    }
    let executed = said.executed.unwrap_or(0);
    match status {
        Some(s) if s.success() => {}
        Some(s) if failures.is_empty() => failures.push(format!(
            "cargo fuzz run exited with {s}: {}",
            said.last.join(" | ")
        )),
        Some(_) => {}
        None => failures.push("did not stop".into()),
    }
    if failures.is_empty() && executed < args.runs {
        failures.push(format!(
            "only {} of {} runs within the {} s bound (raise --max-seconds)",
            thousands(executed),
            thousands(args.runs),
            args.max_seconds
        ));
    }
    let figures = format!(
        "{} executions in {took:.0?} (build included; {} exec/s{}){}",
        thousands(executed),
        said.exec_per_sec.map_or_else(|| "?".into(), thousands),
        said.peak_rss_mb
            .map_or_else(String::new, |m| format!(", peak RSS {m} MB")),
        match new.len().max(said.written.len()) {
            0 => ", no crash".to_owned(),
            n => format!(", {n} crash artifact(s)"),
        }
    );
    Ok(Row::new(CASE, target.to_owned(), failures, figures))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libfuzzer_stats_and_artifacts_are_heard() {
        let mut s = Said::default();
        for l in [
            "Done 100000 runs in 3 second(s)",
            "stat::number_of_executed_units: 100000",
            "stat::average_exec_per_sec:     33333",
            "stat::peak_rss_mb:              61",
            "artifact_prefix='fuzz/artifacts/x/'; Test unit written to fuzz/artifacts/x/crash-ab",
        ] {
            hear(&mut s, l);
        }
        assert_eq!(s.executed, Some(100_000));
        assert_eq!(s.exec_per_sec, Some(33_333));
        assert_eq!(s.peak_rss_mb, Some(61));
        assert_eq!(s.written, vec!["fuzz/artifacts/x/crash-ab".to_owned()]);
    }
}
