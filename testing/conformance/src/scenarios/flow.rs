//! Socket behaviour 7 of PROTOCOL.md: a peer that does not read.

use std::io::Write;
use std::net::Shutdown;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{Closed, PROMPT, Server, TestClient};
use crate::{Harness, ServerSpec};

/// Socket behaviour 7, backpressure: a client pipelines empty Submits without reading a
/// single ack. The server must stop reading from it (its writes stall well
/// before 64 MiB went out: the server's buffering is bounded by its
/// high-water mark plus the kernel's socket buffers) while another client
/// is served promptly; when the client finally reads, every ack arrives,
/// in order, nothing lost, and its FIN gets a clean close.
pub fn backpressure_stops_reading_from_a_client_that_does_not_read(h: &dyn Harness) {
    let mut spec = ServerSpec::default();
    spec.config.high_water = 64 * 1024;
    spec.config.low_water = 16 * 1024;
    // What the kernel takes for a server that stopped reading is its
    // receive buffer. Autotuned (up to 32 MiB here) after the fast reads
    // before the stop, it filled at a trickle from this client's 4 KiB
    // send buffer on loaded cores: measured 500 KB over 2 s with two busy
    // loops beside it, and 11.9 MB over 30 s once in the full suite, when
    // the server's 30 s write stall closed the connection first. A fixed
    // 64 KiB bounds it.
    spec.socket.recv_buffer = Some(64 * 1024);
    let server = Server::start(h, spec);
    let mut slow =
        TestClient::connect_small_buffers(server.tcp_addr(), "client that does not read", 4096);
    let started = Instant::now();
    let mut stalled = slow.pipeline_until_stalled(Duration::from_millis(500), 64 << 20);
    assert!(
        !stalled.reset,
        "{}: the server reset a client that was only slow to read ({} bytes sent); with \
         write_stall_timeout at its 30 s default it must wait",
        h.name(),
        stalled.written
    );
    eprintln!(
        "{}: the server stopped reading after {} bytes ({} Submits generated) in {:?}",
        h.name(),
        stalled.written,
        stalled.frames,
        started.elapsed()
    );

    // Others are served while that client's requests wait.
    let mut other = TestClient::connect(server.endpoint(), "other client");
    for _ in 0..20 {
        other.round_trip(b"not held up");
    }

    // The slow client reads at last (and sends the rest of its pipeline,
    // then FIN, from another thread): every Submit is answered in order.
    let mut writer = match slow.stream().try_clone() {
        Ok(s) => s,
        Err(e) => panic!("cannot clone the slow client's socket: {e}"),
    };
    let rest = std::mem::take(&mut stalled.unsent);
    let finisher = thread::spawn(move || {
        writer.set_write_timeout(Some(Duration::from_secs(10)))?;
        writer.write_all(&rest)?;
        writer.shutdown(Shutdown::Write)
    });
    slow.expect_submit_ack_run(stalled.first_counter(), stalled.frames, PROMPT);
    match finisher.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("finishing the slow client's pipeline failed: {e}"),
        Err(_) => panic!("the thread finishing the slow client's pipeline panicked"),
    }
    let closed = slow.expect_closed(PROMPT);
    assert_eq!(
        closed,
        Closed::Eof,
        "after every request was answered and the client sent FIN, the close must be clean"
    );
    other.round_trip(b"still served");
    server.shutdown();
}
