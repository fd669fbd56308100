//! A Mafalda Swarm node: the policy that joins the media side
//! ([`mafalda_media`]) and the peer-to-peer side ([`mafalda_swarm`]).
//!
//! A stream published on one node ([`Node::publish_rtp`]) is provided in the DHT;
//! any node can [`Node::find`] it and [`Node::consume_rtp`] it: the node asks the
//! providers for their description over ROPE (`stream.describe`), ranks them by
//! [`cost`], and asks the cheapest to pipe the stream here (`stream.pipe`), then
//! provides it itself as a relay one hop further from the origin. The origin
//! signs what the stream is ([`record`]); every hop checks it.
//!
//! Layout:
//! - `node`: the [`Node`] handle apps hold (publish, find, consume, egresses,
//!   events) and its start and stop; `inner`: the state its tasks share;
//!   `lifecycle`: the tasks it owns (cancelled and awaited at shutdown);
//! - getting a stream here: `acquire` (find, rank, pull), `pipes` (both halves
//!   of the pipe handshake and the downstream pipes a node feeds), `remote`
//!   (the node-to-node methods and the find), [`record`] and `rtp_checks`
//!   (what a node checks in what peers send), [`streams`] (what is held, the
//!   wire structs);
//! - keeping it right: `heal` (a source gone: re-pipe or end, with one set of
//!   verbs), `release` (relays let go of streams nobody consumes), `announce`
//!   (providing in the DHT), `load_report` (gossiped load);
//! - apps: `egress` (plain RTP out), `webrtc` (WebRTC in and out), [`api`]
//!   (HTTP and ROPE over WebSocket), [`events`], `metrics`;
//! - [`rooms`]: rooms that span nodes (a room producer is a stream; member
//!   nodes keep in step with `room.sync`; a spanning router per room);
//!   `app_media`: apps' mediasoup objects on other nodes.

pub mod api;
pub mod codecs;
mod config;
pub mod cost;
mod describe;
mod error;
pub mod events;

mod acquire;
mod admission;
mod announce;
mod app_media;
mod drain;
mod egress;
mod heal;
mod inner;
mod lifecycle;
mod liveness;
mod load_report;
mod metrics;
pub mod monitor;
mod node;
mod peers_in_use;
mod pipe_pairs;
mod pipes;
mod recent_finds;
pub mod record;
mod release;
mod remote;
pub mod rooms;
mod rtp_checks;
pub mod sdp_session;
mod spare_pipes;
pub mod streams;
mod webrtc;
#[cfg(test)]
mod wire_tests;

pub use codecs::{Codec, TrackSpec, TrackSummary};

/// The ROPE error codes a node answers with, beside the JSON-RPC ones.
pub mod error_codes {
    pub use crate::error::{ALREADY_PUBLISHED, FORBIDDEN, NO_PROVIDER, ORIGIN_CONFLICT, UNTRUSTED};
}
pub use config::NodeConfig;
pub use drain::{DrainReport, MoveParams};
pub use error::NodeError;
pub use events::{EgressStatus, NodeEvent};
pub use liveness::StreamStats;
pub use node::{Egress, FoundStream, Node, ProviderInfo, StreamStatus, Traffic, TrafficCount};
pub use pipe_pairs::PipePairs;
pub use pipes::DEFAULT_MAX_PIPES_PER_PEER;
pub use release::DEFAULT_RELAY_LINGER;
pub use sdp_session::{SdpSession, SessionRole};
pub use spare_pipes::MAX_SPARE_PIPES;
pub use streams::StreamRef;
