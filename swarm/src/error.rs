//! Errors of the swarm crate.

use libp2p::Multiaddr;

/// What can go wrong starting or talking to the swarm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwarmError {
    /// No listen address was given.
    #[error("no listen address given")]
    NoListenAddress,
    /// A transport could not be built.
    #[error("failed to build the libp2p transport: {0}")]
    Transport(String),
    /// Listening on an address failed.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address asked for.
        addr: Multiaddr,
        /// Why it failed.
        reason: String,
    },
    /// A dial could not be started.
    #[error("cannot dial {addr}: {reason}")]
    Dial {
        /// The address asked for.
        addr: Multiaddr,
        /// Why it failed.
        reason: String,
    },
    /// A listener did not report its address in time.
    #[error("listener on {0} did not start in time")]
    ListenTimeout(Multiaddr),
    /// The swarm task has stopped; the handle is no longer usable.
    #[error("the swarm task has stopped")]
    Stopped,
}
