//! The connection state machines alone, no sockets: what the core costs
//! per request, which bounds what any adapter can reach.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocol::{
    AckResult, ClientConfig, ClientConnection, MessageId, RequestKind, ServerConfig,
    ServerConnection, encode_ack, encode_request,
};

fn server_round(c: &mut Criterion) {
    let mut g = c.benchmark_group("server_connection");
    g.measurement_time(Duration::from_secs(3));
    for depth in [1usize, 16, 64] {
        let mut input = BytesMut::new();
        for i in 0..depth {
            let id = MessageId::from_counter(i as u32 + 1);
            encode_request(RequestKind::Submit, &id, &[b'x'; 32], &mut input, 1 << 20).unwrap();
        }
        g.throughput(Throughput::Elements(depth as u64));
        g.bench_function(format!("read_answer_write_32B_x{depth}"), |b| {
            let now = Instant::now();
            let mut conn = ServerConnection::new(ServerConfig::default(), now);
            let mut out = BytesMut::with_capacity(64 * 1024);
            b.iter(|| {
                conn.handle_input(&input, now);
                while let Some(req) = conn.poll_event() {
                    black_box(&req.payload);
                    conn.respond(req.handle, AckResult::OK, now).unwrap();
                }
                out.clear();
                black_box(conn.poll_transmit(&mut out, now));
            });
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
        let mut conn = ClientConnection::new(ClientConfig::default(), now);
        let mut out = BytesMut::with_capacity(64 * 1024);
        let mut acks = BytesMut::with_capacity(64 * 1024);
        b.iter(|| {
            acks.clear();
            for _ in 0..depth {
                let id = conn.submit(&[b'x'; 32], now).unwrap();
                encode_ack(RequestKind::Submit, &id, AckResult::OK, &mut acks);
            }
            out.clear();
            conn.poll_transmit(&mut out, now);
            conn.handle_input(&acks, now);
            while let Some(ack) = conn.poll_event() {
                black_box(ack);
            }
        });
    });
    g.finish();
}

criterion_group!(benches, server_round, client_round);
criterion_main!(benches);
