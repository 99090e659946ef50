# Shared by scripts/rereplication.sh and scripts/join.sh (sourced, not run):
# a ring of real `cairn node` processes on 127.0.0.1 in a temporary
# directory, cleaned up on exit (every process started, by PID).
#
#   ring_init NAME NODES   build the release binary, make $WORK, pick ports for NODES nodes
#   start I [FLAGS...]     start node I (log in $WORK/nI.log)
#   start_ring N           start nodes 0..N-1, joined through node 0; wait until N are alive
#   write_keys KEYS SIZE   write KEYS keys of SIZE bytes through node 0 (`cairn bench kv`)
#   records I              the records node I's store holds
#   members                the alive members node 0's ring walk finds
#   EXTRA_PID=PID          one more process the cleanup kills (a load, a watcher)
#
# KEEP=1 keeps the logs and data dirs.

ring_init() {
    local name=$1 nodes=$2
    cargo build --release --quiet
    BIN=${CARGO_TARGET_DIR:-target}/release/cairn
    WORK=$(mktemp -d -t "cairn-$name-XXXXXX")
    PIDS=()
    EXTRA_PID=
    trap ring_cleanup EXIT
    QUIC=(); HTTP=()
    for _ in $(seq "$nodes"); do QUIC+=("$(free_port)"); HTTP+=("$(free_port)"); done
}

ring_cleanup() {
    [ -n "$EXTRA_PID" ] && kill -9 "$EXTRA_PID" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then echo "logs and data kept in $WORK"; else rm -rf "$WORK"; fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() {
    local i=$1; shift
    "$BIN" node --listen "127.0.0.1:${QUIC[$i]}" --http "127.0.0.1:${HTTP[$i]}" \
        --data "$WORK/n$i" "$@" > "$WORK/n$i.log" 2>&1 &
    PIDS[$i]=$!
}

records() { curl -sf --max-time 2 "http://127.0.0.1:${HTTP[$1]}/v1/node" | python3 -c 'import json,sys; print((json.load(sys.stdin).get("stored") or {}).get("records", 0))' 2>/dev/null || echo 0; }
members() { curl -sf --max-time 5 "http://127.0.0.1:${HTTP[0]}/v1/ring" | python3 -c 'import json,sys; print(sum(m["state"]=="alive" for m in json.load(sys.stdin)["members"]))' 2>/dev/null || echo 0; }

start_ring() {
    local n=$1 i
    start 0
    for i in $(seq 1 $((n - 1))); do
        for _ in $(seq 100); do curl -sf "http://127.0.0.1:${HTTP[0]}/v1/node" > /dev/null && break; sleep 0.1; done
        start "$i" --join "127.0.0.1:${QUIC[0]}"
    done
    for _ in $(seq 300); do [ "$(members)" = "$n" ] && break; sleep 0.2; done
}

write_keys() {
    local keys=$1 size=$2 begun
    echo "ring of $(members) nodes; writing $keys keys ($size-byte values) ..."
    begun=$(date +%s.%N)
    "$BIN" --node "http://127.0.0.1:${HTTP[0]}" bench kv --keys "$keys" --seconds 1 --get-percent 100 \
        --clients 64 --value-size "$size" > "$WORK/write.out" 2>&1
    echo "  written in $(python3 -c "print(f'{$(date +%s.%N) - $begun:.1f}')") s"
}
