//! Who made what through the API, and how much each may hold.
//!
//! Every egress, publication and WebRTC transport, producer and consumer made
//! through the API is recorded with its owner: over HTTP the token presented
//! (every request without a token configured is the one owner "anonymous");
//! over ROPE the connection. Only the owner, or a caller with the admin token,
//! may close it; objects the API did not make (relays piped here, things made
//! through [`Node`] directly) only the admin may close. Each owner holds at most
//! [`Limits`] objects of each kind.
//!
//! Egresses and publications can end without the API (their stream ended, a
//! re-pipe failed), so their records are checked against the node's own state
//! whenever they are counted or looked up; WebRTC objects drop their record
//! themselves when they close ([`Registration`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::StatusCode;
use mafalda_rope::{ErrorCode, RpcError, Server};

use crate::Node;

/// ROPE code for "this object is not yours to close" (HTTP 403); the node's
/// code for every "forbidden".
pub const FORBIDDEN: i64 = -32003;
/// ROPE code for "this owner already holds the most objects of this kind it
/// may" (HTTP 429); nothing was created.
pub const LIMIT_REACHED: i64 = -32004;

/// Kinds of objects the API makes, each with its own cap per owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// An RTP egress (`rtp-egress`, `stream.consume`).
    Egress,
    /// A WebRTC transport.
    Transport,
    /// A WebRTC producer (one track).
    Producer,
    /// A WebRTC consumer (one track).
    Consumer,
    /// A stream published here (`rtp-ingest`, `stream.publish`, or the first
    /// WebRTC track of a stream).
    Publication,
    /// A WHIP or WHEP session (its transport and tracks).
    Session,
}

impl ObjectKind {
    fn plural(self) -> &'static str {
        match self {
            Self::Egress => "egresses",
            Self::Transport => "transports",
            Self::Producer => "producers",
            Self::Consumer => "consumers",
            Self::Publication => "publications",
            Self::Session => "WHIP/WHEP sessions",
        }
    }
}

/// Most objects of each kind one owner (a ROPE connection, or an HTTP token)
/// may hold at once. The defaults bound what one app can make a node hold
/// while leaving room for any ordinary app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// RTP egresses (default 64).
    pub egresses: usize,
    /// WebRTC transports (default 16).
    pub transports: usize,
    /// WebRTC producers (default 64).
    pub producers: usize,
    /// WebRTC consumers (default 256).
    pub consumers: usize,
    /// Publications (default 16).
    pub publications: usize,
    /// WHIP and WHEP sessions (default 256: every viewer of a WHEP page
    /// presents the same app token).
    pub sessions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { egresses: 64, transports: 16, producers: 64, consumers: 256, publications: 16, sessions: 256 }
    }
}

impl Limits {
    fn of(&self, kind: ObjectKind) -> usize {
        match kind {
            ObjectKind::Egress => self.egresses,
            ObjectKind::Transport => self.transports,
            ObjectKind::Producer => self.producers,
            ObjectKind::Consumer => self.consumers,
            ObjectKind::Publication => self.publications,
            ObjectKind::Session => self.sessions,
        }
    }
}

/// Which token an HTTP request or a ROPE connection presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum TokenRole {
    /// No token is configured: nothing to present.
    Anonymous,
    /// The app token (`--api-token`).
    App,
    /// The admin token (`--api-admin-token`).
    Admin,
}

/// Who made an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Owner {
    /// HTTP requests presenting this token.
    Http(TokenRole),
    /// One ROPE connection.
    Connection(u64),
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Http(TokenRole::Anonymous) => f.write_str("HTTP requests (anonymous)"),
            Self::Http(TokenRole::App) => f.write_str("HTTP requests with the app token"),
            Self::Http(TokenRole::Admin) => f.write_str("HTTP requests with the admin token"),
            Self::Connection(id) => write!(f, "ROPE connection {id}"),
        }
    }
}

/// The one making a call: the owner of what it makes, and whether it holds the
/// admin token (which may close anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Caller {
    pub(super) owner: Owner,
    pub(super) admin: bool,
}

/// Why the API refused a call about ownership or caps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The object belongs to another owner (or was not made through the API)
    /// and the caller is not the admin.
    #[error("{what} was made by {owner}; only its owner or the admin token may close it")]
    Forbidden {
        /// The object, as people read it.
        what: String,
        /// Who made it, as people read it.
        owner: String,
    },
    /// The caller already holds `max` objects of this kind.
    #[error("limit reached: at most {max} {kind} per connection or token; close some first")]
    LimitReached {
        /// The kind, plural ("egresses").
        kind: &'static str,
        /// The cap.
        max: usize,
    },
}

impl AccessError {
    /// The HTTP status it is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::LimitReached { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

impl From<AccessError> for RpcError {
    fn from(error: AccessError) -> Self {
        let code = match error {
            AccessError::Forbidden { .. } => FORBIDDEN,
            AccessError::LimitReached { .. } => LIMIT_REACHED,
        };
        RpcError::new(ErrorCode::Application(code), error.to_string())
    }
}

struct Record {
    owner: Owner,
    /// The connection a WebRTC object lives on, to close it from another
    /// connection (the admin's). Cleared with the record when the object closes.
    server: Option<Server>,
}

#[derive(Default)]
struct State {
    records: HashMap<(ObjectKind, String), Record>,
    /// Slots taken by creations still under way, so concurrent calls cannot
    /// pass the cap together.
    pending: HashMap<(Owner, ObjectKind), usize>,
}

/// The API's record of owners (one per API server).
pub(super) struct Owners {
    limits: Limits,
    state: Mutex<State>,
}

impl Owners {
    pub(super) fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self { limits, state: Mutex::default() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `count` slots of `kind` for `caller`, or refuses if that would
    /// pass its cap. The slots are given back when the [`Slot`] drops, unless
    /// [`Slot::commit`]ted to a made object.
    pub(super) fn reserve(
        self: &Arc<Self>,
        node: &Node,
        caller: &Caller,
        kind: ObjectKind,
        count: usize,
    ) -> Result<Slot, AccessError> {
        let live = live_ids(node, kind);
        let mut state = self.lock();
        if let Some(live) = &live {
            state.records.retain(|(k, id), _| *k != kind || live.contains(id));
        }
        let held = state.records.iter().filter(|((k, _), r)| *k == kind && r.owner == caller.owner).count();
        let pending = state.pending.get(&(caller.owner, kind)).copied().unwrap_or(0);
        let max = self.limits.of(kind);
        if held + pending + count > max {
            return Err(AccessError::LimitReached { kind: kind.plural(), max });
        }
        *state.pending.entry((caller.owner, kind)).or_default() += count;
        Ok(Slot { owners: Arc::clone(self), owner: caller.owner, kind, left: count })
    }

    /// Who made `id` (of `kind`), if the API did and it still exists.
    fn owner_of(&self, node: &Node, kind: ObjectKind, id: &str) -> Option<Owner> {
        let live = live_ids(node, kind);
        let mut state = self.lock();
        let key = (kind, id.to_owned());
        if live.as_ref().is_some_and(|live| !live.iter().any(|l| l == id)) {
            state.records.remove(&key);
        }
        state.records.get(&key).map(|record| record.owner)
    }

    /// Whether `caller` may close or change `id` (of `kind`): its owner and the
    /// admin may; nobody else, including for objects the API did not make.
    pub(super) fn may_close(
        &self,
        node: &Node,
        caller: &Caller,
        kind: ObjectKind,
        id: &str,
    ) -> Result<(), AccessError> {
        let owner = self.owner_of(node, kind, id);
        if caller.admin || owner == Some(caller.owner) {
            return Ok(());
        }
        let what = match kind {
            ObjectKind::Egress => format!("egress {id}"),
            ObjectKind::Publication => format!("stream {id}"),
            ObjectKind::Session => format!("session {id}"),
            ObjectKind::Transport => format!("transport {id}"),
            ObjectKind::Producer => format!("producer {id}"),
            ObjectKind::Consumer => format!("consumer {id}"),
        };
        let owner = owner.map_or_else(|| "the node itself (not through this API)".to_owned(), |o| o.to_string());
        Err(AccessError::Forbidden { what, owner })
    }

    /// Whether `owner` made publication `stream` (and it is still published).
    pub(super) fn publication_owner(&self, node: &Node, stream: &str) -> Option<Owner> {
        self.owner_of(node, ObjectKind::Publication, stream)
    }

    /// The WebRTC object `id` of any connection: its kind and its connection's server.
    pub(super) fn webrtc_object(&self, id: &str) -> Option<(ObjectKind, Server)> {
        let state = self.lock();
        [ObjectKind::Transport, ObjectKind::Producer, ObjectKind::Consumer].into_iter().find_map(|kind| {
            let record = state.records.get(&(kind, id.to_owned()))?;
            Some((kind, record.server.clone()?))
        })
    }

    /// Forgets and returns the egresses and publications `owner` made (its
    /// connection closed: the caller ends them).
    pub(super) fn take_owned(&self, owner: Owner) -> Vec<(ObjectKind, String)> {
        let mut state = self.lock();
        let mine: Vec<(ObjectKind, String)> = state
            .records
            .iter()
            .filter(|((kind, _), record)| {
                record.owner == owner && matches!(kind, ObjectKind::Egress | ObjectKind::Publication)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in &mine {
            state.records.remove(key);
        }
        mine
    }
}

/// The ids of `kind` the node holds now, for kinds that can end without the
/// API (`None` for WebRTC objects, whose records go with them).
fn live_ids(node: &Node, kind: ObjectKind) -> Option<Vec<String>> {
    match kind {
        ObjectKind::Egress => Some(node.egresses().into_iter().map(|e| e.id).collect()),
        // Published here: hop 0. A relay of the same id is not a publication.
        ObjectKind::Publication => Some(node.streams().into_iter().filter(|s| s.hops == 0).map(|s| s.stream).collect()),
        ObjectKind::Transport | ObjectKind::Producer | ObjectKind::Consumer | ObjectKind::Session => None,
    }
}

/// Slots reserved for objects being made; unused ones are given back on drop.
pub(super) struct Slot {
    owners: Arc<Owners>,
    owner: Owner,
    kind: ObjectKind,
    left: usize,
}

impl Slot {
    /// Records `id` as made by the slot's owner, using one slot. `server` is
    /// the connection a WebRTC object lives on. The returned registration
    /// forgets the record when dropped (WebRTC objects hold it); egresses and
    /// publications [`Registration::keep`] it, their records checked against
    /// the node instead.
    pub(super) fn commit(&mut self, id: &str, server: Option<Server>) -> Registration {
        let key = (self.kind, id.to_owned());
        {
            let mut state = self.owners.lock();
            state.records.insert(key.clone(), Record { owner: self.owner, server });
            release(&mut state, self.owner, self.kind, usize::from(self.left > 0));
        }
        self.left = self.left.saturating_sub(1);
        Registration { owners: Arc::clone(&self.owners), key: Some(key) }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.left > 0 {
            release(&mut self.owners.lock(), self.owner, self.kind, self.left);
        }
    }
}

fn release(state: &mut State, owner: Owner, kind: ObjectKind, count: usize) {
    if let Some(pending) = state.pending.get_mut(&(owner, kind)) {
        *pending = pending.saturating_sub(count);
        if *pending == 0 {
            state.pending.remove(&(owner, kind));
        }
    }
}

/// A WebRTC object's record, forgotten when the object (its ROPE handler) drops.
pub(super) struct Registration {
    owners: Arc<Owners>,
    key: Option<(ObjectKind, String)>,
}

impl Registration {
    /// Keeps the record after this drops (egresses and publications, whose
    /// records are checked against the node instead).
    pub(super) fn keep(mut self) {
        self.key = None;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.owners.lock().records.remove(&key);
        }
    }
}

/// What a ROPE connection's handlers need to apply the rules: the API's
/// records and who the connection is.
#[derive(Clone)]
pub(super) struct Access {
    pub(super) owners: Arc<Owners>,
    pub(super) caller: Caller,
    /// Whether operator actions (drain) need the admin token: set when one is configured.
    pub(super) admin_configured: bool,
}
