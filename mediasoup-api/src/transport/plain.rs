//! Plain (RTP) transports: `router.createPlainTransport` and `connect` with
//! the remote address and SRTP parameters; with `comedia` the remote address
//! is learnt from the first packet (`tuple` and `rtcptuple` events).

use std::sync::Arc;

use mafalda_media::mediasoup::prelude::{
    PlainTransport, PlainTransportOptions, PlainTransportRemoteParameters, Protocol, Router, SrtpCryptoSuite, Transport,
};
use mafalda_media::mediasoup::types::data_structures::SctpState;
use mafalda_rope::Value;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::meta::{Extras, Mirror, NumSctpStreams};
use super::node::{answer, node_dump, node_sctp, node_stats, node_tuple};
use super::{ListenIpWire, bitrate, not_served, refused, remote_ip, remote_srtp, udp_only};
use crate::error::ApiError;
use crate::options::{ListenInfoWire, check_app_data};
use crate::session::{Object, Session};
use crate::wire::{null, params, to_json, to_value};

/// mediasoup Node's `PlainTransportOptions`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateWire {
    listen_info: Option<ListenInfoWire>,
    rtcp_listen_info: Option<ListenInfoWire>,
    listen_ip: Option<ListenIpWire>,
    port: Option<u16>,
    rtcp_mux: Option<bool>,
    comedia: Option<bool>,
    enable_sctp: Option<bool>,
    num_sctp_streams: Option<NumSctpStreams>,
    max_sctp_message_size: Option<u32>,
    sctp_send_buffer_size: Option<u32>,
    enable_srtp: Option<bool>,
    srtp_crypto_suite: Option<SrtpCryptoSuite>,
    app_data: Option<serde_json::Value>,
}

impl CreateWire {
    fn into_options(self, mirror: &Arc<Mirror<State>>) -> Result<(PlainTransportOptions, Extras), ApiError> {
        check_app_data(self.app_data.as_ref())?;
        let listen_info = match (self.listen_info, self.listen_ip) {
            (None, None) => {
                return Err(ApiError::invalid("missing listenInfo and listenIp (one of them is mandatory)"));
            }
            (Some(_), Some(_)) => return Err(ApiError::invalid("only one of listenInfo and listenIp must be given")),
            (Some(info), None) => info.into_listen_info(Protocol::Udp)?,
            (None, Some(ip)) => ip.into_listen_info(Protocol::Udp, self.port)?,
        };
        let rtcp_mux = self.rtcp_mux.unwrap_or(true);
        let comedia = self.comedia.unwrap_or(false);
        let mut options = PlainTransportOptions::new(udp_only(listen_info, "listen")?);
        // As mediasoup Node does: with RTCP-mux an RTCP listen info is ignored.
        if !rtcp_mux && let Some(info) = self.rtcp_listen_info {
            options.rtcp_listen_info = Some(udp_only(info.into_listen_info(Protocol::Udp)?, "RTCP listen")?);
        }
        options.rtcp_mux = rtcp_mux;
        options.comedia = comedia;
        options.enable_sctp = self.enable_sctp.unwrap_or(false);
        if let Some(size) = self.max_sctp_message_size {
            options.max_send_message_size = size;
            options.max_receive_message_size = size;
        }
        if let Some(size) = self.sctp_send_buffer_size {
            options.sctp_send_buffer_size = size;
        }
        options.enable_srtp = self.enable_srtp.unwrap_or(false);
        if let Some(suite) = self.srtp_crypto_suite {
            options.srtp_crypto_suite = suite;
        }
        let extras = Extras { streams: self.num_sctp_streams.unwrap_or_default(), rtcp_mux, comedia };
        options.app_data = extras.app_data(mirror);
        Ok((options, extras))
    }
}

/// The ROPE state of a plain transport.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct State {
    tuple: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtcp_tuple: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sctp_state: Option<SctpState>,
}

impl State {
    fn of(transport: &PlainTransport) -> Self {
        Self {
            tuple: node_tuple(&transport.tuple()),
            rtcp_tuple: transport.rtcp_tuple().as_ref().map(node_tuple),
            sctp_state: transport.sctp_state(),
        }
    }
}

/// `router.createPlainTransport` (or a room's, under its object `router_id`).
pub(crate) async fn create(
    session: &Session,
    router_id: &str,
    router: &Router,
    params_value: &Value,
) -> Result<Value, ApiError> {
    let mirror = Mirror::new(session);
    let wire: CreateWire = params(params_value)?;
    let (options, extras) = wire.into_options(&mirror)?;
    session.check_cap("plainTransport")?;
    let transport = router.create_plain_transport(options).await.map_err(refused)?;
    let id = transport.id().to_string();
    let data = json!({
        "id": id,
        "rtcpMux": extras.rtcp_mux,
        "comedia": extras.comedia,
        "tuple": node_tuple(&transport.tuple()),
        "rtcpTuple": transport.rtcp_tuple().as_ref().map(node_tuple),
        "sctpParameters": transport.sctp_parameters().map(|parameters| node_sctp(&parameters, extras.streams)),
        "sctpState": transport.sctp_state(),
        "srtpParameters": transport.srtp_parameters(),
    });
    mirror.start(&id, State::of(&transport));
    let mut handlers = vec![
        transport.on_tuple({
            let mirror = Arc::clone(&mirror);
            move |tuple| {
                let tuple = node_tuple(tuple);
                mirror.update(|state| state.tuple = tuple.clone());
                mirror.emit("tuple", vec![tuple]);
            }
        }),
        transport.on_rtcp_tuple({
            let mirror = Arc::clone(&mirror);
            move |tuple| {
                let tuple = node_tuple(tuple);
                mirror.update(|state| state.rtcp_tuple = Some(tuple.clone()));
                mirror.emit("rtcptuple", vec![tuple]);
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
    session.insert(&id, Some(router_id), Object::PlainTransport(transport), &initial, handlers)?;
    answer(data)
}

/// `connect`'s params on a plain transport.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConnectWire {
    ip: Option<String>,
    port: Option<u16>,
    rtcp_port: Option<u16>,
    srtp_parameters: Option<serde_json::Value>,
}

impl ConnectWire {
    /// The crate's parameters, checked as the worker checks them.
    fn into_parameters(
        self,
        transport: &PlainTransport,
        extras: Extras,
    ) -> Result<PlainTransportRemoteParameters, ApiError> {
        let srtp_parameters = remote_srtp(self.srtp_parameters, transport.srtp_parameters().is_some())?;
        let ip = self.ip.as_deref().map(remote_ip).transpose()?;
        if !extras.comedia {
            if ip.is_none() {
                return Err(ApiError::invalid("missing ip"));
            }
            if self.port.is_none() {
                return Err(ApiError::invalid("missing port"));
            }
            match (self.rtcp_port, extras.rtcp_mux) {
                (Some(_), true) => return Err(ApiError::invalid("cannot set rtcpPort with rtcpMux enabled")),
                (None, false) => return Err(ApiError::invalid("missing rtcpPort (required with rtcpMux disabled)")),
                _ => {}
            }
        }
        Ok(PlainTransportRemoteParameters { ip, port: self.port, rtcp_port: self.rtcp_port, srtp_parameters })
    }
}

/// The calls on a plain transport.
pub(super) async fn call(transport: &PlainTransport, method: &str, params_value: &Value) -> Result<Value, ApiError> {
    match method {
        "connect" => {
            let wire: ConnectWire = params(params_value)?;
            let parameters = wire.into_parameters(transport, Extras::of(transport))?;
            transport.connect(parameters).await.map_err(refused)?;
            if let Some(mirror) = Mirror::<State>::of(transport) {
                let now = State::of(transport);
                mirror.update(|state| *state = now);
            }
            null()
        }
        "getStats" => to_value(&node_stats(transport, "plain-rtp-transport").await?),
        "dump" => to_value(&node_dump(transport).await?),
        "setMaxIncomingBitrate" => {
            transport.set_max_incoming_bitrate(bitrate(params_value)?).await.map_err(refused)?;
            null()
        }
        "setMaxOutgoingBitrate" | "setMinOutgoingBitrate" => Err(not_served(method, "PlainTransport")),
        other => Err(ApiError::UnknownMethod(other.to_owned())),
    }
}
