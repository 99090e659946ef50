//! Injected write and fsync failures: the writer gets an error, nothing of
//! the failed write is acknowledged, the store stays readable, and a reopen
//! finds every acknowledged write.

mod common;

use cairn_core::id::KeyId;
use cairn_store::{FaultPlan, Record, RedbStore, Store, StoreConfig, StoreError};
use common::version;
use std::path::Path;

fn records(from: u64, count: u64) -> Vec<Record> {
    (from..from + count)
        .map(|i| {
            Record::value(
                format!("key {i}").as_bytes(),
                version(i + 1, 1),
                vec![i as u8; 100],
            )
        })
        .collect()
}

fn assert_all_present(store: &dyn Store, acknowledged: &[Record]) {
    for record in acknowledged {
        assert_eq!(
            store.get(record.key_id).expect("get").as_ref(),
            Some(record),
            "acknowledged record lost"
        );
    }
}

fn open_faulty(dir: &Path) -> (RedbStore, std::sync::Arc<FaultPlan>) {
    let plan = FaultPlan::new();
    let store =
        RedbStore::open_with_faults(dir, StoreConfig::default(), plan.clone()).expect("open");
    (store, plan)
}

#[test]
fn a_failed_fsync_fails_the_write_and_leaves_the_store_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, plan) = open_faulty(dir.path());
    let acknowledged = records(0, 20);
    store.apply(acknowledged.clone()).expect("apply");

    plan.fail_syncs(true);
    let error = store.apply(records(100, 5)).expect_err("fsync fails");
    assert!(matches!(error, StoreError::CommitFailed { .. }), "{error}");
    assert!(plan.injected() > 0);

    // Reads go on; later writes are refused until the store is reopened.
    assert_all_present(&store, &acknowledged);
    plan.clear();
    let error = store.apply(records(200, 1)).expect_err("writes stopped");
    assert!(matches!(error, StoreError::WritesStopped { .. }), "{error}");
    assert_all_present(&store, &acknowledged);

    drop(store);
    let store = RedbStore::open(dir.path(), StoreConfig::default()).expect("reopen");
    assert_all_present(&store, &acknowledged);
    store
        .apply(records(300, 3))
        .expect("writes work after a reopen");
}

#[test]
fn failing_and_torn_writes_never_lose_acknowledged_records() {
    for tear in [false, true] {
        for allowance in [0u64, 1, 2, 3, 5, 8, 13] {
            let dir = tempfile::tempdir().expect("tempdir");
            let (store, plan) = open_faulty(dir.path());
            let mut acknowledged = Vec::new();
            plan.fail_after_writes(allowance, tear);
            let mut failed = false;
            for round in 0..20u64 {
                let batch = records(round * 10, 10);
                match store.apply(batch.clone()) {
                    Ok(_) => acknowledged.extend(batch),
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            assert!(failed, "allowance {allowance}: no write failed");
            assert_all_present(&store, &acknowledged);
            drop(store);
            let store = RedbStore::open(dir.path(), StoreConfig::default())
                .unwrap_or_else(|error| panic!("allowance {allowance}, tear {tear}: {error}"));
            assert_all_present(&store, &acknowledged);
            store
                .apply(records(1000, 2))
                .expect("writes work after a reopen");
        }
    }
}

#[test]
fn a_failed_chunk_write_is_an_error_and_leaves_no_chunk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, plan) = open_faulty(dir.path());
    let kept = store.put_chunk(b"kept chunk", 1).expect("put");
    let bytes = vec![9u8; 200_000];
    let id = cairn_core::id::ChunkId::of_bytes(&bytes);

    plan.fail_syncs(true);
    assert!(matches!(
        store.put_chunk(&bytes, 2),
        Err(StoreError::ChunkIo { .. })
    ));
    plan.clear();
    plan.fail_after_writes(0, true);
    assert!(store.put_chunk(&bytes, 2).is_err());
    plan.clear();

    assert!(!store.has_chunk(id).expect("has"));
    assert_eq!(store.get_chunk(id).expect("get"), None);
    assert_eq!(
        store.get_chunk(kept).expect("get").as_deref(),
        Some(&b"kept chunk"[..])
    );
    // A chunk file failure does not stop the store: it was never committed.
    let id_after = store.put_chunk(&bytes, 3).expect("put after the fault");
    assert_eq!(id_after, id);
    store
        .apply(vec![Record::value(b"k", version(1, 1), b"v".to_vec())])
        .expect("records still written");
    assert!(store.get(KeyId::of_key(b"k")).expect("get").is_some());
}
