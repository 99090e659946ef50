//! Merge probes: now and then a node looks up successor(me) through a peer
//! it gave up for dead, or through its seed (the peer it joined through). If
//! that peer is alive in another ring (a partition healed, a pause ended),
//! the answer names a closer successor and links the two rings, which
//! Chord's stabilization alone never does.
//!
//! Invariant: at most one merge probe runs at a time; a closer successor
//! found this way is adopted only once it answered this node itself.

use super::lookups::LookupKind;
use super::rpc::Purpose;
use super::timers::Timer;
use super::{GRAVEYARD, Phase, RingNode, SEED_PROBE_EVERY};
use crate::id::NodeId;
use crate::interval::between_open;
use crate::lookup::{LookupError, Owner};
use crate::wire::{Peer, Request};
use std::collections::VecDeque;
use std::time::Duration;

/// Peers given up for dead, oldest first, with when; at most [`GRAVEYARD`].
#[derive(Clone, Debug)]
pub(super) struct Graveyard {
    peers: VecDeque<(Peer, Duration)>,
    memory: Duration,
}

impl Graveyard {
    pub fn new(memory: Duration) -> Graveyard {
        Graveyard {
            peers: VecDeque::new(),
            memory,
        }
    }

    /// `peer` was given up for dead at `now`.
    pub fn bury(&mut self, peer: Peer, now: Duration) {
        self.peers.retain(|(p, _)| p.id != peer.id);
        if self.peers.len() == GRAVEYARD {
            self.peers.pop_front();
        }
        self.peers.push_back((peer, now));
    }

    /// `id` was heard from: nothing to probe.
    pub fn revive(&mut self, id: NodeId) {
        if !self.peers.is_empty() {
            self.peers.retain(|(p, _)| p.id != id);
        }
    }

    /// Forgets the peers buried longer ago than the memory.
    fn forget_old(&mut self, now: Duration) {
        let memory = self.memory;
        self.peers
            .retain(|(_, since)| now.saturating_sub(*since) < memory);
    }

    /// The next peer to probe, round robin.
    fn next(&mut self) -> Option<Peer> {
        let (peer, since) = self.peers.pop_front()?;
        self.peers.push_back((peer, since));
        Some(peer)
    }
}

impl RingNode {
    /// Looks up successor(me) through the oldest peer given up for dead. If it
    /// answers, it was only cut off (a partition that healed, a pause): a
    /// closer successor in its ring joins the two rings, which Chord's
    /// stabilization alone can never do.
    pub(super) fn probe_graveyard(&mut self, now: Duration) {
        self.graveyard.forget_old(now);
        if self.phase != Phase::Active || self.timers.is_busy(Timer::MergeProbe) {
            return;
        }
        self.probes += 1;
        let peer = match self.graveyard.next() {
            Some(peer) => peer,
            // Nobody to probe: the seed, one probe period in SEED_PROBE_EVERY.
            None => match self.seed {
                Some(seed) if self.probes.is_multiple_of(SEED_PROBE_EVERY) => seed,
                _ => return,
            },
        };
        self.timers.set_busy(Timer::MergeProbe, true);
        let target = self.me().id.id();
        self.launch_lookup_via(now, target, peer, LookupKind::Merge);
    }

    /// The merge lookup ended: a live node between me and my successor is worth asking.
    pub(super) fn on_merge_found(&mut self, now: Duration, result: Result<Owner, LookupError>) {
        self.timers.set_busy(Timer::MergeProbe, false);
        let Ok(owner) = result else { return };
        let me = self.me();
        let Some(found) = self
            .live_in_order(std::iter::once(&owner.node).chain(&owner.next), Some(me.id))
            .next()
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

    /// The node a merge probe found answered: adopt it if it is still closer.
    pub(super) fn on_merge_candidate_state(
        &mut self,
        now: Duration,
        from: Peer,
        its_successors: &[Peer],
    ) {
        let me = self.me().id.id();
        let still_closer = self
            .table
            .successor()
            .is_none_or(|s| between_open(me, from.id.id(), s.id.id()));
        if still_closer {
            self.adopt_live_successors(from, its_successors);
            self.send(now, from, Request::Notify, Purpose::Notify);
        }
    }
}
