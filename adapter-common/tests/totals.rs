//! Server totals and the rate-limited log.

use std::time::{Duration, Instant};

use adapter_common::{RateLimiter, ServerTotals};
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
    let stats = ConnectionStats {
        frames_in: 3,
        frames_out: 3,
        bytes_in: 60,
        bytes_out: 42,
    };
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
