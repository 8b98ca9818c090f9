//! The library's own promises, on both runtimes: concurrent submits over
//! one client connection, graceful shutdown that loses nothing, the
//! connection limit, Unix sockets, and the asynchronous-codec codec.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use adapter_async_std::runtime::{AsyncStd, Runtime, Smol};
use adapter_async_std::{AckAll, AsyncFn, Client, ClientError, PacketCodec, ServerOptions};
use adapter_common::Endpoint;
use asynchronous_codec::{Decoder, Encoder, FramedRead};
use bytes::{Bytes, BytesMut};
use common::{block_on_within, start_server, temp_socket_path};
use futures_lite::{AsyncWriteExt, StreamExt};
use protocol::{
    AckResult, ClientConfig, CloseReason, DecodeError, MessageId, Packet, Request, RequestKind,
    encode_request,
};

const LIMIT: Duration = Duration::from_secs(30);

fn localhost() -> Endpoint {
    Endpoint::Tcp("127.0.0.1:0".parse().unwrap())
}

/// A handler that refuses payloads starting with "no".
fn picky(req: &Request) -> AckResult {
    if req.payload.starts_with(b"no") {
        AckResult::ERROR
    } else {
        AckResult::OK
    }
}

fn concurrent_submits_from_many_tasks_each_get_their_own_ack<R: Runtime>(rt: R) {
    const TASKS: u64 = 40;
    const EACH: u64 = 100;
    let server = start_server(&rt, &localhost(), ServerOptions::default(), picky);
    let endpoint = server.endpoint.clone();
    let rt2 = rt.clone();
    let done = block_on_within(&rt, LIMIT, async move {
        let client = Client::connect(&rt2, &endpoint, ClientConfig::default())
            .await
            .expect("connect");
        let ok = Arc::new(AtomicU64::new(0));
        let (tx, rx) = async_channel::unbounded();
        for t in 0..TASKS {
            let client = client.clone();
            let ok = Arc::clone(&ok);
            let tx = tx.clone();
            rt2.spawn(async move {
                for i in 0..EACH {
                    // Every third request is refused: results must not be swapped.
                    let refuse = (t + i) % 3 == 0;
                    let payload = if refuse {
                        format!("no {t}/{i}")
                    } else {
                        format!("yes {t}/{i}")
                    };
                    let pending = client
                        .send(RequestKind::Submit, payload.as_bytes())
                        .await
                        .expect("queue");
                    let id = pending.id();
                    let ack = pending.await.expect("ack");
                    assert_eq!(ack.id, id, "ack for another request");
                    assert_eq!(ack.kind, RequestKind::Submit);
                    let want = if refuse {
                        AckResult::ERROR
                    } else {
                        AckResult::OK
                    };
                    assert_eq!(ack.result, want, "task {t} request {i}");
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                let _ = tx.send(()).await;
            });
        }
        drop(tx);
        while rx.recv().await.is_ok() {}
        client.close().await.expect("clean close");
        ok.load(Ordering::Relaxed)
    });
    assert_eq!(done, TASKS * EACH);
    let totals = server.totals.clone();
    server.stop().expect("server stops cleanly");
    assert_eq!(totals.requests.load(Ordering::Relaxed), TASKS * EACH);
    assert_eq!(totals.accepted.load(Ordering::Relaxed), 1);
}

#[test]
fn concurrent_submits_from_many_tasks_each_get_their_own_ack_async_std() {
    concurrent_submits_from_many_tasks_each_get_their_own_ack(AsyncStd);
}

#[test]
fn concurrent_submits_from_many_tasks_each_get_their_own_ack_smol() {
    concurrent_submits_from_many_tasks_each_get_their_own_ack(Smol::global());
}

/// Clients pipeline without pause while the server shuts down: every ack
/// the server queued reaches its client, in order, and the connections
/// close cleanly (not cut).
fn graceful_shutdown_loses_nothing<R: Runtime>(rt: R) {
    const CLIENTS: usize = 8;
    let opts = ServerOptions {
        shutdown_timeout: Duration::from_secs(10),
        ..ServerOptions::default()
    };
    let server = start_server(&rt, &localhost(), opts, AckAll);
    let addr = server.tcp_addr();
    let totals = server.totals.clone();
    let started = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let started = Arc::clone(&started);
            std::thread::spawn(move || pipeline_until_closed(addr, &started))
        })
        .collect();
    // Let every client get going, then shut down in the middle of the stream.
    let t0 = Instant::now();
    while started.load(Ordering::Relaxed) < CLIENTS as u64 && t0.elapsed() < LIMIT {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(150));
    server.stop().expect("server stops cleanly");
    let mut received = 0;
    for w in workers {
        let (acks, sent) = w.join().expect("client thread");
        assert!(acks > 0 && acks <= sent, "acks {acks} sent {sent}");
        received += acks;
    }
    assert_eq!(
        totals.acks.load(Ordering::Relaxed),
        received,
        "every ack the server queued must reach a client: {totals}"
    );
    let closes = totals.closes_by_reason();
    assert_eq!(
        closes.get("local_close").copied(),
        Some(CLIENTS as u64),
        "{totals}"
    );
}

/// Sends Submits in batches until the server closes; reads acks until EOF
/// and checks they come in order. Returns (acks read, requests sent).
fn pipeline_until_closed(addr: std::net::SocketAddr, started: &AtomicU64) -> (u64, u64) {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut reader = stream.try_clone().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
        let mut stream = stream;
        std::thread::spawn(move || {
            let mut n: u32 = 1;
            while !stop.load(Ordering::Relaxed) {
                let mut batch = BytesMut::new();
                for _ in 0..64 {
                    let id = MessageId::from_counter(n);
                    encode_request(
                        RequestKind::Submit,
                        &id,
                        b"payload",
                        &mut batch,
                        protocol::DEFAULT_MAX_FRAME_LEN,
                    )
                    .unwrap();
                    n += 1;
                }
                if stream.write_all(&batch).is_err() {
                    break;
                }
                sent.fetch_add(64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut acks: u64 = 0;
    let mut codec = PacketCodec::default();
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => panic!("client read failed after {acks} acks: {e}"),
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(p) = codec.decode(&mut buf).expect("valid acks") {
            acks += 1;
            if acks == 1 {
                started.fetch_add(1, Ordering::Relaxed);
            }
            let want = MessageId::from_counter(acks as u32);
            assert_eq!(
                p,
                Packet::SubmitAck {
                    id: want,
                    result: AckResult::OK
                }
            );
        }
    }
    assert!(buf.is_empty(), "a partial ack before EOF");
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
    (acks, sent.load(Ordering::Relaxed))
}

#[test]
fn graceful_shutdown_loses_nothing_async_std() {
    graceful_shutdown_loses_nothing(AsyncStd);
}

#[test]
fn graceful_shutdown_loses_nothing_smol() {
    graceful_shutdown_loses_nothing(Smol::global());
}

fn round_trip(stream: &mut TcpStream, n: u32) {
    let mut frame = BytesMut::new();
    let id = MessageId::from_counter(n);
    encode_request(RequestKind::Submit, &id, b"x", &mut frame, 1024).unwrap();
    stream.write_all(&frame).unwrap();
    let mut ack = [0u8; protocol::ACK_FRAME_LEN];
    stream.read_exact(&mut ack).unwrap();
    assert_eq!(
        ack,
        protocol::ack_frame(RequestKind::Submit, &id, AckResult::OK)
    );
}

fn max_connections_accepts_and_closes_the_extra_one<R: Runtime>(rt: R) {
    let opts = ServerOptions {
        max_connections: 2,
        ..ServerOptions::default()
    };
    let server = start_server(&rt, &localhost(), opts, AckAll);
    let addr = server.tcp_addr();
    let connect = || {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    };
    let mut a = connect();
    let mut b = connect();
    round_trip(&mut a, 1);
    round_trip(&mut b, 1);
    // The third is accepted and closed at once: EOF, no ack.
    let mut c = connect();
    let mut frame = BytesMut::new();
    encode_request(
        RequestKind::Submit,
        &MessageId::from_counter(1),
        b"x",
        &mut frame,
        1024,
    )
    .unwrap();
    let _ = c.write_all(&frame);
    let mut buf = [0u8; 16];
    match c.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("the connection over the limit got {n} bytes"),
        Err(e) => assert!(
            matches!(e.kind(), std::io::ErrorKind::ConnectionReset),
            "the connection over the limit: {e}"
        ),
    }
    assert_eq!(server.totals.refused.load(Ordering::Relaxed), 1);
    // The first two are still served; once one goes, a new one is served.
    round_trip(&mut a, 2);
    drop(b);
    let t0 = Instant::now();
    while server.totals.open_now() > 1 {
        assert!(
            t0.elapsed() < LIMIT,
            "the closed connection is still counted"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut d = connect();
    round_trip(&mut d, 1);
    server.stop().expect("server stops cleanly");
}

#[test]
fn max_connections_accepts_and_closes_the_extra_one_async_std() {
    max_connections_accepts_and_closes_the_extra_one(AsyncStd);
}

#[test]
fn max_connections_accepts_and_closes_the_extra_one_smol() {
    max_connections_accepts_and_closes_the_extra_one(Smol::global());
}

fn client_and_server_over_a_unix_socket<R: Runtime>(rt: R) {
    let path = temp_socket_path("unix");
    let server = start_server(
        &rt,
        &Endpoint::Unix(path.clone()),
        ServerOptions::default(),
        picky,
    );
    let endpoint = server.endpoint.clone();
    let rt2 = rt.clone();
    block_on_within(&rt, LIMIT, async move {
        let client = Client::connect(&rt2, &endpoint, ClientConfig::default())
            .await
            .expect("connect over unix");
        let conn = client.conn(b"token").await.expect("conn ack");
        assert_eq!((conn.kind, conn.result), (RequestKind::Conn, AckResult::OK));
        let yes = client.submit(b"yes").await.expect("ack");
        let no = client.submit(b"no").await.expect("ack");
        assert_eq!((yes.result, no.result), (AckResult::OK, AckResult::ERROR));
        client.close().await.expect("clean close");
        // A closed client refuses new requests with the reason.
        assert!(matches!(
            client.submit(b"late").await,
            Err(ClientError::Closed(CloseReason::LocalClose))
        ));
    });
    server.stop().expect("server stops cleanly");
    assert!(!path.exists(), "the socket file is removed at shutdown");
}

#[test]
fn client_and_server_over_a_unix_socket_async_std() {
    client_and_server_over_a_unix_socket(AsyncStd);
}

#[test]
fn client_and_server_over_a_unix_socket_smol() {
    client_and_server_over_a_unix_socket(Smol::global());
}

/// The client reports a server that goes away with requests in flight.
#[test]
fn client_reports_peer_closed_with_requests_in_flight() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = Endpoint::Tcp(listener.local_addr().unwrap());
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf);
        // Close without answering.
    });
    let rt = Smol::global();
    let rt2 = rt.clone();
    let err = block_on_within(&rt, LIMIT, async move {
        let client = Client::connect(&rt2, &endpoint, ClientConfig::default())
            .await
            .unwrap();
        client.submit(b"lost").await.unwrap_err()
    });
    peer.join().unwrap();
    assert!(
        matches!(
            err,
            ClientError::Closed(CloseReason::PeerClosedInFlight { in_flight: 1 })
        ),
        "{err}"
    );
}

#[test]
fn codec_round_trips_every_packet_and_splits_frames_anywhere() {
    let packets = [
        Packet::request(
            RequestKind::Conn,
            MessageId::from_counter(1),
            Bytes::from_static(b"token"),
        ),
        Packet::request(
            RequestKind::Submit,
            MessageId::from_counter(2),
            Bytes::from_static(b""),
        ),
        Packet::ack(RequestKind::Conn, MessageId::from_counter(1), AckResult::OK),
        Packet::ack(
            RequestKind::Submit,
            MessageId::from_counter(99_999_999),
            AckResult(7),
        ),
    ];
    let mut codec = PacketCodec::default();
    let mut wire = BytesMut::new();
    for p in &packets {
        codec.encode(p.clone(), &mut wire).unwrap();
    }
    // All at once.
    let mut all = wire.clone();
    for p in &packets {
        assert_eq!(codec.decode(&mut all).unwrap().as_ref(), Some(p));
    }
    assert_eq!(codec.decode(&mut all).unwrap(), None);
    // Byte by byte: "need more" is Ok(None), never an error.
    let mut got = Vec::new();
    let mut buf = BytesMut::new();
    for b in wire.iter() {
        buf.extend_from_slice(&[*b]);
        while let Some(p) = codec.decode(&mut buf).unwrap() {
            got.push(p);
        }
    }
    assert_eq!(got, packets);
    // A length over the limit is refused from the header alone.
    let mut small = PacketCodec::new(64);
    let mut huge = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
    assert!(matches!(
        small.decode(&mut huge),
        Err(adapter_async_std::CodecError::Decode(
            DecodeError::FrameTooLong { .. }
        ))
    ));
    // And encoding over the limit is refused.
    let big = Packet::request(
        RequestKind::Submit,
        MessageId::from_counter(1),
        Bytes::from(vec![0u8; 100]),
    );
    assert!(small.encode(big, &mut BytesMut::new()).is_err());
}

/// The codec drives a real conversation: requests encoded with it, acks
/// read through `FramedRead`.
fn codec_talks_to_the_server<R: Runtime>(rt: R) {
    let server = start_server(&rt, &localhost(), ServerOptions::default(), picky);
    let endpoint = server.endpoint.clone();
    let rt2 = rt.clone();
    block_on_within(&rt, LIMIT, async move {
        let mut stream = rt2.connect(&endpoint).await.unwrap();
        let mut codec = PacketCodec::default();
        let mut out = BytesMut::new();
        for (n, payload) in [(1, "yes"), (2, "no"), (3, "yes")] {
            let p = Packet::request(
                RequestKind::Submit,
                MessageId::from_counter(n),
                Bytes::from(payload),
            );
            codec.encode(p, &mut out).unwrap();
        }
        stream.write_all(&out).await.unwrap();
        let mut acks = FramedRead::new(stream, codec);
        for (n, result) in [
            (1, AckResult::OK),
            (2, AckResult::ERROR),
            (3, AckResult::OK),
        ] {
            let p = acks.next().await.expect("an ack").expect("a valid ack");
            assert_eq!(
                p,
                Packet::ack(RequestKind::Submit, MessageId::from_counter(n), result)
            );
        }
    });
    server.stop().expect("server stops cleanly");
}

#[test]
fn codec_talks_to_the_server_async_std() {
    codec_talks_to_the_server(AsyncStd);
}

#[test]
fn codec_talks_to_the_server_smol() {
    codec_talks_to_the_server(Smol::global());
}

/// `Reply::Later` answers finish in any order; acks still leave in
/// request order, and a slow answer does not hold back the ones after it.
fn async_handler_answers_later_and_acks_stay_in_request_order<R: Runtime>(rt: R) {
    let rt_h = rt.clone();
    let handler = AsyncFn(move |req: Request| {
        let rt = rt_h.clone();
        async move {
            // The payload says how long to think; earlier requests think longer.
            let ms: u64 = std::str::from_utf8(&req.payload)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            adapter_async_std::runtime::sleep_until(
                &rt,
                Instant::now() + Duration::from_millis(ms),
            )
            .await;
            if ms.is_multiple_of(2) {
                AckResult::OK
            } else {
                AckResult::ERROR
            }
        }
    });
    let server = start_server(&rt, &localhost(), ServerOptions::default(), handler);
    let endpoint = server.endpoint.clone();
    let rt2 = rt.clone();
    let took = block_on_within(&rt, LIMIT, async move {
        let t0 = Instant::now();
        let client = Client::connect(&rt2, &endpoint, ClientConfig::default())
            .await
            .expect("connect");
        let mut pending = Vec::new();
        for ms in (1..=40u64).rev() {
            let p = client
                .send(RequestKind::Submit, ms.to_string())
                .await
                .expect("send");
            pending.push((ms, p));
        }
        for (ms, p) in pending {
            let id = p.id();
            let ack = p.await.expect("ack");
            assert_eq!(ack.id, id);
            let want = if ms.is_multiple_of(2) {
                AckResult::OK
            } else {
                AckResult::ERROR
            };
            assert_eq!(ack.result, want, "request that thought {ms} ms");
        }
        client.close().await.expect("clean close");
        t0.elapsed()
    });
    // Concurrent answers: about the longest (40 ms), not the sum (820 ms).
    assert!(
        took < Duration::from_millis(600),
        "answers ran one by one: {took:?}"
    );
    server.stop().expect("server stops cleanly");
}

#[test]
fn async_handler_answers_later_and_acks_stay_in_request_order_async_std() {
    async_handler_answers_later_and_acks_stay_in_request_order(AsyncStd);
}

#[test]
fn async_handler_answers_later_and_acks_stay_in_request_order_smol() {
    async_handler_answers_later_and_acks_stay_in_request_order(Smol::global());
}
