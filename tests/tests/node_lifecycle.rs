//! Resources that end: relays let go of streams nobody consumes, pipes to
//! peers that leave close. Real nodes, real mediasoup, real RTP on 127.0.0.1.

use std::time::Duration;

use mafalda_media::mediasoup::prelude::MediaKind;
use mafalda_media::running_worker_threads;
use mafalda_node::{Codec, Node, NodeConfig, TrackSpec};
use mafalda_tests::media::{LOOPBACK, OPUS_PAYLOAD_TYPE};
use mafalda_tests::node::{node_with, transports_besides_spares};
use mafalda_tests::swarm::eventually;
use tokio::net::UdpSocket;

const LINGER: Duration = Duration::from_secs(1);

fn short_linger(config: &mut NodeConfig) {
    config.relay_linger = LINGER;
}

fn opus_track(ssrc: u32) -> TrackSpec {
    TrackSpec { kind: MediaKind::Audio, codec: Codec::Opus, payload_type: OPUS_PAYLOAD_TYPE, ssrc }
}

/// Transports and consumers on all of a node's workers, besides the spare
/// pipe transports it keeps ready for the next pipe it serves.
fn objects(node: &Node) -> (u32, u32) {
    let consumers = node.media().status().iter().map(|w| w.objects.consumers).sum();
    (transports_besides_spares(node), consumers)
}

/// Provider records that live 8 s (re-announced every 4 s), so their end shows in a test.
const PROVIDER_TTL: Duration = Duration::from_secs(8);

fn short_linger_and_ttl(config: &mut NodeConfig) {
    short_linger(config);
    let mut kad = mafalda_swarm::KadSettings::default();
    kad.provider_ttl = PROVIDER_TTL;
    kad.provider_republish = PROVIDER_TTL / 2;
    config.swarm = config.swarm.clone().with_kad(kad);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_let_go_of_streams_nobody_consumes_and_everything_returns_to_baseline() {
    let a = node_with(None, short_linger_and_ttl).await;
    let b = node_with(Some(&a), short_linger_and_ttl).await;
    let c = node_with(Some(&b), short_linger_and_ttl).await;
    const STREAMS: u32 = 50;
    for i in 0..STREAMS {
        a.publish_rtp(&format!("s{i}"), vec![opus_track(1000 + i)]).await.expect("publish");
    }
    let baseline = [objects(&a), objects(&b), objects(&c)];

    // Consumed at b and c (the delivery itself is node_streams' business).
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let to = receiver.local_addr().expect("addr");
    let mut egresses = Vec::new();
    for i in 0..STREAMS {
        let at = if i % 2 == 0 { &b } else { &c };
        egresses.push((at, at.consume_rtp(&format!("s{i}"), to).await.expect("consume")));
    }
    assert_eq!(b.streams().len() + c.streams().len(), STREAMS as usize, "each consumer node relays its streams");
    assert!(a.streams().iter().all(|s| s.downstream.len() == 1 && s.local_consumers == 1), "{:?}", a.streams()[0]);

    // A consumer that comes back within the linger reuses the pipe.
    let (node, first) = &egresses[0];
    node.stop_egress(&first.id).expect("stop");
    let pipes_at_a = objects(&a).0;
    let again = node.consume_rtp("s0", to).await.expect("consume again");
    assert_eq!(again.path, first.path);
    assert_eq!(objects(&a).0, pipes_at_a, "no new pipe for a consumer back within the linger");
    egresses[0].1 = again;

    for (node, egress) in &egresses {
        node.stop_egress(&egress.id).expect("stop");
    }
    let back = eventually(LINGER * 6, || async {
        [objects(&a), objects(&b), objects(&c)] == baseline && b.streams().is_empty() && c.streams().is_empty()
    })
    .await;
    assert!(
        back,
        "not back to baseline: {:?} vs {baseline:?}; b holds {}, c holds {}",
        [objects(&a), objects(&b), objects(&c)],
        b.streams().len(),
        c.streams().len()
    );
    assert!(a.streams().iter().all(|s| s.downstream.is_empty() && s.local_consumers == 0), "a still pipes");
    // The origin keeps one spare pipe transport (one router, streams still
    // published); the relays, holding nothing now, keep none.
    assert_eq!((a.spare_pipes(), b.spare_pipes(), c.spare_pipes()), (1, 0, 0), "spares");
    // Only the origin provides the streams now: the relays answer no more,
    // and once the provider TTL has passed no record names them either.
    let found = c.find_stream("s1").await.expect("find");
    assert_eq!(found.providers.iter().map(|p| p.peer.clone()).collect::<Vec<_>>(), vec![a.peer_id().to_string()]);
    let records_gone = eventually(PROVIDER_TTL * 2, || async {
        let mut only_origin = true;
        for i in [0, 1, 25, 48, 49] {
            let key = mafalda_swarm::stream_key(&format!("s{i}"));
            let providers = a.swarm().find_providers(key, Duration::from_secs(2)).await.expect("lookup");
            only_origin &= providers == vec![a.peer_id()];
        }
        only_origin
    })
    .await;
    assert!(records_gone, "provider records still name a relay after the provider TTL");
    for node in [c, b, a] {
        node.shutdown().await;
    }
}

/// Receives the test payloads arriving at `receiver` (any SSRC) until
/// nothing comes for `idle`: each distinct payload index once, with the
/// arrival time of its first copy.
async fn arrivals(receiver: &UdpSocket, idle: Duration) -> Vec<(u32, std::time::Instant)> {
    let mut seen = std::collections::HashSet::new();
    let mut arrivals = Vec::new();
    let mut buffer = vec![0u8; 2048];
    while let Ok(Ok((len, _))) = tokio::time::timeout(idle, receiver.recv_from(&mut buffer)).await {
        if let Ok(packet) = mafalda_tests::rtp::RtpPacket::parse(&buffer[..len])
            && packet.payload.len() == 120
            && packet.payload[0] == 0xfc
        {
            let index =
                u32::from_be_bytes([packet.payload[1], packet.payload[2], packet.payload[3], packet.payload[4]]);
            if seen.insert(index) {
                arrivals.push((index, std::time::Instant::now()));
            }
        }
    }
    arrivals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_relay_moves_its_consumers_without_losing_a_packet() {
    // a → b → c (c is told a is far, so it pulls through b); b drains.
    let a = node_with(None, short_linger).await;
    let b = node_with(Some(&a), short_linger).await;
    let a_peer = a.peer_id();
    let c = node_with(Some(&b), |config| {
        config.link_delay.insert(a_peer, Duration::from_millis(80));
    })
    .await;
    let (a_id, b_id, c_id) = (a.peer_id().to_string(), b.peer_id().to_string(), c.peer_id().to_string());
    let ingest = a.publish_rtp("talk", vec![opus_track(77)]).await.expect("publish");
    let b_sink = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    b.consume_rtp("talk", b_sink.local_addr().expect("addr")).await.expect("b relays");
    assert!(mafalda_tests::node::finds_provider(&c, "talk", &b).await, "c learnt that b relays the stream");
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let egress = c.consume_rtp("talk", receiver.local_addr().expect("addr")).await.expect("consume at c");
    assert_eq!(egress.path, vec![a_id.clone(), b_id.clone(), c_id.clone()], "c pulls through b");

    // 50 packets/s for 5 s; b drains after 2 s.
    let mut b_events = b.subscribe();
    let sender = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let packets = mafalda_tests::rtp::test_stream(77, OPUS_PAYLOAD_TYPE, 250);
    let sending = mafalda_tests::rtp::send_paced(&sender, ingest, &packets, Duration::from_millis(20));
    let draining = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let drain = b.drain();
        // Not ready from the first moment.
        assert!(b.is_draining(), "b says it drains as soon as the drain starts");
        drain.await
    };
    let ((), report, arrived) = tokio::join!(sending, draining, arrivals(&receiver, Duration::from_secs(2)));
    let lost: Vec<u32> = (0..250).filter(|i| !arrived.iter().any(|(index, _)| index == i)).collect();
    let gap = arrived.windows(2).map(|w| w[1].1 - w[0].1).max().expect("packets arrived");
    println!("drain: {report:?}; {} of 250 packets, largest gap {gap:?}", arrived.len());
    assert!(lost.is_empty(), "packets lost while b drained: {lost:?}");
    assert!(gap <= Duration::from_millis(100), "largest gap {gap:?}");
    assert_eq!((report.moved, report.not_moved), (1, 0), "{report:?}");
    let streams = c.streams();
    assert_eq!(streams[0].upstream.as_deref(), Some(a_id.as_str()), "c moved to a");
    assert!(b.streams().is_empty(), "b holds nothing after its drain");
    assert!(matches!(b_events.try_recv(), Ok(mafalda_node::NodeEvent::Draining)), "b's apps were told first");
    // New pipe requests to a drained node are answered busy, not served.
    let d = node_with(Some(&b), |_| {}).await;
    let refused = d.consume_rtp(&format!("talk@{a_id}"), b_sink.local_addr().expect("addr")).await;
    assert!(refused.is_ok(), "a newcomer is served by another provider: {refused:?}");
    assert!(!d.streams()[0].path.contains(&b_id), "never through the drained node");
    for node in [d, c, b, a] {
        node.shutdown().await;
    }
}

/// An iptables rule on this host, removed when dropped (also when the test fails).
struct DropRule(Vec<String>);

impl DropRule {
    /// Drops UDP from source ports `from` to destination ports `to` on loopback.
    fn udp(from: &std::ops::RangeInclusive<u16>, to: &std::ops::RangeInclusive<u16>) -> Self {
        let rule: Vec<String> = [
            "INPUT",
            "-i",
            "lo",
            "-p",
            "udp",
            "--sport",
            &format!("{}:{}", from.start(), from.end()),
            "--dport",
            &format!("{}:{}", to.start(), to.end()),
            "-j",
            "DROP",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        let status = std::process::Command::new("iptables").arg("-I").args(&rule).status();
        assert!(status.is_ok_and(|s| s.success()), "this test needs root and iptables (scripts/setup.sh installs it)");
        Self(rule)
    }
}

impl Drop for DropRule {
    fn drop(&mut self) {
        let _ = std::process::Command::new("iptables").arg("-D").args(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_whose_upstream_stops_delivering_while_connected_moves_within_three_seconds() {
    // Each node's media on its own port range, so a firewall rule can cut
    // b's pipe to c alone while libp2p (TCP) stays up between them.
    let ports = |start: u16| start..=start + 199;
    let (a_ports, b_ports, c_ports) = (ports(41000), ports(41200), ports(41400));
    let a = node_with(None, |config| config.media.rtc_ports = a_ports.clone()).await;
    let b = node_with(Some(&a), |config| config.media.rtc_ports = b_ports.clone()).await;
    let a_peer = a.peer_id();
    let c = node_with(Some(&b), |config| {
        config.media.rtc_ports = c_ports.clone();
        config.link_delay.insert(a_peer, Duration::from_millis(80));
    })
    .await;
    let (a_id, b_id) = (a.peer_id().to_string(), b.peer_id().to_string());
    let ingest = a.publish_rtp("feed", vec![opus_track(88)]).await.expect("publish");
    let b_sink = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    b.consume_rtp("feed", b_sink.local_addr().expect("addr")).await.expect("b relays");
    assert!(mafalda_tests::node::finds_provider(&c, "feed", &b).await, "c learnt that b relays the stream");
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let egress = c.consume_rtp("feed", receiver.local_addr().expect("addr")).await.expect("consume at c");
    assert_eq!(egress.path[..2], [a_id.clone(), b_id.clone()], "c pulls through b");

    let mut c_events = c.subscribe();
    let sender = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let packets = mafalda_tests::rtp::test_stream(88, OPUS_PAYLOAD_TYPE, 400);
    let sending = mafalda_tests::rtp::send_paced(&sender, ingest, &packets, Duration::from_millis(20));
    let cutting = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        DropRule::udp(&b_ports, &c_ports)
    };
    let ((), rule, arrived) = tokio::join!(sending, cutting, arrivals(&receiver, Duration::from_secs(4)));
    drop(rule);
    let gap = arrived.windows(2).map(|w| w[1].1 - w[0].1).max().expect("packets arrived");
    let last = arrived.iter().map(|(index, _)| *index).max().unwrap_or(0);
    println!("silent upstream: {} of 400 packets, largest gap {gap:?}, last index {last}", arrived.len());
    assert!(gap < Duration::from_secs(3), "c resumed within 3 s (gap {gap:?})");
    assert!(last >= 390, "c receives again after the cut (last packet {last})");
    assert_eq!(c.streams()[0].upstream.as_deref(), Some(a_id.as_str()), "c moved away from b");
    let mut told = false;
    while let Ok(event) = c_events.try_recv() {
        told |= matches!(event, mafalda_node::NodeEvent::StreamSilent { ref upstream, .. } if *upstream == b_id);
    }
    assert!(told, "c's apps were told the stream went silent");
    for node in [c, b, a] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_retired_under_a_relay_closes_and_downstream_keeps_receiving() {
    let a = node_with(None, |_| {}).await;
    let b = node_with(Some(&a), |config| config.media.workers = 2).await;
    let a_peer = a.peer_id();
    let c = node_with(Some(&b), |config| {
        config.link_delay.insert(a_peer, Duration::from_millis(80));
    })
    .await;
    let b_id = b.peer_id().to_string();
    let ingest = a.publish_rtp("cam", vec![opus_track(99)]).await.expect("publish");
    let b_sink = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    b.consume_rtp("cam", b_sink.local_addr().expect("addr")).await.expect("b relays");
    assert!(mafalda_tests::node::finds_provider(&c, "cam", &b).await, "c learnt that b relays the stream");
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let egress = c.consume_rtp("cam", receiver.local_addr().expect("addr")).await.expect("consume at c");
    assert_eq!(egress.path[1], b_id, "c pulls through b");
    // The worker under b's relayed producers.
    let under = b.media().status().into_iter().find(|w| w.objects.producers > 0).expect("a worker with producers").id;

    let sender = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let packets = mafalda_tests::rtp::test_stream(99, OPUS_PAYLOAD_TYPE, 200);
    let sending = mafalda_tests::rtp::send_paced(&sender, ingest, &packets, Duration::from_millis(20));
    let retiring = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        // What flows is counted: b's pipe to c sent, c's stream received, c's egress sent.
        let (b_traffic, c_traffic) = (b.traffic().await, c.traffic().await);
        assert!(b_traffic.pipes.len() == 1 && b_traffic.pipes[0].packets > 10, "{b_traffic:?}");
        assert!(c_traffic.streams[0].packets > 10 && c_traffic.egresses[0].packets > 10, "{c_traffic:?}");
        b.retire_worker(under).await.expect("retire")
    };
    let ((), moved, arrived) = tokio::join!(sending, retiring, arrivals(&receiver, Duration::from_secs(2)));
    let gap = arrived.windows(2).map(|w| w[1].1 - w[0].1).max().expect("packets arrived");
    let lost = 200 - arrived.len();
    println!(
        "retired worker under a relay: moved {moved:?}; {} of 200 packets at c, largest gap {gap:?}",
        arrived.len()
    );
    assert_eq!(moved.0, 1, "b's relayed stream moved");
    assert!(gap < Duration::from_secs(2), "c resumed within 2 s (gap {gap:?})");
    assert!(lost <= 2, "{lost} packets lost");
    assert_eq!(c.streams()[0].upstream.as_deref(), Some(b_id.as_str()), "c still pulls from b");
    let closed =
        eventually(Duration::from_secs(10), || async { b.media().status().iter().all(|w| w.id != under) }).await;
    assert!(closed, "the retired worker closed once empty");
    assert!(matches!(b.retire_worker(under).await, Err(mafalda_node::NodeError::NotFound(_))));
    for node in [c, b, a] {
        node.shutdown().await;
    }
}

/// A stopped node's mediasoup workers have exited when `shutdown` returns,
/// though its handle is still held (the binary's API keeps one until the
/// process exits): a worker thread still running at `exit()` races the C++
/// destructors exit runs, and the process died of SIGSEGV after SIGINT.
/// The node's own routers (its spanning router's, a pipe's, an egress's) are
/// what kept them alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_leaves_no_mediasoup_worker_running() {
    let a = node_with(None, |_| {}).await;
    let b = node_with(Some(&a), |_| {}).await;
    a.publish_rtp("cam", vec![opus_track(1234)]).await.expect("publish");
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let egress = b.consume_rtp("cam", receiver.local_addr().expect("addr")).await.expect("consume");
    assert_eq!(egress.path.len(), 2, "piped from a: {:?}", egress.path);
    assert!(running_worker_threads() >= 2, "each node runs a worker");
    b.shutdown().await;
    a.shutdown().await;
    assert_eq!(running_worker_threads(), 0, "worker threads still running after both nodes stopped");
}
