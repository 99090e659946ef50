//! Injected write and fsync failures: the writer gets an error, nothing of
//! the failed write is acknowledged, the store stays readable, and a reopen
//! finds every acknowledged write.

mod common;

use cairn_core::id::KeyId;
use cairn_store::{CommitConfig, FaultPlan, Record, RedbStore, Store, StoreConfig, StoreError};
use common::version;
use std::path::Path;
use std::time::{Duration, Instant};

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

fn open_with(dir: &Path, commit: CommitConfig) -> (RedbStore, std::sync::Arc<FaultPlan>) {
    let plan = FaultPlan::new();
    let config = StoreConfig {
        commit,
        ..StoreConfig::default()
    };
    let store = RedbStore::open_with_faults(dir, config, plan.clone()).expect("open");
    (store, plan)
}

/// Waits until the plan has injected a fault, or panics after 10 s.
fn wait_for_injection(plan: &FaultPlan) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while plan.injected() == 0 {
        assert!(Instant::now() < deadline, "no fault was injected");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_failed_checkpoint_stops_writes_and_loses_nothing_acknowledged() {
    // Failing fsyncs, then torn writes, hit the checkpoint: the batch itself
    // is durable in the log before the fault is switched on, and the
    // checkpoint is due by time only (300 ms after the committer started).
    for tear in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, plan) = open_with(
            dir.path(),
            CommitConfig {
                checkpoint_interval: Duration::from_millis(300),
                ..CommitConfig::default()
            },
        );
        let acknowledged = records(0, 20);
        store.apply(acknowledged.clone()).expect("apply");
        assert_eq!(
            store.commit_counters().checkpoints,
            0,
            "the checkpoint came before the fault could be set up"
        );
        if tear {
            plan.fail_after_writes(0, true);
        } else {
            plan.fail_syncs(true);
        }
        wait_for_injection(&plan);
        let error = store.apply(records(100, 5)).expect_err("writes stopped");
        assert!(
            matches!(error, StoreError::WritesStopped { .. }),
            "tear {tear}: {error}"
        );
        assert_eq!(store.commit_counters().checkpoints, 0, "tear {tear}");
        assert_all_present(&store, &acknowledged);
        plan.clear();
        drop(store);

        // The log was not emptied: a reopen replays it into redb.
        let store = RedbStore::open(dir.path(), StoreConfig::default())
            .unwrap_or_else(|error| panic!("tear {tear}: reopen: {error}"));
        assert_all_present(&store, &acknowledged);
        for record in records(100, 5) {
            assert_eq!(store.get(record.key_id).expect("get"), None, "tear {tear}");
        }
        store
            .apply(records(300, 3))
            .expect("writes work after a reopen");
    }
}

#[test]
fn a_failed_batch_fails_only_its_own_writers_and_stops_the_queued_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, plan) = open_with(
        dir.path(),
        CommitConfig {
            max_batch_records: 4,
            checkpoint_interval: Duration::from_secs(3600),
            ..CommitConfig::default()
        },
    );
    let store = std::sync::Arc::new(store);
    // A slow disk: writer A's batch sits in its fsync for 500 ms, during
    // which eight more writers queue. Their first batch (4, the batch limit)
    // fails at its log write; the next four must not be committed or told
    // CommitFailed, but WritesStopped.
    plan.delay_syncs(Duration::from_millis(500));
    let first = records(0, 1);
    let a = {
        let (store, batch) = (store.clone(), first.clone());
        std::thread::spawn(move || store.apply(batch))
    };
    // A's log write happens within a few ms of its call; then fail writes.
    std::thread::sleep(Duration::from_millis(150));
    plan.fail_after_writes(0, false);
    let queued: Vec<_> = (0..8u64)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || store.apply(records(100 + i, 1)))
        })
        .collect();
    assert!(a.join().expect("writer A").is_ok(), "A's batch was durable");
    let (mut failed, mut stopped) = (0, 0);
    for writer in queued {
        match writer.join().expect("writer") {
            Err(StoreError::CommitFailed { .. }) => failed += 1,
            Err(StoreError::WritesStopped { .. }) => stopped += 1,
            other => panic!("a queued writer got {other:?}"),
        }
    }
    assert_eq!(
        (failed, stopped),
        (4, 4),
        "CommitFailed must go to exactly one batch"
    );
    plan.clear();
    plan.delay_syncs(Duration::ZERO);
    drop(store);
    let store = RedbStore::open(dir.path(), StoreConfig::default()).expect("reopen");
    assert_all_present(&store, &first);
}
