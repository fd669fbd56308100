//! An app's session on `/v1/rope`, which outlives one WebSocket: what the app
//! made (streams, egresses, media and mediasoup objects) belongs to the
//! session, and a connection that drops leaves it *parked* for the grace
//! period (`--session-grace`). An app that reconnects within it with
//! `?session=TOKEN` gets the same session back (its ROPE snapshot first, so
//! its mirror reconciles); one that does not come back has everything closed.
//!
//! The token is the ROPE object `session` (type `session`, state
//! `{token, graceMs}`), the first object of every snapshot. It is a 128-bit
//! random secret; resuming also takes the API token the session was opened
//! with (an app token cannot resume an admin's session). An unknown or
//! expired token opens a fresh session, whose snapshot tells the app that its
//! old objects are gone. At most [`MAX_PARKED`] sessions wait at once; past
//! that, a dropped session closes at once.
//!
//! An app may also come back before the node noticed its old connection
//! dropped (a half-open TCP connection after a NAT timeout or a network
//! change is noticed by the client first): the token then takes the session
//! over, cutting the old connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mafalda_rope::Server;
use tracing::{debug, info};

use super::owners::Access;
use crate::inner::lock;

/// Most sessions parked at once (as many as connections may be open).
pub const MAX_PARKED: usize = super::rope::MAX_CONNECTIONS;

/// The id (and type) of the ROPE object that carries the session token.
pub(super) const SESSION_OBJECT: &str = "session";

/// What an app's session holds besides its ROPE server; closed by [`AppSession::close`].
pub(super) trait Closer: Send + Sync {
    /// Closes everything the session made.
    fn close(&self) -> futures::future::BoxFuture<'static, ()>;
}

/// One app session.
pub(super) struct AppSession {
    pub(super) token: String,
    pub(super) access: Access,
    pub(super) server: Server,
    closer: Box<dyn Closer>,
    /// Cuts the connection being served (a reconnect takes the session over).
    cut: tokio::sync::Notify,
}

impl AppSession {
    pub(super) fn new(token: String, access: Access, server: Server, closer: Box<dyn Closer>) -> Self {
        Self { token, access, server, closer, cut: tokio::sync::Notify::new() }
    }

    /// Serves one connection of the session until it drops or is cut.
    pub(super) async fn serve(&self, connection: mafalda_rope::transport::Connection) {
        let (_peer, mut task) = self.server.accept(connection);
        tokio::select! {
            _ = &mut task => {}
            () = self.cut.notified() => {
                debug!(session = %short(&self.token), "connection cut: the app reconnected");
                task.abort();
            }
        }
    }

    async fn close(&self) {
        self.closer.close().await;
    }
}

struct Parked {
    session: Arc<AppSession>,
    /// Tells a grace timer whether the entry it was started for is still this one.
    generation: u64,
}

/// The sessions waiting for their app to come back.
pub(super) struct Sessions {
    grace: Duration,
    parked: Mutex<HashMap<String, Parked>>,
    /// Sessions with a connection now.
    live: Mutex<HashMap<String, Arc<AppSession>>>,
    next_generation: std::sync::atomic::AtomicU64,
}

impl Sessions {
    pub(super) fn new(grace: Duration) -> Self {
        Self {
            grace,
            parked: Mutex::default(),
            live: Mutex::default(),
            next_generation: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// How long a dropped session waits.
    pub(super) fn grace(&self) -> Duration {
        self.grace
    }

    /// A fresh random session token.
    pub(super) fn new_token() -> String {
        format!("{:032x}", rand::random::<u128>())
    }

    /// Closes every session, parked or live (the node stopped): what they
    /// made closes, their mediasoup workers with it, before the process
    /// exits. A live connection stays open and sees a stopped node.
    pub(super) async fn close_all(&self) -> usize {
        let parked: Vec<Arc<AppSession>> = lock(&self.parked).drain().map(|(_, entry)| entry.session).collect();
        let live: Vec<Arc<AppSession>> = lock(&self.live).values().cloned().collect();
        for session in parked.iter().chain(&live) {
            session.close().await;
        }
        parked.len() + live.len()
    }

    /// Takes back session `token` if `admin` matches how it was opened: a
    /// parked one, or a live one whose connection is then cut (it parks, and
    /// is taken from there; given up after [`TAKEOVER_WAIT`]).
    pub(super) async fn resume(&self, token: &str, admin: bool) -> Option<Arc<AppSession>> {
        if let Some(session) = self.take_parked(token, admin) {
            return Some(session);
        }
        let live = lock(&self.live).get(token).cloned()?;
        if live.access.caller.admin != admin {
            return None;
        }
        live.cut.notify_one();
        let deadline = tokio::time::Instant::now() + TAKEOVER_WAIT;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if let Some(session) = self.take_parked(token, admin) {
                return Some(session);
            }
        }
        None
    }

    fn take_parked(&self, token: &str, admin: bool) -> Option<Arc<AppSession>> {
        let mut parked = lock(&self.parked);
        let matches = parked.get(token).is_some_and(|entry| entry.session.access.caller.admin == admin);
        let session = matches.then(|| parked.remove(token)).flatten().map(|entry| entry.session)?;
        info!(session = %short(token), "app session resumed");
        Some(session)
    }

    /// Serves `session` over `connection` until it drops (or a reconnect
    /// takes the session over), then parks it.
    pub(super) async fn serve(
        self: &Arc<Self>,
        session: Arc<AppSession>,
        connection: mafalda_rope::transport::Connection,
    ) {
        lock(&self.live).insert(session.token.clone(), Arc::clone(&session));
        session.serve(connection).await;
        lock(&self.live).remove(&session.token);
    }

    /// The session's connection dropped: parks it for the grace period, or
    /// closes it now when there is no grace or no room.
    pub(super) async fn park(self: &Arc<Self>, session: Arc<AppSession>) {
        let full = lock(&self.parked).len() >= MAX_PARKED;
        if self.grace.is_zero() || full {
            session.close().await;
            return;
        }
        let generation = self.next_generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = session.token.clone();
        lock(&self.parked).insert(token.clone(), Parked { session, generation });
        debug!(session = %short(&token), grace = ?self.grace, "app disconnected: session parked");
        let sessions = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(sessions.grace).await;
            let expired = {
                let mut parked = lock(&sessions.parked);
                match parked.get(&token) {
                    Some(entry) if entry.generation == generation => parked.remove(&token).map(|entry| entry.session),
                    _ => None,
                }
            };
            if let Some(session) = expired {
                info!(session = %short(&token), "app did not come back within the grace: its session closes");
                session.close().await;
            }
        });
    }
}

/// How long a reconnect waits for the connection it cuts to let go of the session.
const TAKEOVER_WAIT: Duration = Duration::from_secs(2);

/// The start of a token, enough to tell sessions apart in logs without giving it away.
fn short(token: &str) -> &str {
    token.get(..8).unwrap_or(token)
}
