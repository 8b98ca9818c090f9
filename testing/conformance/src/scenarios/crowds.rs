//! Hostile peers by the hundred: huge declared lengths, slowloris and
//! slow consumers at once, each while a normal client is served, with the
//! server's memory measured where it is the point.
//!
//! The memory figures are the test process' anonymous resident memory
//! ([`crate::process::resident_kib`]): the server runs in it. The
//! scenarios that measure it run alone in a child process (see
//! [`crate::process::run_alone`]), so no other test adds to it.

use std::io::{ErrorKind, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use protocol::{ACK_FRAME_LEN, AckResult, MessageId, RequestKind};

use super::timeouts::probe_reset;
use crate::process::{PeakSampler, open_files_limit, resident_kib};
use crate::support::{
    PROMPT, Server, TestClient, empty_submits, is_reset, panic_message, request_frame,
};
use crate::{Harness, ServerSpec};

/// A client doing a round trip every `every` on its own thread until
/// stopped, keeping every round-trip time: the "normal client" beside the
/// hostile ones.
struct Prober {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<Vec<Duration>>,
}

impl Prober {
    fn start(mut client: TestClient, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut trips = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                trips.push(client.round_trip(b"a normal client"));
                thread::sleep(every);
            }
            trips.push(client.round_trip(b"still served at the end"));
            trips
        });
        Self { stop, thread }
    }

    /// Stops it; returns (round trips, median, slowest).
    fn finish(self) -> (usize, Duration, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let mut trips = match self.thread.join() {
            Ok(t) => t,
            Err(p) => panic!("the normal client failed: {}", panic_message(p.as_ref())),
        };
        trips.sort();
        let median = trips.get(trips.len() / 2).copied().unwrap_or_default();
        let slowest = trips.last().copied().unwrap_or_default();
        (trips.len(), median, slowest)
    }
}

/// How slow a normal client's round trip may be beside the hostile ones:
/// loose (the machine may be busy; they take well under a millisecond on
/// an idle one), but far below any of the timeouts at play.
const NORMAL_TRIP: Duration = Duration::from_millis(500);

/// Memory growth in KiB from `before` to `after` (0 if it shrank).
fn growth(before: u64, after: u64) -> u64 {
    after.saturating_sub(before)
}

/// The huge-declared-length scenario's headers: length field, what it is,
/// and whether the server must refuse it from the header alone.
const HUGE_HEADERS: [(u32, &str, bool); 4] = [
    (0x7FFF_FFFF, "length 0x7FFFFFFF", true),
    (u32::MAX, "length 0xFFFFFFFF", true),
    (
        protocol::DEFAULT_MAX_FRAME_LEN + 1,
        "length max_frame_len + 1",
        true,
    ),
    (
        protocol::DEFAULT_MAX_FRAME_LEN,
        "length max_frame_len (8 MiB, allowed; the body never comes)",
        false,
    ),
];

/// 200 connections each send a header declaring a huge frame, then 4 KiB
/// of data: 0x7FFFFFFF, 0xFFFFFFFF and max_frame_len + 1 are each closed at
/// once (refused from the header alone, without waiting for the body), and
/// the 50 declaring exactly max_frame_len (8 MiB, allowed) are held open by
/// the server, waiting for a body that never comes. A connected client is
/// answered throughout.
///
/// Memory: the round is run twice (the first warms up the allocator and,
/// on a thread-per-connection server, the thread stacks); during the
/// second, with the 50 open connections, the process' resident memory
/// grows by less than 2 MiB, and it is back within 2 MiB once they are
/// closed. The bound: each open connection holds the 4 KiB it was sent
/// and its own state (a task, or a thread's stack pages, which the warm-up
/// round already made resident), about 20 KiB; 50 × 20 KiB = 1 MiB, plus
/// 1 MiB of allocator slack. A server that sized a buffer by the declared
/// length and touched it (zeroed it, or copied into it) would need 50 ×
/// 8 MiB = 400 MiB; one that did so for 0x7FFFFFFF would need 2 GiB per
/// connection. (Resident memory counts touched pages: a reservation that
/// is never written costs address space only; the core's bounded
/// reservation steps are checked by its own tests and fuzz target.)
pub fn huge_declared_lengths_cost_no_memory(h: &dyn Harness) {
    const CONNS: usize = 200;
    const DATA: usize = 4 * 1024;
    const BUDGET_KIB: u64 = 2 * 1024;
    let server = Server::start(h, ServerSpec::default());
    let ep = server.endpoint().clone();
    let mut bystander = TestClient::connect(&ep, "bystander");
    bystander.round_trip(b"before the huge lengths");

    // One round: returns (resident KiB before, with the open ones held,
    // after they closed), the slowest refusal and the slowest round trip.
    let mut round = |label: &str| -> ([u64; 3], Duration, Duration) {
        // The sampler's thread stack and the frames below are made before
        // the figure "before" is taken.
        let mut bytes = Vec::with_capacity(4 + DATA);
        let before = resident_kib().unwrap_or(0);
        let mut held = Vec::with_capacity(CONNS);
        let mut slowest_refusal = Duration::ZERO;
        let mut slowest_trip = Duration::ZERO;
        for i in 0..CONNS {
            let (len, what, refused) = HUGE_HEADERS[i % HUGE_HEADERS.len()];
            let mut c = TestClient::connect(&ep, format!("{label} client {i} declaring {what}"));
            bytes.clear();
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.resize(4 + DATA, 0x5a);
            let sent = Instant::now();
            // A refused connection may be cut while its bytes go out.
            let _ = c.try_send(&bytes);
            if refused {
                if let Err(e) = c.wait_closed(PROMPT) {
                    panic!("{}: {what} followed by {DATA} bytes: {e}", h.name());
                }
                slowest_refusal = slowest_refusal.max(sent.elapsed());
            } else {
                held.push(c);
            }
            if i % 10 == 9 {
                slowest_trip = slowest_trip.max(bystander.round_trip(b"unaffected"));
            }
        }
        // Every byte sent has reached the server (a round trip after them
        // on another connection is no proof: give the server a moment).
        thread::sleep(Duration::from_millis(200));
        slowest_trip = slowest_trip.max(bystander.round_trip(b"beside the open ones"));
        let holding = resident_kib().unwrap_or(0);
        for c in &held {
            c.shutdown_write();
        }
        for c in &mut held {
            // FIN inside the frame: the server closes it (truncated frame).
            c.expect_closed(PROMPT);
        }
        drop(held);
        slowest_trip = slowest_trip.max(bystander.round_trip(b"after the open ones closed"));
        let after = resident_kib().unwrap_or(0);
        ([before, holding, after], slowest_refusal, slowest_trip)
    };
    let (warm, _, _) = round("warm-up");
    let ([before, holding, after], slowest_refusal, slowest_trip) = round("measured");
    let open = CONNS / HUGE_HEADERS.len();
    eprintln!(
        "{}: {CONNS} connections declaring huge frames + {DATA} bytes each ({open} held open at \
         max_frame_len): resident KiB warm-up {warm:?}, measured round before {before}, with \
         {open} open {holding} (+{}), after {after} (+{}); slowest refusal {slowest_refusal:?}, \
         slowest round trip beside {slowest_trip:?}",
        h.name(),
        growth(before, holding),
        growth(before, after),
    );
    assert!(
        slowest_trip <= NORMAL_TRIP,
        "{}: a round trip beside the huge declared lengths took {slowest_trip:?}",
        h.name()
    );
    if before > 0 {
        assert!(
            growth(before, holding) <= BUDGET_KIB,
            "{}: with {open} connections open, each having declared an 8 MiB frame and sent \
             {DATA} bytes of it, resident memory grew by {} KiB (from {before} to {holding}), \
             over {BUDGET_KIB} KiB: memory must follow the bytes received, not the length declared",
            h.name(),
            growth(before, holding)
        );
        assert!(
            growth(before, after) <= BUDGET_KIB,
            "{}: after {CONNS} connections declaring huge frames all closed, resident memory \
             stayed {} KiB above where it was (from {before} to {after})",
            h.name(),
            growth(before, after)
        );
    } else {
        eprintln!("{}: no /proc/self/status: memory not checked", h.name());
    }
    server.shutdown();
}

/// How many connections a scenario may open at once (each costs two
/// descriptors in this process: the client's and the in-process
/// server's), at most `want`, keeping 300 descriptors for the rest of the
/// process (other tests running in parallel).
fn connections_within_fd_limit(h: &dyn Harness, want: usize) -> usize {
    let Some(limit) = open_files_limit() else {
        return want;
    };
    let fit = usize::try_from(limit.saturating_sub(300) / 2).unwrap_or(want);
    if fit < want {
        eprintln!(
            "{}: note: the descriptor limit ({limit}) allows {fit} connections, not {want} \
             (raise `ulimit -n` for the full scenario)",
            h.name()
        );
    }
    fit.clamp(10, want)
}

/// Slowloris by the hundred: with `frame_timeout` 300 ms, 400 connections
/// each start a frame and stall (a third inside its header, a third
/// inside its body, a third after a whole Submit, whose ack comes first).
/// None is closed before 300 ms after its bytes went out (checked for
/// those still young when the last one was sent), every one is closed by
/// the frame timeout, and a normal client doing a round trip every 20 ms
/// meanwhile is never held up (each under 500 ms; a few hundred µs on an
/// idle machine). A server that served each stalled frame with a blocked
/// thread or task, or timed them out one after another, fails here.
pub fn slowloris_many_connections_all_closed_at_frame_timeout(h: &dyn Harness) {
    const FRAME: Duration = Duration::from_millis(300);
    let conns = connections_within_fd_limit(h, 400);
    let mut spec = ServerSpec::default();
    spec.config.frame_timeout = Some(FRAME);
    spec.max_connections = spec.max_connections.max(conns + 10);
    let server = Server::start(h, spec);
    let ep = server.endpoint().clone();
    let prober = Prober::start(
        TestClient::connect(&ep, "normal client"),
        Duration::from_millis(20),
    );

    struct Stalled {
        client: TestClient,
        sent: Instant,
        acked: Option<MessageId>,
    }
    let mut stalled: Vec<Stalled> = Vec::with_capacity(conns);
    for i in 0..conns {
        let how = [
            "inside its header",
            "inside its body",
            "after a whole Submit",
        ][i % 3];
        let mut client = TestClient::connect(&ep, format!("slowloris client {i}, stalled {how}"));
        let mut acked = None;
        let mut bytes = Vec::new();
        if i % 3 == 2 {
            let (id, whole) = client.submit_frame(b"whole");
            bytes.extend_from_slice(&whole);
            acked = Some(id);
        }
        let (_, f) = client.submit_frame(b"never finished, never answered");
        let keep = if i % 3 == 0 { 2 } else { f.len() / 2 };
        bytes.extend_from_slice(&f[..keep]);
        let sent = Instant::now();
        client.send(&bytes);
        stalled.push(Stalled {
            client,
            sent,
            acked,
        });
    }
    let all_sent = Instant::now();

    // None early: those sent less than FRAME - 100 ms ago must be open.
    let mut checked_open = 0;
    for s in &mut stalled {
        if s.acked.is_none() && s.sent + FRAME > Instant::now() + Duration::from_millis(100) {
            s.client.expect_open_now();
            checked_open += 1;
        }
    }

    let mut latest = Duration::ZERO;
    for s in &mut stalled {
        if let Some(id) = s.acked {
            s.client.expect_ack(RequestKind::Submit, id, AckResult::OK);
        }
        let left = (s.sent + FRAME + PROMPT)
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10));
        if let Err(e) = s.client.wait_closed(left) {
            panic!(
                "{}: {conns} stalled frames with a {FRAME:?} frame timeout: {e}",
                h.name()
            );
        }
        let lived = s.sent.elapsed();
        assert!(
            lived >= FRAME,
            "{}: closed {lived:?} after its partial frame was sent, before the {FRAME:?} frame \
             timeout",
            s.client.name()
        );
        latest = latest.max(lived - FRAME);
    }
    let (trips, median, slowest) = prober.finish();
    eprintln!(
        "{}: {conns} slowloris connections sent in {:?}, all closed by the {FRAME:?} frame \
         timeout ({checked_open} checked open while young; seen closed at most {latest:?} after \
         their timeout); normal client: {trips} round trips, median {median:?}, slowest {slowest:?}",
        h.name(),
        all_sent.saturating_duration_since(stalled.first().map_or(all_sent, |s| s.sent)),
    );
    assert!(
        slowest <= NORMAL_TRIP,
        "{}: a normal client's round trip took {slowest:?} beside {conns} slowloris connections",
        h.name()
    );
    server.shutdown();
}

/// One client of the slow-consumer scenario: pipelines empty Submits
/// without reading, from a non-blocking socket.
struct Sleeper {
    client: TestClient,
    chunk: Vec<u8>,
    off: usize,
    next: u32,
    frames: u64,
    written: usize,
    progress_at: Instant,
    stalled: bool,
    reset: bool,
}

/// Frames generated at a time for a sleeper.
const SLEEPER_CHUNK: usize = 256;

impl Sleeper {
    /// Writes until the socket takes no more; true while still writing.
    fn push(&mut self, stall: Duration, cap: usize) -> bool {
        loop {
            if self.off == self.chunk.len() {
                if self.written >= cap {
                    panic!(
                        "{}: the server kept reading: {} bytes ({} Submits) went out while the \
                         client read none of their acks; it must stop reading once its unsent \
                         output is over the high-water mark",
                        self.client.name(),
                        self.written,
                        self.frames
                    );
                }
                self.chunk = empty_submits(self.next, SLEEPER_CHUNK);
                self.next += SLEEPER_CHUNK as u32;
                self.frames += SLEEPER_CHUNK as u64;
                self.off = 0;
            }
            match self.client.stream_mut().write(&self.chunk[self.off..]) {
                Ok(n) => {
                    self.off += n;
                    self.written += n;
                    self.progress_at = Instant::now();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.stalled = self.progress_at.elapsed() >= stall;
                    return !self.stalled;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_reset(&e) => {
                    self.reset = true;
                    return false;
                }
                Err(e) => panic!(
                    "{}: writing the pipeline failed after {} bytes: {e}",
                    self.client.name(),
                    self.written
                ),
            }
        }
    }
}

/// Slow consumers: with a 16 KiB high-water mark and `write_stall_timeout`
/// 500 ms, 100 clients pipeline empty Submits and never read. The server
/// stops reading from each (its writes stall well before 4 MiB went out
/// on any), closes every one of them once its writes have made no
/// progress for 500 ms (each got a prefix of its acks, in order), and a
/// normal client is served throughout.
///
/// Over a Unix socket: the kernel's buffers are fixed there (the server's
/// send buffer is `wmem_default`, about 200 KiB, and the client's small
/// send buffer bounds what waits unread at the server), so each client
/// stalls after a few hundred KiB. Over loopback TCP, send-buffer
/// autotuning lets each connection take up to 4 MiB of acks first (about
/// 280,000 requests answered per client before any stall): the TCP case is
/// `write_stall_closes_a_client_that_never_reads`, with one client.
///
/// Memory: while all 100 are stalled, the process' resident memory grows
/// by less than 100 × (2 × (high_water + 14 B × max_pending_requests) +
/// 72 KiB + 40 KiB) + 4 MiB. Per connection, the core's unsent output
/// stays below high_water plus one ack per request the application may
/// still hold (the buffer's capacity at most twice that, as it grows by
/// doubling); its receive buffer holds at most one read beyond the frames
/// parsed (64 KiB on an adapter reading 64 KiB at once, plus 8 KiB of
/// slack); 40 KiB covers the connection's own state (a thread's stack
/// pages or a task) and this process' client side (its frames being
/// written); 4 MiB of fixed overhead (allocator arenas, runtime threads).
/// That is about 17 MiB; a server that kept reading would hold each
/// client's pipelined requests, or their acks, without bound.
pub fn slow_consumers_are_bounded_and_closed_by_write_stall(h: &dyn Harness) {
    const CLIENTS: usize = 100;
    const STALL: Duration = Duration::from_millis(500);
    const HIGH_WATER: usize = 16 * 1024;
    const CAP: usize = 4 << 20;
    let mut spec = ServerSpec::default();
    spec.config.write_stall_timeout = Some(STALL);
    spec.config.high_water = HIGH_WATER;
    spec.config.low_water = 4 * 1024;
    spec.unix = true;
    let per_conn_kib = (2 * (HIGH_WATER + ACK_FRAME_LEN * spec.config.max_pending_requests)
        + (72 + 40) * 1024) as u64
        / 1024;
    let budget_kib = CLIENTS as u64 * per_conn_kib + 4 * 1024;
    let server = Server::start(h, spec);
    let path = match server.endpoint() {
        crate::Endpoint::Unix(p) => p.clone(),
        other => panic!("{}: a Unix server was asked for, got {other}", h.name()),
    };
    let prober = Prober::start(
        TestClient::connect(server.endpoint(), "normal client"),
        Duration::from_millis(20),
    );
    thread::sleep(Duration::from_millis(50));

    let before = resident_kib().unwrap_or(0);
    let sampler = PeakSampler::start();
    let started = Instant::now();
    let mut sleepers: Vec<Sleeper> = (0..CLIENTS)
        .map(|i| {
            let client = TestClient::connect_unix_small_buffer(
                &path,
                format!("client {i} that never reads"),
                4096,
            );
            if let Err(e) = client.stream().set_nonblocking(true) {
                panic!(
                    "{}: cannot make the socket non-blocking: {e}",
                    client.name()
                );
            }
            Sleeper {
                client,
                chunk: Vec::new(),
                off: 0,
                next: 1,
                frames: 0,
                written: 0,
                progress_at: Instant::now(),
                stalled: false,
                reset: false,
            }
        })
        .collect();

    // Pipeline on all of them until each one's writes made no progress
    // for 300 ms (or the server already cut it).
    let limit = Instant::now() + Duration::from_secs(30);
    loop {
        let mut writing = 0;
        for s in sleepers.iter_mut().filter(|s| !s.stalled && !s.reset) {
            if s.push(Duration::from_millis(300), CAP) {
                writing += 1;
            }
        }
        if writing == 0 {
            break;
        }
        assert!(
            Instant::now() < limit,
            "{}: {writing} of {CLIENTS} clients that never read could still write after {:?}",
            h.name(),
            started.elapsed()
        );
        thread::sleep(Duration::from_millis(2));
    }
    let stalled_at = Instant::now();
    let written: usize = sleepers.iter().map(|s| s.written).sum();

    // Each is closed by the write-stall timeout (seen as a reset, or a
    // write that fails).
    let limit = stalled_at + STALL + PROMPT;
    loop {
        let mut open = 0;
        for s in sleepers.iter_mut().filter(|s| !s.reset) {
            let mut more = s.chunk.split_off(s.off);
            if more.is_empty() {
                more = request_frame(RequestKind::Submit, &MessageId::from_counter(s.next), b"");
                s.next += 1;
                s.frames += 1;
            }
            let before_probe = more.len();
            s.reset = probe_reset(s.client.stream_mut(), &mut more);
            s.written += before_probe - more.len();
            s.chunk = more;
            s.off = 0;
            if !s.reset {
                open += 1;
            }
        }
        if open == 0 {
            break;
        }
        assert!(
            Instant::now() < limit,
            "{}: {open} of {CLIENTS} clients that read nothing were still open {:?} after their \
             writes stalled (write_stall_timeout {STALL:?})",
            h.name(),
            stalled_at.elapsed()
        );
        thread::sleep(Duration::from_millis(20));
    }
    let all_closed = stalled_at.elapsed();
    let peak = sampler.map(PeakSampler::finish).unwrap_or(0);

    // What came before the cut is a prefix of the answers, in order.
    let mut acks = 0;
    for s in &mut sleepers {
        let (n, _) = s.client.read_ack_run_until_closed(1, s.frames, PROMPT);
        assert!(
            n < s.frames,
            "{}: the connection was cut, yet all {n} Submits were answered",
            s.client.name()
        );
        acks += n;
    }
    let frames: u64 = sleepers.iter().map(|s| s.frames).sum();
    let (trips, median, slowest) = prober.finish();
    eprintln!(
        "{}: {CLIENTS} clients that never read wrote {written} bytes ({frames} Submits \
         generated) until stalled in {:?}; all closed {all_closed:?} after that; {acks} acks \
         came before the cuts; resident KiB before {before}, peak {peak} (+{} = {} per \
         connection; budget {budget_kib}); normal client: {trips} round trips, median \
         {median:?}, slowest {slowest:?}",
        h.name(),
        stalled_at - started,
        growth(before, peak),
        growth(before, peak) / CLIENTS as u64,
    );
    if before > 0 {
        assert!(
            growth(before, peak) <= budget_kib,
            "{}: {CLIENTS} clients that never read made resident memory grow by {} KiB (from \
             {before} to {peak}), over the {budget_kib} KiB bound",
            h.name(),
            growth(before, peak)
        );
    }
    assert!(
        slowest <= NORMAL_TRIP,
        "{}: a normal client's round trip took {slowest:?} beside {CLIENTS} clients that never \
         read",
        h.name()
    );
    server.shutdown();
}
