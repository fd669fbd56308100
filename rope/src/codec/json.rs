//! JSON encoding with `serde_json`.

use super::{CodecError, check_size, classify};
use crate::message::{Message, Wire};

/// Encodes `message`; fails if the result exceeds `limit` bytes.
pub fn encode_with_limit(message: &Message, limit: usize) -> Result<String, CodecError> {
    let text = serde_json::to_string(&Wire::from(message)).map_err(|e| CodecError::Encode(e.to_string()))?;
    check_size(text.len(), limit)?;
    Ok(text)
}

/// Decodes `text`, refusing more than `limit` bytes before decoding.
pub fn decode_with_limit(text: &str, limit: usize) -> Result<Message, CodecError> {
    check_size(text.len(), limit)?;
    let wire: Wire = serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            // Valid JSON of the wrong shape is an invalid request, not a parse error.
            CodecError::Invalid {
                id: None,
                error: crate::RpcError::new(crate::ErrorCode::InvalidRequest, e.to_string()),
            }
        } else {
            CodecError::Parse(e.to_string())
        }
    })?;
    classify(wire)
}

/// Encodes with the default limit ([`MAX_MESSAGE_SIZE`](super::MAX_MESSAGE_SIZE)).
pub fn encode(message: &Message) -> Result<String, CodecError> {
    encode_with_limit(message, super::MAX_MESSAGE_SIZE)
}

/// Decodes with the default limit ([`MAX_MESSAGE_SIZE`](super::MAX_MESSAGE_SIZE)).
pub fn decode(text: &str) -> Result<Message, CodecError> {
    decode_with_limit(text, super::MAX_MESSAGE_SIZE)
}
