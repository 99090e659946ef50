//! The child process of the crash tests (`tests/crash.rs`): opens a store,
//! writes records and chunks from several threads as fast as it can, and
//! prints one line per acknowledged write, until it is killed (or, as a
//! safety net, after 20 seconds).
//!
//! Usage: `cairn-store-crash-writer DATA_DIR SEED`
//!
//! Environment, to make kills land in checkpoints too (the defaults, 2 s or
//! 64 MiB, are rarely reached before the kill):
//! - `CAIRN_CRASH_CHECKPOINT_MS`: the commit config's `checkpoint_interval`;
//! - `CAIRN_CRASH_CHECKPOINT_BYTES`: its `checkpoint_log_bytes`.
//!
//! Lines on stdout, each printed only after the store acknowledged the write:
//! - `R <key> <physical> <node> <tombstone 0|1> <value length>`: a record
//!   that won (its value is [`value_for`] of key, physical and length);
//! - `C <64 hex>`: a chunk;
//! - `K <count>`: checkpoints completed so far (printed when it grows).

use cairn_core::id::{Id, NodeId};
use cairn_core::rng::Rng;
use cairn_core::version::{HlcTimestamp, Version};
use cairn_store::{CommitConfig, Record, RedbStore, Store, StoreConfig};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const WRITERS: u64 = 4;
const KEYS: u64 = 200;
const RUN_AT_MOST: Duration = Duration::from_secs(20);

use cairn_store::fault::crash_test_value as value_for;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(seed)) = (args.next(), args.next()) else {
        eprintln!("usage: cairn-store-crash-writer DATA_DIR SEED");
        std::process::exit(2);
    };
    let Ok(seed) = seed.parse::<u64>() else {
        eprintln!("SEED must be a number");
        std::process::exit(2);
    };
    let mut commit = CommitConfig::default();
    if let Some(ms) = env_number("CAIRN_CRASH_CHECKPOINT_MS") {
        commit.checkpoint_interval = Duration::from_millis(ms);
    }
    if let Some(bytes) = env_number("CAIRN_CRASH_CHECKPOINT_BYTES") {
        commit.checkpoint_log_bytes = bytes;
    }
    let config = StoreConfig {
        commit,
        ..StoreConfig::default()
    };
    let store = match RedbStore::open(&PathBuf::from(dir), config) {
        Ok(store) => Arc::new(store),
        Err(error) => {
            eprintln!("cannot open the store: {error}");
            std::process::exit(1);
        }
    };
    // Versions grow across runs: microseconds since the epoch, then a counter.
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let clock = Arc::new(AtomicU64::new(start));
    let deadline = Instant::now() + RUN_AT_MOST;
    let threads: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            let clock = clock.clone();
            std::thread::spawn(move || {
                write(
                    &*store,
                    &clock,
                    Rng::new(seed ^ (writer << 32)),
                    writer,
                    deadline,
                )
            })
        })
        .collect();
    {
        let store = store.clone();
        std::thread::spawn(move || {
            let mut reported = 0;
            while Instant::now() < deadline {
                let checkpoints = store.commit_counters().checkpoints;
                if checkpoints > reported {
                    reported = checkpoints;
                    acknowledge(&[format!("K {checkpoints}")]);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
    }
    for thread in threads {
        let _ = thread.join();
    }
}

/// A number from the environment; exits if it is set but not a number.
fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.parse() {
        Ok(number) => Some(number),
        Err(_) => {
            eprintln!("{name} must be a number, not {value:?}");
            std::process::exit(2);
        }
    }
}

fn write(store: &dyn Store, clock: &AtomicU64, mut rng: Rng, writer: u64, deadline: Instant) {
    let node = NodeId(Id([writer as u8 + 1; 32]));
    while Instant::now() < deadline {
        if rng.next_u64() % 10 < 7 {
            let count = 1 + rng.next_u64() % 3;
            let mut lines = Vec::new();
            let records: Vec<Record> = (0..count)
                .map(|_| {
                    let key = format!("key-{}", rng.next_u64() % KEYS);
                    let physical = clock.fetch_add(1, Ordering::SeqCst);
                    let version = Version::new(
                        HlcTimestamp {
                            physical_ms: physical,
                            logical: 0,
                        },
                        node,
                    );
                    let tombstone = rng.next_u64().is_multiple_of(10);
                    let len = (rng.next_u64() % 2048) as usize;
                    lines.push(format!(
                        "R {key} {physical} {} {} {len}",
                        writer + 1,
                        u8::from(tombstone)
                    ));
                    if tombstone {
                        Record::tombstone(key.as_bytes(), version)
                    } else {
                        Record::value(key.as_bytes(), version, value_for(&key, physical, len))
                    }
                })
                .collect();
            match store.apply(records) {
                Ok(applied) => {
                    let won: Vec<String> = lines
                        .into_iter()
                        .zip(applied)
                        .filter(|(_, applied)| applied.won())
                        .map(|(line, _)| line)
                        .collect();
                    acknowledge(&won);
                }
                Err(error) => eprintln!("apply failed: {error}"),
            }
        } else {
            let len = if rng.next_u64().is_multiple_of(8) {
                1 << 20
            } else {
                1 + (rng.next_u64() % (256 << 10)) as usize
            };
            let mut bytes = vec![0u8; len];
            let mut fill = Rng::new(rng.next_u64());
            for chunk in bytes.chunks_mut(8) {
                let word = fill.next_u64().to_le_bytes();
                chunk.copy_from_slice(&word[..chunk.len()]);
            }
            match store.put_chunk(&bytes, 0) {
                Ok(id) => acknowledge(&[format!("C {}", id.0.to_hex())]),
                Err(error) => eprintln!("put_chunk failed: {error}"),
            }
        }
    }
}

/// Prints acknowledgements, flushed at once: a line that reaches the pipe
/// before the kill is a promise the store must keep.
fn acknowledge(lines: &[String]) {
    let mut out = std::io::stdout().lock();
    for line in lines {
        if writeln!(out, "{line}").is_err() {
            std::process::exit(0);
        }
    }
    if out.flush().is_err() {
        std::process::exit(0);
    }
}
