//! The commit log (`commit.log` in the data dir): what makes a batch durable
//! without a durable redb commit.
//!
//! A durable redb commit writes every B-tree page the batch dirtied (records
//! land on random leaves: about three pages per record over four tables) and
//! fsyncs them: 3 ms for 64 records on the reference disk. Appending the
//! batch's operations to this log and fsyncing it writes a few kilobytes
//! instead. redb then commits the batch without fsync (visible to readers at
//! once, on disk later), and a periodic durable redb commit, the checkpoint,
//! flushes those pages together and empties the log.
//!
//! Invariants:
//! - Every acknowledged operation is in redb's last durable commit or in the
//!   log after it. At open, the log is replayed into redb (durably) and then
//!   emptied; replay is safe to repeat because every operation is idempotent
//!   (last writer wins; chunk index updates converge).
//! - A frame is `[payload length u32 BE][first 8 bytes of BLAKE3(payload)]
//!   [payload]`. A crash can tear only the last frame, which was never
//!   acknowledged; replay stops at the first frame that is short, fails its
//!   checksum, or claims more than [`MAX_FRAME_PAYLOAD`] bytes, and the log
//!   is cut there.
//! - A payload is at most [`MAX_FRAME_PAYLOAD`] bytes (512 MiB): encoding a
//!   larger one is an error, never a truncated length. The per-call limits
//!   ([`crate::store::MAX_BATCH_BYTES`]) and the committer's batch bounds
//!   ([`crate::StoreConfig::validate`]) keep real batches far below it.
//! - Replay reads one frame at a time, so opening holds at most one frame
//!   (under 340 MiB with the largest allowed settings, a few MiB with the
//!   defaults) in memory, whatever the log's length. The log itself is
//!   bounded by the checkpoint threshold plus one batch.
//!
//! Payload: `[operation count u32]` then per operation a tag byte and:
//! 0 apply: `[records u32]` then per record `[key id 32][length u32][disk form]`;
//! 1 add chunk: `[id 32][length u64][now ms u64]`; 2 touch chunk:
//! `[id 32][now ms u64]`; 3 remove chunk: `[id 32]`; 4 remove records:
//! `[count u32]` then per record `[key id 32][version 44]`. Integers big-endian.

use crate::commit::Op;
use crate::fault::{FaultPlan, WriteFault, injected_error};
use crate::record::{decode_record, encode_record};
use cairn_core::id::{ChunkId, Id, KeyId};
use cairn_core::version::Version;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The log's name in the data dir.
pub const LOG_FILE: &str = "commit.log";

const FRAME_HEADER: usize = 4 + 8;

/// The largest payload a frame may carry: 512 MiB, well inside its u32
/// length field and far above any batch the store lets through.
pub const MAX_FRAME_PAYLOAD: usize = 512 << 20;
const TAG_APPLY: u8 = 0;
const TAG_ADD_CHUNK: u8 = 1;
const TAG_TOUCH_CHUNK: u8 = 2;
const TAG_REMOVE_CHUNK: u8 = 3;
const TAG_REMOVE: u8 = 4;

/// The open log, appended to by the committer only.
#[derive(Debug)]
pub(crate) struct CommitLog {
    file: File,
    path: PathBuf,
    len: u64,
    faults: Option<Arc<FaultPlan>>,
}

/// Why the log could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("commit log {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "commit log {path}: a frame at byte {offset} passed its checksum but does not decode ({reason}); the log was written by another version or is damaged"
    )]
    Undecodable {
        path: PathBuf,
        offset: u64,
        reason: &'static str,
    },
}

/// A batch whose frame would exceed [`MAX_FRAME_PAYLOAD`].
#[derive(Debug, thiserror::Error)]
#[error(
    "a commit batch of {payload} bytes exceeds the log frame limit of {MAX_FRAME_PAYLOAD} bytes"
)]
pub struct FrameTooLarge {
    /// The payload's length.
    pub payload: usize,
}

impl CommitLog {
    /// Opens (creating) the log and hands the operations of each whole frame,
    /// in order and one frame at a time, to `replay`; cuts off a torn tail.
    pub(crate) fn open<E: From<LogError>>(
        data_dir: &Path,
        faults: Option<Arc<FaultPlan>>,
        mut replay: impl FnMut(Vec<Op>) -> Result<(), E>,
    ) -> Result<CommitLog, E> {
        let path = data_dir.join(LOG_FILE);
        let io_error = |source| LogError::Io {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_error)?;
        let file_len = file.metadata().map_err(io_error)?.len();
        let mut reader = BufReader::new(&file);
        let mut payload = Vec::new();
        let mut at = 0u64;
        while read_frame(&mut reader, at, file_len, &mut payload).map_err(io_error)? {
            let mut ops = Vec::new();
            decode_payload(&payload, &mut ops).map_err(|reason| LogError::Undecodable {
                path: path.clone(),
                offset: at,
                reason,
            })?;
            replay(ops)?;
            at += (FRAME_HEADER + payload.len()) as u64;
        }
        drop(reader);
        if at < file_len {
            // A torn last frame: never acknowledged, cut it off.
            file.set_len(at).map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
        }
        Ok(CommitLog {
            file,
            path,
            len: at,
            faults,
        })
    }

    /// Bytes in the log since the last checkpoint.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends one frame and fsyncs it: when this returns `Ok`, the frame
    /// survives a crash.
    pub(crate) fn append(&mut self, frame: &[u8]) -> io::Result<()> {
        let result = self.append_inner(frame);
        if result.is_err() {
            // Whatever reached the file is a torn or unacknowledged frame;
            // a later successful append must not follow it.
            let _ = self.file.set_len(self.len);
        }
        result
    }

    fn append_inner(&mut self, frame: &[u8]) -> io::Result<()> {
        match self
            .faults
            .as_ref()
            .map_or(WriteFault::None, |f| f.on_write())
        {
            WriteFault::None => self.file.write_all(frame)?,
            WriteFault::Fail => return Err(injected_error("write")),
            WriteFault::Tear => {
                self.file.write_all(&frame[..frame.len() / 2])?;
                return Err(injected_error("torn write"));
            }
        }
        if let Some(faults) = &self.faults {
            faults.on_sync()?;
        }
        self.file.sync_data()?;
        self.len += frame.len() as u64;
        Ok(())
    }

    /// Empties the log, after a checkpoint made everything in it durable in redb.
    pub(crate) fn clear(&mut self) -> io::Result<()> {
        if let Some(faults) = &self.faults {
            faults.on_sync()?;
        }
        self.file.set_len(0)?;
        self.file.sync_all()?;
        self.len = 0;
        Ok(())
    }

    /// Where the log lives.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads the frame at `at` (the reader's position) into `payload`; false at
/// the end of the whole frames: the file ends, the header claims more than
/// the file holds or than [`MAX_FRAME_PAYLOAD`] (nothing is allocated for
/// it), or the checksum fails.
fn read_frame(
    reader: &mut impl Read,
    at: u64,
    file_len: u64,
    payload: &mut Vec<u8>,
) -> io::Result<bool> {
    let mut header = [0u8; FRAME_HEADER];
    if file_len - at < FRAME_HEADER as u64 {
        return Ok(false);
    }
    reader.read_exact(&mut header)?;
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len > MAX_FRAME_PAYLOAD || (len as u64) > file_len - at - FRAME_HEADER as u64 {
        return Ok(false);
    }
    payload.resize(len, 0);
    reader.read_exact(payload)?;
    Ok(blake3::hash(payload).as_bytes()[..8] == header[4..12])
}

/// The frame's length field for a payload of `len` bytes.
fn frame_len_field(len: usize) -> Result<u32, FrameTooLarge> {
    if len > MAX_FRAME_PAYLOAD {
        return Err(FrameTooLarge { payload: len });
    }
    u32::try_from(len).map_err(|_| FrameTooLarge { payload: len })
}

/// Encodes a batch of operations as one frame.
pub(crate) fn encode_frame(ops: &[Op]) -> Result<Vec<u8>, FrameTooLarge> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&(ops.len() as u32).to_be_bytes());
    for op in ops {
        match op {
            Op::Apply(records) => {
                payload.push(TAG_APPLY);
                payload.extend_from_slice(&(records.len() as u32).to_be_bytes());
                for record in records {
                    let encoded = encode_record(record);
                    payload.extend_from_slice(&record.key_id.0.0);
                    payload.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
                    payload.extend_from_slice(&encoded);
                }
            }
            Op::AddChunk { id, len, now_ms } => {
                payload.push(TAG_ADD_CHUNK);
                payload.extend_from_slice(&id.0.0);
                payload.extend_from_slice(&len.to_be_bytes());
                payload.extend_from_slice(&now_ms.to_be_bytes());
            }
            Op::TouchChunk { id, now_ms } => {
                payload.push(TAG_TOUCH_CHUNK);
                payload.extend_from_slice(&id.0.0);
                payload.extend_from_slice(&now_ms.to_be_bytes());
            }
            Op::RemoveChunk { id } => {
                payload.push(TAG_REMOVE_CHUNK);
                payload.extend_from_slice(&id.0.0);
            }
            Op::Remove(items) => {
                payload.push(TAG_REMOVE);
                payload.extend_from_slice(&(items.len() as u32).to_be_bytes());
                for (key_id, version) in items {
                    payload.extend_from_slice(&key_id.0.0);
                    payload.extend_from_slice(&version.to_bytes());
                }
            }
        }
    }
    let len = frame_len_field(payload.len())?;
    let mut frame = Vec::with_capacity(FRAME_HEADER + payload.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&blake3::hash(&payload).as_bytes()[..8]);
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// A cursor over a payload that fails with a reason instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.bytes.len() < n {
            return Err("payload ends early");
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        let mut out = [0u8; 4];
        out.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(out))
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        let mut out = [0u8; 8];
        out.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(out))
    }

    fn id(&mut self) -> Result<Id, &'static str> {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.take(32)?);
        Ok(Id(out))
    }
}

fn decode_payload(payload: &[u8], ops: &mut Vec<Op>) -> Result<(), &'static str> {
    let mut reader = Reader { bytes: payload };
    let count = reader.u32()?;
    for _ in 0..count {
        let op = match reader.u8()? {
            TAG_APPLY => {
                let records = reader.u32()?;
                let mut batch = Vec::new();
                for _ in 0..records {
                    let key_id = KeyId(reader.id()?);
                    let len = reader.u32()? as usize;
                    batch.push(decode_record(key_id, reader.take(len)?)?);
                }
                Op::Apply(batch)
            }
            TAG_ADD_CHUNK => Op::AddChunk {
                id: ChunkId(reader.id()?),
                len: reader.u64()?,
                now_ms: reader.u64()?,
            },
            TAG_TOUCH_CHUNK => Op::TouchChunk {
                id: ChunkId(reader.id()?),
                now_ms: reader.u64()?,
            },
            TAG_REMOVE_CHUNK => Op::RemoveChunk {
                id: ChunkId(reader.id()?),
            },
            TAG_REMOVE => {
                let count = reader.u32()?;
                let mut items = Vec::new();
                for _ in 0..count {
                    let key_id = KeyId(reader.id()?);
                    let mut version = [0u8; Version::ENCODED_LEN];
                    version.copy_from_slice(reader.take(Version::ENCODED_LEN)?);
                    items.push((key_id, Version::from_bytes(&version)));
                }
                Op::Remove(items)
            }
            _ => return Err("unknown operation tag"),
        };
        ops.push(op);
    }
    if !reader.bytes.is_empty() {
        return Err("bytes after the last operation");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use cairn_core::id::NodeId;
    use cairn_core::version::{HlcTimestamp, Version};

    fn open(dir: &Path) -> (CommitLog, Vec<Op>) {
        let mut replay = Vec::new();
        let log = CommitLog::open(dir, None, |ops| {
            replay.extend(ops);
            Ok::<_, LogError>(())
        })
        .expect("open");
        (log, replay)
    }

    fn frame(ops: &[Op]) -> Vec<u8> {
        encode_frame(ops).expect("encode")
    }

    fn ops() -> Vec<Op> {
        let version = Version::new(
            HlcTimestamp {
                physical_ms: 5,
                logical: 1,
            },
            NodeId(Id([2; 32])),
        );
        vec![
            Op::Apply(vec![
                Record::value(b"a", version, b"value".to_vec()),
                Record::tombstone(b"b", version),
            ]),
            Op::AddChunk {
                id: ChunkId::of_bytes(b"c"),
                len: 1,
                now_ms: 9,
            },
            Op::TouchChunk {
                id: ChunkId::of_bytes(b"c"),
                now_ms: 10,
            },
            Op::RemoveChunk {
                id: ChunkId::of_bytes(b"c"),
            },
            Op::Remove(vec![(KeyId::of_key(b"a"), version)]),
        ]
    }

    #[test]
    fn frames_are_read_back_after_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, replay) = open(dir.path());
        assert!(replay.is_empty());
        log.append(&frame(&ops())).expect("append");
        log.append(&frame(&ops()[..1])).expect("append");
        drop(log);
        let (log, replay) = open(dir.path());
        assert_eq!(
            format!("{replay:?}"),
            format!("{:?}", [ops(), ops()[..1].to_vec()].concat())
        );
        assert!(log.len() > 0);
    }

    #[test]
    fn a_torn_last_frame_is_cut_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = open(dir.path());
        log.append(&frame(&ops()[..1])).expect("append");
        let whole = log.len();
        drop(log);
        let frame = frame(&ops());
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG_FILE))
            .expect("open file");
        file.write_all(&frame[..frame.len() - 3])
            .expect("torn write");
        drop(file);
        let (log, replay) = open(dir.path());
        assert_eq!(replay.len(), 1);
        assert_eq!(log.len(), whole);
        let on_disk = std::fs::metadata(dir.path().join(LOG_FILE))
            .expect("meta")
            .len();
        assert_eq!(on_disk, whole);
    }

    #[test]
    fn a_flipped_byte_ends_the_log_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = open(dir.path());
        log.append(&frame(&ops())).expect("append");
        log.append(&frame(&ops())).expect("append");
        drop(log);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        let (_, replay) = open(dir.path());
        assert_eq!(replay.len(), ops().len());
    }

    #[test]
    fn clear_empties_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = open(dir.path());
        log.append(&frame(&ops())).expect("append");
        log.clear().expect("clear");
        log.append(&frame(&ops()[..1])).expect("append after clear");
        drop(log);
        let (_, replay) = open(dir.path());
        assert_eq!(replay.len(), 1);
    }

    #[test]
    fn an_oversized_payload_is_an_error_not_a_truncated_length() {
        assert_eq!(
            frame_len_field(MAX_FRAME_PAYLOAD).expect("at the limit"),
            512 << 20
        );
        // Before: `len as u32`, so 4 GiB + 5 wrote a length of 5.
        for len in [MAX_FRAME_PAYLOAD + 1, 1 << 32, (1 << 32) + 5] {
            assert_eq!(frame_len_field(len).expect_err("too large").payload, len);
        }
    }

    #[test]
    fn a_header_claiming_a_huge_payload_ends_the_log_without_allocating_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = open(dir.path());
        log.append(&frame(&ops())).expect("append");
        let whole = log.len();
        drop(log);
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG_FILE))
            .expect("open file");
        // A garbage header: u32::MAX bytes claimed, a few present.
        file.write_all(&[0xff; FRAME_HEADER + 16]).expect("garbage");
        drop(file);
        let (log, replay) = open(dir.path());
        assert_eq!(replay.len(), ops().len());
        assert_eq!(log.len(), whole);
    }

    #[test]
    fn replay_hands_over_one_frame_at_a_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = open(dir.path());
        for _ in 0..3 {
            log.append(&frame(&ops())).expect("append");
        }
        drop(log);
        let mut frames = Vec::new();
        CommitLog::open(dir.path(), None, |ops| {
            frames.push(ops.len());
            Ok::<_, LogError>(())
        })
        .expect("reopen");
        assert_eq!(frames, vec![ops().len(); 3]);
    }
}
