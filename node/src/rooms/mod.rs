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

mod membership;
pub(crate) mod state;
pub(crate) mod sync;

pub(crate) use membership::{EntryLink, NodeRooms};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mafalda_media::SpanningRouter;
use mafalda_media::mediasoup::prelude::Producer;
use mafalda_mediasoup_api::{RoomProducer, RoomView};
use mafalda_swarm::PeerId;
use tokio::sync::watch;
use tracing::{debug, info};

use self::state::RoomState;
use crate::NodeError;
use crate::inner::{Inner, lock};
use crate::streams::{Role, validate_stream_id};

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

    /// Reads room `room`'s state (if this node is in it); nothing is sent.
    fn read_room<T>(&self, room: &str, read: impl FnOnce(&RoomState) -> T) -> Option<T> {
        lock(&self.rooms.rooms).get(room).map(|here| read(&here.state))
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
