//! The digest tree of anti-entropy: two replicas compare what they hold for
//! a range of key ids without sending values, and narrow a difference down
//! to a bucket whose (key id, version) list they then exchange. This module
//! holds the values they exchange (tree nodes and their digests) and the
//! arithmetic of the tree; the store keeps the running sums that make a
//! digest cheap (`cairn-store`, module `digest`).
//!
//! The id space is cut into [`BUCKETS`] fixed buckets by the top
//! [`BUCKET_BITS`] bits of the key id. Over them sits a tree with fan-out 16:
//! a [`TreeNode`] at level `l` covers the ids whose top `4 l` bits equal its
//! index, so level 0 is the root (the whole ring) and level [`LEAF_LEVEL`]
//! the buckets.
//!
//! A node's digest ([`NodeDigest`]) is the number of records under it (and
//! in the range asked about) and the sum, modulo 2^256, of one hash per
//! record: [`entry_hash`], BLAKE3(key id ‖ version bytes). Key ids are unique
//! in a store, so each entry is counted once; tombstones are entries like any
//! other, so a delete shows up as a difference.
//!
//! Invariant: every [`TreeNode`] is in bounds (a level of at most
//! [`LEAF_LEVEL`], an index below 16^level), however it was made: its fields
//! are private, and both ways in, [`TreeNode::new`] and deserializing one
//! that a peer sent, check them.

use crate::id::{Id, KeyId};
use crate::version::Version;
use serde::{Deserialize, Serialize};
use std::ops::RangeInclusive;

/// Bits of the key id that pick its bucket.
pub const BUCKET_BITS: u32 = 12;
/// The number of buckets: 4096.
pub const BUCKETS: u32 = 1 << BUCKET_BITS;
/// Bits per tree level (fan-out 16).
pub const LEVEL_BITS: u32 = 4;
/// The level of the buckets; the root is level 0.
pub const LEAF_LEVEL: u8 = (BUCKET_BITS / LEVEL_BITS) as u8;

/// A node of the digest tree: the ids whose top `4 level` bits are `index`.
///
/// Always in bounds: the fields are private, and [`TreeNode::new`] and
/// deserialization check a level and index (which come from peers) before
/// making a node, so a digest or a version list is never asked of a node
/// that does not exist. A node cannot be built around the check:
///
/// ```compile_fail,E0451
/// let node = cairn_core::digest::TreeNode { level: 4, index: 0 };
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "UncheckedTreeNode")]
pub struct TreeNode {
    /// 0 for the root, [`LEAF_LEVEL`] for a bucket.
    level: u8,
    /// Which node of its level, from 0 at id 0 clockwise.
    index: u32,
}

/// A tree node as read from the wire, before its bounds are checked: the
/// only way serde makes a [`TreeNode`] is through [`TreeNode::new`].
#[derive(Deserialize)]
struct UncheckedTreeNode {
    level: u8,
    index: u32,
}

impl TryFrom<UncheckedTreeNode> for TreeNode {
    type Error = InvalidTreeNode;

    fn try_from(node: UncheckedTreeNode) -> Result<TreeNode, InvalidTreeNode> {
        TreeNode::new(node.level, node.index)
    }
}

/// A level and index that name no node of the digest tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "no digest tree node at level {level}, index {index}: levels run 0 to {LEAF_LEVEL}, and level l has 16^l nodes"
)]
pub struct InvalidTreeNode {
    /// The level asked for.
    pub level: u8,
    /// The index asked for.
    pub index: u32,
}

impl TreeNode {
    /// The root: the whole ring.
    pub const ROOT: TreeNode = TreeNode { level: 0, index: 0 };

    /// The node at `level` and `index`, if both are in bounds.
    /// The root: the whole id space.
    pub fn root() -> TreeNode {
        TreeNode { level: 0, index: 0 }
    }

    pub fn new(level: u8, index: u32) -> Result<TreeNode, InvalidTreeNode> {
        if level <= LEAF_LEVEL && index < (1 << (LEVEL_BITS * level as u32)) {
            Ok(TreeNode { level, index })
        } else {
            Err(InvalidTreeNode { level, index })
        }
    }

    /// 0 for the root, [`LEAF_LEVEL`] for a bucket.
    pub fn level(&self) -> u8 {
        self.level
    }

    /// Which node of its level, from 0 at id 0 clockwise.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The bucket that holds `key_id`.
    pub fn bucket_of(key_id: KeyId) -> TreeNode {
        TreeNode {
            level: LEAF_LEVEL,
            index: bucket_index(key_id.0) as u32,
        }
    }

    /// True for a bucket (a leaf).
    pub fn is_bucket(&self) -> bool {
        self.level == LEAF_LEVEL
    }

    /// The 16 nodes one level down; none for a bucket.
    pub fn children(&self) -> Vec<TreeNode> {
        if self.is_bucket() {
            return Vec::new();
        }
        (0..1 << LEVEL_BITS)
            .map(|child| TreeNode {
                level: self.level + 1,
                index: (self.index << LEVEL_BITS) | child,
            })
            .collect()
    }

    /// The buckets under this node.
    pub fn buckets(&self) -> RangeInclusive<u16> {
        let shift = LEVEL_BITS * (LEAF_LEVEL - self.level) as u32;
        let first = self.index << shift;
        let last = ((self.index + 1) << shift) - 1;
        first as u16..=last as u16
    }

    /// The ids under this node, as an inclusive `(low, high)`.
    pub fn id_span(&self) -> (Id, Id) {
        let buckets = self.buckets();
        (bucket_low(*buckets.start()), bucket_high(*buckets.end()))
    }
}

/// The digest of what a store holds under one tree node, within one range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDigest {
    /// The node summed.
    pub node: TreeNode,
    /// Records (tombstones included) under the node and in the range.
    pub count: u64,
    /// The sum modulo 2^256 of BLAKE3(key id ‖ version) over those records.
    pub sum: Id,
}

impl NodeDigest {
    /// True if two digests of the same node say the replicas hold the same.
    pub fn matches(&self, other: &NodeDigest) -> bool {
        self.count == other.count && self.sum == other.sum
    }
}

/// The hash of one entry, as summed into digests.
pub fn entry_hash(key_id: KeyId, version: Version) -> Id {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&key_id.0.0);
    hasher.update(&version.to_bytes());
    Id(*hasher.finalize().as_bytes())
}

/// The bucket index of an id: its top [`BUCKET_BITS`] bits.
pub fn bucket_index(id: Id) -> u16 {
    (u16::from_be_bytes([id.0[0], id.0[1]])) >> (16 - BUCKET_BITS)
}

/// The first id of a bucket.
pub fn bucket_low(bucket: u16) -> Id {
    let mut bytes = [0u8; 32];
    bytes[..2].copy_from_slice(&(bucket << (16 - BUCKET_BITS)).to_be_bytes());
    Id(bytes)
}

/// The last id of a bucket.
pub fn bucket_high(bucket: u16) -> Id {
    let mut bytes = [0xffu8; 32];
    let low_bits = (1u16 << (16 - BUCKET_BITS)) - 1;
    bytes[..2].copy_from_slice(&((bucket << (16 - BUCKET_BITS)) | low_bits).to_be_bytes());
    Id(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_ring() {
        assert_eq!(bucket_low(0), Id::ZERO);
        assert_eq!(bucket_high((BUCKETS - 1) as u16), Id::MAX);
        for bucket in [0u16, 1, 77, 4094] {
            assert_eq!(
                bucket_high(bucket).wrapping_add(Id::pow2(0)),
                bucket_low(bucket + 1)
            );
            assert_eq!(bucket_index(bucket_low(bucket)), bucket);
            assert_eq!(bucket_index(bucket_high(bucket)), bucket);
        }
    }

    #[test]
    fn the_tree_narrows_from_root_to_buckets() {
        assert_eq!(TreeNode::ROOT.buckets(), 0..=4095);
        assert_eq!(TreeNode::ROOT.id_span(), (Id::ZERO, Id::MAX));
        let child = TreeNode::ROOT.children()[3];
        assert_eq!(child, TreeNode { level: 1, index: 3 });
        assert_eq!(child.buckets(), 768..=1023);
        let bucket = TreeNode::new(LEAF_LEVEL, 4095).expect("in bounds");
        assert!(bucket.is_bucket());
        assert!(bucket.children().is_empty());
        assert_eq!(bucket.buckets(), 4095..=4095);
        assert_eq!(
            TreeNode::new(1, 16),
            Err(InvalidTreeNode {
                level: 1,
                index: 16
            })
        );
    }

    /// What a peer could send: a level past the leaves (which used to panic
    /// in `buckets()`), an index past its level (which used to digest to an
    /// empty node, so two replicas "matched" on a node that does not exist).
    #[test]
    fn out_of_bounds_nodes_are_refused() {
        for (level, index) in [
            (LEAF_LEVEL + 1, 0),
            (u8::MAX, 0),
            (0, 1),
            (1, 99),
            (2, 256),
            (LEAF_LEVEL, BUCKETS),
            (LEAF_LEVEL, u32::MAX),
        ] {
            let error = TreeNode::new(level, index).expect_err("out of bounds");
            assert_eq!((error.level, error.index), (level, index));
        }
        for level in 0..=LEAF_LEVEL {
            let last = (1u32 << (LEVEL_BITS * u32::from(level))) - 1;
            let node = TreeNode::new(level, last).expect("in bounds");
            assert_eq!((node.level(), node.index()), (level, last));
        }
    }

    mod golden {
        //! Golden bytes: tree nodes and digests will travel in anti-entropy
        //! messages, so a change to their encoding must be a visible decision.
        use super::*;

        fn encode<T: Serialize>(value: &T) -> String {
            hex::encode(postcard::to_stdvec(value).expect("encode"))
        }

        #[test]
        fn golden_bytes_of_tree_nodes() {
            assert_eq!(encode(&TreeNode::ROOT), "0000");
            // Level 3, index 4095 (varint ff1f).
            let bucket = TreeNode::new(LEAF_LEVEL, 4095).expect("in bounds");
            assert_eq!(encode(&bucket), "03ff1f");
            let bytes = postcard::to_stdvec(&bucket).expect("encode");
            assert_eq!(postcard::from_bytes::<TreeNode>(&bytes), Ok(bucket));
        }

        #[test]
        fn golden_bytes_of_a_node_digest() {
            let digest = NodeDigest {
                node: TreeNode::new(1, 3).expect("in bounds"),
                count: 300,
                sum: Id([9; 32]),
            };
            assert_eq!(encode(&digest), format!("0103ac02{}", "09".repeat(32)));
            let bytes = postcard::to_stdvec(&digest).expect("encode");
            assert_eq!(postcard::from_bytes::<NodeDigest>(&bytes), Ok(digest));
        }

        /// A peer's node out of bounds is refused while decoding, so no
        /// `TreeNode` (nor a digest holding one) exists that `new` refuses.
        #[test]
        fn out_of_bounds_nodes_do_not_decode() {
            for (level, index) in [
                (LEAF_LEVEL + 1, 0),
                (u8::MAX, 0),
                (0, 1),
                (1, 16),
                (LEAF_LEVEL, BUCKETS),
            ] {
                let raw = postcard::to_stdvec(&(level, index)).expect("encode");
                // Refused by the bounds check (a custom serde error), not
                // for running short.
                let error = postcard::from_bytes::<TreeNode>(&raw).expect_err("out of bounds");
                assert_eq!(error, postcard::Error::SerdeDeCustom);
                let mut digest = raw.clone();
                digest.extend_from_slice(&[0; 33]);
                assert!(postcard::from_bytes::<NodeDigest>(&digest).is_err());
            }
            let raw = postcard::to_stdvec(&(LEAF_LEVEL, BUCKETS - 1)).expect("encode");
            assert!(postcard::from_bytes::<TreeNode>(&raw).is_ok());
        }
    }
}
