//! Runs a [`Scenario`] with real nodes in this process (real mediasoup workers,
//! real libp2p over 127.0.0.1) and records what happened: every find, every
//! consumer's path and packets, churn, and each node's state at the end.
//! [`crate::report`] turns the observations into figures.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use mafalda_media::mediasoup::prelude::MediaKind;
use mafalda_media::{MediaConfig, MediaEvent, PlacementPolicy};
use mafalda_node::{Codec, Node, NodeConfig, TrackSpec};
use mafalda_swarm::{Keypair, Multiaddr, PeerId, SwarmConfig};
use mafalda_tests::rtp::{RtpPacket, test_stream};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::net::UdpSocket;
use tracing::{info, warn};

use crate::scenario::Scenario;

/// Packet interval of the generated streams (Opus-like, 50 packets/s).
pub const PACKET_INTERVAL: Duration = Duration::from_millis(20);
const PAYLOAD_TYPE: u8 = 100;

/// Why a run could not happen.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A node did not start.
    #[error("node {index} did not start: {reason}")]
    NodeStart {
        /// Its index.
        index: usize,
        /// Why.
        reason: String,
    },
    /// A stream could not be published.
    #[error("stream {stream} could not be published: {reason}")]
    Publish {
        /// The stream.
        stream: String,
        /// Why.
        reason: String,
    },
    /// A local socket failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

/// One consumer's story.
#[derive(Debug, Clone)]
pub struct ConsumerRecord {
    /// Consumer number.
    pub index: usize,
    /// The stream it consumed.
    pub stream: usize,
    /// The node it entered at.
    pub entry: usize,
    /// When it arrived, since the streams started.
    pub arrived: Duration,
    /// How long `find` took, or why it failed.
    pub find: Result<Duration, String>,
    /// Providers the find returned.
    pub providers: usize,
    /// Node indices from the origin to the entry node, or why consuming failed.
    pub path: Result<Vec<usize>, String>,
    /// Consume call to first packet at the socket.
    pub first_packet: Option<Duration>,
    /// (packet index, arrival since the streams started) of every media packet.
    pub arrivals: Vec<(u32, Duration)>,
    /// When it stopped listening, since the streams started.
    pub listened_until: Duration,
}

/// What a drain did (a [`ChurnRecord`] of a drained node).
#[derive(Debug, Clone)]
pub struct DrainRecord {
    /// When `Node::drain` returned, since the streams started (the node was
    /// shut down right after).
    pub ended_at: Duration,
    /// Downstream peers that moved to another provider before their pipe closed.
    pub moved: usize,
    /// Downstream peers that did not confirm a move.
    pub not_moved: usize,
    /// Egresses of the drained node itself, closed.
    pub egresses_closed: usize,
}

/// A node killed or drained (and maybe restarted) during the run.
#[derive(Debug, Clone)]
pub struct ChurnRecord {
    /// Node index.
    pub node: usize,
    /// When it was killed, or its drain started, since the streams started.
    pub killed_at: Duration,
    /// Set when it was drained rather than killed.
    pub drain: Option<DrainRecord>,
    /// Whether the scenario restarts it.
    pub restart_planned: bool,
    /// When it was back, if it came back.
    pub restarted_at: Option<Duration>,
    /// Consumers (at other nodes, still listening) whose path went through it
    /// when it was killed or its drain started.
    pub affected: Vec<usize>,
}

/// A node's media objects and stream state at one moment (summed over its
/// workers): what must come back once every consumer has left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Resources {
    /// mediasoup transports (ingest, egress and pipe transports), besides
    /// the spare pipe transports counted in `spare_pipes`.
    pub transports: u32,
    /// Spare pipe transports the node keeps ready for the next pipe it
    /// serves (one per router a held stream lives on, `Node::spare_pipes`):
    /// informational, as they stay while a stream does.
    pub spare_pipes: usize,
    /// mediasoup consumers (egress and pipe consumers).
    pub consumers: u32,
    /// Pipes it feeds other nodes through (`Node::pipe_count`).
    pub pipes: usize,
    /// Streams it holds as a relay.
    pub relayed: usize,
    /// Streams it holds as their origin.
    pub published: usize,
    /// Egresses running.
    pub egresses: usize,
    /// mediasoup producers (informational: pipe producers included).
    pub producers: u32,
    /// mediasoup routers (informational).
    pub routers: u32,
}

impl Resources {
    /// `node`'s resources now.
    pub fn of(node: &Node) -> Self {
        let objects = node.media().status();
        let streams = node.streams();
        let spare_pipes = node.spare_pipes();
        let transports: u32 = objects.iter().map(|w| w.objects.transports).sum();
        Self {
            transports: transports.saturating_sub(u32::try_from(spare_pipes).unwrap_or(u32::MAX)),
            spare_pipes,
            consumers: objects.iter().map(|w| w.objects.consumers).sum(),
            pipes: node.pipe_count(),
            relayed: streams.iter().filter(|s| s.upstream.is_some()).count(),
            published: streams.iter().filter(|s| s.upstream.is_none()).count(),
            egresses: node.egress_count(),
            producers: objects.iter().map(|w| w.objects.producers).sum(),
            routers: objects.iter().map(|w| w.objects.routers).sum(),
        }
    }

    /// Whether the checked figures (transports, consumers, pipes, relayed and
    /// published streams, egresses) equal `baseline`'s.
    pub fn back_to(&self, baseline: &Self) -> bool {
        (self.transports, self.consumers, self.pipes, self.relayed, self.published, self.egresses)
            == (
                baseline.transports,
                baseline.consumers,
                baseline.pipes,
                baseline.relayed,
                baseline.published,
                baseline.egresses,
            )
    }
}

/// The wait after the run for every node to be back at its baseline.
#[derive(Debug, Clone)]
pub struct SettleRecord {
    /// From the last consumer leaving to the first moment every surviving node
    /// was back at its baseline (none if that did not happen within `settle_s`).
    pub back_after: Option<Duration>,
    /// From the last consumer leaving to the final snapshot.
    pub waited: Duration,
    /// The relay linger the nodes ran with.
    pub linger: Duration,
}

/// A node's state at the end of the run.
#[derive(Debug, Clone)]
pub struct NodeRecord {
    /// Node index.
    pub index: usize,
    /// Its peer id.
    pub peer: String,
    /// Whom it bootstrapped from.
    pub bootstrap: Option<usize>,
    /// Whether it was running at the end.
    pub alive: bool,
    /// Egresses it ran at the end (consumers served).
    pub egresses: usize,
    /// (stream id, upstream node index) of each stream it held; no upstream at an origin.
    pub held: Vec<(String, Option<usize>)>,
    /// Mean CPU of its mediasoup workers, percent.
    pub cpu_percent: f64,
    /// libp2p bytes in + out during the media phase (all control-plane
    /// traffic: DHT, gossip, identify, ping, ROPE), of its last life.
    pub control_bytes: u64,
    /// Payload bytes in + out per protocol (`kad`, `gossipsub`, …) during the
    /// media phase, from the node's own per-protocol counters.
    pub control_by_protocol: BTreeMap<String, ProtocolCount>,
    /// libp2p bytes in + out from its start to the media phase (joining the
    /// swarm); none for a node (re)started later.
    pub join_bytes: Option<u64>,
    /// Most mediasoup workers it ran at once (in any of its lives).
    pub workers_peak: usize,
    /// Workers the pool closed after their idle grace (not counting its
    /// shutdowns).
    pub workers_closed: usize,
    /// Workers running at the end.
    pub workers_end: usize,
    /// Its resources before any consumer arrived (or when it was restarted).
    pub baseline: Option<Resources>,
    /// Its resources after every consumer left and the settle wait (scenarios
    /// with `settle_s`; a node still running then).
    pub settled: Option<Resources>,
}

/// A node's workers over the run, kept from its pool's events.
#[derive(Debug, Default)]
struct WorkerTally {
    current: AtomicUsize,
    peak: AtomicUsize,
    closed: AtomicUsize,
}

impl WorkerTally {
    fn set_current(&self, workers: usize) {
        self.current.store(workers, Ordering::Relaxed);
        self.peak.fetch_max(workers, Ordering::Relaxed);
    }
}

/// Counts `node`'s workers as its pool starts and closes them, until aborted
/// (before the node is shut down, whose closing workers are no idle closes).
fn watch_workers(node: &Node, tally: Arc<WorkerTally>) -> tokio::task::JoinHandle<()> {
    use tokio::sync::broadcast::error::RecvError;
    let mut events = node.media().events();
    tally.set_current(node.media().workers().len());
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(MediaEvent::WorkerStarted { .. }) => {
                    tally.set_current(tally.current.load(Ordering::Relaxed) + 1);
                }
                Ok(MediaEvent::WorkerGone { died, .. }) => {
                    tally.set_current(tally.current.load(Ordering::Relaxed).saturating_sub(1));
                    if !died {
                        tally.closed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            }
        }
    })
}

/// Everything a run observed.
#[derive(Debug, Clone)]
pub struct Observations {
    /// The scenario run.
    pub scenario: Scenario,
    /// From the streams' start to the end of media.
    pub media_time: Duration,
    /// Packets sent per stream, with each one's send time since the streams started.
    pub sent: Vec<Vec<Duration>>,
    /// Consumers.
    pub consumers: Vec<ConsumerRecord>,
    /// Churn events.
    pub churn: Vec<ChurnRecord>,
    /// Nodes at the end.
    pub nodes: Vec<NodeRecord>,
    /// Time to start every node and let the swarm settle.
    pub startup: Duration,
    /// The wait for every node to be back at its baseline (`settle_s`).
    pub settle: Option<SettleRecord>,
}

struct SimNode {
    keypair: Keypair,
    peer: PeerId,
    bootstrap: Option<usize>,
    link_delay: HashMap<PeerId, Duration>,
    node: Option<Arc<Node>>,
    addr: Option<Multiaddr>,
    /// Its pool's settings (`[[workers]]` groups; one worker otherwise).
    media: MediaConfig,
    workers: Arc<WorkerTally>,
    watching: Option<tokio::task::JoinHandle<()>>,
    /// The running node as consumers see it when they arrive (none while it
    /// is down or draining).
    live: Arc<Mutex<Option<Weak<Node>>>>,
    /// Its resources when its current life began serving consumers.
    baseline: Option<Resources>,
    /// Its control-plane counters when the media phase began (zero for a
    /// life that began later: a restarted node counts from zero).
    control_at_media_start: ControlCount,
    /// Whether its current life began before the media phase.
    joined_before_media: bool,
}

/// A node's control-plane counters at one moment.
#[derive(Debug, Clone, Default)]
struct ControlCount {
    /// libp2p bytes in + out (`libp2p_bandwidth_bytes_total`).
    bytes: u64,
    /// Payload bytes in + out per protocol label.
    by_protocol: BTreeMap<String, ProtocolCount>,
}

impl ControlCount {
    fn of(node: &Node) -> Self {
        Self { bytes: bandwidth_bytes(node), by_protocol: protocol_bytes(node) }
    }

    /// What was counted since `earlier`.
    fn since(&self, earlier: &Self) -> Self {
        let by_protocol = self
            .by_protocol
            .iter()
            .map(|(label, count)| {
                (label.clone(), count.since(&earlier.by_protocol.get(label).copied().unwrap_or_default()))
            })
            .collect();
        Self { bytes: self.bytes.saturating_sub(earlier.bytes), by_protocol }
    }
}

impl SimNode {
    /// Starts watching the workers of the node just started.
    fn started(&mut self, node: Node) {
        self.watching = Some(watch_workers(&node, Arc::clone(&self.workers)));
        let node = Arc::new(node);
        *lock(&self.live) = Some(Arc::downgrade(&node));
        self.node = Some(node);
        // A new life counts from zero.
        self.control_at_media_start = ControlCount::default();
        self.joined_before_media = false;
    }

    /// Takes the node out to shut it down, no longer watching its workers.
    fn take(&mut self) -> Option<Arc<Node>> {
        if let Some(watching) = self.watching.take() {
            watching.abort();
        }
        *lock(&self.live) = None;
        self.baseline = None;
        self.node.take()
    }
}

/// The pool settings of node `index`: its `[[workers]]` group's, else one worker.
fn media_config(scenario: &Scenario, index: usize) -> MediaConfig {
    let mut media = MediaConfig::default();
    media.workers = 1;
    if let Some(group) = scenario.workers_of(index) {
        media.workers = group.workers;
        if let Some(capacity) = group.consumer_capacity {
            let mut placement = PlacementPolicy::default();
            placement.consumer_capacity = capacity;
            media.placement = placement;
        }
        if let Some(grace) = group.idle_grace_s {
            media.idle_grace = Duration::from_secs_f64(grace);
        }
    }
    media
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn start_node(sim: &SimNode, bootstrap: Option<Multiaddr>, linger: Option<f64>) -> Result<Node, String> {
    let media = sim.media.clone();
    let listen: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().map_err(|e| format!("{e}"))?;
    let swarm = SwarmConfig::new(sim.keypair.clone(), vec![listen]).with_bootstrap(bootstrap.into_iter().collect());
    let mut config = NodeConfig::new(media, swarm);
    config.link_delay = sim.link_delay.clone();
    config.find_deadline = Duration::from_secs(10);
    if let Some(linger) = linger {
        config.relay_linger = Duration::from_secs_f64(linger);
    }
    Node::start(config).await.map_err(|e| e.to_string())
}

/// Runs `scenario` and returns what happened.
pub async fn run(scenario: &Scenario) -> Result<Observations, RunError> {
    let mut rng = StdRng::seed_from_u64(scenario.seed);
    let started = Instant::now();
    let mut sims: Vec<SimNode> = (0..scenario.nodes)
        .map(|i| {
            let keypair = Keypair::generate_ed25519();
            let bootstrap = scenario.topology.bootstrap_of(i, &mut rng);
            SimNode {
                peer: keypair.public().to_peer_id(),
                keypair,
                bootstrap,
                link_delay: HashMap::new(),
                node: None,
                addr: None,
                media: media_config(scenario, i),
                workers: Arc::default(),
                watching: None,
                live: Arc::default(),
                baseline: None,
                control_at_media_start: ControlCount::default(),
                joined_before_media: false,
            }
        })
        .collect();
    for link in &scenario.latency {
        let (a, b) = (sims[link.a].peer, sims[link.b].peer);
        sims[link.a].link_delay.insert(b, Duration::from_millis(link.ms));
        sims[link.b].link_delay.insert(a, Duration::from_millis(link.ms));
    }
    for i in 0..sims.len() {
        let bootstrap = sims[i].bootstrap.and_then(|b| sims[b].addr.clone());
        let node = start_node(&sims[i], bootstrap, scenario.relay_linger_s)
            .await
            .map_err(|reason| RunError::NodeStart { index: i, reason })?;
        let addr = node.listen_addrs().await.ok().and_then(|a| a.into_iter().next());
        sims[i].addr = addr;
        sims[i].started(node);
    }
    // Let Kademlia routing tables and gossip meshes form.
    tokio::time::sleep(Duration::from_secs(2) + Duration::from_millis(100 * scenario.nodes as u64)).await;
    let startup = started.elapsed();
    info!(nodes = scenario.nodes, ?startup, "swarm up");
    let peers: HashMap<String, usize> = sims.iter().enumerate().map(|(i, s)| (s.peer.to_string(), i)).collect();
    let peers = Arc::new(peers);

    // Publish, and send RTP into each publication.
    let t0 = Instant::now();
    let packets_total = (scenario.duration_s / PACKET_INTERVAL.as_secs_f64()).ceil() as u32;
    let mut senders = Vec::new();
    let sent: Vec<Arc<Mutex<Vec<Duration>>>> = scenario.streams.iter().map(|_| Arc::default()).collect();
    for (s, stream) in scenario.streams.iter().enumerate() {
        let Some(node) = sims[stream.at].node.clone() else { continue };
        let ssrc = 0x5100_0000 + s as u32;
        let track = TrackSpec { kind: MediaKind::Audio, codec: Codec::Opus, payload_type: PAYLOAD_TYPE, ssrc };
        let ingest = node
            .publish_rtp(&stream.id, vec![track])
            .await
            .map_err(|e| RunError::Publish { stream: stream.id.clone(), reason: e.to_string() })?;
        if scenario.media {
            let socket = UdpSocket::bind("127.0.0.1:0").await?;
            let log = Arc::clone(&sent[s]);
            let packets = test_stream(ssrc, PAYLOAD_TYPE, packets_total);
            senders.push(tokio::spawn(send(socket, ingest, packets, log, t0)));
        }
    }

    // Every node's baseline: its publications, no consumer yet.
    // and its control-plane counters, so that joining the swarm (a one-off
    // cost) is reported apart from the traffic of the run.
    for sim in &mut sims {
        sim.baseline = sim.node.as_deref().map(Resources::of);
        if let Some(node) = sim.node.as_deref() {
            sim.control_at_media_start = ControlCount::of(node);
            sim.joined_before_media = true;
        }
    }

    // Consumers arrive round-robin over the streams: placed ones at their
    // entry node, the others at a random node running when they arrive.
    let churned: Vec<usize> = scenario.churn.iter().filter_map(|c| c.node).collect();
    let mut arrivals: Vec<f64> = (0..scenario.consumers.count)
        .map(|_| rng.random_range(scenario.consumers.arrive_from_s..=scenario.consumers.arrive_until_s))
        .collect();
    arrivals.sort_by(f64::total_cmp);
    let stay = match (scenario.consumers.stay_from_s, scenario.consumers.stay_until_s) {
        (Some(from), Some(until)) => Some(from..=until),
        _ => None,
    };
    // (arrival, stream, entry, departure): placed consumers first, then random ones.
    let mut plan: Vec<(f64, usize, Option<usize>, Option<f64>)> =
        scenario.consumer.iter().map(|c| (c.at_s, c.stream, Some(c.entry), c.leave_at_s)).collect();
    let placed = plan.len();
    for (k, at) in arrivals.into_iter().enumerate() {
        let leave = stay.clone().map(|stay| at + rng.random_range(stay)).filter(|leave| *leave < scenario.duration_s);
        plan.push((at, (placed + k) % scenario.streams.len(), None, leave));
    }
    if scenario.settle_s.is_some() {
        // Every consumer leaves (stops its egress) by the end, so that the
        // nodes can go back to their baseline.
        for (_, _, _, leave) in &mut plan {
            leave.get_or_insert(scenario.duration_s);
        }
    }
    let live: LiveNodes = Arc::new(sims.iter().map(|s| Arc::clone(&s.live)).collect());
    let records: Arc<Mutex<Vec<ConsumerRecord>>> = Arc::default();
    let end = t0 + Duration::from_secs_f64(scenario.duration_s);
    let mut consumers = Vec::new();
    for (k, (at, stream, placed_entry, leave_at)) in plan.into_iter().enumerate() {
        let origin = scenario.streams[stream].at;
        let job = ConsumerJob {
            index: k,
            stream,
            stream_id: scenario.streams[stream].id.clone(),
            entry: match placed_entry {
                Some(entry) => Entry::Placed(entry),
                None => {
                    let candidates: Vec<usize> =
                        (0..scenario.nodes).filter(|i| *i != origin && !churned.contains(i)).collect();
                    let pick = rng.random_range(0..candidates.len().max(1));
                    Entry::Random { pick, candidates }
                }
            },
            live: Arc::clone(&live),
            arrive: t0 + Duration::from_secs_f64(at),
            leave: leave_at.map(|leave| t0 + Duration::from_secs_f64(leave)),
            t0,
            end,
            media: scenario.media,
            peers: Arc::clone(&peers),
            records: Arc::clone(&records),
        };
        consumers.push(tokio::spawn(job.run()));
    }

    // Churn: kills and drains, one after the other.
    let mut churn_records = Vec::new();
    let mut churn_plan: Vec<_> = scenario.churn.clone();
    churn_plan.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    for churn in churn_plan {
        tokio::time::sleep_until((t0 + Duration::from_secs_f64(churn.at_s)).into()).await;
        let origins: Vec<usize> = scenario.streams.iter().map(|s| s.at).collect();
        let Some(target) = churn.node.or_else(|| busiest_relay(&sims, scenario, &peers, &lock(&records), &origins))
        else {
            warn!("no relay to churn: every consumer pulls from an origin");
            continue;
        };
        let affected = behind(&sims, scenario, &peers, &lock(&records), target);
        let Some(node) = sims[target].take() else { continue };
        let peer = sims[target].peer.to_string();
        let killed_at = t0.elapsed();
        let drain = if churn.drain {
            warn!(node = target, %peer, affected = affected.len(), "draining node");
            let drained = node.drain().await;
            let ended_at = t0.elapsed();
            info!(node = target, ?drained, took = ?(ended_at - killed_at), "drained; shutting it down");
            Some(DrainRecord {
                ended_at,
                moved: drained.moved,
                not_moved: drained.not_moved,
                egresses_closed: drained.egresses_closed,
            })
        } else {
            warn!(node = target, %peer, affected = affected.len(), "killing node");
            None
        };
        shutdown(node).await;
        let mut record = ChurnRecord {
            node: target,
            killed_at,
            drain,
            restart_planned: churn.restart_after_s.is_some(),
            restarted_at: None,
            affected,
        };
        if let Some(after) = churn.restart_after_s {
            tokio::time::sleep(Duration::from_secs_f64(after)).await;
            let bootstrap = sims[target].bootstrap.and_then(|b| sims[b].addr.clone());
            match start_node(&sims[target], bootstrap, scenario.relay_linger_s).await {
                Ok(node) => {
                    sims[target].addr = node.listen_addrs().await.ok().and_then(|a| a.into_iter().next());
                    // A fresh node's baseline: nothing yet.
                    sims[target].baseline = Some(Resources::of(&node));
                    sims[target].started(node);
                    record.restarted_at = Some(t0.elapsed());
                }
                Err(reason) => warn!(node = target, %reason, "restart failed"),
            }
        }
        churn_records.push(record);
    }

    tokio::time::sleep_until(end.into()).await;
    for sender in senders {
        let _ = sender.await;
    }
    for consumer in consumers {
        let _ = consumer.await;
    }
    let media_time = t0.elapsed();

    // Each node's state at the end.
    let mut nodes = Vec::new();
    for (i, sim) in sims.iter().enumerate() {
        let mut record = NodeRecord {
            index: i,
            peer: sim.peer.to_string(),
            bootstrap: sim.bootstrap,
            alive: sim.node.is_some(),
            egresses: 0,
            held: Vec::new(),
            cpu_percent: 0.0,
            control_bytes: 0,
            control_by_protocol: BTreeMap::new(),
            join_bytes: sim.joined_before_media.then_some(sim.control_at_media_start.bytes),
            workers_peak: sim.workers.peak.load(Ordering::Relaxed),
            workers_closed: sim.workers.closed.load(Ordering::Relaxed),
            workers_end: 0,
            baseline: sim.baseline,
            settled: None,
        };
        if let Some(node) = &sim.node {
            // The node samples its workers' CPU every 2 s; read its latest figure.
            record.egresses = node.egress_count();
            record.held = node
                .streams()
                .into_iter()
                .map(|s| (s.stream, s.upstream.and_then(|u| peers.get(&u).copied())))
                .collect();
            let workers = node.media().status();
            record.cpu_percent =
                workers.iter().map(|w| f64::from(w.cpu_percent)).sum::<f64>() / workers.len().max(1) as f64;
            let control = ControlCount::of(node).since(&sim.control_at_media_start);
            record.control_bytes = control.bytes;
            record.control_by_protocol = control.by_protocol;
            record.workers_end = workers.len();
        }
        nodes.push(record);
    }

    // Every consumer has left: wait for the relay linger (and a margin), then
    // until every running node is back at its baseline or `settle_s` passed.
    let settle = match scenario.settle_s {
        Some(settle_s) => {
            let linger = Duration::from_secs_f64(scenario.relay_linger_s.unwrap_or(10.0));
            let last_left = lock(&records).iter().map(|r| r.listened_until).max().unwrap_or_default();
            let last_left = t0 + last_left;
            let deadline = last_left + Duration::from_secs_f64(settle_s);
            tokio::time::sleep_until((last_left + linger + SETTLE_MARGIN).into()).await;
            info!(after = ?last_left.elapsed(), "every consumer left; waiting for every node to be back at its baseline");
            let back = |sims: &[SimNode]| {
                sims.iter().all(|sim| match (&sim.node, &sim.baseline) {
                    (Some(node), Some(baseline)) => Resources::of(node).back_to(baseline),
                    _ => true,
                })
            };
            let mut back_after = None;
            loop {
                if back(&sims) {
                    back_after = Some(last_left.elapsed());
                    break;
                }
                if Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            for (record, sim) in nodes.iter_mut().zip(&sims) {
                record.settled = sim.node.as_deref().map(Resources::of);
            }
            Some(SettleRecord { back_after, waited: last_left.elapsed(), linger })
        }
        None => None,
    };
    for sim in &mut sims {
        if let Some(node) = sim.take() {
            shutdown(node).await;
        }
    }
    let mut consumers = std::mem::take(&mut *lock(&records));
    consumers.sort_by_key(|c| c.index);
    Ok(Observations {
        scenario: scenario.clone(),
        media_time,
        sent: sent.iter().map(|s| lock(s).clone()).collect(),
        consumers,
        churn: churn_records,
        nodes,
        startup,
        settle,
    })
}

/// Waited after the relay linger before the nodes are compared with their
/// baseline: the release check runs every second, and the upstream closes its
/// pipe when told.
const SETTLE_MARGIN: Duration = Duration::from_secs(3);

/// The path (node indices from the origin) by which `entry` holds `stream` now.
fn live_path(sims: &[SimNode], peers: &HashMap<String, usize>, entry: usize, stream: &str) -> Option<Vec<usize>> {
    let node = sims[entry].node.as_ref()?;
    let status = node.streams().into_iter().find(|s| s.stream == stream)?;
    Some(status.path.iter().filter_map(|p| peers.get(p).copied()).collect())
}

/// The consumers still listening, with their entry node and the nodes their
/// stream comes through now (as the entry node holds it, else as consumed).
fn listening_paths(
    sims: &[SimNode],
    scenario: &Scenario,
    peers: &HashMap<String, usize>,
    records: &[ConsumerRecord],
) -> Vec<(usize, usize, Vec<usize>)> {
    records
        .iter()
        .filter(|r| r.listened_until.is_zero())
        .filter_map(|r| {
            let consumed = r.path.as_ref().ok()?;
            let now = live_path(sims, peers, r.entry, &scenario.streams[r.stream].id);
            Some((r.index, r.entry, now.unwrap_or_else(|| consumed.clone())))
        })
        .collect()
}

/// Consumers at other nodes, still listening, whose stream comes through `target`.
fn behind(
    sims: &[SimNode],
    scenario: &Scenario,
    peers: &HashMap<String, usize>,
    records: &[ConsumerRecord],
    target: usize,
) -> Vec<usize> {
    let mut affected: Vec<usize> = listening_paths(sims, scenario, peers, records)
        .into_iter()
        .filter(|(_, entry, path)| *entry != target && path.contains(&target))
        .map(|(index, _, _)| index)
        .collect();
    affected.sort_unstable();
    affected
}

/// The node in the middle of the most listening consumers' paths now (not an
/// origin, not the consumer's own entry node).
fn busiest_relay(
    sims: &[SimNode],
    scenario: &Scenario,
    peers: &HashMap<String, usize>,
    records: &[ConsumerRecord],
    origins: &[usize],
) -> Option<usize> {
    let mut counts: HashMap<usize, usize> = HashMap::new();
    for (_, _, path) in listening_paths(sims, scenario, peers, records) {
        for node in path.iter().skip(1).take(path.len().saturating_sub(2)) {
            if !origins.contains(node) && sims[*node].node.is_some() {
                *counts.entry(*node).or_default() += 1;
            }
        }
    }
    counts.into_iter().max_by_key(|(node, count)| (*count, std::cmp::Reverse(*node))).map(|(node, _)| node)
}

/// Shuts a node down once nothing else holds it.
pub(crate) async fn shutdown(node: Arc<Node>) {
    let mut node = node;
    for _ in 0..100 {
        match Arc::try_unwrap(node) {
            Ok(owned) => return owned.shutdown().await,
            Err(shared) => {
                node = shared;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    warn!("a node was still in use at shutdown; dropping it");
}

/// One protocol's counters at a node (both directions).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProtocolCount {
    /// Payload bytes in + out.
    pub bytes: u64,
    /// Streams opened by either side (one per request for Kademlia, ROPE,
    /// identify; long-lived for gossipsub and ping).
    pub streams: u64,
}

impl ProtocolCount {
    fn since(&self, earlier: &Self) -> Self {
        Self { bytes: self.bytes.saturating_sub(earlier.bytes), streams: self.streams.saturating_sub(earlier.streams) }
    }
}

/// Payload bytes and streams per protocol label, from the node's counters.
pub(crate) fn protocol_bytes(node: &Node) -> BTreeMap<String, ProtocolCount> {
    node.swarm()
        .traffic()
        .into_iter()
        .map(|(label, traffic)| {
            let count = ProtocolCount {
                bytes: traffic.bytes_in + traffic.bytes_out,
                streams: traffic.streams_in + traffic.streams_out,
            };
            (label.as_str().to_owned(), count)
        })
        .collect()
}

/// Sums `libp2p_bandwidth_bytes_total` over protocols and directions.
pub(crate) fn bandwidth_bytes(node: &Node) -> u64 {
    let mut text = String::new();
    if node.swarm().encode_metrics(&mut text).is_err() {
        return 0;
    }
    text.lines()
        .filter(|line| line.starts_with("libp2p_bandwidth_bytes_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|bytes| bytes as u64)
        .sum()
}

async fn send(
    socket: UdpSocket,
    target: SocketAddr,
    packets: Vec<RtpPacket>,
    log: Arc<Mutex<Vec<Duration>>>,
    t0: Instant,
) {
    let mut ticker = tokio::time::interval(PACKET_INTERVAL);
    for packet in packets {
        ticker.tick().await;
        if socket.send_to(&packet.encode(), target).await.is_ok() {
            lock(&log).push(t0.elapsed());
        }
    }
}

/// Each node as it runs now, by index (none while down or draining).
type LiveNodes = Arc<Vec<Arc<Mutex<Option<Weak<Node>>>>>>;

/// Where a consumer enters the swarm.
enum Entry {
    /// At this node (placed by hand).
    Placed(usize),
    /// At `candidates[pick]`, or if that node is not running when it
    /// arrives, at the next candidate that is.
    Random { pick: usize, candidates: Vec<usize> },
}

struct ConsumerJob {
    index: usize,
    stream: usize,
    stream_id: String,
    entry: Entry,
    /// Each node as it runs now (Weak: a killed node must not be kept alive
    /// by its consumers).
    live: LiveNodes,
    arrive: Instant,
    /// When it stops its egress (a placed consumer's `leave_at_s`); else it
    /// listens to the end.
    leave: Option<Instant>,
    t0: Instant,
    end: Instant,
    media: bool,
    peers: Arc<HashMap<String, usize>>,
    records: Arc<Mutex<Vec<ConsumerRecord>>>,
}

impl ConsumerJob {
    async fn run(self) {
        tokio::time::sleep_until(self.arrive.into()).await;
        let running = |i: usize| lock(&self.live[i]).clone();
        let (entry, node) = match &self.entry {
            Entry::Placed(entry) => (*entry, running(*entry)),
            Entry::Random { pick, candidates } => {
                let mut next = candidates.iter().cycle().skip(*pick).take(candidates.len());
                let Some(entry) = next.find(|i| running(**i).is_some()).copied() else {
                    warn!(consumer = self.index, "no node running to enter at");
                    return;
                };
                (entry, running(entry))
            }
        };
        let mut record = ConsumerRecord {
            index: self.index,
            stream: self.stream,
            entry,
            arrived: self.t0.elapsed(),
            find: Err("not run".into()),
            providers: 0,
            path: Err("not consumed".into()),
            first_packet: None,
            arrivals: Vec::new(),
            listened_until: Duration::ZERO,
        };
        let Some(node) = node.clone().and_then(|node| node.upgrade()) else {
            record.find = Err(format!("entry node {entry} is not running"));
            lock(&self.records).push(record);
            return;
        };
        let weak = Arc::downgrade(&node);
        let started = Instant::now();
        match node.find_stream(&self.stream_id).await {
            Ok(found) => {
                record.find = Ok(started.elapsed());
                record.providers = found.providers.len();
            }
            Err(error) => record.find = Err(error.to_string()),
        }
        if !self.media || record.find.is_err() {
            lock(&self.records).push(record);
            return;
        }
        let Ok(socket) = UdpSocket::bind("127.0.0.1:0").await else { return };
        let Ok(destination) = socket.local_addr() else { return };
        let started = Instant::now();
        let consumed = node.consume_rtp(&self.stream_id, destination).await;
        drop(node);
        let egress_id = match consumed {
            Ok(egress) => {
                record.path = Ok(egress.path.iter().filter_map(|p| self.peers.get(p).copied()).collect());
                egress.id
            }
            Err(error) => {
                record.path = Err(error.to_string());
                lock(&self.records).push(record);
                return;
            }
        };
        // Publish the path now: churn looks at it to know who is affected.
        let index = self.index;
        lock(&self.records).push(record);
        let mut buffer = vec![0u8; 2048];
        let mut first_packet = None;
        let mut arrivals = Vec::new();
        let stop = self.leave.unwrap_or(self.end + Duration::from_millis(500));
        while let Ok(Ok((len, _))) = tokio::time::timeout_at(stop.into(), socket.recv_from(&mut buffer)).await {
            if let Ok(packet) = RtpPacket::parse(&buffer[..len])
                && packet.payload.len() >= 5
                && packet.payload[0] == 0xfc
            {
                first_packet.get_or_insert_with(|| started.elapsed());
                let sequence =
                    u32::from_be_bytes([packet.payload[1], packet.payload[2], packet.payload[3], packet.payload[4]]);
                arrivals.push((sequence, self.t0.elapsed()));
            }
        }
        if self.leave.is_some()
            && let Some(node) = weak.upgrade()
        {
            // Leaving empties what it used (maybe a whole worker); a node killed
            // meanwhile took the egress with it.
            let _ = node.stop_egress(&egress_id);
        }
        let mut records = lock(&self.records);
        if let Some(record) = records.iter_mut().find(|r| r.index == index) {
            record.first_packet = first_packet;
            record.arrivals = arrivals;
            record.listened_until = self.t0.elapsed();
        }
    }
}
