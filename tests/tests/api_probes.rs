//! The probes a load balancer or an orchestrator uses, and the operator's
//! drain, over real HTTP to real nodes on 127.0.0.1: `/healthz` and `/readyz`
//! need no token; `/readyz` says why a node is not ready; `POST /v1/drain`
//! takes the admin token when one is set.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mafalda_media::MediaConfig;
use mafalda_node::api::{self, ApiConfig};
use mafalda_node::{Node, NodeConfig};
use mafalda_swarm::{Keypair, Multiaddr, PeerId};
use mafalda_tests::http::raw;
use mafalda_tests::media::LOOPBACK;
use mafalda_tests::node::webrtc_node_with_api_config;
use mafalda_tests::swarm::{connected_within, loopback_config};
use tokio::net::TcpListener;

const APP: &str = "app-probe-token";
const ADMIN: &str = "admin-probe-token";

fn tokens() -> ApiConfig {
    let mut config = ApiConfig::default();
    config.token = Some(APP.to_owned());
    config.admin_token = Some(ADMIN.to_owned());
    config
}

/// `method path` with `Host: addr` and the bearer token if any; the status and the JSON body.
async fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let answer = raw(addr, &head, "").await;
    let json = serde_json::from_str(&answer.body).unwrap_or(serde_json::Value::Null);
    (answer.status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_without_the_token_a_token_guards() {
    let (node, addr, _) = webrtc_node_with_api_config(None, tokens()).await;
    let (status, body) = http(addr, "GET", "/healthz", None).await;
    println!("GET /healthz without a token: {status} {body}");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["alive"], true, "{body}");
    // The token is really required elsewhere: the probe is the exception.
    let (status, _) = http(addr, "GET", "/v1/status", None).await;
    assert_eq!(status, 401, "the status still takes the token");
    let (status, _) = http(addr, "GET", "/v1/status", Some(APP)).await;
    assert_eq!(status, 200);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_200_on_a_joined_node_without_the_token() {
    let (seed, seed_addr, _) = webrtc_node_with_api_config(None, tokens()).await;
    let (node, addr, _) = webrtc_node_with_api_config(Some(&seed), tokens()).await;
    assert!(
        connected_within(node.swarm(), seed.peer_id(), Duration::from_secs(10)).await,
        "the node joins through its seed"
    );
    let (status, body) = http(addr, "GET", "/readyz", None).await;
    println!("GET /readyz on a joined node, without a token: {status} {body}");
    assert_eq!((status, &body), (200, &serde_json::json!({ "ready": true })));
    // A seed with nobody to join is ready too.
    let (status, body) = http(seed_addr, "GET", "/readyz", None).await;
    assert_eq!((status, &body), (200, &serde_json::json!({ "ready": true })), "a node with no bootstrap peer");
    for node in [node, seed] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_with_a_reason_while_the_bootstrap_peer_is_unreachable() {
    // A bootstrap address where nothing listens: a TCP port bound and released.
    let port = std::net::TcpListener::bind((LOOPBACK, 0)).expect("bind").local_addr().expect("addr").port();
    let nobody = PeerId::from(Keypair::generate_ed25519().public());
    let unreachable: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{nobody}").parse().expect("multiaddr");
    let mut media = MediaConfig::default();
    media.workers = 1;
    let swarm = loopback_config().with_bootstrap(vec![unreachable.clone()]);
    let node = Arc::new(Node::start(NodeConfig::new(media, swarm)).await.expect("a node starts without its seed"));
    let listener = TcpListener::bind((LOOPBACK, 0)).await.expect("bind the API");
    let (addr, _task) = api::serve_with(Arc::clone(&node), listener, tokens()).expect("serve the API");
    // Not ready for as long as it has not joined: asked over 2 s, never 200.
    let mut answers = Vec::new();
    for _ in 0..10 {
        answers.push(http(addr, "GET", "/readyz", None).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("GET /readyz with the bootstrap peer {unreachable} unreachable: {:?}", answers[0]);
    for (status, body) in &answers {
        assert_eq!(*status, 503, "{body}");
        assert_eq!(body["ready"], false, "{body}");
        let reason = body["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("not joined"), "the reason says it has not joined: {body}");
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_takes_the_admin_token_and_readyz_then_says_draining() {
    let (node, addr, _) = webrtc_node_with_api_config(None, tokens()).await;
    let (status, body) = http(addr, "GET", "/readyz", None).await;
    assert_eq!(status, 200, "ready before the drain: {body}");

    let (status, body) = http(addr, "POST", "/v1/drain", Some(APP)).await;
    println!("POST /v1/drain with the app token: {status} {body}");
    assert_eq!(status, 403, "the app token may not drain the node: {body}");
    let (status, _) = http(addr, "POST", "/v1/drain", None).await;
    assert_eq!(status, 401, "nor may a caller without a token");
    let (status, body) = http(addr, "GET", "/readyz", None).await;
    assert_eq!(status, 200, "a refused drain changes nothing: {body}");
    assert!(!node.is_draining());

    let (status, body) = http(addr, "POST", "/v1/drain", Some(ADMIN)).await;
    println!("POST /v1/drain with the admin token: {status} {body}");
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["draining"], true, "{body}");
    let (status, body) = http(addr, "GET", "/readyz", None).await;
    println!("GET /readyz after the drain: {status} {body}");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body, serde_json::json!({ "ready": false, "reason": "draining" }));
    let (status, status_body) = http(addr, "GET", "/v1/status", Some(APP)).await;
    assert_eq!(status, 200);
    assert_eq!(status_body["draining"], true, "the status says so too: {status_body}");
    // Alive all the same: the process serves until it is stopped.
    let (status, _) = http(addr, "GET", "/healthz", None).await;
    assert_eq!(status, 200);
    let (status, body) = http(addr, "POST", "/v1/drain", Some(ADMIN)).await;
    assert_eq!((status, &body["already"]), (202, &serde_json::json!(true)), "a second drain: {body}");
    node.shutdown().await;
}
