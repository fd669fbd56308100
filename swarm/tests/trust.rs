//! Trust, over real libp2p on 127.0.0.1: private swarms (only nodes with the
//! same pre-shared key connect, QUIC is refused with a key), connection limits
//! under a flood of fresh identities, and a Kademlia that stores well-formed
//! provider records only.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use libp2p::kad::{self, GetProvidersOk, GetRecordOk, QueryId, QueryResult, Quorum, Record, store::MemoryStore};
use libp2p::swarm::{SwarmEvent as Libp2pEvent, dummy};
use libp2p::{Swarm, noise, tcp, yamux};
use mafalda_swarm::{
    CallError, ConnectionSettings, KAD_PROTOCOL, Keypair, Multiaddr, PeerId, RecordKey, RopeSettings, StartedSwarm,
    SwarmConfig, SwarmError, SwarmHandle, SwarmKey, start, stream_key,
};

/// Bound on anything awaited here (two cores run every node of a test).
const DEADLINE: Duration = Duration::from_secs(20);

/// A running node that answers ROPE calls with their params and counts them.
struct Node {
    handle: SwarmHandle,
    /// A listen address ending in `/p2p/<peer id>`.
    addr: Multiaddr,
    calls_answered: Arc<AtomicUsize>,
}

impl Node {
    fn peer_id(&self) -> PeerId {
        self.handle.peer_id()
    }
}

fn config() -> SwarmConfig {
    let listen: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr");
    let mut rope = RopeSettings::default();
    rope.request_timeout = Duration::from_secs(3);
    SwarmConfig::new(Keypair::generate_ed25519(), vec![listen]).with_rope(rope)
}

async fn spawn(config: SwarmConfig) -> Node {
    let StartedSwarm { handle, calls: mut inbound, .. } = start(config).await.expect("start swarm");
    let calls_answered = Arc::new(AtomicUsize::new(0));
    let counter = calls_answered.clone();
    tokio::spawn(async move {
        while let Some(call) = inbound.recv().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let params = call.request.params.clone();
            let _ = call.respond(Ok(params)).await;
        }
    });
    let addr = handle.listen_addrs().await.expect("addrs").remove(0).with_p2p(handle.peer_id()).expect("p2p");
    Node { handle, addr, calls_answered }
}

/// Polls `check` every 50 ms until it holds or `DEADLINE` passes; returns whether it held.
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    tokio::time::timeout(DEADLINE, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .is_ok()
}

async fn connected(node: &Node, peer: PeerId) -> bool {
    node.handle.connected_peers().await.expect("peers").contains(&peer)
}

/// Sum of the samples of metric `name` whose labels contain `label` (all of them
/// when `label` is empty).
async fn metric(node: &Node, name: &str, label: &str) -> u64 {
    let mut text = String::new();
    node.handle.encode_metrics(&mut text).expect("metrics");
    text.lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn echo_params(text: &str) -> mafalda_rope::Value {
    mafalda_rope::Value::Text(text.into())
}

// --- private swarms ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_the_same_key_connect_find_each_other_and_call() {
    let key = SwarmKey::generate();
    let a = spawn(config().with_swarm_key(key)).await;
    let b = spawn(config().with_swarm_key(key).with_bootstrap(vec![a.addr.clone()])).await;
    assert!(eventually(|| connected(&a, b.peer_id())).await, "b joined a's private swarm");

    assert!(b.handle.provide(stream_key("b-stream")).await.expect("b provides") >= 1, "stored at a");
    assert!(a.handle.provide(stream_key("a-stream")).await.expect("a provides") >= 1, "stored at b");
    let found = a.handle.find_providers(stream_key("b-stream"), DEADLINE).await.expect("find");
    assert_eq!(found, vec![b.peer_id()], "a finds b's stream");
    let found = b.handle.find_providers(stream_key("a-stream"), DEADLINE).await.expect("find");
    assert_eq!(found, vec![a.peer_id()], "b finds a's stream");

    let reply = b.handle.call(a.peer_id(), "echo", None, echo_params("inside")).await;
    assert_eq!(reply, Ok(echo_params("inside")), "a answers b");
    let reply = a.handle.call(b.peer_id(), "echo", None, echo_params("back")).await;
    assert_eq!(reply, Ok(echo_params("back")), "b answers a");
    for node in [a, b] {
        node.handle.shutdown().await.expect("shutdown");
    }
}

/// `outsider` bootstraps from a member of a private swarm: neither side gets a
/// connection, and no call gets through either way.
async fn outsider_cannot_join(outsider: SwarmConfig) {
    let key = SwarmKey::generate();
    let member = spawn(config().with_swarm_key(key)).await;
    let outsider = spawn(outsider.with_bootstrap(vec![member.addr.clone()])).await;

    let call = outsider.handle.call(member.peer_id(), "echo", None, echo_params("let me in"));
    let error = tokio::time::timeout(DEADLINE, call).await.expect("the call ends").expect_err("refused");
    assert!(matches!(error, CallError::Unreachable { .. } | CallError::Timeout(_)), "{error:?}");
    member.handle.dial(outsider.addr.clone()).await.expect("the dial starts");
    let call = member.handle.call(outsider.peer_id(), "echo", None, echo_params("join us"));
    let error = tokio::time::timeout(DEADLINE, call).await.expect("the call ends").expect_err("refused");
    assert!(matches!(error, CallError::Unreachable { .. } | CallError::Timeout(_)), "{error:?}");

    assert_eq!(member.calls_answered.load(Ordering::SeqCst), 0, "no call reached the member");
    assert_eq!(outsider.calls_answered.load(Ordering::SeqCst), 0, "no call reached the outsider");
    assert!(member.handle.connected_peers().await.expect("peers").is_empty(), "the member has no connection");
    assert!(outsider.handle.connected_peers().await.expect("peers").is_empty(), "the outsider has no connection");
    // The outsider's connection attempts did reach the member and failed in the handshake.
    let failed = metric(&member, "libp2p_swarm_connections_incoming_error_total", "").await;
    println!("incoming handshakes the member refused: {failed}");
    assert!(failed >= 1, "the outsider's attempts reached the member");
    for node in [member, outsider] {
        node.handle.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_key_cannot_connect_or_call() {
    outsider_cannot_join(config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_key_cannot_join() {
    outsider_cannot_join(config().with_swarm_key(SwarmKey::generate())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_is_refused_in_a_private_swarm_and_allowed_without_a_key() {
    let key = SwarmKey::generate();
    let quic: Multiaddr = "/ip4/127.0.0.1/udp/0/quic-v1".parse().expect("multiaddr");
    let tcp: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr");

    let listen_quic = SwarmConfig::new(Keypair::generate_ed25519(), vec![tcp.clone(), quic.clone()]);
    let error = start(listen_quic.clone().with_swarm_key(key)).await.expect_err("QUIC listen refused");
    assert!(matches!(&error, SwarmError::QuicInPrivateSwarm { addr } if *addr == quic), "{error}");
    assert!(error.to_string().contains("pnet"), "the message says why: {error}");

    let seed = PeerId::random();
    let quic_seed: Multiaddr = format!("/ip4/127.0.0.1/udp/4001/quic-v1/p2p/{seed}").parse().expect("multiaddr");
    let bootstrap_quic = SwarmConfig::new(Keypair::generate_ed25519(), vec![tcp.clone()])
        .with_bootstrap(vec![quic_seed.clone()])
        .with_swarm_key(key);
    let error = start(bootstrap_quic).await.expect_err("QUIC bootstrap refused");
    assert!(matches!(&error, SwarmError::QuicInPrivateSwarm { addr } if *addr == quic_seed), "{error}");

    // Without a key, the same addresses are fine: TCP and QUIC as before.
    let open = start(listen_quic).await.expect("QUIC without a key");
    let addrs = open.handle.listen_addrs().await.expect("addrs");
    assert!(addrs.iter().any(|a| a.to_string().contains("/quic-v1")), "{addrs:?}");
    open.handle.shutdown().await.expect("shutdown");
}

// --- connection limits ------------------------------------------------------

/// What a flood client saw of its one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Established,
    Refused,
}

/// A bare libp2p peer with a fresh identity and no protocols, dialing `addr` and
/// reporting what becomes of the connection.
fn flood_client(addr: Multiaddr, index: usize, report: tokio::sync::mpsc::UnboundedSender<(usize, Seen)>) {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .expect("tcp")
        .with_behaviour(|_| dummy::Behaviour)
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    tokio::spawn(async move {
        if swarm.dial(addr).is_err() {
            let _ = report.send((index, Seen::Refused));
            return;
        }
        loop {
            let seen = match swarm.select_next_some().await {
                Libp2pEvent::ConnectionEstablished { .. } => Seen::Established,
                Libp2pEvent::ConnectionClosed { .. } | Libp2pEvent::OutgoingConnectionError { .. } => Seen::Refused,
                _ => continue,
            };
            if report.send((index, seen)).is_err() {
                return; // the test is over
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_fresh_identities_is_refused_and_honest_peers_are_still_served() {
    const INCOMING: u32 = 8;
    const FLOOD: usize = 40;
    let mut limits = ConnectionSettings::default();
    limits.max_established_incoming = INCOMING;
    limits.max_pending_incoming = INCOMING;
    limits.max_established = 4 * INCOMING;
    let node = spawn(config().with_connections(limits)).await;
    // An honest peer joined before the flood: it holds one of the incoming slots.
    let honest = spawn(config().with_bootstrap(vec![node.addr.clone()])).await;
    assert!(eventually(|| connected(&node, honest.peer_id())).await, "the honest peer joined");

    let (report, mut seen) = tokio::sync::mpsc::unbounded_channel();
    for index in 0..FLOOD {
        flood_client(node.addr.clone(), index, report.clone());
    }
    // The node's own account: every attempt is either among its peers or denied.
    let denied = || metric(&node, "libp2p_swarm_connections_incoming_error_total", "error=\"Denied\"");
    let flood_peers = || async { node.handle.connected_peers().await.expect("peers").len() - 1 };
    let settled = eventually(|| async { flood_peers().await + denied().await as usize >= FLOOD }).await;
    let (accepted, refused) = (flood_peers().await, denied().await as usize);
    println!(
        "flood of {FLOOD} fresh identities, incoming limit {INCOMING} (1 held by an honest peer): \
         {accepted} accepted, {refused} refused by the node"
    );
    assert!(settled, "every flood attempt was accepted or refused: {accepted} + {refused} < {FLOOD}");
    assert!(accepted < INCOMING as usize, "established incoming stays within the limit: {accepted} flood peers");
    assert_eq!(accepted + refused, FLOOD, "each attempt counted once");
    // The honest peer holds one slot: at most INCOMING - 1 flood peers fit.
    assert!(refused > FLOOD - INCOMING as usize, "attempts beyond the limit are refused: {refused}");

    // The flood clients agree: the refused ones lost their connection.
    let mut last: Vec<Option<Seen>> = vec![None; FLOOD];
    let clients_agree = tokio::time::timeout(DEADLINE, async {
        while let Some((index, what)) = seen.recv().await {
            last[index] = Some(what);
            let dropped = last.iter().filter(|s| **s == Some(Seen::Refused)).count();
            let up = last.iter().filter(|s| **s == Some(Seen::Established)).count();
            if dropped == refused && up == accepted {
                return (up, dropped);
            }
        }
        (0, 0)
    })
    .await;
    println!("flood clients: {clients_agree:?} (still connected, refused)");
    assert_eq!(clients_agree, Ok((accepted, refused)), "clients saw the same split");

    // The honest peer is still served, both ways.
    let reply = honest.handle.call(node.peer_id(), "echo", None, echo_params("still there?")).await;
    assert_eq!(reply, Ok(echo_params("still there?")), "the node answers the honest peer under the flood");
    let reply = node.handle.call(honest.peer_id(), "echo", None, echo_params("yes")).await;
    assert_eq!(reply, Ok(echo_params("yes")));
    // The flood cannot crowd out the node's own connections: it still reaches a new peer.
    let newcomer = spawn(config()).await;
    node.handle.dial(newcomer.addr.clone()).await.expect("dial");
    assert!(eventually(|| connected(&node, newcomer.peer_id())).await, "outgoing connection under the flood");
    let reply = node.handle.call(newcomer.peer_id(), "echo", None, echo_params("hello")).await;
    assert_eq!(reply, Ok(echo_params("hello")), "outgoing call under the flood");
    for peer in [node, honest, newcomer] {
        peer.handle.shutdown().await.expect("shutdown");
    }
}

// --- Kademlia: provider records only ----------------------------------------

/// A bare Kademlia peer speaking the swarm's Kademlia protocol, knowing only `node`.
fn raw_kad(node: &Node) -> Swarm<kad::Behaviour<MemoryStore>> {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .expect("tcp")
        .with_behaviour(|key| {
            let peer = key.public().to_peer_id();
            let mut config = kad::Config::new(KAD_PROTOCOL);
            config.set_query_timeout(Duration::from_secs(10));
            kad::Behaviour::with_config(peer, MemoryStore::new(peer), config)
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let mut addr = node.addr.clone();
    addr.pop();
    swarm.behaviour_mut().add_address(&node.peer_id(), addr);
    swarm
}

/// Drives `swarm` until query `id` has finished; returns every result it gave.
async fn query(swarm: &mut Swarm<kad::Behaviour<MemoryStore>>, id: QueryId) -> Vec<QueryResult> {
    let mut results = Vec::new();
    let done = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Libp2pEvent::Behaviour(kad::Event::OutboundQueryProgressed { id: got, result, step, .. }) =
                swarm.select_next_some().await
                && got == id
            {
                results.push(result);
                if step.last {
                    return;
                }
            }
        }
    })
    .await;
    assert!(done.is_ok(), "query finished in time: {results:?}");
    results
}

/// The providers of `key` that a fresh peer, asking only the node, finds.
async fn providers_at(node: &Node, key: RecordKey) -> HashSet<PeerId> {
    let mut checker = raw_kad(node);
    let id = checker.behaviour_mut().get_providers(key);
    query(&mut checker, id)
        .await
        .into_iter()
        .filter_map(|r| match r {
            QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders { providers, .. })) => Some(providers),
            _ => None,
        })
        .flatten()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_value_records_and_providers_of_malformed_keys_are_not_stored() {
    let node = spawn(config()).await;
    let mut rogue = raw_kad(&node);
    let rogue_id = *rogue.local_peer_id();
    // Kademlia hands out only providers with an address; the rogue announces one
    // (nobody dials it here).
    rogue.add_external_address("/ip4/127.0.0.1/tcp/9".parse().expect("multiaddr"));

    let value_key = stream_key("rogue-value");
    let record = Record::new(value_key.clone(), b"whatever the rogue wants".to_vec());
    let id = rogue.behaviour_mut().put_record(record, Quorum::One).expect("put locally");
    let put = query(&mut rogue, id).await;
    assert!(
        matches!(put.last(), Some(QueryResult::PutRecord(Ok(_)))),
        "the node received the record and acknowledged it (as Kademlia always does): {put:?}"
    );
    let malformed = RecordKey::new(&"/not/a/stream/key");
    let id = rogue.behaviour_mut().start_providing(malformed.clone()).expect("provide locally");
    query(&mut rogue, id).await;
    // A control: a well-formed provider record from the same peer is stored.
    let good = stream_key("rogue-stream");
    let id = rogue.behaviour_mut().start_providing(good.clone()).expect("provide locally");
    query(&mut rogue, id).await;

    // Adding a provider is fire-and-forget: keep the rogue running until its
    // messages have gone out.
    let rogue = tokio::spawn(async move {
        loop {
            rogue.select_next_some().await;
        }
    });

    let refused = || async {
        (
            metric(&node, "mafalda_swarm_kad_records_refused_total", "").await,
            metric(&node, "mafalda_swarm_kad_provider_records_refused_total", "").await,
        )
    };
    let stored = || async { providers_at(&node, good.clone()).await == HashSet::from([rogue_id]) };
    assert!(eventually(stored).await, "the well-formed provider record is stored");
    let counted = eventually(|| async { refused().await == (1, 1) }).await;
    assert!(counted, "one PUT_VALUE and one provider record refused: {:?}", refused().await);
    assert!(providers_at(&node, malformed).await.is_empty(), "the malformed key's record is not stored");

    let mut checker = raw_kad(&node);
    let id = checker.behaviour_mut().get_record(value_key);
    let got = query(&mut checker, id).await;
    let found = got.iter().any(|r| matches!(r, QueryResult::GetRecord(Ok(GetRecordOk::FoundRecord(_)))));
    assert!(!found, "the PUT_VALUE record is not served: {got:?}");
    assert!(matches!(got.last(), Some(QueryResult::GetRecord(Err(kad::GetRecordError::NotFound { .. })))), "{got:?}");
    rogue.abort();
    node.handle.shutdown().await.expect("shutdown");
}
