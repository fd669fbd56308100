//! The host's side of Remote Mediasoup across the swarm: app sessions that
//! entry peers run here, one mediasoup session each, with their objects'
//! events relayed to the entry in order (every event a call caused reaches
//! the entry before the call's answer does, so the app can call a new object
//! at once). A session ends when its entry closes it or disconnects; each
//! entry peer holds at most [`MAX_SESSIONS_PER_PEER`](super::MAX_SESSIONS_PER_PEER).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use futures::future::BoxFuture;
use mafalda_mediasoup_api::{Grants, Host, HostConfig, Session};
use mafalda_rope::{ErrorCode, Event, Handler, Request, RequestId, RpcError, Server, Value};
use mafalda_swarm::PeerId;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

use super::{MAX_EVENTS_PER_CALL, MAX_SESSIONS_PER_PEER, SessionCall, SessionEvents};
use crate::inner::{Inner, lock};

/// One app session run here for an entry peer.
struct Hosted {
    session: Session,
    server: Server,
    /// Asks the relay to deliver every event so far, and says when it has.
    flush: mpsc::Sender<oneshot::Sender<()>>,
}

/// The sessions this node hosts.
pub(crate) struct Hosting {
    host: Arc<Host>,
    sessions: Mutex<HashMap<(PeerId, u64), Arc<Hosted>>>,
}

impl Hosting {
    pub(crate) fn new(config: HostConfig) -> Self {
        Self { host: Arc::new(Host::from_config(config)), sessions: Mutex::default() }
    }

    pub(crate) fn host(&self) -> &Arc<Host> {
        &self.host
    }

    /// Ends `peer`'s session `session` here (its objects close).
    pub(crate) fn close(&self, peer: PeerId, session: u64) {
        let hosted = lock(&self.sessions).remove(&(peer, session));
        if let Some(hosted) = hosted {
            info!(%peer, session, "hosted app session closed by its entry");
            hosted.session.close_all();
        }
    }

    /// Ends every session of a peer that left.
    pub(crate) fn peer_left(&self, peer: PeerId) {
        let gone: Vec<Arc<Hosted>> = {
            let mut sessions = lock(&self.sessions);
            let keys: Vec<(PeerId, u64)> = sessions.keys().filter(|(owner, _)| *owner == peer).copied().collect();
            keys.iter().filter_map(|key| sessions.remove(key)).collect()
        };
        if !gone.is_empty() {
            info!(%peer, sessions = gone.len(), "entry peer left: its hosted app sessions close");
        }
        for hosted in gone {
            hosted.session.close_all();
        }
    }

    /// Ends every hosted session (the node stops): their workers close.
    pub(crate) fn close_all(&self) {
        let all: Vec<Arc<Hosted>> = lock(&self.sessions).drain().map(|(_, hosted)| hosted).collect();
        if !all.is_empty() {
            info!(sessions = all.len(), "node stopping: its hosted app sessions close");
        }
        for hosted in all {
            hosted.session.close_all();
        }
    }

    /// Whether this node hosts an app session for `peer`'s apps.
    pub(crate) fn hosts_for(&self, peer: &PeerId) -> bool {
        lock(&self.sessions).keys().any(|(owner, _)| owner == peer)
    }

    /// How many sessions this node hosts.
    pub(crate) fn len(&self) -> usize {
        lock(&self.sessions).len()
    }
}

/// `mediasoup.session.call` from `peer`: runs the call in its session (opened
/// by its first `mediasoup.createWorker`), then waits until the events it
/// caused have reached `peer`.
pub(crate) async fn call(inner: &Arc<Inner>, peer: PeerId, call: SessionCall) -> Result<Value, RpcError> {
    let hosting = &inner.app_media.hosting;
    let opens = call.target.is_none() && (call.method == "mediasoup.createWorker" || call.method == "room.join");
    let hosted = {
        let mut sessions = lock(&hosting.sessions);
        match sessions.get(&(peer, call.session)) {
            Some(hosted) => Arc::clone(hosted),
            None if !opens => {
                return Err(RpcError::new(ErrorCode::ObjectNotFound, format!("no app session {} here", call.session)));
            }
            None => {
                let held = sessions.keys().filter(|(owner, _)| *owner == peer).count();
                if held >= MAX_SESSIONS_PER_PEER {
                    return Err(RpcError::new(
                        ErrorCode::Application(mafalda_mediasoup_api::LIMIT_REACHED),
                        format!("peer {peer} already runs {held} app sessions here, the most it may"),
                    ));
                }
                let hosted = open(inner, peer, call.session);
                sessions.insert((peer, call.session), Arc::clone(&hosted));
                info!(%peer, session = call.session, "hosting an app session for a peer");
                hosted
            }
        }
    };
    let request = Request::from(call);
    let outcome = hosted.server.dispatch(request).await;
    let (delivered, done) = oneshot::channel();
    if hosted.flush.send(delivered).await.is_ok() {
        let _ = done.await;
    }
    outcome
}

impl From<SessionCall> for Request {
    fn from(call: SessionCall) -> Self {
        Request {
            id: RequestId::Number(0),
            method: call.method,
            target: call.target,
            params: call.params.unwrap_or(Value::Null),
        }
    }
}

/// The root of a hosted session's server: `mediasoup.*` calls only.
struct Root(OnceLock<Session>);

impl Handler for Root {
    fn call(&self, request: Request) -> BoxFuture<'static, Result<Value, RpcError>> {
        let session = self.0.get().cloned();
        Box::pin(async move {
            let session = session.ok_or_else(|| RpcError::new(ErrorCode::InternalError, "session starting"))?;
            if !Session::handles(&request.method) {
                return Err(RpcError::new(ErrorCode::MethodNotFound, format!("unknown method {}", request.method)));
            }
            session.call_root(&request.method, &request.params).await
        })
    }
}

fn open(inner: &Arc<Inner>, peer: PeerId, session_number: u64) -> Arc<Hosted> {
    let root = Arc::new(Root(OnceLock::new()));
    let server = Server::new(Arc::clone(&root) as Arc<dyn Handler>);
    // A peer's app may run workers here, but not name files on this node.
    let session =
        Session::new(Arc::clone(&inner.app_media.hosting.host), server.clone(), Grants { workers: true, files: false });
    let _ = root.0.set(session.clone());
    // Its rooms are this node's; transports on yet another node are made
    // through the app's own entry, not from here.
    session.serve_rooms(Arc::new(crate::rooms::NodeRooms { inner: Arc::downgrade(inner), entry: None }));
    let (flush, flushes) = mpsc::channel(16);
    let events = server.subscribe();
    let relay = relay(Arc::downgrade(inner), peer, session_number, server.clone(), events, flushes);
    inner.spawn("relay app session events", relay);
    Arc::new(Hosted { session, server, flush })
}

/// Delivers the session's events to its entry, in order, batched; a relay
/// that fell behind sends a snapshot instead. Ends when the session does.
async fn relay(
    inner: Weak<Inner>,
    peer: PeerId,
    session: u64,
    server: Server,
    mut events: broadcast::Receiver<Event>,
    mut flushes: mpsc::Receiver<oneshot::Sender<()>>,
) {
    loop {
        let mut batch = Vec::new();
        let mut snapshot = None;
        let mut ack = None;
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => batch.push(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    debug!(%peer, session, missed, "event relay fell behind: sending a snapshot");
                    events = server.subscribe();
                    snapshot = Some(server.snapshot());
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            flush = flushes.recv() => match flush {
                Some(flush) => ack = Some(flush),
                None => return,
            },
        }
        // Everything already queued goes too (all of it when a call waits).
        loop {
            match events.try_recv() {
                Ok(event) => {
                    batch.push(event);
                    if batch.len() >= MAX_EVENTS_PER_CALL {
                        if !deliver(&inner, peer, session, std::mem::take(&mut batch), None).await {
                            return;
                        }
                        if ack.is_none() {
                            break;
                        }
                    }
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    events = server.subscribe();
                    snapshot = Some(server.snapshot());
                    batch.clear();
                }
                Err(_) => break,
            }
        }
        if (!batch.is_empty() || snapshot.is_some()) && !deliver(&inner, peer, session, batch, snapshot).await {
            return;
        }
        if let Some(ack) = ack {
            let _ = ack.send(());
        }
    }
}

/// Sends one batch; false (and the session closed here) when the entry
/// cannot be told, since its mirror would no longer be right.
async fn deliver(
    inner: &Weak<Inner>,
    peer: PeerId,
    session: u64,
    events: Vec<Event>,
    snapshot: Option<mafalda_rope::Snapshot>,
) -> bool {
    let Some(inner) = inner.upgrade() else { return false };
    let message = SessionEvents { session, events, snapshot };
    let Ok(params) = Value::serialized(&message) else { return false };
    match inner.swarm.call(peer, "mediasoup.session.events", None, params).await {
        Ok(_) => true,
        Err(error) => {
            warn!(%peer, session, %error, "cannot relay app session events to its entry: closing the session");
            inner.app_media.hosting.close(peer, session);
            false
        }
    }
}
