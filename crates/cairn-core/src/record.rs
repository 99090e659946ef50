//! Records: what the ring keeps for one key, as a value that storage, wire
//! messages and the replication logic share. How a record is laid out on
//! disk is the store's business (`cairn-store`), not this module's.
//!
//! A record is key id → {key bytes, version, value or tombstone}. Values are
//! held inline up to [`MAX_INLINE_VALUE`] (1 MiB, exactly 1 MiB included);
//! larger values become chunks plus a manifest (a later layer).
//!
//! Invariant: a record that passed [`Record::check`] has a key of 1 to
//! [`MAX_KEY_LEN`] bytes, an inline value of at most [`MAX_INLINE_VALUE`]
//! bytes, and the key id that belongs to its key. The fields are public and
//! decoding does not check, so a record that came from a peer or a disk is
//! checked before anything keeps it (the store does so in `apply`).
//!
//! Last writer wins: a record replaces the stored one only if its version is
//! newer ([`supersedes`]). Equal versions are the same write, so a replayed
//! record is a no-op.

use crate::id::KeyId;
use crate::limits::MAX_KEY_LEN;
use crate::version::Version;
use serde::{Deserialize, Serialize};

/// The largest value stored inline in a record: 1 MiB.
pub const MAX_INLINE_VALUE: usize = 1 << 20;

/// What a record holds: a value, or the mark that the key was deleted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// The value, stored inline.
    Value(Vec<u8>),
    /// The key was deleted at this version; kept so that older writes lose.
    Tombstone,
}

/// Shows a value's length, not its bytes (a value may be 1 MiB).
impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Value(value) => write!(f, "Value({} bytes)", value.len()),
            Body::Tombstone => f.write_str("Tombstone"),
        }
    }
}

/// One key's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// Why a record is refused before anything keeps it.
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
}

/// Last writer wins: true if a record at `candidate` replaces what is stored.
pub fn supersedes(candidate: Version, stored: Option<Version>) -> bool {
    stored.is_none_or(|stored| candidate > stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{Id, NodeId};
    use crate::version::HlcTimestamp;

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

    mod golden {
        //! Golden bytes: records will travel in wire messages, so a change to
        //! their postcard encoding must be a visible decision.
        use super::*;

        fn encode<T: Serialize>(value: &T) -> String {
            hex::encode(postcard::to_stdvec(value).expect("encode"))
        }

        /// Written by node 0x07.. at 300 ms, logical 2, under key id 0x01..
        /// (not the key's real id: the encoding does not care).
        fn record(body: Body) -> Record {
            Record {
                key_id: KeyId(Id([1; 32])),
                key: b"k".to_vec(),
                version: Version::new(
                    HlcTimestamp {
                        physical_ms: 300,
                        logical: 2,
                    },
                    NodeId(Id([7; 32])),
                ),
                body,
            }
        }

        #[test]
        fn golden_bytes_of_a_value() {
            // key id, key (length 1, "k"), version (300 as varint ac02,
            // logical 2, node id), body (variant 0, length 2, "hi").
            assert_eq!(
                encode(&record(Body::Value(b"hi".to_vec()))),
                format!(
                    "{}016b{}{}{}",
                    "01".repeat(32),
                    "ac0202",
                    "07".repeat(32),
                    "00026869"
                )
            );
        }

        #[test]
        fn golden_bytes_of_a_tombstone() {
            assert_eq!(
                encode(&record(Body::Tombstone)),
                format!(
                    "{}016b{}{}{}",
                    "01".repeat(32),
                    "ac0202",
                    "07".repeat(32),
                    "01"
                )
            );
        }

        #[test]
        fn records_round_trip_through_postcard() {
            for record in [
                Record::value(b"key", version(9), vec![0, 1, 2, 255]),
                Record::value(b"empty", version(2), Vec::new()),
                Record::tombstone(b"gone", version(3)),
            ] {
                let bytes = postcard::to_stdvec(&record).expect("encode");
                let back: Record = postcard::from_bytes(&bytes).expect("decode");
                assert_eq!(back, record);
            }
        }

        #[test]
        fn an_unknown_body_kind_does_not_decode() {
            let mut bytes = postcard::to_stdvec(&record(Body::Tombstone)).expect("encode");
            *bytes.last_mut().expect("a body") = 2;
            assert!(postcard::from_bytes::<Record>(&bytes).is_err());
        }
    }
}
