//! Keeping a room's member nodes in step, with no central component.
//!
//! One node-to-node method, `room.sync {room, entry}` → `{entry?, members}`:
//! the caller says what it has in the room (its [`NodeEntry`]), the callee
//! merges it and answers its own entry and the members it knows. Each node
//! is the only source of its own entry; other members are only named, and
//! the caller syncs with them itself.
//!
//! - **Joining**: provide the room's Kademlia key, find its providers, sync
//!   with each, then with the members they name.
//! - **Changing** (a producer made, paused, resumed or closed here): push
//!   the entry to every member.
//! - **Leaving**: push an entry marked `left`; stop providing the key.
//! - **Death**: a member whose connection closed, or whose push failed, is
//!   called again at once; failing that too, it is removed (a tombstone keeps
//!   stale copies of it out). A killed node is gone from every member within
//!   a second or so, so its producers close everywhere. A member that is
//!   still connected but answers too slowly (a loaded node) is removed only
//!   after several such re-checks in a row.
//! - **Anti-entropy**: every [`RESYNC_EVERY`], each member is synced (a
//!   missed push is repaired); every [`REDISCOVER_EVERY`], the key's
//!   providers are looked up again (two halves of a healed partition meet).
//!
//! Why not a gossipsub topic per room: topic names go to every connected
//! peer, meshes form only among connected peers (a bounded node is not
//! connected to every member), and gossipsub keeps no history (a joiner
//! must pull anyway). Rooms are small (at most
//! [`MAX_ROOM_NODES`](super::state::MAX_ROOM_NODES) nodes); a push to each
//! member per change is cheap and needs no extra connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mafalda_rope::{ErrorCode, RpcError, Value};
use mafalda_swarm::{PeerId, room_key};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::state::{MAX_ROOM_NODES, Merge, NodeEntry};
use super::validate_room_id;
use crate::inner::Inner;

/// The node-to-node method.
pub(crate) const ROOM_SYNC: &str = "room.sync";
/// How long one sync waits for its answer.
const SYNC_TIMEOUT: Duration = Duration::from_millis(1500);
/// How often every member is synced again.
pub(crate) const RESYNC_EVERY: Duration = Duration::from_secs(5);
/// How often the room's providers are looked up again.
pub(crate) const REDISCOVER_EVERY: Duration = Duration::from_secs(30);

/// `room.sync` params.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SyncRequest {
    pub(crate) room: String,
    pub(crate) entry: NodeEntry,
}

/// `room.sync` answer: the callee's own entry (none if it is not in the
/// room) and the other members it knows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SyncAnswer {
    #[serde(default)]
    pub(crate) entry: Option<NodeEntry>,
    #[serde(default)]
    pub(crate) members: Vec<String>,
}

fn invalid(message: String) -> RpcError {
    RpcError::new(ErrorCode::InvalidParams, message)
}

/// Answers `peer`'s `room.sync`.
pub(crate) fn answer(inner: &Arc<Inner>, peer: PeerId, request: SyncRequest) -> Result<SyncAnswer, RpcError> {
    validate_room_id(&request.room).map_err(RpcError::from)?;
    request.entry.check().map_err(|e| invalid(e.to_string()))?;
    let room = request.room;
    let merged = inner.with_room(&room, |state| {
        let merged = state.merge(peer, request.entry, Instant::now());
        let members = state.members().into_iter().filter(|member| *member != peer).map(|m| m.to_string()).collect();
        (merged, SyncAnswer { entry: Some(state.own().clone()), members })
    });
    let Some((merged, answer)) = merged else { return Ok(SyncAnswer::default()) };
    match merged {
        Merge::Full => Err(RpcError::new(
            ErrorCode::Application(crate::api::LIMIT_REACHED),
            format!("room {room} has {MAX_ROOM_NODES} member nodes, the most it may"),
        )),
        Merge::Applied => {
            debug!(room, %peer, "room entry from a member");
            inner.reconcile_room(&room);
            Ok(answer)
        }
        Merge::Stale => Ok(answer),
    }
}

/// Why a sync with a member failed.
#[derive(Debug)]
enum SyncFailure {
    /// No answer in time: the member may be loaded rather than gone.
    Slow(String),
    /// Unreachable, or it answered what a member does not.
    Failed(String),
}

impl std::fmt::Display for SyncFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Slow(reason) | Self::Failed(reason) => f.write_str(reason),
        }
    }
}

/// Syncs with `peer`; answers the members it named.
async fn sync_with(inner: &Arc<Inner>, room: &str, peer: PeerId) -> Result<Vec<PeerId>, SyncFailure> {
    let Some(own) = inner.read_room(room, |state| state.own().clone()) else { return Ok(Vec::new()) };
    sync_entry(inner, room, peer, own).await
}

async fn sync_entry(
    inner: &Arc<Inner>,
    room: &str,
    peer: PeerId,
    entry: NodeEntry,
) -> Result<Vec<PeerId>, SyncFailure> {
    let params = Value::serialized(&SyncRequest { room: room.to_owned(), entry })
        .map_err(|e| SyncFailure::Failed(e.to_string()))?;
    let call = crate::remote::call::<SyncAnswer>(inner, peer, ROOM_SYNC, params);
    let answer = match tokio::time::timeout(SYNC_TIMEOUT, call).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(error @ mafalda_swarm::CallError::Timeout(_))) => return Err(SyncFailure::Slow(error.to_string())),
        Ok(Err(error)) => return Err(SyncFailure::Failed(error.to_string())),
        Err(_) => return Err(SyncFailure::Slow(format!("no answer within {SYNC_TIMEOUT:?}"))),
    };
    let now = Instant::now();
    let changed = match answer.entry {
        Some(entry) => {
            entry.check().map_err(|e| SyncFailure::Failed(format!("refused its entry: {e}")))?;
            inner.with_room(room, |state| {
                state.answered(peer);
                state.merge(peer, entry, now) == Merge::Applied
            })
        }
        // It is not (or no longer) in the room.
        None => inner.with_room(room, |state| state.remove(peer, now)),
    };
    if changed == Some(true) {
        inner.reconcile_room(room);
    }
    Ok(answer.members.iter().take(MAX_ROOM_NODES).filter_map(|member| member.parse().ok()).collect())
}

/// Meets room `room`'s other member nodes: provides the room key, finds
/// its providers, and syncs with them and with the members they name.
pub(crate) async fn discover(inner: &Arc<Inner>, room: &str) {
    let me = inner.swarm.peer_id();
    if let Err(error) = inner.swarm.provide(room_key(room)).await {
        debug!(room, %error, "could not provide the room key");
    }
    let found = match inner.swarm.find_providers(room_key(room), inner.config.find_deadline).await {
        Ok(found) => found,
        Err(error) => {
            warn!(room, %error, "could not look up the room's members");
            Vec::new()
        }
    };
    let mut queue: Vec<PeerId> = found.into_iter().filter(|peer| *peer != me).collect();
    let mut seen: Vec<PeerId> = queue.clone();
    while !queue.is_empty() && seen.len() <= MAX_ROOM_NODES {
        let batch = std::mem::take(&mut queue);
        let results = futures::future::join_all(batch.iter().map(|peer| sync_with(inner, room, *peer))).await;
        for (peer, result) in batch.into_iter().zip(results) {
            match result {
                Ok(members) => {
                    for member in members {
                        if member != me && !seen.contains(&member) {
                            seen.push(member);
                            queue.push(member);
                        }
                    }
                }
                // A stale provider record (the node left or died): not a member.
                Err(error) => debug!(room, %peer, %error, "a provider of the room did not sync"),
            }
        }
    }
    let members = inner.read_room(room, |state| state.members().len()).unwrap_or(0);
    info!(room, members, "room members met");
}

/// Tells every member of `room` this node's entry, in the background.
pub(crate) fn push(inner: &Arc<Inner>, room: &str) {
    let Some(members) = inner.read_room(room, |state| state.members()) else { return };
    for peer in members {
        let (task_inner, room) = (Arc::clone(inner), room.to_owned());
        inner.spawn("room push", async move {
            if let Err(error) = sync_with(&task_inner, &room, peer).await {
                debug!(room, %peer, %error, "room push failed; checking the member");
                suspect(&task_inner, &room, peer).await;
            }
        });
    }
}

/// This node left `room`: tells `members` (and stops providing the key).
pub(crate) fn leave(inner: &Arc<Inner>, room: &str, entry: NodeEntry, members: Vec<PeerId>) {
    let (task_inner, room) = (Arc::clone(inner), room.to_owned());
    inner.spawn("room leave", async move {
        let pushes = members.iter().map(|peer| sync_entry(&task_inner, &room, *peer, entry.clone()));
        futures::future::join_all(pushes).await;
        if let Err(error) = task_inner.swarm.stop_providing(room_key(&room)).await {
            debug!(room, %error, "could not stop providing the room key");
        }
    });
}

/// `peer` may be gone: one more sync. If that fails too, it is removed
/// from `room` (its producers close here), unless it only answered too
/// slowly while still connected: a loaded node is given
/// [`MAX_SLOW_ANSWERS`](super::state::MAX_SLOW_ANSWERS) re-checks in a row.
pub(crate) async fn suspect(inner: &Arc<Inner>, room: &str, peer: PeerId) {
    let error = match sync_with(inner, room, peer).await {
        Ok(_) => return,
        Err(error) => error,
    };
    let connected = inner.swarm.connected_peers().await.is_ok_and(|peers| peers.contains(&peer));
    let now = Instant::now();
    let removed = match &error {
        SyncFailure::Slow(_) if connected => inner.with_room(room, |state| state.slow_answer(peer, now)),
        _ => inner.with_room(room, |state| state.remove(peer, now)),
    };
    match removed {
        Some(true) => {
            info!(room, %peer, %error, "room member gone: removed with its producers");
            inner.reconcile_room(room);
        }
        Some(false) if matches!(error, SyncFailure::Slow(_)) => {
            debug!(room, %peer, %error, "room member slow to answer; still a member");
        }
        _ => {}
    }
}

/// `peer`'s last connection closed: checks it in every room it is in.
pub(crate) fn peer_disconnected(inner: &Arc<Inner>, peer: PeerId) {
    for room in inner.rooms_of(&peer) {
        let task_inner = Arc::clone(inner);
        inner.spawn("room member check", async move { suspect(&task_inner, &room, peer).await });
    }
}

/// The node's task keeping every room it is in synced (see the module docs).
pub(crate) async fn keep_in_sync(inner: Arc<Inner>) {
    let mut ticks: u64 = 0;
    let rediscover_every = (REDISCOVER_EVERY.as_secs() / RESYNC_EVERY.as_secs()).max(1);
    let mut interval = tokio::time::interval(RESYNC_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        ticks += 1;
        let rooms: Vec<String> = inner.room_statuses().into_iter().map(|status| status.room).collect();
        for room in rooms {
            if ticks.is_multiple_of(rediscover_every) {
                discover(&inner, &room).await;
            } else {
                push(&inner, &room);
            }
        }
    }
}
