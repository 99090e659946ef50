//! An in-memory [`Store`] for tests of the layers above: the same contract
//! as [`crate::RedbStore`] (last writer wins, digests, verified chunks),
//! nothing on disk, everything lost on drop. One mutex; not built for speed.

use crate::digest::{self, BucketSum, DigestSource, NodeDigest, TreeNode, bucket_index};
use crate::error::StoreError;
use crate::range::KeyRange;
use crate::record::{Applied, Record, supersedes};
use crate::store::{ChunkInfo, Store, StoreStats, check_batch, check_chunk_len};
use cairn_core::id::{ChunkId, Id, KeyId};
use cairn_core::version::Version;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::ops::{Bound, RangeInclusive};
use std::sync::{Mutex, MutexGuard};

/// Records and chunks in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    records: BTreeMap<KeyId, Record>,
    buckets: BTreeMap<u16, BucketSum>,
    chunks: BTreeMap<ChunkId, (Vec<u8>, u64)>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves whole maps behind (every
        // change is one insert or remove), so the state is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl DigestSource for State {
    type Error = Infallible;

    fn add_bucket_sums(
        &self,
        buckets: RangeInclusive<u16>,
        total: &mut BucketSum,
    ) -> Result<(), Infallible> {
        for sum in self.buckets.range(buckets).map(|(_, sum)| sum) {
            total.merge(sum);
        }
        Ok(())
    }

    fn visit_entries(
        &self,
        low: Id,
        high: Id,
        visit: &mut dyn FnMut(KeyId, Version),
    ) -> Result<(), Infallible> {
        for (key_id, record) in self.records.range(KeyId(low)..=KeyId(high)) {
            visit(*key_id, record.version);
        }
        Ok(())
    }
}

fn infallible<T>(result: Result<T, Infallible>) -> T {
    match result {
        Ok(value) => value,
        Err(never) => match never {},
    }
}

impl Store for MemoryStore {
    fn apply(&self, records: Vec<Record>) -> Result<Vec<Applied>, StoreError> {
        check_batch(&records)?;
        let mut state = self.state();
        let mut applied = Vec::with_capacity(records.len());
        for record in records {
            let old = state.records.get(&record.key_id).map(|r| r.version);
            if !supersedes(record.version, old) {
                let stored = old.unwrap_or(record.version);
                applied.push(Applied::Stale { stored });
                continue;
            }
            let sum = state
                .buckets
                .entry(bucket_index(record.key_id.0))
                .or_default();
            if let Some(old) = old {
                sum.remove(record.key_id, old);
            }
            sum.add(record.key_id, record.version);
            state.records.insert(record.key_id, record);
            applied.push(Applied::Stored);
        }
        Ok(applied)
    }

    fn remove(&self, items: Vec<(KeyId, Version)>) -> Result<Vec<bool>, StoreError> {
        let mut state = self.state();
        let mut removed = Vec::with_capacity(items.len());
        for (key_id, version) in items {
            let exact = state
                .records
                .get(&key_id)
                .is_some_and(|r| r.version == version);
            if exact {
                state.records.remove(&key_id);
                let bucket = bucket_index(key_id.0);
                if let Some(sum) = state.buckets.get_mut(&bucket) {
                    sum.remove(key_id, version);
                    if sum.count == 0 {
                        state.buckets.remove(&bucket);
                    }
                }
            }
            removed.push(exact);
        }
        Ok(removed)
    }

    fn get(&self, key_id: KeyId) -> Result<Option<Record>, StoreError> {
        Ok(self.state().records.get(&key_id).cloned())
    }

    fn scan(&self, range: KeyRange, limit: usize) -> Result<Vec<Record>, StoreError> {
        let state = self.state();
        Ok(range
            .segments()
            .iter()
            .flat_map(|(low, high)| state.records.range(KeyId(low)..=KeyId(high)))
            .take(limit)
            .map(|(_, record)| record.clone())
            .collect())
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let state = self.state();
        let mut stats = StoreStats::default();
        for record in state.records.values() {
            if record.is_tombstone() {
                stats.tombstones += 1;
            } else {
                stats.values += 1;
            }
            stats.record_bytes += record.stored_bytes();
        }
        stats.chunks = state.chunks.len() as u64;
        stats.chunk_bytes = state.chunks.values().map(|(b, _)| b.len() as u64).sum();
        Ok(stats)
    }

    fn digest(&self, range: KeyRange, node: TreeNode) -> Result<NodeDigest, StoreError> {
        Ok(infallible(digest::digest(&*self.state(), range, node)))
    }

    fn list_versions(
        &self,
        range: KeyRange,
        node: TreeNode,
    ) -> Result<Vec<(KeyId, Version)>, StoreError> {
        Ok(infallible(digest::list_versions(
            &*self.state(),
            range,
            node,
        )))
    }

    fn has_chunk(&self, id: ChunkId) -> Result<bool, StoreError> {
        Ok(self.state().chunks.contains_key(&id))
    }

    fn put_chunk(&self, bytes: &[u8], now_ms: u64) -> Result<ChunkId, StoreError> {
        check_chunk_len(bytes.len())?;
        let id = ChunkId::of_bytes(bytes);
        let mut state = self.state();
        let entry = state
            .chunks
            .entry(id)
            .or_insert_with(|| (bytes.to_vec(), now_ms));
        entry.1 = entry.1.max(now_ms);
        Ok(id)
    }

    fn get_chunk(&self, id: ChunkId) -> Result<Option<Vec<u8>>, StoreError> {
        let mut state = self.state();
        let Some((bytes, _)) = state.chunks.get(&id) else {
            return Ok(None);
        };
        if ChunkId::of_bytes(bytes) != id {
            state.chunks.remove(&id);
            return Err(StoreError::CorruptChunk { id });
        }
        Ok(Some(bytes.clone()))
    }

    fn delete_chunk(&self, id: ChunkId) -> Result<bool, StoreError> {
        Ok(self.state().chunks.remove(&id).is_some())
    }

    fn touch_chunk(&self, id: ChunkId, now_ms: u64) -> Result<bool, StoreError> {
        let mut state = self.state();
        let Some(entry) = state.chunks.get_mut(&id) else {
            return Ok(false);
        };
        entry.1 = entry.1.max(now_ms);
        Ok(true)
    }

    fn list_chunks(
        &self,
        after: Option<ChunkId>,
        limit: usize,
    ) -> Result<Vec<ChunkInfo>, StoreError> {
        let state = self.state();
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(state
            .chunks
            .range((lower, Bound::Unbounded))
            .take(limit)
            .map(|(id, (bytes, last))| ChunkInfo {
                id: *id,
                len: bytes.len() as u64,
                last_referenced_ms: *last,
            })
            .collect())
    }
}
