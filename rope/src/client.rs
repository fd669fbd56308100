//! The ROPE client: calls with timeouts, a mirror of the server's objects kept
//! from the snapshot and events, and transparent reconnection that reconciles the
//! mirror from a fresh snapshot (objects closed meanwhile are reported closed).
//!
//! The mirror is the truth; [`ClientEvent`]s tell what changed in it. If the app
//! does not drain its events, new ones are dropped (the mirror stays right).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info};

use crate::message::{Event, EventKind, Message, Notification, ObjectId, ObjectState, Snapshot, Value};
pub use crate::session::CallError;
use crate::session::{self, Handler, NoMethods, SessionHandle};
use crate::transport::{TransportError, websocket};

/// Client settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// A call fails with [`CallError::Timeout`] after this long.
    pub request_timeout: Duration,
    /// How long to wait for the snapshot after connecting.
    pub snapshot_timeout: Duration,
    /// First wait before reconnecting; doubles up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// Longest wait between reconnection attempts.
    pub reconnect_max: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            snapshot_timeout: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
        }
    }
}

/// What changed for the client.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// An object was created, changed or closed (also when found by reconciling).
    Object(Event),
    /// A notification from the server.
    Notification(Notification),
    /// The connection dropped; the client is reconnecting.
    Disconnected,
    /// The client is connected again and its mirror reconciled.
    Reconnected,
}

/// Why connecting failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The transport could not connect.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server sent no snapshot in time.
    #[error("no snapshot from the server within {0:?}")]
    NoSnapshot(Duration),
}

/// Events waiting for the app.
const EVENT_QUEUE: usize = 256;

struct Inner {
    url: String,
    config: ClientConfig,
    handler: Arc<dyn Handler>,
    session: Mutex<Option<SessionHandle>>,
    mirror: Mutex<BTreeMap<ObjectId, ObjectState>>,
    /// Dropped with the last client: stops the connection task.
    _stop: oneshot::Sender<()>,
}

/// A ROPE client. Cheap to clone; the connection closes when the last clone drops.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("url", &self.inner.url).finish_non_exhaustive()
    }
}

impl Client {
    /// Connects over WebSocket to `url` and waits for the server's snapshot.
    pub async fn connect(
        url: impl Into<String>,
        config: ClientConfig,
    ) -> Result<(Self, mpsc::Receiver<ClientEvent>), ConnectError> {
        Self::connect_with_handler(url, config, Arc::new(NoMethods)).await
    }

    /// Like [`Client::connect`], answering the server's calls with `handler`.
    pub async fn connect_with_handler(
        url: impl Into<String>,
        config: ClientConfig,
        handler: Arc<dyn Handler>,
    ) -> Result<(Self, mpsc::Receiver<ClientEvent>), ConnectError> {
        let url = url.into();
        let (session, task, inbound, snapshot) = open(&url, &config, &handler).await?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let mirror = snapshot.objects.into_iter().map(|object| (object.id.clone(), object)).collect();
        let inner = Arc::new(Inner {
            url,
            config,
            handler,
            session: Mutex::new(Some(session)),
            mirror: Mutex::new(mirror),
            _stop: stop_tx,
        });
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        tokio::spawn(maintain(Arc::downgrade(&inner), task, inbound, events_tx, stop_rx));
        Ok((Self { inner }, events_rx))
    }

    /// Calls `method` on `target` (or the server itself) and waits for the result.
    pub async fn call(&self, method: &str, target: Option<&str>, params: Value) -> Result<Value, CallError> {
        let session = lock(&self.inner.session).clone().ok_or(CallError::Disconnected)?;
        session.call(method, target.map(str::to_owned), params, self.inner.config.request_timeout).await
    }

    /// The mirror: every object the server has, as last heard, ordered by id.
    pub fn mirror(&self) -> Vec<ObjectState> {
        lock(&self.inner.mirror).values().cloned().collect()
    }

    /// Whether the client is connected now.
    pub fn is_connected(&self) -> bool {
        lock(&self.inner.session).as_ref().is_some_and(SessionHandle::is_connected)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

type Opened = (SessionHandle, tokio::task::JoinHandle<()>, mpsc::Receiver<Message>, Snapshot);

/// Connects, starts a session and waits for the snapshot.
async fn open(url: &str, config: &ClientConfig, handler: &Arc<dyn Handler>) -> Result<Opened, ConnectError> {
    let connection = websocket::connect(url).await?;
    let (inbound_tx, mut inbound) = mpsc::channel(EVENT_QUEUE);
    let (session, task) = session::start(connection, Arc::clone(handler), inbound_tx);
    let first = tokio::time::timeout(config.snapshot_timeout, async {
        loop {
            match inbound.recv().await {
                Some(Message::Snapshot(snapshot)) => return Some(snapshot),
                Some(other) => debug!(?other, "message before the snapshot ignored"),
                None => return None,
            }
        }
    })
    .await;
    match first {
        Ok(Some(snapshot)) => Ok((session, task, inbound, snapshot)),
        Ok(None) => {
            task.abort();
            Err(ConnectError::Transport(TransportError::Closed))
        }
        Err(_) => {
            task.abort();
            Err(ConnectError::NoSnapshot(config.snapshot_timeout))
        }
    }
}

/// Keeps the mirror up to date and the connection up, until the client is dropped.
async fn maintain(
    inner: Weak<Inner>,
    task: tokio::task::JoinHandle<()>,
    mut inbound: mpsc::Receiver<Message>,
    events: mpsc::Sender<ClientEvent>,
    mut stop: oneshot::Receiver<()>,
) {
    // However this returns (stopped, or the client dropped while a message
    // was coming in), the connection closes with it.
    let mut _connection = session::AbortOnDrop(task);
    loop {
        // Connected: apply what the server sends.
        loop {
            let message = tokio::select! {
                _ = &mut stop => return,
                message = inbound.recv() => message,
            };
            let Some(message) = message else { break };
            let Some(inner) = inner.upgrade() else { return };
            for event in apply(&inner, message) {
                let _ = events.try_send(event);
            }
        }
        // Disconnected: reconnect with backoff, then reconcile.
        let Some(strong) = inner.upgrade() else { return };
        lock(&strong.session).take();
        let (url, config, handler) = (strong.url.clone(), strong.config.clone(), Arc::clone(&strong.handler));
        drop(strong);
        let _ = events.try_send(ClientEvent::Disconnected);
        let mut wait = config.reconnect_min;
        let opened = loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(wait) => {}
            }
            match open(&url, &config, &handler).await {
                Ok(opened) => break opened,
                Err(error) => {
                    debug!(%error, retry_in = ?wait, "reconnecting failed");
                    wait = (wait * 2).min(config.reconnect_max);
                }
            }
        };
        let (session, new_task, new_inbound, snapshot) = opened;
        let Some(strong) = inner.upgrade() else { return };
        *lock(&strong.session) = Some(session);
        for event in reconcile(&strong, snapshot) {
            let _ = events.try_send(event);
        }
        info!(url = %strong.url, "ROPE client reconnected");
        let _ = events.try_send(ClientEvent::Reconnected);
        (_connection, inbound) = (session::AbortOnDrop(new_task), new_inbound);
    }
}

/// Applies one server message to the mirror; returns what the app should hear.
fn apply(inner: &Inner, message: Message) -> Vec<ClientEvent> {
    match message {
        Message::Event(event) => {
            let mut mirror = lock(&inner.mirror);
            match event.name {
                EventKind::Created | EventKind::Changed => {
                    let state = ObjectState {
                        id: event.object.clone(),
                        object_type: event.object_type.clone(),
                        state: event.data.clone(),
                    };
                    mirror.insert(event.object.clone(), state);
                }
                EventKind::Closed => {
                    mirror.remove(&event.object);
                }
                EventKind::Named(_) => {}
            }
            vec![ClientEvent::Object(event)]
        }
        Message::Snapshot(snapshot) => reconcile(inner, snapshot),
        Message::Notification(notification) => vec![ClientEvent::Notification(notification)],
        Message::Request(_) | Message::Response(_) => Vec::new(),
    }
}

/// Replaces the mirror with `snapshot` and reports the differences as events.
fn reconcile(inner: &Inner, snapshot: Snapshot) -> Vec<ClientEvent> {
    let fresh: BTreeMap<ObjectId, ObjectState> =
        snapshot.objects.into_iter().map(|object| (object.id.clone(), object)).collect();
    let mut mirror = lock(&inner.mirror);
    let mut events = Vec::new();
    for (id, old) in mirror.iter() {
        if !fresh.contains_key(id) {
            events.push(ClientEvent::Object(Event {
                object: id.clone(),
                object_type: old.object_type.clone(),
                name: EventKind::Closed,
                data: Value::Null,
            }));
        }
    }
    for (id, new) in &fresh {
        let name = match mirror.get(id) {
            None => EventKind::Created,
            Some(old) if old != new => EventKind::Changed,
            Some(_) => continue,
        };
        events.push(ClientEvent::Object(Event {
            object: id.clone(),
            object_type: new.object_type.clone(),
            name,
            data: new.state.clone(),
        }));
    }
    *mirror = fresh;
    events
}
