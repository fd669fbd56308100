//! Both halves of the pipe handshake between two nodes (`stream.pipe`), the
//! checks each side makes on what the other sends, and the pipes a provider
//! keeps for its downstream peers.
//!
//! Asker ([`pull`]): opens its end, asks, then — before mediasoup sees
//! anything from the offer — checks the provider's signed provenance (it must
//! lead from the origin to this node), that the tracks are the ones the origin
//! signed, and each track's RTP parameters; producers get ids of its own.
//!
//! Provider ([`Inner::offer_pipe`]): answers from a spare pipe transport when
//! it has one (`spare_pipes`), pipes only to the IP the asking peer's
//! connection comes from, keeps at most one pipe per peer and stream (a new
//! request replaces the old pipe) and `max_pipes_per_peer` in all, and
//! closes a peer's pipes when it says it is done (`stream.unpipe`) or
//! disconnects ([`Inner::release_peer`]).

use std::net::IpAddr;
use std::sync::Arc;

use mafalda_media::mediasoup::prelude::{PipeTransport, Producer, Router, Transport};
use mafalda_media::nat_pipe;
use mafalda_media::pipe::{self, PipeEndpoint, PipeLeg};
use mafalda_rope::{ErrorCode, Value};
use mafalda_swarm::{CallError, PeerId};
use tracing::{debug, info, warn};

use crate::NodeError;
use crate::admission::{Admission, Load, admit};
use crate::error::BEHIND_NAT;
use crate::inner::{Inner, lock};
use crate::pipe_pairs::Side;
use crate::record::{self, MAX_TRACKS};
use crate::remote::call;
use crate::rtp_checks::check_piped_parameters;
use crate::streams::{DownstreamPipe, LocalStream, PipeMode, PipeOffer, PipeRequest, Role, StreamParams};

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

/// This node's end of a pipe, opened before the provider is known (while the
/// find runs) and used by the first pull.
pub(crate) struct LocalEnd {
    router: Router,
    transport: PipeLeg,
    endpoint: PipeEndpoint,
    /// The far end it is connected to already: a kept pair's (`pipe_pairs`).
    connected_to: Option<PipeEndpoint>,
}

impl LocalEnd {
    /// The endpoint an origin may pipe to with its description, and the
    /// router it is on: that of a pipe transport (an end across NAT is asked
    /// for by `stream.pipe`).
    pub(crate) fn endpoint_for_origin(&self) -> Option<(Router, PipeEndpoint)> {
        matches!(self.transport, PipeLeg::Pipe(_)).then(|| (self.router.clone(), self.endpoint.clone()))
    }

    /// Lets go of this end, unused: a pipe transport not connected yet goes
    /// back to the spares, anything else closes.
    fn give_back(self, inner: &Inner) {
        if let (PipeLeg::Pipe(transport), None) = (self.transport, self.connected_to) {
            inner.put_back_spare(&self.router, (transport, self.endpoint));
        }
    }

    /// This node's ends of the pairs kept with `peer` on this end's router,
    /// in its family, for a request through this end to quote (none for an
    /// end across NAT: those are never kept).
    pub(crate) fn paired_ends(&self, inner: &Inner, peer: PeerId) -> Vec<PipeEndpoint> {
        match self.transport {
            PipeLeg::Pipe(_) => inner.paired_ends_with(peer, &self.router, self.endpoint.ip),
            PipeLeg::Plain(_) => Vec::new(),
        }
    }

    /// The end of the pair kept with `peer` whose far end is `offered` (the
    /// provider piped on the pair), this end given back; or this end.
    fn or_pair_offered(self, inner: &Inner, peer: PeerId, offered: &PipeEndpoint) -> LocalEnd {
        if !matches!(self.transport, PipeLeg::Pipe(_)) {
            return self;
        }
        let Some((transport, pair)) = inner.kept_pair(Side::Asking, peer, &self.router, offered) else {
            return self;
        };
        let router = self.router.clone();
        self.give_back(inner);
        LocalEnd { router, transport: PipeLeg::Pipe(transport), endpoint: pair.local, connected_to: Some(pair.remote) }
    }
}

/// Opens this node's end of a pipe for `stream` on its ingest router, for a
/// provider whose connection comes from `peer_ip` (unknown while the find
/// runs: the first media IP): a pipe transport (the router's spare if it
/// has one, `spare_pipes`), or, when this node is behind NAT, an end that
/// sends first (`nat_pipe`).
pub(crate) async fn open_local_end(
    inner: &Arc<Inner>,
    stream: &str,
    peer_ip: Option<IpAddr>,
) -> Result<LocalEnd, NodeError> {
    let router = inner.router_of(stream).ingest_router().await?;
    if inner.swarm.is_behind_nat() {
        let (media_ip, _) = inner.config.media_ip_for(peer_ip);
        let (transport, endpoint) = nat_pipe::open_sending_first_end(&router, media_ip).await?;
        return Ok(LocalEnd { router, transport: PipeLeg::Plain(transport), endpoint, connected_to: None });
    }
    // A spare opened ahead serves here too (the relay replaces it once its
    // first packet is in, `Inner::announce_relay`): opening one is a worker
    // call, and the describes that ask the origin to pipe wait for this end.
    let (transport, endpoint) = inner.pipe_end_on(&router, peer_ip).await?;
    Ok(LocalEnd { router, transport: PipeLeg::Pipe(transport), endpoint, connected_to: None })
}

/// A pipe transport on `router`, on this node's media IP for a peer whose
/// connection comes from `peer_ip` (announcing its public IP, if known).
pub(crate) async fn open_pipe_on(
    inner: &Inner,
    router: &Router,
    peer_ip: Option<IpAddr>,
) -> Result<(PipeTransport, PipeEndpoint), mafalda_media::MediaError> {
    let (media_ip, announced) = inner.pipe_ips(peer_ip);
    pipe::open_pipe(router, media_ip, announced).await
}

impl Inner {
    /// The media IP for a pipe with a peer whose connection comes from
    /// `peer_ip` ([`NodeConfig::media_ip_for`](crate::NodeConfig)), and the
    /// address its end announces: the configured one, else the one the swarm
    /// confirmed peers reach this node at in that family when it is not the
    /// media IP (a 1:1 NAT, a forwarded port), else none (the media IP itself).
    pub(crate) fn pipe_ips(&self, peer_ip: Option<IpAddr>) -> (IpAddr, Option<String>) {
        let (media_ip, configured) = self.config.media_ip_for(peer_ip);
        let learned = self.swarm.mapped_ip(media_ip).filter(|ip| *ip != media_ip);
        (media_ip, configured.or(learned).map(|ip| ip.to_string()))
    }

    /// The IP `peer`'s oldest direct connection comes from, if any.
    pub(crate) async fn peer_ip(&self, peer: PeerId) -> Option<IpAddr> {
        self.swarm.peer_ips(peer).await.ok().and_then(|ips| ips.first().copied())
    }
}

/// Pipes `stream` here from `peer`, as a relay to hold (the caller holds it).
/// With `origin`, only that origin's stream is accepted.
pub(crate) async fn pull(
    inner: &Arc<Inner>,
    stream: &str,
    peer: PeerId,
    origin: Option<PeerId>,
) -> Result<LocalStream, NodeError> {
    pull_with(inner, stream, peer, origin, None, None).await
}

/// [`pull`] through an end opened already.
pub(crate) async fn pull_into(
    inner: &Arc<Inner>,
    stream: &str,
    peer: PeerId,
    origin: Option<PeerId>,
    end: LocalEnd,
) -> Result<LocalStream, NodeError> {
    pull_with(inner, stream, peer, origin, Some(end), None).await
}

/// Pipes `stream` here through `relay`, a reachable node that pipes it from
/// `origin` first if it does not hold it: how a node behind NAT gets a
/// stream that only nodes behind NAT hold.
pub(crate) async fn pull_through(
    inner: &Arc<Inner>,
    stream: &str,
    relay: PeerId,
    origin: PeerId,
) -> Result<LocalStream, NodeError> {
    pull_with(inner, stream, relay, Some(origin), None, Some(origin)).await
}

/// `end`, or, when it is not in the family of the provider's connection
/// (`peer_ip`) and this node has a media IP in that family, a new end of the
/// same kind in it: an end opened while the find ran is in the first family.
async fn in_family_of(
    inner: &Arc<Inner>,
    stream: &str,
    end: LocalEnd,
    peer_ip: Option<IpAddr>,
) -> Result<LocalEnd, NodeError> {
    let (media_ip, _) = inner.config.media_ip_for(peer_ip);
    if end.endpoint.ip.is_ipv4() == media_ip.is_ipv4() {
        return Ok(end);
    }
    debug!(stream, %media_ip, "the provider's connection is in the other family: a pipe end there");
    drop(end);
    open_local_end(inner, stream, peer_ip).await
}

/// The mode a pipe request takes from this node's end.
fn mode_of(end: &PipeLeg) -> PipeMode {
    match end {
        PipeLeg::Pipe(_) => PipeMode::Pipe,
        PipeLeg::Plain(end) if end.sends_first() => PipeMode::AskerSendsFirst,
        PipeLeg::Plain(_) => PipeMode::AskerListens,
    }
}

/// Pipes `stream` here from `peer` through `end` (opened during the find)
/// or, without one, an end opened now in the family of `peer`'s connection.
async fn pull_with(
    inner: &Arc<Inner>,
    stream: &str,
    peer: PeerId,
    origin: Option<PeerId>,
    end: Option<LocalEnd>,
    fetch_from: Option<PeerId>,
) -> Result<LocalStream, NodeError> {
    // The peer's IP picks between two media families; with one it changes
    // nothing, and asking the swarm task for it delays the pipe request.
    let peer_ip = if inner.config.second_media_ip.is_some() { inner.peer_ip(peer).await } else { None };
    let end = match end {
        Some(end) => in_family_of(inner, stream, end, peer_ip).await?,
        None => open_local_end(inner, stream, peer_ip).await?,
    };
    let paired_ends = end.paired_ends(inner, peer);
    let LocalEnd { router, mut transport, mut endpoint, .. } = end;
    let offer: PipeOffer = loop {
        let mode = mode_of(&transport);
        let request = PipeRequest {
            stream: stream.to_owned(),
            endpoint: endpoint.clone(),
            mode,
            fetch_from: fetch_from.map(|p| p.to_string()),
            paired_ends: if matches!(transport, PipeLeg::Pipe(_)) { paired_ends.clone() } else { Vec::new() },
        };
        let params = Value::serialized(&request).map_err(|e| NodeError::InvalidInput(e.to_string()))?;
        match call::<PipeOffer>(inner, peer, "stream.pipe", params).await {
            Ok(offer) => break offer,
            Err(CallError::Remote(error)) if error.code == ErrorCode::Busy.code() => {
                let alternatives = match error.data {
                    Some(Value::Array(peers)) => {
                        peers.into_iter().filter_map(|p| p.into_text().ok()).take(16).collect()
                    }
                    _ => Vec::new(),
                };
                return Err(NodeError::Busy { alternatives });
            }
            Err(CallError::Remote(error)) if error.code == ErrorCode::Application(BEHIND_NAT).code() => {
                if mode != PipeMode::Pipe {
                    return Err(NodeError::BehindNat(stream.to_owned()));
                }
                // The provider is behind NAT: this end listens for its first packet.
                debug!(stream, provider = %peer, "provider behind NAT; listening for it to send first");
                let (media_ip, announced) = inner.pipe_ips(peer_ip);
                let (listening, listening_at) = nat_pipe::open_listening_end(&router, media_ip, announced).await?;
                (transport, endpoint) = (PipeLeg::Plain(listening), listening_at);
            }
            Err(source) => {
                return Err(NodeError::PipeRefused { stream: stream.to_owned(), peer, source: Box::new(source) });
            }
        }
    };
    pull_offered(inner, stream, peer, origin, LocalEnd { router, transport, endpoint, connected_to: None }, offer).await
}

/// The stream relayed here from `peer` that its `offer` to pipe to `end`
/// makes: the offer checked, the tracks produced on this node's end,
/// connected to the provider's. The offer answered `stream.pipe`, or a
/// `stream.describe` that asked the origin to pipe at once.
pub(crate) async fn pull_offered(
    inner: &Arc<Inner>,
    stream: &str,
    peer: PeerId,
    origin: Option<PeerId>,
    end: LocalEnd,
    offer: PipeOffer,
) -> Result<LocalStream, NodeError> {
    // An offer from the far end of a pair kept with `peer` rides that pair:
    // the end opened for it goes back to the spares.
    let end = end.or_pair_offered(inner, peer, &offer.endpoint);
    let LocalEnd { router, transport, endpoint, connected_to } = end;
    let spanning = inner.router_of(stream);
    let me = inner.swarm.peer_id();
    check_offer_shape(stream, &offer)?;
    let paired = connected_to.is_some();
    // The signatures are checked while the worker makes the producers (the
    // requests go out at the first poll): a refused offer's producers close
    // on return, before anything consumes them.
    let (produced, checked) = sent_then(produce_offered(&transport, &offer, paired), || {
        check_offer_provenance(stream, me, origin, &offer, Some(&inner.checked_signatures))
    })
    .await;
    let verified = checked?;
    let producers = produced?;
    for producer in &producers {
        spanning.register_producer(producer, &router);
    }
    if let PipeLeg::Pipe(pipe) = &transport
        && !paired
    {
        // Connected for this stream: the next ones from this provider ride it.
        inner.keep_pair(Side::Asking, peer, pipe, endpoint, offer.endpoint.clone());
    }
    info!(stream, upstream = %peer, origin = %verified.origin, hops = verified.hops(), mode = ?mode_of(&transport), "relaying stream");
    Ok(LocalStream {
        role: Role::Relay { upstream: peer },
        provenance: offer.provenance,
        verified,
        producers,
        pipes: std::collections::HashMap::new(),
        _source: Some(Box::new(transport)),
        received: crate::liveness::Counters::default(),
    })
}

/// Polls `requests` once (a mediasoup call sends its request at its first
/// poll), does `work` while the worker answers, then awaits the answers: the
/// CPU of `work` (a signature made or checked) is then off the path.
async fn sent_then<T, W>(requests: impl std::future::Future<Output = T>, work: impl FnOnce() -> W) -> (T, W) {
    let mut requests = std::pin::pin!(requests);
    let early = futures::poll!(requests.as_mut());
    let done = work();
    let answered = match early {
        std::task::Poll::Ready(answered) => answered,
        std::task::Poll::Pending => requests.await,
    };
    (answered, done)
}

/// The offered tracks made producers on this node's end of the pipe, which
/// is connected to the provider's end meanwhile.
async fn produce_offered(transport: &PipeLeg, offer: &PipeOffer, paired: bool) -> Result<Vec<Producer>, NodeError> {
    let producers = match transport {
        PipeLeg::Pipe(transport) if paired => {
            futures::future::try_join_all(offer.tracks.iter().map(|track| pipe::receive_track(transport, track)))
                .await?
        }
        PipeLeg::Pipe(transport) => {
            let receiving =
                futures::future::try_join_all(offer.tracks.iter().map(|track| pipe::receive_track(transport, track)));
            let (connected, received) = tokio::join!(pipe::connect_pipe(transport, &offer.endpoint), receiving);
            connected?;
            received?
        }
        PipeLeg::Plain(end) => {
            let receiving = futures::future::try_join_all(
                offer.tracks.iter().map(|track| nat_pipe::receive_track(&end.transport, track)),
            );
            let connecting = async {
                if end.sends_first() {
                    nat_pipe::connect_sending_first_end(&end.transport, &offer.endpoint).await
                } else {
                    let srtp = offer.endpoint.srtp.clone().ok_or_else(|| {
                        mafalda_media::MediaError::Request("the provider's end has no SRTP parameters".into())
                    })?;
                    nat_pipe::connect_listening_end(&end.transport, srtp).await
                }
            };
            let (connected, received) = tokio::join!(connecting, receiving);
            connected?;
            received?
        }
    };
    Ok(producers)
}

/// Everything the asker checks in an offer: its shape
/// ([`check_offer_shape`]), then its provenance ([`check_offer_provenance`]).
#[cfg(test)]
pub(crate) fn check_offer(
    stream: &str,
    me: PeerId,
    origin: Option<PeerId>,
    offer: &PipeOffer,
    checked: Option<&record::CheckedSignatures>,
) -> Result<record::Verified, NodeError> {
    check_offer_shape(stream, offer)?;
    check_offer_provenance(stream, me, origin, offer, checked)
}

/// What the asker checks in an offer before any of it reaches mediasoup:
/// how many tracks, and that each one's parameters are fit to pipe.
pub(crate) fn check_offer_shape(stream: &str, offer: &PipeOffer) -> Result<(), NodeError> {
    let refused = |source| NodeError::Provenance { stream: stream.to_owned(), source };
    if offer.tracks.is_empty() || offer.tracks.len() > MAX_TRACKS {
        let reason = format!("{} tracks offered (1 to {MAX_TRACKS})", offer.tracks.len());
        return Err(refused(record::RecordError::TracksDiffer(reason)));
    }
    for (index, track) in offer.tracks.iter().enumerate() {
        check_piped_parameters(track.kind, &track.rtp_parameters)
            .map_err(|reason| refused(record::RecordError::TracksDiffer(format!("track {index}: {reason}"))))?;
    }
    Ok(())
}

/// Whether the offer is of the stream it says (its signed provenance, handed
/// to this node, of the pinned `origin` if any) and its tracks are the ones
/// the origin signed.
pub(crate) fn check_offer_provenance(
    stream: &str,
    me: PeerId,
    origin: Option<PeerId>,
    offer: &PipeOffer,
    checked: Option<&record::CheckedSignatures>,
) -> Result<record::Verified, NodeError> {
    let refused = |source| NodeError::Provenance { stream: stream.to_owned(), source };
    let verified = offer.provenance.verify_with(stream, me, checked).map_err(refused)?;
    if let Some(origin) = origin
        && verified.origin != origin
    {
        let reason = format!("the provider offers the stream of {}, not of {origin}", verified.origin);
        return Err(refused(record::RecordError::BrokenChain(reason)));
    }
    record::check_tracks(&verified.record, offer.tracks.iter().map(|t| (t.kind, &t.rtp_parameters)))
        .map_err(refused)?;
    Ok(verified)
}

/// Tells `upstream` this node no longer needs its pipe of `stream`.
pub(crate) async fn tell_unpipe(inner: &Arc<Inner>, stream: &str, upstream: PeerId) {
    let Ok(params) = Value::serialized(&StreamParams { stream: stream.to_owned() }) else { return };
    if let Err(error) = call::<bool>(inner, upstream, "stream.unpipe", params).await {
        debug!(stream, %upstream, %error, "could not tell the upstream peer its pipe is no longer needed");
    }
}
