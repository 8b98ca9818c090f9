//! `serve --metrics-addr` through an adapter's binary, the same for every
//! adapter: a real scrape of `GET /metrics` over HTTP after a known load,
//! whose counters equal what the clients counted, live and after the
//! connections end. Run by [`proxy_binary_suite!`](crate::proxy_binary_suite).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use protocol::{ACK_FRAME_LEN, RequestKind};

use crate::Endpoint;
use crate::support::TestClient;
use crate::tls_cli::{Binary, Serve, WITHIN};

/// One HTTP/1.0 exchange with the metrics endpoint: status code and body.
pub(crate) fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(WITHIN))
        .unwrap_or_else(|e| panic!("{e}"));
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .unwrap_or_else(|e| panic!("write to {addr}: {e}"));
    let mut got = String::new();
    s.read_to_string(&mut got)
        .unwrap_or_else(|e| panic!("read from {addr}: {e}"));
    let (head, body) = got
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: not an HTTP answer: {got:?}"));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status code in {head:?}"));
    (code, body.to_owned())
}

/// The value of sample `name` (labels included, as written) in a scrape.
pub(crate) fn sample(scrape: &str, name: &str) -> Option<f64> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Scrapes until `done` holds for the scrape (counters of live
/// connections are folded in every 100 ms), or panics after [`WITHIN`]
/// with the last one.
pub(crate) fn scrape_until(addr: SocketAddr, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WITHIN;
    loop {
        let (code, body) = http(addr, "GET", "/metrics");
        assert_eq!(code, 200, "GET /metrics: {body}");
        if done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "the scrape never showed {what} within {WITHIN:?}:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The metrics endpoint of `serve`, from its log line (before "listening on").
pub(crate) fn metrics_addr(serve: &Serve) -> SocketAddr {
    let line = serve
        .logged("metrics on http://")
        .unwrap_or_else(|| panic!("the server logged no \"metrics on http://\" line"));
    let at = line.find("http://").map_or("", |i| &line[i + 7..]);
    at.trim()
        .trim_end_matches("/metrics")
        .parse()
        .unwrap_or_else(|e| panic!("no metrics address in {line:?}: {e}"))
}

/// A known load (with `--require-conn`: 3 Submits before the Conn, refused;
/// the Conn; 10 Submits; then a connection that breaks the framing), its
/// acks counted by the client; the scrape equals those counts while the
/// connection lives and after it ends, and other paths and methods are
/// refused.
pub fn metrics_scrape_equals_what_the_clients_counted(bin: Binary<'_>) {
    let serve = Serve::spawn(
        bin,
        &[
            "--addr",
            "127.0.0.1:0",
            "--require-conn",
            "--metrics-addr",
            "127.0.0.1:0",
        ],
    );
    let metrics = metrics_addr(&serve);
    let endpoint = Endpoint::Tcp(serve.addr);

    let mut client = TestClient::connect(&endpoint, "metered");
    let mut sent = Vec::new();
    for _ in 0..3 {
        sent.extend(client.submit_frame(b"before conn").1);
    }
    sent.extend(client.conn_frame(b"hello").1);
    for n in 0..10u8 {
        sent.extend(client.submit_frame(&[b'x'; 20][..usize::from(n)]).1);
    }
    client.send(&sent);
    let (mut ok, mut error, mut conns) = (0u64, 0u64, 0u64);
    for _ in 0..14 {
        let a = client.read_answer(WITHIN, &"an ack");
        if a.result.is_ok() {
            ok += 1;
        } else {
            error += 1;
        }
        conns += u64::from(a.kind == RequestKind::Conn);
    }
    assert_eq!((ok, error, conns), (11, 3, 1), "{}: the acks", bin.path);

    // While it lives: folded in within a fold interval.
    let live = scrape_until(metrics, "13 Submits from the open connection", |s| {
        sample(s, "lenproto_requests_total{kind=\"submit\"}") == Some(13.0)
    });
    assert_eq!(
        sample(&live, "lenproto_connections_open"),
        Some(1.0),
        "{live}"
    );
    assert_eq!(
        sample(&live, "lenproto_requests_in_flight"),
        Some(0.0),
        "{live}"
    );

    // A connection that breaks the framing: an unknown command.
    let mut bad = TcpStream::connect(serve.addr).unwrap_or_else(|e| panic!("connect: {e}"));
    bad.set_read_timeout(Some(WITHIN))
        .unwrap_or_else(|e| panic!("{e}"));
    let garbage = [&[0u8, 0, 0, 13, 0x7f][..], b"00000001"].concat();
    bad.write_all(&garbage)
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut rest = Vec::new();
    let _ = bad.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{}: answered garbage: {rest:?}", bin.path);
    drop(client);

    let end = scrape_until(metrics, "both connections closed", |s| {
        sample(s, "lenproto_connections_open") == Some(0.0)
            && sample(s, "lenproto_frame_errors_total") == Some(1.0)
    });
    let received = (sent.len() + garbage.len()) as f64;
    let want = [
        ("lenproto_connections_accepted_total", 2.0),
        ("lenproto_connections_refused_total", 0.0),
        ("lenproto_requests_total{kind=\"conn\"}", 1.0),
        ("lenproto_requests_total{kind=\"submit\"}", 13.0),
        ("lenproto_acks_total{result=\"ok\"}", ok as f64),
        ("lenproto_acks_total{result=\"error\"}", error as f64),
        ("lenproto_requests_in_flight", 0.0),
        ("lenproto_received_bytes_total", received),
        ("lenproto_sent_bytes_total", (14 * ACK_FRAME_LEN) as f64),
        (
            "lenproto_connections_closed_total{reason=\"peer_closed\"}",
            1.0,
        ),
        (
            "lenproto_client_connections_total{client=\"127.0.0.1\"}",
            2.0,
        ),
        // The Conn and the 10 Submits reached the handler; the refused
        // ones never did.
        ("lenproto_handler_latency_seconds_count", 11.0),
        ("lenproto_handler_latency_seconds_bucket{le=\"+Inf\"}", 11.0),
    ];
    for (name, value) in want {
        assert_eq!(
            sample(&end, name),
            Some(value),
            "{}: {name} in the scrape:\n{end}",
            bin.path
        );
    }

    let (code, _) = http(metrics, "GET", "/");
    assert_eq!(code, 404, "{}: GET /", bin.path);
    let (code, _) = http(metrics, "POST", "/metrics");
    assert_eq!(code, 405, "{}: POST /metrics", bin.path);
}

/// A metrics address that cannot be served fails the start (exit 1, as
/// an address to listen on that is in use) with a line that names it.
pub fn metrics_addr_in_use_fails_the_start_naming_it(bin: Binary<'_>) {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let at = taken
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .to_string();
    let mut cmd = std::process::Command::new(bin.path);
    cmd.envs(bin.env.iter().copied()).args([
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--metrics-addr",
        &at,
    ]);
    let run = harness::run(cmd, "serve --metrics-addr (in use)", WITHIN)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.status.code(), Some(1), "{}: {}", bin.path, run.stderr);
    assert!(
        run.stderr.contains(&at) && !run.stderr.contains("listening on"),
        "{}: {}",
        bin.path,
        run.stderr
    );
}
