//! Range digests for anti-entropy, as the store computes them. The tree, its
//! nodes and their digests are values of [`cairn_core::digest`] (wire
//! messages carry them), re-exported here under their old paths; this module
//! keeps what makes a digest cheap.
//!
//! A node's digest is a count and a sum of entry hashes rather than a hash
//! of the children, so the store keeps one running sum per bucket
//! ([`BucketSum`]), updated in the same transaction as the record (subtract
//! the old entry, add the new one), and a digest costs a few bucket reads
//! instead of a walk over every record. Only the buckets cut by the ends of
//! the range are summed from their entries.
//!
//! Invariant: for any range and node, the digest equals the one computed from
//! scratch over the entries in both (checked against a reference model in
//! `tests/model.rs`).

pub use cairn_core::digest::{
    BUCKET_BITS, BUCKETS, InvalidTreeNode, LEAF_LEVEL, LEVEL_BITS, NodeDigest, TreeNode,
    bucket_high, bucket_index, bucket_low, entry_hash,
};

use crate::range::KeyRange;
use cairn_core::id::{Id, KeyId};
use cairn_core::version::Version;
use std::ops::RangeInclusive;

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
