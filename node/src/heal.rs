//! When a stream's source goes away: healing from another provider of the
//! same origin, or ending the stream here and downstream. The verbs:
//! [`Inner::heal`] (re-pipe, else end), [`Inner::end_stream`] (end here,
//! tell downstream and upstream), [`Inner::withdraw`] (stop providing, close
//! egresses). [`watch_swarm`] turns peers leaving into these.

use std::sync::Arc;
use std::time::Duration;

use mafalda_swarm::{PeerId, SwarmEvent, stream_key};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::events::NodeEvent;
use crate::inner::{Inner, lock};
use crate::remote;
use crate::streams::{Role, StreamRef};

/// Lookups for another provider when the upstream died (1 when told the
/// stream closed upstream: that is news, not a glitch).
pub(crate) const HEAL_ATTEMPTS_AFTER_DEATH: u32 = 4;

impl Inner {
    /// The upstream of `stream` is gone: pipe it again from another provider and
    /// restart its egresses; if no provider is left, end it here.
    /// `attempts` bounds how often it looks for another provider (with 1, 2,
    /// 4 s pauses): a dead upstream's neighbours may be slow to answer on a
    /// busy swarm, and one failed lookup should not end the stream downstream.
    #[tracing::instrument(name = "stream", skip_all, fields(id = stream, %lost))]
    pub(crate) async fn heal(self: &Arc<Self>, stream: &str, lost: PeerId, attempts: u32) {
        let removed = {
            let mut streams = lock(&self.streams);
            let relayed_from_lost = streams.get(stream).is_some_and(|l| l.role == Role::Relay { upstream: lost });
            if relayed_from_lost { streams.remove(stream) } else { None }
        };
        let Some(local) = removed else { return };
        let downstream: Vec<PeerId> = local.pipes.keys().copied().collect();
        // Heal from the same origin only: a lost upstream is no reason to
        // accept another node's stream under this id.
        let wanted = StreamRef { id: stream.to_owned(), origin: Some(local.verified.origin) };
        drop(local);
        let started = std::time::Instant::now();
        let mut outcome = self.ensure_local(&wanted).await;
        for pause in [1, 2, 4].into_iter().take(attempts.saturating_sub(1) as usize) {
            let Err(error) = &outcome else { break };
            info!(stream, %error, retry_in_s = pause, "no provider yet; looking again");
            tokio::time::sleep(Duration::from_secs(pause)).await;
            outcome = self.ensure_local(&wanted).await;
        }
        match outcome {
            Ok(announced) => {
                self.reopen_egresses(stream).await;
                info!(stream, lost = %lost, took = ?started.elapsed(), "stream re-piped from another provider");
                // Downstream pipes came from the old producers: they re-pipe from here.
                self.move_downstream(stream, downstream).await;
                announced.done().await;
            }
            Err(error) => {
                warn!(stream, lost = %lost, %error, "no other provider; ending the stream here");
                self.withdraw(stream).await;
                self.tell_downstream(stream, downstream);
            }
        }
    }

    /// Drops `stream`'s egresses and stops providing it.
    pub(crate) async fn withdraw(&self, stream: &str) {
        let closed: Vec<String> = {
            let mut egresses = lock(&self.egresses);
            let ids: Vec<String> =
                egresses.iter().filter(|(_, record)| record.stream == stream).map(|(id, _)| id.clone()).collect();
            for id in &ids {
                egresses.remove(id);
            }
            ids
        };
        for id in closed {
            self.emit(NodeEvent::EgressClosed { id, stream: stream.to_owned(), reason: "stream ended".into() });
        }
        self.emit(NodeEvent::StreamEnded { stream: stream.to_owned() });
        if let Err(error) = self.swarm.stop_providing(stream_key(stream)).await {
            debug!(stream, %error, "could not stop providing");
        }
    }

    /// Tells each downstream peer that `stream` ended here (in the background).
    fn tell_downstream(self: &Arc<Self>, stream: &str, downstream: Vec<PeerId>) {
        for peer in downstream {
            let inner = Arc::clone(self);
            let stream = stream.to_owned();
            self.spawn("tell downstream", async move { remote::tell_closed(&inner, &stream, peer).await });
        }
    }

    /// Ends `stream` here: closes its producers (and so every consumer of them),
    /// stops providing it, and tells its downstream peers. False if not held.
    #[tracing::instrument(name = "stream", skip_all, fields(id = stream))]
    pub(crate) async fn end_stream(self: &Arc<Self>, stream: &str) -> bool {
        let Some(local) = lock(&self.streams).remove(stream) else { return false };
        info!(stream, downstream = local.pipes.len(), "stream ended here");
        let downstream: Vec<PeerId> = local.pipes.keys().copied().collect();
        let upstream = local.role.upstream();
        drop(local);
        self.withdraw(stream).await;
        self.tell_downstream(stream, downstream);
        if let Some(upstream) = upstream {
            // Done with the upstream's pipe: it can close it now rather than
            // keep sending until the stream ends there.
            let inner = Arc::clone(self);
            let stream = stream.to_owned();
            self.spawn("tell upstream", async move { crate::pipes::tell_unpipe(&inner, &stream, upstream).await });
        }
        true
    }

    /// Heals every stream whose upstream is `peer` (it left or died).
    pub(crate) async fn upstream_lost(self: &Arc<Self>, peer: PeerId) {
        let lost: Vec<String> = lock(&self.streams)
            .iter()
            .filter(|(_, local)| local.role == Role::Relay { upstream: peer })
            .map(|(stream, _)| stream.clone())
            .collect();
        for stream in lost {
            warn!(%stream, upstream = %peer, "upstream gone; looking for another provider");
            let inner = Arc::clone(self);
            self.spawn("heal", async move { inner.heal(&stream, peer, HEAL_ATTEMPTS_AFTER_DEATH).await });
        }
    }
}

/// Reacts to peers joining and leaving: a peer that left has its pipes
/// closed and the streams relayed from it healed.
pub(crate) async fn watch_swarm(inner: Arc<Inner>, mut events: mpsc::Receiver<SwarmEvent>) {
    while let Some(event) = events.recv().await {
        match event {
            SwarmEvent::PeerConnected { peer, addr } => info!(%peer, %addr, "peer connected"),
            SwarmEvent::PeerDisconnected { peer } => {
                info!(%peer, "peer disconnected");
                // Nothing keeps sending to a peer that is gone.
                inner.release_peer(peer);
                // Apps' workers it hosted for us, and those we hosted for its apps.
                crate::app_media::entry::host_left(&inner, peer);
                inner.app_media.hosting.peer_left(peer);
                crate::rooms::sync::peer_disconnected(&inner, peer);
                inner.upstream_lost(peer).await;
            }
            SwarmEvent::PingRtt { peer, rtt } => debug!(%peer, ?rtt, "ping"),
            other => debug!(?other, "swarm event"),
        }
    }
}
