//! The tables of `meta.redb` and the fixed-size entries kept in them.
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `records` | key id (32 bytes) | the record's disk form (see [`crate::record`]) |
//! | `versions` | key id | [`VersionEntry`]: version, tombstone flag, stored bytes |
//! | `digest_buckets` | bucket index (u16) | [`BucketSum`] of the bucket's entries |
//! | `chunks` | chunk id | [`ChunkEntry`]: length, last-referenced ms |
//! | `meta` | name | u64: format and running totals |
//!
//! `versions` duplicates each record's version in a small entry so that
//! digests, listings and the last-writer-wins check never read values.
//! All tables change together in the committer's transactions, so they agree
//! after any crash.

use crate::commit::Totals;
use crate::digest::BucketSum;
use crate::record::Record;
use cairn_core::version::Version;
use redb::{ReadableTable, StorageError, Table, TableDefinition};

pub(crate) const RECORDS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("records");
pub(crate) const VERSIONS: TableDefinition<&[u8; 32], &[u8; VersionEntry::LEN]> =
    TableDefinition::new("versions");
pub(crate) const BUCKETS: TableDefinition<u16, &[u8; BucketSum::ENCODED_LEN]> =
    TableDefinition::new("digest_buckets");
pub(crate) const CHUNKS: TableDefinition<&[u8; 32], &[u8; ChunkEntry::LEN]> =
    TableDefinition::new("chunks");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The layout version of `meta.redb` this build reads and writes.
pub(crate) const FORMAT: u64 = 1;
pub(crate) const FORMAT_KEY: &str = "format";

const VALUES_KEY: &str = "values";
const TOMBSTONES_KEY: &str = "tombstones";
const RECORD_BYTES_KEY: &str = "record_bytes";
const CHUNKS_KEY: &str = "chunks";
const CHUNK_BYTES_KEY: &str = "chunk_bytes";

/// What `versions` holds per key id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VersionEntry {
    pub(crate) version: Version,
    pub(crate) tombstone: bool,
    /// The record's key and value bytes, for the totals.
    pub(crate) stored_bytes: u64,
}

impl VersionEntry {
    pub(crate) const LEN: usize = Version::ENCODED_LEN + 1 + 8;

    pub(crate) fn of(record: &Record) -> VersionEntry {
        VersionEntry {
            version: record.version,
            tombstone: record.is_tombstone(),
            stored_bytes: record.stored_bytes(),
        }
    }

    pub(crate) fn to_bytes(self) -> [u8; VersionEntry::LEN] {
        let mut out = [0u8; VersionEntry::LEN];
        out[..Version::ENCODED_LEN].copy_from_slice(&self.version.to_bytes());
        out[Version::ENCODED_LEN] = u8::from(self.tombstone);
        out[Version::ENCODED_LEN + 1..].copy_from_slice(&self.stored_bytes.to_be_bytes());
        out
    }

    pub(crate) fn from_bytes(bytes: &[u8; VersionEntry::LEN]) -> VersionEntry {
        let mut version = [0u8; Version::ENCODED_LEN];
        version.copy_from_slice(&bytes[..Version::ENCODED_LEN]);
        let mut stored = [0u8; 8];
        stored.copy_from_slice(&bytes[Version::ENCODED_LEN + 1..]);
        VersionEntry {
            version: Version::from_bytes(&version),
            tombstone: bytes[Version::ENCODED_LEN] != 0,
            stored_bytes: u64::from_be_bytes(stored),
        }
    }

    pub(crate) fn count_in(&self, totals: &mut Totals) {
        if self.tombstone {
            totals.tombstones += 1;
        } else {
            totals.values += 1;
        }
        totals.record_bytes += self.stored_bytes;
    }

    pub(crate) fn count_out(&self, totals: &mut Totals) {
        if self.tombstone {
            totals.tombstones = totals.tombstones.saturating_sub(1);
        } else {
            totals.values = totals.values.saturating_sub(1);
        }
        totals.record_bytes = totals.record_bytes.saturating_sub(self.stored_bytes);
    }
}

/// What `chunks` holds per chunk id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkEntry {
    pub(crate) len: u64,
    pub(crate) last_referenced_ms: u64,
}

impl ChunkEntry {
    pub(crate) const LEN: usize = 16;

    pub(crate) fn to_bytes(self) -> [u8; ChunkEntry::LEN] {
        let mut out = [0u8; ChunkEntry::LEN];
        out[..8].copy_from_slice(&self.len.to_be_bytes());
        out[8..].copy_from_slice(&self.last_referenced_ms.to_be_bytes());
        out
    }

    pub(crate) fn from_bytes(bytes: &[u8; ChunkEntry::LEN]) -> ChunkEntry {
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[..8]);
        let mut last = [0u8; 8];
        last.copy_from_slice(&bytes[8..]);
        ChunkEntry {
            len: u64::from_be_bytes(len),
            last_referenced_ms: u64::from_be_bytes(last),
        }
    }
}

/// Reads the running totals from `meta` (zero where absent).
pub(crate) fn read_totals(
    meta: &impl ReadableTable<&'static str, u64>,
) -> Result<Totals, StorageError> {
    let read = |key: &str| -> Result<u64, StorageError> {
        Ok(meta.get(key)?.map_or(0, |guard| guard.value()))
    };
    Ok(Totals {
        values: read(VALUES_KEY)?,
        tombstones: read(TOMBSTONES_KEY)?,
        record_bytes: read(RECORD_BYTES_KEY)?,
        chunks: read(CHUNKS_KEY)?,
        chunk_bytes: read(CHUNK_BYTES_KEY)?,
    })
}

/// Writes the running totals to `meta`.
pub(crate) fn write_totals(
    meta: &mut Table<&'static str, u64>,
    totals: &Totals,
) -> Result<(), StorageError> {
    meta.insert(VALUES_KEY, totals.values)?;
    meta.insert(TOMBSTONES_KEY, totals.tombstones)?;
    meta.insert(RECORD_BYTES_KEY, totals.record_bytes)?;
    meta.insert(CHUNKS_KEY, totals.chunks)?;
    meta.insert(CHUNK_BYTES_KEY, totals.chunk_bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::id::{Id, NodeId};
    use cairn_core::version::HlcTimestamp;

    #[test]
    fn entries_round_trip() {
        let entry = VersionEntry {
            version: Version::new(
                HlcTimestamp {
                    physical_ms: 9,
                    logical: 2,
                },
                NodeId(Id([3; 32])),
            ),
            tombstone: true,
            stored_bytes: 77,
        };
        assert_eq!(VersionEntry::from_bytes(&entry.to_bytes()), entry);
        let chunk = ChunkEntry {
            len: 1 << 20,
            last_referenced_ms: 12345,
        };
        assert_eq!(ChunkEntry::from_bytes(&chunk.to_bytes()), chunk);
    }
}
