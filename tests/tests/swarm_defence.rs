//! ROPE calls between nodes, and how a node defends itself: typed failures for
//! vanished peers, oversized requests refused without harm, a real libp2p
//! peer gossiping garbage gets banned, and relay slots and circuits that
//! rogue peers ask for are capped and freed.

use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::{gossipsub, noise, tcp, yamux};
use mafalda_swarm::{CallError, LOAD_TOPIC, RopeSettings, SwarmEvent};
use mafalda_tests::swarm::{connected_within, eventually, loopback_config, spawn_node, spawn_swarm, wait_for_event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rope_call_between_peers_that_never_bootstrapped_from_each_other() {
    let timeout = Duration::from_secs(2);
    let config = || {
        let mut rope = RopeSettings::default();
        rope.request_timeout = timeout;
        loopback_config().with_rope(rope)
    };
    // seed ← a, seed ← b: a learns of b only through Kademlia, as a node learns of
    // a stream's provider before asking it to pipe the stream.
    let nodes = spawn_swarm(3, 1, config).await;
    let (a, b) = (&nodes[1], &nodes[2]);
    let key = mafalda_swarm::stream_key("b-stream");
    b.handle.provide(key.clone()).await.expect("b provides");
    let found = a.handle.find_providers(key, Duration::from_secs(5)).await.expect("find");
    assert_eq!(found, vec![b.peer_id()], "a finds b");

    let params = ciborium::Value::Text("hello over ROPE".into());
    let reply = a.handle.call(b.peer_id(), "echo", None, params.clone()).await;
    assert_eq!(reply, Ok(params.clone()), "b answers a's call");

    // b vanishes: the next call fails with a typed error within the timeout.
    b.handle.shutdown().await.expect("b stops");
    let started = Instant::now();
    let result = tokio::time::timeout(timeout * 3, a.handle.call(b.peer_id(), "echo", None, params)).await;
    let error = result.expect("the call ends on its own").expect_err("b is gone");
    assert!(matches!(error, CallError::Unreachable { .. } | CallError::Timeout(_)), "typed failure: {error:?}");
    assert!(started.elapsed() <= timeout + Duration::from_millis(500), "within the timeout: {:?}", started.elapsed());
    for node in [&nodes[0], a] {
        node.handle.shutdown().await.expect("shutdown");
    }
}

/// A call needs only the peer id: the address comes from the routing table or,
/// failing that, from a DHT lookup; an id nobody knows fails as unreachable
/// (after that lookup).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rope_call_needs_only_the_peer_id() {
    let nodes = spawn_swarm(6, 1, loopback_config).await;
    let (seed, a, b) = (&nodes[0], &nodes[1], &nodes[5]);
    // The seed must know b (b has joined) for anyone to find b through it.
    assert!(connected_within(&seed.handle, b.peer_id(), Duration::from_secs(10)).await, "b joined through the seed");
    let params = ciborium::Value::Integer(42.into());
    let reply = a.handle.call(b.peer_id(), "echo", None, params.clone()).await;
    assert_eq!(reply, Ok(params.clone()), "b reached by id and answered");

    let stranger = mafalda_swarm::PeerId::random();
    let error = a.handle.call(stranger, "echo", None, params).await.expect_err("nobody knows it");
    assert!(matches!(error, CallError::Unreachable { peer, .. } if peer == stranger), "{error:?}");
    for node in &nodes {
        node.handle.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_are_refused_and_a_repeat_offender_is_banned() {
    let small = {
        let mut rope = RopeSettings::default();
        rope.max_message_bytes = 1024;
        loopback_config().with_rope(rope)
    };
    let mut server = spawn_node(small).await;
    let offender = spawn_node(loopback_config().with_bootstrap(vec![server.addr.clone()])).await;
    let honest = spawn_node(loopback_config().with_bootstrap(vec![server.addr.clone()])).await;
    let big = ciborium::Value::Bytes(vec![7; 4096]);
    let small_params = ciborium::Value::Integer(7.into());

    // One oversized call is answered with a clear error; the server goes on serving.
    let reply = offender.handle.call(server.peer_id(), "echo", None, big.clone()).await;
    match reply {
        Err(CallError::Remote(error)) => {
            assert_eq!(error.code, -32002, "message too large");
            assert!(error.message.contains("limit"), "the error names the size limit: {}", error.message);
        }
        other => panic!("expected a message-too-large error, got {other:?}"),
    }
    let served = eventually(Duration::from_secs(5), || async {
        honest.handle.call(server.peer_id(), "echo", None, small_params.clone()).await.is_ok()
    })
    .await;
    assert!(served, "the server still answers an honest peer");

    // Repeated oversized calls get the offender banned and disconnected.
    for _ in 0..6 {
        let _ = offender.handle.call(server.peer_id(), "echo", None, big.clone()).await;
    }
    let banned = wait_for_event(&mut server.events, Duration::from_secs(5), |event| match event {
        SwarmEvent::PeerBanned { peer } => Some(peer),
        _ => None,
    })
    .await;
    assert_eq!(banned, Some(offender.peer_id()), "the offender is banned");
    let error = offender.handle.call(server.peer_id(), "echo", None, small_params.clone()).await;
    assert!(error.is_err(), "a banned peer's calls are refused: {error:?}");
    assert!(honest.handle.call(server.peer_id(), "echo", None, small_params).await.is_ok(), "others unaffected");
    for node in [&server, &offender, &honest] {
        node.handle.shutdown().await.expect("shutdown");
    }
}

/// A real libp2p peer speaking gossipsub on the load topic, publishing garbage.
async fn rogue_gossiper(target: libp2p::Multiaddr) -> tokio::task::JoinHandle<()> {
    let mut swarm: libp2p::Swarm<gossipsub::Behaviour> = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .expect("tcp")
        .with_behaviour(|key| {
            let config = gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Permissive)
                .build()
                .expect("gossipsub config");
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), config).expect("gossipsub")
        })
        .expect("behaviour")
        .build();
    let topic = gossipsub::IdentTopic::new(LOAD_TOPIC);
    swarm.behaviour_mut().subscribe(&topic).expect("subscribe");
    swarm.dial(target).expect("dial");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut n = 0u32;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    n += 1;
                    let garbage = format!("\u{ff}not a load report {n}").into_bytes();
                    let _ = swarm.behaviour_mut().publish(topic.clone(), garbage);
                }
                _event = swarm.select_next_some() => {}
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_gossiping_garbage_is_banned_and_the_node_keeps_working() {
    let mut node = spawn_node(loopback_config()).await;
    let friend = spawn_node(loopback_config().with_bootstrap(vec![node.addr.clone()])).await;
    let rogue = rogue_gossiper(node.addr.clone()).await;

    let banned = wait_for_event(&mut node.events, Duration::from_secs(15), |event| match event {
        SwarmEvent::PeerBanned { peer } => Some(peer),
        _ => None,
    })
    .await;
    let banned = banned.expect("the rogue is banned");
    assert_ne!(banned, friend.peer_id(), "the honest peer is not the one banned");
    let rogue_gone = eventually(Duration::from_secs(5), || async {
        !node.handle.connected_peers().await.expect("peers").contains(&banned)
    })
    .await;
    assert!(rogue_gone, "the banned rogue is disconnected");
    let params = ciborium::Value::Bool(true);
    let reply = friend.handle.call(node.peer_id(), "echo", None, params.clone()).await;
    assert_eq!(reply, Ok(params), "the node still serves honest peers");
    rogue.abort();
    for n in [&node, &friend] {
        n.handle.shutdown().await.expect("shutdown");
    }
}

/// A real libp2p peer, a fresh identity each time, asking `relay` (its
/// address ends in `/p2p/<id>`) for a circuit relay slot: its swarm while it
/// holds the slot, `None` when the relay refused.
async fn rogue_reservation(relay: &libp2p::Multiaddr) -> Option<libp2p::Swarm<libp2p::relay::client::Behaviour>> {
    use libp2p::swarm::SwarmEvent as Event;
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .expect("tcp")
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .expect("relay client")
        .with_behaviour(|_, client| client)
        .expect("behaviour")
        .build();
    swarm.listen_on(relay.clone().with(libp2p::multiaddr::Protocol::P2pCircuit)).expect("listen through the relay");
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match swarm.select_next_some().await {
                Event::Behaviour(libp2p::relay::client::Event::ReservationReqAccepted { .. }) => return true,
                Event::ListenerClosed { .. } | Event::ListenerError { .. } => return false,
                _ => {}
            }
        }
    })
    .await
    .expect("the relay answers a reservation within 10 s");
    if !outcome {
        return None;
    }
    // Keep the connection (and the slot) alive while the caller holds it.
    Some(swarm)
}

/// Keeps `swarm` polled in the background (a slot holder that stays); the
/// slot goes when the task is aborted and the swarm dropped.
fn keep_polling(mut swarm: libp2p::Swarm<libp2p::relay::client::Behaviour>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let _ = swarm.select_next_some().await;
        }
    })
}

/// Relay slots are a resource other peers create at a node: capped in all
/// (`RelaySettings::max_reservations`), refused beyond the cap while the
/// node keeps working, and freed once their holders leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_slots_are_capped_and_freed_when_their_holders_leave() {
    let mut relay = mafalda_swarm::RelaySettings::default();
    relay.max_reservations = 3;
    let node = spawn_node(loopback_config().with_relay(relay)).await;
    let mut holders = Vec::new();
    let mut refused = 0;
    for _ in 0..6 {
        match rogue_reservation(&node.addr).await {
            Some(swarm) => holders.push(keep_polling(swarm)),
            None => refused += 1,
        }
    }
    assert_eq!((holders.len(), refused), (3, 3), "3 slots granted, the rest refused");
    let honest = spawn_node(loopback_config().with_bootstrap(vec![node.addr.clone()])).await;
    let params = ciborium::Value::Text("still here".into());
    assert_eq!(honest.handle.call(node.peer_id(), "echo", None, params.clone()).await, Ok(params), "the node works");

    assert!(rogue_reservation(&node.addr).await.is_none(), "still full while the holders stay");
    for holder in holders {
        holder.abort();
    }
    // The holders' connections close; their slots are free for others.
    let mut freed = None;
    let started = Instant::now();
    while freed.is_none() && started.elapsed() < Duration::from_secs(20) {
        freed = rogue_reservation(&node.addr).await;
        if freed.is_none() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    assert!(freed.is_some(), "a slot is granted again once the holders left");
    println!("a slot was free again {:?} after the holders left", started.elapsed());
    for node in [&node, &honest] {
        node.handle.shutdown().await.expect("shutdown");
    }
}

/// Relayed connections are capped per peer (`max_circuits_per_peer`): a
/// peer dialing another through the node again and again gets that many
/// circuits; the rest are refused, and the node keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_connections_are_capped_per_peer() {
    use libp2p::swarm::SwarmEvent as Event;
    use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
    let mut relay = mafalda_swarm::RelaySettings::default();
    relay.max_circuits_per_peer = 2;
    let node = spawn_node(loopback_config().with_relay(relay)).await;
    let target = rogue_reservation(&node.addr).await.expect("a slot for the target");
    let target_id = *target.local_peer_id();
    let _target = keep_polling(target);
    let mut source = rogue_reservation(&node.addr).await.expect("a relay client for the source");
    let through = node.addr.clone().with(libp2p::multiaddr::Protocol::P2pCircuit);
    const TRIES: usize = 6;
    for _ in 0..TRIES {
        let opts =
            DialOpts::peer_id(target_id).addresses(vec![through.clone()]).condition(PeerCondition::Always).build();
        source.dial(opts).expect("dial through the node");
    }
    let (mut up, mut refused) = (0, 0);
    let counted = tokio::time::timeout(Duration::from_secs(10), async {
        while up + refused < TRIES {
            match source.select_next_some().await {
                Event::ConnectionEstablished { peer_id, .. } if peer_id == target_id => up += 1,
                Event::OutgoingConnectionError { peer_id: Some(peer_id), .. } if peer_id == target_id => refused += 1,
                _ => {}
            }
        }
    })
    .await;
    assert!(counted.is_ok(), "every dial ended within 10 s: {up} up, {refused} refused");
    assert_eq!((up, refused), (2, TRIES - 2), "2 circuits per peer, the rest refused");
    let honest = spawn_node(loopback_config().with_bootstrap(vec![node.addr.clone()])).await;
    let params = ciborium::Value::Text("still here".into());
    assert_eq!(honest.handle.call(node.peer_id(), "echo", None, params.clone()).await, Ok(params), "the node works");
    for node in [&node, &honest] {
        node.handle.shutdown().await.expect("shutdown");
    }
}

/// A real libp2p peer with an AutoNAT client and identify (so it knows the
/// node serves AutoNAT), listening on 127.0.0.1.
#[derive(libp2p::swarm::NetworkBehaviour)]
struct AutonatAsker {
    identify: libp2p::identify::Behaviour,
    autonat: libp2p::autonat::v2::client::Behaviour,
}

/// A node's AutoNAT server dials back only the IP an asking peer connects
/// from: a peer asking it to "test" an address elsewhere (here another
/// loopback IP where a listener counts connections) gets a failure and
/// nothing connects there, even after the peer paid AutoNAT's data toll;
/// the peer's own address is dialed back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autonat_dials_back_only_the_ip_the_asker_connects_from() {
    use libp2p::autonat::v2::client::Event as Tested;
    use libp2p::swarm::{FromSwarm, NetworkBehaviour, NewExternalAddrCandidate, SwarmEvent as Event};
    let node = spawn_node(loopback_config()).await;
    // Somebody else's service, on another loopback IP.
    let bystander = tokio::net::TcpListener::bind("127.0.0.2:0").await.expect("bind 127.0.0.2");
    let stray: libp2p::Multiaddr =
        format!("/ip4/127.0.0.2/tcp/{}", bystander.local_addr().expect("addr").port()).parse().expect("multiaddr");
    let mut asker = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .expect("tcp")
        .with_behaviour(|key| AutonatAsker {
            identify: libp2p::identify::Behaviour::new(libp2p::identify::Config::new(
                mafalda_swarm::PROTOCOL_VERSION.to_owned(),
                key.public(),
            )),
            autonat: libp2p::autonat::v2::client::Behaviour::default(),
        })
        .expect("behaviour")
        .build();
    asker.listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")).expect("listen");
    let own = loop {
        if let Event::NewListenAddr { address, .. } = asker.select_next_some().await {
            break address;
        }
    };
    for candidate in [&stray, &own] {
        asker
            .behaviour_mut()
            .autonat
            .on_swarm_event(FromSwarm::NewExternalAddrCandidate(NewExternalAddrCandidate { addr: candidate }));
    }
    asker.dial(node.addr.clone()).expect("dial the node");
    let (mut stray_result, mut own_result) = (None, None);
    let tested = tokio::time::timeout(Duration::from_secs(30), async {
        while stray_result.is_none() || own_result.is_none() {
            if let Event::Behaviour(AutonatAskerEvent::Autonat(Tested { tested_addr, result, bytes_sent, .. })) =
                asker.select_next_some().await
            {
                println!("tested {tested_addr}: {result:?} ({bytes_sent} bytes sent)");
                if tested_addr == stray {
                    stray_result = Some((result.is_ok(), bytes_sent));
                } else if tested_addr == own {
                    own_result = Some(result.is_ok());
                }
            }
        }
    })
    .await;
    assert!(tested.is_ok(), "both addresses tested within 30 s: stray {stray_result:?}, own {own_result:?}");
    let (stray_ok, paid) = stray_result.expect("stray tested");
    assert!(!stray_ok, "an address at another IP is never reported reachable");
    assert!(paid > 0, "the asker paid AutoNAT's data toll for the address elsewhere, and was still refused");
    assert_eq!(own_result, Some(true), "the asker's own address is dialed back");
    let reached = tokio::time::timeout(Duration::from_millis(500), bystander.accept()).await;
    assert!(reached.is_err(), "nothing connected to the bystander: {reached:?}");
    node.handle.shutdown().await.expect("shutdown");
}
