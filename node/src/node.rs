//! A running node: publish, find and consume streams by id.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use mafalda_media::mediasoup::prelude::{ProducerOptions, Transport};
use mafalda_media::transports::plain_ingest;
use mafalda_media::{MediaEngine, PlainEgress, SpanningRouter};
use mafalda_swarm::{InboundCall, Multiaddr, PeerId, StartedSwarm, SwarmEvent, SwarmHandle, stream_key};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::codecs::{TrackSpec, TrackSummary, router_codecs};
use crate::cost::Candidate;
use crate::events::{EVENT_BUFFER, EgressStatus, NodeEvent};
use crate::streams::{LocalStream, Role, StreamDescription, StreamRef, validate_stream_id, version_now};
use crate::{NodeConfig, NodeError, remote};

/// A provider of a stream as seen from this node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderInfo {
    /// The provider.
    pub peer: String,
    /// The origin whose signed record the provider holds.
    pub origin: String,
    /// Its hops from the origin.
    pub hops: u32,
    /// Latest ping RTT to it, in ms (0 for this node itself).
    pub rtt_ms: Option<f64>,
    /// Its gossiped load, 0–1.
    pub load: Option<f64>,
    /// Peer ids from the origin to it.
    pub path: Vec<String>,
}

/// A stream found in the swarm: what it carries and who provides it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FoundStream {
    /// The stream id.
    pub stream: String,
    /// The origins whose signed records the providers hold: one, unless
    /// several nodes published under this id (then consuming needs the
    /// id pinned as `ID@PEERID`).
    pub origins: Vec<String>,
    /// Its tracks, as the first provider that answered describes them.
    pub tracks: Vec<TrackSummary>,
    /// The providers that answered, with their hops, RTT and load.
    pub providers: Vec<ProviderInfo>,
}

/// A stream this node holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamStatus {
    /// The stream id.
    pub stream: String,
    /// The peer it is piped from, or none at the origin.
    pub upstream: Option<String>,
    /// The origin's peer id (whose signed record this node holds).
    pub origin: String,
    /// Hops from the origin.
    pub hops: u32,
    /// Peer ids from the origin to this node.
    pub path: Vec<String>,
    /// Peers this node pipes the stream to.
    pub downstream: Vec<String>,
    /// What consumes the stream here: egresses, WebRTC consumers and pipes
    /// to downstream peers (a relay with none lets the stream go after
    /// its linger).
    pub local_consumers: usize,
}

/// A stream being sent out as RTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Egress {
    /// Id to stop it with.
    pub id: String,
    /// What the node sends.
    pub tracks: Vec<TrackSummary>,
    /// Peer ids from the origin to this node.
    pub path: Vec<String>,
    /// An SDP describing what arrives at the destination, for receivers such
    /// as `ffmpeg -protocol_whitelist file,udp,rtp -i egress.sdp`.
    pub sdp: String,
}

/// An egress: where a stream's RTP goes, and the consumers sending it.
pub(crate) struct EgressRecord {
    stream: String,
    destination: SocketAddr,
    /// Per-track destination ports, when the app asked for them.
    track_ports: Option<Vec<u16>>,
    tracks: Vec<TrackSummary>,
    path: Vec<String>,
    /// Held so they keep sending; dropping the record closes them.
    _consumers: Vec<PlainEgress>,
}

pub(crate) struct Inner {
    pub(crate) config: NodeConfig,
    pub(crate) swarm: SwarmHandle,
    pub(crate) media: MediaEngine,
    pub(crate) router: SpanningRouter,
    pub(crate) metrics: crate::metrics::NodeMetrics,
    pub(crate) streams: Mutex<HashMap<String, LocalStream>>,
    egresses: Mutex<HashMap<String, EgressRecord>>,
    /// Open WebRTC consumers per stream (the app connections own them).
    pub(crate) webrtc_consumers: Mutex<HashMap<String, usize>>,
    /// One lock per stream being pulled, so concurrent consumes share one pipe.
    pulling: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    next_egress: std::sync::atomic::AtomicU64,
    events: broadcast::Sender<NodeEvent>,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running node. Stop it with [`Node::shutdown`].
pub struct Node {
    pub(crate) inner: Arc<Inner>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("peer", &self.inner.swarm.peer_id()).finish_non_exhaustive()
    }
}

impl Node {
    /// Starts the mediasoup workers, then the swarm, then serving peers' calls.
    pub async fn start(config: NodeConfig) -> Result<Self, NodeError> {
        let media = MediaEngine::start(config.media.clone()).await?;
        let router = match SpanningRouter::new(media.clone(), "node", router_codecs()).await {
            Ok(router) => router,
            Err(error) => {
                media.close().await;
                return Err(error.into());
            }
        };
        let StartedSwarm { handle: swarm, events, calls } = match mafalda_swarm::start(config.swarm.clone()).await {
            Ok(started) => started,
            Err(error) => {
                drop(router);
                media.close().await;
                return Err(error.into());
            }
        };
        info!(peer = %swarm.peer_id(), workers = media.workers().len(), "node started");
        let inner = Arc::new(Inner {
            config,
            swarm,
            media,
            router,
            metrics: crate::metrics::NodeMetrics::default(),
            streams: Mutex::default(),
            egresses: Mutex::default(),
            webrtc_consumers: Mutex::default(),
            pulling: Mutex::default(),
            next_egress: std::sync::atomic::AtomicU64::new(1),
            events: broadcast::channel(EVENT_BUFFER).0,
        });
        let tasks = vec![
            tokio::spawn(watch_swarm(Arc::clone(&inner), events)),
            tokio::spawn(serve_calls(Arc::clone(&inner), calls)),
            tokio::spawn(report_load(Arc::clone(&inner))),
            tokio::spawn(release_idle_relays(Arc::clone(&inner))),
        ];
        Ok(Self { inner, tasks })
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.inner.swarm.peer_id()
    }

    /// The addresses the node listens on, each ending in `/p2p/<peer id>` so it can
    /// be given to another node as a bootstrap address as is.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NodeError> {
        let peer = self.peer_id();
        let addrs = self.inner.swarm.listen_addrs().await?;
        Ok(addrs.into_iter().map(|addr| addr.with_p2p(peer).unwrap_or_else(|addr| addr)).collect())
    }

    /// The swarm handle, for callers that talk to peers directly.
    pub fn swarm(&self) -> &SwarmHandle {
        &self.inner.swarm
    }

    /// The media engine.
    pub fn media(&self) -> &MediaEngine {
        &self.inner.media
    }

    /// Adds the node's counters and histograms (ROPE calls, find latency) to `registry`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.inner.metrics.register(registry);
    }

    /// Publishes `stream` from plain RTP: returns the address to send RTP to
    /// (the first sender is taken as the source), and provides the stream.
    pub async fn publish_rtp(&self, stream: &str, tracks: Vec<TrackSpec>) -> Result<SocketAddr, NodeError> {
        self.publish_rtp_from(stream, tracks, None).await
    }

    /// Like [`Node::publish_rtp`]; with `source`, the ingest takes packets
    /// from that address only, so nobody else can take the publication over
    /// by sending first.
    pub async fn publish_rtp_from(
        &self,
        stream: &str,
        tracks: Vec<TrackSpec>,
        source: Option<SocketAddr>,
    ) -> Result<SocketAddr, NodeError> {
        validate_stream_id(stream)?;
        if source.is_some_and(|s| s.port() == 0 || s.ip().is_unspecified()) {
            return Err(NodeError::InvalidInput("source must be a concrete IP:PORT".into()));
        }
        if tracks.is_empty() || tracks.len() > 8 {
            return Err(NodeError::InvalidInput("a publication has 1 to 8 tracks".into()));
        }
        let parameters = tracks.iter().map(TrackSpec::rtp_parameters).collect::<Result<Vec<_>, _>>()?;
        if lock(&self.inner.streams).contains_key(stream) {
            return Err(NodeError::AlreadyPublished(stream.to_owned()));
        }
        let router = self.inner.router.ingest_router().await?;
        let (ingest, addr) = plain_ingest(&router, self.inner.config.media_ip, source).await?;
        let mut producers = Vec::new();
        for (spec, rtp_parameters) in tracks.iter().zip(parameters) {
            let producer = ingest
                .produce(ProducerOptions::new(spec.kind, rtp_parameters))
                .await
                .map_err(|e| NodeError::InvalidInput(format!("track rejected: {e}")))?;
            self.inner.router.register_producer(&producer, &router);
            producers.push(producer);
        }
        let keypair = &self.inner.config.swarm.keypair;
        let local = LocalStream::originate(keypair, stream, version_now(), producers, Some(Box::new(ingest)))?;
        {
            let mut streams = lock(&self.inner.streams);
            if streams.contains_key(stream) {
                return Err(NodeError::AlreadyPublished(stream.to_owned()));
            }
            self.inner.emit(NodeEvent::StreamHeld { status: self.inner.status_of(stream, &local) });
            streams.insert(stream.to_owned(), local);
        }
        self.inner.announce(stream).await;
        info!(stream, %addr, ?source, "published");
        Ok(addr)
    }

    /// The streams this node holds, as origin or relay.
    pub fn streams(&self) -> Vec<StreamStatus> {
        let mut streams: Vec<StreamStatus> =
            lock(&self.inner.streams).iter().map(|(stream, local)| self.inner.status_of(stream, local)).collect();
        streams.sort_by(|a, b| a.stream.cmp(&b.stream));
        streams
    }

    /// Stops a publication (or a relayed stream) here, withdraws it, and tells
    /// the nodes it was piped to, which do the same.
    pub async fn unpublish(&self, stream: &str) -> Result<(), NodeError> {
        if self.inner.end_stream(stream).await { Ok(()) } else { Err(NodeError::NotFound(stream.to_owned())) }
    }

    /// The providers of `stream` that answer, with their hops, RTT and load.
    pub async fn find(&self, stream: &str) -> Result<Vec<ProviderInfo>, NodeError> {
        Ok(self.find_stream(stream).await?.providers)
    }

    /// Finds `stream`: its tracks and the providers that answer.
    /// `stream` is an id, or `ID@PEERID` to see only that origin's stream.
    pub async fn find_stream(&self, stream: &str) -> Result<FoundStream, NodeError> {
        remote::find(&self.inner, &StreamRef::parse(stream)?).await
    }

    /// Sends `stream` as RTP to `destination`: locally if this node holds it,
    /// else after piping it here from the cheapest provider. `stream` may pin
    /// its origin as `ID@PEERID`.
    pub async fn consume_rtp(&self, stream: &str, destination: SocketAddr) -> Result<Egress, NodeError> {
        self.consume_rtp_to_ports(stream, destination, None).await
    }

    /// Like [`Node::consume_rtp`], sending track `i` to port `track_ports[i]` of
    /// the destination's IP (one port per track, as ffmpeg and GStreamer expect
    /// from an SDP) when `track_ports` is given.
    pub async fn consume_rtp_to_ports(
        &self,
        stream: &str,
        destination: SocketAddr,
        track_ports: Option<Vec<u16>>,
    ) -> Result<Egress, NodeError> {
        let wanted = StreamRef::parse(stream)?;
        if track_ports.as_ref().is_some_and(|ports| ports.is_empty() || ports.contains(&0)) {
            return Err(NodeError::InvalidInput("track ports must be 1-65535, one per track".into()));
        }
        self.inner.ensure_local(&wanted).await?;
        let id = format!("egress-{}", self.inner.next_egress.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        self.inner.open_egress(&id, &wanted.id, destination, track_ports).await
    }

    /// How many egresses are running.
    pub fn egress_count(&self) -> usize {
        lock(&self.inner.egresses).len()
    }

    /// The egresses running, by id.
    pub fn egresses(&self) -> Vec<EgressStatus> {
        let mut egresses: Vec<EgressStatus> =
            lock(&self.inner.egresses).iter().map(|(id, record)| record.status(id)).collect();
        egresses.sort_by(|a, b| a.id.cmp(&b.id));
        egresses
    }

    /// Stops an egress.
    pub fn stop_egress(&self, id: &str) -> Result<(), NodeError> {
        // Dropping the record closes its transports and consumers.
        let record = lock(&self.inner.egresses).remove(id).ok_or_else(|| NodeError::NotFound(id.to_owned()))?;
        self.inner.emit(NodeEvent::EgressClosed { id: id.to_owned(), stream: record.stream, reason: "stopped".into() });
        Ok(())
    }

    /// Changes from now on: streams held and ended, egresses opened, re-opened
    /// and closed. A receiver that falls more than a few hundred events behind
    /// gets `Lagged` and should re-read [`Node::streams`] and [`Node::egresses`].
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.inner.events.subscribe()
    }

    /// Stops serving peers, closes the swarm, then the media objects and workers.
    pub async fn shutdown(self) {
        let Self { inner, tasks } = self;
        for task in tasks {
            task.abort();
        }
        if let Err(error) = inner.swarm.shutdown().await {
            debug!(%error, "swarm already stopped");
        }
        lock(&inner.egresses).clear();
        lock(&inner.streams).clear();
        let media = inner.media.clone();
        drop(inner);
        media.close().await;
        info!("node stopped");
    }
}

impl Inner {
    /// Whether this node holds `wanted` (of the pinned origin, if pinned).
    fn holds(&self, wanted: &StreamRef) -> Result<bool, NodeError> {
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
    pub(crate) async fn ensure_local(self: &Arc<Self>, wanted: &StreamRef) -> Result<(), NodeError> {
        let stream = wanted.id.as_str();
        if self.holds(wanted)? {
            return Ok(());
        }
        let gate = Arc::clone(lock(&self.pulling).entry(stream.to_owned()).or_default());
        let _pulling = gate.lock().await;
        if self.holds(wanted)? {
            return Ok(()); // another consume pulled it meanwhile
        }
        let found = remote::find(self, wanted).await?;
        let origin = match (wanted.origin, found.origins.as_slice()) {
            (Some(origin), _) => origin,
            (None, [only]) => only.parse().map_err(|_| NodeError::NotFound(stream.to_owned()))?,
            (None, _) => return Err(NodeError::OriginConflict { stream: stream.to_owned(), origins: found.origins }),
        };
        let providers = found.providers;
        let me = self.swarm.peer_id().to_string();
        let candidates: Vec<Candidate> = providers
            .iter()
            .filter(|p| p.peer != me)
            .filter_map(|p| {
                let peer: PeerId = p.peer.parse().ok()?;
                let delay = self.config.link_delay.get(&peer).copied().unwrap_or_default();
                Some(Candidate {
                    peer,
                    hops: p.hops,
                    rtt: p.rtt_ms.map(|ms| Duration::from_secs_f64(ms / 1000.0) + delay),
                    load: p.load,
                })
            })
            .collect();
        let mut reasons = Vec::new();
        let mut queue: std::collections::VecDeque<PeerId> =
            self.config.cost.rank(candidates).into_iter().map(|c| c.peer).collect();
        let mut tried = std::collections::HashSet::new();
        while let Some(peer) = queue.pop_front() {
            if !tried.insert(peer) || peer == self.swarm.peer_id() {
                continue;
            }
            if tried.len() > MAX_PULL_ATTEMPTS {
                reasons.push(format!("gave up after {MAX_PULL_ATTEMPTS} providers"));
                break;
            }
            match crate::pipes::pull(self, stream, peer, Some(origin)).await {
                Ok(()) => {
                    if let Some(local) = lock(&self.streams).get(stream) {
                        self.emit(NodeEvent::StreamHeld { status: self.status_of(stream, local) });
                    }
                    self.announce(stream).await;
                    return Ok(());
                }
                Err(NodeError::Busy { alternatives }) => {
                    info!(stream, %peer, ?alternatives, "provider busy; trying the relays it named");
                    reasons.push(format!("{peer}: busy"));
                    for alternative in alternatives.iter().filter_map(|a| a.parse::<PeerId>().ok()).rev() {
                        queue.push_front(alternative);
                    }
                }
                Err(error) => {
                    warn!(stream, %peer, %error, "provider could not pipe the stream");
                    reasons.push(format!("{peer}: {error}"));
                }
            }
        }
        if reasons.is_empty() {
            return Err(NodeError::NotFound(stream.to_owned()));
        }
        Err(NodeError::NoProvider { stream: stream.to_owned(), reasons: reasons.join("; ") })
    }

    /// Sends `stream`'s tracks to `destination` under egress `id`.
    pub(crate) async fn open_egress(
        &self,
        id: &str,
        stream: &str,
        destination: SocketAddr,
        track_ports: Option<Vec<u16>>,
    ) -> Result<Egress, NodeError> {
        let (producer_ids, path) = {
            let streams = lock(&self.streams);
            let local = streams.get(stream).ok_or_else(|| NodeError::NotFound(stream.to_owned()))?;
            (local.producers.iter().map(|p| p.id()).collect::<Vec<_>>(), local.path())
        };
        let mut consumers = Vec::new();
        let mut tracks = Vec::new();
        for producer_id in producer_ids {
            let port = match &track_ports {
                Some(ports) => *ports.get(consumers.len()).ok_or_else(|| {
                    NodeError::InvalidInput(format!(
                        "stream {stream} has more tracks than the {} ports given",
                        ports.len()
                    ))
                })?,
                None => destination.port(),
            };
            let target = SocketAddr::new(destination.ip(), port);
            let egress = self.router.consume_plain(producer_id, self.config.media_ip, target).await?;
            tracks.push(TrackSummary::of(egress.consumer.kind(), egress.consumer.rtp_parameters()));
            consumers.push(egress);
        }
        let record = EgressRecord {
            stream: stream.to_owned(),
            destination,
            track_ports: track_ports.clone(),
            tracks: tracks.clone(),
            path: path.clone(),
            _consumers: consumers,
        };
        let ports: Vec<u16> = (0..tracks.len())
            .map(|i| track_ports.as_ref().and_then(|p| p.get(i).copied()).unwrap_or(destination.port()))
            .collect();
        let sdp = crate::codecs::receiver_sdp(stream, destination.ip(), &tracks, &ports);
        self.emit(NodeEvent::EgressOpened { egress: record.status(id) });
        lock(&self.egresses).insert(id.to_owned(), record);
        Ok(Egress { id: id.to_owned(), tracks, path, sdp })
    }

    /// How many egresses send `stream`.
    pub(crate) fn egress_count_of(&self, stream: &str) -> usize {
        lock(&self.egresses).values().filter(|record| record.stream == stream).count()
    }

    /// Provides `stream` in the DHT. When no peer stored the record (a busy or
    /// still-forming swarm), tries again in the background after 1, 2, 4, 8
    /// and 16 s while the stream is held, rather than waiting minutes for
    /// Kademlia's next republication.
    pub(crate) async fn announce(self: &Arc<Self>, stream: &str) {
        if matches!(self.swarm.provide(stream_key(stream)).await, Ok(stored) if stored > 0) {
            return;
        }
        // Weak: a node shutting down must not be kept alive by its retries.
        let weak = Arc::downgrade(self);
        let stream = stream.to_owned();
        tokio::spawn(async move {
            for delay in [1, 2, 4, 8, 16] {
                tokio::time::sleep(Duration::from_secs(delay)).await;
                let Some(inner) = weak.upgrade() else { return };
                if !lock(&inner.streams).contains_key(&stream) {
                    return;
                }
                match inner.swarm.provide(stream_key(&stream)).await {
                    Ok(stored) if stored > 0 => return debug!(stream, stored, "provider record stored on retry"),
                    Ok(_) => debug!(stream, "no peer stored the provider record yet"),
                    Err(error) => debug!(stream, %error, "provider announcement failed"),
                }
            }
            warn!(stream, "no peer stored the provider record; Kademlia republishes it later");
        });
    }

    /// Tells the apps; nobody listening is fine.
    pub(crate) fn emit(&self, event: NodeEvent) {
        let _ = self.events.send(event);
    }

    /// The upstream of `stream` is gone: pipe it again from another provider and
    /// restart its egresses; if no provider is left, end it here.
    /// `attempts` bounds how often it looks for another provider (with 1, 2,
    /// 4 s pauses): a dead upstream's neighbours may be slow to answer on a
    /// busy swarm, and one failed lookup should not end the stream downstream.
    pub(crate) async fn heal(self: &Arc<Self>, stream: &str, lost: PeerId, attempts: u32) {
        let removed = {
            let mut streams = lock(&self.streams);
            let relayed_from_lost = streams.get(stream).is_some_and(|l| l.role == Role::Relay { upstream: lost });
            if relayed_from_lost { streams.remove(stream) } else { None }
        };
        let Some(local) = removed else { return };
        let downstream: Vec<PeerId> = local.pipes.keys().copied().collect();
        // Heal from the same origin only: a lost upstream is no reason to
        // accept another node's stream under this id.
        let wanted = StreamRef { id: stream.to_owned(), origin: Some(local.verified.origin) };
        drop(local);
        let started = std::time::Instant::now();
        let mut outcome = self.ensure_local(&wanted).await;
        for pause in [1, 2, 4].into_iter().take(attempts.saturating_sub(1) as usize) {
            let Err(error) = &outcome else { break };
            info!(stream, %error, retry_in_s = pause, "no provider yet; looking again");
            tokio::time::sleep(Duration::from_secs(pause)).await;
            outcome = self.ensure_local(&wanted).await;
        }
        match outcome {
            Ok(()) => {
                let egresses: Vec<(String, SocketAddr, Option<Vec<u16>>)> = lock(&self.egresses)
                    .iter()
                    .filter(|(_, record)| record.stream == stream)
                    .map(|(id, record)| (id.clone(), record.destination, record.track_ports.clone()))
                    .collect();
                for (id, destination, track_ports) in egresses {
                    if let Err(error) = self.open_egress(&id, stream, destination, track_ports).await {
                        warn!(stream, egress = %id, %error, "could not restart an egress");
                        lock(&self.egresses).remove(&id);
                        let reason = format!("could not restart after a re-pipe: {error}");
                        self.emit(NodeEvent::EgressClosed { id, stream: stream.to_owned(), reason });
                    }
                }
                info!(stream, lost = %lost, took = ?started.elapsed(), "stream re-piped from another provider");
            }
            Err(error) => {
                warn!(stream, lost = %lost, %error, "no other provider; ending the stream here");
                self.withdraw(stream).await;
            }
        }
        // Downstream pipes came from the old producers: let them re-pipe too.
        self.tell_downstream(stream, downstream);
    }

    /// Drops `stream`'s egresses and stops providing it.
    async fn withdraw(&self, stream: &str) {
        let closed: Vec<String> = {
            let mut egresses = lock(&self.egresses);
            let ids: Vec<String> =
                egresses.iter().filter(|(_, record)| record.stream == stream).map(|(id, _)| id.clone()).collect();
            for id in &ids {
                egresses.remove(id);
            }
            ids
        };
        for id in closed {
            self.emit(NodeEvent::EgressClosed { id, stream: stream.to_owned(), reason: "stream ended".into() });
        }
        self.emit(NodeEvent::StreamEnded { stream: stream.to_owned() });
        if let Err(error) = self.swarm.stop_providing(stream_key(stream)).await {
            debug!(stream, %error, "could not stop providing");
        }
    }

    /// Tells each downstream peer that `stream` ended here (in the background).
    fn tell_downstream(self: &Arc<Self>, stream: &str, downstream: Vec<PeerId>) {
        for peer in downstream {
            let inner = Arc::clone(self);
            let stream = stream.to_owned();
            tokio::spawn(async move { remote::tell_closed(&inner, &stream, peer).await });
        }
    }

    /// Ends `stream` here: closes its producers (and so every consumer of them),
    /// stops providing it, and tells its downstream peers. False if not held.
    pub(crate) async fn end_stream(self: &Arc<Self>, stream: &str) -> bool {
        let Some(local) = lock(&self.streams).remove(stream) else { return false };
        info!(stream, downstream = local.pipes.len(), "stream ended here");
        let downstream: Vec<PeerId> = local.pipes.keys().copied().collect();
        let upstream = match local.role {
            Role::Relay { upstream } => Some(upstream),
            Role::Origin => None,
        };
        drop(local);
        self.withdraw(stream).await;
        self.tell_downstream(stream, downstream);
        if let Some(upstream) = upstream {
            // Done with the upstream's pipe: it can close it now rather than
            // keep sending until the stream ends there.
            let inner = Arc::clone(self);
            let stream = stream.to_owned();
            tokio::spawn(async move { crate::pipes::tell_unpipe(&inner, &stream, upstream).await });
        }
        true
    }

    /// Heals every stream whose upstream is `peer` (it left or died).
    pub(crate) async fn upstream_lost(self: &Arc<Self>, peer: PeerId) {
        let lost: Vec<String> = lock(&self.streams)
            .iter()
            .filter(|(_, local)| local.role == Role::Relay { upstream: peer })
            .map(|(stream, _)| stream.clone())
            .collect();
        for stream in lost {
            warn!(%stream, upstream = %peer, "upstream gone; looking for another provider");
            let inner = Arc::clone(self);
            tokio::spawn(async move { inner.heal(&stream, peer, HEAL_ATTEMPTS_AFTER_DEATH).await });
        }
    }

    /// The description of a stream held here.
    pub(crate) fn describe(&self, stream: &str) -> Option<StreamDescription> {
        lock(&self.streams).get(stream).map(|local| local.describe(stream))
    }
}

async fn serve_calls(inner: Arc<Inner>, mut calls: mpsc::Receiver<InboundCall>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(64));
    while let Some(call) = calls.recv().await {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { return };
        let inner = Arc::clone(&inner);
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let outcome = remote::handle(&inner, call.peer, call.remote_ip, &call.request).await;
            inner.metrics.call(&call.request.method, "in", outcome.is_ok(), started.elapsed().as_secs_f64());
            let _ = call.respond(outcome).await;
            drop(permit);
        });
    }
}

/// Most providers one consume tries (busy ones name others to try).
const MAX_PULL_ATTEMPTS: usize = 16;

/// Lookups for another provider when the upstream died (1 when told the
/// stream closed upstream: that is news, not a glitch).
pub(crate) const HEAL_ATTEMPTS_AFTER_DEATH: u32 = 4;

/// How often the node samples its load.
const LOAD_SAMPLE_INTERVAL: Duration = Duration::from_secs(2);
/// Longest time between two load reports, even when nothing changed (well
/// under the swarm's load report TTL, so a live node never ages out).
const LOAD_REPORT_HEARTBEAT: Duration = Duration::from_secs(10);
/// A change in mean worker CPU (percentage points) worth reporting at once.
const LOAD_CPU_CHANGE: f32 = 5.0;

/// Samples this node's load (per-worker CPU and objects) every interval and
/// gossips it when it changed noticeably or the heartbeat is due (reporting
/// every sample made gossip traffic grow with the swarm's size squared); also
/// closes workers that stayed idle past their grace period.
/// How often relays with no local consumer are checked.
const RELEASE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Lets go of relayed streams nobody here consumes (see `release`).
async fn release_idle_relays(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(RELEASE_CHECK_INTERVAL);
    let mut linger = crate::release::Linger::default();
    loop {
        tick.tick().await;
        inner.release_idle_relays(&mut linger, std::time::Instant::now()).await;
    }
}

async fn report_load(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(LOAD_SAMPLE_INTERVAL);
    let mut last: Option<(std::time::Instant, mafalda_swarm::LoadReport)> = None;
    loop {
        tick.tick().await;
        inner.media.sample_cpu();
        inner.media.reap_idle(std::time::Instant::now());
        let mut report = mafalda_swarm::LoadReport::new(inner.swarm.peer_id());
        let status = inner.media.status();
        report.workers = status
            .iter()
            .map(|w| mafalda_swarm::WorkerLoad {
                cpu_percent: w.cpu_percent,
                routers: w.objects.routers,
                transports: w.objects.transports,
                producers: w.objects.producers,
                consumers: w.objects.consumers,
            })
            .collect();
        report.capacity = u32::try_from(inner.config.media.workers)
            .unwrap_or(u32::MAX)
            .saturating_mul(inner.config.media.placement.consumer_capacity);
        report.streams_provided = u32::try_from(lock(&inner.streams).len()).unwrap_or(u32::MAX);
        let due = last
            .as_ref()
            .is_none_or(|(at, previous)| at.elapsed() >= LOAD_REPORT_HEARTBEAT || load_changed(previous, &report));
        if !due {
            continue;
        }
        match inner.swarm.publish_load(report.clone()).await {
            Ok(()) => last = Some((std::time::Instant::now(), report)),
            // No subscribed peer yet is normal for a lone node.
            Err(error) => debug!(%error, "load report not published"),
        }
    }
}

/// Whether `now` differs enough from the last report to tell the swarm at once.
fn load_changed(previous: &mafalda_swarm::LoadReport, now: &mafalda_swarm::LoadReport) -> bool {
    let consumers = |r: &mafalda_swarm::LoadReport| r.workers.iter().map(|w| w.consumers).sum::<u32>();
    (previous.mean_cpu_percent() - now.mean_cpu_percent()).abs() >= LOAD_CPU_CHANGE
        || consumers(previous) != consumers(now)
        || previous.workers.len() != now.workers.len()
        || previous.streams_provided != now.streams_provided
}

async fn watch_swarm(inner: Arc<Inner>, mut events: mpsc::Receiver<SwarmEvent>) {
    while let Some(event) = events.recv().await {
        match event {
            SwarmEvent::PeerConnected { peer, addr } => info!(%peer, %addr, "peer connected"),
            SwarmEvent::PeerDisconnected { peer } => {
                info!(%peer, "peer disconnected");
                // Nothing keeps sending to a peer that is gone.
                inner.release_peer(peer);
                inner.upstream_lost(peer).await;
            }
            SwarmEvent::PingRtt { peer, rtt } => debug!(%peer, ?rtt, "ping"),
            other => debug!(?other, "swarm event"),
        }
    }
}

impl Inner {
    /// What `local` looks like from outside (the caller may hold the streams lock).
    pub(crate) fn status_of(&self, stream: &str, local: &LocalStream) -> StreamStatus {
        let webrtc = lock(&self.webrtc_consumers).get(stream).copied().unwrap_or(0);
        StreamStatus {
            local_consumers: self.egress_count_of(stream) + webrtc + local.pipes.len(),
            stream: stream.to_owned(),
            upstream: match &local.role {
                Role::Origin => None,
                Role::Relay { upstream } => Some(upstream.to_string()),
            },
            origin: local.verified.origin.to_string(),
            hops: local.hops(),
            path: local.path(),
            downstream: {
                let mut peers: Vec<String> = local.pipes.keys().map(ToString::to_string).collect();
                peers.sort();
                peers
            },
        }
    }
}

impl EgressRecord {
    fn status(&self, id: &str) -> EgressStatus {
        EgressStatus {
            id: id.to_owned(),
            stream: self.stream.clone(),
            destination: self.destination,
            tracks: self.tracks.clone(),
            path: self.path.clone(),
        }
    }
}
