//! The durable store: records and the chunk index in `meta.redb`, chunk
//! bodies as files under `chunks/`, all writes through the group committer
//! ([`crate::commit`]).
//!
//! Invariants:
//! - An acknowledged write (an `Ok` from `apply`, `put_chunk`,
//!   `delete_chunk`, `touch_chunk`) survives a crash of the process or the
//!   machine: it was fsynced (in the commit log, see [`crate::log`]) before
//!   the answer.
//! - A chunk is in the index only once its file is durable under its final
//!   name. Deleting takes it out of the index first, then removes the file.
//!   So after a crash a file may be left without an index entry (an
//!   unacknowledged put, or an interrupted delete), never the other way
//!   round; [`RedbStore::open`] removes such files and temporary files, and
//!   drops index entries whose file has gone (only damage from outside
//!   causes those).
//! - File work on a chunk and the index update that goes with it happen under
//!   that chunk's lock (one of [`CHUNK_LOCKS`] stripes, picked by the id's
//!   first byte): a put holds it across the file write and its `AddChunk`
//!   commit, a delete across its `RemoveChunk` commit and the unlink, a read
//!   that found a corrupt file across the recheck, the `RemoveChunk` and the
//!   unlink. Without it a delete's unlink could land between a concurrent
//!   put's rename and its commit, leaving an indexed chunk without a file.
//! - `get_chunk` answers from the index first: a file whose `AddChunk` is
//!   pending or failed (an orphan, removed at the next open) is never
//!   returned. Since a chunk's bytes are fixed by its id, returning the file
//!   read after the index said "held" is the answer as of that moment.
//! - Reads run on redb read transactions beside the committer; they see
//!   every acknowledged write and never half of a commit.

use crate::chunks::{ChunkFiles, ChunkRead, PathError, sync_dir};
use crate::commit::{CommitConfig, CommitCounters, Committer, Op, Outcome, apply_ops};
use crate::digest::{self, BucketSum, DigestSource, NodeDigest, TreeNode};
use crate::error::StoreError;
use crate::fault::{FaultPlan, FaultyBackend};
use crate::log::{CommitLog, LogError};
use crate::range::KeyRange;
use crate::record::{Applied, Record, decode_record};
use crate::store::{
    ChunkInfo, MAX_BATCH_RECORDS, Store, StoreStats, WriteDone, check_batch, check_chunk_len,
};
use crate::tables::{
    self, BUCKETS, CHUNKS, ChunkEntry, FORMAT, FORMAT_KEY, META, RECORDS, VERSIONS, VersionEntry,
};
use cairn_core::id::{ChunkId, Id, KeyId};
use cairn_core::version::Version;
use redb::backends::FileBackend;
use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable};
use std::fs::{self, OpenOptions};
use std::ops::{Bound, RangeInclusive};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The record database's name in the data dir.
pub const META_FILE: &str = "meta.redb";

/// Stripes of the per-chunk locks (see the module docs).
pub const CHUNK_LOCKS: usize = 256;

/// Settings of a [`RedbStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// How writers' batches are merged into commits.
    pub commit: CommitConfig,
    /// redb's page cache, in bytes. Default 64 MiB.
    pub cache_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            commit: CommitConfig::default(),
            cache_bytes: 64 << 20,
        }
    }
}

/// The most `commit.max_batch_records` may be: 65536.
pub const MAX_COMMIT_BATCH_RECORDS: usize = 1 << 16;
/// The most `commit.max_batch_bytes` may be: 256 MiB. With
/// [`MAX_COMMIT_BATCH_RECORDS`] and the per-call limits
/// ([`crate::store::MAX_BATCH_RECORDS`], [`crate::store::MAX_BATCH_BYTES`]) a
/// batch's log frame stays under 340 MiB, below
/// [`crate::log::MAX_FRAME_PAYLOAD`].
pub const MAX_COMMIT_BATCH_BYTES: usize = 256 << 20;

/// Why a [`StoreConfig`] is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("commit.max_batch_records must be at least 1")]
    EmptyBatch,
    #[error("commit.max_batch_records of {0} is over the limit of {MAX_COMMIT_BATCH_RECORDS}")]
    TooManyBatchRecords(usize),
    #[error("commit.max_batch_bytes of {0} is over the limit of {MAX_COMMIT_BATCH_BYTES}")]
    TooManyBatchBytes(usize),
    #[error("commit.max_wait of {0:?} is over the limit of 100 ms: writers would wait too long")]
    WaitTooLong(std::time::Duration),
}

impl StoreConfig {
    /// Checks the settings against each other and their limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.commit.max_batch_records == 0 {
            return Err(ConfigError::EmptyBatch);
        }
        if self.commit.max_batch_records > MAX_COMMIT_BATCH_RECORDS {
            return Err(ConfigError::TooManyBatchRecords(
                self.commit.max_batch_records,
            ));
        }
        if self.commit.max_batch_bytes > MAX_COMMIT_BATCH_BYTES {
            return Err(ConfigError::TooManyBatchBytes(self.commit.max_batch_bytes));
        }
        if self.commit.max_wait > std::time::Duration::from_millis(100) {
            return Err(ConfigError::WaitTooLong(self.commit.max_wait));
        }
        Ok(())
    }
}

/// Records in redb and chunks as files, in one data dir.
#[derive(Debug)]
pub struct RedbStore {
    // Field order is drop order: the committer must finish (and release its
    // handle on the database) before the database closes.
    committer: Committer,
    db: Arc<Database>,
    chunks: ChunkFiles,
    chunk_locks: Box<[Mutex<()>]>,
    data_dir: PathBuf,
}

impl RedbStore {
    /// Queues `op` for the group commit; `done` gets what `pick` finds in
    /// its outcome (nothing there is a bug: the committer answered another
    /// kind of operation).
    fn write_then<T: 'static>(&self, op: Op, pick: fn(Outcome) -> Option<T>, done: WriteDone<T>) {
        self.committer.submit_then(
            op,
            Box::new(move |outcome| {
                done(outcome.and_then(|outcome| pick(outcome).ok_or_else(unexpected_outcome)))
            }),
        );
    }

    /// Opens the store in `data_dir`, creating it if needed.
    pub fn open(data_dir: &Path, config: StoreConfig) -> Result<RedbStore, StoreError> {
        RedbStore::open_inner(data_dir, config, None)
    }

    /// Opens the store with faults injected into its writes and fsyncs as
    /// `plan` says (see [`crate::fault`]); for crash tests.
    pub fn open_with_faults(
        data_dir: &Path,
        config: StoreConfig,
        plan: Arc<FaultPlan>,
    ) -> Result<RedbStore, StoreError> {
        RedbStore::open_inner(data_dir, config, Some(plan))
    }

    /// The data dir this store lives in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn open_inner(
        data_dir: &Path,
        config: StoreConfig,
        faults: Option<Arc<FaultPlan>>,
    ) -> Result<RedbStore, StoreError> {
        config.validate()?;
        let dir_error = |source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        };
        create_dir_durably(data_dir).map_err(dir_error)?;
        let path = data_dir.join(META_FILE);
        let open_error = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let mut builder = Database::builder();
        builder.set_cache_size(config.cache_bytes);
        let db = match &faults {
            None => builder.create(&path).map_err(open_error)?,
            Some(plan) => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)
                    .map_err(dir_error)?;
                let backend = FileBackend::new(file).map_err(open_error)?;
                builder
                    .create_with_backend(FaultyBackend::new(backend, plan.clone()))
                    .map_err(open_error)?
            }
        };
        // meta.redb may be new: make its directory entry durable.
        sync_dir(data_dir).map_err(dir_error)?;
        prepare_tables(&db)?;
        // Batches acknowledged after redb's last durable commit: replayed
        // frame by frame (one frame in memory at a time) into one
        // transaction, made durable, and only then is the log emptied.
        let txn = db.begin_write()?;
        let mut replayed = false;
        let mut log = CommitLog::open(data_dir, faults.clone(), |ops| {
            replayed = true;
            apply_ops(&txn, ops).map(drop)
        })?;
        if replayed {
            txn.commit()?;
            log.clear().map_err(|source| LogError::Io {
                path: log.path().to_path_buf(),
                source,
            })?;
        } else {
            txn.abort()?;
        }
        sync_dir(data_dir).map_err(dir_error)?;
        let chunks = ChunkFiles::open(data_dir, faults).map_err(chunk_io)?;
        reconcile_chunks(&db, &chunks)?;
        let db = Arc::new(db);
        let committer = Committer::start(db.clone(), log, config.commit)?;
        Ok(RedbStore {
            committer,
            db,
            chunks,
            chunk_locks: (0..CHUNK_LOCKS).map(|_| Mutex::new(())).collect(),
            data_dir: data_dir.to_path_buf(),
        })
    }

    /// How many commits the writes so far took (one fsync each).
    pub fn commit_counters(&self) -> CommitCounters {
        self.committer.counters()
    }

    fn chunk_entry(&self, id: ChunkId) -> Result<Option<ChunkEntry>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CHUNKS)?;
        Ok(table
            .get(&id.0.0)?
            .map(|guard| ChunkEntry::from_bytes(guard.value())))
    }

    /// The lock over one chunk's file and index entry.
    fn lock_chunk(&self, id: ChunkId) -> MutexGuard<'_, ()> {
        let stripe = usize::from(id.0.0[0]) % CHUNK_LOCKS;
        // The guarded data is (); a panic under the lock leaves nothing
        // half-done in memory.
        self.chunk_locks[stripe]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn chunk_op(&self, op: Op) -> Result<bool, StoreError> {
        wait_for(|done| {
            self.write_then(
                op,
                |outcome| match outcome {
                    Outcome::Chunk(held) => Some(held),
                    Outcome::Applied(_) | Outcome::Removed(_) => None,
                },
                done,
            )
        })
    }
}

/// Starts a write with `start` and waits for the outcome it reports.
fn wait_for<T: Send + 'static>(start: impl FnOnce(WriteDone<T>)) -> Result<T, StoreError> {
    let (reply, answer) = std::sync::mpsc::sync_channel(1);
    start(Box::new(move |outcome| {
        let _ = reply.send(outcome);
    }));
    answer.recv().map_err(|_| StoreError::Closed)?
}

fn check_removal(items: &[(KeyId, Version)]) -> Result<(), StoreError> {
    if items.len() > MAX_BATCH_RECORDS {
        return Err(StoreError::BatchTooLarge {
            records: items.len(),
            limit: MAX_BATCH_RECORDS,
        });
    }
    Ok(())
}

fn unexpected_outcome() -> StoreError {
    StoreError::CommitFailed {
        reason: "the committer answered a different kind of operation (a bug)".into(),
    }
}

fn chunk_io((path, source): PathError) -> StoreError {
    StoreError::ChunkIo { path, source }
}

/// Creates `dir` and any missing ancestors, and fsyncs the parent of each
/// directory it created, so that the new entries survive a crash (the files
/// inside are fsynced on their own, but not their directory's own name).
fn create_dir_durably(dir: &Path) -> std::io::Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|path| !path.exists()).collect();
    fs::create_dir_all(dir)?;
    // Deepest first is fine: every directory is already created.
    for created in missing {
        if let Some(parent) = created.parent() {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Creates the tables on first open and checks the format.
fn prepare_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        txn.open_table(RECORDS)?;
        txn.open_table(VERSIONS)?;
        txn.open_table(BUCKETS)?;
        txn.open_table(CHUNKS)?;
        let mut meta = txn.open_table(META)?;
        let found = meta.get(FORMAT_KEY)?.map(|guard| guard.value());
        match found {
            None => {
                meta.insert(FORMAT_KEY, FORMAT)?;
            }
            Some(FORMAT) => {}
            Some(found) => {
                return Err(StoreError::Format {
                    found,
                    expected: FORMAT,
                });
            }
        }
    }
    txn.commit()?;
    Ok(())
}

/// Brings the chunk files and the chunk index into agreement after a crash:
/// files without an entry were never acknowledged (or were being deleted)
/// and go; entries without a file lost it to outside damage and go too.
fn reconcile_chunks(db: &Database, chunks: &ChunkFiles) -> Result<(), StoreError> {
    let files = chunks.list_files().map_err(chunk_io)?;
    let indexed: Vec<ChunkId> = {
        let txn = db.begin_read()?;
        let table = txn.open_table(CHUNKS)?;
        let mut ids = Vec::new();
        for item in table.iter()? {
            let (key, _) = item?;
            ids.push(ChunkId(Id(*key.value())));
        }
        ids
    };
    let (mut file_at, mut index_at) = (0, 0);
    let mut missing_files = Vec::new();
    while file_at < files.len() || index_at < indexed.len() {
        match (files.get(file_at), indexed.get(index_at)) {
            (Some(file), Some(entry)) if file == entry => {
                file_at += 1;
                index_at += 1;
            }
            (Some(file), Some(entry)) if file < entry => {
                chunks.remove(*file).map_err(chunk_io)?;
                file_at += 1;
            }
            (Some(file), None) => {
                chunks.remove(*file).map_err(chunk_io)?;
                file_at += 1;
            }
            (_, Some(entry)) => {
                missing_files.push(*entry);
                index_at += 1;
            }
            (None, None) => break,
        }
    }
    if missing_files.is_empty() {
        return Ok(());
    }
    let txn = db.begin_write()?;
    {
        let mut table = txn.open_table(CHUNKS)?;
        let mut meta = txn.open_table(META)?;
        let mut totals = tables::read_totals(&meta)?;
        for id in missing_files {
            if let Some(guard) = table.remove(&id.0.0)? {
                let entry = ChunkEntry::from_bytes(guard.value());
                totals.chunks = totals.chunks.saturating_sub(1);
                totals.chunk_bytes = totals.chunk_bytes.saturating_sub(entry.len);
            }
        }
        tables::write_totals(&mut meta, &totals)?;
    }
    txn.commit()?;
    Ok(())
}

/// Digests over one read transaction.
struct RedbDigest {
    buckets: ReadOnlyTable<u16, &'static [u8; BucketSum::ENCODED_LEN]>,
    versions: ReadOnlyTable<&'static [u8; 32], &'static [u8; VersionEntry::LEN]>,
}

impl RedbDigest {
    fn open(db: &Database) -> Result<RedbDigest, StoreError> {
        let txn = db.begin_read()?;
        Ok(RedbDigest {
            buckets: txn.open_table(BUCKETS)?,
            versions: txn.open_table(VERSIONS)?,
        })
    }
}

impl DigestSource for RedbDigest {
    type Error = StoreError;

    fn add_bucket_sums(
        &self,
        buckets: RangeInclusive<u16>,
        total: &mut BucketSum,
    ) -> Result<(), StoreError> {
        for item in self.buckets.range(buckets)? {
            let (_, sum) = item?;
            total.merge(&BucketSum::from_bytes(sum.value()));
        }
        Ok(())
    }

    fn visit_entries(
        &self,
        low: Id,
        high: Id,
        visit: &mut dyn FnMut(KeyId, Version),
    ) -> Result<(), StoreError> {
        for item in self.versions.range::<&[u8; 32]>(&low.0..=&high.0)? {
            let (key, entry) = item?;
            let entry = VersionEntry::from_bytes(entry.value());
            visit(KeyId(Id(*key.value())), entry.version);
        }
        Ok(())
    }
}

impl Store for RedbStore {
    fn apply(&self, records: Vec<Record>) -> Result<Vec<Applied>, StoreError> {
        wait_for(|done| self.apply_then(records, done))
    }

    fn remove(&self, items: Vec<(KeyId, Version)>) -> Result<Vec<bool>, StoreError> {
        wait_for(|done| self.remove_then(items, done))
    }

    fn apply_then(&self, records: Vec<Record>, done: WriteDone<Vec<Applied>>) {
        if let Err(error) = check_batch(&records) {
            return done(Err(error));
        }
        if records.is_empty() {
            return done(Ok(Vec::new()));
        }
        self.write_then(
            Op::Apply(records),
            |outcome| match outcome {
                Outcome::Applied(applied) => Some(applied),
                Outcome::Chunk(_) | Outcome::Removed(_) => None,
            },
            done,
        );
    }

    fn remove_then(&self, items: Vec<(KeyId, Version)>, done: WriteDone<Vec<bool>>) {
        if let Err(error) = check_removal(&items) {
            return done(Err(error));
        }
        if items.is_empty() {
            return done(Ok(Vec::new()));
        }
        self.write_then(
            Op::Remove(items),
            |outcome| match outcome {
                Outcome::Removed(removed) => Some(removed),
                Outcome::Chunk(_) | Outcome::Applied(_) => None,
            },
            done,
        );
    }

    fn get(&self, key_id: KeyId) -> Result<Option<Record>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RECORDS)?;
        let Some(guard) = table.get(&key_id.0.0)? else {
            return Ok(None);
        };
        decode_record(key_id, guard.value())
            .map(Some)
            .map_err(|reason| StoreError::CorruptRecord { key_id, reason })
    }

    fn scan(&self, range: KeyRange, limit: usize) -> Result<Vec<Record>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RECORDS)?;
        let mut out = Vec::new();
        for (low, high) in range.segments().iter() {
            if out.len() >= limit {
                break;
            }
            let bounds = (Bound::Included(&low.0), Bound::Included(&high.0));
            for item in table.range::<&[u8; 32]>(bounds)? {
                let (key, value) = item?;
                let key_id = KeyId(Id(*key.value()));
                let record = decode_record(key_id, value.value())
                    .map_err(|reason| StoreError::CorruptRecord { key_id, reason })?;
                out.push(record);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let totals = tables::read_totals(&meta)?;
        Ok(StoreStats {
            values: totals.values,
            tombstones: totals.tombstones,
            record_bytes: totals.record_bytes,
            chunks: totals.chunks,
            chunk_bytes: totals.chunk_bytes,
        })
    }

    fn digest(&self, range: KeyRange, node: TreeNode) -> Result<NodeDigest, StoreError> {
        digest::digest(&RedbDigest::open(&self.db)?, range, node)
    }

    fn list_versions(
        &self,
        range: KeyRange,
        node: TreeNode,
    ) -> Result<Vec<(KeyId, Version)>, StoreError> {
        digest::list_versions(&RedbDigest::open(&self.db)?, range, node)
    }

    fn has_chunk(&self, id: ChunkId) -> Result<bool, StoreError> {
        Ok(self.chunk_entry(id)?.is_some())
    }

    fn put_chunk(&self, bytes: &[u8], now_ms: u64) -> Result<ChunkId, StoreError> {
        check_chunk_len(bytes.len())?;
        let id = ChunkId::of_bytes(bytes);
        let len = bytes.len() as u64;
        let _lock = self.lock_chunk(id);
        // Held only if indexed and the file checks out: a same-length
        // damaged file is rewritten, not kept.
        let held = self.chunk_entry(id)?.is_some_and(|entry| entry.len == len)
            && self.chunks.holds(id, len).map_err(chunk_io)?;
        if held {
            self.chunk_op(Op::TouchChunk { id, now_ms })?;
            return Ok(id);
        }
        self.chunks.write(id, bytes).map_err(chunk_io)?;
        self.chunk_op(Op::AddChunk { id, len, now_ms })?;
        Ok(id)
    }

    fn get_chunk(&self, id: ChunkId) -> Result<Option<Vec<u8>>, StoreError> {
        if self.chunk_entry(id)?.is_none() {
            return Ok(None);
        }
        match self.chunks.read(id).map_err(chunk_io)? {
            None => return Ok(None),
            Some(ChunkRead::Verified(bytes)) => return Ok(Some(bytes)),
            Some(ChunkRead::Corrupt) => {}
        }
        // Look again under the lock: a put may have repaired the file since.
        let _lock = self.lock_chunk(id);
        if self.chunk_entry(id)?.is_none() {
            return Ok(None);
        }
        match self.chunks.read(id).map_err(chunk_io)? {
            None => Ok(None),
            Some(ChunkRead::Verified(bytes)) => Ok(Some(bytes)),
            Some(ChunkRead::Corrupt) => {
                // Index first, then the file: a crash in between leaves an
                // unindexed file, which the next open removes.
                self.chunk_op(Op::RemoveChunk { id })?;
                self.chunks.remove(id).map_err(chunk_io)?;
                Err(StoreError::CorruptChunk { id })
            }
        }
    }

    fn delete_chunk(&self, id: ChunkId) -> Result<bool, StoreError> {
        let _lock = self.lock_chunk(id);
        let indexed = self.chunk_op(Op::RemoveChunk { id })?;
        let removed = self.chunks.remove(id).map_err(chunk_io)?;
        Ok(indexed || removed)
    }

    fn touch_chunk(&self, id: ChunkId, now_ms: u64) -> Result<bool, StoreError> {
        self.chunk_op(Op::TouchChunk { id, now_ms })
    }

    fn list_chunks(
        &self,
        after: Option<ChunkId>,
        limit: usize,
    ) -> Result<Vec<ChunkInfo>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CHUNKS)?;
        let start = after.map(|id| id.0.0);
        let lower = match &start {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for item in table.range::<&[u8; 32]>((lower, Bound::Unbounded))? {
            if out.len() >= limit {
                break;
            }
            let (key, value) = item?;
            let entry = ChunkEntry::from_bytes(value.value());
            out.push(ChunkInfo {
                id: ChunkId(Id(*key.value())),
                len: entry.len,
                last_referenced_ms: entry.last_referenced_ms,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::MAX_FRAME_PAYLOAD;
    use crate::store::{MAX_BATCH_BYTES, MAX_BATCH_RECORDS};

    #[test]
    fn a_nested_data_dir_is_created() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("a").join("b").join("data");
        let store = RedbStore::open(&dir, StoreConfig::default()).expect("open");
        assert!(dir.join(META_FILE).exists());
        drop(store);
        create_dir_durably(&dir).expect("an existing dir is fine");
    }

    #[test]
    fn batch_bounds_beyond_the_frame_limit_are_refused() {
        let mut config = StoreConfig::default();
        config.validate().expect("the defaults");
        config.commit.max_batch_bytes = MAX_COMMIT_BATCH_BYTES + 1;
        assert_eq!(
            config.validate(),
            Err(ConfigError::TooManyBatchBytes(MAX_COMMIT_BATCH_BYTES + 1))
        );
        config.commit.max_batch_bytes = MAX_COMMIT_BATCH_BYTES;
        config.commit.max_batch_records = MAX_COMMIT_BATCH_RECORDS + 1;
        assert_eq!(
            config.validate(),
            Err(ConfigError::TooManyBatchRecords(
                MAX_COMMIT_BATCH_RECORDS + 1
            ))
        );
        // The largest frame the largest settings allow: the committer stops
        // adding jobs once a bound is reached, so it overshoots each by at
        // most one call's worth. Per record: key id 32, length 4, header 48.
        let records = MAX_COMMIT_BATCH_RECORDS + MAX_BATCH_RECORDS;
        let bytes = MAX_COMMIT_BATCH_BYTES + MAX_BATCH_BYTES;
        let worst = 4 + records * (1 + 4 + 32 + 4 + 48) + bytes;
        assert!(worst < MAX_FRAME_PAYLOAD, "{worst}");
    }
}
