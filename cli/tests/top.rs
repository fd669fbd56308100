//! `mafalda-node top` against real node processes: the picture printed at
//! any node shows every node of the swarm and the pipe a stream takes.

use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{BINARY, loopback_swarm, publish_cam_and_take_it_out};

fn top_once(api: &str, json: bool) -> String {
    let mut command = Command::new(BINARY);
    command.args(["top", "--once", "--api", api]);
    if json {
        command.arg("--json");
    }
    let output = command.output().expect("run top");
    assert!(output.status.success(), "top: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn short(peer: &str) -> String {
    format!("…{}", &peer[peer.len() - 8..])
}

#[test]
fn top_at_any_node_shows_every_node_and_the_pipes_of_a_stream() {
    let nodes = loopback_swarm(3);
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let _sink = publish_cam_and_take_it_out(a, c);
    let expected_pipe = format!("cam: {} → {}", short(&a.peer_id), short(&c.peer_id));
    let started = Instant::now();
    let picture = loop {
        let picture = top_once(&b.api, false);
        if picture.contains("3 nodes (3 live") && picture.contains(&expected_pipe) {
            break picture;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "every node and the pipe A → C, at B: {picture}");
        std::thread::sleep(Duration::from_millis(300));
    };
    for node in &nodes {
        assert!(
            picture.lines().any(|l| l.starts_with(&short(&node.peer_id))),
            "{} has a line: {picture}",
            node.peer_id
        );
    }
    let json: serde_json::Value = serde_json::from_str(top_once(&b.api, true).trim()).expect("--json prints the view");
    assert_eq!(json["seenFrom"], b.peer_id.as_str());
    assert_eq!(json["nodes"].as_array().map(Vec::len), Some(3));
}
