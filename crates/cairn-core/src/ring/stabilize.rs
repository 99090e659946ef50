//! Stabilization in Zave's corrected form: ask the first successor for its
//! predecessor and list, adopt a closer predecessor only once it answered,
//! take the successor's list, and notify it. Also notify (the other side)
//! and check predecessor.
//!
//! Invariants: a peer becomes the first successor only after it answered
//! this node; the successor list never holds this node or a duplicate (the
//! routing table keeps that); at most one stabilization round is under way.

use super::rpc::Purpose;
use super::timers::Timer;
use super::{Action, Phase, RingEvent, RingNode};
use crate::interval::between_open;
use crate::wire::{Peer, Request};
use std::time::Duration;

impl RingNode {
    pub(super) fn stabilize(&mut self, now: Duration) {
        if self.timers.is_busy(Timer::Stabilize)
            || matches!(self.phase, Phase::Leaving { .. } | Phase::Left)
        {
            return;
        }
        if self.table.successor().is_none() {
            // Alone: a node that notified us (or any node we still know) is the way back in.
            let Some(candidate) = self
                .table
                .predecessor()
                .or_else(|| self.table.nearest_known_after_me())
            else {
                self.on_isolated(now);
                return;
            };
            self.table.adopt_successors(candidate, &[], |_| true);
        }
        self.was_member |= self.phase == Phase::Active;
        if let Some(successor) = self.table.successor() {
            self.timers.set_busy(Timer::Stabilize, true);
            let request = self.state_request(successor);
            self.send(now, successor, request, Purpose::Stabilize);
        }
    }

    /// The first successor was dropped: stabilize with the next one at once.
    pub(super) fn on_stabilize_failed(&mut self, now: Duration) {
        if self.table.successor().is_some() {
            self.stabilize(now); // Retry at once with the next successor.
        } else if let Phase::Joining { .. } = self.phase {
            self.join_attempt_failed(now, "the successor found did not answer");
        } else {
            self.stabilize(now);
        }
    }

    pub(super) fn on_successor_state(
        &mut self,
        now: Duration,
        successor: Peer,
        its_predecessor: Option<Peer>,
        its_successors: &[Peer],
    ) {
        self.timers.set_busy(Timer::Stabilize, false);
        if !self.runs_timers() {
            return; // Left, or the join failed: a late answer changes nothing.
        }
        if self.table.successor().is_some_and(|s| s.id != successor.id) {
            return; // The list changed meanwhile (e.g. a notify); the next round uses it.
        }
        self.adopt_live_successors(successor, its_successors);
        if let Phase::Joining { .. } = self.phase {
            self.phase = Phase::Active;
            self.was_member = true;
            self.join_attempt_running = false;
            self.timers.unset(Timer::JoinRetry);
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
                self.timers.set_busy(Timer::Stabilize, true);
                let request = self.state_request(candidate);
                self.send(now, candidate, request, Purpose::StabilizeCandidate);
            }
            // It already knows me as its predecessor: nothing to tell it.
            Some(known) if known.id == self.me().id => {}
            _ => {
                self.send(now, successor, Request::Notify, Purpose::Notify);
            }
        }
    }

    /// A node between me and my successor answered: it becomes my successor.
    pub(super) fn on_candidate_state(
        &mut self,
        now: Duration,
        from: Peer,
        its_predecessor: Option<Peer>,
        its_successors: &[Peer],
    ) {
        if !self.runs_timers() {
            return; // Left, or the join failed: a late answer changes nothing.
        }
        self.adopt_live_successors(from, its_successors);
        // Its own predecessor may be closer still (many nodes joined
        // between me and my old successor): follow the chain at once
        // rather than one step per stabilization period.
        let me = self.me().id;
        match its_predecessor {
            Some(closer)
                if closer.id != me && between_open(me.id(), closer.id.id(), from.id.id()) =>
            {
                let request = self.state_request(closer);
                self.send(now, closer, request, Purpose::StabilizeCandidate);
            }
            _ => {
                self.send(now, from, Request::Notify, Purpose::Notify);
                self.timers.set_busy(Timer::Stabilize, false);
            }
        }
    }

    /// The candidate did not answer: keep the successor, and notify it.
    pub(super) fn on_candidate_failed(&mut self, now: Duration) {
        self.timers.set_busy(Timer::Stabilize, false);
        if let Some(successor) = self.table.successor() {
            self.send(now, successor, Request::Notify, Purpose::Notify);
        }
    }

    /// `first` (which just answered) and its list become the successor list,
    /// without the peers believed dead.
    pub(super) fn adopt_live_successors(&mut self, first: Peer, its_successors: &[Peer]) {
        let liveness = &self.liveness;
        self.table
            .adopt_successors(first, its_successors, |p| !liveness.is_dead(p.id));
    }

    pub(super) fn on_notify(&mut self, now: Duration, from: Peer) {
        let me = self.me().id.id();
        let previous = self.table.predecessor();
        let adopt = match previous {
            None => true,
            Some(current) => {
                self.liveness.is_dead(current.id) || between_open(current.id.id(), from.id.id(), me)
            }
        };
        if adopt {
            self.table.set_predecessor(Some(from));
            // A newcomer between my old predecessor and me: the old one still
            // names me as successor(x) for the newcomer's range until it
            // learns of it; tell it now.
            if let Some(old) = previous
                && old.id != from.id
                && !self.liveness.is_dead(old.id)
                && self.phase == Phase::Active
            {
                self.send(
                    now,
                    old,
                    Request::Introduce { node: from },
                    Purpose::Introduce,
                );
            }
        }
        if self.table.successor().is_none() {
            // Alone until now: the notifier, which just proved it is alive, closes the ring.
            self.table.adopt_successors(from, &[], |_| true);
            self.stabilize(now);
        }
    }

    /// My successor says `node` joined between us: check it now (it is
    /// adopted only once it answered, as in stabilization).
    pub(super) fn on_introduced(&mut self, now: Duration, node: Peer) {
        let me = self.me().id.id();
        let closer = self
            .table
            .successor()
            .is_some_and(|s| between_open(me, node.id.id(), s.id.id()));
        if closer
            && self.phase == Phase::Active
            && node.id != self.me().id
            && !self.config.faults.stabilize_ignores_predecessor
        {
            let request = self.state_request(node);
            self.send(now, node, request, Purpose::Closer);
        }
    }

    pub(super) fn check_predecessor(&mut self, now: Duration) {
        if self.timers.is_busy(Timer::CheckPredecessor) {
            return;
        }
        // Its own stabilization asks me regularly: a request from it lately
        // is proof enough that it lives.
        let heard = now.saturating_sub(self.heard_from_predecessor);
        if heard < self.config.check_predecessor_every {
            return;
        }
        if let Some(predecessor) = self.table.predecessor() {
            self.timers.set_busy(Timer::CheckPredecessor, true);
            self.send(now, predecessor, Request::Ping, Purpose::CheckPredecessor);
        }
    }
}
