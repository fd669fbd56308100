//! RTP packets (RFC 3550) for tests: build, send, receive and check delivery.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

/// One RTP packet, as far as the tests care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Marker bit.
    pub marker: bool,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Payload bytes (after header, CSRCs and extension; padding removed).
    pub payload: Vec<u8>,
}

/// Why bytes are not an RTP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtpParseError {
    /// Shorter than its header says.
    Truncated,
    /// Version field is not 2.
    BadVersion(u8),
    /// An RTCP packet (RFC 5761 payload-type range), not RTP.
    Rtcp,
}

impl RtpPacket {
    /// Serialises with no CSRCs, no extension and no padding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.payload.len());
        out.push(0x80);
        out.push((u8::from(self.marker) << 7) | (self.payload_type & 0x7f));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// Parses a packet, skipping CSRCs and a header extension and removing padding.
    pub fn parse(bytes: &[u8]) -> Result<Self, RtpParseError> {
        if bytes.len() < 12 {
            return Err(RtpParseError::Truncated);
        }
        let version = bytes[0] >> 6;
        if version != 2 {
            return Err(RtpParseError::BadVersion(version));
        }
        if (192..=223).contains(&bytes[1]) {
            return Err(RtpParseError::Rtcp);
        }
        let padding = bytes[0] & 0x20 != 0;
        let extension = bytes[0] & 0x10 != 0;
        let csrc_count = usize::from(bytes[0] & 0x0f);
        let mut offset = 12 + 4 * csrc_count;
        if extension {
            let header = bytes.get(offset..offset + 4).ok_or(RtpParseError::Truncated)?;
            let words = usize::from(u16::from_be_bytes([header[2], header[3]]));
            offset += 4 + 4 * words;
        }
        let mut end = bytes.len();
        if padding {
            let pad = usize::from(*bytes.last().ok_or(RtpParseError::Truncated)?);
            end = end.checked_sub(pad).ok_or(RtpParseError::Truncated)?;
        }
        let payload = bytes.get(offset..end).ok_or(RtpParseError::Truncated)?.to_vec();
        Ok(Self {
            payload_type: bytes[1] & 0x7f,
            marker: bytes[1] & 0x80 != 0,
            sequence: u16::from_be_bytes([bytes[2], bytes[3]]),
            timestamp: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            ssrc: u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
            payload,
        })
    }
}

/// A recognisable payload for packet `index`: an Opus-style TOC byte (20 ms CELT
/// frame), the index, then bytes derived from it, `len` bytes in all (≥ 8).
pub fn test_payload(index: u32, len: usize) -> Vec<u8> {
    let mut payload = vec![0xfc];
    payload.extend_from_slice(&index.to_be_bytes());
    payload.extend((0..len.saturating_sub(5)).map(|i| (index as usize * 31 + i * 7) as u8));
    payload
}

/// The index of a payload made by [`test_payload`]; `None` for any other
/// payload (mediasoup's probation padding, say).
pub fn test_payload_index(payload: &[u8]) -> Option<u32> {
    match payload {
        [0xfc, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// The packets a test sends: `count` packets of one stream.
pub fn test_stream(ssrc: u32, payload_type: u8, count: u32) -> Vec<RtpPacket> {
    test_packets(ssrc, payload_type).take(count as usize).collect()
}

/// The packets of one stream, made as they are taken: a sender that runs
/// until it is stopped need not build them all first.
pub fn test_packets(ssrc: u32, payload_type: u8) -> impl Iterator<Item = RtpPacket> {
    let first_sequence: u16 = rand::random();
    let first_timestamp: u32 = rand::random();
    (0..=u32::MAX).map(move |i| RtpPacket {
        payload_type,
        marker: i == 0,
        sequence: first_sequence.wrapping_add(i as u16),
        timestamp: first_timestamp.wrapping_add(i.wrapping_mul(960)),
        ssrc,
        payload: test_payload(i, 120),
    })
}

/// Sends `packets` from `socket` to `target`, one every `interval`.
pub async fn send_paced(socket: &UdpSocket, target: SocketAddr, packets: &[RtpPacket], interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    for packet in packets {
        ticker.tick().await;
        socket.send_to(&packet.encode(), target).await.expect("send RTP to mediasoup");
    }
}

/// Receives the RTP packets of stream `ssrc` on `socket` until `expected` have come
/// or nothing has arrived for `idle`. RTCP and other streams are skipped: mediasoup
/// also sends bandwidth-probation padding packets (their own SSRC) on a transport.
pub async fn receive_rtp(socket: &UdpSocket, ssrc: u32, expected: usize, idle: Duration) -> Vec<RtpPacket> {
    let mut received = Vec::with_capacity(expected);
    let mut buffer = vec![0u8; 2048];
    while received.len() < expected {
        match tokio::time::timeout(idle, socket.recv_from(&mut buffer)).await {
            Ok(Ok((len, _))) => match RtpPacket::parse(&buffer[..len]) {
                Ok(packet) if packet.ssrc == ssrc => received.push(packet),
                _ => {}
            },
            Ok(Err(error)) => panic!("receiving RTP: {error}"),
            Err(_) => break,
        }
    }
    received
}

/// Sends `count` Opus packets of stream `source_ssrc`, one every 2 ms, to
/// `ingest` (from a socket on its IP) and checks that every one reaches
/// `receiver`, as [`assert_delivered`] checks, re-stamped with the SSRC and
/// payload type the consumer announced (`out`).
pub async fn assert_carried(ingest: SocketAddr, source_ssrc: u32, receiver: &UdpSocket, out: (u32, u8), count: u32) {
    let (ssrc, payload_type) = out;
    let sender = UdpSocket::bind((ingest.ip(), 0)).await.expect("bind sender");
    let packets = test_stream(source_ssrc, crate::media::OPUS_PAYLOAD_TYPE, count);
    let ((), received) = tokio::join!(
        send_paced(&sender, ingest, &packets, Duration::from_millis(2)),
        receive_rtp(receiver, ssrc, packets.len(), Duration::from_secs(3)),
    );
    assert_delivered(&packets, &received, payload_type, ssrc);
}

/// Checks that `received` is `sent`, re-stamped by an SFU: same count, one SSRC and
/// payload type (the consumer's), sequence numbers consecutive, payloads identical
/// and in order.
pub fn assert_delivered(sent: &[RtpPacket], received: &[RtpPacket], payload_type: u8, ssrc: u32) {
    assert_eq!(received.len(), sent.len(), "packet count at the receiving socket");
    for (i, (got, want)) in received.iter().zip(sent).enumerate() {
        assert_eq!(got.ssrc, ssrc, "ssrc of packet {i}");
        assert_eq!(got.payload_type, payload_type, "payload type of packet {i}");
        assert_eq!(got.payload, want.payload, "payload of packet {i}");
        if i > 0 {
            let previous = received[i - 1].sequence;
            assert_eq!(got.sequence, previous.wrapping_add(1), "sequence continuity at packet {i}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_parse_round_trip() {
        for packet in test_stream(0x1234_5678, 100, 5) {
            assert_eq!(RtpPacket::parse(&packet.encode()), Ok(packet));
        }
    }

    #[test]
    fn parse_skips_csrc_extension_and_padding() {
        let mut bytes = vec![0xb1, 0x64, 0, 7, 0, 0, 0, 9, 0, 0, 0, 5];
        bytes.extend_from_slice(&[1, 2, 3, 4]); // one CSRC
        bytes.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]); // one-word extension
        bytes.extend_from_slice(&[9, 8, 7]); // payload
        bytes.extend_from_slice(&[0, 2]); // two bytes of padding
        let packet = RtpPacket::parse(&bytes).expect("valid packet");
        assert_eq!(packet.payload, vec![9, 8, 7]);
        assert_eq!((packet.sequence, packet.timestamp, packet.ssrc), (7, 9, 5));
    }

    #[test]
    fn parse_rejects_rtcp_and_garbage() {
        assert_eq!(RtpPacket::parse(&[0x80, 200, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0]), Err(RtpParseError::Rtcp));
        assert_eq!(RtpPacket::parse(&[0x80, 100]), Err(RtpParseError::Truncated));
        assert_eq!(RtpPacket::parse(&[0x40; 12]), Err(RtpParseError::BadVersion(1)));
    }

    #[test]
    fn a_test_payload_gives_its_index_back_and_padding_none() {
        for index in [0, 1, 255, 70_000, u32::MAX] {
            assert_eq!(test_payload_index(&test_payload(index, 120)), Some(index));
        }
        // mediasoup's probation packets carry zero padding as their payload.
        assert_eq!(test_payload_index(&[0; 20]), None);
        assert_eq!(test_payload_index(&[0xfc, 1, 2]), None);
    }
}
