//! The apps' HTTP JSON API (v1) over a [`Node`](crate::Node).
//!
//! | method | path | does |
//! |---|---|---|
//! | GET | `/v1/status` | peer id, addresses, peers, workers, streams |
//! | PUT | `/v1/streams/{id}/rtp-ingest` | publish from plain RTP; answers where to send it |
//! | DELETE | `/v1/streams/{id}/rtp-ingest` | stop the publication |
//! | GET | `/v1/streams/{id}` | the stream's providers (hops, RTT, load), or 404 |
//! | POST | `/v1/streams/{id}/rtp-egress` | send the stream's RTP to an address |
//! | DELETE | `/v1/streams/{id}/rtp-egress/{egressId}` | stop that egress |
//! | GET | `/metrics` | Prometheus text |
//! | GET | `/v1/rope` | WebSocket: the same as ROPE calls, and node changes as ROPE events ([`rope`]) |
//!
//! With a token, every request must carry `Authorization: Bearer <token>` (401
//! otherwise). Bodies are limited to 64 KiB; ids are validated; errors are JSON
//! `{"error": "..."}` with 400, 401, 404, 409, 502 or 500.

mod metrics;
mod ops;
pub mod rope;
pub mod webrtc;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{Node, NodeError};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
struct ApiState {
    node: Arc<Node>,
    token: Option<Arc<str>>,
    rope_connections: Arc<tokio::sync::Semaphore>,
}

/// Serves the API for `node` on `listener` (with an optional bearer token).
/// Returns the address it listens on and the serving task.
pub fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    token: Option<String>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let addr = listener.local_addr()?;
    let state = ApiState {
        node,
        token: token.map(Arc::from),
        rope_connections: Arc::new(tokio::sync::Semaphore::new(rope::MAX_CONNECTIONS)),
    };
    let app = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/streams/{id}", get(find))
        .route("/v1/streams/{id}/rtp-ingest", put(publish).delete(unpublish))
        .route("/v1/streams/{id}/rtp-egress", axum::routing::post(consume))
        .route("/v1/streams/{id}/rtp-egress/{egress}", delete(stop_egress))
        .route("/v1/rope", get(rope::upgrade))
        .route("/metrics", get(metrics::render))
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, "API server stopped");
        }
    });
    Ok((addr, task))
}

async fn authorize(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .or_else(|| query_token(&request));
        // Compare in constant time over the token's length.
        let matches = presented.is_some_and(|p| {
            p.len() == token.len() && p.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        });
        if !matches {
            return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token".into());
        }
    }
    next.run(request).await
}

/// The `access_token` query parameter of a `/v1/rope` request (browsers cannot
/// set headers on a WebSocket); other paths take the header only, so tokens do
/// not end up in ordinary URLs and their logs.
fn query_token(request: &Request) -> Option<&str> {
    if request.uri().path() != "/v1/rope" {
        return None;
    }
    request.uri().query()?.split('&').find_map(|pair| pair.strip_prefix("access_token="))
}

pub(crate) fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// Maps node errors onto HTTP statuses.
struct ApiError(NodeError);

impl From<NodeError> for ApiError {
    fn from(error: NodeError) -> Self {
        Self(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            NodeError::InvalidInput(_) => StatusCode::BAD_REQUEST,
            NodeError::NotFound(_) => StatusCode::NOT_FOUND,
            NodeError::AlreadyPublished(_) => StatusCode::CONFLICT,
            NodeError::NoProvider { .. } | NodeError::Provenance { .. } => StatusCode::BAD_GATEWAY,
            NodeError::Forbidden(_) => StatusCode::FORBIDDEN,
            NodeError::OriginConflict { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        error(status, self.0.to_string())
    }
}

/// A JSON body whose rejection is a 400 with the parser's message.
struct Body<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(error(rejection.status(), rejection.body_text())),
        }
    }
}

async fn status(State(state): State<ApiState>) -> Result<Json<ops::StatusAnswer>, ApiError> {
    Ok(Json(ops::status(&state.node).await?))
}

async fn publish(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Body(body): Body<ops::IngestBody>,
) -> Result<(StatusCode, Json<ops::IngestAnswer>), ApiError> {
    Ok((StatusCode::CREATED, Json(ops::publish(&state.node, &id, body).await?)))
}

async fn unpublish(State(state): State<ApiState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    ops::unpublish(&state.node, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn find(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Json<crate::FoundStream>, ApiError> {
    Ok(Json(ops::find(&state.node, &id).await?))
}

async fn consume(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Body(body): Body<ops::EgressBody>,
) -> Result<(StatusCode, Json<crate::Egress>), ApiError> {
    Ok((StatusCode::CREATED, Json(ops::consume(&state.node, &id, body).await?)))
}

async fn stop_egress(
    State(state): State<ApiState>,
    Path((id, egress)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ops::stop_egress(&state.node, &id, &egress)?;
    Ok(StatusCode::NO_CONTENT)
}
