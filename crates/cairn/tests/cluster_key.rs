//! Cluster keys across real processes: nodes with the same key form a ring;
//! a node with another key, or none, is refused and cannot join, and the
//! ring is left as it was.

mod common;

use common::{EXIT_TIMEOUT, Node, NodeOptions, Process, Scratch, check_ring, converge};
use std::time::{Duration, Instant};

/// A refused join may keep retrying for the join timeout (20 s) before it
/// gives up; allow that and some.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(40);

fn keyed_ring_of_two(scratch: &Scratch) -> (Node, Node) {
    let key = scratch.cluster_key("cluster.key", 1);
    let first = NodeOptions::new(scratch, "n0")
        .cluster_key(&key)
        .start(scratch);
    let second = NodeOptions::new(scratch, "n1")
        .cluster_key(&key)
        .join(first.quic)
        .start(scratch);
    converge(
        "two nodes with one cluster key form a ring",
        &[&first, &second],
    );
    (first, second)
}

/// Waits for a node that must be refused to exit, and checks how; returns
/// its id (from its "node started id=..." log line).
fn assert_refused(mut process: Process, why: &str) -> String {
    let started = Instant::now();
    let status = process
        .wait_exit(REFUSAL_TIMEOUT)
        .unwrap_or_else(|e| panic!("{why}: the node must give up: {e}"));
    let stderr = process.stderr();
    eprintln!("{why}: exited {status} after {:?}", started.elapsed());
    assert!(!status.success(), "{why}: exit {status}; stderr:\n{stderr}");
    assert!(
        process.pending_lines().iter().all(|l| !l.contains("ready")),
        "{why}: a refused node must not say it is ready"
    );
    assert!(
        stderr.contains("cannot join the ring") && stderr.contains("cluster key"),
        "{why}: stderr must say it cannot join because of the cluster key:\n{stderr}"
    );
    stderr
        .split_once("node started id=")
        .and_then(|(_, rest)| rest.get(..64))
        .filter(|id| common::is_hex_id(id))
        .unwrap_or_else(|| panic!("{why}: no node id in the log:\n{stderr}"))
        .to_string()
}

/// The refusing node logs the mismatch and names the refused peer.
fn assert_refusal_logged(node: &Node, refused_id: &str) {
    common::eventually(
        "the first node logs the refusal, naming the peer",
        Duration::from_secs(5),
        || {
            let log = node.process.stderr();
            let logged = log
                .lines()
                .any(|l| l.contains("cluster key mismatch") && l.contains(refused_id));
            if logged { Ok(()) } else { Err(log) }
        },
    );
}

fn assert_unchanged(first: &Node, second: &Node, why: &str) {
    check_ring(&[first, second]).unwrap_or_else(|e| panic!("{why}: the ring of 2 changed: {e}"));
    for node in [first, second] {
        let ring = node.ring().expect("ring");
        assert_eq!(ring.len(), 2, "{why}: {} lists {ring:?}", node.short());
    }
}

#[test]
fn cluster_key_mismatch_is_refused() {
    let scratch = Scratch::new("keymismatch");
    let (first, second) = keyed_ring_of_two(&scratch);
    let other_key = scratch.cluster_key("other.key", 2);
    let intruder = NodeOptions::new(&scratch, "intruder")
        .cluster_key(&other_key)
        .join(first.quic)
        .spawn(&scratch);
    let refused = assert_refused(intruder, "a node with another cluster key");
    assert_refusal_logged(&first, &refused);
    assert_unchanged(&first, &second, "after a node with another key");
}

#[test]
fn a_node_without_key_is_refused_by_a_keyed_ring() {
    let scratch = Scratch::new("nokey");
    let (first, second) = keyed_ring_of_two(&scratch);
    let intruder = NodeOptions::new(&scratch, "keyless")
        .join(first.quic)
        .spawn(&scratch);
    let refused = assert_refused(intruder, "a node without a cluster key");
    assert_refusal_logged(&first, &refused);
    assert_unchanged(&first, &second, "after a node without key");
    // Both keyed nodes still stop cleanly.
    for mut node in [first, second] {
        node.process.terminate();
        let status = node.process.wait_exit(EXIT_TIMEOUT).expect("exits");
        assert_eq!(status.code(), Some(0), "{status}");
    }
}
