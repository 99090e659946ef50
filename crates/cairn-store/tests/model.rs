//! Scans, digests, listings and totals agree with a reference model (a
//! BTreeMap of key id → record, with digests computed from scratch) under
//! random operations, on both backends, wrapping ranges included.

mod common;

use cairn_core::id::{Id, KeyId};
use cairn_core::version::Version;
use cairn_store::digest::{BucketSum, LEAF_LEVEL, TreeNode, bucket_high, bucket_low};
use cairn_store::record::supersedes;
use cairn_store::{KeyRange, MemoryStore, Record, RedbStore, Store, StoreConfig};
use common::version;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// A small pool of keys, so that keys are written more than once.
const KEYS: usize = 40;

fn key(index: usize) -> Vec<u8> {
    format!("key-{index}").into_bytes()
}

#[derive(Clone, Debug)]
enum Op {
    Put {
        key: usize,
        at: u64,
        node: u8,
        len: usize,
    },
    Delete {
        key: usize,
        at: u64,
        node: u8,
    },
}

impl Op {
    fn record(&self) -> Record {
        match *self {
            Op::Put {
                key: k,
                at,
                node,
                len,
            } => Record::value(&key(k), version(at, node), vec![k as u8; len]),
            Op::Delete { key: k, at, node } => Record::tombstone(&key(k), version(at, node)),
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..KEYS, 1u64..30, 0u8..3, 0usize..100)
            .prop_map(|(key, at, node, len)| Op::Put { key, at, node, len }),
        1 => (0..KEYS, 1u64..30, 0u8..3).prop_map(|(key, at, node)| Op::Delete { key, at, node }),
    ]
}

/// A range end: mostly near the keys in use (on them, or on the edges of
/// their buckets), sometimes anywhere, so that ends cut buckets with entries.
#[derive(Clone, Debug)]
enum End {
    OnKey(usize),
    BucketLow(usize),
    BucketHigh(usize),
    Anywhere([u8; 32]),
    Zero,
    Max,
}

impl End {
    fn id(&self) -> Id {
        match self {
            End::OnKey(k) => KeyId::of_key(&key(*k)).0,
            End::BucketLow(k) => {
                bucket_low(TreeNode::bucket_of(KeyId::of_key(&key(*k))).index() as u16)
            }
            End::BucketHigh(k) => {
                bucket_high(TreeNode::bucket_of(KeyId::of_key(&key(*k))).index() as u16)
            }
            End::Anywhere(bytes) => Id(*bytes),
            End::Zero => Id::ZERO,
            End::Max => Id::MAX,
        }
    }
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![
        4 => (0..KEYS).prop_map(End::OnKey),
        1 => (0..KEYS).prop_map(End::BucketLow),
        1 => (0..KEYS).prop_map(End::BucketHigh),
        1 => any::<[u8; 32]>().prop_map(End::Anywhere),
        1 => Just(End::Zero),
        1 => Just(End::Max),
    ]
}

/// A tree node: the root, or the node at some level above a key in use.
fn tree_node() -> impl Strategy<Value = Option<(usize, u8)>> {
    prop_oneof![Just(None), (0..KEYS, 0..=LEAF_LEVEL).prop_map(Some)]
}

fn node_of(choice: Option<(usize, u8)>) -> TreeNode {
    match choice {
        None => TreeNode::ROOT,
        Some((k, level)) => {
            let bucket = TreeNode::bucket_of(KeyId::of_key(&key(k)));
            let shift = 4 * u32::from(LEAF_LEVEL - level);
            TreeNode::new(level, bucket.index() >> shift).expect("in bounds")
        }
    }
}

/// One question to both store and model: the range (after, through], a tree
/// node, and the page size of the scan.
type Query = (End, End, Option<(usize, u8)>, usize);

/// The reference model: last writer wins over a BTreeMap.
#[derive(Default)]
struct Model {
    records: BTreeMap<KeyId, Record>,
}

impl Model {
    fn apply(&mut self, record: Record) -> bool {
        let stored = self.records.get(&record.key_id).map(|r| r.version);
        if supersedes(record.version, stored) {
            self.records.insert(record.key_id, record);
            true
        } else {
            false
        }
    }

    /// Records in the range, clockwise from its start, by walking distances.
    fn in_range(&self, range: KeyRange) -> Vec<&Record> {
        let mut found: Vec<&Record> = self
            .records
            .values()
            .filter(|r| range.contains(r.key_id))
            .collect();
        let first = range.after.wrapping_add(Id::pow2(0));
        found.sort_by_key(|r| first.distance_to(r.key_id.0));
        found
    }

    fn under(&self, range: KeyRange, node: TreeNode) -> Vec<(KeyId, Version)> {
        let (low, high) = node.id_span();
        self.in_range(range)
            .into_iter()
            .filter(|r| low <= r.key_id.0 && r.key_id.0 <= high)
            .map(|r| (r.key_id, r.version))
            .collect()
    }

    fn digest(&self, range: KeyRange, node: TreeNode) -> BucketSum {
        let mut sum = BucketSum::default();
        for (key_id, version) in self.under(range, node) {
            sum.add(key_id, version);
        }
        sum
    }
}

fn check_against_model(
    name: &str,
    store: &dyn Store,
    ops: &[Op],
    ranges: &[Query],
) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    // Apply in batches of up to 4, as concurrent writers would.
    for batch in ops.chunks(4) {
        let records: Vec<Record> = batch.iter().map(Op::record).collect();
        let applied = store.apply(records.clone()).expect("apply");
        for (record, applied) in records.into_iter().zip(applied) {
            prop_assert_eq!(model.apply(record), applied.won(), "{}: won", name);
        }
    }
    let stats = store.stats().expect("stats");
    let tombstones = model.records.values().filter(|r| r.is_tombstone()).count() as u64;
    prop_assert_eq!(stats.tombstones, tombstones, "{}", name);
    prop_assert_eq!(
        stats.values,
        model.records.len() as u64 - tombstones,
        "{}",
        name
    );
    let bytes: u64 = model.records.values().map(Record::stored_bytes).sum();
    prop_assert_eq!(stats.record_bytes, bytes, "{}", name);

    for (after, through, node, page) in ranges {
        let range = KeyRange::new(after.id(), through.id());
        // A scan, paged, returns the model's records in clockwise order.
        let expected: Vec<Record> = model.in_range(range).into_iter().cloned().collect();
        let mut scanned = Vec::new();
        let mut rest = Some(range);
        while let Some(part) = rest {
            let page_records = store.scan(part, *page).expect("scan");
            prop_assert!(page_records.len() <= *page);
            let full = page_records.len() == *page;
            rest = match page_records.last() {
                Some(last) if full => part.rest_after(last.key_id),
                _ => None,
            };
            scanned.extend(page_records);
        }
        prop_assert_eq!(&scanned, &expected, "{}: scan of {:?}", name, range);

        let node = node_of(*node);
        let digest = store.digest(range, node).expect("digest");
        let model_digest = model.digest(range, node);
        prop_assert_eq!(
            digest.count,
            model_digest.count,
            "{}: count {:?} {:?}",
            name,
            range,
            node
        );
        prop_assert_eq!(
            digest.sum,
            model_digest.sum,
            "{}: sum {:?} {:?}",
            name,
            range,
            node
        );
        let listed = store.list_versions(range, node).expect("list");
        prop_assert_eq!(
            listed,
            model.under(range, node),
            "{}: list {:?} {:?}",
            name,
            range,
            node
        );

        // The children's digests add up to their parent's.
        let mut children = BucketSum::default();
        for child in node.children() {
            let digest = store.digest(range, child).expect("child digest");
            children.merge(&BucketSum {
                count: digest.count,
                sum: digest.sum,
            });
        }
        if !node.is_bucket() {
            prop_assert_eq!(children, model_digest, "{}: children of {:?}", name, node);
        }
    }
    Ok(())
}

fn ranges() -> impl Strategy<Value = Vec<Query>> {
    proptest::collection::vec((end(), end(), tree_node(), 1usize..8), 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn memory_store_agrees_with_the_model(
        ops in proptest::collection::vec(op(), 0..120),
        ranges in ranges(),
    ) {
        check_against_model("memory", &MemoryStore::new(), &ops, &ranges)?;
    }
}

proptest! {
    // Each case opens a database on disk and fsyncs each batch: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn redb_store_agrees_with_the_model(
        ops in proptest::collection::vec(op(), 0..120),
        ranges in ranges(),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::open(dir.path(), StoreConfig::default()).expect("open");
        check_against_model("redb", &store, &ops, &ranges)?;
        // After a reopen the digests (kept per bucket on disk) and scans
        // still agree with a store that saw the same writes.
        drop(store);
        let store = RedbStore::open(dir.path(), StoreConfig::default()).expect("reopen");
        let memory = MemoryStore::new();
        for batch in ops.chunks(4) {
            memory.apply(batch.iter().map(Op::record).collect()).expect("apply");
        }
        for (after, through, node, _) in &ranges {
            let range = KeyRange::new(after.id(), through.id());
            let node = node_of(*node);
            let reopened = store.digest(range, node).expect("digest");
            prop_assert!(reopened.matches(&memory.digest(range, node).expect("digest")));
            prop_assert_eq!(store.scan(range, usize::MAX).expect("scan"), memory.scan(range, usize::MAX).expect("scan"));
        }
    }
}
