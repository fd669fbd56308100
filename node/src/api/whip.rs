//! WHIP (RFC 9725) and WHEP over the API: `POST /v1/streams/{id}/whip` with
//! an SDP offer publishes, `POST /v1/streams/{id}/whep` plays, each answering
//! `201 Created` with the SDP answer and the session's `Location`
//! (`/v1/sessions/{session}`); `DELETE` there ends it. Trickle ICE and ICE
//! restarts are not offered: `PATCH` is answered 405 (the node is ICE-lite and
//! puts all its candidates in the answer), as the RFC allows.
//!
//! A session belongs to the token that made it (only it or the admin may end
//! it) and counts against that owner's session cap (a WHIP session also
//! against its publications); the node holds at most [`MAX_SESSIONS`]. A
//! session whose client never connects, stops answering ICE or whose stream
//! ends is closed on its own (`crate::sdp_session::liveness`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::info;

use super::owners::{Caller, ObjectKind, Owner, Registration};
use super::{ApiError, ApiState, error, ops};
use crate::{Node, SdpSession, SessionRole};

/// Most WHIP and WHEP sessions a node holds, whoever made them.
pub const MAX_SESSIONS: usize = 1024;

/// The sessions of one API server.
#[derive(Default)]
pub(super) struct SdpSessions {
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    owner: Owner,
    session: SdpSession,
    _registration: Registration,
    /// The task that closes the session when its client is gone.
    watcher: Option<tokio::task::AbortHandle>,
    _client: crate::monitor::ClientGuard,
}

impl Drop for Entry {
    fn drop(&mut self) {
        if let Some(watcher) = &self.watcher {
            watcher.abort();
        }
    }
}

impl SdpSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the session `id` (dropped outside the lock: closing it ends streams).
    fn remove(&self, id: &str) -> Option<Entry> {
        self.lock().remove(id)
    }

    /// Ends every session (the node stopped): each client's transport closes
    /// now (a browser learns it at once from DTLS) and the mediasoup objects
    /// go before the process exits.
    pub(super) fn close_all(&self) -> usize {
        let all: Vec<Entry> = self.lock().drain().map(|(_, entry)| entry).collect();
        all.len()
    }

    /// How many sessions are open.
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Open WHIP (publishing) and WHEP (playing) sessions.
    pub(super) fn counts(&self) -> (usize, usize) {
        let entries = self.lock();
        let publishing = entries.values().filter(|e| e.session.role() == SessionRole::Publish).count();
        (publishing, entries.len() - publishing)
    }
}

/// `POST /v1/streams/{id}/whip`.
pub(super) async fn publish(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let offer = match offer_text(&headers, &body) {
        Ok(offer) => offer,
        Err(refused) => return refused.into_response(),
    };
    let mut publication = match state.owners.reserve(&state.node, &caller, ObjectKind::Publication, 1) {
        Ok(slot) => slot,
        Err(refused) => return ops::Refused::from(refused).into_response(),
    };
    open(&state, &caller, |node| {
        let (node, id) = (Arc::clone(node), id.clone());
        async move { node.publish_sdp(&id, &offer).await }
    })
    .await
    .inspect(|_| publication.commit(&id, None).keep())
    .unwrap_or_else(|refused| refused)
}

/// `POST /v1/streams/{id}/whep`.
pub(super) async fn play(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let offer = match offer_text(&headers, &body) {
        Ok(offer) => offer,
        Err(refused) => return refused.into_response(),
    };
    open(&state, &caller, |node| {
        let (node, id) = (Arc::clone(node), id.clone());
        async move { node.play_sdp(&id, &offer).await }
    })
    .await
    .unwrap_or_else(|refused| refused)
}

/// `DELETE /v1/sessions/{session}`: its owner or the admin ends it.
pub(super) async fn end(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(session): Path<String>,
) -> Response {
    let owner = state.sdp_sessions.lock().get(&session).map(|e| e.owner);
    let Some(owner) = owner else {
        return error(StatusCode::NOT_FOUND, format!("session {session} not found"));
    };
    if owner != caller.owner && !caller.admin {
        let refused = super::AccessError::Forbidden { what: format!("session {session}"), owner: owner.to_string() };
        return ops::Refused::from(refused).into_response();
    }
    if let Some(entry) = state.sdp_sessions.remove(&session) {
        info!(session, stream = entry.session.stream(), "session ended by DELETE");
        drop(entry);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// A request refused before anything is made: status and message.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

/// The offer of a request: `application/sdp` (415 otherwise), UTF-8 (400).
fn offer_text(headers: &HeaderMap, body: &Bytes) -> Result<String, Refusal> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/sdp") {
        let message = format!("expected Content-Type: application/sdp (the SDP offer), got {content_type:?}");
        return Err(Refusal(StatusCode::UNSUPPORTED_MEDIA_TYPE, message));
    }
    String::from_utf8(body.to_vec()).map_err(|_| Refusal(StatusCode::BAD_REQUEST, "the SDP offer is not UTF-8".into()))
}

/// Makes a session with `make` under `caller`'s session cap and the node's,
/// records it, watches it, and answers 201 with the SDP answer.
async fn open<F, Fut>(state: &ApiState, caller: &Caller, make: F) -> Result<Response, Response>
where
    F: FnOnce(&Arc<Node>) -> Fut,
    Fut: std::future::Future<Output = Result<SdpSession, crate::NodeError>>,
{
    let mut slot = state
        .owners
        .reserve(&state.node, caller, ObjectKind::Session, 1)
        .map_err(|refused| ops::Refused::from(refused).into_response())?;
    if state.sdp_sessions.len() >= MAX_SESSIONS {
        let message = format!("this node holds {MAX_SESSIONS} WHIP/WHEP sessions, the most it serves");
        return Err(error(StatusCode::SERVICE_UNAVAILABLE, message));
    }
    let session = make(&state.node).await.map_err(|e| ApiError::from(e).into_response())?;
    let id = session.id().to_owned();
    let location = format!("/v1/sessions/{id}");
    let answer = session.answer().to_owned();
    let ended = session.ended();
    let entry = Entry {
        owner: caller.owner,
        _registration: slot.commit(&id, None),
        session,
        watcher: None,
        _client: state.node.client(),
    };
    state.sdp_sessions.lock().insert(id.clone(), entry);
    // Spawned once recorded, so that a session over at once is still found and closed.
    let watcher = {
        let (sessions, id) = (Arc::downgrade(&state.sdp_sessions), id.clone());
        tokio::spawn(async move {
            let reason = ended.await;
            if let Some(entry) = sessions.upgrade().and_then(|s| s.remove(&id)) {
                info!(session = id, stream = entry.session.stream(), reason, "session closed");
            }
        })
    };
    if let Some(entry) = state.sdp_sessions.lock().get_mut(&id) {
        entry.watcher = Some(watcher.abort_handle());
    }
    let mut response = (StatusCode::CREATED, answer).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/sdp"));
    if let Ok(location) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, location);
    }
    Ok(response)
}
