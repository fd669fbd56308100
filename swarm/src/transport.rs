//! How a node's connections are made: TCP (with pnet before noise in a
//! private swarm) or QUIC, noise, yamux, circuits through a relay, and the per-protocol byte counting
//! of [`crate::traffic`] on every stream. Addresses may name hosts
//! (`/dns4/NAME/…`, `/dns6/…`, `/dns/…`): they are resolved at each dial,
//! through `/etc/hosts` and the system's resolver.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use futures::future::Either;
use libp2p::core::ConnectedPoint;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::OptionalTransport;
use libp2p::core::{Transport, upgrade};
use libp2p::pnet::PnetConfig;
use libp2p::{Multiaddr, PeerId, Swarm, dns, noise, quic, tcp, yamux};
use tracing::{info, warn};

use crate::behaviour::Behaviour;
use crate::traffic::{CountedMuxer, Traffic};
use crate::{SwarmConfig, SwarmError};

/// Builds the Swarm: TCP (noise, yamux) and QUIC, or, with a swarm key, TCP
/// only, wrapped in pnet before noise; host names in addresses are resolved
/// when dialed. Every connection's streams count their bytes by protocol
/// into `traffic`.
pub(crate) fn build_swarm(
    config: &SwarmConfig,
    registry: &mut prometheus_client::registry::Registry,
    traffic: &Traffic,
    dialed_ips: &DialedIps,
    rope_link: crate::rope_link::behaviour::LinkBehaviour,
) -> Result<Swarm<Behaviour>, SwarmError> {
    type BoxError = Box<dyn std::error::Error + Send + Sync>;
    let idle = config.idle_connection_timeout;
    let handshake_timeout = config.connections.handshake_timeout;
    let tcp_config = tcp::Config::default().nodelay(true);
    let psk = config.swarm_key.as_ref().map(|key| {
        info!(fingerprint = %key.fingerprint(), "private swarm: TCP with pnet, no QUIC");
        key.pre_shared_key()
    });
    // TCP (with pnet first in a private swarm) and, without a key, QUIC.
    let dialed_ips = dialed_ips.clone();
    let connections = move |keypair: &libp2p::identity::Keypair| -> Result<_, BoxError> {
        let noise = noise::Config::new(keypair)?;
        let tcp = tcp::tokio::Transport::new(tcp_config.clone())
            .and_then(move |socket, _| async move {
                match psk {
                    Some(psk) => PnetConfig::new(psk).handshake(socket).await.map(Either::Left),
                    None => Ok(Either::Right(socket)),
                }
            })
            .upgrade(upgrade::Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux::Config::default())
            .map(recording(&dialed_ips));
        // Without a key QUIC joins TCP; with one, QUIC addresses were refused at start.
        let quic =
            psk.is_none().then(|| quic::tokio::Transport::new(quic::Config::new(keypair)).map(recording(&dialed_ips)));
        Ok(quic.map_or_else(OptionalTransport::none, OptionalTransport::some).or_transport(tcp))
    };
    let transport = |keypair: &libp2p::identity::Keypair| -> Result<_, BoxError> {
        let resolving = match dns::tokio::Transport::system(connections(keypair)?) {
            Ok(resolving) => resolving,
            Err(error) => {
                warn!(%error, "no DNS configuration (/etc/resolv.conf): names resolve through /etc/hosts only");
                let no_servers = dns::ResolverConfig::from_parts(None, Vec::new(), Vec::new());
                dns::tokio::Transport::custom(connections(keypair)?, no_servers, dns::ResolverOpts::default())
            }
        };
        let traffic = traffic.clone();
        Ok(resolving.map(move |either, _| {
            let (peer, muxer) = either.into_inner();
            (peer, StreamMuxerBox::new(CountedMuxer::new(muxer, traffic.clone(), peer)))
        }))
    };
    let behaviour = |key: &libp2p::identity::Keypair, relay_client| {
        Behaviour::new(key, config, relay_client, rope_link).map_err(BoxError::from)
    };
    Ok(libp2p::SwarmBuilder::with_existing_identity(config.keypair.clone())
        .with_tokio()
        .with_other_transport(transport)
        .map_err(|e| SwarmError::Build(e.to_string()))?
        // Circuits through relays (`/p2p-circuit` addresses), with their own
        // noise and yamux over the relayed stream.
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| SwarmError::Build(e.to_string()))?
        .with_bandwidth_metrics(registry)
        .with_behaviour(behaviour)
        .map_err(|e| SwarmError::Build(e.to_string()))?
        // A substream's protocol is proposed together with its first bytes
        // (every protocol here proposes one): a ROPE call does not wait a
        // round trip for the other side to agree before its request leaves.
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(idle).with_substream_upgrade_protocol_override(upgrade::Version::V1Lazy)
        })
        .with_connection_timeout(handshake_timeout)
        .build())
}

/// The IP each peer was last dialed at, as the transport saw it once names
/// were resolved: a connection dialed by name (`/dns4/…`) reports the name
/// to the swarm, and the node must know which IP a peer's calls come from
/// (a pipe goes only to that IP).
#[derive(Debug, Clone, Default)]
pub(crate) struct DialedIps(Arc<Mutex<HashMap<PeerId, IpAddr>>>);

impl DialedIps {
    /// Most entries: each is taken when its connection is established; this
    /// bounds the ones whose connection was refused after its handshake.
    const MAX: usize = 4096;

    fn record(&self, peer: PeerId, address: &Multiaddr) {
        let Some(ip) = crate::addresses::ip_of(address) else { return };
        let mut ips = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if ips.len() >= Self::MAX && !ips.contains_key(&peer) {
            ips.clear();
        }
        ips.insert(peer, ip);
    }

    /// The IP `peer` was just dialed at, if a dial recorded one.
    pub(crate) fn take(&self, peer: &PeerId) -> Option<IpAddr> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(peer)
    }
}

/// Boxes a connection's muxer, recording the IP a dialed connection reached.
fn recording<M>(
    dialed_ips: &DialedIps,
) -> impl FnOnce((PeerId, M), ConnectedPoint) -> (PeerId, StreamMuxerBox) + Clone + use<M>
where
    M: libp2p::core::muxing::StreamMuxer + Send + 'static,
    M::Substream: Send + 'static,
    M::Error: Send + Sync + 'static,
{
    let dialed_ips = dialed_ips.clone();
    move |(peer, muxer), endpoint| {
        if let ConnectedPoint::Dialer { address, .. } = &endpoint {
            dialed_ips.record(peer, address);
        }
        (peer, StreamMuxerBox::new(muxer))
    }
}
