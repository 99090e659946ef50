//! Cairn's durable node storage: everything a node keeps in its data dir.
//!
//! ```text
//! node.key            the node's ed25519 secret key (identity)
//! meta.redb           records and the chunk index (redb)
//! commit.log          batches acknowledged since redb's last durable commit
//! chunks/ab/abcd…     chunk files, named by their BLAKE3 id
//! ```
//!
//! The standard it keeps: nothing acknowledged is ever lost, nothing torn is
//! ever read, and durability does not cost one fsync per write (group
//! commit). The node uses it through the [`Store`] trait; it is synchronous
//! and needs no async runtime (call it from blocking threads).
//!
//! Map of the modules:
//! - [`identity`]: the node's ed25519 key (`node.key`), created once and kept.
//! - [`record`]: the disk form of records, and [`Applied`], what `apply` made
//!   of each; the record value itself is [`cairn_core::record`], re-exported.
//! - [`range`]: wrapping ranges of key ids, (after, through]: the value is
//!   [`cairn_core::range`], re-exported.
//! - [`digest`]: range digests for anti-entropy from running bucket sums; the
//!   tree and its values are [`cairn_core::digest`], re-exported.
//! - [`store`]: the [`Store`] trait, its totals and limits.
//! - [`disk`]: [`RedbStore`], records in redb and chunks as files.
//! - [`commit`]: group commit: many writers' batches, one log append, one fsync.
//! - [`log`]: the commit log that makes a batch durable, checkpointed into redb.
//! - [`chunks`]: chunk files written atomically and verified on read.
//! - [`memory`]: [`MemoryStore`], the in-memory store for tests.
//! - [`fault`]: fault injection (failing and torn writes, failing fsyncs).
//! - [`error`]: the store's errors ([`StoreError`]).

pub mod alive;
pub mod bench;
pub mod chunks;
pub mod commit;
pub mod digest;
pub mod disk;
pub mod error;
pub mod fault;
pub mod identity;
pub mod log;
pub mod memory;
pub mod range;
pub mod record;
pub mod store;
mod tables;

pub use commit::{CommitConfig, CommitCounters};
pub use digest::{InvalidTreeNode, NodeDigest, TreeNode};
pub use disk::{RedbStore, StoreConfig};
pub use error::StoreError;
pub use fault::FaultPlan;
pub use memory::MemoryStore;
pub use range::KeyRange;
pub use record::{Applied, Body, Record};
pub use store::{ChunkInfo, Store, StoreStats, WriteDone, execute, execute_then, is_quick};
