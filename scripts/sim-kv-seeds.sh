#!/usr/bin/env bash
# Runs the N = 1000 churn scenario with puts, gets and deletes over seeds
# FIRST..LAST (default 1..100), one release run per seed, and prints a line
# per seed and a summary read from each run's --json report.
#
#   sim-kv-seeds.sh [FIRST [LAST]] [cairn-sim flags...]
#   sim-kv-seeds.sh 1 3 --loss 0.01
#
# Flags after the seeds go to cairn-sim as they are (e.g. --loss 0.01,
# --latency-max 200ms); flags the scenario below sets cannot be given again.
# Uses $CARGO_TARGET_DIR if set. Needs python3 (to read the JSON).
#
# Exit status: 0 if no seed lost an acknowledged write or resurrected a
# deleted key and every ring was correct at the end; 1 otherwise; 2 for a
# usage or setup error.
set -euo pipefail

first=1
last=100
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
    first=$1
    shift
    if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
        last=$1
        shift
    fi
fi
if ((first > last)); then
    echo "sim-kv-seeds: FIRST ($first) is after LAST ($last)" >&2
    exit 2
fi
if ! command -v python3 >/dev/null; then
    echo "sim-kv-seeds: python3 is needed to read the JSON reports" >&2
    exit 2
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --release -q -p cairn-sim)
sim=$target/release/cairn-sim

# The scenario: 1000 nodes, sessions of mean 1 h for 10 min, 5,000 lookups,
# 20,000 puts, 2,000 deletes and 10,000 gets during churn.
scenario=(--nodes 1000 --churn-mean 1h --duration 10m --lookups 5000
    --puts 20000 --deletes 2000 --gets 10000)

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# One line per report (mode "line"), or the summary of them all ("summary").
summarize() {
    python3 - "$@" <<'PY'
import json, sys

mode, files = sys.argv[1], sys.argv[2:]

def load(path):
    with open(path) as f:
        return json.load(f)

def acked(kv):
    return kv["ops"]["puts_acked"] + kv["ops"]["deletes_acked"]

if mode == "line":
    r = load(files[0])
    kv, under = r["kv"], r["kv"]["under_r"]
    ring = "ring ok" if r["violation"] is None else "RING BROKEN"
    print(
        f"seed {r['seed']:>4}: {acked(kv):>6} acked writes, lost {kv['lost']}, "
        f"resurrected {kv['resurrected']}, under R at end {kv['under_replicated']}; "
        f"gets {kv['ops']['gets_answered']} ({kv['ops']['gets_stale']} stale, "
        f"{kv['ops']['gets_failed']} failed); behind an earlier write "
        f"{kv['ops']['writes_behind_earlier']} ({kv['ops']['deletes_behind_earlier']} deletes); "
        f"under R {under['key_seconds']:.0f} key-s, longest {under['episode_max_s']:.0f} s; "
        f"repair {r['churn_repair']['bytes_per_node_per_s']:.1f} B/node/s; {ring}; "
        f"{r['wall_seconds']:.0f} s wall"
    )
    sys.exit(0)

reports = [load(p) for p in files]
n = len(reports)
kvs = [r["kv"] for r in reports]
total = lambda f: sum(f(kv) for kv in kvs)
key_seconds = [kv["under_r"]["key_seconds"] for kv in kvs]
repair = [r["churn_repair"]["bytes_per_node_per_s"] for r in reports]
lost = total(lambda kv: kv["lost"])
resurrected = total(lambda kv: kv["resurrected"])
broken = sum(r["violation"] is not None for r in reports)
print(f"seeds run: {n}")
print(f"acknowledged writes: {total(acked)} "
      f"({total(lambda kv: kv['ops']['puts_acked'])} puts, "
      f"{total(lambda kv: kv['ops']['deletes_acked'])} deletes); indeterminate: "
      f"{total(lambda kv: kv['ops']['puts_failed'] + kv['ops']['puts_unanswered'] + kv['ops']['deletes_failed'] + kv['ops']['deletes_unanswered'])}")
print(f"lost: {lost} (must be 0)")
print(f"resurrected: {resurrected} (must be 0)")
print(f"under-replicated at the end: {total(lambda kv: kv['under_replicated'])}")
print(f"gets: {total(lambda kv: kv['ops']['gets_answered'])} answered, "
      f"{total(lambda kv: kv['ops']['gets_stale'])} stale, "
      f"{total(lambda kv: kv['ops']['gets_failed'])} failed")
print(f"acknowledged writes behind an earlier acknowledged write (clock skew): "
      f"{total(lambda kv: kv['ops']['writes_behind_earlier'])}, of which "
      f"{total(lambda kv: kv['ops']['deletes_behind_earlier'])} deletes")
if n:
    longest = max(kv["under_r"]["episode_max_s"] for kv in kvs)
    print(f"time under R copies: mean {sum(key_seconds) / n:.0f} key-seconds per seed, "
          f"max {max(key_seconds):.0f}; longest episode {longest:.0f} s "
          f"(sampled every {kvs[0]['under_r']['sample_every_s']:.0f} s)")
    print(f"repair traffic during churn: mean {sum(repair) / n:.1f} B/node/s, max {max(repair):.1f}")
print(f"rings broken at the end: {broken}")
sys.exit(1 if lost or resurrected or broken else 0)
PY
}

reports=()
for ((seed = first; seed <= last; seed++)); do
    report=$out/seed-$seed.json
    # The run exits 1 when a ring invariant is broken; its JSON says so too.
    status=0
    "$sim" "${scenario[@]}" --seed "$seed" --json --quiet "$@" >"$report" || status=$?
    if [[ ! -s $report ]]; then
        echo "seed $seed: cairn-sim failed (exit $status) without a report" >&2
        exit 1
    fi
    summarize line "$report"
    reports+=("$report")
done
echo "--"
summarize summary "${reports[@]}"
