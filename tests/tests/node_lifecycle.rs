//! Resources that end: relays let go of streams nobody consumes, pipes to
//! peers that leave close. Real nodes, real mediasoup, real RTP on 127.0.0.1.

use std::time::Duration;

use mafalda_media::mediasoup::prelude::MediaKind;
use mafalda_node::{Codec, Node, NodeConfig, TrackSpec};
use mafalda_tests::media::{LOOPBACK, OPUS_PAYLOAD_TYPE};
use mafalda_tests::node::node_with;
use mafalda_tests::swarm::eventually;
use tokio::net::UdpSocket;

const LINGER: Duration = Duration::from_secs(1);

fn short_linger(config: &mut NodeConfig) {
    config.relay_linger = LINGER;
}

fn opus_track(ssrc: u32) -> TrackSpec {
    TrackSpec { kind: MediaKind::Audio, codec: Codec::Opus, payload_type: OPUS_PAYLOAD_TYPE, ssrc }
}

/// Transports and consumers on all of a node's workers.
fn objects(node: &Node) -> (u32, u32) {
    node.media().status().iter().fold((0, 0), |(t, c), w| (t + w.objects.transports, c + w.objects.consumers))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_let_go_of_streams_nobody_consumes_and_everything_returns_to_baseline() {
    let a = node_with(None, short_linger).await;
    let b = node_with(Some(&a), short_linger).await;
    let c = node_with(Some(&b), short_linger).await;
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
    // Only the origin provides the streams now.
    let found = c.find_stream("s1").await.expect("find");
    assert_eq!(found.providers.iter().map(|p| p.peer.clone()).collect::<Vec<_>>(), vec![a.peer_id().to_string()]);
    for node in [c, b, a] {
        node.shutdown().await;
    }
}
