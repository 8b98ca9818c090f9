#!/usr/bin/env bash
# TLS figures for issue 13, from the release binaries: TLS vs plain req/s
# and server CPU per request (1x1, 50x1, 50x16), new connections per second
# with one Submit each (--churn: a full handshake each over TLS), and RSS
# per idle connection at 1,000 connections. The load generator is
# `adapter-tokio bench` on the same machine; every server is started here
# on a loopback port and stopped by its PID.
#
#   cargo build --release -p adapter-tokio -p adapter-std
#   tools/tls-figures/run.sh [ROUNDS]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="$root/target/release"
load="$bin/adapter-tokio"
rounds="${1:-2}"
dir="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT

# A CA and a server certificate for localhost / 127.0.0.1 (openssl).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" -days 1 -subj /CN=figures-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/key.pem" -out "$dir/srv.csr" -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$dir/ext.cnf"
openssl x509 -req -in "$dir/srv.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
    -CAcreateserial -out "$dir/cert.pem" -days 1 -extfile "$dir/ext.cnf" 2>/dev/null

port=$((20000 + RANDOM % 20000))
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; } # clock ticks (100/s)

start() { # adapter mode -> pid in $server, its port in $port
    local tls=()
    [[ $2 == tls ]] && tls=(--tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem")
    for _ in 1 2 3 4 5; do # a port another process holds: the next one
        port=$((port + 1))
        "$bin/$1" serve --addr "127.0.0.1:$port" --log-level warn "${tls[@]}" >/dev/null 2>&1 &
        server=$!
        pids+=("$server")
        for _ in $(seq 50); do
            kill -0 "$server" 2>/dev/null || break
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return
            sleep 0.05
        done
        kill "$server" 2>/dev/null || true
    done
    echo "the $1 server did not start" >&2
    exit 1
}

load() { # mode bench-args... -> json
    local mode=$1
    shift
    local tls=()
    [[ $mode == tls ]] && tls=(--tls-ca "$dir/ca.pem")
    "$load" bench --addr "127.0.0.1:$port" --json "${tls[@]}" "$@" 2>/dev/null
}

echo "== req/s and server CPU per request (3 s per run, $rounds round(s))"
for _ in $(seq "$rounds"); do
    for adapter in adapter-tokio adapter-std; do
        for point in "1 1" "50 1" "50 16"; do
            read -r conns pipeline <<<"$point"
            for mode in plain tls; do
                start "$adapter" "$mode"
                t0=$(cpu "$server")
                out=$(load "$mode" --conns "$conns" --pipeline "$pipeline" --duration 3s)
                t1=$(cpu "$server")
                kill "$server"
                wait "$server" 2>/dev/null || true
                python3 -c "import json,sys; d=json.loads(sys.argv[1]); print('%-14s %-6s %-5s %10.0f req/s %7.2f us/req' % (sys.argv[2], sys.argv[3], sys.argv[4], d['ok']/d['elapsed_s'], (int(sys.argv[6])-int(sys.argv[5]))*10000.0/max(d['ok'],1)))" \
                    "$out" "$adapter" "${conns}x${pipeline}" "$mode" "$t0" "$t1"
            done
        done
    done
done

echo "== new connections per second, one Submit each (8 connecting tasks, 3 s)"
for adapter in adapter-tokio adapter-std; do
    for mode in plain tls; do
        start "$adapter" "$mode"
        t0=$(cpu "$server")
        out=$(load "$mode" --conns 8 --churn --duration 3s)
        t1=$(cpu "$server")
        kill "$server"
        wait "$server" 2>/dev/null || true
        python3 -c "import json,sys; d=json.loads(sys.argv[1]); print('%-14s %-5s %8.0f connections/s  server CPU %6.1f us/connection  clean=%s' % (sys.argv[2], sys.argv[3], d['ok']/d['elapsed_s'], (int(sys.argv[5])-int(sys.argv[4]))*10000.0/max(d['ok'],1), d['clean']))" \
            "$out" "$adapter" "$mode" "$t0" "$t1"
    done
done

echo "== RSS per idle connection at 1,000 connections (each after one Submit)"
for adapter in adapter-tokio adapter-std; do
    for mode in plain tls; do
        start "$adapter" "$mode"
        python3 "$root/tools/tls-figures/idle.py" "$port" 1000 "$server" "$mode" "$dir/ca.pem" |
            sed "s/^/$adapter /"
        kill "$server"
        wait "$server" 2>/dev/null || true
    done
done
