//! The connection side of ROPE links: a behaviour whose handler, on every
//! connection, hands the link streams a peer opens to the serving task (with
//! the IP the connection comes from) and opens links when the client asks.
//! It emits nothing to the swarm task and takes no part in keeping
//! connections: an open link keeps its connection, as any stream does, until
//! it closes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, InboundUpgrade, Multiaddr, OutboundUpgrade, UpgradeInfo};
use libp2p::swarm::handler::{ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm, NetworkBehaviour, Stream,
    StreamProtocol, StreamUpgradeError, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::ROPE_LINK_PROTOCOL;

/// A link a peer opened to this node.
pub(crate) struct InboundLink {
    /// The peer.
    pub(crate) peer: PeerId,
    /// The IP its connection comes from (`None` over a relay).
    pub(crate) remote_ip: Option<IpAddr>,
    /// The link's stream.
    pub(crate) stream: Stream,
}

/// Why a link could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// The peer does not take links on this connection.
    #[error("the peer does not take ROPE links")]
    Unsupported,
    /// The connection failed or closed while the link was negotiated.
    #[error("the link could not be negotiated: {0}")]
    Failed(String),
}

/// Where an opened link (or why none opened) goes.
pub(crate) type OpenReply = oneshot::Sender<Result<Stream, OpenError>>;

/// Open requests waiting at one connection; more fail at once.
const OPEN_QUEUE: usize = 8;

/// The connections that have a link handler, by peer: how the client asks
/// one to open a link. An entry whose handler is gone (its connection closed
/// or was denied) has a closed sender and is pruned.
#[derive(Debug, Default)]
pub(crate) struct LinkConnections {
    by_peer: HashMap<PeerId, Vec<(ConnectionId, mpsc::Sender<OpenReply>)>>,
}

impl LinkConnections {
    /// The connection of `peer` to open a link on, and how to ask it.
    pub(crate) fn opener(&mut self, peer: &PeerId) -> Option<(ConnectionId, mpsc::Sender<OpenReply>)> {
        let connections = self.by_peer.get_mut(peer)?;
        connections.retain(|(_, sender)| !sender.is_closed());
        let found = connections.last().cloned();
        if connections.is_empty() {
            self.by_peer.remove(peer);
        }
        found
    }

    /// Stops offering `connection` for links (it refused the protocol).
    pub(crate) fn forget(&mut self, peer: &PeerId, connection: ConnectionId) {
        if let Some(connections) = self.by_peer.get_mut(peer) {
            connections.retain(|(id, _)| *id != connection);
            if connections.is_empty() {
                self.by_peer.remove(peer);
            }
        }
    }

    fn add(&mut self, peer: PeerId, connection: ConnectionId, sender: mpsc::Sender<OpenReply>) {
        // Handlers of denied connections never hear of a close: pruned here.
        self.by_peer.retain(|_, connections| {
            connections.retain(|(_, sender)| !sender.is_closed());
            !connections.is_empty()
        });
        self.by_peer.entry(peer).or_default().push((connection, sender));
    }
}

/// Shared between the behaviour (which adds connections) and the client.
pub(crate) type SharedConnections = Arc<Mutex<LinkConnections>>;

/// Locks the shared connections (a poisoned lock is still consistent: every
/// change is one call).
pub(crate) fn lock(shared: &SharedConnections) -> std::sync::MutexGuard<'_, LinkConnections> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The ROPE link behaviour.
pub(crate) struct LinkBehaviour {
    connections: SharedConnections,
    inbound: mpsc::Sender<InboundLink>,
}

impl LinkBehaviour {
    /// A behaviour handing inbound links to `inbound` and offering its
    /// connections to the client through `connections`.
    pub(crate) fn new(connections: SharedConnections, inbound: mpsc::Sender<InboundLink>) -> Self {
        Self { connections, inbound }
    }

    fn handler(&mut self, connection: ConnectionId, peer: PeerId, remote: &Multiaddr) -> LinkHandler {
        let relayed = crate::relays::is_relayed(remote);
        let remote_ip = if relayed { None } else { crate::addresses::ip_of(remote) };
        // A connection dialed by name does not show the peer's IP here; its
        // calls go by request-response, whose swarm task knows the IP dialed.
        let takes_links = relayed || remote_ip.is_some();
        let (opens, requests) = mpsc::channel(OPEN_QUEUE);
        lock(&self.connections).add(peer, connection, opens);
        LinkHandler { peer, remote_ip, takes_links, inbound: self.inbound.clone(), requests }
    }
}

impl NetworkBehaviour for LinkBehaviour {
    type ConnectionHandler = LinkHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(connection, peer, remote))
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        remote: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(connection, peer, remote))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ConnectionClosed(closed) = event {
            lock(&self.connections).forget(&closed.peer_id, closed.connection_id);
        }
    }

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// The link protocol, or none (a connection that takes no links).
pub(crate) struct LinkUpgrade(Option<StreamProtocol>);

impl UpgradeInfo for LinkUpgrade {
    type Info = StreamProtocol;
    type InfoIter = std::option::IntoIter<StreamProtocol>;

    fn protocol_info(&self) -> Self::InfoIter {
        self.0.clone().into_iter()
    }
}

impl InboundUpgrade<Stream> for LinkUpgrade {
    type Output = Stream;
    type Error = Infallible;
    type Future = Ready<Result<Stream, Infallible>>;

    fn upgrade_inbound(self, stream: Stream, _: StreamProtocol) -> Self::Future {
        ready(Ok(stream))
    }
}

impl OutboundUpgrade<Stream> for LinkUpgrade {
    type Output = Stream;
    type Error = Infallible;
    type Future = Ready<Result<Stream, Infallible>>;

    fn upgrade_outbound(self, stream: Stream, _: StreamProtocol) -> Self::Future {
        ready(Ok(stream))
    }
}

/// One connection's side of links.
pub(crate) struct LinkHandler {
    peer: PeerId,
    remote_ip: Option<IpAddr>,
    takes_links: bool,
    inbound: mpsc::Sender<InboundLink>,
    requests: mpsc::Receiver<OpenReply>,
}

impl ConnectionHandler for LinkHandler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = LinkUpgrade;
    type OutboundProtocol = LinkUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = OpenReply;

    fn listen_protocol(&self) -> SubstreamProtocol<LinkUpgrade> {
        SubstreamProtocol::new(LinkUpgrade(self.takes_links.then_some(ROPE_LINK_PROTOCOL)), ())
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ConnectionHandlerEvent<LinkUpgrade, OpenReply, Infallible>> {
        match self.requests.poll_recv(cx) {
            Poll::Ready(Some(reply)) => Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                protocol: SubstreamProtocol::new(LinkUpgrade(Some(ROPE_LINK_PROTOCOL)), reply)
                    .with_timeout(super::LINK_OPEN_TIMEOUT),
            }),
            _ => Poll::Pending,
        }
    }

    fn on_behaviour_event(&mut self, event: Infallible) {
        match event {}
    }

    fn on_connection_event(&mut self, event: ConnectionEvent<LinkUpgrade, LinkUpgrade, (), OpenReply>) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound { protocol: stream, .. }) => {
                let link = InboundLink { peer: self.peer, remote_ip: self.remote_ip, stream };
                if self.inbound.try_send(link).is_err() {
                    debug!(peer = %self.peer, "too many links waiting to be served; one refused");
                }
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound { protocol: stream, info: reply }) => {
                let _ = reply.send(Ok(stream));
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { error, info: reply }) => {
                let error = match error {
                    StreamUpgradeError::NegotiationFailed => OpenError::Unsupported,
                    StreamUpgradeError::Timeout => OpenError::Failed("timed out".into()),
                    StreamUpgradeError::Io(error) => OpenError::Failed(error.to_string()),
                    StreamUpgradeError::Apply(never) => match never {},
                };
                let _ = reply.send(Err(error));
            }
            _ => {}
        }
    }
}
