//! The tokio server's own duties, beyond the behaviour suite (which runs
//! its socket behaviours on every adapter, see `tests/behaviour.rs`):
//! asynchronous answers (late ones in the middle of a shutdown, a slow one
//! ahead of fast ones, one that never comes and meets the shutdown
//! deadline), the totals and close-reason counters, and the lingering
//! close under a graceful shutdown with a slow reader still sending.
//! Clients here are raw sockets and the protocol codec, so they judge the
//! server independently of this crate's client.

use adapter_tokio::Served as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use adapter_common::ServerTotals;
use adapter_tokio::{
    AckAll, AsyncFn, Client, Handler, Server, ServerOptions, ShutdownHandle, Tokio,
};
use bytes::BytesMut;
use conformance::Endpoint;
use protocol::{
    AckResult, ClientConfig, DEFAULT_MAX_FRAME_LEN, MessageId, Packet, Request, RequestKind,
    decode, encode_request,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Every test body is bounded by this.
const LIMIT: Duration = Duration::from_secs(30);

fn tcp_any() -> Endpoint {
    Endpoint::Tcp("127.0.0.1:0".parse().expect("a socket address"))
}

struct Running {
    endpoint: Endpoint,
    shutdown: ShutdownHandle,
    totals: Arc<ServerTotals>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    fn start<H: Handler>(options: ServerOptions, handler: H) -> Self {
        let server = Server::bind(Tokio, &tcp_any(), options, handler).expect("bind 127.0.0.1:0");
        Self {
            endpoint: server.local_endpoint().clone(),
            shutdown: server.shutdown_handle(),
            totals: server.totals(),
            task: tokio::spawn(server.run()),
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        match &self.endpoint {
            Endpoint::Tcp(a) => *a,
            Endpoint::Unix(p) => panic!("expected a TCP server, got unix:{}", p.display()),
        }
    }

    async fn stop(self) -> Arc<ServerTotals> {
        self.shutdown.shutdown();
        match timeout(Duration::from_secs(15), self.task).await {
            Ok(Ok(Ok(()))) => self.totals,
            other => panic!("server did not stop cleanly: {other:?}"),
        }
    }
}

fn submit_bytes(counter: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    let id = MessageId::from_counter(counter);
    encode_request(
        RequestKind::Submit,
        &id,
        payload,
        DEFAULT_MAX_FRAME_LEN,
        &mut out,
    )
    .expect("a small frame");
    out.to_vec()
}

/// Reads acks until EOF (or a reset), checking that they answer the
/// Submits `first, first+1, ...` in order with result 0. Returns how many.
async fn read_ordered_acks(read: &mut (impl AsyncReadExt + Unpin), first: u32) -> u64 {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut next = first;
    let mut acks = 0;
    loop {
        match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        while let Some(packet) = decode(&mut buf, DEFAULT_MAX_FRAME_LEN).expect("valid frames") {
            match packet {
                Packet::SubmitAck { id, result } => {
                    assert_eq!(id, MessageId::from_counter(next), "acks out of order");
                    assert_eq!(result, AckResult::OK);
                    next += 1;
                    acks += 1;
                }
                other => panic!("expected a SubmitAck, got {other:?}"),
            }
        }
    }
    assert!(buf.is_empty(), "the server closed in the middle of an ack");
    acks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_under_load_answers_every_request_it_received() {
    timeout(LIMIT, async {
        // Half the answers come later, so shutdown finds work in progress.
        let handler = AsyncFn(|req: Request| async move {
            if req.payload.first() == Some(&b's') {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            AckResult::OK
        });
        let server = Running::start(ServerOptions::default(), handler);
        let addr = server.addr();
        let sent_total = Arc::new(AtomicU64::new(0));
        let clients: Vec<_> = (0..20)
            .map(|_| {
                let sent_total = Arc::clone(&sent_total);
                tokio::spawn(async move {
                    let stream = TcpStream::connect(addr).await.expect("connect");
                    let (mut read, mut write) = stream.into_split();
                    let writer = tokio::spawn(async move {
                        let mut n = 1u32;
                        loop {
                            let mut batch = Vec::new();
                            for i in 0..16 {
                                let payload: &[u8] = if i % 2 == 0 { b"slow" } else { b"fast" };
                                batch.extend(submit_bytes(n, payload));
                                n += 1;
                            }
                            if write.write_all(&batch).await.is_err() {
                                break;
                            }
                            sent_total.fetch_add(16, Ordering::Relaxed);
                            tokio::task::yield_now().await;
                        }
                    });
                    let acks = read_ordered_acks(&mut read, 1).await;
                    // EOF: the server is done with this connection; stop
                    // sending (the server lingers while a peer still sends).
                    writer.abort();
                    acks
                })
            })
            .collect();
        // Let the load build up, then shut down in the middle of it.
        while sent_total.load(Ordering::Relaxed) < 20_000 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let totals = server.stop().await;
        let mut acked = 0;
        for client in clients {
            acked += client.await.expect("client task");
        }
        let requests = totals.requests.load(Ordering::Relaxed);
        assert!(requests > 0);
        assert_eq!(
            totals.acks.load(Ordering::Relaxed),
            requests,
            "every request the server received was answered ({totals})"
        );
        assert_eq!(
            acked, requests,
            "the clients read every ack the server sent"
        );
        assert_eq!(totals.open_now(), 0);
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frame_closes_only_its_own_connection_after_the_earlier_acks() {
    timeout(LIMIT, async {
        let server = Running::start(ServerOptions::default(), AckAll);
        let bystander = Client::connect(&Tokio, &server.endpoint, ClientConfig::default())
            .await
            .expect("connect");
        assert!(
            bystander
                .submit("before")
                .await
                .expect("ack")
                .result
                .is_ok()
        );

        let mut bad = TcpStream::connect(server.addr()).await.expect("connect");
        let mut bytes = submit_bytes(1, b"fine");
        bytes.extend(submit_bytes(2, b"also fine"));
        // total_length 2: shorter than any frame can be.
        bytes.extend([0, 0, 0, 2, 0xde, 0xad, 0xbe, 0xef]);
        bad.write_all(&bytes).await.expect("write");
        assert_eq!(read_ordered_acks(&mut bad, 1).await, 2);

        assert!(bystander.submit("after").await.expect("ack").result.is_ok());
        bystander.close().await.expect("clean close");
        let totals = server.stop().await;
        let line = totals.to_string();
        assert!(line.contains("frame_too_short=1"), "{line}");
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_async_answer_does_not_hold_back_the_requests_after_it() {
    timeout(LIMIT, async {
        const FAST: usize = 20;
        let fast_done = Arc::new(AtomicUsize::new(0));
        let all_fast = Arc::new(Notify::new());
        let handler = {
            let (fast_done, all_fast) = (Arc::clone(&fast_done), Arc::clone(&all_fast));
            AsyncFn(move |req: Request| {
                let (fast_done, all_fast) = (Arc::clone(&fast_done), Arc::clone(&all_fast));
                async move {
                    if req.payload.as_ref() != b"slow" {
                        if fast_done.fetch_add(1, Ordering::SeqCst) + 1 == FAST {
                            all_fast.notify_one();
                        }
                        return AckResult::OK;
                    }
                    // Answers only once every later request was handled:
                    // a server that awaited answers one by one would time out.
                    match timeout(Duration::from_secs(5), all_fast.notified()).await {
                        Ok(()) => AckResult::OK,
                        Err(_) => AckResult::ERROR,
                    }
                }
            })
        };
        let server = Running::start(ServerOptions::default(), handler);
        let client = Client::connect(&Tokio, &server.endpoint, ClientConfig::default())
            .await
            .expect("connect");
        let mut pending = vec![
            client
                .send(RequestKind::Submit, "slow")
                .await
                .expect("queued"),
        ];
        for i in 0..FAST {
            pending.push(
                client
                    .send(RequestKind::Submit, format!("fast {i}"))
                    .await
                    .expect("queued"),
            );
        }
        let mut ids = Vec::new();
        for p in pending {
            let ack = p.await.expect("ack");
            assert_eq!(ack.result, AckResult::OK, "ack {}", ack.id);
            ids.push(ack.id);
        }
        let expected: Vec<_> = (1..=FAST as u32 + 1).map(MessageId::from_counter).collect();
        assert_eq!(ids, expected, "acks in request order");
        client.close().await.expect("clean close");
        server.stop().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_deadline_cuts_a_connection_whose_answer_never_comes() {
    timeout(LIMIT, async {
        let handler = AsyncFn(|_req: Request| async {
            std::future::pending::<()>().await;
            AckResult::OK
        });
        let mut options = ServerOptions::default();
        options.config.shutdown_timeout = Duration::from_millis(300);
        let server = Running::start(options, handler);
        let mut stuck = TcpStream::connect(server.addr()).await.expect("connect");
        stuck
            .write_all(&submit_bytes(1, b"never answered"))
            .await
            .expect("write");
        while server.totals.open_now() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Give the server time to read the request before shutting down.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        let totals = server.stop().await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(300),
            "cut before the deadline: {took:?}"
        );
        assert_eq!(read_ordered_acks(&mut stuck, 1).await, 0);
        assert_eq!(totals.open_now(), 0);
        let line = totals.to_string();
        assert!(line.contains("shutdown_deadline=1"), "{line}");
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_delivers_every_ack_to_a_slow_reader_that_keeps_sending() {
    timeout(LIMIT, async {
        let server = Running::start(ServerOptions::default(), AckAll);
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let stream = socket.connect(server.addr()).await.expect("connect");
        let (mut read, mut write) = stream.into_split();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut n = 1u32;
                while !stop.load(Ordering::Relaxed) {
                    let mut batch = Vec::new();
                    for _ in 0..100 {
                        batch.extend(submit_bytes(n, b""));
                        n += 1;
                    }
                    if write.write_all(&batch).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                // Dropping the write half sends FIN.
            })
        };
        // The client reads nothing for a while: the server's acks pile up
        // in its socket, unsent (the client's receive window is small).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let Running {
            shutdown,
            totals,
            task,
            ..
        } = server;
        shutdown.shutdown();
        // The server has answered what it received and closed its side,
        // while this client kept sending; only now does it read.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let acked = read_ordered_acks(&mut read, 1).await;
        stop.store(true, Ordering::Relaxed);
        writer.await.expect("writer");
        task.await.expect("server task").expect("server ran");
        let sent = totals.acks.load(Ordering::Relaxed);
        assert!(
            sent > 1000,
            "the test needs acks waiting in the socket: {totals}"
        );
        assert_eq!(
            acked, sent,
            "acks written by the server were lost ({totals})"
        );
    })
    .await
    .expect("bounded");
}
