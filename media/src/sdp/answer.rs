//! Writing the node's SDP answer: ICE-lite, every accepted section bundled on
//! one mediasoup WebRTC transport, rejected sections with port 0.

use std::fmt::Write;

use mediasoup::prelude::{IceCandidate, IceParameters, MediaKind, RtpParameters};
use mediasoup::types::data_structures::{DtlsFingerprint, IceCandidateTcpType, Protocol};
use mediasoup::types::rtp_parameters::RtpCodecParametersParametersValue;

use super::offer::{MediaSection, Setup};

/// The node's side of the transport.
#[derive(Debug, Clone)]
pub struct LocalTransport {
    /// mediasoup's ICE credentials.
    pub ice: IceParameters,
    /// mediasoup's candidates.
    pub candidates: Vec<IceCandidate>,
    /// The certificate fingerprint to announce (mediasoup's sha-256).
    pub fingerprint: DtlsFingerprint,
    /// The node's DTLS role: `Passive` (DTLS server) or `Active`.
    pub setup: Setup,
}

/// Who sends in an accepted section, seen from the node.
#[derive(Debug, Clone)]
pub struct Sender {
    /// The track's `a=msid` (stream id and track id).
    pub msid: (String, String),
}

/// One section of the answer, in the offer's order.
#[derive(Debug, Clone)]
pub enum AnswerSection {
    /// Refused: port 0, with the reason (logged, not written).
    Rejected {
        /// The offer's section.
        offered: Box<MediaSection>,
        /// Why.
        reason: String,
    },
    /// The node receives (WHIP): the producer's codecs and extensions.
    Receive {
        /// Audio or video.
        kind: MediaKind,
        /// The section's mid.
        mid: String,
        /// Codecs and header extensions as produced.
        rtp_parameters: RtpParameters,
        /// Simulcast RIDs accepted (empty without simulcast).
        rids: Vec<String>,
        /// Whether the offer asked for reduced-size RTCP.
        rtcp_rsize: bool,
    },
    /// The node sends (WHEP): the consumer's parameters.
    Send {
        /// Audio or video.
        kind: MediaKind,
        /// The section's mid.
        mid: String,
        /// The consumer's RTP parameters (codecs, extensions, SSRCs, CNAME).
        rtp_parameters: RtpParameters,
        /// What the player shows the track as.
        sender: Sender,
        /// Whether the offer asked for reduced-size RTCP.
        rtcp_rsize: bool,
    },
}

/// The answer's text (CRLF line ends).
pub fn write_answer(transport: &LocalTransport, sections: &[AnswerSection]) -> String {
    let mut sdp = String::new();
    let mut line = |text: &str| {
        sdp.push_str(text);
        sdp.push_str("\r\n");
    };
    line("v=0");
    line(&format!("o=- {} 2 IN IP4 127.0.0.1", session_id()));
    line("s=-");
    line("t=0 0");
    line("a=ice-lite");
    let bundle: Vec<&str> = sections
        .iter()
        .filter_map(|s| match s {
            AnswerSection::Receive { mid, .. } | AnswerSection::Send { mid, .. } => Some(mid.as_str()),
            AnswerSection::Rejected { .. } => None,
        })
        .collect();
    if !bundle.is_empty() {
        line(&format!("a=group:BUNDLE {}", bundle.join(" ")));
    }
    line("a=msid-semantic: WMS *");
    for section in sections {
        match section {
            AnswerSection::Rejected { offered, .. } => {
                let format = offered.formats.first().map_or("0", String::as_str);
                line(&format!("m={} 0 {} {format}", offered.kind, offered.protocol));
                line("c=IN IP4 0.0.0.0");
                if let Some(mid) = &offered.mid {
                    line(&format!("a=mid:{mid}"));
                }
                line("a=inactive");
            }
            AnswerSection::Receive { kind, mid, rtp_parameters, rids, rtcp_rsize } => {
                accepted(&mut line, transport, *kind, mid, rtp_parameters, "recvonly", *rtcp_rsize);
                for rid in rids {
                    line(&format!("a=rid:{rid} recv"));
                }
                if !rids.is_empty() {
                    line(&format!("a=simulcast:recv {}", rids.join(";")));
                }
            }
            AnswerSection::Send { kind, mid, rtp_parameters, sender, rtcp_rsize } => {
                accepted(&mut line, transport, *kind, mid, rtp_parameters, "sendonly", *rtcp_rsize);
                line(&format!("a=msid:{} {}", sender.msid.0, sender.msid.1));
                let cname = rtp_parameters.rtcp.cname.clone().unwrap_or_else(|| "mafalda".to_owned());
                for encoding in rtp_parameters.encodings.iter().take(1) {
                    let Some(ssrc) = encoding.ssrc else { continue };
                    if let Some(rtx) = &encoding.rtx {
                        line(&format!("a=ssrc-group:FID {ssrc} {}", rtx.ssrc));
                    }
                    line(&format!("a=ssrc:{ssrc} cname:{cname}"));
                    line(&format!("a=ssrc:{ssrc} msid:{} {}", sender.msid.0, sender.msid.1));
                    if let Some(rtx) = &encoding.rtx {
                        line(&format!("a=ssrc:{} cname:{cname}", rtx.ssrc));
                        line(&format!("a=ssrc:{} msid:{} {}", rtx.ssrc, sender.msid.0, sender.msid.1));
                    }
                }
            }
        }
    }
    sdp
}

fn accepted(
    line: &mut impl FnMut(&str),
    transport: &LocalTransport,
    kind: MediaKind,
    mid: &str,
    rtp: &RtpParameters,
    direction: &str,
    rtcp_rsize: bool,
) {
    let kind = match kind {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    };
    let payload_types: Vec<String> = rtp.codecs.iter().map(|c| c.payload_type().to_string()).collect();
    line(&format!("m={kind} 9 UDP/TLS/RTP/SAVPF {}", payload_types.join(" ")));
    line("c=IN IP4 0.0.0.0");
    line("a=rtcp:9 IN IP4 0.0.0.0");
    line(&format!("a=mid:{mid}"));
    line(&format!("a=ice-ufrag:{}", transport.ice.username_fragment));
    line(&format!("a=ice-pwd:{}", transport.ice.password));
    line(&format!(
        "a=fingerprint:{} {}",
        fingerprint_algorithm(&transport.fingerprint),
        transport.fingerprint.value_string()
    ));
    line(match transport.setup {
        Setup::Active => "a=setup:active",
        Setup::Passive | Setup::ActPass => "a=setup:passive",
    });
    line(&format!("a={direction}"));
    line("a=rtcp-mux");
    if rtcp_rsize {
        line("a=rtcp-rsize");
    }
    for codec in &rtp.codecs {
        let pt = codec.payload_type();
        let (mime, clock_rate) = (codec.mime_type(), codec.clock_rate());
        let name = mime.as_str().split_once('/').map_or(mime.as_str(), |(_, name)| name);
        match super::negotiate::channels_of(codec).filter(|c| c.get() > 1) {
            Some(channels) => line(&format!("a=rtpmap:{pt} {name}/{clock_rate}/{channels}")),
            None => line(&format!("a=rtpmap:{pt} {name}/{clock_rate}")),
        }
        for feedback in codec.rtcp_feedback() {
            match feedback.as_type_parameter() {
                (kind, "") => line(&format!("a=rtcp-fb:{pt} {kind}")),
                (kind, parameter) => line(&format!("a=rtcp-fb:{pt} {kind} {parameter}")),
            }
        }
        let mut parameters = String::new();
        for (key, value) in codec.parameters().iter() {
            if !parameters.is_empty() {
                parameters.push(';');
            }
            match value {
                RtpCodecParametersParametersValue::Number(n) => write!(parameters, "{key}={n}"),
                RtpCodecParametersParametersValue::String(s) => write!(parameters, "{key}={s}"),
            }
            .unwrap_or_default();
        }
        if !parameters.is_empty() {
            line(&format!("a=fmtp:{pt} {parameters}"));
        }
    }
    for extension in &rtp.header_extensions {
        line(&format!("a=extmap:{} {}", extension.id, extension.uri.as_str()));
    }
    for candidate in &transport.candidates {
        let protocol = match candidate.protocol {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        };
        let tcp = match candidate.tcp_type {
            Some(IceCandidateTcpType::Passive) => " tcptype passive",
            None => "",
        };
        line(&format!(
            "a=candidate:{} 1 {protocol} {} {} {} typ host{tcp}",
            candidate.foundation, candidate.priority, candidate.address, candidate.port
        ));
    }
    line("a=end-of-candidates");
}

fn fingerprint_algorithm(fingerprint: &DtlsFingerprint) -> &'static str {
    match fingerprint {
        DtlsFingerprint::Sha1 { .. } => "sha-1",
        DtlsFingerprint::Sha224 { .. } => "sha-224",
        DtlsFingerprint::Sha256 { .. } => "sha-256",
        DtlsFingerprint::Sha384 { .. } => "sha-384",
        DtlsFingerprint::Sha512 { .. } => "sha-512",
    }
}

/// A session id for the `o=` line (RFC 8866: numeric, below 2^63).
fn session_id() -> u64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u64::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7]]) >> 1
}
