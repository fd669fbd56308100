//! Encoding messages: CBOR (binary, between nodes and for binary WebSocket
//! frames) and JSON (text frames, debugging with common tools), from the same
//! serde types.
//!
//! Every byte a decoder sees may come from a hostile peer, so before anything is
//! allocated both decoders check, in this order:
//!
//! 1. the size: at most `limit` bytes ([`MAX_MESSAGE_SIZE`] by default), else
//!    [`CodecError::TooLarge`];
//! 2. with a non-allocating, non-recursive scan of the bytes: the nesting depth
//!    (at most [`MAX_DEPTH`] arrays, maps and CBOR tags open at once, else
//!    [`CodecError::TooDeep`]) and the number of data items (at most
//!    [`MAX_ITEMS`], else [`CodecError::TooManyItems`]). The CBOR scan also
//!    refuses, as [`CodecError::Parse`], any length header announcing more than
//!    the rest of the message could hold, malformed headers and trailing bytes,
//!    so the decoder never sizes anything from a header it has not verified.
//!
//! Only then does `ciborium` / `serde_json` build the message, whose memory is
//! then bounded by the item count (a [`Value`](crate::Value) is 32 bytes) plus
//! the string bytes (at most the message size).

pub mod cbor;
pub mod json;

use crate::error::{ErrorCode, RpcError};
use crate::message::RequestId;

/// Largest encoded message accepted or produced by default: 1 MiB.
pub const MAX_MESSAGE_SIZE: usize = 1024 * 1024;

/// Most arrays, maps and CBOR tags open at once in a decoded message, counting
/// the message's own map: a request's `params` map is at depth 2, a snapshot
/// object's `state` at depth 5, leaving 27 levels inside it. Honest ROPE values
/// (object states, RTP parameters) nest 5 to 8 levels; 32 keeps the recursive
/// decoders (and everything that later walks a [`Value`](crate::Value)
/// recursively: clone, drop, conversion) to a few hundred KiB of stack even in
/// debug builds. Deeper messages are refused with [`CodecError::TooDeep`].
pub const MAX_DEPTH: usize = 32;

/// Most data items in a decoded message: every value, array element, map key,
/// map value and tag counts one (in CBOR also each chunk of an
/// indefinite-length string). Without it 1 MiB of one-byte items decodes into
/// about 48 MiB of [`Value`](crate::Value)s (32 bytes each, plus vector
/// growth); with it a message holds at most 256 Ki × 32 bytes = 8 MiB of them
/// (12 MiB at peak while vectors grow).
/// Honest object states (short keys, small integers, ids, RTP parameters)
/// measure about 6.4 bytes per item, so a 1 MiB snapshot of them has about
/// 163 Ki items: they meet [`MAX_MESSAGE_SIZE`] first, with room to spare down
/// to 4 bytes per item. More items are refused with [`CodecError::TooManyItems`].
pub const MAX_ITEMS: usize = 256 * 1024;

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
    /// Nested deeper than the limit ([`MAX_DEPTH`]; checked before decoding).
    #[error("message nests deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// More data items than the limit ([`MAX_ITEMS`]; checked before decoding).
    #[error("message has more than {limit} items")]
    TooManyItems {
        /// The limit.
        limit: usize,
    },
    /// Not CBOR / not JSON (including, in CBOR, a length header announcing more
    /// than the message holds, and bytes after the message).
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
            Self::TooLarge { .. } | Self::TooDeep { .. } | Self::TooManyItems { .. } => {
                RpcError::new(ErrorCode::MessageTooLarge, self.to_string())
            }
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
