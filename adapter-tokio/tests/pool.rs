//! The tokio `Pool` against real servers: requests spread over both, a
//! server that goes away leaves the other serving, its requests in flight
//! fail saying so (never resent), and it is connected again when it is back.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use adapter_tokio::{
    AckAll, ClientError, Endpoint, Pool, PoolOptions, Served as _, Server, ServerOptions, Tokio,
};
use protocol::{BackoffConfig, CloseReason};
use tokio::io::AsyncReadExt;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(30);

fn options() -> PoolOptions {
    PoolOptions {
        backoff: BackoffConfig {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
            max_attempts: None,
        },
        ..PoolOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_spread_over_both_servers_and_go_on_when_one_stops_and_come_back_when_it_returns()
{
    timeout(LIMIT, async {
        let start = |at: &Endpoint| {
            let server = Server::bind(Tokio, at, ServerOptions::default(), AckAll).expect("bind");
            let endpoint = server.local_endpoint().clone();
            let (stop, totals) = (server.shutdown_handle(), server.totals());
            (endpoint, stop, totals, tokio::spawn(server.run()))
        };
        let any = Endpoint::Tcp("127.0.0.1:0".parse().expect("addr"));
        let (a, stop_a, totals_a, run_a) = start(&any);
        let (b, _stop_b, totals_b, _run_b) = start(&any);
        let pool = Pool::connect(&Tokio, vec![a.clone(), b.clone()], options())
            .await
            .expect("connect");
        assert_eq!(pool.up(), 2);
        // Pipelined from many tasks, so in-flight counts differ.
        let burst = |pool: Arc<Pool>, n: usize| async move {
            let mut acks = Vec::new();
            for i in 0..n {
                acks.push(
                    pool.send(protocol::RequestKind::Submit, format!("{i}"))
                        .await
                        .expect("sent"),
                );
            }
            for a in acks {
                assert!(a.await.expect("acked").result.is_ok());
            }
        };
        burst(Arc::clone(&pool), 400).await;

        stop_a.shutdown();
        run_a.await.expect("task").expect("server a ran");
        // Closed, a has counted its connection: the pool spread onto it.
        assert!(
            totals_a.acks.load(Ordering::Relaxed) > 0,
            "server a got requests"
        );
        // A is gone: every request goes to B and gets its ack.
        for i in 0..100 {
            let ack = pool.submit(format!("after {i}")).await.expect("acked by b");
            assert!(ack.result.is_ok());
        }
        let (lost, _) = pool.lost_and_reconnected();
        assert_eq!(lost, 1, "the connection to a was lost once");
        // A comes back on its port: the pool connects to it again.
        let (_a2, _stop_a2, totals_a2, _run_a2) = start(&a);
        let mut n = 0;
        while pool.lost_and_reconnected().1 == 0 {
            pool.submit("probe").await.expect("acked");
            tokio::time::sleep(Duration::from_millis(5)).await;
            n += 1;
            assert!(n < 2000, "never reconnected");
        }
        assert_eq!(pool.up(), 2);
        burst(Arc::clone(&pool), 200).await;
        pool.close().await.expect("clean close");
        // Closed: the new a's counters are folded in.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            totals_b.requests.load(Ordering::Relaxed) >= 100,
            "b served while a was gone"
        );
        assert!(
            totals_a2.requests.load(Ordering::Relaxed) > 0,
            "the returned server serves again"
        );
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn requests_in_flight_on_a_lost_connection_fail_saying_so_and_are_not_resent() {
    timeout(LIMIT, async {
        // A server that reads requests and closes without answering.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let at = Endpoint::Tcp(listener.local_addr().expect("addr"));
        let accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                seen.fetch_add(1, Ordering::Relaxed);
                let mut buf = [0u8; 64];
                // Two requests' worth, then gone.
                let mut got = 0;
                while got < 26 {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n,
                    }
                }
                drop(s);
            }
        });
        let pool = Pool::connect(&Tokio, vec![at], options())
            .await
            .expect("connect");
        let first = pool
            .send(protocol::RequestKind::Submit, "one")
            .await
            .expect("sent");
        let second = pool
            .send(protocol::RequestKind::Submit, "two")
            .await
            .expect("sent");
        for p in [first, second] {
            match p.await {
                Err(ClientError::Closed(CloseReason::PeerClosedInFlight { in_flight })) => {
                    assert_eq!(in_flight, 2);
                }
                other => panic!("expected the in-flight failure, got {other:?}"),
            }
        }
        // The next request goes out on a new connection: reconnected, and
        // the server saw two connections, not a resend on the first.
        let third = pool
            .send(protocol::RequestKind::Submit, "three")
            .await
            .expect("sent");
        drop(third);
        let mut waited = 0;
        while accepted.load(Ordering::Relaxed) < 2 && waited < 1000 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            waited += 1;
        }
        assert_eq!(accepted.load(Ordering::Relaxed), 2);
        assert_eq!(pool.lost_and_reconnected(), (1, 1));
    })
    .await
    .expect("bounded");
}
