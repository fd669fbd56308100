//! The node's core path, measured: find latency, and time to first packet when a
//! stream is consumed where it is published versus piped across the swarm.
//!
//! `cargo bench -p mafalda-tests --bench node_paths` starts five nodes in a line
//! (A ← B ← C ← D ← E), publishes at A with RTP flowing every 5 ms, and then, for
//! each other node, times `find` and `consume_rtp` up to the first packet at its
//! socket (each remote consume pipes straight from the cheapest provider).

use std::time::{Duration, Instant};

use mafalda_media::MediaConfig;
use mafalda_media::mediasoup::prelude::MediaKind;
use mafalda_node::{Codec, Node, NodeConfig, TrackSpec};
use mafalda_tests::media::{LOOPBACK, OPUS_PAYLOAD_TYPE};
use mafalda_tests::rtp::test_stream;
use mafalda_tests::swarm::loopback_config;
use tokio::net::UdpSocket;

async fn node(bootstrap: Option<&Node>) -> Node {
    let mut media = MediaConfig::default();
    media.workers = 1;
    let mut swarm = loopback_config();
    if let Some(seed) = bootstrap {
        swarm = swarm.with_bootstrap(seed.listen_addrs().await.expect("addrs"));
    }
    Node::start(NodeConfig::new(media, swarm)).await.expect("start")
}

async fn first_packet(node: &Node, stream: &str) -> (Duration, Vec<String>) {
    let socket = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let started = Instant::now();
    let egress = node.consume_rtp(stream, socket.local_addr().expect("addr")).await.expect("consume");
    let mut buffer = [0u8; 2048];
    tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buffer)).await.expect("a packet").expect("recv");
    (started.elapsed(), egress.path)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    runtime.block_on(async {
        let mut nodes: Vec<Node> = Vec::new();
        for i in 0..5 {
            let next = node(if i == 0 { None } else { Some(&nodes[i - 1]) }).await;
            nodes.push(next);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let track = TrackSpec { kind: MediaKind::Audio, codec: Codec::Opus, payload_type: OPUS_PAYLOAD_TYPE, ssrc: 7 };
        let ingest = nodes[0].publish_rtp("bench", vec![track]).await.expect("publish");
        let sender = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
        let feeding = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            for packet in test_stream(7, OPUS_PAYLOAD_TYPE, 100_000) {
                tick.tick().await;
                let _ = sender.send_to(&packet.encode(), ingest).await;
            }
        });
        let names = ["A", "B", "C", "D", "E"];
        let (local, _) = first_packet(&nodes[0], "bench").await;
        println!("time to first packet, local consume at A: {local:.1?}");
        for (i, node) in nodes.iter().enumerate().skip(1) {
            let started = Instant::now();
            let providers = node.find("bench").await.expect("find");
            let find = started.elapsed();
            let (first, path) = first_packet(node, "bench").await;
            let path: Vec<&str> = path
                .iter()
                .map(|p| nodes.iter().position(|n| n.peer_id().to_string() == *p).map_or("?", |i| names[i]))
                .collect();
            println!(
                "node {}: find {find:>8.1?} ({} providers); time to first packet {first:>8.1?} via {}",
                names[i],
                providers.len(),
                path.join("->")
            );
        }
        feeding.abort();
        for node in nodes.into_iter().rev() {
            node.shutdown().await;
        }
    });
}
