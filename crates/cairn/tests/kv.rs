//! Replicated values across real `cairn node` processes (R = 3, W = Q = 2):
//! written through one node, read through another, and still there after
//! two nodes are killed.

mod common;

use common::{
    Node, Scratch, check_fully_replicated, converge, eventually, in_parallel, kv_delete, kv_get,
    kv_put, start_ring,
};
use std::time::Duration;

/// How many keys the tests write.
const KEYS: usize = 2_000;
/// Reads of every key after the crashes must succeed within this.
const RECOVERY: Duration = Duration::from_secs(60);

fn refs(nodes: &[Node]) -> Vec<&Node> {
    nodes.iter().collect()
}

fn key(n: usize) -> String {
    format!("key-{n:05}")
}

fn value(n: usize) -> String {
    format!("value of key {n}, written once")
}

#[test]
fn every_acknowledged_value_survives_two_crashes() {
    let scratch = Scratch::new("kv_two_crashes");
    let mut nodes = start_ring(&scratch, 5);
    converge("a ring of 5 forms", &refs(&nodes));
    let all: Vec<usize> = (0..KEYS).collect();
    let (writer, reader) = (nodes[0].http, nodes[3].http);
    // Eight writers through one node (a node serves clients concurrently).
    in_parallel(8, &all, |n| {
        kv_put(writer, &key(*n), &value(*n)).map(|_| ())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    in_parallel(8, &all, |n| match kv_get(reader, &key(*n))? {
        Some(found) if found == value(*n) => Ok(()),
        other => Err(format!(
            "{} read back through another node: {other:?}",
            key(*n)
        )),
    })
    .unwrap_or_else(|e| panic!("{e}"));
    // Two neighbours at once: some keys lose two of their three replicas.
    let mut second = nodes.remove(2);
    let mut first = nodes.remove(1);
    first.process.kill();
    second.process.kill();
    let ((), took) = eventually("every key readable after two crashes", RECOVERY, || {
        for (index, n) in (0..KEYS).enumerate() {
            let through = &nodes[index % nodes.len()];
            match kv_get(through.http, &key(n))? {
                Some(found) if found == value(n) => {}
                other => {
                    return Err(format!(
                        "{} read {other:?} through {}",
                        key(n),
                        through.short()
                    ));
                }
            }
        }
        Ok(())
    });
    eprintln!("all {KEYS} keys read back {took:?} after two nodes were killed");
    let live: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    let ((), took) = eventually("every key back on 3 live nodes", RECOVERY, || {
        for n in 0..KEYS {
            check_fully_replicated(nodes[0].http, &key(n), &live)?;
        }
        Ok(())
    });
    eprintln!("all {KEYS} keys back on 3 live nodes {took:?} later");
    // Deleted stays deleted, written after the crashes is readable.
    kv_delete(nodes[0].http, &key(0)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        kv_get(nodes[2].http, &key(0)).expect("get"),
        None,
        "a deleted key is gone"
    );
    kv_put(nodes[1].http, "after", "the crashes").expect("a put after the crashes");
    assert_eq!(
        kv_get(nodes[2].http, "after").expect("get"),
        Some("the crashes".into())
    );
}
