//! Many busy connections at once: none is starved.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::lifecycle::spawn_load;
use crate::support::{PROMPT, Server, TestClient, join_all};
use crate::{Harness, ServerSpec};

/// Six clients flood the server with pipelined Submits (each reading its
/// acks as they come) for 2 s while a seventh does one round trip every
/// 20 ms: every flooding client keeps getting acks (no wait for bytes,
/// while acks are owed, longer than 1 s) and every one of its Submits is
/// answered in order; no round trip takes longer than 1 s either. A
/// connection that always has input must not keep the others (or its own
/// timers) waiting.
///
/// The bound is half the flood: a server whose busy connection does not
/// yield keeps the others on its thread waiting for the whole flood (with
/// adapter-common's read budget lifted, this fails at about 2 s), while a
/// fair one on 2 cores shared with 13 client threads, in an unoptimised
/// build, was measured at up to 0.6 s.
pub fn flooding_clients_starve_no_connection(h: &dyn Harness) {
    const FLOODERS: usize = 6;
    const LOAD: Duration = Duration::from_millis(2000);
    const MAX_GAP: Duration = Duration::from_millis(1000);
    let server = Server::start(h, ServerSpec::default());
    let threads: Vec<_> = (0..FLOODERS)
        .map(|i| {
            let mut reader = TestClient::connect(server.endpoint(), format!("flooding client {i}"));
            let writer = match reader.stream().try_clone() {
                Ok(s) => s,
                Err(e) => panic!("cannot clone client {i}'s socket: {e}"),
            };
            thread::spawn(move || {
                reader.round_trip(b"before the flood");
                let stop = Arc::new(AtomicBool::new(false));
                let sent = Arc::new(AtomicU64::new(0));
                let load = spawn_load(writer, 2, 200, LOAD, &stop, &sent);
                let (n, gap) = reader.read_ack_run_while_loaded(
                    2,
                    || sent.load(Ordering::SeqCst),
                    || load.is_finished(),
                    PROMPT,
                );
                match load.join() {
                    Ok(true) => {}
                    Ok(false) => panic!("{}: the server closed the connection", reader.name()),
                    Err(p) => std::panic::resume_unwind(p),
                }
                assert!(
                    gap <= MAX_GAP,
                    "{}: waited {gap:?} for acks it was owed ({n} acks in all): the server \
                     starved this connection",
                    reader.name()
                );
                (n, gap)
            })
        })
        .collect();

    let mut probe = TestClient::connect(server.endpoint(), "client doing round trips");
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut trips = 0;
    while started.elapsed() < LOAD {
        slowest = slowest.max(probe.round_trip(b"am I starved?"));
        trips += 1;
        thread::sleep(Duration::from_millis(20));
    }
    let results = join_all("flooding clients", threads);
    eprintln!(
        "{}: flood (acks, longest wait) per client: {results:?}; {trips} round trips beside, \
         slowest {slowest:?}",
        h.name()
    );
    assert!(
        slowest <= MAX_GAP,
        "{}: a round trip beside the flood took {slowest:?}",
        h.name()
    );
    server.shutdown();
}
