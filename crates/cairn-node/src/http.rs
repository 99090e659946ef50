//! The HTTP API (DESIGN.md, Interfaces): JSON under `/v1`, errors as
//! `{"error": "..."}` with a fitting status, also for unknown routes.

use crate::node::{Node, NodeError};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_core::KeyId;
use cairn_core::api::{ErrorBody, LookupView, NodeInfo, RingView};
use cairn_core::limits::check_key;
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
            NodeError::Lookup(_) => StatusCode::GATEWAY_TIMEOUT,
            NodeError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("bad path: {}", rejection.body_text()),
        )
    }
}

/// The API's routes over a node.
pub fn router(node: Node) -> Router {
    Router::new()
        .route("/v1/node", get(node_info))
        .route("/v1/node/leave", post(leave))
        .route("/v1/ring", get(ring))
        .route("/v1/lookup/{key}", get(lookup))
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
    let bound = listener.local_addr()?;
    let app = router(node.clone());
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

async fn node_info(State(node): State<Node>) -> Json<NodeInfo> {
    Json(node.info())
}

async fn ring(State(node): State<Node>) -> Json<RingView> {
    Json(node.ring_view().await)
}

async fn lookup(
    State(node): State<Node>,
    key: Result<Path<String>, PathRejection>,
) -> Result<Json<LookupView>, ApiError> {
    let Path(key) = key?;
    check_key(&key).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
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

async fn leave(State(node): State<Node>) -> (StatusCode, Json<serde_json::Value>) {
    node.request_stop();
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "leaving": true, "id": node.id() })),
    )
}
