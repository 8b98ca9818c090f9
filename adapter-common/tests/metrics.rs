//! The Prometheus scrape of a server's totals (feature `prometheus`).
#![cfg(feature = "prometheus")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter_common::metrics::encode;
use adapter_common::{Meter, ServerTotals};
use protocol::{CloseReason, ConnectionStats};

/// The value of the sample `name` (with its labels, as written) in `text`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn scrape_names_every_metric_with_the_totals_values() {
    let t = Arc::new(ServerTotals::default());
    t.set_live();
    t.connection_opened();
    t.connection_opened();
    t.refused.fetch_add(4, std::sync::atomic::Ordering::Relaxed);
    let mut m = Meter::new(&t, Instant::now());
    m.answered(2, Duration::from_micros(20)); // the 50 µs bucket
    m.answered(1, Duration::from_millis(2)); // the 5 ms bucket
    let stats = ConnectionStats {
        frames_in: 3,
        frames_out: 3,
        bytes_in: 60,
        bytes_out: 42,
        conns_in: 1,
        refused_out: 1,
    };
    let client = Some("203.0.113.7".parse().unwrap_or_else(|e| panic!("{e}")));
    t.connection_closed_metered(&stats, &CloseReason::PeerClosed, client, &mut m);
    let text = encode(&t);
    let want = [
        ("lenproto_connections_accepted_total", 2.0),
        ("lenproto_connections_refused_total", 4.0),
        ("lenproto_connections_open", 1.0),
        (
            "lenproto_connections_closed_total{reason=\"peer_closed\"}",
            1.0,
        ),
        ("lenproto_requests_total{kind=\"conn\"}", 1.0),
        ("lenproto_requests_total{kind=\"submit\"}", 2.0),
        ("lenproto_acks_total{result=\"ok\"}", 2.0),
        ("lenproto_acks_total{result=\"error\"}", 1.0),
        ("lenproto_requests_in_flight", 0.0),
        ("lenproto_frame_errors_total", 0.0),
        ("lenproto_received_bytes_total", 60.0),
        ("lenproto_sent_bytes_total", 42.0),
        ("lenproto_handler_latency_seconds_count", 3.0),
        (
            "lenproto_client_connections_total{client=\"203.0.113.7\"}",
            1.0,
        ),
        ("lenproto_handler_latency_seconds_bucket{le=\"1e-05\"}", 0.0),
        ("lenproto_handler_latency_seconds_bucket{le=\"5e-05\"}", 2.0),
        ("lenproto_handler_latency_seconds_bucket{le=\"0.005\"}", 3.0),
        ("lenproto_handler_latency_seconds_bucket{le=\"+Inf\"}", 3.0),
    ];
    for (name, value) in want {
        assert_eq!(sample(&text, name), Some(value), "{name} in:\n{text}");
    }
    let sum = sample(&text, "lenproto_handler_latency_seconds_sum").unwrap_or_default();
    assert!((sum - 0.00204).abs() < 1e-9, "sum {sum}");
    assert!(
        text.contains("# TYPE lenproto_handler_latency_seconds histogram"),
        "{text}"
    );
}
