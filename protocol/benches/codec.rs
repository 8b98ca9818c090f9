//! The codec against tokio-util's `LengthDelimitedCodec` and against memcpy,
//! on the same bytes in the same run.
//!
//! - `decode/32B` and `decode/64KiB`: a receive buffer holding whole Submit
//!   frames, split into packets with `decode` (the crate's one decoder),
//!   versus `LengthDelimitedCodec` (set up for this header) followed by the
//!   same packet parse (`parse_packet` below: the crate's parse is private
//!   since `decode` is the only decoder, so this is a line-for-line copy of
//!   it, checked to give the same packets), and versus
//!   `LengthDelimitedCodec` (header kept) followed by `decode` on each frame
//!   it split off (`tokio-util+decode`: what a user of both crates' public
//!   APIs pays, the header checked twice). Throughput in frames. Refilling
//!   the buffer from the template before each iteration is not timed
//!   (`iter_custom`), so the figures are the decoders alone; every side
//!   refills the same way. No decoder copies a payload, so the time per
//!   frame should not depend on the payload size.
//! - `encode/64KiB`: `encode_request` of one 64 KiB Submit versus a plain
//!   `extend_from_slice` of the same 64 KiB (throughput in payload bytes).
//! - `encode/32B`: `encode_request` of 1024 32-byte Submits versus copying the
//!   same frames, already encoded, with `extend_from_slice` (in frames).
//!
//! `cargo bench -p protocol --bench codec`; the whole run takes about a
//! minute. (Criterion plans `iter_custom` runs by wall time, refill
//! included, so the 64 KiB decode, which spends most of its wall time
//! refilling 4 MiB, runs fewer iterations in the same time: still tens of
//! thousands.)

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocol::{
    AckResult, CommandId, DEFAULT_MAX_FRAME_LEN, DecodeError, ID_LEN, MessageId, Packet,
    RequestKind, decode, encode_request,
};
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

/// A buffer of `count` Submit frames with `payload_len`-byte payloads.
fn submits(count: usize, payload_len: usize) -> Vec<u8> {
    let payload = vec![b'x'; payload_len];
    let mut buf = BytesMut::new();
    for i in 0..count {
        let id = MessageId::from_counter(u32::try_from(i).expect("small count") + 1);
        encode_request(
            RequestKind::Submit,
            &id,
            &payload,
            DEFAULT_MAX_FRAME_LEN,
            &mut buf,
        )
        .expect("the frame fits");
    }
    buf.to_vec()
}

/// `total_length` counts its own 4 bytes: the packet is `length - 4` bytes
/// after the field, and the field is skipped (`num_skip` defaults to the
/// field's offset + length). The limit applies to the field as read, as ours.
fn tokio_codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_offset(0)
        .length_field_length(4)
        .length_adjustment(-4)
        .big_endian()
        .max_frame_length(DEFAULT_MAX_FRAME_LEN as usize)
        .new_codec()
}

/// The same, handing out whole frames, header included (`num_skip(0)`).
fn tokio_codec_whole_frames() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_offset(0)
        .length_field_length(4)
        .length_adjustment(0)
        .num_skip(0)
        .big_endian()
        .max_frame_length(DEFAULT_MAX_FRAME_LEN as usize)
        .new_codec()
}

/// The packet parse of `protocol`'s private `codec::decode_packet`, copied
/// line for line: a request's payload is the packet advanced past the
/// command id and the message id (no copy, no reference-count change).
fn parse_packet(mut packet: Bytes) -> Result<Packet, DecodeError> {
    let byte = packet.first().copied().unwrap_or_default();
    let command = CommandId::from_u8(byte).ok_or(DecodeError::UnknownCommand(byte))?;
    let body_len = packet.len().saturating_sub(1);
    let mut id = [0u8; ID_LEN];
    if let Some(src) = packet.get(1..1 + ID_LEN) {
        id.copy_from_slice(src);
    }
    let id = MessageId(id);
    match command {
        CommandId::Conn | CommandId::Submit => {
            if body_len < ID_LEN {
                return Err(DecodeError::BodyTooShort {
                    command,
                    len: body_len,
                });
            }
            packet.advance(1 + ID_LEN);
            Ok(match command {
                CommandId::Conn => Packet::Conn {
                    id,
                    payload: packet,
                },
                _ => Packet::Submit {
                    id,
                    payload: packet,
                },
            })
        }
        CommandId::ConnAck | CommandId::SubmitAck => {
            if body_len != ID_LEN + 1 {
                return Err(DecodeError::AckBodyLength {
                    command,
                    len: body_len,
                });
            }
            let result = AckResult(packet.get(1 + ID_LEN).copied().unwrap_or_default());
            Ok(match command {
                CommandId::ConnAck => Packet::ConnAck { id, result },
                _ => Packet::SubmitAck { id, result },
            })
        }
    }
}

fn decode_ours(buf: &mut BytesMut) -> usize {
    let mut n = 0;
    while let Some(packet) = decode(buf, DEFAULT_MAX_FRAME_LEN).expect("valid frames") {
        black_box(packet);
        n += 1;
    }
    n
}

fn decode_tokio(codec: &mut LengthDelimitedCodec, buf: &mut BytesMut) -> usize {
    let mut n = 0;
    while let Some(frame) = codec.decode(buf).expect("valid frames") {
        let packet = parse_packet(frame.freeze()).expect("valid packets");
        black_box(packet);
        n += 1;
    }
    n
}

fn decode_tokio_then_ours(codec: &mut LengthDelimitedCodec, buf: &mut BytesMut) -> usize {
    let mut n = 0;
    while let Some(mut frame) = codec.decode(buf).expect("valid frames") {
        let packet = decode(&mut frame, DEFAULT_MAX_FRAME_LEN)
            .expect("valid packets")
            .expect("a whole frame");
        black_box(packet);
        n += 1;
    }
    n
}

/// Times `decode` over a fresh copy of `template` per iteration; the copy
/// goes into the same reused buffer and is not timed.
fn time_decode(
    template: &[u8],
    frames: usize,
    iters: u64,
    mut decode: impl FnMut(&mut BytesMut) -> usize,
) -> Duration {
    let mut buf = BytesMut::with_capacity(template.len());
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        buf.clear();
        buf.extend_from_slice(template);
        let start = Instant::now();
        let n = decode(black_box(&mut buf));
        total += start.elapsed();
        assert_eq!(n, frames);
    }
    total
}

fn decoders(c: &mut Criterion) {
    for (name, count, payload_len) in [("decode/32B", 1024, 32), ("decode/64KiB", 64, 64 * 1024)] {
        let template = submits(count, payload_len);
        // Every decoder must see the same packets in the template.
        let mut a = BytesMut::from(&template[..]);
        let mut b = a.clone();
        let mut w = a.clone();
        let mut codec = tokio_codec();
        let mut whole = tokio_codec_whole_frames();
        for _ in 0..count {
            let ours = decode(&mut a, DEFAULT_MAX_FRAME_LEN).unwrap().unwrap();
            let theirs = codec.decode(&mut b).unwrap().unwrap();
            assert_eq!(Ok(&ours), parse_packet(theirs.freeze()).as_ref());
            let mut frame = whole.decode(&mut w).unwrap().unwrap();
            let both = decode(&mut frame, DEFAULT_MAX_FRAME_LEN).unwrap().unwrap();
            assert_eq!(ours, both);
            assert!(frame.is_empty());
        }
        assert!(a.is_empty() && b.is_empty() && w.is_empty());

        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(count as u64));
        g.warm_up_time(Duration::from_millis(500));
        g.measurement_time(Duration::from_secs(3));
        g.sample_size(50);
        g.bench_function("protocol", |bench| {
            bench.iter_custom(|iters| time_decode(&template, count, iters, decode_ours));
        });
        g.bench_function("tokio-util", |bench| {
            bench.iter_custom(|iters| {
                let mut codec = tokio_codec();
                time_decode(&template, count, iters, |buf| decode_tokio(&mut codec, buf))
            });
        });
        g.bench_function("tokio-util+decode", |bench| {
            bench.iter_custom(|iters| {
                let mut codec = tokio_codec_whole_frames();
                time_decode(&template, count, iters, |buf| {
                    decode_tokio_then_ours(&mut codec, buf)
                })
            });
        });
        g.finish();
    }
}

fn encoders(c: &mut Criterion) {
    let id = MessageId::from_counter(1);

    let big = Bytes::from(vec![b'x'; 64 * 1024]);
    let mut g = c.benchmark_group("encode/64KiB");
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("protocol", |bench| {
        let mut out = BytesMut::with_capacity(2 * big.len());
        bench.iter(|| {
            out.clear();
            encode_request(
                RequestKind::Submit,
                &id,
                black_box(&big),
                DEFAULT_MAX_FRAME_LEN,
                &mut out,
            )
            .expect("the frame fits");
            black_box(&out);
        });
    });
    g.bench_function("memcpy", |bench| {
        let mut out = BytesMut::with_capacity(2 * big.len());
        bench.iter(|| {
            out.clear();
            out.extend_from_slice(black_box(&big));
            black_box(&out);
        });
    });
    g.finish();

    const COUNT: usize = 1024;
    let small = [b'x'; 32];
    let frames = submits(COUNT, small.len());
    let ids: Vec<MessageId> = (1..=COUNT as u32).map(MessageId::from_counter).collect();
    let mut g = c.benchmark_group("encode/32B");
    g.throughput(Throughput::Elements(COUNT as u64));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("protocol", |bench| {
        let mut out = BytesMut::with_capacity(2 * frames.len());
        bench.iter(|| {
            out.clear();
            for id in black_box(&ids[..]) {
                encode_request(
                    RequestKind::Submit,
                    id,
                    black_box(&small),
                    DEFAULT_MAX_FRAME_LEN,
                    &mut out,
                )
                .expect("the frame fits");
            }
            black_box(&out);
        });
    });
    g.bench_function("memcpy", |bench| {
        let mut out = BytesMut::with_capacity(2 * frames.len());
        bench.iter(|| {
            out.clear();
            for frame in black_box(&frames[..]).chunks_exact(frames.len() / COUNT) {
                out.extend_from_slice(frame);
            }
            black_box(&out);
        });
    });
    g.finish();
}

criterion_group!(benches, decoders, encoders);
criterion_main!(benches);
