#!/usr/bin/env python3
"""Watches a node that joins a ring holding the keys `cairn bench kv` wrote,
until it holds its whole range; used by scripts/join.sh.

Usage: join_watch.py KEYS VALUE_SIZE NEW_HTTP OLD_HTTP,OLD_HTTP,... READY GO

1. Computes the key id of every bench key (`bench-0` .. `bench-{KEYS-1}`,
   as crates/cairn/src/bench_kv.rs names them): BLAKE3("kv\\0" ++ key), as
   crates/cairn-core/src/id.rs does; asks the old members for their ids;
   then creates the file READY.
2. Waits for the file GO, which holds the time the new node was started
   (seconds since the epoch).
3. Polls the new node's `GET /v1/node` until its store holds exactly the keys
   whose replica set includes it: the keys in (its 3rd predecessor, itself]
   on the ring of the old members and it (R = 3). Done when its
   stored.records equals that count, its own `held` range is that range, and
   both still hold on a re-check RECHECK seconds later. The time reported is
   that of the first of those polls, from GO.
4. Prints the join time, what it holds, and what replication moved to it
   (`received`), as a ratio of the bytes it must hold.

Needs the blake3 module (pip install blake3). Environment: VERBOSE=1 prints
every poll; DEADLINE (s, default 300); RECHECK (s, default 2).
"""

import bisect
import json
import os
import sys
import time
import urllib.request

import blake3

R = 3


def get_json(http, path, timeout=2.0):
    with urllib.request.urlopen(f"http://{http}{path}", timeout=timeout) as answer:
        return json.load(answer)


def key_ids(keys, value_size):
    """The sorted key ids (32 bytes, big-endian: byte order is ring order)
    and the running total of key + value bytes in that order."""
    entries = []
    for n in range(keys):
        key = f"bench-{n}".encode()
        entries.append((blake3.blake3(b"kv\0" + key).digest(), len(key) + value_size))
    entries.sort()
    ids = [entry[0] for entry in entries]
    running = [0]
    for _, size in entries:
        running.append(running[-1] + size)
    return ids, running


def in_range(ids, running, after, through):
    """How many ids, and their bytes, lie in the arc (after, through]."""
    if after == through:
        return len(ids), running[-1]

    def span(low, high):  # ids in (low, high], low < high
        lo, hi = bisect.bisect_right(ids, low), bisect.bisect_right(ids, high)
        return hi - lo, running[hi] - running[lo]

    if after < through:
        return span(after, through)
    count_a, bytes_a = span(after, b"\xff" * 32)
    lo = bisect.bisect_left(ids, b"\x00" * 32)
    hi = bisect.bisect_right(ids, through)
    return count_a + hi - lo, bytes_a + running[hi] - running[lo]


def main():
    keys, value_size = int(sys.argv[1]), int(sys.argv[2])
    new_http, old_https = sys.argv[3], sys.argv[4].split(",")
    ready, go = sys.argv[5], sys.argv[6]
    verbose = os.environ.get("VERBOSE") == "1"
    deadline = float(os.environ.get("DEADLINE", "300"))
    recheck = float(os.environ.get("RECHECK", "2"))

    ids, running = key_ids(keys, value_size)
    old_ids = [bytes.fromhex(get_json(http, "/v1/node")["id"]) for http in old_https]
    open(ready, "w").close()
    while not os.path.exists(go) or os.path.getsize(go) == 0:
        time.sleep(0.01)
    started = float(open(go).read())

    equal_since = None  # (elapsed at the first equal poll, its wall time)
    last = "no poll yet"
    most = 0
    while True:
        now = time.time()
        elapsed = now - started
        if elapsed > deadline:
            print(f"NOT done {deadline:.0f} s after the start: {last}")
            return 1
        try:
            info = get_json(new_http, "/v1/node")
        except OSError:
            last = "the new node does not answer yet"
            time.sleep(0.25)
            continue
        me = bytes.fromhex(info["id"])
        ring = sorted(old_ids + [me])
        index = ring.index(me)
        after = ring[(index - R) % len(ring)]
        must_count, must_bytes = in_range(ids, running, after, me)
        held = info.get("held") or {}
        held_range = (bytes.fromhex(held.get("after", "00" * 32)), bytes.fromhex(held.get("through", "00" * 32)))
        stored = info.get("stored") or {}
        records = stored.get("records", 0)
        most = max(most, records)
        received = info.get("received") or {}
        last = (
            f"{elapsed:.1f} s: {records} records of {must_count}, "
            f"held range {'right' if held_range == (after, me) else 'not yet known'}, "
            f"received {received.get('records', 0)} records / {received.get('bytes', 0)} bytes"
        )
        if verbose:
            print("  " + last, flush=True)
        if records == must_count and held_range == (after, me):
            if equal_since is None:
                equal_since = (elapsed, now)
            elif now - equal_since[1] >= recheck:
                break
        else:
            equal_since = None
        time.sleep(0.25)

    took = equal_since[0]
    ratio_bytes = received.get("bytes", 0) / must_bytes if must_bytes else float("nan")
    ratio_records = received.get("records", 0) / must_count if must_count else float("nan")
    print(
        f"the sixth node holds its whole range {took:.1f} s after it started: {must_count} of {keys} keys "
        f"(its range (3rd predecessor, itself] on the ring of 6; the same as its own `held`; "
        f"stable on a re-check {recheck:.0f} s later)"
    )
    print(f"  stored: {records} records, {stored.get('bytes', 0)} bytes; must hold {must_count} records, {must_bytes} bytes (key + value)")
    print(
        f"  received: {received.get('records', 0)} records, {received.get('bytes', 0)} bytes "
        f"(of them as answers to its fetches: {received.get('fetched_records', 0)} records, {received.get('fetched_bytes', 0)} bytes)"
    )
    if most > must_count:
        print(f"  (it held up to {most} records on the way)")
    print(
        f"summary: join {took:.1f} s (target < 30 s); received/held bytes {ratio_bytes:.3f} "
        f"(records {ratio_records:.3f}; target <= 1.1); {must_count} keys held"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
