//! Ids: 256-bit points on the ring, and the newtypes that say what an id names.
//!
//! Arithmetic is modulo 2^256 (the ring wraps). Ids are shown as 64 hex digits,
//! or 8 in the short form used in logs and tables.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A point on the ring: an unsigned 256-bit integer, big-endian.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 32]);

impl Id {
    /// The point 0.
    pub const ZERO: Id = Id([0; 32]);
    /// The point 2^256 - 1, the last before wrapping to 0.
    pub const MAX: Id = Id([0xff; 32]);

    /// 2^i for i in 0..256.
    pub fn pow2(i: u8) -> Id {
        let mut bytes = [0u8; 32];
        let i = i as usize;
        bytes[31 - i / 8] = 1 << (i % 8);
        Id(bytes)
    }

    /// The four big-endian 64-bit limbs, most significant first.
    fn limbs(self) -> [u64; 4] {
        let mut limbs = [0u64; 4];
        for (limb, bytes) in limbs.iter_mut().zip(self.0.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes);
            *limb = u64::from_be_bytes(word);
        }
        limbs
    }

    fn from_limbs(limbs: [u64; 4]) -> Id {
        let mut bytes = [0u8; 32];
        for (chunk, limb) in bytes.chunks_exact_mut(8).zip(limbs) {
            chunk.copy_from_slice(&limb.to_be_bytes());
        }
        Id(bytes)
    }

    /// (self + other) mod 2^256.
    pub fn wrapping_add(self, other: Id) -> Id {
        let (a, b) = (self.limbs(), other.limbs());
        let mut out = [0u64; 4];
        let mut carry = false;
        for i in (0..4).rev() {
            let (sum, c1) = a[i].overflowing_add(b[i]);
            let (sum, c2) = sum.overflowing_add(u64::from(carry));
            out[i] = sum;
            carry = c1 || c2;
        }
        Id::from_limbs(out)
    }

    /// (self - other) mod 2^256.
    pub fn wrapping_sub(self, other: Id) -> Id {
        let (a, b) = (self.limbs(), other.limbs());
        let mut out = [0u64; 4];
        let mut borrow = false;
        for i in (0..4).rev() {
            let (diff, b1) = a[i].overflowing_sub(b[i]);
            let (diff, b2) = diff.overflowing_sub(u64::from(borrow));
            out[i] = diff;
            borrow = b1 || b2;
        }
        Id::from_limbs(out)
    }

    /// The clockwise distance from `self` to `to`: (to - self) mod 2^256.
    pub fn distance_to(self, to: Id) -> Id {
        to.wrapping_sub(self)
    }

    /// The 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex digits, for logs and tables.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// Parses exactly 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Id, IdParseError> {
        if text.len() != 64 {
            return Err(IdParseError::Length(text.len()));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| IdParseError::NotHex)?;
        Ok(Id(bytes))
    }

    /// The top 64 bits, for quick estimates (e.g. the fraction of the ring a range covers).
    pub fn high_u64(&self) -> u64 {
        let mut top = [0u8; 8];
        top.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(top)
    }

    /// An id whose top 64 bits are `high` and the rest zero (for tests and the simulator).
    pub fn from_high_u64(high: u64) -> Id {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&high.to_be_bytes());
        Id(bytes)
    }
}

/// Why a text is not an id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdParseError {
    #[error("an id is 64 hex digits, this has {0} characters")]
    Length(usize),
    #[error("an id is 64 hex digits (0-9, a-f), this has other characters")]
    NotHex,
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Hex in human-readable formats (JSON), 32 raw bytes in binary ones (postcard).
impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Id, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            Id::from_hex(&text).map_err(serde::de::Error::custom)
        } else {
            Ok(Id(<[u8; 32]>::deserialize(deserializer)?))
        }
    }
}

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Id);

        impl $name {
            /// The ring point.
            pub fn id(self) -> Id {
                self.0
            }
            /// The first 8 hex digits.
            pub fn short(&self) -> String {
                self.0.short()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.short())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id_newtype!(
    /// A node's id: BLAKE3 of its ed25519 public key.
    NodeId
);
id_newtype!(
    /// A key's id: BLAKE3 of `"kv\0"` followed by the key bytes.
    KeyId
);

id_newtype!(
    /// A chunk's id: BLAKE3 of the chunk's bytes, a content address that verifies itself.
    ChunkId
);

impl ChunkId {
    /// The id of a chunk with these bytes.
    pub fn of_bytes(bytes: &[u8]) -> ChunkId {
        ChunkId(Id(*blake3::hash(bytes).as_bytes()))
    }
}

impl NodeId {
    /// The id of the node whose ed25519 public key is `public_key`.
    pub fn from_public_key(public_key: &[u8; 32]) -> NodeId {
        NodeId(Id(*blake3::hash(public_key).as_bytes()))
    }
}

impl KeyId {
    /// The id of a user key.
    pub fn of_key(key: &[u8]) -> KeyId {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"kv\0");
        hasher.update(key);
        KeyId(Id(*hasher.finalize().as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id_strategy() -> impl Strategy<Value = Id> {
        any::<[u8; 32]>().prop_map(Id)
    }

    #[test]
    fn pow2_sets_one_bit() {
        assert_eq!(Id::pow2(0).0[31], 1);
        assert_eq!(Id::pow2(8).0[30], 1);
        assert_eq!(Id::pow2(255).0[0], 0x80);
    }

    #[test]
    fn add_wraps_at_the_top() {
        assert_eq!(Id::MAX.wrapping_add(Id::pow2(0)), Id::ZERO);
        assert_eq!(Id::ZERO.wrapping_sub(Id::pow2(0)), Id::MAX);
    }

    #[test]
    fn hex_round_trips_and_rejects_bad_text() {
        let id = Id::pow2(200);
        assert_eq!(Id::from_hex(&id.to_hex()), Ok(id));
        assert_eq!(Id::from_hex("abc"), Err(IdParseError::Length(3)));
        assert_eq!(Id::from_hex(&"g".repeat(64)), Err(IdParseError::NotHex));
    }

    #[test]
    fn postcard_is_raw_bytes() {
        let id = NodeId(Id::pow2(3));
        let bytes = postcard::to_stdvec(&id).expect("encode");
        assert_eq!(bytes.len(), 32);
        let back: NodeId = postcard::from_bytes(&bytes).expect("decode");
        assert_eq!(back, id);
    }

    #[test]
    fn key_ids_are_domain_separated() {
        assert_ne!(KeyId::of_key(b"a").id(), Id(*blake3::hash(b"a").as_bytes()));
        assert_eq!(KeyId::of_key(b"a"), KeyId::of_key(b"a"));
    }

    proptest! {
        #[test]
        fn add_then_sub_is_identity(a in id_strategy(), b in id_strategy()) {
            prop_assert_eq!(a.wrapping_add(b).wrapping_sub(b), a);
        }

        #[test]
        fn distances_around_the_ring_sum_to_zero(a in id_strategy(), b in id_strategy()) {
            prop_assert_eq!(a.distance_to(b).wrapping_add(b.distance_to(a)), Id::ZERO);
        }

        /// The limb arithmetic agrees with byte-by-byte schoolbook subtraction.
        #[test]
        fn subtraction_matches_bytewise(a in id_strategy(), b in id_strategy()) {
            let mut out = [0u8; 32];
            let mut borrow = 0i16;
            for i in (0..32).rev() {
                let mut diff = a.0[i] as i16 - b.0[i] as i16 - borrow;
                borrow = 0;
                if diff < 0 {
                    diff += 256;
                    borrow = 1;
                }
                out[i] = diff as u8;
            }
            prop_assert_eq!(a.wrapping_sub(b), Id(out));
        }

        #[test]
        fn high_u64_round_trips(x in any::<u64>()) {
            prop_assert_eq!(Id::from_high_u64(x).high_u64(), x);
        }
    }
}
