//! Group commit: concurrent writers share transactions (and fsyncs), each
//! gets its own answer, and every acknowledged record is stored.

mod common;

use cairn_store::{FaultPlan, Record, RedbStore, Store, StoreConfig};
use common::version;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn concurrent_writers_share_commits_and_each_gets_its_own_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A slow disk (5 ms per fsync) with the default config: while one batch
    // is at the disk, every other writer has long since queued its next
    // operation, so batching does not depend on how fast this machine is.
    let plan = FaultPlan::new();
    plan.delay_syncs(Duration::from_millis(5));
    let store = Arc::new(
        RedbStore::open_with_faults(dir.path(), StoreConfig::default(), plan).expect("open"),
    );
    const WRITERS: u8 = 16;
    const PUTS: u64 = 40;
    let threads: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut written = Vec::new();
                for i in 0..PUTS {
                    let key = format!("w{writer}-{i}");
                    // Every other put is a stale rewrite of the previous key,
                    // so that answers differ between writers of one batch.
                    let record =
                        Record::value(key.as_bytes(), version(i + 10, writer), vec![writer; 64]);
                    let applied = store.apply(vec![record.clone()]).expect("apply");
                    assert!(applied[0].won());
                    let stale = Record::value(key.as_bytes(), version(i, writer), vec![0; 64]);
                    assert!(!store.apply(vec![stale]).expect("apply")[0].won());
                    written.push(record);
                }
                written
            })
        })
        .collect();
    let mut written = Vec::new();
    for thread in threads {
        written.extend(thread.join().expect("writer"));
    }
    for record in &written {
        assert_eq!(
            store.get(record.key_id).expect("get").as_ref(),
            Some(record)
        );
    }
    let counters = store.commit_counters();
    let operations = u64::from(WRITERS) * PUTS * 2;
    assert_eq!(counters.operations, operations);
    // 16 writers, one operation in flight each: close to 16 per commit in
    // practice; 4 leaves room for a loaded machine and still fails if jobs
    // were committed one or two at a time.
    let mean = operations as f64 / counters.commits as f64;
    assert!(
        mean >= 4.0,
        "too little batching: {} commits for {operations} operations ({mean:.1} per commit)",
        counters.commits
    );
    eprintln!(
        "{operations} operations in {} commits ({mean:.1} per commit)",
        counters.commits
    );
}

#[test]
fn writes_handed_over_without_waiting_share_commits_and_are_reported_once_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = FaultPlan::new();
    plan.delay_syncs(Duration::from_millis(5));
    let store =
        RedbStore::open_with_faults(dir.path(), StoreConfig::default(), plan).expect("open");
    let (done, outcomes) = std::sync::mpsc::channel();
    const WRITES: u64 = 200;
    // One thread hands every write over at once: none waits for another.
    for i in 0..WRITES {
        let record = Record::value(format!("k{i}").as_bytes(), version(i + 1, 1), vec![1; 64]);
        let done = done.clone();
        store.apply_then(
            vec![record.clone()],
            Box::new(move |outcome| {
                let _ = done.send((record, outcome));
            }),
        );
    }
    let stale = Record::value(b"k0", version(0, 1), vec![0; 64]);
    let removal = (stale.key_id, version(1, 1));
    let (removed, removed_outcome) = std::sync::mpsc::channel();
    store.remove_then(
        vec![removal],
        Box::new(move |outcome| {
            let _ = removed.send(outcome);
        }),
    );
    for _ in 0..WRITES {
        let (record, outcome) = outcomes
            .recv_timeout(Duration::from_secs(30))
            .expect("every write is reported");
        assert!(outcome.expect("stored")[0].won());
        // Reported only once durable, and visible then (but k0, which the
        // removal queued behind it may have taken out already).
        if record.key_id != stale.key_id {
            assert_eq!(store.get(record.key_id).expect("get"), Some(record));
        }
    }
    // The removal was queued after the write of k0, so it found that version.
    assert_eq!(
        removed_outcome
            .recv_timeout(Duration::from_secs(30))
            .expect("the removal is reported")
            .expect("removed"),
        vec![true]
    );
    assert!(store.get(stale.key_id).expect("get").is_none());
    let counters = store.commit_counters();
    assert_eq!(counters.operations, WRITES + 1);
    assert!(
        counters.commits * 4 <= counters.operations,
        "writes handed over at once were committed {} at a time",
        counters.operations as f64 / counters.commits as f64
    );
}

#[test]
fn a_write_handed_over_to_a_failing_store_is_reported_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = FaultPlan::new();
    let store = RedbStore::open_with_faults(dir.path(), StoreConfig::default(), plan.clone())
        .expect("open");
    plan.fail_syncs(true);
    let (done, outcome) = std::sync::mpsc::channel();
    store.apply_then(
        vec![Record::value(b"k", version(1, 1), vec![1; 8])],
        Box::new(move |result| {
            let _ = done.send(result);
        }),
    );
    let result = outcome
        .recv_timeout(Duration::from_secs(30))
        .expect("the failure is reported");
    assert!(
        result.is_err(),
        "a write whose fsync failed was acknowledged"
    );
}
