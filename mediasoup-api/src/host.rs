//! What every app session on a node shares: the worker manager that starts
//! app workers, the caps per connection, and the defaults the node's operator
//! chose for them.

use std::ops::RangeInclusive;

use mafalda_media::mediasoup::prelude::WorkerManager;

/// Caps on what one app connection may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Workers (each one OS thread; default 4).
    pub workers: usize,
    /// mediasoup objects of every kind together, workers included (default 4096).
    pub objects: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { workers: 4, objects: 4096 }
    }
}

/// How a node serves Remote Mediasoup to its apps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// Caps per app connection.
    pub limits: Limits,
    /// Ports app workers use unless an app names its own range.
    pub rtc_ports: RangeInclusive<u16>,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self { limits: Limits::default(), rtc_ports: 40000..=49999 }
    }
}

/// The node's side of Remote Mediasoup, shared by every app connection.
pub struct Host {
    manager: WorkerManager,
    /// Workers running for apps, over every session.
    workers: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    limits: Limits,
    rtc_ports: RangeInclusive<u16>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("limits", &self.limits).field("rtc_ports", &self.rtc_ports).finish()
    }
}

impl Host {
    /// A host whose app workers use `rtc_ports` unless an app names its own range.
    pub fn new(limits: Limits, rtc_ports: RangeInclusive<u16>) -> Self {
        mafalda_media::hold_srtp_crypto_open();
        Self { manager: WorkerManager::new(), workers: std::sync::Arc::default(), limits, rtc_ports }
    }

    /// A host as `config` says.
    pub fn from_config(config: HostConfig) -> Self {
        Self::new(config.limits, config.rtc_ports)
    }

    pub(crate) fn manager(&self) -> &WorkerManager {
        &self.manager
    }

    /// How many workers run for apps now, over every session.
    pub fn workers(&self) -> usize {
        self.workers.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts a new app worker; the count drops when the returned guard does.
    pub(crate) fn count_worker(&self) -> WorkerCount {
        self.workers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        WorkerCount(std::sync::Arc::clone(&self.workers))
    }

    /// The caps per connection.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The ports app workers use by default.
    pub fn rtc_ports(&self) -> RangeInclusive<u16> {
        self.rtc_ports.clone()
    }
}

/// One app worker in [`Host::workers`], until dropped.
pub(crate) struct WorkerCount(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for WorkerCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
