//! The coordinator of client operations: a put, delete, get or locate
//! asks the replica set in parallel, ends once its quorum answered (or
//! cannot any more, or at its deadline), repairs stale replicas after a
//! read, stamps a write anew when replicas keep a newer version, and sends
//! a write once more to a replica that failed it after the quorum.

use super::*;

impl Replication {
    /// Writes `record` (a value or a tombstone, stamped by the caller) to the
    /// key's replicas; `replicas` if the caller knows them, else a lookup.
    pub fn write(
        &mut self,
        now: Duration,
        record: Record,
        replicas: Option<Vec<Peer>>,
    ) -> Result<OpId, KvError> {
        record.check()?;
        if let Some(bytes) = record.value_bytes()
            && bytes.len() > MAX_INLINE_VALUE
        {
            return Err(KvError::Invalid(RecordError::ValueTooLarge(bytes.len())));
        }
        let target = record.key_id.id();
        Ok(self.start(now, Kind::Write(record), target, replicas))
    }

    /// Asks every replica of `key_id` which version it holds.
    pub fn locate(&mut self, now: Duration, key_id: KeyId, replicas: Option<Vec<Peer>>) -> OpId {
        self.start(now, Kind::Locate(key_id), key_id.id(), replicas)
    }

    /// Reads the newest record of `key_id` from a read quorum.
    pub fn read(&mut self, now: Duration, key_id: KeyId, replicas: Option<Vec<Peer>>) -> OpId {
        self.start(now, Kind::Read(key_id), key_id.id(), replicas)
    }

    /// A fresh operation id (client operations and listings share them).
    pub(super) fn new_op_id(&mut self) -> OpId {
        let op = self.next_op;
        self.next_op += 1;
        op
    }

    pub(super) fn start(
        &mut self,
        now: Duration,
        kind: Kind,
        target: Id,
        replicas: Option<Vec<Peer>>,
    ) -> OpId {
        self.now = now;
        let op = self.new_op_id();
        self.ops.insert(
            op,
            Op {
                kind,
                deadline: now + self.config.op_deadline,
                replicas: Vec::new(),
                newest: None,
                internal: false,
                restamps: 0,
                restamping: false,
                past_acknowledged: false,
            },
        );
        match replicas {
            Some(replicas) => self.on_replicas(now, op, Ok(replicas)),
            None => self.actions.push_back(KvAction::Lookup { op, target }),
        }
        op
    }

    /// The replica set of operation `op` is known (owner first), or the ring
    /// could not name it.
    pub fn on_replicas(&mut self, now: Duration, op: OpId, replicas: Result<Vec<Peer>, String>) {
        self.now = now;
        let read_quorum = self.config.read_quorum;
        let replicas = match replicas {
            Ok(replicas) if !replicas.is_empty() => replicas,
            Ok(_) => return self.finish(op, Err(KvError::NoReplicas("no live node".into()))),
            Err(reason) => return self.finish(op, Err(KvError::NoReplicas(reason))),
        };
        let Some(state) = self.ops.get_mut(&op) else {
            return;
        };
        state.replicas = replicas
            .into_iter()
            .take(self.config.replicas)
            .map(|p| (p, None))
            .collect();
        match &state.kind {
            Kind::Write(_) => self.send_write(op),
            Kind::Locate(key_id) => {
                let key_id = *key_id;
                for index in 0..state.replicas.len() {
                    self.ask(op, index, Request::Fetch { key_id });
                }
            }
            Kind::Read(_) => {
                // Ask Q, this node first if it is a replica (a local read).
                let mut order: Vec<usize> = (0..state.replicas.len()).collect();
                let me = self.me.id;
                order.sort_by_key(|i| state.replicas[*i].0.id != me);
                let quorum = read_quorum.min(state.replicas.len());
                for index in order.into_iter().take(quorum) {
                    self.ask_read(op, index);
                }
            }
        }
    }

    /// Sends write `op`'s record to every replica of it.
    pub(super) fn send_write(&mut self, op: OpId) {
        let Some(state) = self.ops.get(&op) else {
            return;
        };
        let Kind::Write(record) = &state.kind else {
            return;
        };
        let record = record.clone();
        for index in 0..state.replicas.len() {
            self.ask(
                op,
                index,
                Request::Store {
                    record: Box::new(record.clone()),
                },
            );
        }
    }

    /// Write `op` has a new stamp, after the version that beat it (`None`:
    /// the clock could not take that version in): it goes to every replica
    /// again. Answers to the old stamp are not waited for any more.
    pub fn restamp(&mut self, now: Duration, op: OpId, version: Option<Version>) {
        self.now = now;
        let Some(state) = self.ops.get_mut(&op) else {
            return;
        };
        let Kind::Write(record) = &mut state.kind else {
            return;
        };
        let Some(version) = version else {
            let attempts = state.restamps;
            return self.finish(op, Err(KvError::Outpaced { attempts }));
        };
        record.version = version;
        state.restamping = false;
        for (_, part) in &mut state.replicas {
            *part = None;
        }
        let old_round = |waiter: &Waiter| matches!(waiter, Waiter::Op { op: o, .. } if *o == op);
        self.rpcs.retain(|_, (waiter, _)| !old_round(waiter));
        self.tickets.retain(|_, waiter| !old_round(waiter));
        self.send_write(op);
    }

    /// W, or all of a replica set smaller than R (a ring of fewer than R
    /// nodes, where every node holds every key).
    pub(super) fn write_quorum(&self, replicas: usize) -> usize {
        self.config.write_quorum.min(replicas)
    }

    /// Q, or all of a replica set smaller than it.
    pub(super) fn read_quorum(&self, replicas: usize) -> usize {
        self.config.read_quorum.min(replicas)
    }

    pub(super) fn ask_read(&mut self, op: OpId, index: usize) {
        let Some(Kind::Read(key_id)) = self.ops.get(&op).map(|o| o.kind.clone()) else {
            return;
        };
        self.ask(op, index, Request::Fetch { key_id });
    }

    /// Sends `request` to replica `index` of `op`, or runs it on the local
    /// store if that replica is this node.
    pub(super) fn ask(&mut self, op: OpId, index: usize, request: Request) {
        let Some(state) = self.ops.get_mut(&op) else {
            return;
        };
        let Some((peer, part)) = state.replicas.get_mut(index) else {
            return;
        };
        *part = Some(Part::Asked);
        let peer = *peer;
        let waiter = Waiter::Op { op, index };
        if peer.id == self.me.id && self.quarantined && matches!(request, Request::Fetch { .. }) {
            // Its own records are not trusted yet: the other replicas answer.
            return self.on_part(op, index, None);
        }
        if peer.id == self.me.id {
            let request = match request {
                Request::Store { record } => StorageRequest::Apply(vec![*record]),
                Request::Fetch { key_id } => StorageRequest::Get(key_id),
                _ => return,
            };
            self.store(waiter, request);
        } else {
            self.send(waiter, peer, request);
        }
    }

    pub(super) fn send(&mut self, waiter: Waiter, to: Peer, request: Request) {
        let rpc = self.next_rpc;
        self.next_rpc += 1;
        // Half the operation's deadline: a request lost on the way (or sent
        // to a replica that crashed unnoticed) fails in time for the
        // operation to ask another replica.
        self.rpcs
            .insert(rpc, (waiter, self.now + self.config.op_deadline / 2));
        self.actions.push_back(KvAction::Send { rpc, to, request });
    }

    pub(super) fn store(&mut self, waiter: Waiter, request: StorageRequest) {
        let ticket = Ticket(self.next_ticket);
        self.next_ticket += 1;
        self.tickets.insert(ticket, waiter);
        self.actions
            .push_back(KvAction::Storage { ticket, request });
    }

    /// Replica `index` of write `op` keeps `kept` rather than the record
    /// sent: a refusal if `kept` is newer, else (the same version) a store.
    pub(super) fn on_kept(&mut self, op: OpId, index: usize, kept: Version) {
        let newer = self
            .ops
            .get(&op)
            .is_some_and(|o| matches!(&o.kind, Kind::Write(r) if kept > r.version));
        if newer {
            self.on_answer(op, index, Part::Refused(kept), None);
        } else {
            self.on_part(op, index, Some(None));
        }
    }

    /// Replica `index` of `op` answered (or failed: `None`).
    pub(super) fn on_part(&mut self, op: OpId, index: usize, answer: Option<Option<Record>>) {
        match answer {
            None => self.on_answer(op, index, Part::Failed, None),
            Some(record) => {
                let part = Part::Answered(record.as_ref().map(|r| r.version));
                self.on_answer(op, index, part, record);
            }
        }
    }

    /// Replica `index` of `op` took `part` in it (with the record it read).
    pub(super) fn on_answer(
        &mut self,
        op: OpId,
        index: usize,
        new_part: Part,
        answer: Option<Record>,
    ) {
        let (write_quorum, read_quorum) = (self.config.write_quorum, self.config.read_quorum);
        let Some(state) = self.ops.get_mut(&op) else {
            return; // Ended already: a late answer.
        };
        if state.restamping {
            return;
        }
        let Some((_, part)) = state.replicas.get_mut(index) else {
            return;
        };
        if *part != Some(Part::Asked) {
            return;
        }
        *part = Some(new_part);
        let failed_now = new_part == Part::Failed;
        if let Some(record) = answer
            && state
                .newest
                .as_ref()
                .is_none_or(|n| record.version > n.version)
        {
            state.newest = Some(record);
        }
        let total = state.replicas.len();
        let answered = state.count(|p| matches!(p, Part::Answered(_)));
        let failed = state.count(|p| p == Part::Failed);
        match state.kind.clone() {
            Kind::Write(record) => {
                // Only replicas that hold this version count: W of them
                // means no write acknowledged before is newer (its W
                // replicas and these share one, which would have refused).
                let needed = write_quorum.min(total);
                let refused: Vec<Version> = state
                    .replicas
                    .iter()
                    .filter_map(|(_, p)| match p {
                        Some(Part::Refused(kept)) => Some(*kept),
                        _ => None,
                    })
                    .collect();
                // Once stamped past every write acknowledged before it,
                // a replica keeping a newer version counts: that version
                // is a concurrent write's, which overwrote this one.
                let counted = if state.past_acknowledged {
                    answered + refused.len()
                } else {
                    answered
                };
                if counted >= needed {
                    self.finish(
                        op,
                        Ok(OpResult::Written {
                            version: record.version,
                        }),
                    );
                } else if total - failed - refused.len() >= needed {
                    // W may still store it: wait.
                } else if let Some(newer) = refused.iter().max().copied() {
                    if state.restamps < MAX_RESTAMPS {
                        state.restamps += 1;
                        state.restamping = true;
                        // The new stamp is past `newer`, the newest of
                        // what W replicas hold, if W answered.
                        state.past_acknowledged |= answered + refused.len() >= needed;
                        self.actions.push_back(KvAction::Restamp { op, newer });
                    } else {
                        let attempts = state.restamps;
                        self.finish(op, Err(KvError::Outpaced { attempts }));
                    }
                } else {
                    self.finish(op, Err(no_quorum("write", answered, needed, total)));
                }
            }
            Kind::Locate(_) => {
                if state.count(|p| p == Part::Asked) == 0 {
                    let replicas = state
                        .replicas
                        .iter()
                        .map(|(peer, part)| {
                            let held = match part {
                                Some(Part::Answered(version)) => Ok(*version),
                                _ => Err(()),
                            };
                            (*peer, held)
                        })
                        .collect();
                    let newest = state.newest.clone();
                    self.finish(op, Ok(OpResult::Located { replicas, newest }));
                }
            }
            Kind::Read(_) => {
                let needed = read_quorum.min(total);
                let unasked = state.replicas.iter().position(|(_, p)| p.is_none());
                let asking = state.count(|p| p == Part::Asked);
                if answered >= needed && state.newest.is_none() && unasked.is_some() {
                    // A quorum that has no record may be replicas the data
                    // has not reached yet (a handoff under way): ask the rest
                    // before saying there is none.
                    if let Some(index) = unasked {
                        self.ask_read(op, index);
                    }
                } else if answered >= needed && (state.newest.is_some() || asking == 0) {
                    self.read_done(op);
                } else if answered >= needed {
                    // Others still answering: wait for them.
                } else if failed_now {
                    // Ask a replica not asked yet, if one is left.
                    let next = state.replicas.iter().position(|(_, p)| p.is_none());
                    match next {
                        Some(index) => self.ask_read(op, index),
                        None if total - failed < needed => {
                            self.finish(op, Err(no_quorum("read", answered, needed, total)));
                        }
                        None => {}
                    }
                }
            }
        }
    }

    /// A read has its quorum: answer, and write the newest back to the
    /// replicas that answered with an older version (read repair).
    pub(super) fn read_done(&mut self, op: OpId) {
        let Some(state) = self.ops.get(&op) else {
            return;
        };
        let newest = state.newest.clone();
        if let Some(newest) = &newest {
            let stale: Vec<Peer> = state
                .replicas
                .iter()
                .filter(|(_, part)| {
                    matches!(part, Some(Part::Answered(v)) if *v != Some(newest.version))
                })
                .map(|(peer, _)| *peer)
                .collect();
            for peer in stale {
                let request = Request::Store {
                    record: Box::new(newest.clone()),
                };
                if peer.id == self.me.id {
                    self.store(Waiter::Repair, StorageRequest::Apply(vec![newest.clone()]));
                } else {
                    self.send(Waiter::Repair, peer, request);
                }
            }
        }
        self.finish(op, Ok(OpResult::Read { record: newest }));
    }

    pub(super) fn finish(&mut self, op: OpId, result: Result<OpResult, KvError>) {
        match self.ops.remove(&op) {
            Some(state) if state.internal => self.on_confirmed(op, result),
            Some(state) => {
                if result.is_ok() {
                    self.trail(op, state);
                }
                self.actions.push_back(KvAction::Done { op, result });
            }
            None => {}
        }
    }

    /// Keeps an eye on the replicas of write `op` still answering after its
    /// quorum: see [`Replication::trailing`]. (The record moves there from
    /// the ended operation; only a second replica still asked costs a copy.)
    pub(super) fn trail(&mut self, op: OpId, state: Op) {
        let Kind::Write(record) = state.kind else {
            return;
        };
        let mut asked: Vec<(usize, Peer)> = state
            .replicas
            .iter()
            .enumerate()
            .filter(|(_, (peer, part))| *part == Some(Part::Asked) && peer.id != self.me.id)
            .map(|(index, (peer, _))| (index, *peer))
            .collect();
        let Some((last, last_peer)) = asked.pop() else {
            return;
        };
        for (index, peer) in asked {
            self.trailing.insert((op, index), (peer, record.clone()));
        }
        self.trailing.insert((op, last), (last_peer, record));
    }

    /// A replica of an ended write answered (`stored`: it holds the write or
    /// a newer version) or failed; a failure is sent the write once more.
    pub(super) fn on_trailing(&mut self, op: OpId, index: usize, stored: bool) -> bool {
        let Some((peer, record)) = self.trailing.remove(&(op, index)) else {
            return false;
        };
        if !stored {
            self.trailing_retries += 1;
            let request = Request::Store {
                record: Box::new(record),
            };
            self.send(Waiter::Repair, peer, request);
        }
        true
    }
}
