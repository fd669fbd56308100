//! Deterministic fuzzing of both decoders, fast enough for CI: valid messages
//! of every type, mutated (bit flips, truncation, splicing, inflated length
//! headers, nesting bombs), and random bytes. No input may panic or take long,
//! and whatever decodes must encode and decode again (in CBOR to the same bytes).
//! (`rope/fuzz` holds the coverage-guided libFuzzer target for longer runs.)

use std::time::{Duration, Instant};

use mafalda_rope::codec::{CodecError, cbor, json};
use mafalda_rope::{
    ErrorCode, Event, EventKind, Message, Notification, ObjectState, Request, RequestId, Response, RpcError, Snapshot,
    Value,
};

/// Decodes per codec.
const RUNS: usize = 200_000;

/// xorshift64*: tiny, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

fn samples() -> Vec<Message> {
    let state = Value::Map(vec![
        (Value::Text("kind".into()), Value::Text("video".into())),
        (Value::Text("ssrc".into()), Value::Integer(1234.into())),
        (Value::Text("key".into()), Value::Bytes(vec![1, 2, 3])),
        (Value::Text("ratio".into()), Value::Float(0.5)),
        (Value::Text("paused".into()), Value::Bool(false)),
        (
            Value::Text("codecs".into()),
            Value::Array(vec![Value::Map(vec![
                (Value::Text("payloadType".into()), Value::Integer(101.into())),
                (Value::Text("rtcpFeedback".into()), Value::Array(vec![Value::Text("nack".into())])),
            ])]),
        ),
        (Value::Text("big".into()), Value::Integer((-1i64 << 40).into())),
        (Value::Text("tagged".into()), Value::Tag(1, Box::new(Value::Integer(0.into())))),
    ]);
    vec![
        Message::Request(Request {
            id: RequestId::Number(7),
            method: "router.createPipeTransport".into(),
            target: Some("router-1".into()),
            params: state.clone(),
        }),
        Message::Request(Request {
            id: RequestId::Text("abc".into()),
            method: "status".into(),
            target: None,
            params: Value::Null,
        }),
        Message::Response(Response::ok(RequestId::Number(7), state.clone())),
        Message::Response(Response::err(
            Some(RequestId::Number(9)),
            RpcError::new(ErrorCode::MethodNotFound, "no such method").with_data(Value::Text("x".into())),
        )),
        Message::Response(Response::err(None, RpcError::new(ErrorCode::ParseError, "garbage"))),
        Message::Notification(Notification { method: "log".into(), params: Value::Array(vec![Value::Null; 3]) }),
        Message::Event(Event {
            object: "t-3".into(),
            object_type: "transport".into(),
            name: EventKind::Changed,
            data: state.clone(),
        }),
        Message::Event(Event {
            object: "t-4".into(),
            object_type: "transport".into(),
            name: EventKind::Closed,
            data: Value::Null,
        }),
        Message::Snapshot(Snapshot {
            objects: vec![
                ObjectState { id: "r-1".into(), object_type: "router".into(), state: state.clone() },
                ObjectState { id: "t-3".into(), object_type: "transport".into(), state },
            ],
        }),
    ]
}

/// One mutation of `input`, with `others` to splice from.
fn mutate(rng: &mut Rng, input: &[u8], others: &[Vec<u8>], structural: &[u8]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(8) {
            // Flip bits.
            0 => {
                if let Some(byte) = bytes.get_mut(at) {
                    *byte ^= 1 << rng.below(8);
                }
            }
            // Random byte.
            1 => {
                if let Some(byte) = bytes.get_mut(at) {
                    *byte = rng.next() as u8;
                }
            }
            // Truncate.
            2 => bytes.truncate(at),
            // Splice: our prefix, another message's suffix.
            3 => {
                let other = &others[rng.below(others.len())];
                let from = rng.below(other.len() + 1);
                bytes.truncate(at);
                bytes.extend_from_slice(&other[from..]);
            }
            // Inflate a length: a header of any major type with a large argument.
            4 => {
                let header: Vec<u8> = match rng.below(3) {
                    0 => vec![(rng.below(8) as u8) << 5 | 26, 0xff, 0xff, 0xff, rng.next() as u8],
                    1 => {
                        let mut h = vec![(rng.below(8) as u8) << 5 | 27];
                        h.extend((rng.next() >> rng.below(64)).to_be_bytes());
                        h
                    }
                    _ => vec![(rng.below(8) as u8) << 5 | 25, rng.next() as u8, rng.next() as u8],
                };
                let end = (at + rng.below(3)).min(bytes.len());
                bytes.splice(at..end, header);
            }
            // A nesting or item bomb: one structural byte repeated.
            5 => {
                let byte = structural[rng.below(structural.len())];
                let count = 1 + rng.below(200);
                bytes.splice(at..at, std::iter::repeat_n(byte, count));
            }
            // Insert a structural byte.
            6 => bytes.insert(at, structural[rng.below(structural.len())]),
            // Delete a byte.
            _ => {
                if at < bytes.len() {
                    bytes.remove(at);
                }
            }
        }
    }
    bytes
}

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    (0..rng.below(64)).map(|_| rng.next() as u8).collect()
}

/// Runs `RUNS` decodes and prints how many were refused, by error kind.
fn fuzz(
    name: &str,
    seeds: &[Vec<u8>],
    structural: &[u8],
    mut decode_and_check: impl FnMut(&[u8]) -> Result<(), CodecError>,
) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut decoded, mut parse, mut invalid, mut limits) = (0, 0, 0, 0);
    let start = Instant::now();
    for run in 0..RUNS {
        let input = if run % 10 == 9 {
            random_bytes(&mut rng)
        } else {
            let seed = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, seed, seeds, structural)
        };
        match decode_and_check(&input) {
            Ok(()) => decoded += 1,
            Err(CodecError::Parse(_)) => parse += 1,
            Err(CodecError::Invalid { .. }) => invalid += 1,
            Err(_) => limits += 1,
        }
    }
    let elapsed = start.elapsed();
    println!(
        "{name}: {RUNS} inputs in {elapsed:.2?}: {decoded} decoded, {} refused ({parse} parse errors, \
         {invalid} invalid requests, {limits} over a limit)",
        parse + invalid + limits
    );
    assert!(elapsed < Duration::from_secs(120), "fuzzing took {elapsed:?}");
    assert!(decoded > 0 && parse > 0 && invalid > 0 && limits > 0, "every outcome is exercised");
}

#[test]
fn cbor_decoder_survives_mutated_and_random_input() {
    let seeds: Vec<Vec<u8>> = samples().iter().map(|m| cbor::encode(m).expect("encode")).collect();
    // Container and break headers, definite and indefinite.
    let structural = [0x81, 0x82, 0x9f, 0xa1, 0xbf, 0xc6, 0xff, 0x5f, 0x40, 0x80, 0xf6];
    fuzz("cbor", &seeds, &structural, |input| {
        cbor::decode(input).map(|message| {
            let bytes = cbor::encode(&message).expect("a decoded message encodes");
            let again = cbor::decode(&bytes).expect("and decodes");
            assert_eq!(cbor::encode(&again).expect("encode"), bytes, "stable");
        })
    });
}

#[test]
fn json_decoder_survives_mutated_and_random_input() {
    let seeds: Vec<Vec<u8>> = samples().iter().map(|m| json::encode(m).expect("encode").into_bytes()).collect();
    let structural = *b"[]{},:\"\\0-e.tn ";
    fuzz("json", &seeds, &structural, |input| {
        // Invalid UTF-8 becomes U+FFFD, so every input reaches the decoder.
        json::decode(&String::from_utf8_lossy(input)).map(|message| {
            // Not byte-stable: serde_json's default float parsing may move the last digit.
            let text = json::encode(&message).expect("a decoded message encodes");
            json::decode(&text).expect("and decodes");
        })
    });
}
