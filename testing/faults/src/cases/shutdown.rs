//! `shutdown-under-load`: SIGTERM while 50 clients pipeline. Each client
//! counts the Submits it wrote in full before it saw the server's FIN and
//! the acks it received (checked to be ids 1, 2, 3, ... in order, result
//! 0); the server's log says, per connection, how many requests it read
//! and acks it queued. Every request the server read must have its ack at
//! the client: acks received == requests read, for every connection,
//! nothing missing, and never more than was written.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use conformance::support::ack_frame;
use conformance::support::empty_submits;
use protocol::{ACK_FRAME_LEN, AckResult, MessageId, REQUEST_OVERHEAD, RequestKind};

use crate::client::is_reset;
use crate::report::{Row, thousands};
use crate::servers::{Adapter, ServerProc};

/// `shutdown-under-load` flags.
#[derive(Debug, Clone, Args)]
pub struct ShutdownArgs {
    /// Clients pipelining when the server gets SIGTERM.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub clients: usize,
    /// Milliseconds of load before the SIGTERM.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub load_ms: u64,
    /// The server's --shutdown-timeout (seconds).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub shutdown_timeout: u64,
}

const CASE: &str = "shutdown-under-load";

/// Runs the case against each adapter.
pub fn run(bins: &Path, adapters: &[Adapter], args: &ShutdownArgs) -> Vec<Row> {
    adapters
        .iter()
        .map(|&a| match one(bins, a, args) {
            Ok(row) => row,
            Err(e) => Row::error(CASE, a.name(), e),
        })
        .collect()
}

/// How a client's connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Fin,
    Reset,
    TimedOut,
}

/// What one client saw.
struct Seen {
    local: SocketAddr,
    /// Submits written in full before the FIN (or reset) was seen.
    written: u64,
    acks: u64,
    end: End,
    bad: Option<String>,
}

/// Frames written in full by a byte count (every Submit is empty: 13 bytes).
fn whole(bytes: u64) -> u64 {
    bytes / REQUEST_OVERHEAD as u64
}

struct Client {
    reader: thread::JoinHandle<Seen>,
    writer: thread::JoinHandle<()>,
    acks: Arc<AtomicU64>,
}

fn start_client(addr: SocketAddr, limit: Duration) -> Result<Client, String> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("cannot connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let local = stream
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?;
    let mut w = stream.try_clone().map_err(|e| format!("clone: {e}"))?;
    let written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer_done = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicU64::new(0));

    let (wb, ws, wd) = (
        Arc::clone(&written),
        Arc::clone(&stop),
        Arc::clone(&writer_done),
    );
    let writer = thread::spawn(move || {
        // Short write timeouts so that `stop` is seen soon.
        let _ = w.set_write_timeout(Some(Duration::from_millis(100)));
        let mut next = 1u32;
        'outer: while !ws.load(Ordering::SeqCst) {
            let chunk = empty_submits(next, 256);
            next += 256;
            let mut off = 0;
            while off < chunk.len() {
                if ws.load(Ordering::SeqCst) {
                    break 'outer;
                }
                match w.write(&chunk[off..]) {
                    Ok(n) => {
                        off += n;
                        wb.fetch_add(n as u64, Ordering::SeqCst);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                        ) => {}
                    Err(_) => break 'outer,
                }
            }
        }
        wd.store(true, Ordering::SeqCst);
    });

    let mut r = stream;
    let racks = Arc::clone(&acks);
    let reader = thread::spawn(move || {
        let deadline = Instant::now() + limit;
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut chunk = vec![0u8; 64 * 1024];
        let mut counter = 1u32;
        let mut want = ack_frame(
            RequestKind::Submit,
            &MessageId::from_counter(counter),
            AckResult::OK,
        );
        let mut bad = None;
        let end = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break End::TimedOut;
            }
            let _ = r.set_read_timeout(Some(left.min(Duration::from_millis(200))));
            match r.read(&mut chunk) {
                Ok(0) => break End::Fin,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    let mut off = 0;
                    while buf.len() - off >= ACK_FRAME_LEN {
                        if buf[off..off + ACK_FRAME_LEN] != want[..] {
                            bad = Some(format!(
                                "ack #{} is not the SubmitAck of {counter:08} with result 0: \
                                 {:02x?}",
                                counter,
                                &buf[off..off + ACK_FRAME_LEN]
                            ));
                            break;
                        }
                        off += ACK_FRAME_LEN;
                        racks.fetch_add(1, Ordering::SeqCst);
                        counter += 1;
                        want = ack_frame(
                            RequestKind::Submit,
                            &MessageId::from_counter(counter),
                            AckResult::OK,
                        );
                    }
                    buf.drain(..off);
                    if bad.is_some() {
                        break End::TimedOut;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_reset(&e) => break End::Reset,
                Err(e) => {
                    bad = Some(format!("read failed: {e}"));
                    break End::TimedOut;
                }
            }
        };
        // What was written in full before the FIN was seen.
        let written_frames = whole(written.load(Ordering::SeqCst));
        stop.store(true, Ordering::SeqCst);
        while !writer_done.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(5));
        }
        // Our FIN: a server lingering for it may close now.
        let _ = r.shutdown(Shutdown::Both);
        if !buf.is_empty() && bad.is_none() && end == End::Fin {
            bad = Some(format!(
                "{} bytes of a partial ack before the FIN",
                buf.len()
            ));
        }
        Seen {
            local,
            written: written_frames,
            acks: racks.load(Ordering::SeqCst),
            end,
            bad,
        }
    });
    Ok(Client {
        reader,
        writer,
        acks,
    })
}

/// `peer=... requests=R acks=K` of a "connection closed" log line.
fn parse_closed_line(line: &str) -> Option<(String, u64, u64)> {
    let rest = &line[line.find("connection closed")?..];
    let field = |key: &str| -> Option<&str> {
        let start = rest.find(key)? + key.len();
        rest[start..].split_whitespace().next()
    };
    let peer = field(" peer=")?.to_owned();
    let requests = field(" requests=")?.parse().ok()?;
    let acks = field(" acks=")?.parse().ok()?;
    Some((peer, requests, acks))
}

/// `requests=R acks=K` of the shutdown summary line.
fn parse_summary(line: &str) -> Option<(u64, u64)> {
    let field = |key: &str| -> Option<u64> {
        let start = line.find(key)? + key.len();
        line[start..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((field("requests=")?, field("acks=")?))
}

fn one(bins: &Path, a: Adapter, args: &ShutdownArgs) -> Result<Row, String> {
    let timeout = Duration::from_secs(args.shutdown_timeout);
    let mut server = ServerProc::start(
        bins,
        a,
        &[
            "--shutdown-timeout".into(),
            args.shutdown_timeout.to_string(),
        ],
        None,
    )?;
    eprintln!(
        "faults: {CASE} / {a}: {} clients pipelining, SIGTERM after {} ms",
        args.clients, args.load_ms
    );
    let limit = Duration::from_millis(args.load_ms) + timeout + Duration::from_secs(10);
    let mut clients = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        clients.push(start_client(server.addr, limit).map_err(|e| format!("client {i}: {e}"))?);
    }
    let t = Instant::now();
    while clients.iter().any(|c| c.acks.load(Ordering::SeqCst) == 0)
        && t.elapsed() < Duration::from_secs(5)
    {
        thread::sleep(Duration::from_millis(10));
    }
    thread::sleep(Duration::from_millis(args.load_ms));
    eprintln!(
        "faults: {CASE} / {a}: SIGTERM to pid {} under load",
        server.pid()
    );
    let (status, took) = server.terminate(timeout + Duration::from_secs(5));

    let mut seen = Vec::with_capacity(clients.len());
    for c in clients {
        let _ = c.writer.join();
        match c.reader.join() {
            Ok(s) => seen.push(s),
            Err(_) => return Err("a client thread panicked".into()),
        }
    }

    let mut failures = Vec::new();
    match status {
        Some(s) if s.success() => {}
        Some(s) => failures.push(format!("exit status after SIGTERM: {s}")),
        None => failures.push(format!(
            "still running {:?} after SIGTERM",
            timeout + Duration::from_secs(5)
        )),
    }
    if took >= timeout {
        failures.push(format!(
            "the graceful shutdown took {took:?}, its deadline is {timeout:?}"
        ));
    }
    let per_peer: HashMap<String, (u64, u64)> = server
        .lines(|l| l.contains("connection closed"))
        .iter()
        .filter_map(|l| parse_closed_line(l))
        .map(|(p, r, k)| (p, (r, k)))
        .collect();
    let summary = server
        .lines(|l| l.contains("requests=") && l.contains("connections accepted="))
        .last()
        .and_then(|l| parse_summary(l));

    let (mut written, mut read, mut acked) = (0u64, 0u64, 0u64);
    let mut fins = 0;
    let mut resets = 0;
    let mut lost = 0u64;
    for s in &seen {
        written += s.written;
        acked += s.acks;
        match s.end {
            End::Fin => fins += 1,
            End::Reset => resets += 1,
            End::TimedOut => {}
        }
        if let Some(b) = &s.bad {
            failures.push(format!("client {}: {b}", s.local));
        }
        if s.end == End::TimedOut && s.bad.is_none() {
            failures.push(format!(
                "client {}: still open {limit:?} after the load began",
                s.local
            ));
        }
        match per_peer.get(&s.local.to_string()) {
            None => failures.push(format!(
                "client {}: the server logged no \"connection closed\" line for it",
                s.local
            )),
            Some(&(r, k)) => {
                read += r;
                if s.acks != r || k != r {
                    lost += r.saturating_sub(s.acks);
                    failures.push(format!(
                        "client {}: the server read {r} requests and queued {k} acks; the \
                         client received {} acks ({} written in full before the {})",
                        s.local,
                        s.acks,
                        s.written,
                        if s.end == End::Reset { "reset" } else { "FIN" }
                    ));
                }
                if r > s.written {
                    failures.push(format!(
                        "client {}: the server read {r} requests, more than the {} written",
                        s.local, s.written
                    ));
                }
            }
        }
    }
    match summary {
        Some((r, k)) if r == k => {}
        Some((r, k)) => failures.push(format!("the shutdown summary says requests={r} acks={k}")),
        None => failures.push("no shutdown summary line (requests=... acks=...)".into()),
    }
    failures.truncate(8);
    let figures = format!(
        "{} clients, SIGTERM after {} ms: {} Submits written in full before the FIN, server \
         read {} and acked each; clients got {} acks in order ({} missing); {} unread in \
         kernel buffers at the stop; FIN {fins}/{}, reset {resets}; shutdown {took:.0?}",
        seen.len(),
        args.load_ms,
        thousands(written),
        thousands(read),
        thousands(acked),
        thousands(lost),
        thousands(written.saturating_sub(read)),
        seen.len(),
    );
    Ok(Row::new(CASE, a.name(), failures, figures))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_lines_and_the_summary_are_parsed() {
        let l = "2025-01-01T00:00:00Z  INFO adapter_std::server: connection closed \
                 peer=127.0.0.1:5555 duration=1.2s requests=10 acks=9 bytes_in=130 \
                 bytes_out=126 reason=\"server shutdown\"";
        assert_eq!(parse_closed_line(l), Some(("127.0.0.1:5555".into(), 10, 9)));
        let s = "INFO connections accepted=50 refused=0 open=0; requests=123 acks=123; bytes \
                 in=1 out=2; closes: shutdown=50";
        assert_eq!(parse_summary(s), Some((123, 123)));
    }
}
