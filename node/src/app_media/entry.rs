//! The entry's side of Remote Mediasoup across the swarm: an app connection's
//! objects that live on other nodes. Each is a ROPE object of the app's own
//! connection whose calls are forwarded to its host; the host's events
//! create, change and close them. Only the host an object came from may touch
//! it. When a host leaves, its objects close here, workers with mediasoup's
//! `died` event first.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};

use futures::future::BoxFuture;
use mafalda_rope::{ErrorCode, Event, EventKind, Handler, Request, RpcError, Server, Value};
use mafalda_swarm::{CallError, PeerId};
use tracing::{debug, info, warn};

use super::{SessionCall, SessionEvents, SessionRef};
use crate::inner::{Inner, lock};

/// One app connection's link to the hosts of its remote objects.
struct Linked {
    server: Server,
    /// Each remote object's host.
    objects: HashMap<String, PeerId>,
    /// Hosts this connection has a session on.
    hosts: HashSet<PeerId>,
}

/// The app connections of this node that use other nodes' workers.
#[derive(Default)]
pub(crate) struct Entry {
    sessions: Mutex<HashMap<u64, Linked>>,
    /// Calls in flight to each host, all sessions together: a host takes at
    /// most so many concurrent calls from one peer (and penalises more), so
    /// the rest wait here.
    in_flight: Mutex<HashMap<PeerId, Arc<tokio::sync::Semaphore>>>,
}

/// Most calls this node has in flight to one host at once (below the swarm's
/// per-peer limit of concurrent inbound calls, 32 by default).
const MAX_CALLS_IN_FLIGHT_PER_HOST: usize = 16;

/// Most remote objects one app connection may hold here (as for local ones).
fn object_cap(inner: &Inner) -> usize {
    inner.config.app_media.limits.objects
}

fn rpc(error: CallError) -> RpcError {
    match error {
        CallError::Remote(error) => error,
        other => RpcError::new(ErrorCode::InternalError, format!("the worker's node cannot be reached: {other}")),
    }
}

/// `mediasoup.createWorker {node}` of app connection `session` (served by
/// `server`): creates the worker on `host` and links the connection to it.
pub(crate) async fn create_worker(
    inner: &Arc<Inner>,
    session: u64,
    server: &Server,
    host: PeerId,
    params: Value,
) -> Result<Value, RpcError> {
    link(inner, session, server, host);
    forward(inner, host, session, None, "mediasoup.createWorker", params).await
}

/// A call of app connection `session` on its room `room` to make a
/// transport (`method`, `params`) on `host`: the connection's session there
/// joins the room first (once), then makes it; it is mirrored here.
pub(crate) async fn room_call(
    inner: &Arc<Inner>,
    session: u64,
    server: &Server,
    host: PeerId,
    room: &str,
    method: &str,
    params: Value,
) -> Result<Value, RpcError> {
    link(inner, session, server, host);
    let join = Value::serialized(&serde_json::json!({ "room": room }))
        .map_err(|e| RpcError::new(ErrorCode::InternalError, e.to_string()))?;
    match forward(inner, host, session, None, "room.join", join).await {
        Ok(_) => {}
        // Joined there already (an earlier transport).
        Err(error) if error.code == mafalda_mediasoup_api::INVALID_STATE => {}
        Err(error) => return Err(error),
    }
    let target = mafalda_mediasoup_api::room_object_id(room);
    forward(inner, host, session, Some(target), method, params).await
}

/// App connection `session` left room `room`: its session on `host` leaves
/// it too (closing what it made there), in the background.
pub(crate) fn leave_room(inner: &Arc<Inner>, session: u64, host: PeerId, room: &str) {
    let (task_inner, target) = (Arc::clone(inner), mafalda_mediasoup_api::room_object_id(room));
    inner.spawn("leave a room on a host", async move {
        if let Err(error) = forward(&task_inner, host, session, Some(target), "leave", Value::Null).await {
            debug!(%host, session, %error, "could not leave the room on a host (it leaves when the session ends)");
        }
    });
}

/// Links app connection `session` (served by `server`) to `host`.
fn link(inner: &Arc<Inner>, session: u64, server: &Server, host: PeerId) {
    let mut sessions = lock(&inner.app_media.entry.sessions);
    let linked = sessions.entry(session).or_insert_with(|| Linked {
        server: server.clone(),
        objects: HashMap::new(),
        hosts: HashSet::new(),
    });
    linked.hosts.insert(host);
}

/// Forwards one call of app connection `session` to `host`.
async fn forward(
    inner: &Arc<Inner>,
    host: PeerId,
    session: u64,
    target: Option<String>,
    method: &str,
    params: Value,
) -> Result<Value, RpcError> {
    let call = SessionCall { session, target, method: method.to_owned(), params: Some(params) };
    let params = Value::serialized(&call).map_err(|e| RpcError::new(ErrorCode::InternalError, e.to_string()))?;
    let slots = Arc::clone(
        lock(&inner.app_media.entry.in_flight)
            .entry(host)
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(MAX_CALLS_IN_FLIGHT_PER_HOST))),
    );
    let _slot = slots.acquire_owned().await.map_err(|_| RpcError::new(ErrorCode::InternalError, "node stopping"))?;
    inner.swarm.call(host, "mediasoup.session.call", None, params).await.map_err(rpc)
}

/// `mediasoup.session.events` from `host`: applies them to the app's connection.
pub(crate) fn on_events(inner: &Arc<Inner>, host: PeerId, message: SessionEvents) -> Result<(), RpcError> {
    let mut sessions = lock(&inner.app_media.entry.sessions);
    let linked = sessions
        .get_mut(&message.session)
        .filter(|linked| linked.hosts.contains(&host))
        .ok_or_else(|| RpcError::new(ErrorCode::ObjectNotFound, format!("no app session {} here", message.session)))?;
    if let Some(snapshot) = message.snapshot {
        let fresh: HashSet<&str> = snapshot.objects.iter().map(|object| object.id.as_str()).collect();
        let stale: Vec<String> = linked
            .objects
            .iter()
            .filter(|(id, owner)| **owner == host && !fresh.contains(id.as_str()))
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            linked.objects.remove(&id);
            let _ = linked.server.close(&id);
        }
        for object in snapshot.objects {
            let created = Event {
                object: object.id,
                object_type: object.object_type,
                name: EventKind::Created,
                data: object.state,
            };
            apply(inner, linked, host, message.session, created);
        }
    }
    for event in message.events {
        apply(inner, linked, host, message.session, event);
    }
    Ok(())
}

/// Applies one event of `host` to the app connection's objects.
fn apply(inner: &Arc<Inner>, linked: &mut Linked, host: PeerId, session: u64, event: Event) {
    let Event { object: id, object_type, name, data } = event;
    let id = id.as_str();
    let cap = object_cap(inner);
    let owner = linked.objects.get(id).copied();
    if object_type == "room" && owner.is_none() {
        // The host's side of a room the app is in here: the app's own room
        // object is this node's; only what the host made in it is mirrored.
        return;
    }
    match name {
        EventKind::Created => match owner {
            Some(owner) if owner == host => {
                let _ = linked.server.set_state(id, data);
            }
            Some(_) => warn!(%host, object = id, "a host announced another host's object; ignored"),
            None if linked.objects.len() >= cap => {
                warn!(%host, object = id, cap, "a host announced more objects than an app may hold; ignored");
            }
            None => {
                let handler = Arc::new(RemoteObject { inner: Arc::downgrade(inner), host, session, id: id.to_owned() });
                if linked.server.create(id.to_owned(), object_type, data, handler).is_ok() {
                    linked.objects.insert(id.to_owned(), host);
                } else {
                    warn!(%host, object = id, "a host announced an object whose id is taken here; ignored");
                }
            }
        },
        _ if owner != Some(host) => debug!(%host, object = id, "event of an object this host does not hold; ignored"),
        EventKind::Changed => {
            let _ = linked.server.set_state(id, data);
        }
        EventKind::Closed => {
            linked.objects.remove(id);
            let _ = linked.server.close(id);
        }
        EventKind::Named(name) => {
            let _ = linked.server.emit(id, &name, data);
        }
    }
}

/// App connection `session` ended: its hosts close what it made there.
pub(crate) fn end_session(inner: &Arc<Inner>, session: u64) {
    let Some(linked) = lock(&inner.app_media.entry.sessions).remove(&session) else { return };
    for host in linked.hosts {
        let inner_for_task = Arc::clone(inner);
        inner.spawn("close a hosted app session", async move {
            let Ok(params) = Value::serialized(&SessionRef { session }) else { return };
            if let Err(error) = inner_for_task.swarm.call(host, "mediasoup.session.close", None, params).await {
                debug!(%host, session, %error, "could not tell a host the app session ended (it closes it when we part)");
            }
        });
    }
}

/// Whether an app of this node has workers on `host`.
pub(crate) fn uses_host(inner: &Inner, host: &PeerId) -> bool {
    lock(&inner.app_media.entry.sessions).values().any(|linked| linked.hosts.contains(host))
}

/// `host` left: its objects close in every app connection, each worker
/// with a `died` event first (as mediasoup reports a worker that died).
pub(crate) fn host_left(inner: &Arc<Inner>, host: PeerId) {
    lock(&inner.app_media.entry.in_flight).remove(&host);
    let mut sessions = lock(&inner.app_media.entry.sessions);
    for linked in sessions.values_mut() {
        if !linked.hosts.remove(&host) {
            continue;
        }
        let snapshot = linked.server.snapshot();
        let is_worker =
            |id: &str| snapshot.objects.iter().any(|object| object.id == id && object.object_type == "worker");
        let mut lost: Vec<String> =
            linked.objects.iter().filter(|(_, owner)| **owner == host).map(|(id, _)| id.clone()).collect();
        // Workers last, so their objects close before them, as in mediasoup.
        lost.sort_by_key(|id| is_worker(id));
        if !lost.is_empty() {
            info!(%host, objects = lost.len(), "the node of an app's workers left: they close");
        }
        let workers: Vec<&String> = lost
            .iter()
            .filter(|id| {
                linked
                    .server
                    .snapshot()
                    .objects
                    .iter()
                    .any(|object| object.id == **id && object.object_type == "worker")
            })
            .collect();
        for worker in workers {
            let reason =
                Value::serialized(&[format!("the worker's node {host} left the swarm")]).unwrap_or(Value::Null);
            let _ = linked.server.emit(worker, "died", reason);
        }
        for id in lost {
            linked.objects.remove(&id);
            let _ = linked.server.close(&id);
        }
    }
}

/// An object on another node, as the app's connection shows it.
struct RemoteObject {
    inner: Weak<Inner>,
    host: PeerId,
    session: u64,
    id: String,
}

impl Handler for RemoteObject {
    fn call(&self, request: Request) -> BoxFuture<'static, Result<Value, RpcError>> {
        let (inner, host, session, id) = (self.inner.upgrade(), self.host, self.session, self.id.clone());
        Box::pin(async move {
            let inner = inner.ok_or_else(|| RpcError::new(ErrorCode::InternalError, "node stopping"))?;
            forward(&inner, host, session, Some(id), &request.method, request.params).await
        })
    }
}
