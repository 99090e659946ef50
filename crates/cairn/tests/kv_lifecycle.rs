//! Keys across the life of a ring of real `cairn node` processes (R = 3,
//! W = Q = 2): a node that crashed and comes back catches up on what it
//! missed, a newcomer receives its range while every key stays readable, a
//! node stopped with SIGTERM leaves every key on 3 live nodes, and writers
//! racing on one key end with every replica on the same, newest version.
//!
//! Each test keeps a model of what every key must hold (the last value
//! written, or deleted, and the version its write was acknowledged with) and
//! checks the ring against it: through `GET /v1/kv/{key}/locations`, which
//! asks every replica what it holds, and through reads.

mod common;

use common::{
    EXIT_TIMEOUT, Locations, Node, NodeOptions, POLL_EVERY, Scratch, check_fully_replicated,
    converge, eventually, in_parallel, kv_delete, kv_get, kv_get_versioned, kv_locations, kv_put,
    replica_set, start_ring,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Client threads writing or reading at once.
const THREADS: usize = 8;
/// A write the node answered with an error is tried again until then (a node
/// just crashed may still be in lookups until its peers judge it dead).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Replicas must hold what they should within this after a change.
const REPAIR_TIMEOUT: Duration = Duration::from_secs(90);

fn refs(nodes: &[Node]) -> Vec<&Node> {
    nodes.iter().collect()
}

fn ids(nodes: &[Node]) -> Vec<&str> {
    nodes.iter().map(|n| n.id.as_str()).collect()
}

fn https(nodes: &[Node]) -> Vec<SocketAddr> {
    nodes.iter().map(|n| n.http).collect()
}

fn key(n: usize) -> String {
    format!("key-{n:05}")
}

/// What a key must hold: its last value (`None`: deleted), and the version
/// the write of it was acknowledged with. A write retried after an error
/// may leave an older indeterminate version of the same value behind; only
/// the acknowledged one counts.
#[derive(Clone, Debug)]
struct Expected {
    value: Option<String>,
    version: String,
}

type Model = BTreeMap<String, Expected>;

/// One write: put `Some(value)` or delete (`None`) a key.
type Write = (String, Option<String>);

/// Applies `writes` from [`THREADS`] threads, the i-th through
/// `through[i % len]`, each tried again until [`WRITE_TIMEOUT`] if the node
/// answers an error; records the outcome in `model`. Returns how many
/// attempts failed (and were tried again). The keys must be distinct: the
/// order of writes running at once is not known.
fn write_all(through: &[SocketAddr], writes: &[Write], model: &mut Model) -> usize {
    let distinct: BTreeSet<&String> = writes.iter().map(|(key, _)| key).collect();
    assert_eq!(distinct.len(), writes.len(), "one write per key at a time");
    let numbered: Vec<(usize, &Write)> = writes.iter().enumerate().collect();
    let written = Mutex::new(Vec::new());
    let failed_attempts = AtomicUsize::new(0);
    in_parallel(THREADS, &numbered, |(index, (key, value))| {
        let http = through[index % through.len()];
        let deadline = Instant::now() + WRITE_TIMEOUT;
        let version = loop {
            let attempt = match value {
                Some(value) => kv_put(http, key, value),
                None => kv_delete(http, key),
            };
            match attempt {
                Ok(version) => break version,
                Err(error) if Instant::now() >= deadline => {
                    return Err(format!("gave up after {WRITE_TIMEOUT:?}: {error}"));
                }
                Err(_) => {
                    failed_attempts.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(POLL_EVERY);
                }
            }
        };
        let expected = Expected {
            value: value.clone(),
            version,
        };
        lock(&written).push((key.clone(), expected));
        Ok(())
    })
    .unwrap_or_else(|e| panic!("writes: {e}"));
    for (key, expected) in written.into_inner().unwrap_or_else(|p| p.into_inner()) {
        model.insert(key, expected);
    }
    failed_attempts.into_inner()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Checks `key` through `via`: on the replica set `live` prescribes, every
/// member holding the newest version, which is at least the acknowledged one
/// and a tombstone exactly if the key was deleted.
fn check_key(
    via: SocketAddr,
    key: &str,
    expected: &Expected,
    live: &[&str],
) -> Result<Locations, String> {
    let located = check_fully_replicated(via, key, live)?;
    let newest = located.version.as_deref().unwrap_or_default();
    if newest < expected.version.as_str() {
        return Err(format!(
            "{key}: newest version {newest} is older than the acknowledged {}: {}",
            expected.version, located.json
        ));
    }
    if located.deleted != expected.value.is_none() {
        return Err(format!(
            "{key}: deleted is {}, expected {:?}: {}",
            located.deleted, expected.value, located.json
        ));
    }
    Ok(located)
}

/// What [`wait_until_replicated`] saw.
struct Replicated {
    /// How long until every key passed.
    took: Duration,
    /// How many keys list the member asked about as a replica.
    with_member: usize,
    /// How many keys had not passed in the first round.
    behind_at_first: usize,
}

/// Polls until every key of `model` passes [`check_key`] through `via`,
/// from [`THREADS`] threads (a key that passed is not asked again); panics
/// after [`REPAIR_TIMEOUT`].
fn wait_until_replicated(
    what: &str,
    via: SocketAddr,
    model: &Model,
    live: &[&str],
    member: Option<&str>,
) -> Replicated {
    let mut pending: Vec<&String> = model.keys().collect();
    let with_member = AtomicUsize::new(0);
    let mut behind_at_first = None;
    let ((), took) = eventually(what, REPAIR_TIMEOUT, || {
        let left = Mutex::new(Vec::new());
        let outcome = in_parallel(THREADS, &pending, |key| {
            match check_key(via, key, &model[*key], live) {
                Ok(located) => {
                    if located
                        .replicas
                        .iter()
                        .any(|r| Some(r.id.as_str()) == member)
                    {
                        with_member.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                }
                Err(error) => {
                    lock(&left).push(*key);
                    Err(error)
                }
            }
        });
        pending = left.into_inner().unwrap_or_else(|p| p.into_inner());
        behind_at_first.get_or_insert(pending.len());
        outcome.map_err(|error| {
            format!(
                "{} of {} keys not there yet: {error}",
                pending.len(),
                model.len()
            )
        })
    });
    Replicated {
        took,
        with_member: with_member.into_inner(),
        behind_at_first: behind_at_first.unwrap_or_default(),
    }
}

/// Reads every key of `model` once, spread over `through`, from
/// [`THREADS`] threads: each must answer its last value at once (404 for a
/// deleted key).
fn read_all(through: &[SocketAddr], model: &Model) -> Result<(), String> {
    let keys: Vec<(usize, (&String, &Expected))> = model.iter().enumerate().collect();
    in_parallel(THREADS, &keys, |(index, (key, expected))| {
        let http = through[index % through.len()];
        let found = kv_get(http, key).map_err(|e| format!("through {http}: {e}"))?;
        if found == expected.value {
            Ok(())
        } else {
            Err(format!(
                "{key} through {http}: read {found:?}, expected {:?}",
                expected.value
            ))
        }
    })
}

/// A node killed with SIGKILL misses writes, overwrites and deletes while it
/// is down; restarted on its data dir and address, it catches up: every key
/// it is a replica of is on it at its newest version, reads through it
/// answer the newest values, and deleted keys stay deleted.
#[test]
fn a_restarted_node_catches_up_on_what_it_missed() {
    const BEFORE: usize = 400;
    const NEW: usize = 100;
    let scratch = Scratch::new("kv_restart");
    let mut nodes = start_ring(&scratch, 5);
    converge("a ring of 5 forms", &refs(&nodes));
    let mut model = Model::new();
    let first: Vec<Write> = (0..BEFORE)
        .map(|n| (key(n), Some(format!("first value of key {n}"))))
        .collect();
    let started = Instant::now();
    write_all(&https(&nodes), &first, &mut model);
    eprintln!("{BEFORE} keys written in {:?}", started.elapsed());

    let mut victim = nodes.remove(2);
    victim.process.kill();
    let killed = Instant::now();
    // While it is down: new keys, a quarter of the old ones overwritten and
    // a quarter deleted.
    let mut missed: Vec<Write> = (BEFORE..BEFORE + NEW)
        .map(|n| {
            (
                key(n),
                Some(format!("value of key {n}, written while a node was down")),
            )
        })
        .collect();
    for n in (0..BEFORE).step_by(4) {
        missed.push((key(n), Some(format!("second value of key {n}"))));
        missed.push((key(n + 1), None));
    }
    let failed = write_all(&https(&nodes), &missed, &mut model);
    eprintln!(
        "{} writes while {} was down in {:?} ({failed} attempts failed and were retried)",
        missed.len(),
        victim.short(),
        killed.elapsed()
    );

    let restarted = NodeOptions {
        listen: Some(victim.quic),
        join: vec![nodes[0].quic.to_string()],
        ..victim.options.clone()
    }
    .start(&scratch);
    let restarted_at = Instant::now();
    assert_eq!(restarted.id, victim.id, "same data dir, same id");
    assert_eq!(restarted.quic, victim.quic, "same address");
    nodes.push(restarted);
    let took = converge("the ring takes the restarted node back", &refs(&nodes));
    eprintln!("ring of 5 again {took:?} after the restart");
    let restarted = nodes.last().expect("just pushed");

    let live = ids(&nodes);
    let replicated = wait_until_replicated(
        "the restarted node holds the newest version of every key it is a replica of",
        restarted.http,
        &model,
        &live,
        Some(&restarted.id),
    );
    let replica_of = replicated.with_member;
    eprintln!(
        "every key on its 3 replicas at its newest version {:?} after the restart, \
         {:?} after the ring converged (the restarted node is a replica of \
         {replica_of} of {} keys; {} keys were behind at the first check)",
        restarted_at.elapsed(),
        replicated.took,
        model.len(),
        replicated.behind_at_first
    );
    assert!(
        replica_of > 0,
        "the restarted node must be a replica of some keys"
    );

    read_all(&[restarted.http], &model)
        .unwrap_or_else(|e| panic!("reads through the restarted node: {e}"));
    let deleted = model.values().filter(|e| e.value.is_none()).count();
    assert!(deleted > 0);
    read_all(&https(&nodes), &model).unwrap_or_else(|e| panic!("reads through every node: {e}"));
    eprintln!("every key reads its newest value ({deleted} deleted keys answer 404)");
}

/// A node joins a ring of 4 holding 1,000 keys: every key whose replica set
/// now includes the newcomer is on it at its newest version, and every key
/// reads its value throughout, through the old members, while it joins.
#[test]
fn a_joining_node_receives_its_range_while_every_key_stays_readable() {
    const KEYS: usize = 1_000;
    let scratch = Scratch::new("kv_join");
    let mut nodes = start_ring(&scratch, 4);
    converge("a ring of 4 forms", &refs(&nodes));
    let mut model = Model::new();
    let writes: Vec<Write> = (0..KEYS)
        .map(|n| (key(n), Some(format!("value of key {n}"))))
        .collect();
    let started = Instant::now();
    write_all(&https(&nodes), &writes, &mut model);
    eprintln!("{KEYS} keys written in {:?}", started.elapsed());

    let old = https(&nodes);
    let keys: Vec<(&String, &Expected)> = model.iter().collect();
    let stop = AtomicBool::new(false);
    let reads = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let join_via = nodes[1].quic;
    let newcomer = std::thread::scope(|scope| {
        // Two readers walk the keys again and again through the old members
        // until the newcomer has everything, and once more after that.
        for reader in 0..2 {
            let (old, keys, stop, reads, failures) = (&old, &keys, &stop, &reads, &failures);
            scope.spawn(move || {
                let mut at = reader;
                while !stop.load(Ordering::Relaxed) {
                    let (key, expected) = keys[at % keys.len()];
                    let http = old[at % old.len()];
                    let problem = match kv_get(http, key) {
                        Ok(found) if found == expected.value => None,
                        Ok(found) => Some(format!("{key} through {http} read {found:?}")),
                        Err(error) => Some(format!("through {http}: {error}")),
                    };
                    if let Some(problem) = problem {
                        lock(failures).push(problem);
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                    at += 2;
                }
            });
        }
        let joined = Instant::now();
        let newcomer = NodeOptions::new(&scratch, "n4")
            .join(join_via)
            .start(&scratch);
        nodes.push(newcomer);
        let took = converge("the newcomer joins the ring", &refs(&nodes));
        eprintln!("ring of 5 {took:?} after the newcomer was ready");
        let newcomer = nodes.last().expect("just pushed");
        let live = ids(&nodes);
        let replicated = wait_until_replicated(
            "every key whose replica set includes the newcomer is on it",
            nodes[0].http,
            &model,
            &live,
            Some(&newcomer.id),
        );
        let replica_of = replicated.with_member;
        eprintln!(
            "the newcomer holds all {replica_of} of {KEYS} keys it is a replica of, \
             {:?} after it started ({} keys were behind at the first check)",
            joined.elapsed(),
            replicated.behind_at_first
        );
        // Every key read once more after the newcomer has it all.
        let target = reads.load(Ordering::Relaxed) + KEYS;
        eventually(
            "the readers read every key once more after the join",
            REPAIR_TIMEOUT,
            || match reads.load(Ordering::Relaxed) {
                done if done >= target => Ok(()),
                done => Err(format!("{done} reads of {target}")),
            },
        );
        stop.store(true, Ordering::Relaxed);
        (newcomer.http, replica_of)
    });
    let (newcomer_http, replica_of) = newcomer;
    let failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    let reads = reads.into_inner();
    assert!(
        failures.is_empty(),
        "{} of {reads} reads during the join failed; the first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!("{reads} reads during the join, all with the right value");
    assert!(
        replica_of > 0,
        "the newcomer must be a replica of some keys"
    );
    // Each key it holds came to it in a replication request or an answer to
    // its fetch (`GET /v1/node` -> received), and it knows its range.
    let info = nodes
        .last()
        .expect("the newcomer")
        .get_json("/v1/node")
        .unwrap_or_else(|e| panic!("GET /v1/node of the newcomer: {e}"));
    let received = |field: &str| info["received"][field].as_u64();
    let (records, bytes) = (received("records"), received("bytes"));
    eprintln!("the newcomer received {records:?} records, {bytes:?} bytes");
    assert!(
        records.is_some_and(|r| r >= replica_of as u64),
        "it holds {replica_of} keys but received {records:?} records: {info}"
    );
    assert!(bytes.is_some_and(|b| b > 0), "{info}");
    assert!(info["held"]["after"].is_string() && info["held"]["through"] == info["id"]);
    // Every key lists exactly the prescribed replicas (checked above); with
    // the newcomer in 3 of 5 replica sets about 3/5 of the keys are its.
    read_all(&[newcomer_http], &model)
        .unwrap_or_else(|e| panic!("reads through the newcomer: {e}"));
}

/// A node stopped with SIGTERM exits 0 promptly; every key still reads its
/// last value at once, and soon every key is on its 3 live replicas again.
#[test]
fn after_a_sigterm_every_key_is_readable_and_back_on_three_live_nodes() {
    const KEYS: usize = 500;
    let scratch = Scratch::new("kv_sigterm");
    let mut nodes = start_ring(&scratch, 5);
    converge("a ring of 5 forms", &refs(&nodes));
    let mut model = Model::new();
    let mut writes: Vec<Write> = (0..KEYS)
        .map(|n| (key(n), Some(format!("first value of key {n}"))))
        .collect();
    let started = Instant::now();
    write_all(&https(&nodes), &writes, &mut model);
    // The last value differs from the first for a third of the keys.
    writes = (0..KEYS)
        .step_by(3)
        .map(|n| (key(n), Some(format!("last value of key {n}"))))
        .collect();
    write_all(&https(&nodes), &writes, &mut model);
    eprintln!(
        "{KEYS} keys written, a third twice, in {:?}",
        started.elapsed()
    );

    let mut leaving = nodes.remove(3);
    let signalled = Instant::now();
    leaving.process.terminate();
    let status = leaving
        .process
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|e| panic!("SIGTERM did not stop the node: {e}"));
    let exit_took = signalled.elapsed();
    let stderr = leaving.process.stderr();
    assert_eq!(
        status.code(),
        Some(0),
        "a node leaving on SIGTERM exits 0 ({status}); stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("SIGTERM: leaving the ring") && stderr.contains("left the ring"),
        "the node says it left on SIGTERM; stderr:\n{stderr}"
    );
    eprintln!("{} exited 0 {exit_took:?} after SIGTERM", leaving.short());

    read_all(&https(&nodes), &model)
        .unwrap_or_else(|e| panic!("reads right after the node left: {e}"));
    eprintln!(
        "every key read its last value, {:?} after SIGTERM",
        signalled.elapsed()
    );
    let live = ids(&nodes);
    let replicated = wait_until_replicated(
        "every key back on its 3 live replicas",
        nodes[0].http,
        &model,
        &live,
        None,
    );
    eprintln!(
        "every key on its 3 live replicas {:?} after SIGTERM (checked in {:?}; {} keys \
         were behind at the first check)",
        signalled.elapsed(),
        replicated.took,
        replicated.behind_at_first
    );
}

/// Writers through different nodes race on one key: once they are done,
/// every replica holds the same version, the newest, which is at least every
/// acknowledged one; a read through any node answers it, with the value
/// written under that version.
#[test]
fn racing_writers_to_one_key_end_on_one_newest_version() {
    const WRITERS: usize = 8;
    const PUTS: usize = 50;
    const KEY: &str = "contended";
    let scratch = Scratch::new("kv_race");
    let nodes = start_ring(&scratch, 5);
    converge("a ring of 5 forms", &refs(&nodes));
    let through = https(&nodes);

    // Every value written, and the version of every acknowledged one.
    let acknowledged = Mutex::new(BTreeMap::<String, String>::new());
    let attempted = Mutex::new(BTreeSet::<String>::new());
    let failed = Mutex::new(Vec::<String>::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            let http = through[writer % through.len()];
            let (acknowledged, attempted, failed) = (&acknowledged, &attempted, &failed);
            scope.spawn(move || {
                for put in 0..PUTS {
                    let value = format!("writer {writer} put {put}");
                    lock(attempted).insert(value.clone());
                    match kv_put(http, KEY, &value) {
                        Ok(version) => {
                            lock(acknowledged).insert(version, value);
                        }
                        Err(error) => lock(failed).push(error),
                    }
                }
            });
        }
    });
    let acknowledged = acknowledged.into_inner().unwrap_or_else(|p| p.into_inner());
    let attempted = attempted.into_inner().unwrap_or_else(|p| p.into_inner());
    let failed = failed.into_inner().unwrap_or_else(|p| p.into_inner());
    eprintln!(
        "{} puts to one key from {WRITERS} writers in {:?}",
        WRITERS * PUTS,
        started.elapsed()
    );
    assert!(
        failed.is_empty(),
        "{} of {} puts failed on a healthy ring; the first: {}",
        failed.len(),
        WRITERS * PUTS,
        failed[0]
    );
    assert_eq!(
        acknowledged.len(),
        WRITERS * PUTS,
        "every acknowledged put has its own version"
    );
    let newest_acknowledged = acknowledged.keys().next_back().expect("puts").clone();

    let live = ids(&nodes);
    let (newest, settled) = eventually(
        "every replica holds the same, newest version",
        Duration::from_secs(30),
        || {
            let located = kv_locations(through[0], KEY)?;
            let expected = replica_set(&live, &located.key_id, 3);
            let named: Vec<&str> = located.replicas.iter().map(|r| r.id.as_str()).collect();
            let newest = located.version.clone().unwrap_or_default();
            let same = located
                .replicas
                .iter()
                .all(|r| r.answered && r.holds && r.version.as_deref() == Some(newest.as_str()));
            if named == expected && same && !newest.is_empty() {
                Ok(newest)
            } else {
                Err(format!("not settled: {}", located.json))
            }
        },
    );
    eprintln!("replicas settled {settled:?} after the last put");
    assert!(
        newest >= newest_acknowledged,
        "the newest version {newest} is older than an acknowledged one {newest_acknowledged}"
    );
    for node in &nodes {
        let (value, version) = kv_get_versioned(node.http, KEY)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("{KEY} not found through {}", node.short()));
        assert_eq!(version, newest, "the version read through {}", node.short());
        assert!(
            attempted.contains(&value),
            "{value:?} read through {} was never written",
            node.short()
        );
        if let Some(written) = acknowledged.get(&version) {
            assert_eq!(
                &value,
                written,
                "the value read through {} is not the one written under its version",
                node.short()
            );
        }
    }
}
