//! The lists stabilization exchanges: a node asks its successor for its
//! predecessor and successor list, naming a fingerprint of the list it
//! already holds from it, and sends its own predecessor list when the
//! successor does not hold the current one. On a settled ring neither list
//! travels: a round trip costs a few dozen bytes.
//!
//! Invariants: a list said to be "unchanged" is taken only from the cache of
//! that very peer (otherwise it is asked for whole); a fingerprint answered
//! describes the list held now, not the one once received; only answers of
//! the successor, or of a node about to become it, fill the cache.

use super::RingNode;
use crate::id::NodeId;
use crate::routing::fingerprint;
use crate::wire::{Peer, Request, Response};

/// A peer's successor list as last received, with its fingerprint.
#[derive(Clone, Debug)]
pub(super) struct HeldList {
    pub from: NodeId,
    pub fingerprint: u64,
    pub peers: Vec<Peer>,
}

impl RingNode {
    /// The request for a node's state: what this node already holds of its
    /// list (so that an unchanged list is not sent again), and this node's
    /// predecessor list if that node does not hold the current one.
    pub(super) fn state_request(&self, to: Peer) -> Request {
        let have = match &self.successor_state {
            Some(held) if held.from == to.id => held.fingerprint,
            _ => 0,
        };
        let mine = self.table.predecessors_for(to.id);
        let holds_mine = self.successor_holds == Some((to.id, fingerprint(&mine)));
        Request::GetState {
            have,
            predecessors: (!holds_mine).then_some(mine),
        }
    }

    /// Answers `GetState`: takes the asker's predecessor list if it is my
    /// predecessor, says what I hold of it, and sends my successor list
    /// unless the asker holds it already.
    pub(super) fn answer_state(
        &mut self,
        from: Peer,
        have: u64,
        predecessors: Option<Vec<Peer>>,
    ) -> Response {
        let from_predecessor = self.table.predecessor().is_some_and(|p| p.id == from.id);
        if let Some(list) = predecessors
            && from_predecessor
        {
            self.table.adopt_predecessors(from, &list);
        }
        let have_predecessors = match self.table.predecessors_from(from.id) {
            Some(held) if from_predecessor => fingerprint(held),
            _ => 0,
        };
        let successors = self.table.successors();
        let unchanged = have != 0 && have == self.table.successors_fingerprint();
        Response::State {
            predecessor: self.table.predecessor(),
            successors: (!unchanged).then(|| successors.to_vec()),
            have_predecessors,
            http: self.config.http.clone(),
        }
    }

    /// The successor list of a `State` answer from `from` (the one held
    /// already if it said "unchanged"; `None` if it said so of a list this
    /// node no longer holds), and what it holds of mine. `keep` caches the
    /// list for the next round (answers of the successor, or of a node about
    /// to become it).
    pub(super) fn take_state(
        &mut self,
        from: Peer,
        successors: Option<Vec<Peer>>,
        holds: u64,
        keep: bool,
    ) -> Option<Vec<Peer>> {
        self.successor_holds = Some((from.id, holds));
        match successors {
            Some(list) => {
                if keep {
                    self.hold_list(from, &list);
                }
                Some(list)
            }
            None => match &self.successor_state {
                Some(held) if held.from == from.id => Some(held.peers.clone()),
                _ => {
                    self.successor_state = None;
                    None
                }
            },
        }
    }

    /// Remembers `from`'s successor list, to ask with its fingerprint next time.
    pub(super) fn hold_list(&mut self, from: Peer, list: &[Peer]) {
        self.successor_state = Some(HeldList {
            from: from.id,
            fingerprint: fingerprint(list),
            peers: list.to_vec(),
        });
    }
}
