//! Server totals and the rate-limited log.

use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::atomic::Ordering;

use adapter_common::{FOLD_EVERY, Meter, RateLimiter, ServerTotals};
use protocol::{CloseReason, ConnectionStats};
#[test]
fn rate_limiter_lets_one_through_per_interval_and_counts_the_rest() {
    let r = RateLimiter::new(Duration::from_secs(1));
    let t = Instant::now();
    assert_eq!(r.check(t), Some(0));
    assert_eq!(r.check(t + Duration::from_millis(10)), None);
    assert_eq!(r.check(t + Duration::from_millis(20)), None);
    assert_eq!(r.check(t + Duration::from_secs(2)), Some(2));
}

#[test]
fn totals_count_closes_by_reason_kind() {
    let t = ServerTotals::default();
    t.connection_opened();
    t.connection_opened();
    let stats = stats(3);
    t.connection_closed(&stats, &CloseReason::PeerClosed);
    t.connection_closed(
        &stats,
        &CloseReason::Io {
            kind: std::io::ErrorKind::ConnectionReset,
        },
    );
    assert_eq!(t.open_now(), 0);
    let line = t.to_string();
    assert!(line.contains("requests=6"), "{line}");
    assert!(line.contains("peer_closed=1"), "{line}");
    assert!(line.contains("io_error=1"), "{line}");
}

fn stats(frames: u64) -> ConnectionStats {
    ConnectionStats {
        frames_in: frames,
        frames_out: frames,
        bytes_in: 20 * frames,
        bytes_out: 14 * frames,
        conns_in: 1,
        refused_out: 0,
    }
}

#[test]
fn meter_is_off_until_totals_are_live_and_then_counts_nothing() {
    let t = Arc::new(ServerTotals::default());
    let mut m = Meter::new(&t, Instant::now());
    assert!(!m.is_on());
    m.answered(5, Duration::from_micros(3));
    assert_eq!(m.next_fold(|| stats(5)), None);
    m.tick(|| stats(5), Instant::now() + FOLD_EVERY * 2);
    assert_eq!(t.requests.load(Ordering::Relaxed), 0);
    assert_eq!(t.latency().0.iter().sum::<u64>(), 0);
}

#[test]
fn meter_folds_a_live_connection_at_most_every_fold_interval_and_its_close_folds_only_the_rest() {
    let t = Arc::new(ServerTotals::default());
    t.set_live();
    let start = Instant::now();
    let mut m = Meter::new(&t, start);
    assert!(m.is_on());
    t.connection_opened();
    // Nothing happened: no need to wake.
    assert_eq!(m.next_fold(ConnectionStats::default), None);
    m.answered(3, Duration::from_micros(3)); // the 5 µs bucket
    assert_eq!(m.next_fold(|| stats(3)), Some(start + FOLD_EVERY));
    // Too early: not folded.
    m.tick(|| stats(3), start + FOLD_EVERY / 2);
    assert_eq!(t.requests.load(Ordering::Relaxed), 0);
    m.tick(|| stats(3), start + FOLD_EVERY);
    assert_eq!(t.requests.load(Ordering::Relaxed), 3);
    assert_eq!(t.conn_requests.load(Ordering::Relaxed), 1);
    assert_eq!(t.in_flight(), 0);
    let (buckets, sum) = t.latency();
    assert_eq!(buckets[1], 3, "{buckets:?}");
    assert_eq!(sum, Duration::from_micros(9));
    // Folded: nothing new, no wake.
    assert_eq!(m.next_fold(|| stats(3)), None);

    m.answered(1, Duration::from_secs(10)); // above every bound
    let end = stats(7);
    t.connection_closed_metered(&end, &CloseReason::PeerClosed, None, &mut m);
    assert_eq!(t.requests.load(Ordering::Relaxed), 7, "not counted twice");
    assert_eq!(t.acks.load(Ordering::Relaxed), 7);
    assert_eq!(t.bytes_in.load(Ordering::Relaxed), 140);
    assert_eq!(t.conn_requests.load(Ordering::Relaxed), 1);
    let (buckets, _) = t.latency();
    assert_eq!(buckets.iter().sum::<u64>(), 4);
    assert_eq!(buckets[buckets.len() - 1], 1);
    assert_eq!(t.open_now(), 0);
}

#[test]
fn frame_errors_count_closes_for_broken_framing_only() {
    let t = ServerTotals::default();
    for reason in [
        CloseReason::PeerClosed,
        CloseReason::TruncatedFrame { buffered: 3 },
    ] {
        t.connection_opened();
        t.connection_closed(&stats(1), &reason);
    }
    assert_eq!(t.frame_errors.load(Ordering::Relaxed), 1);
}
