//! Bytes and streams per protocol: what each libp2p protocol costs on the wire.
//!
//! libp2p counts bytes per connection only. Here every substream of every
//! connection is wrapped ([`CountedMuxer`]), and the protocol it carries is read
//! from the stream's own multistream-select proposal, which the dialer sends
//! first: a length-prefixed `/multistream/1.0.0\n` then `<protocol>\n`. We read
//! it from what we write on the streams we open and from what we read on the
//! streams a peer opens. The bytes counted are the substream's payload, the
//! negotiation included, without yamux framing or noise (the kernel's counters
//! and libp2p's `libp2p_bandwidth_bytes_total` add those).
//!
//! Labels come from a fixed list ([`ProtocolLabel`]); a protocol name a peer
//! makes up counts as `other`, so a peer cannot grow the label set.
//!
//! The same sniffing tells when a peer last opened or was sent a Kademlia
//! stream (one per request): the connection policy counts that as use, so a
//! crowded node does not cut the lookups it is serving.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use futures::{AsyncRead, AsyncWrite};
use libp2p::PeerId;
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::behaviour::KAD_PROTOCOL;
use crate::rope_codec::ROPE_PROTOCOL;

/// The multistream-select header every negotiation starts with.
const MULTISTREAM_HEADER: &[u8] = b"/multistream/1.0.0\n";
/// Most bytes looked at to find a stream's protocol; a proposal that does not
/// fit is counted as `other`.
const MAX_SNIFF_BYTES: usize = 160;

/// What a counted stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolLabel {
    /// Kademlia (`/mafalda/kad/1.0.0`).
    Kad,
    /// Gossipsub (`/meshsub/*`).
    Gossipsub,
    /// Identify and identify push (`/ipfs/id/*`).
    Identify,
    /// Ping (`/ipfs/ping/1.0.0`).
    Ping,
    /// ROPE calls (`/mafalda/rope/*`).
    Rope,
    /// Circuits through a relay (`/libp2p/circuit/relay/*`): at a relay, the
    /// bytes it carries for others; at a node behind NAT, its relayed traffic.
    Relay,
    /// Anything else, and streams whose proposal could not be read.
    Other,
}

impl ProtocolLabel {
    /// Every label, in the order reports list them.
    pub const ALL: [ProtocolLabel; 7] =
        [Self::Kad, Self::Gossipsub, Self::Identify, Self::Ping, Self::Rope, Self::Relay, Self::Other];

    /// The label of a protocol name as proposed on the wire.
    pub fn of(protocol: &str) -> Self {
        if protocol == KAD_PROTOCOL.as_ref() {
            Self::Kad
        } else if protocol.starts_with("/meshsub/") {
            Self::Gossipsub
        } else if protocol.starts_with("/ipfs/id/") {
            Self::Identify
        } else if protocol == "/ipfs/ping/1.0.0" {
            Self::Ping
        } else if protocol == ROPE_PROTOCOL.as_ref() || protocol == crate::rope_link::ROPE_LINK_PROTOCOL.as_ref() {
            Self::Rope
        } else if protocol.starts_with("/libp2p/circuit/relay/") {
            Self::Relay
        } else {
            Self::Other
        }
    }

    /// The label as text (as in `/metrics`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kad => "kad",
            Self::Gossipsub => "gossipsub",
            Self::Identify => "identify",
            Self::Ping => "ping",
            Self::Rope => "rope",
            Self::Relay => "relay",
            Self::Other => "other",
        }
    }
}

/// Which way bytes or streams go, seen from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Direction {
    In,
    Out,
}

impl EncodeLabelValue for ProtocolLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        encoder.write_str(self.as_str())
    }
}

impl EncodeLabelValue for Direction {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        encoder.write_str(match self {
            Self::In => "in",
            Self::Out => "out",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Labels {
    protocol: ProtocolLabel,
    direction: Direction,
}

/// One protocol's traffic since the node started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProtocolTraffic {
    /// Payload bytes received on its streams.
    pub bytes_in: u64,
    /// Payload bytes sent on its streams.
    pub bytes_out: u64,
    /// Streams peers opened for it.
    pub streams_in: u64,
    /// Streams this node opened for it.
    pub streams_out: u64,
}

/// The counters, shared by every connection of a node.
#[derive(Debug, Clone, Default)]
pub(crate) struct Traffic {
    bytes: Family<Labels, Counter>,
    streams: Family<Labels, Counter>,
    /// When each peer last had a Kademlia stream or a call over its ROPE link,
    /// since the last [`Traffic::take_activity`].
    activity: Arc<Mutex<HashMap<PeerId, Instant>>>,
}

impl Traffic {
    /// Counters registered as `mafalda_p2p_bytes_total` and `mafalda_p2p_streams_total`.
    pub(crate) fn new(registry: &mut Registry) -> Self {
        let traffic = Self::default();
        registry.register(
            "mafalda_p2p_bytes",
            "Payload bytes on libp2p streams by protocol and direction (without yamux and noise framing)",
            traffic.bytes.clone(),
        );
        registry.register(
            "mafalda_p2p_streams",
            "libp2p streams by protocol and direction (in: opened by the peer)",
            traffic.streams.clone(),
        );
        traffic
    }

    /// Every protocol's traffic so far.
    pub(crate) fn snapshot(&self) -> Vec<(ProtocolLabel, ProtocolTraffic)> {
        let get = |family: &Family<Labels, Counter>, protocol, direction| {
            family.get_or_create(&Labels { protocol, direction }).get()
        };
        ProtocolLabel::ALL
            .iter()
            .map(|&p| {
                (
                    p,
                    ProtocolTraffic {
                        bytes_in: get(&self.bytes, p, Direction::In),
                        bytes_out: get(&self.bytes, p, Direction::Out),
                        streams_in: get(&self.streams, p, Direction::In),
                        streams_out: get(&self.streams, p, Direction::Out),
                    },
                )
            })
            .collect()
    }

    /// Peers that had a Kademlia stream or a link call since the last call,
    /// with when; at most one entry per peer connected meanwhile.
    pub(crate) fn take_activity(&self) -> HashMap<PeerId, Instant> {
        std::mem::take(&mut *self.activity.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Records that `peer` was used just now (a Kademlia stream, a call over
    /// its ROPE link): its connection is not the first to close when the node
    /// has too many.
    pub(crate) fn used(&self, peer: PeerId) {
        self.activity.lock().unwrap_or_else(PoisonError::into_inner).insert(peer, Instant::now());
    }

    fn counters(&self, protocol: ProtocolLabel) -> (Counter, Counter) {
        // One statement each: `get_or_create` holds the family's lock until
        // its guard drops, and a second call in the same statement deadlocks.
        let bytes_in = self.bytes.get_or_create(&Labels { protocol, direction: Direction::In }).clone();
        let bytes_out = self.bytes.get_or_create(&Labels { protocol, direction: Direction::Out }).clone();
        (bytes_in, bytes_out)
    }
}

/// A muxer whose substreams count their bytes by protocol.
#[derive(Debug)]
pub(crate) struct CountedMuxer<M> {
    inner: M,
    traffic: Traffic,
    peer: PeerId,
}

impl<M> CountedMuxer<M> {
    /// Wraps `inner`, a connection with `peer`, counting into `traffic`.
    pub(crate) fn new(inner: M, traffic: Traffic, peer: PeerId) -> Self {
        Self { inner, traffic, peer }
    }
}

impl<M> StreamMuxer for CountedMuxer<M>
where
    M: StreamMuxer + Unpin,
    M::Substream: Unpin,
{
    type Substream = CountedStream<M::Substream>;
    type Error = M::Error;

    fn poll_inbound(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Self::Substream, Self::Error>> {
        let (traffic, peer) = (self.traffic.clone(), self.peer);
        Pin::new(&mut self.inner)
            .poll_inbound(cx)
            .map_ok(|stream| CountedStream::new(stream, traffic, peer, Direction::In))
    }

    fn poll_outbound(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Self::Substream, Self::Error>> {
        let (traffic, peer) = (self.traffic.clone(), self.peer);
        Pin::new(&mut self.inner)
            .poll_outbound(cx)
            .map_ok(|stream| CountedStream::new(stream, traffic, peer, Direction::Out))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

/// A substream that counts what goes through it under its protocol's label.
#[derive(Debug)]
pub(crate) struct CountedStream<S> {
    inner: S,
    traffic: Traffic,
    peer: PeerId,
    /// Who opened the stream: the proposal is in what we read (`in`) or write (`out`).
    opened: Direction,
    state: Sniff,
}

#[derive(Debug)]
enum Sniff {
    /// Protocol not known yet: the proposal's first bytes, and bytes seen each way.
    Reading { proposal: Vec<u8>, bytes_in: u64, bytes_out: u64 },
    /// The protocol's counters.
    Known { bytes_in: Counter, bytes_out: Counter },
}

impl<S> CountedStream<S> {
    fn new(inner: S, traffic: Traffic, peer: PeerId, opened: Direction) -> Self {
        Self { inner, traffic, peer, opened, state: Sniff::Reading { proposal: Vec::new(), bytes_in: 0, bytes_out: 0 } }
    }

    /// Counts `bytes` moved in `direction`; while the protocol is unknown, also
    /// reads the proposal from them.
    fn count(&mut self, direction: Direction, bytes: &[u8]) {
        let n = bytes.len() as u64;
        match &mut self.state {
            Sniff::Known { bytes_in, bytes_out } => {
                match direction {
                    Direction::In => bytes_in.inc_by(n),
                    Direction::Out => bytes_out.inc_by(n),
                };
            }
            Sniff::Reading { proposal, bytes_in, bytes_out } => {
                match direction {
                    Direction::In => *bytes_in += n,
                    Direction::Out => *bytes_out += n,
                }
                if direction == self.opened {
                    let room = MAX_SNIFF_BYTES.saturating_sub(proposal.len());
                    proposal.extend_from_slice(&bytes[..bytes.len().min(room)]);
                }
                let label = match parse_proposal(proposal) {
                    Proposal::Incomplete if proposal.len() < MAX_SNIFF_BYTES => return,
                    Proposal::Incomplete | Proposal::Malformed => ProtocolLabel::Other,
                    Proposal::Protocol(name) => ProtocolLabel::of(name),
                };
                let (seen_in, seen_out) = (*bytes_in, *bytes_out);
                if label == ProtocolLabel::Kad {
                    self.traffic.used(self.peer);
                }
                self.traffic.streams.get_or_create(&Labels { protocol: label, direction: self.opened }).inc();
                let (counter_in, counter_out) = self.traffic.counters(label);
                counter_in.inc_by(seen_in);
                counter_out.inc_by(seen_out);
                self.state = Sniff::Known { bytes_in: counter_in, bytes_out: counter_out };
            }
        }
    }
}

impl<S> Drop for CountedStream<S> {
    fn drop(&mut self) {
        // A stream closed before its proposal was read (a refused or reset one).
        if let Sniff::Reading { bytes_in, bytes_out, .. } = self.state {
            self.traffic
                .streams
                .get_or_create(&Labels { protocol: ProtocolLabel::Other, direction: self.opened })
                .inc();
            let (counter_in, counter_out) = self.traffic.counters(ProtocolLabel::Other);
            counter_in.inc_by(bytes_in);
            counter_out.inc_by(bytes_out);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CountedStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let read = futures::ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        self.count(Direction::In, &buf[..read]);
        Poll::Ready(Ok(read))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountedStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = futures::ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        self.count(Direction::Out, &buf[..written]);
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// What the first bytes of a stream say so far.
#[derive(Debug, PartialEq, Eq)]
enum Proposal<'a> {
    /// More bytes are needed.
    Incomplete,
    /// Not a multistream-select proposal.
    Malformed,
    /// The first protocol proposed after the header.
    Protocol(&'a str),
}

/// One length-prefixed message as far as it has arrived.
enum Frame<'a> {
    /// More bytes are needed.
    Incomplete,
    /// Not a length we accept.
    Malformed,
    /// The message and what follows it.
    Whole(&'a [u8], &'a [u8]),
}

/// Reads `/multistream/1.0.0\n` and the first proposal after it, each an
/// unsigned-varint length followed by that many bytes ending in `\n`.
fn parse_proposal(bytes: &[u8]) -> Proposal<'_> {
    let rest = match message(bytes) {
        Frame::Whole(header, rest) if header == MULTISTREAM_HEADER => rest,
        Frame::Incomplete => return Proposal::Incomplete,
        Frame::Whole(..) | Frame::Malformed => return Proposal::Malformed,
    };
    match message(rest) {
        Frame::Whole(protocol, _) => match std::str::from_utf8(protocol) {
            Ok(text) => Proposal::Protocol(text.trim_end_matches('\n')),
            Err(_) => Proposal::Malformed,
        },
        Frame::Incomplete => Proposal::Incomplete,
        Frame::Malformed => Proposal::Malformed,
    }
}

/// Splits off one length-prefixed message.
fn message(bytes: &[u8]) -> Frame<'_> {
    let mut len: usize = 0;
    for (i, &byte) in bytes.iter().enumerate().take(2) {
        len |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let body = &bytes[i + 1..];
            if len == 0 || len > MAX_SNIFF_BYTES {
                return Frame::Malformed;
            }
            return match body.get(..len) {
                Some(message) => Frame::Whole(message, &body[len..]),
                None => Frame::Incomplete,
            };
        }
    }
    // Two bytes of varint cover every length we accept.
    if bytes.len() >= 2 { Frame::Malformed } else { Frame::Incomplete }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(parts: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for part in parts {
            out.push(u8::try_from(part.len()).expect("short"));
            out.extend_from_slice(part.as_bytes());
        }
        out
    }

    #[test]
    fn a_proposal_is_read_whole_or_in_pieces() {
        let bytes = framed(&["/multistream/1.0.0\n", "/mafalda/kad/1.0.0\n"]);
        assert_eq!(parse_proposal(&bytes), Proposal::Protocol("/mafalda/kad/1.0.0"));
        for cut in 0..bytes.len() {
            assert_eq!(parse_proposal(&bytes[..cut]), Proposal::Incomplete, "cut at {cut}");
        }
    }

    #[test]
    fn anything_but_a_proposal_is_malformed() {
        assert_eq!(parse_proposal(&framed(&["/other/1.0.0\n", "/x\n"])), Proposal::Malformed);
        assert_eq!(parse_proposal(&[0]), Proposal::Malformed);
        assert_eq!(parse_proposal(&[0xff, 0xff, 0x01]), Proposal::Malformed);
        let mut bad_utf8 = framed(&["/multistream/1.0.0\n"]);
        bad_utf8.extend_from_slice(&[2, 0xff, b'\n']);
        assert_eq!(parse_proposal(&bad_utf8), Proposal::Malformed);
    }

    #[test]
    fn labels_come_from_a_fixed_list() {
        assert_eq!(ProtocolLabel::of("/meshsub/1.2.0"), ProtocolLabel::Gossipsub);
        assert_eq!(ProtocolLabel::of("/ipfs/id/push/1.0.0"), ProtocolLabel::Identify);
        assert_eq!(ProtocolLabel::of(ROPE_PROTOCOL.as_ref()), ProtocolLabel::Rope);
        assert_eq!(ProtocolLabel::of("/made/up/9"), ProtocolLabel::Other);
        assert_eq!(ProtocolLabel::of("/libp2p/circuit/relay/0.2.0/hop"), ProtocolLabel::Relay);
        assert_eq!(ProtocolLabel::of("/libp2p/circuit/relay/0.2.0/stop"), ProtocolLabel::Relay);
        assert_eq!(ProtocolLabel::of("/ipfs/kad/1.0.0"), ProtocolLabel::Other);
    }

    #[test]
    fn a_stream_counts_its_bytes_under_its_protocol_once_known() {
        let traffic = Traffic::default();
        let mut stream = CountedStream::new((), traffic.clone(), PeerId::random(), Direction::Out);
        let proposal = framed(&["/multistream/1.0.0\n", "/ipfs/ping/1.0.0\n"]);
        stream.count(Direction::Out, &proposal[..5]);
        assert_eq!(traffic.snapshot().iter().map(|(_, t)| t.bytes_out).sum::<u64>(), 0, "not counted before known");
        stream.count(Direction::Out, &proposal[5..]);
        stream.count(Direction::In, &[0; 32]);
        let ping = traffic.snapshot().into_iter().find(|(p, _)| *p == ProtocolLabel::Ping).expect("ping").1;
        assert_eq!(
            ping,
            ProtocolTraffic { bytes_in: 32, bytes_out: proposal.len() as u64, streams_in: 0, streams_out: 1 }
        );
    }

    #[test]
    fn a_stream_closed_before_its_proposal_counts_as_other() {
        let traffic = Traffic::default();
        let stream = {
            let mut stream = CountedStream::new((), traffic.clone(), PeerId::random(), Direction::In);
            stream.count(Direction::In, &[19, b'/']);
            stream
        };
        drop(stream);
        let other = traffic.snapshot().into_iter().find(|(p, _)| *p == ProtocolLabel::Other).expect("other").1;
        assert_eq!(other, ProtocolTraffic { bytes_in: 2, bytes_out: 0, streams_in: 1, streams_out: 0 });
    }

    #[test]
    fn a_kademlia_stream_marks_its_peer_active_and_others_do_not() {
        let traffic = Traffic::default();
        let (kad_peer, ping_peer) = (PeerId::random(), PeerId::random());
        let mut kad = CountedStream::new((), traffic.clone(), kad_peer, Direction::In);
        kad.count(Direction::In, &framed(&["/multistream/1.0.0\n", &format!("{KAD_PROTOCOL}\n")]));
        let mut ping = CountedStream::new((), traffic.clone(), ping_peer, Direction::Out);
        ping.count(Direction::Out, &framed(&["/multistream/1.0.0\n", "/ipfs/ping/1.0.0\n"]));
        let active = traffic.take_activity();
        assert_eq!(active.keys().collect::<Vec<_>>(), vec![&kad_peer]);
        assert!(traffic.take_activity().is_empty(), "taken once");
    }
}
