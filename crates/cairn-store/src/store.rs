//! The `Store` trait: what the node asks of its storage, whatever keeps it.
//!
//! Two implementations: [`crate::RedbStore`] (records in redb, chunks as
//! files, group commit) and [`crate::MemoryStore`] (for tests). Every
//! operation is synchronous; the node calls them from blocking threads.
//!
//! Contract shared by both:
//! - `apply` is atomic per call and durable when it returns `Ok`: after a
//!   crash, every record it reported [`Applied::Stored`] is there (or a newer
//!   version of that key is). An `Err` acknowledges nothing.
//! - Last writer wins, record by record, in batch order.
//! - A chunk returned by `get_chunk` has been checked against its id.

use crate::digest::{NodeDigest, TreeNode};
use crate::error::StoreError;
use crate::range::KeyRange;
use crate::record::{Applied, Record};
use cairn_core::id::{ChunkId, KeyId};
use cairn_core::version::Version;

/// The largest batch one `apply` call may carry.
pub const MAX_BATCH_RECORDS: usize = 4096;

/// The most key and value bytes one `apply` call may carry: 64 MiB. With
/// the committer's own bounds ([`crate::StoreConfig::validate`]) this keeps
/// every commit-log frame far below the 4 GiB its length field can say
/// ([`crate::log::MAX_FRAME_PAYLOAD`]), and bounds what a replay at open
/// holds in memory at once (one frame).
pub const MAX_BATCH_BYTES: usize = 64 << 20;

/// The largest chunk the store accepts: 4 MiB, the chunker's maximum.
pub const MAX_CHUNK_LEN: usize = 4 << 20;

/// Totals of what a store holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Records holding a value.
    pub values: u64,
    /// Records that are tombstones.
    pub tombstones: u64,
    /// Key and value bytes of all records.
    pub record_bytes: u64,
    /// Chunks in the chunk index.
    pub chunks: u64,
    /// Bytes of those chunks.
    pub chunk_bytes: u64,
}

/// One chunk as the chunk index knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkInfo {
    /// The chunk's id (BLAKE3 of its bytes).
    pub id: ChunkId,
    /// Its length in bytes.
    pub len: u64,
    /// When a manifest last referenced it, in milliseconds since the UNIX
    /// epoch, as the caller said (for garbage collection after a grace period).
    pub last_referenced_ms: u64,
}

/// Called once with the outcome of a write handed over with
/// [`Store::apply_then`] or [`Store::remove_then`], once it is durable (or
/// failed). It may run on the store's own thread: it must be quick and must
/// not block (hand the outcome on, e.g. over a channel).
pub type WriteDone<T> = Box<dyn FnOnce(Result<T, StoreError>) + Send>;

/// A node's storage: records with versions, and content-addressed chunks.
pub trait Store: Send + Sync {
    /// Applies a batch of records, last writer wins: each replaces the stored
    /// record of its key only if its version is newer. Says, per record, which
    /// won. Durable when it returns `Ok`.
    fn apply(&self, records: Vec<Record>) -> Result<Vec<Applied>, StoreError>;

    /// Removes records, each only if the version stored is exactly the one
    /// given (a newer write that arrived meanwhile stays); says per record
    /// whether it was removed. Durable when it returns `Ok`. For records this
    /// node no longer has to hold, and tombstones past their grace.
    fn remove(&self, items: Vec<(KeyId, Version)>) -> Result<Vec<bool>, StoreError>;

    /// [`Store::apply`] without waiting: returns at once (or once the
    /// batch is queued) and calls `done` when it is durable. Concurrent
    /// callers share commits as blocked ones do. The default runs `apply`
    /// on the calling thread.
    fn apply_then(&self, records: Vec<Record>, done: WriteDone<Vec<Applied>>) {
        done(self.apply(records));
    }

    /// [`Store::remove`] without waiting, as [`Store::apply_then`].
    fn remove_then(&self, items: Vec<(KeyId, Version)>, done: WriteDone<Vec<bool>>) {
        done(self.remove(items));
    }

    /// The record of a key id (a value or a tombstone).
    fn get(&self, key_id: KeyId) -> Result<Option<Record>, StoreError>;

    /// Up to `limit` records in `range`, clockwise from its start. To page on,
    /// scan [`KeyRange::rest_after`] the last one returned.
    fn scan(&self, range: KeyRange, limit: usize) -> Result<Vec<Record>, StoreError>;

    /// Counts and bytes.
    fn stats(&self) -> Result<StoreStats, StoreError>;

    /// The digest of what is stored under `node` within `range`.
    fn digest(&self, range: KeyRange, node: TreeNode) -> Result<NodeDigest, StoreError>;

    /// The (key id, version) of each record under `node` within `range`,
    /// clockwise from the range's start.
    fn list_versions(
        &self,
        range: KeyRange,
        node: TreeNode,
    ) -> Result<Vec<(KeyId, Version)>, StoreError>;

    /// True if the chunk index holds the chunk.
    fn has_chunk(&self, id: ChunkId) -> Result<bool, StoreError>;

    /// Stores a chunk (durably, when it returns) and returns its id; marks it
    /// referenced at `now_ms`. Storing a chunk already held only updates that mark.
    fn put_chunk(&self, bytes: &[u8], now_ms: u64) -> Result<ChunkId, StoreError>;

    /// The chunk's bytes, checked against its id. A chunk that fails the
    /// check is deleted and reported as [`StoreError::CorruptChunk`].
    fn get_chunk(&self, id: ChunkId) -> Result<Option<Vec<u8>>, StoreError>;

    /// Deletes a chunk; false if it was not there.
    fn delete_chunk(&self, id: ChunkId) -> Result<bool, StoreError>;

    /// Marks a chunk referenced at `now_ms` (the mark only moves forward);
    /// false if the chunk is not held.
    fn touch_chunk(&self, id: ChunkId, now_ms: u64) -> Result<bool, StoreError>;

    /// Up to `limit` chunks with ids after `after` (from the start if `None`),
    /// in id order.
    fn list_chunks(
        &self,
        after: Option<ChunkId>,
        limit: usize,
    ) -> Result<Vec<ChunkInfo>, StoreError>;
}

/// Checks a batch before it is queued, so that one caller's bad record never
/// fails the other callers sharing its commit.
pub(crate) fn check_batch(records: &[Record]) -> Result<(), StoreError> {
    if records.len() > MAX_BATCH_RECORDS {
        return Err(StoreError::BatchTooLarge {
            records: records.len(),
            limit: MAX_BATCH_RECORDS,
        });
    }
    let mut bytes = 0u64;
    for record in records {
        record.check().map_err(|reason| StoreError::InvalidRecord {
            key_id: record.key_id,
            reason,
        })?;
        bytes += record.stored_bytes();
    }
    if bytes > MAX_BATCH_BYTES as u64 {
        return Err(StoreError::BatchBytesTooLarge {
            bytes,
            limit: MAX_BATCH_BYTES,
        });
    }
    Ok(())
}

/// Checks a chunk's size against [`MAX_CHUNK_LEN`].
pub(crate) fn check_chunk_len(len: usize) -> Result<(), StoreError> {
    if len > MAX_CHUNK_LEN {
        return Err(StoreError::ChunkTooLarge {
            len,
            limit: MAX_CHUNK_LEN,
        });
    }
    Ok(())
}

/// Key ids up to which a `GetMany` counts as quick (see [`is_quick`]).
pub const QUICK_GET_MANY: usize = 64;

/// True if `request` neither waits for a disk nor walks much of the store:
/// a write (handed to [`execute_then`], which does not wait for it), or a
/// point read ([`cairn_core::storage::StorageRequest::Get`], a small
/// `GetMany`), which costs microseconds on a warm store. A caller that must
/// not block (an event loop) runs the others on a blocking thread.
pub fn is_quick(request: &cairn_core::storage::StorageRequest) -> bool {
    use cairn_core::storage::StorageRequest;
    match request {
        StorageRequest::Apply(_) | StorageRequest::Remove(_) | StorageRequest::Get(_) => true,
        StorageRequest::GetMany(ids) => ids.len() <= QUICK_GET_MANY,
        StorageRequest::Scan { .. }
        | StorageRequest::Digest { .. }
        | StorageRequest::DigestNodes { .. }
        | StorageRequest::Versions { .. }
        | StorageRequest::ListKeys { .. } => false,
    }
}

/// Runs one of the core's storage requests without waiting for a write:
/// `Apply` and `Remove` go to the store's [`Store::apply_then`] /
/// [`Store::remove_then`], and `done` gets their outcome once durable
/// (perhaps on the store's own thread); any other request runs at once on
/// the calling thread, as [`execute`] does.
pub fn execute_then(
    store: &dyn Store,
    request: cairn_core::storage::StorageRequest,
    done: Box<dyn FnOnce(cairn_core::storage::StorageOutcome) + Send>,
) {
    use cairn_core::storage::StorageRequest;
    match request {
        StorageRequest::Apply(records) => {
            store.apply_then(records, Box::new(move |result| done(stored(result))));
        }
        StorageRequest::Remove(items) => {
            store.remove_then(items, Box::new(move |result| done(removed(result))));
        }
        other => done(execute(store, other)),
    }
}

/// The core's outcome of an `Apply`: per record, the version the store
/// keeps instead, if it did not win.
fn stored(result: Result<Vec<Applied>, StoreError>) -> cairn_core::storage::StorageOutcome {
    use cairn_core::storage::StorageOutcome;
    match result {
        Ok(applied) => StorageOutcome::Stored(applied.into_iter().map(Applied::kept).collect()),
        Err(error) => StorageOutcome::Failed(error.to_string()),
    }
}

/// The core's outcome of a `Remove`.
fn removed(result: Result<Vec<bool>, StoreError>) -> cairn_core::storage::StorageOutcome {
    use cairn_core::storage::StorageOutcome;
    match result {
        Ok(removed) => StorageOutcome::Removed(removed),
        Err(error) => StorageOutcome::Failed(error.to_string()),
    }
}

/// Runs one of the core's storage requests on `store` (the node on its
/// disk store, off its event loop; the simulator on a memory store).
pub fn execute(
    store: &dyn Store,
    request: cairn_core::storage::StorageRequest,
) -> cairn_core::storage::StorageOutcome {
    use cairn_core::storage::{StorageOutcome, StorageRequest};
    match request {
        StorageRequest::Apply(records) => stored(store.apply(records)),
        StorageRequest::Remove(items) => removed(store.remove(items)),
        StorageRequest::Get(key_id) => match store.get(key_id) {
            Ok(record) => StorageOutcome::Got(record),
            Err(error) => StorageOutcome::Failed(error.to_string()),
        },
        StorageRequest::GetMany(key_ids) => {
            let mut records = Vec::new();
            for key_id in key_ids {
                match store.get(key_id) {
                    Ok(Some(record)) => records.push(record),
                    Ok(None) => {}
                    Err(error) => return StorageOutcome::Failed(error.to_string()),
                }
            }
            StorageOutcome::Records(records)
        }
        StorageRequest::Digest { range } => match store.digest(range, TreeNode::root()) {
            Ok(digest) => StorageOutcome::Digest(digest),
            Err(error) => StorageOutcome::Failed(error.to_string()),
        },
        StorageRequest::DigestNodes { range, nodes } => {
            match nodes
                .into_iter()
                .map(|node| store.digest(range, node))
                .collect()
            {
                Ok(digests) => StorageOutcome::Digests(digests),
                Err(error) => StorageOutcome::Failed(error.to_string()),
            }
        }
        StorageRequest::Versions {
            range,
            nodes,
            limit,
        } => match list_versions(store, range, &nodes, limit) {
            Ok(entries) => StorageOutcome::Versions(entries),
            Err(error) => StorageOutcome::Failed(error.to_string()),
        },
        StorageRequest::ListKeys {
            range,
            prefix,
            limit,
        } => match list_keys(store, range, &prefix, limit) {
            Ok((keys, truncated)) => StorageOutcome::Keys { keys, truncated },
            Err(error) => StorageOutcome::Failed(error.to_string()),
        },
        StorageRequest::Scan { range, limit } => match store.scan(range, limit) {
            Ok(records) => StorageOutcome::Scanned(records),
            Err(error) => StorageOutcome::Failed(error.to_string()),
        },
    }
}

/// The (key id, version) entries under `nodes` within `range`, node by node,
/// the first `limit` of them.
fn list_versions(
    store: &dyn Store,
    range: KeyRange,
    nodes: &[TreeNode],
    limit: usize,
) -> Result<Vec<(KeyId, Version)>, StoreError> {
    let mut entries = Vec::new();
    for node in nodes {
        if entries.len() >= limit {
            break;
        }
        let mut listed = store.list_versions(range, *node)?;
        listed.truncate(limit - entries.len());
        entries.extend(listed);
    }
    Ok(entries)
}

/// Live keys of `range` starting with `prefix`, sorted, up to `limit` and
/// [`cairn_core::kv::MAX_LIST_BYTES`]; true if more matched. Pages through
/// the range (records are in key-id order, not key order).
fn list_keys(
    store: &dyn Store,
    range: KeyRange,
    prefix: &str,
    limit: usize,
) -> Result<(Vec<String>, bool), StoreError> {
    const PAGE: usize = 512;
    let mut keys = Vec::new();
    let mut bytes = 0;
    let mut rest = Some(range);
    while let Some(page_range) = rest {
        let page = store.scan(page_range, PAGE)?;
        let Some(last) = page.last().map(|r| r.key_id) else {
            break;
        };
        rest = if page.len() < PAGE {
            None
        } else {
            page_range.rest_after(last)
        };
        for record in page {
            if record.is_tombstone() || !record.key.starts_with(prefix.as_bytes()) {
                continue;
            }
            let Ok(key) = String::from_utf8(record.key) else {
                continue;
            };
            if keys.len() >= limit || bytes + key.len() > cairn_core::kv::MAX_LIST_BYTES {
                keys.sort_unstable();
                return Ok((keys, true));
            }
            bytes += key.len();
            keys.push(key);
        }
    }
    keys.sort_unstable();
    Ok((keys, false))
}
