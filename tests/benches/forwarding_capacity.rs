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
//!   and spanning router decide where it goes);
//! - with `FWD_DIAGNOSE=1`, also **bare+stats**: bare, plus what the node's
//!   liveness check asks of the workers (every consumer's `get_stats`, one after
//!   another, every 500 ms), to tell how much of a gap that explains.
//!
//! One thread sends the stream (132-byte Opus-like RTP packets, each payload
//! carrying its index) every 20 ms; every consumer sends to its own UDP socket
//! on 127.0.0.1, and one receiving thread drains all those sockets every 50 ms
//! (no wake-up per packet, so receiving costs both sides the same, little). A
//! packet counts as delivered when it arrives within 200 ms of being sent: a
//! worker that cannot keep up falls behind, and its packets miss the deadline.
//!
//! Each step starts the system afresh with N consumers, the sender paused;
//! once nothing moves the sender resumes, the warm-up passes, every socket is
//! let become current, and then the distinct indices each socket got on time
//! within a window are counted against those sent. Per system, N doubles until
//! a window loses more than 1 %, then the bracket is bisected; a failing window
//! that is not clearly overloaded is measured once more (the machine may be
//! shared). The systems' steps are taken in turn, so that both see the machine
//! in the same state. Capacity is the largest N that passed. Then, at 4/5 of
//! the smaller capacity, each system is measured again in longer windows, in
//! turn, for its CPU time per forwarded packet: the ratio of those is a second
//! estimate of the capacity ratio that a busy machine disturbs less.
//!
//! Printed: each step (N, setup time, loss and late share, worker, receiver,
//! sender and process CPU, the CPU other processes used meanwhile, µs per
//! packet, load average, step time), then one table per run: W, bare and node
//! capacity, their ratio, worker CPU at capacity, µs per packet at the same N,
//! steps and time of each search.
//!
//! Settings (environment): `FWD_WORKERS` (e.g. `1,2`), `FWD_START` (first N,
//! default 500), `FWD_MAX` (largest N; default from the open-file limit, two
//! sockets per consumer, at most 9,000), `FWD_WINDOW_SECS` (window, default
//! 4), `FWD_COST_ROUNDS` (cost windows per system, default 2), `FWD_DIAGNOSE=1`,
//! `FWD_WAIT_IDLE_SECS` (on a shared machine: before each window, wait up to
//! this long until other processes use under 30 % of a core; default 0),
//! `FWD_COST_AT=N` (no search: only the CPU-per-packet comparison at N, to check
//! a change quickly), `FWD_QUICK=1` (a smoke run of about a minute: W = 1,
//! short windows, coarse bisection, N ≤ 2,000).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
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
/// A packet that arrives later than this after it was sent counts as lost
/// (real-time media: a jitter buffer would have given up on it).
const DEADLINE: Duration = Duration::from_millis(200);
/// How often the receiving thread drains every socket (arrival times are
/// known to within this, so it is well under [`DEADLINE`]).
const RECEIVE_TICK: Duration = Duration::from_millis(50);
/// Indices a socket can record within one window (20 s at 50 packets/s).
const WINDOW_SLOTS: usize = 1024;
/// How long after a window's last packet was sent its packets may still arrive.
const GRACE: Duration = Duration::from_millis(350);
/// Longest a step waits for every socket to be current before measuring anyway.
const SETTLE_MAX: Duration = Duration::from_secs(5);
/// How far behind the sender a socket may be and count as current (packets).
const CURRENT_LAG: u32 = 10;
/// Longest a step waits, with the sender paused, for what is queued to drain
/// and for closed consumers to be gone.
const QUIET_MAX: Duration = Duration::from_secs(30);
/// Consumers created at once while a step adds them.
const CREATE_CONCURRENCY: usize = 16;
/// The stream's SSRC at the ingest.
const SSRC: u32 = 0x0fa0_0050;
/// Sockets one consumer costs this process: its receiving socket and the
/// mediasoup transport's (workers are threads of this process).
const FDS_PER_CONSUMER: u64 = 2;
/// Ports the workers' transports take (both systems): wider than the node's
/// default 40000-49999, so that thousands of consumers fit.
const WORKER_PORTS: std::ops::RangeInclusive<u16> = 20000..=59999;
/// Ports the receiving sockets take, apart from the workers' (an ephemeral
/// port would often fall in their range and leave them short).
const RECEIVER_PORTS: std::ops::RangeInclusive<u16> = 10000..=19999;
/// Send times remembered (packets), far more than a window and its grace.
const SEND_LOG: usize = 4096;

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
    /// Also search bare mediasoup with the node's stats polling added.
    diagnose: bool,
    /// Windows per system for the cost comparison.
    cost_rounds: u32,
    /// Only the cost comparison, at this N (no capacity search).
    cost_at: Option<usize>,
    /// How long a window may wait for other processes to calm down.
    wait_for_idle: Duration,
    /// How long each cost window is.
    cost_window: Duration,
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
        // The receiving sockets have 10,000 ports.
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
            diagnose: setting("FWD_DIAGNOSE", 0u8) != 0,
            cost_rounds: setting("FWD_COST_ROUNDS", if quick { 1 } else { 2u32 }),
            cost_at: Some(setting("FWD_COST_AT", 0usize).min(max)).filter(|n| *n > 0),
            wait_for_idle: Duration::from_secs_f64(setting("FWD_WAIT_IDLE_SECS", 0.0_f64).clamp(0.0, 3600.0)),
            cost_window: Duration::from_secs_f64((window_secs * 2.0).clamp(1.0, longest)),
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

/// What the sender has sent and when, shared with the receiving thread.
struct SendLog {
    epoch: Instant,
    /// The index of the next packet to be sent.
    next: AtomicU32,
    /// While set, nothing is sent (what is queued drains).
    paused: AtomicBool,
    /// Nanoseconds after `epoch` at which packet `i` was sent, at `i % SEND_LOG`.
    sent_at: Vec<AtomicU64>,
}

impl SendLog {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            next: AtomicU32::new(0),
            paused: AtomicBool::new(false),
            sent_at: (0..SEND_LOG).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn next(&self) -> u32 {
        self.next.load(Ordering::SeqCst)
    }

    /// When packet `index` was sent, if it was and is still remembered.
    fn sent_at(&self, index: u32) -> Option<Instant> {
        let next = self.next();
        if index >= next || (next - index) as usize >= SEND_LOG {
            return None;
        }
        let nanos = self.sent_at[index as usize % SEND_LOG].load(Ordering::SeqCst);
        Some(self.epoch + Duration::from_nanos(nanos))
    }
}

/// A thread sending the stream to an ingest, one packet every 20 ms on a fixed
/// schedule (restarted after a pause, never caught up in a burst); packet `i`
/// carries index `i` in its payload.
struct Sender {
    log: Arc<SendLog>,
    stop: Arc<AtomicBool>,
    thread_id: Arc<AtomicI32>,
    thread: Option<JoinHandle<()>>,
}

impl Sender {
    fn start(target: SocketAddr) -> std::io::Result<Self> {
        let socket = std::net::UdpSocket::bind((LOOPBACK, 0))?;
        let log = Arc::new(SendLog::new());
        let stop = Arc::new(AtomicBool::new(false));
        let thread_id = Arc::new(AtomicI32::new(0));
        let thread = std::thread::Builder::new().name("fwd-sender".into()).spawn({
            let (log, stop, thread_id) = (Arc::clone(&log), Arc::clone(&stop), Arc::clone(&thread_id));
            move || {
                thread_id.store(current_thread_id().unwrap_or(0), Ordering::Relaxed);
                let period = Duration::from_secs(1) / RATE;
                let first_sequence: u16 = rand::random();
                let first_timestamp: u32 = rand::random();
                let mut index: u32 = 0;
                let mut schedule: Option<(Instant, u32)> = None;
                while !stop.load(Ordering::Relaxed) {
                    if log.paused.load(Ordering::SeqCst) {
                        schedule = None;
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    let (started, first) = *schedule.get_or_insert((Instant::now(), index));
                    let due = started + period * (index - first);
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
                    let bytes = packet.encode();
                    let nanos = u64::try_from(log.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    log.sent_at[index as usize % SEND_LOG].store(nanos, Ordering::SeqCst);
                    if let Err(error) = socket.send_to(&bytes, target) {
                        eprintln!("sending RTP: {error}");
                    }
                    index += 1;
                    log.next.store(index, Ordering::SeqCst);
                }
            }
        })?;
        Ok(Self { log, stop, thread_id, thread: Some(thread) })
    }

    /// The index of the next packet to be sent.
    fn next(&self) -> u32 {
        self.log.next()
    }

    fn pause(&self) {
        self.log.paused.store(true, Ordering::SeqCst);
    }

    fn resume(&self) {
        self.log.paused.store(false, Ordering::SeqCst);
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

/// Bits, one per index of a window.
type Bits = [u64; WINDOW_SLOTS / 64];

/// One receiving socket and what it got.
struct Inbox {
    socket: std::net::UdpSocket,
    /// Bit `i` set: index `base + i` arrived within the deadline.
    on_time: Bits,
    /// Bit `i` set: index `base + i` arrived, after the deadline.
    late: Bits,
    /// The highest index it got (+1), 0 before any.
    last: u32,
}

/// Every receiving socket and the current window.
struct Inboxes {
    inboxes: Vec<Inbox>,
    log: Arc<SendLog>,
    /// First index of the current window.
    base: u32,
    /// Packets of the stream received so far, all sockets.
    total: u64,
    /// The next port to try in [`RECEIVER_PORTS`].
    next_port: u16,
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

fn set(bits: &mut Bits, slot: usize) {
    bits[slot / 64] |= 1 << (slot % 64);
}

fn is_set(bits: &Bits, slot: usize) -> bool {
    bits[slot / 64] & (1 << (slot % 64)) != 0
}

impl Inboxes {
    /// Reads every datagram waiting on every socket; each counts as arrived
    /// now (within a receiving tick of its real arrival).
    fn drain(&mut self) {
        let mut buffer = [0u8; 2048];
        let base = self.base;
        for inbox in &mut self.inboxes {
            let now = Instant::now();
            while let Ok(len) = inbox.socket.recv(&mut buffer) {
                let Some(index) = index_of(&buffer[..len]) else { continue };
                self.total += 1;
                inbox.last = inbox.last.max(index.saturating_add(1));
                let Some(slot) = index.checked_sub(base).map(|s| s as usize).filter(|s| *s < WINDOW_SLOTS) else {
                    continue;
                };
                let on_time =
                    self.log.sent_at(index).is_some_and(|sent| now.saturating_duration_since(sent) <= DEADLINE);
                set(if on_time { &mut inbox.on_time } else { &mut inbox.late }, slot);
            }
        }
    }
}

/// What one window delivered, over all sockets.
#[derive(Debug, Clone, Copy, Default)]
struct Delivery {
    /// Packets expected (sent in the window × sockets).
    expected: u64,
    /// Distinct packets that arrived within the deadline.
    on_time: u64,
    /// Distinct packets that arrived, but late.
    late: u64,
    /// The fewest on time at one socket, as a share of those sent.
    worst: f64,
}

/// The receiving sockets, drained by one thread every [`RECEIVE_TICK`].
struct Receivers {
    state: Arc<Mutex<Inboxes>>,
    stop: Arc<AtomicBool>,
    thread_id: Arc<AtomicI32>,
    thread: Option<JoinHandle<()>>,
}

impl Receivers {
    fn start(log: Arc<SendLog>) -> std::io::Result<Self> {
        let inboxes = Inboxes { inboxes: Vec::new(), log, base: 0, total: 0, next_port: *RECEIVER_PORTS.start() };
        let state = Arc::new(Mutex::new(inboxes));
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
        let mut port = lock(&self.state).next_port;
        let span = RECEIVER_PORTS.len();
        for _ in 0..count {
            let mut tried = 0;
            let socket = loop {
                port = if RECEIVER_PORTS.contains(&port) { port } else { *RECEIVER_PORTS.start() };
                tried += 1;
                match std::net::UdpSocket::bind((LOOPBACK, port)) {
                    Ok(socket) => break socket,
                    Err(error) if tried >= span => return Err(error),
                    Err(_) => port = port.wrapping_add(1),
                }
            };
            port = port.wrapping_add(1);
            socket.set_nonblocking(true)?;
            fresh.push(Inbox { socket, on_time: [0; WINDOW_SLOTS / 64], late: [0; WINDOW_SLOTS / 64], last: 0 });
        }
        let addrs = fresh.iter().map(|inbox| inbox.socket.local_addr()).collect::<Result<Vec<_>, _>>()?;
        let mut state = lock(&self.state);
        state.inboxes.extend(fresh);
        state.next_port = port;
        Ok(addrs)
    }

    /// Packets of the stream received so far, all sockets.
    fn total(&self) -> u64 {
        let mut state = lock(&self.state);
        state.drain();
        state.total
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
            inbox.on_time = [0; WINDOW_SLOTS / 64];
            inbox.late = [0; WINDOW_SLOTS / 64];
        }
    }

    /// What arrived of indices `base..end`.
    fn delivery(&self, end: u32) -> Delivery {
        let mut state = lock(&self.state);
        state.drain();
        let span = end.saturating_sub(state.base).min(WINDOW_SLOTS as u32) as usize;
        let mut delivery = Delivery { worst: 1.0, ..Delivery::default() };
        for inbox in &state.inboxes {
            let on_time = (0..span).filter(|slot| is_set(&inbox.on_time, *slot)).count() as u64;
            let late = (0..span).filter(|slot| !is_set(&inbox.on_time, *slot) && is_set(&inbox.late, *slot)).count();
            delivery.expected += span as u64;
            delivery.on_time += on_time;
            delivery.late += late as u64;
            delivery.worst = delivery.worst.min(on_time as f64 / span.max(1) as f64);
        }
        delivery
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
// The systems under test
// ---------------------------------------------------------------------------

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// mediasoup alone.
    Bare,
    /// mediasoup alone, plus what the node's liveness check asks of it: every
    /// consumer's `get_stats`, one after another, every 500 ms.
    BarePolled,
    /// A real node.
    Node,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::Bare => "bare",
            Self::BarePolled => "bare+stats",
            Self::Node => "node",
        }
    }
}

/// How often [`Kind::BarePolled`] reads every consumer's stats (the node's
/// liveness check interval).
const STATS_INTERVAL: Duration = Duration::from_millis(500);

/// The published track: Opus, as the node's RTP ingest takes it.
fn track() -> TrackSpec {
    TrackSpec { kind: MediaKind::Audio, codec: Codec::Opus, payload_type: OPUS_PAYLOAD_TYPE, ssrc: SSRC }
}

/// The node's media settings with `workers` workers; the bare side starts them
/// all at once, the node as its placement needs them.
fn media_config(workers: usize, start_all: bool) -> MediaConfig {
    let mut media = MediaConfig::default();
    media.workers = workers;
    media.rtc_ports = WORKER_PORTS;
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
    poller: Option<tokio::task::JoinHandle<()>>,
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
        let bare =
            Self { engine, routers, producer, _ingest: ingest, _pipes: pipes, consumers: Vec::new(), poller: None };
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

    /// Reads every consumer's stats, one after another, every
    /// [`STATS_INTERVAL`], as the node's liveness check does with its egresses.
    fn poll_stats(&mut self) {
        let consumers: Vec<Consumer> = self.consumers.iter().map(|(_, consumer)| consumer.clone()).collect();
        self.poller = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(STATS_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                for consumer in &consumers {
                    let _ = consumer.get_stats().await;
                }
            }
        }));
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        if let Some(poller) = self.poller.take() {
            poller.abort();
        }
    }
}

/// A real node on 127.0.0.1 and the egresses it runs.
struct NodeUnderTest {
    node: Node,
    egresses: usize,
}

impl NodeUnderTest {
    async fn start(workers: usize) -> Result<(Self, SocketAddr), String> {
        let config = NodeConfig::new(media_config(workers, false), loopback_config());
        let node = Node::start(config).await.map_err(|e| e.to_string())?;
        let addr = node.publish_rtp("capacity", vec![track()]).await.map_err(|e| e.to_string())?;
        Ok((Self { node, egresses: 0 }, addr))
    }

    async fn add(&mut self, destinations: &[SocketAddr]) -> Result<(), String> {
        let node = &self.node;
        let made: Vec<Result<(), String>> = futures::stream::iter(destinations.iter().map(|destination| async move {
            node.consume_rtp("capacity", *destination).await.map(|_| ()).map_err(|e| e.to_string())
        }))
        .buffered(CREATE_CONCURRENCY)
        .collect()
        .await;
        for result in made {
            result?;
            self.egresses += 1;
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
    fn consumers(&self) -> usize {
        match self {
            Self::Bare(bare) => bare.consumers.len(),
            Self::Node(node) => node.egresses,
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
    /// Starting the system, adding the consumers, waiting until it is quiet.
    setup: Duration,
    /// Whether every socket was current before the window opened.
    settled: bool,
    /// Share of packets that did not arrive within the deadline.
    loss: f64,
    /// Share that arrived, but late.
    late: f64,
    /// The loss at the socket that lost most.
    worst: f64,
    cpu: CpuUse,
    /// Worker CPU time per packet forwarded to a consumer, in microseconds.
    worker_us: f64,
    /// The process's CPU time per packet, less the sending and receiving
    /// threads' (so: workers, mediasoup's channel, the node), in microseconds.
    process_us: f64,
    consumers_per_worker: Vec<u32>,
    load: f64,
    took: Duration,
}

impl Step {
    fn passed(&self) -> bool {
        self.loss <= LOSS_LIMIT
    }

    /// One line; `tag` says what kind of window it was ("again", "cost").
    fn print(&self, kind: Kind, workers: usize, tag: &str) {
        let list = |values: &[f64]| values.iter().map(|v| format!("{v:.0}%")).collect::<Vec<_>>().join("+");
        let spread = self.consumers_per_worker.iter().map(u32::to_string).collect::<Vec<_>>().join("+");
        println!(
            "  {:<10} W={workers} N={:>5} {}setup {:>6.1?}{} | loss {:>6.2}% (late {:.2}%, worst socket {:.1}%) \
             | CPU workers {} [{spread} consumers] receiver {:.0}% sender {:.0}% process {:.0}% others {:.0}% \
             | {:.2} µs/packet in workers, {:.2} in the process | load {:.2} | step {:>5.1?} {}",
            kind.label(),
            self.consumers,
            if tag.is_empty() { String::new() } else { format!("{tag} ") },
            self.setup,
            if self.settled { "" } else { " (not settled)" },
            self.loss * 100.0,
            self.late * 100.0,
            self.worst * 100.0,
            list(&self.cpu.workers),
            self.cpu.receiver,
            self.cpu.sender,
            self.cpu.process,
            self.cpu.others,
            self.worker_us,
            self.process_us,
            self.load,
            self.took,
            if self.passed() { "pass" } else { "FAIL" },
        );
    }
}

/// CPU other processes may use (percent of one core) for the machine to
/// count as idle enough to measure on.
const IDLE_ENOUGH: f64 = 30.0;

/// Waits, up to `longest`, until other processes use less than
/// [`IDLE_ENOUGH`] CPU over a second; says how long it waited.
async fn wait_for_idle_machine(longest: Duration) {
    if longest.is_zero() {
        return;
    }
    let started = Instant::now();
    loop {
        let before = mark(&[], None, None);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let others = cpu_between(&before, &mark(&[], None, None)).others;
        if others < IDLE_ENOUGH || started.elapsed() >= longest {
            if started.elapsed() > Duration::from_secs(2) {
                println!(
                    "  (waited {:.0?} for other processes to calm down; they use {others:.0}% now)",
                    started.elapsed()
                );
            }
            return;
        }
    }
}

/// A system, its stream's sender and the receiving sockets.
struct Rig {
    system: System,
    sender: Sender,
    receivers: Receivers,
}

impl Rig {
    /// Starts `kind` on `workers` workers with `consumers` consumers; the
    /// sender stays paused.
    async fn start(kind: Kind, workers: usize, consumers: usize) -> Result<Self, String> {
        let (system, ingest) = match kind {
            Kind::Node => {
                let (node, addr) = NodeUnderTest::start(workers).await?;
                (System::Node(node), addr)
            }
            Kind::Bare | Kind::BarePolled => {
                let (bare, addr) = Bare::start(workers).await?;
                (System::Bare(bare), addr)
            }
        };
        let sender = Sender::start(ingest).map_err(|e| e.to_string())?;
        sender.pause();
        let receivers = Receivers::start(Arc::clone(&sender.log)).map_err(|e| e.to_string())?;
        let mut rig = Self { system, sender, receivers };
        let destinations = rig.receivers.add(consumers).map_err(|e| e.to_string())?;
        let added = rig.system.add(&destinations).await;
        if let Err(error) = added {
            rig.close().await;
            return Err(error);
        }
        if let (Kind::BarePolled, System::Bare(bare)) = (kind, &mut rig.system) {
            bare.poll_stats();
        }
        Ok(rig)
    }

    /// With the sender paused, waits until nothing more arrives and the
    /// workers' consumer counts stay put: whatever is queued is gone.
    async fn quiet(&self) {
        let started = Instant::now();
        let counts = || {
            let consumers: u32 = self.system.engine().status().iter().map(|w| w.objects.consumers).sum();
            (self.receivers.total(), consumers)
        };
        let mut before = counts();
        while started.elapsed() < QUIET_MAX {
            tokio::time::sleep(RECEIVE_TICK * 6).await;
            let now = counts();
            if now == before {
                return;
            }
            before = now;
        }
    }

    /// Measures one window from a quiet start: the sender resumes, the
    /// warm-up passes, every socket is let become current, the window runs.
    async fn measure(&self, settings: &Settings, began: Instant) -> Step {
        self.sender.pause();
        self.quiet().await;
        wait_for_idle_machine(settings.wait_for_idle).await;
        let setup = began.elapsed();
        self.sender.resume();
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
        let forwarded_before = self.receivers.total();
        tokio::time::sleep(settings.window).await;
        let end = self.sender.next();
        let to = mark(&threads, receiver, sender);
        let forwarded = self.receivers.total().saturating_sub(forwarded_before).max(1) as f64;
        tokio::time::sleep(GRACE).await;
        self.sender.pause();
        let delivery = self.receivers.delivery(end);
        let expected = delivery.expected.max(1) as f64;
        let cpu = cpu_between(&from, &to);
        let seconds = to.at.saturating_duration_since(from.at).as_secs_f64();
        // Percent of a core over the window → microseconds per packet that
        // reached a socket within the window (late or not: what was forwarded).
        let per_packet = |percent: f64| percent / 100.0 * seconds * 1e6 / forwarded;
        let own = cpu.process - cpu.receiver - cpu.sender;
        Step {
            consumers: self.system.consumers(),
            setup,
            settled,
            loss: 1.0 - delivery.on_time as f64 / expected,
            late: delivery.late as f64 / expected,
            worst: 1.0 - delivery.worst,
            worker_us: per_packet(cpu.workers.iter().sum()),
            process_us: per_packet(own),
            cpu,
            consumers_per_worker: self.system.engine().status().iter().map(|w| w.objects.consumers).collect(),
            load: load_average(),
            took: began.elapsed(),
        }
    }

    async fn close(self) {
        let Self { system, sender, receivers } = self;
        drop(sender);
        system.close().await;
        drop(receivers);
    }
}

/// One step: `kind` started afresh with `consumers` consumers and measured; a
/// failing window that is not clearly overloaded (the machine is shared) is
/// measured once more, and the better counts.
async fn step(kind: Kind, workers: usize, consumers: usize, settings: &Settings) -> Result<Step, String> {
    let began = Instant::now();
    let rig = Rig::start(kind, workers, consumers).await?;
    let first = rig.measure(settings, began).await;
    first.print(kind, workers, "");
    let best = if first.passed() || first.loss > 0.10 {
        first
    } else {
        let second = rig.measure(settings, Instant::now()).await;
        second.print(kind, workers, "again");
        if second.loss < first.loss { second } else { first }
    };
    rig.close().await;
    Ok(best)
}

/// One system's search: N doubles until a window fails (halves while the
/// first fails), then the bracket is bisected to the settings' resolution.
struct Search {
    kind: Kind,
    /// The largest N that passed, with its window.
    good: Option<Step>,
    /// The smallest N that failed.
    bad: Option<usize>,
    took: Duration,
    steps: usize,
    failed: Option<String>,
}

/// Rounds N to tens once it is large.
fn round(n: usize) -> usize {
    if n >= 200 { n / 10 * 10 } else { n.max(1) }
}

impl Search {
    fn new(kind: Kind) -> Self {
        Self { kind, good: None, bad: None, took: Duration::ZERO, steps: 0, failed: None }
    }

    /// The N to measure next, if any.
    fn next(&self, settings: &Settings) -> Option<usize> {
        if self.failed.is_some() {
            return None;
        }
        match (self.good.as_ref().map(|step| step.consumers), self.bad) {
            (None, None) => Some(settings.start),
            (Some(good), None) => (good < settings.max).then(|| (good * 2).min(settings.max)),
            (None, Some(bad)) => (bad > 10).then(|| round(bad / 2)),
            (Some(lo), Some(hi)) => {
                let mid = round(lo + (hi - lo) / 2);
                let narrow = (hi - lo) as f64 <= (lo as f64 * settings.resolution).max(10.0);
                (!narrow && mid > lo && mid < hi).then_some(mid)
            }
        }
    }

    fn record(&mut self, step: Step) {
        self.steps += 1;
        self.took += step.took;
        if step.passed() {
            if self.good.as_ref().is_none_or(|good| step.consumers > good.consumers) {
                self.good = Some(step);
            }
        } else {
            self.bad = Some(self.bad.map_or(step.consumers, |bad| bad.min(step.consumers)));
        }
    }

    /// The capacity found, as text (`≥` when the largest N allowed passed).
    fn capacity(&self) -> String {
        if self.steps == 0 && self.failed.is_none() {
            return "-".into();
        }
        match (&self.failed, &self.good) {
            (Some(_), _) => "error".into(),
            (None, Some(step)) => format!("{}{}", if self.bad.is_none() { "≥ " } else { "" }, step.consumers),
            (None, None) => "< 10".into(),
        }
    }
}

/// Runs the searches of `kinds` on `workers` workers, one step of each in
/// turn, so that their steps see the machine in the same state.
async fn compare(kinds: &[Kind], workers: usize, settings: &Settings) -> Vec<Search> {
    let mut searches: Vec<Search> = kinds.iter().map(|kind| Search::new(*kind)).collect();
    loop {
        let mut stepped = false;
        for search in &mut searches {
            let Some(n) = search.next(settings) else { continue };
            stepped = true;
            match step(search.kind, workers, n, settings).await {
                Ok(step) => search.record(step),
                Err(error) => {
                    eprintln!("{} W={workers} N={n}: {error}", search.kind.label());
                    search.failed = Some(error);
                }
            }
            // Let closed sockets and threads go before the next system starts.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if !stepped {
            return searches;
        }
    }
}

/// CPU time per forwarded packet of each of `kinds` at the same `consumers`,
/// in longer windows taken in turn ([`Settings::cost_rounds`] of each): a
/// figure that a busy machine disturbs less than a loss threshold (packets
/// are counted as they reach the sockets, so a starved worker's window still
/// counts). Returns each kind's mean microseconds per packet in the workers
/// and in the process.
async fn costs(kinds: &[Kind], workers: usize, consumers: usize, settings: &Settings) -> Vec<Cost> {
    let mut long = settings.clone();
    long.window = settings.cost_window;
    let mut sums: Vec<(Kind, f64, f64, u32)> = kinds.iter().map(|kind| (*kind, 0.0, 0.0, 0)).collect();
    for _ in 0..settings.cost_rounds {
        for (kind, worker_us, process_us, count) in &mut sums {
            let began = Instant::now();
            match Rig::start(*kind, workers, consumers).await {
                Ok(rig) => {
                    let step = rig.measure(&long, began).await;
                    let counted = step.worker_us.is_finite() && step.process_us.is_finite();
                    step.print(*kind, workers, "cost");
                    rig.close().await;
                    if counted {
                        *worker_us += step.worker_us;
                        *process_us += step.process_us;
                        *count += 1;
                    }
                }
                Err(error) => eprintln!("{} W={workers} N={consumers}: {error}", kind.label()),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    sums.into_iter()
        .filter(|(_, _, _, count)| *count > 0)
        .map(|(kind, worker_us, process_us, count)| Cost {
            kind,
            worker_us: worker_us / f64::from(count),
            process_us: process_us / f64::from(count),
        })
        .collect()
}

/// One system's mean CPU time per forwarded packet, in microseconds.
struct Cost {
    kind: Kind,
    worker_us: f64,
    process_us: f64,
}

/// What one worker count gave.
struct Row {
    workers: usize,
    searches: Vec<Search>,
    /// The N the costs were measured at, and the costs.
    costs: Option<(usize, Vec<Cost>)>,
}

fn main() {
    let settings = Settings::from_env();
    let kinds: Vec<Kind> =
        if settings.diagnose { vec![Kind::Bare, Kind::Node, Kind::BarePolled] } else { vec![Kind::Bare, Kind::Node] };
    println!(
        "forwarding capacity: one Opus stream at {RATE} packets/s, RTP consumers until more than {:.0} % of packets \
         miss a {DEADLINE:?} deadline; workers {:?}, N from {} up to {}, warm-up {:.1?}, window {:.1?}; \
         systems {:?}, each step started afresh, their steps taken in turn",
        LOSS_LIMIT * 100.0,
        settings.workers,
        settings.start,
        settings.max,
        settings.warmup,
        settings.window,
        kinds.iter().map(|kind| kind.label()).collect::<Vec<_>>(),
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
    let began = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    runtime.block_on(async {
        for &workers in &settings.workers {
            let (searches, at) = match settings.cost_at {
                Some(n) => (kinds.iter().map(|kind| Search::new(*kind)).collect::<Vec<_>>(), Some(n)),
                None => {
                    let searches = compare(&kinds, workers, &settings).await;
                    // The cost comparison runs where every system passed, a fifth below.
                    let common =
                        searches.iter().map(|search| search.good.as_ref().map(|step| step.consumers)).min().flatten();
                    (searches, common.map(|n| round(n * 4 / 5)))
                }
            };
            let costs = match at {
                Some(n) if n >= 10 && settings.cost_rounds > 0 => Some((n, costs(&kinds, workers, n, &settings).await)),
                _ => None,
            };
            rows.push(Row { workers, searches, costs });
        }
    });
    let load_after = load_average();
    println!();
    let polled = settings.diagnose;
    println!(
        "| W | bare capacity | node capacity | node/bare |{} worker CPU at capacity (bare / node) \
         | same N: µs per packet in workers (bare / node{}) | in the process (bare / node{}) | bare/node cost \
         | steps, time (bare / node) |",
        if polled { " bare+stats capacity |" } else { "" },
        if polled { " / bare+stats" } else { "" },
        if polled { " / bare+stats" } else { "" },
    );
    println!("|---|---|---|---|{}---|---|---|---|---|", if polled { "---|" } else { "" });
    let mut ratios = Vec::new();
    for Row { workers, searches, costs } in &rows {
        let find = |kind: Kind| searches.iter().find(|search| search.kind == kind);
        let (Some(bare), Some(node)) = (find(Kind::Bare), find(Kind::Node)) else { continue };
        let ratio = match (&bare.good, &node.good, &bare.failed, &node.failed) {
            (Some(b), Some(n), None, None) => Some(n.consumers as f64 / b.consumers as f64),
            _ => None,
        };
        let cpu = |search: &Search| {
            search.good.as_ref().map_or("-".into(), |step| {
                step.cpu.workers.iter().map(|v| format!("{v:.0}%")).collect::<Vec<_>>().join("+")
            })
        };
        let polled_column = match find(Kind::BarePolled) {
            Some(search) if polled => format!(" {} |", search.capacity()),
            _ => String::new(),
        };
        let cost_of = |kind: Kind| {
            costs
                .as_ref()
                .and_then(|(_, list)| list.iter().find(|c| c.kind == kind).map(|c| (c.worker_us, c.process_us)))
        };
        let shown: Vec<Kind> = kinds.clone();
        let cost_column = |pick: fn((f64, f64)) -> f64| -> String {
            let values: Vec<String> =
                shown.iter().map(|kind| cost_of(*kind).map_or("-".into(), |c| format!("{:.2}", pick(c)))).collect();
            let at = costs.as_ref().map_or(String::new(), |(n, _)| format!("N={n}: "));
            format!("{at}{}", values.join(" / "))
        };
        let cost_ratio = match (cost_of(Kind::Bare), cost_of(Kind::Node)) {
            (Some((_, bare)), Some((_, node))) if node > 0.0 => Some(bare / node),
            _ => None,
        };
        let show = |value: Option<f64>| value.map_or("-".into(), |v| format!("{v:.2}"));
        ratios.push(format!("W={workers}: {} (CPU per packet: {})", show(ratio), show(cost_ratio)));
        println!(
            "| {workers} | {} | {} | {} |{polled_column} {} / {} | {} | {} | {} | {}, {:.0?} / {}, {:.0?} |",
            bare.capacity(),
            node.capacity(),
            show(ratio),
            cpu(bare),
            cpu(node),
            cost_column(|(worker, _)| worker),
            cost_column(|(_, process)| process),
            show(cost_ratio),
            bare.steps,
            bare.took,
            node.steps,
            node.took,
        );
    }
    println!();
    println!("forwarding-capacity ratio (node / bare mediasoup): {}", ratios.join("; "));
    println!(
        "load average {load_before:.2} at start, {load_after:.2} at the end ({cores} cores); whole run {:.0?}",
        began.elapsed()
    );
}
