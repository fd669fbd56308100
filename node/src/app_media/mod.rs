//! Remote Mediasoup across the swarm (Mediasoup-horizontal / -cluster): an
//! app connected to one node (its *entry*) runs workers on another node (the
//! *host*), and drives every object under them through its own connection.
//!
//! - [`hosting`]: the host's side. Each (entry peer, app session) pair gets a
//!   mediasoup [`Session`](mafalda_mediasoup_api::Session) of its own, whose
//!   objects' events are relayed to the entry in order; it closes when the
//!   entry says so or disconnects.
//! - [`entry`]: the entry's side. The host's objects become ROPE objects of
//!   the app's connection whose calls are forwarded to the host; when the
//!   host leaves, they close (workers with a `died` event first).
//!
//! Between nodes (ROPE over libp2p, `node/PROTOCOL.md`):
//!
//! | method | to | params | result |
//! |---|---|---|---|
//! | `mediasoup.session.call` | host | `{session, target?, method, params}` | the call's own result; the events it caused were delivered before it |
//! | `mediasoup.session.events` | entry | `{session, events: [rope events]}` or `{session, snapshot}` | `null` |
//! | `mediasoup.session.close` | host | `{session}` | `null` |

pub(crate) mod entry;
pub(crate) mod hosting;

use mafalda_rope::{Event, Snapshot, Value};
use serde::{Deserialize, Serialize};

/// Most app sessions one entry peer may host here at once.
pub const MAX_SESSIONS_PER_PEER: usize = 16;
/// Most events relayed in one `mediasoup.session.events` call.
pub(crate) const MAX_EVENTS_PER_CALL: usize = 64;

/// `mediasoup.session.call`: one app call forwarded to the host.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionCall {
    pub(crate) session: u64,
    #[serde(default)]
    pub(crate) target: Option<String>,
    pub(crate) method: String,
    #[serde(default)]
    pub(crate) params: Option<Value>,
}

/// `mediasoup.session.events`: what happened to the session's objects, in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionEvents {
    pub(crate) session: u64,
    #[serde(default)]
    pub(crate) events: Vec<Event>,
    /// Sent instead of events the relay fell behind on: every object now.
    #[serde(default)]
    pub(crate) snapshot: Option<Snapshot>,
}

/// `mediasoup.session.close`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionRef {
    pub(crate) session: u64,
}

/// Both sides' state, one per node.
pub(crate) struct AppMedia {
    pub(crate) hosting: hosting::Hosting,
    pub(crate) entry: entry::Entry,
}

impl AppMedia {
    pub(crate) fn new(config: mafalda_mediasoup_api::HostConfig) -> Self {
        Self { hosting: hosting::Hosting::new(config), entry: entry::Entry::default() }
    }

    /// The mediasoup host every app session of this node uses.
    pub(crate) fn host(&self) -> &std::sync::Arc<mafalda_mediasoup_api::Host> {
        self.hosting.host()
    }
}
