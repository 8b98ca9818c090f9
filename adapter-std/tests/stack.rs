//! Each connection thread runs on the configured small stack (64 KiB by
//! default, not Rust's 2 MiB or a main thread's 8 MiB), and a server
//! serves 300 connections at once on them. Its own test binary, so the
//! thread and memory figures are this test's alone.

use adapter_std::Served as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use adapter_std::{DEFAULT_STACK_SIZE, Server, ServerOptions};
use conformance::Endpoint;
use conformance::support::TestClient;
use protocol::{AckResult, Request};

/// The size of the mapping in /proc/self/maps that holds `addr`.
fn mapping_size(addr: usize) -> Option<usize> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        let range = line.split_whitespace().next()?;
        let (lo, hi) = range.split_once('-')?;
        let lo = usize::from_str_radix(lo, 16).ok()?;
        let hi = usize::from_str_radix(hi, 16).ok()?;
        (lo <= addr && addr < hi).then_some(hi - lo)
    })
}

fn status_field(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(name)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
}

#[test]
fn three_hundred_connections_at_once_each_on_a_64_kib_stack() {
    const CONNS: usize = 300;
    let largest_stack = Arc::new(AtomicUsize::new(0));
    let probes = Arc::new(AtomicUsize::new(0));
    let (largest, seen) = (Arc::clone(&largest_stack), Arc::clone(&probes));
    assert_eq!(DEFAULT_STACK_SIZE, 64 * 1024);
    let server = Server::bind(
        &Endpoint::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
        ServerOptions::default(),
        move |req: &Request| {
            if &req.payload[..] == b"probe" {
                // A local lives on this connection thread's stack: the
                // mapping around it is that stack.
                let local = 0u8;
                let here = std::ptr::addr_of!(local) as usize;
                if let Some(size) = mapping_size(here) {
                    largest.fetch_max(size, Ordering::Relaxed);
                    seen.fetch_add(1, Ordering::Relaxed);
                }
            }
            AckResult::OK
        },
    )
    .unwrap()
    .spawn()
    .unwrap();
    let endpoint = server.local_endpoint().clone();
    let threads_before = status_field("Threads:");
    let rss_before = status_field("VmRSS:");

    let mut clients: Vec<TestClient> = (0..CONNS)
        .map(|i| TestClient::connect(&endpoint, format!("client {i}")))
        .collect();
    for c in &mut clients {
        c.round_trip(b"probe");
    }
    assert_eq!(server.totals().open_now(), CONNS as u64);
    let threads = status_field("Threads:") - threads_before;
    assert!(
        threads >= CONNS as u64,
        "{threads} threads for {CONNS} connections"
    );
    let rss_kib = status_field("VmRSS:").saturating_sub(rss_before);
    // Every connection is served again while all are open.
    for c in &mut clients {
        c.round_trip(b"again");
    }

    let largest = largest_stack.load(Ordering::Relaxed);
    assert_eq!(probes.load(Ordering::Relaxed), CONNS);
    assert!(
        largest <= 128 * 1024,
        "a connection thread's stack mapping is {largest} bytes; 64 KiB were asked"
    );
    eprintln!(
        "{CONNS} connections: {threads} more threads, stack mapping {} KiB, RSS +{rss_kib} KiB \
         ({} KiB per connection, client sockets included)",
        largest / 1024,
        rss_kib / CONNS as u64
    );
    drop(clients);
    server.shutdown().unwrap();
}
