//! Replicated values across real `cairn node` processes (R = 3, W = Q = 2):
//! written through one node, read through another, and still there after
//! two nodes are killed.

mod common;

use common::{Node, Scratch, converge, eventually, http_request, http_send, start_ring};
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

fn put(node: &Node, key: &str, value: &str) -> Result<(), String> {
    let answer = http_send(node.http, "PUT", &format!("/v1/kv/{key}"), value.as_bytes())?;
    if answer.status == 200 {
        Ok(())
    } else {
        Err(format!(
            "PUT {key} answered {}: {}",
            answer.status, answer.body
        ))
    }
}

fn get(node: &Node, key: &str) -> Result<Option<String>, String> {
    let answer = http_request(node.http, "GET", &format!("/v1/kv/{key}"))?;
    match answer.status {
        200 => Ok(Some(answer.body)),
        404 => Ok(None),
        status => Err(format!("GET {key} answered {status}: {}", answer.body)),
    }
}

#[test]
fn every_acknowledged_value_survives_two_crashes() {
    let scratch = Scratch::new("kv_two_crashes");
    let mut nodes = start_ring(&scratch, 5);
    converge("a ring of 5 forms", &refs(&nodes));
    for n in 0..KEYS {
        put(&nodes[0], &key(n), &value(n)).unwrap_or_else(|e| panic!("{e}"));
    }
    for n in 0..KEYS {
        assert_eq!(
            get(&nodes[3], &key(n)).unwrap_or_else(|e| panic!("{e}")),
            Some(value(n)),
            "{} read back through another node",
            key(n)
        );
    }
    // Two neighbours at once: some keys lose two of their three replicas.
    let mut second = nodes.remove(2);
    let mut first = nodes.remove(1);
    first.process.kill();
    second.process.kill();
    let ((), took) = eventually("every key readable after two crashes", RECOVERY, || {
        for (index, n) in (0..KEYS).enumerate() {
            let through = &nodes[index % nodes.len()];
            match get(through, &key(n))? {
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
    let ((), took) = eventually("every key back on 3 live nodes", RECOVERY, || {
        for n in 0..KEYS {
            let located = nodes[0].get_json(&format!("/v1/kv/{}/locations", key(n)))?;
            let holding = located["replicas"]
                .as_array()
                .map(|replicas| replicas.iter().filter(|r| r["holds"] == true).count())
                .unwrap_or(0);
            if holding < 3 {
                return Err(format!("{} on {holding} live nodes: {located}", key(n)));
            }
        }
        Ok(())
    });
    eprintln!("all {KEYS} keys back on 3 live nodes {took:?} later");
    // Deleted stays deleted, written after the crashes is readable.
    let answer =
        http_request(nodes[0].http, "DELETE", &format!("/v1/kv/{}", key(0))).expect("delete");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        get(&nodes[2], &key(0)).expect("get"),
        None,
        "a deleted key is gone"
    );
    put(&nodes[1], "after", "the crashes").expect("a put after the crashes");
    assert_eq!(
        get(&nodes[2], "after").expect("get"),
        Some("the crashes".into())
    );
}
