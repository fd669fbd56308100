//! The node's core path, measured: find latency, and time to first packet when a
//! stream is consumed where it is published versus piped across the swarm.
//!
//! `cargo bench -p mafalda-tests --bench node_paths` starts five nodes in a line
//! (A ← B ← C ← D ← E) and, for each of `NODE_PATHS_SAMPLES` (30) streams
//! published at A with RTP flowing every `NODE_PATHS_PACKET_US` (200 µs), times
//! `consume_rtp` up to the arrival at a socket of the stream's first packet
//! (not mediasoup's probation packet): at A itself, then at E, D, C and B (each
//! remote consume pipes from the cheapest provider, which may be a relay made
//! by an earlier one). For every other stream each remote node first `find`s
//! it, as an app using the HTTP API does (the consume then uses what the find
//! learnt; before it, the DHT walk alone is timed, so a find splits into the
//! walk and the describes); for the others it consumes cold (the consume
//! walks the DHT itself). It prints medians of both and their ratios to the local one,
//! per node and over every remote consume, after the median round trip of a ROPE call between two nodes that does no
//! work (the pipe handshake makes one such round trip, with work at both ends).
//!
//! Each stream costs A's single worker five consumers (the local egress and
//! four pipes): past about 60 samples it is over its watermark (300 of 500),
//! and each later stream's first pipe comes from A, the others through that
//! relay (`admission`), so the figures then measure two hops.
//!
//! Each arrival includes the wait for the next packet the source sends once
//! the path is ready: up to one packet interval. At 5 ms (audio every 20 ms
//! is slower still) that wait, not the path, dominated the remote figures;
//! at 1 ms (a tokio interval) it was still up to twice the local path. So
//! the source is a thread of its own that sleeps 200 µs between packets
//! (about 280 µs here, printed), and the figures are the path's within that.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mafalda_media::MediaConfig;
use mafalda_media::mediasoup::prelude::MediaKind;
use mafalda_node::{Codec, Node, NodeConfig, TrackSpec};
use mafalda_swarm::stream_key;
use mafalda_tests::media::{LOOPBACK, OPUS_PAYLOAD_TYPE};
use mafalda_tests::rtp::{RtpPacket, test_packets, test_payload_index};
use mafalda_tests::swarm::loopback_config;
use tokio::net::UdpSocket;

async fn node(bootstrap: Option<&Node>) -> Node {
    let mut media = MediaConfig::default();
    media.workers = 1;
    // Settled nodes (in the swarm for longer than the republish interval)
    // answer lookups from their own store; the run lasts about a minute.
    let mut kad = mafalda_swarm::KadSettings::default();
    kad.own_store_after = Duration::ZERO;
    let mut swarm = loopback_config().with_kad(kad);
    if let Some(seed) = bootstrap {
        swarm = swarm.with_bootstrap(seed.listen_addrs().await.expect("addrs"));
    }
    Node::start(NodeConfig::new(media, swarm)).await.expect("start")
}

/// From the `consume_rtp` call to the arrival at the socket of the stream's
/// first packet (read while the call runs: a relay's consume answers once
/// its provider record is out, which packets do not wait for), and the path;
/// the egress is stopped once its first packet came.
/// Only the stream's packets count: mediasoup sends a bandwidth-probation
/// packet of its own as soon as a consumer exists, before any of the
/// stream's packets can reach it.
async fn first_packet(node: &Node, stream: &str) -> (Duration, Vec<String>) {
    let socket = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let destination = socket.local_addr().expect("addr");
    let started = Instant::now();
    let arrival = async {
        let mut buffer = [0u8; 2048];
        loop {
            let (len, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buffer))
                .await
                .expect("a packet")
                .expect("recv");
            let packet = RtpPacket::parse(&buffer[..len]);
            if packet.is_ok_and(|packet| test_payload_index(&packet.payload).is_some()) {
                return started.elapsed();
            }
        }
    };
    let (egress, first) = tokio::join!(node.consume_rtp(stream, destination), arrival);
    let egress = egress.expect("consume");
    // Timed: stopped, so that it does not load the consumes timed after it
    // (every consume then runs with the same work around it: the source and
    // the pipes to the relays, which stay for the nodes after it).
    node.stop_egress(&egress.id).expect("stop the egress");
    (first, egress.path)
}

/// A ROPE call that does no work at the callee (stats of an unknown stream):
/// what two transits between nodes cost, the pipe handshake's largest stage.
async fn rope_round_trip(caller: &Node, callee: &Node) -> Duration {
    let params = mafalda_rope::Value::serialized(&serde_json::json!({ "stream": "no-such-stream" })).expect("params");
    let mut samples = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let answer = caller.swarm().call(callee.peer_id(), "stream.stats", None, params.clone()).await;
        samples.push(started.elapsed());
        assert!(answer.is_err(), "an unknown stream has no stats");
    }
    median(&mut samples)
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
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
        println!("ROPE call round trip B -> A (an unknown stream's stats): median {:.1?} over 200", rope_round_trip(&nodes[1], &nodes[0]).await);
        let names = ["A", "B", "C", "D", "E"];
        let name_of = |peer: &str| nodes.iter().position(|n| n.peer_id().to_string() == peer).map_or("?", |i| names[i]);
        let samples: usize = std::env::var("NODE_PATHS_SAMPLES").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
        let packet_us: u64 = std::env::var("NODE_PATHS_PACKET_US").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
        let packet_interval = Duration::from_micros(packet_us);
        let sent_at: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let mut gaps = Vec::new();
        let mut local = Vec::new();
        let mut remote: Vec<Vec<Duration>> = vec![Vec::new(); nodes.len()];
        let mut cold: Vec<Vec<Duration>> = vec![Vec::new(); nodes.len()];
        let mut finds: Vec<Vec<Duration>> = vec![Vec::new(); nodes.len()];
        let mut walks: Vec<Vec<Duration>> = vec![Vec::new(); nodes.len()];
        for sample in 0..samples {
            // A stream per sample, so every remote consume pipes it anew.
            let stream = format!("bench-{sample}");
            let ssrc = 7 + u32::try_from(sample).expect("few samples");
            let track = TrackSpec { kind: MediaKind::Audio, codec: Codec::Opus, payload_type: OPUS_PAYLOAD_TYPE, ssrc };
            let ingest = nodes[0].publish_rtp(&stream, vec![track]).await.expect("publish");
            let sender = std::net::UdpSocket::bind((LOOPBACK, 0)).expect("bind");
            let stop = Arc::new(AtomicBool::new(false));
            let feeder = {
                let (stop, sent_at) = (Arc::clone(&stop), Arc::clone(&sent_at));
                // A thread of its own: tokio's timers tick in whole milliseconds.
                std::thread::spawn(move || {
                    // Made one at a time: building a sample's 100,000 up front took
                    // a seventh of the run's CPU.
                    for packet in test_packets(ssrc, OPUS_PAYLOAD_TYPE) {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let _ = sender.send_to(&packet.encode(), ingest);
                        sent_at.lock().expect("sent_at").push(Instant::now());
                        std::thread::sleep(packet_interval);
                    }
                })
            };
            // Timed once packets flow, like every remote consume after it.
            tokio::time::sleep(Duration::from_millis(200)).await;
            local.push(first_packet(&nodes[0], &stream).await.0);
            // Consumed from the far end first, so nearer nodes may use the relays it made.
            let after_a_find = sample % 2 == 0;
            for (i, node) in nodes.iter().enumerate().skip(1).rev() {
                if after_a_find {
                    // The DHT walk alone, then the node's find (a walk, then
                    // each provider asked to describe the stream).
                    let started = Instant::now();
                    node.swarm().find_providers(stream_key(&stream), Duration::from_secs(5)).await.expect("walk");
                    walks[i].push(started.elapsed());
                    let started = Instant::now();
                    node.find(&stream).await.expect("find");
                    finds[i].push(started.elapsed());
                }
                let (first, path) = first_packet(node, &stream).await;
                if after_a_find { remote[i].push(first) } else { cold[i].push(first) }
                if sample == 0 {
                    let path: Vec<&str> = path.iter().map(|p| name_of(p)).collect();
                    println!("node {}: first path {}", names[i], path.join("->"));
                }
            }
            // Stopped once timed: earlier streams must not load the later samples.
            stop.store(true, Ordering::Relaxed);
            feeder.join().expect("feeder");
            let mut sent_at = sent_at.lock().expect("sent_at");
            gaps.extend(sent_at.windows(2).map(|pair| pair[1] - pair[0]));
            sent_at.clear();
        }
        println!(
            "RTP every {packet_us} µs asked, {:.1?} sent (median): each first packet may wait up to that long at the origin",
            median(&mut gaps)
        );
        let local_median = median(&mut local);
        println!("time to first packet, local consume at A: median {local_median:.1?} over {samples} streams");
        let ratio = |d: Duration| d.as_secs_f64() / local_median.as_secs_f64().max(1e-6);
        let mut ratios = Vec::new();
        for i in 1..nodes.len() {
            let (first, cold_first, find) = (median(&mut remote[i]), median(&mut cold[i]), median(&mut finds[i]));
            let walk = median(&mut walks[i]);
            println!(
                "node {}: find median {find:>8.1?} (DHT walk alone {walk:>8.1?}); first packet after a find {first:>8.1?} ({:.1}x local), cold {cold_first:>8.1?} ({:.1}x local)",
                names[i],
                ratio(first),
                ratio(cold_first)
            );
            ratios.push((ratio(first), ratio(cold_first)));
        }
        // Every remote consume pooled, and the worst node's median: with few
        // samples per node the worst of four medians is partly noise.
        let mut all_after: Vec<Duration> = remote.iter().flatten().copied().collect();
        let mut all_cold: Vec<Duration> = cold.iter().flatten().copied().collect();
        let (all_after, all_cold) = (median(&mut all_after), median(&mut all_cold));
        let worst = ratios.iter().fold((0.0f64, 0.0f64), |w, r| (w.0.max(r.0), w.1.max(r.1)));
        println!(
            "time-to-first-packet ratio (remote / local): every remote consume {:.1}x after a find ({all_after:.1?}), {:.1}x cold ({all_cold:.1?}); worst node {:.1}x after a find, {:.1}x cold",
            ratio(all_after),
            ratio(all_cold),
            worst.0,
            worst.1
        );
        for node in nodes.into_iter().rev() {
            node.shutdown().await;
        }
    });
}
