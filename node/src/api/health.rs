//! Probes for load balancers and orchestrators, and the operator's drain.
//!
//! - `GET /healthz`: 200 while the process serves (no token: it says nothing
//!   about the node's streams).
//! - `GET /readyz`: 200 `{"ready":true}` when the node's workers are up, it
//!   has joined the swarm (or has nobody to join) and it is neither draining
//!   nor stopping; otherwise 503 with `{"ready":false,"reason":...}` (no token).
//! - `POST /v1/drain`: starts a drain (see [`Node::drain`](crate::Node::drain))
//!   and answers 202 at once; with an admin token set, only it may.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::owners::Caller;

pub(super) async fn healthz() -> Response {
    (StatusCode::OK, Json(serde_json::json!({ "alive": true }))).into_response()
}

/// Why the node is not ready, if it is not.
pub(super) async fn not_ready(node: &crate::Node) -> Option<&'static str> {
    if node.is_draining() {
        return Some("draining");
    }
    if node.is_stopping() {
        return Some("stopping");
    }
    if node.media().status().is_empty() {
        return Some("no mediasoup worker is running");
    }
    let joined = node.swarm().connected_peers().await.is_ok_and(|peers| !peers.is_empty());
    if !joined && node.has_bootstrap() {
        return Some("not joined to the swarm yet");
    }
    None
}

pub(super) async fn readyz(State(state): State<ApiState>) -> Response {
    match not_ready(&state.node).await {
        None => (StatusCode::OK, Json(serde_json::json!({ "ready": true }))).into_response(),
        Some(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "ready": false, "reason": reason })))
                .into_response()
        }
    }
}

pub(super) async fn drain(State(state): State<ApiState>, Extension(caller): Extension<Caller>) -> Response {
    if state.admin_token.is_some() && !caller.admin {
        return super::error(StatusCode::FORBIDDEN, "draining the node takes the admin token".into());
    }
    let already = state.node.is_draining();
    if !already {
        let node = state.node.clone();
        tokio::spawn(async move {
            node.drain().await;
        });
    }
    (StatusCode::ACCEPTED, Json(serde_json::json!({ "draining": true, "already": already }))).into_response()
}
