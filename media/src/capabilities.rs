//! Turning a router's own capabilities into capabilities a consumer can present.

use mediasoup::prelude::{RtpCapabilities, RtpCapabilitiesFinalized, RtpCodecCapability};
use mediasoup::types::rtp_parameters::RtpCodecCapabilityFinalized;

/// Capabilities that accept everything `router_capabilities` offers, with the
/// router's payload types. Server-side consumers (plain and pipe egress) present
/// these, since no remote endpoint negotiates for them.
pub fn consumer_capabilities(router_capabilities: &RtpCapabilitiesFinalized) -> RtpCapabilities {
    let codecs = router_capabilities
        .codecs
        .iter()
        .map(|codec| match codec.clone() {
            RtpCodecCapabilityFinalized::Audio {
                mime_type,
                preferred_payload_type,
                clock_rate,
                channels,
                parameters,
                rtcp_feedback,
            } => RtpCodecCapability::Audio {
                mime_type,
                preferred_payload_type: Some(preferred_payload_type),
                clock_rate,
                channels,
                parameters,
                rtcp_feedback,
            },
            RtpCodecCapabilityFinalized::Video {
                mime_type,
                preferred_payload_type,
                clock_rate,
                parameters,
                rtcp_feedback,
            } => RtpCodecCapability::Video {
                mime_type,
                preferred_payload_type: Some(preferred_payload_type),
                clock_rate,
                parameters,
                rtcp_feedback,
            },
        })
        .collect();
    RtpCapabilities { codecs, header_extensions: router_capabilities.header_extensions.clone() }
}
