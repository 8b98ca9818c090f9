//! Packets -> one byte stream -> split at arbitrary points -> packets.
//!
//! Asserts: every split of the same bytes gives back exactly the packets
//! that were encoded, in order, and consumes exactly the stream: nothing is
//! left over, nothing is decoded early, nothing is decoded twice; under the
//! default limit or under a limit of exactly the longest frame.

#![no_main]

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use protocol::{
    AckResult, DEFAULT_MAX_FRAME_LEN, MIN_FRAME_LEN, MessageId, Packet, RequestKind, decode,
};

#[derive(Debug, Arbitrary)]
enum Spec {
    Request(RequestKind, MessageId, Vec<u8>),
    Ack(RequestKind, MessageId, AckResult),
}

#[derive(Debug, Arbitrary)]
struct Input {
    packets: Vec<Spec>,
    /// Chunk lengths the stream is cut into; the rest goes in one last chunk.
    cuts: Vec<u16>,
    /// Decode under a limit of exactly the longest frame, not the default.
    tight_limit: bool,
}

fuzz_target!(|input: Input| {
    let packets: Vec<Packet> = input
        .packets
        .into_iter()
        .map(|spec| match spec {
            Spec::Request(kind, id, payload) => Packet::request(kind, id, Bytes::from(payload)),
            Spec::Ack(kind, id, result) => Packet::ack(kind, id, result),
        })
        .collect();

    let mut stream = BytesMut::new();
    let mut ends = Vec::with_capacity(packets.len());
    for p in &packets {
        let start = stream.len();
        p.encode(&mut stream).expect("small packets encode");
        assert_eq!(p.frame_len(), stream.len() - start);
        ends.push(stream.len());
    }
    let stream = stream.freeze();
    let longest = packets.iter().map(Packet::frame_len).max().unwrap_or(0);
    let limit = if input.tight_limit {
        u32::try_from(longest).expect("small packets").max(MIN_FRAME_LEN)
    } else {
        DEFAULT_MAX_FRAME_LEN
    };

    let mut buf = BytesMut::new();
    let mut fed = 0usize;
    let mut consumed = 0usize;
    let mut decoded = Vec::with_capacity(packets.len());
    let mut cuts = input.cuts.into_iter().map(usize::from);
    while fed < stream.len() {
        let step = cuts.next().unwrap_or(usize::MAX).min(stream.len() - fed);
        buf.extend_from_slice(&stream[fed..fed + step]);
        fed += step;
        loop {
            match decode(&mut buf, limit).expect("an encoded stream decodes") {
                Some(p) => {
                    consumed += p.frame_len();
                    // A packet comes out exactly when its last byte is in.
                    assert_eq!(Some(&consumed), ends.get(decoded.len()));
                    assert!(consumed <= fed);
                    decoded.push(p);
                }
                None => break,
            }
        }
        // Whatever is held back is less than the next whole frame.
        assert_eq!(consumed + buf.len(), fed);
        if let Some(&next_end) = ends.get(decoded.len()) {
            assert!(fed < next_end);
        }
    }
    assert!(buf.is_empty());
    assert_eq!(consumed, stream.len());
    assert_eq!(decoded, packets);
});
