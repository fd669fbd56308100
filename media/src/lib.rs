//! mediasoup inside Mafalda Swarm: the node's media side.
//!
//! Media never passes through Rust: RTP moves inside mediasoup worker threads and
//! between nodes over PipeTransports. This crate owns those workers and offers the
//! blocks the node assembles:
//! - [`MediaEngine`]: the worker pool (lazy workers up to N, idle ones closed,
//!   deaths reported), per-worker CPU and object counts;
//! - [`placement`]: the packing policy (which worker), apart from the mechanism;
//! - [`SpanningRouter`]: one logical router across workers, piping producers to
//!   where consumers land, once; pipes nobody consumes and routers that hold
//!   nothing are let go on each [`MediaEngine::reap_idle`], so workers used for a
//!   while become idle again and the pool closes them after their grace (a node
//!   only has to call `reap_idle` periodically, which it does);
//! - [`pipe`]: cross-node pipe blocks (SRTP + RTX PipeTransports and the data
//!   that travels between nodes);
//! - [`transports`]: plain RTP in and out, WebRTC through each worker's WebRtcServer;
//! - [`sdp`]: SDP offers and answers for WHIP and WHEP clients, bridged to RTP parameters.

mod capabilities;
mod counters;
pub mod cpu;
mod engine;
mod error;
pub mod nat_pipe;
pub mod pipe;
pub mod placement;
pub mod sdp;
mod spanning;
pub mod transports;

pub use capabilities::consumer_capabilities;
pub use counters::ObjectCounts;
pub use engine::{
    MediaConfig, MediaEngine, MediaEvent, WebRtcListen, WorkerStatus, hold_srtp_crypto_open, running_worker_threads,
};
pub use error::MediaError;
pub use mediasoup;
pub use placement::{PlacementPolicy, WorkerLoadView};
pub use spanning::{PlainEgress, PlainEnd, Released, SpanningRouter};
