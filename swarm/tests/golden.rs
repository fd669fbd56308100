//! The golden byte vectors of `swarm/PROTOCOL.md`: the code must produce exactly
//! these bytes, so a change to a wire format cannot go unnoticed (and another
//! implementation can test itself against the same vectors).

use futures::executor::block_on;
use futures::io::Cursor;
use libp2p::request_response::Codec;
use mafalda_rope::{Request, RequestId, Value};
use mafalda_swarm::{Inbound, Keypair, LOAD_REPORT_VERSION, LoadReport, PeerId, ROPE_PROTOCOL, RopeCodec, WorkerLoad};

/// The load report of PROTOCOL.md ("Golden vectors").
const LOAD_REPORT_HEX: &str = concat!(
    "a76776657273696f6e01646e6f64655826002408011220ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c",
    "67776f726b65727381a56b6370755f70657263656e74f94a4067726f7574657273016a7472616e73706f727473026970726f647563657273",
    "0369636f6e73756d65727304657069706573056863617061636974791901f47073747265616d735f70726f7669646564066c74696d657374",
    "616d705f6d731b0000018bcfe56800",
);
/// The ROPE request frame of PROTOCOL.md ("Golden vectors").
const ROPE_REQUEST_HEX: &str =
    "a4676a736f6e72706363322e3062696407666d6574686f646f73747265616d2e646573637269626566706172616d736363616d";

/// The document the vectors come from.
const PROTOCOL_MD: &str = include_str!("../PROTOCOL.md");

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The node of the vectors: the ed25519 key whose secret is 32 bytes of 0x07.
fn golden_node() -> PeerId {
    Keypair::ed25519_from_bytes([7u8; 32]).expect("ed25519 secret").public().to_peer_id()
}

fn golden_report() -> LoadReport {
    let mut report = LoadReport::new(golden_node());
    report.workers = vec![WorkerLoad { cpu_percent: 12.5, routers: 1, transports: 2, producers: 3, consumers: 4 }];
    report.pipes = 5;
    report.capacity = 500;
    report.streams_provided = 6;
    report.timestamp_ms = 1_700_000_000_000;
    report
}

#[test]
fn load_report_encoding_matches_the_golden_vector() {
    let report = golden_report();
    assert_eq!(report.version, LOAD_REPORT_VERSION);
    assert_eq!(report.node.to_string(), "12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7");
    let bytes = report.encode().expect("encode");
    assert_eq!(hex(&bytes), LOAD_REPORT_HEX, "LoadReport encoding changed: update PROTOCOL.md and the version");
    assert_eq!(LoadReport::decode(&bytes), Ok(report), "and it decodes back");
}

#[test]
fn rope_request_frame_matches_the_golden_vector() {
    let request = Request {
        id: RequestId::Number(7),
        method: "stream.describe".into(),
        target: None,
        params: Value::Text("cam".into()),
    };
    let mut codec = RopeCodec::new(1024 * 1024);
    let mut wire = Cursor::new(Vec::new());
    block_on(codec.write_request(&ROPE_PROTOCOL, &mut wire, Inbound::Request(request.clone()))).expect("write");
    let bytes = wire.into_inner();
    assert_eq!(hex(&bytes), ROPE_REQUEST_HEX, "ROPE request framing changed: update PROTOCOL.md");
    let read = block_on(codec.read_request(&ROPE_PROTOCOL, &mut Cursor::new(bytes))).expect("read");
    assert_eq!(read, Inbound::Request(request), "and it reads back");
}

#[test]
fn protocol_md_holds_the_same_vectors() {
    let joined: String = PROTOCOL_MD.lines().map(str::trim).collect();
    for (name, vector) in [("LoadReport", LOAD_REPORT_HEX), ("ROPE request", ROPE_REQUEST_HEX)] {
        assert!(joined.contains(vector), "PROTOCOL.md does not show the {name} vector of this test");
    }
}
