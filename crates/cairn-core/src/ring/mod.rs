//! The membership state machine of one node: join, stabilize/notify in Zave's
//! corrected form, check predecessor, fix fingers, failure handling, graceful
//! leave, and the lookups this node drives.
//!
//! It is sans-IO: the caller feeds events (`handle_request`,
//! `handle_response`, `handle_failure`, `handle_timeout`, `join`, `leave`,
//! `start_lookup`) with the current time, and drains what to do with
//! `poll_action` and `poll_timeout`. Requests it sends carry a [`RingRpc`]; the
//! caller reports each one's answer or failure back under that id. Most
//! requests it receives are answered at once; one that needs another
//! round trip first (an indirect probe) is answered later by
//! [`Action::Respond`]. The [`crate::host::Host`] drives it.
//!
//! The rules (DESIGN.md, Ring maintenance):
//! - join: look up successor(me) through a bootstrap peer; that node
//!   becomes the first successor; stabilize at once.
//! - stabilize: ask the first successor s for (predecessor, successor list).
//!   If s fails, drop it and retry with the next. If its predecessor p lies
//!   strictly between me and s, ask p too, and adopt p only if it answers.
//!   Then successors = `[first] ++` first's list, and notify first.
//! - notify: adopt the notifier as predecessor if there is none or it lies
//!   strictly between the current one and me.
//! - a node never adopts a peer that has not answered as its first successor,
//!   and its list never holds itself or a duplicate.
//!
//! The work is split by concept, one child module each:
//! - [`rpc`]: the requests under way and the late answers worth measuring;
//! - `failures`: what a failed, timed-out or refused request means, by its
//!   purpose (only the ring's own probes and requests weigh on liveness);
//! - `exchange`: the lists stabilization exchanges, sent only when changed;
//! - [`timers`]: the periodic work as an enum of timer kinds;
//! - `join`: joining, with paced retries through the seeds until a deadline;
//! - `stabilize`: stabilize, notify, check predecessor;
//! - `fingers`: checking and refreshing fingers;
//! - `merge`: merge probes through peers given up for dead and the seeds,
//!   also how a member that lost every neighbour finds its way back;
//! - `leave`: the graceful leave, and a neighbour's leave notice;
//! - `lookups`: the lookups this node drives, whatever they are for;
//! - [`walk`]: the walk round the ring behind `GET /v1/ring`.
//!
//! Liveness (which peers are believed dead) is its own module,
//! [`crate::liveness`].

mod exchange;
mod failures;
mod fingers;
mod join;
mod leave;
mod lookups;
mod merge;
pub mod rpc;
mod stabilize;
pub mod timers;
pub mod walk;

#[cfg(test)]
mod tests;

use crate::config::RingConfig;
use crate::id::{Id, NodeId};
use crate::liveness::Liveness;
use crate::lookup::{LookupError, Owner};
use crate::range::KeyRange;
use crate::rng::Rng;
use crate::routing::RoutingTable;
use crate::rpc::InboundId;
use crate::rtt::RttEstimator;
use crate::wire::{Peer, Request, Response};
use exchange::HeldList;
use lookups::RunningLookup;
use merge::Graveyard;
pub use rpc::RingRpc;
use rpc::{Outstanding, Purpose};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use timers::{Timer, Timers};
use walk::{RunningWalk, WalkId, WalkedMember};

/// How many recently heard peers a node remembers as a last resort.
pub const ACQUAINTANCES: usize = 16;
/// How many peers given up for dead a node keeps probing.
pub const GRAVEYARD: usize = 16;
/// With nobody dead to probe, the seed is probed once in this many probe periods.
pub const SEED_PROBE_EVERY: u64 = 6;

/// Names one lookup started with [`RingNode::start_lookup`].
pub type LookupId = u64;

/// What the caller must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send `request` to `to`, then call `handle_response` or `handle_failure` with `rpc`.
    Send {
        rpc: RingRpc,
        to: Peer,
        request: Request,
    },
    /// The answer to request `inbound`, which `handle_request` deferred.
    Respond {
        inbound: InboundId,
        response: Response,
    },
    /// A lookup started with `start_lookup` finished.
    LookupDone {
        lookup: LookupId,
        result: Result<LookupAnswer, LookupError>,
    },
    /// A walk started with `start_walk` finished: the members in ring order
    /// from this node, as judged on the way.
    WalkDone {
        walk: WalkId,
        members: Vec<WalkedMember>,
    },
    /// Something the caller may want to log or react to.
    Event(RingEvent),
}

/// The answer to a finished lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupAnswer {
    pub target: Id,
    /// successor(target).
    pub node: Peer,
    /// The nodes after it, as the answerer knew them, without those this
    /// node believes dead: with `node`, the replica set of the target.
    pub next: Vec<Peer>,
    /// Nodes that answered on the way (0 when this node knew the answer).
    pub hops: u32,
    pub elapsed: Duration,
}

/// Changes of this node's place on the ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RingEvent {
    /// The join finished: the successor answered and was notified.
    Joined {
        successor: Peer,
    },
    /// The join failed for good (every attempt until its deadline): the
    /// node serves nobody and should stop.
    JoinFailed {
        reason: String,
    },
    /// A member lost every neighbour: it goes on as a ring of one (it may be
    /// the last survivor) and probes everyone it knew for the ring.
    Isolated {
        reason: String,
    },
    SuccessorChanged {
        successor: Option<Peer>,
    },
    PredecessorChanged {
        predecessor: Option<Peer>,
    },
    /// What this node must hold changed: the keys in `held`, (R-th
    /// predecessor, me] (the whole ring while fewer than R predecessors are
    /// known), and `replicas`, me and my first R - 1 successors, the nodes
    /// that hold the keys this node owns.
    RangeChanged {
        held: KeyRange,
        replicas: Vec<Peer>,
    },
    /// A peer missed `misses_to_dead` requests in a row: judged dead;
    /// `dropped` if it was in the routing table (a peer probed again after
    /// an old verdict expired was not).
    PeerFailed {
        peer: Peer,
        dropped: bool,
    },
    /// The graceful leave finished: neighbours were told (or did not answer).
    Left,
}

/// Where the node is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Alone, or a member of a ring.
    Active,
    /// Looking for its place: attempt `attempt` (from 0) through the seeds
    /// in turn, giving up at `until`.
    Joining { attempt: u32, until: Duration },
    /// The join failed for good: it answers nothing but errors, schedules
    /// nothing (the caller stops it).
    JoinFailed,
    /// Telling its neighbours that it leaves; `awaiting` answers.
    Leaving { awaiting: usize },
    /// Gone: answers nothing but errors, schedules nothing.
    Left,
}

/// One node's view of the ring and the work it has under way.
#[derive(Clone, Debug)]
pub struct RingNode {
    config: RingConfig,
    table: RoutingTable,
    phase: Phase,
    rng: Rng,
    rtt: RttEstimator,
    rpcs: Outstanding,
    next_lookup: LookupId,
    lookups: BTreeMap<LookupId, RunningLookup>,
    next_walk: WalkId,
    walks: BTreeMap<WalkId, RunningWalk>,
    liveness: Liveness,
    timers: Timers,
    /// When the predecessor last sent a request (its stabilization asks regularly).
    heard_from_predecessor: Duration,
    next_finger: u8,
    /// Peers given up for dead, probed now and then (see `merge`).
    graveyard: Graveyard,
    /// The peers this node was told to join through: probed now and then
    /// like the graveyard, so that a ring split off without any dead peer to
    /// probe still finds its way back.
    seeds: Vec<Peer>,
    /// True while this member has no neighbour left (reported once).
    isolated: bool,
    /// True while a join attempt is under way (not yet failed or done), so
    /// that a failure of it is counted once.
    join_attempt_running: bool,
    probes: u64,
    /// Peers heard from lately (answers and requests), most recent last, at most
    /// [`ACQUAINTANCES`]: the way back into the ring if every neighbour is lost.
    acquaintances: VecDeque<Peer>,
    /// True once this node had a successor: an isolated node that was a member rejoins.
    was_member: bool,
    /// The successor list last received from a node, with its fingerprint:
    /// its next answer may say "unchanged" instead of sending it again.
    successor_state: Option<HeldList>,
    /// The fingerprint of my predecessor list that my successor holds.
    successor_holds: Option<(NodeId, u64)>,
    /// What the caller was last told, so that changes become events.
    reported_successor: Option<Peer>,
    reported_predecessor: Option<Peer>,
    reported_range: Option<(KeyRange, Vec<Peer>)>,
    /// The routing table's generation when changes were last reported.
    reported_generation: Option<u64>,
    actions: VecDeque<Action>,
}

impl RingNode {
    /// A node alone on its own ring (its own successor) until it joins or is joined.
    pub fn new(me: Peer, config: RingConfig, seed: u64, now: Duration) -> RingNode {
        let mut node = RingNode {
            table: RoutingTable::new(me, config.successor_list_len, config.replicas),
            rtt: RttEstimator::new(config.rto.clone()),
            phase: Phase::Active,
            rng: Rng::new(seed),
            rpcs: Outstanding::new(config.rto.max),
            next_lookup: 1,
            lookups: BTreeMap::new(),
            next_walk: 1,
            walks: BTreeMap::new(),
            liveness: Liveness::new(config.misses_to_dead, config.dead_memory),
            timers: Timers::default(),
            heard_from_predecessor: Duration::ZERO,
            next_finger: 255,
            graveyard: Graveyard::new(config.graveyard_memory),
            seeds: Vec::new(),
            isolated: false,
            join_attempt_running: false,
            probes: 0,
            acquaintances: VecDeque::new(),
            was_member: false,
            successor_state: None,
            successor_holds: None,
            reported_successor: None,
            reported_predecessor: None,
            reported_range: None,
            reported_generation: None,
            actions: VecDeque::new(),
            config,
        };
        // Spread the first rounds so that nodes started together do not tick together.
        for timer in [
            Timer::Stabilize,
            Timer::CheckPredecessor,
            Timer::FixFinger,
            Timer::MergeProbe,
        ] {
            if let Some(period) = node.period(timer) {
                let at = now + node.jittered(period);
                node.timers.set(timer, at);
            }
        }
        node
    }

    pub fn me(&self) -> Peer {
        self.table.me()
    }

    pub fn routing(&self) -> &RoutingTable {
        &self.table
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// How long the core now waits for an answer before calling a peer
    /// unresponsive (adaptive; the caller may use it for its own requests).
    pub fn request_timeout(&self) -> Duration {
        self.rtt.estimate()
    }

    /// Feeds a round trip measured outside the core (e.g. the caller's ping of
    /// a bootstrap address), so that a new node's first timeouts already fit
    /// the network instead of the initial guess.
    pub fn record_rtt(&mut self, rtt: Duration) {
        self.rtt.sample_network(rtt);
    }

    /// The keys this node must hold: (R-th predecessor, me], or the whole
    /// ring while it knows fewer than R predecessors (a small ring, or a
    /// list still being learned: holding more is the safe side).
    pub fn held_range(&self) -> KeyRange {
        let me = self.me().id.id();
        match self.table.predecessors().get(self.config.replicas - 1) {
            Some(last) => KeyRange::new(last.id.id(), me),
            None => KeyRange::whole(),
        }
    }

    /// The nodes that hold the keys this node owns: me and my first R - 1 successors.
    pub fn replica_set(&self) -> Vec<Peer> {
        std::iter::once(self.me())
            .chain(self.table.successors().iter().copied())
            .take(self.config.replicas)
            .collect()
    }

    /// The first `count` live nodes from successor(`key`) on, if this node's
    /// own tables name them (it or its first successor owns the key).
    pub fn replicas_of(&self, key: Id, count: usize) -> Option<Vec<Peer>> {
        let (owner, next) = self.table.local_owner_with_next(key)?;
        Some(
            self.live_in_order(std::iter::once(&owner).chain(&next), None)
                .take(count)
                .collect(),
        )
    }

    /// True if `id` was judged dead (`misses_to_dead` misses in a row) or
    /// departed, and was not heard from since.
    pub fn is_dead(&self, id: NodeId) -> bool {
        self.liveness.is_dead(id)
    }

    // ---- inputs ----

    /// Starts a lookup of successor(target); its end comes as [`Action::LookupDone`].
    pub fn start_lookup(&mut self, now: Duration, target: Id) -> LookupId {
        let id = self.launch_lookup(now, target, lookups::LookupKind::User);
        self.report_changes();
        id
    }

    /// Answers a request from `from` (whose id the transport authenticated):
    /// at once, or `None` and later by [`Action::Respond`] with `inbound`.
    pub fn handle_request(
        &mut self,
        now: Duration,
        from: Peer,
        inbound: InboundId,
        request: Request,
    ) -> Option<Response> {
        self.liveness.heard_from(now, from.id);
        self.table.refresh_address(from);
        self.remember(from);
        if self.table.predecessor().is_some_and(|p| p.id == from.id) {
            self.heard_from_predecessor = now;
        }
        match self.phase {
            Phase::Left => {
                return Some(Response::Error {
                    reason: "this node has left the ring".into(),
                });
            }
            Phase::JoinFailed => {
                return Some(Response::Error {
                    reason: "this node could not join the ring".into(),
                });
            }
            _ => {}
        }
        if matches!(self.phase, Phase::Joining { .. })
            && matches!(
                request,
                Request::GetState { .. } | Request::Notify | Request::FindSuccessor { .. }
            )
        {
            // Not a member yet: serving as someone's bootstrap or successor now
            // could start a second ring that stabilization can never merge.
            return Some(Response::Error {
                reason: "this node is still joining the ring".into(),
            });
        }
        let response = match request {
            Request::GetState { have, predecessors } => self.answer_state(from, have, predecessors),
            Request::Notify => {
                self.on_notify(now, from);
                Response::Ack
            }
            Request::Ping => Response::Pong,
            Request::GetPredecessor => Response::Predecessor {
                predecessor: self.table.predecessor(),
            },
            Request::FindSuccessor { target } => match self.table.local_owner_with_next(target) {
                Some((node, next)) => Response::Found { node, next },
                None => Response::Closer {
                    candidates: self
                        .table
                        .closest_preceding(target, self.config.lookup_candidates),
                },
            },
            Request::Leaving {
                predecessor,
                successors,
            } => {
                self.on_leaving(now, from, predecessor, successors);
                Response::Ack
            }
            Request::Introduce { node } => {
                self.on_introduced(now, node);
                Response::Ack
            }
            // The host gives replication requests to replication.
            Request::Store { .. }
            | Request::Fetch { .. }
            | Request::StoreMany { .. }
            | Request::ListKeys { .. }
            | Request::SyncRange { .. }
            | Request::SyncNodes { .. }
            | Request::ListVersions { .. } => Response::Error {
                reason: "not a ring request".into(),
            },
            Request::ProbeFor { target } => {
                if target.id == self.me().id {
                    Response::Pong
                } else {
                    self.send(now, target, Request::Ping, Purpose::Relay(inbound));
                    self.report_changes();
                    return None;
                }
            }
        };
        self.report_changes();
        Some(response)
    }

    /// The answer to request `rpc` arrived.
    pub fn handle_response(&mut self, now: Duration, rpc: RingRpc, response: Response) {
        let Some(pending) = self.rpcs.close(rpc) else {
            if let Some(late) = self.rpcs.take_late(rpc) {
                // Too late to use, but the peer is alive and the network slower
                // than the timeout assumed.
                if !matches!(late.purpose, Purpose::IndirectProbe(_)) {
                    self.rtt
                        .sample(late.to.id, now.saturating_sub(late.sent_at));
                }
                self.liveness.heard_from(now, late.to.id);
                self.remember(late.to);
            }
            return;
        };
        if !matches!(pending.purpose, Purpose::IndirectProbe(_)) {
            // (An indirect probe spans two hops and a wait: not a round trip.)
            self.rtt
                .sample(pending.to.id, now.saturating_sub(pending.sent_at));
        }
        self.liveness.heard_from(now, pending.to.id);
        let from = pending.to;
        self.remember(from);
        match (pending.purpose, response) {
            (
                purpose @ (Purpose::Stabilize | Purpose::StabilizeCandidate | Purpose::Closer),
                Response::State {
                    predecessor,
                    successors,
                    have_predecessors,
                    ..
                },
            ) => {
                let keep = purpose != Purpose::Closer;
                let Some(successors) = self.take_state(from, successors, have_predecessors, keep)
                else {
                    // "Unchanged", of a list no longer held: ask for the whole list.
                    let request = self.state_request(from);
                    self.send(now, from, request, purpose);
                    self.report_changes();
                    return;
                };
                match purpose {
                    Purpose::Stabilize => {
                        self.on_successor_state(now, from, predecessor, &successors);
                    }
                    Purpose::StabilizeCandidate => {
                        self.on_candidate_state(now, from, predecessor, &successors);
                    }
                    _ => self.on_closer_state(now, from, &successors),
                }
            }
            (Purpose::Notify | Purpose::Introduce, Response::Ack) => {}
            (Purpose::CheckPredecessor, Response::Pong) => {
                self.timers.set_busy(Timer::CheckPredecessor, false);
            }
            (Purpose::Lookup(id), Response::Found { node, next }) => {
                if let Some(running) = self.lookups.get_mut(&id) {
                    running.lookup.on_found(from.id, Owner { node, next });
                }
                self.drive_lookup(now, id);
            }
            (Purpose::Lookup(id), Response::Closer { candidates }) => {
                if let Some(running) = self.lookups.get_mut(&id) {
                    running.lookup.on_closer(from.id, candidates);
                }
                self.drive_lookup(now, id);
            }
            (Purpose::Leave, _) => self.leave_answered(),
            (Purpose::CheckFinger(index), Response::Predecessor { predecessor }) => {
                self.on_finger_predecessor(now, from, index, predecessor);
            }
            (
                Purpose::Walk(id),
                Response::State {
                    successors, http, ..
                },
            ) => self.on_walk_state(now, id, from, http, successors.unwrap_or_default()),
            (Purpose::Probe, Response::Pong) => {}
            (Purpose::Relay(inbound), Response::Pong) => {
                self.actions.push_back(Action::Respond {
                    inbound,
                    response: Response::Pong,
                });
            }
            (Purpose::IndirectProbe(target), Response::Pong) => {
                self.liveness.reported_alive(target);
            }
            // The other node could not reach the suspect: no evidence either way.
            (Purpose::IndirectProbe(_), Response::Error { .. }) => {}
            (purpose, _) => {
                // An error or an answer of the wrong kind: the peer cannot serve us.
                self.on_refused(now, from, purpose);
            }
        }
        self.report_changes();
    }

    /// Request `rpc` failed (unreachable, refused, reset) before its timeout.
    pub fn handle_failure(&mut self, now: Duration, rpc: RingRpc) {
        if let Some(pending) = self.rpcs.close(rpc) {
            self.on_failed(now, pending);
        }
        self.report_changes();
    }

    /// Time passed: expire requests and lookups, run the periodic work that is due.
    pub fn handle_timeout(&mut self, now: Duration) {
        for rpc in self.rpcs.due(now) {
            if let Some(pending) = self.rpcs.time_out(rpc) {
                let backs_off = !matches!(
                    pending.purpose,
                    Purpose::Probe | Purpose::Relay(_) | Purpose::IndirectProbe(_)
                ) && !self.liveness.is_dead(pending.to.id);
                if backs_off {
                    self.rtt.backoff(pending.to.id);
                }
                self.on_failed(now, pending);
            }
        }
        self.rpcs.forget_late(now);
        self.wake_lookups(now);
        self.liveness.forget_old(now);
        if self.runs_timers() {
            let due: Vec<Timer> = self.timers.due(now).collect();
            for timer in due {
                if let Some(period) = self.period(timer) {
                    let at = now + self.jittered(period);
                    self.timers.set(timer, at);
                }
                match timer {
                    Timer::Stabilize => self.stabilize(now),
                    Timer::CheckPredecessor => self.check_predecessor(now),
                    Timer::MergeProbe => self.probe_graveyard(now),
                    Timer::FixFinger => self.fix_next_finger(now),
                    Timer::JoinRetry => self.retry_join(now),
                }
            }
        }
        self.report_changes();
    }

    // ---- outputs ----

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When `handle_timeout` should be called next.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let requests = self.rpcs.next_deadline();
        let lookups = self.lookups.values().map(|l| l.lookup.wake_at()).min();
        let timers = self.runs_timers().then(|| self.timers.next()).flatten();
        [requests, lookups, timers].into_iter().flatten().min()
    }

    // ---- shared by the protocol's parts ----

    /// False once the node leaves or failed to join: no periodic work any
    /// more, and late answers change nothing.
    fn runs_timers(&self) -> bool {
        matches!(self.phase, Phase::Active | Phase::Joining { .. })
    }

    /// The period of a periodic timer; `None` for a one-off one.
    fn period(&self, timer: Timer) -> Option<Duration> {
        match timer {
            Timer::Stabilize => Some(self.config.stabilize_every),
            Timer::CheckPredecessor => Some(self.config.check_predecessor_every),
            Timer::MergeProbe => Some(self.config.probe_dead_every),
            Timer::FixFinger => Some(self.config.fix_finger_every),
            Timer::JoinRetry => None,
        }
    }

    fn jittered(&mut self, period: Duration) -> Duration {
        let spread = self.config.timer_jitter * (2.0 * self.rng.next_f64() - 1.0);
        period.mul_f64(1.0 + spread)
    }

    fn send(&mut self, now: Duration, to: Peer, request: Request, purpose: Purpose) -> RingRpc {
        let timeout = match purpose {
            Purpose::Probe => self.rtt.estimate(),
            // Two round trips: to the helper, and from it to the suspect.
            Purpose::IndirectProbe(_) => self.rtt.timeout(to.id) * 2,
            _ => self.rtt.timeout(to.id),
        };
        let rpc = self.rpcs.open(to, purpose, now, timeout);
        self.actions.push_back(Action::Send { rpc, to, request });
        rpc
    }

    /// A peer answered or asked: it is alive, and a way back in if all else fails.
    fn remember(&mut self, peer: Peer) {
        self.graveyard.revive(peer.id);
        if self.acquaintances.back() == Some(&peer) {
            return; // The common case: the same peer again.
        }
        if let Some(at) = self.acquaintances.iter().position(|p| p.id == peer.id) {
            self.acquaintances.remove(at);
        }
        if self.acquaintances.len() == ACQUAINTANCES {
            self.acquaintances.pop_front();
        }
        self.acquaintances.push_back(peer);
    }

    /// `peers` in order without the ones believed dead (and without `except`,
    /// e.g. me or a leaver): the candidates for successor(x), best first.
    fn live_in_order<'a>(
        &'a self,
        peers: impl IntoIterator<Item = &'a Peer> + 'a,
        except: Option<NodeId>,
    ) -> impl Iterator<Item = Peer> + 'a {
        peers
            .into_iter()
            .filter(move |p| Some(p.id) != except && !self.liveness.is_dead(p.id))
            .copied()
    }

    /// Turns changes of successor and predecessor into events, once each.
    fn report_changes(&mut self) {
        if self.reported_generation == Some(self.table.generation()) {
            return; // The common case: nothing changed.
        }
        self.reported_generation = Some(self.table.generation());
        let successor = self.table.successor();
        if successor.is_some() {
            self.isolated = false;
        }
        if successor != self.reported_successor {
            self.reported_successor = successor;
            self.actions
                .push_back(Action::Event(RingEvent::SuccessorChanged { successor }));
        }
        let predecessor = self.table.predecessor();
        if predecessor != self.reported_predecessor {
            self.reported_predecessor = predecessor;
            self.actions
                .push_back(Action::Event(RingEvent::PredecessorChanged { predecessor }));
        }
        let held = self.held_range();
        let replicas = self.replica_set();
        let changed = self
            .reported_range
            .as_ref()
            .is_none_or(|(h, r)| *h != held || *r != replicas);
        if changed {
            self.reported_range = Some((held, replicas.clone()));
            self.actions
                .push_back(Action::Event(RingEvent::RangeChanged { held, replicas }));
        }
    }
}
