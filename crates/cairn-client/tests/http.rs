//! The client against a scripted HTTP server on loopback: what goes on the
//! wire (method, path, encoding) and how each kind of answer comes back.

use cairn_client::{Client, ClientError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const NODE_JSON: &str = r#"{
  "id": "9f8e7d6c00000000000000000000000000000000000000000000000000000000",
  "addr": "127.0.0.1:7000",
  "http": "127.0.0.1:7070",
  "predecessor": null,
  "successors": [],
  "fingers": []
}"#;

const LOOKUP_JSON: &str = r#"{
  "key_id": "1a2b3c4d00000000000000000000000000000000000000000000000000000000",
  "node": {"id": "9f8e7d6c00000000000000000000000000000000000000000000000000000000", "addr": "127.0.0.1:7003"},
  "hops": 2,
  "micros": 1300
}"#;

/// Serves one request with `status` and `body`, and hands back the request's
/// first line (`GET /v1/node HTTP/1.1`).
async fn serve_once(status: &'static str, body: &'static str) -> (String, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.expect("read");
            assert!(n > 0, "client closed before sending a request");
            request.extend_from_slice(&buf[..n]);
        }
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(response.as_bytes()).await.expect("write");
        socket.shutdown().await.expect("shutdown");
        let head = String::from_utf8_lossy(&request).to_string();
        head.lines().next().unwrap_or_default().to_string()
    });
    (base, server)
}

#[tokio::test]
async fn node_info_gets_v1_node_and_decodes_it() {
    let (base, server) = serve_once("200 OK", NODE_JSON).await;
    let info = Client::new(&base)
        .expect("client")
        .node_info()
        .await
        .expect("info");
    assert_eq!(server.await.expect("server"), "GET /v1/node HTTP/1.1");
    assert_eq!(info.id.short(), "9f8e7d6c");
    assert_eq!(info.http.as_deref(), Some("127.0.0.1:7070"));
}

#[tokio::test]
async fn lookup_sends_the_key_as_one_encoded_segment() {
    let (base, server) = serve_once("200 OK", LOOKUP_JSON).await;
    let client = Client::new(base.trim_start_matches("http://")).expect("client");
    let view = client.lookup("a/b c%?#é").await.expect("lookup");
    assert_eq!(
        server.await.expect("server"),
        "GET /v1/lookup/a%2Fb%20c%25%3F%23%C3%A9 HTTP/1.1"
    );
    assert_eq!(view.hops, 2);
    assert_eq!(view.micros, 1300);
}

#[tokio::test]
async fn leave_posts_and_accepts_any_2xx() {
    let (base, server) = serve_once("202 Accepted", "").await;
    Client::new(&base)
        .expect("client")
        .leave()
        .await
        .expect("leave");
    assert_eq!(
        server.await.expect("server"),
        "POST /v1/node/leave HTTP/1.1"
    );
}

#[tokio::test]
async fn a_json_error_answer_becomes_a_typed_error() {
    let (base, server) = serve_once("414 URI Too Long", r#"{"error":"key over 1024 bytes"}"#).await;
    let err = Client::new(&base)
        .expect("client")
        .ring()
        .await
        .expect_err("414");
    server.await.expect("server");
    assert!(
        matches!(&err, ClientError::BadInput { message } if message == "key over 1024 bytes"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_2xx_with_the_wrong_shape_is_a_decode_error() {
    let (base, server) = serve_once("200 OK", r#"{"members": "nope"}"#).await;
    let err = Client::new(&base)
        .expect("client")
        .ring()
        .await
        .expect_err("decode");
    server.await.expect("server");
    assert!(matches!(err, ClientError::Decode { .. }), "{err:?}");
}

#[tokio::test]
async fn a_bad_key_is_refused_before_anything_is_sent() {
    // Nothing listens on this URL; a request would be Unreachable instead.
    let client = Client::new("http://127.0.0.1:9").expect("client");
    for key in ["", ".", ".."] {
        let err = client.lookup(key).await.expect_err(key);
        assert!(
            matches!(err, ClientError::BadInput { .. }),
            "{key:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_closed_port_is_unreachable_and_says_how_to_start_a_node() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let base = format!("http://{addr}");
    let err = Client::new(&base)
        .expect("client")
        .node_info()
        .await
        .expect_err("refused");
    match &err {
        ClientError::Unreachable { url, reason } => {
            assert_eq!(url, &base);
            assert!(!reason.is_empty());
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(err.to_string().contains("cairn node"), "{err}");
}
