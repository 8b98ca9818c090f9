//! The codec (`decode`, `encode_request`, `encode_ack`, `Packet::encode`)
//! against byte vectors and random splits.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use protocol::{
    AckResult, CommandId, DEFAULT_MAX_FRAME_LEN, DecodeError, EncodeError, IdGenerator,
    MAX_FRAME_LEN_LIMIT, MessageId, Packet, RequestKind, decode, encode_ack, encode_request,
};

fn id(s: &[u8; 8]) -> MessageId {
    MessageId(*s)
}

fn encode(p: &Packet) -> Vec<u8> {
    let mut out = BytesMut::new();
    p.encode(&mut out).expect("encodable");
    out.to_vec()
}

/// Decodes every whole packet in `bytes`; returns them, the error if any,
/// and how many bytes were consumed.
fn decode_all(bytes: &[u8]) -> (Vec<Packet>, Option<DecodeError>, usize) {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    loop {
        match decode(&mut buf, DEFAULT_MAX_FRAME_LEN) {
            Ok(Some(p)) => out.push(p),
            Ok(None) => return (out, None, bytes.len() - buf.len()),
            Err(e) => return (out, Some(e), bytes.len() - buf.len()),
        }
    }
}

#[test]
fn seed_example_submit_is_31_bytes_length_first() {
    // The seed's client log: "send submit id = 00000001, payload=helped-lester-8f15, frame length = 31".
    let p = Packet::Submit {
        id: id(b"00000001"),
        payload: Bytes::from_static(b"helped-lester-8f15"),
    };
    let bytes = encode(&p);
    assert_eq!(bytes.len(), 31);
    assert_eq!(&bytes[..4], &31u32.to_be_bytes());
    assert_eq!(bytes[4], 0x02);
    assert_eq!(&bytes[5..13], b"00000001");
    assert_eq!(&bytes[13..], b"helped-lester-8f15");
    // The same 31 bytes through the decoder: one packet, all consumed.
    let (got, err, used) = decode_all(&bytes);
    assert_eq!((got, err, used), (vec![p], None, 31));
    // And through the request fast path, byte for byte.
    let mut out = BytesMut::new();
    encode_request(
        RequestKind::Submit,
        &id(b"00000001"),
        b"helped-lester-8f15",
        DEFAULT_MAX_FRAME_LEN,
        &mut out,
    )
    .unwrap();
    assert_eq!(&out[..], &bytes[..]);
}

#[test]
fn seed_submit_ack_is_14_bytes() {
    let bytes = encode(&Packet::SubmitAck {
        id: id(b"00000001"),
        result: AckResult::OK,
    });
    assert_eq!(
        bytes,
        [
            0, 0, 0, 14, 0x82, b'0', b'0', b'0', b'0', b'0', b'0', b'0', b'1', 0
        ]
    );
}

#[test]
fn every_packet_kind_round_trips() {
    let packets = [
        Packet::Conn {
            id: id(b"00000001"),
            payload: Bytes::from_static(b"token"),
        },
        Packet::Submit {
            id: id(b"00000002"),
            payload: Bytes::from_static(b"hello"),
        },
        Packet::ConnAck {
            id: id(b"00000001"),
            result: AckResult::OK,
        },
        Packet::SubmitAck {
            id: id(b"00000002"),
            result: AckResult::ERROR,
        },
        Packet::SubmitAck {
            id: id(b"00000003"),
            result: AckResult(200),
        },
    ];
    for p in packets {
        let bytes = encode(&p);
        assert_eq!(bytes.len(), p.frame_len());
        let (got, err, used) = decode_all(&bytes);
        assert_eq!(err, None);
        assert_eq!(used, bytes.len());
        assert_eq!(got, vec![p]);
    }
}

#[test]
fn unknown_result_codes_are_kept_not_refused() {
    let bytes = encode(&Packet::ConnAck {
        id: id(b"00000009"),
        result: AckResult(7),
    });
    let (got, _, _) = decode_all(&bytes);
    assert!(matches!(
        got[..],
        [Packet::ConnAck {
            result: AckResult(7),
            ..
        }]
    ));
    assert_eq!(AckResult(7).to_string(), "7 (unknown result code)");
}

#[test]
fn empty_payload_is_a_13_byte_frame() {
    let p = Packet::Submit {
        id: id(b"00000001"),
        payload: Bytes::new(),
    };
    let bytes = encode(&p);
    assert_eq!(bytes.len(), 13);
    assert_eq!(decode_all(&bytes).0, vec![p]);
}

#[test]
fn one_mib_payload_round_trips_without_copy() {
    let payload = Bytes::from(vec![0xA5u8; 1 << 20]);
    let p = Packet::Submit {
        id: id(b"12345678"),
        payload: payload.clone(),
    };
    let mut buf = BytesMut::from(&encode(&p)[..]);
    let start = buf.as_ptr() as usize;
    let storage = start..start + buf.capacity();
    let got = decode(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap().unwrap();
    assert!(buf.is_empty());
    let Packet::Submit { payload: got, .. } = got else {
        panic!("not a submit: {got:?}")
    };
    assert_eq!(got, payload);
    // The payload is the receive buffer itself, 13 bytes in: no copy.
    assert_eq!(got.as_ptr() as usize, start + 13);
    let end = got.as_ptr() as usize + got.len();
    assert!(
        storage.contains(&(got.as_ptr() as usize)) && end <= storage.end,
        "the payload lies outside the receive buffer's storage"
    );
}

#[test]
fn trailing_junk_after_a_frame_is_not_consumed() {
    let mut bytes = encode(&Packet::Submit {
        id: id(b"00000001"),
        payload: Bytes::from_static(b"x"),
    });
    let frame_len = bytes.len();
    bytes.extend_from_slice(&[0xDE, 0xAD, 0xBE]);
    let mut buf = BytesMut::from(&bytes[..]);
    let p = decode(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap();
    assert!(p.is_some());
    assert_eq!(&buf[..], &[0xDE, 0xAD, 0xBE]);
    // Three bytes are not a header: need more, nothing consumed.
    assert_eq!(decode(&mut buf, DEFAULT_MAX_FRAME_LEN), Ok(None));
    assert_eq!(buf.len(), 3);
    // A fourth junk byte makes a (bad) header: 0xDEADBEEF is too long,
    // refused from the header alone, and the buffer is left as it was.
    buf.extend_from_slice(&[0xEF]);
    assert_eq!(
        decode(&mut buf, DEFAULT_MAX_FRAME_LEN),
        Err(DecodeError::FrameTooLong {
            len: 0xDEAD_BEEF,
            max: DEFAULT_MAX_FRAME_LEN
        })
    );
    assert_eq!(&buf[..], &[0xDE, 0xAD, 0xBE, 0xEF]);
    assert_eq!(frame_len, 14);
}

#[test]
fn an_incomplete_frame_is_need_more_and_consumes_nothing() {
    let bytes = encode(&Packet::Submit {
        id: id(b"00000001"),
        payload: Bytes::from_static(b"hello"),
    });
    // Every proper prefix, header cut included, is `Ok(None)` and is left
    // byte for byte where it was.
    for cut in 0..bytes.len() {
        let mut buf = BytesMut::from(&bytes[..cut]);
        assert_eq!(
            decode(&mut buf, DEFAULT_MAX_FRAME_LEN),
            Ok(None),
            "cut {cut}"
        );
        assert_eq!(&buf[..], &bytes[..cut]);
    }
}

#[test]
fn lengths_below_five_are_refused_from_the_header() {
    for len in 0u32..5 {
        let mut buf = BytesMut::from(&len.to_be_bytes()[..]);
        assert_eq!(
            decode(&mut buf, DEFAULT_MAX_FRAME_LEN),
            Err(DecodeError::FrameTooShort { len }),
            "len {len}"
        );
        assert_eq!(&buf[..], &len.to_be_bytes(), "the header is left in place");
    }
    // Length 4 is the empty packet: refused as too short, whatever follows.
    let mut buf = BytesMut::from(&[0, 0, 0, 4, 0x02, 0, 0, 0, 0, 0, 0, 0, 0][..]);
    assert_eq!(
        decode(&mut buf, DEFAULT_MAX_FRAME_LEN),
        Err(DecodeError::FrameTooShort { len: 4 })
    );
}

#[test]
fn huge_lengths_are_refused_from_the_header_without_reserving() {
    for len in [DEFAULT_MAX_FRAME_LEN + 1, 0x7FFF_FFFF, 0xFFFF_FFFF] {
        let mut buf = BytesMut::with_capacity(4);
        buf.extend_from_slice(&len.to_be_bytes());
        let cap = buf.capacity();
        let err = decode(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap_err();
        assert_eq!(
            err,
            DecodeError::FrameTooLong {
                len,
                max: DEFAULT_MAX_FRAME_LEN
            }
        );
        assert_eq!(buf.capacity(), cap, "nothing reserved for {len}");
    }
    assert_eq!(
        DecodeError::FrameTooLong {
            len: 4294967295,
            max: 8388608
        }
        .to_string(),
        "frame length 4294967295 exceeds limit 8388608"
    );
}

#[test]
fn a_configured_limit_is_honoured_exactly() {
    let ok = encode(&Packet::Submit {
        id: id(b"00000001"),
        payload: Bytes::from_static(b"1234567"),
    });
    assert_eq!(ok.len(), 20);
    assert!(decode(&mut BytesMut::from(&ok[..]), 20).unwrap().is_some());
    let long = encode(&Packet::Submit {
        id: id(b"00000001"),
        payload: Bytes::from_static(b"12345678"),
    });
    // Refused from the header alone: 4 bytes of it are enough.
    assert_eq!(
        decode(&mut BytesMut::from(&long[..4]), 20),
        Err(DecodeError::FrameTooLong { len: 21, max: 20 })
    );
    assert_eq!(
        decode(&mut BytesMut::from(&long[..]), 20),
        Err(DecodeError::FrameTooLong { len: 21, max: 20 })
    );
    // The same limit on the encoder's side.
    let mut out = BytesMut::new();
    encode_request(
        RequestKind::Submit,
        &id(b"00000001"),
        b"1234567",
        20,
        &mut out,
    )
    .unwrap();
    assert_eq!(&out[..], &ok[..]);
}

#[test]
fn malformed_packets_name_the_fault_and_the_numbers() {
    let cases: [(&[u8], DecodeError, &str); 5] = [
        (
            &[0, 0, 0, 5, 0x7f],
            DecodeError::UnknownCommand(0x7f),
            "unknown command id 0x7f",
        ),
        (
            &[0, 0, 0, 8, 0x02, b'1', b'2', b'3'],
            DecodeError::BodyTooShort {
                command: CommandId::Submit,
                len: 3,
            },
            "Submit body is 3 bytes, needs at least 8",
        ),
        (
            &[0, 0, 0, 5, 0x01],
            DecodeError::BodyTooShort {
                command: CommandId::Conn,
                len: 0,
            },
            "Conn body is 0 bytes, needs at least 8",
        ),
        (
            &[
                0, 0, 0, 13, 0x82, b'0', b'0', b'0', b'0', b'0', b'0', b'0', b'1',
            ],
            DecodeError::AckBodyLength {
                command: CommandId::SubmitAck,
                len: 8,
            },
            "SubmitAck body is 8 bytes, must be exactly 9",
        ),
        (
            &[0, 0, 0, 15, 0x81, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0],
            DecodeError::AckBodyLength {
                command: CommandId::ConnAck,
                len: 10,
            },
            "ConnAck body is 10 bytes, must be exactly 9",
        ),
    ];
    for (bytes, want, msg) in cases {
        let (got, err, _) = decode_all(bytes);
        assert!(got.is_empty());
        assert_eq!(err.as_ref(), Some(&want), "{bytes:?}");
        assert_eq!(want.to_string(), msg);
    }
}

/// A header error is found before anything is split off; a packet error
/// only once the whole frame is in, which the decoder has then split off
/// (the stream is dead either way: an error is final).
#[test]
fn a_bad_packet_is_found_once_its_whole_frame_is_in() {
    let bad = [0u8, 0, 0, 9, 0x7f, 1, 2, 3, 4];
    for cut in 0..bad.len() {
        let mut buf = BytesMut::from(&bad[..cut]);
        assert_eq!(
            decode(&mut buf, DEFAULT_MAX_FRAME_LEN),
            Ok(None),
            "cut {cut}"
        );
    }
    let mut buf = BytesMut::from(&bad[..]);
    buf.extend_from_slice(b"next");
    assert_eq!(
        decode(&mut buf, DEFAULT_MAX_FRAME_LEN),
        Err(DecodeError::UnknownCommand(0x7f))
    );
    assert_eq!(&buf[..], b"next", "exactly the bad frame was split off");
}

#[test]
fn encoders_refuse_frames_over_the_limit_and_write_nothing() {
    let mut out = BytesMut::new();
    let err = encode_request(
        RequestKind::Submit,
        &id(b"00000001"),
        &[0u8; 100],
        50,
        &mut out,
    )
    .unwrap_err();
    assert_eq!(err, EncodeError::FrameTooLong { len: 113, max: 50 });
    assert!(out.is_empty());
    assert_eq!(err.to_string(), "frame length 113 exceeds limit 50");
    // What is already in `out` is left alone, and a frame of exactly the
    // limit is accepted.
    out.extend_from_slice(b"keep");
    assert!(
        encode_request(
            RequestKind::Conn,
            &id(b"00000001"),
            &[0u8; 38],
            50,
            &mut out
        )
        .is_err()
    );
    assert_eq!(&out[..], b"keep");
    encode_request(
        RequestKind::Conn,
        &id(b"00000001"),
        &[0u8; 37],
        50,
        &mut out,
    )
    .unwrap();
    assert_eq!(out.len(), 4 + 50);
    assert_eq!(&out[4..8], &50u32.to_be_bytes());
    // A limit above what the wire can carry is held to MAX_FRAME_LEN_LIMIT.
    let err = EncodeError::FrameTooLong {
        len: 13,
        max: MAX_FRAME_LEN_LIMIT,
    };
    assert!(err.to_string().ends_with("exceeds limit 2147483647"));
    encode_request(
        RequestKind::Submit,
        &id(b"00000001"),
        b"",
        u32::MAX,
        &mut out,
    )
    .unwrap();
    assert_eq!(out.len(), 4 + 50 + 13);
}

#[test]
fn frame_reencodes_to_its_bytes() {
    let bytes = encode(&Packet::Conn {
        id: id(b"abcdefgh"),
        payload: Bytes::from_static(b"token"),
    });
    let mut buf = BytesMut::from(&bytes[..]);
    let packet = decode(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap().unwrap();
    assert!(buf.is_empty());
    let mut out = BytesMut::new();
    packet.encode(&mut out).unwrap();
    assert_eq!(&out[..], &bytes[..]);
    assert_eq!(packet.frame_len(), bytes.len());
    assert_eq!(packet.command(), CommandId::Conn);
    assert_eq!(packet.id(), id(b"abcdefgh"));
}

#[test]
fn encode_ack_matches_packet_encode() {
    let mut a = BytesMut::new();
    encode_ack(
        RequestKind::Conn,
        &id(b"00000042"),
        AckResult::ERROR,
        &mut a,
    );
    let b = encode(&Packet::ConnAck {
        id: id(b"00000042"),
        result: AckResult::ERROR,
    });
    assert_eq!(&a[..], &b[..]);
}

#[test]
fn id_generator_starts_at_one_and_wraps_to_zero() {
    let mut g = IdGenerator::new();
    assert_eq!(g.next_id(), id(b"00000001"));
    assert_eq!(g.next_id(), id(b"00000002"));
    let mut g = IdGenerator::starting_at(99_999_998);
    assert_eq!(g.next_id(), id(b"99999998"));
    assert_eq!(g.next_id(), id(b"99999999"));
    assert_eq!(g.next_id(), id(b"00000000"));
    assert_eq!(g.next_id(), id(b"00000001"));
}

#[test]
fn message_id_display_escapes_non_printable_bytes() {
    assert_eq!(id(b"00000001").to_string(), "00000001");
    assert_eq!(
        MessageId([0, b'a', 0xff, b'b', b'c', b'd', b'e', b'f']).to_string(),
        "\\x00a\\xffbcdef"
    );
}

fn packets() -> impl Strategy<Value = Vec<Packet>> {
    proptest::collection::vec(protocol::strategy::packet(300), 0..20)
}

/// Feeds `stream` to a decoder in the chunks `cuts` describes.
fn decode_in_chunks(stream: &[u8], cuts: &[usize]) -> (Vec<Packet>, usize) {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    points.push(0);
    points.push(stream.len());
    points.sort_unstable();
    points.dedup();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let mut consumed = 0;
    for w in points.windows(2) {
        buf.extend_from_slice(&stream[w[0]..w[1]]);
        let before = buf.len();
        while let Some(p) = decode(&mut buf, DEFAULT_MAX_FRAME_LEN).expect("valid stream") {
            got.push(p);
        }
        consumed += before - buf.len();
    }
    assert!(buf.is_empty(), "left over: {} bytes", buf.len());
    (got, consumed)
}

proptest! {
    #[test]
    fn any_split_of_a_stream_yields_the_same_packets(
        packets in packets(),
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
    ) {
        let mut stream = BytesMut::new();
        for p in &packets {
            p.encode(&mut stream).unwrap();
        }
        let (got, consumed) = decode_in_chunks(&stream, &cuts);
        prop_assert_eq!(&got, &packets);
        prop_assert_eq!(consumed, stream.len());
    }

    #[test]
    fn byte_by_byte_yields_the_same_packets(packets in proptest::collection::vec(protocol::strategy::packet(40), 0..6)) {
        let mut stream = BytesMut::new();
        for p in &packets {
            p.encode(&mut stream).unwrap();
        }
        let cuts: Vec<usize> = (0..stream.len()).collect();
        let (got, consumed) = decode_in_chunks(&stream, &cuts);
        prop_assert_eq!(got, packets);
        prop_assert_eq!(consumed, stream.len());
    }

    #[test]
    fn splits_inside_header_yield_same_frames(p in protocol::strategy::packet(64), cut in 1usize..4) {
        let mut stream = BytesMut::new();
        p.encode(&mut stream).unwrap();
        p.encode(&mut stream).unwrap();
        let second = p.frame_len();
        let (got, _) = decode_in_chunks(&stream, &[cut, second + cut]);
        prop_assert_eq!(got, vec![p.clone(), p]);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_never_over_consume(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let (packets, _, used) = decode_all(&bytes);
        prop_assert!(used <= bytes.len());
        // Every packet re-encodes to exactly the bytes it was split from.
        let mut out = BytesMut::new();
        for p in &packets {
            p.encode(&mut out).unwrap();
        }
        let whole: usize = packets.iter().map(Packet::frame_len).sum();
        prop_assert_eq!(&out[..], &bytes[..whole]);
    }

    #[test]
    fn encode_request_and_encode_ack_agree_with_packet_encode(p in protocol::strategy::packet(100)) {
        let mut fast = BytesMut::new();
        match &p {
            Packet::Conn { id, payload } => {
                encode_request(RequestKind::Conn, id, payload, DEFAULT_MAX_FRAME_LEN, &mut fast).unwrap()
            }
            Packet::Submit { id, payload } => {
                encode_request(RequestKind::Submit, id, payload, DEFAULT_MAX_FRAME_LEN, &mut fast).unwrap()
            }
            Packet::ConnAck { id, result } => encode_ack(RequestKind::Conn, id, *result, &mut fast),
            Packet::SubmitAck { id, result } => encode_ack(RequestKind::Submit, id, *result, &mut fast),
        }
        prop_assert_eq!(&fast[..], &encode(&p)[..]);
        prop_assert_eq!(fast.len(), p.frame_len());
    }
}
