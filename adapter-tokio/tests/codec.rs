//! The tokio-util codec: packets round-trip through `Framed`, frames split
//! anywhere decode the same, and the core's limits and errors come through.

use std::time::Duration;

use adapter_tokio::{CodecError, PacketCodec};
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use protocol::{AckResult, DecodeError, MessageId, Packet};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_util::codec::{Decoder, Framed, FramedRead};

const LIMIT: Duration = Duration::from_secs(10);

fn submit(n: u32, payload: &'static [u8]) -> Packet {
    Packet::Submit {
        id: MessageId::from_counter(n),
        payload: Bytes::from_static(payload),
    }
}

#[tokio::test]
async fn packets_round_trip_through_framed_over_tcp() {
    timeout(LIMIT, async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        // A tiny server written with Framed: ack every Submit.
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let mut framed = Framed::new(stream, PacketCodec::default());
            while let Some(packet) = framed.next().await {
                match packet.expect("a valid packet") {
                    Packet::Submit { id, .. } => framed
                        .send(Packet::SubmitAck {
                            id,
                            result: AckResult::OK,
                        })
                        .await
                        .expect("send"),
                    other => panic!("unexpected {other:?}"),
                }
            }
        });
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut framed = Framed::new(stream, PacketCodec::default());
        let sent = [submit(1, b"one"), submit(2, b""), submit(3, &[0xde; 3000])];
        for p in &sent {
            framed.feed(p.clone()).await.expect("feed");
        }
        framed.flush().await.expect("flush");
        for p in &sent {
            let ack = framed.next().await.expect("an ack").expect("valid");
            assert_eq!(
                ack,
                Packet::SubmitAck {
                    id: p.id(),
                    result: AckResult::OK
                }
            );
        }
        drop(framed);
        server.await.expect("server task");
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn frames_written_byte_by_byte_decode_like_one_write() {
    timeout(LIMIT, async {
        let packets = vec![
            submit(1, b"split"),
            submit(2, b"anywhere"),
            Packet::ConnAck {
                id: MessageId::from_counter(3),
                result: AckResult(7),
            },
        ];
        let mut wire = bytes::BytesMut::new();
        for p in &packets {
            p.encode(&mut wire).expect("encode");
        }
        let (mut tx, rx) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            for b in wire.iter() {
                tx.write_all(&[*b]).await.expect("write");
                tx.flush().await.expect("flush");
                tokio::task::yield_now().await;
            }
        });
        let got: Vec<Packet> = FramedRead::new(rx, PacketCodec::default())
            .map(|r| r.expect("valid"))
            .collect()
            .await;
        writer.await.expect("writer");
        assert_eq!(got, packets);
    })
    .await
    .expect("bounded");
}

#[test]
fn an_oversized_length_is_refused_from_the_header_alone() {
    let mut codec = PacketCodec::new(64);
    let mut buf = bytes::BytesMut::from(&[0x00, 0x10, 0x00, 0x00][..]);
    match codec.decode(&mut buf) {
        Err(CodecError::Decode(DecodeError::FrameTooLong { len, max: 64 })) => {
            assert_eq!(len, 0x0010_0000)
        }
        other => panic!("expected FrameTooLong, got {other:?}"),
    }
    assert!(buf.capacity() < 1024, "nothing was reserved for the frame");
}

#[test]
fn a_stream_ending_inside_a_frame_is_reported_as_truncated() {
    let mut codec = PacketCodec::default();
    let mut whole = bytes::BytesMut::new();
    submit(1, b"cut short").encode(&mut whole).expect("encode");
    let mut buf = whole.split_to(10);
    match codec.decode_eof(&mut buf) {
        Err(CodecError::Truncated { buffered: 10 }) => {}
        other => panic!("expected Truncated, got {other:?}"),
    }
}

#[test]
fn the_encoder_refuses_a_frame_over_its_limit() {
    use tokio_util::codec::Encoder;
    let mut codec = PacketCodec::new(32);
    let mut out = bytes::BytesMut::new();
    let big = submit(1, &[0u8; 40]);
    assert!(matches!(
        codec.encode(big, &mut out),
        Err(CodecError::Encode(_))
    ));
    assert!(out.is_empty(), "nothing was written");
    codec
        .encode(submit(2, b"ok"), &mut out)
        .expect("a small one");
    assert_eq!(out.len(), big_len(b"ok"));
}

fn big_len(payload: &[u8]) -> usize {
    protocol::REQUEST_OVERHEAD + payload.len()
}
