#!/usr/bin/env python3
"""Whole-ring figures for a ring of real `cairn node` processes on 127.0.0.1.

Prints: time for N nodes to converge, lookup hops and latency from every node,
time to heal after SIGKILL of two adjacent nodes, how soon a node joining right
after the crash serves a correct lookup, and the idle RSS of each node.

    cargo build --release && python3 bench/ring.py [--nodes 5] [--lookups 200]

Only loopback; every process it starts is stopped on exit (also on errors).
"""
import argparse, json, os, random, signal, subprocess, sys, tempfile, time, urllib.request

BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "cairn")


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


class Node:
    def __init__(self, data, join=None):
        args = [BIN, "node", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", data]
        if join:
            args += ["--join", join]
        self.started = time.monotonic()
        self.err = open(os.path.join(data + ".log"), "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.err, text=True)
        self.data = data

    def ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        line = self.proc.stdout.readline()
        if "ready:" not in line or time.monotonic() > deadline:
            raise RuntimeError(f"node did not start: {line!r}")
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        self.quic, self.http, self.id = fields["quic"], fields["http"], fields["id"]
        self.ready_after = time.monotonic() - self.started
        return self

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return -1

    def stop(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def correct(nodes):
    """True if every node's ring view lists exactly `nodes`, in id order (rotated)."""
    want = sorted(n.id for n in nodes)
    for n in nodes:
        try:
            members = [m["id"] for m in get(n.http + "/v1/ring")["members"] if m["state"] == "alive"]
            info = get(n.http + "/v1/node")
        except Exception:
            return False
        if sorted(members) != want or len(members) != len(want):
            return False
        start = members.index(min(members))
        if members[start:] + members[:start] != want:
            return False
        i = want.index(n.id)
        succ = want[(i + 1) % len(want)]
        pred = want[(i - 1) % len(want)]
        if len(want) > 1:
            if not info["successors"] or info["successors"][0]["id"] != succ:
                return False
            if not info["predecessor"] or info["predecessor"]["id"] != pred:
                return False
    return True


def wait_correct(nodes, limit=60):
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if correct(nodes):
            return time.monotonic() - start
        time.sleep(0.05)
    raise RuntimeError("ring did not converge")


def true_owner(ids, key_id):
    ids = sorted(ids)
    return next((i for i in ids if i >= key_id), ids[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--lookups", type=int, default=200, help="lookups per node")
    args = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    tmp = tempfile.mkdtemp(prefix="cairn-bench-")
    nodes = []
    try:
        first = Node(os.path.join(tmp, "n0")).ready()
        nodes.append(first)
        t0 = time.monotonic()
        joiners = [Node(os.path.join(tmp, f"n{i}"), first.quic) for i in range(1, args.nodes)]
        nodes += [j.ready() for j in joiners]
        converge = wait_correct(nodes) + (time.monotonic() - t0) - 0  # includes start-up
        converge = time.monotonic() - t0
        print(f"converge: {args.nodes} nodes started together converged in {converge*1000:.0f} ms "
              f"(joins ready after {max(j.ready_after for j in joiners)*1000:.0f} ms)")

        hops, micros, wrong = [], [], 0
        ids = [n.id for n in nodes]
        for n in nodes:
            for _ in range(args.lookups):
                key = f"k{random.getrandbits(64):x}"
                r = get(n.http + "/v1/lookup/" + key)
                hops.append(r["hops"]); micros.append(r["micros"])
                if r["node"]["id"] != true_owner(ids, r["key_id"]):
                    wrong += 1
        micros.sort()
        print(f"lookups: {len(hops)} from {len(nodes)} nodes: mean hops {sum(hops)/len(hops):.2f}, "
              f"max {max(hops)}, latency p50 {micros[len(micros)//2]} us, p99 {micros[len(micros)*99//100]} us, "
              f"wrong answers {wrong}")

        time.sleep(10)
        rss = [n.rss_kib() for n in nodes]
        print(f"idle RSS after 10 s: min {min(rss)/1024:.1f} MiB, max {max(rss)/1024:.1f} MiB")

        order = sorted(nodes, key=lambda n: n.id)
        a, b = order[1], order[2]
        t0 = time.monotonic()
        a.stop(); b.stop()
        rest = [n for n in nodes if n not in (a, b)]
        newcomer = Node(os.path.join(tmp, "late"), rest[0].quic).ready()
        first_ok = None
        while time.monotonic() - t0 < 30:
            try:
                r = get(newcomer.http + "/v1/lookup/probe", timeout=5)
                if r["node"]["id"] == true_owner([n.id for n in rest] + [newcomer.id], r["key_id"]):
                    first_ok = time.monotonic() - newcomer.started
                    break
            except Exception:
                pass
            time.sleep(0.02)
        heal = wait_correct(rest + [newcomer])
        heal = time.monotonic() - t0
        print(f"crash: SIGKILL of 2 adjacent nodes, plus a node joining at once: ring of "
              f"{len(rest)+1} correct after {heal*1000:.0f} ms")
        print(f"join under crash: the new node was ready {newcomer.ready_after*1000:.0f} ms after start, "
              f"first correct lookup {first_ok*1000 if first_ok else float('nan'):.0f} ms after start")
        nodes.append(newcomer)

        t0 = time.monotonic()
        rest[0].stop(); rest[1].stop()
        survivors = [n for n in rest[2:]] + [newcomer]
        heal2 = wait_correct(survivors)
        print(f"crash without joins: 2 more SIGKILLs, ring of {len(survivors)} correct after {(time.monotonic()-t0)*1000:.0f} ms")
    finally:
        for n in nodes:
            n.stop()


if __name__ == "__main__":
    main()
