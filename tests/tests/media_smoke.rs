//! Smoke tests of the offline mediasoup build: real workers, real RTP over UDP on
//! 127.0.0.1, checked packet by packet at the receiving socket.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mafalda_media::mediasoup::prelude::*;
use mafalda_media::mediasoup::router::NewTransport;
use mafalda_media::mediasoup::types::srtp_parameters::SrtpParameters;
use mafalda_media::transports::{plain_egress, plain_ingest, udp_listen_info};
use mafalda_media::{MediaConfig, MediaEngine, consumer_capabilities};
use mafalda_tests::media::{
    LOOPBACK, OPUS_PAYLOAD_TYPE, consumer_ssrc_and_payload_type, opus_producer_parameters, opus_router_options,
};
use mafalda_tests::rtp::{RtpPacket, assert_delivered, receive_rtp, send_paced, test_stream};
use tokio::net::UdpSocket;

const PACKETS: u32 = 150;
const PRODUCER_SSRC: u32 = 0x0bad_cafe;
const SEND_INTERVAL: Duration = Duration::from_millis(2);
const RECEIVE_IDLE: Duration = Duration::from_secs(3);

async fn engine(workers: usize) -> MediaEngine {
    let mut config = MediaConfig::default();
    config.workers = workers;
    config.min_workers = workers;
    MediaEngine::start(config).await.expect("start mediasoup workers")
}

/// Sends the test stream into `ingest_addr` and returns what `receiver` got.
async fn send_and_receive(
    ingest_addr: SocketAddr,
    receiver: &UdpSocket,
    consumer_ssrc: u32,
) -> (Vec<RtpPacket>, Vec<RtpPacket>) {
    let sender = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind sender");
    let packets = test_stream(PRODUCER_SSRC, OPUS_PAYLOAD_TYPE, PACKETS);
    let ((), received) = tokio::join!(
        send_paced(&sender, ingest_addr, &packets, SEND_INTERVAL),
        receive_rtp(receiver, consumer_ssrc, packets.len(), RECEIVE_IDLE),
    );
    (packets, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_flows_from_plain_ingest_to_plain_egress_on_one_router() {
    let engine = engine(1).await;
    let router = engine.workers()[0].create_router(opus_router_options()).await.expect("router");
    let (ingest, ingest_addr) = plain_ingest(&router, LOOPBACK, None).await.expect("ingest");
    let producer = ingest
        .produce(ProducerOptions::new(MediaKind::Audio, opus_producer_parameters(PRODUCER_SSRC)))
        .await
        .expect("produce");

    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind receiver");
    let egress = plain_egress(&router, LOOPBACK, receiver.local_addr().expect("addr")).await.expect("egress");
    let consumer = egress
        .consume(ConsumerOptions::new(producer.id(), consumer_capabilities(&router.rtp_capabilities())))
        .await
        .expect("consume");
    let (ssrc, payload_type) = consumer_ssrc_and_payload_type(&consumer);

    let (sent, received) = send_and_receive(ingest_addr, &receiver, ssrc).await;
    assert_delivered(&sent, &received, payload_type, ssrc);

    drop((consumer, egress, producer, ingest, router));
    engine.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_crosses_an_srtp_pipe_between_routers_on_two_workers() {
    let engine = engine(2).await;
    let router_a = engine.workers()[0].create_router(opus_router_options()).await.expect("router a");
    let router_b = engine.workers()[1].create_router(opus_router_options()).await.expect("router b");

    // Record the SRTP parameters of the pipe transports mediasoup creates for us.
    let pipe_srtp = Arc::new(Mutex::new(Vec::new()));
    let _on_transport = router_a.on_new_transport({
        let pipe_srtp = Arc::clone(&pipe_srtp);
        move |transport| {
            if let NewTransport::Pipe(pipe) = transport {
                pipe_srtp.lock().expect("lock").push(pipe.srtp_parameters());
            }
        }
    });

    let (ingest, ingest_addr) = plain_ingest(&router_a, LOOPBACK, None).await.expect("ingest");
    let producer = ingest
        .produce(ProducerOptions::new(MediaKind::Audio, opus_producer_parameters(PRODUCER_SSRC)))
        .await
        .expect("produce");
    let mut options = PipeToRouterOptions::new(router_b.clone());
    options.enable_srtp = true;
    let pipe = router_a.pipe_producer_to_router(producer.id(), options).await.expect("pipe producer");

    let pipes = pipe_srtp.lock().expect("lock").clone();
    assert_eq!(pipes.len(), 1, "one pipe transport on router a");
    let srtp = pipes[0].as_ref().expect("pipe transport has SRTP parameters");
    assert!(!srtp.key_base64.is_empty(), "pipe SRTP key ({:?})", srtp.crypto_suite);

    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind receiver");
    let egress = plain_egress(&router_b, LOOPBACK, receiver.local_addr().expect("addr")).await.expect("egress");
    let consumer = egress
        .consume(ConsumerOptions::new(producer.id(), consumer_capabilities(&router_b.rtp_capabilities())))
        .await
        .expect("consume on router b");
    let (ssrc, payload_type) = consumer_ssrc_and_payload_type(&consumer);

    let (sent, received) = send_and_receive(ingest_addr, &receiver, ssrc).await;
    assert_delivered(&sent, &received, payload_type, ssrc);

    drop((consumer, egress, pipe, producer, ingest, router_a, router_b));
    engine.close().await;
}

/// SRTP protect really encrypts: an SRTP egress sends packets whose payload is not
/// the plaintext and which carry the 10-byte AES_CM_128_HMAC_SHA1_80 tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srtp_egress_sends_encrypted_authenticated_packets() {
    let engine = engine(1).await;
    let router = engine.workers()[0].create_router(opus_router_options()).await.expect("router");
    let (ingest, ingest_addr) = plain_ingest(&router, LOOPBACK, None).await.expect("ingest");
    let producer = ingest
        .produce(ProducerOptions::new(MediaKind::Audio, opus_producer_parameters(PRODUCER_SSRC)))
        .await
        .expect("produce");

    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind receiver");
    let destination = receiver.local_addr().expect("addr");
    let mut options = PlainTransportOptions::new(udp_listen_info(LOOPBACK, None));
    options.rtcp_mux = true;
    options.enable_srtp = true;
    options.srtp_crypto_suite = SrtpCryptoSuite::AesCm128HmacSha180;
    let egress = router.create_plain_transport(options).await.expect("srtp egress");
    egress
        .connect(PlainTransportRemoteParameters {
            ip: Some(destination.ip()),
            port: Some(destination.port()),
            rtcp_port: None,
            srtp_parameters: Some(SrtpParameters {
                crypto_suite: SrtpCryptoSuite::AesCm128HmacSha180,
                // 30 bytes (16 key + 14 salt), base64.
                key_base64: "MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3BxcnN0".to_owned(),
            }),
        })
        .await
        .expect("connect srtp egress");
    let local_srtp = egress.srtp_parameters().expect("egress has local SRTP parameters");
    assert_eq!(local_srtp.crypto_suite, SrtpCryptoSuite::AesCm128HmacSha180);
    let consumer = egress
        .consume(ConsumerOptions::new(producer.id(), consumer_capabilities(&router.rtp_capabilities())))
        .await
        .expect("consume");
    let (ssrc, _) = consumer_ssrc_and_payload_type(&consumer);

    let (sent, received) = send_and_receive(ingest_addr, &receiver, ssrc).await;
    assert_eq!(received.len(), sent.len(), "every packet arrives (as SRTP)");
    for (i, (got, want)) in received.iter().zip(&sent).enumerate() {
        assert_eq!(got.payload.len(), want.payload.len() + 10, "packet {i} carries an 80-bit auth tag");
        assert_ne!(&got.payload[..want.payload.len()], want.payload.as_slice(), "packet {i} is encrypted");
    }

    drop((consumer, egress, producer, ingest, router));
    engine.close().await;
}
