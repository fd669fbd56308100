//! Hostile input: every limit of the decoders (size, depth, items, announced
//! lengths) is enforced before anything large is allocated, with the right
//! error, and honest messages at the limits still decode.

use std::time::{Duration, Instant};

use mafalda_rope::codec::{CodecError, MAX_DEPTH, MAX_ITEMS, MAX_MESSAGE_SIZE, cbor, json};
use mafalda_rope::{ErrorCode, Message, Notification, Request, RequestId, Value};

/// `{"jsonrpc": "2.0", "method": "x", "params": <params>}` in CBOR.
fn notification(params: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0xa3, 0x67];
    bytes.extend(b"jsonrpc\x632.0\x66method\x61x\x66params");
    bytes.extend(params);
    bytes
}

/// `{"jsonrpc": "2.0", "id": <id>, "method": "x"}` in CBOR: `id` goes through
/// serde's untagged buffering, which preallocates from a sequence's announced length.
fn request_with_id(id: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0xa3, 0x67];
    bytes.extend(b"jsonrpc\x632.0\x62id");
    bytes.extend(id);
    bytes.extend(b"\x66method\x61x");
    bytes
}

fn json_notification(params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","method":"x","params":{params}}}"#)
}

/// Decodes on a thread with a small stack (deep recursion would abort the
/// process), checks it is quick, and returns the result.
fn decode_cbor(bytes: Vec<u8>) -> Result<Message, CodecError> {
    timed(move || cbor::decode(&bytes))
}

fn decode_json(text: String) -> Result<Message, CodecError> {
    timed(move || json::decode(&text))
}

fn timed(decode: impl FnOnce() -> Result<Message, CodecError> + Send + 'static) -> Result<Message, CodecError> {
    let start = Instant::now();
    let result = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(decode)
        .expect("spawn")
        .join()
        .expect("decoding does not panic");
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    result
}

fn is_parse(result: &Result<Message, CodecError>) -> bool {
    matches!(result, Err(error @ CodecError::Parse(_)) if error.to_rpc_error().kind() == ErrorCode::ParseError)
}

fn is_too_deep(result: &Result<Message, CodecError>) -> bool {
    matches!(result, Err(error @ CodecError::TooDeep { limit: MAX_DEPTH })
        if error.to_rpc_error().kind() == ErrorCode::MessageTooLarge)
}

fn is_too_many(result: &Result<Message, CodecError>) -> bool {
    matches!(result, Err(error @ CodecError::TooManyItems { limit: MAX_ITEMS })
        if error.to_rpc_error().kind() == ErrorCode::MessageTooLarge)
}

/// A header of major type `major` with an 8-byte argument.
fn long_header(major: u8, argument: u64) -> Vec<u8> {
    let mut bytes = vec![(major << 5) | 27];
    bytes.extend(argument.to_be_bytes());
    bytes
}

#[test]
fn deep_nesting_is_refused_and_the_deepest_allowed_decodes() {
    // The message map is level 1, so params may open MAX_DEPTH - 1 more.
    for (open, close) in [(0x81u8, 0xf6u8), (0xc6, 0xf6), (0x9f, 0xf6), (0xa1, 0x00)] {
        let mut params = Vec::new();
        for _ in 0..MAX_DEPTH - 1 {
            params.push(open);
            if open == 0xa1 {
                params.push(0x00); // the key
            }
        }
        params.push(close);
        if open == 0x9f {
            params.extend(std::iter::repeat_n(0xff, MAX_DEPTH - 1));
        }
        assert!(decode_cbor(notification(&params)).is_ok(), "{open:#x} nested {} deep", MAX_DEPTH - 1);
        let deeper = [
            &[open][..],
            if open == 0xa1 { &[0x00][..] } else { &[][..] },
            &params,
            &[0xff][..open.eq(&0x9f) as usize],
        ]
        .concat();
        assert!(is_too_deep(&decode_cbor(notification(&deeper))), "{open:#x} nested {MAX_DEPTH} deep");
    }
    // A megabyte of nesting is refused at level MAX_DEPTH + 1, without recursion.
    for open in [0x81u8, 0x9f, 0xc6, 0xbf] {
        assert!(is_too_deep(&decode_cbor(notification(&vec![open; MAX_MESSAGE_SIZE - 64]))), "{open:#x}");
    }
    let deepest = format!("{}0{}", "[".repeat(MAX_DEPTH - 1), "]".repeat(MAX_DEPTH - 1));
    assert!(decode_json(json_notification(&deepest)).is_ok());
    let deeper = format!("[{deepest}]");
    assert!(is_too_deep(&decode_json(json_notification(&deeper))));
    assert!(is_too_deep(&decode_json(json_notification(&"[{\"a\":".repeat(100_000)))));
}

#[test]
fn huge_announced_lengths_are_refused_before_allocating() {
    for argument in [1 << 32, 1 << 60, u64::MAX] {
        for major in [2u8, 3, 4, 5] {
            let result = decode_cbor(notification(&long_header(major, argument)));
            assert!(is_parse(&result), "major {major} announcing {argument}: {result:?}");
        }
        // Nested sequences announcing 2^60 items each, in the id (buffered by
        // serde, which preallocates up to 1 MiB per sequence from the header):
        // before the limits, 250 of these (2.3 KB) made the decoder allocate 256 MiB.
        let nested: Vec<u8> = (0..250).flat_map(|_| long_header(4, argument)).collect();
        assert!(is_parse(&decode_cbor(request_with_id(&nested))));
        let nested: Vec<u8> = (0..250).flat_map(|_| long_header(5, argument)).collect();
        assert!(is_parse(&decode_cbor(request_with_id(&nested))));
    }
    // A length that fits the remaining bytes exactly is fine; one more is not.
    assert!(decode_cbor(notification(&[0x43, 1, 2, 3])).is_ok());
    let mut short = notification(&[0x44, 1, 2, 3]);
    assert!(is_parse(&decode_cbor(short.clone())));
    // A count larger than the bytes left (each item takes at least one) is refused
    // even when the input is otherwise long enough to be plausible.
    short = notification(&[0x9a, 0, 1, 0, 0]);
    short.extend(vec![0xf6; 0xffff]);
    assert!(is_parse(&decode_cbor(short)));
}

#[test]
fn too_many_items_are_refused_and_the_most_allowed_decode() {
    // The message map holds 6 items besides params' own.
    let fixed = 7;
    let most = MAX_ITEMS - fixed;
    let mut params = vec![0x9a];
    params.extend(u32::try_from(most).expect("fits").to_be_bytes());
    params.extend(vec![0xf6; most]);
    let message = decode_cbor(notification(&params)).expect("the most items allowed decode");
    assert!(
        matches!(message, Message::Notification(Notification { params: Value::Array(items), .. }) if items.len() == most)
    );

    // One more, announced by a definite header: refused at the header.
    let mut params = vec![0x9a];
    params.extend(u32::try_from(most + 1).expect("fits").to_be_bytes());
    params.extend(vec![0xf6; most + 1]);
    assert!(is_too_many(&decode_cbor(notification(&params))));

    // A megabyte of one-byte items, in every container shape.
    let n = MAX_MESSAGE_SIZE - 64;
    let indefinite_array = [&[0x9f][..], &vec![0xf6; n - 2], &[0xff]].concat();
    let indefinite_map = [&[0xbf][..], &vec![0x00; n - 2], &[0xff]].concat();
    let empty_arrays = [&[0x9f][..], &vec![0x80; n - 2], &[0xff]].concat();
    let tagged: Vec<u8> = [&[0x9f][..], &[0xc6, 0xf6].repeat((n - 2) / 2), &[0xff]].concat();
    let chunks = [&[0x5f][..], &vec![0x40; n - 2], &[0xff]].concat();
    let mut definite = vec![0x9a];
    definite.extend(u32::try_from(n - 5).expect("fits").to_be_bytes());
    definite.extend(vec![0xf6; n - 5]);
    for params in [indefinite_array, indefinite_map, empty_arrays, tagged, chunks, definite] {
        assert!(is_too_many(&decode_cbor(notification(&params))), "{:x?}", &params[..4]);
    }

    // JSON: values and keys count.
    let most = MAX_ITEMS - fixed;
    let zeros = format!("[{}0]", "0,".repeat(most - 1));
    assert!(decode_json(json_notification(&zeros)).is_ok());
    let zeros = format!("[{}0]", "0,".repeat(most));
    assert!(is_too_many(&decode_json(json_notification(&zeros))));
    let pairs = format!("{{{}\"\":0}}", "\"\":0,".repeat(200_000));
    assert!(is_too_many(&decode_json(json_notification(&pairs))));
    let empty_arrays = format!("[{}[]]", "[],".repeat(300_000));
    assert!(is_too_many(&decode_json(json_notification(&empty_arrays))));
}

#[test]
fn malformed_cbor_structure_is_a_parse_error() {
    for params in [
        &[0xff][..],               // a break outside any indefinite container
        &[0x82, 0x01, 0xff],       // a break inside a definite array
        &[0xbf, 0x01, 0xff],       // an indefinite map ending after a key
        &[0x5f, 0x61, 0x61, 0xff], // a text chunk in a byte string
        &[0x5f, 0x5f, 0xff, 0xff], // a nested indefinite chunk
        &[0x1c],                   // reserved additional information
        &[0x3f],                   // an indefinite integer
        &[0xdf, 0x00],             // an indefinite tag
        &[0x19, 0x01],             // a truncated argument
        &[0x9f, 0x01],             // an unterminated indefinite array
    ] {
        assert!(is_parse(&decode_cbor(notification(params))), "{params:x?}");
    }
    let mut trailing =
        cbor::encode(&Message::Notification(Notification { method: "x".into(), params: Value::Null })).expect("encode");
    trailing.push(0xf6);
    assert!(is_parse(&decode_cbor(trailing)), "bytes after the message");
}

#[test]
fn indefinite_lengths_and_tags_within_the_limits_still_decode() {
    // {_ "jsonrpc": "2.0", "id": 3, "method": (_ "pi", "ng"), "params": [_ 1, h'00', 1(0)]}
    let mut bytes = vec![0xbf, 0x67];
    bytes.extend(b"jsonrpc\x632.0\x62id\x03\x66method\x7f\x62pi\x62ng\xff\x66params\x9f\x01\x41\x00\xc1\x00\xff\xff");
    let message = decode_cbor(bytes).expect("decodes");
    assert_eq!(
        message,
        Message::Request(Request {
            id: RequestId::Number(3),
            method: "ping".into(),
            target: None,
            params: Value::Array(vec![
                Value::Integer(1.into()),
                Value::Bytes(vec![0]),
                Value::Tag(1, Box::new(Value::Integer(0.into()))),
            ]),
        })
    );
}

#[test]
fn the_size_limit_comes_first() {
    let big = vec![0x81; MAX_MESSAGE_SIZE + 1];
    assert_eq!(cbor::decode(&big), Err(CodecError::TooLarge { size: MAX_MESSAGE_SIZE + 1, limit: MAX_MESSAGE_SIZE }));
    let big = "[".repeat(MAX_MESSAGE_SIZE + 1);
    assert!(matches!(json::decode(&big), Err(CodecError::TooLarge { .. })));
}
