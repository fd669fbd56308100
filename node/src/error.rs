//! Errors of the node crate.

/// What can go wrong running a node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The media side failed.
    #[error(transparent)]
    Media(#[from] mafalda_media::MediaError),
    /// The swarm side failed.
    #[error(transparent)]
    Swarm(#[from] mafalda_swarm::SwarmError),
}
