//! A running node.

use mafalda_media::MediaEngine;
use mafalda_swarm::{InboundCall, Multiaddr, PeerId, StartedSwarm, SwarmEvent, SwarmHandle};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::{NodeConfig, NodeError};

/// A running node. Stop it with [`Node::shutdown`].
#[derive(Debug)]
pub struct Node {
    swarm: SwarmHandle,
    media: MediaEngine,
    swarm_events: JoinHandle<()>,
}

impl Node {
    /// Starts the mediasoup workers, then the swarm.
    pub async fn start(config: NodeConfig) -> Result<Self, NodeError> {
        let media = MediaEngine::start(config.media).await?;
        let StartedSwarm { handle: swarm, events, calls } = match mafalda_swarm::start(config.swarm).await {
            Ok(started) => started,
            Err(error) => {
                media.close().await;
                return Err(error.into());
            }
        };
        info!(peer = %swarm.peer_id(), workers = media.workers().len(), "node started");
        let swarm_events = tokio::spawn(log_swarm_events(events));
        // No node-to-node methods yet: dropping each call answers it with an error.
        tokio::spawn(refuse_calls(calls));
        Ok(Self { swarm, media, swarm_events })
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.swarm.peer_id()
    }

    /// The addresses the node listens on, each ending in `/p2p/<peer id>` so it can
    /// be given to another node as a bootstrap address as is.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NodeError> {
        let peer = self.peer_id();
        let addrs = self.swarm.listen_addrs().await?;
        Ok(addrs.into_iter().map(|addr| addr.with_p2p(peer).unwrap_or_else(|addr| addr)).collect())
    }

    /// The swarm handle, for callers that talk to peers directly.
    pub fn swarm(&self) -> &SwarmHandle {
        &self.swarm
    }

    /// The media engine.
    pub fn media(&self) -> &MediaEngine {
        &self.media
    }

    /// Stops the swarm (closing every connection), then closes the workers.
    pub async fn shutdown(self) {
        let Self { swarm, media, swarm_events } = self;
        if let Err(error) = swarm.shutdown().await {
            debug!(%error, "swarm already stopped");
        }
        swarm_events.abort();
        media.close().await;
        info!("node stopped");
    }
}

async fn log_swarm_events(mut events: mpsc::Receiver<SwarmEvent>) {
    while let Some(event) = events.recv().await {
        match event {
            SwarmEvent::PeerConnected { peer, addr } => info!(%peer, %addr, "peer connected"),
            SwarmEvent::PeerDisconnected { peer } => info!(%peer, "peer disconnected"),
            SwarmEvent::PingRtt { peer, rtt } => debug!(%peer, ?rtt, "ping"),
            other => debug!(?other, "swarm event"),
        }
    }
}

async fn refuse_calls(mut calls: mpsc::Receiver<InboundCall>) {
    while let Some(call) = calls.recv().await {
        debug!(peer = %call.peer, method = %call.request.method, "refusing node call: no methods yet");
    }
}
