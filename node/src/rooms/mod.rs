//! Rooms that span nodes (Mafalda-horizontal): the node's side of the
//! `mediasoup-api` room object ([`RoomNode`], [`RoomMembership`]).
//!
//! - A producer made in room `R` at this node is published as the stream
//!   `R:<producerId>` (origin here, one track): consuming it at another node
//!   is acquiring that stream (find, rank, pipe, relays, healing, signed
//!   provenance), then a consumer on the room transport's router. Producer
//!   ids are so the same at every node; the local copy's mediasoup id is the
//!   node's business.
//! - Membership is kept among the member nodes themselves (`sync`): each
//!   node tells the others what its apps produce, and pulls theirs on
//!   joining; they meet through a Kademlia provider record of the room.
//! - Within a node a room is a spanning router of its own
//!   ([`Inner::router_of`]): one mediasoup router per worker it uses, placed
//!   by the packing policy, a producer piped to another worker only when a
//!   consumer lands there. Copies of the room's producers piped in from
//!   other nodes land in it too; it goes once the room has no app here and
//!   no stream of it is held.
//!
//! Pause and resume do not travel through pipes: each member node applies
//! what the room says to its copy of a producer (`reconcile`).

pub(crate) mod state;
pub(crate) mod sync;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use futures::future::BoxFuture;
use mafalda_media::SpanningRouter;
use mafalda_media::mediasoup::prelude::{Producer, ProducerId, Router, RtpCapabilities};
use mafalda_mediasoup_api::{ApiError, RoomMembership, RoomNode, RoomPlace, RoomProducer, RoomView};
use mafalda_swarm::PeerId;
use tokio::sync::watch;
use tracing::{debug, info};

use self::state::{CodecEntry, MAX_APP_DATA_BYTES, MAX_PRODUCERS_PER_NODE, ProducerEntry, RoomState};
use crate::NodeError;
use crate::inner::{Inner, lock};
use crate::streams::{Role, StreamRef, validate_stream_id};

/// Most rooms a node is in at once.
pub const MAX_ROOMS: usize = 1024;
/// Longest room id: a room's producers are streams `ROOM:UUID`.
pub const MAX_ROOM_ID_LEN: usize = mafalda_swarm::MAX_STREAM_ID_LEN - 37;

/// One room this node is in (it has apps in it).
struct RoomHere {
    state: RoomState,
    view: watch::Sender<RoomView>,
    /// App connections in the room here.
    apps: usize,
    rtp_capabilities: serde_json::Value,
}

/// The rooms this node is in.
pub(crate) struct Rooms {
    rooms: Mutex<HashMap<String, RoomHere>>,
    /// Each room's spanning router here (also for rooms only relayed here).
    routers: Mutex<HashMap<String, SpanningRouter>>,
    /// The last incarnation given to a joined room.
    incarnation: std::sync::atomic::AtomicU64,
}

impl Rooms {
    pub(crate) fn new() -> Self {
        Self { rooms: Mutex::default(), routers: Mutex::default(), incarnation: std::sync::atomic::AtomicU64::new(0) }
    }

    /// The rooms this node is in.
    pub(crate) fn count(&self) -> usize {
        lock(&self.rooms).len()
    }

    /// The incarnation of a room joined now: the time in ms, and always more
    /// than any given before, so that the entries of a node that left a room
    /// (or restarted) and joined again beat the tombstones of its last stay.
    fn next_incarnation(&self) -> u64 {
        let now = crate::streams::version_now();
        let previous = self
            .incarnation
            .fetch_update(std::sync::atomic::Ordering::AcqRel, std::sync::atomic::Ordering::Acquire, |last| {
                Some(now.max(last + 1))
            })
            .unwrap_or(now);
        now.max(previous + 1)
    }
}

/// The stream a room producer is published as.
pub(crate) fn producer_stream(room: &str, producer: &str) -> String {
    format!("{room}:{producer}")
}

/// The room and producer of a room producer's stream, if it is one.
fn parse_producer_stream(stream: &str) -> Option<(&str, &str)> {
    let (room, producer) = stream.rsplit_once(':')?;
    (producer.len() == 36 && uuid_like(producer)).then_some((room, producer))
}

fn uuid_like(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// Checks a room id as apps and peers give it.
pub(crate) fn validate_room_id(room: &str) -> Result<(), NodeError> {
    validate_stream_id(room)?;
    if room.len() > MAX_ROOM_ID_LEN {
        return Err(NodeError::InvalidInput(format!("a room id has at most {MAX_ROOM_ID_LEN} characters")));
    }
    Ok(())
}

impl Inner {
    /// The spanning router `stream` lives in here: its room's, for a room
    /// producer's stream (made on first use), else the node's own.
    pub(crate) fn router_of(&self, stream: &str) -> SpanningRouter {
        match parse_producer_stream(stream) {
            Some((room, _)) => self.room_router(room),
            None => self.router.clone(),
        }
    }

    /// Room `room`'s spanning router here, made on first use.
    fn room_router(&self, room: &str) -> SpanningRouter {
        lock(&self.rooms.routers)
            .entry(room.to_owned())
            .or_insert_with(|| {
                SpanningRouter::new_lazy(self.media.clone(), format!("room:{room}"), crate::codecs::router_codecs())
            })
            .clone()
    }

    /// Room `room`'s spanning router, if there is one now.
    pub(crate) fn existing_room_router(&self, room: &str) -> Option<SpanningRouter> {
        lock(&self.rooms.routers).get(room).cloned()
    }

    /// Lets go of the spanning routers of rooms with no app here and no
    /// stream held (what is still on them keeps its own routers open).
    pub(crate) fn forget_idle_room_routers(&self) {
        let held: std::collections::HashSet<String> = lock(&self.streams)
            .keys()
            .filter_map(|stream| parse_producer_stream(stream).map(|(room, _)| room.to_owned()))
            .collect();
        let joined: std::collections::HashSet<String> = lock(&self.rooms.rooms).keys().cloned().collect();
        lock(&self.rooms.routers).retain(|room, _| held.contains(room) || joined.contains(room));
    }

    /// Runs `change` on room `room`'s state (if this node is in it), then
    /// sends its members' apps the new view.
    fn with_room<T>(&self, room: &str, change: impl FnOnce(&mut RoomState) -> T) -> Option<T> {
        let mut rooms = lock(&self.rooms.rooms);
        let here = rooms.get_mut(room)?;
        let result = change(&mut here.state);
        let view = view_of(self.swarm.peer_id(), here);
        here.view.send_if_modified(|old| {
            let changed = *old != view;
            *old = view;
            changed
        });
        Some(result)
    }

    /// Matches this node's copies of room `room`'s producers to the room:
    /// ends those the room no longer has, pauses and resumes the others as
    /// their producers did.
    pub(crate) fn reconcile_room(self: &Arc<Self>, room: &str) {
        let copies: Vec<(String, String, Producer)> = lock(&self.streams)
            .iter()
            .filter(|(_, local)| matches!(local.role, Role::Relay { .. }))
            .filter_map(|(stream, local)| {
                let (of, producer) = parse_producer_stream(stream)?;
                (of == room).then(|| (stream.clone(), producer.to_owned(), local.producers.first().cloned()))
            })
            .filter_map(|(stream, producer, copy)| Some((stream, producer, copy?)))
            .collect();
        let mut ended = Vec::new();
        let mut paused = Vec::new();
        {
            let rooms = lock(&self.rooms.rooms);
            let Some(here) = rooms.get(room) else { return };
            for (stream, producer, copy) in copies {
                match here.state.producer(&producer) {
                    None => ended.push(stream),
                    Some((_, entry)) if entry.paused != copy.paused() => paused.push((copy, entry.paused)),
                    Some(_) => {}
                }
            }
        }
        if ended.is_empty() && paused.is_empty() {
            return;
        }
        let inner = Arc::clone(self);
        self.spawn("reconcile room", async move {
            for stream in ended {
                info!(stream, "room producer gone: its copy here ends");
                inner.end_stream(&stream).await;
            }
            for (copy, pause) in paused {
                let result = if pause { copy.pause().await } else { copy.resume().await };
                if let Err(error) = result {
                    debug!(%error, "could not follow a room producer's pause");
                }
            }
        });
    }
}

/// The room as apps see it.
fn view_of(me: PeerId, here: &RoomHere) -> RoomView {
    let mut producers: Vec<RoomProducer> = here
        .state
        .producers()
        .map(|(node, producer)| RoomProducer {
            id: producer.id.clone(),
            kind: producer.kind,
            node: node.unwrap_or(me).to_string(),
            paused: producer.paused,
            app_data: producer.app_data.clone(),
        })
        .collect();
    producers.sort_by(|a, b| (&a.node, &a.id).cmp(&(&b.node, &b.id)));
    let mut nodes: Vec<String> = here.state.members().iter().map(ToString::to_string).collect();
    nodes.push(me.to_string());
    nodes.sort();
    RoomView { rtp_capabilities: here.rtp_capabilities.clone(), producers, nodes }
}

/// The node's [`RoomNode`]: what each app connection's rooms go through.
pub(crate) struct NodeRooms {
    pub(crate) inner: Weak<Inner>,
    /// The app connection, when it is this node's own (it may then make
    /// transports on other nodes); `None` for a session hosted for a peer.
    pub(crate) entry: Option<EntryLink>,
}

/// An app connection of this node, as its rooms reach other nodes through it.
#[derive(Clone)]
pub(crate) struct EntryLink {
    /// The connection's number (the session other nodes host for it).
    pub(crate) session: u64,
    /// Its ROPE server (where objects on other nodes are mirrored).
    pub(crate) server: mafalda_rope::Server,
}

impl RoomNode for NodeRooms {
    fn join(
        &self,
        room: String,
        _app_data: serde_json::Value,
    ) -> BoxFuture<'static, Result<Box<dyn RoomMembership>, ApiError>> {
        let (inner, entry) = (self.inner.clone(), self.entry.clone());
        Box::pin(async move {
            let inner = inner.upgrade().ok_or_else(|| ApiError::InvalidState("the node is stopping".into()))?;
            validate_room_id(&room).map_err(|e| ApiError::Type(e.to_string()))?;
            if inner.is_draining() {
                return Err(ApiError::InvalidState("the node is draining: join the room at another node".into()));
            }
            let router = inner.room_router(&room).ingest_router().await.map_err(node_error)?;
            let rtp_capabilities = serde_json::to_value(router.rtp_capabilities()).unwrap_or_default();
            let (view, first) = {
                let mut rooms = lock(&inner.rooms.rooms);
                let count = rooms.len();
                match rooms.get_mut(&room) {
                    Some(here) => {
                        here.apps += 1;
                        (here.view.subscribe(), false)
                    }
                    None if count >= MAX_ROOMS => {
                        return Err(ApiError::LimitReached(format!(
                            "this node is in {MAX_ROOMS} rooms, the most it may"
                        )));
                    }
                    None => {
                        let here = RoomHere {
                            state: RoomState::new(inner.rooms.next_incarnation()),
                            view: watch::channel(RoomView {
                                rtp_capabilities: serde_json::Value::Null,
                                producers: Vec::new(),
                                nodes: Vec::new(),
                            })
                            .0,
                            apps: 1,
                            rtp_capabilities,
                        };
                        let view = view_of(inner.swarm.peer_id(), &here);
                        here.view.send_replace(view);
                        let receiver = here.view.subscribe();
                        rooms.insert(room.clone(), here);
                        (receiver, true)
                    }
                }
            };
            let membership =
                Membership { inner: Arc::downgrade(&inner), room: room.clone(), view, entry, hosts: Arc::default() };
            if first {
                info!(room, "joined a room");
                sync::discover(&inner, &room).await;
            }
            Ok(Box::new(membership) as Box<dyn RoomMembership>)
        })
    }
}

/// One app connection in a room here; dropping it is the app leaving.
struct Membership {
    inner: Weak<Inner>,
    room: String,
    view: watch::Receiver<RoomView>,
    entry: Option<EntryLink>,
    /// Other nodes where this app joined the room for transports made there.
    hosts: Arc<Mutex<std::collections::HashSet<PeerId>>>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        let Some(inner) = self.inner.upgrade() else { return };
        if let Some(entry) = &self.entry {
            for host in lock(&self.hosts).drain() {
                crate::app_media::entry::leave_room(&inner, entry.session, host, &self.room);
            }
        }
        let leaving = {
            let mut rooms = lock(&inner.rooms.rooms);
            let Some(here) = rooms.get_mut(&self.room) else { return };
            here.apps = here.apps.saturating_sub(1);
            if here.apps > 0 {
                return;
            }
            let Some(mut here) = rooms.remove(&self.room) else { return };
            (here.state.leaving(), here.state.members())
        };
        info!(room = %self.room, "left a room (its last app here left)");
        sync::leave(&inner, &self.room, leaving.0, leaving.1);
    }
}

fn node_error(error: impl Into<NodeError>) -> ApiError {
    match error.into() {
        NodeError::InvalidInput(message) => ApiError::Type(message),
        NodeError::NotFound(what) => ApiError::invalid(format!("{what} not found")),
        other => ApiError::Mediasoup(other.to_string()),
    }
}

impl RoomMembership for Membership {
    fn view(&self) -> watch::Receiver<RoomView> {
        self.view.clone()
    }

    fn place(&self) -> BoxFuture<'static, Result<RoomPlace, ApiError>> {
        let (inner, room) = (self.inner.clone(), self.room.clone());
        Box::pin(async move {
            let inner = inner.upgrade().ok_or_else(|| ApiError::InvalidState("the node is stopping".into()))?;
            let router = inner.room_router(&room).ingest_router().await.map_err(node_error)?;
            let webrtc_server = inner.media.webrtc_server(&router.worker().id());
            Ok(RoomPlace {
                router,
                webrtc_server,
                listen_ip: inner.config.media_ip,
                announced_address: inner.config.announced_ip.map(|ip| ip.to_string()),
            })
        })
    }

    fn produced(&self, producer: &Producer, router: &Router, app_data: serde_json::Value) -> Result<(), ApiError> {
        let inner = self.inner.upgrade().ok_or_else(|| ApiError::InvalidState("the node is stopping".into()))?;
        if serde_json::to_vec(&app_data).map_or(usize::MAX, |bytes| bytes.len()) > MAX_APP_DATA_BYTES {
            return Err(ApiError::Type(format!("a room producer's appData has at most {MAX_APP_DATA_BYTES} bytes")));
        }
        let entry = ProducerEntry {
            id: producer.id().to_string(),
            kind: producer.kind(),
            paused: producer.paused(),
            app_data,
            codecs: codecs_of(producer),
        };
        let room = self.room.clone();
        let full = inner
            .with_room(&room, |state| state.own().producers.len() >= MAX_PRODUCERS_PER_NODE)
            .ok_or_else(|| ApiError::InvalidState(format!("left room {room}")))?;
        if full {
            return Err(ApiError::LimitReached(format!(
                "this node has {MAX_PRODUCERS_PER_NODE} producers in room {room}, the most it may"
            )));
        }
        let stream = producer_stream(&room, &entry.id);
        inner.publish_producer(&stream, producer, router).map_err(node_error)?;
        follow_producer(&inner, &room, producer);
        inner.with_room(&room, |state| state.change_own(|producers| producers.push(entry)));
        sync::push(&inner, &room);
        Ok(())
    }

    fn released(&self, producer: ProducerId) {
        let Some(inner) = self.inner.upgrade() else { return };
        let stream = producer_stream(&self.room, &producer.to_string());
        // Ending the stream drops the node's handle: the producer closes, and
        // `follow_producer` tells the room.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let task_inner = Arc::clone(&inner);
        inner.tasks.spawn_on(&runtime, "end room producer", async move {
            task_inner.end_stream(&stream).await;
        });
    }

    fn consumable(&self, producer_id: &str, router: &Router) -> BoxFuture<'static, Result<ProducerId, ApiError>> {
        let (inner, room, producer_id, router) =
            (self.inner.clone(), self.room.clone(), producer_id.to_owned(), router.clone());
        Box::pin(async move {
            let inner = inner.upgrade().ok_or_else(|| ApiError::InvalidState("the node is stopping".into()))?;
            let node = inner
                .with_room(&room, |state| state.producer(&producer_id).map(|(node, _)| node))
                .flatten()
                .ok_or_else(|| {
                    ApiError::invalid(format!("Producer with id \"{producer_id}\" not found in the room"))
                })?;
            let stream = producer_stream(&room, &producer_id);
            if let Some(origin) = node {
                let wanted = StreamRef { id: stream.clone(), origin: Some(origin) };
                inner.ensure_local_or_from(&wanted, origin).await.map_err(node_error)?;
                inner.reconcile_room(&room);
            }
            let local = lock(&inner.streams)
                .get(&stream)
                .and_then(|local| local.producers.first().map(Producer::id))
                .ok_or_else(|| ApiError::invalid(format!("Producer with id \"{producer_id}\" closed")))?;
            inner.router_of(&stream).make_available(local, &router).await.map_err(node_error)?;
            Ok(local)
        })
    }

    fn create_on(
        &self,
        node: String,
        method: String,
        params: mafalda_rope::Value,
    ) -> BoxFuture<'static, Result<Option<mafalda_rope::Value>, ApiError>> {
        let (inner, entry, room, hosts) =
            (self.inner.clone(), self.entry.clone(), self.room.clone(), Arc::clone(&self.hosts));
        Box::pin(async move {
            let inner = inner.upgrade().ok_or_else(|| ApiError::InvalidState("the node is stopping".into()))?;
            let host: PeerId = node.parse().map_err(|_| ApiError::invalid("node must be a peer id"))?;
            if host == inner.swarm.peer_id() {
                return Ok(None);
            }
            let entry = entry.ok_or_else(|| {
                ApiError::InvalidState("a transport on another node is made through the app's own node".into())
            })?;
            lock(&hosts).insert(host);
            let answer =
                crate::app_media::entry::room_call(&inner, entry.session, &entry.server, host, &room, &method, params)
                    .await
                    .map_err(ApiError::Forwarded)?;
            Ok(Some(answer))
        })
    }

    fn consumed(&self, producer_id: &str, consumer: &mafalda_media::mediasoup::prelude::Consumer) {
        if let Some(inner) = self.inner.upgrade() {
            crate::webrtc::count_while_open(&inner, consumer, &producer_stream(&self.room, producer_id));
        }
    }

    fn can_consume(&self, producer_id: &str, capabilities: &RtpCapabilities) -> bool {
        let Some(inner) = self.inner.upgrade() else { return false };
        inner
            .with_room(&self.room, |state| {
                state.producer(producer_id).is_some_and(|(_, producer)| {
                    producer
                        .codecs
                        .iter()
                        .any(|codec| capabilities.codecs.iter().any(|offered| codec_matches(codec, offered)))
                })
            })
            .unwrap_or(false)
    }
}

/// Whether an endpoint's codec capability receives `codec`.
fn codec_matches(codec: &CodecEntry, offered: &mafalda_media::mediasoup::prelude::RtpCodecCapability) -> bool {
    let offered = serde_json::to_value(offered).unwrap_or_default();
    let mime = offered["mimeType"].as_str().unwrap_or_default();
    let clock_rate = offered["clockRate"].as_u64().unwrap_or_default();
    let channels = offered["channels"].as_u64().and_then(|c| u8::try_from(c).ok());
    mime.eq_ignore_ascii_case(&codec.mime_type)
        && clock_rate == u64::from(codec.clock_rate)
        && (codec.channels.is_none() || channels.is_none() || channels == codec.channels)
}

/// The codecs a producer's consumers can receive (without RTX).
fn codecs_of(producer: &Producer) -> Vec<CodecEntry> {
    let parameters = serde_json::to_value(producer.consumable_rtp_parameters()).unwrap_or_default();
    parameters["codecs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|codec| {
            let mime_type = codec["mimeType"].as_str()?.to_owned();
            if mime_type.to_ascii_lowercase().ends_with("/rtx") {
                return None;
            }
            Some(CodecEntry {
                mime_type,
                clock_rate: u32::try_from(codec["clockRate"].as_u64()?).ok()?,
                channels: codec["channels"].as_u64().and_then(|c| u8::try_from(c).ok()),
            })
        })
        .take(8)
        .collect()
}

/// Tells the room when one of its producers here pauses, resumes or closes.
fn follow_producer(inner: &Arc<Inner>, room: &str, producer: &Producer) {
    let runtime = tokio::runtime::Handle::current();
    let id = producer.id().to_string();
    let changed = {
        let (weak, room, id, runtime) = (Arc::downgrade(inner), room.to_owned(), id.clone(), runtime.clone());
        move |change: Option<bool>| {
            let Some(inner) = weak.upgrade() else { return };
            let (room, id) = (room.clone(), id.clone());
            // mediasoup calls back on its own thread: the room is told from the runtime.
            runtime.spawn(async move {
                inner.with_room(&room, |state| {
                    state.change_own(|producers| match change {
                        Some(paused) => producers.iter_mut().filter(|p| p.id == id).for_each(|p| p.paused = paused),
                        None => producers.retain(|p| p.id != id),
                    });
                });
                sync::push(&inner, &room);
            });
        }
    };
    let (on_pause, on_resume, on_close) = (changed.clone(), changed.clone(), changed);
    producer.on_pause(move || on_pause(Some(true))).detach();
    producer.on_resume(move || on_resume(Some(false))).detach();
    producer.on_close(move || on_close(None)).detach();
}

/// The room's state at this node, for tests and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomStatus {
    /// The room id.
    pub room: String,
    /// Apps in it here.
    pub apps: usize,
    /// Other member nodes known.
    pub members: Vec<PeerId>,
    /// Producers known, at every node.
    pub producers: usize,
}

impl Inner {
    /// The rooms this node is in.
    pub(crate) fn room_statuses(&self) -> Vec<RoomStatus> {
        let rooms = lock(&self.rooms.rooms);
        let mut statuses: Vec<RoomStatus> = rooms
            .iter()
            .map(|(room, here)| RoomStatus {
                room: room.clone(),
                apps: here.apps,
                members: here.state.members(),
                producers: here.state.producers().count(),
            })
            .collect();
        statuses.sort_by(|a, b| a.room.cmp(&b.room));
        statuses
    }

    /// The rooms `peer` is a member of here.
    pub(crate) fn rooms_of(&self, peer: &PeerId) -> Vec<String> {
        lock(&self.rooms.rooms)
            .iter()
            .filter(|(_, here)| here.state.is_member(peer))
            .map(|(room, _)| room.clone())
            .collect()
    }
}
