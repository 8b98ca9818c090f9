//! `slowloris`: 1000 connections each send part of a frame and stall,
//! against a server with `--frame-timeout 1`: every one is closed at the
//! frame timeout (not before), and a normal client's round trips meanwhile
//! stay as fast as before.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use conformance::support::request_frame;
use protocol::{MessageId, RequestKind};

use crate::client::{Conn, Wait, median_max};
use crate::report::Row;
use crate::servers::{Adapter, ServerProc};

/// `slowloris` flags.
#[derive(Debug, Clone, Args)]
pub struct SlowlorisArgs {
    /// Stalled connections (the std server is capped at its default of
    /// 1024 connections; keep below that).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub conns: usize,
}

const CASE: &str = "slowloris";
const FRAME: Duration = Duration::from_secs(1);

/// Runs the case against each adapter.
pub fn run(bins: &Path, adapters: &[Adapter], args: &SlowlorisArgs) -> Vec<Row> {
    adapters
        .iter()
        .map(|&a| match one(bins, a, args) {
            Ok(row) => row,
            Err(e) => Row::error(CASE, a.name(), e),
        })
        .collect()
}

/// Round trips every 20 ms on one connection until stopped.
fn probe(
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<Result<Vec<Duration>, String>> {
    thread::spawn(move || {
        let mut c = Conn::connect(addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
        let mut trips = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            trips.push(c.round_trip(Duration::from_secs(5))?);
            thread::sleep(Duration::from_millis(20));
        }
        Ok(trips)
    })
}

fn one(bins: &Path, a: Adapter, args: &SlowlorisArgs) -> Result<Row, String> {
    let mut server = ServerProc::start(bins, a, &["--frame-timeout".into(), "1".into()], None)?;
    let addr = server.addr;
    eprintln!("faults: {CASE} / {a}: {} stalled connections", args.conns);
    let mut failures = Vec::new();

    // The normal client alone first.
    let stop = Arc::new(AtomicBool::new(false));
    let before = probe(addr, Arc::clone(&stop));
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let mut before = before
        .join()
        .map_err(|_| "the probe panicked".to_string())??;
    let (median_before, _) = median_max(&mut before);

    let stop = Arc::new(AtomicBool::new(false));
    let during = probe(addr, Arc::clone(&stop));
    let mut stalled = Vec::with_capacity(args.conns);
    let started = Instant::now();
    for i in 0..args.conns {
        let mut c = Conn::connect(addr, Duration::from_secs(5))
            .map_err(|e| format!("stalled connection {i}: cannot connect: {e}"))?;
        let mut owes_ack = false;
        if i % 3 == 2 {
            c.send_submit(b"whole")
                .map_err(|e| format!("stalled connection {i}: {e}"))?;
            owes_ack = true;
        }
        let f = request_frame(
            RequestKind::Submit,
            &MessageId::from_counter(999),
            b"never finished, never answered",
        );
        let keep = if i % 3 == 0 { 2 } else { f.len() / 2 };
        let sent = Instant::now();
        c.send_raw(&f[..keep])
            .map_err(|e| format!("stalled connection {i}: {e}"))?;
        stalled.push((c, sent, owes_ack));
    }
    let all_sent = started.elapsed();

    let mut closed = 0;
    let mut early = 0;
    let mut latest = Duration::ZERO;
    for (c, sent, owes_ack) in &mut stalled {
        if *owes_ack && c.wait_ack(Duration::from_secs(5))? != Wait::Ack {
            failures.push("the whole Submit before a stalled frame was not answered".into());
            break;
        }
        let left =
            (*sent + FRAME + Duration::from_secs(5)).saturating_duration_since(Instant::now());
        if !c.wait_closed(left)? {
            failures.push(format!(
                "a stalled connection was still open {:?} after its partial frame (frame \
                 timeout {FRAME:?})",
                sent.elapsed()
            ));
            break;
        }
        closed += 1;
        let lived = sent.elapsed();
        if lived < FRAME {
            early += 1;
        }
        latest = latest.max(lived);
    }
    stop.store(true, Ordering::Relaxed);
    let mut during = during
        .join()
        .map_err(|_| "the probe panicked".to_string())??;
    let (median_during, max_during) = median_max(&mut during);
    if early > 0 {
        failures.push(format!("{early} closed before the {FRAME:?} frame timeout"));
    }
    if max_during > Duration::from_millis(500) {
        failures.push(format!(
            "a normal round trip took {max_during:?} beside the stalled connections"
        ));
    }
    drop(stalled);
    let (status, took) = server.terminate(Duration::from_secs(15));
    if !status.is_some_and(|s| s.success()) {
        failures.push(format!("exit after SIGTERM: {status:?}"));
    }
    let timeouts_logged =
        server.count_lines(|l| l.contains("connection closed") && l.contains("frame timeout"));
    if timeouts_logged < closed {
        failures.push(format!(
            "{closed} stalled connections were closed, {timeouts_logged} close lines say \"frame \
             timeout\""
        ));
    }
    let figures = format!(
        "{} stalled conns opened in {all_sent:.0?}: {closed} closed at the {FRAME:?} frame \
         timeout (last seen {latest:.2?} after its bytes; {timeouts_logged} logged as \"frame \
         timeout\"), {early} early; normal round trip median {median_before:.0?} before, \
         {median_during:.0?} during ({} trips, max {max_during:.1?}); exit {took:.0?}",
        args.conns,
        during.len()
    );
    Ok(Row::new(CASE, a.name(), failures, figures))
}
