//! The codecs a node's routers accept, and RTP parameters for a plain-RTP track.

use std::num::{NonZeroU8, NonZeroU32};

use mafalda_media::mediasoup::prelude::{
    MediaKind, MimeTypeAudio, MimeTypeVideo, RtpCodecCapability, RtpCodecParameters, RtpCodecParametersParameters,
    RtpEncodingParameters, RtpParameters,
};
use serde::{Deserialize, Serialize};

use crate::NodeError;

/// A codec an app may publish with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// Opus audio, 48 kHz stereo.
    Opus,
    /// VP8 video.
    Vp8,
    /// H.264 video (packetization-mode 1, constrained baseline 3.1).
    H264,
}

/// One track of an RTP publication, as the app describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackSpec {
    /// Audio or video (must match the codec).
    pub kind: MediaKind,
    /// The codec.
    pub codec: Codec,
    /// RTP payload type the app sends with (96–127 for dynamic types).
    pub payload_type: u8,
    /// SSRC the app sends with.
    pub ssrc: u32,
}

const fn nz32(value: u32) -> NonZeroU32 {
    match NonZeroU32::new(value) {
        Some(value) => value,
        None => NonZeroU32::MIN,
    }
}

fn h264_parameters() -> RtpCodecParametersParameters {
    RtpCodecParametersParameters::from([
        ("packetization-mode", 1_u32.into()),
        ("level-asymmetry-allowed", 1_u32.into()),
        ("profile-level-id", "42e01f".into()),
    ])
}

/// Codecs every router of a node accepts: Opus, VP8, H.264 constrained
/// baseline (packetization mode 1) and VP9 profile 0.
pub fn router_codecs() -> Vec<RtpCodecCapability> {
    vec![
        RtpCodecCapability::Audio {
            mime_type: MimeTypeAudio::Opus,
            preferred_payload_type: None,
            clock_rate: nz32(48000),
            channels: NonZeroU8::new(2).unwrap_or(NonZeroU8::MIN),
            parameters: RtpCodecParametersParameters::default(),
            rtcp_feedback: vec![],
        },
        RtpCodecCapability::Video {
            mime_type: MimeTypeVideo::Vp8,
            preferred_payload_type: None,
            clock_rate: nz32(90000),
            parameters: RtpCodecParametersParameters::default(),
            rtcp_feedback: vec![],
        },
        RtpCodecCapability::Video {
            mime_type: MimeTypeVideo::H264,
            preferred_payload_type: None,
            clock_rate: nz32(90000),
            parameters: h264_parameters(),
            rtcp_feedback: vec![],
        },
        // Last, so the payload types the others had before VP9 stay the same.
        RtpCodecCapability::Video {
            mime_type: MimeTypeVideo::Vp9,
            preferred_payload_type: None,
            clock_rate: nz32(90000),
            parameters: RtpCodecParametersParameters::from([("profile-id", 0_u32.into())]),
            rtcp_feedback: vec![],
        },
    ]
}

impl TrackSpec {
    /// Checks the spec and turns it into producer RTP parameters.
    pub fn rtp_parameters(&self) -> Result<RtpParameters, NodeError> {
        let invalid = |reason: String| NodeError::InvalidInput(reason);
        if !(96..=127).contains(&self.payload_type) {
            return Err(invalid(format!("payloadType {} is not a dynamic type (96-127)", self.payload_type)));
        }
        let codec = match (self.kind, self.codec) {
            (MediaKind::Audio, Codec::Opus) => RtpCodecParameters::Audio {
                mime_type: MimeTypeAudio::Opus,
                payload_type: self.payload_type,
                clock_rate: nz32(48000),
                channels: NonZeroU8::new(2).unwrap_or(NonZeroU8::MIN),
                parameters: RtpCodecParametersParameters::default(),
                rtcp_feedback: vec![],
            },
            (MediaKind::Video, Codec::Vp8) => RtpCodecParameters::Video {
                mime_type: MimeTypeVideo::Vp8,
                payload_type: self.payload_type,
                clock_rate: nz32(90000),
                parameters: RtpCodecParametersParameters::default(),
                rtcp_feedback: vec![],
            },
            (MediaKind::Video, Codec::H264) => RtpCodecParameters::Video {
                mime_type: MimeTypeVideo::H264,
                payload_type: self.payload_type,
                clock_rate: nz32(90000),
                parameters: h264_parameters(),
                rtcp_feedback: vec![],
            },
            (kind, codec) => return Err(invalid(format!("codec {codec:?} is not a {kind:?} codec"))),
        };
        Ok(RtpParameters {
            codecs: vec![codec],
            encodings: vec![RtpEncodingParameters { ssrc: Some(self.ssrc), ..RtpEncodingParameters::default() }],
            ..RtpParameters::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_checked() {
        let opus = TrackSpec { kind: MediaKind::Audio, codec: Codec::Opus, payload_type: 111, ssrc: 1 };
        assert!(opus.rtp_parameters().is_ok());
        let mismatched = TrackSpec { kind: MediaKind::Audio, codec: Codec::Vp8, payload_type: 96, ssrc: 1 };
        assert!(matches!(mismatched.rtp_parameters(), Err(NodeError::InvalidInput(_))));
        let static_pt = TrackSpec { kind: MediaKind::Video, codec: Codec::H264, payload_type: 34, ssrc: 1 };
        assert!(matches!(static_pt.rtp_parameters(), Err(NodeError::InvalidInput(_))));
    }
}

/// One track as apps see it: what a stream carries, or what an egress sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackSummary {
    /// Audio or video.
    pub kind: MediaKind,
    /// Codec name, lower case (`opus`, `vp8`, `h264`).
    pub codec: String,
    /// RTP payload type.
    pub payload_type: u8,
    /// SSRC (for an egress, the one the node sends with; it changes after a re-pipe).
    pub ssrc: u32,
}

impl TrackSummary {
    /// The summary of a track with these RTP parameters.
    pub fn of(kind: MediaKind, parameters: &RtpParameters) -> Self {
        let codec = parameters.codecs.first();
        Self {
            kind,
            codec: codec.map(codec_name).unwrap_or_default(),
            payload_type: codec.map(RtpCodecParameters::payload_type).unwrap_or_default(),
            ssrc: parameters.encodings.first().and_then(|e| e.ssrc).unwrap_or_default(),
        }
    }
}

/// `opus` for `audio/opus`: the subtype of the codec's MIME type, lower case.
fn codec_name(codec: &RtpCodecParameters) -> String {
    let mime = serde_json::to_value(codec.mime_type()).ok();
    let mime = mime.as_ref().and_then(serde_json::Value::as_str).unwrap_or_default();
    mime.rsplit('/').next().unwrap_or_default().to_ascii_lowercase()
}

/// An SDP for a plain-RTP receiver of `tracks`, track `i` arriving at
/// `ip:ports[i]` (RTCP on the same port).
pub fn receiver_sdp(stream: &str, ip: std::net::IpAddr, tracks: &[TrackSummary], ports: &[u16]) -> String {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut sdp = format!("v=0\r\no=- 0 0 IN {family} {ip}\r\ns=mafalda {stream}\r\nc=IN {family} {ip}\r\nt=0 0\r\n");
    for (track, port) in tracks.iter().zip(ports) {
        let kind = match track.kind {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        };
        let pt = track.payload_type;
        sdp.push_str(&format!("m={kind} {port} RTP/AVP {pt}\r\n"));
        match track.codec.as_str() {
            "opus" => sdp.push_str(&format!("a=rtpmap:{pt} opus/48000/2\r\n")),
            "vp8" => sdp.push_str(&format!("a=rtpmap:{pt} VP8/90000\r\n")),
            "h264" => sdp.push_str(&format!(
                "a=rtpmap:{pt} H264/90000\r\na=fmtp:{pt} packetization-mode=1;profile-level-id=42e01f\r\n"
            )),
            other => sdp.push_str(&format!("a=rtpmap:{pt} {other}/90000\r\n")),
        }
        sdp.push_str(&format!("a=ssrc:{} cname:mafalda\r\na=rtcp-mux\r\na=recvonly\r\n", track.ssrc));
    }
    sdp
}
