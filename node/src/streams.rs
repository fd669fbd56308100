//! What a node knows about each stream it holds, and the descriptions nodes
//! exchange about streams (the data of the `stream.*` ROPE methods).

use std::any::Any;
use std::collections::HashMap;

use mafalda_media::mediasoup::prelude::{Consumer, MediaKind, Producer, RtpParameters};
use mafalda_media::pipe::{PipeEndpoint, PipedTrack};
use mafalda_swarm::{Keypair, PeerId};

use crate::record::{Provenance, RecordTrack, Verified};
use serde::{Deserialize, Serialize};

/// Longest stream id accepted.
pub const MAX_STREAM_ID_LEN: usize = 128;

/// Checks a stream id: 1–128 characters of `A-Z a-z 0-9 - _ . :`.
pub fn validate_stream_id(id: &str) -> Result<(), crate::NodeError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_STREAM_ID_LEN
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(crate::NodeError::InvalidInput(format!(
            "stream id must be 1-{MAX_STREAM_ID_LEN} characters of A-Z a-z 0-9 - _ . :"
        )))
    }
}

/// A stream id as apps give it: `ID`, or `ID@PEERID` to pin the origin (the
/// only node whose signed record is accepted for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRef {
    /// The stream id.
    pub id: String,
    /// The origin the app pinned, if any.
    pub origin: Option<PeerId>,
}

impl StreamRef {
    /// Parses `ID` or `ID@PEERID`, validating both parts.
    pub fn parse(text: &str) -> Result<Self, crate::NodeError> {
        let (id, origin) = match text.split_once('@') {
            Some((id, origin)) => {
                let origin = origin
                    .parse::<PeerId>()
                    .map_err(|_| crate::NodeError::InvalidInput(format!("{origin:.60} after @ is not a peer id")))?;
                (id, Some(origin))
            }
            None => (text, None),
        };
        validate_stream_id(id)?;
        Ok(Self { id: id.to_owned(), origin })
    }
}

/// One track of a stream as nodes describe it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackInfo {
    /// Audio or video.
    pub kind: MediaKind,
    /// RTP parameters of the describing node's producer.
    pub rtp_parameters: RtpParameters,
}

/// A stream as a provider describes it (answer to `stream.describe`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamDescription {
    /// The stream id.
    pub stream: String,
    /// Its tracks, as the provider holds them.
    pub tracks: Vec<TrackInfo>,
    /// The origin's signed record and the hand-offs down to the provider: its
    /// hops and path from the origin, signed by the nodes on the way.
    pub provenance: Provenance,
    /// The provider's load now (mean worker CPU, 0–1), so a finder ranks its
    /// candidates by fresh figures without the whole swarm gossiping them.
    /// Absent from older nodes; a finder clamps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<f64>,
    /// The pipe the stream's origin made at once for a consuming node that
    /// asked with [`DescribeParams::pipe_if_origin`] (relays never pipe so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<PipeOffer>,
}

/// Asks a provider to pipe a stream here (params of `stream.pipe`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipeRequest {
    /// The stream.
    pub stream: String,
    /// The asking node's end of the pipe. Its IP must be the IP the asking
    /// node's libp2p connection comes from: a node pipes only to the asker.
    /// In [`PipeMode::AskerSendsFirst`], only its SRTP key counts.
    pub endpoint: PipeEndpoint,
    /// Which end sends first, when one is behind NAT.
    #[serde(default, skip_serializing_if = "PipeMode::is_pipe")]
    pub mode: PipeMode,
    /// When the provider does not hold the stream: pipe it here first (from
    /// `origin` only), then to the asker. A node behind NAT asks a reachable
    /// one so, for a stream only nodes behind NAT hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_from: Option<String>,
    /// The asking node's ends of the pipe pairs it keeps with the provider
    /// (newest first, at most [`MAX_PAIRED_ENDS`]): a provider with a
    /// transport connected to one of them for this asker, on the stream's
    /// router, pipes the stream on it and answers with that transport's
    /// end; otherwise it pipes to `endpoint` as it would without.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paired_ends: Vec<PipeEndpoint>,
}

/// Most paired ends a pipe request or describe may quote
/// ([`PipeRequest::paired_ends`]): one per router of the provider's that
/// pipes to the asker's router, and a provider rarely has more workers.
pub const MAX_PAIRED_ENDS: usize = 16;

/// How the two ends of a pipe find each other (`mafalda_media::nat_pipe`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PipeMode {
    /// Both nodes reachable: a PipeTransport pair, each told the other's address.
    #[default]
    Pipe,
    /// The asker is behind NAT: it sends to the provider's end first, and the
    /// provider takes its address from that packet once it is the address the
    /// asker's connection comes from.
    AskerSendsFirst,
    /// The provider is behind NAT: the asker's end listens, the provider's
    /// end sends to it first.
    AskerListens,
}

impl PipeMode {
    fn is_pipe(&self) -> bool {
        *self == Self::Pipe
    }
}

/// A provider's answer to `stream.pipe`: its end of the pipe and the tracks on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipeOffer {
    /// The provider's end.
    pub endpoint: PipeEndpoint,
    /// The tracks it sends, in the order of the origin's record.
    pub tracks: Vec<PipedTrack>,
    /// The provider's provenance, extended by a hand-off to the asking node.
    pub provenance: Provenance,
}

/// Params of `stream.describe`: the stream and, from a node about to
/// consume it, its end of a pipe. The origin pipes to that end at once, with
/// every check of `stream.pipe`, and answers with the description and the
/// offer: the consume saves the round trip a `stream.pipe` would take after
/// the descriptions (the origin, with no hops, is nearly always the cheapest
/// provider). A relay describes only; the consumer unpipes an origin it does
/// not choose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeParams {
    /// The stream.
    pub stream: String,
    /// The asking node's end of a pipe, for the origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipe_if_origin: Option<PipeEndpoint>,
    /// With `pipe_if_origin`: the ends of the pairs kept with the origin
    /// ([`PipeRequest::paired_ends`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paired_ends: Vec<PipeEndpoint>,
}

/// Params of `stream.unpipe`, `stream.closed` and `stream.stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamParams {
    /// The stream.
    pub stream: String,
}

/// Whether this node is a stream's origin or a relay of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Published here.
    Origin,
    /// Piped here from `upstream`.
    Relay {
        /// The provider it comes from.
        upstream: PeerId,
    },
}

impl Role {
    /// The provider a relayed stream comes from; none for an origin's.
    pub fn upstream(&self) -> Option<PeerId> {
        match self {
            Role::Origin => None,
            Role::Relay { upstream } => Some(*upstream),
        }
    }
}

/// A pipe this node feeds another node through; dropping it closes the
/// transport and its consumers.
pub(crate) struct DownstreamPipe {
    pub(crate) _transport: mafalda_media::pipe::PipeLeg,
    pub(crate) _consumers: Vec<Consumer>,
    /// What it sent, as last counted.
    pub(crate) sent: crate::liveness::Counters,
}

impl DownstreamPipe {
    /// Its consumers.
    pub(crate) fn consumers(&self) -> &[Consumer] {
        &self._consumers
    }

    /// Whether a consumer of it closed (its worker went away).
    pub(crate) fn is_broken(&self) -> bool {
        self._consumers.iter().any(Consumer::closed)
    }
}

/// A stream held by this node.
pub(crate) struct LocalStream {
    pub(crate) role: Role,
    /// Where the stream comes from, signed (passed on to downstream nodes).
    pub(crate) provenance: Provenance,
    /// What the provenance says, checked.
    pub(crate) verified: Verified,
    pub(crate) producers: Vec<Producer>,
    /// Pipes to downstream peers: at most one per peer, told when the stream
    /// ends here, closed when the peer leaves or says it is done.
    pub(crate) pipes: HashMap<PeerId, DownstreamPipe>,
    /// What feeds the producers (the ingest transport, or the upstream pipe);
    /// held so it lives as long as the stream.
    pub(crate) _source: Option<Box<dyn Any + Send>>,
    /// What its producers received, as last counted.
    pub(crate) received: crate::liveness::Counters,
}

impl LocalStream {
    /// A stream published here, with its record signed by `keypair`.
    pub(crate) fn originate(
        keypair: &Keypair,
        stream: &str,
        version: u64,
        producers: Vec<Producer>,
        source: Option<Box<dyn Any + Send>>,
    ) -> Result<Self, crate::NodeError> {
        let provenance = Provenance::originate(keypair, stream, version, record_tracks(&producers)?);
        let verified = provenance
            .verify(stream, keypair.public().to_peer_id())
            .map_err(|source| crate::NodeError::Provenance { stream: stream.to_owned(), source })?;
        Ok(Self {
            role: Role::Origin,
            provenance,
            verified,
            producers,
            pipes: HashMap::new(),
            _source: source,
            received: crate::liveness::Counters::default(),
        })
    }

    /// Re-signs the record of a stream published here after its tracks changed.
    pub(crate) fn resign(&mut self, keypair: &Keypair, stream: &str) -> Result<(), crate::NodeError> {
        let version = self.verified.record.version.saturating_add(1).max(version_now());
        let provenance = Provenance::originate(keypair, stream, version, record_tracks(&self.producers)?);
        self.verified = provenance
            .verify(stream, keypair.public().to_peer_id())
            .map_err(|source| crate::NodeError::Provenance { stream: stream.to_owned(), source })?;
        self.provenance = provenance;
        Ok(())
    }

    pub(crate) fn describe(&self, stream: &str) -> StreamDescription {
        StreamDescription {
            stream: stream.to_owned(),
            tracks: self
                .producers
                .iter()
                .map(|p| TrackInfo { kind: p.kind(), rtp_parameters: p.rtp_parameters().clone() })
                .collect(),
            provenance: self.provenance.clone(),
            load: None,
            offer: None,
        }
    }

    /// Hops from the origin.
    pub(crate) fn hops(&self) -> u32 {
        self.verified.hops()
    }

    /// Peer ids from the origin to this node.
    pub(crate) fn path(&self) -> Vec<String> {
        self.verified.path.iter().map(ToString::to_string).collect()
    }
}

/// The record tracks of `producers`.
fn record_tracks(producers: &[Producer]) -> Result<Vec<RecordTrack>, crate::NodeError> {
    producers
        .iter()
        .map(|p| RecordTrack::of(p.kind(), p.rtp_parameters()))
        .collect::<Result<_, _>>()
        .map_err(|e| crate::NodeError::InvalidInput(e.to_string()))
}

/// A record version for a publication starting now: milliseconds since the
/// Unix epoch, so a restarted origin's record is newer than its last one.
pub(crate) fn version_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_are_validated() {
        assert!(validate_stream_id("camera-1.main:hd").is_ok());
        for bad in ["", "has space", "slash/", &"x".repeat(129), "ünicode"] {
            assert!(validate_stream_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stream_refs_pin_an_origin() {
        let peer = PeerId::random();
        assert_eq!(StreamRef::parse("cam").expect("test value"), StreamRef { id: "cam".into(), origin: None });
        assert_eq!(StreamRef::parse(&format!("cam@{peer}")).expect("test value").origin, Some(peer));
        for bad in ["cam@", "cam@notapeer", "@x", "a@b@c", "bad id@x"] {
            assert!(StreamRef::parse(bad).is_err(), "{bad:?}");
        }
    }
}
