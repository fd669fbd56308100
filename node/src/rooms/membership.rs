//! One app connection's membership of a room at this node: joining
//! ([`NodeRooms`], the node's [`RoomNode`]), where its transports go, what
//! its producers become (streams of the room, followed as they pause,
//! resume and close), bringing any room producer to a transport's router,
//! and making transports on other nodes through the app's entry.

use std::sync::{Arc, Mutex, Weak};

use futures::future::BoxFuture;
use mafalda_media::mediasoup::prelude::{Producer, ProducerId, Router, RtpCapabilities};
use mafalda_mediasoup_api::{ApiError, RoomMembership, RoomNode, RoomPlace, RoomView};
use mafalda_swarm::PeerId;
use tokio::sync::watch;
use tracing::info;

use super::state::{CodecEntry, MAX_APP_DATA_BYTES, MAX_PRODUCERS_PER_NODE, ProducerEntry, RoomState};
use super::{MAX_ROOMS, RoomHere, producer_stream, sync, validate_room_id, view_of};
use crate::NodeError;
use crate::inner::{Inner, lock};
use crate::streams::StreamRef;

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
            .read_room(&room, |state| state.own().producers.len() >= MAX_PRODUCERS_PER_NODE)
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
                .read_room(&room, |state| state.producer(&producer_id).map(|(node, _)| node))
                .flatten()
                .ok_or_else(|| {
                    ApiError::invalid(format!("Producer with id \"{producer_id}\" not found in the room"))
                })?;
            let stream = producer_stream(&room, &producer_id);
            if let Some(origin) = node {
                let wanted = StreamRef { id: stream.clone(), origin: Some(origin) };
                inner.ensure_local_or_from(&wanted, origin).await.map_err(node_error)?.done().await;
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
            .read_room(&self.room, |state| {
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
