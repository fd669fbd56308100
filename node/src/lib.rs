//! A Mafalda Swarm node: the policy that joins the media side
//! ([`mafalda_media`]) and the peer-to-peer side ([`mafalda_swarm`]).
//!
//! A stream published on one node ([`Node::publish_rtp`]) is provided in the DHT;
//! any node can [`Node::find`] it and [`Node::consume_rtp`] it: the node asks the
//! providers for their description over ROPE (`stream.describe`), ranks them by
//! [`cost`], and asks the cheapest to pipe the stream here (`stream.pipe`), then
//! provides it itself as a relay one hop further from the origin.

pub mod api;
pub mod codecs;
mod config;
pub mod cost;
mod error;
pub mod events;
mod metrics;
mod node;
mod remote;
pub mod streams;
mod webrtc;

pub use codecs::{Codec, TrackSpec, TrackSummary};
pub use config::NodeConfig;
pub use error::NodeError;
pub use events::{EgressStatus, NodeEvent};
pub use node::{Egress, FoundStream, Node, ProviderInfo, StreamStatus};
