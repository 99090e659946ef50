//! The HTTP API (DESIGN.md, Interfaces): JSON under `/v1`, errors as
//! `{"error": "..."}` with a fitting status, also for unknown routes.
//!
//! Values: `PUT /v1/kv/{key}` stores the body (raw bytes, up to 1 MiB) on a
//! write quorum and answers its version (also as `ETag`); `GET` answers the
//! raw bytes of the newest version a read quorum holds (`HEAD` the same
//! without the body); `DELETE` writes a tombstone. Without a quorum the
//! answer is 503 and says how many replicas answered. A put or delete that
//! answered an error is indeterminate: it may still take effect later.

use crate::node::{Node, NodeError};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_core::KeyId;
use cairn_core::api::{ErrorBody, KeyList, Location, Locations, LookupView, NodeInfo, RingView};
use cairn_core::kv::{KvError, OpResult};
use cairn_core::limits::{KeyError, check_key};
use cairn_core::lookup::LookupError;
use cairn_core::record::{Body as RecordBody, MAX_INLINE_VALUE};
use cairn_core::version::Version;
use std::net::SocketAddr;
use std::time::Instant;
use tokio::net::TcpListener;
use tracing::info;

/// An error answer: a status and a message a user can act on.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

impl From<NodeError> for ApiError {
    fn from(error: NodeError) -> ApiError {
        let status = match &error {
            NodeError::Lookup(LookupError::Leaving) => StatusCode::SERVICE_UNAVAILABLE,
            NodeError::Lookup(_) => StatusCode::GATEWAY_TIMEOUT,
            NodeError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            NodeError::Kv(KvError::Invalid(cairn_core::record::RecordError::ValueTooLarge(_))) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            NodeError::Kv(KvError::Invalid(_) | KvError::KeyNotUtf8) => StatusCode::BAD_REQUEST,
            NodeError::Kv(
                KvError::NoQuorum { .. }
                | KvError::Outpaced { .. }
                | KvError::NoReplicas(_)
                | KvError::NotServing,
            ) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}

/// The API's routes over a node.
pub fn router(node: Node) -> Router {
    Router::new()
        .route("/v1/node", get(node_info))
        .route("/v1/node/leave", post(leave))
        .route("/v1/ring", get(ring))
        .route("/v1/lookup/{key}", get(lookup))
        // A `{key}` segment never matches an empty one: without these the
        // empty key would be "no such route" instead of the key limit.
        .route("/v1/lookup/", get(empty_key))
        .route("/v1/kv/{key}/locations", get(locations))
        .route("/v1/keys", get(list_keys))
        .route(
            "/v1/kv/{key}",
            get(get_value)
                .put(put_value)
                .delete(delete_value)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/kv/", get(empty_key).put(empty_key).delete(empty_key))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no such route; see DESIGN.md, Interfaces",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route",
            )
        })
        .with_state(node)
}

/// Serves the API on an already bound listener in the background, until the node stops.
/// (The caller binds first so that the node can advertise the real address.)
pub fn serve(node: Node, listener: TcpListener) -> std::io::Result<SocketAddr> {
    use axum::serve::ListenerExt;
    let bound = listener.local_addr()?;
    let app = router(node.clone());
    // Small answers must not wait for the client's delayed ACK (Nagle): that
    // cost every request ~30 ms on loopback.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {error}");
        }
    });
    tokio::spawn(async move {
        let stopped = async move { node.stopped().await };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!("HTTP API stopped: {error}");
        }
    });
    info!(%bound, "HTTP API listening");
    Ok(bound)
}

/// `/v1/kv/` and `/v1/lookup/`: a path whose key is empty.
async fn empty_key() -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, KeyError::Empty.to_string())
}

async fn node_info(State(node): State<Node>) -> Json<NodeInfo> {
    let mut info = node.info();
    info.stored = node.stored().await;
    Json(info)
}

async fn ring(State(node): State<Node>) -> Json<RingView> {
    Json(node.ring_view().await)
}

async fn lookup(State(node): State<Node>, uri: Uri) -> Result<Json<LookupView>, ApiError> {
    let key = key_from_path(uri.path(), "/v1/lookup/")?;
    let key_id = KeyId::of_key(key.as_bytes());
    let started = Instant::now();
    let answer = node.lookup(key_id.id()).await?;
    Ok(Json(LookupView {
        key_id: key_id.id(),
        node: answer.node,
        hops: answer.hops,
        micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
    }))
}

/// The `ETag` of a version: its bytes in hex, quoted.
fn etag(version: &Version) -> HeaderValue {
    let tag = format!("\"{}\"", hex::encode(version.to_bytes()));
    HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

fn written(version: Version, status: StatusCode) -> Response {
    let body = Json(serde_json::json!({ "version": hex::encode(version.to_bytes()) }));
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::ETAG, etag(&version));
    response
}

async fn put_value(State(node): State<Node>, uri: Uri, body: Body) -> Result<Response, ApiError> {
    let key = key_from_path(uri.path(), "/v1/kv/")?;
    // One byte over the limit is enough to know it is too large.
    let value = axum::body::to_bytes(body, MAX_INLINE_VALUE + 1)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the value is over {MAX_INLINE_VALUE} bytes, the most stored inline (larger values come with files)"
                ),
            )
        })?;
    if value.len() > MAX_INLINE_VALUE {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the value is over {MAX_INLINE_VALUE} bytes, the most stored inline (larger values come with files)"
            ),
        ));
    }
    match node.put(key.as_bytes(), value.to_vec()).await? {
        OpResult::Written { version } => Ok(written(version, StatusCode::OK)),
        _ => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "a put answered something else",
        )),
    }
}

async fn delete_value(State(node): State<Node>, uri: Uri) -> Result<Response, ApiError> {
    let key = key_from_path(uri.path(), "/v1/kv/")?;
    match node.delete(key.as_bytes()).await? {
        OpResult::Written { version } => Ok(written(version, StatusCode::OK)),
        _ => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "a delete answered something else",
        )),
    }
}

/// `GET` (and `HEAD`, which axum answers from it without the body).
async fn get_value(State(node): State<Node>, uri: Uri) -> Result<Response, ApiError> {
    let key = key_from_path(uri.path(), "/v1/kv/")?;
    let OpResult::Read { record } = node.get(key.as_bytes()).await? else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "a get answered a write",
        ));
    };
    match record {
        Some(record) => match record.body {
            RecordBody::Value(value) => {
                let mut response = (StatusCode::OK, value).into_response();
                let headers = response.headers_mut();
                headers.insert(header::ETAG, etag(&record.version));
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                Ok(response)
            }
            RecordBody::Tombstone => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no such key: {key} (deleted)"),
            )),
        },
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no such key: {key}"),
        )),
    }
}

async fn locations(State(node): State<Node>, uri: Uri) -> Result<Json<Locations>, ApiError> {
    let path = uri.path().strip_suffix("/locations").unwrap_or(uri.path());
    let key = key_from_path(path, "/v1/kv/")?;
    let OpResult::Located { replicas, newest } = node.locate(key.as_bytes()).await? else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "a locate answered otherwise",
        ));
    };
    let newest_version = newest.as_ref().map(|r| r.version);
    Ok(Json(Locations {
        key_id: KeyId::of_key(key.as_bytes()).id(),
        replicas: replicas
            .into_iter()
            .map(|(peer, held)| Location {
                id: peer.id,
                addr: peer.addr,
                holds: matches!(held, Ok(Some(v)) if Some(v) == newest_version),
                answered: held.is_ok(),
                version: held.ok().flatten().map(|v| hex::encode(v.to_bytes())),
            })
            .collect(),
        version: newest_version.map(|v| hex::encode(v.to_bytes())),
        size: newest
            .as_ref()
            .and_then(|r| r.value_bytes().map(|b| b.len() as u64)),
        deleted: newest.as_ref().is_some_and(|r| r.is_tombstone()),
    }))
}

/// The query of `GET /v1/keys`.
#[derive(serde::Deserialize)]
struct ListQuery {
    #[serde(default)]
    prefix: String,
    limit: Option<usize>,
}

/// `GET /v1/keys?prefix=P&limit=N`: live keys starting with P (default all,
/// N at most 10,000, the default).
async fn list_keys(
    State(node): State<Node>,
    query: Result<axum::extract::Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<KeyList>, ApiError> {
    let axum::extract::Query(query) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad query: {e}")))?;
    if query.prefix.len() > cairn_core::limits::MAX_KEY_LEN {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the prefix is {} bytes: a key is at most {} bytes",
                query.prefix.len(),
                cairn_core::limits::MAX_KEY_LEN
            ),
        ));
    }
    let limit = query.limit.unwrap_or(cairn_core::kv::MAX_LIST_KEYS);
    if limit == 0 || limit > cairn_core::kv::MAX_LIST_KEYS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("limit must be 1 to {}", cairn_core::kv::MAX_LIST_KEYS),
        ));
    }
    let OpResult::Listed {
        keys,
        truncated,
        missing,
    } = node.list(&query.prefix, limit).await?
    else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "a listing answered otherwise",
        ));
    };
    Ok(Json(KeyList {
        keys,
        truncated,
        members_missing: missing,
    }))
}

/// The key of a `PREFIX{key}` path, from the raw (still encoded) path: axum's
/// own decoding passes a malformed `%` through as a literal, which must be a 400.
fn key_from_path(path: &str, prefix: &str) -> Result<String, ApiError> {
    let raw = path
        .strip_prefix(prefix)
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "the path has no key"))?;
    let key = decode_segment(raw).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    check_key(&key).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(key)
}

/// Percent-decodes one path segment, refusing what a lenient decoder would
/// pass through: a `%` not followed by two hex digits, and bytes that are not UTF-8.
pub fn decode_segment(raw: &str) -> Result<String, String> {
    let bytes = raw.as_bytes();
    for (at, byte) in bytes.iter().enumerate() {
        if *byte == b'%' {
            let pair = bytes.get(at + 1..at + 3);
            if !pair.is_some_and(|p| p.iter().all(u8::is_ascii_hexdigit)) {
                return Err(format!(
                    "malformed percent-encoding at byte {at} of the key: '%' must be followed by two hex digits"
                ));
            }
        }
    }
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|key| key.into_owned())
        .map_err(|_| "the key is not UTF-8 once percent-decoded".to_string())
}

async fn leave(State(node): State<Node>) -> (StatusCode, Json<serde_json::Value>) {
    node.request_stop();
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "leaving": true, "id": node.id() })),
    )
}

#[cfg(test)]
mod tests {
    use super::decode_segment;

    #[test]
    fn well_formed_segments_decode() {
        assert_eq!(decode_segment("a%2Fb%20c%25").as_deref(), Ok("a/b c%"));
        assert_eq!(decode_segment("%C3%A9").as_deref(), Ok("é"));
        assert_eq!(decode_segment("plain").as_deref(), Ok("plain"));
    }

    #[test]
    fn malformed_percent_encoding_is_refused() {
        for raw in ["%ZZ", "%", "a%4", "%G1x", "abc%"] {
            assert!(decode_segment(raw).is_err(), "{raw} should be refused");
        }
    }

    #[test]
    fn invalid_utf8_is_refused() {
        assert!(decode_segment("%FF").is_err());
        assert!(decode_segment("%C3%28").is_err());
    }
}
