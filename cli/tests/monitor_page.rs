//! The monitor page in a real browser against real node processes: five
//! `mafalda-node` processes on loopback, a stream published at A and taken
//! out at C and E; headless Chromium opens `/monitor` at node D
//! (`tests/browser/drive-monitor.mjs` reports what the page shows as JSON
//! lines). The page must show the five nodes by their full peer ids and the
//! pipes back to A, a new consumer at B within 3 s, A's worker CPU rising
//! while RTP floods it, and E marked lost within 10 s of being killed. A
//! screenshot is left in `target/monitor.png`.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{curl_json, loopback_swarm};

/// Waits for a state line passing `check` (or `within`); that state or the last one.
fn until(lines: &mpsc::Receiver<String>, within: Duration, check: impl Fn(&Value) -> bool) -> (bool, Value) {
    let deadline = Instant::now() + within;
    let mut last = Value::Null;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(line) = lines.recv_timeout(left) else { break };
        let Ok(parsed) = serde_json::from_str::<Value>(&line) else { continue };
        if parsed.get("state").is_none() {
            continue;
        }
        if check(&parsed["state"]) {
            return (true, parsed["state"].clone());
        }
        last = parsed["state"].clone();
    }
    (false, last)
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

fn egress_to(api: &str, sink: SocketAddr) {
    let body = format!(r#"{{"ip":"127.0.0.1","port":{}}}"#, sink.port());
    curl_json("POST", &format!("http://{api}/v1/streams/cam/rtp-egress"), Some(&body));
}

#[test]
fn the_monitor_page_shows_the_swarm_live_new_consumers_load_and_lost_nodes() {
    let mut nodes = loopback_swarm(5);
    let ids: Vec<String> = nodes.iter().map(|n| n.peer_id.clone()).collect();
    let tracks = r#"{"tracks":[{"kind":"audio","codec":"opus","payloadType":111,"ssrc":4242}]}"#;
    let answer = curl_json("PUT", &format!("http://{}/v1/streams/cam/rtp-ingest", nodes[0].api), Some(tracks));
    let answer: Value = serde_json::from_str(&answer).expect("the ingest's address");
    let ingest: SocketAddr =
        format!("{}:{}", answer["ip"].as_str().expect("ip"), answer["port"]).parse().expect("an address");
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("sink");
    let sink_addr = sink.local_addr().expect("addr");
    egress_to(&nodes[2].api, sink_addr);
    egress_to(&nodes[4].api, sink_addr);

    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser/drive-monitor.mjs");
    let mut child = Command::new("node")
        .arg(driver)
        .args(["--url", &format!("http://{}/monitor", nodes[3].api), "--seconds", "100"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs tests/browser/drive-monitor.mjs (scripts/setup.sh installs its packages)");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });

    let (seen, state) = until(&lines, Duration::from_secs(30), |s| {
        s["connected"] == true
            && ids.iter().all(|id| node(s, id).is_some_and(|n| n["health"] == "live"))
            && carried(s, "cam", &ids[2], &ids[0])
            && carried(s, "cam", &ids[4], &ids[0])
    });
    assert!(seen, "the page shows the five nodes live and the pipes to C and E from A: {state:#}");

    let started = Instant::now();
    egress_to(&nodes[1].api, sink_addr);
    let (seen, state) = until(&lines, Duration::from_secs(3), |s| carried(s, "cam", &ids[1], &ids[0]));
    assert!(seen, "B's pipe on the page within 3 s ({:?}): {state:#}", started.elapsed());

    // Flood A's ingest: its worker forwards every packet to three pipes.
    let before = node(&state, &ids[0]).and_then(|n| n["cpu"].as_f64()).unwrap_or_default();
    let flood = std::thread::spawn(move || {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("flood socket");
        let mut packet = vec![0x80, 111, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x92];
        packet.extend(std::iter::repeat_n(0xfc, 400));
        let started = Instant::now();
        let mut sequence: u16 = 0;
        while started.elapsed() < Duration::from_secs(10) {
            sequence = sequence.wrapping_add(1);
            packet[2..4].copy_from_slice(&sequence.to_be_bytes());
            packet[4..8].copy_from_slice(&(u32::from(sequence) * 960).to_be_bytes());
            let _ = socket.send_to(&packet, ingest);
        }
    });
    let (seen, state) = until(&lines, Duration::from_secs(12), |s| {
        node(s, &ids[0]).and_then(|n| n["cpu"].as_f64()).is_some_and(|cpu| cpu >= before + 3.0)
    });
    assert!(seen, "A's worker CPU rises on the page under load (from {before} %): {state:#}");
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/monitor.png");
    writeln!(stdin, "screenshot {}", screenshot.display()).expect("ask for a screenshot");
    flood.join().expect("flood");

    let killed = Instant::now();
    nodes.remove(4).kill();
    let (seen, state) =
        until(&lines, Duration::from_secs(10), |s| node(s, &ids[4]).is_some_and(|n| n["health"] == "lost"));
    assert!(seen, "E marked lost within 10 s of being killed ({:?}): {state:#}", killed.elapsed());
    let _ = writeln!(stdin, "quit");
    let end = Instant::now() + Duration::from_secs(10);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(screenshot.exists(), "a screenshot of the page");
}
