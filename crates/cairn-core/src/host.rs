//! The host: the one value the node and the simulator drive. It owns the
//! ring (and, next, the replication machines), gives every inbound request
//! an id so that any machine may answer it later, routes answers, failures
//! and timeouts to the machine that asked, and keeps the hybrid logical
//! clock fed with the wall clock.
//!
//! Inputs take a [`Time`]: the monotonic `now` for timers and the wall clock
//! for versions. Outputs are drained with [`Host::poll_action`] and
//! [`Host::poll_timeout`].
//!
//! Invariants: every [`RpcId`] handed out names the machine that sent it, and
//! an answer or failure reaches that machine only; every request answered
//! [`Reply::Later`] is answered by exactly one [`Action::Respond`] (unless the
//! node stops first); the versions [`Host::stamp`] hands out only grow, even
//! when the wall clock steps back.

use crate::config::RingConfig;
use crate::id::{Id, KeyId};
use crate::kv::{self, KvAction, KvConfig, KvError, OpId, OpResult, Replication};
use crate::lookup::LookupError;
use crate::range::KeyRange;
use crate::record::Record;
use crate::ring::walk::{WalkId, WalkedMember};
use crate::ring::{self, LookupAnswer, LookupId, Phase, RingEvent, RingNode};
use crate::rpc::{InboundId, Machine, RpcId};
use crate::storage::{StorageOutcome, StorageRequest, Ticket};
use crate::version::{Hlc, Version};
use crate::wire::{Peer, Request, Response};
use std::collections::BTreeMap;
use std::time::Duration;

/// How far ahead of this node's wall clock a peer's timestamp may be before
/// it is refused (60 s): beyond that, a clock is wrong, not merely skewed.
pub const MAX_CLOCK_DRIFT_MS: u64 = 60_000;

/// The two clocks every input carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Time {
    /// Monotonic time since an origin the caller picks: timers and deadlines.
    pub now: Duration,
    /// Wall-clock milliseconds since the Unix epoch: versions of writes.
    pub wall_ms: u64,
}

/// How a request is answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Answer this now.
    Now(Response),
    /// The answer comes later, as [`Action::Respond`] with this id.
    Later(InboundId),
}

/// What the caller must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send `request` to `to`, then call `handle_response` or `handle_failure` with `rpc`.
    Send {
        rpc: RpcId,
        to: Peer,
        request: Request,
    },
    /// Answer request `inbound` (one that `handle_request` deferred).
    Respond {
        inbound: InboundId,
        response: Response,
    },
    /// A lookup started with `start_lookup` finished.
    LookupDone {
        lookup: LookupId,
        result: Result<LookupAnswer, LookupError>,
    },
    /// A walk started with `start_walk` finished.
    WalkDone {
        walk: WalkId,
        members: Vec<WalkedMember>,
    },
    /// Run this on the local store, then call `storage_done` with `ticket`.
    Storage {
        ticket: Ticket,
        request: StorageRequest,
    },
    /// A client operation (`put`, `delete`, `get`) ended.
    KvDone {
        op: OpId,
        result: Result<OpResult, KvError>,
    },
    /// Something the caller may want to log or react to.
    Event(Event),
}

/// What happened, by machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Ring(RingEvent),
}

/// One node's state machines.
#[derive(Clone, Debug)]
pub struct Host {
    ring: RingNode,
    kv: Replication,
    /// Ring lookups started for replication, and the operation each serves.
    kv_lookups: BTreeMap<LookupId, OpId>,
    hlc: Hlc,
    next_inbound: u64,
    /// The last time an input carried, for work the host starts itself.
    last: Time,
}

impl Host {
    /// A node alone on its own ring until it joins or is joined.
    pub fn new(me: Peer, config: RingConfig, kv: KvConfig, seed: u64, time: Time) -> Host {
        Host {
            ring: RingNode::new(me, config, seed, time.now),
            kv: Replication::new(me, kv),
            kv_lookups: BTreeMap::new(),
            hlc: Hlc::new(MAX_CLOCK_DRIFT_MS),
            next_inbound: 1,
            last: time,
        }
    }

    pub fn me(&self) -> Peer {
        self.ring.me()
    }

    /// The ring, to read its state (routing table, phase, liveness).
    pub fn ring(&self) -> &RingNode {
        &self.ring
    }

    pub fn phase(&self) -> &Phase {
        self.ring.phase()
    }

    /// A version for a write made here now: after every version this node
    /// handed out or saw, at the wall clock if it moved on.
    pub fn stamp(&mut self, time: Time) -> Version {
        self.last = time;
        Version::new(self.hlc.tick(time.wall_ms), self.me().id)
    }

    /// Feeds a round trip measured outside the core (see [`RingNode::record_rtt`]).
    pub fn record_rtt(&mut self, rtt: Duration) {
        self.ring.record_rtt(rtt);
    }

    // ---- inputs ----

    /// Joins the ring through the `bootstraps` within `timeout` (see [`RingNode::join`]).
    pub fn join(&mut self, time: Time, bootstraps: &[Peer], timeout: Duration) {
        self.ring.join(time.now, bootstraps, timeout);
    }

    /// This node's data dir says it was last alive `away` ago: past the
    /// tombstone grace it checks its records before it hands any out
    /// (see [`crate::kv`]'s cleanup).
    pub fn came_back_after(&mut self, away: Duration) {
        self.kv.came_back_after(away);
    }

    /// True while replication checks this node's records after a long absence.
    pub fn kv_quarantined(&self) -> bool {
        self.kv.is_quarantined()
    }

    /// Before a graceful leave: hands every range this node holds to the
    /// member that becomes its new replica (see
    /// [`crate::kv::Replication::hand_off_before_leaving`]); wait for
    /// [`Host::handing_off`] to turn false, then [`Host::leave`].
    pub fn hand_off_before_leaving(&mut self, time: Time) {
        self.last = time;
        let table = self.ring.routing();
        let (predecessors, successors) =
            (table.predecessors().to_vec(), table.successors().to_vec());
        self.kv
            .hand_off_before_leaving(time.now, &predecessors, &successors);
    }

    /// True while records are being handed to other nodes.
    pub fn handing_off(&self) -> bool {
        self.kv.handing_off()
    }

    /// Leaves gracefully (see [`RingNode::leave`]).
    pub fn leave(&mut self, time: Time) {
        self.ring.leave(time.now);
    }

    /// Starts a lookup of successor(target); its end comes as [`Action::LookupDone`].
    pub fn start_lookup(&mut self, time: Time, target: Id) -> LookupId {
        self.ring.start_lookup(time.now, target)
    }

    /// Walks the ring from here (see [`RingNode::start_walk`]); the members
    /// come as [`Action::WalkDone`].
    pub fn start_walk(&mut self, time: Time) -> WalkId {
        self.ring.start_walk(time.now)
    }

    /// Writes `value` under `key` (stamped with a new version) to the key's
    /// replicas; the end comes as [`Action::KvDone`].
    pub fn put(&mut self, time: Time, key: &[u8], value: Vec<u8>) -> Result<OpId, KvError> {
        kv::check_key(key)?;
        let record = Record::value(key, self.stamp(time), value);
        self.write(time, record)
    }

    /// Deletes `key`: writes a tombstone (see [`Host::put`]).
    pub fn delete(&mut self, time: Time, key: &[u8]) -> Result<OpId, KvError> {
        kv::check_key(key)?;
        let record = Record::tombstone(key, self.stamp(time));
        self.write(time, record)
    }

    fn write(&mut self, time: Time, record: Record) -> Result<OpId, KvError> {
        self.serving()?;
        let replicas = self.local_replicas(record.key_id);
        self.kv.write(time.now, record, replicas)
    }

    /// Reads the newest record of `key` from a read quorum; the end comes as
    /// [`Action::KvDone`] (a tombstone for a deleted key).
    pub fn get(&mut self, time: Time, key: &[u8]) -> Result<OpId, KvError> {
        self.key_op(time, key, Replication::read)
    }

    /// Asks every replica of `key` which version it holds; the end comes as
    /// [`Action::KvDone`] with [`OpResult::Located`].
    pub fn locate(&mut self, time: Time, key: &[u8]) -> Result<OpId, KvError> {
        self.key_op(time, key, Replication::locate)
    }

    /// A read-side operation on `key`: checked, served by members only,
    /// with the replica set from this node's tables when they name it.
    fn key_op(
        &mut self,
        time: Time,
        key: &[u8],
        start: fn(&mut Replication, Duration, KeyId, Option<Vec<Peer>>) -> OpId,
    ) -> Result<OpId, KvError> {
        kv::check_key(key)?;
        self.serving()?;
        self.last = time;
        let key_id = KeyId::of_key(key);
        let replicas = self.local_replicas(key_id);
        Ok(start(&mut self.kv, time.now, key_id, replicas))
    }

    /// Lists live keys starting with `prefix` across `members` (a ring
    /// walk's); the end comes as [`Action::KvDone`] with [`OpResult::Listed`].
    pub fn list(
        &mut self,
        time: Time,
        prefix: &str,
        members: &[Peer],
        limit: usize,
    ) -> Result<OpId, KvError> {
        self.serving()?;
        self.last = time;
        Ok(self.kv.list(time.now, prefix.to_string(), members, limit))
    }

    /// Client operations are served by members only.
    fn serving(&self) -> Result<(), KvError> {
        match self.ring.phase() {
            Phase::Active => Ok(()),
            _ => Err(KvError::NotServing),
        }
    }

    /// The key's replica set if this node's tables name it.
    fn local_replicas(&self, key_id: KeyId) -> Option<Vec<Peer>> {
        self.ring
            .replicas_of(key_id.id(), self.kv.config().replicas)
    }

    /// The store did the work of `ticket`.
    pub fn storage_done(&mut self, time: Time, ticket: Ticket, outcome: StorageOutcome) {
        self.last = time;
        self.kv.on_storage(time.now, ticket, outcome);
    }

    /// A request from `from` (whose id the transport authenticated).
    pub fn handle_request(&mut self, time: Time, from: Peer, request: Request) -> Reply {
        self.last = time;
        let inbound = InboundId(self.next_inbound);
        self.next_inbound += 1;
        let answer = match request {
            Request::Store { .. }
            | Request::Fetch { .. }
            | Request::StoreMany { .. }
            | Request::SyncRange { .. }
            | Request::SyncNodes { .. }
            | Request::ListVersions { .. }
            | Request::ListKeys { .. } => self.replicate(time, from, inbound, request),
            ring_request => self
                .ring
                .handle_request(time.now, from, inbound, ring_request),
        };
        match answer {
            Some(response) => Reply::Now(response),
            None => Reply::Later(inbound),
        }
    }

    /// A peer's replication request: refused by a node that is not serving,
    /// or when the writer's clock is too far ahead of this one's.
    fn replicate(
        &mut self,
        time: Time,
        from: Peer,
        inbound: InboundId,
        request: Request,
    ) -> Option<Response> {
        if matches!(self.ring.phase(), Phase::Left | Phase::JoinFailed) {
            return Some(Response::Error {
                reason: "this node is not serving".into(),
            });
        }
        if let Request::Store { record } = &request
            && let Err(drift) = self.hlc.observe(time.wall_ms, record.version.timestamp)
        {
            return Some(Response::Error {
                reason: drift.to_string(),
            });
        }
        self.kv.handle_request(time.now, from, inbound, request)
    }

    /// The answer to request `rpc` arrived.
    pub fn handle_response(&mut self, time: Time, rpc: RpcId, response: Response) {
        self.last = time;
        match rpc.machine() {
            Some(Machine::Ring) => self.ring.handle_response(time.now, rpc.seq(), response),
            Some(Machine::Kv) => self.kv.handle_response(time.now, rpc.seq(), response),
            None => {} // Not one of ours: nothing waits for it.
        }
    }

    /// Request `rpc` failed (unreachable, refused, reset) before its timeout.
    pub fn handle_failure(&mut self, time: Time, rpc: RpcId) {
        self.last = time;
        match rpc.machine() {
            Some(Machine::Ring) => self.ring.handle_failure(time.now, rpc.seq()),
            // A failed store says nothing about the peer's liveness.
            Some(Machine::Kv) => self.kv.handle_failure(time.now, rpc.seq()),
            None => {}
        }
    }

    /// Time passed: every machine whose timeout is due runs.
    pub fn handle_timeout(&mut self, time: Time) {
        self.last = time;
        if self.ring.poll_timeout().is_some_and(|at| at <= time.now) {
            self.ring.handle_timeout(time.now);
        }
        if self.kv.poll_timeout().is_some_and(|at| at <= time.now) {
            self.kv.handle_timeout(time.now, time.wall_ms);
        }
    }

    // ---- outputs ----

    /// The next thing to do, if any. (Each machine keeps its own queue; the
    /// host tags what it hands out.)
    pub fn poll_action(&mut self) -> Option<Action> {
        loop {
            if let Some(action) = self.kv.poll_action() {
                match action {
                    KvAction::Lookup { op, target } => {
                        let lookup = self.ring.start_lookup(self.last.now, target);
                        self.kv_lookups.insert(lookup, op);
                    }
                    KvAction::Restamp { op, newer } => {
                        let time = self.last;
                        let version = self
                            .hlc
                            .observe(time.wall_ms, newer.timestamp)
                            .ok()
                            .map(|_| self.stamp(time));
                        self.kv.restamp(time.now, op, version);
                    }
                    other => return Some(Self::from_kv(other)),
                }
                continue;
            }
            match self.ring.poll_action()? {
                ring::Action::LookupDone { lookup, result } => {
                    if let Some(op) = self.kv_lookups.remove(&lookup) {
                        let count = self.kv.config().replicas;
                        let replicas = result
                            .map(|answer| {
                                std::iter::once(answer.node)
                                    .chain(answer.next)
                                    .take(count)
                                    .collect()
                            })
                            .map_err(|error| error.to_string());
                        self.kv.on_replicas(self.last.now, op, replicas);
                        continue;
                    }
                    return Some(Action::LookupDone { lookup, result });
                }
                ring::Action::Event(
                    event @ (RingEvent::PredecessorChanged { .. } | RingEvent::RangeChanged { .. }),
                ) => {
                    self.tell_holding();
                    return Some(Action::Event(Event::Ring(event)));
                }
                other => return Some(Self::from_ring(other)),
            }
        }
    }

    /// Tells replication what this node now holds, and with whom (it hands
    /// records off to new holders).
    fn tell_holding(&mut self) {
        if *self.ring.phase() != Phase::Active {
            return;
        }
        let me = self.me();
        let predecessor = self.ring.routing().predecessor();
        let primary = match predecessor {
            Some(predecessor) => KeyRange::new(predecessor.id.id(), me.id.id()),
            None => KeyRange::whole(),
        };
        let replicas = self.ring.replica_set();
        let held = self.ring.held_range();
        self.kv
            .on_holding(self.last.now, primary, held, replicas, predecessor);
    }

    /// When `handle_timeout` should be called next.
    pub fn poll_timeout(&self) -> Option<Duration> {
        [self.ring.poll_timeout(), self.kv.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// A replication action in the host's terms.
    fn from_kv(action: KvAction) -> Action {
        match action {
            KvAction::Send { rpc, to, request } => Action::Send {
                rpc: RpcId::new(Machine::Kv, rpc),
                to,
                request,
            },
            KvAction::Respond { inbound, response } => Action::Respond { inbound, response },
            KvAction::Storage { ticket, request } => Action::Storage { ticket, request },
            KvAction::Done { op, result } => Action::KvDone { op, result },
            // Handled by the host itself (see `poll_action`).
            KvAction::Lookup { op, .. } => Action::KvDone {
                op,
                result: Err(KvError::NoReplicas("internal: lookup not started".into())),
            },
            KvAction::Restamp { op, .. } => Action::KvDone {
                op,
                result: Err(KvError::Outpaced { attempts: 0 }),
            },
        }
    }

    /// A ring action in the host's terms: its request ids tagged.
    fn from_ring(action: ring::Action) -> Action {
        match action {
            ring::Action::Send { rpc, to, request } => Action::Send {
                rpc: RpcId::new(Machine::Ring, rpc),
                to,
                request,
            },
            ring::Action::Respond { inbound, response } => Action::Respond { inbound, response },
            ring::Action::LookupDone { lookup, result } => Action::LookupDone { lookup, result },
            ring::Action::WalkDone { walk, members } => Action::WalkDone { walk, members },
            ring::Action::Event(event) => Action::Event(Event::Ring(event)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::peer;

    fn at(ms: u64, wall_ms: u64) -> Time {
        Time {
            now: Duration::from_millis(ms),
            wall_ms,
        }
    }

    fn drain(host: &mut Host) -> Vec<Action> {
        std::iter::from_fn(|| host.poll_action()).collect()
    }

    #[test]
    fn ring_requests_are_answered_at_once() {
        let mut host = Host::new(
            peer(1),
            RingConfig::default(),
            KvConfig::default(),
            1,
            at(0, 0),
        );
        assert_eq!(
            host.handle_request(at(1, 1), peer(2), Request::Ping),
            Reply::Now(Response::Pong)
        );
    }

    #[test]
    fn an_indirect_probe_is_answered_later_once_the_target_answered() {
        let mut host = Host::new(
            peer(1),
            RingConfig::default(),
            KvConfig::default(),
            1,
            at(0, 0),
        );
        drain(&mut host);
        let reply = host.handle_request(at(1, 1), peer(2), Request::ProbeFor { target: peer(3) });
        let Reply::Later(inbound) = reply else {
            panic!("a probe for another node cannot be answered at once: {reply:?}");
        };
        let sent = drain(&mut host);
        let rpc = sent
            .iter()
            .find_map(|a| match a {
                Action::Send {
                    rpc,
                    to,
                    request: Request::Ping,
                } if *to == peer(3) => Some(*rpc),
                _ => None,
            })
            .expect("the target is pinged");
        assert_eq!(rpc.machine(), Some(Machine::Ring));
        host.handle_response(at(5, 5), rpc, Response::Pong);
        assert!(drain(&mut host).contains(&Action::Respond {
            inbound,
            response: Response::Pong
        }));
    }

    #[test]
    fn an_indirect_probe_of_a_silent_target_is_answered_with_an_error() {
        let mut host = Host::new(
            peer(1),
            RingConfig::default(),
            KvConfig::default(),
            1,
            at(0, 0),
        );
        drain(&mut host);
        let Reply::Later(inbound) =
            host.handle_request(at(1, 1), peer(2), Request::ProbeFor { target: peer(3) })
        else {
            panic!("deferred");
        };
        // Timers fire (stabilize, the ping's deadline...) until the answer comes.
        let mut answered = false;
        for _ in 0..20 {
            let next = host.poll_timeout().expect("the ping has a deadline");
            host.handle_timeout(Time {
                now: next,
                wall_ms: 10_000,
            });
            answered |= drain(&mut host).into_iter().any(|a| {
                matches!(a, Action::Respond { inbound: i, response: Response::Error { .. } } if i == inbound)
            });
            if answered {
                break;
            }
        }
        assert!(answered, "the asker learns that the target did not answer");
    }

    #[test]
    fn an_answer_to_an_id_no_machine_made_is_ignored() {
        let mut host = Host::new(
            peer(1),
            RingConfig::default(),
            KvConfig::default(),
            1,
            at(0, 0),
        );
        drain(&mut host);
        let stranger = RpcId::new(Machine::Ring, 999_999);
        host.handle_response(at(1, 1), stranger, Response::Pong);
        host.handle_failure(at(1, 1), stranger);
        let work: Vec<Action> = drain(&mut host)
            .into_iter()
            .filter(|a| !matches!(a, Action::Event(_)))
            .collect();
        assert_eq!(work, vec![], "nothing is sent or answered");
    }

    #[test]
    fn a_put_that_loses_to_a_newer_version_is_stamped_after_it_and_written_again() {
        // A ring of one: the local store is the only replica. It holds a
        // version 5 s ahead of this node's clock (another writer's clock).
        let mut host = Host::new(
            peer(1),
            RingConfig::default(),
            KvConfig::default(),
            1,
            at(0, 1_000_000),
        );
        drain(&mut host);
        let newer = Version::new(
            crate::version::HlcTimestamp {
                physical_ms: 1_005_000,
                logical: 0,
            },
            peer(2).id,
        );
        let time = at(1, 1_000_001);
        let op = host.put(time, b"key", b"mine".to_vec()).expect("serving");
        let mut written = None;
        for _ in 0..4 {
            let actions = drain(&mut host);
            if let Some(result) = actions.iter().find_map(|a| match a {
                Action::KvDone { op: o, result } if *o == op => Some(result.clone()),
                _ => None,
            }) {
                written = Some(result);
                break;
            }
            for action in actions {
                let Action::Storage { ticket, request } = action else {
                    continue;
                };
                let outcome = match request {
                    StorageRequest::Apply(records) => StorageOutcome::Stored(
                        records
                            .iter()
                            .map(|r| (r.version <= newer).then_some(newer))
                            .collect(),
                    ),
                    other => panic!("unexpected store call {other:?}"),
                };
                host.storage_done(time, ticket, outcome);
            }
        }
        match written {
            Some(Ok(OpResult::Written { version })) => assert!(version > newer, "{version:?}"),
            other => panic!("the put must be written after the newer version: {other:?}"),
        }
    }

    #[test]
    fn versions_grow_even_when_the_wall_clock_steps_back() {
        let mut host = Host::new(
            peer(1),
            RingConfig::default(),
            KvConfig::default(),
            1,
            at(0, 0),
        );
        let first = host.stamp(at(1, 5_000));
        let second = host.stamp(at(2, 1_000));
        assert!(second > first, "{second:?} after {first:?}");
        assert_eq!(first.node, peer(1).id);
    }
}
