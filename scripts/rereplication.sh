#!/usr/bin/env bash
# Re-replication after a double crash: starts 5 `cairn node` processes on
# 127.0.0.1 (R = 3), writes KEYS keys (default 100000) through them, SIGKILLs
# two neighbouring nodes, and measures the time until every key is on 3 live
# nodes again. With 3 survivors and R = 3, that is when each survivor's store
# holds every key (`GET /v1/node` -> stored.records = KEYS).
#
# Foreground latency (FG=0 skips it): before the kills, a baseline
# `cairn bench kv` (FG_CLIENTS=16 clients, 64-byte values, 50% gets,
# FG_SECONDS=8 s, over FG_KEYS=1000 of the keys) through one node that
# survives (--through-one); from the moment of the kills, the same load
# again through the same survivor while the repair goes on. Prints the put
# and get p99 of both and their ratio next to the repair time.
#
# Usage: scripts/rereplication.sh [KEYS]   (builds the release binary first;
# KEEP=1 keeps the nodes' logs and data dirs, VERBOSE=1 shows the polls)
# Cleans up the processes it started (by PID) and its temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${1:-100000}
source scripts/ring.sh
ring_init rerep 5
start_ring 5
write_keys "$KEYS" 64
total=0
for i in 0 1 2 3 4; do total=$((total + $(records "$i"))); done
echo "  records on the 5 nodes: $total (3 x $KEYS = $((3 * KEYS)))"

# The ring's order: kill two neighbours (by id order) so that some keys lose 2 of 3 copies.
order=$(for i in 0 1 2 3 4; do curl -sf "http://127.0.0.1:${HTTP[$i]}/v1/node" | python3 -c "import json,sys; print(json.load(sys.stdin)['id'], $i)"; done | sort | awk '{print $2}')
read -r -a ring <<< "$(echo $order)"
a=${ring[1]}; b=${ring[2]}
# The foreground load goes through the survivor right after the two victims:
# it becomes the owner of their keys and pushes them to its new replicas.
FG=${FG:-1}
FG_NODE=${ring[3]}
FG_KEYS=${FG_KEYS:-$(( KEYS < 1000 ? KEYS : 1000 ))}
fg_load() {
    "$BIN" --node "http://127.0.0.1:${HTTP[$FG_NODE]}" bench kv --through-one \
        --clients "${FG_CLIENTS:-16}" --value-size 64 --get-percent 50 \
        --keys "$FG_KEYS" --seconds "${FG_SECONDS:-8}" "$@"
}
if [ "$FG" = 1 ]; then
    echo "baseline: ${FG_CLIENTS:-16} clients, ${FG_SECONDS:-8} s, 50% gets, $FG_KEYS keys, through node $FG_NODE (a survivor) ..."
    fg_load > "$WORK/fg-baseline.out" 2> "$WORK/fg-baseline.err"
    sed 's/^/  /' "$WORK/fg-baseline.out"
fi
kill -9 "${PIDS[$a]}" "${PIDS[$b]}"
killed=$(date +%s.%N)
if [ "$FG" = 1 ]; then
    # The same load at once (its keys are there: no preload), while the repair goes on.
    fg_load --no-preload > "$WORK/fg-repair.out" 2> "$WORK/fg-repair.err" &
    EXTRA_PID=$!
fi
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
        repair=$elapsed
        echo "every key on 3 live nodes ${elapsed} s after the kills (records per survivor: ${counts[*]})"
        break
    fi
    if python3 -c "import sys; sys.exit(0 if $elapsed > ${DEADLINE:-300} else 1)"; then
        echo "NOT re-replicated ${DEADLINE:-300} s after the kills (records per survivor: ${counts[*]})"; exit 1
    fi
    [ "${VERBOSE:-0}" = 1 ] && echo "  ${elapsed} s: ${counts[*]}"
    sleep 0.5
done

[ "$FG" = 1 ] || exit 0
if ! wait "$EXTRA_PID"; then
    EXTRA_PID=
    echo "the foreground load during the repair failed:"; cat "$WORK/fg-repair.err"; exit 1
fi
EXTRA_PID=
echo "foreground load during the repair (from the kills, ${FG_SECONDS:-8} s):"
sed 's/^/  /' "$WORK/fg-repair.out"
python3 - "$WORK/fg-baseline.out" "$WORK/fg-repair.out" "$repair" "$KEYS" "${FG_SECONDS:-8}" <<'EOF'
import re, sys
def figures(path):
    text = open(path).read()
    p99 = {op: float(ms) for op, ms in re.findall(r"(put|get):.*?p99 ([0-9.]+) ms", text)}
    failed = int(re.search(r"failed: (\d+)", text).group(1))
    return p99, failed
(base, base_failed), (during, during_failed) = figures(sys.argv[1]), figures(sys.argv[2])
repair, keys, window = float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
print(f"summary: {keys} keys back on 3 live nodes {repair:.1f} s after 2 of 5 nodes crashed (target < 10 s)")
for op in ("put", "get"):
    ratio = during[op] / base[op] if base[op] else float("inf")
    print(f"  {op} p99: baseline {base[op]:.2f} ms, during repair {during[op]:.2f} ms, ratio {ratio:.2f} (target <= 2)")
print(f"  failed ops: baseline {base_failed}, during repair {during_failed} (not in the percentiles)")
if repair > window:
    print(f"  (the load covered the first {window:.0f} s of the {repair:.1f} s repair)")
EOF
