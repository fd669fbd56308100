//! WebRTC sessions made from an SDP offer: WHIP publishes a client's tracks as
//! a stream ([`Node::publish_sdp`]), WHEP plays any stream of the swarm to a
//! client ([`Node::play_sdp`]). The SDP ⇄ RTP parameters bridge is
//! [`mafalda_media::sdp`]; this module joins it to streams, and owns what a
//! session makes: one transport, its producers or consumers, and for a player
//! its own router and pipes. Dropping an [`SdpSession`] closes all of it (a
//! publisher's stream ends). [`liveness`] says when a session the client
//! abandoned is over.
//!
//! [`Node::publish_sdp`]: crate::Node::publish_sdp
//! [`Node::play_sdp`]: crate::Node::play_sdp

pub mod liveness;
mod play;
mod publish;

use std::sync::{Arc, Weak};
use std::time::Instant;

use mafalda_media::mediasoup::prelude::{
    Consumer, Producer, Transport, WebRtcTransport, WebRtcTransportRemoteParameters,
};
use mafalda_media::mediasoup::router::Router;
use mafalda_media::mediasoup::types::data_structures::{DtlsFingerprint, DtlsState};
use mafalda_media::sdp::{AnswerSection, LocalTransport, MediaSection, Offer, SdpError, Setup, write_answer};
use tokio::sync::watch;

use self::liveness::{Liveness, SessionState};
use crate::NodeError;
use crate::inner::Inner;

/// What a session does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionRole {
    /// WHIP: the client publishes.
    Publish,
    /// WHEP: the client plays.
    Play,
}

/// A WHIP or WHEP session: the transport and what was made on it.
pub struct SdpSession {
    id: String,
    stream: String,
    role: SessionRole,
    answer: String,
    transport: WebRtcTransport,
    producers: Vec<Producer>,
    _consumers: Vec<Consumer>,
    /// Pipes into a player's router: the home side's consumer and the producer it feeds.
    _pipes: Vec<(Consumer, Producer)>,
    _router: Option<Router>,
    state: watch::Receiver<SessionState>,
    _handlers: Vec<Box<dyn std::any::Any + Send + Sync>>,
    inner: Weak<Inner>,
}

impl std::fmt::Debug for SdpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdpSession")
            .field("id", &self.id)
            .field("stream", &self.stream)
            .field("role", &self.role)
            .finish()
    }
}

impl SdpSession {
    /// The session's id (its resource is `/v1/sessions/{id}` in the API).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The stream published or played.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Publish or play.
    pub fn role(&self) -> SessionRole {
        self.role
    }

    /// The SDP answer for the client.
    pub fn answer(&self) -> &str {
        &self.answer
    }

    /// The transport's id (what `/v1/status` and the metrics count).
    pub fn transport_id(&self) -> String {
        self.transport.id().to_string()
    }

    /// Resolves with the reason once the session is over on its own (see
    /// [`liveness`]); a session ended by its owner is simply dropped.
    pub fn ended(&self) -> impl std::future::Future<Output = &'static str> + Send + 'static {
        let mut state = self.state.clone();
        async move {
            let mut liveness = Liveness::new(Instant::now());
            loop {
                let now = Instant::now();
                if let Some(reason) = liveness.check(&state.borrow_and_update(), now) {
                    return reason;
                }
                let deadline = liveness.deadline();
                tokio::select! {
                    changed = state.changed() => if changed.is_err() {
                        return "its transport closed";
                    },
                    () = sleep_until(deadline) => {}
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

impl Drop for SdpSession {
    fn drop(&mut self) {
        // The node's stream holds the producers (so they outlive this handle):
        // ending their tracks ends the stream and lets the transport go.
        if let Some(inner) = self.inner.upgrade()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            for producer in &self.producers {
                crate::webrtc::end_track(&runtime, Arc::clone(&inner), self.stream.clone(), producer.id());
            }
        }
    }
}

/// Which sections may be accepted: with a BUNDLE group, its members; without
/// one, the first section only (one transport carries everything).
fn bundled(offer: &Offer, index: usize, section: &MediaSection) -> Result<(), String> {
    let in_group = section.mid.as_ref().is_some_and(|mid| offer.bundle.contains(mid));
    if in_group || (offer.bundle.is_empty() && index == 0) {
        return Ok(());
    }
    let what = section.mid.as_deref().unwrap_or("without a mid");
    Err(format!("section {what} is not in the offer's BUNDLE group (the node uses one transport)"))
}

/// The reasons of the rejected sections, for an offer nothing could be made of.
fn nothing_usable(sections: &[AnswerSection]) -> NodeError {
    let reasons = sections
        .iter()
        .filter_map(|s| match s {
            AnswerSection::Rejected { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    NodeError::Sdp(SdpError::NothingUsable(reasons))
}

/// Connects `transport` with the client's DTLS parameters from `offer`; the
/// node's role for the answer.
async fn connect(transport: &WebRtcTransport, offer: &Offer, section: &MediaSection) -> Result<Setup, NodeError> {
    let (dtls_parameters, setup) = mafalda_media::sdp::dtls_parameters(offer, section)?;
    transport
        .connect(WebRtcTransportRemoteParameters { dtls_parameters })
        .await
        .map_err(|e| NodeError::Sdp(SdpError::Unusable(format!("DTLS parameters refused: {e}"))))?;
    Ok(setup)
}

/// The node's transport as the answer describes it.
fn local_transport(transport: &WebRtcTransport, setup: Setup) -> Result<LocalTransport, NodeError> {
    let fingerprint = transport
        .dtls_parameters()
        .fingerprints
        .into_iter()
        .find(|f| matches!(f, DtlsFingerprint::Sha256 { .. }))
        .ok_or_else(|| NodeError::InvalidInput("mediasoup offered no sha-256 fingerprint".into()))?;
    Ok(LocalTransport {
        ice: transport.ice_parameters().clone(),
        candidates: transport.ice_candidates().clone(),
        fingerprint,
        setup,
    })
}

/// Watches the transport's ICE and DTLS states into a channel.
fn watch_transport(
    transport: &WebRtcTransport,
) -> (watch::Sender<SessionState>, watch::Receiver<SessionState>, Vec<Box<dyn std::any::Any + Send + Sync>>) {
    let (sender, receiver) = watch::channel(SessionState::default());
    let on_ice = {
        let sender = sender.clone();
        transport.on_ice_state_change(move |ice| {
            sender.send_modify(|state| state.ice = ice);
        })
    };
    let on_dtls = {
        let sender = sender.clone();
        transport.on_dtls_state_change(move |dtls| {
            if dtls == DtlsState::Failed {
                tracing::warn!("a WHIP/WHEP client's DTLS handshake failed");
            }
            sender.send_modify(|state| state.dtls = dtls);
        })
    };
    (sender, receiver, vec![Box::new(on_ice), Box::new(on_dtls)])
}

/// The answer text, or the error if no section was accepted.
fn answer(transport: &LocalTransport, sections: &[AnswerSection]) -> Result<String, NodeError> {
    if sections.iter().all(|s| matches!(s, AnswerSection::Rejected { .. })) {
        return Err(nothing_usable(sections));
    }
    Ok(write_answer(transport, sections))
}
