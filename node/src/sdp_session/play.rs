//! WHEP: a player's offer gets the stream's tracks, wherever the stream is
//! published (it is piped here as for every consume).
//!
//! mediasoup sends with the payload types of the consumer's router, and the
//! answer must keep the player's: each player gets a router of its own whose
//! codecs carry the player's payload types, and the stream's producers are
//! piped into it (inside the worker). The router closes with the session.

use std::sync::Arc;

use mafalda_media::mediasoup::prelude::{ConsumerOptions, MediaKind, Producer, RouterOptions, Transport};
use mafalda_media::mediasoup::router::PipeToRouterOptions;
use mafalda_media::mediasoup::types::rtp_parameters::{RtpCodecCapabilityFinalized, RtpCodecParametersParametersValue};
use mafalda_media::sdp::answer::Sender;
use mafalda_media::sdp::{AnswerSection, Offer, Playback, play};
use mafalda_media::transports::webrtc_transport;
use tracing::info;

use super::{SdpSession, SessionRole, answer, bundled, connect, local_transport, nothing_usable, watch_transport};
use crate::inner::lock;
use crate::streams::StreamRef;
use crate::webrtc::count_while_open;
use crate::{Node, NodeError};

impl Node {
    /// WHEP: plays `stream` (an id, or `ID@PEERID`) to the player whose offer
    /// this is, piping it here first if another node has it. Each offered
    /// section takes the next track of its kind; sections with no track or no
    /// common codec are rejected, and an offer with none left is
    /// [`NodeError::Sdp`]. Dropping the session closes everything it made.
    pub async fn play_sdp(self: &Arc<Self>, stream: &str, offer: &str) -> Result<SdpSession, NodeError> {
        let wanted = StreamRef::parse(stream)?;
        let offer = Offer::parse(offer)?;
        if !self.media().serves_webrtc() {
            return Err(NodeError::WebRtcOff);
        }
        self.inner.ensure_local(&wanted).await?.done().await;
        let tracks: Vec<Producer> = {
            let streams = lock(&self.inner.streams);
            let local = streams.get(&wanted.id).ok_or_else(|| NodeError::NotFound(stream.to_owned()))?;
            local.producers.clone()
        };
        let mut taken = vec![false; tracks.len()];
        let mut sections = Vec::new();
        let mut plays: Vec<(usize, Producer, Playback)> = Vec::new();
        for (index, section) in offer.sections.iter().enumerate() {
            let chosen = bundled(&offer, index, section).and_then(|()| {
                let slot = tracks
                    .iter()
                    .enumerate()
                    .position(|(i, t)| !taken[i] && kind_name(t.kind()) == section.kind)
                    .ok_or_else(|| format!("stream {} has no (further) {} track", wanted.id, section.kind))?;
                let producer = &tracks[slot];
                let parameters = producer.consumable_rtp_parameters();
                let codec = parameters.codecs.iter().find(|c| !c.is_rtx()).ok_or("a track without a codec")?;
                let playback = play(section, codec)?;
                // Sections share the router: one payload type means one codec.
                let clash = plays.iter().any(|(_, _, p)| {
                    p.router_codec.preferred_payload_type() == playback.router_codec.preferred_payload_type()
                        && p.router_codec != playback.router_codec
                });
                if clash {
                    return Err("its payload type names another codec in an earlier section".to_owned());
                }
                taken[slot] = true;
                Ok((producer.clone(), playback))
            });
            match chosen {
                Ok((producer, playback)) => {
                    sections
                        .push(AnswerSection::Rejected { offered: Box::new(section.clone()), reason: String::new() });
                    plays.push((index, producer, playback));
                }
                Err(reason) => sections.push(AnswerSection::Rejected { offered: Box::new(section.clone()), reason }),
            }
        }
        let Some((first, _, _)) = plays.first() else {
            return Err(nothing_usable(&sections));
        };
        let first = *first;
        let mut codecs = Vec::new();
        for (_, _, playback) in &plays {
            if !codecs.contains(&playback.router_codec) {
                codecs.push(playback.router_codec.clone());
            }
        }
        let worker = self.media().place().await?;
        let router = self.media().create_router_on(&worker, RouterOptions::new(codecs)).await?;
        let transport = webrtc_transport(self.media(), &router).await?;
        let setup = connect(&transport, &offer, &offer.sections[first]).await?;
        let (state, receiver, handlers) = watch_transport(&transport);
        let mut session = SdpSession {
            id: uuid::Uuid::new_v4().simple().to_string(),
            stream: wanted.id.clone(),
            role: SessionRole::Play,
            answer: String::new(),
            transport: transport.clone(),
            producers: Vec::new(),
            _consumers: Vec::new(),
            _pipes: Vec::new(),
            _router: Some(router.clone()),
            state: receiver,
            _handlers: handlers,
            inner: Arc::downgrade(&self.inner),
        };
        let spanning = self.inner.router_of(&wanted.id);
        for (index, producer, playback) in plays {
            let home = spanning.home_router(&producer.id()).ok_or_else(|| NodeError::NotFound(stream.to_owned()))?;
            let mut options = PipeToRouterOptions::new(router.clone());
            // The player's router may share the home router's worker.
            options.keep_id = false;
            let pair = home
                .pipe_producer_to_router(producer.id(), options)
                .await
                .map_err(|e| NodeError::Media(mafalda_media::MediaError::Request(e.to_string())))?;
            let pipe = (pair.pipe_consumer, pair.pipe_producer.into_inner());
            let section = &offer.sections[index];
            let mid = section.mid.clone().unwrap_or_default();
            // RTX only if the router's RTX payload type is the one the player
            // gave (mediasoup picks it; without it, no NACK either).
            let media_pt = playback.router_codec.preferred_payload_type();
            let router_rtx = router
                .rtp_capabilities()
                .codecs
                .iter()
                .find(|c| c.is_rtx() && media_pt.is_some_and(|pt| apt_is(c.parameters().get("apt"), pt)))
                .map(RtpCodecCapabilityFinalized::preferred_payload_type);
            let rtx_agrees = router_rtx.is_some() && router_rtx == playback.rtx_payload_type;
            let mut options = ConsumerOptions::new(pipe.1.id(), playback.capabilities.clone());
            options.mid = Some(mid.clone());
            options.enable_rtx = Some(rtx_agrees);
            let consumer = transport
                .consume(options)
                .await
                .map_err(|e| NodeError::Sdp(mafalda_media::sdp::SdpError::Unusable(format!("section {mid}: {e}"))))?;
            count_while_open(&self.inner, &consumer, &wanted.id);
            let state = state.clone();
            session
                ._handlers
                .push(Box::new(consumer.on_producer_close(move || state.send_modify(|s| s.track_ended = true))));
            sections[index] = AnswerSection::Send {
                kind: playback.kind,
                mid,
                rtp_parameters: consumer.rtp_parameters().clone(),
                sender: Sender { msid: (wanted.id.clone(), consumer.id().to_string()) },
                rtcp_rsize: section.rtcp_rsize,
            };
            session._consumers.push(consumer);
            session._pipes.push(pipe);
        }
        session.answer = answer(&local_transport(&transport, setup)?, &sections)?;
        info!(stream = %wanted.id, transport = %transport.id(), "playing with WHEP");
        Ok(session)
    }
}

fn kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}

fn apt_is(apt: Option<&RtpCodecParametersParametersValue>, payload_type: u8) -> bool {
    matches!(apt, Some(RtpCodecParametersParametersValue::Number(n)) if *n == u32::from(payload_type))
}
