//! Everything a node needs to start.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use mafalda_media::MediaConfig;
use mafalda_swarm::{PeerId, SwarmConfig};

use crate::cost::CostWeights;

/// Settings of a node: its media side, its swarm side and its stream policy.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeConfig {
    /// mediasoup workers.
    pub media: MediaConfig,
    /// libp2p identity, listen addresses, bootstrap peers.
    pub swarm: SwarmConfig,
    /// IP that RTP ingest, egress and pipe transports listen on.
    pub media_ip: IpAddr,
    /// Address other nodes should send pipe media to, if not `media_ip` (NAT, public IP).
    pub announced_ip: Option<IpAddr>,
    /// How long a stream lookup may take.
    pub find_deadline: Duration,
    /// How providers are ranked.
    pub cost: CostWeights,
    /// Longest a drain takes before what is left is ended anyway.
    pub drain_timeout: Duration,
    /// How long a relay keeps a stream nobody here consumes (a consumer that
    /// comes back within it reuses the pipe).
    pub relay_linger: Duration,
    /// Extra latency assumed on the link to these peers, added to the measured RTT
    /// when ranking providers (for simulations and tests of distance).
    pub link_delay: HashMap<PeerId, Duration>,
    /// Remote Mediasoup (mediasoup's object model for apps, on `/v1/rope` and
    /// for peers' apps over the swarm): caps per app session, app workers' ports.
    pub app_media: mafalda_mediasoup_api::HostConfig,
}

impl NodeConfig {
    /// A node configuration from its two halves, with default stream policy.
    pub fn new(media: MediaConfig, swarm: SwarmConfig) -> Self {
        Self {
            media,
            swarm,
            media_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            announced_ip: None,
            find_deadline: Duration::from_secs(5),
            cost: CostWeights::default(),
            relay_linger: crate::release::DEFAULT_RELAY_LINGER,
            drain_timeout: Duration::from_secs(30),
            link_delay: HashMap::new(),
            app_media: mafalda_mediasoup_api::HostConfig::default(),
        }
    }
}
