//! Anti-entropy's storage requests through `execute`, on both backends:
//! digests of several tree nodes at once, version lists of buckets, and
//! records read by the batch.

mod common;

use cairn_core::storage::{StorageOutcome, StorageRequest};
use cairn_store::{KeyRange, Record, TreeNode, execute};
use common::{backends, version};

#[test]
fn digests_and_version_lists_of_tree_nodes_answer_node_by_node() {
    let (_dir, stores) = backends();
    for (name, store) in stores {
        let records: Vec<Record> = (0..20)
            .map(|i| {
                Record::value(
                    format!("k{i}").as_bytes(),
                    version(10 + i, 1),
                    b"v".to_vec(),
                )
            })
            .collect();
        store.apply(records.clone()).expect("apply");
        let range = KeyRange::whole();
        let (a, b) = (records[0].key_id, records[1].key_id);
        let nodes = vec![
            TreeNode::root(),
            TreeNode::bucket_of(a),
            TreeNode::bucket_of(b),
        ];
        let expected: Vec<_> = nodes
            .iter()
            .map(|n| store.digest(range, *n).expect("digest"))
            .collect();
        assert_eq!(expected[0].count, 20, "{name}");
        assert_eq!(
            execute(
                store.as_ref(),
                StorageRequest::DigestNodes {
                    range,
                    nodes: nodes.clone()
                }
            ),
            StorageOutcome::Digests(expected),
            "{name}"
        );
        let buckets = vec![TreeNode::bucket_of(a), TreeNode::bucket_of(b)];
        let mut all = store.list_versions(range, buckets[0]).expect("list");
        all.extend(store.list_versions(range, buckets[1]).expect("list"));
        assert!(all.contains(&(a, records[0].version)), "{name}");
        let listed = |limit| {
            execute(
                store.as_ref(),
                StorageRequest::Versions {
                    range,
                    nodes: buckets.clone(),
                    limit,
                },
            )
        };
        assert_eq!(listed(100), StorageOutcome::Versions(all.clone()), "{name}");
        let absent = cairn_core::id::KeyId::of_key(b"absent");
        assert_eq!(
            execute(store.as_ref(), StorageRequest::GetMany(vec![b, absent, a])),
            StorageOutcome::Records(vec![records[1].clone(), records[0].clone()]),
            "{name}: the records there are, in the order asked"
        );
        assert_eq!(
            listed(1),
            StorageOutcome::Versions(all[..1].to_vec()),
            "{name}: cut at the limit"
        );
    }
}
