//! The event loop: a virtual clock, a priority queue of events, one seeded
//! RNG, and the `cairn-core` state machines of every simulated node.
//!
//! Everything that happens is an event taken from the queue in (time,
//! sequence) order, so the same seed gives the same run, event for event.
//! Messages to a node that is gone are dropped (the sender times out, as in
//! reality). The simulator also keeps the truth: which nodes are members, so
//! that checks and lookups can be judged against successor(x) computed from
//! the true membership.

use crate::network::{NetworkModel, Partition};
use cairn_core::kv::HANDOFF_BEFORE_LEAVE;
use cairn_core::lookup::LookupError;
use cairn_core::rng::Rng;
use cairn_core::wire::{Request, Response};
use cairn_core::{
    Action, Event as HostEvent, Host, Id, InboundId, LookupAnswer, LookupId, NodeId, Peer, Phase,
    Reply, RingConfig, RingEvent, RingNode, RpcId, Time,
};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

mod kv;
pub use kv::KvCheck;

/// Estimated bytes a message costs on the wire beyond its payload: IP and UDP
/// headers, a QUIC short header, a stream frame header, the AEAD tag, and the
/// 4-byte frame length (20 + 8 + 12 + 5 + 16 + 4).
pub const WIRE_OVERHEAD: usize = 65;
/// The kinds of requests, for traffic by kind (a response counts with its request).
pub const REQUEST_KINDS: [&str; 15] = [
    "GetState",
    "Notify",
    "Ping",
    "FindSuccessor",
    "Leaving",
    "GetPredecessor",
    "Introduce",
    "ProbeFor",
    "Store",
    "Fetch",
    "StoreMany",
    "SyncRange",
    "ListKeys",
    "SyncNodes",
    "ListVersions",
];

/// The index of a request's kind in [`REQUEST_KINDS`].
fn request_kind(request: &Request) -> usize {
    match request {
        Request::GetState { .. } => 0,
        Request::Notify => 1,
        Request::Ping => 2,
        Request::FindSuccessor { .. } => 3,
        Request::Leaving { .. } => 4,
        Request::GetPredecessor => 5,
        Request::Introduce { .. } => 6,
        Request::ProbeFor { .. } => 7,
        Request::Store { .. } => 8,
        Request::Fetch { .. } => 9,
        Request::StoreMany { .. } => 10,
        Request::SyncRange { .. } => 11,
        Request::ListKeys { .. } => 12,
        Request::SyncNodes { .. } => 13,
        Request::ListVersions { .. } => 14,
    }
}

/// The exact size of a message's postcard encoding, however large.
fn encoded_len<T: serde::Serialize>(value: &T) -> usize {
    postcard::serialize_with_flavor::<T, postcard::ser_flavors::Size, usize>(
        value,
        postcard::ser_flavors::Size::default(),
    )
    .unwrap_or(0) // Only a type that cannot be encoded fails: none of ours.
}

/// How many traced events are kept for `--replay`.
const TRACE_LEN: usize = 400;

/// What can happen.
#[derive(Clone, Debug)]
pub enum Event {
    Deliver {
        to: NodeId,
        from: Peer,
        message: Message,
    },
    Wake {
        node: NodeId,
    },
    /// A leaving node's time to hand its records over is up: it leaves now.
    HandoffDeadline {
        node: NodeId,
    },
    /// A workload event, handled by the scenario (see [`Sim::run_until`]).
    Workload(Workload),
}

/// A message in flight.
#[derive(Clone, Debug)]
pub enum Message {
    Request { rpc: RpcId, request: Request },
    Response { rpc: RpcId, response: Response },
}

/// Workload events, scheduled by the scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// A new node joins through a random member.
    Arrive,
    /// A node's session ends: it crashes or leaves.
    Depart(NodeId),
    /// A lookup of a random id from a random member.
    Lookup,
    /// A put from a random member (of a new key, or an overwrite).
    Put,
    /// A delete of a key holding an acknowledged value, from a random member.
    Delete,
    /// A get of a key already named, from a random member.
    Get,
    /// Count the acknowledged keys on fewer than R live members.
    Sample,
}

/// A queued event: when, in which order, and where its body waits in the
/// slab (kept out of the heap so that sifting moves 24 bytes, not a message).
struct Entry {
    at: Duration,
    seq: u64,
    slot: usize,
}

/// Hashes an id by its first 8 bytes: ids are uniformly random, so that is as
/// good as any hash, much cheaper, and the same in every run.
#[derive(Clone, Copy, Default)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        if bytes.len() >= 8 {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[..8]);
            self.0 ^= u64::from_le_bytes(word);
        } else {
            for byte in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
            }
        }
    }

    fn write_usize(&mut self, _: usize) {
        // The length prefix of the 32-byte array: the same for every id.
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type IdMap<V> = HashMap<NodeId, V, std::hash::BuildHasherDefault<IdHasher>>;

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed: the heap pops the earliest (time, sequence) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A simulated node: the core's host, when it asked to be woken, and the
/// requests it answers later (who asked, under which id, of which kind).
pub struct SimNode {
    pub core: Host,
    /// Its store: the store crate's memory backend.
    pub store: cairn_store::MemoryStore,
    wake: Option<Duration>,
    deferred: HashMap<InboundId, (NodeId, RpcId, usize)>,
    /// This node's wall clock runs this far ahead of the simulated time.
    clock_offset_ms: u64,
}

/// How long a simulated node keeps trying to join (as `cairn node --join-timeout`).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(20);

/// The wall clock of the simulated world starts at 2026-01-01 (Unix ms).
const EPOCH_MS: u64 = 1_767_225_600_000;

impl SimNode {
    fn time(&self, now: Duration) -> Time {
        let millis = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        Time {
            now,
            wall_ms: EPOCH_MS + self.clock_offset_ms + millis,
        }
    }
}

/// How a lookup ended, judged against the truth.
#[derive(Clone, Debug, PartialEq)]
pub struct LookupOutcome {
    pub correct: bool,
    /// Answered with a node that is not running any more (crashed or left).
    pub gone_owner: bool,
    pub failed: bool,
    pub hops: u32,
    pub latency: Duration,
}

/// Counters, cumulative from the start of the run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    pub events: u64,
    pub messages: u64,
    pub bytes: u64,
    pub lost: u64,
    pub joins: u64,
    pub crashes: u64,
    pub leaves: u64,
    pub join_failures: u64,
    /// Peers judged dead and dropped from a node's routing table.
    pub peer_failures: u64,
    /// Messages and bytes by request kind ([`REQUEST_KINDS`]); a response
    /// counts with its request.
    pub kind_messages: [u64; REQUEST_KINDS.len()],
    pub kind_bytes: [u64; REQUEST_KINDS.len()],
    /// Crashes whose predecessor itself crashed or left before judging them
    /// (their detection time is not measured).
    pub unwatched_crashes: u64,
    /// Members that lost every neighbour at once.
    pub isolations: u64,
    /// Of the peers judged dead, those that were alive (running, not leaving): false deaths.
    pub false_deaths: u64,
    /// Node-seconds lived by running nodes: the denominator of per-node-hour rates.
    pub node_seconds: f64,
}

/// The whole simulated world.
pub struct Sim {
    pub now: Duration,
    pub rng: Rng,
    pub config: RingConfig,
    /// Deliberate replication bugs for the nodes started from now on.
    pub kv_faults: cairn_core::kv::KvFaults,
    pub network: NetworkModel,
    pub partitions: Vec<Partition>,
    /// Nodes cut off from everyone until the time given (see [`Sim::cut_off`]).
    cut_off: IdMap<Duration>,
    /// Leaving nodes still handing their records over (members meanwhile).
    handing_off: HashSet<NodeId>,
    queue: BinaryHeap<Entry>,
    slab: Vec<Option<Event>>,
    free_slots: Vec<usize>,
    seq: u64,
    nodes: IdMap<SimNode>,
    /// The truth: nodes that finished their join and have not left or crashed, by id.
    members: BTreeMap<Id, Peer>,
    /// The same members in a vector, for picking one at random in O(1).
    member_list: Vec<NodeId>,
    member_index: IdMap<usize>,
    lookups: HashSet<(NodeId, LookupId)>,
    /// The key/value workload: what was written, deleted and read, and how
    /// each operation ended.
    pub model: crate::model::KvModel,
    /// The keys found under R live copies at each sample while the run goes.
    pub coverage: crate::coverage::Coverage,
    /// Crashed node -> (its true predecessor when it crashed, when), until
    /// that predecessor judges it dead.
    crashed_watch: IdMap<(NodeId, Duration)>,
    /// From a crash to the judgement of the crashed node's predecessor (the
    /// node whose first successor it was).
    pub detection_delays: Vec<Duration>,
    /// Finished lookups not yet collected by the scenario.
    pub outcomes: Vec<LookupOutcome>,
    pub counters: Counters,
    next_address: u32,
    trace: Option<VecDeque<String>>,
}

impl Sim {
    pub fn new(seed: u64, config: RingConfig, network: NetworkModel) -> Sim {
        Sim {
            now: Duration::ZERO,
            rng: Rng::new(seed),
            config,
            kv_faults: cairn_core::kv::KvFaults::default(),
            network,
            partitions: Vec::new(),
            cut_off: IdMap::default(),
            handing_off: HashSet::new(),
            queue: BinaryHeap::new(),
            slab: Vec::new(),
            free_slots: Vec::new(),
            seq: 0,
            nodes: IdMap::default(),
            members: BTreeMap::new(),
            member_list: Vec::new(),
            member_index: IdMap::default(),
            lookups: HashSet::new(),
            model: crate::model::KvModel::default(),
            coverage: crate::coverage::Coverage::new(Duration::from_secs(5)),
            crashed_watch: IdMap::default(),
            detection_delays: Vec::new(),
            outcomes: Vec::new(),
            counters: Counters::default(),
            next_address: 1,
            trace: None,
        }
    }

    /// Keeps the last events in memory, to print around a broken invariant.
    pub fn enable_trace(&mut self) {
        self.trace = Some(VecDeque::with_capacity(TRACE_LEN));
    }

    /// The traced events, oldest first (empty if tracing is off).
    pub fn trace(&self) -> Vec<String> {
        self.trace.iter().flatten().cloned().collect()
    }

    fn note(&mut self, what: impl FnOnce() -> String) {
        if let Some(trace) = &mut self.trace {
            if trace.len() == TRACE_LEN {
                trace.pop_front();
            }
            trace.push_back(format!("{:>12.3}s {}", self.now.as_secs_f64(), what()));
        }
    }

    pub fn schedule(&mut self, at: Duration, event: Event) {
        self.seq += 1;
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.slab[slot] = Some(event);
                slot
            }
            None => {
                self.slab.push(Some(event));
                self.slab.len() - 1
            }
        };
        self.queue.push(Entry {
            at: at.max(self.now),
            seq: self.seq,
            slot,
        });
    }

    // ---- membership ----

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    pub fn nodes(&self) -> impl Iterator<Item = &RingNode> {
        self.nodes.values().map(|n| n.core.ring())
    }

    pub fn node(&self, id: NodeId) -> Option<&RingNode> {
        self.nodes.get(&id).map(|n| n.core.ring())
    }

    /// The true members, in ring order.
    pub fn members(&self) -> impl Iterator<Item = &Peer> {
        self.members.values()
    }

    /// successor(target) among the true members.
    pub fn true_successor(&self, target: Id) -> Option<Peer> {
        self.members
            .range(target..)
            .next()
            .or_else(|| self.members.iter().next())
            .map(|(_, peer)| *peer)
    }

    pub fn random_member(&mut self) -> Option<NodeId> {
        if self.member_list.is_empty() {
            return None;
        }
        let at = (self.rng.next_u64() % self.member_list.len() as u64) as usize;
        Some(self.member_list[at])
    }

    fn add_member(&mut self, peer: Peer) {
        if self.member_index.contains_key(&peer.id) {
            return;
        }
        self.members.insert(peer.id.id(), peer);
        self.member_index.insert(peer.id, self.member_list.len());
        self.member_list.push(peer.id);
    }

    fn remove_member(&mut self, id: NodeId) {
        self.members.remove(&id.id());
        if let Some(at) = self.member_index.remove(&id) {
            self.member_list.swap_remove(at);
            if let Some(moved) = self.member_list.get(at) {
                self.member_index.insert(*moved, at);
            }
        }
    }

    fn random_id(&mut self) -> Id {
        let mut bytes = [0u8; 32];
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&self.rng.next_u64().to_be_bytes());
        }
        Id(bytes)
    }

    /// Starts a node; it joins through `via`, or forms a ring of its own.
    pub fn spawn(&mut self, via: Option<Peer>) -> NodeId {
        let n = self.next_address;
        self.next_address += 1;
        let ip = Ipv4Addr::new(127, (n >> 16) as u8, (n >> 8) as u8, n as u8);
        let me = Peer {
            id: NodeId(self.random_id()),
            addr: SocketAddr::V4(SocketAddrV4::new(ip, 7000)),
        };
        let seed = self.rng.next_u64();
        // Clocks a few seconds apart, as on real machines.
        let clock_offset_ms = self.rng.next_u64() % 5_000;
        let kv = cairn_core::kv::KvConfig {
            replicas: self.config.replicas,
            faults: self.kv_faults.clone(),
            ..cairn_core::kv::KvConfig::default()
        };
        let mut node = SimNode {
            store: cairn_store::MemoryStore::new(),
            core: Host::new(
                me,
                self.config.clone(),
                kv,
                seed,
                Time {
                    now: self.now,
                    wall_ms: EPOCH_MS + clock_offset_ms,
                },
            ),
            wake: None,
            deferred: HashMap::new(),
            clock_offset_ms,
        };
        let time = node.time(self.now);
        match via {
            Some(bootstrap) => node.core.join(time, &[bootstrap], JOIN_TIMEOUT),
            None => self.add_member(me),
        }
        self.nodes.insert(me.id, node);
        self.note(|| {
            format!(
                "{} starts, joining through {:?}",
                me.id.short(),
                via.map(|p| p.id.short())
            )
        });
        self.drain(me.id);
        me.id
    }

    /// A node is gone (crashed, left, or its join failed): forget what the
    /// simulator kept for it.
    fn forget_node(&mut self, id: NodeId) {
        self.nodes.remove(&id);
        self.handing_off.remove(&id);
        self.lookups.retain(|(node, _)| *node != id);
        // A watch whose watcher is gone can never end: the crash goes unjudged.
        let orphaned = self.crashed_watch.len();
        self.crashed_watch.retain(|_, (watcher, _)| *watcher != id);
        self.counters.unwatched_crashes += (orphaned - self.crashed_watch.len()) as u64;
    }

    /// Crashes whose predecessor has not judged them dead yet (still watched).
    pub fn unjudged_crashes(&self) -> usize {
        self.crashed_watch.len()
    }

    /// A node stops at once, without a word.
    pub fn crash(&mut self, id: NodeId) {
        if self.nodes.contains_key(&id) {
            self.forget_node(id);
            self.counters.crashes += 1;
            let predecessor = self
                .members
                .range(..id.id())
                .next_back()
                .or_else(|| self.members.iter().next_back())
                .map(|(_, p)| p.id)
                .filter(|p| *p != id);
            if let Some(predecessor) = predecessor {
                self.crashed_watch.insert(id, (predecessor, self.now));
            }
            self.remove_member(id);
            self.note(|| format!("{} crashes", id.short()));
        }
    }

    /// A node leaves gracefully, as `cairn node` does: a member first hands
    /// every range it holds to the node that becomes its new replica (for
    /// up to [`HANDOFF_BEFORE_LEAVE`], still a member and serving
    /// meanwhile); then it is no longer a member, and it stops once its
    /// neighbours were told.
    pub fn leave(&mut self, id: NodeId) {
        let now = self.now;
        if self.handing_off.contains(&id) {
            return;
        }
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        self.counters.leaves += 1;
        if *node.core.phase() != Phase::Active {
            return self.leave_now(id);
        }
        let time = node.time(now);
        node.core.hand_off_before_leaving(time);
        self.handing_off.insert(id);
        self.schedule(
            now + HANDOFF_BEFORE_LEAVE,
            Event::HandoffDeadline { node: id },
        );
        self.note(|| format!("{} hands its records over before leaving", id.short()));
        self.drain(id); // Leaves at once if there is nothing to hand over.
    }

    /// The leave itself, once the handoff is done (or its time is up).
    fn leave_now(&mut self, id: NodeId) {
        let now = self.now;
        self.handing_off.remove(&id);
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let time = node.time(now);
        node.core.leave(time);
        self.remove_member(id);
        self.note(|| format!("{} leaves", id.short()));
        self.drain(id);
    }

    /// Every message to or from `id` is lost until `until` (a partition of
    /// one node, for tests that need one replica to miss a write).
    pub fn cut_off(&mut self, id: NodeId, until: Duration) {
        self.cut_off.insert(id, until);
    }

    /// Starts a lookup of `target` at member `from`.
    pub fn start_lookup(&mut self, from: NodeId, target: Id) {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(&from) else {
            return;
        };
        let time = node.time(now);
        let lookup = node.core.start_lookup(time, target);
        self.lookups.insert((from, lookup));
        self.drain(from);
    }

    // ---- the loop ----

    /// Processes events up to `until`; workload events are handed to `workload`.
    pub fn run_until(&mut self, until: Duration, workload: &mut dyn FnMut(&mut Sim, Workload)) {
        while let Some(entry) = self.queue.peek() {
            if entry.at > until {
                break;
            }
            let Some(entry) = self.queue.pop() else { break };
            let Some(event) = self.slab.get_mut(entry.slot).and_then(Option::take) else {
                continue;
            };
            self.free_slots.push(entry.slot);
            self.advance(entry.at);
            self.counters.events += 1;
            match event {
                Event::Deliver { to, from, message } => self.deliver(to, from, message),
                Event::Wake { node } => self.wake(node, entry.at),
                Event::HandoffDeadline { node } => {
                    if self.handing_off.contains(&node) {
                        self.leave_now(node);
                    }
                }
                Event::Workload(event) => workload(self, event),
            }
        }
        self.advance(until);
    }

    /// Moves the clock forward, counting the node-seconds lived meanwhile.
    fn advance(&mut self, to: Duration) {
        if to > self.now {
            self.counters.node_seconds += (to - self.now).as_secs_f64() * self.nodes.len() as f64;
            self.now = to;
        }
    }

    fn deliver(&mut self, to: NodeId, from: Peer, message: Message) {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(&to) else {
            return; // Gone: the sender will time out.
        };
        match message {
            Message::Request { rpc, request } => {
                let me = node.core.me();
                let kind = request_kind(&request);
                let time = node.time(now);
                match node.core.handle_request(time, from, request) {
                    Reply::Now(response) => {
                        self.drain(to);
                        self.transmit(me, from.id, kind, Message::Response { rpc, response });
                    }
                    Reply::Later(inbound) => {
                        node.deferred.insert(inbound, (from.id, rpc, kind));
                        self.drain(to);
                    }
                }
            }
            Message::Response { rpc, response } => {
                let time = node.time(now);
                node.core.handle_response(time, rpc, response);
                self.drain(to);
            }
        }
    }

    fn wake(&mut self, id: NodeId, at: Duration) {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if node.wake != Some(at) {
            return; // Superseded by an earlier wake.
        }
        node.wake = None;
        if node.core.poll_timeout().is_some_and(|t| t <= now) {
            let time = node.time(now);
            node.core.handle_timeout(time);
        }
        self.drain(id);
    }

    /// Sends a message of request kind `kind` (see [`REQUEST_KINDS`]).
    fn transmit(&mut self, from: Peer, to: NodeId, kind: usize, message: Message) {
        let size = match &message {
            Message::Request { request, .. } => encoded_len(request),
            Message::Response { response, .. } => encoded_len(response),
        } + WIRE_OVERHEAD;
        self.counters.messages += 1;
        self.counters.bytes += size as u64;
        self.counters.kind_messages[kind] += 1;
        self.counters.kind_bytes[kind] += size as u64;
        let now = self.now;
        let isolated = |id: &NodeId| self.cut_off.get(id).is_some_and(|until| now < *until);
        let cut = isolated(&from.id)
            || isolated(&to)
            || self
                .partitions
                .iter()
                .any(|p| p.cuts(now, from.id.id().high_u64(), to.id().high_u64()));
        match self.network.delay(&mut self.rng) {
            Some(delay) if !cut => {
                self.schedule(now + delay, Event::Deliver { to, from, message });
            }
            _ => self.counters.lost += 1,
        }
    }

    /// Carries out what a node's core asks for, then schedules its next wake.
    fn drain(&mut self, id: NodeId) {
        loop {
            let Some(node) = self.nodes.get_mut(&id) else {
                return;
            };
            let me = node.core.me();
            let Some(action) = node.core.poll_action() else {
                break;
            };
            match action {
                Action::Send { rpc, to, request } => {
                    self.note(|| format!("{} -> {} {request:?}", me.id.short(), to.id.short()));
                    let kind = request_kind(&request);
                    self.transmit(me, to.id, kind, Message::Request { rpc, request });
                }
                Action::Respond { inbound, response } => {
                    if let Some((asker, rpc, kind)) = node.deferred.remove(&inbound) {
                        self.transmit(me, asker, kind, Message::Response { rpc, response });
                    }
                }
                // The simulator starts no walks.
                Action::WalkDone { .. } => {}
                // Storage is instant here: a memory store, no disk.
                Action::Storage { ticket, request } => {
                    let outcome = cairn_store::execute(&node.store, request);
                    let time = node.time(self.now);
                    node.core.storage_done(time, ticket, outcome);
                }
                Action::KvDone { op, result } => self.on_kv_done(id, op, result),
                Action::LookupDone { lookup, result } => {
                    if self.lookups.remove(&(id, lookup)) {
                        let outcome = self.judge(result);
                        self.outcomes.push(outcome);
                    }
                }
                Action::Event(HostEvent::Ring(event)) => self.on_event(id, me, event),
            }
        }
        if self.handing_off.contains(&id)
            && self.nodes.get(&id).is_some_and(|n| !n.core.handing_off())
        {
            return self.leave_now(id);
        }
        let now = self.now;
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if let Some(at) = node.core.poll_timeout()
            && node.wake.is_none_or(|w| at < w)
        {
            let at = at.max(now);
            node.wake = Some(at);
            self.schedule(at, Event::Wake { node: id });
        }
    }

    fn on_event(&mut self, id: NodeId, me: Peer, event: RingEvent) {
        self.note(|| format!("{} {event:?}", me.id.short()));
        match event {
            RingEvent::Joined { .. } => {
                self.counters.joins += 1;
                self.add_member(me);
            }
            RingEvent::JoinFailed { .. } => {
                // `cairn node` exits when it cannot join.
                self.counters.join_failures += 1;
                self.forget_node(id);
            }
            // The core looks for the ring by itself; until it finds it, the
            // checks see the split.
            RingEvent::Isolated { .. } => self.counters.isolations += 1,
            RingEvent::Left => self.forget_node(id),
            RingEvent::PeerFailed { peer, dropped } => {
                self.counters.peer_failures += u64::from(dropped);
                let alive = self.nodes.get(&peer.id).is_some_and(|n| {
                    matches!(n.core.phase(), Phase::Active | Phase::Joining { .. })
                });
                if alive {
                    self.counters.false_deaths += 1;
                    self.note(|| {
                        format!(
                            "{} judged {} dead, but it lives",
                            me.id.short(),
                            peer.id.short()
                        )
                    });
                }
                if let Some(&(predecessor, crashed)) = self.crashed_watch.get(&peer.id)
                    && predecessor == id
                {
                    self.crashed_watch.remove(&peer.id);
                    self.detection_delays.push(self.now.saturating_sub(crashed));
                }
            }
            RingEvent::SuccessorChanged { .. }
            | RingEvent::PredecessorChanged { .. }
            | RingEvent::RangeChanged { .. } => {}
        }
    }

    fn judge(&self, result: Result<LookupAnswer, LookupError>) -> LookupOutcome {
        match result {
            Ok(answer) => LookupOutcome {
                correct: self
                    .true_successor(answer.target)
                    .is_some_and(|truth| truth.id == answer.node.id),
                gone_owner: !self.nodes.contains_key(&answer.node.id),
                failed: false,
                hops: answer.hops,
                latency: answer.elapsed,
            },
            Err(_) => LookupOutcome {
                failed: true,
                correct: false,
                gone_owner: false,

                hops: 0,
                latency: Duration::ZERO,
            },
        }
    }

    /// True if every node is a settled member (none joining or leaving).
    pub fn all_settled(&self) -> bool {
        self.nodes.values().all(|n| {
            *n.core.phase() == Phase::Active && self.member_index.contains_key(&n.core.me().id)
        })
    }
}
