//! `GET /v1/rope`: the apps' API as ROPE over WebSocket (CBOR in binary
//! frames, or JSON in text frames with `?format=json`).
//!
//! Each connection gets its own ROPE server. Its methods without a target are
//! the HTTP operations (`node.status`, `stream.publish`, `stream.unpublish`,
//! `stream.find`, `stream.consume`, `egress.close`) and `object.close {id}`,
//! which closes any object by id — a `stream:<id>`, an egress, or a WebRTC
//! transport, producer or consumer of any connection — if this connection
//! made it or holds the admin token (error [`super::FORBIDDEN`] otherwise).
//! Its objects mirror what the node holds, so the app is told of every change
//! as a ROPE event:
//!
//! | object id | type | state | methods |
//! |---|---|---|---|
//! | `stream:<id>` | `stream` | [`StreamStatus`](crate::StreamStatus) | `close`, `consume` |
//! | egress id | `egress` | [`EgressStatus`] | `close` |
//! | `swarm` (after `swarm.watch`) | `swarm` | [`SwarmView`](crate::monitor::SwarmView) | `close` ([`super::watch`]) |
//!
//! Every connection sees every stream and egress, but may close only those it
//! made (the admin token: all); what it made — egresses, publications, media
//! objects — closes when it disconnects. An egress whose stream is re-piped
//! from another provider sends with new SSRCs: its object's `changed` event
//! carries them. WebRTC clients create and drive media objects on the same
//! connection (see [`super::webrtc`]). Browsers cannot set an `Authorization`
//! header on a WebSocket, so with a token this path also accepts it as the
//! query parameter `access_token`; the token decides only whether the
//! connection is the admin, the connection itself is the owner.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use hyper_util::rt::TokioIo;
use mafalda_rope::transport::websocket::{Format, accept_key, from_upgraded};
use mafalda_rope::{ErrorCode, Handler, Request as RopeRequest, RequestId, RpcError, Server, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tracing::{Instrument, debug};

use super::app_session::{AppSession, Closer, SESSION_OBJECT, Sessions};
use super::ops::{self, EgressBody, IngestBody};
use super::owners::{Access, Caller, ObjectKind, Owner};
use super::{ApiState, error};
use crate::{EgressStatus, Node, NodeError, NodeEvent, TrackSpec};

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
    let Some(token) = request.extensions().get::<Caller>().copied() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "request not authorized".into());
    };
    let Ok(permit) = Arc::clone(&state.rope_connections).try_acquire_owned() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, format!("at most {MAX_CONNECTIONS} ROPE connections"));
    };
    let format = Format::from_query(request.uri().query());
    let resumed = match query_value(request.uri().query(), "session") {
        Some(session) => state.sessions.resume(session, token.admin).await,
        None => None,
    };
    let sessions = Arc::clone(&state.sessions);
    let app = match resumed {
        Some(app) => app,
        None => {
            // The session owns what it makes; its token decides only whether it is the admin.
            let connection = state.next_connection.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let access = Access {
                owners: Arc::clone(&state.owners),
                caller: Caller { owner: Owner::Connection(connection), admin: token.admin },
                admin_configured: state.admin_token.is_some(),
            };
            // Remote Mediasoup: any connection that passed the token check may run
            // workers; naming files on the node takes the admin (or a node with no tokens).
            let tokens_configured = state.token.is_some() || state.admin_token.is_some();
            let grants = mafalda_mediasoup_api::Grants { workers: true, files: token.admin || !tokens_configured };
            let host = Arc::clone(state.node.inner.app_media.host());
            start_app(Arc::clone(&state.node), access, (host, grants), sessions.grace())
        }
    };
    let span = tracing::info_span!("rope_app", owner = %app.access.caller.owner, ?format);
    let client = state.node.client();
    tokio::spawn(
        async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    debug!("app connected");
                    let connection = from_upgraded(TokioIo::new(upgraded), format).await;
                    sessions.serve(Arc::clone(&app), connection).await;
                    debug!("app disconnected");
                }
                Err(error) => debug!(%error, "WebSocket upgrade failed"),
            }
            drop((permit, client));
            sessions.park(app).await;
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

/// The value of `name` in a URL query, if given once or more (the first).
fn query_value<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// Opens a new app session: its ROPE server (with the `session` object
/// carrying its token), its mediasoup session, its mirror of the node.
fn start_app(
    node: Arc<Node>,
    access: Access,
    (host, grants): (Arc<mafalda_mediasoup_api::Host>, mafalda_mediasoup_api::Grants),
    grace: std::time::Duration,
) -> Arc<AppSession> {
    let connection_number = match access.caller.owner {
        Owner::Connection(number) => number,
        Owner::Http(_) => 0,
    };
    let methods = Arc::new(AppMethods {
        connection: connection_number,
        node: Arc::clone(&node),
        access: access.clone(),
        server: std::sync::Mutex::default(),
        mediasoup: std::sync::OnceLock::new(),
    });
    let server = Server::new(Arc::clone(&methods) as Arc<dyn Handler>);
    *methods.server.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(server.clone());
    let mediasoup = mafalda_mediasoup_api::Session::new(host, server.clone(), grants);
    let entry = crate::rooms::EntryLink { session: connection_number, server: server.clone() };
    mediasoup.serve_rooms(Arc::new(crate::rooms::NodeRooms { inner: Arc::downgrade(&node.inner), entry: Some(entry) }));
    let _ = methods.mediasoup.set(mediasoup.clone());
    let token = Sessions::new_token();
    let state = serde_json::json!({ "token": token, "graceMs": u64::try_from(grace.as_millis()).unwrap_or(u64::MAX) });
    if let Ok(state) = to_value(&state) {
        let _ = server.create(SESSION_OBJECT, SESSION_OBJECT, state, Arc::new(SessionObject));
    }
    // Subscribe before the first sync so no change falls between the two.
    let events = node.subscribe();
    sync_objects(&node, &access, &server);
    let mirror = tokio::spawn(mirror_node(Arc::clone(&node), access.clone(), server.clone(), events));
    let closer = AppCloser {
        node,
        access: access.clone(),
        methods,
        server: server.clone(),
        mediasoup,
        mirror,
        connection: connection_number,
    };
    Arc::new(AppSession::new(token, access, server, Box::new(closer)))
}

/// The `session` object: it has no methods.
struct SessionObject;

impl Handler for SessionObject {
    fn call(&self, request: RopeRequest) -> BoxFuture<'static, Result<Value, RpcError>> {
        let method = request.method;
        Box::pin(async move { Err(unknown(&method)) })
    }
}

/// Closes everything an app session made.
struct AppCloser {
    node: Arc<Node>,
    access: Access,
    methods: Arc<AppMethods>,
    server: Server,
    mediasoup: mafalda_mediasoup_api::Session,
    mirror: tokio::task::JoinHandle<()>,
    connection: u64,
}

impl Closer for AppCloser {
    fn close(&self) -> BoxFuture<'static, ()> {
        self.mirror.abort();
        // Its mediasoup objects first: they are ROPE objects too, and their
        // mediasoup handles live in the session.
        self.mediasoup.close_all();
        crate::app_media::entry::end_session(&self.node.inner, self.connection);
        // Close what the app made (transports, producers, consumers) and break the
        // handler-to-server links so nothing outlives the session.
        self.methods.server.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        for object in self.server.snapshot().objects {
            let _ = self.server.close(&object.id);
        }
        let (node, access) = (Arc::clone(&self.node), self.access.clone());
        Box::pin(async move {
            // Then the egresses and publications it made, which live in the node.
            for (kind, id) in access.owners.take_owned(access.caller.owner) {
                match kind {
                    ObjectKind::Egress => drop(node.stop_egress(&id)),
                    ObjectKind::Publication => drop(node.unpublish(&id).await),
                    ObjectKind::Transport | ObjectKind::Producer | ObjectKind::Consumer | ObjectKind::Session => {}
                }
            }
            debug!("app session closed");
        })
    }
}

/// Keeps the connection's objects equal to what the node holds.
async fn mirror_node(node: Arc<Node>, access: Access, server: Server, mut events: broadcast::Receiver<NodeEvent>) {
    loop {
        match events.recv().await {
            // A lag loses nothing: every sync compares against the node itself.
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => sync_objects(&node, &access, &server),
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
fn sync_objects(node: &Arc<Node>, access: &Access, server: &Server) {
    let mut wanted: Vec<(String, &'static str, Value, Arc<dyn Handler>)> = Vec::new();
    for status in node.streams() {
        let Ok(state) = to_value(&status) else { continue };
        let handler =
            Arc::new(StreamObject { node: Arc::clone(node), access: access.clone(), stream: status.stream.clone() });
        wanted.push((stream_object_id(&status.stream), STREAM_TYPE, state, handler));
    }
    for egress in node.egresses() {
        let Ok(state) = to_value(&egress) else { continue };
        let handler = Arc::new(EgressObject { node: Arc::clone(node), access: access.clone(), egress: egress.clone() });
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

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectParams {
    id: String,
}

/// The connection's own methods: the HTTP operations, and creating media objects.
struct AppMethods {
    /// The connection's number (its owner id; its session id on other nodes).
    connection: u64,
    node: Arc<Node>,
    access: Access,
    /// The connection's server, to create media objects in; emptied when the
    /// connection ends (the server owns this handler, so this would be a cycle).
    server: std::sync::Mutex<Option<Server>>,
    /// Remote Mediasoup: the connection's mediasoup objects (`mediasoup.*`).
    mediasoup: std::sync::OnceLock<mafalda_mediasoup_api::Session>,
}

impl Handler for AppMethods {
    fn call(&self, request: RopeRequest) -> BoxFuture<'static, Result<Value, RpcError>> {
        let (node, access) = (Arc::clone(&self.node), self.access.clone());
        let server = self.server.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let mediasoup = self.mediasoup.get().cloned();
        let connection = self.connection;
        Box::pin(async move {
            if mafalda_mediasoup_api::Session::handles(&request.method) {
                let mediasoup =
                    mediasoup.ok_or_else(|| RpcError::new(ErrorCode::InternalError, "connection closing"))?;
                if request.method == "mediasoup.createWorker"
                    && let Some(host) = worker_node(&node, &request.params)?
                {
                    let server = server.ok_or_else(|| RpcError::new(ErrorCode::InternalError, "connection closing"))?;
                    return crate::app_media::entry::create_worker(
                        &node.inner,
                        connection,
                        &server,
                        host,
                        request.params,
                    )
                    .await;
                }
                return mediasoup.call_root(&request.method, &request.params).await;
            }
            if request.method.starts_with("router.") || request.method.starts_with("webrtc.") {
                let server = server.ok_or_else(|| RpcError::new(ErrorCode::InternalError, "connection closing"))?;
                return super::webrtc::call(&node, &access, &server, &request).await;
            }
            if request.method == "swarm.watch" {
                let server = server.ok_or_else(|| RpcError::new(ErrorCode::InternalError, "connection closing"))?;
                return super::watch::watch(&node, &server).await;
            }
            let (owners, caller) = (&access.owners, &access.caller);
            let node = node.as_ref();
            match request.method.as_str() {
                "node.status" => to_value(&ops::status(node).await?),
                "node.drain" => {
                    if access.admin_configured && !caller.admin {
                        return Err(RpcError::new(
                            ErrorCode::Application(crate::error_codes::FORBIDDEN),
                            "draining the node takes the admin token",
                        ));
                    }
                    if !node.is_draining() {
                        let node = node.clone();
                        tokio::spawn(async move {
                            node.drain().await;
                        });
                    }
                    Ok(Value::Bool(true))
                }
                "stream.publish" => {
                    let p: PublishParams = params(&request.params)?;
                    let mut slot = owners.reserve(node, caller, ObjectKind::Publication, 1)?;
                    let answer = to_value(
                        &ops::publish(node, &p.stream, IngestBody { tracks: p.tracks, source: p.source }).await?,
                    )?;
                    slot.commit(&p.stream, None).keep();
                    Ok(answer)
                }
                "stream.unpublish" => {
                    let p: StreamParams = params(&request.params)?;
                    ops::unpublish_as(node, owners, caller, &p.stream).await?;
                    Ok(Value::Null)
                }
                "stream.find" => {
                    let p: StreamParams = params(&request.params)?;
                    to_value(&ops::find(node, &p.stream).await?)
                }
                "stream.consume" => {
                    let p: ConsumeParams = params(&request.params)?;
                    let body = EgressBody { ip: p.ip, port: p.port, ports: p.ports };
                    to_value(&ops::consume_as(node, owners, caller, &p.stream, body).await?)
                }
                "egress.close" => {
                    let p: EgressParams = params(&request.params)?;
                    crate::streams::validate_stream_id(&p.egress)?;
                    close_egress(node, &access, &p.egress)?;
                    Ok(Value::Null)
                }
                "object.close" => {
                    let p: ObjectParams = params(&request.params)?;
                    close_object(node, &access, &p.id).await?;
                    Ok(Value::Null)
                }
                other => Err(unknown(other)),
            }
        })
    }
}

/// The node `mediasoup.createWorker` names in `node`, when it is another one.
fn worker_node(node: &Node, params: &Value) -> Result<Option<mafalda_swarm::PeerId>, RpcError> {
    let params: serde_json::Value = params.deserialized().unwrap_or_default();
    let Some(peer) = params.get("node").filter(|value| !value.is_null()) else { return Ok(None) };
    let peer = peer
        .as_str()
        .and_then(|text| text.parse::<mafalda_swarm::PeerId>().ok())
        .ok_or_else(|| mafalda_mediasoup_api::ApiError::invalid("node must be a peer id"))?;
    Ok((peer != node.peer_id()).then_some(peer))
}

/// Stops egress `id` (of whichever stream) if `access` may.
fn close_egress(node: &Node, access: &Access, id: &str) -> Result<(), RpcError> {
    let stream = node
        .egresses()
        .into_iter()
        .find(|e| e.id == id)
        .map(|e| e.stream)
        .ok_or_else(|| NodeError::NotFound(format!("egress {id}")))?;
    Ok(ops::stop_egress_as(node, &access.owners, &access.caller, &stream, id)?)
}

/// `object.close`: any object by id, this connection's or (for its owner and
/// the admin) another's.
async fn close_object(node: &Node, access: &Access, id: &str) -> Result<(), RpcError> {
    if let Some(stream) = id.strip_prefix("stream:") {
        return Ok(ops::unpublish_as(node, &access.owners, &access.caller, stream).await?);
    }
    if node.egresses().iter().any(|e| e.id == id) {
        return close_egress(node, access, id);
    }
    let (kind, server) = access.owners.webrtc_object(id).ok_or_else(|| NodeError::NotFound(format!("object {id}")))?;
    access.owners.may_close(node, &access.caller, kind, id)?;
    // Through the object's own `close`, so a transport takes its producers and consumers along.
    let close = RopeRequest {
        id: RequestId::Number(0),
        method: "close".into(),
        target: Some(id.to_owned()),
        params: Value::Null,
    };
    server.dispatch(close).await.map(drop)
}

/// A stream the node holds: `close` ends it here (its publisher and the admin
/// may), `consume` sends it as RTP.
struct StreamObject {
    node: Arc<Node>,
    access: Access,
    stream: String,
}

impl Handler for StreamObject {
    fn call(&self, request: RopeRequest) -> BoxFuture<'static, Result<Value, RpcError>> {
        let (node, access) = (Arc::clone(&self.node), self.access.clone());
        let stream = self.stream.clone();
        Box::pin(async move {
            match request.method.as_str() {
                "close" => {
                    ops::unpublish_as(&node, &access.owners, &access.caller, &stream).await?;
                    Ok(Value::Null)
                }
                "consume" => {
                    let body: EgressBody = params(&request.params)?;
                    to_value(&ops::consume_as(&node, &access.owners, &access.caller, &stream, body).await?)
                }
                other => Err(unknown(other)),
            }
        })
    }
}

/// An egress: `close` stops it (its maker and the admin may).
struct EgressObject {
    node: Arc<Node>,
    access: Access,
    egress: EgressStatus,
}

impl Handler for EgressObject {
    fn call(&self, request: RopeRequest) -> BoxFuture<'static, Result<Value, RpcError>> {
        let outcome = match request.method.as_str() {
            "close" => ops::stop_egress_as(
                &self.node,
                &self.access.owners,
                &self.access.caller,
                &self.egress.stream,
                &self.egress.id,
            )
            .map(|()| Value::Null)
            .map_err(RpcError::from),
            other => Err(unknown(other)),
        };
        Box::pin(async move { outcome })
    }
}
