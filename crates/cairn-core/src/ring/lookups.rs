//! The lookups this node drives, whatever they are for: a user's, a join's,
//! a finger's, a merge probe's. Each is a [`Lookup`] state machine; this
//! module feeds it answers and failures, refreshes it from the routing table
//! when it starves, and hands its result to the part of the ring that asked.
//!
//! Invariant: a running lookup has exactly one entry in `lookups` until it
//! completes, and completes exactly once (an answer, its deadline, or the
//! node's leave).

use super::rpc::Purpose;
use super::{Action, LookupAnswer, LookupId, RingNode};
use crate::id::Id;
use crate::lookup::{Lookup, LookupError, LookupStep, Owner};
use crate::wire::{Peer, Request};
use std::time::Duration;

/// What a lookup is for: decides what its answer is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LookupKind {
    User,
    Join,
    Finger(u8),
    /// successor(me) looked up through a peer once given up for dead: if that
    /// peer is alive in another ring (after a partition healed), the answer
    /// links the two rings together.
    Merge,
}

#[derive(Clone, Debug)]
pub(super) struct RunningLookup {
    pub lookup: Lookup,
    pub kind: LookupKind,
}

impl RingNode {
    /// Starts a lookup from what the routing table knows (answered at once if
    /// this node knows the owner).
    pub(super) fn launch_lookup(
        &mut self,
        now: Duration,
        target: Id,
        kind: LookupKind,
    ) -> LookupId {
        let lookup = match self.table.local_owner_with_next(target) {
            Some((node, next)) => Lookup::finished(target, Owner { node, next }, now),
            None => self.new_lookup(
                now,
                target,
                self.table.closest_preceding(target, usize::MAX),
            ),
        };
        self.run_lookup(now, lookup, kind)
    }

    /// Starts a lookup that asks `via` first, whatever the routing table
    /// knows (a bootstrap peer, or a peer given up for dead).
    pub(super) fn launch_lookup_via(
        &mut self,
        now: Duration,
        target: Id,
        via: Peer,
        kind: LookupKind,
    ) -> LookupId {
        let lookup = self.new_lookup(now, target, vec![via]);
        self.run_lookup(now, lookup, kind)
    }

    fn new_lookup(&self, now: Duration, target: Id, seeds: Vec<Peer>) -> Lookup {
        Lookup::new(target, seeds, now, self.config.lookup_deadline).excluding(self.me().id)
    }

    fn run_lookup(&mut self, now: Duration, lookup: Lookup, kind: LookupKind) -> LookupId {
        let id = self.next_lookup;
        self.next_lookup += 1;
        self.lookups.insert(id, RunningLookup { lookup, kind });
        self.drive_lookup(now, id);
        id
    }

    /// Lookups whose deadline or pause ended.
    pub(super) fn wake_lookups(&mut self, now: Duration) {
        let overdue: Vec<LookupId> = self
            .lookups
            .iter()
            .filter(|(_, l)| l.lookup.wake_at() <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in overdue {
            self.drive_lookup(now, id);
        }
    }

    pub(super) fn drive_lookup(&mut self, now: Duration, id: LookupId) {
        let Some(running) = self.lookups.get_mut(&id) else {
            return;
        };
        if matches!(running.kind, LookupKind::User | LookupKind::Finger(_)) {
            // Join and merge lookups may ask a peer given up for dead on purpose.
            let liveness = &self.liveness;
            running.lookup.drop_candidates(|p| liveness.is_dead(p.id));
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

    /// Ends every lookup with `error`, at once: the user's are answered,
    /// the ring's own end without effect (the node stops).
    pub(super) fn abort_lookups(&mut self, error: LookupError) {
        for (id, running) in std::mem::take(&mut self.lookups) {
            if running.kind == LookupKind::User {
                self.actions.push_back(Action::LookupDone {
                    lookup: id,
                    result: Err(error.clone()),
                });
            }
        }
        self.timers.set_busy(super::timers::Timer::FixFinger, false);
        self.timers
            .set_busy(super::timers::Timer::MergeProbe, false);
    }

    /// Hands a finished lookup's result to whoever asked.
    pub(super) fn complete_lookup(
        &mut self,
        now: Duration,
        id: LookupId,
        running: RunningLookup,
        result: Result<Owner, LookupError>,
    ) {
        match running.kind {
            LookupKind::User => {
                let lookup = &running.lookup;
                let result = result.map(|owner| {
                    let mut live = self
                        .live_in_order(std::iter::once(&owner.node).chain(&owner.next), None)
                        .collect::<Vec<Peer>>()
                        .into_iter();
                    LookupAnswer {
                        target: lookup.target(),
                        node: live.next().unwrap_or(owner.node),
                        next: live.collect(),
                        hops: lookup.hops(),
                        elapsed: now.saturating_sub(lookup.started()),
                    }
                });
                self.actions
                    .push_back(Action::LookupDone { lookup: id, result });
            }
            LookupKind::Finger(index) => self.on_finger_found(index, result),
            LookupKind::Merge => self.on_merge_found(now, result),
            LookupKind::Join => self.on_join_found(now, result),
        }
    }

    /// The owner, or if this node knows it is dead, the first live node after it.
    pub(super) fn first_live(&self, owner: &Owner) -> Peer {
        self.live_in_order(std::iter::once(&owner.node).chain(&owner.next), None)
            .next()
            .unwrap_or(owner.node)
    }
}
