//! Helpers shared by the store's integration tests.
#![allow(dead_code)]

use cairn_core::id::{Id, NodeId};
use cairn_core::version::{HlcTimestamp, Version};
use cairn_store::{MemoryStore, RedbStore, Store, StoreConfig};

/// A version at `physical_ms` by node `node`.
pub fn version(physical_ms: u64, node: u8) -> Version {
    Version::new(
        HlcTimestamp {
            physical_ms,
            logical: 0,
        },
        NodeId(Id([node; 32])),
    )
}

/// A backend under test, with its name for failure messages.
pub type NamedStore = (&'static str, Box<dyn Store>);

/// Both backends, each with a name for failure messages; the temp dir lives
/// as long as the returned guard.
pub fn backends() -> (tempfile::TempDir, Vec<NamedStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let redb = RedbStore::open(dir.path(), StoreConfig::default()).expect("open redb store");
    (
        dir,
        vec![
            ("memory", Box::new(MemoryStore::new())),
            ("redb", Box::new(redb)),
        ],
    )
}
