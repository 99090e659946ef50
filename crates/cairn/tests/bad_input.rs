//! Bad input from peers and clients must not hurt a running node: garbage
//! datagrams, bad QUIC streams, and HTTP requests the API refuses (always
//! with a JSON error).

mod common;

use cairn_core::wire::{Peer, Request, Response};
use cairn_node::transport::{
    Answer, INBOUND_READ_TIMEOUT, RequestHandler, Transport, TransportConfig,
};
use common::{
    HttpResponse, Node, Scratch, check_ring, converge, eventually, http_request, start_ring,
};
use std::net::UdpSocket;
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
    let what = format!("{method} {}", &path[..path.len().min(60)]);
    let response = http_request(node.http, method, path).unwrap_or_else(|e| panic!("{what}: {e}"));
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
