//! Errors of the swarm crate.

use libp2p::{Multiaddr, PeerId};

use crate::identity::IdentityError;
use crate::swarm_key::SwarmKeyError;

/// What can go wrong starting or talking to the swarm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwarmError {
    /// The configuration is unusable.
    #[error("invalid swarm configuration: {0}")]
    InvalidConfig(String),
    /// A private swarm (one with a swarm key) was given a QUIC address to listen
    /// on or bootstrap through: pnet protects TCP only, so QUIC is not built.
    #[error("{addr} uses QUIC, which a private swarm cannot protect (pnet covers TCP only): use a TCP address")]
    QuicInPrivateSwarm {
        /// The QUIC listen or bootstrap address.
        addr: Multiaddr,
    },
    /// The identity file could not be used.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The swarm key file could not be used.
    #[error(transparent)]
    SwarmKey(#[from] SwarmKeyError),
    /// A transport or behaviour could not be built.
    #[error("failed to build the libp2p swarm: {0}")]
    Build(String),
    /// Listening on an address failed.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address asked for.
        addr: Multiaddr,
        /// Why it failed.
        reason: String,
    },
    /// A listener did not report its address in time.
    #[error("listener on {0} did not start in time")]
    ListenTimeout(Multiaddr),
    /// A dial could not be started.
    #[error("cannot dial {addr}: {reason}")]
    Dial {
        /// The address asked for.
        addr: Multiaddr,
        /// Why it failed.
        reason: String,
    },
    /// Providing a key failed (the local store is full).
    #[error("cannot provide the key: {0}")]
    Provide(String),
    /// Publishing a load report failed.
    #[error("cannot publish the load report: {0}")]
    Publish(String),
    /// The swarm task has stopped; the handle is no longer usable.
    #[error("the swarm task has stopped")]
    Stopped,
    /// The link a call came over closed before its answer could be sent.
    #[error("the caller's link closed before the answer")]
    LinkClosed,
}

/// Why a ROPE call to a peer failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No response within the request timeout.
    #[error("call to {0} timed out")]
    Timeout(PeerId),
    /// The peer could not be reached or the connection closed mid-call.
    #[error("peer {peer} unreachable: {reason}")]
    Unreachable {
        /// The peer.
        peer: PeerId,
        /// What the transport said.
        reason: String,
    },
    /// The peer does not speak ROPE.
    #[error("peer {0} does not support the ROPE protocol")]
    UnsupportedProtocol(PeerId),
    /// The request or response broke the codec (too large, malformed).
    #[error("call to {peer} failed in transit: {reason}")]
    Io {
        /// The peer.
        peer: PeerId,
        /// What failed.
        reason: String,
    },
    /// The peer answered with a ROPE error.
    #[error("peer answered with an error: {0}")]
    Remote(mafalda_rope::RpcError),
    /// The swarm task has stopped.
    #[error("the swarm task has stopped")]
    Stopped,
}
