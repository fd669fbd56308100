//! Errors of the node crate.

/// What can go wrong running a node or serving an app.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The media side failed.
    #[error(transparent)]
    Media(#[from] mafalda_media::MediaError),
    /// The swarm side failed.
    #[error(transparent)]
    Swarm(#[from] mafalda_swarm::SwarmError),
    /// The app's input is not acceptable; the text says why.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// No node provides the stream.
    #[error("stream {0} not found")]
    NotFound(String),
    /// The stream is already published here.
    #[error("stream {0} is already published on this node")]
    AlreadyPublished(String),
    /// This node is over its watermark; these peers also relay the stream.
    #[error("busy; try {alternatives:?}")]
    Busy {
        /// Peer ids of other providers of the stream.
        alternatives: Vec<String>,
    },
    /// The caller may not do this (a pipe to an address that is not the
    /// caller's, over a per-peer cap, closing another owner's object...).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A stream's signed provenance did not verify.
    #[error("stream {stream} refused: {source}")]
    Provenance {
        /// The stream.
        stream: String,
        /// What did not verify.
        source: crate::record::RecordError,
    },
    /// Two origins provide streams under one id; the app must pin one
    /// (`ID@PEERID`).
    #[error("stream {stream} has {} origins ({}): pin one as {stream}@PEERID", origins.len(), origins.join(", "))]
    OriginConflict {
        /// The stream.
        stream: String,
        /// The origins' peer ids.
        origins: Vec<String>,
    },
    /// This node is behind NAT and cannot be piped from (`stream.pipe`): no
    /// node can send its end the first packet.
    #[error("this node is behind NAT: pipe stream {0} from a reachable node")]
    BehindNat(String),
    /// This node serves no WebRTC clients (started with `--no-webrtc`).
    #[error("this node serves no WebRTC clients (it was started with WebRTC off): use another node")]
    WebRtcOff,
    /// A WHIP or WHEP client's SDP offer is malformed or cannot be served.
    #[error(transparent)]
    Sdp(#[from] mafalda_media::sdp::SdpError),
    /// A provider asked to pipe a stream did not: it refused, or the call
    /// failed.
    #[error("provider {peer} did not pipe stream {stream}: {source}")]
    PipeRefused {
        /// The stream.
        stream: String,
        /// The provider asked.
        peer: mafalda_swarm::PeerId,
        /// Its answer, or why there was none.
        source: Box<mafalda_swarm::CallError>,
    },
    /// Every provider of the stream refused or failed; the text lists why.
    #[error("no provider could serve stream {stream}: {reasons}")]
    NoProvider {
        /// The stream.
        stream: String,
        /// What each provider answered.
        reasons: String,
    },
}

/// ROPE code for "already published" (apps' API).
pub const ALREADY_PUBLISHED: i64 = -32010;
/// ROPE code for "no provider could serve the stream" (apps' API).
pub const NO_PROVIDER: i64 = -32011;
/// ROPE code for "forbidden" (apps' API and node to node).
pub const FORBIDDEN: i64 = -32003;
/// ROPE code for "the stream's provenance did not verify".
pub const UNTRUSTED: i64 = -32012;
/// ROPE code for "two origins under one id".
pub const ORIGIN_CONFLICT: i64 = -32013;
/// ROPE code for "this node is behind NAT; pipe from a reachable one" (node to node).
pub const BEHIND_NAT: i64 = -32014;

impl From<NodeError> for mafalda_rope::RpcError {
    fn from(error: NodeError) -> Self {
        use mafalda_rope::{ErrorCode, RpcError, Value};
        match error {
            NodeError::Busy { alternatives } => {
                let data = Value::Array(alternatives.into_iter().map(Value::Text).collect());
                RpcError::new(ErrorCode::Busy, "busy: over the watermark").with_data(data)
            }
            NodeError::NotFound(what) => RpcError::new(ErrorCode::ObjectNotFound, format!("{what} not found")),
            NodeError::InvalidInput(why) => RpcError::new(ErrorCode::InvalidParams, why),
            error @ NodeError::Sdp(_) => RpcError::new(ErrorCode::InvalidParams, error.to_string()),
            error @ NodeError::AlreadyPublished(_) => {
                RpcError::new(ErrorCode::Application(ALREADY_PUBLISHED), error.to_string())
            }
            error @ (NodeError::NoProvider { .. } | NodeError::PipeRefused { .. }) => {
                RpcError::new(ErrorCode::Application(NO_PROVIDER), error.to_string())
            }
            error @ NodeError::Forbidden(_) => RpcError::new(ErrorCode::Application(FORBIDDEN), error.to_string()),
            error @ NodeError::BehindNat(_) => RpcError::new(ErrorCode::Application(BEHIND_NAT), error.to_string()),
            error @ NodeError::Provenance { .. } => RpcError::new(ErrorCode::Application(UNTRUSTED), error.to_string()),
            NodeError::OriginConflict { stream, origins } => {
                let message = NodeError::OriginConflict { stream, origins: origins.clone() }.to_string();
                let data = Value::Array(origins.into_iter().map(Value::Text).collect());
                RpcError::new(ErrorCode::Application(ORIGIN_CONFLICT), message).with_data(data)
            }
            other => RpcError::new(ErrorCode::InternalError, other.to_string()),
        }
    }
}
