//! One iterative lookup: who is successor(target)?
//!
//! The asking node keeps the candidates it has heard of, closest to the target
//! first, and asks one at a time. An answer is either "the successor is X"
//! (done) or "ask one of these, closer" (only candidates strictly closer to the
//! target than the one who answered are taken, so every hop makes progress).
//! A candidate that times out is asked once more at once (a lost datagram or
//! a busy moment must not send the lookup the long way round), then skipped
//! for the next best one; another node naming it later may bring it back, up
//! to [`MAX_ATTEMPTS`] requests in all. A peer that answered is never asked
//! again. The lookup counts hops (answers received) and fails at its
//! deadline or when no candidate is left.

use crate::id::{Id, NodeId};
use crate::interval::between_open;
use crate::wire::Peer;
use std::time::Duration;

/// How many requests one lookup sends to one peer at most (before a pause).
pub const MAX_ATTEMPTS: u8 = 3;

/// What the lookup wants next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupStep {
    /// Send `FindSuccessor` to this peer.
    Ask(Peer),
    /// A request is under way; nothing to do until it is answered or times out.
    Wait,
    /// Finished.
    Done(Result<Owner, LookupError>),
}

/// The answer of a lookup: successor(target), and the nodes after it as the
/// answerer knew them (to fall back on if the owner turns out to be dead).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub node: Peer,
    pub next: Vec<Peer>,
}

/// Why a lookup failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("lookup gave up after {0:?}: the ring did not answer in time")]
    Deadline(Duration),
    #[error("lookup ran out of peers to ask: every candidate failed ({failed} failed)")]
    NoCandidates { failed: usize },
    #[error("this node is leaving the ring")]
    Leaving,
    #[error("this node could not join the ring")]
    NotJoined,
}

/// The state of one lookup.
#[derive(Clone, Debug)]
pub struct Lookup {
    target: Id,
    started: Duration,
    deadline: Duration,
    /// Not yet asked, closest to the target first.
    candidates: Vec<Peer>,
    /// Answered already: never asked again.
    answered: Vec<NodeId>,
    /// The answerer closest to the target so far: candidates behind it
    /// cannot help any more (they would walk the long way round).
    frontier: Option<NodeId>,
    /// Peers whose requests failed, with how many times.
    failures: Vec<(NodeId, u8)>,
    in_flight: Option<Peer>,
    /// Never asked (the asking node itself).
    excluded: Vec<NodeId>,
    /// Starved, waiting to start over from fresh knowledge.
    paused_until: Option<Duration>,
    failed: usize,
    hops: u32,
    result: Option<Result<Owner, LookupError>>,
}

impl Lookup {
    /// A lookup for `target` seeded with the asking node's best next hops.
    pub fn new(target: Id, seeds: Vec<Peer>, now: Duration, deadline: Duration) -> Lookup {
        let mut lookup = Lookup {
            target,
            started: now,
            deadline: now + deadline,
            candidates: Vec::new(),
            answered: Vec::new(),
            frontier: None,
            failures: Vec::new(),
            in_flight: None,
            excluded: Vec::new(),
            paused_until: None,
            failed: 0,
            hops: 0,
            result: None,
        };
        lookup.add_candidates(seeds);
        lookup
    }

    /// A lookup already answered locally, in zero hops.
    pub fn finished(target: Id, owner: Owner, now: Duration) -> Lookup {
        let mut lookup = Lookup::new(target, Vec::new(), now, Duration::ZERO);
        lookup.result = Some(Ok(owner));
        lookup
    }

    /// Never asks `id` (the asking node itself: peers may still list an old
    /// incarnation of it, and asking itself over the network cannot help).
    pub fn excluding(mut self, id: NodeId) -> Lookup {
        self.candidates.retain(|p| p.id != id);
        self.excluded.push(id);
        self
    }

    /// Every candidate failed: wait until `until`, then allow every peer but the
    /// excluded ones to be asked again (the ring may have repaired itself by then).
    pub fn pause_until(&mut self, until: Duration) {
        self.paused_until = Some(until);
        self.answered.clear();
        self.failures.clear();
        self.frontier = None;
    }

    /// When the lookup next needs attention: its deadline, or the end of a pause.
    pub fn wake_at(&self) -> Duration {
        self.paused_until
            .map_or(self.deadline, |until| until.min(self.deadline))
    }

    /// Drops candidates not yet asked that `unwanted` rejects (e.g. peers known dead).
    pub fn drop_candidates(&mut self, unwanted: impl Fn(&Peer) -> bool) {
        self.candidates.retain(|p| !unwanted(p));
    }

    pub fn target(&self) -> Id {
        self.target
    }

    pub fn hops(&self) -> u32 {
        self.hops
    }

    pub fn started(&self) -> Duration {
        self.started
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The peer asked right now, if any.
    pub fn in_flight(&self) -> Option<Peer> {
        self.in_flight
    }

    fn add_candidates(&mut self, peers: impl IntoIterator<Item = Peer>) {
        let target = self.target;
        for peer in peers {
            let behind = self
                .frontier
                .is_some_and(|frontier| !between_open(frontier.id(), peer.id.id(), target));
            let known = behind
                || self.candidates.iter().any(|p| p.id == peer.id)
                || self.in_flight.is_some_and(|p| p.id == peer.id)
                || self.answered.contains(&peer.id)
                || self.excluded.contains(&peer.id)
                || self.failures_of(peer.id) >= MAX_ATTEMPTS;
            if !known {
                self.candidates.push(peer);
            }
        }
        self.candidates
            .sort_by_cached_key(|p| p.id.id().distance_to(target));
    }

    /// `from` answered: it becomes the frontier if it is the closest yet.
    fn advance_frontier(&mut self, from: NodeId) {
        let target = self.target;
        let closer = self.frontier.is_none_or(|frontier| {
            from.id().distance_to(target) < frontier.id().distance_to(target)
        });
        if closer {
            self.frontier = Some(from);
        }
    }

    fn failures_of(&self, peer: NodeId) -> u8 {
        self.failures
            .iter()
            .find(|(id, _)| *id == peer)
            .map_or(0, |(_, n)| *n)
    }

    /// `from` answered: the successor of the target is `owner`.
    pub fn on_found(&mut self, from: NodeId, owner: Owner) {
        if self.in_flight.is_some_and(|p| p.id == from) {
            self.in_flight = None;
            self.answered.push(from);
            self.hops += 1;
            self.result.get_or_insert(Ok(owner));
        }
    }

    /// `from` answered: ask one of `closer`.
    pub fn on_closer(&mut self, from: NodeId, closer: Vec<Peer>) {
        if self.in_flight.is_none_or(|p| p.id != from) {
            return;
        }
        self.in_flight = None;
        self.answered.push(from);
        self.advance_frontier(from);
        self.hops += 1;
        let target = self.target;
        let progress: Vec<Peer> = closer
            .into_iter()
            .filter(|p| between_open(from.id(), p.id.id(), target))
            .collect();
        // Drop candidates that are no closer than the node that just answered:
        // its answer supersedes what we knew about that stretch of the ring.
        self.candidates
            .retain(|p| between_open(from.id(), p.id.id(), target));
        self.add_candidates(progress);
    }

    /// The request to `peer` failed or timed out: it is asked once more at
    /// once (first, if it is still the best candidate); after that only if
    /// another node names it again.
    pub fn on_failure(&mut self, peer: NodeId) {
        let Some(failed) = self.in_flight.filter(|p| p.id == peer) else {
            return;
        };
        self.in_flight = None;
        self.failed += 1;
        let failures = match self.failures.iter_mut().find(|(id, _)| *id == peer) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.failures.push((peer, 1));
                1
            }
        };
        if failures == 1 {
            self.add_candidates([failed]);
        }
    }

    /// Offers fresh candidates (e.g. from the routing table after failures);
    /// only those beyond the closest node that answered are taken.
    pub fn reseed(&mut self, peers: Vec<Peer>) {
        self.add_candidates(peers);
    }

    /// True if no candidate is left to ask and nothing is in flight.
    pub fn is_starved(&self) -> bool {
        self.result.is_none() && self.in_flight.is_none() && self.candidates.is_empty()
    }

    /// True while paused (see [`Lookup::pause_until`]) at `now`.
    pub fn is_paused(&self, now: Duration) -> bool {
        self.paused_until.is_some_and(|until| now < until)
    }

    /// What to do now.
    pub fn next(&mut self, now: Duration) -> LookupStep {
        if let Some(result) = &self.result {
            return LookupStep::Done(result.clone());
        }
        if now >= self.deadline {
            let error = LookupError::Deadline(now.saturating_sub(self.started));
            self.result = Some(Err(error.clone()));
            return LookupStep::Done(Err(error));
        }
        if self.is_paused(now) {
            return LookupStep::Wait;
        }
        self.paused_until = None;
        if self.in_flight.is_some() {
            return LookupStep::Wait;
        }
        if self.candidates.is_empty() {
            let error = LookupError::NoCandidates {
                failed: self.failed,
            };
            self.result = Some(Err(error.clone()));
            return LookupStep::Done(Err(error));
        }
        let next = self.candidates.remove(0);
        self.in_flight = Some(next);
        LookupStep::Ask(next)
    }

    /// Ends the lookup with an error (e.g. the node is leaving).
    pub fn abort(&mut self, error: LookupError) {
        self.result.get_or_insert(Err(error));
        self.in_flight = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u64) -> Peer {
        Peer {
            id: NodeId(Id::from_high_u64(n)),
            addr: format!("127.0.0.1:{}", 1000 + n % 60000)
                .parse()
                .expect("addr"),
        }
    }

    fn owner(n: u64) -> Owner {
        Owner {
            node: peer(n),
            next: vec![peer(n + 1)],
        }
    }

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn asks_the_closest_candidate_first_and_counts_hops() {
        let target = Id::from_high_u64(100);
        let mut lookup = Lookup::new(target, vec![peer(10), peer(50)], at(0), at(5000));
        assert_eq!(lookup.next(at(0)), LookupStep::Ask(peer(50)));
        assert_eq!(lookup.next(at(1)), LookupStep::Wait);
        lookup.on_closer(peer(50).id, vec![peer(90), peer(40), peer(120)]);
        // 40 is behind the node that answered, 120 past the target: only 90 is progress.
        assert_eq!(lookup.next(at(2)), LookupStep::Ask(peer(90)));
        lookup.on_found(peer(90).id, owner(110));
        assert_eq!(lookup.next(at(3)), LookupStep::Done(Ok(owner(110))));
        assert_eq!(lookup.hops(), 2);
    }

    #[test]
    fn a_timeout_is_retried_once_then_falls_back_to_the_next_candidate() {
        let target = Id::from_high_u64(100);
        let mut lookup = Lookup::new(target, vec![peer(10), peer(50)], at(0), at(5000));
        assert_eq!(lookup.next(at(0)), LookupStep::Ask(peer(50)));
        lookup.on_failure(peer(50).id);
        assert_eq!(
            lookup.next(at(30)),
            LookupStep::Ask(peer(50)),
            "one miss may be a lost datagram"
        );
        lookup.on_failure(peer(50).id);
        assert_eq!(lookup.next(at(60)), LookupStep::Ask(peer(10)));
        lookup.on_found(peer(10).id, owner(110));
        assert_eq!(lookup.next(at(61)), LookupStep::Done(Ok(owner(110))));
        assert_eq!(lookup.hops(), 1);
    }

    #[test]
    fn answers_from_peers_not_asked_are_ignored() {
        let target = Id::from_high_u64(100);
        let mut lookup = Lookup::new(target, vec![peer(50)], at(0), at(5000));
        assert_eq!(lookup.next(at(0)), LookupStep::Ask(peer(50)));
        lookup.on_found(peer(77).id, owner(1));
        assert_eq!(lookup.next(at(1)), LookupStep::Wait);
    }

    #[test]
    fn fails_when_every_candidate_failed() {
        let target = Id::from_high_u64(100);
        let mut lookup = Lookup::new(target, vec![peer(50)], at(0), at(5000));
        assert_eq!(lookup.next(at(0)), LookupStep::Ask(peer(50)));
        lookup.on_failure(peer(50).id);
        assert_eq!(lookup.next(at(1)), LookupStep::Ask(peer(50)));
        lookup.on_failure(peer(50).id);
        assert_eq!(
            lookup.next(at(2)),
            LookupStep::Done(Err(LookupError::NoCandidates { failed: 2 }))
        );
    }

    #[test]
    fn fails_at_the_deadline() {
        let target = Id::from_high_u64(100);
        let mut lookup = Lookup::new(target, vec![peer(50)], at(0), at(5000));
        assert_eq!(lookup.next(at(0)), LookupStep::Ask(peer(50)));
        assert!(matches!(
            lookup.next(at(5000)),
            LookupStep::Done(Err(LookupError::Deadline(_)))
        ));
    }

    #[test]
    fn the_asking_node_is_never_asked() {
        let target = Id::from_high_u64(100);
        let mut lookup =
            Lookup::new(target, vec![peer(50)], at(0), at(5000)).excluding(peer(70).id);
        assert_eq!(lookup.next(at(0)), LookupStep::Ask(peer(50)));
        lookup.on_closer(peer(50).id, vec![peer(70), peer(60)]);
        assert_eq!(lookup.next(at(1)), LookupStep::Ask(peer(60)));
    }

    #[test]
    fn a_paused_lookup_waits_then_may_ask_a_peer_again() {
        let target = Id::from_high_u64(100);
        let mut lookup = Lookup::new(target, vec![peer(50)], at(0), at(5000)).excluding(peer(7).id);
        assert_eq!(lookup.next(at(0)), LookupStep::Ask(peer(50)));
        lookup.on_closer(peer(50).id, vec![peer(60)]);
        assert_eq!(lookup.next(at(1)), LookupStep::Ask(peer(60)));
        lookup.on_failure(peer(60).id);
        assert_eq!(lookup.next(at(1)), LookupStep::Ask(peer(60)));
        lookup.on_failure(peer(60).id);
        lookup.pause_until(at(500));
        assert_eq!(lookup.next(at(2)), LookupStep::Wait);
        assert_eq!(lookup.wake_at(), at(500));
        lookup.reseed(vec![peer(50), peer(7)]);
        assert_eq!(lookup.next(at(500)), LookupStep::Ask(peer(50)));
        assert_eq!(
            lookup.wake_at(),
            at(5000),
            "the pause is over: only the deadline is left"
        );
    }

    #[test]
    fn once_past_a_node_the_lookup_never_walks_back_behind_it() {
        let target = Id::from_high_u64(100);
        let mut lookup = Lookup::new(target, vec![peer(50)], at(0), at(5000));
        assert_eq!(lookup.next(at(0)), LookupStep::Ask(peer(50)));
        lookup.on_closer(peer(50).id, vec![peer(90)]);
        assert_eq!(lookup.next(at(1)), LookupStep::Ask(peer(90)));
        lookup.on_closer(peer(90).id, vec![peer(95)]);
        for attempt in 0..2 {
            assert_eq!(lookup.next(at(2 + attempt)), LookupStep::Ask(peer(95)));
            lookup.on_failure(peer(95).id);
        }
        // The asker's own table only knows nodes far behind 90: no help.
        lookup.reseed(vec![peer(20), peer(60)]);
        assert!(lookup.is_starved(), "starved: pause and start over instead");
        lookup.pause_until(at(500));
        lookup.reseed(vec![peer(20), peer(60)]);
        assert_eq!(
            lookup.next(at(500)),
            LookupStep::Ask(peer(60)),
            "a fresh start"
        );
    }

    #[test]
    fn a_peer_that_answered_is_never_asked_again() {
        let target = Id::from_high_u64(100);
        let mut lookup = Lookup::new(target, vec![peer(50)], at(0), at(5000));
        assert_eq!(lookup.next(at(0)), LookupStep::Ask(peer(50)));
        lookup.on_closer(peer(50).id, vec![peer(60)]);
        lookup.reseed(vec![peer(50), peer(20)]);
        assert_eq!(lookup.next(at(1)), LookupStep::Ask(peer(60)));
    }

    #[test]
    fn a_peer_that_failed_twice_comes_back_only_when_named_again_up_to_the_limit() {
        let target = Id::from_high_u64(100);
        let mut lookup = Lookup::new(target, vec![peer(50), peer(20)], at(0), at(5000));
        assert_eq!(lookup.next(at(0)), LookupStep::Ask(peer(50)));
        lookup.on_failure(peer(50).id);
        assert_eq!(lookup.next(at(1)), LookupStep::Ask(peer(50)));
        lookup.on_failure(peer(50).id);
        assert_eq!(lookup.next(at(2)), LookupStep::Ask(peer(20)));
        // 20 names 50 again (the only node that can answer for the target).
        lookup.on_closer(peer(20).id, vec![peer(50)]);
        assert_eq!(lookup.next(at(3)), LookupStep::Ask(peer(50)));
        lookup.on_failure(peer(50).id);
        assert_eq!(u32::from(MAX_ATTEMPTS), 3);
        lookup.reseed(vec![peer(50)]);
        assert_eq!(
            lookup.next(at(4)),
            LookupStep::Done(Err(LookupError::NoCandidates { failed: 3 })),
            "three requests to one peer are the limit"
        );
    }
}
