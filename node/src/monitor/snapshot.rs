//! What one node tells a swarm monitor about itself (`node.snapshot`, node to
//! node over ROPE): its workers and their load, the streams it holds and
//! which way each flows, its app clients and its peers. Bounded lists; a
//! snapshot from a peer is checked before it is believed.

use serde::{Deserialize, Serialize};

use crate::inner::Inner;

/// Most entries of each list in a snapshot (streams, peers, workers, addresses).
pub const MAX_LISTED: usize = 256;
/// Longest string in a snapshot (ids, addresses).
const MAX_TEXT: usize = 512;

/// One node, as it describes itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSnapshot {
    /// Its peer id.
    pub peer: String,
    /// Its listen addresses.
    pub addrs: Vec<String>,
    /// `public`, `private` or `unknown`, as its AutoNAT says.
    pub reachability: String,
    /// Whether it is draining.
    pub draining: bool,
    /// Its mediasoup workers.
    pub workers: Vec<WorkerSnapshot>,
    /// The streams it holds.
    pub streams: Vec<StreamSnapshot>,
    /// Rooms its apps are in.
    pub rooms: usize,
    /// App clients connected to it (ROPE connections and WHIP/WHEP sessions).
    pub clients: usize,
    /// Peers it is connected to.
    pub peers: Vec<String>,
    /// A digest of everything above (CPU to the nearest 5 points): a monitor
    /// that has this version asks with it and is told `unchanged` instead of
    /// the whole snapshot again.
    #[serde(default)]
    pub version: u64,
}

/// What `node.snapshot` answers: the snapshot, or that the asker's version
/// (`{"unless": VERSION}` in the call) is still current.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SnapshotAnswer {
    /// The version the asker has is current.
    Unchanged {
        /// That version.
        unchanged: u64,
    },
    /// The snapshot.
    Full(Box<NodeSnapshot>),
}

/// The parameters of `node.snapshot`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SnapshotParams {
    /// The version the asker has, if any.
    #[serde(default)]
    pub unless: Option<u64>,
}

impl NodeSnapshot {
    /// The snapshot's digest (its `version` left out, CPU rounded so noise is no change).
    pub fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut rounded = self.clone();
        rounded.version = 0;
        for worker in &mut rounded.workers {
            worker.cpu_percent = (worker.cpu_percent / 5.0).round() * 5.0;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        serde_json::to_string(&rounded).unwrap_or_default().hash(&mut hasher);
        hasher.finish()
    }

    /// With its version set.
    pub fn versioned(mut self) -> Self {
        self.version = self.digest();
        self
    }
}

/// A mediasoup worker's load and objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerSnapshot {
    /// Worker id.
    pub id: String,
    /// CPU percent at the last sample (one core = 100).
    pub cpu_percent: f32,
    /// Routers.
    pub routers: u32,
    /// Transports (pipes included).
    pub transports: u32,
    /// Producers.
    pub producers: u32,
    /// Consumers.
    pub consumers: u32,
}

/// A stream the node holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamSnapshot {
    /// Stream id.
    pub stream: String,
    /// The origin's peer id (this node's when it is the origin).
    pub origin: String,
    /// The peer it is piped from (none at the origin).
    pub upstream: Option<String>,
    /// Peers it pipes the stream to.
    pub downstream: Vec<String>,
    /// What consumes it here: egresses, WebRTC consumers and players, and the
    /// pipes to the downstream nodes.
    pub local_consumers: usize,
}

impl From<mafalda_media::WorkerStatus> for WorkerSnapshot {
    fn from(worker: mafalda_media::WorkerStatus) -> Self {
        Self {
            id: worker.id.to_string(),
            cpu_percent: worker.cpu_percent,
            routers: worker.objects.routers,
            transports: worker.objects.transports,
            producers: worker.objects.producers,
            consumers: worker.objects.consumers,
        }
    }
}

impl NodeSnapshot {
    /// Checks a snapshot `from` a peer: its own id, lists and strings bounded.
    pub fn check(&self, from: &str) -> Result<(), String> {
        if self.peer != from {
            return Err(format!("a snapshot of {} sent by {from}", self.peer));
        }
        let lists = [self.addrs.len(), self.workers.len(), self.streams.len(), self.peers.len()];
        if lists.iter().any(|n| *n > MAX_LISTED) {
            return Err(format!("a list longer than {MAX_LISTED}"));
        }
        let texts = self
            .addrs
            .iter()
            .chain(&self.peers)
            .chain(self.workers.iter().map(|w| &w.id))
            .chain(self.streams.iter().flat_map(|s| [&s.stream, &s.origin].into_iter().chain(&s.upstream)));
        let mut texts = texts.chain(std::iter::once(&self.reachability));
        if texts.any(|t| t.len() > MAX_TEXT) || self.streams.iter().any(|s| s.downstream.len() > MAX_LISTED) {
            return Err("an entry too long".into());
        }
        Ok(())
    }
}

impl Inner {
    /// This node's snapshot now.
    pub(crate) async fn snapshot(&self) -> NodeSnapshot {
        self.media.sample_cpu();
        let addrs = self.swarm.listen_addrs().await.unwrap_or_default();
        let peers = self.swarm.connected_peers().await.unwrap_or_default();
        let reachability = self.swarm.reachability().await.map_or_else(
            |_| "unknown".to_owned(),
            |r| {
                serde_json::to_value(r.reachability)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            },
        );
        let workers = self.media.status().into_iter().take(MAX_LISTED).map(WorkerSnapshot::from).collect();
        let statuses: Vec<crate::StreamStatus> =
            crate::inner::lock(&self.streams).iter().map(|(stream, local)| self.status_of(stream, local)).collect();
        let streams = statuses
            .into_iter()
            .take(MAX_LISTED)
            .map(|s| StreamSnapshot {
                stream: s.stream,
                origin: s.origin,
                upstream: s.upstream,
                downstream: s.downstream.into_iter().take(MAX_LISTED).collect(),
                local_consumers: s.local_consumers,
            })
            .collect();
        NodeSnapshot {
            peer: self.swarm.peer_id().to_string(),
            addrs: addrs.iter().take(MAX_LISTED).map(ToString::to_string).collect(),
            reachability,
            draining: self.draining.load(std::sync::atomic::Ordering::SeqCst),
            workers,
            streams,
            rooms: self.rooms.count(),
            clients: self.clients.load(std::sync::atomic::Ordering::Relaxed),
            peers: peers.iter().take(MAX_LISTED).map(ToString::to_string).collect(),
            version: 0,
        }
        .versioned()
    }
}
