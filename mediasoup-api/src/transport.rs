//! Transports: WebRTC, plain, pipe and direct; their creation under a router
//! and the calls on them (`produce`, `consume`, `produceData` and
//! `consumeData` go to the producer and data modules).
//!
//! STUB, to be replaced at merge by the transport engineer's `transport.rs`:
//! it only creates each kind of transport on 127.0.0.1 (with the few options
//! the producer, data and observer tests need) and forwards `produce`,
//! `consume`, `produceData` and `consumeData` to the producer and data
//! modules, through the [`AnyTransport`] interface the real module defines.

use std::net::{IpAddr, Ipv4Addr};

use mafalda_media::mediasoup::prelude::{
    DirectTransport, DirectTransportOptions, ListenInfo, PipeTransport, PipeTransportOptions, PlainTransport,
    PlainTransportOptions, Protocol, Router, Transport, WebRtcTransport, WebRtcTransportListenInfos,
    WebRtcTransportOptions,
};
use mafalda_rope::Value;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::session::{Object, Session};
use crate::wire::{params, to_json, to_value};

/// Any of the four kinds of transport.
#[derive(Clone)]
pub(crate) enum AnyTransport {
    WebRtc(WebRtcTransport),
    Plain(PlainTransport),
    Pipe(PipeTransport),
    Direct(DirectTransport),
}

impl AnyTransport {
    /// The transport held by a session object, if it is one.
    pub(crate) fn from_object(object: &Object) -> Option<Self> {
        Some(match object {
            Object::WebRtcTransport(transport) => Self::WebRtc(transport.clone()),
            Object::PlainTransport(transport) => Self::Plain(transport.clone()),
            Object::PipeTransport(transport) => Self::Pipe(transport.clone()),
            Object::DirectTransport(transport) => Self::Direct(transport.clone()),
            _ => return None,
        })
    }

    /// The transport as mediasoup's common interface.
    pub(crate) fn as_transport(&self) -> &dyn Transport {
        match self {
            Self::WebRtc(transport) => transport,
            Self::Plain(transport) => transport,
            Self::Pipe(transport) => transport,
            Self::Direct(transport) => transport,
        }
    }

    /// Whether this is a direct transport.
    pub(crate) fn is_direct(&self) -> bool {
        matches!(self, Self::Direct(_))
    }

    /// Whether this is a pipe transport.
    pub(crate) fn is_pipe(&self) -> bool {
        matches!(self, Self::Pipe(_))
    }
}

/// The few transport options the stub reads (the rest are ignored).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct StubOptions {
    enable_sctp: Option<bool>,
    comedia: Option<bool>,
    rtcp_mux: Option<bool>,
}

/// UDP on 127.0.0.1, any port.
fn loopback() -> ListenInfo {
    ListenInfo {
        protocol: Protocol::Udp,
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        announced_address: None,
        expose_internal_ip: false,
        port: None,
        port_range: None,
        flags: None,
        send_buffer_size: None,
        recv_buffer_size: None,
    }
}

/// `router.create*Transport`: makes the transport, records it under router
/// `router_id`, answers `{id}` (and `tuple` for plain and pipe transports).
pub(crate) async fn create(
    session: &Session,
    router_id: &str,
    router: &Router,
    method: &str,
    params_value: &Value,
) -> Result<Value, ApiError> {
    let options: StubOptions = params(params_value)?;
    let enable_sctp = options.enable_sctp.unwrap_or(false);
    let failed = |error: mafalda_media::mediasoup::worker::RequestError| ApiError::from_mediasoup(&error);
    let (id, object, mut answer) = match method {
        "createWebRtcTransport" => {
            let mut transport_options = WebRtcTransportOptions::new(WebRtcTransportListenInfos::new(loopback()));
            transport_options.enable_sctp = enable_sctp;
            let transport = router.create_webrtc_transport(transport_options).await.map_err(failed)?;
            (transport.id().to_string(), Object::WebRtcTransport(transport), json!({}))
        }
        "createPlainTransport" => {
            let mut transport_options = PlainTransportOptions::new(loopback());
            transport_options.enable_sctp = enable_sctp;
            transport_options.comedia = options.comedia.unwrap_or(false);
            transport_options.rtcp_mux = options.rtcp_mux.unwrap_or(true);
            let transport = router.create_plain_transport(transport_options).await.map_err(failed)?;
            let tuple = to_json(&transport.tuple());
            (transport.id().to_string(), Object::PlainTransport(transport), json!({ "tuple": tuple }))
        }
        "createPipeTransport" => {
            let mut transport_options = PipeTransportOptions::new(loopback());
            transport_options.enable_sctp = enable_sctp;
            let transport = router.create_pipe_transport(transport_options).await.map_err(failed)?;
            let tuple = to_json(&transport.tuple());
            (transport.id().to_string(), Object::PipeTransport(transport), json!({ "tuple": tuple }))
        }
        "createDirectTransport" => {
            let transport = router.create_direct_transport(DirectTransportOptions::default()).await.map_err(failed)?;
            (transport.id().to_string(), Object::DirectTransport(transport), json!({}))
        }
        other => return Err(ApiError::UnknownMethod(other.to_owned())),
    };
    let on_close = match AnyTransport::from_object(&object) {
        Some(transport) => {
            let (weak, id) = (session.weak(), id.clone());
            transport.as_transport().on_close(Box::new(move || weak.forget(&id)))
        }
        None => return Err(ApiError::Mediasoup("not a transport".into())),
    };
    session.insert(&id, Some(router_id), object, &json!({}), vec![on_close])?;
    answer["id"] = json!(id);
    to_value(&answer)
}

/// The calls on a transport (the stub forwards the producer and data ones).
pub(crate) async fn call(
    session: &Session,
    id: &str,
    transport: &Object,
    method: &str,
    params_value: &Value,
) -> Result<Value, ApiError> {
    let transport = AnyTransport::from_object(transport).ok_or_else(|| ApiError::closed("Transport"))?;
    if transport.as_transport().closed() {
        return Err(ApiError::closed("Transport"));
    }
    match method {
        "produce" => crate::producer::produce(session, id, &transport, params_value).await,
        "consume" => crate::producer::consume(session, id, &transport, params_value).await,
        "produceData" => crate::data::produce_data(session, id, &transport, params_value).await,
        "consumeData" => crate::data::consume_data(session, id, &transport, params_value).await,
        other => Err(ApiError::UnknownMethod(other.to_owned())),
    }
}
