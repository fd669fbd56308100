//! The media crate's blocks with real workers and real RTP on 127.0.0.1: a
//! spanning router overflowing onto a second worker through one pipe, two media
//! engines (as two nodes) joined by SRTP pipe blocks, and the pool's worker
//! life cycle (a spanning router's emptied worker closing on reap included).

use std::time::{Duration, Instant};

use mafalda_media::mediasoup::prelude::*;
use mafalda_media::mediasoup::worker::WorkerId;
use mafalda_media::pipe::{self, PipedTrack};
use mafalda_media::transports::{plain_egress, plain_ingest};
use mafalda_media::{MediaConfig, MediaEngine, MediaEvent, PlacementPolicy, SpanningRouter, consumer_capabilities};
use mafalda_tests::media::{
    LOOPBACK, OPUS_PAYLOAD_TYPE, consumer_ssrc_and_payload_type, opus_producer_parameters, opus_router_options,
};
use mafalda_tests::rtp::{assert_delivered, receive_rtp, send_paced, test_stream};
use tokio::net::UdpSocket;

const PACKETS: u32 = 120;
const SSRC: u32 = 0x5eed_0001;

fn codecs() -> Vec<RtpCodecCapability> {
    opus_router_options().media_codecs
}

async fn engine(workers: usize, min_workers: usize, consumer_capacity: u32) -> MediaEngine {
    let mut config = MediaConfig::default();
    config.workers = workers;
    config.min_workers = min_workers;
    let mut placement = PlacementPolicy::default();
    placement.consumer_capacity = consumer_capacity;
    config.placement = placement;
    MediaEngine::start(config).await.expect("start media engine")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_overflow_to_a_second_worker_through_exactly_one_pipe() {
    // Capacity 5 at watermark 0.6: a worker takes consumers while it has fewer than 3.
    let engine = engine(2, 1, 5).await;
    let router = SpanningRouter::new(engine.clone(), "room-1", codecs()).await.expect("spanning router");
    let home = router.ingest_router().await.expect("ingest router");
    let (ingest, ingest_addr) = plain_ingest(&home, LOOPBACK, None).await.expect("ingest");
    let producer =
        ingest.produce(ProducerOptions::new(MediaKind::Audio, opus_producer_parameters(SSRC))).await.expect("produce");
    router.register_producer(&producer, &home);

    let mut receivers = Vec::new();
    let mut egresses = Vec::new();
    for _ in 0..5 {
        let socket = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
        let egress =
            router.consume_plain(producer.id(), LOOPBACK, socket.local_addr().expect("addr")).await.expect("consume");
        receivers.push(socket);
        egresses.push(egress);
    }
    let workers: Vec<WorkerId> = egresses.iter().map(|e| e.router.worker().id()).collect();
    let home_worker = home.worker().id();
    let on_home = workers.iter().filter(|w| **w == home_worker).count();
    assert_eq!(on_home, 3, "three consumers fill the home worker to its watermark: {workers:?}");
    assert_eq!(workers.len() - on_home, 2, "the other two overflow to the second worker");
    assert_eq!(engine.workers().len(), 2, "a second worker was started for them");
    assert_eq!(router.pipe_count().await, 1, "one pipe carries the producer to the second worker");

    // Transports per worker: home = ingest + 3 egress + 1 pipe end; other = 2 egress + 1 pipe end.
    let status = engine.status();
    let transports_on = |worker: &WorkerId| status.iter().find(|s| s.id == *worker).expect("status").objects.transports;
    let other_worker = *workers.iter().find(|w| **w != home_worker).expect("other");
    assert_eq!(transports_on(&home_worker), 5);
    assert_eq!(transports_on(&other_worker), 3, "exactly one pipe transport pair between the routers");

    let sender = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind sender");
    let packets = test_stream(SSRC, OPUS_PAYLOAD_TYPE, PACKETS);
    let receiving = futures::future::join_all(egresses.iter().zip(&receivers).map(|(egress, socket)| {
        let (ssrc, _) = consumer_ssrc_and_payload_type(&egress.consumer);
        receive_rtp(socket, ssrc, packets.len(), Duration::from_secs(3))
    }));
    let ((), received) = tokio::join!(send_paced(&sender, ingest_addr, &packets, Duration::from_millis(2)), receiving);
    for (egress, got) in egresses.iter().zip(&received) {
        let (ssrc, payload_type) = consumer_ssrc_and_payload_type(&egress.consumer);
        assert_delivered(&packets, got, payload_type, ssrc);
    }

    // Closing the producer closes every consumer, piped ones included.
    drop(producer);
    let all_closed = mafalda_tests::swarm::eventually(Duration::from_secs(3), || async {
        egresses.iter().all(|e| e.consumer.closed())
    })
    .await;
    assert!(all_closed, "consumers on both workers closed with the producer");
    drop((egresses, ingest, home, router));
    engine.close().await;
}

/// The engine's reap lets a spanning router drop the pipe and router nobody
/// uses any more, so the overflow worker goes idle and closes; what is still
/// consumed stays, and the next overflow starts a worker again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spanning_router_lets_go_of_an_emptied_worker_on_reap() {
    // Capacity 1 at watermark 0.6: one consumer fills a worker.
    let engine = engine(2, 1, 1).await;
    let router = SpanningRouter::new(engine.clone(), "room-2", codecs()).await.expect("spanning router");
    let home = router.ingest_router().await.expect("ingest router");
    let (ingest, _) = plain_ingest(&home, LOOPBACK, None).await.expect("ingest");
    let producer =
        ingest.produce(ProducerOptions::new(MediaKind::Audio, opus_producer_parameters(SSRC))).await.expect("produce");
    router.register_producer(&producer, &home);
    let sink = "127.0.0.1:9".parse().expect("addr");
    let kept = router.consume_plain(producer.id(), LOOPBACK, sink).await.expect("consume at home");
    let overflow = router.consume_plain(producer.id(), LOOPBACK, sink).await.expect("consume elsewhere");
    let other = overflow.router.worker().id();
    assert_ne!(other, home.worker().id());
    assert_eq!((router.pipe_count().await, router.routers().await.len()), (1, 2));

    // Still consumed: a pass keeps everything.
    let now = Instant::now();
    engine.reap_idle(now);
    engine.reap_idle(now);
    assert_eq!((router.pipe_count().await, router.routers().await.len()), (1, 2), "in use, kept");

    drop(overflow);
    assert_eq!(router.release_idle(), mafalda_media::Released { pipes: 1, routers: 1 }, "pipe and router let go");
    assert_eq!(router.routers().await.len(), 1);
    engine.reap_idle(now);
    engine.reap_idle(now + Duration::from_secs(31));
    assert_eq!(engine.workers().len(), 1, "the emptied worker closed after its grace");
    assert!(engine.workers().iter().all(|w| w.id() != other));
    assert!(!kept.consumer.closed(), "the home consumer is untouched");

    let again = router.consume_plain(producer.id(), LOOPBACK, sink).await.expect("overflow again");
    assert_ne!(again.router.worker().id(), home.worker().id(), "on a new worker");
    assert_eq!((router.pipe_count().await, engine.workers().len()), (1, 2));
    drop((again, kept, producer, ingest, home, router));
    engine.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_joined_by_srtp_pipe_blocks_carry_rtp_and_tear_down() {
    // Two independent media engines, as two nodes have.
    let (origin, relay) = (engine(1, 1, 500).await, engine(1, 1, 500).await);
    let origin_router = origin.create_router(opus_router_options()).await.expect("router");
    let relay_router = relay.create_router(opus_router_options()).await.expect("router");
    let (ingest, ingest_addr) = plain_ingest(&origin_router, LOOPBACK, None).await.expect("ingest");
    let producer =
        ingest.produce(ProducerOptions::new(MediaKind::Audio, opus_producer_parameters(SSRC))).await.expect("produce");

    // Each side opens its end; the endpoints cross between the nodes (as JSON here).
    let (origin_pipe, origin_end) = pipe::open_pipe(&origin_router, LOOPBACK, None).await.expect("origin pipe");
    let (relay_pipe, relay_end) = pipe::open_pipe(&relay_router, LOOPBACK, None).await.expect("relay pipe");
    assert!(origin_end.srtp.is_some() && relay_end.srtp.is_some(), "SRTP on both ends");
    let travel = |end: &pipe::PipeEndpoint| -> pipe::PipeEndpoint {
        serde_json::from_str(&serde_json::to_string(end).expect("encode")).expect("decode")
    };
    pipe::connect_pipe(&origin_pipe, &travel(&relay_end)).await.expect("connect origin");
    pipe::connect_pipe(&relay_pipe, &travel(&origin_end)).await.expect("connect relay");

    let (pipe_consumer, track) = pipe::send_track(&origin_pipe, producer.id()).await.expect("send track");
    let track: PipedTrack = serde_json::from_str(&serde_json::to_string(&track).expect("encode")).expect("decode");
    let relay_producer = pipe::receive_track(&relay_pipe, &track).await.expect("receive track");
    assert_ne!(relay_producer.id(), producer.id(), "the receiving node names its producer itself");

    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let egress = plain_egress(&relay_router, LOOPBACK, receiver.local_addr().expect("addr")).await.expect("egress");
    let consumer = egress
        .consume(ConsumerOptions::new(relay_producer.id(), consumer_capabilities(&relay_router.rtp_capabilities())))
        .await
        .expect("consume on the relay");
    let (ssrc, payload_type) = consumer_ssrc_and_payload_type(&consumer);

    let sender = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind sender");
    let packets = test_stream(SSRC, OPUS_PAYLOAD_TYPE, PACKETS);
    let ((), received) = tokio::join!(
        send_paced(&sender, ingest_addr, &packets, Duration::from_millis(2)),
        receive_rtp(&receiver, ssrc, packets.len(), Duration::from_secs(3)),
    );
    assert_delivered(&packets, &received, payload_type, ssrc);

    // The source closes: the pipe consumer tells the origin node, which tells the
    // relay (through ROPE in the node; a channel here), which closes its producer.
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    pipe_consumer
        .on_producer_close(move || {
            let _ = closed_tx.send(());
        })
        .detach();
    drop(producer);
    tokio::time::timeout(Duration::from_secs(3), closed_rx).await.expect("in time").expect("told");
    drop(relay_producer);
    let consumer_closed =
        mafalda_tests::swarm::eventually(Duration::from_secs(3), || async { consumer.closed() }).await;
    assert!(consumer_closed, "the relay's consumers close with the piped producer");
    drop((consumer, egress, pipe_consumer, origin_pipe, relay_pipe, ingest, origin_router, relay_router));
    origin.close().await;
    relay.close().await;
}

/// libsrtp2 (built over NSS here) opens an NSS context per cipher: when the
/// process's last SRTP session closed, NSS used to shut down and the next pipe
/// reloaded it first. The engine holds NSS open: it is still initialised once
/// every SRTP pipe is gone, and a pipe made after that lull carries RTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nss_stays_loaded_after_the_last_srtp_pipe_closes_and_the_next_pipe_carries_rtp() {
    let engine = engine(1, 1, 100).await;
    let router = engine.create_router(opus_router_options()).await.expect("router");
    let (ingest, ingest_addr) = plain_ingest(&router, LOOPBACK, None).await.expect("ingest");
    let producer =
        ingest.produce(ProducerOptions::new(MediaKind::Audio, opus_producer_parameters(SSRC))).await.expect("produce");
    // One source for both rounds: the ingest keeps to its first sender, and
    // the stream's sequence numbers go on.
    let sender = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind sender");
    let mut source = mafalda_tests::rtp::test_packets(SSRC, OPUS_PAYLOAD_TYPE);
    let only_the_ingest = || async { router.dump().await.is_ok_and(|dump| dump.transport_ids.len() == 1) };
    for round in 0..2 {
        // Both ends on one router: SRTP sessions all the same, in this process only.
        let (sending, sending_end) = pipe::open_pipe(&router, LOOPBACK, None).await.expect("open");
        let (receiving, receiving_end) = pipe::open_pipe(&router, LOOPBACK, None).await.expect("open");
        pipe::connect_pipe(&sending, &receiving_end).await.expect("connect");
        pipe::connect_pipe(&receiving, &sending_end).await.expect("connect");
        let (pipe_consumer, track) = pipe::send_track(&sending, producer.id()).await.expect("send track");
        let piped = pipe::receive_track(&receiving, &track).await.expect("receive track");
        let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
        let egress = plain_egress(&router, LOOPBACK, receiver.local_addr().expect("addr")).await.expect("egress");
        let consumer = egress
            .consume(ConsumerOptions::new(piped.id(), consumer_capabilities(&router.rtp_capabilities())))
            .await
            .expect("consume the piped track");
        let (ssrc, payload_type) = consumer_ssrc_and_payload_type(&consumer);
        let packets: Vec<_> = source.by_ref().take(40).collect();
        let ((), received) = tokio::join!(
            send_paced(&sender, ingest_addr, &packets, Duration::from_millis(2)),
            receive_rtp(&receiver, ssrc, packets.len(), Duration::from_secs(3)),
        );
        assert_delivered(&packets, &received, payload_type, ssrc);
        drop((consumer, egress, piped, pipe_consumer, sending, receiving));
        let closed = mafalda_tests::swarm::eventually(Duration::from_secs(3), only_the_ingest).await;
        assert!(closed, "round {round}: the worker closed both pipes and the egress");
        assert!(
            mafalda_nss_link::nss_is_initialized(),
            "round {round}: NSS is still loaded with no SRTP session left in the process"
        );
    }
    drop((producer, ingest, router));
    engine.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_worker_is_reported_and_the_pool_serves_the_next_request() {
    let engine = engine(2, 1, 500).await;
    let mut events = engine.events();
    let first = engine.workers()[0].clone();
    let router = engine.create_router(opus_router_options()).await.expect("router");
    assert_eq!(router.worker().id(), first.id());

    // Retire the worker; it closes once the router on it is gone, and that is reported.
    assert!(engine.retire(&first.id()));
    drop(first);
    drop(router);
    let gone = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(MediaEvent::WorkerGone { worker, died, .. }) = events.recv().await {
                return (worker, died);
            }
        }
    })
    .await
    .expect("the worker's end is reported");
    assert!(!gone.1, "closed, not died");

    // The next request starts a new worker and works.
    let router = engine.create_router(opus_router_options()).await.expect("a router on a new worker");
    assert_ne!(router.worker().id(), gone.0);
    let (_ingest, _addr) = plain_ingest(&router, LOOPBACK, None).await.expect("transports work on the new worker");
    drop((_ingest, router));
    engine.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_workers_above_the_minimum_are_closed_after_the_grace_period() {
    let mut config = MediaConfig::default();
    config.workers = 2;
    config.min_workers = 2;
    config.idle_grace = Duration::from_secs(30);
    let kept = MediaEngine::start(config).await.expect("start");
    assert_eq!(kept.workers().len(), 2);
    let busy = kept.workers()[1].clone();
    let router = kept.create_router_on(&busy, opus_router_options()).await.expect("router");
    let start = Instant::now();
    kept.reap_idle(start);
    kept.reap_idle(start + Duration::from_secs(31));
    assert_eq!(kept.workers().len(), 2, "min_workers are kept");
    drop((router, busy));
    kept.close().await;

    // Capacity 2 at watermark 0.6: two consumers fill a worker.
    let engine = engine(2, 1, 2).await;
    let first = engine.workers()[0].clone();
    {
        let router = engine.create_router_on(&first, opus_router_options()).await.expect("router");
        let (ingest, _) = plain_ingest(&router, LOOPBACK, None).await.expect("ingest");
        let producer = ingest
            .produce(ProducerOptions::new(MediaKind::Audio, opus_producer_parameters(SSRC)))
            .await
            .expect("produce");
        let mut consumers = Vec::new();
        for _ in 0..2 {
            let egress = plain_egress(&router, LOOPBACK, "127.0.0.1:9".parse().expect("addr")).await.expect("egress");
            let consumer = egress
                .consume(ConsumerOptions::new(producer.id(), consumer_capabilities(&router.rtp_capabilities())))
                .await
                .expect("consume");
            consumers.push((egress, consumer));
        }
        let overflow = engine.create_router(opus_router_options()).await.expect("placed router");
        assert_ne!(overflow.worker().id(), first.id(), "overflow started a second worker");
        assert_eq!(engine.workers().len(), 2);
        drop((overflow, consumers, producer, ingest, router));
    }
    let now = Instant::now();
    engine.reap_idle(now);
    engine.reap_idle(now + Duration::from_secs(31));
    let ids: Vec<WorkerId> = engine.workers().iter().map(Worker::id).collect();
    assert_eq!(ids.len(), 1, "one idle worker closed, the minimum kept");
    drop(first);
    engine.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_transports_go_through_each_workers_webrtc_server() {
    use mafalda_media::WebRtcListen;
    use mafalda_media::transports::webrtc_transport;

    let mut config = MediaConfig::default();
    config.workers = 2;
    config.min_workers = 2;
    config.webrtc =
        Some(WebRtcListen { ip: LOOPBACK, announced_address: Some("localhost".into()), ports: 46000..=46100 });
    let engine = MediaEngine::start(config).await.expect("start with WebRTC");
    let mut ports = Vec::new();
    for worker in engine.workers() {
        let router = engine.create_router_on(&worker, opus_router_options()).await.expect("router");
        let transport = webrtc_transport(&engine, &router).await.expect("webrtc transport");
        let candidates = transport.ice_candidates().clone();
        assert_eq!(candidates.len(), 2, "one UDP and one TCP candidate: {candidates:?}");
        for candidate in &candidates {
            assert_eq!(candidate.address, "localhost", "the announced address is what clients see");
            assert!((46000..=46100).contains(&candidate.port), "port from the range: {}", candidate.port);
        }
        ports.push(candidates[0].port);
        drop((transport, router));
    }
    assert_ne!(ports[0], ports[1], "each worker's server has its own port");
    engine.close().await;

    let plain = engine_without_webrtc().await;
    let router = plain.create_router(opus_router_options()).await.expect("router");
    let error = webrtc_transport(&plain, &router).await.expect_err("not configured");
    assert!(error.to_string().contains("WebRTC is not configured"), "{error}");
    drop(router);
    plain.close().await;
}

async fn engine_without_webrtc() -> MediaEngine {
    engine(1, 1, 500).await
}
