//! The node's handle ([`Node`]): what apps call to publish, find and consume
//! streams by id, and the start and stop of everything a node runs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mafalda_media::mediasoup::prelude::{ProducerOptions, Transport};
use mafalda_media::transports::plain_ingest;
use mafalda_media::{MediaEngine, SpanningRouter};
use mafalda_swarm::{Multiaddr, PeerId, StartedSwarm, SwarmHandle};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tracing::{debug, info, warn};

use crate::codecs::{TrackSpec, TrackSummary, router_codecs};
use crate::events::{EVENT_BUFFER, EgressStatus, NodeEvent};
use crate::inner::{Inner, lock};
use crate::lifecycle::Tasks;
use crate::streams::{LocalStream, StreamRef, validate_stream_id, version_now};
use crate::{NodeConfig, NodeError, describe, remote};

/// How long [`Node::shutdown`] waits for the node's tasks to end.
const TASKS_GRACE: Duration = Duration::from_secs(1);

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
    /// Latest ping RTT to it, in ms (0 for this node itself); for one not
    /// pinged yet (just dialled), how long its description took to come.
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

/// Packets and bytes of one stream (received) or egress (sent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficCount {
    /// The stream or egress id.
    pub id: String,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// What the node's streams received and its egresses sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// Per held stream, received by its producers.
    pub streams: Vec<TrafficCount>,
    /// Per egress, sent.
    pub egresses: Vec<TrafficCount>,
    /// Per pipe this node feeds (`STREAM>PEER`), sent.
    pub pipes: Vec<TrafficCount>,
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

/// A running node: a cheap handle (clone it freely; every clone is the same
/// node). Stop it with [`Node::shutdown`]; its tasks end then, not when the
/// last handle is dropped.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("peer", &self.inner.swarm.peer_id()).finish_non_exhaustive()
    }
}

impl Node {
    /// Starts the mediasoup workers, then the swarm, then serving peers' calls.
    pub async fn start(config: NodeConfig) -> Result<Self, NodeError> {
        config.check_media_ips().map_err(NodeError::InvalidInput)?;
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
        let peer = swarm.peer_id();
        let short = peer.to_base58().chars().rev().take(6).collect::<Vec<_>>().into_iter().rev().collect::<String>();
        let span = tracing::info_span!("node", peer = %short);
        span.in_scope(|| info!(%peer, workers = media.workers().len(), "node started"));
        let config_app_media = config.app_media.clone();
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
            recent_finds: Mutex::default(),
            checked_signatures: crate::record::CheckedSignatures::default(),
            spare_pipes: Mutex::new(crate::spare_pipes::Spares::new(crate::spare_pipes::MAX_SPARE_PIPES)),
            asking_pairs: Mutex::default(),
            serving_pairs: Mutex::default(),
            next_egress: std::sync::atomic::AtomicU64::new(1),
            egresses_counted: Mutex::default(),
            events: broadcast::channel(EVENT_BUFFER).0,
            draining: std::sync::atomic::AtomicBool::new(false),
            drained: tokio::sync::watch::channel(false).0,
            tasks: Tasks::new(span),
            app_media: crate::app_media::AppMedia::new(config_app_media),
            rooms: crate::rooms::Rooms::new(),
            clients: std::sync::atomic::AtomicUsize::new(0),
            monitor: crate::monitor::Monitor::default(),
        });
        crate::peers_in_use::register(&inner).await;
        inner.spawn("watch swarm", crate::heal::watch_swarm(Arc::clone(&inner), events));
        inner.spawn("serve calls", remote::serve_calls(Arc::clone(&inner), calls));
        inner.spawn("report load", crate::load_report::report_load(Arc::clone(&inner)));
        inner.spawn("release relays", crate::release::release_idle_relays(Arc::clone(&inner)));
        inner.spawn("liveness", crate::liveness::watch_liveness(Arc::clone(&inner)));
        inner.spawn("rooms in sync", crate::rooms::sync::keep_in_sync(Arc::clone(&inner)));
        Ok(Self { inner })
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
        describe::find(&self.inner, &StreamRef::parse(stream)?).await
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
        // The egress's transport opens while the stream is fetched.
        let (announced, first_end) = tokio::join!(
            self.inner.ensure_local(&wanted),
            self.inner.open_first_egress_end(&wanted.id, destination, track_ports.as_deref())
        );
        let announced = announced?;
        let id = format!("egress-{}", self.inner.next_egress.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let egress = self.inner.open_egress(&id, &wanted.id, destination, track_ports, first_end).await;
        announced.done().await;
        egress
    }

    /// How many spare pipe transports this node holds, opened ahead of the
    /// next pipe it serves or pulls (at most one per router, [`crate::MAX_SPARE_PIPES`]
    /// in all). Mediasoup counts them among the workers' transports.
    pub fn spare_pipes(&self) -> usize {
        lock(&self.inner.spare_pipes).ready()
    }

    /// How many pipe transport pairs this node keeps open with its peers,
    /// each carrying every stream piped between the two on one router of
    /// this node: those it pipes streams in through, and out through.
    pub fn pipe_pairs(&self) -> crate::PipePairs {
        use crate::pipe_pairs::Side;
        crate::PipePairs { asking: self.inner.open_pairs(Side::Asking), serving: self.inner.open_pairs(Side::Serving) }
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

    /// Stops the node: cancels every task it runs and waits for them, closes
    /// the swarm, then every media object and worker. Other handles of the
    /// node (an app's connection, say) see a stopped node afterwards. A second
    /// call does nothing.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        if inner.tasks.is_stopping() {
            return;
        }
        let _span = inner.tasks.span().clone().entered();
        if !inner.tasks.stop(TASKS_GRACE).await {
            warn!(running = inner.tasks.running(), "some node tasks did not stop in time");
        }
        if let Err(error) = inner.swarm.shutdown().await {
            debug!(%error, "swarm already stopped");
        }
        // Dropped outside the locks: closing them calls into mediasoup.
        let egresses = std::mem::take(&mut *lock(&inner.egresses));
        let streams = std::mem::take(&mut *lock(&inner.streams));
        let spares = lock(&inner.spare_pipes).clear();
        drop((egresses, streams, spares));
        inner.app_media.hosting.close_all();
        inner.media.clone().close().await;
        info!("node stopped");
    }

    /// Drains the node: `/readyz` answers 503 from now on, it stops
    /// providing its streams, answers new pipe requests busy, asks every
    /// downstream peer to move to another provider before their pipe closes
    /// (make-before-break), ends its own publications downstream and closes
    /// its egresses (apps get [`NodeEvent::Draining`] first). Takes at most
    /// about the configured drain timeout. The node counts as draining from
    /// the call on, before the returned future is first polled; a second call
    /// waits for the first drain and reports nothing.
    pub fn drain(&self) -> impl std::future::Future<Output = crate::DrainReport> + Send + 'static {
        let first = !self.inner.draining.swap(true, std::sync::atomic::Ordering::AcqRel);
        let node = self.clone();
        async move {
            if !first {
                node.drained().await;
                return crate::DrainReport::default();
            }
            let report = node.inner.drain(node.inner.config.drain_timeout).await;
            node.inner.drained.send_replace(true);
            report
        }
    }

    /// Packets and bytes each held stream received (counted every half
    /// second) and each egress and downstream pipe sent (read now): a stream
    /// or egress that stays at the same count while its origin sends is not
    /// getting media.
    pub async fn traffic(&self) -> Traffic {
        self.inner.count_egresses().await;
        let mut streams: Vec<TrafficCount> = lock(&self.inner.streams)
            .iter()
            .map(|(id, local)| {
                let (packets, bytes) = local.received.get();
                TrafficCount { id: id.clone(), packets, bytes }
            })
            .collect();
        let mut egresses: Vec<TrafficCount> = lock(&self.inner.egresses)
            .iter()
            .map(|(id, record)| {
                let (packets, bytes) = record.sent.get();
                TrafficCount { id: id.clone(), packets, bytes }
            })
            .collect();
        let mut pipes: Vec<TrafficCount> = lock(&self.inner.streams)
            .iter()
            .flat_map(|(stream, local)| {
                local.pipes.iter().map(move |(peer, pipe)| {
                    let (packets, bytes) = pipe.sent.get();
                    TrafficCount { id: format!("{stream}>{peer}"), packets, bytes }
                })
            })
            .collect();
        streams.sort_by(|a, b| a.id.cmp(&b.id));
        egresses.sort_by(|a, b| a.id.cmp(&b.id));
        pipes.sort_by(|a, b| a.id.cmp(&b.id));
        Traffic { streams, egresses, pipes }
    }

    /// Pipes this node feeds other nodes through, over all streams.
    pub fn pipe_count(&self) -> usize {
        lock(&self.inner.streams).values().map(|local| local.pipes.len()).sum()
    }

    /// Room `room`'s spanning router here (its routers per worker and the
    /// pipes between them), if the node holds one.
    pub fn room_router(&self, room: &str) -> Option<mafalda_media::SpanningRouter> {
        self.inner.existing_room_router(room)
    }

    /// The rooms this node's apps are in, with the members and producers it knows.
    pub fn rooms(&self) -> Vec<crate::rooms::RoomStatus> {
        self.inner.room_statuses()
    }

    /// App sessions (Remote Mediasoup) this node hosts for other nodes' apps.
    pub fn hosted_app_sessions(&self) -> usize {
        self.inner.app_media.hosting.len()
    }

    /// Whether the node was given peers to join through.
    pub fn has_bootstrap(&self) -> bool {
        !self.inner.config.swarm.bootstrap.is_empty()
    }

    /// Retires a mediasoup worker: nothing new is placed on it, relayed
    /// streams and egresses on it move to other workers without a gap, and it
    /// closes once the last object on it is gone (a publication's ingest
    /// stays until the publication ends). Returns the streams and egresses
    /// moved, or `NotFound` for a worker the node does not run.
    pub async fn retire_worker(
        &self,
        worker: mafalda_media::mediasoup::worker::WorkerId,
    ) -> Result<(usize, usize), NodeError> {
        if !self.inner.media.retire(&worker) {
            return Err(NodeError::NotFound(format!("worker {worker}")));
        }
        Ok(self.inner.move_off_worker(worker).await)
    }

    /// Whether the node is draining or drained.
    pub fn is_draining(&self) -> bool {
        self.inner.is_draining()
    }

    /// Waits until a drain (started by anyone: a signal, the API) is over.
    pub async fn drained(&self) {
        let mut drained = self.inner.drained.subscribe();
        let _ = drained.wait_for(|done| *done).await;
    }

    /// Resolves once [`Node::shutdown`] has begun (holds no handle to the node).
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.inner.tasks.stopping()
    }

    /// Whether [`Node::shutdown`] has begun.
    pub fn is_stopping(&self) -> bool {
        self.inner.tasks.is_stopping()
    }
}
