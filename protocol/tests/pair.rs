//! A client core and a server core wired together in memory (the kit's
//! `Pair`), with simulated time and configurable chunking: no sockets.

mod kit;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use kit::{Pair, Seen, ms, secs};
use proptest::prelude::*;
use protocol::{
    AckResult, ClientConfig, ClientConnection, ClientEvent, CloseReason, CommandId, DecodeError,
    MessageId, Packet, RequestHandle, RequestKind, RespondError, ServerConfig, ServerConnection,
    ServerEvent, Side, SubmitError, encode_request,
};

fn ids(n: usize) -> Vec<MessageId> {
    (1..=n as u32).map(MessageId::from_counter).collect()
}

#[test]
fn ten_thousand_pipelined_submits_in_one_write_are_acked_in_order() {
    let mut p = Pair::new(
        ServerConfig::default(),
        ClientConfig {
            max_in_flight: 10_000,
            ..ClientConfig::default()
        },
    );
    let mut sent = Vec::new();
    for i in 0..10_000u32 {
        sent.push(p.client.submit(&i.to_be_bytes(), p.now).unwrap());
    }
    assert_eq!(sent, ids(10_000));
    p.drive();
    assert_eq!(p.acks.len(), 10_000);
    assert!(p.acks.iter().map(|a| a.id).eq(sent.iter().copied()));
    assert!(p.acks.iter().all(|a| a.result == AckResult::OK));
    assert_eq!(p.client.in_flight(), 0);
    assert_eq!(p.server.stats().frames_in, 10_000);
    assert_eq!(p.server.stats().frames_out, 10_000);
}

#[test]
fn byte_at_a_time_delivery_gets_every_ack() {
    let mut p = Pair::default();
    p.chunk = 1;
    for i in 0..20u32 {
        p.client
            .submit(format!("msg-{i}").as_bytes(), p.now)
            .unwrap();
    }
    p.drive();
    assert_eq!(p.acks.len(), 20);
    assert!(p.acks.iter().map(|a| a.id).eq(ids(20)));
    let payloads: Vec<_> = p.requests.iter().map(|r| r.payload.clone()).collect();
    assert_eq!(payloads[7], &b"msg-7"[..]);
}

#[test]
fn out_of_order_answers_are_written_in_request_order() {
    let mut p = Pair::default();
    p.auto_respond = false;
    for _ in 0..5 {
        p.client.submit(b"x", p.now).unwrap();
    }
    p.drive();
    assert_eq!(p.requests.len(), 5);
    let handles: Vec<RequestHandle> = p.requests.iter().map(|r| r.handle).collect();
    assert!(handles.iter().map(|h| h.index()).eq(0..5));
    // Answer 4, 2, 3: nothing may leave before 0 is answered.
    for &i in &[4usize, 2, 3] {
        p.server
            .respond(handles[i], AckResult(i as u8), p.now)
            .unwrap();
    }
    assert!(p.server.transmit_buf().is_empty());
    p.server.respond(handles[0], AckResult::OK, p.now).unwrap();
    p.drive();
    assert_eq!(
        p.acks.len(),
        1,
        "only request 0 can be acked: 1 is unanswered"
    );
    p.server
        .respond(handles[1], AckResult::ERROR, p.now)
        .unwrap();
    p.drive();
    let got: Vec<(MessageId, u8)> = p.acks.iter().map(|a| (a.id, a.result.0)).collect();
    let want: Vec<(MessageId, u8)> = ids(5).into_iter().zip([0, 1, 2, 3, 4]).collect();
    assert_eq!(got, want);
    assert_eq!(p.server.refused(), 4);
}

#[test]
fn answering_twice_or_an_unknown_handle_is_a_usage_error() {
    let mut p = Pair::default();
    p.auto_respond = false;
    p.client.submit(b"x", p.now).unwrap();
    p.drive();
    let h = p.requests[0].handle;
    p.server.respond(h, AckResult::OK, p.now).unwrap();
    assert_eq!(
        p.server.respond(h, AckResult::OK, p.now),
        Err(RespondError::UnknownRequest(h))
    );
    // A handle from another connection, beyond this one's requests.
    let mut other = Pair::default();
    other.auto_respond = false;
    for _ in 0..3 {
        other.client.submit(b"x", other.now).unwrap();
    }
    other.drive();
    let foreign = other.requests[2].handle;
    assert_eq!(foreign.index(), 2);
    assert_eq!(
        p.server.respond(foreign, AckResult::OK, p.now),
        Err(RespondError::UnknownRequest(foreign))
    );
    assert_eq!(
        RespondError::UnknownRequest(foreign).to_string(),
        "request #2 is not waiting for an answer (answered already, or from another connection)"
    );
    // Neither refusal queued anything: one ack, for the one answer.
    p.drive();
    assert_eq!(p.acks.len(), 1);
}

#[test]
fn slow_reader_hits_high_water_and_memory_stays_bounded() {
    let config = ServerConfig {
        high_water: 4096,
        low_water: 1024,
        ..ServerConfig::default()
    };
    let mut p = Pair::new(
        config.clone(),
        ClientConfig {
            max_in_flight: 100_000,
            ..ClientConfig::default()
        },
    );
    p.client_reads = false;
    // An adapter reads in bounded chunks.
    p.chunk = 8192;
    for _ in 0..20_000 {
        p.client.submit(&[7u8; 16], p.now).unwrap();
    }
    p.drive();
    // The server stopped taking input: most requests are still on the client side.
    assert!(!p.server.wants_input());
    let bound = config.high_water + config.max_pending_requests * 14;
    assert!(
        p.server.pending_output() <= bound,
        "{} > {bound}",
        p.server.pending_output()
    );
    assert!(
        p.server.buffered_input() <= 8192,
        "{}",
        p.server.buffered_input()
    );
    let delivered = p.requests.len();
    assert!(delivered < 2000, "delivered {delivered}");
    // The reader wakes up: everything flows, in order, nothing lost.
    p.client_reads = true;
    p.drive();
    assert_eq!(p.acks.len(), 20_000);
    assert!(p.acks.iter().map(|a| a.id).eq(ids(20_000)));
}

#[test]
fn too_many_unanswered_requests_stop_input_until_answered() {
    let config = ServerConfig {
        max_pending_requests: 3,
        ..ServerConfig::default()
    };
    let mut p = Pair::new(config, ClientConfig::default());
    p.auto_respond = false;
    for _ in 0..10 {
        p.client.submit(b"x", p.now).unwrap();
    }
    p.drive();
    assert_eq!(p.requests.len(), 3);
    assert!(!p.server.wants_input());
    for r in p.requests.clone() {
        p.server.respond(r.handle, AckResult::OK, p.now).unwrap();
    }
    p.drive();
    assert_eq!(p.requests.len(), 6);
}

#[test]
fn idle_timeout_fires_at_the_right_instant() {
    let config = ServerConfig {
        idle_timeout: Some(secs(10)),
        ..ServerConfig::default()
    };
    let mut p = Pair::new(config, ClientConfig::default());
    assert_eq!(p.server.poll_timeout(), Some(p.at(secs(10))));
    p.run_until(p.at(secs(6)));
    assert!(p.fired.is_empty(), "nothing was due before t=10");
    p.client.submit(b"x", p.now).unwrap();
    p.drive();
    // Activity at t=6 moves the deadline to t=16.
    assert_eq!(p.server.poll_timeout(), Some(p.at(secs(16))));
    p.run_until(p.at(secs(16) - ms(1)));
    assert!(p.server_log.iter().all(|l| l.at < secs(16)));
    assert!(!p.server.is_closed());
    p.settle();
    // The timer fired exactly at the instant the server named, once: the
    // server lingered (FIN), the client saw the FIN and closed, and its
    // FIN closed the server, all at t=16.
    assert_eq!(p.fired, [secs(16)]);
    let reason = CloseReason::IdleTimeout { after: secs(10) };
    assert_eq!(
        p.server_events(),
        [Seen::Request(0), Seen::ShutdownWrite, Seen::Closed(reason)]
    );
    assert_eq!(p.server_shutdown_at(), Some(secs(16)));
    assert_eq!(p.server_closed_at(), Some(secs(16)));
    assert_eq!(
        p.client_closed(),
        Some((secs(16), &CloseReason::PeerClosed))
    );
    assert_eq!(p.server.poll_timeout(), None);
}

#[test]
fn frame_timeout_closes_a_slowloris_and_not_a_complete_sender() {
    let config = ServerConfig {
        frame_timeout: Some(secs(5)),
        ..ServerConfig::default()
    };
    let mut p = Pair::new(config, ClientConfig::default());
    assert_eq!(p.next_timeout(), None, "nothing started: no frame timer");
    // A complete request arms nothing either.
    p.client.submit(b"whole", p.now).unwrap();
    p.drive();
    assert_eq!(p.next_timeout(), None);
    // Half a frame at t=0.
    p.server_input(&[0, 0, 0, 20, 2, b'0']);
    assert_eq!(p.server.poll_timeout(), Some(p.at(secs(5))));
    // More bytes of the same frame (at t=3) do not restart the timer.
    p.run_until(p.at(secs(3)));
    p.server_input(b"0");
    assert_eq!(p.server.poll_timeout(), Some(p.at(secs(5))));
    p.run_until(p.at(ms(4_999)));
    assert!(p.server_shutdown_at().is_none());
    p.settle();
    assert_eq!(p.fired, [secs(5)]);
    let reason = CloseReason::FrameTimeout { after: secs(5) };
    assert_eq!(
        p.server_events(),
        [Seen::Request(0), Seen::ShutdownWrite, Seen::Closed(reason)]
    );
    assert_eq!(p.server_closed_at(), Some(secs(5)));
    assert_eq!(
        p.server.close_reason().map(CloseReason::kind),
        Some("frame_timeout")
    );
}

#[test]
fn write_stall_timeout_fires_only_without_progress() {
    let config = ServerConfig {
        write_stall_timeout: Some(secs(2)),
        ..ServerConfig::default()
    };
    let mut p = Pair::new(config, ClientConfig::default());
    p.client_reads = false;
    p.client.submit(b"x", p.now).unwrap();
    p.client.submit(b"y", p.now).unwrap();
    p.drive();
    assert_eq!(p.server.poll_timeout(), Some(p.at(secs(2))));
    // Progress at t=1.5 (one byte written) moves the deadline to t=3.5.
    p.run_until(p.at(ms(1500)));
    assert!(p.fired.is_empty());
    p.server.handle_written(1, p.now);
    assert_eq!(p.server.poll_timeout(), Some(p.at(ms(3500))));
    p.run_until(p.at(ms(3499)));
    assert!(!p.server.is_closed());
    p.run_until(p.at(secs(10)));
    assert_eq!(p.fired, [ms(3500)]);
    // A stalled peer takes nothing: no lingering, Closed at once.
    let reason = CloseReason::WriteStall {
        after: secs(2),
        pending: 27,
    };
    assert_eq!(
        p.server_events(),
        [Seen::Request(0), Seen::Request(1), Seen::Closed(reason)]
    );
    assert_eq!(p.server_closed_at(), Some(ms(3500)));
    assert_eq!(
        p.server.pending_output(),
        0,
        "a closed server holds nothing"
    );
}

#[test]
fn poll_timeout_moves_forward_once_handled() {
    let config = ServerConfig {
        idle_timeout: Some(Duration::from_secs(1)),
        frame_timeout: Some(Duration::from_secs(1)),
        write_stall_timeout: Some(Duration::from_secs(1)),
        ..ServerConfig::default()
    };
    let t0 = Instant::now();
    let mut server = ServerConnection::new(config, t0);
    let mut now = t0;
    // A timer handled early is a no-op and leaves the deadline where it was.
    let at = server.poll_timeout().unwrap();
    server.handle_timeout(now);
    assert_eq!(server.poll_timeout(), Some(at));
    for _ in 0..100 {
        now += Duration::from_millis(100);
        server.handle_input(
            &[
                0, 0, 0, 14, 2, b'0', b'0', b'0', b'0', b'0', b'0', b'0', b'1', b'!',
            ],
            now,
        );
        while let Some(event) = server.poll_event() {
            let ServerEvent::Request(r) = event else {
                panic!("{event:?}")
            };
            server.respond(r.handle, AckResult::OK, now).unwrap();
        }
        let n = server.transmit_buf().len();
        server.handle_written(n, now);
        server.handle_timeout(now);
        assert!(!server.is_closed());
        let next = server.poll_timeout().expect("idle timer armed");
        assert!(next > now, "poll_timeout {next:?} is not after now {now:?}");
    }
}

#[test]
fn eof_with_requests_in_flight_loses_nothing() {
    let mut p = Pair::default();
    p.auto_respond = false;
    for _ in 0..50 {
        p.client.submit(b"req", p.now).unwrap();
    }
    p.drive();
    p.server.handle_eof(p.now);
    p.drive();
    assert!(!p.server.is_closed(), "50 answers are still owed");
    assert!(!p.server.wants_input());
    for r in p.requests.clone() {
        p.server.respond(r.handle, AckResult::OK, p.now).unwrap();
    }
    p.drive();
    assert_eq!(p.acks.len(), 50);
    // The peer is done sending: no lingering, Closed as the last ack leaves.
    let mut want: Vec<Seen> = (0..50).map(Seen::Request).collect();
    want.push(Seen::Closed(CloseReason::PeerClosed));
    assert_eq!(p.server_events(), want);
    assert_eq!(p.server_closed_at(), Some(Duration::ZERO));
    // The client read every ack, then the server's close.
    assert_eq!(
        p.client_closed(),
        Some((Duration::ZERO, &CloseReason::PeerClosed))
    );
}

#[test]
fn eof_answers_requests_buffered_behind_backpressure() {
    let config = ServerConfig {
        max_pending_requests: 2,
        ..ServerConfig::default()
    };
    let t = Instant::now();
    let mut server = ServerConnection::new(config, t);
    let mut bytes = BytesMut::new();
    for i in 1..=10 {
        encode_request(
            RequestKind::Submit,
            &MessageId::from_counter(i),
            b"p",
            1 << 20,
            &mut bytes,
        )
        .unwrap();
    }
    server.handle_input(&bytes, t);
    server.handle_eof(t);
    let mut answered = 0;
    while let Some(event) = server.poll_event() {
        let ServerEvent::Request(r) = event else {
            panic!("{event:?} before the acks were written")
        };
        server.respond(r.handle, AckResult::OK, t).unwrap();
        answered += 1;
    }
    assert_eq!(answered, 10);
    assert_eq!(server.transmit_buf().len(), 10 * 14);
    // A partial write keeps it open; the rest closes it.
    server.handle_written(100, t);
    assert!(!server.is_closed());
    assert_eq!(server.poll_event(), None);
    let n = server.transmit_buf().len();
    assert_eq!(n, 40);
    server.handle_written(n, t);
    assert!(server.is_closed());
    assert_eq!(
        server.poll_event(),
        Some(ServerEvent::Closed(CloseReason::PeerClosed))
    );
    assert_eq!(server.poll_event(), None);
    assert_eq!(server.stats().bytes_out, 140);
}

#[test]
fn partial_frame_at_eof_is_reported_after_the_complete_ones_are_answered() {
    let t = Instant::now();
    let mut server = ServerConnection::new(ServerConfig::default(), t);
    let mut bytes = BytesMut::new();
    encode_request(
        RequestKind::Submit,
        &MessageId::from_counter(1),
        b"a",
        1 << 20,
        &mut bytes,
    )
    .unwrap();
    bytes.extend_from_slice(&[0, 0, 0, 30, 2, b'0']);
    server.handle_input(&bytes, t);
    server.handle_eof(t);
    let Some(ServerEvent::Request(r)) = server.poll_event() else {
        panic!("the complete request first")
    };
    server.respond(r.handle, AckResult::OK, t).unwrap();
    assert_eq!(server.transmit_buf().len(), 14);
    server.handle_written(14, t);
    assert!(server.is_closed());
    // The peer is done sending: no ShutdownWrite, Closed at once.
    assert_eq!(
        server.poll_event(),
        Some(ServerEvent::Closed(CloseReason::TruncatedFrame {
            buffered: 6
        }))
    );
    assert_eq!(server.poll_event(), None);
    assert_eq!(
        server.close_reason(),
        Some(&CloseReason::TruncatedFrame { buffered: 6 })
    );
    assert_eq!(
        server.close_reason().unwrap().to_string(),
        "peer closed in the middle of a frame (6 bytes of it received)"
    );
}

/// Every malformed input ends the connection with its named reason, after
/// the acks of the complete requests before it.
#[test]
fn malformed_input_closes_with_its_reason_after_the_earlier_acks() {
    let cases: Vec<(Vec<u8>, CloseReason)> = vec![
        (
            vec![0, 0, 0, 3],
            DecodeError::FrameTooShort { len: 3 }.into(),
        ),
        (
            vec![0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3],
            DecodeError::FrameTooLong {
                len: u32::MAX,
                max: 8 << 20,
            }
            .into(),
        ),
        (
            vec![0, 0, 0, 5, 0x7f],
            DecodeError::UnknownCommand(0x7f).into(),
        ),
        (
            vec![0, 0, 0, 7, 2, b'1', b'2'],
            DecodeError::BodyTooShort {
                command: CommandId::Submit,
                len: 2,
            }
            .into(),
        ),
        (
            vec![
                0, 0, 0, 14, 0x82, b'0', b'0', b'0', b'0', b'0', b'0', b'0', b'1', 0,
            ],
            CloseReason::UnexpectedPacket {
                command: CommandId::SubmitAck,
                to: Side::Server,
            },
        ),
    ];
    for (bad, reason) in cases {
        let t = Instant::now();
        let mut server = ServerConnection::new(ServerConfig::default(), t);
        let mut bytes = BytesMut::new();
        for i in 1..=3 {
            encode_request(
                RequestKind::Submit,
                &MessageId::from_counter(i),
                b"ok",
                1 << 20,
                &mut bytes,
            )
            .unwrap();
        }
        bytes.extend_from_slice(&bad);
        // Bytes after the bad ones are never looked at.
        encode_request(
            RequestKind::Submit,
            &MessageId::from_counter(9),
            b"late",
            1 << 20,
            &mut bytes,
        )
        .unwrap();
        server.handle_input(&bytes, t);
        assert!(!server.wants_input());
        let mut handles = Vec::new();
        while let Some(event) = server.poll_event() {
            let ServerEvent::Request(r) = event else {
                panic!("{event:?} before the earlier requests were answered ({reason})")
            };
            handles.push(r.handle);
        }
        assert_eq!(handles.len(), 3, "{reason}");
        for h in handles {
            server.respond(h, AckResult::OK, t).unwrap();
        }
        let out = server.transmit_buf().to_vec();
        assert_eq!(out.len(), 3 * 14);
        server.handle_written(out.len(), t);
        let mut client = ClientConnection::new(ClientConfig::default());
        for _ in 0..3 {
            client.submit(b"ok", t).unwrap();
        }
        client.handle_input(&out, t);
        let acks = std::iter::from_fn(|| client.poll_event());
        assert!(
            acks.map(|e| assert!(matches!(e, ClientEvent::Ack(_))))
                .count()
                == 3
        );
        // The peer may still be sending: every ack written, the server
        // lingers (FIN, read and discard) with its reason known, and the
        // peer's EOF ends it.
        assert_eq!(
            server.poll_event(),
            Some(ServerEvent::ShutdownWrite),
            "{reason}"
        );
        assert!(server.wants_input());
        assert!(!server.is_closed());
        assert_eq!(server.close_reason(), Some(&reason));
        server.handle_eof(t);
        assert!(server.is_closed(), "{reason}");
        assert_eq!(server.poll_event(), Some(ServerEvent::Closed(reason)));
        assert_eq!(server.poll_event(), None);
    }
}

#[test]
fn require_conn_refuses_submits_until_a_conn_is_accepted() {
    let config = ServerConfig {
        require_conn: true,
        ..ServerConfig::default()
    };
    let mut p = Pair::new(config, ClientConfig::default());
    p.auto_respond = false;
    p.client.submit(b"early", p.now).unwrap();
    p.drive();
    assert!(
        p.requests.is_empty(),
        "a refused Submit never reaches the application"
    );
    assert_eq!(p.acks[0].result, AckResult::ERROR);
    // Conn then a pipelined Submit: the Submit waits for the Conn's answer.
    p.client.conn(b"bad-token", p.now).unwrap();
    p.client.submit(b"after-bad", p.now).unwrap();
    p.drive();
    assert_eq!(p.requests.len(), 1);
    let conn = p.requests[0].clone();
    assert_eq!(conn.kind, RequestKind::Conn);
    p.server
        .respond(conn.handle, AckResult::ERROR, p.now)
        .unwrap();
    p.drive();
    assert_eq!(p.acks[1].result, AckResult::ERROR);
    assert_eq!(
        p.acks[2].result,
        AckResult::ERROR,
        "a refused Conn unlocks nothing"
    );
    p.client.conn(b"token", p.now).unwrap();
    p.client.submit(b"after-good", p.now).unwrap();
    p.drive();
    let conn = p.requests[1].clone();
    p.server.respond(conn.handle, AckResult::OK, p.now).unwrap();
    p.drive();
    let sub = p.requests[2].clone();
    assert_eq!(&sub.payload[..], b"after-good");
    p.server.respond(sub.handle, AckResult::OK, p.now).unwrap();
    p.drive();
    let results: Vec<u8> = p.acks.iter().map(|a| a.result.0).collect();
    assert_eq!(results, [1, 1, 1, 0, 0]);
    assert_eq!(p.acks[3].kind, RequestKind::Conn);
}

#[test]
fn local_close_answers_buffered_requests_then_closes() {
    let mut p = Pair::default();
    p.auto_respond = false;
    for _ in 0..3 {
        p.client.submit(b"x", p.now).unwrap();
    }
    p.drive();
    p.server.close(p.now, None);
    p.drive();
    assert!(!p.server.wants_input());
    assert!(p.server_shutdown_at().is_none(), "3 answers are still owed");
    for r in p.requests.clone() {
        p.server.respond(r.handle, AckResult::OK, p.now).unwrap();
    }
    p.drive();
    assert_eq!(p.acks.len(), 3);
    // Acks, then the FIN; the client reads the FIN, closes, and its FIN
    // ends the server's lingering.
    assert_eq!(
        p.server_events(),
        [
            Seen::Request(0),
            Seen::Request(1),
            Seen::Request(2),
            Seen::ShutdownWrite,
            Seen::Closed(CloseReason::LocalClose)
        ]
    );
    assert_eq!(
        p.client_closed(),
        Some((Duration::ZERO, &CloseReason::PeerClosed))
    );
    assert!(p.server.is_closed());
}

#[test]
fn idle_connection_holds_no_receive_buffer() {
    let mut p = Pair::default();
    p.client.submit(&[1u8; 100_000], p.now).unwrap();
    p.drive();
    assert_eq!(p.acks.len(), 1);
    assert_eq!(p.server.buffered_input(), 0);
    let cap = p.server.input_buffer().capacity();
    assert!(
        cap <= 64 * 1024,
        "read buffer reserved {cap}, want a bounded step"
    );
}

#[test]
fn a_huge_declared_length_reserves_a_bounded_step_only() {
    let t = Instant::now();
    let mut server = ServerConnection::new(ServerConfig::default(), t);
    // 8 MiB declared, 9 bytes sent: the buffer grows by a step, not 8 MiB.
    server.handle_input(&[0, 0x80, 0, 0, 2, b'0', b'0', b'0', b'0'], t);
    let cap = server.input_buffer().capacity();
    assert!(cap <= 80 * 1024, "reserved {cap}");
}

#[test]
fn read_size_follows_the_frame_being_received_within_8_and_64_kib() {
    let t = Instant::now();
    let mut server = ServerConnection::new(ServerConfig::default(), t);
    // Nothing buffered, or small frames: the 8 KiB step.
    assert_eq!(server.read_size(), 8 * 1024);
    // A 40,000-byte frame whose first 9 bytes came: the rest of it.
    let mut head = 40_000u32.to_be_bytes().to_vec();
    head.extend_from_slice(&[2, b'0', b'0', b'0', b'0']);
    server.handle_input(&head, t);
    assert_eq!(server.read_size(), 40_000 - head.len());
    // 8 MiB declared: capped at 64 KiB, never the declared length.
    let mut huge = ServerConnection::new(ServerConfig::default(), t);
    huge.handle_input(&[0, 0x80, 0, 0, 2, b'0', b'0', b'0', b'0'], t);
    assert_eq!(huge.read_size(), 64 * 1024);
    // input_buffer reserves at least what read_size asks for.
    let room = {
        let b = server.input_buffer();
        b.capacity() - b.len()
    };
    assert!(room >= server.read_size(), "room {room}");
    // The client's side follows its acks the same way: 8 KiB.
    assert_eq!(
        ClientConnection::new(ClientConfig::default()).read_size(),
        8 * 1024
    );
}

#[test]
fn client_refuses_an_ack_for_the_wrong_id_naming_both() {
    let t = Instant::now();
    let mut client = ClientConnection::new(ClientConfig::default());
    client.submit(b"x", t).unwrap();
    let mut out = BytesMut::new();
    Packet::SubmitAck {
        id: MessageId(*b"00000002"),
        result: AckResult::OK,
    }
    .encode(&mut out)
    .unwrap();
    client.handle_input(&out, t);
    assert!(client.is_closed());
    let reason = client.close_reason().unwrap().clone();
    assert_eq!(
        client.poll_event(),
        Some(ClientEvent::Closed(reason.clone()))
    );
    assert_eq!(client.poll_event(), None);
    assert_eq!(
        reason.to_string(),
        "protocol error: expected SubmitAck for id 00000001, got SubmitAck for id 00000002"
    );
    assert!(matches!(
        client.submit(b"y", t),
        Err(SubmitError::Closed(CloseReason::AckMismatch { .. }))
    ));
}

#[test]
fn client_refuses_an_unsolicited_ack_and_a_request_packet() {
    let t = Instant::now();
    let mut client = ClientConnection::new(ClientConfig::default());
    let mut out = BytesMut::new();
    Packet::ConnAck {
        id: MessageId(*b"00000001"),
        result: AckResult::OK,
    }
    .encode(&mut out)
    .unwrap();
    client.handle_input(&out, t);
    assert_eq!(
        client.close_reason().map(CloseReason::kind),
        Some("unsolicited_ack")
    );

    let mut client = ClientConnection::new(ClientConfig::default());
    client.submit(b"x", t).unwrap();
    let mut out = BytesMut::new();
    encode_request(
        RequestKind::Submit,
        &MessageId(*b"00000001"),
        b"",
        1 << 20,
        &mut out,
    )
    .unwrap();
    client.handle_input(&out, t);
    let reason = CloseReason::UnexpectedPacket {
        command: CommandId::Submit,
        to: Side::Client,
    };
    assert_eq!(client.close_reason(), Some(&reason));
    assert_eq!(
        reason.to_string(),
        "protocol error: Submit must not be sent to a client"
    );
    assert_eq!(client.poll_event(), Some(ClientEvent::Closed(reason)));
    assert_eq!(client.poll_event(), None);
}

#[test]
fn client_response_timeout_fails_waiting_requests() {
    let config = ClientConfig {
        response_timeout: Some(Duration::from_secs(3)),
        ..ClientConfig::default()
    };
    let t = Instant::now();
    let mut client = ClientConnection::new(config);
    assert_eq!(client.poll_timeout(), None, "no request, no timer");
    client.submit(b"a", t).unwrap();
    client.submit(b"b", t + Duration::from_secs(1)).unwrap();
    assert_eq!(client.poll_timeout(), Some(t + Duration::from_secs(3)));
    client.handle_timeout(t + Duration::from_secs(2));
    assert!(!client.is_closed());
    client.handle_timeout(t + Duration::from_secs(3));
    assert!(client.is_closed());
    assert_eq!(
        client.close_reason(),
        Some(&CloseReason::ResponseTimeout {
            id: MessageId(*b"00000001"),
            after: Duration::from_secs(3)
        })
    );
}

#[test]
fn client_max_in_flight_is_enforced() {
    let config = ClientConfig {
        max_in_flight: 2,
        ..ClientConfig::default()
    };
    let t = Instant::now();
    let mut client = ClientConnection::new(config);
    client.submit(b"a", t).unwrap();
    client.submit(b"b", t).unwrap();
    assert_eq!(
        client.submit(b"c", t),
        Err(SubmitError::TooManyInFlight { limit: 2 })
    );
}

#[test]
fn client_eof_with_requests_in_flight_says_how_many_were_lost() {
    let mut p = Pair::default();
    p.auto_respond = false;
    for _ in 0..3 {
        p.client.submit(b"x", p.now).unwrap();
    }
    p.drive();
    let h = p.requests[0].handle;
    p.server.respond(h, AckResult::OK, p.now).unwrap();
    p.drive();
    p.client.handle_eof(p.now);
    p.drive();
    let reason = CloseReason::PeerClosedInFlight { in_flight: 2 };
    assert_eq!(p.client.close_reason(), Some(&reason));
    assert_eq!(p.client_closed(), Some((Duration::ZERO, &reason)));
    assert_eq!(p.acks.len(), 1);
    assert_eq!(p.client_log.len(), 2, "the ack, then Closed");
}

#[test]
fn client_close_waits_for_every_ack() {
    let mut p = Pair::default();
    p.auto_respond = false;
    p.client.submit(b"x", p.now).unwrap();
    p.client.close(p.now);
    assert_eq!(p.client.submit(b"y", p.now), Err(SubmitError::Closing));
    p.drive();
    assert!(!p.client.is_closed());
    let h = p.requests[0].handle;
    p.server.respond(h, AckResult::OK, p.now).unwrap();
    p.drive();
    assert!(p.client.is_closed());
    assert_eq!(p.client.close_reason(), Some(&CloseReason::LocalClose));
    assert_eq!(
        p.client_closed(),
        Some((Duration::ZERO, &CloseReason::LocalClose))
    );
    // The client's FIN reaches the server, which has nothing left to do.
    assert_eq!(
        p.server_events(),
        [Seen::Request(0), Seen::Closed(CloseReason::PeerClosed)]
    );
}

#[test]
fn ack_rtt_is_measured_from_the_passed_in_clock() {
    let mut p = Pair::default();
    p.client.submit(b"x", p.now).unwrap();
    p.now += Duration::from_millis(250);
    p.drive();
    assert_eq!(p.acks[0].rtt, Duration::from_millis(250));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// For arbitrary request sequences, chunkings and answer orders the
    /// client sees exactly one ack per request, in order, with its id.
    #[test]
    fn one_ack_per_request_in_order_whatever_the_chunking_and_answer_order(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..60),
        conn_first in any::<bool>(),
        chunk in 1usize..200,
        order_seed in proptest::collection::vec(any::<u32>(), 0..60),
        results in proptest::collection::vec(0u8..3, 60),
    ) {
        let mut p = Pair::default();
        p.chunk = chunk;
        p.auto_respond = false;
        let mut sent = Vec::new();
        if conn_first {
            sent.push(p.client.conn(b"hello", p.now).unwrap());
        }
        for pl in &payloads {
            sent.push(p.client.submit(pl, p.now).unwrap());
        }
        p.drive();
        prop_assert_eq!(p.requests.len(), sent.len());
        // Answer in a scrambled order.
        let mut order: Vec<usize> = (0..sent.len()).collect();
        for (i, s) in order_seed.iter().enumerate() {
            let j = (*s as usize) % order.len();
            let k = i % order.len();
            order.swap(j, k);
        }
        for &i in &order {
            let r = &p.requests[i];
            p.server.respond(r.handle, AckResult(results[i]), p.now).unwrap();
            if i % 7 == 0 {
                p.drive();
            }
        }
        p.drive();
        prop_assert_eq!(p.acks.len(), sent.len());
        for (i, ack) in p.acks.iter().enumerate() {
            prop_assert_eq!(ack.id, sent[i]);
            prop_assert_eq!(ack.result, AckResult(results[i]));
        }
        for (r, pl) in p.requests.iter().skip(usize::from(conn_first)).zip(&payloads) {
            prop_assert_eq!(&r.payload[..], &pl[..]);
        }
        prop_assert!(!p.server.is_closed());
        prop_assert!(!p.client.is_closed());
    }
}
