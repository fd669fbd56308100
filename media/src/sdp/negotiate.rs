//! Choosing what a media section of an offer becomes in mediasoup.
//!
//! - A publisher's section ([`receive`]): the first codec in the client's
//!   order that the router takes, its RTX, the feedback and header extensions
//!   both sides know, and the encodings (simulcast RIDs, SSRCs with their RTX,
//!   or the section's mid alone) — a producer's RTP parameters.
//! - A player's section ([`play`]): the offered codec that matches the track's,
//!   with the player's payload type. mediasoup sends a consumer's RTP with the
//!   payload types of the router it lives on, and an answer must keep the
//!   offer's numbers, so the caller gives each player a router whose codecs
//!   carry the player's payload types ([`Playback::router_codec`]); header
//!   extensions are kept where the player's id is mediasoup's own (mediasoup
//!   cannot rewrite ids per consumer either: versatica/mediasoup#1126).
//!
//! A section that cannot be served is an `Err(reason)`: the answer rejects it
//! (port 0) and the reason reaches the client if no section is left.

use std::num::{NonZeroU8, NonZeroU32};

use mediasoup::prelude::{
    DtlsParameters, MediaKind, MimeTypeVideo, RtcpFeedback, RtcpParameters, RtpCapabilities, RtpCapabilitiesFinalized,
    RtpCodecCapability, RtpCodecParameters, RtpCodecParametersParameters, RtpEncodingParameters,
    RtpHeaderExtensionParameters, RtpHeaderExtensionUri, RtpParameters,
};
use mediasoup::types::data_structures::{DtlsFingerprint, DtlsRole};
use mediasoup::types::rtp_parameters::{
    MimeType, RtpCodecCapabilityFinalized, RtpCodecParametersParametersValue, RtpEncodingParametersRtx,
    RtpHeaderExtension, RtpHeaderExtensionDirection,
};

use super::SdpError;
use super::offer::{Direction, MediaSection, Offer, OfferedCodec, Setup};

/// What the node receives in a publisher's section.
#[derive(Debug, Clone)]
pub struct Publication {
    /// Audio or video.
    pub kind: MediaKind,
    /// The producer's parameters.
    pub rtp_parameters: RtpParameters,
    /// Simulcast RIDs, lowest first as offered (empty without simulcast).
    pub rids: Vec<String>,
}

/// What the node sends in a player's section.
#[derive(Debug, Clone)]
pub struct Playback {
    /// Audio or video.
    pub kind: MediaKind,
    /// The track's codec with the player's payload type, for the player's router.
    pub router_codec: RtpCodecCapability,
    /// The player's capabilities for this section (its payload types and ids).
    pub capabilities: RtpCapabilities,
    /// The payload type the player gave RTX of this codec, if any.
    pub rtx_payload_type: Option<u8>,
}

/// The DTLS parameters to connect mediasoup with (the client's fingerprints
/// and role) and the node's own role for the answer.
pub fn dtls_parameters(offer: &Offer, section: &MediaSection) -> Result<(DtlsParameters, Setup), SdpError> {
    let (ufrag, fingerprints, setup) = offer.transport_of(section);
    if ufrag.is_none() {
        return Err(SdpError::Unusable("no a=ice-ufrag".into()));
    }
    let fingerprints: Vec<DtlsFingerprint> = fingerprints
        .iter()
        .filter_map(|f| serde_json::from_value(serde_json::json!({"algorithm": f.algorithm, "value": f.value})).ok())
        .collect();
    if fingerprints.is_empty() {
        return Err(SdpError::Unusable("no a=fingerprint with a hash mediasoup knows (sha-1 … sha-512)".into()));
    }
    // The node is the DTLS server unless the client insists on being it.
    let (client_role, ours) = match setup {
        Some(Setup::Passive) => (DtlsRole::Server, Setup::Active),
        Some(Setup::Active | Setup::ActPass) | None => (DtlsRole::Client, Setup::Passive),
    };
    Ok((DtlsParameters { role: client_role, fingerprints }, ours))
}

/// A publisher's section as a producer's RTP parameters, with the router's
/// `capabilities` deciding what is taken.
pub fn receive(section: &MediaSection, capabilities: &RtpCapabilitiesFinalized) -> Result<Publication, String> {
    let (kind, mid) = usable(section)?;
    if !section.direction.sends() {
        return Err(format!("section {mid} does not send media (it is {:?})", section.direction));
    }
    let chosen = section.codecs.iter().filter(|c| !c.is_rtx()).find_map(|offered| {
        capabilities.codecs.iter().find_map(|cap| {
            let (mime, channels, _) = capability_parts(cap);
            let matched =
                !is_rtx_mime(mime) && same_codec(offered, mime, cap.clock_rate().get(), channels, cap.parameters());
            matched.then_some((offered, cap))
        })
    });
    let Some((offered, cap)) = chosen else {
        return Err(format!("section {mid}: none of its codecs ({}) is one the node takes ({})", names(section), {
            let takes: Vec<&str> = capabilities
                .codecs
                .iter()
                .map(|c| capability_parts(c).0.as_str())
                .filter(|m| !m.ends_with("/rtx"))
                .collect();
            takes.join(", ")
        }));
    };
    let feedback: Vec<RtcpFeedback> = offered
        .feedback
        .iter()
        .filter_map(|(kind, parameter)| RtcpFeedback::from_type_parameter(kind, parameter).ok())
        .filter(|fb| capability_parts(cap).2.contains(fb))
        .collect();
    let mut codecs = vec![codec_parameters(capability_parts(cap).0, offered, feedback)?];
    if let Some(rtx) = rtx_of(section, offered.payload_type).filter(|_| kind == MediaKind::Video) {
        codecs.push(RtpCodecParameters::Video {
            mime_type: MimeTypeVideo::Rtx,
            payload_type: rtx.payload_type,
            clock_rate: NonZeroU32::new(rtx.clock_rate).unwrap_or(NonZeroU32::MIN),
            parameters: RtpCodecParametersParameters::from([("apt", u32::from(offered.payload_type).into())]),
            rtcp_feedback: vec![],
        });
    }
    let header_extensions: Vec<RtpHeaderExtensionParameters> = section
        .extensions
        .iter()
        .filter_map(|(id, uri)| {
            let uri: RtpHeaderExtensionUri = uri.parse().ok()?;
            let known = capabilities.header_extensions.iter().any(|h| {
                h.kind == kind
                    && h.uri == uri
                    && matches!(
                        h.direction,
                        RtpHeaderExtensionDirection::SendRecv | RtpHeaderExtensionDirection::RecvOnly
                    )
            });
            (known && *id <= 14).then_some(RtpHeaderExtensionParameters { uri, id: *id, encrypt: false })
        })
        .collect();
    let has = |uri| header_extensions.iter().any(|h| h.uri == uri);
    let (encodings, rids) =
        encodings(section, &mid, has(RtpHeaderExtensionUri::RtpStreamId), has(RtpHeaderExtensionUri::Mid))?;
    let cname = section.ssrcs.iter().find_map(|(_, cname)| cname.clone());
    let rtp_parameters = RtpParameters {
        mid: Some(mid),
        codecs,
        header_extensions,
        encodings,
        rtcp: RtcpParameters { cname, reduced_size: section.rtcp_rsize },
        msid: None,
    };
    Ok(Publication { kind, rtp_parameters, rids })
}

/// A player's section for a track sent with `track_codec` (the producer's
/// codec as its router has it).
pub fn play(section: &MediaSection, track_codec: &RtpCodecParameters) -> Result<Playback, String> {
    let (kind, mid) = usable(section)?;
    if !section.direction.receives() {
        return Err(format!("section {mid} does not receive media (it is {:?})", section.direction));
    }
    let mime = track_codec.mime_type();
    let channels = channels_of(track_codec).map(NonZeroU8::get);
    let offered = section
        .codecs
        .iter()
        .find(|offered| same_codec(offered, mime, track_codec.clock_rate().get(), channels, track_codec.parameters()))
        .ok_or_else(|| {
            format!(
                "section {mid}: the stream sends {}, which the player does not offer ({})",
                mime.as_str(),
                names(section)
            )
        })?;
    let parameters = codec_parameters_map(offered);
    let feedback: Vec<RtcpFeedback> = offered
        .feedback
        .iter()
        .filter_map(|(kind, parameter)| RtcpFeedback::from_type_parameter(kind, parameter).ok())
        .collect();
    let capability = |payload_type, parameters, rtcp_feedback| match mime {
        MimeType::Audio(mime_type) => RtpCodecCapability::Audio {
            mime_type,
            preferred_payload_type: Some(payload_type),
            clock_rate: track_codec.clock_rate(),
            channels: channels_of(track_codec).unwrap_or(NonZeroU8::MIN),
            parameters,
            rtcp_feedback,
        },
        MimeType::Video(mime_type) => RtpCodecCapability::Video {
            mime_type,
            preferred_payload_type: Some(payload_type),
            clock_rate: track_codec.clock_rate(),
            parameters,
            rtcp_feedback,
        },
    };
    // The router keeps the track's own parameters (piping it there must match
    // strictly); the capabilities are the player's.
    let router_codec = capability(offered.payload_type, track_codec.parameters().clone(), vec![]);
    let mut codecs = vec![capability(offered.payload_type, parameters, feedback)];
    let rtx = rtx_of(section, offered.payload_type).filter(|_| kind == MediaKind::Video);
    if let Some(rtx) = rtx {
        codecs.push(RtpCodecCapability::Video {
            mime_type: MimeTypeVideo::Rtx,
            preferred_payload_type: Some(rtx.payload_type),
            clock_rate: track_codec.clock_rate(),
            parameters: RtpCodecParametersParameters::from([("apt", u32::from(offered.payload_type).into())]),
            rtcp_feedback: vec![],
        });
    }
    let header_extensions = section
        .extensions
        .iter()
        .filter_map(|(id, uri)| {
            Some(RtpHeaderExtension {
                kind,
                uri: uri.parse().ok()?,
                preferred_id: *id,
                preferred_encrypt: false,
                direction: RtpHeaderExtensionDirection::SendRecv,
            })
        })
        .collect();
    Ok(Playback {
        kind,
        router_codec,
        capabilities: RtpCapabilities { codecs, header_extensions },
        rtx_payload_type: rtx.map(|r| r.payload_type),
    })
}

/// The section's kind and mid, if it is an RTP section WebRTC can carry on one
/// bundled, RTCP-multiplexed transport.
fn usable(section: &MediaSection) -> Result<(MediaKind, String), String> {
    let mid = section.mid.clone().ok_or_else(|| format!("a {} section without a=mid", section.kind))?;
    let kind = match section.kind.as_str() {
        "audio" => MediaKind::Audio,
        "video" => MediaKind::Video,
        other => return Err(format!("section {mid} is {other}, not audio or video")),
    };
    if !section.protocol.ends_with("RTP/SAVPF") {
        return Err(format!("section {mid} uses {}, not UDP/TLS/RTP/SAVPF", section.protocol));
    }
    if !section.rtcp_mux {
        return Err(format!("section {mid} has no a=rtcp-mux (required)"));
    }
    if section.direction == Direction::Inactive {
        return Err(format!("section {mid} is inactive"));
    }
    Ok((kind, mid))
}

fn names(section: &MediaSection) -> String {
    let names: Vec<String> =
        section.codecs.iter().filter(|c| !c.is_rtx()).map(|c| format!("{}/{}", c.name, c.clock_rate)).collect();
    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
}

/// A router codec's MIME type, channels and RTCP feedback.
fn capability_parts(cap: &RtpCodecCapabilityFinalized) -> (MimeType, Option<u8>, &[RtcpFeedback]) {
    match cap {
        RtpCodecCapabilityFinalized::Audio { mime_type, channels, rtcp_feedback, .. } => {
            (MimeType::Audio(*mime_type), Some(channels.get()), rtcp_feedback)
        }
        RtpCodecCapabilityFinalized::Video { mime_type, rtcp_feedback, .. } => {
            (MimeType::Video(*mime_type), None, rtcp_feedback)
        }
    }
}

/// A codec's audio channels (`None` for video).
pub(crate) fn channels_of(codec: &RtpCodecParameters) -> Option<NonZeroU8> {
    match codec {
        RtpCodecParameters::Audio { channels, .. } => Some(*channels),
        RtpCodecParameters::Video { .. } => None,
    }
}

fn is_rtx_mime(mime: MimeType) -> bool {
    mime.as_str().ends_with("/rtx")
}

/// Whether `offered` is the codec `mime` with these clock rate, channels and
/// parameters, by mediasoup's own rules (H.264 profile and packetization mode,
/// VP9 profile).
fn same_codec(
    offered: &OfferedCodec,
    mime: MimeType,
    clock_rate: u32,
    channels: Option<u8>,
    parameters: &RtpCodecParametersParameters,
) -> bool {
    let (kind, name) = mime.as_str().split_once('/').unwrap_or_default();
    let offered_kind = if matches!(mime, MimeType::Audio(_)) { "audio" } else { "video" };
    if kind != offered_kind || !offered.name.eq_ignore_ascii_case(name) || offered.clock_rate != clock_rate {
        return false;
    }
    if let MimeType::Audio(_) = mime
        && offered.channels.unwrap_or(1) != channels.unwrap_or(1)
    {
        return false;
    }
    let ours = |key: &str| match parameters.get(key) {
        Some(RtpCodecParametersParametersValue::Number(n)) => Some(n.to_string()),
        Some(RtpCodecParametersParametersValue::String(s)) => Some(s.to_string()),
        None => None,
    };
    match mime {
        MimeType::Video(MimeTypeVideo::H264) => {
            let mode = |value: Option<String>| value.unwrap_or_else(|| "0".into());
            mode(ours("packetization-mode")) == mode(offered.parameter("packetization-mode").map(str::to_owned))
                && h264_profile_level_id::is_same_profile(
                    ours("profile-level-id").as_deref(),
                    offered.parameter("profile-level-id"),
                )
                .is_some()
        }
        MimeType::Video(MimeTypeVideo::Vp9) => {
            let profile = |value: Option<String>| value.unwrap_or_else(|| "0".into());
            profile(ours("profile-id")) == profile(offered.parameter("profile-id").map(str::to_owned))
        }
        _ => true,
    }
}

/// The offered format parameters as mediasoup values (numbers where numeric,
/// except H.264's hex `profile-level-id`).
fn codec_parameters_map(offered: &OfferedCodec) -> RtpCodecParametersParameters {
    let mut parameters = RtpCodecParametersParameters::default();
    for (key, value) in offered.parameters.iter().filter(|(k, v)| !k.is_empty() && !v.is_empty()) {
        let value: RtpCodecParametersParametersValue = match value.parse::<u32>() {
            Ok(number) if key != "profile-level-id" => number.into(),
            _ => value.clone().into(),
        };
        parameters.insert(key.clone(), value);
    }
    parameters
}

fn codec_parameters(
    mime: MimeType,
    offered: &OfferedCodec,
    rtcp_feedback: Vec<RtcpFeedback>,
) -> Result<RtpCodecParameters, String> {
    let clock_rate = NonZeroU32::new(offered.clock_rate).ok_or("a clock rate of 0")?;
    let parameters = codec_parameters_map(offered);
    Ok(match mime {
        MimeType::Audio(mime_type) => RtpCodecParameters::Audio {
            mime_type,
            payload_type: offered.payload_type,
            clock_rate,
            channels: offered.channels.and_then(NonZeroU8::new).unwrap_or(NonZeroU8::MIN),
            parameters,
            rtcp_feedback,
        },
        MimeType::Video(mime_type) => RtpCodecParameters::Video {
            mime_type,
            payload_type: offered.payload_type,
            clock_rate,
            parameters,
            rtcp_feedback,
        },
    })
}

/// The RTX format of the section that repairs `payload_type`.
fn rtx_of(section: &MediaSection, payload_type: u8) -> Option<&OfferedCodec> {
    let apt = payload_type.to_string();
    section.codecs.iter().find(|c| c.is_rtx() && c.parameter("apt") == Some(apt.as_str()))
}

/// The encodings a publisher's section sends: its simulcast RIDs, else its
/// SSRCs (a SIM group's, or the first with its FID partner), else the mid alone.
fn encodings(
    section: &MediaSection,
    mid: &str,
    has_rid_extension: bool,
    has_mid_extension: bool,
) -> Result<(Vec<RtpEncodingParameters>, Vec<String>), String> {
    let rids: Vec<String> = if section.simulcast_send.is_empty() {
        section.send_rids.clone()
    } else {
        section.simulcast_send.iter().map(|s| s.rid.clone()).filter(|rid| section.send_rids.contains(rid)).collect()
    };
    if !rids.is_empty() {
        if !has_rid_extension {
            return Err(format!(
                "section {mid} sends simulcast without the rtp-stream-id header extension (with an id of 1-14)"
            ));
        }
        let encodings =
            rids.iter().map(|rid| RtpEncodingParameters { rid: Some(rid.clone()), ..RtpEncodingParameters::default() });
        return Ok((encodings.collect(), rids));
    }
    let repair_of = |ssrc: u32| {
        section
            .ssrc_groups
            .iter()
            .find(|(semantics, ssrcs)| semantics == "FID" && ssrcs.first() == Some(&ssrc))
            .and_then(|(_, ssrcs)| ssrcs.get(1).copied())
            .map(|ssrc| RtpEncodingParametersRtx { ssrc })
    };
    let encoding = |ssrc: u32| RtpEncodingParameters {
        ssrc: Some(ssrc),
        rtx: repair_of(ssrc),
        ..RtpEncodingParameters::default()
    };
    if let Some((_, layers)) = section.ssrc_groups.iter().find(|(semantics, _)| semantics == "SIM") {
        return Ok((layers.iter().map(|ssrc| encoding(*ssrc)).collect(), Vec::new()));
    }
    let repairs: Vec<u32> =
        section.ssrc_groups.iter().filter(|(s, _)| s == "FID").filter_map(|(_, g)| g.get(1).copied()).collect();
    if let Some((ssrc, _)) = section.ssrcs.iter().find(|(ssrc, _)| !repairs.contains(ssrc)) {
        return Ok((vec![encoding(*ssrc)], Vec::new()));
    }
    if !has_mid_extension {
        return Err(format!("section {mid} names no SSRC and has no mid header extension to tell its RTP by"));
    }
    Ok((vec![RtpEncodingParameters::default()], Vec::new()))
}
