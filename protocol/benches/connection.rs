//! The connection state machines alone, no sockets: what the core costs
//! per request, which bounds what any adapter can reach.
//!
//! - `server_connection/read_answer_write_32B_x{1,16,64}`: `depth` 32-byte
//!   Submits copied in with `handle_input`, each request event answered,
//!   the acks copied out of `transmit_buf` (as a socket write copies them)
//!   and reported with `handle_written`. Throughput in requests.
//! - `client_connection/submit_write_read_ack_32B_x16`: 16 `submit`s, the
//!   requests copied out of `transmit_buf` + `handle_written`, their 16
//!   acks fed back with `handle_input` and polled as events.
//!
//! `cargo bench -p protocol --bench connection`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocol::{
    AckResult, ClientConfig, ClientConnection, ClientEvent, MessageId, RequestKind, ServerConfig,
    ServerConnection, ServerEvent, encode_ack, encode_request,
};

fn server_round(c: &mut Criterion) {
    let mut g = c.benchmark_group("server_connection");
    g.measurement_time(Duration::from_secs(3));
    for depth in [1usize, 16, 64] {
        let mut input = BytesMut::new();
        for i in 0..depth {
            let id = MessageId::from_counter(i as u32 + 1);
            encode_request(RequestKind::Submit, &id, &[b'x'; 32], 1 << 20, &mut input).unwrap();
        }
        g.throughput(Throughput::Elements(depth as u64));
        g.bench_function(format!("read_answer_write_32B_x{depth}"), |b| {
            let now = Instant::now();
            let mut conn = ServerConnection::new(ServerConfig::default(), now);
            let mut out = BytesMut::with_capacity(64 * 1024);
            b.iter(|| {
                conn.handle_input(&input, now);
                while let Some(event) = conn.poll_event() {
                    let ServerEvent::Request(req) = event else {
                        panic!("the connection ended: {event:?}")
                    };
                    black_box(&req.payload);
                    conn.respond(req.handle, AckResult::OK, now).unwrap();
                }
                out.clear();
                out.extend_from_slice(conn.transmit_buf());
                conn.handle_written(out.len(), now);
                black_box(&out);
            });
            assert!(conn.transmit_buf().is_empty() && !conn.is_closed());
        });
    }
    g.finish();
}

fn client_round(c: &mut Criterion) {
    let mut g = c.benchmark_group("client_connection");
    g.measurement_time(Duration::from_secs(3));
    let depth = 16usize;
    g.throughput(Throughput::Elements(depth as u64));
    g.bench_function("submit_write_read_ack_32B_x16", |b| {
        let now = Instant::now();
        let mut conn = ClientConnection::new(ClientConfig::default());
        let mut out = BytesMut::with_capacity(64 * 1024);
        let mut acks = BytesMut::with_capacity(64 * 1024);
        b.iter(|| {
            acks.clear();
            for _ in 0..depth {
                let id = conn.submit(&[b'x'; 32], now).unwrap();
                encode_ack(RequestKind::Submit, &id, AckResult::OK, &mut acks);
            }
            out.clear();
            out.extend_from_slice(conn.transmit_buf());
            conn.handle_written(out.len(), now);
            black_box(&out);
            conn.handle_input(&acks, now);
            while let Some(event) = conn.poll_event() {
                let ClientEvent::Ack(ack) = event else {
                    panic!("the connection ended: {event:?}")
                };
                black_box(ack);
            }
        });
        assert_eq!(conn.in_flight(), 0);
        assert!(!conn.is_closed());
    });
    g.finish();
}

criterion_group!(benches, server_round, client_round);
criterion_main!(benches);
