//! The task that owns the libp2p Swarm: turns commands into swarm calls and
//! swarm events into [`SwarmEvent`]s, and answers every pending request on every
//! path (success, failure, deadline, shutdown).
//!
//! By concern: this file holds the loop, its commands, the tick and the
//! connection events; `kademlia` the DHT side (lookups, provider records,
//! the routing table), `calls` ROPE calls by request-response, `nat`
//! reachability, relays and hole punching.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::kad::{self, QueryId, RecordKey};
use libp2p::request_response::{InboundRequestId, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{self, DialError, FromSwarm, NetworkBehaviour, NewExternalAddrCandidate};
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identify, ping};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::behaviour::{Behaviour, BehaviourEvent, LOAD_TOPIC};
use crate::bootstrap::Bootstrap;
use crate::connections::{ConnectionPolicy, PeerBounds};
use crate::error::CallError;
use crate::find::PendingFind;
use crate::handle::InboundCall;
use crate::load::{LoadReport, LoadReportError};
use crate::penalties::{PeerAction, Penalties};
use crate::refresh::{Bootstraps, RefreshPolicy};
use crate::routing;
use crate::traffic::Traffic;
use crate::transport::build_swarm;
use crate::{SwarmConfig, SwarmError, SwarmEvent};
use mafalda_rope::{Request as RopeRequest, Response as RopeResponse};

mod calls;
mod kademlia;
mod nat;

pub(crate) use calls::busy;
use kademlia::KadRefused;

/// How often deadlines, retries and expiries are checked while something is
/// pending: a lookup (its deadline), a crowd (trimmed every tick), no peer
/// yet (bootstrap retries).
const TICK: Duration = Duration::from_millis(100);
/// How often they are checked otherwise. Everything else the tick does
/// (bans, load reports, the relook, the trim) is due in seconds, and a node
/// of an idle swarm woke ten times a second for nothing: at 300 nodes on
/// two cores, their idle wake-ups were a third of the CPU a burst of finds
/// had.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// Most provider lookups in flight at once.
const MAX_PENDING_FINDS: usize = 256;
/// How often connected peers are checked against the connection bounds.
const TRIM_INTERVAL: Duration = Duration::from_secs(5);
/// How long after a provider announcement ends no peer is disconnected as
/// unused: Kademlia counts the announcement done once its ADD_PROVIDER
/// messages are queued, before they are sent (some after a dial), and a
/// peer cut meanwhile never stores the record.
const ANNOUNCE_GRACE: Duration = Duration::from_secs(5);
/// A bootstrap's self lookup is skipped within this long of the last one
/// (`refresh`): at join, every new peer in the routing table starts one.
const SELF_LOOKUP_GAP: Duration = Duration::from_secs(60);
/// How long after joining a small swarm the node looks itself up once more
/// (see `refresh`): long enough for the seed to have heard from those that
/// joined with it.
const JOIN_RELOOK: Duration = Duration::from_secs(2);

/// A request from a [`SwarmHandle`](crate::SwarmHandle), answered on its `oneshot`.
#[derive(Debug)]
pub(crate) enum Command {
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Reachability(oneshot::Sender<crate::reachability::ReachabilityStatus>),
    ConnectedPeers(oneshot::Sender<Vec<PeerId>>),
    PeerIps(PeerId, oneshot::Sender<Vec<std::net::IpAddr>>),
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), SwarmError>>,
    },
    Provide {
        key: RecordKey,
        reply: oneshot::Sender<Result<usize, SwarmError>>,
    },
    StopProviding {
        key: RecordKey,
        reply: oneshot::Sender<()>,
    },
    /// `deadline` is when the caller asked plus its patience, so time spent
    /// waiting in the command queue counts.
    FindProviders {
        key: RecordKey,
        deadline: Instant,
        /// Walk to the closest peers rather than stop after enough answers.
        thorough: bool,
        /// Where providers go as soon as they are known reachable.
        named: Option<mpsc::Sender<PeerId>>,
        reply: oneshot::Sender<crate::find::ProviderLookup>,
    },
    PublishLoad {
        report: LoadReport,
        reply: oneshot::Sender<Result<(), SwarmError>>,
    },
    Call {
        peer: PeerId,
        request: RopeRequest,
        reply: oneshot::Sender<Result<RopeResponse, CallError>>,
    },
    Respond {
        peer: PeerId,
        channel: ResponseChannel<RopeResponse>,
        response: RopeResponse,
    },
    /// A peer misbehaved on a ROPE link.
    Penalise {
        peer: PeerId,
        action: PeerAction,
    },
    /// The node's answer to "is this peer in use?", consulted before an
    /// unused connection is closed.
    KeepConnected(KeepPeers),
    Shutdown(oneshot::Sender<()>),
}

/// Whether the node uses a peer (a pipe, a session): such peers stay connected.
#[derive(Clone)]
pub(crate) struct KeepPeers(pub(crate) std::sync::Arc<dyn Fn(&PeerId) -> bool + Send + Sync>);

impl std::fmt::Debug for KeepPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeepPeers")
    }
}

/// A ROPE call on its way to a peer.
#[derive(Debug)]
pub(crate) struct OutboundCall {
    peer: PeerId,
    /// Kept to send again once the peer's address is found.
    request: RopeRequest,
    reply: oneshot::Sender<Result<RopeResponse, CallError>>,
    /// Whether the peer's addresses were already looked up in the DHT.
    resolved: bool,
}

pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    /// libp2p's own metrics (connections, Kademlia, gossipsub, identify, ping).
    metrics: libp2p::metrics::Metrics,
    /// Inbound Kademlia records not stored.
    kad_refused: KadRefused,
    commands: mpsc::Receiver<Command>,
    /// Weak so that the loop ends when every handle is gone.
    command_sender: mpsc::WeakSender<Command>,
    events: mpsc::Sender<SwarmEvent>,
    calls: mpsc::Sender<InboundCall>,
    /// Calls in flight over ROPE links (not seen here otherwise).
    link_calls: crate::rope_link::CallsInFlight,
    dropped_events: u64,
    load_topic: gossipsub::IdentTopic,
    /// The peers' RTTs and loads, read by the handles too.
    costs: std::sync::Arc<crate::peer_costs::CostsView>,
    /// Addresses AutoNAT confirmed or refuted.
    reachability: crate::reachability::ReachabilityState,
    /// The keys this node provides, and when each is announced again to
    /// peers joining near it.
    provided: crate::reannounce::ProvidedKeys,
    /// When the routing table got its first peer: the node's age in the swarm.
    in_swarm_since: Option<Instant>,
    /// How old in the swarm a node is before its own store answers lookups.
    own_store_after: Duration,
    finds: HashMap<QueryId, PendingFind>,
    provides: HashMap<QueryId, oneshot::Sender<Result<usize, SwarmError>>>,
    calls_out: HashMap<OutboundRequestId, OutboundCall>,
    /// Calls waiting for a Kademlia lookup of their peer's addresses.
    resolving: HashMap<QueryId, Vec<OutboundCall>>,
    calls_in: HashMap<InboundRequestId, PeerId>,
    calls_in_per_peer: HashMap<PeerId, usize>,
    /// The remote IP of each open connection, so a call's answerer knows
    /// which address the caller really speaks from.
    connection_ips: HashMap<libp2p::swarm::ConnectionId, (PeerId, std::net::IpAddr)>,
    /// The IPs dialed connections reached (for those dialed by name).
    dialed_ips: crate::transport::DialedIps,
    max_inbound_per_peer: usize,
    penalties: Penalties,
    bootstrap: Bootstrap,
    /// How much of each Kademlia bootstrap runs.
    bootstraps: Bootstraps,
    /// Whether the join's self lookup has started.
    joined: bool,
    /// Which unused peers to disconnect when too many are connected.
    connection_policy: ConnectionPolicy,
    /// Per-protocol counters; here for when peers last had a Kademlia stream.
    traffic: Traffic,
    /// The node's peers in use, never disconnected as unused.
    keep: Option<KeepPeers>,
    next_trim: Instant,
    /// When the last provider announcement ended (see [`ANNOUNCE_GRACE`]).
    announced_at: Option<Instant>,
    /// The listen addresses the node was configured with (`addresses::gives_out`).
    listen_configured: Vec<Multiaddr>,
    /// The relays this node reserves slots on when private.
    relays: crate::relays::RelayChoice,
    /// The listener of each relay slot asked for.
    relay_listeners: HashMap<ListenerId, PeerId>,
    /// Connections this node dialed directly, with their peer and address.
    dialed: HashMap<libp2p::swarm::ConnectionId, (PeerId, Multiaddr)>,
    /// The verdict and mapped IP, for the handle to read.
    nat_view: std::sync::Arc<crate::reachability::NatView>,
    /// What the own store answers quick lookups, for the handle to read.
    store_answers: std::sync::Arc<crate::store_answers::StoreAnswers>,
}

/// Where peers' ROPE calls come in: by request-response (read by the swarm
/// task, handed to `calls`) and over links (the behaviour's connections).
pub(crate) struct RopeInbound {
    pub(crate) calls: mpsc::Sender<InboundCall>,
    pub(crate) links: crate::rope_link::behaviour::LinkBehaviour,
    /// Calls in flight over links, either way.
    pub(crate) link_calls: crate::rope_link::CallsInFlight,
}

impl EventLoop {
    pub(crate) fn new(
        config: &SwarmConfig,
        registry: &mut prometheus_client::registry::Registry,
        traffic: &Traffic,
        commands: mpsc::Receiver<Command>,
        command_sender: mpsc::Sender<Command>,
        events: mpsc::Sender<SwarmEvent>,
        RopeInbound { calls, links, link_calls }: RopeInbound,
    ) -> Result<Self, SwarmError> {
        let dialed_ips = crate::transport::DialedIps::default();
        let swarm = build_swarm(config, registry, traffic, &dialed_ips, links)?;
        let kad_refused = KadRefused::new(registry);
        let now = Instant::now();
        Ok(Self {
            swarm,
            metrics: libp2p::metrics::Metrics::new(registry),
            kad_refused,
            commands,
            command_sender: command_sender.downgrade(),
            events,
            calls,
            link_calls,
            dropped_events: 0,
            load_topic: gossipsub::IdentTopic::new(LOAD_TOPIC),
            costs: std::sync::Arc::new(crate::peer_costs::CostsView::new(
                config.gossip.load_report_ttl,
                config.gossip.max_load_reports,
            )),
            reachability: crate::reachability::ReachabilityState::default(),
            provided: crate::reannounce::ProvidedKeys::default(),
            in_swarm_since: None,
            own_store_after: config.kad.own_store_after,
            store_answers: std::sync::Arc::default(),
            finds: HashMap::new(),
            provides: HashMap::new(),
            calls_out: HashMap::new(),
            resolving: HashMap::new(),
            calls_in: HashMap::new(),
            calls_in_per_peer: HashMap::new(),
            connection_ips: HashMap::new(),
            dialed_ips,
            max_inbound_per_peer: config.rope.max_inbound_per_peer,
            penalties: Penalties::new(config.ban_duration),
            bootstrap: Bootstrap::new(
                config.bootstrap.clone(),
                config.bootstrap_retry,
                config.bootstrap_retry_max,
                now,
            ),
            bootstraps: Bootstraps::new(RefreshPolicy::new(
                SELF_LOOKUP_GAP,
                config.kad.periodic_bootstrap,
                JOIN_RELOOK,
                now,
            )),
            joined: false,
            connection_policy: ConnectionPolicy::new(PeerBounds {
                max_peers: config.connections.max_peers as usize,
                target_peers: config.connections.target_peers as usize,
                idle_after: config.connections.idle_peer_after,
                crowd_peers: config.connections.crowd_peers as usize,
                crowd_idle_after: config.connections.crowd_idle_after,
            }),
            traffic: traffic.clone(),
            keep: None,
            next_trim: now + TRIM_INTERVAL,
            announced_at: None,
            listen_configured: Vec::new(),
            relays: crate::relays::RelayChoice::new(config.relay.reservations),
            relay_listeners: HashMap::new(),
            dialed: HashMap::new(),
            nat_view: std::sync::Arc::default(),
        })
    }

    /// Keeps `nat_view` up to date with what AutoNAT finds.
    pub(crate) fn reporting_nat_to(mut self, nat_view: std::sync::Arc<crate::reachability::NatView>) -> Self {
        self.nat_view = nat_view;
        self
    }

    /// The peers' RTTs and loads this loop keeps, for the handles to read.
    pub(crate) fn costs_view(&self) -> std::sync::Arc<crate::peer_costs::CostsView> {
        std::sync::Arc::clone(&self.costs)
    }

    /// Keeps the own store's answers where `answers` is (read by the handle).
    pub(crate) fn sharing_store_answers(mut self, answers: std::sync::Arc<crate::store_answers::StoreAnswers>) -> Self {
        self.store_answers = answers;
        self
    }

    /// Listens on every address and waits until each listener has reported one.
    pub(crate) async fn listen(mut self, addrs: &[Multiaddr], timeout: Duration) -> Result<Self, SwarmError> {
        let mut pending: HashMap<ListenerId, Multiaddr> = HashMap::new();
        self.listen_configured = addrs.to_vec();
        for addr in addrs {
            let id = self
                .swarm
                .listen_on(addr.clone())
                .map_err(|e| SwarmError::Listen { addr: addr.clone(), reason: e.to_string() })?;
            pending.insert(id, addr.clone());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        while !pending.is_empty() {
            let Ok(event) = tokio::time::timeout_at(deadline, self.swarm.select_next_some()).await else {
                let addr = pending.into_values().next().unwrap_or_else(Multiaddr::empty);
                return Err(SwarmError::ListenTimeout(addr));
            };
            match event {
                swarm::SwarmEvent::NewListenAddr { listener_id, address } => {
                    info!(%address, "listening");
                    self.give_out(&address);
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

    pub(crate) async fn run(mut self) {
        let seeds: Vec<(PeerId, Multiaddr)> =
            self.bootstrap.peers().filter_map(|(peer, addr)| Some((peer?, addr.clone()))).collect();
        for (peer, addr) in seeds {
            self.swarm.behaviour_mut().kad.add_address(&peer, addr);
        }
        // The first tick comes at once (it dials the bootstrap peers): as if
        // the last one were a whole idle tick ago.
        let now = tokio::time::Instant::now();
        let mut last_tick = now.checked_sub(IDLE_TICK).unwrap_or(now);
        let tick = tokio::time::sleep_until(last_tick);
        tokio::pin!(tick);
        loop {
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown(reply)) => {
                        self.stop();
                        let _ = reply.send(());
                        return;
                    }
                    Some(command) => self.on_command(command),
                    None => break,
                },
                event = self.swarm.select_next_some() => {
                    self.on_swarm_event(event);
                    self.bootstraps.watch(&mut self.swarm.behaviour_mut().kad, Instant::now());
                }
                () = &mut tick => {
                    self.on_tick(Instant::now());
                    last_tick = tokio::time::Instant::now();
                }
            }
            // A lookup started (or a crowd arrived) while the loop slept
            // for an idle tick brings the next tick forward.
            let next = last_tick + self.tick_period();
            if next != tick.deadline() {
                tick.as_mut().reset(next);
            }
        }
        self.stop();
    }

    /// Answers everything still pending before the task ends.
    fn stop(&mut self) {
        for (_, mut find) in self.finds.drain() {
            find.answer();
        }
        self.provides.clear();
        self.calls_out.clear();
        debug!(dropped_events = self.dropped_events, "swarm task stopped");
    }

    /// [`TICK`] while something is pending, [`IDLE_TICK`] otherwise.
    fn tick_period(&self) -> Duration {
        let peers = self.swarm.network_info().num_peers();
        let pending =
            !self.finds.is_empty() || peers == 0 || self.connection_policy.crowded(peers) || self.provided.waiting();
        if pending { TICK } else { IDLE_TICK }
    }

    fn on_tick(&mut self, now: Instant) {
        let expired: Vec<QueryId> = self.finds.iter().filter(|(_, f)| f.deadline <= now).map(|(id, _)| *id).collect();
        for id in expired {
            if let Some(mut find) = self.finds.remove(&id) {
                find.answer();
            }
            if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                query.finish();
            }
        }
        let has_peers = self.swarm.connected_peers().next().is_some();
        if let Some(next_wait) = self.bootstrap.due(now, has_peers) {
            let attempts = self.bootstrap.attempts();
            if attempts > 1 {
                warn!(attempt = attempts, retry_in = ?next_wait, "no peer reachable yet; dialing the bootstrap peers again");
            }
            let addrs: Vec<Multiaddr> = self.bootstrap.peers().map(|(_, addr)| addr.clone()).collect();
            for addr in addrs {
                if let Err(error) = self.swarm.dial(addr.clone()) {
                    warn!(%addr, %error, "cannot dial bootstrap peer");
                }
            }
        }
        self.bootstraps.relook_if_due(&mut self.swarm.behaviour_mut().kad, now);
        self.announce_again_if_due(now);
        self.costs.expire_loads(now);
        // A crowd arrives faster than TRIM_INTERVAL: while crowded, every tick trims.
        if now >= self.next_trim || self.connection_policy.crowded(self.swarm.connected_peers().count()) {
            self.next_trim = now + TRIM_INTERVAL;
            self.disconnect_unused(now);
            self.dial_back_when_few(now);
        }
        for peer in self.penalties.expired_bans(now) {
            info!(%peer, "ban ended");
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
    }

    /// Whether a provider announcement is under way or ended within
    /// [`ANNOUNCE_GRACE`]: its messages may still be on their way.
    fn announcing(&self, now: Instant) -> bool {
        let in_flight = self
            .swarm
            .behaviour()
            .kad
            .iter_queries()
            .any(|query| matches!(query.info(), kad::QueryInfo::AddProvider { .. }));
        in_flight || self.announced_at.is_some_and(|at| now < at + ANNOUNCE_GRACE)
    }

    /// Disconnects unused peers when more than the maximum are connected,
    /// unless a provider announcement is on its way (the hard connection
    /// limits still hold meanwhile).
    fn disconnect_unused(&mut self, now: Instant) {
        if self.announcing(now) {
            return;
        }
        // A lookup or a link call this node serves or makes is use: cutting
        // it mid-request costs the asker a timeout (a crowded node trims
        // every tick).
        for (peer, at) in self.traffic.take_activity() {
            if self.swarm.is_connected(&peer) {
                self.connection_policy.used(peer, at);
            }
        }
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        let mesh: HashSet<PeerId> = self.swarm.behaviour().gossipsub.all_mesh_peers().copied().collect();
        let calling: HashSet<PeerId> = self.calls_out.values().map(|call| call.peer).collect();
        let keep = self.keep.clone();
        let kept = |peer: &PeerId| {
            calling.contains(peer)
                || self.calls_in_per_peer.get(peer).is_some_and(|n| *n > 0)
                || self.link_calls.contains(peer)
                || keep.as_ref().is_some_and(|keep| (keep.0)(peer))
        };
        let unused = self.connection_policy.to_disconnect(&connected, kept, |peer| mesh.contains(peer), now);
        if !unused.is_empty() {
            debug!(connected = connected.len(), closing = unused.len(), "disconnecting unused peers");
        }
        for peer in unused {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    /// Dials peers the routing table knows, up to the target, once fewer
    /// than half of it are connected: each side trims on its own, and a node
    /// can be let go by all its peers at once (see `connections`).
    fn dial_back_when_few(&mut self, now: Instant) {
        let connected = self.swarm.connected_peers().count();
        // A crowded node trims every tick: no table scan while it has peers enough.
        if !self.connection_policy.dials_back(connected) {
            return;
        }
        let known = routing::known_peers(&mut self.swarm.behaviour_mut().kad);
        let blocked = self.swarm.behaviour().blocked.blocked_peers();
        let unconnected: Vec<PeerId> = known
            .into_iter()
            .map(|key| key.into_preimage())
            .filter(|peer| !self.swarm.is_connected(peer) && !blocked.contains(peer))
            .collect();
        let dialing = self.connection_policy.peers_to_dial(connected, unconnected, now);
        if !dialing.is_empty() {
            debug!(connected, dialing = dialing.len(), "few peers left: dialing known peers up to the target");
        }
        for peer in dialing {
            let opts = DialOpts::peer_id(peer).condition(PeerCondition::DisconnectedAndNotDialing).build();
            if let Err(error) = self.swarm.dial(opts) {
                debug!(%peer, %error, "cannot dial known peer");
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::ListenAddrs(reply) => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::Reachability(reply) => {
                let _ = reply.send(self.reachability.status());
            }
            Command::ConnectedPeers(reply) => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::PeerIps(peer, reply) => {
                let mut connections: Vec<_> = self
                    .connection_ips
                    .iter()
                    .filter(|(_, (of, _))| *of == peer)
                    .map(|(id, (_, ip))| (*id, *ip))
                    .collect();
                connections.sort_unstable_by_key(|(id, _)| *id);
                let _ = reply.send(connections.into_iter().map(|(_, ip)| ip).collect());
            }
            Command::Dial { addr, reply } => {
                let result = self
                    .swarm
                    .dial(addr.clone())
                    .map_err(|e: DialError| SwarmError::Dial { addr, reason: e.to_string() });
                let _ = reply.send(result);
            }
            Command::Provide { key, reply } => match self.swarm.behaviour_mut().kad.start_providing(key.clone()) {
                Ok(id) => {
                    self.provided.insert(key.clone());
                    self.provides.insert(id, reply);
                    self.refresh_store_answer(&key);
                }
                Err(error) => {
                    let _ = reply.send(Err(SwarmError::Provide(error.to_string())));
                }
            },
            Command::StopProviding { key, reply } => {
                self.swarm.behaviour_mut().kad.stop_providing(&key);
                self.provided.remove(&key);
                self.refresh_store_answer(&key);
                let _ = reply.send(());
            }
            Command::FindProviders { key, deadline, thorough, named, reply } => {
                self.start_find(key, deadline, thorough, named, reply);
            }
            Command::PublishLoad { report, reply } => {
                let result = report.encode().map_err(|e| SwarmError::Publish(e.to_string())).and_then(|bytes| {
                    let topic = self.load_topic.clone();
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .publish(topic, bytes)
                        .map(|_| ())
                        .map_err(|e| SwarmError::Publish(e.to_string()))
                });
                let _ = reply.send(result);
            }
            Command::KeepConnected(keep) => self.keep = Some(keep),
            Command::Call { peer, request, reply } => {
                self.connection_policy.used(peer, Instant::now());
                self.send_call(OutboundCall { peer, request, reply, resolved: false });
            }
            Command::Penalise { peer, action } => self.penalise(peer, action),
            Command::Respond { peer, channel, response } => {
                if self.swarm.behaviour_mut().rope.send_response(channel, response).is_err() {
                    debug!(%peer, "caller went away before the response");
                }
            }
            // Handled in `run`, which must leave the loop.
            Command::Shutdown(reply) => {
                let _ = reply.send(());
            }
        }
    }

    /// Confirms `address`, one this node listens on, as its own external
    /// address when [`addresses::gives_out`] says so: Kademlia puts those in
    /// the provider records this node announces.
    ///
    /// The swarm never offers AutoNAT an address it holds as external, so the
    /// address is handed to AutoNAT's client as a candidate here: a peer
    /// dialing it back is what tells a reachable node from one behind NAT
    /// (`reachability`).
    fn give_out(&mut self, address: &Multiaddr) {
        // A relayed address is confirmed by the relay client once the relay
        // accepts the reservation, and cannot be dialed back.
        if crate::relays::is_relayed(address) {
            return;
        }
        if crate::addresses::gives_out(address, &self.listen_configured) {
            self.swarm.add_external_address(address.clone());
            let candidate = FromSwarm::NewExternalAddrCandidate(NewExternalAddrCandidate { addr: address });
            self.swarm.behaviour_mut().autonat_client.on_swarm_event(candidate);
        }
    }

    /// Applies `update` to what AutoNAT found, and logs a changed verdict.
    fn update_reachability(&mut self, update: impl FnOnce(&mut crate::reachability::ReachabilityState)) {
        let before = self.reachability.status().reachability;
        update(&mut self.reachability);
        let own: Vec<std::net::IpAddr> = self.swarm.listeners().filter_map(crate::addresses::ip_of).collect();
        self.nat_view.update(&self.reachability, &own);
        let now = self.reachability.status();
        if now.reachability != before {
            info!(reachability = ?now.reachability, external = ?now.external_addresses, "reachability changed");
            self.on_reachability_changed(now.reachability);
        }
    }

    fn on_swarm_event(&mut self, event: swarm::SwarmEvent<BehaviourEvent>) {
        libp2p::metrics::Recorder::record(&self.metrics, &event);
        if let swarm::SwarmEvent::ConnectionClosed { connection_id, peer_id, num_established, .. } = &event {
            self.connection_ips.remove(connection_id);
            self.nat_connection_closed(*connection_id, *peer_id, *num_established);
        }
        match event {
            swarm::SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, num_established, .. } => {
                let dialed_ip = endpoint.is_dialer().then(|| self.dialed_ips.take(&peer_id)).flatten();
                // A relayed connection's address names the relay's IP, not the peer's.
                let remote = endpoint.get_remote_address();
                let remote_ip = (!crate::relays::is_relayed(remote)).then(|| crate::addresses::ip_of(remote)).flatten();
                if let Some(ip) = remote_ip.or(dialed_ip) {
                    self.connection_ips.insert(connection_id, (peer_id, ip));
                }
                self.nat_connection_established(connection_id, peer_id, &endpoint);
                self.on_dial_outcome(peer_id, true);
                // A new peer is judged from now on; another connection of a
                // peer already connected (an AutoNAT dial-back, a redial) is
                // not use.
                if num_established.get() == 1 {
                    self.connection_policy.used(peer_id, Instant::now());
                }
                self.bootstrap.connected();
                if let libp2p::core::ConnectedPoint::Listener { local_addr, send_back_addr } = &endpoint
                    && self.swarm.external_addresses().any(|external| external == local_addr)
                {
                    self.update_reachability(|r| r.dialed_in(local_addr.clone(), send_back_addr));
                }
                if !self.joined {
                    // Looked up at once rather than after Kademlia's half-second
                    // throttle; `bootstraps` keeps it to the self lookup and ends
                    // the repeats that follow.
                    self.joined = true;
                    if let Err(error) = self.swarm.behaviour_mut().kad.bootstrap() {
                        debug!(%error, "kademlia bootstrap not started yet");
                    }
                }
                if num_established.get() == 1 {
                    debug!(peer = %peer_id, "peer connected");
                    let addr = endpoint.get_remote_address().clone();
                    self.emit(SwarmEvent::PeerConnected { peer: peer_id, addr });
                }
            }
            swarm::SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                debug!(peer = %peer_id, "peer disconnected");
                self.costs.forget_rtt(&peer_id);
                self.store_answers.forget_naming(&peer_id);
                self.connection_policy.disconnected(&peer_id);
                self.emit(SwarmEvent::PeerDisconnected { peer: peer_id });
            }
            swarm::SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.give_out(&address);
                self.emit(SwarmEvent::ListenAddr(address));
            }
            swarm::SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.swarm.remove_external_address(&address);
            }
            swarm::SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                // An operator needs to see why a seed cannot be reached (a
                // name that does not resolve, a refused port) while the node
                // has no peer; bootstrap's backoff bounds how often.
                let is_seed = peer_id.is_some_and(|peer| self.bootstrap.peers().any(|(seed, _)| seed == Some(peer)));
                if is_seed && self.swarm.connected_peers().next().is_none() {
                    warn!(peer = ?peer_id, %error, "bootstrap peer unreachable");
                } else {
                    debug!(peer = ?peer_id, %error, "outgoing connection failed");
                }
                if let Some(peer) = peer_id
                    && !self.swarm.is_connected(&peer)
                {
                    self.on_dial_outcome(peer, false);
                }
            }
            swarm::SwarmEvent::ExternalAddrConfirmed { address } if crate::relays::is_relayed(&address) => {
                self.relayed_address_confirmed(&address);
                self.update_reachability(|r| r.confirmed(address));
            }
            swarm::SwarmEvent::ExternalAddrConfirmed { address } => {
                info!(%address, "external address confirmed");
                self.update_reachability(|r| r.confirmed(address));
            }
            swarm::SwarmEvent::ListenerClosed { listener_id, .. } => self.nat_listener_closed(listener_id),
            swarm::SwarmEvent::ExternalAddrExpired { address } => {
                info!(%address, "external address expired");
                self.update_reachability(|r| r.expired(&address));
            }
            swarm::SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        use libp2p::metrics::Recorder;
        match &event {
            BehaviourEvent::Ping(event) => self.metrics.record(event),
            BehaviourEvent::Identify(event) => self.metrics.record(event),
            BehaviourEvent::Kad(event) => self.metrics.record(event),
            BehaviourEvent::Gossipsub(event) => self.metrics.record(event),
            _ => {}
        }
        match event {
            BehaviourEvent::Ping(ping::Event { peer, result: Ok(rtt), .. }) => {
                self.costs.set_rtt(peer, rtt);
                self.emit(SwarmEvent::PingRtt { peer, rtt });
            }
            BehaviourEvent::Identify(identify::Event::Received { connection_id, peer_id, info }) => {
                self.nat_identified(connection_id, peer_id, &info);
                let speaks_kad = info.protocols.contains(&crate::behaviour::KAD_PROTOCOL);
                if speaks_kad {
                    for addr in info.listen_addrs {
                        self.add_routable(peer_id, addr);
                    }
                }
            }
            BehaviourEvent::Kad(event) => self.on_kad_event(event),
            BehaviourEvent::Gossipsub(gossipsub::Event::Message { propagation_source, message_id, message }) => {
                self.on_load_message(propagation_source, message_id, message);
            }
            BehaviourEvent::Rope(event) => self.on_rope_event(event),
            BehaviourEvent::RelayClient(event) => self.on_relay_client_event(event),
            BehaviourEvent::RelayServer(event) => self.on_relay_server_event(event),
            BehaviourEvent::Dcutr(event) => self.on_dcutr_event(event),
            BehaviourEvent::AutonatClient(event) => match &event.result {
                Ok(()) => info!(addr = %event.tested_addr, server = %event.server, "address dialed back: reachable"),
                Err(error) => {
                    info!(addr = %event.tested_addr, server = %event.server, %error, "address not dialed back");
                    self.update_reachability(|r| r.unreachable(event.tested_addr.clone()));
                }
            },
            _ => {}
        }
    }

    fn on_load_message(&mut self, source: PeerId, message_id: gossipsub::MessageId, message: gossipsub::Message) {
        use gossipsub::MessageAcceptance::{Accept, Ignore, Reject};
        let acceptance = match LoadReport::decode(&message.data) {
            Ok(report) if Some(report.node) == message.source => {
                self.costs.insert_load(report, Instant::now());
                Accept
            }
            Ok(report) => {
                debug!(%source, claimed = %report.node, "load report speaks for another node");
                Reject
            }
            Err(LoadReportError::UnsupportedVersion(version)) => {
                debug!(%source, version, "load report of a newer format ignored");
                Ignore
            }
            Err(error) => {
                debug!(%source, %error, "invalid load report");
                Reject
            }
        };
        if acceptance == Reject {
            self.penalise(source, PeerAction::InvalidGossip);
        }
        self.swarm.behaviour_mut().gossipsub.report_message_validation_result(&message_id, &source, acceptance);
    }

    fn penalise(&mut self, peer: PeerId, action: PeerAction) {
        if self.penalties.report(peer, action, Instant::now()) {
            warn!(%peer, ?action, "peer banned for repeated misbehaviour");
            self.swarm.behaviour_mut().blocked.block_peer(peer);
            self.emit(SwarmEvent::PeerBanned { peer });
        }
    }

    fn emit(&mut self, event: SwarmEvent) {
        if self.events.try_send(event).is_err() {
            self.dropped_events += 1;
        }
    }
}
