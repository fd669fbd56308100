//! Pipe transports (router to router, possibly across hosts):
//! `router.createPipeTransport` and `connect` with the other end's address
//! and SRTP parameters.

use std::sync::Arc;

use mafalda_media::mediasoup::prelude::{
    PipeTransport, PipeTransportOptions, PipeTransportRemoteParameters, Protocol, Router, Transport,
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

/// mediasoup Node's `PipeTransportOptions`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateWire {
    listen_info: Option<ListenInfoWire>,
    listen_ip: Option<ListenIpWire>,
    port: Option<u16>,
    enable_sctp: Option<bool>,
    num_sctp_streams: Option<NumSctpStreams>,
    max_sctp_message_size: Option<u32>,
    sctp_send_buffer_size: Option<u32>,
    enable_rtx: Option<bool>,
    enable_srtp: Option<bool>,
    app_data: Option<serde_json::Value>,
}

impl CreateWire {
    fn into_options(self, mirror: &Arc<Mirror<State>>) -> Result<(PipeTransportOptions, Extras), ApiError> {
        check_app_data(self.app_data.as_ref())?;
        let listen_info = match (self.listen_info, self.listen_ip) {
            (None, None) => {
                return Err(ApiError::invalid("missing listenInfo and listenIp (one of them is mandatory)"));
            }
            (Some(_), Some(_)) => return Err(ApiError::invalid("only one of listenInfo and listenIp must be given")),
            (Some(info), None) => info.into_listen_info(Protocol::Udp)?,
            (None, Some(ip)) => ip.into_listen_info(Protocol::Udp, self.port)?,
        };
        let mut options = PipeTransportOptions::new(udp_only(listen_info, "listen")?);
        options.enable_sctp = self.enable_sctp.unwrap_or(false);
        if let Some(size) = self.max_sctp_message_size {
            options.max_send_message_size = size;
            options.max_receive_message_size = size;
        }
        if let Some(size) = self.sctp_send_buffer_size {
            options.sctp_send_buffer_size = size;
        }
        options.enable_rtx = self.enable_rtx.unwrap_or(false);
        options.enable_srtp = self.enable_srtp.unwrap_or(false);
        let extras = Extras { streams: self.num_sctp_streams.unwrap_or_default(), ..Extras::default() };
        options.app_data = extras.app_data(mirror);
        Ok((options, extras))
    }
}

/// The ROPE state of a pipe transport (it has no RTCP tuple).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct State {
    tuple: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    sctp_state: Option<SctpState>,
}

impl State {
    fn of(transport: &PipeTransport) -> Self {
        Self { tuple: node_tuple(&transport.tuple()), sctp_state: transport.sctp_state() }
    }
}

/// `router.createPipeTransport`.
pub(super) async fn create(
    session: &Session,
    router_id: &str,
    router: &Router,
    params_value: &Value,
) -> Result<Value, ApiError> {
    let mirror = Mirror::new(session);
    let wire: CreateWire = params(params_value)?;
    let rtx = wire.enable_rtx.unwrap_or(false);
    let (options, extras) = wire.into_options(&mirror)?;
    session.check_cap("pipeTransport")?;
    let transport = router.create_pipe_transport(options).await.map_err(refused)?;
    let id = transport.id().to_string();
    let data = json!({
        "id": id,
        "tuple": node_tuple(&transport.tuple()),
        "sctpParameters": transport.sctp_parameters().map(|parameters| node_sctp(&parameters, extras.streams)),
        "sctpState": transport.sctp_state(),
        "rtx": rtx,
        "srtpParameters": transport.srtp_parameters(),
    });
    mirror.start(&id, State::of(&transport));
    let mut handlers = vec![transport.on_sctp_state_change({
        let mirror = Arc::clone(&mirror);
        move |sctp_state| {
            mirror.update(|state| state.sctp_state = Some(sctp_state));
            mirror.emit("sctpstatechange", vec![to_json(&sctp_state)]);
        }
    })];
    handlers.extend(mirror.common_handlers(&transport, session, &id));
    let initial = mirror.snapshot();
    session.insert(&id, Some(router_id), Object::PipeTransport(transport), &initial, handlers)?;
    answer(data)
}

/// `connect`'s params on a pipe transport.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConnectWire {
    ip: Option<String>,
    port: Option<u16>,
    srtp_parameters: Option<serde_json::Value>,
}

impl ConnectWire {
    /// The crate's parameters, checked as the worker checks them.
    fn into_parameters(self, transport: &PipeTransport) -> Result<PipeTransportRemoteParameters, ApiError> {
        let srtp_parameters = remote_srtp(self.srtp_parameters, transport.srtp_parameters().is_some())?;
        let ip = remote_ip(self.ip.as_deref().ok_or_else(|| ApiError::invalid("missing ip"))?)?;
        let port = self.port.ok_or_else(|| ApiError::invalid("missing port"))?;
        Ok(PipeTransportRemoteParameters { ip, port, srtp_parameters })
    }
}

/// The calls on a pipe transport.
pub(super) async fn call(transport: &PipeTransport, method: &str, params_value: &Value) -> Result<Value, ApiError> {
    match method {
        "connect" => {
            let wire: ConnectWire = params(params_value)?;
            transport.connect(wire.into_parameters(transport)?).await.map_err(refused)?;
            if let Some(mirror) = Mirror::<State>::of(transport) {
                let now = State::of(transport);
                mirror.update(|state| *state = now);
            }
            null()
        }
        "getStats" => to_value(&node_stats(transport, "pipe-transport").await?),
        "dump" => to_value(&node_dump(transport).await?),
        "setMaxIncomingBitrate" => {
            transport.set_max_incoming_bitrate(bitrate(params_value)?).await.map_err(refused)?;
            null()
        }
        "setMaxOutgoingBitrate" | "setMinOutgoingBitrate" => Err(not_served(method, "PipeTransport")),
        other => Err(ApiError::UnknownMethod(other.to_owned())),
    }
}
