//! The packet layer on arbitrary packet bytes (what follows a length field).
//!
//! Asserts: no panic; a packet that decodes re-encodes to a frame whose
//! length field is right and whose packet bytes are exactly the input; the
//! payload is a slice of the input, not a copy; a refusal names the right
//! reason.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use protocol::{
    ACK_BODY_LEN, CommandId, DecodeError, HEADER_LEN, ID_LEN, Packet, decode_frame, encode_frame,
};

fuzz_target!(|data: &[u8]| {
    let input = Bytes::copy_from_slice(data);
    match Packet::decode(input.clone()) {
        Ok(packet) => {
            let mut out = BytesMut::new();
            packet
                .encode(&mut out)
                .expect("a decoded packet re-encodes");
            assert_eq!(out.len(), packet.frame_len());
            let (head, body) = out.split_at(HEADER_LEN);
            assert_eq!(head, &((data.len() + HEADER_LEN) as u32).to_be_bytes());
            assert_eq!(body, data);
            assert_eq!(packet.command().as_u8(), data[0]);
            assert_eq!(&packet.id().0[..], &data[1..1 + ID_LEN]);
            if let Packet::Conn { payload, .. } | Packet::Submit { payload, .. } = &packet {
                // Zero-copy: the payload points into the input's storage.
                let start = 1 + ID_LEN;
                assert_eq!(&payload[..], &data[start..]);
                if !payload.is_empty() {
                    assert_eq!(payload.as_ptr(), input[start..].as_ptr());
                }
            }
            // The same bytes behind a length field decode the same way.
            let mut framed = BytesMut::new();
            encode_frame(data, &mut framed).expect("a non-empty packet frames");
            let frame = decode_frame(&mut framed, u32::MAX)
                .expect("a frame we encoded decodes")
                .expect("a whole frame");
            assert_eq!(frame.decode_packet(), Ok(packet));
        }
        Err(e) => {
            let body_len = data.len().saturating_sub(1);
            match e {
                DecodeError::EmptyPacket => assert!(data.is_empty()),
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
                    assert_ne!(len, ACK_BODY_LEN);
                }
                other => panic!("the packet layer returned a frame error: {other:?}"),
            }
        }
    }
});
