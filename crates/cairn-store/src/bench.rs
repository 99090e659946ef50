//! The storage benchmark behind `cairn bench store` and the `bench_store`
//! example: durable record puts/s with 1, 8 and 64 concurrent writers
//! (64-byte values, one record per call) next to this disk's raw fsync rate
//! measured in the same run, the single writer's put latency, and chunk write
//! and read MB/s for 1 MiB chunks. Figures, not assertions: run it on the disk
//! to measure.

use crate::{Record, RedbStore, Store, StoreConfig};
use cairn_core::id::{Id, NodeId};
use cairn_core::rng::Rng;
use cairn_core::version::{HlcTimestamp, Version};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Runs every measurement in `dir` (an empty directory on the disk to
/// measure), `duration` per figure, writing one line per figure to `out`.
pub fn run(
    dir: &Path,
    duration: Duration,
    out: &mut dyn Write,
) -> Result<(), Box<dyn std::error::Error>> {
    writeln!(
        out,
        "bench store: dir {}, {:.1} s per figure",
        dir.display(),
        duration.as_secs_f64()
    )?;

    let fsyncs = raw_fsync_rate(dir, duration)?;
    writeln!(
        out,
        "raw fsync rate (64-byte overwrite + fdatasync): {fsyncs:.0} /s"
    )?;

    let store = Arc::new(RedbStore::open(
        &dir.join("records"),
        StoreConfig::default(),
    )?);
    let mut key_base = 0u64;
    for writers in [1usize, 8, 64] {
        let before = store.commit_counters();
        let run = durable_puts(&store, writers, duration, &mut key_base);
        let after = store.commit_counters();
        let commits = after.commits - before.commits;
        let per_commit = (after.operations - before.operations) as f64 / commits.max(1) as f64;
        writeln!(
            out,
            "durable puts, {writers:>2} writers: {:>8.0} puts/s = {:>5.1} x fsync rate ({commits} commits, {per_commit:.1} puts per commit); put latency p50 {:.3} ms, p99 {:.3} ms",
            run.puts_per_second,
            run.puts_per_second / fsyncs,
            run.p50.as_secs_f64() * 1e3,
            run.p99.as_secs_f64() * 1e3,
        )?;
    }
    drop(store);

    let chunk_store = RedbStore::open(&dir.join("chunks"), StoreConfig::default())?;
    let chunks = make_chunks(64);
    for writers in [1usize, 4] {
        let (write_mbs, ids) = chunk_writes(&chunk_store, &chunks, writers)?;
        writeln!(
            out,
            "chunk writes (1 MiB, {writers} writer(s)): {write_mbs:.0} MB/s"
        )?;
        for id in &ids {
            chunk_store.delete_chunk(*id)?;
        }
    }
    let (_, ids) = chunk_writes(&chunk_store, &chunks, 1)?;
    for readers in [1usize, 2] {
        let read_mbs = chunk_reads(&chunk_store, &ids, readers, duration)?;
        writeln!(
            out,
            "chunk reads (1 MiB, verified, page cache warm, {readers} reader(s)): {read_mbs:.0} MB/s"
        )?;
    }
    Ok(())
}

/// Small overwrites each followed by fdatasync, as a commit's header write.
fn raw_fsync_rate(dir: &Path, duration: Duration) -> std::io::Result<f64> {
    let path = dir.join("fsync-probe");
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    file.write_all_at(&[0u8; 4096], 0)?;
    file.sync_all()?;
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < duration {
        file.write_all_at(&count.to_le_bytes().repeat(8), 0)?;
        file.sync_data()?;
        count += 1;
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    std::fs::remove_file(path)?;
    Ok(rate)
}

struct PutRun {
    puts_per_second: f64,
    p50: Duration,
    p99: Duration,
}

fn durable_puts(
    store: &Arc<RedbStore>,
    writers: usize,
    duration: Duration,
    key_base: &mut u64,
) -> PutRun {
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let base = *key_base;
    *key_base += 1 << 32;
    let threads: Vec<_> = (0..writers)
        .map(|writer| {
            let store = store.clone();
            let stop = stop.clone();
            let total = total.clone();
            std::thread::spawn(move || {
                let node = NodeId(Id([writer as u8; 32]));
                let mut latencies = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("bench-{}-{writer}-{i}", base);
                    let version = Version::new(
                        HlcTimestamp {
                            physical_ms: base + i,
                            logical: 0,
                        },
                        node,
                    );
                    let record = Record::value(key.as_bytes(), version, vec![writer as u8; 64]);
                    let started = Instant::now();
                    if let Err(error) = store.apply(vec![record]) {
                        eprintln!("put failed: {error}");
                        break;
                    }
                    latencies.push(started.elapsed());
                    total.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    let start = Instant::now();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for thread in threads {
        latencies.extend(thread.join().unwrap_or_default());
    }
    let elapsed = start.elapsed();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    PutRun {
        puts_per_second: total.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
    }
}

fn make_chunks(count: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(42);
    (0..count)
        .map(|_| {
            let mut chunk = vec![0u8; 1 << 20];
            for word in chunk.chunks_mut(8) {
                word.copy_from_slice(&rng.next_u64().to_le_bytes());
            }
            chunk
        })
        .collect()
}

fn chunk_writes(
    store: &RedbStore,
    chunks: &[Vec<u8>],
    writers: usize,
) -> Result<(f64, Vec<cairn_core::id::ChunkId>), crate::StoreError> {
    let start = Instant::now();
    let ids = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|writer| {
                scope.spawn(move || {
                    chunks
                        .iter()
                        .skip(writer)
                        .step_by(writers)
                        .map(|chunk| store.put_chunk(chunk, 1))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut ids = Vec::new();
        for handle in handles {
            match handle.join() {
                Ok(result) => ids.extend(result?),
                Err(_) => {
                    return Err(crate::StoreError::Closed);
                }
            }
        }
        Ok(ids)
    })?;
    let mb = (chunks.len() << 20) as f64 / 1e6;
    Ok((mb / start.elapsed().as_secs_f64(), ids))
}

fn chunk_reads(
    store: &RedbStore,
    ids: &[cairn_core::id::ChunkId],
    readers: usize,
    duration: Duration,
) -> Result<f64, crate::StoreError> {
    let bytes = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for reader in 0..readers {
            let bytes = &bytes;
            scope.spawn(move || {
                let mut at = reader;
                while start.elapsed() < duration {
                    if let Ok(Some(chunk)) = store.get_chunk(ids[at % ids.len()]) {
                        bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    }
                    at += readers;
                }
            });
        }
    });
    Ok(bytes.load(Ordering::Relaxed) as f64 / 1e6 / start.elapsed().as_secs_f64())
}
