//! Smoke test of the libp2p side: two real swarms over TCP on 127.0.0.1 connect
//! and measure each other's round-trip time with ping.

use std::time::Duration;

use mafalda_swarm::{Keypair, Multiaddr, StartedSwarm, SwarmConfig, SwarmEvent, start};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(10);

fn config() -> SwarmConfig {
    let listen: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr");
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
