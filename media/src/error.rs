//! Errors of the media crate.

use std::io;

/// What can go wrong starting or driving the node's mediasoup workers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The configuration is unusable; the message says which value and why.
    #[error("invalid media configuration: {0}")]
    InvalidConfig(String),
    /// mediasoup could not start a worker thread.
    #[error("failed to start mediasoup worker: {0}")]
    WorkerStart(#[source] io::Error),
    /// A mediasoup request failed (the text is mediasoup's).
    #[error("mediasoup request failed: {0}")]
    Request(String),
    /// The producer is not known to this router.
    #[error("unknown producer {0}")]
    UnknownProducer(String),
    /// The media engine has been closed.
    #[error("the media engine is closed")]
    Closed,
}
