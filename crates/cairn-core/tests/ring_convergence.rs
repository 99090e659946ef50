//! Rings of core state machines over an in-memory network with a virtual
//! clock: joins, crashes, leaves and restarts, checked against the true
//! membership. Small and fast; the large runs belong to the simulator.

use cairn_core::api::MemberState;
use cairn_core::kv::KvConfig;
use cairn_core::ring::walk::WalkedMember;
use cairn_core::wire::{Request, Response};
use cairn_core::{
    Action, Event, Host, Id, InboundId, NodeId, Peer, Reply, RingConfig, RingEvent, RpcId, Time,
};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

const STEP: Duration = Duration::from_millis(5);

enum Delivery {
    Request {
        from: Peer,
        to: NodeId,
        rpc: RpcId,
        request: Request,
    },
    Response {
        to: NodeId,
        rpc: RpcId,
        response: Response,
    },
}

struct Net {
    now: Duration,
    nodes: BTreeMap<NodeId, Host>,
    /// Requests answered later: (answering node, inbound id) -> (asker, its rpc).
    deferred: BTreeMap<(NodeId, InboundId), (NodeId, RpcId)>,
    walks: BTreeMap<(NodeId, u64), Vec<WalkedMember>>,
    /// How many of the next requests to each node are lost on the way.
    lose_requests_to: BTreeMap<NodeId, u32>,
    /// Nodes cut off from every other: all their messages are lost.
    cut_off: std::collections::BTreeSet<NodeId>,
    queue: BinaryHeap<Reverse<(Duration, u64)>>,
    in_flight: BTreeMap<u64, Delivery>,
    seq: u64,
    lookups:
        BTreeMap<(NodeId, u64), Result<cairn_core::LookupAnswer, cairn_core::lookup::LookupError>>,
    events: Vec<(NodeId, RingEvent)>,
    config: RingConfig,
    /// One-way delay of every message.
    latency: Duration,
}

fn peer(n: u64) -> Peer {
    // Spread ids over the ring with a multiplicative hash so that order differs from n.
    let high = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    Peer {
        id: NodeId(Id::from_high_u64(high)),
        addr: format!("127.0.0.1:{}", 10_000 + n).parse().expect("addr"),
    }
}

impl Net {
    fn new() -> Net {
        Net {
            now: Duration::ZERO,
            nodes: BTreeMap::new(),
            deferred: BTreeMap::new(),
            walks: BTreeMap::new(),
            lose_requests_to: BTreeMap::new(),
            cut_off: std::collections::BTreeSet::new(),
            queue: BinaryHeap::new(),
            in_flight: BTreeMap::new(),
            seq: 0,
            lookups: BTreeMap::new(),
            events: Vec::new(),
            config: RingConfig::default(),
            latency: Duration::from_millis(2),
        }
    }

    fn start(&mut self, n: u64, via: Option<u64>) -> NodeId {
        let me = peer(n);
        let mut node = Host::new(
            me,
            self.config.clone(),
            KvConfig::default(),
            n,
            time(self.now),
        );
        if let Some(via) = via {
            node.join(time(self.now), &[peer(via)], secs(20));
        }
        self.nodes.insert(me.id, node);
        self.drain(me.id);
        me.id
    }

    fn crash(&mut self, n: u64) {
        self.nodes.remove(&peer(n).id);
    }

    /// Stops every node whose join failed, as the real node exits.
    fn retire_failed_joins(&mut self) {
        let failed: Vec<NodeId> = self
            .events
            .iter()
            .filter(|(_, e)| matches!(e, RingEvent::JoinFailed { .. }))
            .map(|(id, _)| *id)
            .collect();
        for id in failed {
            self.nodes.remove(&id);
        }
        self.events
            .retain(|(_, e)| !matches!(e, RingEvent::JoinFailed { .. }));
    }

    fn leave(&mut self, n: u64) {
        let id = peer(n).id;
        if let Some(node) = self.nodes.get_mut(&id) {
            node.leave(time(self.now));
        }
        self.drain(id);
    }

    fn schedule(&mut self, delivery: Delivery) {
        let (from, to) = match &delivery {
            Delivery::Request { from, to, .. } => (from.id, *to),
            Delivery::Response { to, .. } => (*to, *to),
        };
        if self.cut_off.contains(&from) || self.cut_off.contains(&to) {
            return; // Lost: the sender times out.
        }
        self.seq += 1;
        self.in_flight.insert(self.seq, delivery);
        self.queue
            .push(Reverse((self.now + self.latency, self.seq)));
    }

    fn drain(&mut self, id: NodeId) {
        loop {
            let Some(node) = self.nodes.get_mut(&id) else {
                return;
            };
            let me = node.me();
            let Some(action) = node.poll_action() else {
                return;
            };
            match action {
                Action::Send { rpc, to, request } => {
                    assert_ne!(to.id, me.id, "{} sent {request:?} to itself", me.id.short());
                    self.schedule(Delivery::Request {
                        from: me,
                        to: to.id,
                        rpc,
                        request,
                    })
                }
                Action::Respond { inbound, response } => {
                    if let Some((asker, rpc)) = self.deferred.remove(&(id, inbound)) {
                        self.schedule(Delivery::Response {
                            to: asker,
                            rpc,
                            response,
                        });
                    }
                }
                Action::LookupDone { lookup, result } => {
                    self.lookups.insert((id, lookup), result);
                }
                Action::WalkDone { walk, members } => {
                    self.walks.insert((id, walk), members);
                }
                // These ring tests store nothing.
                Action::Storage { .. } | Action::KvDone { .. } => {}
                Action::Event(Event::Ring(event)) => self.events.push((id, event)),
            }
        }
    }

    /// Runs the network for `duration` of virtual time.
    fn run(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.now += STEP;
            while let Some(Reverse((at, seq))) = self.queue.peek().copied() {
                if at > self.now {
                    break;
                }
                self.queue.pop();
                let Some(delivery) = self.in_flight.remove(&seq) else {
                    continue;
                };
                match delivery {
                    Delivery::Request {
                        from,
                        to,
                        rpc,
                        request,
                    } => {
                        if let Some(left) = self.lose_requests_to.get_mut(&to)
                            && *left > 0
                        {
                            *left -= 1;
                            continue;
                        }
                        let now = self.now;
                        let Some(node) = self.nodes.get_mut(&to) else {
                            continue;
                        };
                        match node.handle_request(time(now), from, request) {
                            Reply::Now(response) => {
                                self.drain(to);
                                self.schedule(Delivery::Response {
                                    to: from.id,
                                    rpc,
                                    response,
                                });
                            }
                            Reply::Later(inbound) => {
                                self.deferred.insert((to, inbound), (from.id, rpc));
                                self.drain(to);
                            }
                        }
                    }
                    Delivery::Response { to, rpc, response } => {
                        let now = self.now;
                        let Some(node) = self.nodes.get_mut(&to) else {
                            continue;
                        };
                        node.handle_response(time(now), rpc, response);
                        self.drain(to);
                    }
                }
            }
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                let now = self.now;
                let node = self.nodes.get_mut(&id).expect("node");
                if node.poll_timeout().is_some_and(|t| t <= now) {
                    node.handle_timeout(time(now));
                    self.drain(id);
                }
            }
        }
    }

    /// Runs until the ring is correct, or fails after `limit`. Returns the time taken.
    fn converge(&mut self, limit: Duration) -> Duration {
        let start = self.now;
        loop {
            // A node whose join failed exits, as `cairn node` does.
            self.retire_failed_joins();
            if self.check().is_ok() {
                return self.now - start;
            }
            if self.now - start > limit {
                for (id, event) in &self.events {
                    eprintln!("event {} {event:?}", id.short());
                }
                for node in self.nodes.values() {
                    eprintln!(
                        "{} {:?} pred {:?} succ {:?} dead-known {:?}",
                        node.me().id.short(),
                        node.phase(),
                        node.ring().routing().predecessor().map(|p| p.id.short()),
                        node.ring()
                            .routing()
                            .successors()
                            .iter()
                            .map(|p| p.id.short())
                            .collect::<Vec<_>>(),
                        self.nodes
                            .keys()
                            .filter(|id| node.ring().is_dead(**id))
                            .map(|id| id.short())
                            .collect::<Vec<_>>(),
                    );
                }
                panic!(
                    "no convergence after {limit:?}: {}",
                    self.check().err().unwrap_or_default()
                );
            }
            self.run(Duration::from_millis(100));
        }
    }

    /// The invariants of DESIGN.md against the true membership.
    fn check(&self) -> Result<(), String> {
        let live: Vec<Peer> = self.nodes.values().map(|n| n.me()).collect();
        let count = live.len();
        let list_len = self.config.successor_list_len.min(count - 1);
        for (i, node) in self.nodes.values().enumerate() {
            let me = node.me();
            let expected: Vec<Peer> = (1..=list_len).map(|k| live[(i + k) % count]).collect();
            let got = node.ring().routing().successors().to_vec();
            if got != expected {
                return Err(format!(
                    "{} successors {:?}, expected {:?}",
                    me.id.short(),
                    got.iter().map(|p| p.id.short()).collect::<Vec<_>>(),
                    expected.iter().map(|p| p.id.short()).collect::<Vec<_>>()
                ));
            }
            let expected_predecessor = (count > 1).then(|| live[(i + count - 1) % count]);
            if node.ring().routing().predecessor() != expected_predecessor {
                return Err(format!(
                    "{} has predecessor {:?}",
                    me.id.short(),
                    node.ring().routing().predecessor()
                ));
            }
            if *node.phase() != cairn_core::Phase::Active {
                return Err(format!("{} is in phase {:?}", me.id.short(), node.phase()));
            }
        }
        Ok(())
    }

    fn true_successor(&self, target: Id) -> Peer {
        let live: Vec<Peer> = self.nodes.values().map(|n| n.me()).collect();
        live.iter()
            .copied()
            .find(|p| p.id.id() >= target)
            .unwrap_or(live[0])
    }

    /// Walks the ring from node `from` and runs until the walk ends.
    fn walk(&mut self, from: NodeId) -> Vec<WalkedMember> {
        let now = self.now;
        let id = self
            .nodes
            .get_mut(&from)
            .expect("node")
            .start_walk(time(now));
        self.drain(from);
        for _ in 0..4000 {
            if let Some(members) = self.walks.remove(&(from, id)) {
                return members;
            }
            self.run(STEP);
        }
        panic!("walk did not finish");
    }

    /// Starts a lookup at node `from` and runs until it finishes.
    fn lookup(&mut self, from: NodeId, target: Id) -> cairn_core::LookupAnswer {
        let now = self.now;
        let id = self
            .nodes
            .get_mut(&from)
            .expect("node")
            .start_lookup(time(now), target);
        self.drain(from);
        for _ in 0..2000 {
            if let Some(result) = self.lookups.remove(&(from, id)) {
                return result.expect("lookup failed");
            }
            self.run(STEP);
        }
        panic!("lookup did not finish");
    }
}

/// Both clocks at `now` (the wall clock runs from the Unix epoch here).
fn time(now: Duration) -> Time {
    Time {
        now,
        wall_ms: u64::try_from(now.as_millis()).unwrap_or(u64::MAX),
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ring_of(count: u64) -> Net {
    let mut net = Net::new();
    net.start(0, None);
    for n in 1..count {
        net.start(n, Some(0));
        net.run(Duration::from_millis(50));
    }
    net.converge(secs(30));
    net
}

#[test]
fn a_ring_of_one_owns_everything() {
    let mut net = ring_of(1);
    let only = peer(0);
    let answer = net.lookup(only.id, Id::from_high_u64(12345));
    assert_eq!(answer.node, only);
    assert_eq!(answer.hops, 0);
}

#[test]
fn rings_of_two_and_three_form_by_joins() {
    for count in [2, 3] {
        let net = ring_of(count);
        assert_eq!(net.nodes.len() as u64, count);
    }
}

#[test]
fn a_ring_of_twenty_forms_and_fills_fingers() {
    let mut net = ring_of(20);
    net.run(secs(30));
    let fingers: usize = net
        .nodes
        .values()
        .map(|n| n.ring().routing().fingers().count())
        .sum();
    assert!(fingers > 20, "fingers in use across the ring: {fingers}");
}

#[test]
fn lookups_from_every_node_reach_the_true_successor() {
    let mut net = ring_of(16);
    net.run(secs(20));
    let ids: Vec<NodeId> = net.nodes.keys().copied().collect();
    let mut hops = 0;
    let mut count = 0;
    for (i, from) in ids.iter().enumerate() {
        for k in 0..8u64 {
            let target =
                Id::from_high_u64((i as u64 * 1000 + k).wrapping_mul(0xd1b5_4a32_d192_ed03));
            let answer = net.lookup(*from, target);
            assert_eq!(
                answer.node,
                net.true_successor(target),
                "lookup of {target:?} from {from:?}"
            );
            hops += answer.hops;
            count += 1;
        }
    }
    let mean = hops as f64 / count as f64;
    assert!(mean < 4.0, "mean hops {mean} in a ring of 16");
}

#[test]
fn two_adjacent_crashes_in_a_ring_of_five_heal() {
    let mut net = ring_of(5);
    let live: Vec<Peer> = net.nodes.values().map(|n| n.me()).collect();
    let first = live[1];
    let second = live[2];
    net.nodes.remove(&first.id);
    net.nodes.remove(&second.id);
    let took = net.converge(secs(30));
    assert!(took < secs(10), "healing took {took:?}");
}

#[test]
fn seven_consecutive_crashes_in_a_ring_of_twenty_heal() {
    let mut net = ring_of(20);
    let live: Vec<Peer> = net.nodes.values().map(|n| n.me()).collect();
    for peer in &live[3..10] {
        net.nodes.remove(&peer.id);
    }
    net.converge(secs(60));
}

#[test]
fn a_ring_of_three_survives_a_crash_and_shrinks_to_two_then_one() {
    let mut net = ring_of(3);
    let live: Vec<Peer> = net.nodes.values().map(|n| n.me()).collect();
    net.nodes.remove(&live[0].id);
    net.converge(secs(30));
    net.nodes.remove(&live[1].id);
    net.converge(secs(30));
    assert_eq!(net.nodes.len(), 1);
}

#[test]
fn a_graceful_leave_repairs_neighbours_at_once() {
    let mut net = ring_of(5);
    let live: Vec<Peer> = net.nodes.values().map(|n| n.me()).collect();
    let (before, leaver, after) = (live[1], live[2], live[3]);
    let n = (0..5).find(|n| peer(*n) == leaver).expect("leaver");
    net.leave(n);
    net.run(Duration::from_millis(20));
    assert!(
        net.events
            .iter()
            .any(|(id, e)| *id == leaver.id && *e == RingEvent::Left),
        "the leaver finished its leave"
    );
    net.crash(n);
    // Its neighbours were told directly: no timeout was needed.
    assert_eq!(
        net.nodes[&before.id].ring().routing().successor(),
        Some(after)
    );
    assert_eq!(
        net.nodes[&after.id].ring().routing().predecessor(),
        Some(before)
    );
    // The rest learn it at their next stabilization.
    let took = net.converge(secs(5));
    assert!(took <= Duration::from_millis(1200), "took {took:?}");
}

#[test]
fn a_crashed_node_restarts_with_its_id_and_rejoins() {
    let mut net = ring_of(5);
    net.crash(2);
    // Restart at once, before anyone noticed the crash: the old incarnation is still listed.
    net.start(2, Some(4));
    net.converge(secs(30));
    assert_eq!(net.nodes.len(), 5);
}

#[test]
fn joining_through_a_dead_bootstrap_fails_after_its_attempts() {
    let mut net = ring_of(2);
    let id = net.start(9, Some(77)); // Node 77 never existed.
    net.run(secs(30));
    assert!(
        net.events
            .iter()
            .any(|(who, e)| *who == id && matches!(e, RingEvent::JoinFailed { .. })),
        "a join through a dead peer is reported as failed"
    );
}

#[test]
fn concurrent_joins_and_crashes_converge_for_many_seeds() {
    const SEEDS: u64 = 30;
    let mut sizable = 0;
    for seed in 0..SEEDS {
        eprintln!("seed {seed}");
        let mut net = Net::new();
        net.start(seed * 100, None);
        let mut started = vec![seed * 100];
        let mut state = seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for k in 1..25u64 {
            let n = seed * 100 + k;
            let via = started[(next() % started.len() as u64) as usize];
            net.start(n, Some(via));
            started.push(n);
            if next() % 4 == 0 && net.nodes.len() > 3 {
                let victim = started[(next() % started.len() as u64) as usize];
                if victim != via {
                    net.crash(victim);
                }
            }
            net.run(Duration::from_millis(next() % 200));
            net.retire_failed_joins();
        }
        // A node whose join failed exits (as `cairn node` does) rather than start a ring of its own.
        net.run(secs(20));
        net.retire_failed_joins();
        net.converge(secs(60));
        if net.nodes.len() >= 5 {
            sizable += 1;
        }
    }
    // The workload must leave real rings to check, not ones of a node or two.
    assert!(
        sizable >= SEEDS * 3 / 4,
        "only {sizable} of {SEEDS} runs ended with 5 or more nodes"
    );
}

// Regressions found in review; each failed before its fix.

/// Round trips that grow past the timeout must make timeouts grow (late
/// answers are measured), not declare every peer dead forever.
#[test]
fn a_ring_survives_round_trips_growing_past_the_timeout() {
    let mut net = ring_of(3);
    net.run(secs(10));
    net.latency = Duration::from_millis(60); // 120 ms round trips, above the 100 ms floor.
    net.run(secs(30));
    net.converge(secs(30));
}

/// A node that crashed, was noticed dead, and came back with the same id is
/// taken back at once: its predecessor asks it directly instead of skipping it.
#[test]
fn a_node_restarted_after_its_crash_was_noticed_is_taken_back_quickly() {
    let mut net = ring_of(5);
    net.crash(2);
    net.converge(secs(10));
    net.start(2, Some(4));
    let took = net.converge(secs(30));
    assert!(
        took < secs(5),
        "took {took:?}; dead_memory must not delay the restarted node"
    );
}

/// A lookup whose path runs into a freshly crashed node still succeeds: the
/// node before it answers from its whole successor list.
#[test]
fn lookups_route_around_a_freshly_crashed_node() {
    let mut net = ring_of(24);
    net.run(secs(30));
    let live: Vec<Peer> = net.nodes.values().map(|n| n.me()).collect();
    let victim = live[10];
    let after = live[11];
    net.nodes.remove(&victim.id);
    // Targets between the crashed node and the next one, from every node.
    let target = victim
        .id
        .id()
        .wrapping_add(after.id.id().wrapping_sub(victim.id.id()).shr1());
    let ids: Vec<NodeId> = net.nodes.keys().copied().collect();
    for from in ids {
        let answer = net.lookup(from, target);
        assert_eq!(answer.node, after, "lookup from {from:?}");
    }
}

/// Leaving while still joining stops the join: nothing is sent after the leave.
#[test]
fn leaving_while_joining_sends_no_further_join_requests() {
    let mut net = ring_of(3);
    let now = net.now;
    let mut node = Host::new(
        peer(50),
        RingConfig::default(),
        KvConfig::default(),
        50,
        time(now),
    );
    node.join(time(now), &[peer(0)], secs(20));
    while node.poll_action().is_some() {}
    node.leave(time(now));
    let mut actions = Vec::new();
    while let Some(action) = node.poll_action() {
        actions.push(action);
    }
    assert!(
        actions.iter().all(|a| !matches!(
            a,
            Action::Send {
                request: Request::FindSuccessor { .. },
                ..
            }
        )),
        "{actions:?}"
    );
    assert!(
        actions.contains(&Action::Event(Event::Ring(RingEvent::Left))),
        "{actions:?}"
    );
    net.run(secs(1));
}

trait Half {
    fn shr1(self) -> Id;
}

impl Half for Id {
    /// self / 2.
    fn shr1(self) -> Id {
        let mut out = [0u8; 32];
        let mut carry = 0u8;
        for (i, byte) in self.0.iter().enumerate() {
            out[i] = (byte >> 1) | (carry << 7);
            carry = byte & 1;
        }
        Id(out)
    }
}

/// Right after a join has settled at its neighbours (a few stabilization
/// rounds), every node's lookup for the newcomer's range finds the newcomer:
/// nodes must not answer from older entries of their successor lists, which
/// learn of a newcomer only several rounds later.
#[test]
fn lookups_find_a_newcomer_once_its_neighbours_know_it() {
    let mut net = ring_of(20);
    net.run(secs(30));
    let newcomer = peer(100);
    net.start(100, Some(0));
    net.run(Duration::from_millis(1500));
    let ids: Vec<NodeId> = net.nodes.keys().copied().collect();
    for from in ids {
        let answer = net.lookup(from, newcomer.id.id());
        assert_eq!(answer.node, newcomer, "lookup from {from:?}");
    }
}

// Liveness from evidence: one lost message is not a death; a crash still is.

/// True if any live node other than `id` lists it as a successor or predecessor.
fn anyone_lists(net: &Net, id: NodeId) -> bool {
    net.nodes.values().filter(|n| n.me().id != id).any(|n| {
        let table = n.ring().routing();
        table.successors().iter().any(|p| p.id == id)
            || table.predecessor().is_some_and(|p| p.id == id)
    })
}

#[test]
fn a_live_peer_that_misses_requests_stays_in_every_successor_list() {
    let mut net = ring_of(5);
    let live: Vec<Peer> = net.nodes.values().map(|n| n.me()).collect();
    let victim = live[2];
    let predecessor = live[1];
    // Three in a row: one short of misses_to_dead (4), and more than a lost datagram.
    net.lose_requests_to.insert(victim.id, 3);
    for _ in 0..(secs(6).as_millis() / STEP.as_millis()) {
        net.run(STEP);
        let listed = net.nodes[&predecessor.id]
            .ring()
            .routing()
            .successors()
            .contains(&victim);
        assert!(
            listed,
            "{} dropped {} after {:?}",
            predecessor.id.short(),
            victim.id.short(),
            net.now
        );
    }
    assert_eq!(
        net.lose_requests_to[&victim.id], 0,
        "the losses must have happened"
    );
    assert!(
        !net.events
            .iter()
            .any(|(_, e)| matches!(e, RingEvent::PeerFailed { peer, .. } if peer.id == victim.id)),
        "a live peer was judged dead: {:?}",
        net.events
    );
    net.check().expect("the ring is intact");
}

#[test]
fn a_crashed_peer_is_dropped_within_a_few_stabilization_rounds() {
    let mut net = ring_of(5);
    let live: Vec<Peer> = net.nodes.values().map(|n| n.me()).collect();
    let victim = live[3];
    let crashed_at = net.now;
    net.crash(u64::from(victim.addr.port()) - 10_000);
    let rounds = 3;
    let limit = net.config.stabilize_every * rounds;
    while anyone_lists(&net, victim.id) {
        assert!(
            net.now - crashed_at <= limit,
            "{} still listed {:?} after its crash (limit: {rounds} stabilization rounds)",
            victim.id.short(),
            net.now - crashed_at
        );
        net.run(STEP);
    }
    eprintln!(
        "crash noticed by every neighbour after {:?}",
        net.now - crashed_at
    );
    net.converge(secs(10));
}

#[test]
fn a_walk_lists_every_member_in_ring_order_and_judges_a_crashed_one() {
    let mut net = ring_of(5);
    let live: Vec<Peer> = net.nodes.values().map(|n| n.me()).collect();
    let walked = net.walk(live[0].id);
    let peers: Vec<Peer> = walked.iter().map(|m| m.peer).collect();
    assert_eq!(peers, live, "from the walker round the ring");
    assert!(walked.iter().all(|m| m.state == MemberState::Alive));
    // A crash the ring has not noticed yet: the walk finds it silent.
    let victim = live[2];
    net.crash(u64::from(victim.addr.port()) - 10_000);
    let walked = net.walk(live[0].id);
    let seen = walked
        .iter()
        .find(|m| m.peer.id == victim.id)
        .expect("the crashed member is still listed by its predecessor");
    assert!(
        matches!(seen.state, MemberState::Suspect | MemberState::Dead),
        "{seen:?}"
    );
    let alive = walked
        .iter()
        .filter(|m| m.state == MemberState::Alive)
        .count();
    assert_eq!(
        alive, 4,
        "the walk goes on past the silent member: {walked:?}"
    );
    net.converge(secs(10));
    let walked = net.walk(live[0].id);
    assert_eq!(walked.len(), 4, "{walked:?}");
}

#[test]
fn a_member_cut_off_from_everyone_finds_the_ring_again() {
    let mut net = ring_of(6);
    let live: Vec<Peer> = net.nodes.values().map(|n| n.me()).collect();
    let alone = live[2];
    net.cut_off.insert(alone.id);
    net.run(secs(15));
    let isolated = net
        .events
        .iter()
        .any(|(id, e)| *id == alone.id && matches!(e, RingEvent::Isolated { .. }));
    assert!(isolated, "it lost every neighbour: {:?}", net.events);
    assert_eq!(net.nodes[&alone.id].ring().routing().successor(), None);
    net.cut_off.clear();
    let took = net.converge(secs(30));
    eprintln!("one ring again {took:?} after the cut healed");
    assert!(anyone_lists(&net, alone.id), "back in the ring");
}
