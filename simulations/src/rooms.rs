//! The `rooms` scenario: real nodes with their apps' API, and apps that join
//! rooms over ROPE (`/v1/rope`) as a participant of a conference does.
//!
//! Each participant is one ROPE connection at a node picked at random. It
//! arrives at a random time, joins its room (`room.join`), publishes one
//! audio track through the room API (`createPlainTransport` with comedia,
//! `produce`) and sends RTP from a UDP socket to it, consumes every other
//! producer of the room as the room object's state shows it (a plain
//! transport sending to a UDP socket of its own, `consume`), and leaves
//! (`leave` on the room object) after a random stay, or stays to the end.
//!
//! Measured: the time from `produce` answered at one app to the room
//! object's state showing the producer at each app at another node
//! (`changed`), from `produce` answered to the first RTP packet of it at
//! such an app, from `consume` to its first packet, the inter-node pipes of
//! each room (sampled every second: relayed copies of its producers' streams
//! `ROOM:PRODUCERID`, against the fewest that could carry it: one per
//! producer and other node with participants), each node's load (mediasoup
//! worker CPU, objects, libp2p traffic), the process's CPU and memory, and
//! the share of consumers that got media.
//!
//! ```toml
//! name = "rooms-30"
//! nodes = 30
//! topology = "random"   # as in the stream scenarios
//! seed = 17
//! duration_s = 120      # from the first arrival's earliest time to the end
//! relay_linger_s = 10   # optional
//!
//! [rooms]
//! count = 10            # rooms room-0 .. room-9
//! participants = 6      # per room, each at a random node
//! arrive_from_s = 0
//! arrive_until_s = 40
//! stay_from_s = 30      # optional, with stay_until_s: each participant leaves
//! stay_until_s = 90     # after a random stay (or stays to the end, if that is sooner)
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mafalda_media::MediaConfig;
use mafalda_node::api::{self, ApiConfig};
use mafalda_node::{Node, NodeConfig};
use mafalda_swarm::{Keypair, Multiaddr, SwarmConfig};
use mafalda_tests::room::{OPUS_PT, RoomApp, opus_parameters};
use mafalda_tests::rtp::{RtpPacket, test_stream};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::{TcpListener, UdpSocket};
use tracing::{info, warn};

use crate::report::Stats;
use crate::runner::PACKET_INTERVAL;
use crate::scenario::{ScenarioError, Topology};

/// A producer and a participant must overlap this long for the participant
/// to be expected to see it and get its media.
pub const OVERLAP: Duration = Duration::from_secs(2);
/// Packets sent this shortly before a producer or consumer left are not expected.
const IN_FLIGHT: f64 = 0.3;

/// The participants: how many rooms, how many in each, when they come and go.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoomsSpec {
    /// Rooms `room-0`...
    pub count: usize,
    /// Participants per room.
    pub participants: usize,
    /// Earliest arrival, seconds.
    #[serde(default)]
    pub arrive_from_s: f64,
    /// Latest arrival, seconds.
    #[serde(default)]
    pub arrive_until_s: f64,
    /// Shortest stay (with `stay_until_s`); without, everyone stays to the end.
    pub stay_from_s: Option<f64>,
    /// Longest stay.
    pub stay_until_s: Option<f64>,
}

/// A rooms scenario file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoomsScenario {
    /// Name, used in reports.
    pub name: String,
    /// How many nodes.
    pub nodes: usize,
    /// Bootstrap links.
    pub topology: Topology,
    /// Seed of every random choice.
    #[serde(default)]
    pub seed: u64,
    /// Seconds from the start of the workload to its end.
    pub duration_s: f64,
    /// Every node's relay linger, seconds (the node's default if absent).
    pub relay_linger_s: Option<f64>,
    /// The rooms and their participants.
    pub rooms: RoomsSpec,
}

impl RoomsScenario {
    /// Whether the TOML `text` is a rooms scenario (it has a `[rooms]` table).
    pub fn is_rooms(text: &str) -> bool {
        toml::from_str::<toml::Table>(text).is_ok_and(|table| table.contains_key("rooms"))
    }

    /// Reads and checks a rooms scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        crate::scenario::load_file(path, Self::parse)
    }

    /// Parses and checks a rooms scenario.
    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        let scenario: Self = toml::from_str(text)
            .map_err(|e| ScenarioError::Parse { path: "scenario".into(), reason: e.to_string() })?;
        let invalid = |message: &str| Err(ScenarioError::Invalid(message.to_owned()));
        let r = &scenario.rooms;
        if !(2..=crate::scenario::MAX_NODES).contains(&scenario.nodes) {
            return invalid("nodes must be 2-500");
        }
        if !(scenario.duration_s > 0.0 && scenario.duration_s <= 3600.0) {
            return invalid("duration_s must be in (0, 3600]");
        }
        if !(1..=100).contains(&r.count) || !(2..=64).contains(&r.participants) {
            return invalid("rooms: count must be 1-100 and participants 2-64");
        }
        if !(0.0..=r.arrive_until_s).contains(&r.arrive_from_s) || r.arrive_until_s >= scenario.duration_s {
            return invalid("rooms: participants arrive in 0 <= arrive_from_s <= arrive_until_s < duration_s");
        }
        match (r.stay_from_s, r.stay_until_s) {
            (None, None) => {}
            (Some(from), Some(until)) if from > 0.0 && from <= until => {}
            _ => return invalid("rooms: set both 0 < stay_from_s <= stay_until_s, or neither"),
        }
        if scenario.relay_linger_s.is_some_and(|linger| !(linger > 0.0 && linger <= 600.0)) {
            return invalid("relay_linger_s must be in (0, 600]");
        }
        Ok(scenario)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn since(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64()
}

/// One consumer a participant made of another's producer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConsumerRecord {
    /// The producer (room id).
    pub producer: String,
    /// When the participant asked (`createPlainTransport`), seconds since the start.
    pub requested_s: f64,
    /// When `consume` answered.
    pub consumed_s: Option<f64>,
    /// How long `consume` itself took (the node brings the producer here:
    /// find, pipe), seconds.
    pub consume_call_s: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
    /// When its first packet arrived.
    pub first_packet_s: Option<f64>,
    /// Distinct packets received.
    pub received: usize,
    /// Packet indices from the first received to the last (what a lossless
    /// consumer would have got in between).
    pub span: usize,
    /// When the producer left the room as this app saw it.
    pub producer_gone_s: Option<f64>,
    /// When the consumer closed (gone from the app's mirror) while its
    /// producer was still in the room.
    pub closed_early_s: Option<f64>,
    /// Packet indices received.
    #[serde(skip)]
    pub indices: BTreeSet<u32>,
}

/// One participant's story.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ParticipantRecord {
    /// Its number.
    pub index: usize,
    /// Its room.
    pub room: usize,
    /// The node it entered at.
    pub node: usize,
    /// When `room.join` answered, seconds.
    pub joined_s: Option<f64>,
    /// When `produce` answered.
    pub produced_s: Option<f64>,
    /// Its producer's id.
    pub producer: Option<String>,
    /// When it left (`leave` answered); none if it stayed to the end.
    pub left_s: Option<f64>,
    /// When it stopped (left, or the run ended).
    pub stopped_s: f64,
    /// When it was to stop sending and consuming (then it leaves), seconds.
    pub until_s: f64,
    /// What failed.
    pub error: Option<String>,
    /// (producer, when the room's state first showed it to this app).
    pub seen: Vec<(String, f64)>,
    /// Packets it sent.
    pub sent: usize,
    /// When it sent each packet (by index), seconds.
    #[serde(skip)]
    pub sent_at: Vec<f64>,
    /// Its consumers.
    pub consumers: Vec<ConsumerRecord>,
}

/// A per-second sample of one room's inter-node pipes.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PipeSample {
    /// Seconds since the start.
    pub at_s: f64,
    /// Relayed copies of the room's producers' streams over all nodes (one
    /// inter-node pipe each).
    pub pipes: usize,
    /// The fewest that carry every producer to every other node with
    /// participants in the room then.
    pub needed: usize,
    /// Participants in the room then.
    pub participants: usize,
    /// Distinct nodes with participants.
    pub nodes: usize,
}

/// One node's load over the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeLoad {
    /// Node index.
    pub index: usize,
    /// Participants that entered here.
    pub participants: usize,
    /// Mean mediasoup worker CPU over the samples, percent of a core.
    pub cpu_mean_percent: f64,
    /// Highest sample.
    pub cpu_peak_percent: f64,
    /// Most mediasoup consumers at once (pipe consumers included).
    pub consumers_peak: u32,
    /// Most mediasoup producers at once (pipe producers included).
    pub producers_peak: u32,
    /// Most mediasoup transports at once.
    pub transports_peak: u32,
    /// libp2p bytes per second over the run.
    pub control_bytes_per_s: f64,
    #[serde(skip)]
    cpu_samples: Vec<f64>,
}

/// What a run observed.
#[derive(Debug, Clone, Serialize)]
pub struct RoomsObservations {
    /// The scenario.
    pub scenario: RoomsScenario,
    /// Seconds to start every node and let the swarm settle.
    pub startup_s: f64,
    /// Seconds of workload.
    pub run_s: f64,
    /// Participants.
    pub participants: Vec<ParticipantRecord>,
    /// Per room, a pipe sample every second.
    pub pipes: Vec<Vec<PipeSample>>,
    /// Per node.
    pub nodes: Vec<NodeLoad>,
    /// The whole process (every node, every app): CPU time over wall time
    /// during the workload, in cores (this machine has `cores`).
    pub process_cpu_cores: f64,
    /// Cores available.
    pub cores: usize,
    /// The process's peak resident memory, MiB (`VmHWM`).
    pub process_peak_rss_mib: f64,
    /// The machine's 1-minute load average at the start and the end of the
    /// workload (other work on the machine shows here).
    pub loadavg: (f64, f64),
    /// Latencies inside the nodes over the run, from their `/metrics`.
    pub latencies: Vec<Latency>,
}

struct Participant {
    index: usize,
    room: usize,
    node: usize,
    api: SocketAddr,
    arrive: Instant,
    leave: Option<Instant>,
    end: Instant,
    t0: Instant,
    ssrc: u32,
    records: Arc<Mutex<Vec<ParticipantRecord>>>,
}

fn room_id(room: usize) -> String {
    format!("room-{room}")
}

impl Participant {
    async fn run(self) {
        tokio::time::sleep_until(self.arrive.into()).await;
        let index = self.index;
        let until_s = self.leave.unwrap_or(self.end).saturating_duration_since(self.t0).as_secs_f64();
        let mut record = ParticipantRecord { index, room: self.room, node: self.node, until_s, ..Default::default() };
        let result = self.take_part(&mut record).await;
        record.stopped_s = since(self.t0);
        if let Err(error) = result {
            warn!(participant = index, %error, "participant failed");
            record.error = Some(error);
        }
        lock(&self.records).push(record);
    }

    async fn take_part(&self, record: &mut ParticipantRecord) -> Result<(), String> {
        let room = room_id(self.room);
        let target = format!("room:{room}");
        let RoomApp { client, mut events } = RoomApp::connect(self.api).await;
        let app = Arc::new(RoomApp { client, events: tokio::sync::mpsc::channel(1).1 });
        app.call(None, "room.join", json!({ "room": room })).await.map_err(|e| format!("room.join: {e}"))?;
        record.joined_s = Some(since(self.t0));
        let transport = app
            .call(Some(&target), "createPlainTransport", json!({ "comedia": true, "rtcpMux": true }))
            .await
            .map_err(|e| format!("createPlainTransport: {e}"))?;
        let transport_id = transport["id"].as_str().ok_or("no transport id")?.to_owned();
        let port = transport["tuple"]["localPort"].as_u64().and_then(|p| u16::try_from(p).ok()).ok_or("no port")?;
        let produced = app
            .call(
                Some(&transport_id),
                "produce",
                json!({ "kind": "audio", "rtpParameters": opus_parameters(self.ssrc),
                        "appData": { "participant": self.index } }),
            )
            .await
            .map_err(|e| format!("produce: {e}"))?;
        record.produced_s = Some(since(self.t0));
        let own = produced["id"].as_str().ok_or("no producer id")?.to_owned();
        record.producer = Some(own.clone());
        let stop = self.leave.unwrap_or(self.end);

        // Send RTP into the producer until leaving.
        let sender = {
            let socket = UdpSocket::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
            let target = SocketAddr::from(([127, 0, 0, 1], port));
            let count = (stop.saturating_duration_since(Instant::now()).as_secs_f64() / PACKET_INTERVAL.as_secs_f64())
                .ceil() as u32;
            let packets = test_stream(self.ssrc, OPUS_PT, count.max(1));
            let t0 = self.t0;
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(PACKET_INTERVAL);
                let mut sent_at = Vec::with_capacity(packets.len());
                for packet in packets {
                    ticker.tick().await;
                    if Instant::now() >= stop {
                        break;
                    }
                    // A packet that could not be sent counts as sent (and lost).
                    let _ = socket.send_to(&packet.encode(), target).await;
                    sent_at.push(since(t0));
                }
                sent_at
            })
        };

        // Follow the room: consume each producer of another participant as it appears.
        let mut consuming: HashMap<String, (Arc<AtomicBool>, tokio::task::JoinHandle<ConsumerRecord>)> = HashMap::new();
        let mut finished = Vec::new();
        loop {
            let producers = app.producer_ids(&room);
            let now = since(self.t0);
            for producer in &producers {
                if *producer == own || consuming.contains_key(producer) {
                    continue;
                }
                record.seen.push((producer.clone(), now));
                let gone = Arc::new(AtomicBool::new(false));
                let task = tokio::spawn(consume(
                    Arc::clone(&app),
                    room.clone(),
                    producer.clone(),
                    Arc::clone(&gone),
                    stop,
                    self.t0,
                ));
                consuming.insert(producer.clone(), (gone, task));
            }
            // A producer gone from the room: its consumer stops listening; if
            // the room lists it again, it is consumed again, as an app would.
            let vanished: Vec<String> = consuming.keys().filter(|p| !producers.contains(p)).cloned().collect();
            for producer in vanished {
                if let Some((gone, task)) = consuming.remove(&producer) {
                    gone.store(true, Ordering::Relaxed);
                    finished.push(task);
                }
            }
            tokio::select! {
                _ = events.recv() => {}
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = tokio::time::sleep_until(stop.into()) => break,
            }
        }
        for task in finished.into_iter().chain(consuming.into_values().map(|(_, task)| task)) {
            if let Ok(consumer) = task.await {
                record.consumers.push(consumer);
            }
        }
        record.sent_at = sender.await.unwrap_or_default();
        record.sent = record.sent_at.len();
        if self.leave.is_some() {
            app.call(Some(&target), "leave", Value::Null).await.map_err(|e| format!("leave: {e}"))?;
            record.left_s = Some(since(self.t0));
        }
        Ok(())
    }
}

/// Consumes `producer` into a UDP socket of its own and listens until
/// `stop`, or until the room no longer has it (`gone`) and nothing came for
/// a while.
async fn consume(
    app: Arc<RoomApp>,
    room: String,
    producer: String,
    gone: Arc<AtomicBool>,
    stop: Instant,
    t0: Instant,
) -> ConsumerRecord {
    let mut record = ConsumerRecord { producer: producer.clone(), requested_s: since(t0), ..Default::default() };
    let (socket, ssrc, id) = match consume_plain(&app, &room, &producer).await {
        Ok((socket, ssrc, id, took)) => {
            record.consume_call_s = Some(took);
            (socket, ssrc, id)
        }
        Err(error) => {
            record.error = Some(error);
            return record;
        }
    };
    record.consumed_s = Some(since(t0));
    let mut indices = BTreeSet::new();
    let mut buffer = vec![0u8; 2048];
    loop {
        let wait = (Instant::now() + Duration::from_millis(500)).min(stop);
        match tokio::time::timeout_at(wait.into(), socket.recv_from(&mut buffer)).await {
            Ok(Ok((len, _))) => {
                if let Ok(packet) = RtpPacket::parse(&buffer[..len])
                    && packet.ssrc == ssrc
                    && packet.payload.len() >= 5
                    && packet.payload[0] == 0xfc
                {
                    record.first_packet_s.get_or_insert_with(|| since(t0));
                    indices.insert(u32::from_be_bytes([
                        packet.payload[1],
                        packet.payload[2],
                        packet.payload[3],
                        packet.payload[4],
                    ]));
                }
            }
            Ok(Err(_)) => break,
            Err(_) => {
                if Instant::now() >= stop {
                    break;
                }
                if gone.load(Ordering::Relaxed) {
                    record.producer_gone_s.get_or_insert_with(|| since(t0));
                    break;
                }
                if !app.has_object(&id) {
                    // Closed although the room still lists its producer.
                    record.closed_early_s = Some(since(t0));
                    break;
                }
            }
        }
    }
    if gone.load(Ordering::Relaxed) {
        record.producer_gone_s.get_or_insert_with(|| since(t0));
    }
    record.received = indices.len();
    record.span = match (indices.first(), indices.last()) {
        (Some(first), Some(last)) => (last - first + 1) as usize,
        _ => 0,
    };
    record.indices = indices;
    record
}

/// A plain transport sending to a new UDP socket, and a consumer of `producer` on it.
async fn consume_plain(app: &RoomApp, room: &str, producer: &str) -> Result<(UdpSocket, u32, String, f64), String> {
    let target = format!("room:{room}");
    let capabilities = app.room(room).ok_or("not in the room")?["rtpCapabilities"].clone();
    let transport = app
        .call(Some(&target), "createPlainTransport", json!({ "comedia": false, "rtcpMux": true }))
        .await
        .map_err(|e| format!("createPlainTransport: {e}"))?;
    let transport_id = transport["id"].as_str().ok_or("no transport id")?.to_owned();
    let socket = UdpSocket::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let port = socket.local_addr().map_err(|e| e.to_string())?.port();
    app.call(Some(&transport_id), "connect", json!({ "ip": "127.0.0.1", "port": port }))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let asked = Instant::now();
    let answer = app
        .call(Some(&transport_id), "consume", json!({ "producerId": producer, "rtpCapabilities": capabilities }))
        .await
        .map_err(|e| format!("consume: {e}"))?;
    let took = asked.elapsed().as_secs_f64();
    let ssrc = answer["rtpParameters"]["encodings"][0]["ssrc"].as_u64().ok_or("no ssrc")?;
    let id = answer["id"].as_str().ok_or("no consumer id")?.to_owned();
    Ok((socket, u32::try_from(ssrc).map_err(|e| e.to_string())?, id, took))
}

/// Seconds of CPU this process used (user + system), from `/proc/self/stat`.
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else { return 0.0 };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after ')'.
    (ticks(11) + ticks(12)) / 100.0
}

/// The process's peak resident memory in MiB (`VmHWM` in `/proc/self/status`).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// A latency histogram summed over every node's `/metrics`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// The histogram (its Prometheus name and labels).
    pub metric: String,
    /// Observations.
    pub count: f64,
    /// Mean, ms.
    pub mean_ms: f64,
    /// Observations over about 1 s (the 1.024 s bucket).
    pub over_1s: f64,
    /// Observations over about 4 s (the 4.096 s bucket).
    pub over_4s: f64,
}

/// The text of `GET /metrics` at a node's API.
async fn metrics_text(api: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(api).await else { return String::new() };
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut text = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut text)).await;
    text
}

/// Sums histogram `metric` (`name` with `labels`, e.g. `method="stream.pipe"`, as
/// its series spell them) over `texts`.
fn latency(texts: &[String], name: &str, labels: &[&str]) -> Latency {
    let mut sum = 0.0;
    let mut result = Latency { metric: format!("{name}{{{}}}", labels.join(",")), ..Default::default() };
    for line in texts.iter().flat_map(|text| text.lines()) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        if !labels.iter().all(|label| series.contains(label)) {
            continue;
        }
        let over = |le: &str| series.starts_with(&format!("{name}_bucket")) && series.contains(&format!("le=\"{le}\""));
        if series.starts_with(&format!("{name}_sum")) {
            sum += value;
        } else if series.starts_with(&format!("{name}_count")) {
            result.count += value;
        } else if over("1.024") {
            result.over_1s -= value;
        } else if over("4.096") {
            result.over_4s -= value;
        }
    }
    result.over_1s += result.count;
    result.over_4s += result.count;
    result.mean_ms = sum * 1000.0 / result.count.max(1.0);
    result
}

/// The room of a room producer's stream `ROOM:PRODUCERID`.
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

fn room_of_stream(stream: &str) -> Option<usize> {
    let (room, _) = stream.rsplit_once(':')?;
    room.strip_prefix("room-")?.parse().ok()
}

/// Runs `scenario` and returns what happened.
pub async fn run(scenario: &RoomsScenario) -> Result<RoomsObservations, crate::runner::RunError> {
    let mut rng = StdRng::seed_from_u64(scenario.seed);
    let started = Instant::now();
    let mut nodes: Vec<Arc<Node>> = Vec::new();
    let mut apis = Vec::new();
    let mut serving = Vec::new();
    let mut addrs: Vec<Option<Multiaddr>> = Vec::new();
    for i in 0..scenario.nodes {
        let bootstrap = scenario.topology.bootstrap_of(i, &mut rng);
        let mut media = MediaConfig::default();
        media.workers = 1;
        let listen: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("a multiaddr");
        let swarm = SwarmConfig::new(Keypair::generate_ed25519(), vec![listen])
            .with_bootstrap(bootstrap.and_then(|b| addrs[b].clone()).into_iter().collect());
        let mut config = NodeConfig::new(media, swarm);
        if let Some(linger) = scenario.relay_linger_s {
            config.relay_linger = Duration::from_secs_f64(linger);
        }
        let node = Node::start(config)
            .await
            .map_err(|e| crate::runner::RunError::NodeStart { index: i, reason: e.to_string() })?;
        let node = Arc::new(node);
        addrs.push(node.listen_addrs().await.ok().and_then(|a| a.into_iter().next()));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let (api, task) = api::serve_with(Arc::clone(&node), listener, ApiConfig::default())?;
        apis.push(api);
        serving.push(task);
        nodes.push(node);
    }
    // Let Kademlia routing tables and gossip meshes form.
    tokio::time::sleep(Duration::from_secs(2) + Duration::from_millis(100 * scenario.nodes as u64)).await;
    let startup_s = started.elapsed().as_secs_f64();
    info!(nodes = scenario.nodes, startup_s, "swarm up");

    // The participants.
    let spec = &scenario.rooms;
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(scenario.duration_s);
    let records: Arc<Mutex<Vec<ParticipantRecord>>> = Arc::default();
    let mut plan = Vec::new();
    let mut tasks = Vec::new();
    for room in 0..spec.count {
        for p in 0..spec.participants {
            let index = room * spec.participants + p;
            let node = rng.random_range(0..scenario.nodes);
            let arrive = rng.random_range(spec.arrive_from_s..=spec.arrive_until_s);
            let leave = match (spec.stay_from_s, spec.stay_until_s) {
                (Some(from), Some(until)) => {
                    Some(arrive + rng.random_range(from..=until)).filter(|leave| *leave < scenario.duration_s)
                }
                _ => None,
            };
            plan.push((room, node, arrive, leave));
            let participant = Participant {
                index,
                room,
                node,
                api: apis[node],
                arrive: t0 + Duration::from_secs_f64(arrive),
                leave: leave.map(|leave| t0 + Duration::from_secs_f64(leave)),
                end,
                t0,
                ssrc: 0x5200_0000 + index as u32,
                records: Arc::clone(&records),
            };
            tasks.push(tokio::spawn(participant.run()));
        }
    }

    // Sample pipes every second and load every two, until the end.
    let cpu_before = process_cpu_seconds();
    let load_before = loadavg();
    let mut pipes: Vec<Vec<PipeSample>> = vec![Vec::new(); spec.count];
    let mut loads: Vec<NodeLoad> = (0..scenario.nodes)
        .map(|index| NodeLoad {
            index,
            participants: plan.iter().filter(|(_, node, _, _)| *node == index).count(),
            ..Default::default()
        })
        .collect();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut second = 0u64;
    while Instant::now() < end {
        tick.tick().await;
        second += 1;
        let at = since(t0);
        let mut relayed = vec![0usize; spec.count];
        for node in &nodes {
            for stream in node.streams() {
                if stream.upstream.is_some()
                    && let Some(room) = room_of_stream(&stream.stream)
                    && room < spec.count
                {
                    relayed[room] += 1;
                }
            }
        }
        for (room, samples) in pipes.iter_mut().enumerate() {
            // Who is in the room now, by the plan (producing from shortly after arrival).
            let present: Vec<usize> = plan
                .iter()
                .filter(|(r, _, arrive, leave)| *r == room && *arrive <= at && leave.is_none_or(|leave| at < leave))
                .map(|(_, node, _, _)| *node)
                .collect();
            let distinct: BTreeSet<usize> = present.iter().copied().collect();
            let needed =
                present.iter().map(|producer_node| distinct.iter().filter(|node| *node != producer_node).count()).sum();
            samples.push(PipeSample {
                at_s: at,
                pipes: relayed[room],
                needed,
                participants: present.len(),
                nodes: distinct.len(),
            });
        }
        if second.is_multiple_of(2) {
            for (load, node) in loads.iter_mut().zip(&nodes) {
                let workers = node.media().status();
                let cpu = workers.iter().map(|w| f64::from(w.cpu_percent)).sum::<f64>();
                load.cpu_samples.push(cpu);
                load.cpu_peak_percent = load.cpu_peak_percent.max(cpu);
                load.consumers_peak = load.consumers_peak.max(workers.iter().map(|w| w.objects.consumers).sum());
                load.producers_peak = load.producers_peak.max(workers.iter().map(|w| w.objects.producers).sum());
                load.transports_peak = load.transports_peak.max(workers.iter().map(|w| w.objects.transports).sum());
            }
        }
    }
    let run_s = since(t0);
    let process_cpu_cores = (process_cpu_seconds() - cpu_before) / run_s;
    let load_after = loadavg();
    for task in tasks {
        if let Err(error) = task.await {
            warn!(%error, "a participant's task failed");
        }
    }
    for (load, node) in loads.iter_mut().zip(&nodes) {
        load.cpu_mean_percent = load.cpu_samples.iter().sum::<f64>() / load.cpu_samples.len().max(1) as f64;
        load.control_bytes_per_s = crate::runner::bandwidth_bytes(node) as f64 / (startup_s + run_s);
    }
    let process_peak_rss_mib = peak_rss_mib();
    let mut texts = Vec::new();
    for api in &apis {
        texts.push(metrics_text(*api).await);
    }
    let latencies = vec![
        latency(&texts, "mafalda_find_latency_seconds", &[]),
        latency(&texts, "mafalda_rope_call_latency_seconds", &["method=\"stream.pipe\""]),
        latency(&texts, "mafalda_rope_call_latency_seconds", &["method=\"stream.describe\""]),
    ];
    for task in serving {
        task.abort();
    }
    // App sessions (their connections just closed) still hold the nodes:
    // shut each down through its handle.
    for node in nodes {
        node.shutdown().await;
    }
    let mut participants = std::mem::take(&mut *lock(&records));
    participants.sort_by_key(|p| p.index);
    Ok(RoomsObservations {
        scenario: scenario.clone(),
        startup_s,
        run_s,
        participants,
        pipes,
        nodes: loads,
        process_cpu_cores,
        cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        process_peak_rss_mib,
        loadavg: (load_before, load_after),
        latencies,
    })
}

/// A check on behaviour.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// The figures.
    pub detail: String,
}

/// One room's pipes in the report.
#[derive(Debug, Clone, Serialize)]
pub struct RoomPipes {
    /// Room id.
    pub room: String,
    /// Participants over the run.
    pub participants: usize,
    /// Most participants at once.
    pub participants_peak: usize,
    /// Most distinct nodes with participants at once.
    pub nodes_peak: usize,
    /// Most inter-node pipes at once.
    pub pipes_peak: usize,
    /// Most needed at once.
    pub needed_peak: usize,
    /// Mean pipes over the samples with anyone in the room.
    pub pipes_mean: f64,
    /// Mean needed over the same samples.
    pub needed_mean: f64,
}

/// The report of a rooms run.
#[derive(Debug, Clone, Serialize)]
pub struct RoomsReport {
    /// Scenario name.
    pub scenario: String,
    /// Whether every check passed.
    pub passed: bool,
    /// The checks.
    pub checks: Vec<Check>,
    /// `produce` answered at one node to the room's state showing it at an
    /// app at another node (apps in the room before it was produced).
    pub produce_to_changed_remote: Stats,
    /// The same for apps at the producer's own node.
    pub produce_to_changed_local: Stats,
    /// `produce` answered to the first RTP packet at a consumer at another
    /// node (apps in the room before it was produced).
    pub produce_to_first_packet_remote: Stats,
    /// The same at the producer's own node.
    pub produce_to_first_packet_local: Stats,
    /// `room.join` answered to the first packet of each producer already
    /// in the room, at another node.
    pub join_to_first_packet_remote: Stats,
    /// Consumer asked for (transport, connect, consume) to its first packet.
    pub consume_to_first_packet: Stats,
    /// The `consume` call alone (the node finds and pipes the producer).
    pub consume_call: Stats,
    /// Consumers made (or tried).
    pub consumers_tried: usize,
    /// Of those, made.
    pub consumers_made: usize,
    /// Of those, with at least one packet.
    pub consumers_with_media: usize,
    /// Pairs (producer, app) expected to see each other and play.
    pub pairs_expected: usize,
    /// Of those, the app saw the producer.
    pub pairs_seen: usize,
    /// Of those, the app got the producer's media.
    pub pairs_with_media: usize,
    /// Packets received over packets expected (sent from each consumer's
    /// first packet until its producer or its app left, less 300 ms in
    /// flight), over every consumer with media.
    pub delivery: f64,
    /// Consumers that closed while their producer was in the room:
    /// (producer id, app's participant).
    pub closed_early: Vec<(String, usize)>,
    /// Producers that disappeared from the room at an app while their own
    /// app was still producing: (producer id, app's participant).
    pub vanished: Vec<(String, usize)>,
    /// Per room.
    pub rooms: Vec<RoomPipes>,
    /// Per node.
    pub nodes: Vec<NodeLoad>,
    /// Whole-process CPU, cores.
    pub process_cpu_cores: f64,
    /// Cores.
    pub cores: usize,
    /// Whole-process peak RSS, MiB.
    pub process_peak_rss_mib: f64,
    /// The machine's load average at the start and the end.
    pub loadavg: (f64, f64),
    /// Latencies inside the nodes, from their `/metrics`.
    pub latencies: Vec<Latency>,
    /// Startup and workload seconds.
    pub startup_s: f64,
    /// Workload seconds.
    pub run_s: f64,
    /// Consumer errors, by message, with counts.
    pub errors: BTreeMap<String, usize>,
    /// Pairs expected but without media: (producer's participant, app's participant, why).
    pub missing: Vec<(usize, usize, String)>,
}

/// Builds the report.
pub fn build(obs: &RoomsObservations) -> RoomsReport {
    let ms = |s: f64| s * 1000.0;
    let by_producer: HashMap<&str, &ParticipantRecord> =
        obs.participants.iter().filter_map(|p| Some((p.producer.as_deref()?, p))).collect();
    let mut changed_remote = Vec::new();
    let mut changed_local = Vec::new();
    let mut first_remote = Vec::new();
    let mut first_local = Vec::new();
    let mut join_first = Vec::new();
    let mut consume_first = Vec::new();
    let mut consume_call = Vec::new();
    let (mut tried, mut made, mut with_media) = (0, 0, 0);
    let (mut received, mut expected_packets) = (0usize, 0usize);
    let mut closed_early = Vec::new();
    let mut vanished = Vec::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let (mut expected, mut seen_pairs, mut media_pairs) = (0, 0, 0);
    let mut missing = Vec::new();
    for app in &obs.participants {
        for consumer in &app.consumers {
            tried += 1;
            if consumer.consumed_s.is_some() {
                made += 1;
            }
            if let Some(error) = &consumer.error {
                *errors.entry(error.clone()).or_default() += 1;
            }
            let producer_until = by_producer.get(consumer.producer.as_str()).map_or(f64::MAX, |p| p.until_s);
            if consumer.producer_gone_s.is_some_and(|gone| gone < producer_until) {
                vanished.push((consumer.producer.clone(), app.index));
            }
            if let Some(took) = consumer.consume_call_s {
                consume_call.push(ms(took));
            }
            // Closed before its producer's app began to leave (not a race
            // between the consumer's close and the room's change).
            if consumer.closed_early_s.is_some_and(|closed| closed < producer_until) {
                closed_early.push((consumer.producer.clone(), app.index));
            }
            if let (Some(first), Some(&first_index)) = (consumer.first_packet_s, consumer.indices.first()) {
                with_media += 1;
                consume_first.push(ms(first - consumer.requested_s));
                // Expected: every packet its producer sent from the first one
                // received until either left (less what was in flight then).
                if let Some(producer) = by_producer.get(consumer.producer.as_str()) {
                    let until = producer.until_s.min(app.until_s) - IN_FLIGHT;
                    let window: Vec<u32> = (first_index..)
                        .zip(producer.sent_at.iter().skip(first_index as usize))
                        .take_while(|(_, at)| **at <= until)
                        .map(|(index, _)| index)
                        .collect();
                    expected_packets += window.len();
                    received += window.iter().filter(|index| consumer.indices.contains(index)).count();
                }
            }
        }
        let Some(joined) = app.joined_s else { continue };
        for producer in &obs.participants {
            if producer.index == app.index || producer.room != app.room {
                continue;
            }
            let (Some(produced), Some(id)) = (producer.produced_s, producer.producer.as_deref()) else { continue };
            let remote = producer.node != app.node;
            let seen = app.seen.iter().find(|(p, _)| p == id).map(|(_, at)| *at);
            let consumer = app.consumers.iter().find(|c| c.producer == id);
            let first =
                app.consumers.iter().filter(|c| c.producer == id).filter_map(|c| c.first_packet_s).reduce(f64::min);
            // Overlap of the producer's life and the app's stay.
            let overlap = producer.until_s.min(app.until_s) - produced.max(joined);
            if overlap >= OVERLAP.as_secs_f64() {
                expected += 1;
                seen_pairs += usize::from(seen.is_some());
                if first.is_some() {
                    media_pairs += 1;
                } else {
                    let why = match (seen, consumer) {
                        (None, _) => "never seen".to_owned(),
                        (Some(_), None) => "seen, no consumer".to_owned(),
                        (Some(_), Some(c)) => c.error.clone().unwrap_or_else(|| "consumer made, no packet".into()),
                    };
                    missing.push((producer.index, app.index, why));
                }
            }
            if joined < produced {
                if let Some(seen) = seen {
                    if remote { &mut changed_remote } else { &mut changed_local }.push(ms(seen - produced));
                }
                if let Some(first) = first {
                    if remote { &mut first_remote } else { &mut first_local }.push(ms(first - produced));
                }
            } else if let (Some(first), true) = (first, remote) {
                join_first.push(ms(first - joined));
            }
        }
    }
    let rooms: Vec<RoomPipes> = obs
        .pipes
        .iter()
        .enumerate()
        .map(|(room, samples)| {
            let busy: Vec<&PipeSample> = samples.iter().filter(|s| s.participants > 0).collect();
            let mean =
                |f: fn(&PipeSample) -> usize| busy.iter().map(|s| f(s) as f64).sum::<f64>() / busy.len().max(1) as f64;
            RoomPipes {
                room: room_id(room),
                participants: obs.participants.iter().filter(|p| p.room == room).count(),
                participants_peak: samples.iter().map(|s| s.participants).max().unwrap_or(0),
                nodes_peak: samples.iter().map(|s| s.nodes).max().unwrap_or(0),
                pipes_peak: samples.iter().map(|s| s.pipes).max().unwrap_or(0),
                needed_peak: samples.iter().map(|s| s.needed).max().unwrap_or(0),
                pipes_mean: mean(|s| s.pipes),
                needed_mean: mean(|s| s.needed),
            }
        })
        .collect();
    let planned = obs.scenario.rooms.count * obs.scenario.rooms.participants;
    let produced = obs.participants.iter().filter(|p| p.produced_s.is_some()).count();
    let delivery = received as f64 / expected_packets.max(1) as f64;
    let checks = vec![
        Check {
            name: "every participant joins its room and produces".into(),
            passed: produced == planned,
            detail: format!("{produced} of {planned}"),
        },
        Check {
            name: format!("every app sees every producer of its room it overlapped with for {} s", OVERLAP.as_secs()),
            passed: seen_pairs == expected,
            detail: format!("{seen_pairs} of {expected} pairs"),
        },
        Check {
            name: format!("every app gets media of every producer it overlapped with for {} s", OVERLAP.as_secs()),
            passed: media_pairs == expected,
            detail: format!("{media_pairs} of {expected} pairs"),
        },
        Check {
            name:
                "at least 99 % of packets arrive (from each consumer's first packet until its producer or its app left)"
                    .into(),
            passed: delivery >= crate::report::DELIVERY_THRESHOLD,
            detail: format!("{:.2} % ({received} of {expected_packets})", delivery * 100.0),
        },
        Check {
            name: "no live producer disappears from the room at another app".into(),
            passed: vanished.is_empty(),
            detail: format!("{} times (app, producer)", vanished.len()),
        },
        Check {
            name: "no consumer closes while its producer is still in the room".into(),
            passed: closed_early.is_empty(),
            detail: format!("{} closed early", closed_early.len()),
        },
    ];
    RoomsReport {
        scenario: obs.scenario.name.clone(),
        passed: checks.iter().all(|c| c.passed),
        checks,
        produce_to_changed_remote: Stats::of(&changed_remote),
        produce_to_changed_local: Stats::of(&changed_local),
        produce_to_first_packet_remote: Stats::of(&first_remote),
        produce_to_first_packet_local: Stats::of(&first_local),
        join_to_first_packet_remote: Stats::of(&join_first),
        consume_to_first_packet: Stats::of(&consume_first),
        consume_call: Stats::of(&consume_call),
        consumers_tried: tried,
        consumers_made: made,
        consumers_with_media: with_media,
        pairs_expected: expected,
        pairs_seen: seen_pairs,
        pairs_with_media: media_pairs,
        delivery,
        closed_early,
        vanished,
        rooms,
        nodes: obs.nodes.clone(),
        process_cpu_cores: obs.process_cpu_cores,
        cores: obs.cores,
        process_peak_rss_mib: obs.process_peak_rss_mib,
        loadavg: obs.loadavg,
        latencies: obs.latencies.clone(),
        startup_s: obs.startup_s,
        run_s: obs.run_s,
        errors,
        missing,
    }
}

fn stats_row(out: &mut String, name: &str, stats: &Stats) {
    let _ = writeln!(
        out,
        "| {name} | {} | {:.1} ms | {:.1} ms | {:.1} ms |",
        stats.count, stats.p50_ms, stats.p99_ms, stats.max_ms
    );
}

/// The report for people.
pub fn markdown(report: &RoomsReport, scenario: &RoomsScenario) -> String {
    let mut out = String::new();
    let r = &scenario.rooms;
    let _ = writeln!(out, "# Simulation report: {}\n", report.scenario);
    let stay = match (r.stay_from_s, r.stay_until_s) {
        (Some(from), Some(until)) => format!("each leaving after {from}-{until} s or staying to the end"),
        _ => "each staying to the end".into(),
    };
    let _ = writeln!(
        out,
        "{} nodes ({:?} topology, one mediasoup worker each, API on `/v1/rope`); {} rooms of {} participants, each a \
         ROPE connection at a random node, arriving over {}-{} s and {stay}; each publishes one Opus track \
         (createPlainTransport + produce, RTP at 50 packets/s from a UDP socket) and consumes every other producer of \
         its room into a UDP socket. Swarm up in {:.1} s, {:.1} s of workload.\n",
        scenario.nodes,
        scenario.topology,
        r.count,
        r.participants,
        r.arrive_from_s,
        r.arrive_until_s,
        report.startup_s,
        report.run_s
    );
    let _ = writeln!(out, "**Result: {}**\n", if report.passed { "PASS" } else { "FAIL" });
    let _ = writeln!(out, "| check | result | figures |\n|---|---|---|");
    for check in &report.checks {
        let _ = writeln!(out, "| {} | {} | {} |", check.name, if check.passed { "pass" } else { "FAIL" }, check.detail);
    }
    let _ = writeln!(out, "\n| measure | n | p50 | p99 | max |\n|---|---|---|---|---|");
    stats_row(&mut out, "produce → `changed` at an app at another node", &report.produce_to_changed_remote);
    stats_row(&mut out, "produce → `changed` at an app at the same node", &report.produce_to_changed_local);
    stats_row(&mut out, "produce → first packet at another node", &report.produce_to_first_packet_remote);
    stats_row(&mut out, "produce → first packet at the same node", &report.produce_to_first_packet_local);
    stats_row(
        &mut out,
        "join → first packet of a producer already there (other node)",
        &report.join_to_first_packet_remote,
    );
    stats_row(&mut out, "consume (transport + connect + consume) → first packet", &report.consume_to_first_packet);
    stats_row(&mut out, "the `consume` call alone (find and pipe at the node)", &report.consume_call);
    let _ = writeln!(
        out,
        "\n\"produce\" is the moment the producing app got `produce`'s answer; \"changed\" the moment the other app's \
         mirror of `room:<ID>` listed the producer (it then made a plain transport, connected it and consumed). Only \
         apps already in the room when the producer was made count for the produce figures.\n"
    );
    let _ = writeln!(
        out,
        "Inside the nodes (every node's `/metrics` at the end, summed): a `consume` at a node that does not hold \
         the producer's stream first finds it (`find_latency_seconds`: DHT lookup and `stream.describe` of each \
         provider) and then asks one provider to pipe it (`stream.pipe`).\n"
    );
    let _ = writeln!(out, "| histogram | observations | mean | over 1 s | over 4 s |\n|---|---|---|---|---|");
    for latency in &report.latencies {
        let _ = writeln!(
            out,
            "| `{}` | {} | {:.1} ms | {} | {} |",
            latency.metric, latency.count, latency.mean_ms, latency.over_1s, latency.over_4s
        );
    }
    let _ = writeln!(out);
    let share = |part: usize, whole: usize| part as f64 * 100.0 / whole.max(1) as f64;
    let _ = writeln!(
        out,
        "Consumers: {} tried, {} made, {} got media ({:.1} % of those tried). Pairs (app, producer of its room) that \
         overlapped for {} s or more: {}; seen {}, with media {} ({:.1} %). Delivery {:.2} %.\n",
        report.consumers_tried,
        report.consumers_made,
        report.consumers_with_media,
        share(report.consumers_with_media, report.consumers_tried),
        OVERLAP.as_secs(),
        report.pairs_expected,
        report.pairs_seen,
        report.pairs_with_media,
        share(report.pairs_with_media, report.pairs_expected),
        report.delivery * 100.0
    );
    if !report.errors.is_empty() {
        let _ = writeln!(out, "Consumer errors:\n");
        for (error, count) in &report.errors {
            let _ = writeln!(out, "- {count} × {error}");
        }
        let _ = writeln!(out);
    }
    if !report.missing.is_empty() {
        let _ = writeln!(out, "Pairs without media (producer's participant → app's participant: why):\n");
        for (producer, app, why) in report.missing.iter().take(30) {
            let _ = writeln!(out, "- {producer} → {app}: {why}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "Pipes per room: inter-node pipes (relayed copies of the room's producer streams over all nodes), sampled \
         every second, against the fewest that carry every producer to every other node with participants then \
         (\"needed\"; relays linger {} s after their last consumer, so a pipe outlives a leaving participant).\n",
        scenario.relay_linger_s.unwrap_or(10.0)
    );
    let _ = writeln!(
        out,
        "| room | participants | peak at once | peak nodes | pipes peak | needed peak | pipes mean | needed mean |\n\
         |---|---|---|---|---|---|---|---|"
    );
    for room in &report.rooms {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.1} | {:.1} |",
            room.room,
            room.participants,
            room.participants_peak,
            room.nodes_peak,
            room.pipes_peak,
            room.needed_peak,
            room.pipes_mean,
            room.needed_mean
        );
    }
    let _ = writeln!(
        out,
        "\nLoad: the whole process (every node and app) used {:.2} of {} cores during the workload (the machine's load \
         average, other users included, was {:.1} at the start and {:.1} at the end); peak resident memory {:.0} MiB. Per node (worker CPU sampled every 2 s, percent of one core; peaks of mediasoup objects, \
         pipes' included):\n",
        report.process_cpu_cores, report.cores, report.loadavg.0, report.loadavg.1, report.process_peak_rss_mib
    );
    let _ = writeln!(
        out,
        "| node | participants | worker CPU mean | worker CPU peak | consumers peak | producers peak | transports peak | libp2p B/s |\n\
         |---|---|---|---|---|---|---|---|"
    );
    for node in &report.nodes {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} % | {:.1} % | {} | {} | {} | {:.0} |",
            node.index,
            node.participants,
            node.cpu_mean_percent,
            node.cpu_peak_percent,
            node.consumers_peak,
            node.producers_peak,
            node.transports_peak,
            node.control_bytes_per_s
        );
    }
    out
}

/// Writes `report.json` (the report and every observation) and `summary.md` into `dir`.
pub fn write(obs: &RoomsObservations, report: &RoomsReport, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(&json!({ "report": report, "observations": obs }))
        .map_err(std::io::Error::other)?;
    std::fs::write(dir.join("report.json"), json + "\n")?;
    std::fs::write(dir.join("summary.md"), markdown(report, &obs.scenario))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
        name = "r"
        nodes = 3
        topology = "random"
        duration_s = 10
        [rooms]
        count = 1
        participants = 3
        arrive_until_s = 2
    "#;

    #[test]
    fn a_rooms_scenario_is_told_apart_and_checked() {
        assert!(RoomsScenario::is_rooms(SMALL));
        assert!(!RoomsScenario::is_rooms("name = \"x\"\nnodes = 3"));
        let scenario = RoomsScenario::parse(SMALL).expect("valid");
        assert_eq!((scenario.rooms.count, scenario.rooms.participants), (1, 3));
        for (change, expected) in [
            ("participants = 3", "participants = 1"),
            ("arrive_until_s = 2", "arrive_until_s = 20"),
            ("arrive_until_s = 2", "arrive_until_s = 2\nstay_from_s = 1"),
            ("count = 1", "count = 1\nspeed = 2"),
        ] {
            assert!(RoomsScenario::parse(&SMALL.replace(change, expected)).is_err(), "{expected} must be refused");
        }
    }

    #[test]
    fn a_room_producer_stream_names_its_room() {
        assert_eq!(room_of_stream("room-7:0b0c8a4e-8f33-4a5e-9d7e-2f6d1b1f0a01"), Some(7));
        assert_eq!(room_of_stream("cam-a"), None);
    }
}
