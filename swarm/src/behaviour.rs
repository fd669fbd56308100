//! The composed libp2p behaviour of a node: one field per protocol.

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{identify, ping};

/// Protocol version announced through identify; peers with another one are not ours.
pub const PROTOCOL_VERSION: &str = "/mafalda/1.0.0";

/// The protocols every Mafalda Swarm node speaks.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Exchanges listen addresses and protocol versions with each connected peer.
    pub identify: identify::Behaviour,
    /// Measures round-trip time to each connected peer (feeds the path cost).
    pub ping: ping::Behaviour,
}

impl Behaviour {
    /// Builds the behaviour for a node with this identity.
    pub fn new(keypair: &Keypair, ping_interval: Duration) -> Self {
        Self {
            identify: identify::Behaviour::new(
                identify::Config::new(PROTOCOL_VERSION.to_owned(), keypair.public())
                    .with_agent_version(format!("mafalda-node/{}", env!("CARGO_PKG_VERSION"))),
            ),
            ping: ping::Behaviour::new(ping::Config::new().with_interval(ping_interval)),
        }
    }
}
