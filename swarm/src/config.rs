//! How to start a node's swarm: identity, addresses and protocol settings.
//!
//! Defaults suit live streams: provider records live for minutes and are
//! re-announced well before they expire (Kademlia's defaults of 48 h / 12 h are
//! for the public IPFS DHT).

use std::time::Duration;

use libp2p::Multiaddr;
use libp2p::identity::Keypair;

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
    /// How often the routing table is refreshed by a bootstrap query.
    pub periodic_bootstrap: Duration,
    /// Most keys this node may provide.
    pub max_provided_keys: usize,
    /// Most provider records kept per key.
    pub max_providers_per_key: usize,
    /// Most records kept in the store.
    pub max_records: usize,
}

impl Default for KadSettings {
    fn default() -> Self {
        Self {
            provider_ttl: Duration::from_secs(5 * 60),
            provider_republish: Duration::from_secs(2 * 60),
            query_timeout: Duration::from_secs(10),
            periodic_bootstrap: Duration::from_secs(5 * 60),
            max_provided_keys: 10_000,
            max_providers_per_key: 64,
            max_records: 10_000,
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
        Self { heartbeat: Duration::from_secs(1), load_report_ttl: Duration::from_secs(30), max_load_reports: 10_000 }
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
}

impl Default for RopeSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            max_message_bytes: 1024 * 1024,
            max_inbound_per_peer: 32,
            inbound_queue: 256,
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
}

impl SwarmConfig {
    /// A configuration with defaults for everything but the identity and listen addresses.
    pub fn new(keypair: Keypair, listen: Vec<Multiaddr>) -> Self {
        Self {
            keypair,
            listen,
            bootstrap: Vec::new(),
            ping_interval: Duration::from_secs(5),
            idle_connection_timeout: Duration::from_secs(120),
            listen_timeout: Duration::from_secs(5),
            bootstrap_retry: Duration::from_secs(1),
            bootstrap_retry_max: Duration::from_secs(30),
            ban_duration: Duration::from_secs(10 * 60),
            kad: KadSettings::default(),
            gossip: GossipSettings::default(),
            rope: RopeSettings::default(),
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
        if self.rope.max_message_bytes == 0 || self.rope.inbound_queue == 0 || self.rope.max_inbound_per_peer == 0 {
            return Err("ROPE limits must be at least 1".into());
        }
        Ok(())
    }
}
