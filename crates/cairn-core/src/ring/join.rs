//! Joining: look up successor(me) through a bootstrap peer, take the owner
//! (and the nodes after it) as a tentative successor list, and let
//! stabilization confirm it. A failed attempt is retried up to
//! `join_attempts` times; a member that lost every neighbour joins again
//! through a peer it heard from lately.
//!
//! Invariant: the node is `Joining` exactly while a join lookup or the first
//! stabilization after it is under way, and it serves no ring requests
//! meanwhile (it could otherwise start a second ring).

use super::lookups::LookupKind;
use super::{Action, Phase, RingEvent, RingNode};
use crate::lookup::{LookupError, Owner};
use crate::wire::Peer;
use std::time::Duration;

impl RingNode {
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

    pub(super) fn start_join_lookup(&mut self, now: Duration, bootstrap: Peer) {
        // successor(me): if an old incarnation of this node (same id, crashed and
        // restarted) is still listed, the answer is "me" followed by the nodes
        // after it, and the join takes the first of those (see on_join_found).
        let target = self.me().id.id();
        self.launch_lookup_via(now, target, bootstrap, LookupKind::Join);
    }

    pub(super) fn retry_join(&mut self, now: Duration, bootstrap: Peer, reason: &str) {
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

    /// The join lookup ended.
    pub(super) fn on_join_found(&mut self, now: Duration, result: Result<Owner, LookupError>) {
        let Phase::Joining { bootstrap, .. } = self.phase else {
            return;
        };
        match result {
            Ok(owner) => {
                // Take the owner and the nodes after it as a tentative list:
                // stabilize then tries them in order until one answers.
                // Only an old incarnation of me can be "me": skip it.
                let me = self.me().id;
                let mut candidates =
                    self.live_in_order(std::iter::once(&owner.node).chain(&owner.next), Some(me));
                let first = candidates.next().unwrap_or(bootstrap);
                let rest: Vec<Peer> = candidates.collect();
                self.table.adopt_successors(first, &rest, |_| true);
                self.stabilize(now);
            }
            Err(error) => self.retry_join(now, bootstrap, &error.to_string()),
        }
    }

    /// A member that lost every neighbour (all of them crashed at once) joins
    /// again through a peer it heard from lately, rather than stay a ring of one.
    pub(super) fn rejoin_if_isolated(&mut self, now: Duration) {
        if !self.was_member || self.phase != Phase::Active {
            return;
        }
        let via = self
            .acquaintances
            .iter()
            .rev()
            .find(|p| !self.liveness.is_dead(p.id))
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
}
