//! The packet parse on arbitrary packet bytes (what follows a length
//! field): the input is wrapped in a correct length header and decoded.
//!
//! Asserts: no panic; a packet that decodes re-encodes to a frame whose
//! length field is right and whose packet bytes are exactly the input; the
//! payload is a slice of the receive buffer, not a copy; the frame fed in
//! two parts decodes to the same packet exactly when its last byte is in;
//! the limit is honoured exactly (the frame's own length passes, one less
//! refuses it from the header); a refusal names the right reason, and an
//! empty packet is a frame too short.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use protocol::{
    CommandId, DecodeError, HEADER_LEN, ID_LEN, MIN_FRAME_LEN, Packet, decode,
};

fuzz_target!(|data: &[u8]| {
    let Ok(len) = u32::try_from(data.len() + HEADER_LEN) else {
        return;
    };
    let mut framed = BytesMut::with_capacity(data.len() + HEADER_LEN);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(data);
    let start = framed.as_ptr() as usize;
    let whole = framed.clone();
    match decode(&mut framed, u32::MAX) {
        Ok(Some(packet)) => {
            assert!(framed.is_empty(), "the whole frame is consumed");
            let mut out = BytesMut::new();
            packet
                .encode(&mut out)
                .expect("a decoded packet re-encodes");
            assert_eq!(out.len(), packet.frame_len());
            let (head, body) = out.split_at(HEADER_LEN);
            assert_eq!(head, &len.to_be_bytes());
            assert_eq!(body, data);
            assert_eq!(packet.command().as_u8(), data[0]);
            assert_eq!(&packet.id().0[..], &data[1..1 + ID_LEN]);
            if let Packet::Conn { payload, .. } | Packet::Submit { payload, .. } = &packet {
                // Zero-copy: the payload points into the receive buffer.
                let at = HEADER_LEN + 1 + ID_LEN;
                assert_eq!(&payload[..], &data[at - HEADER_LEN..]);
                assert_eq!(payload.as_ptr() as usize, start + at);
            }
            // Fed in two parts: nothing until the last byte, then the same packet.
            let cut = usize::from(data[0]) % whole.len();
            let mut buf = BytesMut::from(&whole[..cut]);
            assert_eq!(decode(&mut buf, u32::MAX), Ok(None));
            assert_eq!(&buf[..], &whole[..cut]);
            buf.extend_from_slice(&whole[cut..]);
            assert_eq!(decode(&mut buf, u32::MAX), Ok(Some(packet.clone())));
            // The limit is honoured exactly.
            let mut buf = whole.clone();
            assert_eq!(decode(&mut buf, len), Ok(Some(packet)));
            let mut buf = whole.clone();
            assert_eq!(
                decode(&mut buf, len - 1),
                Err(DecodeError::FrameTooLong { len, max: len - 1 })
            );
            assert_eq!(buf, whole, "refused from the header, nothing consumed");
        }
        Ok(None) => panic!("a whole frame was not decoded"),
        Err(e) => {
            let body_len = data.len().saturating_sub(1);
            match e {
                DecodeError::FrameTooShort { len: l } => {
                    assert!(data.is_empty(), "a non-empty packet is a frame of 5 bytes or more");
                    assert_eq!(l, MIN_FRAME_LEN - 1);
                    assert_eq!(framed, whole);
                    return;
                }
                DecodeError::UnknownCommand(b) => {
                    assert_eq!(Some(&b), data.first());
                    assert!(CommandId::from_u8(b).is_none());
                }
                DecodeError::BodyTooShort { command, len } => {
                    assert!(!command.is_response());
                    assert_eq!(Some(&command.as_u8()), data.first());
                    assert_eq!(len, body_len);
                    assert!(len < ID_LEN);
                }
                DecodeError::AckBodyLength { command, len } => {
                    assert!(command.is_response());
                    assert_eq!(Some(&command.as_u8()), data.first());
                    assert_eq!(len, body_len);
                    assert_ne!(len, ID_LEN + 1);
                }
                DecodeError::FrameTooLong { .. } => panic!("no limit, yet too long: {e:?}"),
            }
            // A packet error comes once the frame is whole, which is split off.
            assert!(framed.is_empty());
        }
    }
});
