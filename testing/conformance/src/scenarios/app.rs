//! The application's answers: results 0 and 1, the Conn gate, and a
//! handler that panics.

use std::thread;
use std::time::{Duration, Instant};

use protocol::{AckResult, Request, RequestKind};

use crate::support::{PROMPT, Server, TestClient};
use crate::{App, Harness, ServerSpec};

/// With `require_conn`, Submits before an accepted Conn get result 1; a
/// Conn the handler refuses (wrong token) gets ConnAck 1 and unlocks
/// nothing; after ConnAck 0, Submits get 0. One request at a time and all
/// pipelined in one write give the same answers; the gate is per
/// connection; the connection stays open throughout.
pub fn require_conn_refuses_submits_until_a_conn_is_accepted(h: &dyn Harness) {
    let mut spec = ServerSpec {
        handler: App::new(|req: &Request| match req.kind {
            RequestKind::Conn if req.payload == b"token"[..] => AckResult::OK,
            RequestKind::Conn => AckResult::ERROR,
            RequestKind::Submit => AckResult::OK,
        }),
        ..ServerSpec::default()
    };
    spec.config.require_conn = true;
    let server = Server::start(h, spec);
    let ep = server.endpoint();

    use RequestKind::{Conn, Submit};
    let script: [(RequestKind, &[u8], AckResult); 6] = [
        (Submit, b"too early", AckResult::ERROR),
        (Conn, b"wrong token", AckResult::ERROR),
        (Submit, b"still too early", AckResult::ERROR),
        (Conn, b"token", AckResult::OK),
        (Submit, b"now", AckResult::OK),
        (Submit, b"and again", AckResult::OK),
    ];

    let mut stepwise = TestClient::connect(ep, "client asking one at a time");
    for (kind, payload, result) in script {
        let id = match kind {
            Conn => stepwise.conn(payload),
            Submit => stepwise.submit(payload),
        };
        stepwise.expect_ack(kind, id, result);
    }

    let mut pipelined = TestClient::connect(ep, "client pipelining the same script");
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    for (kind, payload, result) in script {
        let (id, f) = match kind {
            Conn => pipelined.conn_frame(payload),
            Submit => pipelined.submit_frame(payload),
        };
        bytes.extend_from_slice(&f);
        expected.push((kind, id, result));
    }
    pipelined.send(&bytes);
    for (kind, id, result) in expected {
        pipelined.expect_ack(kind, id, result);
    }

    // Another connection is not unlocked by theirs.
    let mut other = TestClient::connect(ep, "client that never sent Conn");
    let id = other.submit(b"who am I");
    other.expect_ack(Submit, id, AckResult::ERROR);

    stepwise.round_trip(b"still open");
    pipelined.round_trip(b"still open");
    server.shutdown();
}

/// A handler that refuses (result 1) some Submits and a Conn: the acks
/// carry 1 for those, 0 for the others, in order, and the connection goes
/// on.
pub fn handler_refusal_keeps_the_connection_open(h: &dyn Harness) {
    let server = Server::start(
        h,
        ServerSpec {
            handler: App::new(|req: &Request| {
                if req.payload.starts_with(b"bad") {
                    AckResult::ERROR
                } else {
                    AckResult::OK
                }
            }),
            ..ServerSpec::default()
        },
    );
    let mut c = TestClient::connect(server.endpoint(), "client with some bad requests");
    let payloads: [&[u8]; 7] = [b"ok", b"bad 1", b"ok", b"bad 2", b"bad 3", b"ok", b""];
    let (ids, bytes) = c.submit_frames(payloads.len(), |i| payloads[i].to_vec());
    c.send(&bytes);
    for (id, p) in ids.iter().zip(payloads) {
        let result = if p.starts_with(b"bad") {
            AckResult::ERROR
        } else {
            AckResult::OK
        };
        c.expect_ack(RequestKind::Submit, *id, result);
    }
    let id = c.conn(b"bad name");
    c.expect_ack(RequestKind::Conn, id, AckResult::ERROR);
    let id = c.submit(b"bad again");
    c.expect_ack(RequestKind::Submit, id, AckResult::ERROR);
    for _ in 0..3 {
        c.round_trip(b"fine");
    }
    server.shutdown();
}

/// A handler that panics (a bug in the application) costs only the
/// connection whose request it was: that connection is closed after the
/// acks before it, the server goes on serving the others, and the
/// connection's slot is freed. With `max_connections` 2, three panicked
/// connections in a row and then two clients served at once show that no
/// slot leaked.
pub fn a_panicking_handler_costs_only_its_connection_and_frees_its_slot(h: &dyn Harness) {
    let server = Server::start(
        h,
        ServerSpec {
            max_connections: 2,
            handler: App::new(|req: &Request| {
                if req.payload == b"panic"[..] {
                    panic!("the handler panics on purpose (the test expects this line)");
                }
                AckResult::OK
            }),
            ..ServerSpec::default()
        },
    );
    let ep = server.endpoint();
    let mut bystander = TestClient::connect(ep, "bystander");
    bystander.round_trip(b"before");
    for i in 0..3 {
        // The bystander holds one slot: each panicking client needs the
        // other, so the previous one's must have been freed (retried while
        // the server notices the close).
        let started = Instant::now();
        let mut c = loop {
            let mut c = TestClient::connect(ep, format!("panicking client {i}"));
            match c.try_round_trip(b"fine first", PROMPT) {
                Ok(_) => break c,
                Err(_) if started.elapsed() < PROMPT => thread::sleep(Duration::from_millis(50)),
                Err(e) => panic!(
                    "with max_connections 2, the slot of panicked connection {} was not freed \
                     within {PROMPT:?}: {e}",
                    i.max(1) - 1
                ),
            }
        };
        let (_, frame) = c.submit_frame(b"panic");
        c.send(&frame);
        if let Err(e) = c.wait_closed(PROMPT) {
            panic!("the connection whose handler panicked was not closed: {e}");
        }
        bystander.round_trip(b"still served");
    }
    drop(bystander);
    // Two clients at once: both slots must be free.
    let started = Instant::now();
    loop {
        let mut a = TestClient::connect(ep, "first of two after the panics");
        let mut b = TestClient::connect(ep, "second of two after the panics");
        match (
            a.try_round_trip(b"a", PROMPT),
            b.try_round_trip(b"b", PROMPT),
        ) {
            (Ok(_), Ok(_)) => break,
            _ if started.elapsed() < PROMPT => thread::sleep(Duration::from_millis(50)),
            (ra, rb) => panic!(
                "with max_connections 2 and every earlier connection gone, two clients are not \
                 both served (a slot leaked at each panic?): {ra:?} / {rb:?}"
            ),
        }
    }
    server.shutdown();
}
