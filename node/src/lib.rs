//! A Mafalda Swarm node: the policy that joins the media side
//! ([`mafalda_media`]) and the peer-to-peer side ([`mafalda_swarm`]).
//!
//! [`Node::start`] brings both up and [`Node::shutdown`] takes them down in order
//! (swarm first, so peers stop asking, then the mediasoup workers).

mod config;
pub mod cost;
mod error;
mod node;

pub use config::NodeConfig;
pub use error::NodeError;
pub use node::Node;
