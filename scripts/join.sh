#!/usr/bin/env bash
# A sixth node joins a ring of 5 holding KEYS keys (default 1000000): starts 5
# `cairn node` processes on 127.0.0.1 (R = 3), writes KEYS keys with 64-byte
# values through them (`cairn bench kv`, as scripts/rereplication.sh does),
# starts a sixth node that joins, and measures:
# - the time from its start until it holds its whole range: its
#   stored.records equals the number of bench keys whose replica set includes
#   it (computed from the ring's ids: the keys in (its 3rd predecessor,
#   itself]), its own `held` range is that range, and both still hold on a
#   re-check (see scripts/join_watch.py);
# - the records and bytes replication moved to it (`GET /v1/node` ->
#   received) against the key + value bytes it must hold.
#
# Usage: scripts/join.sh [KEYS]   (builds the release binary first; needs
# python3 with the blake3 module: pip install blake3; KEEP=1 keeps the nodes'
# logs and data dirs, VERBOSE=1 shows every poll)
# Cleans up the processes it started (by PID) and its temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${1:-1000000}
VALUE_SIZE=64
python3 -c 'import blake3' 2> /dev/null || { echo "needs the python blake3 module: pip install blake3"; exit 2; }
cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/cairn
WORK=$(mktemp -d -t cairn-join-XXXXXX)
PIDS=()
WATCH_PID=
cleanup() {
    [ -n "$WATCH_PID" ] && kill -9 "$WATCH_PID" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then echo "logs and data kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

QUIC=(); HTTP=()
for i in 0 1 2 3 4 5; do QUIC+=("$(free_port)"); HTTP+=("$(free_port)"); done
start() {
    local i=$1; shift
    "$BIN" node --listen "127.0.0.1:${QUIC[$i]}" --http "127.0.0.1:${HTTP[$i]}" \
        --data "$WORK/n$i" "$@" > "$WORK/n$i.log" 2>&1 &
    PIDS[$i]=$!
}
start 0
for i in 1 2 3 4; do
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:${HTTP[0]}/v1/node" > /dev/null && break; sleep 0.1; done
    start "$i" --join "127.0.0.1:${QUIC[0]}"
done
records() { curl -sf --max-time 2 "http://127.0.0.1:${HTTP[$1]}/v1/node" | python3 -c 'import json,sys; print((json.load(sys.stdin).get("stored") or {}).get("records", 0))' 2>/dev/null || echo 0; }
members() { curl -sf --max-time 5 "http://127.0.0.1:${HTTP[0]}/v1/ring" | python3 -c 'import json,sys; print(sum(m["state"]=="alive" for m in json.load(sys.stdin)["members"]))' 2>/dev/null || echo 0; }
for _ in $(seq 300); do [ "$(members)" = 5 ] && break; sleep 0.2; done
echo "ring of $(members) nodes; writing $KEYS keys ($VALUE_SIZE-byte values) ..."
start_write=$(date +%s.%N)
"$BIN" --node "http://127.0.0.1:${HTTP[0]}" bench kv --keys "$KEYS" --seconds 1 --get-percent 100 \
    --clients 64 --value-size "$VALUE_SIZE" > "$WORK/write.out" 2>&1
echo "  written in $(python3 -c "print(f'{$(date +%s.%N) - $start_write:.1f}')") s"
# Every key on its 3 replicas before the join, so that the join alone is measured.
for _ in $(seq 600); do
    total=0
    for i in 0 1 2 3 4; do total=$((total + $(records "$i"))); done
    [ "$total" -ge $((3 * KEYS)) ] && break
    sleep 0.5
done
echo "  records on the 5 nodes: $total (3 x $KEYS = $((3 * KEYS)))"

old=$(for i in 0 1 2 3 4; do printf '127.0.0.1:%s,' "${HTTP[$i]}"; done)
python3 scripts/join_watch.py "$KEYS" "$VALUE_SIZE" "127.0.0.1:${HTTP[5]}" "${old%,}" \
    "$WORK/watch.ready" "$WORK/watch.go" &
WATCH_PID=$!
while [ ! -e "$WORK/watch.ready" ]; do
    kill -0 "$WATCH_PID" 2> /dev/null || { WATCH_PID=; echo "the watcher failed"; exit 1; }
    sleep 0.1
done
echo "starting a sixth node that joins through node 2 ..."
date +%s.%N > "$WORK/watch.go.tmp"
start 5 --join "127.0.0.1:${QUIC[2]}"
mv "$WORK/watch.go.tmp" "$WORK/watch.go"
status=0
wait "$WATCH_PID" || status=$?
WATCH_PID=
exit "$status"
