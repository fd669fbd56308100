//! The task that owns the libp2p Swarm: turns commands into swarm calls and
//! swarm events into [`SwarmEvent`]s.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::swarm::{self, DialError};
use libp2p::{Multiaddr, PeerId, Swarm, identify, noise, ping, tcp, yamux};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::behaviour::{Behaviour, BehaviourEvent};
use crate::{SwarmConfig, SwarmError, SwarmEvent};

/// A request from a [`SwarmHandle`](crate::SwarmHandle), answered on its `oneshot`.
#[derive(Debug)]
pub(crate) enum Command {
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    ConnectedPeers(oneshot::Sender<Vec<PeerId>>),
    Dial { addr: Multiaddr, reply: oneshot::Sender<Result<(), SwarmError>> },
    Shutdown(oneshot::Sender<()>),
}

pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<SwarmEvent>,
    dropped_events: u64,
}

impl EventLoop {
    pub(crate) fn new(
        config: &SwarmConfig,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<SwarmEvent>,
    ) -> Result<Self, SwarmError> {
        let ping_interval = config.ping_interval;
        let idle = config.idle_connection_timeout;
        let swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair.clone())
            .with_tokio()
            .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
            .map_err(|e| SwarmError::Transport(e.to_string()))?
            .with_behaviour(|key| Behaviour::new(key, ping_interval))
            .map_err(|e| SwarmError::Transport(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build();
        Ok(Self { swarm, commands, events, dropped_events: 0 })
    }

    /// Listens on every address and waits until each listener has reported one.
    pub(crate) async fn listen(mut self, addrs: &[Multiaddr], timeout: Duration) -> Result<Self, SwarmError> {
        if addrs.is_empty() {
            return Err(SwarmError::NoListenAddress);
        }
        let mut pending: HashMap<ListenerId, Multiaddr> = HashMap::new();
        for addr in addrs {
            let id = self
                .swarm
                .listen_on(addr.clone())
                .map_err(|e| SwarmError::Listen { addr: addr.clone(), reason: e.to_string() })?;
            pending.insert(id, addr.clone());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        while !pending.is_empty() {
            let event = tokio::time::timeout_at(deadline, self.swarm.select_next_some()).await;
            let Ok(event) = event else {
                let addr = pending.into_values().next().unwrap_or_else(Multiaddr::empty);
                return Err(SwarmError::ListenTimeout(addr));
            };
            match event {
                swarm::SwarmEvent::NewListenAddr { listener_id, address } => {
                    info!(%address, "listening");
                    pending.remove(&listener_id);
                }
                swarm::SwarmEvent::ListenerError { listener_id, error } => {
                    if let Some(addr) = pending.remove(&listener_id) {
                        return Err(SwarmError::Listen { addr, reason: error.to_string() });
                    }
                }
                swarm::SwarmEvent::ListenerClosed { listener_id, reason, .. } => {
                    if let Some(addr) = pending.remove(&listener_id) {
                        let reason = reason.err().map_or_else(|| "closed".to_owned(), |e| e.to_string());
                        return Err(SwarmError::Listen { addr, reason });
                    }
                }
                other => self.on_swarm_event(other),
            }
        }
        Ok(self)
    }

    pub(crate) fn dial_all(&mut self, addrs: &[Multiaddr]) {
        for addr in addrs {
            if let Err(error) = self.swarm.dial(addr.clone()) {
                warn!(%addr, %error, "cannot dial bootstrap peer");
            }
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown(reply)) => {
                        let _ = reply.send(());
                        break;
                    }
                    Some(command) => self.on_command(command),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
            }
        }
        debug!(dropped_events = self.dropped_events, "swarm task stopped");
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::ListenAddrs(reply) => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::ConnectedPeers(reply) => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::Dial { addr, reply } => {
                let result = self
                    .swarm
                    .dial(addr.clone())
                    .map_err(|e: DialError| SwarmError::Dial { addr, reason: e.to_string() });
                let _ = reply.send(result);
            }
            // Handled in `run`, which must leave the loop.
            Command::Shutdown(reply) => {
                let _ = reply.send(());
            }
        }
    }

    fn on_swarm_event(&mut self, event: swarm::SwarmEvent<BehaviourEvent>) {
        match event {
            swarm::SwarmEvent::ConnectionEstablished { peer_id, endpoint, num_established, .. }
                if num_established.get() == 1 =>
            {
                debug!(peer = %peer_id, "peer connected");
                let addr = endpoint.get_remote_address().clone();
                self.emit(SwarmEvent::PeerConnected { peer: peer_id, addr });
            }
            swarm::SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                debug!(peer = %peer_id, "peer disconnected");
                self.emit(SwarmEvent::PeerDisconnected { peer: peer_id });
            }
            swarm::SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.emit(SwarmEvent::ListenAddr(address));
            }
            swarm::SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                warn!(peer = ?peer_id, %error, "outgoing connection failed");
            }
            swarm::SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { peer, result, .. })) => match result {
                Ok(rtt) => self.emit(SwarmEvent::PingRtt { peer, rtt }),
                Err(error) => debug!(%peer, %error, "ping failed"),
            },
            swarm::SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id, info, ..
            })) => {
                debug!(peer = %peer_id, agent = %info.agent_version, "identified peer");
            }
            _ => {}
        }
    }

    fn emit(&mut self, event: SwarmEvent) {
        if self.events.try_send(event).is_err() {
            self.dropped_events += 1;
        }
    }
}
