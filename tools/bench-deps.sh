#!/usr/bin/env bash
# What `cargo xtask bench-report` compares against and needs beyond the
# Rust toolchain: Debian's redis-server (with redis-benchmark, from
# redis-tools). Installs whatever is missing; does nothing when all is there.
#
#   tools/bench-deps.sh && cargo xtask bench-report --quick
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-benchmark >/dev/null || missing+=(redis-tools)
if ((${#missing[@]})); then
    echo "bench-deps: installing ${missing[*]}" >&2
    sudo_=()
    [[ $(id -u) -eq 0 ]] || sudo_=(sudo)
    "${sudo_[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${sudo_[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi
redis-server --version
