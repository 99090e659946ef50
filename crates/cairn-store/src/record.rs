//! The disk form of records, and what became of a record given to the store.
//!
//! The record value itself ([`Record`], [`Body`], [`RecordError`],
//! [`supersedes`], [`MAX_INLINE_VALUE`]) lives in [`cairn_core::record`], so
//! that wire messages can carry it; it is re-exported here under its old
//! paths. This module keeps how the store lays a record out, and
//! [`Applied`], the answer of [`crate::Store::apply`].
//!
//! Invariant: `decode_record` gives back exactly the record that
//! `encode_record` wrote; bytes it cannot read (too short, another format,
//! an unknown kind, a tombstone with a value) are an `Err` with a reason,
//! never a panic.
//!
//! On-disk form (format 1), one redb value per record:
//! `[format u8 = 1][version 44 bytes][kind u8: 0 value, 1 tombstone]`
//! `[key length u16 big-endian][key][value bytes to the end]`.

pub use cairn_core::record::{Body, MAX_INLINE_VALUE, Record, RecordError, supersedes};

use cairn_core::id::KeyId;
use cairn_core::version::Version;

const RECORD_FORMAT: u8 = 1;
const KIND_VALUE: u8 = 0;
const KIND_TOMBSTONE: u8 = 1;
const HEADER_LEN: usize = 1 + Version::ENCODED_LEN + 1 + 2;

/// The on-disk form of `record` (see the module docs).
pub(crate) fn encode_record(record: &Record) -> Vec<u8> {
    let value = record.value_bytes().unwrap_or(&[]);
    let mut out = Vec::with_capacity(HEADER_LEN + record.key.len() + value.len());
    out.push(RECORD_FORMAT);
    out.extend_from_slice(&record.version.to_bytes());
    out.push(if record.is_tombstone() {
        KIND_TOMBSTONE
    } else {
        KIND_VALUE
    });
    // check() bounds the key to MAX_KEY_LEN, far below u16::MAX.
    out.extend_from_slice(&(record.key.len() as u16).to_be_bytes());
    out.extend_from_slice(&record.key);
    out.extend_from_slice(value);
    out
}

/// Reads the on-disk form back; `Err` says what is wrong with the bytes.
pub(crate) fn decode_record(key_id: KeyId, bytes: &[u8]) -> Result<Record, &'static str> {
    if bytes.len() < HEADER_LEN {
        return Err("shorter than a record header");
    }
    if bytes[0] != RECORD_FORMAT {
        return Err("unknown record format");
    }
    let version_bytes: &[u8; Version::ENCODED_LEN] = bytes[1..1 + Version::ENCODED_LEN]
        .try_into()
        .map_err(|_| "shorter than a record header")?;
    let version = Version::from_bytes(version_bytes);
    let kind = bytes[1 + Version::ENCODED_LEN];
    let key_len = u16::from_be_bytes([bytes[HEADER_LEN - 2], bytes[HEADER_LEN - 1]]) as usize;
    let rest = &bytes[HEADER_LEN..];
    if rest.len() < key_len {
        return Err("key runs past the end");
    }
    let (key, value) = rest.split_at(key_len);
    let body = match kind {
        KIND_VALUE => Body::Value(value.to_vec()),
        KIND_TOMBSTONE if value.is_empty() => Body::Tombstone,
        KIND_TOMBSTONE => return Err("tombstone with a value"),
        _ => return Err("unknown record kind"),
    };
    Ok(Record {
        key_id,
        key: key.to_vec(),
        version,
        body,
    })
}

/// What became of one record of a batch given to [`crate::Store::apply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The record was newer and is now stored (durably, once `apply` returns).
    Stored,
    /// The store already held this version or a newer one, which it keeps.
    Stale {
        /// The version kept.
        stored: Version,
    },
}

impl Applied {
    /// True if the record won.
    pub fn won(self) -> bool {
        self == Applied::Stored
    }

    /// The version the store keeps instead, if the record did not win.
    pub fn kept(self) -> Option<Version> {
        match self {
            Applied::Stored => None,
            Applied::Stale { stored } => Some(stored),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::id::{Id, NodeId};
    use cairn_core::version::HlcTimestamp;

    fn version(physical_ms: u64) -> Version {
        Version::new(
            HlcTimestamp {
                physical_ms,
                logical: 0,
            },
            NodeId(Id([7; 32])),
        )
    }

    #[test]
    fn records_round_trip_through_their_disk_form() {
        for record in [
            Record::value(b"k", version(1), b"hello".to_vec()),
            Record::value(b"empty", version(2), Vec::new()),
            Record::tombstone(b"gone", version(3)),
        ] {
            let back = decode_record(record.key_id, &encode_record(&record)).expect("decode");
            assert_eq!(back, record);
        }
    }

    #[test]
    fn damaged_disk_forms_are_errors() {
        let record = Record::value(b"key", version(1), b"v".to_vec());
        let bytes = encode_record(&record);
        assert!(decode_record(record.key_id, &bytes[..10]).is_err());
        let mut wrong_format = bytes.clone();
        wrong_format[0] = 9;
        assert!(decode_record(record.key_id, &wrong_format).is_err());
        let mut long_key = bytes.clone();
        long_key[HEADER_LEN - 2] = 0xff;
        assert!(decode_record(record.key_id, &long_key).is_err());
        let mut tombstone_with_value = bytes;
        tombstone_with_value[1 + Version::ENCODED_LEN] = KIND_TOMBSTONE;
        assert!(decode_record(record.key_id, &tombstone_with_value).is_err());
    }
}
