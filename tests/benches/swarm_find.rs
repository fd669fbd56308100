//! Find latency across a swarm of real libp2p nodes on 127.0.0.1.
//!
//! `cargo bench -p mafalda-tests --bench swarm_find` starts 30 and then 100 nodes
//! (two seeds), provides one key at one node, and times `find_providers` from
//! every other node, one lookup at a time. Prints p50/p99/max per swarm size.

use std::time::{Duration, Instant};

use mafalda_swarm::{KadSettings, stream_key};
use mafalda_tests::swarm::{loopback_config, spawn_swarm};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn measure(total: usize) {
    let mut kad = KadSettings::default();
    kad.query_timeout = Duration::from_secs(30);
    // Settled nodes (in the swarm for longer than the republish interval)
    // answer lookups from their own store; the run lasts under a minute.
    kad.own_store_after = Duration::ZERO;
    let nodes = spawn_swarm(total, 2, || loopback_config().with_kad(kad.clone())).await;
    // Let the initial bootstrap storm settle before measuring.
    tokio::time::sleep(Duration::from_secs(if total > 50 { 20 } else { 5 })).await;
    let provider = total / 2;
    let key = stream_key("bench-stream");
    let started = Instant::now();
    let stored_at = nodes[provider].handle.provide(key.clone()).await.expect("provide");
    let provide_time = started.elapsed();

    let mut latencies = Vec::with_capacity(total - 1);
    let mut missed = 0;
    for (i, node) in nodes.iter().enumerate().filter(|(i, _)| *i != provider) {
        let started = Instant::now();
        let found = node.handle.find_providers(key.clone(), Duration::from_secs(30)).await.expect("find");
        latencies.push(started.elapsed());
        if !found.contains(&nodes[provider].peer_id()) {
            missed += 1;
            eprintln!("node {i} did not find the provider");
        }
    }
    latencies.sort();
    println!(
        "swarm of {total:>3} nodes: provide {provide_time:>8.1?} (record at {stored_at} peers); \
         find from {} nodes: p50 {:>8.1?} p99 {:>8.1?} max {:>8.1?}; not found: {missed}",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
    );
    for node in &nodes {
        let _ = node.handle.shutdown().await;
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        measure(30).await;
        measure(100).await;
    });
}
