//! Transports: WebRTC, plain, pipe and direct; their creation under a router
//! (`router.create*Transport`) and the calls on them (`PROTOCOL.md`).
//!
//! Each kind has its submodule (options, data, state, events, `connect`);
//! here is what they share: the [`AnyTransport`] handle that `produce`,
//! `consume`, `produceData` and `consumeData` hand to the producer and data
//! modules, the calls every transport answers the same way, and mediasoup
//! Node's JSON shapes where the Rust crate writes its own (tuples, ICE
//! candidates, SCTP parameters, dumps, stats).
//!
//! The transport's mediasoup `AppData` is this module's (an app's `appData`
//! stays with the client): it holds what the Node objects report but the
//! crate does not keep ([`Extras`]).

mod direct;
mod pipe;
mod plain;
mod webrtc;

use std::any::Any;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use mafalda_media::mediasoup::prelude::{
    DirectTransport, ListenInfo, PipeTransport, PlainTransport, Protocol, Router, Transport, TransportGeneric,
    WebRtcTransport,
};
use mafalda_media::mediasoup::transport::{TransportTraceEventData, TransportTraceEventType};
use mafalda_media::mediasoup::types::data_structures::{AppData, TransportTuple};
use mafalda_media::mediasoup::types::sctp_parameters::SctpParameters;
use mafalda_media::mediasoup::worker::RequestError;
use mafalda_rope::Value;
use serde::{Deserialize, Serialize};
use serde_json::{Map, json};

use crate::error::ApiError;
use crate::session::{Object, Session, WeakSession};
use crate::wire::{null, params, to_json, to_value};

/// A transport of any kind, as the producer and data modules take it.
#[derive(Clone, Debug)]
pub(crate) enum AnyTransport {
    /// A WebRTC transport.
    WebRtc(WebRtcTransport),
    /// A plain (RTP) transport.
    Plain(PlainTransport),
    /// A pipe transport (router to router).
    Pipe(PipeTransport),
    /// A direct transport (messages and RTP through the app).
    Direct(DirectTransport),
}

impl AnyTransport {
    /// The transport `object` holds, if it is one.
    pub(crate) fn from_object(object: &Object) -> Option<Self> {
        Some(match object {
            Object::WebRtcTransport(transport) => Self::WebRtc(transport.clone()),
            Object::PlainTransport(transport) => Self::Plain(transport.clone()),
            Object::PipeTransport(transport) => Self::Pipe(transport.clone()),
            Object::DirectTransport(transport) => Self::Direct(transport.clone()),
            _ => return None,
        })
    }

    /// mediasoup's transport interface (`produce`, `consume`, ...).
    pub(crate) fn as_transport(&self) -> &dyn Transport {
        match self {
            Self::WebRtc(transport) => transport,
            Self::Plain(transport) => transport,
            Self::Pipe(transport) => transport,
            Self::Direct(transport) => transport,
        }
    }

    /// Whether this is a direct transport.
    #[allow(dead_code, reason = "for the producer and data modules")]
    pub(crate) fn is_direct(&self) -> bool {
        matches!(self, Self::Direct(_))
    }

    /// Whether this is a pipe transport.
    #[allow(dead_code, reason = "for the producer and data modules")]
    pub(crate) fn is_pipe(&self) -> bool {
        matches!(self, Self::Pipe(_))
    }

    /// mediasoup Node's class name, for errors.
    fn class(&self) -> &'static str {
        match self {
            Self::WebRtc(_) => "WebRtcTransport",
            Self::Plain(_) => "PlainTransport",
            Self::Pipe(_) => "PipeTransport",
            Self::Direct(_) => "DirectTransport",
        }
    }
}

/// `router.create*Transport`: makes the transport, records it under router
/// `router_id`, answers its data (`PROTOCOL.md`, Object data).
pub(crate) async fn create(
    session: &Session,
    router_id: &str,
    router: &Router,
    method: &str,
    params: &Value,
) -> Result<Value, ApiError> {
    match method {
        "createWebRtcTransport" => webrtc::create(session, router_id, router, params).await,
        "createPlainTransport" => plain::create(session, router_id, router, params).await,
        "createPipeTransport" => pipe::create(session, router_id, router, params).await,
        "createDirectTransport" => direct::create(session, router_id, router, params).await,
        other => Err(ApiError::UnknownMethod(other.to_owned())),
    }
}

/// The calls on a transport.
pub(crate) async fn call(
    session: &Session,
    id: &str,
    object: &Object,
    method: &str,
    params_value: &Value,
) -> Result<Value, ApiError> {
    let transport = AnyTransport::from_object(object).ok_or_else(|| ApiError::NotFound(id.to_owned()))?;
    if transport.as_transport().closed() {
        return Err(ApiError::closed(transport.class()));
    }
    match method {
        "produce" => crate::producer::produce(session, id, &transport, params_value).await,
        "consume" => crate::producer::consume(session, id, &transport, params_value).await,
        "produceData" => crate::data::produce_data(session, id, &transport, params_value).await,
        "consumeData" => crate::data::consume_data(session, id, &transport, params_value).await,
        "enableTraceEvent" => {
            let wire: TraceTypesWire = params(params_value)?;
            transport.as_transport().enable_trace_event(trace_types(wire.types)?).await.map_err(refused)?;
            null()
        }
        _ => match &transport {
            AnyTransport::WebRtc(transport) => webrtc::call(transport, method, params_value).await,
            AnyTransport::Plain(transport) => plain::call(transport, method, params_value).await,
            AnyTransport::Pipe(transport) => pipe::call(transport, method, params_value).await,
            AnyTransport::Direct(transport) => direct::call(transport, method, params_value).await,
        },
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceTypesWire {
    types: Option<serde_json::Value>,
}

/// mediasoup Node's `enableTraceEvent(types)`: an array of strings, unknown
/// ones ignored; none given is none.
fn trace_types(types: Option<serde_json::Value>) -> Result<Vec<TransportTraceEventType>, ApiError> {
    let types = match types {
        None | Some(serde_json::Value::Null) => return Ok(Vec::new()),
        Some(serde_json::Value::Array(types)) => types,
        Some(_) => return Err(ApiError::invalid("types must be an array")),
    };
    let mut known = Vec::new();
    for kind in types {
        match kind.as_str() {
            None => return Err(ApiError::invalid("every type must be a string")),
            Some("probation") => known.push(TransportTraceEventType::Probation),
            Some("bwe") => known.push(TransportTraceEventType::Bwe),
            Some(_) => {}
        }
    }
    Ok(known)
}

/// `{bitrate}` of the `set*Bitrate` calls.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BitrateWire {
    bitrate: u64,
}

/// A call mediasoup Node has on every transport that the crate does not
/// offer on this kind (`UnsupportedError`).
fn not_served(method: &str, class: &str) -> ApiError {
    ApiError::Unsupported(format!("{method}() is not available on a {class} of this node"))
}

/// Reads the `bitrate` param.
fn bitrate(params_value: &Value) -> Result<u64, ApiError> {
    Ok(params::<BitrateWire>(params_value)?.bitrate)
}

/// The worker's refusal as mediasoup Node's class: the worker's own
/// `TypeError`s (the crate keeps only their text) are told by their words.
fn refused(error: RequestError) -> ApiError {
    if let RequestError::Response { reason } = &error {
        let type_error = ["missing ", "empty ", "cannot set ", "unsupported listen", "unsupported RTCP listen"]
            .iter()
            .any(|start| reason.starts_with(start));
        if type_error || reason.starts_with("invalid") {
            return ApiError::Type(reason.clone());
        }
    }
    ApiError::from_mediasoup(&error)
}

/// What mediasoup Node's transports report that the crate does not keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Extras {
    /// `numSctpStreams` as asked (the crate's worker negotiates up to 65535
    /// streams itself; Node's objects report what the app asked for).
    streams: NumSctpStreams,
    /// Plain transports: RTP and RTCP on one port.
    rtcp_mux: bool,
    /// Plain transports: the remote address is learnt from the first packet.
    comedia: bool,
}

impl Default for Extras {
    fn default() -> Self {
        Self { streams: NumSctpStreams::default(), rtcp_mux: true, comedia: false }
    }
}

/// What this module keeps in a transport's `AppData`.
struct Meta {
    extras: Extras,
    /// The transport's [`Mirror`] (of its kind's state).
    mirror: Arc<dyn Any + Send + Sync>,
    /// The outgoing bitrate limits set (0: none).
    outgoing: Mutex<OutgoingLimits>,
}

/// A transport's outgoing bitrate limits, as the app set them (0: none).
#[derive(Debug, Clone, Copy, Default)]
struct OutgoingLimits {
    min: u64,
    max: u64,
}

/// Which outgoing bitrate limit a call sets.
#[derive(Debug, Clone, Copy)]
enum Outgoing {
    Min(u64),
    Max(u64),
}

/// Sets an outgoing bitrate limit of `transport` with `set`, after mediasoup
/// Node's checks (the embedded worker clamps instead of refusing): a max
/// under the min set, or a min over the max set, is a `TypeError`.
async fn set_outgoing<Fut>(transport: &dyn Transport, limit: Outgoing, set: Fut) -> Result<(), ApiError>
where
    Fut: std::future::Future<Output = Result<(), RequestError>>,
{
    let meta = transport.app_data().downcast_ref::<Meta>();
    let current = meta.map(|meta| *meta.outgoing.lock().unwrap_or_else(PoisonError::into_inner)).unwrap_or_default();
    match limit {
        Outgoing::Max(max) if max > 0 && current.min > 0 && max < current.min => {
            return Err(ApiError::invalid(format!(
                "bitrate must be >= current min outgoing bitrate ({} bps)",
                current.min
            )));
        }
        Outgoing::Min(min) if min > 0 && current.max > 0 && min > current.max => {
            return Err(ApiError::invalid(format!(
                "bitrate must be <= current max outgoing bitrate ({} bps)",
                current.max
            )));
        }
        _ => {}
    }
    set.await.map_err(refused)?;
    if let Some(meta) = meta {
        let mut limits = meta.outgoing.lock().unwrap_or_else(PoisonError::into_inner);
        match limit {
            Outgoing::Min(min) => limits.min = min,
            Outgoing::Max(max) => limits.max = max,
        }
    }
    Ok(())
}

impl Extras {
    /// The `AppData` of a new transport.
    fn app_data<S: Send + 'static>(self, mirror: &Arc<Mirror<S>>) -> AppData {
        AppData::new(Meta {
            extras: self,
            mirror: Arc::clone(mirror) as Arc<dyn Any + Send + Sync>,
            outgoing: Mutex::default(),
        })
    }

    /// The extras of `transport` (defaults for a transport this module did
    /// not make, e.g. `pipeToRouter`'s).
    fn of(transport: &dyn Transport) -> Self {
        transport.app_data().downcast_ref::<Meta>().map(|meta| meta.extras).unwrap_or_default()
    }
}

/// mediasoup Node's `numSctpStreams`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct NumSctpStreams {
    #[serde(rename = "OS")]
    os: u16,
    #[serde(rename = "MIS")]
    mis: u16,
}

impl Default for NumSctpStreams {
    /// mediasoup Node's default.
    fn default() -> Self {
        Self { os: 1024, mis: 1024 }
    }
}

/// A tuple in mediasoup Node's shape: `{localAddress, localIp (its old
/// name), localPort, remoteIp?, remotePort?, protocol}`.
fn node_tuple(tuple: &TransportTuple) -> serde_json::Value {
    let mut node = json!({
        "localAddress": tuple.local_address(),
        "localIp": tuple.local_address(),
        "localPort": tuple.local_port(),
        "protocol": tuple.protocol(),
    });
    if let (Some(ip), Some(port)) = (tuple.remote_ip(), tuple.remote_port()) {
        node["remoteIp"] = json!(ip.to_string());
        node["remotePort"] = json!(port);
    }
    node
}

/// SCTP parameters in mediasoup Node's shape: `{port, OS, MIS, maxMessageSize}`.
fn node_sctp(parameters: &SctpParameters, streams: NumSctpStreams) -> serde_json::Value {
    json!({
        "port": parameters.port,
        "OS": streams.os,
        "MIS": streams.mis,
        "maxMessageSize": parameters.max_message_size,
    })
}

/// Drops an object's `null` fields: Node's objects leave absent ones undefined.
fn without_nulls(mut value: serde_json::Value) -> serde_json::Value {
    if let serde_json::Value::Object(map) = &mut value {
        map.retain(|_, field| !field.is_null());
    }
    value
}

/// Reshapes the tuples of a dump or stat in place.
fn reshape_tuples(map: &mut Map<String, serde_json::Value>) {
    for name in ["tuple", "rtcpTuple", "iceSelectedTuple"] {
        if let Some(field) = map.get_mut(name)
            && let Ok(tuple) = serde_json::from_value::<TransportTuple>(field.clone())
        {
            *field = node_tuple(&tuple);
        }
    }
}

/// A crate table (`[[key, value]]` or `{key: value}`) as Node's `[{key, value}]`.
fn key_values(table: &serde_json::Value) -> serde_json::Value {
    let number = |key: &str| key.parse::<u64>().map_or_else(|_| json!(key), |key| json!(key));
    let entries: Vec<serde_json::Value> = match table {
        serde_json::Value::Object(map) => {
            map.iter().map(|(key, value)| json!({ "key": number(key), "value": value })).collect()
        }
        serde_json::Value::Array(pairs) => pairs
            .iter()
            .filter_map(|pair| match pair.as_array().map(Vec::as_slice) {
                Some([key, value]) => Some(json!({ "key": key, "value": value })),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    serde_json::Value::Array(entries)
}

/// A transport dump in mediasoup Node's shape (`*TransportDump`).
async fn node_dump<T>(transport: &T) -> Result<serde_json::Value, ApiError>
where
    T: TransportGeneric,
    T::Dump: Serialize,
{
    let dump = transport.dump().await.map_err(refused)?;
    let extras = Extras::of(transport);
    let mut dump = without_nulls(to_json(&dump));
    let Some(map) = dump.as_object_mut() else {
        return Ok(dump);
    };
    for name in ["mapSsrcConsumerId", "mapRtxSsrcConsumerId"] {
        if let Some(table) = map.get_mut(name) {
            *table = key_values(table);
        }
    }
    if let Some(serde_json::Value::Object(listener)) = map.get_mut("rtpListener") {
        for name in ["ssrcTable", "midTable", "ridTable"] {
            if let Some(table) = listener.get_mut(name) {
                *table = key_values(table);
            }
        }
    }
    if let Some(serde_json::Value::Object(listener)) = map.get_mut("sctpListener")
        && let Some(table) = listener.get_mut("streamIdTable")
    {
        *table = key_values(table);
    }
    if let Some(extensions) = map.get_mut("recvRtpHeaderExtensions") {
        *extensions = without_nulls(extensions.take());
    }
    if let Some(sctp) = map.get_mut("sctpParameters")
        && let Ok(parameters) = serde_json::from_value::<SctpParameters>(sctp.clone())
    {
        *sctp = node_sctp(&parameters, extras.streams);
    }
    if let Some(candidates) = map.get_mut("iceCandidates") {
        *candidates = node_ice_candidates(candidates);
    }
    if !map.contains_key("maxMessageSize")
        && let Some(size) = map.get("maxReceiveMessageSize").cloned()
    {
        map.insert("maxMessageSize".into(), size);
    }
    reshape_tuples(map);
    Ok(dump)
}

/// ICE candidates in mediasoup Node's shape (with `ip`, the old name of `address`).
fn node_ice_candidates(candidates: &serde_json::Value) -> serde_json::Value {
    let mut candidates = candidates.clone();
    if let serde_json::Value::Array(list) = &mut candidates {
        for candidate in list {
            if let Some(map) = candidate.as_object_mut()
                && let Some(address) = map.get("address").cloned()
            {
                map.insert("ip".into(), address);
            }
        }
    }
    candidates
}

/// A transport's stats in mediasoup Node's shape (`*TransportStat`, with `type`).
async fn node_stats<T>(transport: &T, kind: &str) -> Result<serde_json::Value, ApiError>
where
    T: TransportGeneric,
    T::Stat: Serialize,
{
    let stats = transport.get_stats().await.map_err(refused)?;
    let stats = stats
        .iter()
        .map(|stat| {
            let mut stat = without_nulls(to_json(stat));
            if let Some(map) = stat.as_object_mut() {
                map.insert("type".into(), json!(kind));
                reshape_tuples(map);
            }
            stat
        })
        .collect::<Vec<_>>();
    Ok(serde_json::Value::Array(stats))
}

/// A transport's ROPE state (`PROTOCOL.md`, Object state), kept here so
/// that its event handlers and its calls change it in one place and send it
/// (before their named event). Made before the transport, started once the
/// transport (and so its id) exists.
struct Mirror<S> {
    state: Mutex<Option<S>>,
    session: WeakSession,
    id: OnceLock<String>,
}

impl<S: Serialize + Send + 'static> Mirror<S> {
    fn new(session: &Session) -> Arc<Self> {
        Arc::new(Self { state: Mutex::new(None), session: session.weak(), id: OnceLock::new() })
    }

    /// The mirror of `transport`, if this module made it.
    fn of(transport: &dyn Transport) -> Option<Arc<Self>> {
        let meta = transport.app_data().downcast_ref::<Meta>()?;
        Arc::clone(&meta.mirror).downcast::<Self>().ok()
    }

    fn lock(&self) -> MutexGuard<'_, Option<S>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the transport's id and first state.
    fn start(&self, id: &str, state: S) {
        let _ = self.id.set(id.to_owned());
        *self.lock() = Some(state);
    }

    /// The state now, as JSON.
    fn snapshot(&self) -> serde_json::Value {
        to_json(&*self.lock())
    }

    /// Changes the state and sends it (nothing before [`Mirror::start`]).
    fn update(&self, change: impl FnOnce(&mut S)) {
        let mut state = self.lock();
        if let (Some(state), Some(id)) = (state.as_mut(), self.id.get()) {
            change(state);
            // Sent under the lock, so the client sees the changes in their order.
            self.session.set_state(id, &*state);
        }
    }

    /// Sends mediasoup's event `name` of this transport.
    fn emit(&self, name: &str, args: Vec<serde_json::Value>) {
        if let Some(id) = self.id.get() {
            self.session.emit(id, name, args);
        }
    }

    /// Sends a `trace` event.
    fn trace(&self, trace: &TransportTraceEventData) {
        self.emit("trace", vec![to_json(trace)]);
    }
}

/// Answers a creation: the data, as a ROPE value.
fn answer(data: serde_json::Value) -> Result<Value, ApiError> {
    to_value(&without_nulls(data))
}

/// mediasoup Node's deprecated `TransportListenIp`: an IP, or `{ip, announcedIp?}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum ListenIpWire {
    Ip(String),
    Full(ListenIpFull),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListenIpFull {
    ip: String,
    announced_ip: Option<String>,
}

impl ListenIpWire {
    /// The listen info mediasoup Node makes of it (`port` is the options' own).
    fn into_listen_info(self, protocol: Protocol, port: Option<u16>) -> Result<ListenInfo, ApiError> {
        let (ip, announced_address) = match self {
            Self::Ip(ip) => (ip, None),
            Self::Full(full) => (full.ip, full.announced_ip),
        };
        let ip: IpAddr = ip.parse().map_err(|_| ApiError::invalid(format!("invalid listenIp {ip:?}")))?;
        Ok(ListenInfo {
            protocol,
            ip,
            announced_address,
            expose_internal_ip: false,
            port,
            port_range: None,
            flags: None,
            send_buffer_size: None,
            recv_buffer_size: None,
        })
    }
}

/// SRTP parameters an app passes to `connect`, checked against whether the
/// transport has SRTP (as the worker does, with its `TypeError`s).
fn remote_srtp(
    srtp: Option<serde_json::Value>,
    enabled: bool,
) -> Result<Option<mafalda_media::mediasoup::types::srtp_parameters::SrtpParameters>, ApiError> {
    match (srtp, enabled) {
        (None, false) => Ok(None),
        (Some(_), false) => Err(ApiError::invalid("invalid srtpParameters (SRTP not enabled)")),
        (None, true) => Err(ApiError::invalid("missing srtpParameters (SRTP enabled)")),
        (Some(srtp), true) => serde_json::from_value(srtp)
            .map(Some)
            .map_err(|e| ApiError::invalid(format!("invalid srtpParameters: {e}"))),
    }
}

/// A remote IP an app passes to `connect`.
fn remote_ip(ip: &str) -> Result<IpAddr, ApiError> {
    ip.parse().map_err(|_| ApiError::invalid(format!("invalid IP {ip:?}")))
}

/// A plain or pipe transport's listen info: UDP only, as the worker requires.
fn udp_only(info: ListenInfo, what: &str) -> Result<ListenInfo, ApiError> {
    if info.protocol == Protocol::Udp {
        Ok(info)
    } else {
        Err(ApiError::invalid(format!("unsupported {what} protocol (just UDP)")))
    }
}
