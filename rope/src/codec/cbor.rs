//! CBOR encoding (RFC 8949) with `ciborium`.
//!
//! Decoding is bounded (see the [module above](super)): the size is checked,
//! then [`scan`] walks the CBOR header structure without allocating or
//! recursing, and only a message that passes it reaches `ciborium`.

use super::{CodecError, MAX_DEPTH, MAX_ITEMS, check_size, classify};
use crate::message::{Message, Wire};

/// Encodes `message`; fails if the result exceeds `limit` bytes.
pub fn encode_with_limit(message: &Message, limit: usize) -> Result<Vec<u8>, CodecError> {
    let mut bytes = Vec::new();
    ciborium::into_writer(&Wire::from(message), &mut bytes).map_err(|e| CodecError::Encode(e.to_string()))?;
    check_size(bytes.len(), limit)?;
    Ok(bytes)
}

/// Decodes `bytes`. Before anything is allocated it refuses more than `limit`
/// bytes ([`CodecError::TooLarge`]), more than [`MAX_DEPTH`] nested arrays,
/// maps and tags ([`CodecError::TooDeep`]), more than [`MAX_ITEMS`] data items
/// ([`CodecError::TooManyItems`]), and malformed CBOR, length headers larger
/// than the rest of the message, or bytes after the message
/// ([`CodecError::Parse`]).
pub fn decode_with_limit(bytes: &[u8], limit: usize) -> Result<Message, CodecError> {
    check_size(bytes.len(), limit)?;
    scan(bytes)?;
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

/// An open array, map or tag during [`scan`].
#[derive(Clone, Copy)]
enum Open {
    /// A definite-length container (or a tag, which holds one item) still
    /// waiting for this many items.
    Definite(u64),
    /// An indefinite-length array or map, ended by a break; `odd` is true while
    /// a map has a key without its value.
    Indefinite { map: bool, odd: bool },
}

/// One CBOR header: major type and argument (`None` for indefinite length).
struct Header {
    major: u8,
    argument: Option<u64>,
}

fn parse(reason: impl Into<String>) -> CodecError {
    CodecError::Parse(reason.into())
}

/// Reads the header at `*pos`, advancing past it.
fn header(bytes: &[u8], pos: &mut usize) -> Result<Header, CodecError> {
    let initial = *bytes.get(*pos).ok_or_else(|| parse("truncated CBOR: a data item is missing"))?;
    *pos += 1;
    let major = initial >> 5;
    let extra = match initial & 0x1f {
        info @ 0..=23 => return Ok(Header { major, argument: Some(u64::from(info)) }),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        31 => return Ok(Header { major, argument: None }),
        _ => return Err(parse(format!("malformed CBOR: reserved header byte {initial:#04x}"))),
    };
    let end = pos.checked_add(extra).filter(|&end| end <= bytes.len()).ok_or_else(|| parse("truncated CBOR header"))?;
    let argument = bytes[*pos..end].iter().fold(0u64, |value, &byte| (value << 8) | u64::from(byte));
    *pos = end;
    Ok(Header { major, argument: Some(argument) })
}

/// Adds `more` items to `*items`, refusing to pass [`MAX_ITEMS`].
fn count(items: &mut u64, more: u64) -> Result<(), CodecError> {
    *items = items.saturating_add(more);
    if *items > MAX_ITEMS as u64 { Err(CodecError::TooManyItems { limit: MAX_ITEMS }) } else { Ok(()) }
}

/// Skips a definite-length string of `length` bytes, which must all be there.
fn skip(bytes: &[u8], pos: &mut usize, length: u64) -> Result<(), CodecError> {
    let remaining = (bytes.len() - *pos) as u64;
    if length > remaining {
        return Err(parse(format!("CBOR string of {length} bytes with {remaining} bytes left")));
    }
    *pos += length as usize;
    Ok(())
}

/// Checks that `bytes` is exactly one well-formed CBOR data item within the
/// limits, without allocating or recursing: at most [`MAX_DEPTH`] arrays, maps
/// and tags open at once, at most [`MAX_ITEMS`] items (elements of a
/// definite-length container count when its header announces them, so a huge
/// count is refused at once), every announced length no larger than the bytes
/// left (an array of n items needs at least n bytes, a map 2n), and nothing
/// after the item. Text is not checked for UTF-8 here; `ciborium` does that.
/// Returns the number of items.
pub(crate) fn scan(bytes: &[u8]) -> Result<u64, CodecError> {
    let mut open = [Open::Definite(0); MAX_DEPTH];
    let mut depth = 0;
    let mut pos = 0;
    // The top-level item.
    let mut items = 0;
    count(&mut items, 1)?;
    loop {
        // Read one data item, whose count is already taken unless it sits in
        // an indefinite-length container.
        let start = pos;
        let Header { major, argument } = header(bytes, &mut pos)?;
        let in_indefinite = depth > 0 && matches!(open[depth - 1], Open::Indefinite { .. });
        if major == 7 && argument.is_none() {
            // A break ends the innermost indefinite container, which is then a complete item.
            match depth.checked_sub(1).map(|top| open[top]) {
                Some(Open::Indefinite { odd: false, .. }) => depth -= 1,
                Some(Open::Indefinite { odd: true, .. }) => return Err(parse("CBOR map ends after a key")),
                _ => return Err(parse(format!("unexpected CBOR break at byte {start}"))),
            }
        } else {
            if in_indefinite {
                count(&mut items, 1)?;
            }
            let remaining = (bytes.len() - pos) as u64;
            let opened = match (major, argument) {
                (0 | 1 | 7, Some(_)) => None,
                (2 | 3, Some(length)) => {
                    skip(bytes, &mut pos, length)?;
                    None
                }
                (2 | 3, None) => {
                    // Chunks of the same major type with definite lengths, then a break.
                    loop {
                        let chunk = header(bytes, &mut pos)?;
                        match (chunk.major, chunk.argument) {
                            (7, None) => break,
                            (chunk_major, Some(length)) if chunk_major == major => {
                                count(&mut items, 1)?;
                                skip(bytes, &mut pos, length)?;
                            }
                            _ => return Err(parse("malformed indefinite-length CBOR string")),
                        }
                    }
                    None
                }
                (4, Some(length)) => {
                    if length > remaining {
                        return Err(parse(format!("CBOR array of {length} items with {remaining} bytes left")));
                    }
                    count(&mut items, length)?;
                    Some(Open::Definite(length))
                }
                (5, Some(length)) => {
                    if length > remaining / 2 {
                        return Err(parse(format!("CBOR map of {length} pairs with {remaining} bytes left")));
                    }
                    count(&mut items, 2 * length)?;
                    Some(Open::Definite(2 * length))
                }
                (4, None) => Some(Open::Indefinite { map: false, odd: false }),
                (5, None) => Some(Open::Indefinite { map: true, odd: false }),
                (6, Some(_)) => {
                    count(&mut items, 1)?;
                    Some(Open::Definite(1))
                }
                _ => return Err(parse(format!("malformed CBOR: header byte {:#04x}", bytes[start]))),
            };
            if let Some(container) = opened {
                if depth == MAX_DEPTH {
                    return Err(CodecError::TooDeep { limit: MAX_DEPTH });
                }
                if !matches!(container, Open::Definite(0)) {
                    open[depth] = container;
                    depth += 1;
                    continue;
                }
            }
        }
        // An item is complete: it fills a slot in the innermost open container,
        // which may complete that one too.
        loop {
            let Some(top) = depth.checked_sub(1) else {
                return if pos == bytes.len() {
                    Ok(items)
                } else {
                    Err(parse(format!("{} bytes after the CBOR message", bytes.len() - pos)))
                };
            };
            match &mut open[top] {
                Open::Definite(left) => {
                    *left -= 1;
                    if *left > 0 {
                        break;
                    }
                    depth -= 1;
                }
                Open::Indefinite { map, odd } => {
                    if *map {
                        *odd = !*odd;
                    }
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Notification, ObjectState, Snapshot};

    /// A transport's state as the node reports it (mediasoup-like names,
    /// uuids, RTP parameters): what a snapshot is made of.
    fn transport_state(n: usize) -> crate::Value {
        let json = serde_json::json!({
            "id": format!("0f1e2d3c-4b5a-6978-8796-a5b4c3d2{n:04x}"),
            "kind": "webrtc",
            "iceRole": "controlled",
            "iceState": "completed",
            "dtlsState": "connected",
            "iceParameters": {"usernameFragment": "v2mzaq6h7abcdefg", "password": "x6x8t0q3e1oizv5t2bqxgyqb8ev5ktr4", "iceLite": true},
            "iceCandidates": [{"foundation": "udpcandidate", "priority": 1_076_302_079, "ip": "10.0.0.1", "protocol": "udp", "port": 40_012, "type": "host"}],
            "producers": [{"id": "p1", "kind": "video", "paused": false, "rtpParameters": {"mid": "0", "codecs": [
                {"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90_000, "parameters": {},
                 "rtcpFeedback": [{"type": "nack", "parameter": ""}, {"type": "nack", "parameter": "pli"}, {"type": "ccm", "parameter": "fir"}, {"type": "goog-remb", "parameter": ""}]},
                {"mimeType": "video/rtx", "payloadType": 102, "clockRate": 90_000, "parameters": {"apt": 101}, "rtcpFeedback": []}],
                "encodings": [{"ssrc": 1_111_111, "rtx": {"ssrc": 2_222_222}, "maxBitrate": 500_000}, {"ssrc": 3_333_333, "rtx": {"ssrc": 4_444_444}, "maxBitrate": 1_500_000}],
                "headerExtensions": [{"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 1, "encrypt": false, "parameters": {}}],
                "rtcp": {"cname": "abcd", "reducedSize": true}}}],
        });
        crate::Value::serialized(&json).expect("a value")
    }

    /// Honest object states spend about 6.4 bytes per item, so at 1 MiB they
    /// stay under [`MAX_ITEMS`]: the size limit, not the item limit, is what
    /// such a message meets first.
    #[test]
    fn honest_snapshots_reach_the_size_limit_before_the_item_limit() {
        let objects = (0..100)
            .map(|n| ObjectState { id: format!("t-{n}"), object_type: "transport".into(), state: transport_state(n) })
            .collect();
        let bytes = encode(&Message::Snapshot(Snapshot { objects })).expect("encode");
        let items = scan(&bytes).expect("within the limits");
        let per_item = bytes.len() as f64 / items as f64;
        println!("snapshot of 100 transports: {} bytes, {items} items, {per_item:.2} bytes per item", bytes.len());
        assert!(per_item * MAX_ITEMS as f64 > super::super::MAX_MESSAGE_SIZE as f64, "{per_item:.1} bytes per item");
        let params = crate::Value::Array(vec![crate::Value::Integer(7.into()); 10]);
        let bytes = encode(&Message::Notification(Notification { method: "x".into(), params })).expect("encode");
        assert_eq!(scan(&bytes), Ok(7 + 10), "the message map, its 3 keys, 2 values, params and its 10 elements");
    }
}
