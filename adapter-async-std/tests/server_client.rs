//! The seam under load on both runtimes: the one client, shared by tasks
//! on every worker thread, over this crate's TCP and Unix sockets; and the
//! asynchronous-codec codec over a futures-io stream. (What every adapter's
//! server must do is the behaviour suite's, tests/behaviour.rs.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use adapter_async_std::runtime::BlockOn;
use adapter_async_std::{
    AsyncStd, Client, ClientError, Endpoint, PacketCodec, ServerOptions, Smol,
};
use asynchronous_codec::{Encoder, FramedRead};
use bytes::{Bytes, BytesMut};
use common::{block_on_within, start_server};
use futures_lite::{AsyncWriteExt, StreamExt};
use protocol::{AckResult, ClientConfig, CloseReason, MessageId, Packet, Request, RequestKind};

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

fn concurrent_submits_from_many_tasks_each_get_their_own_ack<R: BlockOn>(rt: R) {
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
                    let payload = format!("{} {t}/{i}", if refuse { "no" } else { "yes" });
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

fn client_and_server_over_a_unix_socket<R: BlockOn>(rt: R) {
    let socket = harness::TempSocket::new("aas-unix");
    let path = socket.path();
    let server = start_server(
        &rt,
        &Endpoint::Unix(path.to_owned()),
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

/// The codec drives a real conversation over a futures-io stream:
/// requests encoded with it, acks read through `FramedRead`.
fn codec_talks_to_the_server<R: BlockOn>(rt: R) {
    let server = start_server(&rt, &localhost(), ServerOptions::default(), picky);
    let Endpoint::Tcp(addr) = server.endpoint else {
        panic!("a TCP server");
    };
    block_on_within(&rt, LIMIT, async move {
        let mut stream = async_io::Async::<std::net::TcpStream>::connect(addr)
            .await
            .unwrap();
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
