#!/usr/bin/env bash
# Re-replication after a double crash: starts 5 `cairn node` processes on
# 127.0.0.1 (R = 3), writes KEYS keys (default 100000) through them, SIGKILLs
# two neighbouring nodes, and measures the time until every key is on 3 live
# nodes again. With 3 survivors and R = 3, that is when each survivor's store
# holds every key (`GET /v1/node` -> stored.records = KEYS).
#
# Usage: scripts/rereplication.sh [KEYS]   (builds the release binary first;
# KEEP=1 keeps the nodes' logs and data dirs)
# Cleans up the nodes it started (by PID) and its temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${1:-100000}
cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/cairn
WORK=$(mktemp -d -t cairn-rerep-XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then echo "logs and data kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

QUIC=(); HTTP=()
for i in 0 1 2 3 4; do QUIC+=("$(free_port)"); HTTP+=("$(free_port)"); done
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
echo "ring of $(members) nodes; writing $KEYS keys (64-byte values) ..."
start_write=$(date +%s.%N)
"$BIN" --node "http://127.0.0.1:${HTTP[0]}" bench kv --keys "$KEYS" --seconds 1 --get-percent 100 --clients 64 > "$WORK/write.out" 2>&1
echo "  written in $(python3 -c "print(f'{$(date +%s.%N) - $start_write:.1f}')") s"
total=0
for i in 0 1 2 3 4; do total=$((total + $(records "$i"))); done
echo "  records on the 5 nodes: $total (3 x $KEYS = $((3 * KEYS)))"

# The ring's order: kill two neighbours (by id order) so that some keys lose 2 of 3 copies.
order=$(for i in 0 1 2 3 4; do curl -sf "http://127.0.0.1:${HTTP[$i]}/v1/node" | python3 -c "import json,sys; print(json.load(sys.stdin)['id'], $i)"; done | sort | awk '{print $2}')
read -r -a ring <<< "$(echo $order)"
a=${ring[1]}; b=${ring[2]}
kill -9 "${PIDS[$a]}" "${PIDS[$b]}"
killed=$(date +%s.%N)
echo "SIGKILLed nodes $a and $b (neighbours); waiting for every key on the 3 survivors ..."
survivors=()
for i in 0 1 2 3 4; do [ "$i" != "$a" ] && [ "$i" != "$b" ] && survivors+=("$i"); done
while true; do
    counts=()
    done_all=1
    for i in "${survivors[@]}"; do
        c=$(records "$i"); counts+=("$c")
        [ "$c" -ge "$KEYS" ] || done_all=0
    done
    elapsed=$(python3 -c "print(f'{$(date +%s.%N) - $killed:.1f}')")
    if [ "$done_all" = 1 ]; then
        echo "every key on 3 live nodes ${elapsed} s after the kills (records per survivor: ${counts[*]})"
        break
    fi
    if python3 -c "import sys; sys.exit(0 if $elapsed > ${DEADLINE:-300} else 1)"; then
        echo "NOT re-replicated ${DEADLINE:-300} s after the kills (records per survivor: ${counts[*]})"; exit 1
    fi
    [ "${VERBOSE:-0}" = 1 ] && echo "  ${elapsed} s: ${counts[*]}"
    sleep 0.5
done
