//! The load generator behind `adapter-tokio bench`.
//!
//! Each connection is one task driving a [`ClientConnection`] directly
//! (no channel, no per-request allocation): it keeps `pipeline` Submits in
//! flight, writes every queued request in one write, and checks every ack:
//! the core checks that the ack is for the oldest request in flight (id and
//! kind, hence order), the task checks the id against its own counter and
//! that the result is 0. Latencies (submit to ack, as the core measures
//! them) go into a histogram per connection, merged at the end.

use std::fmt;
use std::future::poll_fn;
use std::io::IsTerminal as _;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use adapter_cli::EndpointArgs;
use adapter_common::runtime::{Deadline, poll_read_step, poll_write_step};
use adapter_common::{ClientSession, ClientTls, Endpoint, Runtime, SocketOptions};
use adapter_tokio::{Tokio, TokioSocket};
use clap::Args;
use hdrhistogram::Histogram;
use protocol::{
    Backoff, BackoffConfig, ClientConfig, ClientConnection, ClientEvent, MessageId, RequestKind,
};

/// `bench` flags.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// TCP address of the server; give it more than once to load several
    /// servers at once: connection i goes to the (i mod N)-th address.
    #[arg(
        long = "addr",
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:8888"
    )]
    pub addrs: Vec<std::net::SocketAddr>,
    /// Use this Unix domain socket path instead of TCP.
    #[arg(long, value_name = "PATH", conflicts_with = "addrs")]
    pub unix: Option<std::path::PathBuf>,
    /// Connections, each driven by its own task.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub conns: u32,
    /// Requests kept in flight on each connection (1: send, wait for the
    /// ack, send the next).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub pipeline: u32,
    /// Run for this long (e.g. 10s, 500ms, 2m) [default: 10s unless
    /// --requests is given].
    #[arg(long, value_name = "TIME", value_parser = parse_duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,
    /// Send exactly this many requests in all (split evenly across the
    /// connections), instead of running for a duration.
    #[arg(long, value_name = "N")]
    pub requests: Option<u64>,
    /// Payload bytes per Submit.
    #[arg(long, value_name = "BYTES", default_value_t = 32)]
    pub payload: usize,
    /// Run this long first without counting (connections and caches warm up).
    #[arg(long, value_name = "TIME", value_parser = parse_duration, default_value = "0s")]
    pub warmup: Duration,
    /// Print one JSON object (stdout) instead of the summary lines.
    #[arg(long)]
    pub json: bool,
    /// Each connection sends one Submit, closes and connects again: new
    /// connections per second (with TLS, a full handshake each).
    #[arg(long)]
    pub churn: bool,
    /// A connection that is lost (the server closed it or died) connects
    /// again, after an exponential backoff with jitter (100 ms doubling to
    /// --backoff-max), to the next address: the run goes on. Its requests
    /// in flight are counted as lost (failed, never resent).
    #[arg(long, conflicts_with = "churn")]
    pub reconnect: bool,
    /// The longest wait between two attempts to connect again.
    #[arg(long, value_name = "TIME", value_parser = parse_duration, default_value = "2s", requires = "reconnect")]
    pub backoff_max: Duration,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tls: adapter_cli::ClientTlsArgs,
}

/// Parses `10s`, `500ms`, `2m`, `1h`, `1.5s`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: want e.g. 10s, 500ms, 2m"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "us" | "µs" => value / 1_000_000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit {unit:?} in {s:?}: use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// When the connections stop sending.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Until(Instant),
    Count(u64),
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Where it ran against (connection i: the (i mod N)-th).
    pub endpoints: Vec<Endpoint>,
    /// Connections.
    pub conns: u32,
    /// Requests in flight per connection.
    pub pipeline: u32,
    /// Payload bytes per request.
    pub payload: usize,
    /// The measured time (after the warmup, until the last ack).
    pub elapsed: Duration,
    /// Acks received in the measured time with result 0.
    pub ok: u64,
    /// Acks received in the measured time with another result, or whose id
    /// was not the one expected.
    pub errors: u64,
    /// Bytes written and read in the measured time, both directions.
    pub bytes: u64,
    /// Latencies in nanoseconds.
    pub latency: Histogram<u64>,
    /// One line per connection that failed (io error, protocol error, timeout).
    pub connection_errors: Vec<String>,
    /// Requests handed to the connections, warmup included.
    pub sent: u64,
    /// Acks received, warmup included.
    pub answered: u64,
    /// Requests in flight on a connection that was lost: failed, not resent.
    pub lost: u64,
    /// Connections lost and made again (`--reconnect`).
    pub reconnects: u64,
}

impl BenchReport {
    /// Acks counted (ok and errors).
    pub fn requests(&self) -> u64 {
        self.ok + self.errors
    }

    /// Requests per second.
    pub fn rate(&self) -> f64 {
        per_second(self.requests() as f64, self.elapsed)
    }

    /// Megabytes (10^6) per second on the wire, both directions.
    pub fn megabytes_per_second(&self) -> f64 {
        per_second(self.bytes as f64 / 1e6, self.elapsed)
    }

    /// True when every ack was ok, no connection failed and none was lost.
    pub fn is_clean(&self) -> bool {
        self.errors == 0 && self.connection_errors.is_empty() && self.lost == 0
    }

    /// The endpoints, comma-separated.
    fn endpoints_text(&self) -> String {
        let all: Vec<String> = self.endpoints.iter().map(ToString::to_string).collect();
        all.join(", ")
    }

    fn percentile_us(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "endpoint": self.endpoints_text(),
            "conns": self.conns,
            "pipeline": self.pipeline,
            "payload": self.payload,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "requests": self.requests(),
            "ok": self.ok,
            "errors": self.errors,
            "connection_errors": self.connection_errors,
            "sent": self.sent,
            "answered": self.answered,
            "lost": self.lost,
            "reconnects": self.reconnects,
            "req_per_s": self.rate(),
            "mb_per_s": self.megabytes_per_second(),
            "latency_us": {
                "p50": self.percentile_us(0.50),
                "p90": self.percentile_us(0.90),
                "p99": self.percentile_us(0.99),
                "p99_9": self.percentile_us(0.999),
                "max": self.latency.max() as f64 / 1000.0,
            },
            "clean": self.is_clean(),
        })
    }
}

impl fmt::Display for BenchReport {
    /// The summary lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "bench: {} conns x pipeline {}, {}-byte payloads, {:.2} s against {}",
            self.conns,
            self.pipeline,
            self.payload,
            self.elapsed.as_secs_f64(),
            self.endpoints_text()
        )?;
        writeln!(
            f,
            "requests: {} ({} ok, {} errors); connection errors: {}",
            self.requests(),
            self.ok,
            self.errors,
            self.connection_errors.len()
        )?;
        if self.reconnects > 0 || self.lost > 0 {
            writeln!(
                f,
                "reconnects: {}; sent {} = {} answered + {} lost in flight (failed, not resent)",
                self.reconnects, self.sent, self.answered, self.lost
            )?;
        }
        writeln!(
            f,
            "throughput: {:.0} req/s, {:.2} MB/s (requests + acks on the wire)",
            self.rate(),
            self.megabytes_per_second()
        )?;
        write!(
            f,
            "latency: p50={:.1}µs p90={:.1}µs p99={:.1}µs p99.9={:.1}µs max={:.1}µs",
            self.percentile_us(0.50),
            self.percentile_us(0.90),
            self.percentile_us(0.99),
            self.percentile_us(0.999),
            self.latency.max() as f64 / 1000.0
        )
    }
}

fn per_second(amount: f64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { amount / secs } else { 0.0 }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A connection could not be made.
    #[error("connection {index}: cannot connect to {endpoint}: {source}")]
    Connect {
        /// Which connection (0-based).
        index: u32,
        /// Where.
        endpoint: Endpoint,
        /// Why.
        source: std::io::Error,
    },
    /// The flags cannot be run.
    #[error("{0}")]
    Invalid(String),
}

/// What one connection measured.
struct ConnReport {
    ok: u64,
    errors: u64,
    bytes: u64,
    latency: Histogram<u64>,
    failure: Option<String>,
    sent: u64,
    answered: u64,
    lost: u64,
    reconnects: u64,
}

impl ConnReport {
    fn empty(latency: Histogram<u64>) -> Self {
        Self {
            ok: 0,
            errors: 0,
            bytes: 0,
            latency,
            failure: None,
            sent: 0,
            answered: 0,
            lost: 0,
            reconnects: 0,
        }
    }

    /// Adds the counts of `r` (not its failure).
    fn add(&mut self, r: &ConnReport) {
        self.ok += r.ok;
        self.errors += r.errors;
        self.bytes += r.bytes;
        self.sent += r.sent;
        self.answered += r.answered;
        self.lost += r.lost;
        self.reconnects += r.reconnects;
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&r.latency);
    }
}

fn new_histogram() -> Result<Histogram<u64>, BenchError> {
    // 1 ns to 1 hour, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
        .map_err(|e| BenchError::Invalid(format!("histogram: {e}")))
}

async fn connect(endpoint: &Endpoint, index: u32) -> Result<TokioSocket, BenchError> {
    Tokio
        .connect(endpoint, &SocketOptions::default())
        .await
        .map_err(|source| BenchError::Connect {
            index,
            endpoint: endpoint.clone(),
            source,
        })
}

pub async fn run(args: &BenchArgs) -> Result<BenchReport, BenchError> {
    let endpoints: Vec<Endpoint> = match &args.unix {
        Some(path) => vec![Endpoint::Unix(path.clone())],
        None => args.addrs.iter().copied().map(Endpoint::Tcp).collect(),
    };
    let at = |index: u32| &endpoints[index as usize % endpoints.len()];
    let config = ClientConfig {
        max_in_flight: ClientConfig::default()
            .max_in_flight
            .max(args.pipeline as usize),
        ..ClientConfig::default()
    };
    if args.payload + protocol::REQUEST_OVERHEAD > config.max_frame_len as usize {
        return Err(BenchError::Invalid(format!(
            "--payload {} makes frames over the {}-byte limit",
            args.payload, config.max_frame_len
        )));
    }
    // The TLS server name defaults from the first address.
    let first = EndpointArgs {
        addr: args
            .addrs
            .first()
            .copied()
            .unwrap_or(([127, 0, 0, 1], 8888).into()),
        unix: args.unix.clone(),
    };
    let tls = args.tls.client_tls(&first);
    let mut streams = Vec::with_capacity(args.conns as usize);
    for index in 0..args.conns {
        streams.push(connect(at(index), index).await?);
    }
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let progress = Arc::new(AtomicU64::new(0));
    let payload: Arc<[u8]> = vec![b'x'; args.payload].into();
    let mut tasks = Vec::with_capacity(streams.len());
    let total = args.requests;
    let conns = u64::from(args.conns);
    for (index, stream) in (0u64..).zip(streams) {
        let plan = match total {
            Some(n) => Plan::Count(n / conns + u64::from(index < n % conns)),
            None => Plan::Until(measure_from + args.duration.unwrap_or(Duration::from_secs(10))),
        };
        let job = Job {
            config: config.clone(),
            plan,
            pipeline: args.pipeline as usize,
            payload: Arc::clone(&payload),
            measure_from,
            progress: Arc::clone(&progress),
            latency: new_histogram()?,
            tls: tls.clone(),
        };
        if args.churn {
            let to = at(index as u32).clone();
            tasks.push(tokio::spawn(job.churn(stream, to, index as u32)));
        } else if args.reconnect {
            let backoff = BackoffConfig {
                max: args.backoff_max.max(Duration::from_millis(100)),
                ..BackoffConfig::default()
            };
            // From the next address on, in turn.
            let mut order: Vec<Endpoint> = endpoints.clone();
            order.rotate_left(index as usize % endpoints.len());
            tasks.push(tokio::spawn(job.reconnecting(stream, order, backoff)));
        } else {
            tasks.push(tokio::spawn(job.drive(stream)));
        }
    }
    let ticker = std::io::stderr()
        .is_terminal()
        .then(|| tokio::spawn(show_progress(Arc::clone(&progress), measure_from)));
    let mut total = ConnReport::empty(new_histogram()?);
    let mut connection_errors = Vec::new();
    for (index, task) in tasks.into_iter().enumerate() {
        match task.await {
            Ok(conn) => {
                total.add(&conn);
                if let Some(failure) = conn.failure {
                    connection_errors.push(format!("connection {index}: {failure}"));
                }
            }
            Err(e) => connection_errors.push(format!("connection {index}: task failed: {e}")),
        }
    }
    let mut report = BenchReport {
        endpoints: endpoints.clone(),
        conns: args.conns,
        pipeline: args.pipeline,
        payload: args.payload,
        elapsed: Duration::ZERO,
        ok: total.ok,
        errors: total.errors,
        bytes: total.bytes,
        latency: total.latency,
        connection_errors,
        sent: total.sent,
        answered: total.answered,
        lost: total.lost,
        reconnects: total.reconnects,
    };
    report.elapsed = Instant::now().saturating_duration_since(measure_from);
    if let Some(ticker) = ticker {
        ticker.abort();
        eprint!("\r\x1b[2K");
    }
    Ok(report)
}

/// A progress line each second (stderr is a terminal).
async fn show_progress(done: Arc<AtomicU64>, measure_from: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = 0;
    loop {
        tick.tick().await;
        if Instant::now() < measure_from {
            eprint!("\r\x1b[2K  warming up");
            continue;
        }
        let now = done.load(Ordering::Relaxed);
        let secs = measure_from.elapsed().as_secs_f64();
        eprint!(
            "\r\x1b[2K{secs:6.1} s  {now:>12} acks  {:>10} req/s",
            now - last
        );
        last = now;
    }
}

struct Job {
    config: ClientConfig,
    plan: Plan,
    pipeline: usize,
    payload: Arc<[u8]>,
    measure_from: Instant,
    progress: Arc<AtomicU64>,
    latency: Histogram<u64>,
    /// TLS on the connection (the handshake counts as its first request's
    /// latency: use --warmup to leave it out).
    tls: Option<ClientTls>,
}

impl Job {
    /// One connection's loop: the same read/write/timer steps as the
    /// servers' and clients' drivers (adapter-common's runtime module),
    /// driving the client core directly.
    async fn drive(mut self, mut socket: TokioSocket) -> ConnReport {
        let core = ClientConnection::new(self.config.clone());
        let mut conn = match &self.tls {
            None => ClientSession::Plain(core),
            Some(tls) => match tls.connect(core) {
                Ok(tls) => ClientSession::Tls(Box::new(tls)),
                Err(e) => {
                    let mut r = ConnReport::empty(self.latency);
                    r.failure = Some(format!("TLS session not started: {e}"));
                    return r;
                }
            },
        };
        let mut next_id = self.config.first_id;
        let mut sent = 0u64;
        let mut answered = 0u64;
        let (mut ok, mut errors) = (0u64, 0u64);
        let mut failure = None;
        let mut closing = false;
        let mut timer = Deadline::default();
        let mut bytes_at_start = None;
        let mut end = None;
        let mut run = pin!(poll_fn(|cx| loop {
            let now = Instant::now();
            let mut acked = 0;
            while let Some(event) = conn.poll_event() {
                let ack = match event {
                    ClientEvent::Ack(ack) => ack,
                    ClientEvent::Closed(reason) => {
                        end = Some(reason);
                        return Poll::Ready(());
                    }
                };
                acked += 1;
                answered += 1;
                let expected = MessageId::from_counter(next_id);
                next_id = next_id.wrapping_add(1);
                if now < self.measure_from {
                    continue;
                }
                if ack.id == expected && ack.result.is_ok() {
                    ok += 1;
                } else {
                    errors += 1;
                }
                let _ = self
                    .latency
                    .record(u64::try_from(ack.rtt.as_nanos()).unwrap_or(u64::MAX).max(1));
            }
            if acked > 0 && now >= self.measure_from {
                self.progress.fetch_add(acked, Ordering::Relaxed);
            }
            if bytes_at_start.is_none() && now >= self.measure_from {
                let s = conn.core().stats();
                bytes_at_start = Some(s.bytes_in + s.bytes_out);
            }
            if !closing {
                while conn.core().in_flight() < self.pipeline && self.may_send(sent, now) {
                    if let Err(e) = conn.request(RequestKind::Submit, &self.payload, now) {
                        failure = Some(format!("submit refused: {e}"));
                        break;
                    }
                    sent += 1;
                }
                if failure.is_some() || !self.may_send(sent, now) {
                    conn.close(now);
                    closing = true;
                    continue;
                }
            }
            if let Err(e) = poll_write_step(
                &mut socket,
                cx,
                &mut conn,
                ClientSession::transmit,
                |c, n| c.handle_written(n, now),
            ) {
                failure = Some(format!("write failed: {e}"));
                return Poll::Ready(());
            }
            match poll_read_step(&mut socket, cx, &mut conn, now) {
                Poll::Ready(Ok(0)) => conn.handle_eof(now),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    failure = Some(format!("socket error: {e}"));
                    return Poll::Ready(());
                }
                Poll::Pending => {
                    let until = match self.plan {
                        Plan::Until(at) if !closing => Some(at),
                        _ => None,
                    };
                    let at = match (conn.poll_timeout(), until) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    if timer.poll(cx, &Tokio, at, now).is_ready() {
                        conn.handle_timeout(now);
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }));
        run.as_mut().await;
        if failure.is_none()
            && let Some(reason) = end.filter(|r| !r.is_clean())
        {
            failure = Some(reason.to_string());
        }
        let s = conn.core().stats();
        let bytes = (s.bytes_in + s.bytes_out).saturating_sub(bytes_at_start.unwrap_or(u64::MAX));
        ConnReport {
            ok,
            errors,
            bytes,
            latency: self.latency,
            sent,
            answered,
            // Unanswered at the end: failed with the connection.
            lost: if failure.is_some() {
                sent - answered
            } else {
                0
            },
            failure,
            reconnects: 0,
        }
    }

    /// A copy for the next connection of the same task: the plan less
    /// what was sent, a fresh histogram.
    fn next_leg(&self, sent: u64) -> Job {
        Job {
            config: self.config.clone(),
            plan: match self.plan {
                Plan::Count(n) => Plan::Count(n.saturating_sub(sent)),
                until => until,
            },
            pipeline: self.pipeline,
            payload: Arc::clone(&self.payload),
            measure_from: self.measure_from,
            progress: Arc::clone(&self.progress),
            latency: self.latency.clone(),
            tls: self.tls.clone(),
        }
    }

    /// `--reconnect`: drives a connection; when it is lost before the plan
    /// is done, waits out the backoff and connects to the next endpoint
    /// (in turn), and goes on. Requests in flight on a lost connection
    /// are counted as lost; the run fails only when connecting keeps
    /// failing past the plan's end.
    async fn reconnecting(
        self,
        first: TokioSocket,
        endpoints: Vec<Endpoint>,
        backoff: BackoffConfig,
    ) -> ConnReport {
        let mut total = ConnReport::empty(self.latency.clone());
        let mut backoff = Backoff::new(backoff);
        let mut next = Some(first);
        let mut turn = 0usize;
        loop {
            let socket = match next.take() {
                Some(s) => s,
                None => {
                    turn += 1;
                    let to = &endpoints[turn % endpoints.len()];
                    match connect(to, 0).await {
                        Ok(s) => {
                            total.reconnects += 1;
                            s
                        }
                        Err(e) => {
                            if !self.wait_out(&mut backoff, &e.to_string()).await {
                                total.failure = Some(format!("cannot connect again: {e}"));
                                return total;
                            }
                            continue;
                        }
                    }
                }
            };
            let r = self.next_leg(total.sent).drive(socket).await;
            total.add(&r);
            let Some(failure) = r.failure else {
                return total;
            };
            if r.answered > 0 {
                backoff.succeeded();
            }
            if !self.wait_out(&mut backoff, &failure).await {
                return total;
            }
        }
    }

    /// After a lost connection or a failed attempt: waits the backoff's
    /// next delay; false when the plan is done (or its end comes first)
    /// and the task should stop.
    async fn wait_out(&self, backoff: &mut Backoff, why: &str) -> bool {
        let Some(wait) = backoff.failed(adapter_common::random_u64()) else {
            return false;
        };
        let until = Instant::now() + wait;
        if let Plan::Until(end) = self.plan
            && until >= end
        {
            return false;
        }
        tracing::debug!("{why}; connecting again in {wait:?}");
        tokio::time::sleep_until(until.into()).await;
        true
    }

    /// `--churn`: one Submit per connection, reconnecting until the plan
    /// (a duration, or a count of connections) is done.
    async fn churn(self, first: TokioSocket, endpoint: Endpoint, index: u32) -> ConnReport {
        let mut total = ConnReport::empty(self.latency.clone());
        let mut next = Some(first);
        let mut done = 0u64;
        while self.may_send(done, Instant::now()) {
            let socket = match next.take() {
                Some(s) => s,
                None => match connect(&endpoint, index).await {
                    Ok(s) => s,
                    Err(e) => {
                        total.failure = Some(e.to_string());
                        break;
                    }
                },
            };
            let one = Job {
                plan: Plan::Count(1),
                pipeline: 1,
                ..self.next_leg(0)
            };
            let r = one.drive(socket).await;
            done += 1;
            total.add(&r);
            if r.failure.is_some() {
                total.failure = r.failure;
                break;
            }
        }
        total
    }

    fn may_send(&self, sent: u64, now: Instant) -> bool {
        match self.plan {
            Plan::Until(at) => now < at,
            Plan::Count(n) => sent < n,
        }
    }
}
