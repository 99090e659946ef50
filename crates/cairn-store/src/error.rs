//! The store's errors. Each says what went wrong in words an operator can act
//! on; the record and chunk ids are named where one is involved.

use crate::disk::ConfigError;
use crate::record::RecordError;
use cairn_core::id::{ChunkId, KeyId};
use std::io;
use std::path::PathBuf;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store settings are refused: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot create or open the data dir {path}: {source}")]
    DataDir { path: PathBuf, source: io::Error },
    #[error(
        "cannot open the record database {path}: {source} (is another node running on this data dir?)"
    )]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error("the record database failed: {0}")]
    Database(#[from] redb::Error),
    #[error(
        "the record database has format {found}, this build reads format {expected}: use a matching cairn version"
    )]
    Format { found: u64, expected: u64 },
    #[error("the stored record for key id {key_id} is damaged ({reason})")]
    CorruptRecord { key_id: KeyId, reason: &'static str },
    #[error("the record for key id {key_id} is refused: {reason}")]
    InvalidRecord { key_id: KeyId, reason: RecordError },
    #[error(transparent)]
    InvalidTreeNode(#[from] crate::digest::InvalidTreeNode),
    #[error("a batch of {records} records exceeds the limit of {limit} per call")]
    BatchTooLarge { records: usize, limit: usize },
    #[error(
        "a batch of {bytes} key and value bytes exceeds the limit of {limit} bytes per call: split it"
    )]
    BatchBytesTooLarge { bytes: u64, limit: usize },
    #[error(
        "the write failed and nothing of it is acknowledged ({reason}); it may or may not have reached the disk"
    )]
    CommitFailed { reason: String },
    #[error(
        "writes are stopped since an earlier write failed ({reason}); reads still work, reopen the store to write again"
    )]
    WritesStopped { reason: String },
    #[error(transparent)]
    Log(#[from] crate::log::LogError),
    #[error("the store is shutting down")]
    Closed,
    #[error(
        "chunk {id} failed its check against its id and was deleted; fetch it again from a replica"
    )]
    CorruptChunk { id: ChunkId },
    #[error("a chunk of {len} bytes exceeds the limit of {limit} bytes")]
    ChunkTooLarge { len: usize, limit: usize },
    #[error("chunk file {path}: {source}")]
    ChunkIo { path: PathBuf, source: io::Error },
}

macro_rules! from_redb {
    ($($error:ty),*) => {
        $(impl From<$error> for StoreError {
            fn from(error: $error) -> StoreError {
                StoreError::Database(error.into())
            }
        })*
    };
}

from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
