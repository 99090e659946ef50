//! The key/value workload on the simulated nodes: puts, deletes and gets
//! started from members, their answers handed to the model, the periodic
//! coverage sample, and the check of every live store at the end.

use super::Sim;
use crate::model::{self, Verdict};
use cairn_core::kv::{KvError, OpId, OpResult};
use cairn_core::range::KeyRange;
use cairn_core::record::Record;
use cairn_core::version::Version;
use cairn_core::{KeyId, NodeId};
use cairn_store::{Store, TreeNode};

/// The key/value check at the end of a run (see [`Sim::check_kv`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvCheck {
    /// Keys with an acknowledged write, and of those, keys whose winning
    /// acknowledged write is a delete.
    pub keys: u64,
    pub keys_deleted: u64,
    /// Keys whose acknowledged state is not the newest on any live member.
    pub lost: u64,
    /// Deleted keys whose newest live record is a value no indeterminate put explains.
    pub resurrected: u64,
    /// Keys whose newest live record is on fewer than R live members.
    pub under_replicated: u64,
}

impl Sim {
    pub(super) fn on_kv_done(&mut self, node: NodeId, op: OpId, result: Result<OpResult, KvError>) {
        self.model.on_done(self.now, node, op, result);
    }

    /// A put from member `from`: of a new key, or (a fraction `overwrite` of
    /// the time) of a key already named; every put writes its own value.
    pub fn start_put(&mut self, from: NodeId, overwrite: f64) {
        let key = self.model.pick_put_key(&mut self.rng, overwrite);
        self.start_write(from, key, false);
    }

    /// A delete from member `from` of a key holding an acknowledged value
    /// (none if there is no such key).
    pub fn start_delete(&mut self, from: NodeId) {
        if let Some(key) = self.model.pick_delete_key(&mut self.rng) {
            self.start_write(from, key, true);
        }
    }

    fn start_write(&mut self, from: NodeId, key: usize, delete: bool) {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(&from) else {
            return;
        };
        let time = node.time(now);
        let name = model::key_name(key);
        let started = if delete {
            node.core.delete(time, name.as_bytes())
        } else {
            let value = model::value_of(self.model.next_write());
            node.core.put(time, name.as_bytes(), value)
        };
        match started {
            Ok(op) => self.model.write_started(from, op, key, delete),
            Err(_) => self.model.refused(),
        }
        self.drain(from);
    }

    /// A get from member `from` of a key already named.
    pub fn start_get(&mut self, from: NodeId) {
        let now = self.now;
        let Some(key) = self.model.pick_get_key(&mut self.rng) else {
            return;
        };
        let Some(node) = self.nodes.get_mut(&from) else {
            return;
        };
        let time = node.time(now);
        match node.core.get(time, model::key_name(key).as_bytes()) {
            Ok(op) => self.model.read_started(from, op, key),
            Err(_) => self.model.refused(),
        }
        self.drain(from);
    }

    /// R, or all the members of a smaller ring.
    fn copies_wanted(&self) -> usize {
        self.config.replicas.min(self.members.len())
    }

    /// Counts the acknowledged keys on fewer than R live members now (see
    /// [`crate::coverage`]).
    pub fn sample_coverage(&mut self) {
        let want = self.copies_wanted();
        let stores: Vec<Vec<(KeyId, Version)>> = self
            .members
            .values()
            .filter_map(|p| self.nodes.get(&p.id))
            .map(|n| {
                n.store
                    .list_versions(KeyRange::whole(), TreeNode::root())
                    .unwrap_or_default() // The memory store does not fail.
            })
            .collect();
        self.coverage.sample(
            self.now,
            &self.model,
            want,
            stores.iter().map(Vec::as_slice),
        );
    }

    /// Checks the model against every record of every live member's store
    /// (a full scan of each): for each key with an acknowledged write, the
    /// newest live record must be what the model allows, on R live members.
    pub fn check_kv(&self) -> KvCheck {
        let mut newest: Vec<Option<(Record, usize)>> = vec![None; self.model.key_count()];
        for peer in self.members.values() {
            let Some(node) = self.nodes.get(&peer.id) else {
                continue;
            };
            let records = node
                .store
                .scan(KeyRange::whole(), usize::MAX)
                .unwrap_or_default(); // The memory store does not fail.
            for record in records {
                let Some(slot) = model::key_index(&record.key).and_then(|k| newest.get_mut(k))
                else {
                    continue;
                };
                match slot {
                    Some((held, count)) if held.version == record.version => *count += 1,
                    Some((held, _)) if held.version > record.version => {}
                    _ => *slot = Some((record, 1)),
                }
            }
        }
        let want = self.copies_wanted();
        let mut check = KvCheck::default();
        for (key, held) in newest.iter().enumerate() {
            let Some(verdict) = self.model.judge(key, held.as_ref().map(|(r, _)| r)) else {
                continue;
            };
            check.keys += 1;
            if self.model.best(key).is_some_and(|b| b.delete) {
                check.keys_deleted += 1;
            }
            match verdict {
                Verdict::Holds => {}
                Verdict::Lost => check.lost += 1,
                Verdict::Resurrected => check.resurrected += 1,
            }
            if held.as_ref().map_or(0, |(_, count)| *count) < want {
                check.under_replicated += 1;
            }
        }
        check
    }

    /// For tests of the checks: on up to `count` keys whose winning
    /// acknowledged write is a delete, one live member that holds the
    /// tombstone gets the deleted value back, one logical tick newer than
    /// the tombstone (what a replica that missed the delete and restamped
    /// its value would do). Returns how many were planted.
    pub fn plant_resurrections(&mut self, count: usize) -> usize {
        let mut planted = 0;
        for key in 0..self.model.key_count() {
            if planted == count {
                break;
            }
            let (Some(best), Some(key_id)) = (self.model.best(key), self.model.key_id(key)) else {
                continue;
            };
            if !best.delete {
                continue;
            }
            let holder = self.members.values().find_map(|p| {
                let node = self.nodes.get(&p.id)?;
                let record = node.store.get(key_id).ok().flatten()?;
                (record.version == best.version).then_some(node)
            });
            let Some(node) = holder else {
                continue;
            };
            let mut version = best.version;
            version.timestamp.logical = version.timestamp.logical.saturating_add(1);
            let name = model::key_name(key);
            let value = Record::value(name.as_bytes(), version, model::value_of(best.write));
            if node.store.apply(vec![value]).is_ok() {
                planted += 1;
            }
        }
        planted
    }
}
