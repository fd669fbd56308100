//! Everything a node needs to start.

use mafalda_media::MediaConfig;
use mafalda_swarm::SwarmConfig;

/// Settings of a node: its media side and its swarm side.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeConfig {
    /// mediasoup workers.
    pub media: MediaConfig,
    /// libp2p identity, listen addresses, bootstrap peers.
    pub swarm: SwarmConfig,
}

impl NodeConfig {
    /// A node configuration from its two halves.
    pub fn new(media: MediaConfig, swarm: SwarmConfig) -> Self {
        Self { media, swarm }
    }
}
