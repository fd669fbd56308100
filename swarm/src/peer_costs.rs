//! What this node knows of its peers' cost as providers: the latest ping RTT
//! of each connected peer and the load reports gossiped recently. The swarm
//! task writes it as pings and reports come; a
//! [`SwarmHandle`](crate::SwarmHandle) reads it with no round trip to that
//! task. A consume that ranks several providers used to ask the swarm task
//! for both while its describes were on their way out: on a two-core machine
//! that crossing woke a thread and took its turn beside the link writers
//! that carried the describes.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use libp2p::PeerId;

use crate::load::{LoadReport, LoadTable, PeerLoad};

/// The peers' RTTs and loads (see the module doc).
#[derive(Debug)]
pub(crate) struct CostsView {
    inner: Mutex<Costs>,
}

#[derive(Debug)]
struct Costs {
    rtts: HashMap<PeerId, Duration>,
    loads: LoadTable,
}

impl CostsView {
    /// Empty; load reports live `load_ttl`, at most `max_loads` of them.
    pub(crate) fn new(load_ttl: Duration, max_loads: usize) -> Self {
        Self { inner: Mutex::new(Costs { rtts: HashMap::new(), loads: LoadTable::new(load_ttl, max_loads) }) }
    }

    // Nothing panics while it holds the lock: a poisoned one still has
    // consistent maps.
    fn lock(&self) -> MutexGuard<'_, Costs> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `peer`'s latest ping RTT.
    pub(crate) fn set_rtt(&self, peer: PeerId, rtt: Duration) {
        self.lock().rtts.insert(peer, rtt);
    }

    /// Forgets `peer`'s RTT (its last connection closed).
    pub(crate) fn forget_rtt(&self, peer: &PeerId) {
        self.lock().rtts.remove(peer);
    }

    /// A load report heard at `now` (the table's capacity bounds them).
    pub(crate) fn insert_load(&self, report: LoadReport, now: Instant) {
        self.lock().loads.insert(report, now);
    }

    /// Drops the load reports older than their time-to-live.
    pub(crate) fn expire_loads(&self, now: Instant) {
        self.lock().loads.expire(now);
    }

    /// The latest ping RTT of each connected peer pinged.
    pub(crate) fn rtts(&self) -> HashMap<PeerId, Duration> {
        self.lock().rtts.clone()
    }

    /// Every live load report, with its age at `now`.
    pub(crate) fn loads(&self, now: Instant) -> Vec<PeerLoad> {
        self.lock().loads.snapshot(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtts_are_kept_until_forgotten_and_loads_until_they_expire() {
        let view = CostsView::new(Duration::from_secs(10), 4);
        let (near, far) = (PeerId::random(), PeerId::random());
        view.set_rtt(near, Duration::from_millis(1));
        view.set_rtt(far, Duration::from_millis(80));
        view.set_rtt(near, Duration::from_millis(2));
        view.forget_rtt(&far);
        assert_eq!(view.rtts(), HashMap::from([(near, Duration::from_millis(2))]));

        let heard = Instant::now();
        view.insert_load(LoadReport::new(near), heard);
        let loads = view.loads(heard + Duration::from_secs(3));
        assert_eq!(loads.len(), 1);
        assert_eq!(loads[0].age, Duration::from_secs(3));
        view.expire_loads(heard + Duration::from_secs(11));
        assert!(view.loads(heard + Duration::from_secs(11)).is_empty(), "expired");
    }
}
