//! Load reports: what each node gossips about its load, and the table of the
//! latest report from every peer.
//!
//! A report is CBOR, versioned, and small (bounded by [`MAX_LOAD_REPORT_BYTES`]).
//! A receiver accepts a report only from the node it describes (the gossip
//! message's signed author), so a peer cannot speak for another.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

/// The report format this code writes and reads.
pub const LOAD_REPORT_VERSION: u16 = 1;
/// Largest encoded report accepted (also the gossipsub transmit limit for the topic).
pub const MAX_LOAD_REPORT_BYTES: usize = 16 * 1024;
/// Most workers a report may describe.
pub const MAX_WORKERS_PER_REPORT: usize = 256;

/// Load of one mediasoup worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct WorkerLoad {
    /// CPU use of the worker thread, in percent of one core.
    pub cpu_percent: f32,
    /// Routers on the worker.
    pub routers: u32,
    /// Transports on the worker.
    pub transports: u32,
    /// Producers on the worker.
    pub producers: u32,
    /// Consumers on the worker.
    pub consumers: u32,
}

/// What a node says about its load, gossiped periodically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Format version ([`LOAD_REPORT_VERSION`]).
    pub version: u16,
    /// The reporting node.
    pub node: PeerId,
    /// Per-worker load.
    pub workers: Vec<WorkerLoad>,
    /// Pipe transports to or from other nodes.
    pub pipes: u32,
    /// How many consumers the node is willing to serve in all.
    pub capacity: u32,
    /// Streams the node provides (origin or relay).
    pub streams_provided: u32,
    /// Sender's clock, milliseconds since the Unix epoch (informative; ages are
    /// measured with the receiver's clock).
    pub timestamp_ms: u64,
}

impl LoadReport {
    /// An empty report for `node` stamped now.
    pub fn new(node: PeerId) -> Self {
        let timestamp_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self {
            version: LOAD_REPORT_VERSION,
            node,
            workers: Vec::new(),
            pipes: 0,
            capacity: 0,
            streams_provided: 0,
            timestamp_ms,
        }
    }

    /// Mean CPU percent over the workers (0 with no workers).
    pub fn mean_cpu_percent(&self) -> f32 {
        if self.workers.is_empty() {
            return 0.0;
        }
        self.workers.iter().map(|w| w.cpu_percent).sum::<f32>() / self.workers.len() as f32
    }

    /// Encodes as CBOR.
    pub fn encode(&self) -> Result<Vec<u8>, LoadReportError> {
        let mut bytes = Vec::new();
        ciborium::into_writer(self, &mut bytes).map_err(|e| LoadReportError::Malformed(e.to_string()))?;
        if bytes.len() > MAX_LOAD_REPORT_BYTES {
            return Err(LoadReportError::TooLarge(bytes.len()));
        }
        Ok(bytes)
    }

    /// Decodes and checks a report (size first, then format, version and bounds).
    pub fn decode(bytes: &[u8]) -> Result<Self, LoadReportError> {
        if bytes.len() > MAX_LOAD_REPORT_BYTES {
            return Err(LoadReportError::TooLarge(bytes.len()));
        }
        // Peek at the version first so a newer format is "unsupported", not "malformed".
        #[derive(Deserialize)]
        struct Versioned {
            version: u16,
        }
        let versioned: Versioned =
            ciborium::from_reader(bytes).map_err(|e| LoadReportError::Malformed(e.to_string()))?;
        if versioned.version != LOAD_REPORT_VERSION {
            return Err(LoadReportError::UnsupportedVersion(versioned.version));
        }
        let report: Self = ciborium::from_reader(bytes).map_err(|e| LoadReportError::Malformed(e.to_string()))?;
        if report.workers.len() > MAX_WORKERS_PER_REPORT {
            return Err(LoadReportError::Malformed(format!("{} workers", report.workers.len())));
        }
        if report.workers.iter().any(|w| !w.cpu_percent.is_finite() || w.cpu_percent < 0.0) {
            return Err(LoadReportError::Malformed("cpu_percent is negative or not a number".into()));
        }
        Ok(report)
    }
}

/// Why bytes are not a usable load report.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadReportError {
    /// Larger than [`MAX_LOAD_REPORT_BYTES`].
    #[error("load report of {0} bytes exceeds the limit of {MAX_LOAD_REPORT_BYTES}")]
    TooLarge(usize),
    /// Not a CBOR load report, or out of bounds.
    #[error("malformed load report: {0}")]
    Malformed(String),
    /// A version this node does not read.
    #[error("unsupported load report version {0}")]
    UnsupportedVersion(u16),
}

/// A peer's latest report and how old it is.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerLoad {
    /// The report.
    pub report: LoadReport,
    /// Time since it arrived.
    pub age: Duration,
}

/// Latest report per peer; reports older than the time-to-live are dropped.
#[derive(Debug)]
pub(crate) struct LoadTable {
    ttl: Duration,
    capacity: usize,
    reports: HashMap<PeerId, (LoadReport, Instant)>,
}

impl LoadTable {
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        Self { ttl, capacity, reports: HashMap::new() }
    }

    /// Records a report; when the table is full, the oldest report makes room.
    pub(crate) fn insert(&mut self, report: LoadReport, now: Instant) {
        if !self.reports.contains_key(&report.node) && self.reports.len() >= self.capacity {
            let oldest = self.reports.iter().min_by_key(|(_, (_, at))| *at).map(|(peer, _)| *peer);
            if let Some(oldest) = oldest {
                self.reports.remove(&oldest);
            }
        }
        self.reports.insert(report.node, (report, now));
    }

    /// Drops reports older than the time-to-live.
    pub(crate) fn expire(&mut self, now: Instant) {
        let ttl = self.ttl;
        self.reports.retain(|_, (_, at)| now.saturating_duration_since(*at) <= ttl);
    }

    /// Every live report with its age.
    pub(crate) fn snapshot(&self, now: Instant) -> Vec<PeerLoad> {
        self.reports
            .values()
            .filter(|(_, at)| now.saturating_duration_since(*at) <= self.ttl)
            .map(|(report, at)| PeerLoad { report: report.clone(), age: now.saturating_duration_since(*at) })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> LoadReport {
        let mut report = LoadReport::new(PeerId::random());
        report.workers = vec![WorkerLoad { cpu_percent: 12.5, routers: 1, transports: 2, producers: 3, consumers: 4 }];
        report.capacity = 500;
        report
    }

    #[test]
    fn round_trips_through_cbor() {
        let report = report();
        assert_eq!(LoadReport::decode(&report.encode().expect("encode")), Ok(report));
    }

    #[test]
    fn rejects_garbage_oversize_other_versions_and_bad_numbers() {
        assert!(matches!(LoadReport::decode(b"\xff\x00garbage"), Err(LoadReportError::Malformed(_))));
        assert!(matches!(LoadReport::decode(&vec![0u8; MAX_LOAD_REPORT_BYTES + 1]), Err(LoadReportError::TooLarge(_))));
        let mut newer = report();
        newer.version = 2;
        let mut bytes = Vec::new();
        ciborium::into_writer(&newer, &mut bytes).expect("encode");
        assert_eq!(LoadReport::decode(&bytes), Err(LoadReportError::UnsupportedVersion(2)));
        let mut nan = report();
        nan.workers[0].cpu_percent = f32::NAN;
        let mut bytes = Vec::new();
        ciborium::into_writer(&nan, &mut bytes).expect("encode");
        assert!(matches!(LoadReport::decode(&bytes), Err(LoadReportError::Malformed(_))));
    }

    #[test]
    fn table_ages_out_and_stays_bounded() {
        let start = Instant::now();
        let mut table = LoadTable::new(Duration::from_secs(10), 2);
        let (a, b, c) = (report(), report(), report());
        table.insert(a.clone(), start);
        table.insert(b.clone(), start + Duration::from_secs(1));
        table.insert(c.clone(), start + Duration::from_secs(2));
        let peers: Vec<PeerId> = table.snapshot(start + Duration::from_secs(2)).iter().map(|l| l.report.node).collect();
        assert_eq!(peers.len(), 2, "capacity bounds the table");
        assert!(!peers.contains(&a.node), "the oldest report made room");
        table.expire(start + Duration::from_secs(12));
        let left: Vec<PeerId> = table.snapshot(start + Duration::from_secs(12)).iter().map(|l| l.report.node).collect();
        assert_eq!(left, vec![c.node], "b aged out after the ttl");
    }
}
