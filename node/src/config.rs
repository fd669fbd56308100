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
    /// A dual-stack node's media IP in the other family than `media_ip`:
    /// pipes with a peer whose connection comes over that family use it, so
    /// IPv4-only and IPv6-only peers can both pipe with this node. `None`:
    /// every pipe uses `media_ip`.
    pub second_media_ip: Option<IpAddr>,
    /// Address announced for `second_media_ip`, as `announced_ip` is for `media_ip`.
    pub second_announced_ip: Option<IpAddr>,
    /// How long a stream lookup may take.
    pub find_deadline: Duration,
    /// How providers are ranked.
    pub cost: CostWeights,
    /// Longest a drain takes before what is left is ended anyway.
    pub drain_timeout: Duration,
    /// How long a relay keeps a stream nobody here consumes (a consumer that
    /// comes back within it reuses the pipe).
    pub relay_linger: Duration,
    /// Most pipes one peer may hold from this node, one per stream it pulls
    /// from here ([`DEFAULT_MAX_PIPES_PER_PEER`]): bounds the transports, ports
    /// and bandwidth a peer can make this node spend; more are refused
    /// (`forbidden`) and the asker tries another provider.
    ///
    /// [`DEFAULT_MAX_PIPES_PER_PEER`]: crate::DEFAULT_MAX_PIPES_PER_PEER
    pub max_pipes_per_peer: usize,
    /// Extra latency assumed on the link to these peers, added to the measured RTT
    /// when ranking providers (for simulations and tests of distance).
    pub link_delay: HashMap<PeerId, Duration>,
    /// Remote Mediasoup (mediasoup's object model for apps, on `/v1/rope` and
    /// for peers' apps over the swarm): caps per app session, app workers' ports.
    pub app_media: mafalda_mediasoup_api::HostConfig,
}

/// "IPv4" or "IPv6", for messages about an address's family.
pub(crate) fn family_name(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

impl NodeConfig {
    /// Checks the media addresses: the second media IP is of the other
    /// family than the first, and each announced IP of its media IP's family.
    pub(crate) fn check_media_ips(&self) -> Result<(), String> {
        if let Some(second) = &self.second_media_ip
            && second.is_ipv4() == self.media_ip.is_ipv4()
        {
            return Err(format!(
                "the second media IP ({second}) must be of the other family than the first ({}): both are {}",
                self.media_ip,
                family_name(second)
            ));
        }
        let pairs = [(Some(self.media_ip), self.announced_ip), (self.second_media_ip, self.second_announced_ip)];
        for (media, announced) in pairs {
            if let Some(announced) = announced {
                match media {
                    Some(media) if media.is_ipv4() == announced.is_ipv4() => {}
                    Some(media) => {
                        return Err(format!(
                            "announced IP {announced} is {} but its media IP {media} is {}",
                            family_name(&announced),
                            family_name(&media)
                        ));
                    }
                    None => return Err(format!("announced IP {announced} has no media IP of its family")),
                }
            }
        }
        Ok(())
    }

    /// The media IP and the address to announce (if any is configured) for
    /// pipes with a peer whose connection comes from `peer_ip`: the second
    /// media IP when it is of that family, else the first.
    pub(crate) fn media_ip_for(&self, peer_ip: Option<IpAddr>) -> (IpAddr, Option<IpAddr>) {
        match (self.second_media_ip, peer_ip) {
            (Some(second), Some(peer)) if second.is_ipv4() == peer.is_ipv4() => (second, self.second_announced_ip),
            _ => (self.media_ip, self.announced_ip),
        }
    }

    /// A node configuration from its two halves, with default stream policy.
    pub fn new(media: MediaConfig, swarm: SwarmConfig) -> Self {
        Self {
            media,
            swarm,
            media_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            announced_ip: None,
            second_media_ip: None,
            second_announced_ip: None,
            find_deadline: Duration::from_secs(5),
            cost: CostWeights::default(),
            relay_linger: crate::release::DEFAULT_RELAY_LINGER,
            max_pipes_per_peer: crate::DEFAULT_MAX_PIPES_PER_PEER,
            drain_timeout: Duration::from_secs(30),
            link_delay: HashMap::new(),
            app_media: mafalda_mediasoup_api::HostConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(media: &[&str], announced: &[Option<&str>]) -> NodeConfig {
        let swarm = SwarmConfig::new(mafalda_swarm::Keypair::generate_ed25519(), vec![]);
        let mut config = NodeConfig::new(MediaConfig::default(), swarm);
        let ip = |text: &str| text.parse::<IpAddr>().expect("ip");
        config.media_ip = ip(media[0]);
        config.second_media_ip = media.get(1).map(|m| ip(m));
        config.announced_ip = announced.first().copied().flatten().map(ip);
        config.second_announced_ip = announced.get(1).copied().flatten().map(ip);
        config
    }

    #[test]
    fn each_pipe_takes_the_media_ip_of_its_peers_family() {
        let dual = config(&["10.0.0.5", "fd00::5"], &[Some("192.0.2.5"), None]);
        assert_eq!(dual.check_media_ips(), Ok(()));
        let v4: IpAddr = "10.9.9.9".parse().expect("ip");
        let v6: IpAddr = "fd00::9".parse().expect("ip");
        assert_eq!(dual.media_ip_for(Some(v4)), (dual.media_ip, dual.announced_ip));
        assert_eq!(dual.media_ip_for(Some(v6)), ("fd00::5".parse().expect("ip"), None));
        assert_eq!(dual.media_ip_for(None), (dual.media_ip, dual.announced_ip), "unknown: the first");
        let single = config(&["10.0.0.5"], &[]);
        assert_eq!(single.media_ip_for(Some(v6)).0, single.media_ip, "one family: always it");
    }

    #[test]
    fn media_ips_of_one_family_or_announced_in_the_wrong_one_are_refused() {
        let same = config(&["10.0.0.5", "10.0.0.6"], &[]).check_media_ips();
        assert!(same.is_err_and(|e| e.contains("other family")));
        let wrong = config(&["10.0.0.5"], &[Some("2001:db8::1")]).check_media_ips();
        assert!(wrong.is_err_and(|e| e.contains("is IPv6 but its media IP")));
        let orphan = config(&["10.0.0.5"], &[None, Some("2001:db8::1")]).check_media_ips();
        assert!(orphan.is_err_and(|e| e.contains("no media IP of its family")));
    }
}
