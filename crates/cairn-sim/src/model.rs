//! The model of the key/value workload: every put, delete and get the
//! simulator issued, how each ended, and so what the live stores may hold.
//!
//! Writes are judged as the ring promises them: last writer wins, by
//! version. For each key the model keeps the acknowledged write with the
//! highest version (its `best`). At the end, the newest record any live node
//! holds must be that write, or a newer one the model cannot rule out: a
//! write that failed or never answered is indeterminate (it may or may not
//! take effect, at a version the model never learnt). Every put writes its
//! own value (the write's number in the first 8 bytes), so a record says
//! which write it came from; a tombstone newer than `best` is accepted only
//! if the key has an indeterminate delete.
//!
//! Version order and real-time order differ when a coordinator's clock is
//! behind: a write acknowledged after another one may carry an older
//! version and lose to it. The model counts those writes (`behind_earlier`)
//! instead of calling the earlier write's survival a loss.
//!
//! Invariants kept:
//! - a write's outcome is set once: acknowledged (with its version), failed,
//!   or open (no answer yet, or never: its coordinator went);
//! - a key's `best` only moves to a higher version;
//! - a delete is issued only on a key whose last issued write is an
//!   acknowledged put that is also its `best` (a delete of a present value).

use cairn_core::kv::{KvError, OpId, OpResult};
use cairn_core::record::Record;
use cairn_core::rng::Rng;
use cairn_core::version::Version;
use cairn_core::{KeyId, NodeId};
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

/// Bytes of every value written (its write number, then filler).
pub const VALUE_LEN: usize = 64;

/// The number of a write, in the order the workload issued them.
pub type WriteId = u64;

/// Counts of the workload's operations and how they ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct KvOps {
    /// Puts acknowledged by a write quorum.
    pub puts_acked: u64,
    /// Puts that answered an error (indeterminate: they may still take effect).
    pub puts_failed: u64,
    /// Puts never answered: their coordinator crashed or left (indeterminate).
    pub puts_unanswered: u64,
    pub deletes_acked: u64,
    pub deletes_failed: u64,
    pub deletes_unanswered: u64,
    /// Operations a coordinator refused at once (it was not serving): they
    /// never started, so they cannot take effect.
    pub refused: u64,
    /// Gets that answered.
    pub gets_answered: u64,
    /// Of those, answers older than the newest acknowledged write of the key
    /// that finished before the get started (a deleted value counts as older
    /// than its tombstone; "no record" after a delete is not stale).
    pub gets_stale: u64,
    /// Gets that answered an error or never answered.
    pub gets_failed: u64,
    /// Acknowledged writes whose version is older than that of an
    /// acknowledged write of the same key that finished before they started
    /// (their coordinator's clock was behind): they lose to it.
    pub writes_behind_earlier: u64,
    /// Of those, deletes: the value they deleted stays.
    pub deletes_behind_earlier: u64,
}

/// An acknowledged write, as the model keeps the winning one of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acked {
    pub version: Version,
    pub write: WriteId,
    pub delete: bool,
    /// When its acknowledgement arrived (simulated time).
    pub at: Duration,
}

/// How a write ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// No answer (yet).
    Open,
    Acked(Version),
    Failed,
}

#[derive(Clone, Debug)]
struct Write {
    key: usize,
    delete: bool,
    /// The key's best version when the write was issued.
    floor: Option<Version>,
    outcome: Outcome,
}

#[derive(Clone, Debug)]
struct Key {
    key_id: KeyId,
    best: Option<Acked>,
    /// Deletes of this key not acknowledged (open or failed).
    unacked_deletes: u32,
    last_issued: Option<WriteId>,
}

/// An operation under way, by (coordinator, operation id).
#[derive(Clone, Copy, Debug)]
enum Pending {
    Write(WriteId),
    /// A get, with its key's best acknowledged write when it started.
    Read {
        floor: Option<Acked>,
    },
}

/// What the newest live record of a key says about the model's promise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The acknowledged state, or one an indeterminate write may have made.
    Holds,
    /// The acknowledged value (or state) is not the newest on any live node.
    Lost,
    /// The last acknowledged write is a delete, but the newest live record
    /// is a value no indeterminate put explains.
    Resurrected,
}

/// The model: keys, writes, operations under way, and counts.
#[derive(Debug, Default)]
pub struct KvModel {
    keys: Vec<Key>,
    /// Key number by key id, for what the stores hold.
    by_key_id: HashMap<KeyId, usize, std::hash::BuildHasherDefault<crate::sim::IdHasher>>,
    writes: Vec<Write>,
    pending: HashMap<(NodeId, OpId), Pending>,
    /// Keys whose last issued write is an acknowledged put that is their
    /// best (what a delete may target), and where each is in that list.
    deletable: Vec<usize>,
    deletable_at: HashMap<usize, usize>,
    pub ops: KvOps,
}

/// The name of key number `key`.
pub fn key_name(key: usize) -> String {
    format!("key-{key}")
}

/// The number of the key named `name`, if it is one of the workload's.
pub fn key_index(name: &[u8]) -> Option<usize> {
    std::str::from_utf8(name.strip_prefix(b"key-")?)
        .ok()?
        .parse()
        .ok()
}

/// The value put by write `write`: unique to it.
pub fn value_of(write: WriteId) -> Vec<u8> {
    let mut value = vec![0x5a; VALUE_LEN];
    value[..8].copy_from_slice(&write.to_be_bytes());
    value
}

/// The write that put `record`'s value, if it is a value of the workload's.
fn write_of(record: &Record) -> Option<WriteId> {
    let bytes = record.value_bytes()?;
    let head: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(head))
}

impl KvModel {
    /// How many keys the workload has named.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    pub fn key_id(&self, key: usize) -> Option<KeyId> {
        self.keys.get(key).map(|k| k.key_id)
    }

    /// The number of the key whose id is `key_id`, if the workload named it.
    pub fn key_of(&self, key_id: KeyId) -> Option<usize> {
        self.by_key_id.get(&key_id).copied()
    }

    /// The acknowledged write of `key` with the highest version.
    pub fn best(&self, key: usize) -> Option<Acked> {
        self.keys.get(key).and_then(|k| k.best)
    }

    /// The number the next write will have.
    pub fn next_write(&self) -> WriteId {
        self.writes.len() as WriteId
    }

    /// The key of a put: a new one, or (a fraction `overwrite` of the time)
    /// one already named, deleted or not.
    pub fn pick_put_key(&mut self, rng: &mut Rng, overwrite: f64) -> usize {
        if !self.keys.is_empty() && rng.next_f64() < overwrite {
            return (rng.next_u64() % self.keys.len() as u64) as usize;
        }
        let key = self.keys.len();
        let key_id = KeyId::of_key(key_name(key).as_bytes());
        self.by_key_id.insert(key_id, key);
        self.keys.push(Key {
            key_id,
            best: None,
            unacked_deletes: 0,
            last_issued: None,
        });
        key
    }

    /// The key of a delete: one holding an acknowledged value, if any.
    pub fn pick_delete_key(&mut self, rng: &mut Rng) -> Option<usize> {
        if self.deletable.is_empty() {
            return None;
        }
        let at = (rng.next_u64() % self.deletable.len() as u64) as usize;
        Some(self.deletable[at])
    }

    /// The key of a get: any key named so far.
    pub fn pick_get_key(&mut self, rng: &mut Rng) -> Option<usize> {
        if self.keys.is_empty() {
            return None;
        }
        Some((rng.next_u64() % self.keys.len() as u64) as usize)
    }

    fn set_deletable(&mut self, key: usize, yes: bool) {
        match (yes, self.deletable_at.get(&key).copied()) {
            (true, None) => {
                self.deletable_at.insert(key, self.deletable.len());
                self.deletable.push(key);
            }
            (false, Some(at)) => {
                self.deletable_at.remove(&key);
                self.deletable.swap_remove(at);
                if let Some(moved) = self.deletable.get(at) {
                    self.deletable_at.insert(*moved, at);
                }
            }
            _ => {}
        }
    }

    /// Write number [`KvModel::next_write`] of `key` was started as `op` at `from`.
    pub fn write_started(&mut self, from: NodeId, op: OpId, key: usize, delete: bool) {
        let write = self.next_write();
        let Some(state) = self.keys.get_mut(key) else {
            return;
        };
        let floor = state.best.map(|b| b.version);
        state.last_issued = Some(write);
        if delete {
            state.unacked_deletes += 1;
        }
        self.writes.push(Write {
            key,
            delete,
            floor,
            outcome: Outcome::Open,
        });
        self.pending.insert((from, op), Pending::Write(write));
        self.set_deletable(key, false);
    }

    /// A get of `key` was started as `op` at `from`.
    pub fn read_started(&mut self, from: NodeId, op: OpId, key: usize) {
        let floor = self.best(key);
        self.pending.insert((from, op), Pending::Read { floor });
    }

    /// A coordinator refused an operation at once.
    pub fn refused(&mut self) {
        self.ops.refused += 1;
    }

    /// Operation `op` of coordinator `from` ended at `now`.
    pub fn on_done(
        &mut self,
        now: Duration,
        from: NodeId,
        op: OpId,
        result: Result<OpResult, KvError>,
    ) {
        match self.pending.remove(&(from, op)) {
            Some(Pending::Write(write)) => self.write_done(now, write, result),
            Some(Pending::Read { floor }) => match result {
                Ok(OpResult::Read { record }) => {
                    self.ops.gets_answered += 1;
                    if is_stale(floor, record.as_ref()) {
                        self.ops.gets_stale += 1;
                    }
                }
                _ => self.ops.gets_failed += 1,
            },
            None => {}
        }
    }

    fn write_done(&mut self, now: Duration, write: WriteId, result: Result<OpResult, KvError>) {
        let Some(state) = self.writes.get_mut(write as usize) else {
            return;
        };
        let (key, delete, floor) = (state.key, state.delete, state.floor);
        let version = match result {
            Ok(OpResult::Written { version }) => version,
            _ => {
                state.outcome = Outcome::Failed;
                if delete {
                    self.ops.deletes_failed += 1;
                } else {
                    self.ops.puts_failed += 1;
                }
                return;
            }
        };
        state.outcome = Outcome::Acked(version);
        if delete {
            self.ops.deletes_acked += 1;
        } else {
            self.ops.puts_acked += 1;
        }
        if floor.is_some_and(|f| version < f) {
            self.ops.writes_behind_earlier += 1;
            if delete {
                self.ops.deletes_behind_earlier += 1;
            }
        }
        let Some(key_state) = self.keys.get_mut(key) else {
            return;
        };
        if delete {
            key_state.unacked_deletes = key_state.unacked_deletes.saturating_sub(1);
        }
        if key_state.best.is_none_or(|b| version > b.version) {
            key_state.best = Some(Acked {
                version,
                write,
                delete,
                at: now,
            });
        }
        let present = !delete
            && key_state.last_issued == Some(write)
            && key_state.best.is_some_and(|b| b.write == write);
        self.set_deletable(key, present);
    }

    /// The run is over: operations still under way never answered.
    pub fn finish(&mut self) {
        for (_, pending) in self.pending.drain() {
            match pending {
                Pending::Write(write) => {
                    let delete = self.writes.get(write as usize).is_some_and(|w| w.delete);
                    if delete {
                        self.ops.deletes_unanswered += 1;
                    } else {
                        self.ops.puts_unanswered += 1;
                    }
                }
                Pending::Read { .. } => self.ops.gets_failed += 1,
            }
        }
    }

    /// Judges `newest`, the newest record of `key` on any live node, against
    /// the key's acknowledged state (`None` for a key never acknowledged).
    pub fn judge(&self, key: usize, newest: Option<&Record>) -> Option<Verdict> {
        let state = self.keys.get(key)?;
        let best = state.best?;
        let verdict = match newest {
            Some(record) if record.version == best.version => {
                let same = if best.delete {
                    record.is_tombstone()
                } else {
                    write_of(record) == Some(best.write)
                };
                if same { Verdict::Holds } else { Verdict::Lost }
            }
            Some(record) if record.version > best.version => {
                if self.indeterminate_explains(key, record) {
                    Verdict::Holds
                } else if best.delete && !record.is_tombstone() {
                    Verdict::Resurrected
                } else {
                    Verdict::Lost
                }
            }
            // Older than the acknowledged state, or nothing.
            older => match (best.delete, older) {
                (true, Some(record)) if !record.is_tombstone() => Verdict::Resurrected,
                (true, _) => Verdict::Holds,
                (false, _) => Verdict::Lost,
            },
        };
        Some(verdict)
    }

    /// True if a write of `key` that was not acknowledged may have made `record`.
    fn indeterminate_explains(&self, key: usize, record: &Record) -> bool {
        if record.is_tombstone() {
            return self.keys.get(key).is_some_and(|k| k.unacked_deletes > 0);
        }
        write_of(record)
            .and_then(|w| self.writes.get(w as usize))
            .is_some_and(|w| w.key == key && !w.delete && !matches!(w.outcome, Outcome::Acked(_)))
    }
}

/// A get's answer is stale if it is older than the key's newest acknowledged
/// write when the get started; after a delete, "no record" (or an older
/// tombstone) is the right answer, an older value is not.
fn is_stale(floor: Option<Acked>, answer: Option<&Record>) -> bool {
    let Some(floor) = floor else {
        return false;
    };
    match answer {
        Some(record) if record.version >= floor.version => false,
        Some(record) => !floor.delete || !record.is_tombstone(),
        None => !floor.delete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::Id;
    use cairn_core::version::HlcTimestamp;

    fn node() -> NodeId {
        NodeId(Id([1; 32]))
    }

    fn version(ms: u64) -> Version {
        Version::new(
            HlcTimestamp {
                physical_ms: ms,
                logical: 0,
            },
            node(),
        )
    }

    fn written(ms: u64) -> Result<OpResult, KvError> {
        Ok(OpResult::Written {
            version: version(ms),
        })
    }

    fn failed() -> Result<OpResult, KvError> {
        Err(KvError::NotServing)
    }

    /// A model with key 0 put (write 0, acknowledged at version 10).
    fn one_put() -> KvModel {
        let mut model = KvModel::default();
        let mut rng = Rng::new(1);
        let key = model.pick_put_key(&mut rng, 0.0);
        model.write_started(node(), 1, key, false);
        model.on_done(Duration::ZERO, node(), 1, written(10));
        model
    }

    fn value(write: WriteId, ms: u64) -> Record {
        Record::value(key_name(0).as_bytes(), version(ms), value_of(write))
    }

    fn tombstone(ms: u64) -> Record {
        Record::tombstone(key_name(0).as_bytes(), version(ms))
    }

    #[test]
    fn the_acknowledged_value_holds_and_its_absence_is_a_loss() {
        let model = one_put();
        assert_eq!(model.judge(0, Some(&value(0, 10))), Some(Verdict::Holds));
        assert_eq!(model.judge(0, None), Some(Verdict::Lost));
        assert_eq!(model.judge(0, Some(&value(0, 5))), Some(Verdict::Lost));
        assert_eq!(model.judge(1, None), None, "a key never written");
    }

    #[test]
    fn a_failed_put_may_win_or_not() {
        let mut model = one_put();
        model.write_started(node(), 2, 0, false);
        model.on_done(Duration::ZERO, node(), 2, failed());
        assert_eq!(model.judge(0, Some(&value(1, 20))), Some(Verdict::Holds));
        assert_eq!(model.judge(0, Some(&value(0, 10))), Some(Verdict::Holds));
        // A newer value that no write of the model made is not explained.
        assert_eq!(model.judge(0, Some(&value(7, 20))), Some(Verdict::Lost));
    }

    #[test]
    fn a_value_over_an_acknowledged_delete_is_a_resurrection() {
        let mut model = one_put();
        let mut rng = Rng::new(1);
        assert_eq!(model.pick_delete_key(&mut rng), Some(0));
        model.write_started(node(), 2, 0, true);
        assert_eq!(model.pick_delete_key(&mut rng), None, "a delete under way");
        model.on_done(Duration::ZERO, node(), 2, written(20));
        assert_eq!(model.judge(0, Some(&tombstone(20))), Some(Verdict::Holds));
        assert_eq!(model.judge(0, None), Some(Verdict::Holds));
        assert_eq!(
            model.judge(0, Some(&value(0, 10))),
            Some(Verdict::Resurrected)
        );
        assert_eq!(
            model.judge(0, Some(&value(0, 30))),
            Some(Verdict::Resurrected)
        );
        assert_eq!(model.pick_delete_key(&mut rng), None, "deleted");
    }

    #[test]
    fn a_late_write_with_an_older_version_is_counted_not_judged_lost() {
        let mut model = one_put();
        model.write_started(node(), 2, 0, true);
        model.on_done(Duration::ZERO, node(), 2, written(5));
        assert_eq!(model.ops.writes_behind_earlier, 1);
        assert_eq!(model.ops.deletes_behind_earlier, 1);
        assert_eq!(model.judge(0, Some(&value(0, 10))), Some(Verdict::Holds));
    }

    #[test]
    fn stale_reads_are_older_than_what_was_acknowledged_before() {
        let mut model = one_put();
        model.read_started(node(), 2, 0);
        let old = Record::value(key_name(0).as_bytes(), version(5), value_of(9));
        model.on_done(
            Duration::ZERO,
            node(),
            2,
            Ok(OpResult::Read { record: Some(old) }),
        );
        model.read_started(node(), 3, 0);
        model.on_done(
            Duration::ZERO,
            node(),
            3,
            Ok(OpResult::Read {
                record: Some(value(0, 10)),
            }),
        );
        model.read_started(node(), 4, 0);
        model.on_done(Duration::ZERO, node(), 4, failed());
        assert_eq!(
            (
                model.ops.gets_answered,
                model.ops.gets_stale,
                model.ops.gets_failed
            ),
            (2, 1, 1)
        );
    }

    #[test]
    fn nothing_is_the_right_answer_after_a_delete() {
        let floor = Acked {
            version: version(20),
            write: 1,
            delete: true,
            at: Duration::ZERO,
        };
        assert!(!is_stale(Some(floor), None));
        assert!(!is_stale(Some(floor), Some(&tombstone(15))));
        assert!(is_stale(Some(floor), Some(&value(0, 10))));
        assert!(!is_stale(None, None));
    }

    #[test]
    fn key_names_and_values_round_trip() {
        assert_eq!(key_index(key_name(1234).as_bytes()), Some(1234));
        assert_eq!(key_index(b"other"), None);
        assert_eq!(write_of(&value(42, 1)), Some(42));
    }
}
