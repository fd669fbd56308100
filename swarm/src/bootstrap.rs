//! Joining the swarm: dialing the bootstrap peers, and dialing them again with a
//! growing backoff for as long as the node has no peer at all.

use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

/// Bootstrap peers and when to try them next.
#[derive(Debug)]
pub(crate) struct Bootstrap {
    addrs: Vec<Multiaddr>,
    first_backoff: Duration,
    max_backoff: Duration,
    backoff: Duration,
    next_attempt: Instant,
    attempts: u32,
}

impl Bootstrap {
    pub(crate) fn new(addrs: Vec<Multiaddr>, first_backoff: Duration, max_backoff: Duration, now: Instant) -> Self {
        Self { addrs, first_backoff, max_backoff, backoff: first_backoff, next_attempt: now, attempts: 0 }
    }

    /// The bootstrap addresses with the peer id each names, if any.
    pub(crate) fn peers(&self) -> impl Iterator<Item = (Option<PeerId>, &Multiaddr)> {
        self.addrs.iter().map(|addr| (peer_of(addr), addr))
    }

    /// Whether the addresses should be dialed now; if so, schedules the next attempt.
    pub(crate) fn due(&mut self, now: Instant, has_peers: bool) -> Option<Duration> {
        if self.addrs.is_empty() || has_peers || now < self.next_attempt {
            return None;
        }
        self.attempts += 1;
        let wait = self.backoff;
        self.next_attempt = now + wait;
        self.backoff = (self.backoff * 2).min(self.max_backoff);
        Some(wait)
    }

    /// How many attempts have been made since the last success.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// A connection was made: the next loss of every peer starts from the first backoff.
    pub(crate) fn connected(&mut self) {
        self.backoff = self.first_backoff;
        self.attempts = 0;
    }
}

/// The peer id at the end of an address (`…/p2p/<id>`).
pub(crate) fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_while_alone_and_resets_after_joining() {
        let start = Instant::now();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().expect("addr");
        let mut bootstrap = Bootstrap::new(vec![addr], Duration::from_secs(1), Duration::from_secs(4), start);
        assert_eq!(bootstrap.due(start, false), Some(Duration::from_secs(1)));
        assert_eq!(bootstrap.due(start, false), None, "not before the backoff");
        assert_eq!(bootstrap.due(start + Duration::from_secs(1), false), Some(Duration::from_secs(2)));
        assert_eq!(bootstrap.due(start + Duration::from_secs(3), false), Some(Duration::from_secs(4)));
        assert_eq!(bootstrap.due(start + Duration::from_secs(7), false), Some(Duration::from_secs(4)), "capped");
        assert_eq!(bootstrap.due(start + Duration::from_secs(60), true), None, "not while connected");
        bootstrap.connected();
        assert_eq!(bootstrap.due(start + Duration::from_secs(60), false), Some(Duration::from_secs(1)));
    }
}
