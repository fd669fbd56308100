//! The libp2p side of a Mafalda Swarm node.
//!
//! One task owns the libp2p [`Swarm`](libp2p::Swarm) (the event loop); the rest
//! of the node talks to it through a cloneable [`SwarmHandle`] (bounded commands,
//! `oneshot` replies), receives [`SwarmEvent`]s, and answers [`InboundCall`]s.
//! Callers never see libp2p's own event types.
//!
//! What the swarm does for the node:
//! - **find streams**: Kademlia (own protocol name, server mode, provider records
//!   that live minutes and are re-announced) maps [`stream_key`]s to providers;
//!   [`SwarmHandle::find_providers`] returns the reachable ones within a deadline;
//! - **spread load**: gossipsub carries signed, versioned [`LoadReport`]s; the
//!   handle keeps the latest per peer with its age;
//! - **carry ROPE**: over one long-lived stream per connected peer (a *link*,
//!   `rope_link`), else request-response, with ROPE's size-capped CBOR codec;
//! - **measure RTT**: ping; **know peers**: identify; **know whether it can be
//!   dialed**: AutoNAT v2 ([`SwarmHandle::reachability`]);
//! - **defend itself**: invalid gossip, malformed or oversized requests and call
//!   floods are penalised, and repeat offenders are banned for a while;
//!   [`ConnectionSettings`] bound connections (in all, incoming, pending, per
//!   peer) so a flood of fresh identities cannot crowd out honest peers; the DHT
//!   stores provider records under well-formed [`stream_key`]s only, never
//!   PUT_VALUE records;
//! - **stay private** when asked: with a [`SwarmKey`]
//!   ([`SwarmConfig::with_swarm_key`]) TCP is wrapped in libp2p pnet before noise,
//!   only nodes with the same key can connect, and QUIC (which pnet cannot
//!   protect) is refused ([`SwarmError::QuicInPrivateSwarm`]).
//!
//! `PROTOCOL.md` (next to this crate's `Cargo.toml`) describes everything the
//! swarm puts on the wire, with golden byte vectors checked by the tests.
//!
//! Layout: `behaviour` composes the protocols; `event_loop` owns the Swarm, with
//! `find` (lookups in progress), `bootstrap` (joining, with backoff) and
//! `penalties` (misbehaviour → bans); `handle` is the caller's API; `load` the
//! report format and table; `identity` the node's key file; `swarm_key` the
//! private swarm's pre-shared key; `rope_codec` the wire codec; `transport`
//! how connections are made; `traffic` bytes and streams per protocol.

mod addresses;
mod behaviour;
mod bootstrap;
mod config;
mod connections;
mod dial_back_guard;
mod error;
mod event_loop;
mod find;
mod handle;
pub mod identity;
mod load;
mod peer_costs;
mod penalties;
mod reachability;
mod reannounce;
mod refresh;
mod relays;
mod rope_codec;
mod rope_link;
mod routing;
mod store_answers;
pub mod swarm_key;
mod traffic;
mod transport;

pub use behaviour::{KAD_PROTOCOL, LOAD_TOPIC, PROTOCOL_VERSION};
pub use config::{ConnectionSettings, GossipSettings, KadSettings, RelaySettings, RopeSettings, SwarmConfig};
pub use error::{CallError, SwarmError};
pub use find::ProviderLookup;
pub use handle::{
    InboundCall, MAX_STREAM_ID_LEN, ROOM_KEY_PREFIX, STREAM_KEY_PREFIX, StartedSwarm, SwarmEvent, SwarmHandle,
    is_provider_key, is_stream_key, room_key, start, stream_key,
};
pub use libp2p::identity::{Keypair, PublicKey};
pub use libp2p::kad::RecordKey;
pub use libp2p::{Multiaddr, PeerId};
pub use load::{LOAD_REPORT_VERSION, LoadReport, LoadReportError, MAX_LOAD_REPORT_BYTES, PeerLoad, WorkerLoad};
pub use reachability::{Reachability, ReachabilityStatus};
pub use rope_codec::{Inbound, ROPE_PROTOCOL, RopeCodec};
pub use rope_link::{LINK_GREETING, ROPE_LINK_PROTOCOL};
pub use swarm_key::{SwarmKey, SwarmKeyError, SwarmKeyFormatError};
pub use traffic::{ProtocolLabel, ProtocolTraffic};
