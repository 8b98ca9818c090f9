//! The decoder on arbitrary bytes, under the default limit, under a small
//! limit taken from the first byte, and under no limit (`u32::MAX`).
//!
//! Asserts: no panic; what is consumed never exceeds the input; every
//! packet re-encodes to exactly the bytes it was split from, and a
//! request's payload is a slice of the receive buffer (no copy);
//! `Ok(None)` and header errors leave the buffer untouched, and each
//! happens exactly when the header says so; a packet error (unknown
//! command, bad body length) comes only once the whole frame is in, splits
//! exactly that frame off and names what the packet's bytes say.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use protocol::{
    ACK_FRAME_LEN, CommandId, DEFAULT_MAX_FRAME_LEN, DecodeError, HEADER_LEN, ID_LEN,
    MIN_FRAME_LEN, Packet, REQUEST_OVERHEAD, decode,
};

fuzz_target!(|data: &[u8]| {
    check(data, DEFAULT_MAX_FRAME_LEN);
    // A limit small enough for short inputs to reach `FrameTooLong`; it may be
    // below MIN_FRAME_LEN, where every header is refused.
    let small = data.first().map_or(0, |&b| u32::from(b));
    check(data, small);
    check(data, u32::MAX);
});

fn check(input: &[u8], max: u32) {
    let mut buf = BytesMut::from(input);
    // The receive buffer's storage: payloads must point into it.
    let storage = buf.as_ptr() as usize..buf.as_ptr() as usize + input.len();
    let mut consumed = 0usize;
    let mut out = BytesMut::new();
    loop {
        let before = buf.clone();
        let declared = buf
            .first_chunk::<HEADER_LEN>()
            .map(|h| u32::from_be_bytes(*h));
        match decode(&mut buf, max) {
            Ok(Some(packet)) => {
                let declared = declared.expect("a packet was decoded without a header");
                assert!(declared >= MIN_FRAME_LEN && declared <= max);
                let len = usize::try_from(declared).expect("u32 fits");
                assert_eq!(packet.frame_len(), len);
                let end = consumed + len;
                assert!(
                    end <= input.len(),
                    "consumed {end} of {} bytes",
                    input.len()
                );
                out.clear();
                packet.encode(&mut out).expect("a decoded packet re-encodes");
                assert_eq!(&out[..], &input[consumed..end]);
                if let Packet::Conn { payload, .. } | Packet::Submit { payload, .. } = &packet {
                    assert_eq!(payload.len(), len - REQUEST_OVERHEAD);
                    let at = payload.as_ptr() as usize;
                    assert_eq!(at, storage.start + consumed + REQUEST_OVERHEAD, "a copy");
                    assert!(at + payload.len() <= storage.end);
                } else {
                    assert_eq!(len, ACK_FRAME_LEN);
                }
                consumed = end;
                assert_eq!(&buf[..], &input[consumed..]);
            }
            Ok(None) => {
                assert_eq!(buf, before, "Ok(None) touched the buffer");
                match declared {
                    None => assert!(buf.len() < HEADER_LEN),
                    Some(d) => {
                        assert!(d >= MIN_FRAME_LEN && d <= max);
                        assert!((buf.len() as u64) < u64::from(d));
                    }
                }
                break;
            }
            Err(e) => {
                let d = declared.expect("an error without a header");
                match e {
                    DecodeError::FrameTooShort { len } => {
                        assert_eq!(buf, before, "a header error touched the buffer");
                        assert_eq!(len, d);
                        assert!(d < MIN_FRAME_LEN);
                    }
                    DecodeError::FrameTooLong { len, max: m } => {
                        assert_eq!(buf, before, "a header error touched the buffer");
                        assert_eq!((len, m), (d, max));
                        assert!(d >= MIN_FRAME_LEN && d > max);
                    }
                    packet_error => {
                        // The header was fine and the whole frame was in.
                        assert!(d >= MIN_FRAME_LEN && d <= max);
                        let len = usize::try_from(d).expect("u32 fits");
                        assert!(before.len() >= len, "{packet_error:?} before the frame was in");
                        assert_eq!(&buf[..], &before[len..], "not exactly the frame split off");
                        check_packet_error(&packet_error, &before[HEADER_LEN..len]);
                        consumed += len;
                    }
                }
                break;
            }
        }
    }
    assert!(consumed <= input.len());
    assert_eq!(consumed + buf.len(), input.len());
}

/// A packet error names what the packet's own bytes say.
fn check_packet_error(e: &DecodeError, packet: &[u8]) {
    let body_len = packet.len() - 1;
    match *e {
        DecodeError::UnknownCommand(b) => {
            assert_eq!(b, packet[0]);
            assert!(CommandId::from_u8(b).is_none());
        }
        DecodeError::BodyTooShort { command, len } => {
            assert_eq!(command.as_u8(), packet[0]);
            assert!(!command.is_response());
            assert_eq!(len, body_len);
            assert!(len < ID_LEN);
        }
        DecodeError::AckBodyLength { command, len } => {
            assert_eq!(command.as_u8(), packet[0]);
            assert!(command.is_response());
            assert_eq!(len, body_len);
            assert_ne!(len, ID_LEN + 1);
        }
        ref other => panic!("a header error from a whole frame: {other:?}"),
    }
}
