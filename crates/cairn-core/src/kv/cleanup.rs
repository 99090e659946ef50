//! Dropping what this node no longer has to keep, and nothing else.
//!
//! Two kinds of records go:
//!
//! - a record outside the held range (R-th predecessor, me]: a newcomer took
//!   over its range, so this node is no longer one of its replicas. It is
//!   dropped only once every member of the key's current replica set has
//!   answered that it holds this version or a newer one (a locate). A member
//!   that holds an older one, or none, is sent the record, and the drop waits
//!   for a later pass to see it there. A member that does not answer keeps
//!   the record here.
//! - a tombstone older than the grace ([`super::KvConfig::tombstone_grace`]):
//!   by then every replica has had the time to learn of the delete, so the
//!   tombstone has done its work.
//!
//! A pass scans its range page by page from the store. The excess pass (the
//! range outside the held one, usually empty: one small scan) runs every
//! sync period while the holding did not change since the last one; the
//! sweep (the whole ring, for old tombstones) runs every
//! [`super::KvConfig::sweep_every`]. One pass at a time, one page at a time.
//!
//! Each removal names the exact version it removes: a write that arrived
//! meanwhile stays.
//!
//! A node that was away longer than the grace may hold values whose
//! deletes it missed and whose tombstones are gone: handing them out would
//! bring them back. Such a node starts in quarantine: it pushes nothing and
//! serves no reads, and checks every record it holds against the key's
//! replicas; one that no other replica holds in any version is dropped (the
//! rest is left to anti-entropy, newest wins). Then it serves again. If no
//! other replica answers (the whole ring was down as long), it keeps what
//! it has.

use super::{Kind, OpId, OpResult, Replication, Waiter};
use crate::id::KeyId;
use crate::range::KeyRange;
use crate::record::Record;
use crate::storage::{StorageOutcome, StorageRequest};
use crate::version::Version;
use crate::wire::Request;
use std::collections::BTreeMap;
use std::time::Duration;

/// Records read per page of a pass.
pub const CLEANUP_PAGE_RECORDS: usize = 64;

/// One pass over `rest`.
#[derive(Clone, Debug, Default)]
pub(super) struct Cleanup {
    /// The pass of a node back after longer than the grace: every record
    /// is checked against its replicas; one no other replica holds goes.
    quarantine: bool,
    /// What is left to scan (`None`: the page under way is the last).
    rest: Option<KeyRange>,
    /// Outside the held range here: records to confirm, then drop.
    held: Option<KeyRange>,
    /// Confirmations under way for the current page: op -> the record.
    confirming: BTreeMap<OpId, Record>,
    /// Confirmed (or expired) records of the current page, to remove.
    removable: Vec<(KeyId, Version)>,
    /// A page read or a removal is under way.
    reading: bool,
}

/// What the passes did, for reports and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanupCounters {
    /// Records removed from the store (either kind).
    pub removed: u64,
    /// Records found confirmed by every current replica (to remove).
    pub confirmed: u64,
    /// Tombstones found past their grace (to remove).
    pub expired_tombstones: u64,
    /// Records sent to a replica that lacked them, instead of a drop.
    pub sent_before_drop: u64,
}

impl Replication {
    /// Starts a pass over `range` unless one is under way; `held` is the
    /// range this node must keep (records outside it are confirmed, then dropped).
    pub(super) fn start_cleanup(&mut self, range: KeyRange, held: Option<KeyRange>) {
        if self.cleanup.is_some() || self.config.faults.no_repair || self.quarantined {
            return;
        }
        self.cleanup = Some(Cleanup {
            rest: Some(range),
            held,
            ..Cleanup::default()
        });
        self.cleanup_read_page();
    }

    /// This node was last alive `away` ago (as its data dir says): past the
    /// grace, it goes into quarantine until its check pass ends.
    pub fn came_back_after(&mut self, away: Duration) {
        if away <= self.config.tombstone_grace || self.cleanup.is_some() {
            return;
        }
        self.quarantined = true;
        self.cleanup = Some(Cleanup {
            quarantine: true,
            rest: Some(KeyRange::whole()),
            ..Cleanup::default()
        });
    }

    /// True while this node checks its records after a long absence.
    pub fn is_quarantined(&self) -> bool {
        self.quarantined
    }

    /// Starts the quarantine pass once the node serves (it needs the ring).
    pub(super) fn resume_quarantine(&mut self) {
        let waiting = self
            .cleanup
            .as_ref()
            .is_some_and(|c| c.quarantine && c.confirming.is_empty() && !c.reading);
        if waiting {
            self.cleanup_read_page();
        }
    }

    /// The excess pass: the range outside what this node holds.
    pub(super) fn start_excess_pass(&mut self) {
        let Some(held) = self.holding.as_ref().map(|h| h.held) else {
            return;
        };
        if held.is_whole() {
            return;
        }
        self.start_cleanup(KeyRange::new(held.through, held.after), Some(held));
    }

    /// The sweep: every record here, for old tombstones (and excess records).
    pub(super) fn start_sweep(&mut self) {
        let held = self.holding.as_ref().map(|h| h.held);
        self.start_cleanup(KeyRange::whole(), held.filter(|h| !h.is_whole()));
    }

    fn cleanup_read_page(&mut self) {
        let Some(rest) = self.cleanup.as_ref().and_then(|c| c.rest) else {
            self.end_cleanup();
            return;
        };
        if let Some(state) = self.cleanup.as_mut() {
            state.reading = true;
        }
        let request = StorageRequest::Scan {
            range: rest,
            limit: CLEANUP_PAGE_RECORDS,
        };
        self.store(Waiter::Cleanup, request);
    }

    fn end_cleanup(&mut self) {
        if self.cleanup.take().is_some_and(|c| c.quarantine) {
            self.quarantined = false;
        }
    }

    /// The store answered a scan, or a removal, of the pass.
    pub(super) fn on_cleanup_storage(&mut self, outcome: StorageOutcome) {
        if let Some(state) = self.cleanup.as_mut() {
            state.reading = false;
        }
        match outcome {
            StorageOutcome::Scanned(records) => self.cleanup_page(records),
            StorageOutcome::Removed(removed) => {
                self.cleanup_counters.removed += removed.iter().filter(|r| **r).count() as u64;
                self.cleanup_read_page();
            }
            // The store failed: end the pass; the next one starts over (a
            // quarantine ends: its node would otherwise never serve again).
            _ => self.end_cleanup(),
        }
    }

    fn cleanup_page(&mut self, records: Vec<Record>) {
        let grace = self.config.tombstone_grace;
        let wall_ms = self.wall_ms;
        let now = self.now;
        let Some(state) = self.cleanup.as_mut() else {
            return;
        };
        let Some(last) = records.last().map(|r| r.key_id) else {
            self.end_cleanup();
            return;
        };
        state.rest = state.rest.and_then(|rest| rest.rest_after(last));
        let held = state.held;
        let quarantine = state.quarantine;
        let mut confirm = Vec::new();
        for record in records {
            let age =
                Duration::from_millis(wall_ms.saturating_sub(record.version.timestamp.physical_ms));
            if record.is_tombstone() && age > grace {
                state.removable.push((record.key_id, record.version));
                self.cleanup_counters.expired_tombstones += 1;
            } else if quarantine || held.is_some_and(|h| !h.contains(record.key_id)) {
                confirm.push(record);
            }
        }
        for record in confirm {
            let key_id = record.key_id;
            let op = self.start(now, Kind::Locate(key_id), key_id.id(), None);
            if let Some(op_state) = self.ops.get_mut(&op) {
                op_state.internal = true;
            }
            if let Some(state) = self.cleanup.as_mut() {
                state.confirming.insert(op, record);
            }
        }
        self.cleanup_page_done();
    }

    /// A confirmation ended: drop the record if every replica holds it,
    /// else send it to those that lack it (a later pass drops it).
    pub(super) fn on_confirmed(&mut self, op: OpId, result: Result<OpResult, super::KvError>) {
        let me = self.me.id;
        let Some((record, quarantine)) = self
            .cleanup
            .as_mut()
            .and_then(|c| c.confirming.remove(&op).map(|r| (r, c.quarantine)))
        else {
            return;
        };
        if quarantine {
            if let Ok(OpResult::Located { replicas, .. }) = result {
                let others: Vec<_> = replicas.iter().filter(|(p, _)| p.id != me).collect();
                let nowhere =
                    !others.is_empty() && others.iter().all(|(_, held)| matches!(held, Ok(None)));
                if nowhere && let Some(state) = self.cleanup.as_mut() {
                    state.removable.push((record.key_id, record.version));
                }
            }
        } else if let Ok(OpResult::Located { replicas, .. }) = result {
            let all_answered = replicas.iter().all(|(_, held)| held.is_ok());
            let mine_again = replicas.iter().any(|(peer, _)| peer.id == me);
            let lacking: Vec<_> = replicas
                .iter()
                .filter(|(_, held)| matches!(held, Ok(v) if v.is_none_or(|v| v < record.version)))
                .map(|(peer, _)| *peer)
                .collect();
            if all_answered && !mine_again && !replicas.is_empty() {
                if lacking.is_empty() {
                    if let Some(state) = self.cleanup.as_mut() {
                        state.removable.push((record.key_id, record.version));
                    }
                    self.cleanup_counters.confirmed += 1;
                } else {
                    for peer in lacking {
                        self.cleanup_counters.sent_before_drop += 1;
                        let request = Request::Store {
                            record: Box::new(record.clone()),
                        };
                        self.send(Waiter::Repair, peer, request);
                    }
                }
            }
        }
        self.cleanup_page_done();
    }

    /// Once no confirmation of the page is under way: remove what may go,
    /// then read the next page.
    fn cleanup_page_done(&mut self) {
        let Some(state) = self.cleanup.as_mut() else {
            return;
        };
        if !state.confirming.is_empty() {
            return;
        }
        if state.removable.is_empty() {
            self.cleanup_read_page();
        } else {
            let items = std::mem::take(&mut state.removable);
            state.reading = true;
            self.store(Waiter::Cleanup, StorageRequest::Remove(items));
        }
    }
}
