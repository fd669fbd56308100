//! The worker pool: up to N mediasoup workers, started when placement needs one,
//! closed after an idle grace period, each with its thread id (for CPU) and its
//! object counts; a worker that dies or closes is reported with what it held.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use event_listener_primitives::HandlerId;
use mediasoup::prelude::{
    ListenInfo, Protocol, Router, RouterOptions, WebRtcServer, WebRtcServerListenInfos, WebRtcServerOptions,
};
use mediasoup::worker::{Worker, WorkerId, WorkerLogLevel, WorkerSettings};
use mediasoup::worker_manager::WorkerManager;
use tokio::sync::broadcast;
use tracing::{debug, info, warn};

use crate::MediaError;
use crate::counters::{self, Counters, ObjectCounts};
use crate::cpu::CpuSampler;
use crate::placement::{Placement, PlacementPolicy, WorkerLoadView};

/// Settings of the node's media side.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MediaConfig {
    /// Most workers (each is one OS thread; ≤ 1 per CPU core is the rule).
    pub workers: usize,
    /// Workers kept even when idle (started at once).
    pub min_workers: usize,
    /// An idle worker above `min_workers` is closed after this long without routers.
    pub idle_grace: Duration,
    /// UDP/TCP ports mediasoup may use for RTC transports.
    pub rtc_ports: RangeInclusive<u16>,
    /// Log level of mediasoup's own worker logs (forwarded to `tracing`).
    pub worker_log_level: WorkerLogLevel,
    /// Where new routers and consumers go.
    pub placement: PlacementPolicy,
    /// If set, every worker gets a WebRtcServer listening here (for WebRTC transports).
    pub webrtc: Option<WebRtcListen>,
}

/// Where each worker's WebRtcServer listens (UDP and TCP).
#[derive(Debug, Clone, PartialEq)]
pub struct WebRtcListen {
    /// Local IP to listen on.
    pub ip: IpAddr,
    /// Address announced in ICE candidates (public IP or host name), if not `ip`.
    pub announced_address: Option<String>,
    /// Ports to pick from; each worker's server takes one.
    pub ports: RangeInclusive<u16>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            min_workers: 1,
            idle_grace: Duration::from_secs(30),
            rtc_ports: 40000..=49999,
            worker_log_level: WorkerLogLevel::Warn,
            placement: PlacementPolicy::default(),
            webrtc: None,
        }
    }
}

impl MediaConfig {
    fn validate(&self) -> Result<(), MediaError> {
        if self.workers == 0 {
            return Err(MediaError::InvalidConfig("workers must be at least 1".into()));
        }
        if self.min_workers > self.workers {
            return Err(MediaError::InvalidConfig(format!(
                "min_workers ({}) exceeds workers ({})",
                self.min_workers, self.workers
            )));
        }
        if self.rtc_ports.is_empty() || *self.rtc_ports.start() == 0 {
            return Err(MediaError::InvalidConfig(format!(
                "rtc port range {}-{} is empty or starts at 0",
                self.rtc_ports.start(),
                self.rtc_ports.end()
            )));
        }
        if !(0.0..=1.0).contains(&self.placement.watermark) || self.placement.consumer_capacity == 0 {
            return Err(MediaError::InvalidConfig("watermark must be within 0-1 and capacity above 0".into()));
        }
        Ok(())
    }
}

/// A worker's load and objects at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerStatus {
    /// The worker.
    pub id: WorkerId,
    /// Linux thread id of its thread, once known.
    pub thread_id: Option<i32>,
    /// CPU percent (one core = 100) at the last sample.
    pub cpu_percent: f32,
    /// Its objects.
    pub objects: ObjectCounts,
}

/// Something that happened to the pool.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// A worker started.
    WorkerStarted {
        /// The worker.
        worker: WorkerId,
    },
    /// A worker is gone; the routers it held are lost.
    WorkerGone {
        /// The worker.
        worker: WorkerId,
        /// Routers it still held.
        lost_routers: u32,
        /// True when it died (crashed) rather than being closed.
        died: bool,
    },
}

struct Slot {
    worker: Worker,
    thread_id: Option<i32>,
    counters: Arc<Counters>,
    webrtc_server: Option<WebRtcServer>,
    cpu_percent: f32,
    idle_since: Option<Instant>,
    handlers: Vec<HandlerId>,
}

impl Slot {
    /// Leaves the pool: its handlers stay attached so that the worker's close is
    /// still counted and reported once the last handle to it is dropped.
    fn release(self) {
        for handler in self.handlers {
            handler.detach();
        }
    }
}

/// Something holding routers on the pool's workers that can let go of the idle
/// ones (a [`crate::SpanningRouter`]); [`MediaEngine::reap_idle`] asks it first.
pub(crate) trait IdleRelease: Send + Sync {
    /// Drops what it holds that nobody uses; must not wait.
    fn release_idle(&self);
    /// Drops everything it holds, used or not (the engine is closing); must not wait.
    fn release_all(&self);
}

struct Inner {
    config: MediaConfig,
    /// Asked to let go of idle routers before idle workers are looked for; weak so
    /// that a dropped spanning router is simply skipped.
    releasers: Mutex<Vec<std::sync::Weak<dyn IdleRelease>>>,
    manager: Mutex<Option<WorkerManager>>,
    slots: Mutex<Vec<Slot>>,
    cpu: Mutex<CpuSampler>,
    events: broadcast::Sender<MediaEvent>,
    /// Serialises worker creation so two placements cannot both start one.
    creating: tokio::sync::Mutex<()>,
}

/// The node's mediasoup workers. Cheap to clone.
#[derive(Clone)]
pub struct MediaEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MediaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaEngine").field("workers", &lock(&self.inner.slots).len()).finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Keeps the SRTP crypto library loaded for the life of the process (see
/// `mafalda_nss_link`): every pipe and WebRTC transport has SRTP, and one
/// made after the process's last SRTP session closed would reload it first.
/// Called by whatever starts workers; idempotent.
pub fn hold_srtp_crypto_open() {
    if !mafalda_nss_link::hold_nss_open() {
        warn!("NSS could not be held open: each SRTP session after a lull reloads it");
    }
}

impl MediaEngine {
    /// Starts the pool with its `min_workers` workers.
    pub async fn start(config: MediaConfig) -> Result<Self, MediaError> {
        config.validate()?;
        hold_srtp_crypto_open();
        let (events, _) = broadcast::channel(64);
        let engine = Self {
            inner: Arc::new(Inner {
                manager: Mutex::new(Some(WorkerManager::new())),
                releasers: Mutex::default(),
                slots: Mutex::default(),
                cpu: Mutex::default(),
                events,
                creating: tokio::sync::Mutex::new(()),
                config,
            }),
        };
        for _ in 0..engine.inner.config.min_workers {
            let _kept_by_the_pool = engine.start_worker().await?;
        }
        Ok(engine)
    }

    /// Pool events (workers started and gone).
    pub fn events(&self) -> broadcast::Receiver<MediaEvent> {
        self.inner.events.subscribe()
    }

    /// The running workers, in start order.
    pub fn workers(&self) -> Vec<Worker> {
        lock(&self.inner.slots).iter().map(|slot| slot.worker.clone()).collect()
    }

    /// Load and objects of every worker (CPU as of the last [`MediaEngine::sample_cpu`]).
    pub fn status(&self) -> Vec<WorkerStatus> {
        lock(&self.inner.slots)
            .iter()
            .map(|slot| WorkerStatus {
                id: slot.worker.id(),
                thread_id: slot.thread_id,
                cpu_percent: slot.cpu_percent,
                objects: slot.counters.snapshot(),
            })
            .collect()
    }

    /// Samples each worker thread's CPU use since the previous sample.
    pub fn sample_cpu(&self) {
        let now = Instant::now();
        let mut cpu = lock(&self.inner.cpu);
        for slot in lock(&self.inner.slots).iter_mut() {
            if let Some(percent) = slot.thread_id.and_then(|tid| cpu.sample(tid, now)) {
                slot.cpu_percent = percent;
            }
        }
    }

    /// Whether every worker is over the watermark and no more may start: new
    /// consumers would overload this node.
    pub fn is_saturated(&self) -> bool {
        self.every_worker(|policy, worker| !policy.has_room(worker))
    }

    /// Whether every worker is at its full capacity (a whole core, or
    /// `consumer_capacity` consumers) and no more may start.
    pub fn is_full(&self) -> bool {
        self.every_worker(|policy, worker| !policy.below_capacity(worker))
    }

    /// Whether the pool has all the workers it may have and `holds` for each.
    fn every_worker(&self, holds: impl Fn(&PlacementPolicy, &WorkerLoadView) -> bool) -> bool {
        let slots = lock(&self.inner.slots);
        let policy = &self.inner.config.placement;
        slots.len() >= self.inner.config.workers
            && slots.iter().enumerate().all(|(index, slot)| {
                holds(
                    policy,
                    &WorkerLoadView {
                        index,
                        cpu_percent: slot.cpu_percent,
                        consumers: slot.counters.snapshot().consumers,
                    },
                )
            })
    }

    /// The worker placement picks for new work, started if needed.
    pub async fn place(&self) -> Result<Worker, MediaError> {
        let _creating = self.inner.creating.lock().await;
        let placement = {
            let slots = lock(&self.inner.slots);
            let views: Vec<WorkerLoadView> = slots
                .iter()
                .enumerate()
                .map(|(index, slot)| WorkerLoadView {
                    index,
                    cpu_percent: slot.cpu_percent,
                    consumers: slot.counters.snapshot().consumers,
                })
                .collect();
            let can_grow = slots.len() < self.inner.config.workers;
            match self.inner.config.placement.place(&views, can_grow) {
                Placement::Existing(index) => Some(slots[index].worker.clone()),
                Placement::NewWorker => None,
            }
        };
        match placement {
            Some(worker) => Ok(worker),
            None => self.start_worker().await,
        }
    }

    /// Creates a router on the worker placement picks.
    pub async fn create_router(&self, options: RouterOptions) -> Result<Router, MediaError> {
        let worker = self.place().await?;
        self.create_router_on(&worker, options).await
    }

    /// Creates a router on a given worker.
    pub async fn create_router_on(&self, worker: &Worker, options: RouterOptions) -> Result<Router, MediaError> {
        let router = worker.create_router(options).await.map_err(|e| MediaError::Request(e.to_string()))?;
        if let Some(slot) = lock(&self.inner.slots).iter_mut().find(|s| s.worker.id() == worker.id()) {
            slot.idle_since = None;
        }
        Ok(router)
    }

    /// Whether workers serve WebRTC clients (a WebRtcServer listen address is configured).
    pub fn serves_webrtc(&self) -> bool {
        self.inner.config.webrtc.is_some()
    }

    /// The WebRtcServer of `worker`, when the engine is configured with one.
    pub fn webrtc_server(&self, worker: &WorkerId) -> Option<WebRtcServer> {
        lock(&self.inner.slots).iter().find(|s| s.worker.id() == *worker).and_then(|s| s.webrtc_server.clone())
    }

    /// Lets every live [`crate::SpanningRouter`] on this engine drop its idle
    /// pipes and empty routers (see [`crate::SpanningRouter::release_idle`]), then
    /// closes workers above `min_workers` that have held no router for the grace
    /// period. A worker emptied by this call starts its grace now.
    pub fn reap_idle(&self, now: Instant) {
        let releasers = self.live_releasers();
        // Outside the lock: releasing closes mediasoup objects, whose callbacks run now.
        for releaser in releasers {
            releaser.release_idle();
        }
        let grace = self.inner.config.idle_grace;
        let mut slots = lock(&self.inner.slots);
        for slot in slots.iter_mut() {
            let idle = slot.counters.snapshot().routers == 0;
            slot.idle_since = match (idle, slot.idle_since) {
                (true, None) => Some(now),
                (true, since) => since,
                (false, _) => None,
            };
        }
        let min = self.inner.config.min_workers;
        while slots.len() > min {
            let Some(index) = slots
                .iter()
                .position(|s| s.idle_since.is_some_and(|since| now.saturating_duration_since(since) >= grace))
            else {
                break;
            };
            let slot = slots.remove(index);
            info!(worker = %slot.worker.id(), "closing idle worker");
            if let Some(tid) = slot.thread_id {
                lock(&self.inner.cpu).forget(tid);
            }
            // Dropping the pool's handle closes the worker (nothing else holds it).
            slot.release();
        }
    }

    /// Has `releaser` asked to let go of idle routers on every [`MediaEngine::reap_idle`].
    pub(crate) fn register_idle_release(&self, releaser: std::sync::Weak<dyn IdleRelease>) {
        lock(&self.inner.releasers).push(releaser);
    }

    /// Stops using a worker: it closes once the last router on it is dropped.
    pub fn retire(&self, worker: &WorkerId) -> bool {
        let mut slots = lock(&self.inner.slots);
        let Some(index) = slots.iter().position(|slot| slot.worker.id() == *worker) else { return false };
        slots.remove(index).release();
        true
    }

    async fn start_worker(&self) -> Result<Worker, MediaError> {
        let manager = lock(&self.inner.manager).clone().ok_or(MediaError::Closed)?;
        let config = &self.inner.config;
        let thread_id = Arc::new(Mutex::new(None));
        let mut settings = WorkerSettings::default();
        settings.log_level = config.worker_log_level;
        settings.log_tags = Vec::new();
        settings.rtc_port_range = config.rtc_ports.clone();
        settings.thread_initializer = Some(Arc::new({
            let thread_id = Arc::clone(&thread_id);
            move || *lock(&thread_id) = current_thread_id()
        }));
        let worker = manager.create_worker(settings).await.map_err(MediaError::WorkerStart)?;
        let thread_id = *lock(&thread_id);
        let webrtc_server = match &config.webrtc {
            Some(listen) => Some(webrtc_server(&worker, listen).await?),
            None => None,
        };
        let counters = Arc::new(Counters::default());
        let handlers = vec![counters::attach(&worker, Arc::clone(&counters)), self.watch(&worker, &counters)];
        lock(&self.inner.slots).push(Slot {
            worker: worker.clone(),
            thread_id,
            counters,
            webrtc_server,
            cpu_percent: 0.0,
            idle_since: None,
            handlers,
        });
        info!(worker = %worker.id(), ?thread_id, "mediasoup worker started");
        let _ = self.inner.events.send(MediaEvent::WorkerStarted { worker: worker.id() });
        Ok(worker)
    }

    /// Reports the worker's end (death or close) and drops it from the pool.
    fn watch(&self, worker: &Worker, counters: &Arc<Counters>) -> HandlerId {
        let weak = Arc::downgrade(&self.inner);
        let id = worker.id();
        let counters = Arc::clone(counters);
        let dead = {
            let weak = weak.clone();
            let counters = Arc::clone(&counters);
            worker.on_dead(move |result| {
                warn!(worker = %id, ?result, "mediasoup worker died");
                if let Some(inner) = weak.upgrade() {
                    let lost_routers = counters.snapshot().routers;
                    lock(&inner.slots).retain(|slot| slot.worker.id() != id);
                    let _ = inner.events.send(MediaEvent::WorkerGone { worker: id, lost_routers, died: true });
                }
            })
        };
        dead.detach();
        worker.on_close(move || {
            debug!(worker = %id, "mediasoup worker closed");
            if let Some(inner) = weak.upgrade() {
                let lost_routers = counters.snapshot().routers;
                let _ = inner.events.send(MediaEvent::WorkerGone { worker: id, lost_routers, died: false });
            }
        })
    }

    /// Closes every worker and waits, at most [`CLOSE_WAIT`], until their
    /// threads have exited (a warning names how many still run after that).
    ///
    /// Every spanning router on the engine lets go of its routers first: a
    /// worker closes only when its last router is dropped, and one still
    /// running when the process exits races the C++ destructors `exit()` runs
    /// (a SIGSEGV at exit). Dropping the manager blocks until its workers exit,
    /// so that wait runs on a blocking thread rather than stalling the runtime.
    pub async fn close(self) {
        for releaser in self.live_releasers() {
            releaser.release_all();
        }
        let slots = std::mem::take(&mut *lock(&self.inner.slots));
        let threads: Vec<i32> = slots.iter().filter_map(|slot| slot.thread_id).collect();
        let count = slots.len();
        drop(slots);
        let manager = lock(&self.inner.manager).take();
        let _ = tokio::task::spawn_blocking(move || drop(manager)).await;
        let deadline = Instant::now() + CLOSE_WAIT;
        loop {
            let running = threads.iter().filter(|tid| is_worker_thread(**tid)).count();
            if running == 0 {
                debug!(count, "mediasoup workers closed");
                return;
            }
            if Instant::now() >= deadline {
                // Something outside the engine still holds a router of theirs.
                warn!(running, count, wait = ?CLOSE_WAIT, "mediasoup workers still running after close");
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The spanning routers still alive on this engine (the dead ones forgotten).
    fn live_releasers(&self) -> Vec<Arc<dyn IdleRelease>> {
        let mut list = lock(&self.inner.releasers);
        list.retain(|weak| weak.strong_count() > 0);
        list.iter().filter_map(std::sync::Weak::upgrade).collect()
    }
}

/// How long [`MediaEngine::close`] waits for its worker threads to exit.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Whether thread `tid` of this process is still a running mediasoup worker
/// (its name checked so that a recycled id is not mistaken for one).
fn is_worker_thread(tid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).is_ok_and(|name| is_worker_name(&name))
}

/// How many mediasoup worker threads this process runs now, whoever started
/// them (a node's engine, an app's session).
pub fn running_worker_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .flatten()
        .filter(|task| std::fs::read_to_string(task.path().join("comm")).is_ok_and(|name| is_worker_name(&name)))
        .count()
}

/// mediasoup names its worker threads `mediasoup-worker-<id>`; Linux keeps
/// the first 15 bytes.
fn is_worker_name(name: &str) -> bool {
    name.starts_with("mediasoup-worke")
}

async fn webrtc_server(worker: &Worker, listen: &WebRtcListen) -> Result<WebRtcServer, MediaError> {
    let info = |protocol| ListenInfo {
        protocol,
        ip: listen.ip,
        announced_address: listen.announced_address.clone(),
        expose_internal_ip: false,
        port: None,
        port_range: Some(listen.ports.clone()),
        flags: None,
        send_buffer_size: None,
        recv_buffer_size: None,
    };
    let infos = WebRtcServerListenInfos::new(info(Protocol::Udp)).insert(info(Protocol::Tcp));
    worker.create_webrtc_server(WebRtcServerOptions::new(infos)).await.map_err(|e| MediaError::Request(e.to_string()))
}

/// The calling thread's Linux thread id, read through `/proc/thread-self`
/// (`self/task/<tid>`) so that no unsafe libc call is needed.
fn current_thread_id() -> Option<i32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}
