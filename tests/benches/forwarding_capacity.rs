//! Forwarding capacity: how many RTP consumers of one stream, at 50 packets/s
//! each, a node serves before loss passes 1 %, against bare mediasoup on the
//! same number of workers, in the same run.
//!
//! `cargo bench -p mafalda-tests --bench forwarding_capacity` measures, for each
//! worker count W (1 and 2 by default):
//! - **bare**: a `MediaEngine` started with W workers (so the workers have the
//!   node's own settings) used as plain mediasoup: one router per worker with the
//!   node's codecs, a plain RTP ingest and its Opus producer on the first router,
//!   piped once (`pipe_producer_to_router`) to every other router, and each
//!   consumer on its own plain transport, round-robin over the routers;
//! - **node**: a real `Node` with W workers: the stream published with
//!   `publish_rtp`, each consumer made with `consume_rtp` (the node's placement
//!   and spanning router decide where it goes).
//!
//! One thread sends the stream (132-byte Opus-like RTP packets, every payload
//! carrying its index) every 20 ms; every consumer sends to its own UDP socket
//! on 127.0.0.1, and one receiving thread drains all those sockets every 250 ms
//! (no wake-up per packet, so receiving costs both sides the same little). Per
//! step the consumer count N is set (added or closed), the system is let settle
//! until every socket is current, then the distinct indices each socket got
//! within a window are counted against those sent. A worker that falls behind
//! shows as loss: what arrives later than the window's end plus a grace is
//! counted lost. N doubles until a window loses more than 1 %, then bisects;
//! a failing window is measured once more before it counts (the machine may be
//! shared). Capacity is the largest N that passed.
//!
//! Printed: each step (N, setup time, loss, worker/receiver/process CPU, the
//! CPU other processes used meanwhile, load average, step time), then one table
//! of W, bare and node capacity, their ratio, worker CPU at capacity, search time.
//!
//! Settings (environment): `FWD_WORKERS` (e.g. `1,2`), `FWD_START` (first N),
//! `FWD_MAX` (largest N; default from the open-file limit, two sockets per
//! consumer), `FWD_WINDOW_SECS` (measuring window, default 4), `FWD_QUICK=1` (a
//! smoke run: W = 1, short windows, coarse bisection, N ≤ 2,000).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mafalda_media::mediasoup::prelude::*;
use mafalda_media::transports::{plain_egress, plain_ingest};
use mafalda_media::{MediaConfig, MediaEngine, consumer_capabilities};
use mafalda_node::codecs::router_codecs;
use mafalda_node::{Codec, Node, NodeConfig, TrackSpec};
use mafalda_tests::media::{LOOPBACK, OPUS_PAYLOAD_TYPE};
use mafalda_tests::rtp::{RtpPacket, test_payload};
use mafalda_tests::swarm::loopback_config;

/// Packets per second each consumer forwards (the one stream's rate).
const RATE: u32 = 50;
/// Loss above which a step fails.
const LOSS_LIMIT: f64 = 0.01;
/// How often the receiving thread drains every socket.
const RECEIVE_TICK: Duration = Duration::from_millis(250);
/// Indices a socket can record within one window (20 s at 50 packets/s).
const WINDOW_SLOTS: usize = 1024;
/// How long after a window's last packet was sent its packets may still arrive.
const GRACE: Duration = Duration::from_millis(600);
/// Longest a step waits for every socket to be current before measuring anyway.
const SETTLE_MAX: Duration = Duration::from_secs(15);
/// How far behind the sender a socket may be and count as current (packets):
/// the receiving tick plus some slack.
const CURRENT_LAG: u32 = 25;
/// Consumers created at once while a step adds them.
const CREATE_CONCURRENCY: usize = 16;
/// The stream's SSRC at the ingest.
const SSRC: u32 = 0x0fa0_0050;
/// Sockets one consumer costs this process: its receiving socket and the
/// mediasoup transport's (workers are threads of this process).
const FDS_PER_CONSUMER: u64 = 2;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads `name`, or `default` when unset; a value that does not parse is
/// reported and replaced by the default.
fn setting<T: std::str::FromStr + std::fmt::Display>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| {
            eprintln!("{name}={text} is not understood; using {default}");
            default
        }),
        Err(_) => default,
    }
}

/// How the search runs.
#[derive(Debug, Clone)]
struct Settings {
    workers: Vec<usize>,
    start: usize,
    max: usize,
    warmup: Duration,
    window: Duration,
    /// Bisection stops when the bracket is narrower than this fraction of N.
    resolution: f64,
}

impl Settings {
    fn from_env() -> Self {
        let quick = setting("FWD_QUICK", 0u8) != 0;
        let workers: Vec<usize> = std::env::var("FWD_WORKERS")
            .ok()
            .map(|text| text.split(',').filter_map(|w| w.trim().parse().ok()).filter(|w| *w > 0).collect())
            .filter(|list: &Vec<usize>| !list.is_empty())
            .unwrap_or_else(|| if quick { vec![1] } else { vec![1, 2] });
        let by_files = open_file_limit().map_or(4000, |limit| (limit.saturating_sub(1000) / FDS_PER_CONSUMER) as usize);
        // The node's workers share one port range of 10,000 ports (40000-49999).
        let ceiling = by_files.min(9000);
        let max = setting("FWD_MAX", if quick { ceiling.min(2000) } else { ceiling }).clamp(10, ceiling);
        let window_secs = setting("FWD_WINDOW_SECS", if quick { 2.0 } else { 4.0_f64 });
        let longest = WINDOW_SLOTS as f64 / f64::from(RATE) - 1.0;
        Self {
            workers,
            start: setting("FWD_START", if quick { 250 } else { 500usize }).clamp(10, max),
            max,
            warmup: Duration::from_secs_f64(if quick { 1.0 } else { 2.0 }),
            window: Duration::from_secs_f64(window_secs.clamp(1.0, longest)),
            resolution: if quick { 0.15 } else { 0.05 },
        }
    }
}

/// The soft limit on open files, from `/proc/self/limits`.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The calling thread's Linux thread id.
fn current_thread_id() -> Option<i32> {
    std::fs::read_link("/proc/thread-self").ok()?.file_name()?.to_str()?.parse().ok()
}

// ---------------------------------------------------------------------------
// Sending and receiving
// ---------------------------------------------------------------------------

/// A thread sending the stream to an ingest, one packet every 20 ms on a fixed
/// schedule; packet `i` carries index `i` in its payload.
struct Sender {
    next: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    thread_id: Arc<AtomicI32>,
    thread: Option<JoinHandle<()>>,
}

impl Sender {
    fn start(target: SocketAddr) -> std::io::Result<Self> {
        let socket = std::net::UdpSocket::bind((LOOPBACK, 0))?;
        let next = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread_id = Arc::new(AtomicI32::new(0));
        let thread = std::thread::Builder::new().name("fwd-sender".into()).spawn({
            let (next, stop, thread_id) = (Arc::clone(&next), Arc::clone(&stop), Arc::clone(&thread_id));
            move || {
                thread_id.store(current_thread_id().unwrap_or(0), Ordering::Relaxed);
                let period = Duration::from_secs(1) / RATE;
                let first_sequence: u16 = rand::random();
                let first_timestamp: u32 = rand::random();
                let started = Instant::now();
                let mut index: u32 = 0;
                while !stop.load(Ordering::Relaxed) {
                    let due = started + period * index;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let packet = RtpPacket {
                        payload_type: OPUS_PAYLOAD_TYPE,
                        marker: index == 0,
                        sequence: first_sequence.wrapping_add(index as u16),
                        timestamp: first_timestamp.wrapping_add(index.wrapping_mul(960)),
                        ssrc: SSRC,
                        payload: test_payload(index, 120),
                    };
                    if let Err(error) = socket.send_to(&packet.encode(), target) {
                        eprintln!("sending RTP: {error}");
                    }
                    index += 1;
                    next.store(index, Ordering::SeqCst);
                }
            }
        })?;
        Ok(Self { next, stop, thread_id, thread: Some(thread) })
    }

    /// The index of the next packet to be sent.
    fn next(&self) -> u32 {
        self.next.load(Ordering::SeqCst)
    }

    fn thread_id(&self) -> Option<i32> {
        Some(self.thread_id.load(Ordering::Relaxed)).filter(|tid| *tid > 0)
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One receiving socket and what it got.
struct Inbox {
    socket: std::net::UdpSocket,
    /// Bit `i` set: index `base + i` arrived.
    seen: [u64; WINDOW_SLOTS / 64],
    /// The highest index it got (+1), 0 before any.
    last: u32,
}

#[derive(Default)]
struct Inboxes {
    inboxes: Vec<Inbox>,
    /// First index of the current window.
    base: u32,
}

/// The index a payload from [`test_payload`] carries (`None` for anything
/// else: RTCP, mediasoup's padding-only probation packets).
fn index_of(datagram: &[u8]) -> Option<u32> {
    let packet = RtpPacket::parse(datagram).ok()?;
    match packet.payload.as_slice() {
        [0xfc, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

impl Inboxes {
    /// Reads every datagram waiting on every socket.
    fn drain(&mut self) {
        let mut buffer = [0u8; 2048];
        let base = self.base;
        for inbox in &mut self.inboxes {
            while let Ok(len) = inbox.socket.recv(&mut buffer) {
                let Some(index) = index_of(&buffer[..len]) else { continue };
                inbox.last = inbox.last.max(index + 1);
                if let Some(slot) = index.checked_sub(base).map(|s| s as usize).filter(|s| *s < WINDOW_SLOTS) {
                    inbox.seen[slot / 64] |= 1 << (slot % 64);
                }
            }
        }
    }
}

/// The receiving sockets, drained by one thread every [`RECEIVE_TICK`].
struct Receivers {
    state: Arc<Mutex<Inboxes>>,
    stop: Arc<AtomicBool>,
    thread_id: Arc<AtomicI32>,
    thread: Option<JoinHandle<()>>,
}

impl Receivers {
    fn start() -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(Inboxes::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread_id = Arc::new(AtomicI32::new(0));
        let thread = std::thread::Builder::new().name("fwd-receiver".into()).spawn({
            let (state, stop, thread_id) = (Arc::clone(&state), Arc::clone(&stop), Arc::clone(&thread_id));
            move || {
                thread_id.store(current_thread_id().unwrap_or(0), Ordering::Relaxed);
                let mut due = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    lock(&state).drain();
                    due += RECEIVE_TICK;
                    match due.checked_duration_since(Instant::now()) {
                        Some(wait) => std::thread::sleep(wait),
                        None => due = Instant::now(),
                    }
                }
            }
        })?;
        Ok(Self { state, stop, thread_id, thread: Some(thread) })
    }

    /// Opens `count` more sockets; returns their addresses.
    fn add(&self, count: usize) -> std::io::Result<Vec<SocketAddr>> {
        let mut fresh = Vec::with_capacity(count);
        for _ in 0..count {
            let socket = std::net::UdpSocket::bind((LOOPBACK, 0))?;
            socket.set_nonblocking(true)?;
            fresh.push(Inbox { socket, seen: [0; WINDOW_SLOTS / 64], last: 0 });
        }
        let addrs = fresh.iter().map(|inbox| inbox.socket.local_addr()).collect::<Result<Vec<_>, _>>()?;
        lock(&self.state).inboxes.extend(fresh);
        Ok(addrs)
    }

    /// Closes the sockets after the first `count`.
    fn truncate(&self, count: usize) {
        lock(&self.state).inboxes.truncate(count);
    }

    /// How many packets the most behind socket lacks, given the sender's next index.
    fn lag(&self, next: u32) -> u32 {
        let state = lock(&self.state);
        state.inboxes.iter().map(|inbox| next.saturating_sub(inbox.last)).max().unwrap_or(0)
    }

    /// Starts a window at index `base`: what arrived before is forgotten.
    fn open_window(&self, base: u32) {
        let mut state = lock(&self.state);
        state.drain();
        state.base = base;
        for inbox in &mut state.inboxes {
            inbox.seen = [0; WINDOW_SLOTS / 64];
        }
    }

    /// Per socket, how many distinct indices in `base..end` arrived.
    fn counts(&self, end: u32) -> Vec<u32> {
        let mut state = lock(&self.state);
        state.drain();
        let span = end.saturating_sub(state.base).min(WINDOW_SLOTS as u32) as usize;
        state
            .inboxes
            .iter()
            .map(|inbox| (0..span).filter(|slot| inbox.seen[slot / 64] & (1 << (slot % 64)) != 0).count() as u32)
            .collect()
    }

    fn thread_id(&self) -> Option<i32> {
        Some(self.thread_id.load(Ordering::Relaxed)).filter(|tid| *tid > 0)
    }
}

impl Drop for Receivers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------
// CPU accounting
// ---------------------------------------------------------------------------

/// Clock ticks per second of `/proc` times.
const TICKS_PER_SECOND: f64 = 100.0;

/// utime + stime of the whole process, in ticks.
fn process_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Busy and total ticks of the whole machine, all cores (`/proc/stat`).
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let values: Vec<u64> =
        stat.lines().next()?.split_whitespace().skip(1).filter_map(|value| value.parse().ok()).collect();
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// The one-minute load average.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// CPU counters at one moment.
struct CpuMark {
    at: Instant,
    workers: Vec<Option<u64>>,
    receiver: Option<u64>,
    sender: Option<u64>,
    process: Option<u64>,
    machine: Option<(u64, u64)>,
}

/// CPU use between two marks, in percent of one core.
#[derive(Debug, Clone, Default)]
struct CpuUse {
    workers: Vec<f64>,
    receiver: f64,
    sender: f64,
    process: f64,
    /// What every other process on the machine used meanwhile.
    others: f64,
}

fn mark(worker_threads: &[Option<i32>], receiver: Option<i32>, sender: Option<i32>) -> CpuMark {
    let ticks = |tid: Option<i32>| tid.and_then(mafalda_media::cpu::thread_ticks);
    CpuMark {
        at: Instant::now(),
        workers: worker_threads.iter().map(|tid| ticks(*tid)).collect(),
        receiver: ticks(receiver),
        sender: ticks(sender),
        process: process_ticks(),
        machine: machine_ticks(),
    }
}

fn cpu_between(from: &CpuMark, to: &CpuMark) -> CpuUse {
    let seconds = to.at.saturating_duration_since(from.at).as_secs_f64().max(0.001);
    let percent = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64 / TICKS_PER_SECOND / seconds * 100.0,
        _ => f64::NAN,
    };
    let process = percent(from.process, to.process);
    let others = match (from.machine, to.machine) {
        // /proc/stat counts in the same USER_HZ ticks, summed over cores.
        (Some((busy0, _)), Some((busy1, _))) => {
            busy1.saturating_sub(busy0) as f64 / TICKS_PER_SECOND / seconds * 100.0 - process
        }
        _ => f64::NAN,
    };
    CpuUse {
        workers: from.workers.iter().zip(&to.workers).map(|(a, b)| percent(*a, *b)).collect(),
        receiver: percent(from.receiver, to.receiver),
        sender: percent(from.sender, to.sender),
        process,
        others: others.max(0.0),
    }
}

// ---------------------------------------------------------------------------
// The two systems under test
// ---------------------------------------------------------------------------

/// The published track: Opus, as the node's RTP ingest takes it.
fn track() -> TrackSpec {
    TrackSpec { kind: MediaKind::Audio, codec: Codec::Opus, payload_type: OPUS_PAYLOAD_TYPE, ssrc: SSRC }
}

/// The node's media settings with `workers` workers; the bare side starts them
/// all at once, the node as its placement needs them.
fn media_config(workers: usize, start_all: bool) -> MediaConfig {
    let mut media = MediaConfig::default();
    media.workers = workers;
    if start_all {
        media.min_workers = workers;
    }
    media
}

/// mediasoup alone: a router per worker, the producer piped once to each
/// other router, consumers round-robin.
struct Bare {
    engine: MediaEngine,
    routers: Vec<Router>,
    producer: Producer,
    _ingest: PlainTransport,
    _pipes: Vec<PipeProducerToRouterPair>,
    consumers: Vec<(PlainTransport, Consumer)>,
}

impl Bare {
    async fn start(workers: usize) -> Result<(Self, SocketAddr), String> {
        let engine = MediaEngine::start(media_config(workers, true)).await.map_err(|e| e.to_string())?;
        let mut routers = Vec::new();
        for worker in engine.workers() {
            let options = RouterOptions::new(router_codecs());
            routers.push(engine.create_router_on(&worker, options).await.map_err(|e| e.to_string())?);
        }
        let home = routers.first().ok_or("no worker started")?.clone();
        let (ingest, addr) = plain_ingest(&home, LOOPBACK, None).await.map_err(|e| e.to_string())?;
        let parameters = track().rtp_parameters().map_err(|e| e.to_string())?;
        let producer =
            ingest.produce(ProducerOptions::new(MediaKind::Audio, parameters)).await.map_err(|e| e.to_string())?;
        let mut pipes = Vec::new();
        for router in routers.iter().skip(1) {
            let options = PipeToRouterOptions::new(router.clone());
            pipes.push(home.pipe_producer_to_router(producer.id(), options).await.map_err(|e| e.to_string())?);
        }
        let bare = Self { engine, routers, producer, _ingest: ingest, _pipes: pipes, consumers: Vec::new() };
        Ok((bare, addr))
    }

    async fn add(&mut self, destinations: &[SocketAddr]) -> Result<(), String> {
        let first = self.consumers.len();
        let producer = self.producer.id();
        let made: Vec<Result<(PlainTransport, Consumer), String>> =
            futures::stream::iter(destinations.iter().enumerate().map(|(i, destination)| {
                let router = self.routers[(first + i) % self.routers.len()].clone();
                async move {
                    let transport = plain_egress(&router, LOOPBACK, *destination).await.map_err(|e| e.to_string())?;
                    let options = ConsumerOptions::new(producer, consumer_capabilities(&router.rtp_capabilities()));
                    let consumer = transport.consume(options).await.map_err(|e| e.to_string())?;
                    Ok((transport, consumer))
                }
            }))
            .buffered(CREATE_CONCURRENCY)
            .collect()
            .await;
        for pair in made {
            self.consumers.push(pair?);
        }
        Ok(())
    }
}

/// A real node on 127.0.0.1 and the egresses it runs.
struct NodeUnderTest {
    node: Node,
    egresses: Vec<String>,
}

impl NodeUnderTest {
    async fn start(workers: usize) -> Result<(Self, SocketAddr), String> {
        let config = NodeConfig::new(media_config(workers, false), loopback_config());
        let node = Node::start(config).await.map_err(|e| e.to_string())?;
        let addr = node.publish_rtp("capacity", vec![track()]).await.map_err(|e| e.to_string())?;
        Ok((Self { node, egresses: Vec::new() }, addr))
    }

    async fn add(&mut self, destinations: &[SocketAddr]) -> Result<(), String> {
        let node = &self.node;
        let made: Vec<Result<String, String>> = futures::stream::iter(destinations.iter().map(|destination| async move {
            node.consume_rtp("capacity", *destination).await.map(|egress| egress.id).map_err(|e| e.to_string())
        }))
        .buffered(CREATE_CONCURRENCY)
        .collect()
        .await;
        for id in made {
            self.egresses.push(id?);
        }
        Ok(())
    }
}

/// Either system, behind the few operations a step needs.
enum System {
    Bare(Bare),
    Node(NodeUnderTest),
}

impl System {
    fn label(&self) -> &'static str {
        match self {
            Self::Bare(_) => "bare",
            Self::Node(_) => "node",
        }
    }

    fn consumers(&self) -> usize {
        match self {
            Self::Bare(bare) => bare.consumers.len(),
            Self::Node(node) => node.egresses.len(),
        }
    }

    fn engine(&self) -> &MediaEngine {
        match self {
            Self::Bare(bare) => &bare.engine,
            Self::Node(node) => node.node.media(),
        }
    }

    async fn add(&mut self, destinations: &[SocketAddr]) -> Result<(), String> {
        match self {
            Self::Bare(bare) => bare.add(destinations).await,
            Self::Node(node) => node.add(destinations).await,
        }
    }

    /// Closes the consumers after the first `count`, newest first.
    fn truncate(&mut self, count: usize) {
        match self {
            Self::Bare(bare) => bare.consumers.truncate(count),
            Self::Node(node) => {
                for id in node.egresses.drain(count.min(node.egresses.len())..) {
                    if let Err(error) = node.node.stop_egress(&id) {
                        eprintln!("stopping {id}: {error}");
                    }
                }
            }
        }
    }

    async fn close(self) {
        match self {
            Self::Bare(bare) => {
                let engine = bare.engine.clone();
                drop(bare);
                engine.close().await;
            }
            Self::Node(node) => node.node.shutdown().await,
        }
    }
}

// ---------------------------------------------------------------------------
// Steps and the search
// ---------------------------------------------------------------------------

/// One measured window at N consumers.
#[derive(Debug, Clone)]
struct Step {
    consumers: usize,
    setup: Duration,
    settled: bool,
    loss: f64,
    worst: f64,
    cpu: CpuUse,
    consumers_per_worker: Vec<u32>,
    load: f64,
    took: Duration,
}

impl Step {
    fn passed(&self) -> bool {
        self.loss <= LOSS_LIMIT
    }

    fn print(&self, label: &str, workers: usize, retry: bool) {
        let list = |values: &[f64]| values.iter().map(|v| format!("{v:.0}%")).collect::<Vec<_>>().join("+");
        let spread = self.consumers_per_worker.iter().map(u32::to_string).collect::<Vec<_>>().join("+");
        println!(
            "  {label} W={workers} N={:>5} {}setup {:>6.1?}{} loss {:>6.2}% (worst socket {:>5.1}%) | CPU workers {} \
             [{spread} consumers] receiver {:.0}% sender {:.0}% process {:.0}% others {:.0}% | load {:.2} | step {:>5.1?} {}",
            self.consumers,
            if retry { "again " } else { "" },
            self.setup,
            if self.settled { "" } else { " (not settled)" },
            self.loss * 100.0,
            self.worst * 100.0,
            list(&self.cpu.workers),
            self.cpu.receiver,
            self.cpu.sender,
            self.cpu.process,
            self.cpu.others,
            self.load,
            self.took,
            if self.passed() { "pass" } else { "FAIL" },
        );
    }
}

/// A system, its stream's sender and the receiving sockets.
struct Rig {
    system: System,
    sender: Sender,
    receivers: Receivers,
    workers: usize,
}

impl Rig {
    async fn start(node: bool, workers: usize) -> Result<Self, String> {
        let (system, ingest) = if node {
            let (node, addr) = NodeUnderTest::start(workers).await?;
            (System::Node(node), addr)
        } else {
            let (bare, addr) = Bare::start(workers).await?;
            (System::Bare(bare), addr)
        };
        let sender = Sender::start(ingest).map_err(|e| e.to_string())?;
        let receivers = Receivers::start().map_err(|e| e.to_string())?;
        Ok(Self { system, sender, receivers, workers })
    }

    /// Adds or closes consumers until there are `count`.
    async fn resize(&mut self, count: usize) -> Result<(), String> {
        let have = self.system.consumers();
        if count > have {
            let destinations = self.receivers.add(count - have).map_err(|e| e.to_string())?;
            self.system.add(&destinations).await?;
        } else {
            self.system.truncate(count);
            self.receivers.truncate(count);
        }
        Ok(())
    }

    /// Measures one window at the current consumer count.
    async fn measure(&self, settings: &Settings, setup: Duration, began: Instant) -> Step {
        tokio::time::sleep(settings.warmup).await;
        let settling = Instant::now();
        let mut settled = false;
        while settling.elapsed() < SETTLE_MAX {
            if self.receivers.lag(self.sender.next()) <= CURRENT_LAG {
                settled = true;
                break;
            }
            tokio::time::sleep(RECEIVE_TICK).await;
        }
        let status = self.system.engine().status();
        let threads: Vec<Option<i32>> = status.iter().map(|worker| worker.thread_id).collect();
        let (receiver, sender) = (self.receivers.thread_id(), self.sender.thread_id());
        let first = self.sender.next();
        self.receivers.open_window(first);
        let from = mark(&threads, receiver, sender);
        tokio::time::sleep(settings.window).await;
        let end = self.sender.next();
        let to = mark(&threads, receiver, sender);
        tokio::time::sleep(GRACE).await;
        let counts = self.receivers.counts(end);
        let sent = end.saturating_sub(first).max(1);
        let expected = f64::from(sent) * counts.len().max(1) as f64;
        let got: f64 = counts.iter().map(|c| f64::from(*c)).sum();
        let fewest = counts.iter().copied().min().unwrap_or(0);
        Step {
            consumers: self.system.consumers(),
            setup,
            settled,
            loss: (1.0 - got / expected).max(0.0),
            worst: 1.0 - f64::from(fewest) / f64::from(sent),
            cpu: cpu_between(&from, &to),
            consumers_per_worker: self.system.engine().status().iter().map(|w| w.objects.consumers).collect(),
            load: load_average(),
            took: began.elapsed(),
        }
    }

    /// Sets N and measures; a failing window that is not clearly overloaded is
    /// measured once more, and the better of the two counts.
    async fn step(&mut self, count: usize, settings: &Settings) -> Result<Step, String> {
        let began = Instant::now();
        self.resize(count).await?;
        let setup = began.elapsed();
        let first = self.measure(settings, setup, began).await;
        first.print(self.system.label(), self.workers, false);
        if first.passed() || first.loss > 0.10 {
            return Ok(first);
        }
        let second = self.measure(settings, Duration::ZERO, Instant::now()).await;
        second.print(self.system.label(), self.workers, true);
        Ok(if second.loss < first.loss { second } else { first })
    }

    async fn close(self) {
        let Self { system, sender, receivers, .. } = self;
        drop(sender);
        system.close().await;
        drop(receivers);
    }
}

/// What one search found.
struct Search {
    /// The largest N that passed, with its window.
    capacity: Option<Step>,
    /// True when even the largest N allowed passed.
    at_ceiling: bool,
    took: Duration,
}

/// Rounds N for display-friendly steps.
fn round(n: usize) -> usize {
    if n >= 200 { n / 10 * 10 } else { n.max(1) }
}

/// Doubles N until a window fails, then bisects to the settings' resolution.
async fn search(node: bool, workers: usize, settings: &Settings) -> Result<Search, String> {
    let began = Instant::now();
    let mut rig = Rig::start(node, workers).await?;
    let mut good: Option<Step> = None;
    let mut bad: Option<usize> = None;
    let mut n = settings.start;
    // Up until a failure (or down, when the very first N fails).
    loop {
        let step = rig.step(n, settings).await?;
        if step.passed() {
            let at_max = n >= settings.max;
            good = Some(step);
            if at_max || bad.is_some() {
                break;
            }
            n = (n * 2).min(settings.max);
        } else {
            bad = Some(n);
            if good.is_some() || n <= 10 {
                break;
            }
            n = round(n / 2);
        }
    }
    while let (Some(lo), Some(hi)) = (good.as_ref().map(|s| s.consumers), bad) {
        if (hi - lo) as f64 <= (lo as f64 * settings.resolution).max(10.0) {
            break;
        }
        let mid = round(lo + (hi - lo) / 2);
        if mid <= lo || mid >= hi {
            break;
        }
        let step = rig.step(mid, settings).await?;
        if step.passed() {
            good = Some(step);
        } else {
            bad = Some(mid);
        }
    }
    rig.close().await;
    Ok(Search { at_ceiling: bad.is_none(), capacity: good, took: began.elapsed() })
}

fn main() {
    let settings = Settings::from_env();
    println!(
        "forwarding capacity: one Opus stream at {RATE} packets/s, consumers added until loss passes {:.0} %; \
         workers {:?}, N from {} up to {}, window {:.1?}, warm-up {:.1?}",
        LOSS_LIMIT * 100.0,
        settings.workers,
        settings.start,
        settings.max,
        settings.window,
        settings.warmup
    );
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let load_before = load_average();
    println!("machine: {cores} cores, load average {load_before:.2} at start");
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("no runtime: {error}");
            return;
        }
    };
    let mut rows = Vec::new();
    runtime.block_on(async {
        for &workers in &settings.workers {
            let mut results = Vec::new();
            for node in [false, true] {
                match search(node, workers, &settings).await {
                    Ok(found) => results.push(Some(found)),
                    Err(error) => {
                        eprintln!("{} W={workers}: {error}", if node { "node" } else { "bare" });
                        results.push(None);
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            rows.push((workers, results));
        }
    });
    let load_after = load_average();
    println!();
    println!(
        "| W | bare capacity | node capacity | node/bare | worker CPU at capacity, bare | worker CPU at capacity, node | search time bare / node |"
    );
    println!("|---|---|---|---|---|---|---|");
    let capacity = |search: &Option<Search>| -> String {
        match search {
            Some(Search { capacity: Some(step), at_ceiling, .. }) => {
                format!("{}{}", if *at_ceiling { "≥ " } else { "" }, step.consumers)
            }
            Some(_) => "< 10".into(),
            None => "error".into(),
        }
    };
    let worker_cpu = |search: &Option<Search>| -> String {
        match search.as_ref().and_then(|s| s.capacity.as_ref()) {
            Some(step) => step.cpu.workers.iter().map(|v| format!("{v:.0}%")).collect::<Vec<_>>().join(" + "),
            None => "-".into(),
        }
    };
    let took = |search: &Option<Search>| search.as_ref().map_or("-".into(), |s| format!("{:.0?}", s.took));
    let mut ratios = Vec::new();
    for (workers, results) in &rows {
        let (bare, node) = (&results[0], &results[1]);
        let of = |s: &Option<Search>| s.as_ref().and_then(|s| s.capacity.as_ref()).map(|step| step.consumers as f64);
        let ratio = match (of(bare), of(node)) {
            (Some(b), Some(n)) if b > 0.0 => {
                ratios.push(format!("W={workers} {:.2}", n / b));
                format!("{:.2}", n / b)
            }
            _ => "-".into(),
        };
        println!(
            "| {workers} | {} | {} | {ratio} | {} | {} | {} / {} |",
            capacity(bare),
            capacity(node),
            worker_cpu(bare),
            worker_cpu(node),
            took(bare),
            took(node)
        );
    }
    println!();
    println!("forwarding-capacity ratio (node / bare mediasoup): {}", ratios.join(", "));
    println!("load average {load_before:.2} at start, {load_after:.2} at the end ({cores} cores)");
}
