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
//!
//! With a token, every request must carry `Authorization: Bearer <token>` (401
//! otherwise). Bodies are limited to 64 KiB; ids are validated; errors are JSON
//! `{"error": "..."}` with 400, 401, 404, 409, 502 or 500.

mod metrics;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{Node, NodeError, TrackSpec};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
struct ApiState {
    node: Arc<Node>,
    token: Option<Arc<str>>,
}

/// Serves the API for `node` on `listener` (with an optional bearer token).
/// Returns the address it listens on and the serving task.
pub fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    token: Option<String>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let addr = listener.local_addr()?;
    let state = ApiState { node, token: token.map(Arc::from) };
    let app = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/streams/{id}", get(find))
        .route("/v1/streams/{id}/rtp-ingest", put(publish).delete(unpublish))
        .route("/v1/streams/{id}/rtp-egress", axum::routing::post(consume))
        .route("/v1/streams/{id}/rtp-egress/{egress}", delete(stop_egress))
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
            .and_then(|value| value.strip_prefix("Bearer "));
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

fn error(status: StatusCode, message: String) -> Response {
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
            NodeError::NoProvider { .. } => StatusCode::BAD_GATEWAY,
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkerJson {
    id: String,
    cpu_percent: f32,
    routers: u32,
    transports: u32,
    producers: u32,
    consumers: u32,
}

async fn status(State(state): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    let node = &state.node;
    node.media().sample_cpu();
    let listen: Vec<String> = node.listen_addrs().await?.iter().map(ToString::to_string).collect();
    let peers: Vec<String> =
        node.swarm().connected_peers().await.map_err(NodeError::from)?.iter().map(ToString::to_string).collect();
    let workers: Vec<WorkerJson> = node
        .media()
        .status()
        .into_iter()
        .map(|w| WorkerJson {
            id: w.id.to_string(),
            cpu_percent: w.cpu_percent,
            routers: w.objects.routers,
            transports: w.objects.transports,
            producers: w.objects.producers,
            consumers: w.objects.consumers,
        })
        .collect();
    Ok(Json(serde_json::json!({
        "peerId": node.peer_id().to_string(),
        "listenAddrs": listen,
        "connectedPeers": peers,
        "workers": workers,
        "streams": node.streams(),
        "egresses": node.egress_count(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestBody {
    tracks: Vec<TrackSpec>,
}

#[derive(Serialize)]
struct IngestAnswer {
    ip: IpAddr,
    port: u16,
}

async fn publish(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Body(body): Body<IngestBody>,
) -> Result<(StatusCode, Json<IngestAnswer>), ApiError> {
    let addr = state.node.publish_rtp(&id, body.tracks).await?;
    Ok((StatusCode::CREATED, Json(IngestAnswer { ip: addr.ip(), port: addr.port() })))
}

async fn unpublish(State(state): State<ApiState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    crate::streams::validate_stream_id(&id)?;
    state.node.unpublish(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn find(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    let providers = state.node.find(&id).await?;
    Ok(Json(serde_json::json!({ "stream": id, "providers": providers })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EgressBody {
    ip: IpAddr,
    port: u16,
}

async fn consume(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Body(body): Body<EgressBody>,
) -> Result<(StatusCode, Json<crate::Egress>), ApiError> {
    if body.port == 0 {
        return Err(NodeError::InvalidInput("port must be 1-65535".into()).into());
    }
    let egress = state.node.consume_rtp(&id, SocketAddr::new(body.ip, body.port)).await?;
    Ok((StatusCode::CREATED, Json(egress)))
}

async fn stop_egress(
    State(state): State<ApiState>,
    Path((id, egress)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    crate::streams::validate_stream_id(&id)?;
    crate::streams::validate_stream_id(&egress)?;
    state.node.stop_egress(&egress)?;
    Ok(StatusCode::NO_CONTENT)
}
