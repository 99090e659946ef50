//! Last writer wins, on both backends: an older version never replaces a
//! newer one; tombstones win over older values and lose to newer ones.

mod common;

use cairn_core::id::KeyId;
use cairn_store::{Applied, KeyRange, Record, Store, StoreError, StoreStats};
use common::{backends, version};

#[test]
fn an_older_version_never_replaces_a_newer_one() {
    let (_dir, stores) = backends();
    for (name, store) in stores {
        let newer = Record::value(b"k", version(20, 1), b"new".to_vec());
        let older = Record::value(b"k", version(10, 1), b"old".to_vec());
        assert_eq!(
            store.apply(vec![newer.clone()]).expect(name),
            vec![Applied::Stored]
        );
        assert_eq!(
            store.apply(vec![older]).expect(name),
            vec![Applied::Stale {
                stored: version(20, 1)
            }],
            "{name}"
        );
        assert_eq!(store.get(newer.key_id).expect(name), Some(newer), "{name}");
    }
}

#[test]
fn a_newer_version_replaces_an_older_one() {
    let (_dir, stores) = backends();
    for (name, store) in stores {
        store
            .apply(vec![Record::value(b"k", version(10, 1), b"old".to_vec())])
            .expect(name);
        let newer = Record::value(b"k", version(11, 1), b"new".to_vec());
        assert_eq!(
            store.apply(vec![newer.clone()]).expect(name),
            vec![Applied::Stored]
        );
        assert_eq!(store.get(newer.key_id).expect(name), Some(newer), "{name}");
    }
}

#[test]
fn equal_timestamps_are_decided_by_node_id_and_a_replay_is_stale() {
    let (_dir, stores) = backends();
    for (name, store) in stores {
        let low = Record::value(b"k", version(10, 1), b"low".to_vec());
        let high = Record::value(b"k", version(10, 2), b"high".to_vec());
        store.apply(vec![high.clone()]).expect(name);
        assert!(!store.apply(vec![low]).expect(name)[0].won(), "{name}");
        assert!(
            !store.apply(vec![high.clone()]).expect(name)[0].won(),
            "{name}"
        );
        assert_eq!(store.get(high.key_id).expect(name), Some(high), "{name}");
    }
}

#[test]
fn a_tombstone_wins_over_an_older_value_and_loses_to_a_newer_one() {
    let (_dir, stores) = backends();
    for (name, store) in stores {
        let key_id = KeyId::of_key(b"k");
        store
            .apply(vec![Record::value(b"k", version(10, 1), b"v".to_vec())])
            .expect(name);
        let tombstone = Record::tombstone(b"k", version(15, 1));
        assert_eq!(
            store.apply(vec![tombstone.clone()]).expect(name),
            vec![Applied::Stored]
        );
        assert_eq!(store.get(key_id).expect(name), Some(tombstone), "{name}");
        // An older value arriving late (replication) does not resurrect the key.
        let late = Record::value(b"k", version(12, 9), b"late".to_vec());
        assert!(!store.apply(vec![late]).expect(name)[0].won(), "{name}");
        assert!(store.get(key_id).expect(name).expect(name).is_tombstone());
        // A newer value does.
        let newer = Record::value(b"k", version(16, 1), b"back".to_vec());
        assert!(
            store.apply(vec![newer.clone()]).expect(name)[0].won(),
            "{name}"
        );
        assert_eq!(store.get(key_id).expect(name), Some(newer), "{name}");
    }
}

#[test]
fn a_tombstone_older_than_the_value_loses() {
    let (_dir, stores) = backends();
    for (name, store) in stores {
        let value = Record::value(b"k", version(20, 1), b"v".to_vec());
        store.apply(vec![value.clone()]).expect(name);
        let old_delete = Record::tombstone(b"k", version(19, 1));
        assert!(
            !store.apply(vec![old_delete]).expect(name)[0].won(),
            "{name}"
        );
        assert_eq!(store.get(value.key_id).expect(name), Some(value), "{name}");
    }
}

#[test]
fn one_batch_is_applied_in_order_and_says_which_records_won() {
    let (_dir, stores) = backends();
    for (name, store) in stores {
        let batch = vec![
            Record::value(b"a", version(5, 1), b"a5".to_vec()),
            Record::value(b"a", version(3, 1), b"a3".to_vec()),
            Record::value(b"b", version(1, 1), b"b1".to_vec()),
            Record::tombstone(b"a", version(6, 1)),
        ];
        let applied = store.apply(batch).expect(name);
        let won: Vec<bool> = applied.iter().map(|a| a.won()).collect();
        assert_eq!(won, vec![true, false, true, true], "{name}");
        assert!(
            store
                .get(KeyId::of_key(b"a"))
                .expect(name)
                .expect(name)
                .is_tombstone()
        );
        assert_eq!(
            store.stats().expect(name),
            StoreStats {
                values: 1,
                tombstones: 1,
                record_bytes: 1 + 1 + 2,
                chunks: 0,
                chunk_bytes: 0,
            },
            "{name}"
        );
    }
}

#[test]
fn bad_records_are_refused_whole_batch() {
    let (_dir, stores) = backends();
    for (name, store) in stores {
        let mut wrong_id = Record::value(b"k", version(1, 1), Vec::new());
        wrong_id.key_id = KeyId::of_key(b"other");
        let batch = vec![Record::value(b"ok", version(1, 1), Vec::new()), wrong_id];
        assert!(
            matches!(store.apply(batch), Err(StoreError::InvalidRecord { .. })),
            "{name}"
        );
        assert!(
            store.scan(KeyRange::whole(), 10).expect(name).is_empty(),
            "{name}"
        );
    }
}

#[test]
fn a_batch_over_the_byte_limit_is_refused_whole() {
    use cairn_store::store::MAX_BATCH_BYTES;
    // 65 values of 1 MiB: every record is valid, the batch is not. (4096 of
    // them would overflow the commit log frame's u32 length.)
    let value = vec![0x5a; 1 << 20];
    let batch: Vec<Record> = (0..=(MAX_BATCH_BYTES >> 20) as u64)
        .map(|i| Record::value(format!("k{i}").as_bytes(), version(1, 1), value.clone()))
        .collect();
    let (_dir, stores) = backends();
    for (name, store) in stores {
        let error = store.apply(batch.clone()).expect_err(name);
        assert!(
            matches!(error, StoreError::BatchBytesTooLarge { limit, .. } if limit == MAX_BATCH_BYTES),
            "{name}: {error}"
        );
        assert_eq!(store.stats().expect(name), StoreStats::default(), "{name}");
    }
}

#[test]
fn a_one_mib_value_is_stored_inline() {
    let (_dir, stores) = backends();
    for (name, store) in stores {
        let value = vec![0xa5; 1 << 20];
        let record = Record::value(b"big", version(1, 1), value);
        store.apply(vec![record.clone()]).expect(name);
        assert_eq!(
            store.get(record.key_id).expect(name),
            Some(record),
            "{name}"
        );
    }
}

#[test]
fn records_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let records: Vec<Record> = (0..50u64)
        .map(|i| {
            Record::value(
                format!("key {i}").as_bytes(),
                version(i + 1, 3),
                vec![i as u8; 64],
            )
        })
        .collect();
    {
        let store = cairn_store::RedbStore::open(dir.path(), Default::default()).expect("open");
        store.apply(records.clone()).expect("apply");
        store
            .apply(vec![Record::tombstone(b"key 7", version(100, 3))])
            .expect("delete");
    }
    let store = cairn_store::RedbStore::open(dir.path(), Default::default()).expect("reopen");
    for record in &records {
        let stored = store.get(record.key_id).expect("get").expect("present");
        if record.key == b"key 7" {
            assert!(stored.is_tombstone());
        } else {
            assert_eq!(&stored, record);
        }
    }
    let stats = store.stats().expect("stats");
    assert_eq!((stats.values, stats.tombstones), (49, 1));
}

#[test]
fn remove_takes_out_only_the_exact_version_and_keeps_digests_and_totals_right() {
    let (dir, stores) = backends();
    for (name, store) in stores {
        let gone = Record::value(b"gone", version(10, 1), b"v".to_vec());
        let moved_on = Record::value(b"newer", version(10, 1), b"v1".to_vec());
        let kept = Record::tombstone(b"kept", version(12, 1));
        store
            .apply(vec![gone.clone(), moved_on.clone(), kept.clone()])
            .expect(name);
        let empty_digest = {
            let only_kept = cairn_store::MemoryStore::new();
            only_kept.apply(vec![kept.clone()]).expect(name);
            only_kept
                .digest(KeyRange::whole(), cairn_store::TreeNode::root())
                .expect(name)
        };
        // A newer write of `newer` came after the remover read version 10.
        let newer = Record::value(b"newer", version(11, 1), b"v2".to_vec());
        store.apply(vec![newer.clone()]).expect(name);
        let removed = store
            .remove(vec![
                (gone.key_id, gone.version),
                (moved_on.key_id, moved_on.version),
                (KeyId::of_key(b"never"), version(1, 1)),
            ])
            .expect(name);
        assert_eq!(removed, vec![true, false, false], "{name}");
        assert_eq!(store.get(gone.key_id).expect(name), None, "{name}");
        assert_eq!(
            store.get(newer.key_id).expect(name),
            Some(newer.clone()),
            "{name}"
        );
        store
            .remove(vec![(newer.key_id, newer.version)])
            .expect(name);
        // Only the tombstone is left: digest and totals say so.
        assert!(
            store
                .digest(KeyRange::whole(), cairn_store::TreeNode::root())
                .expect(name)
                .matches(&empty_digest),
            "{name}: digest after removes"
        );
        let stats = store.stats().expect(name);
        assert_eq!((stats.values, stats.tombstones), (0, 1), "{name}");
        assert_eq!(stats.record_bytes, kept.stored_bytes(), "{name}");
    }
    drop(dir);
}

#[test]
fn removes_survive_a_reopen_through_the_commit_log() {
    let dir = tempfile::tempdir().unwrap();
    let record = Record::value(b"k", version(10, 1), b"v".to_vec());
    {
        let store = cairn_store::RedbStore::open(dir.path(), Default::default()).unwrap();
        store.apply(vec![record.clone()]).unwrap();
        assert_eq!(
            store.remove(vec![(record.key_id, record.version)]).unwrap(),
            vec![true]
        );
    }
    let store = cairn_store::RedbStore::open(dir.path(), Default::default()).unwrap();
    assert_eq!(store.get(record.key_id).unwrap(), None);
    assert_eq!(store.stats().unwrap().values, 0);
}
