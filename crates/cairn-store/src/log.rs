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
//!   acknowledged; replay stops at the first frame that is short or fails its
//!   checksum, and the log is cut there.
//!
//! Payload: `[operation count u32]` then per operation a tag byte and:
//! 0 apply: `[records u32]` then per record `[key id 32][length u32][disk form]`;
//! 1 add chunk: `[id 32][length u64][now ms u64]`; 2 touch chunk:
//! `[id 32][now ms u64]`; 3 remove chunk: `[id 32]`. Integers big-endian.

use crate::commit::Op;
use crate::fault::{FaultPlan, WriteFault, injected_error};
use crate::record::Record;
use cairn_core::id::{ChunkId, Id, KeyId};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The log's name in the data dir.
pub const LOG_FILE: &str = "commit.log";

const FRAME_HEADER: usize = 4 + 8;
const TAG_APPLY: u8 = 0;
const TAG_ADD_CHUNK: u8 = 1;
const TAG_TOUCH_CHUNK: u8 = 2;
const TAG_REMOVE_CHUNK: u8 = 3;

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

impl CommitLog {
    /// Opens (creating) the log and reads back the operations of every whole
    /// frame, cutting off a torn tail.
    pub(crate) fn open(
        data_dir: &Path,
        faults: Option<Arc<FaultPlan>>,
    ) -> Result<(CommitLog, Vec<Op>), LogError> {
        let path = data_dir.join(LOG_FILE);
        let io_error = |source| LogError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_error)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_error)?;
        let mut ops = Vec::new();
        let mut at = 0usize;
        while let Some((payload, next)) = whole_frame(&bytes, at) {
            decode_payload(payload, &mut ops).map_err(|reason| LogError::Undecodable {
                path: path.clone(),
                offset: at as u64,
                reason,
            })?;
            at = next;
        }
        if at < bytes.len() {
            // A torn last frame: never acknowledged, cut it off.
            file.set_len(at as u64).map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
        }
        Ok((
            CommitLog {
                file,
                path,
                len: at as u64,
                faults,
            },
            ops,
        ))
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

/// The payload of the whole frame at `at` and where the next one starts.
fn whole_frame(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let header = bytes.get(at..at + FRAME_HEADER)?;
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let payload = bytes.get(at + FRAME_HEADER..at + FRAME_HEADER + len)?;
    let checksum = blake3::hash(payload);
    (checksum.as_bytes()[..8] == header[4..12]).then_some((payload, at + FRAME_HEADER + len))
}

/// Encodes a batch of operations as one frame.
pub(crate) fn encode_frame(ops: &[Op]) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&(ops.len() as u32).to_be_bytes());
    for op in ops {
        match op {
            Op::Apply(records) => {
                payload.push(TAG_APPLY);
                payload.extend_from_slice(&(records.len() as u32).to_be_bytes());
                for record in records {
                    let encoded = record.encode();
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
        }
    }
    let mut frame = Vec::with_capacity(FRAME_HEADER + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&blake3::hash(&payload).as_bytes()[..8]);
    frame.extend_from_slice(&payload);
    frame
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
                    batch.push(Record::decode(key_id, reader.take(len)?)?);
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
    use cairn_core::id::NodeId;
    use cairn_core::version::{HlcTimestamp, Version};

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
        ]
    }

    #[test]
    fn frames_are_read_back_after_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, replay) = CommitLog::open(dir.path(), None).expect("open");
        assert!(replay.is_empty());
        log.append(&encode_frame(&ops())).expect("append");
        log.append(&encode_frame(&ops()[..1])).expect("append");
        drop(log);
        let (log, replay) = CommitLog::open(dir.path(), None).expect("reopen");
        assert_eq!(
            format!("{replay:?}"),
            format!("{:?}", [ops(), ops()[..1].to_vec()].concat())
        );
        assert!(log.len() > 0);
    }

    #[test]
    fn a_torn_last_frame_is_cut_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = CommitLog::open(dir.path(), None).expect("open");
        log.append(&encode_frame(&ops()[..1])).expect("append");
        let whole = log.len();
        drop(log);
        let frame = encode_frame(&ops());
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG_FILE))
            .expect("open file");
        file.write_all(&frame[..frame.len() - 3])
            .expect("torn write");
        drop(file);
        let (log, replay) = CommitLog::open(dir.path(), None).expect("reopen");
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
        let (mut log, _) = CommitLog::open(dir.path(), None).expect("open");
        log.append(&encode_frame(&ops())).expect("append");
        log.append(&encode_frame(&ops())).expect("append");
        drop(log);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        let (_, replay) = CommitLog::open(dir.path(), None).expect("reopen");
        assert_eq!(replay.len(), ops().len());
    }

    #[test]
    fn clear_empties_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = CommitLog::open(dir.path(), None).expect("open");
        log.append(&encode_frame(&ops())).expect("append");
        log.clear().expect("clear");
        log.append(&encode_frame(&ops()[..1]))
            .expect("append after clear");
        drop(log);
        let (_, replay) = CommitLog::open(dir.path(), None).expect("reopen");
        assert_eq!(replay.len(), 1);
    }
}
