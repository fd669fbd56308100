//! Finding a stream: walking the DHT for its providers, asking each to
//! describe it as the walk names it, checking what they describe (signed
//! provenance, tracks), and the found stream that makes (providers with
//! hops, RTT and load). How long a caller waits for the descriptions is its
//! own choice: a find waits for all of them, a consume until the cheapest
//! provider is known (`acquire`).

use std::sync::Arc;

use mafalda_media::mediasoup::prelude::Router;
use mafalda_media::pipe::PipeEndpoint;
use mafalda_rope::Value;
use mafalda_swarm::{CallError, PeerId, stream_key};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::NodeError;
use crate::codecs::TrackSummary;
use crate::inner::{Inner, lock};
use crate::node::{FoundStream, ProviderInfo};
use crate::record::{self, MAX_TRACKS, RecordError, Verified};
use crate::remote::call;
use crate::streams::{DescribeParams, PipeOffer, StreamDescription, StreamParams, StreamRef};

/// The providers of `stream` whose signed provenance verifies, with RTT and
/// load; all within the node's find deadline.
pub(crate) async fn find(inner: &Arc<Inner>, stream: &StreamRef) -> Result<FoundStream, NodeError> {
    find_within(inner, stream, inner.config.find_deadline).await
}

/// Like [`find`], within `deadline` rather than the node's find deadline.
pub(crate) async fn find_within(
    inner: &Arc<Inner>,
    stream: &StreamRef,
    deadline: std::time::Duration,
) -> Result<FoundStream, NodeError> {
    let started = std::time::Instant::now();
    // The consume that usually follows needs this node's end of a pipe: it
    // opens while the DHT is walked, unless the stream is here already, and
    // joins the kept find when it lands. The find does not wait for it.
    let open_end = !inner.holds(stream).unwrap_or(true) && lock(&inner.recent_finds).reserve_end();
    if open_end {
        let (keeper, stream) = (Arc::clone(inner), stream.clone());
        inner.spawn("open a pipe end for a find", async move {
            let end = crate::pipes::open_local_end(&keeper, &stream.id, None).await.ok();
            let unused = lock(&keeper.recent_finds).attach(&stream, end, std::time::Instant::now());
            drop(unused);
            // Closed if its find never comes (the find closes it otherwise).
            expire_finds_after_ttl(&keeper).await;
        });
    }
    let found = find_described(inner, stream, deadline).await;
    inner.metrics.find_latency.observe(started.elapsed().as_secs_f64());
    if let Ok(found) = &found {
        let dropped = lock(&inner.recent_finds).keep(stream, found, None, std::time::Instant::now());
        drop(dropped);
        if open_end {
            // The end, landed or landing, is closed when the find expires if
            // no consume took it.
            let expiring = Arc::clone(inner);
            inner.spawn("close an unused pipe end", async move { expire_finds_after_ttl(&expiring).await });
        }
    }
    found
}

/// Waits one find's lifetime, then lets go of the finds (and their pipe
/// ends) that expired meanwhile.
async fn expire_finds_after_ttl(inner: &Inner) {
    tokio::time::sleep(crate::recent_finds::RECENT_FIND_TTL).await;
    let expired = lock(&inner.recent_finds).expire(std::time::Instant::now());
    drop(expired);
}

/// A provider's description, checked: its provenance leads from the origin
/// to it, and its tracks are the ones the origin signed.
pub(crate) fn check_description(
    stream: &str,
    provider: PeerId,
    description: &StreamDescription,
    checked: Option<&record::CheckedSignatures>,
) -> Result<Verified, RecordError> {
    if description.tracks.len() > MAX_TRACKS {
        return Err(RecordError::TracksDiffer(format!("{} tracks described", description.tracks.len())));
    }
    let verified = description.provenance.verify_with(stream, provider, checked)?;
    record::check_tracks(&verified.record, description.tracks.iter().map(|t| (t.kind, &t.rtp_parameters)))?;
    Ok(verified)
}

async fn find_described(
    inner: &Arc<Inner>,
    wanted: &StreamRef,
    find_deadline: std::time::Duration,
) -> Result<FoundStream, NodeError> {
    // One deadline for the whole find: the lookup gets most of it, the
    // describes what is left, so a provider that never answers cannot hold
    // the find past it.
    let deadline = tokio::time::Instant::now() + find_deadline;
    let mut quick = walk_and_describe(inner, wanted, find_deadline, Walk::Quick, &[], deadline, Asking::Find).await?;
    match found_from(inner, wanted, std::mem::take(&mut quick.described)) {
        Err(NodeError::NotFound(_)) if !quick.lookup.walked_to_the_end => {
            // Every record the quick walk met was stale: walk on to the
            // closest peers, and ask the providers not asked yet.
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let mut thorough =
                walk_and_describe(inner, wanted, left, Walk::Thorough, &quick.asked, deadline, Asking::Find).await?;
            found_from(inner, wanted, std::mem::take(&mut thorough.described))
        }
        found => found,
    }
}

/// How far a provider lookup walks the DHT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walk {
    /// Until a few peers answered with providers (nearly always all of them).
    Quick,
    /// Until the peers closest to the key all answered: after a quick walk
    /// whose providers all turned out stale.
    Thorough,
}

/// A provider whose description of a stream checked out.
pub(crate) struct Described {
    /// The provider.
    pub(crate) peer: PeerId,
    /// What it said of the stream.
    pub(crate) description: StreamDescription,
    /// Its provenance, checked.
    pub(crate) verified: Verified,
    /// How long its answer took to come (zero for this node's own): a
    /// bound on its RTT that ranks it when it has not been pinged yet (a
    /// provider just dialled). Judged at the RTT assumed for one never
    /// pinged instead, a near provider that answered lost to a far one.
    pub(crate) answered_in: std::time::Duration,
}

impl Described {
    /// Its RTT: the latest ping's in `rtts`, else how long it took to answer.
    pub(crate) fn rtt(&self, rtts: &std::collections::HashMap<PeerId, std::time::Duration>) -> std::time::Duration {
        rtts.get(&self.peer).copied().unwrap_or(self.answered_in)
    }
}

/// A provider's answer to a consume's describe.
pub(crate) enum Answer {
    /// Its description, checked out.
    Checked(Described),
    /// A relay's description (it names hand-offs), not checked until it
    /// matters ([`WalkedAndDescribed::check_deferred`]).
    Deferred(Deferred),
}

/// A relay's description that a consume has not checked yet: checking its
/// hand-offs' signatures is a tenth of a millisecond each, and a consume
/// heard from several relays while it waited for the origin's answer, which
/// then waited for those checks. Whatever it says, a relay is at least one
/// hop from the origin (if it checks out at all): that bounds its cost
/// until it is checked.
pub(crate) struct Deferred {
    /// The relay.
    pub(crate) peer: PeerId,
    description: StreamDescription,
    /// How long its answer took to come.
    pub(crate) answered_in: std::time::Duration,
}

/// A provider's answer on its way: `None` when it did not come by the
/// deadline or did not check out.
type Describing = futures::future::BoxFuture<'static, (PeerId, Option<Answer>)>;

/// What [`walk_and_describe`] learnt.
pub(crate) struct WalkedAndDescribed {
    /// The DHT's reachable providers.
    pub(crate) lookup: mafalda_swarm::ProviderLookup,
    /// The providers asked to describe the stream.
    pub(crate) asked: Vec<PeerId>,
    /// Their descriptions that checked out.
    pub(crate) described: Vec<Described>,
    /// The asked providers that have not answered yet.
    pub(crate) waiting_for: Vec<PeerId>,
    /// Their descriptions on the way (dropping them stops waiting).
    pending: futures::stream::FuturesUnordered<Describing>,
    /// When the walk ended, by which time every describe had been sent: a
    /// provider that has not answered since has an RTT longer than that.
    pub(crate) asked_at: tokio::time::Instant,
    /// Providers that piped with their description (an origin asked to pipe
    /// at once) whose pipe this node does not use.
    unused_offers: Vec<PeerId>,
    /// For a consume's describes: the node and stream that relays'
    /// descriptions put off are checked for, and offers unpiped for.
    consume: Option<(Arc<Inner>, String)>,
    /// Whether the describes asked the origin to pipe. If so, when the walk
    /// is dropped, the unused offers, those left in `described` and those
    /// still on their way are unpiped: a pipe made for this node is never
    /// left behind.
    asked_origin_to_pipe: bool,
    /// The provider this node pipes the stream from, if it does.
    piped_from: Option<PeerId>,
    /// Relays' descriptions not checked yet (a consume's only).
    deferred: Vec<Deferred>,
}

impl Drop for WalkedAndDescribed {
    fn drop(&mut self) {
        use futures::StreamExt;
        if !self.asked_origin_to_pipe {
            return;
        }
        let Some((inner, stream)) = self.consume.take() else { return };
        let mut described = std::mem::take(&mut self.described);
        self.not_using_offers_of(&mut described);
        let mut unused = std::mem::take(&mut self.unused_offers);
        let piped_from = self.piped_from;
        unused.retain(|peer| Some(*peer) != piped_from);
        let mut pending = std::mem::take(&mut self.pending);
        if unused.is_empty() && pending.is_empty() {
            return;
        }
        let unpiping = Arc::clone(&inner);
        inner.spawn("unpipe offers not taken", async move {
            for peer in unused {
                crate::pipes::tell_unpipe(&unpiping, &stream, peer).await;
            }
            while let Some((peer, answer)) = pending.next().await {
                let offered = match &answer {
                    Some(Answer::Checked(d)) => d.description.offer.is_some(),
                    Some(Answer::Deferred(d)) => d.description.offer.is_some(),
                    None => false,
                };
                if Some(peer) != piped_from && offered {
                    crate::pipes::tell_unpipe(&unpiping, &stream, peer).await;
                }
            }
        });
    }
}

/// Takes the offers made with the descriptions in `described`.
pub(crate) fn take_offers(described: &mut [Described]) -> Vec<(PeerId, PipeOffer)> {
    described.iter_mut().filter_map(|d| Some((d.peer, d.description.offer.take()?))).collect()
}

impl WalkedAndDescribed {
    /// The walk that found `lookup` and asked `asked` to describe the stream
    /// (their answers `pending`); for a consume's describes (`consume`: the
    /// node and stream), some of which may have asked the origin to pipe.
    fn new(
        lookup: mafalda_swarm::ProviderLookup,
        asked: Vec<PeerId>,
        pending: futures::stream::FuturesUnordered<Describing>,
        consume: Option<(Arc<Inner>, String)>,
        asked_origin_to_pipe: bool,
    ) -> Self {
        Self {
            lookup,
            waiting_for: if pending.is_empty() { Vec::new() } else { asked.clone() },
            asked,
            described: Vec::new(),
            pending,
            asked_at: tokio::time::Instant::now(),
            unused_offers: Vec::new(),
            consume,
            asked_origin_to_pipe,
            piped_from: None,
            deferred: Vec::new(),
        }
    }

    /// Marks `offers` unused: they are unpiped when the walk is dropped.
    pub(crate) fn not_using(&mut self, offers: Vec<(PeerId, PipeOffer)>) {
        self.unused_offers.extend(offers.into_iter().map(|(peer, _)| peer));
    }

    /// Takes the offers made with `described` out of them, unused
    /// ([`WalkedAndDescribed::not_using`]).
    pub(crate) fn not_using_offers_of(&mut self, described: &mut [Described]) {
        self.not_using(take_offers(described));
    }

    /// Waits for the next answer of a provider asked; `false` when none is
    /// awaited.
    pub(crate) async fn next_answer(&mut self) -> bool {
        use futures::StreamExt;
        let Some((peer, described)) = self.pending.next().await else { return false };
        self.record(peer, described);
        true
    }

    /// Awaits every description still on the way (each until the deadline
    /// it was asked with), and takes those described and not taken yet
    /// (the deferred ones checked).
    pub(crate) async fn rest(&mut self) -> Vec<Described> {
        while self.next_answer().await {}
        self.check_deferred();
        std::mem::take(&mut self.described)
    }

    /// The relays whose descriptions are not checked yet, and how long each
    /// took to answer.
    pub(crate) fn deferred(&self) -> impl Iterator<Item = (PeerId, std::time::Duration)> + '_ {
        self.deferred.iter().map(|d| (d.peer, d.answered_in))
    }

    /// Forgets the relays' descriptions put off that hold `record` (byte for
    /// byte the origin's signed record of a stream this node holds): relays
    /// of the same stream, whose hand-offs only matter to pipe from them.
    pub(crate) fn forget_deferred_of(&mut self, record: &record::Signed) {
        self.deferred.retain(|d| d.description.provenance.record != *record);
    }

    /// Checks the relays' descriptions put off (those that check out join
    /// `described`); `false` when there were none.
    pub(crate) fn check_deferred(&mut self) -> bool {
        if self.deferred.is_empty() {
            return false;
        }
        let deferred = std::mem::take(&mut self.deferred);
        let Some((inner, stream)) = self.consume.clone() else { return true };
        for Deferred { peer, description, answered_in } in deferred {
            self.described.extend(checked(&inner, &stream, peer, description, answered_in));
        }
        true
    }

    /// This node pipes the stream from `peer` now: no offer of its is
    /// unpiped (unpiping is by stream and peer, and would close this pipe).
    pub(crate) fn piped_from(&mut self, peer: PeerId) {
        self.unused_offers.retain(|unused| *unused != peer);
        self.piped_from = Some(peer);
    }

    /// Whether the describes asked the origin to pipe to this node's end.
    pub(crate) fn pipes_at_origin(&self) -> bool {
        self.asked_origin_to_pipe
    }

    /// Stops waiting for the descriptions on the way.
    pub(crate) fn stop_waiting(&mut self) {
        self.pending = futures::stream::FuturesUnordered::new();
        self.waiting_for.clear();
    }

    fn record(&mut self, peer: PeerId, answer: Option<Answer>) {
        self.waiting_for.retain(|p| *p != peer);
        match answer {
            Some(Answer::Checked(described)) => self.described.push(described),
            Some(Answer::Deferred(deferred)) => self.deferred.push(deferred),
            None => {}
        }
    }
}

/// Runs `walking` (a [`walk_and_describe`] that does not wait for all) and
/// `meanwhile` together; once the walk has ended and while `meanwhile` still
/// runs, reads the descriptions that come (checking a description's
/// signatures is the CPU a consume can do while it waits for other work).
pub(crate) async fn walk_meanwhile<T>(
    walking: impl Future<Output = Result<WalkedAndDescribed, NodeError>>,
    meanwhile: impl Future<Output = T>,
) -> (Result<WalkedAndDescribed, NodeError>, T) {
    let (mut walking, mut meanwhile) = (std::pin::pin!(walking), std::pin::pin!(meanwhile));
    let mut done = None;
    let walked = loop {
        tokio::select! {
            walked = &mut walking => break walked,
            out = &mut meanwhile, if done.is_none() => done = Some(out),
        }
    };
    if let Some(out) = done {
        return (walked, out);
    }
    let Ok(mut walked) = walked else { return (walked, meanwhile.await) };
    let out = loop {
        tokio::select! {
            out = &mut meanwhile => break out,
            true = walked.next_answer(), if !walked.waiting_for.is_empty() => {}
        }
    };
    (Ok(walked), out)
}

/// Most provider names a walk holds for describing before it ends (the
/// rest wait for its answer).
const NAMED_AHEAD: usize = 32;

/// This node's end of a pipe as it will be ready, and the router it is on
/// (`None`: it could not be opened), for the describes of a consume.
pub(crate) type EndReady = futures::future::Shared<futures::future::BoxFuture<'static, Option<(Router, PipeEndpoint)>>>;

/// What a consume's describes wait on for its end ([`EndReady`]), and where
/// it tells it (a sender dropped unused tells "none").
pub(crate) fn end_ready() -> (tokio::sync::oneshot::Sender<Option<(Router, PipeEndpoint)>>, EndReady) {
    let (tell, ready) = tokio::sync::oneshot::channel();
    (tell, futures::FutureExt::shared(Box::pin(async move { ready.await.ok().flatten() })))
}

/// Who a walk's describes are for.
#[derive(Clone)]
pub(crate) enum Asking {
    /// A find: every description is waited for.
    Find,
    /// A consume: the walk returns with the descriptions still on their way,
    /// and with an end, each describe (sent once the end is ready) asks the
    /// origin to pipe to it at once ([`DescribeParams::pipe_if_origin`]).
    Consume(Option<EndReady>),
}

/// Walks the DHT for `wanted`'s providers (within most of `find_deadline`)
/// and asks each one to describe the stream as soon as the walk names it
/// rather than once the walk has ended, so the describes overlap the rest
/// of the walk; providers in `skip` are not asked, and descriptions are
/// waited for until `deadline`. For a consume ([`Asking::Consume`]) it returns when
/// the walk ends, with the descriptions not in yet still on their way
/// ([`WalkedAndDescribed::next_answer`]): the caller decides how long to
/// wait (a consume pipes once the cheapest provider is known); and a walk
/// that ended naming a single provider before any was asked (a lookup
/// answered from this node's store, say) asks none: a consume asks that one
/// to pipe at once.
pub(crate) async fn walk_and_describe(
    inner: &Arc<Inner>,
    wanted: &StreamRef,
    find_deadline: std::time::Duration,
    walk: Walk,
    skip: &[PeerId],
    deadline: tokio::time::Instant,
    asking: Asking,
) -> Result<WalkedAndDescribed, NodeError> {
    use futures::StreamExt;
    let stream = wanted.id.as_str();
    let params = stream_params(stream)?;
    let (wait_for_all, end_ready) = match asking {
        Asking::Find => (true, None),
        Asking::Consume(end_ready) => (false, end_ready),
    };
    let pipes_at_origin = end_ready.is_some();
    let (named, mut names) = mpsc::channel(NAMED_AHEAD);
    let key = stream_key(stream);
    // A quick walk this node's own store answers is read at once, with no
    // round trip to the swarm task (`SwarmHandle::stored_providers`).
    let stored = (walk == Walk::Quick).then(|| inner.swarm.stored_providers(&key)).flatten();
    let lookup = async {
        match stored {
            Some(providers) => {
                drop(named); // nothing to name ahead of an answer already here
                Ok(mafalda_swarm::ProviderLookup { providers, walked_to_the_end: false })
            }
            None => {
                let thorough = walk == Walk::Thorough;
                inner.swarm.lookup_providers_naming(key, find_deadline * 3 / 4, thorough, named).await
            }
        }
    };
    let mut asked: Vec<PeerId> = Vec::new();
    let mut pending = futures::stream::FuturesUnordered::new();
    let mut answered: Vec<(PeerId, Option<Answer>)> = Vec::new();
    let ask = |peer: PeerId, asked: &mut Vec<PeerId>| -> Option<Describing> {
        let fresh = !skip.contains(&peer) && !asked.contains(&peer);
        if fresh {
            asked.push(peer);
        }
        let (inner, stream, params, end_ready) =
            (Arc::clone(inner), stream.to_owned(), params.clone(), end_ready.clone());
        fresh.then(|| -> Describing {
            Box::pin(async move {
                let params = match end_ready {
                    // With the ends of the pairs kept with the peer: an
                    // origin that has one connected pipes on it.
                    Some(end_ready) => match end_ready.await {
                        Some((router, end)) => {
                            let paired = inner.paired_ends_with(peer, &router, end.ip);
                            describe_params(&stream, Some(end), paired).unwrap_or(params)
                        }
                        None => describe_params(&stream, None, Vec::new()).unwrap_or(params),
                    },
                    None => params,
                };
                (peer, answer_of(&inner, &stream, peer, params, deadline, !wait_for_all).await)
            })
        })
    };
    // Describes start as names come; the names end when the lookup answers.
    // Names that came with the answer, before any describe, are held until
    // it is read: a consume asks a single provider to pipe at once.
    let mut held: Vec<PeerId> = Vec::new();
    let naming = async {
        loop {
            tokio::select! {
                name = names.recv() => match name {
                    Some(peer) => {
                        let mut batch = vec![peer];
                        let walk_ended = loop {
                            match names.try_recv() {
                                Ok(peer) => batch.push(peer),
                                Err(mpsc::error::TryRecvError::Empty) => break false,
                                Err(mpsc::error::TryRecvError::Disconnected) => break true,
                            }
                        };
                        if walk_ended && asked.is_empty() && !wait_for_all {
                            held = batch;
                            break;
                        }
                        for peer in batch {
                            pending.extend(ask(peer, &mut asked));
                        }
                    }
                    None => break,
                },
                Some(one) = pending.next(), if !pending.is_empty() => answered.push(one),
            }
        }
    };
    let (lookup, ()) = tokio::join!(lookup, naming);
    let lookup = lookup?;
    let mut providers: Vec<PeerId> = Vec::new();
    for peer in held.into_iter().chain(lookup.providers.iter().copied()) {
        if !skip.contains(&peer) && !providers.contains(&peer) {
            providers.push(peer);
        }
    }
    if let [only] = providers.as_slice()
        && asked.is_empty()
        && !wait_for_all
    {
        // The walk ended naming one provider, none asked yet: it is asked to
        // pipe with no describe first (its offer carries the same signed
        // provenance and tracks, checked the same way), one call fewer.
        return Ok(WalkedAndDescribed::new(lookup, vec![*only], pending, None, false));
    }
    // Names held, and those the channel had no room for. Their calls go out
    // now (a call is sent at its first poll): the caller may first wait for
    // other work (this node's end of the pipe, the peers' costs) before it
    // reads the answers.
    for peer in providers {
        pending.extend(ask(peer, &mut asked));
    }
    while let std::task::Poll::Ready(Some(one)) = futures::poll!(pending.next()) {
        answered.push(one);
    }
    let consume = (!wait_for_all).then(|| (Arc::clone(inner), stream.to_owned()));
    let mut walked = WalkedAndDescribed::new(lookup, asked, pending, consume, pipes_at_origin);
    for (peer, described) in answered {
        walked.record(peer, described);
    }
    if wait_for_all {
        while walked.next_answer().await {}
    }
    Ok(walked)
}

/// The params of a call about `stream` (`stream.describe` and the like).
fn stream_params(stream: &str) -> Result<Value, NodeError> {
    Value::serialized(&StreamParams { stream: stream.to_owned() }).map_err(|e| NodeError::InvalidInput(e.to_string()))
}

/// The params of a `stream.describe` of `stream` that asks the origin to
/// pipe to `end` at once, or on a pair kept with it whose end here is one of
/// `paired_ends`.
fn describe_params(
    stream: &str,
    end: Option<PipeEndpoint>,
    paired_ends: Vec<PipeEndpoint>,
) -> Result<Value, NodeError> {
    let params = DescribeParams { stream: stream.to_owned(), pipe_if_origin: end, paired_ends };
    Value::serialized(&params).map_err(|e| NodeError::InvalidInput(e.to_string()))
}

/// `peer`'s description of `stream` (this node's own if `peer` is this
/// node), if it came by `deadline` and checks out.
async fn describe_one(
    inner: &Arc<Inner>,
    stream: &str,
    peer: PeerId,
    params: Value,
    deadline: tokio::time::Instant,
) -> Option<Described> {
    match answer_of(inner, stream, peer, params, deadline, false).await? {
        Answer::Checked(described) => Some(described),
        Answer::Deferred(_) => None,
    }
}

/// `peer`'s answer about `stream` (see [`describe_one`]); a relay's left
/// unchecked with `defer_relays` ([`Deferred`]).
async fn answer_of(
    inner: &Arc<Inner>,
    stream: &str,
    peer: PeerId,
    params: Value,
    deadline: tokio::time::Instant,
    defer_relays: bool,
) -> Option<Answer> {
    let (description, answered_in) = if peer == inner.swarm.peer_id() {
        (inner.describe(stream)?, std::time::Duration::ZERO)
    } else {
        describe_at(inner, peer, params, deadline).await?
    };
    if defer_relays && !description.provenance.is_origins() {
        return Some(Answer::Deferred(Deferred { peer, description, answered_in }));
    }
    checked(inner, stream, peer, description, answered_in).map(Answer::Checked)
}

/// `peer`'s `description`, if it checks out; one refused is logged, and the
/// pipe it offered, if any, is undone (in the background).
fn checked(
    inner: &Arc<Inner>,
    stream: &str,
    peer: PeerId,
    description: StreamDescription,
    answered_in: std::time::Duration,
) -> Option<Described> {
    match check_description(stream, peer, &description, Some(&inner.checked_signatures)) {
        Ok(verified) => Some(Described { peer, description, verified, answered_in }),
        Err(error) => {
            warn!(stream, %peer, %error, "provider's description refused");
            if description.offer.is_some() {
                let (unpiping, stream) = (Arc::clone(inner), stream.to_owned());
                inner.spawn("unpipe a refused offer", async move {
                    crate::pipes::tell_unpipe(&unpiping, &stream, peer).await;
                });
            }
            None
        }
    }
}

/// Asks each of `providers` to describe `wanted` (by `deadline`), and keeps
/// those whose description checks out, with RTT and load.
pub(crate) async fn describe_providers(
    inner: &Arc<Inner>,
    wanted: &StreamRef,
    providers: Vec<PeerId>,
    deadline: tokio::time::Instant,
) -> Result<FoundStream, NodeError> {
    let stream = wanted.id.as_str();
    let params = stream_params(stream)?;
    let describes = providers.into_iter().map(|peer| describe_one(inner, stream, peer, params.clone(), deadline));
    let described = futures::future::join_all(describes).await.into_iter().flatten().collect();
    found_from(inner, wanted, described)
}

/// What this node knows of its peers' cost as providers: RTTs from pings
/// and gossiped loads, as the swarm task had them when read.
pub(crate) struct PeerCosts {
    /// Latest ping RTT of each peer pinged.
    pub(crate) rtts: std::collections::HashMap<PeerId, std::time::Duration>,
    /// Latest load report of each peer heard from.
    pub(crate) loads: Vec<mafalda_swarm::PeerLoad>,
}

impl PeerCosts {
    /// As the swarm task has them now (no round trip to it).
    pub(crate) fn now(inner: &Inner) -> Self {
        Self { rtts: inner.swarm.rtts(), loads: inner.swarm.peer_loads() }
    }
}

/// The found stream `described` makes (of `wanted`'s pinned origin, if
/// pinned), with each provider's RTT and load; not found if none is left.
pub(crate) fn found_from(
    inner: &Arc<Inner>,
    wanted: &StreamRef,
    described: Vec<Described>,
) -> Result<FoundStream, NodeError> {
    found_with(inner, wanted, described, None)
}

/// Like [`found_from`], with the RTTs and loads in `costs` if given (those
/// a consume judged its providers by while it waited for descriptions, so
/// that the ranking agrees with that judgement), else as they are now.
pub(crate) fn found_with(
    inner: &Arc<Inner>,
    wanted: &StreamRef,
    mut described: Vec<Described>,
    costs: Option<&PeerCosts>,
) -> Result<FoundStream, NodeError> {
    let stream = wanted.id.as_str();
    if let Some(origin) = wanted.origin {
        described.retain(|d| d.verified.origin == origin);
    }
    if described.is_empty() {
        return Err(NodeError::NotFound(stream.to_owned()));
    }
    let asked;
    let PeerCosts { rtts, loads } = match costs {
        Some(costs) => costs,
        None => {
            asked = PeerCosts::now(inner);
            &asked
        }
    };
    let me = inner.swarm.peer_id();
    let mut origins: Vec<String> = described.iter().map(|d| d.verified.origin.to_string()).collect();
    origins.sort();
    origins.dedup();
    if origins.len() > 1 {
        warn!(stream, ?origins, "two origins provide streams under one id");
    }
    let tracks = described[0]
        .description
        .tracks
        .iter()
        .map(|track| TrackSummary::of(track.kind, &track.rtp_parameters))
        .collect();
    let providers = described
        .into_iter()
        .map(|d| ProviderInfo {
            peer: d.peer.to_string(),
            origin: d.verified.origin.to_string(),
            hops: d.verified.hops(),
            rtt_ms: Some(if d.peer == me { 0.0 } else { d.rtt(rtts).as_secs_f64() * 1000.0 }),
            load: provider_load(d.peer, &d.description, loads),
            path: d.verified.path.iter().map(ToString::to_string).collect(),
        })
        .collect();
    Ok(FoundStream { stream: stream.to_owned(), origins, tracks, providers })
}

/// First wait before asking a provider that refused the connection again.
const DESCRIBE_RETRY: std::time::Duration = std::time::Duration::from_millis(200);
/// Longest wait between two asks.
const DESCRIBE_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(2);

/// `peer`'s description of a stream, asked by `deadline`, and how long the
/// call that got it took. A provider that cannot
/// be reached is asked again (backing off, with jitter) until the deadline: an
/// origin dialed by a whole swarm at once refuses connections past its cap and
/// frees them within seconds, and a find that gives up at the first refusal
/// answers "not found" for a stream that exists.
async fn describe_at(
    inner: &Inner,
    peer: PeerId,
    params: Value,
    deadline: tokio::time::Instant,
) -> Option<(StreamDescription, std::time::Duration)> {
    let mut wait = DESCRIBE_RETRY;
    loop {
        let asked = tokio::time::Instant::now();
        match tokio::time::timeout_at(deadline, call(inner, peer, "stream.describe", params.clone())).await {
            Ok(Ok(description)) => return Some((description, asked.elapsed())),
            Ok(Err(error @ CallError::Unreachable { .. })) => {
                let jittered = wait.mul_f64(rand::random_range(0.5..1.5));
                if tokio::time::Instant::now() + jittered >= deadline {
                    debug!(%peer, %error, "provider unreachable until the find deadline");
                    return None;
                }
                debug!(%peer, %error, retry_in = ?jittered, "provider unreachable; asking again");
                tokio::time::sleep(jittered).await;
                wait = (wait * 2).min(DESCRIBE_RETRY_MAX);
            }
            Ok(Err(error)) => {
                debug!(%peer, %error, "provider did not describe the stream");
                return None;
            }
            Err(_) => {
                debug!(%peer, "provider did not describe the stream before the find deadline");
                return None;
            }
        }
    }
}

/// The load a provider says it has, if it is a number; clamped to 0–1.
fn description_load(description: &StreamDescription) -> Option<f64> {
    description.load.filter(|load| load.is_finite()).map(|load| load.clamp(0.0, 1.0))
}

/// `peer`'s load, 0–1: the one its description says, else its latest
/// gossiped report's, if any.
pub(crate) fn provider_load(
    peer: PeerId,
    description: &StreamDescription,
    loads: &[mafalda_swarm::PeerLoad],
) -> Option<f64> {
    description_load(description).or_else(|| {
        loads.iter().find(|l| l.report.node == peer).map(|l| f64::from(l.report.mean_cpu_percent()) / 100.0)
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A walk that asked `answering` (whose describe fails at once) and
    /// `silent` (which never answers).
    fn walked(answering: PeerId, silent: PeerId) -> WalkedAndDescribed {
        let pending = futures::stream::FuturesUnordered::new();
        pending.push(Box::pin(async move { (answering, None) }) as Describing);
        pending.push(Box::pin(futures::future::pending()) as Describing);
        WalkedAndDescribed::new(mafalda_swarm::ProviderLookup::default(), vec![answering, silent], pending, None, false)
    }

    #[tokio::test]
    async fn answers_that_come_while_the_other_work_runs_are_read_and_a_silent_provider_does_not_hold_it() {
        let (answering, silent) = (PeerId::random(), PeerId::random());
        let walking = async { Ok(walked(answering, silent)) };
        let meanwhile = async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            "end opened"
        };
        let (walked, out) = walk_meanwhile(walking, meanwhile).await;
        assert_eq!(out, "end opened");
        let walked = walked.expect("walked");
        assert_eq!(walked.waiting_for, vec![silent], "the answer that came was read; the silent one is still awaited");
    }

    #[tokio::test]
    async fn work_done_before_the_walk_leaves_the_answers_to_the_caller_and_a_failed_walk_still_finishes_the_work() {
        let (answering, silent) = (PeerId::random(), PeerId::random());
        let walking = async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok(walked(answering, silent))
        };
        let (walked, out) = walk_meanwhile(walking, async { 7 }).await;
        assert_eq!(out, 7);
        assert_eq!(walked.expect("walked").waiting_for.len(), 2, "nothing read once the work was done");

        let failing = async { Err(NodeError::NotFound("s".into())) };
        let (walked, out) = walk_meanwhile(failing, async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            "end opened"
        })
        .await;
        assert!(matches!(walked, Err(NodeError::NotFound(_))));
        assert_eq!(out, "end opened", "the end opened is handed back, to be closed by its owner");
    }
}
