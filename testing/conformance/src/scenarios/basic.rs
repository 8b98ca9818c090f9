//! Socket behaviours 1-4 of PROTOCOL.md and pipelining across many clients:
//! request/response over TCP and Unix sockets, a silent connection beside a
//! busy one, frames split anywhere, frames stuck together.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use protocol::{AckResult, RequestKind};

use crate::support::{Closed, PROMPT, Server, TestClient, join_all};
use crate::{Endpoint, Harness, ServerSpec};

/// The seed's example Submit: id `00000001`, payload `helped-lester-8f15`,
/// 31 bytes on the wire.
pub const SEED_SUBMIT: &[u8] = b"\x00\x00\x00\x1f\x0200000001helped-lester-8f15";
/// Its SubmitAck: 14 bytes, result 0.
pub const SEED_SUBMIT_ACK: &[u8] = b"\x00\x00\x00\x0e\x8200000001\x00";

/// The conversation of the seed: the example frame byte for byte, an
/// optional Conn, Submits one at a time, then the client closes.
fn seed_conversation(c: &mut TestClient) {
    c.send(SEED_SUBMIT);
    c.expect_bytes(SEED_SUBMIT_ACK, PROMPT);
    c.expect_silence(Duration::from_millis(100));
    let _ = c.next_id(); // 00000001 was the seed frame's.

    // A Conn is allowed though not required: it gets a ConnAck.
    let id = c.conn(b"conformance-client");
    c.expect_ack(RequestKind::Conn, id, AckResult::OK);
    for payload in [&b""[..], b"x", b"helped-lester-8f15", &[0xa5; 1000]] {
        let id = c.submit(payload);
        c.expect_ack(RequestKind::Submit, id, AckResult::OK);
    }

    // The client closes when done; everything was answered, so the server
    // closes its side cleanly.
    c.shutdown_write();
    let closed = c.expect_closed(PROMPT);
    assert_eq!(
        closed,
        Closed::Eof,
        "{}: after a FIN with everything answered the server must close with a FIN, not a reset",
        c.name()
    );
}

/// Socket behaviour 1, basic connect / request / response over TCP: the seed's example
/// frame gets exactly the seed's 14-byte SubmitAck.
pub fn basic_tcp_request_response_matches_the_seed_bytes(h: &dyn Harness) {
    let server = Server::start(h, ServerSpec::default());
    let addr = server.tcp_addr();
    assert!(
        addr.ip().is_loopback() && addr.port() != 0,
        "{}: expected a server on 127.0.0.1 with a real port, got {addr}",
        h.name()
    );
    let mut c = TestClient::connect(server.endpoint(), "tcp client");
    seed_conversation(&mut c);
    server.shutdown();
}

/// Socket behaviour 1, the same over a Unix domain socket; the socket file is gone after
/// shutdown.
pub fn basic_unix_socket_request_response(h: &dyn Harness) {
    let server = Server::start(
        h,
        ServerSpec {
            unix: true,
            ..ServerSpec::default()
        },
    );
    let Endpoint::Unix(path) = server.endpoint().clone() else {
        panic!(
            "{}: spec.unix was set, the server listens on {}",
            h.name(),
            server.endpoint()
        );
    };
    assert!(
        path.exists(),
        "{}: the server says it listens on {}, no such file",
        h.name(),
        path.display()
    );
    let mut c = TestClient::connect(server.endpoint(), "unix client");
    seed_conversation(&mut c);
    server.shutdown();
    assert!(
        !path.exists(),
        "{}: after shutdown the socket file {} must be removed",
        h.name(),
        path.display()
    );
}

/// Socket behaviour 2, a read with no data yet: a connection that sends nothing, and one
/// stopped in the middle of a frame, do not delay another client.
pub fn silent_connection_does_not_delay_others(h: &dyn Harness) {
    let server = Server::start(h, ServerSpec::default());
    let ep = server.endpoint();
    let mut silent = TestClient::connect(ep, "silent client");
    let mut halfway = TestClient::connect(ep, "client stopped mid-frame");
    let (held_id, held) = halfway.submit_frame(b"the rest comes later");
    halfway.send(&held[..7]);

    let mut busy = TestClient::connect(ep, "busy client");
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for _ in 0..50 {
        slowest = slowest.max(busy.round_trip(b"ping"));
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "50 round trips beside two waiting connections took {took:?} (slowest {slowest:?})"
    );

    // The waiting ones were neither answered nor closed, and still work.
    silent.expect_open_now();
    halfway.expect_open_now();
    halfway.send(&held[7..]);
    halfway.expect_ack(RequestKind::Submit, held_id, AckResult::OK);
    silent.round_trip(b"finally");
    server.shutdown();
}

/// Socket behaviour 3, a read that returns only part of a frame: frames split inside the
/// header, byte by byte, across a frame boundary, and a large frame over
/// many writes are each answered once complete, and not before.
pub fn frame_split_anywhere_is_answered_once_complete(h: &dyn Harness) {
    let server = Server::start(h, ServerSpec::default());
    let mut c = TestClient::connect(server.endpoint(), "splitting client");
    let gap = Duration::from_millis(20);

    // Split inside the header, then inside the id, then the payload.
    let (id, f) = c.submit_frame(b"helped-lester-8f15");
    for piece in [&f[..1], &f[1..3], &f[3..6], &f[6..30]] {
        c.send(piece);
        thread::sleep(gap);
    }
    c.expect_silence(Duration::from_millis(50));
    c.send(&f[30..]);
    c.expect_ack(RequestKind::Submit, id, AckResult::OK);

    // One byte per write.
    let (id, f) = c.submit_frame(b"byte-by-byte");
    for b in &f {
        c.send(&[*b]);
        thread::sleep(Duration::from_millis(2));
    }
    c.expect_ack(RequestKind::Submit, id, AckResult::OK);

    // A write that ends two bytes into the next frame's header.
    let (id1, f1) = c.submit_frame(b"first");
    let (id2, f2) = c.submit_frame(b"second");
    let both = [f1.as_slice(), f2.as_slice()].concat();
    let cut = f1.len() + 2;
    c.send(&both[..cut]);
    c.expect_ack(RequestKind::Submit, id1, AckResult::OK);
    c.expect_silence(Duration::from_millis(50));
    c.send(&both[cut..]);
    c.expect_ack(RequestKind::Submit, id2, AckResult::OK);

    // A 256 KiB frame in 4 KiB writes: it spans many reads.
    let payload: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let (id, f) = c.submit_frame(&payload);
    for piece in f.chunks(4096) {
        c.send(piece);
    }
    c.expect_ack(RequestKind::Submit, id, AckResult::OK);
    c.expect_silence(Duration::from_millis(50));
    server.shutdown();
}

/// Socket behaviour 4, a read that returns several frames at once ("sticky packets"): every
/// frame of one write is answered, in order, with kinds kept.
pub fn several_frames_in_one_write_are_all_answered_in_order(h: &dyn Harness) {
    let server = Server::start(h, ServerSpec::default());
    let mut c = TestClient::connect(server.endpoint(), "sticky client");

    // 100 Submits of sizes 0..300 in one write.
    let (ids, bytes) = c.submit_frames(100, |i| vec![b'a' + (i % 26) as u8; i * 7 % 300]);
    c.send(&bytes);
    c.expect_submit_acks(&ids, AckResult::OK);
    c.expect_silence(Duration::from_millis(50));

    // A Conn among Submits gets a ConnAck in its place.
    let (s1, f1) = c.submit_frame(b"before");
    let (cn, f2) = c.conn_frame(b"name");
    let (s2, f3) = c.submit_frame(b"after");
    c.send(&[f1, f2, f3].concat());
    c.expect_ack(RequestKind::Submit, s1, AckResult::OK);
    c.expect_ack(RequestKind::Conn, cn, AckResult::OK);
    c.expect_ack(RequestKind::Submit, s2, AckResult::OK);

    // Whole frames and the start of one more in one write; its rest later.
    let (ids, mut bytes) = c.submit_frames(3, |i| format!("whole {i}").into_bytes());
    let (last, lf) = c.submit_frame(b"finished later");
    bytes.extend_from_slice(&lf[..5]);
    c.send(&bytes);
    c.expect_submit_acks(&ids, AckResult::OK);
    c.expect_silence(Duration::from_millis(50));
    c.send(&lf[5..]);
    c.expect_ack(RequestKind::Submit, last, AckResult::OK);
    server.shutdown();
}

/// 50 clients each pipeline 200 Submits at the same moment: every client
/// gets its 200 acks, its own ids, in order, then a clean close.
pub fn fifty_clients_pipelining_200_submits_get_every_ack_in_order(h: &dyn Harness) {
    const CLIENTS: usize = 50;
    const EACH: usize = 200;
    let server = Server::start(h, ServerSpec::default());
    let clients: Vec<TestClient> = (0..CLIENTS)
        .map(|i| TestClient::connect(server.endpoint(), format!("client {i}")))
        .collect();
    let start = Arc::new(Barrier::new(CLIENTS));
    let threads = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let start = Arc::clone(&start);
            thread::spawn(move || {
                let (ids, bytes) = c.submit_frames(EACH, |j| format!("c{i}-m{j}").into_bytes());
                start.wait();
                c.send(&bytes);
                c.expect_submit_acks(&ids, AckResult::OK);
                c.shutdown_write();
                c.expect_closed(PROMPT);
            })
        })
        .collect();
    join_all("clients pipelining 200 Submits each", threads);
    server.shutdown();
}
