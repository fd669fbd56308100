//! Checks on RTP parameters that come from another node, before mediasoup's
//! worker sees them: the worker asserts on some inconsistencies (and an
//! assertion aborts the whole process), so anything a peer sends must be
//! plainly well-formed and within small bounds first.

use std::collections::HashSet;

use mafalda_media::mediasoup::prelude::{MediaKind, RtpCodecParameters, RtpParameters};
use mafalda_media::mediasoup::types::rtp_parameters::{MimeType, RtpCodecParametersParametersValue};

/// Most codecs in one track's parameters (a media codec and its RTX).
const MAX_CODECS: usize = 4;
/// Most encodings (simulcast layers) in one track.
const MAX_ENCODINGS: usize = 4;
/// Most header extensions in one track.
const MAX_HEADER_EXTENSIONS: usize = 16;
/// Longest string field (CNAME, MID, MSID, RID, codec parameter). Browsers'
/// MSIDs are two UUIDs (73 characters); nothing honest comes near this.
const MAX_STRING_LEN: usize = 256;
/// Most codec parameters.
const MAX_CODEC_PARAMETERS: usize = 16;

/// Checks the parameters of a `kind` track a peer offers through a pipe.
pub(crate) fn check_piped_parameters(kind: MediaKind, parameters: &RtpParameters) -> Result<(), String> {
    if parameters.codecs.is_empty() || parameters.codecs.len() > MAX_CODECS {
        return Err(format!("1 to {MAX_CODECS} codecs expected, got {}", parameters.codecs.len()));
    }
    let mut payload_types = HashSet::new();
    for codec in &parameters.codecs {
        check_codec(kind, codec)?;
        if !payload_types.insert(codec.payload_type()) {
            return Err(format!("payload type {} used twice", codec.payload_type()));
        }
    }
    if parameters.codecs[0].is_rtx() {
        return Err("the first codec must be a media codec, not RTX".into());
    }
    for codec in parameters.codecs.iter().filter(|c| c.is_rtx()) {
        let apt = codec.parameters().get("apt");
        let points_to_media = match apt {
            Some(RtpCodecParametersParametersValue::Number(apt)) => {
                parameters.codecs.iter().any(|c| !c.is_rtx() && u32::from(c.payload_type()) == *apt)
            }
            _ => false,
        };
        if !points_to_media {
            return Err("an RTX codec must name its media codec's payload type (apt)".into());
        }
    }
    if parameters.encodings.is_empty() || parameters.encodings.len() > MAX_ENCODINGS {
        return Err(format!("1 to {MAX_ENCODINGS} encodings expected, got {}", parameters.encodings.len()));
    }
    let mut ssrcs = HashSet::new();
    for encoding in &parameters.encodings {
        let ssrc = encoding.ssrc.ok_or("every piped encoding needs an SSRC")?;
        let rtx = encoding.rtx.map(|rtx| rtx.ssrc);
        for ssrc in std::iter::once(ssrc).chain(rtx) {
            if ssrc == 0 || !ssrcs.insert(ssrc) {
                return Err(format!("SSRC {ssrc} is zero or used twice"));
            }
        }
        if let Some(pt) = encoding.codec_payload_type
            && !payload_types.contains(&pt)
        {
            return Err(format!("encoding names payload type {pt}, which no codec has"));
        }
        if encoding.rid.as_ref().is_some_and(|rid| rid.len() > MAX_STRING_LEN) {
            return Err("RID too long".into());
        }
    }
    if parameters.header_extensions.len() > MAX_HEADER_EXTENSIONS {
        return Err(format!("at most {MAX_HEADER_EXTENSIONS} header extensions"));
    }
    let mut ids = HashSet::new();
    for extension in &parameters.header_extensions {
        // One-byte header extension ids are 1-14; two-byte ones up to 255.
        if extension.id == 0 || extension.id > 255 || !ids.insert(extension.id) {
            return Err(format!("header extension id {} is out of range or used twice", extension.id));
        }
    }
    let too_long = |s: &Option<String>| s.as_ref().is_some_and(|s| s.len() > MAX_STRING_LEN);
    if too_long(&parameters.rtcp.cname) || too_long(&parameters.mid) || too_long(&parameters.msid) {
        return Err("CNAME, MID or MSID too long".into());
    }
    Ok(())
}

fn check_codec(kind: MediaKind, codec: &RtpCodecParameters) -> Result<(), String> {
    let matches_kind = matches!(
        (kind, codec.mime_type()),
        (MediaKind::Audio, MimeType::Audio(_)) | (MediaKind::Video, MimeType::Video(_))
    );
    if !matches_kind {
        return Err(format!("codec {} in a {kind:?} track", codec.mime_type().as_str()));
    }
    // Dynamic payload types, or the static ones below 35 (RFC 3551).
    let pt = codec.payload_type();
    if pt > 127 || (35..96).contains(&pt) {
        return Err(format!("payload type {pt} is not a valid RTP payload type"));
    }
    let rate = codec.clock_rate().get();
    if !(1_000..=192_000).contains(&rate) {
        return Err(format!("clock rate {rate} out of range"));
    }
    if let RtpCodecParameters::Audio { channels, .. } = codec
        && channels.get() > 8
    {
        return Err(format!("{channels} audio channels"));
    }
    let parameters = codec.parameters();
    if parameters.iter().count() > MAX_CODEC_PARAMETERS {
        return Err("too many codec parameters".into());
    }
    for (name, value) in parameters.iter() {
        let long_value = matches!(
            value,
            RtpCodecParametersParametersValue::String(s) if s.len() > MAX_STRING_LEN
        );
        if name.len() > MAX_STRING_LEN || long_value {
            return Err("codec parameter too long".into());
        }
    }
    if codec.rtcp_feedback().len() > 8 {
        return Err("too many RTCP feedback entries".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::TrackSpec;

    fn vp8() -> RtpParameters {
        let spec: TrackSpec = serde_json::from_value(
            serde_json::json!({"kind": "video", "codec": "vp8", "payloadType": 96, "ssrc": 1111}),
        )
        .expect("test value");
        spec.rtp_parameters().expect("test value")
    }

    #[test]
    fn honest_parameters_pass_and_broken_ones_do_not() {
        assert_eq!(check_piped_parameters(MediaKind::Video, &vp8()), Ok(()));
        assert!(check_piped_parameters(MediaKind::Audio, &vp8()).is_err(), "video codec in an audio track");
        let mut p = vp8();
        p.encodings[0].ssrc = None;
        assert!(check_piped_parameters(MediaKind::Video, &p).is_err());
        let mut p = vp8();
        p.encodings = vec![p.encodings[0].clone(); MAX_ENCODINGS + 1];
        assert!(check_piped_parameters(MediaKind::Video, &p).is_err());
        let mut p = vp8();
        p.encodings.push(p.encodings[0].clone());
        assert!(check_piped_parameters(MediaKind::Video, &p).is_err(), "SSRC used twice");
        let mut p = vp8();
        p.codecs.clear();
        assert!(check_piped_parameters(MediaKind::Video, &p).is_err());
        let mut p = vp8();
        p.rtcp.cname = Some("x".repeat(1000));
        assert!(check_piped_parameters(MediaKind::Video, &p).is_err());
        let mut p = vp8();
        p.encodings[0].codec_payload_type = Some(42);
        assert!(check_piped_parameters(MediaKind::Video, &p).is_err());
    }
}
