//! WebRTC transports: `router.createWebRtcTransport` (its own listen infos,
//! the deprecated listen IPs, or a WebRTC server given by id) and the calls
//! only they answer (`connect` with DTLS parameters, `restartIce`).

use std::sync::Arc;

use mafalda_media::mediasoup::prelude::{
    Protocol, Router, Transport, WebRtcServer, WebRtcTransport, WebRtcTransportListenInfos, WebRtcTransportOptions,
    WebRtcTransportRemoteParameters,
};
use mafalda_media::mediasoup::types::data_structures::{
    DtlsFingerprint, DtlsParameters, DtlsRole, DtlsState, IceState, SctpState,
};
use mafalda_rope::Value;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::meta::{Extras, Mirror, NumSctpStreams, Outgoing, set_outgoing};
use super::node::{answer, node_dump, node_ice_candidates, node_sctp, node_stats, node_tuple, without_nulls};
use super::{ListenIpWire, bitrate, refused};
use crate::error::ApiError;
use crate::options::{ListenInfoWire, check_app_data, listen_infos};
use crate::session::{Object, Session};
use crate::wire::{null, params, to_json, to_value};

/// mediasoup Node's `WebRtcTransportOptions` (`webRtcServer` by id).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateWire {
    web_rtc_server: Option<String>,
    listen_infos: Option<Vec<ListenInfoWire>>,
    listen_ips: Option<Vec<ListenIpWire>>,
    port: Option<u16>,
    enable_udp: Option<bool>,
    enable_tcp: Option<bool>,
    prefer_udp: Option<bool>,
    prefer_tcp: Option<bool>,
    ice_consent_timeout: Option<u8>,
    initial_available_outgoing_bitrate: Option<u64>,
    enable_sctp: Option<bool>,
    num_sctp_streams: Option<NumSctpStreams>,
    max_sctp_message_size: Option<u32>,
    sctp_send_buffer_size: Option<u32>,
    app_data: Option<serde_json::Value>,
}

/// The crate's options (and the WebRTC server's id, if one is used).
fn options(
    session: &Session,
    wire: CreateWire,
    mirror: &Arc<Mirror<State>>,
    node_server: Option<WebRtcServer>,
) -> Result<(WebRtcTransportOptions, Option<String>), ApiError> {
    check_app_data(wire.app_data.as_ref())?;
    let given = [
        wire.web_rtc_server.is_some() || node_server.is_some(),
        wire.listen_infos.is_some(),
        wire.listen_ips.is_some(),
    ];
    match given.iter().filter(|given| **given).count() {
        0 => {
            return Err(ApiError::invalid(
                "missing webRtcServer, listenInfos and listenIps (one of them is mandatory)",
            ));
        }
        1 => {}
        _ => return Err(ApiError::invalid("only one of webRtcServer, listenInfos and listenIps must be given")),
    }
    let server_id = wire.web_rtc_server.clone();
    let enable_udp = wire.enable_udp.unwrap_or(true);
    let enable_tcp = wire.enable_tcp.unwrap_or(server_id.is_some() || node_server.is_some());
    let prefer_udp = wire.prefer_udp.unwrap_or(false);
    let prefer_tcp = wire.prefer_tcp.unwrap_or(false);
    let mut options = if let Some(server) = node_server {
        WebRtcTransportOptions::new_with_server(server)
    } else if let Some(server_id) = &server_id {
        let Ok(Object::WebRtcServer(server)) = session.get(server_id) else {
            return Err(ApiError::invalid(format!(
                "webRtcServer {server_id} is not a WebRtcServer of this connection"
            )));
        };
        WebRtcTransportOptions::new_with_server(server)
    } else if let Some(infos) = wire.listen_infos {
        let infos = WebRtcTransportListenInfos::try_from(listen_infos(infos, Protocol::Udp)?)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        WebRtcTransportOptions::new(infos)
    } else {
        // mediasoup Node's conversion of the deprecated listen IPs: each IP
        // with each enabled protocol, the preferred one first.
        let mut protocols = Vec::new();
        if enable_udp && (prefer_udp || !enable_tcp || !prefer_tcp) {
            protocols.push(Protocol::Udp);
            if enable_tcp {
                protocols.push(Protocol::Tcp);
            }
        } else if enable_tcp && ((prefer_tcp && !prefer_udp) || !enable_udp) {
            protocols.push(Protocol::Tcp);
            if enable_udp {
                protocols.push(Protocol::Udp);
            }
        }
        let mut infos = Vec::new();
        for ip in wire.listen_ips.unwrap_or_default() {
            let ip = ip.into_listen_info(Protocol::Udp, wire.port)?;
            infos.extend(protocols.iter().map(|protocol| {
                let mut info = ip.clone();
                info.protocol = *protocol;
                info
            }));
        }
        let infos = WebRtcTransportListenInfos::try_from(infos)
            .map_err(|_| ApiError::invalid("no listen IP with an enabled protocol (enableUdp, enableTcp)"))?;
        WebRtcTransportOptions::new(infos)
    };
    options.enable_udp = enable_udp;
    options.enable_tcp = enable_tcp;
    options.prefer_udp = prefer_udp;
    options.prefer_tcp = prefer_tcp;
    if let Some(timeout) = wire.ice_consent_timeout {
        options.ice_consent_timeout = timeout;
    }
    if let Some(bitrate) = wire.initial_available_outgoing_bitrate {
        options.initial_available_outgoing_bitrate = bitrate;
    }
    options.enable_sctp = wire.enable_sctp.unwrap_or(false);
    if let Some(size) = wire.max_sctp_message_size {
        options.max_send_message_size = size;
        options.max_receive_message_size = size;
    }
    if let Some(size) = wire.sctp_send_buffer_size {
        options.sctp_send_buffer_size = size;
    }
    let streams = wire.num_sctp_streams.unwrap_or_default();
    options.app_data = Extras { streams, ..Extras::default() }.app_data(mirror);
    Ok((options, server_id))
}

/// The ROPE state of a WebRTC transport.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct State {
    ice_state: IceState,
    #[serde(skip_serializing_if = "Option::is_none")]
    ice_selected_tuple: Option<serde_json::Value>,
    dtls_state: DtlsState,
    #[serde(skip_serializing_if = "Option::is_none")]
    sctp_state: Option<SctpState>,
}

/// `router.createWebRtcTransport`, or a room's (under the room's object
/// `parent_id`, through the node's WebRTC server `node_server` if it has one).
pub(crate) async fn create(
    session: &Session,
    parent_id: &str,
    router: &Router,
    params_value: &Value,
    node_server: Option<WebRtcServer>,
) -> Result<Value, ApiError> {
    let router_id = parent_id;
    let mirror = Mirror::new(session);
    let (options, server_id) = options(session, params(params_value)?, &mirror, node_server)?;
    if let mafalda_media::mediasoup::webrtc_transport::WebRtcTransportListen::Server { webrtc_server } = &options.listen
        && webrtc_server.worker().id() != router.worker().id()
    {
        return Err(ApiError::Mediasoup("the webRtcServer belongs to another worker than the router".into()));
    }
    session.check_cap("webRtcTransport")?;
    let transport = router.create_webrtc_transport(options).await.map_err(refused)?;
    let id = transport.id().to_string();
    let data = data(&id, &transport);
    let state = State {
        ice_state: transport.ice_state(),
        ice_selected_tuple: transport.ice_selected_tuple().as_ref().map(node_tuple),
        dtls_state: transport.dtls_state(),
        sctp_state: transport.sctp_state(),
    };
    mirror.start(&id, state);
    let mut handlers = vec![
        transport.on_ice_state_change({
            let mirror = Arc::clone(&mirror);
            move |ice_state| {
                mirror.update(|state| state.ice_state = ice_state);
                mirror.emit("icestatechange", vec![to_json(&ice_state)]);
            }
        }),
        transport.on_ice_selected_tuple_change({
            let mirror = Arc::clone(&mirror);
            move |tuple| {
                let tuple = node_tuple(tuple);
                mirror.update(|state| state.ice_selected_tuple = Some(tuple.clone()));
                mirror.emit("iceselectedtuplechange", vec![tuple]);
            }
        }),
        transport.on_dtls_state_change({
            let mirror = Arc::clone(&mirror);
            move |dtls_state| {
                mirror.update(|state| state.dtls_state = dtls_state);
                mirror.emit("dtlsstatechange", vec![to_json(&dtls_state)]);
            }
        }),
        transport.on_sctp_state_change({
            let mirror = Arc::clone(&mirror);
            move |sctp_state| {
                mirror.update(|state| state.sctp_state = Some(sctp_state));
                mirror.emit("sctpstatechange", vec![to_json(&sctp_state)]);
            }
        }),
    ];
    handlers.extend(mirror.common_handlers(&transport, session, &id));
    let initial = mirror.snapshot();
    session.insert(&id, Some(router_id), Object::WebRtcTransport(transport), &initial, handlers)?;
    if let Some(server_id) = server_id
        && let Err(error) = session.add_parent(&id, &server_id)
    {
        session.forget(&id);
        return Err(error);
    }
    answer(data)
}

/// WebRtcTransportData (`PROTOCOL.md`).
fn data(id: &str, transport: &WebRtcTransport) -> serde_json::Value {
    let streams = Extras::of(transport).streams;
    json!({
        "id": id,
        "iceRole": transport.ice_role(),
        "iceParameters": without_nulls(to_json(transport.ice_parameters())),
        "iceCandidates": node_ice_candidates(&to_json(transport.ice_candidates())),
        "iceState": transport.ice_state(),
        "iceSelectedTuple": transport.ice_selected_tuple().as_ref().map(node_tuple),
        "dtlsParameters": transport.dtls_parameters(),
        "dtlsState": transport.dtls_state(),
        "dtlsRemoteCert": transport.dtls_remote_cert(),
        "sctpParameters": transport.sctp_parameters().map(|parameters| node_sctp(&parameters, streams)),
        "sctpState": transport.sctp_state(),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConnectWire {
    dtls_parameters: DtlsWire,
}

/// mediasoup's `DtlsParameters` as an app writes them (`role` optional).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DtlsWire {
    role: Option<DtlsRole>,
    fingerprints: Vec<FingerprintWire>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FingerprintWire {
    algorithm: String,
    value: String,
}

impl DtlsWire {
    fn into_parameters(self) -> Result<DtlsParameters, ApiError> {
        if self.fingerprints.is_empty() {
            return Err(ApiError::invalid("empty dtlsParameters.fingerprints array"));
        }
        let fingerprints = self
            .fingerprints
            .into_iter()
            .map(|FingerprintWire { algorithm, value }| {
                // The crate reads the value by byte offsets: only ASCII is safe to hand it.
                if !value.is_ascii() {
                    return Err(ApiError::invalid("invalid dtlsParameters fingerprint value"));
                }
                serde_json::from_value::<DtlsFingerprint>(json!({ "algorithm": algorithm, "value": value }))
                    .map_err(|e| ApiError::invalid(format!("invalid dtlsParameters fingerprint: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DtlsParameters { role: self.role.unwrap_or_default(), fingerprints })
    }
}

/// The calls only a WebRTC transport answers, and those every transport
/// answers in its own shape.
pub(super) async fn call(transport: &WebRtcTransport, method: &str, params_value: &Value) -> Result<Value, ApiError> {
    match method {
        "connect" => {
            let wire: ConnectWire = params(params_value)?;
            let dtls_parameters = wire.dtls_parameters.into_parameters()?;
            transport.connect(WebRtcTransportRemoteParameters { dtls_parameters }).await.map_err(refused)?;
            null()
        }
        "getStats" => to_value(&node_stats(transport, "webrtc-transport").await?),
        "dump" => to_value(&node_dump(transport).await?),
        "setMaxIncomingBitrate" => {
            transport.set_max_incoming_bitrate(bitrate(params_value)?).await.map_err(refused)?;
            null()
        }
        "setMaxOutgoingBitrate" => {
            let max = bitrate(params_value)?;
            set_outgoing(transport, Outgoing::Max(max), transport.set_max_outgoing_bitrate(max)).await?;
            null()
        }
        "setMinOutgoingBitrate" => {
            let min = bitrate(params_value)?;
            set_outgoing(transport, Outgoing::Min(min), transport.set_min_outgoing_bitrate(min)).await?;
            null()
        }
        "restartIce" => {
            let ice_parameters = transport.restart_ice().await.map_err(refused)?;
            to_value(&json!({ "iceParameters": without_nulls(to_json(&ice_parameters)) }))
        }
        other => Err(ApiError::UnknownMethod(other.to_owned())),
    }
}
