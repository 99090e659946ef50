//! Merge probes: now and then a node looks up successor(me) through a peer
//! it gave up for dead, or through one of its seeds (the peers it was told to
//! join through). If that peer is alive in another ring (a partition healed,
//! a pause ended), the answer names a closer successor and links the two
//! rings, which Chord's stabilization alone never does.
//!
//! The same probe is how a member that lost every neighbour finds its way
//! back: while alone it probes every stabilization period, through its
//! recent acquaintances, its seeds and its dead peers in turn, and goes on
//! as a ring of one meanwhile (it may be the last survivor).
//!
//! Invariant: at most one merge probe runs at a time; a closer successor
//! found this way is adopted only once it answered this node itself.

use super::lookups::LookupKind;
use super::rpc::Purpose;
use super::timers::Timer;
use super::{Action, GRAVEYARD, Phase, RingEvent, RingNode, SEED_PROBE_EVERY};
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

    /// `peer` was given up for dead at `now`. A peer buried already keeps
    /// its first burial time, so that `memory` ends its probing even if
    /// every probe judges it dead again.
    pub fn bury(&mut self, peer: Peer, now: Duration) {
        if self.peers.iter().any(|(p, _)| p.id == peer.id) {
            return;
        }
        if self.peers.len() == GRAVEYARD {
            self.peers.pop_front();
        }
        self.peers.push_back((peer, now));
    }

    /// `id` was heard from: nothing to probe.
    pub fn revive(&mut self, id: NodeId) {
        if let Some(at) = self.peers.iter().position(|(p, _)| p.id == id) {
            self.peers.remove(at);
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

    fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.iter().map(|(p, _)| p)
    }
}

impl RingNode {
    /// Looks up successor(me) through the oldest peer given up for dead. If it
    /// answers, it was only cut off (a partition that healed, a pause): a
    /// closer successor in its ring joins the two rings, which Chord's
    /// stabilization alone can never do. With nobody dead to probe, a seed,
    /// one probe period in [`SEED_PROBE_EVERY`].
    pub(super) fn probe_graveyard(&mut self, now: Duration) {
        self.graveyard.forget_old(now);
        self.probes += 1;
        let peer = match self.graveyard.next() {
            Some(peer) => Some(peer),
            None if self.probes.is_multiple_of(SEED_PROBE_EVERY) && !self.seeds.is_empty() => {
                let turn = (self.probes / SEED_PROBE_EVERY) as usize % self.seeds.len();
                Some(self.seeds[turn])
            }
            None => None,
        };
        if let Some(peer) = peer {
            self.merge_probe(now, peer);
        }
    }

    /// This member has no neighbour left (every one failed at once): say so
    /// once, and look for the ring through everyone it knows, one peer per
    /// stabilization period, meanwhile serving as a ring of one.
    pub(super) fn on_isolated(&mut self, now: Duration) {
        if !self.was_member || self.phase != Phase::Active {
            return;
        }
        let me = self.me().id;
        let mut known: Vec<Peer> = Vec::new();
        let everyone = self
            .acquaintances
            .iter()
            .rev()
            .chain(&self.seeds)
            .chain(self.graveyard.peers());
        for peer in everyone {
            if peer.id != me && !known.iter().any(|p| p.id == peer.id) {
                known.push(*peer);
            }
        }
        if !self.isolated {
            self.isolated = true;
            let reason = format!(
                "every neighbour failed; looking for the ring through {} peers it knew",
                known.len()
            );
            self.actions
                .push_back(Action::Event(RingEvent::Isolated { reason }));
        }
        if known.is_empty() {
            return;
        }
        self.probes += 1;
        let peer = known[self.probes as usize % known.len()];
        self.merge_probe(now, peer);
    }

    fn merge_probe(&mut self, now: Duration, through: Peer) {
        if self.phase != Phase::Active || self.timers.is_busy(Timer::MergeProbe) {
            return;
        }
        self.timers.set_busy(Timer::MergeProbe, true);
        let target = self.me().id.id();
        self.launch_lookup_via(now, target, through, LookupKind::Merge);
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
            let request = self.state_request(found);
            self.send(now, found, request, Purpose::Closer);
        }
    }

    /// The node a merge probe found answered: adopt it if it is still closer.
    pub(super) fn on_closer_state(&mut self, now: Duration, from: Peer, its_successors: &[Peer]) {
        if self.phase != Phase::Active {
            return;
        }
        let me = self.me().id.id();
        let still_closer = self
            .table
            .successor()
            .is_none_or(|s| between_open(me, from.id.id(), s.id.id()));
        if still_closer {
            self.hold_list(from, its_successors);
            self.adopt_live_successors(from, its_successors);
            self.send(now, from, Request::Notify, Purpose::Notify);
        }
    }
}
