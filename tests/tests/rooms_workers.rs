//! A room spans the workers of a node: 30 consumers of one room producer at
//! a node with 3 workers and a low watermark spread over all three, the
//! producer is piped exactly once to each extra worker (and once between the
//! nodes), and RTP reaches every consumer. Real nodes, real mediasoup, real
//! libp2p on 127.0.0.1; the room driven over `/v1/rope` as an app does.

use std::sync::Arc;
use std::time::Duration;

use mafalda_media::PlacementPolicy;
use mafalda_tests::node::{node_with, serve_api, webrtc_node_with_api};
use mafalda_tests::room::{OPUS_PT, RoomApp};
use mafalda_tests::rtp::{assert_delivered, receive_rtp, send_paced, test_stream};
use mafalda_tests::swarm::connected_within;
use tokio::net::UdpSocket;

const CONSUMERS: usize = 30;
const WORKERS: usize = 3;
/// A worker is full at `WATERMARK * CAPACITY` = 6 consumers (pipe consumers
/// included): 30 consumers need every worker.
const WATERMARK: f32 = 0.2;
const CAPACITY: u32 = 30;
const FULL_AT: u32 = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_consumers_of_a_room_producer_spread_over_three_workers_with_one_pipe_each() {
    // A publishes (one worker); B, where the consumers are, has three and a low watermark.
    let (a_node, a_api, _) = webrtc_node_with_api(None).await;
    let b_node = Arc::new(
        node_with(Some(&a_node), |config| {
            config.media.workers = WORKERS;
            let mut policy = PlacementPolicy::default();
            policy.watermark = WATERMARK;
            policy.consumer_capacity = CAPACITY;
            config.media.placement = policy;
        })
        .await,
    );
    let b_api = serve_api(Arc::clone(&b_node)).await;
    assert!(connected_within(b_node.swarm(), a_node.peer_id(), Duration::from_secs(10)).await, "B joined A");
    let home = b_node.media().workers()[0].id();
    assert_eq!(b_node.media().workers().len(), 1, "B starts with one worker; placement adds the others");

    let a = RoomApp::connect(a_api).await;
    let b = RoomApp::connect(b_api).await;
    a.join("crowd").await;
    b.join("crowd").await;
    let producer = a.produce_opus("crowd", 0x5eed).await;
    assert!(
        b.sees("crowd", Duration::from_secs(5), |room| room["producers"][0]["id"] == producer.id.as_str()).await,
        "B's app sees A's producer"
    );

    // 30 consumers at B, one plain transport each, made one after another as an app would.
    let mut consumers = Vec::with_capacity(CONSUMERS);
    for i in 0..CONSUMERS {
        let consumer = b.consume_plain("crowd", &producer.id).await.unwrap_or_else(|e| panic!("consumer {i}: {e}"));
        assert_eq!(consumer.answer["producerId"], producer.id.as_str());
        consumers.push(consumer);
    }

    // Spread: every worker in use and filled to its watermark; one pipe per extra worker.
    let status = b_node.media().status();
    eprintln!(
        "B's workers (home?, routers, transports, producers, consumers): {:?}",
        status
            .iter()
            .map(|w| (w.id == home, w.objects.routers, w.objects.transports, w.objects.producers, w.objects.consumers))
            .collect::<Vec<_>>()
    );
    assert_eq!(status.len(), WORKERS, "the consumers overflowed onto every worker: {status:?}");
    let extra = (WORKERS - 1) as u32;
    // The spare pipe transport B keeps ready at home for its next pull.
    let spares = u32::try_from(b_node.spare_pipes()).expect("a few spares");
    let mut app_consumers = 0;
    for worker in &status {
        let objects = &worker.objects;
        assert_eq!(objects.routers, 1, "the room's router spans the workers, one router on each: {status:?}");
        assert_eq!(
            objects.producers, 1,
            "one producer on each worker (the copy piped in from A at home, one pipe producer elsewhere): {status:?}"
        );
        let (pipe_consumers, pipe_transports) = if worker.id == home { (extra, 1 + extra + spares) } else { (0, 1) };
        let own = objects.consumers.checked_sub(pipe_consumers).unwrap_or_else(|| panic!("{status:?}"));
        assert_eq!(
            objects.transports,
            own + pipe_transports,
            "a plain transport per consumer and one pipe transport per pipe end (home: A's pipe, one per extra \
             worker and the spare; elsewhere: one): {status:?}"
        );
        assert!(objects.consumers >= FULL_AT, "every worker was filled to its watermark: {status:?}");
        assert!(own > 0, "every worker serves consumers: {status:?}");
        app_consumers += own;
    }
    assert_eq!(app_consumers as usize, CONSUMERS, "every consumer on one of the workers: {status:?}");
    assert_eq!(a_node.pipe_count(), 1, "A feeds B through one pipe, however many consumers B has");
    assert_eq!(b_node.pipe_count(), 0, "B feeds no other node");

    // RTP sent to A's producer reaches every consumer, on every worker.
    let sender = UdpSocket::bind(("127.0.0.1", 0)).await.expect("bind");
    let packets = test_stream(0x5eed, OPUS_PT, 60);
    let receiving = futures::future::join_all(
        consumers.iter().map(|c| receive_rtp(&c.socket, c.ssrc, packets.len(), Duration::from_secs(3))),
    );
    let ((), received) =
        tokio::join!(send_paced(&sender, producer.target, &packets, Duration::from_millis(5)), receiving);
    for (consumer, got) in consumers.iter().zip(&received) {
        assert_delivered(&packets, got, consumer.payload_type, consumer.ssrc);
    }
    a_node.shutdown().await;
    b_node.shutdown().await;
}
