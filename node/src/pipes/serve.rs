//! The provider's half of a pipe ([`Inner::offer_pipe`]): answers on a pair
//! kept with the asker when it quotes one (`pipe_pairs`), else from a spare
//! pipe transport when it has one (`spare_pipes`); pipes only to the IP the
//! asking peer's connection comes from, keeps at most one pipe per peer and
//! stream (a new request replaces the old pipe) and `max_pipes_per_peer` in
//! all, and closes a peer's pipes when it says it is done (`stream.unpipe`)
//! or disconnects ([`Inner::release_peer`]).

use std::net::IpAddr;
use std::sync::Arc;

use mafalda_media::mediasoup::prelude::{PipeTransport, Router, Transport};
use mafalda_media::nat_pipe;
use mafalda_media::pipe::{self, PipeEndpoint, PipeLeg};
use mafalda_swarm::PeerId;
use tracing::{debug, info, warn};

use super::sent_then;
use crate::NodeError;
use crate::admission::{Admission, Load, admit};
use crate::inner::{Inner, lock};
use crate::pipe_pairs::Side;
use crate::streams::{DownstreamPipe, LocalStream, PipeMode, PipeOffer, PipeRequest};

/// Most pipes one peer may hold from this node, over all streams, unless
/// configured otherwise ([`NodeConfig::max_pipes_per_peer`]): one per stream
/// the peer pulls from here, so a node whose rooms have more publishers here
/// than this needs it raised.
///
/// [`NodeConfig::max_pipes_per_peer`]: crate::NodeConfig::max_pipes_per_peer
pub const DEFAULT_MAX_PIPES_PER_PEER: usize = 128;

/// How long a pipe to a node behind NAT waits for that node's first packet.
const FIRST_PACKET_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

impl Inner {
    /// Serves `stream.pipe` from `peer`, whose connection comes from `remote_ip`.
    #[tracing::instrument(name = "stream", skip_all, fields(id = %request.stream, %peer))]
    pub(crate) async fn offer_pipe(
        self: &Arc<Self>,
        peer: PeerId,
        remote_ip: Option<IpAddr>,
        request: PipeRequest,
    ) -> Result<PipeOffer, NodeError> {
        let behind_nat = self.swarm.is_behind_nat();
        if behind_nat && (request.mode != PipeMode::AskerListens || request.fetch_from.is_some()) {
            return Err(NodeError::BehindNat(request.stream.clone()));
        }
        let asked = request.endpoint.ip.to_canonical();
        if request.mode != PipeMode::AskerSendsFirst && remote_ip.map(|ip| ip.to_canonical()) != Some(asked) {
            let from = remote_ip.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
            warn!(%peer, endpoint = %asked, %from, "refused a pipe to an address that is not the asker's");
            return Err(NodeError::Forbidden(format!(
                "a pipe goes only to the asking node: endpoint {asked} is not the address its connection comes from ({from})"
            )));
        }
        if request.endpoint.srtp.is_none() || request.endpoint.port == 0 {
            return Err(NodeError::InvalidInput("a pipe endpoint needs a port and SRTP parameters".into()));
        }
        if request.paired_ends.len() > crate::streams::MAX_PAIRED_ENDS {
            let (quoted, most) = (request.paired_ends.len(), crate::streams::MAX_PAIRED_ENDS);
            return Err(NodeError::InvalidInput(format!("{quoted} paired ends quoted (at most {most})")));
        }
        // The asker's end is in the family of its connection (or, behind
        // NAT, of the address it comes from): this end must be too.
        let family_of = remote_ip.unwrap_or(request.endpoint.ip);
        let (media_ip, _) = self.config.media_ip_for(Some(family_of));
        if media_ip.is_ipv4() != family_of.is_ipv4() {
            let family = crate::config::family_name(&family_of);
            return Err(NodeError::InvalidInput(format!(
                "this node has no {family} media address: it pipes over {media_ip}'s family only"
            )));
        }
        if let Some(origin) = &request.fetch_from {
            // Only a node behind NAT needs another to fetch for it; anyone
            // else asks the origin itself.
            if request.mode != PipeMode::AskerSendsFirst {
                return Err(NodeError::InvalidInput(
                    "fetchFrom is for an asker behind NAT (mode askerSendsFirst)".into(),
                ));
            }
            self.fetch_for(peer, &request.stream, origin).await?;
        }
        let (producer_ids, provenance) = {
            let streams = lock(&self.streams);
            let local = streams.get(&request.stream).ok_or_else(|| NodeError::NotFound(request.stream.clone()))?;
            // Over the watermark the peers this node pipes to right now
            // take the asker, if there are any (`admission`).
            let load =
                Load { saturated: self.media.is_saturated(), full: self.media.is_full(), draining: self.is_draining() };
            let relays = local.pipes.keys().filter(|d| **d != peer).map(ToString::to_string).collect();
            if let Admission::Busy(alternatives) = admit(load, relays) {
                return Err(NodeError::Busy { alternatives });
            }
            if !local.pipes.contains_key(&peer) {
                self.check_pipe_room(&streams, peer)?;
            }
            let provenance = local.provenance.hand_off_to(self.swarm.peer_id(), &local.verified, peer);
            (local.producers.iter().map(|p| p.id()).collect::<Vec<_>>(), provenance)
        };
        let first = producer_ids.first().ok_or_else(|| NodeError::NotFound(request.stream.clone()))?;
        let router = self
            .router_of(&request.stream)
            .home_router(first)
            .ok_or_else(|| NodeError::NotFound(request.stream.clone()))?;
        match request.mode {
            PipeMode::Pipe => {}
            PipeMode::AskerSendsFirst => {
                let Some(remote_ip) = remote_ip else {
                    return Err(NodeError::Forbidden(
                        "a pipe goes only to the asking node, whose address is unknown".into(),
                    ));
                };
                let provenance = provenance.sign(&self.config.swarm.keypair);
                return self.pipe_tracks_to_natted(peer, remote_ip, request, producer_ids, provenance, &router).await;
            }
            PipeMode::AskerListens => {
                let provenance = provenance.sign(&self.config.swarm.keypair);
                return self.pipe_tracks_from_behind_nat(peer, request, producer_ids, provenance, &router).await;
            }
        }
        let offered = self.pipe_tracks(peer, request, producer_ids, provenance, &router).await;
        // The next pipe from this router takes a spare made now, after this
        // one is answered: the worker serves calls in order.
        self.replenish_spare(&router);
        offered
    }

    /// Pipes `producer_ids` (the tracks of `request.stream`) to `peer` from
    /// `router`, under the checks made again once the pipe exists.
    ///
    /// The answer waits only for the tracks to be consumed into the pipe (all
    /// at once): it needs their parameters, not the connection. The pipe is
    /// connected to the asker's endpoint behind them, while the answer
    /// travels; the worker answers in order, so media leaves as soon as it
    /// would have. Should that connect fail, the pipe is closed and the
    /// asker's liveness check pipes the stream from elsewhere.
    async fn pipe_tracks(
        self: &Arc<Self>,
        peer: PeerId,
        request: PipeRequest,
        producer_ids: Vec<mafalda_media::mediasoup::prelude::ProducerId>,
        provenance: crate::record::UnsignedHandOff,
        router: &Router,
    ) -> Result<PipeOffer, NodeError> {
        // A pair kept with this asker, connected to an end it quotes,
        // carries this stream too: nothing to open, nothing to connect.
        let kept = self.pair_to_serve_on(peer, &request.stream, router, &request.paired_ends);
        let reused = kept.is_some();
        let (transport, endpoint) = match kept {
            Some((transport, pair)) => (transport, pair.local),
            None => self.pipe_end_on(router, Some(request.endpoint.ip)).await?,
        };
        // The hand-off is signed while the worker makes the consumers (the
        // requests go out at the first poll): a signature is a tenth of a
        // millisecond of CPU the asker would otherwise wait for too.
        let sending =
            futures::future::try_join_all(producer_ids.into_iter().map(|id| pipe::send_track(&transport, id)));
        let (sent, provenance) = sent_then(sending, || provenance.sign(&self.config.swarm.keypair)).await;
        let sent = sent?;
        let (consumers, tracks): (Vec<_>, Vec<_>) = sent.into_iter().unzip();
        let connecting = transport.clone();
        let pipe =
            DownstreamPipe { _transport: PipeLeg::Pipe(transport), _consumers: consumers, sent: Default::default() };
        let replaced = self.hold_pipe(peer, &request.stream, pipe)?;
        if !reused {
            // Held first, then kept and connected: a failed connect finds
            // the pipes to close, and the pair to forget.
            self.keep_pair(Side::Serving, peer, &connecting, endpoint.clone(), request.endpoint.clone());
            self.connect_behind(&request.stream, peer, &connecting, &endpoint, &request.endpoint);
        }
        debug!(stream = %request.stream, %peer, replaced, "piping to a downstream peer");
        Ok(PipeOffer { endpoint, tracks, provenance })
    }

    /// Pipes `stream`, whose origin this node is, to `endpoint` for a
    /// `stream.describe` from `peer` that asked so ([`DescribeParams`]), as
    /// `stream.pipe` would, with the same checks and caps; `None` when that
    /// would refuse (the asker then asks with `stream.pipe` and hears why).
    ///
    /// [`DescribeParams`]: crate::streams::DescribeParams
    pub(crate) async fn pipe_as_origin(
        self: &Arc<Self>,
        peer: PeerId,
        remote_ip: Option<IpAddr>,
        stream: &str,
        endpoint: mafalda_media::pipe::PipeEndpoint,
        paired_ends: Vec<PipeEndpoint>,
    ) -> Option<PipeOffer> {
        let request =
            PipeRequest { stream: stream.to_owned(), endpoint, mode: PipeMode::Pipe, fetch_from: None, paired_ends };
        match self.offer_pipe(peer, remote_ip, request).await {
            Ok(offer) => Some(offer),
            Err(error) => {
                debug!(stream, %peer, %error, "described without piping at once");
                None
            }
        }
    }

    /// Pipes `producer_ids` to `peer`, behind NAT, whose connection comes from
    /// `remote_ip`: this node's end listens (`nat_pipe`), its consumers start
    /// paused, and they resume once the first packet to the end came from
    /// `remote_ip`. A pipe whose first packet came from elsewhere, or that got
    /// none within [`FIRST_PACKET_WITHIN`], is closed: nothing is ever sent to
    /// an address that is not the asker's.
    async fn pipe_tracks_to_natted(
        self: &Arc<Self>,
        peer: PeerId,
        remote_ip: IpAddr,
        request: PipeRequest,
        producer_ids: Vec<mafalda_media::mediasoup::prelude::ProducerId>,
        provenance: crate::record::Provenance,
        router: &Router,
    ) -> Result<PipeOffer, NodeError> {
        let Some(asker_srtp) = request.endpoint.srtp.clone() else {
            return Err(NodeError::InvalidInput("a pipe endpoint needs SRTP parameters".into()));
        };
        let (media_ip, announced) = self.pipe_ips(Some(remote_ip));
        let (end, endpoint) = nat_pipe::open_listening_end(router, media_ip, announced).await?;
        let transport = end.transport.clone();
        let sent = futures::future::try_join_all(
            producer_ids.into_iter().map(|id| nat_pipe::send_track(&transport, router, id, true)),
        )
        .await?;
        nat_pipe::connect_listening_end(&transport, asker_srtp).await?;
        let (consumers, tracks): (Vec<_>, Vec<_>) = sent.into_iter().unzip();
        let resuming = consumers.clone();
        let pipe = DownstreamPipe { _transport: PipeLeg::Plain(end), _consumers: consumers, sent: Default::default() };
        self.hold_pipe(peer, &request.stream, pipe)?;
        let (inner, stream) = (Arc::clone(self), request.stream.clone());
        self.spawn("check a NAT pipe's first packet", async move {
            let source = nat_pipe::learned_source(&transport, FIRST_PACKET_WITHIN).await;
            if source.map(|ip| ip.to_canonical()) == Some(remote_ip.to_canonical()) {
                for consumer in &resuming {
                    if let Err(error) = consumer.resume().await {
                        debug!(%stream, %peer, %error, "could not resume a pipe consumer");
                    }
                }
                debug!(%stream, %peer, %remote_ip, "piping across NAT");
                return;
            }
            warn!(%stream, %peer, expected = %remote_ip, came_from = ?source, "NAT pipe: first packet not from the asker; closing");
            inner.close_pipes_on(peer, transport.id());
        });
        Ok(PipeOffer { endpoint, tracks, provenance })
    }

    /// Pipes `producer_ids` to `peer`, whose end listens, from this node
    /// behind NAT: this end sends first, to the asker's endpoint (checked to
    /// be the address the asker's connection comes from, as for any pipe).
    async fn pipe_tracks_from_behind_nat(
        self: &Arc<Self>,
        peer: PeerId,
        request: PipeRequest,
        producer_ids: Vec<mafalda_media::mediasoup::prelude::ProducerId>,
        provenance: crate::record::Provenance,
        router: &Router,
    ) -> Result<PipeOffer, NodeError> {
        let (media_ip, _) = self.config.media_ip_for(Some(request.endpoint.ip));
        let (end, endpoint) = nat_pipe::open_sending_first_end(router, media_ip).await?;
        let sent = futures::future::try_join_all(
            producer_ids.into_iter().map(|id| nat_pipe::send_track(&end.transport, router, id, false)),
        )
        .await?;
        nat_pipe::connect_sending_first_end(&end.transport, &request.endpoint).await?;
        let (consumers, tracks): (Vec<_>, Vec<_>) = sent.into_iter().unzip();
        let pipe = DownstreamPipe { _transport: PipeLeg::Plain(end), _consumers: consumers, sent: Default::default() };
        self.hold_pipe(peer, &request.stream, pipe)?;
        debug!(stream = %request.stream, %peer, "piping from behind NAT");
        Ok(PipeOffer { endpoint, tracks, provenance })
    }

    /// Makes this node hold `stream` of `origin` so that `peer` (behind NAT)
    /// can pipe it from here: a stream only nodes behind NAT hold reaches
    /// another one through a reachable node. Within `peer`'s pipe cap.
    async fn fetch_for(self: &Arc<Self>, peer: PeerId, stream: &str, origin: &str) -> Result<(), NodeError> {
        let origin: PeerId = origin.parse().map_err(|_| NodeError::InvalidInput(format!("bad origin {origin}")))?;
        if origin == peer {
            return Err(NodeError::InvalidInput("fetchFrom names the asker itself".into()));
        }
        let wanted = crate::streams::StreamRef { id: stream.to_owned(), origin: Some(origin) };
        if self.holds(&wanted)? {
            return Ok(());
        }
        self.check_pipe_room(&lock(&self.streams), peer)?;
        info!(stream, %peer, %origin, "fetching a stream for a node behind NAT");
        // Dropping the announcement provides the stream in the background.
        drop(self.ensure_local_or_from(&wanted, origin).await?);
        Ok(())
    }

    /// Holds `pipe` as `peer`'s pipe of `stream`, under the per-peer cap;
    /// returns whether it replaced one.
    fn hold_pipe(&self, peer: PeerId, stream: &str, pipe: DownstreamPipe) -> Result<bool, NodeError> {
        // Checked again now: concurrent requests from one peer all passed the
        // first check while their pipes were being made.
        let (replaced, refused) = {
            let mut streams = lock(&self.streams);
            let room = self.check_pipe_room(&streams, peer);
            match streams.get_mut(stream) {
                Some(local) => match room {
                    Err(refused) if !local.pipes.contains_key(&peer) => (None, Some((pipe, refused))),
                    _ => (local.pipes.insert(peer, pipe), None),
                },
                // The stream ended meanwhile: the pipe closes, the asker hears of it.
                None => (None, Some((pipe, NodeError::NotFound(stream.to_owned())))),
            }
        };
        // Closing mediasoup objects outside the lock.
        if let Some((pipe, error)) = refused {
            drop(pipe);
            return Err(error);
        }
        Ok(replaced.is_some())
    }

    /// Connects the pipe of `stream` to `peer` (this node's end `local`) to
    /// the asker's `endpoint` in the background; if that fails, closes every
    /// pipe to `peer` on that transport (the streams that rode the new pair
    /// meanwhile too) and forgets the pair.
    fn connect_behind(
        self: &Arc<Self>,
        stream: &str,
        peer: PeerId,
        transport: &PipeTransport,
        local: &PipeEndpoint,
        endpoint: &PipeEndpoint,
    ) {
        let (inner, stream, transport, local, endpoint) =
            (Arc::clone(self), stream.to_owned(), transport.clone(), local.clone(), endpoint.clone());
        self.spawn("connect a pipe", async move {
            let Err(error) = pipe::connect_pipe(&transport, &endpoint).await else { return };
            warn!(stream, %peer, %error, "could not connect a pipe already offered; closing it");
            inner.forget_pair(Side::Serving, peer, transport.router().id(), &local);
            inner.close_pipes_on(peer, transport.id());
        });
    }

    /// Closes `peer`'s pipes that still are on `transport` (a newer request
    /// may have replaced one meanwhile); a pair's transport carries several.
    fn close_pipes_on(&self, peer: PeerId, transport: mafalda_media::mediasoup::prelude::TransportId) {
        let closed: Vec<DownstreamPipe> = {
            let mut streams = lock(&self.streams);
            streams
                .values_mut()
                .filter(|local| local.pipes.get(&peer).is_some_and(|p| p._transport.id() == transport))
                .filter_map(|local| local.pipes.remove(&peer))
                .collect()
        };
        // Closing mediasoup objects outside the lock.
        drop(closed);
    }

    /// `peer` is done with `stream` (`stream.unpipe`): closes its pipe.
    pub(crate) fn release_pipe(&self, stream: &str, peer: PeerId) -> bool {
        let released = lock(&self.streams).get_mut(stream).and_then(|local| local.pipes.remove(&peer));
        released.is_some()
    }

    /// `peer` left: closes every pipe to it. Returns how many.
    pub(crate) fn release_peer(&self, peer: PeerId) -> usize {
        // Drop the pipes after the lock: closing them calls into mediasoup.
        let released: Vec<DownstreamPipe> =
            lock(&self.streams).values_mut().filter_map(|local| local.pipes.remove(&peer)).collect();
        lock(&self.serving_pairs).forget_peer(peer);
        lock(&self.asking_pairs).forget_peer(peer);
        if !released.is_empty() {
            info!(%peer, pipes = released.len(), "closed the pipes to a peer that left");
        }
        released.len()
    }

    /// Refused (`forbidden`, naming the setting) when `peer` holds
    /// `max_pipes_per_peer` pipes from this node already, over all `streams`.
    fn check_pipe_room(
        &self,
        streams: &std::collections::HashMap<String, LocalStream>,
        peer: PeerId,
    ) -> Result<(), NodeError> {
        let held = streams.values().filter(|s| s.pipes.contains_key(&peer)).count();
        if held < self.config.max_pipes_per_peer {
            return Ok(());
        }
        let cap = self.config.max_pipes_per_peer;
        Err(NodeError::Forbidden(format!("at most {cap} pipes per peer (max_pipes_per_peer)")))
    }
}
