//! The membership state machine of one node: join, stabilize/notify in Zave's
//! corrected form, check predecessor, fix fingers, failure handling, graceful
//! leave, and the lookups this node drives.
//!
//! It is sans-IO: the caller feeds events (`handle_request`,
//! `handle_response`, `handle_failure`, `handle_timeout`, `join`, `leave`,
//! `start_lookup`) with the current time, and drains what to do with
//! `poll_action` and `poll_timeout`. Requests it sends carry an [`RpcId`]; the
//! caller reports each one's answer or failure back under that id. Every
//! request has an adaptive timeout; a peer that misses one is treated as dead,
//! dropped from the routing table, and kept off it (when other nodes still
//! mention it) until it is heard from directly or `dead_memory` has passed.
//!
//! The rules (DESIGN.md, Ring maintenance):
//! - join: look up successor(me + 1) through a bootstrap peer; that node
//!   becomes the first successor; stabilize at once.
//! - stabilize: ask the first successor s for (predecessor, successor list).
//!   If s fails, drop it and retry with the next. If its predecessor p lies
//!   strictly between me and s, ask p too, and adopt p only if it answers.
//!   Then successors = [first] ++ first's list, and notify first.
//! - notify: adopt the notifier as predecessor if there is none or it lies
//!   strictly between the current one and me.
//! - a node never adopts a peer that has not answered as its first successor,
//!   and its list never holds itself or a duplicate.

use crate::config::RingConfig;
use crate::id::{Id, NodeId};
use crate::interval::{between_open, between_right_closed};
use crate::lookup::{Lookup, LookupError, LookupStep, Owner};
use crate::rng::Rng;
use crate::routing::RoutingTable;
use crate::rtt::RttEstimator;
use crate::wire::{Peer, Request, Response};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// How many recently heard peers a node remembers as a last resort.
pub const ACQUAINTANCES: usize = 16;
/// How many peers given up for dead a node keeps probing.
pub const GRAVEYARD: usize = 16;
/// With nobody dead to probe, the seed is probed once in this many probe periods.
pub const SEED_PROBE_EVERY: u64 = 6;

/// Names one request this node sent, so that its answer can be matched.
pub type RpcId = u64;
/// Names one lookup started with [`RingNode::start_lookup`].
pub type LookupId = u64;

/// What the caller must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send `request` to `to`, then call `handle_response` or `handle_failure` with `rpc`.
    Send {
        rpc: RpcId,
        to: Peer,
        request: Request,
    },
    /// A lookup started with `start_lookup` finished.
    LookupDone {
        lookup: LookupId,
        result: Result<LookupAnswer, LookupError>,
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
    /// Every join attempt failed; the node stays alone.
    JoinFailed {
        reason: String,
    },
    /// A member lost every neighbour and could not rejoin through any peer it
    /// knew: it goes on as a ring of one (it may be the last survivor).
    Isolated {
        reason: String,
    },
    SuccessorChanged {
        successor: Option<Peer>,
    },
    PredecessorChanged {
        predecessor: Option<Peer>,
    },
    /// A peer did not answer in time and was dropped from the routing table.
    PeerFailed {
        peer: Peer,
    },
    /// The graceful leave finished: neighbours were told (or did not answer).
    Left,
}

/// Where the node is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Alone, or a member of a ring.
    Active,
    /// Looking for its place through `bootstrap`.
    Joining { bootstrap: Peer, attempts: u32 },
    /// Telling its neighbours that it leaves; `awaiting` answers.
    Leaving { awaiting: usize },
    /// Gone: answers nothing but errors, schedules nothing.
    Left,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    Stabilize,
    /// Checking that the successor's predecessor is alive before adopting it.
    StabilizeCandidate,
    Notify,
    CheckPredecessor,
    Lookup(LookupId),
    Leave,
    /// Checking a node that a merge lookup found between me and my successor.
    MergeCandidate,
    /// Asking finger i for its predecessor: if the finger's start still lies
    /// between that predecessor and the finger, it is still right.
    CheckFinger(u8),
}

#[derive(Clone, Debug)]
struct PendingRpc {
    to: Peer,
    purpose: Purpose,
    sent_at: Duration,
    deadline: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LookupKind {
    User,
    Join,
    Finger(u8),
    /// successor(me) looked up through a peer once given up for dead: if that
    /// peer is alive in another ring (after a partition healed), the answer
    /// links the two rings together.
    Merge,
}

#[derive(Clone, Debug)]
struct RunningLookup {
    lookup: Lookup,
    kind: LookupKind,
}

/// One node's view of the ring and the work it has under way.
#[derive(Clone, Debug)]
pub struct RingNode {
    config: RingConfig,
    table: RoutingTable,
    phase: Phase,
    rng: Rng,
    rtt: RttEstimator,
    next_rpc: RpcId,
    pending: BTreeMap<RpcId, PendingRpc>,
    /// Requests that timed out, kept until `rto.max` after their deadline: a
    /// late answer still measures the round trip (so timeouts grow when the
    /// network slows down) and proves the peer alive.
    expired: BTreeMap<RpcId, PendingRpc>,
    next_lookup: LookupId,
    lookups: BTreeMap<LookupId, RunningLookup>,
    /// Peers that missed a request, with when; kept off hearsay lists for `dead_memory`.
    dead: BTreeMap<NodeId, Duration>,
    stabilizing: bool,
    /// When the predecessor last sent a request (its stabilization asks regularly).
    heard_from_predecessor: Duration,
    checking_predecessor: bool,
    fixing_finger: bool,
    next_finger: u8,
    next_stabilize: Duration,
    next_check_predecessor: Duration,
    next_fix_finger: Duration,
    next_probe: Duration,
    /// Peers given up for dead, with when; probed now and then (see
    /// [`LookupKind::Merge`]) until `graveyard_memory` has passed.
    graveyard: VecDeque<(Peer, Duration)>,
    /// The peer this node first joined through: probed now and then like the
    /// graveyard, so that a ring split off without any dead peer to probe
    /// still finds its way back.
    seed: Option<Peer>,
    probes: u64,
    /// Peers heard from lately (answers and requests), most recent last, at most
    /// [`ACQUAINTANCES`]: the way back into the ring if every neighbour is lost.
    acquaintances: VecDeque<Peer>,
    /// True once this node had a successor: an isolated node that was a member rejoins.
    was_member: bool,
    /// What the caller was last told, so that changes become events.
    reported_successor: Option<Peer>,
    reported_predecessor: Option<Peer>,
    actions: VecDeque<Action>,
}

impl RingNode {
    /// A node alone on its own ring (its own successor) until it joins or is joined.
    pub fn new(me: Peer, config: RingConfig, seed: u64, now: Duration) -> RingNode {
        let mut node = RingNode {
            table: RoutingTable::new(me, config.successor_list_len),
            rtt: RttEstimator::new(config.rto.clone()),
            phase: Phase::Active,
            rng: Rng::new(seed),
            next_rpc: 1,
            pending: BTreeMap::new(),
            expired: BTreeMap::new(),
            next_lookup: 1,
            lookups: BTreeMap::new(),
            dead: BTreeMap::new(),
            stabilizing: false,
            heard_from_predecessor: Duration::ZERO,
            checking_predecessor: false,
            fixing_finger: false,
            next_finger: 255,
            next_stabilize: now,
            next_check_predecessor: now,
            next_fix_finger: now,
            next_probe: now,
            graveyard: VecDeque::new(),
            seed: None,
            probes: 0,
            acquaintances: VecDeque::new(),
            was_member: false,
            reported_successor: None,
            reported_predecessor: None,
            actions: VecDeque::new(),
            config,
        };
        node.next_stabilize = now + node.jittered(node.config.stabilize_every);
        node.next_check_predecessor = now + node.jittered(node.config.check_predecessor_every);
        node.next_fix_finger = now + node.jittered(node.config.fix_finger_every);
        node.next_probe = now + node.jittered(node.config.probe_dead_every);
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
        self.rtt.timeout()
    }

    /// Feeds a round trip measured outside the core (e.g. the caller's ping of
    /// a bootstrap address), so that a new node's first timeouts already fit
    /// the network instead of the initial guess.
    pub fn record_rtt(&mut self, rtt: Duration) {
        self.rtt.sample(rtt);
    }

    /// True if `id` missed a request recently and was not heard from since.
    pub fn is_dead(&self, id: NodeId) -> bool {
        self.dead.contains_key(&id)
    }

    // ---- inputs ----

    /// Joins the ring that `bootstrap` is a member of.
    pub fn join(&mut self, now: Duration, bootstrap: Peer) {
        if bootstrap.id == self.me().id {
            return;
        }
        self.phase = Phase::Joining {
            bootstrap,
            attempts: 0,
        };
        self.seed.get_or_insert(bootstrap);
        self.start_join_lookup(now, bootstrap);
        self.report_changes();
    }

    /// Leaves gracefully: tells the predecessor (with this node's successor
    /// list) and the successor (with this node's predecessor), then stops.
    pub fn leave(&mut self, now: Duration) {
        if matches!(self.phase, Phase::Leaving { .. } | Phase::Left) {
            return;
        }
        // Leaving from here on: aborted lookups (a join among them) must not retry.
        self.phase = Phase::Leaving { awaiting: 0 };
        for id in self.lookups.keys().copied().collect::<Vec<_>>() {
            if let Some(mut running) = self.lookups.remove(&id) {
                running.lookup.abort(LookupError::Leaving);
                self.complete_lookup(now, id, running, Err(LookupError::Leaving));
            }
        }
        let notice = Request::Leaving {
            predecessor: self.table.predecessor(),
            successors: self.table.successors().to_vec(),
        };
        let mut neighbours: Vec<Peer> = self.table.successor().into_iter().collect();
        if let Some(predecessor) = self.table.predecessor()
            && !neighbours.iter().any(|p| p.id == predecessor.id)
        {
            neighbours.push(predecessor);
        }
        self.phase = Phase::Leaving {
            awaiting: neighbours.len(),
        };
        for peer in neighbours {
            self.send(now, peer, notice.clone(), Purpose::Leave);
        }
        self.maybe_left();
    }

    /// Starts a lookup of successor(target); its end comes as [`Action::LookupDone`].
    pub fn start_lookup(&mut self, now: Duration, target: Id) -> LookupId {
        let id = self.launch_lookup(now, target, LookupKind::User);
        self.report_changes();
        id
    }

    /// Answers a request from `from` (whose id the transport authenticated).
    pub fn handle_request(&mut self, now: Duration, from: Peer, request: Request) -> Response {
        self.dead.remove(&from.id);
        self.table.refresh_address(from);
        self.remember(from);
        if self.table.predecessor().is_some_and(|p| p.id == from.id) {
            self.heard_from_predecessor = now;
        }
        if matches!(self.phase, Phase::Left) {
            return Response::Error {
                reason: "this node has left the ring".into(),
            };
        }
        if matches!(self.phase, Phase::Joining { .. })
            && matches!(
                request,
                Request::GetState | Request::Notify | Request::FindSuccessor { .. }
            )
        {
            // Not a member yet: serving as someone's bootstrap or successor now
            // could start a second ring that stabilization can never merge.
            return Response::Error {
                reason: "this node is still joining the ring".into(),
            };
        }
        let response = match request {
            Request::GetState => Response::State {
                predecessor: self.table.predecessor(),
                successors: self.table.successors().to_vec(),
                http: self.config.http.clone(),
            },
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
        };
        self.report_changes();
        response
    }

    /// The answer to request `rpc` arrived.
    pub fn handle_response(&mut self, now: Duration, rpc: RpcId, response: Response) {
        let Some(pending) = self.pending.remove(&rpc) else {
            if let Some(late) = self.expired.remove(&rpc) {
                // Too late to use, but the peer is alive and the network slower
                // than the timeout assumed.
                self.rtt.sample(now.saturating_sub(late.sent_at));
                self.dead.remove(&late.to.id);
                self.remember(late.to);
            }
            return;
        };
        self.rtt.sample(now.saturating_sub(pending.sent_at));
        self.dead.remove(&pending.to.id);
        let from = pending.to;
        self.remember(from);
        match (pending.purpose, response) {
            (
                Purpose::Stabilize,
                Response::State {
                    predecessor,
                    successors,
                    ..
                },
            ) => self.on_successor_state(now, from, predecessor, &successors),
            (
                Purpose::StabilizeCandidate,
                Response::State {
                    predecessor,
                    successors,
                    ..
                },
            ) => {
                self.table
                    .adopt_successors(from, &successors, |p| !self.dead.contains_key(&p.id));
                // Its own predecessor may be closer still (many nodes joined
                // between me and my old successor): follow the chain at once
                // rather than one step per stabilization period.
                let me = self.me().id;
                match predecessor {
                    Some(closer)
                        if closer.id != me
                            && between_open(me.id(), closer.id.id(), from.id.id()) =>
                    {
                        self.send(now, closer, Request::GetState, Purpose::StabilizeCandidate);
                    }
                    _ => {
                        self.send(now, from, Request::Notify, Purpose::Notify);
                        self.stabilizing = false;
                    }
                }
            }
            (Purpose::Notify, Response::Ack) => {}
            (Purpose::CheckPredecessor, Response::Pong) => self.checking_predecessor = false,
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
                let start = self.table.finger_start(index);
                let still_right = predecessor
                    .is_some_and(|p| between_right_closed(p.id.id(), start, from.id.id()));
                if still_right {
                    self.fixing_finger = false;
                } else {
                    self.launch_lookup(now, start, LookupKind::Finger(index));
                }
            }
            (Purpose::MergeCandidate, Response::State { successors, .. }) => {
                let me = self.me().id.id();
                let still_closer = self
                    .table
                    .successor()
                    .is_none_or(|s| between_open(me, from.id.id(), s.id.id()));
                if still_closer {
                    self.table
                        .adopt_successors(from, &successors, |p| !self.dead.contains_key(&p.id));
                    self.send(now, from, Request::Notify, Purpose::Notify);
                }
            }
            (purpose, _) => {
                // An error or an answer of the wrong kind: the peer cannot serve us.
                self.on_failed(now, from, purpose);
            }
        }
        self.report_changes();
    }

    /// Request `rpc` failed (unreachable, refused, reset) before its timeout.
    pub fn handle_failure(&mut self, now: Duration, rpc: RpcId) {
        if let Some(pending) = self.pending.remove(&rpc) {
            self.on_failed(now, pending.to, pending.purpose);
        }
        self.report_changes();
    }

    /// Time passed: expire requests and lookups, run the periodic work that is due.
    pub fn handle_timeout(&mut self, now: Duration) {
        let expired: Vec<RpcId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for rpc in expired {
            if let Some(pending) = self.pending.remove(&rpc) {
                self.rtt.backoff();
                self.expired.insert(rpc, pending.clone());
                self.on_failed(now, pending.to, pending.purpose);
            }
        }
        let keep_late = self.config.rto.max;
        self.expired
            .retain(|_, p| now.saturating_sub(p.deadline) < keep_late);
        let overdue: Vec<LookupId> = self
            .lookups
            .iter()
            .filter(|(_, l)| l.lookup.wake_at() <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in overdue {
            self.drive_lookup(now, id);
        }
        let memory = self.config.dead_memory;
        self.dead
            .retain(|_, since| now.saturating_sub(*since) < memory);
        if !matches!(self.phase, Phase::Leaving { .. } | Phase::Left) {
            if now >= self.next_stabilize {
                self.next_stabilize = now + self.jittered(self.config.stabilize_every);
                self.stabilize(now);
            }
            if now >= self.next_check_predecessor {
                self.next_check_predecessor =
                    now + self.jittered(self.config.check_predecessor_every);
                self.check_predecessor(now);
            }
            if now >= self.next_probe {
                self.next_probe = now + self.jittered(self.config.probe_dead_every);
                self.probe_graveyard(now);
            }
            if now >= self.next_fix_finger {
                self.next_fix_finger = now + self.jittered(self.config.fix_finger_every);
                self.fix_next_finger(now);
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
        let requests = self.pending.values().map(|p| p.deadline);
        let lookups = self.lookups.values().map(|l| l.lookup.wake_at());
        let timers: &[Duration] = match self.phase {
            Phase::Leaving { .. } | Phase::Left => &[],
            _ => &[
                self.next_stabilize,
                self.next_check_predecessor,
                self.next_fix_finger,
                self.next_probe,
            ],
        };
        requests.chain(lookups).chain(timers.iter().copied()).min()
    }

    // ---- the protocol ----

    fn jittered(&mut self, period: Duration) -> Duration {
        let spread = self.config.timer_jitter * (2.0 * self.rng.next_f64() - 1.0);
        period.mul_f64(1.0 + spread)
    }

    fn send(&mut self, now: Duration, to: Peer, request: Request, purpose: Purpose) -> RpcId {
        let rpc = self.next_rpc;
        self.next_rpc += 1;
        self.pending.insert(
            rpc,
            PendingRpc {
                to,
                purpose,
                sent_at: now,
                deadline: now + self.rtt.timeout(),
            },
        );
        self.actions.push_back(Action::Send { rpc, to, request });
        rpc
    }

    /// Looks up successor(me) through the oldest peer given up for dead. If it
    /// answers, it was only cut off (a partition that healed, a pause): a
    /// closer successor in its ring joins the two rings, which Chord's
    /// stabilization alone can never do.
    fn probe_graveyard(&mut self, now: Duration) {
        let memory = self.config.graveyard_memory;
        self.graveyard
            .retain(|(_, since)| now.saturating_sub(*since) < memory);
        if self.phase != Phase::Active || self.lookups.values().any(|l| l.kind == LookupKind::Merge)
        {
            return;
        }
        self.probes += 1;
        let peer = match self.graveyard.pop_front() {
            Some((peer, since)) => {
                self.graveyard.push_back((peer, since));
                peer
            }
            // Nobody to probe: the seed, one probe period in SEED_PROBE_EVERY.
            None => match self.seed {
                Some(seed) if self.probes.is_multiple_of(SEED_PROBE_EVERY) => seed,
                _ => return,
            },
        };
        let id = self.next_lookup;
        self.next_lookup += 1;
        let lookup = Lookup::new(
            self.me().id.id(),
            vec![peer],
            now,
            self.config.lookup_deadline,
        )
        .excluding(self.me().id);
        self.lookups.insert(
            id,
            RunningLookup {
                lookup,
                kind: LookupKind::Merge,
            },
        );
        self.drive_lookup(now, id);
    }

    fn remember(&mut self, peer: Peer) {
        if !self.graveyard.is_empty() {
            self.graveyard.retain(|(p, _)| p.id != peer.id);
        }
        if self.acquaintances.back() == Some(&peer) {
            return; // The common case: the same peer again.
        }
        self.acquaintances.retain(|p| p.id != peer.id);
        if self.acquaintances.len() == ACQUAINTANCES {
            self.acquaintances.pop_front();
        }
        self.acquaintances.push_back(peer);
    }

    fn stabilize(&mut self, now: Duration) {
        if self.stabilizing || matches!(self.phase, Phase::Leaving { .. } | Phase::Left) {
            return;
        }
        if self.table.successor().is_none() {
            // Alone: a node that notified us (or any node we still know) is the way back in.
            let Some(candidate) = self
                .table
                .predecessor()
                .or_else(|| self.table.nearest_known_after_me())
            else {
                self.rejoin_if_isolated(now);
                return;
            };
            self.table.adopt_successors(candidate, &[], |_| true);
        }
        self.was_member |= self.phase == Phase::Active;
        if let Some(successor) = self.table.successor() {
            self.stabilizing = true;
            self.send(now, successor, Request::GetState, Purpose::Stabilize);
        }
    }

    /// A member that lost every neighbour (all of them crashed at once) joins
    /// again through a peer it heard from lately, rather than stay a ring of one.
    fn rejoin_if_isolated(&mut self, now: Duration) {
        if !self.was_member || self.phase != Phase::Active {
            return;
        }
        let via = self
            .acquaintances
            .iter()
            .rev()
            .find(|p| !self.dead.contains_key(&p.id))
            .or(self.acquaintances.back())
            .copied();
        if let Some(bootstrap) = via {
            self.acquaintances.retain(|p| p.id != bootstrap.id);
            self.phase = Phase::Joining {
                bootstrap,
                attempts: 0,
            };
            self.start_join_lookup(now, bootstrap);
        }
    }

    fn on_successor_state(
        &mut self,
        now: Duration,
        successor: Peer,
        its_predecessor: Option<Peer>,
        its_successors: &[Peer],
    ) {
        self.stabilizing = false;
        if self.table.successor().is_some_and(|s| s.id != successor.id) {
            return; // The list changed meanwhile (e.g. a notify); the next round uses it.
        }
        self.table.adopt_successors(successor, its_successors, |p| {
            !self.dead.contains_key(&p.id)
        });
        if let Phase::Joining { .. } = self.phase {
            self.phase = Phase::Active;
            self.was_member = true;
            self.actions
                .push_back(Action::Event(RingEvent::Joined { successor }));
        }
        let me = self.me().id.id();
        match its_predecessor {
            Some(candidate)
                if candidate.id != self.me().id
                    && between_open(me, candidate.id.id(), successor.id.id())
                    && !self.config.faults.stabilize_ignores_predecessor =>
            {
                // Adopt it only once it has answered us itself. (Even if it
                // missed a request lately: it may have restarted, and asking is
                // the liveness test; its answer clears the mark.)
                self.stabilizing = true;
                self.send(
                    now,
                    candidate,
                    Request::GetState,
                    Purpose::StabilizeCandidate,
                );
            }
            // It already knows me as its predecessor: nothing to tell it.
            Some(known) if known.id == self.me().id => {}
            _ => {
                self.send(now, successor, Request::Notify, Purpose::Notify);
            }
        }
    }

    fn on_notify(&mut self, now: Duration, from: Peer) {
        let me = self.me().id.id();
        let adopt = match self.table.predecessor() {
            None => true,
            Some(current) => {
                self.dead.contains_key(&current.id)
                    || between_open(current.id.id(), from.id.id(), me)
            }
        };
        if adopt {
            self.table.set_predecessor(Some(from));
        }
        if self.table.successor().is_none() {
            // Alone until now: the notifier, which just proved it is alive, closes the ring.
            self.table.adopt_successors(from, &[], |_| true);
            self.stabilize(now);
        }
    }

    fn on_leaving(
        &mut self,
        now: Duration,
        leaver: Peer,
        its_predecessor: Option<Peer>,
        its_successors: Vec<Peer>,
    ) {
        let was_successor = self.table.successor().is_some_and(|s| s.id == leaver.id);
        let was_predecessor = self.table.predecessor().is_some_and(|p| p.id == leaver.id);
        self.dead.insert(leaver.id, now);
        self.table.remove(leaver.id);
        if was_successor {
            let mut rest = its_successors
                .into_iter()
                .filter(|p| p.id != leaver.id && !self.dead.contains_key(&p.id));
            if let Some(first) = rest.next() {
                let rest: Vec<Peer> = rest.collect();
                self.table.adopt_successors(first, &rest, |_| true);
            }
        }
        if was_predecessor {
            self.table
                .set_predecessor(its_predecessor.filter(|p| p.id != leaver.id));
        }
    }

    fn check_predecessor(&mut self, now: Duration) {
        if self.checking_predecessor {
            return;
        }
        // Its own stabilization asks me regularly: a request from it lately
        // is proof enough that it lives.
        let heard = now.saturating_sub(self.heard_from_predecessor);
        if heard < self.config.check_predecessor_every {
            return;
        }
        if let Some(predecessor) = self.table.predecessor() {
            self.checking_predecessor = true;
            self.send(now, predecessor, Request::Ping, Purpose::CheckPredecessor);
        }
    }

    /// Refreshes one finger, round robin from the farthest down to the first
    /// one that is not simply the successor; then starts again at the top.
    fn fix_next_finger(&mut self, now: Duration) {
        if self.fixing_finger || self.phase != Phase::Active || self.table.successor().is_none() {
            return;
        }
        let mut index = self.next_finger;
        if self.table.finger_is_successor(index) {
            index = 255;
            if self.table.finger_is_successor(index) {
                return;
            }
        }
        self.next_finger = index.checked_sub(1).unwrap_or(255);
        self.fixing_finger = true;
        match self.table.finger(index) {
            // One small round trip usually confirms it; a lookup only when it moved.
            Some(current) => {
                self.send(
                    now,
                    current,
                    Request::GetPredecessor,
                    Purpose::CheckFinger(index),
                );
            }
            None => {
                let target = self.table.finger_start(index);
                self.launch_lookup(now, target, LookupKind::Finger(index));
            }
        }
    }

    fn on_failed(&mut self, now: Duration, peer: Peer, purpose: Purpose) {
        if purpose == Purpose::Leave {
            self.leave_answered();
            return;
        }
        self.mark_dead(now, peer);
        match purpose {
            Purpose::Stabilize => {
                self.stabilizing = false;
                if self.table.successor().is_some() {
                    self.stabilize(now); // Retry at once with the next successor.
                } else if let Phase::Joining { bootstrap, .. } = self.phase {
                    self.retry_join(now, bootstrap, "the successor found did not answer");
                } else {
                    self.stabilize(now);
                }
            }
            Purpose::StabilizeCandidate => {
                self.stabilizing = false;
                if let Some(successor) = self.table.successor() {
                    self.send(now, successor, Request::Notify, Purpose::Notify);
                }
            }
            Purpose::CheckPredecessor => self.checking_predecessor = false,
            Purpose::Notify | Purpose::Leave | Purpose::MergeCandidate => {}
            Purpose::CheckFinger(_) => self.fixing_finger = false,
            Purpose::Lookup(id) => {
                if let Some(running) = self.lookups.get_mut(&id) {
                    running.lookup.on_failure(peer.id);
                }
                self.drive_lookup(now, id);
            }
        }
    }

    fn mark_dead(&mut self, now: Duration, peer: Peer) {
        self.dead.insert(peer.id, now);
        self.graveyard.retain(|(p, _)| p.id != peer.id);
        if self.graveyard.len() == GRAVEYARD {
            self.graveyard.pop_front();
        }
        self.graveyard.push_back((peer, now));
        if self.table.remove(peer.id) {
            self.actions
                .push_back(Action::Event(RingEvent::PeerFailed { peer }));
        }
    }

    fn start_join_lookup(&mut self, now: Duration, bootstrap: Peer) {
        // successor(me): if an old incarnation of this node (same id, crashed and
        // restarted) is still listed, the answer is "me" followed by the nodes
        // after it, and the join takes the first of those (see complete_lookup).
        let target = self.me().id.id();
        let id = self.next_lookup;
        self.next_lookup += 1;
        let lookup = Lookup::new(target, vec![bootstrap], now, self.config.lookup_deadline)
            .excluding(self.me().id);
        self.lookups.insert(
            id,
            RunningLookup {
                lookup,
                kind: LookupKind::Join,
            },
        );
        self.drive_lookup(now, id);
    }

    fn retry_join(&mut self, now: Duration, bootstrap: Peer, reason: &str) {
        let attempts = match self.phase {
            Phase::Joining { attempts, .. } => attempts + 1,
            _ => return,
        };
        if attempts >= self.config.join_attempts {
            self.phase = Phase::Active;
            let reason = format!("{reason} ({attempts} attempts through {})", bootstrap.addr);
            let event = if self.was_member {
                RingEvent::Isolated { reason }
            } else {
                RingEvent::JoinFailed { reason }
            };
            self.actions.push_back(Action::Event(event));
            return;
        }
        self.phase = Phase::Joining {
            bootstrap,
            attempts,
        };
        self.start_join_lookup(now, bootstrap);
    }

    fn launch_lookup(&mut self, now: Duration, target: Id, kind: LookupKind) -> LookupId {
        let id = self.next_lookup;
        self.next_lookup += 1;
        let lookup = match self.table.local_owner_with_next(target) {
            Some((node, next)) => Lookup::finished(target, Owner { node, next }, now),
            None => Lookup::new(
                target,
                self.table.closest_preceding(target, usize::MAX),
                now,
                self.config.lookup_deadline,
            )
            .excluding(self.me().id),
        };
        self.lookups.insert(id, RunningLookup { lookup, kind });
        self.drive_lookup(now, id);
        id
    }

    fn drive_lookup(&mut self, now: Duration, id: LookupId) {
        let Some(running) = self.lookups.get_mut(&id) else {
            return;
        };
        if matches!(running.kind, LookupKind::User | LookupKind::Finger(_)) {
            // Join and merge lookups may ask a peer given up for dead on purpose.
            let dead = &self.dead;
            running.lookup.drop_candidates(|p| dead.contains_key(&p.id));
        }
        if running.lookup.is_starved()
            && !running.lookup.is_paused(now)
            && running.kind != LookupKind::Join
        {
            // Every candidate failed: what the routing table knows now may help.
            let target = running.lookup.target();
            if let Some((node, next)) = self.table.local_owner_with_next(target) {
                if let Some(running) = self.lookups.remove(&id) {
                    self.complete_lookup(now, id, running, Ok(Owner { node, next }));
                }
                return;
            }
            let seeds = self.table.closest_preceding(target, usize::MAX);
            running.lookup.reseed(seeds);
            let retry_at = now + self.config.stabilize_every;
            if running.lookup.is_starved() && retry_at < running.lookup.deadline() {
                // Nobody left to ask: a dead node's neighbours notice its death
                // within a stabilization round; start over after one.
                running.lookup.pause_until(retry_at);
                return;
            }
        }
        match running.lookup.next(now) {
            LookupStep::Ask(peer) => {
                let target = running.lookup.target();
                self.send(
                    now,
                    peer,
                    Request::FindSuccessor { target },
                    Purpose::Lookup(id),
                );
            }
            LookupStep::Wait => {}
            LookupStep::Done(result) => {
                if let Some(running) = self.lookups.remove(&id) {
                    self.complete_lookup(now, id, running, result);
                }
            }
        }
    }

    fn complete_lookup(
        &mut self,
        now: Duration,
        id: LookupId,
        running: RunningLookup,
        result: Result<Owner, LookupError>,
    ) {
        match running.kind {
            LookupKind::User => {
                let lookup = &running.lookup;
                let result = result.map(|owner| LookupAnswer {
                    target: lookup.target(),
                    node: self.first_live(&owner),
                    hops: lookup.hops(),
                    elapsed: now.saturating_sub(lookup.started()),
                });
                self.actions
                    .push_back(Action::LookupDone { lookup: id, result });
            }
            LookupKind::Finger(index) => {
                self.fixing_finger = false;
                if let Ok(owner) = result {
                    let node = self.first_live(&owner);
                    self.table.set_finger(index, node);
                }
            }
            LookupKind::Merge => {
                let Ok(owner) = result else { return };
                let me = self.me();
                let Some(found) = std::iter::once(owner.node)
                    .chain(owner.next)
                    .find(|p| p.id != me.id && !self.dead.contains_key(&p.id))
                else {
                    return;
                };
                let closer = match self.table.successor() {
                    None => true,
                    Some(successor) => between_open(me.id.id(), found.id.id(), successor.id.id()),
                };
                if closer {
                    self.send(now, found, Request::GetState, Purpose::MergeCandidate);
                }
            }
            LookupKind::Join => {
                let Phase::Joining { bootstrap, .. } = self.phase else {
                    return;
                };
                match result {
                    Ok(owner) => {
                        // Take the owner and the nodes after it as a tentative list:
                        // stabilize then tries them in order until one answers.
                        // Only an old incarnation of me can be "me": skip it.
                        let me = self.me().id;
                        let mut candidates = std::iter::once(owner.node)
                            .chain(owner.next)
                            .filter(|p| p.id != me && !self.dead.contains_key(&p.id));
                        let first = candidates.next().unwrap_or(bootstrap);
                        let rest: Vec<Peer> = candidates.collect();
                        self.table.adopt_successors(first, &rest, |_| true);
                        self.stabilize(now);
                    }
                    Err(error) => self.retry_join(now, bootstrap, &error.to_string()),
                }
            }
        }
    }

    /// The owner, or if this node knows it is dead, the first live node after it.
    fn first_live(&self, owner: &Owner) -> Peer {
        std::iter::once(&owner.node)
            .chain(owner.next.iter())
            .find(|p| !self.dead.contains_key(&p.id))
            .copied()
            .unwrap_or(owner.node)
    }

    fn leave_answered(&mut self) {
        if let Phase::Leaving { awaiting } = &mut self.phase {
            *awaiting = awaiting.saturating_sub(1);
        }
        self.maybe_left();
    }

    fn maybe_left(&mut self) {
        if self.phase == (Phase::Leaving { awaiting: 0 }) {
            self.phase = Phase::Left;
            self.pending.clear();
            self.actions.push_back(Action::Event(RingEvent::Left));
        }
    }

    /// Turns changes of successor and predecessor into events, once each.
    fn report_changes(&mut self) {
        let successor = self.table.successor();
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
    }
}
