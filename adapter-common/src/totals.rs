//! Server-wide counters and the log lines built from them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use protocol::{CloseReason, ConnectionStats};

/// Counters a server keeps across its connections. Cheap to update from
/// many tasks or threads at once.
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
    /// Acks sent (frames out).
    pub acks: AtomicU64,
    /// Bytes received.
    pub bytes_in: AtomicU64,
    /// Bytes written.
    pub bytes_out: AtomicU64,
    closes: Mutex<BTreeMap<&'static str, u64>>,
}

impl ServerTotals {
    /// A connection was accepted and will be served.
    pub fn connection_opened(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection ended: fold its counters in and count its close reason.
    pub fn connection_closed(&self, stats: &ConnectionStats, reason: &CloseReason) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.requests.fetch_add(stats.frames_in, Ordering::Relaxed);
        self.acks.fetch_add(stats.frames_out, Ordering::Relaxed);
        self.bytes_in.fetch_add(stats.bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(stats.bytes_out, Ordering::Relaxed);
        if let Ok(mut m) = self.closes.lock() {
            *m.entry(reason.kind()).or_default() += 1;
        }
    }

    /// A connection ended without its counters (its task panicked or was
    /// dropped unfinished): counted under `kind`.
    pub(crate) fn connection_abandoned(&self, kind: &'static str) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut m) = self.closes.lock() {
            *m.entry(kind).or_default() += 1;
        }
    }

    /// How many connections ended for each reason kind.
    pub fn closes_by_reason(&self) -> BTreeMap<&'static str, u64> {
        self.closes.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Connections open now.
    pub fn open_now(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
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
