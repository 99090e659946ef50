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
source scripts/ring.sh
ring_init join 6
start_ring 5
write_keys "$KEYS" "$VALUE_SIZE"
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
EXTRA_PID=$!
while [ ! -e "$WORK/watch.ready" ]; do
    kill -0 "$EXTRA_PID" 2> /dev/null || { EXTRA_PID=; echo "the watcher failed"; exit 1; }
    sleep 0.1
done
echo "starting a sixth node that joins through node 2 ..."
date +%s.%N > "$WORK/watch.go.tmp"
start 5 --join "127.0.0.1:${QUIC[2]}"
mv "$WORK/watch.go.tmp" "$WORK/watch.go"
status=0
wait "$EXTRA_PID" || status=$?
EXTRA_PID=
exit "$status"
