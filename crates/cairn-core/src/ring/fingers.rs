//! Fingers: one per round, round robin from the farthest down to the first
//! that is not simply the successor. A stored finger is checked with one
//! small round trip (its predecessor); it is looked up again only when it
//! moved.
//!
//! Invariant: at most one finger is being checked or looked up at a time,
//! and a finger is stored only where it differs from the first successor
//! (the routing table keeps that).

use super::lookups::LookupKind;
use super::rpc::Purpose;
use super::timers::Timer;
use super::{Phase, RingNode};
use crate::interval::between_right_closed;
use crate::lookup::{LookupError, Owner};
use crate::wire::{Peer, Request};
use std::time::Duration;

impl RingNode {
    /// Refreshes one finger, round robin from the farthest down to the first
    /// one that is not simply the successor; then starts again at the top.
    pub(super) fn fix_next_finger(&mut self, now: Duration) {
        if self.timers.is_busy(Timer::FixFinger)
            || self.phase != Phase::Active
            || self.table.successor().is_none()
        {
            return;
        }
        let mut index = self.next_finger;
        if self.table.finger_is_successor(index) {
            index = 255;
            if self.table.finger_is_successor(index) {
                return;
            }
        }
        self.next_finger = index.checked_sub(1).unwrap_or(255);
        self.timers.set_busy(Timer::FixFinger, true);
        match self.table.finger(index) {
            // One small round trip usually confirms it; a lookup only when it moved.
            Some(current) => {
                self.send(
                    now,
                    current,
                    Request::GetPredecessor,
                    Purpose::CheckFinger(index),
                );
            }
            None => {
                let target = self.table.finger_start(index);
                self.launch_lookup(now, target, LookupKind::Finger(index));
            }
        }
    }

    /// Finger `index` told its predecessor: still right, or look it up again.
    pub(super) fn on_finger_predecessor(
        &mut self,
        now: Duration,
        finger: Peer,
        index: u8,
        its_predecessor: Option<Peer>,
    ) {
        let start = self.table.finger_start(index);
        let still_right =
            its_predecessor.is_some_and(|p| between_right_closed(p.id.id(), start, finger.id.id()));
        if still_right {
            self.timers.set_busy(Timer::FixFinger, false);
        } else {
            self.launch_lookup(now, start, LookupKind::Finger(index));
        }
    }

    /// The lookup of finger `index` ended.
    pub(super) fn on_finger_found(&mut self, index: u8, result: Result<Owner, LookupError>) {
        self.timers.set_busy(Timer::FixFinger, false);
        if let Ok(owner) = result {
            let node = self.first_live(&owner);
            self.table.set_finger(index, node);
        }
    }
}
