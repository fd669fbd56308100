//! mediasoup inside Mafalda Swarm: the node's media workers.
//!
//! Media never passes through Rust: RTP moves inside mediasoup worker threads and
//! between nodes over PipeTransports. This crate owns those workers: it starts
//! them with the node's settings, remembers each worker thread's id (so per-worker
//! CPU can be read from `/proc`), and closes them in the right order.
//!
//! The worker pool with lazy workers, spanning routers and pipe blocks builds on
//! [`MediaEngine`].

mod capabilities;
mod engine;
mod error;

pub use capabilities::consumer_capabilities;
pub use engine::{MediaConfig, MediaEngine, RunningWorker};
pub use error::MediaError;
pub use mediasoup;
