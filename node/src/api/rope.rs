//! `GET /v1/rope`: the apps' API as ROPE over WebSocket (CBOR in binary
//! frames, or JSON in text frames with `?format=json`).
//!
//! Each connection gets its own ROPE server. Its methods without a target are
//! the HTTP operations (`node.status`, `stream.publish`, `stream.unpublish`,
//! `stream.find`, `stream.consume`, `egress.close`); its objects mirror what
//! the node holds, so the app is told of every change as a ROPE event:
//!
//! | object id | type | state | methods |
//! |---|---|---|---|
//! | `stream:<id>` | `stream` | [`StreamStatus`](crate::StreamStatus) | `close`, `consume` |
//! | egress id | `egress` | [`EgressStatus`] | `close` |
//!
//! An egress whose stream is re-piped from another provider sends with new
//! SSRCs: its object's `changed` event carries them. WebRTC clients create
//! and drive media objects on the same connection (see [`super::webrtc`]). Browsers cannot set an
//! `Authorization` header on a WebSocket, so with a token this path also
//! accepts it as the query parameter `access_token`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use hyper_util::rt::TokioIo;
use mafalda_rope::transport::websocket::{Format, accept_key, from_upgraded};
use mafalda_rope::{ErrorCode, Handler, Request as RopeRequest, RpcError, Server, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tracing::{Instrument, debug};

use super::ops::{self, EgressBody, IngestBody};
use super::{ApiState, error};
use crate::{EgressStatus, Node, NodeEvent, TrackSpec};

/// Most `/v1/rope` connections open at once.
pub const MAX_CONNECTIONS: usize = 256;

/// Upgrades the request to a WebSocket and serves ROPE on it.
pub(super) async fn upgrade(State(state): State<ApiState>, mut request: Request) -> Response {
    let headers = request.headers();
    if request.method() != Method::GET
        || !has_token(headers, header::CONNECTION, "upgrade")
        || !has_token(headers, header::UPGRADE, "websocket")
    {
        return error(StatusCode::UPGRADE_REQUIRED, "this path takes WebSocket connections only".into());
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
        let mut response = error(StatusCode::UPGRADE_REQUIRED, "WebSocket version 13 only".into());
        response.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return response;
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).map(|key| accept_key(key.as_bytes())) else {
        return error(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key".into());
    };
    let Some(on_upgrade) = request.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "connection cannot be upgraded".into());
    };
    let Ok(permit) = Arc::clone(&state.rope_connections).try_acquire_owned() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, format!("at most {MAX_CONNECTIONS} ROPE connections"));
    };
    let format = Format::from_query(request.uri().query());
    let node = Arc::clone(&state.node);
    let span = tracing::info_span!("rope_app", ?format);
    tokio::spawn(
        async move {
            match on_upgrade.await {
                Ok(upgraded) => serve_app(node, from_upgraded(TokioIo::new(upgraded), format).await).await,
                Err(error) => debug!(%error, "WebSocket upgrade failed"),
            }
            drop(permit);
        }
        .instrument(span),
    );
    let Ok(accept) = HeaderValue::from_str(&key) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Whether a comma-separated header holds `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|part| part.trim().eq_ignore_ascii_case(token))
}

/// Serves one app connection until it closes.
async fn serve_app(node: Arc<Node>, connection: mafalda_rope::transport::Connection) {
    let methods = Arc::new(AppMethods { node: Arc::clone(&node), server: std::sync::Mutex::default() });
    let server = Server::new(Arc::clone(&methods) as Arc<dyn Handler>);
    *methods.server.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(server.clone());
    // Subscribe before the first sync so no change falls between the two.
    let events = node.subscribe();
    sync_objects(&node, &server);
    let mirror = tokio::spawn(mirror_node(Arc::clone(&node), server.clone(), events));
    debug!("app connected");
    let (_peer, session) = server.accept(connection);
    let _ = session.await;
    mirror.abort();
    // Close what the app made (transports, producers, consumers) and break the
    // handler-to-server links so nothing outlives the connection.
    methods.server.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    for object in server.snapshot().objects {
        let _ = server.close(&object.id);
    }
    debug!("app disconnected");
}

/// Keeps the connection's objects equal to what the node holds.
async fn mirror_node(node: Arc<Node>, server: Server, mut events: broadcast::Receiver<NodeEvent>) {
    loop {
        match events.recv().await {
            // A lag loses nothing: every sync compares against the node itself.
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => sync_objects(&node, &server),
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

const STREAM_TYPE: &str = "stream";
const EGRESS_TYPE: &str = "egress";

fn stream_object_id(stream: &str) -> String {
    format!("stream:{stream}")
}

/// Creates, updates and closes the `stream` and `egress` objects so they match
/// the node; other objects are left alone.
fn sync_objects(node: &Arc<Node>, server: &Server) {
    let mut wanted: Vec<(String, &'static str, Value, Arc<dyn Handler>)> = Vec::new();
    for status in node.streams() {
        let Ok(state) = to_value(&status) else { continue };
        let handler = Arc::new(StreamObject { node: Arc::clone(node), stream: status.stream.clone() });
        wanted.push((stream_object_id(&status.stream), STREAM_TYPE, state, handler));
    }
    for egress in node.egresses() {
        let Ok(state) = to_value(&egress) else { continue };
        let handler = Arc::new(EgressObject { node: Arc::clone(node), egress: egress.clone() });
        wanted.push((egress.id.clone(), EGRESS_TYPE, state, handler));
    }
    let existing = server.snapshot().objects;
    for object in &existing {
        let mirrored = object.object_type == STREAM_TYPE || object.object_type == EGRESS_TYPE;
        if mirrored && !wanted.iter().any(|(id, ..)| *id == object.id) {
            let _ = server.close(&object.id);
        }
    }
    for (id, object_type, state, handler) in wanted {
        match existing.iter().find(|object| object.id == id) {
            Some(object) if object.state == state => {}
            Some(_) => {
                let _ = server.set_state(&id, state);
            }
            None => {
                let _ = server.create(id, object_type, state, handler);
            }
        }
    }
}

/// Answers through JSON so addresses and ids read the same in CBOR and JSON.
pub(super) fn to_value<T: Serialize>(answer: &T) -> Result<Value, RpcError> {
    let json = serde_json::to_value(answer).map_err(|e| RpcError::new(ErrorCode::InternalError, e.to_string()))?;
    Value::serialized(&json).map_err(|e| RpcError::new(ErrorCode::InternalError, e.to_string()))
}

pub(super) fn params<T: DeserializeOwned>(value: &Value) -> Result<T, RpcError> {
    let invalid = |e: String| RpcError::new(ErrorCode::InvalidParams, format!("invalid params: {e}"));
    let json: serde_json::Value = value.deserialized().map_err(|e| invalid(e.to_string()))?;
    serde_json::from_value(json).map_err(|e| invalid(e.to_string()))
}

pub(super) fn unknown(method: &str) -> RpcError {
    RpcError::new(ErrorCode::MethodNotFound, format!("unknown method {method}"))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamParams {
    stream: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishParams {
    stream: String,
    tracks: Vec<TrackSpec>,
    /// Take RTP only from this `IP:PORT`.
    #[serde(default)]
    source: Option<std::net::SocketAddr>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumeParams {
    stream: String,
    ip: std::net::IpAddr,
    port: u16,
    #[serde(default)]
    ports: Option<Vec<u16>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EgressParams {
    egress: String,
}

/// The connection's own methods: the HTTP operations, and creating media objects.
struct AppMethods {
    node: Arc<Node>,
    /// The connection's server, to create media objects in; emptied when the
    /// connection ends (the server owns this handler, so this would be a cycle).
    server: std::sync::Mutex<Option<Server>>,
}

impl Handler for AppMethods {
    fn call(&self, request: RopeRequest) -> BoxFuture<'static, Result<Value, RpcError>> {
        let node = Arc::clone(&self.node);
        let server = self.server.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        Box::pin(async move {
            if request.method.starts_with("router.") || request.method.starts_with("webrtc.") {
                let server = server.ok_or_else(|| RpcError::new(ErrorCode::InternalError, "connection closing"))?;
                return super::webrtc::call(&node, &server, &request).await;
            }
            let node = node.as_ref();
            match request.method.as_str() {
                "node.status" => to_value(&ops::status(node).await?),
                "stream.publish" => {
                    let p: PublishParams = params(&request.params)?;
                    to_value(&ops::publish(node, &p.stream, IngestBody { tracks: p.tracks, source: p.source }).await?)
                }
                "stream.unpublish" => {
                    let p: StreamParams = params(&request.params)?;
                    ops::unpublish(node, &p.stream).await?;
                    Ok(Value::Null)
                }
                "stream.find" => {
                    let p: StreamParams = params(&request.params)?;
                    to_value(&ops::find(node, &p.stream).await?)
                }
                "stream.consume" => {
                    let p: ConsumeParams = params(&request.params)?;
                    to_value(
                        &ops::consume(node, &p.stream, EgressBody { ip: p.ip, port: p.port, ports: p.ports }).await?,
                    )
                }
                "egress.close" => {
                    let p: EgressParams = params(&request.params)?;
                    crate::streams::validate_stream_id(&p.egress)?;
                    node.stop_egress(&p.egress)?;
                    Ok(Value::Null)
                }
                other => Err(unknown(other)),
            }
        })
    }
}

/// A stream the node holds: `close` ends it here, `consume` sends it as RTP.
struct StreamObject {
    node: Arc<Node>,
    stream: String,
}

impl Handler for StreamObject {
    fn call(&self, request: RopeRequest) -> BoxFuture<'static, Result<Value, RpcError>> {
        let node = Arc::clone(&self.node);
        let stream = self.stream.clone();
        Box::pin(async move {
            match request.method.as_str() {
                "close" => {
                    ops::unpublish(&node, &stream).await?;
                    Ok(Value::Null)
                }
                "consume" => {
                    let body: EgressBody = params(&request.params)?;
                    to_value(&ops::consume(&node, &stream, body).await?)
                }
                other => Err(unknown(other)),
            }
        })
    }
}

/// An egress: `close` stops it.
struct EgressObject {
    node: Arc<Node>,
    egress: EgressStatus,
}

impl Handler for EgressObject {
    fn call(&self, request: RopeRequest) -> BoxFuture<'static, Result<Value, RpcError>> {
        let outcome = match request.method.as_str() {
            "close" => ops::stop_egress(&self.node, &self.egress.stream, &self.egress.id)
                .map(|()| Value::Null)
                .map_err(RpcError::from),
            other => Err(unknown(other)),
        };
        Box::pin(async move { outcome })
    }
}
