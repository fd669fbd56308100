//! The ROPE server: a registry of objects whose methods clients call, a snapshot
//! for each client that connects, and every creation, close and state change
//! broadcast to every connected client.
//!
//! Consistency rule: a client subscribes to events and takes its snapshot under
//! the registry lock, and every change is broadcast under that same lock, so each
//! client sees exactly the snapshot followed by every later change, in order. A
//! client too slow to keep up with the broadcast is sent a fresh snapshot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{broadcast, mpsc};
use tracing::debug;

use crate::error::{ErrorCode, RpcError};
use crate::message::{Event, EventKind, Message, ObjectId, ObjectState, Request, Snapshot, Value};
pub use crate::session::Handler;
use crate::session::{self, CallError, SessionHandle};
use crate::transport::Connection;

/// Events waiting for a slow client before it is resynchronised with a snapshot.
const EVENT_BUFFER: usize = 1024;

struct Entry {
    object_type: String,
    state: Value,
    handler: Arc<dyn Handler>,
}

#[derive(Default)]
struct Registry {
    order: Vec<ObjectId>,
    objects: HashMap<ObjectId, Entry>,
}

struct Inner {
    registry: Mutex<Registry>,
    events: broadcast::Sender<Event>,
    root: Arc<dyn Handler>,
}

/// A ROPE server. Cheap to clone; all clones share the registry.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("objects", &self.lock().order.len()).finish()
    }
}

impl Server {
    /// A server whose own methods (calls without a target) go to `root`.
    pub fn new(root: Arc<dyn Handler>) -> Self {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Self { inner: Arc::new(Inner { registry: Mutex::default(), events, root }) }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.inner.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds an object; its methods go to `handler`. Every client is told.
    pub fn create(
        &self,
        id: impl Into<ObjectId>,
        object_type: impl Into<String>,
        state: Value,
        handler: Arc<dyn Handler>,
    ) -> Result<(), RpcError> {
        let id = id.into();
        let object_type = object_type.into();
        let mut registry = self.lock();
        if registry.objects.contains_key(&id) {
            return Err(RpcError::new(ErrorCode::InvalidParams, format!("object {id} already exists")));
        }
        registry.order.push(id.clone());
        registry.objects.insert(id.clone(), Entry { object_type: object_type.clone(), state: state.clone(), handler });
        let _ = self.inner.events.send(Event { object: id, object_type, name: EventKind::Created, data: state });
        Ok(())
    }

    /// Replaces an object's state. Every client is told.
    pub fn set_state(&self, id: &str, state: Value) -> Result<(), RpcError> {
        let mut registry = self.lock();
        let entry = registry.objects.get_mut(id).ok_or_else(|| not_found(id))?;
        entry.state = state.clone();
        let event = Event {
            object: id.to_owned(),
            object_type: entry.object_type.clone(),
            name: EventKind::Changed,
            data: state,
        };
        let _ = self.inner.events.send(event);
        Ok(())
    }

    /// Sends one of an object's own events (`name` is neither `created`,
    /// `changed` nor `closed`; `data` its arguments) to every client. The
    /// object's state is unchanged.
    pub fn emit(&self, id: &str, name: &str, data: Value) -> Result<(), RpcError> {
        if matches!(name, "created" | "changed" | "closed") || name.is_empty() || name.len() > 256 {
            return Err(RpcError::new(ErrorCode::InvalidParams, format!("{name:?} is not an event name of its own")));
        }
        let registry = self.lock();
        let entry = registry.objects.get(id).ok_or_else(|| not_found(id))?;
        let event = Event {
            object: id.to_owned(),
            object_type: entry.object_type.clone(),
            name: EventKind::Named(name.to_owned()),
            data,
        };
        let _ = self.inner.events.send(event);
        Ok(())
    }

    /// Removes an object. Every client is told.
    pub fn close(&self, id: &str) -> Result<(), RpcError> {
        self.close_with(id, Value::Null)
    }

    /// Like [`Server::close`], telling clients why: the `closed` event's data
    /// is `{reason}`.
    pub fn close_because(&self, id: &str, reason: &str) -> Result<(), RpcError> {
        let data = Value::Map(vec![(Value::Text("reason".into()), Value::Text(reason.to_owned()))]);
        self.close_with(id, data)
    }

    fn close_with(&self, id: &str, data: Value) -> Result<(), RpcError> {
        let handler = {
            let mut registry = self.lock();
            let entry = registry.objects.remove(id).ok_or_else(|| not_found(id))?;
            registry.order.retain(|existing| existing != id);
            let event = Event { object: id.to_owned(), object_type: entry.object_type, name: EventKind::Closed, data };
            let _ = self.inner.events.send(event);
            entry.handler
        };
        // Dropped outside the lock: a handler's drop may close other objects.
        drop(handler);
        Ok(())
    }

    /// Every event from now on, as clients hear them (for relaying a server's
    /// objects elsewhere). A receiver that falls behind by more than the
    /// buffer gets `Lagged` and should take a [`Server::snapshot`].
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Every object, in creation order.
    pub fn snapshot(&self) -> Snapshot {
        snapshot_of(&self.lock())
    }

    /// Handles one call: the server's own methods, or the target object's.
    pub async fn dispatch(&self, request: Request) -> Result<Value, RpcError> {
        let handler = match &request.target {
            None => Arc::clone(&self.inner.root),
            Some(target) => {
                let registry = self.lock();
                Arc::clone(&registry.objects.get(target).ok_or_else(|| not_found(target))?.handler)
            }
        };
        handler.call(request).await
    }

    /// Serves one client until it disconnects: snapshot first, then events, while
    /// answering its calls.
    pub async fn serve(&self, connection: Connection) {
        let (_, task) = self.accept(connection);
        let _ = task.await;
    }

    /// Starts serving one client like [`Server::serve`]; returns a [`Peer`] for
    /// calling the client (ROPE calls go both ways) and the task serving it.
    /// Aborting that task drops the connection.
    pub fn accept(&self, connection: Connection) -> (Peer, tokio::task::JoinHandle<()>) {
        let (inbound_tx, inbound_rx) = mpsc::channel(16);
        let dispatcher: Arc<dyn Handler> = Arc::new(Dispatch(self.clone()));
        let (session, session_task) = session::start(connection, dispatcher, inbound_tx);
        let peer = Peer { session: session.clone() };
        let server = self.clone();
        let task = tokio::spawn(async move {
            // Aborts the connection's own task however this one ends.
            let _session_task = session::AbortOnDrop(session_task);
            server.feed(&session, inbound_rx).await;
            drop(session);
        });
        (peer, task)
    }

    /// Sends the snapshot, then every event, until the session ends.
    async fn feed(&self, session: &SessionHandle, mut inbound: mpsc::Receiver<Message>) {
        let (mut events, snapshot) = {
            let registry = self.lock();
            (self.inner.events.subscribe(), snapshot_of(&registry))
        };
        if session.send(Message::Snapshot(snapshot)).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => {
                        if session.send(Message::Event(event)).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        debug!(missed, "client fell behind; sending a fresh snapshot");
                        let snapshot = {
                            let registry = self.lock();
                            events = self.inner.events.subscribe();
                            snapshot_of(&registry)
                        };
                        if session.send(Message::Snapshot(snapshot)).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                // The server has no use for clients' notifications; the channel
                // closing tells that the session ended.
                message = inbound.recv() => if message.is_none() { return },
            }
        }
    }
}

/// A connected client, for calling it from the server side.
#[derive(Debug, Clone)]
pub struct Peer {
    session: SessionHandle,
}

impl Peer {
    /// Calls `method` on the client and waits up to `timeout` for its answer.
    pub async fn call(
        &self,
        method: &str,
        target: Option<ObjectId>,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        self.session.call(method, target, params, timeout).await
    }

    /// Whether the client is still connected.
    pub fn is_connected(&self) -> bool {
        self.session.is_connected()
    }
}

struct Dispatch(Server);

impl Handler for Dispatch {
    fn call(&self, request: Request) -> BoxFuture<'static, Result<Value, RpcError>> {
        let server = self.0.clone();
        Box::pin(async move { server.dispatch(request).await })
    }
}

fn snapshot_of(registry: &Registry) -> Snapshot {
    let objects = registry
        .order
        .iter()
        .filter_map(|id| {
            let entry = registry.objects.get(id)?;
            Some(ObjectState { id: id.clone(), object_type: entry.object_type.clone(), state: entry.state.clone() })
        })
        .collect();
    Snapshot { objects }
}

fn not_found(id: &str) -> RpcError {
    RpcError::new(ErrorCode::ObjectNotFound, format!("no object {id}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::NoMethods;

    /// Closes another object when dropped, as a media object whose close
    /// cascades to its children does.
    struct ClosesOnDrop {
        server: Mutex<Option<Server>>,
        other: &'static str,
    }

    impl Handler for ClosesOnDrop {
        fn call(&self, request: Request) -> BoxFuture<'static, Result<Value, RpcError>> {
            NoMethods.call(request)
        }
    }

    impl Drop for ClosesOnDrop {
        fn drop(&mut self) {
            if let Some(server) = self.server.lock().unwrap_or_else(PoisonError::into_inner).take() {
                let _ = server.close(self.other);
            }
        }
    }

    #[test]
    fn a_handler_may_close_objects_while_being_dropped() {
        let server = Server::new(Arc::new(NoMethods));
        server.create("child", "t", Value::Null, Arc::new(NoMethods)).expect("child");
        let parent = ClosesOnDrop { server: Mutex::new(Some(server.clone())), other: "child" };
        server.create("parent", "t", Value::Null, Arc::new(parent)).expect("parent");
        server.close("parent").expect("close parent");
        assert!(server.snapshot().objects.is_empty(), "the child was closed by the parent's drop");
    }
}
