//! The graceful leave: tell the predecessor (with this node's successor list)
//! and the successor (with this node's predecessor), wait for both answers
//! (or their failure), then stop. And the other side: a neighbour's notice
//! that it leaves repairs this node's table at once.
//!
//! Invariant: once leaving, the node starts no new work (no lookups, no
//! periodic rounds) and reaches `Left` exactly once.

use super::rpc::Purpose;
use super::{Action, Phase, RingEvent, RingNode};
use crate::lookup::LookupError;
use crate::wire::{Peer, Request, Response};
use std::time::Duration;

impl RingNode {
    /// Leaves gracefully: tells the predecessor (with this node's successor
    /// list) and the successor (with this node's predecessor), then stops.
    pub fn leave(&mut self, now: Duration) {
        if matches!(self.phase, Phase::Leaving { .. } | Phase::Left) {
            return;
        }
        // Leaving from here on: aborted lookups (a join among them) must not retry.
        self.phase = Phase::Leaving { awaiting: 0 };
        self.abort_lookups(LookupError::Leaving);
        self.finish_walks();
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

    pub(super) fn leave_answered(&mut self) {
        if let Phase::Leaving { awaiting } = &mut self.phase {
            *awaiting = awaiting.saturating_sub(1);
        }
        self.maybe_left();
    }

    fn maybe_left(&mut self) {
        if self.phase == (Phase::Leaving { awaiting: 0 }) {
            self.phase = Phase::Left;
            self.stop_all_work(LookupError::Leaving);
            self.actions.push_back(Action::Event(RingEvent::Left));
        }
    }

    /// The node stops (it left, or could not join): every lookup and walk
    /// ends, pending requests are forgotten, and requests answered later are
    /// answered now with an error.
    pub(super) fn stop_all_work(&mut self, why: LookupError) {
        self.abort_lookups(why.clone());
        self.finish_walks();
        for pending in self.rpcs.clear() {
            if let Purpose::Relay(inbound) = pending.purpose {
                self.actions.push_back(Action::Respond {
                    inbound,
                    response: Response::Error {
                        reason: why.to_string(),
                    },
                });
            }
        }
    }

    /// A neighbour leaves: take its successors (if it was my successor) or its
    /// predecessor (if it was my predecessor) at once.
    pub(super) fn on_leaving(
        &mut self,
        now: Duration,
        leaver: Peer,
        its_predecessor: Option<Peer>,
        its_successors: Vec<Peer>,
    ) {
        let was_successor = self.table.successor().is_some_and(|s| s.id == leaver.id);
        let was_predecessor = self.table.predecessor().is_some_and(|p| p.id == leaver.id);
        self.liveness.departed(now, leaver.id);
        self.rtt.forget(leaver.id);
        self.table.remove(leaver.id);
        if was_successor {
            let mut rest = self.live_in_order(&its_successors, Some(leaver.id));
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
}
