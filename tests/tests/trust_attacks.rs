//! Attacks on a node by real rogues: a bare swarm member (built from the swarm
//! crate, speaking ROPE over libp2p like a node would, but with its own
//! intentions), a raw UDP sender, against real nodes with real mediasoup on
//! 127.0.0.1. Each case checks what reaches real sockets.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use mafalda_media::mediasoup::prelude::MediaKind;
use mafalda_node::record::{HANDOFF_DOMAIN, Handoff, Provenance, RecordTrack, Signed};
use mafalda_node::streams::StreamDescription;
use mafalda_node::{Codec, Node, NodeError, TrackSpec};
use mafalda_rope::{RpcError, Value};
use mafalda_swarm::{CallError, InboundCall, Keypair, PeerId, StartedSwarm, SwarmHandle, stream_key};
use mafalda_tests::media::{LOOPBACK, OPUS_PAYLOAD_TYPE};
use mafalda_tests::node::{node_with, transports_besides_spares as transports};
use mafalda_tests::rtp::{receive_rtp, send_paced, test_stream};
use mafalda_tests::swarm::{connected_within, eventually, loopback_config};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

const SSRC: u32 = 0x0bad_cafe;
/// A victim on another loopback address than the rogue's connection.
const VICTIM_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// An SRTP key of the right length (AEAD_AES_256_GCM: 32 + 12 bytes), as a
/// rogue would make one up.
const SRTP_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKis=";

fn opus_track() -> TrackSpec {
    TrackSpec { kind: MediaKind::Audio, codec: Codec::Opus, payload_type: OPUS_PAYLOAD_TYPE, ssrc: SSRC }
}

async fn node(bootstrap: Option<&Node>) -> Node {
    node_with(bootstrap, |_| {}).await
}

/// A swarm member that is not a node: it calls whatever it likes and answers
/// calls its own way.
struct Rogue {
    keypair: Keypair,
    handle: SwarmHandle,
    calls: mpsc::Receiver<InboundCall>,
}

impl Rogue {
    async fn join(seed: &Node) -> Self {
        let keypair = Keypair::generate_ed25519();
        let mut config = loopback_config();
        config.keypair = keypair.clone();
        let config = config.with_bootstrap(seed.listen_addrs().await.expect("addrs"));
        let StartedSwarm { handle, calls, .. } = mafalda_swarm::start(config).await.expect("rogue starts");
        let rogue = Self { keypair, handle, calls };
        assert!(connected_within(&rogue.handle, seed.peer_id(), Duration::from_secs(5)).await, "the rogue joins");
        rogue
    }

    fn peer_id(&self) -> PeerId {
        self.handle.peer_id()
    }

    async fn call(&self, peer: PeerId, method: &str, params: serde_json::Value) -> Result<Value, CallError> {
        self.handle.call(peer, method, None, Value::serialized(&params).expect("value")).await
    }

    /// Asks `node` to pipe `stream` to `endpoint`.
    async fn pipe(&self, node: &Node, stream: &str, endpoint: SocketAddr) -> Result<Value, CallError> {
        self.pipe_quoting(node, stream, endpoint, &[]).await
    }

    /// Asks `node` to pipe `stream` to `endpoint`, or on a pair kept with it
    /// whose end here is one of `paired` (`pairedEnds`).
    async fn pipe_quoting(
        &self,
        node: &Node,
        stream: &str,
        endpoint: SocketAddr,
        paired: &[SocketAddr],
    ) -> Result<Value, CallError> {
        let end = |at: &SocketAddr| {
            serde_json::json!({"ip": at.ip(), "port": at.port(),
                               "srtp": {"cryptoSuite": "AEAD_AES_256_GCM", "keyBase64": SRTP_KEY}})
        };
        let mut params = serde_json::json!({"stream": stream, "endpoint": end(&endpoint)});
        if !paired.is_empty() {
            params["pairedEnds"] = paired.iter().map(end).collect();
        }
        self.call(node.peer_id(), "stream.pipe", params).await
    }
}

impl Rogue {
    /// Asks `node` to describe `stream` and, if it is the origin, to pipe it
    /// to `endpoint` at once.
    async fn describe_piping(
        &self,
        node: &Node,
        stream: &str,
        endpoint: SocketAddr,
    ) -> Result<mafalda_node::streams::StreamDescription, CallError> {
        let params = serde_json::json!({
            "stream": stream,
            "pipeIfOrigin": {"ip": endpoint.ip(), "port": endpoint.port(),
                             "srtp": {"cryptoSuite": "AEAD_AES_256_GCM", "keyBase64": SRTP_KEY}},
        });
        let described = self.call(node.peer_id(), "stream.describe", params).await?;
        Ok(described.deserialized().expect("a description"))
    }
}

fn remote_code(result: &Result<Value, CallError>) -> Option<i64> {
    match result {
        Err(CallError::Remote(RpcError { code, .. })) => Some(*code),
        _ => None,
    }
}

/// A `stream.describe` may ask the origin to pipe at once (`pipeIfOrigin`):
/// the origin does so with every check of `stream.pipe` (only to the asking
/// node's own address, one pipe per stream and peer), a relay never does,
/// and the pipe closes when the asker leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_describe_asking_for_a_pipe_gets_one_only_from_the_origin_and_only_to_the_asker() {
    let a = node(None).await;
    let ingest = a.publish_rtp("show", vec![opus_track()]).await.expect("publish");
    let _sending = keep_sending(ingest);
    let b = node(Some(&a)).await;
    let sink = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    b.consume_rtp("show", sink.local_addr().expect("addr")).await.expect("b relays a's stream");
    let rogue = Rogue::join(&a).await;
    let (a_baseline, b_baseline) = (transports(&a), transports(&b));

    // To a victim that is not the rogue's address: described, no pipe, no packet.
    let victim = UdpSocket::bind((VICTIM_IP, 0)).await.expect("bind victim");
    let described = rogue.describe_piping(&a, "show", victim.local_addr().expect("addr")).await.expect("described");
    assert!(described.offer.is_none(), "a piped to a third party");
    assert_eq!(count_datagrams(&victim, Duration::from_secs(1)).await, 0, "packets reached the victim");
    assert_eq!(transports(&a), a_baseline, "a refused pipe leaves nothing behind");

    // To its own address, 20 times: one pipe stands, and it carries media.
    let own = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind own");
    let own_addr = own.local_addr().expect("addr");
    for _ in 0..20 {
        let described = rogue.describe_piping(&a, "show", own_addr).await.expect("described");
        let offer = described.offer.expect("the origin pipes to the asker at once");
        assert_eq!(offer.provenance.handoffs.len(), 1, "the offer hands the stream to the asker");
    }
    // Each answer took the spare pipe transport and had another opened
    // (`transports` leaves out only the ready ones): one stands, ready.
    let one_spare = eventually(Duration::from_secs(2), || async { a.spare_pipes() == 1 }).await;
    assert!(one_spare, "one spare pipe transport, not {}", a.spare_pipes());
    assert_eq!(transports(&a), a_baseline + 1, "20 asks for one stream leave one pipe");
    assert!(a.streams()[0].downstream.contains(&rogue.peer_id().to_string()));
    assert!(count_datagrams(&own, Duration::from_millis(500)).await > 10, "the asker's pipe carries media");

    // A relay describes, and pipes nothing.
    let described = rogue.describe_piping(&b, "show", own_addr).await.expect("described by the relay");
    assert!(described.offer.is_none(), "a relay piped with its description");
    assert_eq!(transports(&b), b_baseline, "the relay made nothing");

    // The rogue leaves: its pipe closes.
    rogue.handle.shutdown().await.expect("rogue leaves");
    let closed = eventually(Duration::from_secs(2), || async { transports(&a) == a_baseline }).await;
    assert!(closed, "the pipe made with a description closed when its asker left");
    for node in [b, a] {
        node.shutdown().await;
    }
}

/// Counts the datagrams that reach `socket` within `window`.
async fn count_datagrams(socket: &UdpSocket, window: Duration) -> usize {
    let mut buffer = [0u8; 2048];
    let mut count = 0;
    let end = tokio::time::Instant::now() + window;
    while let Ok(Ok(_)) = tokio::time::timeout_at(end, socket.recv_from(&mut buffer)).await {
        count += 1;
    }
    count
}

/// Sends RTP into `ingest` every 5 ms until `stop` is dropped.
fn keep_sending(ingest: SocketAddr) -> tokio::sync::oneshot::Sender<()> {
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let sender = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind sender");
        for packet in test_stream(SSRC, OPUS_PAYLOAD_TYPE, 100_000) {
            if stopped.try_recv() != Err(tokio::sync::oneshot::error::TryRecvError::Empty) {
                return;
            }
            let _ = sender.send_to(&packet.encode(), ingest).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    stop
}

/// Whether `node`'s walk of the DHT for `stream` names every one of
/// `providers` within 10 s (records take a moment to reach the peers that
/// store them).
async fn walk_names(node: &Node, stream: &str, providers: &[PeerId]) -> bool {
    eventually(Duration::from_secs(10), || async {
        let named = node.swarm().find_providers(stream_key(stream), Duration::from_secs(2)).await.unwrap_or_default();
        providers.iter().all(|peer| named.contains(peer))
    })
    .await
}

/// Transports (besides the spare pipe transports the node keeps ready: one
/// per router, opened in the background a moment after a relay starts, so a
/// snapshot may or may not hold it), producers and consumers at `node`, over
/// all its workers.
fn objects(node: &Node) -> (u32, u32, u32) {
    let (producers, consumers) = node
        .media()
        .status()
        .iter()
        .fold((0, 0), |(p, c), worker| (p + worker.objects.producers, c + worker.objects.consumers));
    (transports(node), producers, consumers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipes_go_only_to_the_asker_are_capped_and_close_when_it_leaves() {
    // The cap as an operator sets it (--max-pipes-per-peer); the default is larger.
    const MAX_PIPES_PER_PEER: usize = 12;
    let a = node_with(None, |config| config.max_pipes_per_peer = MAX_PIPES_PER_PEER).await;
    let ingest = a.publish_rtp("show", vec![opus_track()]).await.expect("publish");
    let _sending = keep_sending(ingest);
    let baseline = transports(&a);
    let rogue = Rogue::join(&a).await;

    // A pipe to a victim socket that is not the rogue's own address: refused,
    // and not one packet reaches the victim.
    let victim = UdpSocket::bind((VICTIM_IP, 0)).await.expect("bind victim");
    let refused = rogue.pipe(&a, "show", victim.local_addr().expect("addr")).await;
    assert_eq!(remote_code(&refused), Some(mafalda_node::error_codes::FORBIDDEN), "{refused:?}");
    let at_victim = count_datagrams(&victim, Duration::from_secs(2)).await;
    assert_eq!(at_victim, 0, "packets reached the victim");
    assert_eq!(transports(&a), baseline, "a refused pipe leaves nothing behind");

    // 300 requests for one stream to the rogue's own socket: one pipe stands.
    let own = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind own");
    let own_addr = own.local_addr().expect("addr");
    for _ in 0..300 {
        rogue.pipe(&a, "show", own_addr).await.expect("a pipe to the asker's own address");
    }
    // Each answer took the spare pipe transport and had another opened: one stands, ready.
    let one_spare = eventually(Duration::from_secs(2), || async { a.spare_pipes() == 1 }).await;
    assert!(one_spare, "one spare pipe transport, not {}", a.spare_pipes());
    assert_eq!(transports(&a), baseline + 1, "300 requests for one stream leave one pipe");
    assert_eq!(a.streams()[0].downstream, vec![rogue.peer_id().to_string()]);
    assert!(count_datagrams(&own, Duration::from_millis(500)).await > 10, "the asker's own pipe carries media");

    // Pipes over many streams are capped per peer.
    for i in 0..MAX_PIPES_PER_PEER + 5 {
        a.publish_rtp(&format!("extra-{i}"), vec![opus_track()]).await.expect("publish extra");
    }
    let mut granted = 1; // "show"
    let mut forbidden = 0;
    for i in 0..MAX_PIPES_PER_PEER + 5 {
        match rogue.pipe(&a, &format!("extra-{i}"), own_addr).await {
            Ok(_) => granted += 1,
            Err(CallError::Remote(error)) if error.code == mafalda_node::error_codes::FORBIDDEN => forbidden += 1,
            Err(other) => panic!("unexpected answer: {other}"),
        }
    }
    assert_eq!((granted, forbidden), (MAX_PIPES_PER_PEER, 6), "pipes per peer are capped");

    // An honest consumer is still served.
    let b = node(Some(&a)).await;
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let egress = b.consume_rtp("show", receiver.local_addr().expect("addr")).await.expect("honest consume");
    let got = receive_rtp(&receiver, egress.tracks[0].ssrc, 50, Duration::from_secs(3)).await;
    assert!(got.len() >= 50, "the honest consumer got {} packets", got.len());

    // It quoted no pair's end: each pipe has a transport of its own, kept
    // as a pair (the honest consumer's is one more).
    assert_eq!(a.pipe_pairs().serving, MAX_PIPES_PER_PEER + 1);

    // The rogue leaves: its pipes close within 2 s and nothing reaches its socket after.
    assert!(eventually(Duration::from_secs(2), || async { a.spare_pipes() == 1 }).await, "the spare is ready again");
    let before = transports(&a);
    rogue.handle.shutdown().await.expect("rogue leaves");
    let left = Instant::now();
    let closed =
        eventually(Duration::from_secs(2), || async { transports(&a) == before - MAX_PIPES_PER_PEER as u32 }).await;
    assert!(closed, "the rogue's pipes closed within 2 s (transports {} of {before})", transports(&a));
    assert_eq!(a.pipe_pairs().serving, 1, "the rogue's pipes are forgotten as pairs; the honest consumer's stays");
    let closed_after = left.elapsed();
    while count_datagrams(&own, Duration::from_millis(100)).await > 0 {} // in flight
    assert_eq!(count_datagrams(&own, Duration::from_secs(1)).await, 0, "packets still sent to a peer that left");
    assert!(a.streams().iter().all(|s| !s.downstream.contains(&rogue.peer_id().to_string())));
    println!("pipes closed {closed_after:?} after the rogue left; {at_victim} packets at the victim");
    for node in [b, a] {
        node.shutdown().await;
    }
}

/// What the rogue answers when asked about a stream.
#[derive(Clone)]
enum Forgery {
    /// Its own record, honestly signed: a second origin under the same id.
    OwnRecord,
    /// A record naming the real origin, signed by the rogue.
    ClaimsRealOrigin(PeerId),
    /// The real origin's record replayed as if the rogue were the origin.
    Replay(Provenance),
    /// Its own record with a hand-off claiming `u32::MAX` hops.
    HugeHops,
    /// Its own record and 1000 tracks in the offer.
    ThousandTracks,
    /// Its own record and RTP parameters mediasoup must never see.
    MalformedRtp,
    /// Never answers `stream.describe`.
    Silent,
    /// Its own record, honestly offered, but each `stream.describe` answered
    /// only after `describe_after` and each `stream.pipe` after `pipe_after`;
    /// every method it is called with goes to `heard`.
    OwnRecordAfter { describe_after: Duration, pipe_after: Duration, heard: Heard },
    /// Its own record, honestly offered, each `stream.pipe` from another
    /// port (as a node restarted between two pipes would); every method it
    /// is called with goes to `heard`.
    NewEndEveryPipe { heard: Heard },
}

fn record_track() -> RecordTrack {
    RecordTrack {
        kind: MediaKind::Audio,
        mime_type: "audio/opus".into(),
        clock_rate: 48_000,
        channels: Some(2),
        encodings: 1,
    }
}

fn opus_parameters(ssrc: u32) -> serde_json::Value {
    serde_json::json!({
        "codecs": [{"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000, "channels": 2,
                    "parameters": {}, "rtcpFeedback": []}],
        "headerExtensions": [], "encodings": [{"ssrc": ssrc}], "rtcp": {"reducedSize": true}
    })
}

/// The methods a rogue was called with, in order.
type Heard = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Answers every call the rogue gets with `forgery`, until dropped.
fn answer_with(mut rogue: Rogue, forgery: Forgery) -> (PeerId, SwarmHandle, tokio::task::JoinHandle<()>) {
    let (peer, handle) = (rogue.peer_id(), rogue.handle.clone());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        let mut pipes_answered: u16 = 0;
        while let Some(call) = rogue.calls.recv().await {
            let stream = call
                .request
                .params
                .deserialized::<serde_json::Value>()
                .ok()
                .and_then(|p| p["stream"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let asker = call.peer;
            let mut answer_after = None;
            if let Forgery::NewEndEveryPipe { heard } = &forgery {
                heard.lock().expect("lock").push(call.request.method.clone());
            }
            if let Forgery::OwnRecordAfter { describe_after, pipe_after, heard } = &forgery {
                heard.lock().expect("lock").push(call.request.method.clone());
                answer_after = match call.request.method.as_str() {
                    "stream.describe" => Some(*describe_after),
                    "stream.pipe" => Some(*pipe_after),
                    _ => None,
                };
            }
            let own = Provenance::originate(&rogue.keypair, &stream, 1, vec![record_track()]);
            let provenance = match &forgery {
                Forgery::Silent if call.request.method == "stream.describe" => {
                    held.push(call); // never answered
                    continue;
                }
                Forgery::ClaimsRealOrigin(origin) => {
                    let record = serde_json::json!({"stream": stream, "origin": origin.to_string(), "version": 9, "tracks": [record_track()]});
                    let record = Signed::sign(&rogue.keypair, mafalda_node::record::RECORD_DOMAIN, &record);
                    Provenance { record, handoffs: vec![] }
                }
                Forgery::Replay(real) => real.clone(),
                Forgery::HugeHops => {
                    let handoff = Handoff {
                        stream: stream.clone(),
                        version: 1,
                        from: peer.to_string(),
                        to: asker.to_string(),
                        hops: u32::MAX,
                    };
                    Provenance {
                        record: own.record.clone(),
                        handoffs: vec![Signed::sign(&rogue.keypair, HANDOFF_DOMAIN, &handoff)],
                    }
                }
                _ => own.clone(),
            };
            // For a pipe, the rogue's hand-off to the asker (honest in form).
            let offered = if matches!(
                forgery,
                Forgery::OwnRecord
                    | Forgery::ThousandTracks
                    | Forgery::MalformedRtp
                    | Forgery::OwnRecordAfter { .. }
                    | Forgery::NewEndEveryPipe { .. }
            ) {
                let verified = provenance.verify(&stream, peer).expect("own record verifies");
                provenance.hand_off(&rogue.keypair, &verified, asker)
            } else {
                provenance.clone()
            };
            let tracks = match forgery {
                Forgery::ThousandTracks => (0..1000).map(|i| opus_parameters(1000 + i)).collect::<Vec<_>>(),
                Forgery::MalformedRtp => vec![serde_json::json!({
                    "codecs": [{"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000, "channels": 2, "parameters": {}, "rtcpFeedback": []},
                               {"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000, "channels": 2, "parameters": {}, "rtcpFeedback": []}],
                    "headerExtensions": [{"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 0, "encrypt": false}],
                    "encodings": [{}], "rtcp": {"reducedSize": true}
                })],
                _ => vec![opus_parameters(4242)],
            };
            let answer = match call.request.method.as_str() {
                "stream.describe" => serde_json::json!({
                    "stream": stream,
                    "tracks": tracks.iter().map(|t| serde_json::json!({"kind": "audio", "rtpParameters": t})).collect::<Vec<_>>(),
                    "hops": u32::MAX,
                    "path": vec!["x"; 1000],
                }),
                "stream.pipe" => serde_json::json!({
                    "endpoint": {"ip": "127.0.0.1", "port": if matches!(forgery, Forgery::NewEndEveryPipe { .. }) { 10 + pipes_answered } else { 9 },
                                 "srtp": {"cryptoSuite": "AEAD_AES_256_GCM", "keyBase64": SRTP_KEY}},
                    "tracks": tracks.iter().map(|t| serde_json::json!({"kind": "audio", "rtpParameters": t, "paused": false, "producerId": "00000000-0000-4000-8000-000000000000"})).collect::<Vec<_>>(),
                    "hops": u32::MAX,
                }),
                _ => serde_json::Value::Null,
            };
            if call.request.method == "stream.pipe" {
                pipes_answered += 1;
            }
            // Signed items travel as CBOR byte strings: put them in as such.
            let mut answer = Value::serialized(&answer).expect("value");
            if let Value::Map(entries) = &mut answer {
                let provenance = if call.request.method == "stream.pipe" { &offered } else { &provenance };
                entries.push((Value::Text("provenance".into()), Value::serialized(provenance).expect("value")));
            }
            match answer_after {
                // Answered from a task of its own: calls that come meanwhile are heard.
                Some(delay) => {
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = call.respond(Ok(answer)).await;
                    });
                }
                None => {
                    let _ = call.respond(Ok(answer)).await;
                }
            }
        }
    });
    (peer, handle, task)
}

/// Offers whose form is sound but whose provenance is not: the asker makes
/// their producers while it checks the signatures (the first packet waits
/// for neither alone), and refused, they close at once. The consume fails,
/// naming the refusal, and nothing of the rogue's stays in mediasoup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_refused_for_its_provenance_leaves_nothing_in_mediasoup() {
    let a = node(None).await;
    let c = node_with(Some(&a), |config| config.find_deadline = Duration::from_secs(2)).await;
    let before = objects(&c);
    let forgeries =
        [("u32::MAX hops", Forgery::HugeHops), ("claims the real origin", Forgery::ClaimsRealOrigin(a.peer_id()))];
    for (name, forgery) in forgeries {
        let (rogue_id, rogue, task) = answer_with(Rogue::join(&a).await, forgery);
        // Only the rogue provides this id: its offer is taken at once, undescribed.
        rogue.provide(stream_key("solo")).await.expect("the rogue provides the id");
        let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
        let consumed = c.consume_rtp("solo", receiver.local_addr().expect("addr")).await;
        match &consumed {
            Err(NodeError::NoProvider { reasons, .. }) => {
                assert!(reasons.contains(&rogue_id.to_string()) && reasons.contains("refused"), "{name}: {reasons}");
            }
            other => panic!("{name}: the rogue's offer is refused: {other:?}"),
        }
        let cleaned = eventually(Duration::from_secs(2), || async { objects(&c) == before }).await;
        assert!(cleaned, "{name}: transports, producers, consumers {:?}, before {before:?}", objects(&c));
        assert!(c.streams().is_empty(), "{name}");
        task.abort();
        rogue.shutdown().await.expect("rogue leaves");
    }
    for node in [c, a] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_providers_never_feed_a_consumer() {
    let a = node(None).await;
    // b only fetches the real provenance and checks it still finds the
    // stream: the default deadline (its first find, 2 s as it joined, once
    // failed on a saturated CI host). c's finds are the ones bounded.
    let b = node(Some(&a)).await;
    assert!(connected_within(b.swarm(), a.peer_id(), Duration::from_secs(5)).await, "b joins through a");
    let ingest = a.publish_rtp("show", vec![opus_track()]).await.expect("publish at a");
    let _sending = keep_sending(ingest);
    let real = {
        let found = b.find_stream("show").await.expect("find");
        assert_eq!(found.origins, vec![a.peer_id().to_string()]);
        // The real origin's provenance, as any member can get it.
        let params = Value::serialized(&serde_json::json!({"stream": "show"})).expect("value");
        let description: StreamDescription = b
            .swarm()
            .call(a.peer_id(), "stream.describe", None, params)
            .await
            .expect("describe")
            .deserialized()
            .expect("decode");
        description.provenance
    };

    let forgeries = [
        ("own record", Forgery::OwnRecord),
        ("claims the real origin", Forgery::ClaimsRealOrigin(a.peer_id())),
        ("replays the real record", Forgery::Replay(real)),
        ("u32::MAX hops", Forgery::HugeHops),
        ("1000 tracks", Forgery::ThousandTracks),
        ("malformed RTP parameters", Forgery::MalformedRtp),
        ("never describes", Forgery::Silent),
    ];
    for (name, forgery) in forgeries {
        let (rogue_id, rogue, task) = answer_with(Rogue::join(&a).await, forgery.clone());
        rogue.provide(stream_key("show")).await.expect("the rogue provides the id");
        // A consumer that hears of the rogue: fresh, so it holds nothing yet.
        let c = node_with(Some(&a), |config| config.find_deadline = Duration::from_secs(2)).await;
        assert!(connected_within(c.swarm(), a.peer_id(), Duration::from_secs(5)).await, "{name}: c joins through a");
        let started = Instant::now();
        let found = c.find_stream("show").await.expect("find");
        assert!(started.elapsed() < Duration::from_secs(3), "{name}: find took {:?}", started.elapsed());
        let rogue_listed = found.providers.iter().any(|p| p.peer == rogue_id.to_string());
        let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
        let consumed = c.consume_rtp("show", receiver.local_addr().expect("addr")).await;
        match forgery {
            Forgery::OwnRecord | Forgery::ThousandTracks | Forgery::MalformedRtp => {
                // Honestly signed by the rogue: a second origin, reported as a conflict.
                assert!(rogue_listed || matches!(forgery, Forgery::ThousandTracks), "{name}: {found:?}");
                if rogue_listed {
                    assert_eq!(found.origins.len(), 2, "{name}: {found:?}");
                    assert!(matches!(consumed, Err(NodeError::OriginConflict { .. })), "{name}: {consumed:?}");
                }
                // Pinned to the rogue, its broken offers are refused before mediasoup.
                if !matches!(forgery, Forgery::OwnRecord) {
                    let pinned = c.consume_rtp(&format!("show@{rogue_id}"), receiver.local_addr().expect("addr")).await;
                    assert!(pinned.is_err(), "{name}: {pinned:?}");
                }
            }
            _ => {
                assert!(!rogue_listed, "{name}: the forged provider is listed: {found:?}");
                assert!(consumed.is_ok(), "{name}: {consumed:?}");
            }
        }
        // Pinned to the real origin, the consumer gets the real origin's media.
        let egress = c
            .consume_rtp(&format!("show@{}", a.peer_id()), receiver.local_addr().expect("addr"))
            .await
            .unwrap_or_else(|e| panic!("{name}: pinned consume failed: {e}"));
        assert_eq!(egress.path.first(), Some(&a.peer_id().to_string()), "{name}");
        assert!(!egress.path.contains(&rogue_id.to_string()), "{name}: piped through the rogue");
        let track = egress.tracks[0].clone();
        let received = receive_rtp(&receiver, track.ssrc, 30, Duration::from_secs(2)).await;
        assert!(received.len() >= 30, "{name}: {} packets of the real stream", received.len());
        assert!(received.iter().all(|p| p.payload.len() > 8 && p.payload != b"intruder"), "{name}");
        // Every node is still healthy.
        for node in [&a, &b, &c] {
            node.find_stream("show").await.unwrap_or_else(|e| panic!("{name}: node unhealthy: {e}"));
        }
        task.abort();
        rogue.shutdown().await.expect("rogue leaves");
        c.shutdown().await;
    }
    for node in [b, a] {
        node.shutdown().await;
    }
}

/// Any member can announce itself as a provider of any stream and then never
/// describe it. A consume that waited for every description it asked for
/// waited the whole find deadline for that one (10 s here); it now pipes
/// once the cheapest provider is known (the origin, described, beats any
/// relay), and the silent one holds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_never_describes_does_not_hold_a_consume() {
    const FIND_DEADLINE: Duration = Duration::from_secs(10);
    let a = node(None).await;
    let ingest = a.publish_rtp("show", vec![opus_track()]).await.expect("publish at a");
    let _sending = keep_sending(ingest);
    let (rogue_id, rogue, task) = answer_with(Rogue::join(&a).await, Forgery::Silent);
    rogue.provide(stream_key("show")).await.expect("the rogue provides the id");
    let c = node_with(Some(&a), |config| config.find_deadline = FIND_DEADLINE).await;
    // The consume below walks the DHT itself: it must hear of both.
    let both = walk_names(&c, "show", &[a.peer_id(), rogue_id]).await;
    assert!(both, "c's walk names the origin and the rogue");
    let took = served_by_the_origin(&c, &a).await;
    assert!(took < FIND_DEADLINE / 2, "the consume waited {took:?} for a provider that never describes");
    task.abort();
    rogue.shutdown().await.expect("rogue leaves");
    for node in [c, a] {
        node.shutdown().await;
    }
}

/// Consumes "show" at `consumer` and checks it is piped straight from
/// `origin` (not through a rogue) and that the real stream's packets come;
/// how long the consume call took.
async fn served_by_the_origin(consumer: &Node, origin: &Node) -> Duration {
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let started = Instant::now();
    let egress =
        consumer.consume_rtp("show", receiver.local_addr().expect("addr")).await.expect("served by the origin");
    let took = started.elapsed();
    let path = vec![origin.peer_id().to_string(), consumer.peer_id().to_string()];
    assert_eq!(egress.path, path, "piped straight from the origin, not through the rogue");
    let received = receive_rtp(&receiver, egress.tracks[0].ssrc, 20, Duration::from_secs(2)).await;
    assert!(received.len() >= 20, "{} packets of the real stream", received.len());
    took
}

/// Streams from one provider ride one kept pipe pair at the asker. A rogue
/// provider that offers a second stream on its pair under the SSRC of the
/// first has that produce refused by mediasoup: the consume fails, naming
/// the rogue, the first stream's producer and pair are untouched, and nothing
/// of the second is left in mediasoup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_stream_offered_on_a_pair_under_the_first_ones_ssrc_is_refused() {
    let a = node(None).await;
    let c = node_with(Some(&a), |config| config.find_deadline = Duration::from_secs(2)).await;
    let before = objects(&c);
    // Every stream.pipe it answers offers SSRC 4242 from 127.0.0.1:9.
    let (rogue_id, rogue, task) = answer_with(Rogue::join(&a).await, Forgery::OwnRecord);
    for stream in ["solo-1", "solo-2"] {
        rogue.provide(stream_key(stream)).await.expect("the rogue provides the id");
    }
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let first = c.consume_rtp("solo-1", receiver.local_addr().expect("addr")).await.expect("its own stream, signed");
    assert_eq!(c.pipe_pairs().asking, 1, "the first pipe is kept as a pair");
    let with_first = objects(&c);

    let second = c.consume_rtp("solo-2", receiver.local_addr().expect("addr")).await;
    match &second {
        Err(NodeError::NoProvider { reasons, .. }) => {
            assert!(reasons.contains(&rogue_id.to_string()) && reasons.contains("ssrc"), "{reasons}");
        }
        other => panic!("a second stream under the first one's SSRC is refused: {other:?}"),
    }
    let unchanged = eventually(Duration::from_secs(2), || async { objects(&c) == with_first }).await;
    assert!(unchanged, "transports, producers, consumers {:?}, with the first stream {with_first:?}", objects(&c));
    assert_eq!(c.streams().len(), 1, "the first stream is still relayed");
    assert_eq!(c.pipe_pairs().asking, 1, "its pair is still kept");

    c.stop_egress(&first.id).expect("stop");
    task.abort();
    rogue.shutdown().await.expect("rogue leaves");
    let cleaned = eventually(Duration::from_secs(5), || async { objects(&c) == before }).await;
    assert!(cleaned, "transports, producers, consumers {:?}, before {before:?}", objects(&c));
    assert_eq!(c.pipe_pairs(), Default::default(), "no pair with a peer that left");
    for node in [c, a] {
        node.shutdown().await;
    }
}

/// A provider that offers from another end than its kept pair's (it
/// restarted, or lies) never gets a stream onto that pair: the asker pipes
/// through the fresh end it quoted beside the pair's, and keeps that pair too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_offering_from_another_end_than_its_pairs_is_piped_through_a_fresh_end() {
    let a = node(None).await;
    let c = node_with(Some(&a), |config| config.find_deadline = Duration::from_secs(2)).await;
    let heard = Heard::default();
    let (_, rogue, task) =
        answer_with(Rogue::join(&a).await, Forgery::NewEndEveryPipe { heard: std::sync::Arc::clone(&heard) });
    for stream in ["solo-1", "solo-2"] {
        rogue.provide(stream_key(stream)).await.expect("the rogue provides the id");
    }
    let pipes_heard = || heard.lock().expect("lock").iter().filter(|m| *m == "stream.pipe").count();
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let first = c.consume_rtp("solo-1", receiver.local_addr().expect("addr")).await.expect("first");
    assert_eq!((pipes_heard(), c.pipe_pairs().asking), (1, 1), "one pipe, kept as a pair");
    let (before_transports, (_, producers, _)) = (transports(&c), objects(&c));

    let second = c.consume_rtp("solo-2", receiver.local_addr().expect("addr")).await.expect("second");
    assert_eq!(pipes_heard(), 2, "asked once, quoting the pair's end and a fresh one");
    assert_eq!(objects(&c).1, producers + 1, "the second stream's producer");
    assert_eq!(transports(&c), before_transports + 2, "the fresh end and the second's egress");
    assert_eq!(c.pipe_pairs().asking, 2, "the first pair still carries the first stream; the fresh one is kept");
    for egress in [first, second] {
        c.stop_egress(&egress.id).expect("stop");
    }
    task.abort();
    rogue.shutdown().await.expect("rogue leaves");
    for node in [c, a] {
        node.shutdown().await;
    }
}

/// A peer's next pipes ride the pair kept with it when it quotes its end of
/// it (`pairedEnds`); quoting another peer's end gets it a transport of its
/// own (that end ignores what comes from it: tuple and SRTP key), and more
/// than 16 quoted ends are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_quoting_another_peers_pair_end_gets_a_pipe_of_its_own() {
    let a = node(None).await;
    for stream in ["show", "extra"] {
        a.publish_rtp(stream, vec![opus_track()]).await.expect("publish");
    }
    let (first, second) = (Rogue::join(&a).await, Rogue::join(&a).await);
    let socket = || async { UdpSocket::bind((LOOPBACK, 0)).await.expect("bind").local_addr().expect("addr") };
    let offer_port = |offer: Value| -> u16 {
        let offer: mafalda_node::streams::PipeOffer = offer.deserialized().expect("an offer");
        offer.endpoint.port
    };
    let first_end = socket().await;
    let piped = offer_port(first.pipe(&a, "show", first_end).await.expect("a pipe"));
    let before = transports(&a);

    // Quoting its own pair's end: the next stream rides that pair.
    let paired = offer_port(first.pipe_quoting(&a, "extra", socket().await, &[first_end]).await.expect("a pipe"));
    assert_eq!(paired, piped, "the first peer's second stream rides its pair");
    assert_eq!(transports(&a), before, "no transport opened for it");

    // Another peer quoting that end: a transport of its own.
    let own = offer_port(second.pipe_quoting(&a, "show", socket().await, &[first_end]).await.expect("a pipe"));
    assert_ne!(own, piped, "another peer never rides the first one's pair");
    assert_eq!(transports(&a), before + 1, "a transport of its own");
    assert_eq!(a.pipe_pairs().serving, 2);

    let too_many = vec![first_end; 17];
    let refused = second.pipe_quoting(&a, "extra", socket().await, &too_many).await;
    assert_eq!(remote_code(&refused), Some(mafalda_rope::ErrorCode::InvalidParams.code()), "{refused:?}");
    assert_eq!(transports(&a), before + 1, "a refused request leaves nothing behind");
    for rogue in [first, second] {
        rogue.handle.shutdown().await.expect("rogue leaves");
    }
    assert!(eventually(Duration::from_secs(2), || async { a.pipe_pairs() == Default::default() }).await);
    a.shutdown().await;
}

/// A consume checks a relay's description only when that relay could be
/// the cheapest provider. A rogue that says it relays the stream (its
/// hand-off claims `u32::MAX` hops) and is near, while the origin is far
/// (100 ms of link delay): its description is checked, refused, and the
/// consume pipes from the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_relay_nearer_than_the_origin_is_checked_and_refused() {
    let a = node(None).await;
    let ingest = a.publish_rtp("show", vec![opus_track()]).await.expect("publish at a");
    let _sending = keep_sending(ingest);
    let (rogue_id, rogue, task) = answer_with(Rogue::join(&a).await, Forgery::HugeHops);
    rogue.provide(stream_key("show")).await.expect("the rogue provides the id");
    let a_id = a.peer_id();
    let c = node_with(Some(&a), |config| {
        config.link_delay.insert(a_id, Duration::from_millis(100));
    })
    .await;
    let both = walk_names(&c, "show", &[a_id, rogue_id]).await;
    assert!(both, "c's walk names the origin and the rogue");
    served_by_the_origin(&c, &a).await;
    task.abort();
    rogue.shutdown().await.expect("rogue leaves");
    for node in [c, a] {
        node.shutdown().await;
    }
}

/// A second origin heard while the pipe from the first is being made: the
/// consume pipes once the cheapest provider is known, and descriptions that
/// come meanwhile are still heard. Two rogues provide one id, each the
/// origin of its own stream: the first describes at once (an origin, and
/// the other is far, so the cheapest) and answers the pipe only after a
/// second; the second describes after 150 ms, while that pipe is being
/// made. The pipe is undone: the first rogue is told to unpipe, the consume
/// fails naming both origins, the second is never asked to pipe, and
/// nothing of the pipe stays in mediasoup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_origin_heard_while_the_pipe_is_made_undoes_it() {
    let a = node(None).await;
    let rogue = |describe_after: Duration, pipe_after: Duration| {
        let a = &a;
        async move {
            let heard = Heard::default();
            let forgery = Forgery::OwnRecordAfter { describe_after, pipe_after, heard: heard.clone() };
            let (id, handle, task) = answer_with(Rogue::join(a).await, forgery);
            handle.provide(stream_key("twice")).await.expect("the rogue provides the id");
            (id, handle, task, heard)
        }
    };
    let (first_id, first, first_task, first_heard) = rogue(Duration::ZERO, Duration::from_secs(1)).await;
    let (second_id, second, second_task, second_heard) = rogue(Duration::from_millis(150), Duration::ZERO).await;
    // The second is far: the first, described at once, is the cheapest
    // whatever a loaded machine does to the RTTs measured (within the hop
    // penalty of each other, they decided it by chance).
    let c = node_with(Some(&a), |config| {
        config.link_delay.insert(second_id, Duration::from_millis(100));
    })
    .await;
    let both = walk_names(&c, "twice", &[first_id, second_id]).await;
    assert!(both, "c's walk names both rogues");
    let before = objects(&c);
    first_heard.lock().expect("lock").clear();
    second_heard.lock().expect("lock").clear();
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let consumed = c.consume_rtp("twice", receiver.local_addr().expect("addr")).await;
    match &consumed {
        Err(NodeError::OriginConflict { origins, .. }) => {
            let mut want = vec![first_id.to_string(), second_id.to_string()];
            want.sort();
            assert_eq!(origins, &want);
        }
        other => panic!("two origins under one id are refused: {other:?}"),
    }
    let heard = |heard: &Heard| heard.lock().expect("lock").clone();
    let (pipe, unpipe) = ("stream.pipe".to_owned(), "stream.unpipe".to_owned());
    assert!(heard(&first_heard).contains(&pipe), "piped from the first rogue: {:?}", heard(&first_heard));
    let told = eventually(Duration::from_secs(2), || async { heard(&first_heard).contains(&unpipe) }).await;
    assert!(told, "the first rogue is told its pipe is undone: {:?}", heard(&first_heard));
    assert!(!heard(&second_heard).contains(&pipe), "the second is not asked: {:?}", heard(&second_heard));
    let cleaned = eventually(Duration::from_secs(2), || async { objects(&c) == before }).await;
    assert!(cleaned, "transports, producers, consumers {:?}, before {before:?}", objects(&c));
    assert!(c.streams().is_empty(), "c holds nothing: {:?}", c.streams());
    assert_eq!(c.egress_count(), 0);
    for (task, rogue) in [(first_task, first), (second_task, second)] {
        task.abort();
        rogue.shutdown().await.expect("rogue leaves");
    }
    for node in [c, a] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_with_a_source_takes_packets_from_it_only() {
    let a = node(None).await;
    let source = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind source");
    let intruder = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind intruder");
    let ingest = a
        .publish_rtp_from("show", vec![opus_track()], Some(source.local_addr().expect("addr")))
        .await
        .expect("publish with a source");
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let egress = a.consume_rtp("show", receiver.local_addr().expect("addr")).await.expect("consume");
    let track = egress.tracks[0].clone();

    // The intruder sends first, with the right SSRC and its own payload.
    let mut forged = test_stream(SSRC, OPUS_PAYLOAD_TYPE, 100);
    for packet in &mut forged {
        packet.payload = b"intruder".to_vec();
    }
    let ((), from_intruder) = tokio::join!(
        send_paced(&intruder, ingest, &forged, Duration::from_millis(2)),
        receive_rtp(&receiver, track.ssrc, forged.len(), Duration::from_millis(800)),
    );
    assert!(from_intruder.is_empty(), "{} intruder packets became the stream", from_intruder.len());

    let packets = test_stream(SSRC, OPUS_PAYLOAD_TYPE, 100);
    let ((), ()) = tokio::join!(
        send_paced(&source, ingest, &packets, Duration::from_millis(2)),
        send_paced(&intruder, ingest, &forged, Duration::from_millis(2)),
    );
    let received = receive_rtp(&receiver, track.ssrc, packets.len(), Duration::from_millis(800)).await;
    assert!(received.iter().all(|p| p.payload != b"intruder"), "an intruder packet got through");
    assert!(received.len() >= 95, "{} of {} packets from the source", received.len(), packets.len());

    assert!(matches!(
        a.publish_rtp_from("bad", vec![opus_track()], Some(SocketAddr::new(LOOPBACK, 0))).await,
        Err(NodeError::InvalidInput(_))
    ));
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_made_up_methods_leave_metrics_bounded() {
    let a = node(None).await;
    let rogue = Rogue::join(&a).await;
    let target = a.peer_id();
    let mut distinct = HashSet::new();
    for batch in 0..(10_000 / 25) {
        let calls = (0..25).map(|i| {
            let method = format!("made.up.{batch}.{i}");
            distinct.insert(method.clone());
            let handle = rogue.handle.clone();
            async move { handle.call(target, &method, None, Value::Null).await }
        });
        for outcome in futures::future::join_all(calls).await {
            assert!(matches!(outcome, Err(CallError::Remote(_))), "{outcome:?}");
        }
    }
    assert_eq!(distinct.len(), 10_000);
    let mut registry = prometheus_client::registry::Registry::default();
    a.register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(!text.contains("made.up"), "a made-up method became a label");
    let series = text.lines().filter(|l| l.starts_with("rope_calls_total{")).count();
    assert!(series <= 8, "{series} call series: {text}");
    println!("10000 unknown methods: {series} call series, /metrics is {} bytes", text.len());
    rogue.handle.shutdown().await.expect("leave");
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_swarm_carries_streams_and_keeps_other_keys_out() {
    let key = mafalda_swarm::SwarmKey::generate();
    let a = node_with(None, |config| config.swarm = config.swarm.clone().with_swarm_key(key)).await;
    let b = node_with(Some(&a), |config| config.swarm = config.swarm.clone().with_swarm_key(key)).await;
    let ingest = a.publish_rtp("private", vec![opus_track()]).await.expect("publish");
    let _sending = keep_sending(ingest);
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let egress = b.consume_rtp("private", receiver.local_addr().expect("addr")).await.expect("consume with the key");
    let got = receive_rtp(&receiver, egress.tracks[0].ssrc, 30, Duration::from_secs(2)).await;
    assert!(got.len() >= 30, "{} packets through the private swarm", got.len());

    // A node with another key, and one with none, bootstrapping from a: neither joins.
    let other = node_with(Some(&a), |config| {
        config.swarm = config.swarm.clone().with_swarm_key(mafalda_swarm::SwarmKey::generate());
        config.find_deadline = Duration::from_secs(1);
    })
    .await;
    let open = node_with(Some(&a), |config| config.find_deadline = Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for outsider in [&other, &open] {
        assert!(outsider.swarm().connected_peers().await.expect("peers").is_empty(), "an outsider connected");
        assert!(matches!(outsider.find("private").await, Err(NodeError::NotFound(_))));
        let params = Value::serialized(&serde_json::json!({"stream": "private"})).expect("value");
        let call = outsider.swarm().call(a.peer_id(), "stream.describe", None, params).await;
        assert!(call.is_err(), "an outsider made a call: {call:?}");
    }
    assert_eq!(a.swarm().connected_peers().await.expect("peers"), vec![b.peer_id()]);
    for node in [open, other, b, a] {
        node.shutdown().await;
    }
}

impl Rogue {
    /// Asks `node` to pipe `stream` to it as a node behind NAT would: its
    /// end sends first, the answer's endpoint is where to.
    async fn pipe_sending_first(&self, node: &Node, stream: &str) -> Result<SocketAddr, CallError> {
        let params = serde_json::json!({
            "stream": stream,
            "endpoint": {"ip": "10.9.9.9", "port": 9,
                         "srtp": {"cryptoSuite": "AEAD_AES_256_GCM", "keyBase64": SRTP_KEY}},
            "mode": "askerSendsFirst",
        });
        let offer = self.call(node.peer_id(), "stream.pipe", params).await?;
        let offered: mafalda_node::streams::PipeOffer = offer.deserialized().expect("an offer");
        Ok(SocketAddr::new(offered.endpoint.ip, offered.endpoint.port))
    }

    /// Asks `node`, as a node behind NAT would, to fetch `stream` of
    /// `origin` and pipe it on.
    async fn pipe_fetching(
        &self,
        node: &Node,
        stream: &str,
        origin: &str,
    ) -> Result<mafalda_node::streams::PipeOffer, CallError> {
        let params = fetch_params(stream, "askerSendsFirst", origin);
        let offer = self.call(node.peer_id(), "stream.pipe", params).await?;
        Ok(offer.deserialized().expect("an offer"))
    }
}

/// `stream.pipe` params asking for `stream` in `mode`, fetched from `origin`
/// by the node asked, to an endpoint on the loopback.
fn fetch_params(stream: &str, mode: &str, origin: &str) -> serde_json::Value {
    serde_json::json!({
        "stream": stream,
        "endpoint": {"ip": "127.0.0.1", "port": 9,
                     "srtp": {"cryptoSuite": "AEAD_AES_256_GCM", "keyBase64": SRTP_KEY}},
        "mode": mode,
        "fetchFrom": origin,
    })
}

/// What reaches a PlainTransport as SCTP: 12 bytes that are neither RTP nor
/// RTCP. Anyone can send it; no key is needed.
const FIRST_PACKET: [u8; 12] = [0; 12];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipe_to_a_node_behind_nat_sends_only_to_the_address_its_connection_comes_from() {
    let a = node(None).await;
    let ingest = a.publish_rtp("show", vec![opus_track()]).await.expect("publish");
    let _sending = keep_sending(ingest);
    let baseline = transports(&a);
    let rogue = Rogue::join(&a).await;

    // Another host gets its packet in first: the pipe closes, not one packet
    // of media reaches it.
    let victim = UdpSocket::bind((VICTIM_IP, 0)).await.expect("bind victim");
    let offered = rogue.pipe_sending_first(&a, "show").await.expect("an offer to the asker behind NAT");
    assert_eq!(transports(&a), baseline + 1, "the pipe's end is open");
    victim.send_to(&FIRST_PACKET, offered).await.expect("send first");
    let closed = eventually(Duration::from_secs(2), || async { transports(&a) == baseline }).await;
    assert!(closed, "a pipe whose first packet came from another address is closed");
    assert_eq!(count_datagrams(&victim, Duration::from_secs(1)).await, 0, "media reached the address that spoke first");
    assert!(a.streams()[0].downstream.is_empty(), "no downstream left: {:?}", a.streams()[0].downstream);

    // The asker's own address speaks first: its media flows.
    let own = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind own");
    let offered = rogue.pipe_sending_first(&a, "show").await.expect("an offer");
    own.send_to(&FIRST_PACKET, offered).await.expect("send first");
    assert!(count_datagrams(&own, Duration::from_millis(500)).await > 10, "the asker's own address gets the media");

    // Nobody speaks: the pipe closes after its wait, and that wait is bounded
    // per peer by the pipe cap like any pipe.
    for i in 0..3 {
        a.publish_rtp(&format!("quiet-{i}"), vec![opus_track()]).await.expect("publish");
        rogue.pipe_sending_first(&a, &format!("quiet-{i}")).await.expect("an offer");
    }
    let with_silent = transports(&a);
    let started = Instant::now();
    let gone = eventually(Duration::from_secs(15), || async { transports(&a) == with_silent - 3 }).await;
    assert!(gone, "pipes nobody spoke to are closed ({} transports of {with_silent})", transports(&a));
    println!("silent NAT pipes closed {:?} after they were offered", started.elapsed());

    // Its one pipe left (the one its own address spoke to) closes when it leaves.
    let before = transports(&a);
    rogue.handle.shutdown().await.expect("rogue leaves");
    let released = eventually(Duration::from_secs(2), || async { transports(&a) == before - 1 }).await;
    assert!(released, "the rogue's pipe closed when it left ({} transports of {before})", transports(&a));
    a.shutdown().await;
}

/// `fetchFrom` makes the asked node pipe a stream in from its origin first:
/// only an asker behind NAT (sending first) may ask it, naming an origin
/// that is a peer and not itself; whatever is refused leaves the node
/// holding nothing, and what it fetched for the asker goes once the asker
/// does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_from_is_only_for_askers_behind_nat_and_names_a_real_origin() {
    let origin = node(None).await;
    let ingest = origin.publish_rtp("show", vec![opus_track()]).await.expect("publish");
    let _sending = keep_sending(ingest);
    let relay = node_with(Some(&origin), |config| config.relay_linger = Duration::from_millis(500)).await;
    let rogue = Rogue::join(&relay).await;
    let fetch = |mode: &str, from: String| fetch_params("show", mode, &from);
    let origin_id = origin.peer_id().to_string();
    let refusals = [
        ("a reachable asker", fetch("pipe", origin_id.clone()), "askerSendsFirst"),
        ("a listening asker", fetch("askerListens", origin_id.clone()), "askerSendsFirst"),
        ("the asker itself", fetch("askerSendsFirst", rogue.handle.peer_id().to_string()), "asker itself"),
        ("no peer id", fetch("askerSendsFirst", "not-a-peer".into()), "bad origin"),
    ];
    for (what, params, expected) in refusals {
        let answer = rogue.call(relay.peer_id(), "stream.pipe", params).await;
        match answer {
            Err(CallError::Remote(error)) => {
                assert_eq!(error.code, mafalda_rope::ErrorCode::InvalidParams.code(), "{what}: {error:?}");
                assert!(error.message.contains(expected), "{what}: says why: {}", error.message);
            }
            other => panic!("{what}: refused, not {other:?}"),
        }
        assert!(relay.streams().is_empty(), "{what}: the relay fetched nothing: {:?}", relay.streams());
    }
    // An origin nobody provides the stream at: not found, nothing held.
    let nobody = mafalda_swarm::PeerId::random().to_string();
    let answer = rogue.call(relay.peer_id(), "stream.pipe", fetch("askerSendsFirst", nobody)).await;
    assert!(matches!(answer, Err(CallError::Remote(_))), "a made-up origin is refused: {answer:?}");
    assert!(relay.streams().is_empty(), "nothing fetched from a made-up origin: {:?}", relay.streams());

    // The asker behind NAT, naming the real origin: the relay fetches the
    // stream and offers it; once the asker leaves, the relay lets it go.
    let offer = rogue.pipe_fetching(&relay, "show", &origin_id).await.expect("an offer through the relay");
    assert_eq!(offer.tracks.len(), 1, "the stream's track");
    assert_eq!(offer.provenance.handoffs.len(), 2, "handed from the origin to the relay, then to the asker");
    let held = relay.streams();
    assert_eq!(held.len(), 1, "the relay holds the stream it fetched: {held:?}");
    assert_eq!(held[0].upstream.as_deref(), Some(origin_id.as_str()), "piped from the origin: {held:?}");
    rogue.handle.shutdown().await.expect("rogue leaves");
    let let_go = eventually(Duration::from_secs(5), || async { relay.streams().is_empty() }).await;
    assert!(let_go, "the relay lets the fetched stream go once the asker left: {:?}", relay.streams());
    relay.shutdown().await;
    origin.shutdown().await;
}
