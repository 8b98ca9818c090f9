//! `hostile`: bytes that are not the protocol, each on its own connection
//! after two whole Submits, against the server process. Each connection
//! gets its two acks and is closed, and the server's log names the
//! reason for that peer. Then huge declared lengths by the hundred, with
//! the server process' own resident memory measured (no test process
//! around it): 150 refused from the header (0x7FFFFFFF, 0xFFFFFFFF,
//! max_frame_len + 1, each followed by 64 KiB), 50 declaring exactly
//! max_frame_len held open with 4 KiB of their 8 MiB sent.

use std::collections::HashMap;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use conformance::support::ack_frame;
use conformance::support::request_frame;
use protocol::{AckResult, DEFAULT_MAX_FRAME_LEN, MessageId, RequestKind};

use crate::client::{Conn, Wait};
use crate::report::Row;
use crate::servers::{Adapter, ServerProc};

/// `hostile` flags.
#[derive(Debug, Clone, Args)]
pub struct HostileArgs {
    /// Connections declaring a huge frame (a quarter of them held open at
    /// exactly max_frame_len, the rest refused).
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub huge: usize,
}

const CASE: &str = "hostile";

/// Runs the case against each adapter.
pub fn run(bins: &Path, adapters: &[Adapter], args: &HostileArgs) -> Vec<Row> {
    adapters
        .iter()
        .map(|&a| match one(bins, a, args) {
            Ok(row) => row,
            Err(e) => Row::error(CASE, a.name(), e),
        })
        .collect()
}

fn raw(len: u32, packet: &[u8]) -> Vec<u8> {
    let mut f = len.to_be_bytes().to_vec();
    f.extend_from_slice(packet);
    f
}

fn framed(packet: &[u8]) -> Vec<u8> {
    raw(packet.len() as u32 + 4, packet)
}

fn with_body(command: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![command];
    p.extend_from_slice(body);
    framed(&p)
}

/// What is sent, its bytes, and what the server's close reason must say.
fn inputs() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let id = *b"00000003";
    let tail = vec![0x5a; 64 * 1024];
    let huge = |len: u32| {
        let mut f = raw(len, &[]);
        f.extend_from_slice(&tail);
        f
    };
    vec![
        ("length 0", raw(0, &[]), "below the minimum 5"),
        ("length 3", raw(3, &[]), "below the minimum 5"),
        ("length 4", raw(4, &[]), "below the minimum 5"),
        (
            "length 0x7FFFFFFF + 64 KiB",
            huge(0x7FFF_FFFF),
            "exceeds limit",
        ),
        (
            "length 0xFFFFFFFF + 64 KiB",
            huge(u32::MAX),
            "exceeds limit",
        ),
        (
            "length max_frame_len + 1 + 64 KiB",
            huge(DEFAULT_MAX_FRAME_LEN + 1),
            "exceeds limit",
        ),
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            "exceeds limit",
        ),
        (
            "command 0x7f",
            with_body(0x7f, &id),
            "unknown command id 0x7f",
        ),
        (
            "command 0x00",
            with_body(0x00, &id),
            "unknown command id 0x00",
        ),
        (
            "a Submit with a 4-byte body",
            with_body(0x02, b"0000"),
            "body is 4 bytes",
        ),
        (
            "a Conn with a 7-byte body",
            with_body(0x01, b"0000000"),
            "body is 7 bytes",
        ),
        (
            "a SubmitAck sent to the server",
            ack_frame(RequestKind::Submit, &MessageId(id), AckResult::OK).to_vec(),
            "must not be sent to a server",
        ),
        (
            "a ConnAck sent to the server",
            ack_frame(RequestKind::Conn, &MessageId(id), AckResult::OK).to_vec(),
            "must not be sent to a server",
        ),
    ]
}

fn one(bins: &Path, a: Adapter, args: &HostileArgs) -> Result<Row, String> {
    let mut server = ServerProc::start(bins, a, &[], None)?;
    let addr = server.addr;
    eprintln!(
        "faults: {CASE} / {a}: malformed input, then {} huge declared lengths",
        args.huge
    );
    let mut failures = Vec::new();
    let mut bystander =
        Conn::connect(addr, Duration::from_secs(5)).map_err(|e| format!("bystander: {e}"))?;
    let mut slowest = Duration::ZERO;
    let mut trip =
        |b: &mut Conn, failures: &mut Vec<String>| match b.round_trip(Duration::from_secs(5)) {
            Ok(t) => slowest = slowest.max(t),
            Err(e) => failures.push(format!("the bystander: {e}")),
        };

    // 1. Each malformed input after two whole Submits.
    let mut expected: Vec<(String, &'static str, &'static str)> = Vec::new();
    for (what, bad, reason) in inputs() {
        let mut c = Conn::connect(addr, Duration::from_secs(5))
            .map_err(|e| format!("{what}: cannot connect: {e}"))?;
        let peer = c
            .local_addr()
            .map_err(|e| format!("{what}: local_addr: {e}"))?;
        let mut bytes = request_frame(RequestKind::Submit, &MessageId::from_counter(1), b"a");
        bytes.extend(request_frame(
            RequestKind::Submit,
            &MessageId::from_counter(2),
            b"b",
        ));
        bytes.extend_from_slice(&bad);
        c.expect_acks_for(2);
        // The server may cut the connection while the tail goes out.
        let _ = c.send_raw(&bytes);
        for _ in 0..2 {
            match c.wait_ack(Duration::from_secs(3))? {
                Wait::Ack => {}
                other => {
                    failures.push(format!("{what}: the acks before it: {other:?}"));
                    break;
                }
            }
        }
        if !c.wait_closed(Duration::from_secs(3))? {
            failures.push(format!("{what}: the connection stayed open"));
        }
        expected.push((peer.to_string(), what, reason));
        trip(&mut bystander, &mut failures);
    }

    // 2. Huge declared lengths by the hundred, the server's memory measured.
    let round = |label: &str, server: &ServerProc, failures: &mut Vec<String>| {
        let before = server.rss_kib().unwrap_or(0);
        let mut held = Vec::new();
        for i in 0..args.huge {
            let len = match i % 4 {
                0 => 0x7FFF_FFFF,
                1 => u32::MAX,
                2 => DEFAULT_MAX_FRAME_LEN + 1,
                _ => DEFAULT_MAX_FRAME_LEN,
            };
            let Ok(mut c) = Conn::connect(addr, Duration::from_secs(5)) else {
                failures.push(format!("{label}: connection {i} could not connect"));
                break;
            };
            let data = if len == DEFAULT_MAX_FRAME_LEN {
                4096
            } else {
                64 * 1024
            };
            let mut bytes = raw(len, &[]);
            bytes.resize(4 + data, 0x5a);
            let _ = c.send_raw(&bytes);
            if len == DEFAULT_MAX_FRAME_LEN {
                held.push(c);
            } else if !matches!(c.wait_closed(Duration::from_secs(3)), Ok(true)) {
                failures.push(format!("{label}: a length of {len:#x} was not refused"));
            }
        }
        thread::sleep(Duration::from_millis(300));
        let holding = server.rss_kib().unwrap_or(0);
        let n_held = held.len();
        drop(held);
        thread::sleep(Duration::from_millis(300));
        let after = server.rss_kib().unwrap_or(0);
        (before, holding, after, n_held)
    };
    let _ = round("warm-up", &server, &mut failures);
    trip(&mut bystander, &mut failures);
    let t = Instant::now();
    let (before, holding, after, n_held) = round("measured", &server, &mut failures);
    let took = t.elapsed();
    trip(&mut bystander, &mut failures);
    let refused = args.huge - n_held;
    // A thread per connection costs its stack pages (std): 32 KiB each.
    let budget = n_held as u64 * 32 + 1024;
    if holding.saturating_sub(before) > budget {
        failures.push(format!(
            "{n_held} connections holding 4 KiB of an 8 MiB frame made the server's RSS grow \
             by {} KiB (budget {budget} KiB)",
            holding.saturating_sub(before)
        ));
    }
    if after.saturating_sub(before) > 1024 {
        failures.push(format!(
            "after {} huge declared lengths, the server's RSS stayed {} KiB higher",
            args.huge,
            after.saturating_sub(before)
        ));
    }
    if slowest > Duration::from_millis(500) {
        failures.push(format!("a bystander round trip took {slowest:?}"));
    }
    drop(bystander);
    let (status, _) = server.terminate(Duration::from_secs(15));
    if !status.is_some_and(|s| s.success()) {
        failures.push(format!("exit after SIGTERM: {status:?}"));
    }
    // 3. Each malformed connection's close line names its reason.
    let reasons: HashMap<String, String> = server
        .lines(|l| l.contains("connection closed"))
        .iter()
        .filter_map(|l| {
            let peer = l.split(" peer=").nth(1)?.split_whitespace().next()?;
            let reason = l.split(" reason=").nth(1)?;
            Some((peer.to_owned(), reason.trim_matches('"').to_owned()))
        })
        .collect();
    let mut named = 0;
    for (peer, what, want) in &expected {
        match reasons.get(peer) {
            Some(r) if r.contains(want) => named += 1,
            Some(r) => failures.push(format!("{what}: logged reason {r:?}, expected {want:?}")),
            None => failures.push(format!("{what}: no close line for {peer}")),
        }
    }
    let figures = format!(
        "{} malformed inputs: each closed after its 2 acks, {named} logged with the reason; \
         {} huge lengths in {took:.0?}: {refused} refused at once, {n_held} held open at \
         max_frame_len with 4 KiB each: server RSS {before} KiB -> {holding} KiB ({:+} KiB, \
         {:.1} KiB per open one) -> {after} KiB after ({:+} KiB); slowest bystander round \
         trip {slowest:.1?}",
        expected.len(),
        args.huge,
        holding as i64 - before as i64,
        (holding as f64 - before as f64) / n_held.max(1) as f64,
        after as i64 - before as i64,
    );
    Ok(Row::new(CASE, a.name(), failures, figures))
}
