//! `GET /v1/swarm`: any node draws the whole swarm with no collector. Five
//! real nodes on loopback; a stream published at A is taken out at C and E;
//! the view asked at D must show all five nodes, the pipes that really carry
//! the stream to C and E (back to A), a new consumer at B within 3 s, and a
//! node that stops marked lost within 10 s. The API's token and origin rules
//! hold for it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mafalda_media::mediasoup::prelude::MediaKind;
use mafalda_node::api::ApiConfig;
use mafalda_node::{Codec, Node, TrackSpec};
use mafalda_tests::node::connected_webrtc_nodes;
use mafalda_tests::sdp::{bare, header};
use serde_json::Value;

const TOKEN: &str = "monitor-token";

async fn view(api: SocketAddr) -> Value {
    let answer = bare(api, "GET", "/v1/swarm", Some(TOKEN), "").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    serde_json::from_str(&answer.body).expect("JSON")
}

/// Asks `api` for the view until `check` holds or `within` passes; the last view.
async fn view_until(api: SocketAddr, within: Duration, check: impl Fn(&Value) -> bool) -> (bool, Value, Duration) {
    let started = Instant::now();
    loop {
        let seen = view(api).await;
        if check(&seen) {
            return (true, seen, started.elapsed());
        }
        if started.elapsed() > within {
            return (false, seen, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The upstream of each node holding `stream`, from the view's edges.
fn upstreams(view: &Value, stream: &str) -> HashMap<String, String> {
    view["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["stream"] == stream)
        .filter_map(|e| Some((e["to"].as_str()?.to_owned(), e["from"].as_str()?.to_owned())))
        .collect()
}

/// Whether following `node`'s upstreams in the view reaches `origin`.
fn carried_from(view: &Value, stream: &str, node: &str, origin: &str) -> bool {
    let upstreams = upstreams(view, stream);
    let mut at = node.to_owned();
    for _ in 0..8 {
        match upstreams.get(&at) {
            Some(from) if from == origin => return true,
            Some(from) => at = from.clone(),
            None => return false,
        }
    }
    false
}

fn health_of(view: &Value, peer: &str) -> Option<String> {
    view["nodes"].as_array()?.iter().find(|n| n["peer"] == peer).and_then(|n| n["health"].as_str()).map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_draws_the_whole_swarm_its_pipes_new_consumers_and_lost_nodes() {
    let mut config = ApiConfig::default();
    config.token = Some(TOKEN.into());
    let nodes = connected_webrtc_nodes(5, config).await;
    let ids: Vec<String> = nodes.iter().map(|(n, _)| n.peer_id().to_string()).collect();
    let (a, c, e) = (&nodes[0].0, &nodes[2].0, &nodes[4].0);
    let d_api = nodes[3].1;
    let track = TrackSpec { kind: MediaKind::Audio, codec: Codec::Opus, payload_type: 111, ssrc: 1234 };
    a.publish_rtp("cam", vec![track]).await.expect("publish at A");
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("sink");
    let to = sink.local_addr().expect("addr");
    c.consume_rtp("cam", to).await.expect("consume at C");
    e.consume_rtp("cam", to).await.expect("consume at E");

    let everything = |view: &Value| {
        let seen: Vec<&str> =
            view["nodes"].as_array().into_iter().flatten().filter_map(|n| n["peer"].as_str()).collect();
        ids.iter().all(|id| seen.contains(&id.as_str()))
            && carried_from(view, "cam", &ids[2], &ids[0])
            && carried_from(view, "cam", &ids[4], &ids[0])
    };
    let (seen, shown, took) = view_until(d_api, Duration::from_secs(10), everything).await;
    assert!(seen, "D shows the five nodes and the pipes to C and E from A: {shown:#}");
    eprintln!("the whole picture after {took:?}");
    assert_eq!(shown["seenFrom"], ids[3].as_str());
    let a_node = shown["nodes"].as_array().expect("nodes").iter().find(|n| n["peer"] == ids[0].as_str()).expect("A");
    assert_eq!(a_node["health"], "live");
    assert!(a_node["workers"][0]["cpuPercent"].is_number(), "workers with their CPU: {a_node}");
    let cam = a_node["streams"].as_array().expect("streams").iter().find(|s| s["stream"] == "cam").expect("cam at A");
    assert_eq!(cam["origin"], ids[0].as_str(), "A is its origin");
    assert!(cam["upstream"].is_null());
    assert!(a_node["peers"].as_array().is_some_and(|p| p.len() == 4), "A's peers: {a_node}");

    // A new consumer at B shows within 3 s.
    let b = Arc::clone(&nodes[1].0);
    let b_id = ids[1].clone();
    let started = Instant::now();
    b.consume_rtp("cam", to).await.expect("consume at B");
    let (seen, shown, _) =
        view_until(d_api, Duration::from_secs(3), |view| carried_from(view, "cam", &b_id, &ids[0])).await;
    assert!(seen, "B's new pipe shows within 3 s of its consume ({:?}): {shown:#}", started.elapsed());

    // A node that stops is lost within 10 s; nobody shows pipes from it.
    let e_id = ids[4].clone();
    let stopped = Instant::now();
    e.shutdown().await;
    let (seen, shown, _) =
        view_until(d_api, Duration::from_secs(10), |view| health_of(view, &e_id).as_deref() == Some("lost")).await;
    assert!(seen, "E marked lost within 10 s of stopping ({:?}): {shown:#}", stopped.elapsed());
    assert!(upstreams(&shown, "cam").keys().all(|to| *to != e_id), "no pipe into a lost node is drawn");
    drop(nodes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_swarm_view_obeys_the_token_and_the_origin_rules() {
    let mut config = ApiConfig::default();
    config.token = Some(TOKEN.into());
    config.origins = vec!["http://127.0.0.1:9".parse().expect("origin")];
    let nodes = connected_webrtc_nodes(1, config).await;
    let api = nodes[0].1;
    assert_eq!(bare(api, "GET", "/v1/swarm", None, "").await.status, 401);
    assert_eq!(bare(api, "GET", "/v1/swarm", Some("wrong"), "").await.status, 401);
    let foreign = bare(api, "GET", "/v1/swarm", Some(TOKEN), "Origin: http://evil.example\r\n").await;
    assert_eq!(foreign.status, 403, "{foreign:?}");
    let page = bare(api, "GET", "/v1/swarm", Some(TOKEN), "Origin: http://127.0.0.1:9\r\n").await;
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(header(&page, "access-control-allow-origin"), Some("http://127.0.0.1:9"));
    let _: &Arc<Node> = &nodes[0].0;
}

/// A node answers `node.snapshot` with its whole snapshot once, then only
/// `unchanged` to a peer that shows it has the current version; bad
/// parameters are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_sends_its_snapshot_again_only_when_it_changed() {
    let nodes = connected_webrtc_nodes(2, ApiConfig::default()).await;
    let (a, b) = (&nodes[0].0, &nodes[1].0);
    let ask = |params: serde_json::Value| async move {
        let params = mafalda_rope::Value::serialized(&params).expect("params");
        let answer = b.swarm().call(a.peer_id(), "node.snapshot", None, params).await;
        answer.map(|v| v.deserialized::<Value>().expect("JSON-like"))
    };
    let full = ask(Value::Null).await.expect("a snapshot");
    assert_eq!(full["peer"], a.peer_id().to_string());
    let version = full["version"].as_u64().expect("a version");
    let same = ask(serde_json::json!({ "unless": version })).await.expect("an answer");
    assert_eq!(same, serde_json::json!({ "unchanged": version }), "nothing changed, nothing sent");
    let other = ask(serde_json::json!({ "unless": version.wrapping_add(1) })).await.expect("an answer");
    assert_eq!(other["peer"], a.peer_id().to_string(), "an old version gets the snapshot");
    let track = TrackSpec { kind: MediaKind::Audio, codec: Codec::Opus, payload_type: 111, ssrc: 9 };
    a.publish_rtp("changed", vec![track]).await.expect("publish");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let changed = ask(serde_json::json!({ "unless": version })).await.expect("an answer");
    assert_eq!(changed["streams"][0]["stream"], "changed", "a new stream is a change: {changed}");
    assert!(ask(serde_json::json!("nonsense")).await.is_err(), "bad parameters are refused");
}
