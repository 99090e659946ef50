//! Ring maintenance across real `cairn node` processes: forming, healing
//! after crashes, rejoining with the same identity, leaving gracefully, and
//! failing to join where nobody answers.

mod common;

use common::{
    CONVERGE_TIMEOUT, EXIT_TIMEOUT, Node, NodeOptions, Scratch, check_neighbours, converge,
    eventually, is_hex_id, start_ring,
};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn refs(nodes: &[Node]) -> Vec<&Node> {
    nodes.iter().collect()
}

/// A node that crashes and comes back on the same address (same key, same
/// port, as a restarted service does) must be reachable again at once: its
/// peers still hold QUIC connections to the dead process, and the new one
/// resets them (stateless reset from a key derived from the node key).
#[test]
fn a_node_restarted_on_its_old_address_is_reached_again() {
    let scratch = Scratch::new("restart_same_address");
    let mut nodes = start_ring(&scratch, 3);
    converge("a ring of 3 forms", &refs(&nodes));
    let mut victim = nodes.remove(1);
    let options = NodeOptions {
        listen: Some(victim.quic),
        join: vec![nodes[0].quic.to_string()],
        ..victim.options.clone()
    };
    victim.process.kill();
    let started = Instant::now();
    let restarted = options.start(&scratch);
    assert_eq!(restarted.id, victim.id, "same data dir, same id");
    assert_eq!(restarted.quic, victim.quic, "same address");
    nodes.push(restarted);
    converge(
        "the ring takes the node back on its old address",
        &refs(&nodes),
    );
    eprintln!(
        "ring of 3 correct {:?} after the crashed node restarted on its old address",
        started.elapsed()
    );
}

#[test]
fn ring_forms_heals_and_rejoins() {
    let scratch = Scratch::new("heal");
    let mut nodes = start_ring(&scratch, 5);
    let took = converge("a ring of 5 forms", &refs(&nodes));
    eprintln!("ring of 5 converged in {took:?}");

    // Crash two nodes adjacent on the ring: the first node and its successor.
    let mut sorted: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    sorted.sort();
    let first_id = nodes[0].id.clone();
    let at = sorted
        .iter()
        .position(|id| *id == first_id)
        .expect("listed");
    let next_id = sorted[(at + 1) % sorted.len()].clone();
    let first_options = nodes[0].options.clone();
    for id in [&first_id, &next_id] {
        let index = nodes.iter().position(|n| n.id == *id).expect("running");
        let mut victim = nodes.remove(index);
        victim.process.kill();
        eprintln!("killed {} ({})", victim.short(), victim.process.name());
    }
    let crashed = Instant::now();
    let ((), routing) = eventually(
        "the 3 survivors repair their neighbours",
        CONVERGE_TIMEOUT,
        || check_neighbours(&refs(&nodes)),
    );
    converge("the 3 survivors heal the ring", &refs(&nodes));
    eprintln!(
        "ring healed to 3 after two adjacent crashes: neighbours correct in {routing:?}, \
         every /v1/ring correct in {:?}",
        crashed.elapsed()
    );

    // The crashed first node comes back on its data dir, through a survivor.
    let restarted = NodeOptions {
        join: vec![nodes[0].quic.to_string()],
        ..first_options
    }
    .start(&scratch);
    assert!(is_hex_id(&restarted.id), "id {:?}", restarted.id);
    assert_eq!(
        restarted.id, first_id,
        "a node restarted on the same data dir must keep its id"
    );
    nodes.push(restarted);
    let took = converge("the ring takes the restarted node back", &refs(&nodes));
    eprintln!("ring of 4 (one restarted) converged in {took:?}");

    // A new node joins through a member other than the first.
    let via = nodes[1].quic;
    nodes.push(NodeOptions::new(&scratch, "n5").join(via).start(&scratch));
    let took = converge("a sixth node joins", &refs(&nodes));
    eprintln!("ring of 5 (new node joined via a non-first member) converged in {took:?}");
}

#[test]
fn graceful_leave_on_sigterm() {
    let scratch = Scratch::new("sigterm");
    let mut nodes = start_ring(&scratch, 3);
    converge("a ring of 3 forms", &refs(&nodes));

    let mut leaving = nodes.remove(1);
    let signalled = Instant::now();
    leaving.process.terminate();
    let status = leaving
        .process
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|e| panic!("SIGTERM did not stop the node: {e}"));
    assert_eq!(
        status.code(),
        Some(0),
        "a node leaving on SIGTERM exits 0 ({status}); stderr:\n{}",
        leaving.process.stderr()
    );
    eprintln!("node exited on SIGTERM in {:?}", signalled.elapsed());
    let took = converge("the other two repair a graceful leave", &refs(&nodes));
    eprintln!("ring of 2 converged {took:?} after the graceful leave");
}

#[test]
fn leave_over_http_stops_the_node() {
    let scratch = Scratch::new("leave");
    let mut nodes = start_ring(&scratch, 3);
    converge("a ring of 3 forms", &refs(&nodes));

    let mut leaving = nodes.remove(0);
    let answer =
        common::http_request(leaving.http, "POST", "/v1/node/leave").expect("POST /v1/node/leave");
    assert!(
        (200..300).contains(&answer.status),
        "leave answered {answer:?}"
    );
    let body = answer.json().expect("JSON answer");
    assert_eq!(body["id"].as_str(), Some(leaving.id.as_str()), "{body}");
    let status = leaving
        .process
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|e| panic!("POST /v1/node/leave did not stop the node: {e}"));
    assert_eq!(status.code(), Some(0), "{status}");
    converge("the other two repair the leave", &refs(&nodes));
}

#[test]
fn join_through_dead_address_fails() {
    let scratch = Scratch::new("deadjoin");
    // Held for the whole test, so no other process can take the port; it
    // never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
    let dead = silent.local_addr().expect("local addr");
    let started = Instant::now();
    let mut options = NodeOptions::new(&scratch, "lonely").join(dead);
    options.extra = vec!["--join-timeout".into(), "3".into()];
    let mut process = options.spawn(&scratch);
    let status = process
        .wait_exit(Duration::from_secs(40))
        .unwrap_or_else(|e| panic!("a join through a dead address must give up: {e}"));
    eprintln!(
        "join through a dead address gave up after {:?}",
        started.elapsed()
    );
    let stderr = process.stderr();
    assert!(
        !status.success(),
        "exit {status}; stdout {:?}",
        process.pending_lines()
    );
    assert_eq!(
        status.code(),
        Some(3),
        "ring/network error code; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("cannot join the ring"),
        "stderr must say it cannot join:\n{stderr}"
    );
    assert!(
        process.pending_lines().iter().all(|l| !l.contains("ready")),
        "a node that failed to join must not say it is ready"
    );
    drop(silent);
}
