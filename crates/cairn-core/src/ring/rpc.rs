//! Bookkeeping of the requests this node sent: what each was for, when it
//! was sent, when it times out, and the late answers worth measuring.
//!
//! Invariant: every request is either pending (its answer or failure still
//! to come, at most once), or expired (timed out; an answer may still arrive
//! and is used only as a round-trip sample and proof of life), or forgotten.

use super::LookupId;
use super::walk::WalkId;
use crate::id::NodeId;
use crate::rpc::InboundId;
use crate::wire::Peer;
use std::collections::BTreeMap;
use std::time::Duration;

/// The ring's own number for a request it sent (the host tags it with the
/// machine to make an [`crate::rpc::RpcId`]).
pub type RingRpc = u64;

/// Why the ring sent a request: decides what its answer or failure means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Purpose {
    Stabilize,
    /// Checking that the successor's predecessor is alive before adopting it.
    StabilizeCandidate,
    Notify,
    CheckPredecessor,
    Lookup(LookupId),
    Leave,
    /// Checking a node found between me and my successor (by a merge probe,
    /// or introduced by my successor) before adopting it.
    Closer,
    /// Telling my old predecessor of a node that joined between us.
    Introduce,
    /// Asking finger i for its predecessor: if the finger's start still lies
    /// between that predecessor and the finger, it is still right.
    CheckFinger(u8),
    /// Confirming or clearing a suspicion (see [`crate::liveness`]).
    Probe,
    /// Asking another node to probe a suspect for me (SWIM's indirect probe).
    IndirectProbe(NodeId),
    /// Probing a peer for another node's `ProbeFor`: answered once this ends.
    Relay(InboundId),
    /// Asking a member for its list on a walk round the ring.
    Walk(WalkId),
}

/// One request under way: to whom, what for, when it left, when it times out.
#[derive(Clone, Debug)]
pub(super) struct PendingRpc {
    pub to: Peer,
    pub purpose: Purpose,
    pub sent_at: Duration,
    pub deadline: Duration,
}

/// The requests under way.
#[derive(Clone, Debug)]
pub(super) struct Outstanding {
    next: RingRpc,
    pending: BTreeMap<RingRpc, PendingRpc>,
    /// Requests that timed out, kept until `keep_late` after their deadline:
    /// a late answer still measures the round trip (so timeouts grow when the
    /// network slows down) and proves the peer alive.
    expired: BTreeMap<RingRpc, PendingRpc>,
    keep_late: Duration,
}

impl Outstanding {
    pub fn new(keep_late: Duration) -> Outstanding {
        Outstanding {
            next: 1,
            pending: BTreeMap::new(),
            expired: BTreeMap::new(),
            keep_late,
        }
    }

    /// Registers a request; its id.
    pub fn open(
        &mut self,
        to: Peer,
        purpose: Purpose,
        now: Duration,
        timeout: Duration,
    ) -> RingRpc {
        let rpc = self.next;
        self.next += 1;
        self.pending.insert(
            rpc,
            PendingRpc {
                to,
                purpose,
                sent_at: now,
                deadline: now + timeout,
            },
        );
        rpc
    }

    /// The answer or failure of `rpc` came: the request, if it was pending.
    pub fn close(&mut self, rpc: RingRpc) -> Option<PendingRpc> {
        self.pending.remove(&rpc)
    }

    /// An answer to a request that had timed out already, if it is still remembered.
    pub fn take_late(&mut self, rpc: RingRpc) -> Option<PendingRpc> {
        self.expired.remove(&rpc)
    }

    /// The requests whose deadline passed at `now`.
    pub fn due(&self, now: Duration) -> Vec<RingRpc> {
        self.pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect()
    }

    /// `rpc` timed out: it moves to the expired ones, if it was still pending.
    pub fn time_out(&mut self, rpc: RingRpc) -> Option<PendingRpc> {
        let pending = self.pending.remove(&rpc)?;
        self.expired.insert(rpc, pending.clone());
        Some(pending)
    }

    /// Forgets expired requests whose late answers are no longer worth waiting for.
    pub fn forget_late(&mut self, now: Duration) {
        let keep_late = self.keep_late;
        self.expired
            .retain(|_, p| now.saturating_sub(p.deadline) < keep_late);
    }

    /// What the pending requests to `peer` are for.
    #[cfg(test)]
    pub fn pending_to(&self, peer: NodeId) -> impl Iterator<Item = Purpose> + '_ {
        self.pending
            .values()
            .filter(move |p| p.to.id == peer)
            .map(|p| p.purpose)
    }

    /// The earliest deadline of a pending request.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// Forgets every pending request (the node has left); returns them.
    pub fn clear(&mut self) -> Vec<PendingRpc> {
        std::mem::take(&mut self.pending).into_values().collect()
    }
}
