//! The node-to-node side of streams, over ROPE: the methods a node answers
//! (`stream.describe`, `stream.pipe`) and the calls it makes (find, pull).

use std::sync::Arc;

use mafalda_media::pipe;
use mafalda_rope::{ErrorCode, Request, RpcError, Value};
use mafalda_swarm::{CallError, PeerId, stream_key};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, info};

use crate::NodeError;
use crate::codecs::TrackSummary;
use crate::node::{FoundStream, Inner, ProviderInfo, lock};
use crate::streams::{LocalStream, PipeOffer, PipeRequest, Role, StreamDescription, validate_stream_id};

/// Params of `stream.describe`.
#[derive(Debug, serde::Deserialize, Serialize)]
struct DescribeParams {
    stream: String,
}

fn to_value<T: Serialize>(value: &T) -> Result<Value, RpcError> {
    Value::serialized(value).map_err(|e| RpcError::new(ErrorCode::InternalError, e.to_string()))
}

fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, RpcError> {
    value.deserialized().map_err(|e| RpcError::new(ErrorCode::InvalidParams, e.to_string()))
}

/// Answers a peer's call.
pub(crate) async fn handle(inner: &Arc<Inner>, peer: PeerId, request: &Request) -> Result<Value, RpcError> {
    match request.method.as_str() {
        "stream.describe" => {
            let params: DescribeParams = from_value(&request.params)?;
            validate_stream_id(&params.stream).map_err(RpcError::from)?;
            let description =
                inner.describe(&params.stream).ok_or_else(|| RpcError::from(NodeError::NotFound(params.stream)))?;
            to_value(&description)
        }
        "stream.pipe" => {
            let params: PipeRequest = from_value(&request.params)?;
            validate_stream_id(&params.stream).map_err(RpcError::from)?;
            let offer = inner.offer_pipe(peer, params).await.map_err(RpcError::from)?;
            to_value(&offer)
        }
        "stream.closed" => {
            let params: DescribeParams = from_value(&request.params)?;
            validate_stream_id(&params.stream).map_err(RpcError::from)?;
            // Only the node a stream comes from may end it here.
            let from_upstream = lock(&inner.streams)
                .get(&params.stream)
                .is_some_and(|local| local.role == Role::Relay { upstream: peer });
            if from_upstream {
                // Re-pipe from another provider if the stream still exists elsewhere.
                let inner = Arc::clone(inner);
                tokio::spawn(async move { inner.heal(&params.stream, peer, 1).await });
            }
            Ok(Value::Bool(from_upstream))
        }
        other => Err(RpcError::new(ErrorCode::MethodNotFound, format!("unknown method {other}"))),
    }
}

async fn call<T: DeserializeOwned>(inner: &Inner, peer: PeerId, method: &str, params: Value) -> Result<T, CallError> {
    let started = std::time::Instant::now();
    let result = inner.swarm.call(peer, method, None, params).await;
    inner.metrics.call(method, "out", result.is_ok(), started.elapsed().as_secs_f64());
    result?.deserialized().map_err(|e| CallError::Io { peer, reason: format!("unexpected answer to {method}: {e}") })
}

/// The providers of `stream` that describe it, with RTT and load.
pub(crate) async fn find(inner: &Arc<Inner>, stream: &str) -> Result<FoundStream, NodeError> {
    let started = std::time::Instant::now();
    let found = find_described(inner, stream).await;
    inner.metrics.find_latency.observe(started.elapsed().as_secs_f64());
    found
}

async fn find_described(inner: &Arc<Inner>, stream: &str) -> Result<FoundStream, NodeError> {
    let providers = inner.swarm.find_providers(stream_key(stream), inner.config.find_deadline).await?;
    let rtts = inner.swarm.rtts().await?;
    let loads = inner.swarm.peer_loads().await?;
    let me = inner.swarm.peer_id();
    let params = Value::serialized(&DescribeParams { stream: stream.to_owned() })
        .map_err(|e| NodeError::InvalidInput(e.to_string()))?;
    let describes = providers.into_iter().map(|peer| {
        let params = params.clone();
        async move {
            let description: Option<StreamDescription> = if peer == me {
                inner.describe(stream)
            } else {
                match call(inner, peer, "stream.describe", params).await {
                    Ok(description) => Some(description),
                    Err(error) => {
                        debug!(%peer, %error, "provider did not describe the stream");
                        None
                    }
                }
            };
            description.map(|d| (peer, d))
        }
    });
    let described: Vec<(PeerId, StreamDescription)> =
        futures::future::join_all(describes).await.into_iter().flatten().collect();
    if described.is_empty() {
        return Err(NodeError::NotFound(stream.to_owned()));
    }
    let tracks =
        described[0].1.tracks.iter().map(|track| TrackSummary::of(track.kind, &track.rtp_parameters)).collect();
    let providers = described
        .into_iter()
        .map(|(peer, description)| ProviderInfo {
            peer: peer.to_string(),
            hops: description.hops,
            rtt_ms: if peer == me { Some(0.0) } else { rtts.get(&peer).map(|rtt| rtt.as_secs_f64() * 1000.0) },
            load: loads.iter().find(|l| l.report.node == peer).map(|l| f64::from(l.report.mean_cpu_percent()) / 100.0),
            path: description.path,
        })
        .collect();
    Ok(FoundStream { stream: stream.to_owned(), tracks, providers })
}

/// Pipes `stream` here from `peer` and keeps it as a relay.
pub(crate) async fn pull(inner: &Arc<Inner>, stream: &str, peer: PeerId) -> Result<(), NodeError> {
    let router = inner.router.ingest_router().await?;
    let (transport, endpoint) =
        pipe::open_pipe(&router, inner.config.media_ip, inner.config.announced_ip.map(|ip| ip.to_string())).await?;
    let request = PipeRequest { stream: stream.to_owned(), endpoint };
    let params = Value::serialized(&request).map_err(|e| NodeError::InvalidInput(e.to_string()))?;
    let offer: PipeOffer = match call(inner, peer, "stream.pipe", params).await {
        Ok(offer) => offer,
        Err(CallError::Remote(error)) if error.code == ErrorCode::Busy.code() => {
            let alternatives = match error.data {
                Some(Value::Array(peers)) => peers.into_iter().filter_map(|p| p.into_text().ok()).collect(),
                _ => Vec::new(),
            };
            return Err(NodeError::Busy { alternatives });
        }
        Err(error) => return Err(NodeError::NoProvider { stream: stream.to_owned(), reasons: error.to_string() }),
    };
    pipe::connect_pipe(&transport, &offer.endpoint).await?;
    let mut producers = Vec::new();
    for track in &offer.tracks {
        let producer = pipe::receive_track(&transport, track).await?;
        inner.router.register_producer(&producer, &router);
        producers.push(producer);
    }
    let mut path = offer.path;
    path.push(inner.swarm.peer_id().to_string());
    let hops = offer.hops + 1;
    info!(stream, upstream = %peer, hops, "relaying stream");
    let local = LocalStream {
        role: Role::Relay { upstream: peer },
        hops,
        path,
        producers,
        downstream: Vec::new(),
        keep: vec![Box::new(transport)],
    };
    lock(&inner.streams).insert(stream.to_owned(), local);
    Ok(())
}

/// Tells `peer` (downstream) that `stream` ended here.
pub(crate) async fn tell_closed(inner: &Arc<Inner>, stream: &str, peer: PeerId) {
    let Ok(params) = Value::serialized(&DescribeParams { stream: stream.to_owned() }) else { return };
    if let Err(error) = inner.swarm.call(peer, "stream.closed", None, params).await {
        debug!(stream, %peer, %error, "could not tell a downstream peer the stream ended");
    }
}
