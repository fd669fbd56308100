//! The libp2p side of a Mafalda Swarm node.
//!
//! One task owns the libp2p [`Swarm`](libp2p::Swarm) (the event loop); the rest
//! of the node talks to it through a cloneable [`SwarmHandle`] (bounded commands,
//! `oneshot` replies) and receives [`SwarmEvent`]s on a bounded channel. Callers
//! never see libp2p's own event types.
//!
//! Layout: `behaviour` composes the protocols; `event_loop` owns the Swarm;
//! `handle` is the caller's API; [`SwarmConfig`] says how to start.

mod behaviour;
mod config;
mod error;
mod event_loop;
mod handle;

pub use behaviour::PROTOCOL_VERSION;
pub use config::SwarmConfig;
pub use error::SwarmError;
pub use handle::{SwarmEvent, SwarmHandle, start};
pub use libp2p::identity::Keypair;
pub use libp2p::{Multiaddr, PeerId};
