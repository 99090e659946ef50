//! Range digests for anti-entropy: two replicas compare what they hold for a
//! range of key ids without sending values, and narrow a difference down to
//! a bucket whose (key id, version) list they then exchange.
//!
//! The id space is cut into [`BUCKETS`] fixed buckets by the top
//! [`BUCKET_BITS`] bits of the key id. Over them sits a tree with fan-out 16:
//! a [`TreeNode`] at level `l` covers the ids whose top `4 l` bits equal its
//! index, so level 0 is the root (the whole ring) and level [`LEAF_LEVEL`]
//! the buckets.
//!
//! A node's digest is the number of records under it (and in the range asked
//! about) and the sum, modulo 2^256, of one hash per record:
//! BLAKE3(key id ‖ version bytes). A sum rather than a hash of the children
//! lets the store keep one running sum per bucket, updated in the same
//! transaction as the record (subtract the old entry, add the new one), so a
//! digest costs a few bucket reads instead of a walk over every record. Only
//! the buckets cut by the ends of the range are summed from their entries.
//! Key ids are unique in a store, so each entry is counted once; tombstones
//! are entries like any other, so a delete shows up as a difference.
//!
//! Invariant: for any range and node, the digest equals the one computed from
//! scratch over the entries in both (checked against a reference model in
//! `tests/model.rs`).

use crate::range::KeyRange;
use cairn_core::id::{Id, KeyId};
use cairn_core::version::Version;
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
/// Always in bounds: the fields are private and [`TreeNode::new`] checks a
/// level and index (which come from peers) before making a node, so
/// [`Store::digest`](crate::Store::digest) and
/// [`Store::list_versions`](crate::Store::list_versions) never see a node
/// that does not exist. A node cannot be built around the check:
///
/// ```compile_fail
/// let node = cairn_store::TreeNode { level: 4, index: 0 };
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TreeNode {
    /// 0 for the root, [`LEAF_LEVEL`] for a bucket.
    level: u8,
    /// Which node of its level, from 0 at id 0 clockwise.
    index: u32,
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// A running digest: a count and a sum of entry hashes, to which entries are
/// added and from which they are removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BucketSum {
    /// Entries counted.
    pub count: u64,
    /// Sum of their hashes modulo 2^256.
    pub sum: Id,
}

impl BucketSum {
    /// The stored length of a bucket sum.
    pub const ENCODED_LEN: usize = 8 + 32;

    /// Counts one entry in.
    pub fn add(&mut self, key_id: KeyId, version: Version) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(entry_hash(key_id, version));
    }

    /// Counts one entry out (it must have been added).
    pub fn remove(&mut self, key_id: KeyId, version: Version) {
        self.count = self.count.saturating_sub(1);
        self.sum = self.sum.wrapping_sub(entry_hash(key_id, version));
    }

    /// Adds another sum into this one.
    pub fn merge(&mut self, other: &BucketSum) {
        self.count += other.count;
        self.sum = self.sum.wrapping_add(other.sum);
    }

    /// Count big-endian, then the sum.
    pub fn to_bytes(&self) -> [u8; BucketSum::ENCODED_LEN] {
        let mut out = [0u8; BucketSum::ENCODED_LEN];
        out[..8].copy_from_slice(&self.count.to_be_bytes());
        out[8..].copy_from_slice(&self.sum.0);
        out
    }

    /// The inverse of [`BucketSum::to_bytes`].
    pub fn from_bytes(bytes: &[u8; BucketSum::ENCODED_LEN]) -> BucketSum {
        let mut count = [0u8; 8];
        count.copy_from_slice(&bytes[..8]);
        let mut sum = [0u8; 32];
        sum.copy_from_slice(&bytes[8..]);
        BucketSum {
            count: u64::from_be_bytes(count),
            sum: Id(sum),
        }
    }
}

/// What a backend offers for digests: its stored bucket sums, and its
/// (key id, version) entries in id order.
pub(crate) trait DigestSource {
    type Error;

    /// Adds the stored sums of the buckets in `buckets` into `total`.
    fn add_bucket_sums(
        &self,
        buckets: RangeInclusive<u16>,
        total: &mut BucketSum,
    ) -> Result<(), Self::Error>;

    /// Calls `visit` for each entry with `low <= key id <= high`, in id order.
    fn visit_entries(
        &self,
        low: Id,
        high: Id,
        visit: &mut dyn FnMut(KeyId, Version),
    ) -> Result<(), Self::Error>;
}

/// The digest of `node` within `range`: whole buckets from their stored
/// sums, the buckets cut by the range's ends from their entries.
pub(crate) fn digest<S: DigestSource>(
    source: &S,
    range: KeyRange,
    node: TreeNode,
) -> Result<NodeDigest, S::Error> {
    let mut total = BucketSum::default();
    for (low, high) in clip(range, node) {
        let first = bucket_index(low);
        let last = bucket_index(high);
        let add_entries = |low: Id, high: Id, total: &mut BucketSum| {
            source.visit_entries(low, high, &mut |key_id, version| total.add(key_id, version))
        };
        if first == last {
            if low == bucket_low(first) && high == bucket_high(first) {
                source.add_bucket_sums(first..=first, &mut total)?;
            } else {
                add_entries(low, high, &mut total)?;
            }
            continue;
        }
        let mut first_whole = first;
        if low != bucket_low(first) {
            add_entries(low, bucket_high(first), &mut total)?;
            first_whole = first + 1;
        }
        let mut last_whole = last;
        if high != bucket_high(last) {
            add_entries(bucket_low(last), high, &mut total)?;
            last_whole = last - 1;
        }
        if first_whole <= last_whole {
            source.add_bucket_sums(first_whole..=last_whole, &mut total)?;
        }
    }
    Ok(NodeDigest {
        node,
        count: total.count,
        sum: total.sum,
    })
}

/// The (key id, version) entries under `node` within `range`, in clockwise
/// order from the range's start.
pub(crate) fn list_versions<S: DigestSource>(
    source: &S,
    range: KeyRange,
    node: TreeNode,
) -> Result<Vec<(KeyId, Version)>, S::Error> {
    let mut entries = Vec::new();
    for (low, high) in clip(range, node) {
        source.visit_entries(low, high, &mut |key_id, version| {
            entries.push((key_id, version))
        })?;
    }
    Ok(entries)
}

/// The parts of `range` under `node`, as inclusive segments in clockwise order.
fn clip(range: KeyRange, node: TreeNode) -> Vec<(Id, Id)> {
    let (node_low, node_high) = node.id_span();
    range
        .segments()
        .iter()
        .filter_map(|(low, high)| {
            let low = low.max(node_low);
            let high = high.min(node_high);
            (low <= high).then_some((low, high))
        })
        .collect()
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

    #[test]
    fn removing_an_entry_undoes_adding_it() {
        let key = KeyId::of_key(b"k");
        let mut sum = BucketSum::default();
        sum.add(KeyId::of_key(b"other"), Version::ZERO);
        let before = sum;
        sum.add(key, Version::ZERO);
        assert_ne!(sum, before);
        sum.remove(key, Version::ZERO);
        assert_eq!(sum, before);
        assert_eq!(BucketSum::from_bytes(&sum.to_bytes()), sum);
    }
}
