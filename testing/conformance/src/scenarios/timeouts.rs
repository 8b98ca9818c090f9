//! Socket behaviours 5, 6 and 8 of PROTOCOL.md and the slowloris defence:
//! the server's idle, frame and write-stall timers, each closing only the
//! connection it belongs to.

use std::io::{ErrorKind, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use protocol::RequestKind;

use crate::support::{PROMPT, Server, Stream, TestClient, is_reset, request_frame};
use crate::{Harness, ServerSpec};

/// Checks that a connection closed at `closed_at` lived at least `timeout`
/// since `since` (a time taken before the server could have started its timer).
fn assert_not_before(what: &str, since: Instant, closed_at: Instant, timeout: Duration) {
    let lived = closed_at.saturating_duration_since(since);
    assert!(
        lived >= timeout,
        "{what}: closed {lived:?} after its last activity, before the {timeout:?} timeout"
    );
}

/// A client doing round trips every `every` on its own thread until told
/// to stop; returns how many it did. Every one must be answered at once.
fn spawn_busy(client: TestClient, every: Duration) -> (Arc<AtomicBool>, thread::JoinHandle<u32>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let handle = thread::spawn(move || {
        let mut client = client;
        let mut n = 0;
        while !flag.load(Ordering::Relaxed) {
            client.round_trip(b"busy");
            n += 1;
            thread::sleep(every);
        }
        client.round_trip(b"still served");
        n + 1
    });
    (stop, handle)
}

fn stop_busy(stop: &AtomicBool, handle: thread::JoinHandle<u32>) -> u32 {
    stop.store(true, Ordering::Relaxed);
    match handle.join() {
        Ok(n) => n,
        Err(p) => panic!(
            "the busy client failed: {}",
            crate::support::panic_message(p.as_ref())
        ),
    }
}

/// Socket behaviour 5, a read deadline: with `idle_timeout` 300 ms, a connection that sends
/// nothing, and one that goes quiet after a request, are closed ~300 ms
/// after their last activity (not before); a client sending a request every
/// 50 ms for 1.2 s is never closed.
pub fn idle_timeout_closes_idle_connections_only(h: &dyn Harness) {
    const IDLE: Duration = Duration::from_millis(300);
    let mut spec = ServerSpec::default();
    spec.config.idle_timeout = Some(IDLE);
    let server = Server::start(h, spec);
    let ep = server.endpoint();

    let idle_since = Instant::now();
    let idle = TestClient::connect(ep, "idle client");
    let mut quiet = TestClient::connect(ep, "client quiet after one request");
    let quiet_since = Instant::now();
    quiet.round_trip(b"the only one");
    let watch = |mut c: TestClient| {
        thread::spawn(move || {
            c.expect_closed(IDLE + PROMPT);
            Instant::now()
        })
    };
    let idle_watch = watch(idle);
    let quiet_watch = watch(quiet);

    let mut active = TestClient::connect(ep, "active client");
    let active_since = Instant::now();
    while active_since.elapsed() < IDLE * 4 {
        active.round_trip(b"keep-alive");
        thread::sleep(IDLE / 6);
    }
    active.round_trip(b"still here after four idle timeouts");

    let join = |w: thread::JoinHandle<Instant>, what: &str| match w.join() {
        Ok(t) => t,
        Err(p) => panic!("{what}: {}", crate::support::panic_message(p.as_ref())),
    };
    assert_not_before(
        "idle client",
        idle_since,
        join(idle_watch, "idle client"),
        IDLE,
    );
    assert_not_before(
        "client quiet after one request",
        quiet_since,
        join(quiet_watch, "quiet client"),
        IDLE,
    );
    server.shutdown();
}

/// Socket behaviour 6, read timeouts on many connections at once: 50 silent connections are
/// all closed by the 300 ms idle timeout (none early) while a busy
/// connection keeps being served.
pub fn idle_timeouts_close_many_connections_while_a_busy_one_is_served(h: &dyn Harness) {
    const IDLE: Duration = Duration::from_millis(300);
    const SILENT: usize = 50;
    let mut spec = ServerSpec::default();
    spec.config.idle_timeout = Some(IDLE);
    let server = Server::start(h, spec);
    let ep = server.endpoint();

    let first = Instant::now();
    let mut silent: Vec<(TestClient, Instant)> = (0..SILENT)
        .map(|i| {
            let since = Instant::now();
            (TestClient::connect(ep, format!("silent client {i}")), since)
        })
        .collect();
    let busy = TestClient::connect(ep, "busy client");
    let (stop, busy) = spawn_busy(busy, Duration::from_millis(30));

    // None is closed early (checked only if this machine got here in time).
    thread::sleep(Duration::from_millis(150).saturating_sub(first.elapsed()));
    if first.elapsed() < IDLE - Duration::from_millis(50) {
        for (c, _) in &mut silent {
            c.expect_open_now();
        }
    }

    let deadline = first + IDLE + PROMPT + Duration::from_secs(1);
    for (c, since) in &mut silent {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10));
        c.expect_closed(left);
        assert_not_before(c.name(), *since, Instant::now(), IDLE);
    }
    let served = stop_busy(&stop, busy);
    assert!(
        served >= 3,
        "the busy client got only {served} round trips while the idle connections were closed"
    );
    server.shutdown();
}

/// Slowloris: with `frame_timeout` 300 ms, connections that start a frame
/// and stall (inside the header, inside the body) are closed, and so is one
/// trickling a byte every 100 ms (the timer runs from the frame's first
/// byte; bytes arriving do not reset it). Another client is served meanwhile.
pub fn slowloris_partial_frame_is_closed_by_frame_timeout(h: &dyn Harness) {
    const FRAME: Duration = Duration::from_millis(300);
    let mut spec = ServerSpec::default();
    spec.config.frame_timeout = Some(FRAME);
    let server = Server::start(h, spec);
    let ep = server.endpoint();
    let (stop, busy) = spawn_busy(
        TestClient::connect(ep, "client sending whole frames"),
        Duration::from_millis(50),
    );

    let mut in_header = TestClient::connect(ep, "client stalled inside a header");
    let (_, f) = in_header.submit_frame(b"never finished");
    let in_header_since = Instant::now();
    in_header.send(&f[..2]);

    let mut in_body = TestClient::connect(ep, "client stalled inside a body");
    let (_, f) = in_body.submit_frame(b"never finished either");
    let in_body_since = Instant::now();
    in_body.send(&f[..f.len() / 2]);

    let mut trickler = TestClient::connect(ep, "client trickling a byte per 100 ms");
    let (_, f) = trickler.submit_frame(b"helped-lester-8f15");
    let mut writer = match trickler.stream().try_clone() {
        Ok(s) => s,
        Err(e) => panic!("cannot clone the trickler's socket: {e}"),
    };
    let trickle_since = Instant::now();
    let trickle_stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&trickle_stop);
    let trickle = thread::spawn(move || {
        for b in f {
            if flag.load(Ordering::Relaxed) || writer.write_all(&[b]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });

    in_header.expect_closed(FRAME + PROMPT);
    assert_not_before(in_header.name(), in_header_since, Instant::now(), FRAME);
    in_body.expect_closed(FRAME + PROMPT);
    assert_not_before(in_body.name(), in_body_since, Instant::now(), FRAME);
    let trickled = trickler.wait_closed(FRAME + PROMPT);
    trickle_stop.store(true, Ordering::Relaxed);
    let _ = trickle.join();
    if let Err(e) = trickled {
        panic!(
            "a frame trickled one byte per 100 ms (31 bytes, 3.1 s) must be cut by the {FRAME:?} \
             frame timeout, which runs from the frame's first byte: {e}"
        );
    }
    assert_not_before(trickler.name(), trickle_since, Instant::now(), FRAME);
    stop_busy(&stop, busy);
    server.shutdown();
}

/// True once the server has reset the connection: SO_ERROR is set, or a
/// non-blocking write of more of `more` fails. Consumes what it writes.
pub(crate) fn probe_reset(stream: &mut Stream, more: &mut Vec<u8>) -> bool {
    if let Ok(Some(_)) = stream.take_error() {
        return true;
    }
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let r = stream.write(more);
    let _ = stream.set_nonblocking(false);
    match r {
        Ok(n) => {
            more.drain(..n);
            false
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => false,
        Err(e) => is_reset(&e) || e.kind() == ErrorKind::NotConnected,
    }
}

/// Socket behaviour 8, a write deadline that fires with part of the data written: with
/// `write_stall_timeout` 500 ms and a 16 KiB high-water mark, a client that
/// pipelines and never reads is closed once the server's writes have made
/// no progress for 500 ms; the acks it got before are a prefix of its
/// requests, in order; another client is served throughout.
pub fn write_stall_closes_a_client_that_never_reads(h: &dyn Harness) {
    const STALL: Duration = Duration::from_millis(500);
    let mut spec = ServerSpec::default();
    spec.config.write_stall_timeout = Some(STALL);
    spec.config.high_water = 16 * 1024;
    spec.config.low_water = 4 * 1024;
    let server = Server::start(h, spec);
    let (stop, other) = spawn_busy(
        TestClient::connect(server.endpoint(), "other client"),
        Duration::from_millis(30),
    );
    let mut sleeper =
        TestClient::connect_small_buffers(server.tcp_addr(), "client that never reads", 4096);
    let stalled = sleeper.pipeline_until_stalled(Duration::from_millis(300), 64 << 20);
    let stalled_at = Instant::now();

    let mut probe = match sleeper.stream().try_clone() {
        Ok(s) => s,
        Err(e) => panic!("cannot clone the socket: {e}"),
    };
    let mut more = stalled.unsent.clone();
    let limit = STALL + PROMPT;
    // The server may have cut the connection already while the pipeline
    // was being written (its writes stalled long before ours did).
    while !stalled.reset && !probe_reset(&mut probe, &mut more) {
        if more.is_empty() {
            more = request_frame(
                RequestKind::Submit,
                &protocol::MessageId::from_counter(99_999_999),
                b"",
            );
        }
        assert!(
            stalled_at.elapsed() < limit,
            "the server did not close a connection whose peer read nothing for {:?} \
             (write_stall_timeout {STALL:?}; {} bytes of Submits were sent)",
            stalled_at.elapsed(),
            stalled.written
        );
        thread::sleep(Duration::from_millis(20));
    }

    // What came before the cut is a prefix of the answers, in order.
    let (acks, _) =
        sleeper.read_ack_run_until_closed(stalled.first_counter(), stalled.frames, PROMPT);
    assert!(
        acks < stalled.frames,
        "the connection was cut, yet all {acks} Submits were answered"
    );
    let served = stop_busy(&stop, other);
    assert!(
        served >= 3,
        "the other client got only {served} round trips meanwhile"
    );
    server.shutdown();
}
