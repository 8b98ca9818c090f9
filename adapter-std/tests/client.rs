//! The std client against the std server: single requests, pipelines,
//! many threads over one connection, how failures reach the callers, and
//! the `Pool` spreading over two servers and reconnecting.

use adapter_std::Served as _;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use adapter_common::AckAll;
use adapter_std::{
    Client, ClientError, ClientOptions, Handler, Server, ServerHandle, ServerOptions,
};
use conformance::Endpoint;
use harness::TempSocket;
use protocol::{
    AckResult, ClientConfig, CloseReason, MessageId, Request, RequestKind, ServerConfig,
};

fn localhost() -> Endpoint {
    Endpoint::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
}

fn serve(endpoint: &Endpoint, options: ServerOptions, handler: impl Handler) -> ServerHandle {
    Server::bind(endpoint, options, handler)
        .expect("bind")
        .spawn()
        .expect("spawn")
}

/// Options with a response timeout, so no test can hang on a lost ack.
fn bounded() -> ClientOptions {
    ClientOptions {
        config: ClientConfig {
            response_timeout: Some(Duration::from_secs(10)),
            ..ClientConfig::default()
        },
        connect_timeout: Some(Duration::from_secs(5)),
        ..ClientOptions::default()
    }
}

/// The connection ended with `err`, for a reason `why` accepts, within
/// `within` of `started`; later calls get the end too instead of hanging.
fn assert_ended(
    client: &Client,
    err: &ClientError,
    started: Instant,
    within: Duration,
    why: impl Fn(&CloseReason) -> bool,
) {
    assert!(matches!(err, ClientError::Closed(r) if why(r)), "{err}");
    assert!(started.elapsed() < within, "{:?}", started.elapsed());
    assert!(matches!(client.send(b"again"), Err(ClientError::Closed(_))));
}

fn id(n: u32) -> MessageId {
    MessageId::from_counter(n)
}

#[test]
fn submit_gets_each_ack_with_the_next_id() {
    let server = serve(&localhost(), ServerOptions::default(), AckAll);
    let client = Client::connect(server.local_endpoint(), bounded()).unwrap();
    for n in 1..=3 {
        let ack = client.submit(b"hello").unwrap();
        assert_eq!(
            (ack.kind, ack.id, ack.result),
            (RequestKind::Submit, id(n), AckResult::OK)
        );
    }
    client.close().unwrap();
    server.shutdown().unwrap();
}

#[test]
fn a_refused_submit_is_an_ack_with_result_1_and_the_connection_goes_on() {
    let server = serve(&localhost(), ServerOptions::default(), |req: &Request| {
        if &req.payload[..] == b"no" {
            AckResult::ERROR
        } else {
            AckResult::OK
        }
    });
    let client = Client::connect(server.local_endpoint(), bounded()).unwrap();
    assert_eq!(client.submit(b"no").unwrap().result, AckResult::ERROR);
    assert_eq!(client.submit(b"yes").unwrap().result, AckResult::OK);
    client.close().unwrap();
    server.shutdown().unwrap();
}

#[test]
fn pipelined_send_all_gets_every_ack_in_order_past_max_in_flight() {
    let server = serve(&localhost(), ServerOptions::default(), AckAll);
    let mut options = bounded();
    options.config.max_in_flight = 64;
    let client = Client::connect(server.local_endpoint(), options).unwrap();
    let payloads: Vec<Vec<u8>> = (0..10_000u32).map(|i| i.to_be_bytes().to_vec()).collect();
    let pending = client.send_all(&payloads).unwrap();
    assert_eq!(pending.len(), payloads.len());
    for (n, p) in (1..).zip(pending) {
        assert_eq!(p.id(), id(n));
        let ack = p.wait().unwrap();
        assert_eq!((ack.id, ack.result), (id(n), AckResult::OK));
    }
    assert_eq!(client.in_flight(), 0);
    client.close().unwrap();
    let totals = server.totals().clone();
    server.shutdown().unwrap();
    assert_eq!(totals.requests.load(Ordering::Relaxed), 10_000);
}

#[test]
fn many_threads_share_one_client_and_every_frame_arrives_whole() {
    const THREADS: usize = 8;
    const EACH: usize = 400;
    // The handler refuses any payload that is not exactly "t<thread>-<i>":
    // a frame torn or interleaved with another thread's would show.
    let server = serve(&localhost(), ServerOptions::default(), |req: &Request| {
        let ok = std::str::from_utf8(&req.payload)
            .ok()
            .and_then(|s| s.strip_prefix('t'))
            .and_then(|s| s.split_once('-'))
            .is_some_and(|(t, i)| t.parse::<usize>().is_ok() && i.parse::<usize>().is_ok());
        if ok { AckResult::OK } else { AckResult::ERROR }
    });
    let client = Arc::new(Client::connect(server.local_endpoint(), bounded()).unwrap());
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let client = Arc::clone(&client);
            thread::spawn(move || {
                let mut ids = Vec::new();
                for i in 0..EACH {
                    let payload = format!("t{t}-{i}");
                    let ack = if i % 2 == 0 {
                        client.submit(payload.as_bytes()).unwrap()
                    } else {
                        // Pipelined from several threads at once too.
                        let more = format!("t{t}-{i}{i}");
                        let acks = client.submit_all([payload, more]).unwrap();
                        assert!(acks[0].id < acks[1].id || acks[1].id.0 == *b"00000000");
                        ids.push(acks[1].id);
                        acks[0]
                    };
                    assert_eq!(ack.result, AckResult::OK, "thread {t} request {i}");
                    ids.push(ack.id);
                }
                ids
            })
        })
        .collect();
    let mut all: Vec<MessageId> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let n = all.len();
    assert_eq!(n, THREADS * (EACH + EACH / 2));
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "every request got its own id and its own ack");
    Arc::try_unwrap(client).unwrap().close().unwrap();
    let totals = server.totals().clone();
    server.shutdown().unwrap();
    assert_eq!(totals.requests.load(Ordering::Relaxed), n as u64);
}

#[test]
fn client_and_server_work_over_a_unix_socket_with_conn_first() {
    let socket = TempSocket::new("adapter-std-client");
    let endpoint = Endpoint::Unix(socket.path().to_owned());
    let options = ServerOptions {
        config: ServerConfig {
            require_conn: true,
            ..ServerConfig::default()
        },
        ..ServerOptions::default()
    };
    let server = serve(&endpoint, options, AckAll);
    let client = Client::connect(server.local_endpoint(), bounded()).unwrap();
    let conn = client.conn(b"token").unwrap();
    assert_eq!((conn.kind, conn.result), (RequestKind::Conn, AckResult::OK));
    assert_eq!(client.submit(b"x").unwrap().result, AckResult::OK);
    client.close().unwrap();
    server.shutdown().unwrap();
    assert!(
        !socket.path().exists(),
        "the server removes its socket file"
    );
}

#[test]
fn a_server_that_never_answers_fails_the_waiter_with_a_response_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut sink = [0u8; 1024];
        // Read (and ignore) until the client goes away.
        while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
    });
    let mut options = bounded();
    options.config.response_timeout = Some(Duration::from_millis(300));
    let client = Client::connect(&Endpoint::Tcp(addr), options).unwrap();
    let started = Instant::now();
    let err = client.submit(b"anyone?").unwrap_err();
    assert_ended(&client, &err, started, Duration::from_secs(3), |r| {
        matches!(r, CloseReason::ResponseTimeout { .. })
    });
    drop(client);
    silent.join().unwrap();
}

#[test]
fn a_server_that_reads_nothing_ends_a_blocked_send_with_the_cores_write_stall() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (done, over) = std::sync::mpsc::channel::<()>();
    let deaf = thread::spawn(move || {
        // Holds the connection open and reads nothing.
        let (s, _) = listener.accept().unwrap();
        let _ = over.recv_timeout(Duration::from_secs(10));
        drop(s);
    });
    let mut options = bounded();
    options.config.write_stall_timeout = Some(Duration::from_millis(300));
    let client = Client::connect(&Endpoint::Tcp(addr), options).unwrap();
    let started = Instant::now();
    let payload = vec![0u8; 1 << 20];
    // Each send returns once written; one finally blocks until the reader
    // thread's timer sees no write progress and shuts the socket down.
    let err = loop {
        if let Err(e) = client.send(&payload) {
            break e;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never blocked");
    };
    assert_ended(&client, &err, started, Duration::from_secs(4), |r| {
        matches!(r, CloseReason::WriteStall { .. })
    });
    done.send(()).unwrap();
    deaf.join().unwrap();
}

#[test]
fn a_server_closing_with_requests_in_flight_fails_every_waiter() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let closer = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf);
        // Closes without answering.
    });
    let client = Client::connect(&Endpoint::Tcp(addr), bounded()).unwrap();
    let pending = client.send_all([b"a", b"b", b"c"]).unwrap();
    for p in pending {
        let err = p.wait().unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::Closed(CloseReason::PeerClosedInFlight { .. }) | ClientError::Io(_)
            ),
            "{err}"
        );
    }
    closer.join().unwrap();
}

#[test]
fn close_waits_for_the_acks_in_flight() {
    let server = serve(&localhost(), ServerOptions::default(), |_: &Request| {
        thread::sleep(Duration::from_millis(1));
        AckResult::OK
    });
    let client = Client::connect(server.local_endpoint(), bounded()).unwrap();
    let pending = client
        .send_all((0..50).map(|i: u32| i.to_be_bytes()))
        .unwrap();
    client.close().unwrap();
    for p in pending {
        assert_eq!(p.wait().unwrap().result, AckResult::OK);
    }
    server.shutdown().unwrap();
}

#[test]
fn an_oversized_payload_is_refused_locally_and_the_connection_goes_on() {
    let server = serve(&localhost(), ServerOptions::default(), AckAll);
    let mut options = bounded();
    options.config.max_frame_len = 64;
    let client = Client::connect(server.local_endpoint(), options).unwrap();
    let err = client.submit(&[0u8; 100]).unwrap_err();
    assert!(matches!(err, ClientError::Submit(_)), "{err}");
    assert_eq!(client.submit(b"small").unwrap().result, AckResult::OK);
    client.close().unwrap();
    server.shutdown().unwrap();
}

#[test]
fn connecting_to_nothing_names_the_endpoint() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = Client::connect(&Endpoint::Tcp(addr), bounded()).unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

/// The blocking `Pool`: requests spread over both servers, a stopped server
/// leaves the other serving, and a server back on its port is connected again.
#[test]
fn requests_spread_over_both_servers_go_on_when_one_stops_and_come_back_when_it_returns() {
    let start = |at: &Endpoint| {
        let server = Server::bind(at, ServerOptions::default(), AckAll).expect("bind");
        let endpoint = server.local_endpoint().clone();
        let totals = server.totals();
        (endpoint, totals, server.spawn().expect("spawn"))
    };
    let any = Endpoint::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let (a, totals_a, server_a) = start(&any);
    let (b, totals_b, server_b) = start(&any);
    let backoff = adapter_std::BackoffConfig {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        max_attempts: None,
    };
    let pool = adapter_std::Pool::connect(vec![a.clone(), b], bounded(), backoff).expect("connect");
    assert_eq!(pool.up(), 2);
    let burst = |pool: &adapter_std::Pool, n: usize| {
        let pending: Vec<_> = (0..n)
            .map(|i| {
                pool.send_request(RequestKind::Submit, format!("{i}").as_bytes())
                    .expect("sent")
            })
            .collect();
        for p in pending {
            assert!(p.wait().expect("acked").result.is_ok());
        }
    };
    burst(&pool, 400);
    server_a.shutdown().expect("a stopped");
    assert!(totals_a.acks.load(Ordering::Relaxed) > 0, "a got requests");
    for i in 0..100 {
        let ack = pool
            .submit(format!("after {i}").as_bytes())
            .expect("acked by b");
        assert!(ack.result.is_ok());
    }
    assert_eq!(pool.lost_and_reconnected().0, 1);
    let (_, totals_a2, server_a2) = start(&a);
    let mut n = 0;
    while pool.lost_and_reconnected().1 == 0 {
        pool.submit(b"probe").expect("acked");
        std::thread::sleep(Duration::from_millis(5));
        n += 1;
        assert!(n < 2000, "never reconnected");
    }
    burst(&pool, 200);
    pool.close().expect("clean close");
    server_a2.shutdown().expect("a2 stopped");
    server_b.shutdown().expect("b stopped");
    assert!(
        totals_a2.requests.load(Ordering::Relaxed) > 0,
        "a serves again"
    );
    assert!(
        totals_b.requests.load(Ordering::Relaxed) >= 100,
        "b served alone"
    );
}
