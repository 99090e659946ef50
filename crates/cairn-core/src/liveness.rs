//! Which peers this node believes dead, and since when.
//!
//! Invariant: a peer is marked dead only by a failed ring probe or its own
//! leave notice, and any direct word from it (a request, or an answer to one
//! of ours) clears the mark at once. Marks older than `memory` are forgotten,
//! so a peer that other nodes still mention is let back in after a while even
//! if it never speaks to this node.

use crate::id::NodeId;
use std::collections::BTreeMap;
use std::time::Duration;

/// Dead marks of peers.
#[derive(Clone, Debug)]
pub struct Liveness {
    /// Peer -> when it was marked dead.
    dead: BTreeMap<NodeId, Duration>,
    /// How long a mark is kept without news.
    memory: Duration,
}

impl Liveness {
    pub fn new(memory: Duration) -> Liveness {
        Liveness {
            dead: BTreeMap::new(),
            memory,
        }
    }

    /// True if `id` was marked dead and not heard from since.
    pub fn is_dead(&self, id: NodeId) -> bool {
        self.dead.contains_key(&id)
    }

    /// `id` spoke to this node directly: whatever we thought, it lives.
    pub fn heard_from(&mut self, id: NodeId) {
        self.dead.remove(&id);
    }

    /// `id` missed a ring probe, or said it is leaving.
    pub fn mark_dead(&mut self, now: Duration, id: NodeId) {
        self.dead.insert(id, now);
    }

    /// Forgets marks older than the memory.
    pub fn forget_old(&mut self, now: Duration) {
        let memory = self.memory;
        self.dead
            .retain(|_, since| now.saturating_sub(*since) < memory);
    }
}
