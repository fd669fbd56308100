//! Swarms of real libp2p nodes on 127.0.0.1 for tests: start many, wire their
//! bootstrap links, answer ROPE calls with an echo.

use std::time::Duration;

use mafalda_swarm::{InboundCall, Keypair, Multiaddr, PeerId, StartedSwarm, SwarmConfig, SwarmEvent, SwarmHandle};
use tokio::sync::mpsc;

/// One running test node.
#[derive(Debug)]
pub struct TestNode {
    /// The node's handle.
    pub handle: SwarmHandle,
    /// Its events (drained by the test when it cares).
    pub events: mpsc::Receiver<SwarmEvent>,
    /// A listen address ending in `/p2p/<peer id>`.
    pub addr: Multiaddr,
}

impl TestNode {
    /// The node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.handle.peer_id()
    }

    /// Its traffic on `protocol` so far (every protocol is listed).
    pub fn traffic_of(&self, protocol: mafalda_swarm::ProtocolLabel) -> mafalda_swarm::ProtocolTraffic {
        self.handle
            .traffic()
            .into_iter()
            .find(|(label, _)| *label == protocol)
            .map(|(_, t)| t)
            .expect("every label listed")
    }

    /// Sum of the samples of the node's metric `name` whose labels contain
    /// `label` (all of them when `label` is empty).
    pub fn metric(&self, name: &str, label: &str) -> f64 {
        let mut text = String::new();
        self.handle.encode_metrics(&mut text).expect("metrics");
        text.lines()
            .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']) && line.contains(label))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// A configuration listening on an ephemeral TCP port of 127.0.0.1.
pub fn loopback_config() -> SwarmConfig {
    let listen: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr");
    SwarmConfig::new(Keypair::generate_ed25519(), vec![listen])
}

/// Starts a node; ROPE calls to it are answered with their own params (an echo).
pub async fn spawn_node(config: SwarmConfig) -> TestNode {
    crate::log_if_asked();
    let StartedSwarm { handle, events, calls } = mafalda_swarm::start(config).await.expect("start swarm");
    tokio::spawn(echo(calls));
    let addr = handle.listen_addrs().await.expect("listen addrs").remove(0).with_p2p(handle.peer_id()).expect("p2p");
    TestNode { handle, events, addr }
}

async fn echo(mut calls: mpsc::Receiver<InboundCall>) {
    while let Some(call) = calls.recv().await {
        let params = call.request.params.clone();
        let _ = call.respond(Ok(params)).await;
    }
}

/// Starts `seeds` seed nodes (each bootstrapping from the first) and then
/// `total - seeds` nodes, each bootstrapping from one seed in turn.
pub async fn spawn_swarm(total: usize, seeds: usize, config: impl Fn() -> SwarmConfig) -> Vec<TestNode> {
    spawn_swarm_with(total, seeds, |_| config()).await
}

/// [`spawn_swarm`], with each node's config made from its index (0 is the
/// first seed): for a swarm where some nodes are set apart.
pub async fn spawn_swarm_with(total: usize, seeds: usize, config: impl Fn(usize) -> SwarmConfig) -> Vec<TestNode> {
    assert!(seeds >= 1 && seeds <= total);
    let mut nodes: Vec<TestNode> = Vec::with_capacity(total);
    for i in 0..total {
        let bootstrap = match i {
            0 => vec![],
            i if i < seeds => vec![nodes[0].addr.clone()],
            i => vec![nodes[i % seeds].addr.clone()],
        };
        nodes.push(spawn_node(config(i).with_bootstrap(bootstrap)).await);
    }
    nodes
}

/// Polls `check` every 100 ms until it returns true or `deadline` passes; returns
/// whether it did.
pub async fn eventually<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for the first event `pick` accepts, up to `deadline`.
pub async fn wait_for_event<T>(
    events: &mut mpsc::Receiver<SwarmEvent>,
    deadline: Duration,
    mut pick: impl FnMut(SwarmEvent) -> Option<T>,
) -> Option<T> {
    tokio::time::timeout(deadline, async {
        while let Some(event) = events.recv().await {
            if let Some(found) = pick(event) {
                return Some(found);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// Whether `handle`'s node is connected to `peer` within `deadline`: for a
/// test that works with a node once it joined, not on how long joining takes.
pub async fn connected_within(handle: &SwarmHandle, peer: PeerId, deadline: Duration) -> bool {
    eventually(deadline, || async { handle.connected_peers().await.is_ok_and(|peers| peers.contains(&peer)) }).await
}
