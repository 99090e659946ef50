//! Joining: look up successor(me) through a bootstrap peer, take the owner
//! (and the nodes after it) as a tentative successor list, and let
//! stabilization confirm it. A failed attempt is retried through the next
//! bootstrap after a pause that doubles (a bootstrap that is itself still
//! joining, or a ring repairing a crash, needs a moment), until the join's
//! deadline; then the join fails for good and the node serves nobody.
//!
//! The bootstraps are kept as the node's seeds: merge probes go through them
//! now and then (see `merge`), which is also how a member that lost every
//! neighbour finds its way back. Rejoining is decided here and in `merge`
//! only; the caller never retries a join itself.
//!
//! Invariants: the node is `Joining` exactly while a join attempt, the pause
//! before the next one, or the first stabilization after one is under way,
//! and it serves no ring requests meanwhile (it could otherwise start a
//! second ring); a node whose join failed never becomes a ring of its own.

use super::lookups::LookupKind;
use super::timers::Timer;
use super::{Action, Phase, RingEvent, RingNode};
use crate::lookup::{LookupError, Owner};
use crate::wire::Peer;
use std::time::Duration;

/// The pause before a join retry grows to at most this many stabilization periods.
const MAX_RETRY_PERIODS: u32 = 8;

impl RingNode {
    /// Joins the ring that the `bootstraps` are members of, trying them in
    /// turn for up to `timeout`. The outcome comes as [`RingEvent::Joined`]
    /// or, by the deadline, [`RingEvent::JoinFailed`].
    pub fn join(&mut self, now: Duration, bootstraps: &[Peer], timeout: Duration) {
        let me = self.me().id;
        for bootstrap in bootstraps.iter().filter(|p| p.id != me) {
            if !self.seeds.iter().any(|s| s.id == bootstrap.id) {
                self.seeds.push(*bootstrap);
            }
        }
        if self.seeds.is_empty() || self.phase != Phase::Active || self.was_member {
            return;
        }
        self.phase = Phase::Joining {
            attempt: 0,
            until: now + timeout,
        };
        self.start_join_attempt(now);
        self.report_changes();
    }

    /// The bootstrap of the current attempt: the seeds in turn.
    fn join_bootstrap(&self) -> Option<Peer> {
        let Phase::Joining { attempt, .. } = self.phase else {
            return None;
        };
        let count = self.seeds.len().max(1);
        self.seeds.get(attempt as usize % count).copied()
    }

    fn start_join_attempt(&mut self, now: Duration) {
        let Some(bootstrap) = self.join_bootstrap() else {
            return;
        };
        self.join_attempt_running = true;
        // successor(me): if an old incarnation of this node (same id, crashed and
        // restarted) is still listed, the answer is "me" followed by the nodes
        // after it, and the join takes the first of those (see on_join_found).
        let target = self.me().id.id();
        self.launch_lookup_via(now, target, bootstrap, LookupKind::Join);
    }

    /// The join attempt failed: pause and try the next bootstrap, or give up
    /// at the deadline.
    pub(super) fn join_attempt_failed(&mut self, now: Duration, reason: &str) {
        let Phase::Joining { attempt, until } = self.phase else {
            return;
        };
        if !self.join_attempt_running {
            return; // This attempt was counted already (a late timeout of it).
        }
        self.join_attempt_running = false;
        let periods = 1u32 << attempt.min(MAX_RETRY_PERIODS.ilog2());
        let retry_at = now + self.config.stabilize_every * periods;
        if retry_at >= until {
            let through: Vec<String> = self.seeds.iter().map(|p| p.addr.to_string()).collect();
            let reason = format!(
                "{reason} ({} attempts through {})",
                attempt + 1,
                through.join(", ")
            );
            self.phase = Phase::JoinFailed;
            self.timers.unset(Timer::JoinRetry);
            self.stop_all_work(LookupError::NotJoined);
            self.table.clear();
            self.actions
                .push_back(Action::Event(RingEvent::JoinFailed { reason }));
            return;
        }
        self.phase = Phase::Joining {
            attempt: attempt + 1,
            until,
        };
        self.timers.set(Timer::JoinRetry, retry_at);
    }

    /// The pause after a failed attempt is over.
    pub(super) fn retry_join(&mut self, now: Duration) {
        self.timers.unset(Timer::JoinRetry);
        self.start_join_attempt(now);
    }

    /// The join lookup ended.
    pub(super) fn on_join_found(&mut self, now: Duration, result: Result<Owner, LookupError>) {
        if !matches!(self.phase, Phase::Joining { .. }) {
            return;
        }
        match result {
            Ok(owner) => {
                // Take the owner and the nodes after it as a tentative list:
                // stabilize then tries them in order until one answers.
                // Only an old incarnation of me can be "me": skip it, and fall
                // back on the bootstrap if nobody else was named.
                let me = self.me().id;
                let mut candidates: Vec<Peer> = self
                    .live_in_order(std::iter::once(&owner.node).chain(&owner.next), Some(me))
                    .collect();
                if candidates.is_empty() {
                    candidates.extend(self.join_bootstrap());
                }
                let Some((&first, rest)) = candidates.split_first() else {
                    return;
                };
                self.table.adopt_successors(first, rest, |_| true);
                self.stabilize(now);
            }
            Err(error) => self.join_attempt_failed(now, &error.to_string()),
        }
    }
}
