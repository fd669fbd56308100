//! How to start a node's swarm: identity, addresses and protocol settings.
//!
//! Defaults suit live streams: provider records live for minutes and are
//! re-announced well before they expire (Kademlia's defaults of 48 h / 12 h are
//! for the public IPFS DHT).

use std::time::Duration;

use libp2p::Multiaddr;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;

use crate::swarm_key::SwarmKey;

/// Kademlia settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct KadSettings {
    /// How long a provider record lives at the peers that store it.
    pub provider_ttl: Duration,
    /// How often a node re-announces what it provides (must be below `provider_ttl`).
    pub provider_republish: Duration,
    /// Give up a Kademlia query after this long.
    pub query_timeout: Duration,
    /// How often the routing table is refreshed: a bootstrap query looks up
    /// the node's own id and then a random id in each bucket. Bootstraps that
    /// rust-libp2p starts in between (on new peers while the table is small)
    /// run the self lookup at most once a minute and no bucket refresh.
    pub periodic_bootstrap: Duration,
    /// Most keys this node may provide.
    pub max_provided_keys: usize,
    /// Most provider records kept per key.
    pub max_providers_per_key: usize,
    /// Most records kept in the store.
    pub max_records: usize,
    /// How long after it entered the swarm (its first routing-table peer) a
    /// node near a key answers a quick lookup from its own store
    /// (`find::answers_needed`); before that it asks peers. A provider
    /// announces to the peers it knows, so a newcomer's store names only
    /// the providers that announced (or re-announced) since it joined: it is
    /// complete once each has republished. Defaults to `provider_republish`.
    pub own_store_after: Duration,
}

impl Default for KadSettings {
    fn default() -> Self {
        Self {
            provider_ttl: Duration::from_secs(5 * 60),
            provider_republish: Duration::from_secs(2 * 60),
            query_timeout: Duration::from_secs(10),
            // The routing table heals from lookups too; a refresh is a lookup
            // of ~20 peers, so every few minutes would dominate an idle node's traffic.
            periodic_bootstrap: Duration::from_secs(10 * 60),
            max_provided_keys: 10_000,
            max_providers_per_key: 64,
            max_records: 10_000,
            own_store_after: Duration::from_secs(2 * 60),
        }
    }
}

/// Gossip (load reports) settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GossipSettings {
    /// Gossipsub heartbeat.
    pub heartbeat: Duration,
    /// A peer's load report is dropped from the table after this long without a new one.
    pub load_report_ttl: Duration,
    /// Most peers in the load table.
    pub max_load_reports: usize,
}

impl Default for GossipSettings {
    fn default() -> Self {
        // Nodes report on changes of level, not periodically (see the node's
        // load_report), so a report stays valid for long.
        Self {
            heartbeat: Duration::from_secs(1),
            load_report_ttl: Duration::from_secs(60 * 60),
            max_load_reports: 10_000,
        }
    }
}

/// ROPE-over-libp2p settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RopeSettings {
    /// A call fails with a timeout after this long without a response.
    pub request_timeout: Duration,
    /// Largest request or response, in bytes.
    pub max_message_bytes: usize,
    /// Most calls from one peer being answered at once; more are refused.
    pub max_inbound_per_peer: usize,
    /// Inbound calls waiting for the node; when full, calls are refused as busy.
    pub inbound_queue: usize,
    /// A ROPE link (the stream calls to a connected peer share) closes after
    /// this long without a call, so it does not keep an unused connection.
    pub link_idle: Duration,
}

impl Default for RopeSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            max_message_bytes: 1024 * 1024,
            max_inbound_per_peer: 32,
            inbound_queue: 256,
            link_idle: crate::rope_link::LINK_IDLE,
        }
    }
}

/// Connection limits: what keeps a flood of connections (most cheaply from fresh
/// identities, which bans cannot stop) from exhausting the node's memory, file
/// descriptors and CPU, while honest peers keep being served.
///
/// The defaults suit a media node: it keeps a connection to each peer it pipes
/// streams with or gossips to (tens to a few hundred in a large swarm), not to
/// thousands. Incoming connections may fill only half of the established total,
/// so an inbound flood never crowds out the connections the node opens itself
/// (bootstrap, Kademlia lookups, pipes to a stream's provider).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionSettings {
    /// Most established connections in all (default 512: several times the peers a
    /// node works with, well below a process's usual 1024 file descriptors once
    /// WebRTC sockets are counted).
    pub max_established: u32,
    /// Most established connections opened by peers (default 256: half the total).
    pub max_established_incoming: u32,
    /// Most incoming connections still in their handshake (default 256). A
    /// handshake costs a TCP accept and a noise key exchange; this bounds what
    /// half-open or slow peers can hold, and the handshake timeout frees them.
    /// Not lower: a new stream's origin is dialed by every finder at once (a
    /// flash crowd), and 64 refused a third of 99 finders in the 100-node test.
    pub max_pending_incoming: u32,
    /// Most outgoing connections being set up (default 128: a provider lookup
    /// dials every provider it finds at once, and bootstrap dials every seed).
    pub max_pending_outgoing: u32,
    /// Most connections with one peer (default 3: one each way when two nodes dial
    /// each other at once, and an AutoNAT dial-back or a direct connection
    /// replacing a relayed one beside them; more only costs memory).
    pub max_per_peer: u32,
    /// How long a new connection may take to complete its transport, pnet, noise
    /// and yamux handshakes (default 10 s, libp2p's own default).
    pub handshake_timeout: Duration,
    /// Most peers kept connected (default 32). Above it, peers no protocol
    /// uses (no ROPE call for `idle_peer_after`, not kept by the node for a
    /// pipe or a session) are disconnected, least recently used first and
    /// gossip mesh peers last, down to `target_peers`. Kademlia needs routing
    /// table entries, not connections, so finds still reach every node; a
    /// node's cost then stays flat as the swarm grows. Peers in use are never
    /// disconnected, so a busy node may exceed it (`max_established` is the hard cap).
    pub max_peers: u32,
    /// Peers left connected after disconnecting unused ones (default 24). A
    /// node left with fewer than half of it, as when its peers trimmed it on
    /// their own, dials peers its routing table knows back up to it, each at
    /// most once a minute.
    pub target_peers: u32,
    /// A peer is unused after this long without a ROPE call or a Kademlia
    /// request either way (default 60 s).
    pub idle_peer_after: Duration,
    /// Above this many connected peers the node is crowded (default 192, three
    /// quarters of `max_established_incoming`), as an origin and the holders of
    /// its provider record are when a whole swarm finds a new stream at once
    /// (at 300 nodes, 18 nodes passed 192): peers outside the gossip mesh
    /// with no ROPE call or Kademlia request for `crowd_idle_after` are then
    /// disconnected within a tenth of a second, down to this many, so the crowd
    /// does not fill `max_established_incoming` and get refused. Not much
    /// lower: at 128, the record holders of each stream redialed and
    /// re-handshook peers all through the finds of a 300-node run. The CLI
    /// derives it from its limits with [`ConnectionSettings::crowd_mark`].
    pub crowd_peers: u32,
    /// How long a crowded node keeps a peer it has no ROPE call or Kademlia
    /// request with (default 3 s: a describe, and the consume that follows it
    /// on a loaded machine).
    pub crowd_idle_after: Duration,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        let (max_established_incoming, max_peers) = (256, 32);
        Self {
            max_established: 512,
            max_established_incoming,
            max_pending_incoming: 256,
            max_pending_outgoing: 128,
            max_per_peer: 3,
            handshake_timeout: Duration::from_secs(10),
            max_peers,
            target_peers: 24,
            idle_peer_after: Duration::from_secs(60),
            crowd_peers: Self::crowd_mark(max_peers, max_established_incoming),
            crowd_idle_after: Duration::from_secs(3),
        }
    }
}

impl ConnectionSettings {
    /// The crowd mark that suits these limits: three quarters of the incoming
    /// cap, never below `max_peers` (see [`ConnectionSettings::crowd_peers`]).
    pub fn crowd_mark(max_peers: u32, max_established_incoming: u32) -> u32 {
        max_peers.max(max_established_incoming / 4 * 3)
    }
}

/// Circuit relay v2: serving circuits for peers behind NAT, and reserving
/// slots on relays when this node is behind one.
///
/// A circuit carries a node's signalling (Kademlia, ROPE, gossip) to a peer
/// that cannot be dialed, never its media; the limits keep what one peer can
/// make a relay carry small, and long enough that a relayed peer's calls are
/// not cut while it is in use.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RelaySettings {
    /// Serve circuits (default true). Peers reserve slots only on nodes they
    /// dialed, so a node behind NAT is never asked by peers outside its LAN.
    pub serve: bool,
    /// Most reservations held for peers (default 128).
    pub max_reservations: usize,
    /// Most relayed connections at once (default 64).
    pub max_circuits: usize,
    /// Most relayed connections to or from one peer (default 8; 0 counts as 1).
    pub max_circuits_per_peer: usize,
    /// How long one relayed connection may last (default 30 min).
    pub max_circuit_duration: Duration,
    /// Most bytes one relayed connection may carry each way (default 8 MiB).
    pub max_circuit_bytes: u64,
    /// How many relays a node behind NAT reserves a slot on (default 2; 0 never reserves).
    pub reservations: usize,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            serve: true,
            max_reservations: 128,
            max_circuits: 64,
            max_circuits_per_peer: 8,
            max_circuit_duration: Duration::from_secs(30 * 60),
            max_circuit_bytes: 8 * 1024 * 1024,
            reservations: 2,
        }
    }
}

/// Settings for [`start`](crate::start).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SwarmConfig {
    /// The node's identity; its public key gives the peer id.
    pub keypair: Keypair,
    /// Addresses to listen on (`/ip4/127.0.0.1/tcp/0`, `/ip4/127.0.0.1/udp/0/quic-v1`, ...).
    pub listen: Vec<Multiaddr>,
    /// Peers to join the swarm through; with a `/p2p/<peer id>` suffix they also seed
    /// the Kademlia routing table.
    pub bootstrap: Vec<Multiaddr>,
    /// How often to ping each connected peer.
    pub ping_interval: Duration,
    /// How long a connection with no open stream is kept.
    pub idle_connection_timeout: Duration,
    /// How long to wait for every listener to report its address at start.
    pub listen_timeout: Duration,
    /// First wait before dialing unreachable bootstrap peers again (doubles up to `bootstrap_retry_max`).
    pub bootstrap_retry: Duration,
    /// Longest wait between bootstrap attempts.
    pub bootstrap_retry_max: Duration,
    /// How long a misbehaving peer stays banned.
    pub ban_duration: Duration,
    /// Kademlia settings.
    pub kad: KadSettings,
    /// Gossip settings.
    pub gossip: GossipSettings,
    /// ROPE settings.
    pub rope: RopeSettings,
    /// Connection limits.
    pub connections: ConnectionSettings,
    /// Circuit relay settings.
    pub relay: RelaySettings,
    /// The private swarm's pre-shared key. With one, TCP connections are
    /// encrypted with it (libp2p pnet) before noise, only nodes holding the same
    /// key can connect, and QUIC is not used (pnet cannot protect it): QUIC listen
    /// or bootstrap addresses are refused at start. Without one (the default),
    /// the node speaks TCP and QUIC to anyone.
    pub swarm_key: Option<SwarmKey>,
}

impl SwarmConfig {
    /// A configuration with defaults for everything but the identity and listen addresses.
    pub fn new(keypair: Keypair, listen: Vec<Multiaddr>) -> Self {
        Self {
            keypair,
            listen,
            bootstrap: Vec::new(),
            // RTT feeds the path cost, which changes slowly; each ping costs both
            // sides a round trip on every connection.
            ping_interval: Duration::from_secs(30),
            idle_connection_timeout: Duration::from_secs(120),
            listen_timeout: Duration::from_secs(5),
            bootstrap_retry: Duration::from_secs(1),
            bootstrap_retry_max: Duration::from_secs(30),
            ban_duration: Duration::from_secs(10 * 60),
            kad: KadSettings::default(),
            gossip: GossipSettings::default(),
            rope: RopeSettings::default(),
            connections: ConnectionSettings::default(),
            relay: RelaySettings::default(),
            swarm_key: None,
        }
    }

    /// Sets the peers to join through.
    pub fn with_bootstrap(mut self, bootstrap: Vec<Multiaddr>) -> Self {
        self.bootstrap = bootstrap;
        self
    }

    /// Sets how often connected peers are pinged.
    pub fn with_ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// Sets the Kademlia settings.
    pub fn with_kad(mut self, kad: KadSettings) -> Self {
        self.kad = kad;
        self
    }

    /// Sets the gossip settings.
    pub fn with_gossip(mut self, gossip: GossipSettings) -> Self {
        self.gossip = gossip;
        self
    }

    /// Sets the ROPE settings.
    pub fn with_rope(mut self, rope: RopeSettings) -> Self {
        self.rope = rope;
        self
    }

    /// Sets the connection limits.
    pub fn with_connections(mut self, connections: ConnectionSettings) -> Self {
        self.connections = connections;
        self
    }

    /// Sets the circuit relay settings.
    pub fn with_relay(mut self, relay: RelaySettings) -> Self {
        self.relay = relay;
        self
    }

    /// Makes the node a member of the private swarm of `key` (see [`SwarmConfig::swarm_key`]).
    pub fn with_swarm_key(mut self, key: SwarmKey) -> Self {
        self.swarm_key = Some(key);
        self
    }

    /// The first listen or bootstrap address that uses QUIC, which a private
    /// swarm cannot protect.
    pub(crate) fn quic_addr(&self) -> Option<&Multiaddr> {
        self.listen
            .iter()
            .chain(&self.bootstrap)
            .find(|addr| addr.iter().any(|p| matches!(p, Protocol::Quic | Protocol::QuicV1)))
    }

    /// Checks values that would make the swarm misbehave.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.listen.is_empty() {
            return Err("no listen address given".into());
        }
        if self.kad.provider_republish >= self.kad.provider_ttl {
            return Err(format!(
                "provider republish interval ({:?}) must be below the provider ttl ({:?})",
                self.kad.provider_republish, self.kad.provider_ttl
            ));
        }
        if self.rope.max_message_bytes == 0
            || self.rope.inbound_queue == 0
            || self.rope.max_inbound_per_peer == 0
            || self.rope.link_idle.is_zero()
        {
            return Err("ROPE limits must be at least 1".into());
        }
        let c = &self.connections;
        if [
            c.max_established,
            c.max_established_incoming,
            c.max_pending_incoming,
            c.max_pending_outgoing,
            c.max_per_peer,
            c.max_peers,
            c.target_peers,
        ]
        .contains(&0)
        {
            return Err("connection limits must be at least 1".into());
        }
        if c.target_peers > c.max_peers {
            return Err(format!("target peers ({}) must not exceed max peers ({})", c.target_peers, c.max_peers));
        }
        if c.crowd_peers < c.max_peers {
            return Err(format!("crowd peers ({}) must not be below max peers ({})", c.crowd_peers, c.max_peers));
        }
        Ok(())
    }
}
