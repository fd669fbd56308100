//! Smoke test of the libp2p side: two real swarms over TCP or QUIC on
//! 127.0.0.1 (reached by address or by name) connect and measure each other's
//! round-trip time with ping.

use std::time::Duration;

use mafalda_swarm::{Keypair, Multiaddr, PeerId, Reachability, StartedSwarm, SwarmConfig, SwarmEvent, start};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(10);

fn config() -> SwarmConfig {
    config_on("/ip4/127.0.0.1/tcp/0")
}

fn config_on(listen: &str) -> SwarmConfig {
    let listen: Multiaddr = listen.parse().expect("multiaddr");
    SwarmConfig::new(Keypair::generate_ed25519(), vec![listen]).with_ping_interval(Duration::from_millis(200))
}

/// Waits for the first event `pick` accepts.
async fn wait_for<T>(events: &mut mpsc::Receiver<SwarmEvent>, mut pick: impl FnMut(SwarmEvent) -> Option<T>) -> T {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let event = events.recv().await.expect("swarm task still running");
            if let Some(found) = pick(event) {
                return found;
            }
        }
    })
    .await
    .expect("event within the deadline")
}

/// The first peer a joining node connects to (and over which address), then
/// the first peer it measures an RTT to.
async fn joined_then_pinged(events: &mut mpsc::Receiver<SwarmEvent>) -> (PeerId, Multiaddr, PeerId) {
    let (connected, addr) = wait_for(events, |event| match event {
        SwarmEvent::PeerConnected { peer, addr } => Some((peer, addr)),
        _ => None,
    })
    .await;
    let pinged = wait_for(events, |event| match event {
        SwarmEvent::PingRtt { peer, .. } => Some(peer),
        _ => None,
    })
    .await;
    (connected, addr, pinged)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_swarms_connect_and_ping() {
    let StartedSwarm { handle: a, events: mut a_events, .. } = start(config()).await.expect("start swarm a");
    let a_addr = a.listen_addrs().await.expect("a's addresses").remove(0).with_p2p(a.peer_id()).expect("p2p suffix");
    let StartedSwarm { handle: b, events: mut b_events, .. } =
        start(config().with_bootstrap(vec![a_addr])).await.expect("start swarm b");

    let connected = wait_for(&mut a_events, |event| match event {
        SwarmEvent::PeerConnected { peer, .. } => Some(peer),
        _ => None,
    })
    .await;
    assert_eq!(connected, b.peer_id(), "a sees b connect");

    let (peer, rtt) = wait_for(&mut b_events, |event| match event {
        SwarmEvent::PingRtt { peer, rtt } => Some((peer, rtt)),
        _ => None,
    })
    .await;
    assert_eq!(peer, a.peer_id(), "b pings a");
    assert!(rtt > Duration::ZERO && rtt < DEADLINE, "a plausible loopback rtt: {rtt:?}");
    assert_eq!(b.connected_peers().await.expect("b's peers"), vec![a.peer_id()]);

    b.shutdown().await.expect("stop b");
    let gone = wait_for(&mut a_events, |event| match event {
        SwarmEvent::PeerDisconnected { peer } => Some(peer),
        _ => None,
    })
    .await;
    assert_eq!(gone, b.peer_id(), "a sees b leave");
    a.shutdown().await.expect("stop a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_swarms_connect_over_quic_and_ping() {
    let quic = "/ip4/127.0.0.1/udp/0/quic-v1";
    let StartedSwarm { handle: a, .. } = start(config_on(quic)).await.expect("start swarm a");
    let a_addr = a.listen_addrs().await.expect("a's addresses").remove(0);
    assert!(a_addr.to_string().contains("/quic-v1"), "listening on QUIC: {a_addr}");
    let a_addr = a_addr.with_p2p(a.peer_id()).expect("p2p suffix");
    let StartedSwarm { handle: b, events: mut b_events, .. } =
        start(config_on(quic).with_bootstrap(vec![a_addr])).await.expect("start swarm b");
    let (peer, addr, pinged) = joined_then_pinged(&mut b_events).await;
    assert_eq!(peer, a.peer_id());
    assert!(addr.to_string().contains("/quic-v1"), "connected over QUIC: {addr}");
    assert_eq!(pinged, a.peer_id(), "b pings a over QUIC");
    b.shutdown().await.expect("stop b");
    a.shutdown().await.expect("stop a");
}

/// A bootstrap address may name its host (`/dns4/NAME/…`): the name is
/// resolved when dialed (`localhost`, from `/etc/hosts`), over TCP and QUIC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_through_a_bootstrap_address_that_names_its_host() {
    for listen in ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"] {
        let StartedSwarm { handle: a, .. } = start(config_on(listen)).await.expect("start swarm a");
        let a_addr = a.listen_addrs().await.expect("a's addresses").remove(0).with_p2p(a.peer_id()).expect("p2p");
        let named: Multiaddr =
            a_addr.to_string().replacen("/ip4/127.0.0.1/", "/dns4/localhost/", 1).parse().expect("multiaddr");
        assert!(named.to_string().starts_with("/dns4/localhost/"), "{named}");
        let StartedSwarm { handle: b, events: mut b_events, .. } =
            start(config_on(listen).with_bootstrap(vec![named.clone()])).await.expect("start swarm b");
        let (peer, _, pinged) = joined_then_pinged(&mut b_events).await;
        assert_eq!(peer, a.peer_id(), "b joined through {named}");
        assert_eq!(pinged, a.peer_id(), "b pings a after joining through {named}");
        b.shutdown().await.expect("stop b");
        a.shutdown().await.expect("stop a");
    }
}

/// AutoNAT: a node asks peers it dialed to dial its addresses back; one
/// that arrives makes it `public`, with that address as external. C ← A ← B:
/// A asks C, B asks A (C dialed nobody and is not asked about). Before any
/// test a node is `unknown`. (A node behind NAT is `private`: the NAT lab's
/// test in `simulations`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_dialed_back_by_their_peers_are_public() {
    let StartedSwarm { handle: c, .. } = start(config()).await.expect("start swarm c");
    assert_eq!(c.reachability().await.expect("c's reachability").reachability, Reachability::Unknown);
    let seed = |node: &mafalda_swarm::SwarmHandle| {
        let node = node.clone();
        async move {
            let addr = node.listen_addrs().await.expect("addresses").remove(0);
            (addr.clone(), addr.with_p2p(node.peer_id()).expect("p2p"))
        }
    };
    let (_, c_seed) = seed(&c).await;
    let StartedSwarm { handle: a, .. } = start(config().with_bootstrap(vec![c_seed])).await.expect("start swarm a");
    let (a_listen, a_seed) = seed(&a).await;
    let StartedSwarm { handle: b, .. } = start(config().with_bootstrap(vec![a_seed])).await.expect("start swarm b");
    let (b_listen, _) = seed(&b).await;
    for (node, listen) in [(&a, &a_listen), (&b, &b_listen)] {
        let public = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let status = node.reachability().await.expect("reachability");
                if status.reachability == Reachability::Public {
                    return status;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await
        .expect("public within 30 s (AutoNAT tests every 5 s)");
        assert_eq!(public.external_addresses, std::slice::from_ref(listen), "the listen address, dialed back");
        assert!(public.unreachable_addresses.is_empty(), "{public:?}");
    }
    for node in [b, a, c] {
        node.shutdown().await.expect("stop");
    }
}

/// A node started while its bootstrap peer is down keeps retrying (with backoff)
/// and joins once the peer comes up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_retries_until_the_bootstrap_peer_comes_up() {
    // A port free now, where the seed will listen later.
    let at = mafalda_tests::ports::unshared_tcp_addr();
    let (ip, port) = (at.ip(), at.port());
    let seed_key = Keypair::generate_ed25519();
    let seed_id = seed_key.public().to_peer_id();
    let seed_addr: Multiaddr = format!("/ip4/{ip}/tcp/{port}/p2p/{seed_id}").parse().expect("addr");

    let StartedSwarm { handle: joiner, events: mut joiner_events, .. } =
        start(config().with_bootstrap(vec![seed_addr])).await.expect("start the joiner alone");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(joiner.connected_peers().await.expect("peers").is_empty(), "nobody to join yet");

    let seed_listen: Multiaddr = format!("/ip4/{ip}/tcp/{port}").parse().expect("addr");
    let StartedSwarm { handle: seed, .. } =
        start(SwarmConfig::new(seed_key, vec![seed_listen])).await.expect("the seed comes up");
    let joined = wait_for(&mut joiner_events, |event| match event {
        SwarmEvent::PeerConnected { peer, .. } => Some(peer),
        _ => None,
    })
    .await;
    assert_eq!(joined, seed_id, "the joiner connected to the seed on a retry");
    joiner.shutdown().await.expect("stop");
    seed.shutdown().await.expect("stop");
}

/// Every stream is counted under its protocol, over TCP and over QUIC: a ROPE
/// call's payload shows as ROPE bytes out at the caller and in at the callee,
/// joining shows identify and Kademlia streams, and `/metrics` carries them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_and_streams_are_counted_per_protocol() {
    use mafalda_swarm::ProtocolLabel;
    use mafalda_tests::swarm::spawn_node;

    for listen in ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"] {
        let a = spawn_node(config_on(listen)).await;
        let b = spawn_node(config_on(listen).with_bootstrap(vec![a.addr.clone()])).await;
        let payload = mafalda_rope::Value::Bytes(vec![7; 20_000]);
        let reply = b.handle.call(a.peer_id(), "echo", None, payload.clone()).await;
        assert_eq!(reply, Ok(payload), "{listen}: a echoes");

        let of = |node: &mafalda_tests::swarm::TestNode, label: ProtocolLabel| node.traffic_of(label);
        let (rope_b, rope_a) = (of(&b, ProtocolLabel::Rope), of(&a, ProtocolLabel::Rope));
        assert!(rope_b.bytes_out >= 20_000 && rope_b.bytes_in >= 20_000, "{listen}: b's ROPE {rope_b:?}");
        assert!(rope_a.bytes_in >= 20_000 && rope_a.bytes_out >= 20_000, "{listen}: a's ROPE {rope_a:?}");
        assert!(rope_b.streams_out >= 1 && rope_a.streams_in >= 1, "{listen}: the call's stream counted");
        // A call to a peer once connected opens the link the calls after it
        // share: then a call opens no stream, and both ends counted the same.
        let small = mafalda_rope::Value::Integer(7.into());
        let took_the_link = mafalda_tests::swarm::eventually(DEADLINE, || async {
            let before = of(&b, ProtocolLabel::Rope).streams_out;
            let reply = b.handle.call(a.peer_id(), "echo", None, small.clone()).await;
            reply == Ok(small.clone()) && of(&b, ProtocolLabel::Rope).streams_out == before
        })
        .await;
        assert!(took_the_link, "{listen}: later calls share a link: {:?}", of(&b, ProtocolLabel::Rope));
        let (rope_b, rope_a) = (of(&b, ProtocolLabel::Rope), of(&a, ProtocolLabel::Rope));
        assert_eq!(rope_b.streams_out, rope_a.streams_in, "{listen}: each stream counted at both ends");
        // Joining's streams run beside the call: the call may answer first.
        let joined = mafalda_tests::swarm::eventually(DEADLINE, || async {
            of(&a, ProtocolLabel::Identify).streams_in >= 1 && of(&b, ProtocolLabel::Kad).streams_out >= 1
        })
        .await;
        let (identify, kad) = (of(&a, ProtocolLabel::Identify), of(&b, ProtocolLabel::Kad));
        assert!(joined, "{listen}: b identified itself to a ({identify:?}) and looked itself up through a ({kad:?})");
        let ok =
            mafalda_tests::swarm::eventually(DEADLINE, || async { of(&b, ProtocolLabel::Ping).bytes_out > 0 }).await;
        assert!(ok, "{listen}: b pings a");
        let other = of(&a, ProtocolLabel::Other);
        assert_eq!(other.streams_in + other.streams_out, 0, "{listen}: every stream recognised: {other:?}");

        let mut text = String::new();
        a.handle.encode_metrics(&mut text).expect("metrics");
        assert!(
            text.lines().any(|l| l.starts_with("mafalda_p2p_bytes_total{protocol=\"rope\",direction=\"in\"}")),
            "{listen}: ROPE bytes in /metrics"
        );
        b.handle.shutdown().await.expect("stop b");
        a.handle.shutdown().await.expect("stop a");
    }
}
