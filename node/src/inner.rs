//! The state a node's tasks share ([`Inner`]) and the small verbs every
//! part of the node uses on it: emitting events, describing and showing a
//! stream, spawning a task the node owns.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use mafalda_media::{MediaEngine, SpanningRouter};
use mafalda_swarm::SwarmHandle;
use tokio::sync::broadcast;

use crate::NodeConfig;
use crate::egress::EgressRecord;
use crate::events::NodeEvent;
use crate::lifecycle::Tasks;
use crate::node::StreamStatus;
use crate::streams::{LocalStream, StreamDescription};

pub(crate) struct Inner {
    pub(crate) config: NodeConfig,
    pub(crate) swarm: SwarmHandle,
    pub(crate) media: MediaEngine,
    pub(crate) router: SpanningRouter,
    pub(crate) metrics: crate::metrics::NodeMetrics,
    pub(crate) streams: Mutex<HashMap<String, LocalStream>>,
    pub(crate) egresses: Mutex<HashMap<String, EgressRecord>>,
    /// Open WebRTC consumers per stream (the app connections own them).
    pub(crate) webrtc_consumers: Mutex<HashMap<String, usize>>,
    /// One lock per stream being pulled, so concurrent consumes share one pipe.
    pub(crate) pulling: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Finds of the last moments, for the consumes that follow them.
    pub(crate) recent_finds: Mutex<crate::recent_finds::RecentFinds>,
    /// Signatures of stream records and hand-offs verified lately.
    pub(crate) checked_signatures: crate::record::CheckedSignatures,
    /// Pipe transports opened ahead of the next `stream.pipe`, per router.
    pub(crate) spare_pipes: Mutex<crate::spare_pipes::Spares<mafalda_media::mediasoup::router::RouterId>>,
    /// The pipe pairs this node asks streams through, by provider and router
    /// (`pipe_pairs`).
    pub(crate) asking_pairs: Mutex<crate::pipe_pairs::KeptPairs>,
    /// The pipe pairs this node serves streams through, by asker and router.
    pub(crate) serving_pairs: Mutex<crate::pipe_pairs::KeptPairs>,
    /// When egress and pipe counters were last read (read at most once a second).
    pub(crate) egresses_counted: Mutex<Option<std::time::Instant>>,
    pub(crate) next_egress: std::sync::atomic::AtomicU64,
    pub(crate) events: broadcast::Sender<NodeEvent>,
    /// Set once the node starts draining: not ready, no new pipes.
    pub(crate) draining: std::sync::atomic::AtomicBool,
    /// Becomes true once a drain is over (the process may exit).
    pub(crate) drained: tokio::sync::watch::Sender<bool>,
    /// Every task the node starts, and the token that stops them.
    pub(crate) tasks: Tasks,
    /// Remote Mediasoup: apps' workers here and on other nodes.
    pub(crate) app_media: crate::app_media::AppMedia,
    /// The rooms this node's apps are in.
    pub(crate) rooms: crate::rooms::Rooms,
    /// App clients connected through the API (ROPE connections, WHIP/WHEP sessions).
    pub(crate) clients: std::sync::atomic::AtomicUsize,
    /// What this node knows of the swarm, for monitors.
    pub(crate) monitor: crate::monitor::Monitor,
}

/// Locks `mutex`, carrying on after a panic elsewhere poisoned it (the data
/// are plain maps that stay consistent between statements).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    /// Tells the apps; nobody listening is fine.
    pub(crate) fn emit(&self, event: NodeEvent) {
        let _ = self.events.send(event);
    }

    /// The description of a stream held here.
    pub(crate) fn describe(&self, stream: &str) -> Option<StreamDescription> {
        let mut description = lock(&self.streams).get(stream).map(|local| local.describe(stream))?;
        description.load = Some(self.own_load());
        Some(description)
    }

    /// This node's load: mean CPU of its workers, 0–1 (0 with none).
    pub(crate) fn own_load(&self) -> f64 {
        let workers = self.media.status();
        if workers.is_empty() {
            return 0.0;
        }
        let mean = workers.iter().map(|w| f64::from(w.cpu_percent)).sum::<f64>() / workers.len() as f64;
        (mean / 100.0).clamp(0.0, 1.0)
    }

    /// Runs `future` as a task of this node: cancelled at shutdown, waited for.
    pub(crate) fn spawn(&self, name: &'static str, future: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(name, future);
    }
}

impl Inner {
    /// What `local` looks like from outside (the caller may hold the streams lock).
    pub(crate) fn status_of(&self, stream: &str, local: &LocalStream) -> StreamStatus {
        StreamStatus {
            local_consumers: self.consumers_besides_pipes(stream) + local.pipes.len(),
            stream: stream.to_owned(),
            upstream: local.role.upstream().map(|peer| peer.to_string()),
            origin: local.verified.origin.to_string(),
            hops: local.hops(),
            path: local.path(),
            downstream: {
                let mut peers: Vec<String> = local.pipes.keys().map(ToString::to_string).collect();
                peers.sort();
                peers
            },
        }
    }
}
