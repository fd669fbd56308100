//! CBOR encoding (RFC 8949) with `ciborium`.

use super::{CodecError, check_size, classify};
use crate::message::{Message, Wire};

/// Encodes `message`; fails if the result exceeds `limit` bytes.
pub fn encode_with_limit(message: &Message, limit: usize) -> Result<Vec<u8>, CodecError> {
    let mut bytes = Vec::new();
    ciborium::into_writer(&Wire::from(message), &mut bytes).map_err(|e| CodecError::Encode(e.to_string()))?;
    check_size(bytes.len(), limit)?;
    Ok(bytes)
}

/// Decodes `bytes`, refusing more than `limit` bytes before decoding.
pub fn decode_with_limit(bytes: &[u8], limit: usize) -> Result<Message, CodecError> {
    check_size(bytes.len(), limit)?;
    let wire: Wire = ciborium::from_reader(bytes).map_err(|e| CodecError::Parse(e.to_string()))?;
    classify(wire)
}

/// Encodes with the default limit ([`MAX_MESSAGE_SIZE`](super::MAX_MESSAGE_SIZE)).
pub fn encode(message: &Message) -> Result<Vec<u8>, CodecError> {
    encode_with_limit(message, super::MAX_MESSAGE_SIZE)
}

/// Decodes with the default limit ([`MAX_MESSAGE_SIZE`](super::MAX_MESSAGE_SIZE)).
pub fn decode(bytes: &[u8]) -> Result<Message, CodecError> {
    decode_with_limit(bytes, super::MAX_MESSAGE_SIZE)
}
