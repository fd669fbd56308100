//! The node-to-node side of streams, over ROPE: the methods a node answers
//! (`stream.describe`, `stream.pipe`, `stream.unpipe`, `stream.closed`) and
//! the calls it makes (finding and describing providers is in `describe`,
//! the pipe handshake in `pipes`).

use std::net::IpAddr;
use std::sync::Arc;

use mafalda_rope::{ErrorCode, Request, RpcError, Value};
use mafalda_swarm::{CallError, InboundCall, PeerId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tracing::debug;

use crate::NodeError;
use crate::inner::{Inner, lock};
use crate::streams::{DescribeParams, PipeRequest, Role, StreamParams, validate_stream_id};

fn to_value<T: Serialize>(value: &T) -> Result<Value, RpcError> {
    Value::serialized(value).map_err(|e| RpcError::new(ErrorCode::InternalError, e.to_string()))
}

fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, RpcError> {
    value.deserialized().map_err(|e| RpcError::new(ErrorCode::InvalidParams, e.to_string()))
}

/// Answers a peer's call; `remote_ip` is where its connection comes from.
pub(crate) async fn handle(
    inner: &Arc<Inner>,
    peer: PeerId,
    remote_ip: Option<IpAddr>,
    request: &Request,
) -> Result<Value, RpcError> {
    match request.method.as_str() {
        "mediasoup.session.call" => {
            let call: crate::app_media::SessionCall = from_value(&request.params)?;
            crate::app_media::hosting::call(inner, peer, call).await
        }
        "mediasoup.session.close" => {
            let params: crate::app_media::SessionRef = from_value(&request.params)?;
            inner.app_media.hosting.close(peer, params.session);
            Ok(Value::Null)
        }
        "mediasoup.session.events" => {
            let events: crate::app_media::SessionEvents = from_value(&request.params)?;
            crate::app_media::entry::on_events(inner, peer, events)?;
            Ok(Value::Null)
        }
        crate::rooms::sync::ROOM_SYNC => {
            let params: crate::rooms::sync::SyncRequest = from_value(&request.params)?;
            to_value(&crate::rooms::sync::answer(inner, peer, params)?)
        }
        "node.snapshot" => {
            let params: crate::monitor::snapshot::SnapshotParams =
                if request.params == Value::Null { Default::default() } else { from_value(&request.params)? };
            to_value(&inner.snapshot_for_peer(params).await)
        }
        "stream.describe" => {
            let params: DescribeParams = from_value(&request.params)?;
            validate_stream_id(&params.stream).map_err(RpcError::from)?;
            let mut description = inner
                .describe(&params.stream)
                .ok_or_else(|| RpcError::from(NodeError::NotFound(params.stream.clone())))?;
            if let Some(endpoint) = params.pipe_if_origin
                && description.provenance.is_origins()
            {
                description.offer =
                    inner.pipe_as_origin(peer, remote_ip, &params.stream, endpoint, params.paired_ends).await;
            }
            to_value(&description)
        }
        "stream.pipe" => {
            let params: PipeRequest = from_value(&request.params)?;
            validate_stream_id(&params.stream).map_err(RpcError::from)?;
            let offer = inner.offer_pipe(peer, remote_ip, params).await.map_err(RpcError::from)?;
            to_value(&offer)
        }
        "stream.move" => {
            let params: crate::MoveParams = from_value(&request.params)?;
            validate_stream_id(&params.stream).map_err(RpcError::from)?;
            let moved = inner.move_stream(&params.stream, peer, params.leave).await.map_err(RpcError::from)?;
            Ok(Value::Bool(moved))
        }
        "stream.stats" => {
            let params: StreamParams = from_value(&request.params)?;
            validate_stream_id(&params.stream).map_err(RpcError::from)?;
            let stats =
                inner.stream_stats(&params.stream).ok_or_else(|| RpcError::from(NodeError::NotFound(params.stream)))?;
            to_value(&stats)
        }
        "stream.unpipe" => {
            let params: StreamParams = from_value(&request.params)?;
            validate_stream_id(&params.stream).map_err(RpcError::from)?;
            Ok(Value::Bool(inner.release_pipe(&params.stream, peer)))
        }
        "stream.closed" => {
            let params: StreamParams = from_value(&request.params)?;
            validate_stream_id(&params.stream).map_err(RpcError::from)?;
            // Only the node a stream comes from may end it here.
            let from_upstream = lock(&inner.streams)
                .get(&params.stream)
                .is_some_and(|local| local.role == Role::Relay { upstream: peer });
            if from_upstream {
                // Re-pipe from another provider if the stream still exists elsewhere.
                let inner = Arc::clone(inner);
                inner.clone().spawn("heal", async move { inner.heal(&params.stream, peer, 1).await });
            }
            Ok(Value::Bool(from_upstream))
        }
        other => {
            let shown: String = other.chars().take(64).collect();
            Err(RpcError::new(ErrorCode::MethodNotFound, format!("unknown method {shown}")))
        }
    }
}

/// Calls `method` at `peer` and decodes the answer, counting it in the metrics.
pub(crate) async fn call<T: DeserializeOwned>(
    inner: &Inner,
    peer: PeerId,
    method: &str,
    params: Value,
) -> Result<T, CallError> {
    let started = std::time::Instant::now();
    let result = inner.swarm.call(peer, method, None, params).await;
    inner.metrics.call(method, "out", result.is_ok(), started.elapsed().as_secs_f64());
    result?.deserialized().map_err(|e| CallError::Io { peer, reason: format!("unexpected answer to {method}: {e}") })
}

/// Tells `peer` (downstream) that `stream` ended here.
pub(crate) async fn tell_closed(inner: &Arc<Inner>, stream: &str, peer: PeerId) {
    let Ok(params) = Value::serialized(&StreamParams { stream: stream.to_owned() }) else { return };
    if let Err(error) = inner.swarm.call(peer, "stream.closed", None, params).await {
        debug!(stream, %peer, %error, "could not tell a downstream peer the stream ended");
    }
}

/// Answers peers' calls, at most 64 at once, each in a task of the node.
pub(crate) async fn serve_calls(inner: Arc<Inner>, mut calls: mpsc::Receiver<InboundCall>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(64));
    while let Some(call) = calls.recv().await {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { return };
        let task_inner = Arc::clone(&inner);
        let span = tracing::debug_span!("call", peer = %call.peer, method = %call.request.method.chars().take(64).collect::<String>());
        let answer = async move {
            let inner = task_inner;
            let started = std::time::Instant::now();
            let outcome = handle(&inner, call.peer, call.remote_ip, &call.request).await;
            inner.metrics.call(&call.request.method, "in", outcome.is_ok(), started.elapsed().as_secs_f64());
            let _ = call.respond(outcome).await;
            drop(permit);
        };
        inner.spawn("answer a call", tracing::Instrument::instrument(answer, span));
    }
}
