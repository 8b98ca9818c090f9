//! What is measured: servers, grid points, samples, and their summaries.

use std::collections::BTreeMap;
use std::fmt;

use crate::stats::{self, Spread};

/// A server under test. Each adapter's `*Baseline` twin is the same
/// adapter run from the `--baseline` directory (an earlier build); the
/// twins come right after their adapter, so tables and runs pair them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Server {
    Tokio,
    TokioBaseline,
    Std,
    StdBaseline,
    AsyncStd,
    AsyncStdBaseline,
    Smol,
    SmolBaseline,
    Redis,
}

impl Server {
    /// The project's adapters (the current build), in report order.
    pub const ADAPTERS: [Server; 4] = [Server::Tokio, Server::Std, Server::AsyncStd, Server::Smol];

    /// The name used in tables, charts and progress lines.
    pub fn label(self) -> &'static str {
        match self {
            Server::Tokio => "adapter-tokio",
            Server::TokioBaseline => "adapter-tokio (baseline)",
            Server::Std => "adapter-std",
            Server::StdBaseline => "adapter-std (baseline)",
            Server::AsyncStd => "async-std",
            Server::AsyncStdBaseline => "async-std (baseline)",
            Server::Smol => "smol",
            Server::SmolBaseline => "smol (baseline)",
            Server::Redis => "redis",
        }
    }

    /// The baseline twin of a current adapter; `None` for Redis and for
    /// the twins themselves.
    pub fn baseline(self) -> Option<Server> {
        match self {
            Server::Tokio => Some(Server::TokioBaseline),
            Server::Std => Some(Server::StdBaseline),
            Server::AsyncStd => Some(Server::AsyncStdBaseline),
            Server::Smol => Some(Server::SmolBaseline),
            _ => None,
        }
    }

    /// The adapter a server runs: itself, or the current adapter a
    /// baseline twin stands for.
    pub fn current(self) -> Server {
        match self {
            Server::TokioBaseline => Server::Tokio,
            Server::StdBaseline => Server::Std,
            Server::AsyncStdBaseline => Server::AsyncStd,
            Server::SmolBaseline => Server::Smol,
            s => s,
        }
    }

    /// Whether this server runs from the `--baseline` directory.
    pub fn is_baseline(self) -> bool {
        self.current() != self
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // pad, not write_str: progress lines align on `{server:<W}`.
        f.pad(self.label())
    }
}

/// TCP on 127.0.0.1 or a Unix domain socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    Tcp,
    Unix,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "TCP",
            Transport::Unix => "Unix socket",
        })
    }
}

/// One point of the grid. Ordered by transport, payload, then pipeline
/// depth and connections, which is the order of the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Point {
    pub transport: Transport,
    pub payload: u32,
    pub pipeline: u32,
    pub conns: u32,
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}x{}",
            self.transport,
            fmt_bytes(self.payload),
            self.conns,
            self.pipeline
        )
    }
}

/// `32 B`, `1 KiB`, `64 KiB`.
pub fn fmt_bytes(n: u32) -> String {
    if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} B")
    }
}

/// One run of one server at one point.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub rps: f64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    /// Server CPU time (user + system) per request, in microseconds.
    pub cpu_us_per_req: Option<f64>,
    pub requests: u64,
}

/// Every run of every server at every point.
#[derive(Debug, Default)]
pub struct Results {
    pub runs: usize,
    /// Indexed by run; `None` where that run failed.
    pub samples: BTreeMap<(Point, Server), Vec<Option<Sample>>>,
    /// One line per failed run: point, server, run, why.
    pub failures: Vec<String>,
}

/// The summary of one server at one point over its runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub rps: Spread,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub cpu_us_per_req: Option<f64>,
}

impl Results {
    pub fn new(runs: usize) -> Self {
        Results {
            runs,
            ..Default::default()
        }
    }

    /// Records run `run` (0-based) of `server` at `point`.
    pub fn record(&mut self, point: Point, server: Server, run: usize, sample: Option<Sample>) {
        let runs = self.runs.max(run + 1);
        let v = self
            .samples
            .entry((point, server))
            .or_insert_with(|| vec![None; runs]);
        if v.len() <= run {
            v.resize(run + 1, None);
        }
        v[run] = sample;
    }

    /// The points measured, in table order.
    pub fn points(&self) -> Vec<Point> {
        let mut p: Vec<Point> = self.samples.keys().map(|(p, _)| *p).collect();
        p.dedup();
        p
    }

    /// The servers measured at `point`, in report order.
    pub fn servers_at(&self, point: Point) -> Vec<Server> {
        self.samples
            .keys()
            .filter(|(p, _)| *p == point)
            .map(|(_, s)| *s)
            .collect()
    }

    fn runs_of(&self, point: Point, server: Server) -> &[Option<Sample>] {
        self.samples
            .get(&(point, server))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Median and spread of the runs that succeeded; `None` if none did.
    pub fn summary(&self, point: Point, server: Server) -> Option<Summary> {
        let ok: Vec<&Sample> = self.runs_of(point, server).iter().flatten().collect();
        let rps = stats::spread(&ok.iter().map(|s| s.rps).collect::<Vec<_>>())?;
        let med = |f: fn(&Sample) -> Option<f64>| {
            stats::median(&ok.iter().filter_map(|s| f(s)).collect::<Vec<_>>())
        };
        Some(Summary {
            rps,
            p50_us: med(|s| s.p50_us),
            p99_us: med(|s| s.p99_us),
            cpu_us_per_req: med(|s| s.cpu_us_per_req),
        })
    }

    /// req/s of `a` over `b` at `point`: the median of the ratios taken
    /// run by run.
    pub fn ratio(&self, point: Point, a: Server, b: Server) -> Option<f64> {
        self.paired(point, a, b, |s| Some(s.rps))
    }

    /// Server CPU per request of `a` over `b` at `point`, run by run like
    /// [`Results::ratio`].
    pub fn cpu_ratio(&self, point: Point, a: Server, b: Server) -> Option<f64> {
        self.paired(point, a, b, |s| s.cpu_us_per_req)
    }

    fn paired(
        &self,
        point: Point,
        a: Server,
        b: Server,
        f: fn(&Sample) -> Option<f64>,
    ) -> Option<f64> {
        let values = |s: Server| -> Vec<Option<f64>> {
            self.runs_of(point, s)
                .iter()
                .map(|x| x.as_ref().and_then(f))
                .collect()
        };
        stats::paired_ratio(&values(a), &values(b))
    }
}

/// Resident memory of one server with idle connections open.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryResult {
    pub server: Server,
    pub baseline_kib: u64,
    /// (connections open, VmRSS in KiB); `None` where the step was skipped
    /// or failed (see `notes`).
    pub steps: Vec<(usize, Option<u64>)>,
    pub notes: Vec<String>,
}

impl MemoryResult {
    /// KiB of resident memory per connection at the step with `n` open.
    pub fn kib_per_conn(&self, n: usize) -> Option<f64> {
        let rss = self.steps.iter().find(|(k, _)| *k == n)?.1?;
        (n > 0).then(|| (rss as f64 - self.baseline_kib as f64) / n as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(conns: u32, pipeline: u32) -> Point {
        Point {
            transport: Transport::Tcp,
            payload: 32,
            pipeline,
            conns,
        }
    }

    fn s(rps: f64) -> Option<Sample> {
        Some(Sample {
            rps,
            p50_us: Some(rps / 100.0),
            p99_us: None,
            cpu_us_per_req: Some(1.0),
            requests: 10,
        })
    }

    #[test]
    fn summary_skips_failed_runs() {
        let mut r = Results::new(3);
        r.record(p(1, 1), Server::Tokio, 0, s(100.0));
        r.record(p(1, 1), Server::Tokio, 1, None);
        r.record(p(1, 1), Server::Tokio, 2, s(300.0));
        let sum = r.summary(p(1, 1), Server::Tokio).unwrap();
        assert_eq!(
            (sum.rps.median, sum.rps.min, sum.rps.max),
            (200.0, 100.0, 300.0)
        );
        assert_eq!(sum.p50_us, Some(2.0));
        assert_eq!(sum.p99_us, None);
        assert!(r.summary(p(1, 1), Server::Std).is_none());
    }

    #[test]
    fn ratio_is_taken_run_by_run() {
        let mut r = Results::new(2);
        r.record(p(1, 1), Server::Tokio, 0, s(200.0));
        r.record(p(1, 1), Server::Redis, 0, s(100.0));
        r.record(p(1, 1), Server::Tokio, 1, s(150.0));
        r.record(p(1, 1), Server::Redis, 1, s(100.0));
        assert_eq!(r.ratio(p(1, 1), Server::Tokio, Server::Redis), Some(1.75));
    }

    #[test]
    fn cpu_ratio_is_taken_run_by_run_too() {
        let mut r = Results::new(3);
        let cpu = |c: f64| {
            Some(Sample {
                rps: 1.0,
                p50_us: None,
                p99_us: None,
                cpu_us_per_req: Some(c),
                requests: 1,
            })
        };
        for (run, (a, b)) in [(2.0, 1.0), (3.0, 2.0), (1.0, 1.0)].into_iter().enumerate() {
            r.record(p(1, 1), Server::Smol, run, cpu(a));
            r.record(p(1, 1), Server::SmolBaseline, run, cpu(b));
        }
        // 2.0, 1.5, 1.0 -> 1.5
        assert_eq!(
            r.cpu_ratio(p(1, 1), Server::Smol, Server::SmolBaseline),
            Some(1.5)
        );
    }

    #[test]
    fn baseline_twins_pair_with_their_adapter() {
        for s in Server::ADAPTERS {
            let b = s.baseline().unwrap();
            assert!(b.is_baseline() && !s.is_baseline());
            assert_eq!(b.current(), s);
            assert_eq!(b.label(), format!("{} (baseline)", s.label()));
            assert!(s < b && b.baseline().is_none());
        }
        assert_eq!(Server::Redis.baseline(), None);
        assert_eq!(format!("[{:<15}]", Server::Std), "[adapter-std    ]");
    }

    #[test]
    fn points_come_in_table_order() {
        let mut r = Results::new(1);
        r.record(p(50, 16), Server::Tokio, 0, s(1.0));
        r.record(p(1, 1), Server::Tokio, 0, s(1.0));
        r.record(p(1, 1), Server::Redis, 0, s(1.0));
        r.record(p(50, 1), Server::Tokio, 0, s(1.0));
        assert_eq!(r.points(), vec![p(1, 1), p(50, 1), p(50, 16)]);
        assert_eq!(r.servers_at(p(1, 1)), vec![Server::Tokio, Server::Redis]);
    }

    #[test]
    fn memory_per_connection_is_growth_over_count() {
        let m = MemoryResult {
            server: Server::Tokio,
            baseline_kib: 1000,
            steps: vec![(1, Some(1004)), (1000, Some(3000)), (10000, None)],
            notes: vec![],
        };
        assert_eq!(m.kib_per_conn(1), Some(4.0));
        assert_eq!(m.kib_per_conn(1000), Some(2.0));
        assert_eq!(m.kib_per_conn(10000), None);
    }
}
