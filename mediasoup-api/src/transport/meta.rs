//! What the transport module keeps per transport, in its mediasoup
//! `AppData` (an app's `appData` stays with the client): what mediasoup
//! Node's objects report but the crate does not keep ([`Extras`]), the
//! outgoing bitrate limits the app set, and the [`Mirror`] of the
//! transport's ROPE state that its event handlers and calls share.

use std::any::Any;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use mafalda_media::mediasoup::prelude::Transport;
use mafalda_media::mediasoup::transport::TransportTraceEventData;
use mafalda_media::mediasoup::types::data_structures::AppData;
use mafalda_media::mediasoup::worker::RequestError;
use serde::{Deserialize, Serialize};

use super::refused;
use crate::error::ApiError;
use crate::session::{Session, WeakSession};
use crate::wire::to_json;

/// What mediasoup Node's transports report that the crate does not keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Extras {
    /// `numSctpStreams` as asked (the crate's worker negotiates up to 65535
    /// streams itself; Node's objects report what the app asked for).
    pub(super) streams: NumSctpStreams,
    /// Plain transports: RTP and RTCP on one port.
    pub(super) rtcp_mux: bool,
    /// Plain transports: the remote address is learnt from the first packet.
    pub(super) comedia: bool,
}

impl Default for Extras {
    fn default() -> Self {
        Self { streams: NumSctpStreams::default(), rtcp_mux: true, comedia: false }
    }
}

/// What this module keeps in a transport's `AppData`.
struct Meta {
    extras: Extras,
    /// The transport's [`Mirror`] (of its kind's state).
    mirror: Arc<dyn Any + Send + Sync>,
    /// The outgoing bitrate limits set (0: none).
    outgoing: Mutex<OutgoingLimits>,
}

/// A transport's outgoing bitrate limits, as the app set them (0: none).
#[derive(Debug, Clone, Copy, Default)]
struct OutgoingLimits {
    min: u64,
    max: u64,
}

/// Which outgoing bitrate limit a call sets.
#[derive(Debug, Clone, Copy)]
pub(super) enum Outgoing {
    Min(u64),
    Max(u64),
}

/// Sets an outgoing bitrate limit of `transport` with `set`, after mediasoup
/// Node's checks (the embedded worker clamps instead of refusing): a max
/// under the min set, or a min over the max set, is a `TypeError`.
pub(super) async fn set_outgoing<Fut>(transport: &dyn Transport, limit: Outgoing, set: Fut) -> Result<(), ApiError>
where
    Fut: std::future::Future<Output = Result<(), RequestError>>,
{
    let meta = transport.app_data().downcast_ref::<Meta>();
    let current = meta.map(|meta| *meta.outgoing.lock().unwrap_or_else(PoisonError::into_inner)).unwrap_or_default();
    match limit {
        Outgoing::Max(max) if max > 0 && current.min > 0 && max < current.min => {
            return Err(ApiError::invalid(format!(
                "bitrate must be >= current min outgoing bitrate ({} bps)",
                current.min
            )));
        }
        Outgoing::Min(min) if min > 0 && current.max > 0 && min > current.max => {
            return Err(ApiError::invalid(format!(
                "bitrate must be <= current max outgoing bitrate ({} bps)",
                current.max
            )));
        }
        _ => {}
    }
    set.await.map_err(refused)?;
    if let Some(meta) = meta {
        let mut limits = meta.outgoing.lock().unwrap_or_else(PoisonError::into_inner);
        match limit {
            Outgoing::Min(min) => limits.min = min,
            Outgoing::Max(max) => limits.max = max,
        }
    }
    Ok(())
}

impl Extras {
    /// The `AppData` of a new transport.
    pub(super) fn app_data<S: Send + 'static>(self, mirror: &Arc<Mirror<S>>) -> AppData {
        AppData::new(Meta {
            extras: self,
            mirror: Arc::clone(mirror) as Arc<dyn Any + Send + Sync>,
            outgoing: Mutex::default(),
        })
    }

    /// The extras of `transport` (defaults for a transport this module did
    /// not make, e.g. `pipeToRouter`'s).
    pub(super) fn of(transport: &dyn Transport) -> Self {
        transport.app_data().downcast_ref::<Meta>().map(|meta| meta.extras).unwrap_or_default()
    }
}

/// mediasoup Node's `numSctpStreams`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NumSctpStreams {
    #[serde(rename = "OS")]
    pub(super) os: u16,
    #[serde(rename = "MIS")]
    pub(super) mis: u16,
}

impl Default for NumSctpStreams {
    /// mediasoup Node's default.
    fn default() -> Self {
        Self { os: 1024, mis: 1024 }
    }
}

/// A transport's ROPE state (`PROTOCOL.md`, Object state), kept here so
/// that its event handlers and its calls change it in one place and send it
/// (before their named event). Made before the transport, started once the
/// transport (and so its id) exists.
pub(super) struct Mirror<S> {
    state: Mutex<Option<S>>,
    session: WeakSession,
    id: OnceLock<String>,
}

impl<S: Serialize + Send + 'static> Mirror<S> {
    pub(super) fn new(session: &Session) -> Arc<Self> {
        Arc::new(Self { state: Mutex::new(None), session: session.weak(), id: OnceLock::new() })
    }

    /// The mirror of `transport`, if this module made it.
    pub(super) fn of(transport: &dyn Transport) -> Option<Arc<Self>> {
        let meta = transport.app_data().downcast_ref::<Meta>()?;
        Arc::clone(&meta.mirror).downcast::<Self>().ok()
    }

    fn lock(&self) -> MutexGuard<'_, Option<S>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the transport's id and first state.
    pub(super) fn start(&self, id: &str, state: S) {
        let _ = self.id.set(id.to_owned());
        *self.lock() = Some(state);
    }

    /// The state now, as JSON.
    pub(super) fn snapshot(&self) -> serde_json::Value {
        to_json(&*self.lock())
    }

    /// Changes the state and sends it (nothing before [`Mirror::start`]).
    pub(super) fn update(&self, change: impl FnOnce(&mut S)) {
        let mut state = self.lock();
        if let (Some(state), Some(id)) = (state.as_mut(), self.id.get()) {
            change(state);
            // Sent under the lock, so the client sees the changes in their order.
            self.session.set_state(id, &*state);
        }
    }

    /// Sends mediasoup's event `name` of this transport.
    pub(super) fn emit(&self, name: &str, args: Vec<serde_json::Value>) {
        if let Some(id) = self.id.get() {
            self.session.emit(id, name, args);
        }
    }

    /// Sends a `trace` event.
    pub(super) fn trace(&self, trace: &TransportTraceEventData) {
        self.emit("trace", vec![to_json(trace)]);
    }

    /// The subscriptions every kind of transport has: its `trace` events,
    /// and its end (the session then forgets it and what is under it).
    pub(super) fn common_handlers(
        self: &Arc<Self>,
        transport: &dyn Transport,
        session: &Session,
        id: &str,
    ) -> Vec<event_listener_primitives::HandlerId> {
        let mirror = Arc::clone(self);
        let (weak, id) = (session.weak(), id.to_owned());
        vec![
            transport.on_trace(Arc::new(move |trace| mirror.trace(trace))),
            transport.on_close(Box::new(move || weak.forget(&id))),
        ]
    }
}
