//! The supervisor: admission up to the limit, shutdown fan-out with one
//! deadline, drain, and the totals of ends, panics included.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adapter_common::{Control, Endpoint, Meter, Supervisor, block_on};
use protocol::{CloseReason, ConnectionStats, ServerConfig};

/// Records what the supervisor told a connection.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Control for Seen {
    fn close(&self, deadline: Instant) {
        self.0.lock().unwrap().push(format!("close {deadline:?}"));
    }
    fn cut(&self) {
        self.0.lock().unwrap().push("cut".to_owned());
    }
}

fn supervisor(max: usize, shutdown: Duration) -> Arc<Supervisor<Seen>> {
    let config = ServerConfig {
        max_connections: max,
        shutdown_timeout: shutdown,
        ..ServerConfig::default()
    };
    Supervisor::new("127.0.0.1:1".parse::<Endpoint>().unwrap(), &config)
}

fn nap(d: Duration) -> std::future::Ready<()> {
    std::thread::sleep(d);
    std::future::ready(())
}

#[test]
fn admits_up_to_max_connections_and_refuses_the_next_until_a_slot_frees() {
    let sup = supervisor(2, Duration::from_secs(1));
    let a = sup
        .admit("a".into(), Seen::default())
        .expect("first admitted");
    let _b = sup
        .admit("b".into(), Seen::default())
        .expect("second admitted");
    assert!(
        sup.admit("c".into(), Seen::default()).is_none(),
        "third refused"
    );
    assert_eq!(sup.open(), 2);
    a.finish(
        &ConnectionStats::default(),
        &CloseReason::PeerClosed,
        None,
        Meter::off(),
    );
    assert_eq!(sup.open(), 1);
    let _c = sup
        .admit("c".into(), Seen::default())
        .expect("admitted once a slot freed");
    let line = sup.totals().to_string();
    assert!(line.contains("accepted=3 refused=1 open=2"), "{line}");
    assert!(line.contains("peer_closed=1"), "{line}");
}

#[test]
fn shutdown_tells_every_connection_the_same_deadline_once_and_late_arrivals_too() {
    let sup = supervisor(10, Duration::from_secs(5));
    let (x, y, late) = (Seen::default(), Seen::default(), Seen::default());
    let _a = sup.admit("x".into(), x.clone()).unwrap();
    let _b = sup.admit("y".into(), y.clone()).unwrap();
    let before = Instant::now();
    let deadline = sup.begin_shutdown();
    assert!(deadline >= before + Duration::from_secs(5));
    assert_eq!(
        sup.begin_shutdown(),
        deadline,
        "a second call keeps the first deadline"
    );
    let _c = sup.admit("late".into(), late.clone()).unwrap();
    let want = vec![format!("close {deadline:?}")];
    assert_eq!(*x.0.lock().unwrap(), want);
    assert_eq!(*y.0.lock().unwrap(), want);
    assert_eq!(*late.0.lock().unwrap(), want);
    assert_eq!(sup.deadline(), Some(deadline));
}

#[test]
fn drain_returns_once_the_last_connection_ended() {
    let sup = supervisor(10, Duration::from_secs(5));
    let a = sup.admit("a".into(), Seen::default()).unwrap();
    let ender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        a.finish(
            &ConnectionStats::default(),
            &CloseReason::LocalClose,
            None,
            Meter::off(),
        );
    });
    let started = Instant::now();
    block_on(sup.drain(nap));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(50) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(sup.open(), 0);
    ender.join().unwrap();
}

#[test]
fn drain_cuts_what_is_left_after_the_deadline_and_its_grace() {
    let sup = supervisor(10, Duration::from_millis(20));
    let stuck = Seen::default();
    let _a = sup.admit("stuck".into(), stuck.clone()).unwrap();
    let started = Instant::now();
    block_on(sup.drain(nap));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(20) + adapter_common::supervisor::CUT_GRACE,
        "{took:?}"
    );
    assert_eq!(
        stuck.0.lock().unwrap().last().map(String::as_str),
        Some("cut")
    );
}

#[test]
fn a_connection_whose_task_panics_frees_its_slot_and_is_counted_as_panic() {
    let sup = supervisor(1, Duration::from_secs(1));
    let admitted = sup.admit("p".into(), Seen::default()).unwrap();
    let r = std::thread::spawn(move || {
        let _held = admitted;
        panic!("handler bug (the test expects this)");
    })
    .join();
    assert!(r.is_err());
    assert_eq!(sup.open(), 0);
    assert!(
        sup.admit("next".into(), Seen::default()).is_some(),
        "the slot is free again"
    );
    let line = sup.totals().to_string();
    assert!(line.contains("panic=1"), "{line}");
}
