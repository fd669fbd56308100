//! The core path across real nodes (mediasoup + libp2p + ROPE on 127.0.0.1): a
//! stream published at one node is found and consumed at another, piped through
//! the swarm, with real RTP checked at the receiving socket.

use std::net::SocketAddr;
use std::time::Duration;

use mafalda_media::mediasoup::prelude::MediaKind;
use mafalda_node::{Codec, Egress, Node, NodeConfig, NodeError, NodeEvent, TrackSpec};
use mafalda_swarm::{KadSettings, ProtocolLabel, stream_key};
use mafalda_tests::media::{LOOPBACK, OPUS_PAYLOAD_TYPE};
use mafalda_tests::node::{node_with, transports_besides_spares};
use mafalda_tests::rtp::{send_paced, test_stream};
use mafalda_tests::swarm::eventually;
use tokio::net::UdpSocket;

const SSRC: u32 = 0x00c0_ffee;

async fn node(bootstrap: Option<&Node>) -> Node {
    node_with(bootstrap, |_| {}).await
}

/// Sends `count` paced packets to `ingest` and checks that every one reaches
/// `receiver` as `egress` sends it (its SSRC and payload type).
async fn assert_carried(ingest: SocketAddr, receiver: &UdpSocket, egress: &Egress, count: u32) {
    let track = &egress.tracks[0];
    mafalda_tests::rtp::assert_carried(ingest, SSRC, receiver, (track.ssrc, track.payload_type), count).await;
}

fn opus_track() -> TrackSpec {
    TrackSpec { kind: MediaKind::Audio, codec: Codec::Opus, payload_type: OPUS_PAYLOAD_TYPE, ssrc: SSRC }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_published_at_one_end_of_a_line_is_consumed_at_the_other() {
    // A ← B ← C: C knows A only through the swarm.
    let a = node(None).await;
    let b = node(Some(&a)).await;
    let c = node(Some(&b)).await;
    let (a_id, c_id) = (a.peer_id().to_string(), c.peer_id().to_string());

    let ingest = a.publish_rtp("lecture", vec![opus_track()]).await.expect("publish at a");
    let providers = c.find("lecture").await.expect("find from c");
    assert_eq!(providers.len(), 1, "{providers:?}");
    assert_eq!((providers[0].peer.as_str(), providers[0].hops), (a_id.as_str(), 0), "a is the origin");

    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let egress = c.consume_rtp("lecture", receiver.local_addr().expect("addr")).await.expect("consume at c");
    assert_eq!(egress.path, vec![a_id.clone(), c_id.clone()], "piped from the origin straight to c");

    assert_carried(ingest, &receiver, &egress, 200).await;

    // C now relays it one hop further; B sees both providers.
    let streams = c.streams();
    assert_eq!(streams[0].upstream.as_deref(), Some(a_id.as_str()));
    assert_eq!(streams[0].hops, 1);
    let mut seen: Vec<(String, u32)> =
        b.find("lecture").await.expect("find from b").into_iter().map(|p| (p.peer, p.hops)).collect();
    seen.sort_by_key(|(_, hops)| *hops);
    assert_eq!(seen, vec![(a_id, 0), (c_id, 1)]);

    // A second egress at c shares the pipe already there (no new relay).
    let second = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let again = c.consume_rtp("lecture", second.local_addr().expect("addr")).await.expect("second consume");
    assert_eq!(again.path, egress.path);
    assert_eq!(c.streams().len(), 1);

    for node in [c, b, a] {
        node.shutdown().await;
    }
}

/// A consume whose walk ends naming a single provider asks it to pipe at
/// once, with no `stream.describe` first: the offer carries the same signed
/// provenance and tracks a description would. Settled nodes answer such a
/// walk from their own store, naming every provider at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consume_whose_walk_names_one_provider_only_asks_it_to_pipe() {
    let settled = |config: &mut NodeConfig| {
        let mut kad = KadSettings::default();
        kad.own_store_after = Duration::ZERO;
        config.swarm = config.swarm.clone().with_kad(kad);
    };
    let a = node_with(None, settled).await;
    let b = node_with(Some(&a), settled).await;
    let ingest = a.publish_rtp("solo", vec![opus_track()]).await.expect("publish at a");
    // Until b's store holds a's record, b's lookups ask a over Kademlia.
    let kad_out = || {
        b.swarm().traffic().into_iter().find(|(label, _)| *label == ProtocolLabel::Kad).expect("listed").1.streams_out
    };
    let from_store = eventually(Duration::from_secs(5), || async {
        let before = kad_out();
        let found =
            b.swarm().lookup_providers(stream_key("solo"), Duration::from_secs(5), false).await.expect("lookup");
        found.providers == vec![a.peer_id()] && kad_out() == before
    })
    .await;
    assert!(from_store, "b's own store names a");

    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let egress = b.consume_rtp("solo", receiver.local_addr().expect("addr")).await.expect("consume at b");
    assert_eq!(egress.path, vec![a.peer_id().to_string(), b.peer_id().to_string()]);
    assert_carried(ingest, &receiver, &egress, 100).await;

    let mut registry = prometheus_client::registry::Registry::default();
    a.register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    let calls_in: Vec<&str> =
        text.lines().filter(|l| l.starts_with("rope_calls_total{") && l.contains(r#"direction="in""#)).collect();
    assert_eq!(
        calls_in,
        vec![r#"rope_calls_total{method="stream.pipe",direction="in",outcome="ok"} 1"#],
        "a was asked to pipe, and nothing else: {text}"
    );
    for node in [b, a] {
        node.shutdown().await;
    }
}

/// A consume right after a find pipes from the providers that find learnt;
/// when they no longer hold the stream, it finds afresh rather than failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consume_right_after_a_find_whose_provider_left_finds_afresh() {
    let a = node(None).await;
    let b = node(Some(&a)).await;
    let c = node(Some(&b)).await;
    let (b_id, c_id) = (b.peer_id().to_string(), c.peer_id().to_string());
    a.publish_rtp("moving", vec![opus_track()]).await.expect("publish at a");
    let providers = c.find("moving").await.expect("find from c");
    assert_eq!(providers.iter().map(|p| p.peer.clone()).collect::<Vec<_>>(), vec![a.peer_id().to_string()]);

    // Within the moment c keeps its find: the stream moves from a to b.
    a.unpublish("moving").await.expect("unpublish at a");
    let ingest = b.publish_rtp("moving", vec![opus_track()]).await.expect("publish at b");
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let egress = c.consume_rtp("moving", receiver.local_addr().expect("addr")).await.expect("consume at c");
    assert_eq!(egress.path, vec![b_id, c_id], "piped from the stream's new origin");

    assert_carried(ingest, &receiver, &egress, 100).await;
    for node in [c, b, a] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_streams_and_bad_input_get_clear_errors() {
    let a = node(None).await;
    let b = node(Some(&a)).await;
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let missing = b.consume_rtp("nobody-publishes-this", receiver.local_addr().expect("addr")).await;
    assert!(matches!(missing, Err(NodeError::NotFound(_))), "{missing:?}");
    assert!(matches!(b.find("nobody").await, Err(NodeError::NotFound(_))));
    assert!(matches!(b.find("bad id!").await, Err(NodeError::InvalidInput(_))));
    let wrong = TrackSpec { kind: MediaKind::Video, codec: Codec::Opus, payload_type: 100, ssrc: 1 };
    assert!(matches!(a.publish_rtp("x", vec![wrong]).await, Err(NodeError::InvalidInput(_))));
    a.publish_rtp("dup", vec![opus_track()]).await.expect("publish");
    assert!(matches!(a.publish_rtp("dup", vec![opus_track()]).await, Err(NodeError::AlreadyPublished(_))));
    assert!(a.streams().iter().all(|s| s.stream == "dup"), "failed publications left nothing behind");
    for node in [b, a] {
        node.shutdown().await;
    }
}

/// Calls `node` answered for `method` (ok or not), by its metrics.
fn calls_in(node: &Node, method: &str) -> u64 {
    let mut registry = prometheus_client::registry::Registry::default();
    node.register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    let prefix = format!(r#"rope_calls_total{{method="{method}",direction="in","#);
    text.lines()
        .filter(|line| line.starts_with(&prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Two providers, origin and relay: a consume that did not find first asks
/// both to describe the stream and the origin to pipe at once, and takes
/// that pipe (one round trip, no `stream.pipe`), the origin being cheapest.
/// The relay is put 100 ms further from c: on loopback the two RTTs are
/// equal, and one ping of a loaded machine (35 ms against 16 ms, seen) can
/// outweigh the relay's hop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_consume_takes_the_pipe_the_origin_made_with_its_description() {
    let a = node(None).await;
    let b = node(Some(&a)).await;
    let b_far = b.peer_id();
    let c = node_with(Some(&a), |config| {
        config.link_delay.insert(b_far, Duration::from_millis(100));
    })
    .await;
    let ingest = a.publish_rtp("duo", vec![opus_track()]).await.expect("publish at a");
    let sink = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    b.consume_rtp("duo", sink.local_addr().expect("addr")).await.expect("b relays");
    let b_id = b.peer_id().to_string();
    let both = eventually(Duration::from_secs(5), || async {
        c.swarm()
            .lookup_providers(stream_key("duo"), Duration::from_secs(5), false)
            .await
            .is_ok_and(|found| found.providers.len() == 2 && found.providers.iter().any(|p| p.to_string() == b_id))
    })
    .await;
    assert!(both, "c's walk names a and b");
    let (pipes_asked, described) = (calls_in(&a, "stream.pipe"), calls_in(&a, "stream.describe"));

    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let egress = c.consume_rtp("duo", receiver.local_addr().expect("addr")).await.expect("consume at c");
    assert_eq!(egress.path, vec![a.peer_id().to_string(), c.peer_id().to_string()], "c pipes from the origin");
    assert_carried(ingest, &receiver, &egress, 50).await;
    assert_eq!(calls_in(&a, "stream.pipe"), pipes_asked, "the origin piped with its description, unasked again");
    assert_eq!(calls_in(&a, "stream.describe"), described + 1);
    assert_eq!(calls_in(&b, "stream.pipe"), 0, "the relay was only asked to describe");
    for node in [c, b, a] {
        node.shutdown().await;
    }
}

/// When the relay is cheaper (the origin is far: 100 ms more to it), the
/// consume pipes from the relay and unpipes what the origin made with its
/// description: no pipe is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipe_the_origin_made_with_its_description_is_closed_when_a_relay_is_cheaper() {
    let a = node(None).await;
    let b = node(Some(&a)).await;
    let a_id = a.peer_id();
    let c = node_with(Some(&a), |config| {
        config.link_delay.insert(a_id, Duration::from_millis(100));
    })
    .await;
    let ingest = a.publish_rtp("far", vec![opus_track()]).await.expect("publish at a");
    let sink = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    b.consume_rtp("far", sink.local_addr().expect("addr")).await.expect("b relays");
    let b_id = b.peer_id().to_string();
    let both = eventually(Duration::from_secs(5), || async {
        c.swarm()
            .lookup_providers(stream_key("far"), Duration::from_secs(5), false)
            .await
            .is_ok_and(|found| found.providers.len() == 2 && found.providers.iter().any(|p| p.to_string() == b_id))
    })
    .await;
    assert!(both, "c's walk names a and b");

    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let egress = c.consume_rtp("far", receiver.local_addr().expect("addr")).await.expect("consume at c");
    assert_eq!(egress.path, vec![a_id.to_string(), b_id.clone(), c.peer_id().to_string()], "c pipes from b");
    assert_carried(ingest, &receiver, &egress, 50).await;
    let c_id = c.peer_id().to_string();
    let only_b = eventually(Duration::from_secs(3), || async {
        a.streams().iter().find(|s| s.stream == "far").is_some_and(|s| s.downstream == vec![b_id.clone()])
            && calls_in(&a, "stream.unpipe") == 1
    })
    .await;
    assert!(
        only_b,
        "a was told to unpipe what it made for c, and did: {:?}",
        a.streams().iter().find(|s| s.stream == "far").map(|s| &s.downstream)
    );
    assert!(!a.streams().iter().any(|s| s.downstream.contains(&c_id)));
    for node in [c, b, a] {
        node.shutdown().await;
    }
}

/// A relay provides the stream once its first packet has come; a silent
/// stream's relay (a paused publisher sends nothing) is provided all the
/// same, after a short wait, and found by the next node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_of_a_silent_stream_is_provided_all_the_same() {
    let a = node(None).await;
    let b = node(Some(&a)).await;
    let c = node(Some(&a)).await;
    a.publish_rtp("hush", vec![opus_track()]).await.expect("publish at a");
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let egress = b.consume_rtp("hush", receiver.local_addr().expect("addr")).await.expect("b consumes");
    assert_eq!(egress.path, vec![a.peer_id().to_string(), b.peer_id().to_string()], "b relays a's stream");
    let b_id = b.peer_id().to_string();
    let found_b = eventually(Duration::from_secs(5), || async {
        c.find("hush").await.is_ok_and(|providers| providers.iter().any(|p| p.peer == b_id && p.hops == 1))
    })
    .await;
    assert!(found_b, "c finds the relay b among the providers of a silent stream");
    for node in [c, b, a] {
        node.shutdown().await;
    }
}

async fn line_with_relay() -> (Node, Node, Node) {
    let a = node(None).await;
    let b = node(Some(&a)).await;
    let c = node(Some(&b)).await;
    a.publish_rtp("show", vec![opus_track()]).await.expect("publish at a");
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    c.consume_rtp("show", receiver.local_addr().expect("addr")).await.expect("consume at c");
    assert_eq!(c.streams().len(), 1, "c relays the stream");
    (a, b, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_publication_ends_it_at_every_relay() {
    let (a, b, c) = line_with_relay().await;
    a.unpublish("show").await.expect("unpublish");
    assert!(matches!(a.unpublish("show").await, Err(NodeError::NotFound(_))), "already gone");
    let ended = mafalda_tests::swarm::eventually(Duration::from_secs(5), || async {
        c.streams().is_empty() && c.egress_count() == 0
    })
    .await;
    assert!(ended, "the relay ended the stream and its egress");
    assert!(matches!(b.find("show").await, Err(NodeError::NotFound(_))), "nobody serves it any more");
    for node in [c, b, a] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_whose_upstream_dies_ends_the_stream() {
    let (a, b, c) = line_with_relay().await;
    a.shutdown().await;
    let ended = mafalda_tests::swarm::eventually(Duration::from_secs(5), || async { c.streams().is_empty() }).await;
    assert!(ended, "the relay noticed its upstream died and withdrew the stream");
    for node in [c, b] {
        node.shutdown().await;
    }
}

/// A ← B ← C, with A far from C (80 ms injected into C's cost model): C pulls
/// through the cheaper relay B. B dies mid-stream: C re-pipes from A and its
/// egress resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_relay_in_the_middle_of_a_path_heals_within_two_seconds() {
    let a = node(None).await;
    let b = node(Some(&a)).await;
    let a_peer = a.peer_id();
    let c = node_with(Some(&b), |config| {
        config.link_delay.insert(a_peer, Duration::from_millis(80));
    })
    .await;
    let (a_id, b_id, c_id) = (a.peer_id().to_string(), b.peer_id().to_string(), c.peer_id().to_string());
    let ingest = a.publish_rtp("match", vec![opus_track()]).await.expect("publish");
    let b_sink = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    b.consume_rtp("match", b_sink.local_addr().expect("addr")).await.expect("b relays");
    assert!(mafalda_tests::node::finds_provider(&c, "match", &b).await, "c learnt that b relays the stream");
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let egress = c.consume_rtp("match", receiver.local_addr().expect("addr")).await.expect("consume at c");
    assert_eq!(egress.path, vec![a_id.clone(), b_id.clone(), c_id.clone()], "c pulls through the relay b");

    // Stream for 4 s; kill b after 1 s; record every arrival at c.
    let mut c_events = c.subscribe();
    let sender = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let packets = test_stream(SSRC, OPUS_PAYLOAD_TYPE, 2000);
    let sending = send_paced(&sender, ingest, &packets, Duration::from_millis(2));
    let killing = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        b.shutdown().await;
    };
    let receiving = async {
        // Media packets only (the test payloads), whatever SSRC the current consumer
        // uses; mediasoup's bandwidth-probation padding would hide a media gap.
        let mut arrivals = Vec::new();
        let mut last_ssrc = 0;
        let mut seen = std::collections::HashSet::new();
        let mut buffer = vec![0u8; 2048];
        while let Ok(Ok((len, _))) = tokio::time::timeout(Duration::from_secs(3), receiver.recv_from(&mut buffer)).await
        {
            if let Ok(packet) = mafalda_tests::rtp::RtpPacket::parse(&buffer[..len])
                && packet.payload.len() == 120
                && packet.payload[0] == 0xfc
            {
                arrivals.push(std::time::Instant::now());
                last_ssrc = packet.ssrc;
                seen.insert(packet.payload[1..5].to_vec());
            }
        }
        (arrivals, seen.len(), last_ssrc)
    };
    let ((), (), (arrivals, distinct, last_ssrc)) = tokio::join!(sending, killing, receiving);
    let gap = arrivals.windows(2).map(|w| w[1] - w[0]).max().expect("packets arrived");
    eprintln!("egress gap while healing: {gap:?} ({distinct} distinct packets of 2000 received)");
    assert!(distinct > 1500, "most packets arrived: {distinct}");
    assert!(gap < Duration::from_secs(2), "the egress resumed within 2 s (gap {gap:?})");
    let streams = c.streams();
    assert_eq!(streams[0].upstream.as_deref(), Some(a_id.as_str()), "c now pulls from a");
    assert_eq!(streams[0].path, vec![a_id.clone(), c_id.clone()]);

    // The app was told: the egress re-opened with the new path and new SSRCs,
    // and those are the SSRCs the packets now arrive with.
    let mut reopened = None;
    while let Ok(event) = c_events.try_recv() {
        if let NodeEvent::EgressOpened { egress: status } = event
            && status.id == egress.id
        {
            reopened = Some(status);
        }
    }
    let reopened = reopened.expect("an EgressOpened event for the healed egress");
    assert_eq!(reopened.path, vec![a_id, c_id]);
    assert_ne!(reopened.tracks[0].ssrc, egress.tracks[0].ssrc, "a new consumer, a new SSRC");
    assert_eq!(last_ssrc, reopened.tracks[0].ssrc, "packets now carry the announced SSRC");
    for node in [c, a] {
        node.shutdown().await;
    }
}

/// Five nodes whose bootstrap links form a line: published at node 1, taken out
/// at node 5; every node finds node 1 as the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_in_a_line_deliver_end_to_end() {
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..5 {
        let next = node(if i == 0 { None } else { Some(&nodes[i - 1]) }).await;
        nodes.push(next);
    }
    let origin = nodes[0].peer_id().to_string();
    let ingest = nodes[0].publish_rtp("line", vec![opus_track()]).await.expect("publish at node 1");
    for node in &nodes[1..] {
        let providers = node.find("line").await.expect("find");
        assert!(providers.iter().any(|p| p.peer == origin && p.hops == 0), "node 1 is the origin: {providers:?}");
    }
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let egress = nodes[4].consume_rtp("line", receiver.local_addr().expect("addr")).await.expect("consume at node 5");
    assert_eq!(egress.path.first(), Some(&origin));
    assert_carried(ingest, &receiver, &egress, 300).await;
    for node in nodes.into_iter().rev() {
        node.shutdown().await;
    }
}

/// After every stop, the media objects are gone again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_egresses_and_publications_leaks_nothing() {
    let a = node(None).await;
    let b = node(Some(&a)).await;
    let transports = |node: &Node| node.media().status().iter().map(|w| w.objects.transports).sum::<u32>();
    let consumers = |node: &Node| node.media().status().iter().map(|w| w.objects.consumers).sum::<u32>();
    let (a_before, b_before) = (transports(&a), transports(&b));

    a.publish_rtp("leak", vec![opus_track()]).await.expect("publish");
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let egress = b.consume_rtp("leak", receiver.local_addr().expect("addr")).await.expect("consume");
    assert!(transports(&a) > a_before && transports(&b) > b_before, "ingest, pipes and egress exist");
    let spare = mafalda_tests::swarm::eventually(Duration::from_secs(2), || async { a.spare_pipes() == 1 }).await;
    assert!(spare, "having served a pipe, A keeps one spare pipe transport ready for the next");

    b.stop_egress(&egress.id).expect("stop egress");
    a.unpublish("leak").await.expect("unpublish");
    let clean = mafalda_tests::swarm::eventually(Duration::from_secs(5), || async {
        // The spare goes too: no stream left on its router.
        transports(&a) == a_before && transports(&b) == b_before && consumers(&a) == 0 && consumers(&b) == 0
    })
    .await;
    assert!(
        clean,
        "transports back to {a_before}/{b_before}, got {}/{}; consumers {}/{}",
        transports(&a),
        transports(&b),
        consumers(&a),
        consumers(&b)
    );
    assert!(b.streams().is_empty() && b.egress_count() == 0);
    for node in [b, a] {
        node.shutdown().await;
    }
}

/// An app that finds streams and never consumes them (a find opens this
/// node's end of a pipe for the consume that usually follows, once apps here
/// have shown they consume what they find) holds at most 16 of those ends at
/// once, none once its finds have expired, and no more from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_never_consumed_leave_no_pipe_end_behind() {
    let a = node(None).await;
    let b = node_with(Some(&a), |config| config.relay_linger = Duration::from_secs(60)).await;
    // Less the spare a relay keeps ready for the next pipe (a find's end may
    // take it: then it closes with that end, unused).
    let transports = transports_besides_spares;
    let streams: Vec<String> = (0..26).map(|i| format!("looked-at-{i}")).collect();
    for stream in &streams {
        a.publish_rtp(stream, vec![opus_track()]).await.expect("publish");
    }
    // At first, finds open no end: nobody here has consumed what it found.
    let before = transports(&b);
    b.find(&streams[25]).await.expect("find");
    assert_eq!(transports(&b), before, "no end for a find before any find was consumed");
    // The app consumes what it found once (the relay stays: a long linger).
    let sink = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    b.find(&streams[24]).await.expect("find");
    let egress = b.consume_rtp(&streams[24], sink.local_addr().expect("addr")).await.expect("consume");
    b.stop_egress(&egress.id).expect("stop");
    let before = transports(&b);
    // Then finds 24 streams and consumes none.
    let mut most = before;
    for stream in &streams[..24] {
        b.find(stream).await.expect("find");
        most = most.max(transports(&b));
    }
    assert!(most > before, "finds opened pipe ends ({before} transports before, {most} at most)");
    assert!(most <= before + 16, "at most 16 pipe ends kept: {before} transports before, {most} at most");
    let closed = eventually(Duration::from_secs(5), || async { transports(&b) == before }).await;
    assert!(closed, "every unused pipe end closed: {} transports, {before} before", transports(&b));
    // Most finds went unused: the next opens no end.
    b.find(&streams[0]).await.expect("find");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(transports(&b), before, "no end once finds go unconsumed");
    for node in [b, a] {
        node.shutdown().await;
    }
}

/// Every stream piped between two nodes after the first rides the pipe
/// transport pair the first one connected, whichever way it is asked for
/// (a cold consume's describe asking the origin to pipe at once, or
/// `stream.pipe` after a find): no transport opened at either end, and the
/// pair closes with the last stream on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_between_two_nodes_ride_one_pipe_pair_that_closes_with_the_last() {
    let a = node(None).await;
    let b = node_with(Some(&a), |config| config.relay_linger = Duration::from_millis(100)).await;
    let mut ingests = Vec::new();
    for i in 0..3 {
        ingests.push(a.publish_rtp(&format!("paired-{i}"), vec![opus_track()]).await.expect("publish"));
    }
    let consume = |stream: &'static str| {
        let b = &b;
        async move {
            let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
            let egress = b.consume_rtp(stream, receiver.local_addr().expect("addr")).await.expect("consume");
            (receiver, egress)
        }
    };
    // The first stream connects the pair.
    let first = consume("paired-0").await;
    assert_carried(ingests[0], &first.0, &first.1, 20).await;
    assert_eq!((a.pipe_pairs().serving, b.pipe_pairs().asking), (1, 1), "the first pipe is kept as a pair");
    let (a_transports, b_transports) = (transports_besides_spares(&a), transports_besides_spares(&b));
    let pipes_asked = calls_in(&a, "stream.pipe");

    // Cold: the describe quotes the pair's end, the origin pipes on it.
    let second = consume("paired-1").await;
    assert_eq!(calls_in(&a, "stream.pipe"), pipes_asked, "piped with the origin's description");
    // After a find: `stream.pipe` through the pair.
    b.find("paired-2").await.expect("find");
    let third = consume("paired-2").await;
    assert_eq!(calls_in(&a, "stream.pipe"), pipes_asked + 1, "piped with stream.pipe");
    // (Each stream is checked once: the test packets start from the same
    // sequence number every time, and a second batch would be old news.)
    assert_carried(ingests[1], &second.0, &second.1, 20).await;
    assert_eq!((a.pipe_pairs().serving, b.pipe_pairs().asking), (1, 1), "still one pair");
    assert_eq!(transports_besides_spares(&a), a_transports, "no pipe transport opened at a for the later streams");
    assert_eq!(transports_besides_spares(&b) - b_transports, 2, "only the two egresses at b");

    // Unpiping some streams leaves the others on the pair.
    for (_, egress) in [&first, &second] {
        b.stop_egress(&egress.id).expect("stop");
    }
    let two_gone = eventually(Duration::from_secs(5), || async { b.streams().len() == 1 }).await;
    assert!(two_gone, "b let go of the two relays: {:?}", b.streams());
    assert_eq!((a.pipe_pairs().serving, b.pipe_pairs().asking), (1, 1), "the third stream keeps the pair");
    assert_carried(ingests[2], &third.0, &third.1, 20).await;
    // The last one takes the pair with it, at both ends.
    b.stop_egress(&third.1.id).expect("stop");
    let closed = eventually(Duration::from_secs(5), || async {
        b.streams().is_empty() && a.pipe_pairs() == Default::default() && b.pipe_pairs() == Default::default()
    })
    .await;
    assert!(closed, "the pair closed: a {:?}, b {:?}", a.pipe_pairs(), b.pipe_pairs());
    assert_eq!(transports_besides_spares(&a), 3, "only the ingests are left at a");
    for node in [b, a] {
        node.shutdown().await;
    }
}

/// A first node whose workers are meant to carry `consumers` consumers each
/// (over the default watermark, 0.6, at 60 % of that).
async fn origin_carrying(consumers: u32) -> Node {
    node_with(None, |config| {
        let mut placement = mafalda_media::PlacementPolicy::default();
        placement.consumer_capacity = consumers;
        config.media.placement = placement;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_origin_sends_newcomers_to_its_relays() {
    // A's single worker is full at 2 consumers (capacity 2, watermark 0.6).
    let a = origin_carrying(2).await;
    let b = node(Some(&a)).await;
    let c = node(Some(&a)).await;
    let (a_id, b_id, c_id) = (a.peer_id().to_string(), b.peer_id().to_string(), c.peer_id().to_string());
    a.publish_rtp("popular", vec![opus_track()]).await.expect("publish");
    let sink = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let sink_addr = sink.local_addr().expect("addr");
    b.consume_rtp("popular", sink_addr).await.expect("b pulls from a (one pipe consumer on a)");
    a.consume_rtp("popular", sink_addr).await.expect("a local egress fills a");
    assert!(a.media().is_saturated(), "a is over its watermark");

    let egress = c.consume_rtp("popular", sink_addr).await.expect("c is served");
    assert_eq!(egress.path, vec![a_id, b_id, c_id], "c was sent to the relay b");
    for node in [c, b, a] {
        node.shutdown().await;
    }
}

/// An origin over its watermark that pipes a stream to nobody yet serves
/// that stream's first pipe (busy, it would name no relay, and the stream
/// could not be watched from any other node); the next newcomer goes to the
/// relay that pipe made. At full capacity it serves none, and the consume
/// fails with the origin's busy answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_over_its_watermark_serves_a_streams_first_pipe_until_full() {
    // A's single worker: over the watermark at 2 consumers, full at 3.
    let a = origin_carrying(3).await;
    let b = node(Some(&a)).await;
    let c = node(Some(&a)).await;
    let d = node(Some(&a)).await;
    let (a_id, b_id, c_id) = (a.peer_id().to_string(), b.peer_id().to_string(), c.peer_id().to_string());
    let ingest = a.publish_rtp("premiere", vec![opus_track()]).await.expect("publish");
    let sink = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let sink_addr = sink.local_addr().expect("addr");
    for _ in 0..2 {
        a.consume_rtp("premiere", sink_addr).await.expect("a local egress");
    }
    assert!(a.media().is_saturated() && !a.media().is_full(), "a is over its watermark, not full");

    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let first = b.consume_rtp("premiere", receiver.local_addr().expect("addr")).await.expect("b is served by a");
    assert_eq!(first.path, vec![a_id.clone(), b_id.clone()], "the stream's first pipe");
    assert_carried(ingest, &receiver, &first, 5).await;
    assert!(a.media().is_full(), "a's pipe to b fills it");
    let next = c.consume_rtp("premiere", sink_addr).await.expect("c is served");
    assert_eq!(next.path, vec![a_id.clone(), b_id, c_id], "c was sent to the relay b");

    a.publish_rtp("encore", vec![opus_track()]).await.expect("publish");
    let refused = d.consume_rtp("encore", sink_addr).await;
    let Err(NodeError::NoProvider { reasons, .. }) = &refused else {
        panic!("a is full and no relay holds encore: {refused:?}");
    };
    assert!(reasons.contains(&a_id) && reasons.contains("busy"), "{reasons}");
    for node in [d, c, b, a] {
        node.shutdown().await;
    }
}

/// A whole swarm finding a new stream at once dials its origin at once (each
/// find asks it to describe the stream). An origin that caps its incoming
/// connections refuses part of the crowd; it lets go of peers it has no call
/// with while crowded, and the refused finders ask again, so every find
/// succeeds rather than answering "not found" for a stream that exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_finding_a_new_stream_at_once_is_served_by_an_origin_that_caps_connections() {
    const CROWD: usize = 10;
    let seed = node(None).await;
    let origin = node_with(Some(&seed), |config| {
        let limits = &mut config.swarm.connections;
        limits.max_established_incoming = 3;
        limits.max_peers = 2;
        limits.target_peers = 1;
        limits.crowd_peers = 2;
        limits.crowd_idle_after = Duration::from_millis(200);
        limits.idle_peer_after = Duration::from_millis(300);
    })
    .await;
    let mut finders = Vec::new();
    for _ in 0..CROWD {
        // Ten finders share three slots at the origin on a loaded test machine:
        // they may take several rounds of asking again, longer than the default.
        finders.push(node_with(Some(&seed), |config| config.find_deadline = Duration::from_secs(15)).await);
    }
    origin.publish_rtp("premiere", vec![opus_track()]).await.expect("publish at the origin");
    // Announcing dialed every node; the crowd arrives once the origin let them go.
    let settled = eventually(Duration::from_secs(30), || async {
        origin.swarm().connected_peers().await.is_ok_and(|peers| peers.len() <= 2)
    })
    .await;
    assert!(settled, "the origin is down to its maximum of peers");
    // A finder learns that the origin closed their connection a moment after
    // the origin does (later still on a loaded machine), and Kademlia may
    // reconnect a few meanwhile: wait for the finders' own view, in which most
    // of them must dial the origin anew.
    let crowd_outside = eventually(Duration::from_secs(10), || async {
        let mut dialing_in = 0;
        for finder in &finders {
            let peers = finder.swarm().connected_peers().await.unwrap_or_default();
            dialing_in += usize::from(!peers.contains(&origin.peer_id()));
        }
        dialing_in >= CROWD / 2
    })
    .await;
    assert!(crowd_outside, "the crowd dials the origin anew, past its 3 incoming connections");
    let origin_id = origin.peer_id().to_string();
    let finds = futures::future::join_all(finders.iter().map(|finder| finder.find("premiere"))).await;
    let unserved: Vec<(usize, String)> = finds
        .iter()
        .enumerate()
        .filter(|(_, found)| !found.as_ref().is_ok_and(|providers| providers.iter().any(|p| p.peer == origin_id)))
        .map(|(i, found)| (i, format!("{found:?}")))
        .collect();
    assert!(unserved.is_empty(), "every finder finds the origin's stream; these did not: {unserved:?}");
    for node in finders.into_iter().chain([origin, seed]) {
        node.shutdown().await;
    }
}

/// A node pulls more streams from one peer than the per-peer pipe cap once
/// allowed (32), as a node whose room members watch 40 publishers at
/// another node does: every consume is served, and the streams past the old
/// cap carry their RTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_pulls_forty_streams_from_one_peer() {
    let a = node(None).await;
    let b = node(Some(&a)).await;
    let mut ingests = Vec::new();
    for i in 0..40 {
        ingests.push(a.publish_rtp(&format!("many-{i}"), vec![opus_track()]).await.expect("publish"));
    }
    let mut consumed = Vec::new();
    for i in 0..40 {
        let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
        let destination = receiver.local_addr().expect("addr");
        let egress =
            b.consume_rtp(&format!("many-{i}"), destination).await.unwrap_or_else(|e| panic!("stream {i}: {e}"));
        assert_eq!(egress.path.first(), Some(&a.peer_id().to_string()), "stream {i} piped from a");
        consumed.push((receiver, egress));
    }
    let piped_to_b = a.streams().iter().filter(|s| s.downstream.contains(&b.peer_id().to_string())).count();
    assert_eq!(piped_to_b, 40, "a pipes each of the 40 streams to b");
    // All 40 ride one pipe transport pair: a holds its 40 ingests and one pipe.
    assert_eq!((a.pipe_pairs().serving, b.pipe_pairs().asking), (1, 1), "one kept pipe pair");
    assert_eq!(transports_besides_spares(&a), 40 + 1, "40 ingests and one pipe at a");
    for (i, (receiver, egress)) in consumed.iter().enumerate().skip(30) {
        assert_carried(ingests[i], receiver, egress, 5).await;
    }
    for node in [b, a] {
        node.shutdown().await;
    }
}

/// A consume its only provider refuses (here: past that provider's pipes per
/// peer) fails with the provider and its refusal named once each, and the
/// HTTP-facing text says what to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consume_refused_by_its_only_provider_names_it_and_the_refusal_once() {
    let a = node_with(None, |config| config.max_pipes_per_peer = 1).await;
    let b = node(Some(&a)).await;
    for stream in ["first", "second"] {
        a.publish_rtp(stream, vec![opus_track()]).await.expect("publish");
    }
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let destination = receiver.local_addr().expect("addr");
    b.consume_rtp("first", destination).await.expect("the first pipe is within the cap");
    let refused = b.consume_rtp("second", destination).await;
    let Err(error @ NodeError::NoProvider { .. }) = &refused else {
        panic!("the second pipe is over a's cap: {refused:?}");
    };
    let text = error.to_string();
    let a_id = a.peer_id().to_string();
    assert_eq!(text.matches("no provider could serve").count(), 1, "{text}");
    assert_eq!(text.matches(a_id.as_str()).count(), 1, "{text}");
    assert_eq!(text.matches("max_pipes_per_peer").count(), 1, "{text}");
    for node in [b, a] {
        node.shutdown().await;
    }
}
