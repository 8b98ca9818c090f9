//! Interop both ways: this crate's client (on async-std and on smol)
//! against the tokio and std adapters' servers, and their clients against
//! this crate's server (on each runtime), over TCP and Unix sockets.

mod common;

use adapter_async_std::Served as _;
use std::time::Duration;

use adapter_async_std::runtime::BlockOn;
use adapter_async_std::{AsyncStd, Client, Endpoint, ServerOptions, Smol};
use adapter_tokio::Tokio;
use common::{block_on_within, start_server};
use harness::TempSocket;
use protocol::{AckResult, ClientConfig, Request, RequestKind};

const LIMIT: Duration = Duration::from_secs(30);
const REQUESTS: usize = 300;

/// Every adapter's server runs this handler: "no..." payloads are refused.
fn picky(req: &Request) -> AckResult {
    if req.payload.starts_with(b"no") {
        AckResult::ERROR
    } else {
        AckResult::OK
    }
}

fn payload(i: usize) -> String {
    if i % 7 == 3 {
        format!("no {i}")
    } else {
        format!("yes {i}")
    }
}

fn expected(i: usize) -> AckResult {
    if i % 7 == 3 {
        AckResult::ERROR
    } else {
        AckResult::OK
    }
}

/// A TCP endpoint and a Unix one, each with the guard of its fresh socket
/// path (none for TCP): the servers remove their socket files, the guards
/// whatever a failing test leaves.
fn endpoints(tag: &str) -> [(Endpoint, Option<TempSocket>); 2] {
    [
        (Endpoint::Tcp("127.0.0.1:0".parse().unwrap()), None),
        fresh_unix(tag),
    ]
}

fn fresh_unix(tag: &str) -> (Endpoint, Option<TempSocket>) {
    let socket = TempSocket::new(&format!("aas-{tag}"));
    (Endpoint::Unix(socket.path().to_owned()), Some(socket))
}

/// This crate's client, on `rt`, against a server of another adapter:
/// a Conn, then pipelined Submits, then a clean close.
fn our_client_talks_to<R: BlockOn>(rt: R, endpoint: Endpoint) {
    let rt2 = rt.clone();
    block_on_within(&rt, LIMIT, async move {
        let client = Client::connect(&rt2, &endpoint, ClientConfig::default())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", rt2.name()));
        let conn = client.conn("interop").await.expect("ConnAck");
        assert_eq!((conn.kind, conn.result), (RequestKind::Conn, AckResult::OK));
        let mut pending = Vec::new();
        for i in 0..REQUESTS {
            pending.push(
                client
                    .send(RequestKind::Submit, payload(i))
                    .await
                    .expect("send"),
            );
        }
        for (i, p) in pending.into_iter().enumerate() {
            let id = p.id();
            let ack = p.await.expect("SubmitAck");
            assert_eq!((ack.id, ack.result), (id, expected(i)), "request {i}");
        }
        client.close().await.expect("clean close");
    });
}

#[test]
fn async_std_and_smol_clients_against_the_tokio_server() {
    let tokio_rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    for (endpoint, _socket) in endpoints("tokio-srv") {
        let server = {
            // The listener is registered with this runtime's reactor.
            let _inside = tokio_rt.enter();
            adapter_tokio::Server::bind(Tokio, &endpoint, ServerOptions::default(), picky)
                .expect("tokio server binds")
        };
        let at = server.local_endpoint().clone();
        let stop = server.shutdown_handle();
        let serving = tokio_rt.spawn(server.run());
        our_client_talks_to(AsyncStd, at.clone());
        our_client_talks_to(Smol::global(), at);
        stop.shutdown();
        tokio_rt
            .block_on(async { tokio::time::timeout(LIMIT, serving).await })
            .expect("tokio server stops in time")
            .expect("tokio server task")
            .expect("tokio server stops cleanly");
    }
}

#[test]
fn async_std_and_smol_clients_against_the_std_server() {
    for (endpoint, _socket) in endpoints("std-srv") {
        let server = adapter_std::Server::bind(&endpoint, ServerOptions::default(), picky)
            .expect("std server binds")
            .spawn()
            .expect("std server runs");
        let at = server.local_endpoint().clone();
        our_client_talks_to(AsyncStd, at.clone());
        our_client_talks_to(Smol::global(), at);
        server.shutdown().expect("std server stops cleanly");
    }
}

#[test]
fn tokio_client_against_async_std_and_smol_servers() {
    let tokio_rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    for (endpoint, _) in endpoints("tokio-cli") {
        let (async_std_at, _async_std_socket) = endpoint_fresh(&endpoint);
        let (smol_at, _smol_socket) = endpoint_fresh(&endpoint);
        let servers = [
            start_server(&AsyncStd, &async_std_at, ServerOptions::default(), picky),
            start_server(&Smol::global(), &smol_at, ServerOptions::default(), picky),
        ];
        for server in servers {
            let at = server.endpoint.clone();
            tokio_rt.block_on(async {
                tokio::time::timeout(LIMIT, async {
                    let client =
                        adapter_tokio::Client::connect(&Tokio, &at, ClientConfig::default())
                            .await
                            .expect("tokio client connects");
                    let conn = client.conn("interop").await.expect("ConnAck");
                    assert_eq!(conn.result, AckResult::OK);
                    let mut pending = Vec::new();
                    for i in 0..REQUESTS {
                        pending.push(
                            client
                                .send(RequestKind::Submit, payload(i))
                                .await
                                .expect("send"),
                        );
                    }
                    for (i, p) in pending.into_iter().enumerate() {
                        let ack = p.await.expect("SubmitAck");
                        assert_eq!(ack.result, expected(i), "request {i}");
                    }
                    client.close().await.expect("clean close");
                })
                .await
                .expect("tokio client finishes in time");
            });
            server.stop().expect("server stops cleanly");
        }
    }
}

#[test]
fn std_client_against_async_std_and_smol_servers() {
    for (endpoint, _) in endpoints("std-cli") {
        let (async_std_at, _async_std_socket) = endpoint_fresh(&endpoint);
        let (smol_at, _smol_socket) = endpoint_fresh(&endpoint);
        let servers = [
            start_server(&AsyncStd, &async_std_at, ServerOptions::default(), picky),
            start_server(&Smol::global(), &smol_at, ServerOptions::default(), picky),
        ];
        for server in servers {
            let client = adapter_std::Client::connect(
                &server.endpoint,
                adapter_std::ClientOptions::default(),
            )
            .expect("std client connects");
            let conn = client.conn(b"interop").expect("ConnAck");
            assert_eq!(conn.result, AckResult::OK);
            let pending: Vec<_> = (0..REQUESTS)
                .map(|i| client.send(payload(i).as_bytes()).expect("send"))
                .collect();
            for (i, p) in pending.into_iter().enumerate() {
                let ack = p
                    .wait_timeout(LIMIT)
                    .expect("ack in time")
                    .expect("SubmitAck");
                assert_eq!(ack.result, expected(i), "request {i}");
            }
            client.close().expect("clean close");
            server.stop().expect("server stops cleanly");
        }
    }
}

/// A fresh endpoint of the same kind (a new Unix path per server, with
/// its guard).
fn endpoint_fresh(like: &Endpoint) -> (Endpoint, Option<TempSocket>) {
    match like {
        Endpoint::Tcp(a) => (Endpoint::Tcp(*a), None),
        Endpoint::Unix(_) => fresh_unix("interop"),
    }
}
