//! The caller's side: a cloneable handle over the swarm task, its events, and
//! inbound ROPE calls to answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use libp2p::kad::RecordKey;
use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use crate::error::CallError;
use crate::event_loop::{Command, EventLoop, KeepPeers};
use crate::find::ProviderLookup;
use crate::load::{LoadReport, PeerLoad};
use crate::traffic::{ProtocolLabel, ProtocolTraffic, Traffic};
use crate::{SwarmConfig, SwarmError};
use mafalda_rope::{ErrorCode, ObjectId, Request as RopeRequest, RequestId, Response as RopeResponse, RpcError, Value};

/// Commands waiting for the event loop; callers wait when it is full.
const COMMAND_QUEUE: usize = 256;
/// Events waiting for the node; when full, new events are dropped and counted.
const EVENT_QUEUE: usize = 1024;

/// Something the node should know about the swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SwarmEvent {
    /// A first connection to this peer was established.
    PeerConnected {
        /// The peer.
        peer: PeerId,
        /// The remote address of the connection.
        addr: Multiaddr,
    },
    /// The last connection to this peer closed.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
    },
    /// A ping to this peer came back.
    PingRtt {
        /// The peer.
        peer: PeerId,
        /// Round-trip time of the ping.
        rtt: Duration,
    },
    /// The node is listening on a new address.
    ListenAddr(Multiaddr),
    /// A peer misbehaved repeatedly and is banned for a while.
    PeerBanned {
        /// The peer.
        peer: PeerId,
    },
}

/// A ROPE call from a peer, to be answered with [`InboundCall::respond`].
/// Dropping it unanswered answers the caller with an internal error.
#[derive(Debug)]
pub struct InboundCall {
    /// The calling peer.
    pub peer: PeerId,
    /// The IP address of the connection the call came over (what the peer has
    /// shown is its own, as far as the network goes); `None` for transports
    /// without one (relayed or in-memory).
    pub remote_ip: Option<std::net::IpAddr>,
    /// The call.
    pub request: RopeRequest,
    responder: Option<Responder>,
}

/// Where an inbound call's answer goes: back through the swarm task (a call
/// by request-response) or onto the link it came over, whose in-flight slot
/// it holds until answered.
#[derive(Debug)]
enum Responder {
    Swarm(ResponseChannel<RopeResponse>, mpsc::Sender<Command>),
    Link(crate::rope_link::server::LinkAnswer),
}

impl Responder {
    /// Sends `response` without waiting (a dropped call's error).
    fn try_send(self, peer: PeerId, response: RopeResponse) {
        match self {
            Self::Swarm(channel, commands) => {
                let _ = commands.try_send(Command::Respond { peer, channel, response });
            }
            Self::Link(answer) => answer.try_send(response),
        }
    }
}

impl InboundCall {
    pub(crate) fn new(
        peer: PeerId,
        remote_ip: Option<std::net::IpAddr>,
        request: RopeRequest,
        channel: ResponseChannel<RopeResponse>,
        commands: mpsc::Sender<Command>,
    ) -> Self {
        Self { peer, remote_ip, request, responder: Some(Responder::Swarm(channel, commands)) }
    }

    /// A call that came over a link, answered through `answer`.
    pub(crate) fn over_link(
        peer: PeerId,
        remote_ip: Option<std::net::IpAddr>,
        request: RopeRequest,
        answer: crate::rope_link::server::LinkAnswer,
    ) -> Self {
        Self { peer, remote_ip, request, responder: Some(Responder::Link(answer)) }
    }

    /// Takes the response channel out of a call that came by
    /// request-response, so that dropping the call sends nothing.
    pub(crate) fn into_channel(mut self) -> Option<ResponseChannel<RopeResponse>> {
        match self.responder.take() {
            Some(Responder::Swarm(channel, _)) => Some(channel),
            _ => None,
        }
    }

    /// Drops the call without answering it (its caller is answered otherwise).
    pub(crate) fn forget(mut self) {
        self.responder = None;
    }

    /// Sends the answer (a result or an error) back to the caller.
    pub async fn respond(mut self, outcome: Result<Value, RpcError>) -> Result<(), SwarmError> {
        let Some(responder) = self.responder.take() else { return Ok(()) };
        let response = RopeResponse { id: Some(self.request.id.clone()), outcome };
        match responder {
            Responder::Swarm(channel, commands) => commands
                .send(Command::Respond { peer: self.peer, channel, response })
                .await
                .map_err(|_| SwarmError::Stopped),
            Responder::Link(answer) => answer.send(response).await,
        }
    }
}

impl Drop for InboundCall {
    fn drop(&mut self) {
        if let Some(responder) = self.responder.take() {
            debug!(peer = %self.peer, method = %self.request.method, "inbound call dropped unanswered");
            let error = RpcError::new(ErrorCode::InternalError, "the node dropped the call without answering");
            responder.try_send(self.peer, RopeResponse::err(Some(self.request.id.clone()), error));
        }
    }
}

/// What [`start`] hands back.
#[derive(Debug)]
pub struct StartedSwarm {
    /// The handle to the swarm task.
    pub handle: SwarmHandle,
    /// Events about peers and addresses.
    pub events: mpsc::Receiver<SwarmEvent>,
    /// ROPE calls from peers, to answer.
    pub calls: mpsc::Receiver<InboundCall>,
}

/// Cloneable handle to the swarm task. The task stops on [`SwarmHandle::shutdown`]
/// or when every handle is dropped.
#[derive(Debug, Clone)]
pub struct SwarmHandle {
    peer_id: PeerId,
    /// libp2p's metrics, recorded by the swarm task; read-only here.
    metrics: Arc<prometheus_client::registry::Registry>,
    commands: mpsc::Sender<Command>,
    next_call_id: Arc<AtomicU64>,
    /// Bytes and streams per protocol, counted by every connection.
    traffic: Traffic,
    /// What AutoNAT found, kept by the swarm task.
    nat_view: Arc<crate::reachability::NatView>,
    /// ROPE links to connected peers, the path calls take when they can.
    links: Arc<crate::rope_link::client::Links>,
    /// What the own store answers quick lookups, kept by the swarm task.
    store_answers: Arc<crate::store_answers::StoreAnswers>,
    /// The peers' RTTs and loads, kept by the swarm task.
    costs: Arc<crate::peer_costs::CostsView>,
}

/// Starts the swarm task: builds the transports, listens on every configured
/// address (returning once each listener reports an address), and starts joining
/// the swarm through the bootstrap peers (retrying in the background).
pub async fn start(config: SwarmConfig) -> Result<StartedSwarm, SwarmError> {
    config.validate().map_err(SwarmError::InvalidConfig)?;
    if config.swarm_key.is_some()
        && let Some(addr) = config.quic_addr()
    {
        return Err(SwarmError::QuicInPrivateSwarm { addr: addr.clone() });
    }
    let peer_id = config.keypair.public().to_peer_id();
    let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let (event_tx, event_rx) = mpsc::channel(EVENT_QUEUE);
    let (call_tx, call_rx) = mpsc::channel(config.rope.inbound_queue);
    // libp2p-metrics adds the `libp2p_` prefix itself.
    let mut registry = prometheus_client::registry::Registry::default();
    let traffic = Traffic::new(&mut registry);
    let nat_view = Arc::new(crate::reachability::NatView::default());
    let store_answers = Arc::new(crate::store_answers::StoreAnswers::default());
    let link_connections = crate::rope_link::behaviour::SharedConnections::default();
    let link_calls = crate::rope_link::CallsInFlight::default();
    let (link_tx, link_rx) = mpsc::channel(crate::rope_link::INBOUND_LINK_QUEUE);
    let rope_link = crate::rope_link::behaviour::LinkBehaviour::new(Arc::clone(&link_connections), link_tx);
    let serving = crate::rope_link::server::Serving {
        calls: call_tx.clone(),
        commands: command_tx.downgrade(),
        max_bytes: config.rope.max_message_bytes,
        max_in_flight: config.rope.max_inbound_per_peer,
        answer_timeout: config.rope.request_timeout,
        traffic: traffic.clone(),
        in_flight: link_calls.clone(),
        idle: config.rope.link_idle,
    };
    let inbound = crate::event_loop::RopeInbound { calls: call_tx, links: rope_link, link_calls: link_calls.clone() };
    let event_loop =
        EventLoop::new(&config, &mut registry, &traffic, command_rx, command_tx.clone(), event_tx, inbound)?
            .reporting_nat_to(Arc::clone(&nat_view))
            .sharing_store_answers(Arc::clone(&store_answers))
            .listen(&config.listen, config.listen_timeout)
            .await?;
    let costs = event_loop.costs_view();
    tokio::spawn(event_loop.run());
    // Ends when the swarm does (it holds the inbound links' sender).
    tokio::spawn(crate::rope_link::server::serve(link_rx, serving));
    let links = crate::rope_link::client::Links::new(link_connections, &config.rope, traffic.clone(), link_calls);
    let handle = SwarmHandle {
        peer_id,
        metrics: Arc::new(registry),
        commands: command_tx,
        next_call_id: Arc::default(),
        traffic,
        nat_view,
        links: Arc::new(links),
        store_answers,
        costs,
    };
    Ok(StartedSwarm { handle, events: event_rx, calls: call_rx })
}

/// Prefix of every Kademlia key the swarm uses.
pub const STREAM_KEY_PREFIX: &str = "/mafalda/stream/";
/// Longest stream id in a stream key (the node's own limit on stream ids).
pub const MAX_STREAM_ID_LEN: usize = 128;

/// The Kademlia key under which a stream id is provided.
pub fn stream_key(stream_id: &str) -> RecordKey {
    RecordKey::new(&format!("{STREAM_KEY_PREFIX}{stream_id}"))
}

/// Whether `key` is a well-formed stream key: [`STREAM_KEY_PREFIX`] followed by
/// 1–[`MAX_STREAM_ID_LEN`] characters of `A-Z a-z 0-9 - _ . :`. Provider records
/// under any other key are not stored.
pub fn is_stream_key(key: &RecordKey) -> bool {
    let Some(id) = key.as_ref().strip_prefix(STREAM_KEY_PREFIX.as_bytes()) else { return false };
    (1..=MAX_STREAM_ID_LEN).contains(&id.len())
        && id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Prefix of the Kademlia keys where rooms' member nodes meet.
pub const ROOM_KEY_PREFIX: &str = "/mafalda/room/";

/// The Kademlia key under which the member nodes of a room provide it.
pub fn room_key(room_id: &str) -> RecordKey {
    RecordKey::new(&format!("{ROOM_KEY_PREFIX}{room_id}"))
}

/// Whether `key` is a key provider records are kept for: a stream key
/// ([`is_stream_key`]) or a room key ([`ROOM_KEY_PREFIX`] and an id of the
/// same form).
pub fn is_provider_key(key: &RecordKey) -> bool {
    if is_stream_key(key) {
        return true;
    }
    let Some(id) = key.as_ref().strip_prefix(ROOM_KEY_PREFIX.as_bytes()) else { return false };
    (1..=MAX_STREAM_ID_LEN).contains(&id.len())
        && id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

impl SwarmHandle {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// libp2p's metrics (bandwidth, connections, Kademlia, gossipsub,
    /// identify, ping; names start with `libp2p_`) and the swarm's own (names
    /// start with `mafalda_`: bytes and streams per protocol, Kademlia records
    /// refused) in the OpenMetrics
    /// text format, without the closing `# EOF` so the caller can append them to
    /// its own.
    pub fn encode_metrics(&self, out: &mut String) -> std::fmt::Result {
        prometheus_client::encoding::text::encode_registry(out, &self.metrics)
    }

    /// Bytes and streams per protocol since the node started (also in
    /// `/metrics` as `mafalda_p2p_bytes_total` and `mafalda_p2p_streams_total`).
    pub fn traffic(&self) -> Vec<(ProtocolLabel, ProtocolTraffic)> {
        self.traffic.snapshot()
    }

    /// Tells the swarm which peers the node uses (pipes, sessions): they stay
    /// connected whatever the connection bounds (`ConnectionSettings::max_peers`).
    /// `keep` runs on the swarm task: it must be quick and must not wait.
    pub async fn keep_connected(
        &self,
        keep: impl Fn(&PeerId) -> bool + Send + Sync + 'static,
    ) -> Result<(), SwarmError> {
        self.commands.send(Command::KeepConnected(KeepPeers(Arc::new(keep)))).await.map_err(|_| SwarmError::Stopped)
    }

    /// The addresses the node listens on now.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, SwarmError> {
        self.ask(Command::ListenAddrs).await
    }

    /// Whether AutoNAT found this node private (no peer could dial it back),
    /// as of now; no round trip to the swarm task.
    pub fn is_behind_nat(&self) -> bool {
        self.nat_view.is_behind_nat()
    }

    /// The IP in the family of `like` that peers reach this node at, when
    /// AutoNAT confirmed an address the node does not listen on (a 1:1 NAT,
    /// a forwarded port): what its media should announce when no address
    /// was configured.
    pub fn mapped_ip(&self, like: std::net::IpAddr) -> Option<std::net::IpAddr> {
        self.nat_view.mapped_ip(like)
    }

    /// Whether other nodes can dial this one, and the external addresses
    /// peers confirmed by dialing them back (AutoNAT).
    pub async fn reachability(&self) -> Result<crate::ReachabilityStatus, SwarmError> {
        self.ask(Command::Reachability).await
    }

    /// The peers with at least one open connection.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, SwarmError> {
        self.ask(Command::ConnectedPeers).await
    }

    /// The remote IPs of `peer`'s open direct connections, oldest first
    /// (none for a peer reached only through a relay): the address family
    /// a media pipe with it should use.
    pub async fn peer_ips(&self, peer: PeerId) -> Result<Vec<std::net::IpAddr>, SwarmError> {
        self.ask(|reply| Command::PeerIps(peer, reply)).await
    }

    /// Dials an address; resolves once the dial is under way (see [`SwarmEvent::PeerConnected`]).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), SwarmError> {
        self.ask(|reply| Command::Dial { addr, reply }).await?
    }

    /// Announces that this node provides `key`, and keeps re-announcing it until
    /// [`SwarmHandle::stop_providing`]. Resolves when the first announcement is done,
    /// with the number of peers that answered it; if it could not complete (no
    /// peers yet, timeout) the error says so, but the key stays provided: it is
    /// announced again when a peer joins the routing table near it, and at
    /// every republish.
    pub async fn provide(&self, key: RecordKey) -> Result<usize, SwarmError> {
        self.ask(|reply| Command::Provide { key, reply }).await?
    }

    /// Stops announcing `key`. Remote records expire after the provider TTL.
    pub async fn stop_providing(&self, key: RecordKey) -> Result<(), SwarmError> {
        self.ask(|reply| Command::StopProviding { key, reply }).await
    }

    /// The reachable providers of `key` found within `deadline` (this node first
    /// if it provides the key). Providers that cannot be dialed are left out; an
    /// empty list means none was found.
    ///
    /// The DHT walk stops once a few peers have answered with providers
    /// (`ENOUGH_PROVIDER_ANSWERS` in `find.rs`; only this node's own store,
    /// when it names one and this node is among the peers closest to the
    /// key, `answers_needed`): quick, and nearly always
    /// complete, but their records may all be stale (providers that let go
    /// of the key). [`SwarmHandle::lookup_providers`] can walk on.
    pub async fn find_providers(&self, key: RecordKey, deadline: Duration) -> Result<Vec<PeerId>, SwarmError> {
        Ok(self.lookup_providers(key, deadline, false).await?.providers)
    }

    /// Like [`SwarmHandle::find_providers`], telling whether the walk went to
    /// the end; with `thorough`, it always does (until the peers closest to
    /// `key` have all answered: Kademlia's own end of a lookup).
    pub async fn lookup_providers(
        &self,
        key: RecordKey,
        deadline: Duration,
        thorough: bool,
    ) -> Result<ProviderLookup, SwarmError> {
        let deadline = std::time::Instant::now() + deadline;
        self.ask(|reply| Command::FindProviders { key, deadline, thorough, named: None, reply }).await
    }

    /// Like [`SwarmHandle::lookup_providers`], and sends each provider to
    /// `named` as soon as it is known reachable (this node first, if it
    /// provides the key), while the walk goes on: a caller can ask the first
    /// providers while later ones are still being found. `named` closes when
    /// the lookup answers; names that do not fit in it are in the answer only.
    pub async fn lookup_providers_naming(
        &self,
        key: RecordKey,
        deadline: Duration,
        thorough: bool,
        named: mpsc::Sender<PeerId>,
    ) -> Result<ProviderLookup, SwarmError> {
        let deadline = std::time::Instant::now() + deadline;
        self.ask(|reply| Command::FindProviders { key, deadline, thorough, named: Some(named), reply }).await
    }

    /// The providers of `key` that a quick lookup would get from this
    /// node's own store, read here without a round trip to the swarm task
    /// (`store_answers`): `Some` when this node is among the peers closest
    /// to the key, has been in the swarm long enough, its store names
    /// providers and each of them is connected (this node first if it
    /// provides the key). `None` when a lookup has to ask
    /// ([`SwarmHandle::lookup_providers_naming`]).
    pub fn stored_providers(&self, key: &RecordKey) -> Option<Vec<PeerId>> {
        self.store_answers.get(key, std::time::Instant::now())
    }

    /// Gossips this node's load report.
    pub async fn publish_load(&self, report: LoadReport) -> Result<(), SwarmError> {
        self.ask(|reply| Command::PublishLoad { report, reply }).await?
    }

    /// The latest load report of every peer heard from recently, with its age.
    pub fn peer_loads(&self) -> Vec<PeerLoad> {
        self.costs.loads(std::time::Instant::now())
    }

    /// The latest ping round-trip time to each connected peer.
    pub fn rtts(&self) -> HashMap<PeerId, Duration> {
        self.costs.rtts()
    }

    /// Calls `peer` over ROPE and waits for its answer (bounded by the request
    /// timeout). A peer with no known address is first looked up in the DHT.
    pub async fn call(
        &self,
        peer: PeerId,
        method: &str,
        target: Option<ObjectId>,
        params: Value,
    ) -> Result<Value, CallError> {
        let id = RequestId::Number(self.next_call_id.fetch_add(1, Ordering::Relaxed));
        let request = RopeRequest { id, method: method.to_owned(), target, params };
        let request = match self.links.call(peer, request).await {
            Ok(answered) => return answered?.outcome.map_err(CallError::Remote),
            Err(unsent) => unsent,
        };
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Call { peer, request, reply }).await.map_err(|_| CallError::Stopped)?;
        let response = answer.await.map_err(|_| CallError::Stopped)??;
        response.outcome.map_err(CallError::Remote)
    }

    /// Closes every connection and stops the swarm task; resolves when it has stopped.
    pub async fn shutdown(&self) -> Result<(), SwarmError> {
        self.ask(Command::Shutdown).await
    }

    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, SwarmError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).await.map_err(|_| SwarmError::Stopped)?;
        answer.await.map_err(|_| SwarmError::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys_are_checked_like_stream_ids() {
        assert!(is_stream_key(&stream_key("camera-1")));
        assert!(is_stream_key(&stream_key("a")));
        assert!(is_stream_key(&stream_key("Room_2.cam:main")));
        assert!(is_stream_key(&stream_key(&"x".repeat(MAX_STREAM_ID_LEN))));
        assert!(!is_stream_key(&stream_key("")), "empty id");
        assert!(is_provider_key(&room_key("standup")) && is_provider_key(&stream_key("cam")));
        assert!(!is_stream_key(&room_key("standup")), "a room key is not a stream's");
        assert!(!is_provider_key(&room_key("")) && !is_provider_key(&room_key("a/b")));
        assert!(!is_stream_key(&stream_key(&"x".repeat(MAX_STREAM_ID_LEN + 1))), "too long");
        assert!(!is_stream_key(&stream_key("a/b")), "slash");
        assert!(!is_stream_key(&stream_key("caméra")), "not ASCII");
        assert!(!is_stream_key(&RecordKey::new(b"/mafalda/other/x")), "other prefix");
        assert!(!is_stream_key(&RecordKey::new(b"\xff\x00")), "binary");
    }
}
