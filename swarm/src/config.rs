//! How to start a node's swarm.

use std::time::Duration;

use libp2p::Multiaddr;
use libp2p::identity::Keypair;

/// Settings for [`start`](crate::start).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SwarmConfig {
    /// The node's identity; its public key gives the peer id.
    pub keypair: Keypair,
    /// Addresses to listen on (e.g. `/ip4/127.0.0.1/tcp/0`).
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start.
    pub bootstrap: Vec<Multiaddr>,
    /// How often to ping each connected peer.
    pub ping_interval: Duration,
    /// How long a connection with no open stream is kept.
    pub idle_connection_timeout: Duration,
    /// How long to wait for every listener to report its address at start.
    pub listen_timeout: Duration,
}

impl SwarmConfig {
    /// A configuration with defaults for everything but the identity and listen addresses.
    pub fn new(keypair: Keypair, listen: Vec<Multiaddr>) -> Self {
        Self {
            keypair,
            listen,
            bootstrap: Vec::new(),
            ping_interval: Duration::from_secs(5),
            idle_connection_timeout: Duration::from_secs(60),
            listen_timeout: Duration::from_secs(5),
        }
    }

    /// Sets the peers to dial at start.
    pub fn with_bootstrap(mut self, bootstrap: Vec<Multiaddr>) -> Self {
        self.bootstrap = bootstrap;
        self
    }

    /// Sets how often connected peers are pinged.
    pub fn with_ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }
}
