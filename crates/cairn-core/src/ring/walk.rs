//! The ring walk behind `GET /v1/ring`: starting here, ask each member in
//! turn for its successor list and follow it round the ring, judging every
//! member on the way with the same evidence as the ring itself (an answer,
//! a miss weighed by [`crate::liveness`], a refusal).
//!
//! Invariants: a walk asks one member at a time and never the same member
//! twice; it ends (once) when it is back at a member it saw alive, when no
//! candidate is left, at [`MAX_RING_WALK`] members, or at its deadline.

use super::rpc::Purpose;
use super::{Action, RingNode};
use crate::api::MemberState;
use crate::wire::{Peer, Request};
use std::time::Duration;

/// How many members a walk lists at most.
pub const MAX_RING_WALK: usize = 1024;
/// A walk that has not gone round by then ends with what it saw.
pub const WALK_DEADLINE: Duration = Duration::from_secs(10);

/// Names one walk started with [`RingNode::start_walk`].
pub type WalkId = u64;

/// One member as the walk saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalkedMember {
    pub peer: Peer,
    /// Its HTTP address, if it answered and serves one.
    pub http: Option<String>,
    pub state: MemberState,
}

#[derive(Clone, Debug)]
pub(super) struct RunningWalk {
    members: Vec<WalkedMember>,
    /// Who to ask next, in ring order (the last answer's successor list).
    candidates: Vec<Peer>,
    deadline: Duration,
}

impl RingNode {
    /// Walks the ring from here; the members come as [`Action::WalkDone`].
    pub fn start_walk(&mut self, now: Duration) -> WalkId {
        let id = self.next_walk;
        self.next_walk += 1;
        let walk = RunningWalk {
            members: vec![WalkedMember {
                peer: self.me(),
                http: self.config.http.clone(),
                state: MemberState::Alive,
            }],
            candidates: self.table.successors().to_vec(),
            deadline: now + WALK_DEADLINE,
        };
        self.walks.insert(id, walk);
        self.drive_walk(now, id);
        self.report_changes();
        id
    }

    /// Asks the next member, or ends the walk.
    fn drive_walk(&mut self, now: Duration, id: WalkId) {
        let Some(walk) = self.walks.get_mut(&id) else {
            return;
        };
        let next = loop {
            if walk.members.len() >= MAX_RING_WALK || now >= walk.deadline {
                break None;
            }
            if walk.candidates.is_empty() {
                break None;
            }
            let candidate = walk.candidates.remove(0);
            match walk.members.iter().find(|m| m.peer.id == candidate.id) {
                // Seen alive already: around the ring.
                Some(seen) if seen.state == MemberState::Alive => break None,
                Some(_) => continue, // Seen failing: the next one.
                None => break Some(candidate),
            }
        };
        match next {
            Some(candidate) => {
                let ask = Request::GetState {
                    have: 0,
                    predecessors: None,
                };
                self.send(now, candidate, ask, Purpose::Walk(id));
            }
            None => self.finish_walk(id),
        }
    }

    /// `from` answered the walk: alive, and its list is the way on.
    pub(super) fn on_walk_state(
        &mut self,
        now: Duration,
        id: WalkId,
        from: Peer,
        http: Option<String>,
        successors: Vec<Peer>,
    ) {
        if let Some(walk) = self.walks.get_mut(&id) {
            walk.members.push(WalkedMember {
                peer: from,
                http,
                state: MemberState::Alive,
            });
            walk.candidates = successors;
        }
        self.drive_walk(now, id);
    }

    /// `peer` did not answer the walk (or refused): listed as this node now
    /// judges it, and the walk goes on with the next candidate.
    pub(super) fn on_walk_failed(&mut self, now: Duration, id: WalkId, peer: Peer) {
        let state = match self.liveness.state_of(peer.id) {
            // It did not answer this time, whatever was believed before.
            MemberState::Alive => MemberState::Suspect,
            judged => judged,
        };
        if let Some(walk) = self.walks.get_mut(&id) {
            walk.members.push(WalkedMember {
                peer,
                http: None,
                state,
            });
        }
        self.drive_walk(now, id);
    }

    fn finish_walk(&mut self, id: WalkId) {
        if let Some(walk) = self.walks.remove(&id) {
            self.actions.push_back(Action::WalkDone {
                walk: id,
                members: walk.members,
            });
        }
    }

    /// Ends every walk with what it saw (the node is leaving).
    pub(super) fn finish_walks(&mut self) {
        for id in self.walks.keys().copied().collect::<Vec<_>>() {
            self.finish_walk(id);
        }
    }
}
