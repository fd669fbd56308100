//! Runs a [`Scenario`] with real nodes in this process (real mediasoup workers,
//! real libp2p over 127.0.0.1) and records what happened: every find, every
//! consumer's path and packets, churn, and each node's state at the end.
//! [`crate::report`] turns the observations into figures.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mafalda_media::mediasoup::prelude::MediaKind;
use mafalda_media::{MediaConfig, MediaEvent, PlacementPolicy};
use mafalda_node::{Codec, Node, NodeConfig, TrackSpec};
use mafalda_swarm::{Keypair, Multiaddr, PeerId, SwarmConfig};
use mafalda_tests::rtp::{RtpPacket, test_stream};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;
use tracing::{info, warn};

use crate::scenario::{Scenario, Topology};

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

/// A node killed (and maybe restarted) during the run.
#[derive(Debug, Clone)]
pub struct ChurnRecord {
    /// Node index.
    pub node: usize,
    /// When it was killed, since the streams started.
    pub killed_at: Duration,
    /// Whether the scenario restarts it.
    pub restart_planned: bool,
    /// When it was back, if it came back.
    pub restarted_at: Option<Duration>,
    /// Consumers whose path went through it when it was killed.
    pub affected: Vec<usize>,
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
    /// libp2p bytes in + out over the run (all control-plane traffic: DHT,
    /// gossip, identify, ping, ROPE).
    pub control_bytes: u64,
    /// Most mediasoup workers it ran at once (in any of its lives).
    pub workers_peak: usize,
    /// Workers the pool closed after their idle grace (not counting its
    /// shutdowns).
    pub workers_closed: usize,
    /// Workers running at the end.
    pub workers_end: usize,
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
}

impl SimNode {
    /// Starts watching the workers of the node just started.
    fn started(&mut self, node: Node) {
        self.watching = Some(watch_workers(&node, Arc::clone(&self.workers)));
        self.node = Some(Arc::new(node));
    }

    /// Takes the node out to shut it down, no longer watching its workers.
    fn take(&mut self) -> Option<Arc<Node>> {
        if let Some(watching) = self.watching.take() {
            watching.abort();
        }
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

async fn start_node(sim: &SimNode, bootstrap: Option<Multiaddr>) -> Result<Node, String> {
    let media = sim.media.clone();
    let listen: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().map_err(|e| format!("{e}"))?;
    let swarm = SwarmConfig::new(sim.keypair.clone(), vec![listen]).with_bootstrap(bootstrap.into_iter().collect());
    let mut config = NodeConfig::new(media, swarm);
    config.link_delay = sim.link_delay.clone();
    config.find_deadline = Duration::from_secs(10);
    Node::start(config).await.map_err(|e| e.to_string())
}

/// Runs `scenario` and returns what happened.
pub async fn run(scenario: &Scenario) -> Result<Observations, RunError> {
    let mut rng = StdRng::seed_from_u64(scenario.seed);
    let started = Instant::now();
    let mut sims: Vec<SimNode> = (0..scenario.nodes)
        .map(|i| {
            let keypair = Keypair::generate_ed25519();
            let bootstrap = match (i, scenario.topology) {
                (0, _) => None,
                (_, Topology::Chain) => Some(i - 1),
                (_, Topology::Star) => Some(0),
                (_, Topology::Random) => Some(rng.random_range(0..i)),
            };
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
        let node = start_node(&sims[i], bootstrap).await.map_err(|reason| RunError::NodeStart { index: i, reason })?;
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

    // Consumers arrive at random entry nodes, round-robin over the streams.
    let churned: Vec<usize> = scenario.churn.iter().filter_map(|c| c.node).collect();
    let mut arrivals: Vec<f64> = (0..scenario.consumers.count)
        .map(|_| rng.random_range(scenario.consumers.arrive_from_s..=scenario.consumers.arrive_until_s))
        .collect();
    arrivals.sort_by(f64::total_cmp);
    // (arrival, stream, entry, departure): placed consumers first, then random ones.
    let mut plan: Vec<(f64, usize, Option<usize>, Option<f64>)> =
        scenario.consumer.iter().map(|c| (c.at_s, c.stream, Some(c.entry), c.leave_at_s)).collect();
    let placed = plan.len();
    plan.extend(
        arrivals.into_iter().enumerate().map(|(k, at)| (at, (placed + k) % scenario.streams.len(), None, None)),
    );
    let records: Arc<Mutex<Vec<ConsumerRecord>>> = Arc::default();
    let end = t0 + Duration::from_secs_f64(scenario.duration_s);
    let mut consumers = Vec::new();
    for (k, (at, stream, placed_entry, leave_at)) in plan.into_iter().enumerate() {
        let origin = scenario.streams[stream].at;
        let candidates: Vec<usize> = (0..scenario.nodes).filter(|i| *i != origin && !churned.contains(i)).collect();
        let random_entry = candidates.get(rng.random_range(0..candidates.len().max(1))).copied();
        let Some(entry) = placed_entry.or(random_entry) else { continue };
        let Some(node) = sims[entry].node.as_ref().map(Arc::downgrade) else { continue };
        let job = ConsumerJob {
            index: k,
            stream,
            stream_id: scenario.streams[stream].id.clone(),
            entry,
            node,
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

    // Churn.
    let mut churn_records = Vec::new();
    let mut churn_plan: Vec<_> = scenario.churn.clone();
    churn_plan.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    for churn in churn_plan {
        tokio::time::sleep_until((t0 + Duration::from_secs_f64(churn.at_s)).into()).await;
        let origins: Vec<usize> = scenario.streams.iter().map(|s| s.at).collect();
        let Some(target) = churn.node.or_else(|| busiest_relay(&lock(&records), &origins)) else {
            warn!("no relay to kill: every consumer pulls from an origin");
            continue;
        };
        let Some(node) = sims[target].take() else { continue };
        let peer = sims[target].peer.to_string();
        let affected: Vec<usize> = lock(&records)
            .iter()
            .filter(|r| r.entry != target && r.path.as_ref().is_ok_and(|p| p.contains(&target)))
            .map(|r| r.index)
            .collect();
        let killed_at = t0.elapsed();
        warn!(node = target, %peer, affected = affected.len(), "killing node");
        shutdown(node).await;
        let mut record = ChurnRecord {
            node: target,
            killed_at,
            restart_planned: churn.restart_after_s.is_some(),
            restarted_at: None,
            affected,
        };
        if let Some(after) = churn.restart_after_s {
            tokio::time::sleep(Duration::from_secs_f64(after)).await;
            let bootstrap = sims[target].bootstrap.and_then(|b| sims[b].addr.clone());
            match start_node(&sims[target], bootstrap).await {
                Ok(node) => {
                    sims[target].addr = node.listen_addrs().await.ok().and_then(|a| a.into_iter().next());
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
            workers_peak: sim.workers.peak.load(Ordering::Relaxed),
            workers_closed: sim.workers.closed.load(Ordering::Relaxed),
            workers_end: 0,
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
            record.control_bytes = bandwidth_bytes(node);
            record.workers_end = workers.len();
        }
        nodes.push(record);
    }
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
    })
}

/// The node in the middle of the most consumers' paths (not an origin, not
/// the consumer's own entry node).
fn busiest_relay(records: &[ConsumerRecord], origins: &[usize]) -> Option<usize> {
    let mut counts: HashMap<usize, usize> = HashMap::new();
    for path in records.iter().filter_map(|r| r.path.as_ref().ok()) {
        for node in path.iter().skip(1).take(path.len().saturating_sub(2)) {
            if !origins.contains(node) {
                *counts.entry(*node).or_default() += 1;
            }
        }
    }
    counts.into_iter().max_by_key(|(node, count)| (*count, std::cmp::Reverse(*node))).map(|(node, _)| node)
}

/// Shuts a node down once nothing else holds it.
async fn shutdown(node: Arc<Node>) {
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

/// Sums `libp2p_bandwidth_bytes_total` over protocols and directions.
fn bandwidth_bytes(node: &Node) -> u64 {
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

struct ConsumerJob {
    index: usize,
    stream: usize,
    stream_id: String,
    entry: usize,
    /// Weak: a killed node must not be kept alive by its consumers.
    node: std::sync::Weak<Node>,
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
        let mut record = ConsumerRecord {
            index: self.index,
            stream: self.stream,
            entry: self.entry,
            arrived: self.t0.elapsed(),
            find: Err("not run".into()),
            providers: 0,
            path: Err("not consumed".into()),
            first_packet: None,
            arrivals: Vec::new(),
            listened_until: Duration::ZERO,
        };
        let Some(node) = self.node.upgrade() else { return };
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
            && let Some(node) = self.node.upgrade()
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
