//! What a node tells its apps as it happens: streams it starts or stops
//! holding, and egresses opened, re-opened after a re-pipe (new SSRCs, new
//! path) or closed. Apps see these as ROPE object events on `/v1/rope`.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::codecs::TrackSummary;
use crate::node::StreamStatus;

/// Events kept for a slow subscriber before it is told it lagged.
pub(crate) const EVENT_BUFFER: usize = 256;

/// An egress as apps see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressStatus {
    /// Id to stop it with.
    pub id: String,
    /// The stream it sends.
    pub stream: String,
    /// Where the RTP goes.
    pub destination: SocketAddr,
    /// What the node sends; SSRCs change when the stream is re-piped.
    pub tracks: Vec<TrackSummary>,
    /// Peer ids from the origin to this node.
    pub path: Vec<String>,
}

/// A change in what the node holds or sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "camelCase")]
#[non_exhaustive]
pub enum NodeEvent {
    /// The node now holds the stream (published, piped here, or re-piped).
    StreamHeld {
        /// The stream as held now.
        status: StreamStatus,
    },
    /// The node no longer holds the stream.
    StreamEnded {
        /// The stream id.
        stream: String,
    },
    /// An egress started, or restarted with new tracks after a re-pipe.
    EgressOpened {
        /// The egress as it is now.
        egress: EgressStatus,
    },
    /// An egress stopped (asked to, its stream ended, or it could not restart).
    EgressClosed {
        /// The egress id.
        id: String,
        /// Its stream.
        stream: String,
        /// Why.
        reason: String,
    },
    /// The node is draining: it takes no new work, moves its downstream
    /// peers away, and stops once done. Apps should move too.
    Draining,
    /// Nothing arrived for a relayed stream while its upstream still received
    /// it: the node is moving it to another pipe.
    StreamSilent {
        /// The stream.
        stream: String,
        /// The upstream whose pipe went silent.
        upstream: String,
    },
}
