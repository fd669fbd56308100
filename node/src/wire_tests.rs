//! The node-to-node messages on the wire: golden bytes another implementation
//! can check itself against (see `node/PROTOCOL.md`), and a fuzz run of every
//! message type through the decoder and the checks a node applies to it.

use mafalda_media::mediasoup::prelude::MediaKind;
use mafalda_media::pipe::{PipeEndpoint, PipedTrack};
use mafalda_swarm::Keypair;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codecs::TrackSpec;
use crate::record::{Provenance, RecordTrack};
use crate::streams::{PipeOffer, PipeRequest, StreamDescription, StreamParams, TrackInfo, validate_stream_id};

fn cbor<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = Vec::new();
    ciborium::into_writer(value, &mut bytes).expect("encode");
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn origin_key() -> Keypair {
    Keypair::ed25519_from_bytes([7u8; 32]).expect("key")
}

fn relay_key() -> Keypair {
    Keypair::ed25519_from_bytes([8u8; 32]).expect("key")
}

fn golden_provenance() -> Provenance {
    let track = RecordTrack {
        kind: MediaKind::Audio,
        mime_type: "audio/opus".into(),
        clock_rate: 48_000,
        channels: Some(2),
        encodings: 1,
    };
    let origin = origin_key();
    let at_origin = Provenance::originate(&origin, "cam", 1, vec![track]);
    let verified = at_origin.verify("cam", origin.public().to_peer_id()).expect("verifies");
    at_origin.hand_off(&origin, &verified, relay_key().public().to_peer_id())
}

fn opus_parameters() -> mafalda_media::mediasoup::prelude::RtpParameters {
    let spec: TrackSpec = serde_json::from_value(serde_json::json!(
        {"kind": "audio", "codec": "opus", "payloadType": 100, "ssrc": 1234}
    ))
    .expect("spec");
    spec.rtp_parameters().expect("parameters")
}

/// `(name, hex)` of each golden message, built from fixed inputs.
fn golden() -> Vec<(&'static str, String)> {
    let endpoint = PipeEndpoint { ip: "127.0.0.1".parse().expect("ip"), port: 40000, srtp: None };
    vec![
        ("StreamParams", hex(&cbor(&StreamParams { stream: "cam".into() }))),
        (
            "PipeRequest",
            hex(&cbor(&PipeRequest {
                stream: "cam".into(),
                endpoint,
                mode: Default::default(),
                fetch_from: None,
                paired_ends: vec![],
            })),
        ),
        ("Provenance", hex(&cbor(&golden_provenance()))),
    ]
}

const GOLDEN_STREAM_PARAMS: &str = "a16673747265616d6363616d";

#[test]
fn golden_bytes_are_stable() {
    let golden = golden();
    for (name, bytes) in &golden {
        println!("{name}: {bytes}");
    }
    assert_eq!(golden[0].1, GOLDEN_STREAM_PARAMS);
    assert_eq!(golden[1].1, include_str!("../tests/golden/pipe_request.hex").trim());
    assert_eq!(golden[2].1, include_str!("../tests/golden/provenance.hex").trim());
    // The golden provenance verifies at the relay it hands off to.
    let bytes: Vec<u8> = (0..golden[2].1.len() / 2)
        .map(|i| u8::from_str_radix(&golden[2].1[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    let decoded: Provenance = ciborium::from_reader(bytes.as_slice()).expect("decode");
    let verified = decoded.verify("cam", relay_key().public().to_peer_id()).expect("verifies");
    assert_eq!(verified.origin, origin_key().public().to_peer_id());
}

/// A tiny deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }
}

/// Mutates `seed` (bit flips, truncation, duplicated spans, inflated bytes).
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..=rng.below(4) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.below(bytes.len());
        match rng.below(5) {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => bytes.truncate(at),
            2 => {
                let end = (at + rng.below(16)).min(bytes.len());
                let span = bytes[at..end].to_vec();
                bytes.splice(at..at, span);
            }
            3 => bytes[at] = 0xff,
            _ => bytes[at] = u8::try_from(rng.below(256)).unwrap_or(0),
        }
    }
    bytes
}

/// A ROPE request frame carrying `params`, as nodes send it.
fn frame<T: Serialize>(params: &T) -> Vec<u8> {
    let request = mafalda_rope::Request {
        id: mafalda_rope::RequestId::Number(1),
        method: "stream.pipe".into(),
        target: None,
        params: mafalda_rope::Value::serialized(params).expect("value"),
    };
    mafalda_rope::codec::cbor::encode(&mafalda_rope::Message::Request(request)).expect("encode")
}

/// Decodes a frame the way a node does (bounded ROPE decoding, then the
/// params as `T`); `Some` if both succeed.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    match mafalda_rope::codec::cbor::decode(bytes).ok()? {
        mafalda_rope::Message::Request(request) => request.params.deserialized().ok(),
        _ => None,
    }
}

#[test]
fn every_node_message_survives_fuzzing() {
    let me = relay_key().public().to_peer_id();
    let provenance = golden_provenance();
    let endpoint = PipeEndpoint { ip: "127.0.0.1".parse().expect("ip"), port: 40000, srtp: None };
    let track = PipedTrack { kind: MediaKind::Audio, rtp_parameters: opus_parameters(), paused: false };
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("params", frame(&StreamParams { stream: "cam".into() })),
        (
            "request",
            frame(&PipeRequest {
                stream: "cam".into(),
                endpoint: endpoint.clone(),
                mode: Default::default(),
                fetch_from: None,
                paired_ends: vec![],
            }),
        ),
        (
            "description",
            frame(&StreamDescription {
                stream: "cam".into(),
                tracks: vec![TrackInfo { kind: MediaKind::Audio, rtp_parameters: opus_parameters() }],
                provenance: provenance.clone(),
                load: Some(0.25),
                offer: None,
            }),
        ),
        ("offer", frame(&PipeOffer { endpoint, tracks: vec![track], provenance })),
    ];
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let (mut decoded, mut accepted, mut runs) = (0usize, 0usize, 0usize);
    for round in 0..50_000 {
        for (name, seed) in &seeds {
            runs += 1;
            let bytes = if round % 10 == 9 {
                (0..rng.below(200)).map(|_| u8::try_from(rng.below(256)).unwrap_or(0)).collect()
            } else {
                mutate(&mut rng, seed)
            };
            let ok = match *name {
                "params" => decode::<StreamParams>(&bytes).map(|p| validate_stream_id(&p.stream).is_ok()),
                "request" => decode::<PipeRequest>(&bytes).map(|r| validate_stream_id(&r.stream).is_ok()),
                "description" => decode::<StreamDescription>(&bytes)
                    .map(|d| crate::describe::check_description("cam", me, &d, None).is_ok()),
                _ => decode::<PipeOffer>(&bytes).map(|o| crate::pipes::check_offer("cam", me, None, &o, None).is_ok()),
            };
            if let Some(ok) = ok {
                decoded += 1;
                accepted += usize::from(ok);
            }
        }
    }
    println!("{runs} node messages fuzzed: {decoded} decoded, {accepted} passed every check");
    assert!(decoded > 0 && accepted < decoded, "the fuzz run exercised the checks");
    // The unmutated seeds pass, so the checks are not refusing everything.
    for (name, seed) in &seeds {
        let ok = match *name {
            "description" => decode::<StreamDescription>(seed).map(|d| {
                crate::describe::check_description("cam", me, &d, None).map(|_| ()).map_err(|e| e.to_string())
            }),
            "offer" => decode::<PipeOffer>(seed)
                .map(|o| crate::pipes::check_offer("cam", me, None, &o, None).map(|_| ()).map_err(|e| e.to_string())),
            _ => continue,
        };
        assert!(matches!(ok, Some(Ok(_))), "{name}: {ok:?}");
    }
}
