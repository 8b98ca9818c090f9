//! Bytes that are not the protocol: each closes only its own connection,
//! after the acks of the whole requests that came before it.

use protocol::{AckResult, DEFAULT_MAX_FRAME_LEN, MessageId, RequestKind};

use crate::support::ack_frame;
use crate::support::{PROMPT, Server, TestClient};
use crate::{Harness, ServerSpec};

/// A frame with the given length field and packet bytes.
fn raw_frame(len: u32, packet: &[u8]) -> Vec<u8> {
    let mut f = len.to_be_bytes().to_vec();
    f.extend_from_slice(packet);
    f
}

/// A frame whose length field is right for `packet`.
fn frame_of(packet: &[u8]) -> Vec<u8> {
    let len = u32::try_from(packet.len() + 4).unwrap_or(u32::MAX);
    raw_frame(len, packet)
}

fn packet(command: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![command];
    p.extend_from_slice(body);
    p
}

/// The malformed inputs: what they are, and their bytes.
fn malformed_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let id = *b"00000003";
    let mut cases = Vec::new();
    for len in 0..=4u32 {
        let what: &'static str = match len {
            0 => "length 0",
            1 => "length 1",
            2 => "length 2",
            3 => "length 3",
            _ => "length 4 (a header and no command id)",
        };
        cases.push((what, raw_frame(len, &[])));
    }
    cases.extend([
        ("length 0xFFFFFFFF", raw_frame(u32::MAX, &[])),
        ("length 2^31", raw_frame(1 << 31, &[])),
        (
            "length max_frame_len + 1",
            raw_frame(DEFAULT_MAX_FRAME_LEN + 1, &[0x02]),
        ),
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
        ),
        ("unknown command 0x7f", frame_of(&packet(0x7f, &id))),
        ("unknown command 0x00", frame_of(&packet(0x00, &id))),
        ("unknown command 0x83", frame_of(&packet(0x83, &[0; 9]))),
        (
            "a Submit with a 4-byte body",
            frame_of(&packet(0x02, b"0000")),
        ),
        ("a Submit with no body", frame_of(&packet(0x02, &[]))),
        (
            "a Conn with a 7-byte body",
            frame_of(&packet(0x01, b"0000000")),
        ),
        (
            "a SubmitAck sent to the server",
            ack_frame(RequestKind::Submit, &MessageId(id), AckResult::OK).to_vec(),
        ),
        (
            "a ConnAck sent to the server",
            ack_frame(RequestKind::Conn, &MessageId(id), AckResult::OK).to_vec(),
        ),
        (
            "a SubmitAck with a 10-byte body",
            frame_of(&packet(0x82, b"000000030\x00")),
        ),
    ]);
    cases
}

/// Malformed frames (lengths 0 to 4, 0xFFFFFFFF, 2^31, over max_frame_len,
/// an HTTP request, unknown commands, Submit/Conn bodies too short for an
/// id, acks sent to the server): sent after two whole Submits, in the same
/// write or after their acks came back, each gets those two acks and then
/// the connection is closed promptly (a huge declared length is refused
/// from the header alone, without waiting for its bytes); a client
/// connected all along is served after every one.
pub fn malformed_frames_close_only_their_connection_after_earlier_acks(h: &dyn Harness) {
    let server = Server::start(h, ServerSpec::default());
    let ep = server.endpoint();
    let mut bystander = TestClient::connect(ep, "bystander");
    for same_write in [true, false] {
        for (what, bad) in malformed_inputs() {
            let how = if same_write {
                "in the same write as two Submits"
            } else {
                "after two Submits were answered"
            };
            let mut c = TestClient::connect(ep, format!("client sending {what} {how}"));
            let (ids, mut bytes) = c.submit_frames(2, |i| format!("good {i}").into_bytes());
            if same_write {
                bytes.extend_from_slice(&bad);
                c.send(&bytes);
                c.expect_submit_acks(&ids, AckResult::OK);
            } else {
                c.send(&bytes);
                c.expect_submit_acks(&ids, AckResult::OK);
                c.send(&bad);
            }
            if let Err(e) = c.wait_closed(PROMPT) {
                panic!("{}: {what} must close the connection: {e}", h.name());
            }
            bystander.round_trip(b"unaffected");
        }
    }
    server.shutdown();
}

/// `max_frame_len` is inclusive and enforced: with a 64 KiB limit, a frame
/// of exactly 64 KiB is answered; a frame one byte longer (sent whole)
/// gets the acks before it, then the connection is closed.
pub fn max_frame_len_is_inclusive_and_enforced(h: &dyn Harness) {
    const MAX: u32 = 64 * 1024;
    let mut spec = ServerSpec::default();
    spec.config.max_frame_len = MAX;
    let server = Server::start(h, spec);
    let ep = server.endpoint();
    let overhead = protocol::REQUEST_OVERHEAD;

    let mut c = TestClient::connect(ep, "client sending a frame of exactly max_frame_len");
    let (id, f) = c.submit_frame(&vec![7; MAX as usize - overhead]);
    assert_eq!(f.len(), MAX as usize, "scenario bug: frame length");
    c.send(&f);
    c.expect_ack(RequestKind::Submit, id, AckResult::OK);
    c.round_trip(b"and goes on");

    let mut c = TestClient::connect(ep, "client sending a frame of max_frame_len + 1");
    let (ids, mut bytes) = c.submit_frames(2, |_| b"small".to_vec());
    let (_, f) = c.submit_frame(&vec![7; MAX as usize + 1 - overhead]);
    bytes.extend_from_slice(&f);
    // The server may close before it has read all of it.
    let _ = c.try_send(&bytes);
    c.expect_submit_acks(&ids, AckResult::OK);
    if let Err(e) = c.wait_closed(PROMPT) {
        panic!(
            "{}: a frame of {} bytes over a {MAX}-byte limit: {e}",
            h.name(),
            MAX + 1
        );
    }
    let mut other = TestClient::connect(ep, "other client");
    other.round_trip(b"unaffected");
    server.shutdown();
}
