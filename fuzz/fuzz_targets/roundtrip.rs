//! Packets -> one byte stream -> split at arbitrary points -> packets.
//!
//! Asserts: every split of the same bytes gives back exactly the packets
//! that were encoded, in order, and consumes exactly the stream: nothing is
//! left over, nothing is decoded early, nothing is decoded twice.

#![no_main]

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use protocol::{
    AckResult, DEFAULT_MAX_FRAME_LEN, FrameDecoder, MessageId, Packet, RequestKind, decode_frame,
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
    /// Decode with `FrameDecoder::decode_packet` instead of the two layers.
    one_call: bool,
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

    let decoder = FrameDecoder::default();
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
            let packet = if input.one_call {
                decoder.decode_packet(&mut buf)
            } else {
                decode_frame(&mut buf, DEFAULT_MAX_FRAME_LEN)
                    .and_then(|f| f.map(|f| f.decode_packet()).transpose())
            };
            match packet.expect("an encoded stream decodes") {
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
