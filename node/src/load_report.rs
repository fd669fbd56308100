//! Gossiping this node's load: sampled every 2 s, published only when the
//! node's level changes (idle, serving, busy); idle workers are reaped on the
//! same beat.
//!
//! Every report reaches every node, so a node's share of gossip grows with the
//! swarm: periodic reports (every 10 s, or on every 5-point CPU change) were
//! the largest part of an idle node's traffic at 100 nodes. A finder needs
//! the load of a stream's providers only, and gets it fresh from their
//! `stream.describe` answers. What stays global is what all nodes care about
//! and what changes rarely: a node starting, getting busy, or going idle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::debug;

use crate::inner::{Inner, lock};

/// How often the node samples its load.
const LOAD_SAMPLE_INTERVAL: Duration = Duration::from_secs(2);
/// Shortest time between two reports, so a node hovering at a boundary does
/// not flood the swarm.
const MIN_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// What a node's load means to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// No consumers and no streams.
    Idle,
    /// Under the watermark.
    Serving,
    /// Over the watermark (CPU or consumers) on every worker.
    Busy,
}

fn level_of(report: &mafalda_swarm::LoadReport, placement: &mafalda_media::PlacementPolicy) -> Level {
    let consumers: u32 = report.workers.iter().map(|w| w.consumers).sum();
    if consumers == 0 && report.streams_provided == 0 {
        return Level::Idle;
    }
    let over = |w: &mafalda_swarm::WorkerLoad| {
        !placement.has_room(&mafalda_media::WorkerLoadView {
            index: 0,
            cpu_percent: w.cpu_percent,
            consumers: w.consumers,
        })
    };
    if !report.workers.is_empty() && report.workers.iter().all(over) { Level::Busy } else { Level::Serving }
}

/// When to publish: the first report, then on a level change, at most once
/// per `MIN_REPORT_INTERVAL` (a change inside it is published when it ends).
#[derive(Debug, Default)]
struct Publisher {
    last: Option<(Instant, Level)>,
}

impl Publisher {
    fn due(&self, level: Level, now: Instant) -> bool {
        match self.last {
            None => true,
            Some((at, last)) => last != level && now.saturating_duration_since(at) >= MIN_REPORT_INTERVAL,
        }
    }

    fn published(&mut self, level: Level, now: Instant) {
        self.last = Some((now, level));
    }
}

/// Samples this node's load every interval and gossips it when its level
/// changed (see the module docs); also closes workers that stayed idle past
/// their grace period.
pub(crate) async fn report_load(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(LOAD_SAMPLE_INTERVAL);
    let mut publisher = Publisher::default();
    loop {
        tick.tick().await;
        inner.media.sample_cpu();
        inner.media.reap_idle(Instant::now());
        let report = sample(&inner);
        let level = level_of(&report, &inner.config.media.placement);
        let now = Instant::now();
        if !publisher.due(level, now) {
            continue;
        }
        match inner.swarm.publish_load(report).await {
            Ok(()) => publisher.published(level, now),
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
    fn levels_follow_consumers_streams_and_the_watermark() {
        let mut placement = mafalda_media::PlacementPolicy::default();
        placement.watermark = 0.6;
        placement.consumer_capacity = 10;
        assert_eq!(level_of(&report(0.0, 0, 0), &placement), Level::Idle);
        assert_eq!(level_of(&report(3.0, 0, 1), &placement), Level::Serving, "a stream held");
        assert_eq!(level_of(&report(30.0, 5, 1), &placement), Level::Serving);
        assert_eq!(level_of(&report(70.0, 5, 1), &placement), Level::Busy, "CPU over the watermark");
        assert_eq!(level_of(&report(10.0, 6, 1), &placement), Level::Busy, "consumers over the watermark");
    }

    #[test]
    fn reports_go_out_first_then_on_level_changes_at_most_every_interval() {
        let start = Instant::now();
        let mut publisher = Publisher::default();
        assert!(publisher.due(Level::Idle, start), "the first report");
        publisher.published(Level::Idle, start);
        assert!(!publisher.due(Level::Idle, start + Duration::from_secs(3600)), "no heartbeat");
        assert!(!publisher.due(Level::Serving, start + Duration::from_secs(1)), "too soon after the last");
        let later = start + MIN_REPORT_INTERVAL;
        assert!(publisher.due(Level::Serving, later), "a change, once the interval passed");
        publisher.published(Level::Serving, later);
        assert!(!publisher.due(Level::Serving, later + Duration::from_secs(60)));
    }
}
