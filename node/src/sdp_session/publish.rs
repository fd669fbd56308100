//! WHIP: a client's offer becomes a WebRTC transport and one producer per
//! sending section, published as a stream like any other (announced, found,
//! piped and relayed from every node).

use std::sync::Arc;

use mafalda_media::mediasoup::prelude::Transport;
use mafalda_media::sdp::{AnswerSection, Offer, receive};
use mafalda_media::transports::webrtc_transport;
use tracing::info;

use super::{SdpSession, SessionRole, answer, bundled, connect, local_transport, nothing_usable, watch_transport};
use crate::streams::validate_stream_id;
use crate::{Node, NodeError};

/// Most tracks one WHIP session publishes (the rest of its sections are rejected).
const MAX_TRACKS: usize = 8;

impl Node {
    /// WHIP: publishes the tracks `offer` sends as `stream`, and answers it.
    /// A malformed offer, or one with nothing the node takes, is an
    /// [`NodeError::Sdp`] and makes nothing; a stream already published here
    /// is [`NodeError::AlreadyPublished`]. Dropping the session ends the stream.
    pub async fn publish_sdp(self: &Arc<Self>, stream: &str, offer: &str) -> Result<SdpSession, NodeError> {
        validate_stream_id(stream)?;
        let offer = Offer::parse(offer)?;
        if !self.media().serves_webrtc() {
            return Err(NodeError::WebRtcOff);
        }
        if self.streams().iter().any(|s| s.stream == stream) {
            return Err(NodeError::AlreadyPublished(stream.to_owned()));
        }
        let router = self.inner.router.ingest_router().await?;
        let capabilities = router.rtp_capabilities().clone();
        let mut sections = Vec::new();
        let mut publications = Vec::new();
        for (index, section) in offer.sections.iter().enumerate() {
            let chosen = bundled(&offer, index, section).and_then(|()| receive(section, &capabilities)).and_then(|p| {
                if publications.len() < MAX_TRACKS { Ok(p) } else { Err(format!("more than {MAX_TRACKS} tracks")) }
            });
            match chosen {
                Ok(publication) => {
                    sections.push(AnswerSection::Receive {
                        kind: publication.kind,
                        mid: publication.rtp_parameters.mid.clone().unwrap_or_default(),
                        rtp_parameters: publication.rtp_parameters.clone(),
                        rids: publication.rids.clone(),
                        rtcp_rsize: section.rtcp_rsize,
                    });
                    publications.push((index, publication));
                }
                Err(reason) => sections.push(AnswerSection::Rejected { offered: Box::new(section.clone()), reason }),
            }
        }
        let Some((first, _)) = publications.first() else {
            return Err(nothing_usable(&sections));
        };
        let transport = webrtc_transport(self.media(), &router).await?;
        let setup = connect(&transport, &offer, &offer.sections[*first]).await?;
        let (state, receiver, handlers) = watch_transport(&transport);
        // Made before the producers: if one fails, dropping the session ends
        // the stream the others began.
        let mut session = SdpSession {
            id: uuid::Uuid::new_v4().simple().to_string(),
            stream: stream.to_owned(),
            role: SessionRole::Publish,
            answer: String::new(),
            transport: transport.clone(),
            producers: Vec::new(),
            _consumers: Vec::new(),
            _pipes: Vec::new(),
            _router: None,
            state: receiver,
            _handlers: handlers,
            inner: Arc::downgrade(&self.inner),
        };
        for (_, publication) in publications {
            let producer =
                self.produce_webrtc(&transport, stream, publication.kind, publication.rtp_parameters).await?;
            let state = state.clone();
            session._handlers.push(Box::new(producer.on_close(move || state.send_modify(|s| s.track_ended = true))));
            session.producers.push(producer);
        }
        session.answer = answer(&local_transport(&transport, setup)?, &sections)?;
        info!(stream, tracks = session.producers.len(), transport = %transport.id(), "published with WHIP");
        Ok(session)
    }
}
