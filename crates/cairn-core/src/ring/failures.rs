//! What a failed request means, by what it was for. A timeout or a failure
//! of the ring's own requests to a neighbour is evidence against that
//! neighbour's liveness, weighed by [`crate::liveness`] (suspect, probe,
//! dead); an error answer says the peer lives but cannot serve the ring
//! (it leaves, or is still joining); work done for another node (a relay)
//! or through one (an indirect probe) says nothing about a neighbour.
//! Whatever the verdict, the work the request was for goes on without it.
//!
//! Invariants: only ring probes and ring requests count as misses; a peer
//! judged dead is dropped everywhere at once and the successor list is
//! repaired at once if it was the first successor.

use super::rpc::{PendingRpc, Purpose};
use super::timers::Timer;
use super::{Action, RingEvent, RingNode};
use crate::id::NodeId;
use crate::liveness::Verdict;
use crate::wire::{Peer, Request, Response};
use std::time::Duration;

impl RingNode {
    /// A ring request failed or timed out: evidence against the peer's
    /// liveness, weighed by [`Liveness`]; the work it was for goes on without it.
    pub(super) fn on_failed(&mut self, now: Duration, failed: PendingRpc) {
        let PendingRpc {
            to: peer,
            purpose,
            sent_at,
            ..
        } = failed;
        match purpose {
            Purpose::Leave => {
                self.leave_answered();
                return;
            }
            // Work done for another node (a relay), or through one (an
            // indirect probe, which waits on a third): no evidence about a
            // neighbour of this node. Counting it would spread suspicion of
            // one crash round the whole ring.
            Purpose::Relay(_) | Purpose::IndirectProbe(_) => {
                self.go_on_without(now, peer, purpose);
                return;
            }
            _ => {}
        }
        let verdict = self
            .liveness
            .missed(now, peer.id, sent_at, purpose == Purpose::Probe);
        self.go_on_without(now, peer, purpose);
        match verdict {
            Verdict::Suspect { probe: true, first } => {
                self.send(now, peer, Request::Ping, Purpose::Probe);
                if first && let Some(other) = self.probe_helper(peer.id) {
                    let request = Request::ProbeFor { target: peer };
                    self.send(now, other, request, Purpose::IndirectProbe(peer.id));
                }
            }
            Verdict::Suspect { probe: false, .. } => {}
            Verdict::Dead => self.on_peer_dead(now, peer),
            Verdict::AlreadyGone => {
                if purpose == Purpose::Stabilize {
                    self.on_stabilize_failed(now);
                }
            }
        }
    }

    /// A peer answered a ring request with an error (it is leaving, has left,
    /// or is still joining): it lives, but cannot serve the ring, so it is
    /// dropped without any judgement of its liveness.
    pub(super) fn on_refused(&mut self, now: Duration, peer: Peer, purpose: Purpose) {
        self.liveness.departed(now, peer.id);
        self.rtt.forget(peer.id);
        self.table.remove(peer.id);
        self.go_on_without(now, peer, purpose);
        if purpose == Purpose::Stabilize {
            self.on_stabilize_failed(now);
        }
    }

    /// The work a failed request was for goes on without that peer.
    fn go_on_without(&mut self, now: Duration, peer: Peer, purpose: Purpose) {
        match purpose {
            // The next round asks again, or the verdict on the peer moves on.
            Purpose::Stabilize => self.timers.set_busy(Timer::Stabilize, false),
            Purpose::StabilizeCandidate => self.on_candidate_failed(now),
            Purpose::CheckPredecessor => self.timers.set_busy(Timer::CheckPredecessor, false),
            Purpose::CheckFinger(_) => self.timers.set_busy(Timer::FixFinger, false),
            Purpose::Lookup(id) => {
                if let Some(running) = self.lookups.get_mut(&id) {
                    running.lookup.on_failure(peer.id);
                }
                self.drive_lookup(now, id);
            }
            Purpose::Walk(id) => self.on_walk_failed(now, id, peer),
            Purpose::Relay(inbound) => self.actions.push_back(Action::Respond {
                inbound,
                response: Response::Error {
                    reason: format!("{} did not answer", peer.addr),
                },
            }),
            // A leave counts answers and failures alike (see `on_failed`).
            Purpose::Leave
            | Purpose::Notify
            | Purpose::Closer
            | Purpose::Introduce
            | Purpose::Probe
            | Purpose::IndirectProbe(_) => {}
        }
    }

    /// `peer` missed enough requests in a row: drop it everywhere, keep it
    /// off the lists others send, probe it now and then for a merge, and
    /// repair the successor list at once if it was the first successor.
    pub(super) fn on_peer_dead(&mut self, now: Duration, peer: Peer) {
        let was_successor = self.table.successor().is_some_and(|s| s.id == peer.id);
        self.graveyard.bury(peer, now);
        self.rtt.forget(peer.id);
        let dropped = self.table.remove(peer.id);
        self.actions
            .push_back(Action::Event(RingEvent::PeerFailed { peer, dropped }));
        if was_successor {
            self.on_stabilize_failed(now);
        }
    }

    /// Another node to probe a suspect through: the nearest neighbour that is
    /// neither the suspect nor in doubt itself.
    fn probe_helper(&self, suspect: NodeId) -> Option<Peer> {
        let me = self.me().id;
        self.table
            .successors()
            .iter()
            .chain(self.table.predecessors())
            .find(|p| {
                p.id != suspect
                    && p.id != me
                    && !self.liveness.is_dead(p.id)
                    && !self.liveness.is_suspect(p.id)
            })
            .copied()
    }
}
