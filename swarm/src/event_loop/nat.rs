//! What the event loop does about NAT: acts on reachability verdicts (the
//! Kademlia mode, which addresses are given out), reserves relay slots when
//! the node is private (policy in [`crate::relays`]), and reports circuits
//! and hole punches.

use libp2p::core::ConnectedPoint;
use libp2p::core::transport::ListenerId;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId, dcutr, identify, kad, relay};
use tracing::{debug, info, warn};

use super::EventLoop;
use crate::reachability::Reachability;
use crate::relays::is_relayed;

impl EventLoop {
    /// Remembers a connection this node dialed directly: its peer may be a relay.
    pub(super) fn nat_connection_established(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        endpoint: &ConnectedPoint,
    ) {
        if let ConnectedPoint::Dialer { address, .. } = endpoint
            && !is_relayed(address)
        {
            self.dialed.insert(connection, (peer, address.clone()));
        }
    }

    /// Forgets a closed connection; a relay whose last connection closed is no
    /// longer one, and another may be asked.
    pub(super) fn nat_connection_closed(&mut self, connection: ConnectionId, peer: PeerId, remaining: u32) {
        self.dialed.remove(&connection);
        if remaining == 0 {
            self.relays.disconnected(&peer);
            self.ask_relays();
        }
    }

    /// A peer's identify: one this node dialed that serves circuits is a relay
    /// candidate; one that does not serve the DHT (a node behind NAT, in
    /// client mode) leaves the routing table, so no lookup hands out an
    /// address of it nobody can dial.
    pub(super) fn nat_identified(&mut self, connection: ConnectionId, peer: PeerId, info: &identify::Info) {
        if !info.protocols.contains(&crate::behaviour::KAD_PROTOCOL) {
            self.swarm.behaviour_mut().kad.remove_peer(&peer);
        }
        if info.protocols.contains(&relay::HOP_PROTOCOL_NAME)
            && let Some((dialed_peer, address)) = self.dialed.get(&connection)
            && *dialed_peer == peer
        {
            self.relays.candidate(peer, address.clone());
            self.ask_relays();
        }
    }

    /// Acts on a changed verdict. Private: the node serves no DHT (peers could
    /// not dial what they would learn of it), stops giving out the addresses a
    /// peer could not dial back, and reserves relay slots. Public or unknown:
    /// it serves the DHT.
    pub(super) fn on_reachability_changed(&mut self, now: Reachability) {
        let kad = &mut self.swarm.behaviour_mut().kad;
        if now == Reachability::Private {
            kad.set_mode(Some(kad::Mode::Client));
            for address in self.reachability.status().unreachable_addresses {
                self.swarm.remove_external_address(&address);
            }
        } else {
            kad.set_mode(Some(kad::Mode::Server));
        }
        self.ask_relays();
    }

    /// Listens through the relays the policy picks, when the node is private.
    pub(super) fn ask_relays(&mut self) {
        let private = self.reachability.status().reachability == Reachability::Private;
        for (relay, address) in self.relays.next_to_ask(private) {
            match self.swarm.listen_on(address.clone()) {
                Ok(listener) => {
                    info!(%relay, %address, "asking a relay for a slot");
                    self.relay_listeners.insert(listener, relay);
                }
                Err(error) => {
                    warn!(%relay, %address, %error, "cannot listen through relay");
                    self.relays.lost(&relay);
                }
            }
        }
    }

    /// A listener ended; a relay's means its reservation is gone.
    pub(super) fn nat_listener_closed(&mut self, listener: ListenerId) {
        if let Some(relay) = self.relay_listeners.remove(&listener) {
            info!(%relay, "relay slot lost");
            self.relays.lost(&relay);
            self.ask_relays();
        }
    }

    /// An address reached through a relay was confirmed: peers learn it from
    /// the provider records, so the streams this node provides are announced
    /// again with it.
    pub(super) fn relayed_address_confirmed(&mut self, address: &Multiaddr) {
        info!(%address, "reachable through a relay");
        let kad = &mut self.swarm.behaviour_mut().kad;
        for key in self.provided.keys() {
            if let Err(error) = kad.start_providing(key.clone()) {
                debug!(%error, "provider record not announced again");
            }
        }
    }

    pub(super) fn on_relay_client_event(&mut self, event: relay::client::Event) {
        match event {
            relay::client::Event::ReservationReqAccepted { relay_peer_id, renewal, .. } => {
                if !renewal {
                    info!(relay = %relay_peer_id, "relay slot reserved");
                }
            }
            relay::client::Event::OutboundCircuitEstablished { relay_peer_id, .. } => {
                debug!(relay = %relay_peer_id, "dialed a peer through a relay");
            }
            relay::client::Event::InboundCircuitEstablished { src_peer_id, .. } => {
                debug!(peer = %src_peer_id, "a peer reached this node through a relay");
            }
        }
    }

    pub(super) fn on_relay_server_event(&mut self, event: relay::Event) {
        match event {
            relay::Event::ReservationReqAccepted { src_peer_id, renewed: false } => {
                info!(peer = %src_peer_id, "serving a relay slot");
            }
            relay::Event::CircuitReqDenied { src_peer_id, dst_peer_id, status } => {
                debug!(src = %src_peer_id, dst = %dst_peer_id, ?status, "circuit refused");
            }
            relay::Event::ReservationReqDenied { src_peer_id, status } => {
                debug!(peer = %src_peer_id, ?status, "relay slot refused");
            }
            other => debug!(event = ?other, "relay"),
        }
    }

    pub(super) fn on_dcutr_event(&mut self, event: dcutr::Event) {
        match event.result {
            Ok(connection) => info!(peer = %event.remote_peer_id, ?connection, "hole punched: direct connection"),
            Err(error) => info!(peer = %event.remote_peer_id, %error, "hole punch failed; staying relayed"),
        }
    }
}
