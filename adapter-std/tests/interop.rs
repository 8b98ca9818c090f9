//! The std adapter talks to the tokio adapter both ways: the std client
//! against the tokio server, the tokio client against the std server.

use adapter_std::Served as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use adapter_std::{Client, ClientOptions, Server, ServerOptions};
use conformance::Endpoint;
use harness::TempSocket;
use protocol::{AckResult, ClientConfig, MessageId, Request, RequestKind, ServerConfig};

fn localhost() -> Endpoint {
    Endpoint::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
}

/// The endpoint of a fresh Unix socket path (the server removes its file;
/// the guard, if the test fails first).
fn unix(socket: &TempSocket) -> Endpoint {
    Endpoint::Unix(socket.path().to_owned())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Refuses the payload "no", acks everything else.
fn picky(req: &Request) -> AckResult {
    if &req.payload[..] == b"no" {
        AckResult::ERROR
    } else {
        AckResult::OK
    }
}

fn bounded() -> ClientConfig {
    ClientConfig {
        response_timeout: Some(Duration::from_secs(10)),
        ..ClientConfig::default()
    }
}

/// The std client's whole surface against a tokio server at `endpoint`.
fn std_client_against_tokio_server_at(endpoint: Endpoint, require_conn: bool) {
    let rt = runtime();
    let options = ServerOptions {
        config: ServerConfig {
            require_conn,
            ..ServerConfig::default()
        },
        ..ServerOptions::default()
    };
    let server = rt.block_on(async {
        adapter_tokio::Server::bind(adapter_tokio::Tokio, &endpoint, options, picky)
    });
    let server = server.unwrap();
    let endpoint = server.local_endpoint().clone();
    let stop = server.shutdown_handle();
    let totals = server.totals();
    let serving = rt.spawn(server.run());

    let options = ClientOptions {
        config: bounded(),
        ..ClientOptions::default()
    };
    let client = Arc::new(Client::connect(&endpoint, options).unwrap());
    if require_conn {
        assert_eq!(client.conn(b"token").unwrap().result, AckResult::OK);
    }
    assert_eq!(client.submit(b"yes").unwrap().result, AckResult::OK);
    assert_eq!(client.submit(b"no").unwrap().result, AckResult::ERROR);
    let acks = client
        .submit_all((0..1000u32).map(|i| i.to_be_bytes()))
        .unwrap();
    assert!(acks.iter().all(|a| a.result.is_ok()));
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let client = Arc::clone(&client);
            thread::spawn(move || {
                for i in 0..100 {
                    let ack = client.submit(format!("{t}-{i}").as_bytes()).unwrap();
                    assert_eq!(ack.result, AckResult::OK);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    Arc::try_unwrap(client).unwrap().close().unwrap();

    stop.shutdown();
    rt.block_on(serving).unwrap().unwrap();
    let expected = 2 + 1000 + 400 + u64::from(require_conn);
    assert_eq!(totals.requests.load(Ordering::Relaxed), expected);
}

#[test]
fn std_client_against_tokio_server_over_tcp() {
    std_client_against_tokio_server_at(localhost(), false);
}

#[test]
fn std_client_against_tokio_server_over_unix_with_conn_first() {
    let socket = TempSocket::new("adapter-std-interop");
    std_client_against_tokio_server_at(unix(&socket), true);
}

fn tokio_client_against_std_server_at(endpoint: Endpoint, require_conn: bool) {
    let options = ServerOptions {
        config: ServerConfig {
            require_conn,
            ..ServerConfig::default()
        },
        ..ServerOptions::default()
    };
    let server = Server::bind(&endpoint, options, picky)
        .unwrap()
        .spawn()
        .unwrap();
    let endpoint = server.local_endpoint().clone();
    let rt = runtime();
    rt.block_on(async {
        let client = adapter_common::Client::connect(&adapter_tokio::Tokio, &endpoint, bounded())
            .await
            .unwrap();
        let mut first = 1;
        if require_conn {
            let ack = client.conn("token").await.unwrap();
            assert_eq!((ack.kind, ack.result), (RequestKind::Conn, AckResult::OK));
            first = 2;
        }
        let ack = client.submit("yes").await.unwrap();
        assert_eq!(
            (ack.id, ack.result),
            (MessageId::from_counter(first), AckResult::OK)
        );
        assert_eq!(client.submit("no").await.unwrap().result, AckResult::ERROR);
        // Pipelined: queue 1000, then await them in order.
        let mut pending = Vec::new();
        for i in 0..1000u32 {
            pending.push(
                client
                    .send(RequestKind::Submit, i.to_be_bytes().to_vec())
                    .await
                    .unwrap(),
            );
        }
        for (n, p) in (first + 2..).zip(pending) {
            let ack = p.await.unwrap();
            assert_eq!(
                (ack.id, ack.result),
                (MessageId::from_counter(n), AckResult::OK)
            );
        }
        // Many tasks over the one connection.
        let tasks: Vec<_> = (0..4)
            .map(|t| {
                let client = client.clone();
                tokio::spawn(async move {
                    for i in 0..100 {
                        let ack = client.submit(format!("{t}-{i}")).await.unwrap();
                        assert_eq!(ack.result, AckResult::OK);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        client.close().await.unwrap();
    });
    let totals = server.totals().clone();
    server.shutdown().unwrap();
    let expected = 2 + 1000 + 400 + u64::from(require_conn);
    assert_eq!(totals.requests.load(Ordering::Relaxed), expected);
}

#[test]
fn tokio_client_against_std_server_over_tcp() {
    tokio_client_against_std_server_at(localhost(), false);
}

#[test]
fn tokio_client_against_std_server_over_unix_with_conn_first() {
    let socket = TempSocket::new("adapter-std-interop");
    tokio_client_against_std_server_at(unix(&socket), true);
}
