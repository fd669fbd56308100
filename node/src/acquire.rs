//! Getting a stream here: finding its providers, ranking them by cost and
//! asking the cheapest to pipe it (busy ones name others to try); concurrent
//! consumes of one stream share one pull.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use mafalda_swarm::PeerId;
use tracing::{info, warn};

use crate::cost::Candidate;
use crate::describe::{PeerCosts, Walk};
use crate::events::NodeEvent;
use crate::inner::{Inner, lock};
use crate::streams::{LocalStream, StreamRef};
use crate::{NodeError, describe};

/// How long the DHT is asked for providers of a stream whose origin is
/// known already, before it is piped from the origin itself.
const KNOWN_ORIGIN_FIND: Duration = Duration::from_millis(500);

/// Most providers one consume tries (busy ones name others to try).
const MAX_PULL_ATTEMPTS: usize = 16;

/// What one acquisition has used up so far, over both walks of the DHT.
struct Attempt {
    /// This node's end of the pipe, opened during the first walk, for the
    /// first pull.
    end: Option<crate::pipes::LocalEnd>,
    /// Providers asked to pipe.
    tried: HashSet<PeerId>,
    /// Why each one did not.
    reasons: Vec<String>,
}

/// The announcement of a stream this node just started to relay, made once the
/// caller set up what it pulled the stream for and the stream's first packet
/// is here ([`Inner::announce_relay`]): a provider announcement is a DHT query
/// of its own, and run at once it took the CPU the consumer's setup and the
/// first packet needed (the first packet came 2 ms later on loopback). Once
/// [`done`] returns the relay's provider record is on its way to the peers
/// that store it (Kademlia does not acknowledge it): the next consumer finds
/// the relay once it has arrived there. Dropped without it, the announcement
/// runs in the background.
///
/// [`done`]: Announced::done
#[must_use = "wait for the announcement, or say why not"]
pub(crate) struct Announced(Option<(Arc<Inner>, String)>);

impl Announced {
    /// Announces the relay and waits until its provider record is out (or its
    /// first attempt failed and retries went on in the background).
    pub(crate) async fn done(mut self) {
        if let Some((inner, stream)) = self.0.take() {
            inner.announce_relay(&stream).await;
        }
    }
}

impl Drop for Announced {
    fn drop(&mut self) {
        if let Some((inner, stream)) = self.0.take() {
            let announcing = Arc::clone(&inner);
            inner.spawn("announce a relay", async move { announcing.announce_relay(&stream).await });
        }
    }
}

/// Whether the cheapest provider a walk described is known yet.
enum Cheapest {
    /// It is (or the descriptions name two origins): the rest are not waited for.
    Known,
    /// A relay whose description is not checked yet could be cheaper: check it.
    CheckDeferred,
    /// Not yet: wait for the next answer, or at most this long, after which
    /// the providers not pinged that have still not answered cost more.
    NotYet(Option<Duration>),
}

impl Attempt {
    /// Why nothing was piped: not found when no provider was asked to pipe,
    /// each asked one's reason otherwise.
    fn failure(&self, stream: &str) -> NodeError {
        if self.reasons.is_empty() {
            return NodeError::NotFound(stream.to_owned());
        }
        NodeError::NoProvider { stream: stream.to_owned(), reasons: self.reasons.join("; ") }
    }
}

impl Inner {
    /// The origin of the stream `peer` provides, from its description.
    async fn origin_of(
        self: &Arc<Self>,
        wanted: &StreamRef,
        peer: PeerId,
        deadline: tokio::time::Instant,
    ) -> Option<PeerId> {
        let found = describe::describe_providers(self, wanted, vec![peer], deadline).await.ok()?;
        match found.origins.as_slice() {
            [only] => only.parse().ok(),
            _ => None,
        }
    }

    /// The providers to try, cheapest first.
    fn rank(&self, providers: Vec<crate::node::ProviderInfo>, excluded: &[PeerId]) -> Vec<PeerId> {
        let me = self.swarm.peer_id().to_string();
        let candidates: Vec<Candidate> = providers
            .iter()
            .filter(|p| p.peer != me)
            .filter_map(|p| {
                let peer: PeerId = p.peer.parse().ok()?;
                if excluded.contains(&peer) {
                    return None;
                }
                Some(self.candidate(peer, p.hops, p.rtt_ms.map(|ms| Duration::from_secs_f64(ms / 1000.0)), p.load))
            })
            .collect();
        self.config.cost.rank(candidates).into_iter().map(|c| c.peer).collect()
    }

    /// `peer` as a provider to rank, its RTT with the configured link delay.
    fn candidate(&self, peer: PeerId, hops: u32, rtt: Option<Duration>, load: Option<f64>) -> Candidate {
        let delay = self.config.link_delay.get(&peer).copied().unwrap_or_default();
        Candidate { peer, hops, rtt: rtt.map(|rtt| rtt + delay), load }
    }

    /// Waits for the descriptions of `walked`'s providers until the cheapest
    /// of them is known: the cheapest described one costs less than each one
    /// not described yet could ([`CostWeights::cheaper_than_any`]), with the
    /// RTT known of it and at least one hop once the origin itself has
    /// described (every other provider of its stream is a relay). One not
    /// pinged yet is judged at least as far as the time it has not answered
    /// for: a slow or silent provider then does not hold the consume, and
    /// one just dialled is neither taken for near nor for far. Those that
    /// answer while the pipe is made are still heard ([`Inner::try_described`]).
    /// Relays' descriptions are checked only when one of them could be the
    /// cheapest, or when nothing else is left to wait for ([`Deferred`]).
    ///
    /// Judges by the peers' costs as the swarm task has them
    /// ([`PeerCosts::now`]), and hands them back for the ranking that
    /// follows (`None`: none were judged by, the ranking reads them).
    ///
    /// [`CostWeights::cheaper_than_any`]: crate::cost::CostWeights::cheaper_than_any
    /// [`Deferred`]: describe::Deferred
    async fn describe_until_cheapest_known(
        &self,
        wanted: &StreamRef,
        walked: &mut describe::WalkedAndDescribed,
    ) -> Option<PeerCosts> {
        if walked.waiting_for.is_empty() && walked.deferred().next().is_none()
            || (walked.asked.len() == 1 && walked.described.is_empty())
        {
            return None; // all in, or a single provider asked to pipe at once
        }
        let costs = PeerCosts::now(self);
        let me = self.swarm.peer_id();
        loop {
            let answered = match self.cheapest_known(wanted, walked, &costs, me) {
                Cheapest::Known => return Some(costs),
                Cheapest::CheckDeferred => {
                    walked.check_deferred();
                    continue;
                }
                Cheapest::NotYet(None) => walked.next_answer().await,
                Cheapest::NotYet(Some(at_most)) => {
                    tokio::time::timeout(at_most, walked.next_answer()).await.unwrap_or(true)
                }
            };
            // All in: the relays put off decide what is left.
            if !answered && !walked.check_deferred() {
                return Some(costs);
            }
        }
    }

    /// Whether the cheapest provider of `walked` is known (see
    /// [`Inner::describe_until_cheapest_known`]).
    fn cheapest_known(
        &self,
        wanted: &StreamRef,
        walked: &describe::WalkedAndDescribed,
        PeerCosts { rtts, loads }: &PeerCosts,
        me: PeerId,
    ) -> Cheapest {
        let described: Vec<&describe::Described> = walked
            .described
            .iter()
            .filter(|d| d.peer != me && wanted.origin.is_none_or(|o| d.verified.origin == o))
            .collect();
        let mut origins: Vec<PeerId> = described.iter().map(|d| d.verified.origin).collect();
        origins.sort();
        origins.dedup();
        let [origin] = origins.as_slice() else {
            // None yet: wait. Two: refused as a conflict whatever the rest say.
            return if origins.len() > 1 { Cheapest::Known } else { Cheapest::NotYet(None) };
        };
        let Some(best) = self
            .config
            .cost
            .rank(
                described
                    .iter()
                    .map(|d| {
                        let load = describe::provider_load(d.peer, &d.description, loads);
                        self.candidate(d.peer, d.verified.hops(), Some(d.rtt(rtts)), load)
                    })
                    .collect(),
            )
            .into_iter()
            .next()
        else {
            return Cheapest::NotYet(None);
        };
        let least_hops = u32::from(described.iter().any(|d| d.peer == *origin));
        // Not answered yet, its RTT is longer than the wait so far.
        let waited = walked.asked_at.elapsed();
        let (mut pinged, mut not_pinged) = (Vec::new(), Vec::new());
        for peer in walked.waiting_for.iter().filter(|peer| **peer != me) {
            match rtts.get(peer) {
                Some(rtt) => pinged.push(self.candidate(*peer, least_hops, Some(*rtt), None)),
                None => not_pinged.push(self.candidate(*peer, least_hops, Some(waited), None)),
            }
        }
        let weights = &self.config.cost;
        // A relay's description not checked yet: one hop at least.
        let deferred: Vec<Candidate> = walked
            .deferred()
            .map(|(peer, answered_in)| {
                let rtt = rtts.get(&peer).copied().unwrap_or(answered_in);
                self.candidate(peer, 1, Some(rtt), None)
            })
            .collect();
        if !weights.cheaper_than_any(&best, &deferred) {
            return Cheapest::CheckDeferred;
        }
        if !weights.cheaper_than_any(&best, &pinged) {
            return Cheapest::NotYet(None);
        }
        if weights.cheaper_than_any(&best, &not_pinged) {
            return Cheapest::Known;
        }
        let longest = not_pinged.iter().map(|other| weights.rtt_short_of(&best, other)).max().unwrap_or_default();
        Cheapest::NotYet(Some(longest + Duration::from_millis(1)))
    }

    /// Whether this node holds `wanted` (of the pinned origin, if pinned).
    pub(crate) fn holds(&self, wanted: &StreamRef) -> Result<bool, NodeError> {
        let streams = lock(&self.streams);
        let Some(local) = streams.get(&wanted.id) else { return Ok(false) };
        match wanted.origin {
            Some(origin) if origin != local.verified.origin => Err(NodeError::OriginConflict {
                stream: wanted.id.clone(),
                origins: vec![local.verified.origin.to_string(), origin.to_string()],
            }),
            _ => Ok(true),
        }
    }

    /// Makes sure this node holds `wanted`, piping it from the cheapest
    /// provider (of its pinned origin, if pinned; refused if two origins
    /// provide the id and none is pinned).
    pub(crate) async fn ensure_local(self: &Arc<Self>, wanted: &StreamRef) -> Result<Announced, NodeError> {
        self.ensure_held(wanted, None).await
    }

    /// Like [`Inner::ensure_local`] for a stream whose origin is known (a room
    /// producer's): the DHT is given a short [`KNOWN_ORIGIN_FIND`] to name
    /// cheaper providers (relays that hold it already); when it names none
    /// (yet: the room knows a producer before its record is stored, and a
    /// loaded swarm answers slowly), the stream is piped from `origin`.
    pub(crate) async fn ensure_local_or_from(
        self: &Arc<Self>,
        wanted: &StreamRef,
        origin: PeerId,
    ) -> Result<Announced, NodeError> {
        self.ensure_held(wanted, Some(origin)).await
    }

    /// [`Inner::ensure_local`], and with `known_origin`
    /// [`Inner::ensure_local_or_from`]: one pull per stream at a time, then
    /// the stream is held and told, and provided in the background.
    #[tracing::instrument(name = "stream", skip_all, fields(id = %wanted.id))]
    async fn ensure_held(
        self: &Arc<Self>,
        wanted: &StreamRef,
        known_origin: Option<PeerId>,
    ) -> Result<Announced, NodeError> {
        let stream = wanted.id.as_str();
        if self.holds(wanted)? {
            return Ok(Announced(None));
        }
        let gate = Arc::clone(lock(&self.pulling).entry(stream.to_owned()).or_default());
        let _pulling = gate.lock().await;
        if self.holds(wanted)? {
            return Ok(Announced(None)); // another consume pulled it meanwhile
        }
        let local = match known_origin {
            None => self.acquire(wanted, &[]).await?,
            Some(origin) => {
                let deadline = self.config.find_deadline.min(KNOWN_ORIGIN_FIND);
                match self.acquire_within(wanted, &[], deadline).await {
                    Ok(local) => local,
                    Err(NodeError::NotFound(_)) => crate::pipes::pull(self, stream, origin, Some(origin)).await?,
                    Err(error) => return Err(error),
                }
            }
        };
        lock(&self.streams).insert(stream.to_owned(), local);
        if let Some(local) = lock(&self.streams).get(stream) {
            self.emit(NodeEvent::StreamHeld { status: self.status_of(stream, local) });
        }
        // Providing is a DHT query of its own (the closest peers to the key):
        // it runs once the consumer is set up, not before.
        Ok(Announced(Some((Arc::clone(self), stream.to_owned()))))
    }

    /// Pipes `wanted` here from the cheapest provider that is not in
    /// `excluded`, and returns it without holding it yet (the caller decides:
    /// a consume holds it at once, a move swaps it for the old one).
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        wanted: &StreamRef,
        excluded: &[PeerId],
    ) -> Result<LocalStream, NodeError> {
        self.acquire_within(wanted, excluded, self.config.find_deadline).await
    }

    /// Like [`Inner::acquire`], finding providers within `find_deadline`.
    ///
    /// The first packet is what a consumer waits for, so what can overlap
    /// does: this node's end of the pipe opens while the DHT is asked, and
    /// each provider the walk names is asked to describe the stream while the
    /// walk goes on. A single provider is asked to pipe at once if its
    /// description has not come by the walk's end (its offer carries the same
    /// signed provenance and tracks a description would, checked the same
    /// way); several are ranked by cost from their descriptions, as soon as
    /// the cheapest is known rather than when all have come
    /// ([`Inner::describe_until_cheapest_known`]). The DHT is
    /// walked quickly first; when none of the providers that walk named can
    /// pipe the stream (their records may be stale), it is walked to the end
    /// and the providers not tried yet are.
    async fn acquire_within(
        self: &Arc<Self>,
        wanted: &StreamRef,
        excluded: &[PeerId],
        find_deadline: Duration,
    ) -> Result<LocalStream, NodeError> {
        let stream = wanted.id.as_str();
        let started = std::time::Instant::now();
        let deadline = tokio::time::Instant::now() + find_deadline;
        let recent = lock(&self.recent_finds).take(wanted, std::time::Instant::now());
        let mut attempt = Attempt { end: None, tried: HashSet::new(), reasons: Vec::new() };
        if let Some((found, kept_end)) = recent {
            if wanted.origin.is_none() && found.origins.len() > 1 {
                // What the find reported a moment ago.
                return Err(NodeError::OriginConflict { stream: stream.to_owned(), origins: found.origins });
            }
            // Found a moment ago (an app's find before its consume): pipe
            // from the cheapest of those providers through the end the find
            // opened, or find afresh.
            attempt.end = match kept_end {
                Some(end) => Some(end),
                None => crate::pipes::open_local_end(self, stream, None).await.ok(),
            };
            let origin = wanted.origin.or_else(|| found.origins.first()?.parse().ok());
            let ranked = self.rank(found.providers, excluded);
            if let Some(local) = self.pull_first(wanted, excluded, ranked, origin, deadline, &mut attempt).await? {
                return Ok(local);
            }
            let forgotten = lock(&self.recent_finds).forget(wanted);
            drop(forgotten);
        }
        // An end opened for the kept find and not used by it serves here.
        // Providers are described as the walk names them, this node's end
        // of the pipe opens meanwhile.
        let has_end = attempt.end.is_some();
        let mut skip = excluded.to_vec();
        skip.push(self.swarm.peer_id());
        // The peers' costs are asked meanwhile too, and the descriptions that
        // come while the end opens are read (their signatures checked) then.
        // The describes ask the origin to pipe to that end at once.
        // (With two media IPs the end may have to change family: then the
        // cheapest is asked with `stream.pipe`.)
        let asks_origin = self.config.second_media_ip.is_none();
        let (tell_end, end_ready) = describe::end_ready();
        let mut tell_end = asks_origin.then_some(tell_end);
        if let Some(end) = &attempt.end
            && let Some(tell) = tell_end.take()
        {
            let _ = tell.send(end.endpoint_for_origin());
        }
        let asking = describe::Asking::Consume(asks_origin.then_some(end_ready));
        let quick = describe::walk_and_describe(self, wanted, find_deadline, Walk::Quick, &skip, deadline, asking);
        let opening = async {
            if has_end {
                return None;
            }
            let end = crate::pipes::open_local_end(self, stream, None).await.ok();
            if let Some(tell) = tell_end {
                let _ = tell.send(end.as_ref().and_then(crate::pipes::LocalEnd::endpoint_for_origin));
            }
            end
        };
        let (walked, end) = describe::walk_meanwhile(quick, opening).await;
        self.metrics.find_latency.observe(started.elapsed().as_secs_f64());
        if !has_end {
            attempt.end = end;
        }
        let mut walked = walked?;
        let costs = self.describe_until_cheapest_known(wanted, &mut walked).await;
        let walked_to_the_end = walked.lookup.walked_to_the_end;
        if let Some(local) = self.try_described(wanted, excluded, walked, costs, deadline, &mut attempt).await? {
            return Ok(local);
        }
        if walked_to_the_end {
            return Err(attempt.failure(stream));
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        skip.extend(attempt.tried.iter().copied());
        let asking = describe::Asking::Consume(None);
        let mut thorough =
            describe::walk_and_describe(self, wanted, left, Walk::Thorough, &skip, deadline, asking).await?;
        let costs = self.describe_until_cheapest_known(wanted, &mut thorough).await;
        if let Some(local) = self.try_described(wanted, excluded, thorough, costs, deadline, &mut attempt).await? {
            return Ok(local);
        }
        Err(attempt.failure(stream))
    }

    /// Ranks the providers a walk described and asks them to pipe `wanted`,
    /// cheapest first, until one does (`Some`); `None` when none did (why is
    /// in `attempt`). A single provider not described yet is asked at once.
    /// Descriptions still on their way are heard while the pipe is made: one
    /// in by then that names another origin (none pinned) undoes the pipe
    /// and refuses the consume, as if it had come before; those not in by
    /// then are not waited for (a slow or silent provider cannot hold the
    /// consume), unless none of the first could pipe: then they are, and
    /// tried in turn.
    async fn try_described(
        self: &Arc<Self>,
        wanted: &StreamRef,
        excluded: &[PeerId],
        mut walked: describe::WalkedAndDescribed,
        costs: Option<PeerCosts>,
        deadline: tokio::time::Instant,
        attempt: &mut Attempt,
    ) -> Result<Option<LocalStream>, NodeError> {
        let stream = wanted.id.as_str();
        if let [only] = walked.asked.as_slice()
            && walked.described.is_empty()
            && !walked.pipes_at_origin()
        {
            let only = *only;
            walked.stop_waiting();
            return self.pull_first(wanted, excluded, vec![only], wanted.origin, deadline, attempt).await;
        }
        let mut described = std::mem::take(&mut walked.described);
        if described.is_empty() {
            // None checked out yet: those on the way decide (a single one
            // asked to pipe if it is the origin is waited for: a pipe asked
            // for now would only replace that one).
            described = walked.rest().await;
        }
        if described.is_empty()
            && let [only] = walked.asked.as_slice()
        {
            let only = *only;
            return self.pull_first(wanted, excluded, vec![only], wanted.origin, deadline, attempt).await;
        }
        let mut offers = describe::take_offers(&mut described);
        let Some((ranked, origin)) = self.rank_described(wanted, excluded, described, costs.as_ref())? else {
            walked.not_using(offers);
            return Ok(None);
        };
        // The cheapest provider's pipe, if it made one with its description.
        let offered = ranked.first().and_then(|first| offers.iter().position(|(peer, _)| peer == first));
        let offered = offered.map(|at| offers.swap_remove(at));
        walked.not_using(offers);
        // The pipe is made while the rest answer; those in by then are heard.
        let pulled = {
            let mut pulling = std::pin::pin!(
                self.pull_offered_or_first(wanted, excluded, ranked, origin, offered, deadline, attempt)
            );
            loop {
                tokio::select! {
                    pulled = &mut pulling => break pulled,
                    true = walked.next_answer(), if !walked.waiting_for.is_empty() => {}
                }
            }
        };
        let mut late = if let Ok(Some(local)) = &pulled {
            // Relays that hold the very record piped here cannot name
            // another origin: they need no check. Any other is checked.
            walked.forget_deferred_of(&local.provenance.record);
            walked.check_deferred();
            std::mem::take(&mut walked.described)
        } else {
            // Nothing piped: the providers still to answer are worth waiting for.
            walked.rest().await
        };
        walked.not_using_offers_of(&mut late);
        if let Ok(Some(local)) = &pulled
            && let Some(upstream) = local.role.upstream()
        {
            // Piped from it (by `stream.pipe` after its offer, say): an
            // unpipe for its offer would close this pipe.
            walked.piped_from(upstream);
        }
        late.retain(|d| wanted.origin.is_none_or(|o| d.verified.origin == o));
        if let Some(other) = late.iter().map(|d| &d.verified).find(|verified| verified.origin != origin) {
            if let Ok(Some(local)) = pulled {
                let upstream = local.role.upstream();
                drop(local);
                if let Some(upstream) = upstream {
                    crate::pipes::tell_unpipe(self, stream, upstream).await;
                }
            }
            let mut origins = vec![origin.to_string(), other.origin.to_string()];
            origins.sort();
            return Err(NodeError::OriginConflict { stream: stream.to_owned(), origins });
        }
        match pulled? {
            Some(local) => Ok(Some(local)),
            None => match self.rank_described(wanted, excluded, late, None)? {
                Some((ranked, origin)) => {
                    self.pull_first(wanted, excluded, ranked, Some(origin), deadline, attempt).await
                }
                None => Ok(None),
            },
        }
    }

    /// The `described` providers ranked by cost, and their origin (the pinned
    /// one, or the only one they name); `None` when none is left. Errors when
    /// they name two origins and none is pinned. Ranked by `costs` if given,
    /// else by the RTTs and loads the swarm task has now.
    fn rank_described(
        self: &Arc<Self>,
        wanted: &StreamRef,
        excluded: &[PeerId],
        described: Vec<describe::Described>,
        costs: Option<&PeerCosts>,
    ) -> Result<Option<(Vec<PeerId>, PeerId)>, NodeError> {
        let stream = wanted.id.as_str();
        let found = match describe::found_with(self, wanted, described, costs) {
            Ok(found) => found,
            Err(NodeError::NotFound(_)) => return Ok(None),
            Err(error) => return Err(error),
        };
        let origin = match (wanted.origin, found.origins.as_slice()) {
            (Some(origin), _) => origin,
            (None, [only]) => only.parse().map_err(|_| NodeError::NotFound(stream.to_owned()))?,
            (None, _) => return Err(NodeError::OriginConflict { stream: stream.to_owned(), origins: found.origins }),
        };
        Ok(Some((self.rank(found.providers, excluded), origin)))
    }

    /// Pipes `wanted` from the provider that `offered` to with its
    /// description (through this node's end it was offered for), or, when
    /// there is no such offer or it does not check out, from the `ranked`
    /// providers as [`Inner::pull_first`] does.
    #[allow(clippy::too_many_arguments)]
    async fn pull_offered_or_first(
        self: &Arc<Self>,
        wanted: &StreamRef,
        excluded: &[PeerId],
        ranked: Vec<PeerId>,
        origin: PeerId,
        offered: Option<(PeerId, crate::streams::PipeOffer)>,
        deadline: tokio::time::Instant,
        attempt: &mut Attempt,
    ) -> Result<Option<LocalStream>, NodeError> {
        let stream = wanted.id.as_str();
        if let Some((peer, offer)) = offered {
            attempt.tried.insert(peer);
            let pulled = match attempt.end.take() {
                Some(end) => crate::pipes::pull_offered(self, stream, peer, Some(origin), end, offer).await,
                None => Err(NodeError::InvalidInput("no end of a pipe for the offer".into())),
            };
            match pulled {
                Ok(local) => return Ok(Some(local)),
                Err(error) => {
                    warn!(stream, %peer, %error, "the origin's pipe made with its description is not used");
                    attempt.reasons.push(format!("{peer}: {error}"));
                    crate::pipes::tell_unpipe(self, stream, peer).await;
                }
            }
        }
        self.pull_first(wanted, excluded, ranked, Some(origin), deadline, attempt).await
    }

    /// Asks the `ranked` providers to pipe `wanted`, in turn, until one does
    /// (busy ones name others, tried next); `None` when none did.
    async fn pull_first(
        self: &Arc<Self>,
        wanted: &StreamRef,
        excluded: &[PeerId],
        ranked: Vec<PeerId>,
        mut origin: Option<PeerId>,
        deadline: tokio::time::Instant,
        attempt: &mut Attempt,
    ) -> Result<Option<LocalStream>, NodeError> {
        let stream = wanted.id.as_str();
        let me = self.swarm.peer_id();
        let mut queue: std::collections::VecDeque<PeerId> = ranked.into();
        // The origin (or provider) of the stream, when a provider was behind NAT.
        let mut behind_nat = None;
        while let Some(peer) = queue.pop_front() {
            if !attempt.tried.insert(peer) || peer == me || excluded.contains(&peer) {
                continue;
            }
            if attempt.tried.len() > MAX_PULL_ATTEMPTS {
                attempt.reasons.push(format!("gave up after {MAX_PULL_ATTEMPTS} providers"));
                break;
            }
            let pulled = match attempt.end.take() {
                Some(end) => crate::pipes::pull_into(self, stream, peer, origin, end).await,
                None => crate::pipes::pull(self, stream, peer, origin).await,
            };
            match pulled {
                Ok(local) => return Ok(Some(local)),
                Err(NodeError::Busy { alternatives }) => {
                    info!(stream, %peer, ?alternatives, "provider busy; trying the relays it named");
                    attempt.reasons.push(format!("{peer}: busy"));
                    if origin.is_none() {
                        // Asked at once, the only provider told us nothing about
                        // its origin: pin it before its relays are asked, so none
                        // can offer another origin's stream under this id.
                        origin = self.origin_of(wanted, peer, deadline).await;
                        if origin.is_none() {
                            continue;
                        }
                    }
                    for alternative in alternatives.iter().filter_map(|a| a.parse::<PeerId>().ok()).rev() {
                        queue.push_front(alternative);
                    }
                }
                Err(NodeError::BehindNat(_)) => {
                    info!(stream, %peer, "provider behind NAT, as this node is");
                    attempt.reasons.push(format!("{peer}: behind NAT"));
                    behind_nat.get_or_insert(origin.unwrap_or(peer));
                }
                Err(error) => {
                    warn!(stream, %peer, %error, "provider could not pipe the stream");
                    // The list names the provider; its refusal need not again.
                    let why = match &error {
                        NodeError::PipeRefused { source, .. } => source.to_string(),
                        other => other.to_string(),
                    };
                    attempt.reasons.push(format!("{peer}: {why}"));
                }
            }
        }
        match behind_nat {
            Some(origin) => self.pull_through_relays(stream, origin, attempt).await,
            None => Ok(None),
        }
    }

    /// Both this node and the stream's providers are behind NAT: asks the
    /// reachable nodes holding a relay slot for this node to fetch `stream`
    /// of `origin` and pipe it here, in turn.
    async fn pull_through_relays(
        self: &Arc<Self>,
        stream: &str,
        origin: PeerId,
        attempt: &mut Attempt,
    ) -> Result<Option<LocalStream>, NodeError> {
        let relays = self.swarm.reachability().await.map(|status| status.relays()).unwrap_or_default();
        for relay in relays {
            match crate::pipes::pull_through(self, stream, relay, origin).await {
                Ok(local) => {
                    info!(stream, %relay, %origin, "piped through a reachable node");
                    return Ok(Some(local));
                }
                Err(error) => {
                    warn!(stream, %relay, %error, "a reachable node could not fetch the stream");
                    attempt.reasons.push(format!("{relay} (relay): {error}"));
                }
            }
        }
        Ok(None)
    }
}
