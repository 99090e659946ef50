//! Handoff: when the ring changes what this node holds or with whom, it
//! pushes its primary range to new replicas, and the part a newcomer took
//! over to the newcomer, page by page, each page durable at the receiver
//! before the next is read; a leaving node hands every range it holds to
//! its next replica first.

use super::*;

impl Replication {
    /// The ring changed what this node holds or with whom: push to new
    /// replicas, and to a newcomer that took over part of the primary range.
    pub fn on_holding(
        &mut self,
        now: Duration,
        primary: KeyRange,
        held: KeyRange,
        replicas: Vec<Peer>,
        predecessor: Option<Peer>,
    ) {
        self.now = now;
        let new = Holding {
            primary,
            held,
            replicas,
        };
        let old = self.holding.replace(new.clone());
        if self.next_sync.is_none() {
            self.next_sync = Some(now + self.config.sync_every);
            self.next_sweep = Some(now + self.config.sweep_every);
        }
        self.resume_quarantine();
        if old.as_ref() == Some(&new) {
            return;
        }
        self.holding_settled = false;
        if new.replicas.len() == 1 && predecessor.is_none() {
            self.alone = true;
        }
        let me = self.me.id;
        for member in &new.replicas {
            let was_one = old
                .as_ref()
                .is_some_and(|o| o.replicas.iter().any(|p| p.id == member.id));
            if member.id != me && !was_one {
                self.start_push(*member, new.primary);
            }
        }
        // Ranges are compared with the last primary range that had a known
        // predecessor: a dead predecessor is first cleared (the range reads
        // as the whole ring for a moment) before the one before it is
        // adopted, and the range this node inherited must still be pushed.
        let Some(predecessor_now) = predecessor else {
            return;
        };
        let known = self.known_primary.replace(new.primary);
        let was_alone = std::mem::take(&mut self.alone);
        match known {
            None if was_alone => {
                // This node was alone and held everything: the newcomer
                // owns the rest of the ring now. (A node that just joined
                // also starts without a known predecessor: it pushes nothing.)
                let rest = KeyRange::new(self.me.id.id(), predecessor_now.id.id());
                self.start_push(predecessor_now, rest);
            }
            None => {}
            Some(known) if known != new.primary => self.diff_primary(known, &new, predecessor),
            Some(_) => {}
        }
    }

    /// The primary range changed from `known` to `new.primary`: push what
    /// a newcomer took over to it, or a dead predecessor's range to my replicas.
    pub(super) fn diff_primary(
        &mut self,
        known: KeyRange,
        new: &Holding,
        predecessor: Option<Peer>,
    ) {
        let me = self.me.id;
        {
            let (was, now_from) = (known.after, new.primary.after);
            if known.contains(KeyId(now_from)) && now_from != was {
                // A newcomer between my old predecessor and me now owns the
                // part of my old primary range up to it.
                if let Some(newcomer) = predecessor {
                    self.start_push(newcomer, KeyRange::new(was, now_from));
                }
            } else if !new.primary.is_whole() && new.primary.contains(KeyId(was)) {
                // My predecessor went (crashed or left): I own its range too
                // now, and my last replicas never held it.
                let grown = KeyRange::new(now_from, was);
                for member in new.replicas.clone() {
                    if member.id != me {
                        self.start_push(member, grown);
                    }
                }
            }
        }
    }

    /// Before a graceful leave: each range this node holds goes to the node
    /// that becomes its replica when this one is gone. This node holds the
    /// ranges of itself and its first R - 1 predecessors; the range of the
    /// i-th predecessor (i = 0: me) gains the (R - i)-th successor.
    /// `predecessors` and `successors` nearest first.
    pub fn hand_off_before_leaving(
        &mut self,
        now: Duration,
        predecessors: &[Peer],
        successors: &[Peer],
    ) {
        self.now = now;
        let r = self.config.replicas;
        let me = self.me;
        let owners: Vec<Peer> = std::iter::once(me)
            .chain(predecessors.iter().copied())
            .collect();
        for i in 0..r {
            let (Some(owner), Some(before)) = (owners.get(i), owners.get(i + 1)) else {
                break;
            };
            let Some(target) = successors.get(r - i - 1) else {
                continue;
            };
            if target.id == me.id || owners.iter().any(|o| o.id == target.id) {
                continue; // A small ring: the target holds the range already.
            }
            self.start_push(*target, KeyRange::new(before.id.id(), owner.id.id()));
        }
    }

    /// True while handoff pushes are under way.
    pub fn handing_off(&self) -> bool {
        !self.pushes.is_empty()
    }

    pub(super) fn start_push(&mut self, to: Peer, range: KeyRange) {
        if self.config.faults.no_repair || self.quarantined {
            return;
        }
        let busy = self
            .pushes
            .values()
            .any(|p| p.to.id == to.id && p.range == range);
        if busy {
            return;
        }
        let push = self.next_push;
        self.next_push += 1;
        self.pushes.insert(
            push,
            Push {
                to,
                range,
                rest: Some(range),
                page_from: None,
                failures: 0,
                retry_at: None,
            },
        );
        self.read_page(push);
    }

    pub(super) fn read_page(&mut self, push: u64) {
        let Some(rest) = self.pushes.get(&push).and_then(|p| p.rest) else {
            self.pushes.remove(&push);
            return;
        };
        let request = StorageRequest::Scan {
            range: rest,
            limit: PUSH_PAGE_RECORDS,
        };
        self.store(Waiter::Push(push), request);
    }

    /// A page was read: send what fits, or end the push if nothing is left.
    pub(super) fn send_page(&mut self, push: u64, mut records: Vec<Record>) {
        let Some(state) = self.pushes.get_mut(&push) else {
            return;
        };
        if records.is_empty() {
            self.pushes.remove(&push);
            return;
        }
        let mut bytes = 0;
        let fits = records
            .iter()
            .position(|r| {
                bytes += r.stored_bytes();
                bytes > PUSH_PAGE_BYTES
            })
            .unwrap_or(records.len())
            .max(1);
        records.truncate(fits);
        let last = records[records.len() - 1].key_id;
        let to = state.to;
        state.page_from = state.rest;
        state.rest = state.rest.and_then(|rest| rest.rest_after(last));
        self.pushed_records += records.len() as u64;
        self.pushed_pages += 1;
        self.send(Waiter::Push(push), to, Request::StoreMany { records });
    }

    /// The target stored a page: read the next, unless the range is done.
    pub(super) fn next_page(&mut self, push: u64) {
        match self.pushes.get_mut(&push) {
            Some(state) if state.rest.is_some() => {
                state.failures = 0;
                self.read_page(push);
            }
            _ => {
                self.pushes.remove(&push);
            }
        }
    }

    /// The target did not take a page: try it again in a moment, a few times.
    pub(super) fn push_failed(&mut self, push: u64) {
        let now = self.now;
        let Some(state) = self.pushes.get_mut(&push) else {
            return;
        };
        state.failures += 1;
        if state.failures >= PUSH_ATTEMPTS {
            self.pushes.remove(&push);
            return;
        }
        state.rest = state.page_from.or(state.rest);
        state.retry_at = Some(now + PUSH_RETRY);
    }
}
