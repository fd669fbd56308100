//! Discovery through the API: each stream is published at its node (an RTP
//! ingest; no RTP is sent, finding needs none) and then found from every
//! other node with `GET /v1/streams/{id}`, a bounded number at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::ProcessError;
use super::nodes::Swarm;
use super::scenario::ProcessScenario;

/// Wait between the last publication and the first find.
const SETTLE: Duration = Duration::from_secs(1);

/// One find from one node.
#[derive(Debug, Clone, Serialize)]
pub struct FindResult {
    /// Stream id.
    pub stream: String,
    /// The node that looked.
    pub from: usize,
    /// Whether it found the stream with its origin among the origins.
    pub ok: bool,
    /// Request to answer, ms (the node's lookup plus one local HTTP request).
    pub latency_ms: f64,
    /// Providers in the answer.
    pub providers: usize,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Publishes every stream of `scenario` and finds each from every other node.
pub async fn run(scenario: &ProcessScenario, swarm: &Swarm) -> Result<Vec<FindResult>, ProcessError> {
    for (s, stream) in scenario.streams.iter().enumerate() {
        let body = serde_json::json!({
            "tracks": [{"kind": "audio", "codec": "opus", "payloadType": 111, "ssrc": 0x5100_0000u32 + s as u32}]
        });
        let path = format!("/v1/streams/{}/rtp-ingest", stream.id);
        let answer = swarm.nodes[stream.at]
            .api
            .put_json(&path, &body.to_string(), Duration::from_secs(10))
            .await
            .map_err(|e| ProcessError::Publish { stream: stream.id.clone(), reason: e.to_string() })?;
        if !answer.ok() {
            return Err(ProcessError::Publish {
                stream: stream.id.clone(),
                reason: format!("{} {}", answer.status, answer.body.trim()),
            });
        }
    }
    if scenario.streams.is_empty() {
        return Ok(Vec::new());
    }
    tokio::time::sleep(SETTLE).await;
    let limit = Arc::new(Semaphore::new(scenario.find_concurrency));
    let timeout = Duration::from_secs_f64(scenario.find_timeout_s);
    let mut tasks = JoinSet::new();
    for stream in &scenario.streams {
        let origin = swarm.nodes[stream.at].peer_id.clone();
        for node in swarm.nodes.iter().filter(|n| n.index != stream.at) {
            let (api, from, id, origin, limit) =
                (node.api.clone(), node.index, stream.id.clone(), origin.clone(), Arc::clone(&limit));
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let started = Instant::now();
                let answer = api.get(&format!("/v1/streams/{id}"), timeout).await;
                let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
                let (ok, providers, error) = judge(answer, &origin);
                FindResult { stream: id, from, ok, latency_ms, providers, error }
            });
        }
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(result) = joined {
            results.push(result);
        }
    }
    results.sort_by(|a, b| (&a.stream, a.from).cmp(&(&b.stream, b.from)));
    Ok(results)
}

fn judge(answer: Result<super::http::Answer, super::http::HttpError>, origin: &str) -> (bool, usize, Option<String>) {
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => return (false, 0, Some(error.to_string())),
    };
    if !answer.ok() {
        return (false, 0, Some(format!("{} {}", answer.status, answer.body.trim())));
    }
    let Ok(found) = serde_json::from_str::<serde_json::Value>(&answer.body) else {
        return (false, 0, Some(format!("not JSON: {}", answer.body.trim())));
    };
    let providers = found["providers"].as_array().map_or(0, Vec::len);
    let has_origin = found["origins"].as_array().is_some_and(|o| o.iter().any(|p| p.as_str() == Some(origin)));
    if providers == 0 || !has_origin {
        return (false, providers, Some(format!("no provider of the origin's stream: {}", answer.body.trim())));
    }
    (true, providers, None)
}
