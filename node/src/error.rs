//! Errors of the node crate.

/// What can go wrong running a node or serving an app.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The media side failed.
    #[error(transparent)]
    Media(#[from] mafalda_media::MediaError),
    /// The swarm side failed.
    #[error(transparent)]
    Swarm(#[from] mafalda_swarm::SwarmError),
    /// The app's input is not acceptable; the text says why.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// No node provides the stream.
    #[error("stream {0} not found")]
    NotFound(String),
    /// The stream is already published here.
    #[error("stream {0} is already published on this node")]
    AlreadyPublished(String),
    /// This node is over its watermark; these peers also relay the stream.
    #[error("busy; try {alternatives:?}")]
    Busy {
        /// Peer ids of other providers of the stream.
        alternatives: Vec<String>,
    },
    /// Every provider of the stream refused or failed; the text lists why.
    #[error("no provider could serve stream {stream}: {reasons}")]
    NoProvider {
        /// The stream.
        stream: String,
        /// What each provider answered.
        reasons: String,
    },
}
