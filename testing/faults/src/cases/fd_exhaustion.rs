//! `fd-exhaustion`: the server runs with a low RLIMIT_NOFILE; more
//! clients connect than it has descriptors for. It must log the failing
//! accepts, keep running and serving the connections it has, and serve the
//! waiting ones as soon as descriptors free up.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;

use crate::client::{Conn, Wait};
use crate::report::Row;
use crate::servers::{Adapter, ServerProc};

/// `fd-exhaustion` flags.
#[derive(Debug, Clone, Args)]
pub struct FdArgs {
    /// RLIMIT_NOFILE (soft and hard) of the server process.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub limit: u64,
    /// Connections opened beyond the first one the server cannot accept.
    #[arg(long, value_name = "N", default_value_t = 40)]
    pub extra: usize,
}

const CASE: &str = "fd-exhaustion";

/// Runs the case against each adapter.
pub fn run(bins: &Path, adapters: &[Adapter], args: &FdArgs) -> Vec<Row> {
    adapters
        .iter()
        .map(|&a| match one(bins, a, args) {
            Ok(row) => row,
            Err(e) => Row::error(CASE, a.name(), e),
        })
        .collect()
}

fn is_accept_failure(line: &str) -> bool {
    line.contains("accept")
        && (line.contains("Too many open files") || line.contains("os error 24"))
}

fn one(bins: &Path, a: Adapter, args: &FdArgs) -> Result<Row, String> {
    eprintln!(
        "faults: {CASE} / {a}: server with RLIMIT_NOFILE {}",
        args.limit
    );
    let mut server = ServerProc::start(bins, a, &[], Some(args.limit))?;
    let base_fds = server.open_fds().unwrap_or(0);
    let mut failures = Vec::new();

    // Connect (each one sends a Submit) until `extra` are left unserved.
    let mut served: Vec<Conn> = Vec::new();
    let mut waiting: Vec<Conn> = Vec::new();
    let cap = args.limit as usize + args.extra + 200;
    for i in 0..cap {
        if waiting.len() >= args.extra {
            break;
        }
        let mut c = Conn::connect(server.addr, Duration::from_secs(5))
            .map_err(|e| format!("connection {i}: cannot connect: {e}"))?;
        c.send_submit(b"one")
            .map_err(|e| format!("connection {i}: send failed: {e}"))?;
        if waiting.is_empty() {
            match c.wait_ack(Duration::from_millis(500))? {
                Wait::Ack => served.push(c),
                Wait::Silent => waiting.push(c),
                Wait::Closed => {
                    return Err(format!(
                        "connection {i} was closed instead of served or left waiting"
                    ));
                }
            }
        } else {
            waiting.push(c);
        }
    }
    if waiting.is_empty() {
        failures.push(format!(
            "{cap} connections were all served with RLIMIT_NOFILE {}: the limit was not reached",
            args.limit
        ));
    }
    // At the limit for a while: the accept loop keeps failing, backs off.
    thread::sleep(Duration::from_millis(1500));
    let accept_failures = server.count_lines(is_accept_failure);
    if accept_failures == 0 {
        failures.push("no failing accept (EMFILE) was logged".into());
    }
    if !server.running() {
        return Err(format!(
            "the server exited at the descriptor limit:\n  {}",
            server.log_tail(10).join("\n  ")
        ));
    }
    // The connections it has are still served.
    for c in served.iter_mut().take(5) {
        if let Err(e) = c.round_trip(Duration::from_secs(2)) {
            failures.push(format!("a connection served before the limit: {e}"));
            break;
        }
    }
    let fds_at_limit = server.open_fds().unwrap_or(0);

    // Free descriptors: the waiting connections must be served now.
    let free = served.len().min(args.extra + 5);
    let n_served = served.len();
    served.drain(..free);
    let freed_at = Instant::now();
    let mut recovered = Duration::ZERO;
    for c in &mut waiting {
        let left = (freed_at + Duration::from_secs(10)).saturating_duration_since(Instant::now());
        match c.wait_ack(left)? {
            Wait::Ack => recovered = freed_at.elapsed(),
            Wait::Silent => {
                failures.push(format!(
                    "{} connections closed, yet a waiting one was not served within 10 s",
                    free
                ));
                break;
            }
            Wait::Closed => {
                failures.push("a waiting connection was closed instead of served".into());
                break;
            }
        }
    }
    let mut fresh = Conn::connect(server.addr, Duration::from_secs(5))
        .map_err(|e| format!("a new connection after the recovery: {e}"))?;
    if let Err(e) = fresh.round_trip(Duration::from_secs(2)) {
        failures.push(format!("a new connection after the recovery: {e}"));
    }
    for c in served.iter_mut().chain(waiting.iter_mut()) {
        if let Err(e) = c.round_trip(Duration::from_secs(2)) {
            failures.push(format!("an old connection after the recovery: {e}"));
            break;
        }
    }
    drop((served, waiting, fresh));
    let (status, took) = server.terminate(Duration::from_secs(15));
    match status {
        Some(s) if s.success() => {}
        Some(s) => failures.push(format!("exit status after SIGTERM: {s}")),
        None => failures.push("did not exit within 15 s of SIGTERM".into()),
    }
    let figures = format!(
        "RLIMIT_NOFILE {}: {base_fds} fds at start, {n_served} conns served, {} more left \
         waiting ({fds_at_limit} fds open); {accept_failures} failing accepts logged; {free} \
         closed -> the waiting ones served within {recovered:.2?}; exit after SIGTERM {:.0?}",
        args.limit, args.extra, took
    );
    Ok(Row::new(CASE, a.name(), failures, figures))
}
