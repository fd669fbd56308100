//! Leaving without loss, and moving a stream to a new source without a gap.
//!
//! **Move** (`stream.move {stream, leave}`, sent by a node to the peers it
//! pipes a stream to): the downstream node pipes the stream again — from
//! another provider when `leave` (the sender is going away), else from the
//! sender itself (its producers changed) — and only then switches: its
//! egresses are re-opened on the new producers (the old ones stop after the
//! new ones send), its own downstream peers are asked to move (from it), and
//! the old pipe closes last. Make-before-break, hop by hop.
//!
//! **Drain** ([`Inner::drain`]): the node answers not ready, stops providing,
//! answers new pipe requests busy (naming the peers it feeds), asks every
//! downstream peer of every relayed stream to move away, ends its own
//! publications cleanly downstream, tells local apps, and ends the rest.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mafalda_rope::Value;
use mafalda_swarm::{PeerId, stream_key};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::NodeError;
use crate::events::NodeEvent;
use crate::inner::{Inner, lock};
use crate::streams::{Role, StreamRef};

/// Params of `stream.move`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveParams {
    /// The stream.
    pub stream: String,
    /// Whether the sender is leaving (pipe from another provider) or only
    /// changed its producers (pipe from the sender again).
    pub leave: bool,
}

/// What a drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainReport {
    /// Downstream peers that moved to another provider before their pipe closed.
    pub moved: usize,
    /// Downstream peers that did not confirm a move (their pipe closed anyway).
    pub not_moved: usize,
    /// Publications of this node, ended downstream.
    pub publications_ended: usize,
    /// Egresses of local apps, closed.
    pub egresses_closed: usize,
}

impl Inner {
    /// Whether the node is draining (or drained): it takes no new work.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Serves `stream.move` from `peer`: only the node a stream comes from may ask.
    pub(crate) async fn move_stream(
        self: &Arc<Self>,
        stream: &str,
        peer: PeerId,
        leave: bool,
    ) -> Result<bool, NodeError> {
        let origin = match lock(&self.streams).get(stream) {
            Some(local) if local.role == (Role::Relay { upstream: peer }) => local.verified.origin,
            _ => return Ok(false),
        };
        let gate = Arc::clone(lock(&self.pulling).entry(stream.to_owned()).or_default());
        let _pulling = gate.lock().await;
        let started = std::time::Instant::now();
        let wanted = StreamRef { id: stream.to_owned(), origin: Some(origin) };
        let new = if leave {
            self.acquire(&wanted, &[peer]).await
        } else {
            crate::pipes::pull(self, stream, peer, Some(origin)).await
        };
        let new = match new {
            Ok(new) => new,
            Err(error) => {
                // Nowhere to move to: keep the pipe we have until it closes,
                // then healing takes over as after any loss.
                warn!(stream, %peer, leave, %error, "could not move the stream");
                return Err(error);
            }
        };
        let same_upstream = new.role == Role::Relay { upstream: peer };
        let Some(old) = lock(&self.streams).insert(stream.to_owned(), new) else { return Ok(false) };
        if let Some(local) = lock(&self.streams).get(stream) {
            self.emit(NodeEvent::StreamHeld { status: self.status_of(stream, local) });
        }
        self.reopen_egresses(stream).await;
        let downstream: Vec<PeerId> = old.pipes.keys().copied().collect();
        self.move_downstream(stream, downstream).await;
        // Last: the old producers and the old upstream pipe. From the same
        // upstream, the new pipe already replaced the old one there (one pipe
        // per peer and stream): an unpipe now would close the new one.
        drop(old);
        if !same_upstream {
            crate::pipes::tell_unpipe(self, stream, peer).await;
        }
        info!(stream, from = %peer, leave, took = ?started.elapsed(), "stream moved to a new pipe before the old one closed");
        Ok(true)
    }

    /// Asks `downstream` peers to pipe `stream` from this node again (its
    /// producers changed), and waits for their answers.
    pub(crate) async fn move_downstream(self: &Arc<Self>, stream: &str, downstream: Vec<PeerId>) -> (usize, usize) {
        let moves = downstream.into_iter().map(|peer| self.ask_to_move(stream, peer, false));
        tally(futures::future::join_all(moves).await)
    }

    /// Asks `peer` to move `stream`; true if it did.
    async fn ask_to_move(self: &Arc<Self>, stream: &str, peer: PeerId, leave: bool) -> bool {
        let Ok(params) = Value::serialized(&MoveParams { stream: stream.to_owned(), leave }) else { return false };
        match crate::remote::call::<bool>(self, peer, "stream.move", params).await {
            Ok(moved) => moved,
            Err(error) => {
                debug!(stream, %peer, %error, "a downstream peer did not move");
                false
            }
        }
    }

    /// Drains the node (see the module doc). Bounded by `timeout`; what is
    /// not done by then is ended as at any stop.
    /// The caller has set `draining` (once).
    pub(crate) async fn drain(self: &Arc<Self>, timeout: Duration) -> DrainReport {
        info!("draining: not ready, moving downstream peers away");
        self.emit(NodeEvent::Draining);
        let streams: Vec<(String, bool)> =
            lock(&self.streams).iter().map(|(id, local)| (id.clone(), local.role == Role::Origin)).collect();
        for (stream, _) in &streams {
            if let Err(error) = self.swarm.stop_providing(stream_key(stream)).await {
                debug!(stream, %error, "could not stop providing");
            }
        }
        let mut report = DrainReport::default();
        let work = async {
            let relayed = streams.iter().filter(|(_, origin)| !origin).map(|(stream, _)| stream.clone());
            let moves = relayed.flat_map(|stream| {
                let peers: Vec<PeerId> =
                    lock(&self.streams).get(&stream).map(|l| l.pipes.keys().copied().collect()).unwrap_or_default();
                peers.into_iter().map(move |peer| {
                    let stream = stream.clone();
                    async move { self.ask_to_move(&stream, peer, true).await }
                })
            });
            let moves: Vec<_> = moves.collect();
            (report.moved, report.not_moved) = tally(futures::future::join_all(moves).await);
        };
        if tokio::time::timeout(timeout, work).await.is_err() {
            warn!(?timeout, "drain timed out; ending what is left");
        }
        report.egresses_closed = self.egress_count();
        for (stream, origin) in streams {
            report.publications_ended += usize::from(origin);
            self.end_stream(&stream).await;
        }
        info!(?report, "drained");
        report
    }
}

fn tally(outcomes: Vec<bool>) -> (usize, usize) {
    let moved = outcomes.iter().filter(|moved| **moved).count();
    (moved, outcomes.len() - moved)
}
