//! `cairn bench kv`: a mixed put/get load from concurrent clients against a
//! running ring, with ops/s and latency percentiles per operation.

use cairn_client::{Client, ClientError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What load to run.
pub struct Load {
    pub clients: usize,
    pub seconds: u64,
    pub value_size: usize,
    pub get_percent: u32,
    pub keys: u64,
    /// Send every request through the one node given, instead of spreading
    /// the clients over every member's HTTP API.
    pub through_one: bool,
    /// Write the `keys` keys before the timed load (false: an earlier run
    /// wrote them, and the load starts at once).
    pub preload: bool,
}

/// The latencies of one client, per operation, and its failures.
#[derive(Default)]
struct Tally {
    puts: Vec<Duration>,
    gets: Vec<Duration>,
    failed: u64,
}

/// Runs the load through the node at `url` and prints the figures.
pub async fn run(url: &str, load: &Load) -> Result<(), ClientError> {
    let first = Client::new(url)?;
    let members = if load.through_one {
        vec![first]
    } else {
        let ring = first.ring().await?;
        let mut members = Vec::new();
        for member in ring.members.iter().filter_map(|m| m.http.as_deref()) {
            members.push(Client::new(member)?);
        }
        if members.is_empty() {
            vec![first]
        } else {
            members
        }
    };
    let client = members[0].clone();
    let value = vec![b'v'; load.value_size];
    // The keys first, so that every get finds one.
    let preload = if load.preload { load.keys } else { 0 };
    eprintln!("writing {preload} keys through {url} ...");
    let through = if members.len() == 1 {
        format!("through {url}")
    } else {
        format!("spread over {} members", members.len())
    };
    let started = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for worker in 0..load.clients.min(64) as u64 {
        let client = client.clone();
        let value = value.clone();
        let stride = load.clients.min(64) as u64;
        writers.spawn(async move {
            let mut n = worker;
            while n < preload {
                client.put(&format!("bench-{n}"), value.clone()).await?;
                n += stride;
            }
            Ok::<(), ClientError>(())
        });
    }
    while let Some(done) = writers.join_next().await {
        if let Ok(result) = done {
            result?;
        }
    }
    eprintln!(
        "  done in {:.1} s; now {} clients for {} s",
        started.elapsed().as_secs_f64(),
        load.clients,
        load.seconds
    );
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = tokio::task::JoinSet::new();
    for worker in 0..load.clients as u64 {
        let client = members[worker as usize % members.len()].clone();
        let value = value.clone();
        let stop = stop.clone();
        let (keys, get_percent) = (load.keys.max(1), load.get_percent);
        clients.spawn(async move {
            let mut tally = Tally::default();
            let mut rng = worker.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            while !stop.load(Ordering::Relaxed) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let key = format!("bench-{}", rng % keys);
                let get = (rng >> 32) % 100 < u64::from(get_percent);
                let began = Instant::now();
                let ok = if get {
                    client.get(&key).await.is_ok()
                } else {
                    client.put(&key, value.clone()).await.is_ok()
                };
                let took = began.elapsed();
                match (ok, get) {
                    (false, _) => tally.failed += 1,
                    (true, true) => tally.gets.push(took),
                    (true, false) => tally.puts.push(took),
                }
            }
            tally
        });
    }
    tokio::time::sleep(Duration::from_secs(load.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Tally::default();
    while let Some(done) = clients.join_next().await {
        if let Ok(tally) = done {
            all.puts.extend(tally.puts);
            all.gets.extend(tally.gets);
            all.failed += tally.failed;
        }
    }
    let seconds = load.seconds as f64;
    println!(
        "cairn bench kv: {} clients, {} s, {}-byte values, {}% gets, {} keys, {through}",
        load.clients, load.seconds, load.value_size, load.get_percent, load.keys
    );
    for (name, latencies) in [("put", &mut all.puts), ("get", &mut all.gets)] {
        latencies.sort_unstable();
        let at = |p: f64| -> f64 {
            if latencies.is_empty() {
                return 0.0;
            }
            let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
            latencies[index].as_secs_f64() * 1000.0
        };
        println!(
            "  {name}: {:>8.0} ops/s   p50 {:.2} ms   p99 {:.2} ms   p999 {:.2} ms   ({} ops)",
            latencies.len() as f64 / seconds,
            at(0.50),
            at(0.99),
            at(0.999),
            latencies.len()
        );
    }
    println!("  failed: {}", all.failed);
    Ok(())
}
