//! A server's [`ServerTotals`] as a Prometheus scrape (the text format,
//! version 0.0.4), encoded by the Prometheus project's `prometheus-client`.
//!
//! Nothing is registered per request: [`Totals`] is a collector that reads
//! the totals' atomics when the scrape comes. Counters of live
//! connections are at most [`FOLD_EVERY`](crate::FOLD_EVERY) old (see
//! [`Meter`](crate::Meter)).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `lenproto_connections_accepted_total` | counter | |
//! | `lenproto_connections_refused_total` (over max-connections) | counter | |
//! | `lenproto_connections_open` | gauge | |
//! | `lenproto_connections_closed_total` | counter | `reason`: `CloseReason::kind()` |
//! | `lenproto_requests_total` | counter | `kind`: `conn`, `submit` |
//! | `lenproto_acks_total` | counter | `result`: `ok`, `error` |
//! | `lenproto_requests_in_flight` | gauge | |
//! | `lenproto_frame_errors_total` | counter | |
//! | `lenproto_received_bytes_total`, `lenproto_sent_bytes_total` | counter | |
//! | `lenproto_handler_latency_seconds` | histogram | |
//! | `lenproto_client_connections_total` (ended, per client: the address behind the proxy with `--proxy-protocol`) | counter | `client`: IP address, or `other` past [`MAX_CLIENTS`](crate::MAX_CLIENTS) |

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::totals::{LATENCY_BOUNDS, ServerTotals};

/// The `Content-Type` of what [`encode`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The totals, as a collector for a `prometheus-client` [`Registry`] of
/// one's own (register it with `register_collector`).
#[derive(Debug, Clone)]
pub struct Totals(pub Arc<ServerTotals>);

/// The scrape of `totals`: every metric of the module table.
pub fn encode(totals: &Arc<ServerTotals>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Totals(Arc::clone(totals))));
    let mut out = String::new();
    // Writing into a String does not fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

fn counter(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: &AtomicU64,
) -> fmt::Result {
    let c = ConstCounter::new(v.load(Ordering::Relaxed));
    c.encode(e.encode_descriptor(name, help, unit, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> fmt::Result {
    let g = ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

/// One counter family: `name{label="value"}` per pair.
fn counters<'a>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &'static str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) -> fmt::Result {
    let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in values {
        let labels = [(label, value)];
        ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Totals {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> fmt::Result {
        let t = &*self.0;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut e,
            "lenproto_connections_accepted",
            "Connections accepted and served.",
            None,
            &t.accepted,
        )?;
        counter(
            &mut e,
            "lenproto_connections_refused",
            "Connections accepted and closed at once: over max-connections.",
            None,
            &t.refused,
        )?;
        gauge(
            &mut e,
            "lenproto_connections_open",
            "Connections open now.",
            t.open_now(),
        )?;
        counters(
            &mut e,
            "lenproto_connections_closed",
            "Connections ended, by the reason they ended for.",
            "reason",
            t.closes_by_reason(),
        )?;
        let (requests, conns) = (l(&t.requests), l(&t.conn_requests));
        counters(
            &mut e,
            "lenproto_requests",
            "Requests received, by kind.",
            "kind",
            [("conn", conns), ("submit", requests.saturating_sub(conns))],
        )?;
        let (acks, refused) = (l(&t.acks), l(&t.acks_refused));
        counters(
            &mut e,
            "lenproto_acks",
            "Acks sent, by result (ok: 0, error: any other).",
            "result",
            [("ok", acks.saturating_sub(refused)), ("error", refused)],
        )?;
        gauge(
            &mut e,
            "lenproto_requests_in_flight",
            "Requests received and not answered yet.",
            t.in_flight(),
        )?;
        counter(
            &mut e,
            "lenproto_frame_errors",
            "Connections closed because the peer broke the framing.",
            None,
            &t.frame_errors,
        )?;
        counter(
            &mut e,
            "lenproto_received",
            "Bytes received.",
            Some(&Unit::Bytes),
            &t.bytes_in,
        )?;
        counter(
            &mut e,
            "lenproto_sent",
            "Bytes written.",
            Some(&Unit::Bytes),
            &t.bytes_out,
        )?;
        let (clients, others) = t.clients();
        let named: Vec<(String, u64)> = clients
            .into_iter()
            .map(|(ip, n)| (ip.to_string(), n))
            .chain((others > 0).then(|| ("other".to_owned(), others)))
            .collect();
        counters(
            &mut e,
            "lenproto_client_connections",
            "Connections ended, by client address (behind a proxy: the client it names).",
            "client",
            named.iter().map(|(c, n)| (c.as_str(), *n)),
        )?;
        // Per bucket, not cumulative: the encoder sums them up.
        let (buckets, sum) = t.latency();
        let bounds: Vec<(f64, u64)> = buckets
            .iter()
            .enumerate()
            .map(|(i, n)| (LATENCY_BOUNDS.get(i).copied().unwrap_or(f64::INFINITY), *n))
            .collect();
        let count = buckets.iter().sum();
        e.encode_descriptor(
            "lenproto_handler_latency",
            "From a request reaching the handler to its answer (answers given at once are timed per batch).",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?
        .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            sum.as_secs_f64(),
            count,
            &bounds,
            None,
        )
    }
}
