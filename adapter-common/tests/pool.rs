//! The pool's rules (adapter-common's `PoolCore`), without sockets: whom
//! it connects, where requests go, when a lost server is tried again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adapter_common::{ClientError, Endpoint, Member, Next, PoolCore};
use protocol::{BackoffConfig, CloseReason};

/// A connection whose load and end the test sets.
#[derive(Debug, Clone, Default)]
struct Fake(Arc<Mutex<(usize, Option<ClientError>)>>);

impl Fake {
    fn load(&self, n: usize) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).0 = n;
    }
    fn end(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).1 =
            Some(ClientError::Closed(CloseReason::PeerClosedInFlight {
                in_flight: 2,
            }));
    }
}

impl Member for Fake {
    fn in_flight(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).0
    }
    fn ended(&self) -> Option<ClientError> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).1.clone()
    }
}

fn endpoints(n: u16) -> Vec<Endpoint> {
    (0..n)
        .map(|i| Endpoint::Tcp(([127, 0, 0, 1], 9000 + i).into()))
        .collect()
}

fn refused() -> ClientError {
    ClientError::Io(Arc::new(std::io::ErrorKind::ConnectionRefused.into()))
}

/// Connects every member (the caller does what `next` says).
fn connect_all(pool: &mut PoolCore<Fake>, now: Instant) -> Vec<Fake> {
    let mut fakes = Vec::new();
    while let Next::Connect(i, _) = pool.next(now, 0) {
        let f = Fake::default();
        pool.connected(i, f.clone());
        fakes.push(f);
    }
    fakes
}

#[test]
fn every_server_is_connected_first_then_requests_go_to_the_less_loaded_of_two() {
    let mut pool =
        PoolCore::new(endpoints(2), BackoffConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let now = Instant::now();
    let fakes = connect_all(&mut pool, now);
    assert_eq!((fakes.len(), pool.up()), (2, 2));
    fakes[0].load(10);
    fakes[1].load(3);
    for r in 0..50 {
        match pool.next(now, r) {
            Next::Use(i, _) => assert_eq!(i, 1, "random {r}: the less loaded"),
            other => panic!("random {r}: {other:?}"),
        }
    }
}

#[test]
fn a_lost_server_waits_its_backoff_while_the_others_serve_then_is_connected_again() {
    let mut pool =
        PoolCore::new(endpoints(3), BackoffConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let now = Instant::now();
    let fakes = connect_all(&mut pool, now);
    fakes[1].end();
    for r in 0..50 {
        match pool.next(now, r) {
            Next::Use(i, _) => assert_ne!(i, 1, "random {r}: not the lost one"),
            other => panic!("random {r}: {other:?}"),
        }
    }
    assert_eq!((pool.lost(), pool.up()), (1, 2));
    // The first wait is 50..=100 ms.
    match pool.next(now + Duration::from_millis(100), 0) {
        Next::Connect(1, e) => assert_eq!(e, endpoints(3)[1]),
        other => panic!("after the backoff: {other:?}"),
    }
    pool.connected(1, Fake::default());
    assert_eq!((pool.up(), pool.reconnected()), (3, 1));
}

#[test]
fn with_every_server_down_the_caller_waits_for_the_earliest_retry_and_backoff_grows() {
    let mut pool = PoolCore::<Fake>::new(endpoints(1), BackoffConfig::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut now = Instant::now();
    let mut waits = Vec::new();
    for _ in 0..4 {
        let Next::Connect(i, _) = pool.next(now, 0) else {
            panic!("expected an attempt");
        };
        pool.connect_failed(i, refused(), now, 0);
        match pool.next(now, 0) {
            Next::Wait(at) => {
                waits.push(at - now);
                now = at;
            }
            other => panic!("{other:?}"),
        }
    }
    // Equal jitter with random 0: half of 100, 200, 400, 800 ms.
    let ms = Duration::from_millis;
    assert_eq!(waits, [ms(50), ms(100), ms(200), ms(400)]);
}

#[test]
fn past_max_attempts_on_every_server_the_pool_is_unavailable_naming_the_last_error() {
    let backoff = BackoffConfig {
        max_attempts: Some(2),
        ..BackoffConfig::default()
    };
    let mut pool = PoolCore::<Fake>::new(endpoints(1), backoff).unwrap_or_else(|e| panic!("{e}"));
    let mut now = Instant::now();
    loop {
        match pool.next(now, 0) {
            Next::Connect(i, _) => pool.connect_failed(i, refused(), now, 0),
            Next::Wait(at) => now = at,
            Next::Unavailable(e) => {
                let text = e.to_string();
                assert!(
                    text.contains("127.0.0.1:9000") && text.contains("refused"),
                    "{text}"
                );
                break;
            }
            Next::Use(..) => panic!("nothing is up"),
        }
    }
    assert!(PoolCore::<Fake>::new(Vec::new(), BackoffConfig::default()).is_err());
}

#[test]
fn a_send_error_is_retried_elsewhere_only_when_its_connection_had_ended() {
    let closed = ClientError::Closed(CloseReason::PeerClosed);
    let live = Fake::default();
    // A live connection's error is the caller's: nothing says it did not leave.
    assert!(!PoolCore::unsent(&closed, &live));
    live.end();
    assert!(PoolCore::unsent(&closed, &live));
    assert!(PoolCore::unsent(&refused(), &live));
    // Not a transport error: never retried, even on an ended connection.
    let unavailable = ClientError::Unavailable {
        servers: 1,
        last: String::new(),
    };
    assert!(!PoolCore::unsent(&unavailable, &live));
}

#[test]
fn connect_done_reports_up_or_backs_off_and_hands_the_error_back() {
    let mut pool = PoolCore::<Fake>::new(endpoints(2), BackoffConfig::default()).expect("valid");
    let now = Instant::now();
    let Next::Connect(a, _) = pool.next(now, 0) else {
        panic!("a new member is connected first");
    };
    assert!(pool.connect_done(a, Ok(Fake::default()), now, 0).is_ok());
    let Next::Connect(b, _) = pool.next(now, 0) else {
        panic!("then the other");
    };
    assert!(pool.connect_done(b, Err(refused()), now, 0).is_err());
    assert_eq!(pool.up(), 1);
    // The refused one waits out its backoff: the request goes to the live one.
    assert!(matches!(pool.next(now, 0), Next::Use(i, _) if i == a));
    assert_eq!(pool.lost_and_reconnected(), (0, 0));
}
