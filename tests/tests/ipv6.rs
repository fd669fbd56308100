//! IPv6 end to end: nodes whose libp2p, pipes and RTP all live on `::1`. A
//! stream published at one end of a line (A ← B ← C) is found and consumed at
//! the other, with real RTP checked at a `[::1]` socket.

use std::net::{IpAddr, Ipv6Addr};

use mafalda_media::mediasoup::prelude::MediaKind;
use mafalda_node::{Codec, Node, TrackSpec};
use mafalda_swarm::{Keypair, Multiaddr, SwarmConfig};
use mafalda_tests::media::OPUS_PAYLOAD_TYPE;
use mafalda_tests::node::node_with;
use mafalda_tests::rtp::assert_carried;
use tokio::net::UdpSocket;

const V6_LOOPBACK: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
const SSRC: u32 = 0x0006_0006;

/// A node on `::1` only (libp2p over TCP, media), joining through `bootstrap`.
async fn v6_node(bootstrap: Option<&Node>) -> Node {
    let bootstrap = match bootstrap {
        Some(seed) => seed.listen_addrs().await.expect("addrs"),
        None => Vec::new(),
    };
    let node = node_with(None, |config| {
        let listen: Multiaddr = "/ip6/::1/tcp/0".parse().expect("multiaddr");
        config.swarm = SwarmConfig::new(Keypair::generate_ed25519(), vec![listen]).with_bootstrap(bootstrap);
        config.media_ip = V6_LOOPBACK;
    })
    .await;
    let addrs = node.listen_addrs().await.expect("addrs");
    assert!(addrs.iter().all(|a| a.to_string().starts_with("/ip6/::1/")), "listening on ::1 only: {addrs:?}");
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_crosses_a_line_of_nodes_on_ipv6_loopback() {
    let a = v6_node(None).await;
    let b = v6_node(Some(&a)).await;
    let c = v6_node(Some(&b)).await;
    let (a_id, c_id) = (a.peer_id().to_string(), c.peer_id().to_string());
    let track = TrackSpec { kind: MediaKind::Audio, codec: Codec::Opus, payload_type: OPUS_PAYLOAD_TYPE, ssrc: SSRC };

    let ingest = a.publish_rtp("six", vec![track]).await.expect("publish at a");
    assert_eq!(ingest.ip(), V6_LOOPBACK, "the ingest listens on ::1: {ingest}");
    let providers = c.find("six").await.expect("find from c");
    assert_eq!(providers.iter().map(|p| p.peer.as_str()).collect::<Vec<_>>(), [a_id.as_str()]);

    let receiver = UdpSocket::bind((V6_LOOPBACK, 0)).await.expect("bind [::1]");
    let egress = c.consume_rtp("six", receiver.local_addr().expect("addr")).await.expect("consume at c");
    assert_eq!(egress.path, vec![a_id, c_id], "piped from the origin to c over ::1");
    let out = &egress.tracks[0];
    assert_carried(ingest, SSRC, &receiver, (out.ssrc, out.payload_type), 200).await;
    for node in [c, b, a] {
        node.shutdown().await;
    }
}
