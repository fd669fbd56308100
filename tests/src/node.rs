//! Nodes with their apps' API on 127.0.0.1 for tests.

use std::net::SocketAddr;
use std::sync::Arc;

use mafalda_media::{MediaConfig, WebRtcListen};
use mafalda_node::api::{self, ApiConfig};
use mafalda_node::{Node, NodeConfig};
use tokio::net::TcpListener;

use crate::media::LOOPBACK;
use crate::swarm::loopback_config;

/// A one-worker node whose worker also serves WebRTC on one free loopback port
/// (returned), with its API on an ephemeral port (returned), joining through
/// `bootstrap` if given.
///
/// An app session outlives its connection by [`TEST_SESSION_GRACE`] here, so
/// tests of what closes with a connection need not wait the default 15 s.
pub async fn webrtc_node_with_api(bootstrap: Option<&Node>) -> (Arc<Node>, SocketAddr, u16) {
    webrtc_node_with_api_config(bootstrap, test_api_config()).await
}

/// How long the test nodes' app sessions outlive their connection.
pub const TEST_SESSION_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// [`webrtc_node_with_api`] with the API set up as `config` says (tokens,
/// origins, hosts, caps).
pub async fn webrtc_node_with_api_config(bootstrap: Option<&Node>, config: ApiConfig) -> (Arc<Node>, SocketAddr, u16) {
    let bootstrap = match bootstrap {
        Some(seed) => seed.listen_addrs().await.expect("addrs"),
        None => Vec::new(),
    };
    // The port is free when probed, but tests running at once may take it
    // before the worker binds it: another port then.
    let mut attempts = 0;
    let (node, port) = loop {
        let port = {
            let probe = std::net::UdpSocket::bind((LOOPBACK, 0)).expect("probe a free port");
            probe.local_addr().expect("addr").port()
        };
        let mut media = MediaConfig::default();
        media.workers = 1;
        media.webrtc = Some(WebRtcListen { ip: LOOPBACK, announced_address: None, ports: port..=port });
        let swarm = loopback_config().with_bootstrap(bootstrap.clone());
        match Node::start(NodeConfig::new(media, swarm)).await {
            Ok(node) => break (Arc::new(node), port),
            Err(error) if attempts < 5 => {
                attempts += 1;
                eprintln!("node start failed on WebRTC port {port} ({error}); another port");
            }
            Err(error) => panic!("start: {error}"),
        }
    };
    let listener = TcpListener::bind((LOOPBACK, 0)).await.expect("bind API");
    let (addr, _task) = api::serve_with(Arc::clone(&node), listener, config).expect("serve API");
    (node, addr, port)
}

/// A one-worker node on 127.0.0.1 joining through `bootstrap` if given, with
/// `adjust` applied to its configuration before it starts.
pub async fn node_with(bootstrap: Option<&Node>, adjust: impl FnOnce(&mut NodeConfig)) -> Node {
    crate::log_if_asked();
    let mut media = MediaConfig::default();
    media.workers = 1;
    let mut swarm = loopback_config();
    if let Some(seed) = bootstrap {
        swarm = swarm.with_bootstrap(seed.listen_addrs().await.expect("addrs"));
    }
    let mut config = NodeConfig::new(media, swarm);
    adjust(&mut config);
    Node::start(config).await.expect("start node")
}

/// Serves `node`'s API on an ephemeral loopback port (sessions outlive their
/// connection by [`TEST_SESSION_GRACE`]); returns where.
pub async fn serve_api(node: Arc<Node>) -> SocketAddr {
    let config = test_api_config();
    let listener = TcpListener::bind((LOOPBACK, 0)).await.expect("bind API");
    let (addr, _task) = api::serve_with(node, listener, config).expect("serve API");
    addr
}

/// `count` nodes like [`webrtc_node_with_api_config`] (each with `config`),
/// all joined through the first; returns once every node is connected to
/// every other (panics if not within 10 s).
pub async fn connected_webrtc_nodes(count: usize, config: ApiConfig) -> Vec<(Arc<Node>, SocketAddr)> {
    let (first, api, _) = webrtc_node_with_api_config(None, config.clone()).await;
    let mut nodes = vec![(first, api)];
    for _ in 1..count {
        let (node, api, _) = webrtc_node_with_api_config(Some(&nodes[0].0), config.clone()).await;
        nodes.push((node, api));
    }
    let ids: Vec<_> = nodes.iter().map(|(node, _)| node.peer_id()).collect();
    for (node, _) in &nodes {
        let connected = crate::swarm::eventually(std::time::Duration::from_secs(10), || async {
            let peers = node.swarm().connected_peers().await.unwrap_or_default();
            ids.iter().filter(|id| **id != node.peer_id()).all(|id| peers.contains(id))
        })
        .await;
        assert!(connected, "every node is connected to every other");
    }
    nodes
}

/// The API configuration of [`webrtc_node_with_api`]: sessions outlive their
/// connection by [`TEST_SESSION_GRACE`].
pub fn test_api_config() -> ApiConfig {
    let mut config = ApiConfig::default();
    config.session_grace = TEST_SESSION_GRACE;
    config
}

/// Whether `node` finds `relay` among the providers of `stream` within 5 s.
/// A relay's announcement reaches the peers that store its records a moment
/// after its consume returns, and a node near the key answers finds from its
/// own store: a test that wants a consume to choose the relay waits for this.
pub async fn finds_provider(node: &Node, stream: &str, relay: &Node) -> bool {
    let relay = relay.peer_id().to_string();
    crate::swarm::eventually(std::time::Duration::from_secs(5), || async {
        node.find(stream).await.is_ok_and(|providers| providers.iter().any(|provider| provider.peer == relay))
    })
    .await
}

/// Transports on `node`'s workers, less the spare pipe transports it keeps
/// ready for the next pipe (one per router, whoever asks): what its streams,
/// egresses and pipes hold.
pub fn transports_besides_spares(node: &Node) -> u32 {
    let all: u32 = node.media().status().iter().map(|w| w.objects.transports).sum();
    all - u32::try_from(node.spare_pipes()).expect("a few spares")
}
