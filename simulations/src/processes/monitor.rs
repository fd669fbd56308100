//! Watching the swarm from one node: after the finds, `GET /v1/swarm` is
//! asked at node 0 once a second for `monitor_s` seconds, as a monitor page
//! or `mafalda-node top` would. Measured: each answer's time and size, how
//! many nodes it shows, and what the watching costs the swarm — every node's
//! outgoing ROPE bytes (the `node.snapshot` calls ride on ROPE) during the
//! watch against the same length just before it, with nobody watching.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::measure::{MetricsSnapshot, metrics_texts};
use super::nodes::Swarm;

/// What watching the swarm showed and cost.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorProbe {
    /// Requests made (one a second).
    pub requests: usize,
    /// The first answer (no view cached yet: the node crawls first), ms.
    pub first_ms: f64,
    /// Later answers (cached, refreshed in the background), ms.
    pub p50_ms: f64,
    /// 99th percentile of the later answers, ms.
    pub p99_ms: f64,
    /// Slowest later answer, ms.
    pub max_ms: f64,
    /// Failed or non-JSON answers.
    pub failures: usize,
    /// Nodes shown by the last answer, and how many of them live.
    pub nodes_shown: usize,
    /// Live nodes in the last answer.
    pub nodes_live: usize,
    /// Largest answer, bytes.
    pub largest_bytes: usize,
    /// ROPE bytes sent per second by all nodes while nobody watched.
    pub rope_bps_idle: f64,
    /// The same while the node was watched.
    pub rope_bps_watched: f64,
}

/// Outgoing ROPE bytes so far, summed over the nodes.
async fn rope_bytes_out(swarm: &Swarm) -> f64 {
    metrics_texts(swarm)
        .await
        .into_iter()
        .flatten()
        .map(|(text, _)| {
            let snapshot = MetricsSnapshot::parse(&text, 0.0);
            snapshot.values.get("mafalda_p2p_bytes_total{direction=\"out\",protocol=\"rope\"}").copied().unwrap_or(0.0)
        })
        .sum()
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Watches the swarm from node 0 for `seconds` (after as long a quiet baseline).
pub async fn run(swarm: &Swarm, seconds: f64) -> Option<MonitorProbe> {
    let node = swarm.nodes.first()?;
    let length = Duration::from_secs_f64(seconds);
    let before_idle = (rope_bytes_out(swarm).await, Instant::now());
    tokio::time::sleep(length).await;
    let before_watch = (rope_bytes_out(swarm).await, Instant::now());
    let mut times = Vec::new();
    let (mut failures, mut largest, mut last) = (0, 0, serde_json::Value::Null);
    let started = Instant::now();
    while started.elapsed() < length {
        let asked = Instant::now();
        let answer = node.api.get("/v1/swarm", Duration::from_secs(10)).await;
        let took = asked.elapsed().as_secs_f64() * 1000.0;
        match answer.ok().filter(|a| a.ok()).and_then(|a| serde_json::from_str(&a.body).ok().map(|v| (a.body.len(), v)))
        {
            Some((size, view)) => {
                times.push(took);
                largest = largest.max(size);
                last = view;
            }
            None => failures += 1,
        }
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(asked.elapsed())).await;
    }
    let after_watch = (rope_bytes_out(swarm).await, Instant::now());
    let rate =
        |(a, at): (f64, Instant), (b, bt): (f64, Instant)| (b - a) / bt.duration_since(at).as_secs_f64().max(0.001);
    let first_ms = times.first().copied().unwrap_or(0.0);
    let mut later: Vec<f64> = times.iter().skip(1).copied().collect();
    later.sort_by(f64::total_cmp);
    let nodes = last["nodes"].as_array().cloned().unwrap_or_default();
    Some(MonitorProbe {
        requests: times.len() + failures,
        first_ms,
        p50_ms: quantile(&later, 0.5),
        p99_ms: quantile(&later, 0.99),
        max_ms: later.last().copied().unwrap_or(0.0),
        failures,
        nodes_shown: nodes.len(),
        nodes_live: nodes.iter().filter(|n| n["health"] == "live").count(),
        largest_bytes: largest,
        rope_bps_idle: rate(before_idle, before_watch),
        rope_bps_watched: rate(before_watch, after_watch),
    })
}
