//! Client subcommands (`status`, `publish`, `find`, `consume`; `top` is in `top.rs`): talk to a running
//! node's HTTP API and print what it says, for people or (`--json`) for scripts.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest API answer read.
const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

/// Where the node's API is and how to talk to it.
#[derive(Debug, clap::Args)]
pub(crate) struct ApiTarget {
    /// Address of the node's HTTP API.
    #[arg(long, value_name = "HOST:PORT", env = "MAFALDA_API", default_value = "127.0.0.1:7700")]
    api: SocketAddr,
    /// Bearer token, if the node requires one.
    #[arg(long, value_name = "TOKEN", env = "MAFALDA_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
    /// Print the API's JSON answer instead of a summary.
    #[arg(long)]
    pub(crate) json: bool,
}

impl ApiTarget {
    /// Sends one request; returns the JSON answer or the API's error message.
    pub(crate) async fn request(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let mut stream = TcpStream::connect(self.api)
            .await
            .with_context(|| format!("cannot reach the node's API at {} (is `mafalda-node run` up?)", self.api))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.api);
        if let Some(token) = &self.api_token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if !body.is_empty() {
            request.push_str("Content-Type: application/json\r\n");
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        stream.write_all(request.as_bytes()).await.context("sending the request")?;
        let mut response = Vec::new();
        stream.take(MAX_RESPONSE_BYTES).read_to_end(&mut response).await.context("reading the answer")?;
        let response = String::from_utf8_lossy(&response);
        let status: u16 =
            response.split(' ').nth(1).and_then(|code| code.parse().ok()).context("not an HTTP answer")?;
        let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        let json: Value = if body.trim().is_empty() { Value::Null } else { serde_json::from_str(body)? };
        if !(200..300).contains(&status) {
            let message = json["error"].as_str().unwrap_or(body);
            bail!("the node answered {status}: {message}");
        }
        Ok(json)
    }

    fn print(&self, json: &Value, summary: impl FnOnce(&Value)) {
        if self.json {
            println!("{json}");
        } else {
            summary(json);
        }
    }
}

/// `mafalda-node status`.
pub(crate) async fn status(target: &ApiTarget) -> anyhow::Result<()> {
    let json = target.request("GET", "/v1/status", None).await?;
    target.print(&json, |s| {
        println!("peer id: {}", s["peerId"].as_str().unwrap_or("?"));
        println!("connected peers: {}", s["connectedPeers"].as_array().map_or(0, Vec::len));
        let external: Vec<&str> =
            s["externalAddrs"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        println!(
            "reachability: {} (dialed back at: {})",
            s["reachability"].as_str().unwrap_or("?"),
            if external.is_empty() { "-".to_owned() } else { external.join(", ") }
        );
        let relayed: Vec<&str> = s["relayedAddrs"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        if !relayed.is_empty() {
            println!("reachable through relays at: {}", relayed.join(", "));
        }
        for worker in s["workers"].as_array().into_iter().flatten() {
            println!(
                "worker {}: cpu {:.1} %, {} routers, {} transports, {} consumers",
                worker["id"].as_str().unwrap_or("?"),
                worker["cpuPercent"].as_f64().unwrap_or(0.0),
                worker["routers"],
                worker["transports"],
                worker["consumers"]
            );
        }
        for stream in s["streams"].as_array().into_iter().flatten() {
            println!("stream {}: hops {}", stream["stream"].as_str().unwrap_or("?"), stream["hops"]);
        }
    });
    Ok(())
}

/// Parses `kind:codec:payloadType:ssrc`, e.g. `audio:opus:111:1234`.
pub(crate) fn parse_track(text: &str) -> anyhow::Result<Value> {
    let parts: Vec<&str> = text.split(':').collect();
    let [kind, codec, payload_type, ssrc] = parts[..] else {
        bail!("a track is KIND:CODEC:PAYLOAD_TYPE:SSRC, e.g. audio:opus:111:1234");
    };
    let payload_type: u8 = payload_type.parse().context("payload type must be 0-127")?;
    let ssrc: u32 = ssrc.parse().context("ssrc must be a 32-bit number")?;
    Ok(serde_json::json!({"kind": kind, "codec": codec, "payloadType": payload_type, "ssrc": ssrc}))
}

/// `mafalda-node publish`.
pub(crate) async fn publish(
    target: &ApiTarget,
    stream: &str,
    tracks: Vec<Value>,
    source: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    let mut body = serde_json::json!({ "tracks": tracks });
    if let Some(source) = source {
        body["source"] = Value::String(source.to_string());
    }
    let json = target.request("PUT", &format!("/v1/streams/{stream}/rtp-ingest"), Some(&body)).await?;
    target.print(&json, |a| {
        println!("publishing {stream}: send RTP to {}:{}", a["ip"].as_str().unwrap_or("?"), a["port"])
    });
    Ok(())
}

/// `mafalda-node find`.
pub(crate) async fn find(target: &ApiTarget, stream: &str) -> anyhow::Result<()> {
    let json = target.request("GET", &format!("/v1/streams/{stream}"), None).await?;
    target.print(&json, |f| {
        for track in f["tracks"].as_array().into_iter().flatten() {
            println!(
                "track {} {}  payload type {}",
                track["kind"].as_str().unwrap_or("?"),
                track["codec"].as_str().unwrap_or("?"),
                track["payloadType"]
            );
        }
        for provider in f["providers"].as_array().into_iter().flatten() {
            println!(
                "{}  hops {}  rtt {}  load {}",
                provider["peer"].as_str().unwrap_or("?"),
                provider["hops"],
                provider["rttMs"].as_f64().map_or_else(|| "?".to_owned(), |ms| format!("{ms:.1} ms")),
                provider["load"].as_f64().map_or_else(|| "?".to_owned(), |load| format!("{:.0} %", load * 100.0)),
            );
        }
    });
    Ok(())
}

/// `mafalda-node consume`.
pub(crate) async fn consume(
    target: &ApiTarget,
    stream: &str,
    to: SocketAddr,
    ports: Option<Vec<u16>>,
    sdp: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let mut body = serde_json::json!({ "ip": to.ip(), "port": to.port() });
    if let Some(ports) = ports {
        body["ports"] = serde_json::json!(ports);
    }
    let json = target.request("POST", &format!("/v1/streams/{stream}/rtp-egress"), Some(&body)).await?;
    if let Some(path) = sdp {
        let text = json["sdp"].as_str().context("the node's answer carries no SDP")?;
        std::fs::write(path, text).with_context(|| format!("cannot write the SDP to {}", path.display()))?;
    }
    target.print(&json, |e| {
        println!("egress {}: sending {stream} to {to}", e["id"].as_str().unwrap_or("?"));
        for track in e["tracks"].as_array().into_iter().flatten() {
            println!(
                "  {} {}  ssrc {}  payload type {}",
                track["kind"].as_str().unwrap_or("?"),
                track["codec"].as_str().unwrap_or("?"),
                track["ssrc"],
                track["payloadType"]
            );
        }
        let path: Vec<&str> = e["path"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        println!("  path: {}", path.join(" -> "));
        match sdp {
            Some(file) => println!("  SDP written to {}", file.display()),
            None => print!("  SDP:\n{}", e["sdp"].as_str().unwrap_or("").replace("\r\n", "\n")),
        }
    });
    Ok(())
}
