//! The monitor page in a real browser: five nodes on loopback, a stream
//! published at A and taken out at C and E; headless Chromium opens
//! `/monitor` at node D (`tests/browser/drive-monitor.mjs` reports what the
//! page shows as JSON lines). The page must show the five nodes by their full
//! peer ids and the pipes back to A, a new consumer at B within 3 s, A's
//! worker CPU rising while RTP floods it, and E marked lost within 10 s of
//! stopping. A screenshot of the page is left in `target/monitor.png`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use mafalda_media::mediasoup::prelude::MediaKind;
use mafalda_node::api::ApiConfig;
use mafalda_node::{Codec, TrackSpec};
use mafalda_tests::node::connected_webrtc_nodes;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};

const TOKEN: &str = "monitor-page-token";

/// Reads the driver's lines until one's state passes `check` or `within`
/// passes; that state, or the last one seen.
async fn until(
    lines: &mut Lines<BufReader<ChildStdout>>,
    within: Duration,
    check: impl Fn(&Value) -> bool,
) -> (bool, Value) {
    let deadline = tokio::time::Instant::now() + within;
    let mut last = Value::Null;
    loop {
        match tokio::time::timeout_at(deadline, lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                let Ok(parsed) = serde_json::from_str::<Value>(&line) else { continue };
                if parsed.get("state").is_none() {
                    continue;
                }
                if check(&parsed["state"]) {
                    return (true, parsed["state"].clone());
                }
                last = parsed["state"].clone();
            }
            Ok(_) | Err(_) => return (false, last),
        }
    }
}

fn node<'a>(state: &'a Value, peer: &str) -> Option<&'a Value> {
    state["nodes"].as_array()?.iter().find(|n| n["peer"] == peer)
}

/// Whether the page draws a pipe of `stream` into `to` whose upstreams lead back to `origin`.
fn carried(state: &Value, stream: &str, to: &str, origin: &str) -> bool {
    let edges: Vec<(&str, &str)> = state["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["stream"] == stream && e["failed"] != true)
        .filter_map(|e| Some((e["from"].as_str()?, e["to"].as_str()?)))
        .collect();
    let mut at = to;
    for _ in 0..8 {
        match edges.iter().find(|(_, t)| *t == at) {
            Some((from, _)) if *from == origin => return true,
            Some((from, _)) => at = from,
            None => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_page_shows_the_swarm_live_new_consumers_load_and_lost_nodes() {
    let mut config = ApiConfig::default();
    config.token = Some(TOKEN.into());
    let nodes = connected_webrtc_nodes(5, config).await;
    let ids: Vec<String> = nodes.iter().map(|(n, _)| n.peer_id().to_string()).collect();
    let (a, b, c, e) = (&nodes[0].0, &nodes[1].0, &nodes[2].0, &nodes[4].0);
    let track = TrackSpec { kind: MediaKind::Audio, codec: Codec::Opus, payload_type: 111, ssrc: 4242 };
    let ingest = a.publish_rtp("cam", vec![track]).await.expect("publish at A");
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("sink");
    let to = sink.local_addr().expect("addr");
    c.consume_rtp("cam", to).await.expect("consume at C");
    e.consume_rtp("cam", to).await.expect("consume at E");

    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser/drive-monitor.mjs");
    let mut child = Command::new("node")
        .arg(driver)
        .args(["--url", &format!("http://{}/monitor", nodes[3].1), "--token", TOKEN, "--seconds", "100"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs tests/browser/drive-monitor.mjs");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();

    let (seen, state) = until(&mut lines, Duration::from_secs(30), |s| {
        s["connected"] == true
            && ids.iter().all(|id| node(s, id).is_some_and(|n| n["health"] == "live"))
            && carried(s, "cam", &ids[2], &ids[0])
            && carried(s, "cam", &ids[4], &ids[0])
    })
    .await;
    assert!(seen, "the page shows the five nodes live and the pipes to C and E from A: {state:#}");

    let started = Instant::now();
    b.consume_rtp("cam", to).await.expect("consume at B");
    let (seen, state) = until(&mut lines, Duration::from_secs(3), |s| carried(s, "cam", &ids[1], &ids[0])).await;
    assert!(seen, "B's pipe on the page within 3 s ({:?}): {state:#}", started.elapsed());

    // Flood A's ingest: its worker forwards every packet to three pipes.
    let before = node(&state, &ids[0]).and_then(|n| n["cpu"].as_f64()).unwrap_or_default();
    let flood = tokio::task::spawn_blocking(move || {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("flood socket");
        let packets = mafalda_tests::rtp::test_stream(4242, 111, 1 << 16);
        let started = Instant::now();
        for packet in packets.iter().cycle() {
            let _ = socket.send_to(&packet.encode(), ingest);
            if started.elapsed() > Duration::from_secs(10) {
                return;
            }
        }
    });
    let (seen, state) = until(&mut lines, Duration::from_secs(12), |s| {
        node(s, &ids[0]).and_then(|n| n["cpu"].as_f64()).is_some_and(|cpu| cpu >= before + 3.0)
    })
    .await;
    assert!(seen, "A's worker CPU rises on the page under load (from {before} %): {state:#}");
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/monitor.png");
    let command = format!("screenshot {}\n", screenshot.display());
    stdin.write_all(command.as_bytes()).await.expect("ask for a screenshot");
    flood.await.expect("flood");

    let stopped = Instant::now();
    e.shutdown().await;
    let (seen, state) =
        until(&mut lines, Duration::from_secs(10), |s| node(s, &ids[4]).is_some_and(|n| n["health"] == "lost")).await;
    assert!(seen, "E marked lost within 10 s of stopping ({:?}): {state:#}", stopped.elapsed());
    stdin.write_all(b"quit\n").await.ok();
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    assert!(screenshot.exists(), "a screenshot of the page");
}

/// Opens `/monitor` at `api` with the driver (`token` in its URL if given) and
/// returns the first state the page reports with an error.
async fn first_error(api: std::net::SocketAddr, token: Option<&str>) -> Value {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser/drive-monitor.mjs");
    let mut command = Command::new("node");
    command.arg(driver).args(["--url", &format!("http://{api}/monitor"), "--seconds", "30"]);
    if let Some(token) = token {
        command.args(["--token", token]);
    }
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).kill_on_drop(true).spawn().expect("run the driver");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (_, state) = until(&mut lines, Duration::from_secs(20), |s| !s["error"].is_null()).await;
    stdin.write_all(b"quit\n").await.ok();
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_page_asks_for_the_token_and_shows_nothing_without_it() {
    let mut config = ApiConfig::default();
    config.token = Some(TOKEN.into());
    let nodes = connected_webrtc_nodes(1, config).await;
    let api = nodes[0].1;
    let state = first_error(api, None).await;
    assert_eq!(state["error"], "the node wants a token", "{state:#}");
    assert_eq!(state["nodes"].as_array().map(Vec::len), Some(0), "nothing drawn: {state:#}");
    assert_eq!(state["connected"], false);
    let state = first_error(api, Some("not-the-token")).await;
    assert_eq!(state["error"], "the node refused the token", "{state:#}");
    assert_eq!(state["nodes"].as_array().map(Vec::len), Some(0), "{state:#}");
}
