//! Regression tests of the ring's parts, driven by hand: one node, its
//! requests answered (or not) by the test.

use super::*;
use crate::routing::fingerprint;
use crate::wire::{Request, Response};

fn peer(n: u64) -> Peer {
    Peer {
        id: NodeId(Id::from_high_u64(n)),
        addr: format!("127.0.0.1:{}", 1000 + n).parse().expect("addr"),
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn node(me: Peer) -> RingNode {
    let mut node = RingNode::new(me, RingConfig::default(), 7, ms(0));
    while node.poll_action().is_some() {}
    node
}

/// The requests sent since the last call, as (rpc, to, request).
fn sent(node: &mut RingNode) -> Vec<(RingRpc, Peer, Request)> {
    let mut out = Vec::new();
    while let Some(action) = node.poll_action() {
        if let Action::Send { rpc, to, request } = action {
            out.push((rpc, to, request));
        }
    }
    out
}

fn state(predecessor: Option<Peer>, successors: Option<Vec<Peer>>) -> Response {
    Response::State {
        predecessor,
        successors,
        have_predecessors: 0,
        http: None,
    }
}

fn get_state_to(requests: &[(RingRpc, Peer, Request)], to: Peer) -> RingRpc {
    requests
        .iter()
        .rev()
        .find(|(_, p, r)| p.id == to.id && matches!(r, Request::GetState { .. }))
        .map(|(rpc, _, _)| *rpc)
        .expect("a GetState to that peer")
}

/// A late answer of a node checked but not adopted must not evict the
/// successor's list: its "unchanged" must still find the list it means.
#[test]
fn a_late_answer_of_a_node_not_adopted_keeps_the_successor_list_whole() {
    let (me, f, s, x) = (peer(10), peer(90), peer(40), peer(60));
    let mut node = node(me);
    node.table
        .adopt_successors(f, &[peer(100), peer(110)], |_| true);
    node.handle_request(
        ms(1),
        peer(99),
        InboundId(1),
        Request::Introduce { node: x },
    );
    let closer = get_state_to(&sent(&mut node), x);
    node.stabilize(ms(2));
    let to_f = get_state_to(&sent(&mut node), f);
    node.handle_response(
        ms(3),
        to_f,
        state(Some(s), Some(vec![peer(100), peer(110)])),
    );
    let to_s = get_state_to(&sent(&mut node), s);
    node.handle_response(ms(4), to_s, state(Some(me), Some(vec![x, f, peer(100)])));
    sent(&mut node);
    node.stabilize(ms(500));
    let again = get_state_to(&sent(&mut node), s);
    // X's slow answer (X no longer closer than S), then S: "unchanged".
    node.handle_response(ms(501), closer, state(Some(s), Some(vec![f, peer(100)])));
    node.handle_response(ms(502), again, state(Some(me), None));
    assert_eq!(node.routing().successors(), &[s, x, f, peer(100)]);
}

/// "Unchanged" about a list this node does not hold: ask for it whole,
/// never cut the successor list to one entry.
#[test]
fn unchanged_about_a_list_not_held_asks_for_the_whole_list() {
    let (me, s) = (peer(10), peer(40));
    let mut node = node(me);
    node.table
        .adopt_successors(s, &[peer(50), peer(60)], |_| true);
    node.stabilize(ms(1));
    let ask = get_state_to(&sent(&mut node), s);
    node.handle_response(ms(2), ask, state(Some(me), None));
    assert_eq!(
        node.routing().successors(),
        &[s, peer(50), peer(60)],
        "kept"
    );
    let again = sent(&mut node);
    assert!(
        again
            .iter()
            .any(|(_, to, r)| to.id == s.id && matches!(r, Request::GetState { have: 0, .. })),
        "asks again for the whole list: {again:?}"
    );
}

/// What a node says it holds of its predecessor's list is what it holds
/// now, so that a list shortened here is sent again.
#[test]
fn a_predecessor_list_shortened_here_is_asked_for_again() {
    let (p, m) = (peer(100), peer(90));
    let mut node = node(p);
    node.table
        .adopt_successors(peer(110), &[peer(120)], |_| true);
    node.handle_request(ms(1), m, InboundId(1), Request::Notify);
    let theirs = vec![peer(80), peer(70)];
    let answer = node.handle_request(
        ms(2),
        m,
        InboundId(2),
        Request::GetState {
            have: 0,
            predecessors: Some(theirs.clone()),
        },
    );
    let held = fingerprint(&theirs);
    assert!(
        matches!(answer, Some(Response::State { have_predecessors, .. }) if have_predecessors == held)
    );
    node.on_peer_dead(ms(3), peer(80));
    sent(&mut node);
    let answer = node.handle_request(
        ms(500),
        m,
        InboundId(3),
        Request::GetState {
            have: 0,
            predecessors: None,
        },
    );
    assert!(
        matches!(answer, Some(Response::State { have_predecessors, .. }) if have_predecessors != held),
        "it no longer holds that list: {answer:?}"
    );
}

/// A peer that spoke while a probe of it was under way: the probe's late
/// miss and older requests' misses start no second probe chain.
#[test]
fn a_revoked_suspicion_leaves_at_most_one_probe() {
    let (me, s) = (peer(10), peer(50));
    let mut node = node(me);
    node.table.adopt_successors(s, &[peer(60)], |_| true);
    node.send(ms(0), s, Request::Notify, Purpose::Notify);
    node.send(ms(50), s, Request::Notify, Purpose::Notify);
    sent(&mut node);
    node.handle_timeout(ms(1000));
    node.handle_request(ms(1010), s, InboundId(1), Request::Ping);
    node.handle_timeout(ms(1050));
    let probes = node
        .rpcs
        .pending_to(s.id)
        .filter(|purpose| *purpose == Purpose::Probe)
        .count();
    assert!(probes <= 1, "{probes} probes of one peer in flight");
    assert!(
        !node.liveness.is_suspect(s.id),
        "its word cleared the suspicion"
    );
}

/// A dead first bootstrap: the join goes on through the next one.
#[test]
fn a_join_goes_on_through_the_next_bootstrap() {
    let (me, dead, live, owner) = (peer(10), peer(200), peer(300), peer(50));
    let mut node = node(me);
    node.join(ms(0), &[dead, live], ms(20_000));
    let mut now = ms(0);
    let mut asked = Vec::new();
    for _ in 0..10_000 {
        for (rpc, to, request) in sent(&mut node) {
            asked.push(to.id);
            let answer = match (&request, to.id == live.id, to.id == owner.id) {
                (Request::FindSuccessor { .. }, true, _) => Some(Response::Found {
                    node: owner,
                    next: vec![],
                }),
                (Request::GetState { .. }, _, true) => Some(state(None, Some(vec![live]))),
                (Request::Notify, _, true) => Some(Response::Ack),
                _ => None, // The dead bootstrap answers nothing.
            };
            if let Some(answer) = answer {
                node.handle_response(now, rpc, answer);
            }
        }
        if *node.phase() == Phase::Active {
            break;
        }
        let Some(next) = node.poll_timeout() else {
            break;
        };
        now = next.max(now);
        node.handle_timeout(now);
    }
    assert_eq!(
        *node.phase(),
        Phase::Active,
        "joined through the live bootstrap"
    );
    assert!(asked.contains(&dead.id) && asked.contains(&live.id));
    assert_eq!(node.routing().successor(), Some(owner));
}

/// A node whose join failed serves nobody: it could otherwise start a ring
/// of its own.
#[test]
fn a_failed_join_serves_nobody() {
    let (me, dead) = (peer(10), peer(200));
    let mut node = node(me);
    node.join(ms(0), &[dead], ms(3_000));
    let mut now = ms(0);
    let mut failed = false;
    for _ in 0..10_000 {
        while let Some(action) = node.poll_action() {
            failed |= matches!(action, Action::Event(RingEvent::JoinFailed { .. }));
        }
        if failed {
            break;
        }
        let Some(next) = node.poll_timeout() else {
            break;
        };
        now = next.max(now);
        node.handle_timeout(now);
    }
    assert!(failed, "the join fails by its deadline");
    assert!(now <= ms(3_000), "by the deadline: {now:?}");
    assert_eq!(*node.phase(), Phase::JoinFailed);
    let answer = node.handle_request(
        now,
        peer(300),
        InboundId(1),
        Request::FindSuccessor {
            target: Id::from_high_u64(5),
        },
    );
    assert!(matches!(answer, Some(Response::Error { .. })), "{answer:?}");
    assert_eq!(node.poll_timeout(), None, "no timers any more");
}
