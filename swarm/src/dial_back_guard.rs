//! AutoNAT's server dials back whatever address a peer asks it to test; when
//! that address is not the one the peer connects from, the peer only has to
//! send 30-100 KB first (AutoNAT v2's guard against amplification). Any peer
//! could so make this node connect to a host and port of its choosing: the
//! node's own loopback services, hosts on its LAN, a third party, and learn
//! from the answer whether they listen. [`DialBackGuard`] wraps the server
//! and lets a dial-back go only to an IP the asking peer's direct
//! connections come from: a node behind a NAT that maps its address 1:1
//! still learns it is reachable; nobody else is ever dialed on a peer's say.

use std::collections::HashMap;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use tracing::debug;

/// A dial-back refused: the address is not where the asking peer connects from.
#[derive(Debug, thiserror::Error)]
#[error("dial-back to {address} refused: {peer} connects from {from:?}, not from there")]
pub(crate) struct DialBackRefused {
    address: Multiaddr,
    peer: PeerId,
    from: Vec<IpAddr>,
}

/// Wraps a behaviour whose dials are dial-backs to the peer they name (the
/// AutoNAT server): such a dial goes only to an IP that peer's direct
/// connections come from (see the module docs).
pub(crate) struct DialBackGuard<B> {
    inner: B,
    /// The remote IP of each direct connection, by peer.
    peer_ips: HashMap<PeerId, HashMap<ConnectionId, IpAddr>>,
    /// Dials `inner` asked for and the swarm has not reported on yet.
    dial_backs: HashMap<ConnectionId, PeerId>,
}

impl<B> DialBackGuard<B> {
    /// Guards `inner`'s dials.
    pub(crate) fn new(inner: B) -> Self {
        Self { inner, peer_ips: HashMap::new(), dial_backs: HashMap::new() }
    }

    /// Whether every address in `addresses` is at an IP `peer` connects from.
    fn check(&self, peer: PeerId, addresses: &[Multiaddr]) -> Result<(), Box<DialBackRefused>> {
        let from: Vec<IpAddr> = self.peer_ips.get(&peer).map(|ips| ips.values().copied().collect()).unwrap_or_default();
        let stray = addresses.iter().find(|address| {
            let ip = (!crate::relays::is_relayed(address)).then(|| crate::addresses::ip_of(address)).flatten();
            !ip.is_some_and(|ip| from.contains(&ip))
        });
        match stray {
            Some(address) => Err(Box::new(DialBackRefused { address: address.clone(), peer, from })),
            None => Ok(()),
        }
    }
}

impl<B: NetworkBehaviour> NetworkBehaviour for DialBackGuard<B> {
    type ConnectionHandler = B::ConnectionHandler;
    type ToSwarm = B::ToSwarm;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner.handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_inbound_connection(connection_id, peer, local_addr, remote_addr)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        if let Some(peer) = self.dial_backs.get(&connection_id).copied()
            && let Err(refused) = self.check(peer, addresses)
        {
            debug!(%refused, "AutoNAT dial-back refused");
            self.dial_backs.remove(&connection_id);
            return Err(ConnectionDenied::new(refused));
        }
        self.inner.handle_pending_outbound_connection(connection_id, maybe_peer, addresses, effective_role)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_outbound_connection(connection_id, peer, addr, role_override, port_use)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match &event {
            FromSwarm::ConnectionEstablished(established) => {
                self.dial_backs.remove(&established.connection_id);
                let remote = match established.endpoint {
                    ConnectedPoint::Dialer { address, .. } => address,
                    ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr,
                };
                let ip = (!crate::relays::is_relayed(remote)).then(|| crate::addresses::ip_of(remote)).flatten();
                if let Some(ip) = ip {
                    self.peer_ips.entry(established.peer_id).or_default().insert(established.connection_id, ip);
                }
            }
            FromSwarm::ConnectionClosed(closed) => {
                if let Some(ips) = self.peer_ips.get_mut(&closed.peer_id) {
                    ips.remove(&closed.connection_id);
                    if ips.is_empty() {
                        self.peer_ips.remove(&closed.peer_id);
                    }
                }
            }
            FromSwarm::DialFailure(failure) => {
                self.dial_backs.remove(&failure.connection_id);
            }
            _ => {}
        }
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner.on_connection_handler_event(peer, connection_id, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        let polled = self.inner.poll(cx);
        if let Poll::Ready(ToSwarm::Dial { opts }) = &polled
            && let Some(peer) = opts.get_peer_id()
        {
            self.dial_backs.insert(opts.connection_id(), peer);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_ips_a_peer_connects_from_pass() {
        let mut guard = DialBackGuard::new(());
        let peer = PeerId::random();
        let addr = |text: &str| text.parse::<Multiaddr>().expect("multiaddr");
        assert!(guard.check(peer, &[addr("/ip4/203.0.113.5/tcp/4001")]).is_err(), "no connection: nothing passes");
        guard
            .peer_ips
            .entry(peer)
            .or_default()
            .insert(ConnectionId::new_unchecked(1), "203.0.113.5".parse().expect("ip"));
        assert!(guard.check(peer, &[addr("/ip4/203.0.113.5/tcp/4001")]).is_ok(), "its own IP, any port");
        assert!(guard.check(peer, &[addr("/ip4/203.0.113.5/tcp/9")]).is_ok());
        for stray in ["/ip4/127.0.0.1/tcp/7700", "/ip4/10.0.0.1/tcp/22", "/ip4/198.51.100.7/tcp/4001", "/dns4/x/tcp/1"]
        {
            let refused = guard.check(peer, &[addr(stray)]).expect_err(stray);
            assert!(refused.to_string().contains("not from there"), "{refused}");
        }
        let mixed = [addr("/ip4/203.0.113.5/tcp/4001"), addr("/ip4/127.0.0.1/tcp/4001")];
        assert!(guard.check(peer, &mixed).is_err(), "one stray address refuses the dial");
        let other = PeerId::random();
        assert!(guard.check(other, &[addr("/ip4/203.0.113.5/tcp/4001")]).is_err(), "another peer's IP is not its");
    }
}
