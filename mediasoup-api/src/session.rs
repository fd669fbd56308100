//! One app connection's mediasoup objects: who made them (the connection),
//! what each lives under (a tree: worker → router → transport → producer …),
//! how many it may hold, and their end (closing an object closes its subtree;
//! the connection ending closes everything).
//!
//! Every object is a ROPE object of the connection's [`Server`]; its calls come
//! to an [`ObjectHandler`], which finds the object and hands the call to the
//! module of its type.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use event_listener_primitives::HandlerId;
use futures::future::BoxFuture;
use mafalda_media::mediasoup::prelude::{
    ActiveSpeakerObserver, AudioLevelObserver, Consumer, DataConsumer, DataProducer, DirectTransport, PipeTransport,
    PlainTransport, Producer, Router, WebRtcServer, WebRtcTransport,
};
use mafalda_media::mediasoup::worker::Worker;
use mafalda_rope::{Handler, Request, RpcError, Server, Value};
use serde::Serialize;
use tracing::debug;

use crate::error::ApiError;
use crate::host::Host;
use crate::room::{RoomNode, RoomObject};
use crate::wire::to_value;

/// A mediasoup object held for an app.
#[derive(Clone)]
pub(crate) enum Object {
    Worker(Worker),
    WebRtcServer(WebRtcServer),
    Router(Router),
    WebRtcTransport(WebRtcTransport),
    PlainTransport(PlainTransport),
    PipeTransport(PipeTransport),
    DirectTransport(DirectTransport),
    Producer(Producer),
    Consumer(Consumer),
    DataProducer(DataProducer),
    DataConsumer(DataConsumer),
    ActiveSpeakerObserver(ActiveSpeakerObserver),
    AudioLevelObserver(AudioLevelObserver),
    /// A room the connection joined (see `room`).
    Room(Arc<RoomObject>),
}

impl Object {
    /// The ROPE object type (`PROTOCOL.md`).
    pub(crate) fn object_type(&self) -> &'static str {
        match self {
            Self::Worker(_) => "worker",
            Self::WebRtcServer(_) => "webRtcServer",
            Self::Router(_) => "router",
            Self::WebRtcTransport(_) => "webRtcTransport",
            Self::PlainTransport(_) => "plainTransport",
            Self::PipeTransport(_) => "pipeTransport",
            Self::DirectTransport(_) => "directTransport",
            Self::Producer(_) => "producer",
            Self::Consumer(_) => "consumer",
            Self::DataProducer(_) => "dataProducer",
            Self::DataConsumer(_) => "dataConsumer",
            Self::ActiveSpeakerObserver(_) => "activeSpeakerObserver",
            Self::AudioLevelObserver(_) => "audioLevelObserver",
            Self::Room(_) => "room",
        }
    }
}

/// What a connection's token lets it do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grants {
    /// May create and control workers.
    pub workers: bool,
    /// May name files on the node (DTLS certificate and key).
    pub files: bool,
}

struct Entry {
    object: Object,
    parent: Option<String>,
    /// Other objects whose closing closes this one too (a WebRTC transport
    /// lives under its router and under the WebRTC server it listens on).
    also_under: Vec<String>,
    /// Event subscriptions; dropping them unsubscribes.
    _handlers: Vec<HandlerId>,
    /// Dropped when the object is forgotten (a room producer tells its room).
    _guards: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

#[derive(Default)]
struct Objects {
    entries: HashMap<String, Entry>,
    closed: bool,
}

struct Inner {
    host: Arc<Host>,
    server: Server,
    grants: Grants,
    objects: Mutex<Objects>,
    /// The node's rooms, if it serves them.
    rooms: std::sync::OnceLock<Arc<dyn RoomNode>>,
}

/// One app connection's mediasoup objects. Cheap to clone.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("objects", &self.lock().entries.len()).finish()
    }
}

impl Session {
    /// The mediasoup objects of the connection served by `server`.
    pub fn new(host: Arc<Host>, server: Server, grants: Grants) -> Self {
        Self {
            inner: Arc::new(Inner {
                host,
                server,
                grants,
                objects: Mutex::default(),
                rooms: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Lets the connection join `rooms` (`room.join`); once, before any call.
    pub fn serve_rooms(&self, rooms: Arc<dyn RoomNode>) {
        let _ = self.inner.rooms.set(rooms);
    }

    pub(crate) fn rooms(&self) -> Option<Arc<dyn RoomNode>> {
        self.inner.rooms.get().cloned()
    }

    fn lock(&self) -> MutexGuard<'_, Objects> {
        self.inner.objects.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn host(&self) -> &Arc<Host> {
        &self.inner.host
    }

    pub(crate) fn grants(&self) -> Grants {
        self.inner.grants
    }

    /// Whether `method` (a call without a target) is one of this module's.
    pub fn handles(method: &str) -> bool {
        method.starts_with("mediasoup.") || method == "room.join"
    }

    /// Handles a call without a target (`mediasoup.*`, `room.join`).
    pub async fn call_root(&self, method: &str, params: &Value) -> Result<Value, RpcError> {
        if method == "room.join" {
            return Ok(crate::room::join(self, params).await?);
        }
        Ok(crate::worker::call_root(self, method, params).await?)
    }

    /// Closes everything the connection made; later creations are refused.
    pub fn close_all(&self) {
        let dropped: Vec<Entry> = {
            let mut objects = self.lock();
            objects.closed = true;
            objects.entries.drain().map(|(_, entry)| entry).collect()
        };
        for entry in &dropped {
            if let Some(id) = object_id(&entry.object) {
                let _ = self.inner.server.close(&id);
            }
        }
        debug!(objects = dropped.len(), "app session closed its mediasoup objects");
        drop(dropped);
    }

    /// How many objects the connection holds.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the connection holds no objects.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn weak(&self) -> WeakSession {
        WeakSession(Arc::downgrade(&self.inner))
    }

    /// The object `id`, if this connection holds it.
    pub(crate) fn get(&self, id: &str) -> Result<Object, ApiError> {
        self.lock().entries.get(id).map(|entry| entry.object.clone()).ok_or_else(|| ApiError::NotFound(id.to_owned()))
    }

    /// How many objects of `object_type` the connection holds.
    pub(crate) fn count_of(&self, object_type: &str) -> usize {
        self.lock().entries.values().filter(|entry| entry.object.object_type() == object_type).count()
    }

    /// The room transport `transport_id` was made in, if it was made in one.
    pub(crate) fn room_of(&self, transport_id: &str) -> Option<Arc<RoomObject>> {
        let objects = self.lock();
        let parent = objects.entries.get(transport_id)?.parent.as_ref()?;
        match &objects.entries.get(parent)?.object {
            Object::Room(room) => Some(Arc::clone(room)),
            _ => None,
        }
    }

    /// Refuses when one more object (of `object_type`) would pass the caps.
    pub(crate) fn check_cap(&self, object_type: &str) -> Result<(), ApiError> {
        let objects = self.lock();
        check_cap(&objects, &self.inner.host, object_type)
    }

    /// Records a new object under `parent` and makes it a ROPE object with
    /// `state`. Refused (and the object dropped, which closes it) past the caps
    /// or once the session closed.
    /// The ROPE id for a new object with mediasoup id `id` under `parent`:
    /// its mediasoup id, unless the connection already holds that id (a pipe
    /// producer keeps its producer's id, in another router), then
    /// `<id>@<parent>`. The answer creating it then carries it as `objectId`.
    pub(crate) fn object_id_for(&self, id: &str, parent: &str) -> String {
        if self.lock().entries.contains_key(id) { format!("{id}@{parent}") } else { id.to_owned() }
    }

    pub(crate) fn insert(
        &self,
        id: &str,
        parent: Option<&str>,
        object: Object,
        state: &impl Serialize,
        handlers: Vec<HandlerId>,
    ) -> Result<(), ApiError> {
        let object_type = object.object_type();
        let state = to_value(state)?;
        {
            let mut objects = self.lock();
            if objects.closed {
                return Err(ApiError::InvalidState("the connection is closing".into()));
            }
            if let Some(parent) = parent
                && !objects.entries.contains_key(parent)
            {
                return Err(ApiError::InvalidState(format!("{parent} closed")));
            }
            // Never replace an object: the one replaced would be dropped (so
            // closed, calling back here) under the lock. ROPE ids are unique
            // per connection (see `object_id_for`).
            if objects.entries.contains_key(id) {
                drop(objects);
                // Unsubscribed first: the refused object's close handlers name
                // the id of the object this connection keeps.
                drop(handlers);
                drop(object);
                return Err(ApiError::Mediasoup(format!("this connection already holds an object with id {id}")));
            }
            check_cap(&objects, &self.inner.host, object_type)?;
            objects.entries.insert(
                id.to_owned(),
                Entry {
                    object,
                    parent: parent.map(str::to_owned),
                    also_under: Vec::new(),
                    _handlers: handlers,
                    _guards: Vec::new(),
                },
            );
        }
        let handler = Arc::new(ObjectHandler { session: self.weak(), id: id.to_owned() });
        if let Err(error) = self.inner.server.create(id.to_owned(), object_type, state, handler) {
            self.forget(id);
            return Err(ApiError::Mediasoup(error.message));
        }
        Ok(())
    }

    /// Replaces an object's ROPE state (no event if it is gone).
    pub(crate) fn set_state(&self, id: &str, state: &impl Serialize) {
        if let Ok(state) = to_value(state) {
            let _ = self.inner.server.set_state(id, state);
        }
    }

    /// Sends one of mediasoup's events of object `id` (see `PROTOCOL.md`).
    pub(crate) fn emit(&self, id: &str, name: &str, args: Vec<serde_json::Value>) {
        if let Ok(data) = to_value(&args) {
            let _ = self.inner.server.emit(id, name, data);
        }
    }

    /// Closes object `id` and everything under it; a no-op when it is gone.
    pub(crate) fn forget(&self, id: &str) {
        self.forget_with(id, None);
    }

    /// Like [`Session::forget`]; with `reason`, `id`'s `closed` event says it.
    fn forget_with(&self, id: &str, reason: Option<&str>) {
        let root = id;
        let dropped = {
            let mut objects = self.lock();
            let mut doomed = vec![id.to_owned()];
            let mut index = 0;
            while index < doomed.len() {
                let parent = doomed[index].clone();
                doomed.extend(
                    objects
                        .entries
                        .iter()
                        .filter(|(child, entry)| {
                            (entry.parent.as_deref() == Some(parent.as_str()) || entry.also_under.contains(&parent))
                                && !doomed.contains(child)
                        })
                        .map(|(child, _)| child.clone())
                        .collect::<Vec<_>>(),
                );
                index += 1;
            }
            // Children first, so a client hears of them before their parent.
            doomed.reverse();
            doomed.into_iter().filter_map(|id| objects.entries.remove(&id).map(|entry| (id, entry))).collect::<Vec<_>>()
        };
        for (id, _) in &dropped {
            let _ = match reason {
                Some(reason) if id == root => self.inner.server.close_because(id, reason),
                _ => self.inner.server.close(id),
            };
        }
        // Dropped outside the lock: dropping a mediasoup handle closes the
        // object, whose close handlers call back here.
        drop(dropped);
    }

    /// Keeps `guard` until object `id` is forgotten (dropped at once if it is gone).
    pub(crate) fn guard(&self, id: &str, guard: Box<dyn std::any::Any + Send + Sync>) {
        let mut objects = self.lock();
        match objects.entries.get_mut(id) {
            Some(entry) => entry._guards.push(guard),
            None => {
                drop(objects);
                drop(guard);
            }
        }
    }

    /// Makes object `id` close also when `other` closes (besides its parent).
    /// Refused when either is gone.
    pub(crate) fn add_parent(&self, id: &str, other: &str) -> Result<(), ApiError> {
        let mut objects = self.lock();
        if !objects.entries.contains_key(other) {
            return Err(ApiError::InvalidState(format!("{other} closed")));
        }
        let entry = objects.entries.get_mut(id).ok_or_else(|| ApiError::InvalidState(format!("{id} closed")))?;
        entry.also_under.push(other.to_owned());
        Ok(())
    }

    /// The ROPE states of the objects under `parent` (its children and those
    /// that also close with it, such as a WebRTC server's transports).
    pub(crate) fn states_under(&self, parent: &str) -> Vec<serde_json::Value> {
        let ids: Vec<String> = self
            .lock()
            .entries
            .iter()
            .filter(|(_, entry)| {
                entry.parent.as_deref() == Some(parent) || entry.also_under.iter().any(|other| other == parent)
            })
            .map(|(id, _)| id.clone())
            .collect();
        self.inner
            .server
            .snapshot()
            .objects
            .into_iter()
            .filter(|object| ids.contains(&object.id))
            .filter_map(|object| object.state.deserialized().ok())
            .collect()
    }
}

fn check_cap(objects: &Objects, host: &Host, object_type: &str) -> Result<(), ApiError> {
    let limits = host.limits();
    if objects.entries.len() >= limits.objects {
        return Err(ApiError::LimitReached(format!(
            "this connection holds {} mediasoup objects, the most it may",
            limits.objects
        )));
    }
    if object_type == "worker" {
        let workers = objects.entries.values().filter(|entry| matches!(entry.object, Object::Worker(_))).count();
        if workers >= limits.workers {
            return Err(ApiError::LimitReached(format!(
                "this connection holds {workers} workers, the most it may ({})",
                limits.workers
            )));
        }
    }
    Ok(())
}

fn object_id(object: &Object) -> Option<String> {
    Some(match object {
        Object::Worker(worker) => worker.id().to_string(),
        Object::WebRtcServer(server) => server.id().to_string(),
        Object::Router(router) => router.id().to_string(),
        Object::WebRtcTransport(transport) => mafalda_media::mediasoup::prelude::Transport::id(transport).to_string(),
        Object::PlainTransport(transport) => mafalda_media::mediasoup::prelude::Transport::id(transport).to_string(),
        Object::PipeTransport(transport) => mafalda_media::mediasoup::prelude::Transport::id(transport).to_string(),
        Object::DirectTransport(transport) => mafalda_media::mediasoup::prelude::Transport::id(transport).to_string(),
        Object::Producer(producer) => producer.id().to_string(),
        Object::Consumer(consumer) => consumer.id().to_string(),
        Object::DataProducer(producer) => producer.id().to_string(),
        Object::DataConsumer(consumer) => consumer.id().to_string(),
        Object::ActiveSpeakerObserver(observer) => {
            mafalda_media::mediasoup::prelude::RtpObserver::id(observer).to_string()
        }
        Object::AudioLevelObserver(observer) => {
            mafalda_media::mediasoup::prelude::RtpObserver::id(observer).to_string()
        }
        Object::Room(room) => room.id.clone(),
    })
}

/// A session that event handlers may hold without keeping it alive.
#[derive(Clone)]
pub(crate) struct WeakSession(Weak<Inner>);

impl WeakSession {
    pub(crate) fn upgrade(&self) -> Option<Session> {
        self.0.upgrade().map(|inner| Session { inner })
    }

    /// Sends event `name` of object `id`, if the session still exists.
    pub(crate) fn emit(&self, id: &str, name: &str, args: Vec<serde_json::Value>) {
        if let Some(session) = self.upgrade() {
            session.emit(id, name, args);
        }
    }

    /// Closes object `id` (and its subtree), if the session still exists.
    pub(crate) fn forget(&self, id: &str) {
        if let Some(session) = self.upgrade() {
            session.forget(id);
        }
    }

    /// Like [`WeakSession::forget`]; `id`'s `closed` event says `reason`.
    pub(crate) fn forget_because(&self, id: &str, reason: &str) {
        if let Some(session) = self.upgrade() {
            session.forget_with(id, Some(reason));
        }
    }

    /// Replaces object `id`'s state, if the session still exists.
    pub(crate) fn set_state(&self, id: &str, state: &impl Serialize) {
        if let Some(session) = self.upgrade() {
            session.set_state(id, state);
        }
    }
}

/// Takes the calls made on one object.
struct ObjectHandler {
    session: WeakSession,
    id: String,
}

impl Handler for ObjectHandler {
    fn call(&self, request: Request) -> BoxFuture<'static, Result<Value, RpcError>> {
        let (session, id) = (self.session.upgrade(), self.id.clone());
        Box::pin(async move {
            let session = session.ok_or_else(|| ApiError::InvalidState("the connection is closing".into()))?;
            let object = session.get(&id)?;
            if request.method == "close" {
                // The crate closes an object when its last handle drops: this
                // one must go before waiting for the worker to forget it.
                drop(object);
                session.close_confirmed(&id).await;
                return Ok(Value::Null);
            }
            Ok(dispatch(&session, &id, object, &request.method, &request.params).await?)
        })
    }
}

/// Hands a call on object `id` to the module of its type.
async fn dispatch(
    session: &Session,
    id: &str,
    object: Object,
    method: &str,
    params: &Value,
) -> Result<Value, ApiError> {
    match object {
        Object::Worker(worker) => crate::worker::call(session, id, &worker, method, params).await,
        Object::WebRtcServer(server) => crate::worker::call_webrtc_server(session, id, &server, method).await,
        Object::Router(router) => crate::router::call(session, id, &router, method, params).await,
        Object::WebRtcTransport(_)
        | Object::PlainTransport(_)
        | Object::PipeTransport(_)
        | Object::DirectTransport(_) => crate::transport::call(session, id, &object, method, params).await,
        Object::Producer(producer) => crate::producer::call_producer(session, id, &producer, method, params).await,
        Object::Consumer(consumer) => crate::consumer::call_consumer(session, id, &consumer, method, params).await,
        Object::DataProducer(producer) => crate::data::call_producer(session, id, &producer, method, params).await,
        Object::DataConsumer(consumer) => crate::data::call_consumer(session, id, &consumer, method, params).await,
        Object::ActiveSpeakerObserver(_) | Object::AudioLevelObserver(_) => {
            crate::observer::call(session, id, &object, method, params).await
        }
        Object::Room(room) => crate::room::call(session, id, &room, method, params).await,
    }
}

impl Session {
    /// `close` on object `id`: closes it and its subtree, and answers once
    /// its parent no longer lists it. The crate tells the worker from a task
    /// of its own, so without this an app's next call (its router's `dump`,
    /// as mediasoup's tests do right after a close) could still see it.
    async fn close_confirmed(&self, id: &str) {
        let parent = {
            let objects = self.lock();
            objects
                .entries
                .get(id)
                .and_then(|entry| entry.parent.clone())
                .and_then(|parent| objects.entries.get(&parent).map(|entry| (parent.clone(), entry.object.clone())))
        };
        self.forget(id);
        let Some((parent, object)) = parent else { return };
        let mediasoup_id = id.split('@').next().unwrap_or(id);
        let deadline = tokio::time::Instant::now() + CLOSE_CONFIRM_DEADLINE;
        let mut pause = std::time::Duration::from_millis(2);
        while tokio::time::Instant::now() < deadline {
            match dispatch(self, &parent, object.clone(), "dump", &Value::Null).await {
                Ok(dump) if dump_mentions(&dump, mediasoup_id) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(50));
                }
                _ => return,
            }
        }
        debug!(object = id, "the worker still lists a closed object");
    }
}

/// How long a close waits for the parent to forget the object. The worker
/// forgets it within milliseconds on an idle machine, but the crate's close
/// request runs on the worker's own executor thread, which a loaded machine
/// (CI on two cores) can starve for hundreds of milliseconds.
const CLOSE_CONFIRM_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3);

/// Whether a dump names `id` anywhere.
fn dump_mentions(dump: &Value, id: &str) -> bool {
    let json: serde_json::Value = dump.deserialized().unwrap_or_default();
    json.to_string().contains(id)
}
