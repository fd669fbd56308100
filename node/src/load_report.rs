//! Gossiping this node's load: sampled every 2 s, published when it changed
//! or the heartbeat is due; idle workers are reaped on the same beat.

use std::sync::Arc;
use std::time::Duration;

use tracing::debug;

use crate::inner::{Inner, lock};

/// How often the node samples its load.
const LOAD_SAMPLE_INTERVAL: Duration = Duration::from_secs(2);
/// Longest time between two load reports, even when nothing changed (well
/// under the swarm's load report TTL, so a live node never ages out).
const LOAD_REPORT_HEARTBEAT: Duration = Duration::from_secs(10);
/// A change in mean worker CPU (percentage points) worth reporting at once.
const LOAD_CPU_CHANGE: f32 = 5.0;

/// Samples this node's load (per-worker CPU and objects) every interval and
/// gossips it when it changed noticeably or the heartbeat is due (reporting
/// every sample made gossip traffic grow with the swarm's size squared); also
/// closes workers that stayed idle past their grace period.
pub(crate) async fn report_load(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(LOAD_SAMPLE_INTERVAL);
    let mut last: Option<(std::time::Instant, mafalda_swarm::LoadReport)> = None;
    loop {
        tick.tick().await;
        inner.media.sample_cpu();
        inner.media.reap_idle(std::time::Instant::now());
        let mut report = mafalda_swarm::LoadReport::new(inner.swarm.peer_id());
        let status = inner.media.status();
        report.workers = status
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
        let due = last
            .as_ref()
            .is_none_or(|(at, previous)| at.elapsed() >= LOAD_REPORT_HEARTBEAT || load_changed(previous, &report));
        if !due {
            continue;
        }
        match inner.swarm.publish_load(report.clone()).await {
            Ok(()) => last = Some((std::time::Instant::now(), report)),
            // No subscribed peer yet is normal for a lone node.
            Err(error) => debug!(%error, "load report not published"),
        }
    }
}

/// Whether `now` differs enough from the last report to tell the swarm at once.
fn load_changed(previous: &mafalda_swarm::LoadReport, now: &mafalda_swarm::LoadReport) -> bool {
    let consumers = |r: &mafalda_swarm::LoadReport| r.workers.iter().map(|w| w.consumers).sum::<u32>();
    (previous.mean_cpu_percent() - now.mean_cpu_percent()).abs() >= LOAD_CPU_CHANGE
        || consumers(previous) != consumers(now)
        || previous.workers.len() != now.workers.len()
        || previous.streams_provided != now.streams_provided
}
