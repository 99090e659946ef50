//! Cairn's durable node storage: everything a node keeps in its data dir.
//!
//! Modules:
//! - [`identity`]: the node's ed25519 key (`node.key`), created once and kept.

pub mod identity;
