//! The small seam between ROPE and the byte carriers.
//!
//! A [`Connection`] is a sink of outgoing messages and a stream of incoming ones.
//! A message the peer sent that cannot be decoded arrives as
//! `Err(TransportError::Codec)` and the stream goes on (the session answers it
//! with an error); any other error ends the connection.

pub mod websocket;

use std::pin::Pin;

use futures::{Sink, Stream};

use crate::codec::CodecError;
use crate::message::Message;

/// Why a message could not be carried.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The peer sent something that is not a valid message; the connection is still usable.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
    /// The connection failed; the text says how.
    #[error("connection failed: {0}")]
    Failed(String),
}

/// Outgoing half of a connection.
pub type MessageSink = Pin<Box<dyn Sink<Message, Error = TransportError> + Send>>;
/// Incoming half of a connection.
pub type MessageStream = Pin<Box<dyn Stream<Item = Result<Message, TransportError>> + Send>>;

/// One connection to a peer, whatever carries it.
pub struct Connection {
    /// Where outgoing messages go.
    pub sink: MessageSink,
    /// Where incoming messages come from.
    pub stream: MessageStream,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}
