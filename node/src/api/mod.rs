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
//! | POST | `/v1/streams/{id}/whip` | WHIP: publish from an SDP offer; 201, `Location`, the answer ([`whip`]) |
//! | POST | `/v1/streams/{id}/whep` | WHEP: play the stream to an SDP offer; 201, `Location`, the answer |
//! | DELETE | `/v1/sessions/{session}` | end a WHIP or WHEP session |
//! | GET | `/v1/swarm` | every node known, its load, streams and clients, and every pipe ([`crate::monitor`]) |
//! | GET | `/metrics` | Prometheus text |
//! | GET | `/v1/rope` | WebSocket: the same as ROPE calls, and node changes as ROPE events ([`rope`]) |
//!
//! With a token, every request must carry `Authorization: Bearer <token>` (401
//! otherwise). Bodies are limited to 64 KiB; ids are validated; errors are JSON
//! `{"error": "..."}` with 400, 401, 403, 404, 409, 421, 429, 502 or 500.
//!
//! # Trust ([`ApiConfig`]; the `mafalda-node run` flags in brackets)
//!
//! - **Pages and names** (`--api-origins`, `--api-hosts`): a request whose
//!   `Origin` is not the node's own or listed is refused with 403, WebSocket
//!   upgrades included; one whose `Host` is not the API's own address or a
//!   listed name with 421 (DNS rebinding). See [`trust`] for the exact rules.
//! - **Tokens** (`--api-token`, `--api-admin-token`): the app token is what
//!   apps (and the pages they serve) hold; the admin token is the operator's.
//!   Either one opens the API; only the admin token may close what others made.
//!   The `mafalda-node` binary refuses a non-loopback `--api` without a token
//!   unless `--api-insecure` is given.
//! - **Owners** ([`owners`]): what an app makes through the API — egresses,
//!   publications, WebRTC transports, producers and consumers — belongs to
//!   whoever made it: over HTTP the token presented (or "anonymous" when no
//!   token is configured), over ROPE the connection. Only its owner or the
//!   admin token may close it (403, ROPE [`FORBIDDEN`] otherwise); objects the
//!   API did not make (relays piped here) only the admin. Everything a ROPE
//!   connection made closes when it disconnects.
//! - **Caps** ([`Limits`]): each owner holds at most 64 egresses, 16
//!   transports, 64 producers, 256 consumers and 16 publications; one more is
//!   refused (429, ROPE [`LIMIT_REACHED`]) and nothing is made.

mod app_session;
mod cors;
mod health;
mod metrics;
mod openapi;
mod ops;
pub mod owners;
pub mod rope;
pub mod trust;
mod watch;
pub mod webrtc;
pub mod whip;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::extract::{DefaultBodyLimit, Extension, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use self::owners::{AccessError, FORBIDDEN, LIMIT_REACHED, Limits, ObjectKind};
use self::owners::{Caller, ObjectKind as Kind, Owner, Owners, TokenRole};
pub use self::trust::{AllowedHost, AllowedOrigin, TrustConfigError};
use mafalda_media::sdp::SdpError;

use crate::{Node, NodeError};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Who may use the API, from where, and how much each caller may hold.
/// `ApiConfig::default()` is no token, the node's own origin and address only,
/// and the default [`Limits`].
#[derive(Clone)]
#[non_exhaustive]
pub struct ApiConfig {
    /// The app token: required on every request when set; owns what it makes.
    pub token: Option<String>,
    /// The admin token: also opens the API, and may close every object.
    pub admin_token: Option<String>,
    /// Origins allowed besides the node's own (`*`: any; unsafe).
    pub origins: Vec<AllowedOrigin>,
    /// Names (or addresses) the API is reached by besides its bound address.
    pub hosts: Vec<AllowedHost>,
    /// Caps per owner.
    pub limits: Limits,
    /// How long an app session on `/v1/rope` outlives its dropped connection,
    /// waiting for the app to come back with its session token (default 15 s;
    /// zero closes everything at once).
    pub session_grace: std::time::Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            token: None,
            admin_token: None,
            origins: Vec::new(),
            hosts: Vec::new(),
            limits: Limits::default(),
            session_grace: DEFAULT_SESSION_GRACE,
        }
    }
}

/// How long an app session waits for its app to reconnect, by default.
pub const DEFAULT_SESSION_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens stay out of logs.
        f.debug_struct("ApiConfig")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
            .field("origins", &self.origins)
            .field("hosts", &self.hosts)
            .field("limits", &self.limits)
            .field("session_grace", &self.session_grace)
            .finish()
    }
}

#[derive(Clone)]
struct ApiState {
    node: Arc<Node>,
    token: Option<Arc<str>>,
    admin_token: Option<Arc<str>>,
    trust: Arc<trust::Trust>,
    owners: Arc<Owners>,
    /// Numbers ROPE connections, each its own owner.
    next_connection: Arc<AtomicU64>,
    rope_connections: Arc<tokio::sync::Semaphore>,
    /// App sessions on `/v1/rope` waiting for their app to reconnect.
    sessions: Arc<app_session::Sessions>,
    /// WHIP and WHEP sessions.
    sdp_sessions: Arc<whip::SdpSessions>,
}

/// Serves the API for `node` on `listener` with an optional bearer token and
/// otherwise [`ApiConfig::default`]. Returns the address it listens on and the
/// serving task.
pub fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    token: Option<String>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    serve_with(node, listener, ApiConfig { token, ..ApiConfig::default() })
}

/// Serves the API for `node` on `listener` as `config` says. Returns the
/// address it listens on and the serving task; an empty token, or an admin
/// token equal to the app token, is an `InvalidInput` error.
pub fn serve_with(
    node: Arc<Node>,
    listener: TcpListener,
    config: ApiConfig,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let invalid = |message: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, message.to_owned());
    if config.token.as_deref() == Some("") || config.admin_token.as_deref() == Some("") {
        return Err(invalid("API tokens must not be empty"));
    }
    if config.admin_token.is_some() && config.admin_token == config.token {
        // The same secret cannot tell an app from the operator.
        return Err(invalid("the admin token must differ from the app token"));
    }
    let addr = listener.local_addr()?;
    let state = ApiState {
        node,
        token: config.token.map(Arc::from),
        admin_token: config.admin_token.map(Arc::from),
        trust: Arc::new(trust::Trust::new(addr, config.hosts, config.origins)),
        owners: Owners::new(config.limits),
        next_connection: Arc::new(AtomicU64::new(1)),
        rope_connections: Arc::new(tokio::sync::Semaphore::new(rope::MAX_CONNECTIONS)),
        sessions: Arc::new(app_session::Sessions::new(config.session_grace)),
        sdp_sessions: Arc::default(),
    };
    // The API outlives its node (until the process exits, /readyz answers
    // 503), but the sessions it holds end with the node: their mediasoup
    // objects keep workers running, and a worker thread still running when
    // the process exits races the destructors exit runs.
    let stopping = state.node.stopping();
    let (app_sessions, sdp_sessions) = (Arc::clone(&state.sessions), Arc::clone(&state.sdp_sessions));
    let publish_route =
        put(publish).route_layer(middleware::from_fn_with_state(state.clone(), own_publication)).delete(unpublish);
    let app = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/streams/{id}", get(find))
        .route("/v1/streams/{id}/rtp-ingest", publish_route)
        .route("/v1/streams/{id}/rtp-egress", axum::routing::post(consume))
        .route("/v1/streams/{id}/rtp-egress/{egress}", delete(stop_egress))
        .route("/v1/rope", get(rope::upgrade))
        .route("/metrics", get(metrics::render))
        .route("/v1/drain", axum::routing::post(health::drain))
        .route("/v1/streams/{id}/whip", axum::routing::post(whip::publish))
        .route("/v1/streams/{id}/whep", axum::routing::post(whip::play))
        .route("/v1/sessions/{session}", delete(whip::end))
        .route("/v1/swarm", get(swarm_view))
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        // Probes and the API's description need no token (added after the
        // token check, so it skips them).
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/monitor", get(monitor_page))
        // Pages of allowed origins read answers (errors included) and preflight without a token.
        .layer(middleware::from_fn(cors::cors))
        // Outermost: a foreign page or name learns nothing, not even whether a token is needed.
        .layer(middleware::from_fn_with_state(state.clone(), trust::check))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    let task = tokio::spawn(async move {
        let close_on_stop = async move {
            stopping.await;
            let (sdp, apps) = (sdp_sessions.close_all(), app_sessions.close_all().await);
            if sdp + apps > 0 {
                tracing::info!(whip_whep = sdp, apps, "node stopped: its API sessions closed");
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            served = axum::serve(listener, app) => {
                if let Err(error) = served {
                    tracing::warn!(%error, "API server stopped");
                }
            }
            () = close_on_stop => {}
        }
    });
    Ok((addr, task))
}

/// Checks the token and tells the handlers who is calling ([`Caller`]).
async fn authorize(State(state): State<ApiState>, mut request: Request, next: Next) -> Response {
    let role = if state.token.is_none() && state.admin_token.is_none() {
        TokenRole::Anonymous
    } else {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .or_else(|| query_token(&request));
        let is = |token: &Option<Arc<str>>| token.as_deref().zip(presented).is_some_and(|(t, p)| same(t, p));
        if is(&state.admin_token) {
            TokenRole::Admin
        } else if is(&state.token) {
            TokenRole::App
        } else {
            return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token".into());
        }
    };
    request.extensions_mut().insert(Caller { owner: Owner::Http(role), admin: role == TokenRole::Admin });
    next.run(request).await
}

/// Compares in constant time over the token's length.
fn same(token: &str, presented: &str) -> bool {
    presented.len() == token.len() && presented.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
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

/// Counts an HTTP publication against its caller's cap and records it as
/// theirs once made (the publish handler itself stays about the body).
async fn own_publication(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    request: Request,
    next: Next,
) -> Response {
    let mut slot = match state.owners.reserve(&state.node, &caller, Kind::Publication, 1) {
        Ok(slot) => slot,
        Err(refused) => return ops::Refused::from(refused).into_response(),
    };
    let response = next.run(request).await;
    if response.status() == StatusCode::CREATED {
        slot.commit(&id, None).keep();
    }
    response
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
            NodeError::Sdp(SdpError::Unusable(_) | SdpError::NothingUsable(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            NodeError::Sdp(_) => StatusCode::BAD_REQUEST,
            NodeError::WebRtcOff => StatusCode::SERVICE_UNAVAILABLE,
            NodeError::NotFound(_) => StatusCode::NOT_FOUND,
            NodeError::AlreadyPublished(_) => StatusCode::CONFLICT,
            NodeError::NoProvider { .. } | NodeError::PipeRefused { .. } | NodeError::Provenance { .. } => {
                StatusCode::BAD_GATEWAY
            }
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

/// `GET /v1/swarm`: every node this one knows, with its workers, streams,
/// clients and peers, and every pipe as an edge ([`crate::monitor`]).
async fn swarm_view(State(state): State<ApiState>) -> Json<crate::monitor::SwarmView> {
    Json(state.node.swarm_view().await)
}

/// `GET /monitor`: the swarm monitor page (built into the binary). It needs
/// no token to load; it asks for one, and then draws from `swarm.watch` on
/// `/v1/rope`. Its scripts are its own and inline, and it connects only to
/// this node (Content-Security-Policy).
async fn monitor_page() -> Response {
    const PAGE: &str = include_str!("monitor_page/index.html");
    let policy = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:";
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CONTENT_SECURITY_POLICY, policy)], PAGE)
        .into_response()
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

async fn unpublish(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ops::Refused> {
    ops::unpublish_as(&state.node, &state.owners, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn find(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Json<crate::FoundStream>, ApiError> {
    Ok(Json(ops::find(&state.node, &id).await?))
}

async fn consume(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Body(body): Body<ops::EgressBody>,
) -> Result<(StatusCode, Json<crate::Egress>), ops::Refused> {
    Ok((StatusCode::CREATED, Json(ops::consume_as(&state.node, &state.owners, &caller, &id, body).await?)))
}

async fn stop_egress(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((id, egress)): Path<(String, String)>,
) -> Result<StatusCode, ops::Refused> {
    ops::stop_egress_as(&state.node, &state.owners, &caller, &id, &egress)?;
    Ok(StatusCode::NO_CONTENT)
}
