//! The asker's half of a pipe ([`pull`]): opens its end (or rides a kept
//! pair, `pipe_pairs`), asks, then — before mediasoup sees anything from the
//! offer — checks the provider's signed provenance (it must lead from the
//! origin to this node), that the tracks are the ones the origin signed, and
//! each track's RTP parameters; producers get ids of its own.

use std::net::IpAddr;
use std::sync::Arc;

use mafalda_media::mediasoup::prelude::{Producer, Router};
use mafalda_media::nat_pipe;
use mafalda_media::pipe::{self, PipeEndpoint, PipeLeg};
use mafalda_rope::{ErrorCode, Value};
use mafalda_swarm::{CallError, PeerId};
use tracing::{debug, info};

use super::sent_then;
use crate::NodeError;
use crate::error::BEHIND_NAT;
use crate::inner::Inner;
use crate::pipe_pairs::Side;
use crate::record::{self, MAX_TRACKS};
use crate::remote::call;
use crate::rtp_checks::check_piped_parameters;
use crate::streams::{LocalStream, PipeMode, PipeOffer, PipeRequest, Role, StreamParams};

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
        match call(inner, peer, "stream.pipe", params).await {
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

/// The offered tracks made producers on this node's end of the pipe, which
/// is connected to the provider's end meanwhile (unless `paired`: a kept
/// pair's end is connected already).
async fn produce_offered(transport: &PipeLeg, offer: &PipeOffer, paired: bool) -> Result<Vec<Producer>, NodeError> {
    let producers = match transport {
        PipeLeg::Pipe(transport) => {
            let receiving =
                futures::future::try_join_all(offer.tracks.iter().map(|track| pipe::receive_track(transport, track)));
            let connecting =
                async { if paired { Ok(()) } else { pipe::connect_pipe(transport, &offer.endpoint).await } };
            let (connected, received) = tokio::join!(connecting, receiving);
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
