//! `cargo xtask metrics-figures`: what counting for Prometheus costs.
//! Every adapter with `serve --metrics-addr 127.0.0.1:0` against the same
//! binary without it, back to back within each run (see [`ab`]), loaded
//! by `adapter-tokio bench` on the same machine; a scraper reads
//! `/metrics` once a second during the metered runs, as Prometheus would
//! (more often than its usual 15 s).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use crate::ab::{self, Side};
use crate::bench_report::{self, Progress};
use crate::report::fmt_duration;
use crate::{FiguresArgs, Result, procfs};

const POINTS: [(u32, u32); 3] = [(1, 1), (50, 1), (50, 16)];

pub fn run(args: &FiguresArgs) -> Result<()> {
    let runs = args.runs.max(1);
    let duration = args.duration.max(1);
    let (_tmp, tools) = ab::setup(args.no_build, "xtask-metrics")?;
    let metrics = free_addr()?;
    let off: Vec<String> = Vec::new();
    let on = vec!["--metrics-addr".to_string(), metrics.to_string()];
    let sides = [
        Side {
            label: "off",
            serve: &off,
            bench: &[],
        },
        Side {
            label: "metrics",
            serve: &on,
            bench: &[],
        },
    ];
    let n = ab::items(runs, &POINTS);
    let mut progress = Progress::new(n, n as f64 * (duration + 1) as f64);
    eprintln!(
        "xtask: every adapter with and without --metrics-addr: {runs} run(s) of {} points: about {}",
        POINTS.len(),
        fmt_duration(progress.planned_secs() as u64)
    );
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || scrape_every_second(metrics, &stop))
    };
    let mut seq = 0;
    let pairs = ab::measure(
        &tools,
        &POINTS,
        &sides,
        runs,
        duration,
        &mut progress,
        &mut seq,
    );
    stop.store(true, Ordering::Relaxed);
    let scrapes = scraper.join().unwrap_or(0);
    println!(
        "# Metrics overhead\n\n`cargo xtask metrics-figures --runs {runs} --duration {duration}` \
         at {} on {} (Linux {}, {} CPUs).\n\nMedians of {runs} run(s) of {duration} s, 32 B \
         payloads; \"metrics\" is `serve --metrics-addr`, scraped once a second ({scrapes} \
         scrapes answered in all); the two sides run back to back, each first in every other run; the ratios are the medians of the ratios within each run. \
         CPU is the server's (user + system) per request.\n",
        bench_report::git_commit(&tools.workspace),
        procfs::cpu_model(),
        procfs::kernel_release(),
        thread::available_parallelism().map_or(0, |n| n.get()),
    );
    print!("{}", ab::render(&POINTS, &sides, &pairs));
    Ok(())
}

fn free_addr() -> Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// GET /metrics at `addr` once a second until `stop` (no server there
/// between the metered runs: skipped); how many scrapes were answered.
fn scrape_every_second(addr: SocketAddr, stop: &AtomicBool) -> usize {
    let mut answered = 0;
    while !stop.load(Ordering::Relaxed) {
        let scrape = || -> std::io::Result<bool> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
            let mut got = String::new();
            s.read_to_string(&mut got)?;
            Ok(got.starts_with("HTTP/1.0 200") || got.starts_with("HTTP/1.1 200"))
        };
        answered += usize::from(scrape().unwrap_or(false));
        thread::sleep(Duration::from_secs(1));
    }
    answered
}
