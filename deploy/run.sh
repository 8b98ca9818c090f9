#!/usr/bin/env bash
# Three adapter-tokio servers (--proxy-protocol, 127.0.0.1:9001-9003)
# behind HAProxy on 127.0.0.1:8888, in the foreground, each with its
# Prometheus metrics on 127.0.0.1:9101-9103/metrics; Ctrl-C stops all
# four (by their PIDs). Needs haproxy (apt-get install haproxy).
#
#   deploy/run.sh [ADAPTER]        # ADAPTER: adapter-tokio (default),
#                                  # adapter-std or adapter-async-std
#   cargo run --release -p adapter-tokio -- bench --conns 60 --duration 10s
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
adapter="${1:-adapter-tokio}"
command -v haproxy >/dev/null || { echo "haproxy is not installed (apt-get install haproxy)" >&2; exit 2; }
cargo build --release -q -p "$adapter" --manifest-path "$root/Cargo.toml"
bin="$root/target/release/$adapter"
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait; }
trap stop EXIT INT TERM
for port in 9001 9002 9003; do
    "$bin" serve --addr "127.0.0.1:$port" --proxy-protocol \
        --metrics-addr "127.0.0.1:$((port + 100))" &
    pids+=($!)
done
haproxy -db -f "$root/deploy/haproxy.cfg" &
pids+=($!)
echo "deploy: $adapter x3 on 9001-9003 (metrics on 9101-9103) behind haproxy on 127.0.0.1:8888 (Ctrl-C stops them)" >&2
wait -n "${pids[@]}"
