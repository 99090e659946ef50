//! The chunk store through the `Store` trait: has / put / get / delete /
//! list, last-referenced times, a flipped byte detected on read, and the
//! agreement of chunk files and index after a reopen.

mod common;

use cairn_core::id::ChunkId;
use cairn_store::store::MAX_CHUNK_LEN;
use cairn_store::{ChunkInfo, RedbStore, Store, StoreConfig, StoreError};
use common::backends;
use std::fs;

fn chunk_path(dir: &std::path::Path, id: ChunkId) -> std::path::PathBuf {
    let hex = id.0.to_hex();
    dir.join("chunks").join(&hex[..2]).join(hex)
}

#[test]
fn put_get_has_delete_and_list() {
    let (_dir, stores) = backends();
    for (name, store) in stores {
        let a = store.put_chunk(b"chunk a", 100).expect(name);
        let b = store.put_chunk(&vec![1u8; 1 << 20], 200).expect(name);
        assert_eq!(a, ChunkId::of_bytes(b"chunk a"));
        assert!(store.has_chunk(a).expect(name) && store.has_chunk(b).expect(name));
        assert_eq!(
            store.get_chunk(a).expect(name).as_deref(),
            Some(&b"chunk a"[..])
        );
        assert_eq!(
            store.get_chunk(b).expect(name).map(|v| v.len()),
            Some(1 << 20)
        );

        let mut expected = vec![
            ChunkInfo {
                id: a,
                len: 7,
                last_referenced_ms: 100,
            },
            ChunkInfo {
                id: b,
                len: 1 << 20,
                last_referenced_ms: 200,
            },
        ];
        expected.sort_by_key(|info| info.id);
        assert_eq!(store.list_chunks(None, 10).expect(name), expected, "{name}");
        assert_eq!(
            store.list_chunks(Some(expected[0].id), 10).expect(name),
            expected[1..]
        );
        assert_eq!(store.list_chunks(None, 1).expect(name), expected[..1]);
        let stats = store.stats().expect(name);
        assert_eq!(
            (stats.chunks, stats.chunk_bytes),
            (2, 7 + (1 << 20)),
            "{name}"
        );

        assert!(store.delete_chunk(a).expect(name));
        assert!(!store.delete_chunk(a).expect(name));
        assert!(!store.has_chunk(a).expect(name));
        assert_eq!(store.get_chunk(a).expect(name), None);
        assert_eq!(store.stats().expect(name).chunks, 1, "{name}");
    }
}

#[test]
fn last_referenced_only_moves_forward() {
    let (_dir, stores) = backends();
    for (name, store) in stores {
        let id = store.put_chunk(b"c", 500).expect(name);
        assert!(store.touch_chunk(id, 400).expect(name));
        assert_eq!(
            store.list_chunks(None, 1).expect(name)[0].last_referenced_ms,
            500
        );
        assert!(store.touch_chunk(id, 900).expect(name));
        assert_eq!(
            store.list_chunks(None, 1).expect(name)[0].last_referenced_ms,
            900
        );
        // Putting it again counts as a reference.
        store.put_chunk(b"c", 1000).expect(name);
        assert_eq!(
            store.list_chunks(None, 1).expect(name)[0].last_referenced_ms,
            1000
        );
        let absent = ChunkId::of_bytes(b"never stored");
        assert!(!store.touch_chunk(absent, 1).expect(name), "{name}");
    }
}

#[test]
fn an_oversized_chunk_is_refused() {
    let (_dir, stores) = backends();
    for (name, store) in stores {
        let result = store.put_chunk(&vec![0; MAX_CHUNK_LEN + 1], 0);
        assert!(
            matches!(result, Err(StoreError::ChunkTooLarge { .. })),
            "{name}"
        );
    }
}

#[test]
fn a_flipped_byte_is_detected_on_read_and_the_chunk_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(dir.path(), StoreConfig::default()).expect("open");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let id = store.put_chunk(&bytes, 1).expect("put");
    let path = chunk_path(dir.path(), id);
    let mut on_disk = fs::read(&path).expect("read file");
    on_disk[123_456] ^= 0x20;
    fs::write(&path, &on_disk).expect("flip a byte");

    let error = store
        .get_chunk(id)
        .expect_err("must not return damaged bytes");
    assert!(
        matches!(error, StoreError::CorruptChunk { id: bad } if bad == id),
        "{error}"
    );
    assert!(error.to_string().contains(&id.0.to_hex()));
    assert!(!path.exists(), "the damaged file is deleted");
    assert!(!store.has_chunk(id).expect("has"));
    assert_eq!(store.get_chunk(id).expect("get"), None);
    assert_eq!(store.stats().expect("stats").chunks, 0);
    // Fetched again from a replica, it is stored again.
    assert_eq!(store.put_chunk(&bytes, 2).expect("put again"), id);
    assert_eq!(
        store.get_chunk(id).expect("get").as_deref(),
        Some(&bytes[..])
    );
}

#[test]
fn a_truncated_chunk_file_is_detected_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(dir.path(), StoreConfig::default()).expect("open");
    let id = store.put_chunk(&[5u8; 10_000], 1).expect("put");
    let path = chunk_path(dir.path(), id);
    fs::write(&path, [5u8; 4_096]).expect("truncate");
    assert!(matches!(
        store.get_chunk(id),
        Err(StoreError::CorruptChunk { .. })
    ));
    // A put of the same bytes repairs it even though the index had it.
    store.put_chunk(&[5u8; 10_000], 2).expect("put");
    assert_eq!(
        store.get_chunk(id).expect("get").map(|b| b.len()),
        Some(10_000)
    );
}

#[test]
fn reopen_removes_unindexed_files_and_entries_without_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (kept, lost) = {
        let store = RedbStore::open(dir.path(), StoreConfig::default()).expect("open");
        let kept = store.put_chunk(b"kept", 1).expect("put");
        let lost = store.put_chunk(b"lost", 1).expect("put");
        (kept, lost)
    };
    // An unacknowledged put (file renamed, index not committed), and a file
    // lost to outside damage.
    let orphan = ChunkId::of_bytes(b"orphan");
    fs::write(chunk_path(dir.path(), orphan), b"orphan").expect("orphan");
    fs::remove_file(chunk_path(dir.path(), lost)).expect("lose a file");

    let store = RedbStore::open(dir.path(), StoreConfig::default()).expect("reopen");
    assert!(!chunk_path(dir.path(), orphan).exists());
    assert!(!store.has_chunk(orphan).expect("has"));
    assert!(!store.has_chunk(lost).expect("has"));
    assert!(store.has_chunk(kept).expect("has"));
    let stats = store.stats().expect("stats");
    assert_eq!((stats.chunks, stats.chunk_bytes), (1, 4));
}

#[test]
fn chunks_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = vec![42u8; 1 << 20];
    let id = {
        let store = RedbStore::open(dir.path(), StoreConfig::default()).expect("open");
        store.put_chunk(&bytes, 7).expect("put")
    };
    let store = RedbStore::open(dir.path(), StoreConfig::default()).expect("reopen");
    assert_eq!(store.get_chunk(id).expect("get"), Some(bytes));
    assert_eq!(
        store.list_chunks(None, 10).expect("list")[0].last_referenced_ms,
        7
    );
}

/// Index and file agree: the index holds the chunk exactly when a file with
/// the right bytes is there, and `get_chunk` says the same as `has_chunk`.
fn assert_index_and_file_agree(
    store: &RedbStore,
    dir: &std::path::Path,
    id: ChunkId,
    context: &str,
) {
    let indexed = store.has_chunk(id).expect("has");
    let on_disk = fs::read(chunk_path(dir, id))
        .ok()
        .is_some_and(|bytes| ChunkId::of_bytes(&bytes) == id);
    assert_eq!(
        indexed, on_disk,
        "{context}: index {indexed}, file {on_disk}"
    );
    let read = store.get_chunk(id).expect("get");
    assert_eq!(read.is_some(), indexed, "{context}: get_chunk disagrees");
}

/// Starts a thread that puts `bytes` the moment the caller also proceeds
/// (both pass one barrier), so that the put races whatever the caller does next.
fn put_when_released(
    store: &std::sync::Arc<RedbStore>,
    bytes: &[u8],
    round: u64,
) -> std::thread::JoinHandle<ChunkId> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let putter = {
        let (store, barrier, bytes) = (store.clone(), barrier.clone(), bytes.to_vec());
        std::thread::spawn(move || {
            barrier.wait();
            store.put_chunk(&bytes, round).expect("put")
        })
    };
    barrier.wait();
    putter
}

#[test]
fn concurrent_put_and_delete_of_one_chunk_keep_index_and_file_in_agreement() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        std::sync::Arc::new(RedbStore::open(dir.path(), StoreConfig::default()).expect("open"));
    let bytes = vec![3u8; 4096];
    let id = ChunkId::of_bytes(&bytes);
    for round in 0..150 {
        let putter = put_when_released(&store, &bytes, round);
        store.delete_chunk(id).expect("delete");
        putter.join().expect("putter");
        assert_index_and_file_agree(&store, dir.path(), id, &format!("round {round}"));
    }
}

#[test]
fn a_repairing_put_racing_a_corrupt_read_leaves_the_chunk_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        std::sync::Arc::new(RedbStore::open(dir.path(), StoreConfig::default()).expect("open"));
    let bytes = vec![4u8; 4096];
    let id = store.put_chunk(&bytes, 0).expect("put");
    for round in 0..150 {
        // Damage the file (shorter, so that the put sees it needs a rewrite).
        fs::write(chunk_path(dir.path(), id), [4u8; 100]).expect("damage");
        let putter = put_when_released(&store, &bytes, round);
        match store.get_chunk(id) {
            Ok(Some(read)) => assert_eq!(read, bytes),
            Ok(None) | Err(StoreError::CorruptChunk { .. }) => {}
            Err(error) => panic!("round {round}: {error}"),
        }
        putter.join().expect("putter");
        // Whichever came first, the put came last or repaired the file
        // before the read: the chunk is held, with the right bytes.
        assert!(
            store.has_chunk(id).expect("has"),
            "round {round}: not indexed"
        );
        assert_eq!(
            store.get_chunk(id).expect("get").as_deref(),
            Some(&bytes[..]),
            "round {round}: acknowledged put lost"
        );
    }
}

#[test]
fn a_chunk_whose_index_commit_failed_is_not_returned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = cairn_store::FaultPlan::new();
    let store = RedbStore::open_with_faults(dir.path(), StoreConfig::default(), plan.clone())
        .expect("open");
    let bytes = vec![6u8; 10_000];
    let id = ChunkId::of_bytes(&bytes);
    // The chunk file's write goes through; the commit log's append of the
    // AddChunk fails: the file is in place, the index never got the chunk.
    plan.fail_after_writes(1, false);
    let error = store
        .put_chunk(&bytes, 1)
        .expect_err("the index commit fails");
    assert!(matches!(error, StoreError::CommitFailed { .. }), "{error}");
    plan.clear();
    assert!(
        chunk_path(dir.path(), id).exists(),
        "the file was renamed into place"
    );
    assert!(!store.has_chunk(id).expect("has"));
    assert_eq!(
        store.get_chunk(id).expect("get").map(|bytes| bytes.len()),
        None,
        "an unacknowledged chunk was returned"
    );
}

#[test]
fn a_put_repairs_a_same_length_damaged_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(dir.path(), StoreConfig::default()).expect("open");
    let bytes = vec![7u8; 10_000];
    let id = store.put_chunk(&bytes, 1).expect("put");
    fs::write(chunk_path(dir.path(), id), vec![8u8; 10_000]).expect("damage, same length");
    store.put_chunk(&bytes, 2).expect("repairing put");
    assert_eq!(
        store
            .get_chunk(id)
            .expect("the put repaired the file")
            .as_deref(),
        Some(&bytes[..])
    );
}
