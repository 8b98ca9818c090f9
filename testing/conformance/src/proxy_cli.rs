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

/// A real HAProxy (Debian's `haproxy`, which `.ci/run` installs when it
/// is missing; without it the scenario says it is skipped, and fails
/// under `CI`) in TCP mode with `send-proxy-v2` and PROXY health checks in
/// front of `serve --proxy-protocol`: a seed-style client through it gets
/// every ack, and the server's log names that client's own address and
/// port, its metrics that client's address, not HAProxy's.
pub fn haproxy_send_proxy_v2_hands_the_server_the_real_client(bin: Binary<'_>) {
    let found = std::process::Command::new("haproxy")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        // CI (`.ci/run` installs it) must run it; elsewhere the suite
        // still runs, and says what it left out.
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is not on PATH: .ci/run installs Debian's `haproxy` when it is missing \
             (apt-get install haproxy)"
        );
        eprintln!(
            "SKIPPED {}: haproxy is not installed (apt-get install haproxy, or run .ci/run)",
            bin.path
        );
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
    let front = harness::free_tcp_addr().unwrap_or_else(|e| panic!("{e}"));
    let dir = harness::TempDir::new("haproxy").unwrap_or_else(|e| panic!("{e}"));
    let config = dir.path().join("haproxy.cfg");
    std::fs::write(
        &config,
        format!(
            "global\n    maxconn 200\n\
             defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    \
             timeout server 30s\n\
             frontend lenproto\n    bind {front}\n    default_backend servers\n\
             backend servers\n    server s1 {} send-proxy-v2 check check-send-proxy inter 200ms\n",
            serve.addr
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
            proxy_cli::reuse_port_lets_two_servers_share_a_port,
            proxy_cli::haproxy_send_proxy_v2_hands_the_server_the_real_client,
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
