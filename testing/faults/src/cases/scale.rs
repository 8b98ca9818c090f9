//! `scale`: as many concurrent connections as the descriptor limit
//! allows (about 19,000 here), each doing a Submit every second, spread
//! evenly over the second; the std server up to its configured maximum.
//! Every Submit must be answered; the server's resident memory per
//! connection is reported, idle (all connected, none sent yet) and under
//! the load.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use conformance::support::ack_frame;
use conformance::support::request_frame;
use hdrhistogram::Histogram;
use protocol::{ACK_FRAME_LEN, AckResult, MessageId, RequestKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};

use crate::report::{Row, mib, thousands};
use crate::servers::{Adapter, ServerProc, rss_kib};

/// `scale` flags.
#[derive(Debug, Clone, Args)]
pub struct ScaleArgs {
    /// Concurrent connections [default: what the descriptor limit and the
    /// ephemeral port range allow, less 1000].
    #[arg(long, value_name = "N")]
    pub conns: Option<usize>,
    /// Connections against the std server (a thread each; its default
    /// maximum is 1024).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub std_conns: usize,
    /// Seconds of load (one Submit per connection per second).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub seconds: u64,
}

const CASE: &str = "scale";

/// The default connection count: the lower of this process' descriptor
/// limit and the ephemeral port range, less 1000 for everything else.
pub fn default_conns(nofile: u64) -> usize {
    let ports = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().filter_map(|n| n.parse::<u64>().ok());
            Some(it.next()?..=it.next()?)
        })
        .map_or(28_000, |r| r.count() as u64);
    usize::try_from(nofile.min(ports).saturating_sub(1000))
        .unwrap_or(1000)
        .max(100)
}

/// Runs the case against each adapter.
pub fn run(bins: &Path, adapters: &[Adapter], args: &ScaleArgs, nofile: u64) -> Vec<Row> {
    let conns = args.conns.unwrap_or_else(|| default_conns(nofile));
    adapters
        .iter()
        .map(|&a| {
            let n = if a == Adapter::Std {
                conns.min(args.std_conns)
            } else {
                conns
            };
            match one(bins, a, n, args.seconds) {
                Ok(row) => row,
                Err(e) => Row::error(CASE, a.name(), e),
            }
        })
        .collect()
}

#[derive(Default)]
struct Stats {
    connected: AtomicU64,
    connect_errors: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
    finished: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Stats {
    fn error(&self, e: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut f) = self.first_error.lock()
            && f.is_none()
        {
            *f = Some(e);
        }
    }
}

fn one(bins: &Path, a: Adapter, n: usize, seconds: u64) -> Result<Row, String> {
    let args: Vec<String> = if a == Adapter::Std {
        Vec::new()
    } else {
        vec!["--max-connections".into(), (n + 1000).to_string()]
    };
    let mut server = ServerProc::start(bins, a, &args, None)?;
    let base = server.rss_kib().unwrap_or(0);
    eprintln!(
        "faults: {CASE} / {a}: {} connections, {seconds} s of one Submit per second each",
        thousands(n as u64)
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let stats = Arc::new(Stats::default());
    let hist = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?,
    ));
    let pid = server.pid();
    let figures = rt.block_on(drive(server.addr, n, seconds, pid, &stats, &hist));
    drop(rt);
    let (status, took) = server.terminate(Duration::from_secs(30));

    let connected = stats.connected.load(Ordering::Relaxed);
    let ok = stats.ok.load(Ordering::Relaxed);
    let errors =
        stats.errors.load(Ordering::Relaxed) + stats.connect_errors.load(Ordering::Relaxed);
    let want = n as u64 * seconds;
    let mut failures = Vec::new();
    if connected < n as u64 {
        failures.push(format!(
            "{} of {n} connections failed to connect",
            n as u64 - connected
        ));
    }
    if ok != want || errors > 0 {
        failures.push(format!(
            "{ok} of {want} Submits answered, {errors} errors (first: {})",
            stats
                .first_error
                .lock()
                .ok()
                .and_then(|f| f.clone())
                .unwrap_or_else(|| "none".into())
        ));
    }
    if !status.is_some_and(|s| s.success()) {
        failures.push(format!("exit after SIGTERM: {status:?}"));
    }
    let (p50, p99, max) = hist
        .lock()
        .map(|h| (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max()))
        .unwrap_or_default();
    let per = |kib: u64| kib.saturating_sub(base) as f64 / n.max(1) as f64;
    let figures = format!(
        "{} conns (connected in {:.1?}), {seconds} s at 1 Submit/s each: {} answered, {errors} \
         errors; rtt p50 {p50} µs p99 {p99} µs max {:.1} ms; server RSS {} at start, {} idle \
         ({:.2} KiB/conn), {} max under load ({:.2} KiB/conn); exit {took:.0?}",
        thousands(n as u64),
        figures.connect_time,
        thousands(ok),
        max as f64 / 1000.0,
        mib(base),
        mib(figures.rss_idle),
        per(figures.rss_idle),
        mib(figures.rss_load),
        per(figures.rss_load),
    );
    Ok(Row::new(CASE, a.name(), failures, figures))
}

struct Figures {
    connect_time: Duration,
    rss_idle: u64,
    rss_load: u64,
}

async fn drive(
    addr: SocketAddr,
    n: usize,
    seconds: u64,
    pid: u32,
    stats: &Arc<Stats>,
    hist: &Arc<Mutex<Histogram<u64>>>,
) -> Figures {
    let (go_tx, go_rx) = watch::channel(None::<tokio::time::Instant>);
    let connecting = Arc::new(Semaphore::new(256));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (stats, hist, connecting, mut go) = (
            Arc::clone(stats),
            Arc::clone(hist),
            Arc::clone(&connecting),
            go_rx.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let stream = {
                let _permit = connecting.acquire().await;
                tokio::time::timeout(Duration::from_secs(20), TcpStream::connect(addr)).await
            };
            let mut stream = match stream {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    stats.connect_errors.fetch_add(1, Ordering::Relaxed);
                    stats.error(format!("connect: {e}"));
                    return;
                }
                Err(_) => {
                    stats.connect_errors.fetch_add(1, Ordering::Relaxed);
                    stats.error("connect: timed out after 20 s".into());
                    return;
                }
            };
            let _ = stream.set_nodelay(true);
            stats.connected.fetch_add(1, Ordering::Relaxed);
            let start = loop {
                if let Some(t) = *go.borrow_and_update() {
                    break t;
                }
                if go.changed().await.is_err() {
                    return;
                }
            };
            // Spread evenly over each second.
            let offset = Duration::from_nanos(i as u64 * 1_000_000_000 / n as u64);
            let mut ack = [0u8; ACK_FRAME_LEN];
            for k in 0..seconds {
                tokio::time::sleep_until(start + Duration::from_secs(k) + offset).await;
                let counter = k as u32 + 1;
                let id = MessageId::from_counter(counter);
                let frame = request_frame(RequestKind::Submit, &id, b"scale");
                let t = Instant::now();
                let exchange = async {
                    stream.write_all(&frame).await?;
                    stream.read_exact(&mut ack).await?;
                    Ok::<_, std::io::Error>(())
                };
                match tokio::time::timeout(Duration::from_secs(10), exchange).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        stats.error(format!("connection {i}, Submit {counter}: {e}"));
                        break;
                    }
                    Err(_) => {
                        stats.error(format!("connection {i}, Submit {counter}: no ack in 10 s"));
                        break;
                    }
                }
                if ack[..] != ack_frame(RequestKind::Submit, &id, AckResult::OK)[..] {
                    stats.error(format!(
                        "connection {i}, Submit {counter}: unexpected ack {ack:02x?}"
                    ));
                    break;
                }
                stats.ok.fetch_add(1, Ordering::Relaxed);
                let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                if let Ok(mut h) = hist.lock() {
                    let _ = h.record(us.max(1));
                }
            }
            stats.finished.fetch_add(1, Ordering::Relaxed);
            // Stay connected until every connection is done (the go
            // channel closes), so the load phase keeps them all open.
            while go.changed().await.is_ok() {}
        }));
    }
    // All connected (or failed).
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let done =
            stats.connected.load(Ordering::Relaxed) + stats.connect_errors.load(Ordering::Relaxed);
        if done >= n as u64 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_time = started.elapsed();
    // Let the server settle (every accept done, buffers given back).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = rss_kib(pid).unwrap_or(0);
    let _ = go_tx.send(Some(
        tokio::time::Instant::now() + Duration::from_millis(500),
    ));
    let mut rss_load = rss_idle;
    let connected = stats.connected.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(seconds + 60);
    while stats.finished.load(Ordering::Relaxed) < connected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_load = rss_load.max(rss_kib(pid).unwrap_or(0));
    }
    drop(go_tx);
    for t in tasks {
        let _ = t.await;
    }
    Figures {
        connect_time,
        rss_idle,
        rss_load,
    }
}
