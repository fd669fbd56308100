//! SDP offers as WHIP and WHEP clients send them (a browser's shape, with the
//! payload types a test chooses), and HTTP requests carrying them. The node
//! answers them and builds real transports; no DTLS handshake follows unless a
//! real client (Chromium) made the offer.

use std::net::SocketAddr;

use crate::http::{Answer, raw};

/// A made-up but well-formed sha-256 fingerprint.
const FINGERPRINT: &str =
    "8A:8D:76:6C:91:E0:EC:85:14:C4:53:D0:DA:20:FA:79:5B:F5:C6:E6:8B:18:F2:80:E1:D2:9C:6B:C3:92:62:70";

fn session_head() -> String {
    format!(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
         a=ice-ufrag:yPsZ\r\na=ice-pwd:gcpn2cek8kbcj09AZ+SDD7MI\r\na=fingerprint:sha-256 {FINGERPRINT}\r\n\
         a=setup:actpass\r\n"
    )
}

/// A publisher's offer: opus on `opus_pt` (mid 0) and VP8 on `vp8_pt` with
/// RTX on `vp8_pt + 1` (mid 1), sending with SSRCs 1111 and 2222 (RTX 2223).
pub fn publisher_offer(opus_pt: u8, vp8_pt: u8) -> String {
    let rtx = vp8_pt + 1;
    format!(
        "{}m=audio 9 UDP/TLS/RTP/SAVPF {opus_pt} 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtcp-mux\r\n\
         a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
         a=rtpmap:{opus_pt} opus/48000/2\r\na=fmtp:{opus_pt} minptime=10;useinbandfec=1\r\n\
         a=rtcp-fb:{opus_pt} transport-cc\r\na=rtpmap:0 PCMU/8000\r\na=ssrc:1111 cname:test\r\n\
         m=video 9 UDP/TLS/RTP/SAVPF {vp8_pt} {rtx}\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\na=rtcp-mux\r\n\
         a=rtcp-rsize\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
         a=rtpmap:{vp8_pt} VP8/90000\r\na=rtcp-fb:{vp8_pt} nack\r\na=rtcp-fb:{vp8_pt} nack pli\r\n\
         a=rtpmap:{rtx} rtx/90000\r\na=fmtp:{rtx} apt={vp8_pt}\r\n\
         a=ssrc-group:FID 2222 2223\r\na=ssrc:2222 cname:test\r\na=ssrc:2223 cname:test\r\n",
        session_head()
    )
}

/// A player's offer: video first (VP8 on `vp8_pt`, RTX on `vp8_pt + 1`, and
/// H.264 on 102), then opus on `opus_pt`, both recvonly.
pub fn player_offer(opus_pt: u8, vp8_pt: u8) -> String {
    let rtx = vp8_pt + 1;
    format!(
        "{}m=video 9 UDP/TLS/RTP/SAVPF {vp8_pt} {rtx} 102\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\n\
         a=rtpmap:{vp8_pt} VP8/90000\r\na=rtcp-fb:{vp8_pt} nack pli\r\na=rtcp-fb:{vp8_pt} ccm fir\r\n\
         a=rtpmap:{rtx} rtx/90000\r\na=fmtp:{rtx} apt={vp8_pt}\r\n\
         a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF {opus_pt}\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\na=rtcp-mux\r\n\
         a=rtpmap:{opus_pt} opus/48000/2\r\n",
        session_head()
    )
}

/// An offer with nothing a node takes: PCMU audio and AV1 video.
pub fn unusable_offer() -> String {
    format!(
        "{}m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtcp-mux\r\n\
         a=rtpmap:0 PCMU/8000\r\nm=video 9 UDP/TLS/RTP/SAVPF 45\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\n\
         a=rtcp-mux\r\na=rtpmap:45 AV1/90000\r\n",
        session_head()
    )
}

/// `POST path` to the API at `addr` with `body` as `content_type`, the bearer
/// `token` if any, and the extra header lines `extra` (each ending in CRLF).
pub async fn post(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    extra: &str,
    body: &str,
) -> Answer {
    let mut head =
        format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nConnection: close\r\n{extra}");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    raw(addr, &head, body).await
}

/// `method path` without a body, with the bearer `token` if any and the extra
/// header lines `extra`.
pub async fn bare(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, extra: &str) -> Answer {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    raw(addr, &head, "").await
}

/// The value of header `name` in an answer, if present (case-insensitive name).
pub fn header<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
    answer.headers.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then_some(value.trim())
    })
}
