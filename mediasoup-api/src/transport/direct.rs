//! Direct transports (RTP, RTCP and data messages through the app):
//! `router.createDirectTransport` and `sendRtcp`; the worker's RTCP comes
//! back as `rtcp` events.

use std::sync::Arc;

use mafalda_media::mediasoup::prelude::{DirectTransport, DirectTransportOptions, Router, Transport};
use mafalda_rope::Value;
use serde::Deserialize;
use serde_json::json;

use super::meta::{Extras, Mirror};
use super::node::{answer, node_dump, node_stats};
use super::not_served;
use crate::error::ApiError;
use crate::options::check_app_data;
use crate::session::{Object, Session};
use crate::wire::{base64, bytes, null, params, to_value};

/// mediasoup Node's `DirectTransportOptions`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateWire {
    max_message_size: Option<u32>,
    app_data: Option<serde_json::Value>,
}

/// A direct transport's ROPE state: `{}`.
type State = serde_json::Value;

/// `router.createDirectTransport`.
pub(super) async fn create(
    session: &Session,
    router_id: &str,
    router: &Router,
    params_value: &Value,
) -> Result<Value, ApiError> {
    let wire: CreateWire = params(params_value)?;
    check_app_data(wire.app_data.as_ref())?;
    let mirror = Mirror::<State>::new(session);
    let mut options = DirectTransportOptions::default();
    if let Some(size) = wire.max_message_size {
        options.max_send_message_size = size;
        options.max_receive_message_size = size;
    }
    options.app_data = Extras::default().app_data(&mirror);
    session.check_cap("directTransport")?;
    let transport = router.create_direct_transport(options).await.map_err(super::refused)?;
    let id = transport.id().to_string();
    mirror.start(&id, json!({}));
    let mut handlers = vec![transport.on_rtcp({
        let mirror = Arc::clone(&mirror);
        move |packet| mirror.emit("rtcp", vec![json!(base64(packet))])
    })];
    handlers.extend(mirror.common_handlers(&transport, session, &id));
    session.insert(&id, Some(router_id), Object::DirectTransport(transport), &json!({}), handlers)?;
    answer(json!({ "id": id }))
}

/// `sendRtcp`'s params.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PacketWire {
    /// The RTCP packet, base64.
    packet: String,
}

/// The calls on a direct transport.
pub(super) async fn call(transport: &DirectTransport, method: &str, params_value: &Value) -> Result<Value, ApiError> {
    match method {
        // As in mediasoup Node: nothing to connect.
        "connect" => null(),
        "getStats" => to_value(&node_stats(transport, "direct-transport").await?),
        "dump" => to_value(&node_dump(transport).await?),
        "setMaxIncomingBitrate" | "setMaxOutgoingBitrate" | "setMinOutgoingBitrate" => {
            Err(not_served(method, "DirectTransport"))
        }
        "sendRtcp" => {
            let wire: PacketWire = params(params_value)?;
            transport.send_rtcp(bytes(&wire.packet)?).map_err(|e| ApiError::InvalidState(e.to_string()))?;
            null()
        }
        other => Err(ApiError::UnknownMethod(other.to_owned())),
    }
}
