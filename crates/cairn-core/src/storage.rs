//! Storage work the core asks for, and its outcome. The core never touches
//! a disk: it hands out a [`StorageRequest`] under a [`Ticket`], the node
//! runs it on its store (off the event loop), the simulator on an in-memory
//! store, and each reports the [`StorageOutcome`] back under the ticket.
//!
//! Invariant: a request that writes is reported done only once durable; an
//! error acknowledges nothing.

use crate::digest::{NodeDigest, TreeNode};
use crate::id::KeyId;
use crate::range::KeyRange;
use crate::record::Record;
use crate::version::Version;

/// Names one storage request, to match its outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub u64);

/// What the core asks of the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageRequest {
    /// Apply these records, last writer wins, durably.
    Apply(Vec<Record>),
    /// Remove these records, each only if the version stored is exactly
    /// this one, durably; answered with `Removed`.
    Remove(Vec<(KeyId, Version)>),
    /// The record of this key id, if any (a value or a tombstone).
    Get(KeyId),
    /// The records of these key ids, those there are; answered with `Records`.
    GetMany(Vec<KeyId>),
    /// Up to `limit` records in `range`, clockwise from its start.
    Scan { range: KeyRange, limit: usize },
    /// The digest of what is stored in `range` (the root of the digest tree).
    Digest { range: KeyRange },
    /// The digests of these tree nodes, within `range`, in the order asked
    /// (anti-entropy's descent); answered with `Digests`.
    DigestNodes {
        range: KeyRange,
        nodes: Vec<TreeNode>,
    },
    /// The (key id, version) of each record under these tree nodes, within
    /// `range`, node by node in the order asked, at most `limit` of them
    /// (the first `limit`); answered with `Versions`.
    Versions {
        range: KeyRange,
        nodes: Vec<TreeNode>,
        limit: usize,
    },
    /// Up to `limit` live keys (not tombstones) in `range` that start with
    /// `prefix`, in key order, at most [`crate::kv::MAX_LIST_BYTES`] of them.
    ListKeys {
        range: KeyRange,
        prefix: String,
        limit: usize,
    },
}

/// What became of a [`StorageRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageOutcome {
    /// Per record of an `Apply`: `None` if it won (was newer than what was
    /// stored), else the version the store keeps instead (newer or equal).
    Stored(Vec<Option<Version>>),
    /// Per record of a `Remove`: true if it was removed.
    Removed(Vec<bool>),
    /// The answer to a `Get`.
    Got(Option<Record>),
    /// The answer to a `Scan`.
    Scanned(Vec<Record>),
    /// The answer to a `GetMany`, in the order asked; ids with no record
    /// are left out.
    Records(Vec<Record>),
    /// The answer to a `Digest`.
    Digest(NodeDigest),
    /// The answer to a `DigestNodes`, one per node asked, in order.
    Digests(Vec<NodeDigest>),
    /// The answer to a `Versions`.
    Versions(Vec<(KeyId, Version)>),
    /// The answer to a `ListKeys`; `truncated` if more matched.
    Keys { keys: Vec<String>, truncated: bool },
    /// The store failed; nothing was acknowledged.
    Failed(String),
}
