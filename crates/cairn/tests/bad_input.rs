//! Bad input from peers and clients must not hurt a running node: garbage
//! datagrams, bad QUIC streams, and HTTP requests the API refuses (always
//! with a JSON error).

mod common;

use cairn_core::wire::{Peer, Request, Response};
use cairn_node::transport::{
    Answer, INBOUND_READ_TIMEOUT, RequestHandler, Transport, TransportConfig,
};
use common::{
    EXIT_TIMEOUT, HttpResponse, Node, NodeOptions, Scratch, check_ring, cli_at, converge,
    eventually, http_request, http_send, kv_get, kv_locations, kv_put, start_ring,
};
use std::ffi::OsStr;
use std::net::UdpSocket;
use std::os::unix::ffi::OsStrExt;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::time::timeout;

/// A peer that answers nothing useful: the test only writes raw streams.
struct Silent;

impl RequestHandler for Silent {
    fn handle(&self, _from: Peer, _request: Request) -> Answer {
        Answer::Now(Response::Ack)
    }
}

/// Deterministic noise (xorshift64).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Reads a stream to its end; Ok(bytes) if the node finished it, Err if it reset it.
async fn read_all(recv: &mut quinn::RecvStream) -> Result<Vec<u8>, String> {
    let mut answer = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match recv.read(&mut buf).await {
            Ok(Some(n)) => answer.extend_from_slice(&buf[..n]),
            Ok(None) => return Ok(answer),
            Err(error) => return Err(error.to_string()),
        }
    }
}

/// The node answers its API, the ring of `nodes` is intact, and a lookup
/// through `node` works.
fn assert_healthy(node: &Node, nodes: &[&Node], when: &str) {
    node.get_json("/v1/node")
        .unwrap_or_else(|e| panic!("{when}: /v1/node: {e}"));
    eventually(
        &format!("{when}: the ring is intact"),
        Duration::from_secs(10),
        || check_ring(nodes),
    );
    let lookup = node
        .get_json("/v1/lookup/still-here")
        .unwrap_or_else(|e| panic!("{when}: lookup: {e}"));
    assert!(lookup["node"]["id"].is_string(), "{when}: {lookup}");
}

#[test]
fn bad_input_leaves_node_running() {
    let scratch = Scratch::new("badinput");
    let nodes = start_ring(&scratch, 3);
    let refs: Vec<&Node> = nodes.iter().collect();
    converge("a ring of 3 forms", &refs);
    let target = &nodes[1];

    // (a) Garbage datagrams of random sizes, half of them shaped like QUIC
    // long-header packets.
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
    let mut noise = Noise(0x2545_f491_4f6c_dd1d);
    for i in 0..200 {
        let len = 1 + (noise.next() % 1500) as usize;
        let mut datagram: Vec<u8> = (0..len).map(|_| noise.next() as u8).collect();
        if i % 2 == 0 {
            datagram[0] |= 0xc0;
        }
        socket
            .send_to(&datagram, target.quic)
            .expect("send a datagram");
    }
    assert_healthy(target, &refs, "after garbage datagrams");

    // (b) Bad streams from an authenticated peer.
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let transport = {
        let _entered = runtime.enter();
        Transport::bind(
            TransportConfig {
                listen: "127.0.0.1:0".parse().expect("address"),
                ..TransportConfig::default()
            },
            &ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
            Arc::new(Silent),
        )
        .expect("bind a transport")
    };
    let open = || {
        runtime
            .block_on(transport.open_raw_stream(target.quic))
            .expect("open a raw stream to the node")
    };

    // A half-open stream: two bytes of a length prefix, never finished. It is
    // held open while the node is checked below.
    let (mut half_send, mut half_recv) = open();
    let half_opened = Instant::now();
    runtime
        .block_on(half_send.write_all(&[0, 0]))
        .expect("write a partial prefix");

    // An oversized frame: a 64 MiB length, then some bytes. The node must
    // reset the stream promptly instead of reading (or allocating) it.
    let (mut big_send, mut big_recv) = open();
    let read = runtime.block_on(async {
        big_send
            .write_all(&(64u32 << 20).to_be_bytes())
            .await
            .expect("write the length");
        let _ = big_send.write_all(&[0xab; 4096]).await;
        timeout(Duration::from_secs(5), read_all(&mut big_recv)).await
    });
    let read = read.expect("the node must answer an oversized frame within 5 s");
    assert!(
        read.is_err(),
        "an oversized frame must reset its stream, got {read:?}"
    );

    // A frame of the right length whose bytes are not a request.
    let (mut junk_send, mut junk_recv) = open();
    let read = runtime.block_on(async {
        junk_send
            .write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff])
            .await
            .expect("write junk");
        junk_send.finish().expect("finish");
        timeout(Duration::from_secs(5), read_all(&mut junk_recv)).await
    });
    let read = read.expect("the node must answer a junk frame within 5 s");
    assert!(
        read.is_err(),
        "a junk frame must reset its stream: {read:?}"
    );

    assert_healthy(target, &refs, "with a half-open stream held");

    // The node gives up on the half-open stream after its read timeout.
    let limit = INBOUND_READ_TIMEOUT + Duration::from_secs(5);
    let read = runtime
        .block_on(async { timeout(limit, read_all(&mut half_recv)).await })
        .unwrap_or_else(|_| panic!("a half-open stream is still open after {limit:?}"));
    assert!(read.is_err(), "a half-open stream must be reset: {read:?}");
    eprintln!(
        "the node reset a half-open stream after {:?}",
        half_opened.elapsed()
    );
    drop(half_send);

    assert_healthy(target, &refs, "after all the bad input");
    runtime.block_on(transport.shutdown());
}

/// The status and JSON `error` of an answer that must be a JSON error.
fn json_error(response: &HttpResponse, what: &str) -> String {
    let json = response
        .json()
        .unwrap_or_else(|e| panic!("{what}: the error must be JSON: {e}"));
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{what}: content-type {:?}",
        response.header("content-type")
    );
    json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no \"error\" string in {json}"))
        .to_string()
}

fn expect_error(node: &Node, method: &str, path: &str, status: u16) -> String {
    expect_error_sending(node, method, path, &[], status)
}

/// [`expect_error`] for a request with a body.
fn expect_error_sending(node: &Node, method: &str, path: &str, body: &[u8], status: u16) -> String {
    let what = format!("{method} {}", &path[..path.len().min(60)]);
    let response =
        http_send(node.http, method, path, body).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        response.status, status,
        "{what}: expected {status}, got {response:?}"
    );
    json_error(&response, &what)
}

#[test]
fn http_errors_are_json() {
    let scratch = Scratch::new("httperr");
    let nodes = start_ring(&scratch, 1);
    let node = &nodes[0];

    expect_error(node, "GET", "/no/such/route", 404);
    expect_error(node, "GET", "/v1/nodes", 404);

    // "." and ".." cannot be one path segment, also percent-encoded.
    for key in ["%2E", "%2E%2E", "%2e%2E"] {
        let error = expect_error(node, "GET", &format!("/v1/lookup/{key}"), 400);
        assert!(error.contains("reserved"), "{key}: {error}");
    }

    // The empty key is the key limit, not a missing route.
    let error = expect_error(node, "GET", "/v1/lookup/", 400);
    assert!(error.contains("empty"), "{error}");

    // Percent-encoding that decodes to invalid UTF-8.
    expect_error(node, "GET", "/v1/lookup/%C3%28", 400);
    expect_error(node, "GET", "/v1/lookup/%FF", 400);

    // The key length limit, on both sides of it.
    let error = expect_error(
        node,
        "GET",
        &format!("/v1/lookup/{}", "k".repeat(1025)),
        400,
    );
    assert!(
        error.contains("1024") && error.contains("1025"),
        "the error must name the limit and the size: {error}"
    );
    let at_limit = node
        .get_json(&format!("/v1/lookup/{}", "k".repeat(1024)))
        .expect("a key of exactly 1024 bytes is fine");
    assert!(at_limit["node"]["id"].is_string(), "{at_limit}");
    // A multi-byte key over the limit in bytes, not in characters.
    let error = expect_error(
        node,
        "GET",
        &format!("/v1/lookup/{}", "%C3%A9".repeat(513)),
        400,
    );
    assert!(error.contains("1026"), "{error}");

    // Wrong methods.
    expect_error(node, "DELETE", "/v1/ring", 405);
    expect_error(node, "POST", "/v1/lookup/foo", 405);
    expect_error(node, "GET", "/v1/node/leave", 405);

    // After all that, the node still answers.
    node.get_json("/v1/node").expect("the node still answers");
}

/// DESIGN.md, Interfaces: "malformed percent-encoding in a key is a 400".
#[test]
fn malformed_percent_encoding_is_a_400() {
    let scratch = Scratch::new("badpct");
    let nodes = start_ring(&scratch, 1);
    for path in [
        "/v1/lookup/%ZZ",
        "/v1/lookup/%",
        "/v1/lookup/a%4",
        "/v1/lookup/%G1x",
    ] {
        let error = expect_error(&nodes[0], "GET", path, 400);
        assert!(!error.is_empty(), "{path}");
    }
}

/// The limit on values (`cairn_core::record::MAX_INLINE_VALUE`, 1 MiB).
const MAX_VALUE: usize = 1 << 20;

/// A key that must not be stored: nothing may read back under it, nor under
/// the key a careless edge could have made of the bad one.
fn assert_nothing_stored(node: &Node, key: &str, what: &str) {
    assert_eq!(
        kv_get(node.http, key).unwrap_or_else(|e| panic!("{what}: {e}")),
        None,
        "{what}: {key:?} must not be stored"
    );
    let located = kv_locations(node.http, key).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        located.version.is_none() && located.replicas.iter().all(|r| r.version.is_none()),
        "{what}: no replica may hold {key:?}: {}",
        located.json
    );
}

/// Bad keys and values through the HTTP API: the right status, a JSON error
/// that says what is wrong, nothing stored, and the node still serving.
#[test]
fn bad_keys_and_values_over_http_are_refused_and_nothing_is_stored() {
    let scratch = Scratch::new("badkv_http");
    let nodes = start_ring(&scratch, 3);
    converge("a ring of 3 forms", &nodes.iter().collect::<Vec<_>>());
    let node = &nodes[0];
    let long = "k".repeat(1025);
    // (path segment, what the error must say)
    let cases = [
        (String::new(), "empty"),
        (long.clone(), "1025 bytes"),
        ("%FF".to_string(), "UTF-8"),
        ("%C3%28".to_string(), "UTF-8"),
        (".".to_string(), "reserved"),
        ("..".to_string(), "reserved"),
        ("%2E".to_string(), "reserved"),
        ("%2e%2E".to_string(), "reserved"),
    ];
    for (segment, says) in &cases {
        let path = format!("/v1/kv/{segment}");
        let error = expect_error_sending(node, "PUT", &path, b"a value", 400);
        assert!(
            error.contains(says),
            "PUT {path:.60}: {error:?} must say {says:?}"
        );
        for method in ["GET", "HEAD", "DELETE"] {
            let response = http_request(node.http, method, &path)
                .unwrap_or_else(|e| panic!("{method} {path:.60}: {e}"));
            assert_eq!(response.status, 400, "{method} {path:.60}: {response:?}");
            if method != "HEAD" {
                let error = json_error(&response, &format!("{method} {path:.60}"));
                assert!(error.contains(says), "{method} {path:.60}: {error:?}");
            }
        }
        let error = expect_error(node, "GET", &format!("{path}/locations"), 400);
        assert!(error.contains(says), "locations {path:.60}: {error:?}");
    }
    let error = expect_error_sending(node, "PUT", &format!("/v1/kv/{long}"), b"v", 400);
    assert!(
        error.contains("1024"),
        "the key error names the limit: {error}"
    );
    // Nothing under what a truncating or lossy edge would have made of them.
    assert_nothing_stored(node, &long[..1024], "a key over the limit, truncated");
    assert_nothing_stored(node, "\u{fffd}", "an invalid UTF-8 key, decoded lossily");
    assert_nothing_stored(node, "%FF", "an invalid UTF-8 key, not decoded");
    assert_nothing_stored(node, "%2E", "a reserved key, not decoded");

    // A value one byte over the limit: 413 naming the limit, nothing stored.
    let over = "v".repeat(MAX_VALUE + 1);
    let error = expect_error_sending(node, "PUT", "/v1/kv/too-big", over.as_bytes(), 413);
    assert!(
        error.contains(&MAX_VALUE.to_string()),
        "the 413 must say the limit ({MAX_VALUE} bytes): {error}"
    );
    assert_nothing_stored(node, "too-big", "a value over the limit");
    // A key already holding a value keeps it when an oversized put is refused.
    kv_put(node.http, "kept", "small").expect("put a small value");
    expect_error_sending(node, "PUT", "/v1/kv/kept", over.as_bytes(), 413);
    assert_eq!(
        kv_get(node.http, "kept").expect("get"),
        Some("small".into())
    );

    // The limits themselves are fine: a 1024-byte key, a value of exactly 1 MiB.
    let at_limit = "v".repeat(MAX_VALUE);
    kv_put(nodes[1].http, &long[..1024], &at_limit).expect("a 1024-byte key and a 1 MiB value");
    assert_eq!(
        kv_get(nodes[2].http, &long[..1024])
            .expect("get")
            .map(|v| v.len()),
        Some(MAX_VALUE)
    );
    // And the node still serves a normal put and get.
    kv_put(node.http, "after bad input", "still here").expect("a normal put");
    assert_eq!(
        kv_get(nodes[1].http, "after bad input").expect("a normal get"),
        Some("still here".into())
    );
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts a CLI run failed with `code`, printed nothing on stdout, and
/// said `says` on stderr; returns stderr.
fn assert_cli_fails(output: &Output, code: i32, says: &str, what: &str) -> String {
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: exit {}; stderr: {stderr}",
        output.status
    );
    assert!(
        output.stdout.is_empty(),
        "{what}: nothing on stdout, got {:?}",
        text(&output.stdout)
    );
    assert!(
        stderr.contains(says),
        "{what}: stderr must say {says:?}: {stderr}"
    );
    stderr
}

/// Bad keys and values through the CLI: exit code 2 and a message that says
/// what is wrong, for every key command; nothing stored; the node still
/// serves the CLI afterwards.
#[test]
fn bad_keys_and_values_through_the_cli_exit_2_and_nothing_is_stored() {
    let scratch = Scratch::new("badkv_cli");
    let nodes = start_ring(&scratch, 1);
    let node = &nodes[0];
    let url = node.url();
    let long = "k".repeat(1025);
    let cases = [
        ("", "the key is empty"),
        (
            long.as_str(),
            "the key is 1025 bytes: a key is at most 1024 bytes",
        ),
        (".", "reserved"),
        ("..", "reserved"),
    ];
    for (key, says) in cases {
        for command in [
            &["put", key, "a value"][..],
            &["get", key],
            &["del", key],
            &["stat", key],
            &["whereis", key],
        ] {
            let what = format!("cairn {} {key:.20}", command[0]);
            let stderr = assert_cli_fails(&cli_at(&url, command), 2, says, &what);
            assert!(stderr.contains("bad input"), "{what}: {stderr}");
        }
    }
    // A key that is not UTF-8 cannot even be an argument.
    let invalid: &OsStr = OsStr::from_bytes(b"k\xff");
    for command in ["put", "get", "del"] {
        let mut args = vec![OsStr::new(command), invalid];
        if command == "put" {
            args.push(OsStr::new("a value"));
        }
        assert_cli_fails(
            &cli_at(&url, &args),
            2,
            "invalid UTF-8",
            &format!("cairn {command} with a non-UTF-8 key"),
        );
    }
    assert_nothing_stored(node, &long[..1024], "a key over the limit, truncated");
    assert_nothing_stored(node, "k\u{fffd}", "a non-UTF-8 key, decoded lossily");

    // A value over 1 MiB from a file: exit 2, the message names the limit.
    let big = scratch.path().join("big.value");
    std::fs::write(&big, vec![b'v'; MAX_VALUE + 1]).expect("write the value file");
    let big = big.to_string_lossy().into_owned();
    assert_cli_fails(
        &cli_at(&url, &["put", "too-big", "-f", &big]),
        2,
        &format!("over {MAX_VALUE} bytes"),
        "cairn put of a value over 1 MiB",
    );
    assert_cli_fails(
        &cli_at(&url, &["get", "too-big"]),
        1,
        "no such key",
        "cairn get of a value that was refused",
    );
    assert_cli_fails(
        &cli_at(&url, &["stat", "too-big"]),
        1,
        "no such key",
        "cairn stat of a value that was refused",
    );

    // The node still serves the CLI.
    let put = cli_at(&url, &["put", "after bad input", "still here"]);
    assert!(put.status.success(), "put: {}", text(&put.stderr));
    let get = cli_at(&url, &["get", "after bad input"]);
    assert!(get.status.success(), "get: {}", text(&get.stderr));
    assert_eq!(text(&get.stdout), "still here");
}

/// A quorum larger than the replica set can never be met: the node refuses
/// to start, with exit code 2 and a message naming the flag, before it
/// makes its data dir.
#[test]
fn a_quorum_over_the_replicas_refuses_to_start() {
    let scratch = Scratch::new("badquorum");
    for (flag, says) in [
        ("--write-quorum", "the write quorum is 4"),
        ("--read-quorum", "the read quorum is 4"),
    ] {
        let mut options = NodeOptions::new(&scratch, flag.trim_start_matches('-'));
        options.extra = ["--replicas", "3", flag, "4"].map(String::from).to_vec();
        let mut process = options.spawn(&scratch);
        let status = process
            .wait_exit(EXIT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{flag} 4 must stop the node: {e}"));
        let stderr = process.stderr();
        assert_eq!(
            status.code(),
            Some(2),
            "{flag} 4: {status}; stderr:\n{stderr}"
        );
        for words in [flag, says, "--replicas", "(3)"] {
            assert!(
                stderr.contains(words),
                "{flag} 4: stderr must say {words:?}:\n{stderr}"
            );
        }
        assert!(
            process.pending_lines().iter().all(|l| !l.contains("ready")),
            "{flag} 4: a refused node must not say it is ready"
        );
        assert!(
            !options.data.exists(),
            "{flag} 4: the data dir must not be made"
        );
    }
}

/// A `--node` where nothing listens is a network error (exit 3) that says the
/// node cannot be reached, for writes and reads alike.
#[test]
fn a_node_url_where_nothing_listens_exits_3() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    let url = format!("http://{addr}");
    for command in [
        &["put", "key", "value"][..],
        &["get", "key"],
        &["del", "key"],
        &["whereis", "key"],
    ] {
        let what = format!("cairn {} against {url}", command[0]);
        let stderr = assert_cli_fails(&cli_at(&url, command), 3, "cannot reach", &what);
        assert!(
            stderr.contains(&url) && stderr.contains("Is a node running"),
            "{what}: the message names the URL and says what to check: {stderr}"
        );
    }
}
