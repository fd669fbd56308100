//! Misbehaving peers: callers report what a peer did; only this module knows how
//! much each act weighs, how fast it is forgiven, and when a peer is banned.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// Something a peer did wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerAction {
    /// A gossip message that failed validation (garbage, or speaking for another node).
    InvalidGossip,
    /// A ROPE request that was malformed or over the size limit.
    BadRequest,
    /// More concurrent ROPE requests than allowed.
    RequestFlood,
}

impl PeerAction {
    fn weight(self) -> f64 {
        match self {
            // Honest nodes never send these (a newer format is ignored, not invalid).
            Self::InvalidGossip => 25.0,
            Self::BadRequest => 10.0,
            Self::RequestFlood => 2.0,
        }
    }
}

/// Score at which a peer is banned.
const BAN_THRESHOLD: f64 = 50.0;
/// Half-life of a penalty.
const HALF_LIFE: Duration = Duration::from_secs(60);
/// Most peers tracked (the least penalised are forgotten first when full).
const MAX_TRACKED: usize = 4096;

/// Penalty scores per peer and the bans they led to.
#[derive(Debug)]
pub(crate) struct Penalties {
    scores: HashMap<PeerId, (f64, Instant)>,
    banned: HashMap<PeerId, Instant>,
    ban_duration: Duration,
}

impl Penalties {
    pub(crate) fn new(ban_duration: Duration) -> Self {
        Self { scores: HashMap::new(), banned: HashMap::new(), ban_duration }
    }

    /// Records `action`; returns true when the peer has just crossed the ban threshold.
    pub(crate) fn report(&mut self, peer: PeerId, action: PeerAction, now: Instant) -> bool {
        if self.banned.contains_key(&peer) {
            return false;
        }
        if self.scores.len() >= MAX_TRACKED && !self.scores.contains_key(&peer) {
            let least = self.scores.iter().min_by(|a, b| a.1.0.total_cmp(&b.1.0)).map(|(peer, _)| *peer);
            if let Some(least) = least {
                self.scores.remove(&least);
            }
        }
        let (score, at) = self.scores.entry(peer).or_insert((0.0, now));
        *score = decayed(*score, now.saturating_duration_since(*at)) + action.weight();
        *at = now;
        if *score >= BAN_THRESHOLD {
            self.scores.remove(&peer);
            self.banned.insert(peer, now + self.ban_duration);
            return true;
        }
        false
    }

    /// Peers whose ban has ended (they are forgotten).
    pub(crate) fn expired_bans(&mut self, now: Instant) -> Vec<PeerId> {
        let ended: Vec<PeerId> = self.banned.iter().filter(|(_, until)| **until <= now).map(|(p, _)| *p).collect();
        for peer in &ended {
            self.banned.remove(peer);
        }
        ended
    }
}

fn decayed(score: f64, elapsed: Duration) -> f64 {
    score * 0.5f64.powf(elapsed.as_secs_f64() / HALF_LIFE.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_garbage_bans_and_the_ban_ends() {
        let now = Instant::now();
        let mut penalties = Penalties::new(Duration::from_secs(600));
        let peer = PeerId::random();
        let banned_at = (1..=10).find(|_| penalties.report(peer, PeerAction::InvalidGossip, now));
        assert_eq!(banned_at, Some(2), "a second invalid gossip message in a row crosses the threshold");
        let other = PeerId::random();
        let banned_at = (1..=10).find(|_| penalties.report(other, PeerAction::BadRequest, now));
        assert_eq!(banned_at, Some(5), "five bad requests in a row cross the threshold");
        assert!(penalties.expired_bans(now + Duration::from_secs(599)).is_empty());
        let mut ended = penalties.expired_bans(now + Duration::from_secs(600));
        ended.sort();
        let mut expected = vec![peer, other];
        expected.sort();
        assert_eq!(ended, expected);
    }

    #[test]
    fn occasional_mistakes_are_forgiven() {
        let mut now = Instant::now();
        let mut penalties = Penalties::new(Duration::from_secs(600));
        let peer = PeerId::random();
        for _ in 0..20 {
            assert!(!penalties.report(peer, PeerAction::BadRequest, now), "one bad request a minute is not a ban");
            now += Duration::from_secs(60);
        }
    }
}
