//! `cairn demo`: a local ring in one process that prints its nodes' URLs
//! and stops cleanly on SIGINT.

mod common;

use common::{EXIT_TIMEOUT, Process, READY_TIMEOUT, Scratch, eventually, str_field};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Parses `node I: <8hex> http://127.0.0.1:PORT`.
fn parse_node_line(line: &str) -> Option<(usize, String, SocketAddr)> {
    let rest = line.strip_prefix("node ")?;
    let (index, rest) = rest.split_once(": ")?;
    let (short, url) = rest.split_once(' ')?;
    let addr = url.trim().strip_prefix("http://")?.parse().ok()?;
    let index = index.parse().ok()?;
    let short_ok = short.len() == 8 && short.bytes().all(|b| b.is_ascii_hexdigit());
    short_ok.then(|| (index, short.to_string(), addr))
}

#[test]
fn demo_runs_and_stops() {
    let scratch = Scratch::new("demo");
    let args: Vec<OsString> = vec![
        "demo".into(),
        "--nodes".into(),
        "3".into(),
        "--data".into(),
        scratch.data_dir("demo").into(),
    ];
    let mut demo = Process::spawn(&scratch, "demo", &args);

    let deadline = Instant::now() + READY_TIMEOUT;
    let mut printed = Vec::new();
    let mut seen = Vec::new();
    while printed.len() < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = demo
            .next_line(left)
            .unwrap_or_else(|e| panic!("demo printed {seen:?}, then: {e}"));
        if let Some(node) = parse_node_line(&line) {
            printed.push(node);
        }
        seen.push(line);
    }
    let indexes: Vec<usize> = printed.iter().map(|(i, _, _)| *i).collect();
    assert_eq!(indexes, [0, 1, 2], "node lines: {seen:?}");

    // The first URL shows the whole ring, alive, with the printed ids.
    let first = printed[0].2;
    let (members, took) = eventually(
        "the demo ring lists 3 alive members",
        Duration::from_secs(30),
        || {
            let response = common::http_request(first, "GET", "/v1/ring")?;
            let ring = response.json()?;
            let members = ring["members"]
                .as_array()
                .ok_or_else(|| format!("no members: {ring}"))?;
            let alive = members.iter().filter(|m| m["state"] == "alive").count();
            if members.len() == 3 && alive == 3 {
                Ok(members.clone())
            } else {
                Err(ring.to_string())
            }
        },
    );
    eprintln!("demo ring of 3 listed in {took:?}");
    let mut listed: Vec<String> = members
        .iter()
        .map(|m| str_field(m, "id").expect("id")[..8].to_string())
        .collect();
    let mut expected: Vec<String> = printed.iter().map(|(_, s, _)| s.clone()).collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected, "the ring lists the printed nodes");
    for (_, _, http) in &printed {
        let member = members
            .iter()
            .find(|m| m["http"].as_str() == Some(&http.to_string()));
        assert!(member.is_some(), "member with http {http} in {members:?}");
    }

    demo.signal("INT");
    let status = demo
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|e| panic!("the demo must stop on SIGINT: {e}"));
    assert_eq!(
        status.code(),
        Some(0),
        "demo exit on SIGINT: {status}; stderr:\n{}",
        demo.stderr()
    );
}
