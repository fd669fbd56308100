//! Latency and loss of RTP through 0–3 chained cross-node pipe hops.
//!
//! `cargo bench -p mafalda-tests --bench pipe_hops` builds a chain of independent
//! media engines (as separate nodes would have) joined by SRTP pipe blocks on
//! 127.0.0.1, pushes RTP at a fixed rate into the first and receives it after the
//! last, and prints one-way latency p50/p99 and loss per chain length.

use std::time::{Duration, Instant};

use mafalda_media::mediasoup::prelude::*;
use mafalda_media::pipe;
use mafalda_media::transports::{plain_egress, plain_ingest};
use mafalda_media::{MediaConfig, MediaEngine, consumer_capabilities};
use mafalda_tests::media::{
    LOOPBACK, OPUS_PAYLOAD_TYPE, consumer_ssrc_and_payload_type, opus_producer_parameters, opus_router_options,
};
use mafalda_tests::rtp::{RtpPacket, test_stream};
use tokio::net::UdpSocket;

const PACKETS: u32 = 3000;
const INTERVAL: Duration = Duration::from_millis(2); // 500 packets/s
const SSRC: u32 = 0x0b0b_0b0b;

/// Holds every object of a chain so nothing closes while measuring.
struct Chain {
    engines: Vec<MediaEngine>,
    keep: Vec<Box<dyn std::any::Any + Send>>,
    ingest_addr: std::net::SocketAddr,
    receiver: UdpSocket,
    ssrc: u32,
}

async fn chain(hops: usize) -> Chain {
    let mut engines = Vec::new();
    let mut routers = Vec::new();
    for _ in 0..=hops {
        let mut config = MediaConfig::default();
        config.workers = 1;
        let engine = MediaEngine::start(config).await.expect("engine");
        routers.push(engine.create_router(opus_router_options()).await.expect("router"));
        engines.push(engine);
    }
    let mut keep: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
    let (ingest, ingest_addr) = plain_ingest(&routers[0], LOOPBACK, None).await.expect("ingest");
    let producer =
        ingest.produce(ProducerOptions::new(MediaKind::Audio, opus_producer_parameters(SSRC))).await.expect("produce");
    let mut producer_id = producer.id();
    keep.push(Box::new(ingest));
    keep.push(Box::new(producer));
    for hop in 0..hops {
        let (from, from_end) = pipe::open_pipe(&routers[hop], LOOPBACK, None).await.expect("open");
        let (to, to_end) = pipe::open_pipe(&routers[hop + 1], LOOPBACK, None).await.expect("open");
        pipe::connect_pipe(&from, &to_end).await.expect("connect");
        pipe::connect_pipe(&to, &from_end).await.expect("connect");
        let (consumer, track) = pipe::send_track(&from, producer_id).await.expect("send");
        let piped = pipe::receive_track(&to, &track).await.expect("receive");
        producer_id = piped.id();
        keep.push(Box::new((from, to, consumer, piped)));
    }
    let last = &routers[hops];
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let egress = plain_egress(last, LOOPBACK, receiver.local_addr().expect("addr")).await.expect("egress");
    let consumer = egress
        .consume(ConsumerOptions::new(producer_id, consumer_capabilities(&last.rtp_capabilities())))
        .await
        .expect("consume");
    let (ssrc, _) = consumer_ssrc_and_payload_type(&consumer);
    keep.push(Box::new((egress, consumer)));
    keep.push(Box::new(routers));
    Chain { engines, keep, ingest_addr, receiver, ssrc }
}

fn index_of(packet: &RtpPacket) -> Option<usize> {
    let bytes = packet.payload.get(1..5)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
}

async fn measure(hops: usize) -> (Duration, Duration, u32) {
    let chain = chain(hops).await;
    let packets = test_stream(SSRC, OPUS_PAYLOAD_TYPE, PACKETS);
    let sender = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let mut sent_at = vec![None; packets.len()];
    let mut latencies = Vec::with_capacity(packets.len());
    let receiving = async {
        let mut buffer = vec![0u8; 2048];
        let mut arrivals = Vec::new();
        while let Ok(Ok((len, _))) =
            tokio::time::timeout(Duration::from_secs(2), chain.receiver.recv_from(&mut buffer)).await
        {
            let now = Instant::now();
            if let Ok(packet) = RtpPacket::parse(&buffer[..len])
                && packet.ssrc == chain.ssrc
            {
                arrivals.push((index_of(&packet), now));
            }
        }
        arrivals
    };
    let sending = async {
        let mut tick = tokio::time::interval(INTERVAL);
        for (i, packet) in packets.iter().enumerate() {
            tick.tick().await;
            sent_at[i] = Some(Instant::now());
            sender.send_to(&packet.encode(), chain.ingest_addr).await.expect("send");
        }
    };
    let ((), arrivals) = tokio::join!(sending, receiving);
    for (index, at) in &arrivals {
        if let Some(sent) = index.and_then(|i| sent_at.get(i).copied().flatten()) {
            latencies.push(at.saturating_duration_since(sent));
        }
    }
    latencies.sort();
    let lost = PACKETS.saturating_sub(latencies.len() as u32);
    let at = |p: f64| latencies.get(((latencies.len().max(1) - 1) as f64 * p) as usize).copied().unwrap_or_default();
    let result = (at(0.50), at(0.99), lost);
    drop(chain.keep);
    for engine in chain.engines {
        engine.close().await;
    }
    result
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    runtime.block_on(async {
        let (base50, base99, base_lost) = measure(0).await;
        println!("0 hops (one router): p50 {base50:>9.1?} p99 {base99:>9.1?} lost {base_lost}/{PACKETS}");
        for hops in 1..=3 {
            let (p50, p99, lost) = measure(hops).await;
            let per_hop = p50.saturating_sub(base50) / hops as u32;
            println!(
                "{hops} hop{}: p50 {p50:>9.1?} p99 {p99:>9.1?} lost {lost}/{PACKETS}; added p50 per hop {per_hop:>9.1?}",
                if hops == 1 { " " } else { "s" }
            );
        }
    });
}
