#!/usr/bin/env bash
# Key/value speed of a local ring: starts `cairn demo` (5 nodes in one
# process, R = 3, W = Q = 2, durable writes), runs `cairn bench kv` with the
# loads below against it, prints each figure, and stops the demo.
#
#   bench/kv.sh [SECONDS]     seconds per load (default 30)
#
# Loads: 64 clients with 50% gets (the reference load), 64 clients gets only,
# 64 clients puts only, and 1 client with 50% gets (single-operation latency).
# 64-byte values, 10,000 keys, clients spread over the 5 members. The bench
# client runs on the same cores as the ring: its CPU is part of the figure.
# Cleans up the demo (by PID) and its data dir on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_LOAD=${1:-30}
# CAIRN_BIN=path uses that binary as it is (no build).
if [ -z "${CAIRN_BIN:-}" ]; then
    cargo build --release --quiet
fi
BIN=${CAIRN_BIN:-${CARGO_TARGET_DIR:-target}/release/cairn}
WORK=$(mktemp -d -t cairn-kvbench-XXXXXX)
DEMO=
cleanup() {
    if [ -n "$DEMO" ]; then
        kill "$DEMO" 2>/dev/null || true
        wait "$DEMO" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" demo --data "$WORK/data" > "$WORK/demo.out" 2> "$WORK/demo.log" &
DEMO=$!
for _ in $(seq 100); do
    grep -q "^node 4" "$WORK/demo.out" && break
    sleep 0.1
done
URL=$(awk '/^node 0:/ {print $4}' "$WORK/demo.out")
if [ -z "$URL" ]; then
    echo "bench/kv.sh: the demo did not start; its log:" >&2
    cat "$WORK/demo.log" >&2
    exit 1
fi
echo "ring: cairn demo (5 nodes), first node $URL; $(nproc) cores"
run() {
    echo "== bench kv $*"
    "$BIN" --node "$URL" bench kv --value-size 64 --keys 10000 "$@" 2>&1 \
        | grep -E "put:|get:|failed" | grep -v " 0 ops/s"
}
run --clients 64 --seconds "$SECONDS_PER_LOAD" --get-percent 50
run --clients 64 --seconds "$SECONDS_PER_LOAD" --get-percent 100
run --clients 64 --seconds "$SECONDS_PER_LOAD" --get-percent 0
run --clients 1 --seconds "$SECONDS_PER_LOAD" --get-percent 50
