//! When a WHIP or WHEP session has ended without a `DELETE`: the client never
//! connected, went away, or the stream it played ended. A pure state machine
//! over the transport's states and `now`, so it is tested without sleeping.

use std::time::{Duration, Instant};

use mafalda_media::mediasoup::types::data_structures::{DtlsState, IceState};

/// How long a new session may take to complete ICE and DTLS.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connected session may stay ICE-disconnected before it is
/// closed. mediasoup reports `disconnected` after its ICE consent timeout (30 s
/// without a consent check from the client), so a vanished client is let go
/// of after about 40 s; one whose network only hiccuped comes back within it.
pub const DISCONNECTED_GRACE: Duration = Duration::from_secs(10);

/// What a session's transport and tracks report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionState {
    /// The transport's ICE state.
    pub ice: IceState,
    /// The transport's DTLS state.
    pub dtls: DtlsState,
    /// A track the session sends (WHEP) lost its stream, or a track it
    /// receives (WHIP) was closed.
    pub track_ended: bool,
}

impl Default for SessionState {
    fn default() -> Self {
        Self { ice: IceState::New, dtls: DtlsState::New, track_ended: false }
    }
}

/// Decides when a session is over.
#[derive(Debug, Clone)]
pub struct Liveness {
    started: Instant,
    connected: bool,
    disconnected_since: Option<Instant>,
}

impl Liveness {
    /// A session made at `now`.
    pub fn new(now: Instant) -> Self {
        Self { started: now, connected: false, disconnected_since: None }
    }

    /// Why the session is over at `now` given `state`, or `None` while it lives.
    pub fn check(&mut self, state: &SessionState, now: Instant) -> Option<&'static str> {
        if state.track_ended {
            return Some("its track ended");
        }
        match state.dtls {
            DtlsState::Failed => return Some("the DTLS handshake failed"),
            DtlsState::Closed => return Some("the client closed DTLS"),
            DtlsState::Connected => self.connected = true,
            DtlsState::New | DtlsState::Connecting => {}
        }
        match state.ice {
            IceState::Disconnected => {
                let since = *self.disconnected_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= DISCONNECTED_GRACE {
                    return Some("the client stopped answering ICE consent checks");
                }
            }
            IceState::New | IceState::Connected | IceState::Completed => self.disconnected_since = None,
        }
        if !self.connected && now.saturating_duration_since(self.started) >= CONNECT_TIMEOUT {
            return Some("the client did not connect in time");
        }
        None
    }

    /// The next instant [`Liveness::check`] may change its answer without a
    /// state change (`None`: only a state change can end it).
    pub fn deadline(&self) -> Option<Instant> {
        match (self.connected, self.disconnected_since) {
            (_, Some(since)) => Some(since + DISCONNECTED_GRACE),
            (false, None) => Some(self.started + CONNECT_TIMEOUT),
            (true, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(ice: IceState, dtls: DtlsState) -> SessionState {
        SessionState { ice, dtls, track_ended: false }
    }

    #[test]
    fn a_session_that_never_connects_ends_after_the_connect_timeout() {
        let start = Instant::now();
        let mut liveness = Liveness::new(start);
        let waiting = state(IceState::New, DtlsState::New);
        assert_eq!(liveness.check(&waiting, start + CONNECT_TIMEOUT - Duration::from_millis(1)), None);
        assert_eq!(liveness.deadline(), Some(start + CONNECT_TIMEOUT));
        assert!(liveness.check(&waiting, start + CONNECT_TIMEOUT).is_some());
        // ICE alone is not enough: DTLS must complete too.
        let mut liveness = Liveness::new(start);
        let ice_only = state(IceState::Completed, DtlsState::Connecting);
        assert!(liveness.check(&ice_only, start + CONNECT_TIMEOUT).is_some());
    }

    #[test]
    fn a_connected_session_lives_until_its_client_stays_away_past_the_grace() {
        let start = Instant::now();
        let mut liveness = Liveness::new(start);
        assert_eq!(liveness.check(&state(IceState::Completed, DtlsState::Connected), start), None);
        assert_eq!(liveness.deadline(), None, "nothing to wait for while connected");
        let hour = start + Duration::from_secs(3600);
        assert_eq!(liveness.check(&state(IceState::Completed, DtlsState::Connected), hour), None);
        let gone = state(IceState::Disconnected, DtlsState::Connected);
        assert_eq!(liveness.check(&gone, hour), None);
        assert_eq!(liveness.deadline(), Some(hour + DISCONNECTED_GRACE));
        // Back within the grace: the clock starts again next time.
        let back = hour + DISCONNECTED_GRACE - Duration::from_secs(1);
        assert_eq!(liveness.check(&state(IceState::Completed, DtlsState::Connected), back), None);
        assert_eq!(liveness.check(&gone, back + DISCONNECTED_GRACE - Duration::from_millis(1)), None);
        assert!(liveness.check(&gone, back + DISCONNECTED_GRACE * 2).is_some());
    }

    #[test]
    fn failures_and_ended_tracks_end_a_session_at_once() {
        let start = Instant::now();
        for ended in [
            state(IceState::Completed, DtlsState::Failed),
            state(IceState::Completed, DtlsState::Closed),
            SessionState { track_ended: true, ..state(IceState::Completed, DtlsState::Connected) },
        ] {
            assert!(Liveness::new(start).check(&ended, start).is_some(), "{ended:?}");
        }
    }
}
