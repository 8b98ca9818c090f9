//! How connections end, through their events: the server's lingering close
//! (`ShutdownWrite`, then read and discard until EOF, `linger_quiet` of
//! silence or `linger`), the shutdown deadline, socket errors, aborts, and
//! `Closed` as the last event on both sides. Timers are fired by the kit at
//! exactly the instants the cores name (`run_until`, `settle`).

mod kit;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use kit::{Pair, Seen, ms, secs};
use protocol::{
    AckResult, ClientConfig, ClientConnection, ClientEvent, CloseReason, DecodeError, MessageId,
    RequestKind, ServerConfig, ServerConnection, ServerEvent, SubmitError, encode_ack,
};

/// A pair whose client ignores the server's FIN (keeps its socket open,
/// may go on sending): the server's lingering runs its course.
fn deaf_pair(server: ServerConfig) -> Pair {
    let mut p = Pair::new(server, ClientConfig::default());
    p.fin_to_client = false;
    p
}

// ---- the lingering close ----------------------------------------------

#[test]
fn local_close_lingers_and_closes_after_linger_quiet_of_silence() {
    let mut p = deaf_pair(ServerConfig::default());
    p.client.submit(b"x", p.now).unwrap();
    p.drive();
    p.run_until(p.at(secs(1)));
    p.server.close(p.now, None);
    p.drive();
    // Every ack is out: FIN now, and go on reading.
    assert_eq!(p.server_events(), [Seen::Request(0), Seen::ShutdownWrite]);
    assert_eq!(p.server_shutdown_at(), Some(secs(1)));
    assert!(p.server.wants_input(), "a lingering server reads");
    assert!(!p.server.is_closed());
    assert_eq!(p.server.close_reason(), Some(&CloseReason::LocalClose));
    // Quiet for 250 ms (linger_quiet) comes before 2 s (linger).
    assert_eq!(p.server.poll_timeout(), Some(p.at(ms(1250))));
    p.run_until(p.at(ms(1249)));
    assert!(!p.server.is_closed());
    p.run_until(p.at(secs(10)));
    assert_eq!(p.fired, [ms(1250)]);
    assert_eq!(
        p.server_closed(),
        Some((ms(1250), &CloseReason::LocalClose))
    );
    assert_eq!(p.server.poll_timeout(), None);
    assert!(!p.server.wants_input());
}

#[test]
fn lingering_discards_input_and_each_read_pushes_the_quiet_deadline_back() {
    let mut p = deaf_pair(ServerConfig::default());
    p.server.close(p.now, None);
    p.drive();
    assert_eq!(p.server_events(), [Seen::ShutdownWrite]);
    assert_eq!(p.server.poll_timeout(), Some(p.at(ms(250))));
    // The peer did not see the FIN yet and sends a request at t=100.
    p.run_until(p.at(ms(100)));
    let before = p.server.stats();
    p.client.submit(b"late", p.now).unwrap();
    p.drive();
    // Read (the client's bytes are gone from its side), counted, discarded.
    assert_eq!(p.client.transmit_buf().len(), 0);
    assert_eq!(p.server.stats().bytes_in, before.bytes_in + 17);
    assert_eq!(p.server.stats().frames_in, before.frames_in);
    assert_eq!(p.server.buffered_input(), 0);
    assert!(
        p.requests.is_empty(),
        "nothing read while lingering is a request"
    );
    assert_eq!(p.server.pending_output(), 0, "and nothing is answered");
    assert_eq!(p.server.poll_timeout(), Some(p.at(ms(350))));
    // Bytes that are not the protocol are discarded the same way.
    p.run_until(p.at(ms(200)));
    p.server_input(&[0xFF; 100]);
    assert_eq!(p.server.poll_timeout(), Some(p.at(ms(450))));
    assert_eq!(p.server.close_reason(), Some(&CloseReason::LocalClose));
    p.run_until(p.at(secs(1)));
    assert_eq!(p.fired, [ms(450)]);
    assert_eq!(
        p.server_events(),
        [Seen::ShutdownWrite, Seen::Closed(CloseReason::LocalClose)]
    );
    assert_eq!(p.server_closed_at(), Some(ms(450)));
    assert!(p.acks.is_empty());
}

#[test]
fn lingering_ends_at_linger_however_busy_the_peer() {
    let mut p = deaf_pair(ServerConfig::default());
    p.server.close(p.now, None);
    p.drive();
    assert_eq!(p.server_shutdown_at(), Some(Duration::ZERO));
    // A request every 200 ms keeps the 250 ms quiet timer from firing.
    for k in 1..=20 {
        p.run_until(p.at(ms(200 * k)));
        if p.server.is_closed() {
            break;
        }
        p.client.submit(b"more", p.now).unwrap();
        p.drive();
        let quiet = p.now + ms(250);
        assert_eq!(p.server.poll_timeout(), Some(quiet.min(p.at(secs(2)))));
    }
    assert_eq!(p.fired, [secs(2)], "only linger (2 s) ever fired");
    assert_eq!(p.server_closed(), Some((secs(2), &CloseReason::LocalClose)));
    assert!(p.requests.is_empty());
}

#[test]
fn lingering_ends_on_the_peers_eof() {
    // The kit's client sees the FIN, closes (nothing in flight: a clean
    // PeerClosed), and its FIN ends the lingering: all at one instant.
    let mut p = Pair::default();
    p.client.submit(b"x", p.now).unwrap();
    p.drive();
    p.run_until(p.at(secs(3)));
    p.server.close(p.now, None);
    p.drive();
    assert_eq!(
        p.server_events(),
        [
            Seen::Request(0),
            Seen::ShutdownWrite,
            Seen::Closed(CloseReason::LocalClose)
        ]
    );
    assert_eq!(p.server_closed_at(), Some(secs(3)));
    assert_eq!(p.client_closed(), Some((secs(3), &CloseReason::PeerClosed)));
    assert!(p.fired.is_empty());

    // The same by hand, the EOF coming at t=100 ms.
    let t = Instant::now();
    let mut server = ServerConnection::new(ServerConfig::default(), t);
    server.close(t, None);
    assert_eq!(server.poll_event(), Some(ServerEvent::ShutdownWrite));
    server.handle_eof(t + ms(100));
    assert!(server.is_closed());
    assert_eq!(
        server.poll_event(),
        Some(ServerEvent::Closed(CloseReason::LocalClose))
    );
    assert_eq!(server.poll_event(), None);
    assert_eq!(server.poll_timeout(), None);
}

#[test]
fn a_decode_error_lingers_after_the_acks_of_the_requests_before_it() {
    let mut p = deaf_pair(ServerConfig::default());
    p.client.submit(b"fine", p.now).unwrap();
    p.drive();
    p.run_until(p.at(ms(10)));
    p.server_input(&[0, 0, 0, 5, 0x7f]);
    let reason = CloseReason::Decode(DecodeError::UnknownCommand(0x7f));
    assert_eq!(p.acks.len(), 1, "the request before the bad bytes is acked");
    assert_eq!(p.server_events(), [Seen::Request(0), Seen::ShutdownWrite]);
    assert_eq!(p.server_shutdown_at(), Some(ms(10)));
    assert!(p.server.wants_input());
    assert_eq!(p.server.close_reason(), Some(&reason));
    assert_eq!(p.server.poll_timeout(), Some(p.at(ms(260))));
    p.run_until(p.at(secs(5)));
    assert_eq!(p.fired, [ms(260)]);
    assert_eq!(p.server_closed(), Some((ms(260), &reason)));
}

#[test]
fn an_idle_timeout_lingers_until_linger_quiet() {
    let config = ServerConfig {
        idle_timeout: Some(secs(10)),
        ..ServerConfig::default()
    };
    let mut p = deaf_pair(config);
    assert_eq!(p.server.poll_timeout(), Some(p.at(secs(10))));
    p.settle();
    let reason = CloseReason::IdleTimeout { after: secs(10) };
    // The idle timer at t=10 starts the lingering; its quiet timer ends it.
    assert_eq!(p.fired, [secs(10), secs(10) + ms(250)]);
    assert_eq!(p.server_shutdown_at(), Some(secs(10)));
    assert_eq!(p.server_closed(), Some((secs(10) + ms(250), &reason)));
    assert_eq!(
        p.server_events(),
        [Seen::ShutdownWrite, Seen::Closed(reason)]
    );
}

#[test]
fn after_the_peers_eof_there_is_no_lingering() {
    // Nothing pending: EOF closes at once.
    let mut p = deaf_pair(ServerConfig::default());
    p.client.submit(b"x", p.now).unwrap();
    p.drive();
    p.server.handle_eof(p.now);
    p.drive();
    assert_eq!(
        p.server_events(),
        [Seen::Request(0), Seen::Closed(CloseReason::PeerClosed)]
    );
    // EOF with a request unanswered: Closed as soon as its ack is written.
    let mut p = deaf_pair(ServerConfig::default());
    p.auto_respond = false;
    p.client.submit(b"x", p.now).unwrap();
    p.drive();
    p.server.handle_eof(p.now);
    p.drive();
    assert!(!p.server.is_closed());
    p.run_until(p.at(secs(1)));
    let h = p.requests[0].handle;
    p.server.respond(h, AckResult::OK, p.now).unwrap();
    p.drive();
    assert_eq!(p.acks.len(), 1);
    assert_eq!(
        p.server_events(),
        [Seen::Request(0), Seen::Closed(CloseReason::PeerClosed)]
    );
    assert_eq!(p.server_closed_at(), Some(secs(1)));
    // EOF, then a local close before the answer: still no lingering.
    let t = Instant::now();
    let mut server = ServerConnection::new(ServerConfig::default(), t);
    server.handle_input(&submit_frame(1), t);
    let Some(ServerEvent::Request(r)) = server.poll_event() else {
        panic!("a request")
    };
    server.handle_eof(t);
    server.close(t, None);
    server.respond(r.handle, AckResult::OK, t).unwrap();
    server.handle_written(14, t);
    assert_eq!(
        server.poll_event(),
        Some(ServerEvent::Closed(CloseReason::PeerClosed))
    );
}

/// A decode error found after the peer's EOF, in input that was buffered
/// behind backpressure, closes at once: the peer sent FIN and is done, so
/// there is nobody to linger for (the fuzzer found the server lingering
/// here; `fuzz/regressions/server_stream/decode-error-after-eof-lingers`).
#[test]
fn a_decode_error_found_after_the_peers_eof_does_not_linger() {
    let t = Instant::now();
    let config = ServerConfig {
        max_pending_requests: 1,
        ..ServerConfig::default()
    };
    let mut server = ServerConnection::new(config, t);
    let mut input = submit_frame(1);
    input.extend_from_slice(&[0, 0, 0, 5, 0x7f]);
    // The bad frame waits behind the unanswered request.
    server.handle_input(&input, t);
    let Some(ServerEvent::Request(r)) = server.poll_event() else {
        panic!("a request")
    };
    assert!(!server.wants_input());
    server.handle_eof(t);
    server.respond(r.handle, AckResult::OK, t).unwrap();
    server.handle_written(14, t);
    assert_eq!(
        server.poll_event(),
        Some(ServerEvent::Closed(CloseReason::Decode(
            DecodeError::UnknownCommand(0x7f)
        )))
    );
}

#[test]
fn a_write_stall_closes_at_once_without_lingering() {
    let config = ServerConfig {
        write_stall_timeout: Some(secs(1)),
        ..ServerConfig::default()
    };
    let mut p = deaf_pair(config);
    p.client_reads = false;
    p.client.submit(b"x", p.now).unwrap();
    p.drive();
    assert_eq!(p.server.poll_timeout(), Some(p.at(secs(1))));
    p.run_until(p.at(secs(2)));
    assert_eq!(p.fired, [secs(1)]);
    let reason = CloseReason::WriteStall {
        after: secs(1),
        pending: 14,
    };
    assert_eq!(p.server_events(), [Seen::Request(0), Seen::Closed(reason)]);
    assert_eq!(p.server_closed_at(), Some(secs(1)));
    assert_eq!(
        p.server.close_reason().map(CloseReason::kind),
        Some("write_stall")
    );
}

#[test]
fn abort_closes_at_once_and_drops_requests_not_yet_polled() {
    let t = Instant::now();
    let mut server = ServerConnection::new(ServerConfig::default(), t);
    let mut input = submit_frame(1);
    input.extend_from_slice(&submit_frame(2));
    server.handle_input(&input, t);
    let Some(ServerEvent::Request(first)) = server.poll_event() else {
        panic!("a request")
    };
    // The second request is queued, not polled: abort drops it.
    server.abort(CloseReason::Aborted);
    assert!(server.is_closed());
    assert_eq!(
        server.poll_event(),
        Some(ServerEvent::Closed(CloseReason::Aborted))
    );
    assert_eq!(server.poll_event(), None);
    assert!(server.respond(first.handle, AckResult::OK, t).is_err());
    assert!(server.transmit_buf().is_empty());
    assert_eq!(server.pending_requests(), 0);
    assert_eq!(CloseReason::Aborted.to_string(), "aborted locally");

    // An abort while lingering ends it, and the reason stays the first one.
    let mut p = deaf_pair(ServerConfig::default());
    p.server.close(p.now, None);
    p.drive();
    p.server.abort(CloseReason::Aborted);
    p.drive();
    assert_eq!(
        p.server_events(),
        [Seen::ShutdownWrite, Seen::Closed(CloseReason::LocalClose)]
    );
}

#[test]
fn linger_off_closes_at_once() {
    for linger in [None, Some(Duration::ZERO)] {
        let config = ServerConfig {
            linger,
            ..ServerConfig::default()
        };
        let mut p = deaf_pair(config);
        p.client.submit(b"x", p.now).unwrap();
        p.drive();
        p.server.close(p.now, None);
        p.drive();
        assert_eq!(
            p.server_events(),
            [Seen::Request(0), Seen::Closed(CloseReason::LocalClose)],
            "linger {linger:?}"
        );
        assert_eq!(p.acks.len(), 1);
    }
}

// ---- the shutdown deadline ----------------------------------------------

#[test]
fn the_shutdown_deadline_cuts_an_unanswered_request_exactly_at_the_deadline() {
    let mut p = Pair::default();
    p.auto_respond = false;
    p.client.submit(b"slow", p.now).unwrap();
    p.drive();
    p.server.close(p.now, Some(p.at(secs(5))));
    p.drive();
    assert!(
        !p.server.wants_input(),
        "a closing server reads nothing more"
    );
    assert_eq!(p.server.poll_timeout(), Some(p.at(secs(5))));
    p.run_until(p.at(secs(5) - ms(1)));
    assert!(p.fired.is_empty());
    assert!(!p.server.is_closed(), "not before the deadline");
    p.run_until(p.at(secs(10)));
    assert_eq!(p.fired, [secs(5)]);
    let reason = CloseReason::ShutdownDeadline {
        unanswered: 1,
        unsent: 0,
    };
    // Busy at the deadline: cut, no lingering.
    assert_eq!(
        p.server_events(),
        [Seen::Request(0), Seen::Closed(reason.clone())]
    );
    assert_eq!(p.server_closed_at(), Some(secs(5)));
    assert_eq!(
        reason.to_string(),
        "cut at the shutdown deadline with 1 request(s) unanswered and 0 byte(s) unsent"
    );
    assert_eq!(reason.kind(), "shutdown_deadline");
    assert!(!reason.is_clean());
    // The client reads the close with its request unanswered.
    assert_eq!(
        p.client_closed(),
        Some((secs(5), &CloseReason::PeerClosedInFlight { in_flight: 1 }))
    );
    assert!(
        p.server
            .respond(p.requests[0].handle, AckResult::OK, p.now)
            .is_err()
    );
}

#[test]
fn the_shutdown_deadline_counts_the_bytes_left_unsent() {
    let mut p = Pair::default();
    p.auto_respond = false;
    p.client_reads = false;
    p.client.submit(b"a", p.now).unwrap();
    p.client.submit(b"b", p.now).unwrap();
    p.drive();
    let h = p.requests[0].handle;
    p.server.respond(h, AckResult::OK, p.now).unwrap();
    p.server.close(p.now, Some(p.at(secs(1))));
    // The write stall timer (30 s) is later than the deadline.
    assert_eq!(p.server.poll_timeout(), Some(p.at(secs(1))));
    p.run_until(p.at(secs(2)));
    assert_eq!(
        p.server_closed(),
        Some((
            secs(1),
            &CloseReason::ShutdownDeadline {
                unanswered: 1,
                unsent: 14
            }
        ))
    );
    assert_eq!(p.server.pending_output(), 0);
}

#[test]
fn a_connection_done_before_its_deadline_lingers_no_longer_than_it() {
    let mut p = deaf_pair(ServerConfig::default());
    p.auto_respond = false;
    p.client.submit(b"x", p.now).unwrap();
    p.drive();
    p.server.close(p.now, Some(p.at(secs(1))));
    p.run_until(p.at(ms(500)));
    let h = p.requests[0].handle;
    p.server.respond(h, AckResult::OK, p.now).unwrap();
    p.drive();
    // Answered at t=0.5: lingering, until min(0.5 + 2, 1) = 1.
    assert_eq!(p.server_shutdown_at(), Some(ms(500)));
    assert_eq!(p.server.poll_timeout(), Some(p.at(ms(750))));
    // The peer keeps sending, so only the deadline can end it.
    for k in 6..=20 {
        p.run_until(p.at(ms(100 * k)));
        if p.server.is_closed() {
            break;
        }
        p.client.submit(b"more", p.now).unwrap();
        p.drive();
    }
    assert_eq!(p.fired, [secs(1)]);
    // The conversation ended well: the reason is the local close.
    assert_eq!(p.server_closed(), Some((secs(1), &CloseReason::LocalClose)));
}

#[test]
fn a_deadline_given_while_lingering_cuts_the_linger() {
    let mut p = deaf_pair(ServerConfig::default());
    p.server.close(p.now, None);
    p.drive();
    assert_eq!(p.server_shutdown_at(), Some(Duration::ZERO));
    for k in 1..=20 {
        p.run_until(p.at(ms(100 * k)));
        if p.server.is_closed() {
            break;
        }
        if k == 3 {
            // Server shutdown at t=0.3 with a deadline at t=0.7 (the
            // quiet timer, pushed back by the read at t=0.2, is at 0.45).
            p.server.close(p.now, Some(p.at(ms(700))));
            assert_eq!(p.server.poll_timeout(), Some(p.at(ms(450))));
        }
        p.client.submit(b"more", p.now).unwrap();
        p.drive();
    }
    assert_eq!(p.fired, [ms(700)]);
    // A lingering connection just closes at the deadline.
    assert_eq!(
        p.server_events(),
        [Seen::ShutdownWrite, Seen::Closed(CloseReason::LocalClose)]
    );
    assert_eq!(p.server_closed_at(), Some(ms(700)));
}

#[test]
fn the_earliest_deadline_wins() {
    let t = Instant::now();
    let mut server = ServerConnection::new(ServerConfig::default(), t);
    server.handle_input(&submit_frame(1), t);
    let Some(ServerEvent::Request(_)) = server.poll_event() else {
        panic!("a request")
    };
    server.close(t, Some(t + secs(10)));
    assert_eq!(server.poll_timeout(), Some(t + secs(10)));
    server.close(t, Some(t + secs(5)));
    assert_eq!(server.poll_timeout(), Some(t + secs(5)));
    server.close(t, Some(t + secs(20)));
    server.close(t, None);
    assert_eq!(server.poll_timeout(), Some(t + secs(5)));
    server.handle_timeout(t + secs(5) - ms(1));
    assert!(!server.is_closed());
    server.handle_timeout(t + secs(5));
    assert_eq!(
        server.poll_event(),
        Some(ServerEvent::Closed(CloseReason::ShutdownDeadline {
            unanswered: 1,
            unsent: 0
        }))
    );
}

#[test]
fn a_deadline_already_past_fires_at_the_next_timeout() {
    let mut p = Pair::default();
    p.auto_respond = false;
    p.client.submit(b"x", p.now).unwrap();
    p.drive();
    p.run_until(p.at(secs(1)));
    p.server.close(p.now, Some(p.start));
    // Due now: the core names the deadline itself, and the kit fires it.
    assert_eq!(p.server.poll_timeout(), Some(p.start));
    p.server.handle_timeout(p.now);
    p.drive();
    assert_eq!(
        p.server_closed(),
        Some((
            secs(1),
            &CloseReason::ShutdownDeadline {
                unanswered: 1,
                unsent: 0
            }
        ))
    );
}

// ---- socket errors -----------------------------------------------------

#[test]
fn a_server_socket_error_ends_the_connection_at_once() {
    let mut p = Pair::default();
    p.auto_respond = false;
    p.client.submit(b"x", p.now).unwrap();
    p.drive();
    p.server.handle_io_error(ErrorKind::ConnectionReset);
    p.drive();
    let reason = CloseReason::Io {
        kind: ErrorKind::ConnectionReset,
    };
    assert_eq!(
        p.server_events(),
        [Seen::Request(0), Seen::Closed(reason.clone())]
    );
    assert_eq!(reason.to_string(), "io error: connection reset");
    assert_eq!(reason.kind(), "io_error");
    assert!(!p.server.wants_input());
    assert_eq!(p.server.poll_timeout(), None);
    assert_eq!(
        p.client_closed(),
        Some((
            Duration::ZERO,
            &CloseReason::PeerClosedInFlight { in_flight: 1 }
        ))
    );
}

#[test]
fn a_socket_error_while_lingering_keeps_the_reason() {
    let mut p = deaf_pair(ServerConfig::default());
    p.server.close(p.now, None);
    p.drive();
    p.server.handle_io_error(ErrorKind::ConnectionReset);
    p.drive();
    assert_eq!(
        p.server_events(),
        [Seen::ShutdownWrite, Seen::Closed(CloseReason::LocalClose)]
    );
}

#[test]
fn a_client_socket_error_ends_the_connection_after_the_acks_already_read() {
    let t = Instant::now();
    let mut client = ClientConnection::new(ClientConfig::default());
    let a = client.submit(b"a", t).unwrap();
    let b = client.submit(b"b", t).unwrap();
    client.submit(b"c", t).unwrap();
    let mut acks = bytes::BytesMut::new();
    encode_ack(RequestKind::Submit, &a, AckResult::OK, &mut acks);
    encode_ack(RequestKind::Submit, &b, AckResult::ERROR, &mut acks);
    client.handle_input(&acks, t);
    client.handle_io_error(ErrorKind::BrokenPipe);
    assert!(client.is_closed());
    let events: Vec<ClientEvent> = std::iter::from_fn(|| client.poll_event()).collect();
    let reason = CloseReason::Io {
        kind: ErrorKind::BrokenPipe,
    };
    assert!(matches!(events[0], ClientEvent::Ack(ack) if ack.id == a));
    assert!(
        matches!(events[1], ClientEvent::Ack(ack) if ack.id == b && ack.result == AckResult::ERROR)
    );
    assert_eq!(events[2], ClientEvent::Closed(reason.clone()));
    assert_eq!(events.len(), 3);
    assert_eq!(client.close_reason(), Some(&reason));
    assert_eq!(client.transmit_buf(), b"", "nothing left to write");
    assert_eq!(client.poll_timeout(), None);
    assert_eq!(client.submit(b"d", t), Err(SubmitError::Closed(reason)));
}

// ---- Closed is the last event ------------------------------------------

#[test]
fn client_closed_is_the_last_event_whatever_comes_after() {
    let t = Instant::now();
    let config = ClientConfig {
        response_timeout: Some(secs(1)),
        ..ClientConfig::default()
    };
    let mut client = ClientConnection::new(config);
    let id = client.submit(b"x", t).unwrap();
    client.submit(b"y", t).unwrap();
    let mut ack = bytes::BytesMut::new();
    encode_ack(RequestKind::Submit, &id, AckResult::OK, &mut ack);
    client.handle_input(&ack, t);
    client.handle_timeout(t + secs(1));
    let reason = CloseReason::ResponseTimeout {
        id: MessageId::from_counter(2),
        after: secs(1),
    };
    assert!(matches!(client.poll_event(), Some(ClientEvent::Ack(a)) if a.id == id));
    assert_eq!(
        client.poll_event(),
        Some(ClientEvent::Closed(reason.clone()))
    );
    assert_eq!(client.poll_event(), None);
    // Nothing after Closed makes another event, or changes the reason.
    client.handle_input(&ack, t + secs(2));
    client.handle_eof(t + secs(2));
    client.handle_timeout(t + secs(60));
    client.handle_io_error(ErrorKind::ConnectionReset);
    client.abort(CloseReason::Aborted);
    client.close(t + secs(60));
    client.handle_written(100, t + secs(60));
    assert!(client.submit(b"z", t).is_err());
    assert_eq!(client.poll_event(), None);
    assert_eq!(client.close_reason(), Some(&reason));
    assert!(client.is_closed());
}

#[test]
fn server_closed_is_the_last_event_whatever_comes_after() {
    let t = Instant::now();
    let mut server = ServerConnection::new(ServerConfig::default(), t);
    server.handle_input(&submit_frame(1), t);
    let Some(ServerEvent::Request(r)) = server.poll_event() else {
        panic!("a request")
    };
    server.handle_io_error(ErrorKind::ConnectionAborted);
    let reason = CloseReason::Io {
        kind: ErrorKind::ConnectionAborted,
    };
    assert_eq!(
        server.poll_event(),
        Some(ServerEvent::Closed(reason.clone()))
    );
    assert_eq!(server.poll_event(), None);
    server.handle_input(&submit_frame(2), t);
    let buf = server.input_buffer();
    buf.extend_from_slice(&submit_frame(3));
    server.handle_input_appended(13, t);
    server.handle_eof(t);
    server.close(t, Some(t));
    server.handle_timeout(t + secs(60));
    server.handle_io_error(ErrorKind::BrokenPipe);
    server.abort(CloseReason::Aborted);
    server.handle_written(10, t);
    assert!(server.respond(r.handle, AckResult::OK, t).is_err());
    assert_eq!(server.poll_event(), None);
    assert_eq!(server.close_reason(), Some(&reason));
    assert!(server.is_closed());
    assert!(!server.wants_input());
    assert_eq!(server.buffered_input(), 0, "a closed server holds nothing");
    assert_eq!(server.pending_output(), 0);
    assert_eq!(server.poll_timeout(), None);
}

fn submit_frame(n: u32) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    protocol::encode_request(
        RequestKind::Submit,
        &MessageId::from_counter(n),
        b"",
        1 << 20,
        &mut out,
    )
    .unwrap();
    out.to_vec()
}
