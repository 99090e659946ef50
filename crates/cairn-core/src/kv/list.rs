//! Listing keys by prefix (`cairn ls`): keys are spread by hash, so every
//! member is asked for the live keys of its primary range (predecessor,
//! member], with the prefix, and the answers are merged in key order.
//!
//! The list is a snapshot from each member's own store: a key whose write
//! has not reached its owner yet (a handoff under way) may be missing, and
//! a member that does not answer leaves its range out: the result says how
//! many did not.

use super::{KvAction, OpId, OpResult, Replication, Waiter};
use crate::range::KeyRange;
use crate::storage::{StorageOutcome, StorageRequest};
use crate::wire::{Peer, Request, Response};
use std::collections::BTreeSet;
use std::time::Duration;

/// The most keys one listing returns (and one member answers).
pub const MAX_LIST_KEYS: usize = 10_000;
/// The most key bytes one member answers with: well inside a frame.
pub const MAX_LIST_BYTES: usize = 1 << 20;

/// One listing under way.
#[derive(Clone, Debug)]
pub(super) struct Listing {
    waiting: usize,
    keys: BTreeSet<String>,
    truncated: bool,
    missing: usize,
    limit: usize,
}

impl Replication {
    /// Lists up to `limit` live keys starting with `prefix` across `members`
    /// (the ring, as a walk found it; in any order). Ends with
    /// [`OpResult::Listed`].
    pub fn list(&mut self, now: Duration, prefix: String, members: &[Peer], limit: usize) -> OpId {
        self.now = now;
        let op = self.new_op_id();
        let limit = limit.clamp(1, MAX_LIST_KEYS);
        let mut ids: Vec<Peer> = members.to_vec();
        ids.sort_by_key(|p| p.id.id());
        ids.dedup_by_key(|p| p.id);
        self.listings.insert(
            op,
            Listing {
                waiting: ids.len(),
                keys: BTreeSet::new(),
                truncated: false,
                missing: 0,
                limit,
            },
        );
        if ids.is_empty() {
            self.list_done(op);
            return op;
        }
        for (index, member) in ids.iter().enumerate() {
            let before = ids[(index + ids.len() - 1) % ids.len()];
            let range = if ids.len() == 1 {
                KeyRange::whole()
            } else {
                KeyRange::new(before.id.id(), member.id.id())
            };
            let waiter = Waiter::List(op);
            if member.id == self.me.id {
                let request = StorageRequest::ListKeys {
                    range,
                    prefix: prefix.clone(),
                    limit,
                };
                self.store(waiter, request);
            } else {
                let request = Request::ListKeys {
                    range,
                    prefix: prefix.clone(),
                    limit: limit as u32,
                };
                self.send(waiter, *member, request);
            }
        }
        op
    }

    /// A peer asks for the keys of `range` with `prefix`.
    pub(super) fn serve_list(
        &mut self,
        inbound: crate::rpc::InboundId,
        range: KeyRange,
        prefix: String,
        limit: u32,
    ) {
        let limit = (limit as usize).clamp(1, MAX_LIST_KEYS);
        let request = StorageRequest::ListKeys {
            range,
            prefix,
            limit,
        };
        self.store(Waiter::Inbound(inbound), request);
    }

    /// One member answered (`None`: it failed or did not answer).
    pub(super) fn on_listed(&mut self, op: OpId, answer: Option<(Vec<String>, bool)>) {
        let Some(listing) = self.listings.get_mut(&op) else {
            return;
        };
        match answer {
            Some((keys, truncated)) => {
                listing.truncated |= truncated;
                listing.keys.extend(keys);
            }
            None => listing.missing += 1,
        }
        listing.waiting = listing.waiting.saturating_sub(1);
        if listing.waiting == 0 {
            self.list_done(op);
        }
    }

    pub(super) fn list_answer(response: Response) -> Option<(Vec<String>, bool)> {
        match response {
            Response::Keys { keys, truncated } => Some((keys, truncated)),
            _ => None,
        }
    }

    pub(super) fn list_outcome(outcome: StorageOutcome) -> Option<(Vec<String>, bool)> {
        match outcome {
            StorageOutcome::Keys { keys, truncated } => Some((keys, truncated)),
            _ => None,
        }
    }

    fn list_done(&mut self, op: OpId) {
        let Some(listing) = self.listings.remove(&op) else {
            return;
        };
        let truncated = listing.truncated || listing.keys.len() > listing.limit;
        let keys: Vec<String> = listing.keys.into_iter().take(listing.limit).collect();
        let result = Ok(OpResult::Listed {
            keys,
            truncated,
            missing: listing.missing,
        });
        self.actions.push_back(KvAction::Done { op, result });
    }
}
