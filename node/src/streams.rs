//! What a node knows about each stream it holds, and the descriptions nodes
//! exchange about streams (the data of the `stream.*` ROPE methods).

use std::any::Any;

use mafalda_media::mediasoup::prelude::{MediaKind, Producer, ProducerId, RtpParameters};
use mafalda_media::pipe::{PipeEndpoint, PipedTrack};
use mafalda_swarm::PeerId;
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

/// One track of a stream as nodes describe it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackInfo {
    /// Producer id (the same on every node holding the stream).
    pub producer_id: ProducerId,
    /// Audio or video.
    pub kind: MediaKind,
    /// RTP parameters of the producer.
    pub rtp_parameters: RtpParameters,
}

/// A stream as a provider describes it (answer to `stream.describe`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamDescription {
    /// The stream id.
    pub stream: String,
    /// Its tracks.
    pub tracks: Vec<TrackInfo>,
    /// Hops from the origin (0 = this is the origin).
    pub hops: u32,
    /// Peer ids from the origin to the describing node.
    pub path: Vec<String>,
}

/// Asks a provider to pipe a stream here (params of `stream.pipe`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipeRequest {
    /// The stream.
    pub stream: String,
    /// The asking node's end of the pipe.
    pub endpoint: PipeEndpoint,
}

/// A provider's answer to `stream.pipe`: its end of the pipe and the tracks on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipeOffer {
    /// The provider's end.
    pub endpoint: PipeEndpoint,
    /// The tracks it sends.
    pub tracks: Vec<PipedTrack>,
    /// The provider's hops from the origin.
    pub hops: u32,
    /// Peer ids from the origin to the provider.
    pub path: Vec<String>,
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

/// A stream held by this node.
pub(crate) struct LocalStream {
    pub(crate) role: Role,
    pub(crate) hops: u32,
    pub(crate) path: Vec<String>,
    pub(crate) producers: Vec<Producer>,
    /// Peers this node pipes the stream to (told when it ends here).
    pub(crate) downstream: Vec<PeerId>,
    /// Transports and pipe consumers that must live as long as the stream.
    pub(crate) keep: Vec<Box<dyn Any + Send>>,
}

impl LocalStream {
    pub(crate) fn describe(&self, stream: &str) -> StreamDescription {
        StreamDescription {
            stream: stream.to_owned(),
            tracks: self
                .producers
                .iter()
                .map(|p| TrackInfo { producer_id: p.id(), kind: p.kind(), rtp_parameters: p.rtp_parameters().clone() })
                .collect(),
            hops: self.hops,
            path: self.path.clone(),
        }
    }
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
}
