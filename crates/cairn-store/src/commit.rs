//! Group commit: many writers, one batch, one fsync.
//!
//! Writers hand their operations to one committer thread over a channel,
//! each with a reply callback that the committer calls once the operation
//! is durable (a blocking caller waits on it; the node's event loop does not):
//!
//! 1. The committer waits for the first job, then takes every job already
//!    queued, up to [`CommitConfig::max_batch_records`] records and
//!    [`CommitConfig::max_batch_bytes`] bytes. If [`CommitConfig::max_wait`]
//!    is non-zero it waits up to that long for more; with the default (zero)
//!    a lone writer is never delayed: batches form from the writers that
//!    queued while the previous batch was at the disk, so the busier the
//!    store, the larger the batch.
//! 2. It appends the batch to the commit log ([`crate::log`]) and fsyncs it
//!    on the log thread, while it applies the same operations, in arrival
//!    order, to one redb write transaction (last writer wins, record by
//!    record).
//! 3. Once the log append is durable, it commits the transaction without
//!    fsync (`Durability::None`): the batch becomes visible to readers only
//!    now, after it is durable. Then it answers each writer with its own
//!    outcome, so an answer is a durability acknowledgement.
//! 4. Every [`CommitConfig::checkpoint_interval`] or
//!    [`CommitConfig::checkpoint_log_bytes`], a durable redb commit flushes
//!    the pages of all those commits with one fsync and the log is emptied.
//!    At open, a non-empty log is replayed into redb.
//!
//! Why a log: a durable redb commit writes every B-tree page its records
//! dirtied (random key ids land on random leaves of four tables), which took
//! about 3 ms for 64 records on the reference disk; the log append is a few
//! kilobytes and one fdatasync.
//!
//! If a batch fails (log write or fsync, or redb), no writer of that batch is
//! acknowledged (each gets [`StoreError::CommitFailed`]; the batch may or may
//! not have reached the disk). After such a failure the committer refuses
//! further writes ([`StoreError::WritesStopped`]): after a failed fsync the
//! page cache can no longer be trusted to match the disk, so the safe way on
//! is to reopen the store, which recovers from what is really on disk. Reads
//! go on.

use crate::digest::{BucketSum, bucket_index};
use crate::error::StoreError;
use crate::log::{CommitLog, LogError, encode_frame};
use crate::record::{Applied, Record, encode_record, supersedes};
use crate::tables::{self, CHUNKS, ChunkEntry, META, RECORDS, VERSIONS, VersionEntry};
use cairn_core::id::{ChunkId, KeyId};
use cairn_core::version::Version;
use redb::{Database, Durability, ReadableTable, WriteTransaction};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the committer forms batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitConfig {
    /// Records (or chunk index updates) at most in one transaction. Default
    /// 4096; at least 1. Bounds the time one commit holds everyone up.
    pub max_batch_records: usize,
    /// Key and value bytes at most in one transaction (a single larger job
    /// still goes through, alone). Default 16 MiB.
    pub max_batch_bytes: usize,
    /// How long the committer waits for more jobs after the first before it
    /// commits. Default zero: batches form only from writers already queued,
    /// so a lone writer pays one fsync and nothing more.
    pub max_wait: Duration,
    /// Log bytes after which the committer makes redb durable and empties
    /// the log (a checkpoint). Default 64 MiB; bounds replay time at open.
    pub checkpoint_log_bytes: u64,
    /// Time after which a non-empty log is checkpointed, even if small.
    /// Default 2 s.
    pub checkpoint_interval: Duration,
}

impl Default for CommitConfig {
    fn default() -> CommitConfig {
        CommitConfig {
            max_batch_records: 4096,
            max_batch_bytes: 16 << 20,
            max_wait: Duration::ZERO,
            checkpoint_log_bytes: 64 << 20,
            checkpoint_interval: Duration::from_secs(2),
        }
    }
}

/// One writer's request.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    /// Apply records, last writer wins.
    Apply(Vec<Record>),
    /// Index a chunk whose file is durable.
    AddChunk { id: ChunkId, len: u64, now_ms: u64 },
    /// Move a chunk's last-referenced mark forward.
    TouchChunk { id: ChunkId, now_ms: u64 },
    /// Take a chunk out of the index.
    RemoveChunk { id: ChunkId },
    /// Remove records, each only if the stored version is exactly this one
    /// (a newer write that came meanwhile stays).
    Remove(Vec<(KeyId, Version)>),
}

impl Op {
    fn weight(&self) -> (usize, usize) {
        match self {
            Op::Apply(records) => (
                records.len().max(1),
                records.iter().map(|r| r.stored_bytes() as usize).sum(),
            ),
            Op::Remove(items) => (items.len().max(1), 0),
            _ => (1, 0),
        }
    }
}

/// The answer to one [`Op`].
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Per record of an [`Op::Apply`].
    Applied(Vec<Applied>),
    /// For chunk operations: whether the chunk was (newly, for an add) in the index.
    Chunk(bool),
    /// Per record of an [`Op::Remove`]: true if it was removed.
    Removed(Vec<bool>),
}

/// Called once with a job's outcome, on the committer thread, once the job
/// is durable (or failed): it must be quick and must not block.
pub(crate) type Reply = Box<dyn FnOnce(Result<Outcome, StoreError>) + Send>;

struct Job {
    op: Op,
    reply: Reply,
}

/// The handle writers use; dropping it stops the committer after it has
/// answered everything queued.
#[derive(Debug)]
pub(crate) struct Committer {
    queue: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

/// How much batching happened, for benchmarks and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitCounters {
    /// Write transactions committed (one fsync each).
    pub commits: u64,
    /// Writer operations (calls) they carried.
    pub operations: u64,
    /// Checkpoints that completed (redb made durable, the log emptied).
    pub checkpoints: u64,
}

#[derive(Debug, Default)]
struct Counters {
    commits: AtomicU64,
    operations: AtomicU64,
    checkpoints: AtomicU64,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.op.fmt(f)
    }
}

impl Committer {
    pub(crate) fn start(
        db: Arc<Database>,
        log: CommitLog,
        config: CommitConfig,
    ) -> Result<Committer, StoreError> {
        let (queue, jobs) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = counters.clone();
        let thread = std::thread::Builder::new()
            .name("cairn-store-commit".into())
            .spawn(move || run(&db, log, config, jobs, &thread_counters))
            .map_err(|source| StoreError::CommitFailed {
                reason: format!("cannot start the commit thread: {source}"),
            })?;
        Ok(Committer {
            queue: Some(queue),
            thread: Some(thread),
            counters,
        })
    }

    /// Commits and operations so far.
    pub(crate) fn counters(&self) -> CommitCounters {
        CommitCounters {
            commits: self.counters.commits.load(Ordering::Relaxed),
            operations: self.counters.operations.load(Ordering::Relaxed),
            checkpoints: self.counters.checkpoints.load(Ordering::Relaxed),
        }
    }

    /// Queues an operation and returns at once; `reply` gets its outcome on
    /// the committer thread once it is durable (or failed).
    pub(crate) fn submit_then(&self, op: Op, reply: Reply) {
        let Some(queue) = self.queue.as_ref() else {
            return reply(Err(StoreError::Closed));
        };
        if let Err(mpsc::SendError(job)) = queue.send(Job { op, reply }) {
            (job.reply)(Err(StoreError::Closed));
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(
    db: &Database,
    log: CommitLog,
    config: CommitConfig,
    jobs: Receiver<Job>,
    counters: &Counters,
) {
    let log = LogWriter::start(log);
    let mut stopped: Option<String> = None;
    let mut log_bytes = 0u64;
    let mut last_checkpoint = Instant::now();
    loop {
        let first = if log_bytes == 0 || stopped.is_some() {
            match jobs.recv() {
                Ok(job) => job,
                Err(_) => break,
            }
        } else {
            let wait = config
                .checkpoint_interval
                .saturating_sub(last_checkpoint.elapsed());
            match jobs.recv_timeout(wait) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(error) = checkpoint(db, &log, counters) {
                        stopped = Some(error.to_string());
                    }
                    log_bytes = 0;
                    last_checkpoint = Instant::now();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        };
        let batch = gather(first, &jobs, &config);
        if let Some(reason) = &stopped {
            for job in batch {
                (job.reply)(Err(StoreError::WritesStopped {
                    reason: reason.clone(),
                }));
            }
            continue;
        }
        let (ops, replies): (Vec<Op>, Vec<_>) =
            batch.into_iter().map(|job| (job.op, job.reply)).unzip();
        let operations = ops.len() as u64;
        let frame = match encode_frame(&ops) {
            Ok(frame) => frame,
            Err(error) => {
                // Nothing reached the disk: fail this batch only. The batch
                // bounds make this unreachable; it is here so that a mistake
                // there is an error, not a corrupt log.
                let reason = error.to_string();
                for reply in replies {
                    reply(Err(StoreError::CommitFailed {
                        reason: reason.clone(),
                    }));
                }
                continue;
            }
        };
        let frame_len = frame.len() as u64;
        match commit(db, &log, frame, ops) {
            Ok(outcomes) => {
                counters.commits.fetch_add(1, Ordering::Relaxed);
                counters.operations.fetch_add(operations, Ordering::Relaxed);
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    reply(Ok(outcome));
                }
                log_bytes += frame_len;
            }
            Err(error) => {
                let reason = error.to_string();
                for reply in replies {
                    reply(Err(StoreError::CommitFailed {
                        reason: reason.clone(),
                    }));
                }
                stopped = Some(reason);
            }
        }
        let due = log_bytes >= config.checkpoint_log_bytes
            || last_checkpoint.elapsed() >= config.checkpoint_interval;
        if stopped.is_none() && log_bytes > 0 && due {
            if let Err(error) = checkpoint(db, &log, counters) {
                stopped = Some(error.to_string());
            }
            log_bytes = 0;
            last_checkpoint = Instant::now();
        }
    }
    // A clean shutdown leaves redb durable and the log empty.
    if stopped.is_none() && log_bytes > 0 {
        let _ = checkpoint(db, &log, counters);
    }
}

/// Makes every batch so far durable in redb, then empties the log.
fn checkpoint(db: &Database, log: &LogWriter, counters: &Counters) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    // Durability::Immediate (the default): flushes the pages of every
    // non-durable commit before it, with one fsync.
    txn.commit()?;
    log.clear().map_err(|source| {
        StoreError::Log(LogError::Io {
            path: log.path.clone(),
            source,
        })
    })?;
    counters.checkpoints.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The log's own thread, so that its fsync runs while the committer applies
/// the same batch to redb.
struct LogWriter {
    requests: Option<SyncSender<LogRequest>>,
    answers: Receiver<std::io::Result<()>>,
    thread: Option<JoinHandle<()>>,
    path: std::path::PathBuf,
}

enum LogRequest {
    Append(Vec<u8>),
    Clear,
}

impl LogWriter {
    fn start(mut log: CommitLog) -> LogWriter {
        let path = log.path().to_path_buf();
        let (requests, incoming) = mpsc::sync_channel::<LogRequest>(1);
        let (answer, answers) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("cairn-store-log".into())
            .spawn(move || {
                for request in incoming {
                    let result = match request {
                        LogRequest::Append(frame) => log.append(&frame),
                        LogRequest::Clear => log.clear(),
                    };
                    if answer.send(result).is_err() {
                        break;
                    }
                }
            })
            .ok();
        LogWriter {
            requests: Some(requests),
            answers,
            thread,
            path,
        }
    }

    fn send(&self, request: LogRequest) -> std::io::Result<()> {
        let gone = || std::io::Error::other("the commit log thread is gone");
        self.requests
            .as_ref()
            .ok_or_else(gone)?
            .send(request)
            .map_err(|_| gone())
    }

    fn wait(&self) -> std::io::Result<()> {
        self.answers
            .recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("the commit log thread is gone")))
    }

    fn clear(&self) -> std::io::Result<()> {
        self.send(LogRequest::Clear)?;
        self.wait()
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The first job and whatever else fits in this batch.
fn gather(first: Job, jobs: &Receiver<Job>, config: &CommitConfig) -> Vec<Job> {
    let (mut records, mut bytes) = first.op.weight();
    let mut batch = vec![first];
    let deadline = Instant::now() + config.max_wait;
    while records < config.max_batch_records && bytes < config.max_batch_bytes {
        let next = match jobs.try_recv() {
            Ok(job) => job,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                match jobs.recv_timeout(deadline - now) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        let (more_records, more_bytes) = next.op.weight();
        records += more_records;
        bytes += more_bytes;
        batch.push(next);
    }
    batch
}

/// Running totals, read at the start of a transaction and written at its end.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Totals {
    pub(crate) values: u64,
    pub(crate) tombstones: u64,
    pub(crate) record_bytes: u64,
    pub(crate) chunks: u64,
    pub(crate) chunk_bytes: u64,
}

/// Logs a batch (durably) while applying it to redb, then commits it to
/// redb without fsync: visible to readers only once it is in the log.
fn commit(
    db: &Database,
    log: &LogWriter,
    frame: Vec<u8>,
    ops: Vec<Op>,
) -> Result<Vec<Outcome>, StoreError> {
    let log_error = |source| {
        StoreError::Log(LogError::Io {
            path: log.path.clone(),
            source,
        })
    };
    log.send(LogRequest::Append(frame)).map_err(log_error)?;
    let applied = (|| {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::None)
            .map_err(|error| StoreError::Database(error.into()))?;
        let outcomes = apply_ops(&txn, ops)?;
        Ok::<_, StoreError>((txn, outcomes))
    })();
    let logged = log.wait();
    let (txn, outcomes) = applied?;
    if let Err(source) = logged {
        let _ = txn.abort();
        return Err(log_error(source));
    }
    txn.commit()?;
    Ok(outcomes)
}

/// The running sum of digest bucket `bucket` in this transaction: read
/// from the table the first time, then kept in `touched` until written back.
fn bucket_sum<'a>(
    touched: &'a mut BTreeMap<u16, BucketSum>,
    buckets: &redb::Table<u16, &[u8; BucketSum::ENCODED_LEN]>,
    bucket: u16,
) -> Result<&'a mut BucketSum, StoreError> {
    Ok(match touched.entry(bucket) {
        Entry::Occupied(slot) => slot.into_mut(),
        Entry::Vacant(slot) => slot.insert(
            buckets
                .get(bucket)?
                .map(|guard| BucketSum::from_bytes(guard.value()))
                .unwrap_or_default(),
        ),
    })
}

/// Applies operations in order inside a write transaction (the live path and
/// log replay share this).
pub(crate) fn apply_ops(txn: &WriteTransaction, ops: Vec<Op>) -> Result<Vec<Outcome>, StoreError> {
    let mut outcomes = Vec::with_capacity(ops.len());
    {
        let mut records = txn.open_table(RECORDS)?;
        let mut versions = txn.open_table(VERSIONS)?;
        let mut buckets = txn.open_table(tables::BUCKETS)?;
        let mut chunks = txn.open_table(CHUNKS)?;
        let mut meta = txn.open_table(META)?;
        let mut totals = tables::read_totals(&meta)?;
        let mut touched: BTreeMap<u16, BucketSum> = BTreeMap::new();
        for op in ops {
            let outcome = match op {
                Op::Apply(batch) => {
                    let mut applied = Vec::with_capacity(batch.len());
                    for record in batch {
                        let key = record.key_id.0.0;
                        // One tree walk in the common case (the record wins):
                        // insert, and put the old entry back if it was newer.
                        let entry = VersionEntry::of(&record);
                        let old = versions
                            .insert(&key, &entry.to_bytes())?
                            .map(|guard| VersionEntry::from_bytes(guard.value()));
                        if let Some(old) = old
                            && !supersedes(record.version, Some(old.version))
                        {
                            versions.insert(&key, &old.to_bytes())?;
                            applied.push(Applied::Stale {
                                stored: old.version,
                            });
                            continue;
                        }
                        records.insert(&key, encode_record(&record).as_slice())?;
                        let bucket = bucket_index(record.key_id.0);
                        let sum = bucket_sum(&mut touched, &buckets, bucket)?;
                        if let Some(old) = old {
                            sum.remove(record.key_id, old.version);
                            old.count_out(&mut totals);
                        }
                        sum.add(record.key_id, record.version);
                        entry.count_in(&mut totals);
                        applied.push(Applied::Stored);
                    }
                    Outcome::Applied(applied)
                }
                Op::AddChunk { id, len, now_ms } => {
                    let old = chunks
                        .get(&id.0.0)?
                        .map(|guard| ChunkEntry::from_bytes(guard.value()));
                    let entry = match old {
                        Some(old) => {
                            totals.chunk_bytes = totals.chunk_bytes.saturating_sub(old.len);
                            ChunkEntry {
                                len,
                                last_referenced_ms: old.last_referenced_ms.max(now_ms),
                            }
                        }
                        None => {
                            totals.chunks += 1;
                            ChunkEntry {
                                len,
                                last_referenced_ms: now_ms,
                            }
                        }
                    };
                    totals.chunk_bytes += len;
                    chunks.insert(&id.0.0, &entry.to_bytes())?;
                    Outcome::Chunk(old.is_none())
                }
                Op::TouchChunk { id, now_ms } => {
                    let old = chunks
                        .get(&id.0.0)?
                        .map(|guard| ChunkEntry::from_bytes(guard.value()));
                    if let Some(old) = old
                        && now_ms > old.last_referenced_ms
                    {
                        let entry = ChunkEntry {
                            last_referenced_ms: now_ms,
                            ..old
                        };
                        chunks.insert(&id.0.0, &entry.to_bytes())?;
                    }
                    Outcome::Chunk(old.is_some())
                }
                Op::Remove(items) => {
                    let mut removed = Vec::with_capacity(items.len());
                    for (key_id, version) in items {
                        let key = key_id.0.0;
                        let stored = versions
                            .get(&key)?
                            .map(|guard| VersionEntry::from_bytes(guard.value()));
                        let Some(old) = stored.filter(|old| old.version == version) else {
                            removed.push(false);
                            continue;
                        };
                        versions.remove(&key)?;
                        records.remove(&key)?;
                        let bucket = bucket_index(key_id.0);
                        let sum = bucket_sum(&mut touched, &buckets, bucket)?;
                        sum.remove(key_id, old.version);
                        old.count_out(&mut totals);
                        removed.push(true);
                    }
                    Outcome::Removed(removed)
                }
                Op::RemoveChunk { id } => {
                    let old = chunks
                        .remove(&id.0.0)?
                        .map(|guard| ChunkEntry::from_bytes(guard.value()));
                    if let Some(old) = old {
                        totals.chunks = totals.chunks.saturating_sub(1);
                        totals.chunk_bytes = totals.chunk_bytes.saturating_sub(old.len);
                    }
                    Outcome::Chunk(old.is_some())
                }
            };
            outcomes.push(outcome);
        }
        for (bucket, sum) in touched {
            if sum.count == 0 {
                buckets.remove(bucket)?;
            } else {
                buckets.insert(bucket, &sum.to_bytes())?;
            }
        }
        tables::write_totals(&mut meta, &totals)?;
    }
    Ok(outcomes)
}
