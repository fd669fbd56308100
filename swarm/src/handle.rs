//! The caller's side: a cloneable handle over the swarm task, and its events.

use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use crate::event_loop::{Command, EventLoop};
use crate::{SwarmConfig, SwarmError};

/// Commands waiting for the event loop; callers wait when it is full.
const COMMAND_QUEUE: usize = 64;
/// Events waiting for the node; when full, new events are dropped and counted.
const EVENT_QUEUE: usize = 256;

/// Something the node should know about the swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SwarmEvent {
    /// A first connection to this peer was established.
    PeerConnected {
        /// The peer.
        peer: PeerId,
        /// The remote address of the connection.
        addr: Multiaddr,
    },
    /// The last connection to this peer closed.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
    },
    /// A ping to this peer came back.
    PingRtt {
        /// The peer.
        peer: PeerId,
        /// Round-trip time of the ping.
        rtt: Duration,
    },
    /// The node is listening on a new address.
    ListenAddr(Multiaddr),
}

/// Cloneable handle to the swarm task. The task stops on [`SwarmHandle::shutdown`]
/// or when every handle is dropped.
#[derive(Debug, Clone)]
pub struct SwarmHandle {
    peer_id: PeerId,
    commands: mpsc::Sender<Command>,
}

/// Starts the swarm task: builds the transports, listens on every configured
/// address (returning once each listener reports an address), dials the
/// bootstrap peers, and hands back the handle and the event stream.
pub async fn start(config: SwarmConfig) -> Result<(SwarmHandle, mpsc::Receiver<SwarmEvent>), SwarmError> {
    let peer_id = config.keypair.public().to_peer_id();
    let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let (event_tx, event_rx) = mpsc::channel(EVENT_QUEUE);
    let mut event_loop =
        EventLoop::new(&config, command_rx, event_tx)?.listen(&config.listen, config.listen_timeout).await?;
    event_loop.dial_all(&config.bootstrap);
    tokio::spawn(event_loop.run());
    Ok((SwarmHandle { peer_id, commands: command_tx }, event_rx))
}

impl SwarmHandle {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The addresses the node listens on now.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, SwarmError> {
        self.ask(Command::ListenAddrs).await
    }

    /// The peers with at least one open connection.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, SwarmError> {
        self.ask(Command::ConnectedPeers).await
    }

    /// Dials an address; resolves once the dial is under way (see [`SwarmEvent::PeerConnected`]).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), SwarmError> {
        self.ask(|reply| Command::Dial { addr, reply }).await?
    }

    /// Closes every connection and stops the swarm task; resolves when it has stopped.
    pub async fn shutdown(&self) -> Result<(), SwarmError> {
        self.ask(Command::Shutdown).await
    }

    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, SwarmError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).await.map_err(|_| SwarmError::Stopped)?;
        answer.await.map_err(|_| SwarmError::Stopped)
    }
}
