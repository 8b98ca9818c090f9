//! How connections and servers end: half-close, FIN mid-frame, reset by
//! peer (socket behaviour 9), graceful shutdown, the connection limit, and
//! a restart on the same port.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use protocol::{AckResult, Request, RequestKind};
use socket2::{Domain, SockAddr, Socket, Type};

use crate::support::{
    Closed, PROMPT, Server, Stream, TestClient, empty_submits, is_reset, join_all,
};
use crate::{App, Endpoint, Harness, ServerSpec};

fn half_close_on(endpoint: &Endpoint, name: &str, n: usize) {
    let mut c = TestClient::connect(endpoint, name);
    let ids = c.pipeline(n, b"sent before FIN");
    c.shutdown_write();
    c.expect_submit_acks(&ids, AckResult::OK);
    let closed = c.expect_closed(PROMPT);
    assert_eq!(
        closed,
        Closed::Eof,
        "{name}: after answering everything sent before the FIN, the server must close cleanly"
    );
}

/// The client half-closes (shutdown Write) right after pipelining its
/// requests: it still gets every ack, then EOF. Over TCP and a Unix
/// socket, with 100 requests and with 2000 (more than the 1024 requests
/// the server lets wait at once, so it keeps reading after the FIN is
/// queued behind them).
pub fn half_close_still_gets_every_ack_then_eof(h: &dyn Harness) {
    for unix in [false, true] {
        let server = Server::start(
            h,
            ServerSpec {
                unix,
                ..ServerSpec::default()
            },
        );
        for n in [1, 100, 2000] {
            half_close_on(
                server.endpoint(),
                &format!(
                    "client half-closing after {n} Submits over {}",
                    server.endpoint()
                ),
                n,
            );
        }
        server.shutdown();
    }
}

/// The client sends whole frames, part of one more (cut inside its body,
/// or inside its header), then FIN: it gets the acks of the whole frames,
/// then the connection is closed.
pub fn partial_frame_then_fin_gets_the_complete_acks_then_close(h: &dyn Harness) {
    let server = Server::start(h, ServerSpec::default());
    for (where_cut, keep) in [("body", 20), ("header", 2)] {
        let mut c = TestClient::connect(
            server.endpoint(),
            format!("client sending FIN inside a frame's {where_cut}"),
        );
        let (ids, mut bytes) = c.submit_frames(3, |i| format!("whole {i}").into_bytes());
        let (_, unfinished) = c.submit_frame(b"this frame is never finished");
        bytes.extend_from_slice(&unfinished[..keep]);
        c.send(&bytes);
        c.shutdown_write();
        c.expect_submit_acks(&ids, AckResult::OK);
        c.expect_closed(PROMPT);
    }
    let mut other = TestClient::connect(server.endpoint(), "other client");
    other.round_trip(b"unaffected");
    server.shutdown();
}

/// Socket behaviour 9, `connection reset by peer`: clients pipeline 2000 Submits and close
/// with SO_LINGER 0 (RST), some before reading anything, some while the
/// server is writing their acks; the server goes on serving a client that
/// was connected all along, and new ones.
pub fn reset_by_peer_leaves_the_server_serving_others(h: &dyn Harness) {
    let server = Server::start(h, ServerSpec::default());
    let ep = server.endpoint();
    let mut bystander = TestClient::connect(ep, "bystander");
    for round in 0..10 {
        let mut c = TestClient::connect(ep, format!("resetting client {round}"));
        let ids = c.pipeline(2000, &[0x5a; 64]);
        if round % 2 == 1 {
            c.expect_ack(RequestKind::Submit, ids[0], AckResult::OK);
        }
        c.reset();
        bystander.round_trip(b"still served");
    }
    for i in 0..3 {
        let mut fresh = TestClient::connect(ep, format!("new client {i}"));
        fresh.round_trip(b"served after the resets");
    }
    bystander.round_trip(b"still served at the end");
    server.shutdown();
}

/// Graceful shutdown with work in progress (a handler taking 10 ms per
/// Submit): four clients have 10 Submits each fully received, one is idle,
/// one sent two whole frames and half of a third. Every fully received
/// request gets its ack before the close, the idle and the partial
/// connections are closed, and shutdown returns before its deadline.
pub fn graceful_shutdown_answers_every_fully_sent_request(h: &dyn Harness) {
    const EACH: usize = 10;
    let spec = ServerSpec {
        handler: App::new(|req: &Request| {
            let kind = req.kind;
            if kind == RequestKind::Submit {
                thread::sleep(Duration::from_millis(10));
            }
            AckResult::OK
        }),
        ..ServerSpec::default()
    };
    let deadline = spec.shutdown_timeout;
    let server = Server::start(h, spec);
    let ep = server.endpoint().clone();

    let mut busy: Vec<(TestClient, Vec<protocol::MessageId>)> = (0..4)
        .map(|i| {
            let mut c = TestClient::connect(&ep, format!("client {i} with {EACH} Submits sent"));
            let ids = c.pipeline(EACH, b"answer me before you go");
            (c, ids)
        })
        .collect();
    let mut idle = TestClient::connect(&ep, "idle client");
    let mut partial = TestClient::connect(&ep, "client with half a frame sent");
    let (pids, mut bytes) = partial.submit_frames(2, |_| b"whole".to_vec());
    let (_, unfinished) = partial.submit_frame(b"never finished");
    bytes.extend_from_slice(&unfinished[..9]);
    partial.send(&bytes);

    // Each client's first ack shows the server has read its one write,
    // so every request in it is received in full.
    for (c, ids) in &mut busy {
        c.expect_ack(RequestKind::Submit, ids[0], AckResult::OK);
    }
    partial.expect_submit_acks(&pids, AckResult::OK);
    idle.expect_open_now();

    let shutdown = thread::spawn(move || server.shutdown());
    for (c, ids) in &mut busy {
        c.expect_submit_acks(&ids[1..], AckResult::OK);
        c.expect_closed(PROMPT);
    }
    idle.expect_closed(PROMPT);
    partial.expect_closed(PROMPT);
    let took = match shutdown.join() {
        Ok(t) => t,
        Err(p) => std::panic::resume_unwind(p),
    };
    assert!(
        took < deadline,
        "{}: graceful shutdown took {took:?}: it waited for its {deadline:?} deadline instead of \
         closing each connection once it was answered",
        h.name()
    );
}

/// Graceful shutdown under load: eight clients pipeline batches of
/// Submits and read acks continuously when the server is shut down (a
/// connection that never runs out of input must still see the shutdown).
/// Each gets an unbroken run of acks for its requests, in order (a prefix
/// of what it sent, never more), then the connection is closed; shutdown
/// returns before its deadline. Clients stop sending after 3 s at most
/// (so a server that never closes them fails in bounded time): a
/// connection still open when its client stops is a failure.
pub fn graceful_shutdown_under_load_gives_every_client_an_ordered_prefix(h: &dyn Harness) {
    const CLIENTS: usize = 8;
    const BATCH: u32 = 200;
    const LOAD_LIMIT: Duration = Duration::from_secs(3);
    let spec = ServerSpec::default();
    let deadline = spec.shutdown_timeout;
    let server = Server::start(h, spec);
    let ready = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let mut reader = TestClient::connect(server.endpoint(), format!("loaded client {i}"));
            let writer = match reader.stream().try_clone() {
                Ok(s) => s,
                Err(e) => panic!("cannot clone client {i}'s socket: {e}"),
            };
            let ready = Arc::clone(&ready);
            thread::spawn(move || {
                // Served once before the load starts (id 00000001).
                reader.round_trip(b"before the load");
                let stop = Arc::new(AtomicBool::new(false));
                let sent = Arc::new(AtomicU64::new(0));
                let load = spawn_load(writer, 2, BATCH, LOAD_LIMIT, &stop, &sent);
                ready.fetch_add(1, Ordering::Relaxed);
                let (n, _) = reader.read_ack_run_until_closed(2, u64::MAX, LOAD_LIMIT + PROMPT);
                stop.store(true, Ordering::Relaxed);
                let ran_out = match load.join() {
                    Ok(r) => r,
                    Err(p) => std::panic::resume_unwind(p),
                };
                assert!(
                    !ran_out,
                    "{}: the server was shut down, yet it kept serving this connection for as \
                     long as the client sent ({LOAD_LIMIT:?}, {n} acks): a connection that never \
                     runs out of input must still see the shutdown",
                    reader.name()
                );
                // A write cut short may still have delivered whole frames
                // of its batch: only acks beyond every byte written are wrong.
                let most = sent.load(Ordering::Relaxed) + u64::from(BATCH);
                assert!(
                    n <= most,
                    "{}: {n} acks for at most {most} Submits sent",
                    reader.name()
                );
                n
            })
        })
        .collect();
    let t = Instant::now();
    while ready.load(Ordering::Relaxed) < CLIENTS as u64 && t.elapsed() < PROMPT {
        thread::sleep(Duration::from_millis(10));
    }
    // Long enough for the clients to get ahead of the server: input is
    // waiting on every connection when the shutdown comes.
    thread::sleep(Duration::from_millis(700));
    let took = server.shutdown();
    let counts = join_all("clients loading the server at shutdown", threads);
    eprintln!(
        "{}: acks per loaded client between the start of the load and the close: {counts:?}",
        h.name()
    );
    assert!(
        took < deadline,
        "{}: graceful shutdown under load took {took:?}, its deadline is {deadline:?}",
        h.name()
    );
}

/// Writes batches of `batch` Submits (ids from `first` on) until `stop`,
/// a reset, or `limit`; counts in `sent` the Submits of whole batches
/// written. Returns true if it stopped for `limit` (the load ran out).
pub(crate) fn spawn_load(
    mut writer: Stream,
    first: u32,
    batch: u32,
    limit: Duration,
    stop: &Arc<AtomicBool>,
    sent: &Arc<AtomicU64>,
) -> thread::JoinHandle<bool> {
    let (stop, sent) = (Arc::clone(stop), Arc::clone(sent));
    thread::spawn(move || {
        let _ = writer.set_write_timeout(Some(Duration::from_secs(5)));
        let started = Instant::now();
        let mut next = first;
        while !stop.load(Ordering::Relaxed) {
            if started.elapsed() >= limit {
                return true;
            }
            let bytes = empty_submits(next, batch as usize);
            match writer.write_all(&bytes) {
                Ok(()) => {
                    sent.fetch_add(u64::from(batch), Ordering::Relaxed);
                    next += batch;
                }
                Err(e) if is_reset(&e) => return false,
                Err(e) => panic!("writing a batch of Submits failed oddly: {e}"),
            }
        }
        false
    })
}

/// With `max_connections` 2, a third connection is accepted and closed at
/// once (no ack for what it sent) while the first two are served; once one
/// of them leaves, a new connection is served again.
pub fn over_max_connections_is_closed_at_once_others_served(h: &dyn Harness) {
    let server = Server::start(
        h,
        ServerSpec {
            max_connections: 2,
            ..ServerSpec::default()
        },
    );
    let ep = server.endpoint();
    let mut first = TestClient::connect(ep, "first client");
    first.round_trip(b"one");
    let mut second = TestClient::connect(ep, "second client");
    second.round_trip(b"two");

    match TestClient::try_connect(ep, "third client (over the limit)") {
        // Refused outright is as good as closed at once.
        Err(_) => {}
        Ok(mut third) => {
            let (_, f) = third.submit_frame(b"over the limit");
            let _ = third.try_send(&f);
            if let Err(e) = third.wait_closed(PROMPT) {
                panic!("with max_connections 2 and two clients connected: {e}");
            }
        }
    }
    first.round_trip(b"one, still served");
    second.round_trip(b"two, still served");

    // A freed slot is given to the next connection (once the server has
    // seen the close: retried for a while).
    drop(first);
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut next = TestClient::connect(ep, format!("client after a slot freed (#{attempt})"));
        match next.try_round_trip(b"my turn", PROMPT) {
            Ok(_) => break,
            Err(_) if started.elapsed() < PROMPT => {
                thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!(
                "with max_connections 2, one of two clients gone for {:?}, a new client is still \
                 not served: {e}",
                started.elapsed()
            ),
        }
    }
    second.round_trip(b"two, served to the end");
    server.shutdown();
}

/// A restarted server binds the port its predecessor just left, while that
/// predecessor's connections sit in TIME_WAIT (SO_REUSEADDR on the listener).
pub fn restarted_server_binds_the_same_port_through_time_wait(h: &dyn Harness) {
    let server = Server::start(h, ServerSpec::default());
    let addr = server.tcp_addr();
    let mut clients: Vec<TestClient> = (0..3)
        .map(|i| TestClient::connect(server.endpoint(), format!("client {i} of the first server")))
        .collect();
    for c in &mut clients {
        c.round_trip(b"before the restart");
    }
    // The server closes first (shutdown), so the TIME_WAIT is on its port.
    server.shutdown();
    for c in &mut clients {
        c.expect_closed(PROMPT);
    }
    drop(clients);
    thread::sleep(Duration::from_millis(50));

    // Check the setup: without SO_REUSEADDR the port is still taken.
    let plain = Socket::new(Domain::IPV4, Type::STREAM, None)
        .and_then(|s| s.bind(&SockAddr::from(addr)).map(|()| s));
    match plain {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
        Err(e) => panic!("scenario setup: probing {addr} without SO_REUSEADDR failed oddly: {e}"),
        Ok(s) => {
            drop(s);
            eprintln!(
                "{}: note: no TIME_WAIT was left on {addr} (the server's connections did not \
                 close first); the restart below does not prove SO_REUSEADDR",
                h.name()
            );
        }
    }

    let again = Server::start(
        h,
        ServerSpec {
            addr: Some(addr),
            ..ServerSpec::default()
        },
    );
    assert_eq!(
        again.tcp_addr(),
        addr,
        "{}: the harness must honour ServerSpec::addr",
        h.name()
    );
    let mut c = TestClient::connect(again.endpoint(), "client of the restarted server");
    c.round_trip(b"after the restart");
    again.shutdown();
}
