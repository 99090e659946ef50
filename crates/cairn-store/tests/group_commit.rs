//! Group commit: concurrent writers share transactions (and fsyncs), each
//! gets its own answer, and every acknowledged record is stored.

mod common;

use cairn_store::{Record, RedbStore, Store, StoreConfig};
use common::version;
use std::sync::Arc;

#[test]
fn concurrent_writers_share_commits_and_each_gets_its_own_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(RedbStore::open(dir.path(), StoreConfig::default()).expect("open"));
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
    assert!(
        counters.commits < operations,
        "no batching: {} commits for {} operations",
        counters.commits,
        operations
    );
    eprintln!("{operations} operations in {} commits", counters.commits);
}
