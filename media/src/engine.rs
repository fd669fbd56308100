//! Starting and closing the node's mediasoup workers.

use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};

use mediasoup::worker::{Worker, WorkerLogLevel, WorkerSettings};
use mediasoup::worker_manager::WorkerManager;
use tracing::{debug, info};

use crate::MediaError;

/// Settings of the node's media side.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MediaConfig {
    /// How many workers to start (each is one OS thread; ≤ 1 per CPU core is the rule).
    pub workers: usize,
    /// UDP/TCP ports mediasoup may use for RTC transports.
    pub rtc_ports: RangeInclusive<u16>,
    /// Log level of mediasoup's own worker logs (forwarded to `tracing`).
    pub worker_log_level: WorkerLogLevel,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self { workers: 1, rtc_ports: 40000..=49999, worker_log_level: WorkerLogLevel::Warn }
    }
}

impl MediaConfig {
    fn validate(&self) -> Result<(), MediaError> {
        if self.workers == 0 {
            return Err(MediaError::InvalidConfig("workers must be at least 1".into()));
        }
        if self.rtc_ports.is_empty() || *self.rtc_ports.start() == 0 {
            return Err(MediaError::InvalidConfig(format!(
                "rtc port range {}-{} is empty or starts at 0",
                self.rtc_ports.start(),
                self.rtc_ports.end()
            )));
        }
        Ok(())
    }
}

/// A started worker and the OS thread id it runs on.
#[derive(Debug, Clone)]
pub struct RunningWorker {
    /// The mediasoup worker handle.
    pub worker: Worker,
    /// Linux thread id of the worker thread (`/proc/self/task/<tid>`), once known.
    pub thread_id: Option<i32>,
}

/// The node's mediasoup workers and the manager that runs them.
#[derive(Debug)]
pub struct MediaEngine {
    manager: WorkerManager,
    workers: Vec<RunningWorker>,
}

impl MediaEngine {
    /// Starts `config.workers` mediasoup workers.
    pub async fn start(config: MediaConfig) -> Result<Self, MediaError> {
        config.validate()?;
        let manager = WorkerManager::new();
        let mut workers = Vec::with_capacity(config.workers);
        for index in 0..config.workers {
            let thread_id = Arc::new(Mutex::new(None));
            let mut settings = WorkerSettings::default();
            settings.log_level = config.worker_log_level;
            settings.log_tags = Vec::new();
            settings.rtc_port_range = config.rtc_ports.clone();
            settings.thread_initializer = Some(Arc::new({
                let thread_id = Arc::clone(&thread_id);
                move || {
                    if let Ok(mut slot) = thread_id.lock() {
                        *slot = current_thread_id();
                    }
                }
            }));
            let worker = manager.create_worker(settings).await.map_err(MediaError::WorkerStart)?;
            let thread_id = thread_id.lock().ok().and_then(|slot| *slot);
            info!(worker = %worker.id(), index, ?thread_id, "mediasoup worker started");
            workers.push(RunningWorker { worker, thread_id });
        }
        Ok(Self { manager, workers })
    }

    /// The running workers, in start order.
    pub fn workers(&self) -> &[RunningWorker] {
        &self.workers
    }

    /// The worker manager, for creating further workers.
    pub fn manager(&self) -> &WorkerManager {
        &self.manager
    }

    /// Closes every worker and waits until their threads have exited.
    ///
    /// Dropping the manager blocks until its workers exit, so that wait runs on a
    /// blocking thread rather than stalling the async runtime.
    pub async fn close(self) {
        let Self { manager, workers } = self;
        let count = workers.len();
        drop(workers);
        let _ = tokio::task::spawn_blocking(move || drop(manager)).await;
        debug!(count, "mediasoup workers closed");
    }
}

/// The calling thread's Linux thread id, read through `/proc/thread-self`
/// (`self/task/<tid>`) so that no unsafe libc call is needed.
fn current_thread_id() -> Option<i32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}
