//! The SDP offer parser, the negotiation of each section into mediasoup RTP
//! parameters and the answer writer, on offers shaped like Chrome's (plain and
//! simulcast), Firefox's and a WHEP player's.
//!
//! The router capabilities are built by hand, so these tests need no worker.
//! [`router_capabilities`] is what a mediasoup 0.33 router made
//! with the node's router codecs reports as `rtp_capabilities()` (checked
//! against a real worker), and its header extensions are mediasoup's own
//! supported list.
//!

use std::num::{NonZeroU8, NonZeroU32};

use mediasoup::prelude::{
    IceCandidate, IceParameters, MediaKind, MimeTypeAudio, MimeTypeVideo, Protocol, RtcpFeedback, RtcpParameters,
    RtpCapabilitiesFinalized, RtpCodecCapability, RtpCodecParameters, RtpCodecParametersParameters,
    RtpEncodingParameters, RtpEncodingParametersRtx, RtpHeaderExtensionParameters, RtpHeaderExtensionUri,
    RtpParameters,
};
use mediasoup::supported_rtp_capabilities::get_supported_rtp_capabilities;
use mediasoup::types::data_structures::{DtlsFingerprint, DtlsRole, IceCandidateTcpType, IceCandidateType};
use mediasoup::types::rtp_parameters::{
    RtpCodecCapabilityFinalized, RtpCodecParametersParametersValue, RtpHeaderExtension, RtpHeaderExtensionDirection,
};

use super::answer::Sender;
use super::offer::{
    Fingerprint, MAX_LINES, MAX_RIDS, MAX_SDP_BYTES, MAX_SECTIONS, MediaSection, OfferedCodec, SimulcastStream,
};
use super::{
    AnswerSection, Direction, LocalTransport, Offer, SdpError, Setup, dtls_parameters, play, receive, write_answer,
};

// ---------------------------------------------------------------------------
// Offers
// ---------------------------------------------------------------------------

/// The DTLS fingerprint of [`CHROME_OFFER`].
const CHROME_FINGERPRINT: &str =
    "3A:7F:1C:9E:4B:22:D8:61:0F:AB:5C:E3:97:4D:18:B6:C2:5E:09:F4:71:AA:3D:8C:E6:12:5B:90:4F:C7:2E:D3";
const CHROME_CNAME: &str = "Hq3xVb7sPz9RkLm2";
const CHROME_AUDIO_SSRC: u32 = 3_098_291_123;
const CHROME_VIDEO_SSRC: u32 = 1_868_408_215;
const CHROME_RTX_SSRC: u32 = 2_549_136_470;

/// A Chrome publisher (WHIP: two sendonly transceivers), as Chrome writes it
/// (LF here; [`crlf`] gives the CRLF Chrome sends).
const CHROME_OFFER: &str = "v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=extmap-allow-mixed
a=msid-semantic: WMS 5a7e4f1c-3b2d-4e8f-9a6b-1c0d2e3f4a5b
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:Kx3e
a=ice-pwd:2l6Gh1Jq9rYpT7qJ2sN4vKXb
a=ice-options:trickle
a=fingerprint:sha-256 3A:7F:1C:9E:4B:22:D8:61:0F:AB:5C:E3:97:4D:18:B6:C2:5E:09:F4:71:AA:3D:8C:E6:12:5B:90:4F:C7:2E:D3
a=setup:actpass
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=sendonly
a=msid:5a7e4f1c-3b2d-4e8f-9a6b-1c0d2e3f4a5b 8c1f2e3d-4a5b-4c6d-8e7f-9a0b1c2d3e4f
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
a=ssrc:3098291123 cname:Hq3xVb7sPz9RkLm2
a=ssrc:3098291123 msid:5a7e4f1c-3b2d-4e8f-9a6b-1c0d2e3f4a5b 8c1f2e3d-4a5b-4c6d-8e7f-9a0b1c2d3e4f
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 104 105 108 109 114 115 116 117 45 46 98 99 100 101 119 120 121
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:Kx3e
a=ice-pwd:2l6Gh1Jq9rYpT7qJ2sN4vKXb
a=ice-options:trickle
a=fingerprint:sha-256 3A:7F:1C:9E:4B:22:D8:61:0F:AB:5C:E3:97:4D:18:B6:C2:5E:09:F4:71:AA:3D:8C:E6:12:5B:90:4F:C7:2E:D3
a=setup:actpass
a=mid:1
a=extmap:14 urn:ietf:params:rtp-hdrext:toffset
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=extmap:13 urn:3gpp:video-orientation
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=extmap:5 http://www.webrtc.org/experiments/rtp-hdrext/playout-delay
a=extmap:6 http://www.webrtc.org/experiments/rtp-hdrext/video-content-type
a=extmap:7 http://www.webrtc.org/experiments/rtp-hdrext/video-timing
a=extmap:8 http://www.webrtc.org/experiments/rtp-hdrext/color-space
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id
a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id
a=sendonly
a=msid:5a7e4f1c-3b2d-4e8f-9a6b-1c0d2e3f4a5b 0f9e8d7c-6b5a-4d3c-9b2a-1f0e9d8c7b6a
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 goog-remb
a=rtcp-fb:96 transport-cc
a=rtcp-fb:96 ccm fir
a=rtcp-fb:96 nack
a=rtcp-fb:96 nack pli
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=rtpmap:102 H264/90000
a=rtcp-fb:102 goog-remb
a=rtcp-fb:102 transport-cc
a=rtcp-fb:102 ccm fir
a=rtcp-fb:102 nack
a=rtcp-fb:102 nack pli
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f
a=rtpmap:103 rtx/90000
a=fmtp:103 apt=102
a=rtpmap:104 H264/90000
a=rtcp-fb:104 goog-remb
a=rtcp-fb:104 transport-cc
a=rtcp-fb:104 ccm fir
a=rtcp-fb:104 nack
a=rtcp-fb:104 nack pli
a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f
a=rtpmap:105 rtx/90000
a=fmtp:105 apt=104
a=rtpmap:108 H264/90000
a=rtcp-fb:108 goog-remb
a=rtcp-fb:108 transport-cc
a=rtcp-fb:108 ccm fir
a=rtcp-fb:108 nack
a=rtcp-fb:108 nack pli
a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f
a=rtpmap:109 rtx/90000
a=fmtp:109 apt=108
a=rtpmap:114 H264/90000
a=rtcp-fb:114 goog-remb
a=rtcp-fb:114 transport-cc
a=rtcp-fb:114 ccm fir
a=rtcp-fb:114 nack
a=rtcp-fb:114 nack pli
a=fmtp:114 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f
a=rtpmap:115 rtx/90000
a=fmtp:115 apt=114
a=rtpmap:116 H264/90000
a=rtcp-fb:116 goog-remb
a=rtcp-fb:116 transport-cc
a=rtcp-fb:116 ccm fir
a=rtcp-fb:116 nack
a=rtcp-fb:116 nack pli
a=fmtp:116 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f
a=rtpmap:117 rtx/90000
a=fmtp:117 apt=116
a=rtpmap:45 AV1/90000
a=rtcp-fb:45 goog-remb
a=rtcp-fb:45 transport-cc
a=rtcp-fb:45 ccm fir
a=rtcp-fb:45 nack
a=rtcp-fb:45 nack pli
a=fmtp:45 level-idx=5;profile=0;tier=0
a=rtpmap:46 rtx/90000
a=fmtp:46 apt=45
a=rtpmap:98 VP9/90000
a=rtcp-fb:98 goog-remb
a=rtcp-fb:98 transport-cc
a=rtcp-fb:98 ccm fir
a=rtcp-fb:98 nack
a=rtcp-fb:98 nack pli
a=fmtp:98 profile-id=0
a=rtpmap:99 rtx/90000
a=fmtp:99 apt=98
a=rtpmap:100 VP9/90000
a=rtcp-fb:100 goog-remb
a=rtcp-fb:100 transport-cc
a=rtcp-fb:100 ccm fir
a=rtcp-fb:100 nack
a=rtcp-fb:100 nack pli
a=fmtp:100 profile-id=2
a=rtpmap:101 rtx/90000
a=fmtp:101 apt=100
a=rtpmap:119 red/90000
a=rtpmap:120 rtx/90000
a=fmtp:120 apt=119
a=rtpmap:121 ulpfec/90000
a=ssrc-group:FID 1868408215 2549136470
a=ssrc:1868408215 cname:Hq3xVb7sPz9RkLm2
a=ssrc:1868408215 msid:5a7e4f1c-3b2d-4e8f-9a6b-1c0d2e3f4a5b 0f9e8d7c-6b5a-4d3c-9b2a-1f0e9d8c7b6a
a=ssrc:2549136470 cname:Hq3xVb7sPz9RkLm2
a=ssrc:2549136470 msid:5a7e4f1c-3b2d-4e8f-9a6b-1c0d2e3f4a5b 0f9e8d7c-6b5a-4d3c-9b2a-1f0e9d8c7b6a
";

/// The DTLS fingerprint of [`FIREFOX_OFFER`] (session level).
const FIREFOX_FINGERPRINT: &str =
    "5D:19:A2:6E:C4:08:7B:F3:91:2A:DE:64:0C:B8:37:E5:4A:9F:16:C2:D0:83:5B:E7:29:F1:6C:0A:B4:73:E8:1D";
const FIREFOX_CNAME: &str = "{5f7b5d4c-4e0a-4b39-9c5e-3b8a2f1d6e7c}";

/// A Firefox publisher as Firefox writes it: the fingerprint at session level
/// and, in each section, attributes grouped by type in Firefox's order, so
/// `a=fmtp` and `a=rtcp-fb` come *before* the `a=rtpmap` they refer to.
const FIREFOX_OFFER: &str = "v=0
o=mozilla...THIS_IS_SDPARTA-128.0 6120451418226375327 0 IN IP4 0.0.0.0
s=-
t=0 0
a=fingerprint:sha-256 5D:19:A2:6E:C4:08:7B:F3:91:2A:DE:64:0C:B8:37:E5:4A:9F:16:C2:D0:83:5B:E7:29:F1:6C:0A:B4:73:E8:1D
a=group:BUNDLE 0 1
a=ice-options:trickle
a=msid-semantic:WMS *
m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101
c=IN IP4 0.0.0.0
a=sendonly
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:2/recvonly urn:ietf:params:rtp-hdrext:csrc-audio-level
a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid
a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1
a=fmtp:101 0-15
a=ice-pwd:9b1f5a8ed7d0e6d2e5f5f2c7b8f4a1e6
a=ice-ufrag:c3a0c2f5
a=mid:0
a=msid:{0c7d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f} {1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d}
a=rtcp-mux
a=rtpmap:109 opus/48000/2
a=rtpmap:9 G722/8000/1
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=setup:actpass
a=ssrc:2655508255 cname:{5f7b5d4c-4e0a-4b39-9c5e-3b8a2f1d6e7c}
m=video 9 UDP/TLS/RTP/SAVPF 120 124 121 125 126 127 97 98 123 122 119
c=IN IP4 0.0.0.0
a=sendonly
a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:4 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=extmap:5 urn:ietf:params:rtp-hdrext:toffset
a=extmap:6/recvonly http://www.webrtc.org/experiments/rtp-hdrext/playout-delay
a=extmap:7 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=fmtp:126 profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1
a=fmtp:97 profile-level-id=42e01f;level-asymmetry-allowed=1
a=fmtp:120 max-fs=12288;max-fr=60
a=fmtp:124 apt=120
a=fmtp:121 max-fs=12288;max-fr=60
a=fmtp:125 apt=121
a=fmtp:127 apt=126
a=fmtp:98 apt=97
a=fmtp:119 apt=122
a=ice-pwd:9b1f5a8ed7d0e6d2e5f5f2c7b8f4a1e6
a=ice-ufrag:c3a0c2f5
a=mid:1
a=msid:{0c7d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f} {2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e}
a=rtcp-fb:120 nack
a=rtcp-fb:120 nack pli
a=rtcp-fb:120 ccm fir
a=rtcp-fb:120 goog-remb
a=rtcp-fb:120 transport-cc
a=rtcp-fb:121 nack
a=rtcp-fb:121 nack pli
a=rtcp-fb:121 ccm fir
a=rtcp-fb:121 goog-remb
a=rtcp-fb:121 transport-cc
a=rtcp-fb:126 nack
a=rtcp-fb:126 nack pli
a=rtcp-fb:126 ccm fir
a=rtcp-fb:126 goog-remb
a=rtcp-fb:126 transport-cc
a=rtcp-fb:97 nack
a=rtcp-fb:97 nack pli
a=rtcp-fb:97 ccm fir
a=rtcp-fb:97 goog-remb
a=rtcp-fb:97 transport-cc
a=rtcp-fb:123 nack
a=rtcp-fb:123 nack pli
a=rtcp-fb:123 ccm fir
a=rtcp-fb:123 goog-remb
a=rtcp-fb:123 transport-cc
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:120 VP8/90000
a=rtpmap:124 rtx/90000
a=rtpmap:121 VP9/90000
a=rtpmap:125 rtx/90000
a=rtpmap:126 H264/90000
a=rtpmap:127 rtx/90000
a=rtpmap:97 H264/90000
a=rtpmap:98 rtx/90000
a=rtpmap:123 ulpfec/90000
a=rtpmap:122 red/90000
a=rtpmap:119 rtx/90000
a=setup:actpass
a=ssrc:3351287012 cname:{5f7b5d4c-4e0a-4b39-9c5e-3b8a2f1d6e7c}
a=ssrc:1230491266 cname:{5f7b5d4c-4e0a-4b39-9c5e-3b8a2f1d6e7c}
a=ssrc-group:FID 3351287012 1230491266
";

/// A WHEP player (two recvonly sections) with payload types and extension ids
/// of its own: opus 109, VP8 120 with RTX 121, H.264 126 with RTX 127; ICE,
/// fingerprint and setup at session level.
const PLAYER_OFFER: &str = "v=0
o=- 7390144602254874913 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=ice-ufrag:pl4Y
a=ice-pwd:Pq8sW3vN6xZ1bC4dF7gH0jK2
a=fingerprint:sha-256 8E:2B:D4:71:0A:C9:5F:36:E2:9B:47:1C:D8:60:AF:13:7E:C5:92:4A:0D:B6:E8:25:F9:13:6C:A0:57:D2:8B:4E
a=setup:actpass
m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101
c=IN IP4 0.0.0.0
a=mid:0
a=recvonly
a=rtcp-mux
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:7 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=rtpmap:109 opus/48000/2
a=rtcp-fb:109 transport-cc
a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1
a=rtpmap:9 G722/8000/1
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
m=video 9 UDP/TLS/RTP/SAVPF 120 121 126 127
c=IN IP4 0.0.0.0
a=mid:1
a=recvonly
a=rtcp-mux
a=rtcp-rsize
a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:4 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=extmap:5 urn:ietf:params:rtp-hdrext:toffset
a=extmap:7 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=rtpmap:120 VP8/90000
a=rtcp-fb:120 nack
a=rtcp-fb:120 nack pli
a=rtcp-fb:120 ccm fir
a=rtcp-fb:120 goog-remb
a=rtcp-fb:120 transport-cc
a=fmtp:120 max-fs=12288;max-fr=60
a=rtpmap:121 rtx/90000
a=fmtp:121 apt=120
a=rtpmap:126 H264/90000
a=rtcp-fb:126 nack
a=rtcp-fb:126 nack pli
a=rtcp-fb:126 ccm fir
a=rtcp-fb:126 goog-remb
a=rtcp-fb:126 transport-cc
a=fmtp:126 profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1
a=rtpmap:127 rtx/90000
a=fmtp:127 apt=126
";

/// A data channel section, to append to an offer as its third section (mid 2).
const DATACHANNEL_SECTION: &str = "m=application 9 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 0.0.0.0
a=mid:2
a=sctp-port:5000
a=max-message-size:262144
";

/// [`CHROME_OFFER`] as Chrome sends it with three simulcast layers: the same
/// video section without `a=ssrc` lines, with `a=rid:q/h/f send` and
/// `a=simulcast:send q;h;f` (and the BUNDLE, ICE and DTLS lines unchanged).
fn chrome_simulcast_offer() -> String {
    let mut offer = without_lines(CHROME_OFFER, |line| line.starts_with("a=ssrc") && !line.contains("3098291123"));
    for line in ["a=rid:q send", "a=rid:h send", "a=rid:f send", "a=simulcast:send q;h;f"] {
        offer.push_str(line);
        offer.push('\n');
    }
    offer
}

// ---------------------------------------------------------------------------
// Text helpers
// ---------------------------------------------------------------------------

fn crlf(text: &str) -> String {
    text.replace('\n', "\r\n")
}

fn lines_of(text: &str) -> Vec<&str> {
    text.split('\n').map(|line| line.strip_suffix('\r').unwrap_or(line)).collect()
}

/// The 1-based number of the line equal to `line`, which occurs once.
fn number_of(text: &str, line: &str) -> usize {
    let found: Vec<usize> =
        lines_of(text).iter().enumerate().filter(|(_, l)| **l == line).map(|(index, _)| index + 1).collect();
    assert_eq!(found.len(), 1, "{line:?} should occur exactly once");
    found[0]
}

/// `text` with each line equal to `old` replaced by the lines `new` (none: removed).
fn replace_line(text: &str, old: &str, new: &[&str]) -> String {
    assert!(lines_of(text).contains(&old), "{old:?} is not a line of the text");
    let mut out = String::new();
    for line in lines_of(text) {
        let replacement: &[&str] = if line == old { new } else { &[line] };
        for l in replacement {
            out.push_str(l);
            out.push('\n');
        }
    }
    out.truncate(out.len() - 1);
    out
}

/// `text` with the lines `new` inserted after the line `after` (which occurs once).
fn insert_after(text: &str, after: &str, new: &[&str]) -> String {
    number_of(text, after);
    let mut with_it = vec![after];
    with_it.extend_from_slice(new);
    replace_line(text, after, &with_it)
}

/// `text` without the lines `drop` selects.
fn without_lines(text: &str, drop: impl Fn(&str) -> bool) -> String {
    let kept: Vec<&str> = lines_of(text).into_iter().filter(|line| !drop(line)).collect();
    kept.join("\n")
}

/// [`CHROME_OFFER`] with the video m= line listing only `formats` (the other
/// codecs' lines stay, and the parser leaves them out).
fn chrome_video_with(formats: &str) -> String {
    let m_line = lines_of(CHROME_OFFER).into_iter().find(|l| l.starts_with("m=video")).expect("a video m= line");
    replace_line(CHROME_OFFER, m_line, &[&format!("m=video 9 UDP/TLS/RTP/SAVPF {formats}")])
}

fn parse(text: &str) -> Offer {
    Offer::parse(text).expect("the offer parses")
}

fn section(text: &str, index: usize) -> MediaSection {
    parse(text).sections.into_iter().nth(index).expect("the offer has that section")
}

/// The line and reason of the `Malformed` error `text` gives.
fn malformed(text: &str) -> (usize, String) {
    match Offer::parse(text) {
        Err(SdpError::Malformed { line, reason }) => (line, reason),
        other => panic!("expected SdpError::Malformed, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// mediasoup values
// ---------------------------------------------------------------------------

fn nz32(value: u32) -> NonZeroU32 {
    NonZeroU32::new(value).expect("a non-zero value")
}

fn nz8(value: u8) -> NonZeroU8 {
    NonZeroU8::new(value).expect("a non-zero value")
}

fn video_feedback() -> Vec<RtcpFeedback> {
    vec![
        RtcpFeedback::Nack,
        RtcpFeedback::NackPli,
        RtcpFeedback::CcmFir,
        RtcpFeedback::GoogRemb,
        RtcpFeedback::TransportCc,
    ]
}

/// Chrome's order of the same five feedback types.
fn chrome_video_feedback() -> Vec<RtcpFeedback> {
    vec![
        RtcpFeedback::GoogRemb,
        RtcpFeedback::TransportCc,
        RtcpFeedback::CcmFir,
        RtcpFeedback::Nack,
        RtcpFeedback::NackPli,
    ]
}

fn h264_parameters(profile_level_id: &'static str) -> RtpCodecParametersParameters {
    RtpCodecParametersParameters::from([
        ("level-asymmetry-allowed", 1_u32.into()),
        ("packetization-mode", 1_u32.into()),
        ("profile-level-id", profile_level_id.into()),
    ])
}

fn apt(payload_type: u8) -> RtpCodecParametersParameters {
    RtpCodecParametersParameters::from([("apt", u32::from(payload_type).into())])
}

/// The node's router codecs (node/src/codecs.rs `router_codecs`, which this
/// crate cannot depend on): Opus, VP8, H.264 constrained baseline with
/// packetization mode 1, VP9 profile 0.
fn router_codecs() -> Vec<RtpCodecCapability> {
    vec![
        RtpCodecCapability::Audio {
            mime_type: MimeTypeAudio::Opus,
            preferred_payload_type: None,
            clock_rate: nz32(48000),
            channels: nz8(2),
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
            parameters: h264_parameters("42e01f"),
            rtcp_feedback: vec![],
        },
        RtpCodecCapability::Video {
            mime_type: MimeTypeVideo::Vp9,
            preferred_payload_type: None,
            clock_rate: nz32(90000),
            parameters: RtpCodecParametersParameters::from([("profile-id", 0_u32.into())]),
            rtcp_feedback: vec![],
        },
    ]
}

/// What a mediasoup 0.33 router made with [`router_codecs`] reports as its
/// `rtp_capabilities()`: payload types from 100 in codec order, an RTX after
/// each video codec, the feedback of mediasoup's supported codec, the codec's
/// parameters, and every header extension mediasoup supports.
fn router_capabilities() -> RtpCapabilitiesFinalized {
    let rtx = |payload_type: u8, of: u8| RtpCodecCapabilityFinalized::Video {
        mime_type: MimeTypeVideo::Rtx,
        preferred_payload_type: payload_type,
        clock_rate: nz32(90000),
        parameters: apt(of),
        rtcp_feedback: vec![],
    };
    RtpCapabilitiesFinalized {
        codecs: vec![
            RtpCodecCapabilityFinalized::Audio {
                mime_type: MimeTypeAudio::Opus,
                preferred_payload_type: 100,
                clock_rate: nz32(48000),
                channels: nz8(2),
                parameters: RtpCodecParametersParameters::default(),
                rtcp_feedback: vec![RtcpFeedback::Nack, RtcpFeedback::TransportCc],
            },
            RtpCodecCapabilityFinalized::Video {
                mime_type: MimeTypeVideo::Vp8,
                preferred_payload_type: 101,
                clock_rate: nz32(90000),
                parameters: RtpCodecParametersParameters::default(),
                rtcp_feedback: video_feedback(),
            },
            rtx(102, 101),
            RtpCodecCapabilityFinalized::Video {
                mime_type: MimeTypeVideo::H264,
                preferred_payload_type: 103,
                clock_rate: nz32(90000),
                parameters: h264_parameters("42e01f"),
                rtcp_feedback: video_feedback(),
            },
            rtx(104, 103),
            RtpCodecCapabilityFinalized::Video {
                mime_type: MimeTypeVideo::Vp9,
                preferred_payload_type: 105,
                clock_rate: nz32(90000),
                parameters: RtpCodecParametersParameters::from([("profile-id", 0_u32.into())]),
                rtcp_feedback: video_feedback(),
            },
            rtx(106, 105),
        ],
        header_extensions: get_supported_rtp_capabilities().header_extensions,
    }
}

fn extension(uri: RtpHeaderExtensionUri, id: u16) -> RtpHeaderExtensionParameters {
    RtpHeaderExtensionParameters { uri, id, encrypt: false }
}

fn player_extension(kind: MediaKind, uri: RtpHeaderExtensionUri, id: u16) -> RtpHeaderExtension {
    RtpHeaderExtension {
        kind,
        uri,
        preferred_id: id,
        preferred_encrypt: false,
        direction: RtpHeaderExtensionDirection::SendRecv,
    }
}

/// The Opus codec of a track published by [`CHROME_OFFER`], as the router
/// holds it (its payload type, the publisher's parameters).
fn opus_track() -> RtpCodecParameters {
    RtpCodecParameters::Audio {
        mime_type: MimeTypeAudio::Opus,
        payload_type: 100,
        clock_rate: nz32(48000),
        channels: nz8(2),
        parameters: RtpCodecParametersParameters::from([("minptime", 10_u32.into()), ("useinbandfec", 1_u32.into())]),
        rtcp_feedback: vec![RtcpFeedback::Nack, RtcpFeedback::TransportCc],
    }
}

fn vp8_track() -> RtpCodecParameters {
    RtpCodecParameters::Video {
        mime_type: MimeTypeVideo::Vp8,
        payload_type: 101,
        clock_rate: nz32(90000),
        parameters: RtpCodecParametersParameters::default(),
        rtcp_feedback: video_feedback(),
    }
}

fn h264_track() -> RtpCodecParameters {
    RtpCodecParameters::Video {
        mime_type: MimeTypeVideo::H264,
        payload_type: 103,
        clock_rate: nz32(90000),
        parameters: h264_parameters("42e01f"),
        rtcp_feedback: video_feedback(),
    }
}

// ---------------------------------------------------------------------------
// The fixtures themselves
// ---------------------------------------------------------------------------

#[test]
fn the_hand_built_router_capabilities_follow_mediasoups_supported_codecs() {
    let supported = get_supported_rtp_capabilities();
    let capabilities = router_capabilities();
    let media: Vec<&RtpCodecCapabilityFinalized> = capabilities.codecs.iter().filter(|c| !c.is_rtx()).collect();
    assert_eq!(media.len(), router_codecs().len());
    for (finalized, codec) in media.iter().zip(router_codecs()) {
        // The supported codec a router codec is made from (mediasoup's match:
        // same MIME type; H.264 has one supported entry in 0.33).
        let base = supported
            .codecs
            .iter()
            .find(|s| s.mime_type() == codec.mime_type())
            .expect("mediasoup supports every router codec");
        let (RtpCodecCapabilityFinalized::Audio { rtcp_feedback, parameters, .. }
        | RtpCodecCapabilityFinalized::Video { rtcp_feedback, parameters, .. }) = finalized;
        assert_eq!(rtcp_feedback, base.rtcp_feedback(), "{:?}", codec.mime_type());
        assert_eq!(parameters, codec.parameters(), "{:?}", codec.mime_type());
    }
    // An RTX right after each video codec, repairing it.
    for pair in capabilities.codecs.windows(2) {
        if let (RtpCodecCapabilityFinalized::Video { mime_type, preferred_payload_type, .. }, rtx) =
            (&pair[0], &pair[1])
            && *mime_type != MimeTypeVideo::Rtx
        {
            assert!(rtx.is_rtx(), "no RTX after {mime_type:?}");
            assert_eq!(rtx.parameters(), &apt(*preferred_payload_type));
        }
    }
}

#[test]
fn the_chrome_offer_fixture_is_the_same_with_crlf_and_lf_line_ends() {
    let lf = parse(CHROME_OFFER);
    let crlf_offer = parse(&crlf(CHROME_OFFER));
    assert_eq!(lf, crlf_offer);
    assert_eq!(lf.sections.len(), 2);
    // Mixed line ends too (a client joining lines by hand).
    let mixed = CHROME_OFFER.replacen('\n', "\r\n", 40);
    assert_eq!(parse(&mixed), lf);
}

// ---------------------------------------------------------------------------
// Offer::parse
// ---------------------------------------------------------------------------

#[test]
fn a_chrome_offer_has_an_audio_and_a_video_section_with_their_mids_and_directions() {
    let offer = parse(&crlf(CHROME_OFFER));
    let summary: Vec<_> = offer
        .sections
        .iter()
        .map(|s| {
            (s.kind.as_str(), s.port, s.protocol.as_str(), s.mid.as_deref(), s.direction, s.rtcp_mux, s.rtcp_rsize)
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("audio", 9, "UDP/TLS/RTP/SAVPF", Some("0"), Direction::SendOnly, true, false),
            ("video", 9, "UDP/TLS/RTP/SAVPF", Some("1"), Direction::SendOnly, true, true),
        ]
    );
    assert_eq!(offer.bundle, ["0", "1"]);
    assert!(offer.extmap_allow_mixed);
    // Chrome writes ICE and DTLS per section, none at session level.
    assert_eq!((offer.ice_ufrag.as_deref(), offer.fingerprints.len(), offer.setup), (None, 0, None));
}

#[test]
fn every_chrome_audio_format_has_an_rtpmap_so_all_eight_are_kept_in_m_line_order() {
    let audio = section(CHROME_OFFER, 0);
    assert_eq!(audio.formats, ["111", "63", "9", "0", "8", "13", "110", "126"]);
    let codecs: Vec<(u8, &str, u32, Option<u8>)> =
        audio.codecs.iter().map(|c| (c.payload_type, c.name.as_str(), c.clock_rate, c.channels)).collect();
    assert_eq!(
        codecs,
        [
            (111, "opus", 48000, Some(2)),
            (63, "red", 48000, Some(2)),
            (9, "G722", 8000, None),
            (0, "PCMU", 8000, None),
            (8, "PCMA", 8000, None),
            (13, "CN", 8000, None),
            (110, "telephone-event", 48000, None),
            (126, "telephone-event", 8000, None),
        ]
    );
}

#[test]
fn chrome_video_codecs_are_listed_in_m_line_order_with_their_rtx() {
    let video = section(CHROME_OFFER, 1);
    let codecs: Vec<(u8, &str)> = video.codecs.iter().map(|c| (c.payload_type, c.name.as_str())).collect();
    assert_eq!(
        codecs,
        [
            (96, "VP8"),
            (97, "rtx"),
            (102, "H264"),
            (103, "rtx"),
            (104, "H264"),
            (105, "rtx"),
            (108, "H264"),
            (109, "rtx"),
            (114, "H264"),
            (115, "rtx"),
            (116, "H264"),
            (117, "rtx"),
            (45, "AV1"),
            (46, "rtx"),
            (98, "VP9"),
            (99, "rtx"),
            (100, "VP9"),
            (101, "rtx"),
            (119, "red"),
            (120, "rtx"),
            (121, "ulpfec"),
        ]
    );
    let rtx: Vec<(u8, Option<&str>)> =
        video.codecs.iter().filter(|c| c.is_rtx()).map(|c| (c.payload_type, c.parameter("apt"))).collect();
    assert_eq!(
        rtx,
        [
            (97, Some("96")),
            (103, Some("102")),
            (105, Some("104")),
            (109, Some("108")),
            (115, Some("114")),
            (117, Some("116")),
            (46, Some("45")),
            (99, Some("98")),
            (101, Some("100")),
            (120, Some("119")),
        ]
    );
}

#[test]
fn fmtp_and_rtcp_fb_lines_attach_to_the_payload_type_they_name() {
    let audio = section(CHROME_OFFER, 0);
    let opus = audio.codec(111).expect("opus");
    assert_eq!(
        opus.parameters,
        [("minptime".to_owned(), "10".to_owned()), ("useinbandfec".to_owned(), "1".to_owned())]
    );
    assert_eq!(opus.feedback, [("transport-cc".to_owned(), String::new())]);
    // RED's "111/111" has no '=': a key with an empty value.
    assert_eq!(audio.codec(63).expect("red").parameters, [("111/111".to_owned(), String::new())]);
    assert!(audio.codec(0).expect("PCMU").parameters.is_empty());
    assert!(audio.codec(0).expect("PCMU").feedback.is_empty());

    let video = section(CHROME_OFFER, 1);
    let h264 = video.codec(104).expect("H.264 104");
    assert_eq!(h264.parameter("packetization-mode"), Some("0"));
    assert_eq!(h264.parameter("PROFILE-LEVEL-ID"), Some("42001f"), "parameter names are case-insensitive");
    assert_eq!(video.codec(116).expect("H.264 116").parameter("profile-level-id"), Some("4d001f"));
    assert_eq!(video.codec(100).expect("VP9 100").parameter("profile-id"), Some("2"));
    let feedback = |c: &OfferedCodec| c.feedback.iter().map(|(t, p)| format!("{t} {p}")).collect::<Vec<_>>();
    assert_eq!(
        feedback(video.codec(96).expect("VP8")),
        ["goog-remb ", "transport-cc ", "ccm fir", "nack ", "nack pli"]
    );
    assert!(video.codec(97).expect("rtx").feedback.is_empty());
    assert!(video.codec(119).expect("red").feedback.is_empty());
}

#[test]
fn chrome_header_extensions_are_read_with_their_ids_in_order() {
    let audio = section(CHROME_OFFER, 0);
    let ids: Vec<u16> = audio.extensions.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [1, 2, 3, 4]);
    assert_eq!(audio.extensions[3], (4, "urn:ietf:params:rtp-hdrext:sdes:mid".to_owned()));

    let video = section(CHROME_OFFER, 1);
    let ids: Vec<u16> = video.extensions.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [14, 2, 13, 3, 5, 6, 7, 8, 4, 10, 11]);
    assert_eq!(video.extensions[0], (14, "urn:ietf:params:rtp-hdrext:toffset".to_owned()));
    assert_eq!(video.extensions[9], (10, "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id".to_owned()));
}

#[test]
fn ssrcs_keep_their_cname_once_and_the_fid_group_pairs_media_with_rtx() {
    let audio = section(CHROME_OFFER, 0);
    assert_eq!(audio.ssrcs, [(CHROME_AUDIO_SSRC, Some(CHROME_CNAME.to_owned()))]);
    assert!(audio.ssrc_groups.is_empty());

    let video = section(CHROME_OFFER, 1);
    assert_eq!(
        video.ssrcs,
        [(CHROME_VIDEO_SSRC, Some(CHROME_CNAME.to_owned())), (CHROME_RTX_SSRC, Some(CHROME_CNAME.to_owned()))]
    );
    assert_eq!(video.ssrc_groups, [("FID".to_owned(), vec![CHROME_VIDEO_SSRC, CHROME_RTX_SSRC])]);
    assert!(video.send_rids.is_empty() && video.simulcast_send.is_empty());
}

#[test]
fn an_ssrc_whose_msid_line_comes_first_still_gets_its_cname() {
    let text = without_lines(CHROME_OFFER, |l| l == "a=ssrc:3098291123 cname:Hq3xVb7sPz9RkLm2");
    let text = insert_after(
        &text,
        "a=ssrc:3098291123 msid:5a7e4f1c-3b2d-4e8f-9a6b-1c0d2e3f4a5b 8c1f2e3d-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
        &["a=ssrc:3098291123 cname:late-cname"],
    );
    assert_eq!(section(&text, 0).ssrcs, [(CHROME_AUDIO_SSRC, Some("late-cname".to_owned()))]);
}

#[test]
fn transport_of_a_chrome_section_gives_its_own_ice_ufrag_fingerprint_and_setup() {
    let offer = parse(CHROME_OFFER);
    for section in &offer.sections {
        let (ufrag, fingerprints, setup) = offer.transport_of(section);
        assert_eq!(ufrag, Some("Kx3e"));
        assert_eq!(fingerprints, [Fingerprint { algorithm: "sha-256".into(), value: CHROME_FINGERPRINT.into() }]);
        assert_eq!(setup, Some(Setup::ActPass));
        assert_eq!(section.ice_pwd.as_deref(), Some("2l6Gh1Jq9rYpT7qJ2sN4vKXb"));
    }
}

#[test]
fn transport_of_falls_back_to_session_level_and_media_level_wins() {
    let offer = parse(PLAYER_OFFER);
    assert_eq!(offer.ice_ufrag.as_deref(), Some("pl4Y"));
    assert_eq!(offer.ice_pwd.as_deref(), Some("Pq8sW3vN6xZ1bC4dF7gH0jK2"));
    let (ufrag, fingerprints, setup) = offer.transport_of(&offer.sections[0]);
    assert_eq!((ufrag, setup), (Some("pl4Y"), Some(Setup::ActPass)));
    assert_eq!(fingerprints, offer.fingerprints.as_slice());
    assert_eq!(fingerprints.len(), 1);

    let text = insert_after(
        PLAYER_OFFER,
        "a=mid:1",
        &[
            "a=ice-ufrag:m3d1a",
            "a=setup:passive",
            "a=fingerprint:SHA-1 ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01",
        ],
    );
    let offer = parse(&text);
    let (ufrag, fingerprints, setup) = offer.transport_of(&offer.sections[1]);
    assert_eq!((ufrag, setup), (Some("m3d1a"), Some(Setup::Passive)));
    // The algorithm is lower-cased and the value upper-cased.
    assert_eq!(
        fingerprints,
        [Fingerprint {
            algorithm: "sha-1".into(),
            value: "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01".into()
        }]
    );
    // The other section still uses the session's.
    assert_eq!(offer.transport_of(&offer.sections[0]).0, Some("pl4Y"));
}

#[test]
fn a_firefox_offer_reads_its_session_fingerprint_mids_ssrcs_and_extmap_directions() {
    let offer = parse(&crlf(FIREFOX_OFFER));
    assert_eq!(offer.fingerprints, [Fingerprint { algorithm: "sha-256".into(), value: FIREFOX_FINGERPRINT.into() }]);
    assert_eq!(offer.bundle, ["0", "1"]);
    assert!(!offer.extmap_allow_mixed);
    let mids: Vec<Option<&str>> = offer.sections.iter().map(|s| s.mid.as_deref()).collect();
    assert_eq!(mids, [Some("0"), Some("1")]);
    for section in &offer.sections {
        let (ufrag, fingerprints, setup) = offer.transport_of(section);
        assert_eq!((ufrag, fingerprints.len(), setup), (Some("c3a0c2f5"), 1, Some(Setup::ActPass)));
        assert_eq!(section.direction, Direction::SendOnly);
    }
    let audio = &offer.sections[0];
    // "a=extmap:2/recvonly URI": the id without its direction.
    assert_eq!(audio.extensions[1], (2, "urn:ietf:params:rtp-hdrext:csrc-audio-level".to_owned()));
    assert_eq!(audio.ssrcs, [(2_655_508_255, Some(FIREFOX_CNAME.to_owned()))]);
    let video = &offer.sections[1];
    let pts: Vec<u8> = video.codecs.iter().map(|c| c.payload_type).collect();
    assert_eq!(pts, [120, 124, 121, 125, 126, 127, 97, 98, 123, 122, 119]);
    assert_eq!(video.ssrc_groups, [("FID".to_owned(), vec![3_351_287_012, 1_230_491_266])]);
}

#[test]
fn formats_without_an_rtpmap_and_rtpmaps_not_on_the_m_line_are_left_out() {
    let text = "v=0\nm=audio 9 UDP/TLS/RTP/SAVPF 0 111 8\na=mid:0\na=rtpmap:111 opus/48000/2\na=rtpmap:96 VP8/90000\n";
    let audio = section(text, 0);
    assert_eq!(audio.formats, ["0", "111", "8"]);
    let pts: Vec<u8> = audio.codecs.iter().map(|c| c.payload_type).collect();
    assert_eq!(pts, [111]);
}

#[test]
fn an_fmtp_or_rtcp_fb_line_before_its_rtpmap_still_applies() {
    // Firefox's order: every fmtp and rtcp-fb before the rtpmaps.
    let text = "v=0\nm=video 9 UDP/TLS/RTP/SAVPF 96\na=fmtp:96 max-fr=30\na=rtcp-fb:96 nack\na=rtpmap:96 VP8/90000\n";
    let vp8 = section(text, 0).codecs.into_iter().next().expect("VP8");
    assert_eq!(vp8.parameters, [("max-fr".to_owned(), "30".to_owned())]);
    assert_eq!(vp8.feedback, [("nack".to_owned(), String::new())]);
}

#[test]
fn a_wildcard_rtcp_fb_applies_to_every_codec_of_its_section() {
    let text = "v=0
m=video 9 UDP/TLS/RTP/SAVPF 96 97 98
a=rtpmap:96 VP8/90000
a=rtpmap:97 rtx/90000
a=rtcp-fb:* nack
a=rtpmap:98 VP9/90000
";
    let video = section(text, 0);
    let with_nack: Vec<u8> = video
        .codecs
        .iter()
        .filter(|c| c.feedback == [("nack".to_owned(), String::new())])
        .map(|c| c.payload_type)
        .collect();
    assert_eq!(with_nack, [96, 97, 98], "wherever the rtpmap is");
}

#[test]
fn a_section_without_a_direction_attribute_is_sendrecv() {
    let text = without_lines(CHROME_OFFER, |l| l == "a=sendonly");
    let offer = parse(&text);
    assert!(offer.sections.iter().all(|s| s.direction == Direction::SendRecv));
    assert!(Direction::SendRecv.sends() && Direction::SendRecv.receives());
    assert!(Direction::SendOnly.sends() && !Direction::SendOnly.receives());
    assert!(!Direction::RecvOnly.sends() && Direction::RecvOnly.receives());
    assert!(!Direction::Inactive.sends() && !Direction::Inactive.receives());
}

#[test]
fn only_the_first_bundle_group_is_kept() {
    let text = insert_after(CHROME_OFFER, "a=group:BUNDLE 0 1", &["a=group:BUNDLE 1", "a=group:LS 0 1"]);
    assert_eq!(parse(&text).bundle, ["0", "1"]);
    let text = replace_line(CHROME_OFFER, "a=group:BUNDLE 0 1", &["a=group:LS 0 1", "a=group:BUNDLE 1"]);
    assert_eq!(parse(&text).bundle, ["1"]);
}

#[test]
fn simulcast_rids_are_read_in_order_with_paused_streams_marked() {
    let video = section(&chrome_simulcast_offer(), 1);
    assert_eq!(video.send_rids, ["q", "h", "f"]);
    assert!(video.recv_rids.is_empty());
    assert!(video.ssrcs.is_empty());
    let streams = |list: &[(&str, bool)]| -> Vec<SimulcastStream> {
        list.iter().map(|(rid, paused)| SimulcastStream { rid: (*rid).to_owned(), paused: *paused }).collect()
    };
    assert_eq!(video.simulcast_send, streams(&[("q", false), ("h", false), ("f", false)]));

    // "~" pauses a stream; of "a,b" alternatives only the first counts; a
    // "recv" list is not read; a repeated a=rid line is kept once.
    let text = replace_line(
        &chrome_simulcast_offer(),
        "a=simulcast:send q;h;f",
        &["a=rid:h send", "a=rid:x recv", "a=simulcast:send q;~h,f recv x"],
    );
    let video = section(&text, 1);
    assert_eq!(video.send_rids, ["q", "h", "f"]);
    assert_eq!(video.recv_rids, ["x"]);
    assert_eq!(video.simulcast_send, streams(&[("q", false), ("h", true)]));
}

// ---------------------------------------------------------------------------
// Offer::parse errors
// ---------------------------------------------------------------------------

#[test]
fn an_sdp_not_starting_with_v0_is_malformed_at_line_1() {
    for text in ["", "\n", "o=- 1 2 IN IP4 127.0.0.1\nv=0\n", "v=1\n", " v=0\n", "\nv=0\n"] {
        assert_eq!(malformed(text).0, 1, "{text:?}");
    }
    let (line, reason) = malformed(&CHROME_OFFER.replacen("v=0", "v=00", 1));
    assert_eq!(line, 1);
    assert!(reason.contains("v=0"), "{reason}");
}

#[test]
fn a_line_that_is_not_a_letter_then_equals_is_malformed_at_its_number() {
    for bad in ["hello", "a", "ab=c", "=x", "é=x", "a:rtcp-mux"] {
        let text = insert_after(CHROME_OFFER, "a=mid:1", &[bad]);
        let (line, reason) = malformed(&text);
        assert_eq!(line, number_of(&text, bad), "{bad:?}");
        assert!(reason.contains("TYPE=VALUE"), "{reason}");
    }
    // Blank lines are skipped, and unknown letters are fine.
    let text = insert_after(CHROME_OFFER, "a=mid:1", &["", "x=anything", "b=AS:2500"]);
    assert_eq!(parse(&text).sections.len(), 2);
}

#[test]
fn a_bad_m_line_is_malformed_at_its_number() {
    for bad in [
        "m=video 70000 UDP/TLS/RTP/SAVPF 96",
        "m=video nine UDP/TLS/RTP/SAVPF 96",
        "m=video -1 UDP/TLS/RTP/SAVPF 96",
        "m=video 9 UDP/TLS/RTP/SAVPF",
        "m=video 9",
    ] {
        let text = chrome_video_with("96").replace("m=video 9 UDP/TLS/RTP/SAVPF 96", bad);
        assert_eq!(malformed(&text).0, 37, "{bad:?}");
    }
    // A port with a count ("9/2") is read as its port.
    let text = chrome_video_with("96").replace("m=video 9 UDP/TLS/RTP/SAVPF 96", "m=video 9/2 UDP/TLS/RTP/SAVPF 96");
    assert_eq!(section(&text, 1).port, 9);
}

#[test]
fn an_rtpmap_with_a_bad_payload_type_clock_rate_or_channels_is_malformed() {
    for bad in [
        "a=rtpmap:128 VP8/90000",
        "a=rtpmap:-1 VP8/90000",
        "a=rtpmap:x VP8/90000",
        "a=rtpmap:122 VP8",
        "a=rtpmap:122 VP8/",
        "a=rtpmap:122 VP8/0",
        "a=rtpmap:122 VP8/ninety",
        "a=rtpmap:122 /90000",
        "a=rtpmap:122",
        "a=rtpmap:122 opus/48000/0",
        "a=rtpmap:122 opus/48000/300",
    ] {
        let text = insert_after(CHROME_OFFER, "a=rtcp-rsize", &[bad]);
        assert_eq!(malformed(&text).0, number_of(&text, bad), "{bad:?}");
    }
    // 127 is the largest payload type.
    let text = insert_after(CHROME_OFFER, "a=rtcp-rsize", &["a=rtpmap:127 VP8/90000"]);
    assert!(Offer::parse(&text).is_ok());
}

#[test]
fn a_payload_type_mapped_twice_in_a_section_is_malformed_at_the_second_rtpmap() {
    let text = insert_after(CHROME_OFFER, "a=fmtp:97 apt=96", &["a=rtpmap:96 H264/90000"]);
    let (line, reason) = malformed(&text);
    assert_eq!(line, number_of(&text, "a=rtpmap:96 H264/90000"));
    assert!(reason.contains("twice"), "{reason}");
    // The same payload type in two sections is fine.
    let text = insert_after(CHROME_OFFER, "a=rtpmap:126 telephone-event/8000", &["a=rtpmap:96 L16/8000"]);
    assert!(Offer::parse(&text).is_ok());
}

#[test]
fn fmtp_and_rtcp_fb_with_a_bad_payload_type_are_malformed() {
    for bad in ["a=fmtp:200 apt=96", "a=fmtp:96", "a=rtcp-fb:abc nack", "a=rtcp-fb:96", "a=rtcp-fb:"] {
        let text = insert_after(CHROME_OFFER, "a=fmtp:97 apt=96", &[bad]);
        assert_eq!(malformed(&text).0, number_of(&text, bad), "{bad:?}");
    }
}

#[test]
fn an_extmap_id_outside_1_to_255_is_malformed() {
    for bad in [
        "a=extmap:0 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=extmap:256 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=extmap:65536 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=extmap:x urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=extmap:12",
    ] {
        let text = insert_after(CHROME_OFFER, "a=mid:1", &[bad]);
        assert_eq!(malformed(&text).0, number_of(&text, bad), "{bad:?}");
    }
    let text = insert_after(CHROME_OFFER, "a=mid:1", &["a=extmap:255/sendrecv urn:example:ext"]);
    assert_eq!(section(&text, 1).extensions[0], (255, "urn:example:ext".to_owned()));
}

#[test]
fn ice_credentials_with_bad_characters_or_length_are_malformed() {
    let too_long = format!("a=ice-pwd:{}", "p".repeat(257));
    for bad in
        ["a=ice-ufrag:abc", "a=ice-ufrag:ab-cd", "a=ice-ufrag:", "a=ice-ufrag:ab cd", "a=ice-pwd:pass=word", &too_long]
    {
        // At media level (Chrome) …
        let text = insert_after(CHROME_OFFER, "a=mid:1", &[bad]);
        assert_eq!(malformed(&text).0, number_of(&text, bad), "{bad:?}");
        // … and at session level.
        let text = insert_after(PLAYER_OFFER, "a=setup:actpass", &[bad]);
        assert_eq!(malformed(&text).0, 10, "{bad:?}");
    }
    let text = insert_after(CHROME_OFFER, "a=mid:1", &["a=ice-ufrag:a+b/"]);
    assert_eq!(section(&text, 1).ice_ufrag.as_deref(), Some("a+b/"));
}

#[test]
fn a_fingerprint_that_is_not_colon_separated_hex_is_malformed() {
    let too_long = format!("a=fingerprint:sha-512 {}", "AB:".repeat(65));
    for bad in [
        "a=fingerprint:sha-256 ZZ:7F:1C",
        "a=fingerprint:sha-256 3A-7F-1C",
        "a=fingerprint:sha-256",
        "a=fingerprint:sha-256 3A 7F",
        &too_long,
    ] {
        let text = insert_after(CHROME_OFFER, "a=mid:1", &[bad]);
        assert_eq!(malformed(&text).0, number_of(&text, bad), "{bad:?}");
    }
}

#[test]
fn a_setup_value_other_than_active_passive_or_actpass_is_malformed() {
    for bad in ["a=setup:holdconn", "a=setup:ACTPASS", "a=setup:"] {
        let text = insert_after(CHROME_OFFER, "a=mid:1", &[bad]);
        assert_eq!(malformed(&text).0, number_of(&text, bad), "{bad:?}");
    }
}

#[test]
fn a_bad_mid_is_malformed() {
    let long = format!("a=mid:{}", "m".repeat(33));
    for bad in ["a=mid:", "a=mid:a b", &long] {
        let text = replace_line(CHROME_OFFER, "a=mid:1", &[bad]);
        assert_eq!(malformed(&text).0, 45, "{bad:?}");
    }
    let text = replace_line(CHROME_OFFER, "a=mid:1", &[&format!("a=mid:{}", "m".repeat(32))]);
    assert_eq!(section(&text, 1).mid.map(|m| m.len()), Some(32));
}

#[test]
fn a_bad_rid_is_malformed() {
    let long = format!("a=rid:{} send", "r".repeat(17));
    for bad in ["a=rid:q.1 send", "a=rid:q", "a=rid:q sendrecv", "a=rid: send", &long, "a=simulcast:send q;h.1"] {
        let text = insert_after(&chrome_simulcast_offer(), "a=rtcp-rsize", &[bad]);
        assert_eq!(malformed(&text).0, number_of(&text, bad), "{bad:?}");
    }
    let text = insert_after(CHROME_OFFER, "a=rtcp-rsize", &[&format!("a=rid:{} send pt=96", "r-_9".repeat(4))]);
    assert_eq!(section(&text, 1).send_rids, ["r-_9r-_9r-_9r-_9"]);
}

#[test]
fn more_than_eight_rids_of_one_direction_are_malformed_at_the_ninth() {
    let rids: Vec<String> = (1..=9).map(|n| format!("a=rid:r{n} send")).collect();
    let rids: Vec<&str> = rids.iter().map(String::as_str).collect();
    let text = insert_after(CHROME_OFFER, "a=rtcp-rsize", &rids[..MAX_RIDS]);
    assert_eq!(section(&text, 1).send_rids.len(), MAX_RIDS);
    let text = insert_after(CHROME_OFFER, "a=rtcp-rsize", &rids);
    let (line, reason) = malformed(&text);
    assert_eq!(line, number_of(&text, "a=rid:r9 send"));
    assert!(reason.contains("at most 8"), "{reason}");
    // Eight of each direction are fine.
    let recv: Vec<String> = (1..=8).map(|n| format!("a=rid:v{n} recv")).collect();
    let mut both: Vec<&str> = rids[..MAX_RIDS].to_vec();
    both.extend(recv.iter().map(String::as_str));
    let text = insert_after(CHROME_OFFER, "a=rtcp-rsize", &both);
    assert_eq!(section(&text, 1).recv_rids.len(), 8);
}

#[test]
fn more_than_sixteen_media_sections_is_too_many_sections() {
    let offer = |sections: usize| {
        let mut text = String::from("v=0\r\ns=-\r\n");
        for mid in 0..sections {
            text.push_str(&format!("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:{mid}\r\n"));
        }
        text
    };
    assert_eq!(parse(&offer(MAX_SECTIONS)).sections.len(), 16);
    assert_eq!(Offer::parse(&offer(MAX_SECTIONS + 1)), Err(SdpError::TooManySections { max: 16 }));
}

#[test]
fn more_than_128_formats_on_an_m_line_is_malformed() {
    let formats = |count: u32| (0..count).map(|pt| (pt % 128).to_string()).collect::<Vec<_>>().join(" ");
    let text = chrome_video_with(&formats(128));
    assert_eq!(section(&text, 1).formats.len(), 128);
    let text = chrome_video_with(&formats(129));
    let (line, reason) = malformed(&text);
    assert_eq!(line, 37);
    assert!(reason.contains("128"), "{reason}");
}

#[test]
fn more_than_128_entries_of_a_per_section_list_is_malformed_at_the_first_extra_one() {
    let base = "v=0\nm=video 9 UDP/TLS/RTP/SAVPF 120\na=mid:0\na=rtpmap:120 VP8/90000\n";
    let numbered = |make: &dyn Fn(usize) -> String| (1..=129).map(make).collect::<Vec<String>>();
    let with = |lines: &[String]| {
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        insert_after(base, "a=rtpmap:120 VP8/90000", &lines)
    };
    // Extensions.
    let extmaps = numbered(&|id| format!("a=extmap:{id} urn:example:ext{id}"));
    assert_eq!(section(&with(&extmaps[..128]), 0).extensions.len(), 128);
    let text = with(&extmaps);
    assert_eq!(malformed(&text).0, 133);
    assert_eq!(number_of(&text, "a=extmap:129 urn:example:ext129"), 133);
    // SSRCs.
    let ssrcs = numbered(&|ssrc| format!("a=ssrc:{ssrc} cname:x"));
    assert_eq!(section(&with(&ssrcs[..128]), 0).ssrcs.len(), 128);
    assert_eq!(malformed(&with(&ssrcs)).0, 133);
    // Feedback of one codec.
    let feedback = numbered(&|n| format!("a=rtcp-fb:120 x-{n}"));
    assert_eq!(section(&with(&feedback[..128]), 0).codecs[0].feedback.len(), 128);
    assert_eq!(malformed(&with(&feedback)).0, 133);
    // SSRC groups.
    let groups = numbered(&|n| format!("a=ssrc-group:FID {n} {}", n + 1000));
    assert_eq!(malformed(&with(&groups)).0, 133);
    // The 128 payload types (0-127) can never exceed the codec bound: a 129th
    // a=rtpmap maps a payload type twice.
}

#[test]
fn an_offer_over_64_kib_is_too_large() {
    let base = crlf(CHROME_OFFER);
    let padding = |total: usize| format!("a=x-padding:{}\r\n", "p".repeat(total - base.len() - 14));
    let exactly = format!("{base}{}", padding(MAX_SDP_BYTES));
    assert_eq!(exactly.len(), 65536);
    assert_eq!(parse(&exactly).sections.len(), 2);
    let over = format!("{base}{}", padding(MAX_SDP_BYTES + 1));
    assert_eq!(Offer::parse(&over), Err(SdpError::TooLarge { max: 65536 }));
    let seventy_kib = format!("{base}{}", padding(70 * 1024));
    assert_eq!(Offer::parse(&seventy_kib), Err(SdpError::TooLarge { max: 65536 }));
}

#[test]
fn an_offer_of_more_than_4096_lines_is_too_many_lines() {
    // `count` lines, each ending in CRLF.
    let lines = |count: usize| format!("v=0\r\n{}", "a=x\r\n".repeat(count - 1));
    assert!(Offer::parse(&lines(4096)).is_ok(), "the empty remainder after the last CRLF is not a line");
    let text = lines(4097);
    assert!(text.len() < 21_000, "far below the byte bound");
    assert_eq!(Offer::parse(&text), Err(SdpError::TooManyLines { max: MAX_LINES }));
}

// ---------------------------------------------------------------------------
// negotiate::receive (WHIP)
// ---------------------------------------------------------------------------

#[test]
fn chrome_audio_is_received_as_opus_111_with_its_fmtp_as_numbers_and_the_feedback_the_router_knows() {
    let publication = receive(&section(&crlf(CHROME_OFFER), 0), &router_capabilities()).expect("audio is usable");
    assert_eq!(publication.kind, MediaKind::Audio);
    assert!(publication.rids.is_empty());
    let parameters = RtpCodecParametersParameters::from([("minptime", 10_u32.into()), ("useinbandfec", 1_u32.into())]);
    assert_eq!(
        publication.rtp_parameters,
        RtpParameters {
            mid: Some("0".to_owned()),
            codecs: vec![RtpCodecParameters::Audio {
                mime_type: MimeTypeAudio::Opus,
                payload_type: 111,
                clock_rate: nz32(48000),
                channels: nz8(2),
                parameters,
                rtcp_feedback: vec![RtcpFeedback::TransportCc],
            }],
            // abs-send-time (2) is gone: mediasoup 0.33 has it for video only.
            header_extensions: vec![
                extension(RtpHeaderExtensionUri::SsrcAudioLevel, 1),
                extension(RtpHeaderExtensionUri::TransportWideCcDraft01, 3),
                extension(RtpHeaderExtensionUri::Mid, 4),
            ],
            encodings: vec![RtpEncodingParameters {
                ssrc: Some(CHROME_AUDIO_SSRC),
                ..RtpEncodingParameters::default()
            }],
            rtcp: RtcpParameters { cname: Some(CHROME_CNAME.to_owned()), reduced_size: false },
            msid: None,
        }
    );
    let opus = &publication.rtp_parameters.codecs[0];
    assert_eq!(opus.parameters().get("useinbandfec"), Some(&RtpCodecParametersParametersValue::Number(1)));
}

#[test]
fn feedback_the_routers_codec_lacks_is_not_received() {
    // The router's Opus has nack and transport-cc; goog-remb, "nack sli" and
    // unknown types are left out.
    let text = insert_after(
        CHROME_OFFER,
        "a=rtcp-fb:111 transport-cc",
        &["a=rtcp-fb:111 goog-remb", "a=rtcp-fb:111 nack", "a=rtcp-fb:111 nack sli", "a=rtcp-fb:111 rrtr"],
    );
    let publication = receive(&section(&text, 0), &router_capabilities()).expect("audio is usable");
    assert_eq!(publication.rtp_parameters.codecs[0].rtcp_feedback(), [RtcpFeedback::TransportCc, RtcpFeedback::Nack]);
}

#[test]
fn chrome_video_is_received_as_vp8_96_with_rtx_97_and_the_fid_ssrcs() {
    let publication = receive(&section(&crlf(CHROME_OFFER), 1), &router_capabilities()).expect("video is usable");
    assert_eq!(publication.kind, MediaKind::Video);
    assert!(publication.rids.is_empty());
    assert_eq!(
        publication.rtp_parameters,
        RtpParameters {
            mid: Some("1".to_owned()),
            codecs: vec![
                RtpCodecParameters::Video {
                    mime_type: MimeTypeVideo::Vp8,
                    payload_type: 96,
                    clock_rate: nz32(90000),
                    parameters: RtpCodecParametersParameters::default(),
                    rtcp_feedback: chrome_video_feedback(),
                },
                RtpCodecParameters::Video {
                    mime_type: MimeTypeVideo::Rtx,
                    payload_type: 97,
                    clock_rate: nz32(90000),
                    parameters: apt(96),
                    rtcp_feedback: vec![],
                },
            ],
            // toffset (14), video-content-type (6), video-timing (7) and
            // color-space (8) are not mediasoup's: left out.
            header_extensions: vec![
                extension(RtpHeaderExtensionUri::AbsSendTime, 2),
                extension(RtpHeaderExtensionUri::VideoOrientation, 13),
                extension(RtpHeaderExtensionUri::TransportWideCcDraft01, 3),
                extension(RtpHeaderExtensionUri::PlayoutDelay, 5),
                extension(RtpHeaderExtensionUri::Mid, 4),
                extension(RtpHeaderExtensionUri::RtpStreamId, 10),
                extension(RtpHeaderExtensionUri::RepairRtpStreamId, 11),
            ],
            encodings: vec![RtpEncodingParameters {
                ssrc: Some(CHROME_VIDEO_SSRC),
                rtx: Some(RtpEncodingParametersRtx { ssrc: CHROME_RTX_SSRC }),
                ..RtpEncodingParameters::default()
            }],
            rtcp: RtcpParameters { cname: Some(CHROME_CNAME.to_owned()), reduced_size: true },
            msid: None,
        }
    );
}

#[test]
fn the_first_codec_in_the_clients_order_that_the_router_takes_is_chosen() {
    let chosen = |formats: &str| {
        let publication = receive(&section(&chrome_video_with(formats), 1), &router_capabilities()).expect("usable");
        publication.rtp_parameters.codecs.iter().map(|c| (c.mime_type().as_str(), c.payload_type())).collect::<Vec<_>>()
    };
    // AV1 and RED are not the router's: skipped.
    assert_eq!(chosen("45 46 119 120 121 98 99 96 97"), [("video/VP9", 98), ("video/rtx", 99)]);
    assert_eq!(chosen("121 96 97 98 99"), [("video/VP8", 96), ("video/rtx", 97)]);
    // Without its RTX in the m= line, a codec is received without RTX.
    assert_eq!(chosen("98 96 97"), [("video/VP9", 98)]);
}

#[test]
fn h264_baseline_42001f_is_passed_over_for_the_routers_constrained_baseline_42e01f() {
    // The router's H.264 is 42e01f: profile_idc 0x42 with profile_iop 0xe0,
    // constraint_set1 set, which RFC 6184 (and h264-profile-level-id) call
    // Constrained Baseline. 42001f has profile_iop 0x00: plain Baseline, a
    // different profile for `is_same_profile` (levels are not compared), so
    // Chrome's first H.264 (102) does not match and 108 is chosen.
    let text = chrome_video_with("102 103 108 109");
    let publication = receive(&section(&text, 1), &router_capabilities()).expect("H.264 42e01f is usable");
    assert_eq!(
        publication.rtp_parameters.codecs,
        [
            RtpCodecParameters::Video {
                mime_type: MimeTypeVideo::H264,
                payload_type: 108,
                clock_rate: nz32(90000),
                // profile-level-id stays a string; the others are numbers.
                parameters: h264_parameters("42e01f"),
                rtcp_feedback: chrome_video_feedback(),
            },
            RtpCodecParameters::Video {
                mime_type: MimeTypeVideo::Rtx,
                payload_type: 109,
                clock_rate: nz32(90000),
                parameters: apt(108),
                rtcp_feedback: vec![],
            },
        ]
    );
    // A higher level of the same profile matches too (42e034: level 5.2).
    let text = chrome_video_with("108 109").replace("profile-level-id=42e01f", "profile-level-id=42e034");
    let publication = receive(&section(&text, 1), &router_capabilities()).expect("usable");
    assert_eq!(publication.rtp_parameters.codecs[0].payload_type(), 108);
    // Main profile (4d001f) does not.
    assert!(receive(&section(&chrome_video_with("116 117"), 1), &router_capabilities()).is_err());
}

#[test]
fn h264_with_only_packetization_mode_0_is_rejected_naming_the_codecs() {
    let text = chrome_video_with("104 105 114 115");
    let reason = receive(&section(&text, 1), &router_capabilities()).expect_err("mode 0 is not the router's");
    assert_eq!(
        reason,
        "section 1: none of its codecs (H264/90000, H264/90000) is one the node takes \
         (audio/opus, video/VP8, video/H264, video/VP9)"
    );
    // Without a packetization-mode parameter, mode 0 is meant.
    let text = chrome_video_with("108 109").replace(
        "a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        "a=fmtp:108 level-asymmetry-allowed=1;profile-level-id=42e01f",
    );
    assert!(receive(&section(&text, 1), &router_capabilities()).is_err());
}

#[test]
fn vp9_profile_2_only_is_rejected_and_profile_0_is_taken() {
    let reason = receive(&section(&chrome_video_with("100 101"), 1), &router_capabilities()).expect_err("profile 2");
    assert!(reason.contains("VP9/90000") && reason.contains("video/VP9"), "{reason}");
    let publication = receive(&section(&chrome_video_with("100 101 98 99"), 1), &router_capabilities()).expect("p0");
    assert_eq!(publication.rtp_parameters.codecs[0].payload_type(), 98);
    assert_eq!(
        publication.rtp_parameters.codecs[0].parameters(),
        &RtpCodecParametersParameters::from([("profile-id", 0_u32.into())])
    );
    // A VP9 without profile-id is profile 0.
    let text = chrome_video_with("98 99").replace("a=fmtp:98 profile-id=0", "a=fmtp:98 x-google=1");
    assert_eq!(
        receive(&section(&text, 1), &router_capabilities()).expect("p0").rtp_parameters.codecs[0].payload_type(),
        98
    );
}

#[test]
fn an_av1_only_offer_is_rejected() {
    let reason = receive(&section(&chrome_video_with("45 46"), 1), &router_capabilities()).expect_err("no AV1");
    assert!(reason.starts_with("section 1: none of its codecs (AV1/90000)"), "{reason}");
}

#[test]
fn a_chrome_simulcast_offer_is_received_as_three_rid_encodings_in_order() {
    let publication = receive(&section(&crlf(&chrome_simulcast_offer()), 1), &router_capabilities()).expect("usable");
    assert_eq!(publication.rids, ["q", "h", "f"]);
    let rid = |rid: &str| RtpEncodingParameters { rid: Some(rid.to_owned()), ..RtpEncodingParameters::default() };
    assert_eq!(publication.rtp_parameters.encodings, [rid("q"), rid("h"), rid("f")]);
    // Still VP8 + RTX, with no SSRC to take a CNAME from.
    let pts: Vec<u8> = publication.rtp_parameters.codecs.iter().map(RtpCodecParameters::payload_type).collect();
    assert_eq!(pts, [96, 97]);
    assert_eq!(publication.rtp_parameters.rtcp.cname, None);
}

#[test]
fn simulcast_follows_the_simulcast_line_and_only_rids_declared_send() {
    let text = replace_line(&chrome_simulcast_offer(), "a=simulcast:send q;h;f", &["a=simulcast:send f;z;q"]);
    let publication = receive(&section(&text, 1), &router_capabilities()).expect("usable");
    assert_eq!(publication.rids, ["f", "q"]);
    // Without a=simulcast, the a=rid send lines are the encodings.
    let text = without_lines(&chrome_simulcast_offer(), |l| l.starts_with("a=simulcast"));
    let publication = receive(&section(&text, 1), &router_capabilities()).expect("usable");
    assert_eq!(publication.rids, ["q", "h", "f"]);
}

#[test]
fn simulcast_without_the_rtp_stream_id_extension_is_rejected() {
    let text = without_lines(&chrome_simulcast_offer(), |l| l.ends_with("sdes:rtp-stream-id"));
    let reason = receive(&section(&text, 1), &router_capabilities()).expect_err("RIDs cannot be told apart");
    assert_eq!(reason, "section 1 sends simulcast without the rtp-stream-id header extension (with an id of 1-14)");
    // Nor with it at an id above 14 (two-byte ids are not kept).
    let text = chrome_simulcast_offer().replace(
        "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
        "a=extmap:20 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    );
    assert!(receive(&section(&text, 1), &router_capabilities()).is_err());
}

#[test]
fn a_sim_group_gives_one_encoding_per_layer_with_its_fid_rtx() {
    let text = insert_after(
        CHROME_OFFER,
        "a=ssrc-group:FID 1868408215 2549136470",
        &["a=ssrc-group:SIM 1868408215 11 22", "a=ssrc-group:FID 11 111", "a=ssrc-group:FID 22 222"],
    );
    let publication = receive(&section(&text, 1), &router_capabilities()).expect("usable");
    let layers: Vec<(Option<u32>, Option<u32>)> =
        publication.rtp_parameters.encodings.iter().map(|e| (e.ssrc, e.rtx.map(|r| r.ssrc))).collect();
    assert_eq!(
        layers,
        [(Some(CHROME_VIDEO_SSRC), Some(CHROME_RTX_SSRC)), (Some(11), Some(111)), (Some(22), Some(222))]
    );
    assert!(publication.rids.is_empty());
}

#[test]
fn the_media_ssrc_is_chosen_even_when_the_rtx_ssrc_is_listed_first() {
    let rtx_lines: Vec<&str> =
        lines_of(CHROME_OFFER).into_iter().filter(|l| l.starts_with("a=ssrc:2549136470")).collect();
    let text = without_lines(CHROME_OFFER, |l| l.starts_with("a=ssrc:2549136470"));
    let text = insert_after(&text, "a=ssrc-group:FID 1868408215 2549136470", &rtx_lines);
    assert_eq!(section(&text, 1).ssrcs[0].0, CHROME_RTX_SSRC);
    let publication = receive(&section(&text, 1), &router_capabilities()).expect("usable");
    assert_eq!(publication.rtp_parameters.encodings[0].ssrc, Some(CHROME_VIDEO_SSRC));
    assert_eq!(publication.rtp_parameters.encodings[0].rtx, Some(RtpEncodingParametersRtx { ssrc: CHROME_RTX_SSRC }));
}

#[test]
fn a_section_with_no_ssrc_and_no_rid_is_one_encoding_told_by_its_mid() {
    let text = without_lines(CHROME_OFFER, |l| l.starts_with("a=ssrc"));
    let publication = receive(&section(&text, 1), &router_capabilities()).expect("the mid extension tells its RTP");
    assert_eq!(publication.rtp_parameters.encodings, [RtpEncodingParameters::default()]);
    assert_eq!(publication.rtp_parameters.rtcp.cname, None);

    let text = without_lines(&text, |l| l.ends_with("sdes:mid"));
    let reason = receive(&section(&text, 1), &router_capabilities()).expect_err("nothing tells its RTP");
    assert_eq!(reason, "section 1 names no SSRC and has no mid header extension to tell its RTP by");
}

#[test]
fn a_section_the_publisher_does_not_send_is_rejected_with_its_reason() {
    let text = CHROME_OFFER.replace("a=sendonly", "a=recvonly");
    let reason = receive(&section(&text, 1), &router_capabilities()).expect_err("recvonly");
    assert_eq!(reason, "section 1 does not send media (it is RecvOnly)");
    let text = CHROME_OFFER.replace("a=sendonly", "a=inactive");
    let reason = receive(&section(&text, 0), &router_capabilities()).expect_err("inactive");
    assert_eq!(reason, "section 0 is inactive");
    // sendrecv is taken (the answer is recvonly).
    let text = CHROME_OFFER.replace("a=sendonly", "a=sendrecv");
    assert!(receive(&section(&text, 1), &router_capabilities()).is_ok());
}

#[test]
fn a_section_without_rtcp_mux_is_rejected_with_its_reason() {
    let text = without_lines(CHROME_OFFER, |l| l == "a=rtcp-mux");
    let reason = receive(&section(&text, 0), &router_capabilities()).expect_err("no rtcp-mux");
    assert_eq!(reason, "section 0 has no a=rtcp-mux (required)");
}

#[test]
fn a_section_without_a_mid_is_rejected_with_its_reason() {
    let text = without_lines(CHROME_OFFER, |l| l == "a=mid:1");
    let reason = receive(&section(&text, 1), &router_capabilities()).expect_err("no mid");
    assert_eq!(reason, "a video section without a=mid");
}

#[test]
fn a_datachannel_section_is_rejected_with_its_reason() {
    let text = format!("{CHROME_OFFER}{DATACHANNEL_SECTION}");
    let offer = parse(&text);
    assert_eq!(offer.sections[2].formats, ["webrtc-datachannel"]);
    assert!(offer.sections[2].codecs.is_empty());
    let reason = receive(&offer.sections[2], &router_capabilities()).expect_err("not RTP");
    assert_eq!(reason, "section 2 is application, not audio or video");
}

#[test]
fn a_section_over_plain_rtp_avp_is_rejected_with_its_reason() {
    let text = CHROME_OFFER.replace("m=audio 9 UDP/TLS/RTP/SAVPF", "m=audio 9 RTP/AVP");
    let reason = receive(&section(&text, 0), &router_capabilities()).expect_err("RTP/AVP");
    assert_eq!(reason, "section 0 uses RTP/AVP, not UDP/TLS/RTP/SAVPF");
    // RTP/SAVP (no feedback profile) too.
    let text = CHROME_OFFER.replace("m=audio 9 UDP/TLS/RTP/SAVPF", "m=audio 9 UDP/TLS/RTP/SAVP");
    assert!(receive(&section(&text, 0), &router_capabilities()).is_err());
}

#[test]
fn header_extensions_with_ids_above_14_are_not_received() {
    let text = CHROME_OFFER.replace(
        "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
        "a=extmap:15 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    );
    let publication = receive(&section(&text, 0), &router_capabilities()).expect("usable");
    let uris: Vec<RtpHeaderExtensionUri> = publication.rtp_parameters.header_extensions.iter().map(|h| h.uri).collect();
    assert_eq!(uris, [RtpHeaderExtensionUri::SsrcAudioLevel, RtpHeaderExtensionUri::Mid]);
}

// ---------------------------------------------------------------------------
// negotiate::play (WHEP)
// ---------------------------------------------------------------------------

#[test]
fn an_opus_track_plays_with_the_players_payload_type_109_and_the_tracks_parameters() {
    let playback = play(&section(&crlf(PLAYER_OFFER), 0), &opus_track()).expect("the player takes opus");
    assert_eq!(playback.kind, MediaKind::Audio);
    assert_eq!(
        playback.router_codec,
        RtpCodecCapability::Audio {
            mime_type: MimeTypeAudio::Opus,
            preferred_payload_type: Some(109),
            clock_rate: nz32(48000),
            channels: nz8(2),
            parameters: RtpCodecParametersParameters::from([
                ("minptime", 10_u32.into()),
                ("useinbandfec", 1_u32.into())
            ]),
            rtcp_feedback: vec![],
        }
    );
    assert_eq!(
        playback.capabilities.codecs,
        [RtpCodecCapability::Audio {
            mime_type: MimeTypeAudio::Opus,
            preferred_payload_type: Some(109),
            clock_rate: nz32(48000),
            channels: nz8(2),
            parameters: RtpCodecParametersParameters::from([
                ("maxplaybackrate", 48000_u32.into()),
                ("stereo", 1_u32.into()),
                ("useinbandfec", 1_u32.into()),
            ]),
            rtcp_feedback: vec![RtcpFeedback::TransportCc],
        }]
    );
    assert_eq!(
        playback.capabilities.header_extensions,
        [
            player_extension(MediaKind::Audio, RtpHeaderExtensionUri::SsrcAudioLevel, 1),
            player_extension(MediaKind::Audio, RtpHeaderExtensionUri::Mid, 3),
            player_extension(MediaKind::Audio, RtpHeaderExtensionUri::TransportWideCcDraft01, 7),
        ]
    );
    assert_eq!(playback.rtx_payload_type, None);
}

#[test]
fn a_vp8_track_plays_with_the_players_payload_types_120_and_rtx_121() {
    let playback = play(&section(PLAYER_OFFER, 1), &vp8_track()).expect("the player takes VP8");
    assert_eq!(playback.kind, MediaKind::Video);
    assert_eq!(
        playback.router_codec,
        RtpCodecCapability::Video {
            mime_type: MimeTypeVideo::Vp8,
            preferred_payload_type: Some(120),
            clock_rate: nz32(90000),
            parameters: RtpCodecParametersParameters::default(),
            rtcp_feedback: vec![],
        }
    );
    assert_eq!(
        playback.capabilities.codecs,
        [
            RtpCodecCapability::Video {
                mime_type: MimeTypeVideo::Vp8,
                preferred_payload_type: Some(120),
                clock_rate: nz32(90000),
                parameters: RtpCodecParametersParameters::from([
                    ("max-fr", 60_u32.into()),
                    ("max-fs", 12288_u32.into())
                ]),
                rtcp_feedback: video_feedback(),
            },
            RtpCodecCapability::Video {
                mime_type: MimeTypeVideo::Rtx,
                preferred_payload_type: Some(121),
                clock_rate: nz32(90000),
                parameters: apt(120),
                rtcp_feedback: vec![],
            },
        ]
    );
    // toffset (5) is not mediasoup's: left out; the ids are the player's.
    assert_eq!(
        playback.capabilities.header_extensions,
        [
            player_extension(MediaKind::Video, RtpHeaderExtensionUri::Mid, 3),
            player_extension(MediaKind::Video, RtpHeaderExtensionUri::AbsSendTime, 4),
            player_extension(MediaKind::Video, RtpHeaderExtensionUri::TransportWideCcDraft01, 7),
        ]
    );
    assert_eq!(playback.rtx_payload_type, Some(121));
}

#[test]
fn an_h264_track_plays_with_the_players_h264_of_the_same_profile() {
    let playback = play(&section(PLAYER_OFFER, 1), &h264_track()).expect("the player takes H.264");
    assert_eq!(playback.router_codec.preferred_payload_type(), Some(126));
    assert_eq!(playback.router_codec.parameters(), &h264_parameters("42e01f"));
    assert_eq!(playback.rtx_payload_type, Some(127));
    // A player whose only H.264 is Baseline 42001f cannot take it.
    let text = PLAYER_OFFER.replace("profile-level-id=42e01f", "profile-level-id=42001f");
    assert!(play(&section(&text, 1), &h264_track()).is_err());
}

#[test]
fn a_player_offering_only_h264_for_a_vp8_track_is_rejected_naming_vp8() {
    let text =
        PLAYER_OFFER.replace("m=video 9 UDP/TLS/RTP/SAVPF 120 121 126 127", "m=video 9 UDP/TLS/RTP/SAVPF 126 127");
    let reason = play(&section(&text, 1), &vp8_track()).expect_err("no VP8 offered");
    assert_eq!(reason, "section 1: the stream sends video/VP8, which the player does not offer (H264/90000)");
}

#[test]
fn a_section_the_player_does_not_receive_is_not_played() {
    let text = PLAYER_OFFER.replace("a=recvonly", "a=sendonly");
    let reason = play(&section(&text, 0), &opus_track()).expect_err("sendonly");
    assert_eq!(reason, "section 0 does not receive media (it is SendOnly)");
    let text = without_lines(PLAYER_OFFER, |l| l == "a=rtcp-rsize" || l == "a=rtcp-mux");
    assert!(play(&section(&text, 1), &vp8_track()).is_err());
}

// ---------------------------------------------------------------------------
// negotiate::dtls_parameters
// ---------------------------------------------------------------------------

#[test]
fn an_actpass_client_is_the_dtls_client_and_the_node_answers_passive() {
    let offer = parse(CHROME_OFFER);
    let (dtls, ours) = dtls_parameters(&offer, &offer.sections[0]).expect("usable transport");
    assert_eq!(dtls.role, DtlsRole::Client);
    assert_eq!(ours, Setup::Passive);
    assert_eq!(dtls.fingerprints.len(), 1);
    assert!(matches!(dtls.fingerprints[0], DtlsFingerprint::Sha256 { .. }));
    assert_eq!(dtls.fingerprints[0].value_string(), CHROME_FINGERPRINT);
    // Session-level fingerprint (Firefox).
    let offer = parse(FIREFOX_OFFER);
    let (dtls, ours) = dtls_parameters(&offer, &offer.sections[1]).expect("usable transport");
    assert_eq!((dtls.role, ours), (DtlsRole::Client, Setup::Passive));
    assert_eq!(dtls.fingerprints[0].value_string(), FIREFOX_FINGERPRINT);
}

#[test]
fn a_passive_client_is_the_dtls_server_and_the_node_answers_active() {
    let offer = parse(&CHROME_OFFER.replace("a=setup:actpass", "a=setup:passive"));
    let (dtls, ours) = dtls_parameters(&offer, &offer.sections[1]).expect("usable transport");
    assert_eq!((dtls.role, ours), (DtlsRole::Server, Setup::Active));
}

#[test]
fn an_active_client_or_one_without_a_setup_is_the_dtls_client() {
    let offer = parse(&CHROME_OFFER.replace("a=setup:actpass", "a=setup:active"));
    let (dtls, ours) = dtls_parameters(&offer, &offer.sections[0]).expect("usable transport");
    assert_eq!((dtls.role, ours), (DtlsRole::Client, Setup::Passive));
    let offer = parse(&without_lines(CHROME_OFFER, |l| l.starts_with("a=setup")));
    let (dtls, ours) = dtls_parameters(&offer, &offer.sections[0]).expect("usable transport");
    assert_eq!((dtls.role, ours), (DtlsRole::Client, Setup::Passive));
}

#[test]
fn an_offer_without_ice_ufrag_is_unusable() {
    let offer = parse(&without_lines(CHROME_OFFER, |l| l.starts_with("a=ice-ufrag")));
    let error = dtls_parameters(&offer, &offer.sections[0]).expect_err("no ufrag");
    assert_eq!(error, SdpError::Unusable("no a=ice-ufrag".into()));
}

#[test]
fn fingerprints_with_hashes_mediasoup_does_not_know_are_unusable() {
    let md5 = "a=fingerprint:md5 3A:7F:1C:9E:4B:22:D8:61:0F:AB:5C:E3:97:4D:18:B6";
    let text = CHROME_OFFER.replace(&format!("a=fingerprint:sha-256 {CHROME_FINGERPRINT}"), md5);
    let offer = parse(&text);
    let error = dtls_parameters(&offer, &offer.sections[0]).expect_err("md5 only");
    assert!(matches!(&error, SdpError::Unusable(reason) if reason.contains("fingerprint")), "{error:?}");
    // A sha-256 of the wrong length is no better.
    let text = CHROME_OFFER.replace(CHROME_FINGERPRINT, "3A:7F:1C");
    let offer = parse(&text);
    assert!(matches!(dtls_parameters(&offer, &offer.sections[1]), Err(SdpError::Unusable(_))));
    // Next to a known one, the unknown one is skipped.
    let text = insert_after(CHROME_OFFER, "a=mid:1", &[md5]);
    let offer = parse(&text);
    let (dtls, _) = dtls_parameters(&offer, &offer.sections[1]).expect("the sha-256 one is used");
    assert_eq!(dtls.fingerprints.len(), 1);
}

// ---------------------------------------------------------------------------
// answer::write_answer
// ---------------------------------------------------------------------------

const ANSWER_FINGERPRINT: [u8; 32] = [
    0x82, 0x5A, 0x68, 0x3D, 0x36, 0xC3, 0x0A, 0xDE, 0xAF, 0xE7, 0x32, 0x43, 0xD2, 0x88, 0x83, 0x57, 0xAC, 0x2D, 0x65,
    0xE5, 0x80, 0xC4, 0xB6, 0xFB, 0xAF, 0x1A, 0xA0, 0x21, 0x9F, 0x6D, 0x0C, 0xAD,
];
const ANSWER_FINGERPRINT_TEXT: &str =
    "82:5A:68:3D:36:C3:0A:DE:AF:E7:32:43:D2:88:83:57:AC:2D:65:E5:80:C4:B6:FB:AF:1A:A0:21:9F:6D:0C:AD";

/// A mediasoup WebRTC transport's side: ICE-lite credentials, a UDP and a
/// TCP candidate, a sha-256 fingerprint, DTLS server.
fn local_transport() -> LocalTransport {
    LocalTransport {
        ice: IceParameters {
            username_fragment: "f2c8x1m0kq7v3n9a".to_owned(),
            password: "o4w8j2r6t0y5u9i3e7q1z5x8c2v6b0n4".to_owned(),
            ice_lite: Some(true),
        },
        candidates: vec![
            IceCandidate {
                foundation: "udpcandidate".to_owned(),
                priority: 1_076_302_079,
                address: "203.0.113.7".to_owned(),
                protocol: Protocol::Udp,
                port: 40_000,
                r#type: IceCandidateType::Host,
                tcp_type: None,
            },
            IceCandidate {
                foundation: "tcpcandidate".to_owned(),
                priority: 1_076_276_479,
                address: "203.0.113.7".to_owned(),
                protocol: Protocol::Tcp,
                port: 40_001,
                r#type: IceCandidateType::Host,
                tcp_type: Some(IceCandidateTcpType::Passive),
            },
        ],
        fingerprint: DtlsFingerprint::Sha256 { value: ANSWER_FINGERPRINT },
        setup: Setup::Passive,
    }
}

/// The answer's lines (CRLF-separated), without the empty string after the last.
fn answer_lines(answer: &str) -> Vec<&str> {
    let body = answer.strip_suffix("\r\n").expect("the answer ends with CRLF");
    body.split("\r\n").collect()
}

fn chrome_receive(text: &str, index: usize) -> AnswerSection {
    let offered = section(text, index);
    let publication = receive(&offered, &router_capabilities()).expect("usable");
    AnswerSection::Receive {
        kind: publication.kind,
        mid: offered.mid.clone().expect("a mid"),
        rtp_parameters: publication.rtp_parameters,
        rids: publication.rids,
        rtcp_rsize: offered.rtcp_rsize,
    }
}

/// A consumer's parameters for [`PLAYER_OFFER`]'s video: VP8 120 with RTX 121.
fn consumer_parameters(rtx: bool, cname: Option<&str>) -> RtpParameters {
    let mut codecs = vec![RtpCodecParameters::Video {
        mime_type: MimeTypeVideo::Vp8,
        payload_type: 120,
        clock_rate: nz32(90000),
        parameters: RtpCodecParametersParameters::default(),
        rtcp_feedback: video_feedback(),
    }];
    if rtx {
        codecs.push(RtpCodecParameters::Video {
            mime_type: MimeTypeVideo::Rtx,
            payload_type: 121,
            clock_rate: nz32(90000),
            parameters: apt(120),
            rtcp_feedback: vec![],
        });
    }
    RtpParameters {
        mid: Some("1".to_owned()),
        codecs,
        header_extensions: vec![extension(RtpHeaderExtensionUri::Mid, 3)],
        encodings: vec![RtpEncodingParameters {
            ssrc: Some(424_242),
            rtx: rtx.then_some(RtpEncodingParametersRtx { ssrc: 535_353 }),
            ..RtpEncodingParameters::default()
        }],
        rtcp: RtcpParameters { cname: cname.map(str::to_owned), reduced_size: true },
        msid: None,
    }
}

fn send_section(rtx: bool, cname: Option<&str>) -> AnswerSection {
    AnswerSection::Send {
        kind: MediaKind::Video,
        mid: "1".to_owned(),
        rtp_parameters: consumer_parameters(rtx, cname),
        sender: Sender { msid: ("stream-7".to_owned(), "track-9".to_owned()) },
        rtcp_rsize: true,
    }
}

#[test]
fn an_answer_receiving_audio_and_rejecting_video_is_written_line_by_line() {
    let rejected = AnswerSection::Rejected {
        offered: Box::new(section(CHROME_OFFER, 1)),
        reason: "not wanted in this test".to_owned(),
    };
    let answer = write_answer(&local_transport(), &[chrome_receive(CHROME_OFFER, 0), rejected]);
    assert!(!answer.replace("\r\n", "").contains('\n'), "every line ends with CRLF");
    let lines = answer_lines(&answer);
    assert_eq!(lines[0], "v=0");
    let origin: Vec<&str> = lines[1].split(' ').collect();
    assert_eq!((origin[0], &origin[2..]), ("o=-", &["2", "IN", "IP4", "127.0.0.1"][..]));
    let session_id: u64 = origin[1].parse().expect("a numeric session id");
    assert!(session_id < 1 << 63);
    let fingerprint = format!("a=fingerprint:sha-256 {ANSWER_FINGERPRINT_TEXT}");
    assert_eq!(
        lines[2..],
        [
            "s=-",
            "t=0 0",
            "a=ice-lite",
            "a=group:BUNDLE 0",
            "a=msid-semantic: WMS *",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "c=IN IP4 0.0.0.0",
            "a=rtcp:9 IN IP4 0.0.0.0",
            "a=mid:0",
            "a=ice-ufrag:f2c8x1m0kq7v3n9a",
            "a=ice-pwd:o4w8j2r6t0y5u9i3e7q1z5x8c2v6b0n4",
            fingerprint.as_str(),
            "a=setup:passive",
            "a=recvonly",
            "a=rtcp-mux",
            "a=rtpmap:111 opus/48000/2",
            "a=rtcp-fb:111 transport-cc",
            "a=fmtp:111 minptime=10;useinbandfec=1",
            "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
            "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
            "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
            "a=candidate:udpcandidate 1 udp 1076302079 203.0.113.7 40000 typ host",
            "a=candidate:tcpcandidate 1 tcp 1076276479 203.0.113.7 40001 typ host tcptype passive",
            "a=end-of-candidates",
            "m=video 0 UDP/TLS/RTP/SAVPF 96",
            "c=IN IP4 0.0.0.0",
            "a=mid:1",
            "a=inactive",
        ][..]
    );
}

#[test]
fn an_answer_receiving_chrome_video_writes_every_codecs_rtpmap_fmtp_and_feedback() {
    let sections = [chrome_receive(CHROME_OFFER, 0), chrome_receive(CHROME_OFFER, 1)];
    let answer = write_answer(&local_transport(), &sections);
    let lines = answer_lines(&answer);
    assert!(lines.contains(&"a=group:BUNDLE 0 1"));
    let video = lines.iter().position(|l| l.starts_with("m=video")).expect("a video section");
    let video_lines = &lines[video..];
    assert_eq!(video_lines[0], "m=video 9 UDP/TLS/RTP/SAVPF 96 97");
    let codec_lines: Vec<&str> = video_lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("a=rtpmap") || l.starts_with("a=rtcp-fb") || l.starts_with("a=fmtp"))
        .collect();
    assert_eq!(
        codec_lines,
        [
            "a=rtpmap:96 VP8/90000",
            "a=rtcp-fb:96 goog-remb",
            "a=rtcp-fb:96 transport-cc",
            "a=rtcp-fb:96 ccm fir",
            "a=rtcp-fb:96 nack",
            "a=rtcp-fb:96 nack pli",
            "a=rtpmap:97 rtx/90000",
            "a=fmtp:97 apt=96",
        ]
    );
    assert!(video_lines.contains(&"a=rtcp-rsize"));
    assert!(video_lines.contains(&"a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"));
    assert!(!video_lines.iter().any(|l| l.contains("toffset")));
    // The audio section has no a=rtcp-rsize (Chrome did not offer it there).
    assert!(!lines[..video].contains(&"a=rtcp-rsize"));
    // Each bundled section carries the ICE and DTLS attributes.
    assert_eq!(lines.iter().filter(|l| l.starts_with("a=ice-ufrag:")).count(), 2);
    assert_eq!(lines.iter().filter(|l| **l == "a=end-of-candidates").count(), 2);
}

#[test]
fn a_simulcast_answer_receives_each_rid_and_lists_them_in_a_simulcast_recv_line() {
    let answer = write_answer(&local_transport(), &[chrome_receive(&chrome_simulcast_offer(), 1)]);
    let lines = answer_lines(&answer);
    let end = lines.iter().position(|l| *l == "a=end-of-candidates").expect("candidates end");
    assert_eq!(lines[end + 1..], ["a=rid:q recv", "a=rid:h recv", "a=rid:f recv", "a=simulcast:recv q;h;f"]);
    assert!(lines.contains(&"a=group:BUNDLE 1"));
}

#[test]
fn a_send_section_writes_sendonly_msid_and_ssrcs_with_their_fid_group() {
    let answer = write_answer(&local_transport(), &[send_section(true, Some("consumer-cname"))]);
    let lines = answer_lines(&answer);
    assert!(lines.contains(&"a=sendonly"));
    assert!(lines.contains(&"m=video 9 UDP/TLS/RTP/SAVPF 120 121"));
    assert!(lines.contains(&"a=fmtp:121 apt=120"));
    let end = lines.iter().position(|l| *l == "a=end-of-candidates").expect("candidates end");
    assert_eq!(
        lines[end + 1..],
        [
            "a=msid:stream-7 track-9",
            "a=ssrc-group:FID 424242 535353",
            "a=ssrc:424242 cname:consumer-cname",
            "a=ssrc:424242 msid:stream-7 track-9",
            "a=ssrc:535353 cname:consumer-cname",
            "a=ssrc:535353 msid:stream-7 track-9",
        ]
    );
}

#[test]
fn a_send_section_without_rtx_or_cname_writes_one_ssrc_with_the_default_cname() {
    let answer = write_answer(&local_transport(), &[send_section(false, None)]);
    let lines = answer_lines(&answer);
    let end = lines.iter().position(|l| *l == "a=end-of-candidates").expect("candidates end");
    assert_eq!(
        lines[end + 1..],
        ["a=msid:stream-7 track-9", "a=ssrc:424242 cname:mafalda", "a=ssrc:424242 msid:stream-7 track-9"]
    );
}

#[test]
fn an_answer_with_only_rejected_sections_has_no_bundle_group() {
    let offer = parse(CHROME_OFFER);
    let sections: Vec<AnswerSection> = offer
        .sections
        .iter()
        .map(|s| AnswerSection::Rejected { offered: Box::new(s.clone()), reason: "no".to_owned() })
        .collect();
    let answer = write_answer(&local_transport(), &sections);
    assert!(!answer.contains("a=group:BUNDLE"));
    assert!(!answer.contains("a=candidate"));
    assert_eq!(answer.matches("a=inactive\r\n").count(), 2);
}

#[test]
fn an_answer_setup_active_is_written_for_a_passive_client() {
    let mut transport = local_transport();
    transport.setup = Setup::Active;
    let answer = write_answer(&transport, &[chrome_receive(CHROME_OFFER, 0)]);
    assert!(answer.contains("\r\na=setup:active\r\n"));
    transport.setup = Setup::ActPass;
    let answer = write_answer(&transport, &[chrome_receive(CHROME_OFFER, 0)]);
    assert!(answer.contains("\r\na=setup:passive\r\n"), "an answer never says actpass");
}

#[test]
fn a_written_answer_reads_back_with_its_mids_codecs_and_directions() {
    let datachannel = format!("{CHROME_OFFER}{DATACHANNEL_SECTION}");
    let sections = [
        chrome_receive(CHROME_OFFER, 0),
        send_section(true, Some("consumer-cname")),
        AnswerSection::Rejected { offered: Box::new(section(&datachannel, 2)), reason: "no data channels".to_owned() },
    ];
    let answer = parse(&write_answer(&local_transport(), &sections));
    assert_eq!(answer.bundle, ["0", "1"]);
    let summary: Vec<(&str, u16, &str, Option<&str>, Direction)> = answer
        .sections
        .iter()
        .map(|s| (s.kind.as_str(), s.port, s.protocol.as_str(), s.mid.as_deref(), s.direction))
        .collect();
    assert_eq!(
        summary,
        [
            ("audio", 9, "UDP/TLS/RTP/SAVPF", Some("0"), Direction::RecvOnly),
            ("video", 9, "UDP/TLS/RTP/SAVPF", Some("1"), Direction::SendOnly),
            ("application", 0, "UDP/DTLS/SCTP", Some("2"), Direction::Inactive),
        ]
    );
    let audio = &answer.sections[0];
    let opus = audio.codec(111).expect("opus");
    assert_eq!((opus.name.as_str(), opus.clock_rate, opus.channels), ("opus", 48000, Some(2)));
    assert_eq!(opus.parameter("useinbandfec"), Some("1"));
    assert_eq!(opus.feedback, [("transport-cc".to_owned(), String::new())]);
    assert_eq!(audio.extensions.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [1, 3, 4]);

    let video = &answer.sections[1];
    let codecs: Vec<(u8, &str, Option<&str>)> =
        video.codecs.iter().map(|c| (c.payload_type, c.name.as_str(), c.parameter("apt"))).collect();
    assert_eq!(codecs, [(120, "VP8", None), (121, "rtx", Some("120"))]);
    assert_eq!(video.codec(120).expect("VP8").feedback.len(), 5);
    assert!(video.rtcp_mux && video.rtcp_rsize);
    assert_eq!(
        video.ssrcs,
        [(424_242, Some("consumer-cname".to_owned())), (535_353, Some("consumer-cname".to_owned()))]
    );
    assert_eq!(video.ssrc_groups, [("FID".to_owned(), vec![424_242, 535_353])]);
    assert!(answer.sections[2].codecs.is_empty());

    // Its transport attributes read back too: the node is the DTLS server.
    let (ufrag, fingerprints, setup) = answer.transport_of(video);
    assert_eq!(ufrag, Some("f2c8x1m0kq7v3n9a"));
    assert_eq!(fingerprints, [Fingerprint { algorithm: "sha-256".into(), value: ANSWER_FINGERPRINT_TEXT.into() }]);
    assert_eq!(setup, Some(Setup::Passive));
    let (dtls, _) = dtls_parameters(&answer, video).expect("usable");
    assert_eq!(dtls.role, DtlsRole::Server);
    assert_eq!(dtls.fingerprints, [DtlsFingerprint::Sha256 { value: ANSWER_FINGERPRINT }]);
}

// ---------------------------------------------------------------------------
// Problems found once (kept so they stay fixed)
// ---------------------------------------------------------------------------

#[test]
fn a_firefox_publisher_keeps_the_fmtp_and_feedback_it_writes_before_its_rtpmaps() {
    let offer = parse(FIREFOX_OFFER);
    let audio = receive(&offer.sections[0], &router_capabilities()).expect("opus");
    assert_eq!(
        audio.rtp_parameters.codecs[0].parameters(),
        &RtpCodecParametersParameters::from([
            ("maxplaybackrate", 48000_u32.into()),
            ("stereo", 1_u32.into()),
            ("useinbandfec", 1_u32.into()),
        ])
    );
    let video = receive(&offer.sections[1], &router_capabilities()).expect("VP8");
    let codecs: Vec<(u8, &[RtcpFeedback])> =
        video.rtp_parameters.codecs.iter().map(|c| (c.payload_type(), c.rtcp_feedback())).collect();
    assert_eq!(codecs, [(120, &video_feedback()[..]), (124, &[][..])]);
    assert_eq!(video.rtp_parameters.encodings[0].rtx, Some(RtpEncodingParametersRtx { ssrc: 1_230_491_266 }));
    // A Firefox offering only H.264 (packetization-mode=1 in its fmtp) is served.
    let text = FIREFOX_OFFER.replace(
        "m=video 9 UDP/TLS/RTP/SAVPF 120 124 121 125 126 127 97 98 123 122 119",
        "m=video 9 UDP/TLS/RTP/SAVPF 126 127",
    );
    let video = receive(&section(&text, 1), &router_capabilities()).expect("H.264 mode 1");
    assert_eq!(video.rtp_parameters.codecs[0].payload_type(), 126);
}

#[test]
fn a_simulcast_rid_listed_twice_makes_one_encoding() {
    let text = replace_line(
        &chrome_simulcast_offer(),
        "a=simulcast:send q;h;f",
        &["a=simulcast:send q;h;f;q", "a=simulcast:send q;h;f", "a=simulcast:send q;h;f"],
    );
    let publication = receive(&section(&text, 1), &router_capabilities());
    match publication {
        Ok(publication) => assert_eq!(publication.rids, ["q", "h", "f"]),
        Err(reason) => assert!(reason.contains("simulcast"), "{reason}"),
    }
}
