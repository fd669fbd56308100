//! Nodes with several mediasoup workers, through the node's own API
//! (`Node::publish_rtp`, `Node::consume_rtp`, `Node::stop_egress`): consumers
//! overflow onto other workers through one pipe each, a worker emptied by its
//! consumers leaving is closed after its grace while the node keeps serving,
//! and 1,500 consumers of one stream spread over four workers all get RTP.
//! Real workers, real RTP checked at receiving UDP sockets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mafalda_media::mediasoup::prelude::MediaKind;
use mafalda_media::mediasoup::worker::WorkerId;
use mafalda_media::{MediaEvent, PlacementPolicy};
use mafalda_node::{Codec, Egress, Node, TrackSpec};
use mafalda_tests::media::{LOOPBACK, OPUS_PAYLOAD_TYPE};
use mafalda_tests::node::{node_with, transports_besides_spares};
use mafalda_tests::rtp::{RtpPacket, assert_delivered, receive_rtp, send_paced, test_stream};
use tokio::net::UdpSocket;

const SSRC: u32 = 0x0bad_cafe;

fn opus_track(ssrc: u32) -> TrackSpec {
    TrackSpec { kind: MediaKind::Audio, codec: Codec::Opus, payload_type: OPUS_PAYLOAD_TYPE, ssrc }
}

fn placement(consumer_capacity: u32) -> PlacementPolicy {
    let mut policy = PlacementPolicy::default();
    policy.consumer_capacity = consumer_capacity;
    policy
}

/// Sends a short stream from `sender` into `ingest` and checks that every
/// `(egress, socket)` gets all of it. A publication takes RTP from its first
/// sender's address only, so each publication keeps its sender.
/// Successive calls on one publication continue one sequence of `packets`: a
/// sequence number jump makes mediasoup drop packets while it re-syncs.
async fn check_delivery(
    sender: &UdpSocket,
    ingest: SocketAddr,
    packets: &[RtpPacket],
    receivers: &[(&Egress, &UdpSocket)],
) {
    let receiving = futures::future::join_all(
        receivers
            .iter()
            .map(|(egress, socket)| receive_rtp(socket, egress.tracks[0].ssrc, packets.len(), Duration::from_secs(3))),
    );
    let ((), received) = tokio::join!(send_paced(sender, ingest, packets, Duration::from_millis(2)), receiving);
    for ((egress, _), got) in receivers.iter().zip(&received) {
        assert_delivered(packets, got, egress.tracks[0].payload_type, egress.tracks[0].ssrc);
    }
}

/// Waits for the pool to report `worker` closed (not died).
async fn closed(
    events: &mut tokio::sync::broadcast::Receiver<MediaEvent>,
    worker: WorkerId,
    deadline: Duration,
) -> bool {
    tokio::time::timeout(deadline, async {
        loop {
            match events.recv().await {
                Ok(MediaEvent::WorkerGone { worker: gone, died: false, .. }) if gone == worker => return true,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return false,
            }
        }
    })
    .await
    .unwrap_or(false)
}

/// A second worker used for overflow closes once its consumers have left and
/// its grace has passed, with nothing but the node's own periodic reap; the
/// node goes on publishing and consuming, on new workers as needed, and lets
/// go of its ingest router too when nothing is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_worker_closes_after_its_grace_and_the_node_keeps_serving() {
    // Capacity 1 at watermark 0.6: a worker with one consumer is full.
    let node = node_with(None, |config| {
        config.media.workers = 2;
        config.media.idle_grace = Duration::from_secs(1);
        config.media.placement = placement(1);
    })
    .await;
    let mut events = node.media().events();
    let home = node.media().workers()[0].id();
    let ingest = node.publish_rtp("talk", vec![opus_track(SSRC)]).await.expect("publish");
    let (first_socket, second_socket) = (bind().await, bind().await);
    let first = node.consume_rtp("talk", addr(&first_socket)).await.expect("first egress, on the home worker");
    let second = node.consume_rtp("talk", addr(&second_socket)).await.expect("second egress, overflowing");
    let status = node.media().status();
    assert_eq!(status.len(), 2, "the overflow started a second worker: {status:?}");
    let other = status.iter().find(|w| w.id != home).expect("the second worker");
    assert_eq!(
        (other.objects.producers, other.objects.consumers, other.objects.transports),
        (1, 1, 2),
        "the second worker holds the pipe producer, one consumer, its egress and the pipe end"
    );
    let other = other.id;
    let sender = bind().await;
    let stream = test_stream(SSRC, OPUS_PAYLOAD_TYPE, 120);
    check_delivery(&sender, ingest, &stream[..60], &[(&first, &first_socket), (&second, &second_socket)]).await;

    // The overflow consumer leaves: pipe, router and then the worker go.
    node.stop_egress(&second.id).expect("stop the overflow egress");
    let started = Instant::now();
    assert!(closed(&mut events, other, Duration::from_secs(20)).await, "the emptied worker was closed");
    eprintln!("worker closed {:?} after its last consumer left (grace 1 s, reap every 2 s)", started.elapsed());
    let status = node.media().status();
    assert_eq!(status.iter().map(|w| w.id).collect::<Vec<_>>(), vec![home], "the minimum (home) worker is kept");
    assert_eq!(
        (status[0].objects.producers, status[0].objects.consumers, status[0].objects.transports),
        (1, 1, 2),
        "home is back to ingest + one egress: the pipe's home end is gone too"
    );

    // The node still serves: the first egress still gets RTP, and a new
    // overflow consumer gets a new worker and a new pipe.
    let third_socket = bind().await;
    let third = node.consume_rtp("talk", addr(&third_socket)).await.expect("third egress, on a new worker");
    assert_eq!(node.media().workers().len(), 2, "a worker was started again");
    check_delivery(&sender, ingest, &stream[60..], &[(&first, &first_socket), (&third, &third_socket)]).await;

    // With nothing published and nobody consuming, even the ingest router goes;
    // a new publication gets one again and is consumed across both workers.
    node.stop_egress(&first.id).expect("stop");
    node.stop_egress(&third.id).expect("stop");
    node.unpublish("talk").await.expect("unpublish");
    let routers = |node: &Node| node.media().status().iter().map(|w| w.objects.routers).sum::<u32>();
    let emptied = mafalda_tests::swarm::eventually(Duration::from_secs(20), || async {
        routers(&node) == 0 && node.media().workers().len() == 1
    })
    .await;
    assert!(emptied, "no router is left and one worker is: {:?}", node.media().status());
    let ingest = node.publish_rtp("talk-2", vec![opus_track(SSRC + 1)]).await.expect("publish again");
    let (a, b) = (bind().await, bind().await);
    let again = [
        node.consume_rtp("talk-2", addr(&a)).await.expect("consume again"),
        node.consume_rtp("talk-2", addr(&b)).await.expect("consume again, overflowing"),
    ];
    assert_eq!(node.media().workers().len(), 2);
    let stream = test_stream(SSRC + 1, OPUS_PAYLOAD_TYPE, 60);
    check_delivery(&bind().await, ingest, &stream, &[(&again[0], &a), (&again[1], &b)]).await;
    node.shutdown().await;
}

/// A provider whose streams live on two workers keeps a pipe pair with its
/// consumer on each (a transport belongs to one router): the consumer quotes
/// both pairs' ends, and each stream rides the pair on its own router, with
/// no transport opened and no extra round trip once both exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_with_streams_on_two_workers_keeps_a_pair_on_each() {
    // Capacity 3 at watermark 0.6: a publication goes to the first worker
    // under its watermark, so two streams piped to b fill the first worker
    // and the next two go to the second.
    let a = node_with(None, |config| {
        config.media.workers = 2;
        config.media.placement = placement(3);
    })
    .await;
    let b = node_with(Some(&a), |_| {}).await;
    let mut consumed = Vec::new();
    let expected_pairs = [1, 1, 2, 2];
    for i in 0..4u32 {
        let stream = format!("split-{i}");
        let ingest = a.publish_rtp(&stream, vec![opus_track(SSRC + i)]).await.expect("publish");
        let socket = bind().await;
        let egress = b.consume_rtp(&stream, addr(&socket)).await.expect("consume at b");
        consumed.push((ingest, socket, egress));
        let pairs = expected_pairs[i as usize];
        assert_eq!((a.pipe_pairs().serving, b.pipe_pairs().asking), (pairs, pairs), "after stream {i}");
    }
    let homes = a.media().status().iter().filter(|w| w.objects.producers == 2).count();
    assert_eq!(homes, 2, "two publications on each of a's workers: {:?}", a.media().status());
    assert_eq!(transports_besides_spares(&a), 4 + 2, "four ingests and two pipe ends at a");
    for (i, (ingest, socket, egress)) in consumed.iter().enumerate() {
        let ssrc = SSRC + u32::try_from(i).expect("small");
        let packets = test_stream(ssrc, OPUS_PAYLOAD_TYPE, 30);
        check_delivery(&bind().await, *ingest, &packets, &[(egress, socket)]).await;
    }
    for node in [b, a] {
        node.shutdown().await;
    }
}

/// 1,500 consumers of one stream on a four-worker node spread over all four
/// workers, the stream piped exactly once to each of the three others, and
/// every consumer gets the RTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifteen_hundred_consumers_spread_over_four_workers_with_one_pipe_each() {
    const CONSUMERS: usize = 1_500;
    /// Egresses per receiving socket: few enough that a burst (one packet per
    /// egress) fits in a socket's default receive buffer.
    const PER_SOCKET: usize = 10;
    const PACKETS: u32 = 5;
    // Default capacity (500 at watermark 0.6): a worker fills at 300 consumers,
    // four at 1,200; the rest go to the least loaded.
    let node = node_with(None, |config| config.media.workers = 4).await;
    let home = node.media().workers()[0].id();
    let ingest = node.publish_rtp("crowd", vec![opus_track(SSRC)]).await.expect("publish");
    let mut sockets = Vec::new();
    for _ in 0..CONSUMERS.div_ceil(PER_SOCKET) {
        sockets.push(bind().await);
    }
    let started = Instant::now();
    let mut egresses = Vec::with_capacity(CONSUMERS);
    for i in 0..CONSUMERS {
        let socket = &sockets[i / PER_SOCKET];
        egresses.push(node.consume_rtp("crowd", addr(socket)).await.expect("egress"));
    }
    let made_in = started.elapsed();
    eprintln!("{CONSUMERS} egresses made through Node::consume_rtp in {made_in:?}");

    let status = node.media().status();
    assert_eq!(status.len(), 4, "all four workers in use: {status:?}");
    let consumers: u32 = status.iter().map(|w| w.objects.consumers).sum();
    assert_eq!(consumers as usize, CONSUMERS + 3, "the egresses and one pipe consumer per extra worker");
    for worker in &status {
        let (expected_producers, pipe_ends) = if worker.id == home { (1, 3) } else { (1, 1) };
        assert_eq!(
            worker.objects.producers, expected_producers,
            "one producer on each worker (the ingest's at home, a pipe producer elsewhere): {status:?}"
        );
        let egress_consumers = if worker.id == home { worker.objects.consumers - 3 } else { worker.objects.consumers };
        let ingest = u32::from(worker.id == home);
        assert_eq!(
            worker.objects.transports,
            egress_consumers + pipe_ends + ingest,
            "one pipe transport per extra worker at each end: {status:?}"
        );
        assert!(egress_consumers >= 300, "each worker carries its share: {status:?}");
    }
    eprintln!(
        "consumers per worker: {:?}",
        status.iter().map(|w| (w.id == home, w.objects.consumers)).collect::<Vec<_>>()
    );

    // Every egress gets every packet: the sockets are read while the stream is
    // sent. Packet 0 is a warm-up, not counted: as the first packet leaves each
    // of the 1,500 transports, mediasoup starts bandwidth probation on it, and
    // that burst of padding overflows the receiving sockets' buffers.
    let sender = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind sender");
    let packets = test_stream(SSRC, OPUS_PAYLOAD_TYPE, PACKETS + 1);
    let receiving = futures::future::join_all(
        sockets.iter().map(|socket| count_by_ssrc(socket, PER_SOCKET * PACKETS as usize, Duration::from_secs(3))),
    );
    let ((), counts) = tokio::join!(send_paced(&sender, ingest, &packets, Duration::from_millis(200)), receiving);
    let counts: HashMap<u32, usize> = counts.into_iter().flatten().collect();
    let short: Vec<_> = egresses
        .iter()
        .filter(|e| counts.get(&e.tracks[0].ssrc).copied().unwrap_or(0) != PACKETS as usize)
        .map(|e| (e.id.clone(), counts.get(&e.tracks[0].ssrc).copied().unwrap_or(0)))
        .collect();
    assert!(
        short.is_empty(),
        "{} of {CONSUMERS} egresses missed packets: {:?}",
        short.len(),
        &short[..short.len().min(10)]
    );
    node.shutdown().await;
}

/// Counts the media packets (test payloads but the first) per SSRC arriving at
/// `socket` until `expected` came or nothing came for `idle`.
async fn count_by_ssrc(socket: &UdpSocket, expected: usize, idle: Duration) -> HashMap<u32, usize> {
    let mut counts = HashMap::new();
    let mut buffer = vec![0u8; 2048];
    let mut total = 0;
    while total < expected {
        match tokio::time::timeout(idle, socket.recv_from(&mut buffer)).await {
            Ok(Ok((len, _))) => {
                // mediasoup also sends RTCP and probation padding; only test payloads count.
                if let Ok(packet) = RtpPacket::parse(&buffer[..len])
                    && packet.payload.len() >= 5
                    && packet.payload[0] == 0xfc
                {
                    if packet.payload[1..5] == [0, 0, 0, 0] {
                        // Packet 0 is the warm-up (see the caller).
                        continue;
                    }
                    *counts.entry(packet.ssrc).or_insert(0) += 1;
                    total += 1;
                }
            }
            Ok(Err(_)) | Err(_) => break,
        }
    }
    counts
}

async fn bind() -> UdpSocket {
    UdpSocket::bind((LOOPBACK, 0)).await.expect("bind a receiving socket")
}

fn addr(socket: &UdpSocket) -> SocketAddr {
    socket.local_addr().expect("socket address")
}
