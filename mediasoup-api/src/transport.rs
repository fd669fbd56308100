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
//! | submodule | owns |
//! |---|---|
//! | `webrtc`, `plain`, `pipe`, `direct` | each kind's options, data, state, events and own calls |
//! | `meta` | what is kept per transport (in its `AppData`), and its ROPE state mirror |
//! | `node` | mediasoup Node's JSON shapes (tuples, candidates, SCTP, dumps, stats) |

mod direct;
mod meta;
mod node;
mod pipe;
pub(crate) mod plain;
pub(crate) mod webrtc;

use std::net::IpAddr;

use mafalda_media::mediasoup::prelude::{
    DirectTransport, ListenInfo, PipeTransport, PlainTransport, Protocol, Router, Transport, WebRtcTransport,
};
use mafalda_media::mediasoup::transport::TransportTraceEventType;
use mafalda_media::mediasoup::worker::RequestError;
use mafalda_rope::Value;
use serde::Deserialize;

use crate::error::ApiError;
use crate::session::{Object, Session};
use crate::wire::{null, params};

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
        "createWebRtcTransport" => webrtc::create(session, router_id, router, params, None).await,
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
