//! Lookups on a converged ring of real nodes: every node names the same
//! responsible node for a key, and it is the key's true successor.

mod common;

use cairn_core::KeyId;
use common::{Node, Scratch, converge, percent_encode, start_ring, str_field, true_successor};

fn keys() -> Vec<String> {
    let mut keys: Vec<String> = (0..17).map(|i| format!("key-{i}")).collect();
    // Keys that need percent-encoding in the path.
    keys.extend(["a/b c", "ünïcödé", "100%"].map(String::from));
    keys
}

#[test]
fn lookups_agree_from_every_node() {
    let scratch = Scratch::new("lookup");
    let nodes = start_ring(&scratch, 5);
    let refs: Vec<&Node> = nodes.iter().collect();
    converge("a ring of 5 forms", &refs);
    let ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();

    let mut hops_total = 0u64;
    let mut lookups = 0u64;
    for key in keys() {
        let key_id = KeyId::of_key(key.as_bytes()).to_string();
        let responsible = true_successor(&ids, &key_id);
        for node in &nodes {
            let path = format!("/v1/lookup/{}", percent_encode(&key));
            let answer = node
                .get_json(&path)
                .unwrap_or_else(|e| panic!("lookup of {key:?}: {e}"));
            assert_eq!(
                answer["key_id"].as_str(),
                Some(key_id.as_str()),
                "key id of {key:?} from {}: {answer}",
                node.short()
            );
            let named = str_field(&answer["node"], "id").expect("node.id");
            assert_eq!(
                named,
                responsible,
                "lookup of {key:?} (id {}) from {} named {}, but the successor is {}",
                &key_id[..8],
                node.short(),
                &named[..8.min(named.len())],
                &responsible[..8]
            );
            let addr = str_field(&answer["node"], "addr").expect("node.addr");
            let owner = nodes.iter().find(|n| n.id == named).expect("a member");
            assert_eq!(addr, owner.quic.to_string(), "address of {}", owner.short());
            hops_total += answer["hops"].as_u64().expect("hops");
            assert!(answer["micros"].is_u64(), "micros in {answer}");
            lookups += 1;
        }
    }
    eprintln!(
        "{lookups} lookups on a ring of 5: mean {:.2} hops",
        hops_total as f64 / lookups as f64
    );

    // The CLI prints the responsible node's short id and the hop count.
    let key = "key-3";
    let key_id = KeyId::of_key(key.as_bytes()).to_string();
    let responsible = true_successor(&ids, &key_id);
    let output = nodes[2].cli(&["lookup", key]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cairn lookup: {}; stderr {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&responsible[..8]) && stdout.contains("hop"),
        "cairn lookup {key} should name {} and its hops: {stdout:?}",
        &responsible[..8]
    );

    let output = nodes[2].cli(&["lookup", key, "--json"]);
    assert!(output.status.success(), "cairn lookup --json: {output:?}");
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cairn lookup --json prints JSON");
    assert_eq!(json["node"]["id"].as_str(), Some(responsible), "{json}");
    assert_eq!(json["key_id"].as_str(), Some(key_id.as_str()), "{json}");
}
