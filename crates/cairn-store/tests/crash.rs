//! Crash tests: a child process (`cairn-store-crash-writer`) writes records
//! and chunks from several threads and prints each acknowledgement; we
//! SIGKILL it at seeded random moments, reopen the store, and check that
//! every acknowledged record and chunk is intact and that no partial chunk is
//! visible. The store is reused across rounds, so recovery after recovery is
//! tested too. Every other round checkpoints aggressively (every 1 ms or
//! 4 KiB of log), so that kills land in checkpoints and in replays of short
//! logs after them, not only in log appends. Set `CAIRN_CRASH_SEED` to
//! replay a run; a failure prints it.

use cairn_core::id::{ChunkId, Id, KeyId};
use cairn_core::rng::Rng;
use cairn_store::{Body, RedbStore, Store, StoreConfig};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ROUNDS: usize = 32;
/// Longest a child may take to print its first acknowledgement.
const FIRST_ACK_WITHIN: Duration = Duration::from_secs(20);

use cairn_store::fault::crash_test_value as value_for;

/// The newest acknowledged write of one key.
#[derive(Clone, Debug)]
struct Acked {
    physical: u64,
    node: u8,
    tombstone: bool,
    len: usize,
}

#[derive(Default)]
struct Acks {
    records: HashMap<String, Acked>,
    chunks: Vec<ChunkId>,
    /// Checkpoints the last writer reported.
    checkpoints: u64,
}

impl Acks {
    fn take(&mut self, line: &str) {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["R", key, physical, node, tombstone, len] => {
                let acked = Acked {
                    physical: physical.parse().expect("physical"),
                    node: node.parse().expect("node"),
                    tombstone: *tombstone == "1",
                    len: len.parse().expect("len"),
                };
                let newer = self
                    .records
                    .get(*key)
                    .is_none_or(|old| (acked.physical, acked.node) > (old.physical, old.node));
                if newer {
                    self.records.insert(key.to_string(), acked);
                }
            }
            ["C", hex] => self
                .chunks
                .push(ChunkId(Id::from_hex(hex).expect("chunk id"))),
            ["K", count] => self.checkpoints = count.parse().expect("checkpoints"),
            _ => panic!("unexpected line from the writer: {line:?}"),
        }
    }
}

fn seed() -> u64 {
    std::env::var("CAIRN_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_c4a5)
}

#[test]
fn acknowledged_writes_survive_sigkill_at_random_moments() {
    let seed = seed();
    eprintln!("crash test seed: {seed} (set CAIRN_CRASH_SEED to replay)");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acks = Acks::default();
    let started = Instant::now();
    let mut aggressive_checkpoints = 0;
    for round in 0..ROUNDS {
        let aggressive = round % 2 == 1;
        acks.checkpoints = 0;
        let lines = run_and_kill(dir.path(), rng.next_u64(), &mut rng, aggressive);
        let count = lines.len();
        for line in lines {
            acks.take(&line);
        }
        if aggressive {
            aggressive_checkpoints += acks.checkpoints;
        }
        check(dir.path(), &acks, seed, round);
        eprintln!(
            "round {round}: {count} acknowledgements, {} checkpoints{}, {} keys and {} chunks checked",
            acks.checkpoints,
            if aggressive { " (aggressive)" } else { "" },
            acks.records.len(),
            acks.chunks.len()
        );
    }
    assert!(acks.records.len() > 50, "too few writes to mean anything");
    assert!(!acks.chunks.is_empty(), "no chunk was acknowledged");
    // Not every short round reaches one, but together they must.
    assert!(
        aggressive_checkpoints >= 10,
        "only {aggressive_checkpoints} checkpoints in the aggressive rounds: kills never hit one"
    );
    eprintln!("{ROUNDS} kills in {:?}", started.elapsed());
}

/// Starts the writer, kills it with SIGKILL a random time after its first
/// acknowledgement, and returns every acknowledgement it printed.
fn run_and_kill(dir: &Path, child_seed: u64, rng: &mut Rng, aggressive: bool) -> Vec<String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cairn-store-crash-writer"));
    if aggressive {
        command
            .env("CAIRN_CRASH_CHECKPOINT_MS", "1")
            .env("CAIRN_CRASH_CHECKPOINT_BYTES", "4096");
    }
    let mut child = command
        .arg(dir)
        .arg(child_seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the crash writer");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(line) => {
                    if lines_tx.send(line).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    let mut lines = Vec::new();
    match lines_rx.recv_timeout(FIRST_ACK_WITHIN) {
        Ok(line) => lines.push(line),
        Err(_) => {
            let _ = child.kill();
            panic!("the writer acknowledged nothing within {FIRST_ACK_WITHIN:?}");
        }
    }
    // Anywhere from at once to 200 ms in: mid-commit, mid-chunk, mid-rename.
    std::thread::sleep(Duration::from_micros(rng.next_u64() % 200_000));
    child.kill().expect("SIGKILL the writer");
    let status = child.wait().expect("wait for the writer");
    assert!(!status.success(), "the writer should have been killed");
    reader.join().expect("reader thread");
    lines.extend(lines_rx.try_iter());
    lines
}

/// Reopens the store and checks every acknowledgement so far.
fn check(dir: &Path, acks: &Acks, seed: u64, round: usize) {
    let context = format!("seed {seed}, round {round}");
    let store = RedbStore::open(dir, StoreConfig::default())
        .unwrap_or_else(|error| panic!("{context}: reopen failed: {error}"));
    for (key, acked) in &acks.records {
        let record = store
            .get(KeyId::of_key(key.as_bytes()))
            .unwrap_or_else(|error| panic!("{context}: get {key}: {error}"))
            .unwrap_or_else(|| panic!("{context}: acknowledged key {key} is missing"));
        let stored = (
            record.version.timestamp.physical_ms,
            record.version.node.0.0[0],
        );
        assert!(
            stored >= (acked.physical, acked.node),
            "{context}: {key} went back from {acked:?} to {:?}",
            record.version
        );
        if stored == (acked.physical, acked.node) {
            let expected = if acked.tombstone {
                Body::Tombstone
            } else {
                Body::Value(value_for(key, acked.physical, acked.len))
            };
            assert_eq!(record.body, expected, "{context}: {key} has other bytes");
        }
    }
    for id in &acks.chunks {
        assert!(
            store.has_chunk(*id).expect("has_chunk"),
            "{context}: chunk {id} is not in the index"
        );
        let bytes = store
            .get_chunk(*id)
            .unwrap_or_else(|error| panic!("{context}: chunk {id}: {error}"))
            .unwrap_or_else(|| panic!("{context}: acknowledged chunk {id} is missing"));
        assert_eq!(ChunkId::of_bytes(&bytes), *id);
    }
    // No partial chunk is visible: every file left under chunks/ is complete
    // and named by its hash (open swept temporary files away).
    for fan_out in std::fs::read_dir(dir.join("chunks")).expect("chunks dir") {
        let fan_out = fan_out.expect("entry").path();
        for file in std::fs::read_dir(&fan_out).expect("fan-out dir") {
            let path = file.expect("entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let id = Id::from_hex(name)
                .unwrap_or_else(|_| panic!("{context}: stray file {}", path.display()));
            let bytes = std::fs::read(&path).expect("read chunk file");
            assert_eq!(
                ChunkId::of_bytes(&bytes),
                ChunkId(id),
                "{context}: partial chunk file {}",
                path.display()
            );
            assert!(store.has_chunk(ChunkId(id)).expect("has_chunk"));
        }
    }
    let stats = store.stats().expect("stats");
    assert_eq!(
        stats.chunks,
        store.list_chunks(None, usize::MAX).expect("list").len() as u64,
        "{context}: chunk count"
    );
}
