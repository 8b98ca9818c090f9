//! Behind a load balancer, through an adapter's binary, the same for
//! every adapter: `serve --proxy-protocol` (the PROXY header a load
//! balancer writes first, v1 and v2, plain and under TLS; its client
//! address in the server's log; a connection without one closed while
//! others are served), and `serve --reuse-port` (several processes on one
//! port).
//!
//! An adapter's test file runs them all with [`proxy_binary_suite!`](crate::proxy_binary_suite).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use harness::pki::{SERVER_NAME, TestPki};
use protocol::{AckResult, MessageId, PROXY_V2_SIGNATURE, RequestKind};
use rustls::pki_types::ServerName;

use crate::metrics_cli::{metrics_addr, sample, scrape_until};
use crate::support::{ack_frame, request_frame};
use crate::tls_cli::{Binary, Serve, WITHIN};

/// What HAProxy's `send-proxy` writes for a client at 203.0.113.7:56324.
const V1: &[u8] = b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 8888\r\n";
/// What `send-proxy-v2` writes for a client at [2001:db8::7]:40000.
fn v2() -> Vec<u8> {
    let mut h = PROXY_V2_SIGNATURE.to_vec();
    h.extend([0x21, 0x21, 0, 36]);
    h.extend([0x20, 0x01, 0x0d, 0xb8]);
    h.extend([0; 11]);
    h.push(7);
    h.extend([0; 15]);
    h.push(1);
    h.extend(40000u16.to_be_bytes());
    h.extend(8888u16.to_be_bytes());
    h
}

/// Sends `prefix`, then one Submit, over `stream`; returns what came back
/// until the end or an ack's worth.
fn submit_after(stream: &mut impl ReadWrite, prefix: &[u8], counter: u32) -> Vec<u8> {
    let id = MessageId::from_counter(counter);
    let frame = request_frame(RequestKind::Submit, &id, b"proxied");
    stream
        .write_all(&[prefix, &frame].concat())
        .and_then(|()| stream.flush())
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut got = vec![0u8; protocol::ACK_FRAME_LEN];
    let mut n = 0;
    while n < got.len() {
        match stream.read(&mut got[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    got.truncate(n);
    got
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn connect(serve: &Serve) -> TcpStream {
    let s = TcpStream::connect(serve.addr).unwrap_or_else(|e| panic!("connect: {e}"));
    s.set_read_timeout(Some(WITHIN))
        .unwrap_or_else(|e| panic!("{e}"));
    s
}

/// A TCP connection to `to` from the loopback address `ip` (any port).
fn connect_from(ip: [u8; 4], to: SocketAddr) -> TcpStream {
    let connect = || -> std::io::Result<TcpStream> {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        sock.bind(&SocketAddr::from((ip, 0)).into())?;
        sock.connect_timeout(&to.into(), WITHIN)?;
        let s = TcpStream::from(sock);
        s.set_read_timeout(Some(WITHIN))?;
        Ok(s)
    };
    connect().unwrap_or_else(|e| panic!("connect from {ip:?} to {to}: {e}"))
}

fn ack(counter: u32) -> Vec<u8> {
    ack_frame(
        RequestKind::Submit,
        &MessageId::from_counter(counter),
        AckResult::OK,
    )
    .to_vec()
}

/// v1 and v2 headers are taken off and their client is the one logged; a
/// connection without a header is closed with a logged reason and no
/// answer, and the next proxied client is still served.
pub fn proxy_protocol_logs_the_real_client_and_closes_a_connection_without_a_header(
    bin: Binary<'_>,
) {
    let mut serve = Serve::spawn(bin, &["--addr", "127.0.0.1:0", "--proxy-protocol"]);
    let got = submit_after(&mut connect(&serve), V1, 1);
    assert_eq!(got, ack(1), "{}: after a v1 header", bin.path);
    serve.expect_log("203.0.113.7:56324 (via 127.0.0.1:");
    let got = submit_after(&mut connect(&serve), &v2(), 2);
    assert_eq!(got, ack(2), "{}: after a v2 header", bin.path);
    serve.expect_log("[2001:db8::7]:40000 (via 127.0.0.1:");
    let got = submit_after(&mut connect(&serve), b"", 3);
    assert!(
        got.is_empty(),
        "{}: a connection without a PROXY header got {got:?}",
        bin.path
    );
    serve.expect_log("no PROXY protocol header");
    let got = submit_after(&mut connect(&serve), V1, 4);
    assert_eq!(got, ack(4), "{}: served after the refusal", bin.path);
}

/// What a connection that sent `bytes` (then, when `end`, shut its write
/// side) got back before the server closed it; panics if the server kept
/// it open past the bound.
fn refused_after(serve: &Serve, bytes: &[u8], end: bool, what: &str) -> Vec<u8> {
    let mut s = connect(serve);
    // The server may close (and reset) before the last byte lands: what
    // was read back is what tells.
    let _ = s.write_all(bytes);
    if end {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => {
                panic!("{what}: the server did not close the connection within {WITHIN:?}: {e}")
            }
        }
    }
}

/// A v2 header for 198.51.100.9:1234 carrying `tlvs` bytes of TLVs after
/// its addresses (`announce` overrides the length field when given).
fn v2_with_tlvs(tlvs: usize, announce: Option<u16>) -> Vec<u8> {
    let mut h = PROXY_V2_SIGNATURE.to_vec();
    let len = 12 + tlvs;
    let field = announce.unwrap_or(u16::try_from(len).unwrap_or(u16::MAX));
    h.extend([0x21, 0x11]);
    h.extend(field.to_be_bytes());
    h.extend([198, 51, 100, 9, 192, 0, 2, 1]);
    h.extend(1234u16.to_be_bytes());
    h.extend(8888u16.to_be_bytes());
    // PP2_TYPE_NOOP TLVs (type 0x04), each at most 255 value bytes.
    let mut left = tlvs;
    while left >= 3 {
        let value = (left - 3).min(255);
        h.extend([0x04, 0, u8::try_from(value).unwrap_or(u8::MAX)]);
        h.extend(std::iter::repeat_n(0u8, value));
        left -= 3 + value;
    }
    h.extend(std::iter::repeat_n(0u8, left));
    h
}

/// Bad PROXY headers (cut short by the peer, a wrong signature, TLVs past
/// the limit, a v2 header announcing 64 KiB and sending it) each close
/// their own connection with no answer and a logged reason naming the
/// problem, while a client that connected before keeps being served on
/// its connection and new proxied clients are served; a header with TLVs
/// within the limit is served.
pub fn bad_proxy_headers_close_only_their_connection(bin: Binary<'_>) {
    let mut serve = Serve::spawn(bin, &["--addr", "127.0.0.1:0", "--proxy-protocol"]);
    let mut steady = connect(&serve);
    let mut counter = 1;
    assert_eq!(submit_after(&mut steady, V1, counter), ack(counter));
    let v2 = v2();
    let mut wrong_signature = v2.clone();
    wrong_signature[10] = b'X';
    let mut v2_64k = v2_with_tlvs(0, Some(u16::MAX));
    v2_64k.extend(vec![0u8; 65_535]);
    let frame = request_frame(RequestKind::Submit, &MessageId::from_counter(9), b"x");
    let cases: [(&str, Vec<u8>, bool, &str); 6] = [
        (
            "a v2 header cut short",
            v2[..20].to_vec(),
            true,
            "connection closed after 20 byte(s) of a PROXY header",
        ),
        (
            "a v1 line cut short",
            V1[..15].to_vec(),
            true,
            "connection closed after 15 byte(s) of a PROXY header",
        ),
        (
            "a wrong v2 signature",
            [&wrong_signature[..], &frame].concat(),
            false,
            "no PROXY protocol header",
        ),
        (
            "TLVs past the limit",
            [&v2_with_tlvs(2000, None)[..], &frame].concat(),
            false,
            "PROXY v2 header of 2028 bytes exceeds the limit 1040",
        ),
        (
            "a v2 header announcing 64 KiB",
            v2_64k,
            false,
            "PROXY v2 header of 65551 bytes exceeds the limit 1040",
        ),
        (
            "a v1 line without its CRLF",
            [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat(),
            false,
            "PROXY v1 line longer than 107 bytes",
        ),
    ];
    for (what, bytes, end, reason) in cases {
        let got = refused_after(&serve, &bytes, end, what);
        assert!(
            got.is_empty(),
            "{}: {what} got {} byte(s) back",
            bin.path,
            got.len()
        );
        serve.expect_log(reason);
        counter += 1;
        assert_eq!(
            submit_after(&mut steady, b"", counter),
            ack(counter),
            "{}: the steady connection after {what}",
            bin.path
        );
    }
    counter += 1;
    let got = submit_after(&mut connect(&serve), &v2_with_tlvs(600, None), counter);
    assert_eq!(got, ack(counter), "{}: TLVs within the limit", bin.path);
    serve.expect_log("198.51.100.9:1234 (via 127.0.0.1:");
}

/// Under TLS the header comes first, before the ClientHello (as a load
/// balancer in TCP mode sends it), and its client is the one logged.
pub fn proxy_protocol_comes_before_tls(bin: Binary<'_>) {
    let pki = TestPki::new().unwrap_or_else(|e| panic!("{e}"));
    let mut serve = Serve::start(bin, &pki, &["--proxy-protocol"]);
    let mut tcp = connect(&serve);
    tcp.write_all(V1).unwrap_or_else(|e| panic!("write: {e}"));
    let tls = adapter_common::ClientTls::from_pem_files(&pki.ca(), SERVER_NAME, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let name = ServerName::try_from(SERVER_NAME).unwrap_or_else(|e| panic!("{e}"));
    let conn = rustls::ClientConnection::new(Arc::clone(tls.config()), name)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let got = submit_after(&mut stream, b"", 1);
    assert_eq!(got, ack(1), "{}: over TLS after a v1 header", bin.path);
    drop(stream);
    serve.expect_log("203.0.113.7:56324 (via 127.0.0.1:");
}

/// Two servers started with `--reuse-port` on one port both listen and
/// both serve; once the first is stopped the second serves every new
/// connection; a server without the flag cannot bind that port.
pub fn reuse_port_lets_two_servers_share_a_port(bin: Binary<'_>) {
    let addr = harness::free_tcp_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .to_string();
    let args = ["--addr", addr.as_str(), "--reuse-port"];
    let mut first = Serve::spawn(bin, &args);
    let mut second = Serve::spawn(bin, &args);
    for n in 1..=40 {
        let got = submit_after(&mut connect(&first), b"", n);
        assert_eq!(got, ack(n), "{}: connection {n} with two servers", bin.path);
    }
    // 40 connections from 40 source ports: each server took some.
    first.expect_log("closed");
    second.expect_log("closed");
    let mut cmd = std::process::Command::new(bin.path);
    cmd.envs(bin.env.iter().copied())
        .args(["serve", "--addr", addr.as_str()]);
    let third =
        harness::run(cmd, "serve without --reuse-port", WITHIN).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !third.status.success() && third.stderr.contains("in use"),
        "{}: a server without --reuse-port on a shared port: {:?} {}",
        bin.path,
        third.status,
        third.stderr
    );
    drop(first);
    for n in 41..=60 {
        let got = submit_after(&mut connect(&second), b"", n);
        assert_eq!(
            got,
            ack(n),
            "{}: connection {n} after the first stopped",
            bin.path
        );
    }
}

/// What the restart test's clients saw.
#[derive(Debug, Default, Clone, Copy)]
struct Restart {
    /// Connections acked.
    acked: u64,
    /// Connections refused (ECONNREFUSED): the port had no listener.
    refused: u64,
    /// Connections made but closed or reset before their ack.
    dropped: u64,
}

/// A zero-downtime restart with `--reuse-port`: while 4 clients connect
/// again and again (a Submit each), a second server starts on the port
/// and the first gets SIGTERM and exits: no connection is refused, and
/// the second serves after the first is gone.
pub fn reuse_port_restart_refuses_no_connection(bin: Binary<'_>) {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    let addr = harness::free_tcp_addr().unwrap_or_else(|e| panic!("{e}"));
    let text = addr.to_string();
    let args = ["--addr", text.as_str(), "--reuse-port"];
    let mut old = Serve::spawn(bin, &args);
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU32::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, counter) = (Arc::clone(&stop), Arc::clone(&counter));
            std::thread::spawn(move || {
                let mut seen = Restart::default();
                while !stop.load(Ordering::Relaxed) {
                    let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                    match TcpStream::connect_timeout(&addr, WITHIN) {
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                            seen.refused += 1;
                        }
                        Err(e) => panic!("connect to {addr}: {e}"),
                        Ok(mut s) => {
                            let _ = s.set_read_timeout(Some(WITHIN));
                            let mut s = IgnoreWriteErrors(&mut s);
                            if submit_after(&mut s, b"", n) == ack(n) {
                                seen.acked += 1;
                            } else {
                                seen.dropped += 1;
                            }
                        }
                    }
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                seen
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut new = Serve::spawn(bin, &args);
    let status = old.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "{}: the old server's exit after SIGTERM: {status:?}",
        bin.path
    );
    let at_exit = counter.load(Ordering::Relaxed);
    std::thread::sleep(std::time::Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let mut seen = Restart::default();
    for c in clients {
        let r = c
            .join()
            .unwrap_or_else(|_| panic!("a client thread panicked"));
        seen.acked += r.acked;
        seen.refused += r.refused;
        seen.dropped += r.dropped;
    }
    eprintln!(
        "{}: restart with --reuse-port: {} acked, {} refused, {} dropped before their ack",
        bin.path, seen.acked, seen.refused, seen.dropped
    );
    assert_eq!(
        seen.refused, 0,
        "{}: refused during the restart: {seen:?}",
        bin.path
    );
    assert!(
        counter.load(Ordering::Relaxed) > at_exit + 20,
        "{}: the clients stalled after the old server exited: {seen:?}",
        bin.path
    );
    new.expect_log("closed");
}

/// A stream whose write errors read as an early end (the server may
/// reset a connection it will not serve): the read tells what came back.
struct IgnoreWriteErrors<'a>(&'a mut TcpStream);

impl Read for IgnoreWriteErrors<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for IgnoreWriteErrors<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(self.0.write(buf).unwrap_or(buf.len()))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// True when Debian's `haproxy` is on PATH; otherwise says the scenario
/// is skipped (and fails under `CI`, where `.ci/run` installs it).
fn haproxy_found(bin: Binary<'_>) -> bool {
    let found = std::process::Command::new("haproxy")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is not on PATH: .ci/run installs Debian's `haproxy` when it is missing \
             (apt-get install haproxy)"
        );
        eprintln!(
            "SKIPPED {}: haproxy is not installed (apt-get install haproxy, or run .ci/run)",
            bin.path
        );
    }
    found
}

/// HAProxy in TCP mode on a free loopback port in front of the backend
/// `servers` lines (retrying a refused connect on another server), waited
/// for until it accepts; its address and the tracked process.
fn haproxy(servers: &str) -> (SocketAddr, harness::Tracked) {
    let front = harness::free_tcp_addr().unwrap_or_else(|e| panic!("{e}"));
    let dir = harness::TempDir::new("haproxy").unwrap_or_else(|e| panic!("{e}"));
    let config = dir.path().join("haproxy.cfg");
    std::fs::write(
        &config,
        format!(
            "global\n    maxconn 400\n\
             defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 30s\n    \
             timeout server 30s\n    retries 3\n    option redispatch\n\
             frontend lenproto\n    bind {front}\n    default_backend servers\n\
             backend servers\n    balance roundrobin\n{servers}"
        ),
    )
    .unwrap_or_else(|e| panic!("writing {}: {e}", config.display()));
    let mut cmd = std::process::Command::new("haproxy");
    cmd.arg("-db").arg("-f").arg(&config);
    let mut haproxy = harness::Spawn::new("haproxy")
        .stdout(harness::Sink::Null)
        .stderr(harness::Sink::Null)
        .spawn(cmd)
        .unwrap_or_else(|e| panic!("{e}"));
    haproxy
        .wait_accepting(&front, WITHIN)
        .unwrap_or_else(|e| panic!("haproxy: {e}"));
    // It has read its configuration: the directory can go.
    drop(dir);
    (front, haproxy)
}

/// The number `"key":N` in the bench's one-line JSON report.
fn json_number(json: &str, key: &str) -> u64 {
    let needle = format!("\"{key}\":");
    json.find(&needle)
        .and_then(|i| {
            let rest = &json[i + needle.len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
        .unwrap_or_else(|| panic!("no {key:?} in the bench report {json}"))
}

/// The tokio adapter's binary (its `bench` is the reconnecting load
/// client), built next to `bin` by `cargo test --workspace`.
fn bench_binary(bin: Binary<'_>) -> std::path::PathBuf {
    let path = std::path::Path::new(bin.path).with_file_name("adapter-tokio");
    assert!(
        path.exists(),
        "{} is missing: the scenario's load client is `adapter-tokio bench` \
         (cargo test --workspace builds it; or cargo build -p adapter-tokio)",
        path.display()
    );
    path
}

/// Three `serve --proxy-protocol` backends behind a real HAProxy, loaded
/// by `bench --reconnect` (12 connections x pipeline 4) through it; one
/// backend is killed with SIGKILL mid-run: the clients whose connections
/// it held connect again and go on through the other two (which serve
/// more after the kill than before it), every request is either acked or
/// counted as lost (sent == answered + lost, none resent, none
/// silently gone), and no ack is an error.
pub fn haproxy_three_backends_one_killed_reconnecting_clients_go_on(bin: Binary<'_>) {
    if !haproxy_found(bin) {
        return;
    }
    let bench = bench_binary(bin);
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--proxy-protocol",
        "--metrics-addr",
        "127.0.0.1:0",
    ];
    let mut backends: Vec<Serve> = (0..3).map(|_| Serve::spawn(bin, &args)).collect();
    let metrics: Vec<SocketAddr> = backends.iter().map(metrics_addr).collect();
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            format!(
                "    server s{i} {} send-proxy-v2 check check-send-proxy inter 100ms fall 1 rise 2\n",
                b.addr
            )
        })
        .collect();
    let (front, mut haproxy) = haproxy(&servers);
    let front = front.to_string();
    let mut cmd = std::process::Command::new(&bench);
    cmd.args(["bench", "--addr", front.as_str()])
        .args(["--conns", "12", "--pipeline", "4", "--duration", "4s"])
        .args(["--reconnect", "--backoff-max", "200ms", "--json"]);
    let run = harness::Spawn::new("bench --reconnect")
        .stdout(harness::Sink::Capture)
        .stderr(harness::Sink::Capture)
        .spawn(cmd)
        .unwrap_or_else(|e| panic!("{e}"));
    let served = |m: SocketAddr| {
        let s = scrape_until(m, "a scrape", |_| true);
        sample(&s, "lenproto_requests_total{kind=\"submit\"}").unwrap_or(0.0)
    };
    // All three serve before the kill.
    scrape_until(metrics[2], "backend s2 serving", |s| {
        sample(s, "lenproto_requests_total{kind=\"submit\"}").unwrap_or(0.0) > 0.0
    });
    std::thread::sleep(std::time::Duration::from_millis(1200));
    backends[2].kill();
    let before = [served(metrics[0]), served(metrics[1])];
    let finished = run
        .wait_output(WITHIN + std::time::Duration::from_secs(4))
        .unwrap_or_else(|e| panic!("{e}"));
    let after = [served(metrics[0]), served(metrics[1])];
    let json = finished.stdout.trim();
    let sent = json_number(json, "sent");
    let answered = json_number(json, "answered");
    let lost = json_number(json, "lost");
    let reconnects = json_number(json, "reconnects");
    let errors = json_number(json, "errors");
    eprintln!(
        "{}: one of three backends SIGKILLed behind haproxy: sent {sent}, answered {answered}, \
         lost {lost}, reconnects {reconnects}",
        bin.path
    );
    assert_eq!(
        sent,
        answered + lost,
        "{}: every request acked or counted lost: {json}",
        bin.path
    );
    assert_eq!(errors, 0, "{}: an error ack: {json}", bin.path);
    assert!(
        lost <= 12 * 4,
        "{}: more lost than were ever in flight: {json}",
        bin.path
    );
    assert!(
        reconnects >= 1,
        "{}: nobody connected again: {json}",
        bin.path
    );
    assert!(
        json.contains("\"connection_errors\":[]"),
        "{}: a client gave up: {json} {}",
        bin.path,
        finished.stderr
    );
    for (i, (b, a)) in before.iter().zip(after).enumerate() {
        assert!(
            a > *b,
            "{}: backend s{i} served nothing after the kill ({b} then {a})",
            bin.path
        );
    }
    let submitted: f64 = after.iter().sum();
    assert!(
        submitted <= answered as f64 + 16.0 * 3.0,
        "{}: the survivors served {submitted}, the clients counted {answered} acks",
        bin.path
    );
    haproxy.stop();
}

/// A real HAProxy (Debian's `haproxy`, which `.ci/run` installs when it
/// is missing; without it the scenario says it is skipped, and fails
/// under `CI`) in TCP mode with `send-proxy-v2` and PROXY health checks in
/// front of `serve --proxy-protocol`: a seed-style client through it gets
/// every ack, and the server's log names that client's own address and
/// port, its metrics that client's address, not HAProxy's.
pub fn haproxy_send_proxy_v2_hands_the_server_the_real_client(bin: Binary<'_>) {
    if !haproxy_found(bin) {
        return;
    }
    let mut serve = Serve::spawn(
        bin,
        &[
            "--addr",
            "127.0.0.1:0",
            "--proxy-protocol",
            "--metrics-addr",
            "127.0.0.1:0",
        ],
    );
    let metrics = metrics_addr(&serve);
    let (front, mut haproxy) = haproxy(&format!(
        "    server s1 {} send-proxy-v2 check check-send-proxy inter 200ms\n",
        serve.addr
    ));
    // Its health checks (a LOCAL header each) reach the server too.
    serve.expect_log("(via 127.0.0.1:");
    // The clients come from 127.0.0.2, HAProxy from 127.0.0.1: the
    // metrics can tell them apart too.
    for n in 1..=5 {
        let mut client = connect_from([127, 0, 0, 2], front);
        let me = client.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let got = submit_after(&mut client, b"", n);
        assert_eq!(got, ack(n), "{}: through haproxy, request {n}", bin.path);
        drop(client);
        serve.expect_log(&format!("{me} (via 127.0.0.1:"));
    }
    scrape_until(metrics, "5 connections of client 127.0.0.2", |s| {
        sample(s, "lenproto_client_connections_total{client=\"127.0.0.2\"}") == Some(5.0)
    });
    haproxy.stop();
}

/// Expands to one `#[test]` per scenario of this module (PROXY protocol,
/// reuse-port) and of [`metrics_cli`](crate::metrics_cli), run against the
/// binary `$bin` with the environment `$env`.
#[macro_export]
macro_rules! proxy_binary_suite {
    ($bin:expr, $env:expr) => {
        $crate::proxy_binary_suite!(@tests $bin, $env;
            proxy_cli::proxy_protocol_logs_the_real_client_and_closes_a_connection_without_a_header,
            proxy_cli::proxy_protocol_comes_before_tls,
            proxy_cli::bad_proxy_headers_close_only_their_connection,
            proxy_cli::reuse_port_lets_two_servers_share_a_port,
            proxy_cli::reuse_port_restart_refuses_no_connection,
            proxy_cli::haproxy_send_proxy_v2_hands_the_server_the_real_client,
            proxy_cli::haproxy_three_backends_one_killed_reconnecting_clients_go_on,
            metrics_cli::metrics_scrape_equals_what_the_clients_counted,
            metrics_cli::metrics_addr_in_use_fails_the_start_naming_it,
        );
    };
    (@tests $bin:expr, $env:expr; $($module:ident::$name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let _turn = $crate::process::shared_turn();
                $crate::$module::$name($crate::tls_cli::Binary { path: $bin, env: $env });
            }
        )*
    };
}
