//! `swarm.watch` on `/v1/rope`: the connection gets the ROPE object `swarm`
//! (type `swarm`) whose state is the [`SwarmView`](crate::monitor::SwarmView)
//! and whose `changed` events carry it again as it changes (checked every
//! second; sent when anything but the ages changed, and at least every 5 s so
//! ages stay true). The monitor page draws from these events. `close` on the
//! object, or the connection ending, stops it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use mafalda_rope::{Handler, Request as RopeRequest, RpcError, Server, Value};

use super::rope::{to_value, unknown};
use crate::Node;

/// The watched object's id and type.
pub(super) const SWARM_OBJECT: &str = "swarm";
/// How often the view is checked for changes.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Longest time between two events (ages move even when nothing else does).
const SEND_AT_LEAST_EVERY: Duration = Duration::from_secs(5);

/// Starts (or, if already watched, keeps) the connection's `swarm` object; answers the view.
pub(super) async fn watch(node: &Arc<Node>, server: &Server) -> Result<Value, RpcError> {
    let view = node.swarm_view().await;
    let state = to_value(&view)?;
    if server.snapshot().objects.iter().any(|o| o.id == SWARM_OBJECT) {
        return Ok(state);
    }
    server.create(
        SWARM_OBJECT.to_owned(),
        SWARM_OBJECT,
        state.clone(),
        Arc::new(Watched { server: server.clone() }),
    )?;
    let (node, server) = (Arc::clone(node), server.clone());
    tokio::spawn(async move {
        let mut sent = (signature(&view), Instant::now());
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            let view = node.swarm_view().await;
            let now_signature = signature(&view);
            if now_signature == sent.0 && sent.1.elapsed() < SEND_AT_LEAST_EVERY {
                continue;
            }
            let Ok(state) = to_value(&view) else { continue };
            // The object is gone (closed, or the connection ended): stop.
            if server.set_state(SWARM_OBJECT, state).is_err() {
                return;
            }
            sent = (now_signature, Instant::now());
        }
    });
    Ok(state)
}

/// The view without its ages, to tell a change from time passing.
fn signature(view: &crate::monitor::SwarmView) -> String {
    let mut value = serde_json::to_value(view).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.remove("refreshedMsAgo");
    }
    if let Some(nodes) = value.get_mut("nodes").and_then(|n| n.as_array_mut()) {
        for node in nodes.iter_mut().filter_map(|n| n.as_object_mut()) {
            node.remove("ageMs");
            // CPU to the nearest 5 points: a busy page is not sent every second for noise.
            if let Some(workers) = node.get_mut("workers").and_then(|w| w.as_array_mut()) {
                for worker in workers.iter_mut().filter_map(|w| w.as_object_mut()) {
                    let cpu = worker.get("cpuPercent").and_then(serde_json::Value::as_f64).unwrap_or_default();
                    worker.insert("cpuPercent".into(), ((cpu / 5.0).round() * 5.0).into());
                }
            }
        }
    }
    value.to_string()
}

struct Watched {
    server: Server,
}

impl Handler for Watched {
    fn call(&self, request: RopeRequest) -> BoxFuture<'static, Result<Value, RpcError>> {
        let server = self.server.clone();
        Box::pin(async move {
            match request.method.as_str() {
                "close" => {
                    server.close(SWARM_OBJECT)?;
                    Ok(Value::Null)
                }
                other => Err(unknown(other)),
            }
        })
    }
}
