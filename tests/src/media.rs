//! Small mediasoup set-ups for tests: an Opus router, plain transports on 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::{NonZeroU8, NonZeroU32};

use mafalda_media::mediasoup::prelude::*;
use mafalda_media::mediasoup::types::data_structures::TransportTuple;

/// Loopback, where every test socket and transport lives.
pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Payload type the test producer sends Opus with.
pub const OPUS_PAYLOAD_TYPE: u8 = 111;

/// The router's codecs: Opus only, which needs no key frame before forwarding.
pub fn opus_router_options() -> RouterOptions {
    RouterOptions::new(vec![RtpCodecCapability::Audio {
        mime_type: MimeTypeAudio::Opus,
        preferred_payload_type: None,
        clock_rate: NonZeroU32::new(48000).expect("non-zero"),
        channels: NonZeroU8::new(2).expect("non-zero"),
        parameters: RtpCodecParametersParameters::default(),
        rtcp_feedback: vec![],
    }])
}

/// RTP parameters of an Opus producer sending with `ssrc`.
pub fn opus_producer_parameters(ssrc: u32) -> RtpParameters {
    RtpParameters {
        codecs: vec![RtpCodecParameters::Audio {
            mime_type: MimeTypeAudio::Opus,
            payload_type: OPUS_PAYLOAD_TYPE,
            clock_rate: NonZeroU32::new(48000).expect("non-zero"),
            channels: NonZeroU8::new(2).expect("non-zero"),
            parameters: RtpCodecParametersParameters::default(),
            rtcp_feedback: vec![],
        }],
        encodings: vec![RtpEncodingParameters { ssrc: Some(ssrc), ..RtpEncodingParameters::default() }],
        ..RtpParameters::default()
    }
}

/// A UDP listen info on 127.0.0.1 with an ephemeral port.
pub fn loopback_udp() -> ListenInfo {
    ListenInfo {
        protocol: Protocol::Udp,
        ip: LOOPBACK,
        announced_address: None,
        expose_internal_ip: false,
        port: None,
        port_range: None,
        flags: None,
        send_buffer_size: None,
        recv_buffer_size: None,
    }
}

/// A plain transport that learns where RTP comes from (comedia) and its local address.
pub async fn ingest_transport(router: &Router) -> (PlainTransport, SocketAddr) {
    let mut options = PlainTransportOptions::new(loopback_udp());
    options.comedia = true;
    options.rtcp_mux = true;
    let transport = router.create_plain_transport(options).await.expect("create ingest plain transport");
    let addr = tuple_local_addr(&transport.tuple());
    (transport, addr)
}

/// A plain transport that sends RTP to `destination`.
pub async fn egress_transport(router: &Router, destination: SocketAddr) -> PlainTransport {
    let mut options = PlainTransportOptions::new(loopback_udp());
    options.comedia = false;
    options.rtcp_mux = true;
    let transport = router.create_plain_transport(options).await.expect("create egress plain transport");
    transport
        .connect(PlainTransportRemoteParameters {
            ip: Some(destination.ip()),
            port: Some(destination.port()),
            rtcp_port: None,
            srtp_parameters: None,
        })
        .await
        .expect("connect egress plain transport");
    transport
}

/// The local address of a transport tuple.
pub fn tuple_local_addr(tuple: &TransportTuple) -> SocketAddr {
    match tuple {
        TransportTuple::WithRemote { local_address, local_port, .. }
        | TransportTuple::LocalOnly { local_address, local_port, .. } => {
            let ip = local_address.parse().expect("mediasoup reports an IP address");
            SocketAddr::new(ip, *local_port)
        }
    }
}

/// The SSRC and payload type a consumer sends with.
pub fn consumer_ssrc_and_payload_type(consumer: &Consumer) -> (u32, u8) {
    let parameters = consumer.rtp_parameters();
    let ssrc = parameters.encodings.first().and_then(|e| e.ssrc).expect("consumer has an SSRC");
    let payload_type = parameters.codecs.first().expect("consumer has a codec").payload_type();
    (ssrc, payload_type)
}
