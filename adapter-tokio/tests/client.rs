//! The tokio client: one connection shared by many tasks, and what callers
//! see when the connection ends under them.

use adapter_tokio::Served as _;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use adapter_tokio::{Client, ClientError, Server, ServerOptions, Tokio};
use bytes::BytesMut;
use conformance::Endpoint;
use protocol::{
    AckResult, ClientConfig, CloseReason, DEFAULT_MAX_FRAME_LEN, MessageId, Request, RequestKind,
    decode, encode_ack,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(30);

fn tcp_any() -> Endpoint {
    Endpoint::Tcp("127.0.0.1:0".parse().expect("a socket address"))
}

/// A fake server: accepts one connection and hands it to `script`.
async fn fake_server<F, Fut>(script: F) -> Endpoint
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = Endpoint::Tcp(listener.local_addr().expect("local addr"));
    tokio::spawn(async move {
        if let Ok((stream, _)) = listener.accept().await {
            script(stream).await;
        }
    });
    endpoint
}

/// Reads until one whole request frame arrived; returns its id.
async fn read_one_request(stream: &mut TcpStream, buf: &mut BytesMut) -> Option<MessageId> {
    loop {
        if let Ok(Some(packet)) = decode(buf, DEFAULT_MAX_FRAME_LEN) {
            return Some(packet.id());
        }
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_tasks_submitting_concurrently_share_one_connection() {
    timeout(LIMIT, async {
        let handler = |req: &Request| {
            if req.payload.starts_with(b"refuse") {
                AckResult::ERROR
            } else {
                AckResult::OK
            }
        };
        let server =
            Server::bind(Tokio, &tcp_any(), ServerOptions::default(), handler).expect("bind");
        let endpoint = server.local_endpoint().clone();
        let (shutdown, totals) = (server.shutdown_handle(), server.totals());
        let serving = tokio::spawn(server.run());

        let client = Arc::new(
            Client::connect(&Tokio, &endpoint, ClientConfig::default())
                .await
                .expect("connect"),
        );
        let tasks: Vec<_> = (0..100)
            .map(|t| {
                let client = Arc::clone(&client);
                tokio::spawn(async move {
                    let mut ids = Vec::new();
                    for n in 0..50 {
                        let refuse = n % 10 == 9;
                        let payload = if refuse {
                            format!("refuse {t}/{n}")
                        } else {
                            format!("task {t} submit {n}")
                        };
                        let ack = client.submit(payload).await.expect("an ack");
                        let want = if refuse {
                            AckResult::ERROR
                        } else {
                            AckResult::OK
                        };
                        assert_eq!(ack.result, want, "task {t} submit {n}");
                        assert_eq!(ack.kind, RequestKind::Submit);
                        ids.push(ack.id);
                    }
                    ids
                })
            })
            .collect();
        let mut all = HashSet::new();
        for task in tasks {
            for id in task.await.expect("task") {
                assert!(all.insert(id), "id {id} acked twice");
            }
        }
        assert_eq!(all.len(), 100 * 50);
        client.close().await.expect("clean close");
        shutdown.shutdown();
        serving.await.expect("server task").expect("server ran");
        assert_eq!(totals.accepted.load(Ordering::Relaxed), 1, "one connection");
        assert_eq!(totals.acks.load(Ordering::Relaxed), 100 * 50);
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn close_waits_for_every_ack_queued_before_it() {
    timeout(LIMIT, async {
        let server = Server::bind(
            Tokio,
            &tcp_any(),
            ServerOptions::default(),
            adapter_tokio::AckAll,
        )
        .expect("bind");
        let endpoint = server.local_endpoint().clone();
        let shutdown = server.shutdown_handle();
        let serving = tokio::spawn(server.run());
        let client = Client::connect(&Tokio, &endpoint, ClientConfig::default())
            .await
            .expect("connect");
        let mut pending = Vec::new();
        for i in 0..10 {
            pending.push(
                client
                    .send(RequestKind::Submit, format!("m{i}"))
                    .await
                    .expect("queued"),
            );
        }
        client.close().await.expect("clean close");
        for (i, p) in pending.into_iter().enumerate() {
            let ack = p.await.expect("acked before the close");
            assert_eq!(ack.id, MessageId::from_counter(i as u32 + 1));
        }
        match client.submit("after close").await {
            Err(ClientError::Closed(CloseReason::LocalClose))
            | Err(ClientError::Submit(protocol::SubmitError::Closing)) => {}
            other => panic!("a submit after close: {other:?}"),
        }
        shutdown.shutdown();
        serving.await.expect("server task").expect("server ran");
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn server_closing_with_requests_in_flight_fails_every_waiter_with_the_reason() {
    timeout(LIMIT, async {
        let endpoint = fake_server(|mut s| async move {
            let mut buf = BytesMut::new();
            let _ = read_one_request(&mut s, &mut buf).await;
            // Closes without answering.
        })
        .await;
        let client = Client::connect(&Tokio, &endpoint, ClientConfig::default())
            .await
            .expect("connect");
        let a = client.send(RequestKind::Submit, "a").await.expect("queued");
        let b = client.send(RequestKind::Submit, "b").await.expect("queued");
        for p in [a, b] {
            match p.await {
                Err(ClientError::Closed(CloseReason::PeerClosedInFlight { in_flight: 2 })) => {}
                other => panic!("expected the server's close as the reason, got {other:?}"),
            }
        }
        assert!(client.ended().is_some());
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn an_ack_for_the_wrong_id_ends_the_connection_as_a_protocol_error() {
    timeout(LIMIT, async {
        let endpoint = fake_server(|mut s| async move {
            let mut buf = BytesMut::new();
            if read_one_request(&mut s, &mut buf).await.is_some() {
                let mut out = BytesMut::new();
                encode_ack(
                    RequestKind::Submit,
                    &MessageId::from_counter(42),
                    AckResult::OK,
                    &mut out,
                );
                let _ = s.write_all(&out).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        })
        .await;
        let client = Client::connect(&Tokio, &endpoint, ClientConfig::default())
            .await
            .expect("connect");
        match client.submit("x").await {
            Err(ClientError::Closed(CloseReason::AckMismatch { got, .. })) => {
                assert_eq!(got, MessageId::from_counter(42));
            }
            other => panic!("expected an ack mismatch, got {other:?}"),
        }
        assert!(client.submit("y").await.is_err(), "the connection is over");
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn a_server_that_never_answers_hits_the_response_timeout() {
    timeout(LIMIT, async {
        let endpoint = fake_server(|mut s| async move {
            let mut buf = BytesMut::new();
            let _ = read_one_request(&mut s, &mut buf).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        })
        .await;
        let config = ClientConfig {
            response_timeout: Some(Duration::from_millis(200)),
            ..ClientConfig::default()
        };
        let client = Client::connect(&Tokio, &endpoint, config)
            .await
            .expect("connect");
        match client.submit("anyone?").await {
            Err(ClientError::Closed(CloseReason::ResponseTimeout { id, .. })) => {
                assert_eq!(id, MessageId::from_counter(1));
            }
            other => panic!("expected a response timeout, got {other:?}"),
        }
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn connecting_to_nothing_says_where_and_why() {
    // Bind and drop to find a port nobody listens on.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("local addr")
    };
    match Client::connect(&Tokio, &Endpoint::Tcp(addr), ClientConfig::default()).await {
        Err(e @ ClientError::Connect { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&addr.to_string()), "{text}");
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_payload_over_the_frame_limit_is_refused_without_closing() {
    timeout(LIMIT, async {
        let server = Server::bind(
            Tokio,
            &tcp_any(),
            ServerOptions::default(),
            adapter_tokio::AckAll,
        )
        .expect("bind");
        let endpoint = server.local_endpoint().clone();
        let shutdown = server.shutdown_handle();
        let serving = tokio::spawn(server.run());
        let config = ClientConfig {
            max_frame_len: 64,
            ..ClientConfig::default()
        };
        let client = Client::connect(&Tokio, &endpoint, config)
            .await
            .expect("connect");
        match client.submit(vec![0u8; 100]).await {
            Err(ClientError::Submit(protocol::SubmitError::Encode(_))) => {}
            other => panic!("expected the frame limit to refuse, got {other:?}"),
        }
        assert!(client.submit("small").await.expect("ack").result.is_ok());
        client.close().await.expect("clean close");
        shutdown.shutdown();
        serving.await.expect("server task").expect("server ran");
    })
    .await
    .expect("bounded");
}
