//! `mafalda-node top`: the whole swarm in a terminal, refreshing — the
//! node's `GET /v1/swarm` as a table of nodes (health, CPU, workers,
//! transports, consumers, streams, clients, peers) and the pipes per stream.

use std::fmt::Write;
use std::io::IsTerminal;
use std::time::Duration;

use serde_json::Value;

use crate::client::ApiTarget;

/// Peer ids are shown by their last characters (enough to tell nodes apart).
const SHORT_ID: usize = 8;

/// Runs until Ctrl-C, or prints once with `once`.
pub(crate) async fn top(target: &ApiTarget, interval: Duration, once: bool) -> anyhow::Result<()> {
    let terminal = std::io::stdout().is_terminal();
    loop {
        let view = target.request("GET", "/v1/swarm", None).await?;
        if target.json {
            println!("{view}");
        } else {
            if terminal && !once {
                // Clear the screen and go home: a refreshing picture, not a scroll.
                print!("\x1b[2J\x1b[H");
            }
            print!("{}", render(&view));
        }
        if once {
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

fn short(peer: &str) -> String {
    let start = peer.char_indices().rev().nth(SHORT_ID - 1).map_or(0, |(i, _)| i);
    format!("…{}", &peer[start..])
}

fn count(value: &Value) -> usize {
    value.as_array().map_or(0, Vec::len)
}

/// The view as text: a header, one line per node, the pipes of each stream.
pub(crate) fn render(view: &Value) -> String {
    let nodes = view["nodes"].as_array().cloned().unwrap_or_default();
    let health = |h: &str| nodes.iter().filter(|n| n["health"] == h).count();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "swarm seen from {}: {} nodes ({} live, {} stale, {} lost), {} pipes, refreshed {:.1} s ago",
        short(view["seenFrom"].as_str().unwrap_or("?")),
        nodes.len(),
        health("live"),
        health("stale"),
        health("lost"),
        count(&view["edges"]),
        view["refreshedMsAgo"].as_f64().unwrap_or(0.0) / 1000.0
    );
    let _ = writeln!(
        out,
        "{:<10} {:<6} {:>6} {:>6} {:>7} {:>10} {:>9} {:>7} {:>7} {:>7} {:>5}",
        "NODE", "HEALTH", "AGE", "CPU%", "WORKERS", "TRANSPORTS", "CONSUMERS", "ORIGIN", "RELAY", "CLIENTS", "PEERS"
    );
    for node in &nodes {
        let workers = node["workers"].as_array().cloned().unwrap_or_default();
        let sum = |key: &str| workers.iter().map(|w| w[key].as_u64().unwrap_or(0)).sum::<u64>();
        let cpu = workers.iter().map(|w| w["cpuPercent"].as_f64().unwrap_or(0.0)).fold(0.0, f64::max);
        let peer = node["peer"].as_str().unwrap_or("?");
        let streams = node["streams"].as_array().cloned().unwrap_or_default();
        let origins = streams.iter().filter(|s| s["origin"].as_str() == Some(peer)).count();
        let mut flags = String::new();
        if node["draining"] == true {
            flags.push_str(" draining");
        }
        if cpu >= 80.0 {
            flags.push_str(" OVERLOADED");
        }
        let _ = writeln!(
            out,
            "{:<10} {:<6} {:>5.1}s {:>6.1} {:>7} {:>10} {:>9} {:>7} {:>7} {:>7} {:>5}{flags}",
            short(peer),
            node["health"].as_str().unwrap_or("?"),
            node["ageMs"].as_f64().unwrap_or(0.0) / 1000.0,
            cpu,
            workers.len(),
            sum("transports"),
            sum("consumers"),
            origins,
            streams.len() - origins,
            node["clients"].as_u64().unwrap_or(0),
            count(&node["peers"]),
        );
    }
    let mut edges: Vec<(&str, String)> = view["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let (from, to) = (e["from"].as_str().unwrap_or("?"), e["to"].as_str().unwrap_or("?"));
            (e["stream"].as_str().unwrap_or("?"), format!("{} → {}", short(from), short(to)))
        })
        .collect();
    edges.sort();
    if !edges.is_empty() {
        let _ = writeln!(out, "pipes:");
        let mut streams: Vec<&str> = edges.iter().map(|(s, _)| *s).collect();
        streams.dedup();
        for stream in streams {
            let pipes: Vec<&str> = edges.iter().filter(|(s, _)| *s == stream).map(|(_, p)| p.as_str()).collect();
            let _ = writeln!(out, "  {stream}: {}", pipes.join(", "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_each_node_its_load_and_the_pipes_per_stream() {
        let view = serde_json::json!({
            "seenFrom": "12D3KooWAAAAAAAAdddddddd", "refreshedMsAgo": 400,
            "nodes": [
                { "peer": "12D3KooWAAAAAAAAaaaaaaaa", "health": "live", "ageMs": 100, "draining": false, "clients": 2,
                  "peers": ["x", "y"], "workers": [{ "cpuPercent": 91.5, "transports": 3, "consumers": 4 }],
                  "streams": [{ "stream": "cam", "origin": "12D3KooWAAAAAAAAaaaaaaaa" }] },
                { "peer": "12D3KooWAAAAAAAAcccccccc", "health": "lost", "ageMs": 12000, "draining": false, "clients": 0,
                  "peers": [], "workers": [], "streams": [{ "stream": "cam", "origin": "12D3KooWAAAAAAAAaaaaaaaa" }] }
            ],
            "edges": [{ "stream": "cam", "from": "12D3KooWAAAAAAAAaaaaaaaa", "to": "12D3KooWAAAAAAAAcccccccc" }]
        });
        let text = render(&view);
        assert!(text.starts_with("swarm seen from …dddddddd: 2 nodes (1 live, 0 stale, 1 lost), 1 pipes"), "{text}");
        let a = text.lines().find(|l| l.starts_with("…aaaaaaaa")).expect("A's line");
        assert!(a.contains("live") && a.contains("91.5") && a.contains("OVERLOADED"), "{a}");
        let fields: Vec<&str> = a.split_whitespace().collect();
        assert_eq!(
            &fields[4..11],
            ["1", "3", "4", "1", "0", "2", "2"],
            "workers, transports, consumers, origin, relay, clients, peers: {a}"
        );
        let c = text.lines().find(|l| l.starts_with("…cccccccc")).expect("C's line");
        assert!(c.contains("lost") && c.contains("12.0s"), "{c}");
        assert!(text.contains("  cam: …aaaaaaaa → …cccccccc"), "{text}");
    }
}
