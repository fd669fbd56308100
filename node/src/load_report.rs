//! Gossiping this node's load: sampled every 2 s, published only when the
//! node becomes busy or stops being busy; idle workers are reaped on the
//! same beat.
//!
//! Every report reaches every node (each about D = 6 times over the mesh), so
//! whatever triggers a report on every node makes each node's share of gossip
//! grow with the swarm. Periodic reports (every 10 s, or on every 5-point CPU
//! change) were the largest part of an idle node's traffic at 100 nodes; a
//! report on each change between idle and serving was still half of each
//! node's control plane in the 100-node media run (about 13 KB/s per node), as
//! every consumer arriving somewhere changed some node's level. A finder needs
//! the load of a stream's providers only, and gets it fresh from their
//! `stream.describe` answers. What stays global is what every node should
//! know at once and what happens rarely: a node getting too busy to take
//! more, and being able to again. A node that never says otherwise is taken
//! as not busy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::debug;

use crate::inner::{Inner, lock};

/// How often the node samples its load.
const LOAD_SAMPLE_INTERVAL: Duration = Duration::from_secs(2);
/// Shortest time between two reports, so a node hovering at the watermark
/// does not flood the swarm.
const MIN_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// Whether every worker is over the watermark (CPU or consumers): the node
/// should not be asked for more.
fn is_busy(report: &mafalda_swarm::LoadReport, placement: &mafalda_media::PlacementPolicy) -> bool {
    let over = |w: &mafalda_swarm::WorkerLoad| {
        !placement.has_room(&mafalda_media::WorkerLoadView {
            index: 0,
            cpu_percent: w.cpu_percent,
            consumers: w.consumers,
        })
    };
    !report.workers.is_empty() && report.workers.iter().all(over)
}

/// When to publish: when the node's busy state differs from the last one it
/// told (at first: not busy, which peers assume of a node they heard
/// nothing from), at most once per `MIN_REPORT_INTERVAL` (a change inside
/// it is published when it ends).
#[derive(Debug, Default)]
struct Publisher {
    told_busy: bool,
    last_at: Option<Instant>,
}

impl Publisher {
    fn due(&self, busy: bool, now: Instant) -> bool {
        busy != self.told_busy && self.last_at.is_none_or(|at| now.saturating_duration_since(at) >= MIN_REPORT_INTERVAL)
    }

    fn published(&mut self, busy: bool, now: Instant) {
        self.told_busy = busy;
        self.last_at = Some(now);
    }
}

/// Samples this node's load every interval and gossips it when it became busy
/// or stopped being busy (see the module docs); also closes workers that
/// stayed idle past their grace period.
pub(crate) async fn report_load(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(LOAD_SAMPLE_INTERVAL);
    let mut publisher = Publisher::default();
    loop {
        tick.tick().await;
        inner.media.sample_cpu();
        inner.media.reap_idle(Instant::now());
        let report = sample(&inner);
        let busy = is_busy(&report, &inner.config.media.placement);
        let now = Instant::now();
        if !publisher.due(busy, now) {
            continue;
        }
        match inner.swarm.publish_load(report).await {
            Ok(()) => publisher.published(busy, now),
            // No subscribed peer yet is normal for a lone node.
            Err(error) => debug!(%error, "load report not published"),
        }
    }
}

fn sample(inner: &Inner) -> mafalda_swarm::LoadReport {
    let mut report = mafalda_swarm::LoadReport::new(inner.swarm.peer_id());
    report.workers = inner
        .media
        .status()
        .iter()
        .map(|w| mafalda_swarm::WorkerLoad {
            cpu_percent: w.cpu_percent,
            routers: w.objects.routers,
            transports: w.objects.transports,
            producers: w.objects.producers,
            consumers: w.objects.consumers,
        })
        .collect();
    report.capacity = u32::try_from(inner.config.media.workers)
        .unwrap_or(u32::MAX)
        .saturating_mul(inner.config.media.placement.consumer_capacity);
    report.streams_provided = u32::try_from(lock(&inner.streams).len()).unwrap_or(u32::MAX);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(cpu_percent: f32, consumers: u32, streams: u32) -> mafalda_swarm::LoadReport {
        let mut report = mafalda_swarm::LoadReport::new(mafalda_swarm::PeerId::random());
        report.workers = vec![mafalda_swarm::WorkerLoad { cpu_percent, consumers, ..Default::default() }];
        report.streams_provided = streams;
        report
    }

    #[test]
    fn busy_when_every_worker_is_over_the_watermark() {
        let mut placement = mafalda_media::PlacementPolicy::default();
        placement.watermark = 0.6;
        placement.consumer_capacity = 10;
        assert!(!is_busy(&report(0.0, 0, 0), &placement), "idle");
        assert!(!is_busy(&report(30.0, 5, 1), &placement), "serving under the watermark");
        assert!(is_busy(&report(70.0, 5, 1), &placement), "CPU over the watermark");
        assert!(is_busy(&report(10.0, 6, 1), &placement), "consumers over the watermark");
        let mut two = report(70.0, 5, 1);
        two.workers.push(mafalda_swarm::WorkerLoad { cpu_percent: 10.0, consumers: 1, ..Default::default() });
        assert!(!is_busy(&two, &placement), "one worker with room left");
        let mut none = report(0.0, 0, 0);
        none.workers.clear();
        assert!(!is_busy(&none, &placement), "no worker started yet");
    }

    #[test]
    fn reports_go_out_when_busy_changes_at_most_every_interval() {
        let start = Instant::now();
        let mut publisher = Publisher::default();
        assert!(!publisher.due(false, start), "not busy is what peers assume: nothing to tell");
        assert!(!publisher.due(false, start + Duration::from_secs(3600)), "no heartbeat");
        assert!(publisher.due(true, start), "getting busy is told at once");
        publisher.published(true, start);
        assert!(!publisher.due(true, start + Duration::from_secs(60)), "told already");
        assert!(!publisher.due(false, start + Duration::from_secs(1)), "too soon after the last");
        let later = start + MIN_REPORT_INTERVAL;
        assert!(publisher.due(false, later), "no longer busy, once the interval passed");
        publisher.published(false, later);
        assert!(!publisher.due(false, later + Duration::from_secs(60)));
    }
}
