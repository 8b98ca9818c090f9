//! The std server's own duties, beyond the behaviour suite: graceful
//! shutdown loses nothing (with the std client), the supervisor's wake
//! (`shutdown(Read)`) reaches idle threads at once, its cut reaches a
//! thread blocked in `write`, and the connection loop lingers.

use adapter_std::Served as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use adapter_common::AckAll;
use adapter_std::{Client, ClientError, ClientOptions, Server, ServerHandle, ServerOptions};
use conformance::Endpoint;
use conformance::support::{Closed, TestClient};
use protocol::{AckResult, ClientConfig, ServerConfig};

fn localhost() -> Endpoint {
    Endpoint::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
}

fn ack_all(options: ServerOptions) -> ServerHandle {
    Server::bind(&localhost(), options, AckAll)
        .unwrap()
        .spawn()
        .unwrap()
}

fn tcp_addr(server: &ServerHandle) -> SocketAddr {
    match server.local_endpoint() {
        Endpoint::Tcp(a) => *a,
        Endpoint::Unix(p) => panic!("expected TCP, got {}", p.display()),
    }
}

fn bounded_client(endpoint: &Endpoint) -> Client {
    let options = ClientOptions {
        config: ClientConfig {
            response_timeout: Some(Duration::from_secs(10)),
            ..ClientConfig::default()
        },
        ..ClientOptions::default()
    };
    Client::connect(endpoint, options).unwrap()
}

#[test]
fn graceful_shutdown_acks_every_request_the_server_received() {
    const CLIENTS: usize = 8;
    let server = ack_all(ServerOptions::default());
    let endpoint = server.local_endpoint().clone();
    let start = Arc::new(Barrier::new(CLIENTS + 1));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let endpoint = endpoint.clone();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                let client = bounded_client(&endpoint);
                start.wait();
                // Pipeline batches until the server closes us; count the
                // acks that came back.
                let mut acked = 0u64;
                'outer: loop {
                    let Ok(pending) = client.send_all((0..32).map(|i: u32| [c as u8, i as u8]))
                    else {
                        break;
                    };
                    for p in pending {
                        match p.wait() {
                            Ok(ack) => {
                                assert_eq!(ack.result, AckResult::OK);
                                acked += 1;
                            }
                            Err(ClientError::Closed(_) | ClientError::Io(_)) => break 'outer,
                            Err(e) => panic!("client {c}: {e}"),
                        }
                    }
                }
                acked
            })
        })
        .collect();
    start.wait();
    thread::sleep(Duration::from_millis(200));
    let totals = server.totals().clone();
    let asked = Instant::now();
    server.shutdown().unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    let received: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    let requests = totals.requests.load(Ordering::Relaxed);
    let acks = totals.acks.load(Ordering::Relaxed);
    assert!(received > 0, "the clients got going before the shutdown");
    assert_eq!(requests, acks, "every request the server read was answered");
    assert_eq!(
        acks, received,
        "every ack the server sent reached its client"
    );
    let closes = totals.closes_by_reason();
    assert_eq!(
        closes.get("local_close").copied().unwrap_or(0),
        CLIENTS as u64,
        "{closes:?}"
    );
}

#[test]
fn a_connection_still_writing_at_the_shutdown_deadline_is_cut() {
    let server = ack_all(ServerOptions {
        config: ServerConfig {
            shutdown_timeout: Duration::from_millis(300),
            ..ServerConfig::default()
        },
        ..ServerOptions::default()
    });
    let addr = tcp_addr(&server);
    // This client sends and never reads: the server's writes block.
    let mut hog = TestClient::connect_small_buffers(addr, "hog", 4096);
    hog.pipeline_until_stalled(Duration::from_millis(300), 256 << 20);
    let totals = server.totals().clone();
    let asked = Instant::now();
    server.shutdown().unwrap();
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(300),
        "waited for the deadline: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "cut soon after it: {took:?}");
    assert_eq!(totals.open_now(), 0);
}

#[test]
fn shutdown_wakes_idle_connections_at_once() {
    let server = ack_all(ServerOptions::default());
    let endpoint = server.local_endpoint().clone();
    let mut idle: Vec<TestClient> = (0..20)
        .map(|i| TestClient::connect(&endpoint, format!("idle{i}")))
        .collect();
    for c in &mut idle {
        c.round_trip(b"x");
    }
    let asked = Instant::now();
    server.shutdown().unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    for c in &mut idle {
        c.expect_closed(Duration::from_secs(2));
    }
}

/// The connection loop lingers: a peer that keeps sending after the
/// server ended the conversation (here with a malformed frame after 100
/// Submits) still reads every ack, then a clean EOF. A server that closed
/// its socket at once, with the peer's bytes unread, would reset the
/// connection under the acks (and fail the peer's next write).
#[test]
fn a_peer_still_sending_after_the_server_closed_reads_every_ack_then_eof() {
    let server = ack_all(ServerOptions::default());
    let mut c = TestClient::connect(server.local_endpoint(), "client sending after the close");
    let (ids, mut bytes) = c.submit_frames(100, |i| format!("before {i}").into_bytes());
    // A length field of 0: not a frame, the conversation is over.
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    c.send(&bytes);
    // Go on sending, reading nothing, for 500 ms (the linger lasts 2 s).
    let noise = vec![0x5a; 16 * 1024];
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        c.send(&noise);
        thread::sleep(Duration::from_millis(10));
    }
    c.expect_submit_acks(&ids, AckResult::OK);
    assert_eq!(c.expect_closed(Duration::from_secs(3)), Closed::Eof);
    let totals = server.totals().clone();
    server.shutdown().unwrap();
    assert_eq!(totals.acks.load(Ordering::Relaxed), 100);
}
