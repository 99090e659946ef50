//! Records: what a node keeps for one key, and how it is laid out on disk.
//!
//! A record is key id → {key bytes, version, value or tombstone}. Values are
//! stored inline up to [`MAX_INLINE_VALUE`] (1 MiB, exactly 1 MiB included);
//! larger values become chunks plus a manifest (a later layer).
//!
//! Last writer wins: a record replaces the stored one only if its version is
//! newer ([`supersedes`]). Equal versions are the same write, so a replayed
//! record is a no-op.
//!
//! On-disk form (format 1), one redb value per record:
//! `[format u8 = 1][version 44 bytes][kind u8: 0 value, 1 tombstone]`
//! `[key length u16 big-endian][key][value bytes to the end]`.

use cairn_core::id::KeyId;
use cairn_core::limits::MAX_KEY_LEN;
use cairn_core::version::Version;

/// The largest value stored inline in a record: 1 MiB.
pub const MAX_INLINE_VALUE: usize = 1 << 20;

const RECORD_FORMAT: u8 = 1;
const KIND_VALUE: u8 = 0;
const KIND_TOMBSTONE: u8 = 1;
const HEADER_LEN: usize = 1 + Version::ENCODED_LEN + 1 + 2;

/// What a record holds: a value, or the mark that the key was deleted.
#[derive(Clone, PartialEq, Eq)]
pub enum Body {
    /// The value, stored inline.
    Value(Vec<u8>),
    /// The key was deleted at this version; kept so that older writes lose.
    Tombstone,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Value(value) => write!(f, "Value({} bytes)", value.len()),
            Body::Tombstone => f.write_str("Tombstone"),
        }
    }
}

/// One key's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The ring point of the key: BLAKE3 of `"kv\0"` and the key.
    pub key_id: KeyId,
    /// The user's key, kept so that listings can show it.
    pub key: Vec<u8>,
    /// Who wrote this when; the newer version wins.
    pub version: Version,
    /// The value, or a tombstone.
    pub body: Body,
}

/// Why a record is refused before it reaches the disk.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("the key is empty")]
    EmptyKey,
    #[error("the key is {0} bytes: a key is at most {MAX_KEY_LEN} bytes")]
    KeyTooLong(usize),
    #[error("the value is {0} bytes: at most {MAX_INLINE_VALUE} bytes are stored inline")]
    ValueTooLarge(usize),
    #[error("the key id does not match the key (it must be BLAKE3 of \"kv\\0\" and the key)")]
    KeyIdMismatch,
}

impl Record {
    /// A record holding `value` for `key`.
    pub fn value(key: &[u8], version: Version, value: Vec<u8>) -> Record {
        Record {
            key_id: KeyId::of_key(key),
            key: key.to_vec(),
            version,
            body: Body::Value(value),
        }
    }

    /// A tombstone for `key`.
    pub fn tombstone(key: &[u8], version: Version) -> Record {
        Record {
            key_id: KeyId::of_key(key),
            key: key.to_vec(),
            version,
            body: Body::Tombstone,
        }
    }

    /// True for a deletion mark.
    pub fn is_tombstone(&self) -> bool {
        matches!(self.body, Body::Tombstone)
    }

    /// The value, if this is not a tombstone.
    pub fn value_bytes(&self) -> Option<&[u8]> {
        match &self.body {
            Body::Value(value) => Some(value),
            Body::Tombstone => None,
        }
    }

    /// The bytes this record counts for in the store's totals: key plus value.
    pub fn stored_bytes(&self) -> u64 {
        (self.key.len() + self.value_bytes().map_or(0, <[u8]>::len)) as u64
    }

    /// Checks the limits and that the key id belongs to the key.
    pub fn check(&self) -> Result<(), RecordError> {
        if self.key.is_empty() {
            return Err(RecordError::EmptyKey);
        }
        if self.key.len() > MAX_KEY_LEN {
            return Err(RecordError::KeyTooLong(self.key.len()));
        }
        if let Body::Value(value) = &self.body
            && value.len() > MAX_INLINE_VALUE
        {
            return Err(RecordError::ValueTooLarge(value.len()));
        }
        if KeyId::of_key(&self.key) != self.key_id {
            return Err(RecordError::KeyIdMismatch);
        }
        Ok(())
    }

    /// The on-disk form (see the module docs).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let value = self.value_bytes().unwrap_or(&[]);
        let mut out = Vec::with_capacity(HEADER_LEN + self.key.len() + value.len());
        out.push(RECORD_FORMAT);
        out.extend_from_slice(&self.version.to_bytes());
        out.push(if self.is_tombstone() {
            KIND_TOMBSTONE
        } else {
            KIND_VALUE
        });
        // check() bounds the key to MAX_KEY_LEN, far below u16::MAX.
        out.extend_from_slice(&(self.key.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.key);
        out.extend_from_slice(value);
        out
    }

    /// Reads the on-disk form back; `Err` says what is wrong with the bytes.
    pub(crate) fn decode(key_id: KeyId, bytes: &[u8]) -> Result<Record, &'static str> {
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
}

/// Last writer wins: true if a record at `candidate` replaces what is stored.
pub fn supersedes(candidate: Version, stored: Option<Version>) -> bool {
    stored.is_none_or(|stored| candidate > stored)
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
            let back = Record::decode(record.key_id, &record.encode()).expect("decode");
            assert_eq!(back, record);
        }
    }

    #[test]
    fn damaged_disk_forms_are_errors() {
        let record = Record::value(b"key", version(1), b"v".to_vec());
        let bytes = record.encode();
        assert!(Record::decode(record.key_id, &bytes[..10]).is_err());
        let mut wrong_format = bytes.clone();
        wrong_format[0] = 9;
        assert!(Record::decode(record.key_id, &wrong_format).is_err());
        let mut long_key = bytes.clone();
        long_key[HEADER_LEN - 2] = 0xff;
        assert!(Record::decode(record.key_id, &long_key).is_err());
        let mut tombstone_with_value = bytes;
        tombstone_with_value[1 + Version::ENCODED_LEN] = KIND_TOMBSTONE;
        assert!(Record::decode(record.key_id, &tombstone_with_value).is_err());
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(
            Record::value(b"", version(1), Vec::new()).check(),
            Err(RecordError::EmptyKey)
        );
        let long = vec![b'x'; MAX_KEY_LEN + 1];
        assert_eq!(
            Record::value(&long, version(1), Vec::new()).check(),
            Err(RecordError::KeyTooLong(MAX_KEY_LEN + 1))
        );
        let exactly_one_mib = Record::value(b"k", version(1), vec![0; MAX_INLINE_VALUE]);
        assert_eq!(exactly_one_mib.check(), Ok(()));
        let too_big = Record::value(b"k", version(1), vec![0; MAX_INLINE_VALUE + 1]);
        assert_eq!(
            too_big.check(),
            Err(RecordError::ValueTooLarge(MAX_INLINE_VALUE + 1))
        );
        let mut wrong_id = Record::value(b"k", version(1), Vec::new());
        wrong_id.key_id = KeyId::of_key(b"other");
        assert_eq!(wrong_id.check(), Err(RecordError::KeyIdMismatch));
    }

    #[test]
    fn only_a_newer_version_supersedes() {
        assert!(supersedes(version(1), None));
        assert!(supersedes(version(2), Some(version(1))));
        assert!(!supersedes(version(1), Some(version(1))));
        assert!(!supersedes(version(1), Some(version(2))));
    }
}
