//! What a scenario measures of its own process (resident memory, the
//! descriptor limit), and running one scenario alone in a child process.
//!
//! The servers of the suite run inside the test process, so the memory a
//! server holds is the test process' resident memory. That figure means
//! something only when nothing else runs in the process: the scenarios
//! that measure it are expanded by [`behaviour_suite!`](crate::behaviour_suite)
//! to re-run their own test binary with just that test
//! (`<test> --exact --test-threads=1`, see [`run_alone`]), so the parallel
//! tests of the parent process neither add to the figure nor compete for
//! its descriptors.
//!
//! Scenarios that load the machine (hundreds of connections at once) also
//! take their turn alone among the scenarios of their test binary
//! ([`exclusive_turn`]; the others hold a [`shared_turn`]): on a machine
//! with two cores, a scenario asserting round-trip times would otherwise
//! measure its neighbour's load.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::Duration;

/// The environment variable that tells a child test process which test it
/// runs alone.
pub const ALONE_VAR: &str = "CONFORMANCE_RUN_ALONE";

/// How long a scenario run alone may take before its process is stopped.
const ALONE_LIMIT: Duration = Duration::from_secs(120);

/// Taken by every scenario of a test binary: shared among them.
static TURNS: RwLock<()> = RwLock::new(());

/// An ordinary scenario's turn: runs beside the other ordinary ones.
pub fn shared_turn() -> RwLockReadGuard<'static, ()> {
    // A scenario that failed holding its turn leaves the lock usable.
    TURNS.read().unwrap_or_else(|e| e.into_inner())
}

/// A loading scenario's turn: runs while no other scenario of this test
/// binary runs.
pub fn exclusive_turn() -> RwLockWriteGuard<'static, ()> {
    TURNS.write().unwrap_or_else(|e| e.into_inner())
}

/// This process' anonymous resident memory in KiB (`RssAnon` of
/// `/proc/self/status`: heap, stacks, anonymous mappings), or `None` where
/// there is no procfs. Anonymous, not all of `VmRSS`: `VmRSS` also counts
/// the pages of the test binary's code as they are first executed, which
/// is not memory a server holds.
pub fn resident_kib() -> Option<u64> {
    status_kib("RssAnon:").or_else(|| status_kib("VmRSS:"))
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The soft limit on open descriptors of this process
/// (`/proc/self/limits`), `None` if unknown or unlimited.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
}

/// Samples [`resident_kib`] every few milliseconds on a thread of its own
/// and keeps the highest value: the peak of a phase, whenever it happened.
pub struct PeakSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
}

impl PeakSampler {
    /// Starts sampling (`None` where [`resident_kib`] is unavailable).
    pub fn start() -> Option<Self> {
        let first = resident_kib()?;
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(first));
        let (s, p) = (Arc::clone(&stop), Arc::clone(&peak));
        let thread = thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    if let Some(kib) = resident_kib() {
                        p.fetch_max(kib, Ordering::Relaxed);
                    }
                    thread::sleep(Duration::from_millis(5));
                }
            })
            .ok()?;
        Some(Self {
            stop,
            peak,
            thread: Some(thread),
        })
    }

    /// Stops sampling; returns the highest value seen, in KiB.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(kib) = resident_kib() {
            self.peak.fetch_max(kib, Ordering::Relaxed);
        }
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for PeakSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Runs `scenario` alone in a child process: `test` is the test's full
/// path as `module_path!()` spells it inside the test crate (the crate's
/// name first, as `behaviour::smol_rt::the_scenario`).
///
/// In the parent: re-runs the current test binary with only that test
/// (`--exact`, one thread) and [`ALONE_VAR`] set to its name, waits for it
/// (stopping it by its PID after two minutes, see the `harness` crate),
/// and fails with the child's output if it failed or ran no test. In the
/// child (the variable names this test): runs the scenario.
pub fn run_alone(test: &str, scenario: impl FnOnce()) {
    // libtest names a test by its path without the crate.
    let name = test.split_once("::").map_or(test, |(_, rest)| rest);
    if std::env::var(ALONE_VAR).is_ok_and(|v| v == name) {
        scenario();
        return;
    }
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => panic!("{name}: cannot find the test binary to run the scenario alone: {e}"),
    };
    let mut cmd = Command::new(&exe);
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(ALONE_VAR, name);
    // Stopped (by its PID) and failing with what it wrote if it overstays.
    let done = match harness::run(cmd, &format!("{name} run alone"), ALONE_LIMIT) {
        Ok(done) => done,
        Err(e) => panic!("{name}: {e}"),
    };
    // Shown with the parent's test output (captured unless --nocapture).
    eprint!("{}", done.stderr);
    let out = done.stdout;
    match done.status {
        s if !s.success() => panic!("{name}: failed when run alone ({s})\n{out}"),
        _ if !out.contains("1 passed") => panic!(
            "{name}: the child test process ran no test of that name (a harness bug in \
             computing the test path?)\n{out}"
        ),
        _ => {}
    }
}
