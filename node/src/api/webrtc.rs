//! Remote control of media objects over `/v1/rope` (the Remote Mafalda part):
//! the calls a WebRTC client such as mediasoup-client makes, each media object
//! a ROPE object of the connection that made it.
//!
//! | call | target | answers |
//! |---|---|---|
//! | `router.rtpCapabilities` | — | the routers' RTP capabilities |
//! | `webrtc.createTransport` | — | `{id, iceParameters, iceCandidates, dtlsParameters}` |
//! | `connect {dtlsParameters}` | transport | null |
//! | `produce {stream, kind, rtpParameters}` | transport | `{id}`: the track joins `stream` |
//! | `consume {stream, rtpCapabilities}` | transport | `[{id, producerId, kind, rtpParameters}]`, paused |
//! | `resume`, `pause` | consumer | null |
//! | `close` | transport, producer, consumer | null |
//!
//! A transport's object state is `{iceState, dtlsState}` and changes as those
//! do, so a failed DTLS handshake reaches the app as an event (and the node's
//! log as a warning). Everything a connection made closes when it disconnects.
//!
//! Each connection holds at most [`Limits`](super::Limits) transports,
//! producers and consumers (error [`super::LIMIT_REACHED`] past them, nothing
//! made). A track joins a stream only if this connection published it (or
//! holds the admin token): another app's stream is not one to add tracks to.
//! The admin closes another connection's objects with `object.close`
//! ([`super::rope`]).

use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use mafalda_media::mediasoup::prelude::{
    Consumer, DtlsParameters, MediaKind, Producer, RtpCapabilities, RtpParameters, Transport, WebRtcTransport,
    WebRtcTransportRemoteParameters,
};
use mafalda_media::mediasoup::types::data_structures::{DtlsState, IceState};
use mafalda_rope::{ErrorCode, Handler, Request as RopeRequest, RpcError, Server, Value};
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::owners::{Access, AccessError, ObjectKind, Registration};
use super::rope::{params, to_value, unknown};
use crate::Node;

/// Object types this module creates.
pub(super) const TYPES: [&str; 3] = ["webRtcTransport", "producer", "consumer"];

/// Handles the connection's media calls without a target.
pub(super) async fn call(
    node: &Arc<Node>,
    access: &Access,
    server: &Server,
    request: &RopeRequest,
) -> Result<Value, RpcError> {
    match request.method.as_str() {
        "router.rtpCapabilities" => to_value(&node.rtp_capabilities().await?),
        "webrtc.createTransport" => create_transport(node, access, server).await,
        other => Err(unknown(other)),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TransportAnswer {
    id: String,
    ice_parameters: mafalda_media::mediasoup::prelude::IceParameters,
    ice_candidates: Vec<mafalda_media::mediasoup::prelude::IceCandidate>,
    dtls_parameters: DtlsParameters,
}

#[derive(Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct TransportState {
    ice_state: IceState,
    dtls_state: DtlsState,
}

async fn create_transport(node: &Arc<Node>, access: &Access, server: &Server) -> Result<Value, RpcError> {
    let mut slot = access.owners.reserve(node, &access.caller, ObjectKind::Transport, 1)?;
    let transport = node.webrtc_transport().await?;
    let id = transport.id().to_string();
    let state = Arc::new(Mutex::new(TransportState { ice_state: IceState::New, dtls_state: DtlsState::New }));
    let publish = {
        let (server, id, state) = (server.clone(), id.clone(), Arc::clone(&state));
        move |change: &dyn Fn(&mut TransportState)| {
            let snapshot = {
                let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
                change(&mut state);
                state.clone()
            };
            if let Ok(value) = to_value(&snapshot) {
                let _ = server.set_state(&id, value);
            }
        }
    };
    let publish = Arc::new(publish);
    let on_dtls = {
        let (publish, id, node) = (Arc::clone(&publish), id.clone(), Arc::downgrade(node));
        transport.on_dtls_state_change(move |dtls| {
            if dtls == DtlsState::Failed {
                warn!(transport = %id, "DTLS handshake failed: no media will flow on this transport");
                if let Some(node) = node.upgrade() {
                    node.inner.metrics.dtls_failures.inc();
                }
            }
            publish(&|state| state.dtls_state = dtls);
        })
    };
    let on_ice = {
        let publish = Arc::clone(&publish);
        transport.on_ice_state_change(move |ice| publish(&|state| state.ice_state = ice))
    };
    let answer = TransportAnswer {
        id: id.clone(),
        ice_parameters: transport.ice_parameters().clone(),
        ice_candidates: transport.ice_candidates().clone(),
        dtls_parameters: transport.dtls_parameters(),
    };
    let initial = to_value(&*state.lock().unwrap_or_else(PoisonError::into_inner))?;
    let object = TransportObject {
        node: Arc::clone(node),
        access: access.clone(),
        server: server.clone(),
        transport,
        children: Arc::default(),
        _handlers: [Box::new(on_dtls), Box::new(on_ice)],
        _registration: slot.commit(&id, Some(server.clone())),
    };
    server.create(id, TYPES[0], initial, Arc::new(object))?;
    to_value(&answer)
}

/// A WebRTC transport of the connection.
struct TransportObject {
    node: Arc<Node>,
    access: Access,
    server: Server,
    transport: WebRtcTransport,
    /// Producer and consumer objects made on it (closed with it).
    children: Arc<Mutex<Vec<String>>>,
    _handlers: [Box<dyn std::any::Any + Send + Sync>; 2],
    _registration: Registration,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConnectParams {
    dtls_parameters: DtlsParameters,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProduceParams {
    stream: String,
    kind: MediaKind,
    rtp_parameters: RtpParameters,
    /// mediasoup-client passes the app's data through; accepted and ignored.
    #[serde(default)]
    #[allow(dead_code)]
    app_data: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConsumeParams {
    stream: String,
    rtp_capabilities: RtpCapabilities,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConsumerAnswer {
    id: String,
    producer_id: String,
    kind: MediaKind,
    rtp_parameters: RtpParameters,
}

impl Handler for TransportObject {
    fn call(&self, request: RopeRequest) -> BoxFuture<'static, Result<Value, RpcError>> {
        let (node, server, transport) = (Arc::clone(&self.node), self.server.clone(), self.transport.clone());
        let (children, access) = (Arc::clone(&self.children), self.access.clone());
        Box::pin(async move {
            match request.method.as_str() {
                "connect" => {
                    let p: ConnectParams = params(&request.params)?;
                    let remote = WebRtcTransportRemoteParameters { dtls_parameters: p.dtls_parameters };
                    transport.connect(remote).await.map_err(|e| invalid(format!("connect failed: {e}")))?;
                    Ok(Value::Null)
                }
                "produce" => {
                    let p: ProduceParams = params(&request.params)?;
                    let mut slot = access.owners.reserve(&node, &access.caller, ObjectKind::Producer, 1)?;
                    let mut publication = publication_slot(&node, &access, &p.stream)?;
                    let producer = node.produce_webrtc(&transport, &p.stream, p.kind, p.rtp_parameters).await?;
                    if let Some(publication) = &mut publication {
                        publication.commit(&p.stream, None).keep();
                    }
                    let id = producer.id().to_string();
                    let state = to_value(&serde_json::json!({"stream": p.stream, "kind": p.kind}))?;
                    let object = ProducerObject {
                        node: Arc::clone(&node),
                        server: server.clone(),
                        stream: p.stream,
                        producer,
                        _registration: slot.commit(&id, Some(server.clone())),
                    };
                    server.create(id.clone(), TYPES[1], state, Arc::new(object))?;
                    lock(&children).push(id.clone());
                    to_value(&serde_json::json!({ "id": id }))
                }
                "consume" => {
                    let p: ConsumeParams = params(&request.params)?;
                    // One slot up front (fail before piping anything here), the
                    // rest once the track count is known; dropping the consumers
                    // closes them, so a refusal makes nothing.
                    let mut slot = access.owners.reserve(&node, &access.caller, ObjectKind::Consumer, 1)?;
                    let consumers = node.consume_webrtc(&transport, &p.stream, p.rtp_capabilities).await?;
                    let mut more = match consumers.len() {
                        0 | 1 => None,
                        n => Some(access.owners.reserve(&node, &access.caller, ObjectKind::Consumer, n - 1)?),
                    };
                    let mut answers = Vec::new();
                    for (index, consumer) in consumers.into_iter().enumerate() {
                        let id = consumer.id().to_string();
                        answers.push(ConsumerAnswer {
                            id: id.clone(),
                            producer_id: consumer.producer_id().to_string(),
                            kind: consumer.kind(),
                            rtp_parameters: consumer.rtp_parameters().clone(),
                        });
                        let state = to_value(&serde_json::json!({"stream": p.stream, "kind": consumer.kind()}))?;
                        // The stream ended (or was re-piped): the app sees the consumer closed.
                        // Closed from the runtime, not inside mediasoup's callback: dropping
                        // the last consumer handle there would re-enter mediasoup's handlers.
                        let (closer, closed_id) = (server.clone(), id.clone());
                        let runtime = tokio::runtime::Handle::current();
                        consumer
                            .on_producer_close(move || {
                                let (closer, closed_id) = (closer.clone(), closed_id.clone());
                                runtime.spawn(async move { drop(closer.close(&closed_id)) });
                            })
                            .detach();
                        let slot = match (index, more.as_mut()) {
                            (0, _) | (_, None) => &mut slot,
                            (_, Some(more)) => more,
                        };
                        let registration = slot.commit(&id, Some(server.clone()));
                        let object = ConsumerObject { server: server.clone(), consumer, _registration: registration };
                        server.create(id.clone(), TYPES[2], state, Arc::new(object))?;
                        lock(&children).push(id);
                    }
                    to_value(&answers)
                }
                "close" => {
                    for child in lock(&children).drain(..) {
                        let _ = server.close(&child);
                    }
                    server.close(&transport.id().to_string())?;
                    Ok(Value::Null)
                }
                other => Err(unknown(other)),
            }
        })
    }
}

/// A track the connection publishes; its stream ends when it is closed or
/// dropped (with its transport or its connection).
struct ProducerObject {
    node: Arc<Node>,
    server: Server,
    stream: String,
    producer: Producer,
    _registration: Registration,
}

impl Drop for ProducerObject {
    fn drop(&mut self) {
        self.node.release_webrtc_track(&self.stream, self.producer.id());
    }
}

impl Handler for ProducerObject {
    fn call(&self, request: RopeRequest) -> BoxFuture<'static, Result<Value, RpcError>> {
        let (server, id) = (self.server.clone(), self.producer.id().to_string());
        Box::pin(async move {
            match request.method.as_str() {
                "close" => {
                    server.close(&id)?;
                    Ok(Value::Null)
                }
                other => Err(unknown(other)),
            }
        })
    }
}

/// A track the connection receives.
struct ConsumerObject {
    server: Server,
    consumer: Consumer,
    _registration: Registration,
}

impl Handler for ConsumerObject {
    fn call(&self, request: RopeRequest) -> BoxFuture<'static, Result<Value, RpcError>> {
        let (server, consumer) = (self.server.clone(), self.consumer.clone());
        Box::pin(async move {
            match request.method.as_str() {
                "resume" => consumer.resume().await.map_err(|e| internal(e.to_string()))?,
                "pause" => consumer.pause().await.map_err(|e| internal(e.to_string()))?,
                "close" => server.close(&consumer.id().to_string())?,
                other => return Err(unknown(other)),
            }
            Ok(Value::Null)
        })
    }
}

/// A track for `stream`: a new publication (counted against the caller's cap,
/// returned to be recorded once made), or another track of one the caller
/// made; another owner's stream is refused (the admin may add to any).
fn publication_slot(node: &Node, access: &Access, stream: &str) -> Result<Option<super::owners::Slot>, RpcError> {
    let published_here = node.streams().iter().any(|s| s.stream == stream && s.hops == 0);
    if !published_here {
        return Ok(Some(access.owners.reserve(node, &access.caller, ObjectKind::Publication, 1)?));
    }
    match access.owners.publication_owner(node, stream) {
        Some(owner) if owner == access.caller.owner => Ok(None),
        _ if access.caller.admin => Ok(None),
        owner => Err(AccessError::Forbidden {
            what: format!("stream {stream}"),
            owner: owner.map_or_else(|| "the node itself (not through this API)".to_owned(), |o| o.to_string()),
        }
        .into()),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn invalid(message: String) -> RpcError {
    RpcError::new(ErrorCode::InvalidParams, message)
}

fn internal(message: String) -> RpcError {
    RpcError::new(ErrorCode::InternalError, message)
}
