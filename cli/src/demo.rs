//! `mafalda-node demo`: a local three-node swarm on 127.0.0.1 in a line
//! (A ← B ← C). A generated RTP stream is published at A and taken out at C; the
//! demo prints the path the swarm chose and packet counts each second.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::Context;
use mafalda_media::MediaConfig;
use mafalda_media::mediasoup::prelude::MediaKind;
use mafalda_node::{Codec, Node, NodeConfig, TrackSpec};
use mafalda_swarm::{Keypair, SwarmConfig};
use tokio::net::UdpSocket;

const SSRC: u32 = 0x00de_0001;
const PAYLOAD_TYPE: u8 = 111;
/// Opus-like packets every 20 ms.
const PACKET_INTERVAL: Duration = Duration::from_millis(20);

async fn start_node(name: &str, bootstrap: Option<&Node>) -> anyhow::Result<Node> {
    let mut media = MediaConfig::default();
    media.workers = 1;
    let listen = "/ip4/127.0.0.1/tcp/0".parse().context("listen address")?;
    let mut swarm = SwarmConfig::new(Keypair::generate_ed25519(), vec![listen]);
    if let Some(seed) = bootstrap {
        swarm = swarm.with_bootstrap(seed.listen_addrs().await?);
    }
    let node = Node::start(NodeConfig::new(media, swarm)).await.with_context(|| format!("starting node {name}"))?;
    println!("node {name}: {}", node.peer_id());
    Ok(node)
}

/// One RTP packet with a 20-byte Opus-like payload.
fn rtp_packet(sequence: u16, timestamp: u32) -> Vec<u8> {
    let mut packet = vec![0x80, PAYLOAD_TYPE];
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(&timestamp.to_be_bytes());
    packet.extend_from_slice(&SSRC.to_be_bytes());
    packet.push(0xfc);
    packet.extend((0..19).map(|i| (sequence as u8).wrapping_add(i)));
    packet
}

/// Runs the demo until `stop` resolves (or for `seconds`, if given).
pub(crate) async fn run(
    seconds: Option<u64>,
    stop: impl std::future::Future<Output = &'static str>,
) -> anyhow::Result<()> {
    let a = start_node("A", None).await?;
    let b = start_node("B", Some(&a)).await?;
    let c = start_node("C", Some(&b)).await?;
    let track = TrackSpec { kind: MediaKind::Audio, codec: Codec::Opus, payload_type: PAYLOAD_TYPE, ssrc: SSRC };
    let ingest = a.publish_rtp("demo", vec![track]).await.context("publishing at A")?;
    println!("published stream \"demo\" at A; RTP goes to {ingest}");

    let receiver = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let egress = c.consume_rtp("demo", receiver.local_addr()?).await.context("consuming at C")?;
    let names = |peer: &String| {
        [(&a, "A"), (&b, "B"), (&c, "C")]
            .iter()
            .find(|(node, _)| node.peer_id().to_string() == *peer)
            .map_or("?", |(_, name)| name)
    };
    let path: Vec<&str> = egress.path.iter().map(names).collect();
    println!("taken out at C; the swarm's path: {}", path.join(" -> "));

    let sender = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let send = async {
        let mut tick = tokio::time::interval(PACKET_INTERVAL);
        let mut sent: u64 = 0;
        loop {
            tick.tick().await;
            let packet = rtp_packet(sent as u16, (sent as u32).wrapping_mul(960));
            if sender.send_to(&packet, ingest).await.is_ok() {
                sent += 1;
            }
            SENT.store(sent, std::sync::atomic::Ordering::Relaxed);
        }
    };
    let receive = async {
        let mut buffer = [0u8; 2048];
        loop {
            if let Ok((len, _)) = receiver.recv_from(&mut buffer).await
                && len > 12
                && buffer[1] & 0x7f == egress.tracks[0].payload_type
            {
                RECEIVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    };
    let report = async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            let sent = SENT.load(std::sync::atomic::Ordering::Relaxed);
            let received = RECEIVED.load(std::sync::atomic::Ordering::Relaxed);
            println!("sent {sent} packets into A, received {received} out of C");
        }
    };
    let deadline = async {
        match seconds {
            Some(seconds) => tokio::time::sleep(Duration::from_secs(seconds)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = send => {}
        _ = receive => {}
        _ = report => {}
        _ = deadline => println!("demo done"),
        signal = stop => println!("{signal}: stopping the demo"),
    }
    for node in [c, b, a] {
        node.shutdown().await;
    }
    Ok(())
}

static SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static RECEIVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
