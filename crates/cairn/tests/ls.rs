//! `GET /v1/keys?prefix=` and `cairn ls` across real nodes: every member's
//! range is asked, the answer is the live keys with the prefix, in order.

mod common;

use common::{Scratch, converge, http_request, http_send, start_ring};

#[test]
fn ls_lists_the_live_keys_with_a_prefix_from_every_member() {
    let scratch = Scratch::new("ls_prefix");
    let nodes = start_ring(&scratch, 3);
    converge("a ring of 3 forms", &nodes.iter().collect::<Vec<_>>());
    let mut expected = Vec::new();
    for n in 0..40 {
        let key = if n % 2 == 0 {
            format!("user/{n:03}")
        } else {
            format!("item/{n:03}")
        };
        let answer = http_send(
            nodes[n % 3].http,
            "PUT",
            &format!("/v1/kv/{}", key.replace('/', "%2F")),
            b"v",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(answer.status, 200, "PUT {key}: {}", answer.body);
        if key.starts_with("user/") && n != 10 {
            expected.push(key);
        }
    }
    let deleted = http_send(nodes[1].http, "DELETE", "/v1/kv/user%2F010", b"")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    expected.sort();
    let listed = http_request(nodes[2].http, "GET", "/v1/keys?prefix=user/")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed.status, 200, "{}", listed.body);
    let list: serde_json::Value = serde_json::from_str(&listed.body).expect("json");
    let keys: Vec<String> = list["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k.as_str().expect("a string").to_string())
        .collect();
    assert_eq!(
        keys, expected,
        "the user/ keys, in order, without the deleted one"
    );
    assert_eq!(list["members_missing"], 0);
    assert_eq!(list["truncated"], false);

    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args([
            "--node",
            &format!("http://{}", nodes[0].http),
            "ls",
            "item/00",
        ])
        .output()
        .expect("run cairn ls");
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let lines: Vec<String> = String::from_utf8_lossy(&cli.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let items: Vec<String> = (1..10).step_by(2).map(|n| format!("item/{n:03}")).collect();
    assert_eq!(lines, items);
}
