#!/usr/bin/env bash
# Requests per second through HAProxy (TCP mode, send-proxy-v2, one
# `serve --proxy-protocol` backend) against the same adapter's server
# reached directly, at 50 connections x pipeline 16, 32 B payloads: RUNS
# interleaved runs of SECONDS each (direct, then through HAProxy), a
# markdown table on stdout with each run's ratio and the medians. The
# servers, HAProxy and the load client share this machine's cores, so
# HAProxy's own CPU is part of what the ratio shows. Needs haproxy.
#
#   deploy/bench.sh [ADAPTER] [RUNS] [SECONDS]   # adapter-tokio 3 5
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
adapter="${1:-adapter-tokio}"
runs="${2:-3}"
seconds="${3:-5}"
command -v haproxy >/dev/null || { echo "haproxy is not installed (apt-get install haproxy)" >&2; exit 2; }
echo "deploy/bench.sh: building $adapter (and adapter-tokio, the load client) in release mode" >&2
cargo build --release -q -p "$adapter" -p adapter-tokio --manifest-path "$root/Cargo.toml"
bin="$root/target/release/$adapter"
load="$root/target/release/adapter-tokio"
tmp="$(mktemp -d)"
pids=()
stop() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap stop EXIT INT TERM

# A loopback port nothing listens on.
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 20000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}
wait_accepting() { # PORT WHAT
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return
        sleep 0.1
    done
    echo "deploy/bench.sh: $2 does not accept on 127.0.0.1:$1 after 10 s" >&2
    exit 1
}

direct=$(free_port)
"$bin" serve --addr "127.0.0.1:$direct" 2>"$tmp/direct.log" &
pids+=($!)
backend=$(free_port)
"$bin" serve --addr "127.0.0.1:$backend" --proxy-protocol 2>"$tmp/backend.log" &
pids+=($!)
front=$(free_port)
cat >"$tmp/haproxy.cfg" <<EOF
global
    maxconn 1000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1m
    timeout server 1m
frontend lenproto
    bind 127.0.0.1:$front
    default_backend servers
backend servers
    server s1 127.0.0.1:$backend send-proxy-v2
EOF
haproxy -db -f "$tmp/haproxy.cfg" 2>"$tmp/haproxy.log" &
pids+=($!)
wait_accepting "$direct" "$adapter serve"
wait_accepting "$backend" "$adapter serve --proxy-protocol"
wait_accepting "$front" "haproxy"

rate() { # PORT: req/s of one run
    "$load" bench --addr "127.0.0.1:$1" --conns 50 --pipeline 16 --payload 32 \
        --warmup 1s --duration "${seconds}s" --json |
        sed -n 's/.*"req_per_s":\([0-9.]*\).*/\1/p'
}

echo "| run | direct req/s | through HAProxy req/s | HAProxy / direct |"
echo "|---:|---:|---:|---:|"
d_all=() h_all=() r_all=()
for run in $(seq "$runs"); do
    echo "deploy/bench.sh: run $run/$runs: direct, then through haproxy (${seconds} s each)" >&2
    d=$(rate "$direct")
    h=$(rate "$front")
    r=$(awk -v h="$h" -v d="$d" 'BEGIN { printf "%.3f", h / d }')
    d_all+=("$d") h_all+=("$h") r_all+=("$r")
    printf '| %d | %.0f | %.0f | %sx |\n' "$run" "$d" "$h" "$r"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf '| median | %.0f | %.0f | %sx |\n' "$(median "${d_all[@]}")" "$(median "${h_all[@]}")" "$(median "${r_all[@]}")"
echo
echo "$adapter, 50 conns x pipeline 16, 32 B, $runs run(s) of $seconds s after a 1 s warmup; $(nproc) CPUs shared by the server, HAProxy $(haproxy -v | sed -n 's/^HAProxy version \([^ ]*\).*/\1/p') and the load client."
