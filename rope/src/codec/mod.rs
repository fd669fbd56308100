//! Encoding messages: CBOR (binary, between nodes and for binary WebSocket
//! frames) and JSON (text frames, debugging with common tools), from the same
//! serde types. Both check the size before decoding allocates anything.

pub mod cbor;
pub mod json;

use crate::error::{ErrorCode, RpcError};
use crate::message::RequestId;

/// Largest encoded message accepted or produced by default: 1 MiB.
pub const MAX_MESSAGE_SIZE: usize = 1024 * 1024;

/// Why bytes could not become a message, or a message bytes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Larger than the limit (checked before decoding).
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The message size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not CBOR / not JSON.
    #[error("parse error: {0}")]
    Parse(String),
    /// Well-formed, but not a ROPE message; `id` is the request id if one was readable.
    #[error("invalid message: {}", .error.message)]
    Invalid {
        /// The request id, to answer with.
        id: Option<RequestId>,
        /// The −32600 error.
        error: RpcError,
    },
    /// The message cannot be written in this encoding (e.g. a JSON map key that is not a string).
    #[error("cannot encode: {0}")]
    Encode(String),
}

impl CodecError {
    /// The error object to answer a peer with.
    pub fn to_rpc_error(&self) -> RpcError {
        match self {
            Self::TooLarge { .. } => RpcError::new(ErrorCode::MessageTooLarge, self.to_string()),
            Self::Parse(_) => RpcError::new(ErrorCode::ParseError, self.to_string()),
            Self::Invalid { error, .. } => error.clone(),
            Self::Encode(_) => RpcError::new(ErrorCode::InternalError, self.to_string()),
        }
    }

    /// The request id to answer with, when the message had a readable one.
    pub fn request_id(&self) -> Option<RequestId> {
        match self {
            Self::Invalid { id, .. } => id.clone(),
            _ => None,
        }
    }
}

pub(crate) fn check_size(size: usize, limit: usize) -> Result<(), CodecError> {
    if size > limit { Err(CodecError::TooLarge { size, limit }) } else { Ok(()) }
}

/// Turns a decoded wire object into a message, keeping the id for the error.
pub(crate) fn classify(wire: crate::message::Wire) -> Result<crate::message::Message, CodecError> {
    let id = wire_id(&wire);
    crate::message::Message::try_from(wire).map_err(|error| CodecError::Invalid { id, error })
}

fn wire_id(wire: &crate::message::Wire) -> Option<RequestId> {
    wire.id_ref().cloned()
}
