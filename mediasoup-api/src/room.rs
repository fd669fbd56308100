//! Rooms: mediasoup's API on a room that spans nodes (`PROTOCOL.md`, Rooms).
//!
//! `room.join {room, appData?}` makes the ROPE object `room:<ID>`, whose state
//! is the room as every node of it sees it (`{rtpCapabilities, producers,
//! nodes}`) and changes as producers come, pause, resume and go anywhere.
//! Transports made on the room are this crate's own transport objects (the
//! same calls, events and errors as a router's), placed by the node; what
//! differs is in [`RoomMembership`]: a producer made on one is told to the
//! node (which makes it the swarm's), and `consume` takes any producer of the
//! room, which the node first brings to the transport's router.
//!
//! This crate knows nothing of the swarm: the node implements [`RoomNode`].

use std::net::IpAddr;
use std::sync::Arc;

use futures::future::BoxFuture;
use mafalda_media::mediasoup::prelude::{
    Consumer, MediaKind, Producer, ProducerId, Router, RtpCapabilities, WebRtcServer,
};
use mafalda_rope::Value;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

use crate::error::ApiError;
use crate::options::check_app_data;
use crate::session::{Object, Session};
use crate::wire::{params, to_value};

/// Most rooms one connection may be in at once.
pub const MAX_ROOMS_PER_CONNECTION: usize = 8;

/// A producer of a room, as every member sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomProducer {
    /// Its id: the same at every node (the id it has at its own node).
    pub id: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// The peer id of the node it was produced at.
    pub node: String,
    /// Whether its producer paused it.
    pub paused: bool,
    /// The producing app's `appData` (an object).
    pub app_data: serde_json::Value,
}

/// A room as one member sees it: the room object's state and `join`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomView {
    /// The RTP capabilities of the room's routers (the same at every node).
    pub rtp_capabilities: serde_json::Value,
    /// Every producer of the room, at every node.
    pub producers: Vec<RoomProducer>,
    /// The peer ids of the nodes with members in the room.
    pub nodes: Vec<String>,
}

/// Where a new transport of the room goes, as the node decides.
#[derive(Debug, Clone)]
pub struct RoomPlace {
    /// The router (placement picked its worker).
    pub router: Router,
    /// The WebRTC server of that worker, if the node runs one.
    pub webrtc_server: Option<WebRtcServer>,
    /// The IP transports listen on without a WebRTC server.
    pub listen_ip: IpAddr,
    /// The address announced for it, if not `listen_ip`.
    pub announced_address: Option<String>,
}

/// The node's side of rooms: joining one.
pub trait RoomNode: Send + Sync + 'static {
    /// Joins `room` for one app connection; the membership ends when dropped.
    fn join(
        &self,
        room: String,
        app_data: serde_json::Value,
    ) -> BoxFuture<'static, Result<Box<dyn RoomMembership>, ApiError>>;
}

/// One app connection's membership of a room, at its node. Dropping it is
/// leaving (the app's producers close with their transports first).
pub trait RoomMembership: Send + Sync + 'static {
    /// The room as this node sees it now and from now on.
    fn view(&self) -> watch::Receiver<RoomView>;
    /// Where the next transport goes.
    fn place(&self) -> BoxFuture<'static, Result<RoomPlace, ApiError>>;
    /// A producer was made on one of the room's transports (on `router`):
    /// the node makes it the room's, and forgets it when it closes.
    fn produced(&self, producer: &Producer, router: &Router, app_data: serde_json::Value) -> Result<(), ApiError>;
    /// The app let go of a producer it made in the room (closed it, its
    /// transport, the room or its connection): the node lets go too.
    fn released(&self, producer: ProducerId);
    /// Brings room producer `producer_id` to `router` (from wherever it is)
    /// and answers its id there.
    fn consumable(&self, producer_id: &str, router: &Router) -> BoxFuture<'static, Result<ProducerId, ApiError>>;
    /// Creates a transport of the room on another node `node` (a peer id;
    /// mediasoup-cluster: driven through this connection): `method` with
    /// the app's `params`. `None` when `node` is this node.
    fn create_on(
        &self,
        node: String,
        method: String,
        params: Value,
    ) -> BoxFuture<'static, Result<Option<Value>, ApiError>>;
    /// A consumer of room producer `producer_id` was made (the node counts
    /// it while it is open, so a copy it plays from is not let go).
    fn consumed(&self, producer_id: &str, consumer: &Consumer);
    /// Whether an endpoint with `capabilities` can consume room producer
    /// `producer_id` (false for one the room does not have).
    fn can_consume(&self, producer_id: &str, capabilities: &RtpCapabilities) -> bool;
}

/// A room object: the membership, and the task keeping its ROPE state.
pub(crate) struct RoomObject {
    pub(crate) id: String,
    pub(crate) membership: Box<dyn RoomMembership>,
    watcher: tokio::task::AbortHandle,
}

impl Drop for RoomObject {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl std::fmt::Debug for RoomObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomObject").field("id", &self.id).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JoinWire {
    room: String,
    app_data: Option<serde_json::Value>,
}

/// The ROPE object id of room `room`.
pub fn room_object_id(room: &str) -> String {
    format!("room:{room}")
}

/// `room.join {room, appData?}`: answers the room's view; its object is `room:<ID>`.
pub(crate) async fn join(session: &Session, params_value: &Value) -> Result<Value, ApiError> {
    let rooms = session.rooms().ok_or_else(|| ApiError::Unsupported("this node serves no rooms".into()))?;
    let wire: JoinWire = params(params_value)?;
    check_app_data(wire.app_data.as_ref())?;
    let id = room_object_id(&wire.room);
    if session.get(&id).is_ok() {
        return Err(ApiError::InvalidState(format!("this connection is already in room {}", wire.room)));
    }
    if session.count_of("room") >= MAX_ROOMS_PER_CONNECTION {
        return Err(ApiError::LimitReached(format!(
            "this connection is in {MAX_ROOMS_PER_CONNECTION} rooms, the most it may"
        )));
    }
    session.check_cap("room")?;
    let membership = rooms.join(wire.room, wire.app_data.unwrap_or_else(|| json!({}))).await?;
    let mut view = membership.view();
    let first = view.borrow_and_update().clone();
    let watcher = {
        let (weak, id) = (session.weak(), id.clone());
        tokio::spawn(async move {
            while view.changed().await.is_ok() {
                let state = view.borrow_and_update().clone();
                weak.set_state(&id, &state);
            }
        })
        .abort_handle()
    };
    let object = RoomObject { id: id.clone(), membership, watcher };
    session.insert(&id, None, Object::Room(Arc::new(object)), &first, Vec::new())?;
    let mut answer = to_value(&first)?;
    if let Ok(mut json) = answer.deserialized::<serde_json::Value>() {
        json["id"] = json!(id);
        answer = to_value(&json)?;
    }
    Ok(answer)
}

/// The options of a room's transports an app may set (where they listen is
/// the node's to say).
const WEBRTC_OPTIONS: [&str; 11] = [
    "node",
    "enableUdp",
    "enableTcp",
    "preferUdp",
    "preferTcp",
    "iceConsentTimeout",
    "initialAvailableOutgoingBitrate",
    "enableSctp",
    "numSctpStreams",
    "maxSctpMessageSize",
    "appData",
];
const PLAIN_OPTIONS: [&str; 9] = [
    "node",
    "rtcpMux",
    "comedia",
    "enableSctp",
    "numSctpStreams",
    "maxSctpMessageSize",
    "enableSrtp",
    "srtpCryptoSuite",
    "appData",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CanConsumeWire {
    producer_id: String,
    rtp_capabilities: serde_json::Value,
}

/// The calls on a room object.
pub(crate) async fn call(
    session: &Session,
    id: &str,
    room: &RoomObject,
    method: &str,
    params_value: &Value,
) -> Result<Value, ApiError> {
    match method {
        "createWebRtcTransport" | "createPlainTransport" => {
            let mut wire = allowed_options(method, params_value)?;
            if let Some(node) = wire.remove("node").filter(|node| !node.is_null()) {
                let node = node.as_str().ok_or_else(|| ApiError::invalid("node must be a peer id"))?.to_owned();
                let created = room.membership.create_on(node, method.to_owned(), to_value(&wire)?).await?;
                if let Some(answer) = created {
                    return Ok(answer);
                }
            }
            let place = room.membership.place().await?;
            if method == "createWebRtcTransport" {
                let mut wire = wire;
                if place.webrtc_server.is_none() {
                    wire.insert("listenInfos".into(), json!([listen_info(&place, "udp"), listen_info(&place, "tcp")]));
                }
                let params = to_value(&wire)?;
                crate::transport::webrtc::create(session, id, &place.router, &params, place.webrtc_server).await
            } else {
                let mut wire = wire;
                wire.insert("listenInfo".into(), listen_info(&place, "udp"));
                let params = to_value(&wire)?;
                crate::transport::plain::create(session, id, &place.router, &params).await
            }
        }
        "canConsume" => {
            let wire: CanConsumeWire = params(params_value)?;
            let capabilities = crate::rtp::rtp_capabilities(&wire.rtp_capabilities)?;
            to_value(&room.membership.can_consume(&wire.producer_id, &capabilities))
        }
        "leave" => {
            session.forget(id);
            Ok(Value::Null)
        }
        "dump" => to_value(&*room.membership.view().borrow()),
        other => Err(ApiError::UnknownMethod(other.to_owned())),
    }
}

/// The app's options for a room transport, refusing the ones the node sets.
fn allowed_options(method: &str, params_value: &Value) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    let wire: Option<serde_json::Map<String, serde_json::Value>> = params(params_value)?;
    let wire = wire.unwrap_or_default();
    let allowed: &[&str] = if method == "createWebRtcTransport" { &WEBRTC_OPTIONS } else { &PLAIN_OPTIONS };
    if let Some(other) = wire.keys().find(|key| !allowed.contains(&key.as_str())) {
        return Err(ApiError::invalid(format!(
            "{method} on a room takes {} ({other} is the node's to choose)",
            allowed.join(", ")
        )));
    }
    Ok(wire)
}

fn listen_info(place: &RoomPlace, protocol: &str) -> serde_json::Value {
    let mut info = json!({ "protocol": protocol, "ip": place.listen_ip.to_string() });
    if let Some(announced) = &place.announced_address {
        info["announcedAddress"] = json!(announced);
    }
    info
}
