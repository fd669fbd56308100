//! SDP offer/answer for WHIP and WHEP clients, bridged to mediasoup.
//!
//! mediasoup speaks RTP parameters, not SDP; browsers, OBS, GStreamer and
//! ffmpeg speak SDP. This module owns the translation, kept apart from how a
//! node uses it:
//! - [`offer`]: reading a client's offer (bounded, typed errors);
//! - [`negotiate`]: choosing, per media section, what the node receives
//!   (producer RTP parameters, simulcast included) or sends (the codec the
//!   player takes, with the player's own payload types and extension ids);
//! - [`answer`]: writing the node's answer (ICE-lite, one bundled transport).

pub mod answer;
pub mod negotiate;
pub mod offer;

pub use answer::{AnswerSection, LocalTransport, write_answer};
pub use negotiate::{Playback, Publication, dtls_parameters, play, receive};
pub use offer::{Direction, MediaSection, Offer, Setup};

/// Why an offer cannot be served at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// Longer than the node reads.
    #[error("the SDP is larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// More lines than the node reads.
    #[error("the SDP has more than {max} lines")]
    TooManyLines {
        /// The limit.
        max: usize,
    },
    /// More `m=` sections than the node reads.
    #[error("the SDP has more than {max} media sections")]
    TooManySections {
        /// The limit.
        max: usize,
    },
    /// A line breaks the SDP grammar (or a bound on one of its lists).
    #[error("malformed SDP at line {line}: {reason}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Well-formed, but missing something WebRTC needs (ICE credentials, a
    /// DTLS fingerprint, rtcp-mux, BUNDLE…).
    #[error("the offer cannot be used: {0}")]
    Unusable(String),
    /// No media section the node can serve; each section's reason is listed.
    #[error("no usable media section in the offer: {}", .0.join("; "))]
    NothingUsable(Vec<String>),
}

#[cfg(test)]
mod tests;
