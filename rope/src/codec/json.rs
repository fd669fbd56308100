//! JSON encoding with `serde_json`.
//!
//! Decoding is bounded (see the [module above](super)): the size is checked,
//! then [`scan`] counts nesting and items without allocating, and only a
//! message within the limits reaches `serde_json` (whose own recursion limit,
//! 128, is then never reached).

use super::{CodecError, MAX_DEPTH, MAX_ITEMS, check_size, classify};
use crate::message::{Message, Wire};

/// Encodes `message`; fails if the result exceeds `limit` bytes.
pub fn encode_with_limit(message: &Message, limit: usize) -> Result<String, CodecError> {
    let text = serde_json::to_string(&Wire::from(message)).map_err(|e| CodecError::Encode(e.to_string()))?;
    check_size(text.len(), limit)?;
    Ok(text)
}

/// Decodes `text`. Before anything is allocated it refuses more than `limit`
/// bytes ([`CodecError::TooLarge`]), more than [`MAX_DEPTH`] nested arrays and
/// objects ([`CodecError::TooDeep`]) and more than [`MAX_ITEMS`] values and
/// keys ([`CodecError::TooManyItems`]); then malformed JSON is
/// [`CodecError::Parse`].
pub fn decode_with_limit(text: &str, limit: usize) -> Result<Message, CodecError> {
    check_size(text.len(), limit)?;
    scan(text.as_bytes())?;
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

/// Checks nesting and item count without allocating or recursing: at most
/// [`MAX_DEPTH`] arrays and objects open at once, at most [`MAX_ITEMS`] values
/// and keys (each string, number, literal, array and object counts one). It
/// does not validate the JSON: for valid JSON the counts are exact, anything
/// else is left for `serde_json` to refuse. Returns the number of items.
pub(crate) fn scan(text: &[u8]) -> Result<usize, CodecError> {
    let mut depth = 0usize;
    let mut items = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut in_scalar = false;
    for &byte in text {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        let starts_item = match byte {
            b'"' => {
                in_string = true;
                true
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(CodecError::TooDeep { limit: MAX_DEPTH });
                }
                true
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                false
            }
            b',' | b':' | b' ' | b'\t' | b'\n' | b'\r' => false,
            // A number or literal: one item however many bytes it spans.
            _ => !in_scalar,
        };
        in_scalar = !matches!(byte, b'"' | b'[' | b'{' | b']' | b'}' | b',' | b':' | b' ' | b'\t' | b'\n' | b'\r');
        if starts_item {
            items += 1;
            if items > MAX_ITEMS {
                return Err(CodecError::TooManyItems { limit: MAX_ITEMS });
            }
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_counts_every_value_and_key_once() {
        let text = br#"{"a\"]":[1, -2.5e3,true ,null],"b":{"c":"[{"},"d":[]}"#;
        // The object, 3 keys, the array and its 4 values, the inner object, its key and value, the empty array.
        assert_eq!(scan(text), Ok(1 + 3 + 1 + 4 + 1 + 2 + 1));
        assert_eq!(scan(br#""[[[[""#), Ok(1), "brackets in strings do not nest");
    }
}
