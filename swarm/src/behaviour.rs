//! The composed libp2p behaviour of a node: one field per protocol, in the order
//! their connection checks run (bans first).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libp2p::identity::Keypair;
use libp2p::kad::store::{MemoryStore, MemoryStoreConfig};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, allow_block_list, autonat, connection_limits, dcutr, gossipsub, identify, kad, ping, relay,
};

use crate::SwarmConfig;
use crate::dial_back_guard::DialBackGuard;
use crate::load::MAX_LOAD_REPORT_BYTES;
use crate::rope_codec::{ROPE_PROTOCOL, RopeCodec};

/// Protocol version announced through identify.
pub const PROTOCOL_VERSION: &str = "/mafalda/1.0.0";
/// Our own Kademlia protocol, so the DHT holds Mafalda nodes only.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/mafalda/kad/1.0.0");
/// The gossipsub topic of load reports (versioned with the report format).
pub const LOAD_TOPIC: &str = "/mafalda/load/1";
/// Largest Kademlia message, in bytes (libp2p's default, stated here so the bound
/// is ours): provider records and peer lists fit easily.
const MAX_KAD_MESSAGE_BYTES: usize = 16 * 1024;
/// How often AutoNAT's client tests the addresses it has not tested yet.
const AUTONAT_PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// How often identify runs again on a connection.
const IDENTIFY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// The ROPE request-response behaviour.
pub(crate) type RopeBehaviour = request_response::Behaviour<RopeCodec>;

/// The protocols every Mafalda Swarm node speaks.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// Refuses connections from banned peers.
    pub(crate) blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Bounds connections: in all, per direction, pending and per peer.
    pub(crate) limits: connection_limits::Behaviour,
    /// Exchanges listen addresses and protocol versions.
    pub(crate) identify: identify::Behaviour,
    /// Asks peers to dial this node's observed addresses back (`reachability`).
    pub(crate) autonat_client: autonat::v2::client::Behaviour,
    /// Dials peers' observed addresses back when they ask, one at a time per
    /// connection, and only at the IPs they connect from.
    pub(crate) autonat_server: DialBackGuard<autonat::v2::server::Behaviour>,
    /// Carries circuits for peers behind NAT (`RelaySettings::serve`).
    pub(crate) relay_server: Toggle<relay::Behaviour>,
    /// Reserves slots on relays when this node is behind NAT, and dials
    /// peers through theirs.
    pub(crate) relay_client: relay::client::Behaviour,
    /// Turns a relayed connection into a direct one where both NATs allow
    /// (hole punching).
    pub(crate) dcutr: dcutr::Behaviour,
    /// Measures round-trip time to each connected peer (feeds the path cost).
    pub(crate) ping: ping::Behaviour,
    /// Finds which peers provide a stream.
    pub(crate) kad: kad::Behaviour<MemoryStore>,
    /// Spreads load reports.
    pub(crate) gossipsub: gossipsub::Behaviour,
    /// ROPE calls between nodes, to peers not connected yet or without links.
    pub(crate) rope: RopeBehaviour,
    /// ROPE calls over one long-lived stream per connected peer.
    pub(crate) rope_link: crate::rope_link::behaviour::LinkBehaviour,
}

impl Behaviour {
    /// Builds the behaviour for a node with this identity.
    pub(crate) fn new(
        keypair: &Keypair,
        config: &SwarmConfig,
        relay_client: relay::client::Behaviour,
        rope_link: crate::rope_link::behaviour::LinkBehaviour,
    ) -> Result<Self, String> {
        let peer_id = keypair.public().to_peer_id();
        Ok(Self {
            blocked: allow_block_list::Behaviour::default(),
            limits: connection_limits(config),
            identify: identify::Behaviour::new(
                identify::Config::new(PROTOCOL_VERSION.to_owned(), keypair.public())
                    .with_agent_version(format!("mafalda-node/{}", env!("CARGO_PKG_VERSION")))
                    // Changes are pushed when they happen; the periodic exchange on
                    // every connection (5 min by default) is only a safety net.
                    .with_push_listen_addr_updates(true)
                    .with_interval(IDENTIFY_INTERVAL),
            ),
            // Every second, the addresses not tested yet are (each once): a
            // node behind NAT knows it, and reserves a relay slot, a second
            // or two after it joined rather than 5 s (libp2p's default).
            autonat_client: autonat::v2::client::Behaviour::new(
                rand_autonat::make_rng::<rand_autonat::rngs::StdRng>(),
                autonat::v2::client::Config::default().with_probe_interval(AUTONAT_PROBE_INTERVAL),
            ),
            autonat_server: DialBackGuard::new(autonat::v2::server::Behaviour::default()),
            relay_server: config.relay.serve.then(|| relay::Behaviour::new(peer_id, relay_limits(config))).into(),
            relay_client,
            dcutr: dcutr::Behaviour::new(peer_id),
            ping: ping::Behaviour::new(ping::Config::new().with_interval(config.ping_interval)),
            kad: kademlia(peer_id, config),
            gossipsub: gossip(keypair, config)?,
            rope: request_response::Behaviour::with_codec(
                RopeCodec::new(config.rope.max_message_bytes),
                [(ROPE_PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(config.rope.request_timeout)
                    .with_max_concurrent_streams(config.rope.max_inbound_per_peer.saturating_mul(4)),
            ),
            rope_link,
        })
    }
}

/// libp2p's relay defaults (its rate limits included) with our bounds; its own
/// circuit limits (2 min, 128 KiB) are sized for hole punching alone, where a
/// circuit here carries a relayed peer's signalling for as long as it is used.
fn relay_limits(config: &SwarmConfig) -> relay::Config {
    let settings = &config.relay;
    relay::Config {
        max_reservations: settings.max_reservations,
        max_circuits: settings.max_circuits,
        // libp2p refuses a circuit only when the peer already has more than
        // this many (`>`): one less makes the setting the most it holds.
        max_circuits_per_peer: settings.max_circuits_per_peer.saturating_sub(1),
        max_circuit_duration: settings.max_circuit_duration,
        max_circuit_bytes: settings.max_circuit_bytes,
        ..relay::Config::default()
    }
}

fn connection_limits(config: &SwarmConfig) -> connection_limits::Behaviour {
    let c = &config.connections;
    connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_established(Some(c.max_established))
            .with_max_established_incoming(Some(c.max_established_incoming))
            .with_max_pending_incoming(Some(c.max_pending_incoming))
            .with_max_pending_outgoing(Some(c.max_pending_outgoing))
            .with_max_established_per_peer(Some(c.max_per_peer)),
    )
}

/// Kademlia for provider records only: inbound records are filtered
/// (`StoreInserts::FilterBoth`) and the event loop stores well-formed provider
/// records and never a PUT_VALUE record.
fn kademlia(peer_id: libp2p::PeerId, config: &SwarmConfig) -> kad::Behaviour<MemoryStore> {
    let settings = &config.kad;
    let store = MemoryStore::with_config(
        peer_id,
        MemoryStoreConfig {
            max_records: settings.max_records,
            // The node never stores values; the bound stays small in case one slips in.
            max_value_bytes: 1024,
            max_providers_per_key: settings.max_providers_per_key,
            max_provided_keys: settings.max_provided_keys,
        },
    );
    let mut kad_config = kad::Config::new(KAD_PROTOCOL);
    kad_config
        .set_provider_record_ttl(Some(settings.provider_ttl))
        .set_provider_publication_interval(Some(settings.provider_republish))
        .set_record_filtering(kad::StoreInserts::FilterBoth)
        .set_max_packet_size(MAX_KAD_MESSAGE_BYTES)
        // No value records: nothing to keep, replicate or republish.
        .set_record_ttl(Some(settings.provider_ttl))
        .set_replication_interval(None)
        .set_publication_interval(None)
        .set_query_timeout(settings.query_timeout)
        .set_periodic_bootstrap_interval(Some(settings.periodic_bootstrap))
        // Peers enter the routing table through `routing::admits`, never by
        // displacing an entry (see there).
        .set_kbucket_inserts(kad::BucketInserts::Manual);
    let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
    // Serve the DHT even without a confirmed external address (loopback, simulations).
    kad.set_mode(Some(kad::Mode::Server));
    kad
}

fn gossip(keypair: &Keypair, config: &SwarmConfig) -> Result<gossipsub::Behaviour, String> {
    let gossip_config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(config.gossip.heartbeat)
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .max_transmit_size(MAX_LOAD_REPORT_BYTES + 1024)
        // The mesh carries load reports to everyone; flooding each to every
        // connected peer as well made gossip traffic grow with N² (measured
        // with 100 nodes in simulations/).
        .flood_publish(false)
        .build()
        .map_err(|e| format!("gossipsub config: {e}"))?;
    let mut behaviour =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(keypair.clone()), gossip_config)
            .map_err(|e| format!("gossipsub: {e}"))?;
    let topic = gossipsub::IdentTopic::new(LOAD_TOPIC);
    let (params, thresholds) = scoring(&topic);
    behaviour.with_peer_score(params, thresholds).map_err(|e| format!("gossipsub scoring: {e}"))?;
    behaviour.subscribe(&topic).map_err(|e| format!("gossipsub subscribe: {e}"))?;
    Ok(behaviour)
}

/// Scoring that punishes invalid load reports hard and nothing else: reports are
/// infrequent, so delivery-rate penalties would punish honest peers.
fn scoring(topic: &gossipsub::IdentTopic) -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let topic_params = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        // Squared count: -10, -40, -90 (graylisted after the third invalid message).
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: 0.5,
        ..gossipsub::TopicScoreParams::default()
    };
    let mut params = gossipsub::PeerScoreParams::default();
    params.topics.insert(topic.hash(), topic_params);
    // Many nodes share one host in tests and simulations; loopback is not a Sybil.
    params.ip_colocation_factor_whitelist =
        HashSet::from([IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)]);
    (params, gossipsub::PeerScoreThresholds::default())
}
