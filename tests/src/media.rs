//! Small mediasoup set-ups for tests: an Opus router and producer parameters
//! (transports come from `mafalda_media::transports`).

use std::net::{IpAddr, Ipv4Addr};
use std::num::{NonZeroU8, NonZeroU32};

use mafalda_media::mediasoup::prelude::*;

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

/// The SSRC and payload type a consumer sends with.
pub fn consumer_ssrc_and_payload_type(consumer: &Consumer) -> (u32, u8) {
    let parameters = consumer.rtp_parameters();
    let ssrc = parameters.encodings.first().and_then(|e| e.ssrc).expect("consumer has an SSRC");
    let payload_type = parameters.codecs.first().expect("consumer has a codec").payload_type();
    (ssrc, payload_type)
}
