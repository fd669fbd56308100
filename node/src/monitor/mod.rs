//! Mafalda-monitor's data: the whole swarm as one node sees it, with no
//! collector. Every node answers `node.snapshot` (its workers, streams and
//! their pipes, clients and peers, [`snapshot`]); a node asked for the swarm
//! calls the nodes it knows, learns more from the peers each names, and keeps
//! what it learnt with its freshness ([`membership`]). Nothing runs while
//! nobody asks: a view older than [`REFRESH_AFTER`] is refreshed on the next
//! request (in the background when one is cached, so answers stay fast).

pub mod membership;
pub mod snapshot;

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use mafalda_rope::Value;
use mafalda_swarm::PeerId;
use serde::Serialize;
use tracing::debug;

use self::membership::{Health, Membership};
use self::snapshot::{NodeSnapshot, SnapshotAnswer, SnapshotParams};
use crate::inner::{Inner, lock};

/// A view older than this is refreshed when asked for.
pub const REFRESH_AFTER: Duration = Duration::from_secs(1);
/// How long one node may take to answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Calls in flight at once during a refresh.
const PARALLEL_CALLS: usize = 16;
/// How long this node reuses its own snapshot for peers that ask (a peer
/// asking in a loop costs one snapshot per this).
const OWN_SNAPSHOT_REUSE: Duration = Duration::from_millis(250);

/// The swarm as one node sees it (`GET /v1/swarm`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SwarmView {
    /// The node that answers.
    pub seen_from: String,
    /// Milliseconds since the view was last refreshed.
    pub refreshed_ms_ago: u64,
    /// Every node known, by peer id.
    pub nodes: Vec<ViewNode>,
    /// Every pipe, as its stream and the nodes it joins (upstream to downstream).
    pub edges: Vec<Edge>,
}

/// A node of the view.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewNode {
    /// What it said of itself, last time it answered.
    #[serde(flatten)]
    pub snapshot: NodeSnapshot,
    /// How fresh that is.
    pub health: Health,
    /// Age of the snapshot in milliseconds.
    pub age_ms: u64,
}

/// A pipe carrying `stream` from node `from` to node `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    /// The stream.
    pub stream: String,
    /// Upstream peer id.
    pub from: String,
    /// Downstream peer id.
    pub to: String,
}

/// A node's monitor state.
#[derive(Default)]
pub(crate) struct Monitor {
    membership: Mutex<Membership>,
    refreshed_at: Mutex<Option<Instant>>,
    refreshing: tokio::sync::Mutex<()>,
    own: Mutex<Option<(Instant, NodeSnapshot)>>,
}

impl Inner {
    /// `node.snapshot` for a peer: this node's snapshot (reused for a
    /// moment), or `unchanged` when the peer already has its version.
    pub(crate) async fn snapshot_for_peer(&self, params: SnapshotParams) -> SnapshotAnswer {
        let cached = lock(&self.monitor.own).clone().filter(|(at, _)| at.elapsed() < OWN_SNAPSHOT_REUSE);
        let snapshot = match cached {
            Some((_, snapshot)) => snapshot,
            None => {
                let snapshot = self.snapshot().await;
                *lock(&self.monitor.own) = Some((Instant::now(), snapshot.clone()));
                snapshot
            }
        };
        match params.unless {
            Some(version) if version == snapshot.version => SnapshotAnswer::Unchanged { unchanged: version },
            _ => SnapshotAnswer::Full(Box::new(snapshot)),
        }
    }

    /// The swarm as this node sees it, refreshed if older than [`REFRESH_AFTER`].
    pub(crate) async fn swarm_view(self: &Arc<Self>) -> SwarmView {
        let refreshed_at = *lock(&self.monitor.refreshed_at);
        match refreshed_at {
            None => self.refresh_view().await,
            Some(at) if at.elapsed() >= REFRESH_AFTER => {
                let inner = Arc::clone(self);
                self.spawn("refresh swarm view", async move { inner.refresh_view().await });
            }
            Some(_) => {}
        }
        self.view_now()
    }

    fn view_now(&self) -> SwarmView {
        let now = Instant::now();
        let membership = lock(&self.monitor.membership);
        let nodes: Vec<ViewNode> = membership
            .nodes(now)
            .into_iter()
            .map(|(snapshot, health, age)| ViewNode {
                snapshot: snapshot.clone(),
                health,
                age_ms: u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
            })
            .collect();
        let mut edges: Vec<Edge> = nodes
            .iter()
            .filter(|n| n.health != Health::Lost)
            .flat_map(|n| {
                n.snapshot.streams.iter().filter_map(|s| {
                    Some(Edge { stream: s.stream.clone(), from: s.upstream.clone()?, to: n.snapshot.peer.clone() })
                })
            })
            .collect();
        edges.sort_by(|a, b| (&a.stream, &a.from, &a.to).cmp(&(&b.stream, &b.from, &b.to)));
        let refreshed = lock(&self.monitor.refreshed_at).map_or(Duration::ZERO, |at| at.elapsed());
        SwarmView {
            seen_from: self.swarm.peer_id().to_string(),
            refreshed_ms_ago: u64::try_from(refreshed.as_millis()).unwrap_or(u64::MAX),
            nodes,
            edges,
        }
    }

    /// Asks every node known (and every node they name) for its snapshot; one
    /// refresh at a time (a caller arriving during one waits for it).
    async fn refresh_view(self: &Arc<Self>) {
        let _refreshing = match self.monitor.refreshing.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                drop(self.monitor.refreshing.lock().await);
                return;
            }
        };
        let started = Instant::now();
        let me = self.swarm.peer_id().to_string();
        let own = self.snapshot().await;
        {
            let mut membership = lock(&self.monitor.membership);
            for peer in &own.peers {
                membership.named(peer);
            }
            membership.answered(&me, own, Instant::now());
        }
        let mut asked: HashSet<String> = HashSet::from([me]);
        loop {
            let wave: Vec<String> =
                lock(&self.monitor.membership).peers().into_iter().filter(|p| !asked.contains(p)).collect();
            if wave.is_empty() {
                break;
            }
            asked.extend(wave.iter().cloned());
            let known: Vec<(String, Option<u64>)> = {
                let membership = lock(&self.monitor.membership);
                wave.into_iter()
                    .map(|peer| {
                        let version = membership.version(&peer);
                        (peer, version)
                    })
                    .collect()
            };
            let answers: Vec<(String, Result<Option<NodeSnapshot>, String>)> = futures::stream::iter(known)
                .map(|(peer, version)| async move {
                    let answer = self.ask_snapshot(&peer, version).await;
                    (peer, answer)
                })
                .buffer_unordered(PARALLEL_CALLS)
                .collect()
                .await;
            let now = Instant::now();
            let mut membership = lock(&self.monitor.membership);
            for (peer, answer) in answers {
                match answer {
                    Ok(Some(snapshot)) => {
                        for named in &snapshot.peers {
                            membership.named(named);
                        }
                        membership.answered(&peer, snapshot, now);
                    }
                    Ok(None) => {
                        for named in membership.peers_named_by(&peer) {
                            membership.named(&named);
                        }
                        membership.unchanged(&peer, now);
                    }
                    Err(reason) => {
                        debug!(%peer, reason, "no snapshot");
                        membership.failed(&peer, now);
                    }
                }
            }
        }
        lock(&self.monitor.membership).forget_lost(Instant::now());
        *lock(&self.monitor.refreshed_at) = Some(Instant::now());
        debug!(nodes = asked.len(), took_ms = started.elapsed().as_millis(), "swarm view refreshed");
    }

    /// `peer`'s snapshot, or `None` when the `version` this node has is current.
    async fn ask_snapshot(&self, peer: &str, version: Option<u64>) -> Result<Option<NodeSnapshot>, String> {
        let id = PeerId::from_str(peer).map_err(|e| e.to_string())?;
        let params = Value::serialized(&SnapshotParams { unless: version }).map_err(|e| e.to_string())?;
        let call = self.swarm.call(id, "node.snapshot", None, params);
        let answer = tokio::time::timeout(CALL_TIMEOUT, call).await.map_err(|_| "timed out".to_owned())?;
        let value = answer.map_err(|e| e.to_string())?;
        match value.deserialized().map_err(|e| e.to_string())? {
            SnapshotAnswer::Unchanged { unchanged } if Some(unchanged) == version => Ok(None),
            SnapshotAnswer::Unchanged { unchanged } => {
                Err(format!("unchanged from a version never seen ({unchanged})"))
            }
            SnapshotAnswer::Full(snapshot) => {
                snapshot.check(peer)?;
                Ok(Some(*snapshot))
            }
        }
    }
}

/// Counts one app client of the node while it lives (see [`crate::Node::client`]).
pub struct ClientGuard {
    inner: std::sync::Weak<Inner>,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.clients.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl crate::Node {
    /// Counts an app client (a ROPE connection, a WHIP or WHEP session) in
    /// this node's snapshot until the guard drops.
    pub fn client(&self) -> ClientGuard {
        self.inner.clients.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ClientGuard { inner: Arc::downgrade(&self.inner) }
    }

    /// The whole swarm as this node sees it (see the module docs).
    pub async fn swarm_view(&self) -> SwarmView {
        self.inner.swarm_view().await
    }
}
