//! The apps' operations, one implementation behind both HTTP and ROPE: each
//! takes the node and typed input and returns typed output or a [`NodeError`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::owners::{AccessError, Caller, ObjectKind, Owners};
use crate::streams::validate_stream_id;
use crate::{Egress, FoundStream, Node, NodeError, StreamStatus, TrackSpec};

/// Why an operation was refused: by the node, or by the API's owner rules.
#[derive(Debug, thiserror::Error)]
pub(super) enum Refused {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Access(#[from] AccessError),
}

impl axum::response::IntoResponse for Refused {
    fn into_response(self) -> axum::response::Response {
        match self {
            Self::Node(error) => super::ApiError::from(error).into_response(),
            Self::Access(error) => super::error(error.status(), error.to_string()),
        }
    }
}

impl From<Refused> for mafalda_rope::RpcError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Node(error) => error.into(),
            Refused::Access(error) => error.into(),
        }
    }
}

/// One mediasoup worker in a status answer.
/// Answer to `status`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StatusAnswer {
    peer_id: String,
    listen_addrs: Vec<String>,
    /// Whether other nodes can dial this one: `public`, `private` or
    /// `unknown` (AutoNAT: peers dial its addresses back).
    reachability: mafalda_swarm::Reachability,
    /// Addresses peers dialed back.
    external_addrs: Vec<String>,
    /// Addresses through relays holding a slot for this node (`/p2p-circuit`),
    /// how peers reach it when it is private.
    relayed_addrs: Vec<String>,
    connected_peers: Vec<String>,
    workers: Vec<crate::monitor::snapshot::WorkerSnapshot>,
    streams: Vec<StreamStatus>,
    egresses: usize,
    /// Pipe transports this node feeds other nodes through.
    pipes: usize,
    /// Whether the node is draining.
    draining: bool,
    /// Packets and bytes per held stream (received) and per egress (sent).
    traffic: crate::Traffic,
    /// The rooms this node's apps are in.
    rooms: Vec<RoomJson>,
}

/// One room in a status answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RoomJson {
    room: String,
    /// App connections in it here.
    apps: usize,
    /// The other member nodes known.
    members: Vec<String>,
    /// Producers at every node.
    producers: usize,
}

pub(super) async fn status(node: &Node) -> Result<StatusAnswer, NodeError> {
    node.media().sample_cpu();
    let listen_addrs = node.listen_addrs().await?.iter().map(ToString::to_string).collect();
    let connected_peers = node.swarm().connected_peers().await?.iter().map(ToString::to_string).collect();
    let reachable = node.swarm().reachability().await?;
    let workers = node.media().status().into_iter().map(Into::into).collect();
    Ok(StatusAnswer {
        peer_id: node.peer_id().to_string(),
        listen_addrs,
        reachability: reachable.reachability,
        external_addrs: reachable.external_addresses.iter().map(ToString::to_string).collect(),
        relayed_addrs: reachable.relayed_addresses.iter().map(ToString::to_string).collect(),
        connected_peers,
        workers,
        streams: node.streams(),
        egresses: node.egress_count(),
        pipes: node.pipe_count(),
        draining: node.is_draining(),
        traffic: node.traffic().await,
        rooms: node
            .rooms()
            .into_iter()
            .map(|room| RoomJson {
                room: room.room,
                apps: room.apps,
                members: room.members.iter().map(ToString::to_string).collect(),
                producers: room.producers,
            })
            .collect(),
    })
}

/// Input of `publish`: the tracks the app will send.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IngestBody {
    pub(super) tracks: Vec<TrackSpec>,
    /// `IP:PORT` the RTP comes from; when given, packets from anywhere else
    /// are dropped (without it, the first sender becomes the source).
    #[serde(default)]
    pub(super) source: Option<SocketAddr>,
}

/// Answer to `publish`: where to send the RTP.
#[derive(Debug, Serialize)]
pub(super) struct IngestAnswer {
    ip: IpAddr,
    port: u16,
}

pub(super) async fn publish(node: &Node, stream: &str, body: IngestBody) -> Result<IngestAnswer, NodeError> {
    let addr = node.publish_rtp_from(stream, body.tracks, body.source).await?;
    Ok(IngestAnswer { ip: addr.ip(), port: addr.port() })
}

pub(super) async fn unpublish(node: &Node, stream: &str) -> Result<(), NodeError> {
    validate_stream_id(stream)?;
    node.unpublish(stream).await
}

pub(super) async fn find(node: &Node, stream: &str) -> Result<FoundStream, NodeError> {
    node.find_stream(stream).await
}

/// Input of `consume`: where the RTP goes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EgressBody {
    pub(super) ip: IpAddr,
    pub(super) port: u16,
    /// One port per track (in the stream's track order) instead of `port` for all.
    #[serde(default)]
    pub(super) ports: Option<Vec<u16>>,
}

pub(super) async fn consume(node: &Node, stream: &str, body: EgressBody) -> Result<Egress, NodeError> {
    if body.port == 0 {
        return Err(NodeError::InvalidInput("port must be 1-65535".into()));
    }
    if body.ip.is_unspecified() || body.ip.is_multicast() {
        return Err(NodeError::InvalidInput(format!("cannot send RTP to {}", body.ip)));
    }
    node.consume_rtp_to_ports(stream, SocketAddr::new(body.ip, body.port), body.ports).await
}

/// Stops egress `egress` of `stream` (not found if it sends another stream).
pub(super) fn stop_egress(node: &Node, stream: &str, egress: &str) -> Result<(), NodeError> {
    validate_stream_id(stream)?;
    validate_stream_id(egress)?;
    if !node.egresses().iter().any(|e| e.id == egress && e.stream == stream) {
        return Err(NodeError::NotFound(format!("egress {egress} of stream {stream}")));
    }
    node.stop_egress(egress)
}

/// [`consume`] counted against `caller`'s cap and recorded as theirs.
pub(super) async fn consume_as(
    node: &Node,
    owners: &Arc<Owners>,
    caller: &Caller,
    stream: &str,
    body: EgressBody,
) -> Result<Egress, Refused> {
    let mut slot = owners.reserve(node, caller, ObjectKind::Egress, 1)?;
    let egress = consume(node, stream, body).await?;
    slot.commit(&egress.id, None).keep();
    Ok(egress)
}

/// [`stop_egress`] if `caller` made the egress or is the admin.
pub(super) fn stop_egress_as(
    node: &Node,
    owners: &Owners,
    caller: &Caller,
    stream: &str,
    egress: &str,
) -> Result<(), Refused> {
    validate_stream_id(stream)?;
    validate_stream_id(egress)?;
    // Not found before forbidden: an egress that is not there is nobody's.
    if !node.egresses().iter().any(|e| e.id == egress && e.stream == stream) {
        return Err(NodeError::NotFound(format!("egress {egress} of stream {stream}")).into());
    }
    owners.may_close(node, caller, ObjectKind::Egress, egress)?;
    Ok(stop_egress(node, stream, egress)?)
}

/// [`unpublish`] if `caller` published the stream or is the admin.
pub(super) async fn unpublish_as(node: &Node, owners: &Owners, caller: &Caller, stream: &str) -> Result<(), Refused> {
    validate_stream_id(stream)?;
    if !node.streams().iter().any(|s| s.stream == stream) {
        return Err(NodeError::NotFound(stream.to_owned()).into());
    }
    owners.may_close(node, caller, ObjectKind::Publication, stream)?;
    Ok(unpublish(node, stream).await?)
}
