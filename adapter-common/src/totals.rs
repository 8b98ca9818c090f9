//! Server-wide counters and the log lines built from them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol::{CloseReason, ConnectionStats};

/// The upper bounds (seconds) of the handler latency histogram's buckets;
/// one more bucket counts what is above the last.
pub const LATENCY_BOUNDS: [f64; 14] = [
    1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1.0, 5.0,
];
const BUCKETS: usize = LATENCY_BOUNDS.len() + 1;

/// How stale a live connection's share of the totals may get while
/// metrics are on: its [`Meter`] folds it in at most this often.
pub const FOLD_EVERY: Duration = Duration::from_millis(100);

/// Counters a server keeps across its connections. Cheap to update from
/// many tasks or threads at once.
///
/// A connection's own counters (the core's [`ConnectionStats`]) are
/// folded in when it ends; with [`set_live`](Self::set_live) (metrics
/// on) also while it lives, by its [`Meter`], at most every
/// [`FOLD_EVERY`]: nothing is counted on a shared cache line per request.
#[derive(Debug, Default)]
pub struct ServerTotals {
    /// Connections accepted and served.
    pub accepted: AtomicU64,
    /// Connections accepted and closed at once: over `max_connections`.
    pub refused: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Requests received (frames in).
    pub requests: AtomicU64,
    /// Of `requests`, the `Conn`s (the rest are Submits).
    pub conn_requests: AtomicU64,
    /// Acks sent (frames out).
    pub acks: AtomicU64,
    /// Of `acks`, those with a result other than 0.
    pub acks_refused: AtomicU64,
    /// Bytes received.
    pub bytes_in: AtomicU64,
    /// Bytes written.
    pub bytes_out: AtomicU64,
    /// Connections closed because the peer broke the framing
    /// ([`CloseReason::is_frame_error`]).
    pub frame_errors: AtomicU64,
    latency: [AtomicU64; BUCKETS],
    latency_sum_ns: AtomicU64,
    live: AtomicBool,
    ends: Mutex<Ends>,
}

/// How many client addresses [`ServerTotals::clients`] names one by one;
/// the connections of any more are counted under `other`.
pub const MAX_CLIENTS: usize = 1000;

#[derive(Debug, Default)]
struct Ends {
    by_reason: BTreeMap<&'static str, u64>,
    /// Only while live (the metrics endpoint's per-client family).
    by_client: BTreeMap<IpAddr, u64>,
    other_clients: u64,
}

impl ServerTotals {
    /// Connections admitted from now on fold their counters in while they
    /// live and time their handler (for a metrics endpoint).
    pub fn set_live(&self) {
        self.live.store(true, Ordering::Relaxed);
    }

    /// A connection was accepted and will be served.
    pub fn connection_opened(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    fn fold(&self, d: &ConnectionStats) {
        let add = |a: &AtomicU64, n: u64| {
            if n > 0 {
                a.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&self.requests, d.frames_in);
        add(&self.conn_requests, d.conns_in);
        add(&self.acks, d.frames_out);
        add(&self.acks_refused, d.refused_out);
        add(&self.bytes_in, d.bytes_in);
        add(&self.bytes_out, d.bytes_out);
    }

    /// A connection ended: fold in its counters and count its close reason.
    pub fn connection_closed(&self, stats: &ConnectionStats, reason: &CloseReason) {
        self.connection_closed_metered(stats, reason, None, &mut Meter::off());
    }

    /// [`connection_closed`](Self::connection_closed) for a connection that
    /// kept a [`Meter`]: folds in only what the meter has not; and, while
    /// live, counts it for its `client` (the address behind the proxy when
    /// there is one).
    pub fn connection_closed_metered(
        &self,
        stats: &ConnectionStats,
        reason: &CloseReason,
        client: Option<IpAddr>,
        meter: &mut Meter,
    ) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        let folded = meter.finish();
        self.fold(&since(stats, &folded));
        if reason.is_frame_error() {
            self.frame_errors.fetch_add(1, Ordering::Relaxed);
        }
        let live = self.live.load(Ordering::Relaxed);
        if let Ok(mut e) = self.ends.lock() {
            *e.by_reason.entry(reason.kind()).or_default() += 1;
            if let Some(ip) = client.filter(|_| live) {
                let known = e.by_client.len();
                match e.by_client.get_mut(&ip) {
                    Some(n) => *n += 1,
                    None if known < MAX_CLIENTS => {
                        e.by_client.insert(ip, 1);
                    }
                    None => e.other_clients += 1,
                }
            }
        }
    }

    /// A connection ended without its counters (its task panicked or was
    /// dropped unfinished): counted under `kind`.
    pub(crate) fn connection_abandoned(&self, kind: &'static str) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut e) = self.ends.lock() {
            *e.by_reason.entry(kind).or_default() += 1;
        }
    }

    /// How many connections ended for each reason kind.
    pub fn closes_by_reason(&self) -> BTreeMap<&'static str, u64> {
        self.ends
            .lock()
            .map(|e| e.by_reason.clone())
            .unwrap_or_default()
    }

    /// While live: how many connections ended per client address (the one
    /// behind the proxy when there is one), for the first [`MAX_CLIENTS`]
    /// addresses; and how many of any others.
    pub fn clients(&self) -> (BTreeMap<IpAddr, u64>, u64) {
        self.ends
            .lock()
            .map(|e| (e.by_client.clone(), e.other_clients))
            .unwrap_or_default()
    }

    /// Connections open now.
    pub fn open_now(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Requests received and not answered yet (as last folded in).
    pub fn in_flight(&self) -> u64 {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        l(&self.requests).saturating_sub(l(&self.acks))
    }

    /// The handler latency histogram: per bucket of [`LATENCY_BOUNDS`]
    /// (and one above them) the answers timed in it, not cumulative; and
    /// the sum of their latencies. Timed only while live.
    pub fn latency(&self) -> ([u64; BUCKETS], Duration) {
        let buckets = std::array::from_fn(|i| self.latency[i].load(Ordering::Relaxed));
        let sum = Duration::from_nanos(self.latency_sum_ns.load(Ordering::Relaxed));
        (buckets, sum)
    }
}

fn since(now: &ConnectionStats, then: &ConnectionStats) -> ConnectionStats {
    ConnectionStats {
        frames_in: now.frames_in.saturating_sub(then.frames_in),
        frames_out: now.frames_out.saturating_sub(then.frames_out),
        bytes_in: now.bytes_in.saturating_sub(then.bytes_in),
        bytes_out: now.bytes_out.saturating_sub(then.bytes_out),
        conns_in: now.conns_in.saturating_sub(then.conns_in),
        refused_out: now.refused_out.saturating_sub(then.refused_out),
    }
}

/// One connection's share of its server's [`ServerTotals`] while it lives,
/// kept by its driver: handler latencies counted locally, everything
/// folded into the totals at most every [`FOLD_EVERY`] (the driver wakes
/// for [`next_fold`](Self::next_fold) as for the core's timer). Off (the
/// server's totals are not live), every call returns at once and it holds
/// one null pointer.
#[derive(Debug, Default)]
pub struct Meter(Option<Box<Live>>);

#[derive(Debug)]
struct Live {
    totals: Arc<ServerTotals>,
    folded: ConnectionStats,
    latency: [u64; BUCKETS],
    latency_sum_ns: u64,
    timed: bool,
    next_fold: Instant,
}

impl Meter {
    /// A meter that counts nothing.
    pub fn off() -> Self {
        Self(None)
    }

    /// The meter of a connection admitted now into `totals`: on when they
    /// are live.
    pub fn new(totals: &Arc<ServerTotals>, now: Instant) -> Self {
        if !totals.live.load(Ordering::Relaxed) {
            return Self::off();
        }
        Self(Some(Box::new(Live {
            totals: Arc::clone(totals),
            folded: ConnectionStats::default(),
            latency: [0; BUCKETS],
            latency_sum_ns: 0,
            timed: false,
            next_fold: now + FOLD_EVERY,
        })))
    }

    /// True when it counts (the driver then times its handler).
    #[inline]
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// `n` answers, each given `latency` after its request reached the
    /// handler.
    #[inline]
    pub fn answered(&mut self, n: u64, latency: Duration) {
        if let Some(live) = &mut self.0 {
            let secs = latency.as_secs_f64();
            let i = LATENCY_BOUNDS
                .iter()
                .position(|b| secs <= *b)
                .unwrap_or(BUCKETS - 1);
            if let Some(b) = live.latency.get_mut(i) {
                *b += n;
            }
            let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
            live.latency_sum_ns = live.latency_sum_ns.saturating_add(ns.saturating_mul(n));
            live.timed = true;
        }
    }

    /// When the driver should come back to fold (`None`: nothing to fold,
    /// or off). Merge it with the core's `poll_timeout`.
    #[inline]
    pub fn next_fold(&self, stats: impl FnOnce() -> ConnectionStats) -> Option<Instant> {
        let live = self.0.as_ref()?;
        (live.timed || stats() != live.folded).then_some(live.next_fold)
    }

    /// Folds the connection's counters in when [`FOLD_EVERY`] has passed.
    #[inline]
    pub fn tick(&mut self, stats: impl FnOnce() -> ConnectionStats, now: Instant) {
        if let Some(live) = &mut self.0
            && now >= live.next_fold
        {
            live.fold(stats());
            live.next_fold = now + FOLD_EVERY;
        }
    }

    /// Folds the latencies in and says what of the counters was folded.
    fn finish(&mut self) -> ConnectionStats {
        match &mut self.0 {
            Some(live) => {
                let folded = live.folded;
                live.fold(folded);
                folded
            }
            None => ConnectionStats::default(),
        }
    }
}

impl Live {
    fn fold(&mut self, stats: ConnectionStats) {
        self.totals.fold(&since(&stats, &self.folded));
        self.folded = stats;
        if self.timed {
            for (total, n) in self.totals.latency.iter().zip(&mut self.latency) {
                if *n > 0 {
                    total.fetch_add(std::mem::take(n), Ordering::Relaxed);
                }
            }
            let ns = std::mem::take(&mut self.latency_sum_ns);
            self.totals.latency_sum_ns.fetch_add(ns, Ordering::Relaxed);
            self.timed = false;
        }
    }
}

/// Earlier of two optional deadlines (a core's timer and a meter's fold).
#[inline]
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl fmt::Display for ServerTotals {
    /// The one-line summary printed at shutdown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        write!(
            f,
            "connections accepted={} refused={} open={}; requests={} acks={}; bytes in={} out={}; closes:",
            l(&self.accepted),
            l(&self.refused),
            l(&self.open),
            l(&self.requests),
            l(&self.acks),
            l(&self.bytes_in),
            l(&self.bytes_out),
        )?;
        let closes = self.closes_by_reason();
        if closes.is_empty() {
            f.write_str(" none")?;
        }
        for (k, n) in closes {
            write!(f, " {k}={n}")?;
        }
        Ok(())
    }
}

/// The log line for a closed connection: peer, duration, requests, why.
pub fn conn_closed_line(
    peer: &str,
    lived: Duration,
    stats: &ConnectionStats,
    reason: &CloseReason,
) -> String {
    format!(
        "connection closed peer={peer} duration={lived:.3?} requests={} acks={} bytes_in={} bytes_out={} reason=\"{reason}\"",
        stats.frames_in, stats.frames_out, stats.bytes_in, stats.bytes_out
    )
}

/// Lets one event through per interval and counts the ones held back
/// (for "connection refused: over max-connections" log lines).
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLimiter {
    /// One event per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(held_back)` when this event may be logged (with the count of
    /// events suppressed since the last one), `None` when it may not.
    pub fn check(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().ok()?;
        match s.0 {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                s.1 += 1;
                None
            }
            _ => {
                let held = s.1;
                *s = (Some(now), 0);
                Some(held)
            }
        }
    }
}
